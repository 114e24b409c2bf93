#include "encode/alert.h"

#include <string.h>

#include "decode/post.h"
#include "dedup/dedup.h"
#include "match/match.h"
#include "normalize/normalize.h"
#include "rules/rules.h"

/* Moves a byte offset back to the start of the UTF-8 sequence it falls in. */
static size_t utf8_floor(const char *s, size_t i)
{
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
        i--;
    return i;
}

static void append_snippet(buf_t *out, const post_t *post, size_t start, size_t end)
{
    size_t from = start > ALERT_SNIPPET_CONTEXT ? start - ALERT_SNIPPET_CONTEXT : 0;
    size_t to =
        end + ALERT_SNIPPET_CONTEXT < post->text_len ? end + ALERT_SNIPPET_CONTEXT : post->text_len;
    from = utf8_floor(post->text, from);
    to = to < post->text_len ? utf8_floor(post->text, to) : post->text_len;
    buf_append_json_string(out, post->text + from, to - from);
}

/* "count":N,"authors":N,"first_seen":T,"last_seen":T: shared by per-post duplicate
 * objects and campaign records so the two never disagree on field names. */
static void append_cluster_counts(buf_t *out, const dedup_result_t *dup)
{
    buf_append_str(out, "\"count\":");
    buf_append_u64(out, dup->count);
    buf_append_str(out, ",\"authors\":");
    buf_append_u64(out, dup->authors);
    buf_append_str(out, ",\"first_seen\":");
    buf_append_i64(out, dup->first_seen);
    buf_append_str(out, ",\"last_seen\":");
    buf_append_i64(out, dup->last_seen);
}

static void append_duplicate(buf_t *out, const dedup_result_t *dup)
{
    if (!dup) {
        buf_append_str(out, "null");
        return;
    }
    if (!dup->available) {
        buf_append_str(out, "{\"unavailable\":true}");
        return;
    }
    if (dup->count < 2) {
        buf_append_str(out, "null");
        return;
    }
    char hex[17];
    dedup_cluster_hex(dup->cluster, hex);
    buf_append_str(out, "{\"cluster\":\"");
    buf_append_str(out, hex);
    buf_append_str(out, "\",");
    append_cluster_counts(out, dup);
    buf_append_str(out, dup->replay ? ",\"replay\":true}" : "}");
}

static void append_source(buf_t *out, const alert_source_t *source);

void alert_encode_campaign(buf_t *out, const post_t *post, const dedup_result_t *dup,
                           uint64_t milestone, const rule_set_t *rules,
                           const alert_source_t *source)
{
    char hex[17];
    dedup_cluster_hex(dup->cluster, hex);
    buf_append_str(out, "{\"campaign\":{\"cluster\":\"");
    buf_append_str(out, hex);
    buf_append_str(out, "\",\"milestone\":");
    buf_append_u64(out, milestone);
    buf_append_char(out, ',');
    append_cluster_counts(out, dup);
    buf_append_str(out, ",\"sample_post_ids\":[");
    for (size_t i = 0; i < dup->nsamples; i++) {
        if (i)
            buf_append_char(out, ',');
        buf_append_json_string(out, dup->samples[i], dup->sample_lens[i]);
    }
    buf_append_str(out, "]},\"post_id\":");
    buf_append_json_string(out, post->id, post->id_len);
    buf_append_str(out, dup->replay ? ",\"replay\":true" : "");
    buf_append_str(out, ",\"rules_version\":\"");
    buf_append_str(out, rules->version);
    buf_append_str(out, "\",\"source\":");
    append_source(out, source);
    buf_append_char(out, '}');
}

