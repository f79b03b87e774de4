/*
 * kv-codec-f32.c — the f32 codec: a page is RK_KV_PAGE_TOKENS rows of dim floats, stored as
 * is. Every cache's open tail page uses it, whatever codec full pages get. Its kernels are the
 * reference shape the other codecs follow: a scalar version here and AVX2 in -avx2.c.
 */
#include "kv/kv-codec-f32.h"

#include <string.h>

#include "quant/quant.h"

static void f32_encode(const rk_kv_codec *c, int64_t stream, const float *rows, uint8_t *page) {
    (void)stream;
    memcpy(page, rows, (size_t)(RK_KV_PAGE_TOKENS * c->dim) * sizeof(float));
}

static void f32_decode(const rk_kv_codec *c, int64_t stream, const uint8_t *page, int64_t t0,
                       int64_t n, float *out) {
    (void)stream;
    memcpy(out, (const float *)page + t0 * c->dim, (size_t)(n * c->dim) * sizeof(float));
}

void rk_kv_f32_prepare(const rk_kv_codec *c, int64_t stream, const float *q, int64_t n_q,
                       float *qp) {
    (void)stream;
    memcpy(qp, q, (size_t)(n_q * c->dim) * sizeof(float));
}

void rk_kv_f32_finish(const rk_kv_codec *c, int64_t stream, const float *acc, int64_t n_q,
                      float *o) {
    (void)stream;
    for (int64_t i = 0; i < n_q * c->dim; i++) o[i] += acc[i];
}

static void f32_scores(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                       const float *qp, int64_t n_q, float scale, float *out, int64_t out_stride) {
    const int64_t d = c->dim;
    const float *k = (const float *)page + t0 * d;
    for (int64_t g = 0; g < n_q; g++)
        for (int64_t t = 0; t < n; t++) {
            float s = 0.0f;
            for (int64_t i = 0; i < d; i++) s += qp[g * d + i] * k[t * d + i];
            out[g * out_stride + t] = scale * s;
        }
}

static void f32_weighted_sum(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                             const float *w, int64_t w_stride, int64_t n_q, float *acc) {
    const int64_t d = c->dim;
    const float *v = (const float *)page + t0 * d;
    for (int64_t g = 0; g < n_q; g++)
        for (int64_t t = 0; t < n; t++)
            for (int64_t j = 0; j < d; j++) acc[g * d + j] += w[g * w_stride + t] * v[t * d + j];
}

static const rk_kv_codec_ops f32_ops_scalar = {f32_encode, f32_decode, rk_kv_f32_prepare,
                                               f32_scores, f32_weighted_sum, rk_kv_f32_finish};
static const rk_kv_codec_ops f32_ops_avx2 = {f32_encode, f32_decode, rk_kv_f32_prepare,
                                             rk_kv_f32_scores_avx2, rk_kv_f32_weighted_sum_avx2,
                                             rk_kv_f32_finish};

rk_status rk_kv_codec_init_f32(rk_kv_codec *c, rk_error *err) {
    (void)err;
    c->page_bytes = (size_t)(RK_KV_PAGE_TOKENS * c->dim) * sizeof(float);
    c->prep_floats = c->dim;
    c->ops = c->simd >= RK_SIMD_AVX2 ? &f32_ops_avx2 : &f32_ops_scalar;
    return RK_OK;
}
