/* Derived views of folded text: skeleton (confusables to their prototypes, marks dropped,
 * Arabic spelling variants unified) and squash (leetspeak and separators removed); see
 * normalize.h. */
#include "normalize/confusables_table.h"
#include "normalize/normalize.h"
#include "normalize/normalize_internal.h"
#include "util/unicode.h"
#include "util/utf8.h"

#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "util/err.h"

static const char *const norm_view_names[NORM_VIEW_COUNT] = {"folded", "skeleton", "squash"};

const char *normalize_view_name(normalize_view_t view)
{
    return (unsigned)view < NORM_VIEW_COUNT ? norm_view_names[view] : "unknown";
}

int normalize_view_parse(const char *name, normalize_view_t *out)
{
    for (unsigned i = 0; i < NORM_VIEW_COUNT; i++) {
        if (strcmp(name, norm_view_names[i]) == 0) {
            *out = (normalize_view_t)i;
            return 0;
        }
    }
    return TW_ERR_INVALID;
}

/* Appends n bytes that all map to [start, end). Reserves room for the NUL and sentinel. */
static inline int norm_push(normalized_t *out, const char *bytes, size_t n, uint32_t start,
                            uint32_t end)
{
    int rc = norm_reserve(out, out->len + n + 2);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        out->text[out->len] = bytes[i];
        out->src_start[out->len] = start;
        out->src_end[out->len] = end;
        out->len++;
    }
    return 0;
}

static void norm_terminate(normalized_t *out, uint32_t end)
{
    out->text[out->len] = '\0';
    out->src_start[out->len] = end;
    out->src_end[out->len] = end;
}

/* Combining marks the skeleton drops: the generic diacritics blocks (Latin, Greek, Cyrillic
 * and Vietnamese accents decompose into these), Hebrew points and Arabic tashkeel. Marks of
 * Indic and other scripts stay: there they are vowels, not decoration. */
static bool norm_skel_is_mark(int32_t cp)
{
    static const struct {
        int32_t lo, hi;
    } ranges[] = {
        {0x0300, 0x036F}, {0x0483, 0x0489}, {0x0591, 0x05BD}, {0x05BF, 0x05BF}, {0x05C1, 0x05C2},
        {0x05C4, 0x05C5}, {0x05C7, 0x05C7}, {0x0610, 0x061A}, {0x064B, 0x065F}, {0x0670, 0x0670},
        {0x06D6, 0x06DC}, {0x06DF, 0x06E4}, {0x06E7, 0x06E8}, {0x06EA, 0x06ED}, {0x08D3, 0x08E1},
        {0x08E3, 0x08FF}, {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF}, {0x20D0, 0x20FF}, {0xFE20, 0xFE2F},
    };
    if (cp < 0x0300)
        return false;
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
        if (cp >= ranges[i].lo && cp <= ranges[i].hi)
            return true;
    return false;
}

/* Arabic letter forms that spelling varies between, and the Urdu and Persian letters that
 * confusables.txt gives the prototype of a basic Arabic letter (measured with
 * perf/evasion_unicode.py): returns the form the skeleton keeps, 0 to drop the code point
 * (tatweel), or cp itself. Peh, noon and yeh with three dots keep their own: their prototype
 * is theh's only because it ignores whether the dots are above or below, and peh is an
 * everyday letter of Persian and Urdu. */
static int32_t norm_skel_arabic(int32_t cp)
{
    switch (cp) {
    case 0x0640: /* tatweel (kashida) */
    case 0x0674: /* high hamza, a letter that NFKC leaves of U+0675-0678: dropped like the
                    hamza marks above and below */
        return 0;
    case 0x0622: /* alef with madda, hamza above/below, wasla, wavy hamzas */
    case 0x0623:
    case 0x0625:
    case 0x0671:
    case 0x0672:
    case 0x0673:
    case 0x0675:
        return 0x0627;
    case 0x0649: /* alef maksura */
    case 0x06CC: /* Farsi yeh */
    case 0x0626: /* yeh with hamza */
    case 0x066E: /* dotless beh, noon ghunna, yeh barree: confusables.txt's yeh prototype */
    case 0x06BA:
    case 0x06D2:
        return 0x064A;
    case 0x0629: /* teh marbuta, teh marbuta goal */
    case 0x06C3:
    case 0x06BE: /* heh doachashmee, heh goal, ae: confusables.txt's heh prototype */
    case 0x06C1:
    case 0x06D5:
        return 0x0647;
    case 0x0624: /* waw with hamza */
        return 0x0648;
    case 0x06A9: /* keheh, swash kaf */
    case 0x06AA:
        return 0x0643;
    case 0x06A7: /* qaf with dot above, which confusables.txt reads as feh */
        return 0x0641;
    default:
        return cp;
    }
}

