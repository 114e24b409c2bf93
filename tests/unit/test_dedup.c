/* The memory and Redis duplicate stores must give the same answers for the same batches
 * (scan and run agree). The Redis half starts a real redis-server on a free loopback port, and
 * a real three-master Redis Cluster (redis-cli --cluster create), and is skipped, saying so,
 * where redis-server or redis-cli is not installed. */
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dedup/dedup.h"
#include "fingerprint/fingerprint.h"
#include "dedup/redis_cluster.h"
#include "dedup/redis_record.h"
#include "tw_redis.h"
#include "tw_test.h"

typedef struct {
    const char *id;
    const char *author;
    const char *text;
    int64_t ts;
} sample_t;

static const sample_t samples[] = {
    {"p1", "alice", "win a free phone today click the link and claim it now", 100},
    {"p2", "bob", "win a free phone today click the link and claim it now!!", 110},
    {"p3", "carol", "win a free phone today just click the link and claim it now", 105},
    {"p4", "dave", "the weather in the harbour is lovely this time of year", 120},
    {"p2", "bob", "win a free phone today click the link and claim it now!!", 110}, /* replay */
    {"p5", "bob", "win a free phone today click the link and claim it now", 130},
    {"p6", NULL, "the weather in the harbour is lovely this time of year", 90},
};
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

static void make_items(dedup_item_t *items, fingerprint_t *fps)
{
    for (size_t i = 0; i < NSAMPLES; i++) {
        fingerprint_compute(samples[i].text, strlen(samples[i].text), &fps[i]);
        items[i] =
            (dedup_item_t){samples[i].id,     strlen(samples[i].id),
                           samples[i].author, samples[i].author ? strlen(samples[i].author) : 0,
                           samples[i].ts,     &fps[i]};
    }
}

/* In the check functions below: reports a failed expectation (with its line) and marks the
 * function's result `bad`, but goes on, so one run shows every difference. */
#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  expected %s (line %d)\n", #cond, __LINE__);                         \
            bad = 1;                                                                               \
        }                                                                                          \
    } while (0)

/* Checks the expected semantics; used for every store. Two batches exercise state carried
 * between round trips as well as within one; hook (may be NULL) runs before the first batch
 * (before = true) and between the two. */
static int check_store_hooked(dedup_store_t *store, void (*hook)(void *arg, bool before), void *arg)
{
    dedup_item_t items[NSAMPLES];
    fingerprint_t fps[NSAMPLES];
    dedup_result_t r[NSAMPLES];
    make_items(items, fps);
    if (hook)
        hook(arg, true);
    if (dedup_batch_check(store, items, 3, r) != 0)
        return fprintf(stderr, "batch 1 failed\n"), 1;
    if (hook)
        hook(arg, false);
    if (dedup_batch_check(store, items + 3, NSAMPLES - 3, r + 3) != 0)
        return fprintf(stderr, "batch 2 failed\n"), 1;
    int bad = 0;
    for (size_t i = 0; i < NSAMPLES; i++)
        EXPECT(r[i].available);
    EXPECT(r[0].count == 1 && !r[0].replay);
    EXPECT(r[1].cluster == r[0].cluster && r[1].count == 2 && r[1].authors == 2);
    EXPECT(r[2].cluster == r[0].cluster && r[2].count == 3 && r[2].authors == 3);
    EXPECT(r[3].cluster != r[0].cluster && r[3].count == 1);
    EXPECT(r[4].replay && r[4].cluster == r[0].cluster && r[4].count == 3); /* not counted */
    EXPECT(r[5].cluster == r[0].cluster && r[5].count == 4 && r[5].authors == 3);
    EXPECT(r[5].first_seen == 100 && r[5].last_seen == 130);
    EXPECT(r[6].cluster == r[3].cluster && r[6].count == 2 && r[6].authors == 1);
    EXPECT(r[6].first_seen == 90);
    EXPECT(r[0].cluster == fps[0].exact); /* a new cluster is named after its first post */
    return bad;
}

static int check_store(dedup_store_t *store)
{
    return check_store_hooked(store, NULL, NULL);
}

static bool sample_is(const dedup_result_t *r, size_t k, const char *id)
{
    return k < r->nsamples && r->sample_lens[k] == strlen(id) &&
           memcmp(r->samples[k], id, strlen(id)) == 0;
}

/* Campaign milestones (dedup.h step 5) with milestones 2,3 and two distinct authors needed:
 * each milestone is claimed by exactly one post, a replay of the claiming post claims it
 * again, and a cluster with one author claims nothing. */
static int check_campaign(dedup_store_t *store)
{
    dedup_campaign_t camp;
    if (dedup_campaign_parse("2, 3", 2, &camp, NULL) != 0)
        return fprintf(stderr, "parse failed\n"), 1;
    dedup_campaign_set(store, &camp);
    dedup_item_t items[NSAMPLES];
    fingerprint_t fps[NSAMPLES];
    dedup_result_t r[NSAMPLES];
    make_items(items, fps);
    if (dedup_batch_check(store, items, 3, r) != 0)
        return fprintf(stderr, "batch 1 failed\n"), 1;
    /* samples of batch 1 are only valid until the next call: check them now */
    int bad = 0;
    EXPECT(r[0].milestones == 0 && r[0].nsamples == 0);
    EXPECT(r[1].milestones == 1u && r[1].nsamples == 2);
    EXPECT(sample_is(&r[1], 0, "p1") && sample_is(&r[1], 1, "p2"));
    EXPECT(r[2].milestones == 2u && r[2].nsamples == 3 && sample_is(&r[2], 2, "p3"));
    if (dedup_batch_check(store, items + 3, NSAMPLES - 3, r + 3) != 0)
        return fprintf(stderr, "batch 2 failed\n"), 1;
    EXPECT(r[3].milestones == 0);                 /* p4: a new cluster */
    EXPECT(r[4].replay && r[4].milestones == 1u); /* p2 again: its claim, again */
    EXPECT(r[4].nsamples == 3 && sample_is(&r[4], 0, "p1"));
    EXPECT(r[5].milestones == 0);                    /* p5: both milestones taken */
    EXPECT(r[6].count == 2 && r[6].milestones == 0); /* one author only */
    return bad;
}

/* Posts too short to have a signature (nbands = 0) mixed with signed ones, with verification
 * on: unsigned posts cluster by their exact hash alone and never take part in a signature
 * comparison, in every store (the stores compare signatures with fingerprint.c's helpers). */
