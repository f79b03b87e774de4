/*
 * kv-lock.c — warm pages encrypted in RAM.
 *
 * A session's pages must not lie around in plain text beyond the hot tier (DESIGN.md,
 * "Sessions and shredding"): with a sealer, every page the placement policy demotes to the
 * warm tier is encrypted in place by the same sealer that seals the page files ("locked"), with
 * its own generations (from KV_LOCK_GEN_BASE up, disjoint from the disk tier's) and (layer,
 * page, generation) bound into the tag, so a page moved or altered in memory does not open; a
 * page read back from disk is left sealed as the store wrote it (its generation and tag come
 * from the record's header). Erasing the sealer's key makes every locked page noise.
 *
 * Attention reads plain codec bytes, so for the duration of one layer's attention the locked
 * pages it visits are opened into a clear buffer (one slot per page of the layer: the locked
 * record itself is never changed, so nothing has to be encrypted again afterwards), and the
 * buffer is wiped when the layer settles. A page promoted to hot is decrypted in place.
 */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "kv/kv-cache-impl.h"

bool kv_lock_enabled(const rk_kv_cache *kv) { return kv->tiers.sealer && kv->tiers.enabled; }

static void page_coords(const rk_kv_cache *kv, const kv_page *p, int64_t *layer, int64_t *i) {
    const int64_t id = p - kv->pages;
    *layer = id / kv->max_pages;
    *i = id % kv->max_pages;
}

void kv_wipe(void *buf, size_t n) {
    volatile uint8_t *b = buf;
    while (n--) *b++ = 0;
}

int kv_lock_page(rk_kv_cache *kv, kv_page *p) {
    kv_tiers *t = &kv->tiers;
    if (p->locked || !p->rec) return 0;
    int64_t layer, i;
    page_coords(kv, p, &layer, &i);
    const uint64_t gen = t->next_lock_gen + 1;
    uint8_t *payload = p->rec + kv->payload_off;
    const double t0 = rk_now_seconds();
    if (t->sealer->seal(t->sealer->user, layer, i, gen, payload, payload, kv->payload_bytes, p->lock_tag) != 0)
        return -1;
    t->next_lock_gen = gen;
    t->stats.ram_seal_seconds += rk_now_seconds() - t0;
    t->stats.pages_locked++;
    p->lock_gen = gen;
    p->locked = 1;
    p->keys = p->values = NULL;
    return 0;
}

void kv_lock_adopt_read(rk_kv_cache *kv, kv_page *p) {
    rk_kv_store_record_seal(p->rec, &p->lock_gen, p->lock_tag);
    p->locked = 1;
    p->keys = p->values = NULL;
    kv->tiers.stats.pages_locked++;
}

/* Opens the locked payload `src` of page p into dst (dst may equal src): 0, or -1 when it does
 * not open (dst, if distinct, is wiped). Thread-safe for distinct pages; no bookkeeping. */
static int open_into(const rk_kv_cache *kv, const kv_page *p, const uint8_t *src, uint8_t *dst) {
    const rk_kv_sealer *sl = kv->tiers.sealer;
    int64_t layer, i;
    page_coords(kv, p, &layer, &i);
    int bad = sl->open(sl->user, layer, i, p->lock_gen, src, dst, kv->payload_bytes, p->lock_tag);
    if (bad && dst != src) kv_wipe(dst, kv->payload_bytes);
    return bad ? -1 : 0;
}

static rk_status open_error(int64_t layer, int64_t i, rk_error *err) {
    return rk_error_set(err, RK_ERR_IO,
                        "kv warm tier: page %lld of layer %lld does not open (its sealed bytes in memory were "
                        "altered)", (long long)i, (long long)layer);
}

/* open_into with the statistics, on this thread. */
static rk_status open_payload(rk_kv_cache *kv, const kv_page *p, const uint8_t *src, uint8_t *dst, rk_error *err) {
    kv_tiers *t = &kv->tiers;
    const double t0 = rk_now_seconds();
    int bad = open_into(kv, p, src, dst);
    t->stats.ram_seal_seconds += rk_now_seconds() - t0;
    if (bad) {
        int64_t layer, i;
        page_coords(kv, p, &layer, &i);
        return open_error(layer, i, err);
    }
    t->stats.pages_unlocked++;
    return RK_OK;
}

rk_status kv_unlock_page(rk_kv_cache *kv, kv_page *p, rk_error *err) {
    if (!p->locked) return RK_OK;
    uint8_t *payload = p->rec + kv->payload_off;
    rk_status s = open_payload(kv, p, payload, payload, err);
    if (s) return s; /* still locked; its bytes may be lost (libsodium zeroes them): it never opens */
    p->locked = 0;
    kv_page_attach(kv, p, p->rec);
    return RK_OK;
}

