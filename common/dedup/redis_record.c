/* Singleton records of the Redis stores' index: see redis_record.h. */
#include "dedup/redis_record.h"

#include <string.h>

static void mp_put_int(buf_t *b, int64_t v)
{
    unsigned char out[9];
    size_t len;
    uint64_t u = (uint64_t)v;
    if (v >= 0 && v <= 127) {
        out[0] = (unsigned char)v;
        len = 1;
    } else if (v < 0 && v >= -32) {
        out[0] = (unsigned char)(0xe0 | (v & 0x1f));
        len = 1;
    } else {
        /* the smallest of uint8/16/32/64 (0xcc..0xcf) or int8/16/32/64 (0xd0..0xd3), as
         * cmsgpack chooses it */
        int bytes;
        unsigned char tag;
        if (v >= 0) {
            bytes = v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffffLL ? 4 : 8;
            tag = bytes == 1 ? 0xcc : bytes == 2 ? 0xcd : bytes == 4 ? 0xce : 0xcf;
        } else {
            bytes = v >= -128 ? 1 : v >= -32768 ? 2 : v >= -2147483648LL ? 4 : 8;
            tag = bytes == 1 ? 0xd0 : bytes == 2 ? 0xd1 : bytes == 4 ? 0xd2 : 0xd3;
        }
        out[0] = tag;
        for (int k = 0; k < bytes; k++)
            out[1 + k] = (unsigned char)(u >> (8 * (bytes - 1 - k)));
        len = 1 + (size_t)bytes;
    }
    buf_append(b, out, len);
}

static void mp_put_str(buf_t *b, const char *s, size_t len)
{
    unsigned char hdr[5];
    size_t hlen;
    if (len < 32) {
        hdr[0] = (unsigned char)(0xa0 | len);
        hlen = 1;
    } else if (len <= 0xff) {
        hdr[0] = 0xd9;
        hdr[1] = (unsigned char)len;
        hlen = 2;
    } else if (len <= 0xffff) {
        hdr[0] = 0xda;
        hdr[1] = (unsigned char)(len >> 8);
        hdr[2] = (unsigned char)len;
        hlen = 3;
    } else {
        hdr[0] = 0xdb;
        for (int k = 0; k < 4; k++)
            hdr[1 + k] = (unsigned char)(len >> (8 * (3 - k)));
        hlen = 5;
    }
    buf_append(b, hdr, hlen);
    buf_append(b, s, len);
}

/* Big-endian unsigned of width bytes at *p, if the input holds it. */
static bool mp_take(const unsigned char **p, const unsigned char *end, int width, uint64_t *v)
{
    if (end - *p < width)
        return false;
    *v = 0;
    for (int k = 0; k < width; k++)
        *v = *v << 8 | (*p)[k];
    *p += width;
    return true;
}

static bool mp_get_int(const unsigned char **p, const unsigned char *end, int64_t *v)
{
    if (*p >= end)
        return false;
    unsigned char t = *(*p)++;
    uint64_t u;
    if (t <= 0x7f)
        return *v = t, true;
    if (t >= 0xe0)
        return *v = (int8_t)t, true;
    if (t >= 0xcc && t <= 0xcf) {
        if (!mp_take(p, end, 1 << (t - 0xcc), &u))
            return false;
        return *v = (int64_t)u, true;
    }
    if (t >= 0xd0 && t <= 0xd3) {
        int width = 1 << (t - 0xd0);
        if (!mp_take(p, end, width, &u))
            return false;
        if (width < 8 && (u >> (8 * width - 1)))
            u |= ~0ULL << (8 * width); /* sign-extend */
        return *v = (int64_t)u, true;
    }
    if (t == 0xcb) { /* a double: cmsgpack writes one for a non-integer number */
        double d;
        if (!mp_take(p, end, 8, &u))
            return false;
        memcpy(&d, &u, sizeof(d));
        if (!(d >= -9.2e18 && d <= 9.2e18)) /* NaN or out of int64_t's range */
            return false;
        return *v = (int64_t)d, true;
    }
    return false;
}

static bool mp_get_str(const unsigned char **p, const unsigned char *end, const char **s,
                       size_t *len)
{
    if (*p >= end)
        return false;
    unsigned char t = *(*p)++;
    uint64_t u;
    if ((t & 0xe0) == 0xa0)
        u = t & 0x1f;
    else if (t == 0xd9 || t == 0xc4)
        u = 0;
    else if (t == 0xda || t == 0xc5)
        u = 1;
    else if (t == 0xdb || t == 0xc6)
        u = 2;
    else
        return false;
    if ((t & 0xe0) != 0xa0 && !mp_take(p, end, 1 << u, &u))
        return false;
    if ((uint64_t)(end - *p) < u)
        return false;
    *s = (const char *)*p;
    *len = (size_t)u;
    *p += u;
    return true;
}

void dedup_record_encode(buf_t *b, uint64_t cluster, int64_t ts, const char *author,
                         size_t author_len, const char *sig, size_t sig_len, const char *pid,
                         size_t pid_len)
{
    unsigned char id[8];
    for (int k = 0; k < 8; k++)
        id[k] = (unsigned char)(cluster >> (56 - 8 * k));
    buf_append(b, id, 8);
    mp_put_int(b, ts);
    mp_put_str(b, author, author_len);
    mp_put_str(b, sig, sig_len);
    mp_put_str(b, pid, pid_len);
}

bool dedup_record_decode(const char *val, size_t len, dedup_record_t *rec)
{
    if (len <= 8)
        return false;
    const unsigned char *p = (const unsigned char *)val, *end = p + len;
    uint64_t cluster = 0;
    mp_take(&p, end, 8, &cluster); /* len > 8: always there */
    rec->cluster = cluster;
    return mp_get_int(&p, end, &rec->ts) && mp_get_str(&p, end, &rec->author, &rec->author_len) &&
           mp_get_str(&p, end, &rec->sig, &rec->sig_len) &&
           mp_get_str(&p, end, &rec->pid, &rec->pid_len) && p == end;
}
