/* Fingerprints for duplicate detection: an exact hash and MinHash LSH bands of a canonical
 * form of the normalized text.
 *
 * Canonical text. Campaign copies of one message differ in what the sender varies per copy
 * or the platform rewrites: links (shortener slugs, tracking parameters), @mentions, the '#'
 * of hashtags, punctuation and emphasis ("!!!"), amounts and phone numbers. The canonical
 * text keeps the words and drops the rest:
 *   - links: tokens starting with http://, https://, www., or a bare domain followed by a
 *     path (t.co/abc, bit.ly/x) are removed up to the next whitespace;
 *   - @mentions (@ followed by a handle) are removed;
 *   - punctuation (Unicode P*, ASCII symbols, format characters) separates words like a
 *     space, so "#Free-Money!!" and "free money" are the same;
 *   - each digit run (any script's decimal digits, with "," or "." between digits) becomes
 *     one "0", and a number that directly follows another number is dropped, so
 *     "555-123-4567", "5551234567" and "$1,000.00" all become "0";
 *   - non-ASCII symbols (emoji, dingbats, currency signs) are kept as one-character words,
 *     but a repeat of the same symbol is dropped ("🔥🔥🔥" -> "🔥"); skin-tone modifiers
 *     are dropped, as normalize.c already dropped ZWJ and variation selectors;
 *   - words are joined by single spaces. ASCII is lower-cased again in case the input
 *     was not normalized; other case folding is normalize.c's job.
 * exact = fingerprint_hash64(canonical text, FINGERPRINT_SEED_EXACT), so it equals
 * fingerprint_hash64() of fingerprint_canonical()'s output.
 *
 * Shingles. Posts are tweet-length and in any script, so one post mixes two kinds:
 *   - for space-separated text, every word (unigram) and every pair of adjacent words
 *     (bigram). Bigrams carry word order; unigrams let two- and three-word posts be signed
 *     and keep a one-word substitution from costing more than about 1/7 of the shingles of a
 *     20-word post (it changes 1 of 20 unigrams and 2 of 19 bigrams: Jaccard ~0.86, so the
 *     pair shares a band with probability ~0.9999 at 20 bands x 5 rows);
 *   - for scripts written without spaces (Han, kana, Thai, Lao, Khmer, Myanmar), character
 *     3-grams by code point over each run of such characters. A word containing such a run of
 *     3 or more characters gives only its 3-grams: as one "word" a whole CJK sentence would
 *     change with any character. Shorter CJK words count as words.
 * Only the first FP_MAX_SHINGLES shingles are used (a tweet has a few dozen), so the work
 * and the stack are bounded; the exact hash still covers the whole text.
 *
 * MinHash. Each shingle gets one well-mixed hash x, of which 32 bits are kept; the 100 hash
 * functions are h_i(x) = a_i * x + b_i mod 2^32 (see fp_minhash_mul) rather than 100 rehashes
 * of the shingle: one vector multiply-add and min per 8 functions and shingle. Measured on
 * random sets of 10 to 200 shingles, the share of equal minima estimates the Jaccard
 * similarity without bias and with the binomial spread of independent functions. Band b's key
 * mixes b with minima 5b..5b+4 (fp_band_key).
 *
 * The seeds, a_i, b_i, the shingle and band hashing and the canonical form are fixed because
 * band keys and exact hashes are compared across the fleet through Redis: changing any of
 * them changes every key, which is what the known-answer tests in
 * tests/unit/test_fingerprint.c are there to catch. */
#include "fingerprint/fingerprint.h"
#include "util/unicode.h"
#include "util/utf8.h"

#include <stdbool.h>
#include <string.h>

#include <utf8proc.h>

#define FP_NHASH        (FINGERPRINT_BANDS * FINGERPRINT_ROWS)
#define FP_MAX_SHINGLES 512

/* Private seeds, one per use, so that equal inputs to different uses never collide. */
#define FP_SEED_BAND    UINT64_C(0x747762616E643031) /* "twband01" */
#define FP_SEED_UNIGRAM UINT64_C(0x7477756E69677231) /* "twunigr1" */
#define FP_SEED_BIGRAM  UINT64_C(0x7477626967726D31) /* "twbigrm1" */
#define FP_SEED_TRIGRAM UINT64_C(0x7477747269677231) /* "twtrigr1" */

/* fingerprint_hash64("", 0, FINGERPRINT_SEED_EXACT); test_fingerprint.c checks it. */
#define FP_EXACT_EMPTY UINT64_C(0x702AED44CAFF20CB)

