/* Redis Cluster client: see redis_cluster.h. */
#include "dedup/redis_cluster.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "util/log.h"

#define REDIS_CLUSTER_MAX_NODES  256
#define REDIS_CLUSTER_MAX_ROUNDS 6

typedef struct {
    char *host;
    int port;
    redisContext *ctx;
} rc_node_t;

/* One queued command: which command, whether ASKING goes first. */
typedef struct {
    size_t cmd;
    bool asking;
} rc_queued_t;

struct redis_cluster {
    rc_node_t nodes[REDIS_CLUSTER_MAX_NODES];
    size_t nnodes;
    size_t nseeds; /* nodes[0, nseeds) came from the configuration */
    int16_t slots[REDIS_CLUSTER_SLOTS];
    bool have_map;
    char *user;
    char *password;
    int timeout_ms;
    uint64_t moved, ask;
    /* per-exec scratch, reused */
    int16_t *target; /* per command: node to send to this round, -1 done */
    bool *asking;
    size_t cap;
    rc_queued_t *queue; /* per node, commands in send order: queue[node * n + k] */
    size_t *nqueued;
    size_t queue_cap;
};

static const uint16_t crc16tab[256] = {
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7, 0x8108, 0x9129, 0xa14a, 0xb16b,
    0xc18c, 0xd1ad, 0xe1ce, 0xf1ef, 0x1231, 0x0210, 0x3273, 0x2252, 0x52b5, 0x4294, 0x72f7, 0x62d6,
    0x9339, 0x8318, 0xb37b, 0xa35a, 0xd3bd, 0xc39c, 0xf3ff, 0xe3de, 0x2462, 0x3443, 0x0420, 0x1401,
    0x64e6, 0x74c7, 0x44a4, 0x5485, 0xa56a, 0xb54b, 0x8528, 0x9509, 0xe5ee, 0xf5cf, 0xc5ac, 0xd58d,
    0x3653, 0x2672, 0x1611, 0x0630, 0x76d7, 0x66f6, 0x5695, 0x46b4, 0xb75b, 0xa77a, 0x9719, 0x8738,
    0xf7df, 0xe7fe, 0xd79d, 0xc7bc, 0x48c4, 0x58e5, 0x6886, 0x78a7, 0x0840, 0x1861, 0x2802, 0x3823,
    0xc9cc, 0xd9ed, 0xe98e, 0xf9af, 0x8948, 0x9969, 0xa90a, 0xb92b, 0x5af5, 0x4ad4, 0x7ab7, 0x6a96,
    0x1a71, 0x0a50, 0x3a33, 0x2a12, 0xdbfd, 0xcbdc, 0xfbbf, 0xeb9e, 0x9b79, 0x8b58, 0xbb3b, 0xab1a,
    0x6ca6, 0x7c87, 0x4ce4, 0x5cc5, 0x2c22, 0x3c03, 0x0c60, 0x1c41, 0xedae, 0xfd8f, 0xcdec, 0xddcd,
    0xad2a, 0xbd0b, 0x8d68, 0x9d49, 0x7e97, 0x6eb6, 0x5ed5, 0x4ef4, 0x3e13, 0x2e32, 0x1e51, 0x0e70,
    0xff9f, 0xefbe, 0xdfdd, 0xcffc, 0xbf1b, 0xaf3a, 0x9f59, 0x8f78, 0x9188, 0x81a9, 0xb1ca, 0xa1eb,
    0xd10c, 0xc12d, 0xf14e, 0xe16f, 0x1080, 0x00a1, 0x30c2, 0x20e3, 0x5004, 0x4025, 0x7046, 0x6067,
    0x83b9, 0x9398, 0xa3fb, 0xb3da, 0xc33d, 0xd31c, 0xe37f, 0xf35e, 0x02b1, 0x1290, 0x22f3, 0x32d2,
    0x4235, 0x5214, 0x6277, 0x7256, 0xb5ea, 0xa5cb, 0x95a8, 0x8589, 0xf56e, 0xe54f, 0xd52c, 0xc50d,
    0x34e2, 0x24c3, 0x14a0, 0x0481, 0x7466, 0x6447, 0x5424, 0x4405, 0xa7db, 0xb7fa, 0x8799, 0x97b8,
    0xe75f, 0xf77e, 0xc71d, 0xd73c, 0x26d3, 0x36f2, 0x0691, 0x16b0, 0x6657, 0x7676, 0x4615, 0x5634,
    0xd94c, 0xc96d, 0xf90e, 0xe92f, 0x99c8, 0x89e9, 0xb98a, 0xa9ab, 0x5844, 0x4865, 0x7806, 0x6827,
    0x18c0, 0x08e1, 0x3882, 0x28a3, 0xcb7d, 0xdb5c, 0xeb3f, 0xfb1e, 0x8bf9, 0x9bd8, 0xabbb, 0xbb9a,
    0x4a75, 0x5a54, 0x6a37, 0x7a16, 0x0af1, 0x1ad0, 0x2ab3, 0x3a92, 0xfd2e, 0xed0f, 0xdd6c, 0xcd4d,
    0xbdaa, 0xad8b, 0x9de8, 0x8dc9, 0x7c26, 0x6c07, 0x5c64, 0x4c45, 0x3ca2, 0x2c83, 0x1ce0, 0x0cc1,
    0xef1f, 0xff3e, 0xcf5d, 0xdf7c, 0xaf9b, 0xbfba, 0x8fd9, 0x9ff8, 0x6e17, 0x7e36, 0x4e55, 0x5e74,
    0x2e93, 0x3eb2, 0x0ed1, 0x1ef0};

