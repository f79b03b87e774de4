/*
 * quant-simd-avx2.h — small AVX2 helpers shared by the *-avx2.c and *-avx512.c kernel files
 * (include only from files compiled with at least -mavx2 -mfma -mf16c).
 */
#ifndef RK_QUANT_SIMD_AVX2_H
#define RK_QUANT_SIMD_AVX2_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "quant/quant-impl.h"

/* fp16 -> fp32 with F16C (exact, same as rk_fp16_to_fp32). */
static inline float rk_h2f(uint16_t h) { return _cvtsh_ss(h); }

static inline float rk_hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 16 bytes of packed nibbles -> 32 bytes: low nibbles (elements 0-15), then high (16-31). */
static inline __m256i rk_nibbles32(const uint8_t *qs) {
    const __m128i t = _mm_loadu_si128((const __m128i *)qs);
    const __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

/* 32 bits -> 32 bytes, 0xFF where bit e of the (little-endian) word is set. */
static inline __m256i rk_bits32(const uint8_t *p) {
    uint32_t x;
    memcpy(&x, p, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                           0x0101010101010101, 0x0000000000000000);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), shuf);
    b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
}

static inline __m256i rk_madd_ones(__m256i p16) {
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}
/* unsigned bytes (< 128) x signed bytes -> 8 int32 sums of 4 products */
static inline __m256i rk_dot_us8(__m256i u, __m256i s) {
    return rk_madd_ones(_mm256_maddubs_epi16(u, s));
}
/* signed x signed via |x| and sign(y, x) */
static inline __m256i rk_dot_ss8(__m256i x, __m256i y) {
    return rk_madd_ones(_mm256_maddubs_epi16(_mm256_abs_epi8(x), _mm256_sign_epi8(y, x)));
}

/* A 256-bit vector of int16 whose low 128-bit lane is all word 2k of s and whose high lane is
 * all word 2k+1 (s holds 16 int16 scales): scales for two consecutive groups of 16 elements. */
static inline __m256i rk_scale_pair(__m256i s, int k) {
    const __m256i d = _mm256_permutevar8x32_epi32(s, _mm256_set1_epi32(k));
    return _mm256_shuffle_epi8(d, _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
                                                   2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3));
}

/* ---- batch invariance ---------------------------------------------------------------------
 * A register tile (RK_Q_TILE_DRIVER's KERNEL) and the single dot of the same level must give
 * bit-identical results for each (weight row, activation row) pair, so a token's output does not
 * depend on how many rows were computed with it (decode vs a prompt chunk, prefix reuse). The
 * integer parts may be computed in any lane grouping that adds up to the same int32 lanes (integer
 * sums are exact); the float part must be the same sequence of operations. The helpers below are
 * that float sequence, used by both sides; everything is explicit intrinsics so that FMA
 * contraction (-ffp-contract) cannot fuse an operation on one side only. */

/* c + a*b rounded once (scalar FMA; one vfmadd with -mfma): the m*s terms of Q4_1. */
static inline float rk_fmadd_f32(float a, float b, float c) { return __builtin_fmaf(a, b, c); }

/* One legacy block (32 elements) of one pair: acc + scale * float(p), scale = d_w*d_a in every
 * lane (one rounded product, so splatting a scalar product or multiplying two splats gives the
 * same bits), p the 8 int32 lane sums of the block's products (lane k: elements 4k..4k+3). One
 * accumulator per pair, blocks in order, then rk_hsum_ps. */
static inline __m256 rk_q_block_acc(__m256 acc, __m256 scale, __m256i p) {
    return _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(p), acc);
}

/* One Q4_K/Q5_K super-block of one pair: sumi the 8 int32 lanes of scale*products (lane k:
 * elements 4k..4k+3 of each group of 32, summed over the 8 groups), mins16 the 8 group mins and
 * bsum16 the 8 per-group sums of the activations (as int16); adds yd*dw*sumi, then subtracts
 * yd*dm*(mins . bsums) (4 lanes). */
