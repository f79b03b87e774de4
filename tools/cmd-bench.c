/*
 * cmd-bench.c — `ringkv bench [-m MODEL] [-t THREADS] [-p N_PROMPT] [-n N_GEN] [-r REPS]`:
 * llama-bench's two measurements on random tokens: prompt processing (N_PROMPT tokens from an
 * empty context, in micro-batches) and decode (a short prompt, then N_GEN single-token steps
 * with greedy sampling). Prints one CSV line per test: test,threads,tokens,seconds,tok_per_s,
 * decode_bytes_per_token (the model's decode size: rk_model_decode_bytes),depth,
 * kv_bytes_per_token, and for decode the weight bytes the products really read per step and the
 * share of (layer, expert) pairs computed (rk_context_weight_stats). --cold-step then measures
 * one decode step's weight reads with the kernel's own counter (see cold_step). The best of REPS runs is reported (as
 * llama-bench reports the mean; both are printed). -d DEPTH first fills the context with DEPTH
 * tokens (untimed), like llama-bench -d, to measure at long context.
 *
 * `ringkv bench decode --depth N ...` is the tiered-KV decode benchmark (cmd-bench-decode.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/threadpool.h"
#include "tools/cmd-bench-decode.h"
#include "tools/commands.h"
#include "tools/generate.h"
#include "tools/opts.h"
#include "tools/run-opts.h"

static uint64_t next_rand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Seconds for one run: prompt processing of n tokens (decode = 0) or n decode steps, after
 * `depth` tokens of context (filled untimed, like llama-bench -d). Adds the decode steps' weight
 * traffic to *decode_w. */
static int run_once(rk_session *s, int decode, int64_t n, int64_t depth, uint64_t *seed,
                    double *seconds, rk_weight_stats *decode_w) {
    rk_error err;
    const int32_t V = rk_model_n_vocab(s->model);
    rk_token *toks = malloc((size_t)(n > 8 ? n : 8) * sizeof *toks);
    if (!toks) return 1;
    for (int64_t i = 0; i < (n > 8 ? n : 8); i++) toks[i] = (rk_token)(next_rand(seed) % (uint64_t)V);
    int rc = 0;
    if (rk_context_truncate(s->ctx, 0, &err) != RK_OK) rc = 1;
    if (!rc && depth > 0) {
        rk_token *fill = malloc((size_t)depth * sizeof *fill);
        for (int64_t i = 0; fill && i < depth; i++) fill[i] = (rk_token)(next_rand(seed) % (uint64_t)V);
        if (!fill || rk_context_eval(s->ctx, fill, (size_t)depth, 0, &err) != RK_OK) rc = 1;
        free(fill);
    }
    double t0 = rk_now_seconds();
    if (!rc && !decode && rk_context_eval(s->ctx, toks, (size_t)n, 0, &err) != RK_OK) rc = 1;
    if (!rc && decode) {
        if (rk_context_eval(s->ctx, toks, 8, 0, &err) != RK_OK) rc = 1; /* a short prompt */
        rk_weight_stats w0, w1;
        rk_context_weight_stats(s->ctx, &w0);
        t0 = rk_now_seconds();
        for (int64_t i = 0; i < n && !rc; i++) {
            rk_token t = rk_sampler_sample(s->sampler, rk_context_logits(s->ctx, -1));
            if (rk_context_eval(s->ctx, &t, 1, 0, &err) != RK_OK) rc = 1;
        }
        rk_context_weight_stats(s->ctx, &w1);
        rk_weight_stats_add_delta(decode_w, &w0, &w1);
    }
    *seconds = rk_now_seconds() - t0;
    if (rc) fprintf(stderr, "bench: %s\n", err.msg);
    free(toks);
    return rc;
}

/* Bytes this process has read from storage so far (/proc/self/io read_bytes), or -1. */
static long long storage_read_bytes(void) {
    FILE *f = fopen("/proc/self/io", "r");
    if (!f) return -1;
    char line[128];
    long long v = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "read_bytes: %lld", &v) == 1) break;
    fclose(f);
    return v;
}

/* --cold-step: one decode step after the weights were dropped from memory with readahead off,
 * so the weight bytes it reads from storage are measured by the kernel (page-granular) rather
 * than counted by ringkv. Prints a CSV line: cold_step,storage_read_bytes,counted_weight_bytes. */
