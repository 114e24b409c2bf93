#include "kafka/kafka_sink.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka/kafka_common.h"
#include "util/log.h"
#include "metrics/metrics.h"

struct kafka_sink {
    rd_kafka_t *rk;
    rd_kafka_topic_t *alerts;
    char *alerts_topic;
    char *dlq_topic;
    char *campaign_topic;
    char *source_topic; /* the input topic, named in dead letters */
    char *shadow_topic; /* NULL: no shadow topic configured */
    size_t dlq_max_bytes;
    kafka_sink_delivery_fn on_delivery;
    void *opaque;
};

/* The source position travels in the message's opaque pointer: partition in the top 20 bits,
 * offset in the low 44 (17 trillion), so no allocation is needed per record. */
#define SINK_OFFSET_BITS 44

static void *pack_source(int32_t partition, int64_t offset)
{
    return (void *)(uintptr_t)(((uint64_t)(uint32_t)partition << SINK_OFFSET_BITS) |
                               ((uint64_t)offset & ((1ULL << SINK_OFFSET_BITS) - 1)));
}

/* The opaque of a record no input offset waits for (a rule_muted control record). */
#define SINK_NO_SOURCE ((void *)UINTPTR_MAX)

static void unpack_source(void *opaque, int32_t *partition, int64_t *offset)
{
    uint64_t v = (uint64_t)(uintptr_t)opaque;
    *partition = (int32_t)(v >> SINK_OFFSET_BITS);
    *offset = (int64_t)(v & ((1ULL << SINK_OFFSET_BITS) - 1));
}

/* Backpressure: the local queue is full (the brokers are slow or away), so serve delivery
 * reports for a while. Waiting here on purpose counts as the loop turning: /healthz must not
 * restart a worker that is only waiting for the brokers. */
static void sink_wait_for_room(kafka_sink_t *sink)
{
    metrics_heartbeat();
    rd_kafka_poll(sink->rk, 100);
}

/* Errors that refuse this one record for good (its size, its content), as opposed to the
 * topic or the cluster (missing, not authorized, unreachable), which stop the worker. */
static bool sink_record_refused(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
           err == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE ||
           err == RD_KAFKA_RESP_ERR_INVALID_RECORD || err == RD_KAFKA_RESP_ERR_POLICY_VIOLATION;
}

static int sink_dead_letter(kafka_sink_t *sink, const void *key, size_t key_len, const void *value,
                            size_t len, const char *reason, const char *error,
                            const char *src_topic, int32_t src_partition, int64_t src_offset,
                            bool may_wait);

/* An alert or campaign record refused for good would stop the worker on the same post after
 * every restart: it becomes a dead letter instead (reason alert_rejected, the refused record
 * as value, capped at dlq_max_bytes; the post is at the source headers), and that dead
 * letter's delivery stands for the record's. Returns 0 when the dead letter was queued. */
static int sink_divert_refused(kafka_sink_t *sink, rd_kafka_resp_err_t err, const void *key,
                               size_t key_len, const void *value, size_t len, int32_t src_partition,
                               int64_t src_offset, bool may_wait)
{
    if (!sink_record_refused(err))
        return TW_ERR_KAFKA;
    log_warn("%s[%d]@%lld: output refused for good (%s); sent to the dead-letter topic",
             sink->source_topic, (int)src_partition, (long long)src_offset, rd_kafka_err2str(err));
    return sink_dead_letter(sink, key, key_len, value, len, "alert_rejected", rd_kafka_err2str(err),
                            sink->source_topic, src_partition, src_offset, may_wait);
}

static void sink_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    (void)rk;
    kafka_sink_t *sink = opaque;
    int32_t partition;
    int64_t offset;
    if (msg->err)
        atomic_fetch_add(&tw_metrics.produce_errors_total, 1);
    if (msg->_private == SINK_NO_SOURCE) {
        if (msg->err)
            log_ratelimited(LOG_LEVEL_ERROR, "produce.control", 10,
                            "control record to %s not delivered: %s", rd_kafka_topic_name(msg->rkt),
                            rd_kafka_err2str(msg->err));
        return;
    }
    unpack_source(msg->_private, &partition, &offset);
    if (msg->err && strcmp(rd_kafka_topic_name(msg->rkt), sink->dlq_topic) != 0 &&
        sink_divert_refused(sink, msg->err, msg->key, msg->key_len, msg->payload, msg->len,
                            partition, offset, false) == 0)
        return; /* the dead letter's own report finishes the post */
    sink->on_delivery(sink->opaque, partition, offset, msg->err ? TW_ERR_KAFKA : 0,
                      msg->err ? rd_kafka_err2str(msg->err) : NULL);
}

