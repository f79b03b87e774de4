/*
 * test-kv-store.c — the cold (disk) tier of the KV cache and its checksum.
 *
 * CRC32C: the standard check value, and the SSE4.2 path against the table path (and a bitwise
 * reference) on random buffers of many lengths and alignments. The store: round trips of pages
 * written out of order in runs of many lengths, buffered and O_DIRECT; fault injection on the
 * files behind its back (a flipped payload byte, a flipped header byte, swapped records, a
 * stale record, truncation), a byte budget, a full disk (RLIMIT_FSIZE), a reader thread racing
 * a writer, bad arguments, and cleanup on close.
 *
 * Everything happens in a fresh directory under /tmp (and /dev/shm when there is one, where
 * O_DIRECT falls back to buffered I/O), removed at the end.
 *
 *     test-kv-store                 the tests
 *     test-kv-store --bench [DIR]   write and read 256 MiB, buffered and O_DIRECT, report MB/s
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/crc32c.h"
#include "kv/kv-store.h"
#include "kv/kv-uring.h"
#include "test-util.h"

/* ---- helpers ---- */

static uint64_t rng_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* The payload bytes of page `slot` of `file`, version `seed`. */
static void fill_payload(uint8_t *rec, size_t n, int64_t file, int64_t slot, uint64_t seed) {
    uint64_t s = 0x9E3779B97F4A7C15ull ^ ((uint64_t)file << 40) ^ ((uint64_t)slot << 8) ^ seed;
    s |= 1;
    for (size_t i = 0; i < n; i++)
        rec[RK_KV_STORE_HEADER_BYTES + i] = (uint8_t)(rng_next(&s) >> 56);
}

static int payload_ok(const uint8_t *rec, size_t n, int64_t file, int64_t slot, uint64_t seed) {
    uint64_t s = 0x9E3779B97F4A7C15ull ^ ((uint64_t)file << 40) ^ ((uint64_t)slot << 8) ^ seed;
    s |= 1;
    for (size_t i = 0; i < n; i++)
        if (rec[RK_KV_STORE_HEADER_BYTES + i] != (uint8_t)(rng_next(&s) >> 56)) return 0;
    return 1;
}

static uint8_t **alloc_records(int64_t n, size_t rb) {
    uint8_t **r = calloc((size_t)n, sizeof *r);
    for (int64_t i = 0; i < n; i++) {
        r[i] = aligned_alloc(RK_KV_STORE_ALIGN, (rb + RK_KV_STORE_ALIGN - 1) / RK_KV_STORE_ALIGN * RK_KV_STORE_ALIGN);
        memset(r[i], 0xA5, rb);
    }
    return r;
}

static void free_records(uint8_t **r, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        free(r[i]);
    free(r);
}

static rk_kv_store *open_store(const char *dir, int64_t n_files, int64_t slots, size_t payload,
                               uint64_t max_bytes, int direct) {
    rk_kv_store_config c = {dir, max_bytes, n_files, slots, payload, direct, NULL, 0};
    rk_kv_store *s = NULL;
    rk_error err = {0};
    rk_status st = rk_kv_store_open(&c, &s, &err);
    CHECK_MSG(st == RK_OK, "%s", err.msg);
    return s;
}

/* Closes the store and checks that its subdirectory is gone. */
static void close_store(rk_kv_store *s) {
    if (!s) return;
    char path[4096];
    snprintf(path, sizeof path, "%s", rk_kv_store_path(s));
    rk_kv_store_close(s);
    struct stat sb;
    CHECK_MSG(stat(path, &sb) != 0 && errno == ENOENT, "%s still exists after close", path);
}

static int msg_has(const rk_error *err, const char *a, const char *b) {
    return strstr(err->msg, a) && (!b || strstr(err->msg, b));
}

/* Opens layer `file`'s file of store s behind its back (buffered). The store unlinked it, so
 * it is found among this process's open descriptors. */
static int open_layer_file(const rk_kv_store *s, int64_t file) {
    char name[64];
    snprintf(name, sizeof name, "/layer-%03lld.kv", (long long)file);
    int fd = rk_test_open_unlinked(rk_kv_store_path(s), name);
    CHECK_MSG(fd >= 0, "no open, unlinked %s%s", rk_kv_store_path(s), name);
    return fd;
}

static void flip_byte(int fd, off_t off) {
    uint8_t b = 0;
    CHECK(pread(fd, &b, 1, off) == 1);
    b ^= 0x10;
    CHECK(pwrite(fd, &b, 1, off) == 1);
}

/* ---- crc32c ---- */

static uint32_t crc32c_bitwise(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
    }
    return ~crc;
}

