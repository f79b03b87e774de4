/*
 * kv-cache-impl.h — the cache's state, shared by the files that implement it (private to
 * src/kv): kv-cache.c (pages, sealing, truncation), kv-tier.c (budgets, placement, the disk
 * tier) and kv-prefetch.c (the I/O thread).
 *
 * Page storage. An open page holds two f32 buffers (keys, values), each n_head_kv codec pages
 * of the f32 codec. A sealed page holds one *record*: a buffer of rec_bytes whose payload, at
 * payload_off, is the n_head_kv key codec pages followed by the n_head_kv value codec pages.
 * With a disk tier the record is the cold store's record (a 64-byte header, payload, padding
 * to 4096 bytes), so pages are written and read in place; without one it is the payload alone.
 * A sealed page that lives only on disk has rec == NULL.
 *
 * Locked pages. With a sealer (rk_kv_sealer) and tiering on, a warm page's payload is kept
 * encrypted in its record ("locked", kv-lock.c): the hot tier holds plain pages, everything
 * else — warm RAM and the page files — only sealed ones. A locked page has keys == values ==
 * NULL, except while its layer's attention runs: rk_kv_acquire opens it into the cache's clear
 * buffer (one slot per page of the layer) and points keys/values there; rk_kv_settle wipes the
 * buffer.
 */
#ifndef RK_KV_CACHE_IMPL_H
#define RK_KV_CACHE_IMPL_H

#include <stdbool.h>

#include "kv/kv-cache.h"
#include "kv/kv-policy.h"
#include "kv/kv-record-pool.h"
#include "kv/kv-store.h"

typedef enum kv_tier { KV_TIER_HOT = 0, KV_TIER_WARM = 1, KV_TIER_COLD = 2 } kv_tier;

typedef struct kv_page {
    uint8_t *keys;        /* open: f32 rows (owned); sealed: inside rec, NULL when cold */
    uint8_t *values;      /* likewise */
    uint8_t *rec;         /* sealed: the record buffer (owned); NULL when open or cold */
    uint8_t *retired[2];  /* f32 rows of a page sealed in the current forward step, kept so its
                           * own queries still read it in f32; freed by rk_kv_drop_retired */
    uint8_t sealed;       /* holds a record (in RAM or on disk) rather than f32 rows */
    uint8_t tier;         /* kv_tier of a sealed page */
    uint8_t fetching;     /* the I/O thread is reading this page into rec */
    uint8_t locked;       /* rec's payload is encrypted (kv-lock.c) */
    uint8_t lock_tag[16]; /* ... its authentication tag */
    uint64_t lock_gen;    /* ... and its generation (the sealer's nonce counter) */
    rk_kv_page_heat heat; /* recency and attention mass, for the placement policy */
} kv_page;

struct kv_prefetch;
struct kv_prefetch_req;

/* What tiering keeps besides the pages. NULL fields when tiering is off. */
typedef struct kv_tiers {
    bool enabled;              /* budgets or a disk tier were configured */
    rk_kv_store *store;        /* the cold tier, or NULL */
    struct kv_prefetch *io;    /* the I/O thread (with a store) */
    struct kv_prefetch_req *req; /* the read it has in flight (kv-tier.c) */
    size_t hot_budget, warm_budget;
    size_t hot_bytes, warm_bytes;   /* sealed records in RAM, per tier */
    int64_t step;              /* decode/prefill steps begun (rk_kv_begin_step) */
    rk_kv_policy_params policy;
    rk_kv_policy_entry *entries; /* scratch for planning: (n_layer * max_pages) */
    size_t *entry_bytes;
    uint8_t *in_ram;
    int64_t *order;
    int64_t *evict_ids;        /* (n_layer * max_pages) warm pages, coldest first, ranked at */
    int64_t n_evict, evict_step; /* ... step evict_step (-1: never) */
    int64_t *cold;             /* (max_pages) scratch: the cold pages acquire reads */
    uint8_t *last_visit;       /* (n_layer, max_pages) pages the last sparse step read, or NULL */
    const rk_kv_sealer *sealer; /* locks warm pages (kv-lock.c) when set and tiering is on */
    uint64_t next_lock_gen;    /* last generation a lock used (from KV_LOCK_GEN_BASE up) */
    uint8_t *clear;            /* (max_pages * payload_bytes) the open layer's unlocked copies */
    int64_t clear_layer;       /* the layer whose locked pages point into clear, or -1 */
    int64_t *open_ids;         /* (max_pages) scratch: the pages kv_lock_open_layer opens */
    uint8_t *open_failed;      /* (max_pages) ... and which of them did not open */
    rk_kv_tier_stats stats;
} kv_tiers;

struct rk_kv_cache {
    rk_kv_dims dims;
    rk_kv_config config;
    int64_t max_pages;    /* per layer */
    int64_t n_pages;      /* allocated per layer (all layers alike) */
    int64_t *n_sealed;    /* (n_layer) pages sealed, a prefix */
    int64_t *n_released; /* (n_layer) pages freed behind a sliding window, a prefix */
    kv_page *pages;       /* (n_layer, max_pages) */
    rk_kv_codec *open_codec[2];    /* f32, keys and values */
    rk_kv_codec *sealed_codec[2];  /* the configured codecs */
    float **sink[2];      /* (n_layer) exact rows of positions 0 .. n_sink-1, or NULL */
    size_t bytes;         /* page bytes allocated in RAM (open, retired, sinks, records) */
    size_t key_bytes;     /* one layer's sealed key pages (n_head_kv codec pages) */
    size_t payload_bytes; /* key_bytes + the value pages */
    size_t rec_bytes;     /* bytes of a record buffer */
    size_t payload_off;   /* where the payload starts in a record */
    kv_record_pool *records; /* where records come from (kv_record_alloc / kv_record_free) */
    uint8_t *bounds;      /* (n_layer, max_pages, n_head_kv, bounds_bytes) key bounds, or NULL */
    size_t bounds_bytes;  /* of one page and head */
    kv_tiers tiers;
};

