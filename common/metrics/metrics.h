/* Process metrics in Prometheus text format (exposition format 0.0.4). Counters and histogram
 * buckets are atomics updated by the pipeline threads with relaxed increments; the HTTP thread
 * renders them at scrape time, so the hot path never allocates, formats or locks per post.
 * Names: tidewatch_<stage>_<what>_<unit>, _total on counters, base units (seconds, bytes).
 *
 * Per-rule state (hits per rule, alerts per category and severity, rules gauges) lives in a
 * metrics_rules_t built when a rule set is loaded: counters are an atomic array indexed by rule
 * index. The published one is what /metrics renders and /readyz calls "rules loaded".
 *
 * This layer knows no pipeline type: rule sets and decode reasons arrive as plain values
 * (worker/pipeline/stage_metrics.c translates), so metrics depends on util alone. */
#ifndef TW_METRICS_H
#define TW_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/buf.h"

#define METRICS_HIST_MAX_BOUNDS    20
#define METRICS_MAX_LAG_PARTITIONS 4096
/* Rule categories get their own label value up to this many; more are counted as "_other". */
#define METRICS_MAX_CATEGORIES 256
/* Slots of decode_failures_total: the decode layer's reasons must fit (stage_metrics.c). */
#define METRICS_MAX_DECODE_REASONS 16

/* A Prometheus histogram with fixed upper bounds. buckets[i] counts observations in
 * (bounds[i-1], bounds[i]]; buckets[nbounds] those above the last bound. The sum is kept as an
 * integer in units of 1/sum_scale (nanoseconds for seconds histograms). */
typedef struct {
    const double *bounds;
    int nbounds;
    double sum_scale;
    atomic_uint_fast64_t buckets[METRICS_HIST_MAX_BOUNDS + 1];
    atomic_uint_fast64_t sum_units;
} metrics_histogram_t;

/* The most one observation adds to a histogram's sum, in sum units: 2^53 (exact in a double;
 * about 104 days for a seconds histogram), so a single absurd value (an alert delay from a post
 * dated year 1) neither overflows the conversion nor swamps the sum. */
#define METRICS_HIST_MAX_OBSERVATION_UNITS 9007199254740992.0

/* Counts value in its bucket and adds it, clamped to [0, METRICS_HIST_MAX_OBSERVATION_UNITS]
 * sum units, to the sum. Infinities count in the first or last bucket; NaN is ignored. */
void metrics_histogram_observe(metrics_histogram_t *h, double value);
uint64_t metrics_histogram_count(const metrics_histogram_t *h);
double metrics_histogram_sum(const metrics_histogram_t *h);

typedef struct {
    int32_t partition;
    int64_t lag; /* librdkafka consumer_lag: high watermark minus committed offset */
} metrics_partition_lag_t;

typedef struct {
    atomic_uint_fast64_t posts_total;
    atomic_uint_fast64_t post_bytes_total;
    atomic_uint_fast64_t decode_failures_total[METRICS_MAX_DECODE_REASONS]; /* by reason index */
    atomic_uint_fast64_t dead_letters_total;
    atomic_uint_fast64_t duplicates_total;
    atomic_uint_fast64_t dedup_unavailable_total;
    atomic_uint_fast64_t redis_errors_total;
    atomic_uint_fast64_t produce_errors_total;
    /* records whose offset repeated or went backwards (re-fetched after a rebalance): dropped,
     * their first copy is the one tracked and published */
    atomic_uint_fast64_t offsets_refused_total;
    atomic_uint_fast64_t rules_reload_failures_total; /* reloads refused (worker/reload.c) */
    /* posts whose campaign claims a lost store reply left unknown, awaiting a recheck (their
     * offsets held): pipeline_recheck_claims */
    atomic_uint_fast64_t campaign_claims_unknown;
    atomic_int redis_up; /* -1 unknown (no round trip yet), 0 last round trip failed, 1 ok */
    metrics_histogram_t scan_seconds;        /* decode..fingerprint time of one batch */
    metrics_histogram_t batch_posts;         /* posts per batch */
    metrics_histogram_t redis_seconds;       /* one Redis round trip (a batch) */
    metrics_histogram_t alert_delay_seconds; /* alert produced minus post ts */
    atomic_int_fast64_t last_loop_unix;      /* poll loop heartbeat, wall clock (a gauge) */
    atomic_int_fast64_t last_loop_mono_ms;   /* same, monotonic clock (liveness); 0 = not yet */
    atomic_int assigned_partitions;
    atomic_int rebalances; /* assignments seen (including empty ones) */
    atomic_int draining;   /* stop requested: no longer ready */
    /* Kafka client state from librdkafka statistics (kafka_source.c stats callback) */
    atomic_int kafka_stats_interval_ms;      /* 0: statistics disabled */
    atomic_int_fast64_t kafka_stats_mono_ms; /* when the last statistics arrived */
    atomic_int kafka_brokers_up;
    atomic_int kafka_coordinator_up;
} metrics_t;