/* ---- fingerprint_hash64: XXH64 (Yann Collet's xxHash, 64-bit variant), written from its
 * specification. Chosen because it is fast on short inputs, passes SMHasher, and is
 * specified byte for byte, so the published test vectors pin our implementation down and any
 * host computes the same keys. Input is read little-endian explicitly. */

#define XXH_P1 UINT64_C(0x9E3779B185EBCA87)
#define XXH_P2 UINT64_C(0xC2B2AE3D27D4EB4F)
#define XXH_P3 UINT64_C(0x165667B19E3779F9)
#define XXH_P4 UINT64_C(0x85EBCA77C2B2AE63)
#define XXH_P5 UINT64_C(0x27D4EB2F165667C5)

static inline uint64_t fp_rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t fp_read64le(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

static inline uint32_t fp_read32le(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t xxh_round(uint64_t acc, uint64_t input)
{
    acc += input * XXH_P2;
    acc = fp_rotl(acc, 31);
    return acc * XXH_P1;
}

static inline uint64_t xxh_merge(uint64_t acc, uint64_t v)
{
    acc ^= xxh_round(0, v);
    return acc * XXH_P1 + XXH_P4;
}

/* Consumes whole 32-byte stripes of p[0, len) into v; returns the bytes consumed. */
static size_t xxh_stripes(uint64_t v[4], const unsigned char *p, size_t len)
{
    size_t done = 0;
    while (len - done >= 32) {
        v[0] = xxh_round(v[0], fp_read64le(p + done));
        v[1] = xxh_round(v[1], fp_read64le(p + done + 8));
        v[2] = xxh_round(v[2], fp_read64le(p + done + 16));
        v[3] = xxh_round(v[3], fp_read64le(p + done + 24));
        done += 32;
    }
    return done;
}

static inline void xxh_init_lanes(uint64_t v[4], uint64_t seed)
{
    v[0] = seed + XXH_P1 + XXH_P2;
    v[1] = seed + XXH_P2;
    v[2] = seed;
    v[3] = seed - XXH_P1;
}

/* The tail (< 32 bytes) and the final avalanche. */
static uint64_t xxh_finish(uint64_t h, const unsigned char *p, size_t len)
{
    while (len >= 8) {
        h ^= xxh_round(0, fp_read64le(p));
        h = fp_rotl(h, 27) * XXH_P1 + XXH_P4;
        p += 8;
        len -= 8;
    }
    if (len >= 4) {
        h ^= (uint64_t)fp_read32le(p) * XXH_P1;
        h = fp_rotl(h, 23) * XXH_P2 + XXH_P3;
        p += 4;
        len -= 4;
    }
    while (len > 0) {
        h ^= (uint64_t)*p * XXH_P5;
        h = fp_rotl(h, 11) * XXH_P1;
        p++;
        len--;
    }
    h ^= h >> 33;
    h *= XXH_P2;
    h ^= h >> 29;
    h *= XXH_P3;
    h ^= h >> 32;
    return h;
}

static uint64_t xxh_converge(const uint64_t v[4])
{
    uint64_t h = fp_rotl(v[0], 1) + fp_rotl(v[1], 7) + fp_rotl(v[2], 12) + fp_rotl(v[3], 18);
    for (int i = 0; i < 4; i++)
        h = xxh_merge(h, v[i]);
    return h;
}

uint64_t fingerprint_hash64(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h;
    size_t done = 0;
    if (len >= 32) {
        uint64_t v[4];
        xxh_init_lanes(v, seed);
        done = xxh_stripes(v, p, len);
        h = xxh_converge(v);
    } else {
        h = seed + XXH_P5;
    }
    h += (uint64_t)len;
    return xxh_finish(h, p + done, len - done);
}

/* Streaming XXH64, for the exact hash of a canonical text of any length without a buffer
 * the size of the text; gives the same value as fingerprint_hash64() over the whole input. */
typedef struct {
    uint64_t v[4];
    uint64_t total;
    uint64_t seed;
    unsigned char buf[32];
    size_t buf_len;
} xxh_stream_t;

static void xxh_stream_init(xxh_stream_t *st, uint64_t seed)
{
    xxh_init_lanes(st->v, seed);
    st->total = 0;
    st->seed = seed;
    st->buf_len = 0;
}

static void xxh_stream_update(xxh_stream_t *st, const unsigned char *p, size_t len)
{
    st->total += len;
    if (st->buf_len > 0) {
        size_t take = 32 - st->buf_len;
        if (take > len)
            take = len;
        memcpy(st->buf + st->buf_len, p, take);
        st->buf_len += take;
        p += take;
        len -= take;
        if (st->buf_len < 32)
            return;
        xxh_stripes(st->v, st->buf, 32);
        st->buf_len = 0;
    }
    size_t done = xxh_stripes(st->v, p, len);
    memcpy(st->buf, p + done, len - done);
    st->buf_len = len - done;
}

static uint64_t xxh_stream_digest(const xxh_stream_t *st)
{
    uint64_t h = st->total >= 32 ? xxh_converge(st->v) : st->seed + XXH_P5;
    h += st->total;
    return xxh_finish(h, st->buf, st->buf_len);
}

/* ---- MinHash parameters. Function i is h_i(x) = a_i * x + b_i mod 2^32 over the 32-bit
 * shingle hash x; a_i is odd, so each h_i permutes the 32-bit values. 32-bit lanes because
 * 8 of them fit an AVX2 register (and 4 a NEON or SSE one) with a native multiply and
 * unsigned min; the 64-bit equivalent has neither below AVX-512. With a few hundred
 * shingles per post, chance 32-bit collisions between different shingles are negligible.
 * a_i = low 32 bits of the i-th output of splitmix64 seeded with 0x7469646577617463
 * ("tidewatc"), ORed with 1; b_i = its high 32 bits. Literal tables rather than computed at
 * run time: they are part of the fleet-wide key format and must never change by accident.
 * FP_NHASH is rounded up to whole vectors; the last 4 functions are computed and unused. */
#define FP_LANES 8
#define FP_NVEC  ((FP_NHASH + FP_LANES - 1) / FP_LANES)

static const uint32_t fp_minhash_mul[FP_NVEC * FP_LANES] = {
    0x7BE8DBB1, 0x2DA0BA59, 0x91206445, 0x19B18BB3, 0xFD8B2ED9, 0x23FBE665, 0xD5529413, 0x2F5A8D49,
    0x1C23F045, 0x32F0E195, 0xCEC21D53, 0x42192107, 0xD788DA6B, 0x299ADDB3, 0x2943554B, 0x1272FAA9,
    0xC473BCF3, 0x3B5A395F, 0x0D784A03, 0xE3E69DDD, 0xDF178C3B, 0xF510F83D, 0x77A0B067, 0x2808BBAB,
    0x76ECD391, 0xFDD591E9, 0x317366F7, 0xBCF4ABA7, 0xFD19E04B, 0xE35B15AD, 0xBEA41627, 0xD94488CF,
    0xEC2F7B8B, 0x7AD8350B, 0xDA2192B3, 0xAD9BEF91, 0x6780FAFD, 0x6CA70BFF, 0x87E90955, 0xDEB51D23,
    0x7CD5E211, 0xEF9E569F, 0xD7A59D11, 0x6C2EE14F, 0xD84845ED, 0x0E1743EF, 0x44ED453F, 0x9AEBD0DF,
    0x4C56737D, 0xA61F5A27, 0x3D4DE86B, 0xE7742963, 0x9A7CEC95, 0x28D1A6A9, 0xBA9951A1, 0xBFE56CC1,
    0x5E17F021, 0xA3C9FC87, 0x26F10579, 0x66CC3231, 0xC98242B7, 0xE68BAF03, 0xB02AA1CB, 0x77556DF9,
    0xAC368989, 0xDDE930BB, 0x927ACEC3, 0x98DFC091, 0xD9C28A65, 0xA14F20B9, 0x06F77ADD, 0xB21DE1E7,
    0xB655A803, 0xDE669D95, 0xFE5943D1, 0x599E6BAF, 0x81B2F751, 0x3BCDD9A3, 0xFDE3DA09, 0x98F86F73,
    0x3493E117, 0xE5DA06AB, 0xA2EE87F1, 0xFF1F093B, 0x89D820A3, 0x09ABEC57, 0xB6B6D995, 0x7AAD316B,
    0xE159C501, 0xCFFFD919, 0x0E458729, 0xC8B7739F, 0xC5AD14EB, 0xABCF3059, 0xB9825865, 0xA945288D,
    0x15FD58E5, 0xA188B135, 0x088713AB, 0x65932CFB, 0xB2618E4D, 0x84B5B3A7, 0x875AA0F9, 0x6E9E63DD,
};

static const uint32_t fp_minhash_add[FP_NVEC * FP_LANES] = {
    0xF6C37DC6, 0x7D9ADB4A, 0xB2C121F2, 0x36C64EE6, 0xD9C0045C, 0x4EF0D2FE, 0x447A9AB8, 0x119EFC73,
    0xD0BE46F9, 0xDC93C146, 0xD07C0112, 0x23BD556B, 0x627DAE9B, 0xB2CC7C03, 0xBD87EDE6, 0x2CCB98EC,
    0xAC80B025, 0x75D6E3B8, 0xFFFB2564, 0x8BE4D186, 0x830894F9, 0x2C06E789, 0x3C3C8BB4, 0x942153E5,
    0x674938B2, 0x1ACA29B3, 0xEC67E8DC, 0x5A0D2898, 0x165C3994, 0xB406AEE9, 0x465847CE, 0x41C0A6D8,
    0xE07620E5, 0xEC26E8E5, 0x629D2373, 0x8226B193, 0xF0A80B66, 0x584D8819, 0x54A1C8FF, 0x5BCD254E,
    0x133C8E11, 0x0EE3DA1E, 0xB0EC2DD9, 0xD1A523E8, 0x146F59A9, 0xAF3CB7C9, 0xD55C28D2, 0x1EB375CC,
    0x5426C05A, 0xA94AB76A, 0x7F293645, 0x790826C8, 0xB55654F5, 0xFE420BC8, 0x75CF3D07, 0xEC0BE543,
    0x1E75A517, 0x60C981C3, 0xB65E32D5, 0x0250156D, 0xFAA25D2E, 0x8FE0865A, 0xCAAAE902, 0x86384A8C,
    0x43397F43, 0xE1BCC38C, 0x5E69D1AA, 0xBB46B519, 0xA654F108, 0x14BB2B1D, 0x3CE63C18, 0xD68ED96A,
    0xCF6FB2A2, 0x48834A0A, 0x39760840, 0x741D87F1, 0x794CA259, 0xA135F9A0, 0x725DAC47, 0xE74CD105,
    0xC0F93FF1, 0x429215E5, 0xB3AE28EB, 0xBD722D8B, 0x0016F68B, 0x64B2E317, 0x6AEB4239, 0x84CD39F7,
    0x19C98F99, 0x8996A65E, 0x5976DAAA, 0x4972106D, 0x802A0AC0, 0x314F8DBB, 0xA2FB6D49, 0x9C974CEF,
    0x546EF154, 0x803DE757, 0x177FBB0A, 0x2D952865, 0xE528D726, 0x8B334D42, 0x939150F4, 0x7A954908,
};

/* A 64-bit finalizer (splitmix64's) for shingle hashes: all output bits depend on all input
 * bits, which the multiply-add MinHash functions rely on. */
static inline uint64_t fp_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

#define FP_FNV_BASIS UINT64_C(0xCBF29CE484222325)
#define FP_FNV_PRIME UINT64_C(0x100000001B3)

typedef enum {
    FP_SEP,    /* whitespace, punctuation, controls, format characters: ends a word */
    FP_WORD,   /* letters, marks, letter-like numbers */
    FP_DIGIT,  /* decimal digits, folded to "0" */
    FP_SYMBOL, /* non-ASCII symbols (emoji...), private use, unassigned: one-character words */
    FP_SKIP,   /* dropped without ending a word: emoji skin-tone modifiers */
} fp_class_t;

/* ASCII: every non-alphanumeric ASCII character separates words ('#', '$', '+', '_' too). */
static const uint8_t fp_ascii_class[128] = {
    ['0'] = FP_DIGIT, ['1'] = FP_DIGIT, ['2'] = FP_DIGIT, ['3'] = FP_DIGIT, ['4'] = FP_DIGIT,
    ['5'] = FP_DIGIT, ['6'] = FP_DIGIT, ['7'] = FP_DIGIT, ['8'] = FP_DIGIT, ['9'] = FP_DIGIT,
    ['a'] = FP_WORD,  ['b'] = FP_WORD,  ['c'] = FP_WORD,  ['d'] = FP_WORD,  ['e'] = FP_WORD,
    ['f'] = FP_WORD,  ['g'] = FP_WORD,  ['h'] = FP_WORD,  ['i'] = FP_WORD,  ['j'] = FP_WORD,
    ['k'] = FP_WORD,  ['l'] = FP_WORD,  ['m'] = FP_WORD,  ['n'] = FP_WORD,  ['o'] = FP_WORD,
    ['p'] = FP_WORD,  ['q'] = FP_WORD,  ['r'] = FP_WORD,  ['s'] = FP_WORD,  ['t'] = FP_WORD,
    ['u'] = FP_WORD,  ['v'] = FP_WORD,  ['w'] = FP_WORD,  ['x'] = FP_WORD,  ['y'] = FP_WORD,
    ['z'] = FP_WORD,  ['A'] = FP_WORD,  ['B'] = FP_WORD,  ['C'] = FP_WORD,  ['D'] = FP_WORD,
    ['E'] = FP_WORD,  ['F'] = FP_WORD,  ['G'] = FP_WORD,  ['H'] = FP_WORD,  ['I'] = FP_WORD,
    ['J'] = FP_WORD,  ['K'] = FP_WORD,  ['L'] = FP_WORD,  ['M'] = FP_WORD,  ['N'] = FP_WORD,
    ['O'] = FP_WORD,  ['P'] = FP_WORD,  ['Q'] = FP_WORD,  ['R'] = FP_WORD,  ['S'] = FP_WORD,
    ['T'] = FP_WORD,  ['U'] = FP_WORD,  ['V'] = FP_WORD,  ['W'] = FP_WORD,  ['X'] = FP_WORD,
    ['Y'] = FP_WORD,  ['Z'] = FP_WORD,
};

static fp_class_t fp_cp_class(int32_t cp)
{
    if (cp >= 0x1F3FB && cp <= 0x1F3FF)
        return FP_SKIP;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return FP_WORD;
    case UTF8PROC_CATEGORY_ND:
        return FP_DIGIT;
    case UTF8PROC_CATEGORY_SM:
    case UTF8PROC_CATEGORY_SC:
    case UTF8PROC_CATEGORY_SK:
    case UTF8PROC_CATEGORY_SO:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
        return FP_SYMBOL;
    default:
        return FP_SEP;
    }
}

static inline bool fp_is_ascii_alnum(unsigned c)
{
    return c < 0x80 && fp_ascii_class[c] != FP_SEP;
}

static inline unsigned fp_ascii_lower(unsigned c)
{
    return c - 'A' < 26 ? c + 32 : c;
}

static bool fp_has_prefix(const unsigned char *p, const unsigned char *end, const char *prefix)
{
    for (; *prefix; p++, prefix++) {
        if (p >= end || fp_ascii_lower(*p) != (unsigned char)*prefix)
            return false;
    }
    return true;
}

/* At a word boundary, returns how many bytes of link or @mention start at p (0 if none). */
static size_t fp_skip_len(const unsigned char *p, const unsigned char *end)
{
    const unsigned char *q = p;
    unsigned c = fp_ascii_lower(*p);
    if (c == '@') {
        /* A handle: [a-z0-9_], with '.', '-' or '@' inside (user.name, user@instance). */
        q++;
        if (q >= end || !(fp_is_ascii_alnum(*q) || *q == '_'))
            return 0;
        while (q < end && (fp_is_ascii_alnum(*q) || *q == '_' ||
                           ((*q == '.' || *q == '-' || *q == '@') && q + 1 < end &&
                            (fp_is_ascii_alnum(q[1]) || q[1] == '_'))))
            q++;
        return (size_t)(q - p);
    }
    if (!fp_is_ascii_alnum(c))
        return 0;
    bool link =
        (c == 'h' && (fp_has_prefix(p, end, "http://") || fp_has_prefix(p, end, "https://"))) ||
        (c == 'w' && fp_has_prefix(p, end, "www."));
    if (!link) {
        /* A bare domain and a path: label(.label)+ with the last label starting with a
         * letter, then '/'. */
        bool letter_after_dot = false, dot = false;
        while (q < end && (fp_is_ascii_alnum(*q) || *q == '-' || *q == '.')) {
            if (*q == '.') {
                dot = true;
                letter_after_dot = q + 1 < end && fp_ascii_lower(q[1]) - 'a' < 26;
            }
            q++;
        }
        link = dot && letter_after_dot && q < end && *q == '/' && q[-1] != '.';
        if (!link)
            return 0;
    }
    while (q<end && * q> 0x20)
        q++;
    return (size_t)(q - p);
}

#define FP_CHUNK 256

typedef struct {
    /* canonical text: written to chunk, which is hashed (and copied out) when full */
    xxh_stream_t xxh;
    unsigned char chunk[FP_CHUNK];
    size_t chunk_len;
    size_t flushed; /* canonical bytes before chunk */
    char *copy;
    size_t copy_cap;
    /* the word being read */
    bool in_token;
    bool tok_emitted;     /* it has written bytes (and its separator) */
    bool tok_number_only; /* it is so far one folded digit run */
    bool in_number;       /* it ends with a folded digit run */
    bool zero_pending;    /* it started with digits right after a number: "0" held back */
    bool tok_unspaced;    /* it has a 3+ run of unspaced-script characters */
    uint64_t tok_fnv;
    uint32_t run;       /* length of the current unspaced-script run */
    int32_t run1, run2; /* its last two code points */
    /* between words */
    bool prev_number;
    int32_t last_symbol;
    bool have_prev_word;
    uint64_t prev_word;
    /* shingle hashes, MinHashed at the end in one vectorized pass */
    bool want_shingles;
    uint32_t nshingles;
    uint32_t shingles[FP_MAX_SHINGLES];
} fp_scan_t;

static void fp_flush(fp_scan_t *st)
{
    xxh_stream_update(&st->xxh, st->chunk, st->chunk_len);
    if (st->copy && st->flushed + 1 < st->copy_cap) {
        size_t room = st->copy_cap - 1 - st->flushed;
        memcpy(st->copy + st->flushed, st->chunk, st->chunk_len < room ? st->chunk_len : room);
    }
    st->flushed += st->chunk_len;
    st->chunk_len = 0;
}

/* Writes a separating space unless this is the start of the canonical text, then cp. */
static void fp_put_cp(fp_scan_t *st, bool space, int32_t cp)
{
    if (st->chunk_len + 5 > FP_CHUNK)
        fp_flush(st);
    if (space && st->flushed + st->chunk_len > 0)
        st->chunk[st->chunk_len++] = ' ';
    st->chunk_len += utf8_encode(cp, st->chunk + st->chunk_len);
}

static inline void fp_shingle(fp_scan_t *st, uint64_t x)
{
    if (st->want_shingles && st->nshingles < FP_MAX_SHINGLES)
        st->shingles[st->nshingles++] = (uint32_t)(x >> 32);
}

/* A word (or one-symbol word) ended; t is its well-mixed hash, which is also its unigram
 * shingle hash. */
static void fp_word_unit(fp_scan_t *st, uint64_t t)
{
    if (!st->want_shingles)
        return;
    fp_shingle(st, t);
    if (st->have_prev_word)
        fp_shingle(st, fp_mix64(fp_rotl(st->prev_word, 29) ^ t ^ FP_SEED_BIGRAM));
    st->prev_word = t;
    st->have_prev_word = true;
}

static inline void fp_tok_emit(fp_scan_t *st, int32_t cp)
{
    fp_put_cp(st, !st->tok_emitted, cp);
    st->tok_emitted = true;
    st->tok_fnv = (st->tok_fnv ^ (uint64_t)cp) * FP_FNV_PRIME;
}

static void fp_tok_begin(fp_scan_t *st)
{
    st->in_token = true;
    st->tok_emitted = false;
    st->tok_number_only = true;
    st->in_number = false;
    st->zero_pending = false;
    st->tok_unspaced = false;
    st->tok_fnv = FP_FNV_BASIS;
    st->run = 0;
}

static void fp_tok_end(fp_scan_t *st)
{
    if (!st->in_token)
        return;
    st->in_token = false;
    if (st->zero_pending)
        return; /* a number right after a number: one "0" stands for both */
    st->prev_number = st->tok_number_only;
    st->last_symbol = 0;
    if (st->tok_unspaced) {
        st->have_prev_word = false; /* shingled by its 3-grams already */
        return;
    }
    fp_word_unit(st, fp_mix64(st->tok_fnv ^ FP_SEED_UNIGRAM));
}

static void fp_word_cp(fp_scan_t *st, int32_t cp)
{
    if (!st->in_token)
        fp_tok_begin(st);
    if (st->zero_pending) {
        st->zero_pending = false;
        fp_tok_emit(st, '0');
    }
    st->tok_number_only = false;
    st->in_number = false;
    fp_tok_emit(st, cp);
    if (!unicode_is_unspaced_script(cp)) {
        st->run = 0;
        return;
    }
    if (st->run >= 2) {
        uint64_t packed = (uint64_t)st->run1 << 42 | (uint64_t)st->run2 << 21 | (uint64_t)cp;
        fp_shingle(st, fp_mix64(packed ^ FP_SEED_TRIGRAM));
    }
    st->run1 = st->run2;
    st->run2 = cp;
    if (++st->run >= 3)
        st->tok_unspaced = true;
}

static void fp_digit(fp_scan_t *st)
{
    if (!st->in_token) {
        fp_tok_begin(st);
        if (st->prev_number) {
            st->zero_pending = true;
            st->in_number = true;
            return;
        }
    }
    if (st->in_number)
        return; /* the run is already one "0" */
    st->in_number = true;
    st->run = 0;
    fp_tok_emit(st, '0');
}

static void fp_symbol(fp_scan_t *st, int32_t cp)
{
    fp_tok_end(st);
    if (cp == st->last_symbol)
        return;
    st->last_symbol = cp;
    st->prev_number = false;
    fp_put_cp(st, true, cp);
    fp_word_unit(st, fp_mix64(((FP_FNV_BASIS ^ (uint64_t)cp) * FP_FNV_PRIME) ^ FP_SEED_UNIGRAM));
}

/* Long on purpose: one pass over the text per post, with the ASCII classes, links and
 * mentions, numbers and non-ASCII classes as cases of one switch on the same cursor. */
static void fp_scan(fp_scan_t *st, const char *norm, size_t len)
{
    const unsigned char *p = (const unsigned char *)norm;
    const unsigned char *end = p + len;

    xxh_stream_init(&st->xxh, FINGERPRINT_SEED_EXACT);
    st->chunk_len = 0;
    st->flushed = 0;
    st->in_token = false;
    st->prev_number = false;
    st->last_symbol = 0;
    st->have_prev_word = false;
    st->nshingles = 0;

    while (p < end) {
        unsigned c = *p;
        if (!st->in_token && (c == '@' || fp_is_ascii_alnum(c))) {
            size_t skip = fp_skip_len(p, end);
            if (skip > 0) {
                p += skip;
                continue;
            }
        }
        if (c < 0x80) {
            switch (fp_ascii_class[c]) {
            case FP_WORD:
                fp_word_cp(st, (int32_t)fp_ascii_lower(c));
                p++;
                /* The rest of an ASCII word changes nothing but the text and its hash; locals
                 * because chunk (unsigned char) may alias the state's fields. */
                uint64_t fnv = st->tok_fnv;
                size_t o = st->chunk_len;
                while (p < end && *p < 0x80 && fp_ascii_class[*p] == FP_WORD) {
                    if (o == FP_CHUNK) {
                        st->chunk_len = o;
                        fp_flush(st);
                        o = 0;
                    }
                    c = fp_ascii_lower(*p++);
                    st->chunk[o++] = (unsigned char)c;
                    fnv = (fnv ^ c) * FP_FNV_PRIME;
                }
                st->chunk_len = o;
                st->tok_fnv = fnv;
                continue;
            case FP_DIGIT:
                fp_digit(st);
                break;
            default:
                /* "1,000.50" is one number. */
                if (!((c == ',' || c == '.') && st->in_token && st->in_number && p + 1 < end &&
                      (unsigned)(p[1] - '0') < 10u))
                    fp_tok_end(st);
                break;
            }
            p++;
            continue;
        }
        size_t n;
        int32_t cp = utf8_decode_or_replacement(p, end, &n);
        p += n;
        switch (fp_cp_class(cp)) {
        case FP_WORD:
            fp_word_cp(st, cp);
            break;
        case FP_DIGIT:
            fp_digit(st);
            break;
        case FP_SYMBOL:
            fp_symbol(st, cp);
            break;
        case FP_SKIP:
            break;
        default:
            fp_tok_end(st);
            break;
        }
    }
    fp_tok_end(st);
    fp_flush(st);
}

/* MinHash of the shingles: mins[i] = min over shingles x of h_i(x). Vector extensions keep
 * this portable C; target_clones adds an AVX2 build picked at load time on x86-64, several
 * times faster than the SSE2 baseline. The minimum is taken on signed lanes with the sign bit
 * flipped (b_i ^ 0x80000000), which orders them like the unsigned values, because a signed
 * compare is what SSE2/AVX2 have; mins are returned in that biased form. Four accumulators
 * per vector keep the compare-blend dependency chain from bounding the loop. */
typedef uint32_t fp_vec_t __attribute__((vector_size(FP_LANES * sizeof(uint32_t))));
typedef int32_t fp_svec_t __attribute__((vector_size(FP_LANES * sizeof(int32_t))));

/* target_clones needs ifunc, i.e. glibc (not musl). TW_NO_TARGET_CLONES builds only the
 * baseline, to test it or for other toolchains; both give identical results. */
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__has_attribute) &&                       \
    !defined(TW_NO_TARGET_CLONES)
