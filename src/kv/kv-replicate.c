/*
 * kv-replicate.c — a deep KV cache from copies of a short real prefill's pages (see
 * kv-replicate.h).
 *
 * The fill goes in chunks of CHUNK_PAGES page indices, every layer in turn, so that at any
 * moment all layers hold the same prefix of pages but one chunk: each layer's chunk is built
 * (records copied from the source pages), written to the disk tier in WRITE_PAGES batches, then
 * sealed and admitted like pages the forward pass seals (kv-cache.c), so the tiers demote and
 * evict as they go and RAM stays within the budgets. The I/O thread is idle throughout (it is
 * quiesced first and only rk_kv_acquire starts it), so the pages are ours to change.
 */
#include "kv/kv-replicate.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kv/kv-cache-impl.h"

#define CHUNK_PAGES 256 /* page indices per chunk: one admit (and one re-plan) per layer */
#define WRITE_PAGES 64  /* pages per write to the disk tier */

/* The source page copied into page `dst` when the cache held k pages per layer. */
static int64_t source_of(int64_t dst, int64_t k) {
    return k == 1 ? 0 : 1 + (dst - k) % (k - 1);
}

/* A layer that released pages behind a sliding window: it keeps its last pages only. */
static bool is_window_layer(const rk_kv_cache *kv, int64_t layer) { return kv->n_released[layer] > 0; }

static rk_status check_args(const rk_kv_cache *kv, int64_t n_tokens_now, int64_t depth, rk_error *err) {
    const int64_t P = RK_KV_PAGE_TOKENS;
    if (n_tokens_now <= 0 || n_tokens_now % P != 0)
        return rk_error_set(err, RK_ERR_INVALID_ARG,
                            "kv: replication starts from a whole number of pages (a positive multiple of "
                            "%d tokens), not %lld", RK_KV_PAGE_TOKENS, (long long)n_tokens_now);
    if (depth % P != 0 || depth < n_tokens_now || depth > kv->dims.n_ctx)
        return rk_error_set(err, RK_ERR_INVALID_ARG,
                            "kv: cannot replicate to depth %lld: it must be a multiple of %d between the %lld "
                            "tokens held and the context of %lld", (long long)depth, RK_KV_PAGE_TOKENS,
                            (long long)n_tokens_now, (long long)kv->dims.n_ctx);
    const int64_t k = n_tokens_now / P, end = depth / P;
    for (int64_t l = 0; l < kv->dims.n_layer; l++) {
        if (kv->n_pages != k || kv->n_sealed[l] != k)
            return rk_error_set(err, RK_ERR_INVALID_ARG,
                                "kv: replication needs exactly %lld tokens in sealed pages, but the cache has "
                                "%lld pages and layer %lld has %lld sealed", (long long)n_tokens_now,
                                (long long)kv->n_pages, (long long)l, (long long)kv->n_sealed[l]);
        const int64_t kept = k - kv->n_released[l];
        if (is_window_layer(kv, l) && end > k && end - kept < k)
            return rk_error_set(err, RK_ERR_INVALID_ARG,
                                "kv: cannot replicate to depth %lld: sliding-window layer %lld keeps its last "
                                "%lld pages, which move to the end of the new depth without overlapping "
                                "themselves: the depth must be %lld or at least %lld", (long long)depth,
                                (long long)l, (long long)kept, (long long)n_tokens_now,
                                (long long)((k + kept) * P));
    }
    return RK_OK;
}

/* Frees the records of pages first .. first+count-1 of `layer` that are built but not sealed. */
static void drop_unsealed(rk_kv_cache *kv, int64_t layer, int64_t first, int64_t count) {
    for (int64_t i = first; i < first + count; i++) {
        kv_page *p = kv_page_at(kv, layer, i);
        if (p->sealed) continue;
        kv_record_free(kv, p->rec);
        kv_page_attach(kv, p, NULL);
    }
}

/* Builds page dst of `layer` as an unsealed copy of page src (payload and key bounds). A cold
 * source is read back (evicting other layers only); the store writes the record's header. */
static rk_status build_copy(rk_kv_cache *kv, int64_t layer, int64_t dst, int64_t src, rk_error *err) {
    const int64_t H = kv->dims.n_head_kv;
    uint8_t *rec = kv_record_alloc(kv);
    if (!rec)
        return rk_error_set(err, RK_ERR_NO_MEMORY, "kv: out of memory replicating page %lld of layer %lld",
                            (long long)dst, (long long)layer);
    rk_status s = kv_page_copy_payload(kv, layer, src, rec + kv->payload_off, err);
    kv_page_attach(kv, kv_page_at(kv, layer, dst), rec);
    if (!s && kv->bounds)
        memcpy(kv->bounds + (size_t)((layer * kv->max_pages + dst) * H) * kv->bounds_bytes,
               kv->bounds + (size_t)((layer * kv->max_pages + src) * H) * kv->bounds_bytes,
               (size_t)H * kv->bounds_bytes);
    return s;
}

