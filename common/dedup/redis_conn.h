/* One connection to a single Redis server, made lazily, with AUTH and SELECT, and reconnect
 * attempts backing off from 100 ms to 5 s while the server is away. */
#ifndef TW_REDIS_CONN_H
#define TW_REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "dedup/redis_url.h"

typedef struct {
    const redis_url_t *url; /* host, port, db, user, password; outlives the connection */
    int timeout_ms;
    redisContext *ctx;       /* NULL while disconnected */
    int64_t next_connect_ms; /* backoff: no attempt before this (monotonic) time */
    int backoff_ms;
} redis_conn_t;

/* 0 when connected (now or already), else TW_ERR_REDIS (logged, rate-limited). */
int redis_conn_connect(redis_conn_t *c);

/* One command; NULL when the connection failed (it is then closed and logged). */
redisReply *redis_conn_command(redis_conn_t *c, int argc, const char **argv, const size_t *argvlen);

void redis_conn_close(redis_conn_t *c);

#endif
