/*
 * quant-impl.h — private to src/quant: ggml's block layouts (bit-compatible with GGUF files
 * written by llama.cpp), small scalar helpers, and the per-level kernel declarations that
 * quant-ops.c assembles into the const tables behind rk_quant_get_ops().
 *
 * Naming: rk_q_<what>_<format>_<level>, level one of ref (scalar), avx2, avx512.
 */
#ifndef RK_QUANT_IMPL_H
#define RK_QUANT_IMPL_H

#include <stdint.h>
#include <string.h>

#include "quant/quant.h"

#define QK 32    /* elements per legacy block (Q4_0 ... Q8_1) */
#define QK_K 256 /* elements per K-quant super-block */

typedef struct { uint16_t d; uint8_t qs[QK / 2]; } block_q4_0;              /* x = (q-8)*d */
typedef struct { uint16_t d, m; uint8_t qs[QK / 2]; } block_q4_1;           /* x = q*d + m */
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[QK / 2]; } block_q5_0; /* (q-16)*d */
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QK / 2]; } block_q5_1;
typedef struct { uint16_t d; int8_t qs[QK]; } block_q8_0;
typedef struct { uint16_t d, s; int8_t qs[QK]; } block_q8_1; /* s = d * sum(qs) */

typedef struct { /* 2.625 bpw: 16 groups of 16, 4-bit scale + 4-bit min each */
    uint8_t scales[QK_K / 16];
    uint8_t qs[QK_K / 4];
    uint16_t d, dmin;
} block_q2_K;
typedef struct { /* 3.4375 bpw: 2 low bits in qs, high bit in hmask, 6-bit scales */
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12];
    uint16_t d;
} block_q3_K;
typedef struct { /* 4.5 bpw: 8 groups of 32, 6-bit scale and min packed in 12 bytes */
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qs[QK_K / 2];
} block_q4_K;
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
} block_q5_K;
typedef struct { /* 6.5625 bpw: 16 groups of 16, int8 scales */
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d;
} block_q6_K;
typedef struct { /* activations for K-quant dots */
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16]; /* sums of each 16 consecutive qs */
} block_q8_K;

_Static_assert(sizeof(block_q4_0) == 18, "q4_0");
_Static_assert(sizeof(block_q4_1) == 20, "q4_1");
_Static_assert(sizeof(block_q5_0) == 22, "q5_0");
_Static_assert(sizeof(block_q5_1) == 24, "q5_1");
_Static_assert(sizeof(block_q8_0) == 34, "q8_0");
_Static_assert(sizeof(block_q8_1) == 36, "q8_1");
_Static_assert(sizeof(block_q2_K) == 84, "q2_K");
_Static_assert(sizeof(block_q3_K) == 110, "q3_K");
_Static_assert(sizeof(block_q4_K) == 144, "q4_K");
_Static_assert(sizeof(block_q5_K) == 176, "q5_K");
_Static_assert(sizeof(block_q6_K) == 210, "q6_K");
_Static_assert(sizeof(block_q8_K) == 292, "q8_K");

/* Unpacks the 12-byte scale/min field of Q4_K/Q5_K into 8 scales (out[0..7]) and 8 mins
 * (out[8..15]), all 6-bit: the first four of each are the low 6 bits of bytes 0-3 / 4-7, the
 * last four take their low nibble from bytes 8-11 and their top 2 bits from bytes 0-7. */
static inline void rk_q_unpack_k4_scales(const uint8_t *scales, uint8_t out[16]) {
    uint32_t u[4];
    memcpy(u, scales, 12);
    const uint32_t km1 = 0x3f3f3f3f, km2 = 0x0f0f0f0f, km3 = 0x03030303;
    u[3] = ((u[2] >> 4) & km2) | (((u[1] >> 6) & km3) << 4);
    const uint32_t mins_lo = u[1] & km1;
    u[1] = (u[2] & km2) | (((u[0] >> 6) & km3) << 4);
    u[2] = mins_lo;
    u[0] &= km1;
    memcpy(out, u, 16);
}

