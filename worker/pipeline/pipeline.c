#include "pipeline/pipeline.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/array.h"
#include "util/log.h"
#include "metrics/metrics.h"

/* More workers than this buy nothing but memory (a scratch each) on any machine we know. */
#define PIPELINE_MAX_WORKERS 256

size_t pipeline_default_threads(void)
{
    return pool_cpu_count();
}

static void pipeline_scratches_free(match_scratch_t **scratches, size_t n)
{
    for (size_t i = 0; scratches && i < n; i++)
        match_scratch_free(scratches[i]);
    free(scratches);
}

/* One scratch for db per worker, all or none. */
static int pipeline_scratches_new(const match_db_t *db, size_t n, match_scratch_t ***out)
{
    match_scratch_t **scratches = calloc(n, sizeof(*scratches));
    if (!scratches)
        return TW_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        int rc = match_scratch_new(db, &scratches[i]);
        if (rc != 0) {
            pipeline_scratches_free(scratches, i);
            return rc;
        }
    }
    *out = scratches;
    return 0;
}

int pipeline_init(pipeline_t *p, const config_t *cfg, const rule_set_t *rules, const match_db_t *db,
                  dedup_store_t *dedup)
{
    memset(p, 0, sizeof(*p));
    p->cfg = cfg;
    p->rules = rules;
    p->db = db;
    p->dedup = dedup;
    p->fields = (post_fields_t){cfg->field_id, cfg->field_text, cfg->field_author,
                                cfg->field_ts, cfg->field_lang, cfg->field_url};
    buf_init(&p->alerts);
    buf_init(&p->campaign_buf);
    buf_init(&p->control_buf);
    buf_init(&p->recheck_buf);
    p->max_unknown_claims = PIPELINE_MAX_UNKNOWN_CLAIMS;
    size_t workers = cfg->threads > 0 ? (size_t)cfg->threads : pipeline_default_threads();
    if (workers > PIPELINE_MAX_WORKERS)
        workers = PIPELINE_MAX_WORKERS;
    int rc = pipeline_scratches_new(db, workers, &p->scratches);
    if (rc != 0)
        return rc;
    p->nworkers = workers;
    post_decode_prepare_arenas();  /* before any worker thread exists */
    for (size_t k = 0; k < 2; k++) /* all zero: arena_init's state */
        if (!(p->batches[k].arenas = calloc(workers, sizeof(arena_t))))
            rc = TW_ERR_NOMEM;
    if (rc == 0 && workers > 1)
        rc = pool_new(workers, &p->pool);
    if (rc != 0) {
        for (size_t k = 0; k < 2; k++) {
            free(p->batches[k].arenas);
            p->batches[k].arenas = NULL;
        }
        pipeline_scratches_free(p->scratches, p->nworkers);
        p->scratches = NULL;
        return rc;
    }
    return 0;
}

static void pipeline_batch_free(pipeline_batch_t *b)
{
    for (size_t i = 0; i < b->cap; i++) {
        post_clear(&b->posts[i]);
        normalized_fini(&b->norms[i]);
        match_set_fini(&b->matches[i]);
    }
    free(b->posts);
    free(b->norms);
    free(b->matches);
    free(b->fps);
    b->posts = NULL;
    b->norms = NULL;
    b->matches = NULL;
    b->fps = NULL;
    b->cap = 0;
}

static int pipeline_batch_reserve(pipeline_batch_t *b, size_t n)
{
    if (n <= b->cap)
        return 0;
    pipeline_batch_free(b);
    b->posts = calloc(n, sizeof(*b->posts));
    b->norms = calloc(n, sizeof(*b->norms));
    b->matches = calloc(n, sizeof(*b->matches));
    b->fps = calloc(n, sizeof(*b->fps));
    if (!b->posts || !b->norms || !b->matches || !b->fps) {
        pipeline_batch_free(b); /* cap is 0 here: only the arrays are freed */
        return TW_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        post_init(&b->posts[i]);
        normalized_init(&b->norms[i]);
        match_set_init(&b->matches[i]);
    }
    b->cap = n;
    return 0;
}

static void pipeline_free_arrays(pipeline_t *p)
{
    free(p->items);
    free(p->dups);
    free(p->post_item);
    p->items = NULL;
    p->dups = NULL;
    p->post_item = NULL;
    p->cap = 0;
}

