/* A persistent pool of worker threads for the pipeline's per-post CPU stages. The threads
 * live as long as the pool and sleep between jobs, so a batch costs two wake-ups, not thread
 * creation. The calling thread is worker 0 and takes part in every job: a pool of N workers
 * runs N - 1 threads, and a pool of 1 is just the caller. */
#ifndef TW_POOL_H
#define TW_POOL_H

#include <stddef.h>

typedef struct pool pool_t;

/* One job: called once on each worker, with that worker's index in [0, pool_workers). The
 * job divides the work among the workers itself (e.g. by an atomic counter). */
typedef void (*pool_job_fn)(void *arg, size_t worker);

/* Starts a pool of workers >= 1 (workers - 1 threads). Returns 0 or a negative tw_err_t
 * (TW_ERR_NOMEM when memory or threads ran out). */
int pool_new(size_t workers, pool_t **out);

/* Stops the threads and frees the pool. NULL is a no-op. */
void pool_free(pool_t *pool);

/* The number of workers (1 for a NULL pool). */
size_t pool_workers(const pool_t *pool);

/* Runs job on every worker and returns when all have returned, so whatever the job wrote is
 * visible to the caller afterwards. A NULL pool runs job(arg, 0) on the caller. One job at a
 * time per pool, started by the thread that owns it. */
void pool_run(pool_t *pool, pool_job_fn job, void *arg);

/* pool_run in two halves, for a caller with other work meanwhile: pool_start wakes workers
 * 1.. on job and returns at once; the caller then runs job(arg, 0) itself (now or later) and
 * pool_wait returns when the threads are done. Each pool_start needs its pool_wait before
 * the next job. No-ops for a NULL pool. */
void pool_start(pool_t *pool, pool_job_fn job, void *arg);
void pool_wait(pool_t *pool);

/* The CPUs this process may run on (sched_getaffinity), at least 1. */
size_t pool_cpu_count(void);

#endif
