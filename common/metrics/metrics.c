#include "metrics/metrics.h"

#include "util/str_index.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "util/err.h"

static const double scan_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                     0.1,    0.25,  0.5,    1,     2.5,  5,     10};
static const double batch_bounds[] = {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};
static const double redis_bounds[] = {0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                      0.05,    0.1,    0.25,  0.5,    1,     2.5,  5};
static const double delay_bounds[] = {0.5, 1,   2,   5,    10,   30,    60,
                                      120, 300, 600, 1800, 3600, 21600, 86400};

#define NBOUNDS(a) ((int)(sizeof(a) / sizeof((a)[0])))

metrics_t tw_metrics = {
    .redis_up = -1,
    .scan_seconds = {.bounds = scan_bounds, .nbounds = NBOUNDS(scan_bounds), .sum_scale = 1e9},
    .batch_posts = {.bounds = batch_bounds, .nbounds = NBOUNDS(batch_bounds), .sum_scale = 1},
    .redis_seconds = {.bounds = redis_bounds, .nbounds = NBOUNDS(redis_bounds), .sum_scale = 1e9},
    .alert_delay_seconds = {.bounds = delay_bounds,
                            .nbounds = NBOUNDS(delay_bounds),
                            .sum_scale = 1e9},
};

/* Guards the published rule metrics, reference counts, the lag table and build info. Taken
 * at scrape time, once per batch, at rule loads and every statistics interval: never per post. */
static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *build_librdkafka = "";
static char lag_topic[256];
static metrics_partition_lag_t lag_table[METRICS_MAX_LAG_PARTITIONS];
static size_t lag_count;
static const char *const *decode_reason_names;
static size_t decode_reason_count;

/* ---- histograms ---- */

void metrics_histogram_observe(metrics_histogram_t *h, double value)
{
    if (isnan(value))
        return; /* no bucket holds it, and it would poison nothing but the count */
    int i = 0;
    while (i < h->nbounds && value > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    if (!(value > 0))
        return;
    /* Converting a double beyond uint64_t's range is undefined: clamp before converting. */
    double units = value * h->sum_scale + 0.5;
    if (!(units < METRICS_HIST_MAX_OBSERVATION_UNITS))
        units = METRICS_HIST_MAX_OBSERVATION_UNITS;
    atomic_fetch_add_explicit(&h->sum_units, (uint64_t)units, memory_order_relaxed);
}

uint64_t metrics_histogram_count(const metrics_histogram_t *h)
{
    uint64_t n = 0;
    for (int i = 0; i <= h->nbounds; i++)
        n += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
    return n;
}

double metrics_histogram_sum(const metrics_histogram_t *h)
{
    return (double)atomic_load_explicit(&h->sum_units, memory_order_relaxed) / h->sum_scale;
}

/* ---- clocks ---- */

int64_t metrics_now_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* +1 so that 0 keeps meaning "never" even on a machine that just booted */
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 1;
}

void metrics_heartbeat(void)
{
    atomic_store_explicit(&tw_metrics.last_loop_unix, (int64_t)time(NULL), memory_order_relaxed);
    atomic_store_explicit(&tw_metrics.last_loop_mono_ms, metrics_now_mono_ms(),
                          memory_order_relaxed);
}

void metrics_set_build_info(const char *librdkafka_version)
{
    pthread_mutex_lock(&metrics_lock);
    build_librdkafka = librdkafka_version ? librdkafka_version : "";
    pthread_mutex_unlock(&metrics_lock);
}

void metrics_kafka_stats_set(const char *topic, const metrics_partition_lag_t *lags, size_t n,
                             int brokers_up, bool coordinator_up)
{
    pthread_mutex_lock(&metrics_lock);
    snprintf(lag_topic, sizeof(lag_topic), "%s", topic ? topic : "");
    lag_count = 0;
    for (size_t i = 0; i < n && lag_count < METRICS_MAX_LAG_PARTITIONS; i++)
        if (lags[i].lag >= 0 && lags[i].partition >= 0)
            lag_table[lag_count++] = lags[i];
    pthread_mutex_unlock(&metrics_lock);
    atomic_store(&tw_metrics.kafka_brokers_up, brokers_up);
    atomic_store(&tw_metrics.kafka_coordinator_up, coordinator_up ? 1 : 0);
    atomic_store(&tw_metrics.kafka_stats_mono_ms, metrics_now_mono_ms());
}

