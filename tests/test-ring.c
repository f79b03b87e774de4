/*
 * test-ring.c — ring attention (DESIGN.md, "Ring attention") with ranks as threads of this
 * process (the threads transport): one sequence split over N ranks gives the logits of one
 * process, and the same greedy tokens.
 *
 * For each model and KV codec, a prompt of several pages (prefill: zig-zag shards, KV blocks
 * passed around the ring) is followed by greedy decode steps (partials allgathered, new pages
 * placed on the emptiest rank). Checked:
 *   - every rank returns bitwise the same logits at every step;
 *   - the greedy tokens are those of one process, and the logits equal its logits within the
 *     bound below (what is measured is printed: so far always the same bits);
 *   - each rank holds about 1/N of the KV bytes (within one page per rank plus 5%);
 *   - prefill in rounds (a micro-batch of one page), after an earlier eval (the first round
 *     fills its last page), with the logits of every position, then a truncation: each
 *     position's logits are on the rank that evaluated it, with the bits of one process;
 *   - errors reach every rank alike: a micro-batch smaller than one page.
 *
 * The bound. Ring attention merges the same page partials in another order than one process
 * (per rank, then across ranks). Partials are held and merged in double (attn.h), so the order
 * shows only at double rounding and the float outputs come out the same; a rare value right at
 * a float rounding boundary could still differ by one ulp. These quantised models amplify such
 * a difference: the next products quantise their activations to 8 bits, and a value that moves
 * across a rounding boundary changes the result by a whole step. As a control, one process
 * whose attention merged (in float, before partials were held in double) the two halves of
 * each key range in the other order differed from the normal run, over positions 600..1400 of
 * this prompt, by max|Δlogit| 2.4 / 2.5 and max KL 2.9e-2 / 2.0e-2 (Gemma 3 / SmolLM2). So the
 * logits must stay within max|Δlogit| <= 0.1 × max|logit| and KL <= 0.05 at every step, and
 * the greedy tokens must be identical. With one rank the order is the same as one process:
 * the same bits, required.
 * The attention itself is checked tightly in test-ring-attn.
 *
 * Usage: test-ring MODEL.gguf... (models missing from models/ are skipped).
 */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "core/crc32c.h"
#include "dist/transport.h"
#include "kv/kv-cache.h"
#include "ringkv.h"
#include "test-model.h"
#include "test-util.h"

#define N_DECODE 12
#define MAX_RANKS 4

typedef struct run_spec {
    const rk_model *m;
    const char *codec;
    const rk_token *prompt;
    size_t n_prompt;
    int n_ubatch;
} run_spec;

typedef struct rank_run {
    const run_spec *spec;
    rk_transport *t;                /* NULL: one process */
    rk_token tokens[N_DECODE];
    float *logits;                  /* (N_DECODE + 1, V) */
    size_t kv_bytes;                /* after the last step */
    rk_status status;
    rk_error err;
} rank_run;

static void *run_rank(void *arg) {
    rank_run *r = arg;
    const run_spec *sp = r->spec;
    const int32_t V = rk_model_n_vocab(sp->m);
    rk_context_params cp = rk_context_default_params();
    cp.n_ctx = 4096;
    cp.n_threads = 1;
    cp.n_ubatch = sp->n_ubatch;
    cp.kv_codec_k = cp.kv_codec_v = sp->codec;
    cp.ring = r->t;
    rk_context *ctx = NULL;
    r->status = rk_context_create(sp->m, &cp, &ctx, &r->err);
    if (!r->status) r->status = rk_context_eval(ctx, sp->prompt, sp->n_prompt, 0, &r->err);
    for (int i = 0; !r->status; i++) {
        memcpy(r->logits + (size_t)i * V, rk_context_logits(ctx, -1), (size_t)V * sizeof(float));
        if (i == N_DECODE) break;
        r->tokens[i] = rk_test_argmax(r->logits + (size_t)i * V, V);
        r->status = rk_context_eval(ctx, &r->tokens[i], 1, 0, &r->err);
    }
    if (ctx) r->kv_bytes = rk_context_kv_bytes_in_use(ctx);
    rk_context_free(ctx);
    return NULL;
}

/* Runs the spec on n ranks (threads); runs[r] gets rank r's results. */
static void run_ring(const run_spec *sp, int n, rank_run *runs) {
    rk_transport *t[MAX_RANKS];
    rk_error err;
    CHECK(rk_transport_threads_create(n, t, &err) == RK_OK);
    pthread_t th[MAX_RANKS];
    for (int r = 0; r < n; r++) {
        runs[r].spec = sp;
        runs[r].t = t[r];
        pthread_create(&th[r], NULL, run_rank, &runs[r]);
    }
    for (int r = 0; r < n; r++) pthread_join(th[r], NULL);
    for (int r = 0; r < n; r++) rk_transport_free(t[r]);
}

