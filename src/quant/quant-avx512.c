/*
 * quant-avx512.c — AVX-512 (F/BW/VL/DQ + VNNI) dot products for F32 and the legacy 32-element
 * blocks. Two blocks share one 512-bit register; vpdpbusd sums four u8*s8 products per int32
 * lane. Signed weights are made unsigned by an offset (q+8, q+16, q^0x80 = q+128) whose
 * contribution, offset * sum(activations), a second vpdpbusd removes. Q4_0, Q5_0 and Q8_0 have
 * register tiles (end of file) whose outputs equal their dots bit for bit. The Q4_1 and Q5_1
 * dots are spare dots (not chosen by rk_quant_get_ops(), see quant-ops.c); a block left over
 * after their pairs goes through the AVX2 form.
 */
#include <immintrin.h>

#include "quant/quant-impl.h"
#include "quant/quant-simd-avx2.h"

float rk_q_dot_f32_avx512(int64_t n, const void *w, const void *act) {
    const float *x = w, *y = act;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32), _mm512_loadu_ps(y + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48), _mm512_loadu_ps(y + i + 48), a3);
    }
    for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
    float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}

/* Two blocks of 16 nibble bytes -> 64 bytes: [lo(a) hi(a) lo(b) hi(b)], i.e. block a's 32
 * elements in order, then block b's. */
static inline __m512i nibbles64(const uint8_t *a, const uint8_t *b) {
    const __m256i ab = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)b), _mm_loadu_si128((const __m128i *)a));
    __m512i v = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3), _mm512_castsi256_si512(ab));
    v = _mm512_srlv_epi64(v, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4));
    return _mm512_and_si512(v, _mm512_set1_epi8(0x0F));
}
static inline __m512i load2x32(const int8_t *a, const int8_t *b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                              _mm256_loadu_si256((const __m256i *)b), 1);
}
/* lanes 0-7 = s0, lanes 8-15 = s1 */
static inline __m512 scale_pair(float s0, float s1) {
    return _mm512_insertf32x8(_mm512_set1_ps(s0), _mm256_set1_ps(s1), 1);
}
static inline uint64_t qh_pair(const uint8_t *a, const uint8_t *b) {
    uint32_t x, y;
    memcpy(&x, a, 4);
    memcpy(&y, b, 4);
    return (uint64_t)x | (uint64_t)y << 32;
}

#define SC(xb, yb) (rk_h2f((xb).d) * rk_h2f((yb).d))

float rk_q_dot_q4_1_avx512(int64_t n, const void *w, const void *act) {
    const block_q4_1 *x = w;
    const block_q8_1 *y = act;
    const int64_t nb = n / QK;
    const __m512i z = _mm512_setzero_si512();
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    float summs = 0.0f;
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        const __m512i p0 = _mm512_dpbusd_epi32(z, nibbles64(x[i].qs, x[i + 1].qs), load2x32(y[i].qs, y[i + 1].qs));
        const __m512i p1 = _mm512_dpbusd_epi32(z, nibbles64(x[i + 2].qs, x[i + 3].qs), load2x32(y[i + 2].qs, y[i + 3].qs));
        acc0 = _mm512_fmadd_ps(scale_pair(SC(x[i], y[i]), SC(x[i + 1], y[i + 1])), _mm512_cvtepi32_ps(p0), acc0);
        acc1 = _mm512_fmadd_ps(scale_pair(SC(x[i + 2], y[i + 2]), SC(x[i + 3], y[i + 3])), _mm512_cvtepi32_ps(p1), acc1);
        summs += rk_h2f(x[i].m) * rk_h2f(y[i].s) + rk_h2f(x[i + 1].m) * rk_h2f(y[i + 1].s) +
                 rk_h2f(x[i + 2].m) * rk_h2f(y[i + 2].s) + rk_h2f(x[i + 3].m) * rk_h2f(y[i + 3].s);
    }
    for (; i + 2 <= nb; i += 2) {
        const __m512i p0 = _mm512_dpbusd_epi32(z, nibbles64(x[i].qs, x[i + 1].qs), load2x32(y[i].qs, y[i + 1].qs));
        acc0 = _mm512_fmadd_ps(scale_pair(SC(x[i], y[i]), SC(x[i + 1], y[i + 1])), _mm512_cvtepi32_ps(p0), acc0);
        summs += rk_h2f(x[i].m) * rk_h2f(y[i].s) + rk_h2f(x[i + 1].m) * rk_h2f(y[i + 1].s);
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + summs;
    if (i < nb) s += rk_q_dot_q4_1_avx2(QK, &x[i], &y[i]);
    return s;
}

