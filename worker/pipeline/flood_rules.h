/* The worker's flood guard (flood/flood.h) set up from the configuration and a rule set. */
#ifndef TW_FLOOD_RULES_H
#define TW_FLOOD_RULES_H

#include "config/config.h"
#include "flood/flood.h"
#include "rules/rules.h"

/* A guard for rules with the limits of cfg (flood.*) and their own `flood:` keys, sharing
 * decisions through transport (NULL: this worker alone). *out is NULL when no rule is guarded
 * (flood.max_share 0 and no rule with its own share): the pipeline then skips the guard.
 * Returns 0 or TW_ERR_NOMEM. */
int flood_rules_guard_new(const config_t *cfg, const rule_set_t *rules,
                          const flood_transport_t *transport, flood_guard_t **out);

/* Gives the guard a reloaded rule set (flood_guard_set_rules with the rules' own limits).
 * Returns 0 or TW_ERR_NOMEM (the guard keeps the old rules: its indexes are then stale, so
 * the caller detaches it). */
int flood_rules_guard_update(flood_guard_t *guard, const config_t *cfg, const rule_set_t *rules);

#endif
