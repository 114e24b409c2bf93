#include <string.h>

#include "util/buf.h"
#include "decode/post.h"
#include "tw_test.h"

static const post_fields_t fields = {"id", "text", "author", "ts", "lang", "url"};

static post_reason_t decode(const char *json, post_t *post)
{
    char err[200];
    return post_decode(&fields, 1000, json, strlen(json), post, err, sizeof(err));
}

TW_TEST(decodes_the_default_fields)
{
    post_t post;
    post_init(&post);
    TW_ASSERT_INT_EQ(decode("{\"id\":\"p1\",\"text\":\"hi there\",\"author\":\"u1\","
                            "\"ts\":1732780800,\"lang\":\"en\",\"extra\":[1,2]}",
                            &post),
                     POST_OK);
    TW_ASSERT_MEM_EQ(post.id, post.id_len, "p1", 2);
    TW_ASSERT_MEM_EQ(post.text, post.text_len, "hi there", 8);
    TW_ASSERT_MEM_EQ(post.author, post.author_len, "u1", 2);
    TW_ASSERT(post.has_ts);
    TW_ASSERT_INT_EQ(post.ts, 1732780800);
    TW_ASSERT_STR_EQ(post.lang, "en");
    post_clear(&post);
}

TW_TEST(numeric_ids_and_rfc3339_times)
{
    post_t post;
    post_init(&post);
    TW_ASSERT_INT_EQ(
        decode("{\"id\":12345678901,\"text\":\"x\",\"ts\":\"2024-11-28T08:00:00Z\"}", &post),
        POST_OK);
    TW_ASSERT_MEM_EQ(post.id, post.id_len, "12345678901", 11);
    TW_ASSERT_INT_EQ(post.ts, 1732780800);
    TW_ASSERT_INT_EQ(
        decode("{\"id\":1,\"text\":\"x\",\"ts\":\"2024-11-28T09:30:00.250+01:30\"}", &post),
        POST_OK);
    TW_ASSERT_INT_EQ(post.ts, 1732780800);
    /* an unparseable time does not cost the post */
    TW_ASSERT_INT_EQ(decode("{\"id\":1,\"text\":\"x\",\"ts\":\"yesterday\"}", &post), POST_OK);
    TW_ASSERT(!post.has_ts);
    post_clear(&post);
}

TW_TEST(configurable_field_names)
{
    post_fields_t custom = {"post_id", "body", "user", "created", "", ""};
    post_t post;
    post_init(&post);
    char err[200];
    const char *json = "{\"post_id\":\"a\",\"body\":\"text here\",\"user\":\"me\",\"text\":1}";
    TW_ASSERT_INT_EQ(post_decode(&custom, 1000, json, strlen(json), &post, err, sizeof(err)),
                     POST_OK);
    TW_ASSERT_MEM_EQ(post.text, post.text_len, "text here", 9);
    TW_ASSERT_MEM_EQ(post.author, post.author_len, "me", 2);
    post_clear(&post);
}

TW_TEST(bad_input_gets_a_reason)
{
    post_t post;
    post_init(&post);
    TW_ASSERT_INT_EQ(decode("{\"id\":\"p1\",\"text\":\"unterminated", &post), POST_INVALID_JSON);
    TW_ASSERT_INT_EQ(decode("{\"id\":\"p1\",\"text\":\"\xff\xfe\"}", &post), POST_INVALID_UTF8);
    TW_ASSERT_INT_EQ(decode("[1,2,3]", &post), POST_NOT_OBJECT);
    TW_ASSERT_INT_EQ(decode("\"just a string\"", &post), POST_NOT_OBJECT);
    TW_ASSERT_INT_EQ(decode("{\"text\":\"no id\"}", &post), POST_MISSING_ID);
    TW_ASSERT_INT_EQ(decode("{\"id\":\"\",\"text\":\"empty id\"}", &post), POST_MISSING_ID);
    TW_ASSERT_INT_EQ(decode("{\"id\":1.5,\"text\":\"real id\"}", &post), POST_MISSING_ID);
    TW_ASSERT_INT_EQ(decode("{\"id\":\"p1\"}", &post), POST_MISSING_TEXT);
    TW_ASSERT_INT_EQ(decode("{\"id\":\"p1\",\"text\":42}", &post), POST_MISSING_TEXT);
    TW_ASSERT_INT_EQ(decode("{\"id\":\"p1\",\"text\":\"nul \\u0000 inside\"}", &post),
                     POST_INVALID_JSON);
    TW_ASSERT_INT_EQ(decode("", &post), POST_INVALID_JSON);
    char big[1100];
    memset(big, 'a', sizeof(big));
    char err[200];
    TW_ASSERT_INT_EQ(post_decode(&fields, 1000, big, sizeof(big), &post, err, sizeof(err)),
                     POST_TOO_LARGE);
    TW_ASSERT(strstr(err, "1100 bytes") != NULL);
    TW_ASSERT_STR_EQ(post_reason_name(POST_TOO_LARGE), "too_large");
    post_clear(&post);
}

