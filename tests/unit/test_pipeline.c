/* The pipeline over the in-process duplicate store: any number of worker threads gives the
 * same results, byte for byte and in input order, as one thread, across batches and a rules
 * hot swap between batches; and the worker pool itself. Run under -DSANITIZE=thread too. */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "pipeline/pipeline.h"
#include "pipeline/pool.h"
#include "rules/rules.h"
#include "tw_test.h"
#include "util/buf.h"

static const char rules_before[] = "rules:\n"
                                   "  - id: before.scam\n"
                                   "    category: scam\n"
                                   "    severity: high\n"
                                   "    keywords: [\"free giveaway\", \"claim your prize\"]\n"
                                   "    regex: ['send\\s+\\d+\\s*btc\\b']\n"
                                   "  - id: before.spam\n"
                                   "    category: spam\n"
                                   "    severity: low\n"
                                   "    keywords: [\"cheap meds\"]\n"
                                   "    squash: true\n";

static const char rules_after[] = "rules:\n"
                                  "  - id: after.scam\n"
                                  "    category: scam\n"
                                  "    severity: critical\n"
                                  "    keywords: [\"free giveaway\", \"wire transfer fee\"]\n"
                                  "  - id: after.author\n"
                                  "    category: spam\n"
                                  "    severity: medium\n"
                                  "    fields: [author]\n"
                                  "    keywords: [\"spammer\"]\n";

typedef struct {
    rule_set_t *rules;
    match_db_t *db;
} compiled_t;

static int compile_rules(const char *yaml, compiled_t *c)
{
    tw_diag_t diag;
    tw_diag_init(&diag);
    int rc = rule_set_load_buffer("inline.yaml", yaml, strlen(yaml), &c->rules, &diag);
    if (rc == 0)
        rc = match_db_compile(c->rules, &c->db, &diag);
    for (size_t i = 0; i < diag.count; i++)
        fprintf(stderr, "    diag: %s\n", diag.lines[i]);
    tw_diag_fini(&diag);
    return rc;
}

static void compiled_free(compiled_t *c)
{
    match_db_free(c->db);
    rule_set_free(c->rules);
}

/* A varied stream: rule hits, near-duplicate waves (clusters, campaigns, alert_min_count),
 * non-ASCII and obfuscated text, undecodable lines, posts with nothing to fingerprint. */
#define NPOSTS 1000

static char *make_post(size_t i)
{
    static const char *texts[] = {
        "Lovely sunset at the beach today, number %zu",
        "FREE GIVEAWAY for everyone who follows, round %zu",
        "send 3 btc to this wallet now and get double back %zu",
        "Ch3ap m.e.d.s delivered overnight, order %zu",
        "Join the crypto club, the same message again and again",
        "Привет, как дела? Сообщение номер %zu",
        "مرحبا بالجميع، هذه رسالة رقم %zu",
        "pay the wire transfer fee and receive the inheritance (%zu)",
        "https://example.com/%zu",
        "ｆｒｅｅ ｇｉｖｅａｗａｙ ticket %zu",
    };
    char text[256], *out = NULL;
    size_t kind = (i * 7) % 12;
    if (kind == 10) {
        out = strdup("{\"id\": \"broken\", \"text\": ");
        return out;
    }
    if (kind == 11) {
        if (asprintf(&out, "{\"id\": \"p%zu\", \"text\": 42}", i) < 0)
            return NULL;
        return out;
    }
    snprintf(text, sizeof(text), texts[kind], i % 5 == 0 ? (size_t)5 : i);
    const char *author = i % 13 == 0 ? "spammer" : (i % 3 == 0 ? "alice" : "bob");
    if (asprintf(&out, "{\"id\": \"p%zu\", \"text\": \"%s\", \"author\": \"%s %zu\", \"ts\": %zu}",
                 i, text, author, i % 4, (size_t)1732780800 + i) < 0)
        return NULL;
    return out;
}

