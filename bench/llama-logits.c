/*
 * llama-logits.c — the reference engine's logits for a token list, in ringkv's file format.
 *
 * Loads a GGUF model with llama.cpp on the CPU (n_gpu_layers 0), evaluates the given token ids
 * as one sequence from position 0 in a single llama_decode call (split by llama.cpp into
 * micro-batches of -ub tokens; default: all of them at once) with logits requested for every
 * position, and writes them as raw float32 (host order, little-endian on x86/ARM), n_tokens
 * rows of n_vocab, row i being the logits after token i. That is exactly what
 * `ringkv eval logits -m MODEL --tokens ID,... --out OUT.f32` writes, so the two files compare
 * with numpy.fromfile(..., np.float32).reshape(n_tokens, n_vocab).
 *
 *     llama-logits -m MODEL.gguf --tokens 1,2,3 --out OUT.f32 [-t THREADS] [-ub N] [-v]
 *
 * The context is max(256, n_tokens) positions; everything else (KV cache type, flash
 * attention) is llama.cpp's default, as llama-cli would run it. llama.cpp's own log goes to
 * stderr at warning level and above (all of it with -v). Exit status: 0 on success, 1 when
 * the model cannot be loaded, a token is out of range, decoding or writing fails, 2 for bad
 * arguments. Built by bench/build-llama-logits.sh against .cache/llama.cpp.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llama.h"

typedef struct {
    const char *model_path;
    const char *tokens_arg; // "1,2,3"
    const char *out_path;
    int n_threads;
    int n_ubatch; // 0 = all tokens in one micro-batch
    int verbose;
} opts;

/* Forwards llama.cpp's log lines at warning level and above (or all, when verbose) to
 * stderr; continuation lines (GGML_LOG_LEVEL_CONT) follow the level of the line they
 * continue. `user` is a log_filter owned by main. */
typedef struct {
    int verbose;
    enum ggml_log_level last;
} log_filter;

static void log_cb(enum ggml_log_level level, const char *text, void *user) {
    log_filter *f = user;
    if (level != GGML_LOG_LEVEL_CONT) f->last = level;
    if (f->verbose || f->last >= GGML_LOG_LEVEL_WARN) fputs(text, stderr);
}

static void usage(FILE *out) {
    fprintf(out, "usage: llama-logits -m MODEL.gguf --tokens ID,ID,... --out OUT.f32 "
                 "[-t THREADS] [-ub N] [-v]\n"
                 "  writes n_tokens x n_vocab float32 logits (every position), as "
                 "`ringkv eval logits`\n");
}

/* Parses a positive int option value; returns 0 on success. */
static int parse_pos_int(const char *s, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v <= 0 || v > INT_MAX) return 1;
    *out = (int)v;
    return 0;
}

/* Parses argv into o; returns 0 on success, 2 (after printing why) on a usage error, -1
 * when help was printed. */
static int parse_args(int argc, char **argv, opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return -1;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            o->verbose = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "llama-logits: option '%s' needs a value (or is unknown)\n", a);
            return 2;
        }
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) o->model_path = v;
        else if (!strcmp(a, "--tokens")) o->tokens_arg = v;
        else if (!strcmp(a, "--out") || !strcmp(a, "-o")) o->out_path = v;
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (parse_pos_int(v, &o->n_threads)) {
                fprintf(stderr, "llama-logits: -t expects a positive integer, got '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "-ub") || !strcmp(a, "--ubatch-size")) {
            if (parse_pos_int(v, &o->n_ubatch)) {
                fprintf(stderr, "llama-logits: -ub expects a positive integer, got '%s'\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "llama-logits: unknown option '%s'\n", a);
            return 2;
        }
        i++;
    }
    if (!o->model_path || !o->tokens_arg || !o->out_path) {
        usage(stderr);
        return 2;
    }
    return 0;
}

/* Parses "1,2,3" into a malloc'd array of *out_n ids (caller frees); NULL on a malformed
 * list, an id outside 0..INT32_MAX, or an empty list. */
static llama_token *parse_tokens(const char *list, int32_t *out_n) {
    size_t cap = 64, n = 0;
    llama_token *t = malloc(cap * sizeof *t);
    for (const char *p = list; t && *p;) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno || end == p || v < 0 || v > INT32_MAX || (*end && *end != ',') ||
            n == INT32_MAX) {
            free(t);
            return NULL;
        }
        if (n == cap) {
            llama_token *bigger = realloc(t, 2 * cap * sizeof *t);
            if (!bigger) {
                free(t);
                return NULL;
            }
            t = bigger;
            cap *= 2;
        }
        t[n++] = (llama_token)v;
        p = *end ? end + 1 : end;
    }
    if (t && n == 0) {
        free(t);
        t = NULL;
    }
    *out_n = (int32_t)n;
    return t;
}

