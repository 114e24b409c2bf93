/* Rules hot reload: SIGHUP, or a change to the rules file or one of its keywords files
 * (inotify on their directories, so editors that save by rename are seen too), makes a
 * background thread load and compile the new set (cache, examples and all). The poll loop
 * swaps it in between batches, so every batch - and every alert, which carries the
 * rules_version that produced it - uses one consistent set. A set that fails to parse,
 * compile or pass its examples is refused with log lines saying why, the old one stays, and
 * tidewatch_rules_reload_failures_total counts it. */
#ifndef TW_RELOAD_H
#define TW_RELOAD_H

#include <stdatomic.h>
#include <stdbool.h>

#include "config/config.h"
#include "pipeline/engine.h"
#include "pipeline/pipeline.h"

/* Set by the SIGHUP handler (main.c); the reload thread clears it. A lock-free atomic, so
 * both the handler and another thread may touch it. */
extern atomic_int tw_reload_requested;

typedef struct reload reload_t;

/* Starts the reload thread for cfg->rules_path; current is the loaded set (for its version and
 * file list). Without inotify only SIGHUP triggers reloads. cfg must outlive the reloader.
 * Returns 0 or a negative tw_err_t. */
int reload_start(const config_t *cfg, const rule_set_t *current, reload_t **out);

/* Whether a new set waits to be swapped in: the loop then lets the batch in flight finish
 * before reload_apply (which needs the pipeline idle). False for NULL. */
bool reload_ready(reload_t *r);

/* Between batches, on the thread that owns pipe: when a new set is ready, swaps it into pipe
 * and e (e->rules, e->db, e->rule_metrics), frees the old one and returns true. */
bool reload_apply(reload_t *r, engine_t *e, pipeline_t *pipe, const config_t *cfg);

/* Stops the thread and frees what it holds. NULL is a no-op. */
void reload_stop(reload_t *r);

#endif
