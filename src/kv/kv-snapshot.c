/*
 * kv-snapshot.c — writing a KV cache's state to a byte stream and reading it back into an
 * empty cache of the same shape and codecs (kv-cache.h: rk_kv_save / rk_kv_load). A server
 * uses it to keep sessions across restarts without running their prompts again.
 *
 * The stream is the cache's own bytes, not a re-encoding: sealed pages go as their codec
 * payloads (read back from the disk tier when cold), the open tail page and the sink rows as
 * f32, key bounds as computed at sealing. Loading installs the same bytes, so attention after a
 * load computes exactly what it computed before the save. Layout (little-endian, host floats):
 *
 *   header   magic "RKKVSNP1", n_layer, n_head_kv, head_dim_k, head_dim_v, n_sink, payload
 *            bytes, bounds bytes, key and value codec names (32 bytes each), n_tokens
 *   per layer: n_released, n_sealed, [sink rows of keys, of values: when the layer has them],
 *            sealed pages n_released .. n_sealed-1 (payload [+ bounds per head]),
 *            open pages n_sealed .. n_pages-1 (f32 keys, f32 values)
 *
 * The stream carries no integrity check of its own: the caller seals it (the server does, with
 * the session's key). Bad streams are refused by their shape (dimensions, codecs, counts).
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kv/kv-cache-impl.h"
#include "kv/kv-codec.h"

#define SNAP_MAGIC "RKKVSNP1"

typedef struct snap_header {
    char magic[8];
    int64_t n_layer, n_head_kv, head_dim_k, head_dim_v, n_sink;
    uint64_t payload_bytes, bounds_bytes;
    char codec[2][32];
    int64_t n_tokens;
} snap_header;

static size_t open_page_bytes(const rk_kv_cache *kv, int r) { return kv_layer_page_bytes(kv, kv->open_codec[r]); }

static void make_header(const rk_kv_cache *kv, int64_t n_tokens, snap_header *h) {
    memset(h, 0, sizeof *h);
    memcpy(h->magic, SNAP_MAGIC, 8);
    h->n_layer = kv->dims.n_layer;
    h->n_head_kv = kv->dims.n_head_kv;
    h->head_dim_k = kv->dims.head_dim_k;
    h->head_dim_v = kv->dims.head_dim_v;
    h->n_sink = kv->config.n_sink;
    h->payload_bytes = kv->payload_bytes;
    h->bounds_bytes = kv->bounds ? kv->bounds_bytes : 0;
    rk_kv_codec_spec_name(&kv->config.key_codec, h->codec[0], sizeof h->codec[0]);
    rk_kv_codec_spec_name(&kv->config.value_codec, h->codec[1], sizeof h->codec[1]);
    h->n_tokens = n_tokens;
}

static uint8_t *bounds_of(const rk_kv_cache *kv, int64_t layer, int64_t page) {
    return kv->bounds + (layer * kv->max_pages + page) * kv->dims.n_head_kv * kv->bounds_bytes;
}

/* page: payload_bytes of scratch for a sealed page's plain bytes. */
static rk_status save_layer(rk_kv_cache *kv, int64_t l, uint8_t *page, rk_stream_write_fn write, void *user,
                            rk_error *err) {
    int64_t counts[4] = {kv->n_released[l], kv->n_sealed[l], 0, 0}; /* + which roles have sink rows */
    for (int r = 0; r < 2; r++) counts[2 + r] = kv->sink[r] && kv->sink[r][l];
    rk_status s = write(user, counts, sizeof counts, err);
    for (int r = 0; r < 2 && !s; r++)
        if (counts[2 + r]) s = write(user, kv->sink[r][l], kv_sink_bytes(kv, r), err);
    for (int64_t i = counts[0]; i < counts[1] && !s; i++) {
        s = kv_page_copy_payload(kv, l, i, page, err); /* reads back a cold page, opens a locked one */
        if (!s) s = write(user, page, kv->payload_bytes, err);
        if (!s && kv->bounds) s = write(user, bounds_of(kv, l, i), (size_t)kv->dims.n_head_kv * kv->bounds_bytes, err);
    }
    for (int64_t i = counts[1]; i < kv->n_pages && !s; i++) {
        const kv_page *p = kv_page_at(kv, l, i);
        s = write(user, p->keys, open_page_bytes(kv, 0), err);
        if (!s) s = write(user, p->values, open_page_bytes(kv, 1), err);
    }
    return s;
}