/* KL(p || q) of the softmaxes of two logit rows. */
static double kl_divergence(const float *p_logits, const float *q_logits, int32_t V) {
    double mp = p_logits[0], mq = q_logits[0], zp = 0.0, zq = 0.0, kl = 0.0;
    for (int32_t v = 1; v < V; v++) {
        if (p_logits[v] > mp) mp = p_logits[v];
        if (q_logits[v] > mq) mq = q_logits[v];
    }
    for (int32_t v = 0; v < V; v++) {
        zp += exp(p_logits[v] - mp);
        zq += exp(q_logits[v] - mq);
    }
    for (int32_t v = 0; v < V; v++) {
        double lp = p_logits[v] - mp - log(zp), lq = q_logits[v] - mq - log(zq);
        kl += exp(lp) * (lp - lq);
    }
    return kl;
}

/* The gap between the best and the second-best logit. */
static void compare(const run_spec *sp, int n, const rank_run *solo, const rank_run *runs, double bound) {
    const int32_t V = rk_model_n_vocab(sp->m);
    const size_t floats = (size_t)(N_DECODE + 1) * (size_t)V;
    for (int r = 0; r < n; r++) {
        CHECK_MSG(runs[r].status == RK_OK, "%s, %d ranks, rank %d: %s", sp->codec, n, r, runs[r].err.msg);
        if (runs[r].status) return;
        CHECK_MSG(memcmp(runs[r].logits, runs[0].logits, floats * sizeof(float)) == 0,
                  "%s, %d ranks: rank %d's logits differ from rank 0's", sp->codec, n, r);
    }
    CHECK_MSG(memcmp(runs[0].tokens, solo->tokens, sizeof solo->tokens) == 0, "%s, %d ranks: greedy tokens differ",
              sp->codec, n);
    double max_diff = 0.0, max_abs = 0.0, max_kl = 0.0;
    int same_bits = 0;
    for (int st = 0; st <= N_DECODE; st++) {
        const float *a = solo->logits + (size_t)st * V, *b = runs[0].logits + (size_t)st * V;
        if (st > 0 && runs[0].tokens[st - 1] != solo->tokens[st - 1]) break; /* fed different tokens since */
        same_bits += memcmp(a, b, (size_t)V * sizeof(float)) == 0;
        for (int32_t v = 0; v < V; v++) {
            if (fabs((double)a[v] - b[v]) > max_diff) max_diff = fabs((double)a[v] - b[v]);
            if (fabs(a[v]) > max_abs) max_abs = fabs(a[v]);
        }
        const double kl = kl_divergence(a, b, V);
        if (kl > max_kl) max_kl = kl;
    }
    size_t total = 0, most = 0;
    for (int r = 0; r < n; r++) {
        total += runs[r].kv_bytes;
        if (runs[r].kv_bytes > most) most = runs[r].kv_bytes;
    }
    fprintf(stderr, "  %-6s %d ranks: %d/%d steps the same bits, max|dlogit| %.4f (%.2e of max|logit| %.1f), max KL "
                    "%.2e; KV bytes: most %zu, in all %zu, one process %zu\n",
            sp->codec, n, same_bits, N_DECODE + 1, max_diff, max_diff / max_abs, max_abs, max_kl, most, total,
            solo->kv_bytes);
    if (n == 1) /* one rank merges in the same order as one process: the same bits */
        CHECK_MSG(max_diff == 0.0, "%s, 1 rank: logits differ from one process by %.3g", sp->codec, max_diff);
    CHECK_MSG(max_diff <= bound * max_abs, "%s, %d ranks: logits differ by %.4f (bound %.4f)", sp->codec, n, max_diff,
              bound * max_abs);
    CHECK_MSG(max_kl <= 0.05, "%s, %d ranks: KL divergence %.2e from one process", sp->codec, n, max_kl);
    CHECK_MSG(total <= solo->kv_bytes * 105 / 100 + (size_t)n * solo->kv_bytes / 4,
              "%s, %d ranks: %zu KV bytes in all, one process holds %zu", sp->codec, n, total, solo->kv_bytes);
}

