/*
 * quant-avx512.c — AVX-512 (F/BW/VL/DQ + VNNI) dot products for F32 and the legacy 32-element
 * blocks. Two blocks share one 512-bit register; vpdpbusd sums four u8*s8 products per int32
 * lane. Signed weights are made unsigned by an offset (q+8, q+16, q^0x80 = q+128) whose
 * contribution, offset * sum(activations), a second vpdpbusd removes. Blocks left over after
 * the pairs go through the AVX2 form.
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
/* sum(u*y) - off*sum(y) per int32 lane, u unsigned bytes, off a splatted byte */
static inline __m512i dot_off(__m512i u, __m512i y, __m512i off) {
    const __m512i z = _mm512_setzero_si512();
    return _mm512_sub_epi32(_mm512_dpbusd_epi32(z, u, y), _mm512_dpbusd_epi32(z, off, y));
}

#define SC(xb, yb) (rk_h2f((xb).d) * rk_h2f((yb).d))

float rk_q_dot_q4_0_avx512(int64_t n, const void *w, const void *act) {
    const block_q4_0 *x = w;
    const block_q8_0 *y = act;
    const int64_t nb = n / QK;
    const __m512i off = _mm512_set1_epi8(8);
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        const __m512i p = dot_off(nibbles64(x[i].qs, x[i + 1].qs), load2x32(y[i].qs, y[i + 1].qs), off);
        acc = _mm512_fmadd_ps(scale_pair(SC(x[i], y[i]), SC(x[i + 1], y[i + 1])), _mm512_cvtepi32_ps(p), acc);
    }
    float s = _mm512_reduce_add_ps(acc);
    if (i < nb) s += rk_q_dot_q4_0_avx2(QK, &x[i], &y[i]);
    return s;
}

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

float rk_q_dot_q5_0_avx512(int64_t n, const void *w, const void *act) {
    const block_q5_0 *x = w;
    const block_q8_0 *y = act;
    const int64_t nb = n / QK;
    const __m512i off = _mm512_set1_epi8(16);
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        const __m512i nib = nibbles64(x[i].qs, x[i + 1].qs);
        const __m512i u = _mm512_mask_add_epi8(nib, qh_pair(x[i].qh, x[i + 1].qh), nib, off);
        const __m512i p = dot_off(u, load2x32(y[i].qs, y[i + 1].qs), off);
        acc = _mm512_fmadd_ps(scale_pair(SC(x[i], y[i]), SC(x[i + 1], y[i + 1])), _mm512_cvtepi32_ps(p), acc);
    }
    float s = _mm512_reduce_add_ps(acc);
    if (i < nb) s += rk_q_dot_q5_0_avx2(QK, &x[i], &y[i]);
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

float rk_q_dot_q8_0_avx512(int64_t n, const void *w, const void *act) {
    const block_q8_0 *x = w;
    const block_q8_0 *y = act;
    const int64_t nb = n / QK;
    const __m512i off = _mm512_set1_epi8((char)0x80);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        const __m512i y0 = load2x32(y[i].qs, y[i + 1].qs), y1 = load2x32(y[i + 2].qs, y[i + 3].qs);
        const __m512i u0 = _mm512_xor_si512(load2x32(x[i].qs, x[i + 1].qs), off);
        const __m512i u1 = _mm512_xor_si512(load2x32(x[i + 2].qs, x[i + 3].qs), off);
        acc0 = _mm512_fmadd_ps(scale_pair(SC(x[i], y[i]), SC(x[i + 1], y[i + 1])),
                               _mm512_cvtepi32_ps(dot_off(u0, y0, off)), acc0);
        acc1 = _mm512_fmadd_ps(scale_pair(SC(x[i + 2], y[i + 2]), SC(x[i + 3], y[i + 3])),
                               _mm512_cvtepi32_ps(dot_off(u1, y1, off)), acc1);
    }
    for (; i + 2 <= nb; i += 2) {
        const __m512i u0 = _mm512_xor_si512(load2x32(x[i].qs, x[i + 1].qs), off);
        acc0 = _mm512_fmadd_ps(scale_pair(SC(x[i], y[i]), SC(x[i + 1], y[i + 1])),
                               _mm512_cvtepi32_ps(dot_off(u0, load2x32(y[i].qs, y[i + 1].qs), off)), acc0);
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    if (i < nb) s += rk_q_dot_q8_0_avx2(QK, &x[i], &y[i]);
    return s;
}

