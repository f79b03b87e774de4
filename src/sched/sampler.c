/*
 * sampler.c — choosing the next token from logits (the rk_sampler_* API of ringkv.h).
 *
 * The chain follows llama.cpp's default order: repetition penalty → top-k → top-p → min-p →
 * temperature → draw. Temperature <= 0 is greedy: the argmax of the penalised logits, the
 * lowest id on ties (top-k/p and min-p always keep the argmax, so they cannot change it).
 *
 * Cost per call is expected O(n_vocab) and nothing is allocated: the working copy of the
 * logits, the candidate list and the probabilities are scratch arrays of n_vocab sized at
 * create. Nothing is sorted: top-k is a quickselect on the logits, top-p a quickselect on the
 * probability mass.
 *
 * Top-p and min-p both keep a prefix of the candidates sorted by logit, so their intersection
 * is the shorter prefix whatever the order: min-p filters first (O(n), cheap), then top-p walks
 * the survivors with probabilities normalised over the set top-k left, exactly as if it ran
 * first.
 *
 * Ties between equal logits are broken by the lower id everywhere, so the result is a
 * function of (seed, logits sequence, accepted tokens) only.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ringkv.h"

#define MAX_REPEAT_LAST_N (1 << 20)

struct rk_sampler {
    rk_sampler_params p;
    int32_t n_vocab;
    float *logits;  /* (n_vocab) penalised, sanitised copy of the input */
    int32_t *cand;  /* (n_vocab) candidate ids */
    float *prob;    /* (n_vocab) unnormalised weights, parallel to cand */
    uint32_t *seen; /* (n_vocab) stamp per id: penalise each id once per call */
    uint32_t stamp;
    rk_token *recent; /* (repeat_last_n) ring of accepted tokens */
    int32_t n_recent, head;
    uint64_t rng[4]; /* xoshiro256** state */
};

rk_sampler_params rk_sampler_default_params(void) {
    rk_sampler_params p;
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.seed = 42;
    return p;
}

/* ---- PRNG: splitmix64 seeds xoshiro256** ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(uint64_t s[4]) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* Uniform in [0, 1). */
static double next_uniform(uint64_t s[4]) { return (double)(next_u64(s) >> 11) * 0x1.0p-53; }

/* ---- create / free / accept ---- */

static rk_status check_params(const rk_sampler_params *p, int32_t n_vocab, rk_error *err) {
    if (!p) return rk_error_set(err, RK_ERR_INVALID_ARG, "sampler: params is NULL");
    if (n_vocab <= 0)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "sampler: n_vocab %d must be positive",
                            n_vocab);
    if (!isfinite(p->temperature))
        return rk_error_set(err, RK_ERR_INVALID_ARG, "sampler: temperature %g is not finite",
                            (double)p->temperature);
    if (isnan(p->top_p) || p->top_p < 0)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "sampler: top_p %g must be >= 0 (>= 1: off)",
                            (double)p->top_p);
    if (isnan(p->min_p) || p->min_p < 0 || p->min_p > 1)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "sampler: min_p %g must be in [0, 1] (0: off)",
                            (double)p->min_p);
    if (!isfinite(p->repeat_penalty) || p->repeat_penalty <= 0)
        return rk_error_set(err, RK_ERR_INVALID_ARG,
                            "sampler: repeat_penalty %g must be positive and finite (1: off)",
                            (double)p->repeat_penalty);
    if (p->repeat_last_n < 0 || p->repeat_last_n > MAX_REPEAT_LAST_N)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "sampler: repeat_last_n %d must be in [0, %d]",
                            p->repeat_last_n, MAX_REPEAT_LAST_N);
    return RK_OK;
}

