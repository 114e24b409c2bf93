/* The doubling array growth shared by the stores, the rules loader, the matcher's keyword list
 * and the diagnostics list. */
#include <stdint.h>
#include <stdlib.h>

#include "tw_test.h"
#include "util/array.h"
#include "util/err.h"

TW_TEST(growth_doubles_from_the_minimum_and_keeps_the_contents)
{
    int *a = NULL;
    size_t cap = 0;
    int rc = 0;
    a = tw_array_grow(a, &cap, 1, sizeof(*a), 4, &rc);
    TW_ASSERT(a != NULL);
    TW_ASSERT_INT_EQ(rc, 0);
    TW_ASSERT_INT_EQ(cap, 4);
    for (int i = 0; i < 4; i++)
        a[i] = i;
    int *same = tw_array_grow(a, &cap, 4, sizeof(*a), 4, &rc);
    TW_ASSERT(same == a); /* room enough: untouched */
    TW_ASSERT_INT_EQ(cap, 4);
    a = tw_array_grow(a, &cap, 5, sizeof(*a), 4, &rc);
    TW_ASSERT_INT_EQ(cap, 8);
    a = tw_array_grow(a, &cap, 33, sizeof(*a), 4, &rc);
    TW_ASSERT_INT_EQ(cap, 64);
    TW_ASSERT_INT_EQ(rc, 0);
    for (int i = 0; i < 4; i++)
        TW_ASSERT_INT_EQ(a[i], i);
    free(a);
}

TW_TEST(an_impossible_size_fails_and_leaves_the_array_alone)
{
    int rc = 0;
    size_t cap = 4;
    int *a = malloc(cap * sizeof(*a));
    TW_ASSERT(a != NULL);
    int *b = tw_array_grow(a, &cap, SIZE_MAX / 2, sizeof(*a), 4, &rc);
    TW_ASSERT(b == a);
    TW_ASSERT_INT_EQ(cap, 4);
    TW_ASSERT_INT_EQ(rc, TW_ERR_NOMEM);
    /* a later success does not clear an earlier failure: one check covers a row of calls */
    a = tw_array_grow(a, &cap, 5, sizeof(*a), 4, &rc);
    TW_ASSERT_INT_EQ(cap, 8);
    TW_ASSERT_INT_EQ(rc, TW_ERR_NOMEM);
    free(a);
}

int main(void)
{
    TW_RUN(TW_CASE(growth_doubles_from_the_minimum_and_keeps_the_contents),
           TW_CASE(an_impossible_size_fails_and_leaves_the_array_alone));
}
