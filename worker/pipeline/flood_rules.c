/* Flood guard setup: the configured limits, overridden by each rule's `flood:` key. */
#include "pipeline/flood_rules.h"

#include <stdlib.h>

#include "util/err.h"

/* Per-rule limits: a key a rule left out (max_share < 0, min_posts 0) takes cfg's value. */
static flood_override_t *flood_rules_overrides(const config_t *cfg, const rule_set_t *rules,
                                               bool *any_guarded)
{
    flood_override_t *own = calloc(rules->nrules ? rules->nrules : 1, sizeof(*own));
    if (!own)
        return NULL;
    *any_guarded = cfg->flood_max_share > 0;
    for (size_t i = 0; i < rules->nrules; i++) {
        const rule_t *r = &rules->rules[i];
        if (!r->flood_set)
            continue;
        own[i].set = true;
        own[i].max_share = r->flood_max_share >= 0 ? r->flood_max_share : cfg->flood_max_share;
        own[i].min_posts = r->flood_min_posts ? r->flood_min_posts : (uint32_t)cfg->flood_min_posts;
        if (own[i].max_share > 0)
            *any_guarded = true;
    }
    return own;
}

int flood_rules_guard_new(const config_t *cfg, const rule_set_t *rules,
                          const flood_transport_t *transport, flood_guard_t **out)
{
    *out = NULL;
    bool any_guarded;
    flood_override_t *own = flood_rules_overrides(cfg, rules, &any_guarded);
    if (!own)
        return TW_ERR_NOMEM;
    if (!any_guarded) {
        free(own);
        return 0;
    }
    flood_limits_t limits = {.max_share = cfg->flood_max_share,
                             .min_posts = (uint32_t)cfg->flood_min_posts,
                             .window_s = (uint32_t)cfg->flood_window_s,
                             .cooloff_s = (uint32_t)cfg->flood_cooloff_s};
    flood_guard_t *guard = flood_guard_new(&limits, cfg->group, transport);
    int rc = guard ? flood_guard_set_rules(guard, rules, own) : TW_ERR_NOMEM;
    free(own);
    if (rc != 0) {
        flood_guard_free(guard);
        return rc;
    }
    *out = guard;
    return 0;
}

int flood_rules_guard_update(flood_guard_t *guard, const config_t *cfg, const rule_set_t *rules)
{
    bool any_guarded;
    flood_override_t *own = flood_rules_overrides(cfg, rules, &any_guarded);
    if (!own)
        return TW_ERR_NOMEM;
    int rc = flood_guard_set_rules(guard, rules, own);
    free(own);
    return rc;
}
