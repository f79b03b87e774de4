/*
 * kv-policy.c — heat scores, ranking and placement plans for the tiered KV cache (see
 * kv-policy.h for the rules and the score's scale).
 *
 * Mass is stored already decayed to mass_step and decayed lazily on read, so recording a use is
 * O(1) and pages nobody touches cost nothing per step. Ranking is an in-place heapsort over the
 * caller's order[] (glibc's qsort may allocate; the cache calls this while it is short of RAM),
 * recomputing scores in the comparison: a few exp2 per comparison is cheap next to moving a
 * page, and it keeps the module free of scratch memory.
 */
#include "kv/kv-policy.h"

#include <math.h>

#include "core/error.h"

rk_kv_policy_params rk_kv_policy_default_params(void) {
    rk_kv_policy_params p;
    p.recent_pages = 2;
    p.sink_pages = 1;
    p.mass_half_life = 64.0;
    p.recency_weight = 0.01;
    return p;
}

void rk_kv_heat_init(rk_kv_page_heat *h) {
    h->last_use = -1;
    h->mass = 0.0f;
    h->mass_step = 0;
}

/* 2^(-dt / half_life) for dt >= 0; 1 when the half-life is not a positive finite number. */
static double decay_factor(double dt, const rk_kv_policy_params *p) {
    const double hl = p->mass_half_life;
    if (!(hl > 0.0) || isinf(hl) || dt <= 0.0) return 1.0;
    return exp2(-dt / hl);
}

void rk_kv_heat_record(rk_kv_page_heat *h, int64_t step, float share,
                       const rk_kv_policy_params *p) {
    double s = share > 0.0f ? (share < 1.0f ? (double)share : 1.0) : 0.0; /* NaN -> 0 */
    double m = h->mass > 0.0f ? (double)h->mass : 0.0;
    if (step >= h->mass_step) {
        m = m * decay_factor((double)(step - h->mass_step), p) + s;
        h->mass_step = step;
    } else {
        m += s * decay_factor((double)(h->mass_step - step), p);
    }
    h->mass = (float)m;
    if (step > h->last_use) h->last_use = step;
}

double rk_kv_heat_score(const rk_kv_page_heat *h, int64_t step, const rk_kv_policy_params *p) {
    const rk_kv_page_heat never = {-1, 0.0f, 0};
    if (!h) h = &never;
    const double mass = h->mass > 0.0f ? (double)h->mass : 0.0;
    const double decayed = mass * decay_factor((double)(step - h->mass_step), p);
    const double age = step > h->last_use ? (double)(step - h->last_use) : 0.0;
    const double w = isfinite(p->recency_weight) ? p->recency_weight : 0.0;
    const double score = decayed - w * age;
    return isnan(score) ? -INFINITY : score;
}

int rk_kv_policy_pinned(int64_t index, int64_t n_pages, const rk_kv_policy_params *p) {
    if (index < 0 || index >= n_pages) return 0;
    const int64_t recent = p->recent_pages < 1 ? 1 : p->recent_pages;
    return index < p->sink_pages || index >= n_pages - recent;
}

/* --- ranking ---------------------------------------------------------------------------- */

typedef struct rank_ctx {
    const rk_kv_policy_entry *entries;
} rank_ctx;

/* Total order of entries a and b: colder first, then id, then position. The scores were
 * computed once per entry (exp2 in every comparison cost a tenth of a 1M-token decode step). */
static int colder(const rank_ctx *c, int64_t a, int64_t b) {
    const double sa = c->entries[a].score, sb = c->entries[b].score;
    if (sa != sb) return sa < sb;
    if (c->entries[a].id != c->entries[b].id) return c->entries[a].id < c->entries[b].id;
    return a < b;
}

/* Restores the max-heap (hottest at the root) below node i of order[0 .. n). */
static void sift_down(const rank_ctx *c, int64_t *order, int64_t i, int64_t n) {
    for (;;) {
        int64_t top = i;
        const int64_t l = 2 * i + 1, r = l + 1;
        if (l < n && colder(c, order[top], order[l])) top = l;
        if (r < n && colder(c, order[top], order[r])) top = r;
        if (top == i) return;
        const int64_t t = order[i];
        order[i] = order[top];
        order[top] = t;
        i = top;
    }
}

int64_t rk_kv_policy_rank_coldest(rk_kv_policy_entry *entries, int64_t n, int64_t step,
                                  const rk_kv_policy_params *p, int64_t *order) {
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (!rk_kv_policy_pinned(entries[i].index, entries[i].n_pages, p)) {
            entries[i].score = rk_kv_heat_score(entries[i].heat, step, p);
            order[m++] = i;
        }
    const rank_ctx c = {entries};
    for (int64_t i = m / 2; i-- > 0;)
        sift_down(&c, order, i, m);
    for (int64_t end = m - 1; end > 0; end--) { /* move the hottest to the back */
        const int64_t t = order[0];
        order[0] = order[end];
        order[end] = t;
        sift_down(&c, order, 0, end);
    }
    return m;
}

/* --- planning --------------------------------------------------------------------------- */

rk_status rk_kv_policy_plan(rk_kv_policy_entry *entries, const size_t *bytes, int64_t n,
                            size_t budget, int64_t step, const rk_kv_policy_params *p,
                            uint8_t *in_ram, int64_t *scratch_order, rk_error *err) {
    if (n < 0 || !p || (n > 0 && (!entries || !bytes || !in_ram || !scratch_order)))
        return rk_error_set(err, RK_ERR_INVALID_ARG, "kv policy: plan of %lld pages: bad arguments",
                            (long long)n);
    size_t pinned = 0;
    int64_t n_pinned = 0;
    int over = 0; /* the pinned bytes passed the budget (or size_t) */
    for (int64_t i = 0; i < n; i++) {
        in_ram[i] = (uint8_t)rk_kv_policy_pinned(entries[i].index, entries[i].n_pages, p);
        if (!in_ram[i]) continue;
        n_pinned++;
        if (bytes[i] > SIZE_MAX - pinned) over = 1;
        pinned = bytes[i] > SIZE_MAX - pinned ? SIZE_MAX : pinned + bytes[i];
    }
    if (over || pinned > budget)
        return rk_error_set(err, RK_ERR_NO_MEMORY,
                            "kv policy: %lld pinned pages (sinks and recent) need %s%zu bytes, "
                            "more than the budget of %zu bytes",
                            (long long)n_pinned, over ? "over " : "", pinned, budget);
    size_t left = budget - pinned;
    const int64_t m = rk_kv_policy_rank_coldest(entries, n, step, p, scratch_order);
    for (int64_t k = m; k-- > 0;) { /* hottest first */
        const int64_t i = scratch_order[k];
        if (bytes[i] > left) break;
        left -= bytes[i];
        in_ram[i] = 1;
    }
    rk_error_clear(err);
    return RK_OK;
}
