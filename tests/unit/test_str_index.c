/* The sorted string index shared by metrics (counts carried over a reload) and rules diff. */
#include <stdint.h>

#include "tw_test.h"
#include "util/str_index.h"

TW_TEST(finds_every_key_and_nothing_else)
{
    const char *keys[] = {"spam.b", "scam.a", "zeta", "alpha", "mid"};
    str_index_t ix;
    TW_ASSERT_INT_EQ(str_index_build(&ix, keys, 5), 0);
    for (size_t i = 0; i < 5; i++)
        TW_ASSERT_INT_EQ(str_index_find(&ix, keys[i]), i);
    TW_ASSERT(str_index_find(&ix, "spam") == SIZE_MAX);
    TW_ASSERT(str_index_find(&ix, "") == SIZE_MAX);
    str_index_fini(&ix);
    TW_ASSERT_INT_EQ(str_index_build(&ix, keys, 0), 0); /* empty: finds nothing */
    TW_ASSERT(str_index_find(&ix, "alpha") == SIZE_MAX);
    str_index_fini(&ix);
}

int main(void)
{
    TW_RUN(TW_CASE(finds_every_key_and_nothing_else));
}
