/* Rules hot reload (see reload.h). One thread waits on inotify with a short poll timeout (it
 * also checks the SIGHUP flag then), debounces bursts of events (an editor writes, renames,
 * chmods), loads and compiles off the scanning thread, and leaves the result in a one-slot
 * mailbox that the poll loop empties between batches.
 *
 * Kubernetes ConfigMap volumes never touch the file itself: rules.yaml is a symlink to
 * ..data/rules.yaml and the kubelet swaps the ..data symlink (rename of ..data_tmp) to a new
 * timestamped directory, so no event names rules.yaml. Any other event in a watched directory
 * therefore compares what each file resolves to (device, inode, size, mtime) with what it
 * resolved to when the set was loaded. */
#include "pipeline/reload.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "metrics/metrics.h"
#include "pipeline/stage_metrics.h"

atomic_int tw_reload_requested;

#define RELOAD_POLL_MS     100
#define RELOAD_DEBOUNCE_MS 250
#define RELOAD_MAX_WATCHES 64

typedef struct {
    int wd;
    char *dir;
} reload_watch_t;

/* What a path resolved to (symlinks followed) when the set was loaded. */
typedef struct {
    bool exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} reload_file_id_t;

struct reload {
    const config_t *cfg;
    pthread_t thread;
    atomic_bool stop;
    int ifd; /* inotify, -1 without */
    reload_watch_t watches[RELOAD_MAX_WATCHES];
    size_t nwatches;
    char **names; /* basenames of the files of the current set, with their directory */
    char **dirs;
    char **paths;          /* the files' paths as the set read them */
    reload_file_id_t *ids; /* and what they resolved to then */
    size_t nnames;
    char version[72]; /* of the last set loaded (or offered) */
    pthread_mutex_t lock;
    rule_set_t *ready_rules; /* the mailbox, under lock */
    match_db_t *ready_db;
    double ready_seconds;
};

static int64_t reload_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void reload_names_free(reload_t *r)
{
    for (size_t i = 0; i < r->nnames; i++) {
        free(r->names[i]);
        free(r->dirs[i]);
        free(r->paths[i]);
    }
    free(r->names);
    free(r->dirs);
    free(r->paths);
    free(r->ids);
    r->names = r->dirs = r->paths = NULL;
    r->ids = NULL;
    r->nnames = 0;
}

static reload_file_id_t reload_file_id(const char *path)
{
    reload_file_id_t id = {0};
    struct stat st;
    if (stat(path, &st) == 0) {
        id.exists = true;
        id.dev = st.st_dev;
        id.ino = st.st_ino;
        id.size = st.st_size;
        id.mtime = st.st_mtim;
    }
    return id;
}

static bool reload_file_id_equal(const reload_file_id_t *a, const reload_file_id_t *b)
{
    if (a->exists != b->exists)
        return false;
    return !a->exists ||
           (a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
            a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec);
}

/* True when a file of the set now resolves to something else (a ConfigMap's ..data swap). */
static bool reload_files_moved(const reload_t *r)
{
    for (size_t i = 0; i < r->nnames; i++) {
        reload_file_id_t now = reload_file_id(r->paths[i]);
        if (!reload_file_id_equal(&now, &r->ids[i]))
            return true;
    }
    return false;
}

