/*
 * attn-avx2.c — the AVX2/FMA exp-and-sum of the softmax over one page's scores (the dot
 * products and weighted sums live with each KV codec). Compiled with -mavx2 -mfma (file-name
 * rule); chosen at run time by rk_attn_get_ops.
 */
#include <immintrin.h>
#include <math.h>

#include "attn/attn.h"
#include "quant/quant-simd-avx2.h"

float rk_attn_exp_sum_avx2(float *s, int64_t n, float m) {
    const __m256 mv = _mm256_set1_ps(m);
    __m256 acc = _mm256_setzero_ps();
    int64_t t = 0;
    for (; t + 8 <= n; t += 8) {
        const __m256 e = rk_exp256(_mm256_sub_ps(_mm256_loadu_ps(s + t), mv));
        _mm256_storeu_ps(s + t, e);
        acc = _mm256_add_ps(acc, e);
    }
    float sum = rk_hsum_ps(acc);
    for (; t < n; t++) {
        s[t] = expf(s[t] - m);
        sum += s[t];
    }
    return sum;
}
