/*
 * forward.c — the transformer forward pass shared by every architecture (see model.h for the
 * switches). Evaluates a micro-batch of tokens layer by layer:
 *
 *   x = embed(tokens) * embd_scale
 *   per layer: h = norm(x); q,k,v = h·Wq,Wk,Wv (+bias); [per-head norm of q,k]; RoPE;
 *              append k,v to the paged cache; a = attention(q over cache); o = a·Wo;
 *              [post-norm o]; x += o
 *              h = norm(x); f = act(h·Wgate) * (h·Wup); d = f·Wdown; [post-norm d]; x += d
 *              (a mixture of experts computes d from its routed experts instead: moe.c)
 *   logits = norm(x)·Wout
 *
 * Where the time goes: the matrix products (matmul.c) read every weight once per micro-batch;
 * decode is bound by memory bandwidth. Attention is O(context) per token and parallel over
 * (token, head) pairs. The row ops here are a few percent.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kv/kv-sparse.h"
#include "model/context.h"
#include "model/moe.h"
#include "dist/ring-attn.h"

typedef struct attn_job {
    rk_context *ctx;
    int64_t layer;
    int64_t n;       /* tokens in the micro-batch */
    int64_t pos0;    /* position of token 0 */
    int64_t heads_per_unit; /* query heads of one GQA group handled together */
} attn_job;

/* Runs a batch of products on the shared pool. Each product's weight bytes are added to the
 * traffic of its context: owners[i], or `owner` for all of them when owners is NULL. */
static void shared_matmul(const rk_fwd_shared *sh, const rk_matmul_task *tasks, int n_tasks,
                          rk_context *const *owners, rk_context *owner) {
    if (n_tasks == 0) return;
    if (rk_matmul_batch_scratch_bytes(tasks, n_tasks) > sh->scratch_bytes) { /* a sizing bug */
        fprintf(stderr, "ringkv: internal error: %zu bytes of activation scratch needed, %zu allocated\n",
                rk_matmul_batch_scratch_bytes(tasks, n_tasks), sh->scratch_bytes);
        abort();
    }
    rk_matmul_batch(sh->pool, tasks, n_tasks, sh->scratch);
    for (int i = 0; i < n_tasks; i++)
        for (int j = 0; j < 2 && tasks[i].w[j]; j++)
            (owners ? owners[i] : owner)->weight_stats.bytes_read +=
                (uint64_t)tasks[i].w[j]->n_out * tasks[i].w[j]->row_bytes;
}

void rk_ctx_matmul_batch(rk_context *ctx, const rk_matmul_task *tasks, int n_tasks) {
    const rk_fwd_shared sh = {ctx->pool, ctx->mm_scratch, ctx->mm_scratch_bytes, NULL, NULL, 0, NULL, {NULL, NULL, NULL},
                              NULL};
    shared_matmul(&sh, tasks, n_tasks, NULL, ctx);
}

void rk_ctx_matmul(rk_context *ctx, const rk_matrix *w, const float *x, int64_t x_stride, int64_t n,
                   float *y, int64_t y_stride) {
    rk_matmul_task t = {{w, NULL}, {y, NULL}, y_stride, x, x_stride, NULL, n};
    rk_ctx_matmul_batch(ctx, &t, 1);
}

void rk_ctx_matmul_pair(rk_context *ctx, const float *x, int64_t x_stride, int64_t n, const rk_matrix *w1,
                        float *y1, const rk_matrix *w2, float *y2, int64_t y_stride) {
    const rk_matmul_task pair = {{w1, w2}, {y1, y2}, y_stride, x, x_stride, NULL, n};
    rk_matmul_task t[2];
    rk_ctx_matmul_batch(ctx, t, rk_matmul_split_pair(&pair, t));
}

static void attention_rows(void *arg, int ith, int nth) {
    attn_job *job = arg;
    rk_context *ctx = job->ctx;
    const rk_hparams *hp = &ctx->model->hp;
    const int64_t group = hp->n_head / hp->n_head_kv, hpu = job->heads_per_unit;
    const int64_t q_dim = hp->n_head * hp->head_dim_k, a_dim = hp->n_head * hp->head_dim_v;
    float *scratch = ctx->attn_scratch + ith * ctx->attn_scratch_floats;
    const int64_t units_per_token = hp->n_head / hpu;
    int64_t begin, end;
    rk_pool_split(job->n * units_per_token, ith, nth, &begin, &end);
    for (int64_t w = begin; w < end; w++) {
        int64_t i = w / units_per_token, h = (w % units_per_token) * hpu; /* first head */
        int64_t pos = job->pos0 + i;
        int64_t t0 = rk_layer_window_start(hp, job->layer, pos);
        rk_attn_group(ctx->attn_ops, ctx->kv, job->layer, h / group, hpu,
                      ctx->q + i * q_dim + h * hp->head_dim_k, hp->attn_scale, t0, pos + 1,
                      ctx->att + i * a_dim + h * hp->head_dim_v, scratch);
    }
}

