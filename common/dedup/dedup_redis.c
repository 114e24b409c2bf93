/* Redis duplicate store. Semantics match dedup_memory.c (see dedup.h).
 *
 * redis://: the whole batch is one EVALSHA call, so a batch costs one round trip and is applied
 * atomically (a second worker sees all of it or none of it).
 *
 * redis+cluster://: Redis Cluster refuses a script that touches keys of several hash slots, so
 * a batch runs in phases, each one pipelined to every master at once (redis_cluster.c):
 *   1. GET of every distinct exact and band key of the batch (and, with verification, HGET of
 *      the signature of each cluster the batch could start); 1b. HGET of the signatures of the
 *      clusters those keys name, when verification needs them;
 *   2. the cluster choice of every post is made here, in batch order, exactly as the script
 *      makes it (earlier posts' new keys and signatures are applied to a local overlay); then,
 *      in one pipeline, SET NX EX / EXPIRE of every key and one EVALSHA per chosen cluster on
 *      its three keys, hash-tagged tw:c:{cluster}, which does steps 2, 3 and 5 atomically.
 * Race (docs/DEDUP.md): between phase 1 and 2 of one worker, another worker may create a key
 * the first saw absent; SET NX keeps the first writer's cluster, so the two near-duplicate posts
 * can end in two clusters. Counts stay exact per cluster and milestones are still claimed once
 * (they live in the per-cluster script). */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dedup/dedup.h"
#include "dedup/dedup_lua.h"
#include "dedup/redis_args.h"
#include "dedup/redis_cluster.h"
#include "dedup/redis_conn.h"
#include "dedup/redis_script.h"
#include "dedup/redis_url.h"
#include "util/array.h"
#include "util/buf.h"
#include "util/hashmap.h"
#include "util/log.h"

#define REDIS_KEY_PREFIX "tw:"

/* Cluster mode: post_keys holds, per post, its exact key and its index bands' keys. */
#define POST_KEYS_STRIDE (1 + FINGERPRINT_BANDS)

/* Cluster mode, per batch: one distinct exact or band key. */
typedef struct {
    uint64_t id;       /* identity of the key name (hash of band number and value) */
    size_t name_off;   /* in scratch */
    uint32_t name_len; /* "tw:x:<hex>" or "tw:b:<band>:<hex>" */
    uint16_t slot;
    bool present; /* phase 1: the key exists in Redis, naming cluster value */
    bool written; /* set by an earlier post of this batch (was absent): names value */
    uint64_t value;
} dedup_key_t;

/* Cluster mode, per batch: one cluster whose signature may be needed or that a post chose. */
typedef struct {
    uint64_t id;
    bool fetched;   /* its signature was asked for */
    bool has_sig;   /* after fetch or a post of the batch signed it */
    size_t sig_off; /* in sigbuf when has_sig: FINGERPRINT_SIG_BYTES bytes or sig_len */
    size_t sig_len;
    size_t nposts; /* posts of the batch that chose it, linked through post_next */
    size_t first_post, last_post;
} dedup_cluster_t;

typedef struct {
    dedup_store_t base;
    redis_url_t url;
    redis_conn_t conn; /* single server */
    int64_t window_s;
    int timeout_ms;
    redis_script_t batch_script;   /* single server: lua/batch.lua */
    redis_script_t cluster_script; /* Redis Cluster: lua/cluster.lua */
    redis_args_t args;             /* reused between batches */
    buf_t samples;                 /* sample post ids of the last batch's results */
    buf_t sigs;                    /* the batch's signatures, binary */
    /* cluster mode */
    redis_cluster_t *cluster;
    dedup_key_t *keys;
    size_t nkeys, keys_cap;
    dedup_cluster_t *clusters;
    size_t nclusters, clusters_cap;
    u64map_t keymap, clustermap; /* id -> index in keys / clusters, per batch */
    uint32_t *post_keys;         /* per post: 1 + FINGERPRINT_BANDS key indexes */
    uint32_t *post_cluster;
    uint32_t *post_next; /* next post of the same cluster, UINT32_MAX at the end */
    size_t posts_cap, post_cluster_cap, post_next_cap;
    redis_cluster_cmd_t *cmds;
    redisReply **replies;
    size_t *cmd_arg; /* per command: index of its first argv entry */
    size_t cmds_cap, replies_cap, cmd_arg_cap;
    buf_t sigbuf;     /* cluster signatures of this batch */
    buf_t names;      /* key names of this batch, NUL-separated */
    size_t *post_sig; /* per post: offset of its signature in sigs */
    size_t post_sig_cap;
    const redisReply **rows;
    size_t rows_cap;
} dedup_redis_t;

/* The store's per-batch arrays: sized to the largest batch seen, never shrunk. */
static void *grow(void *p, size_t *cap, size_t need, size_t size, int *rc)
{
    return tw_array_grow(p, cap, need, size, 64, rc);
}

static void put_be64(unsigned char *out, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (unsigned char)(v & 0xFF);
}

static uint64_t get_be64(const unsigned char *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | in[i];
    return v;
}

