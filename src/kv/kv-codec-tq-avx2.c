/*
 * kv-codec-tq-avx2.c — AVX2/FMA attention kernels of the tq codec (format: kv-codec-tq.c).
 *
 * Both kernels decode rows 32 coordinates (one "block") at a time, straight from the bit
 * planes into four registers of centroids that every query head of the GQA group uses before
 * they are dropped; nothing decoded is ever stored.
 *
 *   codes:  each plane's 32-bit word is broadcast to the eight dwords and tested against a
 *           per-dword bit (dword L, byte i holds bit L of byte i: coordinate 8i+L), and the
 *           planes are summed top first (codes = 2·codes + bit). One byte shuffle per block
 *           then transposes the 4x4 bytes of each lane into the order the lookup wants
 *           (lane l, byte 4m+i = coordinate 8m+4l+i).
 *   lookup: a code (< 16) indexes two 16-byte vpshufb tables holding the top two bytes of the
 *           float centroids (kv-tq-codebook.c keeps the centroids exact in bf16 for this);
 *           unpacking bytes to words and words (below a zero word) to dwords yields the
 *           floats of coordinates 0-7, 8-15, 16-23 and 24-31. The one block that mixes
 *           (b+1)-bit and b-bit coordinates looks up both books and blends.
 *
 * scores: a "tile" of four rows for a single query head, else one row for up to 4 heads (more
 * heads are done 4 by 4, decoding again); see struct tile. The QJL part expands sign bits to
 * ±1.0 with a variable shift (bit -> sign bit) and FMAs them with S·q_rot.
 * weighted_sum: blocks outer, rows inner, two heads at a time with their 2 x 32 accumulators in
 * registers, so the inner loop never loads or stores the output (with 4 heads that decodes
 * each block twice, which measured about as fast as one decode with accumulators in memory); the
 * weights are scaled by the row norms once per call. Each block pass re-reads the rows (from
 * L1/L2: a page is 5-32 KB for d = 64-256); on a page not yet in cache the first pass waits for
 * memory, so callers should prefetch the next page. (Processing rows in L1-sized chunks avoids that
 * wait but made GCC spill accumulators, which cost more than it saved.)
 *
 * The low width b (1..3) is made a compile-time constant (a switch at the entry points) so the
 * plane loops unroll. Measured on a 2-core AMD EPYC (Zen 4) VM, tq3.5, d=128, 256 rows:
 * scores 3.3 / 4.9 / 6.4 µs per page for 1 / 2 / 4 heads, weighted_sum 2.9 / 3.6 / 7.1 µs.
 */
#include <immintrin.h>
#include <string.h>

#include "kv/kv-codec-tq.h"
#include "quant/quant-simd-avx2.h"

#define TQ_ALWAYS_INLINE static inline __attribute__((always_inline))

/* The row's f16 scale without its centred flag, converted by F16C. */
static inline float row_norm(const uint8_t *row) {
    return _cvtsh_ss((unsigned short)(rk_kv_tq_row_head(row) & ~RK_KV_TQ_CENTRED_BIT));
}

/* What the kernels need from the state, with the block structure precomputed. */
typedef struct tq_ctx {
    const rk_kv_tq_state *s;
    int64_t n_blocks;  /* d / 32 */
    int64_t n_full_hi; /* blocks whose 32 coordinates all have b+1 bits */
    int hi_bytes;      /* 0, or the hi-plane bytes (1..3) of block n_full_hi, which mixes */
    __m256i hi_select; /* mixing block: 0xFF in the byte slots of (b+1)-bit coordinates */
} tq_ctx;

static tq_ctx make_ctx(const rk_kv_codec *c) {
    tq_ctx x;
    x.s = c->state;
    x.n_blocks = x.s->dim / 32;
    x.n_full_hi = x.s->n_hi / 32;
    x.hi_bytes = (x.s->n_hi % 32) / 8;
    uint8_t sel[32];
    for (int i = 0; i < 32; i++)
        sel[i] = (i % 16) / 4 < x.hi_bytes ? 0xFF : 0;
    x.hi_select = _mm256_loadu_si256((const __m256i *)sel);
    return x;
}

