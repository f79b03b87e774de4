/*
 * kv-codec-tq-avx512.c — AVX-512 attention kernels of the tq codec (format: kv-codec-tq.c).
 *
 * A block here is 16 coordinates, one zmm of floats. Its codes come straight from the bit
 * planes: plane p's 16 bits for the block are loaded into a mask register and a masked add sets
 * bit p in the lanes of the coordinates that have it (one kmov and one add per plane). The
 * codebook of the block's width (at most 16 centroids) sits in one zmm, and one vpermps turns
 * the 16 codes into the 16 centroids. n_hi is a multiple of 16 whenever these kernels are used
 * (init checks), so a block never mixes widths.
 *
 * scores: tiles of R rows x G heads with R*G >= 6 independent FMA chains (the FMA latency
 * bound the AVX2 tiles hit with 4 chains), each row decoded once for all G heads; the R*G dot
 * products are reduced together at the end of the tile.
 * weighted_sum: blocks outer, rows inner, all G heads (<= 4) at once with two accumulator sets
 * (even and odd rows) held in registers; weights arrive pre-multiplied by the row scales.
 * The QJL part of the scores turns sign bits into ±1.0 with a masked blend.
 */
#include <immintrin.h>
#include <string.h>

#include "kv/kv-codec-tq.h"

#define TQ_ALWAYS_INLINE static inline __attribute__((always_inline))

/* The row's f16 scale without its centred flag, converted by F16C. */
static inline float row_norm(const uint8_t *row) {
    return _cvtsh_ss((unsigned short)(rk_kv_tq_row_head(row) & ~RK_KV_TQ_CENTRED_BIT));
}
#define TQ_MAX_TILE 8 /* dot products per scores tile */

typedef struct tq512 {
    const rk_kv_tq_state *s;
    int64_t n_blocks; /* d / 16 */
    int64_t n_hi_blocks; /* n_hi / 16: blocks whose coordinates have b+1 bits */
    __m512 book_lo, book_hi; /* centroids of width b and b+1, zero-padded to 16 */
} tq512;

static tq512 make_ctx(const rk_kv_codec *c) {
    tq512 x;
    x.s = c->state;
    x.n_blocks = x.s->dim / 16;
    x.n_hi_blocks = x.s->n_hi / 16;
    float lo[16] = {0}, hi[16] = {0};
    memcpy(lo, x.s->book[0].centroid, sizeof(float) << x.s->b);
    if (x.s->n_hi > 0) memcpy(hi, x.s->book[1].centroid, sizeof(float) << (x.s->b + 1));
    x.book_lo = _mm512_loadu_ps(lo);
    x.book_hi = _mm512_loadu_ps(hi);
    return x;
}

static inline __mmask16 load_mask(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return _cvtu32_mask16(v);
}

/* The 16 centroids of block k of a row from the block's codebook; W (the block's width) is a
 * compile-time constant. */
TQ_ALWAYS_INLINE __m512 block_values(const tq512 *x, int W, __m512 book, const uint8_t *row,
                                     int64_t k) {
    const rk_kv_tq_state *s = x->s;
    const uint8_t *planes = row + s->off_planes + 2 * k;
    __m512i codes = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int p = 0; p < W; p++)
        codes = _mm512_mask_add_epi32(codes, load_mask(planes + (size_t)p * s->plane_bytes), codes,
                                      _mm512_set1_epi32(1 << p));
    return _mm512_permutexvar_ps(codes, book);
}

/* ±1.0 from the 16 QJL sign bits of block k (a set bit is +1). */
TQ_ALWAYS_INLINE __m512 block_signs(const tq512 *x, const uint8_t *row, int64_t k) {
    return _mm512_mask_blend_ps(load_mask(row + x->s->off_signs + 2 * k), _mm512_set1_ps(-1.0f),
                                _mm512_set1_ps(1.0f));
}

/* ---- scores ---- */

/* acc[r*G + g] += q_g[16k..]·(block k of row r) over the blocks [k0, k1) of width W. */
TQ_ALWAYS_INLINE void tile_blocks(__m512 *acc, const tq512 *x, int W, __m512 book,
                                  const uint8_t *row, int R, const float *qp, int64_t prep, int G,
                                  int64_t k0, int64_t k1) {
    const size_t rb = x->s->row_bytes;
    for (int64_t k = k0; k < k1; k++)
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m512 v = block_values(x, W, book, row + (size_t)r * rb, k);
#pragma GCC unroll 4
            for (int g = 0; g < G; g++)
                acc[r * G + g] =
                    _mm512_fmadd_ps(_mm512_loadu_ps(qp + g * prep + 16 * k), v, acc[r * G + g]);
        }
}

