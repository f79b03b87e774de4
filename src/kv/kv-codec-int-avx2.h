/*
 * kv-codec-int-avx2.h — the AVX2 attention kernels the f16, q8 and q4 codecs share (include
 * only from *-avx2.c files).
 *
 * A codec supplies one function, load8(c, row, j): channels j..j+7 (j a multiple of 8) of a
 * row, decoded to 8 floats in a register. The kernels are written once around it and
 * instantiated per codec (load8 is inlined through the constant function pointer). A row is
 * decoded once per call for up to RK_KV_TILE query heads, into registers only. (q4 first
 * unpacks small batches of rows onto the stack, 32 codes at a time, and runs these kernels on
 * them: see kv-codec-q4-avx2.c.)
 *
 *   dot (scores)     R rows x NQ heads of accumulators, NQ x R <= 12 (R = 4, 4, 3, 3, 2, 2,
 *                    1, 1 for NQ = 1..8): per 8 channels, R decodes, NQ query loads and
 *                    NQ x R FMAs; the sums are reduced four at a time with hadd.
 *   axpy (w-sum)     RK_KV_AXPY_ROWS rows at a time; per block of C x 8 channels (C = 8, 4,
 *                    2, 2, 1.. for NQ = 1, 2, 3, 4, 5..) the NQ x C accumulators are loaded,
 *                    take the rows' decodes x weight broadcasts, and are stored.
 *
 * Both prefetch the rows ahead in address order (rk_kv_prefetch_step): reading 3-8 rows side
 * by side defeats the hardware prefetchers, and 512-byte rows (f16, d = 256) then stream at a
 * third of the memory bandwidth.
 *
 * Where the time goes (bench/bench-kv-codec.c; one core of the dev machine: ~7.3 G FMA
 * instructions/s peak, ~27 GB/s from memory): at n_q = 4 the kernels run at 5-6 G FMA/s, so a
 * page costs about n_q * dim * 256 / 8 FMAs / 5.5 G whatever the codec. f16 pages stream from
 * memory at 12-18 GB/s (the FMAs, not the bytes, set the pace at n_q = 4); q8 and q4 read
 * fewer bytes per FMA and are compute-bound.
 * More than RK_KV_TILE heads are taken RK_KV_TILE at a time (rows decoded again per tile).
 */
#ifndef RK_KV_CODEC_INT_AVX2_H
#define RK_KV_CODEC_INT_AVX2_H

#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "kv/kv-codec-int.h"
#include "quant/quant-simd-avx2.h"

#define RK_KV_TILE 8        /* query heads per pass over the rows */
#define RK_KV_AXPY_ROWS 8   /* rows per block of the weighted sum */
#define RK_KV_PREFETCH 2048 /* prefetch distance in bytes (at least one block of rows) */
#define RK_KV_INLINE static inline __attribute__((always_inline))

/* Channels j..j+7 of the row at `row` of codec c, decoded. */
typedef __m256 (*rk_kv_load8_fn)(const rk_kv_codec *c, const uint8_t *row, int64_t j);

/* The sums of a0, a1, a2, a3 as the four lanes of one vector. */
static inline __m128 rk_kv_hsum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* Software prefetch of the rows ahead: the hardware prefetchers lose track of several rows
 * read side by side (rows of 512 bytes run at a third of the memory bandwidth without this).
 * A kernel reading a block of rows in steps prefetches `step` bytes per step, in address
 * order, max(RK_KV_PREFETCH, block_bytes) ahead; step = 0 turns it off (rows on the stack). */
static inline int64_t rk_kv_prefetch_bytes(bool on, int64_t block_bytes, int64_t n_steps) {
    return on && n_steps > 0 ? (block_bytes + n_steps - 1) / n_steps : 0;
}

RK_KV_INLINE void rk_kv_prefetch_step(const uint8_t *block, int64_t block_bytes, int64_t it,
                                      int64_t step) {
    const uint8_t *ahead = block + (block_bytes > RK_KV_PREFETCH ? block_bytes : RK_KV_PREFETCH);
    for (int64_t b = it * step; b < (it + 1) * step && b < block_bytes; b += 64)
        _mm_prefetch((const char *)(ahead + b), _MM_HINT_T0);
}

/* A dot-product job: out[g * out_stride + t] (= or +=) Σ_(j < d8) q[g * q_stride + j] *
 * row_t[j] for t < n, g < n_q, where row t is at rows + t * stride. */
typedef struct rk_kv_dot_job {
    const rk_kv_codec *c;
    const uint8_t *rows;
    int64_t stride, n, d8; /* d8: channels, a multiple of 8 */
    const float *q;        /* (n_q, q_stride) */
    int64_t q_stride, n_q;
    float *out; /* (n_q, out_stride) */
    int64_t out_stride;
    bool accumulate; /* add to out instead of setting it */
    bool prefetch;   /* the rows are in memory (not a buffer on the stack) */
} rk_kv_dot_job;

