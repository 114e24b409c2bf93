/* Rules files: parsing the YAML into a plain rule set that common/match/ compiles.
 *
 * The minimum format (DESIGN.md) is a top-level `rules:` sequence whose items have
 * id, category, severity (low|medium|high|critical), keywords (caseless whole words),
 * keywords_file (one literal per line, relative to the rules file) and regex
 * (Hyperscan/PCRE syntax). Keywords are normalized with normalize_text() at load time so
 * they compare against normalized post text. */
#ifndef TW_RULES_H
#define TW_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* Input caps, so that a hostile or broken rules file is an error and not an exhausted worker. */
#define RULES_MAX_FILE_BYTES           (64u << 20)  /* a rules file, or one keywords file */
#define RULES_MAX_KEYWORDS_TOTAL_BYTES (256u << 20) /* all keywords and domain files of a load */
#define RULES_MAX_PATTERN_BYTES        (64u << 10)  /* one keyword or regex, before and after */
#define RULES_MAX_PATTERNS             2000000u     /* keywords + regexes of one load */
#define RULES_MAX_RULES                1000000u     /* rules of one load */
#define RULES_MAX_DIAGS                1000u        /* lines one load adds to diag */

typedef enum {
    RULE_SEVERITY_LOW,
    RULE_SEVERITY_MEDIUM,
    RULE_SEVERITY_HIGH,
    RULE_SEVERITY_CRITICAL,
} rule_severity_t;

#define RULES_MAX_ALL      32u /* items of one rule's `all:` list */
#define RULES_MAX_LIST     64u /* langs, tags */
#define RULES_MAX_EXAMPLES 64u /* per rule, match + no_match */

/* Where a keyword may match inside words (`mode:`). */
typedef enum {
    RULE_MODE_WORD,      /* whole words (default): Unicode word boundaries on both sides */
    RULE_MODE_PREFIX,    /* the start of a word: "free" hits "freebies" */
    RULE_MODE_SUFFIX,    /* the end of a word: "coin" hits "shitcoin" */
    RULE_MODE_SUBSTRING, /* anywhere */
} rule_mode_t;

/* What a pattern's hit means for its rule. */
typedef enum {
    RULE_GROUP_ANY,   /* keywords, keywords_file, regex: any one (or min_matches of them) */
    RULE_GROUP_ALL,   /* all: every item must hit too */
    RULE_GROUP_NONE,  /* except: any hit vetoes the rule for this post */
    RULE_GROUP_ALLOW, /* top-level allow: hits of any rule inside an allowed phrase are dropped */
} rule_group_t;

/* Views (normalize.h) as bits: 1u << NORM_VIEW_FOLDED ... */
#define RULE_VIEW_FOLDED   1u
#define RULE_VIEW_SKELETON 2u
#define RULE_VIEW_SQUASH   4u

typedef struct {
    char *text;
    int line;
    int should_match; /* 1: must match, 0: must not */
} rule_example_t;

typedef struct {
    char *id;
    char *category;
    rule_severity_t severity;
    char *file; /* rules file that defined it */
    int line;   /* 1-based line of the rule's mapping */
    rule_mode_t mode;
    /* Views keywords and regexes are matched in. 0 = the default: keywords in folded, and in
     * skeleton when the keyword is Latin or Arabic script; regexes in folded only. */
    unsigned keyword_views;
    unsigned regex_views;
    uint32_t min_matches; /* distinct `any` patterns that must hit; 0 or 1 = one */
    uint32_t nall;        /* items in `all:` */
    uint32_t within;      /* proximity: the `all:` items (and an `any` hit, if the rule has
                             any) must start within this many words of each other; 0 = off */
    char **langs;         /* post languages the rule applies to; none = every language */
    size_t nlangs;
    char **tags;
    size_t ntags;
    /* What the rule matches (`fields:`): "text" (the default when empty), "hashtags" (hits in
     * the text that start right after a '#'), or the name of a post field: "author" and
     * "url" are the configured author and URL fields, anything else a top-level JSON string
     * field of the post. */
    char **fields;
    size_t nfields;
    rule_example_t *examples;
    size_t nexamples;
    /* `shadow: true` (or a file-level `shadow: true`): matched and counted, published only to
     * the shadow topic, never as an alert on the output topic. */
    bool shadow;
    /* `flood:` of this rule: its own flood-guard limits instead of the configured ones
     * (`flood: off` = max_share 0, never muted); a max_share below 0 or a min_posts of 0
     * means that key was left out and the configured value applies. */
    bool flood_set;
    double flood_max_share;
    uint32_t flood_min_posts;
} rule_t;

typedef enum {
    RULE_PATTERN_KEYWORD, /* literal, whole word, already normalized */
    RULE_PATTERN_REGEX,   /* Hyperscan/PCRE syntax, matched against normalized text */
    RULE_PATTERN_DOMAINS, /* a host in the text listed in domain_sets[domain_set] (or a child
                             of a listed name); text is the list's path */
} rule_pattern_kind_t;

typedef struct {
    uint32_t rule_index; /* index into rule_set_t.rules (0 and meaningless for ALLOW) */
    rule_pattern_kind_t kind;
    rule_group_t group;
    uint32_t all_index;  /* for RULE_GROUP_ALL: which item of the rule's `all:` list */
    uint32_t domain_set; /* for RULE_PATTERN_DOMAINS: index into rule_set_t.domain_sets */
    char *text;          /* normalized keyword, or regex source */
    char *file;          /* where the pattern was written (rules file or keywords file) */
    int line;
} rule_pattern_t;

typedef struct rule_set {
    rule_t *rules;
    size_t nrules;
    rule_pattern_t *patterns;
    size_t npatterns;
    /* "sha256:<64 hex>" over the rules file and every keywords file it reads, in order */
    char version[72];
    /* Owned path strings that rules[].file and patterns[].file point into (one copy per file,
     * not per rule: a set can hold 50,000 rules and millions of keywords). */
    char **files;
    size_t nfiles;
    /* Domain lists named by `domains_file:` (links/domain_set.h), one per distinct path. */
    struct domain_set **domain_sets;
    size_t ndomain_sets;
} rule_set_t;

/* Loads and validates the rules file at path. Every problem found (YAML syntax, missing or
 * duplicate id, unknown severity, unreadable keywords file, empty keyword, unknown key) is
 * appended to diag as "file:line: message"; parsing continues past errors so all are reported.
 * Returns 0 and a new rule set in *out (free with rule_set_free), or a negative tw_err_t and
 * *out = NULL when any error was found. Regex syntax is checked by match_db_compile(). */
int rule_set_load(const char *path, rule_set_t **out, tw_diag_t *diag);
/* Same as rule_set_load for a rules file already in memory (embedded defaults, fuzzing). name is
 * used in diagnostics and as the base for relative keywords_file paths; data need not be
 * NUL-terminated. */
int rule_set_load_buffer(const char *name, const char *data, size_t len, rule_set_t **out,
                         tw_diag_t *diag);
/* NULL is a no-op. */
void rule_set_free(rule_set_t *rs);

const char *rule_severity_name(rule_severity_t severity);
/* Returns 0 and sets *out, or TW_ERR_INVALID for an unknown name. */
int rule_severity_parse(const char *name, rule_severity_t *out);

#endif
