/*
 * cmd-eval-kld.c — `ringkv eval kld`: how much a KV codec changes the model's predictions
 * (see cmd-eval-kld.h). llama-perplexity's --kl-divergence idea, without the logits file: the
 * reference context (f16 KV by default) and the codec's context read the same text in lock
 * step, so only one step of logits per context is ever held (a 262K-entry vocabulary times
 * 32K positions would be 34 GB).
 */
#include "tools/cmd-eval-kld.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv-codec.h"
#include "tools/generate.h"
#include "tools/opts.h"
#include "tools/run-opts.h"

#define CMD "eval kld"

static void usage(FILE *out) {
    fprintf(out,
            "usage: ringkv eval kld [-m MODEL] -f TEXT [-c CTX] [--kv-codec CODEC | --ctk C --ctv C]\n"
            "                       [--codecs C1,C2,...] [--ref-codec CODEC] [--chunks N] [--scored N]\n"
            "                       [--step N] [options]\n"
            "  -f, --file TEXT        text to read; it needs CTX tokens per chunk\n"
            "  -c, --ctx-size N       tokens per chunk (default: the model's trained context)\n"
            "  --kv-codec CODEC       the codec under test (keys and values; or --ctk/--ctv)\n"
            "  --codecs C1,C2,...     several codecs in one pass over the text (one JSON line each)\n"
            "  --ref-codec CODEC      the reference KV codec (default f16)\n"
            "  --chunks N             chunks to evaluate, each from an empty cache (default 1)\n"
            "  --step N               scored tokens evaluated per step (default 64; 1 with --kv-sparse,\n"
            "                         which applies to decode steps only; the reference is exact)\n"
            "  --scored N             score only the last N positions of each chunk (default: half)\n"
            "  The second half of every chunk is scored (as llama-perplexity does). Prints one JSON\n"
            "  line: mean_kld, p99_kld, max_kld, top1_agreement, logits_identical_fraction and\n"
            "  max_abs_logit_diff (against the reference), ppl_f16 (the reference), ppl_codec,\n"
            "  kv_bytes_per_token of both, peak RSS, and with tiers the fraction of pages on disk at the\n"
            "  end and the bytes read from disk. With --ref-codec equal to the codec under test and\n"
            "  tier flags, it checks that tiers leave every logit unchanged (the reference is all in RAM).\n");
    rk_run_opts_usage(out);
}

/* log-softmax of logits (n) into out, in double. */
static void log_softmax(const float *logits, int32_t n, double *out) {
    float max = logits[0];
    for (int32_t i = 1; i < n; i++)
        if (logits[i] > max) max = logits[i];
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) sum += exp((double)logits[i] - max);
    double lse = max + log(sum);
    for (int32_t i = 0; i < n; i++) out[i] = (double)logits[i] - lse;
}

static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

typedef struct kld_totals {
    double *klds;            /* (capacity) per scored position */
    int64_t n, capacity;
    int64_t top1_same;
    int64_t rows_identical;  /* positions whose logits equal the reference's bit for bit */
    double max_abs_logit_diff;
    double nll_ref, nll_codec;
    double *lp_ref, *lp_codec;  /* (n_vocab) scratch */
} kld_totals;

/* Scores position `pos`'s logits of both contexts against the next token. */
static void score_position(kld_totals *t, const float *ref, const float *codec, int32_t V,
                           rk_token next) {
    t->rows_identical += memcmp(ref, codec, (size_t)V * sizeof *ref) == 0;
    for (int32_t i = 0; i < V; i++) {
        double d = fabs((double)ref[i] - (double)codec[i]);
        if (!(d <= t->max_abs_logit_diff)) t->max_abs_logit_diff = d; /* NaN counts as a difference */
    }
    log_softmax(ref, V, t->lp_ref);
    log_softmax(codec, V, t->lp_codec);
    double kld = 0.0;
    for (int32_t i = 0; i < V; i++) kld += exp(t->lp_ref[i]) * (t->lp_ref[i] - t->lp_codec[i]);
    t->klds[t->n++] = kld > 0.0 ? kld : 0.0; /* rounding can give -1e-17 */
    t->top1_same += argmax(ref, V) == argmax(codec, V);
    t->nll_ref -= t->lp_ref[next];
    t->nll_codec -= t->lp_codec[next];
}

/* Evaluates the same tokens in every context (ctxs[0] is the reference). */
static int eval_all(rk_context **ctxs, int n_ctxs, const rk_token *tokens, size_t n, int all_logits) {
    rk_error err;
    for (int c = 0; c < n_ctxs; c++)
        if (rk_context_eval(ctxs[c], tokens, n, all_logits, &err) != RK_OK) {
            fprintf(stderr, "%s: %s\n", CMD, err.msg);
            return 1;
        }
    return 0;
}

