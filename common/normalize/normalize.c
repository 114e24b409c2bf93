/* Text normalization: NFKC + full case folding through utf8proc, with default-ignorable code
 * points dropped, whitespace collapsed, and a byte-offset map back to the original.
 *
 * utf8proc_map() would give the text but not the offsets, and it allocates on every call, so
 * the string is normalized piecewise instead. Every input code point is decomposed on its own
 * (utf8proc_decompose_char: compatibility decomposition + case folding + ignorable removal),
 * and the decomposed stream is cut into segments that start at a code point nothing before it
 * can compose with: a starter (canonical combining class 0) that is not the second half of
 * any canonical composition. Reordering and composition never cross such a point, so
 * composing each segment on its own gives the same text as normalizing the whole string, and
 * every output byte of a segment maps to the original bytes of the whole segment.
 *
 * Plain ASCII that is not followed by a non-ASCII byte cannot compose with anything: it is
 * lower-cased byte by byte with an exact one-to-one map and never reaches utf8proc. */
#include "normalize/normalize.h"
#include "util/unicode.h"
#include "util/utf8.h"

#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "util/err.h"

/* utf8proc_decompose_char options: NFKC's decomposition half, full case folding, and removal
 * of Default_Ignorable_Code_Point (U+00AD, U+034F, U+061C, U+115F-1160, U+17B4-17B5,
 * U+180B-180F, U+200B-200F, U+202A-202E, U+2060-2064, U+2066-206F, U+3164, U+FE00-FE0F,
 * U+FEFF, U+FFA0, U+1BCA0-1BCA3, U+1D173-1D17A, U+E0000-E0FFF as utf8proc 2.8 tags them).
 * UTF8PROC_COMPOSE makes decompose_char decompose canonically too; composition itself runs
 * per segment. STRIPCC is left out on purpose: it deletes most controls, and we want every
 * control to separate words like a space does. */
#define NORM_DECOMPOSE_OPTIONS                                                                     \
    ((utf8proc_option_t)(UTF8PROC_COMPAT | UTF8PROC_CASEFOLD | UTF8PROC_COMPOSE | UTF8PROC_IGNORE))

/* The longest decomposition of one code point under these options is 18 (U+FDFA);
 * tests/unit/test_normalize.c checks every code point. */
#define NORM_DECOMP_MAX 32

/* A segment longer than this (a starter followed by over a hundred combining marks or
 * composition seconds: never real text, Unicode's stream-safe format allows 30) is composed
 * in pieces, which can differ from whole-string NFKC; the bound keeps the work per code point
 * and the stack use fixed. */
#define NORM_SEG_MAX 128

#define NORM_MIN_CAP 256

typedef struct {
    utf8proc_int32_t cp[NORM_SEG_MAX];
    size_t n;
    uint32_t src_start; /* original bytes of every code point in the segment */
    uint32_t src_end;
} norm_seg_t;

typedef struct {
    normalized_t *norm;
    bool space_pending; /* a whitespace run awaits the next visible character */
    uint32_t space_start;
    uint32_t space_end;
} norm_out_t;

/* Written only by normalized_init() before a buffer exists, so that text is always a valid C
 * string; never written through (cap stays 0 while text points here). */
static char norm_empty_text[1];

/* ASCII classes: 0 visible (kept, letters folded), 1 whitespace or control (-> space). */
static const uint8_t norm_ascii_space[128] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
};

/* Starters (combining class 0) that are the second half of a canonical composition, so they
 * must stay in the segment of the starter before them: Indic two-part vowels, Hangul medial
 * vowels and final consonants (L+V -> LV, LV+T -> LVT), and a few others. Derived from
 * utf8proc 2.8's data (every ccc-0 code point after the first in a canonical decomposition);
 * test_normalize.c compares the result with utf8proc_map() for each of them. */
static const struct {
    int32_t first, last;
} norm_comp_seconds[] = {
    {0x09BE, 0x09BE},   {0x09D7, 0x09D7},   {0x0B3E, 0x0B3E},   {0x0B56, 0x0B57},
    {0x0BBE, 0x0BBE},   {0x0BD7, 0x0BD7},   {0x0CC2, 0x0CC2},   {0x0CD5, 0x0CD6},
    {0x0D3E, 0x0D3E},   {0x0D57, 0x0D57},   {0x0DCF, 0x0DCF},   {0x0DDF, 0x0DDF},
    {0x0FB5, 0x0FB5},   {0x0FB7, 0x0FB7},   {0x102E, 0x102E},   {0x1161, 0x1175},
    {0x11A8, 0x11C2},   {0x1B35, 0x1B35},   {0x11127, 0x11127}, {0x1133E, 0x1133E},
    {0x11357, 0x11357}, {0x114B0, 0x114B0}, {0x114BA, 0x114BA}, {0x114BD, 0x114BD},
    {0x115AF, 0x115AF}, {0x11930, 0x11930},
};