/* Everything the pipeline answered, in order: outcome, reason, key, alert, campaigns. */
static void transcript_batch(buf_t *t, const pipeline_t *p, const pipeline_result_t *results,
                             size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const pipeline_result_t *r = &results[i];
        buf_printf(t, "%zu outcome=%d reason=%d key=", i, (int)r->outcome, (int)r->reason);
        if (r->outcome == PIPELINE_ALERT) {
            buf_append(t, r->key, r->key_len);
            buf_append_str(t, " alert=");
            buf_append(t, p->alerts.data + r->alert_offset, r->alert_len);
        } else if (r->outcome == PIPELINE_DEAD_LETTER) {
            buf_append_str(t, r->error);
        }
        for (size_t k = 0; k < r->ncampaigns; k++) {
            const pipeline_campaign_t *c = &p->campaigns[r->campaign_first + k];
            buf_append_str(t, " campaign=");
            buf_append(t, p->campaign_buf.data + c->key_offset, c->key_len);
            buf_append(t, p->campaign_buf.data + c->value_offset, c->value_len);
        }
        buf_append_str(t, "\n");
    }
}

/* Runs every post through a pipeline of `threads` workers in batches of batch (the last
 * one shorter), swapping to `after`'s rules once swap_at posts were processed; the
 * transcript goes to t. overlap: each batch is submitted before the previous one is finished
 * (as scan and run do), else pipeline_process does one batch at a time. OVERLAP_ABANDON:
 * also, every third batch is taken back after the one before it finished and submitted again
 * (as run does when the store pauses it). Returns 0 or the first error. */
enum { NO_OVERLAP, OVERLAP, OVERLAP_ABANDON };
static int run_pipeline(long threads, size_t batch, size_t swap_at, int overlap,
                        const compiled_t *before, const compiled_t *after, char **posts, buf_t *t)
{
    config_t cfg;
    if (config_init(&cfg) != 0)
        return TW_ERR_NOMEM;
    cfg.threads = threads;
    cfg.dedup_alert_min_count = 4;
    dedup_store_t *store = NULL;
    dedup_campaign_t campaign;
    int rc = dedup_campaign_parse("3,10", 1, &campaign, NULL);
    if (rc == 0)
        rc = dedup_memory_new(3600, 1 << 16, &store);
    pipeline_t pipe;
    bool pipe_ready = false;
    pipeline_input_t *inputs[2] = {calloc(batch, sizeof(pipeline_input_t)),
                                   calloc(batch, sizeof(pipeline_input_t))};
    pipeline_result_t *results[2] = {calloc(batch, sizeof(pipeline_result_t)),
                                     calloc(batch, sizeof(pipeline_result_t))};
    if (rc == 0 && (!inputs[0] || !inputs[1] || !results[0] || !results[1]))
        rc = TW_ERR_NOMEM;
    if (rc == 0) {
        dedup_campaign_set(store, &campaign);
        rc = pipeline_init(&pipe, &cfg, before->rules, before->db, store);
        pipe_ready = rc == 0;
    }
    bool swapped = false;
    size_t pending_n = 0, pending_slot = 0; /* the batch submitted and not finished (overlap) */
    size_t slot = 0;
    for (size_t first = 0; rc == 0 && first < NPOSTS; first += batch, slot ^= 1) {
        if (!swapped && first >= swap_at) {
            if (pending_n) { /* rules change only with no batch in flight */
                if ((rc = pipeline_finish(&pipe)) != 0)
                    break;
                transcript_batch(t, &pipe, results[pending_slot], pending_n);
                pending_n = 0;
            }
            rc = pipeline_set_rules(&pipe, after->rules, after->db);
            swapped = true;
            buf_append_str(t, "-- swapped\n");
        }
        size_t n = NPOSTS - first < batch ? NPOSTS - first : batch;
        for (size_t i = 0; i < n; i++) {
            inputs[slot][i].data = posts[first + i];
            inputs[slot][i].len = strlen(posts[first + i]);
            inputs[slot][i].source =
                (alert_source_t){.file = "test", .line = (int64_t)(first + i + 1)};
        }
        if (rc != 0)
            break;
        if (!overlap) {
            if ((rc = pipeline_process(&pipe, inputs[slot], n, results[slot])) == 0)
                transcript_batch(t, &pipe, results[slot], n);
            continue;
        }
        if ((rc = pipeline_submit(&pipe, inputs[slot], n, results[slot])) != 0)
            break;
        /* A swap now would pull the database from under the batch just submitted. */
        if (pipeline_set_rules(&pipe, after->rules, after->db) != TW_ERR_INVALID) {
            fprintf(stderr, "  pipeline_set_rules did not refuse a swap with a batch in flight\n");
            rc = TW_ERR_INVALID;
        }
        if (rc == 0 && pending_n) {
            if ((rc = pipeline_finish(&pipe)) == 0)
                transcript_batch(t, &pipe, results[pending_slot], pending_n);
        }
        if (rc == 0 && overlap == OVERLAP_ABANDON && (first / batch) % 3 == 0) {
            pipeline_abandon(&pipe);
            /* a swap is refused unless the pipeline is idle */
            if (pipeline_set_rules(&pipe, pipe.rules, pipe.db) != 0) {
                fprintf(stderr, "  the pipeline is not idle after pipeline_abandon\n");
                rc = TW_ERR_INVALID;
            } else {
                rc = pipeline_submit(&pipe, inputs[slot], n, results[slot]);
            }
        }
        pending_n = n;
        pending_slot = slot;
    }
    if (rc == 0 && pending_n && (rc = pipeline_finish(&pipe)) == 0)
        transcript_batch(t, &pipe, results[pending_slot], pending_n);
    if (pipe_ready)
        pipeline_fini(&pipe);
    dedup_store_free(store);
    for (size_t k = 0; k < 2; k++) {
        free(inputs[k]);
        free(results[k]);
    }
    config_fini(&cfg);
    return rc;
}

