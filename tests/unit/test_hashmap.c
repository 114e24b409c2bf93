/* The open-addressing map shared by the memory duplicate store and the rules loader. */
#include "tw_test.h"
#include "util/hashmap.h"

TW_TEST(an_empty_map_finds_nothing)
{
    u64map_t m = {0};
    TW_ASSERT(u64map_get(&m, 1) == NULL);
    TW_ASSERT(u64map_get(&m, 0) == NULL);
    TW_ASSERT_INT_EQ(u64map_init(&m, 8), 0);
    TW_ASSERT(u64map_get(&m, 42) == NULL);
    u64map_fini(&m);
}

TW_TEST(put_keeps_the_first_value)
{
    u64map_t m = {0};
    bool inserted;
    uint64_t *v = u64map_put(&m, 7, 70, &inserted);
    TW_ASSERT(v && inserted && *v == 70);
    v = u64map_put(&m, 7, 71, &inserted);
    TW_ASSERT(v && !inserted);
    TW_ASSERT_INT_EQ(*v, 70);
    *v = 72; /* the slot is writable */
    TW_ASSERT_INT_EQ(*u64map_get(&m, 7), 72);
    TW_ASSERT_INT_EQ(m.count, 1);
    u64map_fini(&m);
}

TW_TEST(key_zero_is_stored_as_the_reserved_key)
{
    u64map_t m = {0};
    bool inserted;
    TW_ASSERT(u64map_put(&m, 0, 5, &inserted) && inserted);
    TW_ASSERT(u64map_get(&m, 0) && *u64map_get(&m, 0) == 5);
    /* The documented aliasing: both name the same entry. */
    TW_ASSERT(u64map_get(&m, U64MAP_ZERO_KEY) && *u64map_get(&m, U64MAP_ZERO_KEY) == 5);
    u64map_fini(&m);
}

TW_TEST(grows_and_keeps_every_entry)
{
    u64map_t m;
    TW_ASSERT_INT_EQ(u64map_init(&m, 16), 0);
    bool inserted;
    /* Sequential keys and keys that share their low bits both spread. */
    for (uint64_t k = 1; k <= 20000; k++) {
        if (!u64map_put(&m, k, k * 3, &inserted) || !inserted)
            TW_FAIL("put %llu", (unsigned long long)k);
        if (!u64map_put(&m, k << 40, k, &inserted) || !inserted)
            TW_FAIL("put %llu << 40", (unsigned long long)k);
    }
    TW_ASSERT_INT_EQ(m.count, 40000);
    TW_ASSERT(m.cap >= 40000 * 4 / 3);
    TW_ASSERT_INT_EQ(m.cap & (m.cap - 1), 0);
    for (uint64_t k = 1; k <= 20000; k++) {
        uint64_t *v = u64map_get(&m, k), *w = u64map_get(&m, k << 40);
        if (!v || *v != k * 3 || !w || *w != k)
            TW_FAIL("lost %llu", (unsigned long long)k);
    }
    TW_ASSERT(u64map_get(&m, 20001) == NULL);
    size_t seen = 0;
    for (size_t i = 0; i < m.cap; i++)
        seen += m.keys[i] != 0;
    TW_ASSERT_INT_EQ(seen, 40000);
    u64map_fini(&m);
    TW_ASSERT(m.cap == 0 && m.keys == NULL);
}

int main(void)
{
    TW_RUN(TW_CASE(an_empty_map_finds_nothing), TW_CASE(put_keeps_the_first_value),
           TW_CASE(key_zero_is_stored_as_the_reserved_key), TW_CASE(grows_and_keeps_every_entry));
}