/* The arrays of the owner's stages, for a batch of n. */
static int pipeline_reserve(pipeline_t *p, size_t n)
{
    if (n <= p->cap)
        return 0;
    pipeline_free_arrays(p);
    p->items = calloc(n, sizeof(*p->items));
    p->dups = calloc(n, sizeof(*p->dups));
    p->post_item = calloc(n, sizeof(*p->post_item));
    if (!p->items || !p->dups || !p->post_item) {
        pipeline_free_arrays(p);
        return TW_ERR_NOMEM;
    }
    p->cap = n;
    return 0;
}

static bool pipeline_idle(const pipeline_t *p)
{
    return p->submitted == p->finished;
}

int pipeline_set_rules(pipeline_t *p, const rule_set_t *rules, const match_db_t *db)
{
    if (!pipeline_idle(p))
        return TW_ERR_INVALID; /* a worker may be scanning with the old database */
    match_scratch_t **scratches = NULL;
    int rc = pipeline_scratches_new(db, p->nworkers, &scratches);
    if (rc != 0)
        return rc;
    pipeline_scratches_free(p->scratches, p->nworkers);
    p->scratches = scratches;
    p->rules = rules;
    p->db = db;
    return 0;
}

static void pipeline_batch_join(pipeline_t *p, pipeline_batch_t *b);

void pipeline_fini(pipeline_t *p)
{
    for (size_t k = 0; k < 2; k++) /* no thread may still write a batch freed below */
        if (p->batches[k].state == PIPELINE_BATCH_ANALYSING)
            pipeline_batch_join(p, &p->batches[k]);
    metrics_rules_release(p->rule_metrics);
    pool_free(p->pool); /* joins the workers before their scratches go */
    for (size_t k = 0; k < 2; k++) {
        pipeline_batch_free(&p->batches[k]);
        for (size_t w = 0; p->batches[k].arenas && w < p->nworkers; w++)
            arena_fini(&p->batches[k].arenas[w]);
        free(p->batches[k].arenas);
    }
    pipeline_free_arrays(p);
    free(p->campaigns);
    free(p->shadow_hits);
    free(p->controls);
    pipeline_scratches_free(p->scratches, p->nworkers);
    buf_fini(&p->alerts);
    buf_fini(&p->campaign_buf);
    buf_fini(&p->control_buf);
    for (size_t i = 0; i < p->nunknown; i++) {
        free(p->unknown[i].post_id);
        free(p->unknown[i].author);
    }
    free(p->unknown);
    free(p->rechecked);
    free(p->recheck_campaigns);
    buf_fini(&p->recheck_buf);
    memset(p, 0, sizeof(*p));
}

/* The rule of the most severe match (the first of equals), or UINT32_MAX without matches. */
static uint32_t most_severe_rule(const pipeline_t *p, const match_set_t *ms)
{
    uint32_t best = UINT32_MAX;
    for (size_t i = 0; i < ms->count; i++)
        if (best == UINT32_MAX ||
            p->rules->rules[ms->hits[i].rule_index].severity > p->rules->rules[best].severity)
            best = ms->hits[i].rule_index;
    return best;
}

/* Rules may target other fields than the text (rules.h `fields:`): their values, by name.
 * "author" and "url" are the configured author and URL fields; any other name is a top-level
 * JSON string field of the post. */
int pipeline_match_post(const match_db_t *db, match_scratch_t *scratch, const post_t *post,
                        const normalized_t *norm, match_set_t *set)
{
    match_field_t fields[MATCH_MAX_FIELDS];
    size_t n = match_db_field_count(db);
    for (size_t f = 0; f < n; f++) {
        const char *name = match_db_field_name(db, f);
        fields[f].len = 0;
        if (strcmp(name, "author") == 0) {
            fields[f].text = post->author;
            fields[f].len = post->author_len;
        } else if (strcmp(name, "url") == 0) {
            fields[f].text = post->url;
            fields[f].len = post->url ? strlen(post->url) : 0;
        } else {
            fields[f].text = post_field_string(post, name, &fields[f].len);
        }
    }
    return match_scan_post_fields(db, scratch, norm, post->lang,
                                  post->lang ? strlen(post->lang) : 0, fields, n, set);
}

static void dead_letter(pipeline_result_t *r, post_reason_t reason)
{
    r->outcome = PIPELINE_DEAD_LETTER;
    r->reason = reason;
}