static char **make_posts(void)
{
    char **posts = calloc(NPOSTS, sizeof(*posts));
    for (size_t i = 0; posts && i < NPOSTS; i++)
        if (!(posts[i] = make_post(i)))
            return NULL; /* the test fails on it; the leak does not matter then */
    return posts;
}

static void free_posts(char **posts)
{
    for (size_t i = 0; posts && i < NPOSTS; i++)
        free(posts[i]);
    free(posts);
}

TW_TEST(threads_give_the_same_results_in_the_same_order)
{
    compiled_t before = {0}, after = {0};
    TW_ASSERT_INT_EQ(compile_rules(rules_before, &before), 0);
    TW_ASSERT_INT_EQ(compile_rules(rules_after, &after), 0);
    char **posts = make_posts();
    TW_ASSERT(posts);
    buf_t one, many;
    buf_init(&one);
    buf_init(&many);
    /* Batches of 97: uneven chunks; the swap falls between the 4th and 5th batch. */
    TW_ASSERT_INT_EQ(run_pipeline(1, 97, 388, NO_OVERLAP, &before, &after, posts, &one), 0);
    TW_ASSERT(!one.failed);
    /* Both rule sets answered, and every kind of outcome happened. */
    TW_ASSERT(strstr(one.data, "before.scam") != NULL);
    TW_ASSERT(strstr(one.data, "after.author") != NULL);
    TW_ASSERT(strstr(strstr(one.data, "-- swapped"), "before.") == NULL);
    TW_ASSERT(strstr(one.data, "campaign=campaign:") != NULL);
    TW_ASSERT(strstr(one.data, "outcome=2") != NULL);
    static const long thread_counts[] = {1, 2, 3, 8};
    for (size_t k = 0; k < sizeof(thread_counts) / sizeof(thread_counts[0]); k++) {
        for (int overlap = NO_OVERLAP; overlap <= OVERLAP_ABANDON; overlap++) {
            long threads = thread_counts[k];
            buf_reset(&many);
            TW_ASSERT_INT_EQ(run_pipeline(threads, 97, 388, overlap, &before, &after, posts, &many),
                             0);
            TW_ASSERT(!many.failed);
            if (one.len != many.len || memcmp(one.data, many.data, one.len) != 0)
                TW_FAIL("%ld threads%s: transcript differs from 1 thread's", threads,
                        overlap == OVERLAP_ABANDON ? ", batches overlapped and taken back"
                        : overlap                  ? ", batches overlapped"
                                                   : "");
        }
    }
    /* Batches smaller than the pool, down to one post. */
    buf_reset(&many);
    TW_ASSERT_INT_EQ(run_pipeline(8, 1, 388, OVERLAP, &before, &after, posts, &many), 0);
    TW_ASSERT(strstr(many.data, "after.author") != NULL);
    buf_fini(&one);
    buf_fini(&many);
    free_posts(posts);
    compiled_free(&before);
    compiled_free(&after);
}