/* Room a dead letter needs besides its (capped) value: the post's key, the headers (reason,
 * error text, source position) and the record framing. */
#define SINK_DLQ_HEADROOM_BYTES 65536

/* A dead letter keeps at most this much of the record's key (header key_truncated = the
 * key's length), so that the key fits in the headroom above: an input record may carry a key
 * as large as the brokers allow, and a dead letter refused for its key would stop the worker
 * on the same record after every restart. */
#define SINK_DLQ_MAX_KEY_BYTES 16384

/* Dead letters and alerts are capped (dlq_max_bytes, alert_max_bytes) precisely so that they
 * can always be produced; a cap above the producer's own message.max.bytes would have the
 * capped record refused, and a refused dead letter stop the worker on the same post after
 * every restart. */
static int sink_check_caps(const config_t *cfg, const rd_kafka_conf_t *conf, tw_diag_t *diag)
{
    char value[32];
    size_t size = sizeof(value);
    if (rd_kafka_conf_get(conf, "message.max.bytes", value, &size) != RD_KAFKA_CONF_OK)
        return 0;
    long max = strtol(value, NULL, 10);
    const struct {
        const char *key;
        long bytes;
        const char *topic;
    } caps[] = {{"dlq_max_bytes", cfg->dlq_max_bytes, "dead-letter"},
                {"alert_max_bytes", cfg->alert_max_bytes, "alerts"}};
    int rc = 0;
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        if (caps[i].bytes + SINK_DLQ_HEADROOM_BYTES <= max)
            continue;
        tw_diag_add(diag,
                    "%s (%ld) plus %d bytes for the key and headers exceeds the producer's "
                    "message.max.bytes (%ld): a capped record could still be refused; lower %s "
                    "or raise kafka.message.max.bytes (and the %s topic's max.message.bytes)",
                    caps[i].key, caps[i].bytes, SINK_DLQ_HEADROOM_BYTES, max, caps[i].key,
                    caps[i].topic);
        rc = TW_ERR_CONFIG;
    }
    return rc;
}

int kafka_sink_new(const config_t *cfg, kafka_sink_delivery_fn on_delivery, void *opaque,
                   kafka_sink_t **out, tw_diag_t *diag)
{
    /* Idempotence keeps retries from duplicating alerts; an infinite message timeout means a
     * record is retried for as long as the broker is away instead of being dropped, and the
     * offsets behind it stay uncommitted. */
    const char *const defaults[] = {"bootstrap.servers",
                                    cfg->brokers,
                                    "client.id",
                                    "tidewatch",
                                    "enable.idempotence",
                                    "true",
                                    "message.timeout.ms",
                                    "0",
                                    "linger.ms",
                                    "5",
                                    "compression.codec",
                                    "lz4",
                                    NULL};
    kafka_sink_t *sink = calloc(1, sizeof(*sink));
    if (!sink)
        return TW_ERR_NOMEM;
    sink->on_delivery = on_delivery;
    sink->opaque = opaque;
    sink->alerts_topic = strdup(cfg->output_topic);
    sink->dlq_topic = strdup(cfg->dlq_topic);
    sink->campaign_topic = strdup(
        cfg->campaign_topic && cfg->campaign_topic[0] ? cfg->campaign_topic : cfg->output_topic);
    sink->source_topic = strdup(cfg->input_topic);
    sink->dlq_max_bytes = (size_t)cfg->dlq_max_bytes;
    if (cfg->shadow_topic && cfg->shadow_topic[0] &&
        !(sink->shadow_topic = strdup(cfg->shadow_topic))) {
        kafka_sink_free(sink);
        return TW_ERR_NOMEM;
    }
    rd_kafka_conf_t *conf = kafka_conf_build(cfg, defaults, diag);
    if (!conf || !sink->alerts_topic || !sink->dlq_topic || !sink->campaign_topic ||
        !sink->source_topic || sink_check_caps(cfg, conf, diag) != 0) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        kafka_sink_free(sink);
        return TW_ERR_CONFIG;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, sink_dr_cb);
    rd_kafka_conf_set_opaque(conf, sink);
    char errstr[512];
    sink->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!sink->rk) {
        tw_diag_add(diag, "kafka producer: %s", errstr);
        rd_kafka_conf_destroy(conf);
        kafka_sink_free(sink);
        return TW_ERR_KAFKA;
    }
    sink->alerts = rd_kafka_topic_new(sink->rk, sink->alerts_topic, NULL);
    if (!sink->alerts) {
        tw_diag_add(diag, "kafka topic %s: %s", sink->alerts_topic,
                    rd_kafka_err2str(rd_kafka_last_error()));
        kafka_sink_free(sink);
        return TW_ERR_KAFKA;
    }
    *out = sink;
    return 0;
}

