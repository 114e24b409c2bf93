/* Unit tests of common/encode/alert.c: the alert and campaign documents downstream consumers
 * read (docs/alert.schema.json, docs/campaign.schema.json, the example in README.md). Every
 * document is parsed back with Jansson, which also refuses invalid UTF-8, so a snippet cut
 * inside a character or an unescaped control byte fails here.
 *
 * With TW_ENCODED_DIR set, every encoded alert is appended to $TW_ENCODED_DIR/alerts.jsonl and
 * every campaign record to campaigns.jsonl: tests/unit/alert_schema.py validates those files
 * against the JSON Schemas in docs/ (ctest unit.alert_schema). */
#include <jansson.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode/post.h"
#include "dedup/dedup.h"
#include "encode/alert.h"
#include "match/match.h"
#include "normalize/normalize.h"
#include "rules/rules.h"
#include "tw_test.h"

static const char rules_yaml[] = "rules:\n"
                                 "  - id: scam.giveaway\n"
                                 "    category: scam\n"
                                 "    severity: high\n"
                                 "    keywords: [\"free giveaway\"]\n"
                                 "  - id: spam.visit\n"
                                 "    category: spam\n"
                                 "    severity: low\n"
                                 "    keywords: [\"visit\"]\n";

static const post_fields_t fields = {"id", "text", "author", "ts", "lang", "url"};

/* Everything one alert is made of, built from a post's JSON as the pipeline would. */
typedef struct {
    rule_set_t *rules;
    post_t post;
    normalized_t norm;
    match_rule_hit_t hits[4];
    match_set_t matches;
    buf_t out;
    json_t *doc; /* the encoded alert parsed back */
} fixture_t;

static void save_record(const char *file, const buf_t *b)
{
    const char *dir = getenv("TW_ENCODED_DIR");
    if (!dir || !*dir)
        return;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    FILE *f = fopen(path, "a");
    if (!f)
        return;
    fwrite(b->data, 1, b->len, f);
    fputc('\n', f);
    fclose(f);
}

static int fixture_open(fixture_t *fx, const char *post_json)
{
    memset(fx, 0, sizeof(*fx));
    post_init(&fx->post);
    normalized_init(&fx->norm);
    buf_init(&fx->out);
    match_set_init(&fx->matches);
    tw_diag_t diag;
    tw_diag_init(&diag);
    int rc = rule_set_load_buffer("alert.yaml", rules_yaml, strlen(rules_yaml), &fx->rules, &diag);
    for (size_t i = 0; i < diag.count; i++)
        fprintf(stderr, "  %s\n", diag.lines[i]);
    tw_diag_fini(&diag);
    if (rc != 0)
        return rc;
    char err[256];
    if (post_decode(&fields, 65536, post_json, strlen(post_json), &fx->post, err, sizeof(err)) !=
        POST_OK) {
        fprintf(stderr, "  post_decode: %s\n", err);
        return -1;
    }
    return normalize_text(fx->post.text, fx->post.text_len, &fx->norm);
}

/* Adds a hit of rule_index on the first occurrence of needle in the normalized text (hits
 * must be added in rule order, as the matcher reports them). */
static int fixture_hit(fixture_t *fx, uint32_t rule_index, const char *needle)
{
    const char *at = strstr(fx->norm.text, needle);
    if (!at || fx->matches.count >= sizeof(fx->hits) / sizeof(fx->hits[0]))
        return -1;
    match_rule_hit_t *h = &fx->hits[fx->matches.count++];
    h->rule_index = rule_index;
    h->nspans = 1;
    h->spans[0].start = (uint32_t)(at - fx->norm.text);
    h->spans[0].end = (uint32_t)(at - fx->norm.text + strlen(needle));
    fx->matches.hits = fx->hits;
    return 0;
}

