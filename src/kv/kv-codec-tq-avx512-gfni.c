/*
 * kv-codec-tq-avx512-gfni.c — AVX-512 attention kernels of the tq codec (format: kv-codec-tq.c)
 * for CPUs with AVX-512 VBMI, GFNI and VNNI (Ice Lake, Zen 4 and later; kv-codec-tq.c checks).
 *
 * Decoding a row's codes. The codes of a row are stored as bit planes: bit j of plane p's byte i
 * is bit p of the code of coordinate 8i+j. A chunk of 64 coordinates is turned into 64 code
 * bytes with two instructions:
 *   1. vpermb (vpermi2b for d = 256, whose planes span up to 128 bytes) gathers, for each group
 *      of 8 coordinates, the group's byte of every plane into one qword, plane p at byte 7-p
 *      (missing planes, above the group's width, are zeroed by the mask);
 *   2. gf2p8affineqb with that qword as the bit matrix and the byte 1<<i as the vector
 *      transposes the 8x8 bit matrix: byte i of the result is the code of coordinate i.
 * scores (keys): the query arrives as int8 (qi, kv-codec-tq.c) and the centroids are integers
 * in units of 1/32, so a row's score is an integer dot product: two in-lane vpshufb lookups (one
 * per codebook width, blended by the chunk's width mask) turn 64 codes into 128 + 32·C bytes and
 * one vpdpbusd per head multiplies them with the 64 int8 query bytes into 16 int32 lanes (the
 * offset 128 makes the centroids unsigned; prepare() stores 128·Σqi to take it off). Tiles of
 * R rows x G heads (R*G <= 8) decode each row once for all G heads; the R*G sums are reduced
 * together by one transpose-and-add tree (about 3 instructions per dot product instead of the 8
 * of a lone horizontal sum). The sums are integers below 2^24, exact in float: the scores are
 * the scalar kernel's bits. The QJL sketch (float) turns sign bits into ±1.0 with a masked blend.
 * weighted_sum (values): integers too. Per head, the weights times the row scales are rounded to
 * int16 in units of the page's largest (at most 1/65534 of it per row); two rows' centroids, as
 * signed bytes 32·C from the same in-lane lookups, are interleaved into int16 pairs, and one
 * vpdpwssd per 16 coordinates and head adds both rows' products: half the multiply-adds of a
 * float FMA per row, with the chunk's G <= 4 heads' accumulators in registers. n_hi is a
 * multiple of 16 whenever these kernels are used, so a block of 16 never mixes widths.
 *
 * d is 32, 64, 128 or 256 here (kv-codec-tq.c falls back to the AVX2 kernels otherwise).
 */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#include "kv/kv-codec-tq.h"

#define TQ_ALWAYS_INLINE static inline __attribute__((always_inline))
#define TQ_MAX_TILE 8 /* dot products per scores tile */
#define TQ_MAX_CHUNKS (256 / 64)

/* The shape of a row of D coordinates: chunks of 64 (one of 32 at D = 32) and blocks of 16 per
 * chunk. D is a compile-time constant in the kernels, so every loop over chunks and blocks
 * unrolls and the accumulators stay in registers. */
#define N_CHUNKS(D) (((D) + 63) / 64)
#define CHUNK_BLOCKS(D) ((D) / 16 / N_CHUNKS(D))

/* The row's f16 scale without its centred flag, converted by F16C. */
static inline float row_norm(const uint8_t *row) {
    return _cvtsh_ss((unsigned short)(rk_kv_tq_row_head(row) & ~RK_KV_TQ_CENTRED_BIT));
}

typedef struct tqg {
    const rk_kv_tq_state *s;
    __m512i gather;           /* byte indices into a chunk's plane window (see the top) */
    __m512i ident;            /* byte i of every qword = 1 << i: gf2p8affine's transpose */
    __mmask64 keep[TQ_MAX_CHUNKS];             /* gathered bytes that name an existing plane */
    __mmask64 load_lo[TQ_MAX_CHUNKS]; /* d = 32: the plane bytes in the window */
    __m512i units_lo, units_hi; /* scores: 128 + 32·centroid as bytes, each 128-bit lane */
    __m512i sunits_lo, sunits_hi; /* weighted sums: 32·centroid as signed bytes, likewise */
    __mmask64 hi_bytes[TQ_MAX_CHUNKS]; /* scores: the chunk's coordinates of width b+1 */
    __mmask64 q8_bytes;       /* scores: the bytes of a chunk of the int8 query */
} tqg;

