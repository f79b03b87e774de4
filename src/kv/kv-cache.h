/*
 * kv-cache.h — the paged key/value cache of one sequence.
 *
 * Keys and values live in pages of RK_KV_PAGE_TOKENS consecutive positions per layer; a page
 * is allocated when the sequence first reaches it, so memory grows with the context actually
 * used rather than n_ctx up front. Within a page each KV head's positions are contiguous:
 * (n_head_kv, page_tokens, head_dim), so attention streams one head's keys (and values) with
 * unit stride. Values are stored as f32 here; codecs and tiers (DESIGN.md "KV cache") build on
 * this page structure.
 *
 * The cache takes plain dimensions, never a model object.
 */
#ifndef RK_KV_CACHE_H
#define RK_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "ringkv.h"

#define RK_KV_PAGE_TOKENS 256

typedef struct rk_kv_cache rk_kv_cache;

typedef struct rk_kv_dims {
    int64_t n_layer;
    int64_t n_head_kv;
    int64_t head_dim_k;
    int64_t head_dim_v;
    int64_t n_ctx;        /* positions the cache may hold */
} rk_kv_dims;

/* *out belongs to the caller. RK_ERR_INVALID_ARG for non-positive dimensions. */
rk_status rk_kv_create(const rk_kv_dims *dims, rk_kv_cache **out, rk_error *err);
void rk_kv_free(rk_kv_cache *kv);

/* Makes positions [0, n_tokens) addressable in every layer, allocating pages as needed.
 * RK_ERR_CONTEXT_FULL beyond n_ctx; RK_ERR_NO_MEMORY when a page cannot be allocated
 * (pages allocated before the failure stay and are reused). */
rk_status rk_kv_reserve(rk_kv_cache *kv, int64_t n_tokens, rk_error *err);

/* Frees the pages wholly beyond position n_tokens. */
void rk_kv_truncate(rk_kv_cache *kv, int64_t n_tokens);

/* The key (head_dim_k floats) / value (head_dim_v floats) of KV head `head` at position pos
 * in a layer. pos must be reserved. Positions pos+1 .. up to the end of pos's page follow
 * contiguously (row stride head_dim). */
float *rk_kv_key(const rk_kv_cache *kv, int64_t layer, int64_t head, int64_t pos);
float *rk_kv_value(const rk_kv_cache *kv, int64_t layer, int64_t head, int64_t pos);

/* Bytes one position takes in every layer (keys and values). */
size_t rk_kv_bytes_per_token(const rk_kv_cache *kv);

/* Bytes currently allocated for pages. */
size_t rk_kv_bytes(const rk_kv_cache *kv);

const rk_kv_dims *rk_kv_get_dims(const rk_kv_cache *kv);

#endif
