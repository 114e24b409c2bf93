/* Host extraction: one pass over the text, see extract.h for what counts as a host. */
#include "links/extract.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <utf8proc.h>

#define LABEL_MAX_CHARS 63 /* RFC 1035; counted in code points for Unicode labels */

static bool is_ascii_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Bytes of the code point at text[i], and the code point. */
static size_t next_cp(const char *text, size_t len, size_t i, int32_t *cp)
{
    unsigned char c = (unsigned char)text[i];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    utf8proc_ssize_t step =
        utf8proc_iterate((const uint8_t *)text + i, (utf8proc_ssize_t)(len - i), cp);
    if (step <= 0) { /* not valid UTF-8: step over the byte, it is not a label character */
        *cp = -1;
        return 1;
    }
    return (size_t)step;
}

bool links_is_label_cp(int32_t cp)
{
    if (cp < 0x80)
        return is_ascii_alnum((unsigned char)cp) || cp == '-' || cp == '_';
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ND:
        return true;
    default:
        return false;
    }
}

/* Bytes of the label character at text[i], or 0. */
static size_t label_char_len(const char *text, size_t len, size_t i)
{
    int32_t cp;
    size_t step = next_cp(text, len, i, &cp);
    return cp >= 0 && links_is_label_cp(cp) ? step : 0;
}

static bool has_prefix(const char *text, size_t len, size_t i, const char *prefix)
{
    size_t n = strlen(prefix);
    return len - i >= n && strncasecmp(text + i, prefix, n) == 0;
}

/* Bytes of the label separator at text[i], or 0: a dot, an ideographic, fullwidth or
 * halfwidth full stop, or a defanged dot ("[.]", "(.)", "{.}", "[dot]", "(dot)", "{dot}",
 * optionally with one space on each side). */
static size_t separator_len(const char *text, size_t len, size_t i)
{
    static const char *const defanged[] = {"[.]", "(.)", "{.}", "[dot]", "(dot)", "{dot}"};
    if (text[i] == '.')
        return 1;
    if (has_prefix(text, len, i, "\xE3\x80\x82") || has_prefix(text, len, i, "\xEF\xBC\x8E") ||
        has_prefix(text, len, i, "\xEF\xBD\xA1"))
        return 3;
    size_t at = i + (text[i] == ' ' ? 1 : 0);
    for (size_t k = 0; k < sizeof defanged / sizeof defanged[0]; k++) {
        if (!has_prefix(text, len, at, defanged[k]))
            continue;
        size_t end = at + strlen(defanged[k]);
        bool spaced_ok = defanged[k][0] == '[' || defanged[k][1] == 'd';
        if (end < len && text[end] == ' ' && at > i && spaced_ok)
            end++;
        else if (at > i)
            return 0; /* " [.] " needs both spaces; prose's " (.) " is no dot */
        return end - i;
    }
    return 0;
}

/* Whether a scheme ("http://", "hxxps://", ...) ends right before text[start]. */
static bool scheme_before(const char *text, size_t start)
{
    static const char *const schemes[] = {"http://", "https://", "hxxp://", "hxxps://"};
    for (size_t k = 0; k < sizeof schemes / sizeof schemes[0]; k++) {
        size_t n = strlen(schemes[k]);
        if (start >= n && strncasecmp(text + start - n, schemes[k], n) == 0)
            return true;
    }
    return false;
}

typedef struct {
    size_t labels;
    size_t last_start; /* in out->host */
    size_t last_chars;
    bool all_digits; /* every label is decimal digits (an IPv4 candidate) */
    bool fits;       /* every label within 63 characters and the name within the buffer */
} candidate_t;

/* Consumes the dotted run at text[*i] into out->host; returns what it saw. */
static candidate_t consume_run(const char *text, size_t len, size_t *i, link_host_t *out)
{
    candidate_t c = {.all_digits = true, .fits = true};
    out->host_len = 0;
    for (;;) {
        size_t chars = 0, label_start = out->host_len;
        size_t step;
        while (*i < len && (step = label_char_len(text, len, *i)) > 0) {
            if (!(step == 1 && text[*i] >= '0' && text[*i] <= '9'))
                c.all_digits = false;
            if (out->host_len + step < sizeof out->host) {
                memcpy(out->host + out->host_len, text + *i, step);
                out->host_len += step;
            } else {
                c.fits = false;
            }
            chars++;
            *i += step;
        }
        c.labels++;
        c.last_start = label_start;
        c.last_chars = chars;
        if (chars > LABEL_MAX_CHARS)
            c.fits = false;
        size_t sep = *i < len ? separator_len(text, len, *i) : 0;
        if (sep == 0 || *i + sep >= len || label_char_len(text, len, *i + sep) == 0)
            break;
        if (out->host_len + 1 < sizeof out->host)
            out->host[out->host_len++] = '.';
        else
            c.fits = false;
        *i += sep;
    }
    out->host[out->host_len] = '\0';
    return c;
}

static bool is_host(const candidate_t *c, const link_host_t *out)
{
    if (!c->fits || c->labels < 2)
        return false;
    if (c->all_digits)
        return c->labels == 4 && host_is_ipv4(out->host);
    /* A top-level domain: two characters or more, starting with a letter ("e.g", "3.5x",
     * "v1.2" are not hosts). */
    unsigned char first = (unsigned char)out->host[c->last_start];
    return c->last_chars >= 2 && (first >= 0x80 || (is_ascii_alnum(first) && first > '9'));
}

bool links_next_host(const char *text, size_t len, size_t *pos, link_host_t *out)
{
    size_t i = *pos;
    while (i < len) {
        if (label_char_len(text, len, i) == 0) {
            int32_t cp;
            i += next_cp(text, len, i, &cp);
            continue;
        }
        size_t start = i;
        candidate_t c = consume_run(text, len, &i, out);
        /* "first.last@example.com": the part before '@' is a mailbox, not a host. */
        if (is_host(&c, out) && !(i < len && text[i] == '@')) {
            out->start = start;
            out->end = i;
            out->has_scheme = scheme_before(text, start);
            /* The port, path and query belong to this link: "file.sh" in
             * "evil.example/bin/file.sh" is no host of its own. */
            if (i < len && (text[i] == '/' || text[i] == ':'))
                while (i < len && text[i] != ' ' && text[i] != '\n' && text[i] != '\t')
                    i++;
            *pos = i;
            return true;
        }
    }
    *pos = len;
    return false;
}
