/*
 * test-quant-parity.c — every format at every SIMD level this CPU has, against the scalar
 * reference: dequantisation and activation quantisation must be identical, dot products agree
 * within a tight relative tolerance, batched tiles equal single dots bit for bit at each level
 * (batch invariance), and the scalar dot itself agrees with the float dot of the dequantised
 * operands. Also fp16/bf16 conversions and the
 * quantise -> dequantise -> requantise round trip of the activation types.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quant.h"
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif
#include "test-quant-common.h"
#include "test-util.h"

static const uint32_t weight_types[] = {
    RK_TYPE_F32, RK_TYPE_F16, RK_TYPE_BF16, RK_TYPE_Q4_0, RK_TYPE_Q4_1, RK_TYPE_Q5_0,
    RK_TYPE_Q5_1, RK_TYPE_Q8_0, RK_TYPE_Q2_K, RK_TYPE_Q3_K, RK_TYPE_Q4_K, RK_TYPE_Q5_K,
    RK_TYPE_Q6_K, RK_TYPE_Q8_1, RK_TYPE_Q8_K};

static void fill_acts(tq_rng *r, float *x, int64_t n, int mode) {
    for (int64_t i = 0; i < n; i++) {
        x[i] = mode == 1 ? 0.0f : tq_unif(r);
        if (mode == 2 && i % 97 == 5) x[i] *= 50.0f; /* outliers */
    }
}

static double dot_f64(const float *a, const float *b, int64_t n, double *mag) {
    double s = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        s += (double)a[i] * b[i];
        m += fabs((double)a[i] * b[i]);
    }
    *mag = m;
    return s;
}

/* One type, one row length, one data mode: all levels against the reference. */
static void check_type(uint32_t type, int64_t n, int wmode, int amode, rk_simd_level max_level, tq_rng *r) {
    const rk_quant_ops *ref = rk_quant_get_ops(type, RK_SIMD_SCALAR);
    CHECK_MSG(ref && ref->type == type && ref->vec_dot_tile, "type %u", type);
    if (!ref) return;
    const char *name = rk_type_get_info(type)->name;
    enum { NW = 5, NA = 7 };
    const size_t wrb = rk_type_row_bytes(type, n), arb = rk_type_row_bytes(ref->act_type, n);
    uint8_t *w = malloc(wrb * NW), *a = malloc(arb * NA), *a2 = malloc(arb * NA);
    float *x = malloc(sizeof(float) * (size_t)n * NA), *wf = malloc(sizeof(float) * (size_t)n);
    float *af = malloc(sizeof(float) * (size_t)n), *tmp = malloc(sizeof(float) * (size_t)n);
    float ref_dot[NA][NW], mag[NA][NW], out[NA * NW];
    for (int k = 0; k < NW; k++) tq_fill_weights(r, type, w + k * wrb, n, wmode);
    fill_acts(r, x, n * NA, amode);
    for (int k = 0; k < NA; k++) ref->quantize_act(x + k * n, a + k * arb, n);
    const rk_quant_ops *act_ops = rk_quant_get_ops(ref->act_type, RK_SIMD_SCALAR);
    for (int j = 0; j < NA; j++) {
        act_ops->dequant_row(a + j * arb, af, n);
        for (int k = 0; k < NW; k++) {
            ref->dequant_row(w + k * wrb, wf, n);
            double m;
            const double want = dot_f64(wf, af, n, &m);
            ref_dot[j][k] = ref->vec_dot(n, w + k * wrb, a + j * arb);
            mag[j][k] = (float)m;
            /* Q8_1's s is rounded to fp16, so the reference is only close to the float dot */
            CHECK_MSG(fabs(ref_dot[j][k] - want) <= 2e-3 * m + 1e-6, "%s n=%lld ref dot %g vs float %g (mag %g)",
                      name, (long long)n, ref_dot[j][k], want, m);
        }
    }
    for (int lvl = RK_SIMD_SCALAR; lvl <= (int)max_level; lvl++) {
        const rk_quant_ops *ops = rk_quant_get_ops(type, (rk_simd_level)lvl);
        const char *ln = rk_simd_level_name((rk_simd_level)lvl);
        CHECK(ops && ops->type == type && ops->act_type == ref->act_type && ops->vec_dot_tile);
        if (!ops) continue;
        ref->dequant_row(w, wf, n);
        ops->dequant_row(w, tmp, n);
        CHECK_MSG(memcmp(wf, tmp, sizeof(float) * (size_t)n) == 0, "%s %s dequant differs", name, ln);
        for (int k = 0; k < NA; k++) ops->quantize_act(x + k * n, a2 + k * arb, n);
        CHECK_MSG(memcmp(a, a2, arb * NA) == 0, "%s %s quantize_act differs", name, ln);
        for (int j = 0; j < NA; j++)
            for (int k = 0; k < NW; k++) {
                const float got = ops->vec_dot(n, w + k * wrb, a + j * arb);
                CHECK_MSG(fabsf(got - ref_dot[j][k]) <= 1e-5f * mag[j][k] + 1e-6f,
                          "%s %s n=%lld wmode=%d dot %g vs ref %g (mag %g)", name, ln, (long long)n, wmode,
                          got, ref_dot[j][k], mag[j][k]);
            }
        const rk_vec_dot_fn spare = rk_quant_get_spare_dot(type, (rk_simd_level)lvl);
        for (int j = 0; spare && j < NA; j++)
            for (int k = 0; k < NW; k++) {
                const float got = spare(n, w + k * wrb, a + j * arb);
                CHECK_MSG(fabsf(got - ref_dot[j][k]) <= 1e-5f * mag[j][k] + 1e-6f,
                          "%s %s spare dot %g vs ref %g", name, ln, got, ref_dot[j][k]);
            }
        memset(out, 0, sizeof out);
        ops->vec_dot_tile(n, w, wrb, NW, a, arb, NA, out, NW);
        for (int j = 0; j < NA; j++)
            for (int k = 0; k < NW; k++)
                CHECK_MSG(fabsf(out[j * NW + k] - ref_dot[j][k]) <= 1e-5f * mag[j][k] + 1e-6f,
                          "%s %s tile [%d,%d] %g vs ref %g", name, ln, j, k, out[j * NW + k], ref_dot[j][k]);
    }
    free(w); free(a); free(a2); free(x); free(wf); free(af); free(tmp);
}

