/* Kafka source: the consumer-group member that fetches posts in batches. Offsets are never
 * stored automatically: the caller stores a partition's position once everything before it
 * was published (see offset_tracker.h), and librdkafka commits stored offsets periodically. */
#ifndef TW_KAFKA_SOURCE_H
#define TW_KAFKA_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

typedef struct kafka_source kafka_source_t;

typedef struct {
    const char *value;
    size_t len;
    const char *key;
    size_t key_len;
    int32_t partition;
    int64_t offset;
} kafka_record_t;

typedef struct {
    /* Called inside the rebalance before partitions are taken away: publish what is in
     * flight and store final offsets (the source commits them right after). */
    void (*before_revoke)(void *opaque, const int32_t *partitions, size_t n);
    void *opaque;
} kafka_source_hooks_t;

int kafka_source_new(const config_t *cfg, bool report_eof, const kafka_source_hooks_t *hooks,
                     kafka_source_t **out, tw_diag_t *diag);
/* Commits stored offsets, leaves the group and frees. */
void kafka_source_close(kafka_source_t *src);

/* Fills up to max records, waiting at most timeout_ms for the first and then taking what is
 * already fetched. Records stay valid until the call after the next one, so a caller can
 * finish one batch while it polls the next. Returns the count. */
size_t kafka_source_poll_batch(kafka_source_t *src, kafka_record_t *records, size_t max,
                               int timeout_ms);

/* Pauses (or resumes) fetching on every assigned partition, and on partitions assigned while
 * paused. Used while the duplicate store is down and dedup.on_unavailable is pause. */
void kafka_source_pause(kafka_source_t *src, bool pause);

/* Serves the consumer (group heartbeats, rebalances, max.poll.interval.ms) for up to
 * timeout_ms without releasing the current batch; records already fetched before the pause
 * are kept and returned first by the next kafka_source_poll_batch(). */
void kafka_source_idle(kafka_source_t *src, int timeout_ms);

/* Fault injection for tests: the next `times` growths of the paused-records stash fail as
 * if out of memory. Returns how many of the previously requested failures have not happened
 * yet. */
int kafka_source_fail_stash_growth(kafka_source_t *src, int times);

/* Revocations so far. Records fetched before a revocation are no longer this consumer's to
 * process, even when the partition comes back: the new assignment re-fetches them from the
 * last commit, so keeping the old copies would process them twice. */
unsigned kafka_source_revocations(const kafka_source_t *src);

/* True while partition is assigned to this consumer. */
bool kafka_source_owns(const kafka_source_t *src, int32_t partition);

/* Stores next_offset as the position to commit for partition. */
void kafka_source_store_offset(kafka_source_t *src, int32_t partition, int64_t next_offset);
/* Synchronously commits stored offsets; returns 0 or TW_ERR_KAFKA. */
int kafka_source_commit(kafka_source_t *src);

/* True when every assigned partition has reached its end since its last record. */
bool kafka_source_at_end(const kafka_source_t *src);
int kafka_source_assigned(const kafka_source_t *src);
const char *kafka_source_topic(const kafka_source_t *src);

#endif