TW_TEST(default_threads_is_the_usable_cpu_count)
{
    TW_ASSERT(pipeline_default_threads() >= 1);
    TW_ASSERT_INT_EQ(pipeline_default_threads(), pool_cpu_count());
}

typedef struct {
    atomic_uint calls[8];
    atomic_ulong sum;
} pool_probe_t;

static void pool_probe_job(void *arg, size_t worker)
{
    pool_probe_t *probe = arg;
    atomic_fetch_add(&probe->calls[worker], 1);
    atomic_fetch_add(&probe->sum, worker + 1);
}

TW_TEST(pool_runs_each_worker_once_per_job)
{
    pool_t *pool = NULL;
    TW_ASSERT_INT_EQ(pool_new(4, &pool), 0);
    TW_ASSERT_INT_EQ(pool_workers(pool), 4);
    pool_probe_t probe;
    memset(&probe, 0, sizeof(probe));
    for (int job = 0; job < 200; job++)
        pool_run(pool, pool_probe_job, &probe);
    for (size_t w = 0; w < 4; w++)
        TW_ASSERT_INT_EQ(atomic_load(&probe.calls[w]), 200);
    TW_ASSERT_INT_EQ(atomic_load(&probe.sum), 200 * (1 + 2 + 3 + 4));
    pool_free(pool);

    /* No pool is the caller alone. */
    memset(&probe, 0, sizeof(probe));
    TW_ASSERT_INT_EQ(pool_workers(NULL), 1);
    pool_run(NULL, pool_probe_job, &probe);
    TW_ASSERT_INT_EQ(atomic_load(&probe.calls[0]), 1);
}

/* Shadow rules never alert on the output; with a shadow topic their hits become a shadow
 * alert. A live rule past the flood guard's share is muted after the tick that sees it: one
 * rule_muted record, and from the next batch its hits are shadow hits too. */
