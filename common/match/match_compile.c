/* Matching: every keyword and regex of a rule set in one Hyperscan block-mode database.
 *
 * Pattern flags, chosen per kind:
 * - Keywords are already normalized (NFKC + case fold) like the post text, so they compile as
 *   escaped byte literals with no flags: no CASELESS (nothing left to fold), no UTF8 (a valid
 *   UTF-8 literal can only match at code point boundaries of valid UTF-8 text), no SOM (the
 *   start is end - length), and no SINGLEMATCH: the first occurrence may fail the whole-word
 *   check ("freegiveaway free giveaway") and later ones are wanted as spans.
 * - Regexes get CASELESS, so rules written as "SEND \d+ BTC" still match case-folded text, and
 *   SOM_LEFTMOST, so alerts can show where the match starts. (Case folding is full folding, so
 *   a regex literal such as "straße" must be written as the folded "strasse" to match.)
 * - A regex with non-ASCII text (or a \x{...} / \p escape) also gets UTF8, so classes and
 *   quantifiers see characters ("[аa]pple", "ж+"), and UCP, so \w \d \s are Unicode. Hyperscan
 *   rejects \b and \B under UCP, so a regex using them gets UTF8 alone, where \b is an ASCII
 *   word boundary: right for "\bi[’']ve\b", never matching for "\bкупить\b", which is
 *   therefore an error ("use a keyword": keywords have Unicode whole-word matching).
 * - ASCII-only regexes stay byte-oriented. In UTF8 mode every "." or negated class becomes a
 *   multi-byte automaton and bounded repeats such as "[^\n]{500}" exceed Hyperscan's limits (70
 *   of the 625 Snort patterns that compile in byte mode fail in UTF8 mode); for an ASCII pattern
 *   the only difference is that "." counts bytes. Spans are widened to code point boundaries.
 * - Hyperscan cannot track the start of some patterns it can match (large bounded repeats,
 *   long chains of lazy repeats, many UCP classes): those are compiled without SOM, with
 *   SINGLEMATCH, and their span is [end, end) of the first match.
 * - No ALLOWEMPTY: a regex that can match the empty string matches every post, so it is
 *   reported as an error rather than compiled. */
#include "match/match_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Fills db->skel_ascii / skel_arabic from the skeleton view's expressions. */
static void match_skel_filter(match_db_t *db)
{
    const rule_set_t *rs = db->rs;
    memset(db->skel_ascii, 0, sizeof(db->skel_ascii));
    db->skel_arabic = false;
    db->skel_other = false;
    normalized_t tmp;
    normalized_init(&tmp);
    for (size_t i = 0; i < db->npats; i++) {
        const match_pat_t *pat = &db->pats[i];
        if (pat->view != NORM_VIEW_SKELETON)
            continue;
        const rule_pattern_t *rp = &rs->patterns[pat->pattern_index];
        if (pat->kind != PAT_KEYWORD ||
            normalize_text_view(rp->text, strlen(rp->text), NORM_VIEW_SKELETON, &tmp) != 0) {
            /* a regex (or no memory): any change may matter */
            memset(db->skel_ascii, 0xff, sizeof(db->skel_ascii));
            db->skel_arabic = db->skel_other = true;
            continue;
        }
        for (size_t k = 0; k < tmp.len; k++) {
            unsigned char c = (unsigned char)tmp.text[k];
            if (c < 0x80)
                db->skel_ascii[c >> 5] |= 1u << (c & 31);
            else if (c == 0xD8 || c == 0xD9 || c == 0xDA || c == 0xDB)
                db->skel_arabic = true; /* lead bytes of U+0600-06FF */
            else if (c >= 0xC0)
                db->skel_other = true; /* (continuation bytes say nothing) */
        }
    }
    normalized_fini(&tmp);
}

/* The work space of one build: a test-compile entry per rule pattern and the expressions
 * collected for each view. */
typedef struct {
    const rule_set_t *rs;
    match_entry_t *entries;
    size_t *todo;
    match_items_t lists[NORM_VIEW_COUNT];
    normalized_t tmp;
} match_build_t;

