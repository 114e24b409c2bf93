/* Unit tests for the derived views of common/normalize.c: skeleton (marks, confusables, Arabic
 * forms) and squash (leetspeak, separated letters, repeats), their offset maps back to the
 * original bytes, and buffer reuse. */
#include "normalize/normalize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "normalize/confusables_table.h"
#include "tw_test.h"
#include "util/utf8.h"

/* view text of src, with the map composed into src's bytes */
static char *view_of(const char *src, normalize_view_t view, normalized_t *out)
{
    int rc = normalize_text_view(src, strlen(src), view, out);
    return rc == 0 ? out->text : (char *)"<normalize_text_view failed>";
}

TW_TEST(test_skeleton_strips_marks)
{
    normalized_t v;
    normalized_init(&v);
    TW_ASSERT_STR_EQ(view_of("Giả mạo", NORM_VIEW_SKELETON, &v), "gia mao");
    TW_ASSERT_STR_EQ(view_of("Café ÉTÉ façade São", NORM_VIEW_SKELETON, &v), "cafe ete facade sao");
    /* ñ is a letter of Spanish, not n with an accent: "año" is not "ano" */
    TW_ASSERT_STR_EQ(view_of("Año niño", NORM_VIEW_SKELETON, &v), "año niño");
    /* e + combining acute (decomposed input) reads the same */
    TW_ASSERT_STR_EQ(view_of("cafe\xcc\x81", NORM_VIEW_SKELETON, &v), "cafe");
    /* Indic vowel signs are not decoration: Hindi keeps them */
    TW_ASSERT_STR_EQ(view_of("नमस्ते", NORM_VIEW_SKELETON, &v), "नमस्ते");
    normalized_fini(&v);
}

TW_TEST(test_skeleton_confusables)
{
    normalized_t v;
    normalized_init(&v);
    /* Cyrillic р а у, Greek ο ν κ, Cyrillic small-capital-prototype letters к т */
    TW_ASSERT_STR_EQ(view_of("раураl", NORM_VIEW_SKELETON, &v), "paypal");
    TW_ASSERT_STR_EQ(view_of("gοοgle νia κey", NORM_VIEW_SKELETON, &v), "google via key");
    TW_ASSERT_STR_EQ(view_of("кот тук", NORM_VIEW_SKELETON, &v), "kot tyk");
    /* ASCII never changes: the skeleton of ASCII is the folded text */
    TW_ASSERT_STR_EQ(view_of("m rn d cl 0 O 1 l", NORM_VIEW_SKELETON, &v), "m rn d cl 0 o 1 l");
    /* the generated table is sorted (binary search) and only maps to printable ASCII */
    for (size_t i = 0; i < confusables_table_len; i++) {
        TW_ASSERT(confusables_table[i].cp >= 0x80);
        if (i)
            TW_ASSERT(confusables_table[i - 1].cp < confusables_table[i].cp);
        for (const char *p = confusables_table[i].proto; *p; p++)
            TW_ASSERT(*p >= 0x20 && *p <= 0x7e);
    }
    normalized_fini(&v);
}

/* Small capitals read as their letters (the "small caps" text generators' output), and so do
 * capitals that case folding turns into one (U+01A6 becomes U+0280). */
TW_TEST(test_skeleton_small_capitals)
{
    normalized_t v;
    normalized_init(&v);
    TW_ASSERT_STR_EQ(
        view_of("\ua731\u1d0d\u1d00\u029f\u029f \u1d04\u1d00\u1d18\ua731", NORM_VIEW_SKELETON, &v),
        "small caps");
    TW_ASSERT_STR_EQ(view_of("\u1d04\u1d0f\u1d1c\u0274\u1d1b \u1d21\u1d0f\u0280\u1d05 "
                             "\u029c\u026a \u1d22\u1d07\u0280\u1d0f \u028f\u1d07\u1d1b",
                             NORM_VIEW_SKELETON, &v),
                     "count word hi zero yet");
    TW_ASSERT_STR_EQ(view_of("\u01a6", NORM_VIEW_SKELETON, &v), "r");
    normalized_fini(&v);
}

