/* domains_file rules: hosts in post text matched by exact name or parent domain, however the
 * link is written (scheme-less, defanged, fullwidth, a Cyrillic look-alike), with spans on
 * the host and the listed name reported; never by substring. */
#include <stdio.h>
#include <string.h>

#include "match/match.h"
#include "normalize/normalize.h"
#include "rules/rules.h"
#include "tw_test.h"

#define LISTS_DIR TW_FIXTURES_DIR "/rules"

typedef struct {
    rule_set_t *rs;
    match_db_t *db;
    match_scratch_t *scratch;
    match_set_t set;
    normalized_t norm;
} fixture_t;

static int fixture_init(fixture_t *fx, const char *yaml, tw_diag_t *diag)
{
    memset(fx, 0, sizeof *fx);
    match_set_init(&fx->set);
    normalized_init(&fx->norm);
    /* the name places relative list paths in tests/fixtures/rules */
    int rc = rule_set_load_buffer(LISTS_DIR "/inline.yaml", yaml, strlen(yaml), &fx->rs, diag);
    if (rc == 0)
        rc = match_db_compile(fx->rs, &fx->db, diag);
    if (rc == 0)
        rc = match_scratch_new(fx->db, &fx->scratch);
    return rc;
}

static void fixture_fini(fixture_t *fx)
{
    normalized_fini(&fx->norm);
    match_set_fini(&fx->set);
    match_scratch_free(fx->scratch);
    match_db_free(fx->db);
    rule_set_free(fx->rs);
}

/* Scans text; returns "rule:host@a-b" of the first hit in original offsets, or "". */
static const char *scan(fixture_t *fx, const char *text, char *out, size_t cap)
{
    out[0] = '\0';
    if (normalize_text(text, strlen(text), &fx->norm) != 0 ||
        match_scan_post(fx->db, fx->scratch, &fx->norm, NULL, 0, &fx->set) != 0)
        return "(error)";
    if (fx->set.count == 0)
        return out;
    const match_rule_hit_t *hit = &fx->set.hits[0];
    size_t a = 0, b = 0;
    if (hit->nspans)
        normalized_span_to_source(&fx->norm, hit->spans[0].start, hit->spans[0].end, &a, &b);
    snprintf(out, cap, "%s:%s@%zu-%zu", fx->rs->rules[hit->rule_index].id,
             hit->host ? hit->host : "-", a, b);
    return out;
}

static const char *rules_yaml = "rules:\n"
                                "  - id: bad.links\n"
                                "    category: phishing\n"
                                "    severity: high\n"
                                "    domains_file: lists/domains_sample.txt\n";

TW_TEST(hosts_match_by_name_or_parent_never_substring)
{
    fixture_t fx;
    tw_diag_t diag;
    tw_diag_init(&diag);
    TW_ASSERT_INT_EQ(fixture_init(&fx, rules_yaml, &diag), 0);
    char got[256];
    TW_ASSERT_STR_EQ(scan(&fx, "go to https://login.evil-bank.example/x now", got, sizeof got),
                     "bad.links:evil-bank.example@14-37");
    TW_ASSERT_STR_EQ(scan(&fx, "EVIL-BANK.example.", got, sizeof got),
                     "bad.links:evil-bank.example@0-17");
    TW_ASSERT_STR_EQ(scan(&fx, "hxxp://evil-bank[.]example", got, sizeof got),
                     "bad.links:evil-bank.example@7-26");
    TW_ASSERT_STR_EQ(
        scan(&fx, "see notevil-bank.example and evil-bank.example.org", got, sizeof got), "");
    TW_ASSERT_STR_EQ(scan(&fx, "pixel at cdn.tracker.example/p.gif", got, sizeof got),
                     "bad.links:tracker.example@9-28");
    TW_ASSERT_STR_EQ(scan(&fx, "ads.example", got, sizeof got), "bad.links:ads.example@0-11");
    /* p + Cyrillic \u0430 + ypal.com: the skeleton key is the listed paypal.com */
    TW_ASSERT_STR_EQ(scan(&fx, "log in at p\xD0\xB0ypal.com today", got, sizeof got),
                     "bad.links:paypal.com@10-21");
    /* fullwidth letters and full stop: NFKC makes them the listed name */
    TW_ASSERT_STR_EQ(scan(&fx,
                          "\xEF\xBD\x90\xEF\xBD\x81\xEF\xBD\x99\xEF\xBD\x90\xEF\xBD\x81"
                          "\xEF\xBD\x8C\xEF\xBC\x8E\xEF\xBD\x83\xEF\xBD\x8F\xEF\xBD\x8D",
                          got, sizeof got),
                     "bad.links:paypal.com@0-30");
    TW_ASSERT_STR_EQ(scan(&fx, "paypal is not a link", got, sizeof got), "");
    /* A text stuffed with Unicode dotted words before the link: past the cap of Unicode hosts
     * canonicalized per text, ASCII hosts are still all looked up. */
    char stuffed[24000];
    size_t used = 0;
    for (int i = 0; i < 1000 && used + 32 < sizeof stuffed; i++)
        used += (size_t)snprintf(stuffed + used, sizeof stuffed - used,
                                 "\xD1\x81\xD0\xBB%d.\xD0\xB2\xD1\x80 ", i);
    snprintf(stuffed + used, sizeof stuffed - used, "evil-bank.example");
    TW_ASSERT(strstr(scan(&fx, stuffed, got, sizeof got), "bad.links:evil-bank.example@") == got);
    fixture_fini(&fx);
    tw_diag_fini(&diag);
}

