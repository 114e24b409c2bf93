#include "modes/run.h"

#include "pipeline/flood_redis.h"
#include "pipeline/flood_rules.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipeline/engine.h"
#include "http/http.h"
#include "kafka/kafka_sink.h"
#include "kafka/kafka_source.h"
#include "util/log.h"
#include "metrics/metrics.h"
#include "kafka/offset_tracker.h"
#include "pipeline/pipeline.h"
#include "pipeline/reload.h"

/* How long a rebalance may wait for in-flight records before giving up its partitions; what
 * is still unacknowledged then is re-read by the next owner. */
#define REVOKE_FLUSH_MS 10000

/* One polled batch: the records (valid for two polls, kafka_source_poll_batch), the
 * pipeline's inputs and results for them. */
typedef struct {
    kafka_record_t *records;
    pipeline_input_t *inputs;
    pipeline_result_t *results;
    size_t n;
    unsigned revocations; /* kafka_source_revocations when it was polled */
} run_batch_t;

typedef struct {
    const config_t *cfg;
    kafka_source_t *src;
    kafka_sink_t *sink;
    offset_tracker_t *tracker;
    pipeline_t *pipe; /* for the rebalance hook: posts awaiting a claims recheck */
    const run_options_t *opts;
    int failed; /* a record could not be delivered: stop without committing past it */
    /* The loop polls the next batch while the pool analyses the one before, so up to two are
     * in the worker: bufs alternate, and inflight is the one submitted to the pipeline and not
     * yet finished and published (NULL when none). A rebalance finishes it first
     * (run_before_revoke), so its records are published while their partitions are ours. */
    run_batch_t bufs[2];
    run_batch_t *inflight;
} run_ctx_t;

static int run_finish_inflight(run_ctx_t *ctx, run_batch_t *next, bool may_wait);

static void run_on_delivery(void *opaque, int32_t partition, int64_t offset, int err,
                            const char *errstr)
{
    run_ctx_t *ctx = opaque;
    if (err) {
        /* With an infinite message timeout only permanent errors get here, and records
         * refused for their own size or content were dead-lettered by the sink: what is left
         * is the topic's (missing, not authorized). Stopping keeps the post uncommitted, so
         * a restart after the operator's fix re-reads it. */
        log_error("delivery for %s[%d]@%lld failed: %s; stopping without committing it",
                  ctx->cfg->input_topic, (int)partition, (long long)offset, errstr);
        ctx->failed = 1;
        return;
    }
    offset_tracker_done(ctx->tracker, partition, offset);
}

static void run_store_offset(void *opaque, int32_t partition, int64_t next_offset)
{
    run_ctx_t *ctx = opaque;
    kafka_source_store_offset(ctx->src, partition, next_offset);
}

static void run_store_finished(run_ctx_t *ctx)
{
    offset_tracker_collect(ctx->tracker, run_store_offset, ctx);
}

static void run_before_revoke(void *opaque, const int32_t *partitions, size_t n)
{
    run_ctx_t *ctx = opaque;
    /* The batch in flight was polled while the partitions were ours: publish it now, so the
     * flush below covers it and its offsets are committed before they go. If it cannot be
     * finished (the store is away under the pause policy), it is dropped unpublished and its
     * records are re-read from the last commit by whoever owns them next. */
    if (ctx->inflight && !ctx->failed) {
        int rc = run_finish_inflight(ctx, NULL, false);
        if (rc != 0 && rc != TW_ERR_REDIS)
            ctx->failed = 1;
    }
    int left = kafka_sink_flush(ctx->sink, REVOKE_FLUSH_MS);
    if (left)
        log_warn("rebalance: %d record(s) still unacknowledged; their posts will be re-read", left);
    run_store_finished(ctx);
    for (size_t i = 0; i < n; i++) {
        offset_tracker_forget(ctx->tracker, partitions[i]);
        if (ctx->pipe)
            pipeline_forget_claims(ctx->pipe, partitions[i]);
    }
}

