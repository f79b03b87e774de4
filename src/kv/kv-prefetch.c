/*
 * kv-prefetch.c — the disk tier's I/O thread (see kv-prefetch.h).
 *
 * A mutex and two condition variables guard one request slot: submit fills it and signals the
 * thread; the thread reads the pages with rk_kv_store_read_pages (every piece in flight at
 * once through its io_uring where available, else one large preadv per run of consecutive
 * pages) and signals completion; wait blocks on that. The thread sleeps when there is no work.
 */
#include "kv/kv-prefetch.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/error.h"
#include "kv/kv-uring.h"

#define URING_DEPTH 32 /* reads in flight: a 4.4 MiB layer is about 18 pieces of 256 KiB */

struct kv_prefetch {
    rk_kv_store *store;
    rk_kv_uring *ring;        /* the thread's io_uring, or NULL (kv-uring.h) */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work;      /* a request arrived, or stop */
    pthread_cond_t done;      /* the request finished */
    bool stop;
    bool pending;             /* submitted and not yet waited for */
    bool finished;            /* the thread finished the pending request */
    int64_t file;
    int64_t n;
    int64_t *pages;           /* (max_pages) */
    uint8_t **recs;           /* (max_pages) */
    rk_status status;
    rk_error error;
    double io_seconds;
};

/* Reads the request: all of it in flight at once through the ring, or run after run. */
static rk_status read_request(kv_prefetch *io, rk_error *err) {
    return rk_kv_store_read_pages(io->store, io->ring, io->file, io->pages, io->n, io->recs, err);
}

static void *io_main(void *arg) {
    kv_prefetch *io = arg;
    pthread_mutex_lock(&io->lock);
    for (;;) {
        while (!io->stop && !(io->pending && !io->finished)) pthread_cond_wait(&io->work, &io->lock);
        if (io->stop) break;
        pthread_mutex_unlock(&io->lock);
        rk_error e;
        rk_error_clear(&e);
        double t0 = rk_now_seconds();
        rk_status s = read_request(io, &e);
        double t = rk_now_seconds() - t0;
        pthread_mutex_lock(&io->lock);
        io->status = s;
        io->error = e;
        io->io_seconds = t;
        io->finished = true;
        pthread_cond_broadcast(&io->done);
    }
    pthread_mutex_unlock(&io->lock);
    return NULL;
}

/* Frees what kv_prefetch_start made (the thread already joined, or never started). */
static void destroy(kv_prefetch *io) {
    pthread_mutex_destroy(&io->lock);
    pthread_cond_destroy(&io->work);
    pthread_cond_destroy(&io->done);
    free(io->pages);
    free(io->recs);
    rk_kv_uring_free(io->ring);
    free(io);
}

rk_status kv_prefetch_start(rk_kv_store *store, int64_t max_pages, kv_prefetch **out,
                            rk_error *err) {
    *out = NULL;
    kv_prefetch *io = calloc(1, sizeof *io);
    if (!io) return rk_error_set(err, RK_ERR_NO_MEMORY, "kv: out of memory for the I/O thread");
    pthread_mutex_init(&io->lock, NULL);
    pthread_cond_init(&io->work, NULL);
    pthread_cond_init(&io->done, NULL);
    io->store = store;
    io->ring = rk_kv_uring_create(URING_DEPTH);
    io->file = -1;
    io->pages = calloc((size_t)max_pages, sizeof *io->pages);
    io->recs = calloc((size_t)max_pages, sizeof *io->recs);
    if (!io->pages || !io->recs) {
        destroy(io);
        return rk_error_set(err, RK_ERR_NO_MEMORY, "kv: out of memory for the I/O thread");
    }
    if (pthread_create(&io->thread, NULL, io_main, io) != 0) {
        destroy(io);
        return rk_error_set(err, RK_ERR_INTERNAL, "kv: cannot start the disk tier's I/O thread");
    }
    *out = io;
    return RK_OK;
}

void kv_prefetch_stop(kv_prefetch *io) {
    if (!io) return;
    double a, b;
    kv_prefetch_wait(io, &a, &b, NULL);
    pthread_mutex_lock(&io->lock);
    io->stop = true;
    pthread_cond_broadcast(&io->work);
    pthread_mutex_unlock(&io->lock);
    pthread_join(io->thread, NULL);
    destroy(io);
}

void kv_prefetch_submit(kv_prefetch *io, int64_t file, const int64_t *pages, uint8_t *const *recs,
                        int64_t n) {
    pthread_mutex_lock(&io->lock);
    io->file = file;
    io->n = n;
    memcpy(io->pages, pages, (size_t)n * sizeof *pages);
    memcpy(io->recs, recs, (size_t)n * sizeof *recs);
    io->pending = true;
    io->finished = false;
    pthread_cond_signal(&io->work);
    pthread_mutex_unlock(&io->lock);
}

int kv_prefetch_uses_uring(const kv_prefetch *io) { return io && io->ring != NULL; }

int64_t kv_prefetch_pending_file(const kv_prefetch *io) {
    /* Only the submitting thread changes `pending` and `file`, so it may read them unlocked. */
    return io->pending ? io->file : -1;
}

rk_status kv_prefetch_wait(kv_prefetch *io, double *io_seconds, double *wait_seconds,
                           rk_error *err) {
    *io_seconds = *wait_seconds = 0.0;
    if (!io->pending) return RK_OK;
    double t0 = rk_now_seconds();
    pthread_mutex_lock(&io->lock);
    while (!io->finished) pthread_cond_wait(&io->done, &io->lock);
    io->pending = false;
    io->file = -1;
    rk_status s = io->status;
    if (s && err) *err = io->error;
    *io_seconds = io->io_seconds;
    pthread_mutex_unlock(&io->lock);
    *wait_seconds = rk_now_seconds() - t0;
    return s;
}