/* The id of key k of a post, k = 0 for its exact hash and b + 1 for band b: a hash of both,
 * so equal values of two bands differ. Single server: the band key names; cluster: the batch's
 * key identities. */
static uint64_t dedup_key_id(uint32_t k, uint64_t value)
{
    uint64_t pair[2] = {k, value};
    return fingerprint_hash64(pair, sizeof(pair), 0x6b6579ULL);
}

/* Width of the single-server store's time buckets: a quarter of the window, so an entry lives
 * at most 25 % longer than the window and a lookup reads at most five or six buckets. */
static int64_t dedup_redis_epoch_s(int64_t window_s)
{
    return window_s >= 2 ? window_s / 2 : 1;
}

static void mark_unavailable(dedup_result_t *results, size_t n)
{
    memset(results, 0, n * sizeof(*results));
}

/* rows[i]: post i's row, {count, authors, first, last, replay, claimed, samples} from index
 * base on (the single-server script puts the cluster id first). Sample ids are copied into
 * r->samples (the replies are freed before the caller reads them). */
static int parse_rows(dedup_redis_t *r, const redisReply **rows, size_t base, size_t n,
                      dedup_result_t *results)
{
    buf_reset(&r->samples);
    for (size_t i = 0; i < n; i++) {
        const redisReply *row = rows[i];
        if (!row || row->type != REDIS_REPLY_ARRAY || row->elements != base + 7 ||
            row->element[base + 6]->type != REDIS_REPLY_ARRAY)
            return TW_ERR_REDIS;
        for (size_t j = base; j < base + 6; j++)
            if (row->element[j]->type != REDIS_REPLY_INTEGER)
                return TW_ERR_REDIS;
        if (base && (row->element[0]->type != REDIS_REPLY_STRING || row->element[0]->len != 8))
            return TW_ERR_REDIS;
    }
    for (size_t pass = 0; pass < 2; pass++) {
        /* pass 0 copies, pass 1 takes pointers once the buffer stops growing */
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
            const redisReply *samples = rows[i]->element[base + 6];
            size_t ns = samples->elements < DEDUP_SAMPLE_IDS ? samples->elements : DEDUP_SAMPLE_IDS;
            for (size_t k = 0; k < ns; k++) {
                const redisReply *id = samples->element[k];
                if (id->type != REDIS_REPLY_STRING)
                    return TW_ERR_REDIS;
                if (pass == 0) {
                    buf_append(&r->samples, id->str, id->len);
                    continue;
                }
                results[i].samples[k] = r->samples.data + off;
                results[i].sample_lens[k] = id->len;
                off += id->len;
            }
            if (pass == 1)
                results[i].nsamples = ns;
        }
        if (r->samples.failed)
            return TW_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        redisReply **e = rows[i]->element;
        dedup_result_t *res = &results[i];
        if (base)
            res->cluster = get_be64((const unsigned char *)e[0]->str);
        res->count = (uint64_t)e[base]->integer;
        res->authors = (uint64_t)e[base + 1]->integer;
        res->first_seen = e[base + 2]->integer;
        res->last_seen = e[base + 3]->integer;
        res->replay = e[base + 4]->integer != 0;
        res->milestones = (uint32_t)e[base + 5]->integer;
        res->available = true;
    }
    return 0;
}

static int reserve_rows(dedup_redis_t *r, size_t n)
{
    int rc = 0;
    r->rows = grow(r->rows, &r->rows_cap, n, sizeof(*r->rows), &rc);
    return rc;
}

/* The batch's signatures as fingerprint_sig_to_le() writes them, one after the other; posts
 * without bands have none. */
static int append_sigs(buf_t *sigs, const dedup_item_t *items, size_t n)
{
    buf_reset(sigs);
    for (size_t i = 0; i < n; i++) {
        if (!items[i].fp->nbands)
            continue;
        unsigned char le[FINGERPRINT_SIG_BYTES];
        fingerprint_sig_to_le(items[i].fp, le);
        buf_append(sigs, le, sizeof(le));
    }
    return sigs->failed ? TW_ERR_NOMEM : 0;
}

/* The single-server script's argv (lua/batch.lua): EVALSHA sha 0 prefix window epoch n
 * min_authors verify nms ms.., then per post: post_id author ts sig nfields, the exact hash and
 * the band key ids (8 bytes each, big-endian). argv[0..1] are left for the script. */