static __mmask64 low_bits(int64_t n) {
    return n <= 0 ? 0 : n >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << n) - 1);
}

static tqg make_ctx(const rk_kv_tq_state *s) {
    tqg x;
    const int64_t d = s->dim, pb = (int64_t)s->plane_bytes;
    x.s = s;
    /* The window of chunk c starts at the planes + 8c; plane p's byte for group k of the chunk
     * is at p*pb + k, whatever c is. */
    uint8_t gather[64] = {0};
    for (int k = 0; k < 8; k++)
        for (int p = 0; p <= RK_KV_TQ_MAX_WIDTH - 1 && p <= s->b; p++)
            gather[8 * k + 7 - p] = (uint8_t)(p * pb + k);
    x.gather = _mm512_loadu_si512(gather);
    x.ident = _mm512_set1_epi64((long long)0x8040201008040201ull);
    const int64_t plane_total = s->b * pb + s->n_hi / 8;
    for (int64_t ch = 0; ch < N_CHUNKS(d); ch++) {
        __mmask64 keep = 0;
        for (int k = 0; k < 8 && 64 * ch + 8 * k < d; k++) {
            const int width = s->b + (64 * ch + 8 * k < s->n_hi);
            for (int p = 0; p < width; p++)
                keep |= (__mmask64)1 << (8 * k + 7 - p);
        }
        x.keep[ch] = keep;
        x.load_lo[ch] = low_bits(plane_total - 8 * ch);
        x.hi_bytes[ch] = low_bits(s->n_hi - 64 * ch);
    }
    uint8_t ulo[64] = {0}, uhi[64] = {0}, slo[64] = {0}, shi[64] = {0};
    for (int i = 0; i < 64; i++) {
        const int code = i % 16;
        if (code < 1 << s->b) ulo[i] = (uint8_t)(128 + s->book[0].units[code]);
        if (s->n_hi > 0) uhi[i] = (uint8_t)(128 + s->book[1].units[code]);
        if (code < 1 << s->b) slo[i] = (uint8_t)s->book[0].units[code];
        if (s->n_hi > 0) shi[i] = (uint8_t)s->book[1].units[code];
    }
    x.units_lo = _mm512_loadu_si512(ulo);
    x.units_hi = _mm512_loadu_si512(uhi);
    x.sunits_lo = _mm512_loadu_si512(slo);
    x.sunits_hi = _mm512_loadu_si512(shi);
    x.q8_bytes = low_bits(d);
    return x;
}

rk_status rk_kv_tq_avx512_init(rk_kv_tq_state *s, rk_error *err) {
    tqg *x = aligned_alloc(64, (sizeof(tqg) + 63) / 64 * 64);
    if (!x) return rk_error_set(err, RK_ERR_NO_MEMORY, "kv codec tq: out of memory (kernel tables)");
    *x = make_ctx(s);
    s->avx512_tables = x;
    return RK_OK;
}

/* The bytes a chunk's window reads past the end of its row: at most this many past the page's
 * last row, into the page mean (2 + d bytes), is safe to load without a mask. */
static int64_t window_overrun(const rk_kv_tq_state *s) {
    const int64_t d = s->dim;
    return (int64_t)s->off_planes + 8 * (N_CHUNKS(d) - 1) + (d > 128 ? 128 : 64) -
           (int64_t)s->row_bytes;
}

int rk_kv_tq_avx512_supports(const rk_kv_tq_state *s) {
    return s->dim >= 32 && s->dim <= 256 && s->n_hi % 16 == 0 &&
           (s->dim == 32 || window_overrun(s) <= (int64_t)s->mean_bytes);
}

