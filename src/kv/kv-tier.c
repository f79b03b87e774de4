/*
 * kv-tier.c — where sealed pages live: the hot and warm RAM tiers with their byte budgets, the
 * cold tier on disk, the placement policy's decisions and the prefetch of the next layer.
 *
 * Life of a sealed page with a disk tier: sealing writes it to the page files at once (one
 * large write per layer and step) and it enters the hot tier. After each layer's attention,
 * rk_kv_settle plans that layer's resident pages with the placement policy (kv-policy.c)
 * within the layer's share of the hot budget; the pages left out are demoted to warm (no copy:
 * both are RAM on the CPU). When the warm tier is over its budget, its coldest pages outside
 * the layers in use are evicted: their RAM is freed, the disk copy stays. Before a layer's
 * attention, rk_kv_acquire takes the pages the I/O thread prefetched, reads any other cold
 * page it needs, and hands the next layer's cold pages to the I/O thread. Every page attention
 * reads is bit-for-bit the record that was sealed (checksummed on disk), so tiers never change
 * a logit.
 *
 * With a sealer, warm pages are kept encrypted (kv-lock.c): a page demoted to warm is locked
 * at once, and a page read back from disk stays as sealed as it was in its page file.
 *
 * Without budgets or a disk tier (the default) tiering is off: pages stay hot and these calls
 * cost a branch.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "core/clock.h"
#include "core/error.h"
#include "kv/kv-cache-impl.h"
#include "kv/kv-prefetch.h"

/* The prefetch in flight: pages of one layer and the records they are read into. */
typedef struct kv_prefetch_req {
    int64_t layer;
    int64_t n;
    int64_t *pages;   /* (max_pages) */
    uint8_t **recs;   /* (max_pages) */
} kv_prefetch_req;

static kv_prefetch_req *req_of(const rk_kv_cache *kv) { return kv->tiers.req; }

/* f32 bytes of one open page of every layer, plus every layer's sink rows. */
static size_t open_and_sink_bytes(const rk_kv_cache *kv) {
    const rk_kv_dims *d = &kv->dims;
    size_t open = (size_t)(d->n_head_kv * RK_KV_PAGE_TOKENS * (d->head_dim_k + d->head_dim_v)) * sizeof(float);
    size_t sinks = (size_t)(d->n_head_kv * kv->config.n_sink * (d->head_dim_k + d->head_dim_v)) * sizeof(float);
    return (size_t)d->n_layer * (open + sinks);
}

rk_status rk_kv_min_budgets(const rk_kv_cache *kv, size_t *hot, size_t *warm) {
    const rk_kv_policy_params *p = &kv->tiers.policy;
    int64_t pinned = p->sink_pages + p->recent_pages;
    if (pinned > kv->max_pages) pinned = kv->max_pages;
    *hot = open_and_sink_bytes(kv) + (size_t)(kv->dims.n_layer * pinned) * kv->rec_bytes;
    *warm = 2 * (size_t)kv->max_pages * kv->rec_bytes;
    return RK_OK;
}

static double gib(double bytes) { return bytes / 1073741824.0; }

/* The disk tier: the page files, space checks, the I/O thread. */
static rk_status open_disk_tier(rk_kv_cache *kv, const rk_kv_tier_config *tc, rk_error *err) {
    rk_kv_store_config sc = {tc->disk_dir, tc->disk_max_bytes, kv->dims.n_layer, kv->max_pages,
                             kv->payload_bytes, tc->disk_direct, tc->sealer, tc->sealer != NULL};
    rk_status s = rk_kv_store_open(&sc, &kv->tiers.store, err);
    if (s) return s;
    kv->rec_bytes = rk_kv_store_record_bytes(kv->tiers.store);
    kv->payload_off = RK_KV_STORE_HEADER_BYTES;
    double need = (double)kv->dims.n_layer * (double)kv->max_pages * (double)kv->rec_bytes;
    if (tc->disk_max_bytes && need > (double)tc->disk_max_bytes)
        return rk_error_set(err, RK_ERR_INVALID_ARG,
                            "kv: %lld tokens need %.2f GiB of page files, more than --kv-disk-max (%.2f GiB)",
                            (long long)kv->dims.n_ctx, gib(need), gib((double)tc->disk_max_bytes));
    struct statvfs vfs;
    if (statvfs(rk_kv_store_path(kv->tiers.store), &vfs) == 0) {
        double avail = (double)vfs.f_bavail * (double)vfs.f_frsize;
        if (need > avail)
            return rk_error_set(err, RK_ERR_IO,
                                "kv: %lld tokens need %.2f GiB of page files but %s has %.2f GiB free",
                                (long long)kv->dims.n_ctx, gib(need), tc->disk_dir, gib(avail));
    }
    return kv_prefetch_start(kv->tiers.store, kv->max_pages, &kv->tiers.io, err);
}

