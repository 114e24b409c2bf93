#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util/buf.h"

typedef enum { CONFIG_STRING, CONFIG_INT } config_type_t;

typedef struct {
    const char *key;
    config_type_t type;
    const char *default_value;
    size_t offset;
    long min;
    long max;
    const char *help;
} config_entry_t;

#define STR_ENTRY(key, field, def, help)                                                           \
    {                                                                                              \
        key, CONFIG_STRING, def, offsetof(config_t, field), 0, 0, help                             \
    }
#define INT_ENTRY(key, field, def, min, max, help)                                                 \
    {                                                                                              \
        key, CONFIG_INT, def, offsetof(config_t, field), min, max, help                            \
    }

static const config_entry_t config_table[] = {
    STR_ENTRY("brokers", brokers, "localhost:9092", "Kafka bootstrap servers, host:port,..."),
    STR_ENTRY("group", group, "tidewatch", "Kafka consumer group shared by all workers"),
    STR_ENTRY("input_topic", input_topic, "posts", "Topic the posts are read from"),
    STR_ENTRY("output_topic", output_topic, "alerts", "Topic alerts are written to"),
    STR_ENTRY("dlq_topic", dlq_topic, "posts.dlq",
              "Dead-letter topic for posts that cannot be decoded (reason in a header)"),
    STR_ENTRY("auto_offset_reset", auto_offset_reset, "earliest",
              "Where a new consumer group starts: earliest (never skip posts) or latest"),
    STR_ENTRY("rules", rules_path, "", "Rules file (YAML); required for run and scan"),
    STR_ENTRY("rules_cache_dir", rules_cache_dir, "auto",
              "Directory for compiled rule databases, reused when the rules, tidewatch build, "
              "Hyperscan version and CPU are unchanged: auto = $XDG_CACHE_HOME/tidewatch or "
              "/tmp/tidewatch-cache-<uid>; off = always compile"),
    STR_ENTRY("redis", redis_url, "",
              "Duplicate store: redis://[user:password@]host:port/db, or Redis Cluster "
              "redis+cluster://[user:password@]host:port,host:port,... (seed nodes, database "
              "0; docs/DEDUP.md); empty = in-process memory"),
    STR_ENTRY("http", http_addr, "", "Address for /metrics /healthz /readyz, e.g. 0.0.0.0:9464"),
    STR_ENTRY("log_level", log_level, "info", "debug | info | warn | error | off"),
    STR_ENTRY("fields.id", field_id, "id", "JSON field holding the post id (string or number)"),
    STR_ENTRY("fields.text", field_text, "text", "JSON field holding the post text"),
    STR_ENTRY("fields.author", field_author, "author", "JSON field holding the author"),
    STR_ENTRY("fields.ts", field_ts, "ts", "JSON field holding the post time (epoch or RFC 3339)"),
    STR_ENTRY("fields.lang", field_lang, "lang", "JSON field holding the language code"),
    STR_ENTRY("fields.url", field_url, "url", "JSON field holding the post URL"),
    INT_ENTRY("batch_size", batch_size, "500", 1, 100000, "Maximum posts per batch"),
    INT_ENTRY("batch_timeout_ms", batch_timeout_ms, "100", 1, 60000,
              "Longest wait to fill a batch"),
    INT_ENTRY("threads", threads, "0", 0, 1024,
              "Threads that decode, normalize, match and fingerprint the posts of a batch "
              "(sharing one compiled rule database); dedup and publishing stay in input order. "
              "0 = the CPUs this process may use (sched_getaffinity)"),
    INT_ENTRY("max_post_bytes", max_post_bytes, "65536", 64, 16777216,
              "Posts larger than this go to the dead-letter topic as too_large"),
    INT_ENTRY("dlq_max_bytes", dlq_max_bytes, "524288", 1024, 16777216,
              "Dead-letter values longer than this keep their first bytes only (header "
              "truncated = original length), so one giant post cannot block a partition"),
    INT_ENTRY("dedup.window_s", dedup_window_s, "86400", 1, 31536000,
              "How long fingerprints and cluster counters are remembered"),
    INT_ENTRY("dedup.alert_min_count", dedup_alert_min_count, "0", 0, 1000000000,
              "Alert on a post without rule hits once its cluster has this many posts (0 = off)"),
    INT_ENTRY("dedup.verify_pct", dedup_verify_pct, "50", 0, 100,
              "A band match joins a cluster only if this % of the MinHash signature agrees with "
              "the cluster's (estimated Jaccard); 0 trusts every band match. See docs/DEDUP.md"),
    STR_ENTRY("dedup.on_unavailable", dedup_on_unavailable, "fail-open",
              "When Redis cannot answer: fail-open (alerts go out marked duplicate unavailable; "
              "each worker still recognises repeats it saw itself, in memory) or pause (stop "
              "fetching, stay in the group, retry the batch until Redis answers)"),
    STR_ENTRY("campaign.milestones", campaign_milestones, "",
              "Cluster sizes that raise one campaign record each for the whole fleet, e.g. "
              "10,100,1000 (empty = off)"),
    INT_ENTRY("campaign.min_authors", campaign_min_authors, "1", 0, 1000000000,
              "Distinct authors a cluster needs, besides its size, for a campaign milestone"),
    STR_ENTRY("campaign.topic", campaign_topic, "",
              "Topic for campaign records (key campaign:<cluster>:<milestone>); empty = the "
              "output topic"),
    STR_ENTRY("scan.emit", scan_emit, "alerts",
              "scan output: alerts (what run publishes) or all (one record per post with its "
              "cluster, for evaluation)"),
    INT_ENTRY("redis_timeout_ms", redis_timeout_ms, "2000", 10, 600000,
              "Connect and command timeout for Redis"),
    INT_ENTRY("shutdown_timeout_s", shutdown_timeout_s, "25", 1, 3600,
              "Longest drain on SIGTERM before the watchdog exits"),
    INT_ENTRY("metrics.max_rule_series", metrics_max_rule_series, "10000", 0, 10000000,
              "Rules with a tidewatch_rule_hits_total series of their own (in rules-file "
              "order); hits of the rest are summed under rule=\"_other\""),
    INT_ENTRY("health.max_loop_silence_s", health_max_loop_silence_s, "30", 1, 3600,
              "/healthz fails once the poll loop has not turned for this long"),
};

