/* Redis duplicate store: the whole batch is one EVALSHA call, so a batch costs one round trip
 * and is applied atomically (a second worker sees all of it or none of it). Semantics match
 * dedup_memory.c (see dedup.h). The script builds its own key names, so it needs a single
 * Redis server (or a proxy); Redis Cluster would need hash-tagged keys per cluster. */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "buf.h"
#include "dedup.h"
#include "log.h"

static const char dedup_script[] =
    "-- ARGV: prefix window n min_authors verify nms milestone_1..milestone_nms, then per post:\n"
    "-- post_id author ts exact nbands sig band_0..band_{nbands-1}\n"
    "local prefix, window, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local min_authors, verify, nms = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "local ms = {}\n"
    "for k = 1, nms do ms[k] = tonumber(ARGV[6 + k]) end\n"
    "-- equal 16-bit entries of two signatures\n"
    "local function agree(a, b)\n"
    "  local eq = 0\n"
    "  for k = 1, #a - 1, 2 do\n"
    "    local x1, x2 = string.byte(a, k, k + 1)\n"
    "    local y1, y2 = string.byte(b, k, k + 1)\n"
    "    if x1 == y1 and x2 == y2 then eq = eq + 1 end\n"
    "  end\n"
    "  return eq\n"
    "end\n"
    "local out, i = {}, 7 + nms\n"
    "for p = 1, n do\n"
    "  local pid, author, ts, exact, nb = ARGV[i], ARGV[i+1], tonumber(ARGV[i+2]), ARGV[i+3], "
    "tonumber(ARGV[i+4])\n"
    "  local sig = ARGV[i+5]\n"
    "  i = i + 6\n"
    "  local xkey = prefix .. 'x:' .. exact\n"
    "  local cluster = redis.call('GET', xkey)\n"
    "  if not cluster then\n"
    "    for b = 0, nb - 1 do\n"
    "      local cand = redis.call('GET', prefix .. 'b:' .. b .. ':' .. ARGV[i + b])\n"
    "      if cand then\n"
    "        local ok = verify == 0\n"
    "        if not ok then\n"
    "          local csig = redis.call('HGET', prefix .. 'c:' .. cand, 'sig')\n"
    "          ok = (not csig) or #csig ~= #sig or agree(sig, csig) >= verify\n"
    "        end\n"
    "        if ok then cluster = cand break end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  if not cluster then cluster = exact end\n"
    "  local ckey = prefix .. 'c:' .. cluster\n"
    "  local added = redis.call('SADD', ckey .. ':m', pid)\n"
    "  if nb > 0 then redis.call('HSETNX', ckey, 'sig', sig) end\n"
    "  if added == 1 then\n"
    "    local count = redis.call('HINCRBY', ckey, 'count', 1)\n"
    "    if author ~= '' then redis.call('PFADD', ckey .. ':a', author) end\n"
    "    if count <= 5 then redis.call('RPUSH', ckey .. ':s', pid) end\n"
    "    local first = tonumber(redis.call('HGET', ckey, 'first'))\n"
    "    local last = tonumber(redis.call('HGET', ckey, 'last'))\n"
    "    if count == 1 or first == nil or ts < first then redis.call('HSET', ckey, 'first', ts) "
    "end\n"
    "    if count == 1 or last == nil or ts > last then redis.call('HSET', ckey, 'last', ts) end\n"
    "  end\n"
    "  if not redis.call('SET', xkey, cluster, 'NX', 'EX', window) then\n"
    "    redis.call('EXPIRE', xkey, window)\n"
    "  end\n"
    "  for b = 0, nb - 1 do\n"
    "    local bkey = prefix .. 'b:' .. b .. ':' .. ARGV[i + b]\n"
    "    if not redis.call('SET', bkey, cluster, 'NX', 'EX', window) then\n"
    "      redis.call('EXPIRE', bkey, window)\n"
    "    end\n"
    "  end\n"
    "  i = i + nb\n"
    "  redis.call('EXPIRE', ckey, window)\n"
    "  redis.call('EXPIRE', ckey .. ':m', window)\n"
    "  redis.call('EXPIRE', ckey .. ':s', window)\n"
    "  local authors = 0\n"
    "  if redis.call('EXISTS', ckey .. ':a') == 1 then\n"
    "    redis.call('EXPIRE', ckey .. ':a', window)\n"
    "    authors = redis.call('PFCOUNT', ckey .. ':a')\n"
    "  end\n"
    "  local h = redis.call('HMGET', ckey, 'count', 'first', 'last')\n"
    "  local count, claimed, bit = tonumber(h[1]), 0, 1\n"
    "  -- milestone k is claimed once, atomically, by the post id HSETNX stores; a replay of that\n"
    "  -- post finds its own id there and claims it again (its record may not have been "
    "delivered)\n"
    "  for k = 1, nms do\n"
    "    if count < ms[k] then break end\n"
    "    local f = 'm:' .. ms[k]\n"
    "    if added == 1 then\n"
    "      if authors >= min_authors and redis.call('HSETNX', ckey, f, pid) == 1 then\n"
    "        claimed = claimed + bit\n"
    "      end\n"
    "    elseif redis.call('HGET', ckey, f) == pid then\n"
    "      claimed = claimed + bit\n"
    "    end\n"
    "    bit = bit * 2\n"
    "  end\n"
    "  local samples = {}\n"
    "  if claimed > 0 then samples = redis.call('LRANGE', ckey .. ':s', 0, 4) end\n"
    "  out[p] = {cluster, count, authors, tonumber(h[2]), tonumber(h[3]), 1 - added, claimed, "
    "samples}\n"
    "end\n"
    "return out\n";

