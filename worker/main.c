/* tidewatch: command line, configuration precedence, signals and the shutdown watchdog. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "modes/demo.h"
#include "pipeline/engine.h"
#include "util/log.h"
#include "modes/run.h"
#include "pipeline/reload.h"
#include "pipeline/stage_metrics.h"
#include "modes/rules_cmd.h"
#include "modes/rules_diff.h"
#include "modes/scan.h"

extern char **environ;

/* Set by SIGTERM/SIGINT, or by the worker itself when it stops on a failure; read by the
 * loops between batches and by the watchdog thread, hence an atomic (lock-free, so the signal
 * handler may store to it). */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the stop flag is set from a signal handler");
static atomic_int stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop_requested, 1); /* the loops notice it between batches */
}

static const char usage[] =
    "usage:\n"
    "  tidewatch run   [--config FILE] [--brokers H:P,...] [--group G] [--input-topic T]\n"
    "                  [--output-topic T] [--dlq-topic T] [--rules FILE]\n"
    "                  [--redis redis://H:P/DB] [--http H:P] [--threads N]\n"
    "                  [-X key=value]...\n"
    "  tidewatch scan  --rules FILE [--config FILE] [--emit alerts|all] [--threads N]\n"
    "                  [-X key=value]... [POSTS.jsonl | -]\n"
    "  tidewatch rules check FILE\n"
    "  tidewatch rules test  FILE POSTS.jsonl\n"
    "  tidewatch rules diff  OLD.yaml NEW.yaml POSTS.jsonl [--fail-on-loss]\n"
    "  tidewatch demo  [--rules FILE]\n"
    "  tidewatch config docs        print the configuration reference (docs/CONFIG.md)\n"
    "  tidewatch config show [...]  print the effective configuration, secrets masked\n"
    "  tidewatch --help | --version\n"
    "\n"
    "Configuration: defaults < --config YAML < TIDEWATCH_<KEY> environment < flags.\n"
    "-X sets any key, including kafka.<librdkafka property> (-X kafka.security.protocol=SSL).\n";

/* Flags that name a configuration key directly. */
static const struct {
    const char *flag;
    const char *key;
} flag_keys[] = {
    {"brokers", "brokers"},
    {"group", "group"},
    {"input-topic", "input_topic"},
    {"output-topic", "output_topic"},
    {"dlq-topic", "dlq_topic"},
    {"rules", "rules"},
    {"redis", "redis"},
    {"http", "http"},
    {"log-level", "log_level"},
    {"emit", "scan.emit"},
    {"threads", "threads"},
};
#define NFLAG_KEYS (sizeof(flag_keys) / sizeof(flag_keys[0]))

typedef struct {
    const char *config_file;
    const char *keys[64];
    const char *values[64];
    char *owned[64];
    int n;
    int nowned;
    const char *positional[4];
    int npositional;
} cli_args_t;

static void cli_args_fini(cli_args_t *args)
{
    for (int i = 0; i < args->nowned; i++)
        free(args->owned[i]);
}

