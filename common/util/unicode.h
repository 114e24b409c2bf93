/* Script classes of code points that more than one text stage needs to agree on. */
#ifndef TW_UNICODE_H
#define TW_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* An inclusive range of code points. */
typedef struct {
    int32_t lo, hi;
} unicode_range_t;

/* The index of the last entry of table (n entries of stride bytes, each starting with an
 * int32_t code point, sorted by it) whose code point is <= cp; n when cp precedes them all.
 * The one binary search over the text stages' code-point tables; inline because the
 * normalizer asks it per character. */
static inline size_t unicode_table_floor(int32_t cp, const void *table, size_t n, size_t stride)
{
    size_t lo = 0, hi = n; /* entries before lo are <= cp, entries from hi on are > cp */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int32_t key;
        memcpy(&key, (const char *)table + mid * stride, sizeof(key));
        if (key <= cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? lo - 1 : n;
}

/* True when cp lies in one of ranges[0, n), which are sorted by lo and do not overlap. */
static inline bool unicode_in_ranges(int32_t cp, const unicode_range_t *ranges, size_t n)
{
    size_t i = unicode_table_floor(cp, ranges, n, sizeof(*ranges));
    return i < n && cp <= ranges[i].hi;
}

/* Scripts written without spaces between words (Han, kana, Bopomofo, Thai, Lao, Khmer,
 * Myanmar, Tai Tham...). Matching treats their characters as neither needing nor breaking a
 * word boundary; fingerprinting shingles them by character 3-grams instead of words. */
bool unicode_is_unspaced_script(int32_t cp);

/* The Arabic script's own blocks (Arabic, Supplement, Extended-A and -B, Presentation Forms-A
 * and -B), not the neighbouring Syriac, Thaana, NKo, Samaritan or Mandaic blocks nor the
 * variation selectors and half marks that sit between the presentation forms. */
bool unicode_is_arabic_script(int32_t cp);

#endif
