/* libFuzzer target for post decoding and everything the worker does with a decoded post's
 * text before matching: post_decode() -> normalize_text() -> fingerprint_compute(), plus the
 * alert encoder's JSON string escaping of the original text. Bytes a stranger can put on the
 * input topic must give a post or a dead-letter reason, never a crash.
 *
 * With libFuzzer (clang):
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Icommon \
 *       tests/fuzz/fuzz_decode.c common/post.c common/normalize.c common/fingerprint.c \
 *       common/buf.c common/err.c -ljansson -lutf8proc -lm -o fuzz_decode
 *   ./fuzz_decode -max_len=8192 tests/fuzz/corpus/decode
 * The corpus is replayed as an ordinary test by ctest (tests/fuzz/fuzz_replay.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "fingerprint/fingerprint.h"
#include "normalize/normalize.h"
#include "decode/post.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const post_fields_t fields = {"id", "text", "author", "ts", "lang", "url"};
    post_t post;
    post_init(&post);
    char err[200];
    post_reason_t reason =
        post_decode(&fields, 65536, (const char *)data, size, &post, err, sizeof(err));
    if (reason == POST_OK) {
        if (!post.id || !post.id_len || !post.text)
            abort();
        normalized_t norm;
        normalized_init(&norm);
        if (normalize_text(post.text, post.text_len, &norm) == 0) {
            fingerprint_t fp;
            fingerprint_compute(norm.text, norm.len, &fp);
        }
        normalized_fini(&norm);
        buf_t b;
        buf_init(&b);
        buf_append_json_string(&b, post.text, post.text_len);
        if (!b.failed && (b.len < 2 || b.data[0] != '"' || b.data[b.len - 1] != '"'))
            abort();
        buf_fini(&b);
    } else if (reason >= POST_REASON_COUNT || err[0] == '\0') {
        abort(); /* every refusal carries a reason and a message */
    }
    post_clear(&post);
    return 0;
}
