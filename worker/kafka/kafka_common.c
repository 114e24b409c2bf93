#include "kafka/kafka_common.h"

#include <stdio.h>
#include <strings.h>

#include "util/log.h"

static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    /* syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug */
    log_level_t lvl = level <= 3   ? LOG_LEVEL_ERROR
                      : level == 4 ? LOG_LEVEL_WARN
                      : level <= 6 ? LOG_LEVEL_INFO
                                   : LOG_LEVEL_DEBUG;
    if (LOG_ENABLED(lvl))
        log_ratelimited(lvl, fac, 5, "librdkafka %s: %s", fac, buf);
}

static void kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    (void)opaque;
    log_ratelimited(err == RD_KAFKA_RESP_ERR__FATAL ? LOG_LEVEL_ERROR : LOG_LEVEL_WARN,
                    rd_kafka_err2name((rd_kafka_resp_err_t)err), 10, "kafka: %s: %s",
                    rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/* librdkafka properties the worker's guarantees rest on (at-least-once, no crash loop, its own
 * config keys as the one source of truth), with librdkafka's aliases of them. An operator
 * setting one gets this reason instead of a worker that quietly loses or duplicates alerts.
 * docs/OPERATIONS.md lists them. */
static const struct {
    const char *key;
    const char *why;
} kafka_refused[] = {
    {"enable.auto.offset.store",
     "offsets must be stored only once a post's alert or dead letter is acknowledged; storing "
     "them on fetch commits posts whose output may still be lost"},
    {"enable.auto.commit", "the periodic commit of acknowledged offsets is the only commit "
                           "between rebalances; without it every crash re-reads everything "
                           "since the last one (tune kafka.auto.commit.interval.ms instead)"},
    {"auto.commit.enable", "alias of enable.auto.commit: the periodic commit of acknowledged "
                           "offsets is the only commit between rebalances"},
    {"enable.idempotence",
     "the idempotent producer keeps broker retries from duplicating or reordering alerts"},
    {"acks", "an alert acknowledged by fewer than all in-sync replicas can be lost on a leader "
             "change after its post was committed"},
    {"request.required.acks", "alias of acks: an alert acknowledged by fewer than all in-sync "
                              "replicas can be lost after its post was committed"},
    {"message.timeout.ms",
     "records must be retried for as long as the brokers are away (0): a timed-out record "
     "stops the worker, so a finite timeout turns a broker outage into a crash loop"},
    {"delivery.timeout.ms", "alias of message.timeout.ms: a timed-out record stops the worker, "
                            "so a finite timeout turns a broker outage into a crash loop"},
    {"transactional.id", "the worker does not use transactions: a transactional producer "
                         "refuses its records"},
    {"partition.assignment.strategy",
     "the rebalance handling is written for eager assignors (revoke all, then assign), and "
     "librdkafka 2.0.2 aborts a cooperative-sticky consumer that closes before its first "
     "assignment"},
    {"enable.partition.eof",
     "set by the mode: `scan`/--stop-at-end needs end-of-partition events to know it reached "
     "the end, `run` does not"},
    {"group.id", "set the `group` key instead (used in logs, metrics and readiness too)"},
    {"bootstrap.servers", "set the `brokers` key instead (shared by consumer and producer)"},
    {"metadata.broker.list", "alias of bootstrap.servers: set the `brokers` key instead"},
    {"auto.offset.reset", "set the `auto_offset_reset` key instead (validated there)"},
};

rd_kafka_conf_t *kafka_conf_build(const config_t *cfg, const char *const *defaults, tw_diag_t *diag)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[512];
    for (size_t i = 0; defaults && defaults[i]; i += 2) {
        if (rd_kafka_conf_set(conf, defaults[i], defaults[i + 1], errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK) {
            tw_diag_add(diag, "kafka property %s: %s", defaults[i], errstr);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    size_t refused = 0;
    for (size_t i = 0; i < cfg->nkafka; i++)
        for (size_t k = 0; k < sizeof(kafka_refused) / sizeof(kafka_refused[0]); k++)
            if (strcasecmp(cfg->kafka[i].key, kafka_refused[k].key) == 0) {
                tw_diag_add(diag, "%s: kafka.%s is refused: %s", cfg->kafka[i].origin,
                            cfg->kafka[i].key, kafka_refused[k].why);
                refused++;
            }
    if (refused) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    for (size_t i = 0; i < cfg->nkafka; i++) {
        if (rd_kafka_conf_set(conf, cfg->kafka[i].key, cfg->kafka[i].value, errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK) {
            tw_diag_add(diag, "%s: kafka.%s: %s", cfg->kafka[i].origin, cfg->kafka[i].key, errstr);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    rd_kafka_conf_set_error_cb(conf, kafka_error_cb);
    return conf;
}
