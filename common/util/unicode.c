#include "util/unicode.h"

/* The union of the lists match and fingerprint used to keep apart: match lacked Bopomofo
 * (annotation of Chinese, written without spaces like the Han it annotates), fingerprint
 * lacked Tai Tham, New Tai Lue, Myanmar extensions, the Han numerals and kana marks of
 * U+3021..U+303C, halfwidth Katakana and the kana supplements. Each of these is written
 * without spaces, so a stage that missed one either never matched a keyword inside a
 * sentence or shingled a whole sentence as one word. Sorted by lo (unicode_in_ranges). */
bool unicode_is_unspaced_script(int32_t cp)
{
    static const unicode_range_t ranges[] = {
        {0x0e00, 0x0eff},   /* Thai, Lao */
        {0x1000, 0x109f},   /* Myanmar */
        {0x1780, 0x17ff},   /* Khmer */
        {0x1980, 0x19ff},   /* New Tai Lue, Khmer symbols */
        {0x1a20, 0x1aaf},   /* Tai Tham */
        {0x2e80, 0x2fdf},   /* CJK and Kangxi radicals */
        {0x3005, 0x3007},   /* ideographic iteration mark, closing mark, number zero */
        {0x3021, 0x3029},   /* Hangzhou numerals */
        {0x3031, 0x3035},   /* kana repeat marks */
        {0x3038, 0x303c},   /* Han numerals, masu mark */
        {0x3040, 0x312f},   /* Hiragana, Katakana, Bopomofo */
        {0x31a0, 0x31ff},   /* Bopomofo extended, Katakana phonetic extensions */
        {0x3400, 0x4dbf},   /* CJK extension A */
        {0x4e00, 0x9fff},   /* CJK unified ideographs */
        {0xa9e0, 0xa9ff},   /* Myanmar extended-B */
        {0xaa60, 0xaa7f},   /* Myanmar extended-A */
        {0xf900, 0xfaff},   /* CJK compatibility ideographs */
        {0xff66, 0xff9f},   /* halfwidth Katakana */
        {0x1b000, 0x1b16f}, /* kana supplement, extended */
        {0x20000, 0x3ffff}, /* CJK extensions B.. */
    };
    return unicode_in_ranges(cp, ranges, sizeof(ranges) / sizeof(ranges[0]));
}

/* Exact blocks rather than normalize's old U+0600..U+08FF, U+FB50..U+FEFF: those spans also
 * took in Syriac, Thaana, NKo, Samaritan and Mandaic, and the variation selectors, vertical
 * forms and combining half marks of U+FE00..U+FE6F. Calling those Arabic made the skeleton
 * view skip rescans it needed (a Syriac mark is a lone mark, not an Arabic spelling change). */
bool unicode_is_arabic_script(int32_t cp)
{
    static const unicode_range_t ranges[] = {
        {0x0600, 0x06ff}, /* Arabic */
        {0x0750, 0x077f}, /* Arabic Supplement */
        {0x0870, 0x089f}, /* Arabic Extended-B */
        {0x08a0, 0x08ff}, /* Arabic Extended-A */
        {0xfb50, 0xfdff}, /* Arabic Presentation Forms-A */
        {0xfe70, 0xfeff}, /* Arabic Presentation Forms-B */
    };
    return unicode_in_ranges(cp, ranges, sizeof(ranges) / sizeof(ranges[0]));
}
