/* Domain-list figures for docs and the issue note: load time, memory and lookups per second
 * of a domain set built from real block-lists, and of a synthetic list of N names.
 *
 * usage: bench_domains LIST... [--synthetic N] [--posts POSTS.jsonl]
 * Lookups: every host extracted from the posts' "text" (or, without --posts, the list's own
 * names with a "www." prefix), canonicalized and matched, as a real worker would. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "links/domain_set.h"
#include "links/extract.h"
#include "links/host.h"

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Looks every host of text up; returns hosts seen, counts hits. */
static size_t lookup_text(const domain_set_t *set, const char *text, size_t len, size_t *hits)
{
    size_t pos = 0, seen = 0;
    link_host_t h;
    host_keys_t keys;
    while (links_next_host(text, len, &pos, &h)) {
        seen++;
        if (host_canonicalize(h.host, h.host_len, &keys) != 0)
            continue;
        if (domain_set_match(set, keys.idna) ||
            (keys.skeleton[0] && domain_set_match(set, keys.skeleton)))
            (*hits)++;
    }
    return seen;
}

int main(int argc, char **argv)
{
    domain_set_t *set = domain_set_new();
    const char *posts = NULL;
    long synthetic = 0;
    double t0 = cpu_seconds();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--synthetic") == 0 && i + 1 < argc) {
            synthetic = atol(argv[++i]);
        } else if (strcmp(argv[i], "--posts") == 0 && i + 1 < argc) {
            posts = argv[++i];
        } else {
            tw_diag_t diag;
            tw_diag_init(&diag);
            int err = domain_set_load_file(set, argv[i], &diag);
            for (size_t d = 0; d < diag.count; d++)
                fprintf(stderr, "%s\n", diag.lines[d]);
            tw_diag_fini(&diag);
            if (err)
                return 1;
        }
    }
    char name[96];
    for (long i = 0; i < synthetic; i++) {
        int n = snprintf(name, sizeof name, "login-%ld.account-check%ld.example-%ld.com", i,
                         i % 1000, i % 7919);
        if (domain_set_add(set, name, (size_t)n) != 0)
            return 1;
    }
    domain_set_compact(set);
    double load_s = cpu_seconds() - t0;
    printf("names %zu  load %.3f s CPU  memory %.1f MB (%.1f bytes/name)\n", domain_set_count(set),
           load_s, (double)domain_set_memory_bytes(set) / 1e6,
           (double)domain_set_memory_bytes(set) / (double)(domain_set_count(set) + 1));

    size_t seen = 0, hits = 0, texts = 0;
    t0 = cpu_seconds();
    if (posts) {
        FILE *f = fopen(posts, "r");
        if (!f)
            return 1;
        char *line = NULL;
        size_t cap = 0;
        ssize_t got;
        while ((got = getline(&line, &cap, f)) > 0) {
            json_t *post = json_loadb(line, (size_t)got, 0, NULL);
            const char *text = json_string_value(json_object_get(post, "text"));
            if (text) {
                seen += lookup_text(set, text, strlen(text), &hits);
                texts++;
            }
            json_decref(post);
        }
        free(line);
        fclose(f);
    } else {
        for (long i = 0; i < 1000000; i++) {
            int n = snprintf(name, sizeof name,
                             "see https://www.login-%ld.account-check%ld.example-%ld.com/x", i,
                             i % 1000, i % 7919);
            seen += lookup_text(set, name, (size_t)n, &hits);
            texts++;
        }
    }
    double scan_s = cpu_seconds() - t0;
    printf("texts %zu  hosts %zu  hits %zu  %.0f host lookups/s CPU (extract + canonicalize "
           "+ match)\n",
           texts, seen, hits, (double)seen / (scan_s > 0 ? scan_s : 1e-9));
    domain_set_free(set);
    return 0;
}
