/* The bridge between the pipeline stages and common/metrics: metrics depends on util alone
 * and takes plain values, so what it needs from the decode and rules layers (the names of the
 * decode failure reasons, a rule set's ids, categories and severities) is translated here. */
#ifndef TW_STAGE_METRICS_H
#define TW_STAGE_METRICS_H

#include <stddef.h>

#include "metrics/metrics.h"
#include "rules/rules.h"

/* Gives the metrics the names of the decode failure reasons. Called once at startup, before
 * /metrics can be scraped; calling it again is harmless. */
void stage_metrics_init(void);

/* metrics_rules_new for a loaded rule set: one hit counter per rule, alert counters per
 * (category, severity), counts of rules with the same id carried over from previous. Returns
 * 0 or TW_ERR_NOMEM. */
int stage_metrics_rules_new(const rule_set_t *rules, size_t max_series, double compile_seconds,
                            const metrics_rules_t *previous, metrics_rules_t **out);

#endif
