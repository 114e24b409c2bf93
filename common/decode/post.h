/* Post decoding: one JSON object in, borrowed views of the configured fields out.
 * Anything that cannot be decoded is reported as a reason (dead-letter header value) plus a
 * human message; it is data, not an error, and never stops the worker. */
#ifndef TW_POST_H
#define TW_POST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/arena.h"

#define POST_REASON_MAP(X)                                                                         \
    X(OK, "ok")                                                                                    \
    X(INVALID_JSON, "invalid_json")                                                                \
    X(INVALID_UTF8, "invalid_utf8")                                                                \
    X(NOT_OBJECT, "not_object")                                                                    \
    X(MISSING_ID, "missing_id")                                                                    \
    X(MISSING_TEXT, "missing_text")                                                                \
    X(TOO_LARGE, "too_large")

typedef enum {
#define POST_REASON_ENUM(name, str) POST_##name,
    POST_REASON_MAP(POST_REASON_ENUM)
#undef POST_REASON_ENUM
        POST_REASON_COUNT
} post_reason_t;

typedef struct {
    const char *id;
    const char *text;
    const char *author;
    const char *ts;
    const char *lang;
    const char *url;
} post_fields_t;

/* A decoded post. String views point into the parsed JSON owned by the post; they stay valid
 * until post_clear(). */
typedef struct post {
    const char *id;
    size_t id_len;
    const char *text;
    size_t text_len;
    const char *author; /* NULL when absent */
    size_t author_len;
    const char *lang;
    const char *url;
    int64_t ts;  /* epoch seconds; valid when has_ts */
    bool has_ts; /* false when absent or unparseable (the post is still scanned) */
    char id_buf[24];
    void *json;    /* json_t *, kept opaque so Jansson stays inside post.c */
    bool in_arena; /* json lives in an arena: post_clear forgets it, arena_reset frees it */
} post_t;

void post_init(post_t *post);
/* Releases the parsed JSON; the post can be reused. */
void post_clear(post_t *post);

/* Decodes data[0, len). Returns POST_OK and fills post, or another reason with a message in
 * errstr. Posts longer than max_bytes are refused before parsing. */
post_reason_t post_decode(const post_fields_t *fields, size_t max_bytes, const char *data,
                          size_t len, post_t *post, char *errstr, size_t errlen);

/* post_decode with the parsed JSON allocated in arena (util/arena.h), which the calling
 * thread must own until the call returns: parsing then costs no malloc and post_clear no
 * free. The post's views stay valid until post_clear() or arena_reset(arena), whichever
 * comes first; reset the arena only once every post decoded into it is cleared or
 * abandoned. NULL arena: post_decode. */
/* Installs the allocator post_decode_in needs in Jansson (process-wide). post_decode_in does
 * it on first use; call this first from the thread that starts the others, so the switch
 * never happens while another thread is inside Jansson. */
void post_decode_prepare_arenas(void);

post_reason_t post_decode_in(arena_t *arena, const post_fields_t *fields, size_t max_bytes,
                             const char *data, size_t len, post_t *post, char *errstr,
                             size_t errlen);

const char *post_reason_name(post_reason_t reason);

/* Parses RFC 3339 ("2024-11-28T08:00:00Z", "...+01:00", fractional seconds allowed).
 * Returns 0 and *out epoch seconds, or -1. */
int post_parse_rfc3339(const char *s, int64_t *out);

/* The string value of a top-level field of a decoded post, for rules that target other fields
 * than the text (rules.h `fields:`). Returns NULL when absent or not a string; the value stays
 * valid until post_clear(). */
const char *post_field_string(const post_t *post, const char *name, size_t *len);

#endif
