/* Configuration: one table (config.c) is the source of truth for every key, its type,
 * default, environment variable and help text. Precedence: defaults < YAML file <
 * TIDEWATCH_<KEY> environment < command-line flags. Keys under `kafka.` are passed to
 * librdkafka unchanged (both consumer and producer) so every librdkafka property, including
 * SASL and TLS, is available without tidewatch knowing about it. */
#ifndef TW_CONFIG_H
#define TW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "util/err.h"
#include "util/log.h"

/* Enum-valued keys are parsed once, when the configuration is loaded; an unknown value is
 * refused there (file:line and the allowed values), so code branches on these, never on the
 * text. The names are in the table in config.c. */
typedef enum {
    CONFIG_OFFSET_RESET_EARLIEST,
    CONFIG_OFFSET_RESET_LATEST,
} config_offset_reset_t;

typedef enum {
    CONFIG_UNAVAILABLE_FAIL_OPEN, /* alerts go out marked duplicate unavailable */
    CONFIG_UNAVAILABLE_PAUSE,     /* the batch is held until the store answers */
} config_unavailable_t;

typedef enum {
    CONFIG_SCAN_EMIT_ALERTS, /* what run publishes */
    CONFIG_SCAN_EMIT_ALL,    /* one record per post */
} config_scan_emit_t;

typedef enum {
    CONFIG_SCAN_STORE_MEMORY, /* the in-process duplicate store */
    CONFIG_SCAN_STORE_REDIS,  /* the `redis` URL, as run uses it */
} config_scan_store_t;

typedef struct {
    char *key; /* without the "kafka." prefix */
    char *value;
    char *origin; /* "file:line", "env TIDEWATCH_KAFKA__X", "flag" */
} config_passthrough_t;

typedef struct {
    char *brokers;
    char *group;
    char *input_topic;
    char *output_topic;
    char *dlq_topic;
    char *rules_path;
    char *rules_cache_dir;
    char *redis_url;
    char *http_addr;
    log_level_t log_level;
    log_format_t log_format;
    config_offset_reset_t auto_offset_reset;
    char *field_id;
    char *field_text;
    char *field_author;
    char *field_ts;
    char *field_lang;
    char *field_url;
    config_unavailable_t dedup_on_unavailable;
    char *campaign_milestones;
    char *campaign_topic;
    char *shadow_topic;
    config_scan_emit_t scan_emit;
    config_scan_store_t scan_store;
    long batch_size;
    long batch_timeout_ms;
    long threads;
    long max_post_bytes;
    long dlq_max_bytes;
    long alert_max_bytes;
    long dedup_window_s;
    long dedup_alert_min_count;
    long campaign_min_authors;
    long dedup_verify_pct;
    long redis_timeout_ms;
    long shutdown_timeout_s;
    long metrics_max_rule_series;
    long health_max_loop_silence_s;
    double flood_max_share;
    long flood_min_posts;
    long flood_window_s;
    long flood_cooloff_s;
    config_passthrough_t *kafka;
    size_t nkafka;
} config_t;

/* Fills every key with its default. Returns 0 or TW_ERR_NOMEM. */
int config_init(config_t *cfg);
void config_fini(config_t *cfg);

/* Sets one key from text, converting and validating it. origin is used in error messages.
 * Keys starting with "kafka." are stored as librdkafka passthrough properties. Returns 0, or
 * TW_ERR_CONFIG with a message in diag naming origin, the key and the reason. */
int config_set(config_t *cfg, const char *key, const char *value, const char *origin,
               tw_diag_t *diag);

/* Reads a YAML file of nested mappings whose leaves are scalars; nesting becomes dotted keys
 * (fields: {text: body} is fields.text). Unknown keys are errors naming file:line. */
int config_load_file(config_t *cfg, const char *path, tw_diag_t *diag);

/* Applies TIDEWATCH_<KEY> variables: KEY is the key upper-cased with '.' as '_'
 * (TIDEWATCH_FIELDS_TEXT). librdkafka properties use TIDEWATCH_KAFKA__<PROP> with '_' for
 * '.' (TIDEWATCH_KAFKA__SASL_MECHANISMS=PLAIN sets kafka.sasl.mechanisms). */
int config_load_env(config_t *cfg, char **environ_vars, tw_diag_t *diag);

/* The name of an enum-valued key's value (config_enum_name("scan.emit", cfg->scan_emit) is
 * "alerts"), or NULL when key is not enum-valued or value not one of its values. */
const char *config_enum_name(const char *key, int value);

/* Writes the effective configuration as one JSON object. Keys flagged secret in the table
 * (librdkafka credentials among them) show "***"; a password inside a URL
 * (redis://user:password@host) shows as "***" whatever the key. */
void config_dump_json(const config_t *cfg, FILE *out);

/* Writes Markdown documentation of every key (docs/CONFIG.md is generated from this). */
void config_write_docs(FILE *out);

#endif
