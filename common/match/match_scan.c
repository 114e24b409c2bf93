/* Scanning: the Hyperscan callback with the rule logic (whole words, guards, all/any/
 * except, within), then per-rule results. */
#include "match/match_internal.h"

#include "links/domain_set.h"
#include "links/extract.h"
#include "links/host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

void match_set_init(match_set_t *set)
{
    memset(set, 0, sizeof(*set));
}

void match_set_fini(match_set_t *set)
{
    if (!set)
        return;
    free(set->hits);
    memset(set, 0, sizeof(*set));
}

typedef struct {
    const match_db_t *db;
    match_scratch_t *scratch;
    match_set_t *set;
    const unsigned char *text; /* the view being scanned */
    size_t len;
    const normalized_t *view; /* its map into folded; NULL when scanning folded itself */
    const unsigned char *folded;
    size_t folded_len;
    int latin_post; /* -1 unknown, else whether the post's letters are mostly Latin */
    unsigned field; /* 0: the post's text; i + 1: db->field_names[i] */
    bool nomem;
    bool som_pass; /* scanning hs_som: SOM regex hits are recorded */
    bool som_seen; /* a SOM regex hit in hs: som_groups says which hs_som to run */
    uint64_t som_groups[MATCH_SOM_MAX_GROUPS / 64];
} match_ctx_t;

/* Adds [start, end) to a rule's spans. Spans are kept sorted by start, none inside another:
 * SOM reports of one match ([0,1) [0,2) [0,3) for "a+") and a keyword inside a regex match of
 * the same rule collapse into the widest span. Past the cap the earliest spans are kept. */
static void match_span_add(match_rule_hit_t *hit, uint32_t start, uint32_t end, bool *truncated)
{
    match_span_t *spans = hit->spans;
    uint32_t n = hit->nspans;
    for (uint32_t i = 0; i < n; i++)
        if (spans[i].start <= start && end <= spans[i].end)
            return;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!(start <= spans[i].start && spans[i].end <= end))
            spans[kept++] = spans[i];
    n = kept;
    uint32_t at = n;
    while (at > 0 && spans[at - 1].start > start)
        at--;
    if (n == MATCH_MAX_SPANS_PER_RULE) {
        *truncated = true;
        if (at == n)
            return;
        n--; /* the latest span makes room for an earlier one */
    }
    memmove(&spans[at + 1], &spans[at], (n - at) * sizeof(spans[0]));
    spans[at].start = start;
    spans[at].end = end;
    hit->nspans = n + 1;
}

/* Counts Latin and other letters of text[start, end). */
static void match_count_scripts(const unsigned char *text, size_t start, size_t end, size_t *latin,
                                size_t *other)
{
    for (size_t i = start; i < end;) {
        int32_t cp = match_cp_at(text, i, end);
        size_t n = text[i] < 0x80 ? 1 : text[i] < 0xE0 ? 2 : text[i] < 0xF0 ? 3 : 4;
        i += n;
        if (cp < 0 || !match_cp_is_letter(cp))
            continue;
        if (match_cp_is_latin(cp))
            (*latin)++;
        else
            (*other)++;
    }
}

/* True when the letters of text[start, end) belong to two or more of Latin, Cyrillic, Greek
 * and the other scripts. */
static bool match_span_mixes_scripts(const unsigned char *text, size_t start, size_t end)
{
    unsigned seen = 0;
    for (size_t i = start; i < end;) {
        int32_t cp = match_cp_at(text, i, end);
        i += text[i] < 0x80 ? 1 : text[i] < 0xE0 ? 2 : text[i] < 0xF0 ? 3 : 4;
        if (cp < 0 || !match_cp_is_letter(cp))
            continue;
        unsigned script = match_cp_is_latin(cp)      ? 1u
                          : match_cp_is_cyrillic(cp) ? 2u
                          : match_cp_is_greek(cp)    ? 4u
                                                     : 8u;
        seen |= script;
        if (seen & (seen - 1))
            return true;
    }
    return false;
}