/* The per-token work between the matrix products, one stage at a time, split over tokens so
 * prompt processing uses every thread (decode runs it inline). */
typedef enum row_stage {
    STAGE_ATTN_NORM,      /* xb = norm(x) */
    STAGE_QKV_POST,       /* biases, per-head q/k norms, RoPE, append k and v to the cache */
    STAGE_ATTN_RESIDUAL,  /* x += [post-norm] xb */
    STAGE_FFN_NORM,       /* xb = norm(x) */
    STAGE_ACTIVATION,     /* hb = act(hb) * hb2 */
    STAGE_FFN_RESIDUAL    /* x += [post-norm] xb */
} row_stage;

typedef struct row_job {
    rk_context *ctx;
    int64_t il, n, pos0;
    row_stage stage;
} row_job;

/* Decode (one token): flash-decoding. Work units are (GQA group, key page); each computes
 * partials of its group's heads over its page, and the partials of every head are merged in
 * page order afterwards, so the result does not depend on the thread count. */
typedef struct split_job {
    rk_context *ctx;
    const uint8_t *visit;   /* sparse decode: (n_head_kv, max_splits) pages to read; NULL: all */
    int64_t layer, pos, t0, n_splits;
    int64_t heads_per_unit; /* a whole GQA group, or 1 when there are few pages to share out */
} split_job;

static void attention_split(void *arg, int ith, int nth) {
    split_job *job = arg;
    rk_context *ctx = job->ctx;
    const rk_hparams *hp = &ctx->model->hp;
    const int64_t hpu = job->heads_per_unit, group = hp->n_head / hp->n_head_kv, dv = hp->head_dim_v;
    float *scratch = ctx->attn_scratch + ith * ctx->attn_scratch_floats;
    double *run_o = (double *)scratch; /* the partials' outputs, then rk_attn_group_partial's scratch */
    int64_t begin, end, prepared_h = -1;
    const rk_kv_codec *prepared = NULL; /* the key codec scratch holds head prepared_h's query for */
    rk_pool_split((hp->n_head / hpu) * job->n_splits, ith, nth, &begin, &end);
    for (int64_t w = begin; w < end; w++) {
        int64_t h = (w / job->n_splits) * hpu, sp = w % job->n_splits;
        if (h != prepared_h) { /* a thread's units run through a head's pages in order */
            prepared = NULL;
            prepared_h = h;
        }
        int64_t t0 = sp * RK_KV_PAGE_TOKENS, t1 = t0 + RK_KV_PAGE_TOKENS;
        if (t0 < job->t0) t0 = job->t0;
        if (t1 > job->pos + 1) t1 = job->pos + 1;
        rk_attn_partial parts[RK_ATTN_MAX_GROUP];
        for (int64_t g = 0; g < hpu; g++) parts[g].o = run_o + g * dv;
        if (job->visit && !job->visit[(h / group) * ctx->max_splits + sp]) { /* sparse: skipped */
            t1 = t0;
        }
        rk_attn_group_partial_cached(ctx->attn_ops, ctx->kv, job->layer, h / group, hpu,
                                     ctx->q + h * hp->head_dim_k, hp->attn_scale, t0, t1, job->pos,
                                     parts, scratch + 2 * hpu * dv, &prepared);
        for (int64_t g = 0; g < hpu; g++) { /* one page: the float values, exactly */
            const int64_t at = (h + g) * ctx->max_splits + sp;
            ctx->split_ml[2 * at] = (float)parts[g].m;
            ctx->split_ml[2 * at + 1] = (float)parts[g].l;
            for (int64_t i = 0; i < dv; i++) ctx->split_o[at * dv + i] = (float)parts[g].o[i];
        }
    }
}

/* Tells the placement policy how much attention each page of layer il received: for each page
 * the largest share of a head's softmax mass (l·e^(m−M) over the head's total). */
