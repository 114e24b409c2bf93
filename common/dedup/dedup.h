/* Duplicate store: remembers fingerprints for a window and counts posts per cluster.
 *
 * Two implementations share these semantics exactly, so `scan` (memory) and `run` (Redis)
 * agree. For each item of a batch, in order:
 *   1. the cluster is the one recorded for the exact hash, else for the first band key (in
 *      band order) that has one and whose cluster passes verification, else a new cluster
 *      named after the exact hash. Verification (dedup_verify_set): a cluster keeps the
 *      MinHash signature of its first signed post, and a band match counts only when at least
 *      verify_matches of the FINGERPRINT_SIG_LEN entries agree (estimated Jaccard >= that
 *      share), so short posts that share a stock phrase do not chain into one cluster;
 *   2. the post id joins the cluster's members; a post id already there is a replay (after a
 *      crash): counts do not change, and the post still gets its alert;
 *   3. otherwise the cluster's post count increments, its author joins the distinct-author
 *      count, and first/last seen take the post time;
 *   4. the exact and band keys point at the cluster (an existing key keeps its cluster) and
 *      every key of the cluster expires window_s after its last update (the Redis stores,
 *      single server and Redis Cluster, keep exact and band keys, and singletons, in time
 *      buckets of window_s / 2 that expire as a whole: between window_s and 1.5 x window_s
 *      after their last update);
 *   5. campaign milestones (dedup_campaign_set): a new member that finds the cluster's count
 *      at or above milestone m and its distinct authors at or above min_authors, where m was
 *      not yet reached, claims m for its post id (Redis: set-if-empty inside one script, so
 *      exactly one post of the fleet claims each milestone). A replay of the claiming post
 *      claims it again, so the campaign record survives a crash before its delivery; no
 *      other post ever does. The first DEDUP_SAMPLE_IDS post ids of a cluster are kept as
 *      samples and returned with a claim. */
#ifndef TW_DEDUP_H
#define TW_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "fingerprint/fingerprint.h"

typedef struct {
    const char *post_id;
    size_t post_id_len;
    const char *author; /* may be NULL */
    size_t author_len;
    int64_t ts; /* post time, epoch seconds */
    const fingerprint_t *fp;
} dedup_item_t;

/* The stores' LSH index: DEDUP_INDEX_BANDS bands of DEDUP_BAND_ROWS rows each, built from the
 * fingerprint's signature (the low 16 bits of its MinHash minima): band b's value is entries
 * [b x rows, (b + 1) x rows) packed into 64 bits. Two posts of Jaccard similarity J share a band
 * with probability 1 - (1 - J^rows)^bands. Each indexed band costs every post a field in the
 * store (its largest share of Redis memory and CPU), so the choice is measured
 * (perf/neardup_eval.py, docs/DEDUP.md): 10 bands of 4 rows keep the recall and precision of
 * the fingerprint's own 16 bands of 5 rows (recall at J >= 0.8 0.9942 and 0.9950 on seeds 7 and
 * 11, precision 0.9904 and 0.9921) with 11 fields per post instead of 17. Two posts whose 16-bit
 * entries differ match by chance with probability 2^-16 per row, so a band of 4 rows is as
 * selective as one over the full minima. Every worker of a fleet must use the same values
 * (overridable at build time only for evaluations). */
#ifndef DEDUP_INDEX_BANDS
#define DEDUP_INDEX_BANDS 10
#endif
#ifndef DEDUP_BAND_ROWS
#define DEDUP_BAND_ROWS 4
#endif
_Static_assert(DEDUP_BAND_ROWS >= 1 && DEDUP_BAND_ROWS <= 4, "a band's rows fit 64 bits");
_Static_assert(DEDUP_INDEX_BANDS >= 1 && DEDUP_INDEX_BANDS <= FINGERPRINT_BANDS &&
                   DEDUP_INDEX_BANDS * DEDUP_BAND_ROWS <= FINGERPRINT_SIG_LEN,
               "the index's bands fit the signature and the stores' per-post arrays");

/* Band b's value (b < DEDUP_INDEX_BANDS; the fingerprint must have bands). */
static inline uint64_t dedup_band_value(const fingerprint_t *fp, uint32_t b)
{
    uint64_t v = 0;
    for (uint32_t r = 0; r < DEDUP_BAND_ROWS; r++)
        v = v << 16 | fp->sig[b * DEDUP_BAND_ROWS + r];
    return v;
}

static inline uint32_t dedup_index_bands(const fingerprint_t *fp)
{
    return fp->nbands < DEDUP_INDEX_BANDS ? fp->nbands : DEDUP_INDEX_BANDS;
}

#define DEDUP_MAX_MILESTONES 16
#define DEDUP_SAMPLE_IDS     5

/* Campaign thresholds, shared by every worker of a fleet (the same configuration). */
typedef struct {
    uint64_t milestones[DEDUP_MAX_MILESTONES]; /* strictly increasing, > 0 */
    size_t nmilestones;                        /* 0: campaign milestones off */
    uint64_t min_authors;                      /* distinct authors needed as well */
} dedup_campaign_t;