#define REDIS_KEY_PREFIX       "tw:"
#define REDIS_RECONNECT_MIN_MS 100
#define REDIS_RECONNECT_MAX_MS 5000

typedef struct {
    dedup_store_t base;
    char *host;
    int port;
    int db;
    char *user;
    char *password;
    int64_t window_s;
    int timeout_ms;
    redisContext *ctx;
    char sha[41];
    int64_t next_connect_ms; /* backoff: no reconnect attempt before this time */
    int backoff_ms;
    /* argv storage reused between batches */
    const char **argv;
    size_t *argvlen;
    size_t argv_cap;
    buf_t scratch;
    buf_t samples; /* sample post ids of the last batch's results */
    buf_t sigs;    /* the batch's signatures, binary */
} dedup_redis_t;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void dedup_redis_disconnect(dedup_redis_t *r)
{
    if (r->ctx)
        redisFree(r->ctx);
    r->ctx = NULL;
}

static redisReply *redis_command_checked(dedup_redis_t *r, int argc, const char **argv,
                                         const size_t *argvlen)
{
    redisReply *reply = redisCommandArgv(r->ctx, argc, argv, argvlen);
    if (!reply) {
        log_ratelimited(LOG_LEVEL_WARN, "redis.io", 10, "redis %s:%d: %s", r->host, r->port,
                        r->ctx->errstr[0] ? r->ctx->errstr : "connection lost");
        dedup_redis_disconnect(r);
    }
    return reply;
}