static inline __m256 rk_k45_acc(__m256 acc, __m256i sumi, __m128i mins16, __m128i bsum16, float yd, float dw,
                                float dm) {
    const __m256 pm = _mm256_zextps128_ps256(_mm_cvtepi32_ps(_mm_madd_epi16(mins16, bsum16)));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(yd * dw), _mm256_cvtepi32_ps(sumi), acc);
    return _mm256_fnmadd_ps(_mm256_set1_ps(yd * dm), pm, acc);
}
/* The 8 group sums of Q8_K bsums (16 sums of 16) as int16, for rk_k45_acc. */
static inline __m128i rk_k45_bsums(const int16_t *bsums) {
    return _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)bsums), _mm_loadu_si128((const __m128i *)(bsums + 8)));
}
/* The 8 mins (sm + 8 of rk_q_unpack_k4_scales) as int16, for rk_k45_acc. */
static inline __m128i rk_k45_mins(const uint8_t *sm) {
    return _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(sm + 8)));
}

/* One Q6_K super-block of one pair: acc + (yd*dw) * float(sumi). */
static inline __m256 rk_q6k_acc(__m256 acc, __m256i sumi, float yd, float dw) {
    return _mm256_fmadd_ps(_mm256_set1_ps(yd * dw), _mm256_cvtepi32_ps(sumi), acc);
}

/* Signed 8-bit weights of one block of the formats that pair with Q8_0 activations. */
/* Q5_0: nibble | 0xF0 where the fifth bit is clear is exactly (q5 - 16) as int8. */
static inline __m256i rk_q5_0_bytes(const block_q5_0 *b) {
    const __m256i hi = _mm256_andnot_si256(rk_bits32(b->qh), _mm256_set1_epi8((char)0xF0));
    return _mm256_or_si256(rk_nibbles32(b->qs), hi);
}
static inline __m256i rk_q8_0_bytes(const block_q8_0 *b) {
    return _mm256_loadu_si256((const __m256i *)b->qs);
}
static inline __m256i rk_q4_0_bytes(const block_q4_0 *b) {
    return _mm256_sub_epi8(rk_nibbles32(b->qs), _mm256_set1_epi8(8));
}


/* vec_dot_tile from a register-tiled KERNEL over TW weight rows x TA activation rows; rows
 * left over at the edges go through DOT, which must give the same bits as KERNEL for each pair
 * (batch invariance, above). */
#define RK_Q_TILE_DRIVER(NAME, DOT, KERNEL, TW, TA)                                             \
    void NAME(int64_t n, const void *w, size_t wrb, int nw, const void *act, size_t arb, int na, \
              float *out, size_t os) {                                                         \
        const char *W = w, *A = act;                                                           \
        int r = 0;                                                                             \
        for (; r + (TW) <= nw; r += (TW)) {                                                    \
            int a = 0;                                                                         \
            for (; a + (TA) <= na; a += (TA))                                                  \
                KERNEL(n, W + (size_t)r * wrb, wrb, A + (size_t)a * arb, arb, out + (size_t)a * os + r, os); \
            for (; a < na; a++)                                                                \
                for (int k = 0; k < (TW); k++)                                                 \
                    out[(size_t)a * os + (size_t)(r + k)] =                                    \
                        DOT(n, W + (size_t)(r + k) * wrb, A + (size_t)a * arb);               \
        }                                                                                      \
        for (; r < nw; r++)                                                                    \
            for (int a = 0; a < na; a++)                                                       \
                out[(size_t)a * os + (size_t)r] = DOT(n, W + (size_t)r * wrb, A + (size_t)a * arb); \
    }

/* e^x for 8 floats: 2^n · p(r) with r = x − n·ln2 and the Cephes degree-6 polynomial
 * (relative error about 2e-7, like expf); inputs are clamped to [-87.3, 88.3]. */
static inline __m256 rk_exp256(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

#endif