static json_t *fixture_encode(fixture_t *fx, const dedup_result_t *dup,
                              const alert_source_t *source)
{
    buf_reset(&fx->out);
    alert_encode(&fx->out, &fx->post, &fx->norm, &fx->matches, fx->rules, dup, source);
    if (fx->out.failed)
        return NULL;
    save_record("alerts.jsonl", &fx->out);
    json_decref(fx->doc);
    json_error_t error;
    fx->doc = json_loadb(fx->out.data, fx->out.len, 0, &error);
    if (!fx->doc)
        fprintf(stderr, "  not JSON (%s): %s\n", error.text, fx->out.data);
    return fx->doc;
}

static void fixture_close(fixture_t *fx)
{
    json_decref(fx->doc);
    buf_fini(&fx->out);
    normalized_fini(&fx->norm);
    post_clear(&fx->post);
    fx->matches.hits = NULL; /* the hits are the fixture's array, not the set's */
    match_set_fini(&fx->matches);
    rule_set_free(fx->rules);
}

static bool matches_pattern(const char *s, const char *pattern)
{
    regex_t re;
    if (!s || regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
        return false;
    bool ok = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

static const char *str_at(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static long long int_at(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -999999;
}

/* The original bytes a span [start, end) of an alert points at. */
static char *span_text(const post_t *post, const json_t *span)
{
    json_int_t s = json_integer_value(json_array_get(span, 0));
    json_int_t e = json_integer_value(json_array_get(span, 1));
    if (json_array_size(span) != 2 || s < 0 || e < s || (size_t)e > post->text_len)
        return NULL;
    return strndup(post->text + s, (size_t)(e - s));
}

TW_TEST(alert_with_matches_and_a_duplicate_has_every_promised_field)
{
    fixture_t fx;
    TW_ASSERT_INT_EQ(fixture_open(&fx, "{\"id\":\"p-1\",\"text\":\"Win a FREE   Giveaway now! "
                                       "Visit x.example\",\"author\":\"u1\",\"ts\":1732780800}"),
                     0);
    TW_ASSERT_INT_EQ(fixture_hit(&fx, 0, "free giveaway"), 0);
    TW_ASSERT_INT_EQ(fixture_hit(&fx, 1, "visit"), 0);
    dedup_result_t dup = {.cluster = 0x9f3a0c2e7d1b4a55ULL,
                          .count = 17,
                          .authors = 12,
                          .first_seen = 1732780000,
                          .last_seen = 1732780790,
                          .available = true};
    alert_source_t source = {.topic = "posts", .partition = 3, .offset = 991};
    json_t *doc = fixture_encode(&fx, &dup, &source);
    TW_ASSERT(doc != NULL);

    /* exactly the documented top-level fields */
    static const char *const keys[] = {
        "post_id", "ts", "author", "matches", "truncated", "rules_version", "source", "duplicate"};
    TW_ASSERT_INT_EQ(json_object_size(doc), sizeof(keys) / sizeof(keys[0]));
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        TW_ASSERT(json_object_get(doc, keys[i]) != NULL);
    TW_ASSERT_STR_EQ(str_at(doc, "post_id"), "p-1");
    TW_ASSERT_INT_EQ(int_at(doc, "ts"), 1732780800);
    TW_ASSERT_STR_EQ(str_at(doc, "author"), "u1");
    TW_ASSERT(json_is_false(json_object_get(doc, "truncated")));
    TW_ASSERT(matches_pattern(str_at(doc, "rules_version"), "^sha256:[0-9a-f]{64}$"));
    TW_ASSERT_STR_EQ(str_at(doc, "rules_version"), fx.rules->version);

    json_t *matches = json_object_get(doc, "matches");
    TW_ASSERT_INT_EQ(json_array_size(matches), 2);
    json_t *m0 = json_array_get(matches, 0), *m1 = json_array_get(matches, 1);
    TW_ASSERT_INT_EQ(json_object_size(m0), 5);
    TW_ASSERT_STR_EQ(str_at(m0, "rule"), "scam.giveaway");
    TW_ASSERT_STR_EQ(str_at(m0, "category"), "scam");
    TW_ASSERT_STR_EQ(str_at(m0, "severity"), "high");
    TW_ASSERT_STR_EQ(str_at(m1, "rule"), "spam.visit");
    TW_ASSERT_STR_EQ(str_at(m1, "severity"), "low");
    /* spans are byte offsets into the original text, whitespace run and capitals included */
    json_t *spans = json_object_get(m0, "spans");
    TW_ASSERT_INT_EQ(json_array_size(spans), 1);
    char *hit = span_text(&fx.post, json_array_get(spans, 0));
    TW_ASSERT_STR_EQ(hit, "FREE   Giveaway");
    free(hit);
    hit = span_text(&fx.post, json_array_get(json_object_get(m1, "spans"), 0));
    TW_ASSERT_STR_EQ(hit, "Visit");
    free(hit);
    /* a short post: the snippet is the whole text */
    TW_ASSERT_STR_EQ(str_at(m0, "snippet"), "Win a FREE   Giveaway now! Visit x.example");

    json_t *d = json_object_get(doc, "duplicate");
    TW_ASSERT(json_is_object(d));
    TW_ASSERT_STR_EQ(str_at(d, "cluster"), "9f3a0c2e7d1b4a55");
    TW_ASSERT_INT_EQ(int_at(d, "count"), 17);
    TW_ASSERT_INT_EQ(int_at(d, "authors"), 12);
    TW_ASSERT_INT_EQ(int_at(d, "first_seen"), 1732780000);
    TW_ASSERT_INT_EQ(int_at(d, "last_seen"), 1732780790);
    TW_ASSERT(json_object_get(d, "replay") == NULL); /* only a replay says so */

    json_t *src = json_object_get(doc, "source");
    TW_ASSERT_INT_EQ(json_object_size(src), 3);
    TW_ASSERT_STR_EQ(str_at(src, "topic"), "posts");
    TW_ASSERT_INT_EQ(int_at(src, "partition"), 3);
    TW_ASSERT_INT_EQ(int_at(src, "offset"), 991);
    fixture_close(&fx);
}

TW_TEST(duplicate_is_null_unavailable_or_a_replay)
{
    fixture_t fx;
    TW_ASSERT_INT_EQ(fixture_open(&fx, "{\"id\":7,\"text\":\"free giveaway\"}"), 0);
    TW_ASSERT_INT_EQ(fixture_hit(&fx, 0, "free giveaway"), 0);
    alert_source_t file = {.file = "-", .line = 42};

    json_t *doc = fixture_encode(&fx, NULL, &file);
    TW_ASSERT(doc != NULL);
    TW_ASSERT(json_is_null(json_object_get(doc, "duplicate")));
    TW_ASSERT_STR_EQ(str_at(doc, "post_id"), "7"); /* numeric ids become strings */
    TW_ASSERT(json_is_null(json_object_get(doc, "ts")));
    TW_ASSERT(json_is_null(json_object_get(doc, "author")));
    json_t *src = json_object_get(doc, "source");
    TW_ASSERT_INT_EQ(json_object_size(src), 2);
    TW_ASSERT_STR_EQ(str_at(src, "file"), "-");
    TW_ASSERT_INT_EQ(int_at(src, "line"), 42);

    dedup_result_t alone = {.cluster = 1, .count = 1, .authors = 1, .available = true};
    doc = fixture_encode(&fx, &alone, &file);
    TW_ASSERT(doc != NULL);
    TW_ASSERT(json_is_null(json_object_get(doc, "duplicate"))); /* no earlier near-duplicate */

    dedup_result_t down = {.count = 5, .available = false};
    doc = fixture_encode(&fx, &down, &file);
    TW_ASSERT(doc != NULL);
    json_t *d = json_object_get(doc, "duplicate");
    TW_ASSERT_INT_EQ(json_object_size(d), 1);
    TW_ASSERT(json_is_true(json_object_get(d, "unavailable")));

    dedup_result_t replay = {.cluster = 0xab,
                             .count = 2,
                             .authors = 0,
                             .first_seen = 5,
                             .last_seen = 6,
                             .available = true,
                             .replay = true};
    doc = fixture_encode(&fx, &replay, &file);
    TW_ASSERT(doc != NULL);
    d = json_object_get(doc, "duplicate");
    TW_ASSERT_STR_EQ(str_at(d, "cluster"), "00000000000000ab"); /* always 16 hex digits */
    TW_ASSERT(json_is_true(json_object_get(d, "replay")));
    fixture_close(&fx);
}

TW_TEST(truncated_match_sets_say_so)
{
    fixture_t fx;
    TW_ASSERT_INT_EQ(fixture_open(&fx, "{\"id\":\"t\",\"text\":\"free giveaway\"}"), 0);
    TW_ASSERT_INT_EQ(fixture_hit(&fx, 0, "free giveaway"), 0);
    fx.matches.truncated = true;
    alert_source_t file = {.file = "posts.jsonl", .line = 1};
    json_t *doc = fixture_encode(&fx, NULL, &file);
    TW_ASSERT(doc != NULL);
    TW_ASSERT(json_is_true(json_object_get(doc, "truncated")));
    fixture_close(&fx);
}

/* An alert over its cap (thousands of rules matching one post) would be refused by the
 * brokers: matches are dropped from the end until it fits, and it says so. */
TW_TEST(alert_over_its_cap_keeps_the_first_matches_and_says_so)
{
    fixture_t fx;
    TW_ASSERT_INT_EQ(fixture_open(&fx, "{\"id\":\"c\",\"text\":\"free giveaway, visit\"}"), 0);
    TW_ASSERT_INT_EQ(fixture_hit(&fx, 0, "free giveaway"), 0);
    TW_ASSERT_INT_EQ(fixture_hit(&fx, 1, "visit"), 0);
    alert_source_t file = {.file = "posts.jsonl", .line = 1};
    TW_ASSERT(fixture_encode(&fx, NULL, &file) != NULL);
    size_t whole = fx.out.len;
    TW_ASSERT_INT_EQ(json_array_size(json_object_get(fx.doc, "matches")), 2);

    buf_reset(&fx.out);
    buf_append_str(&fx.out, "prefix"); /* appended after what the buffer holds */
    alert_encode_capped(&fx.out, whole - 1, &fx.post, &fx.norm, &fx.matches, fx.rules, NULL, &file);
    TW_ASSERT(fx.out.len - 6 <= whole - 1);
    TW_ASSERT_MEM_EQ(fx.out.data, 6, "prefix", 6);
    json_error_t error;
    json_t *doc = json_loadb(fx.out.data + 6, fx.out.len - 6, 0, &error);
    TW_ASSERT(doc != NULL);
    json_t *matches = json_object_get(doc, "matches");
    size_t kept = json_array_size(matches);
    const char *first = json_string_value(json_object_get(json_array_get(matches, 0), "rule"));
    char rule[64];
    snprintf(rule, sizeof(rule), "%s", first ? first : "");
    bool truncated = json_is_true(json_object_get(doc, "truncated"));
    json_decref(doc);
    TW_ASSERT_INT_EQ(kept, 1);
    TW_ASSERT_STR_EQ(rule, "scam.giveaway");
    TW_ASSERT(truncated);
    TW_ASSERT(!fx.matches.truncated); /* the caller's match set is left alone */

    /* no cap, or one the whole alert fits: unchanged */
    buf_reset(&fx.out);
    alert_encode_capped(&fx.out, whole, &fx.post, &fx.norm, &fx.matches, fx.rules, NULL, &file);
    TW_ASSERT_INT_EQ(fx.out.len, whole);
    fixture_close(&fx);
}

TW_TEST(spans_of_fullwidth_text_point_at_the_original_bytes)
{
    fixture_t fx;
    /* "ＦＲＥＥ ＧＩＶＥＡＷＡＹ!" normalizes to "free giveaway!" */
    TW_ASSERT_INT_EQ(fixture_open(&fx,
                                  "{\"id\":\"fw\",\"text\":\"\xef\xbc\xa6\xef\xbc\xb2\xef\xbc"
                                  "\xa5\xef\xbc\xa5 \xef\xbc\xa7\xef\xbc\xa9\xef\xbc\xb6\xef"
                                  "\xbc\xa5\xef\xbc\xa1\xef\xbc\xb7\xef\xbc\xa1\xef\xbc\xb9!\"}"),
                     0);
    TW_ASSERT_STR_EQ(fx.norm.text, "free giveaway!");
    TW_ASSERT_INT_EQ(fixture_hit(&fx, 0, "free giveaway"), 0);
    alert_source_t file = {.file = "-", .line = 1};
    json_t *doc = fixture_encode(&fx, NULL, &file);
    TW_ASSERT(doc != NULL);
    json_t *m0 = json_array_get(json_object_get(doc, "matches"), 0);
    json_t *span = json_array_get(json_object_get(m0, "spans"), 0);
    TW_ASSERT_INT_EQ(json_integer_value(json_array_get(span, 0)), 0);
    TW_ASSERT_INT_EQ(json_integer_value(json_array_get(span, 1)), 12 * 3 + 1); /* 12 letters */
    TW_ASSERT_STR_EQ(str_at(m0, "snippet"), fx.post.text);
    fixture_close(&fx);
}

TW_TEST(snippets_are_cut_on_character_boundaries)
{
    /* 30 x "é" (2 bytes), " free giveaway x", 30 x "€" (3 bytes). The match is bytes
     * [61, 74); 40 bytes of context would start at 21, inside an "é", and end at 114, inside
     * a "€": both ends move back to the start of their character. */
    char text[512] = "";
    for (int i = 0; i < 30; i++)
        strcat(text, "\xc3\xa9");
    strcat(text, " free giveaway x");
    for (int i = 0; i < 30; i++)
        strcat(text, "\xe2\x82\xac");
    char json[600];
    snprintf(json, sizeof(json), "{\"id\":\"u8\",\"text\":\"%s\"}", text);
    fixture_t fx;
    TW_ASSERT_INT_EQ(fixture_open(&fx, json), 0);
    TW_ASSERT_INT_EQ(fixture_hit(&fx, 0, "free giveaway"), 0);
    alert_source_t file = {.file = "-", .line = 1};
    json_t *doc = fixture_encode(&fx, NULL, &file); /* Jansson refuses a cut character */
    TW_ASSERT(doc != NULL);
    json_t *m0 = json_array_get(json_object_get(doc, "matches"), 0);
    char *hit = span_text(&fx.post, json_array_get(json_object_get(m0, "spans"), 0));
    TW_ASSERT_STR_EQ(hit, "free giveaway");
    free(hit);
    const char *snippet = str_at(m0, "snippet");
    TW_ASSERT(snippet != NULL);
    TW_ASSERT_MEM_EQ(snippet, strlen(snippet), text + 20, (size_t)(112 - 20));
    TW_ASSERT(strlen(snippet) <= 13 + 2 * ALERT_SNIPPET_CONTEXT);
    fixture_close(&fx);
}

TW_TEST(odd_text_is_escaped_and_round_trips)
{
    /* quotes, a backslash, newline, tab, U+0001, DEL, U+2028, an emoji, in the text, the id
     * and the author */
    const char *json = "{\"id\":\"q\\\"1\\\\\",\"author\":\"a\\u0001b\\n\",\"text\":"
                       "\"say \\\"free giveaway\\\" \\\\ \\n\\t\\u0001\\u007f \\u2028 "
                       "\\ud83d\\ude00\"}";
    fixture_t fx;
    TW_ASSERT_INT_EQ(fixture_open(&fx, json), 0);
    TW_ASSERT_INT_EQ(fixture_hit(&fx, 0, "free giveaway"), 0);
    alert_source_t source = {.topic = "posts \"odd\"", .partition = 0, .offset = 0};
    json_t *doc = fixture_encode(&fx, NULL, &source);
    TW_ASSERT(doc != NULL);
    for (size_t i = 0; i < fx.out.len; i++) /* no raw control byte reaches the JSON text */
        TW_ASSERT((unsigned char)fx.out.data[i] >= 0x20 && (unsigned char)fx.out.data[i] != 0x7f);
    TW_ASSERT_STR_EQ(str_at(doc, "post_id"), "q\"1\\");
    TW_ASSERT_STR_EQ(str_at(doc, "author"), "a\x01"
                                            "b\n");
    TW_ASSERT_STR_EQ(str_at(json_object_get(doc, "source"), "topic"), "posts \"odd\"");
    json_t *m0 = json_array_get(json_object_get(doc, "matches"), 0);
    TW_ASSERT_STR_EQ(str_at(m0, "snippet"), fx.post.text);       /* decoded back byte for byte */
    TW_ASSERT(strstr(fx.post.text, "\xe2\x80\xa8") != NULL);     /* U+2028 kept */
    TW_ASSERT(strstr(fx.post.text, "\xf0\x9f\x98\x80") != NULL); /* the emoji kept */
    char *hit = span_text(&fx.post, json_array_get(json_object_get(m0, "spans"), 0));
    TW_ASSERT_STR_EQ(hit, "free giveaway");
    free(hit);
    fixture_close(&fx);
}

TW_TEST(campaign_record_has_every_promised_field)
{
    fixture_t fx;
    TW_ASSERT_INT_EQ(fixture_open(&fx, "{\"id\":\"c-9\",\"text\":\"free giveaway\"}"), 0);
    dedup_result_t dup = {.cluster = 0x0123456789abcdefULL,
                          .count = 100,
                          .authors = 40,
                          .first_seen = 10,
                          .last_seen = 20,
                          .available = true,
                          .nsamples = 2,
                          .samples = {"s1", "s\"2"},
                          .sample_lens = {2, 3}};
    alert_source_t source = {.topic = "posts", .partition = 1, .offset = 5};
    alert_encode_campaign(&fx.out, &fx.post, &dup, 100, fx.rules, &source);
    TW_ASSERT(!fx.out.failed);
    save_record("campaigns.jsonl", &fx.out);
    json_error_t error;
    json_t *doc = json_loadb(fx.out.data, fx.out.len, 0, &error);
    TW_ASSERT(doc != NULL);
    TW_ASSERT_STR_EQ(str_at(doc, "post_id"), "c-9");
    TW_ASSERT(json_object_get(doc, "replay") == NULL);
    TW_ASSERT(matches_pattern(str_at(doc, "rules_version"), "^sha256:[0-9a-f]{64}$"));
    TW_ASSERT_INT_EQ(int_at(json_object_get(doc, "source"), "offset"), 5);
    json_t *c = json_object_get(doc, "campaign");
    TW_ASSERT_STR_EQ(str_at(c, "cluster"), "0123456789abcdef");
    TW_ASSERT_INT_EQ(int_at(c, "milestone"), 100);
    TW_ASSERT_INT_EQ(int_at(c, "count"), 100);
    TW_ASSERT_INT_EQ(int_at(c, "authors"), 40);
    TW_ASSERT_INT_EQ(int_at(c, "first_seen"), 10);
    TW_ASSERT_INT_EQ(int_at(c, "last_seen"), 20);
    json_t *samples = json_object_get(c, "sample_post_ids");
    TW_ASSERT_INT_EQ(json_array_size(samples), 2);
    TW_ASSERT_STR_EQ(json_string_value(json_array_get(samples, 1)), "s\"2");
    json_decref(doc);
    fixture_close(&fx);
}

int main(void)
{
    TW_RUN(TW_CASE(alert_with_matches_and_a_duplicate_has_every_promised_field),
           TW_CASE(duplicate_is_null_unavailable_or_a_replay), TW_CASE(truncated_match_sets_say_so),
           TW_CASE(alert_over_its_cap_keeps_the_first_matches_and_says_so),
           TW_CASE(spans_of_fullwidth_text_point_at_the_original_bytes),
           TW_CASE(snippets_are_cut_on_character_boundaries),
           TW_CASE(odd_text_is_escaped_and_round_trips),
           TW_CASE(campaign_record_has_every_promised_field));
}