TW_TEST(shadow_rules_and_the_flood_guard)
{
    static const char yaml[] = "rules:\n"
                               "  - {id: live.scam, category: scam, severity: high,\n"
                               "     keywords: [\"claim your prize\"]}\n"
                               "  - {id: trial.free, category: spam, severity: low,\n"
                               "     keywords: [free], shadow: true}\n"
                               "  - {id: broad.today, category: spam, severity: low,\n"
                               "     keywords: [today]}\n";
    compiled_t c;
    TW_ASSERT_INT_EQ(compile_rules(yaml, &c), 0);
    config_t cfg;
    TW_ASSERT_INT_EQ(config_init(&cfg), 0);
    cfg.threads = 1;
    free(cfg.shadow_topic);
    cfg.shadow_topic = strdup("alerts.shadow");
    cfg.flood_max_share = 0.5;
    cfg.flood_min_posts = 10;
    dedup_store_t *store = NULL;
    TW_ASSERT_INT_EQ(dedup_memory_new(3600, 1 << 10, &store), 0);
    pipeline_t pipe;
    TW_ASSERT_INT_EQ(pipeline_init(&pipe, &cfg, c.rules, c.db, store), 0);
    flood_limits_t limits = {.max_share = 0.5, .min_posts = 10, .window_s = 300, .cooloff_s = 600};
    flood_guard_t *guard = flood_guard_new(&limits, "test", NULL);
    TW_ASSERT(guard && flood_guard_set_rules(guard, c.rules, NULL) == 0);
    pipeline_set_flood(&pipe, guard);

    char texts[20][96];
    pipeline_input_t in[20];
    pipeline_result_t res[20];
    for (int i = 0; i < 20; i++) {
        snprintf(texts[i], sizeof texts[i], "{\"id\":\"p%d\",\"text\":\"%s number %d today\"}", i,
                 i == 0 ? "claim your prize, free" : "nice weather", i);
        in[i] = (pipeline_input_t){texts[i], strlen(texts[i]), {.file = "t", .line = i + 1}};
    }
    TW_ASSERT_INT_EQ(pipeline_process(&pipe, in, 20, res), 0);
    pipeline_flood_tick(&pipe, time(NULL));
    /* post 0: live.scam alerts, trial.free is a shadow hit, broad.today still live */
    TW_ASSERT_INT_EQ(res[0].outcome, PIPELINE_ALERT);
    const char *alert = pipe.alerts.data + res[0].alert_offset;
    TW_ASSERT(memmem(alert, res[0].alert_len, "live.scam", 9));
    TW_ASSERT(!memmem(alert, res[0].alert_len, "trial.free", 10));
    TW_ASSERT_INT_EQ(res[0].nshadow, 1);
    TW_ASSERT(res[0].shadow_len > 0);
    const char *shadow = pipe.alerts.data + res[0].shadow_offset;
    TW_ASSERT(strncmp(shadow, "{\"shadow\":true,\"post_id\":\"p0\"", 29) == 0);
    TW_ASSERT(memmem(shadow, res[0].shadow_len, "trial.free", 10));
    /* broad.today hit all 20 posts (100% > 50%): the tick after the batch muted it */
    TW_ASSERT_INT_EQ(pipe.ncontrols, 1);
    const char *record = pipe.control_buf.data + pipe.controls[0].value_offset;
    TW_ASSERT(memmem(record, pipe.controls[0].value_len, "\"rule\":\"broad.today\"", 20));
    TW_ASSERT(flood_guard_muted(guard, 2, time(NULL)));
    /* next batch: broad.today's hits are shadow hits; no alert for posts without other hits */
    TW_ASSERT_INT_EQ(pipeline_process(&pipe, in + 1, 5, res), 0);
    pipeline_flood_tick(&pipe, time(NULL)); /* within the second: not due, no record */
    TW_ASSERT_INT_EQ(res[0].outcome, PIPELINE_PASS);
    TW_ASSERT_INT_EQ(res[0].nshadow, 1);
    TW_ASSERT_STR_EQ(c.rules->rules[pipe.shadow_hits[res[0].shadow_first].rule_index].id,
                     "broad.today");
    TW_ASSERT_INT_EQ(pipe.ncontrols, 0); /* reported once */
    pipeline_fini(&pipe);
    flood_guard_free(guard);
    dedup_store_free(store);
    config_fini(&cfg);
    compiled_free(&c);
}

/* A store whose reply can be lost after it did the work (a Redis timeout, a master failing
 * after running the script), or that fails before doing anything (Redis down). */
typedef enum { FAKE_UP, FAKE_REPLY_LOST, FAKE_DOWN } fake_mode_t;

typedef struct {
    dedup_store_t base; /* first: the pipeline sees a dedup_store_t */
    dedup_store_t *inner;
    fake_mode_t mode;
} fake_store_t;

