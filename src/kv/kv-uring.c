/*
 * kv-uring.c — see kv-uring.h. With liburing: one ring, readv requests submitted in waves of
 * the ring's depth, each wave reaped in full before the next. Without it: stubs that say "not
 * available", so the store reads one extent after another.
 */
#include "kv/kv-uring.h"

#include <errno.h>
#include <stdlib.h>

#ifdef RINGKV_HAVE_LIBURING
#include <liburing.h>

struct rk_kv_uring {
    struct io_uring ring;
    unsigned depth;
    int broken; /* a completion was lost: results can no longer be matched to requests */
};

rk_kv_uring *rk_kv_uring_create(unsigned depth) {
    if (depth == 0) return NULL;
    rk_kv_uring *u = calloc(1, sizeof *u);
    if (!u) return NULL;
    if (io_uring_queue_init(depth, &u->ring, 0) < 0) { /* e.g. disabled by the kernel or a sandbox */
        free(u);
        return NULL;
    }
    u->depth = depth;
    return u;
}

void rk_kv_uring_free(rk_kv_uring *u) {
    if (!u) return;
    io_uring_queue_exit(&u->ring);
    free(u);
}

void rk_kv_uring_read(rk_kv_uring *u, const rk_kv_extent *ext, int n, int64_t *res) {
    for (int i = 0; i < n; i++) res[i] = -EIO; /* until a completion says otherwise */
    for (int first = 0; first < n && !u->broken;) {
        int wave = n - first < (int)u->depth ? n - first : (int)u->depth, queued = 0;
        for (int i = 0; i < wave; i++) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
            if (!sqe) break;
            const rk_kv_extent *e = &ext[first + i];
            io_uring_prep_readv(sqe, e->fd, e->iov, (unsigned)e->n_iov, (uint64_t)e->offset);
            io_uring_sqe_set_data64(sqe, (uint64_t)(first + i));
            queued++;
        }
        int submitted = io_uring_submit(&u->ring);
        if (submitted < 0) submitted = 0; /* the rest stay -EIO: the caller reads them again */
        if (submitted != queued) u->broken = 1; /* unsubmitted entries would go out later */
        for (int done = 0; done < submitted; done++) {
            struct io_uring_cqe *cqe;
            if (io_uring_wait_cqe(&u->ring, &cqe) < 0) {
                u->broken = 1; /* in-flight reads would land in a later call's results */
                break;
            }
            res[io_uring_cqe_get_data64(cqe)] = cqe->res;
            io_uring_cqe_seen(&u->ring, cqe);
        }
        if (queued == 0) break;
        first += queued;
    }
}

#else

rk_kv_uring *rk_kv_uring_create(unsigned depth) {
    (void)depth;
    return NULL;
}

void rk_kv_uring_free(rk_kv_uring *u) { (void)u; }

void rk_kv_uring_read(rk_kv_uring *u, const rk_kv_extent *ext, int n, int64_t *res) {
    (void)u, (void)ext;
    for (int i = 0; i < n; i++) res[i] = -ENOSYS;
}

#endif
