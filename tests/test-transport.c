/*
 * test-transport.c — the threads transport (src/dist/transport-threads.c) and the common
 * wrappers (src/dist/transport.c), with 1 to 4 ranks each on its own pthread: ring exchanges of
 * uneven sizes (zero-byte sides included) with content checks, allgather (in place too),
 * broadcast from every root, agree, the statistics, and the failure paths: fail() while others
 * wait, a rank that never arrives (timeout), a rank that left, size and collective mismatches,
 * misuse of the API.
 *
 * Checks made on rank threads are counted per rank (test-util's counter is not thread-safe) and
 * added up on the main thread.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/error.h"
#include "dist/transport.h"
#include "test-transport-pattern.h"
#include "test-util.h"

#define MAX_RANKS 4
#define ROUNDS 60

typedef struct rank_ctx rank_ctx;
typedef void (*rank_fn)(rank_ctx *c);

struct rank_ctx {
    rk_transport *t;
    int rank, n;
    int failures;
    rk_status status; /* the scenario's last interesting status */
    rk_error err;     /* and its message */
    double seconds;   /* how long the interesting call took */
    uint64_t expect_sent, expect_received, expect_messages;
};

#define RCHECK(c, cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: rank %d: CHECK failed: %s\n", __FILE__, __LINE__, (c)->rank,   \
                    #cond);                                                                        \
            (c)->failures++;                                                                       \
        }                                                                                          \
    } while (0)

typedef struct rank_thread {
    rank_ctx ctx;
    rank_fn fn;
} rank_thread;

static void *rank_main(void *arg) {
    rank_thread *th = arg;
    th->fn(&th->ctx);
    return NULL;
}

/* Creates an n-rank threads transport with the given timeout, runs fn on every rank (rank
 * `skip` excepted when >= 0: it never calls anything until the others are done), adds the
 * per-rank failures to the test's and leaves the contexts in out (transports freed). */
static void run_ranks(int n, int timeout_ms, int skip, rank_fn fn, rank_thread *out) {
    rk_transport *ts[MAX_RANKS];
    rk_error err;
    CHECK(rk_transport_threads_create(n, ts, &err) == RK_OK);
    pthread_t th[MAX_RANKS];
    for (int r = 0; r < n; r++) {
        memset(&out[r], 0, sizeof out[r]);
        out[r].ctx.t = ts[r];
        out[r].ctx.rank = r;
        out[r].ctx.n = n;
        out[r].fn = fn;
        if (timeout_ms) ts[r]->timeout_ms = timeout_ms;
        CHECK(ts[r]->rank == r && ts[r]->size == n && strcmp(ts[r]->name, "threads") == 0);
    }
    for (int r = 0; r < n; r++)
        if (r != skip) CHECK(pthread_create(&th[r], NULL, rank_main, &out[r]) == 0);
    for (int r = 0; r < n; r++)
        if (r != skip) pthread_join(th[r], NULL);
    for (int r = 0; r < n; r++) {
        rk_test_failures += out[r].ctx.failures;
        rk_transport_free(ts[r]);
    }
}

/* ---- ring exchanges ---- */

/* ROUNDS ring steps, alternately forward (to r+1) and backward (to r-1), with a different
 * buffer pair each round, checking every received byte. */
