/* Domain set: an arena of NUL-terminated canonical names and a table of 8-byte slots. */
#include "links/domain_set.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "links/host.h"
#include "util/array.h"
#include "util/hashmap.h"

/* Names live in one arena; the index maps a 64-bit hash of a name to its arena offset. Two
 * names with one hash (odds about 3 in 10^8 for a 1,000,000-name list) are told apart by
 * comparing the stored name: a mismatch moves on to the name's next hash (the hash seeded
 * with the attempt number), so lookups stay exact. */
struct domain_set {
    char *arena;
    size_t arena_len;
    size_t arena_cap;
    u64map_t index; /* hash -> arena offset */
};

#define DOMAIN_SET_MAX_PROBES 8 /* hashes tried per name; 64-bit collisions are that rare */

static uint64_t name_hash(const char *s, size_t len, unsigned attempt)
{
    uint64_t h = 0xcbf29ce484222325ull ^ attempt; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

domain_set_t *domain_set_new(void)
{
    domain_set_t *set = calloc(1, sizeof *set);
    if (set && u64map_init(&set->index, 1024) != 0) {
        free(set);
        return NULL;
    }
    return set;
}

void domain_set_free(domain_set_t *set)
{
    if (!set)
        return;
    free(set->arena);
    u64map_fini(&set->index);
    free(set);
}

static bool stored_is(const domain_set_t *set, uint64_t offset, const char *name, size_t len)
{
    const char *stored = set->arena + offset;
    return strncmp(stored, name, len) == 0 && stored[len] == '\0';
}

/* The arena offset of name, or -1 when absent. */
static int64_t set_find(const domain_set_t *set, const char *name, size_t len)
{
    for (unsigned attempt = 0; attempt < DOMAIN_SET_MAX_PROBES; attempt++) {
        const uint64_t *offset = u64map_get(&set->index, name_hash(name, len, attempt));
        if (!offset)
            return -1;
        if (stored_is(set, *offset, name, len))
            return (int64_t)*offset;
    }
    return -1;
}

static int set_insert(domain_set_t *set, const char *name, size_t len)
{
    if (set->index.count >= DOMAIN_SET_MAX_NAMES)
        return TW_ERR_TOO_LARGE;
    int rc = 0;
    set->arena =
        tw_array_grow(set->arena, &set->arena_cap, set->arena_len + len + 1, 1, 1u << 16, &rc);
    if (rc != 0)
        return rc;
    for (unsigned attempt = 0; attempt < DOMAIN_SET_MAX_PROBES; attempt++) {
        bool inserted;
        uint64_t *offset =
            u64map_put(&set->index, name_hash(name, len, attempt), set->arena_len, &inserted);
        if (!offset)
            return TW_ERR_NOMEM;
        if (!inserted && stored_is(set, *offset, name, len))
            return 0; /* present */
        if (inserted) {
            memcpy(set->arena + set->arena_len, name, len);
            set->arena[set->arena_len + len] = '\0';
            set->arena_len += len + 1;
            return 0;
        }
    }
    return TW_ERR_TOO_LARGE; /* eight 64-bit collisions in a row: not a list of host names */
}

int domain_set_add(domain_set_t *set, const char *name, size_t len)
{
    host_keys_t keys;
    int err = host_canonicalize(name, len, &keys);
    if (err)
        return err;
    return set_insert(set, keys.idna, strlen(keys.idna));
}

static bool address_field(const char *p, const char *end)
{
    char field[16];
    size_t n = (size_t)(end - p);
    if (n >= sizeof field)
        return false;
    memcpy(field, p, n);
    field[n] = '\0';
    return host_is_ipv4(field);
}

/* Narrows line[0, *len) to the host it names: a hosts-file entry's second field, a URL's
 * host, an adblock "||name^" rule's name. Returns the start. */
static const char *list_entry_host(const char *line, size_t *len)
{
    const char *p = line, *end = line + *len;
    const char *space = memchr(p, ' ', (size_t)(end - p));
    if (!space)
        space = memchr(p, '\t', (size_t)(end - p));
    /* "0.0.0.0 name": a hosts-file entry starts with an address (IPv6 ones hold ':'). */
    if (space && (memchr(p, ':', (size_t)(space - p)) || address_field(p, space))) {
        p = space;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *stop = p;
        while (stop < end && *stop != ' ' && *stop != '\t')
            stop++;
        end = stop;
    }
    if (end - p >= 2 && p[0] == '|' && p[1] == '|') {
        p += 2;
        if (end > p && end[-1] == '^')
            end--;
    }
    const char *scheme = NULL;
    for (const char *q = p; q + 3 <= end; q++)
        if (q[0] == ':' && q[1] == '/' && q[2] == '/') {
            scheme = q;
            break;
        }
    if (scheme) {
        p = scheme + 3;
        const char *stop = p;
        while (stop < end && *stop != '/' && *stop != '?' && *stop != '#')
            stop++;
        end = stop;
        const char *at = memchr(p, '@', (size_t)(end - p));
        if (at)
            p = at + 1;
        const char *colon = memchr(p, ':', (size_t)(end - p));
        if (colon) /* a port */
            end = colon;
    }
    *len = (size_t)(end - p);
    return p;
}

int domain_set_load_buffer(domain_set_t *set, const char *name, const char *data, size_t size,
                           tw_diag_t *diag)
{
    int lineno = 0, result = 0;
    size_t bad_lines = 0;
    for (const char *p = data, *end = data + size; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line = p;
        size_t len = (size_t)((nl ? nl : end) - p);
        p = nl ? nl + 1 : end;
        lineno++;
        const char *hash = memchr(line, '#', len);
        if (hash)
            len = (size_t)(hash - line);
        while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
            len--;
        size_t start = 0;
        while (start < len && (line[start] == ' ' || line[start] == '\t'))
            start++;
        if (start == len)
            continue;
        size_t host_len = len - start;
        const char *host = list_entry_host(line + start, &host_len);
        int err = domain_set_add(set, host, host_len);
        if (err == TW_ERR_INVALID) {
            /* A list of junk would otherwise flood the log with one line per entry. */
            if (bad_lines++ < DOMAIN_SET_MAX_DIAGS) {
                char quoted[TW_DIAG_QUOTE_SIZE];
                tw_diag_add(diag, "%s:%d: not a host name: '%s'", name, lineno,
                            tw_diag_quote(line + start, len - start, 1, quoted));
            }
            result = TW_ERR_PARSE;
        } else if (err) {
            tw_diag_add(diag, "%s:%d: %s", name, lineno, tw_err_str(err));
            result = err;
            break;
        }
    }
    if (bad_lines > DOMAIN_SET_MAX_DIAGS)
        tw_diag_add(diag, "%s: %zu more lines hold no host name", name,
                    bad_lines - DOMAIN_SET_MAX_DIAGS);
    domain_set_compact(set);
    return result;
}

int domain_set_load_file(domain_set_t *set, const char *path, tw_diag_t *diag)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t size = 0, cap = 0;
    int err = 0;
    if (!f) {
        tw_diag_add(diag, "%s: cannot read domain list: %s", path, strerror(errno));
        return TW_ERR_IO;
    }
    char chunk[1 << 16];
    size_t got;
    while (err == 0 && (got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        data = tw_array_grow(data, &cap, size + got, 1, sizeof chunk, &err);
        if (err != 0)
            break;
        memcpy(data + size, chunk, got);
        size += got;
    }
    if (err == 0 && ferror(f)) {
        tw_diag_add(diag, "%s: read error: %s", path, strerror(errno));
        err = TW_ERR_IO;
    }
    fclose(f);
    if (err == 0)
        err = domain_set_load_buffer(set, path, data ? data : "", size, diag);
    free(data);
    return err;
}

void domain_set_compact(domain_set_t *set)
{
    if (set->arena_cap > set->arena_len && set->arena_len > 0) {
        char *arena = realloc(set->arena, set->arena_len);
        if (arena) { /* a failed shrink keeps the larger, still valid arena */
            set->arena = arena;
            set->arena_cap = set->arena_len;
        }
    }
}

const char *domain_set_match(const domain_set_t *set, const char *canonical)
{
    for (const char *name = canonical; name; name = host_parent(name)) {
        int64_t offset = set_find(set, name, strlen(name));
        if (offset >= 0)
            return set->arena + offset;
    }
    return NULL;
}

size_t domain_set_count(const domain_set_t *set)
{
    return set->index.count;
}

size_t domain_set_memory_bytes(const domain_set_t *set)
{
    return sizeof *set + set->arena_cap +
           set->index.cap * (sizeof *set->index.keys + sizeof *set->index.values);
}
