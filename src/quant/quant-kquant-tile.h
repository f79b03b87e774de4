/*
 * quant-kquant-tile.h — the register-tiled batched K-quant dots (Q4_K, Q5_K, Q6_K against Q8_K
 * activations), written once as macros and instantiated by quant-kquant-avx2.c (2x4 tiles,
 * madd) and quant-kquant-avx512.c (4x4 tiles, vpdpwssd). The including file defines
 * KQ_MACC(acc, scale16, p16) = acc + (scale16 * p16 summed in pairs) for its instruction set.
 * Per (weight row, activation row) the int32 lanes are exact sums of the same products as in
 * the single dots, and the float work per super-block is the dots' (rk_k45_acc, rk_q6k_acc, one
 * accumulator, rk_hsum_ps at the end), so each output equals the level's vec_dot bit for bit.
 * Include only from files compiled with at least -mavx2 -mfma -mf16c.
 */
#ifndef RK_QUANT_KQUANT_TILE_H
#define RK_QUANT_KQUANT_TILE_H

#include "quant/quant-impl.h"
#include "quant/quant-simd-avx2.h"

/* Q4_K (QH 0) / Q5_K (QH 1, QHP(block) its qh): groups of 32 with 6-bit scales and mins. Group g's quants are the
 * low (g even) or high (g odd) nibbles of qs[32*(g/2) ...], plus bit g of qh as 0x10 for Q5_K. */
#define KQ_TILE_K45(NAME, BLOCK, QH, QHP, TW, TA)                                               \
    static void NAME(int64_t n, const char *w, size_t wrb, const char *act, size_t arb,         \
                     float *out, size_t os) {                                                   \
        const BLOCK *x[TW];                                                                     \
        const block_q8_K *y[TA];                                                                \
        for (int r = 0; r < (TW); r++) x[r] = (const BLOCK *)(w + (size_t)r * wrb);             \
        for (int a = 0; a < (TA); a++) y[a] = (const block_q8_K *)(act + (size_t)a * arb);      \
        const __m256i m4 = _mm256_set1_epi8(0x0F), m16 = _mm256_set1_epi8(0x10);                \
        __m256 acc[TW][TA];                                                                     \
        for (int r = 0; r < (TW); r++)                                                          \
            for (int a = 0; a < (TA); a++) acc[r][a] = _mm256_setzero_ps();                     \
        for (int64_t i = 0; i < n / QK_K; i++) {                                                \
            uint8_t sm[TW][16];                                                                 \
            __m256i sumi[TW][TA];                                                               \
            for (int r = 0; r < (TW); r++) {                                                    \
                rk_q_unpack_k4_scales(x[r][i].scales, sm[r]);                                   \
                for (int a = 0; a < (TA); a++) sumi[r][a] = _mm256_setzero_si256();             \
            }                                                                                   \
            _Pragma("GCC unroll 8")                                                             \
            for (int g = 0; g < 8; g++) {                                                       \
                __m256i q[TW], s[TW];                                                           \
                for (int r = 0; r < (TW); r++) {                                                \
                    const __m256i bits = _mm256_loadu_si256((const __m256i *)(x[r][i].qs + 32 * (g / 2))); \
                    q[r] = _mm256_and_si256(g & 1 ? _mm256_srli_epi16(bits, 4) : bits, m4);     \
                    if (QH) {                                                                   \
                        const __m256i hb = _mm256_loadu_si256((const __m256i *)QHP(&x[r][i]));     \
                        const __m256i h5 = g <= 4 ? _mm256_slli_epi16(hb, 4 - g)               \
                                                  : _mm256_srli_epi16(hb, g - 4);               \
                        q[r] = _mm256_or_si256(q[r], _mm256_and_si256(h5, m16));                \
                    }                                                                           \
                    s[r] = _mm256_set1_epi16(sm[r][g]);                                         \
                }                                                                               \
                for (int a = 0; a < (TA); a++) {                                                \
                    const __m256i ya = _mm256_loadu_si256((const __m256i *)(y[a][i].qs + 32 * g)); \
                    for (int r = 0; r < (TW); r++)                                              \
                        sumi[r][a] = KQ_MACC(sumi[r][a], s[r], _mm256_maddubs_epi16(q[r], ya));  \
                }                                                                               \
            }                                                                                   \
            __m128i bs[TA];                                                                     \
            for (int a = 0; a < (TA); a++) bs[a] = rk_k45_bsums(y[a][i].bsums);                 \
            for (int r = 0; r < (TW); r++) {                                                    \
                const float dw = rk_h2f(x[r][i].d), dm = rk_h2f(x[r][i].dmin);                 \
                const __m128i mins = rk_k45_mins(sm[r]);                                        \
                for (int a = 0; a < (TA); a++)                                                  \
                    acc[r][a] = rk_k45_acc(acc[r][a], sumi[r][a], mins, bs[a], y[a][i].d, dw, dm); \
            }                                                                                   \
        }                                                                                       \
        for (int a = 0; a < (TA); a++)                                                          \
            for (int r = 0; r < (TW); r++) out[(size_t)a * os + (size_t)r] = rk_hsum_ps(acc[r][a]); \
    }