/* Budgets that cannot hold what they must are refused here, before any work starts. */
static rk_status check_budgets(rk_kv_cache *kv, rk_error *err) {
    kv_tiers *t = &kv->tiers;
    size_t min_hot, min_warm;
    rk_kv_min_budgets(kv, &min_hot, &min_warm);
    if (!t->store) {
        double all = (double)kv->dims.n_layer * (double)kv->max_pages * (double)kv->rec_bytes +
                     (double)open_and_sink_bytes(kv);
        if ((double)t->hot_budget + (double)t->warm_budget < all)
            return rk_error_set(err, RK_ERR_NO_MEMORY,
                                "kv: %lld tokens need %.1f MiB of KV cache but --kv-hot + --kv-warm allow "
                                "%.1f MiB; raise them or add a disk tier (--kv-disk DIR)",
                                (long long)kv->dims.n_ctx, all / 1048576.0,
                                ((double)t->hot_budget + (double)t->warm_budget) / 1048576.0);
    }
    if (t->hot_budget < min_hot)
        return rk_error_set(err, RK_ERR_NO_MEMORY,
                            "kv: --kv-hot of %.1f MiB is below the %.1f MiB the hot tier needs (open pages, "
                            "sinks and the first and most recent pages of %lld layers)",
                            t->hot_budget / 1048576.0, min_hot / 1048576.0, (long long)kv->dims.n_layer);
    if (!t->store) return RK_OK; /* the warm tier holds the rest: checked above */
    if (t->warm_budget < min_warm)
        return rk_error_set(err, RK_ERR_NO_MEMORY,
                            "kv: --kv-warm of %.1f MiB is below the %.1f MiB the warm tier needs at %lld "
                            "tokens (one layer's pages being read and the next layer's being prefetched)",
                            t->warm_budget / 1048576.0, min_warm / 1048576.0, (long long)kv->dims.n_ctx);
    return RK_OK;
}

