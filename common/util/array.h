/* Arrays that grow by doubling: the one copy of the "reallocate when full" step. */
#ifndef TW_ARRAY_H
#define TW_ARRAY_H

#include <stddef.h>

/* items (elem bytes each, room for *cap) reallocated to hold at least need elements: returned
 * as is when *cap >= need, else the capacity doubles from max(*cap, min_cap) until it holds
 * need. When memory runs out (or the size would overflow) it returns items and *cap unchanged
 * and sets *rc to TW_ERR_NOMEM, so that several arrays can be grown in a row and checked once.
 * min_cap must be at least 1. */
void *tw_array_grow(void *items, size_t *cap, size_t need, size_t elem, size_t min_cap, int *rc);

#endif
