#include "util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/buf.h"

log_level_t log_threshold = LOG_LEVEL_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

const char *log_level_name(log_level_t level)
{
    return level <= LOG_LEVEL_OFF ? level_names[level] : "unknown";
}

void log_write(log_level_t level, const char *msg, const char *fields_json)
{
    if (!LOG_ENABLED(level))
        return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    char ts[96];
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)(now.tv_nsec / 1000000) % 1000);
    buf_t line;
    buf_init(&line);
    buf_append_str(&line, "{\"ts\":\"");
    buf_append_str(&line, ts);
    buf_append_str(&line, "\",\"level\":\"");
    buf_append_str(&line, log_level_name(level));
    buf_append_str(&line, "\",\"msg\":");
    buf_append_json_string(&line, msg, strlen(msg));
    if (fields_json && *fields_json) {
        buf_append_char(&line, ',');
        buf_append_str(&line, fields_json);
    }
    buf_append_str(&line, "}\n");
    if (!line.failed) {
        pthread_mutex_lock(&log_lock);
        fwrite(line.data, 1, line.len, stderr);
        fflush(stderr);
        pthread_mutex_unlock(&log_lock);
    }
    buf_fini(&line);
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
