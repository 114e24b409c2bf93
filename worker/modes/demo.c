#include "modes/demo.h"

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "modes/embedded.h"
#include "util/log.h"
#include "metrics/metrics.h"
#include "modes/run.h"

#define DEMO_CATEGORIES 16

typedef struct {
    const config_t *cfg;
    atomic_int *stop;
    int rc;
    atomic_int done;
    double seconds;
} demo_worker_t;

typedef struct {
    char name[32];
    int count;
} demo_tally_t;

static void tally_add(demo_tally_t *t, size_t *n, const char *name)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(t[i].name, name) == 0) {
            t[i].count++;
            return;
        }
    }
    if (*n < DEMO_CATEGORIES) {
        snprintf(t[*n].name, sizeof(t[*n].name), "%s", name);
        t[*n].count = 1;
        (*n)++;
    }
}

static void *demo_worker_thread(void *arg)
{
    demo_worker_t *w = arg;
    run_options_t opts = {.stop = w->stop, .stop_at_end = true, .force_memory_store = true};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    w->rc = run_worker(w->cfg, &opts);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    w->seconds = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    atomic_store(&w->done, 1);
    return NULL;
}

static rd_kafka_t *demo_client(rd_kafka_type_t type, const char *bootstraps, const char *group)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (bootstraps)
        rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, errstr, sizeof(errstr));
    if (group) {
        rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr));
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
    }
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (!rk) {
        log_error("demo: %s", errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

static int demo_produce_posts(const char *bootstraps, const char *topic, int *nposts)
{
    const embedded_file_t *posts = embedded_find("posts.jsonl");
    rd_kafka_t *rk = demo_client(RD_KAFKA_PRODUCER, bootstraps, NULL);
    if (!posts || !rk)
        return TW_ERR_IO;
    const char *p = (const char *)posts->data, *end = p + posts->len;
    *nposts = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (len) {
            char key[16];
            int klen = snprintf(key, sizeof(key), "%d", *nposts);
            rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, (size_t)klen),
                              RD_KAFKA_V_VALUE((void *)p, len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            (*nposts)++;
        }
        p += len + 1;
    }
    int left = rd_kafka_flush(rk, 10000) ? rd_kafka_outq_len(rk) : 0;
    rd_kafka_destroy(rk);
    return left ? TW_ERR_KAFKA : 0;
}

static void demo_print_alert(const char *value, size_t len, demo_tally_t *cats, size_t *ncats,
                             int *max_dup, int *max_dup_authors)
{
    json_t *alert = json_loadb(value, len, 0, NULL);
    if (!alert)
        return;
    printf("ALERT %-8s", json_string_value(json_object_get(alert, "post_id")));
    json_t *matches = json_object_get(alert, "matches");
    size_t i;
    json_t *m;
    const char *snippet = NULL;
    json_array_foreach(matches, i, m)
    {
        const char *category = json_string_value(json_object_get(m, "category"));
        printf(" %s[%s]", json_string_value(json_object_get(m, "rule")),
               json_string_value(json_object_get(m, "severity")));
        tally_add(cats, ncats, category ? category : "?");
        if (!snippet)
            snippet = json_string_value(json_object_get(m, "snippet"));
    }
    if (json_array_size(matches) == 0)
        printf(" campaign (no rule hit)");
    json_t *dup = json_object_get(alert, "duplicate");
    if (json_is_object(dup)) {
        int count = (int)json_integer_value(json_object_get(dup, "count"));
        int authors = (int)json_integer_value(json_object_get(dup, "authors"));
        printf("  dup %.8s x%d", json_string_value(json_object_get(dup, "cluster")), count);
        if (count > *max_dup) {
            *max_dup = count;
            *max_dup_authors = authors;
        }
    }
    if (snippet)
        printf("\n      \"%s\"", snippet);
    printf("\n");
    fflush(stdout);
    json_decref(alert);
}

/* Reads partition 0 of topic from the beginning, calling on_record for each record, until the
 * worker is done and every record it published (up to the high watermark) has been read. */
static int demo_read_topic(const char *bootstraps, const char *topic, demo_worker_t *worker,
                           void (*on_record)(void *ctx, const rd_kafka_message_t *msg), void *ctx)
{
    rd_kafka_t *rk = demo_client(RD_KAFKA_CONSUMER, bootstraps, "tidewatch-demo-viewer");
    if (!rk)
        return TW_ERR_KAFKA;
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    int64_t next = 0, high = -1;
    while (high < 0 || next < high) {
        if (high < 0 && atomic_load(&worker->done)) {
            int64_t low;
            if (rd_kafka_query_watermark_offsets(rk, topic, 0, &low, &high, 5000) != 0)
                break;
            continue;
        }
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, 100);
        if (!msg)
            continue;
        if (!msg->err) {
            next = msg->offset + 1;
            on_record(ctx, msg);
        }
        rd_kafka_message_destroy(msg);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return 0;
}

typedef struct {
    demo_tally_t cats[DEMO_CATEGORIES];
    size_t ncats;
    int nalerts;
    int max_dup;
    int max_dup_authors;
    demo_tally_t reasons[DEMO_CATEGORIES];
    size_t nreasons;
    int ndead;
    demo_tally_t shadow_rules[DEMO_CATEGORIES]; /* shadow hits by rule */
    size_t nshadow_rules;
    int nshadow;
    demo_tally_t muted_rules[DEMO_CATEGORIES];
    size_t nmuted_rules;
    int nmuted;
} demo_stats_t;

static void on_alert(void *ctx, const rd_kafka_message_t *msg)
{
    demo_stats_t *st = ctx;
    st->nalerts++;
    demo_print_alert(msg->payload, msg->len, st->cats, &st->ncats, &st->max_dup,
                     &st->max_dup_authors);
}

static void on_dead_letter(void *ctx, const rd_kafka_message_t *msg)
{
    demo_stats_t *st = ctx;
    rd_kafka_headers_t *hdrs = NULL;
    const void *reason = NULL;
    size_t len = 0;
    char name[32] = "?";
    if (rd_kafka_message_headers(msg, &hdrs) == 0 &&
        rd_kafka_header_get_last(hdrs, "reason", &reason, &len) == 0)
        snprintf(name, sizeof(name), "%.*s", (int)len, (const char *)reason);
    st->ndead++;
    tally_add(st->reasons, &st->nreasons, name);
}

/* A shadow alert: the hits of shadow rules (and of muted ones), never on the alert topic. */
static void on_shadow(void *ctx, const rd_kafka_message_t *msg)
{
    demo_stats_t *st = ctx;
    json_t *alert = json_loadb(msg->payload, msg->len, 0, NULL);
    json_t *matches = json_object_get(alert, "matches");
    printf("SHADOW %-8s", json_string_value(json_object_get(alert, "post_id")));
    for (size_t i = 0; i < json_array_size(matches); i++) {
        const char *rule = json_string_value(json_object_get(json_array_get(matches, i), "rule"));
        printf(" %s", rule ? rule : "?");
        tally_add(st->shadow_rules, &st->nshadow_rules, rule ? rule : "?");
        st->nshadow++;
    }
    printf("\n");
    json_decref(alert);
}

/* A rule_muted record of the flood guard. */
static void on_control(void *ctx, const rd_kafka_message_t *msg)
{
    demo_stats_t *st = ctx;
    json_t *rec = json_loadb(msg->payload, msg->len, 0, NULL);
    const char *rule = json_string_value(json_object_get(rec, "rule"));
    const char *type = json_string_value(json_object_get(rec, "type"));
    if (rule && type && strcmp(type, "rule_muted") == 0) {
        printf("MUTED  %s: hit %.0f%% of %lld posts; its hits go to shadow until the cool-off "
               "ends or a reload changes it\n",
               rule, json_real_value(json_object_get(rec, "share")) * 100,
               (long long)json_integer_value(json_object_get(rec, "posts")));
        st->nmuted++;
        tally_add(st->muted_rules, &st->nmuted_rules, rule);
    }
    json_decref(rec);
}

static void print_tally(const demo_tally_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%s%s %d", i ? ", " : "  (", t[i].name, t[i].count);
    printf(n ? ")\n" : "\n");
}

static void demo_print_summary(const demo_stats_t *stats, int nposts, double worker_seconds)
{
    printf("\nSummary\n");
    printf("  posts consumed    %d\n", nposts);
    printf("  alerts            %d", stats->nalerts);
    print_tally(stats->cats, stats->ncats);
    printf("  largest cluster   %d posts from %d authors\n", stats->max_dup,
           stats->max_dup_authors);
    printf("  dead letters      %d", stats->ndead);
    print_tally(stats->reasons, stats->nreasons);
    printf("  shadow hits       %d", stats->nshadow);
    print_tally(stats->shadow_rules, stats->nshadow_rules);
    printf("  muted rules       %d", stats->nmuted);
    print_tally(stats->muted_rules, stats->nmuted_rules);
    double pipeline_s = metrics_histogram_sum(&tw_metrics.scan_seconds);
    printf("  worker time       %.2f s, of which %.1f ms decoding, normalizing, matching "
           "and fingerprinting (%.0f posts/s);\n"
           "                    the rest is joining the group and broker round trips\n",
           worker_seconds, pipeline_s * 1e3, pipeline_s > 0 ? nposts / pipeline_s : 0.0);
}

/* The demo's settings: the in-process broker's topics and the embedded rules. */
static void demo_configure(config_t *cfg, const char *bootstraps, const char *rules)
{
    tw_diag_t diag;
    tw_diag_init(&diag);
    config_set(cfg, "brokers", bootstraps, "demo", &diag);
    config_set(cfg, "group", "tidewatch-demo", "demo", &diag);
    config_set(cfg, "input_topic", "posts", "demo", &diag);
    config_set(cfg, "output_topic", "alerts", "demo", &diag);
    config_set(cfg, "dlq_topic", "posts.dlq", "demo", &diag);
    config_set(cfg, "shadow_topic", "alerts.shadow", "demo", &diag);
    config_set(cfg, "campaign.topic", "control", "demo", &diag);
    if (!cfg->rules_path[0])
        config_set(cfg, "rules", rules, "demo", &diag);
    /* show the rule-less copy-paste campaign in the sample too */
    if (cfg->dedup_alert_min_count == 0)
        config_set(cfg, "dedup.alert_min_count", "5", "demo", &diag);
    tw_diag_fini(&diag);
}

int demo_main(config_t *cfg, atomic_int *stop)
{
    char dir[] = "/tmp/tidewatch-demo-XXXXXX";
    if (!mkdtemp(dir) || embedded_write_all(dir) != 0) {
        log_error("demo: cannot prepare a temporary directory");
        return TW_ERR_IO;
    }
    char rules[sizeof(dir) + 32];
    snprintf(rules, sizeof(rules), "%s/rules.yaml", dir);

    rd_kafka_t *owner = demo_client(RD_KAFKA_PRODUCER, NULL, NULL);
    rd_kafka_mock_cluster_t *mock = owner ? rd_kafka_mock_cluster_new(owner, 1) : NULL;
    if (!mock) {
        log_error("demo: cannot start the in-process broker");
        if (owner)
            rd_kafka_destroy(owner);
        return TW_ERR_KAFKA;
    }
    const char *bootstraps = rd_kafka_mock_cluster_bootstraps(mock);
    rd_kafka_mock_topic_create(mock, "posts", 3, 1);
    rd_kafka_mock_topic_create(mock, "alerts", 1, 1);
    rd_kafka_mock_topic_create(mock, "posts.dlq", 1, 1);
    rd_kafka_mock_topic_create(mock, "alerts.shadow", 1, 1);
    rd_kafka_mock_topic_create(mock, "control", 1, 1);

    demo_configure(cfg, bootstraps, rules);

    int nposts = 0;
    int rc = demo_produce_posts(bootstraps, "posts", &nposts);
    printf("tidewatch demo: in-process Kafka broker at %s, %d sample posts in topic 'posts'\n"
           "rules: %s\n\n",
           bootstraps, nposts, cfg->rules_path);
    fflush(stdout);

    demo_worker_t worker = {.cfg = cfg, .stop = stop};
    demo_stats_t stats;
    memset(&stats, 0, sizeof(stats));
    pthread_t tid;
    if (rc == 0 && pthread_create(&tid, NULL, demo_worker_thread, &worker) == 0) {
        demo_read_topic(bootstraps, "alerts", &worker, on_alert, &stats);
        pthread_join(tid, NULL);
        demo_read_topic(bootstraps, "posts.dlq", &worker, on_dead_letter, &stats);
        demo_read_topic(bootstraps, "alerts.shadow", &worker, on_shadow, &stats);
        demo_read_topic(bootstraps, "control", &worker, on_control, &stats);
        rc = worker.rc;
        demo_print_summary(&stats, nposts, worker.seconds);
    }
    rd_kafka_mock_cluster_destroy(mock);
    rd_kafka_destroy(owner);
    char cmd[sizeof(dir) + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        log_warn("demo: could not remove %s", dir);
    return rc;
}
