/*
 * test-backend.c — CPU backend pieces: the thread pool (every index of every job runs exactly
 * once, many back-to-back jobs, splits cover [0, n) without gaps), the AVX2 activations
 * against the scalar ones over a wide input range, RoPE pairing, RMSNorm, and rk_matmul
 * (single row and batched) against dequantise-then-dot in double precision.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu-ops.h"
#include "core/threadpool.h"
#include "test-util.h"

typedef struct count_job {
    atomic_int hits[1000];
} count_job;

static void count_fn(void *arg, int ith, int nth) {
    count_job *job = arg;
    int64_t b, e;
    rk_pool_split(1000, ith, nth, &b, &e);
    for (int64_t i = b; i < e; i++) atomic_fetch_add(&job->hits[i], 1);
}

static void test_pool(void) {
    for (int threads = 1; threads <= 4; threads++) {
        rk_pool *pool;
        rk_error err;
        CHECK(rk_pool_create(threads, &pool, &err) == RK_OK);
        count_job *job = calloc(1, sizeof *job);
        for (int rep = 0; rep < 500; rep++) rk_pool_run(pool, count_fn, job);
        for (int i = 0; i < 1000; i++) CHECK_MSG(atomic_load(&job->hits[i]) == 500, "threads %d index %d: %d", threads, i, atomic_load(&job->hits[i]));
        free(job);
        rk_pool_free(pool);
    }
    rk_pool *pool;
    rk_error err;
    CHECK(rk_pool_create(0, &pool, &err) == RK_ERR_INVALID_ARG);
    for (int nth = 1; nth < 7; nth++) {
        int64_t next = 0;
        for (int ith = 0; ith < nth; ith++) {
            int64_t b, e;
            rk_pool_split(13, ith, nth, &b, &e);
            CHECK(b == next && e >= b);
            next = e;
        }
        CHECK(next == 13);
    }
}

static void test_activations(void) {
    if (rk_cpu_simd_level() < RK_SIMD_AVX2) return;
    enum { N = 4003 };
    static float g0[N], g1[N], g2[N], up[N];
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < N; i++) {
            g0[i] = g1[i] = g2[i] = -100.0f + 200.0f * i / (N - 1) + (i % 7) * 1e-3f;
            up[i] = 0.5f + (i % 11) * 0.1f;
        }
        if (k == 0) {
            rk_swiglu(g1, up, N);
            rk_swiglu_avx2(g2, up, N);
        } else {
            rk_geglu(g1, up, N);
            rk_geglu_avx2(g2, up, N);
        }
        /* against float64: the scalar tanh form cancels for very negative inputs, so judge
         * both by the exact value; error relative to |g * up| (the scale of the terms) */
        double worst = 0, worst_scalar = 0;
        for (int i = 0; i < N; i++) {
            double g = g0[i], u = up[i];
            double ref = k == 0 ? g / (1 + exp(-g)) * u
                                : 0.5 * g * (1 + tanh(0.7978845608028654 * (g + 0.044715 * g * g * g))) * u;
            double scale = fabs(g * u) + 1e-6;
            worst = fmax(worst, fabs(g2[i] - ref) / scale);
            worst_scalar = fmax(worst_scalar, fabs(g1[i] - ref) / scale);
            CHECK(isfinite(g2[i]));
        }
        fprintf(stderr, "%s: worst error avx2 %.3g, scalar %.3g (relative to |g*up|)\n",
                k ? "geglu" : "swiglu", worst, worst_scalar);
        CHECK_MSG(worst < 2e-6, "%s: worst relative error %g", k ? "geglu" : "swiglu", worst);
    }
}

