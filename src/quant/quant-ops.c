/*
 * quant-ops.c — the const tables behind rk_quant_get_ops(): one per SIMD level, each entry
 * naming the best kernel that level has for a format (a level without its own kernel for some
 * part uses the next lower level's). Also the generic batched tile (vec_dot per pair) for the
 * formats without a register-tiled kernel.
 */
#include "quant/quant-impl.h"

/* vec_dot_tile in terms of vec_dot: each weight row is dotted with every activation row while
 * it is hot in L1, so weights stream from memory once per tile of rows. */
#define RK_Q_TILE_GENERIC(name, dot)                                                           \
    static void name(int64_t n, const void *w, size_t wrb, int nw, const void *act, size_t arb, \
                     int na, float *out, size_t os) {                                          \
        for (int r = 0; r < nw; r++) {                                                         \
            const char *wr = (const char *)w + (size_t)r * wrb;                                 \
            for (int a = 0; a < na; a++)                                                       \
                out[(size_t)a * os + (size_t)r] = dot(n, wr, (const char *)act + (size_t)a * arb); \
        }                                                                                      \
    }

/* Q8_1 and Q8_K as "weights": dotted with themselves, so their ops are complete. */
static float dot_q8_1_self(int64_t n, const void *w, const void *act) {
    const block_q8_1 *x = w, *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        int s = 0;
        for (int j = 0; j < QK; j++) s += x[i].qs[j] * y[i].qs[j];
        sum += (float)s * (rk_fp16_to_fp32(x[i].d) * rk_fp16_to_fp32(y[i].d));
    }
    return sum;
}
static float dot_q8_K_self(int64_t n, const void *w, const void *act) {
    const block_q8_K *x = w, *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int s = 0;
        for (int j = 0; j < QK_K; j++) s += x[i].qs[j] * y[i].qs[j];
        sum += (float)s * x[i].d * y[i].d;
    }
    return sum;
}

#define FORMATS(X)                                                                          \
    X(f32) X(f16) X(bf16) X(q4_0) X(q4_1) X(q5_0) X(q5_1) X(q8_0) X(q2_K) X(q3_K) X(q4_K)    \
    X(q5_K) X(q6_K)
#define TILE_REF(f) RK_Q_TILE_GENERIC(tile_##f##_ref, rk_q_dot_##f##_ref)
FORMATS(TILE_REF)
RK_Q_TILE_GENERIC(tile_q8_1_self, dot_q8_1_self)
RK_Q_TILE_GENERIC(tile_q8_K_self, dot_q8_K_self)

#if defined(__x86_64__) && defined(__GNUC__)
#define RK_Q_HAVE_X86 1
#define TILE_AVX2(f) RK_Q_TILE_GENERIC(tile_##f##_avx2, rk_q_dot_##f##_avx2)
TILE_AVX2(f32) TILE_AVX2(f16) TILE_AVX2(bf16) TILE_AVX2(q5_1)
TILE_AVX2(q2_K) TILE_AVX2(q3_K)
#define TILE_AVX512(f) RK_Q_TILE_GENERIC(tile_##f##_avx512, rk_q_dot_##f##_avx512)
TILE_AVX512(f32)
#endif

#define T(t) RK_TYPE_##t

static const rk_quant_ops ops_ref[] = {
    {T(F32), T(F32), rk_q_dequant_f32_ref, rk_q_quantize_f32_ref, rk_q_dot_f32_ref, tile_f32_ref},
    {T(F16), T(F32), rk_q_dequant_f16_ref, rk_q_quantize_f32_ref, rk_q_dot_f16_ref, tile_f16_ref},
    {T(BF16), T(F32), rk_q_dequant_bf16_ref, rk_q_quantize_f32_ref, rk_q_dot_bf16_ref, tile_bf16_ref},
    {T(Q4_0), T(Q8_0), rk_q_dequant_q4_0_ref, rk_q_quantize_q8_0_ref, rk_q_dot_q4_0_ref, tile_q4_0_ref},
    {T(Q4_1), T(Q8_1), rk_q_dequant_q4_1_ref, rk_q_quantize_q8_1_ref, rk_q_dot_q4_1_ref, tile_q4_1_ref},
    {T(Q5_0), T(Q8_0), rk_q_dequant_q5_0_ref, rk_q_quantize_q8_0_ref, rk_q_dot_q5_0_ref, tile_q5_0_ref},
    {T(Q5_1), T(Q8_1), rk_q_dequant_q5_1_ref, rk_q_quantize_q8_1_ref, rk_q_dot_q5_1_ref, tile_q5_1_ref},
    {T(Q8_0), T(Q8_0), rk_q_dequant_q8_0_ref, rk_q_quantize_q8_0_ref, rk_q_dot_q8_0_ref, tile_q8_0_ref},
    {T(Q8_1), T(Q8_1), rk_q_dequant_q8_1_ref, rk_q_quantize_q8_1_ref, dot_q8_1_self, tile_q8_1_self},
    {T(Q2_K), T(Q8_K), rk_q_dequant_q2_K_ref, rk_q_quantize_q8_K_ref, rk_q_dot_q2_K_ref, tile_q2_K_ref},
    {T(Q3_K), T(Q8_K), rk_q_dequant_q3_K_ref, rk_q_quantize_q8_K_ref, rk_q_dot_q3_K_ref, tile_q3_K_ref},
    {T(Q4_K), T(Q8_K), rk_q_dequant_q4_K_ref, rk_q_quantize_q8_K_ref, rk_q_dot_q4_K_ref, tile_q4_K_ref},
    {T(Q5_K), T(Q8_K), rk_q_dequant_q5_K_ref, rk_q_quantize_q8_K_ref, rk_q_dot_q5_K_ref, tile_q5_K_ref},
    {T(Q6_K), T(Q8_K), rk_q_dequant_q6_K_ref, rk_q_quantize_q8_K_ref, rk_q_dot_q6_K_ref, tile_q6_K_ref},
    {T(Q8_K), T(Q8_K), rk_q_dequant_q8_K_ref, rk_q_quantize_q8_K_ref, dot_q8_K_self, tile_q8_K_self},
};