/* One chunk: the first half is read without logits, the second half in steps of `step`;
 * ctxs[0] is the reference, ctxs[1..] the tested codecs with totals t[0..]. */
static int run_chunk(rk_context **ctxs, int n_ctxs, const rk_model *model, rk_token *chunk,
                     int64_t n_ctx, int64_t step, int64_t scored, kld_totals *t, double t0) {
    rk_error err;
    for (int c = 0; c < n_ctxs; c++)
        if (rk_context_truncate(ctxs[c], 0, &err) != RK_OK) {
            fprintf(stderr, "%s: %s\n", CMD, err.msg);
            return 1;
        }
    const int64_t first = scored > 0 && scored < n_ctx - 1 ? n_ctx - 1 - scored : n_ctx / 2;
    const int32_t V = rk_model_n_vocab(model);
    if (eval_all(ctxs, n_ctxs, chunk, (size_t)first, 0)) return 1;
    for (int64_t j = first; j < n_ctx - 1; j += step) {
        int64_t len = n_ctx - 1 - j < step ? n_ctx - 1 - j : step;
        if (eval_all(ctxs, n_ctxs, chunk + j, (size_t)len, 1)) return 1;
        for (int c = 1; c < n_ctxs; c++)
            for (int64_t i = 0; i < len; i++)
                score_position(&t[c - 1], rk_context_logits(ctxs[0], i), rk_context_logits(ctxs[c], i), V,
                               chunk[j + i + 1]);
        double mean = 0;
        for (int64_t i = 0; i < t[0].n; i++) mean += t[0].klds[i];
        fprintf(stderr, "\r%s: position %lld/%lld  %s mean KLD %.6f  top-1 %.2f%%  (%.0f s)   ", CMD,
                (long long)(j + len), (long long)n_ctx, rk_context_kv_codec_k(ctxs[1]), mean / (double)t[0].n,
                100.0 * (double)t[0].top1_same / (double)t[0].n, rk_now_seconds() - t0);
    }
    fputc('\n', stderr);
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void print_summary(kld_totals *t, const rk_context *tested, const rk_context *ref,
                          int64_t n_ctx, int64_t chunks, double seconds) {
    double mean = 0;
    for (int64_t i = 0; i < t->n; i++) mean += t->klds[i];
    mean /= (double)t->n;
    qsort(t->klds, (size_t)t->n, sizeof *t->klds, cmp_double);
    int64_t i99 = (int64_t)ceil(0.99 * (double)t->n) - 1;
    size_t bytes_ref = rk_context_kv_bytes_per_token(ref), bytes = rk_context_kv_bytes_per_token(tested);
    rk_kv_tier_stats tiers;
    rk_context_kv_tiers(tested, &tiers);
    const int64_t pages = tiers.pages_hot + tiers.pages_warm + tiers.pages_cold;
    const uint64_t sparse_pairs = tiers.sparse_pages_visited + tiers.sparse_pages_skipped;
    printf("{\"ctx\":%lld,\"chunks\":%lld,\"positions\":%lld,\"ref_codec\":\"%s\",\"kv_codec_k\":\"%s\","
           "\"kv_codec_v\":\"%s\",\"mean_kld\":%.6g,\"p99_kld\":%.6g,\"max_kld\":%.6g,"
           "\"top1_agreement\":%.6f,\"logits_identical_fraction\":%.6f,\"max_abs_logit_diff\":%.6g,\"ppl_f16\":%.6f,\"ppl_codec\":%.6f,\"kv_bytes_per_token\":%zu,"
           "\"kv_bytes_per_token_ref\":%zu,\"ref_over_codec_bytes\":%.3f,\"kv_bytes_in_use\":%zu,\"peak_rss_bytes\":%zu,"
           "\"sparse_skipped_fraction\":%.4f,\"pages_on_disk_fraction\":%.4f,\"disk_read_bytes\":%llu,\"seconds\":%.1f}\n",
           (long long)n_ctx, (long long)chunks, (long long)t->n, rk_context_kv_codec_k(ref),
           rk_context_kv_codec_k(tested), rk_context_kv_codec_v(tested), mean,
           t->klds[i99 < 0 ? 0 : i99], t->klds[t->n - 1], (double)t->top1_same / (double)t->n,
           (double)t->rows_identical / (double)t->n, t->max_abs_logit_diff,
           exp(t->nll_ref / (double)t->n), exp(t->nll_codec / (double)t->n), bytes, bytes_ref,
           (double)bytes_ref / (double)bytes, rk_context_kv_bytes_in_use(tested), rk_peak_rss_bytes(),
           sparse_pairs > 0 ? (double)tiers.sparse_pages_skipped / (double)sparse_pairs : 0.0,
           pages > 0 ? (double)tiers.pages_cold / (double)pages : 0.0, (unsigned long long)tiers.read_cold_bytes,
           seconds);
}

typedef struct kld_opts {
    rk_run_opts run;
    const char *file;
    const char *ref_codec;
    const char *codec_list;   /* --codecs: several codecs in one pass (keys and values alike) */
    int64_t chunks, step;
    int64_t scored;           /* --scored: positions scored per chunk, the last ones (0 = half) */
} kld_opts;

#define MAX_CODECS 16

/* Parses argv (argv[0] = "kld"). Returns 0, or 2 after printing a usage error. */
static int parse_args(kld_opts *o, int argc, char **argv) {
    rk_run_opts_init(&o->run);
    o->run.ctx.n_ctx = 0; /* the model's trained context */
    o->ref_codec = "f16";
    o->chunks = 1;
    o->step = 64;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = rk_run_opts_parse(&o->run, CMD, argc, argv, i);
        if (used < 0) return 2;
        if (used > 0) { i += used - 1; continue; }
        if (rk_opt_is(a, "-f", "--file") && v) o->file = v;
        else if (rk_opt_is(a, NULL, "--ref-codec") && v) o->ref_codec = v;
        else if (rk_opt_is(a, NULL, "--codecs") && v) o->codec_list = v;
        else if (rk_opt_is(a, NULL, "--chunks")) {
            if (!rk_opt_int(CMD, a, v, 1, 1 << 20, &o->chunks)) return 2;
        } else if (rk_opt_is(a, NULL, "--scored")) {
            if (!rk_opt_int(CMD, a, v, 1, (int64_t)1 << 30, &o->scored)) return 2;
        } else if (rk_opt_is(a, NULL, "--step")) {
            if (!rk_opt_int(CMD, a, v, 1, 4096, &o->step)) return 2;
        } else {
            fprintf(stderr, "%s: unknown or incomplete option '%s'\n", CMD, a);
            return 2;
        }
        i++;
    }
    if (!o->file) {
        fprintf(stderr, "%s: -f TEXT is required\n", CMD);
        usage(stderr);
        return 2;
    }
    if (o->run.ctx.kv_sparse_pages > 0 && o->step != 1) {
        fprintf(stderr, "%s: note: --kv-sparse applies to decode steps, so the scored positions are read "
                        "one token at a time (--step 1)\n", CMD);
        o->step = 1;
    }
    return 0;
}

