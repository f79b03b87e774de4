/*
 * kv-cache.h — the paged key/value cache of one sequence.
 *
 * Keys and values live in pages of RK_KV_PAGE_TOKENS consecutive positions per layer; a page
 * is allocated when the sequence first reaches it, so memory grows with the context actually
 * used rather than n_ctx up front. Within a page each KV head's rows are one codec page (a
 * *stream*: layer * n_head_kv + head), so attention streams one head's keys (and values).
 *
 * Life of a page: it is born open, in f32, and positions are written into it with rk_kv_key /
 * rk_kv_value. Once every position of the page is written, rk_kv_seal_full_pages encodes it
 * with the cache's key and value codecs and frees the f32 rows: a sealed page is immutable
 * (which is what lets tiers move, checksum and encrypt it). The open tail page of every layer
 * stays in f32, so the most recent tokens are always exact. Truncating into a sealed page
 * decodes it back into an open f32 page (the values attention saw, not the originals).
 *
 * The cache takes plain dimensions, never a model object.
 */
#ifndef RK_KV_CACHE_H
#define RK_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core/threadpool.h"
#include "kv/kv-codec.h"
#include "ringkv.h"

typedef struct rk_kv_cache rk_kv_cache;

typedef struct rk_kv_dims {
    int64_t n_layer;
    int64_t n_head_kv;
    int64_t head_dim_k;
    int64_t head_dim_v;
    int64_t n_ctx;        /* positions the cache may hold */
} rk_kv_dims;

/* Tiers of sealed pages (DESIGN.md, "Tiers"). HOT and WARM are RAM on the CPU: hot holds the
 * open pages, the sinks and the pages the placement policy ranks highest (the first page, the
 * most recent ones, those that receive the most attention mass); warm holds the rest that fit,
 * including pages read back from disk for the current layer and prefetched for the next one.
 * COLD is the disk: with a disk tier every sealed page is written there once when it is sealed
 * (large sequential writes), so demoting a page never writes, and a page read back is verified
 * against its checksum. Tiers change where bytes live, never a logit: attention reads the same
 * codec bytes in the same order. */
typedef struct rk_kv_tier_config {
    size_t hot_bytes;        /* budget of the hot tier; 0 = no limit */
    size_t warm_bytes;       /* budget of the warm tier; 0 = no limit */
    const char *disk_dir;    /* directory of the cold tier; NULL = no disk tier (borrowed until
                              * rk_kv_create returns) */
    uint64_t disk_max_bytes; /* most bytes of page files; 0 = no limit */
    int disk_direct;         /* 1: O_DIRECT reads and writes where the filesystem allows */
    const rk_kv_sealer *sealer; /* NULL, or encryption of what leaves the hot tier: page files
                                 * and warm pages in RAM, which attention opens one layer at a
                                 * time into a clear buffer of one layer's pages (outside the
                                 * budgets, zeroed after each layer; kv-lock.c). Borrowed. */
} rk_kv_tier_config;

typedef struct rk_kv_config {
    rk_kv_codec_spec key_codec;    /* codec of sealed key pages */
    rk_kv_codec_spec value_codec;  /* codec of sealed value pages */
    int simd_level;                /* rk_simd_level of the kernels */
    uint64_t seed;                 /* rotations and sketches of tq codecs */
    int64_t n_sink;                /* positions 0 .. n_sink-1 stay exact (f32) after page 0 is
                                    * sealed: the attention sinks, which most queries weight
                                    * heavily (0 .. RK_KV_PAGE_TOKENS) */
    rk_kv_tier_config tiers;       /* where sealed pages live (all zero: all in RAM) */
    bool key_bounds;               /* keep per-channel min/max of every sealed page's keys
                                    * (kv-sparse.h), for the opt-in sparse decode */
} rk_kv_config;

/* An f32 cache configuration (both codecs f32) for simd_level. */
rk_kv_config rk_kv_config_f32(int simd_level);

/* *out belongs to the caller. RK_ERR_INVALID_ARG for non-positive dimensions; the codecs'
 * errors (RK_ERR_UNSUPPORTED for a head dimension a codec cannot lay out). */
rk_status rk_kv_create(const rk_kv_dims *dims, const rk_kv_config *config, rk_kv_cache **out,
                       rk_error *err);
void rk_kv_free(rk_kv_cache *kv);

/* Makes positions [0, n_tokens) addressable in every layer, allocating open pages as needed.
 * RK_ERR_CONTEXT_FULL beyond n_ctx; RK_ERR_NO_MEMORY when a page cannot be allocated
 * (pages allocated before the failure stay and are reused). */
rk_status rk_kv_reserve(rk_kv_cache *kv, int64_t n_tokens, rk_error *err);

