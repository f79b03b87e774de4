/*
 * threadpool.c — the compute thread pool (see threadpool.h).
 *
 * Workers wait for a new "generation" number. rk_pool_run publishes the job and bumps the
 * generation; workers spin on it for a while (cheap when jobs come back to back, as in decode)
 * and otherwise sleep on a condition variable. Completion is counted with an atomic.
 */
#include "core/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/error.h"

#define SPIN_ITERATIONS 200000 /* pause loops before sleeping (~ a millisecond) */
#define SPIN_BEFORE_YIELD 2000 /* then yield the core, in case threads outnumber cores */

struct rk_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    atomic_uint generation;   /* bumped once per job */
    atomic_int pending;       /* workers still running the current job */
    atomic_int stop;
    rk_pool_fn fn;
    void *arg;
};

typedef struct worker_arg {
    rk_pool *pool;
    int ith;
} worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *worker_main(void *p) {
    worker_arg wa = *(worker_arg *)p;
    free(p);
    rk_pool *pool = wa.pool;
    unsigned seen = 0;
    for (;;) {
        unsigned gen;
        int spins = 0;
        while ((gen = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen &&
               !atomic_load(&pool->stop)) {
            if (++spins < SPIN_ITERATIONS) {
                if (spins < SPIN_BEFORE_YIELD)
                    cpu_relax();
                else
                    sched_yield();
                continue;
            }
            pthread_mutex_lock(&pool->mutex);
            while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->mutex);
            pthread_mutex_unlock(&pool->mutex);
        }
        if (atomic_load(&pool->stop)) return NULL;
        seen = gen;
        pool->fn(pool->arg, wa.ith, pool->n_threads);
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_release);
    }
}

rk_status rk_pool_create(int n_threads, rk_pool **out, rk_error *err) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "threads: %d is not in 1..1024", n_threads);
    rk_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return rk_error_set(err, RK_ERR_NO_MEMORY, "threads: out of memory");
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->threads = calloc((size_t)n_threads, sizeof *pool->threads);
    if (!pool->threads) {
        rk_pool_free(pool);
        return rk_error_set(err, RK_ERR_NO_MEMORY, "threads: out of memory");
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) {
            wa->pool = pool;
            wa->ith = i;
        }
        if (!wa || pthread_create(&pool->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            pool->n_threads = i; /* only join the ones that started */
            rk_pool_free(pool);
            return rk_error_set(err, RK_ERR_NO_MEMORY, "threads: cannot start thread %d", i);
        }
    }
    *out = pool;
    return RK_OK;
}

void rk_pool_free(rk_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 1; i < pool->n_threads && pool->threads; i++) pthread_join(pool->threads[i], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->mutex);
    free(pool->threads);
    free(pool);
}

int rk_pool_size(const rk_pool *pool) { return pool->n_threads; }

void rk_pool_run(rk_pool *pool, rk_pool_fn fn, void *arg) {
    if (pool->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    atomic_store_explicit(&pool->pending, pool->n_threads - 1, memory_order_relaxed);
    pthread_mutex_lock(&pool->mutex);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    fn(arg, 0, pool->n_threads);
    for (int spins = 0; atomic_load_explicit(&pool->pending, memory_order_acquire) > 0; spins++) {
        if (spins < SPIN_BEFORE_YIELD)
            cpu_relax();
        else
            sched_yield();
    }
}

void rk_pool_split(int64_t n, int ith, int nth, int64_t *begin, int64_t *end) {
    int64_t per = n / nth, extra = n % nth;
    *begin = ith * per + (ith < extra ? ith : extra);
    *end = *begin + per + (ith < extra ? 1 : 0);
}

int rk_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}
