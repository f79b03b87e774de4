/*
 * kv-codec-f16.c — the f16 codec: a row (one token's vector of dim elements for one KV head)
 * is dim IEEE binary16 halves, 2 bytes per element; a page is RK_KV_PAGE_TOKENS rows back to
 * back (page_bytes = 512 * dim). Exact up to f16 rounding (relative error <= 2^-11 within the
 * f16 range; larger magnitudes become infinities, as the format has them).
 *
 * The codec works in the model's domain (prepare copies the queries, finish adds the
 * accumulator). The scalar kernels here are the reference (kv-codec-int.h); the AVX2 ones,
 * chosen when c->simd >= RK_SIMD_AVX2, are in kv-codec-f16-avx2.c. Encoding is the same at
 * every SIMD level.
 */
#include <string.h>

#include "kv/kv-codec-int.h"
#include "quant/quant.h"

static void f16_encode(const rk_kv_codec *c, int64_t stream, const float *rows, uint8_t *page) {
    (void)stream;
    for (int64_t i = 0; i < RK_KV_PAGE_TOKENS * c->dim; i++) {
        const uint16_t h = rk_fp32_to_fp16(rows[i]);
        memcpy(page + 2 * i, &h, 2);
    }
}

void rk_kv_f16_rows(const rk_kv_codec *c, const uint8_t *page, int64_t t, int64_t nr, int64_t c0,
                    int64_t cw, float *out, int64_t out_stride) {
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *row = page + 2 * ((t + r) * c->dim + c0);
        for (int64_t j = 0; j < cw; j++) {
            uint16_t h;
            memcpy(&h, row + 2 * j, 2);
            out[r * out_stride + j] = rk_fp16_to_fp32(h);
        }
    }
}

static void f16_decode(const rk_kv_codec *c, int64_t stream, const uint8_t *page, int64_t t0,
                       int64_t n, float *out) {
    (void)stream;
    rk_kv_decode_rows(c, rk_kv_f16_rows, page, t0, n, out);
}

static void f16_scores(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                       const float *qp, int64_t n_q, float scale, float *out, int64_t out_stride) {
    rk_kv_scores_ref(c, rk_kv_f16_rows, page, t0, n, qp, n_q, scale, out, out_stride);
}

static void f16_weighted_sum(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                             const float *w, int64_t w_stride, int64_t n_q, float *acc) {
    rk_kv_weighted_sum_ref(c, rk_kv_f16_rows, page, t0, n, w, w_stride, n_q, acc);
}

static const rk_kv_codec_ops f16_ops_scalar = {
    .encode = f16_encode,
    .decode = f16_decode,
    .prepare = rk_kv_f32_prepare,
    .scores = f16_scores,
    .weighted_sum = f16_weighted_sum,
    .finish = rk_kv_f32_finish,
};
static const rk_kv_codec_ops f16_ops_avx2 = {
    .encode = f16_encode,
    .decode = f16_decode,
    .prepare = rk_kv_f32_prepare,
    .scores = rk_kv_f16_scores_avx2,
    .weighted_sum = rk_kv_f16_weighted_sum_avx2,
    .finish = rk_kv_f32_finish,
};

rk_status rk_kv_codec_init_f16(rk_kv_codec *c, rk_error *err) {
    (void)err;
    c->page_bytes = (size_t)(RK_KV_PAGE_TOKENS * c->dim) * 2;
    c->prep_floats = c->dim;
    c->ops = c->simd >= RK_SIMD_AVX2 ? &f16_ops_avx2 : &f16_ops_scalar;
    return RK_OK;
}