static int run_publish(run_ctx_t *ctx, const pipeline_t *pipe, const kafka_record_t *rec,
                       const pipeline_result_t *res)
{
    int added = offset_tracker_add(ctx->tracker, rec->partition, rec->offset);
    if (added == TW_ERR_INVALID) {
        /* Offset repeated or went backwards: a re-fetched copy of a record whose first copy
         * is tracked and will be published; publishing this one too would only duplicate. */
        atomic_fetch_add(&tw_metrics.offsets_refused_total, 1);
        log_ratelimited(LOG_LEVEL_WARN, "offset_refused", 10,
                        "%s[%d]@%lld fetched again while its first copy is in flight; dropped",
                        ctx->cfg->input_topic, (int)rec->partition, (long long)rec->offset);
        return 0;
    }
    if (added != 0)
        return added;
    /* Claims unknown (a lost store reply): the offset also waits for the post's recheck. */
    if (res->claims_unknown &&
        (added = offset_tracker_ref(ctx->tracker, rec->partition, rec->offset)) != 0)
        return added;
    /* Campaign records first, each one more output the offset waits for. */
    for (size_t k = 0; k < res->ncampaigns; k++) {
        const pipeline_campaign_t *c = &pipe->campaigns[res->campaign_first + k];
        int rc = offset_tracker_ref(ctx->tracker, rec->partition, rec->offset);
        if (rc == 0)
            rc = kafka_sink_produce_campaign(ctx->sink, pipe->campaign_buf.data + c->key_offset,
                                             c->key_len, pipe->campaign_buf.data + c->value_offset,
                                             c->value_len, rec->partition, rec->offset);
        if (rc != 0)
            return rc;
    }
    /* The shadow alert is one more output the offset waits for, like a campaign record. */
    if (res->shadow_len) {
        int rc = offset_tracker_ref(ctx->tracker, rec->partition, rec->offset);
        if (rc == 0)
            rc = kafka_sink_produce_shadow(ctx->sink, res->key, res->key_len,
                                           pipe->alerts.data + res->shadow_offset, res->shadow_len,
                                           rec->partition, rec->offset);
        if (rc != 0)
            return rc;
    }
    switch (res->outcome) {
    case PIPELINE_PASS:
        offset_tracker_done(ctx->tracker, rec->partition, rec->offset);
        return 0;
    case PIPELINE_ALERT:
        return kafka_sink_produce_alert(ctx->sink, res->key, res->key_len,
                                        pipe->alerts.data + res->alert_offset, res->alert_len,
                                        rec->partition, rec->offset);
    case PIPELINE_DEAD_LETTER:
        return kafka_sink_produce_dead_letter(ctx->sink, rec->key, rec->key_len, rec->value,
                                              rec->len, post_reason_name(res->reason), res->error,
                                              ctx->cfg->input_topic, rec->partition, rec->offset);
    }
    return TW_ERR_INVALID;
}

/* The flood guard, deciding on the fleet's counts through the duplicate store's Redis (a
 * connection of its own) or, without Redis, on this worker's. *flood stays NULL when no rule
 * is guarded. */
static int run_flood_start(const config_t *cfg, const run_options_t *opts, const rule_set_t *rules,
                           flood_redis_t **link, flood_guard_t **flood, tw_diag_t *diag)
{
    flood_transport_t transport;
    bool fleet = cfg->redis_url[0] && !opts->force_memory_store;
    if (fleet) {
        int rc = flood_redis_new(cfg->redis_url, (int)cfg->redis_timeout_ms, link, diag);
        if (rc != 0)
            return rc;
        transport = flood_redis_transport(*link);
    }
    int rc = flood_rules_guard_new(cfg, rules, fleet ? &transport : NULL, flood);
    if (rc == 0 && !*flood) {
        flood_redis_free(*link);
        *link = NULL;
    }
    return rc;
}

/* The campaign records of the posts the last recheck answered for, then the hold each post's
 * offset kept for it (run_publish). A post of a partition revoked meanwhile is not here
 * (pipeline_forget_claims). */
static int run_publish_rechecked(run_ctx_t *ctx, const pipeline_t *pipe)
{
    for (size_t i = 0; i < pipe->nrechecked; i++) {
        const pipeline_rechecked_t *r = &pipe->rechecked[i];
        for (size_t k = 0; k < r->ncampaigns; k++) {
            const pipeline_campaign_t *c = &pipe->recheck_campaigns[r->campaign_first + k];
            int rc = offset_tracker_ref_held(ctx->tracker, r->source.partition, r->source.offset);
            if (rc == 0)
                rc = kafka_sink_produce_campaign(
                    ctx->sink, pipe->recheck_buf.data + c->key_offset, c->key_len,
                    pipe->recheck_buf.data + c->value_offset, c->value_len, r->source.partition,
                    r->source.offset);
            if (rc != 0)
                return rc;
        }
        offset_tracker_done(ctx->tracker, r->source.partition, r->source.offset);
    }
    return 0;
}

