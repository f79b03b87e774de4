/*
 * transport-threads.c — N ranks of a ring as threads of one process (transport.h). Used by the
 * tests and by single-machine runs without MPI; needs only pthreads.
 *
 * All ranks share one hub: a mutex, one condition variable broadcast on every change, and one
 * slot per rank. Everything shared is read and written under the mutex; the copies themselves
 * are done under it too, which serialises them but keeps the design obviously race-free (the
 * rings this runs are small, and the real multi-machine path is MPI).
 *
 *   Exchange.  A rank's begin posts its outgoing message in its own slot (pointer, size,
 *              destination, a `posted` counter). The receiver's exchange_end waits until the
 *              sender's slot holds a message addressed to it, copies it into its receive buffer
 *              and bumps the sender's `consumed` counter; the sender's exchange_end waits for
 *              that, after which its send buffer is free again. Messages between two ranks are
 *              therefore taken in the order they were sent, one at a time, like MPI's.
 *   Collective. A generation-counted barrier: each rank leaves its buffers in its slot; the
 *              last to arrive checks that everyone called the same collective, does all the
 *              copies, and bumps the generation, which releases the others.
 *   Failure.   fail(), a timeout, a size mismatch, or a rank freed mid-exchange marks the hub
 *              failed with a message; every blocked and later operation of every rank then
 *              returns RK_ERR_IO with it. Failure is final, so a rank that gave up waiting can
 *              return while its buffers are still named in the hub: nobody copies after a
 *              failure. A rank freed normally is marked departed; a rank that then waits for
 *              it fails the ring at once instead of after a timeout.
 */
#include "dist/transport.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"

typedef enum coll_kind { COLL_ALLGATHER = 1, COLL_BROADCAST = 2 } coll_kind;

/* What the hub knows about one rank. */
typedef struct rank_slot {
    /* the message this rank is sending (valid while posted > consumed) */
    const void *send;
    size_t send_bytes;
    int send_to;
    uint64_t posted;   /* messages this rank has posted */
    uint64_t consumed; /* of those, taken by their receiver; posted - consumed is 0 or 1 */
    int mismatch;      /* the receiver expected mismatch_bytes instead of send_bytes */
    size_t mismatch_bytes;
    /* the collective this rank is waiting in (valid while in_coll) */
    int in_coll;
    const void *coll_in;
    void *coll_out;
    int departed; /* the rank's transport was freed */
} rank_slot;

typedef struct hub {
    pthread_mutex_t mutex;
    pthread_cond_t changed; /* broadcast on every change of the state below (CLOCK_MONOTONIC) */
    int n_ranks;
    int refs; /* transports not yet freed */
    int failed;
    char fail_msg[RK_ERROR_MSG_MAX];
    rank_slot *slots; /* (n_ranks) */
    /* the collective being gathered */
    uint64_t coll_gen; /* bumped when one completes */
    int coll_arrived;
    coll_kind coll_kind; /* as called by the first rank to arrive, coll_first */
    size_t coll_bytes;
    int coll_root;
    int coll_first;
} hub;

typedef struct threads_transport {
    rk_transport base;
    hub *hub;
    /* the exchange in flight */
    int in_flight;
    void *recv;
    size_t recv_bytes;
    int from, to;
} threads_transport;

/* ---- waiting ---- */

