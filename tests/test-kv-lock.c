/*
 * test-kv-lock.c — warm pages are sealed in RAM (kv-lock.c) with the server's real sealer
 * (libsodium XChaCha20-Poly1305, server/seal.h), and attention stays exact:
 *   - a cache with a small hot budget (most pages warm), with and without a disk tier, gives
 *     attention outputs bit-identical to a plain cache with no tiers, for f16 and tq3.5, with
 *     the pages opened on a thread pool and on one thread;
 *   - every warm page's bytes in RAM are ciphertext (they differ from the plain cache's page
 *     almost everywhere), every hot page is the plain page, and the clear buffer that opened
 *     pages for attention holds only zeros between layers;
 *   - a byte flipped in a locked page in RAM is an error naming the page and layer, the page is
 *     never served, and once repaired the cache reads on with the same results;
 *   - a snapshot of a locked cache loads into a plain one and reads the same;
 *   - truncating into a locked page re-opens it with the values it had.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "kv/kv-cache-impl.h"
#include "server/seal.h"
#include "test-kv-drive.h"
#include "test-mem-stream.h"

#define END_POS (8 * RK_KV_PAGE_TOKENS - 3 + 12) /* where drive() stops */
#define ATT_FLOATS (N_LAYER * N_HEAD_KV * N_Q * DIM)

/* The least hot budget of this cache shape with the codec (open pages, sinks, pinned pages). */
static size_t least_hot(const char *codec, const char *dir) {
    run_cfg rc = {codec, dir, 0, 0, 0, NULL};
    rk_kv_cache *kv = NULL;
    rk_error err;
    size_t hot = 0, warm = 0;
    if (make_cache(&rc, &kv, &err) == RK_OK) rk_kv_min_budgets(kv, &hot, &warm);
    rk_kv_free(kv);
    return hot;
}

/* Bytes at which a and b agree. */
static size_t same_bytes(const uint8_t *a, const uint8_t *b, size_t n) {
    size_t same = 0;
    for (size_t i = 0; i < n; i++) same += a[i] == b[i];
    return same;
}

/* Warm pages of `kv` are locked ciphertext, hot ones the plain pages of `ref`; returns the
 * number of locked pages seen. */
static int64_t check_pages(const rk_kv_cache *kv, const rk_kv_cache *ref, const char *what) {
    int64_t locked = 0;
    for (int64_t l = 0; l < N_LAYER; l++)
        for (int64_t i = kv->n_released[l]; i < kv->n_sealed[l]; i++) {
            const kv_page *p = kv_page_at(kv, l, i), *q = kv_page_at(ref, l, i);
            if (!p->rec) continue; /* cold: on disk, sealed by the store */
            const uint8_t *got = p->rec + kv->payload_off, *plain = q->rec + ref->payload_off;
            if (p->tier == KV_TIER_WARM) {
                CHECK_MSG(p->locked && !p->keys, "%s: warm page %lld of layer %lld is not locked", what, (long long)i,
                          (long long)l);
                size_t same = same_bytes(got, plain, kv->payload_bytes);
                CHECK_MSG(same < kv->payload_bytes / 32, "%s: warm page %lld of layer %lld: %zu of %zu bytes plain",
                          what, (long long)i, (long long)l, same, kv->payload_bytes);
                locked++;
            } else {
                CHECK_MSG(!p->locked && memcmp(got, plain, kv->payload_bytes) == 0,
                          "%s: hot page %lld of layer %lld is not the plain page", what, (long long)i, (long long)l);
            }
        }
    if (kv->tiers.clear) {
        size_t n = (size_t)kv->max_pages * kv->payload_bytes, nonzero = 0;
        for (size_t j = 0; j < n; j++) nonzero += kv->tiers.clear[j] != 0;
        CHECK_MSG(nonzero == 0, "%s: %zu bytes of opened pages left in the clear buffer", what, nonzero);
    }
    return locked;
}