rk_status kv_tiers_create(rk_kv_cache *kv, const rk_kv_tier_config *tc, rk_error *err) {
    kv_tiers *t = &kv->tiers;
    t->policy = rk_kv_policy_default_params();
    t->hot_budget = tc->hot_bytes ? tc->hot_bytes : SIZE_MAX;
    t->warm_budget = tc->warm_bytes ? tc->warm_bytes : SIZE_MAX;
    t->enabled = tc->hot_bytes || tc->warm_bytes || tc->disk_dir;
    t->sealer = tc->sealer;
    t->next_lock_gen = KV_LOCK_GEN_BASE;
    t->clear_layer = -1;
    if (!t->enabled) return RK_OK;
    rk_status s = RK_OK;
    if (tc->disk_dir) s = open_disk_tier(kv, tc, err);
    if (!s && t->store) { /* with a disk tier an unset budget is the least that works */
        size_t min_hot, min_warm;
        rk_kv_min_budgets(kv, &min_hot, &min_warm);
        if (!tc->hot_bytes) t->hot_budget = min_hot;
        if (!tc->warm_bytes) t->warm_budget = min_warm;
    }
    if (!s) s = check_budgets(kv, err);
    if (s) return s;
    const size_t n = (size_t)(kv->dims.n_layer * kv->max_pages);
    t->entries = calloc(n, sizeof *t->entries);
    t->entry_bytes = calloc(n, sizeof *t->entry_bytes);
    t->in_ram = calloc(n, 1);
    t->order = calloc(n, sizeof *t->order);
    t->evict_ids = calloc(n, sizeof *t->evict_ids);
    t->evict_step = -1;
    t->cold = calloc((size_t)kv->max_pages, sizeof *t->cold);
    if (t->sealer) {
        t->open_ids = calloc((size_t)kv->max_pages, sizeof *t->open_ids);
        t->open_failed = calloc((size_t)kv->max_pages, 1);
        if (!t->open_ids || !t->open_failed)
            return rk_error_set(err, RK_ERR_NO_MEMORY, "kv: out of memory for the tiers' tables");
    }
    kv_prefetch_req *req = calloc(1, sizeof *req);
    if (req) {
        req->pages = calloc((size_t)kv->max_pages, sizeof *req->pages);
        req->recs = calloc((size_t)kv->max_pages, sizeof *req->recs);
        req->layer = -1;
    }
    t->req = req;
    if (kv->bounds) t->last_visit = calloc(n, 1);
    if (kv->bounds && !t->last_visit)
        return rk_error_set(err, RK_ERR_NO_MEMORY, "kv: out of memory for the tiers' tables");
    if (!t->entries || !t->entry_bytes || !t->in_ram || !t->order || !t->evict_ids || !t->cold || !req ||
        !req->pages || !req->recs)
        return rk_error_set(err, RK_ERR_NO_MEMORY, "kv: out of memory for the tiers' tables");
    for (size_t i = 0; i < n; i++) t->entry_bytes[i] = kv->rec_bytes;
    return RK_OK;
}

/* Waits for the prefetch in flight and installs what it read into the warm tier; on a read
 * error its records are freed (the pages stay cold) and the error is returned. */
static rk_status finish_prefetch(rk_kv_cache *kv, rk_error *err) {
    kv_tiers *t = &kv->tiers;
    kv_prefetch_req *req = req_of(kv);
    if (!t->io || !req || req->layer < 0) return RK_OK;
    double io_s, wait_s;
    rk_status s = kv_prefetch_wait(t->io, &io_s, &wait_s, err);
    t->stats.io_seconds += io_s;
    t->stats.io_wait_seconds += wait_s;
    for (int64_t j = 0; j < req->n; j++) {
        kv_page *p = kv_page_at(kv, req->layer, req->pages[j]);
        p->fetching = 0;
        if (s) {
            kv_record_free(kv, req->recs[j]);
            t->warm_bytes -= kv->rec_bytes;
            kv->bytes -= kv->rec_bytes;
            continue;
        }
        kv_page_attach(kv, p, req->recs[j]);
        p->tier = KV_TIER_WARM;
        if (kv->tiers.sealer) kv_lock_adopt_read(kv, p);
    }
    if (!s) {
        t->stats.pages_fetched += (uint64_t)req->n;
        t->stats.pages_prefetched += (uint64_t)req->n;
        t->stats.read_cold_bytes += (uint64_t)req->n * kv->payload_bytes;
    }
    req->layer = -1;
    req->n = 0;
    return s;
}

void kv_tiers_free(rk_kv_cache *kv) {
    kv_tiers *t = &kv->tiers;
    kv_prefetch_req *req = req_of(kv);
    if (req) finish_prefetch(kv, NULL); /* records of a finished read now belong to pages */
    kv_prefetch_stop(t->io);
    if (t->clear) {
        kv_wipe(t->clear, (size_t)kv->max_pages * kv->payload_bytes);
        free(t->clear);
    }
    rk_kv_store_close(t->store);
    if (req) {
        free(req->pages);
        free(req->recs);
        free(req);
    }
    free(t->entries);
    free(t->entry_bytes);
    free(t->in_ram);
    free(t->order);
    free(t->evict_ids);
    free(t->cold);
    free(t->open_ids);
    free(t->open_failed);
    free(t->last_visit);
    memset(t, 0, sizeof *t);
}

