/* Flood guard: local decisions, mutes surviving or lifting on reload, per-rule limits, and a
 * fleet of two guards sharing one real redis-server (one mute, one reporter). */
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "flood/flood.h"
#include "rules/rules.h"
#include "tw_redis.h"
#include "tw_test.h"

static rule_set_t *load_rules(const char *yaml)
{
    rule_set_t *rs = NULL;
    tw_diag_t diag;
    tw_diag_init(&diag);
    if (rule_set_load_buffer("flood.yaml", yaml, strlen(yaml), &rs, &diag) != 0)
        for (size_t i = 0; i < diag.count; i++)
            fprintf(stderr, "%s\n", diag.lines[i]);
    tw_diag_fini(&diag);
    return rs;
}

static const char *rules_v1 = "rules:\n"
                              "  - {id: free, category: spam, severity: low, keywords: [free]}\n"
                              "  - {id: rare, category: spam, severity: low, keywords: [rare]}\n";
static const char *rules_v2 = "rules:\n"
                              "  - {id: free, category: spam, severity: low, keywords: [gratis]}\n"
                              "  - {id: rare, category: spam, severity: low, keywords: [rare]}\n";

typedef struct {
    int calls;
    flood_mute_t last;
} mutes_seen_t;

static void on_mute(void *arg, const flood_mute_t *m)
{
    mutes_seen_t *seen = arg;
    seen->calls++;
    seen->last = *m;
}

/* n posts at time now: rule 0 hit by every `every`-th post, rule 1 by every 100th. */
static void feed(flood_guard_t *g, int n, int every, time_t now)
{
    for (int i = 0; i < n; i++) {
        uint32_t hits[2];
        size_t nhits = 0;
        if (every && i % every == 0)
            hits[nhits++] = 0;
        if (i % 100 == 0)
            hits[nhits++] = 1;
        flood_guard_count(g, hits, nhits, now);
    }
}

static const flood_limits_t limits = {
    .max_share = 0.1, .min_posts = 100, .window_s = 300, .cooloff_s = 600};

TW_TEST(local_mute_needs_min_posts_and_share)
{
    rule_set_t *rs = load_rules(rules_v1);
    TW_ASSERT(rs);
    flood_guard_t *g = flood_guard_new(&limits, "t", NULL);
    TW_ASSERT_INT_EQ(flood_guard_set_rules(g, rs, NULL), 0);
    mutes_seen_t seen = {0};
    time_t now = 1700000000;
    feed(g, 99, 2, now); /* 50% but only 99 posts */
    TW_ASSERT_INT_EQ(flood_guard_tick(g, now, on_mute, &seen), 0);
    TW_ASSERT_INT_EQ(seen.calls, 0);
    TW_ASSERT(!flood_guard_muted(g, 0, now));
    feed(g, 1, 2, now + 1);
    TW_ASSERT_INT_EQ(flood_guard_tick(g, now + 1, on_mute, &seen), 0);
    TW_ASSERT_INT_EQ(seen.calls, 1);
    TW_ASSERT_STR_EQ(seen.last.rule_id, "free");
    TW_ASSERT(seen.last.reported_here && !seen.last.fleet);
    TW_ASSERT_INT_EQ(seen.last.posts, 100);
    TW_ASSERT_INT_EQ(seen.last.hits, 51);
    TW_ASSERT(flood_guard_muted(g, 0, now + 1));
    TW_ASSERT(!flood_guard_muted(g, 1, now + 1)); /* 1%: below 10% */
    TW_ASSERT_INT_EQ(flood_guard_muted_count(g, now + 1), 1);
    /* a second tick does not report the same mute again; the cool-off lifts it */
    TW_ASSERT_INT_EQ(flood_guard_tick(g, now + 2, on_mute, &seen), 0);
    TW_ASSERT_INT_EQ(seen.calls, 1);
    TW_ASSERT(!flood_guard_muted(g, 0, now + 1 + 600));
    flood_guard_free(g);
    rule_set_free(rs);
}

TW_TEST(old_posts_leave_the_window)
{
    rule_set_t *rs = load_rules(rules_v1);
    flood_guard_t *g = flood_guard_new(&limits, "t", NULL);
    TW_ASSERT_INT_EQ(flood_guard_set_rules(g, rs, NULL), 0);
    mutes_seen_t seen = {0};
    time_t now = 1700000000;
    feed(g, 50, 1, now);        /* 50 hits, then the window moves on */
    feed(g, 200, 0, now + 400); /* 200 clean posts */
    TW_ASSERT_INT_EQ(flood_guard_tick(g, now + 400, on_mute, &seen), 0);
    TW_ASSERT_INT_EQ(seen.calls, 0);
    feed(g, 50, 1, now + 30); /* inside the window again: 50 / 250 = 20% */
    TW_ASSERT_INT_EQ(flood_guard_tick(g, now + 401, on_mute, &seen), 0);
    TW_ASSERT_INT_EQ(seen.calls, 0); /* now + 30 is outside the window ending at now + 401 */
    flood_guard_free(g);
    rule_set_free(rs);
}

TW_TEST(reload_keeps_mute_of_unchanged_rule_and_lifts_changed)
{
    rule_set_t *v1 = load_rules(rules_v1), *v1b = load_rules(rules_v1), *v2 = load_rules(rules_v2);
    TW_ASSERT(v1 && v1b && v2);
    flood_guard_t *g = flood_guard_new(&limits, "t", NULL);
    TW_ASSERT_INT_EQ(flood_guard_set_rules(g, v1, NULL), 0);
    time_t now = 1700000000;
    feed(g, 200, 2, now);
    TW_ASSERT_INT_EQ(flood_guard_tick(g, now, NULL, NULL), 0);
    TW_ASSERT(flood_guard_muted(g, 0, now));
    TW_ASSERT_INT_EQ(flood_guard_set_rules(g, v1b, NULL), 0); /* same text: still muted */
    TW_ASSERT(flood_guard_muted(g, 0, now));
    TW_ASSERT_INT_EQ(flood_guard_set_rules(g, v2, NULL), 0); /* the rule changed: live */
    TW_ASSERT(!flood_guard_muted(g, 0, now));
    flood_guard_free(g);
    rule_set_free(v1);
    rule_set_free(v1b);
    rule_set_free(v2);
}

