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
#include "match/match.h"
#include "util/unicode.h"
#include "util/utf8.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hs/hs.h>
#include <utf8proc.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "normalize/confusables_table.h"

enum {
    PAT_KEYWORD,   /* start = end - len; whole-word checks per bound_left/right */
    PAT_REGEX_SOM, /* start from Hyperscan's leftmost start of match */
    PAT_REGEX_END, /* compiled without SOM: the span is [end, end) */
};

/* One compiled expression: a rule pattern in one view. Hyperscan ids index db->pats. Plain
 * data with fixed-size fields: the on-disk cache stores the array as it is. */
typedef struct {
    uint32_t rule_index;
    uint32_t pattern_index; /* into rs->patterns */
    uint32_t len;           /* keyword length in bytes (in its view) */
    uint8_t kind;
    uint8_t bound_left;  /* keyword starts with a word character: check the one before */
    uint8_t bound_right; /* keyword ends with a word character: check the one after */
    uint8_t view;        /* normalize_view_t scanned */
    uint8_t group;       /* rule_group_t */
    uint8_t guard;       /* Latin keyword in a derived view: check the span's scripts */
    uint8_t all_index;
    uint8_t pad;
} match_pat_t;

/* What a rule needs beyond "a pattern hit", resolved at compile time. */
typedef struct {
    uint32_t all_mask;  /* bits of its `all:` items */
    uint32_t min_any;   /* distinct `any` patterns needed, 0 when it has none */
    uint8_t has_except; /* any `except:` keyword */
    uint8_t has_langs;
    uint32_t within;  /* rule_t.within */
    uint32_t targets; /* MATCH_TARGET_* bits, and 1 << (2 + i) for db->field_names[i] */
} match_rule_t;

#define MATCH_TARGET_TEXT     1u
#define MATCH_TARGET_HASHTAGS 2u

struct match_db {
    const rule_set_t *rs;
    hs_database_t *hs[NORM_VIEW_COUNT]; /* NULL for a view no pattern uses */
    match_pat_t *pats;
    size_t npats;
    size_t nrules;
    size_t npatterns;
    match_rule_t *rule_info;
    bool logic;     /* some rule needs more than "any pattern hit": run match_finish */
    bool has_allow; /* the global allow list is not empty */
    bool from_cache;
    size_t view_count[NORM_VIEW_COUNT];
    /* What a post's skeleton must have changed for the skeleton scan to find anything new:
     * an ASCII byte that some skeleton pattern contains, or an Arabic change when some
     * skeleton pattern is Arabic (normalize_skeleton_info_t). Computed from pats. */
    char *field_names[MATCH_MAX_FIELDS]; /* fields other than the text some rule targets */
    size_t nfields;
    uint32_t skel_ascii[4];
    bool skel_arabic;
    bool skel_other; /* a skeleton pattern with non-ASCII, non-Arabic text */
};

#define MATCH_MAX_ALLOW_SPANS 16
#define MATCH_MAX_NEAR        128 /* hits of `within` rules remembered per post */

typedef struct {
    uint32_t rule;
    uint32_t start; /* folded-text offset */
    uint32_t item;  /* all_index, or 32 for an `any` hit */
} match_near_t;

