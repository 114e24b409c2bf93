/* Script classes of code points that more than one text stage needs to agree on. */
#ifndef TW_UNICODE_H
#define TW_UNICODE_H

#include <stdbool.h>
#include <stdint.h>

/* Scripts written without spaces between words (Han, kana, Bopomofo, Thai, Lao, Khmer,
 * Myanmar, Tai Tham...). Matching treats their characters as neither needing nor breaking a
 * word boundary; fingerprinting shingles them by character 3-grams instead of words. */
bool unicode_is_unspaced_script(int32_t cp);

/* The Arabic script's own blocks (Arabic, Supplement, Extended-A and -B, Presentation Forms-A
 * and -B), not the neighbouring Syriac, Thaana, NKo, Samaritan or Mandaic blocks nor the
 * variation selectors and half marks that sit between the presentation forms. */
bool unicode_is_arabic_script(int32_t cp);

#endif