static inline uint32_t load_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline float load_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return rk_h2f(h);
}

/* ---- decoding a block ---- */

/* 0xFF in byte i of dword L where bit L of byte i of w is set (coordinate 8i+L). */
TQ_ALWAYS_INLINE __m256i plane_mask(uint32_t w) {
    const __m256i bit = _mm256_setr_epi32(0x01010101, 0x02020202, 0x04040404, 0x08080808,
                                          0x10101010, 0x20202020, 0x40404040, (int)0x80808080u);
    return _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_set1_epi32((int)w), bit), bit);
}

/* Codes of block k from the B low planes on top of `codes` (the top plane or zero), moved
 * into lookup order. B is a constant in every caller, so this loop unrolls. */
TQ_ALWAYS_INLINE __m256i block_codes(__m256i codes, const uint8_t *planes, size_t pb, int B,
                                     int64_t k) {
#pragma GCC unroll 4
    for (int p = B - 1; p >= 0; p--) {
        codes = _mm256_add_epi8(codes, codes);
        codes = _mm256_sub_epi8(codes, plane_mask(load_u32(planes + (size_t)p * pb + 4 * k)));
    }
    const __m256i transpose =
        _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 0, 4, 8, 12, 1, 5, 9,
                         13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm256_shuffle_epi8(codes, transpose);
}

/* 32 centroids in coordinate order (four registers of 8). */
typedef struct v4 {
    __m256 v0, v1, v2, v3;
} v4;

/* Floats from their top two bytes (lo = bits 16-23, hi = bits 24-31) in lookup order. */
TQ_ALWAYS_INLINE v4 bf16_to_floats(__m256i lo, __m256i hi) {
    const __m256i z = _mm256_setzero_si256();
    const __m256i w0 = _mm256_unpacklo_epi8(lo, hi), w1 = _mm256_unpackhi_epi8(lo, hi);
    v4 v;
    v.v0 = _mm256_castsi256_ps(_mm256_unpacklo_epi16(z, w0));
    v.v1 = _mm256_castsi256_ps(_mm256_unpackhi_epi16(z, w0));
    v.v2 = _mm256_castsi256_ps(_mm256_unpacklo_epi16(z, w1));
    v.v3 = _mm256_castsi256_ps(_mm256_unpackhi_epi16(z, w1));
    return v;
}

TQ_ALWAYS_INLINE __m256i lut(const rk_kv_tq_codebook *bk, int i, __m256i codes) {
    return _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)bk->lut[i]), codes);
}

/* Centroids of a block whose coordinates all have b+1 bits. */
TQ_ALWAYS_INLINE v4 block_hi(const tq_ctx *x, int B, const uint8_t *row, int64_t k) {
    const rk_kv_tq_state *s = x->s;
    const uint8_t *planes = row + s->off_planes;
    const __m256i top = plane_mask(load_u32(planes + (size_t)B * s->plane_bytes + 4 * k));
    const __m256i codes =
        block_codes(_mm256_sub_epi8(_mm256_setzero_si256(), top), planes, s->plane_bytes, B, k);
    return bf16_to_floats(lut(&s->book[1], 0, codes), lut(&s->book[1], 1, codes));
}

/* Centroids of the block mixing widths (k = n_full_hi). The hi plane ends the row, so its
 * last hi_bytes bytes are this block's. */