rk_status kv_tiers_write_sealed(rk_kv_cache *kv, int64_t layer, int64_t first, int64_t count,
                                rk_error *err) {
    kv_tiers *t = &kv->tiers;
    if (!t->store) return RK_OK;
    uint8_t **recs = malloc((size_t)count * sizeof *recs);
    if (!recs) return rk_error_set(err, RK_ERR_NO_MEMORY, "kv: out of memory writing pages");
    for (int64_t i = 0; i < count; i++) recs[i] = kv_page_at(kv, layer, first + i)->rec;
    rk_status s = rk_kv_store_write(t->store, layer, first, count, recs, err);
    if (!s) t->stats.pages_written += (uint64_t)count;
    free(recs);
    return s;
}

/* Moves a resident sealed page between the two RAM tiers, keeping the byte counts. With a
 * sealer a page demoted to warm is locked and one promoted to hot unlocked; when that fails the
 * page stays where it was (a promotion's error shows again when attention opens the page). */
static void set_ram_tier(rk_kv_cache *kv, kv_page *p, kv_tier tier) {
    kv_tiers *t = &kv->tiers;
    if (p->tier == tier) return;
    if (kv_lock_enabled(kv) && p->rec) {
        if (p->tier == KV_TIER_HOT && tier == KV_TIER_WARM && kv_lock_page(kv, p) != 0) return;
        if (tier == KV_TIER_HOT && kv_unlock_page(kv, p, NULL) != RK_OK) return;
    }
    if (p->tier == KV_TIER_HOT) t->hot_bytes -= kv->rec_bytes;
    if (p->tier == KV_TIER_WARM) t->warm_bytes -= kv->rec_bytes;
    if (tier == KV_TIER_HOT) t->hot_bytes += kv->rec_bytes;
    if (tier == KV_TIER_WARM) t->warm_bytes += kv->rec_bytes;
    if (p->tier == KV_TIER_HOT && tier == KV_TIER_WARM) t->stats.pages_demoted++;
    p->tier = (uint8_t)tier;
}

/* Frees the RAM of a warm page whose record is safe on disk (it becomes cold). */
static void evict(rk_kv_cache *kv, kv_page *p) {
    set_ram_tier(kv, p, KV_TIER_COLD);
    kv_record_free(kv, p->rec);
    kv_page_attach(kv, p, NULL);
    p->locked = 0;
    kv->bytes -= kv->rec_bytes;
    kv->tiers.stats.pages_evicted++;
}

/* Ranks every warm page, coldest first, into t->evict_ids. */
static void rank_warm(rk_kv_cache *kv) {
    kv_tiers *t = &kv->tiers;
    int64_t n = 0;
    for (int64_t l = 0; l < kv->dims.n_layer; l++)
        for (int64_t i = kv->n_released[l]; i < kv->n_sealed[l]; i++) {
            const kv_page *p = kv_page_at(kv, l, i);
            if (p->tier != KV_TIER_WARM || !p->rec || p->fetching) continue;
            t->entries[n++] = (rk_kv_policy_entry){l * kv->max_pages + i, i, kv->n_sealed[l], &p->heat, 0.0};
        }
    t->n_evict = rk_kv_policy_rank_coldest(t->entries, n, t->step, &t->policy, t->order);
    for (int64_t j = 0; j < t->n_evict; j++) t->evict_ids[j] = t->entries[t->order[j]].id;
    t->evict_step = t->step;
}

/* Evicts the coldest warm pages outside layers keep_a and keep_b until `room` more bytes fit
 * in the warm budget. Returns whether they fit. The ranking is made once per step (this runs
 * about twice per layer and step, and ranking all warm pages each time cost a full scan and a
 * sort: ~60 of them per token at 1M tokens); pages that turned warm since are ranked when the
 * step's ranking runs out. */
static int make_warm_room(rk_kv_cache *kv, size_t room, int64_t keep_a, int64_t keep_b) {
    kv_tiers *t = &kv->tiers;
    if (t->warm_bytes + room <= t->warm_budget) return 1;
    if (!t->store) return 0;
    for (int attempt = 0; attempt < 2 && t->warm_bytes + room > t->warm_budget; attempt++) {
        if (attempt == 1 || t->evict_step != t->step) rank_warm(kv);
        for (int64_t j = 0; j < t->n_evict && t->warm_bytes + room > t->warm_budget; j++) {
            const int64_t id = t->evict_ids[j], layer = id / kv->max_pages;
            kv_page *p = &kv->pages[id];
            if (layer == keep_a || layer == keep_b || p->tier != KV_TIER_WARM || !p->rec || p->fetching) continue;
            evict(kv, p);
        }
    }
    return t->warm_bytes + room <= t->warm_budget;
}