rk_status rk_sampler_create(const rk_sampler_params *params, int32_t n_vocab, rk_sampler **out,
                            rk_error *err) {
    if (!out) return rk_error_set(err, RK_ERR_INVALID_ARG, "sampler: out is NULL");
    *out = NULL;
    rk_status st = check_params(params, n_vocab, err);
    if (st != RK_OK) return st;
    rk_sampler *s = calloc(1, sizeof *s);
    if (!s) return rk_error_set(err, RK_ERR_NO_MEMORY, "sampler: out of memory");
    size_t n = (size_t)n_vocab;
    s->p = *params;
    s->n_vocab = n_vocab;
    s->logits = malloc(n * sizeof *s->logits);
    s->cand = malloc(n * sizeof *s->cand);
    s->prob = malloc(n * sizeof *s->prob);
    s->seen = calloc(n, sizeof *s->seen);
    s->recent =
        malloc((size_t)(params->repeat_last_n > 0 ? params->repeat_last_n : 1) * sizeof *s->recent);
    if (!s->logits || !s->cand || !s->prob || !s->seen || !s->recent) {
        rk_sampler_free(s);
        return rk_error_set(err, RK_ERR_NO_MEMORY, "sampler: out of memory for a vocabulary of %d",
                            n_vocab);
    }
    uint64_t x = params->seed;
    for (int i = 0; i < 4; i++)
        s->rng[i] = splitmix64(&x);
    *out = s;
    return RK_OK;
}

void rk_sampler_free(rk_sampler *s) {
    if (!s) return;
    free(s->logits);
    free(s->cand);
    free(s->prob);
    free(s->seen);
    free(s->recent);
    free(s);
}

void rk_sampler_accept(rk_sampler *s, rk_token token) {
    if (!s || s->p.repeat_last_n <= 0) return;
    s->recent[s->head] = token;
    s->head = (s->head + 1) % s->p.repeat_last_n;
    if (s->n_recent < s->p.repeat_last_n) s->n_recent++;
}

/* ---- ordering helpers (a total order: higher logit first, then lower id) ---- */

static inline int better(const float *l, int32_t a, int32_t b) {
    return l[a] > l[b] || (l[a] == l[b] && a < b);
}

static inline void swap_i32(int32_t *a, int32_t *b) {
    int32_t t = *a;
    *a = *b;
    *b = t;
}

static void insertion_sort(const float *l, int32_t *a, int64_t lo, int64_t hi) {
    for (int64_t i = lo + 1; i < hi; i++) {
        int32_t v = a[i];
        int64_t j = i;
        for (; j > lo && better(l, v, a[j - 1]); j--)
            a[j] = a[j - 1];
        a[j] = v;
    }
}

/* Partitions a[lo, hi) around a median-of-three pivot: better ids before it, worse after.
 * Returns the pivot's final position. */
static int64_t partition(const float *l, int32_t *a, int64_t lo, int64_t hi) {
    int64_t mid = lo + (hi - lo) / 2, last = hi - 1;
    if (better(l, a[mid], a[lo])) swap_i32(&a[mid], &a[lo]);
    if (better(l, a[last], a[lo])) swap_i32(&a[last], &a[lo]);
    if (better(l, a[last], a[mid])) swap_i32(&a[last], &a[mid]);
    swap_i32(&a[mid], &a[last]); /* the median is the pivot, parked at the end */
    int32_t pivot = a[last];
    int64_t store = lo;
    for (int64_t i = lo; i < last; i++)
        if (better(l, a[i], pivot)) swap_i32(&a[i], &a[store++]);
    swap_i32(&a[store], &a[last]);
    return store;
}

/* Rearranges a[lo, hi) so that a[lo, lo + k) holds its k best ids (in no particular order).
 * Quickselect with a median-of-three pivot; expected O(hi - lo). */
static void select_top(const float *l, int32_t *a, int64_t lo, int64_t hi, int64_t k) {
    const int64_t target = lo + k;
    while (hi - lo > 16) {
        int64_t store = partition(l, a, lo, hi);
        if (store == target || store + 1 == target) return;
        if (target < store)
            hi = store;
        else
            lo = store + 1;
    }
    insertion_sort(l, a, lo, hi);
}

/* ---- the chain ---- */

/* Copies the logits (NaN → -inf, +inf → FLT_MAX so the softmax stays finite) and applies the
 * repetition penalty once per distinct recent token (llama.cpp: positive logits are divided,
 * negative ones multiplied). Returns the argmax, lowest id on ties. */
