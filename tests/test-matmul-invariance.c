/*
 * test-matmul-invariance.c — batch invariance of the quantised matrix product: for a random
 * matrix of every weight format, at every SIMD level this CPU has and with 1 and 2 threads, the
 * product of n activation rows (n = 1, 3, 4, 5, 17, 64: decode, register tiles, their leftover
 * edges, several cache blocks) equals, row by row and bit for bit, the product of each row alone
 * (rk_matmul with one row, which is decode's vec_dot path). The same holds through
 * rk_matmul_batch with several tasks over the matrix, one of them a gather. This is what lets a
 * server reuse a cached prefix and evaluate the rest of a prompt in chunks and still produce
 * exactly the logits of a fresh evaluation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu-ops.h"
#include "core/threadpool.h"
#include "test-quant-common.h"
#include "test-util.h"

enum { N_IN = 512, N_OUT = 150, MAX_ROWS = 64 }; /* N_OUT: 3 cache blocks of 64, a 2-row edge */

static const uint32_t types[] = {RK_TYPE_F32,  RK_TYPE_F16,  RK_TYPE_BF16, RK_TYPE_Q4_0,
                                 RK_TYPE_Q4_1, RK_TYPE_Q5_0, RK_TYPE_Q5_1, RK_TYPE_Q8_0,
                                 RK_TYPE_Q2_K, RK_TYPE_Q3_K, RK_TYPE_Q4_K, RK_TYPE_Q5_K,
                                 RK_TYPE_Q6_K};

/* Row r of y (n_rows x N_OUT) against solo (MAX_ROWS x N_OUT, row k = x row k alone), where y's
 * row r is x row src[r]. Reports the first differing output only. */
static void compare_rows(const float *y, const float *solo, const int32_t *src, int64_t n_rows,
                         const char *what, const char *type, const char *level, int threads) {
    for (int64_t r = 0; r < n_rows; r++) {
        const float *want = solo + (size_t)src[r] * N_OUT, *got = y + (size_t)r * N_OUT;
        if (memcmp(want, got, sizeof(float) * N_OUT) == 0) continue;
        int64_t o = 0;
        while (memcmp(want + o, got + o, sizeof(float)) == 0)
            o++;
        CHECK_MSG(0, "%s %s threads %d %s: row %lld (x row %d) output %lld is %.9g, alone %.9g",
                  type, level, threads, what, (long long)r, src[r], (long long)o, got[o], want[o]);
        return;
    }
}

static void check_type(rk_pool *pool, int threads, uint32_t type, rk_simd_level level,
                       const float *x, tq_rng *rng) {
    const rk_quant_ops *ops = rk_quant_get_ops(type, level);
    CHECK(ops != NULL);
    if (!ops) return;
    const char *name = rk_type_get_info(type)->name, *ln = rk_simd_level_name(level);
    const size_t rb = rk_type_row_bytes(type, N_IN);
    uint8_t *wq = malloc(rb * N_OUT);
    tq_fill_weights(rng, type, wq, (int64_t)N_IN * N_OUT, 0);
    const rk_matrix m = {wq, type, N_IN, N_OUT, rb, ops};
    float *solo = malloc(sizeof(float) * MAX_ROWS * N_OUT),
          *y = malloc(sizeof(float) * MAX_ROWS * N_OUT * 3);
    void *scratch = aligned_alloc(64, (rk_matmul_scratch_bytes(&m, MAX_ROWS * 3) + 63) / 64 * 64);
    int32_t ident[MAX_ROWS];
    for (int k = 0; k < MAX_ROWS; k++) {
        ident[k] = k;
        rk_matmul(pool, &m, x + (size_t)k * N_IN, N_IN, 1, solo + (size_t)k * N_OUT, N_OUT,
                  scratch);
    }

    static const int64_t ns[] = {1, 3, 4, 5, 17, 64};
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
        char what[48];
        snprintf(what, sizeof what, "rk_matmul of %lld rows", (long long)ns[i]);
        rk_matmul(pool, &m, x, N_IN, ns[i], y, N_OUT, scratch);
        compare_rows(y, solo, ident, ns[i], what, name, ln, threads);
    }

    /* one batch: 5 rows from row 0, 17 rows from row 5, and a gather of 7 rows in another order */
    const int32_t gather[7] = {63, 2, 40, 40, 17, 9, 31};
    const rk_matmul_task tasks[3] = {
        {{&m, NULL}, {y, NULL}, N_OUT, x, N_IN, NULL, 5},
        {{&m, NULL},
         {y + (size_t)MAX_ROWS * N_OUT, NULL},
         N_OUT,
         x + (size_t)5 * N_IN,
         N_IN,
         NULL,
         17},
        {{&m, NULL}, {y + (size_t)2 * MAX_ROWS * N_OUT, NULL}, N_OUT, x, N_IN, gather, 7},
    };
    rk_matmul_batch(pool, tasks, 3, scratch);
    compare_rows(y, solo, ident, 5, "batch task 0", name, ln, threads);
    compare_rows(y + (size_t)MAX_ROWS * N_OUT, solo, ident + 5, 17, "batch task 1", name, ln,
                 threads);
    compare_rows(y + (size_t)2 * MAX_ROWS * N_OUT, solo, gather, 7, "batch gather", name, ln,
                 threads);

    free(scratch);
    free(solo);
    free(y);
    free(wq);
}

int main(void) {
    tq_rng rng = {0x5DEECE66Dull};
    float *x = malloc(sizeof(float) * MAX_ROWS * N_IN);
    for (int64_t i = 0; i < (int64_t)MAX_ROWS * N_IN; i++) {
        x[i] = tq_unif(&rng);
        if (i % 101 == 7) x[i] *= 30.0f; /* outliers, as activations have */
    }
    const rk_simd_level top = rk_cpu_simd_level();
    for (int threads = 1; threads <= 2; threads++) {
        rk_pool *pool;
        rk_error err;
        CHECK(rk_pool_create(threads, &pool, &err) == RK_OK);
        for (int lvl = RK_SIMD_SCALAR; lvl <= (int)top; lvl++)
            for (size_t t = 0; t < sizeof types / sizeof *types; t++)
                check_type(pool, threads, types[t], (rk_simd_level)lvl, x, &rng);
        rk_pool_free(pool);
    }
    free(x);
    return rk_test_finish("test-matmul-invariance");
}