static void test_rope_and_norm(void) {
    float cs[4], x[4] = {1, 2, 3, 4}, y[4] = {1, 2, 3, 4};
    rk_rope_cos_sin(cs, 3, 4, 10000.0f, 1.0f);
    rk_rope_apply(x, 4, cs, 0); /* pairs (0,1) and (2,3) */
    rk_rope_apply(y, 4, cs, 1); /* pairs (0,2) and (1,3) */
    double t0 = 3.0, t1 = 3.0 * pow(10000.0, -0.5);
    CHECK(fabs(x[0] - (1 * cos(t0) - 2 * sin(t0))) < 1e-5 && fabs(x[3] - (3 * sin(t1) + 4 * cos(t1))) < 1e-5);
    CHECK(fabs(y[0] - (1 * cos(t0) - 3 * sin(t0))) < 1e-5 && fabs(y[3] - (2 * sin(t1) + 4 * cos(t1))) < 1e-5);
    float v[3] = {3, 0, 4}, w[3] = {1, 2, 3}, o[3];
    rk_rmsnorm(o, v, w, 3, 0.0f);
    double rms = sqrt(25.0 / 3);
    CHECK(fabs(o[0] - 3 / rms) < 1e-6 && fabs(o[2] - 4 * 3 / rms) < 1e-5);
}

static void test_matmul(void) {
    const uint32_t types[] = {RK_TYPE_F32, RK_TYPE_Q8_0, RK_TYPE_Q4_0, RK_TYPE_Q5_0};
    const int64_t n_in = 256, n_out = 37, rows = 7;
    rk_pool *pool;
    rk_error err;
    CHECK(rk_pool_create(2, &pool, &err) == RK_OK);
    float *x = malloc(sizeof(float) * n_in * rows), *y = malloc(sizeof(float) * n_out * rows);
    float *wf = malloc(sizeof(float) * n_in * n_out), *row = malloc(sizeof(float) * n_in);
    for (int64_t i = 0; i < n_in * rows; i++) x[i] = (float)sin(i * 0.37);
    for (int64_t i = 0; i < n_in * n_out; i++) wf[i] = (float)cos(i * 0.11) * 0.5f;
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const rk_quant_ops *ops = rk_quant_get_ops(types[t], rk_cpu_simd_level());
        const rk_quant_ops *ref_ops = rk_quant_get_ops(types[t], RK_SIMD_SCALAR);
        const rk_quant_ops *act_ops = rk_quant_get_ops(types[t] == RK_TYPE_F32 ? RK_TYPE_F32 : RK_TYPE_Q8_0, RK_SIMD_SCALAR);
        size_t rb = rk_type_row_bytes(types[t], n_in);
        uint8_t *wq = malloc(rb * n_out);
        /* weights: quantise each row through the Q8_0 activation quantiser when the type is
         * Q8_0, else build them from the float pattern via the type's own round trip */
        for (int64_t o = 0; o < n_out; o++) {
            if (types[t] == RK_TYPE_F32) memcpy(wq + o * rb, wf + o * n_in, rb);
            else if (types[t] == RK_TYPE_Q8_0) act_ops->quantize_act(wf + o * n_in, wq + o * rb, n_in);
            else for (size_t b = 0; b < rb; b++) wq[o * rb + b] = (uint8_t)(b * 37 + o * 11); /* any bits are valid blocks except fp16 scale NaN */
            if (types[t] == RK_TYPE_Q4_0 || types[t] == RK_TYPE_Q5_0) {
                size_t bb = types[t] == RK_TYPE_Q4_0 ? 18 : 22;
                for (size_t b = 0; b < rb; b += bb) { wq[o * rb + b] = 0x00; wq[o * rb + b + 1] = 0x2c; } /* scale 0.0625 */
            }
        }
        rk_matrix m = {wq, types[t], n_in, n_out, rb, ops};
        void *scratch = aligned_alloc(64, (rk_matmul_scratch_bytes(&m, rows) + 63) / 64 * 64);
        for (int64_t r = 1; r <= rows; r += rows - 1) {
            rk_matmul(pool, &m, x, n_in, r, y, n_out, scratch);
            for (int64_t a = 0; a < r; a++)
                for (int64_t o = 0; o < n_out; o++) {
                    ref_ops->dequant_row(wq + o * rb, row, n_in);
                    double ref = 0, mag = 0;
                    for (int64_t i = 0; i < n_in; i++) {
                        ref += (double)row[i] * x[a * n_in + i];
                        mag += fabs((double)row[i] * x[a * n_in + i]);
                    }
                    /* activations are quantised to 8 bits for the block formats */
                    double tol = types[t] == RK_TYPE_F32 ? 1e-5 * mag : 1.5e-2 * mag + 1e-6;
                    CHECK_MSG(fabs(y[a * n_out + o] - ref) <= tol, "type %u rows %lld: y[%lld][%lld] = %g, want %g",
                              types[t], (long long)r, (long long)a, (long long)o, y[a * n_out + o], ref);
                }
        }
        free(scratch);
        free(wq);
    }
    free(x); free(y); free(wf); free(row);
    rk_pool_free(pool);
}