float rk_q_dot_q5_1_avx512(int64_t n, const void *w, const void *act) {
    const block_q5_1 *x = w;
    const block_q8_1 *y = act;
    const int64_t nb = n / QK;
    const __m512i z = _mm512_setzero_si512(), sixteen = _mm512_set1_epi8(16);
    __m512 acc = _mm512_setzero_ps();
    float summs = 0.0f;
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        const __m512i nib = nibbles64(x[i].qs, x[i + 1].qs);
        const __m512i u = _mm512_mask_add_epi8(nib, qh_pair(x[i].qh, x[i + 1].qh), nib, sixteen);
        const __m512i p = _mm512_dpbusd_epi32(z, u, load2x32(y[i].qs, y[i + 1].qs));
        acc = _mm512_fmadd_ps(scale_pair(SC(x[i], y[i]), SC(x[i + 1], y[i + 1])), _mm512_cvtepi32_ps(p), acc);
        summs += rk_h2f(x[i].m) * rk_h2f(y[i].s) + rk_h2f(x[i + 1].m) * rk_h2f(y[i + 1].s);
    }
    float s = _mm512_reduce_add_ps(acc) + summs;
    if (i < nb) s += rk_q_dot_q5_1_avx2(QK, &x[i], &y[i]);
    return s;
}

/* ---- Q4_0, Q5_0, Q8_0: dots and register tiles with VNNI ------------------------------- */
/* The weights are taken as unsigned bytes u = q + OFFSET (Q4_0: the nibble, Q5_0: the 5-bit
 * value, Q8_0: q ^ 0x80), so one vpdpbusd per weight block pair and activation block pair does
 * the multiply-adds with no sign fix-up; the offset's contribution OFFSET * sum(y) is computed
 * once per activation block pair and is where that vpdpbusd starts accumulating from.
 *
 * Float work per (weight row, activation row), the same in the dots and in the tiles so that
 * both give the same bits (batch invariance): even blocks are scaled (d_w*d_a) and added into
 * one 8-lane accumulator, odd blocks into another, in block order; the result is
 * rk_hsum_ps(even + odd). Two fma chains halve the latency a single dot waits on per block, and
 * the tile holds both in one 512-bit register (lanes 0-7 and 8-15), so it needs no more
 * registers than with one chain. */

static inline __m512i q8_0_ubytes2(const block_q8_0 *b) {
    return _mm512_xor_si512(load2x32(b[0].qs, b[1].qs), _mm512_set1_epi8((char)0x80));
}
static inline __m512i q5_0_ubytes2(const block_q5_0 *b) {
    const __m512i nib = nibbles64(b[0].qs, b[1].qs);
    return _mm512_mask_add_epi8(nib, qh_pair(b[0].qh, b[1].qh), nib, _mm512_set1_epi8(16));
}
static inline __m512i q4_0_ubytes2(const block_q4_0 *b) { return nibbles64(b[0].qs, b[1].qs); }
static inline __m256i q8_0_ubytes(const block_q8_0 *b) {
    return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)b->qs), _mm256_set1_epi8((char)0x80));
}
static inline __m256i q5_0_ubytes(const block_q5_0 *b) {
    return _mm256_or_si256(rk_nibbles32(b->qs), _mm256_and_si256(rk_bits32(b->qh), _mm256_set1_epi8(0x10)));
}
static inline __m256i q4_0_ubytes(const block_q4_0 *b) { return rk_nibbles32(b->qs); }

/* -OFFSET * (sums of 4 activations) per int32 lane: where the weight products start from */
static inline __m512i neg_off(__m512i off, __m512i y) {
    const __m512i z = _mm512_setzero_si512();
    return _mm512_sub_epi32(z, _mm512_dpbusd_epi32(z, off, y));
}
/* the int32 lane sums of one block's products, u its unsigned weight bytes */
static inline __m256i block_p(__m256i u, const block_q8_0 *y, char offset) {
    const __m256i z = _mm256_setzero_si256(), ya = _mm256_loadu_si256((const __m256i *)y->qs);
    return _mm256_dpbusd_epi32(_mm256_sub_epi32(z, _mm256_dpbusd_epi32(z, _mm256_set1_epi8(offset), ya)), u, ya);
}
/* the end of one pair held in 512 bits: the last block if the count is odd (even chain), then
 * the sum of the two chains */