static int check_unsigned(dedup_store_t *store)
{
    static const sample_t posts[] = {
        {"u1", "alice", "ok", 10},
        {"s1", "bob", "win a free phone today click the link and claim it now", 11},
        {"u2", "carol", "ok!!", 12},
        {"u3", "dave", "ok", 20},
        {"s2", "erin", "win a free phone today just click the link and claim it now", 21},
        {"u4", "frank", "fine", 22},
    };
    enum { NPOSTS = sizeof(posts) / sizeof(posts[0]) };
    dedup_item_t items[NPOSTS];
    fingerprint_t fps[NPOSTS];
    dedup_result_t r[NPOSTS];
    for (size_t i = 0; i < NPOSTS; i++) {
        fingerprint_compute(posts[i].text, strlen(posts[i].text), &fps[i]);
        items[i] = (dedup_item_t){posts[i].id,     strlen(posts[i].id),
                                  posts[i].author, strlen(posts[i].author),
                                  posts[i].ts,     &fps[i]};
        if ((posts[i].id[0] == 'u') != (fps[i].nbands == 0))
            return fprintf(stderr, "%s: unexpected nbands %u\n", posts[i].id, fps[i].nbands), 1;
    }
    dedup_verify_set(store, 50);
    if (dedup_batch_check(store, items, 3, r) != 0)
        return fprintf(stderr, "batch 1 failed\n"), 1;
    if (dedup_batch_check(store, items + 3, NPOSTS - 3, r + 3) != 0)
        return fprintf(stderr, "batch 2 failed\n"), 1;
    int bad = 0;
    for (size_t i = 0; i < NPOSTS; i++)
        EXPECT(r[i].available);
    EXPECT(r[0].count == 1 && r[0].cluster == fps[0].exact);
    EXPECT(r[1].count == 1 && r[1].cluster != r[0].cluster);
    EXPECT(r[2].cluster == r[0].cluster && r[2].count == 2);
    EXPECT(r[3].cluster == r[0].cluster && r[3].count == 3 && r[3].authors == 3);
    EXPECT(r[4].cluster == r[1].cluster && r[4].count == 2); /* verified band match */
    EXPECT(r[5].cluster != r[0].cluster && r[5].cluster != r[1].cluster && r[5].count == 1);
    return bad;
}

TW_TEST(campaign_milestones_parse)
{
    dedup_campaign_t c;
    TW_ASSERT_INT_EQ(dedup_campaign_parse("10,100,1000", 3, &c, NULL), 0);
    TW_ASSERT_INT_EQ(c.nmilestones, 3);
    TW_ASSERT_INT_EQ(c.milestones[2], 1000);
    TW_ASSERT_INT_EQ(c.min_authors, 3);
    TW_ASSERT_INT_EQ(dedup_campaign_parse("", 1, &c, NULL), 0);
    TW_ASSERT_INT_EQ(c.nmilestones, 0);
    TW_ASSERT(dedup_campaign_parse("10,5", 1, &c, NULL) != 0);
    TW_ASSERT(dedup_campaign_parse("0", 1, &c, NULL) != 0);
    TW_ASSERT(dedup_campaign_parse("-3", 1, &c, NULL) != 0);
    TW_ASSERT(dedup_campaign_parse("10;20", 1, &c, NULL) != 0);
    TW_ASSERT(dedup_campaign_parse("1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17", 1, &c, NULL) != 0);
}

TW_TEST(memory_store_campaign_milestones)
{
    dedup_store_t *store;
    TW_ASSERT_INT_EQ(dedup_memory_new(3600, 1000, &store), 0);
    TW_ASSERT_INT_EQ(check_campaign(store), 0);
    dedup_store_free(store);
}

TW_TEST(memory_store_semantics)
{
    dedup_store_t *store;
    TW_ASSERT_INT_EQ(dedup_memory_new(3600, 1000, &store), 0);
    TW_ASSERT_INT_EQ(check_store(store), 0);
    dedup_store_free(store);
}

TW_TEST(memory_store_unsigned_posts)
{
    dedup_store_t *store;
    TW_ASSERT_INT_EQ(dedup_memory_new(3600, 1000, &store), 0);
    TW_ASSERT_INT_EQ(check_unsigned(store), 0);
    dedup_store_free(store);
}

TW_TEST(memory_store_stays_bounded)
{
    dedup_store_t *store;
    TW_ASSERT_INT_EQ(dedup_memory_new(3600, 64, &store), 0);
    char text[64], id[32];
    for (int i = 0; i < 5000; i++) {
        /* random letters, not digits: digit runs are folded away by the fingerprint */
        static uint64_t lcg = 42;
        size_t k = 0;
        for (int w = 0; w < 6; w++) {
            for (int c = 0; c < 6; c++) {
                lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
                text[k++] = (char)('a' + (lcg >> 33) % 26);
            }
            text[k++] = ' ';
        }
        text[k - 1] = '\0';
        snprintf(id, sizeof(id), "id%d", i);
        fingerprint_t fp;
        fingerprint_compute(text, strlen(text), &fp);
        dedup_item_t item = {id, strlen(id), "a", 1, i, &fp};
        dedup_result_t r;
        TW_ASSERT_INT_EQ(dedup_batch_check(store, &item, 1, &r), 0);
        TW_ASSERT(r.available);
    }
    dedup_store_free(store);
}

TW_TEST(redis_store_matches_memory_store)
{
    if (system("command -v redis-server >/dev/null 2>&1") != 0) {
        TW_SKIP("redis-server is not installed");
    }
    int port;
    pid_t pid = tw_redis_start(&port);
    TW_ASSERT(pid > 0);
    int ready = 0;
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/3", port);
    dedup_store_t *store = NULL;
    int rc = ready == 0 ? dedup_redis_new(url, 3600, 2000, &store, NULL) : -1;
    int semantics = rc == 0 ? check_store(store) : -1;
    /* the same campaign checks against Redis, in another database */
    char url4[64];
    snprintf(url4, sizeof(url4), "redis://127.0.0.1:%d/4", port);
    dedup_store_t *store4 = NULL;
    int rc4 = ready == 0 ? dedup_redis_new(url4, 3600, 2000, &store4, NULL) : -1;
    int campaign = rc4 == 0 ? check_campaign(store4) : -1;
    dedup_store_free(store4);
    char url5[64];
    snprintf(url5, sizeof(url5), "redis://127.0.0.1:%d/5", port);
    dedup_store_t *store5 = NULL;
    int rc5 = ready == 0 ? dedup_redis_new(url5, 3600, 2000, &store5, NULL) : -1;
    int unsigned_posts = rc5 == 0 ? check_unsigned(store5) : -1;
    dedup_store_free(store5);

    /* Redis going away costs duplicate information, never a crash or a hang */
    int down_rc = 0, down_available = 1;
    if (rc == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        pid = 0;
        fingerprint_t fp;
        fingerprint_compute("after the outage", 16, &fp);
        dedup_item_t item = {"late", 4, "x", 1, 1, &fp};
        dedup_result_t r;
        down_rc = dedup_batch_check(store, &item, 1, &r);
        down_available = r.available;
    }
    dedup_store_free(store);
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    TW_ASSERT_INT_EQ(ready, 0);
    TW_ASSERT_INT_EQ(rc, 0);
    TW_ASSERT_INT_EQ(semantics, 0);
    TW_ASSERT_INT_EQ(rc4, 0);
    TW_ASSERT_INT_EQ(campaign, 0);
    TW_ASSERT_INT_EQ(rc5, 0);
    TW_ASSERT_INT_EQ(unsigned_posts, 0);
    TW_ASSERT(down_rc != 0);
    TW_ASSERT_INT_EQ(down_available, 0);
}

