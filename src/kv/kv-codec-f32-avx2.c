/*
 * kv-codec-f32-avx2.c — AVX2/FMA kernels of the f32 codec: scores of 4 keys at a time per
 * query, and a weighted sum of value rows that keeps 64 output dimensions in registers across
 * the rows (the accumulator is loaded and stored once per call, not once per row). The page's
 * rows stay in cache across the n_q query heads of a GQA group.
 */
#include <immintrin.h>

#include "kv/kv-codec-f32.h"
#include "quant/quant-simd-avx2.h"

static void scores_one(const float *q, const float *k, int64_t n, int64_t dk, float scale,
                       float *out) {
    const int64_t dk8 = dk & ~(int64_t)7;
    int64_t t = 0;
    for (; t + 4 <= n; t += 4) {
        const float *k0 = k + t * dk, *k1 = k0 + dk, *k2 = k1 + dk, *k3 = k2 + dk;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t i = 0; i < dk8; i += 8) {
            const __m256 qv = _mm256_loadu_ps(q + i);
            a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + i), a0);
            a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k1 + i), a1);
            a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k2 + i), a2);
            a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k3 + i), a3);
        }
        float s0 = rk_hsum_ps(a0), s1 = rk_hsum_ps(a1), s2 = rk_hsum_ps(a2), s3 = rk_hsum_ps(a3);
        for (int64_t i = dk8; i < dk; i++) {
            s0 += q[i] * k0[i];
            s1 += q[i] * k1[i];
            s2 += q[i] * k2[i];
            s3 += q[i] * k3[i];
        }
        out[t] = scale * s0;
        out[t + 1] = scale * s1;
        out[t + 2] = scale * s2;
        out[t + 3] = scale * s3;
    }
    for (; t < n; t++) {
        const float *kt = k + t * dk;
        __m256 a = _mm256_setzero_ps();
        for (int64_t i = 0; i < dk8; i += 8)
            a = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(kt + i), a);
        float s = rk_hsum_ps(a);
        for (int64_t i = dk8; i < dk; i++) s += q[i] * kt[i];
        out[t] = scale * s;
    }
}

void rk_kv_f32_scores_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                           const float *qp, int64_t n_q, float scale, float *out,
                           int64_t out_stride) {
    const int64_t d = c->dim;
    const float *k = (const float *)page + t0 * d;
    for (int64_t g = 0; g < n_q; g++) scores_one(qp + g * d, k, n, d, scale, out + g * out_stride);
}

static void weighted_sum_one(float *o, const float *w, const float *v, int64_t n, int64_t dv) {
    int64_t j0 = 0;
    for (; j0 + 64 <= dv; j0 += 64) { /* 8 accumulators stay in registers over the rows */
        __m256 acc[8];
        for (int r = 0; r < 8; r++) acc[r] = _mm256_loadu_ps(o + j0 + 8 * r);
        for (int64_t t = 0; t < n; t++) {
            const __m256 wt = _mm256_set1_ps(w[t]);
            const float *vt = v + t * dv + j0;
            for (int r = 0; r < 8; r++) acc[r] = _mm256_fmadd_ps(wt, _mm256_loadu_ps(vt + 8 * r), acc[r]);
        }
        for (int r = 0; r < 8; r++) _mm256_storeu_ps(o + j0 + 8 * r, acc[r]);
    }
    for (; j0 + 8 <= dv; j0 += 8) {
        __m256 acc = _mm256_loadu_ps(o + j0);
        for (int64_t t = 0; t < n; t++)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(w[t]), _mm256_loadu_ps(v + t * dv + j0), acc);
        _mm256_storeu_ps(o + j0, acc);
    }
    for (; j0 < dv; j0++)
        for (int64_t t = 0; t < n; t++) o[j0] += w[t] * v[t * dv + j0];
}

void rk_kv_f32_weighted_sum_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0,
                                 int64_t n, const float *w, int64_t w_stride, int64_t n_q,
                                 float *acc) {
    const int64_t d = c->dim;
    const float *v = (const float *)page + t0 * d;
    for (int64_t g = 0; g < n_q; g++) weighted_sum_one(acc + g * d, w + g * w_stride, v, n, d);
}
