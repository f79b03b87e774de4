/*
 * kv-tq-rotation-avx2.c — the tq rotation x -> H·D·x / sqrt(d) and its inverse with AVX2, for
 * the per-query and per-output transforms of attention (kv-tq-rotation.c has the scalar ones,
 * which encoding uses). Every butterfly adds or subtracts the same two floats in the same stage
 * order as the scalar transform, and the sign flips and the scaling are exact, so the results
 * are bit-identical to it. d is a power of two >= 8.
 *
 * Stages h = 1, 2, 4 stay inside one register of 8 floats (a swap of neighbours, pairs or
 * halves, then a blend of the sums and differences); stages h >= 8 pair whole registers.
 */
#include <immintrin.h>
#include <math.h>

#include "kv/kv-codec-tq.h"

/* In-register butterflies of stages 1, 2 and 4 of an 8-float vector. */
static inline __m256 butterflies8(__m256 v) {
    __m256 sw = _mm256_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1)); /* neighbours swapped */
    v = _mm256_blend_ps(_mm256_add_ps(v, sw), _mm256_sub_ps(sw, v), 0xAA);
    sw = _mm256_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)); /* pairs swapped */
    v = _mm256_blend_ps(_mm256_add_ps(v, sw), _mm256_sub_ps(sw, v), 0xCC);
    sw = _mm256_permute2f128_ps(v, v, 1); /* halves swapped */
    return _mm256_blend_ps(_mm256_add_ps(v, sw), _mm256_sub_ps(sw, v), 0xF0);
}

static void fwht_avx2(float *x, int64_t d) {
    for (int64_t i = 0; i < d; i += 8)
        _mm256_storeu_ps(x + i, butterflies8(_mm256_loadu_ps(x + i)));
    for (int64_t h = 8; h < d; h *= 2)
        for (int64_t i = 0; i < d; i += 2 * h)
            for (int64_t j = i; j < i + h; j += 8) {
                const __m256 a = _mm256_loadu_ps(x + j), b = _mm256_loadu_ps(x + j + h);
                _mm256_storeu_ps(x + j, _mm256_add_ps(a, b));
                _mm256_storeu_ps(x + j + h, _mm256_sub_ps(a, b));
            }
}

/* x := x * scale, then the signs of x[j] flipped where bit j of signs is set (signs NULL: none). */
static void scale_flip_avx2(float *x, int64_t d, float scale, const uint8_t *signs) {
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    const __m256i sign = _mm256_set1_epi32((int)0x80000000u);
    const __m256 s = _mm256_set1_ps(scale);
    for (int64_t i = 0; i < d; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), s);
        if (signs) {
            const __m256i b = _mm256_and_si256(_mm256_set1_epi32(signs[i >> 3]), bit);
            const __m256i flip = _mm256_and_si256(_mm256_cmpeq_epi32(b, bit), sign);
            v = _mm256_xor_ps(v, _mm256_castsi256_ps(flip));
        }
        _mm256_storeu_ps(x + i, v);
    }
}

void rk_kv_tq_rotate_avx2(float *x, int64_t d, const uint8_t *signs) {
    scale_flip_avx2(x, d, 1.0f, signs);
    fwht_avx2(x, d);
    scale_flip_avx2(x, d, 1.0f / sqrtf((float)d), NULL);
}

void rk_kv_tq_unrotate_avx2(float *x, int64_t d, const uint8_t *signs) {
    fwht_avx2(x, d);
    scale_flip_avx2(x, d, 1.0f / sqrtf((float)d), signs);
}
