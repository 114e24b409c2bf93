/* Backtest diff of two rule sets over the same posts.
 *
 * Rule reviewers ask two questions of a change: does it flood (a new rule hitting a large
 * share of posts) and does it drop what the old rules caught. Both are answered by running
 * the old and the new set over the same history with the same match stage the worker uses
 * (pipeline_match_post: the text, its views, the `fields:` targets, languages) and
 * comparing per post and rule. */
#include "modes/rules_diff.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode/post.h"
#include "match/match.h"
#include "modes/rules_cmd.h"
#include "normalize/normalize.h"
#include "pipeline/engine.h"
#include "pipeline/pipeline.h"
#include "util/log.h"
#include "util/progress.h"
#include "util/str_index.h"

typedef struct {
    const char *id;
    size_t old_posts, new_posts, gained, lost;
    bool in_old, in_new;
} diff_row_t;

typedef struct {
    rule_set_t *rules;
    match_db_t *db;
    match_scratch_t *scratch;
    match_set_t set;
} diff_side_t;

static int diff_side_open(diff_side_t *side, const char *path)
{
    tw_diag_t diag;
    tw_diag_init(&diag);
    match_set_init(&side->set);
    int rc = engine_load_rules(path, &side->rules, &side->db, &diag);
    tw_diag_log_all(&diag, stderr, "");
    if (rc != 0)
        fprintf(stderr, "%s: refused: %zu problem(s)\n", path, diag.count);
    tw_diag_fini(&diag);
    if (rc == 0 && match_scratch_new(side->db, &side->scratch) != 0)
        rc = TW_ERR_NOMEM;
    return rc;
}

static void diff_side_close(diff_side_t *side)
{
    match_set_fini(&side->set);
    match_scratch_free(side->scratch);
    match_db_free(side->db);
    rule_set_free(side->rules);
}

/* Rows: every old rule at its old index, then the new rules the old set lacks. new_row maps a
 * new rule index to its row. */
static diff_row_t *diff_rows(const rule_set_t *old_rs, const rule_set_t *new_rs, size_t *new_row,
                             size_t *nrows)
{
    const char **old_ids = malloc((old_rs->nrules + 1) * sizeof(*old_ids));
    diff_row_t *rows = calloc(old_rs->nrules + new_rs->nrules + 1, sizeof(*rows));
    str_index_t by_id = {0};
    bool ok = old_ids && rows;
    for (size_t i = 0; ok && i < old_rs->nrules; i++) {
        old_ids[i] = old_rs->rules[i].id;
        rows[i] = (diff_row_t){.id = old_rs->rules[i].id, .in_old = true};
    }
    ok = ok && str_index_build(&by_id, old_ids, old_rs->nrules) == 0;
    size_t n = old_rs->nrules;
    for (size_t i = 0; ok && i < new_rs->nrules; i++) {
        size_t found = str_index_find(&by_id, new_rs->rules[i].id);
        new_row[i] = found != SIZE_MAX ? found : n;
        if (found == SIZE_MAX)
            rows[n++] = (diff_row_t){.id = new_rs->rules[i].id};
        rows[new_row[i]].in_new = true;
    }
    str_index_fini(&by_id);
    free(old_ids);
    if (!ok) {
        free(rows);
        return NULL;
    }
    *nrows = n;
    return rows;
}

/* The hit of rule_index in set (sorted by rule index), or NULL. */
static const match_rule_hit_t *hit_of(const match_set_t *set, uint32_t rule_index)
{
    size_t lo = 0, hi = set->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set->hits[mid].rule_index < rule_index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < set->count && set->hits[lo].rule_index == rule_index ? &set->hits[lo] : NULL;
}

static void print_change(const char *posts_path, size_t lineno, const post_t *post,
                         const normalized_t *norm, char sign, const char *rule,
                         const match_rule_hit_t *hit)
{
    if (hit->nspans == 0) {
        printf("%s:%zu id=%.*s %crule=%s (in a field other than the text)\n", posts_path, lineno,
               (int)post->id_len, post->id, sign, rule);
        return;
    }
    size_t a, b;
    normalized_span_to_source(norm, hit->spans[0].start, hit->spans[0].end, &a, &b);
    printf("%s:%zu id=%.*s %crule=%s [%zu,%zu) ", posts_path, lineno, (int)post->id_len, post->id,
           sign, rule, a, b);
    rules_cmd_print_context(post->text, post->text_len, a, b);
}

typedef struct {
    size_t posts, undecodable, gain_alert, lose_alert, changed, lost_hits;
} diff_totals_t;

