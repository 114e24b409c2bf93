/* At-least-once bookkeeping: a partition's offset may be committed only up to the first post
 * whose output (alert or dead-letter record) the broker has not yet acknowledged. Posts finish
 * out of order (a post with no alert finishes at once, an alert when its delivery report
 * arrives), so each partition keeps its in-flight offsets in order and the commit position is
 * the contiguous watermark. Not thread-safe: the Kafka loop owns it. */
#ifndef TW_OFFSET_TRACKER_H
#define TW_OFFSET_TRACKER_H

#include <stddef.h>
#include <stdint.h>

typedef struct offset_tracker offset_tracker_t;

int offset_tracker_new(offset_tracker_t **out);
void offset_tracker_free(offset_tracker_t *t);

/* Registers offset as in flight on partition. Offsets of one partition must come in
 * increasing order: an offset not above the last one added since the partition was last
 * forgotten (a record re-fetched after a rebalance that kept the partition) is refused with
 * TW_ERR_INVALID and counted; that record's first copy is already tracked, so the caller
 * drops the repeat. Returns 0, TW_ERR_INVALID or TW_ERR_NOMEM. */
int offset_tracker_add(offset_tracker_t *t, int32_t partition, int64_t offset);

/* Offsets refused by offset_tracker_add so far. */
uint64_t offset_tracker_refused(const offset_tracker_t *t);

/* One more output for the offset added last on partition (a post that publishes an alert and
 * campaign records): done() must then be called once per output. Returns 0, or
 * TW_ERR_INVALID when offset is not the last one added (a programmer error). */
int offset_tracker_ref(offset_tracker_t *t, int32_t partition, int64_t offset);

/* One more output for an offset tracked and not finished, wherever it is in its partition's
 * order (an output decided after later posts were added: a post's campaign claims rechecked
 * while its offset is held). Returns 0, or TW_ERR_INVALID when the offset is not tracked or
 * already finished. */
int offset_tracker_ref_held(offset_tracker_t *t, int32_t partition, int64_t offset);

/* Marks one output of (partition, offset) finished; the offset is finished when all are. Unknown
 * pairs (a partition revoked meanwhile) are ignored. */
void offset_tracker_done(offset_tracker_t *t, int32_t partition, int64_t offset);

/* Calls commit(partition, next_offset) for each partition whose watermark advanced since the
 * last call; next_offset is the offset to resume from (last finished + 1). Returns the number
 * of partitions reported. */
size_t offset_tracker_collect(offset_tracker_t *t,
                              void (*commit)(void *opaque, int32_t partition, int64_t next_offset),
                              void *opaque);

/* Forgets a partition (revoked); later done() calls for it are ignored. */
void offset_tracker_forget(offset_tracker_t *t, int32_t partition);

/* Posts still in flight over all partitions. */
size_t offset_tracker_pending(const offset_tracker_t *t);

#endif