static int match_build_init(match_build_t *b, const rule_set_t *rs)
{
    memset(b, 0, sizeof(*b));
    b->rs = rs;
    normalized_init(&b->tmp);
    size_t alloc_n = rs->npatterns ? rs->npatterns : 1;
    b->entries = calloc(alloc_n, sizeof(*b->entries));
    b->todo = calloc(alloc_n, sizeof(*b->todo));
    return b->entries && b->todo ? 0 : TW_ERR_NOMEM;
}

static void match_build_fini(match_build_t *b)
{
    if (b->entries) {
        for (size_t i = 0; i < b->rs->npatterns; i++) {
            free(b->entries[i].expr);
            free(b->entries[i].why);
        }
    }
    for (int v = 0; v < NORM_VIEW_COUNT; v++) {
        for (size_t i = 0; i < b->lists[v].count; i++)
            free(b->lists[v].items[i].expr);
        free(b->lists[v].items);
    }
    normalized_fini(&b->tmp);
    free(b->entries);
    free(b->todo);
}

/* Chooses each regex's flags and test-compiles them all (on the thread pool). */
static int match_build_check_regexes(match_build_t *b)
{
    size_t ntodo = 0;
    for (size_t i = 0; i < b->rs->npatterns; i++) {
        const rule_pattern_t *rp = &b->rs->patterns[i];
        match_entry_t *e = &b->entries[i];
        if (rp->kind != RULE_PATTERN_REGEX)
            continue;
        match_regex_traits_t traits = match_regex_traits(rp->text);
        e->expr = strdup(rp->text);
        e->flags = HS_FLAG_CASELESS | HS_FLAG_SOM_LEFTMOST;
        if (traits.utf8)
            e->flags |= HS_FLAG_UTF8 | (traits.word_boundary ? 0 : HS_FLAG_UCP);
        if (traits.nonascii_boundary) {
            /* Without UCP \b only knows ASCII word characters: "\bкупить\b" would
             * compile and never match. With UCP Hyperscan rejects \b altogether. */
            e->status = CHECK_FAILED;
            e->why = strdup("\\b or \\B next to a non-ASCII character never matches "
                            "(Hyperscan has no Unicode word boundary; use a keyword for a "
                            "whole word)");
        } else {
            b->todo[ntodo++] = i;
        }
        if (!e->expr)
            return TW_ERR_NOMEM;
    }
    match_check_all(b->entries, b->todo, ntodo);
    return 0;
}

/* Puts every keyword and every good regex into the lists of the views it is scanned in and
 * reports the bad regexes; *nfailed counts them. */
static int match_build_collect(match_build_t *b, tw_diag_t *diag, size_t *nfailed)
{
    const rule_set_t *rs = b->rs;
    for (size_t i = 0; i < rs->npatterns; i++) {
        const rule_pattern_t *rp = &rs->patterns[i];
        match_entry_t *e = &b->entries[i];
        int err;
        if (rp->kind == RULE_PATTERN_KEYWORD) {
            if ((err = match_keyword_collect(rs, i, b->lists, &b->tmp)) != 0)
                return err;
            continue;
        }
        if (rp->kind == RULE_PATTERN_DOMAINS)
            continue; /* looked up per host at scan time, not compiled */
        if (e->status == CHECK_FAILED) {
            if (!e->why)
                return TW_ERR_NOMEM;
            match_report(rs, i, e->why, diag);
            (*nfailed)++;
            continue;
        }
        match_pat_t pat = {.rule_index = rp->rule_index,
                           .pattern_index = (uint32_t)i,
                           .kind = e->status == CHECK_OK_NOSOM ? PAT_REGEX_END : PAT_REGEX_SOM,
                           .group = (uint8_t)rp->group,
                           .all_index = (uint8_t)rp->all_index};
        unsigned views = match_pattern_views(rs, rp, true);
        for (int v = 0; v < NORM_VIEW_COUNT; v++) {
            if (!(views & (1u << v)))
                continue;
            pat.view = (uint8_t)v;
            if ((err = match_items_add(&b->lists[v], strdup(e->expr), e->flags, &pat)) != 0)
                return err;
        }
    }
    return 0;
}