#define CONFIG_NENTRIES (sizeof(config_table) / sizeof(config_table[0]))

static const config_entry_t *config_entry_find(const char *key)
{
    for (size_t i = 0; i < CONFIG_NENTRIES; i++)
        if (strcmp(config_table[i].key, key) == 0)
            return &config_table[i];
    return NULL;
}

static int config_set_entry(config_t *cfg, const config_entry_t *e, const char *value,
                            const char *origin, tw_diag_t *diag)
{
    void *field = (char *)cfg + e->offset;
    if (e->type == CONFIG_STRING) {
        char *copy = strdup(value);
        if (!copy)
            return TW_ERR_NOMEM;
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    errno = 0;
    char *end = NULL;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end != '\0') {
        tw_diag_add(diag, "%s: %s: '%s' is not an integer", origin, e->key, value);
        return TW_ERR_CONFIG;
    }
    if (v < e->min || v > e->max) {
        tw_diag_add(diag, "%s: %s: %ld is outside [%ld, %ld]", origin, e->key, v, e->min, e->max);
        return TW_ERR_CONFIG;
    }
    *(long *)field = v;
    return 0;
}

static int config_set_passthrough(config_t *cfg, const char *prop, const char *value,
                                  const char *origin)
{
    for (size_t i = 0; i < cfg->nkafka; i++) {
        if (strcmp(cfg->kafka[i].key, prop) == 0) {
            char *v = strdup(value), *o = strdup(origin);
            if (!v || !o) {
                free(v);
                free(o);
                return TW_ERR_NOMEM;
            }
            free(cfg->kafka[i].value);
            free(cfg->kafka[i].origin);
            cfg->kafka[i].value = v;
            cfg->kafka[i].origin = o;
            return 0;
        }
    }
    config_passthrough_t *grown = realloc(cfg->kafka, (cfg->nkafka + 1) * sizeof(*grown));
    if (!grown)
        return TW_ERR_NOMEM;
    cfg->kafka = grown;
    config_passthrough_t *p = &cfg->kafka[cfg->nkafka];
    p->key = strdup(prop);
    p->value = strdup(value);
    p->origin = strdup(origin);
    if (!p->key || !p->value || !p->origin) {
        free(p->key);
        free(p->value);
        free(p->origin);
        return TW_ERR_NOMEM;
    }
    cfg->nkafka++;
    return 0;
}

int config_set(config_t *cfg, const char *key, const char *value, const char *origin,
               tw_diag_t *diag)
{
    if (strncmp(key, "kafka.", 6) == 0 && key[6]) {
        return config_set_passthrough(cfg, key + 6, value, origin);
    }
    const config_entry_t *e = config_entry_find(key);
    if (!e) {
        tw_diag_add(diag, "%s: unknown configuration key '%s'", origin, key);
        return TW_ERR_CONFIG;
    }
    return config_set_entry(cfg, e, value, origin, diag);
}

