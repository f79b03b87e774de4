/*
 * kv-sparse.h — per-page key bounds and page selection for the opt-in sparse attention mode
 * (`--kv-sparse PAGES`, never on by default; DESIGN.md, "KV cache": "Exact by default").
 *
 * Idea (Quest: "Query-Aware Sparsity for Efficient Long-Context LLM Inference", Tang et al.
 * 2024). For every sealed page and KV head keep the per-channel minimum and maximum of the
 * page's keys. For a query q, no key k of the page can score more than
 *
 *     U(q) = Σ_i max(q_i * min_i, q_i * max_i)     (≥ q·k for every k in the page)
 *
 * so attention visits the sink pages, the recent window, and the PAGES other pages with the
 * highest U; everything else is skipped. The bounds are kept for the f32 rows *before* the page
 * is encoded with a lossy codec: they bound the keys the model produced, not their codec
 * approximation (the difference is the codec's error, which the exact mode accepts too).
 *
 * Storage. Bounds are IEEE half floats, min[head_dim] then max[head_dim], little-endian:
 * 4 * head_dim bytes per page and KV head. Minima are rounded down and maxima up (stepping one
 * f16 ulp when round-to-nearest went the wrong way), so U stays an upper bound after rounding;
 * keys beyond the f16 range give ±65504 or ±inf, which only loosens the bound. A NaN in a
 * channel makes that channel [-inf, +inf], so such a page ranks first and is always visited.
 *
 * Time. Computing U costs one pass over 2 * head_dim halves per query head and page, 1/256 of
 * scoring the page's keys; selection keeps a heap of the best PAGES pages, O(n log PAGES). Both
 * are pure functions: no allocation, no state, the same inputs give the same pages.
 */
#ifndef RK_KV_SPARSE_H
#define RK_KV_SPARSE_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of one page's bounds for one KV head: 4 * head_dim. */
size_t rk_kv_bounds_bytes(int64_t head_dim);

/* Bounds of rows (n_rows x head_dim floats, row stride head_dim; n_rows >= 1) into out
 * (rk_kv_bounds_bytes(head_dim) bytes, any alignment). */
void rk_kv_bounds_compute(const float *rows, int64_t n_rows, int64_t head_dim, uint8_t *out);

/* An upper bound of q·k (q: head_dim floats) over every key k the bounds cover, rounded up to
 * float: the sum is taken in double with a margin for its own rounding, so the result is ≥ the
 * exact real q·k for every covered key. Channels where q_i == 0 contribute 0 (even with
 * infinite bounds). Finite q: the result is finite or +inf, never NaN. */
float rk_kv_bounds_upper(const uint8_t *bounds, const float *q, int64_t head_dim);

typedef struct rk_kv_sparse_params {
    int64_t top_pages;    /* pages chosen by bound besides sinks and recent (PAGES of
                           * --kv-sparse; < 0 acts as 0) */
    int64_t sink_pages;   /* pages 0 .. sink_pages-1 are always visited when in range (default
                           * 1; < 0 acts as 0) */
    int64_t recent_pages; /* the last recent_pages pages of the range are always visited
                           * (default 2: the open tail page and the one before; < 0 acts as 0) */
} rk_kv_sparse_params;

/* sink_pages 1, recent_pages 2, top_pages 0 (the caller sets it from --kv-sparse). */
rk_kv_sparse_params rk_kv_sparse_default_params(void);

/* Scratch rk_kv_sparse_select needs for a range of n_pages pages: 8 * n_pages bytes (a float
 * and an int32 per page, i.e. 2 * n_pages 4-byte words), 4-byte aligned. */
size_t rk_kv_sparse_scratch_bytes(int64_t n_pages);

/* Chooses the pages among [first, last] of one KV head that a group of n_q query heads
 * (q: n_q x head_dim floats, row stride head_dim; scale: the attention scale, > 0) visits.
 *
 *   bounds[i]  the bounds of page first + i, or NULL for a page without bounds (the open tail
 *              page), which is always visited; borrowed for the call
 *   visit[i]   output: 1 when page first + i is visited, else 0 (n = last - first + 1 entries)
 *   scratch    rk_kv_sparse_scratch_bytes(n) bytes
 *
 * Visited are: the sinks (absolute pages 0 .. sink_pages-1, so only a range that starts at
 * page 0 has them: a sliding window starting at first > 0 has no sinks, since its queries never
 * see page 0), the recent window (pages > last - recent_pages), pages without bounds, and then
 * the top_pages best of the remaining pages by max_g scale * U(q_g) (see kv-sparse.c for why
 * the max over the group), ties going to the lower page index. So the count is
 * min(n, |forced| + top_pages) where forced is the union of the three always-visited sets; in
 * particular a range of no more than sinks_in_range + recent + top pages is visited whole.
 * Returns the number of visited pages (n minus it were skipped); 0 and no writes when
 * first < 0 or last < first. n must be below 2^31. */
int64_t rk_kv_sparse_select(const rk_kv_sparse_params *p, int64_t first, int64_t last,
                            const uint8_t *const *bounds, const float *q, int64_t n_q,
                            int64_t head_dim, float scale, uint8_t *visit, void *scratch);

#endif
