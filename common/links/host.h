/* Host names as evidence: one canonical form per way of writing a host.
 *
 * Posts write the same host many ways: "PayPal.com.", "paypal\u3002com", "xn--pypal-4ve.com",
 * "p\u0430ypal.com" with a Cyrillic \u0430. A blocklist lookup needs them to meet on one key, so a
 * host is reduced to at most two lowercase ASCII keys:
 *   - the IDNA key: dots unified (U+3002, U+FF0E, U+FF61 are dots too), trailing dot dropped,
 *     ASCII lowercased, Unicode labels mapped to punycode by libidn2 (IDNA2008 with the UTS #46
 *     non-transitional mapping), so every spelling of one registered name gives one key;
 *   - the skeleton key: the Unicode form of the host with every character that Unicode's
 *     confusables.txt says looks like ASCII replaced by that ASCII (normalize.h's skeleton
 *     view), kept only when it is all ASCII and differs from the IDNA key, so a look-alike of
 *     a listed name is caught as that name.
 * Blocklist entries go through the same function, so both sides agree on the key. */
#ifndef TW_LINKS_HOST_H
#define TW_LINKS_HOST_H

#include <stdbool.h>
#include <stddef.h>

#define HOST_MAX_LEN 253 /* RFC 1035: the longest name in dotted form */

typedef struct {
    char idna[HOST_MAX_LEN + 1];     /* lowercase ASCII (punycode for Unicode labels) */
    char skeleton[HOST_MAX_LEN + 1]; /* "" when it would equal idna or is not ASCII */
} host_keys_t;

/* Computes the keys of the host written as raw[0, len): UTF-8, dots or Unicode full stops
 * between labels, no scheme, port or path. Returns 0, or TW_ERR_INVALID when it is not a host
 * name (empty label, a character that no host name holds, longer than 253 bytes as ASCII);
 * TW_ERR_NOMEM. An IPv4 address in dotted decimal is its own key. */
int host_canonicalize(const char *raw, size_t len, host_keys_t *out);

/* True when name (canonical ASCII) is a dotted-decimal IPv4 address. */
bool host_is_ipv4(const char *name);

/* The next parent domain of a canonical name ("a.b.c" -> "b.c"), or NULL for a single label. */
const char *host_parent(const char *name);

#endif
