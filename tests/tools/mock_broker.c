/* mock_broker: a librdkafka mock cluster driven over stdin, for the broker fault tests
 * (tests/integration/test_broker_faults.py). Not installed.
 *
 *   mock_broker [--brokers N] [--max-seconds S]
 *
 * Prints the cluster's bootstrap servers as one line, then answers each command line read
 * on stdin with one line, `ok [...]` or `error: why`. It exits when stdin closes (a test
 * that died leaves nothing running), on `quit`, and after S seconds (default 900) whatever
 * happens: SIGALRM's default action ends it even if the cluster hangs.
 *
 * Commands (BROKER: a broker id 1..N, or `all`; API: a name below or a number; ERR: a name as
 * rd_kafka_err2name() spells it without RD_KAFKA_RESP_ERR_, e.g. NOT_COORDINATOR, or a
 * number):
 *   topic NAME PARTITIONS [REPLICATION]     create a topic
 *   errors API ERR...                       the next requests of API, cluster-wide, fail in
 *                                           turn with these errors
 *   broker_errors BROKER API ERR[@RTT_MS]... the same on one broker (or each), optionally
 *                                           with a delay per response; checked first
 *   errors_left BROKER API                  answers `ok COUNT`: broker errors not yet used
 *   clear API                               drops the cluster-wide errors of API
 *   down BROKER / up BROKER                 disconnect and refuse connections / accept again
 *                                           (leaders and coordinators do not move)
 *   rtt BROKER MS                           delay every response of the broker(s)
 *   leader TOPIC PARTITION BROKER           move a partition's leader
 *   coordinator group|transaction KEY BROKER  set a group's or transaction's coordinator
 *   ping                                    ok
 *   quit                                    ok, then exit 0
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_WORDS  64
#define MAX_ERRORS 60

/* Kafka protocol ApiKeys (rdkafka_protocol.h, which is not installed). */
static const struct {
    const char *name;
    int16_t key;
} api_keys[] = {
    {"Produce", 0},          {"Fetch", 1},
    {"ListOffsets", 2},      {"Metadata", 3},
    {"OffsetCommit", 8},     {"OffsetFetch", 9},
    {"FindCoordinator", 10}, {"JoinGroup", 11},
    {"Heartbeat", 12},       {"LeaveGroup", 13},
    {"SyncGroup", 14},       {"DescribeGroups", 15},
    {"ListGroups", 16},      {"ApiVersions", 18},
    {"InitProducerId", 22},  {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25}, {"EndTxn", 26},
    {"TxnOffsetCommit", 28},
};

typedef struct {
    rd_kafka_mock_cluster_t *mock;
    int nbrokers;
} mock_t;