/* The layer's share of the hot budget for sealed pages. */
static size_t layer_hot_quota(const rk_kv_cache *kv) {
    const kv_tiers *t = &kv->tiers;
    if (t->hot_budget == SIZE_MAX) return SIZE_MAX;
    size_t fixed = open_and_sink_bytes(kv);
    return t->hot_budget > fixed ? (t->hot_budget - fixed) / (size_t)kv->dims.n_layer : 0;
}

/* Re-plans which resident pages of `layer` are hot: the pinned ones, then the hottest by the
 * policy while they fit in the layer's quota; the others are warm. */
static void plan_layer(rk_kv_cache *kv, int64_t layer) {
    kv_tiers *t = &kv->tiers;
    int64_t n = 0, n_sealed = kv->n_sealed[layer];
    for (int64_t i = kv->n_released[layer]; i < n_sealed; i++) {
        const kv_page *p = kv_page_at(kv, layer, i);
        if (!p->rec || p->fetching) continue;
        t->entries[n++] = (rk_kv_policy_entry){layer * kv->max_pages + i, i, n_sealed, &p->heat, 0.0};
    }
    if (n == 0) return;
    if (rk_kv_policy_plan(t->entries, t->entry_bytes, n, layer_hot_quota(kv), t->step, &t->policy,
                          t->in_ram, t->order, NULL) != RK_OK)
        memset(t->in_ram, 1, (size_t)n); /* cannot happen with checked budgets: keep all hot */
    for (int64_t j = 0; j < n; j++)
        set_ram_tier(kv, &kv->pages[t->entries[j].id], t->in_ram[j] ? KV_TIER_HOT : KV_TIER_WARM);
}

void kv_tiers_admit_sealed(rk_kv_cache *kv, int64_t layer, int64_t first, int64_t count) {
    kv_tiers *t = &kv->tiers;
    for (int64_t i = first; i < first + count; i++) {
        kv_page *p = kv_page_at(kv, layer, i);
        p->tier = KV_TIER_COLD; /* not yet counted */
        rk_kv_heat_init(&p->heat);
        rk_kv_heat_record(&p->heat, t->step, 0.0f, &t->policy);
        set_ram_tier(kv, p, KV_TIER_HOT);
    }
    if (!t->enabled) return;
    plan_layer(kv, layer);
    int64_t next = req_of(kv)->layer;
    make_warm_room(kv, 0, layer, next);
}

void kv_tiers_forget_page(rk_kv_cache *kv, kv_page *p) {
    if (p->rec) set_ram_tier(kv, p, KV_TIER_COLD);
    p->tier = KV_TIER_COLD;
    p->locked = 0;
}