static void note_page_mass(rk_context *ctx, int64_t il, int64_t n_splits) {
    const rk_hparams *hp = &ctx->model->hp;
    float *share = ctx->page_share, *mass = ctx->page_mass; /* (max_splits) each */
    for (int64_t sp = 0; sp < n_splits; sp++) share[sp] = 0.0f;
    for (int64_t h = 0; h < hp->n_head; h++) {
        const float *ml = ctx->split_ml + 2 * h * ctx->max_splits; /* (m, l) per page */
        float m = -INFINITY, total = 0.0f;
        for (int64_t sp = 0; sp < n_splits; sp++)
            if (ml[2 * sp + 1] > 0.0f && ml[2 * sp] > m) m = ml[2 * sp];
        for (int64_t sp = 0; sp < n_splits; sp++) {
            mass[sp] = ml[2 * sp + 1] > 0.0f ? ml[2 * sp + 1] * expf(ml[2 * sp] - m) : 0.0f;
            total += mass[sp];
        }
        for (int64_t sp = 0; sp < n_splits && total > 0.0f; sp++)
            if (mass[sp] / total > share[sp]) share[sp] = mass[sp] / total;
    }
    for (int64_t sp = 0; sp < n_splits; sp++) rk_kv_note_mass(ctx->kv, il, sp, share[sp]);
}

/* Sparse decode (opt-in, --kv-sparse): for each KV head, the pages its query heads read: the
 * first page, the newest ones and the top pages by key bound (kv-sparse.h). Writes
 * ctx->sparse_visit (per KV head) and returns the union over heads, by page, for the tiers. */
static const uint8_t *sparse_select(rk_context *ctx, int64_t il, int64_t pos, int64_t first_pos) {
    const rk_hparams *hp = &ctx->model->hp;
    const int64_t group = hp->n_head / hp->n_head_kv, first = first_pos / RK_KV_PAGE_TOKENS;
    const int64_t last = pos / RK_KV_PAGE_TOKENS, M = ctx->max_splits;
    rk_kv_sparse_params sp = rk_kv_sparse_default_params();
    sp.top_pages = ctx->sparse_pages;
    memset(ctx->sparse_union, 0, (size_t)M);
    for (int64_t g = 0; g < hp->n_head_kv; g++) {
        uint8_t *visit = ctx->sparse_visit + g * M;
        memset(visit, 0, (size_t)M);
        for (int64_t i = first; i <= last; i++) ctx->sparse_bounds[i - first] = rk_kv_page_bounds(ctx->kv, il, g, i);
        int64_t n = rk_kv_sparse_select(&sp, first, last, ctx->sparse_bounds, ctx->q + g * group * hp->head_dim_k,
                                        group, hp->head_dim_k, hp->attn_scale, visit + first, ctx->sparse_scratch);
        ctx->sparse_visited += (uint64_t)n;
        ctx->sparse_skipped += (uint64_t)(last - first + 1 - n);
        for (int64_t i = first; i <= last; i++) ctx->sparse_union[i] |= visit[i];
    }
    return ctx->sparse_union;
}

static void attention_decode(rk_context *ctx, int64_t il, int64_t pos, bool sparse) {
    const rk_hparams *hp = &ctx->model->hp;
    int64_t t0 = rk_layer_window_start(hp, il, pos);
    int64_t n_splits = pos / RK_KV_PAGE_TOKENS + 1;
    int64_t hpu = (hp->n_head / ctx->attn_max_group) * n_splits >= 2 * rk_pool_size(ctx->pool)
                      ? ctx->attn_max_group : 1; /* same numbers either way */
    split_job job = {ctx, sparse ? ctx->sparse_visit : NULL, il, pos, t0, n_splits, hpu};
    rk_pool_run(ctx->pool, attention_split, &job);
    const int64_t dv = hp->head_dim_v;
    if (rk_kv_tiered(ctx->kv)) note_page_mass(ctx, il, job.n_splits);
    for (int64_t h = 0; h < hp->n_head; h++) { /* pages in order: the same bits for any thread count */
        rk_attn_partial acc;
        rk_attn_partial_init(&acc, ctx->merge_o, dv);
        for (int64_t sp = 0; sp < job.n_splits; sp++) {
            const int64_t at = h * ctx->max_splits + sp;
            rk_attn_merge_page(&acc, ctx->split_ml[2 * at], ctx->split_ml[2 * at + 1], ctx->split_o + at * dv, dv);
        }
        rk_attn_finish(&acc, ctx->att + h * dv, dv);
    }
}

static void add_bias(float *x, const float *bias, int64_t dim) {
    if (bias)
        for (int64_t j = 0; j < dim; j++) x[j] += bias[j];
}

