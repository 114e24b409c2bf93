#include "pipeline/engine.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/log.h"
#include "metrics/metrics.h"
#include "pipeline/stage_metrics.h"

#define MEMORY_STORE_MAX_CLUSTERS (1u << 20)

int engine_load_rules(const char *path, rule_set_t **rules, match_db_t **db, tw_diag_t *diag)
{
    return engine_load_rules_cached(path, "auto", rules, db, diag);
}

int engine_load_rules_cached(const char *path, const char *cache_setting, rule_set_t **rules,
                             match_db_t **db, tw_diag_t *diag)
{
    *rules = NULL;
    *db = NULL;
    if (!path || !*path) {
        tw_diag_add(diag, "no rules file given (--rules FILE or the `rules` key)");
        return TW_ERR_CONFIG;
    }
    char cache_dir[4096] = "";
    if (cache_setting && strcmp(cache_setting, "auto") == 0) {
        if (match_cache_dir_default(cache_dir, sizeof(cache_dir)) != 0)
            cache_dir[0] = '\0';
    } else if (cache_setting && strcmp(cache_setting, "off") != 0) {
        snprintf(cache_dir, sizeof(cache_dir), "%s", cache_setting);
    }
    int rc = rule_set_load(path, rules, diag);
    if (rc != 0)
        return rc;
    rc = match_db_compile_cached(*rules, cache_dir, db, diag);
    if (rc == 0) {
        /* A set whose own examples fail is refused like one that does not compile. */
        size_t passed = 0, failed = 0;
        rc = match_db_check_examples(*db, diag, &passed, &failed);
        if (rc == 0 && failed) {
            tw_diag_add(diag, "%s: %zu of %zu examples failed", path, failed, passed + failed);
            rc = TW_ERR_COMPILE;
        }
        if (rc != 0) {
            match_db_free(*db);
            *db = NULL;
        }
    }
    if (rc != 0) {
        rule_set_free(*rules);
        *rules = NULL;
    }
    return rc;
}

int engine_open(engine_t *e, const config_t *cfg, bool force_memory)
{
    memset(e, 0, sizeof(*e));
    tw_diag_t diag;
    tw_diag_init(&diag);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc =
        engine_load_rules_cached(cfg->rules_path, cfg->rules_cache_dir, &e->rules, &e->db, &diag);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    e->compile_seconds = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    dedup_campaign_t campaign;
    if (rc == 0)
        rc = dedup_campaign_parse(cfg->campaign_milestones, (uint64_t)cfg->campaign_min_authors,
                                  &campaign, &diag);
    if (rc == 0) {
        bool redis = cfg->redis_url[0] && !force_memory;
        if (redis)
            rc = dedup_redis_new(cfg->redis_url, cfg->dedup_window_s, (int)cfg->redis_timeout_ms,
                                 &e->dedup, &diag);
        else
            rc = dedup_memory_new(cfg->dedup_window_s, MEMORY_STORE_MAX_CLUSTERS, &e->dedup);
        if (rc == 0 && redis && cfg->dedup_on_unavailable == CONFIG_UNAVAILABLE_FAIL_OPEN)
            rc = dedup_memory_new(cfg->dedup_window_s, MEMORY_STORE_MAX_CLUSTERS, &e->fallback);
        if (rc == 0) {
            dedup_campaign_set(e->dedup, &campaign);
            dedup_verify_set(e->dedup, (unsigned)cfg->dedup_verify_pct);
            if (e->fallback)
                dedup_verify_set(e->fallback, (unsigned)cfg->dedup_verify_pct);
        }
    }
    tw_diag_log_all(&diag, NULL, NULL);
    tw_diag_fini(&diag);
    if (rc != 0) {
        engine_close(e);
        return rc;
    }
    /* Per-rule counters; without memory for them the worker still runs, uncounted per rule. */
    if (stage_metrics_rules_new(e->rules, (size_t)cfg->metrics_max_rule_series, e->compile_seconds,
                                NULL, &e->rule_metrics) == 0)
        metrics_rules_release(metrics_rules_publish(e->rule_metrics));
    log_info("rules %s loaded: %zu rules, %zu patterns, compiled in %.3f s, duplicate store %s",
             e->rules->version, e->rules->nrules, e->rules->npatterns, e->compile_seconds,
             e->dedup->ops->name);
    return 0;
}

void engine_close(engine_t *e)
{
    metrics_rules_unpublish(e->rule_metrics);
    metrics_rules_release(e->rule_metrics);
    dedup_store_free(e->dedup);
    dedup_store_free(e->fallback);
    match_db_free(e->db);
    rule_set_free(e->rules);
    memset(e, 0, sizeof(*e));
}
