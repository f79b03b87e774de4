/*
 * quant-ref.c — the scalar reference for the float formats (F32, F16, BF16) and the legacy
 * 32-element block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1): dequantisation, activation
 * quantisation and dot products, plus the fp16/bf16 conversions and CPU feature detection.
 * The SIMD kernels are tested against these, so clarity beats speed here.
 */
#include <math.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif

#include "quant/quant-impl.h"

/* ---- half and bfloat16 ---------------------------------------------------------------- */

static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float rk_fp16_to_fp32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    const uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13)); /* inf / nan */
    if (exp == 0) { /* zero or subnormal: man * 2^-24 exactly */
        const float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t rk_fp32_to_fp16(float f) { /* round to nearest even, like F16C's vcvtps2ph */
    const uint32_t x = f32_bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0); /* inf/nan */
    if (ax >= 0x477ff000u) return sign | 0x7c00;          /* rounds to >= 65536: inf */
    if (ax < 0x38800000u) {                                /* below 2^-14: subnormal or zero */
        const float v = bits_f32(ax) * 16777216.0f;        /* in units of 2^-24, exact */
        return sign | (uint16_t)lrintf(v);                 /* ties to even (default mode) */
    }
    uint32_t r = ax + 0xfff + ((ax >> 13) & 1); /* round the 13 dropped bits to even */
    return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

float rk_bf16_to_fp32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t rk_fp32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 64); /* quiet nan */
    return (uint16_t)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

#define H2F(h) rk_fp16_to_fp32(h)

/* ---- CPU ------------------------------------------------------------------------------- */

rk_simd_level rk_cpu_simd_level(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    /* F16C from CPUID leaf 1 (ECX bit 29): clang does not know "f16c" as a feature name */
    unsigned a = 0, b = 0, c = 0, d = 0;
    const int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1u);
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
    if (!avx2) return RK_SIMD_SCALAR;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vnni"))
        return RK_SIMD_AVX512;
    return RK_SIMD_AVX2;
#else
    return RK_SIMD_SCALAR;
#endif
}

int rk_cpu_has_avx512_gfni(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    return rk_cpu_simd_level() == RK_SIMD_AVX512 && __builtin_cpu_supports("avx512vbmi") &&
           __builtin_cpu_supports("gfni");
#else
    return 0;
#endif
}

const char *rk_simd_level_name(rk_simd_level level) {
    switch (level) {
    case RK_SIMD_SCALAR: return "scalar";
    case RK_SIMD_AVX2: return "avx2";
    case RK_SIMD_AVX512: return "avx512";
    }
    return "unknown";
}

/* ---- float formats --------------------------------------------------------------------- */

void rk_q_dequant_f32_ref(const void *src, float *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}
void rk_q_quantize_f32_ref(const float *src, void *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}
void rk_q_dequant_f16_ref(const void *src, float *dst, int64_t n) {
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = H2F(s[i]);
}
void rk_q_dequant_bf16_ref(const void *src, float *dst, int64_t n) {
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = rk_bf16_to_fp32(s[i]);
}

