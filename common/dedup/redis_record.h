/* A singleton's record in the Redis stores' index (docs/DEDUP.md): the value of its exact
 * field, the 8-byte big-endian cluster id followed by msgpack {ts, author, signature, post id}
 * exactly as lua/batch.lua's cmsgpack.pack(ts, author, sig, pid) writes it (integers in their
 * smallest encoding, strings as str), so the single-server script and the Redis Cluster store
 * read each other's records. */
#ifndef TW_REDIS_RECORD_H
#define TW_REDIS_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

typedef struct {
    uint64_t cluster;
    int64_t ts;
    const char *author, *sig, *pid; /* into the decoded value */
    size_t author_len, sig_len, pid_len;
} dedup_record_t;

/* Appends the record to b (b->failed on allocation failure). */
void dedup_record_encode(buf_t *b, uint64_t cluster, int64_t ts, const char *author,
                         size_t author_len, const char *sig, size_t sig_len, const char *pid,
                         size_t pid_len);

/* Decodes a field's value; false when it is not a record (8 bytes: a cluster id alone) or is
 * malformed. Also reads what cmsgpack may write for these values: any integer width, a double
 * for the time, bin instead of str. */
bool dedup_record_decode(const char *val, size_t len, dedup_record_t *rec);

#endif