/* The guard for a Latin keyword found in a derived view: the original may have reached the
 * keyword's letters through other scripts' look-alikes. Ordinary Cyrillic or Greek words
 * (Russian "сор" reads as "cop") must not count, so such a hit counts only when the
 * span mixes Latin with other letters, or when the post as a whole is mostly Latin (a Cyrillic word
 * standing for an English one in English text). Spans that are all Latin (accents, leetspeak)
 * always count. A Cyrillic or Greek keyword's hit in the skeleton (MATCH_GUARD_MIXED) counts
 * only when the span mixes scripts (Latin, Greek or other look-alikes among its letters): all
 * Latin is the English look-alike or a transliteration, all Cyrillic is folded's business. */
static bool match_guard_ok(match_ctx_t *ctx, const match_pat_t *pat, size_t fstart, size_t fend)
{
    if (pat->guard == MATCH_GUARD_MIXED)
        return match_span_mixes_scripts(ctx->folded, fstart, fend);
    size_t latin = 0, other = 0;
    match_count_scripts(ctx->folded, fstart, fend, &latin, &other);
    if (other == 0 || latin > 0)
        return true;
    if (ctx->latin_post < 0) {
        size_t pl = 0, po = 0;
        match_count_scripts(ctx->folded, 0, ctx->folded_len, &pl, &po);
        ctx->latin_post = pl > po - other;
    }
    return ctx->latin_post == 1;
}

static bool match_is_ascii_letter(unsigned char c)
{
    return c >= 'a' && c <= 'z';
}

/* The squash view folds doubled letters and letter look-alike classes together, so "butt"
 * and "but" squash alike: a squash hit counts only when the folded text of the span shows an
 * obfuscation squash exists for (a leetspeak digit or symbol, a letter tripled or more, or a
 * single letter followed by a separator and another letter, as in "f.r.e.e"). A plain word
 * is left to the folded view, which looks for it exactly. */
static bool match_span_obfuscated(const unsigned char *t, size_t start, size_t end)
{
    for (size_t i = start; i < end; i++) {
        unsigned char c = t[i];
        if ((c >= '0' && c <= '9') || c == '@' || c == '$' || c == '!' || c == '|' || c == '+')
            return true;
        if (match_is_ascii_letter(c)) {
            if (i + 2 < end && t[i + 1] == c && t[i + 2] == c)
                return true;
            bool single_start = i == start || !match_is_ascii_letter(t[i - 1]);
            if (single_start && i + 2 < end && !match_is_ascii_letter(t[i + 1]) &&
                t[i + 1] < 0x80 && !(t[i + 1] >= '0' && t[i + 1] <= '9') &&
                match_is_ascii_letter(t[i + 2]))
                return true;
        }
    }
    return false;
}

/* The folded-text span of a Hyperscan match of pat ending at `to`, or false when the match
 * does not count: a keyword not on word boundaries, a Latin keyword in another script's
 * text (the guard), or a squash-view keyword over text that was not obfuscated. */
static bool match_hit_span(match_ctx_t *ctx, const match_pat_t *pat, unsigned long long from,
                           unsigned long long to, size_t *start_out, size_t *end_out)
{
    const unsigned char *text = ctx->text;
    size_t start, end = (size_t)to;
    switch (pat->kind) {
    case PAT_KEYWORD:
        if (pat->len > end)
            return false; /* cannot happen for a database built from this table */
        start = end - pat->len;
        if (pat->bound_left && match_cp_is_word(match_cp_before(text, start)))
            return false;
        if (pat->bound_right && match_cp_is_word(match_cp_at(text, end, ctx->len)))
            return false;
        break;
    case PAT_REGEX_SOM:
        start = (size_t)from;
        break;
    default:
        start = end;
        break;
    }
    /* Byte-mode regexes can start or end inside a multi-byte character; widen to whole ones. */
    if (pat->kind != PAT_KEYWORD) {
        while (start > 0 && (text[start] & 0xc0) == 0x80)
            start--;
        while (end < ctx->len && (text[end] & 0xc0) == 0x80)
            end++;
        if (start > end)
            start = end;
    }
    if (ctx->view) {
        /* A derived view: spans are reported in folded coordinates. */
        size_t fs, fe;
        normalized_span_to_source(ctx->view, start, end, &fs, &fe);
        if (pat->guard != MATCH_GUARD_NONE && !match_guard_ok(ctx, pat, fs, fe))
            return false;
        if (pat->view == NORM_VIEW_SQUASH && pat->kind == PAT_KEYWORD &&
            !match_span_obfuscated(ctx->folded, fs, fe))
            return false;
        start = fs;
        end = fe;
    }
    *start_out = start;
    *end_out = end;
    return true;
}

