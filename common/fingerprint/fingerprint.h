/* Fingerprints of normalized text for duplicate detection.
 *
 * exact: a 64-bit hash of the text after removing what does not change meaning for
 * duplicate detection (URLs, @mentions, '#' marks, punctuation runs, digits folded).
 * bands: MinHash LSH band keys over shingles of that text. Two posts whose shingle sets have
 * Jaccard similarity s share at least one band with probability 1 - (1 - s^rows)^bands, so a
 * shared band makes them near-duplicate candidates. Deterministic across processes and hosts
 * (fixed seeds) because band keys are shared through Redis by a fleet of workers. */
#ifndef TW_FINGERPRINT_H
#define TW_FINGERPRINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FINGERPRINT_BANDS 20
#define FINGERPRINT_ROWS  5

/* exact == fingerprint_hash64(canonical text, FINGERPRINT_SEED_EXACT). Part of the fleet-wide
 * key format, like the private seeds and MinHash parameters in fingerprint.c. */
#define FINGERPRINT_SEED_EXACT UINT64_C(0x7477657861637431) /* "twexact1" */

#define FINGERPRINT_SIG_LEN (FINGERPRINT_BANDS * FINGERPRINT_ROWS)

typedef struct {
    uint64_t exact;
    uint32_t nbands; /* 0 when the text has too few shingles to sign meaningfully */
    uint64_t bands[FINGERPRINT_BANDS];
    /* Low 16 bits of each MinHash minimum (valid when nbands > 0): the share of equal
     * entries between two posts estimates their Jaccard similarity (+ (1 - J) / 65536), so a
     * duplicate store can verify a band match before it trusts it. Not part of any key. */
    uint16_t sig[FINGERPRINT_SIG_LEN];
} fingerprint_t;

/* The signature as the duplicate stores keep it (Redis and the in-process store): the low 8
 * bits of each entry, one byte per entry, the same bytes on every host. Two posts' entries
 * agree with probability J + (1 - J) / 256, so the share of equal bytes still estimates their
 * Jaccard similarity J, at half the bytes of the 16-bit entries. */
#define FINGERPRINT_SIG_BYTES FINGERPRINT_SIG_LEN
void fingerprint_sig_store(const fingerprint_t *fp, unsigned char out[FINGERPRINT_SIG_BYTES]);

/* Entries of a's signature equal to a stored signature b of len bytes: FINGERPRINT_SIG_BYTES
 * as fingerprint_sig_store() writes them, or twice that, the little-endian 16-bit entries that
 * versions before it stored, compared on their low bytes like the short form (so a record
 * written before an upgrade verifies as it would have been written after). 0 when a has no
 * signature; FINGERPRINT_SIG_UNCHECKABLE for any other length. */
#define FINGERPRINT_SIG_UNCHECKABLE UINT32_MAX
uint32_t fingerprint_sig_matches_stored(const fingerprint_t *a, const unsigned char *b, size_t len);

/* Computes the fingerprint of normalized text norm[0, len). Never fails; empty text gives
 * exact = hash of "" and nbands = 0. */
void fingerprint_compute(const char *norm, size_t len, fingerprint_t *fp);

/* 64-bit hash used for fingerprints and cluster ids: stable across builds and platforms.
 * It is XXH64, so the published xxHash test vectors apply. data may be NULL when len is 0. */
uint64_t fingerprint_hash64(const void *data, size_t len, uint64_t seed);

/* Writes the canonical text that fingerprint_compute() hashes (links, mentions, punctuation
 * dropped, digit runs folded to "0"; see fingerprint.c) into out, truncated to out_cap - 1
 * bytes and NUL-terminated when out_cap > 0. Returns its full length. For tests and for
 * showing operators why two posts were clustered; never on the hot path. */
size_t fingerprint_canonical(const char *norm, size_t len, char *out, size_t out_cap);

/* True when the canonical text was empty: the post had only links, mentions, punctuation or
 * whitespace. All such posts share one exact hash and carry nothing to compare, so duplicate
 * detection should skip them rather than cluster them together. */
bool fingerprint_is_empty(const fingerprint_t *fp);

#endif
