/* Text normalization: the text rules and fingerprints see.
 *
 * Produces NFKC + full case folded UTF-8 with default-ignorable code points (zero-width,
 * bidi controls, soft hyphen...) removed and whitespace runs collapsed to one ASCII space,
 * and a byte-offset map back to the original so spans in alerts point at original bytes. */
#ifndef TW_NORMALIZE_H
#define TW_NORMALIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *text;          /* normalized UTF-8, NUL-terminated; owned */
    size_t len;          /* bytes in text, without the NUL */
    uint32_t *src_start; /* per normalized byte: first original byte that produced it */
    uint32_t *src_end;   /* per normalized byte: one past the last original byte */
    size_t cap;          /* capacity of the three arrays; buffers are reused between calls */
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

/* Strict UTF-8 validation (no overlongs, no surrogates, nothing above U+10FFFF). */
bool utf8_is_valid(const char *s, size_t len);

#endif
