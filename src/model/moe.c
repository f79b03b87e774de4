/*
 * moe.c — the mixture-of-experts FFN (see moe.h).
 *
 *   logits = router · h                       (n_expert per token)
 *   p = softmax(logits); top k of p; [w /= sum w]; w *= scale
 *   out = Σ_chosen w_e · down_e(silu(gate_e · h) * (up_e · h))        in expert-index order
 *       [+ sigmoid(shexp_gate · h) · shared_ffn(h)]                    (qwen2moe)
 *
 * The micro-batch is grouped by expert (a counting sort of the (token, expert) pairs). Every
 * routed expert's gate and up products run in one batch over the thread pool (each expert's
 * weights read once for all of its tokens, which are read in place through an index list),
 * then the activation, then every down product in a second batch; the weighted sum follows,
 * per token in expert-index order. Every row's arithmetic is the same whether it shares its
 * expert's block with other tokens or not, up to the matrix kernels' tiling.
 */
#include "model/moe.h"

#include <math.h>
#include <string.h>

void rk_moe_route(const rk_moe_routing *r, const float *logits, int32_t *experts, float *weights) {
    const int64_t n = r->n_expert, k = r->n_used;
    float max = logits[0];
    for (int64_t e = 1; e < n; e++)
        if (logits[e] > max) max = logits[e];
    double sum = 0.0; /* the softmax denominator; only the chosen probabilities are needed */
    for (int64_t e = 0; e < n; e++) sum += expf(logits[e] - max);
    float chosen_sum = 0.0f;
    for (int64_t j = 0; j < k; j++) {
        int32_t best = -1;
        for (int64_t e = 0; e < n; e++) {
            bool taken = false;
            for (int64_t i = 0; i < j && !taken; i++) taken = experts[i] == e;
            if (!taken && (best < 0 || logits[e] > logits[best])) best = (int32_t)e;
        }
        experts[j] = best;
        weights[j] = (float)(expf(logits[best] - max) / sum);
        chosen_sum += weights[j];
    }
    for (int64_t j = 0; j < k; j++) {
        if (r->renormalise && chosen_sum > 0.0f) weights[j] /= chosen_sum;
        weights[j] *= r->scale;
    }
}

/* Routes every token and groups the (token, expert) pairs by expert. Returns the number of
 * experts with at least one token. */
static int64_t route_and_group(rk_context *ctx, const rk_moe_routing *r, int64_t n) {
    const int64_t k = r->n_used, n_expert = r->n_expert;
    int64_t *off = ctx->moe_offsets;
    memset(off, 0, (size_t)(n_expert + 1) * sizeof *off);
    for (int64_t i = 0; i < n; i++) {
        rk_moe_route(r, ctx->moe_logits + i * n_expert, ctx->moe_choice + i * k, ctx->moe_weight + i * k);
        for (int64_t j = 0; j < k; j++) off[ctx->moe_choice[i * k + j] + 1]++;
    }
    int64_t touched = 0;
    for (int64_t e = 0; e < n_expert; e++) {
        touched += off[e + 1] > 0;
        off[e + 1] += off[e];
    }
    /* fill in token order, so each expert's rows are ascending */
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < k; j++) {
            int64_t e = ctx->moe_choice[i * k + j];
            int64_t slot = off[e]++;
            ctx->moe_rows[slot] = (int32_t)i;
            ctx->moe_row_weight[slot] = ctx->moe_weight[i * k + j];
        }
    for (int64_t e = n_expert; e > 0; e--) off[e] = off[e - 1]; /* undo the advance */
    off[0] = 0;
    return touched;
}

/* Rows first .. first+rows-1 of a stacked expert matrix, as a matrix of its own. */
static rk_matrix expert_rows(const rk_matrix *stack, int64_t first, int64_t rows) {
    rk_matrix m = *stack;
    m.data = (const uint8_t *)stack->data + (size_t)first * stack->row_bytes;
    m.n_out = rows;
    return m;
}

typedef struct activation_job {
    const rk_context *ctx;
    float *gate;
    const float *up;
    int64_t rows, width;
} activation_job;

static void activation_rows(void *arg, int ith, int nth) {
    const activation_job *job = arg;
    void (*act)(float *, const float *, int64_t) =
        job->ctx->model->simd >= RK_SIMD_AVX2 ? rk_swiglu_avx2 : rk_swiglu;
    int64_t begin, end;
    rk_pool_split(job->rows, ith, nth, &begin, &end);
    for (int64_t i = begin; i < end; i++) act(job->gate + i * job->width, job->up + i * job->width, job->width);
}

/* gate[i] = silu(gate[i]) * up[i] over rows × width, on the pool when there is enough of it. */
static void swiglu_rows(rk_context *ctx, float *gate, const float *up, int64_t rows, int64_t width) {
    activation_job job = {ctx, gate, up, rows, width};
    if (rows * width < 16384)
        activation_rows(&job, 0, 1);
    else
        rk_pool_run(ctx->pool, activation_rows, &job);
}