/* The rule's entry in this scan's results, added (with its counters reset) on its first hit;
 * NULL when the post already hit MATCH_MAX_RULES_PER_POST rules (set->truncated) or on out
 * of memory (ctx->nomem). */
static match_rule_hit_t *match_hit_slot(match_ctx_t *ctx, uint32_t rule)
{
    match_scratch_t *scratch = ctx->scratch;
    match_set_t *set = ctx->set;
    if (scratch->stamp[rule] == scratch->gen)
        return &set->hits[scratch->slot[rule]];
    if (set->count == MATCH_MAX_RULES_PER_POST) {
        set->truncated = true;
        return NULL;
    }
    if (set->count == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 8;
        if (cap > MATCH_MAX_RULES_PER_POST)
            cap = MATCH_MAX_RULES_PER_POST;
        match_rule_hit_t *hits = realloc(set->hits, cap * sizeof(*hits));
        if (!hits) {
            ctx->nomem = true;
            return NULL;
        }
        set->hits = hits;
        set->cap = cap;
    }
    scratch->stamp[rule] = scratch->gen;
    scratch->slot[rule] = (uint32_t)set->count;
    scratch->all_bits[rule] = 0;
    scratch->any_count[rule] = 0;
    match_rule_hit_t *hit = &set->hits[set->count++];
    hit->rule_index = rule;
    hit->nspans = 0;
    hit->host = NULL;
    return hit;
}

/* Counts a hit of pat on the folded span [start, end) for its rule: the allow list, field
 * targets, except vetoes, all/any bookkeeping and the span. host names the listed domain for
 * a domains_file hit. Returns 1 to stop the scan (out of memory), else 0. */
static int match_record(match_ctx_t *ctx, const match_pat_t *pat, size_t start, size_t end,
                        const char *host)
{
    match_scratch_t *scratch = ctx->scratch;
    uint32_t rule = pat->rule_index;
    if (pat->group == RULE_GROUP_ALLOW) {
        if (ctx->field == 0 && scratch->nallow < MATCH_MAX_ALLOW_SPANS)
            scratch->allow[scratch->nallow++] = (match_span_t){(uint32_t)start, (uint32_t)end};
        return 0;
    }
    uint32_t targets = ctx->db->rule_info[rule].targets;
    if (ctx->field == 0) {
        /* hashtags: a hit in the text that starts right after '#' */
        if (!(targets & MATCH_TARGET_TEXT) &&
            (!(targets & MATCH_TARGET_HASHTAGS) || start == 0 || ctx->folded[start - 1] != '#'))
            return 0;
    } else if (!(targets & (1u << (1 + ctx->field)))) {
        return 0;
    }
    if (pat->group == RULE_GROUP_NONE) {
        scratch->veto[rule] = scratch->gen;
        return 0;
    }
    match_rule_hit_t *hit = match_hit_slot(ctx, rule);
    if (!hit)
        return ctx->nomem ? 1 : 0; /* out of memory stops the scan */
    if (host && !hit->host && ctx->field == 0)
        hit->host = host;
    if (ctx->field == 0 && ctx->db->rule_info[rule].within && scratch->nnear < MATCH_MAX_NEAR)
        scratch->near[scratch->nnear++] = (match_near_t){
            rule, (uint32_t)start, pat->group == RULE_GROUP_ALL ? pat->all_index : 32u};
    if (pat->group == RULE_GROUP_ALL) {
        scratch->all_bits[rule] |= 1u << pat->all_index;
    } else if (scratch->pstamp[pat->pattern_index] != scratch->gen) {
        scratch->pstamp[pat->pattern_index] = scratch->gen;
        scratch->any_count[rule]++;
    }
    if (ctx->field == 0)
        match_span_add(hit, (uint32_t)start, (uint32_t)end, &ctx->set->truncated);
    return 0;
}

