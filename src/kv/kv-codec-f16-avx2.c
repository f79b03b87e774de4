/*
 * kv-codec-f16-avx2.c — AVX2/F16C kernels of the f16 codec (layout in kv-codec-f16.c): the
 * shared kernels of kv-codec-int-avx2.h with a loader that widens 8 halves with vcvtph2ps.
 * Channels past the last multiple of 8 (dim % 8 != 0) go through the scalar decoder.
 */
#include "kv/kv-codec-int-avx2.h"

static inline __m256 f16_load8(const rk_kv_codec *c, const uint8_t *row, int64_t j) {
    (void)c;
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * j)));
}

void rk_kv_f16_scores_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                           const float *qp, int64_t n_q, float scale, float *out,
                           int64_t out_stride) {
    const int64_t d = c->dim, d8 = d & ~(int64_t)7;
    const rk_kv_dot_job jb = {.c = c,
                              .rows = page + t0 * 2 * d,
                              .stride = 2 * d,
                              .n = n,
                              .d8 = d8,
                              .q = qp,
                              .q_stride = d,
                              .n_q = n_q,
                              .out = out,
                              .out_stride = out_stride,
                              .prefetch = true};
    rk_kv_dot_avx2(&jb, f16_load8);
    float k[8];
    for (int64_t t = 0; d8 < d && t < n; t++) { /* channel tail */
        rk_kv_f16_rows(c, page, t0 + t, 1, d8, d - d8, k, 8);
        for (int64_t g = 0; g < n_q; g++)
            for (int64_t j = d8; j < d; j++)
                out[g * out_stride + t] += qp[g * d + j] * k[j - d8];
    }
    for (int64_t g = 0; g < n_q; g++)
        for (int64_t t = 0; t < n; t++)
            out[g * out_stride + t] *= scale;
}

void rk_kv_f16_weighted_sum_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                                 const float *w, int64_t w_stride, int64_t n_q, float *acc) {
    const int64_t d = c->dim, d8 = d & ~(int64_t)7;
    const rk_kv_axpy_job jb = {.c = c,
                               .rows = page + t0 * 2 * d,
                               .stride = 2 * d,
                               .n = n,
                               .d8 = d8,
                               .w = w,
                               .w_stride = w_stride,
                               .n_q = n_q,
                               .acc = acc,
                               .acc_stride = d,
                               .prefetch = true};
    rk_kv_axpy_avx2(&jb, f16_load8);
    rk_kv_weighted_sum_tail(c, rk_kv_f16_rows, page, t0, n, w, w_stride, n_q, d8, acc);
}