#ifdef RK_Q_HAVE_X86
static const rk_quant_ops ops_avx2[] = {
    {T(F32), T(F32), rk_q_dequant_f32_ref, rk_q_quantize_f32_ref, rk_q_dot_f32_avx2, tile_f32_avx2},
    {T(F16), T(F32), rk_q_dequant_f16_avx2, rk_q_quantize_f32_ref, rk_q_dot_f16_avx2, tile_f16_avx2},
    {T(BF16), T(F32), rk_q_dequant_bf16_avx2, rk_q_quantize_f32_ref, rk_q_dot_bf16_avx2, tile_bf16_avx2},
    {T(Q4_0), T(Q8_0), rk_q_dequant_q4_0_ref, rk_q_quantize_q8_0_avx2, rk_q_dot_q4_0_avx2, rk_q_tile_q4_0_avx2},
    {T(Q4_1), T(Q8_1), rk_q_dequant_q4_1_ref, rk_q_quantize_q8_1_avx2, rk_q_dot_q4_1_avx2, rk_q_tile_q4_1_avx2},
    {T(Q5_0), T(Q8_0), rk_q_dequant_q5_0_ref, rk_q_quantize_q8_0_avx2, rk_q_dot_q5_0_avx2, rk_q_tile_q5_0_avx2},
    {T(Q5_1), T(Q8_1), rk_q_dequant_q5_1_ref, rk_q_quantize_q8_1_avx2, rk_q_dot_q5_1_avx2, tile_q5_1_avx2},
    {T(Q8_0), T(Q8_0), rk_q_dequant_q8_0_ref, rk_q_quantize_q8_0_avx2, rk_q_dot_q8_0_avx2, rk_q_tile_q8_0_avx2},
    {T(Q8_1), T(Q8_1), rk_q_dequant_q8_1_ref, rk_q_quantize_q8_1_avx2, dot_q8_1_self, tile_q8_1_self},
    {T(Q2_K), T(Q8_K), rk_q_dequant_q2_K_ref, rk_q_quantize_q8_K_avx2, rk_q_dot_q2_K_avx2, tile_q2_K_avx2},
    {T(Q3_K), T(Q8_K), rk_q_dequant_q3_K_ref, rk_q_quantize_q8_K_avx2, rk_q_dot_q3_K_avx2, tile_q3_K_avx2},
    {T(Q4_K), T(Q8_K), rk_q_dequant_q4_K_ref, rk_q_quantize_q8_K_avx2, rk_q_dot_q4_K_avx2, rk_q_tile_q4_K_avx2},
    {T(Q5_K), T(Q8_K), rk_q_dequant_q5_K_ref, rk_q_quantize_q8_K_avx2, rk_q_dot_q5_K_avx2, rk_q_tile_q5_K_avx2},
    {T(Q6_K), T(Q8_K), rk_q_dequant_q6_K_ref, rk_q_quantize_q8_K_avx2, rk_q_dot_q6_K_avx2, rk_q_tile_q6_K_avx2},
    {T(Q8_K), T(Q8_K), rk_q_dequant_q8_K_ref, rk_q_quantize_q8_K_avx2, dot_q8_K_self, tile_q8_K_self},
};

