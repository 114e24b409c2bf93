/* Flood guard: see flood.h for what it decides and how the fleet shares it. */
#include "flood/flood.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/hashmap.h"

#define FLOOD_MAX_CANDIDATES 256 /* rules checked against the fleet per tick */
#define FLOOD_DIGEST_HEX     17

typedef struct {
    const char *id;
    char field[FLOOD_DIGEST_HEX]; /* the rule's digest in hex: its name in the fleet's hashes */
    uint64_t digest;
    double max_share;
    uint32_t min_posts;
    uint32_t counts[FLOOD_BUCKETS]; /* this worker's hits per bucket */
    uint32_t pending;               /* hits not yet added to the fleet's bucket */
    time_t muted_until;             /* 0: live */
} flood_rule_t;

struct flood_guard {
    flood_limits_t defaults;
    char prefix[96]; /* "{<key_prefix>:flood}" */
    flood_transport_t transport;
    bool has_transport;
    uint32_t bucket_s;
    flood_rule_t *rules;
    size_t nrules;
    u64map_t by_digest; /* digest -> rule index + 1 */
    int64_t bucket_of_slot[FLOOD_BUCKETS];
    uint32_t posts[FLOOD_BUCKETS];
    uint32_t pending_posts;
    int64_t pending_bucket;
    uint32_t *touched; /* rules with pending hits */
    size_t ntouched;
};

static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
    return fnv(h, s ? s : "", s ? strlen(s) + 1 : 1);
}

flood_guard_t *flood_guard_new(const flood_limits_t *defaults, const char *key_prefix,
                               const flood_transport_t *transport)
{
    flood_guard_t *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->defaults = *defaults;
    if (g->defaults.window_s == 0)
        g->defaults.window_s = 300;
    g->bucket_s = g->defaults.window_s / FLOOD_BUCKETS ? g->defaults.window_s / FLOOD_BUCKETS : 1;
    snprintf(g->prefix, sizeof g->prefix, "{%s:flood}", key_prefix ? key_prefix : "tidewatch");
    if (transport) {
        g->transport = *transport;
        g->has_transport = true;
    }
    for (size_t i = 0; i < FLOOD_BUCKETS; i++)
        g->bucket_of_slot[i] = -1;
    g->pending_bucket = -1;
    return g;
}

void flood_guard_free(flood_guard_t *g)
{
    if (!g)
        return;
    free(g->rules);
    free(g->touched);
    u64map_fini(&g->by_digest);
    free(g);
}

/* A digest of everything that decides what a rule matches, so a reload that edits the rule
 * lifts its mute and one that leaves it alone keeps it. */
static void rule_digests(const rule_set_t *rs, flood_rule_t *rules)
{
    for (size_t r = 0; r < rs->nrules; r++) {
        const rule_t *rule = &rs->rules[r];
        uint64_t h = fnv_str(0xcbf29ce484222325ull, rule->id);
        uint32_t shape[6] = {rule->mode,        rule->keyword_views, rule->regex_views,
                             rule->min_matches, rule->nall,          rule->within};
        h = fnv(h, shape, sizeof shape);
        for (size_t i = 0; i < rule->nlangs; i++)
            h = fnv_str(h, rule->langs[i]);
        for (size_t i = 0; i < rule->nfields; i++)
            h = fnv_str(h, rule->fields[i]);
        if (rule->flood_set) { /* new limits are a new decision */
            h = fnv(h, &rule->flood_max_share, sizeof rule->flood_max_share);
            h = fnv(h, &rule->flood_min_posts, sizeof rule->flood_min_posts);
        }
        rules[r].digest = h;
    }
    for (size_t p = 0; p < rs->npatterns; p++) {
        const rule_pattern_t *pat = &rs->patterns[p];
        if (pat->group == RULE_GROUP_ALLOW || pat->rule_index >= rs->nrules)
            continue;
        uint32_t kind[3] = {pat->kind, pat->group, pat->all_index};
        uint64_t h = fnv(rules[pat->rule_index].digest, kind, sizeof kind);
        rules[pat->rule_index].digest = fnv_str(h, pat->text);
    }
}

