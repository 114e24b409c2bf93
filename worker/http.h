/* HTTP side endpoints: /metrics (Prometheus), /healthz (liveness: the poll loop turns),
 * /readyz (readiness: rules compiled and partitions assigned or being waited for). */
#ifndef TW_HTTP_H
#define TW_HTTP_H

#include "config.h"

typedef struct http_server http_server_t;

/* addr is "host:port". rules_version must outlive the server. Returns 0 or a tw_err_t. */
int http_server_start(const char *addr, const char *rules_version, http_server_t **out,
                      tw_diag_t *diag);
void http_server_stop(http_server_t *srv);

#endif
