/*
 * bench-quant.c — micro-benchmark of the quant kernels: for each weight format and each SIMD
 * level this CPU has, a matrix of ROWS x N weights times one activation row (vec_dot per row,
 * as in decode), reported as GB/s of weight bytes read; and the batched tile (8 activation
 * rows, as in prefill) as GB/s of weight bytes times activation rows ("effective").
 *
 *     bench-quant [N [ROWS [SECONDS [FORMAT,...]]]]   defaults 4096 4096 0.3 all
 *
 * FORMAT names as printed (e.g. Q4_K,Q6_K) limit the run to those formats.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quant/quant.h"
#include "test-quant-common.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    const int64_t n = argc > 1 ? atoll(argv[1]) : 4096;
    const int rows = argc > 2 ? atoi(argv[2]) : 4096;
    const double secs = argc > 3 ? atof(argv[3]) : 0.3;
    const char *only = argc > 4 ? argv[4] : NULL;
    const uint32_t types[] = {RK_TYPE_F32, RK_TYPE_F16, RK_TYPE_BF16, RK_TYPE_Q4_0, RK_TYPE_Q4_1,
                              RK_TYPE_Q5_0, RK_TYPE_Q5_1, RK_TYPE_Q8_0, RK_TYPE_Q2_K, RK_TYPE_Q3_K,
                              RK_TYPE_Q4_K, RK_TYPE_Q5_K, RK_TYPE_Q6_K};
    enum { NA = 8 };
    const rk_simd_level top = rk_cpu_simd_level();
    tq_rng r = {12345};
    float *x = malloc(sizeof(float) * (size_t)n * NA), *out = malloc(sizeof(float) * (size_t)rows * NA);
    for (int64_t i = 0; i < n * NA; i++) x[i] = tq_unif(&r);
    printf("bench-quant: %d x %lld, vec_dot GB/s of weights (tile: x%d act rows, effective GB/s)\n", rows,
           (long long)n, NA);
    printf("%-6s %10s", "format", "MB");
    for (int l = 0; l <= (int)top; l++) printf(" %9s %9s", rk_simd_level_name((rk_simd_level)l), "tile");
    printf("\n");
    volatile float sink = 0;
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        const size_t wrb = rk_type_row_bytes(types[t], n);
        if (!wrb) continue;
        if (only) { /* a comma-separated list of format names */
            const char *name = rk_type_get_info(types[t])->name, *p = strstr(only, name);
            const size_t len = strlen(name);
            if (!p || (p != only && p[-1] != ',') || (p[len] != '\0' && p[len] != ',')) continue;
        }
        uint8_t *w = malloc(wrb * (size_t)rows);
        tq_fill_weights(&r, types[t], w, n * rows, 0);
        printf("%-6s %10.1f", rk_type_get_info(types[t])->name, (double)(wrb * (size_t)rows) / 1e6);
        for (int l = 0; l <= (int)top; l++) {
            const rk_quant_ops *ops = rk_quant_get_ops(types[t], (rk_simd_level)l);
            const size_t arb = rk_type_row_bytes(ops->act_type, n);
            uint8_t *a = malloc(arb * NA);
            for (int k = 0; k < NA; k++) ops->quantize_act(x + k * n, a + k * arb, n);
            int iters = 0;
            double t0 = now(), t1;
            do {
                for (int i = 0; i < rows; i++) out[i] = ops->vec_dot(n, w + (size_t)i * wrb, a);
                sink += out[0];
                iters++;
            } while ((t1 = now()) - t0 < secs);
            const double gbs = (double)iters * (double)(wrb * (size_t)rows) / (t1 - t0) / 1e9;
            iters = 0;
            t0 = now();
            do {
                for (int i = 0; i < rows; i += 16) {
                    const int nw = rows - i < 16 ? rows - i : 16;
                    ops->vec_dot_tile(n, w + (size_t)i * wrb, wrb, nw, a, arb, NA, out + i, (size_t)rows);
                }
                sink += out[0];
                iters++;
            } while ((t1 = now()) - t0 < secs);
            const double tgbs = (double)iters * NA * (double)(wrb * (size_t)rows) / (t1 - t0) / 1e9;
            printf(" %9.2f %9.2f", gbs, tgbs);
            const rk_vec_dot_fn spare = rk_quant_get_spare_dot(types[t], (rk_simd_level)l);
            if (spare) { /* the kernel this level has but does not choose */
                iters = 0;
                t0 = now();
                do {
                    for (int i = 0; i < rows; i++) out[i] = spare(n, w + (size_t)i * wrb, a);
                    sink += out[0];
                    iters++;
                } while ((t1 = now()) - t0 < secs);
                printf("  (own %s kernel: %.2f)", rk_simd_level_name((rk_simd_level)l),
                       (double)iters * (double)(wrb * (size_t)rows) / (t1 - t0) / 1e9);
            }
            fflush(stdout);
            free(a);
        }
        printf("\n");
        free(w);
    }
    free(x);
    free(out);
    return sink == 12345.0f;
}
