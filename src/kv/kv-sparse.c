/*
 * kv-sparse.c — per-page key bounds (min/max per channel, stored as directed-rounded f16) and
 * the choice of pages a sparse-mode query group visits (see kv-sparse.h for the contract).
 *
 * Rounding. The bound must stay an upper bound through two roundings: min/max to f16 (handled
 * by rounding min down and max up) and the sum over channels. Each product q_i * m_i of a float
 * and a half is exact in double (24 + 11 significant bits), so only the additions round; their
 * total error is below (d - 1) * 2^-53 * Σ|q_i m_i|, and adding twice that before rounding the
 * double up to float makes the returned value ≥ the exact real bound.
 *
 * Grouped queries. Several query heads share a KV head and therefore its page choice. A page is
 * ranked by the max over the group of scale * U(q_g), not the sum or mean: a page holding what
 * one retrieval head needs (a "needle") must not be diluted by the heads that ignore it, which
 * is the same reasoning as the placement policy's max attention share (kv-policy.h). One ranking
 * with one budget, rather than the union of per-head top lists, keeps the number of visited
 * pages fixed at top_pages whatever the group size. Scores are in logit units (scale * q·k):
 * the scale is common to the group and does not change the order, but it keeps the scores
 * comparable with the running max of attention, should a caller want to skip by threshold. The
 * known limit of max: a head whose queries have a much larger norm dominates the ranking; its
 * softmax is also the most peaked, so its top pages are the ones that carry the most weight.
 */
#include "kv/kv-sparse.h"

#include <math.h>

#include "quant/quant.h"

size_t rk_kv_bounds_bytes(int64_t head_dim) { return (size_t)head_dim * 4; }

/* One f16 ulp towards -inf / +inf (-0 and +0 both count as zero; ±inf stay). */
static uint16_t f16_step_down(uint16_t h) {
    if (h == 0xfc00) return h;
    if ((h & 0x7fff) == 0) return 0x8001;
    return (h & 0x8000) ? (uint16_t)(h + 1) : (uint16_t)(h - 1);
}

static uint16_t f16_step_up(uint16_t h) {
    if (h == 0x7c00) return h;
    if ((h & 0x7fff) == 0) return 0x0001;
    return (h & 0x8000) ? (uint16_t)(h - 1) : (uint16_t)(h + 1);
}

/* The largest half ≤ v (down) or the smallest half ≥ v (up); v is not NaN. */
static uint16_t f16_round_dir(float v, int up) {
    uint16_t h = rk_fp32_to_fp16(v);
    const float back = rk_fp16_to_fp32(h);
    if (up && back < v) h = f16_step_up(h);
    if (!up && back > v) h = f16_step_down(h);
    return h;
}

static void put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static float get_f16(const uint8_t *p) { return rk_fp16_to_fp32((uint16_t)(p[0] | (p[1] << 8))); }

void rk_kv_bounds_compute(const float *rows, int64_t n_rows, int64_t head_dim, uint8_t *out) {
    for (int64_t i = 0; i < head_dim; i++) {
        float lo = INFINITY, hi = -INFINITY;
        for (int64_t t = 0; t < n_rows; t++) {
            const float v = rows[t * head_dim + i];
            if (isnan(v)) {
                lo = -INFINITY;
                hi = INFINITY;
                break;
            }
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        put_u16(out + 2 * i, f16_round_dir(lo, 0));
        put_u16(out + 2 * (head_dim + i), f16_round_dir(hi, 1));
    }
}

float rk_kv_bounds_upper(const uint8_t *bounds, const float *q, int64_t head_dim) {
    const uint8_t *mins = bounds, *maxs = bounds + 2 * head_dim;
    double sum = 0.0, mag = 0.0;
    for (int64_t i = 0; i < head_dim; i++) {
        const float qi = q[i];
        if (qi == 0.0f) continue; /* 0 * inf would be NaN; the channel adds nothing */
        const double t = (double)qi * (qi > 0.0f ? get_f16(maxs + 2 * i) : get_f16(mins + 2 * i));
        sum += t;
        mag += fabs(t);
    }
    const double hi = sum + 2.0 * (double)head_dim * ldexp(mag, -53);
    float f = (float)hi;
    if ((double)f < hi) f = nextafterf(f, INFINITY);
    return f;
}

rk_kv_sparse_params rk_kv_sparse_default_params(void) {
    rk_kv_sparse_params p;
    p.top_pages = 0;
    p.sink_pages = 1;
    p.recent_pages = 2;
    return p;
}

size_t rk_kv_sparse_scratch_bytes(int64_t n_pages) { return n_pages > 0 ? (size_t)n_pages * 8 : 0; }

/* A candidate page: its score and its offset in the range. */
typedef struct cand {
    float score;
    int32_t off;
} cand;

/* a ranks before b: higher score, then lower page. Scores are never NaN here. */
static int better(cand a, cand b) {
    return a.score > b.score || (a.score == b.score && a.off < b.off);
}

/* Min-heap by rank (the root is the worst page kept): restores the order below node i. */
static void sift_down(cand *h, int64_t n, int64_t i) {
    for (;;) {
        int64_t w = i;
        const int64_t l = 2 * i + 1, r = l + 1;
        if (l < n && better(h[w], h[l])) w = l;
        if (r < n && better(h[w], h[r])) w = r;
        if (w == i) return;
        const cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static void sift_up(cand *h, int64_t i) {
    while (i > 0) {
        const int64_t parent = (i - 1) / 2;
        if (!better(h[parent], h[i])) return;
        const cand t = h[i];
        h[i] = h[parent];
        h[parent] = t;
        i = parent;
    }
}

/* max_g scale * U(q_g) for one page; NaN (from a non-finite query) ranks as +inf. */
static float group_score(const uint8_t *b, const float *q, int64_t n_q, int64_t head_dim,
                         float scale) {
    float best = -INFINITY;
    for (int64_t g = 0; g < n_q; g++) {
        const float s = scale * rk_kv_bounds_upper(b, q + g * head_dim, head_dim);
        if (isnan(s)) return INFINITY;
        best = s > best ? s : best;
    }
    return best;
}

static int64_t clamp0(int64_t v) { return v < 0 ? 0 : v; }

int64_t rk_kv_sparse_select(const rk_kv_sparse_params *p, int64_t first, int64_t last,
                            const uint8_t *const *bounds, const float *q, int64_t n_q,
                            int64_t head_dim, float scale, uint8_t *visit, void *scratch) {
    if (first < 0 || last < first) return 0;
    const int64_t n = last - first + 1;
    const int64_t top = clamp0(p->top_pages), sinks = clamp0(p->sink_pages);
    const int64_t recent = clamp0(p->recent_pages);
    cand *heap = scratch;
    int64_t n_heap = 0, visited = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t page = first + i;
        const int forced = page < sinks || page > last - recent || bounds[i] == NULL;
        visit[i] = (uint8_t)forced;
        visited += forced;
        if (forced || top == 0) continue;
        const cand c = {group_score(bounds[i], q, n_q, head_dim, scale), (int32_t)i};
        if (n_heap < top) {
            heap[n_heap] = c;
            sift_up(heap, n_heap++);
        } else if (better(c, heap[0])) {
            heap[0] = c;
            sift_down(heap, n_heap, 0);
        }
    }
    for (int64_t j = 0; j < n_heap; j++)
        visit[heap[j].off] = 1;
    return visited + n_heap;
}