/* rk_matmul_batch with several tasks over the same matrices (the rows of several sequences)
 * gives every task exactly, bit for bit, what rk_matmul gives it alone, with 1 and 2 threads,
 * and in any company: batch-invariant results. */
static void test_matmul_shared(void) {
    enum { N_IN = 512, N_OUT = 301, N_TASKS = 5, MAX_ROWS = 7 };
    const int64_t task_rows[N_TASKS] = {1, 3, 4, 7, 1};
    const uint32_t types[] = {RK_TYPE_F32, RK_TYPE_Q8_0};
    rk_test_rng rng = {0xbadc0ffee};
    float *x = malloc(sizeof(float) * N_IN * MAX_ROWS * N_TASKS), *wf = malloc(sizeof(float) * N_IN * N_OUT);
    float *solo = malloc(sizeof(float) * N_OUT * MAX_ROWS), *y = malloc(sizeof(float) * N_OUT * MAX_ROWS * N_TASKS * 2);
    for (int64_t i = 0; i < N_IN * MAX_ROWS * N_TASKS; i++) x[i] = (float)(2.0 * rk_test_rng_unif(&rng) - 1.0);
    for (int64_t i = 0; i < N_IN * N_OUT; i++) wf[i] = (float)(rk_test_rng_unif(&rng) - 0.5);
    for (int threads = 1; threads <= 2; threads++)
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
            rk_pool *pool;
            rk_error err;
            CHECK(rk_pool_create(threads, &pool, &err) == RK_OK);
            const rk_quant_ops *ops = rk_quant_get_ops(types[t], rk_cpu_simd_level());
            const size_t rb = rk_type_row_bytes(types[t], N_IN);
            uint8_t *wq = malloc(rb * N_OUT * 2); /* two matrices: "gate" and "up" */
            for (int64_t o = 0; o < 2 * N_OUT; o++) {
                const float *src = wf + (o % N_OUT) * N_IN;
                if (types[t] == RK_TYPE_F32) {
                    for (int64_t i = 0; i < N_IN; i++) ((float *)(wq + o * rb))[i] = src[i] * (o < N_OUT ? 1.0f : -0.5f);
                } else {
                    rk_quant_get_ops(RK_TYPE_Q8_0, RK_SIMD_SCALAR)->quantize_act(src, wq + o * rb, N_IN);
                    if (o >= N_OUT) wq[o * rb + 2] ^= 0x11; /* the second matrix differs */
                }
            }
            rk_matrix m[2] = {{wq, types[t], N_IN, N_OUT, rb, ops}, {wq + rb * N_OUT, types[t], N_IN, N_OUT, rb, ops}};
            rk_matmul_task tasks[N_TASKS];
            for (int k = 0; k < N_TASKS; k++)
                tasks[k] = (rk_matmul_task){{&m[0], &m[1]},
                                            {y + (size_t)(2 * k) * N_OUT * MAX_ROWS, y + (size_t)(2 * k + 1) * N_OUT * MAX_ROWS},
                                            N_OUT, x + (size_t)k * N_IN * MAX_ROWS, N_IN, NULL, task_rows[k]};
            void *scratch = aligned_alloc(64, (rk_matmul_batch_scratch_bytes(tasks, N_TASKS) + 63) / 64 * 64);
            for (int first = 0; first < 2; first++) { /* all five, then the last four: other company */
                rk_matmul_batch(pool, tasks + first, N_TASKS - first, scratch);
                for (int k = first; k < N_TASKS; k++)
                    for (int j = 0; j < 2; j++) {
                        rk_matmul(pool, &m[j], tasks[k].x, N_IN, task_rows[k], solo, N_OUT, scratch);
                        CHECK_MSG(memcmp(solo, tasks[k].y[j], sizeof(float) * (size_t)(N_OUT * task_rows[k])) == 0,
                                  "type %u threads %d task %d matrix %d: batched differs from solo", types[t], threads, k, j);
                    }
            }
            free(scratch);
            free(wq);
            rk_pool_free(pool);
        }
    free(x); free(wf); free(solo); free(y);
}

