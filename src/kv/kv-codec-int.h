/*
 * kv-codec-int.h — what the f16, q8 and q4 codecs share (private to src/kv): their page
 * layouts, the row decoder their scalar kernels and decode() are built on, and the scalar
 * reference kernels. The AVX2 kernels are in kv-codec-int-avx2.h.
 *
 * The scalar kernels decode one row at a time, RK_KV_CHUNK channels at a time, into a small
 * stack buffer and apply it to all n_q query heads before the next row: a row is decoded once
 * per call whatever n_q is, and nothing of page size is ever materialised.
 *
 * f16, q8 and q4 all work in the model's domain: prepare copies the queries
 * (rk_kv_f32_prepare) and finish adds the accumulator (rk_kv_f32_finish).
 * Multi-byte fields (f16 halves) are stored in the host's byte order (little-endian x86-64).
 */
#ifndef RK_KV_CODEC_INT_H
#define RK_KV_CODEC_INT_H

#include <stdint.h>

#include "kv/kv-codec-f32.h"

#define RK_KV_CHUNK 256 /* channels decoded at a time (a multiple of 64) */

/* q4 keys: a page is RK_KV_PAGE_TOKENS / RK_KV_Q4_KEY_GROUP groups of this many tokens. */
#define RK_KV_Q4_KEY_GROUP 64

/* Decodes channels [c0, c0 + cw) of rows [t, t + nr) of a page into out[r * out_stride + j]
 * (j < cw): the values attention uses. c0 is a multiple of 8 (q4: of 32). */
typedef void (*rk_kv_rows_fn)(const rk_kv_codec *c, const uint8_t *page, int64_t t, int64_t nr,
                              int64_t c0, int64_t cw, float *out, int64_t out_stride);

static inline int64_t rk_kv_min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Layouts (bytes). q8 row: f16 scale, then dim int8 codes. */
static inline int64_t rk_kv_q8_row_bytes(int64_t dim) { return 2 + dim; }

/* q4 values: channel group size (64 when it divides dim, else 32), and the row: dim / G pairs
 * (f16 scale, f16 min), then dim / 2 bytes of codes. */
static inline int64_t rk_kv_q4_value_group(int64_t dim) { return dim % 64 == 0 ? 64 : 32; }
static inline int64_t rk_kv_q4_value_row_bytes(int64_t dim) {
    return 4 * (dim / rk_kv_q4_value_group(dim)) + dim / 2;
}

/* q4 keys: a group of RK_KV_Q4_KEY_GROUP tokens is dim pairs (f16 scale, f16 min), one per
 * channel, then the group's rows of dim / 2 bytes of codes. */
static inline int64_t rk_kv_q4_key_group_bytes(int64_t dim) {
    return 4 * dim + RK_KV_Q4_KEY_GROUP * (dim / 2);
}

/* q4 codes of one row: each block of 32 channels is 16 bytes; byte k holds channel k in its
 * low nibble and channel k + 16 in its high nibble (what rk_nibbles32 unpacks). Channel j is
 * in byte rk_kv_q4_byte(j), high nibble when j % 32 >= 16. */
static inline int64_t rk_kv_q4_byte(int64_t j) { return (j / 32) * 16 + j % 16; }
static inline int rk_kv_q4_code(const uint8_t *codes, int64_t j) {
    const uint8_t b = codes[rk_kv_q4_byte(j)];
    return (j % 32) < 16 ? (b & 0x0F) : (b >> 4);
}

/* The decoder over whole rows: decode(page, t0, n) for every codec built on rows_fn. */
static inline void rk_kv_decode_rows(const rk_kv_codec *c, rk_kv_rows_fn rows, const uint8_t *page,
                                     int64_t t0, int64_t n, float *out) {
    rows(c, page, t0, n, 0, c->dim, out, c->dim);
}

/* out[g * out_stride + t] = scale * Σ_j qp[g * dim + j] * k_(t0+t)[j]: the scalar reference. */
static inline void rk_kv_scores_ref(const rk_kv_codec *c, rk_kv_rows_fn rows, const uint8_t *page,
                                    int64_t t0, int64_t n, const float *qp, int64_t n_q,
                                    float scale, float *out, int64_t out_stride) {
    const int64_t d = c->dim;
    float k[RK_KV_CHUNK];
    for (int64_t t = 0; t < n; t++) {
        for (int64_t c0 = 0; c0 < d; c0 += RK_KV_CHUNK) {
            const int64_t cw = rk_kv_min64(RK_KV_CHUNK, d - c0);
            rows(c, page, t0 + t, 1, c0, cw, k, RK_KV_CHUNK);
            for (int64_t g = 0; g < n_q; g++) {
                float s = c0 > 0 ? out[g * out_stride + t] : 0.0f;
                for (int64_t j = 0; j < cw; j++)
                    s += qp[g * d + c0 + j] * k[j];
                out[g * out_stride + t] = s;
            }
        }
        for (int64_t g = 0; g < n_q; g++)
            out[g * out_stride + t] *= scale;
    }
}