/* Batch invariance: at every level, vec_dot_tile's output for each (weight row, activation row)
 * must be bit-for-bit vec_dot of that pair, whatever the tile shape (nw x na, 1..8 each, so full
 * register tiles and every leftover edge are hit): a token's logits then do not depend on how
 * many rows were computed with it (decode vs a prompt chunk). Also checks that the tile writes
 * nothing outside its nw x na outputs. */
static void check_tile_exact(uint32_t type, int64_t n, int wmode, rk_simd_level max_level, tq_rng *r) {
    enum { MW = 8, MA = 8, OS = MW + 3 };
    const rk_quant_ops *ref = rk_quant_get_ops(type, RK_SIMD_SCALAR);
    if (!ref) return;
    const char *name = rk_type_get_info(type)->name;
    const size_t wrb = rk_type_row_bytes(type, n), arb = rk_type_row_bytes(ref->act_type, n);
    uint8_t *w = malloc(wrb * MW), *a = malloc(arb * MA);
    float *x = malloc(sizeof(float) * (size_t)n * MA);
    float single[MA][MW], out[MA * OS];
    for (int k = 0; k < MW; k++) tq_fill_weights(r, type, w + k * wrb, n, wmode);
    fill_acts(r, x, n * MA, 2);
    for (int lvl = RK_SIMD_SCALAR; lvl <= (int)max_level; lvl++) {
        const rk_quant_ops *ops = rk_quant_get_ops(type, (rk_simd_level)lvl);
        const char *ln = rk_simd_level_name((rk_simd_level)lvl);
        for (int j = 0; j < MA; j++) ops->quantize_act(x + j * n, a + j * arb, n);
        for (int j = 0; j < MA; j++)
            for (int k = 0; k < MW; k++) single[j][k] = ops->vec_dot(n, w + k * wrb, a + j * arb);
        int bad = 0; /* report the first mismatch of this type, level and length only */
        for (int nw = 1; nw <= MW && !bad; nw++)
            for (int na = 1; na <= MA && !bad; na++) {
                memset(out, 0x7f, sizeof out); /* a sentinel no kernel writes: 0x7f7f7f7f */
                ops->vec_dot_tile(n, w, wrb, nw, a, arb, na, out, OS);
                for (int j = 0; j < MA && !bad; j++)
                    for (int k = 0; k < OS && !bad; k++) {
                        const float got = out[j * OS + k];
                        if (j < na && k < nw) {
                            bad = memcmp(&got, &single[j][k], sizeof got) != 0;
                            CHECK_MSG(!bad, "%s %s n=%lld wmode=%d tile %dx%d [a=%d,w=%d] %.9g != vec_dot %.9g",
                                      name, ln, (long long)n, wmode, nw, na, j, k, got, single[j][k]);
                        } else {
                            uint32_t u;
                            memcpy(&u, &got, 4);
                            bad = u != 0x7f7f7f7fu;
                            CHECK_MSG(!bad, "%s %s tile %dx%d wrote outside its outputs [a=%d,w=%d]", name, ln,
                                      nw, na, j, k);
                        }
                    }
            }
    }
    free(w); free(a); free(x);
}