static int dedup_redis_connect(dedup_redis_t *r)
{
    if (r->ctx)
        return 0;
    int64_t now = now_ms();
    if (now < r->next_connect_ms)
        return TW_ERR_REDIS;
    struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
    r->ctx = redisConnectWithTimeout(r->host, r->port, tv);
    int ok = r->ctx && !r->ctx->err && redisSetTimeout(r->ctx, tv) == REDIS_OK;
    if (ok && r->password) {
        const char *argv[3] = {"AUTH", r->user ? r->user : r->password, r->password};
        redisReply *reply = redis_command_checked(r, r->user ? 3 : 2, argv, NULL);
        ok = reply && reply->type != REDIS_REPLY_ERROR;
        if (reply && reply->type == REDIS_REPLY_ERROR)
            log_ratelimited(LOG_LEVEL_ERROR, "redis.auth", 10, "redis AUTH refused: %s",
                            reply->str);
        freeReplyObject(reply);
    }
    if (ok && r->db) {
        char db[16];
        snprintf(db, sizeof(db), "%d", r->db);
        const char *argv[2] = {"SELECT", db};
        redisReply *reply = r->ctx ? redis_command_checked(r, 2, argv, NULL) : NULL;
        ok = reply && reply->type != REDIS_REPLY_ERROR;
        freeReplyObject(reply);
    }
    if (ok) {
        const char *argv[3] = {"SCRIPT", "LOAD", dedup_script};
        redisReply *reply = r->ctx ? redis_command_checked(r, 3, argv, NULL) : NULL;
        ok = reply && reply->type == REDIS_REPLY_STRING && reply->len == 40;
        if (ok)
            memcpy(r->sha, reply->str, 41);
        freeReplyObject(reply);
    }
    if (!ok) {
        log_ratelimited(LOG_LEVEL_WARN, "redis.connect", 10, "redis %s:%d unavailable: %s", r->host,
                        r->port, r->ctx && r->ctx->errstr[0] ? r->ctx->errstr : "setup failed");
        dedup_redis_disconnect(r);
        r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : REDIS_RECONNECT_MIN_MS;
        if (r->backoff_ms > REDIS_RECONNECT_MAX_MS)
            r->backoff_ms = REDIS_RECONNECT_MAX_MS;
        r->next_connect_ms = now + r->backoff_ms;
        return TW_ERR_REDIS;
    }
    if (r->backoff_ms)
        log_info("redis %s:%d connected", r->host, r->port);
    r->backoff_ms = 0;
    return 0;
}

static int dedup_redis_reserve_argv(dedup_redis_t *r, size_t argc)
{
    if (argc <= r->argv_cap)
        return 0;
    size_t cap = argc * 2;
    const char **argv = realloc(r->argv, cap * sizeof(*argv));
    if (!argv)
        return TW_ERR_NOMEM;
    r->argv = argv;
    size_t *lens = realloc(r->argvlen, cap * sizeof(*lens));
    if (!lens)
        return TW_ERR_NOMEM;
    r->argvlen = lens;
    r->argv_cap = cap;
    return 0;
}

static void mark_unavailable(dedup_result_t *results, size_t n)
{
    memset(results, 0, n * sizeof(*results));
}

/* Sample ids are copied into r->samples (the reply is freed before the caller reads them). */
static int parse_reply(dedup_redis_t *r, const redisReply *reply, size_t n, dedup_result_t *results)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != n)
        return TW_ERR_REDIS;
    buf_reset(&r->samples);
    for (size_t pass = 0; pass < 2; pass++) {
        /* pass 0 copies, pass 1 takes pointers once the buffer stops growing */
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
            const redisReply *row = reply->element[i];
            if (row->type != REDIS_REPLY_ARRAY || row->elements != 8 ||
                row->element[7]->type != REDIS_REPLY_ARRAY)
                return TW_ERR_REDIS;
            const redisReply *samples = row->element[7];
            for (size_t k = 0; k < samples->elements && k < DEDUP_SAMPLE_IDS; k++) {
                const redisReply *id = samples->element[k];
                if (id->type != REDIS_REPLY_STRING)
                    return TW_ERR_REDIS;
                if (pass == 0) {
                    buf_append(&r->samples, id->str, id->len);
                    continue;
                }
                results[i].samples[k] = r->samples.data + off;
                results[i].sample_lens[k] = id->len;
                off += id->len;
            }
            if (pass == 1)
                results[i].nsamples =
                    samples->elements < DEDUP_SAMPLE_IDS ? samples->elements : DEDUP_SAMPLE_IDS;
        }
        if (r->samples.failed)
            return TW_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *row = reply->element[i];
        if (row->element[0]->type != REDIS_REPLY_STRING)
            return TW_ERR_REDIS;
        for (size_t j = 1; j < 7; j++)
            if (row->element[j]->type != REDIS_REPLY_INTEGER)
                return TW_ERR_REDIS;
        dedup_result_t *res = &results[i];
        res->cluster = strtoull(row->element[0]->str, NULL, 16);
        res->count = (uint64_t)row->element[1]->integer;
        res->authors = (uint64_t)row->element[2]->integer;
        res->first_seen = row->element[3]->integer;
        res->last_seen = row->element[4]->integer;
        res->replay = row->element[5]->integer != 0;
        res->milestones = (uint32_t)row->element[6]->integer;
        res->available = true;
    }
    return 0;
}

