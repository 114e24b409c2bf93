/* Keyword views: which normalized views each pattern is scanned in, and the per-view
 * Hyperscan database build. */
#include "match/match_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/array.h"

int match_items_add(match_items_t *list, char *expr, unsigned flags, const match_pat_t *pat)
{
    if (!expr)
        return TW_ERR_NOMEM;
    int rc = 0;
    list->items =
        tw_array_grow(list->items, &list->cap, list->count + 1, sizeof(*list->items), 256, &rc);
    if (rc != 0) {
        free(expr);
        return rc;
    }
    list->items[list->count].expr = expr;
    list->items[list->count].flags = flags;
    list->items[list->count].pat = *pat;
    list->count++;
    return 0;
}

/* Adds the keyword text kw (already in view's form) as a literal of the view. */
static int match_keyword_add(match_items_t *list, const char *kw, size_t len, rule_mode_t mode,
                             normalize_view_t view, match_guard_t guard, match_pat_t base)
{
    const unsigned char *p = (const unsigned char *)kw;
    base.kind = PAT_KEYWORD;
    base.len = (uint32_t)len;
    base.view = (uint8_t)view;
    base.guard = (uint8_t)guard;
    base.bound_left = (mode == RULE_MODE_WORD || mode == RULE_MODE_PREFIX) &&
                      match_cp_is_word(match_cp_at(p, 0, len));
    base.bound_right = (mode == RULE_MODE_WORD || mode == RULE_MODE_SUFFIX) &&
                       match_cp_is_word(match_cp_before(p, len));
    return match_items_add(list, match_keyword_escape(kw), 0, &base);
}

unsigned match_pattern_views(const rule_set_t *rs, const rule_pattern_t *rp, bool derivable)
{
    const rule_t *rule = rp->group == RULE_GROUP_ALLOW ? NULL : &rs->rules[rp->rule_index];
    if (rp->kind == RULE_PATTERN_REGEX)
        return rule && rule->regex_views ? rule->regex_views : RULE_VIEW_FOLDED;
    unsigned v = rule ? rule->keyword_views : 0;
    if (v == 0)
        v = RULE_VIEW_FOLDED | RULE_VIEW_SKELETON;
    if (!derivable)
        v = RULE_VIEW_FOLDED;
    return v;
}

