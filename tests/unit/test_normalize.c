/* Unit tests for common/normalize.c: NFKC + case folding, ignorables, whitespace, the offset
 * map, UTF-8 validation, and agreement with utf8proc_map() on the whole string. */
#include "normalize/normalize.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "util/err.h"
#include "tw_test.h"

/* The options normalize.c applies, for the reference implementation below. */
#define REF_OPTIONS                                                                                \
    ((utf8proc_option_t)(UTF8PROC_COMPAT | UTF8PROC_CASEFOLD | UTF8PROC_COMPOSE | UTF8PROC_IGNORE))

/* Whole-string reference: every format character (gc=Cf) and the unassigned default-ignorables
 * (U+2065, U+FFF0..FFF8, U+E0000..E0FFF) dropped like the assigned ones, utf8proc_map()
 * for the text, then whitespace (Zs, Zl, Zp, Cc) collapsed and trimmed, as the module
 * documents. Returns a malloc'ed string; *out_len its length. */
static char *ref_normalize(const char *src, size_t len, size_t *out_len)
{
    char *out = malloc(len * 18 * 4 + 16);
    char *in = malloc(len + 1);
    size_t o = 0, in_len = 0;
    *out_len = 0;
    if (!out || !in) {
        free(out);
        free(in);
        return NULL;
    }
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)src + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0) { /* invalid: let utf8proc_map() below refuse it */
            in[in_len++] = src[i++];
            continue;
        }
        bool drop = utf8proc_category(cp) == UTF8PROC_CATEGORY_CF || cp == 0x2065 ||
                    (cp >= 0xFFF0 && cp <= 0xFFF8) || (cp >= 0xE0000 && cp <= 0xE0FFF);
        if (!drop) {
            memcpy(in + in_len, src + i, (size_t)k);
            in_len += (size_t)k;
        }
        i += (size_t)k;
    }
    if (in_len == 0) {
        free(in);
        out[0] = '\0';
        return out;
    }
    utf8proc_uint8_t *mapped = NULL;
    utf8proc_ssize_t n =
        utf8proc_map((const utf8proc_uint8_t *)in, (utf8proc_ssize_t)in_len, &mapped, REF_OPTIONS);
    free(in);
    if (n < 0) {
        free(out);
        return NULL;
    }
    bool pending = false;
    for (utf8proc_ssize_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(mapped + i, n - i, &cp);
        if (k <= 0)
            break;
        utf8proc_category_t cat = utf8proc_category(cp);
        if (cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL ||
            cat == UTF8PROC_CATEGORY_ZP || cat == UTF8PROC_CATEGORY_CC) {
            pending = true;
        } else {
            if (pending && o > 0)
                out[o++] = ' ';
            pending = false;
            memcpy(out + o, mapped + i, (size_t)k);
            o += (size_t)k;
        }
        i += k;
    }
    free(mapped);
    out[o] = '\0';
    *out_len = o;
    return out;
}

/* Reference validator: utf8proc_iterate() rejects overlongs, surrogates and > U+10FFFF. */
static bool ref_utf8_valid(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0)
            return false;
        i += (size_t)k;
    }
    return true;
}

static size_t encode_cp(int32_t cp, char *out)
{
    return (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)out);
}

/* Checks the offset-map invariants; returns a description of the first violation or NULL. */
static const char *check_map(const normalized_t *norm, size_t src_len)
{
    if (norm->text[norm->len] != '\0')
        return "text not NUL-terminated";
    if (strlen(norm->text) != norm->len)
        return "NUL inside text";
    if (norm->len > 0 && (norm->text[0] == ' ' || norm->text[norm->len - 1] == ' '))
        return "leading or trailing space";
    if (strstr(norm->text, "  "))
        return "double space";
    if (norm->cap > 0 &&
        (norm->src_start[norm->len] != src_len || norm->src_end[norm->len] != src_len))
        return "sentinel is not the original length";
    for (size_t i = 0; i < norm->len; i++) {
        if (norm->src_start[i] >= norm->src_end[i])
            return "empty or inverted source range";
        if (norm->src_end[i] > src_len)
            return "source range past the input";
        if (i > 0 && (norm->src_start[i] < norm->src_start[i - 1] ||
                      norm->src_end[i] < norm->src_end[i - 1]))
            return "source offsets decrease";
    }
    return NULL;
}