static const char *norm_confusable(int32_t cp)
{
    size_t i = unicode_table_floor(cp, confusables_table, confusables_table_len,
                                   sizeof(confusables_table[0]));
    return i < confusables_table_len && confusables_table[i].cp == cp ? confusables_table[i].proto
                                                                      : NULL;
}

static inline void norm_info_ascii(normalize_skeleton_info_t *info, unsigned char c)
{
    info->ascii[c >> 5] |= 1u << (c & 31);
}

/* Appends the skeleton of one (decomposed) code point and records in info what changed.
 * forced: cp comes from a decomposition that already differs from the folded text. */
static int norm_skel_emit(normalized_t *out, int32_t cp, uint32_t start, uint32_t end, bool forced,
                          normalize_skeleton_info_t *info)
{
    if (norm_skel_is_mark(cp)) {
        info->same = false;
        if (unicode_is_arabic_script(cp))
            info->arabic = true;
        else if (!forced)
            info->lone_mark = true; /* it joins its neighbours: nothing to narrow down */
        return 0;
    }
    int32_t ar = cp >= 0x0600 && cp <= 0x06FF ? norm_skel_arabic(cp) : cp;
    if (ar != cp) {
        info->same = false;
        info->arabic = true;
        if (ar == 0)
            return 0;
        cp = ar;
    }
    const char *proto = norm_confusable(cp);
    if (proto) {
        info->same = false;
        for (const char *p = proto; *p; p++)
            norm_info_ascii(info, (unsigned char)*p);
        return norm_push(out, proto, strlen(proto), start, end);
    }
    if (forced) {
        if (cp < 0x80)
            norm_info_ascii(info, (unsigned char)cp);
        else if (unicode_is_arabic_script(cp))
            info->arabic = true;
        else
            info->other = true;
    }
    unsigned char bytes[4];
    size_t n = utf8_encode(cp, bytes);
    return norm_push(out, (const char *)bytes, n, start, end);
}

/* True when the punctuation or space at folded byte at is one that NFKC spelled around the
 * letters of a single original character: U+249C is "(a)", U+013F "l" + middle dot, U+037A
 * " " + iota. Those are the folded bytes that all map to the same original range
 * (longer than one byte: an ASCII original maps to itself); the group must hold a letter or
 * digit and no combining mark ("(" + U+0301 is typed punctuation carrying an accent). The
 * skeleton drops such punctuation, so "f\u24b0ck" reads as the word it draws. The letters of
 * the group are recorded in info as changed. */
