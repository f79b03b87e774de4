/*
 * context.c — creating a context and evaluating tokens through it (see ringkv.h).
 * rk_context_eval splits the tokens into micro-batches of n_ubatch (chunked prefill: memory
 * stays O(n_ubatch × context)) and keeps the logits the caller asked for.
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kv/kv-sparse.h"
#include "model/context.h"
#include "dist/ring-shard.h"
#include "dist/transport.h"

rk_context_params rk_context_default_params(void) {
    rk_context_params p;
    memset(&p, 0, sizeof p);
    p.n_ubatch = 512;
    return p;
}

static void *alloc_floats(int64_t n, int *failed) {
    void *p = aligned_alloc(64, (((size_t)n * sizeof(float)) + 63) / 64 * 64);
    if (!p) *failed = 1;
    return p;
}

static int64_t max4(int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t m = a > b ? a : b;
    m = m > c ? m : c;
    return m > d ? m : d;
}

/* The MoE routing and gather/scatter buffers (moe.c), when the model has experts. Returns 0, or
 * 1 when out of memory. */
static int alloc_moe_buffers(rk_context *ctx) {
    const rk_hparams *hp = &ctx->model->hp;
    const int64_t U = ctx->n_ubatch, n_expert = hp->routing.n_expert, k = hp->routing.n_used;
    if (n_expert == 0) return 0;
    int failed = 0;
    ctx->moe_logits = alloc_floats(U * n_expert, &failed);
    ctx->moe_weight = alloc_floats(U * k, &failed);
    ctx->moe_row_weight = alloc_floats(U * k, &failed);
    ctx->moe_y = alloc_floats(U * k * hp->n_embd, &failed);
    ctx->moe_out = alloc_floats(U * hp->n_embd, &failed);
    ctx->moe_choice = malloc((size_t)(U * k) * sizeof *ctx->moe_choice);
    ctx->moe_rows = malloc((size_t)(U * k) * sizeof *ctx->moe_rows);
    ctx->moe_offsets = malloc((size_t)(n_expert + 1) * sizeof *ctx->moe_offsets);
    ctx->moe_tasks = malloc((size_t)(2 * n_expert) * sizeof *ctx->moe_tasks);
    ctx->moe_views = malloc((size_t)(3 * n_expert) * sizeof *ctx->moe_views);
    return failed || !ctx->moe_choice || !ctx->moe_rows || !ctx->moe_offsets || !ctx->moe_tasks || !ctx->moe_views;
}

