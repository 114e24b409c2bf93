/* Regex flag inference and the thread pool that test-compiles each regex once. */
#include "match/match_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

match_regex_traits_t match_regex_traits(const char *re)
{
    match_regex_traits_t t = {0};
    for (const unsigned char *p = (const unsigned char *)re; *p; p++) {
        if (*p >= 0x80) {
            t.utf8 = true;
            continue;
        }
        if (*p != '\\' || !p[1])
            continue;
        const unsigned char *slash = p++;
        if ((*p == 'x' && p[1] == '{') || *p == 'p' || *p == 'P') {
            t.utf8 = true;
        } else if (*p == 'b' || *p == 'B') {
            t.word_boundary = true;
            if ((slash > (const unsigned char *)re && slash[-1] >= 0x80) || p[1] >= 0x80)
                t.nonascii_boundary = true;
        }
    }
    return t;
}

/* Keyword -> Hyperscan literal regex: alphanumerics and UTF-8 bytes as they are, every other
 * ASCII byte as \xHH so no byte can act as a metacharacter. Returns a malloc'd string. */
char *match_keyword_escape(const char *kw)
{
    size_t n = strlen(kw);
    char *out = malloc(n * 4 + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (const unsigned char *p = (const unsigned char *)kw; *p; p++) {
        unsigned char c = *p;
        if (c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            *o++ = (char)c;
        else
            o += sprintf(o, "\\x%02x", c);
    }
    *o = '\0';
    return out;
}

void match_report(const rule_set_t *rs, size_t pattern, const char *why, tw_diag_t *diag)
{
    const rule_pattern_t *pat = &rs->patterns[pattern];
    const rule_t *rule = &rs->rules[pat->rule_index];
    char q[TW_DIAG_QUOTE_SIZE];
    tw_diag_add(diag, "%s:%d: rule %s: %s '%s': %s", pat->file, pat->line, rule->id,
                pat->kind == RULE_PATTERN_KEYWORD ? "keyword" : "pattern",
                tw_diag_quote(pat->text, strlen(pat->text), 0, q), why);
}

static char *match_compile_error_text(const hs_compile_error_t *cerr)
{
    return strdup(cerr && cerr->message ? cerr->message : "invalid pattern");
}

/* Checks one regex on its own: syntax and empty matches with the cheap hs_expression_info, then
 * a real compile, because "Pattern is too large" and SOM limits only show up while building.
 * Hyperscan cannot track the start of match for some patterns it can match (large bounded
 * repeats, long chains of lazy repeats): those fall back to no SOM instead of failing. */
static void match_check_regex(match_entry_t *e)
{
    hs_expr_info_t *info = NULL;
    hs_compile_error_t *cerr = NULL;
    hs_database_t *db = NULL;
    if (hs_expression_info(e->expr, e->flags, &info, &cerr) != HS_SUCCESS) {
        e->status = CHECK_FAILED;
        e->why = match_compile_error_text(cerr);
        hs_free_compile_error(cerr);
        return;
    }
    bool empty = info->min_width == 0;
    free(info);
    if (empty) {
        e->status = CHECK_FAILED;
        e->why = strdup("can match an empty string, which would flag every post");
        return;
    }
    if (hs_compile(e->expr, e->flags, HS_MODE_BLOCK, NULL, &db, &cerr) == HS_SUCCESS) {
        hs_free_database(db);
        e->status = CHECK_OK;
        return;
    }
    hs_free_compile_error(cerr);
    cerr = NULL;
    /* SINGLEMATCH: without a start, repeated ends of one match add nothing but noise. */
    unsigned nosom = (e->flags & ~HS_FLAG_SOM_LEFTMOST) | HS_FLAG_SINGLEMATCH;
    if (hs_compile(e->expr, nosom, HS_MODE_BLOCK, NULL, &db, &cerr) == HS_SUCCESS) {
        hs_free_database(db);
        e->flags = nosom;
        e->status = CHECK_OK_NOSOM;
        return;
    }
    e->status = CHECK_FAILED;
    e->why = match_compile_error_text(cerr);
    hs_free_compile_error(cerr);
}

typedef struct {
    match_entry_t *entries;
    const size_t *todo; /* indices of the regex entries */
    size_t ntodo;
    atomic_size_t next;
} match_check_t;

static void *match_check_worker(void *arg)
{
    match_check_t *check = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&check->next, 1);
        if (i >= check->ntodo)
            return NULL;
        match_check_regex(&check->entries[check->todo[i]]);
    }
}

/* Checks every regex on its own, on up to MATCH_CHECK_THREADS threads: a one-pattern compile is
 * cheap next to the multi-pattern build (about 10 s against 50 s for the 1,811 SpamAssassin
 * regexes on two cores), and knowing each pattern's fate first means the build runs once
 * instead of once per failure, since Hyperscan reports only the first failing expression and
 * a failed build costs as much as a successful one. */
#define MATCH_CHECK_THREADS 8

void match_check_all(match_entry_t *entries, const size_t *todo, size_t ntodo)
{
    match_check_t check = {.entries = entries, .todo = todo, .ntodo = ntodo};
    atomic_init(&check.next, 0);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    size_t nthreads = ncpu > 0 ? (size_t)ncpu : 1;
    if (nthreads > MATCH_CHECK_THREADS)
        nthreads = MATCH_CHECK_THREADS;
    if (nthreads > (ntodo + 15) / 16)
        nthreads = (ntodo + 15) / 16; /* not worth a thread for a handful of patterns */
    pthread_t threads[MATCH_CHECK_THREADS];
    size_t started = 0;
    for (size_t t = 1; t < nthreads; t++) {
        if (pthread_create(&threads[started], NULL, match_check_worker, &check) != 0)
            break; /* fewer threads is slower, not wrong */
        started++;
    }
    match_check_worker(&check);
    for (size_t t = 0; t < started; t++)
        pthread_join(threads[t], NULL);
}
