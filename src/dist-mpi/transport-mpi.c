/*
 * transport-mpi.c — the ring's transport over MPI (see transport-mpi.h for the contract).
 *
 * Every operation posts non-blocking sends and receives, described as `part`s, and polls them
 * (wait_parts): MPI_Test on each part, a sleep growing from 50 us to 1 ms between rounds, a
 * deadline of timeout_ms. Polling rather than MPI_Wait is what turns a dead peer into an error
 * naming it. A message is one part when it fits an int count, else a count of 1 GiB units plus
 * a remainder (two parts, split the same way on both sides, so they match in order: MPI does not
 * let messages with the same source and tag overtake each other).
 *
 * Collectives are built from point-to-point messages to every peer with their own tags. For the
 * small records the ring gathers (decode partials, error records, tokens) one round of direct
 * messages costs about what MPI's own algorithms cost, and an unanswered receive says exactly
 * which rank is missing.
 */
#include "dist-mpi/transport-mpi.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/error.h"

#define TAG_EXCHANGE 11
#define TAG_ALLGATHER 12
#define TAG_BROADCAST 13
#define BIG_UNIT ((size_t)1 << 30) /* bytes per unit of messages over INT_MAX */
#define SPIN_POLLS 16              /* polls without sleeping before backing off */
#define SLEEP_MIN_NS 50000L
#define SLEEP_MAX_NS 1000000L
#define CANCEL_WAIT_S 0.1 /* how long cleanup waits for cancelled requests */

/* One posted send or receive. */
typedef struct part {
    MPI_Request req;
    int peer;
    int is_recv;
    MPI_Datatype type;
    int count;    /* of `type` */
    size_t bytes; /* of the whole message this part belongs to */
    int split;    /* the message has two parts */
} part;

typedef struct mpi_transport {
    rk_transport base;
    MPI_Comm comm;
    MPI_Datatype big;   /* BIG_UNIT contiguous bytes */
    int we_initialised; /* finalise MPI on destroy */
    int broken;         /* a wait failed: every later call returns broken_msg */
    char broken_msg[RK_ERROR_MSG_MAX];
    /* the exchange in flight: up to 2 parts each way */
    int in_flight;
    part xparts[4];
    int n_xparts;
    /* a collective's parts: up to 2 each way per peer (4 * size) */
    part *cparts;
} mpi_transport;

/* ---- errors ---- */

/* Records the first failure: from now on every call returns it. */
static rk_status mark_broken(mpi_transport *mt, rk_status code, const char *msg, rk_error *err) {
    if (!mt->broken) {
        mt->broken = 1;
        snprintf(mt->broken_msg, sizeof mt->broken_msg, "%s", msg);
    }
    return rk_error_set(err, code, "%s", msg);
}

static rk_status broken_error(const mpi_transport *mt, rk_error *err) {
    return rk_error_set(err, RK_ERR_IO, "%s", mt->broken_msg);
}

static void mpi_error_text(int rc, char *buf, size_t size) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS)
        len = snprintf(text, sizeof text, "MPI error %d", rc);
    snprintf(buf, size, "%.*s", len, text);
}

/* An MPI call on a message to or from `peer` failed. */
static rk_status mpi_fail(mpi_transport *mt, int rc, const char *call, const char *what, int peer,
                          rk_error *err) {
    char text[256], msg[RK_ERROR_MSG_MAX];
    mpi_error_text(rc, text, sizeof text);
    snprintf(msg, sizeof msg, "ring: rank %d: %s in %s with rank %d failed: %s (mpi transport)",
             mt->base.rank, call, what, peer, text);
    return mark_broken(mt, RK_ERR_IO, msg, err);
}

/* ---- posting ---- */

/* Posts one message as one or two parts at parts[*n ...]. */
static rk_status post_message(mpi_transport *mt, part *parts, int *n, int is_recv, void *buf,
                              size_t bytes, int peer, int tag, const char *what, rk_error *err) {
    size_t units = bytes > INT_MAX ? bytes / BIG_UNIT : 0;
    size_t rest = bytes - units * BIG_UNIT;
    if (units > INT_MAX)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "ring: %s of %zu bytes is too large for MPI",
                            what, bytes);
    struct {
        MPI_Datatype type;
        size_t count;
        char *at;
    } pieces[2] = {{mt->big, units, buf}, {MPI_BYTE, rest, (char *)buf + units * BIG_UNIT}};
    for (int i = units > 0 ? 0 : 1; i < 2; i++) {
        part *p = &parts[(*n)++];
        p->peer = peer;
        p->is_recv = is_recv;
        p->type = pieces[i].type;
        p->count = (int)pieces[i].count;
        p->bytes = bytes;
        p->split = units > 0;
        int rc = is_recv ? MPI_Irecv(pieces[i].at, p->count, p->type, peer, tag, mt->comm, &p->req)
                         : MPI_Isend(pieces[i].at, p->count, p->type, peer, tag, mt->comm, &p->req);
        if (rc != MPI_SUCCESS) {
            p->req = MPI_REQUEST_NULL;
            return mpi_fail(mt, rc, is_recv ? "MPI_Irecv" : "MPI_Isend", what, peer, err);
        }
    }
    return RK_OK;
}