TW_TEST(deep_nesting_is_refused_not_crashed)
{
    static char deep[200000];
    size_t n = 0;
    n += (size_t)snprintf(deep, sizeof(deep), "{\"id\":\"x\",\"text\":\"t\",\"a\":");
    while (n < sizeof(deep) / 2)
        deep[n++] = '[';
    deep[n] = '\0';
    post_t post;
    post_init(&post);
    char err[200];
    TW_ASSERT_INT_EQ(post_decode(&fields, sizeof(deep), deep, n, &post, err, sizeof(err)),
                     POST_INVALID_JSON);
    post_clear(&post);
}

/* RFC 8259, 8.1: a parser may ignore a byte order mark. Producers on some platforms write one
 * before each JSON document; refusing those posts would dead-letter a whole producer's
 * stream. Only one BOM, at the very start: anywhere else it is text (or a JSON error). */
TW_TEST(a_leading_byte_order_mark_is_ignored)
{
    post_t post;
    post_init(&post);
    TW_ASSERT_INT_EQ(decode("\xef\xbb\xbf{\"id\":\"p1\",\"text\":\"\xef\xbb\xbfhi\"}", &post),
                     POST_OK);
    TW_ASSERT_MEM_EQ(post.id, post.id_len, "p1", 2);
    TW_ASSERT_MEM_EQ(post.text, post.text_len, "\xef\xbb\xbfhi", 5);
    TW_ASSERT_INT_EQ(decode("\xef\xbb\xbf\xef\xbb\xbf{\"id\":\"p1\",\"text\":\"hi\"}", &post),
                     POST_INVALID_JSON);
    TW_ASSERT_INT_EQ(decode("\xef\xbb\xbf", &post), POST_INVALID_JSON);
    post_clear(&post);
}

TW_TEST(json_string_escaping)
{
    buf_t b;
    buf_init(&b);
    buf_append_json_string(&b, "a\"b\\c\nd\x01\x7f é", 12);
    TW_ASSERT_STR_EQ(b.data, "\"a\\\"b\\\\c\\nd\\u0001\\u007f é\"");
    buf_reset(&b);
    buf_append_i64(&b, -9223372036854775807LL - 1);
    TW_ASSERT_STR_EQ(b.data, "-9223372036854775808");
    buf_fini(&b);
}

TW_TEST(decoding_into_an_arena_gives_the_same_post_and_frees_nothing_itself)
{
    arena_t arena;
    arena_init(&arena);
    const char *json = "{\"id\":\"p1\",\"text\":\"hi there\",\"author\":\"u1\",\"lang\":\"en\","
                       "\"extra\":{\"a\":[1,2,{\"b\":\"a string long enough to grow a buffer, "
                       "a string long enough to grow a buffer\"}],\"c\":1,\"d\":2,\"e\":3,"
                       "\"f\":4,\"g\":5,\"h\":6,\"i\":7,\"j\":8,\"k\":9}}";
    char err[200];
    post_t posts[3];
    for (int i = 0; i < 3; i++) {
        post_init(&posts[i]);
        TW_ASSERT_INT_EQ(
            post_decode_in(&arena, &fields, 1000, json, strlen(json), &posts[i], err, sizeof(err)),
            POST_OK);
        TW_ASSERT(arena_owns(&arena, posts[i].text));
        TW_ASSERT_MEM_EQ(posts[i].text, posts[i].text_len, "hi there", 8);
        TW_ASSERT_MEM_EQ(posts[i].author, posts[i].author_len, "u1", 2);
        TW_ASSERT_STR_EQ(posts[i].lang, "en");
    }
    /* Jansson frees what it rejects half-built: in the arena that is nothing to do */
    const char *dup = "{\"id\":\"x\",\"text\":\"a\",\"text\":\"b\"}";
    TW_ASSERT_INT_EQ(
        post_decode_in(&arena, &fields, 1000, dup, strlen(dup), &posts[0], err, sizeof(err)),
        POST_INVALID_JSON);
    /* a post decoded outside any arena meanwhile is malloc'd and freed as before (ASan) */
    post_t plain;
    post_init(&plain);
    TW_ASSERT_INT_EQ(decode(json, &plain), POST_OK);
    TW_ASSERT(!arena_owns(&arena, plain.text));
    post_clear(&plain);
    for (int i = 0; i < 3; i++)
        post_clear(&posts[i]); /* forgets the tree: the arena owns it */
    arena_reset(&arena);
    TW_ASSERT_INT_EQ(
        post_decode_in(&arena, &fields, 1000, json, strlen(json), &posts[0], err, sizeof(err)),
        POST_OK);
    TW_ASSERT_MEM_EQ(posts[0].text, posts[0].text_len, "hi there", 8);
    post_clear(&posts[0]);
    arena_fini(&arena);
}

int main(void)
{
    TW_RUN(TW_CASE(decodes_the_default_fields), TW_CASE(numeric_ids_and_rfc3339_times),
           TW_CASE(configurable_field_names), TW_CASE(bad_input_gets_a_reason),
           TW_CASE(deep_nesting_is_refused_not_crashed),
           TW_CASE(a_leading_byte_order_mark_is_ignored), TW_CASE(json_string_escaping),
           TW_CASE(decoding_into_an_arena_gives_the_same_post_and_frees_nothing_itself));
}