static void test_crc32c(void) {
    CHECK(rk_crc32c(0, "123456789", 9) == 0xE3069283u);
    CHECK(rk_crc32c_portable(0, "123456789", 9) == 0xE3069283u);
    CHECK(rk_crc32c(0, NULL, 0) == 0);
    CHECK(rk_crc32c(0x12345678u, NULL, 0) == 0x12345678u);

    enum { MAX = 70000 };
    uint8_t *buf = malloc(MAX + 64);
    uint64_t s = 12345;
    for (size_t i = 0; i < MAX + 64; i++)
        buf[i] = (uint8_t)(rng_next(&s) >> 56);
    int bad = 0;
    for (size_t len = 0; len <= 300; len++)
        for (size_t align = 0; align < 16; align++) {
            const uint8_t *p = buf + align;
            uint32_t want = crc32c_bitwise(0, p, len);
            if (rk_crc32c(0, p, len) != want || rk_crc32c_portable(0, p, len) != want) bad++;
        }
    for (int t = 0; t < 200; t++) {
        size_t len = (size_t)(rng_next(&s) % MAX), align = (size_t)(rng_next(&s) % 64);
        uint32_t seed = (uint32_t)rng_next(&s);
        const uint8_t *p = buf + align;
        if (rk_crc32c(seed, p, len) != rk_crc32c_portable(seed, p, len)) bad++;
        /* A checksum extends: crc(a ++ b) = crc(crc(a), b). */
        size_t cut = len ? (size_t)(rng_next(&s) % len) : 0;
        if (rk_crc32c(rk_crc32c(seed, p, cut), p + cut, len - cut) != rk_crc32c(seed, p, len))
            bad++;
    }
    CHECK(crc32c_bitwise(0, buf, MAX) == rk_crc32c(0, buf, MAX));
    CHECK_MSG(bad == 0, "%d crc32c mismatches", bad);
    free(buf);
}

/* ---- round trip ---- */

static void test_round_trip(const char *dir, int direct, size_t payload, int64_t slots) {
    const int64_t n_files = 3;
    rk_kv_store *s = open_store(dir, n_files, slots, payload, 0, direct);
    if (!s) return;
    const size_t rb = rk_kv_store_record_bytes(s);
    const size_t align = rk_kv_store_align(s);
    CHECK(align == (rk_kv_store_is_direct(s) ? RK_KV_STORE_ALIGN : RK_KV_STORE_ALIGN_BUFFERED));
    CHECK(rb % align == 0 && rb >= payload + RK_KV_STORE_HEADER_BYTES &&
          rb < payload + RK_KV_STORE_HEADER_BYTES + align);
    fprintf(stderr, "round trip in %s: payload %zu, record %zu, direct asked %d, got %d\n", dir,
            payload, rb, direct, rk_kv_store_is_direct(s));
    if (!direct) CHECK(!rk_kv_store_is_direct(s));

    uint8_t **rec = alloc_records(n_files * slots, rb);
    uint64_t rng = 777 + (uint64_t)direct;
    /* Runs of lengths 1, 2, 3, ... covering each layer, written in a shuffled order. */
    int64_t run_first[1024], run_file[1024], run_len[1024], n_runs = 0;
    for (int64_t f = 0; f < n_files; f++)
        for (int64_t p = 0, len = 1 + f; p < slots; p += len, len = len % 9 + 1) {
            run_first[n_runs] = p;
            run_file[n_runs] = f;
            run_len[n_runs] = p + len > slots ? slots - p : len;
            n_runs++;
        }
    if (slots > 256) { /* one call larger than a preadv / pwritev batch */
        n_runs = 0;
        for (int64_t f = 0; f < n_files; f++, n_runs++) {
            run_first[n_runs] = 0;
            run_file[n_runs] = f;
            run_len[n_runs] = slots;
        }
    }
    for (int64_t i = n_runs - 1; i > 0; i--) {
        int64_t j = (int64_t)(rng_next(&rng) % (uint64_t)(i + 1)), t;
        t = run_first[i], run_first[i] = run_first[j], run_first[j] = t;
        t = run_file[i], run_file[i] = run_file[j], run_file[j] = t;
        t = run_len[i], run_len[i] = run_len[j], run_len[j] = t;
    }
    rk_error err = {0};
    for (int64_t r = 0; r < n_runs; r++) {
        int64_t f = run_file[r], p = run_first[r];
        for (int64_t i = 0; i < run_len[r]; i++)
            fill_payload(rec[f * slots + p + i], payload, f, p + i, 1);
        rk_status st = rk_kv_store_write(s, f, p, run_len[r], rec + f * slots + p, &err);
        CHECK_MSG(st == RK_OK, "%s", err.msg);
    }
    int all_valid = 1;
    for (int64_t f = 0; f < n_files; f++)
        for (int64_t p = 0; p < slots; p++)
            all_valid &= rk_kv_store_valid(s, f, p);
    CHECK(all_valid);

    /* Read back in runs of other lengths, into scrubbed buffers. */
    for (int64_t i = 0; i < n_files * slots; i++)
        memset(rec[i], 0, rb);
    int bad = 0;
    for (int64_t f = 0; f < n_files; f++)
        for (int64_t p = 0, len = 4; p < slots; p += len, len = len * 3 % 17 + 1) {
            int64_t n = p + len > slots ? slots - p : len;
            rk_status st = rk_kv_store_read(s, f, p, n, rec + f * slots + p, &err);
            CHECK_MSG(st == RK_OK, "%s", err.msg);
            for (int64_t i = 0; i < n; i++)
                bad += !payload_ok(rec[f * slots + p + i], payload, f, p + i, 1);
        }
    CHECK_MSG(bad == 0, "%d pages read back wrong", bad);
    rk_status st = rk_kv_store_read(s, 2, 0, slots, rec, &err); /* a whole layer in one call */
    CHECK_MSG(st == RK_OK, "%s", err.msg);
    for (int64_t i = 0; i < slots; i++)
        bad += !payload_ok(rec[i], payload, 2, i, 1);
    CHECK(bad == 0);

    /* Rewrite a slot: the new bytes come back, bytes_held counts it once. */
    fill_payload(rec[0], payload, 1, 5, 2);
    st = rk_kv_store_write(s, 1, 5, 1, rec, &err);
    CHECK_MSG(st == RK_OK, "%s", err.msg);
    memset(rec[0], 0, rb);
    st = rk_kv_store_read(s, 1, 4, 3, rec, &err);
    CHECK_MSG(st == RK_OK, "%s", err.msg);
    CHECK(payload_ok(rec[0], payload, 1, 4, 1) && payload_ok(rec[1], payload, 1, 5, 2) &&
          payload_ok(rec[2], payload, 1, 6, 1));

    rk_kv_store_stats stats;
    rk_kv_store_get_stats(s, &stats);
    CHECK(stats.pages_written == (uint64_t)(n_files * slots + 1));
    CHECK(stats.bytes_written == stats.pages_written * rb);
    CHECK(stats.bytes_held == (uint64_t)(n_files * slots) * rb);
    CHECK(stats.pages_read == (uint64_t)(n_files * slots + slots + 3));
    CHECK(stats.bytes_read == stats.pages_read * rb);
    CHECK(stats.write_errors == 0 && stats.read_errors == 0);
    CHECK(stats.write_seconds > 0 && stats.read_seconds > 0);

    /* Dropping the tail of a layer. */
    rk_kv_store_drop(s, 0, slots / 2);
    CHECK(rk_kv_store_valid(s, 0, slots / 2 - 1) && !rk_kv_store_valid(s, 0, slots / 2));
    CHECK(!rk_kv_store_valid(s, 0, slots - 1) && rk_kv_store_valid(s, 1, slots - 1));
    rk_kv_store_get_stats(s, &stats);
    CHECK(stats.bytes_held == (uint64_t)(n_files * slots - (slots - slots / 2)) * rb);
    st = rk_kv_store_read(s, 0, slots / 2 - 1, 2, rec, &err);
    CHECK(st == RK_ERR_IO && msg_has(&err, "never written", NULL));
    st = rk_kv_store_read(s, 0, 0, slots / 2, rec, &err);
    CHECK_MSG(st == RK_OK, "%s", err.msg);
    for (int64_t i = 0; i < slots / 2; i++)
        bad += !payload_ok(rec[i], payload, 0, i, 1);
    CHECK(bad == 0);

    free_records(rec, n_files * slots);
    close_store(s);
}