static void scenario_ring(rank_ctx *c) {
    int n = c->n, r = c->rank;
    uint8_t *send = malloc(80000), *recv = malloc(80000);
    for (int k = 0; k < ROUNDS; k++) {
        int fwd = k % 2 == 0;
        int to = fwd ? (r + 1) % n : (r + n - 1) % n;
        int from = fwd ? (r + n - 1) % n : (r + 1) % n;
        size_t sb = ring_bytes(r, k), rb = ring_bytes(from, k);
        for (size_t i = 0; i < sb; i++)
            send[i] = ring_byte(r, k, i);
        memset(recv, 0xee, rb);
        rk_status st = rk_transport_exchange_begin(c->t, send, sb, to, recv, rb, from, &c->err);
        RCHECK(c, st == RK_OK);
        if (st == RK_OK) st = rk_transport_exchange_end(c->t, &c->err);
        RCHECK(c, st == RK_OK);
        if (st != RK_OK) {
            fprintf(stderr, "rank %d round %d: %s\n", r, k, c->err.msg);
            break;
        }
        size_t bad = 0;
        for (size_t i = 0; i < rb; i++)
            bad += recv[i] != ring_byte(from, k, i);
        RCHECK(c, bad == 0);
        c->expect_sent += sb;
        c->expect_received += rb;
        c->expect_messages++;
    }
    /* the statistics are this rank's own */
    RCHECK(c, c->t->stats.bytes_sent == c->expect_sent);
    RCHECK(c, c->t->stats.bytes_received == c->expect_received);
    RCHECK(c, c->t->stats.messages == c->expect_messages);
    RCHECK(c, c->t->stats.wait_seconds >= 0.0);
    free(send);
    free(recv);
}

/* ---- collectives ---- */

static void scenario_collectives(rank_ctx *c) {
    int n = c->n, r = c->rank;
    uint64_t sent0 = c->t->stats.bytes_sent, recv0 = c->t->stats.bytes_received;
    uint64_t msgs0 = c->t->stats.messages;
    size_t sizes[] = {24, 0, 1, 4096, 3};
    uint8_t mine[4096], all[MAX_RANKS * 4096];
    for (int k = 0; k < (int)(sizeof sizes / sizeof sizes[0]); k++) {
        size_t b = sizes[k];
        for (size_t i = 0; i < b; i++)
            mine[i] = (uint8_t)(r * 91 + k * 5 + i);
        memset(all, 0xee, sizeof all);
        RCHECK(c, rk_transport_allgather(c->t, mine, b, all, &c->err) == RK_OK);
        size_t bad = 0;
        for (int q = 0; q < n; q++)
            for (size_t i = 0; i < b; i++)
                bad += all[(size_t)q * b + i] != (uint8_t)(q * 91 + k * 5 + i);
        RCHECK(c, bad == 0);
        c->expect_sent += b * (size_t)(n - 1);
        c->expect_received += b * (size_t)(n - 1);
    }
    /* in place: the own record already sits in `all` */
    uint32_t rec[MAX_RANKS];
    memset(rec, 0, sizeof rec);
    rec[r] = 1000u + (uint32_t)r;
    RCHECK(c, rk_transport_allgather(c->t, &rec[r], sizeof rec[r], rec, &c->err) == RK_OK);
    for (int q = 0; q < n; q++)
        RCHECK(c, rec[q] == 1000u + (uint32_t)q);
    c->expect_sent += sizeof rec[0] * (size_t)(n - 1);
    c->expect_received += sizeof rec[0] * (size_t)(n - 1);
    /* broadcast from every root, a few sizes */
    size_t bsizes[] = {0, 1, 1000};
    for (int root = 0; root < n; root++)
        for (int k = 0; k < 3; k++) {
            uint8_t buf[1000];
            size_t b = bsizes[k];
            for (size_t i = 0; i < b; i++)
                buf[i] = r == root ? (uint8_t)(root * 17 + i + k) : 0xee;
            RCHECK(c, rk_transport_broadcast(c->t, buf, b, root, &c->err) == RK_OK);
            size_t bad = 0;
            for (size_t i = 0; i < b; i++)
                bad += buf[i] != (uint8_t)(root * 17 + i + k);
            RCHECK(c, bad == 0);
            if (r == root)
                c->expect_sent += b * (size_t)(n - 1);
            else
                c->expect_received += b;
        }
    uint64_t msgs = 5 + 1 + (uint64_t)n * 3;
    RCHECK(c, c->t->stats.bytes_sent - sent0 == c->expect_sent);
    RCHECK(c, c->t->stats.bytes_received - recv0 == c->expect_received);
    RCHECK(c, c->t->stats.messages - msgs0 == msgs);
}

/* ---- agree ---- */

