/*
 * test-kv-replicate.c — rk_kv_fill_replicated (kv-replicate.h) on small synthetic caches.
 *   - every replicated page holds exactly the codec bytes (and key bounds) of its source page
 *     (pages 1..k-1 in turn; page 0 when k == 1), in RAM and with a disk tier under budgets
 *     small enough that most copies live only on disk; the tiers' counts add up.
 *   - bad input is refused with a clear message and the cache unchanged: a depth that is not a
 *     whole number of pages or beyond n_ctx, a cache whose tail page is open, released pages
 *     (a sliding window).
 *   - a disk that fills up during the fill (RLIMIT_FSIZE) is an I/O error; the cache is back
 *     at its real pages, bit for bit, and a later fill with room succeeds.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "kv/kv-cache-impl.h"
#include "kv/kv-replicate.h"
#include "quant/quant.h"
#include "test-util.h"

#define N_LAYER 6
#define N_HEAD_KV 2
#define DIM 64
#define P RK_KV_PAGE_TOKENS
#define MAX_PAGES 540 /* > 2 chunks of 256 pages */

static float frand(rk_test_rng *r) { return (float)rk_test_rng_unif(r) * 2.0f - 1.0f; }

typedef struct cfg {
    const char *codec;
    const char *disk_dir; /* NULL: RAM only */
    size_t hot, warm;     /* 0: no limit / the least that works */
    bool bounds;
} cfg;

static rk_status make_cache(const cfg *c, int64_t n_ctx, rk_kv_cache **kv, rk_error *err) {
    rk_kv_dims dims = {N_LAYER, N_HEAD_KV, DIM, DIM, n_ctx};
    rk_kv_config kc = rk_kv_config_f32(rk_cpu_simd_level());
    kc.seed = 3;
    kc.n_sink = 4;
    kc.key_bounds = c->bounds;
    if (rk_kv_codec_parse(c->codec, &kc.key_codec, err) || rk_kv_codec_parse(c->codec, &kc.value_codec, err))
        return err->code;
    kc.tiers.disk_dir = c->disk_dir;
    kc.tiers.hot_bytes = c->hot;
    kc.tiers.warm_bytes = c->warm;
    return rk_kv_create(&dims, &kc, kv, err);
}

/* Writes n random positions from 0 and seals the full pages, as a prefill would. */
static rk_status prefill(rk_kv_cache *kv, int64_t n, rk_error *err) {
    rk_test_rng rng = {0x1234567ull + (uint64_t)n};
    rk_kv_begin_step(kv);
    rk_status s = rk_kv_reserve(kv, n, err);
    for (int64_t l = 0; l < N_LAYER && !s; l++) {
        for (int64_t p = 0; p < n; p++)
            for (int64_t h = 0; h < N_HEAD_KV; h++) {
                float *k = rk_kv_key(kv, l, h, p), *v = rk_kv_value(kv, l, h, p);
                for (int j = 0; j < DIM; j++) k[j] = frand(&rng) + (j % 5 == 0 ? 1.5f : 0.0f), v[j] = frand(&rng);
            }
        s = rk_kv_seal_full_pages(kv, l, n, NULL, err);
        if (!s) s = rk_kv_acquire(kv, l, 0, NULL, NULL, err);
        rk_kv_drop_retired(kv, l);
        rk_kv_settle(kv, l);
    }
    return s;
}

/* The bytes of page i of layer l, all heads, keys then values (reading it back if cold). */
static uint8_t *page_bytes(rk_kv_cache *kv, int64_t l, int64_t i, size_t *n) {
    *n = kv->payload_bytes;
    uint8_t *out = malloc(*n);
    rk_error err;
    kv_page *p = kv_page_at(kv, l, i);
    if (!p->rec && kv_tiers_fetch_now(kv, l, i, &err) != RK_OK) {
        fprintf(stderr, "fetch page %lld of layer %lld: %s\n", (long long)i, (long long)l, err.msg);
        free(out);
        return NULL;
    }
    memcpy(out, p->keys, kv->key_bytes);
    memcpy(out + kv->key_bytes, p->values, kv->payload_bytes - kv->key_bytes);
    return out;
}

