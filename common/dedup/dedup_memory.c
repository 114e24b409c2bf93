/* In-process duplicate store with the same semantics as the Redis store (see dedup.h).
 * Keys are 64-bit hashes in open-addressing tables; expiry is swept when tables fill, so
 * memory stays bounded by max_clusters however long the worker runs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "util/array.h"
#include "util/buf.h"
#include "util/hashmap.h"
#include "dedup/dedup.h"

/* The exact and band keys: key -> (cluster id, expiry), both in the key's slot, so a lookup
 * touches one cache line instead of four (keys and values of two u64maps): these tables hold
 * ~21 keys per post in the window, far more than the caches, and are read and written 42
 * times per post. Open addressing as in util/hashmap.h (key 0 is U64MAP_ZERO_KEY). */
typedef struct {
    uint64_t key;
    uint64_t cluster;
    int64_t expires;
} keyslot_t;

typedef struct {
    keyslot_t *slots;
    size_t cap; /* power of two */
    size_t count;
} keymap_t;

/* Tables this large go on transparent huge pages where the kernel allows (madvise mode):
 * growing one doubles it, and faulting it in 4 KiB at a time was a sixth of scan's time. */
#define KEYMAP_HUGE_BYTES ((size_t)2 << 20)

static keyslot_t *keymap_alloc(size_t cap)
{
    size_t bytes = cap * sizeof(keyslot_t);
    if (bytes < KEYMAP_HUGE_BYTES)
        return calloc(cap, sizeof(keyslot_t));
    bytes = (bytes + KEYMAP_HUGE_BYTES - 1) & ~(KEYMAP_HUGE_BYTES - 1);
    keyslot_t *slots = aligned_alloc(KEYMAP_HUGE_BYTES, bytes);
    if (slots) {
        madvise(slots, bytes, MADV_HUGEPAGE); /* advice only: without it, small pages */
        memset(slots, 0, bytes);
    }
    return slots;
}

static int keymap_init(keymap_t *m, size_t cap)
{
    m->slots = keymap_alloc(cap);
    m->cap = cap;
    m->count = 0;
    if (!m->slots) {
        memset(m, 0, sizeof(*m));
        return TW_ERR_NOMEM;
    }
    return 0;
}

static void keymap_fini(keymap_t *m)
{
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

static uint64_t keymap_nonzero_key(uint64_t key)
{
    return key ? key : U64MAP_ZERO_KEY;
}

static size_t keymap_home(const keymap_t *m, uint64_t key)
{
    return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 17) & (m->cap - 1);
}

static size_t keymap_slot(const keymap_t *m, uint64_t key)
{
    size_t i = keymap_home(m, key);
    while (m->slots[i].key && m->slots[i].key != key)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static const keyslot_t *keymap_get(const keymap_t *m, uint64_t key)
{
    if (!m->cap)
        return NULL;
    const keyslot_t *slot = &m->slots[keymap_slot(m, keymap_nonzero_key(key))];
    return slot->key ? slot : NULL;
}

/* Starts loading key's home slot into the cache: a post's keys are far apart in the table,
 * and their misses overlap when prefetched together. */
static void keymap_prefetch(const keymap_t *m, uint64_t key)
{
    if (m->cap)
        __builtin_prefetch(&m->slots[keymap_home(m, keymap_nonzero_key(key))]);
}

static int keymap_grow(keymap_t *m)
{
    keymap_t bigger;
    if (keymap_init(&bigger, m->cap ? m->cap * 2 : 16) != 0)
        return TW_ERR_NOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key) {
            bigger.slots[keymap_slot(&bigger, m->slots[i].key)] = m->slots[i];
            bigger.count++;
        }
    }
    keymap_fini(m);
    *m = bigger;
    return 0;
}

/* Finds key's slot or makes one (cluster and expires 0); NULL when growing ran out of
 * memory. Load factor at most 3/4, as u64map. */
