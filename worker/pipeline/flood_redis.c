/* Flood guard transport over Redis: pipelined commands on a single server, or routed by slot
 * on a Redis Cluster (every flood key carries one hash tag, so they share a slot). */
#include "pipeline/flood_redis.h"

#include <stdlib.h>
#include <string.h>

#include "dedup/redis_cluster.h"
#include "dedup/redis_conn.h"
#include "dedup/redis_url.h"

struct flood_redis {
    redis_url_t url;
    redis_conn_t conn;        /* redis:// */
    redis_cluster_t *cluster; /* redis+cluster:// */
};

int flood_redis_new(const char *url, int timeout_ms, flood_redis_t **out, tw_diag_t *diag)
{
    *out = NULL;
    flood_redis_t *fr = calloc(1, sizeof(*fr));
    if (!fr)
        return TW_ERR_NOMEM;
    int rc = redis_url_parse(url, &fr->url, diag);
    if (rc == 0 && fr->url.cluster)
        rc = redis_cluster_new(fr->url.seeds, fr->url.user, fr->url.password, timeout_ms,
                               &fr->cluster, diag);
    if (rc != 0) {
        flood_redis_free(fr);
        return rc;
    }
    fr->conn.url = &fr->url;
    fr->conn.timeout_ms = timeout_ms;
    *out = fr;
    return 0;
}

void flood_redis_free(flood_redis_t *fr)
{
    if (!fr)
        return;
    redis_conn_close(&fr->conn);
    redis_cluster_free(fr->cluster);
    redis_url_fini(&fr->url);
    free(fr);
}

/* Single server: every command appended, then every reply read (one round trip). */
static int exec_single(flood_redis_t *fr, size_t ncmds, const int *argc,
                       const char *const *const *argv, const size_t *const *argvlen,
                       redisReply **replies)
{
    if (redis_conn_connect(&fr->conn) != 0)
        return -1;
    redisContext *ctx = fr->conn.ctx;
    for (size_t i = 0; i < ncmds; i++)
        if (redisAppendCommandArgv(ctx, argc[i], (const char **)argv[i], argvlen[i]) != REDIS_OK)
            goto lost;
    for (size_t i = 0; i < ncmds; i++) {
        void *reply = NULL;
        if (redisGetReply(ctx, &reply) != REDIS_OK) {
            for (size_t k = 0; k < i; k++)
                freeReplyObject(replies[k]);
            goto lost;
        }
        replies[i] = reply;
    }
    return 0;
lost:
    redis_conn_close(&fr->conn); /* a half-read pipeline cannot be reused */
    return -1;
}

static int exec_cluster(flood_redis_t *fr, size_t ncmds, const int *argc,
                        const char *const *const *argv, const size_t *const *argvlen,
                        redisReply **replies)
{
    redis_cluster_cmd_t *cmds = calloc(ncmds ? ncmds : 1, sizeof(*cmds));
    if (!cmds)
        return -1;
    for (size_t i = 0; i < ncmds; i++)
        cmds[i] = (redis_cluster_cmd_t){argc[i], (const char **)argv[i], argvlen[i],
                                        redis_cluster_slot(argv[i][1], argvlen[i][1])};
    int rc = redis_cluster_exec(fr->cluster, cmds, ncmds, replies);
    free(cmds);
    return rc == 0 ? 0 : -1;
}

static int flood_redis_exec(void *ctx, size_t ncmds, const int *argc,
                            const char *const *const *argv, const size_t *const *argvlen,
                            redisReply **replies)
{
    flood_redis_t *fr = ctx;
    return fr->cluster ? exec_cluster(fr, ncmds, argc, argv, argvlen, replies)
                       : exec_single(fr, ncmds, argc, argv, argvlen, replies);
}

flood_transport_t flood_redis_transport(flood_redis_t *fr)
{
    return (flood_transport_t){fr, flood_redis_exec};
}