int flood_guard_set_rules(flood_guard_t *g, const rule_set_t *rs, const flood_override_t *per_rule)
{
    flood_rule_t *rules = calloc(rs->nrules ? rs->nrules : 1, sizeof *rules);
    uint32_t *touched = calloc(rs->nrules ? rs->nrules : 1, sizeof *touched);
    u64map_t by_digest = {0};
    if (!rules || !touched || u64map_init(&by_digest, 64) != 0) {
        free(rules);
        free(touched);
        return TW_ERR_NOMEM;
    }
    rule_digests(rs, rules);
    for (size_t r = 0; r < rs->nrules; r++) {
        flood_rule_t *rule = &rules[r];
        rule->id = rs->rules[r].id;
        snprintf(rule->field, sizeof rule->field, "%016" PRIx64, rule->digest);
        bool own = per_rule && per_rule[r].set;
        rule->max_share = own ? per_rule[r].max_share : g->defaults.max_share;
        rule->min_posts = own ? per_rule[r].min_posts : g->defaults.min_posts;
        /* A mute of the same definition survives the reload. */
        const uint64_t *old = u64map_get(&g->by_digest, rule->digest);
        if (old)
            rule->muted_until = g->rules[*old - 1].muted_until;
        bool inserted;
        if (!u64map_put(&by_digest, rule->digest, r + 1, &inserted)) {
            free(rules);
            free(touched);
            u64map_fini(&by_digest);
            return TW_ERR_NOMEM;
        }
    }
    free(g->rules);
    free(g->touched);
    u64map_fini(&g->by_digest);
    g->rules = rules;
    g->nrules = rs->nrules;
    g->touched = touched;
    g->ntouched = 0;
    g->by_digest = by_digest;
    memset(g->posts, 0, sizeof g->posts);
    for (size_t i = 0; i < FLOOD_BUCKETS; i++)
        g->bucket_of_slot[i] = -1;
    g->pending_posts = 0;
    return 0;
}

/* Moves the ring to bucket b: a slot that held an older bucket starts again from zero. */
static size_t flood_slot(flood_guard_t *g, int64_t b)
{
    size_t slot = (size_t)(b % FLOOD_BUCKETS);
    if (g->bucket_of_slot[slot] != b) {
        g->bucket_of_slot[slot] = b;
        g->posts[slot] = 0;
        for (size_t r = 0; r < g->nrules; r++)
            g->rules[r].counts[slot] = 0;
    }
    return slot;
}

void flood_guard_count(flood_guard_t *g, const uint32_t *rule_indices, size_t n, time_t now)
{
    int64_t b = (int64_t)now / g->bucket_s;
    size_t slot = flood_slot(g, b);
    g->posts[slot]++;
    g->pending_posts++;
    g->pending_bucket = b;
    for (size_t i = 0; i < n; i++) {
        if (rule_indices[i] >= g->nrules)
            continue;
        flood_rule_t *rule = &g->rules[rule_indices[i]];
        rule->counts[slot]++;
        if (rule->pending++ == 0)
            g->touched[g->ntouched++] = rule_indices[i];
    }
}

bool flood_guard_muted(const flood_guard_t *g, uint32_t rule_index, time_t now)
{
    return rule_index < g->nrules && g->rules[rule_index].muted_until > now;
}

size_t flood_guard_muted_count(const flood_guard_t *g, time_t now)
{
    size_t n = 0;
    for (size_t r = 0; r < g->nrules; r++)
        n += g->rules[r].muted_until > now;
    return n;
}

/* This worker's posts and a rule's hits over the window ending in bucket b. */
static void local_window(const flood_guard_t *g, const flood_rule_t *rule, int64_t b,
                         uint64_t *hits, uint64_t *posts)
{
    *hits = *posts = 0;
    for (size_t s = 0; s < FLOOD_BUCKETS; s++) {
        if (g->bucket_of_slot[s] < 0 || g->bucket_of_slot[s] <= b - FLOOD_BUCKETS)
            continue;
        *posts += g->posts[s];
        *hits += rule->counts[s];
    }
}

