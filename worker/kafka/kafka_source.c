#include "kafka/kafka_source.h"

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka/kafka_common.h"
#include "util/log.h"
#include "metrics/metrics.h"

#define SOURCE_MAX_PARTITIONS 4096

struct kafka_source {
    rd_kafka_t *rk;
    char *topic;
    kafka_source_hooks_t hooks;
    /* The messages behind the records of the last two batches: the run loop finishes one
     * batch while the next is analysed, so a batch's bytes must outlive the following poll.
     * Each poll reuses (and first releases) the set of the batch before the previous one. */
    struct source_held {
        rd_kafka_message_t **msgs;
        size_t n;
        size_t cap;
    } held[2];
    unsigned polls;             /* batches polled; the current one's set is held[polls % 2] */
    rd_kafka_message_t **stash; /* fetched while paused; handed out first by poll_batch */
    size_t nstash;
    size_t stash_cap;
    bool paused;
    int fail_stash_growth; /* tests: growths of the stash still to fail */
    int nassigned;
    unsigned rebalances; /* revocations so far; a batch keeps only records fetched after the last */
    int32_t assigned[SOURCE_MAX_PARTITIONS];
    bool at_eof[SOURCE_MAX_PARTITIONS];
    /* Per assigned partition: the offset of a record dropped for lack of memory, or -1. Until
     * the seek back delivers it again, later records of the partition are dropped too, so
     * nothing is processed (and committed) past it. */
    int64_t refetch_from[SOURCE_MAX_PARTITIONS];
    metrics_partition_lag_t lags[SOURCE_MAX_PARTITIONS]; /* statistics callback scratch */
};

static void source_release(struct source_held *set)
{
    for (size_t i = 0; i < set->n; i++)
        rd_kafka_message_destroy(set->msgs[i]);
    set->n = 0;
}

static void source_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                                rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    kafka_source_t *src = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        src->nassigned = 0;
        for (int i = 0; i < parts->cnt && i < SOURCE_MAX_PARTITIONS; i++) {
            src->assigned[src->nassigned] = parts->elems[i].partition;
            src->at_eof[src->nassigned] = false;
            src->refetch_from[src->nassigned] = -1;
            src->nassigned++;
        }
        log_info("assigned %d partition(s) of %s", parts->cnt, src->topic);
        rd_kafka_assign(rk, parts);
        atomic_fetch_add(&tw_metrics.rebalances, 1);
        if (src->paused)
            rd_kafka_pause_partitions(rk, parts);
    } else {
        int32_t revoked[SOURCE_MAX_PARTITIONS];
        size_t n = 0;
        for (int i = 0; i < parts->cnt && i < SOURCE_MAX_PARTITIONS; i++)
            revoked[n++] = parts->elems[i].partition;
        log_info("revoking %d partition(s) of %s", parts->cnt, src->topic);
        if (src->hooks.before_revoke)
            src->hooks.before_revoke(src->hooks.opaque, revoked, n);
        rd_kafka_resp_err_t cerr = rd_kafka_commit(rk, NULL, 0);
        if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
            log_warn("commit before revoke: %s", rd_kafka_err2str(cerr));
        rd_kafka_assign(rk, NULL);
        src->nassigned = 0;
        /* what was fetched while paused is re-read by the partitions' next owner */
        for (size_t i = 0; i < src->nstash; i++)
            rd_kafka_message_destroy(src->stash[i]);
        src->nstash = 0;
        src->rebalances++;
    }
    atomic_store(&tw_metrics.assigned_partitions, src->nassigned);
}

/* librdkafka statistics (every statistics.interval.ms, on the polling thread): consumer lag
 * per partition of the input topic (topics.<t>.partitions.<p>.consumer_lag), brokers with an
 * open connection and whether the group coordinator is up (cgrp.state), for /metrics and
 * /readyz. Returns 0: librdkafka frees json. */