/* Per-head norm (optional) and RoPE over the heads of one row of q or k. */
static void qk_prepare(float *x, int64_t n_heads, int64_t hd, const float *norm,
                       const float *cos_sin, const rk_hparams *hp) {
    for (int64_t h = 0; h < n_heads; h++) {
        float *head = x + h * hd;
        if (norm) rk_rmsnorm(head, head, norm, hd, hp->norm_eps);
        rk_rope_apply(head, hp->rot_dim, cos_sin, hp->rope_neox);
    }
}

static void qkv_post(const row_job *job, int64_t i) {
    rk_context *ctx = job->ctx;
    const rk_hparams *hp = &ctx->model->hp;
    const rk_layer *L = &ctx->model->layers[job->il];
    const int64_t q_dim = hp->n_head * hp->head_dim_k;
    const int64_t k_dim = hp->n_head_kv * hp->head_dim_k;
    const int64_t v_dim = hp->n_head_kv * hp->head_dim_v;
    float *q = ctx->q + i * q_dim, *k = ctx->k + i * k_dim, *v = ctx->v + i * v_dim;
    add_bias(q, L->bq, q_dim);
    add_bias(k, L->bk, k_dim);
    add_bias(v, L->bv, v_dim);
    float *cs = ctx->cos_sin + i * hp->rot_dim;
    float base = hp->layer_is_local[job->il] ? hp->rope_base_local : hp->rope_base;
    rk_rope_cos_sin(cs, ctx->fwd_positions ? ctx->fwd_positions[i] : job->pos0 + i, hp->rot_dim, base,
                    hp->rope_scale);
    if (hp->qk_norm_full) { /* olmoe: one RMSNorm over the whole projection, before the heads */
        rk_rmsnorm(q, q, L->q_norm, q_dim, hp->norm_eps);
        rk_rmsnorm(k, k, L->k_norm, k_dim, hp->norm_eps);
    }
    qk_prepare(q, hp->n_head, hp->head_dim_k, hp->qk_norm ? L->q_norm : NULL, cs, hp);
    qk_prepare(k, hp->n_head_kv, hp->head_dim_k, hp->qk_norm ? L->k_norm : NULL, cs, hp);
    if (!ctx->fwd_kv_write) return; /* a ring rank that does not hold this token's page */
    const int64_t slot = ctx->fwd_kv_pos0 + i;
    for (int64_t h = 0; h < hp->n_head_kv; h++) {
        memcpy(rk_kv_key(ctx->kv, job->il, h, slot), k + h * hp->head_dim_k, (size_t)hp->head_dim_k * sizeof(float));
        memcpy(rk_kv_value(ctx->kv, job->il, h, slot), v + h * hp->head_dim_v, (size_t)hp->head_dim_v * sizeof(float));
    }
}

static void residual(const row_job *job, int64_t i, const float *post_norm) {
    rk_context *ctx = job->ctx;
    const rk_hparams *hp = &ctx->model->hp;
    const int64_t E = hp->n_embd;
    float *o = ctx->xb + i * E, *x = ctx->x + i * E;
    if (post_norm) rk_rmsnorm(o, o, post_norm, E, hp->norm_eps);
    for (int64_t j = 0; j < E; j++) x[j] += o[j];
}

static void row_stage_token(const row_job *job, int64_t i) {
    rk_context *ctx = job->ctx;
    const rk_model *m = ctx->model;
    const rk_hparams *hp = &m->hp;
    const rk_layer *L = &m->layers[job->il];
    const int64_t E = hp->n_embd, F = hp->n_ff;
    const bool simd = m->simd >= RK_SIMD_AVX2;
    switch (job->stage) {
    case STAGE_ATTN_NORM:
        rk_rmsnorm(ctx->xb + i * E, ctx->x + i * E, L->attn_norm, E, hp->norm_eps);
        break;
    case STAGE_QKV_POST: qkv_post(job, i); break;
    case STAGE_ATTN_RESIDUAL: residual(job, i, L->post_attn_norm); break;
    case STAGE_FFN_NORM:
        rk_rmsnorm(ctx->xb + i * E, ctx->x + i * E, L->ffn_norm, E, hp->norm_eps);
        break;
    case STAGE_ACTIVATION:
        if (hp->gelu)
            (simd ? rk_geglu_avx2 : rk_geglu)(ctx->hb + i * F, ctx->hb2 + i * F, F);
        else
            (simd ? rk_swiglu_avx2 : rk_swiglu)(ctx->hb + i * F, ctx->hb2 + i * F, F);
        break;
    case STAGE_FFN_RESIDUAL: residual(job, i, L->post_ffn_norm); break;
    }
}

