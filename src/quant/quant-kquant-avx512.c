/*
 * quant-kquant-avx512.c — AVX-512 (BW + VNNI) dots of Q4_K, Q5_K and Q6_K with Q8_K: 64 quants
 * per register, maddubs into int16 pairs, then vpdpwssd with the int16 group scales (one
 * instruction for multiply-by-scale and accumulate). Min / offset terms use the activations'
 * bsums as in the AVX2 kernels. Each super-block's integer sums are folded to 256 bits and
 * accumulated in floats exactly as the register tiles at the end of this file do (rk_k45_acc,
 * rk_q6k_acc), so a row's dot has the same bits alone or in a tile (batch invariance).
 */
#include <immintrin.h>

#include "quant/quant-impl.h"
#include "quant/quant-simd-avx2.h"

#define W4(g) ((long long)(g) * 0x0001000100010001LL)

/* vpermw index: words 0-15 select word a, words 16-31 word b */
static inline __m512i idx2(int a, int b) {
    return _mm512_set_epi64(W4(b), W4(b), W4(b), W4(b), W4(a), W4(a), W4(a), W4(a));
}
/* vpermw index: 128-bit lane k selects word g+k */
static inline __m512i idx4(int g) {
    return _mm512_set_epi64(W4(g + 3), W4(g + 3), W4(g + 2), W4(g + 2), W4(g + 1), W4(g + 1), W4(g), W4(g));
}

/* The 16 int32 lanes of a super-block's sums folded to the 8 of the 256-bit tiles: lane k and
 * lane 8+k hold the same element positions (4k..4k+3) of different groups, and integer sums are
 * exact, so this is exactly the tiles' sumi, and the float work after it can be theirs. */
static inline __m256i fold256(__m512i v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

/* Shared body of Q4_K and Q5_K. qh NULL for Q4_K. Per 128 elements: v = 64 bytes of qs;
 * low nibbles hold groups 0 and 2 (of the four 32-groups in those 128), high nibbles 1 and 3;
 * the activations are regrouped to match with shuffle_i64x2. */
static inline __m512i k45_block(const uint8_t *qs, const uint8_t *qh, const int8_t *q8, const uint8_t *sm) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), sixteen = _mm512_set1_epi8(16);
    const __m512i sc = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)sm)));
    const __m512i hb = qh ? _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qh)) : _mm512_setzero_si512();
    __m512i sumi = _mm512_setzero_si512();
    for (int h = 0; h < 2; h++) {
        const __m512i v = _mm512_loadu_si512((const void *)(qs + 64 * h));
        const __m512i A = _mm512_loadu_si512((const void *)(q8 + 128 * h));
        const __m512i B = _mm512_loadu_si512((const void *)(q8 + 128 * h + 64));
        __m512i lo = _mm512_and_si512(v, m4);
        __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        if (qh) { /* groups 4h, 4h+2 take bits 4h, 4h+2 of qh; groups 4h+1, 4h+3 the odd ones */
            const int g = 4 * h;
            const __m512i bl = _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << g)), _mm256_set1_epi8((char)(1 << (g + 2))), 1);
            const __m512i bh = _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << (g + 1))), _mm256_set1_epi8((char)(1 << (g + 3))), 1);
            lo = _mm512_mask_add_epi8(lo, _mm512_test_epi8_mask(hb, bl), lo, sixteen);
            hi = _mm512_mask_add_epi8(hi, _mm512_test_epi8_mask(hb, bh), hi, sixteen);
        }
        const __m512i ylo = _mm512_shuffle_i64x2(A, B, 0x44), yhi = _mm512_shuffle_i64x2(A, B, 0xEE);
        const int g = 4 * h;
        sumi = _mm512_dpwssd_epi32(sumi, _mm512_permutexvar_epi16(idx2(g, g + 2), sc), _mm512_maddubs_epi16(lo, ylo));
        sumi = _mm512_dpwssd_epi32(sumi, _mm512_permutexvar_epi16(idx2(g + 1, g + 3), sc), _mm512_maddubs_epi16(hi, yhi));
    }
    return sumi;
}