/* Watches the directories of every file the set was read from. */
static void reload_watch_files(reload_t *r, const rule_set_t *rs)
{
    if (r->ifd < 0)
        return;
    for (size_t i = 0; i < r->nwatches; i++) {
        inotify_rm_watch(r->ifd, r->watches[i].wd);
        free(r->watches[i].dir);
    }
    r->nwatches = 0;
    reload_names_free(r);
    size_t slots = rs->nfiles ? rs->nfiles : 1;
    r->names = calloc(slots, sizeof(*r->names));
    r->dirs = calloc(slots, sizeof(*r->dirs));
    r->paths = calloc(slots, sizeof(*r->paths));
    r->ids = calloc(slots, sizeof(*r->ids));
    if (!r->names || !r->dirs || !r->paths || !r->ids)
        return;
    for (size_t i = 0; i < rs->nfiles; i++) {
        const char *path = rs->files[i];
        const char *slash = strrchr(path, '/');
        char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
        char *name = strdup(slash ? slash + 1 : path);
        char *copy = strdup(path);
        if (!dir || !name || !copy) {
            free(dir);
            free(name);
            free(copy);
            continue;
        }
        r->names[r->nnames] = name;
        r->dirs[r->nnames] = dir;
        r->paths[r->nnames] = copy;
        r->ids[r->nnames] = reload_file_id(path);
        r->nnames++;
        bool seen = false;
        for (size_t w = 0; w < r->nwatches && !seen; w++)
            seen = strcmp(r->watches[w].dir, dir) == 0;
        if (seen || r->nwatches == RELOAD_MAX_WATCHES)
            continue;
        int wd = inotify_add_watch(
            r->ifd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB);
        if (wd < 0) {
            log_warn("rules reload: cannot watch %s: %s (SIGHUP still reloads)", dir,
                     strerror(errno));
            continue;
        }
        r->watches[r->nwatches].wd = wd;
        r->watches[r->nwatches].dir = strdup(dir);
        r->nwatches++;
    }
}

/* Drains inotify; true when an event names one of the set's files, or when another event in
 * a watched directory came with a file of the set now resolving elsewhere. */
static bool reload_read_events(reload_t *r)
{
    bool relevant = false, other = false;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(r->ifd, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof(*ev) + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                relevant = true;
                continue;
            }
            const char *dir = NULL;
            for (size_t w = 0; w < r->nwatches; w++)
                if (r->watches[w].wd == ev->wd)
                    dir = r->watches[w].dir;
            if (!dir || !ev->len)
                continue;
            bool named = false;
            for (size_t i = 0; i < r->nnames; i++)
                if (strcmp(r->names[i], ev->name) == 0 && strcmp(r->dirs[i], dir) == 0)
                    named = true;
            relevant |= named;
            other |= !named;
        }
    }
    return relevant || (other && reload_files_moved(r));
}

static void reload_once(reload_t *r, const char *why)
{
    tw_diag_t diag;
    tw_diag_init(&diag);
    rule_set_t *rules = NULL;
    match_db_t *db = NULL;
    int64_t t0 = reload_now_ms();
    int rc =
        engine_load_rules_cached(r->cfg->rules_path, r->cfg->rules_cache_dir, &rules, &db, &diag);
    double secs = (double)(reload_now_ms() - t0) / 1000.0;
    if (rc != 0) {
        tw_diag_log_all(&diag, NULL, NULL);
        log_error("rules reload (%s) refused: %s, %zu problem(s); keeping rules %s", why,
                  tw_err_str(rc), diag.count, r->version);
        atomic_fetch_add(&tw_metrics.rules_reload_failures_total, 1);
        tw_diag_fini(&diag);
        return;
    }
    tw_diag_fini(&diag);
    reload_watch_files(r, rules);
    if (strcmp(rules->version, r->version) == 0) {
        log_info("rules reload (%s): %s unchanged", why, rules->version);
        match_db_free(db);
        rule_set_free(rules);
        return;
    }
    snprintf(r->version, sizeof(r->version), "%s", rules->version);
    log_info("rules reload (%s): %s compiled in %.3f s (%s); swapping in between batches", why,
             rules->version, secs, match_db_from_cache(db) ? "from the cache" : "compiled");
    pthread_mutex_lock(&r->lock);
    /* A set still waiting is superseded: the loop never saw it. */
    match_db_free(r->ready_db);
    rule_set_free(r->ready_rules);
    r->ready_rules = rules;
    r->ready_db = db;
    r->ready_seconds = secs;
    pthread_mutex_unlock(&r->lock);
}