TW_TEST(test_skeleton_arabic)
{
    normalized_t v, w;
    normalized_init(&v);
    normalized_init(&w);
    /* tashkeel and tatweel removed */
    TW_ASSERT_STR_EQ(view_of("مَجَّانًا", NORM_VIEW_SKELETON, &v),
                     view_of("مجانا", NORM_VIEW_SKELETON, &w));
    TW_ASSERT_STR_EQ(view_of("مجـــانا", NORM_VIEW_SKELETON, &v),
                     view_of("مجانا", NORM_VIEW_SKELETON, &w));
    /* alef forms, alef maksura -> yeh, teh marbuta -> heh */
    TW_ASSERT_STR_EQ(view_of("أحمد إسلام آمن", NORM_VIEW_SKELETON, &v),
                     view_of("احمد اسلام امن", NORM_VIEW_SKELETON, &w));
    TW_ASSERT_STR_EQ(view_of("على مدرسة", NORM_VIEW_SKELETON, &v), "علي مدرسه");
    /* Urdu and Persian letters that confusables.txt gives a basic letter's prototype: heh goal,
     * heh doachashmee, ae and teh marbuta goal read as heh, swash kaf as kaf, qaf with dot
     * above as feh, noon ghunna, yeh barree and dotless beh as yeh, high hamza waw and yeh
     * (NFKC: waw and yeh + high hamza U+0674) as waw and yeh; also in their presentation forms
     * (U+FBA6 is heh goal) */
    TW_ASSERT_STR_EQ(view_of("شہوۃ شھوە \ufba6", NORM_VIEW_SKELETON, &v), "شهوه شهوه ه");
    TW_ASSERT_STR_EQ(view_of("ڪس ڧرج ٮں ے ٶ ٸ", NORM_VIEW_SKELETON, &v), "كس فرج يي ي و ي");
    /* Persian peh stays: its prototype differs from theh's only by where the dots are */
    TW_ASSERT_STR_EQ(view_of("پول", NORM_VIEW_SKELETON, &v), "پول");
    normalized_fini(&v);
    normalized_fini(&w);
}

TW_TEST(test_skeleton_offsets_point_at_original)
{
    normalized_t v;
    normalized_init(&v);
    const char *src = "xx Ｐ\xe2\x80\x8bаy\xcc\x81 yy"; /* fullwidth P, ZWSP, Cyrillic a, y+acute */
    view_of(src, NORM_VIEW_SKELETON, &v);
    TW_ASSERT_STR_EQ(v.text, "xx pay yy");
    size_t a, b;
    normalized_span_to_source(&v, 3, 6, &a, &b);
    TW_ASSERT_INT_EQ(a, 3);
    TW_ASSERT_INT_EQ(b, strlen(src) - 3);
    normalized_span_to_source(&v, 0, 2, &a, &b);
    TW_ASSERT_INT_EQ(a, 0);
    TW_ASSERT_INT_EQ(b, 2);
    /* the sentinel maps to the original length */
    normalized_span_to_source(&v, v.len, v.len, &a, &b);
    TW_ASSERT_INT_EQ(a, strlen(src));
    normalized_fini(&v);
}

TW_TEST(test_skeleton_same_flag)
{
    normalized_t f, s;
    normalized_init(&f);
    normalized_init(&s);
    bool same = false;
    TW_ASSERT_INT_EQ(normalize_text("Plain ASCII, 100%!", 18, &f), 0);
    TW_ASSERT_INT_EQ(normalize_skeleton(&f, &s, &same), 0);
    TW_ASSERT(same);
    TW_ASSERT_STR_EQ(s.text, f.text);
    const char *cjk = "中文 テキスト 한국어"; /* no marks, no confusables: unchanged */
    TW_ASSERT_INT_EQ(normalize_text(cjk, strlen(cjk), &f), 0);
    TW_ASSERT_INT_EQ(normalize_skeleton(&f, &s, &same), 0);
    TW_ASSERT(same);
    TW_ASSERT_INT_EQ(normalize_text("naïve", strlen("naïve"), &f), 0);
    TW_ASSERT_INT_EQ(normalize_skeleton(&f, &s, &same), 0);
    TW_ASSERT(!same);
    TW_ASSERT_STR_EQ(s.text, "naive");
    normalized_fini(&f);
    normalized_fini(&s);
}

