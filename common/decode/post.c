#include "decode/post.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "normalize/normalize.h"
#include "util/utf8.h"

static const char *const post_reason_names[] = {
#define POST_REASON_STR(name, str) str,
    POST_REASON_MAP(POST_REASON_STR)
#undef POST_REASON_STR
};

const char *post_reason_name(post_reason_t reason)
{
    return reason < POST_REASON_COUNT ? post_reason_names[reason] : "unknown";
}

void post_init(post_t *post)
{
    memset(post, 0, sizeof(*post));
}

void post_clear(post_t *post)
{
    if (!post->in_arena)
        json_decref((json_t *)post->json);
    post_init(post);
}

/* Jansson's allocator is one per process (json_set_alloc_funcs). It is replaced once by one
 * that serves the calling thread's current arena while post_decode_in parses, and malloc
 * otherwise; its free ignores blocks of that arena (Jansson frees some while parsing: grown
 * buffers, a tree it rejects) and passes every other block to free, so trees parsed outside
 * any arena (other threads, other callers) are untouched by the swap. */
static _Thread_local arena_t *post_current_arena;
static pthread_once_t post_alloc_once = PTHREAD_ONCE_INIT;

static void *post_json_malloc(size_t size)
{
    arena_t *a = post_current_arena;
    return a ? arena_alloc(a, size) : malloc(size);
}

static void post_json_free(void *p)
{
    arena_t *a = post_current_arena;
    if (p && a && arena_owns(a, p))
        return;
    free(p);
}

static void post_install_alloc(void)
{
    json_set_alloc_funcs(post_json_malloc, post_json_free);
}

void post_decode_prepare_arenas(void)
{
    pthread_once(&post_alloc_once, post_install_alloc);
}

static int parse_digits(const char **s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*s)[i]))
            return -1;
        v = v * 10 + ((*s)[i] - '0');
    }
    *s += n;
    *out = v;
    return 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int post_parse_rfc3339(const char *s, int64_t *out)
{
    int year, mon, day, hour, min, sec;
    if (parse_digits(&s, 4, &year) || *s++ != '-' || parse_digits(&s, 2, &mon) || *s++ != '-' ||
        parse_digits(&s, 2, &day))
        return -1;
    if (*s != 'T' && *s != 't' && *s != ' ')
        return -1;
    s++;
    if (parse_digits(&s, 2, &hour) || *s++ != ':' || parse_digits(&s, 2, &min) || *s++ != ':' ||
        parse_digits(&s, 2, &sec))
        return -1;
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
        return -1;
    if (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s))
            return -1;
        while (isdigit((unsigned char)*s))
            s++;
    }
    int offset = 0;
    if (*s == 'Z' || *s == 'z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        int sign = *s++ == '-' ? -1 : 1, oh, om;
        if (parse_digits(&s, 2, &oh) || *s++ != ':' || parse_digits(&s, 2, &om) || oh > 23 ||
            om > 59)
            return -1;
        offset = sign * (oh * 3600 + om * 60);
    } else {
        return -1;
    }
    if (*s)
        return -1;
    *out = days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec - offset;
    return 0;
}

static const char *string_field(json_t *root, const char *name, size_t *len)
{
    if (!name || !*name)
        return NULL;
    json_t *v = json_object_get(root, name);
    if (!json_is_string(v))
        return NULL;
    if (len)
        *len = json_string_length(v);
    return json_string_value(v);
}

const char *post_field_string(const post_t *post, const char *name, size_t *len)
{
    return post->json && json_is_object((json_t *)post->json)
               ? string_field((json_t *)post->json, name, len)
               : NULL;
}

post_reason_t post_decode(const post_fields_t *fields, size_t max_bytes, const char *data,
                          size_t len, post_t *post, char *errstr, size_t errlen)
{
    return post_decode_in(NULL, fields, max_bytes, data, len, post, errstr, errlen);
}

post_reason_t post_decode_in(arena_t *arena, const post_fields_t *fields, size_t max_bytes,
                             const char *data, size_t len, post_t *post, char *errstr,
                             size_t errlen)
{
    post_clear(post);
    errstr[0] = '\0';
    if (len > max_bytes) {
        snprintf(errstr, errlen, "post is %zu bytes, limit is %zu", len, max_bytes);
        return POST_TOO_LARGE;
    }
    /* Jansson would also refuse bad UTF-8, but as a generic parse error; checking first gives
     * operators the precise reason in the dead-letter header. */
    if (!utf8_is_valid(data, len)) {
        snprintf(errstr, errlen, "post is not valid UTF-8");
        return POST_INVALID_UTF8;
    }
    /* RFC 8259 lets a parser ignore a byte order mark, and some producers write one before
     * every document: one leading BOM is skipped rather than dead-lettering their stream. */
    if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0) {
        data += 3;
        len -= 3;
    }
    /* Duplicate keys are refused: two parsers that pick different copies of "text" would let a
     * post show reviewers one text while the rules scanned another. */
    json_error_t jerr;
    if (arena)
        post_decode_prepare_arenas();
    post_current_arena = arena;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    post_current_arena = NULL;
    if (!root) {
        snprintf(errstr, errlen, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        return POST_INVALID_JSON;
    }
    post->json = root;
    post->in_arena = arena != NULL;
    if (!json_is_object(root)) {
        snprintf(errstr, errlen, "post is a JSON %s, not an object",
                 json_is_array(root) ? "array" : "scalar");
        return POST_NOT_OBJECT;
    }
    json_t *id = json_object_get(root, fields->id);
    if (json_is_string(id) && json_string_length(id) > 0) {
        post->id = json_string_value(id);
        post->id_len = json_string_length(id);
    } else if (json_is_integer(id)) {
        int n = snprintf(post->id_buf, sizeof(post->id_buf), "%" JSON_INTEGER_FORMAT,
                         json_integer_value(id));
        post->id = post->id_buf;
        post->id_len = (size_t)n;
    } else {
        snprintf(errstr, errlen, "field '%s' must be a non-empty string or an integer", fields->id);
        return POST_MISSING_ID;
    }
    json_t *text = json_object_get(root, fields->text);
    if (!json_is_string(text)) {
        snprintf(errstr, errlen, "field '%s' %s", fields->text,
                 text ? "is not a string" : "is missing");
        return POST_MISSING_TEXT;
    }
    post->text = json_string_value(text);
    post->text_len = json_string_length(text);
    post->author = string_field(root, fields->author, &post->author_len);
    post->lang = string_field(root, fields->lang, NULL);
    post->url = string_field(root, fields->url, NULL);

    json_t *ts = fields->ts && *fields->ts ? json_object_get(root, fields->ts) : NULL;
    if (json_is_integer(ts)) {
        post->ts = json_integer_value(ts);
        post->has_ts = true;
    } else if (json_is_real(ts) && isfinite(json_real_value(ts)) &&
               fabs(json_real_value(ts)) < 1e15) {
        post->ts = (int64_t)json_real_value(ts);
        post->has_ts = true;
    } else if (json_is_string(ts)) {
        post->has_ts = post_parse_rfc3339(json_string_value(ts), &post->ts) == 0;
    }
    return POST_OK;
}