void kafka_sink_free(kafka_sink_t *sink)
{
    if (!sink)
        return;
    if (sink->alerts)
        rd_kafka_topic_destroy(sink->alerts);
    if (sink->rk)
        rd_kafka_destroy(sink->rk);
    free(sink->alerts_topic);
    free(sink->dlq_topic);
    free(sink->campaign_topic);
    free(sink->source_topic);
    free(sink->shadow_topic);
    free(sink);
}

int kafka_sink_produce_alert(kafka_sink_t *sink, const char *key, size_t key_len, const char *value,
                             size_t len, int32_t src_partition, int64_t src_offset)
{
    for (;;) {
        if (rd_kafka_produce(sink->alerts, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                             (void *)value, len, key, key_len,
                             pack_source(src_partition, src_offset)) == 0)
            return 0;
        rd_kafka_resp_err_t err = rd_kafka_last_error();
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            if (sink_divert_refused(sink, err, key, key_len, value, len, src_partition, src_offset,
                                    true) == 0)
                return 0;
            log_ratelimited(LOG_LEVEL_ERROR, "produce.alert", 10, "produce alert: %s",
                            rd_kafka_err2str(err));
            return TW_ERR_KAFKA;
        }
        sink_wait_for_room(sink);
    }
}

/* One record besides the post's alert, with a "type" header: a campaign record, a shadow
 * alert or a control record. One the brokers refuse for good goes to the dead-letter topic
 * (alert_rejected) so the partition moves on; a control record has no post to stand for. */
static int sink_produce_typed(kafka_sink_t *sink, const char *topic, const char *type,
                              const char *key, size_t key_len, const char *value, size_t len,
                              int32_t src_partition, int64_t src_offset, bool has_source)
{
    void *source = has_source ? pack_source(src_partition, src_offset) : SINK_NO_SOURCE;
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            sink->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY((void *)key, key_len), RD_KAFKA_V_VALUE((void *)value, len),
            RD_KAFKA_V_HEADER("type", type, (ssize_t)strlen(type)), RD_KAFKA_V_OPAQUE(source),
            RD_KAFKA_V_END);
        if (!err)
            return 0;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            if (has_source && sink_divert_refused(sink, err, key, key_len, value, len,
                                                  src_partition, src_offset, true) == 0)
                return 0;
            log_ratelimited(LOG_LEVEL_ERROR, "produce.typed", 10, "produce %s record: %s", type,
                            rd_kafka_err2str(err));
            return TW_ERR_KAFKA;
        }
        sink_wait_for_room(sink);
    }
}

int kafka_sink_produce_campaign(kafka_sink_t *sink, const char *key, size_t key_len,
                                const char *value, size_t len, int32_t src_partition,
                                int64_t src_offset)
{
    return sink_produce_typed(sink, sink->campaign_topic, "campaign", key, key_len, value, len,
                              src_partition, src_offset, true);
}

int kafka_sink_produce_shadow(kafka_sink_t *sink, const char *key, size_t key_len,
                              const char *value, size_t len, int32_t src_partition,
                              int64_t src_offset)
{
    if (!sink->shadow_topic)
        return TW_ERR_INVALID;
    return sink_produce_typed(sink, sink->shadow_topic, "shadow", key, key_len, value, len,
                              src_partition, src_offset, true);
}

int kafka_sink_produce_control(kafka_sink_t *sink, const char *type, const char *key,
                               size_t key_len, const char *value, size_t len)
{
    return sink_produce_typed(sink, sink->campaign_topic, type, key, key_len, value, len, 0, 0,
                              false);
}

