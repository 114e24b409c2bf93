/* A growable byte buffer and the JSON string escaping built on it. Buffers are reused
 * across posts (buf_reset keeps the allocation) so the hot path does not allocate. */
#ifndef TW_BUF_H
#define TW_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *data; /* always NUL-terminated when len > 0 or after any append */
    size_t len;
    size_t cap;
    int failed; /* sticky: an allocation failed; the content is incomplete */
} buf_t;

void buf_init(buf_t *b);
void buf_fini(buf_t *b);
static inline void buf_reset(buf_t *b)
{
    b->len = 0;
    b->failed = 0;
    if (b->data)
        b->data[0] = '\0';
}
void buf_append(buf_t *b, const void *data, size_t len);
void buf_append_str(buf_t *b, const char *s);
void buf_append_char(buf_t *b, char c);
void buf_append_u64(buf_t *b, uint64_t v);
void buf_append_i64(buf_t *b, int64_t v);
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s[0, len) as a quoted JSON string; s must be valid UTF-8. */
void buf_append_json_string(buf_t *b, const char *s, size_t len);

#endif
