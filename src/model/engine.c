/*
 * engine.c — several contexts evaluated together (see ringkv.h, "several sequences at once").
 *
 * An engine owns the thread pool its contexts borrow and the buffers one step over all of them
 * needs: the scratch of quantised activations (grown at the start of a step when a step
 * carries more tokens than any before it) and the per-stage task lists. The forward pass itself
 * is rk_forward_batch (forward.c): the same code that evaluates one context alone.
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/context.h"

struct rk_engine {
    const rk_model *model;
    rk_pool *pool;
    void *scratch;              /* activation scratch of the step that needed most so far */
    size_t scratch_bytes;
    rk_fwd_item *items;         /* (max_items) */
    rk_error *item_errs;        /* (max_items) */
    rk_matmul_task *tasks;      /* (RK_FWD_TASKS_PER_ITEM × (max_items + 1)) */
    rk_context **owners;        /* the same */
    float *gx, *gy[3];          /* decode rows gathered into one product (rk_fwd_shared) */
    rk_fwd_item **gathered;     /* (max_items) */
    size_t max_items;
};

rk_status rk_engine_create(const rk_model *model, int n_threads, rk_engine **out, rk_error *err) {
    if (!model || !out) return rk_error_set(err, RK_ERR_INVALID_ARG, "engine: NULL argument");
    *out = NULL;
    if (!model->layers) return rk_error_set(err, RK_ERR_INVALID_ARG, "engine: the model was loaded vocabulary-only");
    if (n_threads < 0) return rk_error_set(err, RK_ERR_INVALID_ARG, "engine: negative thread count %d", n_threads);
    rk_engine *e = calloc(1, sizeof *e);
    if (!e) return rk_error_set(err, RK_ERR_NO_MEMORY, "engine: out of memory");
    e->model = model;
    rk_status s = rk_pool_create(n_threads ? n_threads : rk_cpu_count(), &e->pool, err);
    if (s) {
        free(e);
        return s;
    }
    *out = e;
    return RK_OK;
}

void rk_engine_free(rk_engine *e) {
    if (!e) return;
    rk_pool_free(e->pool);
    free(e->scratch);
    free(e->items);
    free(e->item_errs);
    free(e->tasks);
    free(e->owners);
    free(e->gx);
    for (int k = 0; k < 3; k++) free(e->gy[k]);
    free(e->gathered);
    free(e);
}

int rk_engine_n_threads(const rk_engine *e) { return rk_pool_size(e->pool); }
const rk_model *rk_engine_model(const rk_engine *e) { return e->model; }
rk_pool *rk_engine_pool(rk_engine *e) { return e->pool; }

static int64_t max3(int64_t a, int64_t b, int64_t c) {
    int64_t m = a > b ? a : b;
    return m > c ? m : c;
}

/* Buffers of n gathered decode rows: the widest input and output rows of the products. */
static int alloc_gather(rk_engine *e, size_t n) {
    const rk_hparams *hp = &e->model->hp;
    const int64_t q_dim = hp->n_head * hp->head_dim_k, k_dim = hp->n_head_kv * hp->head_dim_k;
    const int64_t v_dim = hp->n_head_kv * hp->head_dim_v, a_dim = hp->n_head * hp->head_dim_v;
    const int64_t in = max3(hp->n_embd, a_dim, hp->n_ff);
    const int64_t out[3] = {max3(q_dim, hp->n_ff, max3(hp->n_embd, hp->n_vocab, 1)), max3(k_dim, hp->n_ff, 1), v_dim};
    free(e->gx);
    e->gx = malloc(n * (size_t)in * sizeof(float));
    int failed = !e->gx;
    for (int k = 0; k < 3; k++) {
        free(e->gy[k]);
        e->gy[k] = malloc(n * (size_t)out[k] * sizeof(float));
        failed |= !e->gy[k];
    }
    rk_fwd_item **g = realloc(e->gathered, n * sizeof *g);
    if (g) e->gathered = g;
    return failed || !g;
}

