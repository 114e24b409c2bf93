#include "util/str_index.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const str_index_entry_t *)a)->key, ((const str_index_entry_t *)b)->key);
}

int str_index_build(str_index_t *ix, const char *const *keys, size_t n)
{
    ix->count = 0;
    ix->entries = malloc((n ? n : 1) * sizeof(*ix->entries));
    if (!ix->entries)
        return TW_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        ix->entries[i] = (str_index_entry_t){keys[i], i};
    qsort(ix->entries, n, sizeof(*ix->entries), entry_cmp);
    ix->count = n;
    return 0;
}

size_t str_index_find(const str_index_t *ix, const char *key)
{
    str_index_entry_t probe = {key, 0};
    const str_index_entry_t *found =
        ix->count ? bsearch(&probe, ix->entries, ix->count, sizeof(probe), entry_cmp) : NULL;
    return found ? found->position : SIZE_MAX;
}

void str_index_fini(str_index_t *ix)
{
    free(ix->entries);
    ix->entries = NULL;
    ix->count = 0;
}
