#include "util/hashmap.h"

#include <stdlib.h>
#include <string.h>

#include "util/err.h"

static uint64_t u64map_nonzero_key(uint64_t k)
{
    return k ? k : U64MAP_ZERO_KEY;
}

int u64map_init(u64map_t *m, size_t cap)
{
    memset(m, 0, sizeof(*m));
    if (cap == 0)
        return 0;
    m->keys = calloc(cap, sizeof(uint64_t));
    m->values = calloc(cap, sizeof(uint64_t));
    if (!m->keys || !m->values) {
        free(m->keys);
        free(m->values);
        memset(m, 0, sizeof(*m));
        return TW_ERR_NOMEM;
    }
    m->cap = cap;
    return 0;
}

void u64map_fini(u64map_t *m)
{
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof(*m));
}

static size_t u64map_slot(const u64map_t *m, uint64_t key)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 17) & mask;
    while (m->keys[i] && m->keys[i] != key)
        i = (i + 1) & mask;
    return i;
}

uint64_t *u64map_get(const u64map_t *m, uint64_t key)
{
    if (!m->cap)
        return NULL;
    size_t i = u64map_slot(m, u64map_nonzero_key(key));
    return m->keys[i] ? &m->values[i] : NULL;
}

static int u64map_grow(u64map_t *m)
{
    u64map_t bigger;
    if (u64map_init(&bigger, m->cap ? m->cap * 2 : 16) != 0)
        return TW_ERR_NOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i]) {
            size_t j = u64map_slot(&bigger, m->keys[i]);
            bigger.keys[j] = m->keys[i];
            bigger.values[j] = m->values[i];
            bigger.count++;
        }
    }
    u64map_fini(m);
    *m = bigger;
    return 0;
}

uint64_t *u64map_put(u64map_t *m, uint64_t key, uint64_t value, bool *inserted)
{
    key = u64map_nonzero_key(key);
    /* Load factor at most 3/4: linear probing degrades quickly above that. */
    if ((m->count + 1) * 4 > m->cap * 3 && u64map_grow(m) != 0)
        return NULL;
    size_t i = u64map_slot(m, key);
    *inserted = !m->keys[i];
    if (*inserted) {
        m->keys[i] = key;
        m->values[i] = value;
        m->count++;
    }
    return &m->values[i];
}
