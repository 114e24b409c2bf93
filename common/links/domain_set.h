/* A set of host names matched by exact name or any parent domain.
 *
 * Blocklists hold hundreds of thousands of names, and a post's link must hit "evil.example"
 * when it points at "login.evil.example" but must not hit it for "notevil.example": a
 * substring or keyword match gets both wrong. The set stores canonical ASCII names
 * (host.h) in one arena, indexed by util/hashmap (a name's 64-bit hash to its arena offset),
 * so a 1,000,000-name list costs well under 100 MB and a lookup is one hash probe per label
 * of the looked-up name. */
#ifndef TW_LINKS_DOMAIN_SET_H
#define TW_LINKS_DOMAIN_SET_H

#include <stddef.h>

#include "util/err.h"

#define DOMAIN_SET_MAX_NAMES 50000000u /* far above any real list; a guard, not a target */
#define DOMAIN_SET_MAX_DIAGS 20u       /* bad lines of one file reported one by one */

typedef struct domain_set domain_set_t;

/* Returns an empty set, or NULL when out of memory. */
domain_set_t *domain_set_new(void);
/* NULL is a no-op. */
void domain_set_free(domain_set_t *set);

/* Adds the host written as name[0, len) (canonicalized with host_canonicalize; its IDNA key
 * is stored). Returns 0 (also when it was present), TW_ERR_INVALID when it is not a host name,
 * TW_ERR_TOO_LARGE past DOMAIN_SET_MAX_NAMES, TW_ERR_NOMEM. */
int domain_set_add(domain_set_t *set, const char *name, size_t len);

/* Adds every entry of a list file: one per line, '#' starts a comment, blank lines skipped.
 * Besides a bare name a line may be a hosts-file entry ("0.0.0.0 name"), a URL (its host is
 * taken) or an adblock host rule ("||name^"). Every line that holds no host name is reported
 * to diag as "path:line: ..." and makes the load fail; reading continues so all are listed.
 * Returns 0, TW_ERR_IO (unreadable), TW_ERR_PARSE (bad lines), TW_ERR_TOO_LARGE, TW_ERR_NOMEM. */
int domain_set_load_file(domain_set_t *set, const char *path, tw_diag_t *diag);

/* Gives back the arena's unused growth room; domain_set_load_file does it at its end. */
void domain_set_compact(domain_set_t *set);

/* domain_set_load_file for a list already in memory; name is used in diagnostics. */
int domain_set_load_buffer(domain_set_t *set, const char *name, const char *data, size_t size,
                           tw_diag_t *diag);

/* The listed name that covers canonical (a host_keys_t key): canonical itself or its nearest
 * listed parent domain; NULL when none is listed. */
const char *domain_set_match(const domain_set_t *set, const char *canonical);

size_t domain_set_count(const domain_set_t *set);
/* Heap bytes the set holds (arena and table). */
size_t domain_set_memory_bytes(const domain_set_t *set);

#endif
