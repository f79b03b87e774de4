/*
 * kv-block.c — one layer's sealed pages as one contiguous buffer (kv-cache.h: rk_kv_block_*):
 * what ring attention passes from rank to rank (DESIGN.md, "Ring attention").
 *
 * A block is the cache's own bytes, not a re-encoding: a receiving rank reads the pages through
 * the same codecs in the same way as the rank that holds them, so attention over a block equals
 * attention over the holder's pages. Layout:
 *
 *   [sink key rows (n_sink, n_head_kv, head_dim_k) f32]     when n_sink > 0 and keys are lossy
 *   [sink value rows (n_sink, n_head_kv, head_dim_v) f32]   when n_sink > 0 and values are lossy
 *   n_pages × payload (n_head_kv key codec pages, then n_head_kv value codec pages)
 *
 * Sink rows travel only with the sequence's page 0 (the exact first positions, see
 * rk_kv_config.n_sink), which is the block's page 0 then.
 */
#include <string.h>

#include "core/error.h"
#include "kv/kv-cache-impl.h"

/* Bytes of role r's sink rows in a block that carries n_sink of them (0 for an f32 codec). */
static size_t block_sink_bytes(const rk_kv_cache *kv, int r, int64_t n_sink) {
    if (n_sink <= 0 || rk_kv_codec_get_spec(kv->sealed_codec[r])->kind == RK_KV_CODEC_F32) return 0;
    const int64_t dim = r == 0 ? kv->dims.head_dim_k : kv->dims.head_dim_v;
    return (size_t)(kv->dims.n_head_kv * n_sink * dim) * sizeof(float);
}

size_t rk_kv_block_bytes(const rk_kv_cache *kv, int64_t n_pages, int64_t n_sink) {
    return block_sink_bytes(kv, 0, n_sink) + block_sink_bytes(kv, 1, n_sink) + (size_t)n_pages * kv->payload_bytes;
}

int64_t rk_kv_block_sinks(const rk_kv_cache *kv, int64_t layer, int64_t first) {
    if (first != 0 || kv->n_sealed[layer] == 0 || kv->n_released[layer] > 0) return 0;
    return kv->config.n_sink;
}

rk_status rk_kv_block_export(rk_kv_cache *kv, int64_t layer, int64_t first, int64_t n_pages, uint8_t *buf,
                             rk_error *err) {
    if (first < kv->n_released[layer] || first + n_pages > kv->n_sealed[layer])
        return rk_error_set(err, RK_ERR_INTERNAL, "kv: block of pages %lld..%lld of layer %lld: only %lld..%lld are sealed",
                            (long long)first, (long long)(first + n_pages - 1), (long long)layer,
                            (long long)kv->n_released[layer], (long long)kv->n_sealed[layer] - 1);
    const int64_t n_sink = n_pages > 0 ? rk_kv_block_sinks(kv, layer, first) : 0;
    for (int r = 0; r < 2; r++) {
        const size_t bytes = block_sink_bytes(kv, r, n_sink);
        if (bytes == 0) continue;
        if (!kv->sink[r] || !kv->sink[r][layer])
            return rk_error_set(err, RK_ERR_INTERNAL, "kv: layer %lld has no sink rows to export", (long long)layer);
        memcpy(buf, kv->sink[r][layer], bytes);
        buf += bytes;
    }
    for (int64_t i = first; i < first + n_pages; i++) {
        rk_status s = kv_page_copy_payload(kv, layer, i, buf, err); /* cold: rk_kv_acquire usually read it */
        if (s) return s;
        buf += kv->payload_bytes;
    }
    return RK_OK;
}

void rk_kv_block_get_page(const rk_kv_cache *kv, const rk_kv_block *block, int64_t layer, int64_t head,
                          int64_t page, rk_kv_page_view *view) {
    const size_t sink_k = block_sink_bytes(kv, 0, block->n_sink), sink_v = block_sink_bytes(kv, 1, block->n_sink);
    const uint8_t *payload = block->data + sink_k + sink_v + (size_t)page * kv->payload_bytes;
    view->key_codec = kv->sealed_codec[0];
    view->value_codec = kv->sealed_codec[1];
    view->keys = payload + head * rk_kv_codec_page_bytes(view->key_codec);
    view->values = payload + kv->key_bytes + head * rk_kv_codec_page_bytes(view->value_codec);
    view->stream = layer * kv->dims.n_head_kv + head;
    view->n_exact = 0;
    view->exact_key_codec = kv->open_codec[0];
    view->exact_value_codec = kv->open_codec[1];
    view->exact_keys = view->exact_values = NULL;
    if (page == 0 && block->n_sink > 0) { /* as rk_kv_get_page reads a sealed page 0 */
        const int64_t S = block->n_sink;
        const uint8_t *sinks = block->data;
        view->n_exact = S;
        view->exact_keys = sink_k ? sinks + (size_t)(head * S * kv->dims.head_dim_k) * sizeof(float)
                                  : view->keys;
        view->exact_values = sink_v ? sinks + sink_k + (size_t)(head * S * kv->dims.head_dim_v) * sizeof(float)
                                    : view->values;
    }
}
