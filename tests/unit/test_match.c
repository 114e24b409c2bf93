/* Unit tests for common/match.c: whole-word keywords, exact byte spans, regex flags, every bad
 * pattern reported with file:line, result caps, and the real public pattern sets when present. */
#include "match/match.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "normalize/normalize.h"
#include "rules/rules.h"
#include "tw_test.h"

#ifndef TW_FIXTURES_DIR
#error "compile with -DTW_FIXTURES_DIR=\"<repo>/tests/fixtures\""
#endif
#define RULES_DIR TW_FIXTURES_DIR "/rules"

/* A loaded and compiled rule set with one scratch and one result set. */
typedef struct {
    rule_set_t *rs;
    match_db_t *db;
    match_scratch_t *scratch;
    match_set_t set;
} fixture_t;

static void fixture_fini(fixture_t *fx)
{
    match_set_fini(&fx->set);
    match_scratch_free(fx->scratch);
    match_db_free(fx->db);
    rule_set_free(fx->rs);
    memset(fx, 0, sizeof(*fx));
}

static void diag_print(const tw_diag_t *diag)
{
    for (size_t i = 0; i < diag->count; i++)
        fprintf(stderr, "    diag: %s\n", diag->lines[i]);
}

/* Loads and compiles a rules file given as text; 0 or the first error. */
static int fixture_init(fixture_t *fx, const char *yaml)
{
    memset(fx, 0, sizeof(*fx));
    match_set_init(&fx->set);
    tw_diag_t diag;
    tw_diag_init(&diag);
    int rc = rule_set_load_buffer("inline.yaml", yaml, strlen(yaml), &fx->rs, &diag);
    if (rc == 0)
        rc = match_db_compile(fx->rs, &fx->db, &diag);
    if (rc == 0)
        rc = match_scratch_new(fx->db, &fx->scratch);
    if (rc != 0)
        diag_print(&diag);
    tw_diag_fini(&diag);
    return rc;
}

static int fixture_scan(fixture_t *fx, const char *text)
{
    return match_scan(fx->db, fx->scratch, text, strlen(text), &fx->set);
}

/* The hit for rule index rule, or NULL. */
static const match_rule_hit_t *hit_of(const match_set_t *set, uint32_t rule)
{
    for (size_t i = 0; i < set->count; i++)
        if (set->hits[i].rule_index == rule)
            return &set->hits[i];
    return NULL;
}

static bool diag_has(const tw_diag_t *diag, const char *needle)
{
    for (size_t i = 0; i < diag->count; i++)
        if (strstr(diag->lines[i], needle))
            return true;
    return false;
}

TW_TEST(test_keyword_whole_word)
{
    fixture_t fx;
    TW_ASSERT_INT_EQ(fixture_init(&fx, "rules:\n"
                                       "  - {id: scam.giveaway, category: scam,"
                                       " keywords: [free giveaway]}\n"
                                       "  - {id: spam.free, category: spam, keywords: [free]}\n"),
                     0);
    static const struct {
        const char *text;
        int giveaway; /* expected start of rule 0's span, -1 for no hit */
        int free;     /* same for rule 1 */
    } cases[] = {
        {"free giveaway today", 0, 0},
        {"freegiveaway", -1, -1},
        {"carefree", -1, -1},
        {"xfree", -1, -1},
        {"\xc3\xa9 free", -1, 3},    /* "é free": a letter, then a space */
        {"\xc3\xa9\x66ree", -1, -1}, /* "éfree": é is a letter */
        {"free_", -1, -1},           /* '_' is a word character */
        {"free!", -1, 0},
        {"(free)", -1, 1},
        {"free\xcc\x81", -1, -1},    /* a combining mark continues the word */
        {"\xd9\xa3\x66ree", -1, -1}, /* ARABIC-INDIC DIGIT THREE */
        {"1free", -1, -1},
        {"a free giveaway.", 2, 2},
        {"so free\xe2\x80\xa6", -1, 3}, /* followed by HORIZONTAL ELLIPSIS */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TW_ASSERT_INT_EQ(fixture_scan(&fx, cases[i].text), 0);
        const match_rule_hit_t *g = hit_of(&fx.set, 0), *f = hit_of(&fx.set, 1);
        if ((cases[i].giveaway < 0) != (g == NULL) || (cases[i].free < 0) != (f == NULL))
            fprintf(stderr, "  case %zu '%s': giveaway %s, free %s\n", i, cases[i].text,
                    g ? "hit" : "no hit", f ? "hit" : "no hit");
        TW_ASSERT((cases[i].giveaway < 0) == (g == NULL));
        TW_ASSERT((cases[i].free < 0) == (f == NULL));
        if (g) {
            TW_ASSERT_INT_EQ(g->nspans, 1);
            TW_ASSERT_INT_EQ(g->spans[0].start, cases[i].giveaway);
            TW_ASSERT_INT_EQ(g->spans[0].end, cases[i].giveaway + 13);
        }
        if (f) {
            TW_ASSERT_INT_EQ(f->nspans, 1);
            TW_ASSERT_INT_EQ(f->spans[0].start, cases[i].free);
            TW_ASSERT_INT_EQ(f->spans[0].end, cases[i].free + 4);
        }
        TW_ASSERT(!fx.set.truncated);
    }
    fixture_fini(&fx);
}