/* Posts whose claims are unknown are rechecked between batches, at most every
 * RUN_RECHECK_RETRY_MS while the store keeps failing (its reconnect backoff paces it too). */
#define RUN_RECHECK_RETRY_MS 200

static int run_recheck_claims(run_ctx_t *ctx, pipeline_t *pipe, int64_t *next_ms)
{
    if (!pipeline_unknown_claims(pipe) || metrics_now_mono_ms() < *next_ms)
        return 0;
    int rc = pipeline_recheck_claims(pipe);
    if (rc == 0)
        return run_publish_rechecked(ctx, pipe);
    if (rc != TW_ERR_REDIS)
        return rc;
    *next_ms = metrics_now_mono_ms() + RUN_RECHECK_RETRY_MS;
    return 0;
}

/* The flood guard's rule_muted records of the batch (this worker made the mutes). No post
 * waits for them: the mute itself is already in Redis (or in this worker). */
static void run_publish_controls(run_ctx_t *ctx, const pipeline_t *pipe)
{
    for (size_t k = 0; k < pipe->ncontrols; k++) {
        const pipeline_campaign_t *c = &pipe->controls[k];
        kafka_sink_produce_control(ctx->sink, "rule_muted", pipe->control_buf.data + c->key_offset,
                                   c->key_len, pipe->control_buf.data + c->value_offset,
                                   c->value_len);
    }
}

/* dedup.on_unavailable = pause: the batch could not be deduplicated. Fetching stops, the
 * consumer keeps being served (heartbeats, rebalances, max.poll.interval.ms), deliveries of
 * earlier batches are still acknowledged and committed, and the batch is retried every
 * RUN_PAUSE_RETRY_MS (the Redis store's reconnect backoff paces the real attempts) until the
 * store answers. After a revocation the held records are all dropped: whoever owns their
 * partitions now (this worker included) re-reads them from the last commit. Returns the pipeline's
 * final code: 0, TW_ERR_REDIS when stopped while paused, or another error. */
#define RUN_PAUSE_RETRY_MS 200

static int run_pause_until_redis(run_ctx_t *ctx, pipeline_t *pipe, kafka_record_t *records,
                                 pipeline_input_t *inputs, size_t *n, pipeline_result_t *results,
                                 const run_options_t *opts)
{
    if (ctx->cfg->dedup_on_unavailable == CONFIG_UNAVAILABLE_PAUSE)
        log_warn("duplicate store unavailable: pausing consumption until it answers "
                 "(dedup.on_unavailable = pause)");
    else
        log_warn("duplicate store unavailable and %zu post(s) await a recheck of their campaign "
                 "claims (the most held): pausing consumption until it answers",
                 pipeline_unknown_claims(pipe));
    kafka_source_pause(ctx->src, true);
    unsigned revocations = kafka_source_revocations(ctx->src);
    int rc = TW_ERR_REDIS;
    while (rc == TW_ERR_REDIS && !atomic_load(opts->stop) && !ctx->failed) {
        metrics_heartbeat();
        kafka_source_idle(ctx->src, RUN_PAUSE_RETRY_MS);
        kafka_sink_poll(ctx->sink, 0);
        run_store_finished(ctx);
        if (kafka_source_revocations(ctx->src) != revocations) {
            /* An (eager) rebalance took the partitions away, even if it gave some back: the
             * new assignment re-fetches from the last commit, so the held records would
             * come twice. Drop them all; the re-fetched copies are processed instead. */
            if (*n)
                log_info("rebalance while paused: %zu held record(s) dropped, re-read from "
                         "the last commit",
                         *n);
            *n = 0;
        }
        size_t kept = 0;
        for (size_t i = 0; i < *n; i++) {
            if (!kafka_source_owns(ctx->src, records[i].partition))
                continue;
            records[kept] = records[i];
            inputs[kept] = inputs[i];
            kept++;
        }
        *n = kept;
        rc = kept ? pipeline_process(pipe, inputs, kept, results) : 0;
    }
    kafka_source_pause(ctx->src, false);
    if (rc == 0)
        log_info("duplicate store answers again: consumption resumed");
    return rc;
}

