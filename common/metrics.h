/* Process metrics in Prometheus text format. Counters are atomics updated by the pipeline
 * threads; the HTTP thread renders them at scrape time. Names: tidewatch_<stage>_<what>_<unit>,
 * _total on counters. */
#ifndef TW_METRICS_H
#define TW_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"
#include "post.h"
#include "rules.h"

typedef struct {
    atomic_uint_fast64_t posts_total;
    atomic_uint_fast64_t post_bytes_total;
    atomic_uint_fast64_t decode_failures_total[POST_REASON_COUNT];
    atomic_uint_fast64_t dead_letters_total;
    atomic_uint_fast64_t alerts_total[RULE_SEVERITY_CRITICAL + 1]; /* by highest severity */
    atomic_uint_fast64_t duplicates_total;
    atomic_uint_fast64_t dedup_unavailable_total;
    atomic_uint_fast64_t redis_errors_total;
    atomic_uint_fast64_t batches_total;
    atomic_uint_fast64_t produce_errors_total;
    atomic_uint_fast64_t scan_seconds_micros_total; /* match stage time, microseconds */
    atomic_int_fast64_t last_loop_unix;             /* liveness: poll loop heartbeat */
    atomic_int assigned_partitions;
    atomic_int rules_loaded;
    atomic_uint_fast64_t rules_patterns;
} metrics_t;

extern metrics_t tw_metrics;

/* Appends the exposition text to out. rules_version may be NULL. */
void metrics_render(buf_t *out, const char *rules_version);

#endif
