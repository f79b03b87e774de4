/*
 * test-kv-tier.c — the tiered KV cache keeps attention exact and fails cleanly.
 *   - exactness: a cache driven like the forward pass (chunked prefill, then decode steps;
 *     seal, acquire, attend, settle per layer) gives bit-identical attention outputs with no
 *     tiers, with the least RAM budgets and a disk tier (most pages cold, read back by the I/O
 *     thread and synchronously), buffered and O_DIRECT, for f16, q4 and tq3.5 pages.
 *   - a corrupted page on disk is reported naming the page and layer, never served; the cache
 *     stays usable.
 *   - a full disk (RLIMIT_FSIZE) while sealing is a clear error and the cache keeps its
 *     previous contents: attention reads the same values as before.
 *   - budgets that cannot hold what they must are refused with the sizes needed (with and
 *     without a disk tier).
 *   - truncating into a page that lives on disk reads it back and re-opens it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "test-kv-drive.h"

static int run(const run_cfg *rc, run_out *out) {
    rk_error err;
    rk_kv_cache *kv = NULL;
    rk_status s = make_cache(rc, &kv, &err);
    if (!s) s = drive(kv, out, NULL, &err);
    CHECK_MSG(s == RK_OK, "%s disk=%s direct=%d: %s", rc->codec, rc->disk_dir ? rc->disk_dir : "-", rc->direct,
              err.msg);
    rk_kv_free(kv);
    return s == RK_OK;
}

static void test_exact(const char *dir) {
    const char *codecs[] = {"f16", "q4", "tq3.5"};
    for (int c = 0; c < 3; c++) {
        run_out ref = {0}, tiered = {0}, direct = {0}, roomy = {0};
        run_cfg a = {codecs[c], NULL, 0, 0, 0, NULL};
        run_cfg b = {codecs[c], dir, 0, 0, 0, NULL};
        run_cfg d = {codecs[c], dir, 1, 0, 0, NULL};
        run_cfg e = {codecs[c], dir, 0, (size_t)64 << 20, (size_t)64 << 20, NULL}; /* nothing goes cold */
        if (run(&a, &ref) && run(&b, &tiered) && run(&d, &direct) && run(&e, &roomy)) {
            size_t bytes = (size_t)ref.n * N_LAYER * N_HEAD_KV * N_Q * DIM * sizeof(float);
            CHECK(ref.n == tiered.n && ref.n == direct.n && ref.n == roomy.n);
            CHECK_MSG(memcmp(ref.att, tiered.att, bytes) == 0, "%s: tiered attention differs", codecs[c]);
            CHECK_MSG(memcmp(ref.att, direct.att, bytes) == 0, "%s: O_DIRECT attention differs", codecs[c]);
            CHECK_MSG(memcmp(ref.att, roomy.att, bytes) == 0, "%s: roomy attention differs", codecs[c]);
            const rk_kv_tier_stats *t = &tiered.stats;
            int64_t sealed = t->pages_hot + t->pages_warm + t->pages_cold;
            printf("%-6s least budgets: %lld pages hot, %lld warm, %lld cold; fetched %llu (prefetched %llu), "
                   "evicted %llu, written %llu; read hot %.1f warm %.1f cold %.1f MiB; io %.4f s, waited %.4f s\n",
                   codecs[c], (long long)t->pages_hot, (long long)t->pages_warm, (long long)t->pages_cold,
                   (unsigned long long)t->pages_fetched, (unsigned long long)t->pages_prefetched,
                   (unsigned long long)t->pages_evicted, (unsigned long long)t->pages_written,
                   t->read_hot_bytes / 1048576.0, t->read_warm_bytes / 1048576.0, t->read_cold_bytes / 1048576.0,
                   t->io_seconds, t->io_wait_seconds);
            CHECK(sealed == N_LAYER * 8);
            CHECK_MSG(t->pages_cold * 3 >= sealed, "only %lld of %lld pages cold", (long long)t->pages_cold,
                      (long long)sealed);
            CHECK(t->pages_fetched > 0 && t->pages_prefetched > 0 && t->read_cold_bytes > 0);
            CHECK(t->pages_written == (uint64_t)sealed);
            CHECK(roomy.stats.pages_cold == 0 && roomy.stats.pages_fetched == 0);
        }
        free(ref.att);
        free(tiered.att);
        free(direct.att);
        free(roomy.att);
    }
}

