/* `tidewatch demo`: the main job on embedded defaults with no servers to set up. An
 * in-process Kafka-protocol broker (librdkafka's mock cluster) is filled with the example
 * posts, the real Kafka-mode worker consumes them with the example rules and the in-memory
 * duplicate store, alerts are read back from the alert topic and printed as they arrive, and a
 * summary closes. */
#ifndef TW_DEMO_H
#define TW_DEMO_H

#include <stdatomic.h>

#include "config/config.h"

int demo_main(config_t *cfg, atomic_int *stop);

#endif
