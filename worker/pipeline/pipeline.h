/* The per-batch pipeline shared by every mode (run, scan, demo): decode -> normalize ->
 * match -> fingerprint -> dedupe (one store round trip per batch) -> decide -> encode.
 * A pipeline_t is owned by one thread, the one that calls its functions. The per-post CPU
 * stages (decode, normalize, match, fingerprint: "analysis") run on a pool of cfg->threads
 * workers (pool.h), each post's state in its own slot of the batch arrays and each worker
 * with its own Hyperscan scratch; the rule set and compiled database are shared and
 * read-only. The rest (dedupe, decide, encode, counting) runs on the owner in input order, so
 * results are the same, byte for byte and in the same order, whatever the number of threads.
 * pipeline_process does one batch start to end; pipeline_submit + pipeline_finish let the
 * analysis of the next batch run on the pool while the owner finishes the previous one. */
#ifndef TW_PIPELINE_H
#define TW_PIPELINE_H

#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include "encode/alert.h"
#include "util/buf.h"
#include "config/config.h"
#include "dedup/dedup.h"
#include "fingerprint/fingerprint.h"
#include "match/match.h"
#include "metrics/metrics.h"
#include "normalize/normalize.h"
#include "decode/post.h"
#include "flood/flood.h"
#include "pipeline/pool.h"

typedef struct {
    const char *data; /* raw message value; not NUL-terminated */
    size_t len;
    alert_source_t source;
} pipeline_input_t;

typedef enum {
    PIPELINE_PASS,        /* nothing to publish */
    PIPELINE_ALERT,       /* publish alert (key = post id) */
    PIPELINE_DEAD_LETTER, /* publish the original bytes to the dead-letter topic */
} pipeline_outcome_t;

typedef struct {
    pipeline_outcome_t outcome;
    post_reason_t reason; /* for dead letters */
    char error[200];      /* for dead letters: human-readable detail */
    const char *key;      /* alert key (post id); valid until the next batch */
    size_t key_len;
    size_t alert_offset; /* the alert JSON is pipeline_t.alerts.data[offset, offset + len) */
    size_t alert_len;
    const dedup_result_t *dup; /* the post's duplicate answer; NULL when it was not deduplicated
                                  (dead letter, or a post with nothing to fingerprint) */
    size_t campaign_first;     /* campaign records claimed by this post: */
    size_t ncampaigns;         /* pipeline_t.campaigns[first, first + n) */
    /* Hits of shadow rules and of muted ones: pipeline_t.shadow_hits[first, first + n); they
     * never make the post's alert. With a shadow topic they become a shadow alert (its JSON
     * in pipeline_t.alerts[shadow_offset, + shadow_len); shadow_len 0 = none). */
    size_t shadow_first;
    size_t nshadow;
    size_t shadow_offset;
    size_t shadow_len;
    /* The store failed after it may have run this post's claims (a reply lost to a timeout
     * or a failing master), with campaign milestones on and dedup.on_unavailable fail-open:
     * Redis may hold this post as a milestone's owner, and only a replay of the post re-gets
     * that claim. The post is queued for pipeline_recheck_claims; its offset must not be
     * committed until its recheck was published (pipeline_rechecked_t). */
    bool claims_unknown;
} pipeline_result_t;

/* A campaign record: one per cluster and milestone for the whole fleet (dedup.h, step 5),
 * published besides the post's own outcome. Key and value are in pipeline_t.campaign_buf. */
typedef struct {
    size_t key_offset;
    size_t key_len;
    size_t value_offset;
    size_t value_len;
} pipeline_campaign_t;

/* A post whose campaign claims are unknown (pipeline_result_t.claims_unknown), kept until a
 * store round trip answers for it again. */
typedef struct {
    char *post_id; /* owned copies: the batch's posts are gone by the recheck */
    size_t post_id_len;
    char *author; /* NULL when the post had none */
    size_t author_len;
    int64_t ts;
    fingerprint_t fp;
    alert_source_t source;
} pipeline_unknown_claim_t;

/* A post rechecked by pipeline_recheck_claims: the campaign records it claims (a replay of its
 * lost claim, or a claim made now), pipeline_t.recheck_campaigns[first, first + n), key and
 * value in recheck_buf. n may be 0: the post's offset is then simply free to commit. */
typedef struct {
    alert_source_t source;
    size_t campaign_first;
    size_t ncampaigns;
} pipeline_rechecked_t;

/* At most this many posts wait for a recheck; beyond it a fail-open batch with campaign
 * milestones on is held as under the pause policy (TW_ERR_REDIS), which bounds both this
 * memory and the offsets held back meanwhile. */