static int match_on_hit(unsigned int id, unsigned long long from, unsigned long long to,
                        unsigned int flags, void *arg)
{
    (void)flags;
    match_ctx_t *ctx = arg;
    const match_pat_t *pat = &ctx->db->pats[id];
    size_t start, end;
    if (pat->kind == PAT_REGEX_SOM && !ctx->som_pass) {
        /* no start here: its group's SOM scan records it */
        ctx->som_seen = true;
        ctx->som_groups[pat->som_group / 64] |= UINT64_C(1) << (pat->som_group % 64);
        return 0;
    }
    if (!match_hit_span(ctx, pat, from, to, &start, &end))
        return 0;
    return match_record(ctx, pat, start, end, NULL);
}

static bool match_lang_ok(const rule_t *rule, const char *lang, size_t lang_len)
{
    if (!lang)
        return false;
    for (size_t i = 0; i < rule->nlangs; i++) {
        size_t n = strlen(rule->langs[i]);
        if (lang_len >= n && strncasecmp(lang, rule->langs[i], n) == 0 &&
            (lang_len == n || lang[n] == '-' || lang[n] == '_'))
            return true;
    }
    return false;
}

/* Proximity: is there a window of at most info->within words holding a hit of every `all:`
 * item (and of the `any` group, when the rule has one)? Words are counted as the spaces of
 * the folded text (whitespace is collapsed there). At most MATCH_MAX_NEAR hits per post are
 * remembered; beyond that a rule can be missed, never invented. */
static bool match_near_ok(const unsigned char *text, size_t len, const match_scratch_t *scratch,
                          uint32_t rule, const match_rule_t *info)
{
    match_near_t e[MATCH_MAX_NEAR];
    uint32_t word[MATCH_MAX_NEAR];
    size_t n = 0;
    for (size_t i = 0; i < scratch->nnear; i++) {
        if (scratch->near[i].rule != rule)
            continue;
        size_t j = n++;
        while (j > 0 && e[j - 1].start > scratch->near[i].start) {
            e[j] = e[j - 1];
            j--;
        }
        e[j] = scratch->near[i];
    }
    size_t pos = 0;
    uint32_t words = 0;
    for (size_t k = 0; k < n; k++) {
        for (; pos < e[k].start && pos < len; pos++)
            words += text[pos] == ' ';
        word[k] = words;
    }
    uint64_t need = (uint64_t)info->all_mask | (info->min_any ? UINT64_C(1) << 32 : 0);
    for (size_t i = 0; i < n; i++) {
        uint64_t have = 0;
        for (size_t j = i; j < n && word[j] - word[i] <= info->within; j++) {
            have |= UINT64_C(1) << e[j].item;
            if ((have & need) == need)
                return true;
        }
    }
    return false;
}

/* Applies the rule logic to the raw hits: all/min_matches/except/langs, and the allow list.
 * Keeps set sorted-compatible (it is sorted afterwards). */