static void check_act_roundtrip(uint32_t act_type, rk_simd_level max_level, tq_rng *r) {
    const rk_quant_ops *ops = rk_quant_get_ops(act_type, RK_SIMD_SCALAR);
    const int64_t n = 512;
    const int bs = rk_type_get_info(act_type)->block_size;
    const size_t rb = rk_type_row_bytes(act_type, n);
    float x[512], y[512], z[512];
    uint8_t *q = malloc(rb), *q2 = malloc(rb);
    fill_acts(r, x, n, 2);
    for (int lvl = RK_SIMD_SCALAR; lvl <= (int)max_level; lvl++) {
        const rk_quant_ops *o = rk_quant_get_ops(act_type, (rk_simd_level)lvl);
        o->quantize_act(x, q, n);
        o->dequant_row(q, y, n);
        o->quantize_act(y, q2, n);
        o->dequant_row(q2, z, n);
        for (int64_t b = 0; b < n / bs; b++) {
            float amax = 0;
            for (int j = 0; j < bs; j++) amax = fmaxf(amax, fabsf(x[b * bs + j]));
            const float d = amax / 127.0f;
            for (int j = 0; j < bs; j++) {
                const int64_t i = b * bs + j;
                CHECK_MSG(fabsf(x[i] - y[i]) <= 0.6f * d + 1e-7f, "%s %s roundtrip x=%g y=%g d=%g",
                          ops ? rk_type_get_info(act_type)->name : "?", rk_simd_level_name((rk_simd_level)lvl), x[i], y[i], d);
                CHECK_MSG(fabsf(y[i] - z[i]) <= 0.02f * d + 1e-7f, "requantise drift %g -> %g", y[i], z[i]);
            }
        }
    }
    if (act_type == RK_TYPE_Q8_1) { /* s == fp16(d * sum(q)) */
        const rk_quant_ops *o = rk_quant_get_ops(act_type, RK_SIMD_SCALAR);
        o->quantize_act(x, q, n);
        for (int64_t b = 0; b < n / 32; b++) {
            uint16_t d, s;
            memcpy(&d, q + b * 36, 2);
            memcpy(&s, q + b * 36 + 2, 2);
            int sum = 0;
            for (int j = 0; j < 32; j++) sum += (int8_t)q[b * 36 + 4 + j];
            const float want = (float)sum * rk_fp16_to_fp32(d);
            CHECK_MSG(fabsf(rk_fp16_to_fp32(s) - want) <= 2e-3f * fabsf(want) + 1e-6f, "q8_1 s %g vs %g",
                      rk_fp16_to_fp32(s), want);
        }
    }
    if (act_type == RK_TYPE_Q8_K) { /* bsums are the sums of 16 quants */
        ops->quantize_act(x, q, n);
        for (int64_t b = 0; b < n / 256; b++)
            for (int g = 0; g < 16; g++) {
                int sum = 0;
                for (int j = 0; j < 16; j++) sum += (int8_t)q[b * 292 + 4 + g * 16 + j];
                int16_t bs16;
                memcpy(&bs16, q + b * 292 + 260 + 2 * g, 2);
                CHECK(bs16 == sum);
            }
    }
    free(q); free(q2);
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("f16c"))) static void check_fp16_hw(tq_rng *r) {
    for (uint32_t h = 0; h < 65536; h++) {
        const float a = rk_fp16_to_fp32((uint16_t)h), b = _cvtsh_ss((unsigned short)h);
        CHECK_MSG(memcmp(&a, &b, 4) == 0 || (isnan(a) && isnan(b)), "fp16 %04x", h);
    }
    for (int i = 0; i < 200000; i++) {
        uint32_t u = tq_next(r) | (uint32_t)tq_next(r) << 16;
        float f;
        memcpy(&f, &u, 4);
        if (isnan(f)) continue;
        const uint16_t a = rk_fp32_to_fp16(f), b = _cvtss_sh(f, 0);
        CHECK_MSG(a == b, "fp32->fp16 %08x: %04x vs %04x", u, a, b);
    }
}
#endif