static rk_status alloc_buffers(rk_context *ctx, int n_threads, rk_error *err) {
    const rk_hparams *hp = &ctx->model->hp;
    const int64_t U = ctx->n_ubatch;
    int failed = 0;
    ctx->x = alloc_floats(U * hp->n_embd, &failed);
    ctx->xb = alloc_floats(U * hp->n_embd, &failed);
    ctx->q = alloc_floats(U * hp->n_head * hp->head_dim_k, &failed);
    ctx->k = alloc_floats(U * hp->n_head_kv * hp->head_dim_k, &failed);
    ctx->v = alloc_floats(U * hp->n_head_kv * hp->head_dim_v, &failed);
    ctx->att = alloc_floats(U * hp->n_head * hp->head_dim_v, &failed);
    /* hidden rows: dense, the shared expert, or every (token, routed expert) pair */
    const int64_t ff = max4(hp->n_ff, hp->n_ff_shexp, hp->routing.n_used * hp->n_ff_exp, 1);
    ctx->hb = alloc_floats(U * ff, &failed);
    ctx->hb2 = alloc_floats(U * ff, &failed);
    if (alloc_moe_buffers(ctx)) failed = 1;
    ctx->cos_sin = alloc_floats(U * hp->rot_dim, &failed);
    const int64_t group = hp->n_head / hp->n_head_kv;
    ctx->attn_max_group = 1;
    for (int64_t d = 1; d <= group && d <= RK_ATTN_MAX_GROUP; d++)
        if (group % d == 0) ctx->attn_max_group = d;
    ctx->attn_scratch_floats = rk_attn_scratch_floats(ctx->kv, ctx->attn_max_group);
    ctx->attn_scratch = alloc_floats(n_threads * ctx->attn_scratch_floats, &failed);
    /* Quantised activation rows take at most 4 bytes per element (F32 rows), plus block
     * headers for formats with large scales (Q8_K: 292 bytes per 256). */
    /* Elements one token's activations take in the largest batch of products: q/k/v quantise
     * the input three times, a gate/up pair up to twice, a MoE batch once or twice per routed
     * expert (rk_matmul_batch quantises each task's rows). */
    const int64_t E = hp->n_embd, k = hp->routing.n_used;
    int64_t widest = max4(3 * E, hp->n_ff, hp->n_head * hp->head_dim_v, hp->n_ff_shexp);
    widest = max4(widest, 2 * k * E, k * hp->n_ff_exp, 1);
    ctx->mm_scratch_per_token = (size_t)(widest + widest / 32 + 64) * sizeof(float);
    ctx->mm_scratch_bytes = (size_t)U * ctx->mm_scratch_per_token;
    ctx->mm_scratch = alloc_floats(U * (widest + widest / 32 + 64), &failed);
    ctx->max_splits = (ctx->n_ctx + RK_KV_PAGE_TOKENS - 1) / RK_KV_PAGE_TOKENS;
    ctx->split_o = alloc_floats(hp->n_head * ctx->max_splits * hp->head_dim_v, &failed);
    ctx->split_ml = alloc_floats(2 * hp->n_head * ctx->max_splits, &failed);
    ctx->merge_o = alloc_floats(2 * hp->head_dim_v, &failed); /* doubles */
    ctx->page_share = alloc_floats(ctx->max_splits, &failed);
    ctx->page_mass = alloc_floats(ctx->max_splits, &failed);
    if (ctx->sparse_pages > 0) {
        ctx->sparse_visit = calloc((size_t)(hp->n_head_kv * ctx->max_splits), 1);
        ctx->sparse_union = calloc((size_t)ctx->max_splits, 1);
        ctx->sparse_bounds = calloc((size_t)ctx->max_splits, sizeof *ctx->sparse_bounds);
        ctx->sparse_scratch = malloc(rk_kv_sparse_scratch_bytes(ctx->max_splits));
        if (!ctx->sparse_visit || !ctx->sparse_union || !ctx->sparse_bounds || !ctx->sparse_scratch) failed = 1;
    }
    ctx->logits_cap = 1;
    ctx->logits = alloc_floats(hp->n_vocab, &failed);
    if (failed) return rk_error_set(err, RK_ERR_NO_MEMORY, "context: out of memory for buffers");
    return RK_OK;
}

/* The default codec of sealed pages: f16, exact to f16 rounding at half of f32's bytes. */
#define DEFAULT_KV_CODEC "f16"
/* Positions kept exact (f32) when page 0 is sealed: the attention sinks (as StreamingLLM keeps
 * 4). With tq3.5 on SmolLM2 this cut the KL divergence at 1K from 0.0141 to 0.0108 (1, 8 and 16
 * positions measured 0.0114, 0.0121, 0.0115), and q4's from 0.0094 to 0.0063. */
#define KV_SINK_POSITIONS RK_CTX_KV_SINKS
/* Seed of the tq codecs' rotations and sketches: fixed, so runs are reproducible. */
#define KV_CODEC_SEED 0x72696e676b76ull

