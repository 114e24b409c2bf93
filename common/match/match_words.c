/* Word and script classes of code points for whole-word keywords and the Latin guard. */
#include "match/match_internal.h"
#include "util/unicode.h"
#include "util/utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* Word character for whole-word keywords: a Unicode letter, mark or number, or '_'. */
bool match_cp_is_word(int32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') ||
               cp == '_';
    if (unicode_is_unspaced_script(cp))
        return false;
    utf8proc_category_t cat = utf8proc_category(cp);
    return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_NO;
}

/* The code point that ends at text[pos]; -1 at the start or on broken UTF-8. */
int32_t match_cp_before(const unsigned char *text, size_t pos)
{
    if (pos == 0)
        return -1;
    if (text[pos - 1] < 0x80)
        return text[pos - 1];
    size_t i = pos - 1;
    while (i > 0 && pos - i < 4 && (text[i] & 0xc0) == 0x80)
        i--;
    size_t n;
    int32_t cp = utf8_decode(text + i, text + pos, &n);
    return cp >= 0 && n == pos - i ? cp : -1;
}

/* The code point that starts at text[pos]; -1 at the end or on broken UTF-8. */
int32_t match_cp_at(const unsigned char *text, size_t pos, size_t len)
{
    if (pos >= len)
        return -1;
    size_t n;
    return utf8_decode(text + pos, text + len, &n);
}

/* Latin script letters, as far as the guard is concerned (NFKC has already turned
 * fullwidth and mathematical letters into ASCII). */
bool match_cp_is_latin(int32_t cp)
{
    return cp < 0x0250 || (cp >= 0x1D00 && cp <= 0x1DBF) || (cp >= 0x1E00 && cp <= 0x1EFF) ||
           (cp >= 0x2C60 && cp <= 0x2C7F) || (cp >= 0xA720 && cp <= 0xA7FF) ||
           (cp >= 0xAB30 && cp <= 0xAB6F);
}

bool match_cp_is_letter(int32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
    utf8proc_category_t cat = utf8proc_category(cp);
    return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
}

/* Counts the letters of kw that is_a says are of one script, those is_b says are of another
 * (tried second), and the rest; marks, digits and punctuation are not counted. */
static void letter_census(const char *kw, bool (*is_a)(int32_t), bool (*is_b)(int32_t), size_t *na,
                          size_t *nb, size_t *nother)
{
    *na = *nb = *nother = 0;
    const unsigned char *p = (const unsigned char *)kw;
    size_t len = strlen(kw);
    for (size_t i = 0; i < len;) {
        int32_t cp = match_cp_at(p, i, len);
        i += p[i] < 0x80 ? 1 : p[i] < 0xE0 ? 2 : p[i] < 0xF0 ? 3 : 4;
        if (cp < 0 || !match_cp_is_letter(cp))
            continue;
        if (is_a(cp))
            (*na)++;
        else if (is_b(cp))
            (*nb)++;
        else
            (*nother)++;
    }
}

/* Which derived views a keyword may use: its letters are all Latin or all Arabic (or it has
 * none). A Cyrillic keyword is left in folded: its skeleton would be Latin look-alikes and
 * would fire on English text. *latin says whether the Latin guard applies. */
bool match_keyword_derivable(const char *kw, bool *latin)
{
    size_t nlatin, narabic, nother;
    letter_census(kw, match_cp_is_latin, unicode_is_arabic_script, &nlatin, &narabic, &nother);
    *latin = nlatin > 0;
    return nother == 0 && !(nlatin && narabic);
}

bool match_cp_is_cyrillic(int32_t cp)
{
    return (cp >= 0x0400 && cp <= 0x052F) || (cp >= 0x1C80 && cp <= 0x1C8F) ||
           (cp >= 0x2DE0 && cp <= 0x2DFF) || (cp >= 0xA640 && cp <= 0xA69F);
}

bool match_cp_is_greek(int32_t cp)
{
    return (cp >= 0x0370 && cp <= 0x03FF) || (cp >= 0x1F00 && cp <= 0x1FFF);
}

/* A keyword whose letters are all Cyrillic or all Greek: Latin letters that look like some of
 * them (c for \u0441, o for \u043e or \u03bf) are the usual way to write it past a filter. */
bool match_keyword_cyrillic_or_greek(const char *kw)
{
    size_t ncyrillic, ngreek, nother;
    letter_census(kw, match_cp_is_cyrillic, match_cp_is_greek, &ncyrillic, &ngreek, &nother);
    return nother == 0 && ((ncyrillic > 0) != (ngreek > 0));
}