TQ_ALWAYS_INLINE v4 block_mixed(const tq_ctx *x, int B, const uint8_t *row, int64_t k) {
    const rk_kv_tq_state *s = x->s;
    const uint32_t w = load_u32(row + s->row_bytes - 4) >> (8 * (4 - x->hi_bytes));
    const __m256i codes = block_codes(_mm256_sub_epi8(_mm256_setzero_si256(), plane_mask(w)),
                                      row + s->off_planes, s->plane_bytes, B, k);
    const __m256i lo =
        _mm256_blendv_epi8(lut(&s->book[0], 0, codes), lut(&s->book[1], 0, codes), x->hi_select);
    const __m256i hi =
        _mm256_blendv_epi8(lut(&s->book[0], 1, codes), lut(&s->book[1], 1, codes), x->hi_select);
    return bf16_to_floats(lo, hi);
}

/* Centroids of a block whose coordinates all have b bits. */
TQ_ALWAYS_INLINE v4 block_lo(const tq_ctx *x, int B, const uint8_t *row, int64_t k) {
    const rk_kv_tq_state *s = x->s;
    const __m256i codes =
        block_codes(_mm256_setzero_si256(), row + s->off_planes, s->plane_bytes, B, k);
    return bf16_to_floats(lut(&s->book[0], 0, codes), lut(&s->book[0], 1, codes));
}

/* Block kinds, for loops specialised by kind. */
enum { BLOCK_HI, BLOCK_MIXED, BLOCK_LO };

TQ_ALWAYS_INLINE v4 block_of_kind(const tq_ctx *x, int B, int kind, const uint8_t *row, int64_t k) {
    if (kind == BLOCK_HI) return block_hi(x, B, row, k);
    if (kind == BLOCK_MIXED) return block_mixed(x, B, row, k);
    return block_lo(x, B, row, k);
}