/* Parses flags after the subcommand. Returns 0, or 2 for a usage error (message printed). */
static int cli_parse(int argc, char **argv, cli_args_t *args)
{
    struct option opts[NFLAG_KEYS + 3];
    memset(opts, 0, sizeof(opts));
    for (size_t i = 0; i < NFLAG_KEYS; i++)
        opts[i] = (struct option){flag_keys[i].flag, required_argument, NULL, (int)(i + 1000)};
    opts[NFLAG_KEYS] = (struct option){"config", required_argument, NULL, 'c'};
    opts[NFLAG_KEYS + 1] = (struct option){"help", no_argument, NULL, 'h'};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "c:X:h", opts, NULL)) != -1) {
        if (args->n >= 64) {
            fprintf(stderr, "tidewatch: too many flags\n");
            return 2;
        }
        if (c == 'c') {
            args->config_file = optarg;
        } else if (c == 'X') {
            char *eq = strchr(optarg, '=');
            if (!eq) {
                fprintf(stderr, "tidewatch: -X needs key=value, got '%s'\n", optarg);
                return 2;
            }
            char *key = strndup(optarg, (size_t)(eq - optarg));
            args->owned[args->nowned++] = key;
            args->keys[args->n] = key;
            args->values[args->n++] = eq + 1;
        } else if (c >= 1000 && c < 1000 + (int)NFLAG_KEYS) {
            args->keys[args->n] = flag_keys[c - 1000].key;
            args->values[args->n++] = optarg;
        } else if (c == 'h') {
            fputs(usage, stdout);
            exit(0);
        } else {
            fputs(usage, stderr);
            return 2;
        }
    }
    for (int i = optind; i < argc; i++) {
        if (args->npositional >= 4) {
            fprintf(stderr, "tidewatch: too many arguments\n");
            return 2;
        }
        args->positional[args->npositional++] = argv[i];
    }
    return 0;
}

/* Applies defaults < file < environment < flags. Returns 0 or 2 (errors printed). */
static int build_config(config_t *cfg, const cli_args_t *args)
{
    tw_diag_t diag;
    tw_diag_init(&diag);
    int rc = config_init(cfg);
    if (rc == 0 && args->config_file)
        rc = config_load_file(cfg, args->config_file, &diag);
    if (rc == 0)
        rc = config_load_env(cfg, environ, &diag);
    for (int i = 0; rc == 0 && i < args->n; i++) {
        char origin[128];
        snprintf(origin, sizeof(origin), "flag %s", args->keys[i]);
        rc = config_set(cfg, args->keys[i], args->values[i], origin, &diag);
    }
    if (rc == 0) {
        log_threshold = cfg->log_level;
        log_set_format(cfg->log_format);
    }
    tw_diag_log_all(&diag, stderr, "tidewatch: ");
    tw_diag_fini(&diag);
    return rc == 0 ? 0 : 2;
}

static void *watchdog_thread(void *arg)
{
    long timeout_s = *(long *)arg;
    struct timespec tick = {0, 100 * 1000 * 1000};
    while (!atomic_load(&stop_requested))
        nanosleep(&tick, NULL);
    log_info("shutdown watchdog armed: exiting in %ld s unless the drain finishes first",
             timeout_s);
    /* librdkafka 2.0.2's close can hang when the brokers are gone; Kubernetes would SIGKILL
     * us anyway, so exit on our own terms with a log line. Nothing uncommitted is lost: it
     * is re-read after the restart. */
    struct timespec deadline = {timeout_s, 0};
    nanosleep(&deadline, NULL);
    log_error("shutdown took longer than %ld s; exiting without a clean close", timeout_s);
    _exit(3);
    return NULL;
}

