#include "util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"

log_level_t log_threshold = LOG_LEVEL_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

const char *log_level_name(log_level_t level)
{
    return level <= LOG_LEVEL_OFF ? level_names[level] : "unknown";
}

static log_format_t current_format = LOG_FORMAT_JSON;
static bool current_colour;

/* The status line shown under the log lines, "" when none. */
static char status_line[512];

void log_set_format(log_format_t format)
{
    bool tty = isatty(STDERR_FILENO) == 1;
    if (format == LOG_FORMAT_AUTO)
        format = tty ? LOG_FORMAT_TEXT : LOG_FORMAT_JSON;
    const char *no_colour = getenv("NO_COLOR");
    current_format = format;
    current_colour = format == LOG_FORMAT_TEXT && tty && !(no_colour && *no_colour);
}

log_format_t log_format(void)
{
    return current_format;
}

/* Appends text with control characters escaped: a message can quote a post, and an escape
 * sequence in a post must not reach the terminal. */
static void append_printable(buf_t *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            buf_append_str(out, "\\n");
        else if (c == '\t')
            buf_append_str(out, "\\t");
        else if (c < 0x20 || c == 0x7f)
            buf_printf(out, "\\x%02x", c);
        else
            buf_append_char(out, (char)c);
    }
}

/* The end of the JSON value starting at p: a string, or anything up to the next ',' outside
 * strings and brackets (a number, true, an object). */
static const char *json_value_end(const char *p)
{
    int depth = 0;
    bool in_string = false;
    for (; *p; p++) {
        if (in_string) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                in_string = false;
            continue;
        }
        if (*p == '"')
            in_string = true;
        else if (*p == '{' || *p == '[')
            depth++;
        else if (*p == '}' || *p == ']')
            depth--;
        else if (*p == ',' && depth <= 0)
            break;
    }
    return p;
}

/* " key=value" for each member of fields_json (the inside of an object). A string value is
 * written bare when that is unambiguous, else as its JSON string (logfmt's convention). */
static void append_fields_text(buf_t *out, const char *fields_json)
{
    const char *p = fields_json;
    while (*p) {
        while (*p == ',' || *p == ' ')
            p++;
        if (*p != '"')
            break;
        const char *key = p + 1;
        const char *key_end = strchr(key, '"');
        if (!key_end || key_end[1] != ':')
            break;
        const char *value = key_end + 2;
        const char *end = json_value_end(value);
        buf_append_char(out, ' ');
        append_printable(out, key, (size_t)(key_end - key));
        buf_append_char(out, '=');
        size_t len = (size_t)(end - value);
        bool bare = len >= 2 && value[0] == '"' && value[len - 1] == '"';
        for (size_t i = 1; bare && i + 1 < len; i++)
            bare = value[i] != ' ' && value[i] != '\\' && value[i] != '=' && value[i] != '"';
        if (bare && len > 2)
            append_printable(out, value + 1, len - 2);
        else
            append_printable(out, value, len);
        p = end;
    }
}

static const char *const level_labels[] = {"DEBUG", "INFO ", "WARN ", "ERROR", "OFF  "};
/* dim, green, yellow, bold red */
static const char *const level_colours[] = {"\033[2m", "\033[32m", "\033[33m", "\033[1;31m", ""};

void log_format_line(buf_t *out, log_format_t format, bool colour, struct timespec when,
                     log_level_t level, const char *msg, const char *fields_json)
{
    struct tm tm;
    if (level > LOG_LEVEL_OFF)
        level = LOG_LEVEL_OFF;
    if (format == LOG_FORMAT_TEXT) {
        localtime_r(&when.tv_sec, &tm); /* a person reads it next to their own clock */
        buf_printf(out, "%02d:%02d:%02d ", tm.tm_hour, tm.tm_min, tm.tm_sec);
        if (colour)
            buf_append_str(out, level_colours[level]);
        buf_append_str(out, level_labels[level]);
        if (colour)
            buf_append_str(out, "\033[0m");
        buf_append_char(out, ' ');
        append_printable(out, msg, strlen(msg));
        if (fields_json && *fields_json)
            append_fields_text(out, fields_json);
        buf_append_char(out, '\n');
        return;
    }
    gmtime_r(&when.tv_sec, &tm);
    char ts[96];
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)(when.tv_nsec / 1000000) % 1000);
    buf_append_str(out, "{\"ts\":\"");
    buf_append_str(out, ts);
    buf_append_str(out, "\",\"level\":\"");
    buf_append_str(out, log_level_name(level));
    buf_append_str(out, "\",\"msg\":");
    buf_append_json_string(out, msg, strlen(msg));
    if (fields_json && *fields_json) {
        buf_append_char(out, ',');
        buf_append_str(out, fields_json);
    }
    buf_append_str(out, "}\n");
}

