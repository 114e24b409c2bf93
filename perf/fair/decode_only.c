/* decode-only floor: json_loadb + json_object_get("text") over every line, nothing else.
 * usage: fair_decode_only POSTS.jsonl [REPS]   prints one JSON object; cpu_s is the best of
 * REPS passes (process CPU time of the loop only, the file already in memory). */
#include <jansson.h>

#include "common.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s POSTS.jsonl [REPS]\n", argv[0]);
        return 2;
    }
    int reps = argc > 2 ? atoi(argv[2]) : 3;
    fair_lines_t in;
    if (fair_read_lines(argv[1], &in) != 0) {
        perror(argv[1]);
        return 1;
    }
    double best = 1e30;
    size_t text_bytes = 0, decoded = 0;
    for (int r = 0; r < reps; r++) {
        text_bytes = decoded = 0;
        double t0 = fair_cpu_seconds();
        for (size_t i = 0; i < in.n; i++) {
            json_error_t err;
            json_t *post = json_loadb(in.line[i], in.len[i], 0, &err);
            if (!post)
                continue;
            const char *text = json_string_value(json_object_get(post, "text"));
            if (text) {
                text_bytes += strlen(text);
                decoded++;
            }
            json_decref(post);
        }
        double dt = fair_cpu_seconds() - t0;
        if (dt < best)
            best = dt;
    }
    printf("{\"posts\": %zu, \"decoded\": %zu, \"text_bytes\": %zu, \"cpu_s\": %.6f, "
           "\"reps\": %d}\n",
           in.n, decoded, text_bytes, best, reps);
    return 0;
}