/* /readyz reports Redis from the last round trip, and with no posts flowing there is none: an
 * idle worker would stay ready (or unready) on what the last batch saw, however long ago. So
 * while idle the loop asks the store itself, at most once per RUN_IDLE_REDIS_CHECK_MS. */
#define RUN_IDLE_REDIS_CHECK_MS 1000

static void run_check_redis_when_idle(dedup_store_t *store, bool idle, int64_t *last_ms)
{
    int64_t now = metrics_now_mono_ms();
    if (!idle) {
        *last_ms = now; /* the batch's own round trip just reported */
        return;
    }
    if (now - *last_ms < RUN_IDLE_REDIS_CHECK_MS)
        return;
    *last_ms = now;
    if (!dedup_store_is_redis(store))
        return;
    atomic_store(&tw_metrics.redis_up, dedup_ping(store) == 0);
}

/* The HTTP endpoints start before the rules compile, so /healthz answers and /readyz says
 * "rules not loaded" while a big rule set compiles. */
static int run_http_start(const config_t *cfg, http_server_t **http)
{
    *http = NULL;
    if (!cfg->http_addr[0])
        return 0;
    tw_diag_t diag;
    tw_diag_init(&diag);
    int rc = http_server_start(cfg, http, &diag);
    tw_diag_log_all(&diag, NULL, NULL);
    tw_diag_fini(&diag);
    return rc;
}

/* run_finish_inflight: the worker was stopped while the batch waited for Redis (pause policy). */
#define RUN_STOPPED_WHILE_PAUSED 1

static void run_fill_inputs(const config_t *cfg, run_batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        b->inputs[i].data = b->records[i].value;
        b->inputs[i].len = b->records[i].len;
        b->inputs[i].source = (alert_source_t){.topic = cfg->input_topic,
                                               .partition = b->records[i].partition,
                                               .offset = b->records[i].offset};
    }
}

static int run_publish_batch(run_ctx_t *ctx, const run_batch_t *b)
{
    int rc = 0;
    for (size_t i = 0; i < b->n && rc == 0; i++)
        rc = run_publish(ctx, ctx->pipe, &b->records[i], &b->results[i]);
    if (rc != 0)
        log_error("publishing failed: %s; stopping without committing the batch", tw_err_str(rc));
    return rc;
}

/* Finishes the batch in flight (dedupe, decide, encode) and publishes it; next, when not NULL,
 * is the batch submitted after it (its analysis runs meanwhile). When the store is away under
 * the pause policy, next is taken back from the pipeline, the batch in flight is held and
 * retried until Redis answers (run_pause_until_redis), published, and then next is submitted
 * again unless a rebalance came meanwhile (its records are then re-read from the last
 * commit: next->n becomes 0). Without may_wait (the rebalance hook, inside the consumer's
 * poll, cannot serve the consumer while it waits) the batch is dropped instead and
 * TW_ERR_REDIS returned. Otherwise returns 0, RUN_STOPPED_WHILE_PAUSED, or a failure that
 * stops the worker without committing the batch (logged). */
static int run_finish_inflight(run_ctx_t *ctx, run_batch_t *next, bool may_wait)
{
    run_batch_t *b = ctx->inflight;
    ctx->inflight = NULL;
    int rc = pipeline_finish(ctx->pipe);
    if (rc == TW_ERR_REDIS) {
        if (!may_wait)
            return rc;
        if (next)
            pipeline_abandon(ctx->pipe);
        rc = run_pause_until_redis(ctx, ctx->pipe, b->records, b->inputs, &b->n, b->results,
                                   ctx->opts);
        if (rc == TW_ERR_REDIS)
            return RUN_STOPPED_WHILE_PAUSED;
        if (rc == 0)
            rc = run_publish_batch(ctx, b);
        if (rc == 0 && next && next->n) {
            if (kafka_source_revocations(ctx->src) != next->revocations) {
                log_info("rebalance while paused: %zu polled record(s) dropped, re-read from "
                         "the last commit",
                         next->n);
                next->n = 0;
            } else if ((rc = pipeline_submit(ctx->pipe, next->inputs, next->n, next->results)) !=
                       0) {
                log_error("pipeline failed: %s; stopping without committing the batch",
                          tw_err_str(rc));
            }
        }
        return rc;
    }
    if (rc != 0) {
        log_error("pipeline failed: %s; stopping without committing the batch", tw_err_str(rc));
        return rc;
    }
    return run_publish_batch(ctx, b);
}

