/* Duplicate-store benchmark: real posts' fingerprints through dedup_batch_check in batches.
 *
 * usage: bench_dedup [--posts FILE] [--n N] [--batch B] [--store memory|URL]...
 *
 * FILE is one post per line (default: $TW_SHARED_DATA/posts/posts_mixed.txt, else
 * ../shared/data/posts/posts_mixed.txt beside the source tree). Every line is normalized and
 * fingerprinted once, up front, the way the pipeline does it (empty fingerprints are skipped as the
 * pipeline skips them); then each --store (memory, redis://..., redis+cluster://...) gets the same
 * stream, with post ids "p<line>", authors "u<line % 5000>" and ts = 1700000000 + line, in
 * batches of B (default 500, the worker's batch size). Prints one JSON object per store:
 * {"store", "posts", "batches", "seconds", "posts_per_s", "clustered",
 * "decisions" (a hash of every post's cluster, count, replay flag, first/last seen)}. Exits 0 with
 * a SKIP line when the posts file is absent. perf/redis_cost.py drives it against real Redis
 * servers and adds the servers' commandstats and CPU. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dedup/dedup.h"
#include "fingerprint/fingerprint.h"
#include "normalize/normalize.h"

#define MAX_STORES 8

typedef struct {
    char id[24];
    char author[16];
    int64_t ts;
    fingerprint_t fp;
} bench_post_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t load_posts(const char *path, size_t limit, bench_post_t **out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    bench_post_t *posts = calloc(limit ? limit : 1, sizeof(*posts));
    normalized_t norm;
    normalized_init(&norm);
    char *line = NULL;
    size_t cap = 0, n = 0, lineno = 0;
    ssize_t len;
    while (posts && n < limit && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (normalize_text(line, (size_t)len, &norm) != 0)
            continue;
        bench_post_t *p = &posts[n];
        fingerprint_compute(norm.text, norm.len, &p->fp);
        if (fingerprint_is_empty(&p->fp))
            continue;
        snprintf(p->id, sizeof(p->id), "p%zu", lineno);
        snprintf(p->author, sizeof(p->author), "u%zu", lineno % 5000);
        p->ts = 1700000000 + (int64_t)lineno;
        n++;
    }
    free(line);
    normalized_fini(&norm);
    fclose(f);
    *out = posts;
    return posts ? n : 0;
}

static int bench_store(const char *spec, const bench_post_t *posts, size_t n, size_t batch)
{
    dedup_store_t *store = NULL;
    int rc = strcmp(spec, "memory") == 0 ? dedup_memory_new(86400, 1u << 20, &store)
                                         : dedup_redis_new(spec, 86400, 5000, &store, NULL);
    if (rc != 0) {
        fprintf(stderr, "bench_dedup: cannot open store %s\n", spec);
        return 1;
    }
    dedup_verify_set(store, 50);
    dedup_item_t *items = calloc(batch, sizeof(*items));
    dedup_result_t *results = calloc(batch, sizeof(*results));
    if (!items || !results) {
        free(items);
        free(results);
        dedup_store_free(store);
        return 1;
    }
    size_t batches = 0, clustered = 0;
    /* FNV-1a over every post's cluster, count, replay flag and first/last seen: equal
     * across stores = the same clustering decisions (authors are left out: Redis estimates
     * them with a HyperLogLog) */
    uint64_t decisions = 0xcbf29ce484222325ULL;
    double t0 = now_s();
    for (size_t off = 0; off < n && rc == 0; off += batch) {
        size_t k = n - off < batch ? n - off : batch;
        for (size_t i = 0; i < k; i++) {
            const bench_post_t *p = &posts[off + i];
            items[i] =
                (dedup_item_t){p->id, strlen(p->id), p->author, strlen(p->author), p->ts, &p->fp};
        }
        rc = dedup_batch_check(store, items, k, results);
        for (size_t i = 0; rc == 0 && i < k; i++) {
            const dedup_result_t *res = &results[i];
            clustered += res->count > 1;
            uint64_t fields[5] = {res->cluster, res->count, res->replay, (uint64_t)res->first_seen,
                                  (uint64_t)res->last_seen};
            const unsigned char *b = (const unsigned char *)fields;
            for (size_t j = 0; j < sizeof(fields); j++)
                decisions = (decisions ^ b[j]) * 0x100000001b3ULL;
        }
        batches++;
    }
    double secs = now_s() - t0;
    if (rc != 0)
        fprintf(stderr, "bench_dedup: store %s failed: %d\n", spec, rc);
    const char *name = strcmp(spec, "memory") == 0               ? "memory"
                       : strncmp(spec, "redis+cluster", 13) == 0 ? "redis-cluster"
                                                                 : "redis";
    printf("{\"store\": \"%s\", \"posts\": %zu, \"batches\": %zu, \"seconds\": %.4f, "
           "\"posts_per_s\": %.0f, \"clustered\": %zu, \"decisions\": \"%016" PRIx64 "\"}\n",
           name, n, batches, secs, secs > 0 ? (double)n / secs : 0.0, clustered, decisions);
    fflush(stdout);
    free(items);
    free(results);
    dedup_store_free(store);
    return rc != 0;
}

int main(int argc, char **argv)
{
    char default_path[4096];
    const char *data = getenv("TW_SHARED_DATA");
    snprintf(default_path, sizeof(default_path), "%s/posts/posts_mixed.txt",
             data && *data ? data : TW_SHARED_DATA_DIR);
    const char *path = default_path;
    size_t limit = 50000, batch = 500, nstores = 0;
    const char *stores[MAX_STORES];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--posts") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc)
            limit = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--store") == 0 && i + 1 < argc && nstores < MAX_STORES)
            stores[nstores++] = argv[++i];
        else {
            fprintf(stderr, "usage: bench_dedup [--posts FILE] [--n N] [--batch B] "
                            "[--store memory|redis://H:P/DB|redis+cluster://H:P,...]...\n");
            return 2;
        }
    }
    if (!batch)
        batch = 1;
    if (!nstores)
        stores[nstores++] = "memory";
    bench_post_t *posts = NULL;
    size_t n = load_posts(path, limit, &posts);
    if (n == 0) {
        printf("SKIP: no posts read from %s\n", path);
        free(posts);
        return 0;
    }
    int failed = 0;
    for (size_t s = 0; s < nstores; s++)
        failed |= bench_store(stores[s], posts, n, batch);
    free(posts);
    return failed;
}
