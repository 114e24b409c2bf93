/* An argv for hiredis built piece by piece: arguments either point at the caller's bytes
 * (which must outlive the command) or are copied or formatted into one scratch buffer, whose
 * pointers are taken by redis_args_resolve() once it stops growing. */
#ifndef TW_REDIS_ARGS_H
#define TW_REDIS_ARGS_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

typedef struct {
    const char **argv;
    size_t *argvlen;
    size_t *off; /* per argument: offset in scratch, or SIZE_MAX for a caller's pointer */
    size_t n, cap;
    bool failed; /* out of memory: the argv is incomplete */
    buf_t scratch;
} redis_args_t;

void redis_args_init(redis_args_t *a);
void redis_args_fini(redis_args_t *a);

/* Empties the argv and the scratch buffer (their memory is kept for the next command). */
void redis_args_reset(redis_args_t *a);

void redis_args_ptr(redis_args_t *a, const char *p, size_t len);
void redis_args_bytes(redis_args_t *a, const void *p, size_t len);
void redis_args_fmt(redis_args_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Points the scratch arguments into the scratch buffer; 0 or TW_ERR_NOMEM. */
int redis_args_resolve(redis_args_t *a);

#endif
