/* Structured logs: one JSON object per line on stderr. The level is checked before anything
 * is formatted, so disabled levels cost one comparison. Warnings that repeat (a broker that
 * keeps failing) are rate-limited per call site key. */
#ifndef TW_LOG_H
#define TW_LOG_H

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
