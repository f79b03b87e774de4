/*
 * cmd-eval.c — `ringkv eval <what>`:
 *   ppl     perplexity with llama-perplexity's convention: the text (BOS first when the model
 *           adds one) is cut into non-overlapping chunks of CTX tokens; each chunk is evaluated
 *           from an empty cache with its first token replaced by BOS (when the model adds BOS),
 *           and only the second half of each chunk is scored. Prints `ppl = X ± Y` last.
 *           Takes --ring (mpirun): the ranks evaluate each chunk together.
 *   kld     KL divergence of a KV codec from the f16 cache (cmd-eval-kld.c)
 *   niah    needle in a haystack (cmd-eval-niah.c)
 *   logits  dumps raw float32 logits (n_tokens × n_vocab) of a token list, for reference tests.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tools/cmd-eval-kld.h"
#include "tools/cmd-eval-niah.h"
#include "tools/commands.h"
#include "tools/generate.h"
#include "tools/opts.h"
#include "tools/ring-cli.h"
#include "tools/run-opts.h"

/* log-softmax probability of `target` under logits (n_vocab). Each term is a float expf (a
 * double exp over Gemma's 262144 logits per position was a tenth of `eval ppl`'s time), summed
 * in double. */
static double token_nll(const float *logits, int32_t n_vocab, rk_token target) {
    float max = logits[0];
    for (int32_t i = 1; i < n_vocab; i++)
        if (logits[i] > max) max = logits[i];
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++) sum += expf(logits[i] - max);
    return -((double)logits[target] - max - log(sum));
}

#define PPL_STEP 256

/* The text's tokens on every rank (rank 0 tokenizes; text is NULL where reading it failed). */
static rk_status ppl_tokens(rk_session *s, const char *text, size_t text_len, rk_token **tokens, size_t *n,
                            rk_error *err) {
    const bool reader = !s->ring || s->ring->rank == 0;
    rk_status st = !reader ? RK_OK
                   : !text ? rk_error_set(err, RK_ERR_IO, "no text")
                           : rk_tokenize(s->model, text, text_len, rk_model_add_bos(s->model), 0, tokens, n, err);
    if (s->ring) {
        st = rk_transport_agree(s->ring, st, err);
        if (!st) st = rk_ring_cli_share_tokens(s->ring, tokens, n, err);
    }
    return st;
}

/* Perplexity. With --ring every rank evaluates the chunks together; each scores the positions
 * it evaluated (their logits stay on it) and the sums are added up across the ranks. */