static void reply(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static bool parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_api(const char *s, int16_t *out)
{
    for (size_t i = 0; i < sizeof(api_keys) / sizeof(api_keys[0]); i++) {
        if (strcasecmp(s, api_keys[i].name) == 0) {
            *out = api_keys[i].key;
            return true;
        }
    }
    long v;
    if (!parse_long(s, 0, 100, &v))
        return false;
    *out = (int16_t)v;
    return true;
}

/* An error code by its librdkafka name (NOT_COORDINATOR, _TRANSPORT) or number. */
static bool parse_err(const char *s, rd_kafka_resp_err_t *out)
{
    const struct rd_kafka_err_desc *descs;
    size_t n;
    rd_kafka_get_err_descs(&descs, &n);
    for (size_t i = 0; i < n; i++) {
        if (descs[i].name && strcasecmp(s, descs[i].name) == 0) {
            *out = descs[i].code;
            return true;
        }
    }
    long v;
    if (!parse_long(s, -200, 200, &v))
        return false;
    *out = (rd_kafka_resp_err_t)v;
    return true;
}

/* A broker id, or -1 for `all` (the mock's own convention). */
static bool parse_broker(const mock_t *m, const char *s, int32_t *out)
{
    if (strcmp(s, "all") == 0) {
        *out = -1;
        return true;
    }
    long v;
    if (!parse_long(s, 1, m->nbrokers, &v))
        return false;
    *out = (int32_t)v;
    return true;
}

static void reply_err(const char *what, rd_kafka_resp_err_t err)
{
    if (err)
        reply("error: %s: %s", what, rd_kafka_err2str(err));
    else
        reply("ok");
}

static void cmd_broker_errors(mock_t *m, char **w, int n)
{
    int32_t broker;
    int16_t api;
    if (n < 4 || !parse_broker(m, w[1], &broker) || !parse_api(w[2], &api)) {
        reply("error: usage: broker_errors BROKER API ERR[@RTT_MS]...");
        return;
    }
    rd_kafka_resp_err_t errs[MAX_ERRORS];
    int rtts[MAX_ERRORS];
    int count = 0;
    for (int i = 3; i < n; i++) {
        char *at = strchr(w[i], '@');
        long rtt = 0;
        if (at)
            *at = '\0';
        if (count == MAX_ERRORS || !parse_err(w[i], &errs[count]) ||
            (at && !parse_long(at + 1, 0, 600000, &rtt))) {
            reply("error: bad error `%s` (a name such as NOT_COORDINATOR or a number, optionally "
                  "@RTT_MS; at most %d)",
                  w[i], MAX_ERRORS);
            return;
        }
        rtts[count++] = (int)rtt;
    }
    int32_t first = broker < 0 ? 1 : broker, last = broker < 0 ? m->nbrokers : broker;
    for (int32_t b = first; b <= last; b++) {
        /* One entry per call: the list is appended to, so the order is kept. */
        for (int i = 0; i < count; i++) {
            rd_kafka_resp_err_t err =
                rd_kafka_mock_broker_push_request_error_rtts(m->mock, b, api, 1, errs[i], rtts[i]);
            if (err) {
                reply("error: broker %d: %s", (int)b, rd_kafka_err2str(err));
                return;
            }
        }
    }
    reply("ok");
}

static bool run_command(mock_t *m, char *line)
{
    char *w[MAX_WORDS];
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(line, " \t\r", &save); t && n < MAX_WORDS;
         t = strtok_r(NULL, " \t\r", &save))
        w[n++] = t;
    if (n == 0) {
        reply("error: empty command");
        return true;
    }
    const char *cmd = w[0];
    long a, b;
    int32_t broker;
    int16_t api;
    if (strcmp(cmd, "quit") == 0) {
        reply("ok");
        return false;
    } else if (strcmp(cmd, "ping") == 0) {
        reply("ok");
    } else if (strcmp(cmd, "topic") == 0) {
        if ((n != 3 && n != 4) || !parse_long(w[2], 1, 10000, &a) ||
            !parse_long(n == 4 ? w[3] : "1", 1, m->nbrokers, &b)) {
            reply("error: usage: topic NAME PARTITIONS [REPLICATION <= %d]", m->nbrokers);
            return true;
        }
        reply_err("topic", rd_kafka_mock_topic_create(m->mock, w[1], (int)a, (int)b));
    } else if (strcmp(cmd, "errors") == 0) {
        rd_kafka_resp_err_t errs[MAX_ERRORS];
        if (n < 3 || n - 2 > MAX_ERRORS || !parse_api(w[1], &api)) {
            reply("error: usage: errors API ERR... (at most %d)", MAX_ERRORS);
            return true;
        }
        for (int i = 2; i < n; i++) {
            if (!parse_err(w[i], &errs[i - 2])) {
                reply("error: unknown error `%s`", w[i]);
                return true;
            }
        }
        rd_kafka_mock_push_request_errors_array(m->mock, api, (size_t)(n - 2), errs);
        reply("ok");
    } else if (strcmp(cmd, "broker_errors") == 0) {
        cmd_broker_errors(m, w, n);
    } else if (strcmp(cmd, "errors_left") == 0) {
        size_t left = 0;
        if (n != 3 || !parse_broker(m, w[1], &broker) || broker < 0 || !parse_api(w[2], &api)) {
            reply("error: usage: errors_left BROKER(1..%d) API", m->nbrokers);
            return true;
        }
        rd_kafka_resp_err_t err = rd_kafka_mock_broker_error_stack_cnt(m->mock, broker, api, &left);
        if (err)
            reply("error: errors_left: %s", rd_kafka_err2str(err));
        else
            reply("ok %zu", left);
    } else if (strcmp(cmd, "clear") == 0) {
        if (n != 2 || !parse_api(w[1], &api)) {
            reply("error: usage: clear API");
            return true;
        }
        rd_kafka_mock_clear_request_errors(m->mock, api);
        reply("ok");
    } else if (strcmp(cmd, "down") == 0 || strcmp(cmd, "up") == 0) {
        if (n != 2 || !parse_broker(m, w[1], &broker)) {
            reply("error: usage: %s BROKER(1..%d|all)", cmd, m->nbrokers);
            return true;
        }
        reply_err(cmd, cmd[0] == 'd' ? rd_kafka_mock_broker_set_down(m->mock, broker)
                                     : rd_kafka_mock_broker_set_up(m->mock, broker));
    } else if (strcmp(cmd, "rtt") == 0) {
        if (n != 3 || !parse_broker(m, w[1], &broker) || !parse_long(w[2], 0, 600000, &a)) {
            reply("error: usage: rtt BROKER(1..%d|all) MS", m->nbrokers);
            return true;
        }
        reply_err("rtt", rd_kafka_mock_broker_set_rtt(m->mock, broker, (int)a));
    } else if (strcmp(cmd, "leader") == 0) {
        if (n != 4 || !parse_long(w[2], 0, INT32_MAX, &a) || !parse_broker(m, w[3], &broker) ||
            broker < 0) {
            reply("error: usage: leader TOPIC PARTITION BROKER(1..%d)", m->nbrokers);
            return true;
        }
        reply_err("leader", rd_kafka_mock_partition_set_leader(m->mock, w[1], (int32_t)a, broker));
    } else if (strcmp(cmd, "coordinator") == 0) {
        if (n != 4 || (strcmp(w[1], "group") != 0 && strcmp(w[1], "transaction") != 0) ||
            !parse_broker(m, w[3], &broker) || broker < 0) {
            reply("error: usage: coordinator group|transaction KEY BROKER(1..%d)", m->nbrokers);
            return true;
        }
        reply_err("coordinator", rd_kafka_mock_coordinator_set(m->mock, w[1], w[2], broker));
    } else {
        reply("error: unknown command `%s` (topic, errors, broker_errors, errors_left, clear, "
              "down, up, rtt, leader, coordinator, ping, quit)",
              cmd);
    }
    return true;
}