static struct timespec deadline_after(int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (timeout_ms <= 0) return ts; /* unused: no limit */
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Waits (mutex held) for the next change or the deadline; 1 when the deadline passed. A
 * timeout_ms <= 0 waits without limit. */
static int hub_wait(hub *h, int timeout_ms, const struct timespec *deadline) {
    if (timeout_ms <= 0) {
        pthread_cond_wait(&h->changed, &h->mutex);
        return 0;
    }
    return pthread_cond_timedwait(&h->changed, &h->mutex, deadline) == ETIMEDOUT;
}

/* Marks the hub failed with the message (the first failure wins) and wakes every rank. Mutex
 * held. */
static void hub_fail_locked(hub *h, const char *msg) {
    if (!h->failed) {
        h->failed = 1;
        snprintf(h->fail_msg, sizeof h->fail_msg, "%s", msg);
    }
    pthread_cond_broadcast(&h->changed);
}

/* The error every rank sees once the hub failed. Mutex held. */
static rk_status hub_failed_error(const hub *h, rk_error *err) {
    return rk_error_set(err, RK_ERR_IO, "%s", h->fail_msg);
}

/* A wait for rank `peer` ran out: fail the ring (so no one copies from or into the buffers of
 * the rank giving up) and report. Mutex held. */
static rk_status timeout_error(threads_transport *tt, int peer, rk_error *err) {
    char msg[RK_ERROR_MSG_MAX];
    snprintf(msg, sizeof msg,
             "ring: rank %d waited %d ms for rank %d (threads transport); did it fail?",
             tt->base.rank, tt->base.timeout_ms, peer);
    hub_fail_locked(tt->hub, msg);
    return rk_error_set(err, RK_ERR_IO, "%s", msg);
}

/* Rank `peer` was freed while this rank still needed it: the ring is broken for everyone (as
 * after a timeout, only sooner). Mutex held. */
static rk_status departed_error(threads_transport *tt, int peer, const char *what, rk_error *err) {
    char msg[RK_ERROR_MSG_MAX];
    snprintf(msg, sizeof msg,
             "ring: rank %d left the ring while rank %d waited for it in %s (threads transport)",
             peer, tt->base.rank, what);
    hub_fail_locked(tt->hub, msg);
    return rk_error_set(err, RK_ERR_IO, "%s", msg);
}

/* ---- exchange ---- */

static rk_status threads_exchange_begin(rk_transport *t, const void *send, size_t send_bytes,
                                        int to, void *recv, size_t recv_bytes, int from,
                                        rk_error *err) {
    threads_transport *tt = (threads_transport *)t;
    hub *h = tt->hub;
    if (tt->in_flight)
        return rk_error_set(err, RK_ERR_INTERNAL,
                            "ring: rank %d began an exchange with one already in flight", t->rank);
    pthread_mutex_lock(&h->mutex);
    if (h->failed) {
        rk_status st = hub_failed_error(h, err);
        pthread_mutex_unlock(&h->mutex);
        return st;
    }
    rank_slot *me = &h->slots[t->rank];
    me->send = send;
    me->send_bytes = send_bytes;
    me->send_to = to;
    me->mismatch = 0;
    me->posted++;
    pthread_cond_broadcast(&h->changed);
    pthread_mutex_unlock(&h->mutex);
    tt->in_flight = 1;
    tt->recv = recv;
    tt->recv_bytes = recv_bytes;
    tt->from = from;
    tt->to = to;
    return RK_OK;
}

/* Takes the message from rank tt->from if it is there: *done = 1 when taken. A size mismatch
 * fails the ring (the exchange sequence is broken) and is RK_ERR_INTERNAL here. Mutex held. */
static rk_status try_receive(threads_transport *tt, int *done, rk_error *err) {
    hub *h = tt->hub;
    rank_slot *src = &h->slots[tt->from];
    if (src->posted == src->consumed || src->send_to != tt->base.rank) return RK_OK;
    if (src->send_bytes != tt->recv_bytes) {
        char msg[RK_ERROR_MSG_MAX];
        snprintf(
            msg, sizeof msg,
            "ring: rank %d expected %zu bytes from rank %d, which sent %zu (threads transport)",
            tt->base.rank, tt->recv_bytes, tt->from, src->send_bytes);
        src->mismatch = 1;
        src->mismatch_bytes = tt->recv_bytes;
        src->consumed++;
        hub_fail_locked(h, msg);
        return rk_error_set(err, RK_ERR_INTERNAL, "%s", msg);
    }
    if (tt->recv_bytes > 0) memmove(tt->recv, src->send, tt->recv_bytes);
    src->consumed++;
    pthread_cond_broadcast(&h->changed);
    *done = 1;
    return RK_OK;
}

/* The exchange's wait loop (mutex held). */
static rk_status exchange_wait(threads_transport *tt, rk_error *err) {
    hub *h = tt->hub;
    rank_slot *me = &h->slots[tt->base.rank];
    struct timespec deadline = deadline_after(tt->base.timeout_ms);
    int received = 0, sent = 0, timed_out = 0;
    for (;;) {
        /* receive first: with one rank the message received is the own one just sent */
        if (!received && !h->failed) {
            rk_status st = try_receive(tt, &received, err);
            if (st != RK_OK) return st;
        }
        if (!sent && me->posted == me->consumed) {
            if (me->mismatch)
                return rk_error_set(err, RK_ERR_INTERNAL,
                                    "ring: rank %d sent %zu bytes to rank %d, which expected %zu "
                                    "(threads transport)",
                                    tt->base.rank, me->send_bytes, tt->to, me->mismatch_bytes);
            sent = 1;
        }
        if (h->failed) return hub_failed_error(h, err);
        if (received && sent) return RK_OK;
        if (!received && h->slots[tt->from].departed)
            return departed_error(tt, tt->from, "an exchange", err);
        if (!sent && h->slots[tt->to].departed)
            return departed_error(tt, tt->to, "an exchange", err);
        if (timed_out) return timeout_error(tt, received ? tt->to : tt->from, err);
        timed_out = hub_wait(h, tt->base.timeout_ms, &deadline);
    }
}

static rk_status threads_exchange_end(rk_transport *t, rk_error *err) {
    threads_transport *tt = (threads_transport *)t;
    if (!tt->in_flight)
        return rk_error_set(err, RK_ERR_INTERNAL,
                            "ring: rank %d ended an exchange it had not begun", t->rank);
    tt->in_flight = 0;
    pthread_mutex_lock(&tt->hub->mutex);
    rk_status st = exchange_wait(tt, err);
    pthread_mutex_unlock(&tt->hub->mutex);
    return st;
}

/* ---- collectives ---- */

static const char *coll_name(coll_kind k) {
    return k == COLL_ALLGATHER ? "allgather" : "broadcast";
}

/* Done by the last rank to arrive: every copy of the collective (mutex held). */
static void coll_copy_all(hub *h) {
    size_t bytes = h->coll_bytes;
    if (bytes == 0) return;
    if (h->coll_kind == COLL_BROADCAST) {
        const void *src = h->slots[h->coll_root].coll_in;
        for (int r = 0; r < h->n_ranks; r++)
            if (r != h->coll_root) memmove(h->slots[r].coll_out, src, bytes);
        return;
    }
    for (int q = 0; q < h->n_ranks; q++)
        for (int r = 0; r < h->n_ranks; r++)
            memmove((char *)h->slots[q].coll_out + (size_t)r * bytes, h->slots[r].coll_in, bytes);
}

/* Checks that this rank called the collective the first arrival called; mismatches fail the
 * ring (RK_ERR_INTERNAL here). Mutex held. */
static rk_status coll_check_same(threads_transport *tt, coll_kind kind, size_t bytes, int root,
                                 rk_error *err) {
    hub *h = tt->hub;
    if (h->coll_kind == kind && h->coll_bytes == bytes &&
        (kind != COLL_BROADCAST || h->coll_root == root))
        return RK_OK;
    char msg[RK_ERROR_MSG_MAX];
    snprintf(msg, sizeof msg,
             "ring: rank %d called %s of %zu bytes (root %d) while rank %d called %s of %zu bytes "
             "(root %d): "
             "collectives out of step (threads transport)",
             tt->base.rank, coll_name(kind), bytes, root, h->coll_first, coll_name(h->coll_kind),
             h->coll_bytes, h->coll_root);
    hub_fail_locked(h, msg);
    return rk_error_set(err, RK_ERR_INTERNAL, "%s", msg);
}

/* Waits (mutex held) until the collective of generation `gen` completes. */
static rk_status coll_wait(threads_transport *tt, uint64_t gen, coll_kind kind, rk_error *err) {
    hub *h = tt->hub;
    struct timespec deadline = deadline_after(tt->base.timeout_ms);
    int timed_out = 0;
    while (h->coll_gen == gen) {
        if (h->failed) return hub_failed_error(h, err);
        int missing = -1;
        for (int r = 0; r < h->n_ranks && missing < 0; r++)
            if (!h->slots[r].in_coll) missing = r;
        if (missing >= 0 && h->slots[missing].departed)
            return departed_error(tt, missing, coll_name(kind), err);
        if (timed_out) return timeout_error(tt, missing, err);
        timed_out = hub_wait(h, tt->base.timeout_ms, &deadline);
    }
    return RK_OK;
}

static rk_status threads_collective(threads_transport *tt, coll_kind kind, const void *in,
                                    void *out, size_t bytes, int root, rk_error *err) {
    hub *h = tt->hub;
    pthread_mutex_lock(&h->mutex);
    rk_status st = RK_OK;
    if (h->failed) {
        st = hub_failed_error(h, err);
        goto done;
    }
    if (h->coll_arrived == 0) {
        h->coll_kind = kind;
        h->coll_bytes = bytes;
        h->coll_root = root;
        h->coll_first = tt->base.rank;
    } else if ((st = coll_check_same(tt, kind, bytes, root, err)) != RK_OK) {
        goto done;
    }
    rank_slot *me = &h->slots[tt->base.rank];
    me->in_coll = 1;
    me->coll_in = in;
    me->coll_out = out;
    uint64_t gen = h->coll_gen;
    if (++h->coll_arrived == h->n_ranks) {
        coll_copy_all(h);
        for (int r = 0; r < h->n_ranks; r++)
            h->slots[r].in_coll = 0;
        h->coll_arrived = 0;
        h->coll_gen++;
        pthread_cond_broadcast(&h->changed);
    } else {
        pthread_cond_broadcast(&h->changed); /* for waiters naming the missing rank */
        st = coll_wait(tt, gen, kind, err);
    }
done:
    pthread_mutex_unlock(&h->mutex);
    return st;
}

static rk_status threads_allgather(rk_transport *t, const void *mine, size_t bytes, void *all,
                                   rk_error *err) {
    return threads_collective((threads_transport *)t, COLL_ALLGATHER, mine, all, bytes, 0, err);
}

static rk_status threads_broadcast(rk_transport *t, void *buf, size_t bytes, int root,
                                   rk_error *err) {
    return threads_collective((threads_transport *)t, COLL_BROADCAST, buf, buf, bytes, root, err);
}

/* ---- failure and lifetime ---- */

static void threads_fail(rk_transport *t, const char *message) {
    threads_transport *tt = (threads_transport *)t;
    char msg[RK_ERROR_MSG_MAX];
    snprintf(msg, sizeof msg, "rank %d: %s", t->rank, message);
    pthread_mutex_lock(&tt->hub->mutex);
    hub_fail_locked(tt->hub, msg);
    pthread_mutex_unlock(&tt->hub->mutex);
}

static void hub_free(hub *h) {
    pthread_cond_destroy(&h->changed);
    pthread_mutex_destroy(&h->mutex);
    free(h->slots);
    free(h);
}

/* Marks the rank departed (waking anyone waiting for it) and frees the hub with its last user.
 * An exchange still in flight is withdrawn and fails the ring: its buffers may be gone next. */
static void threads_destroy(rk_transport *t) {
    threads_transport *tt = (threads_transport *)t;
    hub *h = tt->hub;
    pthread_mutex_lock(&h->mutex);
    rank_slot *me = &h->slots[t->rank];
    me->departed = 1;
    if (tt->in_flight) {
        me->consumed = me->posted;
        char msg[RK_ERROR_MSG_MAX];
        snprintf(msg, sizeof msg, "rank %d: freed its transport with an exchange in flight",
                 t->rank);
        hub_fail_locked(h, msg);
    }
    pthread_cond_broadcast(&h->changed);
    int last = --h->refs == 0;
    pthread_mutex_unlock(&h->mutex);
    if (last) hub_free(h);
    free(tt);
}

static const rk_transport_ops threads_ops = {
    .exchange_begin = threads_exchange_begin,
    .exchange_end = threads_exchange_end,
    .allgather = threads_allgather,
    .broadcast = threads_broadcast,
    .fail = threads_fail,
    .destroy = threads_destroy,
};

static hub *hub_create(int n_ranks) {
    hub *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->slots = calloc((size_t)n_ranks, sizeof *h->slots);
    pthread_condattr_t attr;
    int cond_ok = 0;
    if (pthread_condattr_init(&attr) == 0) {
        cond_ok = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
                  pthread_cond_init(&h->changed, &attr) == 0;
        pthread_condattr_destroy(&attr);
    }
    if (!h->slots || !cond_ok || pthread_mutex_init(&h->mutex, NULL) != 0) {
        if (cond_ok) pthread_cond_destroy(&h->changed);
        free(h->slots);
        free(h);
        return NULL;
    }
    h->n_ranks = n_ranks;
    return h;
}

rk_status rk_transport_threads_create(int n_ranks, rk_transport **out, rk_error *err) {
    if (n_ranks < 1 || !out)
        return rk_error_set(err, RK_ERR_INVALID_ARG,
                            "ring: threads transport needs at least 1 rank (got %d)", n_ranks);
    hub *h = hub_create(n_ranks);
    if (!h)
        return rk_error_set(err, RK_ERR_NO_MEMORY,
                            "ring: out of memory for a %d-rank threads transport", n_ranks);
    for (int r = 0; r < n_ranks; r++) {
        threads_transport *tt = calloc(1, sizeof *tt);
        if (!tt) {
            for (int q = 0; q < r; q++)
                free(out[q]);
            hub_free(h);
            return rk_error_set(err, RK_ERR_NO_MEMORY,
                                "ring: out of memory for a %d-rank threads transport", n_ranks);
        }
        tt->base.ops = &threads_ops;
        tt->base.rank = r;
        tt->base.size = n_ranks;
        tt->base.timeout_ms = RK_TRANSPORT_TIMEOUT_MS;
        tt->base.name = "threads";
        tt->hub = h;
        out[r] = &tt->base;
    }
    h->refs = n_ranks;
    return RK_OK;
}