TW_TEST(per_rule_limits)
{
    rule_set_t *rs = load_rules(rules_v1);
    flood_guard_t *g = flood_guard_new(&limits, "t", NULL);
    flood_override_t own[2] = {{.set = true, .max_share = 0, .min_posts = 0}, {0}};
    TW_ASSERT_INT_EQ(flood_guard_set_rules(g, rs, own), 0);
    time_t now = 1700000000;
    feed(g, 500, 1, now); /* rule 0 hits everything but has no guard */
    TW_ASSERT_INT_EQ(flood_guard_tick(g, now, NULL, NULL), 0);
    TW_ASSERT(!flood_guard_muted(g, 0, now));
    own[1] = (flood_override_t){.set = true, .max_share = 0.005, .min_posts = 10};
    TW_ASSERT_INT_EQ(flood_guard_set_rules(g, rs, own), 0);
    feed(g, 500, 0, now); /* rule 1: 1% > 0.5% */
    TW_ASSERT_INT_EQ(flood_guard_tick(g, now, NULL, NULL), 0);
    TW_ASSERT(flood_guard_muted(g, 1, now));
    flood_guard_free(g);
    rule_set_free(rs);
}

/* The test's transport: commands pipelined on one hiredis connection. */
static int hiredis_exec(void *ctx, size_t ncmds, const int *argc, const char *const *const *argv,
                        const size_t *const *argvlen, redisReply **replies)
{
    redisContext *c = ctx;
    for (size_t i = 0; i < ncmds; i++)
        if (redisAppendCommandArgv(c, argc[i], (const char **)argv[i], argvlen[i]) != REDIS_OK)
            return -1;
    for (size_t i = 0; i < ncmds; i++) {
        void *reply = NULL;
        if (redisGetReply(c, &reply) != REDIS_OK) {
            for (size_t k = 0; k < i; k++)
                freeReplyObject(replies[k]);
            return -1;
        }
        replies[i] = reply;
    }
    return 0;
}

TW_TEST(fleet_of_two_mutes_once)
{
    if (system("command -v redis-server >/dev/null 2>&1") != 0)
        TW_SKIP("redis-server is not installed");
    int port;
    pid_t pid = tw_redis_start(&port);
    TW_ASSERT(pid > 0);
    redisContext *ca = redisConnect("127.0.0.1", port), *cb = redisConnect("127.0.0.1", port);
    flood_transport_t ta = {ca, hiredis_exec}, tb = {cb, hiredis_exec};
    rule_set_t *rs = load_rules(rules_v1);
    flood_guard_t *a = flood_guard_new(&limits, "fleet", &ta);
    flood_guard_t *b = flood_guard_new(&limits, "fleet", &tb);
    flood_guard_set_rules(a, rs, NULL);
    flood_guard_set_rules(b, rs, NULL);
    mutes_seen_t seen_a = {0}, seen_b = {0};
    time_t now = time(NULL);
    /* each worker alone holds 60 posts, below min_posts; the fleet holds 120 */
    feed(a, 60, 2, now);
    feed(b, 60, 2, now);
    int rc_a1 = flood_guard_tick(a, now, on_mute, &seen_a);
    int calls_a1 = seen_a.calls;
    int rc_b = flood_guard_tick(b, now, on_mute, &seen_b);
    int rc_a2 = flood_guard_tick(a, now + 1, on_mute, &seen_a);
    bool a_muted = flood_guard_muted(a, 0, now + 1), b_muted = flood_guard_muted(b, 0, now + 1);
    /* Redis away: the tick says so and the decision falls back to this worker's counts */
    tw_redis_stop(pid);
    feed(a, 200, 1, now + 2);
    mutes_seen_t seen_down = {0};
    int rc_down = flood_guard_tick(a, now + 2, on_mute, &seen_down);
    flood_guard_free(a);
    flood_guard_free(b);
    redisFree(ca);
    redisFree(cb);
    rule_set_free(rs);
    TW_ASSERT_INT_EQ(rc_a1, 0);
    TW_ASSERT_INT_EQ(calls_a1, 0);
    TW_ASSERT_INT_EQ(rc_b, 0);
    TW_ASSERT_INT_EQ(seen_b.calls, 1);
    TW_ASSERT(seen_b.last.fleet && seen_b.last.reported_here);
    TW_ASSERT_INT_EQ(seen_b.last.posts, 120);
    TW_ASSERT_INT_EQ(seen_b.last.hits, 60);
    TW_ASSERT_INT_EQ(rc_a2, 0);
    TW_ASSERT_INT_EQ(seen_a.calls, 0); /* a applies the fleet's mute without reporting it */
    TW_ASSERT(a_muted && b_muted);
    TW_ASSERT_INT_EQ(rc_down, TW_ERR_REDIS);
    TW_ASSERT_INT_EQ(seen_down.calls, 0); /* rule 0 already muted, rule 1 at 1% */
}

int main(void)
{
    TW_RUN(TW_CASE(local_mute_needs_min_posts_and_share), TW_CASE(old_posts_leave_the_window),
           TW_CASE(reload_keeps_mute_of_unchanged_rule_and_lifts_changed), TW_CASE(per_rule_limits),
           TW_CASE(fleet_of_two_mutes_once));
}