static keyslot_t *keymap_put(keymap_t *m, uint64_t key, bool *inserted)
{
    key = keymap_nonzero_key(key);
    if ((m->count + 1) * 4 > m->cap * 3 && keymap_grow(m) != 0)
        return NULL;
    keyslot_t *slot = &m->slots[keymap_slot(m, key)];
    *inserted = !slot->key;
    if (*inserted) {
        slot->key = key;
        m->count++;
    }
    return slot;
}

typedef struct {
    uint64_t id;
    uint64_t count;
    int64_t first_seen;
    int64_t last_seen;
    int64_t expires_at;
    u64map_t members;                          /* post id hash -> 1 */
    u64map_t authors;                          /* author hash -> 1 */
    uint64_t claimed_by[DEDUP_MAX_MILESTONES]; /* post id hash that claimed milestone i, 0 */
    char *samples[DEDUP_SAMPLE_IDS];           /* first post ids, owned */
    size_t sample_lens[DEDUP_SAMPLE_IDS];
    size_t nsamples;
    bool has_sig;
    unsigned char sig[FINGERPRINT_SIG_BYTES]; /* of the first signed post, as stored */
} cluster_t;

typedef struct {
    dedup_store_t base;
    int64_t window_s;
    size_t max_clusters;
    keymap_t keys;     /* exact or band key -> cluster id and the key's expiry */
    u64map_t clusters; /* cluster id -> index + 1 into cluster_list */
    cluster_t *cluster_list;
    size_t ncluster_list;
    size_t cluster_cap;
    buf_t samples; /* sample ids handed out with the current batch's results */
} dedup_memory_t;

static uint64_t key_for_exact(uint64_t exact)
{
    return fingerprint_hash64(&exact, sizeof(exact), 0x6578616374ULL);
}

static uint64_t key_for_band(uint32_t band, uint64_t value)
{
    uint64_t pair[2] = {band, value};
    return fingerprint_hash64(pair, sizeof(pair), 0x62616e64ULL);
}

static void cluster_fini(cluster_t *c)
{
    u64map_fini(&c->members);
    u64map_fini(&c->authors);
    for (size_t i = 0; i < c->nsamples; i++)
        free(c->samples[i]);
    c->nsamples = 0;
}

/* Step 5 of dedup.h for one post; member is its post id hash (never 0 for a claim). Sample
 * ids are copied to m->samples; their offsets wait in r->sample_lens' twin, resolved by the
 * caller once the buffer stops growing. */
static void dedup_memory_milestones(dedup_memory_t *m, cluster_t *c, uint64_t member, bool added,
                                    dedup_result_t *r, size_t *sample_offs)
{
    const dedup_campaign_t *camp = &m->base.campaign;
    member = member ? member : 1;
    for (size_t k = 0; k < camp->nmilestones && c->count >= camp->milestones[k]; k++) {
        if (added && !c->claimed_by[k] && c->authors.count >= camp->min_authors) {
            c->claimed_by[k] = member;
            r->milestones |= 1u << k;
        } else if (!added && c->claimed_by[k] == member) {
            r->milestones |= 1u << k;
        }
    }
    if (!r->milestones)
        return;
    r->nsamples = c->nsamples;
    for (size_t i = 0; i < c->nsamples; i++) {
        sample_offs[i] = m->samples.len;
        r->sample_lens[i] = c->sample_lens[i];
        buf_append(&m->samples, c->samples[i], c->sample_lens[i]);
    }
}

static int compare_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Rebuilds the tables without expired entries; when that would not free a quarter of the
 * capacity, the half of the clusters closest to expiry (least recently updated) goes too. */
