/* Rule authoring commands: check a rules file, and test it against a file of posts. */
#include "modes/rules_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipeline/engine.h"
#include "match/match.h"
#include "normalize/normalize.h"
#include "pipeline/pipeline.h"
#include "decode/post.h"
#include "util/log.h"
#include "util/progress.h"

static double rules_cmd_seconds(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

int rules_cmd_check(const char *path)
{
    tw_diag_t diag;
    tw_diag_init(&diag);
    rule_set_t *rules = NULL;
    match_db_t *db = NULL;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = engine_load_rules(path, &rules, &db, &diag);
    double secs = rules_cmd_seconds(&t0);
    tw_diag_log_all(&diag, stderr, "");
    if (rc == 0) {
        size_t nkw = 0, nre = 0, nlists = 0, nex = 0;
        for (size_t i = 0; i < rules->npatterns; i++)
            rules->patterns[i].kind == RULE_PATTERN_KEYWORD ? nkw++
            : rules->patterns[i].kind == RULE_PATTERN_REGEX ? nre++
                                                            : nlists++;
        for (size_t i = 0; i < rules->nrules; i++)
            nex += rules->rules[i].nexamples;
        printf("%s: ok: %zu rules, %zu patterns, %s, compiled in %.3f s, database %zu bytes\n",
               path, rules->nrules, rules->npatterns, rules->version, secs,
               match_db_size_bytes(db));
        printf("  keywords %zu, regexes %zu, domain lists %zu; expressions per view: folded %zu, "
               "skeleton %zu, squash %zu; %s\n",
               nkw, nre, nlists, match_db_view_patterns(db, NORM_VIEW_FOLDED),
               match_db_view_patterns(db, NORM_VIEW_SKELETON),
               match_db_view_patterns(db, NORM_VIEW_SQUASH),
               match_db_from_cache(db) ? "database loaded from the cache" : "database compiled");
        printf("  examples: %zu passed, 0 failed\n", nex);
    } else {
        fprintf(stderr, "%s: refused: %zu problem(s)\n", path, diag.count);
    }
    match_db_free(db);
    rule_set_free(rules);
    tw_diag_fini(&diag);
    return rc == 0 ? 0 : 1;
}

void rules_cmd_print_context(const char *text, size_t len, size_t start, size_t end)
{
    size_t a = start > 30 ? start - 30 : 0;
    size_t b = end + 30 < len ? end + 30 : len;
    while (a > 0 && ((unsigned char)text[a] & 0xC0) == 0x80)
        a--;
    while (b < len && ((unsigned char)text[b] & 0xC0) == 0x80)
        b++;
    fputs(a > 0 ? "..." : "", stdout);
    for (size_t i = a; i <= b; i++) {
        if (i == start)
            putchar('[');
        if (i == end)
            putchar(']');
        if (i < b)
            putchar((unsigned char)text[i] < 0x20 ? ' ' : text[i]);
    }
    fputs(b < len ? "...\n" : "\n", stdout);
}

/* Prints one line per span of each rule the post hit, and counts the rules. */
static void rules_cmd_print_hits(const char *posts_path, size_t lineno, const rule_set_t *rules,
                                 const post_t *post, const normalized_t *norm,
                                 const match_set_t *set, size_t *counts)
{
    for (size_t h = 0; h < set->count; h++) {
        const match_rule_hit_t *hit = &set->hits[h];
        const char *id = rules->rules[hit->rule_index].id;
        counts[hit->rule_index]++;
        if (hit->nspans == 0) /* hit through another field than the text (`fields:`) */
            printf("%s:%zu id=%.*s rule=%s (in a field other than the text)\n", posts_path, lineno,
                   (int)post->id_len, post->id, id);
        for (uint32_t s = 0; s < hit->nspans; s++) {
            size_t a, b;
            normalized_span_to_source(norm, hit->spans[s].start, hit->spans[s].end, &a, &b);
            printf("%s:%zu id=%.*s rule=%s%s%s [%zu,%zu) ", posts_path, lineno, (int)post->id_len,
                   post->id, id, hit->host ? " host=" : "", hit->host ? hit->host : "", a, b);
            rules_cmd_print_context(post->text, post->text_len, a, b);
        }
    }
}

int rules_cmd_next_post(FILE *f, const char *path, char **line, size_t *line_cap, size_t *lineno,
                        uint64_t *bytes, post_t *post)
{
    static const post_fields_t fields = {"id", "text", "author", "ts", "lang", "url"};
    ssize_t n;
    while ((n = getline(line, line_cap, f)) >= 0) {
        (*lineno)++;
        *bytes += (uint64_t)n;
        while (n > 0 && ((*line)[n - 1] == '\n' || (*line)[n - 1] == '\r'))
            n--;
        if (n == 0)
            continue;
        char err[200];
        if (post_decode(&fields, 16u << 20, *line, (size_t)n, post, err, sizeof(err)) == POST_OK)
            return 1;
        log_print("%s:%zu: %s\n", path, *lineno, err); /* above the progress line */
        return 0;
    }
    return -1;
}

int rules_cmd_test(const char *rules_path, const char *posts_path)
{
    tw_diag_t diag;
    tw_diag_init(&diag);
    rule_set_t *rules = NULL;
    match_db_t *db = NULL;
    match_scratch_t *scratch = NULL;
    match_set_t set;
    match_set_init(&set);
    normalized_t norm;
    normalized_init(&norm);
    post_t post;
    post_init(&post);
    size_t *counts = NULL;
    char *line = NULL;
    size_t line_cap = 0;
    FILE *f = NULL;
    int exit_code = 1;
    progress_t progress = {0};

    int rc = engine_load_rules(rules_path, &rules, &db, &diag);
    tw_diag_log_all(&diag, stderr, "");
    if (rc != 0) {
        fprintf(stderr, "%s: refused: %zu problem(s)\n", rules_path, diag.count);
        goto out;
    }
    f = strcmp(posts_path, "-") == 0 ? stdin : fopen(posts_path, "r");
    if (!f) {
        perror(posts_path);
        goto out;
    }
    counts = calloc(rules->nrules ? rules->nrules : 1, sizeof(*counts));
    if (!counts || match_scratch_new(db, &scratch) != 0)
        goto out;
    size_t nposts = 0, nhit = 0, nbad = 0, lineno = 0;
    uint64_t bytes = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    progress_start(&progress, f);
    int got;
    while ((got = rules_cmd_next_post(f, posts_path, &line, &line_cap, &lineno, &bytes, &post)) >=
           0) {
        progress_update(&progress, nposts, bytes);
        if (got == 0) {
            nbad++;
            continue;
        }
        nposts++;
        if (normalize_text(post.text, post.text_len, &norm) != 0 ||
            pipeline_match_post(db, scratch, &post, &norm, &set) != 0) {
            nbad++;
            continue;
        }
        if (set.count) {
            nhit++;
            progress_before_stdout(&progress);
        }
        rules_cmd_print_hits(posts_path, lineno, rules, &post, &norm, &set, counts);
    }
    double secs = rules_cmd_seconds(&t0);
    progress_finish(&progress);
    printf("\n%zu posts (%zu undecodable), %zu with hits, scanned in %.3f s\n", nposts, nbad, nhit,
           secs);
    printf("%-40s %10s\n", "rule", "posts");
    for (size_t r = 0; r < rules->nrules; r++)
        printf("%-40s %10zu\n", rules->rules[r].id, counts[r]);
    exit_code = 0;
out:
    progress_finish(&progress);
    if (f && f != stdin)
        fclose(f);
    free(line);
    free(counts);
    post_clear(&post);
    normalized_fini(&norm);
    match_set_fini(&set);
    match_scratch_free(scratch);
    match_db_free(db);
    rule_set_free(rules);
    tw_diag_fini(&diag);
    return exit_code;
}