/* ---- Redis Cluster: three masters on free loopback ports ------------------------------- */

#define CLUSTER_NODES 3

typedef struct {
    int ports[CLUSTER_NODES];
    pid_t pids[CLUSTER_NODES];
    char dir[64];
} test_cluster_t;

static bool port_bindable(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* A free port whose cluster bus port (port + 10000) is free and below 65536 as well. */
static int cluster_port(void)
{
    for (int tries = 0; tries < 200; tries++) {
        int port = tw_redis_free_port();
        if (port > 0 && port + 10000 < 65536 && port_bindable(port + 10000))
            return port;
    }
    return -1;
}

static redisReply *node_cmd(int port, const char *fmt, ...)
{
    struct timeval tv = {5, 0};
    redisContext *ctx = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!ctx || ctx->err) {
        redisFree(ctx);
        return NULL;
    }
    redisSetTimeout(ctx, tv);
    va_list ap;
    va_start(ap, fmt);
    redisReply *reply = redisvCommand(ctx, fmt, ap);
    va_end(ap);
    redisFree(ctx);
    return reply;
}

static bool node_ok(int port, const char *fmt, ...)
{
    struct timeval tv = {5, 0};
    redisContext *ctx = redisConnectWithTimeout("127.0.0.1", port, tv);
    bool ok = ctx && !ctx->err;
    if (ok) {
        va_list ap;
        va_start(ap, fmt);
        redisReply *reply = redisvCommand(ctx, fmt, ap);
        va_end(ap);
        ok = reply && reply->type != REDIS_REPLY_ERROR;
        if (reply && reply->type == REDIS_REPLY_ERROR)
            fprintf(stderr, "  redis %d: %s\n", port, reply->str);
        freeReplyObject(reply);
    }
    redisFree(ctx);
    return ok;
}

/* Every node says cluster_state:ok and sees all three masters' slot ranges. */
static bool cluster_ready(const test_cluster_t *tc)
{
    for (int i = 0; i < CLUSTER_NODES; i++) {
        redisReply *info = node_cmd(tc->ports[i], "CLUSTER INFO");
        bool ok = info && info->type == REDIS_REPLY_STRING && strstr(info->str, "cluster_state:ok");
        freeReplyObject(info);
        redisReply *slots = ok ? node_cmd(tc->ports[i], "CLUSTER SLOTS") : NULL;
        ok = slots && slots->type == REDIS_REPLY_ARRAY && slots->elements == CLUSTER_NODES;
        freeReplyObject(slots);
        if (!ok)
            return false;
    }
    return true;
}

static void cluster_stop(test_cluster_t *tc)
{
    for (int i = 0; i < CLUSTER_NODES; i++) {
        if (tc->pids[i] > 0) {
            kill(tc->pids[i], SIGKILL);
            waitpid(tc->pids[i], NULL, 0);
            tc->pids[i] = 0;
        }
    }
    if (tc->dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tc->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "  could not remove %s\n", tc->dir);
        tc->dir[0] = '\0';
    }
}

static int cluster_start(test_cluster_t *tc)
{
    memset(tc, 0, sizeof(*tc));
    snprintf(tc->dir, sizeof(tc->dir), "/tmp/tw-cluster-XXXXXX");
    if (!mkdtemp(tc->dir)) {
        tc->dir[0] = '\0';
        return -1;
    }
    for (int i = 0; i < CLUSTER_NODES; i++) {
        tc->ports[i] = cluster_port();
        if (tc->ports[i] < 0)
            return -1;
        char port[16], conf[128];
        snprintf(port, sizeof(port), "%d", tc->ports[i]);
        snprintf(conf, sizeof(conf), "%s/nodes-%d.conf", tc->dir, tc->ports[i]);
        pid_t pid = fork();
        if (pid < 0)
            return -1;
        if (pid == 0) {
            execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save",
                   "", "--appendonly", "no", "--cluster-enabled", "yes", "--cluster-config-file",
                   conf, "--dir", tc->dir, "--loglevel", "warning", "--logfile", "redis.log",
                   (char *)NULL);
            _exit(127);
        }
        tc->pids[i] = pid;
    }
    for (int i = 0; i < CLUSTER_NODES; i++)
        if (tw_redis_wait_port(tc->ports[i], 10000) != 0)
            return fprintf(stderr, "  redis-server on port %d did not start\n", tc->ports[i]), -1;
    char cmd[256];
    snprintf(cmd, sizeof(cmd),
             "redis-cli --cluster create 127.0.0.1:%d 127.0.0.1:%d 127.0.0.1:%d --cluster-yes "
             ">%s/create.log 2>&1",
             tc->ports[0], tc->ports[1], tc->ports[2], tc->dir);
    if (system(cmd) != 0)
        return fprintf(stderr, "  redis-cli --cluster create failed (%s/create.log)\n", tc->dir),
               -1;
    for (int waited = 0; waited < 20000; waited += 50) {
        if (cluster_ready(tc))
            return 0;
        struct timespec tick = {0, 50 * 1000 * 1000};
        nanosleep(&tick, NULL);
    }
    return fprintf(stderr, "  the cluster did not reach cluster_state:ok\n"), -1;
}

static void cluster_flush(const test_cluster_t *tc)
{
    for (int i = 0; i < CLUSTER_NODES; i++)
        node_ok(tc->ports[i], "FLUSHALL");
}

/* Index of the node serving slot (CLUSTER SLOTS of node 0), -1 if none. */
static int cluster_owner(const test_cluster_t *tc, int slot)
{
    redisReply *slots = node_cmd(tc->ports[0], "CLUSTER SLOTS");
    int owner = -1;
    for (size_t r = 0; slots && slots->type == REDIS_REPLY_ARRAY && r < slots->elements; r++) {
        redisReply *range = slots->element[r];
        if (range->element[0]->integer <= slot && slot <= range->element[1]->integer)
            for (int i = 0; i < CLUSTER_NODES; i++)
                if (tc->ports[i] == range->element[2]->element[1]->integer)
                    owner = i;
    }
    freeReplyObject(slots);
    return owner;
}

static void node_id(int port, char id[64])
{
    redisReply *reply = node_cmd(port, "CLUSTER MYID");
    snprintf(id, 64, "%s", reply && reply->type == REDIS_REPLY_STRING ? reply->str : "?");
    freeReplyObject(reply);
}

/* Moves one slot from node a to node b while the store works: before the first batch the slot
 * is MIGRATING on a and IMPORTING on b (new keys: ASK to b); between the batches the move is
 * finished (the store's map is stale: MOVED). */
typedef struct {
    const test_cluster_t *tc;
    int slot, a, b;
    bool ok;
} migration_t;

