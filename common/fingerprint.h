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

#include <stddef.h>
#include <stdint.h>

#define FINGERPRINT_BANDS 20
#define FINGERPRINT_ROWS 5

typedef struct {
    uint64_t exact;
    uint32_t nbands; /* 0 when the text has too few shingles to sign meaningfully */
    uint64_t bands[FINGERPRINT_BANDS];
} fingerprint_t;

/* Computes the fingerprint of normalized text norm[0, len). Never fails; empty text gives
 * exact = hash of "" and nbands = 0. */
void fingerprint_compute(const char *norm, size_t len, fingerprint_t *fp);

/* 64-bit hash used for fingerprints and cluster ids: stable across builds and platforms. */
uint64_t fingerprint_hash64(const void *data, size_t len, uint64_t seed);

#endif
