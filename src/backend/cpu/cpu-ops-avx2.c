/*
 * cpu-ops-avx2.c — AVX2/FMA versions of the activation functions (the scalar ones call libm's
 * expf/tanhf per element, which showed up at ~10% of Gemma's prompt processing).
 *
 * exp is rk_exp256 (quant-simd-avx2.h). GELU uses the identity
 * 0.5·(1 + tanh(z)) = 1 / (1 + e^(−2z)), so both activations are g / (1 + e^(−k)).
 */
#include <immintrin.h>

#include "backend/cpu/cpu-ops.h"
#include "quant/quant-simd-avx2.h"


/* gate[i] = gate[i] / (1 + exp(-k_i)) * up[i], k = K(gate) */
#define GATED(NAME, K_OF_G, SCALAR)                                                   \
    void NAME(float *gate, const float *up, int64_t n) {                              \
        int64_t i = 0;                                                                \
        for (; i + 8 <= n; i += 8) {                                                  \
            const __m256 g = _mm256_loadu_ps(gate + i);                               \
            const __m256 k = K_OF_G;                                                  \
            const __m256 den = _mm256_add_ps(_mm256_set1_ps(1.0f),                    \
                                             rk_exp256(_mm256_sub_ps(_mm256_setzero_ps(), k))); \
            _mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_div_ps(g, den), _mm256_loadu_ps(up + i))); \
        }                                                                             \
        if (i < n) SCALAR(gate + i, up + i, n - i);                                   \
    }

GATED(rk_swiglu_avx2, g, rk_swiglu)

/* k = 2·sqrt(2/pi)·(g + 0.044715·g³) */
GATED(rk_geglu_avx2,
      _mm256_mul_ps(_mm256_set1_ps(2.0f * 0.7978845608028654f),
                    _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(0.044715f), _mm256_mul_ps(g, g)), g, g)),
      rk_geglu)