static double seconds_between(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* The per-post CPU stages for post i of batch b: decode, normalize, match, fingerprint.
 * Writes only slot i of the batch arrays and b->results[i], so posts run on any worker in any
 * order. Returns 0 (the post is PASS or a dead letter) or a negative tw_err_t that fails the
 * batch. */
static int pipeline_analyze_post(pipeline_batch_t *b, size_t worker, size_t i)
{
    const pipeline_t *p = b->p;
    match_scratch_t *scratch = p->scratches[worker];
    const pipeline_input_t *in = &b->inputs[i];
    pipeline_result_t *r = &b->results[i];
    memset(r, 0, sizeof(*r));
    post_t *post = &b->posts[i];
    post_reason_t reason =
        post_decode_in(&b->arenas[worker], &p->fields, (size_t)p->cfg->max_post_bytes, in->data,
                       in->len, post, r->error, sizeof(r->error));
    if (reason != POST_OK) {
        dead_letter(r, reason);
        return 0;
    }
    /* A slot's buffers would otherwise stay at the longest post it ever held (the soak's
     * heap crept up with each longer post): a short post lets a long one's buffers go. */
    if (b->norms[i].cap > PIPELINE_KEEP_NORM_CAP && post->text_len < PIPELINE_KEEP_NORM_CAP)
        normalized_fini(&b->norms[i]);
    int rc = normalize_text(post->text, post->text_len, &b->norms[i]);
    if (rc != 0) {
        /* Jansson already validated the UTF-8, so only size limits can land here */
        snprintf(r->error, sizeof(r->error), "text cannot be normalized: %s", tw_err_str(rc));
        dead_letter(r, rc == TW_ERR_UTF8 ? POST_INVALID_UTF8 : POST_TOO_LARGE);
        return 0;
    }
    rc = pipeline_match_post(p->db, scratch, post, &b->norms[i], &b->matches[i]);
    if (rc != 0)
        return rc;
    fingerprint_compute(b->norms[i].text, b->norms[i].len, &b->fps[i]);
    r->outcome = PIPELINE_PASS;
    return 0;
}

/* A worker's share of a batch's analysis. Posts are handed out in small chunks from a shared
 * counter: posts differ a lot in cost (length, hits), so a static split would leave a worker
 * idle while another finishes, and the owner can join in whenever it is free. */
static void pipeline_batch_worker(void *arg, size_t worker)
{
    pipeline_batch_t *b = arg;
    for (;;) {
        size_t first = atomic_fetch_add_explicit(&b->next, b->chunk, memory_order_relaxed);
        if (first >= b->n)
            return;
        size_t end = first + b->chunk < b->n ? first + b->chunk : b->n;
        for (size_t i = first; i < end; i++) {
            if (atomic_load_explicit(&b->error, memory_order_relaxed) != 0)
                return; /* the batch fails anyway */
            int rc = pipeline_analyze_post(b, worker, i);
            if (rc != 0) {
                int none = 0;
                atomic_compare_exchange_strong(&b->error, &none, rc);
                return;
            }
        }
    }
}

/* The owner helps with the rest of b's analysis (as worker 0) and waits for the others. */
static void pipeline_batch_join(pipeline_t *p, pipeline_batch_t *b)
{
    pipeline_batch_worker(b, 0);
    pool_wait(p->pool);
    b->state = PIPELINE_BATCH_ANALYSED;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    b->analysis_seconds = seconds_between(&b->submitted_at, &now);
}

int pipeline_submit(pipeline_t *p, const pipeline_input_t *inputs, size_t n,
                    pipeline_result_t *results)
{
    if (p->submitted - p->finished >= 2)
        return TW_ERR_INVALID;
    pipeline_batch_t *b = &p->batches[p->submitted % 2];
    int rc = pipeline_batch_reserve(b, n);
    if (rc != 0)
        return rc;
    /* The pool runs one job at a time: the batch before this one is analysed first. */
    if (p->submitted > p->finished) {
        pipeline_batch_t *prev = &p->batches[(p->submitted - 1) % 2];
        if (prev->state == PIPELINE_BATCH_ANALYSING)
            pipeline_batch_join(p, prev);
    }
    /* The slot's posts of two batches ago go, and with them their JSON, all at once (their
     * keys and alerts were only valid until the pipeline's next call). */
    for (size_t i = 0; i < b->cap; i++)
        post_clear(&b->posts[i]);
    for (size_t w = 0; w < p->nworkers; w++)
        arena_reset(&b->arenas[w]);
    b->p = p;
    b->inputs = inputs;
    b->results = results;
    b->n = n;
    /* About eight chunks per worker: few enough that the counter is not contended, enough
     * that the workers finish close together. */
    b->chunk = n / (p->nworkers * 8);
    if (b->chunk < 1)
        b->chunk = 1;
    atomic_store(&b->next, 0);
    atomic_store(&b->error, 0);
    b->state = PIPELINE_BATCH_ANALYSING;
    clock_gettime(CLOCK_MONOTONIC, &b->submitted_at);
    p->submitted++;
    /* A batch of one is not worth waking anyone: the owner analyses it when it joins. */
    if (n > 1)
        pool_start(p->pool, pipeline_batch_worker, b);
    return 0;
}

/* Counts a finished batch. Called only once the batch is done, so a batch retried (the pause
 * policy) is counted once. Per-rule counters belong to the published rule set when it is the
 * pipeline's (re-acquired when the pipeline's rules change, e.g. after a reload). */
static void pipeline_count_batch(pipeline_t *p, const pipeline_input_t *inputs, size_t n,
                                 const pipeline_result_t *results)
{
    if (p->rule_metrics_rules != p->rules || !p->rule_metrics) {
        metrics_rules_release(p->rule_metrics);
        p->rule_metrics = metrics_rules_acquire(p->rules);
        p->rule_metrics_rules = p->rule_metrics ? p->rules : NULL;
    }
    metrics_rules_t *rm = p->rule_metrics;
    uint64_t bytes = 0;
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    double now = (double)wall.tv_sec + (double)wall.tv_nsec / 1e9;
    for (size_t i = 0; i < n; i++) {
        const pipeline_result_t *r = &results[i];
        bytes += inputs[i].len;
        if (r->outcome == PIPELINE_DEAD_LETTER) {
            atomic_fetch_add_explicit(&tw_metrics.decode_failures_total[r->reason], 1,
                                      memory_order_relaxed);
            continue;
        }
        const match_set_t *ms = &p->matches[i];
        for (size_t k = 0; rm && k < ms->count; k++)
            metrics_rules_hit(rm, ms->hits[k].rule_index);
        for (size_t k = 0; rm && k < r->nshadow; k++)
            metrics_rules_shadow_hit(rm, p->shadow_hits[r->shadow_first + k].rule_index);
        if (r->outcome != PIPELINE_ALERT)
            continue;
        metrics_rules_alert(rm, most_severe_rule(p, ms));
        if (p->posts[i].has_ts) {
            double delay = now - (double)p->posts[i].ts;
            metrics_histogram_observe(&tw_metrics.alert_delay_seconds, delay > 0 ? delay : 0);
        }
    }
    atomic_fetch_add_explicit(&tw_metrics.posts_total, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&tw_metrics.post_bytes_total, bytes, memory_order_relaxed);
    metrics_histogram_observe(&tw_metrics.batch_posts, (double)n);
}

/* Appends to *records (grown as needed) and buf the campaign records dup claims for post:
 * key "campaign:<cluster>:<milestone>", value the record's JSON. */
static int encode_claims(const pipeline_t *p, const post_t *post, const dedup_result_t *dup,
                         const alert_source_t *source, buf_t *buf, pipeline_campaign_t **records,
                         size_t *n, size_t *cap)
{
    const dedup_campaign_t *camp = &p->dedup->campaign;
    for (size_t k = 0; dup->available && k < camp->nmilestones; k++) {
        if (!(dup->milestones & (1u << k)))
            continue;
        int rc = 0;
        *records = tw_array_grow(*records, cap, *n + 1, sizeof(**records), 16, &rc);
        if (rc != 0)
            return rc;
        pipeline_campaign_t *c = &(*records)[(*n)++];
        char hex[17];
        dedup_cluster_hex(dup->cluster, hex);
        c->key_offset = buf->len;
        buf_printf(buf, "campaign:%s:%llu", hex, (unsigned long long)camp->milestones[k]);
        c->key_len = buf->len - c->key_offset;
        c->value_offset = buf->len;
        alert_encode_campaign(buf, post, dup, camp->milestones[k], p->rules, source);
        c->value_len = buf->len - c->value_offset;
    }
    return buf->failed ? TW_ERR_NOMEM : 0;
}

/* Encodes the campaign records claimed by the batch's posts (results' campaign ranges are
 * filled in pipeline_process's last loop). */
static int pipeline_campaigns(pipeline_t *p, const pipeline_input_t *inputs, size_t n,
                              pipeline_result_t *results)
{
    buf_reset(&p->campaign_buf);
    p->ncampaigns = 0;
    for (size_t i = 0; i < n; i++) {
        if (p->post_item[i] == SIZE_MAX)
            continue;
        results[i].campaign_first = p->ncampaigns;
        int rc = encode_claims(p, &p->posts[i], &p->dups[p->post_item[i]], &inputs[i].source,
                               &p->campaign_buf, &p->campaigns, &p->ncampaigns, &p->campaigns_cap);
        if (rc != 0)
            return rc;
        results[i].ncampaigns = p->ncampaigns - results[i].campaign_first;
    }
    return 0;
}

static char *copy_bytes(const char *s, size_t len)
{
    char *copy = malloc(len + 1);
    if (copy) {
        memcpy(copy, s, len);
        copy[len] = '\0';
    }
    return copy;
}

/* Queues the batch's deduplicated posts for a recheck of their claims and marks them
 * claims_unknown (all or none). TW_ERR_REDIS when the queue is full, TW_ERR_NOMEM. */
static int pipeline_queue_unknown_claims(pipeline_t *p, const pipeline_input_t *inputs, size_t n,
                                         pipeline_result_t *results, size_t nitems)
{
    if (p->nunknown + nitems > p->max_unknown_claims)
        return TW_ERR_REDIS;
    int grow_rc = 0;
    p->unknown = tw_array_grow(p->unknown, &p->unknown_cap, p->nunknown + nitems,
                               sizeof(*p->unknown), 256, &grow_rc);
    if (grow_rc != 0)
        return grow_rc;
    size_t queued = p->nunknown;
    for (size_t i = 0; i < n; i++) {
        if (p->post_item[i] == SIZE_MAX)
            continue;
        const dedup_item_t *item = &p->items[p->post_item[i]];
        pipeline_unknown_claim_t *u = &p->unknown[queued];
        *u = (pipeline_unknown_claim_t){.post_id_len = item->post_id_len,
                                        .author_len = item->author_len,
                                        .ts = item->ts,
                                        .fp = *item->fp,
                                        .source = inputs[i].source};
        u->post_id = copy_bytes(item->post_id, item->post_id_len);
        u->author = item->author ? copy_bytes(item->author, item->author_len) : NULL;
        if (!u->post_id || (item->author && !u->author)) {
            free(u->post_id);
            free(u->author);
            for (size_t k = p->nunknown; k < queued; k++) {
                free(p->unknown[k].post_id);
                free(p->unknown[k].author);
            }
            return TW_ERR_NOMEM;
        }
        queued++;
    }
    p->nunknown = queued;
    atomic_store(&tw_metrics.campaign_claims_unknown, p->nunknown);
    for (size_t i = 0; i < n; i++)
        results[i].claims_unknown = p->post_item[i] != SIZE_MAX;
    return 0;
}

/* Posts rechecked per round trip: a store batch of ordinary size. */
#define PIPELINE_RECHECK_BATCH 1000

static int pipeline_reserve_rechecked(pipeline_t *p, size_t n)
{
    int rc = 0;
    p->rechecked = tw_array_grow(p->rechecked, &p->rechecked_cap, n, sizeof(*p->rechecked), 1, &rc);
    return rc != 0 ? rc : pipeline_reserve(p, n);
}

int pipeline_recheck_claims(pipeline_t *p)
{
    p->nrechecked = 0;
    p->nrecheck_campaigns = 0;
    buf_reset(&p->recheck_buf);
    if (!p->nunknown)
        return 0;
    if (!pipeline_idle(p))
        return TW_ERR_INVALID; /* the arrays below are the batch's */
    size_t n = p->nunknown < PIPELINE_RECHECK_BATCH ? p->nunknown : PIPELINE_RECHECK_BATCH;
    int rc = pipeline_reserve_rechecked(p, n);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const pipeline_unknown_claim_t *u = &p->unknown[i];
        p->items[i] =
            (dedup_item_t){u->post_id, u->post_id_len, u->author, u->author_len, u->ts, &u->fp};
    }
    rc = dedup_batch_check(p->dedup, p->items, n, p->dups);
    if (dedup_store_is_redis(p->dedup))
        atomic_store_explicit(&tw_metrics.redis_up, rc == 0, memory_order_relaxed);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const pipeline_unknown_claim_t *u = &p->unknown[i];
        post_t post = {.id = u->post_id, .id_len = u->post_id_len};
        pipeline_rechecked_t *r = &p->rechecked[i];
        r->source = u->source;
        r->campaign_first = p->nrecheck_campaigns;
        rc =
            encode_claims(p, &post, &p->dups[i], &u->source, &p->recheck_buf, &p->recheck_campaigns,
                          &p->nrecheck_campaigns, &p->recheck_campaigns_cap);
        if (rc != 0) {
            p->nrecheck_campaigns = 0;
            return rc; /* still queued: the next call redoes them (replays) */
        }
        r->ncampaigns = p->nrecheck_campaigns - r->campaign_first;
    }
    p->nrechecked = n;
    for (size_t i = 0; i < n; i++) {
        free(p->unknown[i].post_id);
        free(p->unknown[i].author);
    }
    memmove(p->unknown, p->unknown + n, (p->nunknown - n) * sizeof(*p->unknown));
    p->nunknown -= n;
    atomic_store(&tw_metrics.campaign_claims_unknown, p->nunknown);
    return 0;
}

