#include "engine.h"

#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"

#define MEMORY_STORE_MAX_CLUSTERS (1u << 20)

int engine_load_rules(const char *path, rule_set_t **rules, match_db_t **db, tw_diag_t *diag)
{
    *rules = NULL;
    *db = NULL;
    if (!path || !*path) {
        tw_diag_add(diag, "no rules file given (--rules FILE or the `rules` key)");
        return TW_ERR_CONFIG;
    }
    int rc = rule_set_load(path, rules, diag);
    if (rc != 0)
        return rc;
    rc = match_db_compile(*rules, db, diag);
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
    int rc = engine_load_rules(cfg->rules_path, &e->rules, &e->db, &diag);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    e->compile_seconds = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (rc == 0) {
        if (cfg->redis_url[0] && !force_memory)
            rc = dedup_redis_new(cfg->redis_url, cfg->dedup_window_s, (int)cfg->redis_timeout_ms,
                                 &e->dedup, &diag);
        else
            rc = dedup_memory_new(cfg->dedup_window_s, MEMORY_STORE_MAX_CLUSTERS, &e->dedup);
    }
    for (size_t i = 0; i < diag.count; i++)
        log_error("%s", diag.lines[i]);
    tw_diag_fini(&diag);
    if (rc != 0) {
        engine_close(e);
        return rc;
    }
    atomic_store(&tw_metrics.rules_loaded, 1);
    atomic_store(&tw_metrics.rules_patterns, e->rules->npatterns);
    log_info("rules %s loaded: %zu rules, %zu patterns, compiled in %.3f s, duplicate store %s",
             e->rules->version, e->rules->nrules, e->rules->npatterns, e->compile_seconds,
             e->dedup->ops->name);
    return 0;
}

void engine_close(engine_t *e)
{
    dedup_store_free(e->dedup);
    match_db_free(e->db);
    rule_set_free(e->rules);
    memset(e, 0, sizeof(*e));
}
