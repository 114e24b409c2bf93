/* scan-only floor: one Hyperscan block scan per post over its folded text (tidewatch's own
 * normalize_text: NFKC + case fold + invisibles + whitespace), with every pattern of the rule
 * set in one database. Decoding and normalizing are done first and not timed; the timed loop
 * is hs_scan alone. Keywords are compiled as caseless literals without word boundaries and
 * without tidewatch's skeleton/squash views or rule logic, so this is a floor, not a peer.
 * usage: fair_scan_only RULES.tsv POSTS.jsonl [REPS]   (RULES.tsv: rule, kind, langs, pattern
 * as written by perf/build_ruleset.py). Prints one JSON object. */
#include <hs/hs.h>
#include <jansson.h>

#include "common.h"
#include "normalize/normalize.h"

static char *escape_literal(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(2 * n + 1), *o = out;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 128 && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == ' '))
            *o++ = '\\';
        *o++ = (char)c;
    }
    *o = '\0';
    return out;
}

static int has_nonascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 128)
            return 1;
    return 0;
}

static int on_match(unsigned int id, unsigned long long from, unsigned long long to,
                    unsigned int flags, void *ctx)
{
    (void)id, (void)from, (void)to, (void)flags;
    ++*(size_t *)ctx;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s RULES.tsv POSTS.jsonl [REPS]\n", argv[0]);
        return 2;
    }
    int reps = argc > 3 ? atoi(argv[3]) : 3;
    fair_lines_t rules, posts;
    if (fair_read_lines(argv[1], &rules) != 0 || fair_read_lines(argv[2], &posts) != 0) {
        perror("read");
        return 1;
    }
    char **expr = calloc(rules.n, sizeof(*expr));
    unsigned *flags = calloc(rules.n, sizeof(*flags)), *ids = calloc(rules.n, sizeof(*ids));
    size_t n = 0;
    for (size_t i = 0; i < rules.n; i++) {
        char *f[4] = {rules.line[i], NULL, NULL, NULL};
        for (int k = 1; k < 4; k++) {
            char *tab = f[k - 1] ? strchr(f[k - 1], '\t') : NULL;
            if (tab) {
                *tab = '\0';
                f[k] = tab + 1;
            }
        }
        if (!f[3])
            continue;
        int keyword = strcmp(f[1], "keyword") == 0;
        expr[n] = keyword ? escape_literal(f[3]) : strdup(f[3]);
        flags[n] = HS_FLAG_CASELESS | HS_FLAG_SINGLEMATCH | (has_nonascii(f[3]) ? HS_FLAG_UTF8 : 0);
        ids[n] = (unsigned)n;
        n++;
    }
    size_t dropped = 0;
    hs_database_t *db = NULL;
    double c0 = fair_cpu_seconds();
    for (;;) {
        hs_compile_error_t *cerr = NULL;
        if (hs_compile_multi((const char *const *)expr, flags, ids, (unsigned)n, HS_MODE_BLOCK,
                             NULL, &db, &cerr) == HS_SUCCESS)
            break;
        int bad = cerr->expression;
        hs_free_compile_error(cerr);
        if (bad < 0) {
            fprintf(stderr, "hs_compile_multi failed\n");
            return 1;
        }
        free(expr[bad]);
        memmove(&expr[bad], &expr[bad + 1], (n - (size_t)bad - 1) * sizeof(*expr));
        memmove(&flags[bad], &flags[bad + 1], (n - (size_t)bad - 1) * sizeof(*flags));
        n--;
        dropped++;
    }
    double compile_s = fair_cpu_seconds() - c0;
    hs_scratch_t *scratch = NULL;
    hs_alloc_scratch(db, &scratch);

    char **text = calloc(posts.n, sizeof(*text));
    size_t *tlen = calloc(posts.n, sizeof(*tlen)), ntext = 0, text_bytes = 0;
    normalized_t norm;
    normalized_init(&norm);
    for (size_t i = 0; i < posts.n; i++) {
        json_error_t err;
        json_t *post = json_loadb(posts.line[i], posts.len[i], 0, &err);
        const char *t = post ? json_string_value(json_object_get(post, "text")) : NULL;
        if (t && normalize_text(t, strlen(t), &norm) == 0) {
            text[ntext] = malloc(norm.len + 1);
            memcpy(text[ntext], norm.text, norm.len + 1);
            tlen[ntext] = norm.len;
            text_bytes += norm.len;
            ntext++;
        }
        json_decref(post);
    }
    normalized_fini(&norm);

    double best = 1e30;
    size_t matches = 0, posts_hit = 0;
    for (int r = 0; r < reps; r++) {
        matches = posts_hit = 0;
        double t0 = fair_cpu_seconds();
        for (size_t i = 0; i < ntext; i++) {
            size_t m = 0;
            hs_scan(db, text[i], (unsigned)tlen[i], 0, scratch, on_match, &m);
            matches += m;
            posts_hit += m > 0;
        }
        double dt = fair_cpu_seconds() - t0;
        if (dt < best)
            best = dt;
    }
    printf("{\"posts\": %zu, \"scanned\": %zu, \"patterns\": %zu, \"patterns_refused\": %zu, "
           "\"text_bytes\": %zu, \"compile_cpu_s\": %.3f, \"cpu_s\": %.6f, \"matches\": %zu, "
           "\"posts_hit\": %zu, \"reps\": %d}\n",
           posts.n, ntext, n, dropped, text_bytes, compile_s, best, matches, posts_hit, reps);
    return 0;
}