/* ±1.0 for coordinates 32k + 8r .. +7 from the 32 sign bits w of block k. */
TQ_ALWAYS_INLINE __m256 sign_values(uint32_t w, int r) {
    const __m256i shift =
        _mm256_sub_epi32(_mm256_set1_epi32(31 - 8 * r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256i m = _mm256_sllv_epi32(_mm256_set1_epi32((int)~w), shift); /* clear bit -> sign */
    const __m256i sign = _mm256_and_si256(m, _mm256_set1_epi32((int)0x80000000u));
    return _mm256_castsi256_ps(_mm256_or_si256(sign, _mm256_castps_si256(_mm256_set1_ps(1.0f))));
}

/* ---- scores ---- */

/* The four horizontal sums of a0..a3 in one register. */
TQ_ALWAYS_INLINE __m128 hsum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* A tile of R rows x G heads, one dot product per slot i = r*G + g: four rows of a single head
 * (four independent FMA chains in flight, one hsum4 for four rows) or one row of 2-4 heads,
 * where a pair of heads gets two chains per slot (a_i and b_i). Named fields, not arrays, and
 * no pointers to them: that is what keeps GCC from spilling them. */
typedef struct tile {
    __m256 a0, a1, a2, a3, b0, b1;
} tile;

#define TILE_ROWS(G) ((G) == 1 ? 4 : 1)
#define TILE_CHAINS(G) ((G) == 2 ? 2 : 1)

TQ_ALWAYS_INLINE void tile_zero(tile *T) {
    T->a0 = T->a1 = T->a2 = T->a3 = T->b0 = T->b1 = _mm256_setzero_ps();
}

/* a (and b, which may be a) += q[0..32)·v. */
#define TQ_FMA32(a, b, q, v)                                                                       \
    do {                                                                                           \
        (a) = _mm256_fmadd_ps(_mm256_loadu_ps(q), (v).v0, (a));                                    \
        (b) = _mm256_fmadd_ps(_mm256_loadu_ps((q) + 8), (v).v1, (b));                              \
        (a) = _mm256_fmadd_ps(_mm256_loadu_ps((q) + 16), (v).v2, (a));                             \
        (b) = _mm256_fmadd_ps(_mm256_loadu_ps((q) + 24), (v).v3, (b));                             \
    } while (0)

/* Slot i += q[0..32)·v, on one chain or (NC = 2, slots 0-1) two. */
TQ_ALWAYS_INLINE void tile_fma(tile *T, int i, int NC, const float *q, v4 v) {
    switch (i) {
    case 0:
        if (NC == 2)
            TQ_FMA32(T->a0, T->b0, q, v);
        else
            TQ_FMA32(T->a0, T->a0, q, v);
        break;
    case 1:
        if (NC == 2)
            TQ_FMA32(T->a1, T->b1, q, v);
        else
            TQ_FMA32(T->a1, T->a1, q, v);
        break;
    case 2: TQ_FMA32(T->a2, T->a2, q, v); break;
    default: TQ_FMA32(T->a3, T->a3, q, v); break;
    }
}

/* Slot i's sum in lane i. */
TQ_ALWAYS_INLINE __m128 tile_sums(const tile *T, int NC) {
    if (NC == 1) return hsum4(T->a0, T->a1, T->a2, T->a3);
    return hsum4(_mm256_add_ps(T->a0, T->b0), _mm256_add_ps(T->a1, T->b1), T->a2, T->a3);
}

/* Block k of R rows (of the given kind) into the tile's G heads (q_g = qp + g*prep). */
TQ_ALWAYS_INLINE void tile_block(tile *T, const tq_ctx *x, int B, int kind, const uint8_t *row,
                                 int R, const float *qp, int64_t prep, int G, int64_t k) {
    const int NC = TILE_CHAINS(G);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        const v4 v = block_of_kind(x, B, kind, row + (size_t)r * x->s->row_bytes, k);
#pragma GCC unroll 4
        for (int g = 0; g < G; g++)
            tile_fma(T, r * G + g, NC, qp + g * prep + 32 * k, v);
    }
}

/* Σ_j q_g[j]·C[code_j] for R rows and G heads (the MSE part of the scores), slot r*G+g. */
TQ_ALWAYS_INLINE __m128 tile_dots(const tq_ctx *x, int B, const uint8_t *row, int R,
                                  const float *qp, int64_t prep, int G) {
    tile T;
    tile_zero(&T);
    int64_t k = 0;
    for (; k < x->n_full_hi; k++)
        tile_block(&T, x, B, BLOCK_HI, row, R, qp, prep, G, k);
    if (x->hi_bytes) {
        tile_block(&T, x, B, BLOCK_MIXED, row, R, qp, prep, G, k);
        k++;
    }
    for (; k < x->n_blocks; k++)
        tile_block(&T, x, B, BLOCK_LO, row, R, qp, prep, G, k);
    return tile_sums(&T, TILE_CHAINS(G));
}

/* Σ_i (S q_g)[i]·sign_i for R rows and G heads (the QJL part of the scores), slot r*G+g. */
TQ_ALWAYS_INLINE __m128 tile_sketch(const tq_ctx *x, const uint8_t *row, int R, const float *sq,
                                    int64_t prep, int G) {
    const int NC = TILE_CHAINS(G);
    tile T;
    tile_zero(&T);
    for (int64_t k = 0; k < x->n_blocks; k++)
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const uint32_t w =
                load_u32(row + (size_t)r * x->s->row_bytes + x->s->off_signs + 4 * k);
            v4 v;
            v.v0 = sign_values(w, 0);
            v.v1 = sign_values(w, 1);
            v.v2 = sign_values(w, 2);
            v.v3 = sign_values(w, 3);
#pragma GCC unroll 4
            for (int g = 0; g < G; g++)
                tile_fma(&T, r * G + g, NC, sq + g * prep + 32 * k, v);
        }
    return tile_sums(&T, NC);
}