/* Adds one gate/up task per routed expert (two when the two projections' activation types
 * differ), reading the expert's tokens straight from ctx->xb. Returns the number of tasks. */
static int gate_up_tasks(rk_context *ctx, const rk_layer *L, rk_matrix *views, rk_matmul_task *tasks) {
    const rk_hparams *hp = &ctx->model->hp;
    const int64_t E = hp->n_embd, F = hp->n_ff_exp;
    int n = 0;
    for (int64_t e = 0; e < hp->routing.n_expert; e++) {
        const int64_t begin = ctx->moe_offsets[e], rows = ctx->moe_offsets[e + 1] - begin;
        if (rows == 0) continue;
        rk_matrix *gate = &views[3 * e], *up = &views[3 * e + 1];
        *gate = expert_rows(&L->exp_gate, e * F, F);
        *up = expert_rows(&L->exp_up, e * F, F);
        const rk_matmul_task pair = {{gate, up}, {ctx->hb + begin * F, ctx->hb2 + begin * F}, F, ctx->xb, E,
                                     ctx->moe_rows + begin, rows};
        n += rk_matmul_split_pair(&pair, tasks + n);
    }
    return n;
}

void rk_moe_ffn(rk_context *ctx, const rk_layer *L, int64_t n) {
    const rk_hparams *hp = &ctx->model->hp;
    const rk_moe_routing *r = &hp->routing;
    const int64_t E = hp->n_embd, F = hp->n_ff_exp, slots = n * r->n_used;
    rk_ctx_matmul(ctx, &L->router, ctx->xb, E, n, ctx->moe_logits, r->n_expert);
    int64_t touched = route_and_group(ctx, r, n);
    ctx->weight_stats.experts_touched += (uint64_t)touched;
    ctx->weight_stats.experts_available += (uint64_t)r->n_expert;
    /* gate and up of every routed expert in one batch, the activation, then every down */
    rk_matmul_task *tasks = ctx->moe_tasks;
    rk_matrix *views = ctx->moe_views;
    int n_tasks = gate_up_tasks(ctx, L, views, tasks);
    rk_ctx_matmul_batch(ctx, tasks, n_tasks);
    swiglu_rows(ctx, ctx->hb, ctx->hb2, slots, F);
    n_tasks = 0;
    for (int64_t e = 0; e < r->n_expert; e++) {
        const int64_t begin = ctx->moe_offsets[e], rows = ctx->moe_offsets[e + 1] - begin;
        if (rows == 0) continue;
        views[3 * e + 2] = expert_rows(&L->exp_down, e * E, E);
        tasks[n_tasks++] = (rk_matmul_task){{&views[3 * e + 2], NULL}, {ctx->moe_y + begin * E, NULL}, E,
                                            ctx->hb + begin * F, F, NULL, rows};
    }
    rk_ctx_matmul_batch(ctx, tasks, n_tasks);
    /* weighted sum per token, experts in index order (rows of expert e are in token order) */
    memset(ctx->moe_out, 0, (size_t)(n * E) * sizeof *ctx->moe_out);
    for (int64_t slot = 0; slot < slots; slot++) {
        float *out = ctx->moe_out + (int64_t)ctx->moe_rows[slot] * E;
        const float *y = ctx->moe_y + slot * E, w = ctx->moe_row_weight[slot];
        for (int64_t d = 0; d < E; d++) out[d] += w * y[d];
    }
    if (L->shexp_gate) { /* qwen2moe: every token also goes through the shared expert */
        const int64_t SF = hp->n_ff_shexp;
        rk_ctx_matmul_pair(ctx, ctx->xb, E, n, &L->sh_gate, ctx->hb, &L->sh_up, ctx->hb2, SF);
        swiglu_rows(ctx, ctx->hb, ctx->hb2, n, SF);
        rk_ctx_matmul(ctx, &L->sh_down, ctx->hb, SF, n, ctx->moe_y, E);
        ctx->weight_stats.bytes_read += (uint64_t)E * sizeof(float);
        for (int64_t i = 0; i < n; i++) {
            const float *h = ctx->xb + i * E, *y = ctx->moe_y + i * E;
            float dot = 0.0f;
            for (int64_t d = 0; d < E; d++) dot += L->shexp_gate[d] * h[d];
            const float g = 1.0f / (1.0f + expf(-dot));
            float *out = ctx->moe_out + i * E;
            for (int64_t d = 0; d < E; d++) out[d] += g * y[d];
        }
    }
    memcpy(ctx->xb, ctx->moe_out, (size_t)(n * E) * sizeof *ctx->xb);
}