static void migrate_hook(void *arg, bool before)
{
    migration_t *m = arg;
    char ida[64], idb[64];
    node_id(m->tc->ports[m->a], ida);
    node_id(m->tc->ports[m->b], idb);
    int pa = m->tc->ports[m->a], pb = m->tc->ports[m->b];
    if (before) {
        m->ok = node_ok(pb, "CLUSTER SETSLOT %d IMPORTING %s", m->slot, ida) &&
                node_ok(pa, "CLUSTER SETSLOT %d MIGRATING %s", m->slot, idb);
        return;
    }
    redisReply *keys = node_cmd(pa, "CLUSTER GETKEYSINSLOT %d 1000", m->slot);
    for (size_t k = 0; keys && keys->type == REDIS_REPLY_ARRAY && k < keys->elements; k++)
        m->ok &= node_ok(pa, "MIGRATE 127.0.0.1 %d %b 0 5000", pb, keys->element[k]->str,
                         keys->element[k]->len);
    freeReplyObject(keys);
    for (int i = 0; i < CLUSTER_NODES; i++) {
        int order = i == 0 ? m->b : i == 1 ? m->a : 3 - m->a - m->b;
        m->ok &= node_ok(m->tc->ports[order], "CLUSTER SETSLOT %d NODE %s", m->slot, idb);
    }
}

/* Rewrites the signature in the singleton record of exact field `exact`, wherever a key of
 * pattern holds it on ports: "old" = the 16-bit little-endian entries versions before the
 * one-byte form stored (low byte kept, a made-up high byte), "odd" = 7 bytes (unreadable).
 * Returns the records rewritten. */
static int rewrite_record_sig(const int *ports, int nports, const char *pattern, uint64_t exact,
                              const char *mode)
{
    static const char *script =
        "local v = redis.call('HGET', KEYS[1], ARGV[1]) "
        "if not v or #v <= 8 then return 0 end "
        "local ts, a, s, p = cmsgpack.unpack(string.sub(v, 9)) "
        "if ARGV[2] == 'old' then "
        "  local t = {} "
        "  for k = 1, #s do t[k] = string.sub(s, k, k) .. string.char((k * 37) % 256) end "
        "  s = table.concat(t) "
        "else s = string.sub(s, 1, 7) end "
        "redis.call('HSET', KEYS[1], ARGV[1], string.sub(v, 1, 8) .. cmsgpack.pack(ts, a, s, p)) "
        "return 1";
    unsigned char field[8];
    for (int k = 0; k < 8; k++)
        field[k] = (unsigned char)(exact >> (56 - 8 * k));
    int rewritten = 0;
    for (int i = 0; i < nports; i++) {
        redisReply *keys = node_cmd(ports[i], "KEYS %s", pattern);
        for (size_t k = 0; keys && keys->type == REDIS_REPLY_ARRAY && k < keys->elements; k++) {
            redisReply *r = node_cmd(ports[i], "EVAL %s 1 %b %b %s", script, keys->element[k]->str,
                                     keys->element[k]->len, field, sizeof(field), mode);
            rewritten += r && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : 0;
            freeReplyObject(r);
        }
        freeReplyObject(keys);
    }
    return rewritten;
}

/* Records written before signatures were stored one byte per entry keep 16-bit entries: they
 * are still checked (on their low bytes), not trusted blindly; a signature of a length no
 * version wrote cannot be checked and is trusted, as a cluster without one. p3 is a near copy
 * of p1 (Jaccard ~0.85): it joins at 50 % and, checked, not at 100 %. flush empties the
 * servers between the cases. */
static int check_old_signatures(const char *url, const int *ports, int nports, const char *pattern,
                                void (*flush)(const int *, int))
{
    static const struct {
        const char *mode;
        unsigned verify_pct;
        uint64_t expect_count;
    } cases[] = {{"old", 50, 2}, {"old", 100, 1}, {"odd", 100, 2}};
    int bad = 0;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        flush(ports, nports);
        dedup_store_t *store = NULL;
        if (dedup_redis_new(url, 3600, 2000, &store, NULL) != 0)
            return fprintf(stderr, "  store failed\n"), 1;
        dedup_verify_set(store, cases[c].verify_pct);
        dedup_item_t items[NSAMPLES];
        fingerprint_t fps[NSAMPLES];
        make_items(items, fps);
        dedup_result_t r;
        EXPECT(dedup_batch_check(store, &items[0], 1, &r) == 0 && r.count == 1);
        EXPECT(rewrite_record_sig(ports, nports, pattern, fps[0].exact, cases[c].mode) == 1);
        EXPECT(dedup_batch_check(store, &items[2], 1, &r) == 0);
        if (r.count != cases[c].expect_count)
            fprintf(stderr, "  %s signature, verify %u %%: count %llu\n", cases[c].mode,
                    cases[c].verify_pct, (unsigned long long)r.count);
        EXPECT(r.count == cases[c].expect_count);
        EXPECT((r.cluster == fps[0].exact) == (cases[c].expect_count == 2));
        dedup_store_free(store);
    }
    return bad;
}

static void flush_nodes(const int *ports, int nports)
{
    for (int i = 0; i < nports; i++)
        node_ok(ports[i], "FLUSHALL");
}

static int check_cluster_layout(const test_cluster_t *tc, const char *url);