static rk_status create_kv(rk_context *ctx, const rk_context_params *p, rk_error *err) {
    const rk_hparams *hp = &ctx->model->hp;
    rk_kv_config cfg = rk_kv_config_f32(ctx->model->simd);
    cfg.seed = KV_CODEC_SEED;
    /* a ring's page 0 is on rank 0; the other ranks' first pages are later pages */
    cfg.n_sink = p->ring && p->ring->rank != 0 ? 0 : KV_SINK_POSITIONS;
    rk_status s = rk_kv_codec_parse(p->kv_codec_k ? p->kv_codec_k : DEFAULT_KV_CODEC, &cfg.key_codec, err);
    if (!s) s = rk_kv_codec_parse(p->kv_codec_v ? p->kv_codec_v : DEFAULT_KV_CODEC, &cfg.value_codec, err);
    if (s) return s;
    rk_kv_codec_spec_name(&cfg.key_codec, ctx->kv_codec_name[0], sizeof ctx->kv_codec_name[0]);
    rk_kv_codec_spec_name(&cfg.value_codec, ctx->kv_codec_name[1], sizeof ctx->kv_codec_name[1]);
    if (cfg.value_codec.qjl)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "context: value codec %s: the QJL sketch is for keys only",
                            ctx->kv_codec_name[1]);
    size_t avail = rk_available_memory_bytes();
    cfg.key_bounds = p->kv_sparse_pages > 0;
    cfg.tiers.hot_bytes = p->kv_hot_bytes;
    cfg.tiers.warm_bytes = p->kv_warm_bytes;
    cfg.tiers.disk_dir = p->kv_disk_dir;
    cfg.tiers.disk_max_bytes = p->kv_disk_max_bytes;
    cfg.tiers.disk_direct = p->kv_disk_direct;
    cfg.tiers.sealer = p->kv_sealer;
    if (p->kv_disk_dir && !p->kv_hot_bytes && avail > 0) cfg.tiers.hot_bytes = avail / 2;
    /* a ring rank's cache holds its share of the pages, packed (dist/ring-shard.h) */
    const int64_t kv_tokens = p->ring ? rk_ring_shard_capacity(p->ring->size, ctx->n_ctx) : ctx->n_ctx;
    rk_kv_dims dims = {hp->n_layer, hp->n_head_kv, hp->head_dim_k, hp->head_dim_v, kv_tokens};
    s = rk_kv_create(&dims, &cfg, &ctx->kv, err);
    if (s) return s;
    /* Refuse a context the machine cannot hold before any work starts (with a disk tier the
     * budgets were checked by the cache). */
    size_t need = rk_kv_bytes_per_token(ctx->kv) * (size_t)kv_tokens;
    /* both budgets set: they bound the RAM; one left unlimited holds whatever the other does not */
    if (p->kv_hot_bytes && p->kv_warm_bytes && p->kv_hot_bytes + p->kv_warm_bytes < need)
        need = p->kv_hot_bytes + p->kv_warm_bytes;
    if (p->kv_disk_dir) need = 0;
    if (avail > 0 && need > avail)
        return rk_error_set(err, RK_ERR_NO_MEMORY,
                            "context: %lld tokens need %.2f GiB of KV cache with keys %s and values %s, but only "
                            "%.2f GiB of memory is available; use a smaller -c or a smaller codec (e.g. --kv-codec tq3.5)",
                            (long long)kv_tokens, need / 1073741824.0, ctx->kv_codec_name[0],
                            ctx->kv_codec_name[1], avail / 1073741824.0);
    return RK_OK;
}

rk_status rk_context_create(const rk_model *model, const rk_context_params *params,
                            rk_context **out, rk_error *err) {
    if (!model || !out) return rk_error_set(err, RK_ERR_INVALID_ARG, "context: NULL argument");
    *out = NULL;
    if (!model->layers)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "context: the model was loaded vocabulary-only");
    rk_context_params p = params ? *params : rk_context_default_params();
    const rk_hparams *hp = &model->hp;
    if (p.n_ctx < 0 || p.n_ubatch < 0 || p.n_threads < 0 || p.kv_sparse_pages < 0)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "context: negative n_ctx, n_ubatch, threads or sparse pages");
    if (p.n_ctx == 0) p.n_ctx = hp->n_ctx_train;
    if (p.n_ubatch == 0) p.n_ubatch = 512;
    if (p.n_threads == 0) p.n_threads = rk_cpu_count();
    rk_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return rk_error_set(err, RK_ERR_NO_MEMORY, "context: out of memory");
    ctx->model = model;
    ctx->attn_ops = rk_attn_get_ops(model->simd);
    ctx->n_ctx = p.n_ctx;
    ctx->n_ubatch = p.n_ubatch < p.n_ctx ? p.n_ubatch : p.n_ctx;
    ctx->sparse_pages = p.kv_sparse_pages;
    rk_status s = RK_OK;
    if (p.engine) {
        if (rk_engine_model(p.engine) != model) {
            free(ctx);
            return rk_error_set(err, RK_ERR_INVALID_ARG, "context: the engine was created for another model");
        }
        ctx->engine = p.engine;
        ctx->pool = rk_engine_pool(p.engine);
        p.n_threads = rk_pool_size(ctx->pool);
    } else {
        s = rk_pool_create(p.n_threads, &ctx->pool, err);
    }
    if (!s) s = create_kv(ctx, &p, err);
    if (!s) s = alloc_buffers(ctx, p.n_threads, err);
    if (p.ring) { /* every rank takes part in the agreement, even one that failed above */
        rk_status r = rk_context_ring_init(ctx, p.ring, s, err);
        if (!s) s = r;
    }
    if (s) {
        rk_context_free(ctx);
        return s;
    }
    *out = ctx;
    return RK_OK;
}

