#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util/buf.h"

/* CONFIG_KAFKA rows describe librdkafka properties (kafka.<property>) that tidewatch does not
 * store itself: they carry the secret flag and their documentation; config_set passes every
 * kafka.* key through, listed or not. */
/* CONFIG_SHARE: a fraction from 0 to 1 held in a double (flood.max_share). */
typedef enum { CONFIG_STRING, CONFIG_INT, CONFIG_SHARE, CONFIG_ENUM, CONFIG_KAFKA } config_type_t;

/* Masked in `config show`: decided here, by the table, never guessed from the key name. */
#define CONFIG_SECRET 1u

typedef struct {
    const char *name;
    int value;
} config_choice_t;

typedef struct {
    const char *key;
    config_type_t type;
    const char *default_value;
    size_t offset;
    long min;
    long max;
    const config_choice_t *choices; /* CONFIG_ENUM: ends with a NULL name */
    unsigned flags;
    const char *help;
} config_entry_t;

/* Enum fields are written through an int: every enum here must have int's size. */
_Static_assert(sizeof(log_level_t) == sizeof(int), "log_level_t is not int-sized");
_Static_assert(sizeof(log_format_t) == sizeof(int), "log_format_t is not int-sized");
_Static_assert(sizeof(config_offset_reset_t) == sizeof(int), "enum is not int-sized");
_Static_assert(sizeof(config_unavailable_t) == sizeof(int), "enum is not int-sized");
_Static_assert(sizeof(config_scan_emit_t) == sizeof(int), "enum is not int-sized");
_Static_assert(sizeof(config_scan_store_t) == sizeof(int), "enum is not int-sized");

static const config_choice_t log_level_choices[] = {{"debug", LOG_LEVEL_DEBUG},
                                                    {"info", LOG_LEVEL_INFO},
                                                    {"warn", LOG_LEVEL_WARN},
                                                    {"warning", LOG_LEVEL_WARN},
                                                    {"error", LOG_LEVEL_ERROR},
                                                    {"off", LOG_LEVEL_OFF},
                                                    {NULL, 0}};
static const config_choice_t log_format_choices[] = {
    {"auto", LOG_FORMAT_AUTO}, {"json", LOG_FORMAT_JSON}, {"text", LOG_FORMAT_TEXT}, {NULL, 0}};
static const config_choice_t offset_reset_choices[] = {
    {"earliest", CONFIG_OFFSET_RESET_EARLIEST}, {"latest", CONFIG_OFFSET_RESET_LATEST}, {NULL, 0}};
static const config_choice_t unavailable_choices[] = {
    {"fail-open", CONFIG_UNAVAILABLE_FAIL_OPEN}, {"pause", CONFIG_UNAVAILABLE_PAUSE}, {NULL, 0}};
static const config_choice_t scan_emit_choices[] = {
    {"alerts", CONFIG_SCAN_EMIT_ALERTS}, {"all", CONFIG_SCAN_EMIT_ALL}, {NULL, 0}};
static const config_choice_t scan_store_choices[] = {
    {"memory", CONFIG_SCAN_STORE_MEMORY}, {"redis", CONFIG_SCAN_STORE_REDIS}, {NULL, 0}};

#define STR_ENTRY(key, field, def, help)                                                           \
    {                                                                                              \
        key, CONFIG_STRING, def, offsetof(config_t, field), 0, 0, NULL, 0, help                    \
    }
#define INT_ENTRY(key, field, def, min, max, help)                                                 \
    {                                                                                              \
        key, CONFIG_INT, def, offsetof(config_t, field), min, max, NULL, 0, help                   \
    }
#define SHARE_ENTRY(key, field, def, help)                                                         \
    {                                                                                              \
        key, CONFIG_SHARE, def, offsetof(config_t, field), 0, 1, NULL, 0, help                     \
    }
#define ENUM_ENTRY(key, field, def, choices, help)                                                 \
    {                                                                                              \
        key, CONFIG_ENUM, def, offsetof(config_t, field), 0, 0, choices, 0, help                   \
    }
#define KAFKA_SECRET_ENTRY(key, help)                                                              \
    {                                                                                              \
        key, CONFIG_KAFKA, "", 0, 0, 0, NULL, CONFIG_SECRET, help                                  \
    }