static void scenario_agree(rank_ctx *c) {
    int r = c->rank;
    /* all OK: RK_OK and a clear message everywhere */
    rk_error err;
    snprintf(err.msg, sizeof err.msg, "stale");
    RCHECK(c, rk_transport_agree(c->t, RK_OK, &err) == RK_OK);
    RCHECK(c, err.msg[0] == '\0');
    /* ranks 1 and 2 fail: rank 1's status and message win everywhere */
    rk_status local = RK_OK;
    if (r == 1) local = rk_error_set(&err, RK_ERR_FORMAT, "bad header in shard %d", 7);
    if (r == 2) local = rk_error_set(&err, RK_ERR_NO_MEMORY, "out of memory for the KV");
    rk_status st = rk_transport_agree(c->t, local, &err);
    if (c->n == 1) {
        RCHECK(c, st == RK_OK);
    } else {
        RCHECK(c, st == RK_ERR_FORMAT);
        RCHECK(c, err.code == RK_ERR_FORMAT);
        RCHECK(c, strcmp(err.msg, "rank 1: bad header in shard 7") == 0);
    }
    /* only the last rank fails, without a message buffer */
    local = r == c->n - 1 && c->n > 1 ? RK_ERR_IO : RK_OK;
    st = rk_transport_agree(c->t, local, r == c->n - 1 ? NULL : &err);
    if (c->n > 1 && r != c->n - 1) {
        char want[64];
        snprintf(want, sizeof want, "rank %d: %s", c->n - 1, rk_status_name(RK_ERR_IO));
        RCHECK(c, st == RK_ERR_IO && strcmp(err.msg, want) == 0);
    }
    /* and the ring still works afterwards */
    RCHECK(c, rk_transport_agree(c->t, RK_OK, &err) == RK_OK);
}

/* ---- failures ---- */

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The last rank fails after 100 ms while rank 0 waits in an exchange receiving from it and the
 * others wait in an allgather; everyone returns RK_ERR_IO with the message. */
static void scenario_fail(rank_ctx *c) {
    int n = c->n, r = c->rank;
    uint8_t buf[16] = {0}, all[MAX_RANKS * 16];
    double t0 = rk_now_seconds();
    if (r == n - 1) {
        sleep_ms(100);
        rk_transport_fail(c->t, "disk on fire");
        /* its own later operations fail too */
        c->status = rk_transport_allgather(c->t, buf, sizeof buf, all, &c->err);
    } else if (r == 0) {
        c->status =
            rk_transport_exchange_begin(c->t, buf, 0, n - 1, buf, sizeof buf, n - 1, &c->err);
        RCHECK(c, c->status == RK_OK);
        c->status = rk_transport_exchange_end(c->t, &c->err);
    } else {
        c->status = rk_transport_allgather(c->t, buf, sizeof buf, all, &c->err);
    }
    c->seconds = rk_now_seconds() - t0;
    /* and every later call */
    rk_error later;
    RCHECK(c, rk_transport_broadcast(c->t, buf, sizeof buf, 0, &later) == RK_ERR_IO);
    RCHECK(c, strstr(later.msg, "disk on fire") != NULL);
}

/* Everyone but the skipped last rank calls an allgather with a 200 ms timeout. */
static void scenario_timeout(rank_ctx *c) {
    uint8_t buf[8] = {0}, all[MAX_RANKS * 8];
    double t0 = rk_now_seconds();
    c->status = rk_transport_allgather(c->t, buf, sizeof buf, all, &c->err);
    c->seconds = rk_now_seconds() - t0;
}

/* Rank 0 waits in an exchange for a message the skipped last rank never sends (the ranks in
 * between do nothing). */
static void scenario_timeout_exchange(rank_ctx *c) {
    uint8_t buf[8] = {0};
    int last = c->n - 1;
    if (c->rank != 0) return;
    double t0 = rk_now_seconds();
    c->status =
        rk_transport_exchange_begin(c->t, buf, sizeof buf, last, buf, sizeof buf, last, &c->err);
    if (c->status == RK_OK) c->status = rk_transport_exchange_end(c->t, &c->err);
    c->seconds = rk_now_seconds() - t0;
}

