/*
 * kv-codec-q8-avx2.c — AVX2 kernels of the q8 codec (layout in kv-codec-q8.c), on the shared
 * kernels of kv-codec-int-avx2.h.
 *
 * Scores: the row scale factors out of the dot, q·k = s_t Σ_j q_j c_j, so the loader only
 * sign-extends and converts the codes and s_t is applied once per row and head afterwards.
 * Weighted sum: the loader decodes s_t * c_j (one multiply per 8 elements per row, shared by
 * the heads). Channels past the last multiple of 8 go through scalar code.
 */
#include "kv/kv-codec-int-avx2.h"

static inline __m256 q8_codes8(const rk_kv_codec *c, const uint8_t *row, int64_t j) {
    (void)c;
    return _mm256_cvtepi32_ps(
        _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(row + 2 + j))));
}

static inline float q8_scale(const uint8_t *row) {
    uint16_t h;
    memcpy(&h, row, 2);
    return _cvtsh_ss(h);
}

static inline __m256 q8_load8(const rk_kv_codec *c, const uint8_t *row, int64_t j) {
    return _mm256_mul_ps(_mm256_set1_ps(q8_scale(row)), q8_codes8(c, row, j));
}

void rk_kv_q8_scores_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                          const float *qp, int64_t n_q, float scale, float *out,
                          int64_t out_stride) {
    const int64_t d = c->dim, d8 = d & ~(int64_t)7, rb = rk_kv_q8_row_bytes(d);
    const uint8_t *rows = page + t0 * rb;
    const rk_kv_dot_job jb = {.c = c,
                              .rows = rows,
                              .stride = rb,
                              .n = n,
                              .d8 = d8,
                              .q = qp,
                              .q_stride = d,
                              .n_q = n_q,
                              .out = out,
                              .out_stride = out_stride,
                              .prefetch = true};
    rk_kv_dot_avx2(&jb, q8_codes8);
    for (int64_t t = 0; t < n; t++) {
        const uint8_t *row = rows + t * rb;
        const float st = scale * q8_scale(row);
        for (int64_t g = 0; g < n_q; g++) {
            float s = out[g * out_stride + t];
            for (int64_t j = d8; j < d; j++)
                s += qp[g * d + j] * (float)(int8_t)row[2 + j];
            out[g * out_stride + t] = st * s;
        }
    }
}

void rk_kv_q8_weighted_sum_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                                const float *w, int64_t w_stride, int64_t n_q, float *acc) {
    const int64_t d = c->dim, d8 = d & ~(int64_t)7, rb = rk_kv_q8_row_bytes(d);
    const rk_kv_axpy_job jb = {.c = c,
                               .rows = page + t0 * rb,
                               .stride = rb,
                               .n = n,
                               .d8 = d8,
                               .w = w,
                               .w_stride = w_stride,
                               .n_q = n_q,
                               .acc = acc,
                               .acc_stride = d,
                               .prefetch = true};
    rk_kv_axpy_avx2(&jb, q8_load8);
    rk_kv_weighted_sum_tail(c, rk_kv_q8_rows, page, t0, n, w, w_stride, n_q, d8, acc);
}
