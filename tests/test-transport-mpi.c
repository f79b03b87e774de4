/*
 * test-transport-mpi.c — the MPI transport (src/dist-mpi) under mpirun, registered by
 * tests/dist.cmake in several runs of this one binary:
 *
 *   (no flag)          ring exchanges of uneven sizes (zero-byte sides included) with content
 *                      checks, allgather (in place too), broadcast from every root, agree, the
 *                      statistics, and last a size mismatch between ranks 0 and 1
 *   --early-exit       rank 1 frees its transport (MPI_Finalize) and returns before an allgather;
 *                      the others, with timeout_ms 2000, must report an error naming rank 1
 *   --fail             rank 1 calls rk_transport_fail while the others wait (timeout 20 s): the
 *                      job must end, non-zero, with rank 1's message on stderr
 *   --exit-hard        rank 1 _exit()s without MPI_Finalize while the others wait (timeout 20 s):
 *                      the job must end, non-zero
 *   --big              (manual, ~9 GB of memory with 2 ranks) an exchange of INT_MAX + 4097
 *                      bytes, which goes as 1 GiB units plus a remainder
 *
 * and, not under MPI, a driver for the runs that must end the job:
 *
 *   --expect-abort SECONDS NEEDLE COMMAND...   runs COMMAND, kills it after SECONDS; passes when
 *                      it ended by itself with a non-zero status and its output holds NEEDLE
 *                      ("" for any output)
 */
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/error.h"
#include "dist-mpi/transport-mpi.h"
#include "test-transport-pattern.h"
#include "test-util.h"

#define ROUNDS 40
#define MAX_BYTES 90000

static void test_ring(rk_transport *t) {
    int n = t->size, r = t->rank;
    uint8_t *send = malloc(MAX_BYTES), *recv = malloc(MAX_BYTES);
    uint64_t sent = 0, received = 0;
    for (int k = 0; k < ROUNDS; k++) {
        int fwd = k % 2 == 0;
        int to = fwd ? (r + 1) % n : (r + n - 1) % n;
        int from = fwd ? (r + n - 1) % n : (r + 1) % n;
        size_t sb = ring_bytes(r, k), rb = ring_bytes(from, k);
        for (size_t i = 0; i < sb; i++)
            send[i] = ring_byte(r, k, i);
        memset(recv, 0xee, rb);
        rk_error err;
        rk_status st = rk_transport_exchange_begin(t, send, sb, to, recv, rb, from, &err);
        if (st == RK_OK) st = rk_transport_exchange_end(t, &err);
        CHECK_MSG(st == RK_OK, "rank %d round %d: %s", r, k, err.msg);
        if (st != RK_OK) break;
        size_t bad = 0;
        for (size_t i = 0; i < rb; i++)
            bad += recv[i] != ring_byte(from, k, i);
        CHECK_MSG(bad == 0, "rank %d round %d: %zu bad bytes from rank %d", r, k, bad, from);
        sent += sb;
        received += rb;
    }
    CHECK(t->stats.bytes_sent == sent);
    CHECK(t->stats.bytes_received == received);
    CHECK(t->stats.messages == ROUNDS);
    free(send);
    free(recv);
}

static void test_collectives(rk_transport *t) {
    int n = t->size, r = t->rank;
    size_t sizes[] = {24, 0, 1, 4096, 3, 100000};
    uint8_t *mine = malloc(100000), *all = malloc((size_t)n * 100000);
    rk_error err;
    for (int k = 0; k < (int)(sizeof sizes / sizeof sizes[0]); k++) {
        size_t b = sizes[k];
        for (size_t i = 0; i < b; i++)
            mine[i] = (uint8_t)(r * 91 + k * 5 + i);
        memset(all, 0xee, (size_t)n * 100000);
        CHECK_MSG(rk_transport_allgather(t, mine, b, all, &err) == RK_OK, "%s", err.msg);
        size_t bad = 0;
        for (int q = 0; q < n; q++)
            for (size_t i = 0; i < b; i++)
                bad += all[(size_t)q * b + i] != (uint8_t)(q * 91 + k * 5 + i);
        CHECK_MSG(bad == 0, "allgather of %zu bytes: %zu bad", b, bad);
    }
    uint32_t rec[64] = {0};
    rec[r] = 1000u + (uint32_t)r;
    CHECK(n <= 64 && rk_transport_allgather(t, &rec[r], sizeof rec[r], rec, &err) == RK_OK);
    for (int q = 0; q < n; q++)
        CHECK(rec[q] == 1000u + (uint32_t)q);
    size_t bsizes[] = {0, 1, 1000, 70000};
    for (int root = 0; root < n; root++)
        for (int k = 0; k < 4; k++) {
            size_t b = bsizes[k];
            for (size_t i = 0; i < b; i++)
                mine[i] = r == root ? (uint8_t)(root * 17 + i + k) : 0xee;
            CHECK_MSG(rk_transport_broadcast(t, mine, b, root, &err) == RK_OK, "%s", err.msg);
            size_t bad = 0;
            for (size_t i = 0; i < b; i++)
                bad += mine[i] != (uint8_t)(root * 17 + i + k);
            CHECK_MSG(bad == 0, "broadcast of %zu bytes from %d: %zu bad", b, root, bad);
        }
    free(mine);
    free(all);
}