/* Opens a context beside the session's (same size and threads) with the given codecs. */
static int open_beside(const kld_opts *o, const rk_session *s, const char *codec_k, const char *codec_v,
                       int reference, rk_context **out) {
    rk_context_params cp = o->run.ctx;
    cp.n_ctx = rk_context_n_ctx(s->ctx);
    if (reference) { /* exact decode, everything in RAM */
        cp.kv_sparse_pages = 0;
        cp.kv_disk_dir = NULL;
        cp.kv_hot_bytes = cp.kv_warm_bytes = 0;
    }
    cp.kv_codec_k = codec_k;
    cp.kv_codec_v = codec_v;
    rk_error err;
    if (rk_context_create(s->model, &cp, out, &err) != RK_OK) {
        fprintf(stderr, "%s: %s\n", CMD, err.msg);
        return 1;
    }
    return 0;
}

/* ctxs[0] = reference, then the session's context, or one context per --codecs entry. */
static int open_contexts(const kld_opts *o, rk_session *s, char names[][32], rk_context **ctxs, int *n_ctxs) {
    *n_ctxs = 0;
    if (open_beside(o, s, o->ref_codec, o->ref_codec, 1, &ctxs[(*n_ctxs)++])) return 1;
    if (!o->codec_list) {
        ctxs[(*n_ctxs)++] = s->ctx;
        return 0;
    }
    for (int i = 0; names[i][0]; i++)
        if (open_beside(o, s, names[i], names[i], 0, &ctxs[(*n_ctxs)++])) return 1;
    return 0;
}