static void check_conversions(tq_rng *r) {
    CHECK(rk_fp16_to_fp32(0x3c00) == 1.0f);
    CHECK(rk_fp16_to_fp32(0xc000) == -2.0f);
    CHECK(rk_fp16_to_fp32(0x0001) == 5.9604644775390625e-8f);
    CHECK(rk_fp32_to_fp16(65504.0f) == 0x7bff);
    CHECK(rk_fp32_to_fp16(1e6f) == 0x7c00);
    CHECK(rk_bf16_to_fp32(0x3f80) == 1.0f);
    CHECK(rk_fp32_to_bf16(1.0f) == 0x3f80);
    CHECK(rk_fp32_to_bf16(1.00390625f) == 0x3f80);  /* tie -> even */
    CHECK(rk_fp32_to_bf16(1.01171875f) == 0x3f82);  /* tie -> even (up) */
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = rk_fp16_to_fp32((uint16_t)h);
        if (!isnan(f)) CHECK_MSG(rk_fp32_to_fp16(f) == h, "fp16 roundtrip %04x", h);
    }
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("f16c")) check_fp16_hw(r);
#else
    (void)r;
#endif
}

int main(void) {
    tq_rng r = {0x9E3779B97F4A7C15ull};
    const rk_simd_level max_level = rk_cpu_simd_level();
    printf("cpu simd level: %s\n", rk_simd_level_name(max_level));
    if (max_level < RK_SIMD_AVX512) printf("AVX-512 not available: only lower levels tested\n");
    CHECK(rk_quant_get_ops(4, RK_SIMD_SCALAR) == NULL); /* removed Q4_2 */
    CHECK(rk_quant_get_ops(1000, max_level) == NULL);
    check_conversions(&r);
    for (size_t t = 0; t < sizeof weight_types / sizeof *weight_types; t++) {
        const uint32_t type = weight_types[t];
        const int bs = rk_type_get_info(type)->block_size;
        const int64_t base = bs == 256 ? 256 : 32;
        const int64_t lens[] = {base, base * 2, base * 3, base * 5, base * 11, 2048 + (bs == 256 ? 256 : 96)};
        for (size_t li = 0; li < sizeof lens / sizeof *lens; li++)
            for (int wmode = 0; wmode < 5; wmode++)
                check_type(type, lens[li], wmode, li == 1 ? 1 : (li == 2 ? 2 : 0), max_level, &r);
    }
    for (size_t t = 0; t < sizeof weight_types / sizeof *weight_types; t++) {
        const uint32_t type = weight_types[t];
        const int64_t base = rk_type_get_info(type)->block_size == 256 ? 256 : 32;
        /* odd and even block counts (the AVX-512 dots take blocks in pairs), short and long */
        const int64_t lens[] = {base, base * 2, base * 3, base * 9, base == 256 ? 4096 : 2048 + 96};
        for (size_t li = 0; li < sizeof lens / sizeof *lens; li++)
            for (int wmode = 0; wmode < 4; wmode += 3) check_tile_exact(type, lens[li], wmode, max_level, &r);
    }
    check_act_roundtrip(RK_TYPE_Q8_0, max_level, &r);
    check_act_roundtrip(RK_TYPE_Q8_1, max_level, &r);
    check_act_roundtrip(RK_TYPE_Q8_K, max_level, &r);
    return rk_test_finish("test-quant-parity");
}