TW_TEST(test_squash)
{
    normalized_t v;
    normalized_init(&v);
    TW_ASSERT_STR_EQ(view_of("FR33 M0NEY", NORM_VIEW_SQUASH, &v), "fre money");
    TW_ASSERT_STR_EQ(view_of("free money", NORM_VIEW_SQUASH, &v), "fre money");
    TW_ASSERT_STR_EQ(view_of("f.r.e.e money", NORM_VIEW_SQUASH, &v), "fre money");
    TW_ASSERT_STR_EQ(view_of("f r e e money", NORM_VIEW_SQUASH, &v), "fre money");
    TW_ASSERT_STR_EQ(view_of("f-r-e-e money", NORM_VIEW_SQUASH, &v), "fre money");
    TW_ASSERT_STR_EQ(view_of("f . r . e . e", NORM_VIEW_SQUASH, &v), "fre");
    TW_ASSERT_STR_EQ(view_of("frееее", NORM_VIEW_SQUASH, &v), "fre"); /* Cyrillic е */
    TW_ASSERT_STR_EQ(view_of("$h!t @ss", NORM_VIEW_SQUASH, &v), "shit as");
    TW_ASSERT_STR_EQ(view_of("money! |o| a+b", NORM_VIEW_SQUASH, &v), "money! lo| atb");
    /* separators between longer tokens stay */
    TW_ASSERT_STR_EQ(view_of("well-known e.g. a b", NORM_VIEW_SQUASH, &v), "wel-known egab");
    TW_ASSERT_STR_EQ(view_of("", NORM_VIEW_SQUASH, &v), "");
    normalized_fini(&v);
}

TW_TEST(test_squash_offsets)
{
    normalized_t v;
    normalized_init(&v);
    const char *src = "say f.r.3.3 now";
    view_of(src, NORM_VIEW_SQUASH, &v);
    TW_ASSERT_STR_EQ(v.text, "say fre now");
    size_t a, b;
    normalized_span_to_source(&v, 4, 7, &a, &b); /* "fre" */
    TW_ASSERT_INT_EQ(a, 4);
    TW_ASSERT_INT_EQ(b, 11); /* through the last 3 */
    normalized_span_to_source(&v, 8, 11, &a, &b);
    TW_ASSERT_INT_EQ(a, 12);
    TW_ASSERT_INT_EQ(b, 15);
    /* maps stay non-decreasing */
    for (size_t i = 1; i < v.len; i++) {
        TW_ASSERT(v.src_start[i - 1] <= v.src_start[i]);
        TW_ASSERT(v.src_end[i - 1] <= v.src_end[i]);
    }
    normalized_fini(&v);
}

TW_TEST(test_view_names)
{
    normalize_view_t v;
    TW_ASSERT_INT_EQ(normalize_view_parse("skeleton", &v), 0);
    TW_ASSERT_INT_EQ(v, NORM_VIEW_SKELETON);
    TW_ASSERT_STR_EQ(normalize_view_name(NORM_VIEW_SQUASH), "squash");
    TW_ASSERT(normalize_view_parse("nope", &v) != 0);
}

/* Random valid UTF-8 through every view: no crash, monotonic maps inside the original. */
TW_TEST(test_views_random)
{
    static const char *const pieces[] = {
        "a",  "Z",  " ", ".", "3", "$", "é",  "е", "ο", "\xcc\x81", "\xe2\x80\x8b", "ـ", "َ", "ą",
        "中", "ｆ", "𝐛", "-", "ß", "ﷺ", "\t", "ǅ", "ﬁ", "İ"};
    normalized_t v;
    normalized_init(&v);
    unsigned seed = 12345;
    char buf[512];
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = 0;
        int parts = (int)(rand_r(&seed) % 40);
        for (int p = 0; p < parts; p++) {
            const char *s = pieces[rand_r(&seed) % (sizeof(pieces) / sizeof(pieces[0]))];
            memcpy(buf + n, s, strlen(s));
            n += strlen(s);
        }
        for (int view = 0; view < NORM_VIEW_COUNT; view++) {
            TW_ASSERT_INT_EQ(normalize_text_view(buf, n, (normalize_view_t)view, &v), 0);
            for (size_t i = 0; i < v.len; i++) {
                TW_ASSERT(v.src_start[i] < v.src_end[i] && v.src_end[i] <= n);
                if (i)
                    TW_ASSERT(v.src_start[i - 1] <= v.src_start[i]);
            }
            TW_ASSERT_INT_EQ(v.src_start[v.len], n);
        }
    }
    normalized_fini(&v);
}

/* NFKC spells some single characters as a letter with punctuation around it: U+249C and
 * U+1F110 are "(a)", U+013F "l" + middle dot. The skeleton keeps the letter of such a
 * character and drops the punctuation that came with it, so "f\u24b0ck" reads as a word;
 * punctuation typed as such, next to a combining mark, or between two letters of one
 * character (U+2105 "c/o") stays. */