static bool over_limit(const flood_rule_t *rule, uint64_t hits, uint64_t posts)
{
    return rule->max_share > 0 && posts > 0 && posts >= rule->min_posts &&
           (double)hits / (double)posts > rule->max_share;
}

static void mute(flood_guard_t *g, flood_rule_t *rule, time_t now, uint64_t hits, uint64_t posts,
                 bool fleet, bool here, void (*on_mute)(void *arg, const flood_mute_t *mute),
                 void *arg)
{
    rule->muted_until = now + (time_t)g->defaults.cooloff_s;
    if (on_mute) {
        flood_mute_t m = {rule->id,
                          (double)hits / (double)posts,
                          rule->max_share,
                          hits,
                          posts,
                          fleet,
                          here,
                          rule->muted_until};
        on_mute(arg, &m);
    }
}

/* The in-process fallback: decide on this worker's counts. */
static void decide_locally(flood_guard_t *g, time_t now,
                           void (*on_mute)(void *arg, const flood_mute_t *mute), void *arg)
{
    int64_t b = (int64_t)now / g->bucket_s;
    for (size_t r = 0; r < g->nrules; r++) {
        flood_rule_t *rule = &g->rules[r];
        if (rule->muted_until > now || rule->max_share <= 0)
            continue;
        uint64_t hits, posts;
        local_window(g, rule, b, &hits, &posts);
        if (hits && over_limit(rule, hits, posts))
            mute(g, rule, now, hits, posts, false, true, on_mute, arg);
    }
}

/* A batch of commands for one round trip; argument strings live in the batch's arena. */
#define FLOOD_MAX_CMDS (FLOOD_MAX_CANDIDATES + FLOOD_BUCKETS + 8)
typedef struct {
    size_t ncmds;
    int argc[FLOOD_MAX_CMDS];
    const char **argv[FLOOD_MAX_CMDS];
    size_t *argvlen[FLOOD_MAX_CMDS];
    redisReply *replies[FLOOD_MAX_CMDS];
} flood_batch_t;

static bool batch_add(flood_batch_t *batch, int argc, const char **argv)
{
    if (batch->ncmds == FLOOD_MAX_CMDS)
        return false;
    size_t *lens = malloc((size_t)argc * sizeof *lens);
    const char **copy = malloc((size_t)argc * sizeof *copy);
    if (!lens || !copy) {
        free(lens);
        free(copy);
        return false;
    }
    for (int i = 0; i < argc; i++) {
        copy[i] = argv[i];
        lens[i] = strlen(argv[i]);
    }
    batch->argc[batch->ncmds] = argc;
    batch->argv[batch->ncmds] = copy;
    batch->argvlen[batch->ncmds] = lens;
    batch->ncmds++;
    return true;
}

static int batch_exec(flood_guard_t *g, flood_batch_t *batch)
{
    return g->transport.exec(g->transport.ctx, batch->ncmds, batch->argc,
                             (const char *const *const *)batch->argv,
                             (const size_t *const *)batch->argvlen, batch->replies);
}

static void batch_free(flood_batch_t *batch, bool replies)
{
    for (size_t i = 0; i < batch->ncmds; i++) {
        free(batch->argv[i]);
        free(batch->argvlen[i]);
        if (replies && batch->replies[i])
            freeReplyObject(batch->replies[i]);
    }
    batch->ncmds = 0;
}

static long long reply_int(const redisReply *r)
{
    if (!r)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoll(r->str, NULL, 10);
    return 0;
}

/* Rules worth the fleet's totals this tick: hit here in the window, guarded, live, and
 * either near their limit here or seen on too few posts here to judge alone. Pushing only
 * their hits keeps a tick's commands bounded; a rule left out can only be under-counted,
 * which never mutes a rule that should stay live. */
static size_t pick_candidates(flood_guard_t *g, time_t now, uint32_t *cand)
{
    int64_t b = (int64_t)now / g->bucket_s;
    size_t n = 0;
    for (size_t r = 0; r < g->nrules && n < FLOOD_MAX_CANDIDATES; r++) {
        flood_rule_t *rule = &g->rules[r];
        if (rule->max_share <= 0 || rule->muted_until > now)
            continue;
        uint64_t hits, posts;
        local_window(g, rule, b, &hits, &posts);
        if (hits == 0)
            continue;
        if (posts < rule->min_posts || (double)hits / (double)posts >= rule->max_share / 2)
            cand[n++] = (uint32_t)r;
    }
    return n;
}