int config_init(config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < CONFIG_NENTRIES; i++) {
        int rc =
            config_set_entry(cfg, &config_table[i], config_table[i].default_value, "default", NULL);
        if (rc != 0) {
            config_fini(cfg);
            return rc;
        }
    }
    return 0;
}

void config_fini(config_t *cfg)
{
    for (size_t i = 0; i < CONFIG_NENTRIES; i++)
        if (config_table[i].type == CONFIG_STRING)
            free(*(char **)((char *)cfg + config_table[i].offset));
    for (size_t i = 0; i < cfg->nkafka; i++) {
        free(cfg->kafka[i].key);
        free(cfg->kafka[i].value);
        free(cfg->kafka[i].origin);
    }
    free(cfg->kafka);
    memset(cfg, 0, sizeof(*cfg));
}

/* Walks a YAML mapping node, building dotted keys; leaves must be scalars. */
static int config_walk_yaml(config_t *cfg, yaml_document_t *doc, yaml_node_t *node,
                            const char *prefix, const char *path, tw_diag_t *diag)
{
    int rc = 0;
    for (yaml_node_pair_t *pair = node->data.mapping.pairs.start;
         pair < node->data.mapping.pairs.top; pair++) {
        yaml_node_t *k = yaml_document_get_node(doc, pair->key);
        yaml_node_t *v = yaml_document_get_node(doc, pair->value);
        if (!k || !v)
            continue;
        int line = (int)k->start_mark.line + 1;
        if (k->type != YAML_SCALAR_NODE) {
            tw_diag_add(diag, "%s:%d: configuration keys must be plain strings", path, line);
            rc = TW_ERR_CONFIG;
            continue;
        }
        char key[256];
        int n = snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "",
                         (const char *)k->data.scalar.value);
        if (n < 0 || (size_t)n >= sizeof(key)) {
            tw_diag_add(diag, "%s:%d: key too long", path, line);
            rc = TW_ERR_CONFIG;
            continue;
        }
        char origin[512];
        snprintf(origin, sizeof(origin), "%s:%d", path, line);
        if (v->type == YAML_MAPPING_NODE) {
            int sub = config_walk_yaml(cfg, doc, v, key, path, diag);
            if (sub != 0)
                rc = sub;
        } else if (v->type == YAML_SCALAR_NODE) {
            int sub = config_set(cfg, key, (const char *)v->data.scalar.value, origin, diag);
            if (sub != 0)
                rc = sub;
        } else {
            tw_diag_add(diag, "%s: %s: expected a single value, found a list", origin, key);
            rc = TW_ERR_CONFIG;
        }
    }
    return rc;
}