/* The 64 codes (one byte each) of chunk ch of a row; WIDE: the planes span two zmm (d = 256).
 * The window is loaded whole (a masked load is slower here), reaching into the next rows or the
 * page mean (rk_kv_tq_avx512_supports checks it stays in the page); only d = 32, whose mean is
 * too short, uses masks. Bytes outside the row's planes are never gathered. */
TQ_ALWAYS_INLINE __m512i chunk_codes(const tqg *x, int D, const uint8_t *row, int64_t ch) {
    const int WIDE = D > 128;
    const uint8_t *w = row + x->s->off_planes + 8 * ch;
    const __m512i lo = D == 32 ? _mm512_maskz_loadu_epi8(x->load_lo[ch], w) : _mm512_loadu_si512(w);
    __m512i planes;
    if (WIDE) {
        const __m512i hi = _mm512_loadu_si512(w + 64);
        planes = _mm512_maskz_permutex2var_epi8(x->keep[ch], lo, x->gather, hi);
    } else {
        planes = _mm512_maskz_permutexvar_epi8(x->keep[ch], x->gather, lo);
    }
    return _mm512_gf2p8affine_epi64_epi8(x->ident, planes, 0);
}

/* ±1.0 from the 16 QJL sign bits of block k (a set bit is +1). */
TQ_ALWAYS_INLINE __m512 block_signs(const tqg *x, const uint8_t *row, int64_t k) {
    uint16_t bits;
    memcpy(&bits, row + x->s->off_signs + 2 * k, 2);
    return _mm512_mask_blend_ps(_cvtu32_mask16(bits), _mm512_set1_ps(-1.0f),
                                _mm512_set1_ps(1.0f));
}

/* Lane i = the sum of the 16 lanes of v[i], i < 8, all by the same tree of additions. */
TQ_ALWAYS_INLINE __m256 hsum8_ps(const __m512 v[8]) {
    __m512 pair[4], quad[2];
    for (int i = 0; i < 4; i++) /* 128-bit lanes: [a.0+a.2, a.1+a.3, b.0+b.2, b.1+b.3] */
        pair[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44),
                                _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
    for (int i = 0; i < 2; i++) /* lane j: the four partial sums of v[4i + j] */
        quad[i] = _mm512_add_ps(_mm512_shuffle_f32x4(pair[2 * i], pair[2 * i + 1], 0x88),
                                _mm512_shuffle_f32x4(pair[2 * i], pair[2 * i + 1], 0xDD));
    /* lane j: [v_j: 0+2, 1+3, v_{4+j}: 0+2, 1+3] */
    const __m512 h = _mm512_add_ps(_mm512_shuffle_ps(quad[0], quad[1], 0x44),
                                   _mm512_shuffle_ps(quad[0], quad[1], 0xEE));
    /* lane j: [v_j, v_{4+j}, v_j, v_{4+j}] */
    const __m512 f = _mm512_add_ps(_mm512_shuffle_ps(h, h, 0x88), _mm512_shuffle_ps(h, h, 0xDD));
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_castps512_ps256(_mm512_permutexvar_ps(order, f));
}

TQ_ALWAYS_INLINE void hsum8(const __m512 v[8], float sums[8]) { _mm256_storeu_ps(sums, hsum8_ps(v)); }

/* ---- scores ---- */


/* The chunk's 64 centroids as 128 + 32·C[code], unsigned bytes (in-lane table lookups). */
TQ_ALWAYS_INLINE __m512i chunk_units(const tqg *x, __m512i codes, int64_t ch) {
    return _mm512_mask_blend_epi8(x->hi_bytes[ch], _mm512_shuffle_epi8(x->units_lo, codes),
                                  _mm512_shuffle_epi8(x->units_hi, codes));
}

/* acc[r*G + g] += Σ_j qi_gj (128 + 32 C_rj) over the whole row, in 16 int32 lanes: one VNNI
 * instruction per 64 coordinates and head (at most 256 · 127 · 215 in a lane: no overflow). */