TW_TEST(test_skeleton_drops_punctuation_added_by_nfkc)
{
    normalized_t v;
    normalized_init(&v);
    TW_ASSERT_STR_EQ(view_of("f\u24b0ck", NORM_VIEW_FOLDED, &v), "f(u)ck");
    TW_ASSERT_STR_EQ(view_of("f\u24b0ck", NORM_VIEW_SKELETON, &v), "fuck");
    TW_ASSERT_STR_EQ(view_of("\U0001F110\U0001F111c", NORM_VIEW_SKELETON, &v), "abc");
    TW_ASSERT_STR_EQ(view_of("\u2105 \u013Fo\u0140", NORM_VIEW_SKELETON, &v), "c/o lol");
    TW_ASSERT_STR_EQ(view_of("f\u24b0ck", NORM_VIEW_SQUASH, &v), "fuck");
    /* typed punctuation, and punctuation carrying a mark, are not NFKC's */
    TW_ASSERT_STR_EQ(view_of("(a) c/o x(\u0301y", NORM_VIEW_SKELETON, &v), "(a) c/o x(y");
    /* a character that NFKC turns into punctuation alone keeps it (fullwidth parenthesis) */
    TW_ASSERT_STR_EQ(view_of("\uff08a\uff09", NORM_VIEW_SKELETON, &v), "(a)");
    /* the letter kept maps to the whole original character */
    const char *src = "x \u24b0";
    TW_ASSERT_STR_EQ(view_of(src, NORM_VIEW_SKELETON, &v), "x u");
    TW_ASSERT_INT_EQ(v.src_start[2], 2);
    TW_ASSERT_INT_EQ(v.src_end[2], 5);
    /* the skeleton is not the folded text, and says the letter changed */
    normalized_t folded, skel;
    normalized_init(&folded);
    normalized_init(&skel);
    normalize_skeleton_info_t info;
    TW_ASSERT_INT_EQ(normalize_text("f\u24b0ck", strlen("f\u24b0ck"), &folded), 0);
    TW_ASSERT_INT_EQ(normalize_skeleton_ex(&folded, &skel, &info), 0);
    TW_ASSERT(!info.same);
    TW_ASSERT(info.ascii['u' >> 5] & (1u << ('u' & 31)));
    normalized_fini(&folded);
    normalized_fini(&skel);
    normalized_fini(&v);
}

/* Default-ignorable code points that utf8proc does not drop (the unassigned ones) and format
 * characters (gc=Cf) that are not default-ignorable (Arabic number signs, Egyptian hieroglyph
 * format controls...): put between the letters of a word, each must leave the word whole in
 * every view, as a zero-width space does (perf/evasion_unicode.py, kind "ignorable"). */
static bool is_unassigned_default_ignorable(int32_t cp)
{
    return cp == 0x2065 || (cp >= 0xFFF0 && cp <= 0xFFF8) ||
           (cp >= 0xE0000 && cp <= 0xE0FFF && utf8proc_category(cp) == UTF8PROC_CATEGORY_CN);
}

TW_TEST(test_format_and_unassigned_ignorables_dropped)
{
    normalized_t v;
    normalized_init(&v);
    size_t checked = 0;
    for (int32_t cp = 0x80; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        if (utf8proc_category(cp) != UTF8PROC_CATEGORY_CF && !is_unassigned_default_ignorable(cp))
            continue;
        unsigned char c[4];
        size_t n = utf8_encode(cp, c);
        char text[32];
        size_t o = 0;
        const char *word = "word";
        for (size_t i = 0; word[i]; i++) {
            if (i) {
                memcpy(text + o, c, n);
                o += n;
            }
            text[o++] = word[i];
        }
        text[o] = '\0';
        for (int view = 0; view < NORM_VIEW_COUNT; view++) {
            const char *got = view_of(text, (normalize_view_t)view, &v);
            if (strcmp(got, "word") != 0)
                TW_FAIL("U+%04X between letters, view %s: \"%s\"", (unsigned)cp,
                        normalize_view_name((normalize_view_t)view), got);
        }
        checked++;
    }
    /* 170 format characters, U+2065, U+FFF0-FFF8 and the ~3,760 unassigned code points of
     * U+E0000-E0FFF */
    TW_ASSERT(checked > 3900);
    normalized_fini(&v);
}

int main(void)
{
    TW_RUN(TW_CASE(test_skeleton_strips_marks), TW_CASE(test_skeleton_confusables),
           TW_CASE(test_skeleton_arabic), TW_CASE(test_skeleton_offsets_point_at_original),
           TW_CASE(test_skeleton_same_flag), TW_CASE(test_squash), TW_CASE(test_squash_offsets),
           TW_CASE(test_view_names), TW_CASE(test_views_random),
           TW_CASE(test_format_and_unassigned_ignorables_dropped),
           TW_CASE(test_skeleton_drops_punctuation_added_by_nfkc),
           TW_CASE(test_skeleton_small_capitals));
}