/* ---- register-tiled batched dots with VNNI --------------------------------------------- */
/* 4 weight rows x 4 activation rows for the formats that pair with Q8_0 activations. The
 * weights are taken as unsigned bytes u = q + OFFSET (Q4_0: the nibble, Q5_0: the 5-bit value,
 * Q8_0: q ^ 0x80), so one vpdpbusd (256-bit, AVX-512VL) per weight block and activation block
 * does the 32 multiply-adds with no sign fix-up; the offset's contribution OFFSET * sum(y) is
 * computed once per activation block and is where that vpdpbusd starts accumulating from.
 * 16 float accumulators plus the unpacked weights fit in AVX-512's 32 vector registers. */
#define TILE4X4_VNNI(NAME, BLOCK, UBYTES, OFFSET)                                                \
    static void NAME(int64_t n, const char *w, size_t wrb, const char *act, size_t arb,         \
                     float *out, size_t os) {                                                   \
        const BLOCK *x[4];                                                                      \
        const block_q8_0 *y[4];                                                                 \
        for (int k = 0; k < 4; k++) {                                                           \
            x[k] = (const BLOCK *)(w + (size_t)k * wrb);                                        \
            y[k] = (const block_q8_0 *)(act + (size_t)k * arb);                                 \
        }                                                                                       \
        const __m256i offset = _mm256_set1_epi8((char)(OFFSET));                                \
        __m256 acc[4][4];                                                                       \
        for (int r = 0; r < 4; r++)                                                             \
            for (int a = 0; a < 4; a++) acc[r][a] = _mm256_setzero_ps();                        \
        for (int64_t i = 0; i < n / QK; i++) {                                                  \
            __m256i u[4];                                                                       \
            float dw[4];                                                                        \
            for (int r = 0; r < 4; r++) {                                                       \
                u[r] = UBYTES(&x[r][i]);                                                        \
                dw[r] = rk_h2f(x[r][i].d);                                                      \
            }                                                                                   \
            for (int a = 0; a < 4; a++) {                                                       \
                const __m256i ya = _mm256_loadu_si256((const __m256i *)y[a][i].qs);             \
                const __m256i neg = _mm256_sub_epi32(_mm256_setzero_si256(),                    \
                    _mm256_dpbusd_epi32(_mm256_setzero_si256(), offset, ya));                   \
                const float da = rk_h2f(y[a][i].d);                                             \
                for (int r = 0; r < 4; r++) {                                                   \
                    const __m256i p = _mm256_dpbusd_epi32(neg, u[r], ya);                       \
                    acc[r][a] = _mm256_fmadd_ps(_mm256_set1_ps(dw[r] * da), _mm256_cvtepi32_ps(p), \
                                                acc[r][a]);                                     \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        for (int a = 0; a < 4; a++)                                                             \
            for (int r = 0; r < 4; r++)                                                         \
                out[(size_t)a * os + (size_t)r] = rk_hsum_ps(acc[r][a]);                        \
    }

static inline __m256i q8_0_ubytes(const block_q8_0 *b) {
    return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)b->qs), _mm256_set1_epi8((char)0x80));
}
static inline __m256i q5_0_ubytes(const block_q5_0 *b) {
    return _mm256_or_si256(rk_nibbles32(b->qs), _mm256_and_si256(rk_bits32(b->qh), _mm256_set1_epi8(0x10)));
}

TILE4X4_VNNI(tile4x4_q8_0_vnni, block_q8_0, q8_0_ubytes, 128)
RK_Q_TILE_DRIVER(rk_q_tile_q8_0_avx512, rk_q_dot_q8_0_avx2, tile4x4_q8_0_vnni, 4, 4)
TILE4X4_VNNI(tile4x4_q5_0_vnni, block_q5_0, q5_0_ubytes, 16)
RK_Q_TILE_DRIVER(rk_q_tile_q5_0_avx512, rk_q_dot_q5_0_avx512, tile4x4_q5_0_vnni, 4, 4)
static inline __m256i q4_0_ubytes(const block_q4_0 *b) { return rk_nibbles32(b->qs); }
TILE4X4_VNNI(tile4x4_q4_0_vnni, block_q4_0, q4_0_ubytes, 8)
RK_Q_TILE_DRIVER(rk_q_tile_q4_0_avx512, rk_q_dot_q4_0_avx2, tile4x4_q4_0_vnni, 4, 4)