static uint16_t crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++)
        crc = (uint16_t)((crc << 8) ^ crc16tab[((crc >> 8) ^ (unsigned char)buf[i]) & 0xff]);
    return crc;
}

uint16_t redis_cluster_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return crc16(open + 1, (size_t)(close - open - 1)) & (REDIS_CLUSTER_SLOTS - 1);
    }
    return crc16(key, len) & (REDIS_CLUSTER_SLOTS - 1);
}

static void rc_node_disconnect(rc_node_t *node)
{
    if (node->ctx)
        redisFree(node->ctx);
    node->ctx = NULL;
}

/* Index of host:port, added (unconnected) when new; -1 when the table is full. */
static int rc_node_find(redis_cluster_t *c, const char *host, size_t hostlen, int port)
{
    for (size_t i = 0; i < c->nnodes; i++)
        if (c->nodes[i].port == port && strlen(c->nodes[i].host) == hostlen &&
            memcmp(c->nodes[i].host, host, hostlen) == 0)
            return (int)i;
    if (c->nnodes == REDIS_CLUSTER_MAX_NODES)
        return -1;
    char *copy = strndup(host, hostlen);
    if (!copy)
        return -1;
    c->nodes[c->nnodes] = (rc_node_t){copy, port, NULL};
    return (int)c->nnodes++;
}

static int rc_node_connect(redis_cluster_t *c, rc_node_t *node)
{
    if (node->ctx)
        return 0;
    struct timeval tv = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};
    node->ctx = redisConnectWithTimeout(node->host, node->port, tv);
    bool ok = node->ctx && !node->ctx->err && redisSetTimeout(node->ctx, tv) == REDIS_OK;
    if (ok && c->password) {
        const char *argv[3] = {"AUTH", c->user ? c->user : c->password, c->password};
        redisReply *reply = redisCommandArgv(node->ctx, c->user ? 3 : 2, argv, NULL);
        ok = reply && reply->type != REDIS_REPLY_ERROR;
        if (reply && reply->type == REDIS_REPLY_ERROR)
            log_ratelimited(LOG_LEVEL_ERROR, "redis.auth", 10, "redis %s:%d AUTH refused: %s",
                            node->host, node->port, reply->str);
        freeReplyObject(reply);
    }
    if (!ok) {
        log_ratelimited(LOG_LEVEL_WARN, "redis.connect", 10, "redis cluster node %s:%d: %s",
                        node->host, node->port,
                        node->ctx && node->ctx->errstr[0] ? node->ctx->errstr : "setup failed");
        rc_node_disconnect(node);
        return TW_ERR_REDIS;
    }
    return 0;
}

