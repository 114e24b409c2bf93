/* The loaded rules and the duplicate store a mode runs with, built from the configuration
 * the same way for run, scan and demo so the three give the same alerts for the same input. */
#ifndef TW_ENGINE_H
#define TW_ENGINE_H

#include "config/config.h"
#include "dedup/dedup.h"
#include "match/match.h"
#include "metrics/metrics.h"
#include "rules/rules.h"

typedef struct {
    rule_set_t *rules;
    match_db_t *db;
    dedup_store_t *dedup;
    dedup_store_t *fallback; /* in-process store used while Redis is unavailable (fail-open) */
    double compile_seconds;
    metrics_rules_t *rule_metrics; /* published per-rule counters of rules (metrics.h) */
} engine_t;

/* Loads and compiles cfg->rules_path (every problem printed as a log line) and opens the
 * duplicate store (Redis when cfg->redis_url is set, else memory, or memory when
 * force_memory). Returns 0 or a negative tw_err_t. */
int engine_open(engine_t *e, const config_t *cfg, bool force_memory);
void engine_close(engine_t *e);

/* Loads and compiles a rules file, writing each problem to diag. */
int engine_load_rules(const char *path, rule_set_t **rules, match_db_t **db, tw_diag_t *diag);
/* Same, with the compiled-database cache: cache_setting is the rules_cache_dir key ("auto",
 * "off" or a directory; engine_load_rules uses "auto"). Rules whose examples fail are
 * refused (TW_ERR_COMPILE, each failure in diag). */
int engine_load_rules_cached(const char *path, const char *cache_setting, rule_set_t **rules,
                             match_db_t **db, tw_diag_t *diag);

#endif
