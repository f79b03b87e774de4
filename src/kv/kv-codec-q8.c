/*
 * kv-codec-q8.c — the q8 codec: symmetric int8 per row (one token of one KV head).
 *
 *   row  = f16 scale, then dim int8 codes           (dim + 2 bytes)
 *   page = RK_KV_PAGE_TOKENS rows back to back      (256 * (dim + 2) bytes)
 *
 * scale = max_j |x_j| / 127 (stored as the nearest f16, s); code_j = round(x_j / s) clamped
 * to [-127, 127]; the decoded value is s * code_j. The error of an element is at most s / 2
 * (the f16 rounding of s moves max|x| / s by at most 127 * 2^-11 < 0.5, so nothing clamps).
 * A row of zeros has s = 0 and decodes to zeros.
 *
 * The codec works in the model's domain (prepare copies the queries, finish adds the
 * accumulator). Scalar reference kernels here, AVX2 ones in kv-codec-q8-avx2.c; the encoding
 * is the same at every SIMD level.
 */
#include <math.h>
#include <string.h>

#include "kv/kv-codec-int.h"
#include "quant/quant.h"

static void q8_encode_row(const float *x, int64_t d, uint8_t *row) {
    float amax = 0.0f;
    for (int64_t j = 0; j < d; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    const uint16_t h = rk_fp32_to_fp16(fminf(amax / 127.0f, 65504.0f));
    const float s = rk_fp16_to_fp32(h);
    memcpy(row, &h, 2);
    for (int64_t j = 0; j < d; j++) {
        const float q = s > 0.0f ? roundf(x[j] / s) : 0.0f;
        row[2 + j] = (uint8_t)(int8_t)fminf(fmaxf(q, -127.0f), 127.0f); /* NaN -> -127 */
    }
}

static void q8_encode(const rk_kv_codec *c, int64_t stream, const float *rows, uint8_t *page) {
    (void)stream;
    const int64_t d = c->dim, rb = rk_kv_q8_row_bytes(d);
    for (int64_t t = 0; t < RK_KV_PAGE_TOKENS; t++)
        q8_encode_row(rows + t * d, d, page + t * rb);
}

void rk_kv_q8_rows(const rk_kv_codec *c, const uint8_t *page, int64_t t, int64_t nr, int64_t c0,
                   int64_t cw, float *out, int64_t out_stride) {
    const int64_t rb = rk_kv_q8_row_bytes(c->dim);
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *row = page + (t + r) * rb;
        uint16_t h;
        memcpy(&h, row, 2);
        const float s = rk_fp16_to_fp32(h);
        for (int64_t j = 0; j < cw; j++)
            out[r * out_stride + j] = s * (float)(int8_t)row[2 + c0 + j];
    }
}

static void q8_decode(const rk_kv_codec *c, int64_t stream, const uint8_t *page, int64_t t0,
                      int64_t n, float *out) {
    (void)stream;
    rk_kv_decode_rows(c, rk_kv_q8_rows, page, t0, n, out);
}

static void q8_scores(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                      const float *qp, int64_t n_q, float scale, float *out, int64_t out_stride) {
    rk_kv_scores_ref(c, rk_kv_q8_rows, page, t0, n, qp, n_q, scale, out, out_stride);
}

static void q8_weighted_sum(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                            const float *w, int64_t w_stride, int64_t n_q, float *acc) {
    rk_kv_weighted_sum_ref(c, rk_kv_q8_rows, page, t0, n, w, w_stride, n_q, acc);
}

static const rk_kv_codec_ops q8_ops_scalar = {
    .encode = q8_encode,
    .decode = q8_decode,
    .prepare = rk_kv_f32_prepare,
    .scores = q8_scores,
    .weighted_sum = q8_weighted_sum,
    .finish = rk_kv_f32_finish,
};
static const rk_kv_codec_ops q8_ops_avx2 = {
    .encode = q8_encode,
    .decode = q8_decode,
    .prepare = rk_kv_f32_prepare,
    .scores = rk_kv_q8_scores_avx2,
    .weighted_sum = rk_kv_q8_weighted_sum_avx2,
    .finish = rk_kv_f32_finish,
};

rk_status rk_kv_codec_init_q8(rk_kv_codec *c, rk_error *err) {
    (void)err;
    c->page_bytes = (size_t)(RK_KV_PAGE_TOKENS * rk_kv_q8_row_bytes(c->dim));
    c->prep_floats = c->dim;
    c->ops = c->simd >= RK_SIMD_AVX2 ? &q8_ops_avx2 : &q8_ops_scalar;
    return RK_OK;
}