TW_TEST(test_keyword_nonword_edges)
{
    fixture_t fx;
    TW_ASSERT_INT_EQ(fixture_init(&fx, "rules:\n"
                                       "  - {id: a, category: spam, keywords: [\"$$$\"]}\n"
                                       "  - {id: b, category: spam, keywords: [\"free!\"]}\n"
                                       "  - {id: c, category: spam, keywords: [\"@admin\"]}\n"),
                     0);
    /* "$$$" has no word character at either edge: it matches anywhere. */
    TW_ASSERT_INT_EQ(fixture_scan(&fx, "win$$$now"), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[0].rule_index, 0);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].start, 3);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].end, 6);
    /* "free!" needs a boundary before 'f' only. */
    TW_ASSERT_INT_EQ(fixture_scan(&fx, "free!!x"), 0);
    TW_ASSERT(hit_of(&fx.set, 1) != NULL);
    TW_ASSERT_INT_EQ(fixture_scan(&fx, "free!x"), 0);
    TW_ASSERT(hit_of(&fx.set, 1) != NULL);
    TW_ASSERT_INT_EQ(fixture_scan(&fx, "carefree!"), 0);
    TW_ASSERT(hit_of(&fx.set, 1) == NULL);
    /* "@admin" needs a boundary after 'n' only. */
    TW_ASSERT_INT_EQ(fixture_scan(&fx, "hi x@admin."), 0);
    TW_ASSERT(hit_of(&fx.set, 2) != NULL);
    TW_ASSERT_INT_EQ(fixture_scan(&fx, "hi @administrator"), 0);
    TW_ASSERT(hit_of(&fx.set, 2) == NULL);
    fixture_fini(&fx);
}

TW_TEST(test_keyword_spans_exact)
{
    fixture_t fx;
    TW_ASSERT_INT_EQ(fixture_init(&fx, "rules:\n"
                                       "  - {id: a, category: scam, keywords: [free giveaway,"
                                       " \"cr\u00e8me\"]}\n"),
                     0);
    /* "ééé " is 7 bytes; spans are byte offsets, in text order. */
    const char *text = "\xc3\xa9\xc3\xa9\xc3\xa9 free giveaway and free giveaway! cr\xc3\xa8me";
    TW_ASSERT_INT_EQ(fixture_scan(&fx, text), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 1);
    const match_rule_hit_t *h = &fx.set.hits[0];
    TW_ASSERT_INT_EQ(h->nspans, 3);
    TW_ASSERT_INT_EQ(h->spans[0].start, 7);
    TW_ASSERT_INT_EQ(h->spans[0].end, 20);
    TW_ASSERT_INT_EQ(h->spans[1].start, 25);
    TW_ASSERT_INT_EQ(h->spans[1].end, 38);
    TW_ASSERT_INT_EQ(h->spans[2].start, 40);
    TW_ASSERT_INT_EQ(h->spans[2].end, 46);
    TW_ASSERT_MEM_EQ(text + 40, 6, "cr\xc3\xa8me", 6);
    fixture_fini(&fx);
}

TW_TEST(test_regex_design_example)
{
    fixture_t fx;
    TW_ASSERT_INT_EQ(fixture_init(&fx, "rules:\n"
                                       "  - id: scam.giveaway\n"
                                       "    category: scam\n"
                                       "    regex: ['send\\s+\\d+\\s*(btc|eth)\\b']\n"),
                     0);
    /* CASELESS: the raw text matches as well as the normalized one. */
    TW_ASSERT_INT_EQ(fixture_scan(&fx, "please SEND 5 BTC now"), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[0].nspans, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].start, 7);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].end, 17);

    normalized_t norm;
    normalized_init(&norm);
    const char *post = "Please  SEND 5 BTC now";
    TW_ASSERT_INT_EQ(normalize_text(post, strlen(post), &norm), 0);
    TW_ASSERT_INT_EQ(match_scan(fx.db, fx.scratch, norm.text, norm.len, &fx.set), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].start, 7);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].end, 17);
    /* and back to the original bytes, "SEND 5 BTC" after the double space */
    size_t s = 0, e = 0;
    normalized_span_to_source(&norm, 7, 17, &s, &e);
    TW_ASSERT_INT_EQ(s, 8);
    TW_ASSERT_INT_EQ(e, 18);
    normalized_fini(&norm);

    TW_ASSERT_INT_EQ(fixture_scan(&fx, "send 5 btcx"), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 0);
    TW_ASSERT_INT_EQ(fixture_scan(&fx, "send 12eth"), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].end, 10);
    fixture_fini(&fx);
}