float rk_q_dot_q4_K_avx512(int64_t n, const void *w, const void *act) {
    const block_q4_K *x = w;
    const block_q8_K *y = act;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t sm[16];
        rk_q_unpack_k4_scales(x[i].scales, sm);
        const __m256i sumi = fold256(k45_block(x[i].qs, NULL, y[i].qs, sm));
        acc = rk_k45_acc(acc, sumi, rk_k45_mins(sm), rk_k45_bsums(y[i].bsums), y[i].d, rk_h2f(x[i].d),
                         rk_h2f(x[i].dmin));
    }
    return rk_hsum_ps(acc);
}

float rk_q_dot_q5_K_avx512(int64_t n, const void *w, const void *act) {
    const block_q5_K *x = w;
    const block_q8_K *y = act;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t sm[16];
        rk_q_unpack_k4_scales(x[i].scales, sm);
        const __m256i sumi = fold256(k45_block(x[i].qs, x[i].qh, y[i].qs, sm));
        acc = rk_k45_acc(acc, sumi, rk_k45_mins(sm), rk_k45_bsums(y[i].bsums), y[i].d, rk_h2f(x[i].d),
                         rk_h2f(x[i].dmin));
    }
    return rk_hsum_ps(acc);
}

/* Q6_K: per 128 elements, 64 bytes of ql: low nibbles are elements 0-63 in order, high
 * nibbles 64-127; the two high bits come from the 32 bytes of qh at shifts 0/2 (low) and 4/6
 * (high). Quants unsigned, -32 offset via bsums. */
float rk_q_dot_q6_K_avx512(int64_t n, const void *w, const void *act) {
    const block_q6_K *x = w;
    const block_q8_K *y = act;
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    const __m512i shl = _mm512_setr_epi64(4, 4, 4, 4, 2, 2, 2, 2), shr = _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        const __m512i sc = _mm512_castsi256_si512(sc16);
        const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)y[i].bsums)), 5);
        __m512i sumi = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(off));
        for (int h = 0; h < 2; h++) {
            const __m512i L = _mm512_loadu_si512((const void *)(x[i].ql + 64 * h));
            const __m512i H = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * h)));
            const __m512i lo = _mm512_or_si512(_mm512_and_si512(L, m4), _mm512_and_si512(_mm512_sllv_epi64(H, shl), m30));
            const __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(L, 4), m4),
                                               _mm512_and_si512(_mm512_srlv_epi64(H, shr), m30));
            const __m512i A = _mm512_loadu_si512((const void *)(y[i].qs + 128 * h));
            const __m512i B = _mm512_loadu_si512((const void *)(y[i].qs + 128 * h + 64));
            sumi = _mm512_dpwssd_epi32(sumi, _mm512_permutexvar_epi16(idx4(8 * h), sc), _mm512_maddubs_epi16(lo, A));
            sumi = _mm512_dpwssd_epi32(sumi, _mm512_permutexvar_epi16(idx4(8 * h + 4), sc), _mm512_maddubs_epi16(hi, B));
        }
        acc = rk_q6k_acc(acc, fold256(sumi), y[i].d, rk_h2f(x[i].d));
    }
    return rk_hsum_ps(acc);
}

/* ---- register-tiled batched dots with VNNI ---------------------------------------------- */
/* The tiles of quant-kquant-avx2.c on 256-bit registers (this EPYC splits 512-bit ops in two),
 * with vpdpwssd (AVX-512VL VNNI) doing the multiply-by-group-scale and accumulate in one
 * instruction; the 32 vector registers hold a 4x4 tile (Q6_K, with more unpacking work per
 * row, measured as fast or faster with 2x4). */
#define KQ_MACC(acc, sc, p) _mm256_dpwssd_epi32((acc), (p), (sc))

#include "quant/quant-kquant-tile.h"

KQ_TILE_K45(tile4x4_q4_K, block_q4_K, 0, kq_no_qh, 4, 4)
RK_Q_TILE_DRIVER(rk_q_tile_q4_K_avx512, rk_q_dot_q4_K_avx512, tile4x4_q4_K, 4, 4)
KQ_TILE_K45(tile4x4_q5_K, block_q5_K, 1, kq_qh, 4, 4)
RK_Q_TILE_DRIVER(rk_q_tile_q5_K_avx512, rk_q_dot_q5_K_avx512, tile4x4_q5_K, 4, 4)
KQ_TILE_Q6(tile2x4_q6_K, 2, 4)
RK_Q_TILE_DRIVER(rk_q_tile_q6_K_avx512, rk_q_dot_q6_K_avx512, tile2x4_q6_K, 2, 4)
