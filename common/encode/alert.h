/* Alert encoding: the JSON document downstream consumers read (schema in
 * docs/alert.schema.json). Written straight into a reusable buffer; no per-field allocation. */
#ifndef TW_ALERT_H
#define TW_ALERT_H

#include <stdint.h>

#include "util/buf.h"

/* The encoder reads the outputs of the stages before it (the decoded post, the normalized
 * text, the matches, the rule set, the duplicate answer) through pointers only: their
 * definitions are needed by alert.c, not by the callers of this header. */
typedef struct post post_t;
typedef struct normalized normalized_t;
typedef struct match_set match_set_t;
typedef struct rule_set rule_set_t;
typedef struct dedup_result dedup_result_t;

#define ALERT_SNIPPET_CONTEXT 40

typedef struct {
    const char *topic; /* Kafka mode; NULL in file mode */
    int32_t partition;
    int64_t offset;
    const char *file; /* file mode: path or "-" */
    int64_t line;
} alert_source_t;

/* Appends one alert object (no newline) for post to out. norm is the text the matches' spans
 * refer to; spans in the alert are mapped back to byte offsets in post->text. dup may be NULL
 * or unavailable (then "duplicate" is null, or {"unavailable": true}). */
void alert_encode(buf_t *out, const post_t *post, const normalized_t *norm,
                  const match_set_t *matches, const rule_set_t *rules, const dedup_result_t *dup,
                  const alert_source_t *source);

/* alert_encode_capped for the hits of shadow (and muted) rules: the same object with
 * "shadow": true first, for the shadow topic. */
void alert_encode_shadow(buf_t *out, size_t max_bytes, const post_t *post, const normalized_t *norm,
                         const match_set_t *matches, const rule_set_t *rules,
                         const dedup_result_t *dup, const alert_source_t *source);

/* alert_encode, keeping the alert within max_bytes (0: no limit) so the producer and the
 * brokers accept it: when the whole alert is larger, matches are dropped from the end (the
 * first ones in rule order are kept) and "truncated" is true. Post id, author and the other
 * fields are always kept, so an alert may still exceed max_bytes when they alone do. */
void alert_encode_capped(buf_t *out, size_t max_bytes, const post_t *post, const normalized_t *norm,
                         const match_set_t *matches, const rule_set_t *rules,
                         const dedup_result_t *dup, const alert_source_t *source);

/* Appends one campaign record (no newline): post claimed campaign milestone for dup's
 * cluster (dedup.h, step 5). Schema: docs/campaign.schema.json. */
void alert_encode_campaign(buf_t *out, const post_t *post, const dedup_result_t *dup,
                           uint64_t milestone, const rule_set_t *rules,
                           const alert_source_t *source);

#endif