static void test_agree(rk_transport *t) {
    int r = t->rank, n = t->size;
    rk_error err;
    snprintf(err.msg, sizeof err.msg, "stale");
    CHECK(rk_transport_agree(t, RK_OK, &err) == RK_OK && err.msg[0] == '\0');
    rk_status local = RK_OK;
    if (r == 1) local = rk_error_set(&err, RK_ERR_FORMAT, "bad header in shard %d", 7);
    if (r == 2) local = rk_error_set(&err, RK_ERR_NO_MEMORY, "out of memory for the KV");
    rk_status st = rk_transport_agree(t, local, &err);
    if (n == 1) {
        CHECK(st == RK_OK);
    } else {
        CHECK_MSG(st == RK_ERR_FORMAT && strcmp(err.msg, "rank 1: bad header in shard 7") == 0,
                  "%s", err.msg);
    }
    CHECK(rk_transport_agree(t, RK_OK, &err) == RK_OK);
}

/* Rank 0 sends 10 bytes that rank 1 expects as 12; rank 1's transport is broken afterwards. */
static void test_mismatch(rk_transport *t) {
    if (t->size < 2 || t->rank > 1) return;
    uint8_t send[16] = {0}, recv[16];
    size_t sb = t->rank == 0 ? 10 : 5, rb = t->rank == 0 ? 5 : 12;
    rk_error err;
    t->timeout_ms = 10000;
    rk_status st =
        rk_transport_exchange_begin(t, send, sb, 1 - t->rank, recv, rb, 1 - t->rank, &err);
    if (st == RK_OK) st = rk_transport_exchange_end(t, &err);
    if (t->rank == 1) {
        CHECK_MSG(st == RK_ERR_INTERNAL &&
                      strstr(err.msg, "rank 1 expected 12 bytes from rank 0 in an exchange"),
                  "%s", err.msg);
        CHECK(rk_transport_broadcast(t, recv, 1, 0, &err) == RK_ERR_IO);
    }
}

/* An exchange of INT_MAX + 4097 bytes between ranks 0 and 1 (the split path). */
static void test_big(rk_transport *t) {
    if (t->size != 2) return;
    size_t bytes = (size_t)INT32_MAX + 4097;
    uint8_t *send = malloc(bytes), *recv = malloc(bytes);
    CHECK(send && recv);
    if (!send || !recv) return;
    for (size_t i = 0; i < bytes; i += 4093)
        send[i] = (uint8_t)(t->rank + i);
    send[bytes - 1] = (uint8_t)(t->rank + 7);
    rk_error err;
    rk_status st =
        rk_transport_exchange_begin(t, send, bytes, 1 - t->rank, recv, bytes, 1 - t->rank, &err);
    if (st == RK_OK) st = rk_transport_exchange_end(t, &err);
    CHECK_MSG(st == RK_OK, "%s", err.msg);
    size_t bad = 0;
    for (size_t i = 0; i < bytes; i += 4093)
        bad += recv[i] != (uint8_t)(1 - t->rank + i);
    CHECK(bad == 0 && recv[bytes - 1] == (uint8_t)(1 - t->rank + 7));
    free(send);
    free(recv);
}