static void *reload_main(void *arg)
{
    reload_t *r = arg;
    int64_t pending = -1; /* when the first event of a burst arrived */
    while (!atomic_load(&r->stop)) {
        if (r->ifd >= 0) {
            struct pollfd pfd = {.fd = r->ifd, .events = POLLIN};
            if (poll(&pfd, 1, RELOAD_POLL_MS) > 0 && reload_read_events(r) && pending < 0)
                pending = reload_now_ms();
        } else {
            struct timespec ts = {0, RELOAD_POLL_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (atomic_exchange(&tw_reload_requested, 0)) {
            reload_once(r, "SIGHUP");
            pending = -1;
        } else if (pending >= 0 && reload_now_ms() - pending >= RELOAD_DEBOUNCE_MS) {
            pending = -1;
            reload_once(r, "file changed");
        }
    }
    return NULL;
}

int reload_start(const config_t *cfg, const rule_set_t *current, reload_t **out)
{
    *out = NULL;
    reload_t *r = calloc(1, sizeof(*r));
    if (!r)
        return TW_ERR_NOMEM;
    r->cfg = cfg;
    atomic_init(&r->stop, false);
    pthread_mutex_init(&r->lock, NULL);
    snprintf(r->version, sizeof(r->version), "%s", current->version);
    r->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (r->ifd < 0)
        log_warn("rules reload: inotify unavailable (%s); SIGHUP still reloads", strerror(errno));
    reload_watch_files(r, current);
    if (pthread_create(&r->thread, NULL, reload_main, r) != 0) {
        if (r->ifd >= 0)
            close(r->ifd);
        reload_names_free(r);
        for (size_t i = 0; i < r->nwatches; i++)
            free(r->watches[i].dir);
        pthread_mutex_destroy(&r->lock);
        free(r);
        return TW_ERR_NOMEM;
    }
    *out = r;
    return 0;
}

bool reload_ready(reload_t *r)
{
    if (!r)
        return false;
    pthread_mutex_lock(&r->lock);
    bool ready = r->ready_rules != NULL;
    pthread_mutex_unlock(&r->lock);
    return ready;
}

bool reload_apply(reload_t *r, engine_t *e, pipeline_t *pipe, const config_t *cfg)
{
    if (!r)
        return false;
    pthread_mutex_lock(&r->lock);
    rule_set_t *rules = r->ready_rules;
    match_db_t *db = r->ready_db;
    double secs = r->ready_seconds;
    r->ready_rules = NULL;
    r->ready_db = NULL;
    pthread_mutex_unlock(&r->lock);
    if (!rules)
        return false;
    if (pipeline_set_rules(pipe, rules, db) != 0) {
        log_error("rules reload: out of memory for a scratch; keeping rules %s", e->rules->version);
        atomic_fetch_add(&tw_metrics.rules_reload_failures_total, 1);
        match_db_free(db);
        rule_set_free(rules);
        return false;
    }
    metrics_rules_t *mr = NULL;
    if (stage_metrics_rules_new(rules, (size_t)cfg->metrics_max_rule_series, secs, e->rule_metrics,
                                &mr) == 0) {
        metrics_rules_release(metrics_rules_publish(mr));
        metrics_rules_release(e->rule_metrics);
        e->rule_metrics = mr;
    }
    log_info("rules %s in use (was %s): %zu rules, %zu patterns", rules->version, e->rules->version,
             rules->nrules, rules->npatterns);
    match_db_free(e->db);
    rule_set_free(e->rules);
    e->rules = rules;
    e->db = db;
    e->compile_seconds = secs;
    return true;
}

void reload_stop(reload_t *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
    if (r->ifd >= 0)
        close(r->ifd);
    for (size_t i = 0; i < r->nwatches; i++)
        free(r->watches[i].dir);
    reload_names_free(r);
    match_db_free(r->ready_db);
    rule_set_free(r->ready_rules);
    pthread_mutex_destroy(&r->lock);
    free(r);
}
