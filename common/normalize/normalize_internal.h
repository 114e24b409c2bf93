/* Private to common/normalize/: the buffer helpers that the folded text (normalize.c) and
 * the derived views (normalize_views.c) share. */
#ifndef TW_NORMALIZE_INTERNAL_H
#define TW_NORMALIZE_INTERNAL_H

#include "normalize/normalize.h"

/* The longest decomposition of one code point under NFKC + case folding (or canonical
 * decomposition alone) is 18 (U+FDFA); tests/unit/test_normalize.c checks every code point. */
#define NORM_DECOMP_MAX 32

/* Grows norm's three arrays to hold at least need entries (geometric, never shrinks). */
int norm_reserve_slow(normalized_t *norm, size_t need);

static inline int norm_reserve(normalized_t *norm, size_t need)
{
    return need <= norm->cap ? 0 : norm_reserve_slow(norm, need);
}

/* Makes norm the empty text, keeping its buffers. */
void norm_set_empty(normalized_t *norm);

#endif