static int eval_ppl(rk_session *s, const char *text, size_t text_len, int64_t n_chunks_max) {
    rk_error err;
    rk_token *tokens = NULL;
    size_t n = 0;
    const bool reader = !s->ring || s->ring->rank == 0;
    if (ppl_tokens(s, text, text_len, &tokens, &n, &err) != RK_OK) {
        if (reader && text) fprintf(stderr, "eval ppl: %s\n", err.msg);
        free(tokens);
        return 1;
    }
    const int add_bos = rk_model_add_bos(s->model);
    const int64_t n_ctx = rk_context_n_ctx(s->ctx);
    int64_t n_chunks = (int64_t)n / n_ctx;
    if (n_chunks_max > 0 && n_chunks > n_chunks_max) n_chunks = n_chunks_max;
    if (n_chunks < 1) {
        if (reader)
            fprintf(stderr, "eval ppl: the text has %zu tokens, fewer than one chunk of %lld (lower -c)\n", n,
                    (long long)n_ctx);
        free(tokens);
        return 1;
    }
    const int32_t V = rk_model_n_vocab(s->model);
    const int64_t first = n_ctx / 2, step = PPL_STEP * (s->ring ? s->ring->size : 1);
    double nll = 0.0, nll2 = 0.0, count = 0.0;
    double t0 = rk_now_seconds();
    if (reader) fprintf(stderr, "eval ppl: %zu tokens, %lld chunks of %lld\n", n, (long long)n_chunks, (long long)n_ctx);
    rk_token *chunk = malloc((size_t)n_ctx * sizeof *chunk);
    rk_status st = chunk ? RK_OK : rk_error_set(&err, RK_ERR_NO_MEMORY, "out of memory");
    if (s->ring) st = rk_transport_agree(s->ring, st, &err);
    for (int64_t c = 0; c < n_chunks && !st; c++) {
        memcpy(chunk, tokens + c * n_ctx, (size_t)n_ctx * sizeof *chunk);
        if (add_bos) chunk[0] = rk_model_token_bos(s->model);
        /* the unscored first half without logits, then the scored half in steps, so only
         * PPL_STEP rows of logits are held (a 262K vocabulary makes a chunk's worth gigabytes) */
        st = rk_context_truncate(s->ctx, 0, &err);
        if (!st) st = rk_context_eval(s->ctx, chunk, (size_t)first, 0, &err);
        double sums[3] = {0.0, 0.0, 0.0}; /* this chunk's nll, nll², count */
        for (int64_t j = first; j < n_ctx - 1 && !st; j += step) {
            int64_t len = n_ctx - 1 - j < step ? n_ctx - 1 - j : step;
            st = rk_context_eval(s->ctx, chunk + j, (size_t)len, 1, &err);
            for (int64_t i = 0; i < len && !st; i++) {
                const float *logits = rk_context_logits(s->ctx, i);
                /* a ring: another rank evaluated this position; the last one's logits are on
                 * every rank, and rank 0 counts it */
                if (!logits || (s->ring && i == len - 1 && s->ring->rank != 0)) continue;
                double v = token_nll(logits, V, tokens[c * n_ctx + j + i + 1]);
                sums[0] += v;
                sums[1] += v * v;
                sums[2] += 1.0;
            }
        }
        if (!st && s->ring) st = rk_ring_cli_sum(s->ring, sums, 3, &err);
        if (st) break;
        nll += sums[0];
        nll2 += sums[1];
        count += sums[2];
        if (reader)
            fprintf(stderr, "[%lld] %.4f  (%.1f s)\n", (long long)c + 1, exp(nll / count), rk_now_seconds() - t0);
    }
    if (st && reader) fprintf(stderr, "eval ppl: %s\n", err.msg);
    if (!st && reader) {
        double mean = nll / count, var = nll2 / count - mean * mean;
        double ppl = exp(mean);
        double err_ppl = var > 0 && count > 1 ? sqrt(var / (count - 1)) * ppl : 0.0;
        printf("ppl = %.4f ± %.5f\n", ppl, err_ppl);
    }
    free(chunk);
    free(tokens);
    return st ? 1 : 0;
}

/* Parses "1,2,3" into a malloc'd array. */
static rk_token *parse_token_list(const char *list, size_t *out_n) {
    size_t cap = 16, n = 0;
    rk_token *t = malloc(cap * sizeof *t);
    const char *p = list;
    while (t && *p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
            free(t);
            return NULL;
        }
        if (n == cap) {
            rk_token *bigger = realloc(t, 2 * cap * sizeof *t);
            if (!bigger) { free(t); return NULL; }
            t = bigger;
            cap *= 2;
        }
        t[n++] = (rk_token)v;
        p = *end ? end + 1 : end;
    }
    *out_n = n;
    return t;
}