static void match_finish(const match_db_t *db, match_scratch_t *scratch, match_set_t *set,
                         const char *lang, size_t lang_len, const unsigned char *text, size_t len)
{
    size_t kept = 0;
    for (size_t i = 0; i < set->count; i++) {
        match_rule_hit_t *hit = &set->hits[i];
        uint32_t r = hit->rule_index;
        const match_rule_t *info = &db->rule_info[r];
        bool ok = scratch->all_bits[r] == info->all_mask &&
                  scratch->any_count[r] >= info->min_any && scratch->veto[r] != scratch->gen;
        if (ok && info->within)
            ok = match_near_ok(text, len, scratch, r, info);
        if (ok && info->has_langs)
            ok = match_lang_ok(&db->rs->rules[r], lang, lang_len);
        if (ok && scratch->nallow && hit->nspans) {
            uint32_t ns = 0;
            for (uint32_t s = 0; s < hit->nspans; s++) {
                bool inside = false;
                for (size_t a = 0; a < scratch->nallow && !inside; a++)
                    inside = scratch->allow[a].start <= hit->spans[s].start &&
                             hit->spans[s].end <= scratch->allow[a].end;
                if (!inside)
                    hit->spans[ns++] = hit->spans[s];
            }
            hit->nspans = ns;
            ok = ns > 0;
        }
        if (!ok) {
            scratch->stamp[r] = scratch->gen - 1; /* stale: not in the set any more */
            continue;
        }
        if (kept != i)
            set->hits[kept] = *hit;
        kept++;
    }
    set->count = kept;
}

static void match_sort(match_set_t *set)
{
    /* Hits arrive in end-offset order; sort by rule. Typical posts hit 0-3 rules, and there
     * are at most MATCH_MAX_RULES_PER_POST, so insertion sort beats qsort (which may malloc). */
    for (size_t i = 1; i < set->count; i++) {
        if (set->hits[i - 1].rule_index <= set->hits[i].rule_index)
            continue;
        match_rule_hit_t tmp = set->hits[i];
        size_t j = i;
        while (j > 0 && set->hits[j - 1].rule_index > tmp.rule_index) {
            set->hits[j] = set->hits[j - 1];
            j--;
        }
        set->hits[j] = tmp;
    }
}

static int match_begin(const match_db_t *db, match_scratch_t *scratch, size_t len, match_set_t *set)
{
    set->count = 0;
    set->truncated = false;
    /* Hyperscan takes an unsigned int length and spans are uint32_t. */
    if (len > UINT32_MAX || scratch->nrules != db->nrules || scratch->npatterns != db->npatterns)
        return TW_ERR_SCAN;
    scratch->nallow = 0;
    scratch->nnear = 0;
    /* A new generation invalidates every stamp at once; on wrap-around clear them for real. */
    if (++scratch->gen == 0 || scratch->gen == UINT32_MAX) {
        memset(scratch->stamp, 0, scratch->nrules * sizeof(*scratch->stamp));
        memset(scratch->veto, 0, scratch->nrules * sizeof(*scratch->veto));
        memset(scratch->pstamp, 0, scratch->npatterns * sizeof(*scratch->pstamp));
        scratch->gen = 2; /* match_finish marks dropped rules with gen - 1 */
    }
    return 0;
}

static int match_run_db(match_ctx_t *ctx, const hs_database_t *hs)
{
    hs_error_t rc = hs_scan(hs, ctx->len ? (const char *)ctx->text : "", (unsigned)ctx->len, 0,
                            ctx->scratch->hs, match_on_hit, ctx);
    if (ctx->nomem)
        return TW_ERR_NOMEM;
    return rc == HS_SUCCESS ? 0 : TW_ERR_SCAN;
}

/* Scans ctx->text with a view's databases: hs, then the hs_som groups of the SOM regexes
 * that hit there. */
static int match_run(match_ctx_t *ctx, normalize_view_t view)
{
    const match_db_t *db = ctx->db;
    ctx->som_pass = ctx->som_seen = false;
    int rc = match_run_db(ctx, db->hs[view]);
    if (rc != 0 || !ctx->som_seen)
        return rc;
    ctx->som_pass = true;
    for (size_t g = 0; rc == 0 && g < db->nsom[view]; g++) {
        uint64_t bit = UINT64_C(1) << (g % 64);
        if ((ctx->som_groups[g / 64] & bit) && db->hs_som[view][g])
            rc = match_run_db(ctx, db->hs_som[view][g]);
        ctx->som_groups[g / 64] &= ~bit;
    }
    ctx->som_pass = false;
    return rc;
}