/* Builds one Hyperscan database per view from the collected lists. */
static int match_build_views(match_build_t *b, match_db_t *db, tw_diag_t *diag)
{
    size_t total = 0;
    for (int v = 0; v < NORM_VIEW_COUNT; v++)
        total += b->lists[v].count;
    db->pats = calloc(total ? total : 1, sizeof(*db->pats));
    if (!db->pats)
        return TW_ERR_NOMEM;
    bool nomem = false;
    size_t nfailed = 0;
    for (int v = 0; v < NORM_VIEW_COUNT && !nomem; v++) {
        match_items_t *list = &b->lists[v];
        size_t base = db->npats, nsom = 0;
        for (size_t i = 0; i < list->count; i++)
            nsom += list->items[i].pat.kind == PAT_REGEX_SOM;
        size_t groups = (nsom + MATCH_SOM_GROUP - 1) / MATCH_SOM_GROUP;
        size_t per_group = groups > MATCH_SOM_MAX_GROUPS
                               ? (nsom + MATCH_SOM_MAX_GROUPS - 1) / MATCH_SOM_MAX_GROUPS
                               : MATCH_SOM_GROUP;
        groups = (nsom + per_group - 1) / per_group;
        for (size_t i = 0, k = 0; i < list->count; i++)
            if (list->items[i].pat.kind == PAT_REGEX_SOM)
                list->items[i].pat.som_group = (uint8_t)(k++ / per_group);
        for (size_t i = 0; i < list->count; i++)
            db->pats[db->npats++] = list->items[i].pat;
        db->view_count[v] = list->count;
        nfailed += match_build_view(b->rs, list, base, -1, &db->hs[v], diag, &nomem);
        if (groups && !(db->hs_som[v] = calloc(groups, sizeof(*db->hs_som[v])))) {
            nomem = true;
            break;
        }
        db->nsom[v] = groups;
        for (size_t g = 0; g < groups; g++)
            nfailed += match_build_view(b->rs, list, base, (int)g, &db->hs_som[v][g], diag, &nomem);
    }
    return nomem ? TW_ERR_NOMEM : nfailed ? TW_ERR_COMPILE : 0;
}

static int match_db_build(const rule_set_t *rs, match_db_t *db, tw_diag_t *diag)
{
    match_build_t b;
    size_t nfailed = 0;
    int err = match_build_init(&b, rs);
    if (err == 0)
        err = match_build_check_regexes(&b);
    if (err == 0)
        err = match_build_collect(&b, diag, &nfailed);
    /* With bad patterns there is no database to build: report them now rather than after a
     * build that could take a minute. */
    if (err == 0 && nfailed)
        err = TW_ERR_COMPILE;
    if (err == 0)
        err = match_build_views(&b, db, diag);
    match_build_fini(&b);
    return err;
}

int match_db_compile_cached(const rule_set_t *rs, const char *cache_dir, match_db_t **out,
                            tw_diag_t *diag)
{
    *out = NULL;
    if (rs->npatterns > UINT32_MAX / 4)
        return TW_ERR_TOO_LARGE;
    match_db_t *db = calloc(1, sizeof(*db));
    if (!db)
        return TW_ERR_NOMEM;
    db->rs = rs;
    db->nrules = rs->nrules;
    db->npatterns = rs->npatterns;
    int err = match_rule_info(rs, db, diag);
    int dirfd = -1;
    char name[80] = "";
    if (err == 0 && cache_dir && *cache_dir) {
        char key[65];
        if (match_cache_key(rs, key) == 0 && (dirfd = match_cache_dir_open(cache_dir)) >= 0)
            snprintf(name, sizeof(name), "%s.hsdb", key);
        if (dirfd >= 0 && match_cache_load(dirfd, name, rs, db) == 0)
            db->from_cache = true;
    }
    if (err == 0 && !db->from_cache) {
        err = match_db_build(rs, db, diag);
        if (err == 0 && dirfd >= 0)
            match_cache_store(dirfd, name, rs, db);
    }
    if (dirfd >= 0)
        close(dirfd);
    if (err != 0) {
        match_db_free(db);
        return err;
    }
    match_skel_filter(db);
    *out = db;
    return 0;
}

