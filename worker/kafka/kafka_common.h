/* Configuration shared by the Kafka source and sink: librdkafka properties from the config
 * table's `kafka.*` passthrough, and librdkafka's logs routed into our JSON log. */
#ifndef TW_KAFKA_COMMON_H
#define TW_KAFKA_COMMON_H

#include <librdkafka/rdkafka.h>

#include "config/config.h"

/* Builds a librdkafka configuration: the given defaults (NULL-terminated key/value pairs)
 * first, then every kafka.* passthrough key, so operators can override the tuning defaults.
 * Keys the delivery guarantees rest on (enable.auto.offset.store, enable.idempotence, acks,
 * the assignor... see kafka_common.c) are refused, each with its reason. Errors name where
 * the key came from (librdkafka's own text for bad values). Returns NULL on error. */
rd_kafka_conf_t *kafka_conf_build(const config_t *cfg, const char *const *defaults,
                                  tw_diag_t *diag);

#endif
