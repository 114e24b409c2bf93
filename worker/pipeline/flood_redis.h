/* The flood guard's fleet link: the Redis the duplicate store uses (redis:// or
 * redis+cluster://), on a connection of its own, so the guard's once-a-second round trip
 * never waits behind a batch. */
#ifndef TW_FLOOD_REDIS_H
#define TW_FLOOD_REDIS_H

#include "flood/flood.h"
#include "util/err.h"

typedef struct flood_redis flood_redis_t;

/* url: the `redis` setting. Connects lazily. Returns 0, TW_ERR_CONFIG (diag says why) or
 * TW_ERR_NOMEM. */
int flood_redis_new(const char *url, int timeout_ms, flood_redis_t **out, tw_diag_t *diag);
void flood_redis_free(flood_redis_t *fr);

/* The transport for flood_guard_new; valid while fr lives. */
flood_transport_t flood_redis_transport(flood_redis_t *fr);

#endif