/* Normalizes and compares with the whole-string reference and the map invariants. */
static const char *check_against_ref(normalized_t *norm, const char *src, size_t len)
{
    static char why[256];
    int rc = normalize_text(src, len, norm);
    if (rc != 0) {
        snprintf(why, sizeof(why), "normalize_text failed: %s", tw_err_name(rc));
        return why;
    }
    size_t ref_len;
    char *ref = ref_normalize(src, len, &ref_len);
    if (!ref)
        return "reference failed";
    bool same = ref_len == norm->len && memcmp(ref, norm->text, ref_len) == 0;
    if (!same) {
        snprintf(why, sizeof(why), "got \"%s\" (%zu bytes), reference \"%s\" (%zu bytes)",
                 norm->text, norm->len, ref, ref_len);
        free(ref);
        return why;
    }
    free(ref);
    return check_map(norm, len);
}

#define ASSERT_SRC_SPAN(norm, start, end, want_start, want_end)                                    \
    do {                                                                                           \
        size_t s_, e_;                                                                             \
        normalized_span_to_source((norm), (start), (end), &s_, &e_);                               \
        TW_ASSERT_INT_EQ(s_, (want_start));                                                        \
        TW_ASSERT_INT_EQ(e_, (want_end));                                                          \
    } while (0)

#define NORMALIZE_OK(norm, lit)                                                                    \
    do {                                                                                           \
        int rc_ = normalize_text((lit), sizeof(lit) - 1, (norm));                                  \
        if (rc_ != 0)                                                                              \
            TW_FAIL("normalize_text(\"%s\") = %s", (lit), tw_err_name(rc_));                       \
        const char *why_ = check_map((norm), sizeof(lit) - 1);                                     \
        if (why_)                                                                                  \
            TW_FAIL("normalize_text(\"%s\"): %s", (lit), why_);                                    \
    } while (0)

TW_TEST(test_ascii_lowercase_exact_offsets)
{
    normalized_t n;
    normalized_init(&n);
    NORMALIZE_OK(&n, "Send 5 BTC Now!");
    TW_ASSERT_STR_EQ(n.text, "send 5 btc now!");
    for (size_t i = 0; i < n.len; i++) {
        TW_ASSERT_INT_EQ(n.src_start[i], i);
        TW_ASSERT_INT_EQ(n.src_end[i], i + 1);
    }
    ASSERT_SRC_SPAN(&n, 7, 10, 7, 10); /* "btc" */
    normalized_fini(&n);
}

TW_TEST(test_fullwidth)
{
    normalized_t n;
    normalized_init(&n);
    NORMALIZE_OK(&n, "\xEF\xBC\xA6\xEF\xBC\xB2\xEF\xBC\xA5\xEF\xBC\xA5"); /* ＦＲＥＥ */
    TW_ASSERT_STR_EQ(n.text, "free");
    for (size_t i = 0; i < 4; i++) {
        TW_ASSERT_INT_EQ(n.src_start[i], 3 * i);
        TW_ASSERT_INT_EQ(n.src_end[i], 3 * i + 3);
    }
    ASSERT_SRC_SPAN(&n, 0, 4, 0, 12);
    ASSERT_SRC_SPAN(&n, 1, 3, 3, 9);
    normalized_fini(&n);
}

TW_TEST(test_math_bold_letters)
{
    normalized_t n;
    normalized_init(&n);
    /* U+1D41F U+1D42B U+1D41E U+1D41E: MATHEMATICAL BOLD SMALL F R E E, 4 bytes each. */
    NORMALIZE_OK(&n, "\xF0\x9D\x90\x9F\xF0\x9D\x90\xAB\xF0\x9D\x90\x9E\xF0\x9D\x90\x9E");
    TW_ASSERT_STR_EQ(n.text, "free");
    TW_ASSERT_INT_EQ(n.src_start[3], 12);
    TW_ASSERT_INT_EQ(n.src_end[3], 16);
    /* And bold capitals U+1D405 U+1D411 U+1D404 U+1D404 fold as well. */
    NORMALIZE_OK(&n, "\xF0\x9D\x90\x85\xF0\x9D\x90\x91\xF0\x9D\x90\x84\xF0\x9D\x90\x84");
    TW_ASSERT_STR_EQ(n.text, "free");
    normalized_fini(&n);
}