static void bucket_key(const flood_guard_t *g, int64_t b, char *buf, size_t size)
{
    snprintf(buf, size, "%s:b:%" PRId64, g->prefix, b);
}

/* Applies the fleet's mute hash (HGETALL reply); lists expired fields for removal. */
static void apply_fleet_mutes(flood_guard_t *g, const redisReply *all, time_t now,
                              const char **expired, size_t *nexpired)
{
    if (!all || all->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < all->elements; i += 2) {
        const redisReply *field = all->element[i], *value = all->element[i + 1];
        if (field->type != REDIS_REPLY_STRING || value->type != REDIS_REPLY_STRING)
            continue;
        time_t until = (time_t)strtoll(value->str, NULL, 10);
        if (until <= now) {
            if (*nexpired < FLOOD_MAX_CANDIDATES)
                expired[(*nexpired)++] = field->str;
            continue;
        }
        const uint64_t *index = u64map_get(&g->by_digest, strtoull(field->str, NULL, 16));
        if (index && g->rules[*index - 1].muted_until < until)
            g->rules[*index - 1].muted_until = until;
    }
}

/* One tick's round trips: the commands, their number strings and keys, and where each
 * group of replies starts. */
typedef struct {
    flood_guard_t *g;
    time_t now;
    uint32_t cand[FLOOD_MAX_CANDIDATES];
    size_t ncand;
    flood_batch_t batch;
    size_t first_total; /* replies[first_total + k]: HMGET of the bucket k before now */
    size_t mutes_cmd;   /* replies[mutes_cmd]: HGETALL of the mutes */
    char nums[FLOOD_MAX_CANDIDATES + 1][24];
    char keys[FLOOD_BUCKETS + 1][160];
    char mutes_key[128];
    char expire_s[24];
} flood_tick_t;

/* The first round trip: this worker's counts into the current bucket, the fleet's totals over
 * the window for the candidates, and the fleet's mutes. False when a command did not fit. */
static bool tick_build_exchange(flood_tick_t *t)
{
    flood_guard_t *g = t->g;
    flood_batch_t *batch = &t->batch;
    bool ok = true;
    if (g->pending_posts) {
        char *key = t->keys[FLOOD_BUCKETS];
        bucket_key(g, g->pending_bucket, key, sizeof t->keys[0]);
        snprintf(t->nums[t->ncand], sizeof t->nums[0], "%u", g->pending_posts);
        ok &= batch_add(batch, 4, (const char *[]){"HINCRBY", key, "_posts", t->nums[t->ncand]});
        for (size_t i = 0; i < t->ncand; i++) {
            const flood_rule_t *rule = &g->rules[t->cand[i]];
            if (rule->pending == 0)
                continue;
            snprintf(t->nums[i], sizeof t->nums[0], "%u", rule->pending);
            ok &= batch_add(batch, 4, (const char *[]){"HINCRBY", key, rule->field, t->nums[i]});
        }
        ok &= batch_add(batch, 3, (const char *[]){"EXPIRE", key, t->expire_s});
    }
    t->first_total = batch->ncmds;
    int64_t b = (int64_t)t->now / g->bucket_s;
    for (int64_t k = 0; t->ncand && k < FLOOD_BUCKETS; k++) {
        bucket_key(g, b - k, t->keys[k], sizeof t->keys[0]);
        const char *argv[FLOOD_MAX_CANDIDATES + 3] = {"HMGET", t->keys[k], "_posts"};
        for (size_t i = 0; i < t->ncand; i++)
            argv[3 + i] = g->rules[t->cand[i]].field;
        ok &= batch_add(batch, (int)(3 + t->ncand), argv);
    }
    t->mutes_cmd = batch->ncmds;
    ok &= batch_add(batch, 2, (const char *[]){"HGETALL", t->mutes_key});
    return ok;
}

/* The second round trip, when needed: a claim (HSETNX) per candidate over its limit on the
 * fleet's totals, so one worker reports each mute; expired mutes removed. */
