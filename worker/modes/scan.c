#include "modes/scan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/buf.h"
#include "pipeline/engine.h"
#include "util/log.h"
#include "util/progress.h"
#include "pipeline/pipeline.h"

typedef struct {
    char *data;
    size_t cap;
} line_slot_t;

static void report_bad_line(const char *file, int64_t line, const pipeline_result_t *res)
{
    if (log_format() == LOG_FORMAT_TEXT) { /* a person reads it: the compiler's file:line form */
        log_print("%s:%lld: dead letter (%s): %s\n", file, (long long)line,
                  post_reason_name(res->reason), res->error);
        return;
    }
    buf_t b;
    buf_init(&b);
    buf_append_str(&b, "{\"dead_letter\":{\"file\":");
    buf_append_json_string(&b, file, strlen(file));
    buf_append_str(&b, ",\"line\":");
    buf_append_i64(&b, line);
    buf_append_str(&b, ",\"reason\":\"");
    buf_append_str(&b, post_reason_name(res->reason));
    buf_append_str(&b, "\",\"error\":");
    buf_append_json_string(&b, res->error, strlen(res->error));
    buf_append_str(&b, "}}\n");
    if (!b.failed)
        log_print("%s", b.data); /* above the progress line, if there is one */
    buf_fini(&b);
}

/* --emit all: one record per decoded post with its cluster, for evaluating duplicate
 * detection (perf/neardup_eval.py) and for showing an analyst why posts were clustered:
 * {"post_id", "line", "cluster" (null when the post had nothing to fingerprint), "count",
 *  "authors", "replay", "alert", "canonical" (the text the fingerprint was taken of)}. */
static void emit_post_record(buf_t *b, const pipeline_t *pipe, size_t i, const pipeline_input_t *in,
                             const pipeline_result_t *res)
{
    const post_t *post = &pipe->posts[i];
    const normalized_t *norm = &pipe->norms[i];
    buf_reset(b);
    buf_append_str(b, "{\"post_id\":");
    buf_append_json_string(b, post->id, post->id_len);
    buf_append_str(b, ",\"line\":");
    buf_append_i64(b, in->source.line);
    const dedup_result_t *dup = res->dup;
    if (dup && (dup->available || dup->local)) {
        char hex[17];
        dedup_cluster_hex(dup->cluster, hex);
        buf_append_str(b, ",\"cluster\":\"");
        buf_append_str(b, hex);
        buf_append_str(b, "\",\"count\":");
        buf_append_u64(b, dup->count);
        buf_append_str(b, ",\"authors\":");
        buf_append_u64(b, dup->authors);
        buf_append_str(b, dup->replay ? ",\"replay\":true" : ",\"replay\":false");
    } else {
        buf_append_str(b, ",\"cluster\":null,\"count\":0,\"authors\":0,\"replay\":false");
    }
    buf_append_str(b, res->outcome == PIPELINE_ALERT ? ",\"alert\":true" : ",\"alert\":false");
    size_t cap = norm->len * 2 + 16;
    char *canon = malloc(cap);
    if (canon) {
        size_t len = fingerprint_canonical(norm->text, norm->len, canon, cap);
        buf_append_str(b, ",\"canonical\":");
        buf_append_json_string(b, canon, len < cap ? len : cap - 1);
        free(canon);
    }
    buf_append_str(b, "}\n");
    if (!b->failed)
        fwrite(b->data, 1, b->len, stdout);
}

/* A batch of lines and its pipeline results. scan keeps two, so that the pool analyses one
 * while this thread reads the next and finishes and prints the one before. */
typedef struct {
    line_slot_t *lines;
    pipeline_input_t *inputs;
    pipeline_result_t *results;
    size_t n;
} scan_batch_t;

static int scan_batch_alloc(scan_batch_t *b, size_t batch)
{
    b->lines = calloc(batch, sizeof(*b->lines));
    b->inputs = calloc(batch, sizeof(*b->inputs));
    b->results = calloc(batch, sizeof(*b->results));
    b->n = 0;
    return b->lines && b->inputs && b->results ? 0 : TW_ERR_NOMEM;
}

static void scan_batch_free(scan_batch_t *b, size_t batch)
{
    for (size_t i = 0; b->lines && i < batch; i++)
        free(b->lines[i].data);
    free(b->lines);
    free(b->inputs);
    free(b->results);
}

/* Reads up to batch non-blank lines into b; fewer only at the end of the input. Adds the bytes
 * read to *bytes. */
static void scan_read_batch(FILE *in, const char *name, size_t batch, int64_t *lineno,
                            uint64_t *bytes, scan_batch_t *b)
{
    b->n = 0;
    while (b->n < batch) {
        line_slot_t *line = &b->lines[b->n];
        ssize_t len = getline(&line->data, &line->cap, in);
        if (len < 0)
            return;
        *bytes += (uint64_t)len;
        ++*lineno;
        while (len > 0 && (line->data[len - 1] == '\n' || line->data[len - 1] == '\r'))
            len--;
        if (len == 0)
            continue; /* blank lines separate nothing in JSONL */
        b->inputs[b->n].data = line->data;
        b->inputs[b->n].len = (size_t)len;
        b->inputs[b->n].source = (alert_source_t){.file = name, .line = *lineno};
        b->n++;
    }
}