/* A pair whose matrices want different activation types (F32 and Q8_0) is split in two tasks
 * by rk_matmul_split_pair; a matching pair stays one. Both give each matrix its solo result. */
static void test_matmul_split_pair(void) {
    enum { N_IN = 64, N_OUT = 9, ROWS = 3 };
    rk_pool *pool;
    rk_error err;
    CHECK(rk_pool_create(2, &pool, &err) == RK_OK);
    float x[N_IN * ROWS], wf[N_IN * N_OUT], y[2][N_OUT * ROWS], solo[N_OUT * ROWS];
    for (int i = 0; i < N_IN * ROWS; i++) x[i] = (float)sin(i * 0.3);
    for (int i = 0; i < N_IN * N_OUT; i++) wf[i] = (float)cos(i * 0.7);
    const rk_simd_level lvl = rk_cpu_simd_level();
    const size_t rb8 = rk_type_row_bytes(RK_TYPE_Q8_0, N_IN);
    uint8_t *w8 = malloc(rb8 * N_OUT);
    for (int o = 0; o < N_OUT; o++) rk_quant_get_ops(RK_TYPE_Q8_0, RK_SIMD_SCALAR)->quantize_act(wf + o * N_IN, w8 + o * rb8, N_IN);
    rk_matrix f32 = {wf, RK_TYPE_F32, N_IN, N_OUT, N_IN * sizeof(float), rk_quant_get_ops(RK_TYPE_F32, lvl)};
    rk_matrix q8 = {w8, RK_TYPE_Q8_0, N_IN, N_OUT, rb8, rk_quant_get_ops(RK_TYPE_Q8_0, lvl)};
    void *scratch = aligned_alloc(64, 64 * 1024);
    const rk_matrix *pairs[2][2] = {{&f32, &q8}, {&q8, &q8}};
    for (int c = 0; c < 2; c++) {
        const rk_matmul_task pair = {{pairs[c][0], pairs[c][1]}, {y[0], y[1]}, N_OUT, x, N_IN, NULL, ROWS};
        rk_matmul_task t[2];
        int n = rk_matmul_split_pair(&pair, t);
        CHECK(n == (c == 0 ? 2 : 1));
        rk_matmul_batch(pool, t, n, scratch);
        for (int j = 0; j < 2; j++) {
            rk_matmul(pool, pairs[c][j], x, N_IN, ROWS, solo, N_OUT, scratch);
            CHECK_MSG(memcmp(solo, y[j], sizeof solo) == 0, "pair %d matrix %d differs from solo", c, j);
        }
    }
    free(scratch);
    free(w8);
    rk_pool_free(pool);
}

int main(void) {
    test_pool();
    test_activations();
    test_rope_and_norm();
    test_matmul();
    test_matmul_shared();
    test_matmul_split_pair();
    return rk_test_finish("test-backend");
}
