/* libFuzzer target for common/normalize.c (and the fingerprint of its output).
 *
 * Build and run with libFuzzer (clang):
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Icommon \
 *       tests/fuzz/fuzz_normalize.c common/normalize.c common/confusables_table.c \
 *       common/fingerprint.c common/err.c \
 *       -lutf8proc -o fuzz_normalize
 *   ./fuzz_normalize -max_len=4096 tests/fuzz/corpus/normalize
 * ctest replays the corpus without libFuzzer (tests/fuzz/fuzz_replay.c supplies main()).
 *
 * Checks, for every input:
 *   - normalize_text() accepts exactly the inputs a reference validator (utf8proc_iterate)
 *     accepts, and leaves an empty string when it rejects one;
 *   - the output is valid UTF-8 with no ASCII capitals, controls, leading, trailing or double
 *     spaces, and every output byte maps to a non-empty, in-range, non-decreasing original
 *     range; the end sentinel is the input length; span mapping stays inside the input;
 *   - the output equals whole-string utf8proc_map() (NFKC + case fold + ignorables removed)
 *     with whitespace collapsed, whenever no segment exceeds the module's bound (runs of 100+
 *     combining marks are composed in pieces by design);
 *   - the fingerprint of the canonical text equals the fingerprint of the text itself
 *     (canonicalization is idempotent and shingling sees only canonical content). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "fingerprint/fingerprint.h"
#include "normalize/normalize.h"

#define FUZZ_OPTIONS                                                                               \
    ((utf8proc_option_t)(UTF8PROC_COMPAT | UTF8PROC_CASEFOLD | UTF8PROC_COMPOSE | UTF8PROC_IGNORE))

/* Must match NORM_SEG_MAX in common/normalize.c. */
#define FUZZ_SEG_MAX 128

static unsigned char *fuzz_seconds; /* ccc-0 code points that can end a canonical composition */

static void fuzz_init(void)
{
    if (fuzz_seconds)
        return;
    fuzz_seconds = calloc(0x110000, 1);
    if (!fuzz_seconds)
        abort();
    for (int32_t cp = 0; cp < 0x110000; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        utf8proc_int32_t d[8];
        int bc = 0;
        utf8proc_ssize_t n = utf8proc_decompose_char(cp, d, 8, UTF8PROC_DECOMPOSE, &bc);
        for (utf8proc_ssize_t i = 1; i < n && n <= 8; i++)
            if (utf8proc_get_property(d[i])->combining_class == 0)
                fuzz_seconds[d[i]] = 1;
    }
}

static bool fuzz_utf8_valid(const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0)
            return false;
        i += (size_t)k;
    }
    return true;
}

static bool fuzz_is_space(int32_t cp)
{
    utf8proc_category_t cat = utf8proc_category(cp);
    return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL ||
           cat == UTF8PROC_CATEGORY_ZP || cat == UTF8PROC_CATEGORY_CC;
}

/* The longest segment normalize.c would build for this (valid) input, or SIZE_MAX when the
 * input has U+11A7: utf8proc 2.8's whole-string composition deletes a U+11A7 that follows
 * an LV syllable (tindex 0 is taken as a trailing consonant), a bug normalize.c does not
 * share because U+11A7 always starts its own segment. */
static size_t fuzz_max_segment(const uint8_t *s, size_t len)
{
    size_t seg = 0, max = 0;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp, d[32];
        i += (size_t)utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &cp);
        int bc = 0;
        utf8proc_ssize_t n = utf8proc_decompose_char(cp, d, 32, FUZZ_OPTIONS, &bc);
        for (utf8proc_ssize_t k = 0; k < n && n <= 32; k++) {
            if (fuzz_is_space(d[k])) {
                seg = 0;
                continue;
            }
            if (d[k] >= 0xFFF9 && d[k] <= 0xFFFB)
                continue;
            if (d[k] == 0x11A7)
                return SIZE_MAX;
            if (utf8proc_get_property(d[k])->combining_class == 0 && !fuzz_seconds[d[k]])
                seg = 0;
            if (++seg > max)
                max = seg;
        }
    }
    return max;
}

/* Whole-string reference, as in tests/unit/test_normalize.c. */
static char *fuzz_reference(const uint8_t *src, size_t len, size_t *out_len)
{
    uint8_t *in = malloc(len + 1);
    char *out = malloc(len * 72 + 16);
    size_t in_len = 0, o = 0;
    if (!in || !out)
        abort();
    /* Every format character (gc=Cf: interlinear annotations, Arabic number signs, ...) and
     * the unassigned default-ignorables are dropped, as normalize.c drops them. */
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(src + i, (utf8proc_ssize_t)(len - i), &cp);
        bool drop = utf8proc_category(cp) == UTF8PROC_CATEGORY_CF || cp == 0x2065 ||
                    (cp >= 0xFFF0 && cp <= 0xFFF8) || (cp >= 0xE0000 && cp <= 0xE0FFF);
        if (!drop) {
            memcpy(in + in_len, src + i, (size_t)k);
            in_len += (size_t)k;
        }
        i += (size_t)k;
    }
    utf8proc_uint8_t *mapped = NULL;
    utf8proc_ssize_t n = 0;
    if (in_len > 0) {
        n = utf8proc_map(in, (utf8proc_ssize_t)in_len, &mapped, FUZZ_OPTIONS);
        if (n < 0)
            abort();
    }
    bool pending = false;
    for (utf8proc_ssize_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(mapped + i, n - i, &cp);
        if (fuzz_is_space(cp)) {
            pending = true;
        } else {
            if (pending && o > 0)
                out[o++] = ' ';
            pending = false;
            memcpy(out + o, mapped + i, (size_t)k);
            o += (size_t)k;
        }
        i += k;
    }
    free(mapped);
    free(in);
    out[o] = '\0';
    *out_len = o;
    return out;
}

