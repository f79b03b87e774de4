/*
 * kv-codec-q4.c — the q4 codec (KIVI): asymmetric 4-bit codes, keys quantised per channel and
 * values per token, because key outliers live in fixed channels while values have none.
 *
 * Both roles: for a set of values x with minimum lo and maximum hi, the stored min m is lo
 * rounded down to an f16 (so x - m >= 0 always) and the stored scale s is (hi - m) / 15
 * rounded to the nearest f16; code = round((x - m) / s) in [0, 15] and the decoded value is
 * s * code + m. The error of an element is at most s / 2 plus f16 effects far below it (the
 * rounding of s moves (hi - m) / s by at most 15 * 2^-11, so hi never clamps). Values beyond
 * the f16 range saturate at +-65504.
 *
 * Codes of a row are dim / 2 bytes: each block of 32 channels is 16 bytes, byte k holding
 * channel k in its low nibble and channel k + 16 in its high nibble (rk_kv_q4_code).
 *
 * Keys (per channel): the page's 256 rows form 4 groups of 64 tokens; a group is
 *     dim pairs (f16 scale, f16 min), one per channel        4 * dim bytes
 *     the group's 64 rows of codes, row-major                 64 * dim / 2 bytes
 * so page_bytes = 144 * dim and 4.5 bits per element.
 * Values (per token): a row is dim / G pairs (f16 scale, f16 min), one per group of G channels
 * (G = 64 when dim % 64 == 0, else 32), then the row's dim / 2 bytes of codes; page = 256 rows
 * back to back: 4.5 bits per element with G = 64, 5 with G = 32.
 * Both need dim % 32 == 0 (RK_ERR_UNSUPPORTED otherwise).
 *
 * The codec works in the model's domain. Scalar reference kernels here (they decode values);
 * the AVX2 ones are in kv-codec-q4-avx2.c, where the keys' scores fold the scale and min into
 * the query instead. The encoding is the same at every SIMD level.
 */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "kv/kv-codec-int.h"
#include "quant/quant.h"

/* v rounded down to an f16, saturating at +-65504 (a NaN stays NaN). */
static uint16_t f16_floor(float v) {
    if (v > 65504.0f) return 0x7BFF;
    if (v < -65504.0f) return 0xFBFF;
    uint16_t h = rk_fp32_to_fp16(v);
    if (rk_fp16_to_fp32(h) > v)
        h = (h & 0x8000) ? (uint16_t)(h + 1) : (h ? (uint16_t)(h - 1) : 0x8001);
    return h;
}

/* The scale and min of the n values x[i * stride]: hdr = {f16 scale, f16 min}, *s and *m the
 * same as floats. */
static void q4_params(const float *x, int64_t n, int64_t stride, uint8_t hdr[4], float *s,
                      float *m) {
    float lo = x[0], hi = x[0];
    for (int64_t i = 1; i < n; i++) {
        lo = fminf(lo, x[i * stride]);
        hi = fmaxf(hi, x[i * stride]);
    }
    const uint16_t mh = f16_floor(lo);
    *m = rk_fp16_to_fp32(mh);
    const uint16_t sh = rk_fp32_to_fp16(fminf((hi - *m) / 15.0f, 65504.0f));
    *s = rk_fp16_to_fp32(sh);
    memcpy(hdr, &sh, 2);
    memcpy(hdr + 2, &mh, 2);
}

/* Stores the code of x for (s, m) as channel j of a row's codes (which start zeroed). */
static void q4_put(uint8_t *codes, int64_t j, float x, float s, float m) {
    const float q = s > 0.0f ? roundf((x - m) / s) : 0.0f;
    const int code = (int)fminf(fmaxf(q, 0.0f), 15.0f); /* NaN -> 0 */
    codes[rk_kv_q4_byte(j)] |= (uint8_t)((j % 32) < 16 ? code : code << 4);
}

