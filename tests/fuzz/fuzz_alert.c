/* libFuzzer target for the alert encoder (common/encode/alert.c): whatever a stranger puts in
 * a post, the alert, shadow alert and campaign record the worker writes for it must be one
 * valid JSON object that names the post, keeps the cap it was given (or says "truncated"),
 * and never reads outside the post or the matches.
 *
 * Input: byte 0 chooses the size cap (0: none, else 64 x the byte), byte 1 the duplicate
 * answer (available, replay, local fallback, a claimed milestone); the rest is one post as
 * it would arrive on the input topic. The post goes through the worker's stages before the
 * encoder: post_decode -> normalize_text -> match_scan_post on a small fixed rule set with
 * keywords, regexes, a language-scoped rule and a domain rule, so the matches and their
 * spans come from the real matcher.
 *
 * Build with -DTW_LIBFUZZER=ON (clang; tests/CMakeLists.txt) and run:
 *   build-fuzz/tests/fuzz_alert -max_len=65536 corpus-copy/ tests/fuzz/corpus/alert
 * Without libFuzzer ctest replays tests/fuzz/corpus/alert (tests/fuzz/fuzz_replay.c). */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "decode/post.h"
#include "dedup/dedup.h"
#include "encode/alert.h"
#include "match/match.h"
#include "normalize/normalize.h"
#include "rules/rules.h"
#include "util/buf.h"
#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fuzz_rules_yaml[] =
    "rules:\n"
    "  - id: scam.giveaway\n"
    "    category: scam\n"
    "    severity: high\n"
    "    keywords: [\"free giveaway\", \"double your bitcoin\", \"a\"]\n"
    "    regex: ['send\\s+\\d+\\s*(btc|eth)\\b', '[0-9]{3,}']\n"
    "  - id: spam.money\n"
    "    category: spam\n"
    "    keywords: [\"$$$\", \"free!\", \"\\\"\", \"\\\\\"]\n"
    "  - id: profanity.es\n"
    "    category: profanity\n"
    "    langs: [es]\n"
    "    keywords: [tonto]\n"
    "  - id: links.bad\n"
    "    category: phishing\n"
    "    domains_file: domains.txt\n";

/* Hosts for links.bad: an ASCII one and the IDNA form of a Cyrillic look-alike. */
static const char fuzz_domains[] = "evil.example\nxn--pypal-4ve.com\n";

static match_db_t *fuzz_db;
static match_scratch_t *fuzz_scratch;

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        abort();
}

/* The rules file and its domain list go to a private temporary directory: domains_file paths
 * resolve against the rules file's directory. The set and the database live for the whole
 * process (the database points into the set). */
static void fuzz_setup(void)
{
    if (fuzz_db)
        return;
    char dir[] = "/tmp/fuzz_alert.XXXXXX";
    if (!mkdtemp(dir))
        abort();
    write_file(dir, "rules.yaml", fuzz_rules_yaml);
    write_file(dir, "domains.txt", fuzz_domains);
    char rules_path[512];
    snprintf(rules_path, sizeof(rules_path), "%s/rules.yaml", dir);
    tw_diag_t diag;
    tw_diag_init(&diag);
    rule_set_t *rs = NULL;
    if (rule_set_load(rules_path, &rs, &diag) != 0 || match_db_compile(rs, &fuzz_db, &diag) != 0 ||
        match_scratch_new(fuzz_db, &fuzz_scratch) != 0) {
        for (size_t i = 0; i < diag.count; i++)
            fprintf(stderr, "fuzz_alert: %s\n", diag.lines[i]);
        abort(); /* the fixed rule set must compile */
    }
    tw_diag_fini(&diag);
    char path[512];
    snprintf(path, sizeof(path), "%s/domains.txt", dir);
    unlink(path);
    unlink(rules_path);
    rmdir(dir);
}