#if __has_attribute(target_clones)
#define FP_TARGET_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef FP_TARGET_CLONES
#define FP_TARGET_CLONES
#endif

/* A macro, not a function: passing 32-byte vectors by value changes the ABI between the
 * clones. x and y are evaluated twice. */
#define FP_VEC_MIN(x, y) (((x) & ((x) < (y))) | ((y) & ~((x) < (y))))

FP_TARGET_CLONES
static void fp_minhash(const uint32_t *shingles, uint32_t n, int32_t mins[FP_NVEC * FP_LANES])
{
    for (size_t v = 0; v < FP_NVEC; v++) {
        fp_vec_t a, b;
        memcpy(&a, fp_minhash_mul + v * FP_LANES, sizeof(a));
        memcpy(&b, fp_minhash_add + v * FP_LANES, sizeof(b));
        b ^= 0x80000000u;
        fp_svec_t m0 = (fp_svec_t)((a ^ a) - 1) & INT32_MAX; /* the largest value */
        fp_svec_t m1 = m0, m2 = m0, m3 = m0;
        uint32_t j = 0;
        for (; j + 4 <= n; j += 4) {
            fp_svec_t h0 = (fp_svec_t)(a * shingles[j] + b);
            fp_svec_t h1 = (fp_svec_t)(a * shingles[j + 1] + b);
            fp_svec_t h2 = (fp_svec_t)(a * shingles[j + 2] + b);
            fp_svec_t h3 = (fp_svec_t)(a * shingles[j + 3] + b);
            m0 = FP_VEC_MIN(h0, m0);
            m1 = FP_VEC_MIN(h1, m1);
            m2 = FP_VEC_MIN(h2, m2);
            m3 = FP_VEC_MIN(h3, m3);
        }
        for (; j < n; j++) {
            fp_svec_t h = (fp_svec_t)(a * shingles[j] + b);
            m0 = FP_VEC_MIN(h, m0);
        }
        m0 = FP_VEC_MIN(m0, m1);
        m2 = FP_VEC_MIN(m2, m3);
        fp_svec_t m = FP_VEC_MIN(m0, m2);
        memcpy(mins + v * FP_LANES, &m, sizeof(m));
    }
}