/* The one page file of layer `layer` under the store's subdirectory of dir. */
static void test_corruption(const char *dir) {
    run_cfg rc = {"tq3.5", dir, 0, 0, 0, NULL};
    rk_error err;
    rk_kv_cache *kv = NULL;
    run_out out = {0};
    CHECK(make_cache(&rc, &kv, &err) == RK_OK);
    if (!kv) return;
    CHECK(drive(kv, &out, NULL, &err) == RK_OK);
    /* page 3 of layer 1 is cold now (only pinned pages and two layers stay in RAM) */
    /* the page files were unlinked when the store opened them: found through /proc/self/fd */
    int fd = rk_test_open_unlinked("ringkv-kv-", "/layer-001.kv");
    CHECK(fd >= 0);
    size_t rec = rk_kv_record_bytes(kv);
    off_t at = (off_t)(3 * rec + 64 + 1000);
    unsigned char b = 0;
    CHECK(pread(fd, &b, 1, at) == 1);
    b ^= 0x40;
    CHECK(pwrite(fd, &b, 1, at) == 1);
    rk_status s = RK_OK;
    for (int l = 0; l < N_LAYER && !s; l++) s = rk_kv_acquire(kv, l, 0, NULL, NULL, &err); /* layer 0 first, as a step */
    CHECK(s == RK_ERR_IO);
    CHECK_MSG(strstr(err.msg, "page 3") && strstr(err.msg, "layer 1"), "message: %s", err.msg);
    /* not served, and asked again it fails again; other layers still read */
    CHECK(rk_kv_acquire(kv, 1, 0, NULL, NULL, &err) == RK_ERR_IO);
    CHECK(rk_kv_acquire(kv, 5, 0, NULL, NULL, &err) == RK_OK);
    b ^= 0x40; /* repaired, it reads again */
    CHECK(pwrite(fd, &b, 1, at) == 1);
    CHECK(rk_kv_acquire(kv, 1, 0, NULL, NULL, &err) == RK_OK);
    close(fd);
    rk_kv_free(kv);
    free(out.att);
}

static void test_disk_full(const char *dir) {
    run_cfg rc = {"q4", dir, 0, 0, 0, NULL};
    rk_error err;
    rk_kv_cache *kv = NULL;
    CHECK(make_cache(&rc, &kv, &err) == RK_OK);
    if (!kv) return;
    float *scratch = malloc((size_t)rk_attn_scratch_floats(kv, N_Q) * sizeof(float));
    run_out before = {0}, after = {0};
    before.att = calloc((size_t)N_LAYER * N_HEAD_KV * N_Q * DIM, sizeof(float));
    after.att = calloc((size_t)N_LAYER * N_HEAD_KV * N_Q * DIM, sizeof(float));
    CHECK(step(kv, 0, 500, &before, scratch, NULL, &err) == RK_OK); /* page 0 sealed, page 1 open */
    struct rlimit old, small;
    getrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_IGN);
    small = old;
    small.rlim_cur = (rlim_t)rk_kv_record_bytes(kv); /* the files hold page 0 only */
    setrlimit(RLIMIT_FSIZE, &small);
    rk_status s = step(kv, 500, 100, &after, scratch, NULL, &err); /* seals page 1: the write fails */
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(s == RK_ERR_IO);
    CHECK_MSG(strstr(err.msg, "no space") != NULL, "message: %s", err.msg);
    /* the cache is usable at its previous length: truncate back and the same step works */
    CHECK(rk_kv_truncate(kv, 500, &err) == RK_OK);
    after.n = 0;
    CHECK(step(kv, 500, 100, &after, scratch, NULL, &err) == RK_OK);
    CHECK(rk_kv_acquire(kv, 0, 0, NULL, NULL, &err) == RK_OK);
    rk_kv_free(kv);
    free(scratch);
    free(before.att);
    free(after.att);
}