/* ---- corruption ---- */

static void test_corruption(const char *dir, int direct) {
    const int64_t slots = 10;
    const size_t payload = 5000;
    rk_kv_store *s = open_store(dir, 2, slots, payload, 0, direct);
    if (!s) return;
    const size_t rb = rk_kv_store_record_bytes(s);
    uint8_t **rec = alloc_records(2 * slots, rb);
    rk_error err = {0};
    for (int64_t f = 0; f < 2; f++) {
        for (int64_t i = 0; i < 8; i++)
            fill_payload(rec[f * slots + i], payload, f, i, 1);
        CHECK(rk_kv_store_write(s, f, 0, 8, rec + f * slots, &err) == RK_OK);
    }
    int fd0 = open_layer_file(s, 0), fd1 = open_layer_file(s, 1);
    rk_status st;

    /* A flipped payload byte. */
    flip_byte(fd1, 3 * (off_t)rb + RK_KV_STORE_HEADER_BYTES + 100);
    st = rk_kv_store_read(s, 1, 3, 1, rec, &err);
    CHECK_MSG(st == RK_ERR_IO && msg_has(&err, "page 3 of layer 1", "checksum mismatch"), "%s",
              err.msg);
    fprintf(stderr, "  expected error: %s\n", err.msg);
    st = rk_kv_store_read(s, 1, 0, 8, rec, &err);
    CHECK_MSG(st == RK_ERR_IO && msg_has(&err, "page 3 of layer 1", NULL), "%s", err.msg);
    CHECK(rk_kv_store_read(s, 1, 0, 3, rec, &err) == RK_OK);
    CHECK(rk_kv_store_read(s, 1, 4, 4, rec + 4, &err) == RK_OK);
    CHECK(payload_ok(rec[2], payload, 1, 2, 1) && payload_ok(rec[7], payload, 1, 7, 1));
    flip_byte(fd1, 3 * (off_t)rb + RK_KV_STORE_HEADER_BYTES + 100);
    CHECK(rk_kv_store_read(s, 1, 3, 1, rec, &err) == RK_OK);

    /* A flipped header byte (the page number). */
    flip_byte(fd1, 5 * (off_t)rb + 16);
    st = rk_kv_store_read(s, 1, 5, 1, rec, &err);
    CHECK_MSG(st == RK_ERR_IO && msg_has(&err, "page 5 of layer 1", "header checksum"), "%s",
              err.msg);
    fprintf(stderr, "  expected error: %s\n", err.msg);
    flip_byte(fd1, 5 * (off_t)rb + 16);
    CHECK(rk_kv_store_read(s, 1, 5, 1, rec, &err) == RK_OK);

    /* Two records swapped on disk. */
    uint8_t *a = malloc(rb), *b = malloc(rb);
    CHECK(pread(fd0, a, rb, 1 * (off_t)rb) == (ssize_t)rb);
    CHECK(pread(fd0, b, rb, 2 * (off_t)rb) == (ssize_t)rb);
    CHECK(pwrite(fd0, b, rb, 1 * (off_t)rb) == (ssize_t)rb);
    CHECK(pwrite(fd0, a, rb, 2 * (off_t)rb) == (ssize_t)rb);
    st = rk_kv_store_read(s, 0, 1, 2, rec, &err);
    CHECK_MSG(st == RK_ERR_IO &&
                  msg_has(&err, "page 1 of layer 0: header names page 2 of layer 0", NULL),
              "%s", err.msg);
    fprintf(stderr, "  expected error: %s\n", err.msg);
    CHECK(pwrite(fd0, a, rb, 1 * (off_t)rb) == (ssize_t)rb);
    CHECK(pwrite(fd0, b, rb, 2 * (off_t)rb) == (ssize_t)rb);
    CHECK(rk_kv_store_read(s, 0, 1, 2, rec, &err) == RK_OK);

    /* A stale record: the previous write of a slot put back after a rewrite. */
    CHECK(pread(fd0, a, rb, 6 * (off_t)rb) == (ssize_t)rb);
    fill_payload(rec[0], payload, 0, 6, 2);
    CHECK(rk_kv_store_write(s, 0, 6, 1, rec, &err) == RK_OK);
    CHECK(pwrite(fd0, a, rb, 6 * (off_t)rb) == (ssize_t)rb);
    st = rk_kv_store_read(s, 0, 6, 1, rec, &err);
    CHECK_MSG(st == RK_ERR_IO && msg_has(&err, "page 6 of layer 0", "stale"), "%s", err.msg);
    fprintf(stderr, "  expected error: %s\n", err.msg);
    fill_payload(rec[0], payload, 0, 6, 2);
    CHECK(rk_kv_store_write(s, 0, 6, 1, rec, &err) == RK_OK);
    CHECK(rk_kv_store_read(s, 0, 6, 1, rec, &err) == RK_OK && payload_ok(rec[0], payload, 0, 6, 2));

    /* Never written. */
    st = rk_kv_store_read(s, 0, 8, 1, rec, &err);
    CHECK_MSG(st == RK_ERR_IO && msg_has(&err, "page 8 of layer 0", "never written"), "%s",
              err.msg);
    st = rk_kv_store_read(s, 0, 7, 3, rec, &err);
    CHECK_MSG(st == RK_ERR_IO && msg_has(&err, "page 8 of layer 0", "never written"), "%s",
              err.msg);

    /* Truncation: page 4 cut short, pages 5.. gone. */
    CHECK(ftruncate(fd0, 4 * (off_t)rb + 1000) == 0);
    st = rk_kv_store_read(s, 0, 4, 1, rec, &err);
    char want[128];
    snprintf(want, sizeof want, "short read (1000 of %zu bytes)", rb);
    CHECK_MSG(st == RK_ERR_IO && msg_has(&err, "page 4 of layer 0", want), "%s", err.msg);
    fprintf(stderr, "  expected error: %s\n", err.msg);
    st = rk_kv_store_read(s, 0, 2, 5, rec, &err);
    CHECK_MSG(st == RK_ERR_IO && msg_has(&err, "page 4 of layer 0", "truncated"), "%s", err.msg);
    st = rk_kv_store_read(s, 0, 6, 1, rec, &err);
    CHECK_MSG(st == RK_ERR_IO && msg_has(&err, "page 6 of layer 0: short read (0 of", NULL), "%s",
              err.msg);
    CHECK(rk_kv_store_read(s, 0, 0, 4, rec, &err) == RK_OK);
    for (int64_t i = 0; i < 4; i++)
        CHECK(payload_ok(rec[i], payload, 0, i, 1));
    CHECK(rk_kv_store_read(s, 1, 0, 8, rec, &err) == RK_OK); /* the other layer is untouched */
    for (int64_t i = 0; i < 8; i++)
        CHECK(payload_ok(rec[i], payload, 1, i, 1));

    rk_kv_store_stats stats;
    rk_kv_store_get_stats(s, &stats);
    CHECK(stats.read_errors == 10);
    free(a);
    free(b);
    close(fd0);
    close(fd1);
    free_records(rec, 2 * slots);
    close_store(s);
}

