/* Unit tests of worker/kafka/kafka_common.c: the kafka.* passthrough reaches librdkafka, except
 * the properties tidewatch's delivery guarantees rest on, which are refused with a reason
 * naming the key and where it came from. */
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "kafka/kafka_common.h"
#include "kafka/kafka_sink.h"
#include "util/err.h"
#include "tw_test.h"

static const char *const consumer_defaults[] = {"enable.auto.offset.store", "false", NULL};

/* Builds a conf with one kafka.<key>=value from a config file line; returns the conf (or NULL)
 * and leaves the diagnostics in diag. */
static rd_kafka_conf_t *build_with(const char *key, const char *value, tw_diag_t *diag)
{
    config_t cfg;
    if (config_init(&cfg) != 0)
        return NULL;
    char full[256];
    snprintf(full, sizeof(full), "kafka.%s", key);
    rd_kafka_conf_t *conf = NULL;
    if (config_set(&cfg, full, value, "tidewatch.yaml:7", diag) == 0)
        conf = kafka_conf_build(&cfg, consumer_defaults, diag);
    config_fini(&cfg);
    return conf;
}

static bool diag_has(const tw_diag_t *diag, const char *needle)
{
    for (size_t i = 0; i < diag->count; i++)
        if (strstr(diag->lines[i], needle))
            return true;
    return false;
}

TW_TEST(safe_properties_pass_through)
{
    static const char *const safe[][2] = {
        {"statistics.interval.ms", "1000"}, {"session.timeout.ms", "6000"},
        {"security.protocol", "plaintext"}, {"linger.ms", "20"},
        {"auto.commit.interval.ms", "500"}, {"message.max.bytes", "2000000"}};
    for (size_t i = 0; i < sizeof(safe) / sizeof(safe[0]); i++) {
        tw_diag_t diag;
        tw_diag_init(&diag);
        rd_kafka_conf_t *conf = build_with(safe[i][0], safe[i][1], &diag);
        if (!conf) {
            for (size_t k = 0; k < diag.count; k++)
                fprintf(stderr, "  %s\n", diag.lines[k]);
            tw_diag_fini(&diag);
            TW_FAIL("kafka.%s refused", safe[i][0]);
        }
        char got[64];
        size_t got_size = sizeof(got);
        TW_ASSERT_INT_EQ(rd_kafka_conf_get(conf, safe[i][0], got, &got_size), RD_KAFKA_CONF_OK);
        TW_ASSERT_STR_EQ(got, safe[i][1]);
        rd_kafka_conf_destroy(conf);
        tw_diag_fini(&diag);
    }
}

TW_TEST(properties_correctness_rests_on_are_refused)
{
    /* each refused key (and librdkafka's aliases of it), with a word its reason must contain */
    static const char *const refused[][3] = {
        {"enable.auto.offset.store", "true", "acknowledged"},
        {"enable.auto.commit", "false", "commit"},
        {"auto.commit.enable", "false", "commit"},
        {"enable.idempotence", "false", "duplicat"},
        {"acks", "1", "lost"},
        {"request.required.acks", "1", "lost"},
        {"message.timeout.ms", "30000", "stop"},
        {"delivery.timeout.ms", "30000", "stop"},
        {"partition.assignment.strategy", "cooperative-sticky", "eager"},
        {"enable.partition.eof", "true", "end"},
        {"group.id", "other", "`group`"},
        {"bootstrap.servers", "b:9092", "`brokers`"},
        {"metadata.broker.list", "b:9092", "`brokers`"},
        {"auto.offset.reset", "latest", "`auto_offset_reset`"},
        {"transactional.id", "tw", "transaction"},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        tw_diag_t diag;
        tw_diag_init(&diag);
        rd_kafka_conf_t *conf = build_with(refused[i][0], refused[i][1], &diag);
        if (conf) {
            rd_kafka_conf_destroy(conf);
            tw_diag_fini(&diag);
            TW_FAIL("kafka.%s=%s accepted", refused[i][0], refused[i][1]);
        }
        char key[128];
        snprintf(key, sizeof(key), "tidewatch.yaml:7: kafka.%s", refused[i][0]);
        bool named = diag_has(&diag, key) && diag_has(&diag, "refused");
        bool why = diag_has(&diag, refused[i][2]);
        if (!named || !why) {
            for (size_t k = 0; k < diag.count; k++)
                fprintf(stderr, "  %s\n", diag.lines[k]);
            tw_diag_fini(&diag);
            TW_FAIL("kafka.%s: the error must name the key, its origin and why (\"%s\")",
                    refused[i][0], refused[i][2]);
        }
        tw_diag_fini(&diag);
    }
}

static void ignore_delivery(void *opaque, int32_t partition, int64_t offset, int err,
                            const char *errstr)
{
    (void)opaque;
    (void)partition;
    (void)offset;
    (void)err;
    (void)errstr;
}

/* A dead letter is cut to dlq_max_bytes so that it can always be produced; a cap the producer
 * itself would refuse (message.max.bytes) defeats that, and the refused dead letter stopped
 * the worker on the same post after every restart. Refused at startup instead. */
TW_TEST(record_caps_must_fit_the_producer_limit)
{
    config_t cfg;
    TW_ASSERT_INT_EQ(config_init(&cfg), 0);
    tw_diag_t diag;
    tw_diag_init(&diag);
    TW_ASSERT_INT_EQ(config_set(&cfg, "dlq_max_bytes", "1000000", "flag", &diag), 0);
    kafka_sink_t *sink = NULL;
    int rc = kafka_sink_new(&cfg, ignore_delivery, NULL, &sink, &diag);
    kafka_sink_free(sink);
    sink = NULL;
    bool named = diag_has(&diag, "dlq_max_bytes") && diag_has(&diag, "message.max.bytes");
    tw_diag_fini(&diag);
    if (rc != TW_ERR_CONFIG || !named) {
        config_fini(&cfg);
        TW_FAIL("dlq_max_bytes 1000000 over the default message.max.bytes: rc %d, named %d", rc,
                named);
    }
    /* the alert cap likewise */
    tw_diag_init(&diag);
    TW_ASSERT_INT_EQ(config_set(&cfg, "dlq_max_bytes", "524288", "flag", &diag), 0);
    TW_ASSERT_INT_EQ(config_set(&cfg, "alert_max_bytes", "990000", "flag", &diag), 0);
    rc = kafka_sink_new(&cfg, ignore_delivery, NULL, &sink, &diag);
    kafka_sink_free(sink);
    sink = NULL;
    named = diag_has(&diag, "alert_max_bytes (990000)");
    tw_diag_fini(&diag);
    if (rc != TW_ERR_CONFIG || !named) {
        config_fini(&cfg);
        TW_FAIL("alert_max_bytes over the default message.max.bytes: rc %d, named %d", rc, named);
    }
    /* raising the producer's limit makes room */
    tw_diag_init(&diag);
    TW_ASSERT_INT_EQ(config_set(&cfg, "kafka.message.max.bytes", "2000000", "flag", &diag), 0);
    rc = kafka_sink_new(&cfg, ignore_delivery, NULL, &sink, &diag);
    kafka_sink_free(sink);
    for (size_t k = 0; k < diag.count; k++)
        fprintf(stderr, "  %s\n", diag.lines[k]);
    tw_diag_fini(&diag);
    config_fini(&cfg);
    TW_ASSERT_INT_EQ(rc, 0);
}

int main(void)
{
    TW_RUN(TW_CASE(safe_properties_pass_through),
           TW_CASE(properties_correctness_rests_on_are_refused),
           TW_CASE(record_caps_must_fit_the_producer_limit));
}