TW_TEST(redis_cluster_store_matches_memory_store)
{
    if (system("command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1") !=
        0) {
        TW_SKIP("redis-server or redis-cli is not installed");
    }
    test_cluster_t tc;
    int up = cluster_start(&tc);
    char url[128];
    snprintf(url, sizeof(url), "redis+cluster://127.0.0.1:%d,127.0.0.1:%d", tc.ports[1],
             tc.ports[2]);
    int semantics = -1, campaign = -1, unsigned_posts = -1, layout = -1, old_sigs = -1,
        migrated = -1, down_rc = 0, down_available = 1;
    bool migration_ok = false;
    uint64_t moved = 0, ask = 0;
    if (up == 0) {
        dedup_store_t *store = NULL;
        if (dedup_redis_new(url, 3600, 2000, &store, NULL) == 0) {
            dedup_verify_set(store, 50);
            semantics = check_store(store);
        }
        dedup_store_free(store);

        cluster_flush(&tc);
        store = NULL;
        if (dedup_redis_new(url, 3600, 2000, &store, NULL) == 0)
            campaign = check_campaign(store);
        dedup_store_free(store);

        cluster_flush(&tc);
        store = NULL;
        if (dedup_redis_new(url, 3600, 2000, &store, NULL) == 0)
            unsigned_posts = check_unsigned(store);
        dedup_store_free(store);

        cluster_flush(&tc);
        layout = check_cluster_layout(&tc, url);
        old_sigs = check_old_signatures(url, tc.ports, CLUSTER_NODES, "tw:i:*", flush_nodes);

        /* the slot of the index shard of the first sample's exact field (tw:i:<epoch>:{shard},
         * one slot for every epoch) moves from its owner to the next node. (Not a cluster's own
         * keys: Redis answers a multi-key script on a slot in migration TRYAGAIN while some of
         * its keys are missing, until the move is finished.) */
        cluster_flush(&tc);
        fingerprint_t fp;
        fingerprint_compute(samples[0].text, strlen(samples[0].text), &fp);
        char key[32];
        snprintf(key, sizeof(key), "{%u}", dedup_cluster_index_shard(fp.exact));
        migration_t m = {&tc, redis_cluster_slot(key, strlen(key)), 0, 0, false};
        m.a = cluster_owner(&tc, m.slot);
        m.b = (m.a + 1) % CLUSTER_NODES;
        store = NULL;
        if (m.a >= 0 && dedup_redis_new(url, 3600, 2000, &store, NULL) == 0) {
            /* load the slot map first, with a post of its own */
            fingerprint_t warm;
            fingerprint_compute("an unrelated warm up post", 25, &warm);
            dedup_item_t item = {"warm", 4, "w", 1, 1, &warm};
            dedup_result_t r;
            if (dedup_batch_check(store, &item, 1, &r) == 0)
                migrated = check_store_hooked(store, migrate_hook, &m);
            dedup_redis_redirections(store, &moved, &ask);
            migration_ok = m.ok;
        }

        /* the whole cluster gone: an error and unavailable results, never a hang */
        cluster_stop(&tc);
        if (store) {
            fingerprint_compute("after the outage", 16, &fp);
            dedup_item_t item = {"late", 4, "x", 1, 1, &fp};
            dedup_result_t r;
            down_rc = dedup_batch_check(store, &item, 1, &r);
            down_available = r.available;
        }
        dedup_store_free(store);
    }
    cluster_stop(&tc);
    TW_ASSERT_INT_EQ(up, 0);
    TW_ASSERT_INT_EQ(semantics, 0);
    TW_ASSERT_INT_EQ(campaign, 0);
    TW_ASSERT_INT_EQ(unsigned_posts, 0);
    TW_ASSERT_INT_EQ(layout, 0);
    TW_ASSERT_INT_EQ(old_sigs, 0);
    TW_ASSERT(migration_ok);
    TW_ASSERT_INT_EQ(migrated, 0);
    TW_ASSERT(ask > 0);
    TW_ASSERT(moved > 0);
    TW_ASSERT(down_rc != 0);
    TW_ASSERT_INT_EQ(down_available, 0);
}

/* Keys of database 0 whose name starts with prefix. */
static long count_keys(int port, const char *prefix)
{
    redisReply *reply = node_cmd(port, "KEYS %s*", prefix);
    long n = reply && reply->type == REDIS_REPLY_ARRAY ? (long)reply->elements : -1;
    freeReplyObject(reply);
    return n;
}

static long long key_ttl(int port, const char *key, size_t len)
{
    redisReply *reply = node_cmd(port, "TTL %b", key, len);
    long long ttl = reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -3;
    freeReplyObject(reply);
    return ttl;
}

/* One sample post (index into samples) as a batch of one; its result in *r. */
static int check_one(dedup_store_t *store, size_t sample, dedup_result_t *r)
{
    dedup_item_t items[NSAMPLES];
    fingerprint_t fps[NSAMPLES];
    make_items(items, fps);
    return dedup_batch_check(store, &items[sample], 1, r);
}

/* Hands every slot of node dead (no longer running) to node heir, as the surviving nodes see it:
 * CLUSTER SETSLOT ... NODE on each, pipelined. The effect a replica's promotion has on the slot
 * map, without replicas. */
static bool cluster_hand_over(const test_cluster_t *tc, int dead, int heir)
{
    char heir_id[64];
    node_id(tc->ports[heir], heir_id);
    int live = 3 - dead - heir;
    redisReply *slots = node_cmd(tc->ports[heir], "CLUSTER SLOTS");
    bool ok = slots && slots->type == REDIS_REPLY_ARRAY;
    for (int n = 0; ok && n < 2; n++) {
        struct timeval tv = {5, 0};
        redisContext *ctx =
            redisConnectWithTimeout("127.0.0.1", tc->ports[n == 0 ? heir : live], tv);
        ok = ctx && !ctx->err;
        size_t sent = 0;
        for (size_t r = 0; ok && r < slots->elements; r++) {
            const redisReply *range = slots->element[r];
            if (range->element[2]->element[1]->integer != tc->ports[dead])
                continue;
            for (long long s = range->element[0]->integer; s <= range->element[1]->integer; s++) {
                redisAppendCommand(ctx, "CLUSTER SETSLOT %lld NODE %s", s, heir_id);
                sent++;
            }
        }
        for (size_t k = 0; ok && k < sent; k++) {
            redisReply *reply = NULL;
            ok = redisGetReply(ctx, (void **)&reply) == REDIS_OK && reply &&
                 reply->type != REDIS_REPLY_ERROR;
            if (reply && reply->type == REDIS_REPLY_ERROR)
                fprintf(stderr, "  CLUSTER SETSLOT: %s\n", reply->str);
            freeReplyObject(reply);
        }
        ok = ok && sent > 0;
        redisFree(ctx);
    }
    freeReplyObject(slots);
    return ok;
}

/* A master dies and its slots pass to another node (as a replica's promotion does): the store
 * fails while the cluster still names the dead master, then follows the new map. Before, the
 * client kept a map naming the dead master once connecting to it had failed (no redirect can
 * come from a node that is not there), and failed for good. */
TW_TEST(redis_cluster_store_follows_a_dead_masters_slots)
{
    if (system("command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1") !=
        0) {
        TW_SKIP("redis-server or redis-cli is not installed");
    }
    test_cluster_t tc;
    int up = cluster_start(&tc);
    int before = -1, lost = 0, named_dead = 0, after = -1;
    bool available = false, handed_over = false;
    if (up == 0) {
        char url[128];
        snprintf(url, sizeof(url), "redis+cluster://127.0.0.1:%d,127.0.0.1:%d", tc.ports[1],
                 tc.ports[2]);
        /* the master of the first sample's exact key dies; the next node inherits its slots */
        fingerprint_t fp;
        fingerprint_compute(samples[0].text, strlen(samples[0].text), &fp);
        char hex[17], key[32];
        dedup_cluster_hex(fp.exact, hex);
        snprintf(key, sizeof(key), "tw:x:%s", hex);
        int dead = cluster_owner(&tc, redis_cluster_slot(key, strlen(key)));
        int heir = (dead + 1) % CLUSTER_NODES;
        dedup_store_t *store = NULL;
        dedup_result_t r;
        if (dead >= 0 && dedup_redis_new(url, 3600, 500, &store, NULL) == 0) {
            before = check_one(store, 0, &r); /* loads the map, connects to every master */
            kill(tc.pids[dead], SIGKILL);
            waitpid(tc.pids[dead], NULL, 0);
            tc.pids[dead] = 0;
            lost = check_one(store, 0, &r);       /* the connection is gone */
            named_dead = check_one(store, 0, &r); /* the map reloaded still names it */
            handed_over = cluster_hand_over(&tc, dead, heir);
            after = check_one(store, 0, &r);
            available = r.available;
        }
        dedup_store_free(store);
    }
    cluster_stop(&tc);
    TW_ASSERT_INT_EQ(up, 0);
    TW_ASSERT_INT_EQ(before, 0);
    TW_ASSERT(lost != 0);
    TW_ASSERT(named_dead != 0);
    TW_ASSERT(handed_over);
    TW_ASSERT_INT_EQ(after, 0);
    TW_ASSERT(available);
}

