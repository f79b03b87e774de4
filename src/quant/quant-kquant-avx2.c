/*
 * quant-kquant-avx2.c — AVX2/FMA kernels for the K-quant formats (Q2_K ... Q6_K) dotted with
 * Q8_K activations, and Q8_K activation quantisation (same bytes as the scalar reference).
 * Per super-block: maddubs of the unsigned quants with the int8 activations, madd with the
 * int16 group scales into int32 lanes, one fma per super-block; the min / offset terms come
 * from the activations' per-16 sums (bsums) instead of extra multiplies. Q4_K, Q5_K and Q6_K
 * have register tiles (quant-kquant-tile.h): their dots end each super-block with the tiles'
 * float sequence (rk_k45_acc, rk_q6k_acc) so that both give the same bits (batch invariance).
 */
#include <immintrin.h>

#include "quant/quant-impl.h"
#include "quant/quant-simd-avx2.h"

void rk_q_quantize_q8_K_avx2(const float *src, void *dst, int64_t n) {
    block_q8_K *b = dst;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        __m256 amax = _mm256_setzero_ps();
        for (int k = 0; k < QK_K; k += 8) amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float am = _mm_cvtss_f32(m4);
        const __m256 id = _mm256_set1_ps(am != 0.0f ? 127.0f / am : 0.0f);
        for (int g = 0; g < QK_K / 32; g++) {
            __m256i v[4];
            for (int k = 0; k < 4; k++)
                v[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 32 * g + 8 * k), id),
                                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
            /* bsums: elements 0-15 are v[0]+v[1], 16-31 are v[2]+v[3] */
            const __m256i s01 = _mm256_add_epi32(v[0], v[1]), s23 = _mm256_add_epi32(v[2], v[3]);
            __m256i h = _mm256_hadd_epi32(s01, s23);  /* per lane: s01 pairs, s23 pairs */
            h = _mm256_hadd_epi32(h, h);
            const __m128i hs = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
            b[i].bsums[2 * g] = (int16_t)_mm_cvtsi128_si32(hs);
            b[i].bsums[2 * g + 1] = (int16_t)_mm_extract_epi32(hs, 1);
            __m256i q = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
            _mm256_storeu_si256((__m256i *)(b[i].qs + 32 * g), _mm256_permutevar8x32_epi32(q, perm));
        }
        b[i].d = am / 127.0f;
    }
}

float rk_q_dot_q4_K_avx2(int64_t n, const void *w, const void *act) {
    const block_q4_K *x = w;
    const block_q8_K *y = act;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t sm[16];
        rk_q_unpack_k4_scales(x[i].scales, sm);
        const uint8_t *q4 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++, q4 += 32, q8 += 64) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)q4);
            const __m256i lo = _mm256_and_si256(bits, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
            const __m256i pl = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)q8));
            const __m256i ph = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 32)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_set1_epi16(sm[2 * j]), pl));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_set1_epi16(sm[2 * j + 1]), ph));
        }
        acc = rk_k45_acc(acc, sumi, rk_k45_mins(sm), rk_k45_bsums(y[i].bsums), y[i].d, rk_h2f(x[i].d),
                         rk_h2f(x[i].dmin));
    }
    return rk_hsum_ps(acc);
}

float rk_q_dot_q5_K_avx2(int64_t n, const void *w, const void *act) {
    const block_q5_K *x = w;
    const block_q8_K *y = act;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m16 = _mm256_set1_epi8(0x10);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t sm[16];
        rk_q_unpack_k4_scales(x[i].scales, sm);
        const uint8_t *q5 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        __m256i hbits = _mm256_loadu_si256((const __m256i *)x[i].qh);
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++, q5 += 32, q8 += 64) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)q5);
            /* bit 2j of qh -> 0x10 for the low nibbles, bit 2j+1 for the high ones */
            const __m256i hl = _mm256_and_si256(_mm256_slli_epi16(hbits, 4), m16);
            const __m256i hh = _mm256_and_si256(_mm256_slli_epi16(hbits, 3), m16);
            hbits = _mm256_srli_epi16(hbits, 2);
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(bits, m4), hl);
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), hh);
            const __m256i pl = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)q8));
            const __m256i ph = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 32)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_set1_epi16(sm[2 * j]), pl));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_set1_epi16(sm[2 * j + 1]), ph));
        }
        acc = rk_k45_acc(acc, sumi, rk_k45_mins(sm), rk_k45_bsums(y[i].bsums), y[i].d, rk_h2f(x[i].d),
                         rk_h2f(x[i].dmin));
    }
    return rk_hsum_ps(acc);
}