TW_TEST(test_regex_unicode)
{
    fixture_t fx;
    /* Non-ASCII regexes are compiled in UTF-8 + Unicode mode: classes see characters. */
    TW_ASSERT_INT_EQ(fixture_init(&fx, "rules:\n"
                                       "  - {id: ru, category: spam, regex: ['\u043a\u0443\u043f"
                                       "\u0438\u0442\u044c\\s+\\w+']}\n"
                                       "  - {id: mix, category: phishing, regex: ['[\u0430a]pple"
                                       "\\s+id']}\n"
                                       "  - {id: any, category: spam, regex: ['x.y']}\n"),
                     0);
    /* "купить", 12 bytes */
    const char *buy = "\xd0\xba\xd1\x83\xd0\xbf\xd0\xb8\xd1\x82\xd1\x8c";
    char text[128];
    /* \w is Unicode here: "купить дёшево" matches as a whole, 12 + 1 + 12 bytes */
    snprintf(text, sizeof(text), "%s \xd0\xb4\xd1\x91\xd1\x88\xd0\xb5\xd0\xb2\xd0\xbe!", buy);
    TW_ASSERT_INT_EQ(fixture_scan(&fx, text), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[0].rule_index, 0);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].start, 0);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].end, 25);
    snprintf(text, sizeof(text), "%s \xe2\x80\xa6", buy); /* "купить …": no word after */
    TW_ASSERT_INT_EQ(fixture_scan(&fx, text), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 0);
    /* Cyrillic "а" in a class is one character, not two bytes. */
    TW_ASSERT_INT_EQ(fixture_scan(&fx, "your \xd0\xb0pple id"), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[0].rule_index, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].start, 5);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].end, 14);
    /* ASCII regexes are byte-oriented, but spans never split a character: "x.y" cannot match
     * "x\xc3\xa9y" ("xéy", '.' would need two bytes), and a match is widened to whole ones. */
    TW_ASSERT_INT_EQ(fixture_scan(&fx, "x\xc3\xa9y"), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 0);
    TW_ASSERT_INT_EQ(fixture_scan(&fx, "-x-y-"), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].start, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].end, 4);
    fixture_fini(&fx);

    TW_ASSERT_INT_EQ(fixture_init(&fx, "rules:\n"
                                       "  - {id: a, category: spam, regex: ['\\x80y']}\n"),
                     0);
    /* byte 0x80 is the last byte of "耀" (e8 80 80): the span grows to the whole character */
    TW_ASSERT_INT_EQ(fixture_scan(&fx, "a\xe8\x80\x80y"), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].start, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].end, 5);
    fixture_fini(&fx);
}

TW_TEST(test_unspaced_scripts)
{
    fixture_t fx;
    /* Chinese and Thai are written without spaces: whole-word checks would never let these
     * match inside a sentence, so characters of such scripts do not count as word characters. */
    TW_ASSERT_INT_EQ(fixture_init(&fx, "rules:\n"
                                       "  - {id: zh, category: profanity, keywords: [\"\u64cd\u4f60"
                                       "\"]}\n"
                                       "  - {id: en, category: spam, keywords: [spam]}\n"),
                     0);
    TW_ASSERT_INT_EQ(fixture_scan(&fx, "\xe6\x88\x91\xe6\x93\x8d\xe4\xbd\xa0\xe5\x95\x8a"), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[0].rule_index, 0);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].start, 3);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].end, 9);
    /* a Latin keyword right next to Han characters */
    TW_ASSERT_INT_EQ(fixture_scan(&fx, "\xe4\xb9\xb0spam\xe5\x90\x97"), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[0].rule_index, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].start, 3);
    /* but not next to Hangul, which uses spaces between words */
    TW_ASSERT_INT_EQ(fixture_scan(&fx, "\xea\xb0\x80spam"), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 0);
    fixture_fini(&fx);
}