typedef struct {
    size_t posts, alerts, bad, campaigns;
} scan_counts_t;

/* Prints a finished batch's campaign records, alerts (or --emit all records) and dead letters,
 * in input order. */
static void scan_print_batch(const pipeline_t *pipe, const char *name, const scan_batch_t *b,
                             bool emit_all, buf_t *record, progress_t *progress,
                             scan_counts_t *counts)
{
    counts->posts += b->n;
    for (size_t i = 0; i < b->n; i++) {
        const pipeline_result_t *res = &b->results[i];
        if (res->ncampaigns || emit_all || res->outcome == PIPELINE_ALERT)
            progress_before_stdout(progress);
        for (size_t k = 0; k < res->ncampaigns; k++) {
            const pipeline_campaign_t *c = &pipe->campaigns[res->campaign_first + k];
            fwrite(pipe->campaign_buf.data + c->value_offset, 1, c->value_len, stdout);
            fputc('\n', stdout);
            counts->campaigns++;
        }
        if (emit_all && res->outcome != PIPELINE_DEAD_LETTER)
            emit_post_record(record, pipe, i, &b->inputs[i], res);
        if (res->outcome == PIPELINE_ALERT) {
            counts->alerts++;
            if (emit_all)
                continue;
            fwrite(pipe->alerts.data + res->alert_offset, 1, res->alert_len, stdout);
            fputc('\n', stdout);
        } else if (res->outcome == PIPELINE_DEAD_LETTER) {
            report_bad_line(name, b->inputs[i].source.line, res);
            counts->bad++;
        }
    }
}

int scan_file(const config_t *cfg, const char *path)
{
    const char *name = path && strcmp(path, "-") != 0 ? path : "-";
    FILE *in = strcmp(name, "-") == 0 ? stdin : fopen(path, "rb");
    if (!in) {
        log_error("%s: cannot open: %s", path, strerror(errno));
        return TW_ERR_IO;
    }
    engine_t engine;
    int rc = engine_open(&engine, cfg, cfg->scan_store != CONFIG_SCAN_STORE_REDIS);
    if (rc != 0) {
        if (in != stdin)
            fclose(in);
        return rc;
    }
    size_t batch = (size_t)cfg->batch_size;
    pipeline_t pipe;
    scan_batch_t batches[2] = {{0}, {0}};
    scan_counts_t counts = {0};
    bool emit_all = cfg->scan_emit == CONFIG_SCAN_EMIT_ALL;
    buf_t record;
    buf_init(&record);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    progress_t progress;
    progress_start(&progress, in);
    uint64_t bytes_read = 0;
    bool pipe_ready = false;
    if ((rc = scan_batch_alloc(&batches[0], batch)) != 0 ||
        (rc = scan_batch_alloc(&batches[1], batch)) != 0)
        goto out;
    if ((rc = pipeline_init(&pipe, cfg, engine.rules, engine.db, engine.dedup)) != 0)
        goto out;
    pipe_ready = true;

    /* While the pool analyses batch cur, this thread reads the next one, submits it (helping
     * to finish cur's analysis first), then finishes and prints cur: the duplicate store,
     * encoding and output of one batch overlap the analysis of the next. */
    int64_t lineno = 0;
    size_t cur = 0;
    scan_read_batch(in, name, batch, &lineno, &bytes_read, &batches[cur]);
    if (batches[cur].n && (rc = pipeline_submit(&pipe, batches[cur].inputs, batches[cur].n,
                                                batches[cur].results)) != 0)
        goto out;
    while (batches[cur].n) {
        scan_batch_t *next = &batches[cur ^ 1];
        scan_read_batch(in, name, batch, &lineno, &bytes_read, next);
        if (next->n && (rc = pipeline_submit(&pipe, next->inputs, next->n, next->results)) != 0)
            goto out;
        if ((rc = pipeline_finish(&pipe)) != 0)
            goto out;
        scan_print_batch(&pipe, name, &batches[cur], emit_all, &record, &progress, &counts);
        progress_update(&progress, counts.posts, bytes_read);
        cur ^= 1;
    }
    progress_finish(&progress);
    if (ferror(in)) {
        log_error("%s: read error: %s", name, strerror(errno));
        rc = TW_ERR_IO;
    }
    fflush(stdout);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    log_info("scanned %zu posts in %.3f s (%.0f posts/s): %zu alerts, %zu campaign records, "
             "%zu undecodable",
             counts.posts, secs, secs > 0 ? (double)counts.posts / secs : 0.0, counts.alerts,
             counts.campaigns, counts.bad);
out:
    progress_finish(&progress);
    buf_fini(&record);
    if (pipe_ready)
        pipeline_fini(&pipe); /* waits for a batch still being analysed */
    scan_batch_free(&batches[0], batch);
    scan_batch_free(&batches[1], batch);
    engine_close(&engine);
    if (in != stdin)
        fclose(in);
    return rc;
}
