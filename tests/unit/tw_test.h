/* A tiny single-header unit test framework: TW_TEST(name) defines a test, TW_RUN() in main
 * runs them; assertion failures print both values and the location. A test that cannot run
 * (a server not installed, data absent) calls TW_SKIP(reason): the executable then exits 77,
 * which ctest reports as skipped (SKIP_RETURN_CODE), never as passed; with CI=true in the
 * environment a skip fails the executable instead, so CI cannot go green on tests that did
 * not run. */
#ifndef TW_TEST_H
#define TW_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef void (*tw_test_fn)(void);
typedef struct {
    const char *name;
    tw_test_fn fn;
} tw_test_case_t;

static int tw_test_failures;
static int tw_test_current_failed;
static int tw_test_current_skipped;

/* CI=true (or 1, yes, on): the same spellings the Python tests accept. */
static inline int tw_test_in_ci(void)
{
    const char *ci = getenv("CI");
    if (!ci)
        return 0;
    static const char *const yes[] = {"1", "true", "TRUE", "True", "yes", "on"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        if (strcmp(ci, yes[i]) == 0)
            return 1;
    return 0;
}

/* The large real data set (../shared/data next to the repository): TW_SHARED_DATA_DIR in the
 * environment overrides the build's default, so a run can point elsewhere or at nothing. */
static inline const char *tw_shared_data_path(const char *relative)
{
    static char path[4096];
    const char *dir = getenv("TW_SHARED_DATA_DIR");
#ifdef TW_SHARED_DATA_DIR
    if (!dir || !*dir)
        dir = TW_SHARED_DATA_DIR;
#endif
    if (dir && *dir) {
        snprintf(path, sizeof(path), "%s/%s", dir, relative);
        if (access(path, R_OK) == 0)
            return path;
    }
    /* The core suite runs on a clone alone: a small licensed sample of the shared set is
     * committed (tests/fixtures/shared-sample/README.md). */
#ifdef TW_FIXTURES_DIR
    snprintf(path, sizeof(path), "%s/shared-sample/%s", TW_FIXTURES_DIR, relative);
#else
    snprintf(path, sizeof(path), "/nonexistent-shared-data/%s", relative);
#endif
    return path;
}

#define TW_FAIL(...)                                                                               \
    do {                                                                                           \
        fprintf(stderr, "  FAIL %s:%d: ", __FILE__, __LINE__);                                     \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        tw_test_current_failed = 1;                                                                \
        return;                                                                                    \
    } while (0)

/* Ends the current test as skipped, saying why (a printf format). */
#define TW_SKIP(...)                                                                               \
    do {                                                                                           \
        fprintf(stderr, "  SKIPPED: ");                                                            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        tw_test_current_skipped = 1;                                                               \
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
        size_t tw_passed_ = 0, tw_skipped_ = 0;                                                    \
        for (size_t tw_i_ = 0; tw_i_ < tw_n_; tw_i_++) {                                           \
            tw_test_current_failed = 0;                                                            \
            tw_test_current_skipped = 0;                                                           \
            tw_cases_[tw_i_].fn();                                                                 \
            const char *tw_status_ = tw_test_current_failed    ? "FAIL"                            \
                                     : tw_test_current_skipped ? "skip"                            \
                                                               : "ok  ";                           \
            fprintf(stderr, "%s %s\n", tw_status_, tw_cases_[tw_i_].name);                         \
            if (tw_test_current_failed)                                                            \
                tw_test_failures++;                                                                \
            else if (tw_test_current_skipped)                                                      \
                tw_skipped_++;                                                                     \
            else                                                                                   \
                tw_passed_++;                                                                      \
        }                                                                                          \
        fprintf(stderr, "%zu passed, %d failed, %zu skipped\n", tw_passed_, tw_test_failures,      \
                tw_skipped_);                                                                      \
        if (tw_test_failures)                                                                      \
            return 1;                                                                              \
        if (tw_skipped_ && tw_test_in_ci()) {                                                      \
            fprintf(stderr, "FAIL: %zu test(s) skipped with CI=true; CI must run every test\n",    \
                    tw_skipped_);                                                                  \
            return 1;                                                                              \
        }                                                                                          \
        return tw_skipped_ ? 77 : 0;                                                               \
    } while (0)

#define TW_CASE(fn)                                                                                \
    {                                                                                              \
#fn, fn                                                                                    \
    }

#endif