/* acc[g * dim + j] += Σ_t w[g * w_stride + t] * v_(t0+t)[j]: the scalar reference. */
static inline void rk_kv_weighted_sum_ref(const rk_kv_codec *c, rk_kv_rows_fn rows,
                                          const uint8_t *page, int64_t t0, int64_t n,
                                          const float *w, int64_t w_stride, int64_t n_q,
                                          float *acc) {
    const int64_t d = c->dim;
    float v[RK_KV_CHUNK];
    for (int64_t t = 0; t < n; t++)
        for (int64_t c0 = 0; c0 < d; c0 += RK_KV_CHUNK) {
            const int64_t cw = rk_kv_min64(RK_KV_CHUNK, d - c0);
            rows(c, page, t0 + t, 1, c0, cw, v, RK_KV_CHUNK);
            for (int64_t g = 0; g < n_q; g++) {
                const float wt = w[g * w_stride + t];
                for (int64_t j = 0; j < cw; j++)
                    acc[g * d + c0 + j] += wt * v[j];
            }
        }
}

/* acc[g * dim + j] += Σ_t w[g * w_stride + t] * v_(t0+t)[j] for the channels j in [from, dim)
 * only: what the AVX2 kernels, which take 8 channels at a time, leave when dim % 8 != 0. */
static inline void rk_kv_weighted_sum_tail(const rk_kv_codec *c, rk_kv_rows_fn rows,
                                           const uint8_t *page, int64_t t0, int64_t n,
                                           const float *w, int64_t w_stride, int64_t n_q,
                                           int64_t from, float *acc) {
    const int64_t d = c->dim;
    float v[8];
    for (int64_t t = 0; from < d && t < n; t++) {
        rows(c, page, t0 + t, 1, from, d - from, v, 8);
        for (int64_t g = 0; g < n_q; g++)
            for (int64_t j = from; j < d; j++)
                acc[g * d + j] += w[g * w_stride + t] * v[j - from];
    }
}

/* AVX2 kernels (the -avx2.c files). */
void rk_kv_f16_scores_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                           const float *qp, int64_t n_q, float scale, float *out,
                           int64_t out_stride);
void rk_kv_f16_weighted_sum_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                                 const float *w, int64_t w_stride, int64_t n_q, float *acc);
void rk_kv_q8_scores_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                          const float *qp, int64_t n_q, float scale, float *out,
                          int64_t out_stride);
void rk_kv_q8_weighted_sum_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                                const float *w, int64_t w_stride, int64_t n_q, float *acc);
/* q4: keys and values have different layouts, so each role has its own pair. */
void rk_kv_q4k_scores_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                           const float *qp, int64_t n_q, float scale, float *out,
                           int64_t out_stride);
void rk_kv_q4k_weighted_sum_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                                 const float *w, int64_t w_stride, int64_t n_q, float *acc);
void rk_kv_q4v_scores_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                           const float *qp, int64_t n_q, float scale, float *out,
                           int64_t out_stride);
void rk_kv_q4v_weighted_sum_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                                 const float *w, int64_t w_stride, int64_t n_q, float *acc);
/* Scalar row decoders the AVX2 files reuse: f16's for channel tails (dim % 8 != 0), q4 keys'
 * for their weighted sum (which attention does not use). */
void rk_kv_f16_rows(const rk_kv_codec *c, const uint8_t *page, int64_t t, int64_t nr, int64_t c0,
                    int64_t cw, float *out, int64_t out_stride);
void rk_kv_q8_rows(const rk_kv_codec *c, const uint8_t *page, int64_t t, int64_t nr, int64_t c0,
                   int64_t cw, float *out, int64_t out_stride);
void rk_kv_q4k_rows(const rk_kv_codec *c, const uint8_t *page, int64_t t, int64_t nr, int64_t c0,
                    int64_t cw, float *out, int64_t out_stride);

#endif
