/* The examples runner: every rule's examples scanned against the compiled database. */
#include "match/match_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int match_db_check_examples(const match_db_t *db, tw_diag_t *diag, size_t *passed, size_t *failed)
{
    *passed = *failed = 0;
    const rule_set_t *rs = db->rs;
    match_scratch_t *scratch = NULL;
    match_set_t set;
    match_set_init(&set);
    normalized_t norm;
    normalized_init(&norm);
    int rc = match_scratch_new(db, &scratch);
    for (size_t r = 0; rc == 0 && r < rs->nrules; r++) {
        const rule_t *rule = &rs->rules[r];
        /* A rule limited to some languages is tried in the first of them. */
        const char *lang = rule->nlangs ? rule->langs[0] : NULL;
        for (size_t e = 0; rc == 0 && e < rule->nexamples; e++) {
            const rule_example_t *ex = &rule->examples[e];
            rc = normalize_text(ex->text, strlen(ex->text), &norm);
            if (rc == TW_ERR_NOMEM)
                break;
            bool hit = false;
            if (rc == 0) {
                rc = match_scan_post(db, scratch, &norm, lang, lang ? strlen(lang) : 0, &set);
                for (size_t i = 0; rc == 0 && i < set.count; i++)
                    hit = hit || set.hits[i].rule_index == r;
            }
            if (rc != 0 && rc != TW_ERR_NOMEM) {
                rc = 0; /* invalid UTF-8 in an example cannot match anything */
                hit = false;
            }
            if (rc != 0)
                break;
            if (hit == (ex->should_match != 0)) {
                (*passed)++;
                continue;
            }
            (*failed)++;
            char q[TW_DIAG_QUOTE_SIZE];
            tw_diag_add(diag, "%s:%d: rule %s: example '%s' %s", rule->file, ex->line, rule->id,
                        tw_diag_quote(ex->text, strlen(ex->text), 0, q),
                        ex->should_match ? "should match but does not"
                                         : "should not match but does");
        }
    }
    normalized_fini(&norm);
    match_set_fini(&set);
    match_scratch_free(scratch);
    return rc;
}