/* Encodes every open page of `layer` that lies wholly below position n_tokens with the
 * cache's codecs, spreading (page, head) pairs over `pool` (NULL: this thread). A page whose
 * codec pages cannot be allocated stays open (still correct): RK_ERR_NO_MEMORY. The f32 rows
 * of the pages sealed here are kept until rk_kv_drop_retired, so that the queries of the
 * same step that lie inside such a page still read it in f32: every query reads its own page
 * in f32 and the full pages before it through the codec, however the tokens were batched. */
rk_status rk_kv_seal_full_pages(rk_kv_cache *kv, int64_t layer, int64_t n_tokens, rk_pool *pool,
                                rk_error *err);

/* Forgets positions n_tokens and beyond: frees the pages wholly beyond, and re-opens (decodes
 * to f32) a sealed page that n_tokens falls inside. RK_ERR_NO_MEMORY if that page cannot be
 * re-opened; RK_ERR_UNSUPPORTED when n_tokens falls inside a page a layer released
 * (rk_kv_release_before); in both cases the cache holds the same values. */
rk_status rk_kv_truncate(rk_kv_cache *kv, int64_t n_tokens, rk_error *err);

/* Frees the f32 rows kept by the last rk_kv_seal_full_pages of `layer`. */
void rk_kv_drop_retired(rk_kv_cache *kv, int64_t layer);

/* Frees the pages of `layer` that end at or before position `pos` (a sliding-window layer
 * whose queries will never look before pos again). Those positions can no longer be read or
 * rewound to in that layer (see rk_kv_first_kept). */
void rk_kv_release_before(rk_kv_cache *kv, int64_t layer, int64_t pos);

/* The first position every layer still holds (0 unless pages were released). */
int64_t rk_kv_first_kept(const rk_kv_cache *kv);

/* Where to write the key (head_dim_k floats) / value (head_dim_v floats) of KV head `head` at
 * position pos of a layer. pos must be reserved and its page open. Positions pos+1 .. the end
 * of pos's page follow contiguously (row stride head_dim). */
float *rk_kv_key(const rk_kv_cache *kv, int64_t layer, int64_t head, int64_t pos);
float *rk_kv_value(const rk_kv_cache *kv, int64_t layer, int64_t head, int64_t pos);

/* One head's page as attention by the query at query_pos reads it: the codec of each part and
 * its bytes (an open page, or the query's own page while its f32 rows are retained, reads
 * through the f32 codec). Borrowed; valid until the page is sealed, truncated or freed. */
typedef struct rk_kv_page_view {
    const rk_kv_codec *key_codec;
    const rk_kv_codec *value_codec;
    const uint8_t *keys;
    const uint8_t *values;
    int64_t stream;     /* layer * n_head_kv + head */
    /* Rows 0 .. n_exact-1 of the page read from these f32 rows (open-codec layout, row stride
     * head_dim) instead: the sink rows of a sealed page 0. n_exact = 0 otherwise. */
    int64_t n_exact;
    const rk_kv_codec *exact_key_codec;
    const rk_kv_codec *exact_value_codec;
    const uint8_t *exact_keys;
    const uint8_t *exact_values;
} rk_kv_page_view;

void rk_kv_get_page(const rk_kv_cache *kv, int64_t layer, int64_t head, int64_t page,
                    int64_t query_pos, rk_kv_page_view *view);

/* The key bounds of a sealed page of one head (rk_kv_bounds_bytes(head_dim_k) bytes), or NULL
 * when the page is open or the cache keeps no bounds. Borrowed. */
const uint8_t *rk_kv_page_bounds(const rk_kv_cache *kv, int64_t layer, int64_t head, int64_t page);

/* Bytes one position takes in every layer (keys and values) once its page is sealed. */
size_t rk_kv_bytes_per_token(const rk_kv_cache *kv);
/* Bytes of one layer's sealed page: keys and values of every KV head in their codecs. */
size_t rk_kv_sealed_page_bytes(const rk_kv_cache *kv);

/* Bytes currently allocated for pages (open pages count at f32). */
size_t rk_kv_bytes(const rk_kv_cache *kv);

/* Most floats a prepared query takes for this cache's key codecs (f32 tail included). */
int64_t rk_kv_prep_floats(const rk_kv_cache *kv);

/* --- tiers --------------------------------------------------------------------------------
 * The forward pass brackets each layer's attention with rk_kv_acquire / rk_kv_settle; without
 * budgets or a disk tier both return at once. */

/* rk_kv_tier_stats (what moved between tiers and what attention read from each) is in
 * ringkv.h. */

/* A step (one forward call) begins: ages the pages' recency. */
void rk_kv_begin_step(rk_kv_cache *kv);

