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
#include "match.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hs/hs.h>
#include <utf8proc.h>

enum {
    PAT_KEYWORD,   /* start = end - len; whole-word checks per bound_left/right */
    PAT_REGEX_SOM, /* start from Hyperscan's leftmost start of match */
    PAT_REGEX_END, /* compiled without SOM: the span is [end, end) */
};

typedef struct {
    uint32_t rule_index;
    uint32_t len; /* keyword length in bytes */
    uint8_t kind;
    uint8_t bound_left;  /* keyword starts with a word character: check the one before */
    uint8_t bound_right; /* keyword ends with a word character: check the one after */
} match_pat_t;

struct match_db {
    const rule_set_t *rs;
    hs_database_t *hs; /* NULL when the rule set has no patterns */
    match_pat_t *pats; /* indexed by Hyperscan id = index into rs->patterns */
    size_t nrules;
};

struct match_scratch {
    hs_scratch_t *hs;
    /* Per rule: the scan generation that last touched it and its slot in set->hits, so a
     * scan costs O(hits), not O(rules), and no per-post clearing of 50,000 entries. */
    uint32_t *stamp;
    uint32_t *slot;
    size_t nrules;
    uint32_t gen;
};

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

/* Scripts written without spaces between words (Han, kana, Thai, Lao, Khmer, Myanmar...):
 * "whole word" has no meaning there, so their characters neither need nor break a word
 * boundary. Without this, a Chinese keyword inside a Chinese sentence would never match. */
static bool match_cp_is_unspaced(int32_t cp)
{
    static const struct {
        int32_t lo, hi;
    } ranges[] = {
        {0x0e00, 0x0eff},   /* Thai, Lao */
        {0x1000, 0x109f},   /* Myanmar */
        {0x1780, 0x17ff},   /* Khmer */
        {0x1980, 0x19ff},   /* New Tai Lue, Khmer symbols */
        {0x1a20, 0x1aaf},   /* Tai Tham */
        {0x2e80, 0x2fdf},   /* CJK radicals */
        {0x3005, 0x3007},   /* ideographic iteration mark, closing mark, number zero */
        {0x3021, 0x3029},   /* Hangzhou numerals */
        {0x3031, 0x3035},   /* kana repeat marks */
        {0x3038, 0x303c},   /* Han numerals, masu mark */
        {0x3040, 0x30ff},   /* Hiragana, Katakana */
        {0x31f0, 0x31ff},   /* Katakana phonetic extensions */
        {0x3400, 0x4dbf},   /* CJK extension A */
        {0x4e00, 0x9fff},   /* CJK unified ideographs */
        {0xa9e0, 0xa9ff},   /* Myanmar extended-B */
        {0xaa60, 0xaa7f},   /* Myanmar extended-A */
        {0xf900, 0xfaff},   /* CJK compatibility ideographs */
        {0xff66, 0xff9f},   /* halfwidth Katakana */
        {0x1b000, 0x1b16f}, /* kana supplement, extended */
        {0x20000, 0x3ffff}, /* CJK extensions B.. */
    };
    if (cp < ranges[0].lo)
        return false;
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
        if (cp >= ranges[i].lo && cp <= ranges[i].hi)
            return true;
    return false;
}

/* Word character for whole-word keywords: a Unicode letter, mark or number, or '_'. */
static bool match_cp_is_word(int32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') ||
               cp == '_';
    if (match_cp_is_unspaced(cp))
        return false;
    utf8proc_category_t cat = utf8proc_category(cp);
    return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_NO;
}

/* The code point that ends at text[pos]; -1 at the start or on broken UTF-8. */
static int32_t match_cp_before(const unsigned char *text, size_t pos)
{
    if (pos == 0)
        return -1;
    if (text[pos - 1] < 0x80)
        return text[pos - 1];
    size_t i = pos - 1;
    while (i > 0 && pos - i < 4 && (text[i] & 0xc0) == 0x80)
        i--;
    int32_t cp = -1;
    if (utf8proc_iterate(text + i, (utf8proc_ssize_t)(pos - i), &cp) != (utf8proc_ssize_t)(pos - i))
        return -1;
    return cp;
}