static int single_batch_args(dedup_redis_t *r, const dedup_item_t *items, size_t n)
{
    const dedup_campaign_t *camp = &r->base.campaign;
    redis_args_t *a = &r->args;
    redis_args_reset(a);
    redis_args_ptr(a, "", 0); /* EVALSHA sha, filled in by the caller */
    redis_args_ptr(a, "", 0);
    redis_args_ptr(a, "0", 1);
    redis_args_ptr(a, REDIS_KEY_PREFIX, sizeof(REDIS_KEY_PREFIX) - 1);
    redis_args_fmt(a, "%" PRId64, r->window_s);
    redis_args_fmt(a, "%" PRId64, dedup_redis_epoch_s(r->window_s));
    redis_args_fmt(a, "%zu", n);
    redis_args_fmt(a, "%" PRIu64, camp->min_authors);
    redis_args_fmt(a, "%" PRIu32, r->base.verify_matches);
    redis_args_fmt(a, "%zu", camp->nmilestones);
    for (size_t m = 0; m < camp->nmilestones; m++)
        redis_args_fmt(a, "%" PRIu64, camp->milestones[m]);
    const char *sig = r->sigs.data;
    for (size_t i = 0; i < n; i++) {
        const fingerprint_t *fp = items[i].fp;
        redis_args_ptr(a, items[i].post_id, items[i].post_id_len);
        redis_args_ptr(a, items[i].author ? items[i].author : "",
                       items[i].author ? items[i].author_len : 0);
        redis_args_fmt(a, "%" PRId64, items[i].ts);
        size_t sig_len = fp->nbands ? FINGERPRINT_SIG_BYTES : 0;
        redis_args_ptr(a, sig_len ? sig : "", sig_len);
        sig += sig_len;
        redis_args_fmt(a, "%" PRIu32, dedup_index_bands(fp) + 1);
        unsigned char id[8];
        put_be64(id, fp->exact);
        redis_args_bytes(a, id, 8);
        for (uint32_t b = 0; b < dedup_index_bands(fp); b++) {
            put_be64(id, dedup_key_id(b + 1, fp->bands[b]));
            redis_args_bytes(a, id, 8);
        }
    }
    return redis_args_resolve(a) != 0 ? TW_ERR_NOMEM : 0;
}

/* Runs the script, sending its body once when the server lacks it; the reply or NULL. */
static redisReply *single_batch_run(dedup_redis_t *r)
{
    redis_args_t *a = &r->args;
    redis_script_evalsha(&r->batch_script, a->argv, a->argvlen);
    redisReply *reply = redis_conn_command(&r->conn, (int)a->n, a->argv, a->argvlen);
    if (redis_script_missing(reply)) {
        freeReplyObject(reply);
        redis_script_eval(&r->batch_script, a->argv, a->argvlen);
        reply = redis_conn_command(&r->conn, (int)a->n, a->argv, a->argvlen);
    }
    return reply;
}

static int dedup_redis_single_batch(dedup_redis_t *r, const dedup_item_t *items, size_t n,
                                    dedup_result_t *results)
{
    int rc = redis_conn_connect(&r->conn);
    if (rc != 0)
        return rc;
    if (append_sigs(&r->sigs, items, n) != 0)
        return TW_ERR_NOMEM;
    if ((rc = single_batch_args(r, items, n)) != 0)
        return rc;
    redisReply *reply = single_batch_run(r);
    if (!reply)
        return TW_ERR_REDIS;
    if (reply->type == REDIS_REPLY_ERROR) {
        log_ratelimited(LOG_LEVEL_WARN, "redis.script", 10, "redis dedup script failed: %s",
                        reply->str);
        freeReplyObject(reply);
        return TW_ERR_REDIS;
    }
    rc = TW_ERR_REDIS;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == n &&
        (rc = reserve_rows(r, n)) == 0) {
        for (size_t i = 0; i < n; i++)
            r->rows[i] = reply->element[i];
        rc = parse_rows(r, r->rows, 1, n, results);
    }
    freeReplyObject(reply);
    return rc;
}

/* ---- Redis Cluster ---------------------------------------------------------------------- */

/* Empties a per-batch map, sized for n entries at most (load <= 1/2, so it never grows). */
static int idmap_reset(u64map_t *m, size_t n)
{
    size_t cap = 64;
    while (cap < n * 2)
        cap *= 2;
    if (cap > m->cap) {
        u64map_fini(m);
        return u64map_init(m, cap);
    }
    memset(m->keys, 0, m->cap * sizeof(*m->keys));
    m->count = 0;
    return 0;
}

/* The batch's entry for cluster id, created unfetched and unsigned when new. The clusters
 * array is reserved for the worst case before the batch, so pointers stay valid. */
static dedup_cluster_t *cluster_entry(dedup_redis_t *r, uint64_t id)
{
    bool inserted;
    uint64_t *idx = u64map_put(&r->clustermap, id, r->nclusters, &inserted);
    if (!inserted) /* never NULL: reserved for the batch, it does not grow */
        return &r->clusters[*idx];
    dedup_cluster_t *c = &r->clusters[r->nclusters++];
    memset(c, 0, sizeof(*c));
    c->id = id;
    return c;
}

static void cmd_add(dedup_redis_t *r, size_t *ncmds, size_t argstart, size_t argend, uint16_t slot)
{
    r->cmds[*ncmds] = (redis_cluster_cmd_t){(int)(argend - argstart), NULL, NULL, slot};
    r->cmd_arg[*ncmds] = argstart; /* argv pointers are bound once argv is complete */
    (*ncmds)++;
}