TW_TEST(test_zero_width_removed)
{
    normalized_t n;
    normalized_init(&n);
    NORMALIZE_OK(&n, "fr\xE2\x80\x8B"
                     "ee"); /* U+200B inside the word */
    TW_ASSERT_STR_EQ(n.text, "free");
    ASSERT_SRC_SPAN(&n, 0, 4, 0, 7);
    TW_ASSERT_INT_EQ(n.src_start[2], 5);

    /* Every default-ignorable the design names: ZWNJ, ZWJ, WJ, BOM, soft hyphen, LRE..RLO,
     * LRI..PDI, LRM, RLM, ALM, CGJ, a variation selector and a tag character. */
    NORMALIZE_OK(&n, "a\xE2\x80\x8C"
                     "b\xE2\x80\x8D"
                     "c\xE2\x81\xA0"
                     "d\xEF\xBB\xBF"
                     "e\xC2\xAD"
                     "f\xE2\x80\xAA\xE2\x80\xAB\xE2\x80\xAC\xE2\x80\xAD\xE2\x80\xAE"
                     "g\xE2\x81\xA6\xE2\x81\xA7\xE2\x81\xA8\xE2\x81\xA9"
                     "h\xE2\x80\x8E\xE2\x80\x8F\xD8\x9C"
                     "i\xCD\x8F"
                     "j\xEF\xB8\x8F"
                     "k\xF3\xA0\x80\xA1"
                     "l\xEF\xBF\xB9"
                     "m");
    TW_ASSERT_STR_EQ(n.text, "abcdefghijklm");

    /* A word made only of ignorables between spaces leaves one space. */
    NORMALIZE_OK(&n, "a \xE2\x80\x8B b");
    TW_ASSERT_STR_EQ(n.text, "a b");
    ASSERT_SRC_SPAN(&n, 1, 2, 1, 6);
    normalized_fini(&n);
}

TW_TEST(test_sharp_s_case_fold)
{
    normalized_t n;
    normalized_init(&n);
    NORMALIZE_OK(&n, "\xC3\x9F"); /* ß */
    TW_ASSERT_STR_EQ(n.text, "ss");
    TW_ASSERT_INT_EQ(n.src_start[0], 0);
    TW_ASSERT_INT_EQ(n.src_end[0], 2);
    TW_ASSERT_INT_EQ(n.src_start[1], 0);
    TW_ASSERT_INT_EQ(n.src_end[1], 2);

    NORMALIZE_OK(&n, "Stra\xC3\x9F"
                     "e"); /* Straße: S t r a ß(4,5) e(6) */
    TW_ASSERT_STR_EQ(n.text, "strasse");
    ASSERT_SRC_SPAN(&n, 0, 7, 0, 7);
    ASSERT_SRC_SPAN(&n, 4, 6, 4, 6); /* "ss" -> ß */
    ASSERT_SRC_SPAN(&n, 5, 6, 4, 6); /* half of "ss" still points at all of ß */
    ASSERT_SRC_SPAN(&n, 6, 7, 6, 7); /* "e" */
    ASSERT_SRC_SPAN(&n, 0, 4, 0, 4); /* "stra" */

    /* Capital sharp s and other full foldings. */
    NORMALIZE_OK(&n, "\xE1\xBA\x9E"); /* U+1E9E */
    TW_ASSERT_STR_EQ(n.text, "ss");
    NORMALIZE_OK(&n, "\xEF\xAC\x81"
                     "nd"); /* U+FB01 LATIN SMALL LIGATURE FI */
    TW_ASSERT_STR_EQ(n.text, "find");
    ASSERT_SRC_SPAN(&n, 0, 2, 0, 3);
    NORMALIZE_OK(&n, "\xCE\xA3\xCE\x9F\xCE\xA6\xCE\x99\xCE\x91"); /* ΣΟΦΙΑ */
    TW_ASSERT_STR_EQ(n.text, "\xCF\x83\xCE\xBF\xCF\x86\xCE\xB9\xCE\xB1");
    normalized_fini(&n);
}

