/*
 * kv-cache.c — paged key/value storage with open f32 tail pages and sealed codec pages (see
 * kv-cache.h).
 *
 * A layer's page holds n_head_kv codec pages per role back to back, so head h of a page is at
 * h * page_bytes of the codec that page is in (f32 while open). Pages fill in order, so the
 * sealed pages of a layer are always a prefix: n_sealed[layer].
 *
 * A sealed page is one record (kv-cache-impl.h): keys then values, in the sealed codecs; with a
 * disk tier it is also written to the page files when sealed, and may later live only there
 * (kv-tier.c decides; acquire reads it back before attention needs it).
 *
 * Sinks: when page 0 of a layer is sealed, the f32 rows of positions 0 .. n_sink-1 of every
 * head are copied to sink[r][layer] ((n_head_kv, n_sink, head_dim) floats) first, and reads of
 * page 0 take those rows from there (rk_kv_page_view.n_exact). They go when page 0 does (freed,
 * released, or re-opened: then they overwrite the decoded rows, so nothing changes).
 */
#include "kv/kv-cache.h"
#include "kv/kv-cache-impl.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kv/kv-sparse.h"
#include "quant/quant.h"

rk_kv_config rk_kv_config_f32(int simd_level) {
    rk_kv_config c = {{RK_KV_CODEC_F32, 0, false}, {RK_KV_CODEC_F32, 0, false}, simd_level, 0, 0,
                      {0, 0, NULL, 0, 0, NULL}, false};
    return c;
}

/* Page i of `layer` is held in the configured codecs (else open, in f32). */
static bool page_is_encoded(const rk_kv_cache *kv, int64_t layer, int64_t i) {
    return kv_page_at(kv, layer, i)->sealed;
}

size_t kv_layer_page_bytes(const rk_kv_cache *kv, const rk_kv_codec *c) {
    return (size_t)kv->dims.n_head_kv * rk_kv_codec_page_bytes(c);
}

size_t kv_sink_bytes(const rk_kv_cache *kv, int r) {
    const int64_t dim = r == 0 ? kv->dims.head_dim_k : kv->dims.head_dim_v;
    return (size_t)(kv->dims.n_head_kv * kv->config.n_sink * dim) * sizeof(float);
}

static void free_sinks(rk_kv_cache *kv, int64_t layer) {
    for (int r = 0; r < 2; r++)
        if (kv->sink[r] && kv->sink[r][layer]) {
            free(kv->sink[r][layer]);
            kv->sink[r][layer] = NULL;
            kv->bytes -= kv_sink_bytes(kv, r);
        }
}

static rk_status make_codecs(rk_kv_cache *kv, rk_error *err) {
    const rk_kv_dims *d = &kv->dims;
    const int64_t streams = d->n_layer * d->n_head_kv, dim[2] = {d->head_dim_k, d->head_dim_v};
    const rk_kv_codec_spec *spec[2] = {&kv->config.key_codec, &kv->config.value_codec};
    const rk_kv_codec_spec f32 = {RK_KV_CODEC_F32, 0, false};
    for (int r = 0; r < 2; r++) {
        rk_status s = rk_kv_codec_create(&f32, (rk_kv_role)r, dim[r], streams,
                                         kv->config.simd_level, kv->config.seed,
                                         &kv->open_codec[r], err);
        if (!s)
            s = rk_kv_codec_create(spec[r], (rk_kv_role)r, dim[r], streams, kv->config.simd_level,
                                   kv->config.seed, &kv->sealed_codec[r], err);
        if (s) return s;
    }
    return RK_OK;
}