static int fake_check_batch(dedup_store_t *store, const dedup_item_t *items, size_t n,
                            dedup_result_t *results)
{
    fake_store_t *f = (fake_store_t *)store;
    int rc = f->mode == FAKE_DOWN ? TW_ERR_REDIS : dedup_batch_check(f->inner, items, n, results);
    if (f->mode == FAKE_UP)
        return rc;
    for (size_t i = 0; i < n; i++)
        results[i] = (dedup_result_t){.available = false};
    return TW_ERR_REDIS;
}

static void fake_free(dedup_store_t *store)
{
    (void)store;
}

static const dedup_store_ops_t fake_ops = {.name = "fake-redis",
                                           .kind = DEDUP_STORE_REDIS,
                                           .check_batch = fake_check_batch,
                                           .free = fake_free};

static void set_input(pipeline_input_t *in, char *text, size_t size, int id, int64_t offset)
{
    snprintf(text, size,
             "{\"id\":\"p%d\",\"author\":\"a%d\",\"text\":\"join the big "
             "giveaway today at our shop\"}",
             id, id);
    *in = (pipeline_input_t){
        text, strlen(text), {.topic = "posts", .partition = 0, .offset = offset}};
}

/* Issue 12, 2: the post that claimed a milestone while the store's reply was lost gets its
 * campaign record once the store answers again (a replay of its own claim), and nobody else
 * claims it; before, the post went out without claims and the record was never published. */