static void fuzz_check_output(const normalized_t *norm, size_t len)
{
    if (norm->text[norm->len] != '\0' || strlen(norm->text) != norm->len)
        abort();
    if (!fuzz_utf8_valid((const uint8_t *)norm->text, norm->len))
        abort();
    if (norm->len > 0 && (norm->text[0] == ' ' || norm->text[norm->len - 1] == ' '))
        abort();
    for (size_t i = 0; i < norm->len; i++) {
        unsigned char c = (unsigned char)norm->text[i];
        if ((c < 0x20 || c == 0x7F || (c >= 'A' && c <= 'Z')) ||
            (c == ' ' && i > 0 && norm->text[i - 1] == ' '))
            abort();
        if (norm->src_start[i] >= norm->src_end[i] || norm->src_end[i] > len)
            abort();
        if (i > 0 && (norm->src_start[i] < norm->src_start[i - 1] ||
                      norm->src_end[i] < norm->src_end[i - 1]))
            abort();
    }
    if (norm->cap > 0 && (norm->src_start[norm->len] != len || norm->src_end[norm->len] != len))
        abort();
    /* A few spans, including empty and out-of-range ones. */
    for (size_t i = 0; i <= norm->len; i += 1 + norm->len / 8) {
        size_t s, e;
        normalized_span_to_source(norm, i, norm->len - i / 2 + 3, &s, &e);
        if (s > e || e > len)
            abort();
    }
}

static void fuzz_check_fingerprint(const char *text, size_t len)
{
    fingerprint_t a, b;
    fingerprint_compute(text, len, &a);
    size_t clen = fingerprint_canonical(text, len, NULL, 0);
    char *canon = malloc(clen + 1);
    if (!canon)
        abort();
    if (fingerprint_canonical(text, len, canon, clen + 1) != clen || strlen(canon) != clen)
        abort();
    if (fingerprint_hash64(canon, clen, FINGERPRINT_SEED_EXACT) != a.exact)
        abort();
    fingerprint_compute(canon, clen, &b);
    if (memcmp(&a, &b, sizeof(a)) != 0)
        abort();
    free(canon);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    normalized_t norm;
    normalized_init(&norm);

    int rc = normalize_text((const char *)data, size, &norm);
    bool valid = fuzz_utf8_valid(data, size);
    if (utf8_is_valid((const char *)data, size) != valid)
        abort();
    if (!valid) {
        if (rc == 0 || norm.len != 0 || norm.text[0] != '\0')
            abort();
    } else {
        if (rc != 0)
            abort();
        fuzz_check_output(&norm, size);
        if (fuzz_max_segment(data, size) <= FUZZ_SEG_MAX) {
            size_t ref_len;
            char *ref = fuzz_reference(data, size, &ref_len);
            if (ref_len != norm.len || memcmp(ref, norm.text, ref_len) != 0)
                abort();
            free(ref);
        }
        /* Normalizing again into the same (warm) buffers gives the same result. */
        char *first = strdup(norm.text);
        if (!first)
            abort();
        if (normalize_text((const char *)data, size, &norm) != 0 || strcmp(first, norm.text))
            abort();
        free(first);
        fuzz_check_fingerprint(norm.text, norm.len);
        /* The derived views: valid UTF-8, maps inside folded and non-decreasing, and the
         * skeleton's "same" flag telling the truth. */
        normalized_t skel, squash;
        normalized_init(&skel);
        normalized_init(&squash);
        bool same = false;
        if (normalize_skeleton(&norm, &skel, &same) != 0 || normalize_squash(&skel, &squash) != 0)
            abort();
        if (same && (skel.len != norm.len || memcmp(skel.text, norm.text, norm.len) != 0))
            abort();
        const normalized_t *views[2] = {&skel, &squash};
        for (int v = 0; v < 2; v++) {
            const normalized_t *w = views[v];
            if (!utf8_is_valid(w->text, w->len) || w->text[w->len] != '\0' ||
                w->src_start[w->len] != norm.len)
                abort();
            for (size_t i = 0; i < w->len; i++)
                if (w->src_start[i] >= w->src_end[i] || w->src_end[i] > norm.len ||
                    (i > 0 &&
                     (w->src_start[i - 1] > w->src_start[i] || w->src_end[i - 1] > w->src_end[i])))
                    abort();
        }
        normalized_fini(&skel);
        normalized_fini(&squash);
    }
    /* fingerprint_compute never fails, whatever the bytes. */
    fingerprint_t fp;
    fingerprint_compute((const char *)data, size, &fp);
    normalized_fini(&norm);
    return 0;
}