rk_status rk_kv_create(const rk_kv_dims *dims, const rk_kv_config *config, rk_kv_cache **out,
                       rk_error *err) {
    *out = NULL;
    if (dims->n_layer <= 0 || dims->n_head_kv <= 0 || dims->head_dim_k <= 0 ||
        dims->head_dim_v <= 0 || dims->n_ctx <= 0)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "kv: dimensions must be positive");
    if (config->n_sink < 0 || config->n_sink > RK_KV_PAGE_TOKENS)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "kv: %lld sink positions (0 .. %d)",
                            (long long)config->n_sink, RK_KV_PAGE_TOKENS);
    rk_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) return rk_error_set(err, RK_ERR_NO_MEMORY, "kv: out of memory");
    kv->dims = *dims;
    kv->config = *config;
    kv->config.tiers.disk_dir = NULL; /* borrowed only until create returns */
    kv->max_pages = (dims->n_ctx + RK_KV_PAGE_TOKENS - 1) / RK_KV_PAGE_TOKENS;
    kv->pages = calloc((size_t)(dims->n_layer * kv->max_pages), sizeof *kv->pages);
    kv->n_sealed = calloc((size_t)dims->n_layer, sizeof *kv->n_sealed);
    kv->n_released = calloc((size_t)dims->n_layer, sizeof *kv->n_released);
    for (int r = 0; r < 2; r++)
        kv->sink[r] = calloc((size_t)dims->n_layer, sizeof *kv->sink[r]);
    rk_status s = RK_OK;
    if (!kv->pages || !kv->n_sealed || !kv->n_released || !kv->sink[0] || !kv->sink[1])
        s = rk_error_set(err, RK_ERR_NO_MEMORY, "kv: out of memory for %lld page slots",
                         (long long)(dims->n_layer * kv->max_pages));
    if (!s) s = make_codecs(kv, err);
    if (!s) {
        kv->key_bytes = kv_layer_page_bytes(kv, kv->sealed_codec[0]);
        kv->payload_bytes = kv->key_bytes + kv_layer_page_bytes(kv, kv->sealed_codec[1]);
        kv->rec_bytes = kv->payload_bytes; /* kv_tiers_create widens it for a disk tier */
        kv->payload_off = 0;
        if (config->key_bounds) {
            kv->bounds_bytes = rk_kv_bounds_bytes(dims->head_dim_k);
            size_t n = (size_t)(dims->n_layer * kv->max_pages * dims->n_head_kv) * kv->bounds_bytes;
            kv->bounds = malloc(n);
            if (!kv->bounds)
                s = rk_error_set(err, RK_ERR_NO_MEMORY, "kv: out of memory for %.1f MiB of key bounds",
                                 n / 1048576.0);
        }
        if (!s) s = kv_tiers_create(kv, &config->tiers, err);
        if (!s)
            s = kv_record_pool_create(kv->rec_bytes, kv->tiers.store ? rk_kv_store_align(kv->tiers.store) : 64,
                                      &kv->records, err);
    }
    if (s) {
        rk_kv_free(kv);
        return s;
    }
    *out = kv;
    return RK_OK;
}

/* Frees a page buffer of n bytes; in a cache with a sealer it is wiped first, so no plain
 * page outlives its session in freed memory. */
static void free_page_buffer(const rk_kv_cache *kv, void *buf, size_t n) {
    if (buf && kv->tiers.sealer) kv_wipe(buf, n);
    free(buf);
}

/* The same for a page's record, which goes back to the record pool. */
static void free_page_record(const rk_kv_cache *kv, uint8_t *rec) {
    if (rec && kv->tiers.sealer) kv_wipe(rec, kv->rec_bytes);
    kv_record_free(kv, rec);
}

/* Frees the f32 rows a page kept after being sealed in the current step. */
static void free_retired(rk_kv_cache *kv, kv_page *p) {
    for (int r = 0; r < 2; r++)
        if (p->retired[r]) {
            free_page_buffer(kv, p->retired[r], kv_layer_page_bytes(kv, kv->open_codec[r]));
            p->retired[r] = NULL;
            kv->bytes -= kv_layer_page_bytes(kv, kv->open_codec[r]);
        }
}

uint8_t *kv_record_alloc(const rk_kv_cache *kv) { return kv_record_pool_get(kv->records); }