/* The single-server layout (docs/DEDUP.md, "Layout"): a singleton leaves no cluster keys, only
 * fields of the time-bucketed index hash, and is still recognised when replayed; the second
 * post creates the cluster's hash, members and authors, which expire window_s after their last
 * update; the index hash expires at most an epoch (window / 2) later; a flushed script cache is
 * refilled (NOSCRIPT fallback); milestone 1 is claimed by a cluster's first post. */
/* Milestone 1 on an empty store at url (either layout): claimed by the first post of a cluster,
 * again by its replay, by nobody else. Returns 0 or 1 (said why on stderr). */
static int check_milestone_one(const char *url, const fingerprint_t *fps)
{
    dedup_campaign_t camp;
    dedup_store_t *store = NULL;
    if (dedup_campaign_parse("1,2", 1, &camp, NULL) != 0 ||
        dedup_redis_new(url, 3600, 2000, &store, NULL) != 0)
        return fprintf(stderr, "  store failed\n"), 1;
    dedup_campaign_set(store, &camp);
    dedup_result_t r;
    int bad = 0;
    EXPECT(check_one(store, 0, &r) == 0);
    EXPECT(r.count == 1 && r.milestones == 1u && r.nsamples == 1 && sample_is(&r, 0, "p1"));
    EXPECT(check_one(store, 0, &r) == 0);
    EXPECT(r.replay && r.milestones == 1u);
    EXPECT(check_one(store, 1, &r) == 0);
    EXPECT(r.count == 2 && r.milestones == 2u && r.nsamples == 2);
    EXPECT(check_one(store, 3, &r) == 0); /* p4: another cluster, milestone 1 again */
    EXPECT(r.count == 1 && r.milestones == 1u && r.cluster == fps[3].exact);
    dedup_store_free(store);
    return bad;
}

static int check_layout(int port)
{
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", port);
    dedup_store_t *store = NULL;
    if (dedup_redis_new(url, 3600, 2000, &store, NULL) != 0)
        return fprintf(stderr, "  store failed\n"), 1;
    dedup_result_t r;
    int bad = 0;
    dedup_item_t items[NSAMPLES];
    fingerprint_t fps[NSAMPLES];
    make_items(items, fps);
    dedup_result_t rs[2];
    dedup_item_t singles[2] = {items[0], items[3]}; /* p1, p4: unrelated */
    EXPECT(dedup_batch_check(store, singles, 2, rs) == 0);
    EXPECT(rs[0].count == 1 && rs[1].count == 1 && rs[0].authors == 1 && !rs[0].replay);
    EXPECT(count_keys(port, "tw:c:") == 0);
    long index_keys = count_keys(port, "tw:i:");
    EXPECT(index_keys >= 1 && index_keys <= 2); /* two when the batch straddles an epoch */
    /* a replay of a singleton's post is recognised without any cluster keys */
    EXPECT(check_one(store, 0, &r) == 0);
    EXPECT(r.replay && r.count == 1 && r.authors == 1 && r.first_seen == 100);
    EXPECT(r.cluster == fps[0].exact && count_keys(port, "tw:c:") == 0);
    /* the second post creates the cluster's hash, members and authors */
    EXPECT(check_one(store, 1, &r) == 0);
    EXPECT(!r.replay && r.count == 2 && r.authors == 2 && r.cluster == fps[0].exact);
    EXPECT(r.first_seen == 100 && r.last_seen == 110);
    EXPECT(count_keys(port, "tw:c:") == 3);
    char ckey[16] = "tw:c:";
    for (int i = 0; i < 8; i++)
        ckey[5 + i] = (char)(fps[0].exact >> (56 - 8 * i));
    long long ttl = key_ttl(port, ckey, 13);
    EXPECT(ttl > 3500 && ttl <= 3600);
    redisReply *keys = node_cmd(port, "KEYS tw:i:*");
    for (size_t i = 0; keys && i < keys->elements; i++) {
        ttl = key_ttl(port, keys->element[i]->str, keys->element[i]->len);
        EXPECT(ttl > 3500 && ttl <= 3600 + 1800);
    }
    freeReplyObject(keys);
    /* the first post replayed again: now a member of the cluster's hash */
    EXPECT(check_one(store, 0, &r) == 0);
    EXPECT(r.replay && r.count == 2 && r.cluster == fps[0].exact);
    /* a server that lost its scripts gets the body once */
    EXPECT(node_ok(port, "SCRIPT FLUSH"));
    EXPECT(check_one(store, 2, &r) == 0);
    EXPECT(r.available && r.count == 3 && r.authors == 3 && r.cluster == fps[0].exact);
    dedup_store_free(store);

    EXPECT(node_ok(port, "FLUSHALL"));
    bad |= check_milestone_one(url, fps);
    return bad;
}

/* Keys whose name starts with prefix, over the cluster's three masters. */
static long cluster_count_keys(const test_cluster_t *tc, const char *prefix)
{
    long total = 0;
    for (int i = 0; i < CLUSTER_NODES; i++) {
        long n = count_keys(tc->ports[i], prefix);
        if (n < 0)
            return -1;
        total += n;
    }
    return total;
}

/* TTL of key on whichever master holds it; -3 when none answers. */
static long long cluster_key_ttl(const test_cluster_t *tc, const char *key)
{
    for (int i = 0; i < CLUSTER_NODES; i++) {
        long long ttl = key_ttl(tc->ports[i], key, strlen(key));
        if (ttl != -2 && ttl != -3)
            return ttl;
    }
    return -3;
}

/* Sleeps until the wall clock is `frac` of a second past a whole second. */
static void sleep_to_second(double frac)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double wait = 1.0 - now.tv_nsec / 1e9 + frac;
    struct timespec tick = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
    nanosleep(&tick, NULL);
}

/* The Redis Cluster layout (docs/DEDUP.md): a singleton leaves no cluster keys, only fields of
 * the sharded epoch index, is recognised when replayed, and its record is the single server's
 * msgpack (cmsgpack reads it); a second post in a later batch creates the cluster's hash,
 * members and authors from the record; a flushed script cache is refilled; milestone 1 is
 * claimed by a cluster's first post; an entry found in the previous epoch is carried into the
 * next one, and everything is gone once the window and an epoch have passed. */
