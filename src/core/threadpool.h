/*
 * threadpool.h — one compute thread pool per engine.
 *
 * rk_pool_run(pool, fn, arg) calls fn(arg, ith, nth) on nth threads (the caller is thread 0)
 * and returns when all have finished. Decode runs hundreds of small parallel steps per token,
 * so workers spin briefly on an atomic generation counter before sleeping on a condition
 * variable: a dispatch costs about a microsecond while the pool is busy.
 */
#ifndef RK_CORE_THREADPOOL_H
#define RK_CORE_THREADPOOL_H

#include "ringkv.h"

typedef struct rk_pool rk_pool;
typedef void (*rk_pool_fn)(void *arg, int ith, int nth);

/* n_threads >= 1 (the caller counts as one). *out belongs to the caller. */
rk_status rk_pool_create(int n_threads, rk_pool **out, rk_error *err);
void rk_pool_free(rk_pool *pool);
int rk_pool_size(const rk_pool *pool);
/* Runs fn on every thread of the pool and waits. Not reentrant. */
void rk_pool_run(rk_pool *pool, rk_pool_fn fn, void *arg);

/* Splits [0, n) into nth near-equal parts; writes part ith into [*begin, *end). */
void rk_pool_split(int64_t n, int ith, int nth, int64_t *begin, int64_t *end);

/* Number of online CPUs (>= 1). */
int rk_cpu_count(void);

#endif
