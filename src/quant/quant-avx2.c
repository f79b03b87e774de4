/*
 * quant-avx2.c — AVX2/FMA/F16C kernels for the float formats and the legacy 32-element blocks:
 * dot products (integer maddubs/madd per block, one fma per block into a float accumulator),
 * activation quantisation to Q8_0/Q8_1 (same bytes as the scalar reference), and
 * register-tiled batched dots for Q4_0, Q4_1, Q5_0 and Q8_0 (2 weight rows x 4 activation rows
 * per tile) whose outputs equal the single dots bit for bit. Compiled with -mavx2 -mfma -mf16c;
 * only called when the CPU has them.
 */
#include <immintrin.h>

#include "quant/quant-impl.h"
#include "quant/quant-simd-avx2.h"

/* ---- float formats --------------------------------------------------------------------- */

static inline __m256 load_f16x8(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
static inline __m256 load_bf16x8(const uint16_t *p) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

static inline __m256 load_f32x8(const float *p) { return _mm256_loadu_ps(p); }
static inline float f32_to_f32(float f) { return f; }

/* dot(w, y) for weights of element type T (converted 8 at a time by LOAD8, one at a time by
 * SCALAR for the tail) against f32 activations; 4 accumulators hide the FMA latency. */
#define DOT_WIDE(NAME, T, LOAD8, SCALAR)                                                       \
    float NAME(int64_t n, const void *w, const void *act) {                                   \
        const T *x = w;                                                                       \
        const float *y = act;                                                                 \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                           \
        int64_t i = 0;                                                                        \
        for (; i + 32 <= n; i += 32) {                                                        \
            a0 = _mm256_fmadd_ps(LOAD8(x + i), _mm256_loadu_ps(y + i), a0);                   \
            a1 = _mm256_fmadd_ps(LOAD8(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);           \
            a2 = _mm256_fmadd_ps(LOAD8(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);         \
            a3 = _mm256_fmadd_ps(LOAD8(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);         \
        }                                                                                     \
        for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(LOAD8(x + i), _mm256_loadu_ps(y + i), a0); \
        float s = rk_hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));    \
        for (; i < n; i++) s += SCALAR(x[i]) * y[i];                                          \
        return s;                                                                             \
    }

DOT_WIDE(rk_q_dot_f32_avx2, float, load_f32x8, f32_to_f32)
DOT_WIDE(rk_q_dot_f16_avx2, uint16_t, load_f16x8, rk_fp16_to_fp32)
DOT_WIDE(rk_q_dot_bf16_avx2, uint16_t, load_bf16x8, rk_bf16_to_fp32)

void rk_q_dequant_f16_avx2(const void *src, float *dst, int64_t n) {
    const uint16_t *s = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_f16x8(s + i));
    for (; i < n; i++) dst[i] = rk_fp16_to_fp32(s[i]);
}
void rk_q_dequant_bf16_avx2(const void *src, float *dst, int64_t n) {
    const uint16_t *s = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_bf16x8(s + i));
    for (; i < n; i++) dst[i] = rk_bf16_to_fp32(s[i]);
}

/* ---- legacy block dots ------------------------------------------------------------------ */
/* Each block: 32 int8 products summed to 8 int32 lanes, converted, scaled by d_w*d_a and added
 * into ONE float accumulator, blocks in order (rk_q_block_acc): exactly the per-pair sequence of
 * the 2x4 register tiles below, so a row's dot does not depend on whether it was computed alone
 * (decode) or in a tile (prefill). The tiles have no registers for a second chain per pair (16
 * ymm); one chain costs the in-cache Q8_0 dot about 7% (an fma latency per block), the nibble
 * formats 1-3%, and nothing measurable once weights stream from memory. The AVX-512 level has
 * two-chain dots and tiles of its own (quant-avx512.c). */

static inline __m256 scale2(uint16_t dw, uint16_t da) {
    return _mm256_set1_ps(rk_h2f(dw) * rk_h2f(da));
}
static inline __m256i load_q8(const int8_t *qs) { return _mm256_loadu_si256((const __m256i *)qs); }

