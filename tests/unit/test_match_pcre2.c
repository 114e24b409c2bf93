/* Correctness against an independent engine: real regex rule sets (the Snort community rules'
 * pcre options and a slice of SpamAssassin's body rules, ../shared/data/patterns) run over
 * real posts (SMS Spam Collection, the mixed post sample), and every (post, rule) pair found
 * by tidewatch (normalize + Hyperscan) is compared with PCRE2 matching the same pattern,
 * caseless, on the same normalized text. Normalized text has no newlines, so the patterns'
 * m and s flags make no difference and are dropped; patterns with other flags are skipped.
 * Skips (exit 77, saying so) when the data or PCRE2 is absent. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "match/match.h"
#include "normalize/normalize.h"
#include "rules/rules.h"
#include "tw_test.h"

#define MAX_POSTS_PER_FILE 2500
/* Slices keep the compile to a few seconds (the whole Snort set takes ~40 s on two cores and is
 * compiled by test_match already); every pattern of a slice is compared. */
#define SNORT_SLICE        120
#define SPAMASSASSIN_SLICE 400

#ifdef TW_HAVE_PCRE2
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

typedef struct {
    char **re;
    size_t n, cap;
} patterns_t;

static void patterns_add(patterns_t *p, const char *re, size_t len)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 1024;
        p->re = realloc(p->re, p->cap * sizeof(*p->re));
    }
    p->re[p->n++] = strndup(re, len);
}

/* Reads "N:/re/flags" lines, keeping patterns whose flags are among i, m, s. */
static size_t patterns_read(patterns_t *p, const char *path, size_t max, size_t *skipped)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char *line = NULL;
    size_t cap = 0, added = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0 && added < max) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        char *colon = strchr(line, ':');
        char *last = strrchr(line, '/');
        if (!colon || colon[1] != '/' || !last || last <= colon + 1) {
            (*skipped)++;
            continue;
        }
        if (strspn(last + 1, "ims") != strlen(last + 1)) {
            (*skipped)++;
            continue;
        }
        patterns_add(p, colon + 2, (size_t)(last - (colon + 2)));
        added++;
    }
    free(line);
    fclose(f);
    return added;
}

/* YAML for one rule per pattern; single-quoted scalars ('' for '), with C0 controls refused. */
static char *rules_yaml(const patterns_t *p, const bool *skip)
{
    size_t cap = 64;
    for (size_t i = 0; i < p->n; i++)
        cap += strlen(p->re[i]) * 2 + 64;
    char *y = malloc(cap), *o = y;
    o += sprintf(o, "rules:\n");
    for (size_t i = 0; i < p->n; i++) {
        if (skip[i])
            continue;
        o += sprintf(o, "  - {id: r%zu, category: c, regex: ['", i);
        for (const char *s = p->re[i]; *s; s++) {
            if (*s == '\'')
                *o++ = '\'';
            *o++ = *s;
        }
        o += sprintf(o, "']}\n");
    }
    *o = '\0';
    return y;
}

/* The flags match.c chooses (see its header comment), mirrored for PCRE2. */
static uint32_t pcre2_flags_for(const char *re)
{
    bool utf8 = false, boundary = false;
    for (const unsigned char *s = (const unsigned char *)re; *s; s++) {
        if (*s >= 0x80)
            utf8 = true;
        if (*s == '\\' && s[1]) {
            s++;
            if ((*s == 'x' && s[1] == '{') || *s == 'p' || *s == 'P')
                utf8 = true;
            if (*s == 'b' || *s == 'B')
                boundary = true;
        }
    }
    uint32_t flags = PCRE2_CASELESS;
    if (utf8)
        flags |= PCRE2_UTF | (boundary ? 0 : PCRE2_UCP);
    return flags;
}

typedef struct {
    char **text;
    size_t n, cap;
} posts_t;

static void posts_add(posts_t *p, const char *t, size_t len)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 4096;
        p->text = realloc(p->text, p->cap * sizeof(*p->text));
    }
    p->text[p->n++] = strndup(t, len);
}