struct match_scratch {
    hs_scratch_t *hs;
    /* Per rule: the scan generation that last touched it and its slot in set->hits, so a
     * scan costs O(hits), not O(rules), and no per-post clearing of 50,000 entries. */
    uint32_t *stamp;
    uint32_t *slot;
    uint32_t *all_bits;  /* valid while stamp == gen */
    uint32_t *any_count; /* distinct `any` patterns hit, valid while stamp == gen */
    uint32_t *veto;      /* gen when an `except:` keyword hit */
    uint32_t *pstamp;    /* per rule pattern: gen when it last counted */
    size_t nrules;
    size_t npatterns;
    uint32_t gen;
    normalized_t skeleton; /* derived views of the post being scanned, buffers reused */
    normalized_t squash;
    normalized_t field_norm;                   /* another field of the post, folded */
    match_span_t allow[MATCH_MAX_ALLOW_SPANS]; /* folded-text spans of allow-list hits */
    size_t nallow;
    match_near_t near[MATCH_MAX_NEAR];
    size_t nnear;
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

/* Word character for whole-word keywords: a Unicode letter, mark or number, or '_'. */
static bool match_cp_is_word(int32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') ||
               cp == '_';
    if (unicode_is_unspaced_script(cp))
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
    size_t n;
    int32_t cp = utf8_decode(text + i, text + pos, &n);
    return cp >= 0 && n == pos - i ? cp : -1;
}

/* The code point that starts at text[pos]; -1 at the end or on broken UTF-8. */
static int32_t match_cp_at(const unsigned char *text, size_t pos, size_t len)
{
    if (pos >= len)
        return -1;
    size_t n;
    return utf8_decode(text + pos, text + len, &n);
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

static void match_report(const rule_set_t *rs, size_t pattern, const char *why, tw_diag_t *diag)
{
    const rule_pattern_t *pat = &rs->patterns[pattern];
    const rule_t *rule = &rs->rules[pat->rule_index];
    char q[TW_DIAG_QUOTE_SIZE];
    tw_diag_add(diag, "%s:%d: rule %s: %s '%s': %s", pat->file, pat->line, rule->id,
                pat->kind == RULE_PATTERN_KEYWORD ? "keyword" : "pattern",
                tw_diag_quote(pat->text, strlen(pat->text), 0, q), why);
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

/* Latin script letters, as far as the guard is concerned (NFKC has already turned
 * fullwidth and mathematical letters into ASCII). */
static bool match_cp_is_latin(int32_t cp)
{
    return cp < 0x0250 || (cp >= 0x1D00 && cp <= 0x1DBF) || (cp >= 0x1E00 && cp <= 0x1EFF) ||
           (cp >= 0x2C60 && cp <= 0x2C7F) || (cp >= 0xA720 && cp <= 0xA7FF) ||
           (cp >= 0xAB30 && cp <= 0xAB6F);
}

static bool match_cp_is_letter(int32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
    utf8proc_category_t cat = utf8proc_category(cp);
    return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
}

/* Which derived views a keyword may use: its letters are all Latin or all Arabic (or it has
 * none). A Cyrillic keyword is left in folded: its skeleton would be Latin look-alikes and
 * would fire on English text. *latin says whether the Latin guard applies. */
static bool match_keyword_derivable(const char *kw, bool *latin)
{
    size_t nlatin = 0, narabic = 0, nother = 0;
    const unsigned char *p = (const unsigned char *)kw;
    size_t len = strlen(kw);
    for (size_t i = 0; i < len;) {
        int32_t cp = match_cp_at(p, i, len);
        i += p[i] < 0x80 ? 1 : p[i] < 0xE0 ? 2 : p[i] < 0xF0 ? 3 : 4;
        if (cp < 0 || !match_cp_is_letter(cp))
            continue;
        if (match_cp_is_latin(cp))
            nlatin++;
        else if (unicode_is_arabic_script(cp))
            narabic++;
        else
            nother++;
    }
    *latin = nlatin > 0;
    return nother == 0 && !(nlatin && narabic);
}

/* A compiled expression being collected for one view. */
typedef struct {
    char *expr; /* owned */
    unsigned flags;
    match_pat_t pat;
} match_item_t;

typedef struct {
    match_item_t *items;
    size_t count, cap;
} match_items_t;

static int match_items_add(match_items_t *list, char *expr, unsigned flags, const match_pat_t *pat)
{
    if (!expr)
        return TW_ERR_NOMEM;
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 256;
        match_item_t *items = realloc(list->items, cap * sizeof(*items));
        if (!items) {
            free(expr);
            return TW_ERR_NOMEM;
        }
        list->items = items;
        list->cap = cap;
    }
    list->items[list->count].expr = expr;
    list->items[list->count].flags = flags;
    list->items[list->count].pat = *pat;
    list->count++;
    return 0;
}

/* Adds the keyword text kw (already in view's form) as a literal of the view. */
static int match_keyword_add(match_items_t *list, const char *kw, size_t len, rule_mode_t mode,
                             normalize_view_t view, bool guard, match_pat_t base)
{
    const unsigned char *p = (const unsigned char *)kw;
    base.kind = PAT_KEYWORD;
    base.len = (uint32_t)len;
    base.view = (uint8_t)view;
    base.guard = guard;
    base.bound_left = (mode == RULE_MODE_WORD || mode == RULE_MODE_PREFIX) &&
                      match_cp_is_word(match_cp_at(p, 0, len));
    base.bound_right = (mode == RULE_MODE_WORD || mode == RULE_MODE_SUFFIX) &&
                       match_cp_is_word(match_cp_before(p, len));
    return match_items_add(list, match_keyword_escape(kw), 0, &base);
}

static unsigned match_pattern_views(const rule_set_t *rs, const rule_pattern_t *rp, bool derivable)
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
static int match_keyword_collect(const rule_set_t *rs, size_t i, match_items_t lists[],
                                 normalized_t *tmp)
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
    if (views & RULE_VIEW_FOLDED)
        rc = match_keyword_add(&lists[NORM_VIEW_FOLDED], rp->text, kwlen, mode, NORM_VIEW_FOLDED,
                               false, base);
    if (rc == 0 && (views & RULE_VIEW_SKELETON)) {
        rc = normalize_text_view(rp->text, kwlen, NORM_VIEW_SKELETON, tmp);
        if (rc == 0 && tmp->len) {
            rc = match_keyword_add(&lists[NORM_VIEW_SKELETON], tmp->text, tmp->len, mode,
                                   NORM_VIEW_SKELETON, latin, base);
            /* Posts whose skeleton is their folded text (most: plain ASCII) skip the skeleton
             * scan, so a keyword whose skeleton differs (Arabic "مدرسة" -> "مدرسه") is looked
             * for in folded text as well. */
            if (rc == 0 && (tmp->len != kwlen || memcmp(tmp->text, rp->text, kwlen) != 0))
                rc = match_keyword_add(&lists[NORM_VIEW_FOLDED], tmp->text, tmp->len, mode,
                                       NORM_VIEW_FOLDED, false, base);
        }
    }
    if (rc == 0 && (views & RULE_VIEW_SQUASH)) {
        rc = normalize_text_view(rp->text, kwlen, NORM_VIEW_SQUASH, tmp);
        if (rc == 0 && tmp->len)
            rc = match_keyword_add(&lists[NORM_VIEW_SQUASH], tmp->text, tmp->len, mode,
                                   NORM_VIEW_SQUASH, latin, base);
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
                                       NORM_VIEW_SQUASH, latin, base);
        }
    }
    return rc;
}