/* Every page from k on equals its source; pages below k equal `before` (k pages per layer). */
static void check_copies(rk_kv_cache *kv, int64_t k, int64_t end, uint8_t **before) {
    int bad = 0;
    for (int64_t l = 0; l < N_LAYER; l++) {
        CHECK(kv->n_sealed[l] == end);
        for (int64_t i = 0; i < end && bad < 5; i++) {
            int64_t src = i < k ? i : (k == 1 ? 0 : 1 + (i - k) % (k - 1));
            size_t n;
            uint8_t *got = page_bytes(kv, l, i, &n);
            const uint8_t *want = before[l * k + src];
            if (!got || memcmp(got, want, n) != 0) {
                fprintf(stderr, "layer %lld page %lld differs from source page %lld\n", (long long)l,
                        (long long)i, (long long)src);
                bad++;
            }
            for (int64_t h = 0; h < N_HEAD_KV && kv->bounds; h++) {
                const uint8_t *b = rk_kv_page_bounds(kv, l, h, i), *bs = rk_kv_page_bounds(kv, l, h, src);
                if (!b || !bs || memcmp(b, bs, kv->bounds_bytes) != 0) bad++;
            }
            free(got);
        }
        /* keep RAM within the budgets between layers, as the forward pass does */
        rk_kv_settle(kv, l);
    }
    CHECK(bad == 0);
    CHECK(kv->n_pages == end);
}

static uint8_t **snapshot(rk_kv_cache *kv, int64_t k) {
    uint8_t **b = calloc((size_t)(N_LAYER * k), sizeof *b);
    for (int64_t l = 0; l < N_LAYER; l++)
        for (int64_t i = 0; i < k; i++) {
            size_t n;
            b[l * k + i] = page_bytes(kv, l, i, &n);
        }
    return b;
}

static void free_snapshot(uint8_t **b, int64_t k) {
    for (int64_t i = 0; i < N_LAYER * k; i++) free(b[i]);
    free(b);
}

/* Prefill k pages, replicate to `pages`, check every page. */
static void test_fill(const cfg *c, int64_t k, int64_t pages) {
    rk_error err;
    rk_kv_cache *kv = NULL;
    rk_status s = make_cache(c, MAX_PAGES * P, &kv, &err);
    CHECK_MSG(s == RK_OK, "%s", err.msg);
    if (s) return;
    s = prefill(kv, k * P, &err);
    CHECK_MSG(s == RK_OK, "%s", err.msg);
    uint8_t **before = snapshot(kv, k);
    s = rk_kv_fill_replicated(kv, k * P, pages * P, &err);
    CHECK_MSG(s == RK_OK, "%s %s k=%lld: %s", c->codec, c->disk_dir ? "disk" : "ram", (long long)k, err.msg);
    if (!s) check_copies(kv, k, pages, before);
    rk_kv_tier_stats st;
    rk_kv_get_tier_stats(kv, &st);
    CHECK(st.pages_hot + st.pages_warm + st.pages_cold == N_LAYER * pages);
    if (c->disk_dir) {
        CHECK(st.pages_written == (uint64_t)(N_LAYER * pages));
        /* what the budgets cannot hold lives on disk only */
        int64_t in_ram_max = (int64_t)((c->hot + c->warm) / rk_kv_record_bytes(kv));
        CHECK_MSG(st.pages_cold > 0 && st.pages_cold >= N_LAYER * pages - in_ram_max, "%lld of %lld pages cold",
                  (long long)st.pages_cold, (long long)(N_LAYER * pages));
        CHECK(st.hot_bytes + st.warm_bytes <= c->hot + c->warm);
    }
    /* the cache goes on like any other: one more position, sealed on the next page */
    s = rk_kv_reserve(kv, pages * P + 1, &err);
    CHECK(s == RK_OK && kv->n_pages == pages + 1);
    free_snapshot(before, k);
    rk_kv_free(kv);
}

