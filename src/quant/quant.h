/*
 * quant.h — weight block formats: dequantisation and dot products, per SIMD level.
 *
 * A matrix-vector product W·x with a quantised W works like llama.cpp's: the activation row x
 * is quantised once into the type the weight format pairs with (`act_type`: Q8_0, Q8_1 or Q8_K
 * for the block formats, F32 for F32 weights, F16 for F16/BF16 weights ...), then every weight
 * row is dotted with it using integer SIMD. Decode is memory-bound, so this reads each weight
 * byte once and does little work per byte.
 *
 * Every format has a scalar reference; AVX2/FMA and AVX-512 versions must agree with it (parity
 * tests in tests/test-quant-*.c). Which level runs is decided by the caller from
 * rk_cpu_simd_level() — there is no global dispatch state.
 */
#ifndef RK_QUANT_H
#define RK_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "gguf/gguf-types.h"

typedef enum rk_simd_level {
    RK_SIMD_SCALAR = 0,
    RK_SIMD_AVX2 = 1,   /* AVX2 + FMA + F16C */
    RK_SIMD_AVX512 = 2  /* AVX-512 F/BW/VL/DQ (+VNNI where used) on top of AVX2 */
} rk_simd_level;

/* The best level this CPU and build support. */
rk_simd_level rk_cpu_simd_level(void);
/* Whether this CPU has AVX-512 VBMI and GFNI on top of RK_SIMD_AVX512 (Ice Lake, Zen 4 and
 * later): the tq KV codec's AVX-512 kernels need them. */
int rk_cpu_has_avx512_gfni(void);
const char *rk_simd_level_name(rk_simd_level level);

/* weight row (n elements of the weight type) -> n floats. n is a multiple of the block size. */
typedef void (*rk_dequant_row_fn)(const void *src, float *dst, int64_t n);
/* n floats -> one row of act_type. n is a multiple of the block size. */
typedef void (*rk_quantize_row_fn)(const float *src, void *dst, int64_t n);
/* Returns dot(weight row, activation row); both hold n elements. */
typedef float (*rk_vec_dot_fn)(int64_t n, const void *w, const void *act);
/* Batched dot for prompt processing: nw weight rows (w_row_bytes apart) against na activation
 * rows (act_row_bytes apart, already quantised to act_type), each holding n elements:
 *     out[a*out_stride + r] = dot(weight row r, activation row a)   for r < nw, a < na.
 * Kernels keep a small tile of rows in registers so each weight block is loaded once per tile.
 * Batch invariance: each output is bit for bit the vec_dot of the same ops table for that pair,
 * whatever nw and na, so a row's result does not depend on how many rows were computed with it
 * (decode vs a prompt chunk; prefix reuse gives exactly a fresh evaluation's logits). */
typedef void (*rk_vec_dot_tile_fn)(int64_t n, const void *w, size_t w_row_bytes, int nw,
                                   const void *act, size_t act_row_bytes, int na, float *out,
                                   size_t out_stride);

typedef struct rk_quant_ops {
    uint32_t type;                  /* the weight type these ops are for */
    uint32_t act_type;              /* the type activations are quantised to for vec_dot */
    rk_dequant_row_fn dequant_row;  /* weight type -> float */
    rk_quantize_row_fn quantize_act;/* float -> act_type */
    rk_vec_dot_fn vec_dot;          /* weight type · act_type */
    rk_vec_dot_tile_fn vec_dot_tile;/* batched vec_dot; never NULL */
} rk_quant_ops;

/* Pairings (as llama.cpp): Q4_0/Q5_0/Q8_0 · Q8_0; Q4_1/Q5_1 · Q8_1 (d and s = d*sum(q));
 * Q2_K..Q6_K · Q8_K; F32 · F32; F16 · F32 and BF16 · F32 (activations stay fp32: as fast, since
 * the weight bytes dominate, and more accurate than rounding x to 16 bits). Q8_0/Q8_1/Q8_K also
 * have ops of their own (dequant_row, and quantize_act into themselves) so they can be tested
 * and used as storage. Activation quantisation rounds half to even. */

/* Ops for weight `type` at `level` (falls back to lower levels for kernels a level lacks).
 * Returns NULL when ringkv cannot compute with that type. The table is static and const. */
const rk_quant_ops *rk_quant_get_ops(uint32_t type, rk_simd_level level);

/* A vec_dot kernel `level` has for `type` but rk_quant_get_ops() does not choose, because a
 * lower level's measured faster (the AVX-512 Q4_1/Q5_1 dots on Zen 4, which splits 512-bit ops
 * in two); NULL when there is none. For parity tests and bench-quant; not batch invariant with
 * any tile. */
rk_vec_dot_fn rk_quant_get_spare_dot(uint32_t type, rk_simd_level level);

/* Scalar conversions used everywhere. */
float rk_fp16_to_fp32(uint16_t h);
uint16_t rk_fp32_to_fp16(float f);
float rk_bf16_to_fp32(uint16_t h);
uint16_t rk_fp32_to_bf16(float f);

#endif
