/* Flood guard: mute a live rule whose share of posts passes a threshold.
 *
 * The failure rule authors fear most is a new rule that floods reviewers (a keyword like
 * "free" hitting a fifth of the traffic). The guard counts, over a sliding window, the posts
 * a worker saw and the posts each live rule hit; a rule whose share passes its max_share once
 * the window holds at least min_posts posts is muted: it falls back to shadow (matched and
 * counted, never alerting) until cooloff_s have passed or a reload changes the rule.
 *
 * Fleet-wide: traffic is spread over many workers, so each worker adds its counts to shared
 * per-bucket hashes in Redis once per tick and decides on the fleet's totals; a mute is a
 * field of one shared hash, so every worker applies it and exactly one (the one whose HSETNX
 * created it) reports it. All keys carry one hash tag, so on Redis Cluster they share a slot.
 * When Redis is away the worker decides on its own counts (the in-process fallback) and keeps
 * the mutes it already knows until they expire.
 *
 * Threading: one guard per pipeline's serial stage; not thread-safe. */
#ifndef TW_FLOOD_H
#define TW_FLOOD_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "rules/rules.h"

#define FLOOD_BUCKETS 30 /* the window is cut into this many buckets */

typedef struct {
    double max_share;   /* share of posts above which a rule is muted; 0 = no guard */
    uint32_t min_posts; /* posts the window must hold before a share counts */
    uint32_t window_s;  /* sliding window */
    uint32_t cooloff_s; /* how long a mute lasts unless the rule changes */
} flood_limits_t;

/* Sends commands pipelined and reads their replies: the worker's Redis connection. Returns 0
 * with replies[i] set (freed by the guard with freeReplyObject), or -1 when Redis is away. */
typedef struct {
    void *ctx;
    int (*exec)(void *ctx, size_t ncmds, const int *argc, const char *const *const *argv,
                const size_t *const *argvlen, redisReply **replies);
} flood_transport_t;

/* A rule's own limits (`flood:` in the rules file): max_share and min_posts; the window and
 * the cool-off are the fleet's. */
typedef struct {
    bool set; /* false: the defaults apply */
    double max_share;
    uint32_t min_posts;
} flood_override_t;

typedef struct flood_guard flood_guard_t;

/* A rule the guard has just muted: its id, and the share that tripped it. */
typedef struct {
    const char *rule_id;
    double share;
    double max_share;     /* the rule's limit */
    uint64_t hits, posts; /* in the window the decision was made on */
    bool fleet;           /* decided on the fleet's counts (false: this worker's alone) */
    bool reported_here;   /* this worker made the mute: publish its record and log it */
    time_t muted_until;
} flood_mute_t;

/* defaults: the limits of rules without their own; key_prefix names the fleet's keys
 * ("tidewatch" gives "{tidewatch:flood}:..."); transport may be NULL (this worker alone).
 * Returns NULL when out of memory. */
flood_guard_t *flood_guard_new(const flood_limits_t *defaults, const char *key_prefix,
                               const flood_transport_t *transport);
void flood_guard_free(flood_guard_t *guard);

/* Takes a new rule set (at start and on every reload): counts start over, and the mutes of
 * rules whose definition changed lift (a mute names the rule's id and a digest of its
 * definition). per_rule[i] overrides the defaults for rule i (NULL: defaults for all).
 * Returns 0 or TW_ERR_NOMEM. */
int flood_guard_set_rules(flood_guard_t *guard, const rule_set_t *rs,
                          const flood_override_t *per_rule);

/* One post seen: rule_indices[0, n) are the live rules it hit (each at most once). */
void flood_guard_count(flood_guard_t *guard, const uint32_t *rule_indices, size_t n, time_t now);

/* Whether rule_index is muted now. */
bool flood_guard_muted(const flood_guard_t *guard, uint32_t rule_index, time_t now);

/* Once a second or so: shares counts with the fleet, refreshes the fleet's mutes, decides.
 * on_mute is called for each rule muted by this tick. Returns 0, or TW_ERR_REDIS when the
 * fleet could not be reached (the decision was then local). */
int flood_guard_tick(flood_guard_t *guard, time_t now,
                     void (*on_mute)(void *arg, const flood_mute_t *mute), void *arg);

/* Rules muted now (for the tidewatch_rule_muted gauge). */
size_t flood_guard_muted_count(const flood_guard_t *guard, time_t now);

#endif
