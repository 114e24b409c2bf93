#include "http/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/buf.h"
#include "util/log.h"
#include "metrics/metrics.h"

struct http_server {
    struct MHD_Daemon *daemon;
    int64_t max_silence_s;
    bool redis;           /* a Redis duplicate store is configured */
    bool redis_fail_open; /* dedup.on_unavailable = fail-open */
};

#if MHD_VERSION >= 0x00097002
typedef enum MHD_Result mhd_result_t;
#else
typedef int mhd_result_t;
#endif

static mhd_result_t respond(struct MHD_Connection *conn, unsigned status, const char *type,
                            const char *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", type);
    mhd_result_t rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* Liveness: the poll loop turned recently. Never depends on Kafka or Redis: restarting the
 * process does not bring a broker back, and a fleet restarting together makes an outage worse.
 * Before the loop's first turn (rules compiling, consumer starting) the process is alive. */
static bool http_live(const http_server_t *srv, char *why, size_t size)
{
    int64_t mono = atomic_load(&tw_metrics.last_loop_mono_ms);
    int64_t wall = atomic_load(&tw_metrics.last_loop_unix);
    if (!mono && !wall)
        return true;
    int64_t limit_ms = srv->max_silence_s * 1000;
    /* fresh by either clock counts (code that blocks on purpose may set only one) */
    int64_t silent_ms = mono ? metrics_now_mono_ms() - mono : INT64_MAX;
    int64_t wall_ms = wall ? ((int64_t)time(NULL) - wall) * 1000 : INT64_MAX;
    if (wall_ms < silent_ms)
        silent_ms = wall_ms < 0 ? 0 : wall_ms;
    if (silent_ms <= limit_ms)
        return true;
    snprintf(why, size, "poll loop stalled: no turn for %lld s (limit %lld s)\n",
             (long long)(silent_ms / 1000), (long long)srv->max_silence_s);
    return false;
}

/* Readiness (see docs/OPERATIONS.md): rules compiled, not draining, Kafka group coordinator
 * reachable (from librdkafka statistics no older than three intervals), and the duplicate
 * store reachable unless the worker fails open without it. Partitions are not required: a
 * member with none (more pods than partitions, a surge pod during a rollout) is a healthy
 * standby, and requiring them would stall rollouts. */
static bool http_ready(const http_server_t *srv, buf_t *report)
{
    bool ok = true;
    char version[80];
    metrics_rules_version(version, sizeof(version));
    if (metrics_rules_loaded()) {
        buf_printf(report, "rules: ok %s\n", version);
    } else {
        buf_append_str(report, "rules: not loaded (compiling)\n");
        ok = false;
    }
    if (atomic_load(&tw_metrics.draining)) {
        buf_append_str(report, "shutdown: draining\n");
        ok = false;
    }
    int interval = atomic_load(&tw_metrics.kafka_stats_interval_ms);
    int assigned = atomic_load(&tw_metrics.assigned_partitions);
    if (interval > 0) {
        int64_t at = atomic_load(&tw_metrics.kafka_stats_mono_ms);
        int64_t age = at ? metrics_now_mono_ms() - at : -1;
        int64_t max_age = 3 * (int64_t)interval < 15000 ? 15000 : 3 * (int64_t)interval;
        if (age < 0) {
            buf_append_str(report, "kafka: connecting (no client statistics yet)\n");
            ok = false;
        } else if (age > max_age) {
            buf_printf(report, "kafka: client statistics %lld ms old\n", (long long)age);
            ok = false;
        } else if (!atomic_load(&tw_metrics.kafka_coordinator_up)) {
            buf_printf(report, "kafka: group coordinator unreachable (%d broker(s) up)\n",
                       atomic_load(&tw_metrics.kafka_brokers_up));
            ok = false;
        } else {
            buf_printf(report, "kafka: ok, coordinator up, %d partition(s) assigned\n", assigned);
        }
    } else if (atomic_load(&tw_metrics.rebalances) > 0) {
        buf_printf(report,
                   "kafka: ok, group joined, %d partition(s) assigned "
                   "(statistics disabled: broker reachability not checked)\n",
                   assigned);
    } else {
        buf_append_str(report, "kafka: consumer starting, or waiting for the first group "
                               "assignment\n");
        ok = false;
    }
    int redis = atomic_load(&tw_metrics.redis_up);
    if (!srv->redis) {
        buf_append_str(report, "redis: not configured (in-process duplicate store)\n");
    } else if (redis != 0) {
        buf_append_str(report, redis > 0 ? "redis: ok\n" : "redis: no round trip yet\n");
    } else if (srv->redis_fail_open) {
        buf_append_str(report, "redis: unavailable; failing open (alerts carry "
                               "duplicate.unavailable)\n");
    } else {
        buf_append_str(report, "redis: unavailable; consumption paused "
                               "(dedup.on_unavailable = pause)\n");
        ok = false;
    }
    return ok;
}

static mhd_result_t http_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version, const char *upload,
                                size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)con_cls;
    http_server_t *srv = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return respond(conn, 405, "text/plain", "method not allowed\n", 19);
    if (strcmp(url, "/metrics") == 0) {
        buf_t b;
        buf_init(&b);
        metrics_render(&b);
        mhd_result_t rc = b.failed ? respond(conn, 500, "text/plain", "out of memory\n", 14)
                                   : respond(conn, 200, "text/plain; version=0.0.4; charset=utf-8",
                                             b.data, b.len);
        buf_fini(&b);
        return rc;
    }
    if (strcmp(url, "/healthz") == 0 || strcmp(url, "/livez") == 0) {
        char why[160];
        if (!http_live(srv, why, sizeof(why)))
            return respond(conn, 503, "text/plain", why, strlen(why));
        return respond(conn, 200, "text/plain", "ok\n", 3);
    }
    if (strcmp(url, "/readyz") == 0) {
        buf_t b;
        buf_init(&b);
        bool ok = http_ready(srv, &b);
        mhd_result_t rc = b.failed ? respond(conn, 500, "text/plain", "out of memory\n", 14)
                                   : respond(conn, ok ? 200 : 503, "text/plain", b.data, b.len);
        buf_fini(&b);
        return rc;
    }
    return respond(conn, 404, "text/plain", "not found\n", 10);
}

