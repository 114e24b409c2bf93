/* The script classes that match, fingerprint and normalize used to keep apart. Each case is a
 * code point on which the old copies disagreed. */
#include "tw_test.h"
#include "util/unicode.h"

TW_TEST(unspaced_scripts_are_the_union_of_the_old_lists)
{
    /* Only fingerprint's list had Bopomofo and its extension. */
    TW_ASSERT(unicode_is_unspaced_script(0x3105)); /* BOPOMOFO LETTER B */
    TW_ASSERT(unicode_is_unspaced_script(0x312F)); /* BOPOMOFO LETTER NN */
    TW_ASSERT(unicode_is_unspaced_script(0x31A0)); /* BOPOMOFO LETTER BU */
    /* Only match's list had these. */
    TW_ASSERT(unicode_is_unspaced_script(0x1980));  /* NEW TAI LUE LETTER HIGH QA */
    TW_ASSERT(unicode_is_unspaced_script(0x1A20));  /* TAI THAM LETTER HIGH KA */
    TW_ASSERT(unicode_is_unspaced_script(0x3021));  /* HANGZHOU NUMERAL ONE */
    TW_ASSERT(unicode_is_unspaced_script(0x3031));  /* VERTICAL KANA REPEAT MARK */
    TW_ASSERT(unicode_is_unspaced_script(0x303B));  /* VERTICAL IDEOGRAPHIC ITERATION MARK */
    TW_ASSERT(unicode_is_unspaced_script(0xA9E0));  /* MYANMAR LETTER SHAN GHA */
    TW_ASSERT(unicode_is_unspaced_script(0xAA60));  /* MYANMAR LETTER KHAMTI GA */
    TW_ASSERT(unicode_is_unspaced_script(0xFF76));  /* HALFWIDTH KATAKANA LETTER KA */
    TW_ASSERT(unicode_is_unspaced_script(0x1B001)); /* HIRAGANA LETTER ARCHAIC YE */
    /* Both had these. */
    TW_ASSERT(unicode_is_unspaced_script(0x0E01)); /* THAI CHARACTER KO KAI */
    TW_ASSERT(unicode_is_unspaced_script(0x4E2D)); /* CJK 中 */
    TW_ASSERT(unicode_is_unspaced_script(0x20000));
    /* Spaced scripts and the gaps between the ranges. */
    TW_ASSERT(!unicode_is_unspaced_script('a'));
    TW_ASSERT(!unicode_is_unspaced_script(0x0627)); /* ARABIC LETTER ALEF */
    TW_ASSERT(!unicode_is_unspaced_script(0x3000)); /* IDEOGRAPHIC SPACE */
    TW_ASSERT(!unicode_is_unspaced_script(0x3001)); /* IDEOGRAPHIC COMMA */
    TW_ASSERT(!unicode_is_unspaced_script(0x3130)); /* Hangul compatibility jamo */
    TW_ASSERT(!unicode_is_unspaced_script(0xAC00)); /* HANGUL SYLLABLE GA: Korean uses spaces */
    TW_ASSERT(!unicode_is_unspaced_script(0xFF21)); /* FULLWIDTH LATIN CAPITAL A */
    TW_ASSERT(!unicode_is_unspaced_script(-1));
}

TW_TEST(arabic_script_is_its_own_blocks_only)
{
    /* Both old copies agreed on these. */
    TW_ASSERT(unicode_is_arabic_script(0x0627)); /* ALEF */
    TW_ASSERT(unicode_is_arabic_script(0x064B)); /* FATHATAN */
    TW_ASSERT(unicode_is_arabic_script(0x0750)); /* Arabic Supplement */
    TW_ASSERT(unicode_is_arabic_script(0x08A0)); /* Arabic Extended-A */
    TW_ASSERT(unicode_is_arabic_script(0xFB50)); /* Presentation Forms-A */
    TW_ASSERT(unicode_is_arabic_script(0xFEFC)); /* Presentation Forms-B */
    /* Arabic Extended-B: normalize's span had it, match's blocks did not. */
    TW_ASSERT(unicode_is_arabic_script(0x0870));
    TW_ASSERT(unicode_is_arabic_script(0x089F));
    /* normalize's broad spans called these Arabic; they are other scripts or generic marks. */
    TW_ASSERT(!unicode_is_arabic_script(0x0710)); /* SYRIAC LETTER ALAPH */
    TW_ASSERT(!unicode_is_arabic_script(0x0730)); /* SYRIAC PTHAHA ABOVE (a mark) */
    TW_ASSERT(!unicode_is_arabic_script(0x0780)); /* THAANA LETTER HAA */
    TW_ASSERT(!unicode_is_arabic_script(0x07CA)); /* NKO LETTER A */
    TW_ASSERT(!unicode_is_arabic_script(0x0800)); /* SAMARITAN LETTER ALAF */
    TW_ASSERT(!unicode_is_arabic_script(0x0840)); /* MANDAIC LETTER HALQA */
    TW_ASSERT(!unicode_is_arabic_script(0xFE00)); /* VARIATION SELECTOR-1 */
    TW_ASSERT(!unicode_is_arabic_script(0xFE20)); /* COMBINING LIGATURE LEFT HALF */
    TW_ASSERT(!unicode_is_arabic_script(0xFE50)); /* SMALL COMMA */
    TW_ASSERT(!unicode_is_arabic_script('a'));
}

/* The binary search (and the range test on it) agrees with a plain scan at every code point,
 * for a table with single points, adjacent ranges and gaps, of every length from 0 to 7. */
TW_TEST(range_lookup_agrees_with_a_scan)
{
    static const unicode_range_t table[] = {{0x41, 0x41},       {0x42, 0x45},   {0x50, 0x5F},
                                            {0x61, 0x61},       {0x100, 0x2FF}, {0x300, 0x300},
                                            {0x10000, 0x10FFFF}};
    for (size_t n = 0; n <= sizeof(table) / sizeof(table[0]); n++) {
        for (int32_t cp = -1; cp <= 0x110000; cp++) {
            bool in = false;
            for (size_t i = 0; i < n; i++)
                in |= cp >= table[i].lo && cp <= table[i].hi;
            TW_ASSERT_INT_EQ(unicode_in_ranges(cp, table, n), in);
            size_t floor = n; /* the last entry whose lo is <= cp */
            for (size_t i = 0; i < n; i++)
                if (table[i].lo <= cp)
                    floor = i;
            TW_ASSERT_INT_EQ(unicode_table_floor(cp, table, n, sizeof(table[0])), floor);
        }
    }
}

int main(void)
{
    TW_RUN(TW_CASE(unspaced_scripts_are_the_union_of_the_old_lists),
           TW_CASE(arabic_script_is_its_own_blocks_only), TW_CASE(range_lookup_agrees_with_a_scan));
}