static int match_end(const match_db_t *db, match_scratch_t *scratch, match_set_t *set, int rc,
                     const char *lang, size_t lang_len, const char *text, size_t len)
{
    if (rc != 0) {
        set->count = 0;
        return rc;
    }
    if (db->logic || scratch->nallow)
        match_finish(db, scratch, set, lang, lang_len, (const unsigned char *)text, len);
    match_sort(set);
    return 0;
}

static int match_scan_domains(match_ctx_t *ctx, const char *text, size_t len);

int match_scan(const match_db_t *db, match_scratch_t *scratch, const char *text, size_t len,
               match_set_t *set)
{
    int rc = match_begin(db, scratch, len, set);
    if (rc != 0)
        return rc;
    match_ctx_t ctx = {.db = db,
                       .scratch = scratch,
                       .set = set,
                       .text = (const unsigned char *)text,
                       .len = len,
                       .folded = (const unsigned char *)text,
                       .folded_len = len,
                       .latin_post = -1};
    if (db->hs[NORM_VIEW_FOLDED])
        rc = match_run(&ctx, NORM_VIEW_FOLDED);
    if (rc == 0 && db->ndomains)
        rc = match_scan_domains(&ctx, text, len);
    return match_end(db, scratch, set, rc, NULL, 0, text, len);
}

/* domains_file: every host written in the folded text (links/extract.h), canonicalized once,
 * looked up in each rule's list by exact name or parent domain. */
static int match_scan_domains(match_ctx_t *ctx, const char *text, size_t len)
{
    const match_db_t *db = ctx->db;
    const rule_set_t *rs = db->rs;
    size_t pos = 0, nunicode = 0;
    link_host_t h;
    host_keys_t keys;
    while (links_next_host(text, len, &pos, &h)) {
        /* An ASCII host is lowercased and looked up, no more. A Unicode one costs an IDNA
         * mapping and a skeleton (an allocation): a text stuffed with thousands of dotted
         * non-ASCII words gets the first MATCH_MAX_UNICODE_HOSTS of them, while its ASCII
         * hosts, and so every listed name written as such, are all still looked up. */
        bool unicode = false;
        for (size_t k = 0; k < h.host_len && !unicode; k++)
            unicode = (unsigned char)h.host[k] >= 0x80;
        if (unicode && nunicode++ >= MATCH_MAX_UNICODE_HOSTS)
            continue;
        if (host_canonicalize(h.host, h.host_len, &keys) != 0)
            continue;
        for (size_t d = 0; d < db->ndomains; d++) {
            const match_pat_t *pat = &db->domains[d];
            const domain_set_t *set = rs->domain_sets[rs->patterns[pat->pattern_index].domain_set];
            const char *listed = domain_set_match(set, keys.idna);
            if (!listed && keys.skeleton[0])
                listed = domain_set_match(set, keys.skeleton);
            if (listed && match_record(ctx, pat, h.start, h.end, listed))
                return TW_ERR_NOMEM;
        }
    }
    return 0;
}

