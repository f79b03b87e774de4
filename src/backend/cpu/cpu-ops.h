/*
 * cpu-ops.h — the CPU kernels the model forward pass is made of: quantised matrix products and
 * the small elementwise/row operations around them (RMSNorm, RoPE, activations, softmax).
 *
 * A weight matrix is a view of a GGUF tensor (rk_matrix): n_out rows of n_in elements of one
 * type, row-major. Products run on the engine's thread pool; activations are quantised once per
 * row into the type the weight format's dot product wants (see quant.h).
 */
#ifndef RK_BACKEND_CPU_OPS_H
#define RK_BACKEND_CPU_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "core/threadpool.h"
#include "quant/quant.h"

typedef struct rk_matrix {
    const void *data;         /* (n_out, n_in) in `type`, row-major; borrowed from the mapping */
    uint32_t type;
    int64_t n_in;             /* ne[0] */
    int64_t n_out;            /* ne[1] */
    size_t row_bytes;
    const rk_quant_ops *ops;  /* kernels for `type` at the chosen SIMD level */
} rk_matrix;

/* Several products in one pass over the thread pool (mixture-of-experts layers run the k experts
 * a token routed to, or every expert of a prefill chunk, this way). A task multiplies one set of
 * activation rows by one or two matrices of the same n_in and activation type (an expert's gate
 * and up projections share their input): y_j[r][o] = sum_i w_j[o][i] * x[row r][i], where row r
 * is rows[r] when `rows` is given (a gather) and r otherwise. Every output equals what rk_matmul
 * computes for the same matrix and rows, whatever the batching and thread count. Tasks over the
 * same matrix (several sequences' rows) read its weights once per batch while each still gets
 * exactly its solo result: batch-invariant serving. */
typedef struct rk_matmul_task {
    const rk_matrix *w[2];    /* w[1] may be NULL */
    float *y[2];              /* (n_rows, y_stride) each */
    int64_t y_stride;
    const float *x;           /* (…, x_stride) */
    int64_t x_stride;
    const int32_t *rows;      /* n_rows indices into x, or NULL for rows 0..n_rows-1 */
    int64_t n_rows;
} rk_matmul_task;

/* A task's two matrices must share an activation type. Writes `pair` to out[0] as it is when
 * they do (or it has one matrix) and returns 1; else splits it into one task per matrix and
 * returns 2. */
int rk_matmul_split_pair(const rk_matmul_task *pair, rk_matmul_task out[2]);

/* Scratch rk_matmul_batch needs for these tasks (bytes; allocate 64-byte aligned). */
size_t rk_matmul_batch_scratch_bytes(const rk_matmul_task *tasks, int n_tasks);
void rk_matmul_batch(rk_pool *pool, const rk_matmul_task *tasks, int n_tasks, void *scratch);

/* Scratch a product needs: room for n_rows quantised activation rows of n_in elements. */
size_t rk_matmul_scratch_bytes(const rk_matrix *w, int64_t n_rows);

/* y[r][o] = sum_i w[o][i] * x[r][i] for r < n_rows.
 * x: (n_rows, x_stride) floats, y: (n_rows, y_stride) floats. `scratch` must hold
 * rk_matmul_scratch_bytes(w, n_rows) bytes (64-byte aligned). */
void rk_matmul(rk_pool *pool, const rk_matrix *w, const float *x, int64_t x_stride,
               int64_t n_rows, float *y, int64_t y_stride, void *scratch);

/* out = x / rms(x) * weight (weight may be NULL: no scale). n elements. */
void rk_rmsnorm(float *out, const float *x, const float *weight, int64_t n, float eps);

/* Rotary embedding of one head vector (head_dim elements; the first rot_dim rotate).
 * `neox`: pairs (i, i + rot_dim/2) instead of adjacent (2i, 2i+1).
 * cos_sin: rot_dim/2 pairs (cos, sin) for this position. */
void rk_rope_apply(float *x, int64_t rot_dim, const float *cos_sin, int neox);

/* Fills cos_sin (rot_dim/2 pairs) for position pos with frequencies base^(-2i/rot_dim). */
void rk_rope_cos_sin(float *cos_sin, int64_t pos, int64_t rot_dim, float freq_base,
                     float freq_scale);

/* gate[i] = act(gate[i]) * up[i]; act = SiLU (swiglu) or tanh-approximated GELU (geglu). */
void rk_swiglu(float *gate, const float *up, int64_t n);
void rk_geglu(float *gate, const float *up, int64_t n);
/* The same with AVX2/FMA (a polynomial exp; relative error ~1e-6 against the scalar ones). */
void rk_swiglu_avx2(float *gate, const float *up, int64_t n);
void rk_geglu_avx2(float *gate, const float *up, int64_t n);

#endif