static void row_stage_run(void *arg, int ith, int nth) {
    const row_job *job = arg;
    int64_t begin, end;
    rk_pool_split(job->n, ith, nth, &begin, &end);
    for (int64_t i = begin; i < end; i++) row_stage_token(job, i);
}

static void run_rows(rk_context *ctx, int64_t il, int64_t n, int64_t pos0, row_stage stage) {
    row_job job = {ctx, il, n, pos0, stage};
    if (n == 1)
        row_stage_run(&job, 0, 1);
    else
        rk_pool_run(ctx->pool, row_stage_run, &job);
}

/* The attention of one sequence's micro-batch, from q/k/v to ctx->att: biases, norms and RoPE,
 * appending k and v to the cache, sealing full pages, fetching cold pages, attention. */
static rk_status attention_core(rk_context *ctx, int64_t il, int64_t n, int64_t pos0, rk_error *err) {
    const rk_hparams *hp = &ctx->model->hp;
    run_rows(ctx, il, n, pos0, STAGE_QKV_POST);
    /* Pages this micro-batch filled are encoded now; each query still reads its own page in
     * f32 (kept until after attention), the full pages before it through the codec, as in
     * one-token decode: results do not depend on how the tokens were batched. */
    rk_status s = rk_kv_seal_full_pages(ctx->kv, il, pos0 + n, n > 1 ? ctx->pool : NULL, err);
    /* Cold pages this layer reads come back from disk (the I/O thread has usually read them
     * while the previous layer computed), and the I/O thread starts on the next layer's. */
    const int64_t first_pos = rk_layer_window_start(hp, il, pos0);
    const bool sparse = n == 1 && ctx->sparse_pages > 0;
    const uint8_t *visit = sparse && !s ? sparse_select(ctx, il, pos0, first_pos) : NULL;
    if (!s) s = rk_kv_acquire(ctx->kv, il, first_pos, visit, ctx->pool, err);
    if (s) return s;
    if (n == 1) {
        attention_decode(ctx, il, pos0, sparse);
    } else {
        /* Whole GQA groups per work unit read each K/V row once per group; with few units
         * single heads spread the work over the threads instead (same numbers either way). */
        int64_t hpu = n * hp->n_head_kv >= 2 * rk_pool_size(ctx->pool) ? ctx->attn_max_group : 1;
        attn_job job = {ctx, il, n, pos0, hpu};
        rk_pool_run(ctx->pool, attention_rows, &job);
    }
    rk_kv_drop_retired(ctx->kv, il);
    rk_kv_settle(ctx->kv, il);
    /* A sliding-window layer never looks before (next position + 1 - window) again: free those
     * pages (Gemma 3 keeps 5 of every 6 layers' KV at two pages this way). */
    if (hp->layer_is_local[il] && hp->sliding_window > 0)
        rk_kv_release_before(ctx->kv, il, pos0 + n + 1 - hp->sliding_window);
    return RK_OK;
}

/* attention_core for a ring context (DESIGN.md, "Ring attention"): this rank's keys and values
 * go into its own cache at local slots, and attention runs over every rank's pages
 * (dist/ring-attn.h). Local failures are passed to the ring so that every rank returns them. */
static rk_status ring_attention_core(rk_context *ctx, int64_t il, int64_t n, int64_t pos0, rk_error *err) {
    const rk_hparams *hp = &ctx->model->hp;
    rk_ring *ring = ctx->ring;
    const int me = ring->transport->rank;
    run_rows(ctx, il, n, pos0, STAGE_QKV_POST);
    const int64_t n_tokens = ctx->ring_n_tokens, held = rk_ring_shard_tokens(&ring->shard, me, n_tokens);
    const int64_t window = hp->layer_is_local[il] ? hp->sliding_window : 0;
    rk_status s = rk_kv_seal_full_pages(ctx->kv, il, held, n > 1 ? ctx->pool : NULL, err);
    if (!s) s = rk_kv_acquire(ctx->kv, il, 0, NULL, ctx->pool, err);
    const rk_ring_layer L = {ctx->attn_ops, ctx->pool, ctx->kv, il, hp->n_head, hp->n_head_kv, hp->head_dim_k,
                             hp->head_dim_v, ctx->attn_max_group, hp->attn_scale, window, ctx->attn_scratch,
                             ctx->attn_scratch_floats};
    if (ctx->ring_prefill)
        s = rk_ring_attn_prefill(ring, &L, ctx->q, n, ctx->fwd_positions, ctx->ring_first_pos, n_tokens, ctx->att, s,
                                 err);
    else
        s = rk_ring_attn_decode(ring, &L, ctx->q, n_tokens - 1, ctx->att, s, err);
    rk_kv_drop_retired(ctx->kv, il);
    rk_kv_settle(ctx->kv, il);
    if (!s && window > 0 && n_tokens + 1 > window) /* as attention_core, in local slots */
        rk_kv_release_before(ctx->kv, il, rk_ring_shard_first_slot_from(&ring->shard, me, n_tokens + 1 - window,
                                                                         n_tokens));
    return s;
}