void normalized_init(normalized_t *norm)
{
    norm->text = norm_empty_text;
    norm->len = 0;
    norm->src_start = NULL;
    norm->src_end = NULL;
    norm->cap = 0;
}

void normalized_fini(normalized_t *norm)
{
    /* A failed growth can leave buffers behind while cap is still 0: free by pointer. */
    if (norm->text != norm_empty_text)
        free(norm->text);
    free(norm->src_start);
    free(norm->src_end);
    normalized_init(norm);
}

/* Grows the three arrays to hold at least need entries. Geometric growth and no shrinking:
 * a worker's buffers settle at its largest post and later calls do not allocate. */
static int norm_reserve_slow(normalized_t *norm, size_t need)
{
    size_t cap = norm->cap < NORM_MIN_CAP ? NORM_MIN_CAP : norm->cap;
    while (cap < need)
        cap *= 2;

    char *text = norm->text != norm_empty_text ? norm->text : NULL;
    text = realloc(text, cap);
    if (!text)
        return TW_ERR_NOMEM;
    norm->text = text;
    /* cap is raised only once all three succeeded, so a failure leaves a consistent struct
     * whose arrays are merely larger than it says. */
    uint32_t *start = realloc(norm->src_start, cap * sizeof(*start));
    if (!start)
        return TW_ERR_NOMEM;
    norm->src_start = start;
    uint32_t *end = realloc(norm->src_end, cap * sizeof(*end));
    if (!end)
        return TW_ERR_NOMEM;
    norm->src_end = end;
    norm->cap = cap;
    return 0;
}

static inline int norm_reserve(normalized_t *norm, size_t need)
{
    return need <= norm->cap ? 0 : norm_reserve_slow(norm, need);
}

/* Whitespace after NFKC: every Zs except U+1680 has become U+0020 by now, so what is left to
 * recognise is C0/C1 controls, U+0020, OGHAM SPACE MARK, and the line/paragraph separators.
 * Controls are treated as spaces so that "free\tmoney" or "free\x01money" still reads as two
 * words. */
static inline bool norm_cp_is_space(int32_t cp)
{
    return cp <= 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x1680 || cp == 0x2028 || cp == 0x2029;
}

/* Format characters utf8proc does not tag as default-ignorable but that are just as
 * invisible: the interlinear annotation controls. */
static inline bool norm_cp_is_extra_ignorable(int32_t cp)
{
    return cp >= 0xFFF9 && cp <= 0xFFFB;
}

static bool norm_cp_is_comp_second(int32_t cp)
{
    if (cp < 0x09BE || cp > 0x11930)
        return false;
    size_t lo = 0, hi = sizeof(norm_comp_seconds) / sizeof(norm_comp_seconds[0]);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < norm_comp_seconds[mid].first)
            hi = mid;
        else if (cp > norm_comp_seconds[mid].last)
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

static inline int norm_ccc(int32_t cp)
{
    return utf8proc_get_property(cp)->combining_class;
}

/* True when utf8proc_decompose_char() would return cp unchanged under our options: no
 * Hangul syllable decomposition, not ignorable, no case folding, no decomposition. These are
 * the checks it makes, read from the public property record; the exhaustive test in
 * test_normalize.c compares every code point with utf8proc_map(). */
static inline bool norm_cp_maps_to_itself(int32_t cp, const utf8proc_property_t *prop)
{
    return !(cp >= 0xAC00 && cp <= 0xD7A3) && !prop->ignorable &&
           prop->casefold_seqindex == UINT16_MAX && prop->decomp_seqindex == UINT16_MAX;
}

/* Emits the pending space, if any visible text precedes it (leading space is trimmed). */
static inline void norm_out_space(norm_out_t *out)
{
    normalized_t *norm = out->norm;
    if (out->space_pending && norm->len > 0) {
        norm->text[norm->len] = ' ';
        norm->src_start[norm->len] = out->space_start;
        norm->src_end[norm->len] = out->space_end;
        norm->len++;
    }
    out->space_pending = false;
}

static inline void norm_out_space_add(norm_out_t *out, uint32_t start, uint32_t end)
{
    if (!out->space_pending) {
        out->space_pending = true;
        out->space_start = start;
    }
    out->space_end = end;
}

/* Puts the segment in canonical order, composes it, and appends it to the output with every
 * byte mapped to the segment's whole original range. */