/* Loads the slot map with CLUSTER SLOTS from the first node that answers. */
static int rc_refresh(redis_cluster_t *c)
{
    for (size_t i = 0; i < c->nnodes; i++) {
        rc_node_t *node = &c->nodes[i];
        if (rc_node_connect(c, node) != 0)
            continue;
        const char *argv[2] = {"CLUSTER", "SLOTS"};
        redisReply *reply = redisCommandArgv(node->ctx, 2, argv, NULL);
        if (!reply) {
            rc_node_disconnect(node);
            continue;
        }
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) {
            log_ratelimited(LOG_LEVEL_WARN, "redis.slots", 10,
                            "redis %s:%d: CLUSTER SLOTS failed: %s", node->host, node->port,
                            reply->type == REDIS_REPLY_ERROR ? reply->str : "no slots");
            freeReplyObject(reply);
            continue;
        }
        int16_t slots[REDIS_CLUSTER_SLOTS];
        memset(slots, 0xff, sizeof(slots));
        bool ok = true;
        for (size_t r = 0; ok && r < reply->elements; r++) {
            const redisReply *range = reply->element[r];
            ok = range->type == REDIS_REPLY_ARRAY && range->elements >= 3 &&
                 range->element[0]->type == REDIS_REPLY_INTEGER &&
                 range->element[1]->type == REDIS_REPLY_INTEGER &&
                 range->element[2]->type == REDIS_REPLY_ARRAY && range->element[2]->elements >= 2 &&
                 range->element[2]->element[0]->type == REDIS_REPLY_STRING &&
                 range->element[2]->element[1]->type == REDIS_REPLY_INTEGER;
            if (!ok)
                break;
            long long lo = range->element[0]->integer, hi = range->element[1]->integer;
            const redisReply *master = range->element[2];
            /* an empty or "?" host means "the address you reached me at" */
            const char *host = master->element[0]->str;
            size_t hostlen = master->element[0]->len;
            if (hostlen == 0 || (hostlen == 1 && host[0] == '?')) {
                host = node->host;
                hostlen = strlen(node->host);
            }
            int idx = rc_node_find(c, host, hostlen, (int)master->element[1]->integer);
            ok = idx >= 0 && lo >= 0 && hi < REDIS_CLUSTER_SLOTS && lo <= hi;
            for (long long s = lo; ok && s <= hi; s++)
                slots[s] = (int16_t)idx;
        }
        freeReplyObject(reply);
        if (!ok)
            continue;
        memcpy(c->slots, slots, sizeof(slots));
        c->have_map = true;
        return 0;
    }
    return TW_ERR_REDIS;
}

int redis_cluster_new(const char *seeds, const char *user, const char *password, int timeout_ms,
                      redis_cluster_t **out, tw_diag_t *diag)
{
    redis_cluster_t *c = calloc(1, sizeof(*c));
    if (!c)
        return TW_ERR_NOMEM;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 1000;
    memset(c->slots, 0xff, sizeof(c->slots));
    c->user = user ? strdup(user) : NULL;
    c->password = password ? strdup(password) : NULL;
    int rc = 0;
    const char *p = seeds;
    while (rc == 0 && p && *p) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *colon = NULL;
        for (const char *q = p; q < end; q++)
            if (*q == ':')
                colon = q;
        long port = 6379;
        if (colon) {
            char *pend = NULL;
            port = strtol(colon + 1, &pend, 10);
            if (pend != end || port <= 0 || port > 65535) {
                tw_diag_add(diag, "redis cluster: bad port in '%.*s'", (int)(end - p), p);
                rc = TW_ERR_CONFIG;
                break;
            }
        }
        const char *hostend = colon ? colon : end;
        if (hostend == p) {
            tw_diag_add(diag, "redis cluster: missing host in '%s'", seeds);
            rc = TW_ERR_CONFIG;
            break;
        }
        if (rc_node_find(c, p, (size_t)(hostend - p), (int)port) < 0)
            rc = TW_ERR_NOMEM;
        p = comma ? comma + 1 : end;
    }
    if (rc == 0 && c->nnodes == 0) {
        tw_diag_add(diag, "redis cluster: no seed node in '%s'", seeds);
        rc = TW_ERR_CONFIG;
    }
    c->nseeds = c->nnodes;
    if (rc != 0) {
        redis_cluster_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void redis_cluster_free(redis_cluster_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nnodes; i++) {
        rc_node_disconnect(&c->nodes[i]);
        free(c->nodes[i].host);
    }
    free(c->user);
    free(c->password);
    free(c->target);
    free(c->asking);
    free(c->queue);
    free(c->nqueued);
    free(c);
}

void redis_cluster_stats(const redis_cluster_t *c, uint64_t *moved, uint64_t *ask)
{
    *moved = c->moved;
    *ask = c->ask;
}

size_t redis_cluster_node_count(const redis_cluster_t *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->nnodes; i++) {
        bool master = false;
        for (size_t s = 0; !master && s < REDIS_CLUSTER_SLOTS; s++)
            master = c->slots[s] == (int16_t)i;
        n += master;
    }
    return n;
}

