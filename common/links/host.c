/* Host canonicalization: see host.h for the two keys and why both exist. */
#include "links/host.h"

#include "links/extract.h"

#include <idn2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "normalize/normalize.h"
#include "util/err.h"

/* Room for the Unicode spelling of a 253-byte ASCII name: a label of 63 punycode bytes
 * decodes to at most 63 code points of at most 4 bytes each. */
#define HOST_UNIFIED_MAX (HOST_MAX_LEN * 4)

static bool is_full_stop(int32_t cp)
{
    /* IDNA (UTS #46 section 2.3) treats these as label separators like '.'. */
    return cp == '.' || cp == 0x3002 || cp == 0xFF0E || cp == 0xFF61;
}

static bool is_host_ascii(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Copies raw into out with separators made '.', ASCII lowercased and the trailing dot
 * dropped; refuses what no host name holds. *ascii tells whether every byte is ASCII. */
static int host_unify(const char *raw, size_t len, char *out, size_t cap, size_t *out_len,
                      bool *ascii)
{
    const uint8_t *p = (const uint8_t *)raw;
    size_t at = 0, n = 0;
    *ascii = true;
    while (at < len) {
        int32_t cp;
        utf8proc_ssize_t step = utf8proc_iterate(p + at, (utf8proc_ssize_t)(len - at), &cp);
        if (step <= 0)
            return TW_ERR_INVALID;
        if (is_full_stop(cp)) {
            if (n == 0 || out[n - 1] == '.')
                return TW_ERR_INVALID; /* empty label */
            if (n + 1 >= cap)
                return TW_ERR_INVALID;
            out[n++] = '.';
        } else if (cp < 0x80) {
            unsigned char c = (unsigned char)cp;
            if (c >= 'A' && c <= 'Z')
                c = (unsigned char)(c - 'A' + 'a');
            if (!is_host_ascii(c) || n + 1 >= cap)
                return TW_ERR_INVALID;
            out[n++] = (char)c;
        } else {
            if (!links_is_label_cp(cp) || n + (size_t)step >= cap)
                return TW_ERR_INVALID;
            memcpy(out + n, p + at, (size_t)step);
            n += (size_t)step;
            *ascii = false;
        }
        at += (size_t)step;
    }
    while (n > 0 && out[n - 1] == '.')
        n--;
    if (n == 0)
        return TW_ERR_INVALID;
    out[n] = '\0';
    *out_len = n;
    return 0;
}

static bool has_ace_label(const char *name)
{
    for (const char *label = name; label; label = host_parent(label))
        if (strncmp(label, "xn--", 4) == 0)
            return true;
    return false;
}

static bool copy_key(char dst[HOST_MAX_LEN + 1], const char *src, size_t len)
{
    if (len == 0 || len > HOST_MAX_LEN)
        return false;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return true;
}

/* The skeleton of a Unicode host, if it comes out as a plain ASCII host name. */
static void host_skeleton(const char *unicode, host_keys_t *out)
{
    normalized_t view;
    normalized_init(&view);
    if (normalize_text_view(unicode, strlen(unicode), NORM_VIEW_SKELETON, &view) == 0) {
        bool plain = view.len > 0;
        for (size_t i = 0; i < view.len && plain; i++)
            plain = is_host_ascii((unsigned char)view.text[i]) || view.text[i] == '.';
        if (plain && strcmp(view.text, out->idna) != 0)
            copy_key(out->skeleton, view.text, view.len);
    }
    normalized_fini(&view);
}

int host_canonicalize(const char *raw, size_t len, host_keys_t *out)
{
    char unified[HOST_UNIFIED_MAX + 1];
    size_t n;
    bool ascii;
    out->idna[0] = out->skeleton[0] = '\0';
    int err = host_unify(raw, len, unified, sizeof unified, &n, &ascii);
    if (err)
        return err;
    if (ascii && !has_ace_label(unified))
        return copy_key(out->idna, unified, n) ? 0 : TW_ERR_INVALID;

    /* Unicode or punycode: libidn2 gives the registered (ASCII) form; the Unicode form feeds
     * the skeleton. A name that IDNA2008 refuses (mixed scripts are allowed, but symbols and
     * some joiners are not) can still be a look-alike of a listed name, so it keeps its
     * skeleton key. */
    char *unicode = NULL;
    if (ascii) {
        if (idn2_to_unicode_8z8z(unified, &unicode, 0) != IDN2_OK)
            unicode = NULL;
    }
    const char *text = unicode ? unicode : unified;
    char *lookup = NULL;
    int rc = idn2_lookup_u8((const uint8_t *)text, (uint8_t **)&lookup,
                            IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
    if (rc == IDN2_OK)
        copy_key(out->idna, lookup, strlen(lookup));
    else if (ascii)
        copy_key(out->idna, unified, n); /* a malformed xn-- label is still a literal name */
    idn2_free(lookup);
    if (!ascii || unicode)
        host_skeleton(text, out);
    idn2_free(unicode);
    if (out->idna[0] == '\0' && out->skeleton[0] != '\0') {
        memcpy(out->idna, out->skeleton, sizeof out->idna);
        out->skeleton[0] = '\0';
    }
    return out->idna[0] ? 0 : TW_ERR_INVALID;
}

bool host_is_ipv4(const char *name)
{
    int parts = 0;
    const char *p = name;
    while (parts < 4) {
        unsigned value = 0;
        int digits = 0;
        while (*p >= '0' && *p <= '9' && digits < 4) {
            value = value * 10 + (unsigned)(*p++ - '0');
            digits++;
        }
        if (digits == 0 || digits > 3 || value > 255)
            return false;
        parts++;
        if (*p == '.' && parts < 4)
            p++;
        else
            break;
    }
    return parts == 4 && *p == '\0';
}

const char *host_parent(const char *name)
{
    const char *dot = strchr(name, '.');
    return dot && dot[1] ? dot + 1 : NULL;
}
