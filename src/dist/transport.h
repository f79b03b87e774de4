/*
 * transport.h — how the ranks of a ring talk (DESIGN.md, "Ring attention"). A small table of
 * operations with two implementations:
 *
 *   transport-threads.c  N ranks as threads of one process (tests, and single-machine runs
 *                        without MPI); always built, needs only pthreads.
 *   src/dist-mpi/        Open MPI, one rank per process / host; built when MPI is found and
 *                        linked into the `ringkv` tool only, so the library stays libc-only.
 *
 * The ring uses three kinds of communication:
 *   - one neighbour exchange in flight at a time: send a buffer to one rank while receiving a
 *     buffer from another (the KV block passed around the ring, overlapped with compute);
 *   - allgather of equal-sized records (attention partials at decode, error agreement);
 *   - broadcast from a root (tokens chosen by rank 0).
 *
 * Failure model. Every operation waits at most `timeout_ms` for its peers (<= 0: no limit); a
 * peer that does not answer in time (a dead or stuck rank) gives RK_ERR_IO naming the rank waited
 * for, and the transport is broken from then on. A rank that fails locally (out of memory, a bad
 * file) calls rk_transport_fail: with threads, every rank then gets RK_ERR_IO with "rank R:
 * <message>" from its current or next operation instead of hanging; with MPI the message goes to
 * the failing rank's stderr and the whole job is aborted (see transport-mpi.h). All
 * operations are collective in order: every rank calls the same sequence of allgather /
 * broadcast / agree, and exchanges pair up (rank r's exchange sending to r+1 matches rank r+1's
 * exchange receiving from r).
 *
 * Ownership: a transport belongs to its creator and is used by one thread at a time (the rank's
 * own thread). Buffers passed to an exchange stay borrowed until rk_transport_exchange_end.
 */
#ifndef RK_DIST_TRANSPORT_H
#define RK_DIST_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "ringkv.h"

typedef struct rk_transport rk_transport;

/* What one rank did on the wire (cumulative since creation). */
typedef struct rk_transport_stats {
    uint64_t bytes_sent;
    uint64_t bytes_received;
    uint64_t messages;          /* exchanges, allgathers and broadcasts completed */
    double wait_seconds;        /* time spent blocked in exchange_end / collectives */
} rk_transport_stats;

typedef struct rk_transport_ops {
    /* Starts sending send_bytes from `send` to rank `to` and receiving exactly recv_bytes into
     * `recv` from rank `from` (either side may be 0 bytes, and still pairs with the peer's
     * exchange, whose size must match exactly; to/from may equal the own rank only when size is
     * 1). Returns at once. Only one exchange may be in flight per transport. */
    rk_status (*exchange_begin)(rk_transport *t, const void *send, size_t send_bytes, int to, void *recv,
                                size_t recv_bytes, int from, rk_error *err);
    /* Waits until the exchange begun last has completed on this rank (its send buffer may be
     * reused and its receive buffer holds the data). */
    rk_status (*exchange_end)(rk_transport *t, rk_error *err);
    /* all[r * bytes ...] = rank r's `mine` (bytes each), on every rank. `mine` may be the
     * rank's own record inside `all` (in place). */
    rk_status (*allgather)(rk_transport *t, const void *mine, size_t bytes, void *all, rk_error *err);
    /* buf (bytes) of rank `root` copied to every rank's buf. */
    rk_status (*broadcast)(rk_transport *t, void *buf, size_t bytes, int root, rk_error *err);
    /* Tells every rank this rank has failed with `message` (best effort, never blocks for long). */
    void (*fail)(rk_transport *t, const char *message);
    void (*destroy)(rk_transport *t);
} rk_transport_ops;

/* The common part of every transport; implementations embed it first. */
struct rk_transport {
    const rk_transport_ops *ops;
    int rank, size;
    int timeout_ms;             /* longest wait for a peer; default RK_TRANSPORT_TIMEOUT_MS */
    const char *name;           /* "threads" or "mpi" (static) */
    rk_transport_stats stats;
};

#define RK_TRANSPORT_TIMEOUT_MS 120000

/* N ranks as threads of one process: fills the caller's array out[0 .. n_ranks-1], out[r] being
 * rank r's transport, to be used by one thread each. The transports belong to the caller (free
 * each with rk_transport_free; the shared state goes with the last one; a rank freed while others
 * still wait for it makes them fail at once). RK_ERR_INVALID_ARG for n_ranks < 1. */
rk_status rk_transport_threads_create(int n_ranks, rk_transport **out, rk_error *err);

/* Thin wrappers over the ops that keep the statistics. */
rk_status rk_transport_exchange_begin(rk_transport *t, const void *send, size_t send_bytes, int to, void *recv,
                                      size_t recv_bytes, int from, rk_error *err);
rk_status rk_transport_exchange_end(rk_transport *t, rk_error *err);
rk_status rk_transport_allgather(rk_transport *t, const void *mine, size_t bytes, void *all, rk_error *err);
rk_status rk_transport_broadcast(rk_transport *t, void *buf, size_t bytes, int root, rk_error *err);

/* Every rank learns whether any rank failed: `local` is this rank's status and *err its message
 * (when local != RK_OK). Returns RK_OK on every rank when all were OK; otherwise every rank
 * returns the status of the lowest failing rank with err = "rank R: <its message>". */
rk_status rk_transport_agree(rk_transport *t, rk_status local, rk_error *err);

void rk_transport_fail(rk_transport *t, const char *message);
void rk_transport_free(rk_transport *t);

#endif