int config_load_file(config_t *cfg, const char *path, tw_diag_t *diag)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        tw_diag_add(diag, "%s: cannot open: %s", path, strerror(errno));
        return TW_ERR_IO;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    int rc = 0;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return TW_ERR_NOMEM;
    }
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        tw_diag_add(diag, "%s:%zu: %s", path, parser.problem_mark.line + 1,
                    parser.problem ? parser.problem : "YAML syntax error");
        yaml_parser_delete(&parser);
        fclose(f);
        return TW_ERR_CONFIG;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && root->type == YAML_MAPPING_NODE) {
        rc = config_walk_yaml(cfg, &doc, root, "", path, diag);
    } else if (root && !(root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0)) {
        tw_diag_add(diag, "%s:%zu: the configuration must be a mapping of keys", path,
                    root->start_mark.line + 1);
        rc = TW_ERR_CONFIG;
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

int config_load_env(config_t *cfg, char **environ_vars, tw_diag_t *diag)
{
    static const char prefix[] = "TIDEWATCH_";
    static const char kafka_prefix[] = "TIDEWATCH_KAFKA__";
    int rc = 0;
    for (char **ev = environ_vars; ev && *ev; ev++) {
        const char *eq = strchr(*ev, '=');
        if (!eq || strncmp(*ev, prefix, sizeof(prefix) - 1) != 0)
            continue;
        char name[256];
        size_t nlen = (size_t)(eq - *ev);
        if (nlen >= sizeof(name))
            continue;
        memcpy(name, *ev, nlen);
        name[nlen] = '\0';
        char origin[300];
        snprintf(origin, sizeof(origin), "environment %s", name);
        char key[256];
        if (strncmp(name, kafka_prefix, sizeof(kafka_prefix) - 1) == 0) {
            size_t j = 0;
            j += (size_t)snprintf(key, sizeof(key), "kafka.");
            for (const char *s = name + sizeof(kafka_prefix) - 1; *s && j + 1 < sizeof(key); s++)
                key[j++] = *s == '_' ? '.' : (char)tolower((unsigned char)*s);
            key[j] = '\0';
            int sub = config_set(cfg, key, eq + 1, origin, diag);
            if (sub != 0)
                rc = sub;
            continue;
        }
        const config_entry_t *match = NULL;
        for (size_t i = 0; i < CONFIG_NENTRIES && !match; i++) {
            const char *k = config_table[i].key;
            const char *s = name + sizeof(prefix) - 1;
            size_t j = 0;
            for (; k[j] && s[j]; j++) {
                char want = k[j] == '.' ? '_' : (char)toupper((unsigned char)k[j]);
                if (want != s[j])
                    break;
            }
            if (!k[j] && !s[j])
                match = &config_table[i];
        }
        /* TIDEWATCH_* variables that are not config keys (TIDEWATCH_BIN in tests, say) are
         * left alone rather than refused: the environment is shared with other tools. */
        if (!match)
            continue;
        int sub = config_set_entry(cfg, match, eq + 1, origin, diag);
        if (sub != 0)
            rc = sub;
    }
    return rc;
}

static bool config_is_secret(const char *key)
{
    return strstr(key, "password") || strstr(key, "secret") || strstr(key, "token") ||
           strstr(key, "sasl.oauthbearer.config") || strstr(key, ".pem") ||
           strstr(key, "key.password");
}

/* Masks the password part of redis://user:password@host. */
static void config_mask_url(const char *url, buf_t *out)
{
    const char *scheme = strstr(url, "://");
    const char *at = strchr(url, '@');
    const char *colon = scheme ? strchr(scheme + 3, ':') : NULL;
    if (scheme && at && colon && colon < at) {
        buf_append(out, url, (size_t)(colon + 1 - url));
        buf_append_str(out, "***");
        buf_append_str(out, at);
    } else {
        buf_append_str(out, url);
    }
}

void config_dump_json(const config_t *cfg, FILE *out)
{
    buf_t b, masked;
    buf_init(&b);
    buf_init(&masked);
    buf_append_char(&b, '{');
    for (size_t i = 0; i < CONFIG_NENTRIES; i++) {
        const config_entry_t *e = &config_table[i];
        if (i)
            buf_append_char(&b, ',');
        buf_append_json_string(&b, e->key, strlen(e->key));
        buf_append_char(&b, ':');
        const void *field = (const char *)cfg + e->offset;
        if (e->type == CONFIG_INT) {
            buf_append_i64(&b, *(const long *)field);
        } else {
            const char *s = *(char *const *)field;
            buf_reset(&masked);
            config_mask_url(s ? s : "", &masked);
            buf_append_json_string(&b, masked.data ? masked.data : "", masked.len);
        }
    }
    for (size_t i = 0; i < cfg->nkafka; i++) {
        buf_append_str(&b, ",\"kafka.");
        buf_append_str(&b, cfg->kafka[i].key);
        buf_append_str(&b, "\":");
        const char *v = config_is_secret(cfg->kafka[i].key) ? "***" : cfg->kafka[i].value;
        buf_append_json_string(&b, v, strlen(v));
    }
    buf_append_str(&b, "}\n");
    if (!b.failed)
        fputs(b.data, out);
    buf_fini(&b);
    buf_fini(&masked);
}

void config_write_docs(FILE *out)
{
    fputs("# Configuration\n\n"
          "Generated by `tidewatch config docs` from the table in `common/config/config.c`.\n\n"
          "Precedence: defaults < YAML file (`--config`) < `TIDEWATCH_<KEY>` environment "
          "(upper case, `.` as `_`) < command-line flags.\n"
          "Any `kafka.<property>` key is passed to librdkafka unchanged (consumer and "
          "producer); from the environment use `TIDEWATCH_KAFKA__<PROPERTY>` with `_` for "
          "`.`.\n\n"
          "| key | type | default | environment | description |\n"
          "|---|---|---|---|---|\n",
          out);
    for (size_t i = 0; i < CONFIG_NENTRIES; i++) {
        const config_entry_t *e = &config_table[i];
        char env[128] = "TIDEWATCH_";
        size_t j = strlen(env);
        for (const char *s = e->key; *s && j + 1 < sizeof(env); s++)
            env[j++] = *s == '.' ? '_' : (char)toupper((unsigned char)*s);
        env[j] = '\0';
        fprintf(out, "| `%s` | %s | `%s` | `%s` | %s |\n", e->key,
                e->type == CONFIG_INT ? "integer" : "string", e->default_value, env, e->help);
    }
}
