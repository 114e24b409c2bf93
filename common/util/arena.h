/* A bump allocator for memory that dies all at once: a batch's parsed posts. Allocation is a
 * pointer increment in the newest chunk, freeing one block is nothing, arena_reset frees
 * everything and keeps the chunks for the next batch. One thread at a time. */
#ifndef TW_ARENA_H
#define TW_ARENA_H

#include <stdbool.h>
#include <stddef.h>

typedef struct arena_chunk arena_chunk_t;

typedef struct {
    arena_chunk_t *chunks; /* newest first; allocation happens in the first */
    size_t used;           /* bytes bumped in the first chunk */
} arena_t;

void arena_init(arena_t *a);
void arena_fini(arena_t *a);
/* size bytes aligned for any type, or NULL when out of memory. */
void *arena_alloc(arena_t *a, size_t size);
/* Whether p points into one of a's chunks (a block arena_alloc returned). */
bool arena_owns(const arena_t *a, const void *p);
/* Every block is gone; the chunks stay, up to about ARENA_KEEP_BYTES of them. */
void arena_reset(arena_t *a);

#define ARENA_CHUNK_BYTES (256u * 1024u)
#define ARENA_KEEP_BYTES  (4u * 1024u * 1024u)

#endif