TW_TEST(claims_lost_with_the_reply_are_rechecked)
{
    compiled_t c;
    TW_ASSERT_INT_EQ(compile_rules(rules_before, &c), 0);
    config_t cfg;
    TW_ASSERT_INT_EQ(config_init(&cfg), 0);
    cfg.threads = 1;
    TW_ASSERT_INT_EQ(cfg.dedup_on_unavailable, CONFIG_UNAVAILABLE_FAIL_OPEN);
    fake_store_t fake = {.base = {.ops = &fake_ops}};
    TW_ASSERT_INT_EQ(dedup_memory_new(3600, 1 << 10, &fake.inner), 0);
    dedup_campaign_t campaign;
    TW_ASSERT_INT_EQ(dedup_campaign_parse("3", 1, &campaign, NULL), 0);
    dedup_campaign_set(&fake.base, &campaign);
    dedup_campaign_set(fake.inner, &campaign);
    pipeline_t pipe;
    TW_ASSERT_INT_EQ(pipeline_init(&pipe, &cfg, c.rules, c.db, &fake.base), 0);

    char texts[5][160];
    pipeline_input_t in[5];
    pipeline_result_t res[5];
    for (int i = 0; i < 5; i++)
        set_input(&in[i], texts[i], sizeof texts[i], i, 100 + i);
    TW_ASSERT_INT_EQ(pipeline_process(&pipe, in, 2, res), 0); /* members 1 and 2 */
    TW_ASSERT(!res[0].claims_unknown && !res[1].claims_unknown);
    TW_ASSERT_INT_EQ(pipeline_unknown_claims(&pipe), 0);

    /* Member 3 claims milestone 3 in the store, and the reply is lost: fail-open goes on. */
    fake.mode = FAKE_REPLY_LOST;
    TW_ASSERT_INT_EQ(pipeline_process(&pipe, in + 2, 1, res), 0);
    TW_ASSERT_INT_EQ(res[0].ncampaigns, 0);
    TW_ASSERT(res[0].claims_unknown);
    TW_ASSERT_INT_EQ(pipeline_unknown_claims(&pipe), 1);
    TW_ASSERT_INT_EQ(atomic_load(&tw_metrics.campaign_claims_unknown), 1);

    /* Still down: the post stays queued, nothing to publish. */
    fake.mode = FAKE_DOWN;
    TW_ASSERT_INT_EQ(pipeline_recheck_claims(&pipe), TW_ERR_REDIS);
    TW_ASSERT_INT_EQ(pipe.nrechecked, 0);
    TW_ASSERT_INT_EQ(pipeline_unknown_claims(&pipe), 1);

    /* Back: the recheck replays the post and gets its claim back, with its own offset. */
    fake.mode = FAKE_UP;
    TW_ASSERT_INT_EQ(pipeline_recheck_claims(&pipe), 0);
    TW_ASSERT_INT_EQ(pipeline_unknown_claims(&pipe), 0);
    TW_ASSERT_INT_EQ(atomic_load(&tw_metrics.campaign_claims_unknown), 0);
    TW_ASSERT_INT_EQ(pipe.nrechecked, 1);
    const pipeline_rechecked_t *r = &pipe.rechecked[0];
    TW_ASSERT_INT_EQ(r->source.partition, 0);
    TW_ASSERT_INT_EQ(r->source.offset, 102);
    TW_ASSERT_INT_EQ(r->ncampaigns, 1);
    const pipeline_campaign_t *rec = &pipe.recheck_campaigns[r->campaign_first];
    const char *key = pipe.recheck_buf.data + rec->key_offset;
    const char *value = pipe.recheck_buf.data + rec->value_offset;
    TW_ASSERT(rec->key_len > 11 && memcmp(key, "campaign:", 9) == 0);
    TW_ASSERT(memcmp(key + rec->key_len - 2, ":3", 2) == 0);
    TW_ASSERT(memmem(value, rec->value_len, "\"post_id\":\"p2\"", 14));
    TW_ASSERT(memmem(value, rec->value_len, "\"replay\":true", 13));
    TW_ASSERT_INT_EQ(pipeline_recheck_claims(&pipe), 0); /* nothing left */
    TW_ASSERT_INT_EQ(pipe.nrechecked, 0);

    /* Member 4: the milestone is taken. A lost reply whose store never ran (down) is queued
     * too (unknowable here), and its recheck records it now, without a claim. */
    fake.mode = FAKE_DOWN;
    TW_ASSERT_INT_EQ(pipeline_process(&pipe, in + 3, 1, res), 0);
    TW_ASSERT(res[0].claims_unknown);
    fake.mode = FAKE_UP;
    TW_ASSERT_INT_EQ(pipeline_recheck_claims(&pipe), 0);
    TW_ASSERT_INT_EQ(pipe.nrechecked, 1);
    TW_ASSERT_INT_EQ(pipe.rechecked[0].ncampaigns, 0);

    /* A revoked partition's queued posts are dropped: their new owner re-reads them. */
    fake.mode = FAKE_REPLY_LOST;
    TW_ASSERT_INT_EQ(pipeline_process(&pipe, in + 4, 1, res), 0);
    TW_ASSERT_INT_EQ(pipeline_unknown_claims(&pipe), 1);
    pipeline_forget_claims(&pipe, 1);
    TW_ASSERT_INT_EQ(pipeline_unknown_claims(&pipe), 1);
    pipeline_forget_claims(&pipe, 0);
    TW_ASSERT_INT_EQ(pipeline_unknown_claims(&pipe), 0);

    /* Past the queue's bound a fail-open batch is held as under pause (nothing published);
     * once the store answers, it goes through. */
    pipe.max_unknown_claims = 2;
    fake.mode = FAKE_DOWN;
    TW_ASSERT_INT_EQ(pipeline_process(&pipe, in, 2, res), 0);
    TW_ASSERT_INT_EQ(pipeline_unknown_claims(&pipe), 2);
    TW_ASSERT_INT_EQ(pipeline_process(&pipe, in + 2, 1, res), TW_ERR_REDIS);
    TW_ASSERT_INT_EQ(pipeline_unknown_claims(&pipe), 2);
    fake.mode = FAKE_UP;
    TW_ASSERT_INT_EQ(pipeline_process(&pipe, in + 2, 1, res), 0);
    TW_ASSERT(!res[0].claims_unknown);
    TW_ASSERT_INT_EQ(pipeline_recheck_claims(&pipe), 0);
    TW_ASSERT_INT_EQ(pipe.nrechecked, 2);
    TW_ASSERT_INT_EQ(pipeline_unknown_claims(&pipe), 0);

    /* Without campaign milestones there is nothing to lose: nothing is queued. */
    dedup_campaign_t none = {0};
    dedup_campaign_set(&fake.base, &none);
    TW_ASSERT_INT_EQ(pipeline_process(&pipe, in, 1, res), 0);
    TW_ASSERT(!res[0].claims_unknown);
    TW_ASSERT_INT_EQ(pipeline_unknown_claims(&pipe), 0);

    pipeline_fini(&pipe);
    dedup_store_free(fake.inner);
    config_fini(&cfg);
    compiled_free(&c);
}