static inline kv_page *kv_page_at(const rk_kv_cache *kv, int64_t layer, int64_t i) {
    return &kv->pages[layer * kv->max_pages + i];
}

/* Bytes of one layer's page in codec c (all KV heads). */
size_t kv_layer_page_bytes(const rk_kv_cache *kv, const rk_kv_codec *c);
/* Bytes of one layer's sink rows for role r (0: keys, 1: values). */
size_t kv_sink_bytes(const rk_kv_cache *kv, int r);
/* A role keeps sink rows when its sealed codec is lossy (and the cache has sinks). */
bool kv_role_has_sinks(const rk_kv_cache *kv, int r);

/* A record buffer (rec_bytes, aligned for direct I/O when there is a store), or NULL. */
uint8_t *kv_record_alloc(const rk_kv_cache *kv);
/* Gives a record from kv_record_alloc back (NULL is a no-op). It is not wiped: the callers that
 * may hold a plain page under a sealer wipe it first. */
void kv_record_free(const rk_kv_cache *kv, uint8_t *rec);
/* Points keys/values of a sealed page into its record. */
void kv_page_attach(const rk_kv_cache *kv, kv_page *p, uint8_t *rec);

/* kv-tier.c: the tiers' side of the cache's life. */
rk_status kv_tiers_create(rk_kv_cache *kv, const rk_kv_tier_config *tc, rk_error *err);
void kv_tiers_free(rk_kv_cache *kv);
/* Pages first .. first+count-1 of `layer` were just sealed into records: writes them to the
 * disk tier (if any). On failure nothing changed on disk and the caller undoes the seal. */
rk_status kv_tiers_write_sealed(rk_kv_cache *kv, int64_t layer, int64_t first, int64_t count,
                                rk_error *err);
/* Newly sealed pages enter the hot tier; then the budgets are enforced. */
void kv_tiers_admit_sealed(rk_kv_cache *kv, int64_t layer, int64_t first, int64_t count);
/* A sealed page is going away (freed or re-opened): drop it from the tier accounting. */
void kv_tiers_forget_page(rk_kv_cache *kv, kv_page *p);
/* Reads a cold page back into RAM now (warm tier). */
rk_status kv_tiers_fetch_now(rk_kv_cache *kv, int64_t layer, int64_t i, rk_error *err);
/* Waits for the I/O thread's read in flight and takes its pages in (before pages change). */
void kv_tiers_quiesce(rk_kv_cache *kv);
/* Forgets the disk copies of pages first .. end-1 of `layer` (released behind a window). */
void kv_tiers_release(rk_kv_cache *kv, int64_t layer, int64_t first, int64_t end);
/* Forgets disk copies of pages keep .. of every layer (a truncation). */
void kv_tiers_truncate(rk_kv_cache *kv, int64_t keep);

/* kv-lock.c: warm pages encrypted in RAM. */
/* Generations of locks start here; the disk tier's count up from 1, so one sealer (one key)
 * never sees a generation, and so a nonce, twice. */
#define KV_LOCK_GEN_BASE (UINT64_C(1) << 63)
/* Warm pages are locked in this cache (a sealer and tiering). */
bool kv_lock_enabled(const rk_kv_cache *kv);
/* Encrypts p's payload in place (a resident, plain, sealed page). Returns 0, or -1 when the
 * sealer failed (the page stays plain). */
int kv_lock_page(rk_kv_cache *kv, kv_page *p);
/* A page just read back from a disk tier that keeps pages sealed: it is locked as it was on
 * disk (the store's generation and tag). */
void kv_lock_adopt_read(rk_kv_cache *kv, kv_page *p);
/* Decrypts a locked page's payload in place (it becomes plain). RK_ERR_IO naming the page when
 * it does not open (altered in memory): the page stays locked and never opens. */
rk_status kv_unlock_page(rk_kv_cache *kv, kv_page *p, rk_error *err);
/* Opens the locked pages of `layer` from page `first` on (those visit marks; NULL: all) into the
 * clear buffer for attention, spread over pool (NULL: this thread). On error nothing stays open. */
rk_status kv_lock_open_layer(rk_kv_cache *kv, int64_t layer, int64_t first, const uint8_t *visit, rk_pool *pool,
                             rk_error *err);
/* Wipes the clear buffer; the pages it held are locked again (keys/values NULL). */
void kv_lock_close_layer(rk_kv_cache *kv);
/* Copies the plain payload of sealed page i of `layer` to dst: a cold page is read back from
 * disk first, a locked one opened into dst. RK_ERR_IO when the page cannot be read or does not
 * open. */
rk_status kv_page_copy_payload(rk_kv_cache *kv, int64_t layer, int64_t i, uint8_t *dst, rk_error *err);
/* Zeroes n bytes in a way the compiler keeps (plain pages of a sealed cache being freed). */
void kv_wipe(void *buf, size_t n);

#endif