/* Scans one folded text (the post's text, field 0, or another field) in every view. */
static int match_scan_views(match_ctx_t *ctx, const normalized_t *folded, unsigned field)
{
    const match_db_t *db = ctx->db;
    match_scratch_t *scratch = ctx->scratch;
    int rc = 0;
    ctx->field = field;
    ctx->view = NULL;
    ctx->text = ctx->folded = (const unsigned char *)folded->text;
    ctx->len = ctx->folded_len = folded->len;
    ctx->latin_post = -1;
    if (folded->len > UINT32_MAX)
        return TW_ERR_SCAN;
    if (db->hs[NORM_VIEW_FOLDED])
        rc = match_run(ctx, NORM_VIEW_FOLDED);
    /* Plain ASCII posts (most of them) have the folded text as their skeleton: unless the
     * squash view needs the skeleton as its input, there is nothing to derive or scan. */
    bool need_skel = (db->hs[NORM_VIEW_SKELETON] && !folded->ascii) || db->hs[NORM_VIEW_SQUASH];
    normalize_skeleton_info_t info = {.same = true};
    if (rc == 0 && need_skel && folded->len)
        rc = normalize_skeleton_ex(folded, &scratch->skeleton, &info);
    /* The skeleton of most posts (plain ASCII) is the folded text itself: every skeleton
     * keyword whose form differs was also compiled into the folded database, so there is
     * nothing left to find there. Nor is there when what changed cannot be part of any
     * skeleton pattern (curly quotes turned ASCII, Arabic spelling, and no such pattern). */
    bool scan_skel =
        !info.same &&
        (info.lone_mark || (info.other && db->skel_other) || (info.arabic && db->skel_arabic) ||
         (info.ascii[0] & db->skel_ascii[0]) || (info.ascii[1] & db->skel_ascii[1]) ||
         (info.ascii[2] & db->skel_ascii[2]) || (info.ascii[3] & db->skel_ascii[3]));
    if (rc == 0 && db->hs[NORM_VIEW_SKELETON] && scan_skel) {
        ctx->text = (const unsigned char *)scratch->skeleton.text;
        ctx->len = scratch->skeleton.len;
        ctx->view = &scratch->skeleton;
        rc = match_run(ctx, NORM_VIEW_SKELETON);
    }
    if (rc == 0 && db->hs[NORM_VIEW_SQUASH] && folded->len) {
        rc = normalize_squash(&scratch->skeleton, &scratch->squash);
        if (rc == 0) {
            ctx->text = (const unsigned char *)scratch->squash.text;
            ctx->len = scratch->squash.len;
            ctx->view = &scratch->squash;
            rc = match_run(ctx, NORM_VIEW_SQUASH);
        }
    }
    if (rc == 0 && db->ndomains) {
        ctx->view = NULL;
        rc = match_scan_domains(ctx, folded->text, folded->len);
    }
    return rc;
}

int match_scan_post(const match_db_t *db, match_scratch_t *scratch, const normalized_t *folded,
                    const char *lang, size_t lang_len, match_set_t *set)
{
    return match_scan_post_fields(db, scratch, folded, lang, lang_len, NULL, 0, set);
}

int match_scan_post_fields(const match_db_t *db, match_scratch_t *scratch,
                           const normalized_t *folded, const char *lang, size_t lang_len,
                           const match_field_t *fields, size_t nfields, match_set_t *set)
{
    int rc = match_begin(db, scratch, folded->len, set);
    if (rc != 0)
        return rc;
    match_ctx_t ctx = {.db = db, .scratch = scratch, .set = set};
    rc = match_scan_views(&ctx, folded, 0);
    /* Other fields, for the rules that target them: each normalized into the scratch's
     * buffer and scanned with the same databases; hits there count for the rule (its logic
     * included) but carry no span, since spans are offsets into the text. */
    for (size_t i = 0; rc == 0 && fields && i < nfields && i < db->nfields; i++) {
        if (!fields[i].text)
            continue;
        if (normalize_text(fields[i].text, fields[i].len, &scratch->field_norm) != 0)
            continue; /* too large or not UTF-8: nothing to find there */
        rc = match_scan_views(&ctx, &scratch->field_norm, (unsigned)i + 1);
    }
    return match_end(db, scratch, set, rc, lang, lang_len, folded->text, folded->len);
}

size_t match_db_field_count(const match_db_t *db)
{
    return db->nfields;
}

const char *match_db_field_name(const match_db_t *db, size_t i)
{
    return i < db->nfields ? db->field_names[i] : NULL;
}