TW_TEST(test_bad_regexes_all_reported)
{
    tw_diag_t diag;
    tw_diag_init(&diag);
    rule_set_t *rs = NULL;
    TW_ASSERT_INT_EQ(rule_set_load(RULES_DIR "/bad_regex.yaml", &rs, &diag), 0);
    match_db_t *db = (match_db_t *)1;
    TW_ASSERT_INT_EQ(match_db_compile(rs, &db, &diag), TW_ERR_COMPILE);
    TW_ASSERT(db == NULL);
    if (diag.count != 3)
        diag_print(&diag);
    TW_ASSERT_INT_EQ(diag.count, 3);
    const char *f = RULES_DIR "/bad_regex.yaml";
    char want[512];
    snprintf(want, sizeof(want), "%s:6: rule spam.pills: pattern '(?<=cheap )pills': ", f);
    TW_ASSERT(strncmp(diag.lines[0], want, strlen(want)) == 0);
    snprintf(want, sizeof(want), "%s:10: rule spam.repeat: pattern '(buy)\\s+\\1': ", f);
    TW_ASSERT(strncmp(diag.lines[1], want, strlen(want)) == 0);
    snprintf(want, sizeof(want), "%s:14: rule scam.prize: pattern 'win (big': ", f);
    TW_ASSERT(strncmp(diag.lines[2], want, strlen(want)) == 0);
    /* Hyperscan's own words follow */
    TW_ASSERT(strstr(diag.lines[2], "Missing close parenthesis") != NULL);
    tw_diag_fini(&diag);
    rule_set_free(rs);
}

TW_TEST(test_regex_unicode_word_boundary)
{
    /* Hyperscan has no \b in Unicode mode, and an ASCII-only \b next to a Cyrillic letter
     * would silently never match: that is an error with a hint, not a quiet fallback. */
    tw_diag_t diag;
    tw_diag_init(&diag);
    rule_set_t *rs = NULL;
    const char *yaml = "rules:\n"
                       "  - {id: ru, category: spam, regex: ['\\b\u043a\u0443\u043f\u0438"
                       "\u0442\u044c\\b', '\u043a\u0443\\B']}\n";
    TW_ASSERT_INT_EQ(rule_set_load_buffer("u.yaml", yaml, strlen(yaml), &rs, &diag), 0);
    match_db_t *db = NULL;
    TW_ASSERT_INT_EQ(match_db_compile(rs, &db, &diag), TW_ERR_COMPILE);
    TW_ASSERT_INT_EQ(diag.count, 2);
    TW_ASSERT(diag_has(&diag, "u.yaml:2: rule ru: pattern '\\b\xd0\xba"));
    TW_ASSERT(diag_has(&diag, "u.yaml:2: rule ru: pattern '\xd0\xba\xd1\x83\\B'"));
    TW_ASSERT(diag_has(&diag, "never matches"));
    TW_ASSERT(diag_has(&diag, "use a keyword for a whole word"));
    tw_diag_fini(&diag);
    rule_set_free(rs);

    /* \b between ASCII characters of a non-ASCII regex is fine (UTF-8 mode without UCP). */
    fixture_t fx;
    TW_ASSERT_INT_EQ(fixture_init(&fx, "rules:\n"
                                       "  - {id: won, category: scam,"
                                       " regex: ['\\bi[\u2019\\x27]ve\\s+won\\b']}\n"),
                     0);
    TW_ASSERT_INT_EQ(fixture_scan(&fx, "so i\xe2\x80\x99ve won!"), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].start, 3);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].end, 13);
    TW_ASSERT_INT_EQ(fixture_scan(&fx, "i've wonder"), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 0);
    fixture_fini(&fx);
}

TW_TEST(test_regex_empty_match_rejected)
{
    tw_diag_t diag;
    tw_diag_init(&diag);
    rule_set_t *rs = NULL;
    const char *yaml = "rules:\n"
                       "  - id: a\n"
                       "    category: spam\n"
                       "    regex: ['x*', '(spam)?', 'ok']\n";
    TW_ASSERT_INT_EQ(rule_set_load_buffer("e.yaml", yaml, strlen(yaml), &rs, &diag), 0);
    match_db_t *db = NULL;
    TW_ASSERT_INT_EQ(match_db_compile(rs, &db, &diag), TW_ERR_COMPILE);
    TW_ASSERT_INT_EQ(diag.count, 2);
    TW_ASSERT(diag_has(&diag, "e.yaml:4: rule a: pattern 'x*': can match an empty string"));
    TW_ASSERT(diag_has(&diag, "e.yaml:4: rule a: pattern '(spam)?': can match an empty string"));
    tw_diag_fini(&diag);
    rule_set_free(rs);
}