static void q4k_encode(const rk_kv_codec *c, int64_t stream, const float *rows, uint8_t *page) {
    (void)stream;
    const int64_t d = c->dim, gb = rk_kv_q4_key_group_bytes(d);
    float s[RK_KV_CHUNK], m[RK_KV_CHUNK];
    for (int64_t gi = 0; gi < RK_KV_PAGE_TOKENS / RK_KV_Q4_KEY_GROUP; gi++) {
        uint8_t *grp = page + gi * gb, *codes = grp + 4 * d;
        const float *x = rows + gi * RK_KV_Q4_KEY_GROUP * d;
        memset(codes, 0, (size_t)(RK_KV_Q4_KEY_GROUP * d / 2));
        for (int64_t c0 = 0; c0 < d; c0 += RK_KV_CHUNK) {
            const int64_t cw = rk_kv_min64(RK_KV_CHUNK, d - c0);
            for (int64_t j = 0; j < cw; j++)
                q4_params(x + c0 + j, RK_KV_Q4_KEY_GROUP, d, grp + 4 * (c0 + j), &s[j], &m[j]);
            for (int64_t t = 0; t < RK_KV_Q4_KEY_GROUP; t++)
                for (int64_t j = 0; j < cw; j++)
                    q4_put(codes + t * (d / 2), c0 + j, x[t * d + c0 + j], s[j], m[j]);
        }
    }
}

static void q4v_encode(const rk_kv_codec *c, int64_t stream, const float *rows, uint8_t *page) {
    (void)stream;
    const int64_t d = c->dim, G = rk_kv_q4_value_group(d), rb = rk_kv_q4_value_row_bytes(d);
    for (int64_t t = 0; t < RK_KV_PAGE_TOKENS; t++) {
        uint8_t *row = page + t * rb, *codes = row + 4 * (d / G);
        const float *x = rows + t * d;
        memset(codes, 0, (size_t)(d / 2));
        for (int64_t k = 0; k < d / G; k++) {
            float s, m;
            q4_params(x + k * G, G, 1, row + 4 * k, &s, &m);
            for (int64_t j = k * G; j < (k + 1) * G; j++)
                q4_put(codes, j, x[j], s, m);
        }
    }
}

static float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return rk_fp16_to_fp32(h);
}

/* Rows [t, t + nr) may cross 64-token groups: each row finds its own group. */
void rk_kv_q4k_rows(const rk_kv_codec *c, const uint8_t *page, int64_t t, int64_t nr, int64_t c0,
                    int64_t cw, float *out, int64_t out_stride) {
    const int64_t d = c->dim, gb = rk_kv_q4_key_group_bytes(d);
    for (int64_t r = 0; r < nr; r++) {
        const int64_t row = t + r;
        const uint8_t *grp = page + (row / RK_KV_Q4_KEY_GROUP) * gb;
        const uint8_t *codes = grp + 4 * d + (row % RK_KV_Q4_KEY_GROUP) * (d / 2);
        for (int64_t j = c0; j < c0 + cw; j++)
            out[r * out_stride + j - c0] =
                f16_at(grp + 4 * j) * (float)rk_kv_q4_code(codes, j) + f16_at(grp + 4 * j + 2);
    }
}

static void q4v_rows(const rk_kv_codec *c, const uint8_t *page, int64_t t, int64_t nr, int64_t c0,
                     int64_t cw, float *out, int64_t out_stride) {
    const int64_t d = c->dim, G = rk_kv_q4_value_group(d), rb = rk_kv_q4_value_row_bytes(d);
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *row = page + (t + r) * rb, *codes = row + 4 * (d / G);
        for (int64_t j = c0; j < c0 + cw; j++) {
            const uint8_t *hdr = row + 4 * (j / G);
            out[r * out_stride + j - c0] =
                f16_at(hdr) * (float)rk_kv_q4_code(codes, j) + f16_at(hdr + 2);
        }
    }
}