/* Adds one task to a stage's batch of products. */
static void add_task(const rk_fwd_shared *sh, int *n_tasks, rk_context *owner, rk_matmul_task task) {
    sh->tasks[*n_tasks] = task;
    sh->owners[(*n_tasks)++] = owner;
}

#define FOR_LIVE(items, n_items, it) \
    for (rk_fwd_item *it = (items); it < (items) + (n_items); it++) if (it->status == RK_OK)

/* A stage's products: up to three matrices over the same input rows of each item (q/k/v), or a
 * gate/up pair. Buffers are found through accessors, so one routine serves every stage. */
typedef float *(*item_buf)(const rk_fwd_item *it);
typedef struct product_spec {
    int n_w;
    const rk_matrix *w[3];
    item_buf y[3];
    int64_t y_width[3];     /* output row width = stride */
    item_buf x;
    int64_t x_width;
    bool pair;              /* w[0], w[1] are a gate/up pair (one task, or two when split) */
    bool out_rows;          /* rows are the item's n_out (the output head), not n */
} product_spec;

static float *buf_xb(const rk_fwd_item *it) { return it->ctx->xb; }
static float *buf_q(const rk_fwd_item *it) { return it->ctx->q; }
static float *buf_k(const rk_fwd_item *it) { return it->ctx->k; }
static float *buf_v(const rk_fwd_item *it) { return it->ctx->v; }
static float *buf_att(const rk_fwd_item *it) { return it->ctx->att; }
static float *buf_hb(const rk_fwd_item *it) { return it->ctx->hb; }
static float *buf_hb2(const rk_fwd_item *it) { return it->ctx->hb2; }
static float *buf_logits(const rk_fwd_item *it) { return it->logits; }

/* The tasks of one spec over `rows` rows of x into outputs y[k]. */
static void add_spec_tasks(const rk_fwd_shared *sh, int *nt, rk_context *owner, const product_spec *ps,
                           const float *x, float *const *y, int64_t rows) {
    if (ps->pair) {
        const rk_matmul_task pair = {{ps->w[0], ps->w[1]}, {y[0], y[1]}, ps->y_width[0], x, ps->x_width, NULL, rows};
        rk_matmul_task t[2];
        for (int j = 0, k = rk_matmul_split_pair(&pair, t); j < k; j++) add_task(sh, nt, owner, t[j]);
        return;
    }
    for (int k = 0; k < ps->n_w; k++)
        add_task(sh, nt, owner, (rk_matmul_task){{ps->w[k], NULL}, {y[k], NULL}, ps->y_width[k], x, ps->x_width, NULL, rows});
}

/* Runs a stage's products for every live item in one batch. Items with a single row (decode
 * tokens) are gathered into one product of many rows when there are two or more of them, so the
 * register-tiled kernels serve them together; the kernels give each row the same bits whether it
 * runs alone or in a tile (quant.h), so gathering changes no number. Longer items (prompt
 * chunks) run as their own products, in place. */
static void run_products(const rk_fwd_shared *sh, rk_fwd_item *items, int64_t n_items, const product_spec *ps) {
    int64_t singles = 0;
    FOR_LIVE(items, n_items, it) singles += (ps->out_rows ? it->n_out : it->n) == 1;
    const bool gather = sh->gx && singles >= 2;
    int nt = 0;
    int64_t g = 0;
    FOR_LIVE(items, n_items, it) {
        const int64_t rows = ps->out_rows ? it->n_out : it->n;
        if (rows == 0) continue;
        if (gather && rows == 1) {
            memcpy(sh->gx + g * ps->x_width, ps->x(it), (size_t)ps->x_width * sizeof(float));
            sh->gathered[g++] = it;
            continue;
        }
        float *y[3] = {ps->y[0](it), ps->n_w > 1 ? ps->y[1](it) : NULL, ps->n_w > 2 ? ps->y[2](it) : NULL};
        add_spec_tasks(sh, &nt, it->ctx, ps, ps->x(it), y, rows);
    }
    if (g > 0) add_spec_tasks(sh, &nt, sh->gathered[0]->ctx, ps, sh->gx, sh->gy, g);
    shared_matmul(sh, sh->tasks, nt, sh->owners, NULL);
    for (int64_t i = 0; i < g; i++)
        for (int k = 0; k < ps->n_w; k++)
            memcpy(ps->y[k](sh->gathered[i]), sh->gy[k] + i * ps->y_width[k], (size_t)ps->y_width[k] * sizeof(float));
}

