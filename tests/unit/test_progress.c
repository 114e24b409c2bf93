/* The progress line's text (progress_format): counts, rate, size and ETA for given figures. */
#include <unistd.h>

#include "tw_test.h"
#include "util/progress.h"

static const uint64_t MiB = 1024 * 1024;

TW_TEST(file_of_known_size_shows_share_and_eta)
{
    char line[256];
    /* 10 MiB of 100 read in 2 s: 90 MiB left at 5 MiB/s is 18 s */
    size_t len = progress_format(line, sizeof(line), 12345, 10 * MiB, 100 * MiB, 2.0);
    TW_ASSERT_STR_EQ(line, "12,345 posts  6,173 posts/s  10.0 MiB / 100.0 MiB (10%)  ETA 0:18");
    TW_ASSERT_INT_EQ(len, strlen(line));
}

TW_TEST(pipe_has_no_size_and_no_eta)
{
    char line[256];
    progress_format(line, sizeof(line), 999, 1536, 0, 0.5);
    TW_ASSERT_STR_EQ(line, "999 posts  1,998 posts/s  1.5 KiB read");
    progress_format(line, sizeof(line), 3, 200, 0, 1.0);
    TW_ASSERT_STR_EQ(line, "3 posts  3 posts/s  200 B read");
}

TW_TEST(too_early_for_a_rate)
{
    char line[256];
    progress_format(line, sizeof(line), 500, 4096, 8192, 0.05);
    TW_ASSERT_STR_EQ(line, "500 posts  - posts/s  4.0 KiB / 8.0 KiB (50%)  ETA -");
}

TW_TEST(long_eta_has_hours)
{
    char line[256];
    /* 1 KiB a second, 7200 KiB left */
    progress_format(line, sizeof(line), 1000000, 1024, 7201 * 1024, 1.0);
    TW_ASSERT_STR_EQ(line,
                     "1,000,000 posts  1,000,000 posts/s  1.0 KiB / 7.0 MiB (0%)  ETA 2:00:00");
}

TW_TEST(grown_file_stays_at_100_percent)
{
    char line[256];
    progress_format(line, sizeof(line), 10, 3 * MiB, 2 * MiB, 1.0);
    TW_ASSERT_STR_EQ(line, "10 posts  10 posts/s  3.0 MiB / 2.0 MiB (100%)  ETA 0:00");
}

TW_TEST(small_buffer_is_cut_and_terminated)
{
    char line[10];
    size_t len = progress_format(line, sizeof(line), 1234567, 0, 0, 1.0);
    TW_ASSERT_INT_EQ(len, 9);
    TW_ASSERT_STR_EQ(line, "1,234,567");
    TW_ASSERT_INT_EQ(progress_format(line, 0, 1, 1, 1, 1.0), 0);
}

TW_TEST(inactive_without_a_terminal)
{
    /* ctest's stderr is a pipe: the progress never draws there */
    progress_t p;
    progress_start(&p, stdin);
    if (isatty(2))
        TW_SKIP("stderr is a terminal here; tests/cli/test_terminal.py covers that case");
    TW_ASSERT(!p.active);
    progress_update(&p, 1, 1);
    TW_ASSERT(!p.shown);
    progress_finish(&p);
}

int main(void)
{
    TW_RUN(TW_CASE(file_of_known_size_shows_share_and_eta), TW_CASE(pipe_has_no_size_and_no_eta),
           TW_CASE(too_early_for_a_rate), TW_CASE(long_eta_has_hours),
           TW_CASE(grown_file_stays_at_100_percent), TW_CASE(small_buffer_is_cut_and_terminated),
           TW_CASE(inactive_without_a_terminal));
}