static void cmds_bind(dedup_redis_t *r, size_t ncmds)
{
    for (size_t c = 0; c < ncmds; c++) {
        r->cmds[c].argv = r->args.argv + r->cmd_arg[c];
        r->cmds[c].argvlen = r->args.argvlen + r->cmd_arg[c];
    }
}

/* Queues HGET of a cluster's verification signature, once per cluster and batch. */
static void push_sig_fetch(dedup_redis_t *r, dedup_cluster_t *c, size_t *ncmds)
{
    if (c->fetched)
        return;
    c->fetched = true;
    size_t start = r->args.n;
    redis_args_ptr(&r->args, "HGET", 4);
    redis_args_fmt(&r->args, REDIS_KEY_PREFIX "c:{%016" PRIx64 "}", c->id);
    redis_args_ptr(&r->args, "sig", 3);
    cmd_add(r, ncmds, start, r->args.n, 0);
}

/* Sends one round: the argv is complete; commands from slot_from on take their slot from
 * their key_arg-th argument (earlier ones were given a slot when added); every node gets its
 * commands at once. */
static int cluster_round(dedup_redis_t *r, size_t slot_from, size_t ncmds, size_t key_arg)
{
    if (redis_args_resolve(&r->args) != 0)
        return TW_ERR_NOMEM;
    for (size_t c = slot_from; c < ncmds; c++) {
        size_t start = r->cmd_arg[c];
        r->cmds[c].slot =
            redis_cluster_slot(r->args.argv[start + key_arg], r->args.argvlen[start + key_arg]);
    }
    cmds_bind(r, ncmds);
    return redis_cluster_exec(r->cluster, r->cmds, ncmds, r->replies);
}

static void replies_free(dedup_redis_t *r, size_t ncmds)
{
    for (size_t c = 0; c < ncmds; c++) {
        freeReplyObject(r->replies[c]);
        r->replies[c] = NULL;
    }
}

/* Records an HGET sig reply for cluster c. */
static int take_sig(dedup_redis_t *r, dedup_cluster_t *c, const redisReply *reply)
{
    if (reply->type == REDIS_REPLY_NIL)
        return 0;
    if (reply->type != REDIS_REPLY_STRING)
        return TW_ERR_REDIS;
    c->has_sig = true;
    c->sig_off = r->sigbuf.len;
    c->sig_len = reply->len;
    buf_append(&r->sigbuf, reply->str, reply->len);
    return r->sigbuf.failed ? TW_ERR_NOMEM : 0;
}

/* Step 1's check of a band match against cluster c, as dedup_memory.c and lua/batch.lua make
 * it: a cluster without a signature (or with one of another size) cannot be checked. Only band
 * matches are checked, and a post with bands has a signature. */
static bool cluster_verified(const dedup_redis_t *r, const dedup_cluster_t *c,
                             const fingerprint_t *fp)
{
    if (!c->has_sig || c->sig_len != FINGERPRINT_SIG_BYTES)
        return true;
    const unsigned char *sig = (const unsigned char *)r->sigbuf.data + c->sig_off;
    return fingerprint_sig_matches_le(fp, sig) >= r->base.verify_matches;
}

/* Sizes the batch's scratch for the worst case (every key and cluster of the batch distinct),
 * so that pointers into keys and clusters stay valid while the batch runs, and lays out the
 * batch's signatures. */
static int cluster_batch_reserve(dedup_redis_t *r, const dedup_item_t *items, size_t n)
{
    int rc = 0;
    size_t maxkeys = 0;
    for (size_t i = 0; i < n; i++)
        maxkeys += 1 + dedup_index_bands(items[i].fp);
    size_t maxclusters = n + maxkeys;
    size_t maxcmds = maxkeys + maxclusters + 1;
    r->post_keys =
        grow(r->post_keys, &r->posts_cap, n * POST_KEYS_STRIDE, sizeof(*r->post_keys), &rc);
    r->post_cluster = grow(r->post_cluster, &r->post_cluster_cap, n, sizeof(*r->post_cluster), &rc);
    r->post_next = grow(r->post_next, &r->post_next_cap, n, sizeof(*r->post_next), &rc);
    r->post_sig = grow(r->post_sig, &r->post_sig_cap, n, sizeof(*r->post_sig), &rc);
    r->keys = grow(r->keys, &r->keys_cap, maxkeys, sizeof(*r->keys), &rc);
    r->clusters = grow(r->clusters, &r->clusters_cap, maxclusters, sizeof(*r->clusters), &rc);
    r->cmds = grow(r->cmds, &r->cmds_cap, maxcmds, sizeof(*r->cmds), &rc);
    r->replies = grow(r->replies, &r->replies_cap, maxcmds, sizeof(*r->replies), &rc);
    r->cmd_arg = grow(r->cmd_arg, &r->cmd_arg_cap, maxcmds, sizeof(*r->cmd_arg), &rc);
    if (rc != 0 || reserve_rows(r, n) != 0 || idmap_reset(&r->keymap, maxkeys) != 0 ||
        idmap_reset(&r->clustermap, maxclusters) != 0)
        return TW_ERR_NOMEM;
    r->nkeys = r->nclusters = 0;
    buf_reset(&r->sigbuf);
    buf_reset(&r->names);
    if (append_sigs(&r->sigs, items, n) != 0)
        return TW_ERR_NOMEM;
    for (size_t i = 0, off = 0; i < n; i++) {
        r->post_sig[i] = off;
        off += items[i].fp->nbands ? FINGERPRINT_SIG_BYTES : 0;
    }
    return 0;
}