static int dedup_redis_check_batch(dedup_store_t *store, const dedup_item_t *items, size_t n,
                                   dedup_result_t *results)
{
    dedup_redis_t *r = (dedup_redis_t *)store;
    mark_unavailable(results, n);
    if (n == 0)
        return 0;
    int rc = dedup_redis_connect(r);
    if (rc != 0)
        return rc;

    const dedup_campaign_t *camp = &r->base.campaign;
    /* EVALSHA sha 0 prefix window n min_authors verify nms ms.. */
    size_t argc = 9 + camp->nmilestones;
    for (size_t i = 0; i < n; i++)
        argc += 6 + items[i].fp->nbands;
    if (dedup_redis_reserve_argv(r, argc) != 0)
        return TW_ERR_NOMEM;

    /* Numbers and hex keys are written into one scratch buffer first; pointers are taken
     * only after it stops growing. */
    buf_reset(&r->scratch);
    buf_printf(&r->scratch, "%" PRId64 "%c%zu%c%" PRIu64 "%c%" PRIu32 "%c%zu%c", r->window_s, 0, n,
               0, camp->min_authors, 0, r->base.verify_matches, 0, camp->nmilestones, 0);
    for (size_t k = 0; k < camp->nmilestones; k++)
        buf_printf(&r->scratch, "%" PRIu64 "%c", camp->milestones[k], 0);
    for (size_t i = 0; i < n; i++) {
        const fingerprint_t *fp = items[i].fp;
        buf_printf(&r->scratch, "%" PRId64 "%c%016" PRIx64 "%c%" PRIu32 "%c", items[i].ts, 0,
                   fp->exact, 0, fp->nbands, 0);
        for (uint32_t b = 0; b < fp->nbands; b++)
            buf_printf(&r->scratch, "%016" PRIx64 "%c", fp->bands[b], 0);
    }
    /* Signatures as binary little-endian 16-bit entries, the same bytes on every host. */
    buf_reset(&r->sigs);
    for (size_t i = 0; i < n; i++) {
        const fingerprint_t *fp = items[i].fp;
        for (size_t j = 0; fp->nbands && j < FINGERPRINT_SIG_LEN; j++) {
            unsigned char le[2] = {(unsigned char)(fp->sig[j] & 0xFF),
                                   (unsigned char)(fp->sig[j] >> 8)};
            buf_append(&r->sigs, le, 2);
        }
    }
    if (r->scratch.failed || r->sigs.failed)
        return TW_ERR_NOMEM;
    const char *sig = r->sigs.data;

    size_t k = 0;
    const char *s = r->scratch.data;
#define PUSH_ARG(ptr, len)                                                                         \
    do {                                                                                           \
        r->argv[k] = (ptr);                                                                        \
        r->argvlen[k] = (len);                                                                     \
        k++;                                                                                       \
    } while (0)
#define PUSH_SCRATCH()                                                                             \
    do {                                                                                           \
        size_t l_ = strlen(s);                                                                     \
        PUSH_ARG(s, l_);                                                                           \
        s += l_ + 1;                                                                               \
    } while (0)
    PUSH_ARG("EVALSHA", 7);
    PUSH_ARG(r->sha, 40);
    PUSH_ARG("0", 1);
    PUSH_ARG(REDIS_KEY_PREFIX, sizeof(REDIS_KEY_PREFIX) - 1);
    PUSH_SCRATCH(); /* window */
    PUSH_SCRATCH(); /* n */
    PUSH_SCRATCH(); /* min_authors */
    PUSH_SCRATCH(); /* verify */
    PUSH_SCRATCH(); /* nms */
    for (size_t m = 0; m < camp->nmilestones; m++)
        PUSH_SCRATCH();
    for (size_t i = 0; i < n; i++) {
        PUSH_ARG(items[i].post_id, items[i].post_id_len);
        PUSH_ARG(items[i].author ? items[i].author : "", items[i].author ? items[i].author_len : 0);
        PUSH_SCRATCH(); /* ts */
        PUSH_SCRATCH(); /* exact */
        PUSH_SCRATCH(); /* nbands */
        size_t sig_len = items[i].fp->nbands ? 2 * FINGERPRINT_SIG_LEN : 0;
        PUSH_ARG(sig_len ? sig : "", sig_len);
        sig += sig_len;
        for (uint32_t b = 0; b < items[i].fp->nbands; b++)
            PUSH_SCRATCH();
    }
#undef PUSH_SCRATCH
#undef PUSH_ARG

    redisReply *reply = redis_command_checked(r, (int)k, r->argv, r->argvlen);
    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        /* The server restarted or flushed its scripts: send the body once, which also
         * caches it again under the same sha. */
        freeReplyObject(reply);
        r->argv[0] = "EVAL";
        r->argvlen[0] = 4;
        r->argv[1] = dedup_script;
        r->argvlen[1] = sizeof(dedup_script) - 1;
        reply = redis_command_checked(r, (int)k, r->argv, r->argvlen);
    }
    if (!reply)
        return TW_ERR_REDIS;
    if (reply->type == REDIS_REPLY_ERROR) {
        log_ratelimited(LOG_LEVEL_WARN, "redis.script", 10, "redis dedup script failed: %s",
                        reply->str);
        freeReplyObject(reply);
        return TW_ERR_REDIS;
    }
    rc = parse_reply(r, reply, n, results);
    freeReplyObject(reply);
    if (rc != 0)
        mark_unavailable(results, n);
    return rc;
}

