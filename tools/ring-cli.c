/* ring-cli.c — see ring-cli.h. */
#include "tools/ring-cli.h"

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#ifdef RINGKV_HAVE_MPI
#include "dist-mpi/transport-mpi.h"
#endif

rk_status rk_ring_cli_open(rk_transport **out, rk_error *err) {
#ifdef RINGKV_HAVE_MPI
    return rk_transport_mpi_create(NULL, NULL, out, err);
#else
    *out = NULL;
    return rk_error_set(err, RK_ERR_UNSUPPORTED, "--ring: this ringkv was built without MPI (install "
                                                 "libopenmpi-dev and openmpi-bin, then rebuild)");
#endif
}

rk_status rk_ring_cli_share_tokens(rk_transport *t, rk_token **tokens, size_t *n, rk_error *err) {
    uint64_t count = *n;
    rk_status s = rk_transport_broadcast(t, &count, sizeof count, 0, err);
    if (s) return s;
    rk_status local = RK_OK;
    if (t->rank != 0) { /* collectives in the same order on every rank: the agreement too */
        free(*tokens);
        *tokens = malloc(count ? (size_t)count * sizeof **tokens : 1);
        *n = 0;
        if (!*tokens)
            local = rk_error_set(err, RK_ERR_NO_MEMORY, "out of memory for %llu tokens", (unsigned long long)count);
    }
    s = rk_transport_agree(t, local, err);
    if (!s) s = rk_transport_broadcast(t, *tokens, (size_t)count * sizeof **tokens, 0, err);
    if (!s) *n = (size_t)count;
    return s;
}

/* What rank 0 tells the others after each sampling step. */
typedef struct next_token {
    int32_t token;
    int32_t stop; /* 0: evaluate token; 1: generation is over */
} next_token;

/* Prints token t after `prev` (SentencePiece drops the space after BOS). */
static void print_piece(const rk_model *model, rk_token prev, rk_token t, FILE *out) {
    char buf[256];
    int32_t len = rk_token_to_piece(model, t, 0, buf, sizeof buf);
    if (len <= 0) return;
    const char *p = buf;
    size_t k = (size_t)(len < (int32_t)sizeof buf ? len : (int32_t)sizeof buf);
    if (prev == rk_model_token_bos(model) && rk_model_strips_leading_space(model) && *p == ' ') {
        p++;
        k--;
    }
    fwrite(p, 1, k, out);
    fflush(out);
}

rk_status rk_ring_cli_generate(rk_context *ctx, const rk_model *model, rk_sampler *sampler, rk_transport *t,
                               const rk_token *prompt, size_t n, int64_t n_predict, FILE *out, rk_gen_stats *stats,
                               rk_error *err) {
    memset(stats, 0, sizeof *stats);
    const double t0 = rk_now_seconds();
    rk_status s = rk_context_eval(ctx, prompt, n, 0, err);
    if (s) return s;
    for (size_t i = 0; i < n; i++) rk_sampler_accept(sampler, prompt[i]);
    stats->n_prompt = (int64_t)n;
    stats->prompt_seconds = rk_now_seconds() - t0;
    rk_weight_stats before, after;
    rk_context_weight_stats(ctx, &before);
    const double t1 = rk_now_seconds();
    rk_token prev = prompt[n - 1];
    for (;;) {
        next_token next = {0, 1};
        if (t->rank == 0) {
            next.token = rk_sampler_sample(sampler, rk_context_logits(ctx, -1));
            next.stop = 0;
            if (rk_model_token_is_eog(model, next.token)) {
                stats->stopped_by_eog = 1;
                next.stop = 1;
            } else {
                print_piece(model, prev, next.token, out);
                stats->n_generated++;
                if (n_predict >= 0 && stats->n_generated >= n_predict) next.stop = 1;
                if (rk_context_n_past(ctx) >= rk_context_n_ctx(ctx)) next.stop = stats->stopped_by_context = 1;
            }
        }
        s = rk_transport_broadcast(t, &next, sizeof next, 0, err);
        if (s || next.stop) break;
        if (t->rank != 0) stats->n_generated++;
        rk_sampler_accept(sampler, next.token);
        prev = next.token;
        s = rk_context_eval(ctx, &prev, 1, 0, err);
        if (s) break;
    }
    stats->gen_seconds = rk_now_seconds() - t1;
    rk_context_weight_stats(ctx, &after);
    rk_weight_stats_add_delta(&stats->decode_weights, &before, &after);
    return s;
}

rk_status rk_ring_cli_sum(rk_transport *t, double *v, int n, rk_error *err) {
    if (n < 0 || n > 8) return rk_error_set(err, RK_ERR_INVALID_ARG, "ring: at most 8 sums");
    double *all = malloc((size_t)t->size * 8 * sizeof *all), mine[8] = {0};
    memcpy(mine, v, (size_t)n * sizeof *v);
    rk_status s = rk_transport_agree(t, all ? RK_OK : rk_error_set(err, RK_ERR_NO_MEMORY, "out of memory"), err);
    if (!s) s = rk_transport_allgather(t, mine, sizeof mine, all, err);
    for (int i = 0; i < n && !s; i++) {
        v[i] = 0.0;
        for (int r = 0; r < t->size; r++) v[i] += all[r * 8 + i];
    }
    free(all);
    return s;
}

/* One rank's line of the report. */
typedef struct rank_line {
    rk_ring_report r;
    uint64_t kv_bytes;
} rank_line;

void rk_ring_cli_report(FILE *out, const rk_context *ctx, rk_transport *t) {
    rank_line mine;
    memset(&mine, 0, sizeof mine);
    if (!rk_context_ring_report(ctx, &mine.r)) return;
    mine.kv_bytes = rk_context_kv_bytes_in_use(ctx);
    rank_line *all = calloc((size_t)t->size, sizeof *all);
    rk_error err;
    /* everyone allgathers (a rank without memory sends and prints nothing) */
    rk_status s = rk_transport_agree(t, all ? RK_OK : rk_error_set(&err, RK_ERR_NO_MEMORY, "out of memory"), &err);
    if (!s) s = rk_transport_allgather(t, &mine, sizeof mine, all, &err);
    if (s) {
        if (t->rank == 0) fprintf(out, "ring: no report: %s\n", err.msg);
    } else if (t->rank == 0) {
        for (int r = 0; r < t->size; r++)
            fprintf(out, "ring rank %d/%d: KV %.1f MiB, %lld tokens held | attention %.3f s | network wait %.3f s "
                         "in attention, %.3f s in all | sent %.1f MiB, received %.1f MiB\n",
                    r, all[r].r.n_ranks, all[r].kv_bytes / 1048576.0, (long long)all[r].r.tokens_held,
                    all[r].r.attn_seconds, all[r].r.attn_wait_seconds, all[r].r.wait_seconds,
                    all[r].r.bytes_sent / 1048576.0,
                    all[r].r.bytes_received / 1048576.0);
    }
    free(all);
}