/* The code point that starts at text[pos]; -1 at the end or on broken UTF-8. */
static int32_t match_cp_at(const unsigned char *text, size_t pos, size_t len)
{
    if (pos >= len)
        return -1;
    if (text[pos] < 0x80)
        return text[pos];
    size_t avail = len - pos < 4 ? len - pos : 4;
    int32_t cp = -1;
    if (utf8proc_iterate(text + pos, (utf8proc_ssize_t)avail, &cp) <= 0)
        return -1;
    return cp;
}

/* What a regex's text says about the flags it needs (see the top of this file). */
typedef struct {
    bool utf8;              /* non-ASCII text, \x{...} (a syntax error above 0xff in byte mode),
                               or a Unicode property \p / \P */
    bool word_boundary;     /* \b or \B, which Hyperscan does not support in UCP mode */
    bool nonascii_boundary; /* \b or \B right next to a non-ASCII character */
} match_regex_traits_t;

static match_regex_traits_t match_regex_traits(const char *re)
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
static char *match_keyword_escape(const char *kw)
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

/* Quotes a pattern for a one-line diagnostic (see rules.c). */
static const char *match_quote(const char *s, char buf[static 256])
{
    size_t len = strlen(s), o = 0;
    size_t shown = len > 60 ? 60 : len;
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(buf + o, 256 - o, "\\x%02x", c);
        else
            buf[o++] = (char)c;
    }
    if (shown < len) {
        while (o > 0 && ((unsigned char)buf[o - 1] & 0xc0) == 0x80)
            o--;
        if (o > 0 && (unsigned char)buf[o - 1] >= 0xc0)
            o--;
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

static void match_report(const rule_set_t *rs, size_t pattern, const char *why, tw_diag_t *diag)
{
    const rule_pattern_t *pat = &rs->patterns[pattern];
    const rule_t *rule = &rs->rules[pat->rule_index];
    char q[256];
    tw_diag_add(diag, "%s:%d: rule %s: %s '%s': %s", pat->file, pat->line, rule->id,
                pat->kind == RULE_PATTERN_KEYWORD ? "keyword" : "pattern",
                match_quote(pat->text, q), why);
}

enum {
    CHECK_OK,       /* compiles as it is */
    CHECK_OK_NOSOM, /* compiles only without SOM_LEFTMOST */
    CHECK_FAILED,   /* does not compile; why says why */
};

typedef struct {
    char *expr; /* Hyperscan expression: escaped keyword or regex source */
    unsigned flags;
    uint8_t status;
    char *why; /* CHECK_FAILED: malloc'd reason, or NULL for out of memory */
} match_entry_t;

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

static void match_check_all(match_entry_t *entries, const size_t *todo, size_t ntodo)
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

int match_db_compile(const rule_set_t *rs, match_db_t **out, tw_diag_t *diag)
{
    *out = NULL;
    if (rs->npatterns > UINT32_MAX)
        return TW_ERR_TOO_LARGE;
    int err = 0;
    size_t nfailed = 0;
    size_t n = rs->npatterns;
    size_t alloc_n = n ? n : 1;
    match_entry_t *entries = calloc(alloc_n, sizeof(*entries));
    size_t *todo = calloc(alloc_n, sizeof(*todo));
    const char **exprs = calloc(alloc_n, sizeof(*exprs));
    unsigned *flags = calloc(alloc_n, sizeof(*flags));
    unsigned *ids = calloc(alloc_n, sizeof(*ids));
    match_db_t *db = calloc(1, sizeof(*db));
    if (!entries || !todo || !exprs || !flags || !ids || !db) {
        err = TW_ERR_NOMEM;
        goto out;
    }
    db->rs = rs;
    db->nrules = rs->nrules;
    db->pats = calloc(alloc_n, sizeof(*db->pats));
    if (!db->pats) {
        err = TW_ERR_NOMEM;
        goto out;
    }

    size_t ntodo = 0;
    for (size_t i = 0; i < n; i++) {
        const rule_pattern_t *rp = &rs->patterns[i];
        match_pat_t *mp = &db->pats[i];
        match_entry_t *e = &entries[i];
        mp->rule_index = rp->rule_index;
        if (rp->kind == RULE_PATTERN_KEYWORD) {
            const unsigned char *kw = (const unsigned char *)rp->text;
            mp->kind = PAT_KEYWORD;
            mp->len = (uint32_t)strlen(rp->text);
            mp->bound_left = match_cp_is_word(match_cp_at(kw, 0, mp->len));
            mp->bound_right = match_cp_is_word(match_cp_before(kw, mp->len));
            e->expr = match_keyword_escape(rp->text);
            e->flags = 0;
        } else {
            match_regex_traits_t traits = match_regex_traits(rp->text);
            mp->kind = PAT_REGEX_SOM;
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
                todo[ntodo++] = i;
            }
        }
        if (!e->expr) {
            err = TW_ERR_NOMEM;
            goto out;
        }
    }
    match_check_all(entries, todo, ntodo);
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        match_entry_t *e = &entries[i];
        if (e->status == CHECK_FAILED) {
            if (!e->why) {
                err = TW_ERR_NOMEM;
                goto out;
            }
            match_report(rs, i, e->why, diag);
            nfailed++;
            continue;
        }
        if (e->status == CHECK_OK_NOSOM)
            db->pats[i].kind = PAT_REGEX_END;
        exprs[count] = e->expr;
        flags[count] = e->flags;
        ids[count] = (unsigned)i;
        count++;
    }
    /* With bad patterns there is no database to build: report them now rather than after a
     * build that could take a minute. */
    if (nfailed) {
        err = TW_ERR_COMPILE;
        goto out;
    }

    /* Patterns that compile alone can still fail together (rare: resource limits). Hyperscan
     * names only the first failing expression: report it, drop it, build again. */
    while (count > 0) {
        hs_compile_error_t *cerr = NULL;
        if (hs_compile_ext_multi(exprs, flags, ids, NULL, (unsigned)count, HS_MODE_BLOCK, NULL,
                                 &db->hs, &cerr) == HS_SUCCESS)
            break;
        db->hs = NULL;
        nfailed++;
        if (!cerr) {
            err = TW_ERR_NOMEM;
            goto out;
        }
        if (cerr->expression < 0 || (size_t)cerr->expression >= count) {
            /* Not about one pattern (out of memory, database too large): nothing to drop. */
            tw_diag_add(diag, "%s: compiling %zu patterns: %s", rs->nfiles ? rs->files[0] : "rules",
                        count, cerr->message);
            hs_free_compile_error(cerr);
            break;
        }
        size_t at = (size_t)cerr->expression;
        match_report(rs, ids[at], cerr->message, diag);
        hs_free_compile_error(cerr);
        count--;
        memmove(&exprs[at], &exprs[at + 1], (count - at) * sizeof(exprs[0]));
        memmove(&flags[at], &flags[at + 1], (count - at) * sizeof(flags[0]));
        memmove(&ids[at], &ids[at + 1], (count - at) * sizeof(ids[0]));
    }
    if (nfailed) {
        err = TW_ERR_COMPILE;
        goto out;
    }
    *out = db;
    db = NULL;
