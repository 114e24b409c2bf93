/* A Lua script run with EVALSHA, its SHA1 computed here; a server that does not have it
 * (new, restarted, SCRIPT FLUSH) answers NOSCRIPT and the same command is sent again as EVAL
 * with the body, which also caches it there. Both Redis stores (single server and cluster) use
 * this one fallback. */
#ifndef TW_REDIS_SCRIPT_H
#define TW_REDIS_SCRIPT_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *body;
    size_t len;
    char sha[41];
} redis_script_t;

void redis_script_init(redis_script_t *s, const char *body, size_t len);

/* Writes "EVALSHA" and the SHA1 into argv[0..1]. */
void redis_script_evalsha(const redis_script_t *s, const char **argv, size_t *argvlen);

/* True when reply says the server lacks the script; then redis_script_eval() turns the
 * command's argv[0..1] into EVAL + body for the one retry. */
bool redis_script_missing(const redisReply *reply);
void redis_script_eval(const redis_script_t *s, const char **argv, size_t *argvlen);

#endif