/* Q6_K: the quants are used unsigned (0..63); the -32 offset is 32 * sum_g scale[g]*bsums[g]. */
float rk_q_dot_q6_K_avx2(int64_t n, const void *w, const void *act) {
    const block_q6_K *x = w;
    const block_q8_K *y = act;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(0x03);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        __m256i sumi = _mm256_slli_epi32(
            _mm256_madd_epi16(sc, _mm256_loadu_si256((const __m256i *)y[i].bsums)), 5);
        sumi = _mm256_sub_epi32(_mm256_setzero_si256(), sumi);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *q8 = y[i].qs;
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, q8 += 128) {
            const __m256i b1 = _mm256_loadu_si256((const __m256i *)ql);
            const __m256i b2 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            const __m256i bh = _mm256_loadu_si256((const __m256i *)qh);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(b1, m4), _mm256_slli_epi16(_mm256_and_si256(bh, m3), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(b2, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 2), m3), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 4), m3), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 6), m3), 4));
            for (int k = 0; k < 4; k++) {
                const __m256i p = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)(q8 + 32 * k)));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(rk_scale_pair(sc, 4 * h + k), p));
            }
        }
        acc = rk_q6k_acc(acc, sumi, y[i].d, rk_h2f(x[i].d));
    }
    return rk_hsum_ps(acc);
}

float rk_q_dot_q2_K_avx2(int64_t n, const void *w, const void *act) {
    const block_q2_K *x = w;
    const block_q8_K *y = act;
    const __m256i m3 = _mm256_set1_epi8(0x03);
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const __m128i raw = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m256i sc = _mm256_cvtepu8_epi16(_mm_and_si128(raw, _mm_set1_epi8(0x0F)));
        const __m256i mn = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0F)));
        const __m256i summ = _mm256_madd_epi16(mn, _mm256_loadu_si256((const __m256i *)y[i].bsums));
        accm = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * rk_h2f(x[i].dmin)), _mm256_cvtepi32_ps(summ), accm);
        const int8_t *q8 = y[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i bits = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            for (int p = 0; p < 4; p++, q8 += 32) {
                const __m256i q = _mm256_and_si256(bits, m3);
                bits = _mm256_srli_epi16(bits, 2);
                const __m256i pr = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)q8));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(rk_scale_pair(sc, 4 * h + p), pr));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * rk_h2f(x[i].d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    return rk_hsum_ps(acc) - rk_hsum_ps(accm);
}

float rk_q_dot_q3_K_avx2(int64_t n, const void *w, const void *act) {
    const block_q3_K *x = w;
    const block_q8_K *y = act;
    const __m256i m3 = _mm256_set1_epi8(0x03), one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t s8[16];
        rk_q_unpack_q3k_scales(x[i].scales, s8);
        const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)s8));
        __m256i hm = _mm256_loadu_si256((const __m256i *)x[i].hmask);
        const int8_t *q8 = y[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i bits = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            for (int p = 0; p < 4; p++, q8 += 32) {
                const __m256i q = _mm256_and_si256(bits, m3);
                bits = _mm256_srli_epi16(bits, 2);
                /* 4 where the high bit is clear */
                const __m256i off = _mm256_slli_epi16(_mm256_andnot_si256(hm, one), 2);
                hm = _mm256_srli_epi16(hm, 1);
                const __m256i y8 = _mm256_loadu_si256((const __m256i *)q8);
                const __m256i pr = _mm256_sub_epi16(_mm256_maddubs_epi16(q, y8), _mm256_maddubs_epi16(off, y8));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(rk_scale_pair(sc, 4 * h + p), pr));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * rk_h2f(x[i].d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    return rk_hsum_ps(acc);
}

/* ---- register-tiled batched dots ---------------------------------------------------------- */
/* TW weight rows x TA activation rows per call. Per super-block each weight row's scales are
 * unpacked once and each 32-element group of its quants once, then dotted with the TA
 * activation rows (maddubs, then madd with the group scale into TW*TA int32 accumulators);
 * each activation group is loaded once for the TW rows. The float accumulators are updated
 * once per super-block. KQ_MACC(acc, scale16, p16) is acc + madd(scale16, p16); the AVX-512
 * file has the same kernels with vpdpwssd. */
#ifndef KQ_MACC
#define KQ_MACC(acc, sc, p) _mm256_add_epi32((acc), _mm256_madd_epi16((sc), (p)))
#endif

#include "quant/quant-kquant-tile.h"

KQ_TILE_K45(tile2x4_q4_K, block_q4_K, 0, kq_no_qh, 2, 4)
RK_Q_TILE_DRIVER(rk_q_tile_q4_K_avx2, rk_q_dot_q4_K_avx2, tile2x4_q4_K, 2, 4)
KQ_TILE_K45(tile2x4_q5_K, block_q5_K, 1, kq_qh, 2, 4)
RK_Q_TILE_DRIVER(rk_q_tile_q5_K_avx2, rk_q_dot_q5_K_avx2, tile2x4_q5_K, 2, 4)
KQ_TILE_Q6(tile2x4_q6_K, 2, 4)
RK_Q_TILE_DRIVER(rk_q_tile_q6_K_avx2, rk_q_dot_q6_K_avx2, tile2x4_q6_K, 2, 4)