TQ_ALWAYS_INLINE void tile_dots(__m512i *acc, const tqg *x, int D, const uint8_t *row, int R,
                                const float *qp, int64_t prep, int G) {
    const size_t rb = x->s->row_bytes;
    for (int ch = 0; ch < N_CHUNKS(D); ch++) {
        __m512i q8[4];
#pragma GCC unroll 4
        for (int g = 0; g < G; g++) {
            const uint8_t *q = (const uint8_t *)(qp + g * prep + x->s->prep_q8) + 64 * ch;
            q8[g] = D == 32 ? _mm512_maskz_loadu_epi8(x->q8_bytes, q) : _mm512_loadu_si512(q);
        }
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m512i u = chunk_units(x, chunk_codes(x, D, row + (size_t)r * rb, ch), ch);
#pragma GCC unroll 4
            for (int g = 0; g < G; g++)
                acc[r * G + g] = _mm512_dpbusd_epi32(acc[r * G + g], u, q8[g]);
        }
    }
}

TQ_ALWAYS_INLINE void tile_sketch(__m512 *acc, const tqg *x, int D, const uint8_t *row, int R,
                                  const float *sq, int64_t prep, int G) {
    const size_t rb = x->s->row_bytes;
    for (int k = 0; k < D / 16; k++)
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m512 v = block_signs(x, row + (size_t)r * rb, k);
#pragma GCC unroll 4
            for (int g = 0; g < G; g++)
                acc[r * G + g] =
                    _mm512_fmadd_ps(_mm512_loadu_ps(sq + g * prep + 16 * k), v, acc[r * G + g]);
        }
}

/* Scores of R rows x G heads into out[g * out_stride + r], scaled as the scalar kernel does. */
TQ_ALWAYS_INLINE void scores_tile(const tqg *x, int D, const uint8_t *row, int R, const float *qp,
                                  int64_t prep, int G, float scale, float *out,
                                  int64_t out_stride) {
    const rk_kv_tq_state *s = x->s;
    __m512i iacc[TQ_MAX_TILE];
    __m512 acc[TQ_MAX_TILE];
    float sum[TQ_MAX_TILE];
#pragma GCC unroll 8
    for (int i = 0; i < TQ_MAX_TILE; i++)
        iacc[i] = _mm512_setzero_si512();
    tile_dots(iacc, x, D, row, R, qp, prep, G);
#pragma GCC unroll 8
    for (int i = 0; i < TQ_MAX_TILE; i++) /* integers below 2^24: exact in float, in any order */
        acc[i] = _mm512_cvtepi32_ps(iacc[i]);
    hsum8(acc, sum);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        const uint8_t *ri = row + (size_t)r * s->row_bytes;
        const float mse = scale * (row_norm(ri) * s->inv_sqrt_d);
#pragma GCC unroll 4
        for (int g = 0; g < G; g++) {
            const float *q = qp + g * prep;
            const float dot = (sum[r * G + g] - q[s->prep_qsum]) * (1.0f / RK_KV_TQ_CENTROID_UNITS);
            out[g * out_stride + r] = mse * (q[s->prep_qscale] * dot);
        }
    }
    if (!s->qjl) return;
#pragma GCC unroll 8
    for (int i = 0; i < TQ_MAX_TILE; i++)
        acc[i] = _mm512_setzero_ps();
    tile_sketch(acc, x, D, row, R, qp + s->prep_sketch, prep, G);
    hsum8(acc, sum);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        const uint8_t *ri = row + (size_t)r * s->row_bytes;
        const float qjl = scale * (s->qjl_coef * _cvtsh_ss(rk_kv_tq_row_head(ri + s->off_gamma)));
#pragma GCC unroll 4
        for (int g = 0; g < G; g++)
            out[g * out_stride + r] += qjl * sum[r * G + g];
    }
}

/* Scores of 8 rows x G <= 3 heads into out[g * out_stride + 0..7]: 8G accumulators, reduced per
 * head into the 8 rows' lanes, so the scaling and the store are one vector operation each (for
 * d <= 128, where they would otherwise cost as much as the dot products). mse[r] is the row's
 * scale * (nu * inv_sqrt_d), as scores_tile computes it; the bits are scores_tile's. */