/* Band b's key: a chain of 64-bit mixes over the band index and its five minima (as
 * unsigned 32-bit values), (b, m0, m1, m2, m3, m4) packed as (b << 32 | m0), (m1 << 32 | m2),
 * (m3 << 32 | m4). Twenty of these per post, so a few multiplies each rather than a general
 * byte hash; distinct tuples collide with probability about 2^-64 like any good hash. */
static inline uint64_t fp_band_key(uint32_t b, const int32_t *row)
{
    uint64_t m[FINGERPRINT_ROWS];
    for (int r = 0; r < FINGERPRINT_ROWS; r++)
        m[r] = (uint32_t)row[r];
    uint64_t h = FP_SEED_BAND;
    h = fp_mix64(h ^ ((uint64_t)b << 32 | m[0]));
    h = fp_mix64(h ^ (m[1] << 32 | m[2]));
    h = fp_mix64(h ^ (m[3] << 32 | m[4]));
    return h;
}

void fingerprint_compute(const char *norm, size_t len, fingerprint_t *fp)
{
    fp_scan_t st;
    st.copy = NULL;
    st.copy_cap = 0;
    st.want_shingles = true;
    fp_scan(&st, norm, len);

    memset(fp, 0, sizeof(*fp));
    fp->exact = xxh_stream_digest(&st.xxh);
    if (st.nshingles < 3)
        return; /* too short to sign: the exact hash still works */

    int32_t mins[FP_NVEC * FP_LANES];
    fp_minhash(st.shingles, st.nshingles, mins);
    fp->nbands = FINGERPRINT_BANDS;
    for (uint32_t i = 0; i < FP_NHASH; i++)
        fp->sig[i] = (uint16_t)(uint32_t)mins[i]; /* the sign-bit bias leaves these bits */
    for (uint32_t b = 0; b < FINGERPRINT_BANDS; b++) {
        const int32_t *row = mins + b * FINGERPRINT_ROWS;
        fp->bands[b] = fp_band_key(b, row);
    }
}