int match_db_compile(const rule_set_t *rs, match_db_t **out, tw_diag_t *diag)
{
    return match_db_compile_cached(rs, NULL, out, diag);
}

void match_db_free_hs(match_db_t *db)
{
    for (int v = 0; v < NORM_VIEW_COUNT; v++) {
        hs_free_database(db->hs[v]);
        db->hs[v] = NULL;
        for (size_t g = 0; g < db->nsom[v]; g++)
            hs_free_database(db->hs_som[v][g]);
        free(db->hs_som[v]);
        db->hs_som[v] = NULL;
        db->nsom[v] = 0;
    }
}

void match_db_free(match_db_t *db)
{
    if (!db)
        return;
    match_db_free_hs(db);
    free(db->pats);
    free(db->rule_info);
    free(db->domains);
    for (size_t i = 0; i < db->nfields; i++)
        free(db->field_names[i]);
    free(db);
}

const rule_set_t *match_db_rules(const match_db_t *db)
{
    return db->rs;
}

size_t match_db_size_bytes(const match_db_t *db)
{
    size_t total = 0;
    for (int v = 0; v < NORM_VIEW_COUNT; v++) {
        size_t size = 0;
        if (db->hs[v] && hs_database_size(db->hs[v], &size) == HS_SUCCESS)
            total += size;
        for (size_t g = 0; g < db->nsom[v]; g++)
            if (db->hs_som[v][g] && hs_database_size(db->hs_som[v][g], &size) == HS_SUCCESS)
                total += size;
    }
    return total;
}

size_t match_db_view_patterns(const match_db_t *db, normalize_view_t view)
{
    return (unsigned)view < NORM_VIEW_COUNT ? db->view_count[view] : 0;
}

bool match_db_from_cache(const match_db_t *db)
{
    return db->from_cache;
}

int match_scratch_new(const match_db_t *db, match_scratch_t **out)
{
    *out = NULL;
    match_scratch_t *scratch = calloc(1, sizeof(*scratch));
    if (!scratch)
        return TW_ERR_NOMEM;
    normalized_init(&scratch->skeleton);
    normalized_init(&scratch->squash);
    normalized_init(&scratch->field_norm);
    size_t nr = db->nrules ? db->nrules : 1;
    size_t np = db->npatterns ? db->npatterns : 1;
    scratch->nrules = db->nrules;
    scratch->npatterns = db->npatterns;
    scratch->stamp = calloc(nr, sizeof(*scratch->stamp));
    scratch->slot = calloc(nr, sizeof(*scratch->slot));
    scratch->all_bits = calloc(nr, sizeof(*scratch->all_bits));
    scratch->any_count = calloc(nr, sizeof(*scratch->any_count));
    scratch->veto = calloc(nr, sizeof(*scratch->veto));
    scratch->pstamp = calloc(np, sizeof(*scratch->pstamp));
    bool ok = scratch->stamp && scratch->slot && scratch->all_bits && scratch->any_count &&
              scratch->veto && scratch->pstamp;
    /* One Hyperscan scratch serves every view's database: hs_alloc_scratch grows it. */
    for (int v = 0; ok && v < NORM_VIEW_COUNT; v++) {
        if (db->hs[v] && hs_alloc_scratch(db->hs[v], &scratch->hs) != HS_SUCCESS)
            ok = false;
        for (size_t g = 0; ok && g < db->nsom[v]; g++)
            if (db->hs_som[v][g] && hs_alloc_scratch(db->hs_som[v][g], &scratch->hs) != HS_SUCCESS)
                ok = false;
    }
    if (!ok) {
        match_scratch_free(scratch);
        return TW_ERR_NOMEM;
    }
    *out = scratch;
    return 0;
}

void match_scratch_free(match_scratch_t *scratch)
{
    if (!scratch)
        return;
    hs_free_scratch(scratch->hs);
    free(scratch->stamp);
    free(scratch->slot);
    free(scratch->all_bits);
    free(scratch->any_count);
    free(scratch->veto);
    free(scratch->pstamp);
    normalized_fini(&scratch->skeleton);
    normalized_fini(&scratch->squash);
    normalized_fini(&scratch->field_norm);
    free(scratch);
}
