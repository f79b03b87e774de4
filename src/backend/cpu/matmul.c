/*
 * matmul.c — y = W·x for a quantised weight matrix on the thread pool.
 *
 * Two phases: (1) each activation row is quantised into the weight format's activation type,
 * rows split across threads; (2) output rows are split across threads in contiguous ranges so
 * each thread streams its own slice of W from memory once. With several activation rows
 * (prompt processing) a thread walks its weight rows in blocks that stay in cache and computes
 * small register tiles (weight rows × activation rows) with the format's vec_dot_tile kernel,
 * so each weight byte is read from memory once per block instead of once per token.
 * rk_matmul_batch runs several products (a mixture of experts' routed experts) in the same two
 * phases, so k experts cost two pool dispatches instead of 2k. Products over the same weight
 * matrix (the rows of several sequences, for batched serving) share its tiles: each block of
 * weight rows is used by every one of them while it is in cache, and each product's outputs
 * are computed exactly as if it ran alone (its own activation tiles, from its row 0).
 */
#include "backend/cpu/cpu-ops.h"

#include <stdbool.h>
#include <string.h>

#define ROW_BLOCK 64   /* weight rows per cache block */
#define TILE_W 4       /* weight rows per register tile */
#define TILE_A 4       /* activation rows per register tile */

/* One product of a batch: matrix w over the task's activation rows. */
typedef struct product {
    const rk_matmul_task *task;
    const rk_matrix *w;
    float *y;
    const uint8_t *act;       /* the task's quantised rows */
    size_t act_row_bytes;
    int64_t first_unit;       /* position of its first tile in the batch's tile sequence */
    int next;                 /* the next product over the same weights, or -1 */
    bool follows;             /* another product over the same weights leads: no tiles of its own */
} product;

#define MAX_PRODUCTS_INLINE 16

typedef struct batch_job {
    const rk_matmul_task *tasks;
    int n_tasks;
    product *products;        /* n_products, in task order */
    int n_products;
    int64_t n_units;          /* tiles of TILE_W output rows over all products */
    uint8_t *act;             /* quantised rows of every task, task after task */
    int64_t total_rows;
} batch_job;

static size_t act_row_bytes(const rk_matmul_task *t) {
    return rk_type_row_bytes(t->w[0]->ops->act_type, t->w[0]->n_in);
}

int rk_matmul_split_pair(const rk_matmul_task *pair, rk_matmul_task out[2]) {
    out[0] = *pair;
    if (!pair->w[1] || pair->w[0]->ops->act_type == pair->w[1]->ops->act_type) return 1;
    out[1] = *pair;
    out[0].w[1] = NULL, out[0].y[1] = NULL;
    out[1].w[0] = pair->w[1], out[1].y[0] = pair->y[1];
    out[1].w[1] = NULL, out[1].y[1] = NULL;
    return 2;
}

size_t rk_matmul_batch_scratch_bytes(const rk_matmul_task *tasks, int n_tasks) {
    size_t bytes = 0;
    for (int t = 0; t < n_tasks; t++) bytes += act_row_bytes(&tasks[t]) * (size_t)tasks[t].n_rows;
    return bytes;
}

size_t rk_matmul_scratch_bytes(const rk_matrix *w, int64_t n_rows) {
    return rk_type_row_bytes(w->ops->act_type, w->n_in) * (size_t)n_rows;
}

/* Phase 1: every task's activation rows, quantised; rows split across threads. */
static void quantize_rows(void *arg, int ith, int nth) {
    batch_job *job = arg;
    int64_t begin, end, row0 = 0;
    rk_pool_split(job->total_rows, ith, nth, &begin, &end);
    uint8_t *act = job->act;
    for (int t = 0; t < job->n_tasks && row0 < end; t++) {
        const rk_matmul_task *task = &job->tasks[t];
        const size_t rb = act_row_bytes(task);
        for (int64_t r = 0; r < task->n_rows; r++) {
            int64_t g = row0 + r;
            if (g < begin || g >= end) continue;
            int64_t src = task->rows ? task->rows[r] : r;
            task->w[0]->ops->quantize_act(task->x + src * task->x_stride, act + r * rb, task->w[0]->n_in);
        }
        act += rb * (size_t)task->n_rows;
        row0 += task->n_rows;
    }
}

/* Output rows [o_begin, o_end) of one product (o_begin a multiple of TILE_W). */
static void dot_range(const product *p, int64_t o_begin, int64_t o_end) {
    const rk_matrix *w = p->w;
    const uint8_t *wdata = w->data;
    const int64_t n_rows = p->task->n_rows, y_stride = p->task->y_stride;
    if (n_rows == 1) {
        for (int64_t o = o_begin; o < o_end; o++) p->y[o] = w->ops->vec_dot(w->n_in, wdata + o * w->row_bytes, p->act);
        return;
    }
    for (int64_t o0 = o_begin; o0 < o_end; o0 += ROW_BLOCK) {
        int64_t o1 = o0 + ROW_BLOCK < o_end ? o0 + ROW_BLOCK : o_end;
        for (int64_t a0 = 0; a0 < n_rows; a0 += TILE_A) {
            int na = (int)(n_rows - a0 < TILE_A ? n_rows - a0 : TILE_A);
            for (int64_t o = o0; o < o1; o += TILE_W) {
                int nw = (int)(o1 - o < TILE_W ? o1 - o : TILE_W);
                w->ops->vec_dot_tile(w->n_in, wdata + o * w->row_bytes, w->row_bytes, nw,
                                     p->act + a0 * p->act_row_bytes, p->act_row_bytes, na,
                                     p->y + a0 * y_stride + o, (size_t)y_stride);
            }
        }
    }
}