size_t fingerprint_canonical(const char *norm, size_t len, char *out, size_t out_cap)
{
    fp_scan_t st;
    st.copy = out;
    st.copy_cap = out_cap;
    st.want_shingles = false;
    fp_scan(&st, norm, len);
    if (out_cap > 0)
        out[st.flushed < out_cap ? st.flushed : out_cap - 1] = '\0';
    return st.flushed;
}

void fingerprint_sig_store(const fingerprint_t *fp, unsigned char out[FINGERPRINT_SIG_BYTES])
{
    for (size_t j = 0; j < FINGERPRINT_SIG_LEN; j++)
        out[j] = (unsigned char)(fp->sig[j] & 0xFF);
}

uint32_t fingerprint_sig_matches_stored(const fingerprint_t *a, const unsigned char *b, size_t len)
{
    size_t stride;
    if (len == FINGERPRINT_SIG_BYTES)
        stride = 1;
    else if (len == 2 * FINGERPRINT_SIG_LEN)
        stride = 2; /* 16-bit little-endian entries: the low byte comes first */
    else
        return FINGERPRINT_SIG_UNCHECKABLE;
    if (!a->nbands)
        return 0;
    uint32_t n = 0;
    for (size_t j = 0; j < FINGERPRINT_SIG_LEN; j++)
        n += (unsigned char)(a->sig[j] & 0xFF) == b[j * stride];
    return n;
}

bool fingerprint_is_empty(const fingerprint_t *fp)
{
    return fp->exact == FP_EXACT_EMPTY;
}