TQ_ALWAYS_INLINE void tile_sketch(__m512 *acc, const tq512 *x, const uint8_t *row, int R,
                                  const float *sq, int64_t prep, int G) {
    const size_t rb = x->s->row_bytes;
    for (int64_t k = 0; k < x->n_blocks; k++)
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m512 v = block_signs(x, row + (size_t)r * rb, k);
#pragma GCC unroll 4
            for (int g = 0; g < G; g++)
                acc[r * G + g] =
                    _mm512_fmadd_ps(_mm512_loadu_ps(sq + g * prep + 16 * k), v, acc[r * G + g]);
        }
}

/* Scores of R rows x G heads into out[g * out_stride + r]; B is the low width. */
TQ_ALWAYS_INLINE void scores_tile(const tq512 *x, int B, const uint8_t *row, int R, const float *qp,
                                  int64_t prep, int G, float scale, float *out,
                                  int64_t out_stride) {
    const rk_kv_tq_state *s = x->s;
    __m512 acc[TQ_MAX_TILE];
#pragma GCC unroll 8
    for (int i = 0; i < R * G; i++)
        acc[i] = _mm512_setzero_ps();
    tile_blocks(acc, x, B + 1, x->book_hi, row, R, qp, prep, G, 0, x->n_hi_blocks);
    tile_blocks(acc, x, B, x->book_lo, row, R, qp, prep, G, x->n_hi_blocks, x->n_blocks);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        const uint8_t *ri = row + (size_t)r * s->row_bytes;
        const float mse = scale * row_norm(ri) * s->inv_sqrt_d;
#pragma GCC unroll 4
        for (int g = 0; g < G; g++)
            out[g * out_stride + r] = mse * _mm512_reduce_add_ps(acc[r * G + g]);
    }
    if (!s->qjl) return;
#pragma GCC unroll 8
    for (int i = 0; i < R * G; i++)
        acc[i] = _mm512_setzero_ps();
    tile_sketch(acc, x, row, R, qp + s->dim, prep, G);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        const uint8_t *ri = row + (size_t)r * s->row_bytes;
        const float qjl = scale * s->qjl_coef * _cvtsh_ss(rk_kv_tq_row_head(ri + s->off_gamma));
#pragma GCC unroll 4
        for (int g = 0; g < G; g++)
            out[g * out_stride + r] += qjl * _mm512_reduce_add_ps(acc[r * G + g]);
    }
}

/* Rows of a page in tiles of R (then one at a time), for G heads and low width B. */
TQ_ALWAYS_INLINE void scores_rows(const tq512 *x, int B, const uint8_t *rows, int64_t n,
                                  const float *qp, int64_t prep, int G, float scale, float *out,
                                  int64_t out_stride) {
    const int R = G == 1 ? 8 : G == 2 ? 4 : 2;
    const size_t rb = x->s->row_bytes;
    int64_t t = 0;
    for (; t + R <= n; t += R)
        scores_tile(x, B, rows + (size_t)t * rb, R, qp, prep, G, scale, out + t, out_stride);
    for (; t < n; t++)
        scores_tile(x, B, rows + (size_t)t * rb, 1, qp, prep, G, scale, out + t, out_stride);
}

TQ_ALWAYS_INLINE void scores_heads(const tq512 *x, const uint8_t *rows, int64_t n, const float *qp,
                                   int64_t prep, int G, float scale, float *out,
                                   int64_t out_stride) {
    switch (x->s->b) {
    case 1: scores_rows(x, 1, rows, n, qp, prep, G, scale, out, out_stride); break;
    case 2: scores_rows(x, 2, rows, n, qp, prep, G, scale, out, out_stride); break;
    default: scores_rows(x, 3, rows, n, qp, prep, G, scale, out, out_stride); break;
    }
}

void rk_kv_tq_scores_avx512(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                            const float *qp, int64_t n_q, float scale, float *out,
                            int64_t out_stride) {
    const tq512 x = make_ctx(c);
    const uint8_t *rows = page + (size_t)t0 * x.s->row_bytes;
    const int64_t prep = c->prep_floats;
    for (int64_t g0 = 0; g0 < n_q; g0 += 4) {
        const float *q = qp + g0 * prep;
        float *o = out + g0 * out_stride;
        switch (n_q - g0 >= 4 ? 4 : n_q - g0) {
        case 1: scores_heads(&x, rows, n, q, prep, 1, scale, o, out_stride); break;
        case 2: scores_heads(&x, rows, n, q, prep, 2, scale, o, out_stride); break;
        case 3: scores_heads(&x, rows, n, q, prep, 3, scale, o, out_stride); break;
        default: scores_heads(&x, rows, n, q, prep, 4, scale, o, out_stride); break;
        }
    }
}

