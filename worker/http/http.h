/* HTTP side endpoints: /metrics (Prometheus), /healthz (liveness: the poll loop turns; never
 * depends on Kafka or Redis), /readyz (readiness: rules compiled, not draining, Kafka group
 * coordinator reachable, Redis reachable unless failing open). The bodies of /readyz say
 * which check failed. Semantics: docs/OPERATIONS.md. */
#ifndef TW_HTTP_H
#define TW_HTTP_H

#include "config/config.h"

typedef struct http_server http_server_t;

/* Listens on cfg->http_addr ("host:port"); cfg must outlive the server. Returns 0 or a
 * tw_err_t with the reason in diag. */
int http_server_start(const config_t *cfg, http_server_t **out, tw_diag_t *diag);
void http_server_stop(http_server_t *srv);

#endif