/* Four partial sums, like a 4-wide SIMD dot, so long rows lose less to rounding. */
float rk_q_dot_f32_ref(int64_t n, const void *w, const void *act) {
    const float *x = w, *y = act;
    float s[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++) s[k] += x[i + k] * y[i + k];
    for (; i < n; i++) s[0] += x[i] * y[i];
    return (s[0] + s[1]) + (s[2] + s[3]);
}
float rk_q_dot_f16_ref(int64_t n, const void *w, const void *act) {
    const uint16_t *x = w;
    const float *y = act;
    float s[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++) s[k] += H2F(x[i + k]) * y[i + k];
    for (; i < n; i++) s[0] += H2F(x[i]) * y[i];
    return (s[0] + s[1]) + (s[2] + s[3]);
}
float rk_q_dot_bf16_ref(int64_t n, const void *w, const void *act) {
    const uint16_t *x = w;
    const float *y = act;
    float s[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++) s[k] += rk_bf16_to_fp32(x[i + k]) * y[i + k];
    for (; i < n; i++) s[0] += rk_bf16_to_fp32(x[i]) * y[i];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

/* ---- legacy blocks: dequantisation ------------------------------------------------------ */
/* In every 32-element block, byte j of qs holds element j in its low nibble and element j+16
 * in its high nibble; Q5 formats take bit e of the 32-bit qh as the fifth bit of element e. */

void rk_q_dequant_q4_0_ref(const void *src, float *dst, int64_t n) {
    const block_q4_0 *b = src;
    for (int64_t i = 0; i < n / QK; i++, dst += QK) {
        const float d = H2F(b[i].d);
        for (int j = 0; j < QK / 2; j++) {
            dst[j] = (float)((b[i].qs[j] & 0xf) - 8) * d;
            dst[j + 16] = (float)((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}
void rk_q_dequant_q4_1_ref(const void *src, float *dst, int64_t n) {
    const block_q4_1 *b = src;
    for (int64_t i = 0; i < n / QK; i++, dst += QK) {
        const float d = H2F(b[i].d), m = H2F(b[i].m);
        for (int j = 0; j < QK / 2; j++) {
            dst[j] = (float)(b[i].qs[j] & 0xf) * d + m;
            dst[j + 16] = (float)(b[i].qs[j] >> 4) * d + m;
        }
    }
}
static inline uint32_t load_qh(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}
void rk_q_dequant_q5_0_ref(const void *src, float *dst, int64_t n) {
    const block_q5_0 *b = src;
    for (int64_t i = 0; i < n / QK; i++, dst += QK) {
        const float d = H2F(b[i].d);
        const uint32_t qh = load_qh(b[i].qh);
        for (int j = 0; j < QK / 2; j++) {
            const int x0 = (b[i].qs[j] & 0xf) | (int)((qh >> j) & 1) << 4;
            const int x1 = (b[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            dst[j] = (float)(x0 - 16) * d;
            dst[j + 16] = (float)(x1 - 16) * d;
        }
    }
}
void rk_q_dequant_q5_1_ref(const void *src, float *dst, int64_t n) {
    const block_q5_1 *b = src;
    for (int64_t i = 0; i < n / QK; i++, dst += QK) {
        const float d = H2F(b[i].d), m = H2F(b[i].m);
        const uint32_t qh = load_qh(b[i].qh);
        for (int j = 0; j < QK / 2; j++) {
            const int x0 = (b[i].qs[j] & 0xf) | (int)((qh >> j) & 1) << 4;
            const int x1 = (b[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            dst[j] = (float)x0 * d + m;
            dst[j + 16] = (float)x1 * d + m;
        }
    }
}
void rk_q_dequant_q8_0_ref(const void *src, float *dst, int64_t n) {
    const block_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK; i++, dst += QK) {
        const float d = H2F(b[i].d);
        for (int j = 0; j < QK; j++) dst[j] = (float)b[i].qs[j] * d;
    }
}
void rk_q_dequant_q8_1_ref(const void *src, float *dst, int64_t n) {
    const block_q8_1 *b = src;
    for (int64_t i = 0; i < n / QK; i++, dst += QK) {
        const float d = H2F(b[i].d);
        for (int j = 0; j < QK; j++) dst[j] = (float)b[i].qs[j] * d;
    }
}

/* ---- activation quantisation ------------------------------------------------------------ */
/* d = max|x| / 127 and q = round_half_even(x * 127 / max|x|); the SIMD versions compute the
 * same float expressions, so all levels produce identical bytes. */

static float q8_block(const float *x, int8_t *q, int n, int *sum) {
    float amax = 0.0f;
    for (int j = 0; j < n; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int s = 0;
    for (int j = 0; j < n; j++) {
        q[j] = (int8_t)lrintf(x[j] * id);
        s += q[j];
    }
    *sum = s;
    return amax / 127.0f;
}

void rk_q_quantize_q8_0_ref(const float *src, void *dst, int64_t n) {
    block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        int sum;
        b[i].d = rk_fp32_to_fp16(q8_block(src + i * QK, b[i].qs, QK, &sum));
    }
}
void rk_q_quantize_q8_1_ref(const float *src, void *dst, int64_t n) {
    block_q8_1 *b = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        int sum;
        const float d = q8_block(src + i * QK, b[i].qs, QK, &sum);
        b[i].d = rk_fp32_to_fp16(d);
        b[i].s = rk_fp32_to_fp16(d * (float)sum);
    }
}
void rk_q_quantize_q8_K_ref(const float *src, void *dst, int64_t n) {
    block_q8_K *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int sum;
        b[i].d = q8_block(src + i * QK_K, b[i].qs, QK_K, &sum);
        for (int g = 0; g < QK_K / 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++) s += b[i].qs[g * 16 + j];
            b[i].bsums[g] = (int16_t)s;
        }
    }
}

/* ---- legacy blocks: dot products -------------------------------------------------------- */

float rk_q_dot_q4_0_ref(int64_t n, const void *w, const void *act) {
    const block_q4_0 *x = w;
    const block_q8_0 *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        int s = 0;
        for (int j = 0; j < QK / 2; j++)
            s += ((x[i].qs[j] & 0xf) - 8) * y[i].qs[j] + ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
        sum += (float)s * (H2F(x[i].d) * H2F(y[i].d));
    }
    return sum;
}
float rk_q_dot_q4_1_ref(int64_t n, const void *w, const void *act) {
    const block_q4_1 *x = w;
    const block_q8_1 *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        int s = 0;
        for (int j = 0; j < QK / 2; j++)
            s += (x[i].qs[j] & 0xf) * y[i].qs[j] + (x[i].qs[j] >> 4) * y[i].qs[j + 16];
        sum += (float)s * (H2F(x[i].d) * H2F(y[i].d)) + H2F(x[i].m) * H2F(y[i].s);
    }
    return sum;
}
float rk_q_dot_q5_0_ref(int64_t n, const void *w, const void *act) {
    const block_q5_0 *x = w;
    const block_q8_0 *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        const uint32_t qh = load_qh(x[i].qh);
        int s = 0;
        for (int j = 0; j < QK / 2; j++) {
            const int x0 = ((x[i].qs[j] & 0xf) | (int)((qh >> j) & 1) << 4) - 16;
            const int x1 = ((x[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4) - 16;
            s += x0 * y[i].qs[j] + x1 * y[i].qs[j + 16];
        }
        sum += (float)s * (H2F(x[i].d) * H2F(y[i].d));
    }
    return sum;
}
float rk_q_dot_q5_1_ref(int64_t n, const void *w, const void *act) {
    const block_q5_1 *x = w;
    const block_q8_1 *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        const uint32_t qh = load_qh(x[i].qh);
        int s = 0;
        for (int j = 0; j < QK / 2; j++) {
            const int x0 = (x[i].qs[j] & 0xf) | (int)((qh >> j) & 1) << 4;
            const int x1 = (x[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            s += x0 * y[i].qs[j] + x1 * y[i].qs[j + 16];
        }
        sum += (float)s * (H2F(x[i].d) * H2F(y[i].d)) + H2F(x[i].m) * H2F(y[i].s);
    }
    return sum;
}
float rk_q_dot_q8_0_ref(int64_t n, const void *w, const void *act) {
    const block_q8_0 *x = w;
    const block_q8_0 *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        int s = 0;
        for (int j = 0; j < QK; j++) s += x[i].qs[j] * y[i].qs[j];
        sum += (float)s * (H2F(x[i].d) * H2F(y[i].d));
    }
    return sum;
}