static int usage(void)
{
    fprintf(stderr, "usage: mock_broker [--brokers N (1..16, default 3)] "
                    "[--max-seconds S (default 900)]\n");
    return 2;
}

int main(int argc, char **argv)
{
    long nbrokers = 3, max_seconds = 900;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc) {
            if (!parse_long(argv[++i], 1, 16, &nbrokers))
                return usage();
        } else if (strcmp(argv[i], "--max-seconds") == 0 && i + 1 < argc) {
            if (!parse_long(argv[++i], 1, 86400, &max_seconds))
                return usage();
        } else {
            return usage();
        }
    }
    /* The hard cap: SIGALRM is not handled, so it ends the process wherever it is. */
    alarm((unsigned)max_seconds);

    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "mock_broker: %s\n", errstr);
        return 1;
    }
    mock_t m = {.mock = rd_kafka_mock_cluster_new(rk, (int)nbrokers), .nbrokers = (int)nbrokers};
    if (!m.mock) {
        fprintf(stderr, "mock_broker: could not create the mock cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    reply("%s", rd_kafka_mock_cluster_bootstraps(m.mock));

    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[len - 1] = '\0';
        if (!run_command(&m, line))
            break;
    }
    free(line);
    rd_kafka_mock_cluster_destroy(m.mock);
    rd_kafka_destroy(rk);
    return 0;
}