static int eval_logits(rk_session *s, const char *list, const char *out_path) {
    size_t n = 0;
    rk_token *tokens = parse_token_list(list, &n);
    if (!tokens || n == 0) {
        fprintf(stderr, "eval logits: --tokens expects comma-separated ids, got '%s'\n", list);
        free(tokens);
        return 2;
    }
    rk_error err;
    int rc = 0;
    if (rk_context_eval(s->ctx, tokens, n, 1, &err) != RK_OK) {
        fprintf(stderr, "eval logits: %s\n", err.msg);
        rc = 1;
    }
    FILE *f = rc ? NULL : fopen(out_path, "wb");
    if (!rc && !f) {
        fprintf(stderr, "eval logits: cannot write '%s'\n", out_path);
        rc = 1;
    }
    const int32_t V = rk_model_n_vocab(s->model);
    for (size_t i = 0; f && i < n; i++)
        if (fwrite(rk_context_logits(s->ctx, (int64_t)i), sizeof(float), (size_t)V, f) != (size_t)V) rc = 1;
    if (f && fclose(f) != 0) rc = 1;
    if (f && rc) fprintf(stderr, "eval logits: write to '%s' failed\n", out_path);
    free(tokens);
    return rc;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: ringkv eval ppl [-m MODEL] -f TEXT [-c CTX] [--chunks N] [options]\n"
            "       ringkv eval logits [-m MODEL] --tokens ID,ID,... --out FILE.f32 [options]\n"
            "       ringkv eval kld [-m MODEL] -f TEXT [-c CTX] --kv-codec CODEC [--chunks N] ...\n"
            "                        (KL divergence from the f16 KV cache; `ringkv eval kld --help`)\n"
            "       ringkv eval niah [-m MODEL] [--lengths 1k,2k] [--depths 0,50,100] [--passkey] ...\n"
            "                        (needle in a haystack; `ringkv eval niah --help` for more)\n");
    rk_run_opts_usage(out);
}

int rk_cmd_eval(int argc, char **argv) {
    if (argc < 2 || rk_opt_is(argv[1], "-h", "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *what = argv[1];
    if (strcmp(what, "niah") == 0) return rk_cmd_eval_niah(argc - 1, argv + 1);
    if (strcmp(what, "kld") == 0) return rk_cmd_eval_kld(argc - 1, argv + 1);
    if (strcmp(what, "ppl") != 0 && strcmp(what, "logits") != 0) {
        fprintf(stderr, "eval: unknown evaluation '%s' (ppl, logits, kld, niah)\n", what);
        return 2;
    }
    rk_run_opts o;
    rk_run_opts_init(&o);
    o.ctx.n_ctx = strcmp(what, "ppl") == 0 ? 512 : 4096;
    const char *file = NULL, *list = NULL, *out = NULL;
    int64_t chunks = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = rk_run_opts_parse(&o, "eval", argc, argv, i);
        if (used < 0) return 2;
        if (used > 0) { i += used - 1; continue; }
        if (rk_opt_is(a, "-f", "--file") && v) { file = v; i++; }
        else if (rk_opt_is(a, NULL, "--tokens") && v) { list = v; i++; }
        else if (rk_opt_is(a, "-o", "--out") && v) { out = v; i++; }
        else if (rk_opt_is(a, NULL, "--chunks")) {
            if (!rk_opt_int("eval", a, v, 1, 1 << 30, &chunks)) return 2;
            i++;
        } else {
            fprintf(stderr, "eval: unknown or incomplete option '%s'\n", a);
            return 2;
        }
    }
    int is_ppl = strcmp(what, "ppl") == 0;
    if (is_ppl ? !file : (!list || !out)) {
        usage(stderr);
        return 2;
    }
    if (!is_ppl && o.ring) {
        fprintf(stderr, "eval logits: --ring is not supported (a ring's logits of each position stay on the rank "
                        "that evaluated it)\n");
        return 2;
    }
    if (is_ppl && !o.ring) o.ctx.n_ubatch = o.ctx.n_ubatch ? o.ctx.n_ubatch : 512;
    char *text = NULL;
    size_t text_len = 0;
    rk_session s;
    int rc = rk_session_open(&s, &o, "eval");
    /* a ring's rank 0 reads the text; the others get its tokens */
    if (rc == 0 && is_ppl && (!s.ring || s.ring->rank == 0)) text = rk_opt_read_file("eval ppl", file, &text_len);
    if (rc == 0) rc = is_ppl ? eval_ppl(&s, text, text_len, chunks) : eval_logits(&s, list, out);
    rk_session_close(&s);
    free(text);
    return rc;
}
