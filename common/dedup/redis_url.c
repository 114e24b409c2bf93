/* Parsing of the duplicate store's Redis URLs (redis_url.h). */
#include "dedup/redis_url.h"

#include <stdlib.h>
#include <string.h>

#define CLUSTER_SCHEME "redis+cluster://"

int redis_url_parse(const char *url, redis_url_t *u, tw_diag_t *diag)
{
    memset(u, 0, sizeof(*u));
    const char *p = url;
    u->cluster = strncmp(p, CLUSTER_SCHEME, sizeof(CLUSTER_SCHEME) - 1) == 0;
    if (u->cluster) {
        p += sizeof(CLUSTER_SCHEME) - 1;
    } else if (strncmp(p, "redis://", 8) == 0) {
        p += 8;
    } else {
        tw_diag_add(diag, "redis URL '%s' must start with redis:// or " CLUSTER_SCHEME, url);
        return TW_ERR_CONFIG;
    }
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (colon > p && !(u->user = strndup(p, (size_t)(colon - p))))
                return TW_ERR_NOMEM;
            u->password = strndup(colon + 1, (size_t)(at - colon - 1));
        } else {
            u->password = strndup(p, (size_t)(at - p));
        }
        if (!u->password)
            return TW_ERR_NOMEM;
        p = at + 1;
    }
    if (u->cluster) {
        if (strchr(p, '/')) {
            tw_diag_add(diag, "redis URL: Redis Cluster has only database 0; drop the /db in '%s'",
                        url);
            return TW_ERR_CONFIG;
        }
        u->seeds = strdup(p);
        return u->seeds ? 0 : TW_ERR_NOMEM;
    }
    const char *slash = strchr(p, '/');
    const char *hostend = slash ? slash : p + strlen(p);
    const char *colon = memchr(p, ':', (size_t)(hostend - p));
    u->port = 6379;
    if (colon) {
        char *end = NULL;
        long port = strtol(colon + 1, &end, 10);
        if (end != hostend || port <= 0 || port > 65535) {
            tw_diag_add(diag, "redis URL: bad port in '%s'", url);
            return TW_ERR_CONFIG;
        }
        u->port = (int)port;
        hostend = colon;
    }
    u->host = strndup(p, (size_t)(hostend - p));
    if (!u->host)
        return TW_ERR_NOMEM;
    if (!*u->host) {
        tw_diag_add(diag, "redis URL: missing host in '%s'", url);
        return TW_ERR_CONFIG;
    }
    if (slash && slash[1]) {
        char *end = NULL;
        long db = strtol(slash + 1, &end, 10);
        if (*end || db < 0 || db > 1000000) {
            tw_diag_add(diag, "redis URL: bad database number in '%s'", url);
            return TW_ERR_CONFIG;
        }
        u->db = (int)db;
    }
    return 0;
}

void redis_url_fini(redis_url_t *u)
{
    free(u->host);
    free(u->seeds);
    free(u->user);
    free(u->password);
    memset(u, 0, sizeof(*u));
}
