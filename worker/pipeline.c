#include "pipeline.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"

int pipeline_init(pipeline_t *p, const config_t *cfg, const rule_set_t *rules, const match_db_t *db,
                  dedup_store_t *dedup)
{
    memset(p, 0, sizeof(*p));
    p->cfg = cfg;
    p->rules = rules;
    p->db = db;
    p->dedup = dedup;
    p->fields = (post_fields_t){cfg->field_id, cfg->field_text, cfg->field_author,
                                cfg->field_ts, cfg->field_lang, cfg->field_url};
    buf_init(&p->alerts);
    return match_scratch_new(db, &p->scratch);
}

static void pipeline_free_arrays(pipeline_t *p)
{
    for (size_t i = 0; i < p->cap; i++) {
        post_clear(&p->posts[i]);
        normalized_fini(&p->norms[i]);
        match_set_fini(&p->matches[i]);
    }
    free(p->posts);
    free(p->norms);
    free(p->matches);
    free(p->fps);
    free(p->items);
    free(p->dups);
    free(p->post_item);
    p->posts = NULL;
    p->norms = NULL;
    p->matches = NULL;
    p->fps = NULL;
    p->items = NULL;
    p->dups = NULL;
    p->post_item = NULL;
    p->cap = 0;
}

void pipeline_fini(pipeline_t *p)
{
    pipeline_free_arrays(p);
    match_scratch_free(p->scratch);
    buf_fini(&p->alerts);
    memset(p, 0, sizeof(*p));
}

static int pipeline_reserve(pipeline_t *p, size_t n)
{
    if (n <= p->cap)
        return 0;
    pipeline_free_arrays(p);
    p->posts = calloc(n, sizeof(*p->posts));
    p->norms = calloc(n, sizeof(*p->norms));
    p->matches = calloc(n, sizeof(*p->matches));
    p->fps = calloc(n, sizeof(*p->fps));
    p->items = calloc(n, sizeof(*p->items));
    p->dups = calloc(n, sizeof(*p->dups));
    p->post_item = calloc(n, sizeof(*p->post_item));
    if (!p->posts || !p->norms || !p->matches || !p->fps || !p->items || !p->dups ||
        !p->post_item) {
        pipeline_free_arrays(p); /* cap is 0 here: only the arrays are freed */
        return TW_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        post_init(&p->posts[i]);
        normalized_init(&p->norms[i]);
        match_set_init(&p->matches[i]);
    }
    p->cap = n;
    return 0;
}

static rule_severity_t highest_severity(const pipeline_t *p, const match_set_t *ms)
{
    rule_severity_t s = RULE_SEVERITY_LOW;
    for (size_t i = 0; i < ms->count; i++)
        if (p->rules->rules[ms->hits[i].rule_index].severity > s)
            s = p->rules->rules[ms->hits[i].rule_index].severity;
    return s;
}

static void dead_letter(pipeline_result_t *r, post_reason_t reason)
{
    r->outcome = PIPELINE_DEAD_LETTER;
    r->reason = reason;
    atomic_fetch_add(&tw_metrics.decode_failures_total[reason], 1);
}

int pipeline_process(pipeline_t *p, const pipeline_input_t *inputs, size_t n,
                     pipeline_result_t *results)
{
    int rc = pipeline_reserve(p, n);
    if (rc != 0)
        return rc;
    buf_reset(&p->alerts);
    int64_t now = (int64_t)time(NULL);
    size_t nitems = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    for (size_t i = 0; i < n; i++) {
        pipeline_result_t *r = &results[i];
        memset(r, 0, sizeof(*r));
        atomic_fetch_add(&tw_metrics.posts_total, 1);
        atomic_fetch_add(&tw_metrics.post_bytes_total, inputs[i].len);
        post_t *post = &p->posts[i];
        post_reason_t reason =
            post_decode(&p->fields, (size_t)p->cfg->max_post_bytes, inputs[i].data, inputs[i].len,
                        post, r->error, sizeof(r->error));
        if (reason != POST_OK) {
            dead_letter(r, reason);
            continue;
        }
        rc = normalize_text(post->text, post->text_len, &p->norms[i]);
        if (rc != 0) {
            /* Jansson already validated the UTF-8, so only size limits can land here */
            snprintf(r->error, sizeof(r->error), "text cannot be normalized: %s", tw_err_str(rc));
            dead_letter(r, rc == TW_ERR_UTF8 ? POST_INVALID_UTF8 : POST_TOO_LARGE);
            continue;
        }
        rc = match_scan(p->db, p->scratch, p->norms[i].text, p->norms[i].len, &p->matches[i]);
        if (rc != 0)
            return rc;
        fingerprint_compute(p->norms[i].text, p->norms[i].len, &p->fps[i]);
        r->outcome = PIPELINE_PASS;
        p->post_item[i] = SIZE_MAX;
        /* Posts that are only links, mentions or punctuation all share one fingerprint;
         * clustering them would make one giant meaningless campaign. */
        if (fingerprint_is_empty(&p->fps[i]))
            continue;
        dedup_item_t *item = &p->items[nitems];
        item->post_id = post->id;
        item->post_id_len = post->id_len;
        item->author = post->author;
        item->author_len = post->author_len;
        item->ts = post->has_ts ? post->ts : now;
        item->fp = &p->fps[i];
        p->post_item[i] = nitems++;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    atomic_fetch_add(
        &tw_metrics.scan_seconds_micros_total,
        (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000));

    /* One round trip for the whole batch. A store failure costs duplicate information, not
     * posts: rule alerts still go out, marked as such. */
    if (nitems && dedup_batch_check(p->dedup, p->items, nitems, p->dups) != 0) {
        atomic_fetch_add(&tw_metrics.redis_errors_total, 1);
        atomic_fetch_add(&tw_metrics.dedup_unavailable_total, nitems);
    }

    for (size_t i = 0; i < n; i++) {
        pipeline_result_t *r = &results[i];
        if (r->outcome != PIPELINE_PASS)
            continue;
        const dedup_result_t *dup = p->post_item[i] == SIZE_MAX ? NULL : &p->dups[p->post_item[i]];
        const match_set_t *ms = &p->matches[i];
        if (dup && dup->available && dup->count > 1 && !dup->replay)
            atomic_fetch_add(&tw_metrics.duplicates_total, 1);
        bool campaign = dup && dup->available && p->cfg->dedup_alert_min_count > 0 &&
                        dup->count >= (uint64_t)p->cfg->dedup_alert_min_count;
        if (ms->count == 0 && !campaign)
            continue;
        r->outcome = PIPELINE_ALERT;
        r->key = p->posts[i].id;
        r->key_len = p->posts[i].id_len;
        r->alert_offset = p->alerts.len;
        alert_encode(&p->alerts, &p->posts[i], &p->norms[i], ms, p->rules, dup, &inputs[i].source);
        r->alert_len = p->alerts.len - r->alert_offset;
        atomic_fetch_add(&tw_metrics.alerts_total[highest_severity(p, ms)], 1);
    }
    if (p->alerts.failed)
        return TW_ERR_NOMEM;
    atomic_fetch_add(&tw_metrics.batches_total, 1);
    return 0;
}