void rk_context_free(rk_context *ctx) {
    if (!ctx) return;
    rk_context_ring_free(ctx);
    if (!ctx->engine) rk_pool_free(ctx->pool);
    rk_kv_free(ctx->kv);
    float *bufs[] = {ctx->x, ctx->xb, ctx->q, ctx->k, ctx->v, ctx->att, ctx->hb, ctx->hb2,
                     ctx->cos_sin, ctx->attn_scratch, ctx->mm_scratch, ctx->logits, ctx->split_o, ctx->split_ml,
                     ctx->page_share, ctx->page_mass, ctx->moe_logits, ctx->moe_weight, ctx->moe_row_weight,
                     ctx->moe_y, ctx->moe_out};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(ctx->merge_o);
    free(ctx->moe_choice);
    free(ctx->moe_rows);
    free(ctx->moe_offsets);
    free(ctx->moe_tasks);
    free(ctx->moe_views);
    free(ctx->sparse_visit);
    free(ctx->sparse_union);
    free(ctx->sparse_bounds);
    free(ctx->sparse_scratch);
    free(ctx);
}

int64_t rk_context_n_ctx(const rk_context *ctx) { return ctx->n_ctx; }
int64_t rk_context_n_past(const rk_context *ctx) { return ctx->n_past; }
size_t rk_context_kv_bytes_per_token(const rk_context *ctx) { return rk_kv_bytes_per_token(ctx->kv); }
size_t rk_context_kv_bytes_in_use(const rk_context *ctx) { return rk_kv_bytes(ctx->kv); }

double rk_context_kv_page_bytes_read(const rk_context *ctx, int64_t pos) {
    const rk_hparams *hp = &ctx->model->hp;
    const int64_t P = RK_KV_PAGE_TOKENS, sealed = (pos + 1) / P;
    const double layer_page = (double)rk_kv_sealed_page_bytes(ctx->kv);
    double pages = 0;
    for (int64_t il = 0; il < hp->n_layer; il++) {
        const int64_t first = rk_layer_window_start(hp, il, pos) / P; /* the first page it reads */
        pages += (double)(sealed > first ? sealed - first : 0);
    }
    return pages * layer_page;
}
void rk_context_kv_tiers(const rk_context *ctx, rk_kv_tier_stats *out) {
    rk_kv_get_tier_stats(ctx->kv, out);
    out->sparse_pages_visited = ctx->sparse_visited;
    out->sparse_pages_skipped = ctx->sparse_skipped;
}
void rk_context_weight_stats(const rk_context *ctx, rk_weight_stats *out) { *out = ctx->weight_stats; }
void rk_context_reset_weight_stats(rk_context *ctx) { memset(&ctx->weight_stats, 0, sizeof ctx->weight_stats); }
const char *rk_context_kv_codec_k(const rk_context *ctx) { return ctx->kv_codec_name[0]; }
const char *rk_context_kv_codec_v(const rk_context *ctx) { return ctx->kv_codec_name[1]; }

rk_status rk_context_truncate(rk_context *ctx, int64_t pos, rk_error *err) {
    rk_status s = RK_OK;
    if (pos < 0 || pos > ctx->n_past)
        s = rk_error_set(err, RK_ERR_INVALID_ARG, "context: cannot truncate to %lld (have %lld tokens)",
                         (long long)pos, (long long)ctx->n_past);
    /* the next query (at pos) reads back to pos + 1 - window in sliding-window layers, whose
     * older pages may have been released */
    int64_t window = ctx->model->hp.sliding_window, first = rk_kv_first_kept(ctx->kv);
    int64_t needed = window > 0 && pos + 1 > window ? pos + 1 - window : 0;
    if (!s && ctx->ring) /* in local slots */
        needed = rk_context_ring_local_slot(ctx, needed);
    if (!s && pos > 0 && first > needed && ctx->ring)
        s = rk_error_set(err, RK_ERR_UNSUPPORTED,
                         "context: cannot rewind to position %lld: the sliding-window layers released pages "
                         "it needs (start again from 0)", (long long)pos);
    else if (!s && pos > 0 && first > needed)
        s = rk_error_set(err, RK_ERR_UNSUPPORTED,
                         "context: cannot rewind to position %lld: the sliding-window layers kept only "
                         "positions %lld and later (start again from 0)", (long long)pos, (long long)first);
    if (ctx->ring) return rk_context_ring_truncate(ctx, pos, s, err); /* agreed by every rank */
    if (s) return s;
    s = rk_kv_truncate(ctx->kv, pos, err);
    if (s) return s;
    ctx->n_past = pos;
    ctx->n_logits = 0;
    return RK_OK;
}