typedef struct dedup_result {
    uint64_t cluster;
    uint64_t count;   /* distinct post ids in the cluster */
    uint64_t authors; /* distinct authors (HyperLogLog estimate in Redis) */
    int64_t first_seen;
    int64_t last_seen;
    bool replay;         /* this post id was already a member */
    bool available;      /* false when the store could not answer (Redis down) */
    bool local;          /* answered by the in-process fallback store while Redis was down: counts
                            are this worker's only (available is false) */
    uint32_t milestones; /* bit i: this post claimed campaign milestone i (see 5. above) */
    size_t nsamples;     /* when milestones != 0: the cluster's first post ids */
    const char *samples[DEDUP_SAMPLE_IDS]; /* valid until the next call on the store */
    size_t sample_lens[DEDUP_SAMPLE_IDS];
} dedup_result_t;

typedef struct dedup_store dedup_store_t;

/* What a store is, for the code that treats Redis differently (its latency and up metrics);
 * the name is for logs only. */
typedef enum {
    DEDUP_STORE_MEMORY,
    DEDUP_STORE_REDIS,
    DEDUP_STORE_REDIS_CLUSTER,
} dedup_store_kind_t;

typedef struct {
    const char *name;
    dedup_store_kind_t kind;
    int (*check_batch)(dedup_store_t *store, const dedup_item_t *items, size_t n,
                       dedup_result_t *results);
    void (*free)(dedup_store_t *store);
    /* One cheap round trip (Redis PING) to learn whether the store answers; NULL for stores
     * that always do (memory). Returns 0 or a negative tw_err_t. */
    int (*ping)(dedup_store_t *store);
} dedup_store_ops_t;

struct dedup_store {
    const dedup_store_ops_t *ops;
    dedup_campaign_t campaign; /* zeroed by the constructors: milestones off */
    uint32_t verify_matches;   /* see step 1; 0 (the constructors' value) trusts any band */
};

/* Band matches must agree on at least percent % of the signature (0 = no verification). */
static inline void dedup_verify_set(dedup_store_t *store, unsigned percent)
{
    store->verify_matches = (percent * FINGERPRINT_SIG_LEN + 99) / 100;
}

/* Parses "10,100,1000" (strictly increasing positive integers, at most
 * DEDUP_MAX_MILESTONES; "" = none) into c->milestones. Returns 0 or TW_ERR_CONFIG with a
 * message in diag (may be NULL). */
int dedup_campaign_parse(const char *milestones, uint64_t min_authors, dedup_campaign_t *c,
                         tw_diag_t *diag);

static inline void dedup_campaign_set(dedup_store_t *store, const dedup_campaign_t *c)
{
    store->campaign = *c;
}

/* Looks up and records a batch. On failure every result has available = false and a negative
 * tw_err_t is returned; the caller decides whether to go on without duplicate information. */
static inline int dedup_batch_check(dedup_store_t *store, const dedup_item_t *items, size_t n,
                                    dedup_result_t *results)
{
    return store->ops->check_batch(store, items, n, results);
}

/* True for the Redis stores, single node or cluster. */
static inline bool dedup_store_is_redis(const dedup_store_t *store)
{
    return store->ops->kind == DEDUP_STORE_REDIS || store->ops->kind == DEDUP_STORE_REDIS_CLUSTER;
}

/* Whether the store answers now, without recording anything: the worker asks when idle, so
 * readiness does not report Redis from the last batch only. 0 for in-process stores. */
static inline int dedup_ping(dedup_store_t *store)
{
    return store->ops->ping ? store->ops->ping(store) : 0;
}

static inline void dedup_store_free(dedup_store_t *store)
{
    if (store)
        store->ops->free(store);
}

/* In-process store (scan, demo, and run without --redis). max_clusters bounds memory: when
 * reached, expired clusters are swept and, if still full, the oldest half is dropped. */
int dedup_memory_new(int64_t window_s, size_t max_clusters, dedup_store_t **out);

/* Redis store: one EVALSHA round trip per batch (layout: docs/DEDUP.md). url is
 * redis://[user:password@]host:port/db, or redis+cluster://[user:password@]host:port[,host:port...]
 * (Redis Cluster seed nodes; two or three pipelined rounds per batch, see docs/DEDUP.md). Connects
 * lazily; returns 0 even if Redis is down at creation (errors surface per batch). */
int dedup_redis_new(const char *url, int64_t window_s, int timeout_ms, dedup_store_t **out,
                    tw_diag_t *diag);

/* Redis Cluster index (docs/DEDUP.md): each epoch's index is split into
 * DEDUP_CLUSTER_INDEX_SHARDS hashes tw:i:<epoch>:{<shard>} (one hash slot each, spread over the
 * masters); a field lives in shard field % DEDUP_CLUSTER_INDEX_SHARDS. Every worker of a fleet
 * must use the same value. */
#define DEDUP_CLUSTER_INDEX_SHARDS 256

static inline unsigned dedup_cluster_index_shard(uint64_t field)
{
    return (unsigned)(field % DEDUP_CLUSTER_INDEX_SHARDS);
}

/* For tests and logs: the MOVED and ASK redirections a cluster store followed (0 otherwise). */
void dedup_redis_redirections(const dedup_store_t *store, uint64_t *moved, uint64_t *ask);

/* Cluster ids are printed as 16 lower-case hex digits. */
void dedup_cluster_hex(uint64_t cluster, char out[17]);

#endif