TW_TEST(test_regex_som_fallback)
{
    fixture_t fx;
    /* Hyperscan can match this but not track its start ("Pattern is too large" with SOM). It
     * must compile, and report its hit as [end, end). */
    TW_ASSERT_INT_EQ(fixture_init(&fx, "rules:\n"
                                       "  - {id: blob, category: malware,"
                                       " regex: ['[a-z\\d\\x2f\\x2b\\x3d]{100,300}']}\n"
                                       "  - {id: kw, category: spam, keywords: [payload]}\n"),
                     0);
    char text[256];
    memcpy(text, "payload ", 8);
    memset(text + 8, 'q', 150);
    text[158] = '\0';
    TW_ASSERT_INT_EQ(fixture_scan(&fx, text), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 2);
    TW_ASSERT_INT_EQ(fx.set.hits[0].rule_index, 0);
    TW_ASSERT_INT_EQ(fx.set.hits[0].nspans, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].start, 108);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].end, 108);
    TW_ASSERT_INT_EQ(fx.set.hits[1].spans[0].start, 0);
    TW_ASSERT_INT_EQ(fx.set.hits[1].spans[0].end, 7);
    fixture_fini(&fx);
}

TW_TEST(test_spans_merged_and_capped)
{
    fixture_t fx;
    TW_ASSERT_INT_EQ(fixture_init(&fx, "rules:\n"
                                       "  - {id: a, category: spam, keywords: [spam, offer],"
                                       " regex: ['spam\\s+\\w+']}\n"
                                       "  - {id: b, category: spam, regex: ['z+']}\n"),
                     0);
    /* keyword spans inside the regex span of the same rule collapse into it */
    TW_ASSERT_INT_EQ(fixture_scan(&fx, "spam offer"), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[0].nspans, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].start, 0);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].end, 10);
    /* SOM reports [0,1) [0,2) [0,3) of one match are one span */
    TW_ASSERT_INT_EQ(fixture_scan(&fx, "zzz"), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[0].rule_index, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[0].nspans, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].end, 3);
    /* partial overlaps stay distinct, in order of start: "spam spam offer" gives regex spans
     * [0,9) "spam spam" and [5,15) "spam offer" */
    TW_ASSERT_INT_EQ(fixture_scan(&fx, "spam spam offer"), 0);
    TW_ASSERT_INT_EQ(fx.set.hits[0].nspans, 2);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].start, 0);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].end, 9);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[1].start, 5);
    TW_ASSERT_INT_EQ(fx.set.hits[0].spans[1].end, 15);
    TW_ASSERT(!fx.set.truncated);
    /* 20 separate hits: the first MATCH_MAX_SPANS_PER_RULE are kept, in text order */
    char text[256] = "";
    for (int i = 0; i < 20; i++)
        strcat(text, "offer, ");
    TW_ASSERT_INT_EQ(fixture_scan(&fx, text), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[0].nspans, MATCH_MAX_SPANS_PER_RULE);
    for (int i = 0; i < MATCH_MAX_SPANS_PER_RULE; i++) {
        TW_ASSERT_INT_EQ(fx.set.hits[0].spans[i].start, 7 * i);
        TW_ASSERT_INT_EQ(fx.set.hits[0].spans[i].end, 7 * i + 5);
    }
    TW_ASSERT(fx.set.truncated);
    /* the next scan starts clean */
    TW_ASSERT_INT_EQ(fixture_scan(&fx, "nothing here"), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 0);
    TW_ASSERT(!fx.set.truncated);
    fixture_fini(&fx);
}

TW_TEST(test_rules_sorted_and_capped)
{
    /* 300 rules, each with one word; a post with all of them in reverse order. */
    size_t n = 300;
    size_t cap = n * 64 + 64;
    char *yaml = malloc(cap);
    char *text = malloc(n * 8);
    TW_ASSERT(yaml && text);
    size_t o = (size_t)snprintf(yaml, cap, "rules:\n");
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(yaml + o, cap - o, "  - {id: r%zu, category: c, keywords: [w%zu]}\n",
                              i, i);
    size_t t = 0;
    for (size_t i = n; i-- > 0;)
        t += (size_t)sprintf(text + t, "w%zu ", i);
    fixture_t fx;
    int rc = fixture_init(&fx, yaml);
    free(yaml);
    TW_ASSERT_INT_EQ(rc, 0);
    rc = fixture_scan(&fx, text);
    free(text);
    TW_ASSERT_INT_EQ(rc, 0);
    TW_ASSERT_INT_EQ(fx.set.count, MATCH_MAX_RULES_PER_POST);
    TW_ASSERT(fx.set.truncated);
    for (size_t i = 1; i < fx.set.count; i++)
        TW_ASSERT(fx.set.hits[i - 1].rule_index < fx.set.hits[i].rule_index);
    /* the first 256 found in the text are the highest-numbered rules */
    TW_ASSERT_INT_EQ(fx.set.hits[0].rule_index, n - MATCH_MAX_RULES_PER_POST);

    /* Warmed up: the next scans reuse the set's buffer. */
    match_rule_hit_t *hits = fx.set.hits;
    TW_ASSERT_INT_EQ(fixture_scan(&fx, "w3 w1 w2"), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 3);
    TW_ASSERT_INT_EQ(fx.set.hits[0].rule_index, 1);
    TW_ASSERT_INT_EQ(fx.set.hits[1].rule_index, 2);
    TW_ASSERT_INT_EQ(fx.set.hits[2].rule_index, 3);
    TW_ASSERT(fx.set.hits == hits);
    TW_ASSERT(!fx.set.truncated);
    fixture_fini(&fx);
}

