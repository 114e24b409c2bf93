/* Redis duplicate store. Semantics match dedup_memory.c (see dedup.h).
 *
 * redis://: the whole batch is one EVALSHA call, so a batch costs one round trip and is applied
 * atomically (a second worker sees all of it or none of it).
 *
 * redis+cluster://: Redis Cluster refuses a script that touches keys of several hash slots, so
 * a batch runs in phases, each one pipelined to every master at once (redis_cluster.c), on the
 * single server's layout with the index sharded (tw:i:<epoch>:{<shard>}, DEDUP_CLUSTER_INDEX_SHARDS
 * hashes per epoch, spread over the masters):
 *   1. HMGET of every field of the batch, one per live epoch and shard; 1b. the own field of
 *      every cluster those fields name (its singleton record or marker) when it is not one of
 *      the batch's, and with verification HGET tw:c:{cluster} sig of the clusters with a hash;
 *   2. the decision of every post, in batch order, exactly as batch.lua makes it, on a local
 *      overlay of the fields (so post k sees posts 1..k-1): singletons and their replays are
 *      decided here, their record going into their exact field;
 *   3. one pipeline: HSET + EXPIREAT per shard of the current epoch, and one EVALSHA per
 *      cluster with a hash that posts joined (lua/cluster.lua on its three keys, hash-tagged
 *      tw:c:{cluster}; a singleton joined by its second post is created there, its record's
 *      post first), which does steps 2, 3 and 5 atomically per cluster.
 * The epoch comes from the worker's clock. Races between the phases: docs/DEDUP.md. */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dedup/dedup.h"
#include "dedup/dedup_lua.h"
#include "dedup/redis_args.h"
#include "dedup/redis_cluster.h"
#include "dedup/redis_record.h"
#include "dedup/redis_conn.h"
#include "dedup/redis_script.h"
#include "dedup/redis_url.h"
#include "util/array.h"
#include "util/buf.h"
#include "util/hashmap.h"
#include "util/log.h"

#define REDIS_KEY_PREFIX "tw:"

/* Cluster mode: post_keys holds, per post, the indexes of its exact field and its index bands'
 * fields among the batch's fields. */
#define POST_KEYS_STRIDE (1 + FINGERPRINT_BANDS)

/* Cluster mode: live epochs a lookup reads at most: the current one, the two older ones still
 * alive (an epoch is window / 2; three with an odd window, whose epochs are a little shorter)
 * and the next one near its start (clock skew, below). */
#define CLUSTER_MAX_EPOCHS 5

/* Cluster mode takes the epoch from the worker's clock (no TIME round trip): within this many
 * seconds of the next epoch's start the next epoch is read too, so a worker whose clock is
 * behind by up to this much still sees what a worker ahead wrote there (docs/DEDUP.md). */
#define CLUSTER_CLOCK_SKEW_S 5

/* Cluster mode, per batch: one index field (a post's exact hash or band key id, or a cluster's
 * own field looked up for its record) and its value as the batch sees it. */
typedef struct {
    uint64_t id;
    uint32_t next;    /* next field of the same shard while a round is built */
    bool present;     /* has a value: from Redis, or put by an earlier post of the batch */
    bool fresh;       /* in the current epoch with its final value: not written again */
    bool dirty;       /* put by the batch: HSET into the current epoch in phase 3 */
    uint32_t val_len; /* 8 (a cluster id) or 8 + a singleton record */
    size_t val_off;   /* in vals */
} dedup_field_t;

/* A signature as the batch knows it: none, or len bytes at off in sigbuf. */
typedef struct {
    bool set;
    uint32_t len;
    size_t off;
} dedup_sig_t;