/* Compares one post's two match sets, prints its changes and counts them. */
static void diff_post(const diff_side_t *old_side, const diff_side_t *new_side,
                      const size_t *new_row, diff_row_t *rows, const char *posts_path,
                      size_t lineno, const post_t *post, const normalized_t *norm,
                      diff_totals_t *totals)
{
    bool changed = false;
    for (size_t h = 0; h < new_side->set.count; h++) {
        const match_rule_hit_t *hit = &new_side->set.hits[h];
        diff_row_t *row = &rows[new_row[hit->rule_index]];
        row->new_posts++;
        size_t row_index = (size_t)(row - rows);
        bool had = row->in_old && hit_of(&old_side->set, (uint32_t)row_index);
        if (!had) {
            row->gained++;
            changed = true;
            print_change(posts_path, lineno, post, norm, '+', row->id, hit);
        }
    }
    for (size_t h = 0; h < old_side->set.count; h++) {
        const match_rule_hit_t *hit = &old_side->set.hits[h];
        diff_row_t *row = &rows[hit->rule_index];
        row->old_posts++;
        bool kept = false;
        if (row->in_new)
            for (size_t k = 0; k < new_side->set.count && !kept; k++)
                kept = new_row[new_side->set.hits[k].rule_index] == hit->rule_index;
        if (!kept) {
            row->lost++;
            totals->lost_hits++;
            changed = true;
            print_change(posts_path, lineno, post, norm, '-', row->id, hit);
        }
    }
    if (old_side->set.count == 0 && new_side->set.count > 0)
        totals->gain_alert++;
    if (old_side->set.count > 0 && new_side->set.count == 0)
        totals->lose_alert++;
    if (changed)
        totals->changed++;
}

static void print_summary(const diff_row_t *rows, size_t nrows, const diff_totals_t *t)
{
    printf("\n%zu posts (%zu undecodable): %zu change, %zu gain an alert, %zu lose their alert, "
           "%zu rule hits lost\n",
           t->posts, t->undecodable, t->changed, t->gain_alert, t->lose_alert, t->lost_hits);
    printf("%-40s %10s %10s %8s %8s  %s\n", "rule", "old posts", "new posts", "gained", "lost", "");
    for (size_t r = 0; r < nrows; r++) {
        const diff_row_t *row = &rows[r];
        const char *note = !row->in_new ? "removed" : !row->in_old ? "added" : "";
        printf("%-40s %10zu %10zu %8zu %8zu  %s\n", row->id, row->old_posts, row->new_posts,
               row->gained, row->lost, note);
    }
}

int rules_diff(const char *old_path, const char *new_path, const char *posts_path,
               bool fail_on_loss)
{
    diff_side_t old_side = {0}, new_side = {0};
    normalized_t norm;
    normalized_init(&norm);
    post_t post;
    post_init(&post);
    size_t *new_row = NULL, nrows = 0;
    diff_row_t *rows = NULL;
    diff_totals_t totals = {0};
    char *line = NULL;
    size_t line_cap = 0;
    FILE *f = NULL;
    int exit_code = 1;
    progress_t progress = {0};

    if (diff_side_open(&old_side, old_path) != 0 || diff_side_open(&new_side, new_path) != 0)
        goto out;
    new_row = calloc(new_side.rules->nrules + 1, sizeof *new_row);
    rows = new_row ? diff_rows(old_side.rules, new_side.rules, new_row, &nrows) : NULL;
    if (!rows) {
        fprintf(stderr, "rules diff: out of memory\n");
        goto out;
    }
    f = strcmp(posts_path, "-") == 0 ? stdin : fopen(posts_path, "r");
    if (!f) {
        perror(posts_path);
        goto out;
    }
    size_t lineno = 0;
    uint64_t bytes = 0;
    progress_start(&progress, f);
    int got;
    while ((got = rules_cmd_next_post(f, posts_path, &line, &line_cap, &lineno, &bytes, &post)) >=
           0) {
        progress_update(&progress, totals.posts, bytes);
        if (got == 0) {
            totals.undecodable++;
            continue;
        }
        totals.posts++;
        if (normalize_text(post.text, post.text_len, &norm) != 0 ||
            pipeline_match_post(old_side.db, old_side.scratch, &post, &norm, &old_side.set) != 0 ||
            pipeline_match_post(new_side.db, new_side.scratch, &post, &norm, &new_side.set) != 0) {
            log_print("%s:%zu: could not be scanned\n", posts_path, lineno);
            totals.undecodable++;
            continue;
        }
        if (old_side.set.count || new_side.set.count)
            progress_before_stdout(&progress); /* a change may be printed */
        diff_post(&old_side, &new_side, new_row, rows, posts_path, lineno, &post, &norm, &totals);
    }
    progress_finish(&progress);
    if (ferror(f)) {
        perror(posts_path);
        goto out;
    }
    print_summary(rows, nrows, &totals);
    exit_code = fail_on_loss && totals.lost_hits ? RULES_DIFF_EXIT_LOSS : 0;
out:
    progress_finish(&progress);
    if (f && f != stdin)
        fclose(f);
    free(line);
    free(rows);
    free(new_row);
    post_clear(&post);
    normalized_fini(&norm);
    diff_side_close(&new_side);
    diff_side_close(&old_side);
    return exit_code;
}