static int dedup_memory_sweep(dedup_memory_t *m, int64_t now)
{
    int64_t cutoff = now;
    size_t live = 0;
    for (size_t i = 0; i < m->ncluster_list; i++)
        live += m->cluster_list[i].expires_at > now;
    if (live * 4 >= m->max_clusters * 3) {
        int64_t *expiries = malloc(m->ncluster_list * sizeof(*expiries));
        if (!expiries)
            return TW_ERR_NOMEM;
        for (size_t i = 0; i < m->ncluster_list; i++)
            expiries[i] = m->cluster_list[i].expires_at;
        qsort(expiries, m->ncluster_list, sizeof(*expiries), compare_i64);
        cutoff = expiries[m->ncluster_list / 2];
        free(expiries);
    }
    size_t kept = 0;
    u64map_fini(&m->clusters);
    if (u64map_init(&m->clusters, 16) != 0)
        return TW_ERR_NOMEM;
    for (size_t i = 0; i < m->ncluster_list; i++) {
        cluster_t *c = &m->cluster_list[i];
        if (c->expires_at <= cutoff) {
            cluster_fini(c);
            continue;
        }
        m->cluster_list[kept] = *c;
        bool inserted;
        if (!u64map_put(&m->clusters, c->id, kept + 1, &inserted))
            return TW_ERR_NOMEM;
        kept++;
    }
    m->ncluster_list = kept;
    keymap_t keys;
    if (keymap_init(&keys, 16) != 0)
        return TW_ERR_NOMEM;
    for (size_t i = 0; i < m->keys.cap; i++) {
        const keyslot_t *slot = &m->keys.slots[i];
        if (!slot->key || slot->expires <= cutoff || !u64map_get(&m->clusters, slot->cluster))
            continue;
        bool inserted;
        keyslot_t *copy = keymap_put(&keys, slot->key, &inserted);
        if (!copy) {
            keymap_fini(&keys);
            return TW_ERR_NOMEM;
        }
        *copy = *slot;
    }
    keymap_fini(&m->keys);
    m->keys = keys;
    return 0;
}

static cluster_t *dedup_memory_cluster(dedup_memory_t *m, uint64_t id, int64_t now)
{
    uint64_t *idx = u64map_get(&m->clusters, id);
    if (idx) {
        cluster_t *c = &m->cluster_list[*idx - 1];
        if (c->expires_at > now)
            return c;
        /* expired but not yet swept: start it afresh, as Redis would after the TTL */
        cluster_fini(c);
        uint64_t keep_id = c->id;
        memset(c, 0, sizeof(*c));
        c->id = keep_id;
        return c;
    }
    if (m->ncluster_list >= m->max_clusters && dedup_memory_sweep(m, now) != 0)
        return NULL;
    int rc = 0;
    m->cluster_list = tw_array_grow(m->cluster_list, &m->cluster_cap, m->ncluster_list + 1,
                                    sizeof(*m->cluster_list), 64, &rc);
    if (rc != 0)
        return NULL;
    cluster_t *c = &m->cluster_list[m->ncluster_list];
    memset(c, 0, sizeof(*c));
    c->id = id;
    bool inserted;
    if (!u64map_put(&m->clusters, id, m->ncluster_list + 1, &inserted))
        return NULL;
    m->ncluster_list++;
    return c;
}

static int dedup_memory_lookup_key(dedup_memory_t *m, uint64_t key, int64_t now, uint64_t *id)
{
    const keyslot_t *slot = keymap_get(&m->keys, key);
    if (slot && slot->expires > now) {
        *id = slot->cluster;
        return 1;
    }
    return 0;
}

/* Step 1's verification of a band match against cluster id. */
static bool dedup_memory_verified(dedup_memory_t *m, uint64_t id, const fingerprint_t *fp,
                                  int64_t now)
{
    if (!m->base.verify_matches)
        return true;
    uint64_t *idx = u64map_get(&m->clusters, id);
    if (!idx)
        return true; /* as Redis: a cluster without a signature cannot be checked */
    const cluster_t *c = &m->cluster_list[*idx - 1];
    if (c->expires_at <= now || !c->has_sig)
        return true;
    return fingerprint_sig_matches_stored(fp, c->sig, sizeof(c->sig)) >= m->base.verify_matches;
}