/* dot of a format whose weights unpack to signed bytes (BYTES) with Q8_0 activations */
#define DOT_SIGNED(NAME, BLOCK, BYTES)                                                          \
    float NAME(int64_t n, const void *w, const void *act) {                                    \
        const BLOCK *x = w;                                                                    \
        const block_q8_0 *y = act;                                                             \
        const int64_t nb = n / QK;                                                             \
        __m256 acc = _mm256_setzero_ps();                                                      \
        int64_t i = 0;                                                                         \
        for (; i + 2 <= nb; i += 2) { /* two blocks' integer work ahead of their two fmas */   \
            const __m256i p0 = rk_dot_ss8(BYTES(&x[i]), load_q8(y[i].qs));                     \
            const __m256i p1 = rk_dot_ss8(BYTES(&x[i + 1]), load_q8(y[i + 1].qs));             \
            const __m256 s0 = scale2(x[i].d, y[i].d), s1 = scale2(x[i + 1].d, y[i + 1].d);     \
            acc = rk_q_block_acc(rk_q_block_acc(acc, s0, p0), s1, p1);                         \
        }                                                                                      \
        if (i < nb) acc = rk_q_block_acc(acc, scale2(x[i].d, y[i].d), rk_dot_ss8(BYTES(&x[i]), load_q8(y[i].qs))); \
        return rk_hsum_ps(acc);                                                                \
    }

DOT_SIGNED(rk_q_dot_q4_0_avx2, block_q4_0, rk_q4_0_bytes)
DOT_SIGNED(rk_q_dot_q5_0_avx2, block_q5_0, rk_q5_0_bytes)
DOT_SIGNED(rk_q_dot_q8_0_avx2, block_q8_0, rk_q8_0_bytes)

/* Q4_1: the m*s terms go to a scalar accumulator, one fma per block in order, added after the
 * horizontal sum (as in tile2x4_q4_1). */
float rk_q_dot_q4_1_avx2(int64_t n, const void *w, const void *act) {
    const block_q4_1 *x = w;
    const block_q8_1 *y = act;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        acc = rk_q_block_acc(acc, scale2(x[i].d, y[i].d), rk_dot_us8(rk_nibbles32(x[i].qs), load_q8(y[i].qs)));
        summs = rk_fmadd_f32(rk_h2f(x[i].m), rk_h2f(y[i].s), summs);
    }
    return rk_hsum_ps(acc) + summs;
}

/* Q5_1 has no register tile (its tile is vec_dot per pair, invariant as it is), so it keeps two
 * accumulators. */
static inline __m256i q5_1_bytes(const block_q5_1 *b) {
    const __m256i hi = _mm256_and_si256(rk_bits32(b->qh), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(rk_nibbles32(b->qs), hi);
}
float rk_q_dot_q5_1_avx2(int64_t n, const void *w, const void *act) {
    const block_q5_1 *x = w;
    const block_q8_1 *y = act;
    const int64_t nb = n / QK;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float summs = 0.0f;
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        const __m256i p0 = rk_dot_us8(q5_1_bytes(&x[i]), load_q8(y[i].qs));
        const __m256i p1 = rk_dot_us8(q5_1_bytes(&x[i + 1]), load_q8(y[i + 1].qs));
        acc0 = _mm256_fmadd_ps(scale2(x[i].d, y[i].d), _mm256_cvtepi32_ps(p0), acc0);
        acc1 = _mm256_fmadd_ps(scale2(x[i + 1].d, y[i + 1].d), _mm256_cvtepi32_ps(p1), acc1);
        summs += rk_h2f(x[i].m) * rk_h2f(y[i].s) + rk_h2f(x[i + 1].m) * rk_h2f(y[i + 1].s);
    }
    for (; i < nb; i++) {
        const __m256i p0 = rk_dot_us8(q5_1_bytes(&x[i]), load_q8(y[i].qs));
        acc0 = _mm256_fmadd_ps(scale2(x[i].d, y[i].d), _mm256_cvtepi32_ps(p0), acc0);
        summs += rk_h2f(x[i].m) * rk_h2f(y[i].s);
    }
    return rk_hsum_ps(_mm256_add_ps(acc0, acc1)) + summs;
}