rk_status rk_context_check_tokens(const rk_context *ctx, const rk_token *tokens, size_t n, rk_error *err) {
    if (!tokens && n) return rk_error_set(err, RK_ERR_INVALID_ARG, "eval: NULL argument");
    if (n == 0) return rk_error_set(err, RK_ERR_INVALID_ARG, "eval: no tokens");
    if ((int64_t)n > ctx->n_ctx - ctx->n_past)
        return rk_error_set(err, RK_ERR_CONTEXT_FULL,
                            "eval: %zu tokens do not fit: the context holds %lld and %lld are used",
                            n, (long long)ctx->n_ctx, (long long)ctx->n_past);
    const int64_t V = ctx->model->hp.n_vocab;
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return rk_error_set(err, RK_ERR_INVALID_ARG, "eval: token %d at index %zu is outside the vocabulary (0..%lld)",
                                tokens[i], i, (long long)V - 1);
    return RK_OK;
}

void rk_context_undo(rk_context *ctx, int64_t n_past_before) {
    rk_error undo;
    if (rk_kv_truncate(ctx->kv, n_past_before, &undo) == RK_OK) ctx->n_past = n_past_before;
    ctx->n_logits = 0;
}

rk_status rk_context_ensure_logits(rk_context *ctx, int64_t rows, rk_error *err) {
    if (rows <= ctx->logits_cap) return RK_OK;
    int failed = 0;
    float *l = alloc_floats(rows * ctx->model->hp.n_vocab, &failed);
    if (failed)
        return rk_error_set(err, RK_ERR_NO_MEMORY, "context: out of memory for %lld rows of logits",
                            (long long)rows);
    free(ctx->logits);
    ctx->logits = l;
    ctx->logits_cap = rows;
    return RK_OK;
}

rk_status rk_context_eval(rk_context *ctx, const rk_token *tokens, size_t n, int all_logits,
                          rk_error *err) {
    if (!ctx) return rk_error_set(err, RK_ERR_INVALID_ARG, "eval: NULL argument");
    if (ctx->ring) return rk_context_ring_eval(ctx, tokens, n, all_logits, err);
    rk_status s = rk_context_check_tokens(ctx, tokens, n, err);
    if (!s) s = rk_context_ensure_logits(ctx, all_logits ? (int64_t)n : 1, err);
    if (s) return s;
    const int64_t V = ctx->model->hp.n_vocab;
    ctx->n_logits = 0;
    const int64_t n_past_before = ctx->n_past;
    for (int64_t start = 0; start < (int64_t)n; start += ctx->n_ubatch) {
        int64_t len = (int64_t)n - start < ctx->n_ubatch ? (int64_t)n - start : ctx->n_ubatch;
        bool last = start + len == (int64_t)n;
        int64_t n_out = all_logits ? len : (last ? 1 : 0);
        float *dst = all_logits ? ctx->logits + start * V : ctx->logits;
        s = rk_forward(ctx, tokens + start, len, n_out, dst, err);
        if (s) {
            /* Layers before the failure already took these tokens: forget them all, so the
             * context is usable at the length it had before this call. */
            rk_context_undo(ctx, n_past_before);
            return s;
        }
    }
    ctx->n_logits = all_logits ? (int64_t)n : 1;
    ctx->logits_first = all_logits ? 0 : (int64_t)n - 1;
    return RK_OK;
}

const float *rk_context_logits(const rk_context *ctx, int64_t i) {
    if (ctx->ring) return rk_context_ring_logits(ctx, i);
    if (ctx->n_logits == 0) return NULL;
    int64_t n_eval = ctx->logits_first + ctx->n_logits;
    if (i < 0) i = n_eval - 1;
    if (i < ctx->logits_first || i >= n_eval) return NULL;
    return ctx->logits + (i - ctx->logits_first) * ctx->model->hp.n_vocab;
}

rk_status rk_context_save(rk_context *ctx, rk_stream_write_fn write, void *user, rk_error *err) {
    if (!ctx || !write) return rk_error_set(err, RK_ERR_INVALID_ARG, "save: NULL argument");
    if (ctx->ring) return rk_error_set(err, RK_ERR_UNSUPPORTED, "save: not supported for a ring context");
    return rk_kv_save(ctx->kv, ctx->n_past, write, user, err);
}

rk_status rk_context_load(rk_context *ctx, rk_stream_read_fn read, void *user, rk_error *err) {
    if (!ctx || !read) return rk_error_set(err, RK_ERR_INVALID_ARG, "load: NULL argument");
    if (ctx->ring) return rk_error_set(err, RK_ERR_UNSUPPORTED, "load: not supported for a ring context");
    if (ctx->n_past != 0)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "load: the context already holds %lld tokens",
                            (long long)ctx->n_past);
    int64_t n = 0;
    rk_status s = rk_kv_load(ctx->kv, read, user, &n, err);
    if (s) return s;
    ctx->n_past = n;
    ctx->n_logits = 0;
    return RK_OK;
}