static void q4k_decode(const rk_kv_codec *c, int64_t stream, const uint8_t *page, int64_t t0,
                       int64_t n, float *out) {
    (void)stream;
    rk_kv_decode_rows(c, rk_kv_q4k_rows, page, t0, n, out);
}

static void q4v_decode(const rk_kv_codec *c, int64_t stream, const uint8_t *page, int64_t t0,
                       int64_t n, float *out) {
    (void)stream;
    rk_kv_decode_rows(c, q4v_rows, page, t0, n, out);
}

static void q4k_scores(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                       const float *qp, int64_t n_q, float scale, float *out, int64_t out_stride) {
    rk_kv_scores_ref(c, rk_kv_q4k_rows, page, t0, n, qp, n_q, scale, out, out_stride);
}

static void q4v_scores(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                       const float *qp, int64_t n_q, float scale, float *out, int64_t out_stride) {
    rk_kv_scores_ref(c, q4v_rows, page, t0, n, qp, n_q, scale, out, out_stride);
}

static void q4k_weighted_sum(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                             const float *w, int64_t w_stride, int64_t n_q, float *acc) {
    rk_kv_weighted_sum_ref(c, rk_kv_q4k_rows, page, t0, n, w, w_stride, n_q, acc);
}

static void q4v_weighted_sum(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                             const float *w, int64_t w_stride, int64_t n_q, float *acc) {
    rk_kv_weighted_sum_ref(c, q4v_rows, page, t0, n, w, w_stride, n_q, acc);
}

/* Both roles get every op (attention uses scores on keys and weighted_sum on values). */
static const rk_kv_codec_ops q4k_ops_scalar = {
    .encode = q4k_encode,
    .decode = q4k_decode,
    .prepare = rk_kv_f32_prepare,
    .scores = q4k_scores,
    .weighted_sum = q4k_weighted_sum,
    .finish = rk_kv_f32_finish,
};
static const rk_kv_codec_ops q4k_ops_avx2 = {
    .encode = q4k_encode,
    .decode = q4k_decode,
    .prepare = rk_kv_f32_prepare,
    .scores = rk_kv_q4k_scores_avx2,
    .weighted_sum = rk_kv_q4k_weighted_sum_avx2,
    .finish = rk_kv_f32_finish,
};
static const rk_kv_codec_ops q4v_ops_scalar = {
    .encode = q4v_encode,
    .decode = q4v_decode,
    .prepare = rk_kv_f32_prepare,
    .scores = q4v_scores,
    .weighted_sum = q4v_weighted_sum,
    .finish = rk_kv_f32_finish,
};
static const rk_kv_codec_ops q4v_ops_avx2 = {
    .encode = q4v_encode,
    .decode = q4v_decode,
    .prepare = rk_kv_f32_prepare,
    .scores = rk_kv_q4v_scores_avx2,
    .weighted_sum = rk_kv_q4v_weighted_sum_avx2,
    .finish = rk_kv_f32_finish,
};

rk_status rk_kv_codec_init_q4(rk_kv_codec *c, rk_error *err) {
    const int64_t d = c->dim;
    if (d % 32 != 0)
        return rk_error_set(err, RK_ERR_UNSUPPORTED,
                            "kv codec q4: head dimension %lld is not a multiple of 32 (codes are "
                            "packed in blocks of 32 channels)",
                            (long long)d);
    const bool avx2 = c->simd >= RK_SIMD_AVX2;
    if (c->role == RK_KV_KEYS) {
        c->page_bytes =
            (size_t)((RK_KV_PAGE_TOKENS / RK_KV_Q4_KEY_GROUP) * rk_kv_q4_key_group_bytes(d));
        c->ops = avx2 ? &q4k_ops_avx2 : &q4k_ops_scalar;
    } else {
        c->page_bytes = (size_t)(RK_KV_PAGE_TOKENS * rk_kv_q4_value_row_bytes(d));
        c->ops = avx2 ? &q4v_ops_avx2 : &q4v_ops_scalar;
    }
    c->prep_floats = d;
    return RK_OK;
}