/* Collects the keyword expressions of one rule pattern into the per-view lists. */
int match_keyword_collect(const rule_set_t *rs, size_t i, match_items_t lists[], normalized_t *tmp)
{
    const rule_pattern_t *rp = &rs->patterns[i];
    const rule_t *rule = rp->group == RULE_GROUP_ALLOW ? NULL : &rs->rules[rp->rule_index];
    rule_mode_t mode = rule ? rule->mode : RULE_MODE_WORD;
    match_pat_t base = {.rule_index = rp->rule_index,
                        .pattern_index = (uint32_t)i,
                        .group = (uint8_t)rp->group,
                        .all_index = (uint8_t)rp->all_index};
    bool latin = false;
    bool derivable = match_keyword_derivable(rp->text, &latin);
    size_t kwlen = strlen(rp->text);
    int rc = 0;
    if (derivable && latin) {
        /* A Latin keyword written with diacritics or non-ASCII look-alikes ("đê", "có",
         * "piç") means exactly that: its skeleton ("de", "co", "pic") is another, often
         * common, word. Measured on 50,000 real posts with the 54-language profanity lists,
         * matching such keywords in the skeleton added 3,829 posts, nearly all false ("de",
         * "co", "long"); so only keywords whose skeleton is themselves go there. Accents in
         * the text are still seen through for keywords written without them. */
        if ((rc = normalize_text_view(rp->text, kwlen, NORM_VIEW_SKELETON, tmp)) != 0)
            return rc;
        if (tmp->len != kwlen || memcmp(tmp->text, rp->text, kwlen) != 0)
            derivable = false;
    }
    unsigned views = match_pattern_views(rs, rp, derivable);
    match_guard_t guard = latin ? MATCH_GUARD_LATIN : MATCH_GUARD_NONE;
    if (views & RULE_VIEW_FOLDED)
        rc = match_keyword_add(&lists[NORM_VIEW_FOLDED], rp->text, kwlen, mode, NORM_VIEW_FOLDED,
                               MATCH_GUARD_NONE, base);
    if (rc == 0 && (views & RULE_VIEW_SKELETON)) {
        rc = normalize_text_view(rp->text, kwlen, NORM_VIEW_SKELETON, tmp);
        if (rc == 0 && tmp->len) {
            rc = match_keyword_add(&lists[NORM_VIEW_SKELETON], tmp->text, tmp->len, mode,
                                   NORM_VIEW_SKELETON, guard, base);
            /* Posts whose skeleton is their folded text (most: plain ASCII) skip the skeleton
             * scan, so a keyword whose skeleton differs (Arabic "مدرسة" -> "مدرسه") is looked
             * for in folded text as well. */
            if (rc == 0 && (tmp->len != kwlen || memcmp(tmp->text, rp->text, kwlen) != 0))
                rc = match_keyword_add(&lists[NORM_VIEW_FOLDED], tmp->text, tmp->len, mode,
                                       NORM_VIEW_FOLDED, MATCH_GUARD_NONE, base);
        }
    }
    if (rc == 0 && !derivable && match_keyword_cyrillic_or_greek(rp->text) &&
        (match_pattern_views(rs, rp, true) & RULE_VIEW_SKELETON)) {
        /* A Cyrillic or Greek keyword stays in folded, so that it never fires on the English
         * word its look-alikes spell ("\u0441\u0443\u043a\u0430" reads "cyka"), but it is also
         * looked for in the skeleton where the span mixes Latin letters with others
         * ("c\u0443\u043aa" with Latin c and a): that is how such a word is written past a filter.
         * Only in the skeleton database: the skeleton of a plain Latin post is not scanned. */
        rc = normalize_text_view(rp->text, kwlen, NORM_VIEW_SKELETON, tmp);
        if (rc == 0 && tmp->len && (tmp->len != kwlen || memcmp(tmp->text, rp->text, kwlen) != 0))
            rc = match_keyword_add(&lists[NORM_VIEW_SKELETON], tmp->text, tmp->len, mode,
                                   NORM_VIEW_SKELETON, MATCH_GUARD_MIXED, base);
    }
    if (rc == 0 && (views & RULE_VIEW_SQUASH)) {
        rc = normalize_text_view(rp->text, kwlen, NORM_VIEW_SQUASH, tmp);
        if (rc == 0 && tmp->len)
            rc = match_keyword_add(&lists[NORM_VIEW_SQUASH], tmp->text, tmp->len, mode,
                                   NORM_VIEW_SQUASH, guard, base);
        /* "f r e e m o n e y" squashes to one word, "fremoney": a phrase is also looked for
         * with its spaces taken out. */
        if (rc == 0 && tmp->len && memchr(tmp->text, ' ', tmp->len)) {
            size_t o = 0;
            for (size_t k = 0; k < tmp->len; k++)
                if (tmp->text[k] != ' ' && (o == 0 || tmp->text[k] != tmp->text[o - 1] ||
                                            (unsigned char)tmp->text[k] >= 0x80))
                    tmp->text[o++] = tmp->text[k];
            tmp->text[o] = '\0';
            if (o)
                rc = match_keyword_add(&lists[NORM_VIEW_SQUASH], tmp->text, o, mode,
                                       NORM_VIEW_SQUASH, guard, base);
        }
    }
    return rc;
}

/* Builds one of a view's databases (match_db_t.hs and hs_som): with som_group -1 every
 * pattern, SOM regexes without SOM and reporting once (their hit only calls for the SOM
 * scan); else the SOM regexes of that group alone, as written. Patterns that compile alone
 * can still fail together (rare: resource limits); Hyperscan names only the first failing
 * expression: report it, drop it, build again. Returns the number of failures. */