void pipeline_forget_claims(pipeline_t *p, int32_t partition)
{
    size_t kept = 0;
    for (size_t i = 0; i < p->nunknown; i++) {
        pipeline_unknown_claim_t *u = &p->unknown[i];
        if (u->source.partition == partition) {
            free(u->post_id);
            free(u->author);
            continue;
        }
        p->unknown[kept++] = *u;
    }
    p->nunknown = kept;
    atomic_store(&tw_metrics.campaign_claims_unknown, p->nunknown);
}

void pipeline_abandon(pipeline_t *p)
{
    while (!pipeline_idle(p)) {
        pipeline_batch_t *b = &p->batches[p->finished % 2];
        if (b->state == PIPELINE_BATCH_ANALYSING)
            pipeline_batch_join(p, b);
        b->state = PIPELINE_BATCH_FREE;
        p->finished++;
    }
}

int pipeline_process(pipeline_t *p, const pipeline_input_t *inputs, size_t n,
                     pipeline_result_t *results)
{
    if (!pipeline_idle(p))
        return TW_ERR_INVALID;
    int rc = pipeline_submit(p, inputs, n, results);
    return rc != 0 ? rc : pipeline_finish(p);
}

void pipeline_set_flood(pipeline_t *p, flood_guard_t *flood)
{
    p->flood = flood;
}

