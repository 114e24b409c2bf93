/* Kafka sink: the idempotent producer for alerts and dead-letter records. Every record
 * carries its source (partition, offset); the delivery report hands it back so the caller can
 * advance the commit watermark only once the broker has acknowledged the record. */
#ifndef TW_KAFKA_SINK_H
#define TW_KAFKA_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

typedef struct kafka_sink kafka_sink_t;

/* Called from kafka_sink_poll/flush on the calling thread. err is 0 on success. */
typedef void (*kafka_sink_delivery_fn)(void *opaque, int32_t src_partition, int64_t src_offset,
                                       int err, const char *errstr);

int kafka_sink_new(const config_t *cfg, kafka_sink_delivery_fn on_delivery, void *opaque,
                   kafka_sink_t **out, tw_diag_t *diag);
void kafka_sink_free(kafka_sink_t *sink);

/* Queues an alert (copied). Blocks, serving delivery reports, while the local queue is full
 * (backpressure). Returns 0 or TW_ERR_KAFKA. */
int kafka_sink_produce_alert(kafka_sink_t *sink, const char *key, size_t key_len, const char *value,
                             size_t len, int32_t src_partition, int64_t src_offset);

/* Queues a campaign record (copied) to campaign.topic (default: the output topic) with header
 * type=campaign; delivery is reported for (src_partition, src_offset) like an alert's. */
int kafka_sink_produce_campaign(kafka_sink_t *sink, const char *key, size_t key_len,
                                const char *value, size_t len, int32_t src_partition,
                                int64_t src_offset);

/* Queues a shadow alert (copied) to shadow_topic with header type=shadow; delivery is
 * reported for (src_partition, src_offset) like an alert's. TW_ERR_INVALID without a
 * shadow topic. */
int kafka_sink_produce_shadow(kafka_sink_t *sink, const char *key, size_t key_len,
                              const char *value, size_t len, int32_t src_partition,
                              int64_t src_offset);

/* Queues a control record (a rule_muted record of the flood guard) to campaign.topic with
 * header type=<type>. No input offset waits for it: a failed delivery is counted and logged
 * (the decision stands in Redis either way). */
int kafka_sink_produce_control(kafka_sink_t *sink, const char *type, const char *key,
                               size_t key_len, const char *value, size_t len);

/* Queues a dead-letter record: the original key and bytes, with reason, error and source in
 * headers. */
int kafka_sink_produce_dead_letter(kafka_sink_t *sink, const void *key, size_t key_len,
                                   const void *value, size_t len, const char *reason,
                                   const char *error, const char *src_topic, int32_t src_partition,
                                   int64_t src_offset);

void kafka_sink_poll(kafka_sink_t *sink, int timeout_ms);
/* Waits up to timeout_ms for every queued record, less once the producer has a fatal error
 * (nothing more can be delivered then); returns the number still undelivered. */
int kafka_sink_flush(kafka_sink_t *sink, int timeout_ms);

#endif