/* Unpacks Q3_K's 12-byte field into 16 signed scales (6-bit values minus 32). */
static inline void rk_q_unpack_q3k_scales(const uint8_t *scales, int8_t out[16]) {
    uint32_t a[4];
    memcpy(a, scales, 12);
    const uint32_t km1 = 0x03030303, km2 = 0x0f0f0f0f;
    const uint32_t tmp = a[2];
    a[2] = ((a[0] >> 4) & km2) | (((tmp >> 4) & km1) << 4);
    a[3] = ((a[1] >> 4) & km2) | (((tmp >> 6) & km1) << 4);
    a[0] = (a[0] & km2) | (((tmp >> 0) & km1) << 4);
    a[1] = (a[1] & km2) | (((tmp >> 2) & km1) << 4);
    uint8_t b[16];
    memcpy(b, a, 16);
    for (int i = 0; i < 16; i++) out[i] = (int8_t)(b[i] - 32);
}

#define RK_Q_DECL_FMT(fmt, lvl)                                                  \
    void rk_q_dequant_##fmt##_##lvl(const void *src, float *dst, int64_t n);  \
    float rk_q_dot_##fmt##_##lvl(int64_t n, const void *w, const void *act)

/* scalar reference (quant-ref.c, quant-kquant-ref.c) */
RK_Q_DECL_FMT(f32, ref);
RK_Q_DECL_FMT(f16, ref);
RK_Q_DECL_FMT(bf16, ref);
RK_Q_DECL_FMT(q4_0, ref);
RK_Q_DECL_FMT(q4_1, ref);
RK_Q_DECL_FMT(q5_0, ref);
RK_Q_DECL_FMT(q5_1, ref);
RK_Q_DECL_FMT(q8_0, ref);
RK_Q_DECL_FMT(q2_K, ref);
RK_Q_DECL_FMT(q3_K, ref);
RK_Q_DECL_FMT(q4_K, ref);
RK_Q_DECL_FMT(q5_K, ref);
RK_Q_DECL_FMT(q6_K, ref);
void rk_q_dequant_q8_1_ref(const void *src, float *dst, int64_t n);
void rk_q_dequant_q8_K_ref(const void *src, float *dst, int64_t n);
void rk_q_quantize_f32_ref(const float *src, void *dst, int64_t n);
void rk_q_quantize_q8_0_ref(const float *src, void *dst, int64_t n);
void rk_q_quantize_q8_1_ref(const float *src, void *dst, int64_t n);
void rk_q_quantize_q8_K_ref(const float *src, void *dst, int64_t n);

/* AVX2 + FMA + F16C (quant-avx2.c, quant-kquant-avx2.c) */
RK_Q_DECL_FMT(f16, avx2);
RK_Q_DECL_FMT(bf16, avx2);
float rk_q_dot_f32_avx2(int64_t n, const void *w, const void *act);
float rk_q_dot_q4_0_avx2(int64_t n, const void *w, const void *act);
float rk_q_dot_q4_1_avx2(int64_t n, const void *w, const void *act);
float rk_q_dot_q5_0_avx2(int64_t n, const void *w, const void *act);
float rk_q_dot_q5_1_avx2(int64_t n, const void *w, const void *act);
float rk_q_dot_q8_0_avx2(int64_t n, const void *w, const void *act);
float rk_q_dot_q2_K_avx2(int64_t n, const void *w, const void *act);
float rk_q_dot_q3_K_avx2(int64_t n, const void *w, const void *act);
float rk_q_dot_q4_K_avx2(int64_t n, const void *w, const void *act);
float rk_q_dot_q5_K_avx2(int64_t n, const void *w, const void *act);
float rk_q_dot_q6_K_avx2(int64_t n, const void *w, const void *act);
void rk_q_quantize_q8_0_avx2(const float *src, void *dst, int64_t n);
void rk_q_quantize_q8_1_avx2(const float *src, void *dst, int64_t n);
void rk_q_quantize_q8_K_avx2(const float *src, void *dst, int64_t n);
void rk_q_tile_q4_1_avx2(int64_t n, const void *w, size_t w_row_bytes, int nw, const void *act,
                         size_t act_row_bytes, int na, float *out, size_t out_stride);