#define PIPELINE_MAX_UNKNOWN_CLAIMS 50000

/* A batch slot keeps normalization buffers of up to this many bytes for the next post; bigger
 * ones (a long post's) are freed when the slot takes a post that fits in this, so the slots
 * do not each settle at the longest post they ever saw. */
#define PIPELINE_KEEP_NORM_CAP 4096

/* One batch's per-post state, slot i for input i, and its analysis job. Two of them, so one
 * batch can be analysed while the previous one is finished. */
typedef enum {
    PIPELINE_BATCH_FREE,
    PIPELINE_BATCH_ANALYSING, /* on the pool; the owner has not joined it yet */
    PIPELINE_BATCH_ANALYSED,  /* waiting for pipeline_finish */
} pipeline_batch_state_t;

typedef struct pipeline_batch {
    struct pipeline *p;
    size_t cap;
    post_t *posts;
    normalized_t *norms;
    match_set_t *matches;
    fingerprint_t *fps;
    /* One per worker: the parsed JSON of the posts it decoded (post_decode_in), all dropped
     * at once when the batch slot is submitted again. */
    arena_t *arenas;
    pipeline_batch_state_t state;
    const pipeline_input_t *inputs;
    pipeline_result_t *results;
    size_t n;
    size_t chunk;       /* posts a worker takes at a time */
    atomic_size_t next; /* the first post nobody took yet */
    atomic_int error;   /* the first failure of the analysis, 0 while none */
    struct timespec submitted_at;
    double analysis_seconds; /* from submission to the end of the analysis */
} pipeline_batch_t;

typedef struct pipeline {
    const config_t *cfg;
    const rule_set_t *rules;
    const match_db_t *db;
    pool_t *pool;                /* NULL with one worker */
    size_t nworkers;             /* >= 1 */
    match_scratch_t **scratches; /* one per worker, for db */
    dedup_store_t *dedup;        /* borrowed */
    post_fields_t fields;
    pipeline_batch_t batches[2];
    unsigned long submitted; /* batches submitted; the newest is batches[(submitted - 1) % 2] */
    unsigned long finished;  /* batches finished; the oldest pending is batches[finished % 2] */
    /* The per-post state of the batch finished last, valid until the next pipeline_finish or
     * pipeline_process: slot i for input i. */
    post_t *posts;
    normalized_t *norms;
    match_set_t *matches;
    fingerprint_t *fps;
    size_t cap; /* of items, dups and post_item */
    dedup_item_t *items;
    dedup_result_t *dups;
    size_t *post_item; /* post index -> dedup item, SIZE_MAX when not deduplicated */
    buf_t alerts;
    dedup_store_t *fallback; /* borrowed, may be NULL: answers while dedup is unavailable */
    pipeline_campaign_t *campaigns;
    size_t ncampaigns;
    size_t campaigns_cap;
    buf_t campaign_buf;
    metrics_rules_t *rule_metrics; /* per-rule counters of rule_metrics_rules (a reference) */
    const rule_set_t *rule_metrics_rules;
    match_rule_hit_t *shadow_hits; /* the finished batch's shadow hits (results' ranges) */
    size_t nshadow_hits;
    size_t shadow_hits_cap;
    flood_guard_t *flood;          /* borrowed, may be NULL: no flood guard (scan, rules test) */
    int64_t flood_tick_ms;         /* monotonic time of the guard's last tick */
    pipeline_campaign_t *controls; /* rule_muted records this batch's tick made (this worker */
    size_t ncontrols;              /* reports them); key and value in control_buf */
    size_t controls_cap;
    buf_t control_buf;
    size_t max_unknown_claims;         /* PIPELINE_MAX_UNKNOWN_CLAIMS (tests lower it) */
    pipeline_unknown_claim_t *unknown; /* posts whose claims are unknown, oldest first */
    size_t nunknown;
    size_t unknown_cap;
    pipeline_rechecked_t *rechecked; /* the last successful recheck's posts */
    size_t nrechecked;
    size_t rechecked_cap;
    pipeline_campaign_t *recheck_campaigns;
    size_t nrecheck_campaigns;
    size_t recheck_campaigns_cap;
    buf_t recheck_buf;
} pipeline_t;

/* Returns 0 or a negative tw_err_t. cfg, rules, db and dedup must outlive the pipeline.
 * cfg->threads workers run the per-post stages (0 = pipeline_default_threads()). */
int pipeline_init(pipeline_t *p, const config_t *cfg, const rule_set_t *rules, const match_db_t *db,
                  dedup_store_t *dedup);