/* ---- budget ---- */

static void test_budget(const char *dir) {
    const size_t payload = 8000;
    rk_kv_store *probe = open_store(dir, 1, 1, payload, 0, 0);
    if (!probe) return;
    const size_t rb = rk_kv_store_record_bytes(probe);
    close_store(probe);
    rk_kv_store *s = open_store(dir, 2, 8, payload, 3 * rb, 0);
    if (!s) return;
    uint8_t **rec = alloc_records(8, rb);
    for (int64_t i = 0; i < 8; i++)
        fill_payload(rec[i], payload, 0, i, 1);
    rk_error err = {0};
    rk_kv_store_stats stats;

    CHECK(rk_kv_store_write(s, 0, 0, 3, rec, &err) == RK_OK);
    rk_status st = rk_kv_store_write(s, 0, 3, 1, rec + 3, &err);
    char want[160];
    snprintf(want, sizeof want,
             "--kv-disk-max of %zu bytes reached writing page 3 of layer 0 (holding %zu, page "
             "needs %zu)",
             3 * rb, 3 * rb, rb);
    CHECK_MSG(st == RK_ERR_IO && msg_has(&err, want, NULL), "%s", err.msg);
    fprintf(stderr, "  expected error: %s\n", err.msg);
    rk_kv_store_get_stats(s, &stats);
    CHECK(stats.bytes_held == 3 * rb && stats.pages_written == 3);
    CHECK(!rk_kv_store_valid(s, 0, 3));
    st = rk_kv_store_write(s, 1, 0, 1, rec, &err); /* the budget spans layers */
    CHECK(st == RK_ERR_IO && msg_has(&err, "page 0 of layer 1", NULL));
    /* Rewriting held pages needs no more room; all-or-nothing for a run. */
    CHECK(rk_kv_store_write(s, 0, 1, 2, rec + 1, &err) == RK_OK);
    st = rk_kv_store_write(s, 0, 2, 2, rec + 2, &err);
    CHECK(st == RK_ERR_IO && msg_has(&err, "page 3 of layer 0", NULL));
    CHECK(rk_kv_store_valid(s, 0, 2)); /* refused before any I/O: page 2 still holds */
    CHECK(rk_kv_store_read(s, 0, 0, 3, rec, &err) == RK_OK);

    rk_kv_store_drop(s, 0, 2);
    rk_kv_store_get_stats(s, &stats);
    CHECK(stats.bytes_held == 2 * rb);
    fill_payload(rec[3], payload, 0, 3, 1);
    st = rk_kv_store_write(s, 0, 3, 1, rec + 3, &err);
    CHECK_MSG(st == RK_OK, "%s", err.msg);
    CHECK(rk_kv_store_read(s, 0, 3, 1, rec + 3, &err) == RK_OK &&
          payload_ok(rec[3], payload, 0, 3, 1));
    CHECK(rk_kv_store_read(s, 0, 2, 1, rec + 2, &err) == RK_ERR_IO &&
          msg_has(&err, "never written", NULL));
    rk_kv_store_get_stats(s, &stats);
    CHECK(stats.bytes_held == 3 * rb);
    free_records(rec, 8);
    close_store(s);
}