/* Reads pages[0 .. n) of `layer` (ascending, cold) into new warm records now. */
static rk_status fetch_pages(rk_kv_cache *kv, int64_t layer, const int64_t *pages, int64_t n,
                             rk_error *err) {
    kv_tiers *t = &kv->tiers;
    if (!t->store)
        return rk_error_set(err, RK_ERR_INTERNAL, "kv: page %lld of layer %lld is in no tier",
                            (long long)pages[0], (long long)layer);
    /* The budget check at creation leaves room for a layer beside the prefetched one. */
    make_warm_room(kv, (size_t)n * kv->rec_bytes, layer, req_of(kv)->layer);
    double t0 = rk_now_seconds();
    rk_status s = RK_OK;
    for (int64_t a = 0; a < n && !s;) {
        int64_t b = a + 1;
        while (b < n && pages[b] == pages[b - 1] + 1) b++;
        uint8_t *recs[64];
        if (b - a > 64) b = a + 64;
        int64_t got = 0;
        for (; got < b - a; got++)
            if ((recs[got] = kv_record_alloc(kv)) == NULL) break;
        if (got < b - a)
            s = rk_error_set(err, RK_ERR_NO_MEMORY, "kv: out of memory reading page %lld of layer %lld",
                             (long long)pages[a + got], (long long)layer);
        if (!s) s = rk_kv_store_read(t->store, layer, pages[a], b - a, recs, err);
        for (int64_t j = 0; j < got; j++) {
            if (s) {
                kv_record_free(kv, recs[j]);
                continue;
            }
            kv_page *p = kv_page_at(kv, layer, pages[a + j]);
            kv_page_attach(kv, p, recs[j]);
            if (t->sealer) kv_lock_adopt_read(kv, p);
            kv->bytes += kv->rec_bytes;
            set_ram_tier(kv, p, KV_TIER_WARM);
            t->stats.pages_fetched++;
        }
        a = b;
    }
    double dt = rk_now_seconds() - t0;
    t->stats.io_seconds += dt;
    t->stats.io_wait_seconds += dt;
    return s;
}

rk_status kv_tiers_fetch_now(rk_kv_cache *kv, int64_t layer, int64_t i, rk_error *err) {
    rk_status s = finish_prefetch(kv, err);
    if (s) return s;
    if (kv_page_at(kv, layer, i)->rec) return RK_OK; /* the prefetch brought it */
    return fetch_pages(kv, layer, &i, 1, err);
}

void kv_tiers_release(rk_kv_cache *kv, int64_t layer, int64_t first, int64_t end) {
    if (kv->tiers.store) rk_kv_store_drop_range(kv->tiers.store, layer, first, end);
}

void kv_tiers_truncate(rk_kv_cache *kv, int64_t keep) {
    if (!kv->tiers.store) return;
    for (int64_t l = 0; l < kv->dims.n_layer; l++) rk_kv_store_drop(kv->tiers.store, l, keep);
}

/* Hands the cold pages of `layer` that attention will read to the I/O thread; the pages of
 * layer `in_use` stay where they are. */
static void start_prefetch(rk_kv_cache *kv, int64_t layer, int64_t in_use) {
    kv_tiers *t = &kv->tiers;
    kv_prefetch_req *req = req_of(kv);
    if (!t->io || req->layer >= 0) return;
    /* sparse decode: the pages this layer read last step, the best guess of what it reads next */
    const uint8_t *guess = t->last_visit ? t->last_visit + layer * kv->max_pages : NULL;
    int64_t n = 0;
    for (int64_t i = kv->n_released[layer]; i < kv->n_sealed[layer]; i++)
        if (!kv_page_at(kv, layer, i)->rec && (!guess || guess[i])) req->pages[n++] = i;
    if (n == 0 || !make_warm_room(kv, (size_t)n * kv->rec_bytes, layer, in_use)) return;
    for (int64_t j = 0; j < n; j++)
        if ((req->recs[j] = kv_record_alloc(kv)) == NULL) {
            while (j > 0) kv_record_free(kv, req->recs[--j]);
            return; /* acquire will read them itself */
        }
    for (int64_t j = 0; j < n; j++) kv_page_at(kv, layer, req->pages[j])->fetching = 1;
    t->warm_bytes += (size_t)n * kv->rec_bytes; /* reserved; the pages join the tier on arrival */
    kv->bytes += (size_t)n * kv->rec_bytes;
    req->layer = layer;
    req->n = n;
    kv_prefetch_submit(t->io, layer, req->pages, req->recs, n);
}

void kv_tiers_quiesce(rk_kv_cache *kv) {
    kv_lock_close_layer(kv);
    if (kv->tiers.req) finish_prefetch(kv, NULL);
}

void rk_kv_begin_step(rk_kv_cache *kv) { kv->tiers.step++; }

int rk_kv_tiered(const rk_kv_cache *kv) { return kv->tiers.enabled; }