/* Drain: everything fetched was processed; wait for its acknowledgements, store and commit
 * what they cover, then leave the group. Not ready from here on. */
static void run_drain(run_ctx_t *ctx, pipeline_t *pipe)
{
    atomic_store(&tw_metrics.draining, 1);
    /* The last counts decide too (a short flood may end between two ticks). */
    pipe->flood_tick_ms = 0;
    pipeline_flood_tick(pipe, time(NULL));
    run_publish_controls(ctx, pipe);
    log_info("draining: %zu post(s) awaiting acknowledgement",
             offset_tracker_pending(ctx->tracker));
    int left = kafka_sink_flush(ctx->sink, (int)ctx->cfg->shutdown_timeout_s * 1000 / 2);
    if (left)
        log_warn("%d record(s) unacknowledged at shutdown; their posts will be re-read", left);
    run_store_finished(ctx);
    kafka_source_commit(ctx->src);
}

/* Finishes and publishes the batch in flight, if any, before something that needs the
 * pipeline idle (a claims recheck, a rules swap, the end). */
static int run_settle(run_ctx_t *ctx)
{
    if (!ctx->inflight)
        return 0;
    return run_finish_inflight(ctx, NULL, true);
}

/* The poll loop: claims rechecks, hot reload between batches, a batch, the flood guard's
 * tick, deliveries and commits, until stopped (or at the end with stop_at_end). A polled
 * batch is submitted to the pipeline (analysed on the pool) and finished on the next turn,
 * after the batch behind it has been polled and submitted: the owner dedupes, encodes and
 * publishes one batch while the pool analyses the next. When nothing more is already
 * fetched the batch in flight is finished at once, so a quiet topic adds no delay. Batches
 * are finished and published in poll order, so per-partition order and the offset
 * tracker's contiguous-commit rule are as without the overlap. */
static int run_loop(run_ctx_t *ctx, pipeline_t *pipe, engine_t *engine, reload_t *reloader,
                    flood_guard_t *flood, const run_options_t *opts)
{
    const config_t *cfg = ctx->cfg;
    int rc = 0;
    int64_t last_redis_check_ms = metrics_now_mono_ms();
    int64_t next_recheck_ms = 0;
    unsigned turn = 0;
    while (!atomic_load(opts->stop) && !ctx->failed) {
        metrics_heartbeat();
        if (pipeline_unknown_claims(pipe) && metrics_now_mono_ms() >= next_recheck_ms &&
            (rc = run_settle(ctx)) != 0)
            break;
        if ((rc = run_recheck_claims(ctx, pipe, &next_recheck_ms)) != 0) {
            log_error("publishing rechecked campaign claims failed: %s; stopping without "
                      "committing their posts",
                      tw_err_str(rc));
            break;
        }
        /* between batches: one set per batch */
        if (reload_ready(reloader)) {
            if ((rc = run_settle(ctx)) != 0)
                break;
            if (reload_apply(reloader, engine, pipe, cfg) && flood &&
                flood_rules_guard_update(flood, cfg, pipe->rules) != 0) {
                log_error("flood guard: out of memory on reload; the guard is off until restart");
                pipeline_set_flood(pipe, NULL);
            }
        }
        run_batch_t *next = &ctx->bufs[turn % 2];
        next->n = kafka_source_poll_batch(ctx->src, next->records, (size_t)cfg->batch_size,
                                          ctx->inflight ? 0 : (int)cfg->batch_timeout_ms);
        next->revocations = kafka_source_revocations(ctx->src);
        if (next->n) {
            turn++;
            run_fill_inputs(cfg, next);
            if ((rc = pipeline_submit(pipe, next->inputs, next->n, next->results)) != 0) {
                log_error("pipeline failed: %s; stopping without committing the batch",
                          tw_err_str(rc));
                break;
            }
        }
        if (ctx->inflight) {
            rc = run_finish_inflight(ctx, next->n ? next : NULL, true);
            if (rc == RUN_STOPPED_WHILE_PAUSED) {
                rc = 0; /* the batches stay uncommitted, re-read later */
                break;
            }
            if (rc != 0)
                break;
        }
        ctx->inflight = next->n ? next : NULL;
        pipeline_flood_tick(pipe, time(NULL));
        run_publish_controls(ctx, pipe);
        kafka_sink_poll(ctx->sink, 0);
        run_store_finished(ctx);
        run_check_redis_when_idle(engine->dedup, next->n == 0 && !ctx->inflight,
                                  &last_redis_check_ms);
        if (opts->stop_at_end && !ctx->inflight && kafka_source_at_end(ctx->src) &&
            offset_tracker_pending(ctx->tracker) == 0)
            break;
    }
    /* Stopped: the batch in flight is finished and published like any other, so the drain
     * commits it (unless the store is away under pause: then it stays uncommitted). */
    if (rc == 0 && !ctx->failed && ctx->inflight) {
        rc = run_settle(ctx);
        if (rc == RUN_STOPPED_WHILE_PAUSED)
            rc = 0;
    }
    ctx->inflight = NULL;
    pipeline_abandon(pipe); /* a batch submitted behind a failed one: never published */
    return rc;
}

