/* Text normalization: the text rules and fingerprints see.
 *
 * Produces NFKC + full case folded UTF-8 with default-ignorable code points (zero-width,
 * bidi controls, soft hyphen..., assigned or not) and the other format characters removed,
 * whitespace runs collapsed to one ASCII space, and a byte-offset map back to the original so
 * spans in alerts point at original bytes. */
#ifndef TW_NORMALIZE_H
#define TW_NORMALIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/utf8.h" /* utf8_is_valid(), which callers of normalize_text() use first */

typedef struct normalized {
    char *text;          /* normalized UTF-8, NUL-terminated; owned */
    size_t len;          /* bytes in text, without the NUL */
    uint32_t *src_start; /* per normalized byte: first original byte that produced it */
    uint32_t *src_end;   /* per normalized byte: one past the last original byte */
    size_t cap;          /* capacity of the three arrays; buffers are reused between calls */
    bool ascii;          /* normalize_text: the source was plain ASCII, so its skeleton view is
                            this text itself (no look-alike, mark or NFKC expansion in it) */
} normalized_t;
/* Offset map details: output that came from several original code points (a composed
 * "e" + U+0301, a fullwidth letter, "ss" from U+00DF) maps every byte to the whole original
 * range; one space standing for a whitespace run maps to the whole run. src_start and src_end
 * are non-decreasing. Like text's NUL, src_start[len] == src_end[len] == the original length
 * (a sentinel, so an empty span at the end maps to the end of the original). */

/* init allocates nothing (text is "" until the first normalize_text); fini frees the buffers
 * and leaves norm initialized. */
void normalized_init(normalized_t *norm);
void normalized_fini(normalized_t *norm);

/* Normalizes src[0, len) into norm, reusing its buffers. src need not be NUL-terminated.
 * Control characters count as whitespace; leading and trailing whitespace is trimmed.
 * ASCII-only input never calls into utf8proc, and a warmed-up norm is not reallocated.
 * Returns 0, TW_ERR_UTF8 when src is not valid UTF-8, TW_ERR_TOO_LARGE when len does not fit
 * in 32-bit offsets, TW_ERR_NOMEM. On error norm holds an empty string. */
int normalize_text(const char *src, size_t len, normalized_t *norm);

/* Maps the normalized byte span [start, end) to the original byte span [*src_start, *src_end).
 * An empty span maps to an empty span at the corresponding original position. */
void normalized_span_to_source(const normalized_t *norm, size_t start, size_t end,
                               size_t *src_start, size_t *src_end);

/* Views: the same post seen three ways, each scanned by the patterns that opted into it.
 * - folded:   normalize_text() output above (NFKC + case fold + invisibles + whitespace).
 * - skeleton: folded, less the punctuation NFKC spelled around the letter of one character
 *             (U+249C is "(a)" in folded, "a" here), then canonically decomposed with
 *             Latin/Greek/Cyrillic/Hebrew/Arabic combining marks dropped (gi\u1ea3 -> gia,
 *             caf\u00e9 -> cafe, Arabic tashkeel), Arabic tatweel removed and alef/yeh/teh
 *             marbuta forms (and the Urdu/Persian heh, kaf and yeh forms) unified, and every
 *             non-ASCII code point that Unicode's confusables.txt says looks like ASCII text
 *             replaced by that ASCII (Cyrillic \u0430 -> a, Greek \u03bf -> o, ...;
 *             common/normalize/confusables_table.c).
 *             ASCII is never changed, so the skeleton of ASCII text is the text itself.
 * - squash:   skeleton, then leetspeak digits and symbols read as letters (0->o 1->i 3->e 4->a
 *             5->s 7->t 8->b 9->g @->a $->s !->i |->l +->t), separators between single letters
 *             dropped ("f.r.e.e", "f r e e", "f-r-e-e" -> "free"), and repeated letters
 *             collapsed ("freeee" -> "fre"; keywords are squashed the same way).
 * A derived view (skeleton, squash) is a normalized_t whose src_start/src_end map into the
 * bytes of the folded view it was made from, not into the original: compose the two maps with
 * normalized_span_to_source() twice (normalize_view_span_to_source does it). */
typedef enum {
    NORM_VIEW_FOLDED,
    NORM_VIEW_SKELETON,
    NORM_VIEW_SQUASH,
    NORM_VIEW_COUNT,
} normalize_view_t;

const char *normalize_view_name(normalize_view_t view);
/* Returns 0 and sets *out, or TW_ERR_INVALID for an unknown name. */
int normalize_view_parse(const char *name, normalize_view_t *out);

/* Derives the skeleton view of folded (normalize_text() output) into out, reusing out's
 * buffers. *same is set when the skeleton is byte for byte the folded text (all ASCII, or no
 * mark, confusable or Arabic form in it), so callers can skip scanning it. Returns 0 or
 * TW_ERR_NOMEM (out is then empty). */
int normalize_skeleton(const normalized_t *folded, normalized_t *out, bool *same);

/* What normalize_skeleton_ex saw change, so a scanner can skip the skeleton when no change
 * can concern its patterns (a curly quote becoming ASCII matters only to patterns with an
 * apostrophe). */
typedef struct {
    bool same;         /* the skeleton is the folded text */
    bool arabic;       /* Arabic letters folded, or Arabic marks or tatweel dropped */
    bool lone_mark;    /* a combining mark dropped on its own (joins its neighbours) */
    bool other;        /* a changed character became non-ASCII, non-Arabic text */
    uint32_t ascii[4]; /* bitmap of the ASCII bytes that changed characters became */
} normalize_skeleton_info_t;

/* normalize_skeleton, reporting what changed in *info. */
int normalize_skeleton_ex(const normalized_t *folded, normalized_t *out,
                          normalize_skeleton_info_t *info);

/* Derives the squash view of a skeleton view (made by normalize_skeleton from the same folded
 * text) into out; out's map points into the folded text too. Returns 0 or TW_ERR_NOMEM. */
int normalize_squash(const normalized_t *skeleton, normalized_t *out);

/* Normalizes src (like normalize_text) and derives the requested view in one call: for
 * NORM_VIEW_FOLDED out is the folded text; otherwise tmp holds the folded (and skeleton)
 * text and out the view, with out's map composed so that it points into src. For rules
 * files (keywords are normalized into each view they are matched in) and tests; allocates. */
int normalize_text_view(const char *src, size_t len, normalize_view_t view, normalized_t *out);

/* Maps a span of a derived view (whose map points into folded) to original bytes. */
void normalize_view_span_to_source(const normalized_t *folded, const normalized_t *view,
                                   size_t start, size_t end, size_t *src_start, size_t *src_end);

#endif