/* Grows the per-item arrays to n items and the scratch to `bytes`. */
static rk_status reserve(rk_engine *e, size_t n, size_t bytes, rk_error *err) {
    if (n > e->max_items) {
        rk_fwd_item *items = realloc(e->items, n * sizeof *items);
        if (items) e->items = items;
        rk_error *errs = realloc(e->item_errs, n * sizeof *errs);
        if (errs) e->item_errs = errs;
        rk_matmul_task *tasks = realloc(e->tasks, RK_FWD_TASKS_PER_ITEM * (n + 1) * sizeof *tasks);
        if (tasks) e->tasks = tasks;
        rk_context **owners = realloc(e->owners, RK_FWD_TASKS_PER_ITEM * (n + 1) * sizeof *owners);
        if (owners) e->owners = owners;
        if (!items || !errs || !tasks || !owners || alloc_gather(e, n)) {
            e->max_items = 0; /* try again next time */
            return rk_error_set(err, RK_ERR_NO_MEMORY, "engine: out of memory for a step of %zu sequences", n);
        }
        e->max_items = n;
    }
    if (bytes > e->scratch_bytes) {
        void *scratch = aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!scratch)
            return rk_error_set(err, RK_ERR_NO_MEMORY, "engine: out of memory for %zu bytes of activations", bytes);
        free(e->scratch);
        e->scratch = scratch;
        e->scratch_bytes = bytes;
    }
    return RK_OK;
}

/* Checks one item: its context belongs to the engine and appears once, its tokens fit. */
static rk_status check_item(const rk_engine *e, rk_batch_item *items, size_t i) {
    rk_batch_item *it = &items[i];
    rk_error *err = &it->err;
    if (!it->ctx || it->ctx->engine != e)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "engine: item %zu's context was not created with this engine", i);
    for (size_t j = 0; j < i; j++)
        if (items[j].ctx == it->ctx)
            return rk_error_set(err, RK_ERR_INVALID_ARG, "engine: items %zu and %zu have the same context", j, i);
    if ((int64_t)it->n > it->ctx->n_ubatch)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "engine: item %zu has %zu tokens, more than its micro-batch of %lld",
                            i, it->n, (long long)it->ctx->n_ubatch);
    return rk_context_check_tokens(it->ctx, it->tokens, it->n, err);
}

rk_status rk_engine_eval(rk_engine *e, rk_batch_item *items, size_t n_items, rk_error *err) {
    if (!e || (!items && n_items)) return rk_error_set(err, RK_ERR_INVALID_ARG, "engine: NULL argument");
    size_t bytes = 0;
    for (size_t i = 0; i < n_items; i++) {
        rk_error_clear(&items[i].err);
        items[i].status = check_item(e, items, i);
        if (!items[i].status) bytes += (size_t)items[i].n * items[i].ctx->mm_scratch_per_token;
    }
    rk_status s = reserve(e, n_items, bytes, err);
    if (s) return s;
    int64_t n_live = 0;
    for (size_t i = 0; i < n_items; i++) {
        if (items[i].status) continue;
        rk_context *ctx = items[i].ctx;
        ctx->n_logits = 0;
        e->items[n_live++] = (rk_fwd_item){ctx, items[i].tokens, (int64_t)items[i].n, 1, ctx->logits,
                                           ctx->n_past, RK_OK, &items[i].err};
    }
    const rk_fwd_shared sh = {e->pool, e->scratch, e->scratch_bytes, e->tasks, e->owners,
                              (int)(RK_FWD_TASKS_PER_ITEM * (n_items + 1)), e->gx, {e->gy[0], e->gy[1], e->gy[2]},
                              e->gathered};
    rk_forward_batch(&sh, e->items, n_live);
    for (int64_t k = 0, i = 0; k < n_live; k++, i++) {
        while (items[i].status) i++; /* the items that ran, in order */
        rk_fwd_item *f = &e->items[k];
        items[i].status = f->status;
        if (f->status) {
            rk_context_undo(f->ctx, f->pos0);
        } else {
            f->ctx->n_logits = 1;
            f->ctx->logits_first = f->n - 1;
        }
    }
    for (size_t i = 0; i < n_items; i++)
        if (items[i].status) {
            if (err) *err = items[i].err;
            return items[i].status;
        }
    return RK_OK;
}