static int rc_reserve(redis_cluster_t *c, size_t n)
{
    if (n > c->cap) {
        size_t cap = n * 2;
        int16_t *target = realloc(c->target, cap * sizeof(*target));
        if (target)
            c->target = target;
        bool *asking = realloc(c->asking, cap * sizeof(*asking));
        if (asking)
            c->asking = asking;
        if (!target || !asking)
            return TW_ERR_NOMEM;
        c->cap = cap;
    }
    if (!c->nqueued && !(c->nqueued = calloc(REDIS_CLUSTER_MAX_NODES, sizeof(*c->nqueued))))
        return TW_ERR_NOMEM;
    return 0;
}

/* Parses "MOVED 3999 127.0.0.1:6381" / "ASK ..." into the slot and the node's index. */
static int rc_parse_redirect(redis_cluster_t *c, const char *msg, int *node)
{
    const char *sp = strchr(msg, ' ');
    const char *addr = sp ? strchr(sp + 1, ' ') : NULL;
    if (!addr)
        return -1;
    addr++;
    const char *colon = strrchr(addr, ':');
    if (!colon)
        return -1;
    int port = atoi(colon + 1);
    long slot = strtol(sp + 1, NULL, 10);
    if (port <= 0 || slot < 0 || slot >= REDIS_CLUSTER_SLOTS)
        return -1;
    *node = rc_node_find(c, addr, (size_t)(colon - addr), port);
    return *node < 0 ? -1 : (int)slot;
}

static void rc_pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Makes room for n commands per node in the send queues. */
static int rc_reserve_queue(redis_cluster_t *c, size_t n)
{
    if (c->queue_cap >= n * c->nnodes)
        return 0;
    rc_queued_t *q = realloc(c->queue, n * c->nnodes * sizeof(*q));
    if (!q)
        return TW_ERR_NOMEM;
    c->queue = q;
    c->queue_cap = n * c->nnodes;
    return 0;
}

/* Appends every command without a reply to its target node's connection (ASKING first where
 * an ASK redirect asked for it) and to that node's queue, queue[node * n + k]. A command whose
 * slot no master serves fails the round. */
static int rc_queue_pending(redis_cluster_t *c, const redis_cluster_cmd_t *cmds, size_t n,
                            redisReply **replies)
{
    int rc = 0;
    bool unmapped = false;
    memset(c->nqueued, 0, REDIS_CLUSTER_MAX_NODES * sizeof(*c->nqueued));
    for (size_t i = 0; i < n; i++) {
        if (replies[i])
            continue;
        int node = c->target[i];
        if (node < 0) {
            unmapped = true;
            continue;
        }
        if (rc_node_connect(c, &c->nodes[node]) != 0) {
            /* a master that cannot be reached may have died and its replica been promoted:
             * the next exec reloads the map from the nodes that answer (kept, the map would
             * point at the dead master forever, as no redirect can come from it) */
            c->have_map = false;
            rc = TW_ERR_REDIS;
            break;
        }
        redisContext *ctx = c->nodes[node].ctx;
        if (c->asking[i]) {
            const char *asking[1] = {"ASKING"};
            redisAppendCommandArgv(ctx, 1, asking, NULL);
        }
        redisAppendCommandArgv(ctx, cmds[i].argc, cmds[i].argv, cmds[i].argvlen);
        c->queue[(size_t)node * n + c->nqueued[node]++] = (rc_queued_t){i, c->asking[i]};
    }
    if (unmapped && rc == 0) {
        rc = TW_ERR_REDIS; /* a slot no master serves: the cluster is not ok */
        log_ratelimited(LOG_LEVEL_WARN, "redis.slots", 10,
                        "redis cluster: a key's slot has no master");
    }
    return rc;
}

/* Sends everything everywhere before reading any reply, so that the nodes work in parallel. */
static void rc_flush_queues(redis_cluster_t *c)
{
    for (size_t node = 0; node < c->nnodes; node++) {
        int done = 0;
        while (c->nqueued[node] && c->nodes[node].ctx && !done)
            if (redisBufferWrite(c->nodes[node].ctx, &done) != REDIS_OK)
                break;
    }
}

/* An error reply that sends queued command q again next round: MOVED (the slot map is
 * updated, and refreshed after the round), ASK (once, with ASKING), TRYAGAIN or CLUSTERDOWN.
 * Any other error is the command's answer. */