/* Rows t..t+R-1 for heads g0..g0+NQ-1 of the job. */
RK_KV_INLINE void rk_kv_dot_block(const rk_kv_dot_job *jb, int64_t t, int64_t g0, const int NQ,
                                  const int R, int64_t pf_step, rk_kv_load8_fn load8) {
    const uint8_t *rows = jb->rows + t * jb->stride;
    const float *q = jb->q + g0 * jb->q_stride;
    __m256 a[12];
    for (int k = 0; k < NQ * R; k++)
        a[k] = _mm256_setzero_ps();
    for (int64_t j = 0; j < jb->d8; j += 8) {
        rk_kv_prefetch_step(rows, R * jb->stride, j / 8, pf_step);
        __m256 k8[4];
        for (int r = 0; r < R; r++)
            k8[r] = load8(jb->c, rows + r * jb->stride, j);
        for (int g = 0; g < NQ; g++) {
            const __m256 x = _mm256_loadu_ps(q + g * jb->q_stride + j);
            for (int r = 0; r < R; r++)
                a[g * R + r] = _mm256_fmadd_ps(x, k8[r], a[g * R + r]);
        }
    }
    float s[12];
    for (int k = 0; k < NQ * R; k += 4) { /* four sums at a time; missing ones are zero */
        const __m256 z = _mm256_setzero_ps();
        const __m256 a1 = k + 1 < NQ * R ? a[k + 1] : z, a2 = k + 2 < NQ * R ? a[k + 2] : z;
        _mm_storeu_ps(s + k, rk_kv_hsum4(a[k], a1, a2, k + 3 < NQ * R ? a[k + 3] : z));
    }
    for (int g = 0; g < NQ; g++)
        for (int r = 0; r < R; r++) {
            float *o = jb->out + (g0 + g) * jb->out_stride + t + r;
            *o = (jb->accumulate ? *o : 0.0f) + s[g * R + r];
        }
}

/* Every row for heads g0..g0+NQ-1: blocks of R rows (NQ x R <= 12), then single rows. */
RK_KV_INLINE void rk_kv_dot_heads(const rk_kv_dot_job *jb, int64_t g0, const int NQ,
                                  rk_kv_load8_fn load8) {
    const int R = NQ <= 2 ? 4 : NQ <= 4 ? 3 : NQ <= 6 ? 2 : 1;
    const int64_t pf = rk_kv_prefetch_bytes(jb->prefetch, R * jb->stride, jb->d8 / 8);
    const int64_t pf1 = rk_kv_prefetch_bytes(jb->prefetch, jb->stride, jb->d8 / 8);
    int64_t t = 0;
    for (; t + R <= jb->n; t += R)
        rk_kv_dot_block(jb, t, g0, NQ, R, pf, load8);
    for (; t < jb->n; t++)
        rk_kv_dot_block(jb, t, g0, NQ, 1, pf1, load8);
}

/* Runs a dot job, RK_KV_TILE heads at a time. */
RK_KV_INLINE void rk_kv_dot_avx2(const rk_kv_dot_job *jb, rk_kv_load8_fn load8) {
    for (int64_t g0 = 0; g0 < jb->n_q; g0 += RK_KV_TILE) {
        switch (rk_kv_min64(RK_KV_TILE, jb->n_q - g0)) {
        case 1: rk_kv_dot_heads(jb, g0, 1, load8); break;
        case 2: rk_kv_dot_heads(jb, g0, 2, load8); break;
        case 3: rk_kv_dot_heads(jb, g0, 3, load8); break;
        case 4: rk_kv_dot_heads(jb, g0, 4, load8); break;
        case 5: rk_kv_dot_heads(jb, g0, 5, load8); break;
        case 6: rk_kv_dot_heads(jb, g0, 6, load8); break;
        case 7: rk_kv_dot_heads(jb, g0, 7, load8); break;
        default: rk_kv_dot_heads(jb, g0, 8, load8); break;
        }
    }
}

/* A weighted-sum job: acc[g * acc_stride + j] += Σ_(t < n) w[g * w_stride + t] * row_t[j]
 * for j < d8, g < n_q, where row t is at rows + t * stride. */
typedef struct rk_kv_axpy_job {
    const rk_kv_codec *c;
    const uint8_t *rows;
    int64_t stride, n, d8; /* d8: channels, a multiple of 8 */
    const float *w;        /* (n_q, w_stride) */
    int64_t w_stride, n_q;
    float *acc; /* (n_q, acc_stride) */
    int64_t acc_stride;
    bool prefetch; /* the rows are in memory (not a buffer on the stack) */
} rk_kv_axpy_job;

/* Rows t0..t0+R-1, heads g0..g0+NQ-1, channels from j_begin in blocks of C vectors while
 * they fit: each block's NQ x C accumulators are loaded, get the R rows' FMAs, and are stored. */