/* Scores of one tile (R rows from row, G heads) into out[g * out_stride + r]. */
TQ_ALWAYS_INLINE void scores_tile(const tq_ctx *x, int B, const uint8_t *row, int R,
                                  const float *qp, int64_t prep, int G, float scale, float *out,
                                  int64_t out_stride) {
    const rk_kv_tq_state *s = x->s;
    float mse_scale[4] = {0, 0, 0, 0}, qjl_scale[4] = {0, 0, 0, 0}, qscale[4] = {0, 0, 0, 0};
    float r4[4];
#pragma GCC unroll 4
    for (int i = 0; i < R * G; i++) {
        const uint8_t *ri = row + (size_t)(i / G) * s->row_bytes;
        mse_scale[i] = scale * (row_norm(ri) * s->inv_sqrt_d);
        qscale[i] = qp[(i % G) * prep + s->prep_qscale];
        if (s->qjl) qjl_scale[i] = scale * (s->qjl_coef * load_f16(ri + s->off_gamma));
    }
    /* the dot products of the integer query are exact: the same bits as the scalar kernel */
    const __m128 dots = tile_dots(x, B, row, R, qp + s->prep_qi, prep, G);
    __m128 sc = _mm_mul_ps(_mm_loadu_ps(mse_scale), _mm_mul_ps(_mm_loadu_ps(qscale), dots));
    if (s->qjl)
        sc = _mm_add_ps(sc, _mm_mul_ps(_mm_loadu_ps(qjl_scale),
                                       tile_sketch(x, row, R, qp + s->prep_sketch, prep, G)));
    _mm_storeu_ps(r4, sc);
#pragma GCC unroll 4
    for (int i = 0; i < R * G; i++)
        out[(i % G) * out_stride + i / G] = r4[i];
}

TQ_ALWAYS_INLINE void scores_rows(const tq_ctx *x, int B, const uint8_t *rows, int64_t n,
                                  const float *qp, int64_t prep, int G, float scale, float *out,
                                  int64_t out_stride) {
    const int R = TILE_ROWS(G);
    const size_t rb = x->s->row_bytes;
    int64_t t = 0;
    for (; t + R <= n; t += R)
        scores_tile(x, B, rows + (size_t)t * rb, R, qp, prep, G, scale, out + t, out_stride);
    for (; t < n; t++) /* rows left over: one at a time */
        scores_tile(x, B, rows + (size_t)t * rb, 1, qp, prep, G, scale, out + t, out_stride);
}

/* scores_rows with the low width B (1..3) as a constant, for G heads. */
TQ_ALWAYS_INLINE void scores_heads(const tq_ctx *x, const uint8_t *rows, int64_t n, const float *qp,
                                   int64_t prep, int G, float scale, float *out,
                                   int64_t out_stride) {
    switch (x->s->b) {
    case 1: scores_rows(x, 1, rows, n, qp, prep, G, scale, out, out_stride); break;
    case 2: scores_rows(x, 2, rows, n, qp, prep, G, scale, out, out_stride); break;
    default: scores_rows(x, 3, rows, n, qp, prep, G, scale, out, out_stride); break;
    }
}

