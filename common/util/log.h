/* Structured logs: one JSON object per line on stderr, or, for a person at a terminal, one
 * line of text ("14:03:12 WARN  message key=value"). The level is checked before anything
 * is formatted, so disabled levels cost one comparison. Warnings that repeat (a broker that
 * keeps failing) are rate-limited per call site key. */
#ifndef TW_LOG_H
#define TW_LOG_H

#include <stdbool.h>
#include <time.h>

#include "util/buf.h"

typedef enum {
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_INFO,
    LOG_LEVEL_WARN,
    LOG_LEVEL_ERROR,
    LOG_LEVEL_OFF,
} log_level_t;

extern log_level_t log_threshold;

/* The level names (debug|info|warn|error|off) are parsed by the log_level configuration key. */
const char *log_level_name(log_level_t level);

/* The log.format configuration key. */
typedef enum {
    LOG_FORMAT_AUTO, /* text when stderr is a terminal, else JSON */
    LOG_FORMAT_JSON,
    LOG_FORMAT_TEXT,
} log_format_t;

/* Chooses the format of the lines that follow; AUTO is resolved here, once, with isatty(2).
 * Text lines are coloured only when stderr is a terminal and NO_COLOR is unset or empty
 * (no-color.org). Call before other threads log. Until it is called, lines are JSON. */
void log_set_format(log_format_t format);

/* The format in effect: JSON or TEXT, never AUTO. */
log_format_t log_format(void);

/* Appends one complete line (ending in '\n') in format (JSON or TEXT) to out: what log_write
 * writes, given the time. Text shows the local time of day, the level, the message with its
 * control characters escaped (a post's text must not drive the terminal), then the fields as
 * key=value. colour adds ANSI colours to the level. */
void log_format_line(buf_t *out, log_format_t format, bool colour, struct timespec when,
                     log_level_t level, const char *msg, const char *fields_json);

/* A status line (a progress display) kept at the bottom of a terminal's stderr: log lines and
 * log_print output are written above it and it is redrawn under them. NULL or "" removes it.
 * Only for a terminal: the line is redrawn in place with '\r'. */
void log_status(const char *line);

/* Writes text that is not a log line (a dead-letter record, a decode error) to stderr, under
 * the log's lock and above the status line. */
void log_print(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes {"ts":...,"level":...,"msg":...} plus the caller's fields. fields_json is either NULL
 * or the inside of a JSON object ("\"k\":1,\"s\":\"v\"") the caller built; it is copied as is. */
void log_write(log_level_t level, const char *msg, const char *fields_json);

/* printf-style message, no extra fields. */
void log_msgf(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like log_msgf, but at most one line per interval_s for the same key; the next line that gets
 * through says how many were suppressed. */
void log_ratelimited(log_level_t level, const char *key, int interval_s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define LOG_ENABLED(level) ((level) >= log_threshold)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (LOG_ENABLED(LOG_LEVEL_DEBUG))                                                          \
            log_msgf(LOG_LEVEL_DEBUG, __VA_ARGS__);                                                \
    } while (0)
#define log_info(...)                                                                              \
    do {                                                                                           \
        if (LOG_ENABLED(LOG_LEVEL_INFO))                                                           \
            log_msgf(LOG_LEVEL_INFO, __VA_ARGS__);                                                 \
    } while (0)
#define log_warn(...)                                                                              \
    do {                                                                                           \
        if (LOG_ENABLED(LOG_LEVEL_WARN))                                                           \
            log_msgf(LOG_LEVEL_WARN, __VA_ARGS__);                                                 \
    } while (0)
#define log_error(...)                                                                             \
    do {                                                                                           \
        if (LOG_ENABLED(LOG_LEVEL_ERROR))                                                          \
            log_msgf(LOG_LEVEL_ERROR, __VA_ARGS__);                                                \
    } while (0)

#endif