/* ---- activation quantisation ------------------------------------------------------------ */

/* One block of 32 floats -> 32 int8 (same expressions as the scalar q8_block). Returns d and
 * the sum of the quants in *sum. */
static inline float q8_block32(const float *x, int8_t *q, int *sum) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
        amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[k]));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float am = _mm_cvtss_f32(m4);
    const __m256 id = _mm256_set1_ps(am != 0.0f ? 127.0f / am : 0.0f);
    __m256i i32[4];
    for (int k = 0; k < 4; k++)
        i32[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], id),
                                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __m256i s = _mm256_add_epi32(_mm256_add_epi32(i32[0], i32[1]), _mm256_add_epi32(i32[2], i32[3]));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_hadd_epi32(s4, s4);
    s4 = _mm_hadd_epi32(s4, s4);
    *sum = _mm_cvtsi128_si32(s4);
    /* pack 4x8 int32 -> 32 int8 in order (packs work per 128-bit lane, then fix lane order) */
    const __m256i p01 = _mm256_packs_epi32(i32[0], i32[1]);
    const __m256i p23 = _mm256_packs_epi32(i32[2], i32[3]);
    __m256i b = _mm256_packs_epi16(p01, p23);
    b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, b);
    return am / 127.0f;
}

void rk_q_quantize_q8_0_avx2(const float *src, void *dst, int64_t n) {
    block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        int sum;
        b[i].d = rk_fp32_to_fp16(q8_block32(src + i * QK, b[i].qs, &sum));
    }
}
void rk_q_quantize_q8_1_avx2(const float *src, void *dst, int64_t n) {
    block_q8_1 *b = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        int sum;
        const float d = q8_block32(src + i * QK, b[i].qs, &sum);
        b[i].d = rk_fp32_to_fp16(d);
        b[i].s = rk_fp32_to_fp16(d * (float)sum);
    }
}

/* ---- register-tiled batched dots --------------------------------------------------------- */
/* 2 weight rows x 4 activation rows: each weight block is unpacked once and used 4 times, each
 * activation block is loaded once and used twice; 8 float accumulators stay in registers. Per
 * pair the float work is the single dot's (rk_q_block_acc, rk_fmadd_f32, rk_hsum_ps), so the
 * outputs equal vec_dot bit for bit. */

static void tile2x4_q4_1(int64_t n, const char *w, size_t wrb, const char *act, size_t arb,
                         float *out, size_t os) {
    const block_q4_1 *x[2] = {(const block_q4_1 *)w, (const block_q4_1 *)(w + wrb)};
    const block_q8_1 *y[4];
    for (int a = 0; a < 4; a++) y[a] = (const block_q8_1 *)(act + (size_t)a * arb);
    __m256 acc[2][4];
    float summ[2][4] = {{0}};
    for (int r = 0; r < 2; r++)
        for (int a = 0; a < 4; a++) acc[r][a] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK; i++) {
        const __m256i q0 = rk_nibbles32(x[0][i].qs), q1 = rk_nibbles32(x[1][i].qs);
        const __m256 d0 = _mm256_set1_ps(rk_h2f(x[0][i].d)), d1 = _mm256_set1_ps(rk_h2f(x[1][i].d));
        const float m0 = rk_h2f(x[0][i].m), m1 = rk_h2f(x[1][i].m);
        for (int a = 0; a < 4; a++) {
            const __m256i ya = _mm256_loadu_si256((const __m256i *)y[a][i].qs);
            const __m256 da = _mm256_set1_ps(rk_h2f(y[a][i].d));
            const float sa = rk_h2f(y[a][i].s);
            acc[0][a] = rk_q_block_acc(acc[0][a], _mm256_mul_ps(d0, da), rk_dot_us8(q0, ya));
            acc[1][a] = rk_q_block_acc(acc[1][a], _mm256_mul_ps(d1, da), rk_dot_us8(q1, ya));
            summ[0][a] = rk_fmadd_f32(m0, sa, summ[0][a]);
            summ[1][a] = rk_fmadd_f32(m1, sa, summ[1][a]);
        }
    }
    for (int a = 0; a < 4; a++)
        for (int r = 0; r < 2; r++) out[(size_t)a * os + (size_t)r] = rk_hsum_ps(acc[r][a]) + summ[r][a];
}
RK_Q_TILE_DRIVER(rk_q_tile_q4_1_avx2, rk_q_dot_q4_1_avx2, tile2x4_q4_1, 2, 4)

