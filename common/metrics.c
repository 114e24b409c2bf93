#include "metrics.h"

#include <string.h>

metrics_t tw_metrics;

static void counter(buf_t *out, const char *name, const char *help, uint64_t value)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s ", name, help, name, name);
    buf_append_u64(out, value);
    buf_append_char(out, '\n');
}

static void gauge(buf_t *out, const char *name, const char *help, int64_t value)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s ", name, help, name, name);
    buf_append_i64(out, value);
    buf_append_char(out, '\n');
}

void metrics_render(buf_t *out, const char *rules_version)
{
    metrics_t *m = &tw_metrics;
    buf_printf(out,
               "# HELP tidewatch_build_info Build and rules information.\n"
               "# TYPE tidewatch_build_info gauge\n"
               "tidewatch_build_info{version=\"%s\",rules_version=\"%s\"} 1\n",
               TIDEWATCH_VERSION, rules_version ? rules_version : "");
    counter(out, "tidewatch_consume_posts_total", "Posts consumed.", atomic_load(&m->posts_total));
    counter(out, "tidewatch_consume_bytes_total", "Bytes of posts consumed.",
            atomic_load(&m->post_bytes_total));
    buf_append_str(out, "# HELP tidewatch_decode_failures_total Posts that could not be decoded, "
                        "by reason.\n# TYPE tidewatch_decode_failures_total counter\n");
    for (int r = POST_OK + 1; r < POST_REASON_COUNT; r++) {
        buf_printf(out, "tidewatch_decode_failures_total{reason=\"%s\"} ",
                   post_reason_name((post_reason_t)r));
        buf_append_u64(out, atomic_load(&m->decode_failures_total[r]));
        buf_append_char(out, '\n');
    }
    counter(out, "tidewatch_dlq_records_total", "Records written to the dead-letter topic.",
            atomic_load(&m->dead_letters_total));
    buf_append_str(out, "# HELP tidewatch_alerts_total Alerts produced, by highest severity.\n"
                        "# TYPE tidewatch_alerts_total counter\n");
    for (int s = RULE_SEVERITY_LOW; s <= RULE_SEVERITY_CRITICAL; s++) {
        buf_printf(out, "tidewatch_alerts_total{severity=\"%s\"} ",
                   rule_severity_name((rule_severity_t)s));
        buf_append_u64(out, atomic_load(&m->alerts_total[s]));
        buf_append_char(out, '\n');
    }
    counter(out, "tidewatch_dedup_duplicates_total", "Posts that joined an existing cluster.",
            atomic_load(&m->duplicates_total));
    counter(out, "tidewatch_dedup_unavailable_total",
            "Posts processed without duplicate information (store unavailable).",
            atomic_load(&m->dedup_unavailable_total));
    counter(out, "tidewatch_redis_errors_total", "Failed Redis batch round trips.",
            atomic_load(&m->redis_errors_total));
    counter(out, "tidewatch_pipeline_batches_total", "Batches processed.",
            atomic_load(&m->batches_total));
    counter(out, "tidewatch_produce_errors_total", "Alert or dead-letter deliveries that failed.",
            atomic_load(&m->produce_errors_total));
    buf_append_str(out, "# HELP tidewatch_match_seconds_total Time spent in the match stage.\n"
                        "# TYPE tidewatch_match_seconds_total counter\n"
                        "tidewatch_match_seconds_total ");
    buf_printf(out, "%.6f\n", (double)atomic_load(&m->scan_seconds_micros_total) / 1e6);
    gauge(out, "tidewatch_loop_heartbeat_timestamp_seconds", "Last turn of the poll loop.",
          atomic_load(&m->last_loop_unix));
    gauge(out, "tidewatch_consumer_assigned_partitions", "Partitions assigned to this worker.",
          atomic_load(&m->assigned_partitions));
    gauge(out, "tidewatch_rules_patterns", "Patterns in the loaded rule set.",
          (int64_t)atomic_load(&m->rules_patterns));
}