rk_status rk_kv_save(rk_kv_cache *kv, int64_t n_tokens, rk_stream_write_fn write, void *user, rk_error *err) {
    kv_tiers_quiesce(kv);
    snap_header h;
    make_header(kv, n_tokens, &h);
    uint8_t *page = malloc(kv->payload_bytes);
    if (!page) return rk_error_set(err, RK_ERR_NO_MEMORY, "kv snapshot: out of memory");
    rk_status s = write(user, &h, sizeof h, err);
    for (int64_t l = 0; l < kv->dims.n_layer && !s; l++) s = save_layer(kv, l, page, write, user, err);
    kv_wipe(page, kv->payload_bytes);
    free(page);
    return s;
}

static rk_status check_header(const rk_kv_cache *kv, const snap_header *got, rk_error *err) {
    snap_header want;
    make_header(kv, got->n_tokens, &want);
    if (memcmp(got->magic, SNAP_MAGIC, 8) != 0)
        return rk_error_set(err, RK_ERR_FORMAT, "kv snapshot: not a KV snapshot (bad magic)");
    if (memcmp(got->codec, want.codec, sizeof want.codec) != 0)
        return rk_error_set(err, RK_ERR_FORMAT, "kv snapshot: codecs %.31s/%.31s, this cache uses %s/%s",
                            got->codec[0], got->codec[1], want.codec[0], want.codec[1]);
    if (got->n_layer != want.n_layer || got->n_head_kv != want.n_head_kv || got->head_dim_k != want.head_dim_k ||
        got->head_dim_v != want.head_dim_v || got->n_sink != want.n_sink || got->payload_bytes != want.payload_bytes ||
        got->bounds_bytes != want.bounds_bytes)
        return rk_error_set(err, RK_ERR_FORMAT,
                            "kv snapshot: made for another model or cache shape (%lld layers x %lld KV heads, "
                            "this cache has %lld x %lld)", (long long)got->n_layer, (long long)got->n_head_kv,
                            (long long)want.n_layer, (long long)want.n_head_kv);
    if (got->n_tokens < 0 || got->n_tokens > kv->dims.n_ctx)
        return rk_error_set(err, RK_ERR_FORMAT, "kv snapshot: %lld tokens do not fit a context of %lld",
                            (long long)got->n_tokens, (long long)kv->dims.n_ctx);
    return RK_OK;
}

/* Turns page i (open, from rk_kv_reserve) into a sealed page holding the stream's payload. */
static rk_status load_sealed_page(rk_kv_cache *kv, int64_t l, int64_t i, rk_stream_read_fn read, void *user,
                                  rk_error *err) {
    kv_page *p = kv_page_at(kv, l, i);
    uint8_t *rec = kv_record_alloc(kv);
    if (!rec) return rk_error_set(err, RK_ERR_NO_MEMORY, "kv snapshot: out of memory for page %lld", (long long)i);
    rk_status s = read(user, rec + kv->payload_off, kv->payload_bytes, err);
    if (!s && kv->bounds) s = read(user, bounds_of(kv, l, i), (size_t)kv->dims.n_head_kv * kv->bounds_bytes, err);
    if (s) {
        kv_record_free(kv, rec);
        return s;
    }
    free(p->keys);
    free(p->values);
    kv->bytes -= open_page_bytes(kv, 0) + open_page_bytes(kv, 1);
    kv_page_attach(kv, p, rec);
    p->sealed = 1;
    kv->bytes += kv->rec_bytes;
    return RK_OK;
}

