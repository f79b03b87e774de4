/*
 * kv-replicate.h — filling a KV cache to a great depth from the pages of a short real prefill,
 * for benchmarks of decode at contexts too long to prefill on the machine at hand.
 *
 * Decode speed at depth depends on how many page bytes attention reads, from which tier, and
 * how fast the disk tier brings them back, not on what the keys say: a cache filled with
 * copies of real pages (real codec bytes, real value distributions) exercises exactly the code
 * and the memory traffic of a cache filled by a real prefill of that length, for the cost of a
 * memcpy and a disk write per page. The copies are not a valid sequence: each keeps the RoPE
 * rotation of the position it was copied from, so what the model attends to differs from a
 * real context of that length (do not read quality into it).
 */
#ifndef RK_KV_REPLICATE_H
#define RK_KV_REPLICATE_H

#include <stdint.h>

#include "kv/kv-cache.h"

/* Grows the cache from n_tokens_now to `depth` positions with sealed copies of its own pages.
 *
 * Precondition: the cache holds exactly n_tokens_now positions, a positive multiple of
 * RK_KV_PAGE_TOKENS, in sealed pages (every page of every layer sealed, or released behind a
 * sliding window); depth is a multiple of RK_KV_PAGE_TOKENS with n_tokens_now <= depth <= n_ctx.
 *
 * Effect: with k = n_tokens_now / RK_KV_PAGE_TOKENS source pages per layer, pages k ..
 * depth/RK_KV_PAGE_TOKENS - 1 of every layer become sealed copies of source pages 1 .. k-1 in
 * turn (page 0 holds the attention sinks and is not copied, unless k == 1), payload bytes and
 * key bounds alike. They go through the same path as sealed pages: written to the disk tier
 * (if any, 64 pages per write) and admitted to the hot tier, so the budgets demote and evict
 * as they would for real pages; RAM never holds more than the budgets plus one chunk of one
 * layer's copies (256 pages). A source page that lives only on disk is read back first.
 *
 * A layer that released pages (a sliding-window layer: it holds only its last `kept` pages,
 * those its window reaches) is not copied page by page: its kept pages move, as copies, to
 * the end of the depth (pages depth/256 - kept .. depth/256 - 1) and everything before them
 * counts as released, so decode at the depth reads the same number of window pages as after a
 * real prefill. The copies must not land on the pages they copy: depth is n_tokens_now or at
 * least n_tokens_now + kept pages.
 *
 * Errors: RK_ERR_INVALID_ARG when the precondition does not hold (the message says which part);
 * RK_ERR_NO_MEMORY; RK_ERR_IO from the disk tier (no space left, --kv-disk-max
 * reached, a source page failing its checksum). On any error the cache is truncated back to
 * n_tokens_now positions: the copies made so far are freed and their disk space released. */
rk_status rk_kv_fill_replicated(rk_kv_cache *kv, int64_t n_tokens_now, int64_t depth, rk_error *err);

#endif