static int check_cluster_layout(const test_cluster_t *tc, const char *url)
{
    dedup_store_t *store = NULL;
    if (dedup_redis_new(url, 3600, 2000, &store, NULL) != 0)
        return fprintf(stderr, "  store failed\n"), 1;
    dedup_verify_set(store, 50);
    dedup_result_t r;
    int bad = 0;
    dedup_item_t items[NSAMPLES];
    fingerprint_t fps[NSAMPLES];
    make_items(items, fps);
    dedup_result_t rs[2];
    dedup_item_t singles[2] = {items[0], items[3]}; /* p1, p4: unrelated */
    EXPECT(dedup_batch_check(store, singles, 2, rs) == 0);
    EXPECT(rs[0].count == 1 && rs[1].count == 1 && rs[0].authors == 1 && !rs[0].replay);
    EXPECT(cluster_count_keys(tc, "tw:c:") == 0);
    long index_keys = cluster_count_keys(tc, "tw:i:");
    /* at most one shard key per field: 2 posts x (exact + bands), in at most 2 epochs */
    EXPECT(index_keys >= 1 && index_keys <= 2 * 2 * (1 + DEDUP_INDEX_BANDS));
    /* p4's record, read by Lua's cmsgpack as batch.lua reads it */
    char pattern[64];
    snprintf(pattern, sizeof(pattern), "tw:i:*:{%u}", dedup_cluster_index_shard(fps[3].exact));
    bool decoded = false;
    for (int i = 0; i < CLUSTER_NODES && !decoded; i++) {
        redisReply *keys = node_cmd(tc->ports[i], "KEYS %s", pattern);
        if (keys && keys->type == REDIS_REPLY_ARRAY && keys->elements > 0) {
            unsigned char field[8];
            for (int k = 0; k < 8; k++)
                field[k] = (unsigned char)(fps[3].exact >> (56 - 8 * k));
            redisReply *rec =
                node_cmd(tc->ports[i], "EVAL %s 1 %s %b",
                         "local v = redis.call('HGET', KEYS[1], ARGV[1]) "
                         "local ts, a, s, p = cmsgpack.unpack(string.sub(v, 9)) "
                         "return {string.sub(v, 1, 8) == ARGV[1] and 1 or 0, ts, a, #s, p}",
                         keys->element[0]->str, field, sizeof(field));
            decoded = rec && rec->type == REDIS_REPLY_ARRAY && rec->elements == 5 &&
                      rec->element[0]->integer == 1 && rec->element[1]->integer == 120 &&
                      strcmp(rec->element[2]->str, "dave") == 0 &&
                      rec->element[3]->integer == FINGERPRINT_SIG_BYTES &&
                      strcmp(rec->element[4]->str, "p4") == 0;
            if (!decoded && rec && rec->type == REDIS_REPLY_ERROR)
                fprintf(stderr, "  record: %s\n", rec->str);
            freeReplyObject(rec);
        }
        freeReplyObject(keys);
    }
    EXPECT(decoded);
    /* a replay of a singleton's post is recognised without any cluster keys */
    EXPECT(check_one(store, 0, &r) == 0);
    EXPECT(r.replay && r.count == 1 && r.authors == 1 && r.first_seen == 100);
    EXPECT(r.cluster == fps[0].exact && cluster_count_keys(tc, "tw:c:") == 0);
    /* the second post, in a later batch, creates the cluster's hash, members and authors */
    EXPECT(check_one(store, 1, &r) == 0);
    EXPECT(!r.replay && r.count == 2 && r.authors == 2 && r.cluster == fps[0].exact);
    EXPECT(r.first_seen == 100 && r.last_seen == 110);
    EXPECT(cluster_count_keys(tc, "tw:c:") == 3);
    char hex[17], ckey[40];
    dedup_cluster_hex(fps[0].exact, hex);
    snprintf(ckey, sizeof(ckey), "tw:c:{%s}", hex);
    long long ttl = cluster_key_ttl(tc, ckey);
    EXPECT(ttl > 3500 && ttl <= 3600);
    for (int i = 0; i < CLUSTER_NODES; i++) {
        redisReply *keys = node_cmd(tc->ports[i], "KEYS tw:i:*");
        for (size_t k = 0; keys && k < keys->elements; k++) {
            ttl = key_ttl(tc->ports[i], keys->element[k]->str, keys->element[k]->len);
            EXPECT(ttl > 3500 && ttl <= 3600 + 1800);
        }
        freeReplyObject(keys);
    }
    /* the first post replayed again: now a member of the cluster's hash */
    EXPECT(check_one(store, 0, &r) == 0);
    EXPECT(r.replay && r.count == 2 && r.cluster == fps[0].exact);
    /* masters that lost their scripts get the body once */
    for (int i = 0; i < CLUSTER_NODES; i++)
        EXPECT(node_ok(tc->ports[i], "SCRIPT FLUSH"));
    EXPECT(check_one(store, 2, &r) == 0);
    EXPECT(r.available && r.count == 3 && r.authors == 3 && r.cluster == fps[0].exact);
    /* the second post of p4's singleton in the same batch as a third: counted once each */
    dedup_item_t joins[2] = {items[6], items[6]};
    joins[1].post_id = "p7";
    joins[1].post_id_len = 2;
    dedup_result_t rj[2];
    EXPECT(dedup_batch_check(store, joins, 2, rj) == 0);
    EXPECT(rj[0].cluster == fps[3].exact && rj[0].count == 2 && rj[0].authors == 1);
    EXPECT(rj[1].cluster == fps[3].exact && rj[1].count == 3 && !rj[1].replay);
    dedup_store_free(store);

    cluster_flush(tc);
    bad |= check_milestone_one(url, fps);

    /* a promotion whose script never ran (its round failed after the index writes): the
     * record stays in the cluster's field, so the next post promotes it again and the
     * record's post is counted */
    cluster_flush(tc);
    store = NULL;
    if (dedup_redis_new(url, 3600, 2000, &store, NULL) != 0)
        return fprintf(stderr, "  store failed\n"), 1;
    EXPECT(check_one(store, 0, &r) == 0);
    EXPECT(check_one(store, 1, &r) == 0);
    EXPECT(r.count == 2);
    for (int i = 0; i < CLUSTER_NODES; i++) {
        redisReply *keys = node_cmd(tc->ports[i], "KEYS tw:c:*");
        for (size_t k = 0; keys && k < keys->elements; k++)
            EXPECT(node_ok(tc->ports[i], "DEL %b", keys->element[k]->str, keys->element[k]->len));
        freeReplyObject(keys);
    }
    EXPECT(check_one(store, 2, &r) == 0); /* p3: p1 and p3 */
    EXPECT(r.count == 2 && r.authors == 2 && r.first_seen == 100 && r.cluster == fps[0].exact);
    EXPECT(check_one(store, 5, &r) == 0); /* p5: the hash is found, the field becomes a marker */
    EXPECT(r.count == 3 && r.authors == 3);
    EXPECT(check_one(store, 0, &r) == 0); /* p1's replay: a member */
    EXPECT(r.replay && r.count == 3);
    dedup_store_free(store);

    /* epoch turnover: window 3 s, epochs of 1 s (an odd window: four epochs live at once).
     * p1 written in epoch e lives until e + 1 + 3; p2, 3.4 s later, finds it in the oldest live
     * epoch and rewrites its fields into its own; once that epoch's end + the window has
     * passed, everything has expired and p3 starts a cluster of its own. */
    cluster_flush(tc);
    store = NULL;
    if (dedup_redis_new(url, 3, 2000, &store, NULL) != 0)
        return fprintf(stderr, "  store failed\n"), 1;
    sleep_to_second(0.1);
    time_t e = time(NULL);
    EXPECT(check_one(store, 0, &r) == 0);
    EXPECT(r.count == 1);
    sleep_to_second(0.5); /* e + 1.5 */
    sleep_to_second(0.5);
    sleep_to_second(0.5); /* e + 3.5 */
    time_t epoch = time(NULL);
    EXPECT(epoch == e + 3);
    EXPECT(check_one(store, 1, &r) == 0);
    EXPECT(r.count == 2 && r.cluster == fps[0].exact);
    char prefix[48];
    snprintf(prefix, sizeof(prefix), "tw:i:%lld:", (long long)epoch);
    if (time(NULL) == epoch)
        EXPECT(cluster_count_keys(tc, prefix) >= 1);
    for (int k = 0; k < 4; k++) /* e + 7.6: past e + 3 + 1 + 3 */
        sleep_to_second(0.6);
    EXPECT(cluster_count_keys(tc, "tw:") == 0);
    EXPECT(check_one(store, 2, &r) == 0);
    EXPECT(r.count == 1 && r.cluster == fps[2].exact && !r.replay);
    dedup_store_free(store);
    return bad;
}