TQ_ALWAYS_INLINE void scores_8rows(const tqg *x, int D, const uint8_t *row, const float *mse,
                                   const float *qp, int64_t prep, int G, float *out,
                                   int64_t out_stride) {
    const rk_kv_tq_state *s = x->s;
    __m512i iacc[8 * 3];
#pragma GCC unroll 24
    for (int i = 0; i < 8 * G; i++)
        iacc[i] = _mm512_setzero_si512();
    tile_dots(iacc, x, D, row, 8, qp, prep, G);
    const __m256 row_mse = _mm256_loadu_ps(mse);
#pragma GCC unroll 3
    for (int g = 0; g < G; g++) {
        const float *q = qp + g * prep;
        __m512 acc[8];
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++)
            acc[r] = _mm512_cvtepi32_ps(iacc[r * G + g]);
        const __m256 dot = _mm256_mul_ps(_mm256_sub_ps(hsum8_ps(acc), _mm256_set1_ps(q[s->prep_qsum])),
                                         _mm256_set1_ps(1.0f / RK_KV_TQ_CENTROID_UNITS));
        _mm256_storeu_ps(out + g * out_stride,
                         _mm256_mul_ps(row_mse, _mm256_mul_ps(_mm256_set1_ps(q[s->prep_qscale]), dot)));
    }
}

/* Rows of a page in tiles of R (then one at a time), for G heads. */
TQ_ALWAYS_INLINE void scores_rows(const tqg *x, int D, const uint8_t *rows, int64_t n,
                                  const float *qp, int64_t prep, int G, float scale, float *out,
                                  int64_t out_stride) {
    const int R = TQ_MAX_TILE / G;
    const size_t rb = x->s->row_bytes;
    int64_t t = 0;
    if (D <= 128 && G <= 3 && !x->s->qjl) {
        /* the 8-row tiles scale by a vector of row scales; scores_tile reads its rows' norms as
         * it goes (a pass of its own over the page's rows costs a memory pass at d = 256) */
        float mse[RK_KV_PAGE_TOKENS];
        for (int64_t i = 0; i < n; i++)
            mse[i] = scale * (row_norm(rows + (size_t)i * rb) * x->s->inv_sqrt_d);
        for (; t + 8 <= n; t += 8)
            scores_8rows(x, D, rows + (size_t)t * rb, mse + t, qp, prep, G, out + t, out_stride);
    }
    for (; t + R <= n; t += R)
        scores_tile(x, D, rows + (size_t)t * rb, R, qp, prep, G, scale, out + t, out_stride);
    for (; t < n; t++)
        scores_tile(x, D, rows + (size_t)t * rb, 1, qp, prep, G, scale, out + t, out_stride);
}

TQ_ALWAYS_INLINE void scores_dim(const tqg *x, int D, const uint8_t *rows, int64_t n,
                                 const float *qp, int64_t prep, int64_t n_q, float scale,
                                 float *out, int64_t out_stride) {
    for (int64_t g0 = 0; g0 < n_q; g0 += 4) {
        const float *q = qp + g0 * prep;
        float *o = out + g0 * out_stride;
        switch (n_q - g0 >= 4 ? 4 : n_q - g0) {
        case 1: scores_rows(x, D, rows, n, q, prep, 1, scale, o, out_stride); break;
        case 2: scores_rows(x, D, rows, n, q, prep, 2, scale, o, out_stride); break;
        case 3: scores_rows(x, D, rows, n, q, prep, 3, scale, o, out_stride); break;
        default: scores_rows(x, D, rows, n, q, prep, 4, scale, o, out_stride); break;
        }
    }
}

void rk_kv_tq_scores_avx512(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                            const float *qp, int64_t n_q, float scale, float *out,
                            int64_t out_stride) {
    const rk_kv_tq_state *s = c->state;
    const tqg *x = s->avx512_tables;
    const uint8_t *rows = page + (size_t)t0 * s->row_bytes;
    const int64_t prep = c->prep_floats;
    switch (s->dim) {
    case 32: scores_dim(x, 32, rows, n, qp, prep, n_q, scale, out, out_stride); break;
    case 64: scores_dim(x, 64, rows, n, qp, prep, n_q, scale, out, out_stride); break;
    case 128: scores_dim(x, 128, rows, n, qp, prep, n_q, scale, out, out_stride); break;
    default: scores_dim(x, 256, rows, n, qp, prep, n_q, scale, out, out_stride); break;
    }
}