void kv_record_free(const rk_kv_cache *kv, uint8_t *rec) { kv_record_pool_put(kv->records, rec); }

void kv_page_attach(const rk_kv_cache *kv, kv_page *p, uint8_t *rec) {
    p->rec = rec;
    p->keys = rec ? rec + kv->payload_off : NULL;
    p->values = rec ? p->keys + kv->key_bytes : NULL;
}

/* Frees a page's RAM: its record when sealed (the tiers forget it), its f32 rows when open. */
static void free_page(rk_kv_cache *kv, int64_t layer, int64_t i) {
    kv_page *p = kv_page_at(kv, layer, i);
    free_retired(kv, p);
    if (i == 0) free_sinks(kv, layer);
    if (page_is_encoded(kv, layer, i)) {
        p->sealed = 0;
        kv_tiers_forget_page(kv, p);
        if (p->rec) kv->bytes -= kv->rec_bytes;
        free_page_record(kv, p->rec);
        kv_page_attach(kv, p, NULL);
        return;
    }
    if (p->keys) kv->bytes -= kv_layer_page_bytes(kv, kv->open_codec[0]);
    if (p->values) kv->bytes -= kv_layer_page_bytes(kv, kv->open_codec[1]);
    free_page_buffer(kv, p->keys, kv_layer_page_bytes(kv, kv->open_codec[0]));
    free_page_buffer(kv, p->values, kv_layer_page_bytes(kv, kv->open_codec[1]));
    p->keys = p->values = NULL;
}

void rk_kv_free(rk_kv_cache *kv) {
    if (!kv) return;
    kv_tiers_quiesce(kv);
    if (kv->pages && kv->n_sealed)
        for (int64_t l = 0; l < kv->dims.n_layer; l++)
            for (int64_t i = 0; i < kv->max_pages; i++) free_page(kv, l, i);
    kv_tiers_free(kv);
    kv_record_pool_free(kv->records);
    for (int r = 0; r < 2; r++) {
        rk_kv_codec_free(kv->open_codec[r]);
        rk_kv_codec_free(kv->sealed_codec[r]);
        free(kv->sink[r]);
    }
    free(kv->pages);
    free(kv->bounds);
    free(kv->n_sealed);
    free(kv->n_released);
    free(kv);
}

rk_status rk_kv_reserve(rk_kv_cache *kv, int64_t n_tokens, rk_error *err) {
    if (n_tokens > kv->dims.n_ctx)
        return rk_error_set(err, RK_ERR_CONTEXT_FULL, "kv: %lld tokens exceed the context of %lld",
                            (long long)n_tokens, (long long)kv->dims.n_ctx);
    int64_t need = (n_tokens + RK_KV_PAGE_TOKENS - 1) / RK_KV_PAGE_TOKENS;
    const size_t kb = kv_layer_page_bytes(kv, kv->open_codec[0]), vb = kv_layer_page_bytes(kv, kv->open_codec[1]);
    for (; kv->n_pages < need; kv->n_pages++) {
        for (int64_t l = 0; l < kv->dims.n_layer; l++) {
            kv_page *p = &kv->pages[l * kv->max_pages + kv->n_pages];
            if (!p->keys && (p->keys = malloc(kb)) != NULL) kv->bytes += kb;
            if (!p->values && (p->values = malloc(vb)) != NULL) kv->bytes += vb;
            if (!p->keys || !p->values)
                return rk_error_set(err, RK_ERR_NO_MEMORY, "kv: out of memory for page %lld (%zu bytes)",
                                    (long long)kv->n_pages, kb + vb);
        }
    }
    return RK_OK;
}

/* Sealing: a record is allocated for each page first (serially, so a failure leaves every page
 * as it was), then (page, head, role) units are encoded into the records on the pool, then the
 * records go to the disk tier (if any); only when all of that worked do the pages switch over.
 * Their f32 buffers are kept as retired rows until rk_kv_drop_retired. */