/* Reads the sink rows a layer had (role r: has[r]); the cache must keep them for the same roles. */
static rk_status load_sinks(rk_kv_cache *kv, int64_t l, const int64_t has[2], int64_t sealed, int64_t released,
                            rk_stream_read_fn read, void *user, rk_error *err) {
    for (int r = 0; r < 2; r++) {
        const int64_t expect = kv_role_has_sinks(kv, r) && sealed > 0 && released == 0;
        if (has[r] != expect || (expect && !kv->sink[r]))
            return rk_error_set(err, RK_ERR_FORMAT, "kv snapshot: layer %lld: sink rows do not match the cache",
                                (long long)l);
        if (!expect) continue;
        float *rows = malloc(kv_sink_bytes(kv, r));
        if (!rows) return rk_error_set(err, RK_ERR_NO_MEMORY, "kv snapshot: out of memory for sink rows");
        rk_status s = read(user, rows, kv_sink_bytes(kv, r), err);
        if (s) {
            free(rows);
            return s;
        }
        kv->sink[r][l] = rows;
        kv->bytes += kv_sink_bytes(kv, r);
    }
    return RK_OK;
}

static rk_status load_layer(rk_kv_cache *kv, int64_t l, rk_stream_read_fn read, void *user, rk_error *err) {
    int64_t counts[4];
    rk_status s = read(user, counts, sizeof counts, err);
    if (s) return s;
    const int64_t released = counts[0], sealed = counts[1];
    if (released < 0 || sealed < released || sealed > kv->n_pages)
        return rk_error_set(err, RK_ERR_FORMAT, "kv snapshot: layer %lld: %lld released and %lld sealed pages of %lld",
                            (long long)l, (long long)released, (long long)sealed, (long long)kv->n_pages);
    s = load_sinks(kv, l, counts + 2, sealed, released, read, user, err);
    if (s) return s;
    for (int64_t i = 0; i < released; i++) { /* freed behind a sliding window: no data */
        kv_page *p = kv_page_at(kv, l, i);
        free(p->keys);
        free(p->values);
        p->keys = p->values = NULL;
        kv->bytes -= open_page_bytes(kv, 0) + open_page_bytes(kv, 1);
    }
    kv->n_released[l] = released;
    kv->n_sealed[l] = released;
    int64_t loaded = 0;
    while (released + loaded < sealed && !s)
        if (!(s = load_sealed_page(kv, l, released + loaded, read, user, err))) loaded++;
    if (loaded > 0) { /* the loaded pages enter the tiers (and the disk tier) like freshly sealed ones */
        kv->n_sealed[l] = released + loaded;
        rk_status w = kv_tiers_write_sealed(kv, l, released, loaded, err);
        if (!w) kv_tiers_admit_sealed(kv, l, released, loaded);
        if (!s) s = w;
    }
    for (int64_t i = sealed; i < kv->n_pages && !s; i++) {
        kv_page *p = kv_page_at(kv, l, i);
        s = read(user, p->keys, open_page_bytes(kv, 0), err);
        if (!s) s = read(user, p->values, open_page_bytes(kv, 1), err);
    }
    return s;
}

rk_status rk_kv_load(rk_kv_cache *kv, rk_stream_read_fn read, void *user, int64_t *n_tokens, rk_error *err) {
    for (int64_t l = 0; l < kv->dims.n_layer; l++)
        if (kv->n_sealed[l] > 0 || kv->n_pages > 0)
            return rk_error_set(err, RK_ERR_INVALID_ARG, "kv snapshot: load into a cache that already holds tokens");
    snap_header h;
    rk_status s = read(user, &h, sizeof h, err);
    if (!s) s = check_header(kv, &h, err);
    if (!s) s = rk_kv_reserve(kv, h.n_tokens, err);
    for (int64_t l = 0; l < kv->dims.n_layer && !s; l++) s = load_layer(kv, l, read, user, err);
    if (s) { /* back to empty */
        rk_error ignored;
        rk_kv_truncate(kv, 0, &ignored);
        return s;
    }
    *n_tokens = h.n_tokens;
    return RK_OK;
}
