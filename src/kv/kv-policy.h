/*
 * kv-policy.h — the placement policy of the tiered KV cache: which sealed pages stay in RAM
 * (hot, then warm) and which are demoted first (DESIGN.md, "Tiers").
 *
 * Rules. The first pages of each layer (attention sinks) and its most recent pages are pinned
 * hot. Every other page is ranked by a *heat score* that combines the attention mass the page
 * received (decayed with a half-life) and the age of its last use; the coldest pages go first.
 * A page that is used again is promoted simply by recording that use: its score rises and the
 * next plan keeps it.
 *
 * Attention mass. After attention over a layer, the cache knows per page p and query head h
 * the partial (m_p, l_p) and the merged (m, l), so the share of head h's softmax mass that fell
 * on p costs nothing: share_h(p) = l_p · e^(m_p − m) / l, in [0, 1], summing to 1 over pages.
 * The cache records max_h share_h(p), not the mean: retrieval heads put nearly all of their mass
 * on a few pages that the other heads ignore, so the mean would divide a needle's importance by
 * the head count, while the max says "some head needs this page", which is also the test sparse
 * mode applies when it decides whether to read a page at all.
 *
 * Score (higher = hotter):
 *
 *     score = mass * 2^(-(step - mass_step) / mass_half_life) - recency_weight * (step - last_use)
 *
 * Mass is in units of "one head's whole softmax for one step": a page that takes share s every
 * step settles near s / (1 − 2^(−1/half_life)) ≈ 1.44 · s · half_life. recency_weight is in
 * those units per step of age: 0.01 (the default) means a page idle for 100 steps loses as much
 * as one step of full attention. In exact mode every page is read every step, ages are equal
 * and the mass alone decides; in sparse mode the age separates pages of equal (or zero) mass.
 * The defaults (half-life 64, weight 0.01) come from the simulated cache in test-kv-policy.c,
 * where the good region is broad: half-lives 32..128 with weights 0..0.03 all miss 5-12% less
 * than LRU, while a half-life of 8 gives most of the gain away and 256 (at weight 0.01) does
 * worse than LRU: mass then remembers heavy hitters that have moved on.
 * A page never used (last_use = -1) is one step older than a page used at step 0.
 *
 * The module is pure: no I/O, no allocation, no hidden state; results depend only on the
 * arguments, so the same trace always gives the same plan.
 */
#ifndef RK_KV_POLICY_H
#define RK_KV_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "ringkv.h"

typedef struct rk_kv_policy_params {
    int64_t recent_pages;  /* the newest pages of each layer are pinned hot (values < 1 act as
                            * 1; default 2) */
    int64_t sink_pages;    /* the first pages of each layer are pinned hot (default 1; < 0
                            * acts as 0) */
    double mass_half_life; /* steps after which recorded attention mass counts half (default
                            * 64); not a positive finite number: mass never decays */
    double recency_weight; /* mass units one step of age costs (see above; default 0.01) */
} rk_kv_policy_params;

rk_kv_policy_params rk_kv_policy_default_params(void);

/* Per page, owned by the cache. rk_kv_heat_init gives "never used"; an all-zero struct reads as
 * "used at step 0 with no mass", which ranks one step above never used, so a calloc'd table is
 * fine too. */
typedef struct rk_kv_page_heat {
    int64_t last_use; /* step of the last access (-1: never) */
    float mass;       /* decayed attention mass as of step mass_step */
    int64_t mass_step;
} rk_kv_page_heat;

/* Sets *h to "never used": no mass, last_use -1. */
void rk_kv_heat_init(rk_kv_page_heat *h);

/* The page was read at `step` and received attention share `share` (clamped to [0, 1]; NaN
 * counts as 0). Use share 0 for a read whose mass is unknown. Steps may arrive out of order: a
 * share recorded for an earlier step is decayed to the page's mass_step before it is added. */
void rk_kv_heat_record(rk_kv_page_heat *h, int64_t step, float share, const rk_kv_policy_params *p);

/* The heat score at `step` (formula above; higher = hotter). Deterministic and never NaN. */
double rk_kv_heat_score(const rk_kv_page_heat *h, int64_t step, const rk_kv_policy_params *p);

/* 1 when page `index` of a layer holding n_pages sealed pages is pinned (one of the first
 * sink_pages or the last recent_pages), else 0 (also for an index outside [0, n_pages)). */
int rk_kv_policy_pinned(int64_t index, int64_t n_pages, const rk_kv_policy_params *p);

/* One page offered to the policy. Entries of several layers may be mixed in one call. */
typedef struct rk_kv_policy_entry {
    int64_t id;                  /* caller's identity of the page; breaks ties (ascending) */
    int64_t index;               /* page index within its layer */
    int64_t n_pages;             /* sealed pages of that layer */
    const rk_kv_page_heat *heat; /* borrowed for the call; NULL: never used */
    double score;                /* written by the ranking: the heat score at its step */
} rk_kv_policy_entry;

/* Writes into order[] (room for n) the indices into entries[] of the unpinned entries, coldest
 * first; equal scores are ordered by id ascending, then by position in entries[], so the result
 * is reproducible. Returns how many were written (the pinned entries are left out). Heapsort:
 * O(n log n), no memory beyond order[] (scores are recomputed per comparison, not stored). */
int64_t rk_kv_policy_rank_coldest(rk_kv_policy_entry *entries, int64_t n, int64_t step,
                                  const rk_kv_policy_params *p, int64_t *order);

/* Plans which pages stay in RAM under a budget of `budget` bytes (bytes[i]: RAM of entry i).
 * in_ram[i] (output, room for n) is 1 for every pinned entry, then for the hottest unpinned
 * entries in rank order while their bytes fit, and 0 for the rest. The kept set is always a
 * prefix of the ranking: the first page that does not fit ends it, so a page is never kept
 * while a hotter one is demoted (which would make the two swap places on the next plan).
 * scratch_order needs room for n. Returns RK_OK; RK_ERR_NO_MEMORY when the pinned pages alone
 * exceed the budget (the message gives both byte counts; in_ram then marks the pinned pages
 * only); RK_ERR_INVALID_ARG for n < 0 or a NULL array with n > 0. */
rk_status rk_kv_policy_plan(rk_kv_policy_entry *entries, const size_t *bytes, int64_t n,
                            size_t budget, int64_t step, const rk_kv_policy_params *p,
                            uint8_t *in_ram, int64_t *scratch_order, rk_error *err);

#endif