/* Moves the hits of shadow rules, and of live rules the flood guard mutes now, out of ms into
 * p->shadow_hits (both keep rule order), and counts the post in the flood guard with the
 * hits of its non-shadow rules (muted ones too: their share stays measured while muted). */
static int pipeline_split_shadow(pipeline_t *p, match_set_t *ms, pipeline_result_t *r, time_t now)
{
    r->shadow_first = p->nshadow_hits;
    r->nshadow = 0;
    uint32_t guarded[MATCH_MAX_RULES_PER_POST];
    size_t nguarded = 0, kept = 0;
    for (size_t k = 0; k < ms->count; k++) {
        const match_rule_hit_t *hit = &ms->hits[k];
        bool shadow_rule = p->rules->rules[hit->rule_index].shadow;
        if (!shadow_rule && nguarded < MATCH_MAX_RULES_PER_POST)
            guarded[nguarded++] = hit->rule_index;
        if (!shadow_rule && !(p->flood && flood_guard_muted(p->flood, hit->rule_index, now))) {
            ms->hits[kept++] = *hit;
            continue;
        }
        int rc = 0;
        p->shadow_hits = tw_array_grow(p->shadow_hits, &p->shadow_hits_cap, p->nshadow_hits + 1,
                                       sizeof(*p->shadow_hits), 64, &rc);
        if (rc != 0)
            return rc;
        p->shadow_hits[p->nshadow_hits++] = *hit;
        r->nshadow++;
    }
    ms->count = kept;
    if (p->flood)
        flood_guard_count(p->flood, guarded, nguarded, now);
    return 0;
}