/* One layer's attention block for every live item: the q/k/v and output products of all of
 * them share a pass over the weights; each item's attention reads its own cache. */
static void attention_block(const rk_fwd_shared *sh, rk_fwd_item *items, int64_t n_items, int64_t il) {
    const rk_model *m = items[0].ctx->model;
    const rk_hparams *hp = &m->hp;
    const rk_layer *L = &m->layers[il];
    const int64_t E = hp->n_embd, q_dim = hp->n_head * hp->head_dim_k;
    const int64_t k_dim = hp->n_head_kv * hp->head_dim_k, v_dim = hp->n_head_kv * hp->head_dim_v;
    FOR_LIVE(items, n_items, it) run_rows(it->ctx, il, it->n, it->pos0, STAGE_ATTN_NORM);
    const product_spec qkv = {3, {&L->wq, &L->wk, &L->wv}, {buf_q, buf_k, buf_v}, {q_dim, k_dim, v_dim}, buf_xb, E,
                              false, false};
    run_products(sh, items, n_items, &qkv);
    FOR_LIVE(items, n_items, it) it->status = (it->ctx->ring ? ring_attention_core : attention_core)(
                                     it->ctx, il, it->n, it->pos0, it->err);
    const product_spec wo = {1, {&L->wo}, {buf_xb}, {E}, buf_att, hp->n_head * hp->head_dim_v, false, false};
    run_products(sh, items, n_items, &wo);
    FOR_LIVE(items, n_items, it) run_rows(it->ctx, il, it->n, it->pos0, STAGE_ATTN_RESIDUAL);
}

/* The MoE FFN of every live item. Decode tokens of two or more sequences are gathered into the
 * buffers of one of them (the host: the one with the largest micro-batch) and go through the
 * experts together, so an expert that several sequences routed to is read once per step, not
 * once per sequence. Routing is per token and the kernels give a row the same bits in any
 * batch (quant.h), so gathering changes no number. Prompt chunks, and decode tokens beyond the
 * host's capacity, run on their own. */
static void moe_block(const rk_fwd_shared *sh, rk_fwd_item *items, int64_t n_items, const rk_layer *L) {
    const int64_t E = items[0].ctx->model->hp.n_embd;
    rk_fwd_item *host = NULL;
    int64_t singles = 0;
    FOR_LIVE(items, n_items, it) {
        if (it->n != 1) continue;
        singles++;
        if (!host || it->ctx->n_ubatch > host->ctx->n_ubatch) host = it;
    }
    int64_t g = 0; /* sh->gathered[0] is the host, [1..g-1] the items whose rows it carries */
    if (sh->gathered && singles >= 2) {
        sh->gathered[g++] = host;
        FOR_LIVE(items, n_items, it) {
            if (it->n != 1 || it == host || g == host->ctx->n_ubatch) continue;
            memcpy(host->ctx->xb + g * E, it->ctx->xb, (size_t)E * sizeof(float));
            sh->gathered[g++] = it;
        }
        rk_moe_ffn(host->ctx, L, g);
        for (int64_t i = 1; i < g; i++)
            memcpy(sh->gathered[i]->ctx->xb, host->ctx->xb + i * E, (size_t)E * sizeof(float));
    }
    FOR_LIVE(items, n_items, it) {
        bool done = false;
        for (int64_t i = 0; i < g && !done; i++) done = sh->gathered[i] == it;
        if (!done && it->n > 0) rk_moe_ffn(it->ctx, L, it->n);
    }
}

static void ffn_block(const rk_fwd_shared *sh, rk_fwd_item *items, int64_t n_items, int64_t il) {
    const rk_model *m = items[0].ctx->model;
    const rk_hparams *hp = &m->hp;
    const rk_layer *L = &m->layers[il];
    const int64_t E = hp->n_embd, F = hp->n_ff;
    FOR_LIVE(items, n_items, it) run_rows(it->ctx, il, it->n, 0, STAGE_FFN_NORM);
    if (hp->routing.n_expert > 0) {
        moe_block(sh, items, n_items, L);
    } else {
        const product_spec gate_up = {2, {&L->w_gate, &L->w_up}, {buf_hb, buf_hb2}, {F, F}, buf_xb, E, true, false};
        run_products(sh, items, n_items, &gate_up);
        FOR_LIVE(items, n_items, it) run_rows(it->ctx, il, it->n, 0, STAGE_ACTIVATION);
        const product_spec down = {1, {&L->w_down}, {buf_xb}, {E}, buf_hb, F, false, false};
        run_products(sh, items, n_items, &down);
    }
    FOR_LIVE(items, n_items, it) run_rows(it->ctx, il, it->n, 0, STAGE_FFN_RESIDUAL);
}