/* ---- a full disk ---- */

static void test_space(const char *dir, int direct) {
    const size_t payload = 5000;
    rk_kv_store *s = open_store(dir, 1, 16, payload, 0, direct);
    if (!s) return;
    const size_t rb = rk_kv_store_record_bytes(s);
    uint8_t **rec = alloc_records(16, rb);
    for (int64_t i = 0; i < 16; i++)
        fill_payload(rec[i], payload, 0, i, 1);
    rk_error err = {0};
    CHECK(rk_kv_store_write(s, 0, 0, 4, rec, &err) == RK_OK);

    struct rlimit old, lim;
    CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
    lim = old;
    lim.rlim_cur = 6 * rb;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    rk_status st = rk_kv_store_write(s, 0, 4, 6, rec + 4, &err);
    CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
    signal(SIGXFSZ, old_handler);
    CHECK_MSG(st == RK_ERR_IO && msg_has(&err, "no space left in ", rk_kv_store_path(s)) &&
                  msg_has(&err, "writing page 6 of layer 0", NULL),
              "%s", err.msg);
    fprintf(stderr, "  expected error: %s\n", err.msg);

    rk_kv_store_stats stats;
    rk_kv_store_get_stats(s, &stats);
    CHECK(stats.bytes_held == 4 * rb && stats.pages_written == 4 && stats.write_errors == 1);
    for (int64_t i = 4; i < 10; i++)
        CHECK(!rk_kv_store_valid(s, 0, i));
    for (int64_t i = 0; i < 4; i++)
        memset(rec[i], 0, rb);
    CHECK(rk_kv_store_read(s, 0, 0, 4, rec, &err) == RK_OK);
    for (int64_t i = 0; i < 4; i++)
        CHECK(payload_ok(rec[i], payload, 0, i, 1));
    st = rk_kv_store_read(s, 0, 4, 1, rec + 4, &err);
    CHECK(st == RK_ERR_IO && msg_has(&err, "page 4 of layer 0: never written", NULL));
    st = rk_kv_store_read(s, 0, 9, 1, rec + 9, &err);
    CHECK(st == RK_ERR_IO && msg_has(&err, "page 9 of layer 0: never written", NULL));

    /* Room again: the same write succeeds. */
    for (int64_t i = 4; i < 10; i++)
        fill_payload(rec[i], payload, 0, i, 1);
    CHECK(rk_kv_store_write(s, 0, 4, 6, rec + 4, &err) == RK_OK);
    for (int64_t i = 0; i < 10; i++)
        memset(rec[i], 0, rb);
    CHECK(rk_kv_store_read(s, 0, 0, 10, rec, &err) == RK_OK);
    for (int64_t i = 0; i < 10; i++)
        CHECK(payload_ok(rec[i], payload, 0, i, 1));
    free_records(rec, 16);
    close_store(s);
}

/* ---- a reader thread racing a writer ---- */

typedef struct reader_arg {
    rk_kv_store *store;
    int64_t slots;
    size_t payload;
    int rounds;
    int failures;
    char first_error[RK_ERROR_MSG_MAX];
} reader_arg;

static void *reader_main(void *p) {
    reader_arg *a = p;
    const size_t rb = rk_kv_store_record_bytes(a->store);
    uint8_t **rec = alloc_records(a->slots, rb);
    rk_error err = {0};
    for (int r = 0; r < a->rounds; r++)
        for (int64_t first = 0, len = 1 + r % 5; first < a->slots; first += len) {
            int64_t n = first + len > a->slots ? a->slots - first : len;
            if (rk_kv_store_read(a->store, 0, first, n, rec + first, &err) != RK_OK) {
                if (!a->failures++) snprintf(a->first_error, sizeof a->first_error, "%s", err.msg);
                continue;
            }
            for (int64_t i = 0; i < n; i++)
                a->failures += !payload_ok(rec[first + i], a->payload, 0, first + i, 1);
        }
    free_records(rec, a->slots);
    return NULL;
}

