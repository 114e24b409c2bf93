#include "pipeline/stage_metrics.h"

#include <stdlib.h>

#include "decode/post.h"
#include "util/err.h"

_Static_assert(POST_REASON_COUNT <= METRICS_MAX_DECODE_REASONS,
               "raise METRICS_MAX_DECODE_REASONS: the decode layer has more reasons");
/* metrics_rule_desc_t.severity is the rule severity itself: the orders must agree. */
_Static_assert(RULE_SEVERITY_LOW == 0 && RULE_SEVERITY_MEDIUM == 1 && RULE_SEVERITY_HIGH == 2 &&
                   RULE_SEVERITY_CRITICAL == METRICS_RULE_SEVERITIES - 1,
               "rule severities and metrics severities differ");

void stage_metrics_init(void)
{
    static const char *names[POST_REASON_COUNT];
    for (int r = 0; r < POST_REASON_COUNT; r++)
        names[r] = r == POST_OK ? NULL : post_reason_name((post_reason_t)r);
    metrics_decode_reasons_set(names, POST_REASON_COUNT);
}

int stage_metrics_rules_new(const rule_set_t *rules, size_t max_series, double compile_seconds,
                            const metrics_rules_t *previous, metrics_rules_t **out)
{
    metrics_rule_desc_t *descs = calloc(rules->nrules ? rules->nrules : 1, sizeof(*descs));
    if (!descs) {
        *out = NULL;
        return TW_ERR_NOMEM;
    }
    for (size_t i = 0; i < rules->nrules; i++) {
        const rule_t *r = &rules->rules[i];
        descs[i] = (metrics_rule_desc_t){r->id, r->category, (unsigned)r->severity};
    }
    metrics_rule_set_desc_t set = {
        .key = rules,
        .version = rules->version,
        .npatterns = rules->npatterns,
        .rules = descs,
        .nrules = rules->nrules,
    };
    int rc = metrics_rules_new(&set, max_series, compile_seconds, previous, out);
    free(descs);
    return rc;
}