/* may_wait: serve delivery reports while the local queue is full; false inside a delivery
 * report callback, which must not poll (a full queue then fails). */
static int sink_dead_letter(kafka_sink_t *sink, const void *key, size_t key_len, const void *value,
                            size_t len, const char *reason, const char *error,
                            const char *src_topic, int32_t src_partition, int64_t src_offset,
                            bool may_wait)
{
    char partition[16], offset[24], original_len[24], original_key_len[24];
    snprintf(partition, sizeof(partition), "%d", (int)src_partition);
    snprintf(offset, sizeof(offset), "%lld", (long long)src_offset);
    snprintf(original_len, sizeof(original_len), "%zu", len);
    snprintf(original_key_len, sizeof(original_key_len), "%zu", key_len);
    bool key_truncated = key_len > SINK_DLQ_MAX_KEY_BYTES;
    if (key_truncated)
        key_len = SINK_DLQ_MAX_KEY_BYTES;
    /* A post larger than the producer or topic allows would fail its delivery and stop the
     * partition for good; its first bytes plus the source position are what an operator
     * needs, and the whole post stays in the source topic. */
    bool truncated = len > sink->dlq_max_bytes;
    if (truncated)
        len = sink->dlq_max_bytes;
    for (;;) {
        rd_kafka_headers_t *hdrs = rd_kafka_headers_new(7);
        if (truncated)
            rd_kafka_header_add(hdrs, "truncated", -1, original_len, -1);
        if (key_truncated)
            rd_kafka_header_add(hdrs, "key_truncated", -1, original_key_len, -1);
        rd_kafka_header_add(hdrs, "reason", -1, reason, -1);
        rd_kafka_header_add(hdrs, "error", -1, error, -1);
        rd_kafka_header_add(hdrs, "source_topic", -1, src_topic, -1);
        rd_kafka_header_add(hdrs, "source_partition", -1, partition, -1);
        rd_kafka_header_add(hdrs, "source_offset", -1, offset, -1);
        rd_kafka_resp_err_t err = rd_kafka_producev(
            sink->rk, RD_KAFKA_V_TOPIC(sink->dlq_topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY((void *)key, key_len), RD_KAFKA_V_VALUE((void *)value, len),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(pack_source(src_partition, src_offset)),
            RD_KAFKA_V_END);
        if (!err) {
            atomic_fetch_add(&tw_metrics.dead_letters_total, 1);
            return 0;
        }
        rd_kafka_headers_destroy(hdrs); /* not taken over on failure */
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || !may_wait) {
            log_ratelimited(LOG_LEVEL_ERROR, "produce.dlq", 10, "produce dead letter: %s",
                            rd_kafka_err2str(err));
            return TW_ERR_KAFKA;
        }
        sink_wait_for_room(sink);
    }
}

int kafka_sink_produce_dead_letter(kafka_sink_t *sink, const void *key, size_t key_len,
                                   const void *value, size_t len, const char *reason,
                                   const char *error, const char *src_topic, int32_t src_partition,
                                   int64_t src_offset)
{
    return sink_dead_letter(sink, key, key_len, value, len, reason, error, src_topic, src_partition,
                            src_offset, true);
}

void kafka_sink_poll(kafka_sink_t *sink, int timeout_ms)
{
    rd_kafka_poll(sink->rk, timeout_ms);
}

/* Slice of a flush between two looks at the producer's fatal state. */
#define SINK_FLUSH_SLICE_MS 100

int kafka_sink_flush(kafka_sink_t *sink, int timeout_ms)
{
    /* Once the producer has a fatal error (the idempotent producer lost its sequence) nothing
     * left can be delivered, yet requests already in flight stay counted until their brokers
     * answer: waiting for them only held the partitions and the worker's exit for the whole
     * timeout (the drain's, then the revoke's). Their posts stay uncommitted either way. */
    int64_t deadline = metrics_now_mono_ms() + timeout_ms;
    while (rd_kafka_outq_len(sink->rk) > 0 && !rd_kafka_fatal_error(sink->rk, NULL, 0)) {
        int64_t left = deadline - metrics_now_mono_ms();
        if (left <= 0)
            break;
        rd_kafka_flush(sink->rk, left < SINK_FLUSH_SLICE_MS ? (int)left : SINK_FLUSH_SLICE_MS);
    }
    return rd_kafka_outq_len(sink->rk);
}