/* JSONL posts: the "text" value, unescaped for the common escapes (\" \\ \n \t \/ \uXXXX is
 * left as it is: a faithful decode is not needed, both engines see the same bytes). */
static void posts_read_jsonl(posts_t *p, const char *path, size_t max)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0, got = 0;
    while (getline(&line, &cap, f) > 0 && got < max) {
        char *t = strstr(line, "\"text\": \"");
        size_t skip = 9;
        if (!t) {
            t = strstr(line, "\"text\":\"");
            skip = 8;
        }
        if (!t)
            continue;
        t += skip;
        char *out = t, *s = t;
        while (*s && *s != '"') {
            if (*s == '\\' && s[1]) {
                s++;
                *out++ = *s == 'n' ? ' ' : *s == 't' ? ' ' : *s;
                s++;
                continue;
            }
            *out++ = *s++;
        }
        posts_add(p, t, (size_t)(out - t));
        got++;
    }
    free(line);
    fclose(f);
}

static void posts_read_lines(posts_t *p, const char *path, size_t max)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0, got = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0 && got < max) {
        while (n > 0 && line[n - 1] == '\n')
            n--;
        posts_add(p, line, (size_t)n);
        got++;
    }
    free(line);
    fclose(f);
}

TW_TEST(test_regex_sets_agree_with_pcre2)
{
    patterns_t pats = {0};
    size_t skipped = 0;
    /* TW_PCRE2_FULL=1 compares the whole sets (about a minute of compiling). */
    bool full = getenv("TW_PCRE2_FULL") && strcmp(getenv("TW_PCRE2_FULL"), "1") == 0;
    size_t nsnort = patterns_read(
        &pats, tw_shared_data_path("patterns/regex_snort_community_gpl2_pcre.hs_ok.txt"),
        full ? SIZE_MAX : SNORT_SLICE, &skipped);
    size_t nsa = patterns_read(
        &pats, tw_shared_data_path("patterns/regex_spamassassin_apache2_pcre.hs_ok.txt"),
        full ? SIZE_MAX : SPAMASSASSIN_SLICE, &skipped);
    posts_t posts = {0};
    posts_read_jsonl(&posts, tw_shared_data_path("posts/sms_spam_collection_en.jsonl"),
                     MAX_POSTS_PER_FILE);
    posts_read_lines(&posts, tw_shared_data_path("posts/posts_mixed.txt"), MAX_POSTS_PER_FILE);
    (void)nsnort; /* absent from the committed sample (GPLv2): SpamAssassin's stand alone */
    if (nsa == 0 || posts.n == 0) {
        for (size_t i = 0; i < pats.n; i++)
            free(pats.re[i]);
        free(pats.re);
        for (size_t p = 0; p < posts.n; p++)
            free(posts.text[p]);
        free(posts.text);
        TW_SKIP("real patterns or posts not found (%s)", tw_shared_data_path(""));
    }
    /* Round 1 finds the patterns tidewatch refuses (empty matches, Unicode \b...): the
     * compile reports every one as file:line without building, then they are left out. */
    bool *skip = calloc(pats.n, sizeof(*skip));
    rule_set_t *rs = NULL;
    match_db_t *db = NULL;
    size_t refused = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int round = 0; round < 2 && !db; round++) {
        char *yaml = rules_yaml(&pats, skip);
        tw_diag_t diag;
        tw_diag_init(&diag);
        rule_set_free(rs);
        rs = NULL;
        TW_ASSERT_INT_EQ(rule_set_load_buffer("pcre2.yaml", yaml, strlen(yaml), &rs, &diag), 0);
        free(yaml);
        if (rs && match_db_compile(rs, &db, &diag) != 0) {
            for (size_t i = 0; i < diag.count; i++) {
                if (i < 5)
                    fprintf(stderr, "  refused: %s\n", diag.lines[i]);
                const char *rule = strstr(diag.lines[i], ": rule r");
                size_t k;
                if (rule && sscanf(rule, ": rule r%zu", &k) == 1 && k < pats.n && !skip[k]) {
                    skip[k] = true;
                    refused++;
                }
            }
        }
        tw_diag_fini(&diag);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    TW_ASSERT(db != NULL);
    if (!db) {
        rule_set_free(rs);
        return;
    }
    /* PCRE2 for the same patterns: rule r<i> is pattern i. */
    pcre2_code **codes = calloc(pats.n, sizeof(*codes));
    size_t pcre_refused = 0;
    for (size_t i = 0; i < pats.n; i++) {
        if (skip[i])
            continue;
        int errcode;
        PCRE2_SIZE erroff;
        codes[i] = pcre2_compile((PCRE2_SPTR)pats.re[i], PCRE2_ZERO_TERMINATED,
                                 pcre2_flags_for(pats.re[i]), &errcode, &erroff, NULL);
        if (!codes[i])
            pcre_refused++;
    }
    pcre2_match_data *md = pcre2_match_data_create(64, NULL);
    match_scratch_t *scratch = NULL;
    TW_ASSERT_INT_EQ(match_scratch_new(db, &scratch), 0);
    match_set_t set;
    match_set_init(&set);
    normalized_t norm;
    normalized_init(&norm);
    size_t pairs = 0, hits = 0, mismatches = 0, compared_rules = 0;
    for (size_t r = 0; r < rs->nrules; r++) {
        size_t i = (size_t)strtoul(rs->rules[r].id + 1, NULL, 10);
        compared_rules += codes[i] != NULL;
    }
    for (size_t p = 0; p < posts.n; p++) {
        if (normalize_text(posts.text[p], strlen(posts.text[p]), &norm) != 0)
            continue;
        TW_ASSERT_INT_EQ(match_scan_post(db, scratch, &norm, NULL, 0, &set), 0);
        size_t h = 0;
        for (size_t r = 0; r < rs->nrules; r++) {
            size_t i = (size_t)strtoul(rs->rules[r].id + 1, NULL, 10);
            bool tw = h < set.count && set.hits[h].rule_index == r;
            if (tw)
                h++;
            if (!codes[i])
                continue;
            int rc = pcre2_match(codes[i], (PCRE2_SPTR)norm.text, norm.len, 0, 0, md, NULL);
            bool pc = rc >= 0;
            pairs++;
            hits += pc;
            if (tw != pc) {
                if (mismatches < 10)
                    fprintf(stderr, "  mismatch: pattern /%s/ on '%.120s': tidewatch %d pcre2 %d\n",
                            pats.re[i], norm.text, tw, pc);
                mismatches++;
            }
        }
    }
    fprintf(stderr,
            "  %zu Snort + %zu SpamAssassin patterns (%zu skipped for flags, %zu refused by "
            "tidewatch, %zu by PCRE2), compiled in %.1f s; %zu posts, %zu (post, rule) pairs, "
            "%zu hits, %zu mismatches\n",
            nsnort, nsa, skipped, refused, pcre_refused,
            (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, posts.n, pairs, hits,
            mismatches);
    TW_ASSERT(compared_rules > (nsnort ? 400u : 300u)); /* the sample has no Snort rules */
    TW_ASSERT(hits > 100);
    TW_ASSERT_INT_EQ(mismatches, 0);

    normalized_fini(&norm);
    match_set_fini(&set);
    match_scratch_free(scratch);
    pcre2_match_data_free(md);
    for (size_t i = 0; i < pats.n; i++) {
        pcre2_code_free(codes[i]);
        free(pats.re[i]);
    }
    free(codes);
    free(pats.re);
    for (size_t p = 0; p < posts.n; p++)
        free(posts.text[p]);
    free(posts.text);
    free(skip);
    match_db_free(db);
    rule_set_free(rs);
}
#else
TW_TEST(test_regex_sets_agree_with_pcre2)
{
    TW_SKIP("built without PCRE2 (libpcre2-dev)");
}
#endif

int main(void)
{
    TW_RUN(TW_CASE(test_regex_sets_agree_with_pcre2));
}