void metrics_decode_reasons_set(const char *const *names, size_t n)
{
    pthread_mutex_lock(&metrics_lock);
    decode_reason_names = names;
    decode_reason_count = n < METRICS_MAX_DECODE_REASONS ? n : METRICS_MAX_DECODE_REASONS;
    pthread_mutex_unlock(&metrics_lock);
}

/* ---- per rule set ---- */

#define SEVERITIES (METRICS_RULE_SEVERITIES + 1) /* and none (campaign alerts) */

struct metrics_rules {
    int refs;        /* under metrics_lock */
    const void *key; /* the rule set these counters belong to (compared, never dereferenced) */
    size_t nrules;
    size_t nseries;             /* rules with a series of their own: min(nrules, max_series) */
    char **rule_label;          /* escaped rule id per rule < nseries; owned */
    uint32_t *rule_category;    /* category index per rule */
    atomic_uint_fast64_t *hits; /* per rule: posts it hit as a live rule */
    atomic_uint_fast64_t *shadow_hits; /* per rule: posts it hit as a shadow or muted rule */
    /* per rule: 0 never muted, 1 muted now, 2 muted before and live again (a gauge series
     * appears with the first mute and stays, so an alert on it resolves instead of vanishing) */
    atomic_uint_fast8_t *muted;
    size_t ncategories;           /* real categories; then "_other" and "_campaign" */
    char **category_label;        /* ncategories + 2, escaped; owned */
    atomic_uint_fast64_t *alerts; /* (ncategories + 2) * SEVERITIES */
    char **rule_id; /* raw ids, for carrying counts over to the next rule set; owned */
    uint8_t *rule_severity;
    char version[72];
    size_t npatterns;
    double compile_seconds;
    int64_t loaded_unix;
};

static metrics_rules_t *rules_published;