TW_TEST(test_combining_sequence_composed)
{
    normalized_t n;
    normalized_init(&n);
    NORMALIZE_OK(&n, "caf"
                     "e\xCC\x81"); /* e + U+0301 */
    TW_ASSERT_STR_EQ(n.text, "caf\xC3\xA9");
    TW_ASSERT_INT_EQ(n.len, 5);
    /* Both bytes of é map to e and the accent: original [3, 6). */
    TW_ASSERT_INT_EQ(n.src_start[3], 3);
    TW_ASSERT_INT_EQ(n.src_end[3], 6);
    TW_ASSERT_INT_EQ(n.src_start[4], 3);
    TW_ASSERT_INT_EQ(n.src_end[4], 6);
    ASSERT_SRC_SPAN(&n, 0, 3, 0, 3); /* "caf" stays exact */

    /* Precomposed input gives the same text. */
    NORMALIZE_OK(&n, "CAF\xC3\x89");
    TW_ASSERT_STR_EQ(n.text, "caf\xC3\xA9");

    /* Marks out of canonical order are reordered, then composed: a + U+0323 (below, 220) +
     * U+0302 (above, 230) in either order is U+1EAD. */
    NORMALIZE_OK(&n, "a\xCC\x82\xCC\xA3");
    TW_ASSERT_STR_EQ(n.text, "\xE1\xBA\xAD");
    TW_ASSERT_INT_EQ(n.src_end[0], 5);
    NORMALIZE_OK(&n, "a\xCC\xA3\xCC\x82");
    TW_ASSERT_STR_EQ(n.text, "\xE1\xBA\xAD");

    /* Halfwidth katakana ka + halfwidth voiced mark (a starter that decomposes to a
     * non-starter) compose across the two input characters: U+FF76 U+FF9E -> U+30AC. */
    NORMALIZE_OK(&n, "\xEF\xBD\xB6\xEF\xBE\x9E");
    TW_ASSERT_STR_EQ(n.text, "\xE3\x82\xAC");
    ASSERT_SRC_SPAN(&n, 0, 3, 0, 6);
    normalized_fini(&n);
}

TW_TEST(test_whitespace_collapse_and_trim)
{
    normalized_t n;
    normalized_init(&n);
    NORMALIZE_OK(&n, " \t\r\n free \n\n\tmoney\x0B\x0C now  ");
    TW_ASSERT_STR_EQ(n.text, "free money now");
    ASSERT_SRC_SPAN(&n, 4, 5, 9, 13); /* the space stands for " \n\n\t" */
    ASSERT_SRC_SPAN(&n, 5, 10, 13, 18);

    /* NBSP, ideographic space, em space, narrow NBSP, line separator, NEL, a C0 control. */
    NORMALIZE_OK(&n, "a\xC2\xA0"
                     "b\xE3\x80\x80"
                     "c\xE2\x80\x83"
                     "d\xE2\x80\xAF"
                     "e\xE2\x80\xA8"
                     "f\xC2\x85"
                     "g\x01h");
    TW_ASSERT_STR_EQ(n.text, "a b c d e f g h");
    ASSERT_SRC_SPAN(&n, 3, 4, 4, 7); /* U+3000 */

    NORMALIZE_OK(&n, "\xE3\x80\x80\xC2\xA0 \t");
    TW_ASSERT_STR_EQ(n.text, "");
    TW_ASSERT_INT_EQ(n.len, 0);
    ASSERT_SRC_SPAN(&n, 0, 0, 7, 7);

    NORMALIZE_OK(&n, "");
    TW_ASSERT_STR_EQ(n.text, "");
    ASSERT_SRC_SPAN(&n, 0, 0, 0, 0);
    normalized_fini(&n);
}

TW_TEST(test_span_to_source_edges)
{
    normalized_t n;
    normalized_init(&n);
    /* Before any call the struct maps everything to 0. */
    ASSERT_SRC_SPAN(&n, 0, 0, 0, 0);
    TW_ASSERT_STR_EQ(n.text, "");
    NORMALIZE_OK(&n, "  Hi  \xEF\xBC\xA1  "); /* "hi a" */
    TW_ASSERT_STR_EQ(n.text, "hi a");
    ASSERT_SRC_SPAN(&n, 0, 0, 2, 2);   /* empty span at start: before 'h' */
    ASSERT_SRC_SPAN(&n, 3, 3, 6, 6);   /* empty span before 'a' */
    ASSERT_SRC_SPAN(&n, 4, 4, 11, 11); /* empty span at the end: the original length */
    ASSERT_SRC_SPAN(&n, 3, 4, 6, 9);
    ASSERT_SRC_SPAN(&n, 2, 99, 4, 9); /* end clamped to len */
    ASSERT_SRC_SPAN(&n, 9, 3, 6, 6);  /* inverted span: empty at its end */
    normalized_fini(&n);
}