void pipeline_fini(pipeline_t *p);

/* Makes the pipeline use another rule set from the next batch on (hot reload): a scratch for
 * db is allocated for every worker first, so on failure (TW_ERR_NOMEM) the pipeline keeps its
 * old rules. Only between batches, with none submitted and unfinished (else TW_ERR_INVALID):
 * then no worker holds the old database, and the caller frees the old rules and db once this
 * returned 0; rules and db must outlive p. */
int pipeline_set_rules(pipeline_t *p, const rule_set_t *rules, const match_db_t *db);

/* Processes n inputs; results[i] says what to publish for inputs[i]. Keys and alert bytes
 * stay valid until the next call. Returns 0, or a negative tw_err_t for failures that are not
 * the input's fault (out of memory, a Hyperscan error): the batch must then be retried.
 * TW_ERR_REDIS means the store was unavailable and cfg->dedup_on_unavailable is "pause": the
 * caller retries the same batch later (nothing was published or counted for it). */
int pipeline_process(pipeline_t *p, const pipeline_input_t *inputs, size_t n,
                     pipeline_result_t *results);

/* pipeline_process in two steps, so that a batch is analysed on the pool while the owner
 * finishes the one before: pipeline_submit first completes the analysis of the batch
 * submitted before, if any (the owner helps), then starts this one's and returns; at most
 * two batches are pending (else TW_ERR_INVALID). inputs (and the bytes they point to) and
 * results must stay untouched until this batch's pipeline_finish. Returns 0 or TW_ERR_NOMEM
 * (nothing submitted). */
int pipeline_submit(pipeline_t *p, const pipeline_input_t *inputs, size_t n,
                    pipeline_result_t *results);

/* Finishes the oldest submitted batch (helping with its analysis if still running): dedupe,
 * decide, encode, count, into the results given to pipeline_submit. Returns what
 * pipeline_process returns; the batch is no longer pending either way (TW_ERR_INVALID when
 * none was). */
int pipeline_finish(pipeline_t *p);

/* Drops every submitted, unfinished batch (waiting for its analysis first): nothing of it is
 * deduplicated, counted or published, and the pipeline is idle again. For a batch polled
 * behind one that must be retried first (the pause policy): it is submitted again after. */
void pipeline_abandon(pipeline_t *p);

/* Attaches a flood guard (flood.h), or detaches it with NULL: from the next batch on, each
 * post's live hits are counted in it and hits of muted rules go to shadow. The guard must have
 * the pipeline's rule set (flood_guard_set_rules) and outlive its use. */
void pipeline_set_flood(pipeline_t *p, flood_guard_t *flood);

/* The owner's loop calls this every turn, batches or not (a flood's last batch must still be
 * decided on): at most once a second it ticks the guard (shares counts with the fleet,
 * refreshes its mutes, decides) and updates the per-rule muted gauge. The rule_muted records
 * this worker must publish are then in p->controls[0, ncontrols) until the next call. */
void pipeline_flood_tick(pipeline_t *p, time_t now);

/* Re-runs the claims of (up to a store batch of) the posts whose claims are unknown, oldest
 * first, in one store round trip: the claim is idempotent per post (dedup.h, 5.), so a post
 * whose lost round trip did run gets its claim back as a replay, and one whose round trip
 * never ran is recorded now (and may claim now). On success the posts are in
 * p->rechecked[0, nrechecked) until the next call, and no longer queued; returns 0 (also with
 * nothing queued: nrechecked is then 0). On a store failure nothing changes and the posts stay
 * queued (TW_ERR_REDIS or another negative tw_err_t). Only between batches. */
int pipeline_recheck_claims(pipeline_t *p);

/* Posts queued for a recheck. */
static inline size_t pipeline_unknown_claims(const pipeline_t *p)
{
    return p->nunknown;
}

/* Drops the queued posts of a partition this worker no longer owns: its new owner re-reads
 * them from the last commit, which their held offsets kept before them. */
void pipeline_forget_claims(pipeline_t *p, int32_t partition);

/* The workers a threads setting of 0 means: the CPUs this process may use. */
size_t pipeline_default_threads(void);

/* The match stage for one decoded post: its normalized text plus whichever fields the rules
 * target (author, url, any top-level string field), and its language for language filters.
 * Shared with `rules test` so the backtest matches exactly as the worker does. */
int pipeline_match_post(const match_db_t *db, match_scratch_t *scratch, const post_t *post,
                        const normalized_t *norm, match_set_t *set);

#endif