/* Issue 12, 7 (the soak): each batch slot's normalization buffers grew to the largest post the
 * slot had ever held and never shrank, so a worker's heap crept up with every longer post
 * (2 batches x batch_size slots x 9 bytes per byte: up to ~590 MB with 64 KiB posts). A slot
 * now lets go of buffers over PIPELINE_KEEP_NORM_CAP when it takes a post that fits below. */
TW_TEST(slots_let_go_of_big_buffers)
{
    compiled_t c;
    TW_ASSERT_INT_EQ(compile_rules(rules_before, &c), 0);
    config_t cfg;
    TW_ASSERT_INT_EQ(config_init(&cfg), 0);
    cfg.threads = 1;
    cfg.max_post_bytes = 1 << 20;
    dedup_store_t *store = NULL;
    TW_ASSERT_INT_EQ(dedup_memory_new(3600, 1 << 10, &store), 0);
    pipeline_t pipe;
    TW_ASSERT_INT_EQ(pipeline_init(&pipe, &cfg, c.rules, c.db, store), 0);

    enum { N = 4, BIG = 200000 };
    char *big[N];
    char small[N][160];
    pipeline_input_t in[N];
    pipeline_result_t res[N];
    for (int i = 0; i < N; i++) {
        TW_ASSERT((big[i] = malloc(BIG + 64)) != NULL);
        int head = snprintf(big[i], 64, "{\"id\":\"big%d\",\"text\":\"", i);
        memset(big[i] + head, 'a' + i, BIG);
        memcpy(big[i] + head + BIG, "\"}", 3);
        in[i] = (pipeline_input_t){big[i], strlen(big[i]), {.topic = "posts", .offset = i}};
    }
    /* Both batches (run overlaps two) hold big posts, then small ones. */
    for (int round = 0; round < 2; round++) {
        TW_ASSERT_INT_EQ(pipeline_process(&pipe, in, N, res), 0);
        for (int i = 0; i < N; i++)
            TW_ASSERT_INT_EQ(res[i].outcome, PIPELINE_PASS);
    }
    for (int i = 0; i < N; i++)
        set_input(&in[i], small[i], sizeof small[i], i, 10 + i);
    for (int round = 0; round < 2; round++)
        TW_ASSERT_INT_EQ(pipeline_process(&pipe, in, N, res), 0);
    for (int b = 0; b < 2; b++)
        for (size_t i = 0; i < pipe.batches[b].cap; i++)
            TW_ASSERT(pipe.batches[b].norms[i].cap <= PIPELINE_KEEP_NORM_CAP);

    pipeline_fini(&pipe);
    dedup_store_free(store);
    config_fini(&cfg);
    compiled_free(&c);
    for (int i = 0; i < N; i++)
        free(big[i]);
}

int main(void)
{
    TW_RUN(TW_CASE(threads_give_the_same_results_in_the_same_order),
           TW_CASE(shadow_rules_and_the_flood_guard),
           TW_CASE(claims_lost_with_the_reply_are_rechecked), TW_CASE(slots_let_go_of_big_buffers),
           TW_CASE(default_threads_is_the_usable_cpu_count),
           TW_CASE(pool_runs_each_worker_once_per_job));
}
