/* Kafka mode: consume posts, run the pipeline, publish alerts and dead letters, and commit
 * each partition only up to what the broker has acknowledged. */
#ifndef TW_RUN_H
#define TW_RUN_H

#include <stdatomic.h>
#include <stdbool.h>

#include "config/config.h"

typedef struct {
    /* Set by the signal handler: drain and exit. run_worker sets it too when it stops on a
     * failure, so the shutdown watchdog (main.c) bounds that drain as well. */
    atomic_int *stop;
    bool stop_at_end; /* demo: exit once every partition is read and published */
    bool force_memory_store;
} run_options_t;

/* Returns 0 after a clean drain, or a negative tw_err_t. */
int run_worker(const config_t *cfg, const run_options_t *opts);

#endif