/* The index of key k of a post (0: its exact hash, b + 1: band b) among the batch's distinct
 * keys, added with its name when new. A collision of the ids of two different keys of one
 * batch (p ~ keys^2 / 2^64) would merge their lookups. */
static uint32_t key_entry(dedup_redis_t *r, uint32_t k, uint64_t value)
{
    uint64_t id = dedup_key_id(k, value);
    bool inserted;
    uint64_t *idx = u64map_put(&r->keymap, id, r->nkeys, &inserted);
    if (inserted) {
        dedup_key_t *key = &r->keys[r->nkeys++];
        memset(key, 0, sizeof(*key));
        key->id = id;
        key->name_off = r->names.len;
        if (k)
            buf_printf(&r->names, REDIS_KEY_PREFIX "b:%" PRIu32 ":%016" PRIx64 "%c", k - 1, value,
                       0);
        else
            buf_printf(&r->names, REDIS_KEY_PREFIX "x:%016" PRIx64 "%c", value, 0);
        key->name_len = (uint32_t)(r->names.len - key->name_off - 1);
    }
    return (uint32_t)*idx;
}

/* The batch's distinct keys with their names and slots, and each post's keys among them. */
static int collect_keys(dedup_redis_t *r, const dedup_item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const fingerprint_t *fp = items[i].fp;
        for (uint32_t k = 0; k <= dedup_index_bands(fp); k++)
            r->post_keys[i * POST_KEYS_STRIDE + k] =
                key_entry(r, k, k ? fp->bands[k - 1] : fp->exact);
    }
    if (r->names.failed)
        return TW_ERR_NOMEM;
    for (size_t j = 0; j < r->nkeys; j++)
        r->keys[j].slot =
            redis_cluster_slot(r->names.data + r->keys[j].name_off, r->keys[j].name_len);
    return 0;
}

/* Phase 1: GET every key; with verification, HGET the signature of every cluster the batch
 * could start (its posts' exact hashes). */
static int fetch_keys(dedup_redis_t *r, const dedup_item_t *items, size_t n, bool verify)
{
    redis_args_reset(&r->args);
    size_t ncmds = 0;
    for (size_t j = 0; j < r->nkeys; j++) {
        size_t start = r->args.n;
        redis_args_ptr(&r->args, "GET", 3);
        redis_args_ptr(&r->args, r->names.data + r->keys[j].name_off, r->keys[j].name_len);
        cmd_add(r, &ncmds, start, r->args.n, r->keys[j].slot);
    }
    size_t nkeycmds = ncmds;
    for (size_t i = 0; verify && i < n; i++)
        push_sig_fetch(r, cluster_entry(r, items[i].fp->exact), &ncmds);
    int rc = cluster_round(r, nkeycmds, ncmds, 1);
    if (rc != 0)
        return rc;
    for (size_t j = 0; rc == 0 && j < nkeycmds; j++) {
        const redisReply *reply = r->replies[j];
        if (reply->type == REDIS_REPLY_STRING) {
            r->keys[j].present = true;
            r->keys[j].value = strtoull(reply->str, NULL, 16);
        } else if (reply->type != REDIS_REPLY_NIL) {
            rc = TW_ERR_REDIS;
        }
    }
    /* the batch had no cluster before this phase: fetch k is cluster k */
    for (size_t c = nkeycmds, cl = 0; rc == 0 && c < ncmds; c++, cl++)
        rc = take_sig(r, &r->clusters[cl], r->replies[c]);
    if (rc == TW_ERR_REDIS)
        log_ratelimited(LOG_LEVEL_WARN, "redis.script", 10, "redis cluster: unexpected reply: %s",
                        r->replies[0]->type == REDIS_REPLY_ERROR ? r->replies[0]->str : "?");
    replies_free(r, ncmds);
    return rc;
}

/* Phase 1b, with verification: HGET the signatures of the clusters the existing keys name. */
static int fetch_named_sigs(dedup_redis_t *r)
{
    size_t ncmds = 0;
    size_t fetch_from = r->nclusters;
    redis_args_reset(&r->args);
    for (size_t j = 0; j < r->nkeys; j++) {
        if (r->keys[j].present)
            push_sig_fetch(r, cluster_entry(r, r->keys[j].value), &ncmds);
    }
    int rc = 0;
    if (ncmds && (rc = cluster_round(r, 0, ncmds, 1)) != 0)
        return rc;
    for (size_t c = 0, cl = fetch_from; rc == 0 && c < ncmds; c++, cl++)
        rc = take_sig(r, &r->clusters[cl], r->replies[c]);
    replies_free(r, ncmds);
    return rc;
}