TW_TEST(test_empty_rule_set)
{
    fixture_t fx;
    TW_ASSERT_INT_EQ(fixture_init(&fx, "rules: []\n"), 0);
    TW_ASSERT_INT_EQ(match_db_size_bytes(fx.db), 0);
    TW_ASSERT(match_db_rules(fx.db) == fx.rs);
    TW_ASSERT_INT_EQ(fixture_scan(&fx, "free giveaway"), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 0);
    TW_ASSERT_INT_EQ(match_scan(fx.db, fx.scratch, "", 0, &fx.set), 0);
    fixture_fini(&fx);
}

TW_TEST(test_fixture_file)
{
    tw_diag_t diag;
    tw_diag_init(&diag);
    fixture_t fx = {0};
    TW_ASSERT_INT_EQ(rule_set_load(RULES_DIR "/basic.yaml", &fx.rs, &diag), 0);
    TW_ASSERT_INT_EQ(match_db_compile(fx.rs, &fx.db, &diag), 0);
    TW_ASSERT(match_db_size_bytes(fx.db) > 0);
    TW_ASSERT_INT_EQ(match_scratch_new(fx.db, &fx.scratch), 0);
    match_set_init(&fx.set);
    normalized_t norm;
    normalized_init(&norm);
    /* the keywords_file entry "WIRE TRANSFER FEE" and the fullwidth, zero-width-split
     * "Ｌｏｇ in to claim" after normalization */
    const char *post = "Pay the wire transfer fee, then L\xef\xbd\x8fg\xe2\x80\x8b in to claim $$$";
    TW_ASSERT_INT_EQ(normalize_text(post, strlen(post), &norm), 0);
    TW_ASSERT_INT_EQ(match_scan(fx.db, fx.scratch, norm.text, norm.len, &fx.set), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 3);
    TW_ASSERT_STR_EQ(fx.rs->rules[fx.set.hits[0].rule_index].id, "scam.giveaway");
    TW_ASSERT_STR_EQ(fx.rs->rules[fx.set.hits[1].rule_index].id, "phishing.account");
    TW_ASSERT_STR_EQ(fx.rs->rules[fx.set.hits[2].rule_index].id, "spam.money");
    const match_span_t *sp = &fx.set.hits[0].spans[0];
    TW_ASSERT_MEM_EQ(norm.text + sp->start, sp->end - sp->start, "wire transfer fee", 17);
    sp = &fx.set.hits[1].spans[0];
    TW_ASSERT_MEM_EQ(norm.text + sp->start, sp->end - sp->start, "log in to claim", 15);
    normalized_fini(&norm);
    tw_diag_fini(&diag);
    fixture_fini(&fx);
}

typedef struct {
    const match_db_t *db;
    int failures;
} thread_arg_t;

static void *scan_thread(void *p)
{
    thread_arg_t *arg = p;
    match_scratch_t *scratch = NULL;
    match_set_t set;
    match_set_init(&set);
    if (match_scratch_new(arg->db, &scratch) != 0) {
        arg->failures++;
        return NULL;
    }
    const char *text = "claim your prize: send 5 btc to double your bitcoin";
    for (int i = 0; i < 2000; i++) {
        if (match_scan(arg->db, scratch, text, strlen(text), &set) != 0 || set.count != 1 ||
            set.hits[0].nspans != 3 || set.hits[0].spans[1].start != 18)
            arg->failures++;
    }
    match_scratch_free(scratch);
    match_set_fini(&set);
    return NULL;
}