/* Builds one view's database. Patterns that compile alone can still fail together (rare:
 * resource limits); Hyperscan names only the first failing expression: report it, drop it,
 * build again. Returns the number of failures. */
static size_t match_build_view(const rule_set_t *rs, match_items_t *list, size_t id_base,
                               hs_database_t **hs, tw_diag_t *diag, bool *nomem)
{
    size_t count = list->count;
    size_t nfailed = 0;
    if (count == 0)
        return 0;
    const char **exprs = calloc(count, sizeof(*exprs));
    unsigned *flags = calloc(count, sizeof(*flags));
    unsigned *ids = calloc(count, sizeof(*ids));
    if (!exprs || !flags || !ids) {
        *nomem = true;
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        exprs[i] = list->items[i].expr;
        flags[i] = list->items[i].flags;
        ids[i] = (unsigned)(id_base + i);
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

static int match_rule_info(const rule_set_t *rs, match_db_t *db, tw_diag_t *diag)
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
    for (size_t i = 0; i < rs->npatterns; i++) {
        const rule_pattern_t *rp = &rs->patterns[i];
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

/* ---- The compiled-database cache ----------------------------------------------------------
 * A rule set is fully determined by the bytes of its rules and keywords files (rs->version
 * hashes them), so the key is that hash plus everything else that changes what gets built:
 * this build of tidewatch (normalization and flag choices live in the code), the Hyperscan
 * version and the CPU features Hyperscan targets. The file holds the key, the pattern table
 * and each view's hs_serialize_database() bytes; it is written to a temporary name and
 * renamed, so readers never see half a file. */
#define MATCH_CACHE_MAGIC "TWHSDB2"

static int match_cache_key(const rule_set_t *rs, char hex[65])
{
    hs_platform_info_t plat;
    memset(&plat, 0, sizeof(plat));
    if (hs_populate_platform(&plat) != HS_SUCCESS)
        return TW_ERR_INVALID;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md)
        return TW_ERR_NOMEM;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    char platbuf[64];
    snprintf(platbuf, sizeof(platbuf), "%u/%llu/%zu", plat.tune,
             (unsigned long long)plat.cpu_features, sizeof(match_pat_t));
    const char *parts[] = {MATCH_CACHE_MAGIC, TIDEWATCH_VERSION, __DATE__ " " __TIME__,
                           hs_version(),      platbuf,           confusables_table_version,
                           rs->version};
    int ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
    for (size_t i = 0; ok && i < sizeof(parts) / sizeof(parts[0]); i++)
        ok = EVP_DigestUpdate(md, parts[i], strlen(parts[i]) + 1) == 1;
    /* Keywords are stored in the database in their views' forms: a canary text through each
     * view puts the normalization code itself into the key, so a build that normalizes
     * differently never reads an old database even with the same date stamp. */
    static const char canary[] = "\xef\xbc\xa6r\xd0\x95\xd1\x91 gi\xe1\xba\xa3 "
                                 "\xd9\x85\xd9\x8e\xd8\xac\xd9\x80\xd8\xa7 f.r.3.3 $@|! "
                                 "\xd1\x80\xd0\xb0\xd1\x83 \xe1\xba\x9e\xe2\x84\xaa";
    normalized_t view;
    normalized_init(&view);
    for (int v = 0; ok && v < NORM_VIEW_COUNT; v++) {
        ok = normalize_text_view(canary, sizeof(canary) - 1, (normalize_view_t)v, &view) == 0 &&
             EVP_DigestUpdate(md, view.text, view.len + 1) == 1 &&
             EVP_DigestUpdate(md, view.src_start, (view.len + 1) * sizeof(uint32_t)) == 1;
    }
    normalized_fini(&view);
    ok = ok && EVP_DigestFinal_ex(md, digest, &dlen) == 1 && dlen == 32;
    EVP_MD_CTX_free(md);
    if (!ok)
        return TW_ERR_NOMEM;
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return 0;
}

static bool match_read_all(FILE *f, void *buf, size_t n)
{
    return fread(buf, 1, n, f) == n;
}

/* Returns 0 with db filled, or nonzero when the file is missing, stale or unreadable. */
static int match_cache_load(const char *path, const rule_set_t *rs, match_db_t *db)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    int rc = -1;
    char magic[8];
    uint64_t hdr[3 + NORM_VIEW_COUNT];
    char *blob = NULL;
    if (!match_read_all(f, magic, sizeof(magic)) || memcmp(magic, MATCH_CACHE_MAGIC, 8) != 0 ||
        !match_read_all(f, hdr, sizeof(hdr)))
        goto out;
    if (hdr[0] != rs->npatterns || hdr[1] != rs->nrules || hdr[2] > 4 * (uint64_t)UINT32_MAX)
        goto out;
    db->npats = (size_t)hdr[2];
    db->pats = calloc(db->npats ? db->npats : 1, sizeof(*db->pats));
    if (!db->pats || !match_read_all(f, db->pats, db->npats * sizeof(*db->pats)))
        goto out;
    for (size_t i = 0; i < db->npats; i++)
        if (db->pats[i].rule_index >= (rs->nrules ? rs->nrules : 1) ||
            db->pats[i].pattern_index >= rs->npatterns || db->pats[i].view >= NORM_VIEW_COUNT ||
            db->pats[i].kind > PAT_REGEX_END || db->pats[i].group > RULE_GROUP_ALLOW ||
            db->pats[i].all_index >= RULES_MAX_ALL)
            goto out;
    for (int v = 0; v < NORM_VIEW_COUNT; v++) {
        uint64_t size = hdr[3 + v];
        if (size == 0)
            continue;
        if (size > (1ull << 32))
            goto out;
        blob = malloc((size_t)size);
        if (!blob || !match_read_all(f, blob, (size_t)size))
            goto out;
        if (hs_deserialize_database(blob, (size_t)size, &db->hs[v]) != HS_SUCCESS) {
            db->hs[v] = NULL;
            goto out;
        }
        free(blob);
        blob = NULL;
    }
    for (size_t i = 0; i < db->npats; i++)
        db->view_count[db->pats[i].view]++;
    rc = 0;
out:
    free(blob);
    fclose(f);
    if (rc != 0) {
        for (int v = 0; v < NORM_VIEW_COUNT; v++) {
            hs_free_database(db->hs[v]);
            db->hs[v] = NULL;
        }
        free(db->pats);
        db->pats = NULL;
        db->npats = 0;
    }
    return rc;
}

static void match_cache_store(const char *dir, const char *path, const rule_set_t *rs,
                              const match_db_t *db)
{
    char *bytes[NORM_VIEW_COUNT] = {0};
    size_t sizes[NORM_VIEW_COUNT] = {0};
    char *tmp = NULL;
    FILE *f = NULL;
    /* mkdir -p for the last two levels ($XDG_CACHE_HOME may not exist yet). */
    char *parent = strdup(dir);
    if (parent) {
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) {
            *slash = '\0';
            mkdir(parent, 0700);
        }
        free(parent);
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return;
    for (int v = 0; v < NORM_VIEW_COUNT; v++)
        if (db->hs[v] && hs_serialize_database(db->hs[v], &bytes[v], &sizes[v]) != HS_SUCCESS)
            goto out;
    if (asprintf(&tmp, "%s.%ld.tmp", path, (long)getpid()) < 0) {
        tmp = NULL;
        goto out;
    }
    f = fopen(tmp, "wb");
    if (!f)
        goto out;
    uint64_t hdr[3 + NORM_VIEW_COUNT] = {rs->npatterns, rs->nrules, db->npats};
    for (int v = 0; v < NORM_VIEW_COUNT; v++)
        hdr[3 + v] = sizes[v];
    bool ok = fwrite(MATCH_CACHE_MAGIC, 1, 8, f) == 8 && fwrite(hdr, sizeof(hdr), 1, f) == 1 &&
              fwrite(db->pats, sizeof(*db->pats), db->npats, f) == db->npats;
    for (int v = 0; ok && v < NORM_VIEW_COUNT; v++)
        ok = !sizes[v] || fwrite(bytes[v], 1, sizes[v], f) == sizes[v];
    ok = fclose(f) == 0 && ok;
    f = NULL;
    if (!ok || rename(tmp, path) != 0)
        unlink(tmp);
out:
    if (f)
        fclose(f);
    free(tmp);
    for (int v = 0; v < NORM_VIEW_COUNT; v++)
        free(bytes[v]);
}

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

int match_cache_dir_default(char *buf, size_t size)
{
    const char *xdg = getenv("XDG_CACHE_HOME");
    int n = xdg && *xdg ? snprintf(buf, size, "%s/tidewatch", xdg)
                        : snprintf(buf, size, "/tmp/tidewatch-cache-%ld", (long)getuid());
    return n > 0 && (size_t)n < size ? 0 : TW_ERR_TOO_LARGE;
}

int match_db_compile_cached(const rule_set_t *rs, const char *cache_dir, match_db_t **out,
                            tw_diag_t *diag)
{
    *out = NULL;
    if (rs->npatterns > UINT32_MAX / 4)
        return TW_ERR_TOO_LARGE;
    int err = 0;
    size_t nfailed = 0;
    size_t n = rs->npatterns;
    size_t alloc_n = n ? n : 1;
    match_items_t lists[NORM_VIEW_COUNT];
    memset(lists, 0, sizeof(lists));
    normalized_t tmp;
    normalized_init(&tmp);
    char *cache_path = NULL;
    match_entry_t *entries = calloc(alloc_n, sizeof(*entries));
    size_t *todo = calloc(alloc_n, sizeof(*todo));
    match_db_t *db = calloc(1, sizeof(*db));
    if (!entries || !todo || !db) {
        err = TW_ERR_NOMEM;
        goto out;
    }
    db->rs = rs;
    db->nrules = rs->nrules;
    db->npatterns = rs->npatterns;
    if ((err = match_rule_info(rs, db, diag)) != 0)
        goto out;

    if (cache_dir && *cache_dir) {
        char key[65];
        if (match_cache_key(rs, key) == 0 &&
            asprintf(&cache_path, "%s/%s.hsdb", cache_dir, key) < 0)
            cache_path = NULL;
        if (cache_path && match_cache_load(cache_path, rs, db) == 0) {
            db->from_cache = true;
            match_skel_filter(db);
            *out = db;
            db = NULL;
            goto out;
        }
    }

    size_t ntodo = 0;
    for (size_t i = 0; i < n; i++) {
        const rule_pattern_t *rp = &rs->patterns[i];
        match_entry_t *e = &entries[i];
        if (rp->kind == RULE_PATTERN_KEYWORD)
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
            todo[ntodo++] = i;
        }
        if (!e->expr) {
            err = TW_ERR_NOMEM;
            goto out;
        }
    }
    match_check_all(entries, todo, ntodo);
    for (size_t i = 0; i < n; i++) {
        const rule_pattern_t *rp = &rs->patterns[i];
        match_entry_t *e = &entries[i];
        if (rp->kind == RULE_PATTERN_KEYWORD) {
            if ((err = match_keyword_collect(rs, i, lists, &tmp)) != 0)
                goto out;
            continue;
        }
        if (e->status == CHECK_FAILED) {
            if (!e->why) {
                err = TW_ERR_NOMEM;
                goto out;
            }
            match_report(rs, i, e->why, diag);
            nfailed++;
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
            if ((err = match_items_add(&lists[v], strdup(e->expr), e->flags, &pat)) != 0)
                goto out;
        }
    }
    /* With bad patterns there is no database to build: report them now rather than after a
     * build that could take a minute. */
    if (nfailed) {
        err = TW_ERR_COMPILE;
        goto out;
    }
    size_t total = 0;
    for (int v = 0; v < NORM_VIEW_COUNT; v++)
        total += lists[v].count;
    db->pats = calloc(total ? total : 1, sizeof(*db->pats));
    if (!db->pats) {
        err = TW_ERR_NOMEM;
        goto out;
    }
    bool nomem = false;
    for (int v = 0; v < NORM_VIEW_COUNT; v++) {
        size_t base = db->npats;
        for (size_t i = 0; i < lists[v].count; i++)
            db->pats[db->npats++] = lists[v].items[i].pat;
        db->view_count[v] = lists[v].count;
        nfailed += match_build_view(rs, &lists[v], base, &db->hs[v], diag, &nomem);
    }
    if (nomem) {
        err = TW_ERR_NOMEM;
        goto out;
    }
    if (nfailed) {
        err = TW_ERR_COMPILE;
        goto out;
    }
    match_skel_filter(db);
    if (cache_path)
        match_cache_store(cache_dir, cache_path, rs, db);
    *out = db;
    db = NULL;
out:
    if (entries) {
        for (size_t i = 0; i < n; i++) {
            free(entries[i].expr);
            free(entries[i].why);
        }
    }
    for (int v = 0; v < NORM_VIEW_COUNT; v++) {
        for (size_t i = 0; i < lists[v].count; i++)
            free(lists[v].items[i].expr);
        free(lists[v].items);
    }
    normalized_fini(&tmp);
    free(cache_path);
    free(entries);
    free(todo);
    match_db_free(db);
    return err;
}