/* The cluster a post joins, decided as the single-server script decides it: the one its exact
 * key names, else the one of its first band key whose signature verifies, else a new one named
 * by its exact hash. pk: its key indexes. */
static uint64_t choose_cluster(dedup_redis_t *r, const fingerprint_t *fp, const uint32_t *pk,
                               bool verify)
{
    const dedup_key_t *x = &r->keys[pk[0]];
    if (x->present || x->written)
        return x->value;
    for (uint32_t b = 1; b <= dedup_index_bands(fp); b++) {
        const dedup_key_t *key = &r->keys[pk[b]];
        if (!key->present && !key->written)
            continue;
        if (!verify || cluster_verified(r, cluster_entry(r, key->value), fp))
            return key->value;
    }
    return fp->exact;
}

/* Applies post i's choice of cluster c to the batch's overlay, as phase 2 will apply it in
 * Redis, so that later posts of the batch see it; appends the post to c's posts. */
static int join_cluster(dedup_redis_t *r, size_t i, const fingerprint_t *fp, dedup_cluster_t *c)
{
    if (fp->nbands && !c->has_sig) {
        c->has_sig = true; /* HSETNX: the first signed post's signature */
        c->sig_off = r->sigbuf.len;
        c->sig_len = FINGERPRINT_SIG_BYTES;
        buf_append(&r->sigbuf, r->sigs.data + r->post_sig[i], c->sig_len);
        if (r->sigbuf.failed)
            return TW_ERR_NOMEM;
    }
    const uint32_t *pk = &r->post_keys[i * POST_KEYS_STRIDE];
    for (uint32_t b = 0; b <= dedup_index_bands(fp); b++) {
        dedup_key_t *key = &r->keys[pk[b]];
        if (!key->present && !key->written) {
            key->written = true; /* SET NX: the first writer's cluster stays */
            key->value = c->id;
        }
    }
    r->post_cluster[i] = (uint32_t)(c - r->clusters);
    r->post_next[i] = UINT32_MAX;
    if (c->nposts++)
        r->post_next[c->last_post] = (uint32_t)i;
    else
        c->first_post = i;
    c->last_post = i;
    return 0;
}

