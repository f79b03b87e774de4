/* kv-cache.c — paged f32 key/value storage (see kv-cache.h). */
#include "kv/kv-cache.h"

#include <stdlib.h>

#include "core/error.h"

typedef struct kv_page {
    float *keys;    /* (n_head_kv, RK_KV_PAGE_TOKENS, head_dim_k) */
    float *values;  /* (n_head_kv, RK_KV_PAGE_TOKENS, head_dim_v) */
} kv_page;

struct rk_kv_cache {
    rk_kv_dims dims;
    int64_t max_pages;    /* per layer */
    int64_t n_pages;      /* allocated per layer (all layers alike) */
    kv_page *pages;       /* (n_layer, max_pages) */
    size_t key_stride;    /* floats per position */
    size_t value_stride;
};

rk_status rk_kv_create(const rk_kv_dims *dims, rk_kv_cache **out, rk_error *err) {
    *out = NULL;
    if (dims->n_layer <= 0 || dims->n_head_kv <= 0 || dims->head_dim_k <= 0 ||
        dims->head_dim_v <= 0 || dims->n_ctx <= 0)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "kv: dimensions must be positive");
    rk_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) return rk_error_set(err, RK_ERR_NO_MEMORY, "kv: out of memory");
    kv->dims = *dims;
    kv->max_pages = (dims->n_ctx + RK_KV_PAGE_TOKENS - 1) / RK_KV_PAGE_TOKENS;
    kv->key_stride = (size_t)(dims->n_head_kv * dims->head_dim_k);
    kv->value_stride = (size_t)(dims->n_head_kv * dims->head_dim_v);
    kv->pages = calloc((size_t)(dims->n_layer * kv->max_pages), sizeof *kv->pages);
    if (!kv->pages) {
        long long slots = (long long)(dims->n_layer * kv->max_pages);
        free(kv);
        return rk_error_set(err, RK_ERR_NO_MEMORY, "kv: out of memory for %lld page slots", slots);
    }
    *out = kv;
    return RK_OK;
}

void rk_kv_free(rk_kv_cache *kv) {
    if (!kv) return;
    rk_kv_truncate(kv, 0);
    free(kv->pages);
    free(kv);
}

rk_status rk_kv_reserve(rk_kv_cache *kv, int64_t n_tokens, rk_error *err) {
    if (n_tokens > kv->dims.n_ctx)
        return rk_error_set(err, RK_ERR_CONTEXT_FULL, "kv: %lld tokens exceed the context of %lld",
                            (long long)n_tokens, (long long)kv->dims.n_ctx);
    int64_t need = (n_tokens + RK_KV_PAGE_TOKENS - 1) / RK_KV_PAGE_TOKENS;
    for (; kv->n_pages < need; kv->n_pages++) {
        for (int64_t l = 0; l < kv->dims.n_layer; l++) {
            kv_page *p = &kv->pages[l * kv->max_pages + kv->n_pages];
            if (!p->keys) p->keys = malloc(RK_KV_PAGE_TOKENS * kv->key_stride * sizeof(float));
            if (!p->values)
                p->values = malloc(RK_KV_PAGE_TOKENS * kv->value_stride * sizeof(float));
            if (!p->keys || !p->values)
                return rk_error_set(err, RK_ERR_NO_MEMORY, "kv: out of memory for page %lld",
                                    (long long)kv->n_pages);
        }
    }
    return RK_OK;
}

void rk_kv_truncate(rk_kv_cache *kv, int64_t n_tokens) {
    int64_t keep = (n_tokens + RK_KV_PAGE_TOKENS - 1) / RK_KV_PAGE_TOKENS;
    for (int64_t l = 0; l < kv->dims.n_layer; l++) {
        for (int64_t i = keep; i < kv->max_pages; i++) {
            kv_page *p = &kv->pages[l * kv->max_pages + i];
            free(p->keys);
            free(p->values);
            p->keys = p->values = NULL;
        }
    }
    if (kv->n_pages > keep) kv->n_pages = keep;
}

float *rk_kv_key(const rk_kv_cache *kv, int64_t layer, int64_t head, int64_t pos) {
    const kv_page *p = &kv->pages[layer * kv->max_pages + pos / RK_KV_PAGE_TOKENS];
    const int64_t dk = kv->dims.head_dim_k;
    return p->keys + (size_t)((head * RK_KV_PAGE_TOKENS + pos % RK_KV_PAGE_TOKENS) * dk);
}

float *rk_kv_value(const rk_kv_cache *kv, int64_t layer, int64_t head, int64_t pos) {
    const kv_page *p = &kv->pages[layer * kv->max_pages + pos / RK_KV_PAGE_TOKENS];
    const int64_t dv = kv->dims.head_dim_v;
    return p->values + (size_t)((head * RK_KV_PAGE_TOKENS + pos % RK_KV_PAGE_TOKENS) * dv);
}

size_t rk_kv_bytes_per_token(const rk_kv_cache *kv) {
    return (size_t)kv->dims.n_layer * (kv->key_stride + kv->value_stride) * sizeof(float);
}

size_t rk_kv_bytes(const rk_kv_cache *kv) {
    return (size_t)(kv->n_pages * kv->dims.n_layer) * RK_KV_PAGE_TOKENS *
           (kv->key_stride + kv->value_stride) * sizeof(float);
}

const rk_kv_dims *rk_kv_get_dims(const rk_kv_cache *kv) { return &kv->dims; }