/* The encoder's output must be one JSON object whose "post_id" is the post's id, byte for byte. */
static json_t *parse_object_for(const buf_t *out, const post_t *post)
{
    if (out->failed)
        return NULL; /* out of memory: nothing to check */
    json_error_t error;
    json_t *doc = json_loadb(out->data, out->len, JSON_ALLOW_NUL, &error);
    if (!doc || !json_is_object(doc)) {
        fprintf(stderr, "fuzz_alert: not a JSON object (%s): %.*s\n", error.text,
                (int)(out->len < 400 ? out->len : 400), out->data);
        abort();
    }
    json_t *id = json_object_get(doc, "post_id");
    if (json_is_string(id)) {
        if (json_string_length(id) != post->id_len ||
            memcmp(json_string_value(id), post->id, post->id_len) != 0)
            abort();
    } else if (!json_is_integer(id) && !json_is_real(id)) {
        abort(); /* a numeric id may be written back as a number */
    }
    return doc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    fuzz_setup();
    size_t max_bytes = (size_t)data[0] * 64;
    uint8_t dup_bits = data[1];
    data += 2;
    size -= 2;

    static const post_fields_t fields = {"id", "text", "author", "ts", "lang", "url"};
    post_t post;
    post_init(&post);
    char err[200];
    if (post_decode(&fields, 65536, (const char *)data, size, &post, err, sizeof(err)) != POST_OK) {
        post_clear(&post);
        return 0; /* refusals are fuzz_decode's business */
    }
    normalized_t norm;
    normalized_init(&norm);
    match_set_t matches;
    match_set_init(&matches);
    if (normalize_text(post.text, post.text_len, &norm) != 0)
        goto out;
    const char *lang = post.lang;
    if (match_scan_post(fuzz_db, fuzz_scratch, &norm, lang, lang ? strlen(lang) : 0, &matches) != 0)
        goto out;

    static const char *const sample_ids[] = {"first", "second\"\\", "\xe2\x80\xae"};
    dedup_result_t dup;
    memset(&dup, 0, sizeof(dup));
    dup.available = (dup_bits & 1) != 0;
    dup.replay = (dup_bits & 2) != 0;
    dup.local = (dup_bits & 4) != 0;
    dup.cluster = UINT64_MAX - dup_bits;
    dup.count = (uint64_t)dup_bits << 56;
    dup.authors = dup_bits;
    dup.first_seen = (dup_bits & 8) ? INT64_MIN : 0;
    dup.last_seen = (dup_bits & 16) ? INT64_MAX : post.ts;
    dup.milestones = (dup_bits & 32) ? 1u : 0u;
    dup.nsamples = (dup_bits >> 6) % 4;
    for (size_t i = 0; i < dup.nsamples; i++) {
        dup.samples[i] = sample_ids[i];
        dup.sample_lens[i] = strlen(sample_ids[i]);
    }
    const dedup_result_t *dup_arg = (dup_bits & 128) ? NULL : &dup;
    const alert_source_t source = {"posts\"\n", INT32_MAX, INT64_MAX, NULL, 0};
    const rule_set_t *rules = match_db_rules(fuzz_db);

    buf_t out;
    buf_init(&out);
    alert_encode_capped(&out, max_bytes, &post, &norm, &matches, rules, dup_arg, &source);
    json_t *doc = parse_object_for(&out, &post);
    if (doc) {
        /* Over the cap only when what is always kept (id, author, post fields) is itself that
         * large; then nothing more than that is dropped, but "truncated" says it was tried. */
        bool truncated = json_is_true(json_object_get(doc, "truncated"));
        if (max_bytes && out.len > max_bytes && matches.count > 0 && !truncated)
            abort();
        if (truncated && !matches.truncated && (max_bytes == 0 || matches.count == 0))
            abort(); /* nothing dropped: no cap, no matches, no cap of the matcher's */
        json_t *spans_owner = json_object_get(doc, "matches");
        if (spans_owner && !json_is_array(spans_owner))
            abort();
        json_decref(doc);
    }

    buf_reset(&out);
    alert_encode_shadow(&out, max_bytes, &post, &norm, &matches, rules, dup_arg, &source);
    doc = parse_object_for(&out, &post);
    if (doc) {
        if (!json_is_true(json_object_get(doc, "shadow")))
            abort();
        json_decref(doc);
    }

    if (dup_arg) {
        buf_reset(&out);
        alert_encode_campaign(&out, &post, &dup, 10, rules, &source);
        if (!out.failed) {
            json_error_t error;
            doc = json_loadb(out.data, out.len, JSON_ALLOW_NUL, &error);
            if (!doc || !json_is_object(doc))
                abort();
            json_decref(doc);
        }
    }
    buf_fini(&out);
out:
    match_set_fini(&matches);
    normalized_fini(&norm);
    post_clear(&post);
    return 0;
}