static int cold_step(rk_session *s, uint64_t *seed) {
    rk_error err;
    const int32_t V = rk_model_n_vocab(s->model);
    rk_token toks[8];
    for (int i = 0; i < 8; i++) toks[i] = (rk_token)(next_rand(seed) % (uint64_t)V);
    if (rk_context_truncate(s->ctx, 0, &err) != RK_OK || rk_context_eval(s->ctx, toks, 8, 0, &err) != RK_OK ||
        rk_model_evict_weights(s->model, &err) != RK_OK) {
        fprintf(stderr, "bench: --cold-step: %s\n", err.msg);
        return 1;
    }
    rk_token t = rk_sampler_sample(s->sampler, rk_context_logits(s->ctx, -1));
    rk_weight_stats w0, w1;
    rk_context_weight_stats(s->ctx, &w0);
    long long r0 = storage_read_bytes();
    if (rk_context_eval(s->ctx, &t, 1, 0, &err) != RK_OK) {
        fprintf(stderr, "bench: --cold-step: %s\n", err.msg);
        return 1;
    }
    long long r1 = storage_read_bytes();
    rk_context_weight_stats(s->ctx, &w1);
    if (r0 < 0 || r1 < 0) {
        fprintf(stderr, "bench: --cold-step: /proc/self/io is not readable here\n");
        return 1;
    }
    printf("cold_step,%lld,%llu\n", r1 - r0, (unsigned long long)(w1.bytes_read - w0.bytes_read));
    return 0;
}

int rk_cmd_bench(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "decode") == 0) return rk_cmd_bench_decode(argc - 1, argv + 1);
    rk_run_opts o;
    rk_run_opts_init(&o);
    o.sampling.temperature = 0.0f;
    int64_t n_prompt = 512, n_gen = 128, reps = 3, depth = 0;
    int cold = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (rk_opt_is(a, NULL, "--cold-step")) {
            cold = 1;
            continue;
        }
        int used = rk_run_opts_parse(&o, "bench", argc, argv, i);
        if (used < 0) return 2;
        if (used > 0) { i += used - 1; continue; }
        int64_t *target = rk_opt_is(a, "-p", "--n-prompt") ? &n_prompt
                          : rk_opt_is(a, "-n", "--n-gen")  ? &n_gen
                          : rk_opt_is(a, "-r", "--reps")   ? &reps
                          : rk_opt_is(a, "-d", "--depth")  ? &depth
                                                           : NULL;
        if (!target) {
            fprintf(stderr, "bench: unknown option '%s'\nusage: ringkv bench [-m MODEL] [-t N] [-p N_PROMPT] [-n N_GEN] [-r REPS] [-d DEPTH] [--cold-step]\n"
                            "       ringkv bench decode --depth N [...]   (decode at depth with KV tiers; --help)\n", a);
            return 2;
        }
        if (!rk_opt_int("bench", a, v, 0, (int64_t)1 << 24, target)) return 2;
        i++;
    }
    o.ctx.n_ctx = depth + n_prompt + n_gen + 16;
    rk_session s;
    if (rk_session_open(&s, &o, "bench") != 0) return 1;
    uint64_t seed = 0x2545F4914F6CDD1Dull;
    size_t bytes = rk_model_decode_bytes(s.model);
    int threads = o.ctx.n_threads ? o.ctx.n_threads : rk_cpu_count();
    printf("test,threads,tokens,best_seconds,best_tok_per_s,mean_tok_per_s,decode_bytes_per_token,depth,"
           "kv_bytes_per_token,weight_bytes_read_per_token,experts_touched_share\n");
    int rc = 0;
    for (int decode = 0; decode <= 1 && !rc; decode++) {
        int64_t n = decode ? n_gen : n_prompt;
        if (n == 0) continue;
        double best = 1e30, sum_rate = 0;
        double warm;
        rk_weight_stats w_warm = {0}, w = {0};
        rc = run_once(&s, decode, decode ? 4 : 32, 0, &seed, &warm, &w_warm); /* warm-up: page in weights */
        for (int64_t r = 0; r < reps && !rc; r++) {
            double sec;
            rc = run_once(&s, decode, n, depth, &seed, &sec, &w);
            if (sec < best) best = sec;
            sum_rate += n / sec;
        }
        if (!rc)
            printf("%s%lld,%d,%lld,%.4f,%.2f,%.2f,%zu,%lld,%zu,%.0f,%.4f\n", decode ? "tg" : "pp", (long long)n,
                   threads, (long long)n, best, n / best, sum_rate / reps, bytes, (long long)depth,
                   rk_context_kv_bytes_per_token(s.ctx),
                   w.tokens ? (double)w.bytes_read / (double)w.tokens : 0.0,
                   w.experts_available ? (double)w.experts_touched / (double)w.experts_available : 0.0);
    }
    if (!rc && cold) rc = cold_step(&s, &seed);
    rk_session_close(&s);
    return rc;
}