/* One more decode step at END_POS on both caches: the same outputs. */
static void check_next_step(rk_kv_cache *kv, rk_kv_cache *ref, int64_t pos, rk_pool *pool, const char *what) {
    rk_error err;
    run_out a = {calloc(ATT_FLOATS, sizeof(float)), 0, {0}}, b = {calloc(ATT_FLOATS, sizeof(float)), 0, {0}};
    float *scratch = malloc((size_t)rk_attn_scratch_floats(ref, N_Q) * sizeof(float));
    rk_status s = step(kv, pos, 1, &a, scratch, pool, &err);
    CHECK_MSG(s == RK_OK, "%s: %s", what, err.msg);
    CHECK(step(ref, pos, 1, &b, scratch, NULL, &err) == RK_OK);
    if (!s) CHECK_MSG(memcmp(a.att, b.att, ATT_FLOATS * sizeof(float)) == 0, "%s: attention differs", what);
    free(scratch);
    free(a.att);
    free(b.att);
}

/* Flips one byte of a locked page in RAM: the next step fails naming it; repaired, it reads on. */
static void check_tamper(rk_kv_cache *kv, rk_kv_cache *ref, rk_pool *pool) {
    kv_page *victim = NULL;
    int64_t vl = -1, vi = -1;
    for (int64_t l = 0; l < N_LAYER && !victim; l++)
        for (int64_t i = 1; i < kv->n_sealed[l] && !victim; i++)
            if (kv_page_at(kv, l, i)->locked && kv_page_at(kv, l, i)->rec) {
                victim = kv_page_at(kv, l, i);
                vl = l;
                vi = i;
            }
    CHECK(victim != NULL);
    if (!victim) return;
    uint8_t *byte = victim->rec + kv->payload_off + kv->payload_bytes / 3;
    *byte ^= 0x10;
    float *scratch = malloc((size_t)rk_attn_scratch_floats(kv, N_Q) * sizeof(float));
    run_out a = {calloc(ATT_FLOATS, sizeof(float)), 0, {0}};
    rk_error err;
    rk_status s = step(kv, END_POS, 1, &a, scratch, pool, &err);
    char want[64];
    snprintf(want, sizeof want, "page %lld of layer %lld", (long long)vi, (long long)vl);
    CHECK_MSG(s == RK_ERR_IO && strstr(err.msg, want) && strstr(err.msg, "warm tier"), "status %d: %s", (int)s,
              s ? err.msg : "no error");
    CHECK(victim->locked); /* not served, still sealed */
    *byte ^= 0x10;
    CHECK(rk_kv_truncate(kv, END_POS, &err) == RK_OK); /* the failed step wrote rows of the layers before */
    check_next_step(kv, ref, END_POS, pool, "after a repaired page");
    free(scratch);
    free(a.att);
}

static void check_snapshot(rk_kv_cache *kv, rk_kv_cache *ref, const char *codec) {
    mem_stream m = {0};
    rk_error err;
    rk_status s = rk_kv_save(kv, END_POS, mem_write, &m, &err);
    CHECK_MSG(s == RK_OK, "save: %s", err.msg);
    run_cfg plain = {codec, NULL, 0, 0, 0, NULL};
    rk_kv_cache *loaded = NULL;
    int64_t n = 0;
    CHECK(make_cache(&plain, &loaded, &err) == RK_OK);
    if (!s && loaded) {
        s = rk_kv_load(loaded, mem_read, &m, &n, &err);
        CHECK_MSG(s == RK_OK && n == END_POS, "load: %s", s ? err.msg : "wrong length");
        if (!s) check_next_step(loaded, ref, END_POS, NULL, "a snapshot of locked pages");
    }
    rk_kv_free(loaded);
    free(m.data);
}