/* Two ranks: rank 0 sends 10 bytes that rank 1 expects as 12. */
static void scenario_mismatch(rank_ctx *c) {
    uint8_t send[16] = {0}, recv[16];
    size_t sb = c->rank == 0 ? 10 : 5, rb = c->rank == 0 ? 5 : 12;
    c->status =
        rk_transport_exchange_begin(c->t, send, sb, 1 - c->rank, recv, rb, 1 - c->rank, &c->err);
    if (c->status == RK_OK) c->status = rk_transport_exchange_end(c->t, &c->err);
}

/* Allgather of 8 bytes against one of 16 bytes, or a broadcast against an allgather. */
static void scenario_coll_mismatch(rank_ctx *c) {
    uint8_t buf[16] = {0}, all[MAX_RANKS * 16];
    if (c->rank == 0)
        c->status = rk_transport_allgather(c->t, buf, 8, all, &c->err);
    else if (c->rank == 1)
        c->status = rk_transport_allgather(c->t, buf, 16, all, &c->err);
    else
        c->status = rk_transport_broadcast(c->t, buf, 8, 0, &c->err);
}

static void test_failures(int n) {
    rank_thread th[MAX_RANKS];
    char want[128];
    /* fail() while the others are blocked */
    run_ranks(n, 0, -1, scenario_fail, th);
    snprintf(want, sizeof want, "rank %d: disk on fire", n - 1);
    for (int r = 0; r < n; r++) {
        CHECK_MSG(th[r].ctx.status == RK_ERR_IO && strcmp(th[r].ctx.err.msg, want) == 0,
                  "n=%d rank %d: %s", n, r, th[r].ctx.err.msg);
        CHECK_MSG(th[r].ctx.seconds < 5.0, "n=%d rank %d took %.2f s", n, r, th[r].ctx.seconds);
    }
    /* a rank that never arrives: the others time out naming it, within about a second */
    rank_fn timeouts[2] = {scenario_timeout, scenario_timeout_exchange};
    for (int k = 0; k < 2; k++) {
        run_ranks(n, 200, n - 1, timeouts[k], th);
        snprintf(want, sizeof want, "waited 200 ms for rank %d (threads transport)", n - 1);
        for (int r = 0; r < (k == 0 ? n - 1 : 1); r++) {
            CHECK_MSG(th[r].ctx.status == RK_ERR_IO && strstr(th[r].ctx.err.msg, want),
                      "n=%d rank %d: %s", n, r, th[r].ctx.err.msg);
            CHECK_MSG(th[r].ctx.seconds >= 0.15 && th[r].ctx.seconds < 1.5,
                      "n=%d rank %d took %.2f s", n, r, th[r].ctx.seconds);
        }
    }
    if (n >= 3) {
        run_ranks(n, 5000, -1, scenario_coll_mismatch, th);
        int internal = 0;
        for (int r = 0; r < n; r++) {
            CHECK_MSG(th[r].ctx.status != RK_OK &&
                          strstr(th[r].ctx.err.msg, "collectives out of step"),
                      "n=%d rank %d: %s", n, r, th[r].ctx.err.msg);
            internal += th[r].ctx.status == RK_ERR_INTERNAL;
        }
        CHECK(internal >= 1);
    }
}

static void test_mismatch(void) {
    rank_thread th[2];
    run_ranks(2, 5000, -1, scenario_mismatch, th);
    CHECK_MSG(th[1].ctx.status == RK_ERR_INTERNAL &&
                  strstr(th[1].ctx.err.msg, "rank 1 expected 12 bytes from rank 0, which sent 10"),
              "%s", th[1].ctx.err.msg);
    CHECK_MSG(th[0].ctx.status == RK_ERR_INTERNAL &&
                  strstr(th[0].ctx.err.msg, "rank 0 sent 10 bytes to rank 1, which expected 12"),
              "%s", th[0].ctx.err.msg);
}