/* Counts what attention is about to read from each tier, and marks the pages used. */
static void note_reads(rk_kv_cache *kv, int64_t layer, int64_t first, const uint8_t *visit) {
    kv_tiers *t = &kv->tiers;
    for (int64_t i = first; i < kv->n_sealed[layer]; i++) {
        if (visit && !visit[i]) continue;
        kv_page *p = kv_page_at(kv, layer, i);
        if (p->tier == KV_TIER_HOT)
            t->stats.read_hot_bytes += kv->payload_bytes;
        else
            t->stats.read_warm_bytes += kv->payload_bytes;
        rk_kv_heat_record(&p->heat, t->step, 0.0f, &t->policy);
    }
}

rk_status rk_kv_acquire(rk_kv_cache *kv, int64_t layer, int64_t first_pos, const uint8_t *visit, rk_pool *pool,
                        rk_error *err) {
    kv_tiers *t = &kv->tiers;
    if (!t->enabled) return RK_OK;
    int64_t first = first_pos / RK_KV_PAGE_TOKENS;
    if (first < kv->n_released[layer]) first = kv->n_released[layer];
    rk_status s = RK_OK;
    if (req_of(kv)->layer == layer) s = finish_prefetch(kv, err);
    if (s) return s;
    /* Cold pages the prefetch did not bring (a read error is reported by this read again). */
    int64_t *cold = t->cold, n_cold = 0;
    for (int64_t i = first; i < kv->n_sealed[layer]; i++)
        if ((!visit || visit[i]) && !kv_page_at(kv, layer, i)->rec) cold[n_cold++] = i;
    if (n_cold > 0) s = fetch_pages(kv, layer, cold, n_cold, err);
    if (!s) s = kv_lock_open_layer(kv, layer, first, visit, pool, err);
    if (s) return s;
    t->stats.read_cold_bytes += (uint64_t)n_cold * kv->payload_bytes;
    note_reads(kv, layer, first, visit);
    if (t->last_visit) {
        uint8_t *last = t->last_visit + layer * kv->max_pages;
        for (int64_t i = 0; i < kv->n_sealed[layer]; i++) last[i] = visit ? visit[i] : 1;
    }
    start_prefetch(kv, (layer + 1) % kv->dims.n_layer, layer);
    return RK_OK;
}

void rk_kv_note_mass(rk_kv_cache *kv, int64_t layer, int64_t page, float share) {
    kv_tiers *t = &kv->tiers;
    if (t->enabled && page < kv->n_sealed[layer])
        rk_kv_heat_record(&kv_page_at(kv, layer, page)->heat, t->step, share, &t->policy);
}

void rk_kv_settle(rk_kv_cache *kv, int64_t layer) {
    kv_tiers *t = &kv->tiers;
    if (!t->enabled) return;
    kv_lock_close_layer(kv);
    plan_layer(kv, layer);
    make_warm_room(kv, 0, req_of(kv)->layer, -1);
}

void rk_kv_get_tier_stats(const rk_kv_cache *kv, rk_kv_tier_stats *out) {
    const kv_tiers *t = &kv->tiers;
    *out = t->stats;
    out->enabled = t->enabled;
    out->pages_hot = out->pages_warm = out->pages_cold = out->pages_warm_sealed = 0;
    for (int64_t l = 0; l < kv->dims.n_layer; l++)
        for (int64_t i = kv->n_released[l]; i < kv->n_sealed[l]; i++) {
            const kv_page *p = kv_page_at(kv, l, i);
            if (p->fetching || !p->rec)
                out->pages_cold++;
            else if (p->tier == KV_TIER_HOT)
                out->pages_hot++;
            else
                out->pages_warm++;
            out->pages_warm_sealed += p->locked;
        }
    out->warm_bytes = t->warm_bytes;
    out->hot_bytes = kv->bytes > t->warm_bytes ? kv->bytes - t->warm_bytes : 0;
    out->disk_bytes = 0;
    out->disk_direct = 0;
    if (t->store) {
        rk_kv_store_stats ss;
        rk_kv_store_get_stats(t->store, &ss);
        out->disk_bytes = ss.bytes_held;
        out->disk_direct = rk_kv_store_is_direct(t->store);
        out->disk_io_uring = kv_prefetch_uses_uring(t->io);
    }
}
