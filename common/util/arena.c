#include "util/arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>

struct arena_chunk {
    arena_chunk_t *next;
    size_t size; /* bytes of data */
    alignas(max_align_t) unsigned char data[];
};

void arena_init(arena_t *a)
{
    a->chunks = NULL;
    a->used = 0;
}

void arena_fini(arena_t *a)
{
    while (a->chunks) {
        arena_chunk_t *next = a->chunks->next;
        free(a->chunks);
        a->chunks = next;
    }
    arena_init(a);
}

static size_t arena_align(size_t n)
{
    size_t align = alignof(max_align_t);
    return (n + align - 1) & ~(align - 1);
}

void *arena_alloc(arena_t *a, size_t size)
{
    size_t need = arena_align(size ? size : 1);
    if (need < size)
        return NULL; /* overflow */
    if (a->chunks && a->chunks->size - a->used >= need) {
        void *p = a->chunks->data + a->used;
        a->used += need;
        return p;
    }
    /* A block larger than a chunk gets a chunk of its own, placed behind the current one
     * so that the current chunk's free space is not lost. */
    size_t size_data = need > ARENA_CHUNK_BYTES ? need : ARENA_CHUNK_BYTES;
    if (size_data > SIZE_MAX - sizeof(arena_chunk_t))
        return NULL;
    arena_chunk_t *c = malloc(sizeof(*c) + size_data);
    if (!c)
        return NULL;
    c->size = size_data;
    if (need > ARENA_CHUNK_BYTES && a->chunks) {
        c->next = a->chunks->next;
        a->chunks->next = c;
    } else {
        c->next = a->chunks;
        a->chunks = c;
        a->used = need;
    }
    return c->data;
}

bool arena_owns(const arena_t *a, const void *p)
{
    uintptr_t at = (uintptr_t)p;
    for (const arena_chunk_t *c = a->chunks; c; c = c->next)
        if (at >= (uintptr_t)c->data && at < (uintptr_t)c->data + c->size)
            return true;
    return false;
}

void arena_reset(arena_t *a)
{
    /* Keep chunks while they fit the budget (the newest first: the sizes a batch needed
     * lately), release the rest, so a burst of large posts does not pin its memory. */
    arena_chunk_t *kept = NULL, **tail = &kept;
    size_t bytes = 0;
    for (arena_chunk_t *c = a->chunks, *next; c; c = next) {
        next = c->next;
        if (c->size == ARENA_CHUNK_BYTES && bytes + c->size <= ARENA_KEEP_BYTES) {
            bytes += c->size;
            *tail = c;
            tail = &c->next;
        } else {
            free(c);
        }
    }
    *tail = NULL;
    a->chunks = kept;
    a->used = 0;
}
