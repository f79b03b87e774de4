/*
 * cpu-ops.c — row operations of the forward pass (see cpu-ops.h). These are a few percent of
 * the time next to the matrix products, so they stay plain C the compiler can vectorise.
 */
#include "backend/cpu/cpu-ops.h"

#include <math.h>

void rk_rmsnorm(float *out, const float *x, const float *weight, int64_t n, float eps) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / (double)n + eps));
    if (weight)
        for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * weight[i];
    else
        for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale;
}

void rk_rope_cos_sin(float *cos_sin, int64_t pos, int64_t rot_dim, float freq_base,
                     float freq_scale) {
    for (int64_t i = 0; i < rot_dim / 2; i++) {
        double theta = (double)pos * freq_scale * pow((double)freq_base, -2.0 * (double)i / rot_dim);
        cos_sin[2 * i] = (float)cos(theta);
        cos_sin[2 * i + 1] = (float)sin(theta);
    }
}

void rk_rope_apply(float *x, int64_t rot_dim, const float *cos_sin, int neox) {
    int64_t half = rot_dim / 2;
    for (int64_t i = 0; i < half; i++) {
        float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
        int64_t a = neox ? i : 2 * i;
        int64_t b = neox ? i + half : 2 * i + 1;
        float x0 = x[a], x1 = x[b];
        x[a] = x0 * c - x1 * s;
        x[b] = x0 * s + x1 * c;
    }
}

void rk_swiglu(float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void rk_geglu(float *gate, const float *up, int64_t n) {
    const float sqrt_2_over_pi = 0.7978845608028654f;
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        float gelu = 0.5f * g * (1.0f + tanhf(sqrt_2_over_pi * g * (1.0f + 0.044715f * g * g)));
        gate[i] = gelu * up[i];
    }
}
