/*
 * test-engine-batch.c — several sequences in one engine step (rk_engine_eval) give exactly the
 * logits each gives alone (rk_context_eval with the same micro-batch size): the property a
 * server's continuous batching relies on for "the same answer beside 15 others".
 *
 * Three prompts of different lengths start at different steps, so a step mixes prefill chunks
 * and decode tokens of different sequences; every logit of every step is compared bitwise with
 * the solo run. Also: an item that fails (a token outside the vocabulary, a full context) leaves
 * its context as it was and the others run; contexts of another engine or given twice are refused.
 * Usage: test-engine-batch MODEL.gguf... (models missing from models/ are skipped).
 */
#include <stdlib.h>
#include <string.h>

#include "ringkv.h"
#include "test-model.h"
#include "test-util.h"

#define N_SEQ 3
#define N_DECODE 10
#define UBATCH 64

typedef struct solo_run {
    rk_token *prompt;
    size_t n_prompt;
    rk_token tokens[N_DECODE];     /* greedy tokens */
    float *logits;                 /* (N_DECODE + 1, V): after the prompt, then after each token */
} solo_run;

static rk_context *new_context(rk_model *m, rk_engine *engine, int64_t n_ctx) {
    rk_context_params cp = rk_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_threads = 2;
    cp.n_ubatch = UBATCH;
    cp.engine = engine;
    rk_context *ctx = NULL;
    rk_error err;
    if (rk_context_create(m, &cp, &ctx, &err) != RK_OK) fprintf(stderr, "context: %s\n", err.msg);
    return ctx;
}

static void run_solo(rk_model *m, solo_run *r) {
    const int32_t V = rk_model_n_vocab(m);
    rk_context *ctx = new_context(m, NULL, 1024);
    rk_error err;
    CHECK(ctx && rk_context_eval(ctx, r->prompt, r->n_prompt, 0, &err) == RK_OK);
    for (int i = 0; ctx && i <= N_DECODE; i++) {
        memcpy(r->logits + (size_t)i * V, rk_context_logits(ctx, -1), (size_t)V * sizeof(float));
        if (i == N_DECODE) break;
        r->tokens[i] = rk_test_argmax(r->logits + (size_t)i * V, V);
        CHECK(rk_context_eval(ctx, &r->tokens[i], 1, 0, &err) == RK_OK);
    }
    rk_context_free(ctx);
}