/* ---- weighted sums ---- */

/* Block k (width W) of acc_g += Σ_t ws_g[t]·C(row t) for G heads (ws_g = ws + g*RK_KV_PAGE_TOKENS),
 * with separate accumulators for even and odd rows so 2G FMA chains are in flight. */
TQ_ALWAYS_INLINE void wsum_block(const tq512 *x, int W, __m512 book, int G, const uint8_t *rows,
                                 int64_t n, int64_t k, const float *ws, float *acc, int64_t d) {
    const size_t rb = x->s->row_bytes;
    __m512 even[4], odd[4];
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) {
        even[g] = _mm512_loadu_ps(acc + g * d + 16 * k);
        odd[g] = _mm512_setzero_ps();
    }
    int64_t t = 0;
    for (; t + 2 <= n; t += 2) {
        const __m512 v0 = block_values(x, W, book, rows + (size_t)t * rb, k);
        const __m512 v1 = block_values(x, W, book, rows + (size_t)(t + 1) * rb, k);
#pragma GCC unroll 4
        for (int g = 0; g < G; g++) {
            const float *w = ws + g * RK_KV_PAGE_TOKENS;
            even[g] = _mm512_fmadd_ps(_mm512_set1_ps(w[t]), v0, even[g]);
            odd[g] = _mm512_fmadd_ps(_mm512_set1_ps(w[t + 1]), v1, odd[g]);
        }
    }
    if (t < n) {
        const __m512 v0 = block_values(x, W, book, rows + (size_t)t * rb, k);
#pragma GCC unroll 4
        for (int g = 0; g < G; g++)
            even[g] = _mm512_fmadd_ps(_mm512_set1_ps(ws[g * RK_KV_PAGE_TOKENS + t]), v0, even[g]);
    }
#pragma GCC unroll 4
    for (int g = 0; g < G; g++)
        _mm512_storeu_ps(acc + g * d + 16 * k, _mm512_add_ps(even[g], odd[g]));
}

TQ_ALWAYS_INLINE void wsum_width(const tq512 *x, int B, int G, const uint8_t *rows, int64_t n,
                                 const float *ws, float *acc) {
    const int64_t d = x->s->dim;
    int64_t k = 0;
    for (; k < x->n_hi_blocks; k++)
        wsum_block(x, B + 1, x->book_hi, G, rows, n, k, ws, acc, d);
    for (; k < x->n_blocks; k++)
        wsum_block(x, B, x->book_lo, G, rows, n, k, ws, acc, d);
}

TQ_ALWAYS_INLINE void wsum_heads(const tq512 *x, int G, const uint8_t *rows, int64_t n,
                                 const float *ws, float *acc) {
    switch (x->s->b) {
    case 1: wsum_width(x, 1, G, rows, n, ws, acc); break;
    case 2: wsum_width(x, 2, G, rows, n, ws, acc); break;
    default: wsum_width(x, 3, G, rows, n, ws, acc); break;
    }
}

void rk_kv_tq_weighted_sum_avx512(const rk_kv_codec *c, const uint8_t *page, int64_t t0,
                                  int64_t n, const float *w, int64_t w_stride, int64_t n_q,
                                  float *acc) {
    const tq512 x = make_ctx(c);
    const int64_t d = x.s->dim;
    const uint8_t *rows = page + (size_t)t0 * x.s->row_bytes;
    float norm[RK_KV_PAGE_TOKENS], ws[4 * RK_KV_PAGE_TOKENS]; /* t0 + n <= RK_KV_PAGE_TOKENS */
    for (int64_t t = 0; t < n; t++)
        norm[t] = row_norm(rows + (size_t)t * x.s->row_bytes) * x.s->inv_sqrt_d;
    for (int64_t g0 = 0; g0 < n_q; g0 += 4) {
        const int G = n_q - g0 >= 4 ? 4 : (int)(n_q - g0);
        for (int g = 0; g < G; g++)
            for (int64_t t = 0; t < n; t++)
                ws[g * RK_KV_PAGE_TOKENS + t] = w[(g0 + g) * w_stride + t] * norm[t];
        float *a = acc + g0 * d;
        switch (G) {
        case 1: wsum_heads(&x, 1, rows, n, ws, a); break;
        case 2: wsum_heads(&x, 2, rows, n, ws, a); break;
        case 3: wsum_heads(&x, 3, rows, n, ws, a); break;
        default: wsum_heads(&x, 4, rows, n, ws, a); break;
        }
    }
}