/* A rule the flood guard just muted on this worker's decision: the log line and the
 * rule_muted record (key "rule_muted:<rule>") for the campaign topic. */
static void pipeline_on_mute(void *arg, const flood_mute_t *m)
{
    pipeline_t *p = arg;
    log_warn("flood guard: rule %s muted for %lds: it hit %.2f%% of %llu posts in the last %lds "
             "(%s counts; limit %.2f%%); its hits go to shadow until then or a reload that "
             "changes it",
             m->rule_id, (long)(m->muted_until - time(NULL)), m->share * 100,
             (unsigned long long)m->posts, p->cfg->flood_window_s,
             m->fleet ? "fleet" : "this worker's", m->max_share * 100);
    if (!m->reported_here)
        return;
    int rc = 0;
    p->controls = tw_array_grow(p->controls, &p->controls_cap, p->ncontrols + 1,
                                sizeof(*p->controls), 4, &rc);
    if (rc != 0) {
        log_error("flood guard: out of memory; the rule_muted record of %s is lost", m->rule_id);
        return;
    }
    pipeline_campaign_t *c = &p->controls[p->ncontrols++];
    c->key_offset = p->control_buf.len;
    buf_append_str(&p->control_buf, "rule_muted:");
    buf_append_str(&p->control_buf, m->rule_id);
    c->key_len = p->control_buf.len - c->key_offset;
    c->value_offset = p->control_buf.len;
    buf_append_str(&p->control_buf, "{\"type\":\"rule_muted\",\"rule\":");
    buf_append_json_string(&p->control_buf, m->rule_id, strlen(m->rule_id));
    buf_printf(&p->control_buf,
               ",\"share\":%.6f,\"hits\":%llu,\"posts\":%llu,\"window_s\":%ld,"
               "\"muted_until\":%lld,\"decided_on\":\"%s\",\"rules_version\":\"%s\"}",
               m->share, (unsigned long long)m->hits, (unsigned long long)m->posts,
               p->cfg->flood_window_s, (long long)m->muted_until, m->fleet ? "fleet" : "worker",
               p->rules->version);
    c->value_len = p->control_buf.len - c->value_offset;
}