static void on_reload_signal(int sig)
{
    (void)sig;
    atomic_store(&tw_reload_requested, 1);
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    struct sigaction hup;
    memset(&hup, 0, sizeof(hup));
    hup.sa_handler = on_reload_signal; /* rules hot reload (reload.h) */
    sigemptyset(&hup.sa_mask);
    sigaction(SIGHUP, &hup, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* The rules commands take no configuration, but TIDEWATCH_LOG_FORMAT still chooses how their
 * log lines look (a CI job that wants JSON from a terminal-like runner). Returns 0 or 2. */
static int rules_log_format_from_env(void)
{
    const char *value = getenv("TIDEWATCH_LOG_FORMAT");
    if (!value)
        return 0;
    config_t cfg;
    tw_diag_t diag;
    tw_diag_init(&diag);
    int rc = config_init(&cfg);
    if (rc == 0)
        rc = config_set(&cfg, "log.format", value, "env TIDEWATCH_LOG_FORMAT", &diag);
    if (rc == 0)
        log_set_format(cfg.log_format);
    tw_diag_log_all(&diag, stderr, "tidewatch: ");
    tw_diag_fini(&diag);
    config_fini(&cfg);
    return rc == 0 ? 0 : 2;
}

/* `tidewatch rules check|test|diff ...`; returns the exit code. */
static int main_rules(int argc, char **argv)
{
    if (rules_log_format_from_env() != 0)
        return 2;
    if (argc == 5 && strcmp(argv[2], "test") == 0)
        return rules_cmd_test(argv[3], argv[4]);
    if (argc >= 6 && argc <= 7 && strcmp(argv[2], "diff") == 0) {
        bool fail_on_loss = argc == 7 && strcmp(argv[6], "--fail-on-loss") == 0;
        if (argc == 7 && !fail_on_loss) {
            fprintf(stderr, "tidewatch rules diff: unknown option '%s'\n\n%s", argv[6], usage);
            return 2;
        }
        return rules_diff(argv[3], argv[4], argv[5], fail_on_loss);
    }
    if (argc != 4 || strcmp(argv[2], "check") != 0) {
        fputs(usage, stderr);
        return 2;
    }
    return rules_cmd_check(argv[3]);
}

/* The commands that take a configuration: config show, scan, demo, run. */
static int main_configured(const char *cmd, bool show_config, config_t *cfg, const cli_args_t *args)
{
    if (show_config) {
        config_dump_json(cfg, stdout);
        return 0;
    }
    if (strcmp(cmd, "scan") == 0) {
        if (args->npositional > 1) {
            fputs(usage, stderr);
            return 2;
        }
        return scan_file(cfg, args->npositional ? args->positional[0] : "-") == 0 ? 0 : 1;
    }
    pthread_t tid;
    long watchdog_s = cfg->shutdown_timeout_s;
    pthread_create(&tid, NULL, watchdog_thread, &watchdog_s);
    pthread_detach(tid);
    if (strcmp(cmd, "demo") == 0) {
        if (!getenv("TIDEWATCH_LOG_LEVEL") && log_threshold < LOG_LEVEL_WARN)
            log_threshold = LOG_LEVEL_WARN; /* the demo's screen is the alerts */
        return demo_main(cfg, &stop_requested) == 0 ? 0 : 1;
    }
    run_options_t opts = {.stop = &stop_requested};
    return run_worker(cfg, &opts) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    stage_metrics_init();
    /* text on a terminal from the first line on; the configuration may change it */
    log_set_format(LOG_FORMAT_AUTO);
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("tidewatch %s\n", TIDEWATCH_VERSION);
        return 0;
    }
    if (strcmp(cmd, "rules") == 0)
        return main_rules(argc, argv);
    if (strcmp(cmd, "config") == 0 && argc == 3 && strcmp(argv[2], "docs") == 0) {
        config_write_docs(stdout);
        return 0;
    }
    bool show_config = strcmp(cmd, "config") == 0 && argc >= 3 && strcmp(argv[2], "show") == 0;
    if (!show_config && strcmp(cmd, "run") != 0 && strcmp(cmd, "scan") != 0 &&
        strcmp(cmd, "demo") != 0) {
        fprintf(stderr, "tidewatch: unknown command '%s'\n\n%s", cmd, usage);
        return 2;
    }

    /* before anything slow, so a SIGTERM right after start still drains instead of killing */
    if (!show_config && strcmp(cmd, "scan") != 0)
        install_signals();
    cli_args_t args;
    memset(&args, 0, sizeof(args));
    int skip = show_config ? 2 : 1;
    int rc = cli_parse(argc - skip, argv + skip, &args);
    config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    if (rc == 0)
        rc = build_config(&cfg, &args);
    if (rc != 0) {
        cli_args_fini(&args);
        config_fini(&cfg);
        return rc;
    }
    rc = main_configured(cmd, show_config, &cfg, &args);
    cli_args_fini(&args);
    config_fini(&cfg);
    return rc;
}