/* Evaluates tokens[0..n) as sequence 0 from position 0 with logits at every position and
 * writes them to out_path. Returns 0 or 1 (after printing why). */
static int eval_and_write(struct llama_context *ctx, const llama_token *tokens, int32_t n,
                          int32_t n_vocab, const char *out_path) {
    struct llama_batch batch = llama_batch_init(n, 0, 1);
    for (int32_t i = 0; i < n; i++) {
        batch.token[i] = tokens[i];
        batch.pos[i] = i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = 1;
    }
    batch.n_tokens = n;
    int32_t r = llama_decode(ctx, batch);
    llama_batch_free(batch);
    if (r != 0) {
        fprintf(stderr, "llama-logits: llama_decode of %d tokens failed (code %d)\n", n, r);
        return 1;
    }
    FILE *f = fopen(out_path, "wb");
    if (!f) {
        fprintf(stderr, "llama-logits: cannot write '%s': %s\n", out_path, strerror(errno));
        return 1;
    }
    int rc = 0;
    for (int32_t i = 0; i < n && !rc; i++) {
        const float *row = llama_get_logits_ith(ctx, i);
        if (!row) {
            fprintf(stderr, "llama-logits: no logits for position %d\n", i);
            rc = 1;
        } else if (fwrite(row, sizeof(float), (size_t)n_vocab, f) != (size_t)n_vocab) {
            fprintf(stderr, "llama-logits: write to '%s' failed\n", out_path);
            rc = 1;
        }
    }
    if (fclose(f) != 0 && !rc) {
        fprintf(stderr, "llama-logits: write to '%s' failed\n", out_path);
        rc = 1;
    }
    return rc;
}

int main(int argc, char **argv) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    opts o = {.n_threads = ncpu > 0 ? (int)ncpu : 1};
    int a = parse_args(argc, argv, &o);
    if (a) return a < 0 ? 0 : a;
    int32_t n = 0;
    llama_token *tokens = parse_tokens(o.tokens_arg, &n);
    if (!tokens) {
        fprintf(stderr, "llama-logits: --tokens expects comma-separated ids, got '%s'\n",
                o.tokens_arg);
        return 2;
    }

    log_filter lf = {.verbose = o.verbose, .last = GGML_LOG_LEVEL_INFO};
    llama_log_set(log_cb, &lf);
    llama_backend_init();
    int rc = 1;
    struct llama_context *ctx = NULL;
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    struct llama_model *model = llama_model_load_from_file(o.model_path, mp);
    if (!model) {
        fprintf(stderr, "llama-logits: cannot load model '%s'\n", o.model_path);
        goto done;
    }
    const int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    for (int32_t i = 0; i < n; i++) {
        if (tokens[i] >= n_vocab) {
            fprintf(stderr, "llama-logits: token %d at position %d out of range (n_vocab %d)\n",
                    tokens[i], i, n_vocab);
            goto done;
        }
    }

    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(n > 256 ? n : 256);
    cp.n_batch = (uint32_t)n; // one llama_decode call for the whole list
    cp.n_ubatch = (uint32_t)(o.n_ubatch > 0 && o.n_ubatch < n ? o.n_ubatch : n);
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = o.n_threads;
    ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "llama-logits: cannot create a context of %u positions for '%s'\n",
                cp.n_ctx, o.model_path);
        goto done;
    }
    rc = eval_and_write(ctx, tokens, n, n_vocab, o.out_path);
    if (!rc)
        fprintf(stderr, "llama-logits: wrote %d x %d logits to %s\n", n, n_vocab, o.out_path);

done:
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    free(tokens);
    return rc;
}