static void test_concurrent(const char *dir, int direct) {
    const int64_t slots = 64;
    const size_t payload = 16000;
    rk_kv_store *s = open_store(dir, 2, slots, payload, 0, direct);
    if (!s) return;
    const size_t rb = rk_kv_store_record_bytes(s);
    uint8_t **rec = alloc_records(slots, rb);
    rk_error err = {0};
    for (int64_t i = 0; i < slots; i++)
        fill_payload(rec[i], payload, 0, i, 1);
    CHECK(rk_kv_store_write(s, 0, 0, slots, rec, &err) == RK_OK);

    reader_arg a = {s, slots, payload, 30, 0, ""};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, reader_main, &a) == 0);
    int write_failures = 0;
    for (int round = 0; round < 40; round++) {
        for (int64_t first = 0, len = 1 + round % 7; first < slots; first += len) {
            int64_t n = first + len > slots ? slots - first : len;
            for (int64_t i = 0; i < n; i++)
                fill_payload(rec[first + i], payload, 1, first + i, (uint64_t)round);
            write_failures += rk_kv_store_write(s, 1, first, n, rec + first, &err) != RK_OK;
        }
        if (round % 10 == 9) rk_kv_store_drop(s, 1, slots / 3);
    }
    pthread_join(th, NULL);
    CHECK(write_failures == 0);
    CHECK_MSG(a.failures == 0, "%d reader failures, first: %s", a.failures, a.first_error);
    /* Layer 1 holds the last round, except the pages dropped after it. */
    CHECK(rk_kv_store_read(s, 1, 0, slots / 3, rec, &err) == RK_OK);
    for (int64_t i = 0; i < slots / 3; i++)
        CHECK(payload_ok(rec[i], payload, 1, i, 39));
    CHECK(!rk_kv_store_valid(s, 1, slots / 3));
    free_records(rec, slots);
    close_store(s);
}

/* ---- bad arguments ---- */