typedef struct seal_job {
    rk_kv_cache *kv;
    int64_t layer, first, count;   /* pages first .. first+count-1 */
    uint8_t **recs;                /* (count) new records */
} seal_job;

static void seal_units(void *arg, int ith, int nth) {
    seal_job *job = arg;
    rk_kv_cache *kv = job->kv;
    const int64_t H = kv->dims.n_head_kv;
    int64_t begin, end;
    rk_pool_split(job->count * H * 2, ith, nth, &begin, &end);
    for (int64_t u = begin; u < end; u++) {
        int64_t i = u / (H * 2), h = (u / 2) % H;
        int r = (int)(u % 2);
        const kv_page *p = kv_page_at(kv, job->layer, job->first + i);
        const uint8_t *src = r == 0 ? p->keys : p->values;
        const rk_kv_codec *c = kv->sealed_codec[r];
        uint8_t *dst = job->recs[i] + kv->payload_off + (r == 0 ? 0 : kv->key_bytes);
        const float *rows = (const float *)(src + h * rk_kv_codec_page_bytes(kv->open_codec[r]));
        rk_kv_codec_get_ops(c)->encode(c, job->layer * H + h, rows, dst + h * rk_kv_codec_page_bytes(c));
        if (r == 0 && kv->bounds) /* of the keys as they were before encoding */
            rk_kv_bounds_compute(rows, RK_KV_PAGE_TOKENS, kv->dims.head_dim_k,
                                 kv->bounds + ((job->layer * kv->max_pages + job->first + i) * H + h) * kv->bounds_bytes);
    }
}

/* Moves rows 0 .. n_sink-1 of every head of role r between page 0's f32 buffer (page) and the
 * sink copy (sink): into the sink when sealing, back into the page when re-opening. */
static void copy_sink_rows(const rk_kv_cache *kv, int r, uint8_t *page, float *sink, bool to_sink) {
    const int64_t dim = r == 0 ? kv->dims.head_dim_k : kv->dims.head_dim_v, S = kv->config.n_sink;
    const size_t head_bytes = rk_kv_codec_page_bytes(kv->open_codec[r]), n = (size_t)(S * dim) * sizeof(float);
    for (int64_t h = 0; h < kv->dims.n_head_kv; h++) {
        if (to_sink)
            memcpy(sink + h * S * dim, page + (size_t)h * head_bytes, n);
        else
            memcpy(page + (size_t)h * head_bytes, sink + h * S * dim, n);
    }
}

bool kv_role_has_sinks(const rk_kv_cache *kv, int r) {
    return kv->config.n_sink > 0 && rk_kv_codec_get_spec(kv->sealed_codec[r])->kind != RK_KV_CODEC_F32;
}

/* Allocates the records of `count` pages and, when page 0 is among them, its sink rows. */
static rk_status alloc_seal_buffers(rk_kv_cache *kv, int64_t layer, int64_t first, int64_t count,
                                    uint8_t **recs, float **sinks, rk_error *err) {
    for (int64_t i = 0; i < count; i++)
        if ((recs[i] = kv_record_alloc(kv)) == NULL)
            return rk_error_set(err, RK_ERR_NO_MEMORY, "kv: out of memory sealing page %lld of layer %lld",
                                (long long)(first + i), (long long)layer);
    for (int r = 0; r < 2 && first == 0; r++)
        if (kv_role_has_sinks(kv, r) && (sinks[r] = malloc(kv_sink_bytes(kv, r))) == NULL)
            return rk_error_set(err, RK_ERR_NO_MEMORY, "kv: out of memory for the sink rows of layer %lld",
                                (long long)layer);
    return RK_OK;
}