/* ---- weighted sums ---- */

/* The chunk's 64 centroids as signed bytes 32·C[code] (in-lane table lookups). */
TQ_ALWAYS_INLINE __m512i chunk_sunits(const tqg *x, __m512i codes, int64_t ch) {
    return _mm512_mask_blend_epi8(x->hi_bytes[ch], _mm512_shuffle_epi8(x->sunits_lo, codes),
                                  _mm512_shuffle_epi8(x->sunits_hi, codes));
}

/* Rows a and b's units of a chunk as int16 pairs (a in the low half of each dword), 16 dwords
 * per vector in the in-lane order of the byte unpack: p[0] holds coordinates 0-7 and 16-23,
 * p[1] 32-39 and 48-55, p[2] 8-15 and 24-31, p[3] 40-47 and 56-63. */
TQ_ALWAYS_INLINE void unit_pairs(__m512i ua, __m512i ub, __m512i p[4]) {
    const __m512i lo = _mm512_unpacklo_epi8(ua, ub), hi = _mm512_unpackhi_epi8(ua, ub);
    p[0] = _mm512_cvtepi8_epi16(_mm512_castsi512_si256(lo));
    p[1] = _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(lo, 1));
    p[2] = _mm512_cvtepi8_epi16(_mm512_castsi512_si256(hi));
    p[3] = _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(hi, 1));
}

/* The first coordinate (within a chunk) of the two runs of 8 that pair vector k holds. */
static const int pair_first[4][2] = {{0, 16}, {32, 48}, {8, 24}, {40, 56}};

/* Chunk ch of acc_g += wscale_g · Σ_t w16_g[t]·32·C(row t) for G heads: rows in pairs, one
 * vpdpwssd per pair, 16 coordinates and head. w16 + g * W16_STRIDE holds head g's int16 weights,
 * zero from n on, so rows 2i and 2i+1 are one dword. The sums are exact integers: |w16| <= 32767
 * and |32·C| <= 127 give at most 2^31 / 2.1 over a page's 256 rows. Blocks beyond D (d = 32) are
 * not stored. */
#define W16_STRIDE (RK_KV_PAGE_TOKENS + 16)
TQ_ALWAYS_INLINE void wsum_chunk(const tqg *x, int D, int G, const uint8_t *rows, int64_t n,
                                 int ch, const int16_t *w16, const float *wscale, float *acc) {
    const size_t rb = x->s->row_bytes;
    const int K = CHUNK_BLOCKS(D); /* 4, or 2 at d = 32: pair vectors 0 and 2 */
    __m512i a[4][4];
#pragma GCC unroll 4
    for (int g = 0; g < G; g++)
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++)
            a[g][k] = _mm512_setzero_si512();
    for (int64_t t = 0; t < n; t += 2) {
        const __m512i ua = chunk_sunits(x, chunk_codes(x, D, rows + (size_t)t * rb, ch), ch);
        const __m512i ub = t + 1 < n ? chunk_sunits(x, chunk_codes(x, D, rows + (size_t)(t + 1) * rb, ch), ch)
                                     : _mm512_setzero_si512();
        __m512i p[4];
        unit_pairs(ua, ub, p);
#pragma GCC unroll 4
        for (int g = 0; g < G; g++) {
            int32_t pair;
            memcpy(&pair, w16 + g * W16_STRIDE + t, sizeof pair);
            const __m512i w = _mm512_set1_epi32(pair);
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++)
                if (K == 4 || k % 2 == 0) a[g][k] = _mm512_dpwssd_epi32(a[g][k], p[k], w);
        }
    }
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) {
        const __m512 sc = _mm512_set1_ps(wscale[g]);
        float *o = acc + g * D + 64 * ch;
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            if (K != 4 && k % 2 != 0) continue;
            const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(a[g][k]), sc);
            float *o0 = o + pair_first[k][0], *o1 = o + pair_first[k][1];
            _mm256_storeu_ps(o0, _mm256_add_ps(_mm256_loadu_ps(o0), _mm512_castps512_ps256(f)));
            _mm256_storeu_ps(o1, _mm256_add_ps(_mm256_loadu_ps(o1), _mm512_extractf32x8_ps(f, 1)));
        }
    }
}