static rk_status embed(rk_context *ctx, const rk_token *tokens, int64_t n, rk_error *err) {
    const rk_model *m = ctx->model;
    const rk_hparams *hp = &m->hp;
    const uint8_t *table = m->token_embd->data;
    size_t row_bytes = rk_type_row_bytes(m->token_embd->type, hp->n_embd);
    for (int64_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return rk_error_set(err, RK_ERR_INVALID_ARG, "eval: token %d is outside the vocabulary (0..%lld)",
                                tokens[i], (long long)hp->n_vocab - 1);
        float *row = ctx->x + i * hp->n_embd;
        m->embd_ops->dequant_row(table + (size_t)tokens[i] * row_bytes, row, hp->n_embd);
        ctx->weight_stats.bytes_read += row_bytes;
        if (hp->embd_scale != 1.0f)
            for (int64_t j = 0; j < hp->n_embd; j++) row[j] *= hp->embd_scale;
    }
    return RK_OK;
}

/* Checks an item, reserves its cache and embeds its tokens. */
static rk_status begin_item(rk_fwd_item *it) {
    rk_context *ctx = it->ctx;
    /* a ring rank may hold none of a prompt's tokens and still takes part in every layer */
    if (it->n < (ctx->ring ? 0 : 1) || it->n > ctx->n_ubatch || it->n_out < 0 || it->n_out > it->n)
        return rk_error_set(it->err, RK_ERR_INTERNAL, "forward: bad micro-batch %lld", (long long)it->n);
    it->pos0 = ctx->n_past;
    if (!ctx->ring) { /* tokens at positions pos0.. go to the same cache positions */
        ctx->fwd_positions = NULL;
        ctx->fwd_kv_pos0 = it->pos0;
        ctx->fwd_kv_write = true;
    }
    rk_kv_begin_step(ctx->kv);
    /* a ring context's driver (context-ring.c) reserved its local slots already */
    rk_status s = ctx->ring ? RK_OK : rk_kv_reserve(ctx->kv, it->pos0 + it->n, it->err);
    if (!s) s = embed(ctx, it->tokens, it->n, it->err);
    if (s) return s;
    ctx->weight_stats.tokens += (uint64_t)it->n;
    ctx->weight_stats.micro_batches++;
    return RK_OK;
}

void rk_forward_batch(const rk_fwd_shared *sh, rk_fwd_item *items, int64_t n_items) {
    if (n_items <= 0) return;
    const rk_model *m = items[0].ctx->model;
    const rk_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd;
    for (int64_t i = 0; i < n_items; i++) items[i].status = begin_item(&items[i]);
    for (int64_t il = 0; il < hp->n_layer; il++) {
        attention_block(sh, items, n_items, il);
        ffn_block(sh, items, n_items, il);
    }
    FOR_LIVE(items, n_items, it) {
        rk_context *c = it->ctx;
        c->n_past = it->pos0 + it->n;
        const int64_t first = it->n - it->n_out;
        for (int64_t i = first; i < it->n; i++)
            rk_rmsnorm(c->xb + (i - first) * E, c->x + i * E, m->output_norm, E, hp->norm_eps);
    }
    const product_spec head = {1, {&m->output}, {buf_logits}, {hp->n_vocab}, buf_xb, E, false, true};
    run_products(sh, items, n_items, &head);
}

rk_status rk_forward(rk_context *ctx, const rk_token *tokens, int64_t n, int64_t n_out,
                     float *logits, rk_error *err) {
    rk_matmul_task tasks[RK_FWD_TASKS_PER_ITEM];
    rk_context *owners[RK_FWD_TASKS_PER_ITEM];
    const rk_fwd_shared sh = {ctx->pool, ctx->mm_scratch, ctx->mm_scratch_bytes, tasks, owners,
                              RK_FWD_TASKS_PER_ITEM, NULL, {NULL, NULL, NULL}, NULL};
    rk_fwd_item item = {ctx, tokens, n, n_out, logits, 0, RK_OK, err};
    rk_forward_batch(&sh, &item, 1);
    return item.status;
}