static int run_kld(const kld_opts *o, rk_session *s, char names[][32], const rk_token *tokens, size_t n) {
    const int64_t n_ctx = rk_context_n_ctx(s->ctx);
    int64_t chunks = (int64_t)n / n_ctx;
    if (chunks > o->chunks) chunks = o->chunks;
    if (chunks < 1) {
        fprintf(stderr, "%s: the text has %zu tokens, fewer than one chunk of %lld (lower -c)\n", CMD, n,
                (long long)n_ctx);
        return 1;
    }
    rk_context *ctxs[MAX_CODECS + 1] = {0};
    kld_totals t[MAX_CODECS];
    memset(t, 0, sizeof t);
    int n_ctxs = 0, rc = open_contexts(o, s, names, ctxs, &n_ctxs);
    const int32_t V = rk_model_n_vocab(s->model);
    for (int c = 0; c + 1 < n_ctxs && rc == 0; c++) {
        t[c].capacity = chunks * n_ctx;
        t[c].klds = malloc((size_t)t[c].capacity * sizeof *t[c].klds);
        t[c].lp_ref = malloc((size_t)V * sizeof *t[c].lp_ref);
        t[c].lp_codec = malloc((size_t)V * sizeof *t[c].lp_codec);
        if (!t[c].klds || !t[c].lp_ref || !t[c].lp_codec) rc = 1;
    }
    rk_token *chunk = malloc((size_t)n_ctx * sizeof *chunk);
    if (!chunk && rc == 0) rc = 1;
    if (rc == 0)
        fprintf(stderr, "%s: %zu tokens, %lld chunk(s) of %lld; reference KV %s, %d codec(s) under test\n", CMD,
                n, (long long)chunks, (long long)n_ctx, rk_context_kv_codec_k(ctxs[0]), n_ctxs - 1);
    double t0 = rk_now_seconds();
    for (int64_t c = 0; c < chunks && rc == 0; c++) {
        memcpy(chunk, tokens + c * n_ctx, (size_t)n_ctx * sizeof *chunk);
        if (rk_model_add_bos(s->model)) chunk[0] = rk_model_token_bos(s->model);
        rc = run_chunk(ctxs, n_ctxs, s->model, chunk, n_ctx, o->step, o->scored, t, t0);
    }
    for (int c = 1; c < n_ctxs && rc == 0; c++)
        print_summary(&t[c - 1], ctxs[c], ctxs[0], n_ctx, chunks, rk_now_seconds() - t0);
    for (int c = 0; c < MAX_CODECS; c++) free(t[c].klds), free(t[c].lp_ref), free(t[c].lp_codec);
    for (int c = 0; c < n_ctxs; c++)
        if (ctxs[c] != s->ctx) rk_context_free(ctxs[c]);
    free(chunk);
    return rc;
}

/* Splits --codecs into names (checked), ending with an empty name. Returns 0 or 2. */
static int parse_codec_list(const char *list, char names[][32]) {
    int n = 0;
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        rk_kv_codec_spec spec;
        rk_error err;
        if (n == MAX_CODECS || len == 0 || len >= 32) {
            fprintf(stderr, "%s: --codecs takes 1 to %d comma-separated codec names\n", CMD, MAX_CODECS);
            return 2;
        }
        memcpy(names[n], p, len);
        names[n][len] = '\0';
        if (rk_kv_codec_parse(names[n], &spec, &err) != RK_OK || spec.qjl) {
            fprintf(stderr, "%s: --codecs: %s\n", CMD,
                    spec.qjl ? "the QJL sketch is for keys only (use --ctk)" : err.msg);
            return 2;
        }
        n++;
        p = end ? end + 1 : p + len;
    }
    names[n][0] = '\0';
    return 0;
}

int rk_cmd_eval_kld(int argc, char **argv) {
    if (argc >= 2 && rk_opt_is(argv[1], "-h", "--help")) {
        usage(stdout);
        return 0;
    }
    kld_opts o;
    memset(&o, 0, sizeof o);
    int rc = parse_args(&o, argc, argv);
    if (rc) return rc;
    rk_kv_codec_spec spec;
    rk_error err;
    if (rk_kv_codec_parse(o.ref_codec, &spec, &err) != RK_OK || spec.qjl) {
        fprintf(stderr, "%s: --ref-codec: %s\n", CMD, spec.qjl ? "the QJL sketch is for keys only" : err.msg);
        return 2;
    }
    char names[MAX_CODECS + 1][32];
    names[0][0] = '\0';
    if (o.codec_list && parse_codec_list(o.codec_list, names)) return 2;
    size_t text_len = 0;
    char *text = rk_opt_read_file(CMD, o.file, &text_len);
    if (!text) return 2;
    rk_session s;
    rc = rk_session_open(&s, &o.run, CMD);
    rk_token *tokens = NULL;
    size_t n = 0;
    if (rc == 0 && rk_tokenize(s.model, text, text_len, rk_model_add_bos(s.model), 0, &tokens, &n, &err) != RK_OK) {
        fprintf(stderr, "%s: %s\n", CMD, err.msg);
        rc = 1;
    }
    if (rc == 0) rc = run_kld(&o, &s, names, tokens, n);
    free(tokens);
    free(text);
    rk_session_close(&s);
    return rc;
}