TW_TEST(domains_combine_with_keywords_and_min_matches)
{
    const char *yaml = "rules:\n"
                       "  - id: bank.lure\n"
                       "    category: phishing\n"
                       "    severity: high\n"
                       "    keywords: [verify your account]\n"
                       "    domains_file: lists/domains_sample.txt\n"
                       "    min_matches: 2\n";
    fixture_t fx;
    tw_diag_t diag;
    tw_diag_init(&diag);
    TW_ASSERT_INT_EQ(fixture_init(&fx, yaml, &diag), 0);
    char got[256];
    TW_ASSERT_STR_EQ(scan(&fx, "verify your account", got, sizeof got), "");
    TW_ASSERT_STR_EQ(scan(&fx, "evil-bank.example", got, sizeof got), "");
    TW_ASSERT(strncmp(scan(&fx, "verify your account at evil-bank.example", got, sizeof got),
                      "bank.lure:evil-bank.example@", 28) == 0);
    fixture_fini(&fx);
    tw_diag_fini(&diag);
}

TW_TEST(bad_lists_are_reported_with_their_lines)
{
    const char *yaml = "rules:\n"
                       "  - id: a\n"
                       "    category: x\n"
                       "    severity: low\n"
                       "    domains_file: lists/no_such_list.txt\n"
                       "  - id: b\n"
                       "    category: x\n"
                       "    severity: low\n"
                       "    domains_file: ../rules/bad_rules.yaml\n";
    fixture_t fx;
    tw_diag_t diag;
    tw_diag_init(&diag);
    TW_ASSERT(fixture_init(&fx, yaml, &diag) != 0);
    bool missing = false, bad_line = false;
    for (size_t i = 0; i < diag.count; i++) {
        missing |= strstr(diag.lines[i], "inline.yaml:5: domains_file '") != NULL &&
                   strstr(diag.lines[i], "No such file") != NULL;
        bad_line |= strstr(diag.lines[i], "bad_rules.yaml:") != NULL &&
                    strstr(diag.lines[i], "not a host name") != NULL;
    }
    for (size_t i = 0; i < diag.count && !(missing && bad_line); i++)
        fprintf(stderr, "    diag: %s\n", diag.lines[i]);
    TW_ASSERT(missing);
    TW_ASSERT(bad_line);
    fixture_fini(&fx);
    tw_diag_fini(&diag);
}

int main(void)
{
    TW_RUN(TW_CASE(hosts_match_by_name_or_parent_never_substring),
           TW_CASE(domains_combine_with_keywords_and_min_matches),
           TW_CASE(bad_lists_are_reported_with_their_lines));
}
