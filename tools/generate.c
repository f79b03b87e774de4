/* generate.c — see generate.h. */
#include "tools/generate.h"

#include <string.h>
#include <time.h>

/* Prints token t; `prev` is the token before it (for SentencePiece's space after BOS). */
static void print_piece(const rk_model *model, rk_token prev, rk_token t, FILE *out, FILE *tee) {
    char buf[256];
    int32_t len = rk_token_to_piece(model, t, 0, buf, sizeof buf);
    if (len <= 0) return;
    size_t n = (size_t)(len < (int32_t)sizeof buf ? len : (int32_t)sizeof buf);
    const char *p = buf;
    if (prev == rk_model_token_bos(model) && rk_model_strips_leading_space(model) && *p == ' ') {
        p++;
        n--;
    }
    fwrite(p, 1, n, out);
    fflush(out);
    if (tee) fwrite(p, 1, n, tee);
}

rk_status rk_generate(rk_context *ctx, const rk_model *model, rk_sampler *sampler,
                      const rk_token *prompt, size_t n, int64_t n_predict, FILE *out,
                      FILE *tee, rk_gen_stats *stats, rk_error *err) {
    memset(stats, 0, sizeof *stats);
    double t0 = rk_now_seconds();
    rk_status s = RK_OK;
    if (n > 0) {
        s = rk_context_eval(ctx, prompt, n, 0, err);
        if (s) return s;
        for (size_t i = 0; i < n; i++) rk_sampler_accept(sampler, prompt[i]);
    }
    stats->n_prompt = (int64_t)n;
    stats->prompt_seconds = rk_now_seconds() - t0;
    rk_token prev = n > 0 ? prompt[n - 1] : -1;
    rk_weight_stats before;
    rk_context_weight_stats(ctx, &before);
    double t1 = rk_now_seconds();
    while (n_predict < 0 || stats->n_generated < n_predict) {
        const float *logits = rk_context_logits(ctx, -1);
        if (!logits) break;
        rk_token t = rk_sampler_sample(sampler, logits);
        rk_sampler_accept(sampler, t);
        if (rk_model_token_is_eog(model, t)) {
            stats->stopped_by_eog = 1;
            break;
        }
        print_piece(model, prev, t, out, tee);
        prev = t;
        stats->n_generated++;
        if (n_predict >= 0 && stats->n_generated >= n_predict) break;
        if (rk_context_n_past(ctx) >= rk_context_n_ctx(ctx)) {
            stats->stopped_by_context = 1;
            break;
        }
        s = rk_context_eval(ctx, &t, 1, 0, err);
        if (s) break;
    }
    stats->gen_seconds = rk_now_seconds() - t1;
    rk_weight_stats after;
    rk_context_weight_stats(ctx, &after);
    rk_weight_stats_add_delta(&stats->decode_weights, &before, &after);
    return s;
}

void rk_weight_stats_add_delta(rk_weight_stats *acc, const rk_weight_stats *before, const rk_weight_stats *after) {
    acc->bytes_read += after->bytes_read - before->bytes_read;
    acc->tokens += after->tokens - before->tokens;
    acc->micro_batches += after->micro_batches - before->micro_batches;
    acc->experts_touched += after->experts_touched - before->experts_touched;
    acc->experts_available += after->experts_available - before->experts_available;
}