/* Cluster mode, per batch: one cluster a field names or a post chose. */
typedef struct {
    uint64_t id;
    bool asked;        /* HMGET tw:c:{id} sig s1 was queued (phase 1b) */
    bool promoted;     /* a post of the batch made its singleton a cluster with a hash */
    dedup_sig_t hash;  /* its hash's signature as the script will find it */
    dedup_sig_t first; /* its hash's first member (s1), in sigbuf */
    bool cached;       /* cache: what verification uses (batch.lua's sigcache) */
    dedup_sig_t cache; /* valid when cached */
    bool promote;      /* its singleton record's post goes first through its script */
    uint32_t rec_len;  /* that record, in vals */
    size_t rec_off;
    size_t nposts;                /* posts of the batch that go through its script */
    size_t first_post, last_post; /* linked through post_next */
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
    int64_t epochs[CLUSTER_MAX_EPOCHS]; /* live epochs of the batch, newest first */
    size_t nepochs, cur_epoch;          /* epochs[cur_epoch]: the one written */
    dedup_field_t *fields;
    size_t nfields, fields_cap;
    dedup_cluster_t *clusters;
    size_t nclusters, clusters_cap;
    u64map_t fieldmap, clustermap; /* id -> index in fields / clusters, per batch */
    uint32_t shard_head[DEDUP_CLUSTER_INDEX_SHARDS];
    uint32_t *post_keys; /* per post: 1 + FINGERPRINT_BANDS field indexes */
    uint32_t *post_cluster;
    uint32_t *post_next; /* next post of the same cluster's script, UINT32_MAX at the end */
    size_t posts_cap, post_cluster_cap, post_next_cap;
    redis_cluster_cmd_t *cmds;
    redisReply **replies;
    size_t *cmd_arg;      /* per command: index of its first argv entry */
    uint8_t *cmd_key_arg; /* per command: which argument is its key */
    size_t cmds_cap, replies_cap, cmd_arg_cap, cmd_key_arg_cap;
    buf_t sigbuf;     /* signatures of this batch's clusters */
    buf_t vals;       /* field values of this batch, appended, never moved within */
    buf_t record;     /* one singleton record being built */
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

/* Width of the index's time buckets (epochs): half the window, so an entry lives at most 50 %
 * longer than the window and a lookup reads three epochs (four with an odd window). */
static int64_t dedup_redis_epoch_s(int64_t window_s)
{
    return window_s >= 2 ? window_s / 2 : 1;
}

static void mark_unavailable(dedup_result_t *results, size_t n)
{
    memset(results, 0, n * sizeof(*results));
}

/* rows[i]: post i's row, {count, authors, first, last, replay, claimed, samples} from index
 * base on (the single-server script puts the cluster id first); NULL for a post whose result
 * the caller fills itself (cluster mode: singletons, decided without a script). Sample ids are
 * copied into r->samples (the replies are freed before the caller reads them). */
static int parse_rows(dedup_redis_t *r, const redisReply **rows, size_t base, size_t n,
                      dedup_result_t *results)
{
    buf_reset(&r->samples);
    for (size_t i = 0; i < n; i++) {
        const redisReply *row = rows[i];
        if (!row)
            continue;
        if (row->type != REDIS_REPLY_ARRAY || row->elements != base + 7 ||
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
            if (!rows[i])
                continue;
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
        if (!rows[i])
            continue;
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

/* The batch's signatures as fingerprint_sig_store() writes them, one after the other; posts
 * without bands have none. */
static int append_sigs(buf_t *sigs, const dedup_item_t *items, size_t n)
{
    buf_reset(sigs);
    for (size_t i = 0; i < n; i++) {
        if (!items[i].fp->nbands)
            continue;
        unsigned char stored[FINGERPRINT_SIG_BYTES];
        fingerprint_sig_store(items[i].fp, stored);
        buf_append(sigs, stored, sizeof(stored));
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
            put_be64(id, dedup_key_id(b + 1, dedup_band_value(fp, b)));
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

/* ---- the batch's fields and clusters ---------------------------------------------------- */

static const char *field_val(const dedup_redis_t *r, const dedup_field_t *f)
{
    return r->vals.data + f->val_off;
}

/* The cluster a present field names: the first 8 bytes of its value. */
static uint64_t field_cluster(const dedup_redis_t *r, const dedup_field_t *f)
{
    return get_be64((const unsigned char *)field_val(r, f));
}

/* The batch's entry for field id, created absent when new. The fields array is reserved for
 * the worst case before the batch, so pointers stay valid. */
static uint32_t field_entry(dedup_redis_t *r, uint64_t id)
{
    bool inserted;
    uint64_t *idx = u64map_put(&r->fieldmap, id, r->nfields, &inserted);
    if (inserted) {
        dedup_field_t *f = &r->fields[r->nfields++];
        memset(f, 0, sizeof(*f));
        f->id = id;
    }
    return (uint32_t)*idx;
}

static dedup_field_t *field_find(dedup_redis_t *r, uint64_t id)
{
    const uint64_t *idx = u64map_get(&r->fieldmap, id);
    return idx ? &r->fields[*idx] : NULL;
}

/* Sets a field's value as the batch's HSET of the current epoch will: batch.lua's put(). */
static int field_put(dedup_redis_t *r, dedup_field_t *f, const void *val, size_t len)
{
    f->val_off = r->vals.len;
    f->val_len = (uint32_t)len;
    buf_append(&r->vals, val, len);
    f->present = f->fresh = f->dirty = true;
    return r->vals.failed ? TW_ERR_NOMEM : 0;
}

/* The batch's entry for cluster id, created when new. */
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

/* batch.lua's record(c): cluster c's own field when it holds c's singleton record or its
 * 8-byte marker (a cluster with a hash); NULL when c has no live cluster (no field, or the
 * field is the exact field of a post that joined another cluster). */
static const dedup_field_t *cluster_record(dedup_redis_t *r, const dedup_cluster_t *c)
{
    const dedup_field_t *f = field_find(r, c->id);
    if (!f || !f->present || f->val_len < 8 || field_cluster(r, f) != c->id)
        return NULL;
    return f;
}

typedef enum { CLUSTER_NONE, CLUSTER_SINGLE, CLUSTER_HASH } cluster_state_t;

/* What cluster c is as the batch sees it: no live cluster; a singleton (its record decoded
 * into *rec); or a cluster with a hash: its field holds the marker, or still the record of a
 * singleton whose hash has the record's post as first member (a promotion keeps the record
 * until a later batch finds it there: docs/DEDUP.md). */
static cluster_state_t cluster_state(dedup_redis_t *r, const dedup_cluster_t *c,
                                     dedup_record_t *rec)
{
    const dedup_field_t *f = cluster_record(r, c);
    if (!f)
        return CLUSTER_NONE;
    if (f->val_len <= 8 || c->promoted || !dedup_record_decode(field_val(r, f), f->val_len, rec))
        return CLUSTER_HASH;
    bool in_hash = c->first.set && c->first.len == rec->pid_len &&
                   memcmp(r->sigbuf.data + c->first.off, rec->pid, rec->pid_len) == 0;
    return in_hash ? CLUSTER_HASH : CLUSTER_SINGLE;
}

static int sig_keep(dedup_redis_t *r, dedup_sig_t *sig, const void *bytes, size_t len)
{
    if (!len) {
        *sig = (dedup_sig_t){0};
        return 0;
    }
    *sig = (dedup_sig_t){true, (uint32_t)len, r->sigbuf.len};
    buf_append(&r->sigbuf, bytes, len);
    return r->sigbuf.failed ? TW_ERR_NOMEM : 0;
}

/* batch.lua's signature(c), cached for the batch: a singleton's from its record, a cluster
 * with a hash's from its hash (phase 1b, plus the batch's updates), none without a cluster. */
static int cluster_signature(dedup_redis_t *r, dedup_cluster_t *c)
{
    if (c->cached)
        return 0;
    c->cached = true;
    dedup_record_t rec;
    switch (cluster_state(r, c, &rec)) {
    case CLUSTER_SINGLE:
        return sig_keep(r, &c->cache, rec.sig, rec.sig_len);
    case CLUSTER_HASH:
        c->cache = c->hash;
        return 0;
    default:
        c->cache = (dedup_sig_t){0};
        return 0;
    }
}

/* Step 1's check of a band match against cluster c, as dedup_memory.c and lua/batch.lua make
 * it: a cluster without a signature (or with one of a size it cannot read) cannot be checked. */
static bool cluster_verified(dedup_redis_t *r, dedup_cluster_t *c, const fingerprint_t *fp)
{
    if (cluster_signature(r, c) != 0 || !c->cache.set)
        return true;
    const unsigned char *sig = (const unsigned char *)r->sigbuf.data + c->cache.off;
    uint32_t matches = fingerprint_sig_matches_stored(fp, sig, c->cache.len);
    return matches == FINGERPRINT_SIG_UNCHECKABLE || matches >= r->base.verify_matches;
}

/* What update() in cluster_update.lua does to the signature: the hash keeps its first one,
 * and verification uses the hash's. */
static int cluster_update_sig(dedup_redis_t *r, dedup_cluster_t *c, const void *sig, size_t len)
{
    if (!c->hash.set && len) {
        int rc = sig_keep(r, &c->hash, sig, len);
        if (rc != 0)
            return rc;
    }
    if (c->hash.set) {
        c->cached = true;
        c->cache = c->hash;
    }
    return 0;
}

/* ---- rounds ----------------------------------------------------------------------------- */

static void cmd_add(dedup_redis_t *r, size_t *ncmds, size_t argstart, size_t key_arg)
{
    r->cmds[*ncmds] = (redis_cluster_cmd_t){(int)(r->args.n - argstart), NULL, NULL, 0};
    r->cmd_arg[*ncmds] = argstart; /* argv pointers are bound once argv is complete */
    r->cmd_key_arg[*ncmds] = (uint8_t)key_arg;
    (*ncmds)++;
}

/* Sends one round: the argv is complete; each command goes to its key's slot; every node gets
 * its commands at once. */
static int cluster_round(dedup_redis_t *r, size_t ncmds)
{
    if (redis_args_resolve(&r->args) != 0)
        return TW_ERR_NOMEM;
    for (size_t c = 0; c < ncmds; c++) {
        size_t key = r->cmd_arg[c] + r->cmd_key_arg[c];
        r->cmds[c].argv = r->args.argv + r->cmd_arg[c];
        r->cmds[c].argvlen = r->args.argvlen + r->cmd_arg[c];
        r->cmds[c].slot = redis_cluster_slot(r->args.argv[key], r->args.argvlen[key]);
    }
    return redis_cluster_exec(r->cluster, r->cmds, ncmds, r->replies);
}

static void replies_free(dedup_redis_t *r, size_t ncmds)
{
    for (size_t c = 0; c < ncmds; c++) {
        freeReplyObject(r->replies[c]);
        r->replies[c] = NULL;
    }
}

static void index_key(dedup_redis_t *r, int64_t epoch, unsigned shard)
{
    redis_args_fmt(&r->args, REDIS_KEY_PREFIX "i:%" PRId64 ":{%u}", epoch, shard);
}

/* Links fields [from, to) into per-shard lists (shard_head), in field order. */
static void shard_lists(dedup_redis_t *r, size_t from, size_t to)
{
    uint32_t tail[DEDUP_CLUSTER_INDEX_SHARDS] = {0};
    for (size_t s = 0; s < DEDUP_CLUSTER_INDEX_SHARDS; s++)
        r->shard_head[s] = UINT32_MAX;
    for (size_t j = from; j < to; j++) {
        unsigned s = dedup_cluster_index_shard(r->fields[j].id);
        r->fields[j].next = UINT32_MAX;
        if (r->shard_head[s] == UINT32_MAX)
            r->shard_head[s] = (uint32_t)j;
        else
            r->fields[tail[s]].next = (uint32_t)j;
        tail[s] = (uint32_t)j;
    }
}

/* Queues one HMGET per live epoch and shard of fields [from, to): read by take_hmgets() in
 * the same order. */
static void queue_hmgets(dedup_redis_t *r, size_t from, size_t to, size_t *ncmds)
{
    shard_lists(r, from, to);
    for (size_t e = 0; e < r->nepochs; e++)
        for (unsigned s = 0; s < DEDUP_CLUSTER_INDEX_SHARDS; s++) {
            if (r->shard_head[s] == UINT32_MAX)
                continue;
            size_t start = r->args.n;
            redis_args_ptr(&r->args, "HMGET", 5);
            index_key(r, r->epochs[e], s);
            for (uint32_t j = r->shard_head[s]; j != UINT32_MAX; j = r->fields[j].next) {
                unsigned char id[8];
                put_be64(id, r->fields[j].id);
                redis_args_bytes(&r->args, id, 8);
            }
            cmd_add(r, ncmds, start, 1);
        }
}

/* Takes the HMGET replies from command *c on: each field's value from the newest epoch that
 * has it; fresh when that is the current epoch. */
static int take_hmgets(dedup_redis_t *r, size_t *c)
{
    for (size_t e = 0; e < r->nepochs; e++)
        for (unsigned s = 0; s < DEDUP_CLUSTER_INDEX_SHARDS; s++) {
            if (r->shard_head[s] == UINT32_MAX)
                continue;
            const redisReply *reply = r->replies[(*c)++];
            if (reply->type != REDIS_REPLY_ARRAY)
                return TW_ERR_REDIS;
            size_t k = 0;
            for (uint32_t j = r->shard_head[s]; j != UINT32_MAX; j = r->fields[j].next, k++) {
                if (k >= reply->elements)
                    return TW_ERR_REDIS;
                const redisReply *v = reply->element[k];
                dedup_field_t *f = &r->fields[j];
                if (v->type == REDIS_REPLY_NIL || f->present)
                    continue;
                if (v->type != REDIS_REPLY_STRING || v->len < 8)
                    return TW_ERR_REDIS;
                f->present = true;
                f->fresh = e == r->cur_epoch;
                f->val_off = r->vals.len;
                f->val_len = (uint32_t)v->len;
                buf_append(&r->vals, v->str, v->len);
            }
        }
    return r->vals.failed ? TW_ERR_NOMEM : 0;
}

static int log_reply_error(dedup_redis_t *r, size_t ncmds, int rc)
{
    for (size_t c = 0; rc == TW_ERR_REDIS && c < ncmds; c++)
        if (r->replies[c] && r->replies[c]->type == REDIS_REPLY_ERROR) {
            log_ratelimited(LOG_LEVEL_WARN, "redis.script", 10, "redis cluster dedup failed: %s",
                            r->replies[c]->str);
            break;
        }
    return rc;
}

/* The live epochs, newest first, from the worker's clock: the current one (epoch = time /
 * (window / 2), as the single-server script takes it from Redis' TIME), the older ones whose
 * EXPIREAT (end + window) is still ahead, and the next one within CLUSTER_CLOCK_SKEW_S of its
 * start. */
static void live_epochs(dedup_redis_t *r)
{
    int64_t width = dedup_redis_epoch_s(r->window_s);
    int64_t now = (int64_t)time(NULL);
    int64_t cur = now / width;
    r->nepochs = 0;
    if ((cur + 1) * width - now <= CLUSTER_CLOCK_SKEW_S)
        r->epochs[r->nepochs++] = cur + 1;
    r->cur_epoch = r->nepochs;
    for (int64_t e = cur; r->nepochs < CLUSTER_MAX_EPOCHS && (e + 1) * width + r->window_s > now;
         e--)
        r->epochs[r->nepochs++] = e;
}

/* Sizes the batch's scratch for the worst case (every field and cluster of the batch
 * distinct), so that pointers into fields and clusters stay valid while the batch runs, and
 * lays out the batch's signatures. */
static int cluster_batch_reserve(dedup_redis_t *r, const dedup_item_t *items, size_t n)
{
    int rc = 0;
    size_t maxkeys = 0;
    for (size_t i = 0; i < n; i++)
        maxkeys += 1 + dedup_index_bands(items[i].fp);
    size_t maxfields = 2 * maxkeys; /* + the clusters the batch's fields name */
    size_t maxclusters = n + maxkeys;
    size_t maxcmds = (2 * CLUSTER_MAX_EPOCHS + 2) * DEDUP_CLUSTER_INDEX_SHARDS + 2 * maxclusters;
    r->post_keys =
        grow(r->post_keys, &r->posts_cap, n * POST_KEYS_STRIDE, sizeof(*r->post_keys), &rc);
    r->post_cluster = grow(r->post_cluster, &r->post_cluster_cap, n, sizeof(*r->post_cluster), &rc);
    r->post_next = grow(r->post_next, &r->post_next_cap, n, sizeof(*r->post_next), &rc);
    r->post_sig = grow(r->post_sig, &r->post_sig_cap, n, sizeof(*r->post_sig), &rc);
    r->fields = grow(r->fields, &r->fields_cap, maxfields, sizeof(*r->fields), &rc);
    r->clusters = grow(r->clusters, &r->clusters_cap, maxclusters, sizeof(*r->clusters), &rc);
    r->cmds = grow(r->cmds, &r->cmds_cap, maxcmds, sizeof(*r->cmds), &rc);
    r->replies = grow(r->replies, &r->replies_cap, maxcmds, sizeof(*r->replies), &rc);
    r->cmd_arg = grow(r->cmd_arg, &r->cmd_arg_cap, maxcmds, sizeof(*r->cmd_arg), &rc);
    r->cmd_key_arg =
        grow(r->cmd_key_arg, &r->cmd_key_arg_cap, maxcmds, sizeof(*r->cmd_key_arg), &rc);
    if (rc != 0 || reserve_rows(r, n) != 0 || idmap_reset(&r->fieldmap, maxfields) != 0 ||
        idmap_reset(&r->clustermap, maxclusters) != 0)
        return TW_ERR_NOMEM;
    r->nfields = r->nclusters = 0;
    buf_reset(&r->sigbuf);
    buf_reset(&r->vals);
    if (append_sigs(&r->sigs, items, n) != 0)
        return TW_ERR_NOMEM;
    for (size_t i = 0, off = 0; i < n; i++) {
        r->post_sig[i] = off;
        off += items[i].fp->nbands ? FINGERPRINT_SIG_BYTES : 0;
        r->rows[i] = NULL;
    }
    live_epochs(r);
    return 0;
}

/* The batch's distinct fields (a post's exact hash is its exact field, as in batch.lua), and
 * each post's fields among them. */
static void collect_fields(dedup_redis_t *r, const dedup_item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const fingerprint_t *fp = items[i].fp;
        uint32_t *pk = &r->post_keys[i * POST_KEYS_STRIDE];
        pk[0] = field_entry(r, fp->exact);
        for (uint32_t b = 0; b < dedup_index_bands(fp); b++)
            pk[1 + b] = field_entry(r, dedup_key_id(b + 1, dedup_band_value(fp, b)));
    }
}

/* Phase 1: HMGET of every field of the batch in every live epoch, one command per epoch and
 * shard. */
static int fetch_fields(dedup_redis_t *r)
{
    redis_args_reset(&r->args);
    size_t ncmds = 0;
    queue_hmgets(r, 0, r->nfields, &ncmds);
    int rc = cluster_round(r, ncmds);
    if (rc != 0)
        return rc;
    size_t c = 0;
    rc = log_reply_error(r, ncmds, take_hmgets(r, &c));
    replies_free(r, ncmds);
    return rc;
}

/* Queues HMGET tw:c:{id} sig s1 once per cluster: its hash's signature and first member (a
 * promoted singleton's record post). */
static void queue_hash_fetch(dedup_redis_t *r, dedup_cluster_t *c, size_t *ncmds)
{
    if (c->asked)
        return;
    c->asked = true;
    size_t start = r->args.n;
    redis_args_ptr(&r->args, "HMGET", 5);
    redis_args_fmt(&r->args, REDIS_KEY_PREFIX "c:{%016" PRIx64 "}", c->id);
    redis_args_ptr(&r->args, "sig", 3);
    redis_args_ptr(&r->args, "s1", 2);
    cmd_add(r, ncmds, start, 1);
}

/* Phase 1b: every cluster the batch's fields name needs its own field (its record, or the
 * marker of a cluster with a hash) when that is not one of the batch's fields; a singleton's
 * (or one not known yet) hash's first member, and with verification a cluster with a hash's
 * signature: HMGET tw:c:{id} sig s1. One round, skipped when nothing is missing. */
static int fetch_named_clusters(dedup_redis_t *r, bool verify)
{
    size_t batch_fields = r->nfields;
    for (size_t j = 0; j < batch_fields; j++)
        if (r->fields[j].present)
            field_entry(r, field_cluster(r, &r->fields[j]));
    redis_args_reset(&r->args);
    size_t ncmds = 0;
    if (r->nfields > batch_fields)
        queue_hmgets(r, batch_fields, r->nfields, &ncmds);
    for (size_t j = 0; j < batch_fields; j++) {
        if (!r->fields[j].present)
            continue;
        dedup_cluster_t *c = cluster_entry(r, field_cluster(r, &r->fields[j]));
        const dedup_field_t *own = field_find(r, c->id);
        if (!own->present && own - r->fields < (ptrdiff_t)batch_fields)
            continue; /* no live cluster */
        if (own->present && field_cluster(r, own) != c->id)
            continue; /* no live cluster: the exact field of a post of another cluster */
        if (own->present && own->val_len == 8 && !verify)
            continue; /* a cluster with a hash, and its signature is not needed */
        queue_hash_fetch(r, c, &ncmds);
    }
    if (!ncmds)
        return 0;
    int rc = cluster_round(r, ncmds);
    if (rc != 0)
        return rc;
    size_t c = 0;
    if (r->nfields > batch_fields)
        rc = take_hmgets(r, &c);
    /* a cluster's HMGET was queued when it was first met, so in the order of the clusters */
    for (size_t cl = 0; rc == 0 && cl < r->nclusters; cl++) {
        dedup_cluster_t *cluster = &r->clusters[cl];
        if (!cluster->asked)
            continue;
        const redisReply *reply = r->replies[c++];
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
            rc = TW_ERR_REDIS;
            break;
        }
        for (size_t k = 0; rc == 0 && k < 2; k++) {
            const redisReply *v = reply->element[k];
            if (v->type == REDIS_REPLY_STRING)
                rc = sig_keep(r, k ? &cluster->first : &cluster->hash, v->str, v->len);
            else if (v->type != REDIS_REPLY_NIL)
                rc = TW_ERR_REDIS;
        }
    }
    rc = log_reply_error(r, ncmds, rc);
    replies_free(r, ncmds);
    return rc;
}

/* Post i's result when no script runs for it: a new singleton, or a singleton's replay. */
static void local_result(dedup_result_t *res, uint64_t cluster, size_t author_len, int64_t ts,
                         bool replay)
{
    memset(res, 0, sizeof(*res));
    res->cluster = cluster;
    res->count = 1;
    res->authors = author_len ? 1 : 0;
    res->first_seen = res->last_seen = ts;
    res->replay = replay;
    res->available = true;
}

/* Appends post i to cluster c's script. */
static void script_post(dedup_redis_t *r, dedup_cluster_t *c, size_t i)
{
    r->post_next[i] = UINT32_MAX;
    if (c->nposts++)
        r->post_next[c->last_post] = (uint32_t)i;
    else
        c->first_post = i;
    c->last_post = i;
}

/* The cluster post i joins, decided as batch.lua decides it: the one its exact field names,
 * else the one of its first band field whose signature verifies, else its exact hash. */
static uint64_t choose_cluster(dedup_redis_t *r, const fingerprint_t *fp, const uint32_t *pk,
                               bool verify)
{
    const dedup_field_t *x = &r->fields[pk[0]];
    if (x->present)
        return field_cluster(r, x);
    for (uint32_t b = 1; b <= dedup_index_bands(fp); b++) {
        const dedup_field_t *f = &r->fields[pk[b]];
        if (!f->present)
            continue;
        uint64_t cand = field_cluster(r, f);
        if (!verify || cluster_verified(r, cluster_entry(r, cand), fp))
            return cand;
    }
    return fp->exact;
}

/* Phase 2 for post i, in batch order, on the batch's overlay exactly as batch.lua's loop runs
 * on its found table: a singleton's replay or a new singleton is decided here (its record goes
 * into its exact field); a post joining a cluster with a hash, or the second post of a
 * singleton (which then gets a hash, its record's post first), goes through the cluster's
 * script; then every field of the post not yet in the current epoch is put there. */
static int decide_post(dedup_redis_t *r, const dedup_item_t *it, size_t i, bool verify, bool eager,
                       dedup_result_t *res)
{
    const fingerprint_t *fp = it->fp;
    const uint32_t *pk = &r->post_keys[i * POST_KEYS_STRIDE];
    uint64_t id = choose_cluster(r, fp, pk, verify);
    dedup_cluster_t *c = cluster_entry(r, id);
    r->post_cluster[i] = (uint32_t)(c - r->clusters);
    dedup_field_t *own = &r->fields[field_entry(r, id)]; /* present in the map already */
    dedup_record_t rec;
    cluster_state_t state = cluster_state(r, c, &rec);
    bool single = state == CLUSTER_SINGLE;
    const char *sig = fp->nbands ? r->sigs.data + r->post_sig[i] : "";
    size_t sig_len = fp->nbands ? FINGERPRINT_SIG_BYTES : 0;
    const char *author = it->author ? it->author : "";
    size_t author_len = it->author ? it->author_len : 0;
    bool has_hash = false;
    int rc = 0;
    if (single && rec.pid_len == it->post_id_len &&
        memcmp(rec.pid, it->post_id, rec.pid_len) == 0) {
        local_result(res, id, rec.author_len, rec.ts, true);
    } else if (state != CLUSTER_NONE || eager) {
        if (single) {
            c->promote = true;
            c->rec_off = own->val_off;
            c->rec_len = own->val_len;
            rc = cluster_update_sig(r, c, rec.sig, rec.sig_len);
        }
        c->promoted = true;
        if (rc == 0)
            rc = cluster_update_sig(r, c, sig, sig_len);
        script_post(r, c, i);
        has_hash = true;
    } else {
        buf_reset(&r->record);
        dedup_record_encode(&r->record, id, it->ts, author, author_len, sig, sig_len, it->post_id,
                            it->post_id_len);
        if (r->record.failed)
            return TW_ERR_NOMEM;
        rc = field_put(r, own, r->record.data, r->record.len);
        c->cached = true;
        if (rc == 0)
            rc = sig_keep(r, &c->cache, sig, sig_len);
        local_result(res, id, author_len, it->ts, false);
    }
    unsigned char marker[8];
    put_be64(marker, id);
    /* a cluster with a hash keeps its 8-byte id alone in its field, refreshed with the hash;
     * a promoted singleton keeps its record there until a later batch finds the record's post
     * in the hash, so that a promotion whose script did not run (a failed round) is made again
     * by the next post, not lost (its record's post would be missing from the count) */
    if (rc == 0 && has_hash && !single && !(own->fresh && own->val_len == 8))
        rc = field_put(r, own, marker, 8);
    else if (rc == 0 && has_hash && own->present && !own->fresh)
        own->fresh = own->dirty = true;
    for (uint32_t b = 0; rc == 0 && b <= dedup_index_bands(fp); b++) {
        dedup_field_t *f = &r->fields[pk[b]];
        if (f->fresh)
            continue;
        if (f->present) /* an existing field keeps its cluster (its value is already there) */
            f->fresh = f->dirty = true;
        else
            rc = field_put(r, f, marker, 8);
    }
    return rc;
}

static int decide_posts(dedup_redis_t *r, const dedup_item_t *items, size_t n, bool verify,
                        dedup_result_t *results)
{
    const dedup_campaign_t *camp = &r->base.campaign;
    /* milestone 1 is claimed by a cluster's first post: those need the cluster hash at once */
    bool eager = camp->nmilestones > 0 && camp->milestones[0] <= 1;
    for (size_t i = 0; i < n; i++) {
        int rc = decide_post(r, &items[i], i, verify, eager, &results[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Queues one HSET per shard of the current epoch with every field the batch put there, each
 * followed by EXPIREAT end of the epoch + window. */
static void queue_index_writes(dedup_redis_t *r, size_t *ncmds)
{
    shard_lists(r, 0, r->nfields);
    int64_t epoch = r->epochs[r->cur_epoch];
    int64_t expire_at = (epoch + 1) * dedup_redis_epoch_s(r->window_s) + r->window_s;
    for (unsigned s = 0; s < DEDUP_CLUSTER_INDEX_SHARDS; s++) {
        size_t start = r->args.n;
        bool any = false;
        for (uint32_t j = r->shard_head[s]; j != UINT32_MAX; j = r->fields[j].next) {
            const dedup_field_t *f = &r->fields[j];
            if (!f->dirty)
                continue;
            if (!any) {
                redis_args_ptr(&r->args, "HSET", 4);
                index_key(r, epoch, s);
                any = true;
            }
            unsigned char id[8];
            put_be64(id, f->id);
            redis_args_bytes(&r->args, id, 8);
            redis_args_bytes(&r->args, field_val(r, f), f->val_len);
        }
        if (!any)
            continue;
        cmd_add(r, ncmds, start, 1);
        start = r->args.n;
        redis_args_ptr(&r->args, "EXPIREAT", 8);
        index_key(r, epoch, s);
        redis_args_fmt(&r->args, "%" PRId64, expire_at);
        cmd_add(r, ncmds, start, 1);
    }
}

static void script_entry(dedup_redis_t *r, const char *pid, size_t pid_len, const char *author,
                         size_t author_len, int64_t ts, const char *sig, size_t sig_len)
{
    redis_args_bytes(&r->args, pid, pid_len);
    redis_args_bytes(&r->args, author, author_len);
    redis_args_fmt(&r->args, "%" PRId64, ts);
    redis_args_bytes(&r->args, sig, sig_len);
}

/* Queues one script (lua/cluster.lua) per cluster that has posts for it, in batch order,
 * after the promoted singleton record's post; its slot comes from its first key, argument 3. */
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
        redis_args_fmt(&r->args, "%zu", c->nposts + c->promote);
        redis_args_fmt(&r->args, "%" PRIu64, camp->min_authors);
        redis_args_fmt(&r->args, "%zu", camp->nmilestones);
        for (size_t m = 0; m < camp->nmilestones; m++)
            redis_args_fmt(&r->args, "%" PRIu64, camp->milestones[m]);
        dedup_record_t rec;
        if (c->promote && dedup_record_decode(r->vals.data + c->rec_off, c->rec_len, &rec))
            script_entry(r, rec.pid, rec.pid_len, rec.author, rec.author_len, rec.ts, rec.sig,
                         rec.sig_len);
        for (size_t i = c->first_post; i != UINT32_MAX; i = r->post_next[i]) {
            const dedup_item_t *it = &items[i];
            size_t sig_len = it->fp->nbands ? FINGERPRINT_SIG_BYTES : 0;
            script_entry(r, it->post_id, it->post_id_len, it->author ? it->author : "",
                         it->author ? it->author_len : 0, it->ts,
                         sig_len ? r->sigs.data + r->post_sig[i] : "", sig_len);
        }
        cmd_add(r, ncmds, start, 3);
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
 * order of the clusters; a promoted record's row, the first, is not a post of the batch), after
 * checking that no command of phase 3 failed. */
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
        if (reply->type != REDIS_REPLY_ARRAY ||
            reply->elements != cluster->nposts + cluster->promote)
            return TW_ERR_REDIS;
        size_t j = cluster->promote;
        for (size_t i = cluster->first_post; i != UINT32_MAX; i = r->post_next[i])
            r->rows[i] = reply->element[j++];
    }
    return 0;
}

/* Phase 3, one pipeline: the current epoch's HSET + EXPIREAT per shard written, then one
 * script per cluster with a hash that posts joined; the scripts' rows are those posts'
 * results (the others were decided in phase 2). */
static int write_batch(dedup_redis_t *r, const dedup_item_t *items, size_t n,
                       dedup_result_t *results)
{
    redis_args_reset(&r->args);
    size_t ncmds = 0;
    queue_index_writes(r, &ncmds);
    size_t nindex = ncmds;
    queue_cluster_scripts(r, items, &ncmds);
    int rc = cluster_round(r, ncmds);
    if (rc != 0)
        return rc;
    rc = retry_missing_scripts(r, nindex, ncmds);
    if (rc == 0)
        rc = take_rows(r, nindex, ncmds);
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
    if (rc == 0) {
        collect_fields(r, items, n);
        rc = fetch_fields(r);
    }
    if (rc == 0)
        rc = fetch_named_clusters(r, verify);
    if (rc == 0)
        rc = decide_posts(r, items, n, verify, results);
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
    free(r->fields);
    free(r->clusters);
    u64map_fini(&r->fieldmap);
    u64map_fini(&r->clustermap);
    free(r->post_keys);
    free(r->post_cluster);
    free(r->post_next);
    free(r->post_sig);
    free(r->cmds);
    free(r->replies);
    free(r->cmd_arg);
    free(r->cmd_key_arg);
    free(r->rows);
    buf_fini(&r->samples);
    buf_fini(&r->sigs);
    buf_fini(&r->sigbuf);
    buf_fini(&r->vals);
    buf_fini(&r->record);
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
    buf_init(&r->vals);
    buf_init(&r->record);
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