TW_TEST(test_invalid_utf8_rejected)
{
    static const struct {
        const char *bytes;
        size_t len;
        const char *what;
    } bad[] = {
        {"\xC0\x80", 2, "overlong NUL"},
        {"\xC1\xBF", 2, "overlong 2-byte"},
        {"\xE0\x80\xAF", 3, "overlong 3-byte"},
        {"\xF0\x80\x80\xAF", 4, "overlong 4-byte"},
        {"\xED\xA0\x80", 3, "high surrogate"},
        {"\xED\xBF\xBF", 3, "low surrogate"},
        {"\xF4\x90\x80\x80", 4, "above U+10FFFF"},
        {"\xF5\x80\x80\x80", 4, "F5 lead"},
        {"\xFF", 1, "FF"},
        {"\xFE", 1, "FE"},
        {"\x80", 1, "lone continuation"},
        {"abc\xE2\x82", 5, "truncated 3-byte at end"},
        {"\xF0\x9F\x98", 3, "truncated 4-byte"},
        {"\xC3", 1, "truncated 2-byte"},
        {"\xC3(", 2, "bad continuation"},
        {"\xE2(\xA1", 3, "bad continuation in 3-byte"},
        {"free money free money \xE9 ok", 26, "latin-1 byte after an ASCII run"},
    };
    normalized_t n;
    normalized_init(&n);
    NORMALIZE_OK(&n, "leftover");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (utf8_is_valid(bad[i].bytes, bad[i].len))
            TW_FAIL("utf8_is_valid accepted %s", bad[i].what);
        int rc = normalize_text(bad[i].bytes, bad[i].len, &n);
        if (rc != TW_ERR_UTF8)
            TW_FAIL("%s: rc %s, want UTF8", bad[i].what, tw_err_name(rc));
        TW_ASSERT_INT_EQ(n.len, 0);
        TW_ASSERT_STR_EQ(n.text, "");
    }
    static const char *good[] = {
        "",
        "ascii",
        "\xC2\x80",
        "\xDF\xBF",
        "\xE0\xA0\x80",
        "\xED\x9F\xBF",
        "\xEE\x80\x80",
        "\xEF\xBF\xBF",
        "\xF0\x90\x80\x80",
        "\xF4\x8F\xBF\xBF",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!utf8_is_valid(good[i], strlen(good[i])))
            TW_FAIL("utf8_is_valid rejected good[%zu]", i);
    }
    TW_ASSERT(utf8_is_valid(NULL, 0));
    TW_ASSERT(utf8_is_valid("a\0b", 3)); /* NUL is a valid code point */
    normalized_fini(&n);
}

TW_TEST(test_utf8_validator_matches_reference)
{
    /* Random short byte strings biased towards lead and continuation bytes. */
    static const unsigned char pool[] = {
        0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1,
        0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xF7, 0xF8, 0xFB, 0xFC, 0xFE, 0xFF};
    uint64_t state = 42;
    char buf[24];
    for (int iter = 0; iter < 300000; iter++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t len = (size_t)(state >> 59) % 13;
        for (size_t i = 0; i < len; i++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            buf[i] = (char)pool[(state >> 33) % sizeof(pool)];
        }
        bool got = utf8_is_valid(buf, len), want = ref_utf8_valid(buf, len);
        if (got != want)
            TW_FAIL("iteration %d: utf8_is_valid %d, reference %d", iter, got, want);
    }
}

TW_TEST(test_too_large)
{
    normalized_t n;
    normalized_init(&n);
    /* The length is checked before any byte is read. */
    char one = 'a';
    int rc = normalize_text(&one, (size_t)UINT32_MAX + 1, &n);
    TW_ASSERT_INT_EQ(rc, TW_ERR_TOO_LARGE);
    TW_ASSERT_STR_EQ(n.text, "");
    normalized_fini(&n);
}

