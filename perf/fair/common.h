/* Shared by the floor measurements of perf/bench_fair.py: read a JSONL file into lines, and
 * the process CPU clock (the machine is shared, so CPU time, not wall time, is what we keep). */
#ifndef TW_FAIR_COMMON_H
#define TW_FAIR_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    char *data;  /* the whole file, lines NUL-terminated in place */
    char **line; /* start of each non-empty line */
    size_t *len; /* its length without the newline */
    size_t n;
} fair_lines_t;

static inline int fair_read_lines(const char *path, fair_lines_t *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    out->data = malloc((size_t)size + 1);
    if (!out->data || fread(out->data, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        return -1;
    }
    fclose(f);
    out->data[size] = '\n';
    size_t cap = 1024;
    out->line = malloc(cap * sizeof(*out->line));
    out->len = malloc(cap * sizeof(*out->len));
    out->n = 0;
    char *p = out->data, *end = out->data + size;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p) + 1);
        if (nl > p) {
            if (out->n == cap) {
                cap *= 2;
                out->line = realloc(out->line, cap * sizeof(*out->line));
                out->len = realloc(out->len, cap * sizeof(*out->len));
            }
            out->line[out->n] = p;
            out->len[out->n++] = (size_t)(nl - p);
        }
        *nl = '\0';
        p = nl + 1;
    }
    return 0;
}

static inline double fair_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