rk_status rk_kv_seal_full_pages(rk_kv_cache *kv, int64_t layer, int64_t n_tokens, rk_pool *pool,
                                rk_error *err) {
    int64_t full = n_tokens / RK_KV_PAGE_TOKENS;
    if (full > kv->n_pages) full = kv->n_pages;
    int64_t first = kv->n_sealed[layer], count = full - first;
    if (count <= 0) return RK_OK;
    uint8_t **recs = calloc((size_t)count, sizeof *recs);
    if (!recs) return rk_error_set(err, RK_ERR_NO_MEMORY, "kv: out of memory sealing pages");
    float *sinks[2] = {NULL, NULL}; /* page 0's sink rows, for roles that get encoded */
    rk_status s = alloc_seal_buffers(kv, layer, first, count, recs, sinks, err);
    if (!s) {
        seal_job job = {kv, layer, first, count, recs};
        if (pool)
            rk_pool_run(pool, seal_units, &job);
        else
            seal_units(&job, 0, 1);
        for (int64_t i = 0; i < count; i++) { /* attach first: the disk tier writes from them */
            kv_page *p = kv_page_at(kv, layer, first + i);
            p->retired[0] = p->keys;
            p->retired[1] = p->values;
            kv_page_attach(kv, p, recs[i]);
        }
        s = kv_tiers_write_sealed(kv, layer, first, count, err);
        for (int64_t i = 0; i < count; i++) {
            kv_page *p = kv_page_at(kv, layer, first + i);
            if (s) { /* undo: the page stays open with its f32 rows */
                p->rec = NULL;
                p->keys = p->retired[0];
                p->values = p->retired[1];
                p->retired[0] = p->retired[1] = NULL;
            } else {
                p->sealed = 1;
                kv->bytes += kv->rec_bytes; /* the retired rows still count until dropped */
            }
        }
    }
    if (!s) {
        const kv_page *p0 = kv_page_at(kv, layer, 0);
        uint8_t *page0[2] = {p0->retired[0], p0->retired[1]};
        for (int r = 0; r < 2; r++)
            if (sinks[r]) {
                copy_sink_rows(kv, r, page0[r], sinks[r], true);
                kv->sink[r][layer] = sinks[r];
                kv->bytes += kv_sink_bytes(kv, r);
            }
        kv->n_sealed[layer] = full;
        kv_tiers_admit_sealed(kv, layer, first, count);
    } else {
        for (int64_t i = 0; i < count; i++) kv_record_free(kv, recs[i]);
        free(sinks[0]);
        free(sinks[1]);
    }
    free(recs);
    return s;
}

/* Decodes sealed page i of `layer` back into f32 buffers (the page becomes open), reading it
 * back from disk first when it is cold. */
static rk_status reopen_page(rk_kv_cache *kv, int64_t layer, int64_t i, rk_error *err) {
    kv_page *p = kv_page_at(kv, layer, i);
    rk_status s = p->rec ? RK_OK : kv_tiers_fetch_now(kv, layer, i, err);
    if (!s) s = kv_unlock_page(kv, p, err);
    if (s) return s;
    uint8_t *fresh[2];
    for (int r = 0; r < 2; r++) {
        fresh[r] = malloc(kv_layer_page_bytes(kv, kv->open_codec[r]));
        if (!fresh[r]) {
            free(fresh[0]);
            return rk_error_set(err, RK_ERR_NO_MEMORY, "kv: out of memory re-opening page %lld of layer %lld",
                                (long long)i, (long long)layer);
        }
    }
    const int64_t H = kv->dims.n_head_kv;
    const uint8_t *src[2] = {p->keys, p->values};
    for (int r = 0; r < 2; r++) {
        const rk_kv_codec *c = kv->sealed_codec[r];
        for (int64_t h = 0; h < H; h++)
            rk_kv_codec_get_ops(c)->decode(c, layer * H + h, src[r] + h * rk_kv_codec_page_bytes(c), 0,
                                           RK_KV_PAGE_TOKENS,
                                           (float *)(fresh[r] + h * rk_kv_codec_page_bytes(kv->open_codec[r])));
        if (i == 0 && kv->sink[r][layer]) /* the exact rows, not their decoding */
            copy_sink_rows(kv, r, fresh[r], kv->sink[r][layer], false);
        kv->bytes += kv_layer_page_bytes(kv, kv->open_codec[r]);
    }
    kv_tiers_forget_page(kv, p);
    kv->bytes -= kv->rec_bytes;
    free_page_record(kv, p->rec);
    p->rec = NULL;
    p->sealed = 0;
    p->keys = fresh[0];
    p->values = fresh[1];
    if (i == 0) free_sinks(kv, layer);
    kv->n_sealed[layer] = i;
    return RK_OK;
}