static void test_codec(const rk_model *m, const char *codec, const rk_token *prompt, size_t n_prompt, int max_ranks) {
    const int32_t V = rk_model_n_vocab(m);
    const size_t floats = (size_t)(N_DECODE + 1) * (size_t)V;
    run_spec solo_spec = {m, codec, prompt, n_prompt, 512};
    rank_run solo;
    memset(&solo, 0, sizeof solo);
    solo.spec = &solo_spec;
    solo.logits = malloc(floats * sizeof(float));
    run_rank(&solo);
    CHECK_MSG(solo.status == RK_OK, "%s alone: %s", codec, solo.err.msg);
    /* every rank's share must fit one micro-batch: a page more than 1/N of the prompt */
    run_spec sp = {m, codec, prompt, n_prompt, (int)n_prompt};
    const double bound = 0.1;
    for (int n = RK_TEST_SANITIZED ? 2 : 1; n <= max_ranks && !solo.status; n++) {
        rank_run runs[MAX_RANKS];
        memset(runs, 0, sizeof runs);
        for (int r = 0; r < n; r++) runs[r].logits = malloc(floats * sizeof(float));
        run_ring(&sp, n, runs);
        compare(&sp, n, &solo, runs, bound);
        for (int r = 0; r < n; r++) free(runs[r].logits);
    }
    free(solo.logits);
}

/* Prefill in rounds, after a first eval, and truncation. A context takes the prompt's first
 * SPLIT_A tokens, then up to SPLIT_B with the logits of every position (the first prefill round
 * fills the page SPLIT_A ended in), is truncated to SPLIT_T and takes the tokens up to SPLIT_C.
 * With a micro-batch of one page, every prefill is several rounds. Each position's logits must
 * be on exactly the rank that evaluated it (the last one's on every rank) and be the bits of one
 * process. */
#define SPLIT_A 700
#define SPLIT_B 1100
#define SPLIT_T 1050 /* inside Gemma 3's sliding window of 512 */
#define SPLIT_C 1100

typedef struct split_run {
    const rk_model *m;
    const rk_token *prompt;
    int n_ubatch;
    rk_transport *t;                        /* NULL: one process */
    uint32_t crc[SPLIT_B - SPLIT_A];        /* checksum of each position's logits ... */
    bool have[SPLIT_B - SPLIT_A];           /* ... where this rank has them */
    uint32_t crc_truncated;                 /* the last logits after the truncation */
    rk_status status;
    rk_error err;
} split_run;

static void *run_split(void *arg) {
    split_run *r = arg;
    const size_t row = (size_t)rk_model_n_vocab(r->m) * sizeof(float);
    rk_context_params cp = rk_context_default_params();
    cp.n_ctx = 4096;
    cp.n_threads = 1;
    cp.n_ubatch = r->n_ubatch;
    cp.ring = r->t;
    rk_context *ctx = NULL;
    r->status = rk_context_create(r->m, &cp, &ctx, &r->err);
    if (!r->status) r->status = rk_context_eval(ctx, r->prompt, SPLIT_A, 0, &r->err);
    if (!r->status) r->status = rk_context_eval(ctx, r->prompt + SPLIT_A, SPLIT_B - SPLIT_A, 1, &r->err);
    for (int i = 0; i < SPLIT_B - SPLIT_A && !r->status; i++) {
        const float *l = rk_context_logits(ctx, i);
        r->have[i] = l != NULL;
        r->crc[i] = l ? rk_crc32c(0, l, row) : 0;
    }
    if (!r->status) r->status = rk_context_truncate(ctx, SPLIT_T, &r->err);
    if (!r->status) r->status = rk_context_eval(ctx, r->prompt + SPLIT_T, SPLIT_C - SPLIT_T, 0, &r->err);
    if (!r->status) r->crc_truncated = rk_crc32c(0, rk_context_logits(ctx, -1), row);
    rk_context_free(ctx);
    return NULL;
}

