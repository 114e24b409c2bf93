/* Error codes shared by every module: 0 is success, failures are negative.
 * One X-macro table gives each code its name, message and class so callers can
 * decide between retrying, dropping the input, and stopping the worker. */
#ifndef TW_ERR_H
#define TW_ERR_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    TW_ERR_CLASS_PERMANENT, /* the input or config is wrong; retrying will not help */
    TW_ERR_CLASS_RETRY,     /* a dependency is unavailable; retry later */
    TW_ERR_CLASS_FATAL,     /* the process cannot continue */
} tw_err_class_t;

#define TW_ERR_MAP(X)                                                                              \
    X(OK, 0, "success", PERMANENT)                                                                 \
    X(NOMEM, -1, "out of memory", FATAL)                                                           \
    X(INVALID, -2, "invalid argument", PERMANENT)                                                  \
    X(IO, -3, "input/output error", RETRY)                                                         \
    X(PARSE, -4, "parse error", PERMANENT)                                                         \
    X(COMPILE, -5, "pattern compile error", PERMANENT)                                             \
    X(KAFKA, -6, "kafka error", RETRY)                                                             \
    X(REDIS, -7, "redis error", RETRY)                                                             \
    X(TIMEOUT, -8, "timed out", RETRY)                                                             \
    X(TOO_LARGE, -9, "input too large", PERMANENT)                                                 \
    X(UTF8, -10, "invalid UTF-8", PERMANENT)                                                       \
    X(CONFIG, -11, "configuration error", PERMANENT)                                               \
    X(NOT_FOUND, -12, "not found", PERMANENT)                                                      \
    X(SCAN, -13, "scan error", FATAL)

typedef enum {
#define TW_ERR_ENUM(name, code, msg, cls) TW_ERR_##name = code,
    TW_ERR_MAP(TW_ERR_ENUM)
#undef TW_ERR_ENUM
} tw_err_t;

/* Static strings; unknown codes give "unknown error". */
const char *tw_err_name(int err);
const char *tw_err_str(int err);
tw_err_class_t tw_err_class(int err);

/* A list of human-readable diagnostics ("rules.yaml:42: pattern 'fo(o': missing )") that a
 * callee appends to so that a caller can report every problem, not just the first. */
typedef struct {
    char **lines;
    size_t count;
    size_t cap;
} tw_diag_t;

void tw_diag_init(tw_diag_t *diag);
void tw_diag_fini(tw_diag_t *diag);
/* Appends one formatted line; a NULL diag is allowed and ignored. */
void tw_diag_add(tw_diag_t *diag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reports every line: with stream NULL to the log at error level (the worker, whose output is
 * JSON log lines), otherwise to stream as "<prefix><line>\n" (the command-line modes). */
void tw_diag_log_all(const tw_diag_t *diag, FILE *stream, const char *prefix);

/* Quotes s[0, len) for a one-line diagnostic into buf: at most 60 bytes shown (cut on a UTF-8
 * boundary, then "..."), control bytes as \xHH, and with escape_quoting also ' and \ (for
 * keywords and names shown inside quotes; regexes keep their backslashes readable). */
#define TW_DIAG_QUOTE_SIZE 256
const char *tw_diag_quote(const char *s, size_t len, int escape_quoting,
                          char buf[static TW_DIAG_QUOTE_SIZE]);

#endif
