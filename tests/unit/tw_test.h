/* A tiny single-header unit test framework: TW_TEST(name) defines a test, TW_RUN() in main
 * runs them; assertion failures print both values and the location. */
#ifndef TW_TEST_H
#define TW_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*tw_test_fn)(void);
typedef struct {
    const char *name;
    tw_test_fn fn;
} tw_test_case_t;

static int tw_test_failures;
static int tw_test_current_failed;

#define TW_FAIL(...)                                                                               \
    do {                                                                                           \
        fprintf(stderr, "  FAIL %s:%d: ", __FILE__, __LINE__);                                     \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        tw_test_current_failed = 1;                                                                \
        return;                                                                                    \
    } while (0)

#define TW_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            TW_FAIL("assertion failed: %s", #cond);                                                \
    } while (0)

#define TW_ASSERT_INT_EQ(a, b)                                                                     \
    do {                                                                                           \
        long long tw_a_ = (long long)(a), tw_b_ = (long long)(b);                                  \
        if (tw_a_ != tw_b_)                                                                        \
            TW_FAIL("%s == %s: %lld != %lld", #a, #b, tw_a_, tw_b_);                               \
    } while (0)

#define TW_ASSERT_STR_EQ(a, b)                                                                     \
    do {                                                                                           \
        const char *tw_a_ = (a), *tw_b_ = (b);                                                     \
        if (!tw_a_ || !tw_b_ || strcmp(tw_a_, tw_b_) != 0)                                         \
            TW_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, tw_a_ ? tw_a_ : "(null)",                \
                    tw_b_ ? tw_b_ : "(null)");                                                     \
    } while (0)

#define TW_ASSERT_MEM_EQ(a, alen, b, blen)                                                         \
    do {                                                                                           \
        size_t tw_al_ = (alen), tw_bl_ = (blen);                                                   \
        if (tw_al_ != tw_bl_ || memcmp((a), (b), tw_al_) != 0)                                     \
            TW_FAIL("%s == %s: \"%.*s\" != \"%.*s\"", #a, #b, (int)tw_al_, (const char *)(a),      \
                    (int)tw_bl_, (const char *)(b));                                               \
    } while (0)

#define TW_TEST(name) static void name(void)

#define TW_RUN(...)                                                                                \
    do {                                                                                           \
        tw_test_case_t tw_cases_[] = {__VA_ARGS__};                                                \
        size_t tw_n_ = sizeof(tw_cases_) / sizeof(tw_cases_[0]);                                   \
        size_t tw_passed_ = 0;                                                                     \
        for (size_t tw_i_ = 0; tw_i_ < tw_n_; tw_i_++) {                                           \
            tw_test_current_failed = 0;                                                            \
            tw_cases_[tw_i_].fn();                                                                 \
            fprintf(stderr, "%s %s\n", tw_test_current_failed ? "FAIL" : "ok  ",                   \
                    tw_cases_[tw_i_].name);                                                        \
            if (tw_test_current_failed)                                                            \
                tw_test_failures++;                                                                \
            else                                                                                   \
                tw_passed_++;                                                                      \
        }                                                                                          \
        fprintf(stderr, "%zu passed, %d failed\n", tw_passed_, tw_test_failures);                  \
        return tw_test_failures ? 1 : 0;                                                           \
    } while (0)

#define TW_CASE(fn)                                                                                \
    {                                                                                              \
#fn, fn                                                                                    \
    }

#endif
