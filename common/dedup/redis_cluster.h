/* Minimal Redis Cluster client on hiredis 0.14 (which has none): CLUSTER SLOTS map, CRC16 key
 * slots with {hash tags}, one blocking connection per master, pipelined batches grouped by
 * node and sent to every node before any reply is read (one round trip per batch, nodes in
 * parallel), MOVED (map updated, then refreshed) and ASK (ASKING + retry on the target) followed
 * a bounded number of times. Used by the Redis duplicate store only; redisReply does not leave
 * common/dedup_redis.c and this file. Not thread-safe: one per thread. */
#ifndef TW_REDIS_CLUSTER_H
#define TW_REDIS_CLUSTER_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define REDIS_CLUSTER_SLOTS 16384

typedef struct redis_cluster redis_cluster_t;

typedef struct {
    int argc;
    const char **argv;
    const size_t *argvlen;
    uint16_t slot; /* redis_cluster_slot() of the command's key(s) */
} redis_cluster_cmd_t;

/* Hash slot of a key: CRC16 (XMODEM) of the key, or of the part between the first '{' and the
 * next '}' when that part is not empty, modulo 16384. */
uint16_t redis_cluster_slot(const char *key, size_t len);

/* seeds: "host:port,host:port,..." (at least one reachable at some point). user may be NULL;
 * password NULL = no AUTH. Copies everything. Connects lazily (first exec). Returns 0,
 * TW_ERR_CONFIG with a message in diag, or TW_ERR_NOMEM. */
int redis_cluster_new(const char *seeds, const char *user, const char *password, int timeout_ms,
                      redis_cluster_t **out, tw_diag_t *diag);
void redis_cluster_free(redis_cluster_t *c);

/* Runs cmds[0, n) (their argv is copied when queued) and stores each reply in replies[i]
 * (caller frees them with freeReplyObject). Error replies other than redirections are ordinary
 * replies. Commands go to the master of their slot; MOVED updates the map and retries, ASK
 * retries on the named node after ASKING, TRYAGAIN / CLUSTERDOWN retry after a short pause;
 * at most a few rounds. Commands of one slot run in their order unless redirected. On failure
 * (a node unreachable, too many redirections) returns TW_ERR_REDIS with every replies[i] NULL;
 * some commands may have run. */
int redis_cluster_exec(redis_cluster_t *c, const redis_cluster_cmd_t *cmds, size_t n,
                       redisReply **replies);

/* Redirections followed since creation (for tests and logs). */
void redis_cluster_stats(const redis_cluster_t *c, uint64_t *moved, uint64_t *ask);

/* Masters currently known (after the first successful exec). */
size_t redis_cluster_node_count(const redis_cluster_t *c);

#endif
