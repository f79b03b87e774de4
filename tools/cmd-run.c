/*
 * cmd-run.c — `ringkv run -m MODEL -p PROMPT -n N [-t THREADS] [-c CTX] [--temp T ...]`.
 * Streams only the generated text to stdout; prompt and generation speed and peak memory go
 * to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/commands.h"
#include "tools/generate.h"
#include "tools/opts.h"
#include "tools/ring-cli.h"
#include "tools/run-opts.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: ringkv run [-m MODEL] (-p PROMPT | -f FILE) [-n N] [options]\n"
            "  -m, --model FILE       GGUF model (default: SmolLM2-135M-Instruct from models/)\n"
            "  -p, --prompt TEXT      prompt text\n"
            "  -f, --file FILE        read the prompt from a file\n"
            "  -n, --n-predict N      tokens to generate (default 128, -1 = until end)\n"
            "  --no-bos               do not prepend BOS even if the model asks for it\n");
    rk_run_opts_usage(out);
}

int rk_cmd_run(int argc, char **argv) {
    rk_run_opts o;
    rk_run_opts_init(&o);
    const char *prompt = NULL, *prompt_file = NULL;
    int64_t n_predict = 128;
    int no_bos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = rk_run_opts_parse(&o, "run", argc, argv, i);
        if (used < 0) return 2;
        if (used > 0) { i += used - 1; continue; }
        if (rk_opt_is(a, "-p", "--prompt") && v) { prompt = v; i++; }
        else if (rk_opt_is(a, "-f", "--file") && v) { prompt_file = v; i++; }
        else if (rk_opt_is(a, "-n", "--n-predict")) {
            if (!rk_opt_int("run", a, v, -1, 1 << 30, &n_predict)) return 2;
            i++;
        } else if (rk_opt_is(a, NULL, "--no-bos")) no_bos = 1;
        else if (rk_opt_is(a, "-h", "--help")) { usage(stdout); return 0; }
        else {
            fprintf(stderr, "run: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!prompt && !prompt_file) {
        fprintf(stderr, "run: give a prompt with -p TEXT or -f FILE\n");
        return 2;
    }
    rk_session sess;
    int rc = rk_session_open(&sess, &o, "run");
    rk_token *tokens = NULL;
    size_t n = 0;
    rk_error err;
    const bool reader = !sess.ring || sess.ring->rank == 0; /* a ring's rank 0 reads and writes */
    char *file_text = NULL;
    size_t prompt_len = prompt ? strlen(prompt) : 0;
    if (rc == 0 && reader && prompt_file) {
        file_text = rk_opt_read_file("run", prompt_file, &prompt_len);
        if (!file_text) rc = 1;
        prompt = file_text;
    }
    if (rc == 0 && reader && rk_tokenize(sess.model, prompt, prompt_len, !no_bos, 1, &tokens, &n, &err) != RK_OK) {
        fprintf(stderr, "run: %s\n", err.msg);
        rc = 1;
    }
    if (sess.ring && sess.ctx) { /* rank 0's tokens (or its failure) reach every rank */
        rk_status s = rk_transport_agree(sess.ring, rc ? RK_ERR_INVALID_ARG : RK_OK, &err);
        if (!s) s = rk_ring_cli_share_tokens(sess.ring, &tokens, &n, &err);
        if (s && rc == 0) fprintf(stderr, "run: %s\n", err.msg);
        if (s) rc = 1;
    }
    if (rc == 0 && (int64_t)n > rk_context_n_ctx(sess.ctx)) {
        fprintf(stderr, "run: the prompt has %zu tokens but the context holds %lld (raise -c)\n", n,
                (long long)rk_context_n_ctx(sess.ctx));
        rc = 1;
    }
    if (rc == 0 && n == 0) {
        fprintf(stderr, "run: the prompt is empty and the model has no BOS token to start from\n");
        rc = 1;
    }
    if (rc == 0) {
        rk_gen_stats st;
        rk_status s = sess.ring ? rk_ring_cli_generate(sess.ctx, sess.model, sess.sampler, sess.ring, tokens, n,
                                                       n_predict, stdout, &st, &err)
                                : rk_generate(sess.ctx, sess.model, sess.sampler, tokens, n, n_predict, stdout, NULL,
                                              &st, &err);
        if (s != RK_OK) {
            if (reader) fprintf(stderr, "\nrun: %s\n", err.msg);
            rc = 1;
        }
        if (reader && isatty(fileno(stdout))) fputc('\n', stdout); /* keep piped output exact */
        fflush(stdout);
        if (reader) rk_print_speed(stderr, &st, sess.ctx);
        if (sess.ring && o.verbose && !s) rk_ring_cli_report(stderr, sess.ctx, sess.ring);
    }
    free(tokens);
    rk_session_close(&sess);
    free(file_text);
    return rc;
}
