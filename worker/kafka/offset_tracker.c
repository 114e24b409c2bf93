#include "kafka/offset_tracker.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

typedef struct {
    int64_t offset;
    uint32_t refs; /* outputs not yet acknowledged; 0 = done */
} inflight_t;

typedef struct {
    int32_t partition;
    bool used;
    bool advanced;
    bool has_last;       /* an offset was added since the partition was (re)created */
    int64_t last_added;  /* the largest offset added: the next must be above it */
    int64_t next_offset; /* commit position reached by the watermark */
    inflight_t *ring;    /* circular buffer of in-flight offsets, oldest at head */
    size_t head;
    size_t count;
    size_t cap;
} partition_state_t;

struct offset_tracker {
    partition_state_t *parts;
    size_t nparts;
    size_t pending;
    uint64_t refused;
};

int offset_tracker_new(offset_tracker_t **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : TW_ERR_NOMEM;
}

void offset_tracker_free(offset_tracker_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nparts; i++)
        free(t->parts[i].ring);
    free(t->parts);
    free(t);
}

static partition_state_t *partition_get(offset_tracker_t *t, int32_t partition, bool create)
{
    for (size_t i = 0; i < t->nparts; i++)
        if (t->parts[i].used && t->parts[i].partition == partition)
            return &t->parts[i];
    if (!create)
        return NULL;
    for (size_t i = 0; i < t->nparts; i++) {
        if (!t->parts[i].used) {
            /* a forgotten partition's slot: nothing of its previous life carries over */
            partition_state_t *p = &t->parts[i];
            inflight_t *ring = p->ring;
            size_t cap = p->cap;
            memset(p, 0, sizeof(*p));
            p->ring = ring;
            p->cap = cap;
            p->used = true;
            p->partition = partition;
            return p;
        }
    }
    partition_state_t *parts = realloc(t->parts, (t->nparts + 1) * sizeof(*parts));
    if (!parts)
        return NULL;
    t->parts = parts;
    partition_state_t *p = &t->parts[t->nparts++];
    memset(p, 0, sizeof(*p));
    p->used = true;
    p->partition = partition;
    return p;
}

static inflight_t *ring_at(partition_state_t *p, size_t i)
{
    return &p->ring[(p->head + i) % p->cap];
}

int offset_tracker_add(offset_tracker_t *t, int32_t partition, int64_t offset)
{
    partition_state_t *p = partition_get(t, partition, true);
    if (!p)
        return TW_ERR_NOMEM;
    /* The ring must stay sorted (done() searches it) and an offset tracked twice would hold
     * the watermark back for good: a repeat is already tracked by its first copy. */
    if (p->has_last && offset <= p->last_added) {
        t->refused++;
        return TW_ERR_INVALID;
    }
    if (p->count == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        inflight_t *ring = malloc(cap * sizeof(*ring));
        if (!ring)
            return TW_ERR_NOMEM;
        for (size_t i = 0; i < p->count; i++)
            ring[i] = *ring_at(p, i);
        free(p->ring);
        p->ring = ring;
        p->head = 0;
        p->cap = cap;
    }
    inflight_t *slot = &p->ring[(p->head + p->count) % p->cap];
    slot->offset = offset;
    slot->refs = 1;
    p->count++;
    p->has_last = true;
    p->last_added = offset;
    t->pending++;
    return 0;
}

/* The unfinished in-flight entry of (partition, offset), or NULL. */
static inflight_t *inflight_find(offset_tracker_t *t, int32_t partition, int64_t offset,
                                 partition_state_t **part)
{
    partition_state_t *p = partition_get(t, partition, false);
    *part = p;
    if (!p || !p->count)
        return NULL;
    /* offsets in the ring are increasing: binary search */
    size_t lo = 0, hi = p->count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ring_at(p, mid)->offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == p->count || ring_at(p, lo)->offset != offset || ring_at(p, lo)->refs == 0)
        return NULL;
    return ring_at(p, lo);
}

int offset_tracker_ref_held(offset_tracker_t *t, int32_t partition, int64_t offset)
{
    partition_state_t *p;
    inflight_t *entry = inflight_find(t, partition, offset, &p);
    if (!entry)
        return TW_ERR_INVALID;
    entry->refs++;
    return 0;
}

void offset_tracker_done(offset_tracker_t *t, int32_t partition, int64_t offset)
{
    partition_state_t *p;
    inflight_t *entry = inflight_find(t, partition, offset, &p);
    if (!entry)
        return;
    if (--entry->refs > 0)
        return;
    while (p->count && p->ring[p->head].refs == 0) {
        p->next_offset = p->ring[p->head].offset + 1;
        p->advanced = true;
        p->head = (p->head + 1) % p->cap;
        p->count--;
        t->pending--;
    }
}

int offset_tracker_ref(offset_tracker_t *t, int32_t partition, int64_t offset)
{
    partition_state_t *p = partition_get(t, partition, false);
    if (!p || !p->count)
        return TW_ERR_INVALID;
    inflight_t *last = ring_at(p, p->count - 1);
    if (last->offset != offset || last->refs == 0)
        return TW_ERR_INVALID;
    last->refs++;
    return 0;
}

size_t offset_tracker_collect(offset_tracker_t *t,
                              void (*commit)(void *opaque, int32_t partition, int64_t next_offset),
                              void *opaque)
{
    size_t n = 0;
    for (size_t i = 0; i < t->nparts; i++) {
        partition_state_t *p = &t->parts[i];
        if (p->used && p->advanced) {
            p->advanced = false;
            commit(opaque, p->partition, p->next_offset);
            n++;
        }
    }
    return n;
}

void offset_tracker_forget(offset_tracker_t *t, int32_t partition)
{
    partition_state_t *p = partition_get(t, partition, false);
    if (!p)
        return;
    t->pending -= p->count;
    p->count = 0;
    p->head = 0;
    p->advanced = false;
    p->has_last = false;
    p->used = false;
}

uint64_t offset_tracker_refused(const offset_tracker_t *t)
{
    return t->refused;
}

size_t offset_tracker_pending(const offset_tracker_t *t)
{
    return t->pending;
}