/* The cluster of every post, in batch order. */
static int choose_clusters(dedup_redis_t *r, const dedup_item_t *items, size_t n, bool verify)
{
    for (size_t i = 0; i < n; i++) {
        const fingerprint_t *fp = items[i].fp;
        uint64_t id = choose_cluster(r, fp, &r->post_keys[i * POST_KEYS_STRIDE], verify);
        int rc = join_cluster(r, i, fp, cluster_entry(r, id));
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Queues every key's write: SET NX EX when it was absent, else EXPIRE. */
static void queue_key_writes(dedup_redis_t *r, size_t *ncmds)
{
    for (size_t j = 0; j < r->nkeys; j++) {
        const dedup_key_t *key = &r->keys[j];
        const char *name = r->names.data + key->name_off;
        size_t start = r->args.n;
        if (key->present) {
            redis_args_ptr(&r->args, "EXPIRE", 6);
            redis_args_ptr(&r->args, name, key->name_len);
            redis_args_fmt(&r->args, "%" PRId64, r->window_s);
        } else {
            redis_args_ptr(&r->args, "SET", 3);
            redis_args_ptr(&r->args, name, key->name_len);
            redis_args_fmt(&r->args, "%016" PRIx64, key->value);
            redis_args_ptr(&r->args, "NX", 2);
            redis_args_ptr(&r->args, "EX", 2);
            redis_args_fmt(&r->args, "%" PRId64, r->window_s);
        }
        cmd_add(r, ncmds, start, r->args.n, key->slot);
    }
}

/* Queues one script (lua/cluster.lua) per chosen cluster with its posts in batch order; its
 * slot comes from its first key, argument 3. */
static void queue_cluster_scripts(dedup_redis_t *r, const dedup_item_t *items, size_t *ncmds)
{
    const dedup_campaign_t *camp = &r->base.campaign;
    for (size_t cl = 0; cl < r->nclusters; cl++) {
        const dedup_cluster_t *c = &r->clusters[cl];
        if (!c->nposts)
            continue;
        size_t start = r->args.n;
        redis_args_ptr(&r->args, "EVALSHA", 7);
        redis_args_ptr(&r->args, r->cluster_script.sha, 40);
        redis_args_ptr(&r->args, "3", 1);
        redis_args_fmt(&r->args, REDIS_KEY_PREFIX "c:{%016" PRIx64 "}", c->id);
        redis_args_fmt(&r->args, REDIS_KEY_PREFIX "c:{%016" PRIx64 "}:m", c->id);
        redis_args_fmt(&r->args, REDIS_KEY_PREFIX "c:{%016" PRIx64 "}:a", c->id);
        redis_args_fmt(&r->args, "%" PRId64, r->window_s);
        redis_args_fmt(&r->args, "%zu", c->nposts);
        redis_args_fmt(&r->args, "%" PRIu64, camp->min_authors);
        redis_args_fmt(&r->args, "%zu", camp->nmilestones);
        for (size_t m = 0; m < camp->nmilestones; m++)
            redis_args_fmt(&r->args, "%" PRIu64, camp->milestones[m]);
        for (size_t i = c->first_post; i != UINT32_MAX; i = r->post_next[i]) {
            const dedup_item_t *it = &items[i];
            size_t sig_len = it->fp->nbands ? FINGERPRINT_SIG_BYTES : 0;
            redis_args_ptr(&r->args, it->post_id, it->post_id_len);
            redis_args_ptr(&r->args, it->author ? it->author : "", it->author ? it->author_len : 0);
            redis_args_fmt(&r->args, "%" PRId64, it->ts);
            redis_args_ptr(&r->args, sig_len ? r->sigs.data + r->post_sig[i] : "", sig_len);
        }
        cmd_add(r, ncmds, start, r->args.n, 0);
    }
}

/* A node that never saw the script (new, restarted, flushed) answered NOSCRIPT to some of the
 * scripts [from, ncmds): sends those once more with the body, replacing their replies. */
static int retry_missing_scripts(dedup_redis_t *r, size_t from, size_t ncmds)
{
    size_t nretry = 0;
    for (size_t c = from; c < ncmds; c++)
        nretry += redis_script_missing(r->replies[c]);
    if (!nretry)
        return 0;
    redis_cluster_cmd_t *retry = malloc(nretry * sizeof(*retry));
    redisReply **again = calloc(nretry, sizeof(*again));
    size_t *which = malloc(nretry * sizeof(*which));
    int rc = retry && again && which ? 0 : TW_ERR_NOMEM;
    size_t m = 0;
    for (size_t c = from; rc == 0 && c < ncmds; c++) {
        if (!redis_script_missing(r->replies[c]))
            continue;
        size_t start = r->cmd_arg[c];
        redis_script_eval(&r->cluster_script, r->args.argv + start, r->args.argvlen + start);
        which[m] = c;
        retry[m++] = r->cmds[c];
    }
    if (rc == 0)
        rc = redis_cluster_exec(r->cluster, retry, m, again);
    for (size_t j = 0; rc == 0 && j < m; j++) {
        freeReplyObject(r->replies[which[j]]);
        r->replies[which[j]] = again[j];
    }
    free(retry);
    free(again);
    free(which);
    return rc;
}

/* Points rows[i] at post i's row in its cluster's script reply (scripts [from, ncmds), in the
 * order of the chosen clusters), after checking that no command of phase 2 failed. */
static int take_rows(dedup_redis_t *r, size_t from, size_t ncmds)
{
    for (size_t c = 0; c < ncmds; c++) {
        const redisReply *reply = r->replies[c];
        if (reply->type == REDIS_REPLY_ERROR) {
            log_ratelimited(LOG_LEVEL_WARN, "redis.script", 10, "redis cluster dedup failed: %s",
                            reply->str);
            return TW_ERR_REDIS;
        }
    }
    for (size_t c = from, cl = 0; c < ncmds; c++, cl++) {
        while (!r->clusters[cl].nposts)
            cl++;
        const dedup_cluster_t *cluster = &r->clusters[cl];
        const redisReply *reply = r->replies[c];
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != cluster->nposts)
            return TW_ERR_REDIS;
        size_t j = 0;
        for (size_t i = cluster->first_post; i != UINT32_MAX; i = r->post_next[i])
            r->rows[i] = reply->element[j++];
    }
    return 0;
}

/* Phase 2, one pipeline: every key written once, then one script per chosen cluster; the
 * scripts' rows are the batch's results. */
static int write_batch(dedup_redis_t *r, const dedup_item_t *items, size_t n,
                       dedup_result_t *results)
{
    redis_args_reset(&r->args);
    size_t ncmds = 0;
    queue_key_writes(r, &ncmds);
    size_t nkeycmds = ncmds;
    queue_cluster_scripts(r, items, &ncmds);
    int rc = cluster_round(r, nkeycmds, ncmds, 3);
    if (rc != 0)
        return rc;
    rc = retry_missing_scripts(r, nkeycmds, ncmds);
    if (rc == 0)
        rc = take_rows(r, nkeycmds, ncmds);
    if (rc == 0)
        rc = parse_rows(r, r->rows, 0, n, results);
    for (size_t i = 0; rc == 0 && i < n; i++)
        results[i].cluster = r->clusters[r->post_cluster[i]].id;
    replies_free(r, ncmds);
    return rc;
}

static int dedup_redis_cluster_batch(dedup_redis_t *r, const dedup_item_t *items, size_t n,
                                     dedup_result_t *results)
{
    const bool verify = r->base.verify_matches > 0;
    int rc = cluster_batch_reserve(r, items, n);
    if (rc == 0)
        rc = collect_keys(r, items, n);
    if (rc == 0)
        rc = fetch_keys(r, items, n, verify);
    if (rc == 0 && verify)
        rc = fetch_named_sigs(r);
    if (rc == 0)
        rc = choose_clusters(r, items, n, verify);
    if (rc == 0)
        rc = write_batch(r, items, n, results);
    return rc;
}

static int dedup_redis_check_batch(dedup_store_t *store, const dedup_item_t *items, size_t n,
                                   dedup_result_t *results)
{
    dedup_redis_t *r = (dedup_redis_t *)store;
    mark_unavailable(results, n);
    if (n == 0)
        return 0;
    int rc = r->cluster ? dedup_redis_cluster_batch(r, items, n, results)
                        : dedup_redis_single_batch(r, items, n, results);
    if (rc != 0)
        mark_unavailable(results, n);
    return rc;
}

static void dedup_redis_free(dedup_store_t *store)
{
    dedup_redis_t *r = (dedup_redis_t *)store;
    redis_conn_close(&r->conn);
    redis_cluster_free(r->cluster);
    redis_url_fini(&r->url);
    redis_args_fini(&r->args);
    free(r->keys);
    free(r->clusters);
    u64map_fini(&r->keymap);
    u64map_fini(&r->clustermap);
    free(r->post_keys);
    free(r->post_cluster);
    free(r->post_next);
    free(r->post_sig);
    free(r->cmds);
    free(r->replies);
    free(r->cmd_arg);
    free(r->rows);
    buf_fini(&r->samples);
    buf_fini(&r->sigs);
    buf_fini(&r->sigbuf);
    buf_fini(&r->names);
    free(r);
}

/* PING over the batch connection (reconnecting within the usual backoff); in cluster mode to
 * the master of slot 0, enough to see the cluster reachable. */
static int dedup_redis_ping(dedup_store_t *store)
{
    dedup_redis_t *r = (dedup_redis_t *)store;
    static const char *const ping_argv[1] = {"PING"};
    static const size_t ping_len[1] = {4};
    redisReply *reply = NULL;
    if (r->cluster) {
        redis_cluster_cmd_t cmd = {
            .argc = 1, .argv = (const char **)ping_argv, .argvlen = ping_len, .slot = 0};
        if (redis_cluster_exec(r->cluster, &cmd, 1, &reply) != 0)
            reply = NULL;
    } else if (redis_conn_connect(&r->conn) == 0) {
        reply = redis_conn_command(&r->conn, 1, (const char **)ping_argv, ping_len);
    }
    int ok = reply && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0;
    freeReplyObject(reply);
    return ok ? 0 : TW_ERR_REDIS;
}

static const dedup_store_ops_t dedup_redis_ops = {
    .name = "redis",
    .kind = DEDUP_STORE_REDIS,
    .check_batch = dedup_redis_check_batch,
    .free = dedup_redis_free,
    .ping = dedup_redis_ping,
};

static const dedup_store_ops_t dedup_redis_cluster_ops = {
    .name = "redis-cluster",
    .kind = DEDUP_STORE_REDIS_CLUSTER,
    .check_batch = dedup_redis_check_batch,
    .free = dedup_redis_free,
    .ping = dedup_redis_ping,
};

int dedup_redis_new(const char *url, int64_t window_s, int timeout_ms, dedup_store_t **out,
                    tw_diag_t *diag)
{
    dedup_redis_t *r = calloc(1, sizeof(*r));
    if (!r)
        return TW_ERR_NOMEM;
    r->base.ops = &dedup_redis_ops;
    r->window_s = window_s;
    r->timeout_ms = timeout_ms;
    redis_args_init(&r->args);
    buf_init(&r->samples);
    buf_init(&r->sigs);
    buf_init(&r->sigbuf);
    buf_init(&r->names);
    redis_script_init(&r->batch_script, dedup_lua_batch, dedup_lua_batch_len);
    redis_script_init(&r->cluster_script, dedup_lua_cluster, dedup_lua_cluster_len);
    int rc = redis_url_parse(url, &r->url, diag);
    if (rc == 0 && r->url.cluster)
        rc = redis_cluster_new(r->url.seeds, r->url.user, r->url.password, timeout_ms, &r->cluster,
                               diag);
    if (rc != 0) {
        dedup_redis_free(&r->base);
        return rc;
    }
    if (r->cluster) {
        r->base.ops = &dedup_redis_cluster_ops;
        *out = &r->base;
        return 0;
    }
    r->conn = (redis_conn_t){.url = &r->url, .timeout_ms = timeout_ms};
    if (redis_conn_connect(&r->conn) != 0)
        log_warn("redis %s:%d not reachable yet; duplicate detection is unavailable until it is",
                 r->url.host, r->url.port);
    *out = &r->base;
    return 0;
}

void dedup_redis_redirections(const dedup_store_t *store, uint64_t *moved, uint64_t *ask)
{
    *moved = *ask = 0;
    if (store && store->ops == &dedup_redis_cluster_ops)
        redis_cluster_stats(((const dedup_redis_t *)store)->cluster, moved, ask);
}