int run_worker(const config_t *cfg, const run_options_t *opts)
{
    engine_t engine;
    http_server_t *http = NULL;
    int rc = run_http_start(cfg, &http);
    if (rc == 0)
        rc = engine_open(&engine, cfg, opts->force_memory_store);
    if (rc != 0) {
        http_server_stop(http);
        return rc;
    }

    run_ctx_t ctx = {.cfg = cfg, .opts = opts};
    pipeline_t pipe;
    tw_diag_t diag;
    tw_diag_init(&diag);
    bool pipe_ready = false;
    size_t batch = (size_t)cfg->batch_size;
    reload_t *reloader = NULL;
    flood_guard_t *flood = NULL;
    flood_redis_t *flood_link = NULL;

    rc = pipeline_init(&pipe, cfg, engine.rules, engine.db, engine.dedup);
    if (rc != 0)
        goto out;
    pipe_ready = true;
    ctx.pipe = &pipe;
    /* Hot reload is a convenience: without its thread the worker runs on the rules it has. */
    if (reload_start(cfg, engine.rules, &reloader) != 0)
        log_warn("rules hot reload unavailable: out of memory or threads");
    pipe.fallback = engine.fallback;
    if ((rc = run_flood_start(cfg, opts, engine.rules, &flood_link, &flood, &diag)) != 0)
        goto out;
    pipeline_set_flood(&pipe, flood);
    for (size_t k = 0; k < 2; k++) {
        run_batch_t *b = &ctx.bufs[k];
        b->records = calloc(batch, sizeof(*b->records));
        b->inputs = calloc(batch, sizeof(*b->inputs));
        b->results = calloc(batch, sizeof(*b->results));
        if (!b->records || !b->inputs || !b->results) {
            rc = TW_ERR_NOMEM;
            goto out;
        }
    }
    if ((rc = offset_tracker_new(&ctx.tracker)) != 0)
        goto out;
    if ((rc = kafka_sink_new(cfg, run_on_delivery, &ctx, &ctx.sink, &diag)) != 0)
        goto out;
    kafka_source_hooks_t hooks = {.before_revoke = run_before_revoke, .opaque = &ctx};
    if ((rc = kafka_source_new(cfg, opts->stop_at_end, &hooks, &ctx.src, &diag)) != 0)
        goto out;
    log_info("consuming %s as group %s from %s; alerts to %s, dead letters to %s", cfg->input_topic,
             cfg->group, cfg->brokers, cfg->output_topic, cfg->dlq_topic);

    rc = run_loop(&ctx, &pipe, &engine, reloader, flood, opts);

    /* A failure stops the process as a signal would: everyone sharing the flag stops, and the
     * shutdown watchdog starts, so a drain that hangs (librdkafka's close with the brokers
     * gone) cannot keep a failed worker alive forever. */
    if (ctx.failed || rc != 0)
        atomic_store(opts->stop, 1);
    run_drain(&ctx, &pipe);
    if (ctx.failed && rc == 0)
        rc = TW_ERR_KAFKA;

out:
    tw_diag_log_all(&diag, NULL, NULL);
    tw_diag_fini(&diag);
    kafka_source_close(ctx.src);
    kafka_sink_free(ctx.sink);
    http_server_stop(http);
    offset_tracker_free(ctx.tracker);
    for (size_t k = 0; k < 2; k++) {
        free(ctx.bufs[k].records);
        free(ctx.bufs[k].inputs);
        free(ctx.bufs[k].results);
    }
    reload_stop(reloader);
    if (pipe_ready)
        pipeline_fini(&pipe);
    flood_guard_free(flood);
    flood_redis_free(flood_link);
    engine_close(&engine);
    log_info("stopped");
    return rc;
}