/* ---- waiting ---- */

/* Cancels and drops every part still pending (after a failure): waits up to CANCEL_WAIT_S for
 * the cancellations, then frees what is left, which MPI completes (or not) on its own. */
static void cancel_parts(part *parts, int n) {
    for (int i = 0; i < n; i++)
        if (parts[i].req != MPI_REQUEST_NULL) MPI_Cancel(&parts[i].req);
    double end = rk_now_seconds() + CANCEL_WAIT_S;
    int left = 1;
    while (left && rk_now_seconds() < end) {
        left = 0;
        for (int i = 0; i < n; i++) {
            if (parts[i].req == MPI_REQUEST_NULL) continue;
            int done = 0;
            if (MPI_Test(&parts[i].req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || !done) left = 1;
        }
    }
    for (int i = 0; i < n; i++)
        if (parts[i].req != MPI_REQUEST_NULL) MPI_Request_free(&parts[i].req);
}

/* A received part did not have the size this rank expected. */
static rk_status size_mismatch(mpi_transport *mt, const part *p, const MPI_Status *status,
                               int truncated, const char *what, rk_error *err) {
    char msg[RK_ERROR_MSG_MAX];
    int got = 0;
    if (!truncated && !p->split && MPI_Get_count(status, MPI_BYTE, &got) == MPI_SUCCESS)
        snprintf(
            msg, sizeof msg,
            "ring: rank %d expected %zu bytes from rank %d in %s, which sent %d (mpi transport)",
            mt->base.rank, p->bytes, p->peer, what, got);
    else
        snprintf(
            msg, sizeof msg,
            "ring: rank %d expected %zu bytes from rank %d in %s, which sent %s (mpi transport)",
            mt->base.rank, p->bytes, p->peer, what, truncated ? "more" : "a different size");
    return mark_broken(mt, RK_ERR_INTERNAL, msg, err);
}

/* Tests part p once: *done when complete; errors for a failed or mis-sized message. */
static rk_status test_part(mpi_transport *mt, part *p, int *done, const char *what, rk_error *err) {
    MPI_Status status;
    int rc = MPI_Test(&p->req, done, &status);
    if (rc != MPI_SUCCESS) {
        int cls = MPI_ERR_OTHER;
        MPI_Error_class(rc, &cls);
        if (p->is_recv && cls == MPI_ERR_TRUNCATE)
            return size_mismatch(mt, p, &status, 1, what, err);
        return mpi_fail(mt, rc, "MPI_Test", what, p->peer, err);
    }
    if (*done && p->is_recv) {
        int got = -1;
        if (MPI_Get_count(&status, p->type, &got) != MPI_SUCCESS || got != p->count)
            return size_mismatch(mt, p, &status, 0, what, err);
    }
    return RK_OK;
}

/* The rank a wait that ran out names: the lowest one whose message has not arrived, else the
 * lowest one that has not taken ours. */
static int missing_peer(const part *parts, int n) {
    int peer = -1;
    for (int pass = 1; pass >= 0 && peer < 0; pass--)
        for (int i = 0; i < n; i++)
            if (parts[i].req != MPI_REQUEST_NULL && parts[i].is_recv == pass &&
                (peer < 0 || parts[i].peer < peer))
                peer = parts[i].peer;
    return peer;
}

/* Polls parts[0 .. n) until all are complete, the deadline passes or one fails; on failure the
 * rest are cancelled and the transport is broken. */
static rk_status wait_parts(mpi_transport *mt, part *parts, int n, const char *what,
                            rk_error *err) {
    double deadline = rk_now_seconds() + mt->base.timeout_ms / 1000.0;
    long sleep_ns = SLEEP_MIN_NS;
    for (int round = 0;; round++) {
        int left = 0;
        for (int i = 0; i < n; i++) {
            if (parts[i].req == MPI_REQUEST_NULL) continue;
            int done = 0;
            rk_status st = test_part(mt, &parts[i], &done, what, err);
            if (st != RK_OK) {
                cancel_parts(parts, n);
                return st;
            }
            left += !done;
        }
        if (!left) return RK_OK;
        if (mt->base.timeout_ms > 0 && rk_now_seconds() > deadline) {
            char msg[RK_ERROR_MSG_MAX];
            snprintf(msg, sizeof msg,
                     "ring: rank %d waited %d ms for rank %d in %s (mpi transport); did it fail?",
                     mt->base.rank, mt->base.timeout_ms, missing_peer(parts, n), what);
            cancel_parts(parts, n);
            return mark_broken(mt, RK_ERR_IO, msg, err);
        }
        if (round >= SPIN_POLLS) {
            struct timespec ts = {0, sleep_ns};
            nanosleep(&ts, NULL);
            sleep_ns = sleep_ns * 2 > SLEEP_MAX_NS ? SLEEP_MAX_NS : sleep_ns * 2;
        }
    }
}

/* ---- operations ---- */

static rk_status mpi_exchange_begin(rk_transport *t, const void *send, size_t send_bytes, int to,
                                    void *recv, size_t recv_bytes, int from, rk_error *err) {
    mpi_transport *mt = (mpi_transport *)t;
    if (mt->broken) return broken_error(mt, err);
    if (mt->in_flight)
        return rk_error_set(err, RK_ERR_INTERNAL,
                            "ring: rank %d began an exchange with one already in flight", t->rank);
    mt->n_xparts = 0;
    rk_status st = post_message(mt, mt->xparts, &mt->n_xparts, 1, recv, recv_bytes, from,
                                TAG_EXCHANGE, "an exchange", err);
    if (st == RK_OK)
        st = post_message(mt, mt->xparts, &mt->n_xparts, 0, (void *)send, send_bytes, to,
                          TAG_EXCHANGE, "an exchange", err);
    if (st != RK_OK) {
        cancel_parts(mt->xparts, mt->n_xparts);
        mt->n_xparts = 0;
        return st;
    }
    mt->in_flight = 1;
    return RK_OK;
}

static rk_status mpi_exchange_end(rk_transport *t, rk_error *err) {
    mpi_transport *mt = (mpi_transport *)t;
    if (!mt->in_flight)
        return rk_error_set(err, RK_ERR_INTERNAL,
                            "ring: rank %d ended an exchange it had not begun", t->rank);
    mt->in_flight = 0;
    if (mt->broken) {
        cancel_parts(mt->xparts, mt->n_xparts);
        return broken_error(mt, err);
    }
    return wait_parts(mt, mt->xparts, mt->n_xparts, "an exchange", err);
}

static rk_status mpi_allgather(rk_transport *t, const void *mine, size_t bytes, void *all,
                               rk_error *err) {
    mpi_transport *mt = (mpi_transport *)t;
    if (mt->broken) return broken_error(mt, err);
    char *own = (char *)all + (size_t)t->rank * bytes;
    if (bytes > 0 && own != mine) memmove(own, mine, bytes);
    int n = 0;
    rk_status st = RK_OK;
    for (int q = 0; q < t->size && st == RK_OK; q++)
        if (q != t->rank)
            st = post_message(mt, mt->cparts, &n, 1, (char *)all + (size_t)q * bytes, bytes, q,
                              TAG_ALLGATHER, "allgather", err);
    for (int q = 0; q < t->size && st == RK_OK; q++)
        if (q != t->rank)
            st =
                post_message(mt, mt->cparts, &n, 0, own, bytes, q, TAG_ALLGATHER, "allgather", err);
    if (st != RK_OK) {
        cancel_parts(mt->cparts, n);
        return st;
    }
    return wait_parts(mt, mt->cparts, n, "allgather", err);
}

static rk_status mpi_broadcast(rk_transport *t, void *buf, size_t bytes, int root, rk_error *err) {
    mpi_transport *mt = (mpi_transport *)t;
    if (mt->broken) return broken_error(mt, err);
    int n = 0;
    rk_status st = RK_OK;
    if (t->rank != root) {
        st = post_message(mt, mt->cparts, &n, 1, buf, bytes, root, TAG_BROADCAST, "broadcast", err);
    } else {
        for (int q = 0; q < t->size && st == RK_OK; q++)
            if (q != root)
                st = post_message(mt, mt->cparts, &n, 0, buf, bytes, q, TAG_BROADCAST, "broadcast",
                                  err);
    }
    if (st != RK_OK) {
        cancel_parts(mt->cparts, n);
        return st;
    }
    return wait_parts(mt, mt->cparts, n, "broadcast", err);
}

/* Prints the message and ends the whole job (transport-mpi.h explains why). */
static void mpi_fail_job(rk_transport *t, const char *message) {
    mpi_transport *mt = (mpi_transport *)t;
    fprintf(stderr, "ringkv: rank %d: %s\n", t->rank, message);
    fflush(stderr);
    MPI_Abort(mt->comm, 1);
    /* not reached with a working MPI; if it is, the transport is at least unusable */
    char msg[RK_ERROR_MSG_MAX];
    snprintf(msg, sizeof msg, "rank %d: %s", t->rank, message);
    mark_broken(mt, RK_ERR_IO, msg, NULL);
}

static void mpi_destroy(rk_transport *t) {
    mpi_transport *mt = (mpi_transport *)t;
    if (mt->in_flight) cancel_parts(mt->xparts, mt->n_xparts);
    if (mt->big != MPI_DATATYPE_NULL) MPI_Type_free(&mt->big);
    if (mt->comm != MPI_COMM_NULL) MPI_Comm_free(&mt->comm);
    if (mt->we_initialised) MPI_Finalize();
    free(mt->cparts);
    free(mt);
}

static const rk_transport_ops mpi_ops = {
    .exchange_begin = mpi_exchange_begin,
    .exchange_end = mpi_exchange_end,
    .allgather = mpi_allgather,
    .broadcast = mpi_broadcast,
    .fail = mpi_fail_job,
    .destroy = mpi_destroy,
};

/* ---- creation ---- */

/* Starts MPI if needed; *we_initialised says whether this call did. */
static rk_status mpi_start(int *argc, char ***argv, int *we_initialised, rk_error *err) {
    int initialised = 0, finalised = 0;
    MPI_Initialized(&initialised);
    MPI_Finalized(&finalised);
    if (finalised)
        return rk_error_set(err, RK_ERR_IO,
                            "mpi: MPI was already finalised (one MPI transport per process)");
    *we_initialised = 0;
    if (initialised) return RK_OK;
    int provided = 0;
    int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) {
        char text[256];
        mpi_error_text(rc, text, sizeof text);
        return rk_error_set(err, RK_ERR_IO, "mpi: MPI_Init_thread failed: %s", text);
    }
    *we_initialised = 1;
    if (provided < MPI_THREAD_FUNNELED) {
        MPI_Finalize();
        return rk_error_set(err, RK_ERR_UNSUPPORTED,
                            "mpi: this MPI provides thread level %d, ringkv needs FUNNELED",
                            provided);
    }
    return RK_OK;
}

