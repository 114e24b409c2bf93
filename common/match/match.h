/* Matching: one Hyperscan database for every pattern of a rule set, one scan per text.
 *
 * The compiled database is read-only and shared by all threads; each thread owns a
 * match_scratch_t. Keyword hits are kept only at Unicode word boundaries (checked in the
 * match callback). Results are grouped per rule, sorted by rule index, with spans as byte
 * offsets into the scanned (normalized) text. */
#ifndef TW_MATCH_H
#define TW_MATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "normalize/normalize.h"
#include "rules/rules.h"

#define MATCH_MAX_SPANS_PER_RULE 8
#define MATCH_MAX_RULES_PER_POST 256
#define MATCH_MAX_FIELDS         30  /* distinct non-text fields rules of one set may target */
#define MATCH_MAX_UNICODE_HOSTS  256 /* non-ASCII dotted names canonicalized per text */

typedef struct match_db match_db_t;
typedef struct match_scratch match_scratch_t;

typedef struct {
    uint32_t start; /* byte offsets into the scanned text, [start, end) */
    uint32_t end;
} match_span_t;

typedef struct {
    uint32_t rule_index;
    uint32_t nspans;
    match_span_t spans[MATCH_MAX_SPANS_PER_RULE]; /* first spans found, in text order */
    /* For a domains_file hit: the listed name the first matching host fell under (owned by
     * the rule set's domain list, valid as long as the database); NULL otherwise. */
    const char *host;
} match_rule_hit_t;

typedef struct match_set {
    match_rule_hit_t *hits; /* sorted by rule_index, one entry per matching rule */
    size_t count;
    size_t cap;
    bool truncated; /* more rules or spans matched than the caps keep */
} match_set_t;

void match_set_init(match_set_t *set);
void match_set_fini(match_set_t *set);

/* Compiles every pattern of rs into one database. Each pattern that does not compile is
 * reported in diag as "file:line: rule <id>: pattern '<re>': <reason>"; returns
 * TW_ERR_COMPILE if any failed (no database), 0 and *out otherwise. rs must outlive *out.
 * Every regex is first compiled on its own (on up to 8 threads) so that all bad ones are
 * found without one multi-pattern build per failure; flags per pattern kind are explained at
 * the top of match_compile.c. Slow for big regex sets (a minute for 1,850 SpamAssassin regexes on
 * two cores): call it off the scanning threads. */
int match_db_compile(const rule_set_t *rs, match_db_t **out, tw_diag_t *diag);
/* match_db_compile with an on-disk cache: when cache_dir (NULL or "" = no cache) holds a
 * database built from the same rules and keywords bytes by this build of tidewatch, for this
 * Hyperscan version and CPU, it is loaded instead of compiled (hs_deserialize_database);
 * otherwise the set is compiled and the result stored there (failures to store are
 * silent: the cache is an optimisation). match_db_from_cache() says which happened. */
int match_db_compile_cached(const rule_set_t *rs, const char *cache_dir, match_db_t **out,
                            tw_diag_t *diag);
bool match_db_from_cache(const match_db_t *db);
/* Writes the default cache directory, $XDG_CACHE_HOME/tidewatch or /tmp/tidewatch-cache-<uid>,
 * to buf. Returns 0 or TW_ERR_TOO_LARGE. */
int match_cache_dir_default(char *buf, size_t size);
/* Runs every rule's `examples:` through normalize + match_scan_post: each `match` text must
 * make its rule hit and each `no_match` text must not. Every failure goes to diag as
 * "file:line: rule <id>: example '<text>' should ...". Returns 0 (see *failed) or
 * TW_ERR_NOMEM. Allocates; not for the hot path. */
int match_db_check_examples(const match_db_t *db, tw_diag_t *diag, size_t *passed, size_t *failed);
/* Compiled expressions scanning the given view (a keyword can be compiled in several). */
size_t match_db_view_patterns(const match_db_t *db, normalize_view_t view);
void match_db_free(match_db_t *db);
const rule_set_t *match_db_rules(const match_db_t *db);
size_t match_db_size_bytes(const match_db_t *db);

/* One scratch per thread; returns 0 or TW_ERR_NOMEM. */
int match_scratch_new(const match_db_t *db, match_scratch_t **out);
void match_scratch_free(match_scratch_t *scratch);

/* Scans text[0, len) and replaces the contents of set with the rules that match.
 * Returns 0 or TW_ERR_SCAN (also for len > UINT32_MAX, or a scratch of another db), or
 * TW_ERR_NOMEM when set could not grow; set is then empty.
 * text is meant to be normalize_text() output: valid UTF-8 (on other bytes matches are
 * unspecified, memory safety is not affected) and case folded (keywords are matched
 * case-sensitively). set grows to at most MATCH_MAX_RULES_PER_POST entries and is reused, so
 * a warmed-up set and scratch make a scan allocation-free. */
int match_scan(const match_db_t *db, match_scratch_t *scratch, const char *text, size_t len,
               match_set_t *set);

/* Scans a post: its folded text (normalize_text() output) and the derived views its rules
 * need (normalize.h), built in scratch's reused buffers. Spans are byte offsets into
 * folded->text whatever view found them (map with normalized_span_to_source). Rule logic
 * (all, except, min_matches, langs, the allow list) is applied; lang/lang_len is the post's
 * language (NULL when it has none: rules with `langs:` then do not apply). match_scan() is
 * the folded-only scan of a text without an offset map. Same errors and allocation
 * behaviour as match_scan. */
int match_scan_post(const match_db_t *db, match_scratch_t *scratch, const normalized_t *folded,
                    const char *lang, size_t lang_len, match_set_t *set);

/* A raw (not normalized) field value of a post; text NULL when the post lacks it. */
typedef struct {
    const char *text;
    size_t len;
} match_field_t;

/* The fields other than the text that rules of db target (`fields:`), by name: a caller
 * passes their values, in this order, to match_scan_post_fields. */
size_t match_db_field_count(const match_db_t *db);
const char *match_db_field_name(const match_db_t *db, size_t i);

/* match_scan_post, plus fields[0, nfields) (indexed like match_db_field_name): each is
 * normalized and scanned for the rules that target it. A rule hit only through another field
 * than the text has no spans. */
int match_scan_post_fields(const match_db_t *db, match_scratch_t *scratch,
                           const normalized_t *folded, const char *lang, size_t lang_len,
                           const match_field_t *fields, size_t nfields, match_set_t *set);

#endif