static int dedup_memory_set_key(dedup_memory_t *m, uint64_t key, uint64_t id, int64_t expires)
{
    bool inserted;
    keyslot_t *slot = keymap_put(&m->keys, key, &inserted);
    if (!slot)
        return TW_ERR_NOMEM;
    bool was_live = !inserted && slot->expires > expires - m->window_s;
    slot->expires = expires;
    if (!was_live)
        slot->cluster = id; /* a live key keeps its cluster (SET NX); an expired one is replaced */
    return 0;
}

/* The cluster a post joins: the one its exact key names, else the first whose band key it
 * shares and whose signature verifies, else a new one named by its exact hash. */
static uint64_t dedup_memory_find_cluster(dedup_memory_t *m, const dedup_item_t *it,
                                          uint64_t exact_key, const uint64_t *band_keys,
                                          uint32_t nbands, int64_t now)
{
    uint64_t id = it->fp->exact;
    if (dedup_memory_lookup_key(m, exact_key, now, &id))
        return id;
    for (uint32_t b = 0; b < nbands; b++) {
        uint64_t cand;
        if (dedup_memory_lookup_key(m, band_keys[b], now, &cand) &&
            dedup_memory_verified(m, cand, it->fp, now))
            return cand;
    }
    return id;
}

/* Counts a post new to cluster c: a sample id while there is room, its author, the times. */
static int dedup_memory_count_post(cluster_t *c, const dedup_item_t *it)
{
    c->count++;
    if (c->nsamples < DEDUP_SAMPLE_IDS) {
        char *copy = malloc(it->post_id_len ? it->post_id_len : 1);
        if (!copy)
            return TW_ERR_NOMEM;
        memcpy(copy, it->post_id, it->post_id_len);
        c->samples[c->nsamples] = copy;
        c->sample_lens[c->nsamples++] = it->post_id_len;
    }
    if (it->author && it->author_len) {
        bool inserted;
        uint64_t author = fingerprint_hash64(it->author, it->author_len, 0);
        if (!u64map_put(&c->authors, author, 1, &inserted))
            return TW_ERR_NOMEM;
    }
    if (c->count == 1 || it->ts < c->first_seen)
        c->first_seen = it->ts;
    if (c->count == 1 || it->ts > c->last_seen)
        c->last_seen = it->ts;
    return 0;
}

static int dedup_memory_check_batch(dedup_store_t *store, const dedup_item_t *items, size_t n,
                                    dedup_result_t *results)
{
    dedup_memory_t *m = (dedup_memory_t *)store;
    int64_t now = (int64_t)time(NULL);
    int64_t expires = now + m->window_s;
    buf_reset(&m->samples);
    size_t(*offs)[DEDUP_SAMPLE_IDS] = NULL;
    if (m->base.campaign.nmilestones && !(offs = calloc(n ? n : 1, sizeof(*offs))))
        return TW_ERR_NOMEM;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const dedup_item_t *it = &items[i];
        dedup_result_t *r = &results[i];
        memset(r, 0, sizeof(*r));
        /* The post's keys, hashed once for the lookups and the sets, their slots fetched
         * together. */
        uint64_t exact_key = key_for_exact(it->fp->exact);
        uint64_t band_keys[FINGERPRINT_BANDS];
        uint32_t nbands = dedup_index_bands(it->fp); /* <= FINGERPRINT_BANDS */
        keymap_prefetch(&m->keys, exact_key);
        for (uint32_t b = 0; b < nbands; b++) {
            band_keys[b] = key_for_band(b, dedup_band_value(it->fp, b));
            keymap_prefetch(&m->keys, band_keys[b]);
        }
        uint64_t id = dedup_memory_find_cluster(m, it, exact_key, band_keys, nbands, now);
        cluster_t *c = dedup_memory_cluster(m, id, now);
        if (!c)
            goto nomem;
        bool inserted;
        uint64_t member = fingerprint_hash64(it->post_id, it->post_id_len, 0);
        if (!u64map_put(&c->members, member, 1, &inserted))
            goto nomem;
        r->replay = !inserted;
        if (!c->has_sig && it->fp->nbands) {
            fingerprint_sig_store(it->fp, c->sig);
            c->has_sig = true;
        }
        if (inserted && dedup_memory_count_post(c, it) != 0)
            goto nomem;
        c->expires_at = expires;
        if (offs)
            dedup_memory_milestones(m, c, member, !r->replay, r, offs[i]);
        if (dedup_memory_set_key(m, exact_key, id, expires) != 0)
            goto nomem;
        for (uint32_t b = 0; b < nbands; b++)
            if (dedup_memory_set_key(m, band_keys[b], id, expires) != 0)
                goto nomem;
        r->cluster = id;
        r->count = c->count;
        r->authors = c->authors.count;
        r->first_seen = c->first_seen;
        r->last_seen = c->last_seen;
        r->available = true;
    }
    if (m->samples.failed)
        goto nomem;
    for (size_t i = 0; offs && i < n; i++)
        for (size_t k = 0; k < results[i].nsamples; k++)
            results[i].samples[k] = m->samples.data + offs[i][k];
    free(offs);
    return rc;
