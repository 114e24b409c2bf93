/* Private to common/match/: the database and scratch layouts and the functions the
 * match_*.c files share. See match_compile.c for how patterns become Hyperscan flags. */
#ifndef TW_MATCH_INTERNAL_H
#define TW_MATCH_INTERNAL_H

#include "match/match.h"

#include <stdbool.h>
#include <stdint.h>

#include <hs/hs.h>

enum {
    PAT_KEYWORD,   /* start = end - len; whole-word checks per bound_left/right */
    PAT_REGEX_SOM, /* start from Hyperscan's leftmost start of match */
    PAT_REGEX_END, /* compiled without SOM: the span is [end, end) */
    PAT_DOMAINS,   /* never compiled: a domains_file pattern, looked up per host */
};

/* Which script check a hit of a derived-view keyword must pass (match_scan.c). */
typedef enum {
    MATCH_GUARD_NONE,
    MATCH_GUARD_LATIN, /* Latin keyword: not ordinary text of another script */
    MATCH_GUARD_MIXED, /* Cyrillic or Greek keyword: only a span mixing scripts */
} match_guard_t;

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
    uint8_t guard;       /* match_guard_t: check the span's scripts (keyword in a derived view) */
    uint8_t all_index;
    uint8_t som_group; /* PAT_REGEX_SOM: its database in db->hs_som[view] */
} match_pat_t;

/* SOM regexes per hs_som database. Measured with perf/fair/scan_only's regexes, with SOM,
 * over the fair posts: 1,000 regexes 10.5 us/post, 63 1.2, 16 0.2. At most 256 groups
 * (match_pat_t.som_group): past that the groups grow. */
#define MATCH_SOM_GROUP      32
#define MATCH_SOM_MAX_GROUPS 256

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
    /* Per view: every pattern, regexes compiled without start of match (SOM) so that the
     * scan most posts get stays cheap (SOM_LEFTMOST doubled the scan's cost on the fair
     * benchmark); NULL for a view no pattern uses. A PAT_REGEX_SOM pattern's hit there only
     * says that its group's database in hs_som (MATCH_SOM_GROUP regexes, with SOM) must be
     * run over the same text for the spans: about 7% of real posts, and those mostly for
     * one group (SOM costs about as much per regex as all the rest of the scan). */
    hs_database_t *hs[NORM_VIEW_COUNT];
    hs_database_t **hs_som[NORM_VIEW_COUNT];
    size_t nsom[NORM_VIEW_COUNT];
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
    /* domains_file patterns: the hosts of a post's text (and targeted fields) are looked up
     * in their lists after the Hyperscan scans. */
    match_pat_t *domains;
    size_t ndomains;
};

/* Frees every Hyperscan database of db and forgets them. */
void match_db_free_hs(match_db_t *db);

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

/* What a regex's text says about the flags it needs (see the top of this file). */
typedef struct {
    bool utf8;              /* non-ASCII text, \x{...} (a syntax error above 0xff in byte mode),
                               or a Unicode property \p / \P */
    bool word_boundary;     /* \b or \B, which Hyperscan does not support in UCP mode */
    bool nonascii_boundary; /* \b or \B right next to a non-ASCII character */
} match_regex_traits_t;

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

/* match_words.c */
bool match_cp_is_word(int32_t cp);
int32_t match_cp_before(const unsigned char *text, size_t pos);
int32_t match_cp_at(const unsigned char *text, size_t pos, size_t len);
bool match_cp_is_latin(int32_t cp);
bool match_cp_is_letter(int32_t cp);
bool match_keyword_derivable(const char *kw, bool *latin);
bool match_cp_is_cyrillic(int32_t cp);
bool match_cp_is_greek(int32_t cp);
bool match_keyword_cyrillic_or_greek(const char *kw);

/* match_regex.c */
match_regex_traits_t match_regex_traits(const char *re);
char *match_keyword_escape(const char *kw);
void match_report(const rule_set_t *rs, size_t pattern, const char *why, tw_diag_t *diag);
void match_check_all(match_entry_t *entries, const size_t *todo, size_t ntodo);

/* match_views.c */
int match_items_add(match_items_t *list, char *expr, unsigned flags, const match_pat_t *pat);
unsigned match_pattern_views(const rule_set_t *rs, const rule_pattern_t *rp, bool derivable);
int match_keyword_collect(const rule_set_t *rs, size_t i, match_items_t lists[], normalized_t *tmp);
size_t match_build_view(const rule_set_t *rs, match_items_t *list, size_t id_base, int som_group,
                        hs_database_t **hs, tw_diag_t *diag, bool *nomem);
int match_rule_info(const rule_set_t *rs, match_db_t *db, tw_diag_t *diag);

/* match_cache.c */
int match_cache_key(const rule_set_t *rs, char hex[65]);
int match_cache_dir_open(const char *dir);
int match_cache_load(int dirfd, const char *name, const rule_set_t *rs, match_db_t *db);
void match_cache_store(int dirfd, const char *name, const rule_set_t *rs, const match_db_t *db);

#endif
