/* Single-server connection with backoff (redis_conn.h). */
#include "dedup/redis_conn.h"

#include <stdbool.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

#include "util/err.h"
#include "util/log.h"

#define REDIS_RECONNECT_MIN_MS 100
#define REDIS_RECONNECT_MAX_MS 5000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void redis_conn_close(redis_conn_t *c)
{
    if (c->ctx)
        redisFree(c->ctx);
    c->ctx = NULL;
}

redisReply *redis_conn_command(redis_conn_t *c, int argc, const char **argv, const size_t *argvlen)
{
    if (!c->ctx)
        return NULL;
    redisReply *reply = redisCommandArgv(c->ctx, argc, argv, argvlen);
    if (!reply) {
        log_ratelimited(LOG_LEVEL_WARN, "redis.io", 10, "redis %s:%d: %s", c->url->host,
                        c->url->port, c->ctx->errstr[0] ? c->ctx->errstr : "connection lost");
        redis_conn_close(c);
    }
    return reply;
}

/* A setup command that must not answer an error. */
static bool setup_command(redis_conn_t *c, int argc, const char **argv, const char *what)
{
    redisReply *reply = redis_conn_command(c, argc, argv, NULL);
    bool ok = reply && reply->type != REDIS_REPLY_ERROR;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        log_ratelimited(LOG_LEVEL_ERROR, "redis.setup", 10, "redis %s refused: %s", what,
                        reply->str);
    freeReplyObject(reply);
    return ok;
}

int redis_conn_connect(redis_conn_t *c)
{
    if (c->ctx)
        return 0;
    const redis_url_t *u = c->url;
    int64_t now = now_ms();
    if (now < c->next_connect_ms)
        return TW_ERR_REDIS;
    struct timeval tv = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};
    c->ctx = redisConnectWithTimeout(u->host, u->port, tv);
    bool ok = c->ctx && !c->ctx->err && redisSetTimeout(c->ctx, tv) == REDIS_OK;
    if (ok && u->password) {
        const char *argv[3] = {"AUTH", u->user ? u->user : u->password, u->password};
        ok = setup_command(c, u->user ? 3 : 2, argv, "AUTH");
    }
    if (ok && u->db) {
        char db[16];
        snprintf(db, sizeof(db), "%d", u->db);
        const char *argv[2] = {"SELECT", db};
        ok = setup_command(c, 2, argv, "SELECT");
    }
    if (!ok) {
        log_ratelimited(LOG_LEVEL_WARN, "redis.connect", 10, "redis %s:%d unavailable: %s", u->host,
                        u->port, c->ctx && c->ctx->errstr[0] ? c->ctx->errstr : "setup failed");
        redis_conn_close(c);
        c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : REDIS_RECONNECT_MIN_MS;
        if (c->backoff_ms > REDIS_RECONNECT_MAX_MS)
            c->backoff_ms = REDIS_RECONNECT_MAX_MS;
        c->next_connect_ms = now + c->backoff_ms;
        return TW_ERR_REDIS;
    }
    if (c->backoff_ms)
        log_info("redis %s:%d connected", u->host, u->port);
    c->backoff_ms = 0;
    return 0;
}