void rk_kv_drop_retired(rk_kv_cache *kv, int64_t layer) {
    for (int64_t i = 0; i < kv->n_pages; i++) free_retired(kv, &kv->pages[layer * kv->max_pages + i]);
}

void rk_kv_release_before(rk_kv_cache *kv, int64_t layer, int64_t pos) {
    int64_t end = pos / RK_KV_PAGE_TOKENS;
    if (end > kv->n_sealed[layer]) end = kv->n_sealed[layer]; /* only full pages */
    if (end <= kv->n_released[layer]) return;
    kv_tiers_quiesce(kv); /* none of them may be in the I/O thread's hands */
    for (int64_t i = kv->n_released[layer]; i < end; i++) free_page(kv, layer, i);
    kv_tiers_release(kv, layer, kv->n_released[layer], end);
    kv->n_released[layer] = end;
}

int64_t rk_kv_first_kept(const rk_kv_cache *kv) {
    int64_t pages = 0;
    for (int64_t l = 0; l < kv->dims.n_layer; l++)
        if (kv->n_released[l] > pages) pages = kv->n_released[l];
    return pages * RK_KV_PAGE_TOKENS;
}

rk_status rk_kv_truncate(rk_kv_cache *kv, int64_t n_tokens, rk_error *err) {
    kv_tiers_quiesce(kv);
    int64_t keep = (n_tokens + RK_KV_PAGE_TOKENS - 1) / RK_KV_PAGE_TOKENS;
    bool partial = n_tokens % RK_KV_PAGE_TOKENS != 0;
    int64_t first_kept = rk_kv_first_kept(kv);
    /* a page cut in two is re-opened: it must still be there (released pages wholly kept stay
     * released; whether later queries need them is the caller's check, see rk_context_truncate) */
    if (partial && first_kept > 0 && keep - 1 < first_kept / RK_KV_PAGE_TOKENS)
        return rk_error_set(err, RK_ERR_UNSUPPORTED,
                            "kv: cannot rewind to position %lld: sliding-window layers released the "
                            "positions before %lld (start again from 0)",
                            (long long)n_tokens, (long long)first_kept);
    for (int64_t l = 0; l < kv->dims.n_layer; l++) {
        if (partial && page_is_encoded(kv, l, keep - 1)) {
            rk_status s = reopen_page(kv, l, keep - 1, err);
            if (s) return s;
        }
    }
    for (int64_t l = 0; l < kv->dims.n_layer; l++) {
        for (int64_t i = keep; i < kv->max_pages; i++) free_page(kv, l, i);
        int64_t full_kept = partial ? keep - 1 : keep; /* a partly kept page is open again */
        if (kv->n_sealed[l] > full_kept) kv->n_sealed[l] = full_kept;
        if (kv->n_released[l] > keep) kv->n_released[l] = keep;
    }
    if (kv->n_pages > keep) kv->n_pages = keep;
    kv_tiers_truncate(kv, keep);
    return RK_OK;
}

float *rk_kv_key(const rk_kv_cache *kv, int64_t layer, int64_t head, int64_t pos) {
    const kv_page *p = &kv->pages[layer * kv->max_pages + pos / RK_KV_PAGE_TOKENS];
    const int64_t dk = kv->dims.head_dim_k;
    return (float *)p->keys + (size_t)((head * RK_KV_PAGE_TOKENS + pos % RK_KV_PAGE_TOKENS) * dk);
}