TW_TEST(test_threads_share_db)
{
    fixture_t fx;
    TW_ASSERT_INT_EQ(fixture_init(&fx, "rules:\n"
                                       "  - id: scam.giveaway\n"
                                       "    category: scam\n"
                                       "    keywords: [claim your prize, double your bitcoin]\n"
                                       "    regex: ['send\\s+\\d+\\s*(btc|eth)\\b']\n"),
                     0);
    pthread_t th[4];
    thread_arg_t args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg_t){.db = fx.db};
        TW_ASSERT_INT_EQ(pthread_create(&th[i], NULL, scan_thread, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        TW_ASSERT_INT_EQ(args[i].failures, 0);
    }
    fixture_fini(&fx);
}

/* Appends s to a growing buffer as a single-quoted YAML scalar. */
static bool buf_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t ncap = (*cap + n + 1) * 2;
        char *nb = realloc(*buf, ncap);
        if (!nb)
            return false;
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return true;
}

static bool buf_append_quoted(char **buf, size_t *len, size_t *cap, const char *s)
{
    if (!buf_append(buf, len, cap, "'", 1))
        return false;
    for (; *s; s++)
        if (!buf_append(buf, len, cap, s, 1) || (*s == '\'' && !buf_append(buf, len, cap, s, 1)))
            return false;
    return buf_append(buf, len, cap, "'", 1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Scans the first max_posts of posts_mixed.txt after normalization; returns posts with hits. */
static long scan_posts(fixture_t *fx, size_t max_posts)
{
    FILE *f = fopen(tw_shared_data_path("posts/posts_mixed.txt"), "r");
    if (!f)
        return -1;
    normalized_t norm;
    normalized_init(&norm);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long flagged = 0;
    for (size_t i = 0; i < max_posts && (n = getline(&line, &cap, f)) > 0; i++) {
        if (normalize_text(line, (size_t)n, &norm) != 0)
            continue;
        if (match_scan(fx->db, fx->scratch, norm.text, norm.len, &fx->set) != 0)
            return -2;
        flagged += fx->set.count > 0;
    }
    free(line);
    fclose(f);
    normalized_fini(&norm);
    return flagged;
}

/* A real PCRE rule list, one rule per line: Snort's community rules from the shared set, or,
 * on a clone alone, the SpamAssassin sample (tests/fixtures/shared-sample). */
TW_TEST(test_real_snort_regexes)
{
    const char *path = tw_shared_data_path("patterns/regex_snort_community_gpl2_pcre.hs_ok.txt");
    FILE *f = fopen(path, "r");
    bool snort = f != NULL;
    const char *prefix = snort ? "snort" : "sa";
    if (!f) {
        path = tw_shared_data_path("patterns/regex_spamassassin_apache2_pcre.hs_ok.txt");
        f = fopen(path, "r");
    }
    if (!f)
        TW_SKIP("%s absent (the shared data set and its sample)", path);
    /* "id:/regex/flags" -> one rule per line; i, s, m become inline flags. */
    char *yaml = NULL;
    size_t len = 0, cap = 0;
    TW_ASSERT(buf_append(&yaml, &len, &cap, "rules:\n", 7));
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    size_t count = 0;
    while ((n = getline(&line, &lcap, f)) > 0) {
        line[strcspn(line, "\n")] = '\0';
        char *colon = strchr(line, ':');
        char *last = strrchr(line, '/');
        if (!colon || colon[1] != '/' || last <= colon + 1)
            continue;
        *last = '\0';
        char re[70000], head[128];
        const char *flags = last + 1;
        snprintf(re, sizeof(re), "%s%s%s%s", strchr(flags, 's') ? "(?s)" : "",
                 strchr(flags, 'm') ? "(?m)" : "", strchr(flags, 'i') ? "(?i)" : "", colon + 2);
        *colon = '\0';
        snprintf(head, sizeof(head), "  - id: %s.%s\n    category: malware\n    regex: ", prefix,
                 line);
        TW_ASSERT(buf_append(&yaml, &len, &cap, head, strlen(head)));
        TW_ASSERT(buf_append_quoted(&yaml, &len, &cap, re));
        TW_ASSERT(buf_append(&yaml, &len, &cap, "\n", 1));
        count++;
    }
    free(line);
    fclose(f);
    TW_ASSERT(count > (snort ? 500u : 300u));
    double t0 = now_s();
    fixture_t fx;
    int rc = fixture_init(&fx, yaml);
    free(yaml);
    TW_ASSERT_INT_EQ(rc, 0);
    fprintf(stderr, "  %zu snort regexes: compiled in %.1f s, %zu bytes\n", count, now_s() - t0,
            match_db_size_bytes(fx.db));
    TW_ASSERT_INT_EQ(fx.rs->nrules, count);
    long flagged = scan_posts(&fx, 20000);
    fprintf(stderr, "  %s regexes flag %ld posts\n", prefix, flagged);
    /* Both lists hold rules that match ordinary text (measured: the Snort set flags 19,998 of
     * the first 20,000 posts of the full set; SpamAssassin's rule 0 is "."), so nearly every
     * post is flagged; a scan that failed would return -1 or -2 instead. */
    if (snort)
        TW_ASSERT(flagged > 19000 && flagged <= 20000);
    else
        TW_ASSERT_INT_EQ(flagged, 3000);
    if (snort) {
        /* pattern 3 is "^CWD\s+~root" with flags ims */
        TW_ASSERT_INT_EQ(fixture_scan(&fx, "cwd  ~ROOT"), 0);
        TW_ASSERT(fx.set.count >= 1);
        TW_ASSERT_STR_EQ(fx.rs->rules[fx.set.hits[0].rule_index].id, "snort.3");
        TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].start, 0);
        TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].end, 10);
    } else {
        /* pattern 1 is "^(?:Re:|...)?\s*(?:very )?urgent\s+...(?:...|business|...)\b" /i */
        TW_ASSERT_INT_EQ(fixture_scan(&fx, "very urgent business proposal"), 0);
        bool found = false;
        for (size_t h = 0; h < fx.set.count; h++)
            found |= strcmp(fx.rs->rules[fx.set.hits[h].rule_index].id, "sa.1") == 0;
        TW_ASSERT(found);
    }
    fixture_fini(&fx);
}