/* AVX-512 where it beats AVX2 (measured with bench-quant on the 2-core EPYC, which runs
 * 512-bit ops as two 256-bit halves): F32, Q4_0, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K. The AVX-512 dots
 * of Q4_1 and Q5_1 were slower than AVX2 there (per-block scale work dominates), so they stay
 * reachable through rk_quant_get_spare_dot() for parity tests and bench-quant.
 * Each level's vec_dot and vec_dot_tile give the same bits for each pair (batch invariance,
 * quant.h): a register tile is always paired with the dot written to match it, e.g. Q4_1 here
 * uses the AVX2 tile with the AVX2 dot, Q4_0 the AVX-512 tile with the AVX-512 dot. */
static const rk_quant_ops ops_avx512[] = {
    {T(F32), T(F32), rk_q_dequant_f32_ref, rk_q_quantize_f32_ref, rk_q_dot_f32_avx512, tile_f32_avx512},
    {T(F16), T(F32), rk_q_dequant_f16_avx2, rk_q_quantize_f32_ref, rk_q_dot_f16_avx2, tile_f16_avx2},
    {T(BF16), T(F32), rk_q_dequant_bf16_avx2, rk_q_quantize_f32_ref, rk_q_dot_bf16_avx2, tile_bf16_avx2},
    {T(Q4_0), T(Q8_0), rk_q_dequant_q4_0_ref, rk_q_quantize_q8_0_avx2, rk_q_dot_q4_0_avx512, rk_q_tile_q4_0_avx512},
    {T(Q4_1), T(Q8_1), rk_q_dequant_q4_1_ref, rk_q_quantize_q8_1_avx2, rk_q_dot_q4_1_avx2, rk_q_tile_q4_1_avx2},
    {T(Q5_0), T(Q8_0), rk_q_dequant_q5_0_ref, rk_q_quantize_q8_0_avx2, rk_q_dot_q5_0_avx512, rk_q_tile_q5_0_avx512},
    {T(Q5_1), T(Q8_1), rk_q_dequant_q5_1_ref, rk_q_quantize_q8_1_avx2, rk_q_dot_q5_1_avx2, tile_q5_1_avx2},
    {T(Q8_0), T(Q8_0), rk_q_dequant_q8_0_ref, rk_q_quantize_q8_0_avx2, rk_q_dot_q8_0_avx512, rk_q_tile_q8_0_avx512},
    {T(Q8_1), T(Q8_1), rk_q_dequant_q8_1_ref, rk_q_quantize_q8_1_avx2, dot_q8_1_self, tile_q8_1_self},
    {T(Q2_K), T(Q8_K), rk_q_dequant_q2_K_ref, rk_q_quantize_q8_K_avx2, rk_q_dot_q2_K_avx2, tile_q2_K_avx2},
    {T(Q3_K), T(Q8_K), rk_q_dequant_q3_K_ref, rk_q_quantize_q8_K_avx2, rk_q_dot_q3_K_avx2, tile_q3_K_avx2},
    {T(Q4_K), T(Q8_K), rk_q_dequant_q4_K_ref, rk_q_quantize_q8_K_avx2, rk_q_dot_q4_K_avx512, rk_q_tile_q4_K_avx512},
    {T(Q5_K), T(Q8_K), rk_q_dequant_q5_K_ref, rk_q_quantize_q8_K_avx2, rk_q_dot_q5_K_avx512, rk_q_tile_q5_K_avx512},
    {T(Q6_K), T(Q8_K), rk_q_dequant_q6_K_ref, rk_q_quantize_q8_K_avx2, rk_q_dot_q6_K_avx512, rk_q_tile_q6_K_avx512},
    {T(Q8_K), T(Q8_K), rk_q_dequant_q8_K_ref, rk_q_quantize_q8_K_avx2, dot_q8_K_self, tile_q8_K_self},
};
#endif

static const rk_quant_ops *find(const rk_quant_ops *tab, size_t count, uint32_t type) {
    for (size_t i = 0; i < count; i++)
        if (tab[i].type == type) return &tab[i];
    return NULL;
}

const rk_quant_ops *rk_quant_get_ops(uint32_t type, rk_simd_level level) {
#ifdef RK_Q_HAVE_X86
    if (level >= RK_SIMD_AVX512) return find(ops_avx512, sizeof ops_avx512 / sizeof *ops_avx512, type);
    if (level >= RK_SIMD_AVX2) return find(ops_avx2, sizeof ops_avx2 / sizeof *ops_avx2, type);
#else
    (void)level;
#endif
    return find(ops_ref, sizeof ops_ref / sizeof *ops_ref, type);
}

rk_vec_dot_fn rk_quant_get_spare_dot(uint32_t type, rk_simd_level level) {
#ifdef RK_Q_HAVE_X86
    if (level == RK_SIMD_AVX512) switch (type) {
        case RK_TYPE_Q4_1: return rk_q_dot_q4_1_avx512;
        case RK_TYPE_Q5_1: return rk_q_dot_q5_1_avx512;
        default: break;
        }
#else
    (void)type;
    (void)level;
#endif
    return NULL;
}