/* Q6_K: 16 groups of 16 with int8 scales; quants unsigned 0..63, the -32 offset is
 * madd(-32*scales, bsums) as the start value of each accumulator. Chunk c (32 elements, groups
 * 2c and 2c+1) of half h = c/4: low (c%4 < 2) or high nibbles of ql[64h + 32*(c&1) ...], and
 * bits 2*(c%4) and up of qh[32h ...] as bits 4-5. */
#define KQ_TILE_Q6(NAME, TW, TA)                                                                \
    static void NAME(int64_t n, const char *w, size_t wrb, const char *act, size_t arb,         \
                     float *out, size_t os) {                                                   \
        const block_q6_K *x[TW];                                                                \
        const block_q8_K *y[TA];                                                                \
        for (int r = 0; r < (TW); r++) x[r] = (const block_q6_K *)(w + (size_t)r * wrb);        \
        for (int a = 0; a < (TA); a++) y[a] = (const block_q8_K *)(act + (size_t)a * arb);      \
        const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(0x03);                 \
        __m256 acc[TW][TA];                                                                     \
        for (int r = 0; r < (TW); r++)                                                          \
            for (int a = 0; a < (TA); a++) acc[r][a] = _mm256_setzero_ps();                     \
        for (int64_t i = 0; i < n / QK_K; i++) {                                                \
            __m256i sc[TW], sumi[TW][TA];                                                       \
            for (int r = 0; r < (TW); r++) {                                                    \
                sc[r] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[r][i].scales)); \
                const __m256i scm = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(sc[r], 5)); \
                for (int a = 0; a < (TA); a++)                                                  \
                    sumi[r][a] = _mm256_madd_epi16(scm, _mm256_loadu_si256((const __m256i *)y[a][i].bsums)); \
            }                                                                                   \
            _Pragma("GCC unroll 8")                                                             \
            for (int c = 0; c < 8; c++) {                                                       \
                const int h = c / 4, k = c % 4;                                                 \
                __m256i q[TW], s[TW];                                                           \
                for (int r = 0; r < (TW); r++) {                                                \
                    const __m256i L = _mm256_loadu_si256((const __m256i *)(x[r][i].ql + 64 * h + 32 * (k & 1))); \
                    const __m256i H = _mm256_loadu_si256((const __m256i *)(x[r][i].qh + 32 * h)); \
                    const __m256i lo = _mm256_and_si256(k < 2 ? L : _mm256_srli_epi16(L, 4), m4); \
                    const __m256i hi = _mm256_and_si256(k ? _mm256_srli_epi16(H, 2 * k) : H, m3); \
                    q[r] = _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));                       \
                    s[r] = rk_scale_pair(sc[r], c);                                             \
                }                                                                               \
                for (int a = 0; a < (TA); a++) {                                                \
                    const __m256i ya = _mm256_loadu_si256((const __m256i *)(y[a][i].qs + 32 * c)); \
                    for (int r = 0; r < (TW); r++)                                              \
                        sumi[r][a] = KQ_MACC(sumi[r][a], s[r], _mm256_maddubs_epi16(q[r], ya));  \
                }                                                                               \
            }                                                                                   \
            for (int r = 0; r < (TW); r++) {                                                    \
                const float dw = rk_h2f(x[r][i].d);                                             \
                for (int a = 0; a < (TA); a++) acc[r][a] = rk_q6k_acc(acc[r][a], sumi[r][a], y[a][i].d, dw); \
            }                                                                                   \
        }                                                                                       \
        for (int a = 0; a < (TA); a++)                                                          \
            for (int r = 0; r < (TW); r++) out[(size_t)a * os + (size_t)r] = rk_hsum_ps(acc[r][a]); \
    }

static inline const uint8_t *kq_no_qh(const block_q4_K *b) { return b->qs; } /* unused */
static inline const uint8_t *kq_qh(const block_q5_K *b) { return b->qh; }

#endif
