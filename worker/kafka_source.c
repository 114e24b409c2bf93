#include "kafka_source.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_common.h"
#include "log.h"
#include "metrics.h"

#define SOURCE_MAX_PARTITIONS 4096

struct kafka_source {
    rd_kafka_t *rk;
    char *topic;
    kafka_source_hooks_t hooks;
    rd_kafka_message_t **held; /* messages of the current batch */
    size_t nheld;
    size_t held_cap;
    int nassigned;
    unsigned rebalances; /* revocations so far; a batch keeps only records fetched after the last */
    int32_t assigned[SOURCE_MAX_PARTITIONS];
    bool at_eof[SOURCE_MAX_PARTITIONS];
};

static void source_release(kafka_source_t *src)
{
    for (size_t i = 0; i < src->nheld; i++)
        rd_kafka_message_destroy(src->held[i]);
    src->nheld = 0;
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
            src->nassigned++;
        }
        log_info("assigned %d partition(s) of %s", parts->cnt, src->topic);
        rd_kafka_assign(rk, parts);
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
        src->rebalances++;
    }
    atomic_store(&tw_metrics.assigned_partitions, src->nassigned);
}

int kafka_source_new(const config_t *cfg, bool report_eof, const kafka_source_hooks_t *hooks,
                     kafka_source_t **out, tw_diag_t *diag)
{
    /* Eager assignors: librdkafka 2.0.2 aborts when a cooperative-sticky consumer closes
     * before its first assignment (DESIGN.md). queued.min.messages is sized for more than a
     * second of traffic because 2.0.2 pauses a partition for 1 s once it is exceeded. */
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
                                    cfg->auto_offset_reset,
                                    "partition.assignment.strategy",
                                    "range,roundrobin",
                                    "queued.min.messages",
                                    "200000",
                                    "enable.partition.eof",
                                    report_eof ? "true" : "false",
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
    source_release(src);
    rd_kafka_consumer_close(src->rk);
    rd_kafka_destroy(src->rk);
    free(src->held);
    free(src->topic);
    free(src);
}

static void source_mark_eof(kafka_source_t *src, int32_t partition, bool eof)
{
    for (int i = 0; i < src->nassigned; i++)
        if (src->assigned[i] == partition)
            src->at_eof[i] = eof;
}

size_t kafka_source_poll_batch(kafka_source_t *src, kafka_record_t *records, size_t max,
                               int timeout_ms)
{
    source_release(src);
    if (src->held_cap < max) {
        rd_kafka_message_t **held = realloc(src->held, max * sizeof(*held));
        if (!held)
            return 0;
        src->held = held;
        src->held_cap = max;
    }
    size_t n = 0;
    int wait = timeout_ms;
    unsigned rebalances = src->rebalances;
    while (n < max) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(src->rk, wait);
        if (src->rebalances != rebalances) {
            /* The partitions were taken away while this batch was filling: its records are
             * no longer ours to process (their offsets were committed up to what was done),
             * and whoever owns the partitions now re-reads them from there. */
            source_release(src);
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
        source_mark_eof(src, msg->partition, false);
        src->held[src->nheld++] = msg;
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