/* Sequence s joins at step start[s]; each step it feeds its next prompt chunk or its last token. */
static void run_batched(rk_model *m, solo_run *runs) {
    const int32_t V = rk_model_n_vocab(m);
    const int start[N_SEQ] = {0, 2, 5};
    rk_engine *engine = NULL;
    rk_error err;
    CHECK(rk_engine_create(m, 2, &engine, &err) == RK_OK);
    rk_context *ctx[N_SEQ];
    size_t fed[N_SEQ] = {0};
    int decoded[N_SEQ] = {0}, compared = 0;
    for (int s = 0; s < N_SEQ; s++) ctx[s] = new_context(m, engine, 1024);
    for (int step = 0; step < 60; step++) {
        rk_batch_item items[N_SEQ];
        int who[N_SEQ], n = 0;
        for (int s = 0; s < N_SEQ; s++) {
            if (step < start[s] || decoded[s] == N_DECODE) continue;
            memset(&items[n], 0, sizeof items[n]);
            items[n].ctx = ctx[s];
            if (fed[s] < runs[s].n_prompt) {
                items[n].tokens = runs[s].prompt + fed[s];
                items[n].n = runs[s].n_prompt - fed[s] < UBATCH ? runs[s].n_prompt - fed[s] : UBATCH;
                fed[s] += items[n].n;
            } else {
                items[n].tokens = &runs[s].tokens[decoded[s]++];
                items[n].n = 1;
            }
            who[n++] = s;
        }
        if (n == 0) break;
        CHECK(rk_engine_eval(engine, items, (size_t)n, &err) == RK_OK);
        for (int i = 0; i < n; i++) {
            int s = who[i];
            if (fed[s] < runs[s].n_prompt) continue; /* mid-prompt: no logits to compare */
            const float *want = runs[s].logits + (size_t)decoded[s] * V;
            CHECK_MSG(memcmp(rk_context_logits(ctx[s], -1), want, (size_t)V * sizeof(float)) == 0,
                      "sequence %d, decode step %d: logits differ from the solo run", s, decoded[s]);
            compared++;
        }
    }
    CHECK(compared == N_SEQ * (N_DECODE + 1));

    /* a failing item leaves its context as it was; the others run */
    rk_context *bad = new_context(m, engine, 1024);
    rk_token ok_tok = 1, bad_tok = V;
    rk_batch_item items[2] = {{ctx[0], &ok_tok, 1, RK_OK, {0}}, {bad, &bad_tok, 1, RK_OK, {0}}};
    CHECK(rk_engine_eval(engine, items, 2, &err) == RK_ERR_INVALID_ARG);
    CHECK(items[0].status == RK_OK && items[1].status == RK_ERR_INVALID_ARG);
    CHECK(strstr(items[1].err.msg, "outside the vocabulary") != NULL);
    CHECK(rk_context_n_past(bad) == 0);
    CHECK(rk_context_n_past(ctx[0]) == (int64_t)runs[0].n_prompt + N_DECODE + 1);
    /* the same context twice, a context without this engine */
    rk_context *alone = new_context(m, NULL, 256);
    rk_batch_item twice[2] = {{ctx[1], &ok_tok, 1, RK_OK, {0}}, {ctx[1], &ok_tok, 1, RK_OK, {0}}};
    CHECK(rk_engine_eval(engine, twice, 2, &err) == RK_ERR_INVALID_ARG && strstr(err.msg, "same context"));
    rk_batch_item other = {alone, &ok_tok, 1, RK_OK, {0}};
    CHECK(rk_engine_eval(engine, &other, 1, &err) == RK_ERR_INVALID_ARG && strstr(err.msg, "engine"));
    /* a full context */
    rk_context *tiny = new_context(m, engine, 8);
    rk_token many[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    rk_batch_item first = {tiny, many, 1, RK_OK, {0}}, full = {tiny, many, 8, RK_OK, {0}};
    CHECK(rk_engine_eval(engine, &first, 1, &err) == RK_OK);
    CHECK(rk_engine_eval(engine, &full, 1, &err) == RK_ERR_CONTEXT_FULL && rk_context_n_past(tiny) == 1);
    rk_context_free(tiny);
    rk_context_free(alone);
    rk_context_free(bad);
    for (int s = 0; s < N_SEQ; s++) rk_context_free(ctx[s]);
    rk_engine_free(engine);
}

static void test_model(const char *file) {
    rk_model *m = rk_test_load_model(file);
    if (!m) return;
    rk_error err;
    const char *texts[N_SEQ] = {
        "The quick brown fox jumps over the lazy dog, and then it runs into the forest to find its friends.",
        NULL, "Hello"};
    char long_text[4096] = "";
    for (int i = 0; i < 12; i++)
        strcat(long_text, "Once upon a time there was a little robot who liked to count the stars. ");
    texts[1] = long_text;
    solo_run runs[N_SEQ];
    const int32_t V = rk_model_n_vocab(m);
    for (int s = 0; s < N_SEQ; s++) {
        memset(&runs[s], 0, sizeof runs[s]);
        CHECK(rk_tokenize(m, texts[s], strlen(texts[s]), 1, 0, &runs[s].prompt, &runs[s].n_prompt, &err) == RK_OK);
        runs[s].logits = malloc((size_t)(N_DECODE + 1) * (size_t)V * sizeof(float));
        run_solo(m, &runs[s]);
    }
    fprintf(stderr, "%s: prompts of %zu, %zu and %zu tokens\n", file, runs[0].n_prompt, runs[1].n_prompt,
            runs[2].n_prompt);
    run_batched(m, runs);
    for (int s = 0; s < N_SEQ; s++) {
        free(runs[s].prompt);
        free(runs[s].logits);
    }
    rk_model_free(m);
}


int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test-engine-batch MODEL.gguf...\n");
        return 2;
    }
    /* sanitizer builds run the model ~20x slower: the first model only */
    for (int i = 1; i < (RK_TEST_SANITIZED ? 2 : argc); i++) test_model(argv[i]);
    return rk_test_finish("test-engine-batch");
}
