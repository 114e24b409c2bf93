/* The bump arena that holds a batch's parsed posts (worker/pipeline, decode/post.c). */
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tw_test.h"
#include "util/arena.h"

TW_TEST(blocks_are_aligned_distinct_and_owned)
{
    arena_t a;
    arena_init(&a);
    char *prev = NULL;
    for (size_t size = 0; size < 300; size++) {
        char *p = arena_alloc(&a, size);
        TW_ASSERT(p != NULL);
        TW_ASSERT_INT_EQ((uintptr_t)p % alignof(max_align_t), 0);
        TW_ASSERT(p != prev);
        TW_ASSERT(arena_owns(&a, p));
        memset(p, 0xab, size); /* ASan: the whole block is usable */
        prev = p;
    }
    int outside = 0;
    TW_ASSERT(!arena_owns(&a, &outside));
    arena_fini(&a);
}

TW_TEST(a_block_larger_than_a_chunk_gets_its_own_and_the_current_chunk_stays)
{
    arena_t a;
    arena_init(&a);
    char *small = arena_alloc(&a, 100);
    char *big = arena_alloc(&a, 3 * ARENA_CHUNK_BYTES);
    char *next = arena_alloc(&a, 100);
    TW_ASSERT(small && big && next);
    memset(big, 1, 3 * ARENA_CHUNK_BYTES);
    TW_ASSERT(arena_owns(&a, big + 3 * ARENA_CHUNK_BYTES - 1));
    /* the small blocks share the first chunk: the big one did not take its place */
    TW_ASSERT(next > small && next < small + ARENA_CHUNK_BYTES);
    arena_fini(&a);
}

TW_TEST(reset_frees_everything_and_keeps_a_bounded_set_of_chunks)
{
    arena_t a;
    arena_init(&a);
    char *last = NULL;
    for (size_t i = 0; i < 2 * ARENA_KEEP_BYTES / 1000; i++)
        TW_ASSERT((last = arena_alloc(&a, 1000)) != NULL);
    char *big = arena_alloc(&a, 2 * ARENA_CHUNK_BYTES);
    TW_ASSERT(big != NULL);
    arena_reset(&a);
    TW_ASSERT(!arena_owns(&a, big)); /* an oversized chunk is released */
    TW_ASSERT(arena_owns(&a, last)); /* the newest regular chunks are kept... */
    char *again = arena_alloc(&a, 10);
    TW_ASSERT(arena_owns(&a, again));
    TW_ASSERT(again <= last && last < again + ARENA_CHUNK_BYTES); /* ...and reused first */
    arena_reset(&a);
    arena_reset(&a); /* twice is harmless */
    arena_fini(&a);
    arena_fini(&a); /* and so is fini after fini */
}

int main(void)
{
    TW_RUN(TW_CASE(blocks_are_aligned_distinct_and_owned),
           TW_CASE(a_block_larger_than_a_chunk_gets_its_own_and_the_current_chunk_stays),
           TW_CASE(reset_frees_everything_and_keeps_a_bounded_set_of_chunks));
}
