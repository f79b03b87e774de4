/*
 * matmul.c — y = W·x for a quantised weight matrix on the thread pool.
 *
 * Two phases: (1) each activation row is quantised into the weight format's activation type,
 * rows split across threads; (2) output rows are split across threads in contiguous ranges so
 * each thread streams its own slice of W from memory once. With several activation rows
 * (prompt processing) a thread walks its weight rows in blocks that stay in cache and computes
 * small register tiles (weight rows × activation rows) with the format's vec_dot_tile kernel,
 * so each weight byte is read from memory once per block instead of once per token.
 */
#include "backend/cpu/cpu-ops.h"

#include <string.h>

#define ROW_BLOCK 64   /* weight rows per cache block */
#define TILE_W 4       /* weight rows per register tile */
#define TILE_A 4       /* activation rows per register tile */

typedef struct matmul_job {
    const rk_matrix *w;
    const float *x;
    int64_t x_stride;
    int64_t n_rows;
    float *y;
    int64_t y_stride;
    uint8_t *act;        /* n_rows quantised rows */
    size_t act_row_bytes;
} matmul_job;

size_t rk_matmul_scratch_bytes(const rk_matrix *w, int64_t n_rows) {
    return rk_type_row_bytes(w->ops->act_type, w->n_in) * (size_t)n_rows;
}

static void quantize_rows(void *arg, int ith, int nth) {
    matmul_job *job = arg;
    int64_t begin, end;
    rk_pool_split(job->n_rows, ith, nth, &begin, &end);
    for (int64_t r = begin; r < end; r++)
        job->w->ops->quantize_act(job->x + r * job->x_stride, job->act + r * job->act_row_bytes,
                                  job->w->n_in);
}

static void dot_rows(void *arg, int ith, int nth) {
    matmul_job *job = arg;
    const rk_matrix *w = job->w;
    int64_t begin, end;
    const uint8_t *wdata = w->data;
    if (job->n_rows == 1) {
        rk_pool_split(w->n_out, ith, nth, &begin, &end);
        for (int64_t o = begin; o < end; o++)
            job->y[o] = w->ops->vec_dot(w->n_in, wdata + o * w->row_bytes, job->act);
        return;
    }
    /* split in whole tiles so tile boundaries, and so the rounding of every output, do not
     * depend on the thread count */
    int64_t n_tiles = (w->n_out + TILE_W - 1) / TILE_W;
    rk_pool_split(n_tiles, ith, nth, &begin, &end);
    begin *= TILE_W;
    end = end * TILE_W < w->n_out ? end * TILE_W : w->n_out;
    for (int64_t o0 = begin; o0 < end; o0 += ROW_BLOCK) {
        int64_t o1 = o0 + ROW_BLOCK < end ? o0 + ROW_BLOCK : end;
        for (int64_t a0 = 0; a0 < job->n_rows; a0 += TILE_A) {
            int na = (int)(job->n_rows - a0 < TILE_A ? job->n_rows - a0 : TILE_A);
            for (int64_t o = o0; o < o1; o += TILE_W) {
                int nw = (int)(o1 - o < TILE_W ? o1 - o : TILE_W);
                w->ops->vec_dot_tile(w->n_in, wdata + o * w->row_bytes, w->row_bytes, nw,
                                     job->act + a0 * job->act_row_bytes, job->act_row_bytes, na,
                                     job->y + a0 * job->y_stride + o, (size_t)job->y_stride);
            }
        }
    }
}

void rk_matmul(rk_pool *pool, const rk_matrix *w, const float *x, int64_t x_stride,
               int64_t n_rows, float *y, int64_t y_stride, void *scratch) {
    matmul_job job = {w, x, x_stride, n_rows, y, y_stride, scratch,
                      rk_type_row_bytes(w->ops->act_type, w->n_in)};
    if (n_rows == 1)
        quantize_rows(&job, 0, 1);
    else
        rk_pool_run(pool, quantize_rows, &job);
    rk_pool_run(pool, dot_rows, &job);
}
