/* Redis URLs of the duplicate store: redis://[[user]:password@]host[:port][/db] and
 * redis+cluster://[[user]:password@]host:port[,host:port...] (seed nodes; database 0). */
#ifndef TW_REDIS_URL_H
#define TW_REDIS_URL_H

#include <stdbool.h>

#include "util/err.h"

typedef struct {
    bool cluster;
    char *host; /* redis:// */
    int port;
    int db;
    char *seeds; /* redis+cluster://: "host:port,host:port..." */
    char *user;  /* NULL: AUTH with the password alone (requirepass) */
    char *password;
} redis_url_t;

/* Fills *out (zeroed first). Returns 0, TW_ERR_CONFIG with a message in diag (may be NULL), or
 * TW_ERR_NOMEM; redis_url_fini() frees what was filled in either case. */
int redis_url_parse(const char *url, redis_url_t *out, tw_diag_t *diag);
void redis_url_fini(redis_url_t *u);

#endif