static void test_budgets(const char *dir) {
    rk_error err;
    rk_kv_cache *kv = NULL;
    run_cfg tiny_hot = {"tq3.5", dir, 0, 1024, 0, NULL};
    CHECK(make_cache(&tiny_hot, &kv, &err) == RK_ERR_NO_MEMORY);
    CHECK_MSG(strstr(err.msg, "--kv-hot") != NULL, "message: %s", err.msg);
    run_cfg tiny_warm = {"tq3.5", dir, 0, 0, 1024, NULL};
    CHECK(make_cache(&tiny_warm, &kv, &err) == RK_ERR_NO_MEMORY);
    CHECK_MSG(strstr(err.msg, "--kv-warm") != NULL, "message: %s", err.msg);
    run_cfg no_disk = {"tq3.5", NULL, 0, 1 << 20, 1 << 20, NULL};
    CHECK(make_cache(&no_disk, &kv, &err) == RK_ERR_NO_MEMORY);
    CHECK_MSG(strstr(err.msg, "--kv-disk") != NULL, "message: %s", err.msg);
    run_cfg small_hot_ram = {"tq3.5", NULL, 0, 1024, 0, NULL}; /* no disk: warm would hold the rest */
    CHECK(make_cache(&small_hot_ram, &kv, &err) == RK_ERR_NO_MEMORY);
    CHECK_MSG(strstr(err.msg, "--kv-hot") != NULL, "message: %s", err.msg);
    run_cfg missing = {"tq3.5", "/nonexistent/ringkv", 0, 0, 0, NULL};
    CHECK(make_cache(&missing, &kv, &err) == RK_ERR_IO);
    CHECK(kv == NULL);
}

/* Truncating into a cold page re-opens it with the values it had. */
static void test_truncate_cold(const char *dir) {
    run_cfg cold = {"q8", dir, 0, 0, 0, NULL}, ram = {"q8", NULL, 0, 0, 0, NULL};
    rk_error err;
    rk_kv_cache *a = NULL, *b = NULL;
    run_out oa = {0}, ob = {0};
    CHECK(make_cache(&cold, &a, &err) == RK_OK && make_cache(&ram, &b, &err) == RK_OK);
    if (!a || !b) return;
    CHECK(drive(a, &oa, NULL, &err) == RK_OK && drive(b, &ob, NULL, &err) == RK_OK);
    CHECK(rk_kv_truncate(a, 3 * RK_KV_PAGE_TOKENS + 17, &err) == RK_OK);
    CHECK(rk_kv_truncate(b, 3 * RK_KV_PAGE_TOKENS + 17, &err) == RK_OK);
    for (int l = 0; l < N_LAYER; l++)
        for (int h = 0; h < N_HEAD_KV; h++)
            CHECK(memcmp(rk_kv_key(a, l, h, 3 * RK_KV_PAGE_TOKENS), rk_kv_key(b, l, h, 3 * RK_KV_PAGE_TOKENS),
                         17 * DIM * sizeof(float)) == 0);
    rk_kv_free(a);
    rk_kv_free(b);
    free(oa.att);
    free(ob.att);
}

int main(void) {
    char dir[] = "/tmp/ringkv-test-kv-tier-XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    test_exact(dir);
    test_corruption(dir);
    test_disk_full(dir);
    test_budgets(dir);
    test_truncate_cold(dir);
    CHECK(rmdir(dir) == 0); /* every store removed its files */
    return rk_test_finish("test-kv-tier");
}