/* Head weights w (n of them) times the row scales, rounded to int16 in units of the largest,
 * into w16 (zero from n to the next multiple of 16); returns that unit. cvtps_epi32 rounds to
 * nearest even, as lrintf does. */
static float quantize_weights(const float *w, const float *norm, int64_t n, int16_t *w16) {
    __m512 vmax = _mm512_setzero_ps();
    for (int64_t t = 0; t < n; t += 16) {
        const __mmask16 m = (__mmask16)low_bits(n - t);
        const __m512 ws = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + t), _mm512_maskz_loadu_ps(m, norm + t));
        vmax = _mm512_max_ps(vmax, _mm512_abs_ps(ws));
    }
    const float wmax = _mm512_reduce_max_ps(vmax);
    const __m512 inv = _mm512_set1_ps(wmax > 0.0f ? 32767.0f / wmax : 0.0f);
    for (int64_t t = 0; t < n; t += 16) {
        const __mmask16 m = (__mmask16)low_bits(n - t);
        const __m512 ws = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + t), _mm512_maskz_loadu_ps(m, norm + t));
        _mm256_storeu_si256((__m256i *)(w16 + t), _mm512_cvtsepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(ws, inv))));
    }
    return wmax / 32767.0f;
}

/* Per head, the weights times the rows' scales, ws_t = w_t·nu_t/sqrt(d), are rounded to int16
 * in units of max_t |ws_t| / 32767 (an error of at most 1/65534 of the page's largest weight
 * per row, far below the codec's own), then summed exactly (wsum_chunk). */
TQ_ALWAYS_INLINE void wsum_dim(const tqg *x, int D, const uint8_t *rows, int64_t n, int64_t n_q,
                               const float *w, int64_t w_stride, float *acc) {
    float norm[RK_KV_PAGE_TOKENS]; /* n <= RK_KV_PAGE_TOKENS */
    int16_t w16[4 * W16_STRIDE];
    for (int64_t t = 0; t < n; t++)
        norm[t] = row_norm(rows + (size_t)t * x->s->row_bytes) * x->s->inv_sqrt_d;
    for (int64_t g0 = 0; g0 < n_q; g0 += 4) {
        const int G = n_q - g0 >= 4 ? 4 : (int)(n_q - g0);
        float wscale[4];
        for (int g = 0; g < G; g++)
            wscale[g] = quantize_weights(w + (g0 + g) * w_stride, norm, n, w16 + g * W16_STRIDE) *
                        (1.0f / RK_KV_TQ_CENTROID_UNITS);
        float *a = acc + g0 * D;
        for (int ch = 0; ch < N_CHUNKS(D); ch++) {
            switch (G) {
            case 1: wsum_chunk(x, D, 1, rows, n, ch, w16, wscale, a); break;
            case 2: wsum_chunk(x, D, 2, rows, n, ch, w16, wscale, a); break;
            case 3: wsum_chunk(x, D, 3, rows, n, ch, w16, wscale, a); break;
            default: wsum_chunk(x, D, 4, rows, n, ch, w16, wscale, a); break;
            }
        }
    }
}

void rk_kv_tq_weighted_sum_avx512(const rk_kv_codec *c, const uint8_t *page, int64_t t0,
                                  int64_t n, const float *w, int64_t w_stride, int64_t n_q,
                                  float *acc) {
    const rk_kv_tq_state *s = c->state;
    const tqg *x = s->avx512_tables;
    const uint8_t *rows = page + (size_t)t0 * s->row_bytes;
    switch (s->dim) {
    case 32: wsum_dim(x, 32, rows, n, n_q, w, w_stride, acc); break;
    case 64: wsum_dim(x, 64, rows, n, n_q, w, w_stride, acc); break;
    case 128: wsum_dim(x, 128, rows, n, n_q, w, w_stride, acc); break;
    default: wsum_dim(x, 256, rows, n, n_q, w, w_stride, acc); break;
    }
}