void pipeline_flood_tick(pipeline_t *p, time_t now)
{
    p->ncontrols = 0;
    buf_reset(&p->control_buf);
    if (!p->flood)
        return;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    int64_t now_ms = (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
    if (p->flood_tick_ms && now_ms - p->flood_tick_ms < 1000)
        return;
    p->flood_tick_ms = now_ms;
    if (flood_guard_tick(p->flood, now, pipeline_on_mute, p) == TW_ERR_REDIS)
        log_ratelimited(LOG_LEVEL_WARN, "flood.redis", 60,
                        "flood guard: Redis unavailable; deciding on this worker's counts");
    if (p->rule_metrics && p->rule_metrics_rules == p->rules)
        for (uint32_t r = 0; r < p->rules->nrules; r++)
            metrics_rules_set_muted(p->rule_metrics, r, flood_guard_muted(p->flood, r, now));
}

/* The store's items in input order, whichever worker analysed each post; returns their
 * number. Posts that are only links, mentions or punctuation all share one fingerprint:
 * clustering them would make one giant meaningless campaign, so they are left out. */
static size_t pipeline_dedup_items(pipeline_t *p, const pipeline_result_t *results, size_t n)
{
    int64_t now = (int64_t)time(NULL);
    size_t nitems = 0;
    for (size_t i = 0; i < n; i++) {
        p->post_item[i] = SIZE_MAX;
        if (results[i].outcome != PIPELINE_PASS || fingerprint_is_empty(&p->fps[i]))
            continue;
        const post_t *post = &p->posts[i];
        dedup_item_t *item = &p->items[nitems];
        item->post_id = post->id;
        item->post_id_len = post->id_len;
        item->author = post->author;
        item->author_len = post->author_len;
        item->ts = post->has_ts ? post->ts : now;
        item->fp = &p->fps[i];
        p->post_item[i] = nitems++;
    }
    return nitems;
}

/* One round trip for the whole batch. A store failure costs duplicate information, not
 * posts: rule alerts still go out, marked as such (fail-open), or, with the pause policy,
 * the caller holds the batch until the store answers again (TW_ERR_REDIS). */
static int pipeline_dedup(pipeline_t *p, const pipeline_input_t *inputs, size_t n,
                          pipeline_result_t *results, size_t nitems)
{
    int dedup_rc = 0;
    if (nitems) {
        bool redis = dedup_store_is_redis(p->dedup);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        dedup_rc = dedup_batch_check(p->dedup, p->items, nitems, p->dups);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (redis) {
            metrics_histogram_observe(&tw_metrics.redis_seconds, seconds_between(&t0, &t1));
            atomic_store_explicit(&tw_metrics.redis_up, dedup_rc == 0, memory_order_relaxed);
        }
    }
    if (dedup_rc == 0)
        return 0;
    atomic_fetch_add(&tw_metrics.redis_errors_total, 1);
    if (p->cfg->dedup_on_unavailable == CONFIG_UNAVAILABLE_PAUSE)
        return TW_ERR_REDIS;
    /* The store may have run the claims before its reply was lost (a timeout, a master
     * failing), so Redis may name one of these posts a milestone's owner: only a replay of
     * that post gets the claim back. The posts are queued for a recheck and their offsets
     * held until it is published; past the queue's bound the batch is held as under pause. */
    int rc;
    if (p->dedup->campaign.nmilestones &&
        (rc = pipeline_queue_unknown_claims(p, inputs, n, results, nitems)) != 0)
        return rc;
    atomic_fetch_add(&tw_metrics.dedup_unavailable_total, nitems);
    /* This worker's own memory still recognises repeats it saw itself (for
     * dedup.alert_min_count); the alerts say the fleet-wide answer was unavailable. */
    if (p->fallback && dedup_batch_check(p->fallback, p->items, nitems, p->dups) == 0) {
        for (size_t i = 0; i < nitems; i++) {
            p->dups[i].available = false;
            p->dups[i].local = true;
            p->dups[i].milestones = 0; /* campaigns are fleet-wide decisions only */
        }
    }
    return 0;
}

/* Decides and encodes one decoded post: its shadow alert (shadow and muted rules' hits, when
 * a shadow topic is set) and its alert (live hits, or a cluster past dedup.alert_min_count). */
static int pipeline_decide(pipeline_t *p, size_t i, const pipeline_input_t *input,
                           pipeline_result_t *r, time_t now)
{
    const dedup_result_t *dup = p->post_item[i] == SIZE_MAX ? NULL : &p->dups[p->post_item[i]];
    match_set_t *ms = &p->matches[i];
    int rc = pipeline_split_shadow(p, ms, r, now);
    if (rc != 0)
        return rc;
    r->dup = dup;
    if (dup && dup->available && dup->count > 1 && !dup->replay)
        atomic_fetch_add(&tw_metrics.duplicates_total, 1);
    if (r->nshadow && p->cfg->shadow_topic[0]) {
        match_set_t shadow = {
            .hits = p->shadow_hits + r->shadow_first, .count = r->nshadow, .cap = r->nshadow};
        r->key = p->posts[i].id;
        r->key_len = p->posts[i].id_len;
        r->shadow_offset = p->alerts.len;
        alert_encode_shadow(&p->alerts, (size_t)p->cfg->alert_max_bytes, &p->posts[i], &p->norms[i],
                            &shadow, p->rules, dup, &input->source);
        r->shadow_len = p->alerts.len - r->shadow_offset;
    }
    bool campaign = dup && (dup->available || dup->local) && p->cfg->dedup_alert_min_count > 0 &&
                    dup->count >= (uint64_t)p->cfg->dedup_alert_min_count;
    if (ms->count == 0 && !campaign)
        return 0;
    r->outcome = PIPELINE_ALERT;
    r->key = p->posts[i].id;
    r->key_len = p->posts[i].id_len;
    r->alert_offset = p->alerts.len;
    alert_encode_capped(&p->alerts, (size_t)p->cfg->alert_max_bytes, &p->posts[i], &p->norms[i], ms,
                        p->rules, dup, &input->source);
    r->alert_len = p->alerts.len - r->alert_offset;
    return 0;
}

int pipeline_finish(pipeline_t *p)
{
    if (pipeline_idle(p))
        return TW_ERR_INVALID;
    pipeline_batch_t *b = &p->batches[p->finished % 2];
    if (b->state == PIPELINE_BATCH_ANALYSING)
        pipeline_batch_join(p, b);
    metrics_histogram_observe(&tw_metrics.scan_seconds, b->analysis_seconds);
    b->state = PIPELINE_BATCH_FREE;
    p->finished++;
    const pipeline_input_t *inputs = b->inputs;
    pipeline_result_t *results = b->results;
    size_t n = b->n;
    p->posts = b->posts;
    p->norms = b->norms;
    p->matches = b->matches;
    p->fps = b->fps;
    int rc = atomic_load(&b->error);
    if (rc == 0)
        rc = pipeline_reserve(p, n);
    if (rc != 0)
        return rc;
    buf_reset(&p->alerts);
    size_t nitems = pipeline_dedup_items(p, results, n);
    if ((rc = pipeline_dedup(p, inputs, n, results, nitems)) != 0)
        return rc;
    if ((rc = pipeline_campaigns(p, inputs, n, results)) != 0)
        return rc;
    p->nshadow_hits = 0;
    time_t now = time(NULL);
    for (size_t i = 0; i < n; i++)
        if (results[i].outcome == PIPELINE_PASS &&
            (rc = pipeline_decide(p, i, &inputs[i], &results[i], now)) != 0)
            return rc;
    if (p->alerts.failed)
        return TW_ERR_NOMEM;
    pipeline_count_batch(p, inputs, n, results);
    return 0;
}