static int norm_seg_flush_slow(norm_out_t *out, norm_seg_t *seg)
{
    size_t n = seg->n;
    seg->n = 0;
    if (n > 1) {
        /* Canonical ordering: a stable sort of each run of non-starters by combining class,
         * the same swaps utf8proc_decompose_custom() makes. Runs are a few marks long. */
        for (size_t i = 1; i < n; i++) {
            int32_t cp = seg->cp[i];
            int ccc = norm_ccc(cp);
            if (ccc == 0)
                continue;
            size_t j = i;
            while (j > 0) {
                int prev = norm_ccc(seg->cp[j - 1]);
                if (prev <= ccc)
                    break;
                seg->cp[j] = seg->cp[j - 1];
                j--;
            }
            seg->cp[j] = cp;
        }
        utf8proc_ssize_t composed =
            utf8proc_normalize_utf32(seg->cp, (utf8proc_ssize_t)n, UTF8PROC_COMPOSE);
        if (composed < 0)
            return TW_ERR_INVALID; /* cannot happen: the buffer holds only valid scalars */
        n = (size_t)composed;
    }

    normalized_t *norm = out->norm;
    /* +1 for a pending space, +1 for the terminating NUL and the offset sentinel. */
    int rc = norm_reserve(norm, norm->len + n * 4 + 2);
    if (rc != 0)
        return rc;
    norm_out_space(out);
    for (size_t i = 0; i < n; i++) {
        unsigned char bytes[4];
        size_t nbytes = utf8_encode(seg->cp[i], bytes);
        for (size_t b = 0; b < nbytes; b++) {
            norm->text[norm->len] = (char)bytes[b];
            norm->src_start[norm->len] = seg->src_start;
            norm->src_end[norm->len] = seg->src_end;
            norm->len++;
        }
    }
    return 0;
}

static inline int norm_seg_flush(norm_out_t *out, norm_seg_t *seg)
{
    return seg->n == 0 ? 0 : norm_seg_flush_slow(out, seg);
}

/* Adds one decomposed code point with combining class ccc that came from original bytes
 * [start, end). */
static inline int norm_seg_add(norm_out_t *out, norm_seg_t *seg, int32_t cp, int ccc,
                               uint32_t start, uint32_t end)
{
    int rc;
    if (norm_cp_is_space(cp)) {
        if ((rc = norm_seg_flush(out, seg)) != 0)
            return rc;
        norm_out_space_add(out, start, end);
        return 0;
    }
    if (norm_cp_is_extra_ignorable(cp))
        return 0;
    bool boundary = ccc == 0 && !norm_cp_is_comp_second(cp);
    if (boundary || seg->n == NORM_SEG_MAX) {
        if ((rc = norm_seg_flush(out, seg)) != 0)
            return rc;
    }
    if (seg->n == 0) {
        seg->src_start = start;
    }
    seg->src_end = end;
    seg->cp[seg->n++] = cp;
    return 0;
}

static void norm_set_empty(normalized_t *norm)
{
    norm->len = 0;
    if (norm->text != norm_empty_text)
        norm->text[0] = '\0';
    if (norm->cap > 0) {
        norm->src_start[0] = 0;
        norm->src_end[0] = 0;
    }
}

