/* Unit tests of worker/kafka/kafka_source.c against librdkafka's in-process mock cluster: a
 * record the source cannot keep (out of memory while paused) must be fetched again, never
 * skipped with later records of its partition processed (and committed) past it. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "kafka/kafka_source.h"
#include "tw_test.h"

#define NRECORDS 300

static rd_kafka_t *client(rd_kafka_type_t type, const char *bootstraps)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (bootstraps)
        rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (!rk)
        rd_kafka_conf_destroy(conf);
    return rk;
}

static int produce_records(const char *bootstraps, const char *topic, int n)
{
    rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, bootstraps);
    if (!rk)
        return -1;
    for (int i = 0; i < n; i++) {
        char value[32];
        int len = snprintf(value, sizeof(value), "{\"id\":\"%d\",\"text\":\"x\"}", i);
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                          RD_KAFKA_V_VALUE(value, (size_t)len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    }
    int left = rd_kafka_flush(rk, 10000) ? rd_kafka_outq_len(rk) : 0;
    rd_kafka_destroy(rk);
    return left ? -1 : 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

TW_TEST(record_dropped_out_of_memory_is_fetched_again)
{
    rd_kafka_t *owner = client(RD_KAFKA_PRODUCER, NULL);
    TW_ASSERT(owner != NULL);
    rd_kafka_mock_cluster_t *mock = rd_kafka_mock_cluster_new(owner, 1);
    TW_ASSERT(mock != NULL);
    const char *bootstraps = rd_kafka_mock_cluster_bootstraps(mock);
    rd_kafka_mock_topic_create(mock, "posts", 1, 1);
    TW_ASSERT_INT_EQ(produce_records(bootstraps, "posts", NRECORDS), 0);

    config_t cfg;
    TW_ASSERT_INT_EQ(config_init(&cfg), 0);
    tw_diag_t diag;
    tw_diag_init(&diag);
    config_set(&cfg, "brokers", bootstraps, "test", &diag);
    config_set(&cfg, "group", "oom-test", "test", &diag);
    config_set(&cfg, "input_topic", "posts", "test", &diag);
    kafka_source_t *src = NULL;
    int rc = kafka_source_new(&cfg, false, NULL, &src, &diag);
    for (size_t i = 0; i < diag.count; i++)
        fprintf(stderr, "  %s\n", diag.lines[i]);
    tw_diag_fini(&diag);
    TW_ASSERT_INT_EQ(rc, 0);

    /* The first record, then serve the consumer as the Redis pause policy does: records that
     * arrive meanwhile go to the stash (in production those fetched before the pause took
     * effect; here, with fetching left on, all of them), whose growth fails once. */
    kafka_record_t records[64];
    int64_t expected = 0, gaps = 0, seen_max = -1;
    double deadline = now_s() + 30;
    size_t n = 0;
    while (n == 0 && now_s() < deadline)
        n = kafka_source_poll_batch(src, records, 1, 200);
    TW_ASSERT_INT_EQ(n, 1);
    TW_ASSERT_INT_EQ(records[0].offset, 0);
    expected = 1;
    seen_max = 0;
    for (int i = 0; i < 10; i++) /* the stash grows once (64), and holds earlier records */
        kafka_source_idle(src, 5);
    kafka_source_fail_stash_growth(src, 1);
    for (int i = 0; i < 2 * NRECORDS; i++)
        kafka_source_idle(src, 5);
    int unfired = kafka_source_fail_stash_growth(src, 0);

    /* Everything after, in order: a record may come twice, none may be skipped. */
    while (seen_max < NRECORDS - 1 && now_s() < deadline) {
        n = kafka_source_poll_batch(src, records, 64, 200);
        for (size_t i = 0; i < n; i++) {
            if (records[i].offset > expected)
                gaps++;
            if (records[i].offset >= expected)
                expected = records[i].offset + 1;
            if (records[i].offset > seen_max)
                seen_max = records[i].offset;
        }
    }
    kafka_source_close(src);
    config_fini(&cfg);
    rd_kafka_mock_cluster_destroy(mock);
    rd_kafka_destroy(owner);
    TW_ASSERT_INT_EQ(unfired, 0); /* the stash did have to grow, and could not */
    TW_ASSERT_INT_EQ(gaps, 0);
    TW_ASSERT_INT_EQ(seen_max, NRECORDS - 1);
}

int main(void)
{
    TW_RUN(TW_CASE(record_dropped_out_of_memory_is_fetched_again));
}