static void test_rounds(const rk_model *m, const rk_token *prompt, int n) {
    split_run solo = {m, prompt, 512, NULL, {0}, {0}, 0, RK_OK, {0}};
    run_split(&solo);
    CHECK_MSG(solo.status == RK_OK, "rounds, alone: %s", solo.err.msg);
    split_run runs[MAX_RANKS];
    rk_transport *t[MAX_RANKS];
    rk_error err;
    CHECK(rk_transport_threads_create(n, t, &err) == RK_OK);
    pthread_t th[MAX_RANKS];
    for (int r = 0; r < n; r++) {
        runs[r] = (split_run){m, prompt, RK_KV_PAGE_TOKENS, t[r], {0}, {0}, 0, RK_OK, {0}};
        pthread_create(&th[r], NULL, run_split, &runs[r]);
    }
    for (int r = 0; r < n; r++) pthread_join(th[r], NULL);
    for (int r = 0; r < n; r++) rk_transport_free(t[r]);
    int same = 0, total = SPLIT_B - SPLIT_A;
    for (int r = 0; r < n; r++) CHECK_MSG(runs[r].status == RK_OK, "rounds, rank %d: %s", r, runs[r].err.msg);
    for (int i = 0; i < total && !runs[0].status; i++) {
        int holders = 0, equal = 0;
        for (int r = 0; r < n; r++) {
            holders += runs[r].have[i];
            equal += runs[r].have[i] && runs[r].crc[i] == solo.crc[i];
        }
        CHECK_MSG(holders == (i == total - 1 ? n : 1), "rounds, %d ranks: position %d's logits are on %d ranks", n,
                  SPLIT_A + i, holders);
        same += equal == holders;
    }
    for (int r = 0; r < n; r++)
        CHECK_MSG(runs[r].crc_truncated == solo.crc_truncated, "rounds, %d ranks: rank %d's logits after truncating "
                  "differ from one process's", n, r);
    fprintf(stderr, "  rounds %d ranks (-ub %d): %d/%d positions' logits the same bits as one process\n", n,
            RK_KV_PAGE_TOKENS, same, total);
    CHECK_MSG(same == total, "rounds, %d ranks: %d of %d positions differ from one process", n, total - same, total);
}

/* Errors reach every rank: a micro-batch smaller than one page. */
static void test_errors(const rk_model *m, const rk_token *prompt, size_t n_prompt) {
    const int32_t V = rk_model_n_vocab(m);
    run_spec sp = {m, "f16", prompt, n_prompt, 64};
    rank_run runs[2];
    memset(runs, 0, sizeof runs);
    for (int r = 0; r < 2; r++) runs[r].logits = malloc((size_t)(N_DECODE + 1) * (size_t)V * sizeof(float));
    run_ring(&sp, 2, runs);
    for (int r = 0; r < 2; r++) {
        CHECK_MSG(runs[r].status == RK_ERR_INVALID_ARG && strstr(runs[r].err.msg, "raise -ub"),
                  "rank %d: %s", r, runs[r].err.msg);
        free(runs[r].logits);
    }
}

static rk_token *read_prompt(const rk_model *m, size_t want, size_t *n) {
    char path[1024];
    rk_test_data_path(path, sizeof path, "haystack/pg-essays/avg.txt");
    char *text = rk_test_read_file(path, NULL);
    rk_token *tokens = NULL;
    rk_error err;
    *n = 0;
    if (text && rk_tokenize(m, text, strlen(text), 1, 0, &tokens, n, &err) != RK_OK) *n = 0;
    free(text);
    CHECK_MSG(*n >= want, "the prompt has %zu tokens, %zu wanted", *n, want);
    if (*n > want) *n = want;
    return tokens;
}

/* Every codec runs on 1 .. max_ranks ranks. */
static void test_model(const char *file, const char *const *codecs, size_t n_prompt, int max_ranks) {
    rk_model *m = rk_test_load_model(file);
    if (!m) return;
    size_t n = 0;
    rk_token *prompt = read_prompt(m, n_prompt, &n);
    fprintf(stderr, "%s: %zu prompt tokens, %d decode steps\n", file, n, N_DECODE);
    for (int i = 0; codecs[i] && n == n_prompt; i++) test_codec(m, codecs[i], prompt, n, max_ranks);
    if (n == n_prompt) test_errors(m, prompt, n);
    if (n == n_prompt && n >= SPLIT_B && !RK_TEST_SANITIZED) test_rounds(m, prompt, 2);
    if (n == n_prompt && n >= SPLIT_B && !RK_TEST_SANITIZED && max_ranks >= 3) test_rounds(m, prompt, 3);
    free(prompt);
    rk_model_free(m);
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    static const char *const codecs[] = {"f16", "q8", "q4", "tq3.5", "tq2.5", NULL};
    static const char *const gemma_codecs[] = {"f16", "tq3.5", NULL};
    if (RK_TEST_SANITIZED) { /* ~20x slower: f16 on 2 ranks over two pages, and the errors */
        static const char *const f16_only[] = {"f16", NULL};
        test_model("SmolLM2-135M-Instruct.Q4_1.gguf", f16_only, 300, 2);
        return rk_test_finish("test-ring");
    }
    test_model("SmolLM2-135M-Instruct.Q4_1.gguf", codecs, 1100, 4);
    test_model("gemma-3-270m-q4_k_m.gguf", gemma_codecs, 1100, 3);
    return rk_test_finish("test-ring");
}