TW_TEST(test_real_ldnoobw_keywords)
{
    const char *path = tw_shared_data_path("patterns/profanity_ldnoobw.tsv");
    FILE *f = fopen(path, "r");
    if (!f)
        TW_SKIP("%s absent (the shared data set)", path);
    /* The English terms as a keywords file next to a generated rules file. */
    char dir[] = "/tmp/tw_test_match.XXXXXX";
    TW_ASSERT(mkdtemp(dir) != NULL);
    char kwpath[128], rulespath[128];
    snprintf(kwpath, sizeof(kwpath), "%s/en.txt", dir);
    snprintf(rulespath, sizeof(rulespath), "%s/rules.yaml", dir);
    FILE *kw = fopen(kwpath, "w");
    TW_ASSERT(kw != NULL);
    char *line = NULL;
    size_t lcap = 0;
    size_t count = 0;
    while (getline(&line, &lcap, f) > 0) {
        if (strncmp(line, "en\t", 3) == 0 && line[3] != '#') {
            fputs(line + 3, kw);
            count++;
        }
    }
    free(line);
    fclose(f);
    fclose(kw);
    FILE *rules = fopen(rulespath, "w");
    TW_ASSERT(rules != NULL);
    fputs("rules:\n  - id: profanity.en\n    category: profanity\n    severity: low\n"
          "    keywords_file: en.txt\n",
          rules);
    fclose(rules);

    tw_diag_t diag;
    tw_diag_init(&diag);
    fixture_t fx = {0};
    match_set_init(&fx.set);
    int rc = rule_set_load(rulespath, &fx.rs, &diag);
    unlink(kwpath);
    unlink(rulespath);
    rmdir(dir);
    if (rc != 0)
        diag_print(&diag);
    TW_ASSERT_INT_EQ(rc, 0);
    TW_ASSERT(count > 300);
    TW_ASSERT_INT_EQ(fx.rs->npatterns, count);
    TW_ASSERT_INT_EQ(match_db_compile(fx.rs, &fx.db, &diag), 0);
    TW_ASSERT_INT_EQ(match_scratch_new(fx.db, &fx.scratch), 0);
    tw_diag_fini(&diag);
    long flagged = scan_posts(&fx, 20000);
    fprintf(stderr, "  %zu LDNOOBW en keywords: %ld of 20000 posts flagged\n", count, flagged);
    TW_ASSERT(flagged > 0);
    fixture_fini(&fx);
}

int main(void)
{
    TW_RUN(TW_CASE(test_keyword_whole_word), TW_CASE(test_keyword_nonword_edges),
           TW_CASE(test_keyword_spans_exact), TW_CASE(test_regex_design_example),
           TW_CASE(test_regex_unicode), TW_CASE(test_unspaced_scripts),
           TW_CASE(test_bad_regexes_all_reported), TW_CASE(test_regex_unicode_word_boundary),
           TW_CASE(test_regex_empty_match_rejected), TW_CASE(test_regex_som_fallback),
           TW_CASE(test_spans_merged_and_capped), TW_CASE(test_rules_sorted_and_capped),
           TW_CASE(test_empty_rule_set), TW_CASE(test_fixture_file), TW_CASE(test_threads_share_db),
           TW_CASE(test_real_snort_regexes), TW_CASE(test_real_ldnoobw_keywords));
}
