/*
 * transport.c — the transport-independent part of transport.h: argument checks shared by every
 * implementation, the statistics (bytes, messages, time blocked), error agreement on top of
 * allgather, and freeing.
 *
 * Statistics count payload bytes as the caller sees them, not wire bytes (MPI may route an
 * allgather through other ranks): an exchange counts send_bytes sent and recv_bytes received
 * when it is begun, an allgather (size - 1) * bytes each way, a broadcast (size - 1) * bytes sent
 * on the root and bytes received elsewhere. `messages` and `wait_seconds` are counted when the
 * blocking part returns; wait_seconds includes failed waits (a timeout is time spent blocked).
 */
#include "dist/transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"

/* The record rk_transport_agree gathers from every rank (same layout on every rank: all ranks
 * run the same build). */
typedef struct agree_record {
    int32_t status;
    char msg[RK_ERROR_MSG_MAX - 32];
} agree_record;

#define AGREE_STACK_RANKS 8 /* records for up to this many ranks live on the stack */

static rk_status check_rank(const rk_transport *t, int r, const char *what, rk_error *err) {
    if (r < 0 || r >= t->size)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "ring: %s rank %d out of range (%d ranks)",
                            what, r, t->size);
    return RK_OK;
}

rk_status rk_transport_exchange_begin(rk_transport *t, const void *send, size_t send_bytes, int to,
                                      void *recv, size_t recv_bytes, int from, rk_error *err) {
    if (!t) return rk_error_set(err, RK_ERR_INVALID_ARG, "ring: exchange on a NULL transport");
    rk_status st = check_rank(t, to, "exchange destination", err);
    if (st == RK_OK) st = check_rank(t, from, "exchange source", err);
    if (st != RK_OK) return st;
    if (t->size > 1 && (to == t->rank || from == t->rank))
        return rk_error_set(err, RK_ERR_INVALID_ARG,
                            "ring: rank %d exchanges with itself (to %d, from %d) in a ring of %d",
                            t->rank, to, from, t->size);
    if ((send_bytes > 0 && !send) || (recv_bytes > 0 && !recv))
        return rk_error_set(err, RK_ERR_INVALID_ARG, "ring: rank %d exchange with a NULL buffer",
                            t->rank);
    st = t->ops->exchange_begin(t, send, send_bytes, to, recv, recv_bytes, from, err);
    if (st == RK_OK) {
        t->stats.bytes_sent += send_bytes;
        t->stats.bytes_received += recv_bytes;
    }
    return st;
}

rk_status rk_transport_exchange_end(rk_transport *t, rk_error *err) {
    if (!t) return rk_error_set(err, RK_ERR_INVALID_ARG, "ring: exchange on a NULL transport");
    double t0 = rk_now_seconds();
    rk_status st = t->ops->exchange_end(t, err);
    t->stats.wait_seconds += rk_now_seconds() - t0;
    if (st == RK_OK) t->stats.messages++;
    return st;
}

rk_status rk_transport_allgather(rk_transport *t, const void *mine, size_t bytes, void *all,
                                 rk_error *err) {
    if (!t) return rk_error_set(err, RK_ERR_INVALID_ARG, "ring: allgather on a NULL transport");
    if (bytes > SIZE_MAX / (size_t)t->size)
        return rk_error_set(err, RK_ERR_INVALID_ARG,
                            "ring: allgather of %zu bytes x %d ranks overflows", bytes, t->size);
    if (bytes > 0 && (!mine || !all))
        return rk_error_set(err, RK_ERR_INVALID_ARG, "ring: rank %d allgather with a NULL buffer",
                            t->rank);
    double t0 = rk_now_seconds();
    rk_status st = t->ops->allgather(t, mine, bytes, all, err);
    t->stats.wait_seconds += rk_now_seconds() - t0;
    if (st == RK_OK) {
        t->stats.bytes_sent += (uint64_t)bytes * (uint64_t)(t->size - 1);
        t->stats.bytes_received += (uint64_t)bytes * (uint64_t)(t->size - 1);
        t->stats.messages++;
    }
    return st;
}

rk_status rk_transport_broadcast(rk_transport *t, void *buf, size_t bytes, int root,
                                 rk_error *err) {
    if (!t) return rk_error_set(err, RK_ERR_INVALID_ARG, "ring: broadcast on a NULL transport");
    rk_status st = check_rank(t, root, "broadcast root", err);
    if (st != RK_OK) return st;
    if (bytes > 0 && !buf)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "ring: rank %d broadcast with a NULL buffer",
                            t->rank);
    double t0 = rk_now_seconds();
    st = t->ops->broadcast(t, buf, bytes, root, err);
    t->stats.wait_seconds += rk_now_seconds() - t0;
    if (st == RK_OK) {
        if (t->rank == root)
            t->stats.bytes_sent += (uint64_t)bytes * (uint64_t)(t->size - 1);
        else
            t->stats.bytes_received += bytes;
        t->stats.messages++;
    }
    return st;
}

/* A status read from another rank, kept inside the enum (a corrupt record is our bug). */
static rk_status status_from_wire(int32_t s) {
    return s >= RK_ERR_INVALID_ARG && s <= RK_ERR_INTERNAL ? (rk_status)s : RK_ERR_INTERNAL;
}

rk_status rk_transport_agree(rk_transport *t, rk_status local, rk_error *err) {
    if (!t) return rk_error_set(err, RK_ERR_INVALID_ARG, "ring: agree on a NULL transport");
    agree_record mine;
    memset(&mine, 0, sizeof mine);
    mine.status = (int32_t)local;
    if (local != RK_OK) {
        const char *msg = err && err->msg[0] ? err->msg : rk_status_name(local);
        memcpy(mine.msg, msg, strnlen(msg, sizeof mine.msg - 1)); /* cut to fit, still terminated */
    }
    agree_record stack_records[AGREE_STACK_RANKS];
    agree_record *all = stack_records;
    if (t->size > AGREE_STACK_RANKS) {
        all = calloc((size_t)t->size, sizeof *all);
        if (!all) {
            /* Without the gather the other ranks would wait for us: end the ring instead. */
            rk_transport_fail(t, "out of memory for error agreement");
            return rk_error_set(err, RK_ERR_NO_MEMORY,
                                "ring: rank %d: out of memory for error agreement (%d ranks)",
                                t->rank, t->size);
        }
    }
    rk_status st = rk_transport_allgather(t, &mine, sizeof mine, all, err);
    if (st != RK_OK && local != RK_OK) {
        /* The ring broke too: keep this rank's own reason first, it is usually the cause. */
        char ring_msg[RK_ERROR_MSG_MAX];
        snprintf(ring_msg, sizeof ring_msg, "%s", err ? err->msg : "");
        st = rk_error_set(err, local, "rank %d: %s (and then: %s)", t->rank, mine.msg, ring_msg);
    } else if (st == RK_OK) {
        for (int r = 0; r < t->size; r++) {
            if (all[r].status == RK_OK) continue;
            all[r].msg[sizeof all[r].msg - 1] = '\0';
            st = rk_error_set(err, status_from_wire(all[r].status), "rank %d: %s", r, all[r].msg);
            break;
        }
        if (st == RK_OK) rk_error_clear(err);
    }
    if (all != stack_records) free(all);
    return st;
}

void rk_transport_fail(rk_transport *t, const char *message) {
    if (t) t->ops->fail(t, message ? message : "failed");
}

void rk_transport_free(rk_transport *t) {
    if (t) t->ops->destroy(t);
}
