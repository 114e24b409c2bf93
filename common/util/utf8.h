/* The one UTF-8 decoder and encoder of the text stages (decode, normalize, match,
 * fingerprint). */
#ifndef TW_UTF8_H
#define TW_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decodes the code point that starts at p (p < end), strictly: overlong forms, surrogates,
 * anything above U+10FFFF, stray continuation bytes and sequences cut short by end are
 * refused. Returns the code point and sets *n to its length in bytes, or returns -1 with *n
 * set to 1 so that a caller skipping bad bytes moves on by one. Inline: normalize and
 * fingerprint call it once per non-ASCII character. */
static inline int32_t utf8_decode(const unsigned char *p, const unsigned char *end, size_t *n)
{
    unsigned c = p[0];
    size_t left = (size_t)(end - p);
    *n = 1;
    if (c < 0x80)
        return (int32_t)c;
    if (c < 0xC2)
        return -1; /* a continuation byte, or C0/C1: an overlong 2-byte form */
    if (c < 0xE0) {
        if (left < 2 || (p[1] & 0xC0) != 0x80)
            return -1;
        *n = 2;
        return (int32_t)((c & 0x1F) << 6 | (p[1] & 0x3Fu));
    }
    if (c < 0xF0) {
        /* E0 needs A0..BF (no overlongs), ED needs 80..9F (no surrogates). */
        unsigned lo = c == 0xE0 ? 0xA0 : 0x80;
        unsigned hi = c == 0xED ? 0x9F : 0xBF;
        if (left < 3 || p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80)
            return -1;
        *n = 3;
        return (int32_t)((c & 0x0F) << 12 | (p[1] & 0x3Fu) << 6 | (p[2] & 0x3Fu));
    }
    if (c < 0xF5) {
        /* F0 needs 90..BF (no overlongs), F4 needs 80..8F (nothing above U+10FFFF). */
        unsigned lo = c == 0xF0 ? 0x90 : 0x80;
        unsigned hi = c == 0xF4 ? 0x8F : 0xBF;
        if (left < 4 || p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return -1;
        *n = 4;
        return (int32_t)((c & 0x07) << 18 | (p[1] & 0x3Fu) << 12 | (p[2] & 0x3Fu) << 6 |
                         (p[3] & 0x3Fu));
    }
    return -1;
}

/* The lenient mode, for callers that must not fail (fingerprint_compute): a byte that does
 * not start a valid sequence reads as U+FFFD, one byte long. */
static inline int32_t utf8_decode_or_replacement(const unsigned char *p, const unsigned char *end,
                                                 size_t *n)
{
    int32_t cp = utf8_decode(p, end, n);
    return cp < 0 ? 0xFFFD : cp;
}

/* Whether s[0..len) is well-formed UTF-8 (the rules of utf8_decode). s may be NULL if len is
 * 0. */
bool utf8_is_valid(const char *s, size_t len);

/* Writes the UTF-8 encoding of a valid code point (not a surrogate, <= U+10FFFF) to out (room
 * for 4 bytes) and returns its length. */
static inline size_t utf8_encode(int32_t cp, unsigned char *out)
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

#endif
