/* Domain set: an arena of NUL-terminated canonical names and a table of 8-byte slots. */
#include "links/domain_set.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "links/host.h"

/* A slot is 0 when empty, else (hash tag << 32) | (arena offset + 1): the tag settles most
 * mismatches without touching the arena, and 32-bit offsets bound the arena at 4 GiB, which
 * DOMAIN_SET_MAX_NAMES names of at most 254 bytes could pass, so adding checks it. */
struct domain_set {
    char *arena;
    size_t arena_len;
    size_t arena_cap;
    uint64_t *slots;
    size_t nslots; /* a power of two, at least twice count */
    size_t count;
};

static uint64_t name_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a final mix so the high bits vary */
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
    if (!set)
        return NULL;
    set->nslots = 1024;
    set->slots = calloc(set->nslots, sizeof *set->slots);
    if (!set->slots) {
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
    free(set->slots);
    free(set);
}

/* The slot holding name, or the empty slot where it would go. */
static size_t slot_find(const domain_set_t *set, const char *name, size_t len, uint64_t hash)
{
    uint32_t tag = (uint32_t)(hash >> 32);
    size_t mask = set->nslots - 1;
    for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
        uint64_t slot = set->slots[i];
        if (slot == 0)
            return i;
        if ((uint32_t)(slot >> 32) == tag) {
            const char *stored = set->arena + (uint32_t)slot - 1;
            if (strncmp(stored, name, len) == 0 && stored[len] == '\0')
                return i;
        }
    }
}

static int table_grow(domain_set_t *set)
{
    size_t nslots = set->nslots * 2;
    uint64_t *slots = calloc(nslots, sizeof *slots);
    if (!slots)
        return TW_ERR_NOMEM;
    size_t mask = nslots - 1;
    for (size_t i = 0; i < set->nslots; i++) {
        uint64_t slot = set->slots[i];
        if (slot == 0)
            continue;
        const char *stored = set->arena + (uint32_t)slot - 1;
        size_t j = (size_t)name_hash(stored, strlen(stored)) & mask;
        while (slots[j])
            j = (j + 1) & mask;
        slots[j] = slot;
    }
    free(set->slots);
    set->slots = slots;
    set->nslots = nslots;
    return 0;
}

static int set_insert(domain_set_t *set, const char *name, size_t len)
{
    uint64_t hash = name_hash(name, len);
    size_t at = slot_find(set, name, len, hash);
    if (set->slots[at])
        return 0;
    if (set->count >= DOMAIN_SET_MAX_NAMES || set->arena_len + len + 1 >= UINT32_MAX)
        return TW_ERR_TOO_LARGE;
    if (set->arena_len + len + 1 > set->arena_cap) {
        size_t cap = set->arena_cap ? set->arena_cap * 2 : 1u << 16;
        while (cap < set->arena_len + len + 1)
            cap *= 2;
        char *arena = realloc(set->arena, cap);
        if (!arena)
            return TW_ERR_NOMEM;
        set->arena = arena;
        set->arena_cap = cap;
    }
    memcpy(set->arena + set->arena_len, name, len);
    set->arena[set->arena_len + len] = '\0';
    set->slots[at] = ((hash >> 32) << 32) | (uint64_t)(set->arena_len + 1);
    set->arena_len += len + 1;
    set->count++;
    if (set->count * 2 > set->nslots)
        return table_grow(set);
    return 0;
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

int domain_set_load_file(domain_set_t *set, const char *path, tw_diag_t *diag)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        tw_diag_add(diag, "%s: cannot read domain list: %s", path, strerror(errno));
        return TW_ERR_IO;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int lineno = 0, result = 0;
    size_t bad_lines = 0;
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t len = (size_t)got;
        char *hash = memchr(line, '#', len);
        if (hash)
            len = (size_t)(hash - line);
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
                           line[len - 1] == '\t'))
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
                tw_diag_add(diag, "%s:%d: not a host name: '%s'", path, lineno,
                            tw_diag_quote(line + start, len - start, 1, quoted));
            }
            result = TW_ERR_PARSE;
        } else if (err) {
            tw_diag_add(diag, "%s:%d: %s", path, lineno, tw_err_str(err));
            result = err;
            break;
        }
    }
    if (bad_lines > DOMAIN_SET_MAX_DIAGS)
        tw_diag_add(diag, "%s: %zu more lines hold no host name", path,
                    bad_lines - DOMAIN_SET_MAX_DIAGS);
    domain_set_compact(set);
    if (ferror(f) && result == 0) {
        tw_diag_add(diag, "%s: read error", path);
        result = TW_ERR_IO;
    }
    free(line);
    fclose(f);
    return result;
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
        size_t len = strlen(name);
        uint64_t slot = set->slots[slot_find(set, name, len, name_hash(name, len))];
        if (slot)
            return set->arena + (uint32_t)slot - 1;
    }
    return NULL;
}

size_t domain_set_count(const domain_set_t *set)
{
    return set->count;
}

size_t domain_set_memory_bytes(const domain_set_t *set)
{
    return sizeof *set + set->arena_cap + set->nslots * sizeof *set->slots;
}