static int source_stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    (void)rk;
    kafka_source_t *src = opaque;
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!root) {
        log_ratelimited(LOG_LEVEL_WARN, "kafka.stats", 60, "kafka statistics: %s", jerr.text);
        return 0;
    }
    const char *key;
    json_t *v;
    int brokers_up = 0;
    json_object_foreach(json_object_get(root, "brokers"), key, v)
    {
        const char *state = json_string_value(json_object_get(v, "state"));
        const char *source = json_string_value(json_object_get(v, "source"));
        if (state && strcmp(state, "UP") == 0 &&
            !(source && (strcmp(source, "logical") == 0 || strcmp(source, "internal") == 0)))
            brokers_up++;
    }
    const char *cgrp = json_string_value(json_object_get(json_object_get(root, "cgrp"), "state"));
    size_t n = 0;
    json_t *topic = json_object_get(json_object_get(root, "topics"), src->topic);
    json_object_foreach(json_object_get(topic, "partitions"), key, v)
    {
        json_t *p = json_object_get(v, "partition");
        json_t *lag = json_object_get(v, "consumer_lag");
        if (n < SOURCE_MAX_PARTITIONS && json_is_integer(p) && json_is_integer(lag))
            src->lags[n++] = (metrics_partition_lag_t){(int32_t)json_integer_value(p),
                                                       (int64_t)json_integer_value(lag)};
    }
    metrics_kafka_stats_set(src->topic, src->lags, n, brokers_up, cgrp && strcmp(cgrp, "up") == 0);
    json_decref(root);
    return 0;
}

int kafka_source_new(const config_t *cfg, bool report_eof, const kafka_source_hooks_t *hooks,
                     kafka_source_t **out, tw_diag_t *diag)
{
    /* Eager assignors: librdkafka 2.0.2 aborts when a cooperative-sticky consumer closes
     * before its first assignment (DESIGN.md). queued.min.messages is sized for more than a
     * second of traffic because 2.0.2 pauses a partition for 1 s once it is exceeded. */
    const char *offset_reset = config_enum_name("auto_offset_reset", (int)cfg->auto_offset_reset);
    const char *const defaults[] = {"bootstrap.servers",
                                    cfg->brokers,
                                    "group.id",
                                    cfg->group,
                                    "client.id",
                                    "tidewatch",
                                    "enable.auto.commit",
                                    "true",
                                    "auto.commit.interval.ms",
                                    "1000",
                                    "enable.auto.offset.store",
                                    "false",
                                    "auto.offset.reset",
                                    offset_reset,
                                    "partition.assignment.strategy",
                                    "range,roundrobin",
                                    "queued.min.messages",
                                    "200000",
                                    "enable.partition.eof",
                                    report_eof ? "true" : "false",
                                    "statistics.interval.ms",
                                    "5000",
                                    NULL};
    kafka_source_t *src = calloc(1, sizeof(*src));
    if (!src)
        return TW_ERR_NOMEM;
    src->topic = strdup(cfg->input_topic);
    if (hooks)
        src->hooks = *hooks;
    rd_kafka_conf_t *conf = kafka_conf_build(cfg, defaults, diag);
    if (!conf || !src->topic) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        free(src->topic);
        free(src);
        return TW_ERR_CONFIG;
    }
    rd_kafka_conf_set_rebalance_cb(conf, source_rebalance_cb);
    rd_kafka_conf_set_stats_cb(conf, source_stats_cb);
    char interval[32];
    size_t interval_size = sizeof(interval);
    if (rd_kafka_conf_get(conf, "statistics.interval.ms", interval, &interval_size) ==
        RD_KAFKA_CONF_OK)
        atomic_store(&tw_metrics.kafka_stats_interval_ms, atoi(interval));
    metrics_set_build_info(rd_kafka_version_str());
    rd_kafka_conf_set_opaque(conf, src);
    char errstr[512];
    src->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!src->rk) {
        tw_diag_add(diag, "kafka consumer: %s", errstr);
        rd_kafka_conf_destroy(conf);
        free(src->topic);
        free(src);
        return TW_ERR_KAFKA;
    }
    rd_kafka_poll_set_consumer(src->rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, src->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(src->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        tw_diag_add(diag, "subscribe to %s: %s", src->topic, rd_kafka_err2str(err));
        rd_kafka_destroy(src->rk);
        free(src->topic);
        free(src);
        return TW_ERR_KAFKA;
    }
    *out = src;
    return 0;
}