extern metrics_t tw_metrics;

/* Monotonic clock in milliseconds (the clock of the *_mono_ms fields). */
int64_t metrics_now_mono_ms(void);
/* The poll loop (and anything that blocks it on purpose, like producer backpressure) calls
 * this to show it is alive. */
void metrics_heartbeat(void);

/* Build information rendered in tidewatch_build_info (librdkafka version, say). The string
 * must outlive the process's metrics use (a literal or a library's static string). */
void metrics_set_build_info(const char *librdkafka_version);

/* Replaces the consumer-lag table and the Kafka connectivity state (called from the librdkafka
 * statistics callback; takes a lock, never called on the per-post path). Partitions with an
 * unknown lag (negative) are left out. */
void metrics_kafka_stats_set(const char *topic, const metrics_partition_lag_t *lags, size_t n,
                             int brokers_up, bool coordinator_up);

/* Names the decode failure reasons: decode_failures_total[i] renders with reason=names[i];
 * slots with a NULL name (success) are not rendered. n <= METRICS_MAX_DECODE_REASONS; the
 * strings must outlive the process's metrics use. */
void metrics_decode_reasons_set(const char *const *names, size_t n);

/* ---- per rule set ---- */

typedef struct metrics_rules metrics_rules_t;

/* Severities in their order of increasing gravity: the index a metrics_rule_desc_t carries. */
#define METRICS_RULE_SEVERITIES 4 /* low, medium, high, critical */

/* What the counters of one rule need to know about it. */
typedef struct {
    const char *id;
    const char *category; /* NULL = "" */
    unsigned severity;    /* < METRICS_RULE_SEVERITIES */
} metrics_rule_desc_t;

/* A rule set as the metrics see it. key identifies it (compared by address in
 * metrics_rules_acquire, never dereferenced). */
typedef struct {
    const void *key;
    const char *version;
    size_t npatterns;
    const metrics_rule_desc_t *rules;
    size_t nrules;
} metrics_rule_set_desc_t;

/* Builds the counters of a rule set: one hit counter per rule and one alert counter per
 * (category, severity). Rules at index >= max_series share the series rule="_other". The rule
 * ids and categories are copied: rules may be freed before the result. When previous is not
 * NULL, counts of rules with the same id are carried over so a reload keeps counters monotonic.
 * Returns 0 or TW_ERR_NOMEM. */
int metrics_rules_new(const metrics_rule_set_desc_t *rules, size_t max_series,
                      double compile_seconds, const metrics_rules_t *previous,
                      metrics_rules_t **out);

/* Makes mr the rule set that /metrics renders and /readyz reports, and the one pipelines whose
 * rule set is mr's count into (metrics_rules_acquire). Returns the previously published one,
 * or NULL; the caller releases it. The registry holds its own reference to mr. */
metrics_rules_t *metrics_rules_publish(metrics_rules_t *mr);
/* Unpublishes mr if it is the published one (before its rule set is freed). */
void metrics_rules_unpublish(const metrics_rules_t *mr);
/* Drops a reference; the last one frees. NULL is a no-op. */
void metrics_rules_release(metrics_rules_t *mr);

/* Once per batch: the published counters if they belong to the rule set key (compared by
 * address), with a reference the caller releases after the batch; else NULL (count nothing
 * per rule). */
metrics_rules_t *metrics_rules_acquire(const void *key);
/* True when a rule set is published (rules compiled and loaded). */
bool metrics_rules_loaded(void);

/* Per post, lock-free: one hit for each rule index that matched. */
void metrics_rules_hit(metrics_rules_t *mr, uint32_t rule_index);
/* Per post: one hit of a shadow rule, or of a live rule the flood guard muted. */
void metrics_rules_shadow_hit(metrics_rules_t *mr, uint32_t rule_index);
/* The flood guard's state of a rule (tidewatch_rule_muted). */
void metrics_rules_set_muted(metrics_rules_t *mr, uint32_t rule_index, bool muted);
/* One alert whose most severe match is rule_index, or UINT32_MAX for an alert without rule
 * hits (a duplicate campaign): category "_campaign", severity "none". */
void metrics_rules_alert(metrics_rules_t *mr, uint32_t rule_index);

/* Appends the whole exposition text to out. Allocates only inside out. */
void metrics_render(buf_t *out);
/* Copies the published rules version ("" when none) into out. */
void metrics_rules_version(char *out, size_t size);

#endif