void rk_kv_tq_scores_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                          const float *qp, int64_t n_q, float scale, float *out,
                          int64_t out_stride) {
    const tq_ctx x = make_ctx(c);
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

/* 32 accumulators (one block of one head). */
typedef struct acc32 {
    __m256 a0, a1, a2, a3;
} acc32;

TQ_ALWAYS_INLINE acc32 acc_load(const float *a) {
    acc32 r = {_mm256_loadu_ps(a), _mm256_loadu_ps(a + 8), _mm256_loadu_ps(a + 16),
               _mm256_loadu_ps(a + 24)};
    return r;
}

TQ_ALWAYS_INLINE void acc_store(float *a, acc32 r) {
    _mm256_storeu_ps(a, r.a0);
    _mm256_storeu_ps(a + 8, r.a1);
    _mm256_storeu_ps(a + 16, r.a2);
    _mm256_storeu_ps(a + 24, r.a3);
}

TQ_ALWAYS_INLINE acc32 acc_fma(acc32 r, float w, v4 v) {
    const __m256 wv = _mm256_set1_ps(w);
    r.a0 = _mm256_fmadd_ps(wv, v.v0, r.a0);
    r.a1 = _mm256_fmadd_ps(wv, v.v1, r.a1);
    r.a2 = _mm256_fmadd_ps(wv, v.v2, r.a2);
    r.a3 = _mm256_fmadd_ps(wv, v.v3, r.a3);
    return r;
}

/* Block k (of the given kind) of acc_g += Σ_t ws_g[t]·C(row t) for H (1 or 2) heads. */
TQ_ALWAYS_INLINE void wsum_block(const tq_ctx *x, int B, int kind, int H, const uint8_t *rows,
                                 int64_t n, int64_t k, const float *ws0, const float *ws1,
                                 float *acc0, float *acc1) {
    acc32 r0 = acc_load(acc0 + 32 * k), r1 = r0;
    if (H == 2) r1 = acc_load(acc1 + 32 * k);
    for (int64_t t = 0; t < n; t++) {
        const v4 v = block_of_kind(x, B, kind, rows + (size_t)t * x->s->row_bytes, k);
        r0 = acc_fma(r0, ws0[t], v);
        if (H == 2) r1 = acc_fma(r1, ws1[t], v);
    }
    acc_store(acc0 + 32 * k, r0);
    if (H == 2) acc_store(acc1 + 32 * k, r1);
}

TQ_ALWAYS_INLINE void wsum_width(const tq_ctx *x, int B, int H, const uint8_t *rows, int64_t n,
                                 const float *ws0, const float *ws1, float *acc0, float *acc1) {
    int64_t k = 0;
    for (; k < x->n_full_hi; k++)
        wsum_block(x, B, BLOCK_HI, H, rows, n, k, ws0, ws1, acc0, acc1);
    if (x->hi_bytes) {
        wsum_block(x, B, BLOCK_MIXED, H, rows, n, k, ws0, ws1, acc0, acc1);
        k++;
    }
    for (; k < x->n_blocks; k++)
        wsum_block(x, B, BLOCK_LO, H, rows, n, k, ws0, ws1, acc0, acc1);
}

/* wsum_width with the low width B (1..3) as a constant, for H (1 or 2) heads. */
TQ_ALWAYS_INLINE void wsum_heads(const tq_ctx *x, int H, const uint8_t *rows, int64_t n,
                                 const float *ws0, const float *ws1, float *acc0, float *acc1) {
    switch (x->s->b) {
    case 1: wsum_width(x, 1, H, rows, n, ws0, ws1, acc0, acc1); break;
    case 2: wsum_width(x, 2, H, rows, n, ws0, ws1, acc0, acc1); break;
    default: wsum_width(x, 3, H, rows, n, ws0, ws1, acc0, acc1); break;
    }
}

void rk_kv_tq_weighted_sum_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                                const float *w, int64_t w_stride, int64_t n_q, float *acc) {
    const tq_ctx x = make_ctx(c);
    const int64_t d = x.s->dim;
    const uint8_t *rows = page + (size_t)t0 * x.s->row_bytes;
    float norm[RK_KV_PAGE_TOKENS], ws[2][RK_KV_PAGE_TOKENS]; /* t0 + n <= RK_KV_PAGE_TOKENS */
    for (int64_t t = 0; t < n; t++)
        norm[t] = row_norm(rows + (size_t)t * x.s->row_bytes) * x.s->inv_sqrt_d;
    for (int64_t g = 0; g < n_q; g += 2) {
        const int H = n_q - g >= 2 ? 2 : 1;
        for (int h = 0; h < H; h++)
            for (int64_t t = 0; t < n; t++)
                ws[h][t] = w[(g + h) * w_stride + t] * norm[t];
        if (H == 2)
            wsum_heads(&x, 2, rows, n, ws[0], ws[1], acc + g * d, acc + (g + 1) * d);
        else
            wsum_heads(&x, 1, rows, n, ws[0], ws[0], acc + g * d, acc + g * d);
    }
}