/* The warm-sealed cache opens its pages on `pool`, the disk-sealed one on this thread. */
static void test_locked(const rk_kv_sealer *sealer, const char *dir, rk_pool *pool) {
    const char *codecs[] = {"f16", "tq3.5"};
    for (int c = 0; c < 2; c++) {
        const size_t hot = least_hot(codecs[c], NULL) + 2 * (size_t)N_LAYER * RK_KV_PAGE_TOKENS * N_HEAD_KV * DIM;
        run_cfg plain = {codecs[c], NULL, 0, 0, 0, NULL};
        run_cfg ram = {codecs[c], NULL, 0, hot, 0, sealer};   /* no disk: warm is the rest of RAM */
        run_cfg disk = {codecs[c], dir, 0, 0, 0, sealer};     /* the least budgets: most pages cold */
        const run_cfg *cfgs[3] = {&plain, &ram, &disk};
        const char *names[3] = {"plain", "warm sealed", "disk sealed"};
        rk_kv_cache *kv[3] = {NULL, NULL, NULL};
        run_out out[3] = {{0}, {0}, {0}};
        rk_error err;
        int ok = 1;
        for (int k = 0; k < 3 && ok; k++) {
            rk_status s = make_cache(cfgs[k], &kv[k], &err);
            if (!s) s = drive(kv[k], &out[k], k == 1 ? pool : NULL, &err);
            CHECK_MSG(s == RK_OK, "%s %s: %s", codecs[c], names[k], err.msg);
            ok = s == RK_OK;
        }
        if (ok) {
            const size_t bytes = (size_t)out[0].n * ATT_FLOATS * sizeof(float);
            for (int k = 1; k < 3; k++) {
                const rk_kv_tier_stats *t = &out[k].stats;
                CHECK(out[k].n == out[0].n);
                CHECK_MSG(memcmp(out[0].att, out[k].att, bytes) == 0, "%s %s: attention differs", codecs[c], names[k]);
                int64_t locked = check_pages(kv[k], kv[0], names[k]);
                printf("%-6s %-11s: %lld hot, %lld warm (%lld locked in RAM), %lld cold; %llu locks, %llu opens, "
                       "%.4f s sealing\n",
                       codecs[c], names[k], (long long)t->pages_hot, (long long)t->pages_warm, (long long)locked,
                       (long long)t->pages_cold, (unsigned long long)t->pages_locked,
                       (unsigned long long)t->pages_unlocked, t->ram_seal_seconds);
                CHECK_MSG(t->pages_locked > 0 && t->pages_unlocked > 0, "%s %s: nothing was locked", codecs[c],
                          names[k]);
            }
            CHECK_MSG(check_pages(kv[1], kv[0], "warm sealed") > N_LAYER, "too few warm pages");
            check_snapshot(kv[1], kv[0], codecs[c]);
            check_tamper(kv[1], kv[0], pool);
            /* truncating into a locked page opens it: the same rows as the plain cache's */
            const int64_t cut = 3 * RK_KV_PAGE_TOKENS + 17;
            CHECK(kv_page_at(kv[1], 2, 3)->locked);
            CHECK(rk_kv_truncate(kv[1], cut, &err) == RK_OK && rk_kv_truncate(kv[0], cut, &err) == RK_OK);
            for (int l = 0; l < N_LAYER; l++)
                for (int h = 0; h < N_HEAD_KV; h++)
                    CHECK(memcmp(rk_kv_key(kv[1], l, h, 3 * RK_KV_PAGE_TOKENS),
                                 rk_kv_key(kv[0], l, h, 3 * RK_KV_PAGE_TOKENS), 17 * DIM * sizeof(float)) == 0);
            check_next_step(kv[1], kv[0], cut, pool, "after truncating into a locked page");
        }
        for (int k = 0; k < 3; k++) {
            rk_kv_free(kv[k]);
            free(out[k].att);
        }
    }
}

int main(void) {
    if (sodium_init() < 0) {
        fprintf(stderr, "test-kv-lock: libsodium does not initialise\n");
        return 1;
    }
    char dir[] = "/tmp/ringkv-test-kv-lock-XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    rk_seal_key *key = NULL;
    rk_pool *pool = NULL;
    rk_error err;
    CHECK(rk_seal_key_create("0123456789abcdef0123456789abcdef", &key, &err) == RK_OK);
    CHECK(rk_pool_create(2, &pool, &err) == RK_OK);
    if (key && pool) test_locked(rk_seal_key_sealer(key), dir, pool);
    rk_seal_key_shred(key);
    rk_pool_free(pool);
    CHECK(rmdir(dir) == 0);
    return rk_test_finish("test-kv-lock");
}