/* Makes the sealed pages of `layer` from position first_pos on readable by attention, reading
 * cold ones back from disk (waiting for the I/O thread where it is already reading them) and
 * opening warm pages sealed in RAM (a sealer; spread over pool, NULL: this thread), then asks
 * the I/O thread to read the next layer's cold pages. visit (NULL: every page) marks the pages
 * attention will read, by page index. RK_ERR_IO for a page that fails its checksum, cannot be
 * read or does not open (the message names the page and layer; the cache is unchanged and
 * usable); RK_ERR_NO_MEMORY when the warm tier cannot make room. */
rk_status rk_kv_acquire(rk_kv_cache *kv, int64_t layer, int64_t first_pos, const uint8_t *visit, rk_pool *pool,
                        rk_error *err);

/* Page `page` of `layer` received `share` (0..1, the largest over query heads) of the softmax
 * mass in this step's attention: the placement policy's measure of importance. */
void rk_kv_note_mass(rk_kv_cache *kv, int64_t layer, int64_t page, float share);

/* After attention of `layer`: wipes the pages opened for it, re-plans which of its pages stay
 * hot (sealing those that turn warm) and trims the warm tier to its budget. */
void rk_kv_settle(rk_kv_cache *kv, int64_t layer);

/* Tiering is on (budgets or a disk tier). */
int rk_kv_tiered(const rk_kv_cache *kv);
void rk_kv_get_tier_stats(const rk_kv_cache *kv, rk_kv_tier_stats *out);

/* Least RAM (hot, warm) a tiered cache of these dimensions and codecs needs with a disk tier:
 * hot holds the open pages, the sinks and the pinned pages; warm one layer's pages at n_ctx
 * being read plus the next layer's being prefetched. */
rk_status rk_kv_min_budgets(const rk_kv_cache *kv, size_t *hot, size_t *warm);

/* Bytes of one layer's sealed page as stored (the record, with a disk tier's header and
 * padding). */
size_t rk_kv_record_bytes(const rk_kv_cache *kv);

const rk_kv_dims *rk_kv_get_dims(const rk_kv_cache *kv);
const rk_kv_config *rk_kv_get_config(const rk_kv_cache *kv);

/* Blocks (kv-block.c): one layer's sealed pages in one buffer, for ring attention. A rank
 * exports its pages, another reads them with rk_kv_block_get_page through a cache of the same
 * dimensions and codecs, exactly as the holder would read them. */
typedef struct rk_kv_block {
    const uint8_t *data;    /* rk_kv_block_bytes(kv, n_pages, n_sink) bytes (borrowed) */
    int64_t n_pages;
    int64_t n_sink;         /* exact sink rows carried with the block's page 0 (0: none) */
} rk_kv_block;

/* Bytes of a block of n_pages pages carrying n_sink sink rows. */
size_t rk_kv_block_bytes(const rk_kv_cache *kv, int64_t n_pages, int64_t n_sink);
/* The sink rows a block of `layer` starting at page `first` carries: the cache's n_sink when
 * first is page 0 and it is sealed (its sinks are kept), else 0. */
int64_t rk_kv_block_sinks(const rk_kv_cache *kv, int64_t layer, int64_t first);
/* Writes pages first .. first+n_pages-1 of `layer` (all sealed; cold ones are read back) and
 * their sink rows into buf (rk_kv_block_bytes(kv, n_pages, rk_kv_block_sinks(kv, layer, first))
 * bytes). RK_ERR_INTERNAL for a page that is not sealed; RK_ERR_IO from the disk tier. */
rk_status rk_kv_block_export(rk_kv_cache *kv, int64_t layer, int64_t first, int64_t n_pages, uint8_t *buf,
                             rk_error *err);
/* A view of the block's page `page`, KV head `head`, as rk_kv_get_page gives it for a sealed
 * page read by a later query (the block's cache is only asked for codecs and dimensions). */
void rk_kv_block_get_page(const rk_kv_cache *kv, const rk_kv_block *block, int64_t layer, int64_t head,
                          int64_t page, rk_kv_page_view *view);

/* Snapshots (kv-snapshot.c): the cache's bytes as a stream, for keeping a sequence across a
 * restart (rk_stream_*_fn: ringkv.h). */
/* Writes the state of the first n_tokens positions (the cache's n_past). Cold pages are read
 * back from the disk tier on the way. */
rk_status rk_kv_save(rk_kv_cache *kv, int64_t n_tokens, rk_stream_write_fn write, void *user, rk_error *err);
/* Reads a snapshot into an empty cache of the same shape and codecs; *n_tokens = its length.
 * RK_ERR_FORMAT for a stream of another shape or a damaged one; the cache is empty again on
 * any error. */
rk_status rk_kv_load(rk_kv_cache *kv, rk_stream_read_fn read, void *user, int64_t *n_tokens, rk_error *err);

#endif