static bool norm_skel_added_punct(const normalized_t *folded, size_t at,
                                  normalize_skeleton_info_t *info)
{
    uint32_t a = folded->src_start[at], b = folded->src_end[at];
    if (b - a <= 1)
        return false;
    size_t gs = at, ge = at + 1;
    while (gs > 0 && folded->src_start[gs - 1] == a && folded->src_end[gs - 1] == b)
        gs--;
    while (ge < folded->len && folded->src_start[ge] == a && folded->src_end[ge] == b)
        ge++;
    const unsigned char *s = (const unsigned char *)folded->text;
    unsigned runs = 0; /* runs of letters and digits */
    bool in_run = false;
    for (size_t k = gs; k < ge;) {
        size_t n;
        int32_t cp = utf8_decode(s + k, s + ge, &n);
        utf8proc_category_t cat = utf8proc_category(cp);
        if (cat >= UTF8PROC_CATEGORY_MN && cat <= UTF8PROC_CATEGORY_ME)
            return false;
        bool alnum = (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
                     (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
        runs += alnum && !in_run;
        in_run = alnum;
        k += n;
    }
    /* One run: "(a)", "10.". Punctuation between letters ("c/o" U+2105, "a.m." U+33C2, the
     * spaces of the Arabic phrase U+FDFD) separates words and stays. */
    if (runs != 1)
        return false;
    info->same = false;
    for (size_t k = gs; k < ge; k++) {
        if (s[k] >= 0x80)
            info->other = true;
        else if ((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= '0' && s[k] <= '9'))
            norm_info_ascii(info, s[k]);
    }
    return true;
}

static bool norm_is_ascii_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int normalize_skeleton(const normalized_t *folded, normalized_t *out, bool *same)
{
    normalize_skeleton_info_t info;
    int rc = normalize_skeleton_ex(folded, out, &info);
    *same = info.same;
    return rc;
}

int normalize_skeleton_ex(const normalized_t *folded, normalized_t *out,
                          normalize_skeleton_info_t *info)
{
    out->len = 0;
    memset(info, 0, sizeof(*info));
    info->same = true;
    int rc = norm_reserve(out, folded->len + 2);
    if (rc != 0)
        goto fail;
    const unsigned char *s = (const unsigned char *)folded->text;
    size_t len = folded->len;
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            /* ASCII runs are copied with an identity map, less the punctuation NFKC added. */
            size_t j = i;
            while (j < len && s[j] < 0x80)
                j++;
            if ((rc = norm_reserve(out, out->len + (j - i) + 2)) != 0)
                goto fail;
            for (size_t k = i; k < j; k++) {
                if (folded->src_end[k] - folded->src_start[k] > 1 && !norm_is_ascii_alnum(s[k]) &&
                    norm_skel_added_punct(folded, k, info))
                    continue;
                out->text[out->len] = (char)s[k];
                out->src_start[out->len] = (uint32_t)k;
                out->src_end[out->len] = (uint32_t)k + 1;
                out->len++;
            }
            i = j;
            continue;
        }
        size_t n;
        int32_t cp = utf8_decode(s + i, s + len, &n);
        uint32_t start = (uint32_t)i, end = (uint32_t)(i + n);
        const utf8proc_property_t *prop = utf8proc_get_property(cp);
        bool punct_or_space =
            (prop->category >= UTF8PROC_CATEGORY_PC && prop->category <= UTF8PROC_CATEGORY_PO) ||
            (prop->category >= UTF8PROC_CATEGORY_ZS && prop->category <= UTF8PROC_CATEGORY_ZP);
        if (punct_or_space && norm_skel_added_punct(folded, i, info)) {
            i += n; /* non-ASCII punctuation NFKC added: the middle dot of U+013F */
            continue;
        }
        bool hangul = cp >= 0xAC00 && cp <= 0xD7A3;
        /* Spanish ñ is a letter of its own, not an accented n: "año" (year) is not "ano". */
        bool keep = cp == 0x00F1;
        if (prop->decomp_seqindex == UINT16_MAX || hangul || keep || prop->decomp_type != 0) {
            /* No canonical decomposition (compatibility ones were applied by NFKC already). */
            rc = norm_skel_emit(out, cp, start, end, false, info);
        } else {
            utf8proc_int32_t dec[NORM_DECOMP_MAX];
            int boundclass = 0;
            utf8proc_ssize_t nd =
                utf8proc_decompose_char(cp, dec, NORM_DECOMP_MAX, UTF8PROC_DECOMPOSE, &boundclass);
            if (nd <= 0 || nd > NORM_DECOMP_MAX) {
                rc = norm_skel_emit(out, cp, start, end, false, info);
            } else {
                bool forced = nd != 1 || dec[0] != cp;
                if (forced)
                    info->same = false;
                for (utf8proc_ssize_t k = 0; k < nd && rc == 0; k++)
                    rc = norm_skel_emit(out, dec[k], start, end, forced, info);
            }
        }
        if (rc != 0)
            goto fail;
        i += n;
    }
    norm_terminate(out, (uint32_t)len);
    return 0;
fail:
    norm_set_empty(out);
    return rc;
}

/* Leetspeak: the letter an ASCII digit or symbol stands for, 0 when it stands for none. */
static char norm_leet(unsigned char c)
{
    switch (c) {
    case '0':
        return 'o';
    case '1':
    case '!':
        return 'i';
    case '|':
        return 'l';
    case '2':
        return 'z';
    case '3':
        return 'e';
    case '4':
    case '@':
        return 'a';
    case '5':
    case '$':
        return 's';
    case '7':
    case '+':
        return 't';
    case '8':
        return 'b';
    case '9':
        return 'g';
    default:
        return 0;
    }
}

/* Separators people put between the letters of a word to dodge filters. */
static bool norm_is_squash_sep(unsigned char c)
{
    return c == ' ' || c == '.' || c == '-' || c == '_' || c == '*' || c == '~' || c == ',' ||
           c == '/' || c == '\\' || c == '\'' || c == '"' || c == ':' || c == ';' || c == '=' ||
           c == '^' || c == '#';
}

/* One character of the squash input: the byte range and what it reads as. */
typedef struct {
    size_t at, n; /* bytes in the skeleton */
    char letter;  /* ASCII letter it reads as (after leet), or 0 */
    bool sep;
} norm_sq_char_t;

static norm_sq_char_t norm_sq_char(const unsigned char *s, size_t len, size_t i)
{
    norm_sq_char_t c = {.at = i, .n = 1};
    if (s[i] >= 0x80) {
        size_t n = 1;
        while (i + n < len && n < 4 && (s[i + n] & 0xC0) == 0x80)
            n++;
        c.n = n;
        return c;
    }
    if (s[i] >= 'a' && s[i] <= 'z') {
        c.letter = (char)s[i];
    } else if ((c.letter = norm_leet(s[i])) != 0 && (s[i] == '!' || s[i] == '|' || s[i] == '+')) {
        /* "sh!t" but not "money!": these stand for letters only before a letter or digit. */
        unsigned char next = i + 1 < len ? s[i + 1] : 0;
        if (!((next >= 'a' && next <= 'z') || (next >= '0' && next <= '9'))) {
            c.letter = 0;
            c.sep = true;
        }
    } else if (!c.letter) {
        c.sep = norm_is_squash_sep(s[i]);
    }
    return c;
}