/* Formats whose weights are signed 8-bit after unpacking and pair with Q8_0 activations
 * (Q4_0, Q5_0, Q8_0): BYTES(block) gives the 32 int8 weights. The sign trick runs once per
 * weight block: |w| as unsigned, and the sign moved onto y. */
#define TILE2X4_SIGNED(NAME, BLOCK, BYTES)                                                      \
    static void NAME(int64_t n, const char *w, size_t wrb, const char *act, size_t arb,         \
                     float *out, size_t os) {                                                   \
        const BLOCK *x[2] = {(const BLOCK *)w, (const BLOCK *)(w + wrb)};                       \
        const block_q8_0 *y[4];                                                                 \
        for (int a = 0; a < 4; a++) y[a] = (const block_q8_0 *)(act + (size_t)a * arb);         \
        __m256 acc[2][4];                                                                       \
        for (int r = 0; r < 2; r++)                                                             \
            for (int a = 0; a < 4; a++) acc[r][a] = _mm256_setzero_ps();                        \
        for (int64_t i = 0; i < n / QK; i++) {                                                  \
            const __m256i q0 = BYTES(&x[0][i]), q1 = BYTES(&x[1][i]);                          \
            const __m256i ax0 = _mm256_abs_epi8(q0), ax1 = _mm256_abs_epi8(q1);                 \
            const __m256 d0 = _mm256_set1_ps(rk_h2f(x[0][i].d));                                \
            const __m256 d1 = _mm256_set1_ps(rk_h2f(x[1][i].d));                                \
            for (int a = 0; a < 4; a++) {                                                       \
                const __m256i ya = _mm256_loadu_si256((const __m256i *)y[a][i].qs);             \
                const __m256 da = _mm256_set1_ps(rk_h2f(y[a][i].d));                            \
                const __m256i p0 = rk_madd_ones(_mm256_maddubs_epi16(ax0, _mm256_sign_epi8(ya, q0))); \
                const __m256i p1 = rk_madd_ones(_mm256_maddubs_epi16(ax1, _mm256_sign_epi8(ya, q1))); \
                acc[0][a] = rk_q_block_acc(acc[0][a], _mm256_mul_ps(d0, da), p0);              \
                acc[1][a] = rk_q_block_acc(acc[1][a], _mm256_mul_ps(d1, da), p1);              \
            }                                                                                   \
        }                                                                                       \
        for (int a = 0; a < 4; a++)                                                             \
            for (int r = 0; r < 2; r++)                                                         \
                out[(size_t)a * os + (size_t)r] = rk_hsum_ps(acc[r][a]);                        \
    }

TILE2X4_SIGNED(tile2x4_q8_0, block_q8_0, rk_q8_0_bytes)
RK_Q_TILE_DRIVER(rk_q_tile_q8_0_avx2, rk_q_dot_q8_0_avx2, tile2x4_q8_0, 2, 4)
TILE2X4_SIGNED(tile2x4_q5_0, block_q5_0, rk_q5_0_bytes)
RK_Q_TILE_DRIVER(rk_q_tile_q5_0_avx2, rk_q_dot_q5_0_avx2, tile2x4_q5_0, 2, 4)
TILE2X4_SIGNED(tile2x4_q4_0, block_q4_0, rk_q4_0_bytes)
RK_Q_TILE_DRIVER(rk_q_tile_q4_0_avx2, rk_q_dot_q4_0_avx2, tile2x4_q4_0, 2, 4)
