/* The one UTF-8 decoder: strict by default, U+FFFD on request. */
#include "tw_test.h"
#include "util/utf8.h"

static int32_t decode(const char *s, size_t len, size_t *n)
{
    const unsigned char *p = (const unsigned char *)s;
    return utf8_decode(p, p + len, n);
}

TW_TEST(decodes_each_length)
{
    size_t n;
    TW_ASSERT_INT_EQ(decode("a", 1, &n), 'a');
    TW_ASSERT_INT_EQ(n, 1);
    TW_ASSERT_INT_EQ(decode("\xC3\xA9", 2, &n), 0xE9);
    TW_ASSERT_INT_EQ(n, 2);
    TW_ASSERT_INT_EQ(decode("\xE2\x82\xAC", 3, &n), 0x20AC);
    TW_ASSERT_INT_EQ(n, 3);
    TW_ASSERT_INT_EQ(decode("\xF0\x9F\x98\x80", 4, &n), 0x1F600);
    TW_ASSERT_INT_EQ(n, 4);
    TW_ASSERT_INT_EQ(decode("\xF4\x8F\xBF\xBF", 4, &n), 0x10FFFF);
    TW_ASSERT_INT_EQ(decode("\xEF\xBF\xBD", 3, &n), 0xFFFD);
    TW_ASSERT_INT_EQ(decode("\xED\x9F\xBF", 3, &n), 0xD7FF); /* just below the surrogates */
    TW_ASSERT_INT_EQ(decode("\xEE\x80\x80", 3, &n), 0xE000); /* just above */
    TW_ASSERT_INT_EQ(decode("\0", 1, &n), 0);
}

TW_TEST(refuses_overlongs)
{
    static const char *const bad[] = {"\xC0\x80",     "\xC1\xBF",         "\xE0\x80\x80",
                                      "\xE0\x9F\xBF", "\xF0\x80\x80\x80", "\xF0\x8F\xBF\xBF"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = 99;
        if (decode(bad[i], strlen(bad[i]), &n) != -1 || n != 1)
            TW_FAIL("overlong %zu accepted (n %zu)", i, n);
    }
}

TW_TEST(refuses_surrogates_and_beyond_u10ffff)
{
    static const char *const bad[] = {"\xED\xA0\x80",     "\xED\xBF\xBF", "\xF4\x90\x80\x80",
                                      "\xF5\x80\x80\x80", "\xFF",         "\xFE"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = 99;
        if (decode(bad[i], strlen(bad[i]), &n) != -1 || n != 1)
            TW_FAIL("bad sequence %zu accepted (n %zu)", i, n);
    }
}

TW_TEST(refuses_truncation_and_stray_continuations)
{
    size_t n;
    TW_ASSERT_INT_EQ(decode("\xE2\x82\xAC", 2, &n), -1); /* cut short by end */
    TW_ASSERT_INT_EQ(decode("\xF0\x9F\x98\x80", 3, &n), -1);
    TW_ASSERT_INT_EQ(decode("\xC3", 1, &n), -1);
    TW_ASSERT_INT_EQ(decode("\xC3"
                            "a",
                            2, &n),
                     -1); /* continuation missing */
    TW_ASSERT_INT_EQ(decode("\xE2\x82"
                            "a",
                            3, &n),
                     -1);
    TW_ASSERT_INT_EQ(decode("\x80", 1, &n), -1);
    TW_ASSERT_INT_EQ(decode("\xBF", 1, &n), -1);
    TW_ASSERT_INT_EQ(n, 1);
}

TW_TEST(replacement_mode_reads_bad_bytes_as_u_fffd_one_byte_long)
{
    const unsigned char s[] = "\xC0\x80"
                              "a\xED\xA0\x80\xE2\x82\xAC";
    const unsigned char *p = s, *end = s + sizeof(s) - 1;
    int32_t want[] = {0xFFFD, 0xFFFD, 'a', 0xFFFD, 0xFFFD, 0xFFFD, 0x20AC};
    size_t k = 0;
    while (p < end) {
        size_t n;
        int32_t cp = utf8_decode_or_replacement(p, end, &n);
        TW_ASSERT(k < sizeof(want) / sizeof(want[0]));
        TW_ASSERT_INT_EQ(cp, want[k]);
        k++;
        p += n;
    }
    TW_ASSERT_INT_EQ(k, sizeof(want) / sizeof(want[0]));
}

TW_TEST(validation_follows_the_decoder)
{
    TW_ASSERT(utf8_is_valid(NULL, 0));
    TW_ASSERT(utf8_is_valid("plain ascii text, longer than eight bytes", 41 /* its strlen */));
    TW_ASSERT(utf8_is_valid("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", 14));
    TW_ASSERT(!utf8_is_valid("abcdefgh\xC0\x80", 10));
    TW_ASSERT(!utf8_is_valid("abcdefgh\xED\xA0\x80", 11));
    TW_ASSERT(!utf8_is_valid("abcdefgh\xE2\x82", 10));
    /* Encode then decode every scalar value. */
    for (int32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        unsigned char buf[4];
        size_t len = utf8_encode(cp, buf), n;
        if (utf8_decode(buf, buf + len, &n) != cp || n != len)
            TW_FAIL("round trip of U+%04X", (unsigned)cp);
    }
}

int main(void)
{
    TW_RUN(TW_CASE(decodes_each_length), TW_CASE(refuses_overlongs),
           TW_CASE(refuses_surrogates_and_beyond_u10ffff),
           TW_CASE(refuses_truncation_and_stray_continuations),
           TW_CASE(replacement_mode_reads_bad_bytes_as_u_fffd_one_byte_long),
           TW_CASE(validation_follows_the_decoder));
}