rk_status rk_transport_mpi_create(int *argc, char ***argv, rk_transport **out, rk_error *err) {
    int we_initialised = 0;
    rk_status st = mpi_start(argc, argv, &we_initialised, err);
    if (st != RK_OK) return st;
    mpi_transport *mt = calloc(1, sizeof *mt);
    if (!mt) {
        if (we_initialised) MPI_Finalize();
        return rk_error_set(err, RK_ERR_NO_MEMORY, "mpi: out of memory for the transport");
    }
    mt->we_initialised = we_initialised;
    mt->comm = MPI_COMM_NULL;
    mt->big = MPI_DATATYPE_NULL;
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &mt->comm);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_set_errhandler(mt->comm, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(mt->comm, &mt->base.rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(mt->comm, &mt->base.size);
    if (rc == MPI_SUCCESS) rc = MPI_Type_contiguous((int)BIG_UNIT, MPI_BYTE, &mt->big);
    if (rc == MPI_SUCCESS) rc = MPI_Type_commit(&mt->big);
    if (rc != MPI_SUCCESS) {
        char text[256];
        mpi_error_text(rc, text, sizeof text);
        mpi_destroy(&mt->base);
        return rk_error_set(err, RK_ERR_IO, "mpi: setting up the communicator failed: %s", text);
    }
    mt->cparts = calloc((size_t)mt->base.size * 4, sizeof *mt->cparts);
    if (!mt->cparts) {
        int size = mt->base.size;
        mpi_destroy(&mt->base);
        return rk_error_set(err, RK_ERR_NO_MEMORY, "mpi: out of memory for a %d-rank transport",
                            size);
    }
    mt->base.ops = &mpi_ops;
    mt->base.timeout_ms = RK_TRANSPORT_TIMEOUT_MS;
    mt->base.name = "mpi";
    *out = &mt->base;
    return RK_OK;
}

int rk_transport_mpi_launched(void) {
    static const char *const vars[] = {
        "OMPI_COMM_WORLD_SIZE", "PMIX_RANK",          "PMI_RANK", "PMI_SIZE",
        "MPI_LOCALNRANKS",      "MV2_COMM_WORLD_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}