nomem:
    free(offs);
    return TW_ERR_NOMEM;
}

static void dedup_memory_free(dedup_store_t *store)
{
    dedup_memory_t *m = (dedup_memory_t *)store;
    for (size_t i = 0; i < m->ncluster_list; i++)
        cluster_fini(&m->cluster_list[i]);
    free(m->cluster_list);
    keymap_fini(&m->keys);
    u64map_fini(&m->clusters);
    buf_fini(&m->samples);
    free(m);
}

static const dedup_store_ops_t dedup_memory_ops = {
    .name = "memory",
    .kind = DEDUP_STORE_MEMORY,
    .check_batch = dedup_memory_check_batch,
    .free = dedup_memory_free,
};

int dedup_memory_new(int64_t window_s, size_t max_clusters, dedup_store_t **out)
{
    dedup_memory_t *m = calloc(1, sizeof(*m));
    if (!m)
        return TW_ERR_NOMEM;
    m->base.ops = &dedup_memory_ops;
    m->window_s = window_s;
    m->max_clusters = max_clusters ? max_clusters : 1;
    buf_init(&m->samples);
    if (keymap_init(&m->keys, 1024) || u64map_init(&m->clusters, 256)) {
        dedup_memory_free(&m->base);
        return TW_ERR_NOMEM;
    }
    *out = &m->base;
    return 0;
}

int dedup_campaign_parse(const char *milestones, uint64_t min_authors, dedup_campaign_t *c,
                         tw_diag_t *diag)
{
    memset(c, 0, sizeof(*c));
    c->min_authors = min_authors;
    const char *p = milestones ? milestones : "";
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (errno || end == p || *p == '-' || v == 0 ||
            (c->nmilestones && v <= c->milestones[c->nmilestones - 1])) {
            tw_diag_add(diag,
                        "campaign.milestones: '%s' must be strictly increasing positive "
                        "integers separated by commas",
                        milestones);
            return TW_ERR_CONFIG;
        }
        if (c->nmilestones == DEDUP_MAX_MILESTONES) {
            tw_diag_add(diag, "campaign.milestones: at most %d milestones", DEDUP_MAX_MILESTONES);
            return TW_ERR_CONFIG;
        }
        c->milestones[c->nmilestones++] = v;
        p = end;
        while (*p == ' ')
            p++;
        if (*p && *p != ',') {
            tw_diag_add(diag, "campaign.milestones: unexpected '%c' in '%s'", *p, milestones);
            return TW_ERR_CONFIG;
        }
    }
    return 0;
}

void dedup_cluster_hex(uint64_t cluster, char out[17])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
        out[i] = hex[cluster & 15];
        cluster >>= 4;
    }
    out[16] = '\0';
}