static void tick_claim_mutes(flood_tick_t *t, const char **expired, size_t nexpired,
                             void (*on_mute)(void *arg, const flood_mute_t *mute), void *arg)
{
    flood_guard_t *g = t->g;
    flood_batch_t *claims = calloc(1, sizeof(*claims));
    if (!claims)
        return;
    char until_s[24], keep_s[24];
    snprintf(until_s, sizeof until_s, "%lld", (long long)t->now + g->defaults.cooloff_s);
    snprintf(keep_s, sizeof keep_s, "%u", 2 * g->defaults.cooloff_s + 60);
    uint32_t tripped[FLOOD_MAX_CANDIDATES];
    uint64_t hits_of[FLOOD_MAX_CANDIDATES], posts_of[FLOOD_MAX_CANDIDATES];
    size_t ntripped = 0;
    for (size_t i = 0; i < t->ncand; i++) {
        flood_rule_t *rule = &g->rules[t->cand[i]];
        if (rule->muted_until > t->now)
            continue; /* muted by the fleet meanwhile */
        uint64_t hits = 0, posts = 0;
        for (size_t k = 0; k < FLOOD_BUCKETS; k++) {
            const redisReply *r = t->batch.replies[t->first_total + k];
            if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != t->ncand + 1)
                continue;
            posts += (uint64_t)reply_int(r->element[0]);
            hits += (uint64_t)reply_int(r->element[1 + i]);
        }
        if (over_limit(rule, hits, posts) &&
            batch_add(claims, 4, (const char *[]){"HSETNX", t->mutes_key, rule->field, until_s})) {
            tripped[ntripped] = t->cand[i];
            hits_of[ntripped] = hits;
            posts_of[ntripped++] = posts;
        }
    }
    if (ntripped || nexpired) {
        for (size_t i = 0; i < nexpired; i++)
            batch_add(claims, 3, (const char *[]){"HDEL", t->mutes_key, expired[i]});
        batch_add(claims, 3, (const char *[]){"EXPIRE", t->mutes_key, keep_s});
        bool sent = batch_exec(g, claims) == 0;
        /* Unsent claims: decided here, so reported here (the fleet will learn next tick). */
        for (size_t i = 0; i < ntripped; i++)
            mute(g, &g->rules[tripped[i]], t->now, hits_of[i], posts_of[i], sent,
                 !sent || reply_int(claims->replies[i]) == 1, on_mute, arg);
        batch_free(claims, sent);
    }
    free(claims);
}

int flood_guard_tick(flood_guard_t *g, time_t now,
                     void (*on_mute)(void *arg, const flood_mute_t *mute), void *arg)
{
    if (!g->has_transport) {
        decide_locally(g, now, on_mute, arg);
        return 0;
    }
    flood_tick_t *t = calloc(1, sizeof(*t));
    if (!t) {
        decide_locally(g, now, on_mute, arg);
        return TW_ERR_NOMEM;
    }
    t->g = g;
    t->now = now;
    t->ncand = pick_candidates(g, now, t->cand);
    snprintf(t->mutes_key, sizeof t->mutes_key, "%s:mutes", g->prefix);
    snprintf(t->expire_s, sizeof t->expire_s, "%u", g->defaults.window_s + 2 * g->bucket_s);
    if (!tick_build_exchange(t) || batch_exec(g, &t->batch) != 0) {
        batch_free(&t->batch, false);
        free(t);
        decide_locally(g, now, on_mute, arg);
        return TW_ERR_REDIS;
    }
    /* The counts are in the fleet's buckets: start counting afresh. */
    for (size_t i = 0; i < g->ntouched; i++)
        g->rules[g->touched[i]].pending = 0;
    g->ntouched = 0;
    g->pending_posts = 0;
    const char *expired[FLOOD_MAX_CANDIDATES];
    size_t nexpired = 0;
    apply_fleet_mutes(g, t->batch.replies[t->mutes_cmd], now, expired, &nexpired);
    tick_claim_mutes(t, expired, nexpired, on_mute, arg);
    batch_free(&t->batch, true);
    free(t);
    return 0;
}