static bool rc_redirected(redis_cluster_t *c, rc_queued_t q, const redisReply *reply,
                          bool *need_refresh)
{
    int target = -1;
    if (strncmp(reply->str, "MOVED ", 6) == 0) {
        int slot = rc_parse_redirect(c, reply->str, &target);
        if (slot < 0)
            return false;
        c->slots[slot] = (int16_t)target;
        c->target[q.cmd] = (int16_t)target;
        c->moved++;
        *need_refresh = true;
        return true;
    }
    if (strncmp(reply->str, "ASK ", 4) == 0) {
        if (rc_parse_redirect(c, reply->str, &target) < 0)
            return false;
        c->target[q.cmd] = (int16_t)target;
        c->asking[q.cmd] = true;
        c->ask++;
        return true;
    }
    if (strncmp(reply->str, "TRYAGAIN", 8) == 0 || strncmp(reply->str, "CLUSTERDOWN", 11) == 0) {
        /* a multi-key command on a slot being migrated, or a failover: same target (and
         * ASKING) next round, after a pause */
        c->asking[q.cmd] = q.asking;
        return true;
    }
    return false;
}

/* Reads the replies to node's queue (stride n) into replies, counting the answered ones off
 * *pending. A connection lost drops the node and the slot map, and fails the round after its
 * other nodes' replies are read. */
static int rc_read_node(redis_cluster_t *c, size_t node, size_t n, redisReply **replies,
                        size_t *pending, bool *need_refresh)
{
    int rc = 0;
    rc_node_t *nd = &c->nodes[node];
    for (size_t k = 0; k < c->nqueued[node]; k++) {
        rc_queued_t q = c->queue[node * n + k];
        redisReply *reply = NULL;
        if (nd->ctx && q.asking) {
            if (redisGetReply(nd->ctx, (void **)&reply) != REDIS_OK)
                reply = NULL;
            freeReplyObject(reply);
            reply = NULL;
        }
        if (!nd->ctx || redisGetReply(nd->ctx, (void **)&reply) != REDIS_OK || !reply) {
            if (nd->ctx)
                log_ratelimited(LOG_LEVEL_WARN, "redis.io", 10, "redis %s:%d: %s", nd->host,
                                nd->port, nd->ctx->errstr[0] ? nd->ctx->errstr : "connection lost");
            rc_node_disconnect(nd);
            c->have_map = false; /* the node may have failed over */
            rc = TW_ERR_REDIS;
            continue;
        }
        c->asking[q.cmd] = false;
        if (reply->type == REDIS_REPLY_ERROR && rc_redirected(c, q, reply, need_refresh)) {
            freeReplyObject(reply);
            continue;
        }
        replies[q.cmd] = reply;
        (*pending)--;
    }
    return rc;
}

int redis_cluster_exec(redis_cluster_t *c, const redis_cluster_cmd_t *cmds, size_t n,
                       redisReply **replies)
{
    for (size_t i = 0; i < n; i++)
        replies[i] = NULL;
    if (n == 0)
        return 0;
    if (rc_reserve(c, n) != 0)
        return TW_ERR_NOMEM;
    if (!c->have_map && rc_refresh(c) != 0)
        return TW_ERR_REDIS;
    for (size_t i = 0; i < n; i++) {
        c->target[i] = c->slots[cmds[i].slot];
        c->asking[i] = false;
    }
    int rc = 0;
    size_t pending = n;
    for (int round = 0; pending && round < REDIS_CLUSTER_MAX_ROUNDS; round++) {
        if ((rc = rc_reserve_queue(c, n)) != 0)
            break;
        bool need_refresh = false;
        rc = rc_queue_pending(c, cmds, n, replies);
        rc_flush_queues(c);
        for (size_t node = 0; node < c->nnodes; node++) {
            int read_rc = rc_read_node(c, node, n, replies, &pending, &need_refresh);
            if (read_rc != 0)
                rc = read_rc;
        }
        if (rc != 0)
            break;
        if (pending) {
            if (need_refresh)
                rc_refresh(c); /* keeps the MOVED-updated map when no node answers */
            if (round)
                rc_pause_ms(10 * round);
        }
    }
    if (rc == 0 && pending) {
        log_ratelimited(LOG_LEVEL_WARN, "redis.redirect", 10,
                        "redis cluster: %zu commands still redirected after %d rounds", pending,
                        REDIS_CLUSTER_MAX_ROUNDS);
        rc = TW_ERR_REDIS;
    }
    if (rc != 0) {
        for (size_t i = 0; i < n; i++) {
            freeReplyObject(replies[i]);
            replies[i] = NULL;
        }
    }
    return rc;
}