static void test_bad_args(const char *dir) {
    rk_error err = {0};
    rk_kv_store *s = NULL;
    rk_kv_store_config c = {dir, 0, 2, 4, 100, 0, NULL, 0};
    rk_kv_store_config bad = c;
    bad.dir = NULL;
    CHECK(rk_kv_store_open(&bad, &s, &err) == RK_ERR_INVALID_ARG && s == NULL);
    CHECK(rk_kv_store_open(NULL, &s, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_kv_store_open(&c, NULL, &err) == RK_ERR_INVALID_ARG);
    bad = c, bad.n_files = 0;
    CHECK(rk_kv_store_open(&bad, &s, &err) == RK_ERR_INVALID_ARG);
    bad = c, bad.slots_per_file = -3;
    CHECK(rk_kv_store_open(&bad, &s, &err) == RK_ERR_INVALID_ARG);
    bad = c, bad.payload_bytes = 0;
    CHECK(rk_kv_store_open(&bad, &s, &err) == RK_ERR_INVALID_ARG);
    bad = c, bad.payload_bytes = SIZE_MAX;
    CHECK(rk_kv_store_open(&bad, &s, &err) == RK_ERR_INVALID_ARG);
    bad = c, bad.slots_per_file = INT64_MAX / 2;
    CHECK(rk_kv_store_open(&bad, &s, &err) == RK_ERR_INVALID_ARG);
    bad = c, bad.n_files = INT64_MAX / 4;
    CHECK(rk_kv_store_open(&bad, &s, &err) == RK_ERR_INVALID_ARG);

    char missing[4200];
    snprintf(missing, sizeof missing, "%s/no-such-dir", dir);
    bad = c, bad.dir = missing;
    CHECK(rk_kv_store_open(&bad, &s, &err) == RK_ERR_IO && msg_has(&err, missing, "No such file"));
    fprintf(stderr, "  expected error: %s\n", err.msg);
    char file_path[4200];
    snprintf(file_path, sizeof file_path, "%s/a-file", dir);
    int fd = open(file_path, O_CREAT | O_WRONLY, 0600);
    CHECK(fd >= 0);
    close(fd);
    bad.dir = file_path;
    CHECK(rk_kv_store_open(&bad, &s, &err) == RK_ERR_IO && msg_has(&err, file_path, "directory"));
    fprintf(stderr, "  expected error: %s\n", err.msg);
    unlink(file_path);
    if (geteuid() != 0) { /* root writes anywhere */
        char ro[4200];
        snprintf(ro, sizeof ro, "%s/read-only", dir);
        CHECK(mkdir(ro, 0500) == 0);
        bad.dir = ro;
        CHECK(rk_kv_store_open(&bad, &s, &err) == RK_ERR_IO && msg_has(&err, ro, "denied"));
        fprintf(stderr, "  expected error: %s\n", err.msg);
        rmdir(ro);
    }
    CHECK(s == NULL);

    s = open_store(dir, 2, 4, 100, 0, 0);
    if (!s) return;
    const size_t rb = rk_kv_store_record_bytes(s);
    CHECK(rb == 192); /* 64 + 100 rounded to the buffered alignment, 64 */
    uint8_t **rec = alloc_records(5, rb);
    uint8_t *misaligned[1] = {rec[0] + 8};
    uint8_t *null_rec[1] = {NULL};
    CHECK(rk_kv_store_write(s, 2, 0, 1, rec, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_kv_store_write(s, -1, 0, 1, rec, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_kv_store_write(s, 0, 3, 2, rec, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_kv_store_write(s, 0, -1, 1, rec, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_kv_store_write(s, 0, 0, 5, rec, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_kv_store_write(s, 0, 0, -1, rec, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_kv_store_write(s, 0, INT64_MAX, 2, rec, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_kv_store_write(s, 0, 0, 1, NULL, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_kv_store_write(s, 0, 1, 1, misaligned, &err) == RK_ERR_INVALID_ARG &&
          msg_has(&err, "page 1 of layer 0", "aligned"));
    CHECK(rk_kv_store_write(s, 0, 1, 1, null_rec, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_kv_store_write(NULL, 0, 0, 1, rec, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_kv_store_read(s, 0, 3, 2, rec, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_kv_store_read(s, 0, 0, 1, misaligned, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_kv_store_read(NULL, 0, 0, 1, rec, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_kv_store_write(s, 0, 0, 0, NULL, &err) == RK_OK);
    CHECK(rk_kv_store_read(s, 0, 0, 0, NULL, &err) == RK_OK);
    CHECK(rk_kv_store_write(s, 0, 0, 1, rec, NULL) == RK_OK); /* err may be NULL */
    CHECK(rk_kv_store_read(s, 0, 1, 1, rec, NULL) == RK_ERR_IO);
    CHECK(!rk_kv_store_valid(s, 0, -1) && !rk_kv_store_valid(s, 0, 4) &&
          !rk_kv_store_valid(s, 5, 0));
    CHECK(!rk_kv_store_valid(NULL, 0, 0) && rk_kv_store_valid(s, 0, 0));
    rk_kv_store_drop(s, 7, 0);
    rk_kv_store_drop(s, -1, 0);
    rk_kv_store_drop(s, 0, 99);
    rk_kv_store_drop(NULL, 0, 0);
    CHECK(rk_kv_store_valid(s, 0, 0));
    rk_kv_store_drop(s, 0, -5);
    CHECK(!rk_kv_store_valid(s, 0, 0));
    rk_kv_store_stats stats;
    rk_kv_store_get_stats(s, &stats);
    CHECK(stats.bytes_held == 0 && stats.pages_written == 1);
    rk_kv_store_get_stats(NULL, &stats);
    CHECK(stats.pages_written == 0);
    CHECK(rk_kv_store_record_bytes(NULL) == 0 && rk_kv_store_path(NULL) == NULL);
    rk_kv_store_close(NULL);
    free_records(rec, 5);
    close_store(s);
}

/* ---- throughput (--bench) ---- */

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Writes and reads 256 MiB as 2 layers of 128 pages of 1 MiB payload, in runs of 16 pages. */
static void bench(const char *dir, int direct) {
    const int64_t files = 2, slots = 128, run = 16;
    const size_t payload = (1u << 20) - RK_KV_STORE_HEADER_BYTES;
    rk_kv_store *s = open_store(dir, files, slots, payload, 0, direct);
    if (!s) return;
    const size_t rb = rk_kv_store_record_bytes(s);
    uint8_t **rec = alloc_records(run, rb);
    for (int64_t i = 0; i < run; i++)
        fill_payload(rec[i], payload, 0, i, 1);
    rk_error err = {0};
    double t0 = seconds_now();
    for (int64_t f = 0; f < files; f++)
        for (int64_t p = 0; p < slots; p += run)
            CHECK_MSG(rk_kv_store_write(s, f, p, run, rec, &err) == RK_OK, "%s", err.msg);
    double t_write = seconds_now() - t0;
    /* Flush and evict the page cache so the reads come from the disk. */
    double t_sync = 0;
    for (int64_t f = 0; f < files; f++) {
        int fd = open_layer_file(s, f);
        t0 = seconds_now();
        fdatasync(fd);
        t_sync += seconds_now() - t0;
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    t0 = seconds_now();
    for (int64_t f = 0; f < files; f++)
        for (int64_t p = 0; p < slots; p += run)
            CHECK_MSG(rk_kv_store_read(s, f, p, run, rec, &err) == RK_OK, "%s", err.msg);
    double t_read = seconds_now() - t0;
    const double mib = (double)(files * slots) * (double)rb / (1 << 20);
    printf("%s, direct asked %d got %d: write %.0f MiB in %.3f s = %.0f MiB/s (+ fdatasync %.3f s"
           " = %.0f MiB/s with it), cold read %.3f s = %.0f MiB/s\n",
           dir, direct, rk_kv_store_is_direct(s), mib, t_write, mib / t_write, t_sync,
           mib / (t_write + t_sync), t_read, mib / t_read);
    free_records(rec, run);
    close_store(s);
}

/* ---- main ---- */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    chmod(path, 0700);
    return remove(path);
}

/* rk_kv_store_read_pages: scattered pages, with an io_uring (when this build and kernel have
 * one) and without, give the same bytes; a flipped payload byte and a truncated file are caught
 * through the ring with the same messages as the plain path. */
static void test_read_pages(const char *dir, int direct) {
    enum { SLOTS = 200 };
    const size_t payload = 30000;
    rk_kv_store *s = open_store(dir, 2, SLOTS, payload, 0, direct);
    if (!s) return;
    const size_t rb = rk_kv_store_record_bytes(s);
    uint8_t **w = alloc_records(SLOTS, rb), **r = alloc_records(SLOTS, rb);
    rk_error err = {0};
    for (int64_t i = 0; i < SLOTS; i++) fill_payload(w[i], payload, 1, i, 7);
    CHECK_MSG(rk_kv_store_write(s, 1, 0, SLOTS, w, &err) == RK_OK, "%s", err.msg);
    /* runs of several lengths with gaps, long enough to need several 256 KiB pieces */
    int64_t pages[SLOTS], n = 0;
    for (int64_t i = 0; i < SLOTS; i++)
        if (i % 37 != 5 && i % 11 != 3) pages[n++] = i;
    rk_kv_uring *ring = rk_kv_uring_create(8);
    fprintf(stderr, "  read_pages (%s): io_uring %s\n", direct ? "O_DIRECT" : "buffered", ring ? "yes" : "not available");
    for (int pass = 0; pass < 2; pass++) {
        rk_kv_uring *use = pass == 0 ? NULL : ring;
        if (pass == 1 && !ring) break;
        for (int64_t j = 0; j < n; j++) memset(r[j], 0, rb);
        rk_status st = rk_kv_store_read_pages(s, use, 1, pages, n, r, &err);
        CHECK_MSG(st == RK_OK, "%s", err.msg);
        int bad = 0;
        for (int64_t j = 0; j < n; j++) bad += !payload_ok(r[j], payload, 1, pages[j], 7);
        CHECK_MSG(bad == 0, "%d pages differ (%s)", bad, use ? "io_uring" : "plain");
    }
    /* not ascending, or out of range: refused up front */
    int64_t bad_order[2] = {4, 2};
    CHECK(rk_kv_store_read_pages(s, ring, 1, bad_order, 2, r, &err) == RK_ERR_INVALID_ARG);
    int64_t beyond[1] = {SLOTS};
    CHECK(rk_kv_store_read_pages(s, ring, 1, beyond, 1, r, &err) == RK_ERR_INVALID_ARG);
    /* a flipped payload byte of page 120, read among others */
    int fd = open_layer_file(s, 1);
    flip_byte(fd, 120 * (off_t)rb + RK_KV_STORE_HEADER_BYTES + 999);
    CHECK(rk_kv_store_read_pages(s, ring, 1, pages, n, r, &err) == RK_ERR_IO);
    CHECK_MSG(msg_has(&err, "page 120 of layer 1", "checksum mismatch"), "%s", err.msg);
    flip_byte(fd, 120 * (off_t)rb + RK_KV_STORE_HEADER_BYTES + 999);
    /* the file cut short in the middle of page 150 */
    CHECK(ftruncate(fd, 150 * (off_t)rb + 100) == 0);
    CHECK(rk_kv_store_read_pages(s, ring, 1, pages, n, r, &err) == RK_ERR_IO);
    CHECK_MSG(msg_has(&err, "page 150 of layer 1", "short read"), "%s", err.msg);
    close(fd);
    rk_kv_uring_free(ring);
    free_records(w, SLOTS);
    free_records(r, SLOTS);
    close_store(s);
}

/* Nothing of a store shows in its directory while it is open, and nothing is left when its
 * process is killed with pages written. */
static void test_no_leftovers(const char *dir) {
    rk_kv_store *s = open_store(dir, 3, 10, 5000, 0, 0);
    if (!s) return;
    struct stat sb;
    CHECK_MSG(stat(rk_kv_store_path(s), &sb) != 0 && errno == ENOENT, "%s visible while open", rk_kv_store_path(s));
    close_store(s);
    pid_t child = fork();
    if (child == 0) {
        rk_kv_store *c = open_store(dir, 3, 10, 5000, 0, 0);
        const size_t rb = c ? rk_kv_store_record_bytes(c) : 0;
        uint8_t **w = alloc_records(10, rb);
        rk_error err;
        for (int f = 0; c && f < 3; f++) rk_kv_store_write(c, f, 0, 10, w, &err);
        raise(SIGKILL); /* no close, no cleanup */
        _exit(1);
    }
    int status = 0;
    CHECK(child > 0 && waitpid(child, &status, 0) == child && WIFSIGNALED(status));
    DIR *d = opendir(dir);
    int entries = 0;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) entries += e->d_name[0] != '.';
    if (d) closedir(d);
    CHECK_MSG(entries == 0, "%d entries left in %s by a killed process", entries, dir);
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "--bench") == 0) {
        const char *dir = argc >= 3 ? argv[2] : "/tmp";
        bench(dir, 0);
        bench(dir, 1);
        return rk_test_finish("test-kv-store --bench");
    }
    test_crc32c();

    char dir[] = "/tmp/ringkv-test-kv-store-XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    char shm[] = "/dev/shm/ringkv-test-kv-store-XXXXXX"; /* tmpfs: O_DIRECT may be refused */
    const int have_shm = mkdtemp(shm) != NULL;
    for (int direct = 0; direct <= 1; direct++) {
        test_round_trip(dir, direct, 5000, 40);
        test_round_trip(dir, direct, RK_KV_STORE_ALIGN - RK_KV_STORE_HEADER_BYTES, 300);
        if (have_shm) test_round_trip(shm, direct, 12345, 20);
        test_corruption(dir, direct);
        test_space(dir, direct);
        test_concurrent(dir, direct);
        test_read_pages(dir, direct);
    }
    test_budget(dir);
    test_bad_args(dir);
    test_no_leftovers(dir);

    /* Every store removed its subdirectory: the test directories are empty again. */
    CHECK_MSG(rmdir(dir) == 0, "rmdir %s: %s", dir, strerror(errno));
    if (have_shm) CHECK_MSG(rmdir(shm) == 0, "rmdir %s: %s", shm, strerror(errno));
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS); /* leftovers of a failed run, if any */
    if (have_shm) nftw(shm, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rk_test_finish("test-kv-store");
}