out:
    if (entries) {
        for (size_t i = 0; i < n; i++) {
            free(entries[i].expr);
            free(entries[i].why);
        }
    }
    free(entries);
    free(todo);
    free(exprs);
    free(flags);
    free(ids);
    match_db_free(db);
    return err;
}

void match_db_free(match_db_t *db)
{
    if (!db)
        return;
    hs_free_database(db->hs);
    free(db->pats);
    free(db);
}

const rule_set_t *match_db_rules(const match_db_t *db)
{
    return db->rs;
}

size_t match_db_size_bytes(const match_db_t *db)
{
    size_t size = 0;
    if (db->hs && hs_database_size(db->hs, &size) != HS_SUCCESS)
        return 0;
    return size;
}

int match_scratch_new(const match_db_t *db, match_scratch_t **out)
{
    *out = NULL;
    match_scratch_t *scratch = calloc(1, sizeof(*scratch));
    if (!scratch)
        return TW_ERR_NOMEM;
    scratch->nrules = db->nrules;
    scratch->stamp = calloc(db->nrules ? db->nrules : 1, sizeof(*scratch->stamp));
    scratch->slot = calloc(db->nrules ? db->nrules : 1, sizeof(*scratch->slot));
    if (!scratch->stamp || !scratch->slot ||
        (db->hs && hs_alloc_scratch(db->hs, &scratch->hs) != HS_SUCCESS)) {
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
    free(scratch);
}

typedef struct {
    const match_db_t *db;
    match_scratch_t *scratch;
    match_set_t *set;
    const unsigned char *text;
    size_t len;
    bool nomem;
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

static int match_on_hit(unsigned int id, unsigned long long from, unsigned long long to,
                        unsigned int flags, void *arg)
{
    (void)flags;
    match_ctx_t *ctx = arg;
    const match_pat_t *pat = &ctx->db->pats[id];
    const unsigned char *text = ctx->text;
    size_t start, end = (size_t)to;
    switch (pat->kind) {
    case PAT_KEYWORD:
        start = end - pat->len;
        if (pat->bound_left && match_cp_is_word(match_cp_before(text, start)))
            return 0;
        if (pat->bound_right && match_cp_is_word(match_cp_at(text, end, ctx->len)))
            return 0;
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

    match_scratch_t *scratch = ctx->scratch;
    match_set_t *set = ctx->set;
    uint32_t rule = pat->rule_index;
    match_rule_hit_t *hit;
    if (scratch->stamp[rule] == scratch->gen) {
        hit = &set->hits[scratch->slot[rule]];
    } else {
        if (set->count == MATCH_MAX_RULES_PER_POST) {
            set->truncated = true;
            return 0;
        }
        if (set->count == set->cap) {
            size_t cap = set->cap ? set->cap * 2 : 8;
            if (cap > MATCH_MAX_RULES_PER_POST)
                cap = MATCH_MAX_RULES_PER_POST;
            match_rule_hit_t *hits = realloc(set->hits, cap * sizeof(*hits));
            if (!hits) {
                ctx->nomem = true;
                return 1; /* stop the scan */
            }
            set->hits = hits;
            set->cap = cap;
        }
        scratch->stamp[rule] = scratch->gen;
        scratch->slot[rule] = (uint32_t)set->count;
        hit = &set->hits[set->count++];
        hit->rule_index = rule;
        hit->nspans = 0;
    }
    match_span_add(hit, (uint32_t)start, (uint32_t)end, &set->truncated);
    return 0;
}

int match_scan(const match_db_t *db, match_scratch_t *scratch, const char *text, size_t len,
               match_set_t *set)
{
    set->count = 0;
    set->truncated = false;
    if (!db->hs)
        return 0;
    /* Hyperscan takes an unsigned int length and spans are uint32_t. */
    if (len > UINT32_MAX || scratch->nrules != db->nrules)
        return TW_ERR_SCAN;
    /* A new generation invalidates every stamp at once; on wrap-around clear them for real. */
    if (++scratch->gen == 0) {
        memset(scratch->stamp, 0, scratch->nrules * sizeof(*scratch->stamp));
        scratch->gen = 1;
    }
    match_ctx_t ctx = {
        .db = db, .scratch = scratch, .set = set, .text = (const unsigned char *)text, .len = len};
    hs_error_t rc =
        hs_scan(db->hs, text ? text : "", (unsigned)len, 0, scratch->hs, match_on_hit, &ctx);
    if (ctx.nomem) {
        set->count = 0;
        return TW_ERR_NOMEM;
    }
    if (rc != HS_SUCCESS) {
        set->count = 0;
        return TW_ERR_SCAN;
    }
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
    return 0;
}
