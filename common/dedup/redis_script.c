/* EVALSHA with one NOSCRIPT fallback (redis_script.h). */
#include "dedup/redis_script.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

void redis_script_init(redis_script_t *s, const char *body, size_t len)
{
    s->body = body;
    s->len = len;
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)body, len, digest);
    for (size_t i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(s->sha + 2 * i, 3, "%02x", digest[i]);
}

void redis_script_evalsha(const redis_script_t *s, const char **argv, size_t *argvlen)
{
    argv[0] = "EVALSHA";
    argvlen[0] = 7;
    argv[1] = s->sha;
    argvlen[1] = 40;
}

bool redis_script_missing(const redisReply *reply)
{
    return reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0;
}

void redis_script_eval(const redis_script_t *s, const char **argv, size_t *argvlen)
{
    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = s->body;
    argvlen[1] = s->len;
}