void rk_q_tile_q8_0_avx2(int64_t n, const void *w, size_t w_row_bytes, int nw, const void *act,
                         size_t act_row_bytes, int na, float *out, size_t out_stride);
void rk_q_tile_q8_0_avx512(int64_t n, const void *w, size_t w_row_bytes, int nw, const void *act,
                         size_t act_row_bytes, int na, float *out, size_t out_stride);
void rk_q_tile_q5_0_avx512(int64_t n, const void *w, size_t w_row_bytes, int nw, const void *act,
                         size_t act_row_bytes, int na, float *out, size_t out_stride);
void rk_q_tile_q4_0_avx512(int64_t n, const void *w, size_t w_row_bytes, int nw, const void *act,
                         size_t act_row_bytes, int na, float *out, size_t out_stride);
void rk_q_tile_q5_0_avx2(int64_t n, const void *w, size_t w_row_bytes, int nw, const void *act,
                         size_t act_row_bytes, int na, float *out, size_t out_stride);
void rk_q_tile_q4_0_avx2(int64_t n, const void *w, size_t w_row_bytes, int nw, const void *act,
                         size_t act_row_bytes, int na, float *out, size_t out_stride);
/* register-tiled K-quant tiles (quant-kquant-avx2.c, quant-kquant-avx512.c) */
void rk_q_tile_q4_K_avx2(int64_t n, const void *w, size_t w_row_bytes, int nw, const void *act,
                         size_t act_row_bytes, int na, float *out, size_t out_stride);
void rk_q_tile_q5_K_avx2(int64_t n, const void *w, size_t w_row_bytes, int nw, const void *act,
                         size_t act_row_bytes, int na, float *out, size_t out_stride);
void rk_q_tile_q6_K_avx2(int64_t n, const void *w, size_t w_row_bytes, int nw, const void *act,
                         size_t act_row_bytes, int na, float *out, size_t out_stride);
void rk_q_tile_q4_K_avx512(int64_t n, const void *w, size_t w_row_bytes, int nw, const void *act,
                         size_t act_row_bytes, int na, float *out, size_t out_stride);
void rk_q_tile_q5_K_avx512(int64_t n, const void *w, size_t w_row_bytes, int nw, const void *act,
                         size_t act_row_bytes, int na, float *out, size_t out_stride);
void rk_q_tile_q6_K_avx512(int64_t n, const void *w, size_t w_row_bytes, int nw, const void *act,
                         size_t act_row_bytes, int na, float *out, size_t out_stride);

/* AVX-512 F/BW/VL/DQ/VNNI (quant-avx512.c, quant-kquant-avx512.c) */
float rk_q_dot_f32_avx512(int64_t n, const void *w, const void *act);
float rk_q_dot_q4_0_avx512(int64_t n, const void *w, const void *act);
float rk_q_dot_q4_1_avx512(int64_t n, const void *w, const void *act);
float rk_q_dot_q5_0_avx512(int64_t n, const void *w, const void *act);
float rk_q_dot_q5_1_avx512(int64_t n, const void *w, const void *act);
float rk_q_dot_q8_0_avx512(int64_t n, const void *w, const void *act);
float rk_q_dot_q4_K_avx512(int64_t n, const void *w, const void *act);
float rk_q_dot_q5_K_avx512(int64_t n, const void *w, const void *act);
float rk_q_dot_q6_K_avx512(int64_t n, const void *w, const void *act);

#endif