/* Writes a finished line to stderr above the status line. The caller holds log_lock. */
static void write_above_status(const char *data, size_t len)
{
    if (status_line[0])
        fputs("\r\033[K", stderr);
    fwrite(data, 1, len, stderr);
    if (status_line[0])
        fputs(status_line, stderr);
    fflush(stderr);
}

void log_write(log_level_t level, const char *msg, const char *fields_json)
{
    if (!LOG_ENABLED(level))
        return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    buf_t line;
    buf_init(&line);
    log_format_line(&line, current_format, current_colour, now, level, msg, fields_json);
    if (!line.failed) {
        pthread_mutex_lock(&log_lock);
        write_above_status(line.data, line.len);
        pthread_mutex_unlock(&log_lock);
    }
    buf_fini(&line);
}

void log_status(const char *line)
{
    pthread_mutex_lock(&log_lock);
    if (line && *line) {
        snprintf(status_line, sizeof(status_line), "%s", line);
        /* '\r' back to the start, the new text over the old, then erase what is left of it */
        fprintf(stderr, "\r%s\033[K", status_line);
    } else if (status_line[0]) {
        status_line[0] = '\0';
        fputs("\r\033[K", stderr);
    }
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
}

void log_print(const char *fmt, ...)
{
    buf_t text;
    buf_init(&text);
    va_list ap;
    va_start(ap, fmt);
    char small[1024];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof(small)) {
        buf_append(&text, small, (size_t)n);
    } else if (n >= 0) {
        char *big = malloc((size_t)n + 1);
        if (big) {
            va_start(ap, fmt);
            vsnprintf(big, (size_t)n + 1, fmt, ap);
            va_end(ap);
            buf_append(&text, big, (size_t)n);
            free(big);
        }
    }
    if (!text.failed && text.len) {
        pthread_mutex_lock(&log_lock);
        write_above_status(text.data, text.len);
        pthread_mutex_unlock(&log_lock);
    }
    buf_fini(&text);
}

void log_msgf(log_level_t level, const char *fmt, ...)
{
    if (!LOG_ENABLED(level))
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_write(level, msg, NULL);
}

#define LOG_RATELIMIT_SLOTS 64

typedef struct {
    const char *key;
    time_t last;
    unsigned long suppressed;
} ratelimit_slot_t;

static ratelimit_slot_t ratelimit_slots[LOG_RATELIMIT_SLOTS];

void log_ratelimited(log_level_t level, const char *key, int interval_s, const char *fmt, ...)
{
    if (!LOG_ENABLED(level))
        return;
    time_t now = time(NULL);
    unsigned long suppressed = 0;
    pthread_mutex_lock(&log_lock);
    ratelimit_slot_t *slot = NULL;
    for (int i = 0; i < LOG_RATELIMIT_SLOTS; i++) {
        /* keys are string literals from call sites, so pointer or text equality both work */
        if (ratelimit_slots[i].key &&
            (ratelimit_slots[i].key == key || strcmp(ratelimit_slots[i].key, key) == 0)) {
            slot = &ratelimit_slots[i];
            break;
        }
        if (!ratelimit_slots[i].key && !slot) {
            slot = &ratelimit_slots[i];
            slot->key = key;
            slot->last = 0;
            slot->suppressed = 0;
            break;
        }
    }
    if (slot && slot->last && now - slot->last < interval_s) {
        slot->suppressed++;
        pthread_mutex_unlock(&log_lock);
        return;
    }
    if (slot) {
        slot->last = now;
        suppressed = slot->suppressed;
        slot->suppressed = 0;
    }
    pthread_mutex_unlock(&log_lock);

    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char fields[64] = "";
    if (suppressed)
        snprintf(fields, sizeof(fields), "\"suppressed\":%lu", suppressed);
    log_write(level, msg, fields);
}
