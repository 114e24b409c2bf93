/* Script classes of code points that more than one text stage needs to agree on. */
#ifndef TW_UNICODE_H
#define TW_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An inclusive range of code points. */
typedef struct {
    int32_t lo, hi;
} unicode_range_t;

/* True when cp lies in one of ranges[0, n), which are sorted by lo and do not overlap. The one
 * range lookup of the text stages; inline because the normalizer asks it per character. */
static inline bool unicode_in_ranges(int32_t cp, const unicode_range_t *ranges, size_t n)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < ranges[mid].lo)
            hi = mid;
        else if (cp > ranges[mid].hi)
            lo = mid + 1;
        else
            return true;
    }
    return false;
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
