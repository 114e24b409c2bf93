/* Unit tests of common/metrics.c: histograms, per-rule series with the series cap, alerts by
 * category and severity, label escaping, carrying counts over a reload, and the consumer-lag
 * table. The exposition itself is checked with promtool in tests/integration/test_ops.py. */
#include <math.h>
#include <string.h>

#include "decode/post.h"
#include "metrics/metrics.h"
#include "pipeline/stage_metrics.h"
#include "rules/rules.h"
#include "tw_test.h"

static const char rules_yaml[] = "rules:\n"
                                 "  - id: a.one\n"
                                 "    category: scam\n"
                                 "    severity: high\n"
                                 "    keywords: [\"alpha\"]\n"
                                 "  - id: b.two\n"
                                 "    category: spam\n"
                                 "    severity: low\n"
                                 "    keywords: [\"beta\"]\n"
                                 "  - id: 'c.\"quoted\\\\id'\n"
                                 "    category: scam\n"
                                 "    severity: critical\n"
                                 "    keywords: [\"gamma\"]\n"
                                 "  - id: d.four\n"
                                 "    category: malware\n"
                                 "    severity: medium\n"
                                 "    keywords: [\"delta\"]\n";

static rule_set_t *load_rules(const char *yaml)
{
    tw_diag_t diag;
    tw_diag_init(&diag);
    rule_set_t *rs = NULL;
    int rc = rule_set_load_buffer("m.yaml", yaml, strlen(yaml), &rs, &diag);
    for (size_t i = 0; i < diag.count; i++)
        fprintf(stderr, "  %s\n", diag.lines[i]);
    tw_diag_fini(&diag);
    return rc == 0 ? rs : NULL;
}

static char *render(void)
{
    static buf_t b;
    buf_fini(&b);
    buf_init(&b);
    metrics_render(&b);
    return b.failed ? NULL : b.data;
}

TW_TEST(histogram_buckets_are_cumulative)
{
    static const double bounds[] = {1, 5, 10};
    metrics_histogram_t h = {.bounds = bounds, .nbounds = 3, .sum_scale = 1e9};
    metrics_histogram_observe(&h, 0.5);
    metrics_histogram_observe(&h, 1); /* le is inclusive */
    metrics_histogram_observe(&h, 7);
    metrics_histogram_observe(&h, 100);
    metrics_histogram_observe(&h, -3); /* counted in the first bucket, not in the sum */
    TW_ASSERT_INT_EQ(metrics_histogram_count(&h), 5);
    TW_ASSERT_INT_EQ(atomic_load(&h.buckets[0]), 3);
    TW_ASSERT_INT_EQ(atomic_load(&h.buckets[1]), 0);
    TW_ASSERT_INT_EQ(atomic_load(&h.buckets[2]), 1);
    TW_ASSERT_INT_EQ(atomic_load(&h.buckets[3]), 1);
    TW_ASSERT(metrics_histogram_sum(&h) > 108.49 && metrics_histogram_sum(&h) < 108.51);
}

/* One post's ts of year 1 makes an alert delay of about 6.3e10 s, 6.3e19 ns: more than a
 * uint64_t holds, and converting it was undefined behaviour (in practice the sum got garbage).
 * Out-of-range values land in the right bucket and add a clamped amount to the sum; NaN is not
 * an observation at all. */
TW_TEST(histogram_clamps_values_out_of_range)
{
    static const double bounds[] = {1, 5, 10};
    metrics_histogram_t h = {.bounds = bounds, .nbounds = 3, .sum_scale = 1e9};
    const double max_sum = METRICS_HIST_MAX_OBSERVATION_UNITS / 1e9;
    metrics_histogram_observe(&h, 6.3e10);
    TW_ASSERT_INT_EQ(atomic_load(&h.buckets[3]), 1);
    TW_ASSERT(metrics_histogram_sum(&h) > max_sum * 0.999 && metrics_histogram_sum(&h) <= max_sum);
    metrics_histogram_observe(&h, 1e300);
    metrics_histogram_observe(&h, INFINITY);
    TW_ASSERT_INT_EQ(atomic_load(&h.buckets[3]), 3);
    TW_ASSERT(metrics_histogram_sum(&h) <= 3 * max_sum);
    TW_ASSERT(metrics_histogram_sum(&h) > 2.99 * max_sum);
    double before = metrics_histogram_sum(&h);
    metrics_histogram_observe(&h, -1e300);
    metrics_histogram_observe(&h, -INFINITY);
    TW_ASSERT_INT_EQ(atomic_load(&h.buckets[0]), 2);
    TW_ASSERT(metrics_histogram_sum(&h) == before);
    metrics_histogram_observe(&h, NAN);
    TW_ASSERT_INT_EQ(metrics_histogram_count(&h), 5);
    TW_ASSERT(metrics_histogram_sum(&h) == before);
}