/* Phase 2: the tiles of all products split across threads in whole tiles, so tile boundaries,
 * and so the rounding of every output, depend neither on the thread count nor on the batch.
 * Each thread streams its own contiguous slice of the weights. */
static void dot_rows(void *arg, int ith, int nth) {
    batch_job *job = arg;
    int64_t begin, end;
    rk_pool_split(job->n_units, ith, nth, &begin, &end);
    for (int i = 0; i < job->n_products; i++) {
        const product *p = &job->products[i];
        if (p->follows) continue;
        const int64_t tiles = (p->w->n_out + TILE_W - 1) / TILE_W;
        int64_t u0 = begin > p->first_unit ? begin : p->first_unit;
        int64_t u1 = end < p->first_unit + tiles ? end : p->first_unit + tiles;
        if (u0 >= u1) continue;
        int64_t o0 = (u0 - p->first_unit) * TILE_W, o1 = (u1 - p->first_unit) * TILE_W;
        if (o1 > p->w->n_out) o1 = p->w->n_out;
        if (p->next < 0) {
            dot_range(p, o0, o1);
            continue;
        }
        /* products over the same weights (several sequences' rows): a block of weight rows
         * serves each of them while it is in cache */
        for (int64_t c0 = o0; c0 < o1; c0 += ROW_BLOCK) {
            int64_t c1 = c0 + ROW_BLOCK < o1 ? c0 + ROW_BLOCK : o1;
            for (int k = i; k >= 0; k = job->products[k].next) dot_range(&job->products[k], c0, c1);
        }
    }
}

#define INLINE_QUANT_ROWS 8 /* decode's few rows are quantised by the caller, without a dispatch */

static void run_batch(rk_pool *pool, batch_job *job) {
    if (job->total_rows <= INLINE_QUANT_ROWS)
        quantize_rows(job, 0, 1);
    else
        rk_pool_run(pool, quantize_rows, job);
    rk_pool_run(pool, dot_rows, job);
}

/* The product before `idx` in this batch that leads a chain over the same weight matrix, or -1. */
static int same_weights_leader(const batch_job *job, int idx) {
    const rk_matrix *w = job->products[idx].w;
    for (int k = 0; k < idx; k++) {
        const rk_matrix *v = job->products[k].w;
        if (!job->products[k].follows && v->data == w->data && v->n_out == w->n_out && v->n_in == w->n_in &&
            v->ops == w->ops)
            return k;
    }
    return -1;
}

void rk_matmul_batch(rk_pool *pool, const rk_matmul_task *tasks, int n_tasks, void *scratch) {
    product inline_products[MAX_PRODUCTS_INLINE];
    batch_job job = {tasks, n_tasks, inline_products, 0, 0, scratch, 0};
    /* products beyond the inline ones run as further batches (a layer rarely routes a chunk to
     * more than 8 experts' gate and up) */
    int first_task = 0;
    const uint8_t *act = scratch;
    for (int t = 0; t <= n_tasks; t++) {
        const int n_w = t < n_tasks ? (tasks[t].w[1] ? 2 : 1) : 0;
        if (t == n_tasks || job.n_products + n_w > MAX_PRODUCTS_INLINE) {
            job.tasks = tasks + first_task;
            job.n_tasks = t - first_task;
            if (job.n_tasks > 0) run_batch(pool, &job);
            if (t == n_tasks) break;
            job.n_products = 0;
            job.n_units = 0;
            job.total_rows = 0;
            job.act = (uint8_t *)act;
            first_task = t;
        }
        const rk_matmul_task *task = &tasks[t];
        const size_t rb = act_row_bytes(task);
        for (int j = 0; j < n_w; j++) {
            const int idx = job.n_products++;
            product *p = &job.products[idx];
            *p = (product){task, task->w[j], task->y[j], act, rb, job.n_units, -1, false};
            int lead = same_weights_leader(&job, idx);
            if (lead >= 0) { /* join its chain: its tiles cover ours */
                int k = lead;
                while (job.products[k].next >= 0) k = job.products[k].next;
                job.products[k].next = idx;
                p->follows = true;
            } else {
                job.n_units += (task->w[j]->n_out + TILE_W - 1) / TILE_W;
            }
        }
        job.total_rows += task->n_rows;
        act += rb * (size_t)task->n_rows;
    }
}

void rk_matmul(rk_pool *pool, const rk_matrix *w, const float *x, int64_t x_stride,
               int64_t n_rows, float *y, int64_t y_stride, void *scratch) {
    rk_matmul_task task = {{w, NULL}, {y, NULL}, y_stride, x, x_stride, NULL, n_rows};
    rk_matmul_batch(pool, &task, 1, scratch);
}