static void test_bad_input(void) {
    cfg c = {"q4", NULL, 0, 0, false};
    rk_error err;
    rk_kv_cache *kv = NULL;
    CHECK(make_cache(&c, 8 * P, &kv, &err) == RK_OK);
    CHECK(prefill(kv, 2 * P + 10, &err) == RK_OK); /* page 2 open */
    CHECK(rk_kv_fill_replicated(kv, 2 * P, 4 * P, &err) == RK_ERR_INVALID_ARG);
    CHECK_MSG(strstr(err.msg, "sealed") != NULL, "%s", err.msg);
    CHECK(rk_kv_truncate(kv, 2 * P, &err) == RK_OK);
    CHECK(rk_kv_fill_replicated(kv, 2 * P + 1, 4 * P, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_kv_fill_replicated(kv, 0, 4 * P, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_kv_fill_replicated(kv, 2 * P, 4 * P + 7, &err) == RK_ERR_INVALID_ARG);
    CHECK_MSG(strstr(err.msg, "multiple of 256") != NULL, "%s", err.msg);
    CHECK(rk_kv_fill_replicated(kv, 2 * P, 9 * P, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_kv_fill_replicated(kv, 2 * P, P, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_kv_fill_replicated(kv, 3 * P, 4 * P, &err) == RK_ERR_INVALID_ARG); /* holds 2 pages */
    CHECK(kv->n_pages == 2 && kv->n_sealed[0] == 2);
    rk_kv_release_before(kv, 1, P + 3); /* a sliding-window layer frees page 0, keeps page 1 */
    rk_kv_release_before(kv, 2, P + 3);
    CHECK(rk_kv_fill_replicated(kv, 2 * P, 2 * P, &err) == RK_OK); /* nothing to do */
    CHECK(kv->n_pages == 2 && kv->n_released[1] == 1);
    CHECK(kv->n_pages == 2 && kv->n_released[1] == 1);
    CHECK(rk_kv_fill_replicated(NULL, 2 * P, 4 * P, &err) == RK_ERR_INVALID_ARG);
    rk_kv_free(kv);
}

/* Layers in `window` (a bit mask) released their pages before k*P - 300, as sliding-window
 * layers do; replicating to `pages` moves their kept pages to the end and copies the others'. */
static void check_window_fill(rk_kv_cache *kv, unsigned window, int64_t k, int64_t pages, int64_t kept,
                              uint8_t **before) {
    int bad = 0;
    for (int64_t l = 0; l < N_LAYER; l++) {
        const bool win = (window >> l) & 1;
        CHECK(kv->n_sealed[l] == pages);
        CHECK(kv->n_released[l] == (win ? (pages > k ? pages - kept : k - kept) : 0));
        for (int64_t i = kv->n_released[l]; i < pages && bad < 5; i++) {
            int64_t src = win ? (pages > k ? k - kept + (i - (pages - kept)) : i)
                              : (i < k ? i : 1 + (i - k) % (k - 1));
            size_t n;
            uint8_t *got = page_bytes(kv, l, i, &n);
            if (!got || memcmp(got, before[l * k + src], n) != 0) {
                fprintf(stderr, "layer %lld page %lld differs from source page %lld\n", (long long)l,
                        (long long)i, (long long)src);
                bad++;
            }
            for (int64_t h = 0; h < N_HEAD_KV && kv->bounds && !win; h++) {
                const uint8_t *b = rk_kv_page_bounds(kv, l, h, i), *bs = rk_kv_page_bounds(kv, l, h, src);
                if (!b || !bs || memcmp(b, bs, kv->bounds_bytes) != 0) bad++;
            }
            free(got);
        }
        for (int64_t i = 0; i < kv->n_released[l]; i++) CHECK(kv_page_at(kv, l, i)->rec == NULL);
        rk_kv_settle(kv, l);
    }
    CHECK(bad == 0);
    rk_kv_tier_stats st;
    rk_kv_get_tier_stats(kv, &st);
    int64_t n_win = 0;
    for (int64_t l = 0; l < N_LAYER; l++) n_win += (window >> l) & 1;
    const int64_t held = (N_LAYER - n_win) * pages + n_win * kept;
    CHECK_MSG((int64_t)(st.pages_hot + st.pages_warm + st.pages_cold) == held, "%llu pages held, want %lld",
              (unsigned long long)(st.pages_hot + st.pages_warm + st.pages_cold), (long long)held);
    if (st.disk_bytes > 0) /* a disk tier: one record per page held, nothing of released ones */
        CHECK(st.disk_bytes == (uint64_t)held * rk_kv_record_bytes(kv));
    if (n_win > 0 && pages > k) CHECK(rk_kv_first_kept(kv) == (pages - kept) * P);
}

/* Prefill k pages, let the layers in `window` release what lies behind a window, replicate to
 * `pages`; with `fsize_records` > 0 the page files may not grow past that many records first
 * (the fill fails and is undone, then succeeds). */
static void test_window(const cfg *c, unsigned window, int64_t k, int64_t pages, int64_t fsize_records) {
    rk_error err;
    rk_kv_cache *kv = NULL;
    CHECK_MSG(make_cache(c, MAX_PAGES * P, &kv, &err) == RK_OK, "%s", err.msg);
    if (!kv) return;
    CHECK(prefill(kv, k * P, &err) == RK_OK);
    uint8_t **before = snapshot(kv, k);
    const int64_t released = (k * P - 300) / P, kept = k - released;
    for (int64_t l = 0; l < N_LAYER; l++)
        if ((window >> l) & 1) rk_kv_release_before(kv, l, k * P - 300);
    if (window && kept >= 2) { /* one page further would move the kept pages onto themselves */
        CHECK(rk_kv_fill_replicated(kv, k * P, (k + 1) * P, &err) == RK_ERR_INVALID_ARG);
        CHECK_MSG(strstr(err.msg, "sliding-window layer") != NULL && strstr(err.msg, "at least") != NULL,
                  "%s", err.msg);
        CHECK(kv->n_pages == k);
    }
    if (fsize_records > 0) {
        struct rlimit old, small;
        getrlimit(RLIMIT_FSIZE, &old);
        signal(SIGXFSZ, SIG_IGN);
        small = old;
        small.rlim_cur = (rlim_t)(fsize_records * (int64_t)rk_kv_record_bytes(kv));
        setrlimit(RLIMIT_FSIZE, &small);
        rk_status s = rk_kv_fill_replicated(kv, k * P, pages * P, &err);
        setrlimit(RLIMIT_FSIZE, &old);
        CHECK(s == RK_ERR_IO);
        CHECK_MSG(strstr(err.msg, "undone") != NULL, "%s", err.msg);
        CHECK(kv->n_pages == k);
        check_window_fill(kv, window, k, k, kept, before);
    }
    rk_status s = rk_kv_fill_replicated(kv, k * P, pages * P, &err);
    CHECK_MSG(s == RK_OK, "window %#x k=%lld pages=%lld: %s", window, (long long)k, (long long)pages, err.msg);
    if (!s) check_window_fill(kv, window, k, pages, kept, before);
    /* and the cache goes on: a step at the depth, then a truncation back into the window */
    rk_kv_begin_step(kv);
    CHECK(rk_kv_reserve(kv, pages * P + 1, &err) == RK_OK);
    CHECK(rk_kv_truncate(kv, pages * P - 10, &err) == RK_OK);
    free_snapshot(before, k);
    rk_kv_free(kv);
}

static void test_disk_full(const char *dir) {
    cfg c = {"q4", dir, 0, 0, false};
    rk_error err;
    rk_kv_cache *kv = NULL;
    CHECK(make_cache(&c, MAX_PAGES * P, &kv, &err) == RK_OK);
    if (!kv) return;
    const int64_t k = 4;
    CHECK(prefill(kv, k * P, &err) == RK_OK);
    uint8_t **before = snapshot(kv, k);
    struct rlimit old, small;
    getrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_IGN);
    small = old;
    small.rlim_cur = (rlim_t)(300 * rk_kv_record_bytes(kv)); /* the second chunk does not fit */
    setrlimit(RLIMIT_FSIZE, &small);
    rk_status s = rk_kv_fill_replicated(kv, k * P, 530 * P, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(s == RK_ERR_IO);
    CHECK_MSG(strstr(err.msg, "no space") != NULL && strstr(err.msg, "undone") != NULL, "%s", err.msg);
    CHECK(kv->n_pages == k);
    check_copies(kv, k, k, before);
    rk_kv_tier_stats st;
    rk_kv_get_tier_stats(kv, &st);
    CHECK(st.pages_hot + st.pages_warm + st.pages_cold == N_LAYER * k);
    CHECK(st.disk_bytes == (uint64_t)(N_LAYER * k) * rk_kv_record_bytes(kv)); /* copies dropped */
    s = rk_kv_fill_replicated(kv, k * P, 530 * P, &err); /* room again */
    CHECK_MSG(s == RK_OK, "%s", err.msg);
    if (!s) check_copies(kv, k, 530, before);
    free_snapshot(before, k);
    rk_kv_free(kv);
}

/* Sets c's budgets to the least hot that works plus a little, and warm to its least (two layers'
 * pages): most pages then live on disk only. */
static int tight_budgets(cfg *c) {
    rk_error err;
    rk_kv_cache *probe = NULL;
    c->hot = c->warm = 0;
    if (make_cache(c, MAX_PAGES * P, &probe, &err) != RK_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return 0;
    }
    size_t hot, warm;
    rk_kv_min_budgets(probe, &hot, &warm);
    c->hot = hot + 20 * rk_kv_record_bytes(probe);
    c->warm = warm;
    rk_kv_free(probe);
    return 1;
}

int main(void) {
    char dir[] = "/tmp/ringkv-test-kv-replicate-XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    const cfg ram = {"q4", NULL, 0, 0, true}, ram_tq = {"tq3", NULL, 0, 0, false};
    test_fill(&ram, 4, 530);
    test_fill(&ram_tq, 1, 40); /* k == 1: copies of page 0 */
    test_fill(&ram, 2, 2);     /* depth == what it holds: nothing to do */
    cfg disk = {"tq3", dir, 0, 0, true};
    if (tight_budgets(&disk)) test_fill(&disk, 4, 530);
    disk.codec = "q8";
    disk.bounds = false;
    if (tight_budgets(&disk)) test_fill(&disk, 3, 300);
    test_window(&ram, 0x12, 4, 530, 0);      /* layers 1 and 4 slide: 2 pages kept */
    test_window(&ram_tq, 0x3f, 5, 7, 0);     /* every layer slides; the copies just clear them */
    test_window(&ram, 0x12, 4, 4, 0);        /* depth == what it holds */
    disk.codec = "tq3";
    disk.bounds = true;
    if (tight_budgets(&disk)) test_window(&disk, 0x21, 4, 300, 0);
    disk.hot = disk.warm = 0;
    test_window(&disk, 0x3f, 4, 530, 300);  /* every layer slides, and the copies' writes fail first */
    test_bad_input();
    test_disk_full(dir);
    CHECK(rmdir(dir) == 0); /* every store removed its files */
    return rk_test_finish("test-kv-replicate");
}