int http_server_start(const config_t *cfg, http_server_t **out, tw_diag_t *diag)
{
    const char *addr = cfg->http_addr;
    const char *colon = strrchr(addr, ':');
    if (!colon) {
        tw_diag_add(diag, "http address '%s' must be host:port", addr);
        return TW_ERR_CONFIG;
    }
    char host[64];
    size_t hlen = (size_t)(colon - addr);
    if (hlen >= sizeof(host)) {
        tw_diag_add(diag, "http address '%s': host too long", addr);
        return TW_ERR_CONFIG;
    }
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    long port = strtol(colon + 1, NULL, 10);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (port <= 0 || port > 65535 ||
        inet_pton(AF_INET, hlen ? host : "0.0.0.0", &sa.sin_addr) != 1) {
        tw_diag_add(diag, "http address '%s' must be IPv4:port", addr);
        return TW_ERR_CONFIG;
    }
    http_server_t *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return TW_ERR_NOMEM;
    srv->max_silence_s = cfg->health_max_loop_silence_s;
    srv->redis = cfg->redis_url[0] != '\0';
    srv->redis_fail_open = cfg->dedup_on_unavailable == CONFIG_UNAVAILABLE_FAIL_OPEN;
    srv->daemon =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL,
                         NULL, http_handle, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!srv->daemon) {
        tw_diag_add(diag, "http: cannot listen on %s", addr);
        free(srv);
        return TW_ERR_IO;
    }
    log_info("http endpoints on %s", addr);
    *out = srv;
    return 0;
}

void http_server_stop(http_server_t *srv)
{
    if (!srv)
        return;
    MHD_stop_daemon(srv->daemon);
    free(srv);
}