static void encode_alert(buf_t *out, const post_t *post, const normalized_t *norm,
                         const match_set_t *matches, const rule_set_t *rules,
                         const dedup_result_t *dup, const alert_source_t *source, bool shadow)
{
    buf_append_str(out, shadow ? "{\"shadow\":true,\"post_id\":" : "{\"post_id\":");
    buf_append_json_string(out, post->id, post->id_len);
    buf_append_str(out, ",\"ts\":");
    if (post->has_ts)
        buf_append_i64(out, post->ts);
    else
        buf_append_str(out, "null");
    buf_append_str(out, ",\"author\":");
    if (post->author)
        buf_append_json_string(out, post->author, post->author_len);
    else
        buf_append_str(out, "null");
    buf_append_str(out, ",\"matches\":[");
    for (size_t i = 0; matches && i < matches->count; i++) {
        const match_rule_hit_t *hit = &matches->hits[i];
        const rule_t *rule = &rules->rules[hit->rule_index];
        if (i)
            buf_append_char(out, ',');
        buf_append_str(out, "{\"rule\":");
        buf_append_json_string(out, rule->id, strlen(rule->id));
        buf_append_str(out, ",\"category\":");
        buf_append_json_string(out, rule->category, strlen(rule->category));
        buf_append_str(out, ",\"severity\":\"");
        buf_append_str(out, rule_severity_name(rule->severity));
        buf_append_str(out, "\",\"spans\":[");
        size_t first_start = 0, first_end = 0;
        for (uint32_t s = 0; s < hit->nspans; s++) {
            size_t src_start, src_end;
            normalized_span_to_source(norm, hit->spans[s].start, hit->spans[s].end, &src_start,
                                      &src_end);
            if (s == 0) {
                first_start = src_start;
                first_end = src_end;
            }
            buf_append_str(out, s ? ",[" : "[");
            buf_append_u64(out, src_start);
            buf_append_char(out, ',');
            buf_append_u64(out, src_end);
            buf_append_char(out, ']');
        }
        buf_append_str(out, "],\"snippet\":");
        append_snippet(out, post, first_start, first_end);
        if (hit->host) { /* domains_file: the listed name the link fell under */
            buf_append_str(out, ",\"host\":");
            buf_append_json_string(out, hit->host, strlen(hit->host));
        }
        buf_append_char(out, '}');
    }
    buf_append_str(out, "],\"truncated\":");
    buf_append_str(out, matches && matches->truncated ? "true" : "false");
    buf_append_str(out, ",\"duplicate\":");
    append_duplicate(out, dup);
    buf_append_str(out, ",\"rules_version\":\"");
    buf_append_str(out, rules->version);
    buf_append_str(out, "\",\"source\":");
    append_source(out, source);
    buf_append_char(out, '}');
}

void alert_encode(buf_t *out, const post_t *post, const normalized_t *norm,
                  const match_set_t *matches, const rule_set_t *rules, const dedup_result_t *dup,
                  const alert_source_t *source)
{
    encode_alert(out, post, norm, matches, rules, dup, source, false);
}

static void encode_capped(buf_t *out, size_t max_bytes, const post_t *post,
                          const normalized_t *norm, const match_set_t *matches,
                          const rule_set_t *rules, const dedup_result_t *dup,
                          const alert_source_t *source, bool shadow)
{
    size_t start = out->len;
    encode_alert(out, post, norm, matches, rules, dup, source, shadow);
    /* Without matches there is nothing to drop: the alert stays as it is, not "truncated"
     * (fuzz_alert found an over-cap alert of a post without matches marked truncated). */
    if (!max_bytes || !matches || matches->count == 0 || out->len - start <= max_bytes)
        return;
    /* Too large: keep fewer matches, halving until it fits (a few re-encodes, once in a
     * while), then win back what fits one match at a time. */
    match_set_t kept = *matches;
    kept.truncated = true;
    size_t fits = 0, lo_fail = matches->count;
    for (size_t k = matches->count / 2;; k /= 2) {
        out->len = start;
        kept.count = k;
        encode_alert(out, post, norm, &kept, rules, dup, source, shadow);
        if (out->len - start <= max_bytes) {
            fits = k;
            break;
        }
        lo_fail = k;
        if (k == 0)
            break;
    }
    if (out->len - start > max_bytes)
        return; /* even without matches: the post's own fields are too large */
    for (size_t k = fits + 1; k < lo_fail; k++) {
        out->len = start;
        kept.count = k;
        encode_alert(out, post, norm, &kept, rules, dup, source, shadow);
        if (out->len - start > max_bytes)
            break;
        fits = k;
    }
    out->len = start;
    kept.count = fits;
    encode_alert(out, post, norm, &kept, rules, dup, source, shadow);
}

void alert_encode_capped(buf_t *out, size_t max_bytes, const post_t *post, const normalized_t *norm,
                         const match_set_t *matches, const rule_set_t *rules,
                         const dedup_result_t *dup, const alert_source_t *source)
{
    encode_capped(out, max_bytes, post, norm, matches, rules, dup, source, false);
}

void alert_encode_shadow(buf_t *out, size_t max_bytes, const post_t *post, const normalized_t *norm,
                         const match_set_t *matches, const rule_set_t *rules,
                         const dedup_result_t *dup, const alert_source_t *source)
{
    encode_capped(out, max_bytes, post, norm, matches, rules, dup, source, true);
}

static void append_source(buf_t *out, const alert_source_t *source)
{
    if (source->topic) {
        buf_append_str(out, "{\"topic\":");
        buf_append_json_string(out, source->topic, strlen(source->topic));
        buf_append_str(out, ",\"partition\":");
        buf_append_i64(out, source->partition);
        buf_append_str(out, ",\"offset\":");
        buf_append_i64(out, source->offset);
        buf_append_char(out, '}');
    } else {
        buf_append_str(out, "{\"file\":");
        buf_append_json_string(out, source->file ? source->file : "-",
                               strlen(source->file ? source->file : "-"));
        buf_append_str(out, ",\"line\":");
        buf_append_i64(out, source->line);
        buf_append_char(out, '}');
    }
}
