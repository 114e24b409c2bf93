/* Open-addressing hash map from a 64-bit key to a 64-bit value: the one table behind the
 * memory duplicate store and the rules loader's id index. Keys are usually hashes already;
 * the map scrambles them once more (Fibonacci hashing), so sequential keys spread too. */
#ifndef TW_HASHMAP_H
#define TW_HASHMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Linear probing over two parallel arrays. A stored key of 0 marks a free slot, so key 0 is
 * stored as U64MAP_ZERO_KEY (the two then name the same entry). There is no removal: callers
 * that expire entries rebuild a smaller map, which also keeps probe chains short. Iterate
 * with `for (i < cap) if (keys[i])`. A zeroed struct is an empty map. */
typedef struct {
    uint64_t *keys;
    uint64_t *values;
    size_t cap; /* 0 or a power of two */
    size_t count;
} u64map_t;

#define U64MAP_ZERO_KEY 0x9e3779b97f4a7c15ULL

/* cap: a power of two (0 allowed). TW_ERR_NOMEM leaves *m empty. */
int u64map_init(u64map_t *m, size_t cap);
void u64map_fini(u64map_t *m);

/* The value slot of key, or NULL when absent. */
uint64_t *u64map_get(const u64map_t *m, uint64_t key);

/* Inserts key -> value unless key is present; returns its value slot (the old value when it
 * was present) and whether it was new, or NULL when growing ran out of memory. Slots stay
 * valid until the next put. */
uint64_t *u64map_put(u64map_t *m, uint64_t key, uint64_t value, bool *inserted);

#endif