TW_TEST(test_scripts_pass_through)
{
    normalized_t n;
    normalized_init(&n);
    /* Arabic stays as it is (already NFKC, no case). */
    const char *arabic = "\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7 \xD8\xA8\xD9\x83";
    int rc = normalize_text(arabic, strlen(arabic), &n);
    TW_ASSERT_INT_EQ(rc, 0);
    TW_ASSERT_STR_EQ(n.text, arabic);
    ASSERT_SRC_SPAN(&n, 0, 2, 0, 2);
    /* Arabic presentation forms fold to the base letters: U+FEE1 -> U+0645. */
    NORMALIZE_OK(&n, "\xEF\xBB\xA1");
    TW_ASSERT_STR_EQ(n.text, "\xD9\x85");

    /* CJK ideographs pass through; each maps to its own 3 bytes. */
    const char *cjk = "\xE6\x9D\xB1\xE4\xBA\xAC\xE9\x83\xBD"; /* 東京都 */
    rc = normalize_text(cjk, strlen(cjk), &n);
    TW_ASSERT_INT_EQ(rc, 0);
    TW_ASSERT_STR_EQ(n.text, cjk);
    ASSERT_SRC_SPAN(&n, 3, 6, 3, 6);
    /* Halfwidth katakana widen: U+FF76 -> U+30AB. */
    NORMALIZE_OK(&n, "\xEF\xBD\xB6");
    TW_ASSERT_STR_EQ(n.text, "\xE3\x82\xAB");

    /* Hangul syllables stay precomposed; each maps to its own 3 bytes. */
    const char *hangul = "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4"; /* 한국어 */
    rc = normalize_text(hangul, strlen(hangul), &n);
    TW_ASSERT_INT_EQ(rc, 0);
    TW_ASSERT_STR_EQ(n.text, hangul);
    ASSERT_SRC_SPAN(&n, 3, 6, 3, 6);
    /* Conjoining jamo L + V + T compose into one syllable covering all three: U+D55C. */
    NORMALIZE_OK(&n, "\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB");
    TW_ASSERT_STR_EQ(n.text, "\xED\x95\x9C");
    ASSERT_SRC_SPAN(&n, 0, 3, 0, 9);
    /* Compatibility jamo (U+3131, NFKC U+1100) followed by a conjoining vowel U+1161:
     * the composition crosses the input characters (U+AC00). */
    NORMALIZE_OK(&n, "\xE3\x84\xB1\xE1\x85\xA1");
    TW_ASSERT_STR_EQ(n.text, "\xEA\xB0\x80");
    ASSERT_SRC_SPAN(&n, 0, 3, 0, 6);
    /* A syllable LV followed by a trailing consonant T composes into LVT: U+AC00 U+11A8. */
    NORMALIZE_OK(&n, "\xEA\xB0\x80\xE1\x86\xA8");
    TW_ASSERT_STR_EQ(n.text, "\xEA\xB0\x81");
    /* U+11A7 is not a trailing consonant: it stays a separate character after LV. (utf8proc
     * 2.8's utf8proc_map() deletes it; segment-wise composition never hits that bug.) */
    NORMALIZE_OK(&n, "\xEA\xB0\x80\xE1\x86\xA7");
    TW_ASSERT_STR_EQ(n.text, "\xEA\xB0\x80\xE1\x86\xA7");

    /* Devanagari, Thai and Cyrillic (with case) pass through or fold sensibly. */
    NORMALIZE_OK(&n, "\xE0\xA4\xA8\xE0\xA4\xAE\xE0\xA4\xB8\xE0\xA5\x8D\xE0\xA4\xA4\xE0\xA5\x87");
    TW_ASSERT_STR_EQ(n.text, "\xE0\xA4\xA8\xE0\xA4\xAE\xE0\xA4\xB8\xE0\xA5\x8D\xE0\xA4\xA4\xE0"
                             "\xA5\x87");
    NORMALIZE_OK(&n, "\xE0\xB8\xAA\xE0\xB8\xA7\xE0\xB8\xB1\xE0\xB8\xAA\xE0\xB8\x94\xE0\xB8\xB5");
    TW_ASSERT_STR_EQ(n.text, "\xE0\xB8\xAA\xE0\xB8\xA7\xE0\xB8\xB1\xE0\xB8\xAA\xE0\xB8\x94\xE0"
                             "\xB8\xB5");
    NORMALIZE_OK(&n, "\xD0\x9F\xD0\xA0\xD0\x98\xD0\x92\xD0\x95\xD0\xA2"); /* ПРИВЕТ */
    TW_ASSERT_STR_EQ(n.text, "\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82");
    normalized_fini(&n);
}

TW_TEST(test_buffer_reuse)
{
    normalized_t n;
    normalized_init(&n);
    char *big = malloc(10000);
    TW_ASSERT(big != NULL);
    for (size_t i = 0; i < 10000; i++)
        big[i] = (char)('A' + i % 26);
    int rc = normalize_text(big, 10000, &n);
    free(big);
    TW_ASSERT_INT_EQ(rc, 0);
    TW_ASSERT_INT_EQ(n.len, 10000);
    TW_ASSERT(n.text[9999] == 'a' + 9999 % 26);
    size_t cap = n.cap;
    char *text = n.text;
    uint32_t *starts = n.src_start;
    TW_ASSERT(cap >= 10001);

    NORMALIZE_OK(&n, "Short \xC3\x89");
    TW_ASSERT_STR_EQ(n.text, "short \xC3\xA9");
    TW_ASSERT_INT_EQ(n.src_end[n.len - 1], 8);
    /* Same buffers, same capacity: nothing was reallocated or shrunk. */
    TW_ASSERT_INT_EQ(n.cap, cap);
    TW_ASSERT(n.text == text);
    TW_ASSERT(n.src_start == starts);

    /* An expanding input (U+FDFA is 3 bytes -> 33 bytes) grows a small buffer correctly. */
    normalized_fini(&n);
    TW_ASSERT_INT_EQ(n.cap, 0);
    char grow[3 * 200];
    for (size_t i = 0; i < 200; i++)
        memcpy(grow + 3 * i, "\xEF\xB7\xBA", 3);
    const char *why = check_against_ref(&n, grow, sizeof(grow));
    if (why)
        TW_FAIL("%s", why);
    TW_ASSERT(n.len > 6000);
    normalized_fini(&n);
    normalized_fini(&n); /* fini twice is harmless */
}