TW_TEST(rule_series_are_capped_and_escaped)
{
    rule_set_t *rs = load_rules(rules_yaml);
    TW_ASSERT(rs != NULL);
    metrics_rules_t *mr = NULL;
    TW_ASSERT_INT_EQ(stage_metrics_rules_new(rs, 3, 0.25, NULL, &mr), 0);
    metrics_rules_release(metrics_rules_publish(mr));
    TW_ASSERT(metrics_rules_loaded());
    metrics_rules_t *got = metrics_rules_acquire(rs);
    TW_ASSERT(got == mr);
    metrics_rules_hit(got, 0);
    metrics_rules_hit(got, 0);
    metrics_rules_hit(got, 2);
    metrics_rules_hit(got, 3);
    metrics_rules_hit(got, 3);
    metrics_rules_hit(got, 99); /* out of range: ignored */
    metrics_rules_alert(got, 0);
    metrics_rules_alert(got, 2);
    metrics_rules_alert(got, UINT32_MAX);
    metrics_rules_shadow_hit(got, 1);
    metrics_rules_set_muted(got, 0, true);
    metrics_rules_set_muted(got, 1, true);
    metrics_rules_set_muted(got, 1, false);
    metrics_rules_set_muted(got, 2, false); /* never muted: no series */
    metrics_rules_release(got);

    const char *text = render();
    TW_ASSERT(text != NULL);
    TW_ASSERT(strstr(text, "tidewatch_rule_hits_total{rule=\"b.two\",mode=\"shadow\"} 1\n"));
    TW_ASSERT(!strstr(text, "tidewatch_rule_hits_total{rule=\"a.one\",mode=\"shadow\"}"));
    TW_ASSERT(strstr(text, "tidewatch_rule_muted{rule=\"a.one\"} 1\n"));
    TW_ASSERT(strstr(text, "tidewatch_rule_muted{rule=\"b.two\"} 0\n"));
    TW_ASSERT(!strstr(text, "tidewatch_rule_muted{rule=\"c."));
    TW_ASSERT(strstr(text, "tidewatch_rule_hits_total{rule=\"a.one\",mode=\"live\"} 2\n"));
    TW_ASSERT(strstr(text, "tidewatch_rule_hits_total{rule=\"b.two\",mode=\"live\"} 0\n"));
    /* the id is c."quoted\\id (two backslashes): each is escaped in the label */
    TW_ASSERT(strstr(
        text, "tidewatch_rule_hits_total{rule=\"c.\\\"quoted\\\\\\\\id\",mode=\"live\"} 1\n"));
    TW_ASSERT(
        strstr(text, "tidewatch_rule_hits_total{rule=\"_other\",mode=\"live\"} 2\n")); /* d.four */
    TW_ASSERT(!strstr(text, "d.four"));
    TW_ASSERT(strstr(text, "tidewatch_rules_series_limit_exceeded 1\n"));
    TW_ASSERT(strstr(text, "tidewatch_alerts_total{category=\"scam\",severity=\"high\"} 1\n"));
    TW_ASSERT(strstr(text, "tidewatch_alerts_total{category=\"scam\",severity=\"critical\"} 1\n"));
    TW_ASSERT(strstr(text, "tidewatch_alerts_total{category=\"spam\",severity=\"low\"} 0\n"));
    TW_ASSERT(strstr(text, "tidewatch_alerts_total{category=\"_campaign\",severity=\"none\"} 1\n"));
    TW_ASSERT(strstr(text, "tidewatch_rules_loaded_rules 4\n"));
    TW_ASSERT(strstr(text, "tidewatch_rules_compile_seconds 0.25\n"));
    TW_ASSERT(strstr(text, "tidewatch_rules_info{version=\"sha256:"));

    /* a reload with the same ids carries the counts over: counters stay monotonic */
    rule_set_t *rs2 = load_rules(rules_yaml);
    TW_ASSERT(rs2 != NULL);
    metrics_rules_t *mr2 = NULL;
    TW_ASSERT_INT_EQ(stage_metrics_rules_new(rs2, 10, 0.5, mr, &mr2), 0);
    metrics_rules_t *old = metrics_rules_publish(mr2);
    TW_ASSERT(old == mr);
    metrics_rules_release(old);
    TW_ASSERT(metrics_rules_acquire(rs) == NULL); /* the old rule set counts nothing now */
    text = render();
    TW_ASSERT(strstr(text, "tidewatch_rule_hits_total{rule=\"a.one\",mode=\"live\"} 2\n"));
    TW_ASSERT(strstr(text, "tidewatch_rule_hits_total{rule=\"d.four\",mode=\"live\"} 2\n"));
    TW_ASSERT(!strstr(text, "_other\"}"));
    TW_ASSERT(strstr(text, "tidewatch_alerts_total{category=\"_campaign\",severity=\"none\"} 1\n"));

    metrics_rules_unpublish(mr2);
    TW_ASSERT(!metrics_rules_loaded());
    metrics_rules_release(mr2);
    metrics_rules_release(mr);
    rule_set_free(rs);
    rule_set_free(rs2);
}

