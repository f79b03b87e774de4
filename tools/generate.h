/* generate.h — the decode loop shared by `run` and `chat`: feed a prompt, then sample, print
 * and feed tokens until n_predict, an end-of-generation token, or a full context. */
#ifndef RK_TOOLS_GENERATE_H
#define RK_TOOLS_GENERATE_H

#include <stdio.h>

#include "core/clock.h"
#include "ringkv.h"

typedef struct rk_gen_stats {
    int64_t n_prompt;
    double prompt_seconds;
    int64_t n_generated;
    double gen_seconds;
    int stopped_by_eog;
    int stopped_by_context;
    rk_weight_stats decode_weights; /* weight traffic of the generation steps alone */
} rk_gen_stats;

/* Evaluates `prompt` (n tokens, may be 0 when the context already ends where generation
 * should start... then the last logits are used) and generates up to n_predict tokens
 * (-1: until EOG or the context is full), writing each piece to `out` as it is made.
 * `tee` (may be NULL) receives a copy of the text. Returns RK_OK or an error. */
rk_status rk_generate(rk_context *ctx, const rk_model *model, rk_sampler *sampler,
                      const rk_token *prompt, size_t n, int64_t n_predict, FILE *out,
                      FILE *tee, rk_gen_stats *stats, rk_error *err);

/* acc += after - before, field by field (weight traffic of the evaluations in between). */
void rk_weight_stats_add_delta(rk_weight_stats *acc, const rk_weight_stats *before, const rk_weight_stats *after);

#endif
