#include "pipeline/pool.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>

#include "util/err.h"

typedef struct {
    struct pool *pool;
    size_t index; /* the worker index this thread passes to jobs (1..workers-1) */
    pthread_t thread;
} pool_thread_t;

struct pool {
    pthread_mutex_t lock;
    pthread_cond_t start; /* a new job (generation changed) or stop */
    pthread_cond_t done;  /* the last thread of a job finished */
    pool_job_fn job;
    void *arg;
    unsigned long generation; /* one per job; each thread runs each generation once */
    size_t running;           /* threads still in the current job */
    bool stop;
    size_t workers;
    size_t nthreads; /* threads started: workers - 1 once the pool is up */
    pool_thread_t *threads;
};

static void *pool_thread_main(void *opaque)
{
    pool_thread_t *self = opaque;
    pool_t *pool = self->pool;
    /* Generation 0 is "no job yet", not whatever the pool is at when this thread gets the
     * lock: a job started before then must still be run here. */
    unsigned long seen = 0;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->stop && pool->generation == seen)
            pthread_cond_wait(&pool->start, &pool->lock);
        if (pool->stop)
            break;
        seen = pool->generation;
        pool_job_fn job = pool->job;
        void *arg = pool->arg;
        pthread_mutex_unlock(&pool->lock);
        job(arg, self->index);
        pthread_mutex_lock(&pool->lock);
        if (--pool->running == 0)
            pthread_cond_signal(&pool->done);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

int pool_new(size_t workers, pool_t **out)
{
    *out = NULL;
    if (workers < 1)
        workers = 1;
    pool_t *pool = calloc(1, sizeof(*pool));
    if (!pool)
        return TW_ERR_NOMEM;
    pool->workers = workers;
    pool->threads = calloc(workers, sizeof(*pool->threads));
    if (!pool->threads) {
        free(pool);
        return TW_ERR_NOMEM;
    }
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->start, NULL);
    pthread_cond_init(&pool->done, NULL);
    /* The threads block every signal, so SIGTERM and SIGHUP keep going to the thread that
     * polls Kafka and checks the stop flag. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = 0;
    for (size_t i = 1; i < workers; i++) {
        pool_thread_t *t = &pool->threads[pool->nthreads];
        t->pool = pool;
        t->index = i;
        if (pthread_create(&t->thread, NULL, pool_thread_main, t) != 0) {
            rc = TW_ERR_NOMEM;
            break;
        }
        pool->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pool_free(pool);
        return rc;
    }
    *out = pool;
    return 0;
}

void pool_free(pool_t *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stop = true;
    pthread_cond_broadcast(&pool->start);
    pthread_mutex_unlock(&pool->lock);
    for (size_t i = 0; i < pool->nthreads; i++)
        pthread_join(pool->threads[i].thread, NULL);
    pthread_cond_destroy(&pool->done);
    pthread_cond_destroy(&pool->start);
    pthread_mutex_destroy(&pool->lock);
    free(pool->threads);
    free(pool);
}

size_t pool_workers(const pool_t *pool)
{
    return pool ? pool->workers : 1;
}

void pool_start(pool_t *pool, pool_job_fn job, void *arg)
{
    if (!pool || pool->nthreads == 0)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->job = job;
    pool->arg = arg;
    pool->running = pool->nthreads;
    pool->generation++;
    pthread_cond_broadcast(&pool->start);
    pthread_mutex_unlock(&pool->lock);
}

void pool_wait(pool_t *pool)
{
    if (!pool || pool->nthreads == 0)
        return;
    pthread_mutex_lock(&pool->lock);
    while (pool->running > 0)
        pthread_cond_wait(&pool->done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}

void pool_run(pool_t *pool, pool_job_fn job, void *arg)
{
    pool_start(pool, job, arg);
    job(arg, 0);
    pool_wait(pool);
}

size_t pool_cpu_count(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return (size_t)n;
    }
    return 1;
}