int match_db_compile(const rule_set_t *rs, match_db_t **out, tw_diag_t *diag)
{
    return match_db_compile_cached(rs, NULL, out, diag);
}

void match_db_free(match_db_t *db)
{
    if (!db)
        return;
    for (int v = 0; v < NORM_VIEW_COUNT; v++)
        hs_free_database(db->hs[v]);
    free(db->pats);
    free(db->rule_info);
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
    for (int v = 0; ok && v < NORM_VIEW_COUNT; v++)
        if (db->hs[v] && hs_alloc_scratch(db->hs[v], &scratch->hs) != HS_SUCCESS)
            ok = false;
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

/* The guard for a Latin keyword found in a derived view: the original may have reached the
 * keyword's letters through other scripts' look-alikes. Ordinary Cyrillic or Greek words
 * (Russian "сор" reads as "cop") must not count, so such a hit counts only when the
 * span mixes Latin with other letters, or when the post as a whole is mostly Latin (a Cyrillic word
 * standing for an English one in English text). Spans that are all Latin (accents, leetspeak)
 * always count. */
static bool match_guard_ok(match_ctx_t *ctx, size_t fstart, size_t fend)
{
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
        if (pat->len > end)
            return 0; /* cannot happen for a database built from this table */
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
    if (ctx->view) {
        /* A derived view: spans are reported in folded coordinates. */
        size_t fs, fe;
        normalized_span_to_source(ctx->view, start, end, &fs, &fe);
        if (pat->guard && !match_guard_ok(ctx, fs, fe))
            return 0;
        if (pat->view == NORM_VIEW_SQUASH && pat->kind == PAT_KEYWORD &&
            !match_span_obfuscated(ctx->folded, fs, fe))
            return 0;
        start = fs;
        end = fe;
    }

    match_scratch_t *scratch = ctx->scratch;
    match_set_t *set = ctx->set;
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
        scratch->all_bits[rule] = 0;
        scratch->any_count[rule] = 0;
        hit = &set->hits[set->count++];
        hit->rule_index = rule;
        hit->nspans = 0;
    }
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
        match_span_add(hit, (uint32_t)start, (uint32_t)end, &set->truncated);
    return 0;
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

static int match_run(match_ctx_t *ctx, const hs_database_t *hs)
{
    hs_error_t rc = hs_scan(hs, ctx->len ? (const char *)ctx->text : "", (unsigned)ctx->len, 0,
                            ctx->scratch->hs, match_on_hit, ctx);
    if (ctx->nomem)
        return TW_ERR_NOMEM;
    return rc == HS_SUCCESS ? 0 : TW_ERR_SCAN;
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

int match_scan(const match_db_t *db, match_scratch_t *scratch, const char *text, size_t len,
               match_set_t *set)
{
    int rc = match_begin(db, scratch, len, set);
    if (rc != 0 || !db->hs[NORM_VIEW_FOLDED])
        return rc;
    match_ctx_t ctx = {.db = db,
                       .scratch = scratch,
                       .set = set,
                       .text = (const unsigned char *)text,
                       .len = len,
                       .folded = (const unsigned char *)text,
                       .folded_len = len,
                       .latin_post = -1};
    rc = match_run(&ctx, db->hs[NORM_VIEW_FOLDED]);
    return match_end(db, scratch, set, rc, NULL, 0, text, len);
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
        rc = match_run(ctx, db->hs[NORM_VIEW_FOLDED]);
    bool need_skel = db->hs[NORM_VIEW_SKELETON] || db->hs[NORM_VIEW_SQUASH];
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
        rc = match_run(ctx, db->hs[NORM_VIEW_SKELETON]);
    }
    if (rc == 0 && db->hs[NORM_VIEW_SQUASH] && folded->len) {
        rc = normalize_squash(&scratch->skeleton, &scratch->squash);
        if (rc == 0) {
            ctx->text = (const unsigned char *)scratch->squash.text;
            ctx->len = scratch->squash.len;
            ctx->view = &scratch->squash;
            rc = match_run(ctx, db->hs[NORM_VIEW_SQUASH]);
        }
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