RK_KV_INLINE void rk_kv_axpy_block(const rk_kv_axpy_job *jb, int64_t t0, int64_t g0,
                                   int64_t j_begin, const int NQ, const int R, const int C,
                                   int64_t pf_step, rk_kv_load8_fn load8) {
    const uint8_t *rows = jb->rows + t0 * jb->stride;
    const float *w = jb->w + g0 * jb->w_stride + t0;
    float *acc = jb->acc + g0 * jb->acc_stride;
    for (int64_t j0 = j_begin; j0 + 8 * C <= jb->d8; j0 += 8 * C) {
        rk_kv_prefetch_step(rows, R * jb->stride, j0 / (8 * C), pf_step);
        __m256 a[8];
        for (int g = 0; g < NQ; g++)
            for (int i = 0; i < C; i++)
                a[g * C + i] = _mm256_loadu_ps(acc + g * jb->acc_stride + j0 + 8 * i);
        for (int r = 0; r < R; r++) {
            __m256 v[8];
            for (int i = 0; i < C; i++)
                v[i] = load8(jb->c, rows + r * jb->stride, j0 + 8 * i);
            for (int g = 0; g < NQ; g++) {
                const __m256 wt = _mm256_broadcast_ss(w + g * jb->w_stride + r);
                for (int i = 0; i < C; i++)
                    a[g * C + i] = _mm256_fmadd_ps(wt, v[i], a[g * C + i]);
            }
        }
        for (int g = 0; g < NQ; g++)
            for (int i = 0; i < C; i++)
                _mm256_storeu_ps(acc + g * jb->acc_stride + j0 + 8 * i, a[g * C + i]);
    }
}

/* Every row for heads g0..g0+NQ-1: blocks of RK_KV_AXPY_ROWS rows, then single rows; channels
 * C vectors at a time (NQ x C <= 8), the last ones single. */
RK_KV_INLINE void rk_kv_axpy_heads(const rk_kv_axpy_job *jb, int64_t g0, const int NQ,
                                   rk_kv_load8_fn load8) {
    const int C = NQ == 1 ? 8 : NQ == 2 ? 4 : NQ <= 4 ? 2 : 1, R = RK_KV_AXPY_ROWS;
    const int64_t split = jb->d8 / (8 * C) * (8 * C);
    const int64_t pf = rk_kv_prefetch_bytes(jb->prefetch, R * jb->stride, jb->d8 / (8 * C));
    const int64_t pf8 = rk_kv_prefetch_bytes(jb->prefetch, R * jb->stride, jb->d8 / 8);
    int64_t t = 0;
    for (; t + R <= jb->n; t += R) {
        rk_kv_axpy_block(jb, t, g0, 0, NQ, R, C, pf, load8);
        rk_kv_axpy_block(jb, t, g0, split, NQ, R, 1, pf8, load8);
    }
    for (; t < jb->n; t++) { /* single rows: the hardware prefetchers follow one row */
        rk_kv_axpy_block(jb, t, g0, 0, NQ, 1, C, 0, load8);
        rk_kv_axpy_block(jb, t, g0, split, NQ, 1, 1, 0, load8);
    }
}

/* Runs a weighted-sum job, RK_KV_TILE heads at a time. */
RK_KV_INLINE void rk_kv_axpy_avx2(const rk_kv_axpy_job *jb, rk_kv_load8_fn load8) {
    for (int64_t g0 = 0; g0 < jb->n_q; g0 += RK_KV_TILE) {
        switch (rk_kv_min64(RK_KV_TILE, jb->n_q - g0)) {
        case 1: rk_kv_axpy_heads(jb, g0, 1, load8); break;
        case 2: rk_kv_axpy_heads(jb, g0, 2, load8); break;
        case 3: rk_kv_axpy_heads(jb, g0, 3, load8); break;
        case 4: rk_kv_axpy_heads(jb, g0, 4, load8); break;
        case 5: rk_kv_axpy_heads(jb, g0, 5, load8); break;
        case 6: rk_kv_axpy_heads(jb, g0, 6, load8); break;
        case 7: rk_kv_axpy_heads(jb, g0, 7, load8); break;
        default: rk_kv_axpy_heads(jb, g0, 8, load8); break;
        }
    }
}

/* 32 q4 codes (16 bytes, layout of rk_kv_q4_code) as floats: channels 0-7, 8-15, 16-23, 24-31. */
static inline void rk_kv_q4_block_avx2(const uint8_t *p, __m256 out[4]) {
    const __m256i lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
    const __m256i hi = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + 8)));
    const __m256i m = _mm256_set1_epi32(0x0F);
    out[0] = _mm256_cvtepi32_ps(_mm256_and_si256(lo, m));
    out[1] = _mm256_cvtepi32_ps(_mm256_and_si256(hi, m));
    out[2] = _mm256_cvtepi32_ps(_mm256_srli_epi32(lo, 4));
    out[3] = _mm256_cvtepi32_ps(_mm256_srli_epi32(hi, 4));
}

#endif