int normalize_squash(const normalized_t *skel, normalized_t *out)
{
    out->len = 0;
    int rc = norm_reserve(out, skel->len + 2);
    if (rc != 0)
        goto fail;
    const unsigned char *s = (const unsigned char *)skel->text;
    size_t len = skel->len;
    size_t i = 0;
    /* A token is a run of non-separators. A separator run between two one-character tokens
     * that are letters is dropped. */
    bool prev_single = false;                       /* the last token was one letter */
    size_t pending_sep = SIZE_MAX, pending_end = 0; /* a separator run waiting for its fate */
    while (i < len) {
        norm_sq_char_t c = norm_sq_char(s, len, i);
        if (c.sep) {
            if (pending_sep == SIZE_MAX)
                pending_sep = i;
            pending_end = i + 1;
            i++;
            continue;
        }
        /* The token starting at i: is it a single letter? */
        size_t j = i + c.n;
        bool single = c.letter && (j >= len || norm_sq_char(s, len, j).sep);
        if (pending_sep != SIZE_MAX) {
            if (!(prev_single && single)) {
                for (size_t k = pending_sep; k < pending_end; k++)
                    if ((rc = norm_push(out, (const char *)s + k, 1, skel->src_start[k],
                                        skel->src_end[k])) != 0)
                        goto fail;
            }
            pending_sep = SIZE_MAX;
        }
        /* Emit the token, letters collapsed when repeated. */
        size_t k = i;
        while (k < len) {
            norm_sq_char_t t = norm_sq_char(s, len, k);
            if (t.sep)
                break;
            if (t.letter) {
                if (out->len > 0 && out->text[out->len - 1] == t.letter) {
                    /* A repeat: the previous byte now stands for this one too. */
                    out->src_end[out->len - 1] = skel->src_end[k];
                } else if ((rc = norm_push(out, &t.letter, 1, skel->src_start[k],
                                           skel->src_end[k])) != 0) {
                    goto fail;
                }
            } else {
                for (size_t b = 0; b < t.n; b++)
                    if ((rc = norm_push(out, (const char *)s + k + b, 1, skel->src_start[k],
                                        skel->src_end[k + t.n - 1])) != 0)
                        goto fail;
            }
            k += t.n;
        }
        prev_single = single;
        i = k;
    }
    if (pending_sep != SIZE_MAX) {
        for (size_t k = pending_sep; k < pending_end; k++)
            if ((rc = norm_push(out, (const char *)s + k, 1, skel->src_start[k],
                                skel->src_end[k])) != 0)
                goto fail;
    }
    norm_terminate(out, skel->cap ? skel->src_start[skel->len] : 0);
    return 0;
fail:
    norm_set_empty(out);
    return rc;
}

void normalize_view_span_to_source(const normalized_t *folded, const normalized_t *view,
                                   size_t start, size_t end, size_t *src_start, size_t *src_end)
{
    size_t fs, fe;
    normalized_span_to_source(view, start, end, &fs, &fe);
    normalized_span_to_source(folded, fs, fe, src_start, src_end);
}

int normalize_text_view(const char *src, size_t len, normalize_view_t view, normalized_t *out)
{
    if (view == NORM_VIEW_FOLDED)
        return normalize_text(src, len, out);
    normalized_t folded, skel;
    normalized_init(&folded);
    normalized_init(&skel);
    bool same;
    int rc = normalize_text(src, len, &folded);
    if (rc == 0)
        rc = normalize_skeleton(&folded, view == NORM_VIEW_SKELETON ? out : &skel, &same);
    if (rc == 0 && view == NORM_VIEW_SQUASH)
        rc = normalize_squash(&skel, out);
    if (rc == 0) {
        /* Compose the map so that out points into src. */
        for (size_t i = 0; i <= out->len; i++) {
            size_t a, b;
            if (i == out->len) {
                a = b = len;
            } else {
                normalized_span_to_source(&folded, out->src_start[i], out->src_end[i], &a, &b);
            }
            out->src_start[i] = (uint32_t)a;
            out->src_end[i] = (uint32_t)b;
        }
    } else {
        norm_set_empty(out);
    }
    normalized_fini(&folded);
    normalized_fini(&skel);
    return rc;
}
