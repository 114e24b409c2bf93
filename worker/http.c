#include "http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "log.h"
#include "metrics.h"

#define HEALTH_MAX_LOOP_SILENCE_S 30

struct http_server {
    struct MHD_Daemon *daemon;
    const char *rules_version;
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
        metrics_render(&b, srv->rules_version);
        mhd_result_t rc = b.failed ? respond(conn, 500, "text/plain", "out of memory\n", 14)
                                   : respond(conn, 200, "text/plain; version=0.0.4", b.data, b.len);
        buf_fini(&b);
        return rc;
    }
    if (strcmp(url, "/healthz") == 0) {
        int64_t last = atomic_load(&tw_metrics.last_loop_unix);
        if (last && time(NULL) - last > HEALTH_MAX_LOOP_SILENCE_S)
            return respond(conn, 503, "text/plain", "poll loop stalled\n", 18);
        return respond(conn, 200, "text/plain", "ok\n", 3);
    }
    if (strcmp(url, "/readyz") == 0) {
        if (!atomic_load(&tw_metrics.rules_loaded))
            return respond(conn, 503, "text/plain", "rules not loaded\n", 17);
        return respond(conn, 200, "text/plain", "ready\n", 6);
    }
    return respond(conn, 404, "text/plain", "not found\n", 10);
}

int http_server_start(const char *addr, const char *rules_version, http_server_t **out,
                      tw_diag_t *diag)
{
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
    srv->rules_version = rules_version;
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