static const config_entry_t config_table[] = {
    STR_ENTRY("brokers", brokers, "localhost:9092", "Kafka bootstrap servers, host:port,..."),
    STR_ENTRY("group", group, "tidewatch", "Kafka consumer group shared by all workers"),
    STR_ENTRY("input_topic", input_topic, "posts", "Topic the posts are read from"),
    STR_ENTRY("output_topic", output_topic, "alerts", "Topic alerts are written to"),
    STR_ENTRY("dlq_topic", dlq_topic, "posts.dlq",
              "Dead-letter topic for posts that cannot be decoded (reason in a header)"),
    ENUM_ENTRY("auto_offset_reset", auto_offset_reset, "earliest", offset_reset_choices,
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
    ENUM_ENTRY("log_level", log_level, "info", log_level_choices,
               "Least severe level written to stderr (warning = warn)"),
    ENUM_ENTRY("log.format", log_format, "auto", log_format_choices,
               "Log lines on stderr: json (one object per line), text (time, level, message, "
               "key=value; coloured on a terminal unless NO_COLOR is set) or auto = text when "
               "stderr is a terminal, else json"),
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
              "truncated = original length), so one giant post cannot block a partition; must "
              "stay 64 KiB under kafka.message.max.bytes (checked at startup)"),
    INT_ENTRY("alert_max_bytes", alert_max_bytes, "262144", 4096, 16777216,
              "Alerts longer than this keep their first matches only (truncated: true), so a "
              "post matching thousands of rules still gets an alert the brokers accept; must "
              "stay 64 KiB under kafka.message.max.bytes (checked at startup)"),
    INT_ENTRY("dedup.window_s", dedup_window_s, "86400", 1, 31536000,
              "How long fingerprints and cluster counters are remembered"),
    INT_ENTRY("dedup.alert_min_count", dedup_alert_min_count, "0", 0, 1000000000,
              "Alert on a post without rule hits once its cluster has this many posts (0 = off)"),
    INT_ENTRY("dedup.verify_pct", dedup_verify_pct, "50", 0, 100,
              "A band match joins a cluster only if this % of the MinHash signature agrees with "
              "the cluster's (estimated Jaccard); 0 trusts every band match. See docs/DEDUP.md"),
    ENUM_ENTRY("dedup.on_unavailable", dedup_on_unavailable, "fail-open", unavailable_choices,
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
    STR_ENTRY("shadow_topic", shadow_topic, "",
              "Topic for the hits of shadow rules (and of muted ones), as alerts marked "
              "\"shadow\": true; empty = shadow hits are only counted "
              "(tidewatch_rule_hits_total{mode=\"shadow\"})"),
    SHARE_ENTRY("flood.max_share", flood_max_share, "0",
                "Flood guard: a live rule hitting more than this share of the posts in the window "
                "is muted (falls back to shadow) fleet-wide; e.g. 0.02; 0 = off. A rule's own "
                "`flood:` overrides it (docs/RULES.md)"),
    INT_ENTRY("flood.min_posts", flood_min_posts, "1000", 1, 1000000000,
              "Flood guard: posts the window must hold (fleet-wide) before a share counts"),
    INT_ENTRY("flood.window_s", flood_window_s, "300", 30, 86400,
              "Flood guard: the sliding window shares are measured over"),
    INT_ENTRY("flood.cooloff_s", flood_cooloff_s, "3600", 1, 604800,
              "Flood guard: how long a mute lasts, unless a reload changes the rule first"),
    ENUM_ENTRY("scan.emit", scan_emit, "alerts", scan_emit_choices,
               "scan output: alerts (what run publishes) or all (one record per post with its "
               "cluster, for evaluation)"),
    ENUM_ENTRY("scan.store", scan_store, "memory", scan_store_choices,
               "Duplicate store of scan: memory (in process) or redis (the redis URL, as run "
               "uses it; to evaluate the Redis store on files)"),
    INT_ENTRY("redis_timeout_ms", redis_timeout_ms, "2000", 10, 600000,
              "Connect and command timeout for Redis"),
    INT_ENTRY("shutdown_timeout_s", shutdown_timeout_s, "25", 1, 3600,
              "Longest drain on SIGTERM before the watchdog exits"),
    INT_ENTRY("metrics.max_rule_series", metrics_max_rule_series, "10000", 0, 10000000,
              "Rules with a tidewatch_rule_hits_total series of their own (in rules-file "
              "order); hits of the rest are summed under rule=\"_other\""),
    INT_ENTRY("health.max_loop_silence_s", health_max_loop_silence_s, "30", 1, 3600,
              "/healthz fails once the poll loop has not turned for this long"),
    /* The librdkafka properties that hold credentials (librdkafka marks most of them
     * sensitive itself). Add a row here when a new one appears: only listed keys are masked. */
    KAFKA_SECRET_ENTRY("kafka.sasl.username", "SASL username (PLAIN, SCRAM)"),
    KAFKA_SECRET_ENTRY("kafka.sasl.password", "SASL password (PLAIN, SCRAM)"),
    KAFKA_SECRET_ENTRY("kafka.sasl.oauthbearer.config", "SASL/OAUTHBEARER configuration"),
    KAFKA_SECRET_ENTRY("kafka.sasl.oauthbearer.client.secret", "OIDC client secret"),
    KAFKA_SECRET_ENTRY("kafka.ssl.key.password", "Passphrase of the client's private key"),
    KAFKA_SECRET_ENTRY("kafka.ssl.key.pem", "The client's private key (PEM)"),
    KAFKA_SECRET_ENTRY("kafka.ssl.keystore.password", "Password of the client's PKCS#12 keystore"),
};

#define CONFIG_NENTRIES (sizeof(config_table) / sizeof(config_table[0]))

static const config_entry_t *config_entry_find(const char *key)
{
    for (size_t i = 0; i < CONFIG_NENTRIES; i++)
        if (config_table[i].type != CONFIG_KAFKA && strcmp(config_table[i].key, key) == 0)
            return &config_table[i];
    return NULL;
}

/* Appends "a, b, c": the values an enum key accepts, for its error message and its docs. */
static void config_choices_list(const config_choice_t *choices, buf_t *out)
{
    for (const config_choice_t *c = choices; c->name; c++) {
        if (c != choices)
            buf_append_str(out, ", ");
        buf_append_str(out, c->name);
    }
}

static int config_set_enum(const config_entry_t *e, void *field, const char *value,
                           const char *origin, tw_diag_t *diag)
{
    for (const config_choice_t *c = e->choices; c->name; c++) {
        if (strcmp(c->name, value) == 0) {
            *(int *)field = c->value;
            return 0;
        }
    }
    buf_t allowed;
    buf_init(&allowed);
    config_choices_list(e->choices, &allowed);
    tw_diag_add(diag, "%s: %s: '%s' is not one of: %s", origin, e->key, value,
                allowed.failed || !allowed.data ? "?" : allowed.data);
    buf_fini(&allowed);
    return TW_ERR_CONFIG;
}

static int config_set_entry(config_t *cfg, const config_entry_t *e, const char *value,
                            const char *origin, tw_diag_t *diag)
{
    void *field = (char *)cfg + e->offset;
    if (e->type == CONFIG_ENUM)
        return config_set_enum(e, field, value, origin, diag);
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
    if (e->type == CONFIG_SHARE) {
        double share = strtod(value, &end);
        if (errno || end == value || *end != '\0' || !(share >= 0 && share <= 1)) {
            tw_diag_add(diag, "%s: %s: '%s' is not a share from 0 to 1", origin, e->key, value);
            return TW_ERR_CONFIG;
        }
        *(double *)field = share;
        return 0;
    }
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
        if (config_table[i].type == CONFIG_KAFKA)
            continue;
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
        } else if (v->type == YAML_SCALAR_NODE &&
                   strlen((const char *)v->data.scalar.value) != v->data.scalar.length) {
            /* "a\0b" would silently become "a" */
            tw_diag_add(diag, "%s: %s: value contains a NUL character", origin, key);
            rc = TW_ERR_CONFIG;
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

/* Nesting a configuration needs is a few levels; libyaml's document loader takes minutes on a
 * million '[' (issue 12, hostile configs), so the depth is checked with the event parser first. */
enum { CONFIG_MAX_YAML_DEPTH = 64 };

/* Returns TW_ERR_CONFIG (with a diagnostic) when the YAML in f nests deeper than
 * CONFIG_MAX_YAML_DEPTH, else 0; syntax errors are left to the loader to report. */
static int config_check_yaml_depth(FILE *f, const char *path, tw_diag_t *diag)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return TW_ERR_NOMEM;
    yaml_parser_set_input_file(&parser, f);
    int rc = 0, depth = 0;
    for (bool done = false; !done;) {
        yaml_event_t event;
        if (!yaml_parser_parse(&parser, &event))
            break;
        if (event.type == YAML_SEQUENCE_START_EVENT || event.type == YAML_MAPPING_START_EVENT) {
            if (++depth > CONFIG_MAX_YAML_DEPTH) {
                tw_diag_add(diag, "%s:%zu: YAML nested deeper than %d levels", path,
                            event.start_mark.line + 1, CONFIG_MAX_YAML_DEPTH);
                rc = TW_ERR_CONFIG;
                done = true;
            }
        } else if (event.type == YAML_SEQUENCE_END_EVENT || event.type == YAML_MAPPING_END_EVENT) {
            depth--;
        } else if (event.type == YAML_STREAM_END_EVENT) {
            done = true;
        }
        yaml_event_delete(&event);
    }
    yaml_parser_delete(&parser);
    rewind(f);
    return rc;
}

int config_load_file(config_t *cfg, const char *path, tw_diag_t *diag)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        tw_diag_add(diag, "%s: cannot open: %s", path, strerror(errno));
        return TW_ERR_IO;
    }
    int rc = config_check_yaml_depth(f, path, diag);
    if (rc != 0) {
        fclose(f);
        return rc;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
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
    /* yaml_parser_load stops after the first document: what follows is checked too, or a
     * second document (or junk after an empty one) would be ignored without a word. */
    if (!yaml_parser_load(&parser, &doc)) {
        tw_diag_add(diag, "%s:%zu: %s", path, parser.problem_mark.line + 1,
                    parser.problem ? parser.problem : "YAML syntax error");
        rc = TW_ERR_CONFIG;
    } else {
        yaml_node_t *next = yaml_document_get_root_node(&doc);
        if (next) {
            tw_diag_add(diag, "%s:%zu: more than one YAML document; put all keys in one", path,
                        next->start_mark.line + 1);
            rc = TW_ERR_CONFIG;
        }
        yaml_document_delete(&doc);
    }
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
            if (config_table[i].type == CONFIG_KAFKA)
                continue;
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

static bool config_kafka_is_secret(const char *prop)
{
    for (size_t i = 0; i < CONFIG_NENTRIES; i++) {
        const config_entry_t *e = &config_table[i];
        if (e->type == CONFIG_KAFKA && (e->flags & CONFIG_SECRET) &&
            strcmp(e->key + strlen("kafka."), prop) == 0)
            return true;
    }
    return false;
}

const char *config_enum_name(const char *key, int value)
{
    const config_entry_t *e = config_entry_find(key);
    if (!e || e->type != CONFIG_ENUM)
        return NULL;
    for (const config_choice_t *c = e->choices; c->name; c++)
        if (c->value == value)
            return c->name;
    return NULL;
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

/* Appends value as a JSON string: "***" for a secret, else with any URL password masked. */
static void config_dump_value(buf_t *b, const char *value, bool secret, buf_t *scratch)
{
    if (secret && value[0]) {
        buf_append_json_string(b, "***", 3);
        return;
    }
    buf_reset(scratch);
    config_mask_url(value, scratch);
    buf_append_json_string(b, scratch->data ? scratch->data : "", scratch->len);
}

void config_dump_json(const config_t *cfg, FILE *out)
{
    buf_t b, scratch;
    buf_init(&b);
    buf_init(&scratch);
    buf_append_char(&b, '{');
    bool first = true;
    for (size_t i = 0; i < CONFIG_NENTRIES; i++) {
        const config_entry_t *e = &config_table[i];
        if (e->type == CONFIG_KAFKA)
            continue; /* shown below, when set */
        if (!first)
            buf_append_char(&b, ',');
        first = false;
        buf_append_json_string(&b, e->key, strlen(e->key));
        buf_append_char(&b, ':');
        const void *field = (const char *)cfg + e->offset;
        if (e->type == CONFIG_INT) {
            buf_append_i64(&b, *(const long *)field);
        } else if (e->type == CONFIG_SHARE) {
            buf_printf(&b, "%g", *(const double *)field);
        } else if (e->type == CONFIG_ENUM) {
            const char *name = config_enum_name(e->key, *(const int *)field);
            config_dump_value(&b, name ? name : "?", false, &scratch);
        } else {
            const char *s = *(char *const *)field;
            config_dump_value(&b, s ? s : "", e->flags & CONFIG_SECRET, &scratch);
        }
    }
    for (size_t i = 0; i < cfg->nkafka; i++) {
        buf_append_str(&b, ",\"kafka.");
        buf_append_str(&b, cfg->kafka[i].key);
        buf_append_str(&b, "\":");
        config_dump_value(&b, cfg->kafka[i].value, config_kafka_is_secret(cfg->kafka[i].key),
                          &scratch);
    }
    buf_append_str(&b, "}\n");
    if (!b.failed)
        fputs(b.data, out);
    buf_fini(&b);
    buf_fini(&scratch);
}

/* The environment variable that sets key: TIDEWATCH_FIELDS_TEXT, TIDEWATCH_KAFKA__SASL_PASSWORD. */
static void config_env_name(const config_entry_t *e, char *env, size_t size)
{
    bool kafka = e->type == CONFIG_KAFKA;
    const char *key = kafka ? e->key + strlen("kafka.") : e->key;
    size_t j = (size_t)snprintf(env, size, kafka ? "TIDEWATCH_KAFKA__" : "TIDEWATCH_");
    for (const char *s = key; *s && j + 1 < size; s++)
        env[j++] = *s == '.' ? '_' : (char)toupper((unsigned char)*s);
    env[j] = '\0';
}

/* The type column: integer, string, one of the enum's values, librdkafka; secret appended. */
static void config_type_text(const config_entry_t *e, buf_t *out)
{
    switch (e->type) {
    case CONFIG_INT:
        buf_append_str(out, "integer");
        break;
    case CONFIG_STRING:
        buf_append_str(out, "string");
        break;
    case CONFIG_SHARE:
        buf_append_str(out, "share from 0 to 1");
        break;
    case CONFIG_ENUM:
        buf_append_str(out, "one of: ");
        config_choices_list(e->choices, out);
        break;
    case CONFIG_KAFKA:
        buf_append_str(out, "librdkafka");
        break;
    }
    if (e->flags & CONFIG_SECRET)
        buf_append_str(out, ", secret");
}

void config_write_docs(FILE *out)
{
    fputs("# Configuration\n\n"
          "Generated by `tidewatch config docs` from the table in `common/config/config.c`.\n\n"
          "Precedence: defaults < YAML file (`--config`) < `TIDEWATCH_<KEY>` environment "
          "(upper case, `.` as `_`) < command-line flags.\n"
          "Any `kafka.<property>` key is passed to librdkafka unchanged (consumer and "
          "producer), except the few the delivery guarantees rest on, which are refused with "
          "the reason (OPERATIONS.md, \"Kafka properties tidewatch refuses\"); from the "
          "environment use `TIDEWATCH_KAFKA__<PROPERTY>` with `_` for `.`. Values are checked "
          "when the configuration is loaded: one outside its key's type (an integer out of "
          "range, a word not among the listed ones) is refused with its file and line. "
          "`tidewatch config show` prints `***` for the keys marked secret and for the "
          "password inside a URL (`redis://user:password@host`).\n\n"
          "| key | type | default | environment | description |\n"
          "|---|---|---|---|---|\n",
          out);
    buf_t type;
    buf_init(&type);
    for (size_t i = 0; i < CONFIG_NENTRIES; i++) {
        const config_entry_t *e = &config_table[i];
        char env[128];
        config_env_name(e, env, sizeof(env));
        buf_reset(&type);
        config_type_text(e, &type);
        fprintf(out, "| `%s` | %s | `%s` | `%s` | %s |\n", e->key,
                type.failed || !type.data ? "?" : type.data, e->default_value, env, e->help);
    }
    buf_fini(&type);
}
