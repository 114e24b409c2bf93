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
#include "normalize/normalize_internal.h"
#include "util/unicode.h"
#include "util/utf8.h"

#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "util/err.h"

/* utf8proc_decompose_char options: NFKC's decomposition half, full case folding, and removal
 * of Default_Ignorable_Code_Point (U+00AD, U+034F, U+061C, U+115F-1160, U+17B4-17B5,
 * U+180B-180F, U+200B-200F, U+202A-202E, U+2060-2064, U+2066-206F, U+3164, U+FE00-FE0F,
 * U+FEFF, U+FFA0, U+1BCA0-1BCA3, U+1D173-1D17A and the assigned code points of U+E0000-E0FFF,
 * as utf8proc 2.8 tags them; norm_cp_is_extra_ignorable() adds the rest).
 * UTF8PROC_COMPOSE makes decompose_char decompose canonically too; composition itself runs
 * per segment. STRIPCC is left out on purpose: it deletes most controls, and we want every
 * control to separate words like a space does. */
#define NORM_DECOMPOSE_OPTIONS                                                                     \
    ((utf8proc_option_t)(UTF8PROC_COMPAT | UTF8PROC_CASEFOLD | UTF8PROC_COMPOSE | UTF8PROC_IGNORE))

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
static const unicode_range_t norm_comp_seconds[] = {
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
int norm_reserve_slow(normalized_t *norm, size_t need)
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

/* Whitespace after NFKC: every Zs except U+1680 has become U+0020 by now, so what is left to
 * recognise is C0/C1 controls, U+0020, OGHAM SPACE MARK, and the line/paragraph separators.
 * Controls are treated as spaces so that "free\tmoney" or "free\x01money" still reads as two
 * words. */
static inline bool norm_cp_is_space(int32_t cp)
{
    return cp <= 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x1680 || cp == 0x2028 || cp == 0x2029;
}

/* Dropped like the default-ignorables although utf8proc 2.8 does not tag them so: every other
 * format character (gc=Cf: the interlinear annotation controls, Arabic number signs and end of
 * ayah, Syriac abbreviation mark, Kaithi number signs, Egyptian hieroglyph format controls)
 * and the default-ignorable code points that are still unassigned (U+2065, U+FFF0-FFF8, the
 * gaps of U+E0000-E0FFF), which utf8proc leaves alone. Put between the letters of a word,
 * each hid it from every view (perf/evasion_unicode.py, kind "ignorable"); a renderer draws
 * them as nothing or as a mark over the digits that follow, never as a word break. The list
 * is utf8proc 2.8's Cf less its ignorables; test_normalize_views.c checks every code point. */
static inline bool norm_cp_is_extra_ignorable(int32_t cp)
{
    /* Tested in this order because most text is ASCII, Latin, Arabic letters or CJK. */
    if (cp < 0x0600)
        return false;
    if (cp <= 0x08E2)
        return cp <= 0x0605 || cp == 0x06DD || cp == 0x070F || cp == 0x0890 || cp == 0x0891 ||
               cp == 0x08E2;
    if (cp < 0x2065)
        return false;
    if (cp <= 0xFFFB)
        return cp == 0x2065 || cp >= 0xFFF0;
    return cp == 0x110BD || cp == 0x110CD || (cp >= 0x13430 && cp <= 0x1343F) ||
           (cp >= 0xE0000 && cp <= 0xE0FFF);
}

static bool norm_cp_is_comp_second(int32_t cp)
{
    if (cp < 0x09BE || cp > 0x11930)
        return false;
    return unicode_in_ranges(cp, norm_comp_seconds,
                             sizeof(norm_comp_seconds) / sizeof(norm_comp_seconds[0]));
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

void norm_set_empty(normalized_t *norm)
{
    norm->len = 0;
    if (norm->text != norm_empty_text)
        norm->text[0] = '\0';
    if (norm->cap > 0) {
        norm->src_start[0] = 0;
        norm->src_end[0] = 0;
    }
}

/* Long on purpose: the per-character hot loop (the ASCII fast path, the decomposer and the
 * segment bookkeeping) shares its cursor and output state; split into functions it would
 * pass that state around on every character. Each branch says what it handles. */
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
    norm->ascii = true; /* until the loop meets a non-ASCII character */

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

        norm->ascii = false;
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