size_t match_build_view(const rule_set_t *rs, match_items_t *list, size_t id_base, int som_group,
                        hs_database_t **hs, tw_diag_t *diag, bool *nomem)
{
    bool som_only = som_group >= 0;
    size_t count = 0;
    size_t nfailed = 0;
    for (size_t i = 0; i < list->count; i++)
        count += !som_only || (list->items[i].pat.kind == PAT_REGEX_SOM &&
                               list->items[i].pat.som_group == som_group);
    if (count == 0)
        return 0;
    const char **exprs = calloc(count, sizeof(*exprs));
    unsigned *flags = calloc(count, sizeof(*flags));
    unsigned *ids = calloc(count, sizeof(*ids));
    if (!exprs || !flags || !ids) {
        *nomem = true;
        goto out;
    }
    count = 0;
    for (size_t i = 0; i < list->count; i++) {
        const match_item_t *item = &list->items[i];
        bool som = item->pat.kind == PAT_REGEX_SOM;
        if (som_only && !(som && item->pat.som_group == som_group))
            continue;
        exprs[count] = item->expr;
        flags[count] = item->flags;
        if (som && !som_only)
            flags[count] = (item->flags & ~HS_FLAG_SOM_LEFTMOST) | HS_FLAG_SINGLEMATCH;
        ids[count++] = (unsigned)(id_base + i);
    }
    while (count > 0) {
        hs_compile_error_t *cerr = NULL;
        if (hs_compile_ext_multi(exprs, flags, ids, NULL, (unsigned)count, HS_MODE_BLOCK, NULL, hs,
                                 &cerr) == HS_SUCCESS)
            break;
        *hs = NULL;
        nfailed++;
        if (!cerr) {
            *nomem = true;
            break;
        }
        if (cerr->expression < 0 || (size_t)cerr->expression >= count) {
            /* Not about one pattern (out of memory, database too large): nothing to drop. */
            tw_diag_add(diag, "%s: compiling %zu patterns: %s", rs->nfiles ? rs->files[0] : "rules",
                        count, cerr->message);
            hs_free_compile_error(cerr);
            break;
        }
        size_t at = (size_t)cerr->expression;
        match_report(rs, list->items[ids[at] - id_base].pat.pattern_index, cerr->message, diag);
        hs_free_compile_error(cerr);
        count--;
        memmove(&exprs[at], &exprs[at + 1], (count - at) * sizeof(exprs[0]));
        memmove(&flags[at], &flags[at + 1], (count - at) * sizeof(flags[0]));
        memmove(&ids[at], &ids[at + 1], (count - at) * sizeof(ids[0]));
    }
out:
    free(exprs);
    free(flags);
    free(ids);
    return nfailed;
}

int match_rule_info(const rule_set_t *rs, match_db_t *db, tw_diag_t *diag)
{
    db->rule_info = calloc(rs->nrules ? rs->nrules : 1, sizeof(*db->rule_info));
    if (!db->rule_info)
        return TW_ERR_NOMEM;
    for (size_t r = 0; r < rs->nrules; r++) {
        const rule_t *rule = &rs->rules[r];
        match_rule_t *info = &db->rule_info[r];
        info->all_mask = rule->nall >= 32 ? UINT32_MAX : (1u << rule->nall) - 1;
        info->has_langs = rule->nlangs > 0;
        info->within = rule->within;
        info->targets = rule->nfields ? 0 : MATCH_TARGET_TEXT;
        for (size_t f = 0; f < rule->nfields; f++) {
            const char *name = rule->fields[f];
            if (strcmp(name, "text") == 0) {
                info->targets |= MATCH_TARGET_TEXT;
                continue;
            }
            if (strcmp(name, "hashtags") == 0) {
                info->targets |= MATCH_TARGET_HASHTAGS;
                continue;
            }
            size_t k = 0;
            while (k < db->nfields && strcmp(db->field_names[k], name) != 0)
                k++;
            if (k == db->nfields) {
                if (db->nfields == MATCH_MAX_FIELDS) {
                    tw_diag_add(diag, "%s:%d: rule %s: more than %d distinct fields in the set",
                                rule->file, rule->line, rule->id, MATCH_MAX_FIELDS);
                    return TW_ERR_TOO_LARGE;
                }
                if (!(db->field_names[k] = strdup(name)))
                    return TW_ERR_NOMEM;
                db->nfields++;
            }
            info->targets |= 1u << (2 + k);
        }
        if (rule->nall || rule->nlangs || rule->min_matches > 1 || rule->within)
            db->logic = true;
    }
    size_t ndomains = 0;
    for (size_t i = 0; i < rs->npatterns; i++)
        ndomains += rs->patterns[i].kind == RULE_PATTERN_DOMAINS;
    if (ndomains && !(db->domains = calloc(ndomains, sizeof *db->domains)))
        return TW_ERR_NOMEM;
    for (size_t i = 0; i < rs->npatterns; i++) {
        const rule_pattern_t *rp = &rs->patterns[i];
        if (rp->kind == RULE_PATTERN_DOMAINS)
            db->domains[db->ndomains++] = (match_pat_t){.rule_index = rp->rule_index,
                                                        .pattern_index = (uint32_t)i,
                                                        .kind = PAT_DOMAINS,
                                                        .group = (uint8_t)rp->group,
                                                        .all_index = (uint8_t)rp->all_index};
        if (rp->group == RULE_GROUP_ANY) {
            const rule_t *rule = &rs->rules[rp->rule_index];
            db->rule_info[rp->rule_index].min_any = rule->min_matches > 1 ? rule->min_matches : 1;
        } else if (rp->group == RULE_GROUP_NONE) {
            db->rule_info[rp->rule_index].has_except = 1;
            db->logic = true;
        } else if (rp->group == RULE_GROUP_ALLOW) {
            db->has_allow = true;
        }
    }
    return 0;
}