void kafka_source_close(kafka_source_t *src)
{
    if (!src)
        return;
    for (size_t k = 0; k < 2; k++)
        source_release(&src->held[k]);
    for (size_t i = 0; i < src->nstash; i++)
        rd_kafka_message_destroy(src->stash[i]);
    rd_kafka_consumer_close(src->rk);
    rd_kafka_destroy(src->rk);
    free(src->stash);
    for (size_t k = 0; k < 2; k++)
        free(src->held[k].msgs);
    free(src->topic);
    free(src);
}

static void source_mark_eof(kafka_source_t *src, int32_t partition, bool eof)
{
    for (int i = 0; i < src->nassigned; i++)
        if (src->assigned[i] == partition)
            src->at_eof[i] = eof;
}

static int source_index(const kafka_source_t *src, int32_t partition)
{
    for (int i = 0; i < src->nassigned; i++)
        if (src->assigned[i] == partition)
            return i;
    return -1;
}

/* msg cannot be kept (out of memory): fetch its partition again from msg's offset, and drop
 * what comes before that (see refetch_from). Takes msg. */
static void source_refetch(kafka_source_t *src, rd_kafka_message_t *msg)
{
    int i = source_index(src, msg->partition);
    if (i >= 0 && (src->refetch_from[i] < 0 || msg->offset < src->refetch_from[i]))
        src->refetch_from[i] = msg->offset;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    if (parts) {
        rd_kafka_topic_partition_list_add(parts, src->topic, msg->partition)->offset = msg->offset;
        rd_kafka_error_t *err = rd_kafka_seek_partitions(src->rk, parts, 0); /* asynchronous */
        if (err) {
            /* the partition then stalls (everything after is dropped) until a rebalance or a
             * restart re-reads it from its commit: slower, never lossy */
            log_error("seek %s[%d] back to %lld: %s", src->topic, (int)msg->partition,
                      (long long)msg->offset, rd_kafka_error_string(err));
            rd_kafka_error_destroy(err);
        }
        rd_kafka_topic_partition_list_destroy(parts);
    }
    log_ratelimited(LOG_LEVEL_WARN, "source.oom", 10,
                    "out of memory holding %s[%d]@%lld: fetching it again", src->topic,
                    (int)msg->partition, (long long)msg->offset);
    rd_kafka_message_destroy(msg);
}

/* False (and msg destroyed) for a record fetched before the seek back of its partition took
 * effect: a later offset than the one to be fetched again. Earlier ones (stashed before the
 * drop) are in order. */
static bool source_in_order(kafka_source_t *src, rd_kafka_message_t *msg)
{
    int i = source_index(src, msg->partition);
    if (i < 0 || src->refetch_from[i] < 0 || msg->offset < src->refetch_from[i])
        return true;
    if (msg->offset == src->refetch_from[i]) {
        src->refetch_from[i] = -1; /* the seek took effect */
        return true;
    }
    rd_kafka_message_destroy(msg);
    return false;
}

size_t kafka_source_poll_batch(kafka_source_t *src, kafka_record_t *records, size_t max,
                               int timeout_ms)
{
    struct source_held *set = &src->held[++src->polls % 2];
    source_release(set);
    if (set->cap < max) {
        rd_kafka_message_t **msgs = realloc(set->msgs, max * sizeof(*msgs));
        if (!msgs)
            return 0;
        set->msgs = msgs;
        set->cap = max;
    }
    size_t n = 0;
    int wait = timeout_ms;
    unsigned rebalances = src->rebalances;
    while (n < max) {
        /* records fetched while paused come first, in the order they were fetched */
        rd_kafka_message_t *msg = NULL;
        if (src->nstash) {
            msg = src->stash[0];
            memmove(src->stash, src->stash + 1, --src->nstash * sizeof(*src->stash));
        } else {
            msg = rd_kafka_consumer_poll(src->rk, wait);
        }
        if (src->rebalances != rebalances) {
            /* The partitions were taken away while this batch was filling: its records are
             * no longer ours to process (their offsets were committed up to what was done),
             * and whoever owns the partitions now re-reads them from there. */
            source_release(set);
            n = 0;
            rebalances = src->rebalances;
        }
        if (!msg)
            break;
        wait = 0; /* after the first record take only what is already fetched */
        if (msg->err) {
            if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                source_mark_eof(src, msg->partition, true);
            else
                log_ratelimited(LOG_LEVEL_WARN, "consume", 10, "consume: %s",
                                rd_kafka_message_errstr(msg));
            rd_kafka_message_destroy(msg);
            continue;
        }
        if (!source_in_order(src, msg))
            continue;
        source_mark_eof(src, msg->partition, false);
        set->msgs[set->n++] = msg;
        kafka_record_t *r = &records[n++];
        r->value = msg->payload ? msg->payload : "";
        r->len = msg->len;
        r->key = msg->key;
        r->key_len = msg->key_len;
        r->partition = msg->partition;
        r->offset = msg->offset;
    }
    return n;
}