static char *label_escape(const char *s)
{
    size_t n = 0;
    for (const char *p = s; *p; p++)
        n += (*p == '\\' || *p == '"' || *p == '\n') ? 2 : 1;
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (const char *p = s; *p; p++) {
        if (*p == '\\' || *p == '"') {
            *o++ = '\\';
            *o++ = *p;
        } else if (*p == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return out;
}

static void rules_free(metrics_rules_t *mr)
{
    if (!mr)
        return;
    for (size_t i = 0; mr->rule_label && i < mr->nseries; i++)
        free(mr->rule_label[i]);
    for (size_t i = 0; mr->rule_id && i < mr->nrules; i++)
        free(mr->rule_id[i]);
    for (size_t i = 0; mr->category_label && i < mr->ncategories + 2; i++)
        free(mr->category_label[i]);
    free(mr->rule_label);
    free(mr->rule_id);
    free(mr->rule_category);
    free(mr->rule_severity);
    free(mr->hits);
    free(mr->shadow_hits);
    free(mr->muted);
    free(mr->category_label);
    free(mr->alerts);
    free(mr);
}

static void rules_carry_over(metrics_rules_t *mr, const metrics_rules_t *prev)
{
    str_index_t by_id;
    if (str_index_build(&by_id, (const char *const *)prev->rule_id, prev->nrules) != 0)
        return; /* counters restart from zero: a counter reset, which Prometheus tolerates */
    for (size_t i = 0; i < mr->nrules; i++) {
        size_t found = str_index_find(&by_id, mr->rule_id[i]);
        if (found != SIZE_MAX) {
            atomic_store(&mr->hits[i], atomic_load(&prev->hits[found]));
            atomic_store(&mr->shadow_hits[i], atomic_load(&prev->shadow_hits[found]));
        }
    }
    str_index_fini(&by_id);
    for (size_t c = 0; c < mr->ncategories + 2; c++)
        for (size_t pc = 0; pc < prev->ncategories + 2; pc++)
            if (strcmp(mr->category_label[c], prev->category_label[pc]) == 0)
                for (int s = 0; s < SEVERITIES; s++)
                    atomic_store(&mr->alerts[c * SEVERITIES + (size_t)s],
                                 atomic_load(&prev->alerts[pc * SEVERITIES + (size_t)s]));
}

int metrics_rules_new(const metrics_rule_set_desc_t *rules, size_t max_series,
                      double compile_seconds, const metrics_rules_t *previous,
                      metrics_rules_t **out)
{
    *out = NULL;
    metrics_rules_t *mr = calloc(1, sizeof(*mr));
    if (!mr)
        return TW_ERR_NOMEM;
    mr->refs = 1;
    mr->key = rules->key;
    mr->nrules = rules->nrules;
    mr->nseries = rules->nrules < max_series ? rules->nrules : max_series;
    mr->npatterns = rules->npatterns;
    mr->compile_seconds = compile_seconds;
    mr->loaded_unix = (int64_t)time(NULL);
    snprintf(mr->version, sizeof(mr->version), "%s", rules->version);
    size_t n = rules->nrules ? rules->nrules : 1;
    mr->rule_label = calloc(mr->nseries ? mr->nseries : 1, sizeof(char *));
    mr->rule_id = calloc(n, sizeof(char *));
    mr->rule_category = calloc(n, sizeof(uint32_t));
    mr->rule_severity = calloc(n, 1);
    mr->hits = calloc(n, sizeof(*mr->hits));
    mr->shadow_hits = calloc(n, sizeof(*mr->shadow_hits));
    mr->muted = calloc(n, sizeof(*mr->muted));
    mr->category_label = calloc(METRICS_MAX_CATEGORIES + 2, sizeof(char *));
    if (!mr->rule_label || !mr->rule_id || !mr->rule_category || !mr->rule_severity || !mr->hits ||
        !mr->shadow_hits || !mr->muted || !mr->category_label)
        goto nomem;
    for (size_t i = 0; i < rules->nrules; i++) {
        const metrics_rule_desc_t *r = &rules->rules[i];
        if (!(mr->rule_id[i] = strdup(r->id)))
            goto nomem;
        if (i < mr->nseries && !(mr->rule_label[i] = label_escape(r->id)))
            goto nomem;
        mr->rule_severity[i] =
            (uint8_t)(r->severity < METRICS_RULE_SEVERITIES ? r->severity : SEVERITIES - 1);
        /* categories are few: a linear search at load time beats a hash table */
        char *cat = label_escape(r->category ? r->category : "");
        if (!cat)
            goto nomem;
        size_t c = 0;
        while (c < mr->ncategories && strcmp(mr->category_label[c], cat) != 0)
            c++;
        if (c < mr->ncategories) {
            free(cat);
        } else if (mr->ncategories < METRICS_MAX_CATEGORIES) {
            mr->category_label[mr->ncategories++] = cat;
        } else {
            free(cat);
            c = METRICS_MAX_CATEGORIES; /* "_other", placed below */
        }
        mr->rule_category[i] = (uint32_t)c;
    }
    /* "_other" and "_campaign" follow the real categories; rules that overflowed the category
     * cap pointed at METRICS_MAX_CATEGORIES and are moved to "_other" here. */
    for (size_t i = 0; i < rules->nrules; i++)
        if (mr->rule_category[i] == METRICS_MAX_CATEGORIES)
            mr->rule_category[i] = (uint32_t)mr->ncategories;
    if (!(mr->category_label[mr->ncategories] = strdup("_other")) ||
        !(mr->category_label[mr->ncategories + 1] = strdup("_campaign")))
        goto nomem;
    mr->alerts = calloc((mr->ncategories + 2) * SEVERITIES, sizeof(*mr->alerts));
    if (!mr->alerts)
        goto nomem;
    if (previous)
        rules_carry_over(mr, previous);
    *out = mr;
    return 0;
nomem:
    rules_free(mr);
    return TW_ERR_NOMEM;
}

metrics_rules_t *metrics_rules_publish(metrics_rules_t *mr)
{
    pthread_mutex_lock(&metrics_lock);
    metrics_rules_t *prev = rules_published;
    if (mr)
        mr->refs++;
    rules_published = mr;
    pthread_mutex_unlock(&metrics_lock);
    return prev;
}

void metrics_rules_unpublish(const metrics_rules_t *mr)
{
    metrics_rules_t *drop = NULL;
    pthread_mutex_lock(&metrics_lock);
    if (mr && rules_published == mr) {
        drop = rules_published;
        rules_published = NULL;
    }
    pthread_mutex_unlock(&metrics_lock);
    metrics_rules_release(drop);
}

void metrics_rules_release(metrics_rules_t *mr)
{
    if (!mr)
        return;
    pthread_mutex_lock(&metrics_lock);
    int left = --mr->refs;
    pthread_mutex_unlock(&metrics_lock);
    if (left == 0)
        rules_free(mr);
}

metrics_rules_t *metrics_rules_acquire(const void *key)
{
    metrics_rules_t *mr = NULL;
    pthread_mutex_lock(&metrics_lock);
    if (rules_published && rules_published->key == key) {
        mr = rules_published;
        mr->refs++;
    }
    pthread_mutex_unlock(&metrics_lock);
    return mr;
}

bool metrics_rules_loaded(void)
{
    pthread_mutex_lock(&metrics_lock);
    bool loaded = rules_published != NULL;
    pthread_mutex_unlock(&metrics_lock);
    return loaded;
}

void metrics_rules_version(char *out, size_t size)
{
    pthread_mutex_lock(&metrics_lock);
    snprintf(out, size, "%s", rules_published ? rules_published->version : "");
    pthread_mutex_unlock(&metrics_lock);
}

void metrics_rules_hit(metrics_rules_t *mr, uint32_t rule_index)
{
    if (mr && rule_index < mr->nrules)
        atomic_fetch_add_explicit(&mr->hits[rule_index], 1, memory_order_relaxed);
}

void metrics_rules_shadow_hit(metrics_rules_t *mr, uint32_t rule_index)
{
    if (mr && rule_index < mr->nrules)
        atomic_fetch_add_explicit(&mr->shadow_hits[rule_index], 1, memory_order_relaxed);
}

void metrics_rules_set_muted(metrics_rules_t *mr, uint32_t rule_index, bool muted)
{
    if (!mr || rule_index >= mr->nrules)
        return;
    if (muted)
        atomic_store_explicit(&mr->muted[rule_index], 1, memory_order_relaxed);
    else if (atomic_load_explicit(&mr->muted[rule_index], memory_order_relaxed) == 1)
        atomic_store_explicit(&mr->muted[rule_index], 2, memory_order_relaxed);
}

void metrics_rules_alert(metrics_rules_t *mr, uint32_t rule_index)
{
    if (!mr)
        return;
    size_t cat, sev;
    if (rule_index < mr->nrules) {
        cat = mr->rule_category[rule_index];
        sev = mr->rule_severity[rule_index];
    } else {
        cat = mr->ncategories + 1; /* _campaign */
        sev = SEVERITIES - 1;      /* none */
    }
    atomic_fetch_add_explicit(&mr->alerts[cat * SEVERITIES + sev], 1, memory_order_relaxed);
}

/* ---- rendering ---- */

static void header(buf_t *out, const char *name, const char *type, const char *help)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample_u64(buf_t *out, const char *name, uint64_t value)
{
    buf_append_str(out, name);
    buf_append_char(out, ' ');
    buf_append_u64(out, value);
    buf_append_char(out, '\n');
}

static void sample_i64(buf_t *out, const char *name, int64_t value)
{
    buf_append_str(out, name);
    buf_append_char(out, ' ');
    buf_append_i64(out, value);
    buf_append_char(out, '\n');
}

static void counter(buf_t *out, const char *name, const char *help, uint64_t value)
{
    header(out, name, "counter", help);
    sample_u64(out, name, value);
}

static void gauge(buf_t *out, const char *name, const char *help, int64_t value)
{
    header(out, name, "gauge", help);
    sample_i64(out, name, value);
}

static void gauge_f(buf_t *out, const char *name, const char *help, double value)
{
    header(out, name, "gauge", help);
    buf_printf(out, "%s %.17g\n", name, value);
}

static void histogram(buf_t *out, const char *name, const char *help, const metrics_histogram_t *h)
{
    header(out, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i <= h->nbounds; i++) {
        cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < h->nbounds)
            buf_printf(out, "%s_bucket{le=\"%g\"} ", name, h->bounds[i]);
        else
            buf_printf(out, "%s_bucket{le=\"+Inf\"} ", name);
        buf_append_u64(out, cum);
        buf_append_char(out, '\n');
    }
    if (h->sum_scale == 1)
        buf_printf(out, "%s_sum %llu\n", name,
                   (unsigned long long)atomic_load_explicit(&h->sum_units, memory_order_relaxed));
    else
        buf_printf(out, "%s_sum %.9f\n", name, metrics_histogram_sum(h));
    buf_printf(out, "%s_count ", name);
    buf_append_u64(out, cum);
    buf_append_char(out, '\n');
}

static const char *const severity_label[SEVERITIES] = {"low", "medium", "high", "critical", "none"};

/* One tidewatch_rule_hits_total series per rule of mode; shadow series only for rules that
 * have shadow hits (most rule sets have none, and 50,000 idle series cost scrapes). */
static void render_rule_hits(buf_t *out, const metrics_rules_t *mr,
                             const atomic_uint_fast64_t *counts, const char *mode, bool always)
{
    for (size_t i = 0; i < mr->nseries; i++) {
        uint64_t n = atomic_load_explicit(&counts[i], memory_order_relaxed);
        if (n || always)
            buf_printf(out, "tidewatch_rule_hits_total{rule=\"%s\",mode=\"%s\"} %" PRIu64 "\n",
                       mr->rule_label[i], mode, n);
    }
    if (mr->nseries < mr->nrules) {
        uint64_t other = 0;
        for (size_t i = mr->nseries; i < mr->nrules; i++)
            other += atomic_load_explicit(&counts[i], memory_order_relaxed);
        if (other || always)
            buf_printf(out, "tidewatch_rule_hits_total{rule=\"_other\",mode=\"%s\"} %" PRIu64 "\n",
                       mode, other);
    }
}

static void render_rules(buf_t *out, const metrics_rules_t *mr)
{
    header(out, "tidewatch_rules_info", "gauge", "The loaded rule set; value 1.");
    if (mr)
        buf_printf(out, "tidewatch_rules_info{version=\"%s\"} 1\n", mr->version);
    gauge(out, "tidewatch_rules_loaded_rules", "Rules in the loaded rule set.",
          mr ? (int64_t)mr->nrules : 0);
    gauge(out, "tidewatch_rules_loaded_patterns", "Keywords and regexes in the loaded rule set.",
          mr ? (int64_t)mr->npatterns : 0);
    gauge_f(out, "tidewatch_rules_compile_seconds", "Time to load and compile the loaded rule set.",
            mr ? mr->compile_seconds : 0);
    gauge(out, "tidewatch_rules_loaded_timestamp_seconds", "When the loaded rule set was loaded.",
          mr ? mr->loaded_unix : 0);
    counter(out, "tidewatch_rules_reload_failures_total",
            "Rule reloads refused (parse, compile or examples failed); the old set stays.",
            atomic_load(&tw_metrics.rules_reload_failures_total));
    gauge(out, "tidewatch_rules_series_limit_exceeded",
          "1 when rules beyond metrics.max_rule_series are counted as rule=\"_other\".",
          mr && mr->nseries < mr->nrules ? 1 : 0);

    header(out, "tidewatch_rule_hits_total", "counter",
           "Posts that matched each rule, as a live rule (mode=live) or as a shadow or muted "
           "one (mode=shadow: counted, never alerting); rules beyond metrics.max_rule_series "
           "as _other.");
    if (mr) {
        render_rule_hits(out, mr, mr->hits, "live", true);
        render_rule_hits(out, mr, mr->shadow_hits, "shadow", false);
    }
    header(out, "tidewatch_rule_muted", "gauge",
           "1 while the flood guard mutes the rule (its hits go to shadow), 0 once live again; "
           "rules never muted have no series.");
    if (mr)
        for (size_t i = 0; i < mr->nseries; i++) {
            unsigned m = atomic_load_explicit(&mr->muted[i], memory_order_relaxed);
            if (m)
                buf_printf(out, "tidewatch_rule_muted{rule=\"%s\"} %d\n", mr->rule_label[i],
                           m == 1);
        }

    header(out, "tidewatch_alerts_total", "counter",
           "Alerts produced, by category and severity of the most severe match "
           "(_campaign/none: duplicate-campaign alerts without rule hits).");
    if (mr) {
        for (size_t c = 0; c < mr->ncategories + 2; c++) {
            /* the overflow row only when it can be used; campaign rows always */
            if (c == mr->ncategories && mr->ncategories < METRICS_MAX_CATEGORIES)
                continue;
            for (int s = 0; s < SEVERITIES; s++) {
                bool campaign = c == mr->ncategories + 1;
                if (campaign != (s == SEVERITIES - 1))
                    continue;
                buf_printf(out, "tidewatch_alerts_total{category=\"%s\",severity=\"%s\"} ",
                           mr->category_label[c], severity_label[s]);
                buf_append_u64(out, atomic_load_explicit(&mr->alerts[c * SEVERITIES + (size_t)s],
                                                         memory_order_relaxed));
                buf_append_char(out, '\n');
            }
        }
    }
}

static void render_process(buf_t *out)
{
    /* /proc/self/stat: after the command name in parentheses, field 3 is state; utime (14),
     * stime (15), starttime (22), vsize (23), rss (24). */
    char stat[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(stat, 1, sizeof(stat) - 1, f) : 0;
    if (f)
        fclose(f);
    stat[n] = '\0';
    const char *p = strrchr(stat, ')');
    unsigned long long utime = 0, stime = 0, start = 0, vsize = 0;
    long long rss = 0;
    if (p && sscanf(p + 2,
                    "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d "
                    "%*d %llu %llu %lld",
                    &utime, &stime, &start, &vsize, &rss) == 5) {
        double tick = (double)sysconf(_SC_CLK_TCK);
        long long btime = 0;
        FILE *s = fopen("/proc/stat", "r");
        char line[256];
        while (s && fgets(line, sizeof(line), s))
            if (sscanf(line, "btime %lld", &btime) == 1)
                break;
        if (s)
            fclose(s);
        header(out, "process_cpu_seconds_total", "counter",
               "Total user and system CPU time spent in seconds.");
        buf_printf(out, "process_cpu_seconds_total %.2f\n", (double)(utime + stime) / tick);
        gauge_f(out, "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                (double)btime + (double)start / tick);
        gauge(out, "process_virtual_memory_bytes", "Virtual memory size in bytes.", (int64_t)vsize);
        gauge(out, "process_resident_memory_bytes", "Resident memory size in bytes.",
              (int64_t)rss * (int64_t)sysconf(_SC_PAGESIZE));
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        int64_t fds = -1; /* the directory's own descriptor */
        while (readdir(d))
            fds++;
        closedir(d);
        gauge(out, "process_open_fds", "Number of open file descriptors.", fds - 2 /* . .. */);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        gauge(out, "process_max_fds", "Maximum number of open file descriptors.",
              (int64_t)rl.rlim_cur);
}

void metrics_render(buf_t *out)
{
    metrics_t *m = &tw_metrics;
    pthread_mutex_lock(&metrics_lock);
    metrics_rules_t *mr = rules_published;
    if (mr)
        mr->refs++;
    const char *rdkafka = build_librdkafka;
    const char *const *reason_names = decode_reason_names;
    size_t nreasons = decode_reason_count;
    pthread_mutex_unlock(&metrics_lock);

    header(out, "tidewatch_build_info", "gauge", "Build information; value 1.");
    buf_printf(out, "tidewatch_build_info{version=\"%s\",librdkafka=\"%s\"} 1\n", TIDEWATCH_VERSION,
               rdkafka);
    counter(out, "tidewatch_consume_posts_total", "Posts consumed.", atomic_load(&m->posts_total));
    counter(out, "tidewatch_consume_bytes_total", "Bytes of posts consumed.",
            atomic_load(&m->post_bytes_total));
    header(out, "tidewatch_decode_failures_total", "counter",
           "Posts that could not be decoded, by reason.");
    for (size_t r = 0; r < nreasons; r++) {
        if (!reason_names[r])
            continue;
        buf_printf(out, "tidewatch_decode_failures_total{reason=\"%s\"} ", reason_names[r]);
        buf_append_u64(out, atomic_load(&m->decode_failures_total[r]));
        buf_append_char(out, '\n');
    }
    counter(out, "tidewatch_dlq_records_total", "Records queued to the dead-letter topic.",
            atomic_load(&m->dead_letters_total));
    counter(out, "tidewatch_produce_errors_total", "Alert or dead-letter deliveries that failed.",
            atomic_load(&m->produce_errors_total));
    counter(out, "tidewatch_consume_offsets_refused_total",
            "Records dropped because their offset repeated or went backwards (re-fetched after a "
            "rebalance; the first copy is the one published).",
            atomic_load(&m->offsets_refused_total));
    render_rules(out, mr);
    counter(out, "tidewatch_dedup_duplicates_total", "Posts that joined an existing cluster.",
            atomic_load(&m->duplicates_total));
    counter(out, "tidewatch_dedup_unavailable_total",
            "Posts processed without duplicate information (store unavailable).",
            atomic_load(&m->dedup_unavailable_total));
    counter(out, "tidewatch_redis_errors_total", "Failed Redis batch round trips.",
            atomic_load(&m->redis_errors_total));
    gauge(out, "tidewatch_campaign_claims_unknown",
          "Posts whose campaign claims a lost Redis reply left unknown, awaiting a recheck (their "
          "offsets are held until it is published).",
          (int64_t)atomic_load(&m->campaign_claims_unknown));
    int redis_up = atomic_load(&m->redis_up);
    if (redis_up >= 0)
        gauge(out, "tidewatch_redis_up", "1 when the last Redis round trip succeeded.", redis_up);
    histogram(out, "tidewatch_redis_roundtrip_seconds", "Redis round trip of one batch.",
              &m->redis_seconds);
    histogram(out, "tidewatch_pipeline_scan_seconds",
              "Decode, normalize, match and fingerprint time of one batch.", &m->scan_seconds);
    histogram(out, "tidewatch_pipeline_batch_posts", "Posts per batch.", &m->batch_posts);
    histogram(out, "tidewatch_alert_delay_seconds",
              "Time from a post's ts to its alert being produced (posts with a ts).",
              &m->alert_delay_seconds);

    header(out, "tidewatch_consumer_lag_messages", "gauge",
           "Messages between the committed offset and the high watermark, per assigned partition "
           "(librdkafka statistics).");
    pthread_mutex_lock(&metrics_lock);
    for (size_t i = 0; i < lag_count; i++) {
        buf_printf(out, "tidewatch_consumer_lag_messages{topic=\"%s\",partition=\"%d\"} ",
                   lag_topic, (int)lag_table[i].partition);
        buf_append_i64(out, lag_table[i].lag);
        buf_append_char(out, '\n');
    }
    pthread_mutex_unlock(&metrics_lock);
    gauge(out, "tidewatch_consumer_assigned_partitions", "Partitions assigned to this worker.",
          atomic_load(&m->assigned_partitions));
    gauge(out, "tidewatch_kafka_brokers_up", "Brokers with an open connection (statistics).",
          atomic_load(&m->kafka_brokers_up));
    gauge(out, "tidewatch_kafka_coordinator_up",
          "1 when the group coordinator is known and connected (statistics).",
          atomic_load(&m->kafka_coordinator_up));
    gauge(out, "tidewatch_loop_heartbeat_timestamp_seconds", "Last turn of the poll loop.",
          atomic_load(&m->last_loop_unix));
    render_process(out);
    metrics_rules_release(mr);
}