/* Pages ids[0 .. n) of one layer opened into their clear slots on the pool; failed[j] = 1 for a
 * page that does not open. */
typedef struct open_job {
    rk_kv_cache *kv;
    int64_t layer;
    const int64_t *ids;
    int64_t n;
    uint8_t *failed;
} open_job;

static void open_pages(void *arg, int ith, int nth) {
    open_job *job = arg;
    rk_kv_cache *kv = job->kv;
    int64_t begin, end;
    rk_pool_split(job->n, ith, nth, &begin, &end);
    for (int64_t j = begin; j < end; j++) {
        const int64_t i = job->ids[j];
        const kv_page *p = kv_page_at(kv, job->layer, i);
        job->failed[j] = (uint8_t)(open_into(kv, p, p->rec + kv->payload_off,
                                             kv->tiers.clear + (size_t)i * kv->payload_bytes) != 0);
    }
}

rk_status kv_lock_open_layer(rk_kv_cache *kv, int64_t layer, int64_t first, const uint8_t *visit, rk_pool *pool,
                             rk_error *err) {
    kv_tiers *t = &kv->tiers;
    if (!kv_lock_enabled(kv)) return RK_OK;
    kv_lock_close_layer(kv);
    int64_t *ids = t->open_ids, n = 0;
    for (int64_t i = first; i < kv->n_sealed[layer]; i++) {
        const kv_page *p = kv_page_at(kv, layer, i);
        if ((!visit || visit[i]) && p->locked && p->rec) ids[n++] = i;
    }
    if (n == 0) return RK_OK;
    if (!t->clear) {
        t->clear = calloc((size_t)kv->max_pages, kv->payload_bytes);
        if (!t->clear)
            return rk_error_set(err, RK_ERR_NO_MEMORY,
                                "kv warm tier: out of memory for the %.1f MiB a layer's opened pages take",
                                (double)kv->max_pages * (double)kv->payload_bytes / 1048576.0);
        kv->bytes += (size_t)kv->max_pages * kv->payload_bytes;
    }
    open_job job = {kv, layer, ids, n, t->open_failed};
    const double t0 = rk_now_seconds();
    if (pool && n > 1)
        rk_pool_run(pool, open_pages, &job);
    else
        open_pages(&job, 0, 1);
    t->stats.ram_seal_seconds += rk_now_seconds() - t0;
    t->clear_layer = layer;
    int64_t bad = -1;
    for (int64_t j = 0; j < n; j++) {
        kv_page *p = kv_page_at(kv, layer, ids[j]);
        p->keys = t->clear + (size_t)ids[j] * kv->payload_bytes; /* a failed slot is wiped: closing clears it */
        p->values = p->keys + kv->key_bytes;
        if (job.failed[j] && bad < 0) bad = ids[j];
    }
    if (bad >= 0) {
        kv_lock_close_layer(kv);
        return open_error(layer, bad, err);
    }
    t->stats.pages_unlocked += (uint64_t)n;
    return RK_OK;
}

void kv_lock_close_layer(rk_kv_cache *kv) {
    kv_tiers *t = &kv->tiers;
    if (t->clear_layer < 0) return;
    const int64_t layer = t->clear_layer;
    int64_t lo = -1, hi = -1;
    for (int64_t i = 0; i < kv->n_sealed[layer]; i++) {
        kv_page *p = kv_page_at(kv, layer, i);
        if (!p->locked || !p->keys) continue;
        p->keys = p->values = NULL;
        if (lo < 0) lo = i;
        hi = i;
    }
    if (lo >= 0) kv_wipe(t->clear + (size_t)lo * kv->payload_bytes, (size_t)(hi - lo + 1) * kv->payload_bytes);
    t->clear_layer = -1;
}

rk_status kv_page_copy_payload(rk_kv_cache *kv, int64_t layer, int64_t i, uint8_t *dst, rk_error *err) {
    kv_page *p = kv_page_at(kv, layer, i);
    rk_status s = p->rec ? RK_OK : kv_tiers_fetch_now(kv, layer, i, err); /* cold: read it back */
    if (s) return s;
    if (p->locked && !p->keys) return open_payload(kv, p, p->rec + kv->payload_off, dst, err);
    memcpy(dst, p->keys, kv->payload_bytes); /* a sealed page's payload: keys, then values */
    return RK_OK;
}