static void dedup_redis_free(dedup_store_t *store)
{
    dedup_redis_t *r = (dedup_redis_t *)store;
    dedup_redis_disconnect(r);
    free(r->host);
    free(r->user);
    free(r->password);
    free(r->argv);
    free(r->argvlen);
    buf_fini(&r->scratch);
    buf_fini(&r->samples);
    buf_fini(&r->sigs);
    free(r);
}

static const dedup_store_ops_t dedup_redis_ops = {
    .name = "redis",
    .check_batch = dedup_redis_check_batch,
    .free = dedup_redis_free,
};

/* Parses redis://[[user]:password@]host[:port][/db]. */
static int parse_redis_url(dedup_redis_t *r, const char *url, tw_diag_t *diag)
{
    const char *p = url;
    if (strncmp(p, "redis://", 8) != 0) {
        tw_diag_add(diag, "redis URL '%s' must start with redis://", url);
        return TW_ERR_CONFIG;
    }
    p += 8;
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (colon > p)
                r->user = strndup(p, (size_t)(colon - p));
            r->password = strndup(colon + 1, (size_t)(at - colon - 1));
        } else {
            r->password = strndup(p, (size_t)(at - p));
        }
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    const char *hostend = slash ? slash : p + strlen(p);
    const char *colon = memchr(p, ':', (size_t)(hostend - p));
    r->port = 6379;
    if (colon) {
        char *end = NULL;
        long port = strtol(colon + 1, &end, 10);
        if (end != hostend || port <= 0 || port > 65535) {
            tw_diag_add(diag, "redis URL: bad port in '%s'", url);
            return TW_ERR_CONFIG;
        }
        r->port = (int)port;
        hostend = colon;
    }
    r->host = strndup(p, (size_t)(hostend - p));
    if (!r->host || !*r->host) {
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
        r->db = (int)db;
    }
    return 0;
}

int dedup_redis_new(const char *url, int64_t window_s, int timeout_ms, dedup_store_t **out,
                    tw_diag_t *diag)
{
    dedup_redis_t *r = calloc(1, sizeof(*r));
    if (!r)
        return TW_ERR_NOMEM;
    r->base.ops = &dedup_redis_ops;
    r->window_s = window_s;
    r->timeout_ms = timeout_ms;
    buf_init(&r->scratch);
    buf_init(&r->samples);
    buf_init(&r->sigs);
    int rc = parse_redis_url(r, url, diag);
    if (rc != 0) {
        dedup_redis_free(&r->base);
        return rc;
    }
    if (dedup_redis_connect(r) != 0)
        log_warn("redis %s:%d not reachable yet; duplicate detection is unavailable until it is",
                 r->host, r->port);
    *out = &r->base;
    return 0;
}