TW_TEST(lag_table_skips_unknown_partitions)
{
    metrics_partition_lag_t lags[] = {{0, 5}, {1, -1}, {-1, 3}, {2, 0}};
    metrics_kafka_stats_set("posts", lags, 4, 1, true);
    const char *text = render();
    TW_ASSERT(strstr(text, "tidewatch_consumer_lag_messages{topic=\"posts\",partition=\"0\"} 5\n"));
    TW_ASSERT(strstr(text, "tidewatch_consumer_lag_messages{topic=\"posts\",partition=\"2\"} 0\n"));
    TW_ASSERT(!strstr(text, "partition=\"1\""));
    TW_ASSERT(!strstr(text, "partition=\"-1\""));
    TW_ASSERT(strstr(text, "tidewatch_kafka_coordinator_up 1\n"));
    TW_ASSERT(atomic_load(&tw_metrics.kafka_stats_mono_ms) > 0);
}

TW_TEST(every_family_has_help_and_type)
{
    const char *text = render();
    TW_ASSERT(text != NULL);
    /* each sample's family was announced by a TYPE line before it */
    const char *line = text;
    char last_type[128] = "";
    while (*line) {
        const char *end = strchr(line, '\n');
        TW_ASSERT(end != NULL);
        if (strncmp(line, "# TYPE ", 7) == 0) {
            const char *sp = memchr(line + 7, ' ', (size_t)(end - line - 7));
            TW_ASSERT(sp != NULL);
            snprintf(last_type, sizeof(last_type), "%.*s", (int)(sp - line - 7), line + 7);
        } else if (line[0] != '#') {
            if (strncmp(line, last_type, strlen(last_type)) != 0)
                TW_FAIL("sample outside its family: %.*s (family %s)", (int)(end - line), line,
                        last_type);
        }
        line = end + 1;
    }
}

TW_TEST(decode_reasons_come_from_the_decode_layer)
{
    stage_metrics_init();
    atomic_fetch_add(&tw_metrics.decode_failures_total[POST_TOO_LARGE], 2);
    const char *text = render();
    TW_ASSERT(text != NULL);
    TW_ASSERT(strstr(text, "tidewatch_decode_failures_total{reason=\"invalid_json\"} 0\n"));
    TW_ASSERT(strstr(text, "tidewatch_decode_failures_total{reason=\"too_large\"} 2\n"));
    TW_ASSERT(!strstr(text, "reason=\"ok\""));
    atomic_store(&tw_metrics.decode_failures_total[POST_TOO_LARGE], 0);
}

int main(void)
{
    TW_RUN(TW_CASE(histogram_buckets_are_cumulative), TW_CASE(rule_series_are_capped_and_escaped),
           TW_CASE(lag_table_skips_unknown_partitions),
           TW_CASE(histogram_clamps_values_out_of_range), TW_CASE(every_family_has_help_and_type),
           TW_CASE(decode_reasons_come_from_the_decode_layer));
}
