/* Host names in post text, however they are written.
 *
 * Spam and phishing posts write links so that filters miss them: without a scheme
 * ("example.com/x"), defanged the way threat reports write them ("hxxp://example[.]com",
 * "example(.)com", "example[dot]com"), with ideographic or fullwidth full stops, or in
 * another script ("пример.рф"). The extractor finds every dotted name of at least two labels
 * whose last label looks like a top-level domain (two or more characters, starting with a
 * letter) or that is an IPv4 address, and hands back the name with its separators written
 * as '.' together with the bytes of the text that wrote it, so an alert can point there.
 * It does not decide what is a real domain: the lookup in a domain set does. */
#ifndef TW_LINKS_EXTRACT_H
#define TW_LINKS_EXTRACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "links/host.h"

#define LINK_HOST_BUF (HOST_MAX_LEN * 4 + 1) /* a 253-character name in any script */

typedef struct {
    size_t start, end;        /* bytes [start, end) of the text that wrote the host */
    char host[LINK_HOST_BUF]; /* the host, separators as '.', NUL-terminated */
    size_t host_len;
    bool has_scheme; /* written after http://, https://, hxxp:// or hxxps:// */
} link_host_t;

/* A character a host label holds: ASCII letters, digits, '-' and '_', and any letter, mark or
 * decimal digit of another script (IDNA decides later which of those a registry allows). */
bool links_is_label_cp(int32_t cp);

/* Finds the next host in text[0, len) that starts at or after *pos. Returns true, fills out
 * and moves *pos past it; false at the end of the text. text must be valid UTF-8. */
bool links_next_host(const char *text, size_t len, size_t *pos, link_host_t *out);

#endif