static inline float pair_finish(__m512 acc, int tail, float scale, __m256i p) {
    __m256 even = _mm512_castps512_ps256(acc);
    if (tail) even = rk_q_block_acc(even, _mm256_set1_ps(scale), p);
    return rk_hsum_ps(_mm256_add_ps(even, _mm512_extractf32x8_ps(acc, 1)));
}

/* The dot with both chains in one 512-bit register (Q4_0, Q5_0: measured faster than 256-bit
 * here, the nibble unpacking being cheaper per block pair). */
#define DOT_VNNI(NAME, BLOCK, UBYTES2, UBYTES, OFFSET)                                          \
    float NAME(int64_t n, const void *w, const void *act) {                                    \
        const BLOCK *x = w;                                                                    \
        const block_q8_0 *y = act;                                                             \
        const int64_t nb = n / QK;                                                             \
        const __m512i off = _mm512_set1_epi8((char)(OFFSET));                                  \
        __m512 acc = _mm512_setzero_ps();                                                      \
        int64_t i = 0;                                                                         \
        for (; i + 2 <= nb; i += 2) {                                                          \
            const __m512i ya = load2x32(y[i].qs, y[i + 1].qs);                                 \
            const __m512i p = _mm512_dpbusd_epi32(neg_off(off, ya), UBYTES2(&x[i]), ya);       \
            acc = _mm512_fmadd_ps(scale_pair(SC(x[i], y[i]), SC(x[i + 1], y[i + 1])), _mm512_cvtepi32_ps(p), acc); \
        }                                                                                      \
        if (i == nb) return pair_finish(acc, 0, 0.0f, _mm256_setzero_si256());                 \
        return pair_finish(acc, 1, SC(x[i], y[i]), block_p(UBYTES(&x[i]), &y[i], (char)(OFFSET))); \
    }

/* Q8_0's dot with the two chains in two 256-bit registers (the AVX2 form, measured faster here
 * than 512-bit for Q8_0, whose weights need no unpacking). */
float rk_q_dot_q8_0_avx512(int64_t n, const void *w, const void *act) {
    const block_q8_0 *x = w;
    const block_q8_0 *y = act;
    const int64_t nb = n / QK;
    __m256 even = _mm256_setzero_ps(), odd = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        const __m256i p0 = rk_dot_ss8(rk_q8_0_bytes(&x[i]), _mm256_loadu_si256((const __m256i *)y[i].qs));
        const __m256i p1 = rk_dot_ss8(rk_q8_0_bytes(&x[i + 1]), _mm256_loadu_si256((const __m256i *)y[i + 1].qs));
        even = rk_q_block_acc(even, _mm256_set1_ps(SC(x[i], y[i])), p0);
        odd = rk_q_block_acc(odd, _mm256_set1_ps(SC(x[i + 1], y[i + 1])), p1);
    }
    if (i < nb)
        even = rk_q_block_acc(even, _mm256_set1_ps(SC(x[i], y[i])),
                              rk_dot_ss8(rk_q8_0_bytes(&x[i]), _mm256_loadu_si256((const __m256i *)y[i].qs)));
    return rk_hsum_ps(_mm256_add_ps(even, odd));
}

/* 8 fp16 scales -> 8 floats */
static inline __m256 h2f8(uint16_t a, uint16_t b, uint16_t c, uint16_t d, uint16_t e, uint16_t f, uint16_t g,
                          uint16_t h) {
    return _mm256_cvtph_ps(_mm_setr_epi16((short)a, (short)b, (short)c, (short)d, (short)e, (short)f, (short)g,
                                          (short)h));
}
/* lanes 0-7 = v[2k], lanes 8-15 = v[2k+1] */
static inline __m512 spread_pair(__m256 v, int k) {
    const __m512i idx = _mm512_inserti64x4(_mm512_set1_epi32(2 * k), _mm256_set1_epi32(2 * k + 1), 1);
    return _mm512_permutexvar_ps(idx, _mm512_castps256_ps512(v));
}
#define D8(p, i) h2f8(p[0][i].d, p[0][i + 1].d, p[1][i].d, p[1][i + 1].d, p[2][i].d, p[2][i + 1].d, p[3][i].d, p[3][i + 1].d)

