#include "modes/scan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/buf.h"
#include "pipeline/engine.h"
#include "util/log.h"
#include "pipeline/pipeline.h"

typedef struct {
    char *data;
    size_t cap;
} line_slot_t;

static void report_bad_line(const char *file, int64_t line, const pipeline_result_t *res)
{
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
        fputs(b.data, stderr);
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

int scan_file(const config_t *cfg, const char *path)
{
    const char *name = path && strcmp(path, "-") != 0 ? path : "-";
    FILE *in = strcmp(name, "-") == 0 ? stdin : fopen(path, "rb");
    if (!in) {
        log_error("%s: cannot open: %s", path, strerror(errno));
        return TW_ERR_IO;
    }
    engine_t engine;
    int rc = engine_open(&engine, cfg, true);
    if (rc != 0) {
        if (in != stdin)
            fclose(in);
        return rc;
    }
    size_t batch = (size_t)cfg->batch_size;
    pipeline_t pipe;
    line_slot_t *lines = calloc(batch, sizeof(*lines));
    pipeline_input_t *inputs = calloc(batch, sizeof(*inputs));
    pipeline_result_t *results = calloc(batch, sizeof(*results));
    size_t nposts = 0, nalerts = 0, nbad = 0, ncampaigns = 0;
    bool emit_all = cfg->scan_emit == CONFIG_SCAN_EMIT_ALL;
    buf_t record;
    buf_init(&record);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool pipe_ready = false;
    if (!lines || !inputs || !results) {
        rc = TW_ERR_NOMEM;
        goto out;
    }
    if ((rc = pipeline_init(&pipe, cfg, engine.rules, engine.db, engine.dedup)) != 0)
        goto out;
    pipe_ready = true;

    int64_t lineno = 0;
    bool eof = false;
    while (!eof) {
        size_t n = 0;
        while (n < batch) {
            ssize_t len = getline(&lines[n].data, &lines[n].cap, in);
            if (len < 0) {
                eof = true;
                break;
            }
            lineno++;
            while (len > 0 && (lines[n].data[len - 1] == '\n' || lines[n].data[len - 1] == '\r'))
                len--;
            if (len == 0)
                continue; /* blank lines separate nothing in JSONL */
            inputs[n].data = lines[n].data;
            inputs[n].len = (size_t)len;
            inputs[n].source = (alert_source_t){.file = name, .line = lineno};
            n++;
        }
        if (!n)
            continue;
        if ((rc = pipeline_process(&pipe, inputs, n, results)) != 0)
            goto out;
        nposts += n;
        for (size_t i = 0; i < n; i++) {
            for (size_t k = 0; k < results[i].ncampaigns; k++) {
                const pipeline_campaign_t *c = &pipe.campaigns[results[i].campaign_first + k];
                fwrite(pipe.campaign_buf.data + c->value_offset, 1, c->value_len, stdout);
                fputc('\n', stdout);
                ncampaigns++;
            }
            if (emit_all && results[i].outcome != PIPELINE_DEAD_LETTER)
                emit_post_record(&record, &pipe, i, &inputs[i], &results[i]);
            if (results[i].outcome == PIPELINE_ALERT) {
                nalerts++;
                if (emit_all)
                    continue;
                fwrite(pipe.alerts.data + results[i].alert_offset, 1, results[i].alert_len, stdout);
                fputc('\n', stdout);
            } else if (results[i].outcome == PIPELINE_DEAD_LETTER) {
                report_bad_line(name, inputs[i].source.line, &results[i]);
                nbad++;
            }
        }
    }
    if (ferror(in)) {
        log_error("%s: read error: %s", name, strerror(errno));
        rc = TW_ERR_IO;
    }
    fflush(stdout);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    log_info("scanned %zu posts in %.3f s (%.0f posts/s): %zu alerts, %zu campaign records, "
             "%zu undecodable",
             nposts, secs, secs > 0 ? (double)nposts / secs : 0.0, nalerts, ncampaigns, nbad);
out:
    buf_fini(&record);
    if (pipe_ready)
        pipeline_fini(&pipe);
    for (size_t i = 0; lines && i < batch; i++)
        free(lines[i].data);
    free(lines);
    free(inputs);
    free(results);
    engine_close(&engine);
    if (in != stdin)
        fclose(in);
    return rc;
}