int normalize_text(const char *src, size_t len, normalized_t *norm)
{
    norm->len = 0;
    int rc = 0;
    if ((uint64_t)len > UINT32_MAX) {
        rc = TW_ERR_TOO_LARGE;
        goto fail;
    }
    if (!utf8_is_valid(src, len)) {
        rc = TW_ERR_UTF8;
        goto fail;
    }
    /* Most text does not grow (ASCII, fullwidth forms and accents shrink or stay); the
     * slow path reserves more when a decomposition expands. */
    if ((rc = norm_reserve(norm, len + 2)) != 0)
        goto fail;

    const unsigned char *s = (const unsigned char *)src;
    norm_out_t out = {.norm = norm};
    norm_seg_t seg;
    seg.n = 0;
    size_t i = 0;

    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            if ((rc = norm_seg_flush(&out, &seg)) != 0)
                goto fail;
            if (!norm_ascii_space[c] && i + 1 < len && s[i + 1] >= 0x80) {
                /* A combining mark may follow ("e\u0301"): let the segment path compose. */
                seg.n = 1;
                seg.cp[0] = (int32_t)(c - 'A' < 26 ? c + 32 : c);
                seg.src_start = (uint32_t)i;
                seg.src_end = (uint32_t)i + 1;
                i++;
                continue;
            }
            /* ASCII fast path: letters folded, one output byte per input byte with an exact
             * map, whitespace and controls collapsed inline. It stops before a non-ASCII
             * byte and before a visible character that a non-ASCII byte follows. */
            if ((rc = norm_reserve(norm, norm->len + (len - i) + 2)) != 0)
                goto fail;
            char *text = norm->text;
            uint32_t *starts = norm->src_start, *ends = norm->src_end;
            size_t o = norm->len;
            bool pending = out.space_pending;
            uint32_t pending_start = out.space_start, pending_end = out.space_end;
            for (;;) {
                if (norm_ascii_space[c]) {
                    if (!pending)
                        pending_start = (uint32_t)i;
                    pending = true;
                    pending_end = (uint32_t)i + 1;
                } else {
                    if (pending && o > 0) {
                        text[o] = ' ';
                        starts[o] = pending_start;
                        ends[o] = pending_end;
                        o++;
                    }
                    pending = false;
                    text[o] = (char)(c - 'A' < 26 ? c + 32 : c);
                    starts[o] = (uint32_t)i;
                    ends[o] = (uint32_t)i + 1;
                    o++;
                }
                i++;
                if (i >= len)
                    break;
                c = s[i];
                if (c >= 0x80 || (i + 1 < len && s[i + 1] >= 0x80 && !norm_ascii_space[c]))
                    break;
            }
            norm->len = o;
            out.space_pending = pending;
            out.space_start = pending_start;
            out.space_end = pending_end;
            continue;
        }

        size_t n;
        int32_t cp = utf8_decode(s + i, s + len, &n);
        const utf8proc_property_t *prop = utf8proc_get_property(cp);
        if (norm_cp_maps_to_itself(cp, prop)) {
            /* Most non-ASCII text (Arabic, CJK, Cyrillic lower case...): skip the decomposer. */
            rc =
                norm_seg_add(&out, &seg, cp, prop->combining_class, (uint32_t)i, (uint32_t)(i + n));
            if (rc != 0)
                goto fail;
            i += n;
            continue;
        }
        utf8proc_int32_t decomposed[NORM_DECOMP_MAX];
        int boundclass = 0;
        utf8proc_ssize_t nd = utf8proc_decompose_char(cp, decomposed, NORM_DECOMP_MAX,
                                                      NORM_DECOMPOSE_OPTIONS, &boundclass);
        if (nd < 0 || nd > NORM_DECOMP_MAX) {
            rc = TW_ERR_INVALID; /* cannot happen for valid scalars; see NORM_DECOMP_MAX */
            goto fail;
        }
        for (utf8proc_ssize_t k = 0; k < nd; k++) {
            rc = norm_seg_add(&out, &seg, decomposed[k], norm_ccc(decomposed[k]), (uint32_t)i,
                              (uint32_t)(i + n));
            if (rc != 0)
                goto fail;
        }
        i += n;
    }
    if ((rc = norm_seg_flush(&out, &seg)) != 0)
        goto fail;
    /* A trailing whitespace run is dropped: out.space_pending is simply never emitted. */
    norm->text[norm->len] = '\0';
    norm->src_start[norm->len] = (uint32_t)len;
    norm->src_end[norm->len] = (uint32_t)len;
    return 0;

fail:
    norm_set_empty(norm);
    return rc;
}

void normalized_span_to_source(const normalized_t *norm, size_t start, size_t end,
                               size_t *src_start, size_t *src_end)
{
    /* Spans come from match results on this very text; clamp rather than trust them. */
    if (end > norm->len)
        end = norm->len;
    if (start > end)
        start = end;
    if (norm->cap == 0) {
        *src_start = *src_end = 0;
        return;
    }
    if (start == end) {
        /* src_start[len] is the original length (see normalize.h). */
        *src_start = *src_end = norm->src_start[start];
        return;
    }
    *src_start = norm->src_start[start];
    *src_end = norm->src_end[end - 1];
}

/* ---- Derived views: skeleton and squash (see normalize.h) ---------------------------------- */

#include "normalize/confusables_table.h"

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

/* Arabic letter forms that spelling varies between: returns the form the skeleton keeps,
 * 0 to drop the code point (tatweel), or cp itself. */
static int32_t norm_skel_arabic(int32_t cp)
{
    switch (cp) {
    case 0x0640: /* tatweel (kashida) */
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
        return 0x064A;
    case 0x0629: /* teh marbuta */
        return 0x0647;
    case 0x0624: /* waw with hamza */
        return 0x0648;
    case 0x06A9: /* keheh */
        return 0x0643;
    default:
        return cp;
    }
}

static const char *norm_confusable(int32_t cp)
{
    size_t lo = 0, hi = confusables_table_len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < confusables_table[mid].cp)
            hi = mid;
        else if (cp > confusables_table[mid].cp)
            lo = mid + 1;
        else
            return confusables_table[mid].proto;
    }
    return NULL;
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
            /* ASCII runs are copied with an identity map. */
            size_t j = i;
            while (j < len && s[j] < 0x80)
                j++;
            if ((rc = norm_reserve(out, out->len + (j - i) + 2)) != 0)
                goto fail;
            memcpy(out->text + out->len, s + i, j - i);
            for (size_t k = i; k < j; k++) {
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