/* The ranks but 1 wait in an allgather that rank 1 never joins (it does `rank1` instead). */
static int run_missing_rank(rk_transport *t, const char *mode) {
    uint8_t buf[8] = {0}, all[8 * 64];
    if (t->size < 2 || t->size > 64) {
        fprintf(stderr, "%s needs 2 to 64 ranks\n", mode);
        return 1;
    }
    if (t->rank == 1) {
        if (strcmp(mode, "--early-exit") == 0) {
            rk_transport_free(t);
            return 0;
        }
        if (strcmp(mode, "--exit-hard") == 0) _exit(0); /* no MPI_Finalize, and "success" */
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
        rk_transport_fail(t, "injected failure");
        fprintf(stderr, "rank 1: rk_transport_fail returned\n");
        return 1;
    }
    t->timeout_ms = strcmp(mode, "--early-exit") == 0 ? 2000 : 20000;
    rk_error err;
    double t0 = rk_now_seconds();
    rk_status st = rk_transport_allgather(t, buf, sizeof buf, all, &err);
    double s = rk_now_seconds() - t0;
    printf("rank %d: %s after %.2f s: %s\n", t->rank, rk_status_name(st), s, err.msg);
    CHECK(st == RK_ERR_IO);
    CHECK_MSG(strstr(err.msg, "waited 2000 ms for rank 1 in allgather (mpi transport)") != NULL,
              "%s", err.msg);
    CHECK(s < 10.0);
    rk_transport_free(t);
    return rk_test_finish("test-transport-mpi --early-exit");
}

/* ---- the driver for runs that must end the job ---- */

static int expect_abort(int seconds, const char *needle, char **cmd) {
    int fds[2];
    if (pipe(fds) != 0) return 1;
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execvp(cmd[0], cmd);
        _exit(127);
    }
    close(fds[1]);
    static char out[1 << 16];
    size_t len = 0;
    double end = rk_now_seconds() + seconds;
    int timed_out = 0;
    for (;;) {
        double left = end - rk_now_seconds();
        if (left <= 0) {
            timed_out = 1;
            kill(-pid, SIGKILL);
            break;
        }
        struct pollfd p = {fds[0], POLLIN, 0};
        if (poll(&p, 1, (int)(left * 1000) + 1) <= 0) continue;
        ssize_t got = read(fds[0], out + len, sizeof out - 1 - len);
        if (got <= 0) break; /* every writer closed: the job is over */
        len += (size_t)got;
        if (len == sizeof out - 1) len = 0; /* keep the tail */
    }
    out[len] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    fputs(out, stdout);
    printf("\nexpect-abort: %s after %.1f s, %s %d\n", timed_out ? "killed" : "ended",
           seconds - (end - rk_now_seconds()), WIFEXITED(status) ? "exit status" : "signal",
           WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    CHECK_MSG(!timed_out, "the job did not end within %d s", seconds);
    CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
    CHECK_MSG(strstr(out, needle) != NULL, "output lacks '%s'", needle);
    return rk_test_finish("test-transport-mpi --expect-abort");
}

int main(int argc, char **argv) {
    if (argc >= 5 && strcmp(argv[1], "--expect-abort") == 0)
        return expect_abort(atoi(argv[2]), argv[3], argv + 4);
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *mode = argc >= 2 ? argv[1] : "";
    rk_transport *t = NULL;
    rk_error err;
    if (rk_transport_mpi_create(&argc, &argv, &t, &err) != RK_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    CHECK(strcmp(t->name, "mpi") == 0 && t->rank >= 0 && t->rank < t->size);
    if (strcmp(mode, "--early-exit") == 0 || strcmp(mode, "--fail") == 0 ||
        strcmp(mode, "--exit-hard") == 0)
        return run_missing_rank(t, mode);
    double t0 = rk_now_seconds();
    if (strcmp(mode, "--big") == 0) {
        test_big(t);
    } else {
        test_ring(t);
        test_collectives(t);
        test_agree(t);
        test_mismatch(t);
    }
    printf("rank %d of %d: %.2f s, %llu bytes sent, %.3f s waiting\n", t->rank, t->size,
           rk_now_seconds() - t0, (unsigned long long)t->stats.bytes_sent, t->stats.wait_seconds);
    rk_transport_free(t);
    return rk_test_finish("test-transport-mpi");
}