void kafka_source_pause(kafka_source_t *src, bool pause)
{
    if (src->paused == pause)
        return;
    src->paused = pause;
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(src->rk, &parts) == RD_KAFKA_RESP_ERR_NO_ERROR && parts) {
        rd_kafka_resp_err_t err = pause ? rd_kafka_pause_partitions(src->rk, parts)
                                        : rd_kafka_resume_partitions(src->rk, parts);
        if (err)
            log_warn("%s partitions: %s", pause ? "pause" : "resume", rd_kafka_err2str(err));
    }
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
}

void kafka_source_idle(kafka_source_t *src, int timeout_ms)
{
    rd_kafka_message_t *msg = rd_kafka_consumer_poll(src->rk, timeout_ms);
    if (!msg)
        return;
    if (msg->err) {
        rd_kafka_message_destroy(msg);
        return;
    }
    if (!source_in_order(src, msg))
        return;
    if (src->nstash == src->stash_cap) {
        size_t cap = src->stash_cap ? src->stash_cap * 2 : 64;
        rd_kafka_message_t **grown = NULL;
        if (src->fail_stash_growth > 0)
            src->fail_stash_growth--;
        else
            grown = realloc(src->stash, cap * sizeof(*grown));
        if (!grown) {
            /* Dropping it alone would let later records of its partition be processed and
             * committed past it: fetch the partition again from here instead. */
            source_refetch(src, msg);
            return;
        }
        src->stash = grown;
        src->stash_cap = cap;
    }
    src->stash[src->nstash++] = msg;
}

int kafka_source_fail_stash_growth(kafka_source_t *src, int times)
{
    int left = src->fail_stash_growth;
    src->fail_stash_growth = times;
    return left;
}

unsigned kafka_source_revocations(const kafka_source_t *src)
{
    return src->rebalances;
}

bool kafka_source_owns(const kafka_source_t *src, int32_t partition)
{
    for (int i = 0; i < src->nassigned; i++)
        if (src->assigned[i] == partition)
            return true;
    return false;
}

void kafka_source_store_offset(kafka_source_t *src, int32_t partition, int64_t next_offset)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, src->topic, partition)->offset = next_offset;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(src->rk, list);
    /* A partition revoked since the post was fetched refuses the store: its new owner
     * re-reads from the last commit, which is at-least-once as promised. */
    if (err && err != RD_KAFKA_RESP_ERR__STATE)
        log_ratelimited(LOG_LEVEL_WARN, "offsets_store", 10, "store offset %s[%d]@%lld: %s",
                        src->topic, (int)partition, (long long)next_offset, rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(list);
}

int kafka_source_commit(kafka_source_t *src)
{
    rd_kafka_resp_err_t err = rd_kafka_commit(src->rk, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        log_warn("commit: %s", rd_kafka_err2str(err));
        return TW_ERR_KAFKA;
    }
    return 0;
}

bool kafka_source_at_end(const kafka_source_t *src)
{
    if (src->nassigned == 0)
        return false;
    for (int i = 0; i < src->nassigned; i++)
        if (!src->at_eof[i])
            return false;
    return true;
}

int kafka_source_assigned(const kafka_source_t *src)
{
    return src->nassigned;
}

const char *kafka_source_topic(const kafka_source_t *src)
{
    return src->topic;
}