static int32_t prepare(rk_sampler *s, const float *in) {
    float *l = s->logits;
    for (int32_t i = 0; i < s->n_vocab; i++) {
        float x = in[i];
        l[i] = isnan(x) ? -INFINITY : x > FLT_MAX ? FLT_MAX : x;
    }
    const float pen = s->p.repeat_penalty;
    if (pen != 1.0f && s->n_recent > 0) {
        if (++s->stamp == 0) { /* wrapped: forget old stamps */
            memset(s->seen, 0, (size_t)s->n_vocab * sizeof *s->seen);
            s->stamp = 1;
        }
        for (int32_t i = 0; i < s->n_recent; i++) {
            rk_token t = s->recent[i];
            if (t < 0 || t >= s->n_vocab || s->seen[t] == s->stamp) continue;
            s->seen[t] = s->stamp;
            l[t] = l[t] <= 0 ? l[t] * pen : l[t] / pen;
        }
    }
    int32_t best = 0;
    for (int32_t i = 1; i < s->n_vocab; i++)
        if (l[i] > l[best]) best = i;
    return best;
}

/* Top-p over cand[0, n): keeps the shortest best-first prefix whose probability (normalised by
 * z over the set top-k left) reaches top_p. A quickselect on probability mass rather than a
 * sort: a flat distribution over 150k tokens has a huge nucleus, and sorting it every token
 * would cost more than the forward pass of a small model. Expected O(n). Returns the new n;
 * cand[0, new n) holds the kept ids in no particular order. */
static int64_t apply_top_p(rk_sampler *s, int64_t n, float max, double z) {
    const float *l = s->logits;
    int32_t *a = s->cand;
    float *w = s->prob; /* indexed by id here */
    for (int64_t j = 0; j < n; j++)
        w[a[j]] = (float)(exp((double)l[a[j]] - max) / z);
    const double p = s->p.top_p;
    double before = 0; /* mass of a[0, lo): all better than anything in [lo, hi) */
    int64_t lo = 0, hi = n;
    while (hi - lo > 16) {
        int64_t k = partition(l, a, lo, hi);
        double m = 0;
        for (int64_t i = lo; i < k; i++)
            m += w[a[i]];
        if (before + m >= p) {
            hi = k; /* the cut lies among the ids better than the pivot */
            continue;
        }
        before += m + w[a[k]];
        if (before >= p) return k + 1;
        lo = k + 1;
    }
    insertion_sort(l, a, lo, hi);
    for (int64_t i = lo; i < hi; i++) {
        before += w[a[i]];
        if (before >= p) return i + 1;
    }
    return hi; /* rounding kept the total just under p (or min-p left less): keep what is left */
}

rk_token rk_sampler_sample(rk_sampler *s, const float *logits) {
    if (!s || !logits) return -1;
    int32_t best = prepare(s, logits);
    const float *l = s->logits;
    const float max = l[best];
    if (s->p.temperature <= 0 || max == -INFINITY) return best;

    int64_t n = s->n_vocab;
    for (int32_t i = 0; i < s->n_vocab; i++)
        s->cand[i] = i;
    if (s->p.top_k > 0 && s->p.top_k < n) {
        select_top(l, s->cand, 0, n, s->p.top_k);
        n = s->p.top_k;
    }
    double z = 0;
    if (s->p.top_p < 1)
        for (int64_t j = 0; j < n; j++)
            z += exp((double)l[s->cand[j]] - max);
    if (s->p.min_p > 0) {
        const float thr = max + logf(s->p.min_p);
        int64_t kept = 0;
        for (int64_t j = 0; j < n; j++)
            if (l[s->cand[j]] >= thr) s->cand[kept++] = s->cand[j];
        n = kept; /* the argmax always passes */
    }
    if (s->p.top_p < 1) n = apply_top_p(s, n, max, z);

    /* temperature, then one draw from the renormalised distribution */
    const double inv_t = 1.0 / s->p.temperature;
    double sum = 0;
    for (int64_t j = 0; j < n; j++) {
        s->prob[j] = (float)exp(((double)l[s->cand[j]] - max) * inv_t);
        sum += s->prob[j];
    }
    double u = next_uniform(s->rng) * sum, acc = 0;
    for (int64_t j = 0; j < n; j++) {
        acc += s->prob[j];
        if (u < acc) return s->cand[j];
    }
    /* rounding left u at the very top: the last candidate with any weight */
    for (int64_t j = n - 1; j > 0; j--)
        if (s->prob[j] > 0) return s->cand[j];
    return s->cand[0];
}