TW_TEST(redis_store_layout)
{
    if (system("command -v redis-server >/dev/null 2>&1") != 0) {
        TW_SKIP("redis-server is not installed");
    }
    int port;
    pid_t pid = tw_redis_start(&port);
    TW_ASSERT(pid > 0);
    int ready = 0;
    int layout = ready == 0 ? check_layout(port) : -1;
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", port);
    int old_sigs = check_old_signatures(url, &port, 1, "tw:i:*", flush_nodes);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    TW_ASSERT_INT_EQ(ready, 0);
    TW_ASSERT_INT_EQ(layout, 0);
    TW_ASSERT_INT_EQ(old_sigs, 0);
}

/* Singleton records are the bytes batch.lua's cmsgpack.pack(ts, author, sig, pid) writes after
 * the cluster id (known answer), round-trip for every integer and string width, and decode
 * what cmsgpack may also write (a double time, bin strings); malformed values are refused. */
TW_TEST(singleton_record_encoding)
{
    buf_t b;
    buf_init(&b);
    dedup_record_encode(&b, 0x0102030405060708ULL, 1700000000, "u1", 2, "", 0, "p1", 2);
    static const unsigned char known[] = {1,    2,    3,    4,    5,   6,   7,    8,    0xce, 0x65,
                                          0x53, 0xf1, 0x00, 0xa2, 'u', '1', 0xa0, 0xa2, 'p',  '1'};
    TW_ASSERT_INT_EQ(b.len, sizeof(known));
    TW_ASSERT(memcmp(b.data, known, sizeof(known)) == 0);

    static const int64_t times[] = {
        0,  127, 128, 255,  256,  65535,  65536,  4294967295LL,  4294967296LL,  INT64_MAX,
        -1, -32, -33, -128, -129, -32768, -32769, -2147483648LL, -2147483649LL, INT64_MIN};
    static const size_t lens[] = {0, 31, 32, 255, 256, 65535, 65536};
    char *text = malloc(65536);
    TW_ASSERT(text != NULL);
    for (size_t k = 0; k < 65536; k++)
        text[k] = (char)('a' + k % 26);
    for (size_t t = 0; t < sizeof(times) / sizeof(times[0]); t++)
        for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
            buf_reset(&b);
            dedup_record_encode(&b, 42, times[t], text, lens[l], text + 1, lens[l] / 2, "id", 2);
            dedup_record_t rec;
            TW_ASSERT(!b.failed && dedup_record_decode(b.data, b.len, &rec));
            TW_ASSERT(rec.cluster == 42 && rec.ts == times[t]);
            TW_ASSERT(rec.author_len == lens[l] && memcmp(rec.author, text, lens[l]) == 0);
            TW_ASSERT(rec.sig_len == lens[l] / 2 && memcmp(rec.sig, text + 1, lens[l] / 2) == 0);
            TW_ASSERT(rec.pid_len == 2 && memcmp(rec.pid, "id", 2) == 0);
            TW_ASSERT(!dedup_record_decode(b.data, b.len - 1, &rec)); /* truncated */
        }
    free(text);
    /* 1700000000.0 as a double, the author as bin 8 */
    static const unsigned char other[] = {0,    0,    0,    0,    0,    0,    0,    7,
                                          0xcb, 0x41, 0xd9, 0x54, 0xfc, 0x40, 0x00, 0x00,
                                          0x00, 0xc4, 0x01, 'a',  0xa0, 0xa1, 'p'};
    dedup_record_t rec;
    TW_ASSERT(dedup_record_decode((const char *)other, sizeof(other), &rec));
    TW_ASSERT(rec.cluster == 7 && rec.ts == 1700000000 && rec.author_len == 1 && rec.pid_len == 1);
    TW_ASSERT(!dedup_record_decode((const char *)other, 8, &rec)); /* a cluster id alone */
    unsigned char bad[sizeof(other)];
    memcpy(bad, other, sizeof(other));
    bad[8] = 0xc0; /* nil is not a time */
    TW_ASSERT(!dedup_record_decode((const char *)bad, sizeof(bad), &rec));
    buf_fini(&b);
}

TW_TEST(redis_url_errors_are_reported)
{
    tw_diag_t diag;
    tw_diag_init(&diag);
    dedup_store_t *store = NULL;
    TW_ASSERT(dedup_redis_new("http://x", 60, 100, &store, &diag) != 0);
    TW_ASSERT(dedup_redis_new("redis://host:99999/0", 60, 100, &store, &diag) != 0);
    TW_ASSERT(dedup_redis_new("redis://host:6379/abc", 60, 100, &store, &diag) != 0);
    TW_ASSERT_INT_EQ(diag.count, 3);
    TW_ASSERT(strstr(diag.lines[1], "bad port") != NULL);
    tw_diag_fini(&diag);
}

int main(void)
{
    TW_RUN(TW_CASE(memory_store_semantics), TW_CASE(memory_store_unsigned_posts),
           TW_CASE(memory_store_stays_bounded), TW_CASE(campaign_milestones_parse),
           TW_CASE(memory_store_campaign_milestones), TW_CASE(redis_store_matches_memory_store),
           TW_CASE(redis_store_layout), TW_CASE(redis_cluster_store_matches_memory_store),
           TW_CASE(redis_cluster_store_follows_a_dead_masters_slots),
           TW_CASE(redis_url_errors_are_reported), TW_CASE(singleton_record_encoding));
}
