#include "util/progress.h"

#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"

/* Appends to out at *len, never past cap, keeping out NUL-terminated. */
static void append(char *out, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *out, size_t cap, size_t *len, const char *fmt, ...)
{
    if (*len + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len = *len + (size_t)n < cap ? *len + (size_t)n : cap - 1;
}

/* 1234567 as "1,234,567": counts of posts are read at a glance. */
static void append_grouped(char *out, size_t cap, size_t *len, uint64_t v)
{
    char digits[24];
    int n = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)v);
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            append(out, cap, len, ",");
        append(out, cap, len, "%c", digits[i]);
    }
}

static void append_bytes(char *out, size_t cap, size_t *len, uint64_t bytes)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        append(out, cap, len, "%llu B", (unsigned long long)bytes);
        return;
    }
    double v = (double)bytes / 1024.0;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024.0;
        u++;
    }
    append(out, cap, len, "%.1f %s", v, units[u]);
}

size_t progress_format(char *out, size_t cap, uint64_t posts, uint64_t bytes, uint64_t total_bytes,
                       double elapsed_s)
{
    size_t len = 0;
    if (cap == 0)
        return 0;
    out[0] = '\0';
    bool timed = elapsed_s >= 0.1; /* a rate over less is noise */
    append_grouped(out, cap, &len, posts);
    append(out, cap, &len, " posts  ");
    if (timed)
        append_grouped(out, cap, &len, (uint64_t)((double)posts / elapsed_s + 0.5));
    else
        append(out, cap, &len, "-");
    append(out, cap, &len, " posts/s  ");
    append_bytes(out, cap, &len, bytes);
    if (total_bytes == 0) {
        append(out, cap, &len, " read");
        return len;
    }
    uint64_t done = bytes < total_bytes ? bytes : total_bytes; /* the file may have grown */
    append(out, cap, &len, " / ");
    append_bytes(out, cap, &len, total_bytes);
    append(out, cap, &len, " (%d%%)", (int)(done * 100 / total_bytes));
    if (!timed || done == 0) {
        append(out, cap, &len, "  ETA -");
        return len;
    }
    /* the bytes still to read at the rate bytes were read so far */
    double left_s = (double)(total_bytes - done) * elapsed_s / (double)done;
    uint64_t s = (uint64_t)(left_s + 0.5);
    if (s >= 3600)
        append(out, cap, &len, "  ETA %llu:%02u:%02u", (unsigned long long)(s / 3600),
               (unsigned)(s / 60 % 60), (unsigned)(s % 60));
    else
        append(out, cap, &len, "  ETA %u:%02u", (unsigned)(s / 60), (unsigned)(s % 60));
    return len;
}

static double seconds_between(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

void progress_start(progress_t *p, FILE *input)
{
    memset(p, 0, sizeof(*p));
    if (isatty(STDERR_FILENO) != 1)
        return;
    p->active = true;
    p->stdout_tty = isatty(STDOUT_FILENO) == 1;
    struct stat st;
    int fd = input ? fileno(input) : -1;
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        off_t at = lseek(fd, 0, SEEK_CUR);
        p->start_offset = at > 0 && at <= st.st_size ? (uint64_t)at : 0;
        p->total_bytes = (uint64_t)st.st_size - p->start_offset;
    }
    clock_gettime(CLOCK_MONOTONIC, &p->start);
}

void progress_update(progress_t *p, uint64_t posts, uint64_t bytes)
{
    if (!p->active)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (p->ever_drawn && seconds_between(&p->last_draw, &now) * 1000.0 < PROGRESS_INTERVAL_MS)
        return;
    char line[256];
    size_t len = progress_format(line, sizeof(line), posts, bytes, p->total_bytes,
                                 seconds_between(&p->start, &now));
    /* A line longer than the terminal would wrap, and '\r' only returns to the start of its
     * last row: cut it to the width. */
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && len >= ws.ws_col)
        line[ws.ws_col - 1] = '\0';
    if (p->stdout_tty)
        fflush(stdout); /* what was printed goes above the line, not after it */
    log_status(line);
    p->last_draw = now;
    p->ever_drawn = true;
    p->shown = true;
}

void progress_before_stdout(progress_t *p)
{
    if (p->shown && p->stdout_tty) {
        log_status(NULL);
        p->shown = false;
    }
}

void progress_finish(progress_t *p)
{
    if (p->shown)
        log_status(NULL);
    p->shown = false;
}
