/* argv builder for hiredis (redis_args.h). */
#include "dedup/redis_args.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

void redis_args_init(redis_args_t *a)
{
    memset(a, 0, sizeof(*a));
    buf_init(&a->scratch);
}

void redis_args_fini(redis_args_t *a)
{
    free(a->argv);
    free(a->argvlen);
    free(a->off);
    buf_fini(&a->scratch);
    memset(a, 0, sizeof(*a));
}

void redis_args_reset(redis_args_t *a)
{
    a->n = 0;
    a->failed = false;
    buf_reset(&a->scratch);
}

static bool reserve_one(redis_args_t *a)
{
    if (a->failed)
        return false;
    if (a->n < a->cap)
        return true;
    size_t cap = a->cap ? a->cap * 2 : 64;
    const char **argv = realloc(a->argv, cap * sizeof(*argv));
    if (argv)
        a->argv = argv;
    size_t *lens = argv ? realloc(a->argvlen, cap * sizeof(*lens)) : NULL;
    if (lens)
        a->argvlen = lens;
    size_t *off = lens ? realloc(a->off, cap * sizeof(*off)) : NULL;
    if (!off) {
        a->failed = true;
        return false;
    }
    a->off = off;
    a->cap = cap;
    return true;
}

void redis_args_ptr(redis_args_t *a, const char *p, size_t len)
{
    if (!reserve_one(a))
        return;
    a->argv[a->n] = p;
    a->argvlen[a->n] = len;
    a->off[a->n++] = SIZE_MAX;
}

void redis_args_bytes(redis_args_t *a, const void *p, size_t len)
{
    if (!reserve_one(a))
        return;
    a->argv[a->n] = NULL;
    a->argvlen[a->n] = len;
    a->off[a->n++] = a->scratch.len;
    buf_append(&a->scratch, p, len);
}

void redis_args_fmt(redis_args_t *a, const char *fmt, ...)
{
    char tmp[96];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof(tmp)) {
        a->failed = true;
        return;
    }
    redis_args_bytes(a, tmp, (size_t)len);
}

int redis_args_resolve(redis_args_t *a)
{
    if (a->failed || a->scratch.failed)
        return TW_ERR_NOMEM;
    for (size_t k = 0; k < a->n; k++)
        if (a->off[k] != SIZE_MAX)
            a->argv[k] = a->scratch.data + a->off[k];
    return 0;
}