/* 4 weight rows x 4 activation rows, a block pair per step: 16 512-bit accumulators (both
 * chains of a pair in one) plus the unpacked weights fit in AVX-512's 32 vector registers. The
 * d of the 4 rows' two blocks are converted together and spread to (even x8, odd x8) lanes,
 * likewise the activations'; their lane products are the dot's d_w*d_a (one rounding each). */
#define TILE4X4_VNNI(NAME, BLOCK, UBYTES2, UBYTES, OFFSET)                                       \
    static void NAME(int64_t n, const char *w, size_t wrb, const char *act, size_t arb,         \
                     float *out, size_t os) {                                                   \
        const BLOCK *x[4];                                                                      \
        const block_q8_0 *y[4];                                                                 \
        for (int k = 0; k < 4; k++) {                                                           \
            x[k] = (const BLOCK *)(w + (size_t)k * wrb);                                        \
            y[k] = (const block_q8_0 *)(act + (size_t)k * arb);                                 \
        }                                                                                       \
        const int64_t nb = n / QK;                                                              \
        const __m512i off = _mm512_set1_epi8((char)(OFFSET));                                   \
        __m512 acc[4][4];                                                                       \
        for (int r = 0; r < 4; r++)                                                             \
            for (int a = 0; a < 4; a++) acc[r][a] = _mm512_setzero_ps();                        \
        int64_t i = 0;                                                                          \
        for (; i + 2 <= nb; i += 2) {                                                           \
            __m512i u[4];                                                                       \
            __m512 dw[4];                                                                       \
            const __m256 dw8 = D8(x, i), da8 = D8(y, i);                                        \
            for (int r = 0; r < 4; r++) {                                                       \
                u[r] = UBYTES2(&x[r][i]);                                                       \
                dw[r] = spread_pair(dw8, r);                                                    \
            }                                                                                   \
            for (int a = 0; a < 4; a++) {                                                       \
                const __m512i ya = load2x32(y[a][i].qs, y[a][i + 1].qs);                        \
                const __m512i neg = neg_off(off, ya);                                           \
                const __m512 da = spread_pair(da8, a);                                          \
                for (int r = 0; r < 4; r++)                                                     \
                    acc[r][a] = _mm512_fmadd_ps(_mm512_mul_ps(dw[r], da),                       \
                                                _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(neg, u[r], ya)), acc[r][a]); \
            }                                                                                   \
        }                                                                                       \
        for (int a = 0; a < 4; a++)                                                             \
            for (int r = 0; r < 4; r++)                                                         \
                out[(size_t)a * os + (size_t)r] =                                               \
                    i == nb ? pair_finish(acc[r][a], 0, 0.0f, _mm256_setzero_si256())           \
                            : pair_finish(acc[r][a], 1, SC(x[r][i], y[a][i]),                   \
                                          block_p(UBYTES(&x[r][i]), &y[a][i], (char)(OFFSET))); \
    }

TILE4X4_VNNI(tile4x4_q8_0_vnni, block_q8_0, q8_0_ubytes2, q8_0_ubytes, 128)
RK_Q_TILE_DRIVER(rk_q_tile_q8_0_avx512, rk_q_dot_q8_0_avx512, tile4x4_q8_0_vnni, 4, 4)
DOT_VNNI(rk_q_dot_q5_0_avx512, block_q5_0, q5_0_ubytes2, q5_0_ubytes, 16)
TILE4X4_VNNI(tile4x4_q5_0_vnni, block_q5_0, q5_0_ubytes2, q5_0_ubytes, 16)
RK_Q_TILE_DRIVER(rk_q_tile_q5_0_avx512, rk_q_dot_q5_0_avx512, tile4x4_q5_0_vnni, 4, 4)
DOT_VNNI(rk_q_dot_q4_0_avx512, block_q4_0, q4_0_ubytes2, q4_0_ubytes, 8)
TILE4X4_VNNI(tile4x4_q4_0_vnni, block_q4_0, q4_0_ubytes2, q4_0_ubytes, 8)
RK_Q_TILE_DRIVER(rk_q_tile_q4_0_avx512, rk_q_dot_q4_0_avx512, tile4x4_q4_0_vnni, 4, 4)