TW_TEST(test_long_combining_run)
{
    /* "Zalgo" text: far more marks than a segment holds. It must stay well-formed, keep
     * every mark, and map within the input; beyond NORM_SEG_MAX marks it is composed in
     * pieces (documented in normalize.c). */
    char buf[1 + 600 * 2 + 2];
    size_t k = 0;
    buf[k++] = 'a';
    for (int i = 0; i < 300; i++) {
        memcpy(buf + k, "\xCC\x81\xCC\x96", 4); /* U+0301 (230), U+0316 (220) */
        k += 4;
    }
    memcpy(buf + k, " B", 2);
    k += 2;
    normalized_t n;
    normalized_init(&n);
    int rc = normalize_text(buf, k, &n);
    TW_ASSERT_INT_EQ(rc, 0);
    const char *why = check_map(&n, k);
    if (why)
        TW_FAIL("%s", why);
    TW_ASSERT(n.len > 1000);
    TW_ASSERT_MEM_EQ(n.text + n.len - 2, 2, " b", 2);
    TW_ASSERT_INT_EQ(n.src_start[n.len - 1], k - 1);
    TW_ASSERT_INT_EQ(n.src_end[n.len - 3], k - 2);
    normalized_fini(&n);
}

/* Every Unicode scalar value on its own, and between letters, agrees with utf8proc_map(). */
TW_TEST(test_every_code_point_matches_utf8proc)
{
    normalized_t n;
    normalized_init(&n);
    char buf[16];
    for (int32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        size_t k = encode_cp(cp, buf);
        const char *why = check_against_ref(&n, buf, k);
        if (why)
            TW_FAIL("U+%04X alone: %s", (unsigned)cp, why);
        /* Between letters (exercises the ASCII lookahead and the segment boundaries). */
        buf[0] = 'A';
        k = 1 + encode_cp(cp, buf + 1);
        buf[k++] = 'b';
        why = check_against_ref(&n, buf, k);
        if (why)
            TW_FAIL("A U+%04X b: %s", (unsigned)cp, why);
    }
    normalized_fini(&n);
}

/* Each composition whose second half is a starter (Hangul V/T, Indic two-part vowels...)
 * still composes when given decomposed, i.e. the table of composition seconds is complete
 * for the linked utf8proc. */
TW_TEST(test_starter_compositions_match_utf8proc)
{
    normalized_t n;
    normalized_init(&n);
    size_t checked = 0;
    for (int32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        utf8proc_int32_t d[8];
        int bc = 0;
        utf8proc_ssize_t nd = utf8proc_decompose_char(cp, d, 8, UTF8PROC_DECOMPOSE, &bc);
        if (nd < 2 || nd > 8)
            continue;
        bool starter_second = false;
        for (utf8proc_ssize_t i = 1; i < nd; i++)
            starter_second |= utf8proc_get_property(d[i])->combining_class == 0;
        if (!starter_second)
            continue;
        char buf[64];
        size_t k = 0;
        for (utf8proc_ssize_t i = 0; i < nd; i++)
            k += encode_cp(d[i], buf + k);
        const char *why = check_against_ref(&n, buf, k);
        if (why)
            TW_FAIL("decomposed U+%04X: %s", (unsigned)cp, why);
        checked++;
    }
    TW_ASSERT(checked > 11000); /* the Hangul syllables alone are 11172 */
    normalized_fini(&n);
}

/* Random strings over code points chosen to stress segmentation: marks in any order,
 * conjoining and compatibility jamo, halfwidth kana and voiced marks, expanding
 * compatibility characters, ignorables, spaces and controls. */