/* API misuse and lifetime, on the main thread. */
static void test_misuse(void) {
    rk_transport *ts[3];
    rk_error err;
    uint8_t buf[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8] = {0};
    CHECK(rk_transport_threads_create(0, ts, &err) == RK_ERR_INVALID_ARG);
    rk_transport_free(NULL);

    CHECK(rk_transport_threads_create(1, ts, &err) == RK_OK);
    CHECK(rk_transport_exchange_end(ts[0], &err) == RK_ERR_INTERNAL);
    CHECK(rk_transport_exchange_begin(ts[0], buf, 8, 1, out, 8, 0, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_transport_exchange_begin(ts[0], NULL, 8, 0, out, 8, 0, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_transport_exchange_begin(ts[0], buf, 8, 0, out, 8, 0, &err) == RK_OK);
    CHECK(rk_transport_exchange_begin(ts[0], buf, 8, 0, out, 8, 0, &err) == RK_ERR_INTERNAL);
    CHECK(rk_transport_exchange_end(ts[0], &err) == RK_OK);
    CHECK(memcmp(buf, out, 8) == 0);
    CHECK(rk_transport_broadcast(ts[0], buf, 8, 1, &err) == RK_ERR_INVALID_ARG);
    rk_transport_free(ts[0]);

    CHECK(rk_transport_threads_create(3, ts, &err) == RK_OK);
    CHECK(rk_transport_exchange_begin(ts[1], buf, 8, 1, out, 8, 0, &err) == RK_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "rank 1 exchanges with itself") != NULL);
    CHECK(rk_transport_exchange_begin(ts[1], buf, 8, 3, out, 8, 0, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_transport_allgather(ts[1], buf, SIZE_MAX / 2, out, &err) == RK_ERR_INVALID_ARG);
    /* a rank that left: waiting for it fails at once (rank 2 is not there either, rank 1 is
     * named as the lowest missing) */
    rk_transport_free(ts[1]);
    double t0 = rk_now_seconds();
    CHECK(rk_transport_allgather(ts[0], buf, 8, out, &err) == RK_ERR_IO);
    CHECK_MSG(strstr(err.msg, "rank 1 left the ring") != NULL, "%s", err.msg);
    CHECK(rk_now_seconds() - t0 < 1.0);
    /* and the ring stays broken */
    CHECK(rk_transport_exchange_begin(ts[2], buf, 8, 0, out, 8, 0, &err) == RK_ERR_IO);
    CHECK_MSG(strstr(err.msg, "rank 1 left the ring") != NULL, "%s", err.msg);
    rk_transport_free(ts[2]);
    rk_transport_free(ts[0]);
    /* a rank freed with an exchange in flight breaks the ring for the others */
    CHECK(rk_transport_threads_create(2, ts, &err) == RK_OK);
    CHECK(rk_transport_exchange_begin(ts[1], buf, 8, 0, out, 8, 0, &err) == RK_OK);
    rk_transport_free(ts[1]);
    CHECK(rk_transport_broadcast(ts[0], buf, 8, 0, &err) == RK_ERR_IO);
    CHECK_MSG(strstr(err.msg, "rank 1: freed its transport with an exchange in flight") != NULL,
              "%s", err.msg);
    rk_transport_free(ts[0]);
}

int main(void) {
    double t0 = rk_now_seconds();
    rank_thread th[MAX_RANKS];
    for (int n = 1; n <= MAX_RANKS; n++) {
        run_ranks(n, 0, -1, scenario_ring, th);
        run_ranks(n, 0, -1, scenario_collectives, th);
        run_ranks(n, 0, -1, scenario_agree, th);
        if (n >= 2) test_failures(n);
        printf("n=%d ranks: ok so far (%d failures)\n", n, rk_test_failures);
    }
    test_mismatch();
    test_misuse();
    printf("test-transport: %.2f s\n", rk_now_seconds() - t0);
    return rk_test_finish("test-transport");
}
