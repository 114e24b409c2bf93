/* Duplicate store: remembers fingerprints for a window and counts posts per cluster.
 *
 * Two implementations share these semantics exactly, so `scan` (memory) and `run` (Redis)
 * agree. For each item of a batch, in order:
 *   1. the cluster is the one recorded for the exact hash, else for the first band key (in
 *      band order) that has one, else a new cluster named after the exact hash;
 *   2. the post id joins the cluster's members; a post id already there is a replay (after a
 *      crash): counts do not change, and the post still gets its alert;
 *   3. otherwise the cluster's post count increments, its author joins the distinct-author
 *      count, and first/last seen take the post time;
 *   4. the exact and band keys point at the cluster (an existing key keeps its cluster) and
 *      every key of the cluster expires window_s after its last update. */
#ifndef TW_DEDUP_H
#define TW_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "fingerprint.h"

typedef struct {
    const char *post_id;
    size_t post_id_len;
    const char *author; /* may be NULL */
    size_t author_len;
    int64_t ts; /* post time, epoch seconds */
    const fingerprint_t *fp;
} dedup_item_t;

typedef struct {
    uint64_t cluster;
    uint64_t count;   /* distinct post ids in the cluster */
    uint64_t authors; /* distinct authors (HyperLogLog estimate in Redis) */
    int64_t first_seen;
    int64_t last_seen;
    bool replay;    /* this post id was already a member */
    bool available; /* false when the store could not answer (Redis down) */
} dedup_result_t;

typedef struct dedup_store dedup_store_t;

typedef struct {
    const char *name;
    int (*check_batch)(dedup_store_t *store, const dedup_item_t *items, size_t n,
                       dedup_result_t *results);
    void (*free)(dedup_store_t *store);
} dedup_store_ops_t;

struct dedup_store {
    const dedup_store_ops_t *ops;
};

/* Looks up and records a batch. On failure every result has available = false and a negative
 * tw_err_t is returned; the caller decides whether to go on without duplicate information. */
static inline int dedup_batch_check(dedup_store_t *store, const dedup_item_t *items, size_t n,
                                    dedup_result_t *results)
{
    return store->ops->check_batch(store, items, n, results);
}

static inline void dedup_store_free(dedup_store_t *store)
{
    if (store)
        store->ops->free(store);
}

/* In-process store (scan, demo, and run without --redis). max_clusters bounds memory: when
 * reached, expired clusters are swept and, if still full, the oldest half is dropped. */
int dedup_memory_new(int64_t window_s, size_t max_clusters, dedup_store_t **out);

/* Redis store: one EVALSHA round trip per batch. url is redis://[user:password@]host:port/db.
 * Connects lazily; returns 0 even if Redis is down at creation (errors surface per batch). */
int dedup_redis_new(const char *url, int64_t window_s, int timeout_ms, dedup_store_t **out,
                    tw_diag_t *diag);

/* Cluster ids are printed as 16 lower-case hex digits. */
void dedup_cluster_hex(uint64_t cluster, char out[17]);

#endif