float *rk_kv_value(const rk_kv_cache *kv, int64_t layer, int64_t head, int64_t pos) {
    const kv_page *p = &kv->pages[layer * kv->max_pages + pos / RK_KV_PAGE_TOKENS];
    const int64_t dv = kv->dims.head_dim_v;
    return (float *)p->values + (size_t)((head * RK_KV_PAGE_TOKENS + pos % RK_KV_PAGE_TOKENS) * dv);
}

void rk_kv_get_page(const rk_kv_cache *kv, int64_t layer, int64_t head, int64_t page,
                    int64_t query_pos, rk_kv_page_view *view) {
    const kv_page *p = kv_page_at(kv, layer, page);
    bool sealed = page_is_encoded(kv, layer, page);
    assert(p->keys && p->values); /* rk_kv_acquire brought a cold page back */
    bool own = page == query_pos / RK_KV_PAGE_TOKENS; /* the query's own page reads f32 */
    const rk_kv_codec *codec[2];
    const uint8_t *data[2] = {p->keys, p->values};
    for (int r = 0; r < 2; r++) {
        codec[r] = sealed ? kv->sealed_codec[r] : kv->open_codec[r];
        if (sealed && own && p->retired[r]) {
            codec[r] = kv->open_codec[r];
            data[r] = p->retired[r];
        }
    }
    view->key_codec = codec[0];
    view->value_codec = codec[1];
    view->keys = data[0] + head * rk_kv_codec_page_bytes(view->key_codec);
    view->values = data[1] + head * rk_kv_codec_page_bytes(view->value_codec);
    view->stream = layer * kv->dims.n_head_kv + head;
    view->n_exact = 0;
    view->exact_key_codec = kv->open_codec[0];
    view->exact_value_codec = kv->open_codec[1];
    view->exact_keys = view->exact_values = NULL;
    if (page == 0 && sealed && codec[0] == kv->sealed_codec[0] && kv->config.n_sink > 0) {
        /* A role without sink rows (an f32 codec) reads its own page: same floats. */
        const int64_t S = kv->config.n_sink;
        const uint8_t *sk = (const uint8_t *)kv->sink[0][layer], *sv = (const uint8_t *)kv->sink[1][layer];
        view->n_exact = S;
        view->exact_keys = sk ? sk + (size_t)(head * S * kv->dims.head_dim_k) * sizeof(float)
                              : p->keys + head * rk_kv_codec_page_bytes(kv->open_codec[0]);
        view->exact_values = sv ? sv + (size_t)(head * S * kv->dims.head_dim_v) * sizeof(float)
                                : p->values + head * rk_kv_codec_page_bytes(kv->open_codec[1]);
    }
}

const uint8_t *rk_kv_page_bounds(const rk_kv_cache *kv, int64_t layer, int64_t head, int64_t page) {
    if (!kv->bounds || !page_is_encoded(kv, layer, page)) return NULL;
    return kv->bounds + ((layer * kv->max_pages + page) * kv->dims.n_head_kv + head) * kv->bounds_bytes;
}

size_t rk_kv_bytes_per_token(const rk_kv_cache *kv) {
    return (size_t)kv->dims.n_layer * kv->payload_bytes / RK_KV_PAGE_TOKENS;
}

size_t rk_kv_record_bytes(const rk_kv_cache *kv) { return kv->rec_bytes; }

size_t rk_kv_sealed_page_bytes(const rk_kv_cache *kv) { return kv->payload_bytes; }

size_t rk_kv_bytes(const rk_kv_cache *kv) { return kv->bytes; }

int64_t rk_kv_prep_floats(const rk_kv_cache *kv) {
    int64_t a = rk_kv_codec_prep_floats(kv->open_codec[0]), b = rk_kv_codec_prep_floats(kv->sealed_codec[0]);
    return a > b ? a : b;
}

const rk_kv_dims *rk_kv_get_dims(const rk_kv_cache *kv) { return &kv->dims; }
const rk_kv_config *rk_kv_get_config(const rk_kv_cache *kv) { return &kv->config; }
