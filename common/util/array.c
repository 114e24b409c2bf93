#include "util/array.h"

#include <stdint.h>
#include <stdlib.h>

#include "util/err.h"

void *tw_array_grow(void *items, size_t *cap, size_t need, size_t elem, size_t min_cap, int *rc)
{
    if (need <= *cap)
        return items;
    size_t ncap = *cap > min_cap ? *cap : min_cap;
    while (ncap < need && ncap <= SIZE_MAX / 2)
        ncap *= 2;
    if (ncap < need || ncap > SIZE_MAX / elem) {
        *rc = TW_ERR_NOMEM;
        return items;
    }
    void *grown = realloc(items, ncap * elem);
    if (!grown) {
        *rc = TW_ERR_NOMEM;
        return items;
    }
    *cap = ncap;
    return grown;
}