TW_TEST(test_random_mixes_match_utf8proc)
{
    static const int32_t pool[] = {
        'a',     'E',     'o',     'S',     ' ',     '\t',    '\n',    0x00,    0x7F,    0x85,
        0xA0,    0xA8,    0xAD,    0xB4,    0xC5,    0xDF,    0x130,   0x149,   0x1C4,   0x300,
        0x301,   0x302,   0x308,   0x316,   0x323,   0x327,   0x328,   0x338,   0x344,   0x345,
        0x390,   0x3A3,   0x3C2,   0x1E9E,  0x1F80,  0x1FB3,  0x1FBE,  0x0627,  0x0653,  0x0654,
        0x0655,  0x064B,  0x0928,  0x093C,  0x09C7,  0x09BE,  0x09D7,  0x0B47,  0x0B3E,  0x0B56,
        0x0BC6,  0x0BBE,  0x0CC6,  0x0CC2,  0x0CD5,  0x0D46,  0x0D3E,  0x0DD9,  0x0DCF,  0x0F40,
        0x0FB5,  0x0F71,  0x0F72,  0x0F73,  0x0F80,  0x1025,  0x102E,  0x1100,  0x1112,  0x1161,
        0x1175,  0x11A8,  0x11C2,  0x115F,  0x1160,  0x3131,  0x314F,  0x3164,  0xAC00,  0xD7A3,
        0x1B05,  0x1B35,  0x200B,  0x200D,  0x2028,  0x202E,  0x2060,  0x2126,  0x212B,  0x2160,
        0x2460,  0x3000,  0x3099,  0x309A,  0x309B,  0x30AB,  0x30A6,  0x3300,  0x32FF,  0xFB01,
        0xFDFA,  0xFE0F,  0xFEFF,  0xFF21,  0xFF76,  0xFF73,  0xFF9E,  0xFF9F,  0xFFA0,  0xFFA1,
        0xFFF9,  0x11099, 0x110BA, 0x11131, 0x11127, 0x11347, 0x1133E, 0x11357, 0x114B9, 0x114BA,
        0x114B0, 0x114BD, 0x115B8, 0x115AF, 0x11935, 0x11930, 0x1D15E, 0x1D165, 0x1D41F, 0x1F600,
        0x1F3FD, 0xE0041,
    };
    normalized_t n;
    normalized_init(&n);
    uint64_t state = 7;
    char buf[24 * 4];
    for (int iter = 0; iter < 60000; iter++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t count = 1 + (size_t)(state >> 60);
        size_t k = 0;
        for (size_t i = 0; i < count; i++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            k += encode_cp(pool[(state >> 33) % (sizeof(pool) / sizeof(pool[0]))], buf + k);
        }
        const char *why = check_against_ref(&n, buf, k);
        if (why) {
            char hex[sizeof(buf) * 2 + 1];
            for (size_t i = 0; i < k; i++)
                snprintf(hex + 2 * i, 3, "%02X", (unsigned char)buf[i]);
            TW_FAIL("iteration %d, input %s: %s", iter, hex, why);
        }
    }
    normalized_fini(&n);
}

/* Real posts (the shared sample, when present) agree with the whole-string reference. */
TW_TEST(test_real_posts_match_utf8proc)
{
    const char *path = tw_shared_data_path("posts/posts_mixed.txt");
    FILE *f = fopen(path, "r");
    if (!f)
        TW_SKIP("%s absent (the shared data set)", path);
    normalized_t n;
    normalized_init(&n);
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t got;
    size_t checked = 0;
    while ((got = getline(&line, &line_cap, f)) > 0 && checked < 50000) {
        size_t len = (size_t)got;
        if (line[len - 1] == '\n')
            len--;
        if (!utf8_is_valid(line, len))
            continue;
        const char *why = check_against_ref(&n, line, len);
        if (why) {
            fclose(f);
            free(line);
            normalized_fini(&n);
            TW_FAIL("post %zu: %s", checked, why);
        }
        checked++;
    }
    free(line);
    fclose(f);
    normalized_fini(&n);
    TW_ASSERT(checked > 1000);
}

int main(void)
{
    TW_RUN(TW_CASE(test_ascii_lowercase_exact_offsets), TW_CASE(test_fullwidth),
           TW_CASE(test_math_bold_letters), TW_CASE(test_zero_width_removed),
           TW_CASE(test_sharp_s_case_fold), TW_CASE(test_combining_sequence_composed),
           TW_CASE(test_whitespace_collapse_and_trim), TW_CASE(test_span_to_source_edges),
           TW_CASE(test_invalid_utf8_rejected), TW_CASE(test_utf8_validator_matches_reference),
           TW_CASE(test_too_large), TW_CASE(test_scripts_pass_through), TW_CASE(test_buffer_reuse),
           TW_CASE(test_long_combining_run), TW_CASE(test_every_code_point_matches_utf8proc),
           TW_CASE(test_starter_compositions_match_utf8proc),
           TW_CASE(test_random_mixes_match_utf8proc), TW_CASE(test_real_posts_match_utf8proc));
}