/* Writes built pages first .. first+count-1 of `layer` to the disk tier (if any). */
static rk_status write_built(rk_kv_cache *kv, int64_t layer, int64_t first, int64_t count, rk_error *err) {
    rk_status s = RK_OK;
    for (int64_t a = first; a < first + count && !s; a += WRITE_PAGES) {
        int64_t n = first + count - a < WRITE_PAGES ? first + count - a : WRITE_PAGES;
        s = kv_tiers_write_sealed(kv, layer, a, n, err);
    }
    return s;
}

/* Seals built pages first .. first+count-1 of `layer` (the layer then holds pages up to
 * first+count) and admits them to the tiers. */
static void seal_built(rk_kv_cache *kv, int64_t layer, int64_t first, int64_t count) {
    for (int64_t i = first; i < first + count; i++) {
        kv_page_at(kv, layer, i)->sealed = 1;
        kv->bytes += kv->rec_bytes;
    }
    kv->n_sealed[layer] = first + count;
    kv_tiers_admit_sealed(kv, layer, first, count);
}

/* Builds pages first .. first+count-1 of `layer` as copies of their sources, writes them to the
 * disk tier and seals and admits them. On failure the layer's chunk is left unbuilt. */
static rk_status fill_layer_chunk(rk_kv_cache *kv, int64_t layer, int64_t k, int64_t first, int64_t count,
                                  rk_error *err) {
    rk_status s = RK_OK;
    for (int64_t i = first; i < first + count && !s; i++) s = build_copy(kv, layer, i, source_of(i, k), err);
    if (!s) s = write_built(kv, layer, first, count, err);
    if (s) {
        drop_unsealed(kv, layer, first, count);
        return s;
    }
    seal_built(kv, layer, first, count);
    return RK_OK;
}

/* The sliding-window layers, in two phases so that a failure changes none of them: first each
 * one's kept pages [r, k) are copied to the end of the depth, [end-kept, end), and written to the
 * disk tier; then each releases its old pages and everything before end-kept, and seals the
 * copies. Decode at the depth reads only the window, which the copies cover. */
static rk_status fill_window_layers(rk_kv_cache *kv, int64_t k, int64_t end, rk_error *err) {
    rk_status s = RK_OK;
    int64_t l = 0;
    for (; l < kv->dims.n_layer && !s; l++) {
        if (!is_window_layer(kv, l)) continue;
        const int64_t r = kv->n_released[l], kept = k - r;
        for (int64_t j = 0; j < kept && !s; j++) s = build_copy(kv, l, end - kept + j, r + j, err);
        if (!s) s = write_built(kv, l, end - kept, kept, err);
        if (s) { /* undo this layer and the ones before it */
            for (int64_t u = 0; u <= l; u++) {
                if (!is_window_layer(kv, u)) continue;
                const int64_t ku = k - kv->n_released[u];
                drop_unsealed(kv, u, end - ku, ku);
                kv_tiers_release(kv, u, end - ku, end);
            }
        }
    }
    if (s) return s;
    for (l = 0; l < kv->dims.n_layer; l++) {
        if (!is_window_layer(kv, l)) continue;
        const int64_t kept = k - kv->n_released[l];
        rk_kv_release_before(kv, l, k * RK_KV_PAGE_TOKENS); /* the originals */
        kv->n_released[l] = end - kept;                      /* pages k .. end-kept-1 never held */
        seal_built(kv, l, end - kept, kept);
    }
    return RK_OK;
}

rk_status rk_kv_fill_replicated(rk_kv_cache *kv, int64_t n_tokens_now, int64_t depth, rk_error *err) {
    if (!kv) return rk_error_set(err, RK_ERR_INVALID_ARG, "kv: NULL cache");
    rk_status s = check_args(kv, n_tokens_now, depth, err);
    if (s) return s;
    kv_tiers_quiesce(kv);
    const int64_t k = n_tokens_now / RK_KV_PAGE_TOKENS, end = depth / RK_KV_PAGE_TOKENS;
    for (int64_t first = k; first < end && !s; first += CHUNK_PAGES) {
        int64_t count = end - first < CHUNK_PAGES ? end - first : CHUNK_PAGES;
        kv->n_pages = first + count; /* the layers not yet filled hold empty slots there */
        for (int64_t l = 0; l < kv->dims.n_layer && !s; l++)
            if (!is_window_layer(kv, l)) s = fill_layer_chunk(kv, l, k, first, count, err);
    }
    if (!s && end > k) s = fill_window_layers(kv, k, end, err);
    if (s) {
        rk_error undo; /* truncating to the pages held before (a page boundary) cannot fail */
        if (rk_kv_truncate(kv, n_tokens_now, &undo) != RK_OK)
            return rk_error_set(err, RK_ERR_INTERNAL, "kv: undoing a failed replication: %s", undo.msg);
        return rk_error_prefix(err, s, "kv: replicating %lld tokens to depth %lld failed (undone: the cache "
                                       "holds the %lld tokens again)", (long long)n_tokens_now, (long long)depth,
                               (long long)n_tokens_now);
    }
    return RK_OK;
}
