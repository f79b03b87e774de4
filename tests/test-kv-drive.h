/*
 * test-kv-drive.h — a KV cache driven like the forward pass, without a model: rows that are a
 * pure function of (layer, head, position), chunked prefill then decode steps, and per layer
 * seal, acquire, attend (the last position's queries over everything), settle. Two runs with
 * the same rows must give bit-identical attention outputs whatever the tiers, budgets or
 * sealing. Shared by test-kv-tier.c and test-kv-lock.c (static: one copy per test).
 */
#ifndef RK_TEST_KV_DRIVE_H
#define RK_TEST_KV_DRIVE_H

#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "quant/quant.h"
#include "test-util.h"

#define N_LAYER 8
#define N_HEAD_KV 2
#define N_Q 2 /* query heads per KV head */
#define DIM 64
#define N_PAGES 10
#define N_CTX (N_PAGES * RK_KV_PAGE_TOKENS)

static float frand(rk_test_rng *r) { return (float)rk_test_rng_unif(r) * 2.0f - 1.0f; }

/* Key/value of (layer, head, pos): a pure function of its arguments, so every run writes the
 * same rows. */
static void row_of(int64_t layer, int64_t head, int64_t pos, int role, float *out) {
    rk_test_rng rng = {0x9E3779B97F4A7C15ull ^ (uint64_t)(((layer * 131 + head) * 1000003 + pos) * 2 + role)};
    for (int j = 0; j < 4; j++) frand(&rng);
    for (int j = 0; j < DIM; j++) out[j] = frand(&rng) + (j % 7 == 0 ? 2.0f : 0.0f);
}

typedef struct run_cfg {
    const char *codec;
    const char *disk_dir;  /* NULL: no disk tier */
    int direct;
    size_t hot, warm;      /* 0: the least that works (with a disk tier) / no limit */
    const rk_kv_sealer *sealer; /* NULL: plain pages everywhere */
} run_cfg;

typedef struct run_out {
    float *att;            /* (steps, N_LAYER, N_HEAD_KV * N_Q, DIM) */
    int64_t n;
    rk_kv_tier_stats stats;
} run_out;

static rk_status make_cache(const run_cfg *rc, rk_kv_cache **kv, rk_error *err) {
    rk_kv_dims dims = {N_LAYER, N_HEAD_KV, DIM, DIM, N_CTX};
    rk_kv_config cfg = rk_kv_config_f32(rk_cpu_simd_level());
    cfg.seed = 7;
    cfg.n_sink = 4;
    if (rk_kv_codec_parse(rc->codec, &cfg.key_codec, err) || rk_kv_codec_parse(rc->codec, &cfg.value_codec, err))
        return err->code;
    cfg.tiers.disk_dir = rc->disk_dir;
    cfg.tiers.disk_direct = rc->direct;
    cfg.tiers.hot_bytes = rc->hot;
    cfg.tiers.warm_bytes = rc->warm;
    cfg.tiers.sealer = rc->sealer;
    return rk_kv_create(&dims, &cfg, kv, err);
}

/* One forward step over positions [pos0, pos0+n): writes the rows, then per layer seals,
 * acquires, attends the last position's queries over everything, settles. Appends the
 * attention outputs of every layer to out. */
static rk_status step(rk_kv_cache *kv, int64_t pos0, int64_t n, run_out *out, float *scratch, rk_pool *pool,
                      rk_error *err) {
    const rk_attn_ops *ops = rk_attn_get_ops(rk_cpu_simd_level());
    rk_kv_begin_step(kv);
    rk_status s = rk_kv_reserve(kv, pos0 + n, err);
    if (s) return s;
    for (int64_t l = 0; l < N_LAYER; l++) {
        for (int64_t p = pos0; p < pos0 + n; p++)
            for (int64_t h = 0; h < N_HEAD_KV; h++) {
                row_of(l, h, p, 0, rk_kv_key(kv, l, h, p));
                row_of(l, h, p, 1, rk_kv_value(kv, l, h, p));
            }
        s = rk_kv_seal_full_pages(kv, l, pos0 + n, NULL, err);
        if (!s) s = rk_kv_acquire(kv, l, 0, NULL, pool, err);
        if (s) return s;
        int64_t last = pos0 + n - 1;
        for (int64_t h = 0; h < N_HEAD_KV; h++) {
            float q[N_Q * DIM];
            row_of(l + 100, h, last, 2, q);
            row_of(l + 200, h, last, 2, q + DIM);
            float *dst = out->att + (out->n * N_LAYER + l) * N_HEAD_KV * N_Q * DIM + h * N_Q * DIM;
            rk_attn_group(ops, kv, l, h, N_Q, q, 0.125f, 0, last + 1, dst, scratch);
        }
        rk_kv_drop_retired(kv, l);
        rk_kv_settle(kv, l);
    }
    out->n++;
    return RK_OK;
}

#define MAX_STEPS 40

/* Prefill of 5.5 pages in chunks of 300, then decode to 8 pages and a bit, one token a step
 * (only the last 30 decode steps are recorded to keep it quick... every step is recorded). */
static rk_status drive(rk_kv_cache *kv, run_out *out, rk_pool *pool, rk_error *err) {
    float *scratch = malloc((size_t)rk_attn_scratch_floats(kv, N_Q) * sizeof(float));
    out->att = calloc((size_t)MAX_STEPS * N_LAYER * N_HEAD_KV * N_Q * DIM, sizeof(float));
    out->n = 0;
    rk_status s = RK_OK;
    int64_t pos = 0;
    while (!s && pos < 1400) {
        s = step(kv, pos, 300, out, scratch, pool, err);
        pos += 300;
    }
    /* jump ahead untimed-style: big chunks to just below page 8, then single tokens across it */
    while (!s && pos < 8 * RK_KV_PAGE_TOKENS - 3) {
        int64_t n = 8 * RK_KV_PAGE_TOKENS - 3 - pos;
        if (n > 400) n = 400;
        s = step(kv, pos, n, out, scratch, pool, err);
        pos += n;
    }
    for (int i = 0; i < 12 && !s; i++, pos++) s = step(kv, pos, 1, out, scratch, pool, err);
    rk_kv_get_tier_stats(kv, &out->stats);
    free(scratch);
    return s;
}

#endif
