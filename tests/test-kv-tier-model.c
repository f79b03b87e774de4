/*
 * test-kv-tier-model.c — on a real model, moving KV pages between tiers never changes a logit.
 *
 * SmolLM2-135M reads ~2300 tokens of the essays in ../shared/testdata/haystack (prefill in
 * micro-batches of 256, so queries cross sealed pages), then decodes 12 tokens greedily. The
 * run is repeated with the least RAM budgets and a disk tier (most pages cold, read back by the
 * I/O thread), buffered and O_DIRECT, and every logit row is compared bit for bit with the
 * all-in-RAM run of the same codec. The opt-in sparse decode is checked the same way (tiers
 * must not change which pages it picks). A full disk mid-prompt fails that call only: the
 * context keeps its length and goes on. Skipped (77) without the cached model.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ringkv.h"
#include "test-util.h"

#define N_TEXT 2300
#define N_DECODE 12

typedef struct run_out {
    float *logits;      /* (rows, n_vocab) */
    int64_t rows;
    rk_kv_tier_stats stats;
} run_out;

/* The first `want` tokens of the concatenated essays. */
static rk_token *essay_tokens(const rk_model *m, size_t want) {
    char dir[512], path[1024];
    rk_test_data_path(dir, sizeof dir, "haystack/pg-essays");
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char *text = NULL;
    size_t len = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && len < want * 8) {
        if (e->d_name[0] == '.' || !strstr(e->d_name, ".txt")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t n;
        char *f = rk_test_read_file(path, &n);
        if (!f) continue;
        char *t = realloc(text, len + n + 1);
        if (t) {
            memcpy(t + len, f, n);
            len += n;
            t[len] = '\0';
            text = t;
        }
        free(f);
    }
    closedir(d);
    rk_token *toks = NULL;
    size_t n = 0;
    rk_error err;
    if (text && rk_tokenize(m, text, len, 1, 0, &toks, &n, &err) != RK_OK) toks = NULL;
    free(text);
    if (toks && n < want) {
        free(toks);
        toks = NULL;
    }
    return toks;
}

static int run(const rk_model *m, const rk_token *text, const char *codec, const char *disk, int direct,
               int64_t sparse, run_out *out) {
    const int64_t V = rk_model_n_vocab(m);
    rk_context_params p = rk_context_default_params();
    p.n_ctx = N_TEXT + N_DECODE + 16;
    p.n_threads = 2;
    p.n_ubatch = 256;
    p.kv_codec_k = p.kv_codec_v = codec;
    p.kv_disk_dir = disk;
    p.kv_disk_direct = direct;
    p.kv_hot_bytes = disk ? 1 : 0; /* 1 byte: below the least; raised below */
    p.kv_sparse_pages = sparse;
    rk_context *ctx = NULL;
    rk_error err;
    if (disk) { /* the least hot budget that works: create once with 1 byte to learn it */
        rk_status s = rk_context_create(m, &p, &ctx, &err);
        CHECK(s == RK_ERR_NO_MEMORY);
        const char *at = strstr(err.msg, "below the ");
        double mib = at ? atof(at + 10) : 0;
        CHECK_MSG(mib > 0, "no size in: %s", err.msg);
        p.kv_hot_bytes = (size_t)((mib + 0.2) * 1048576.0);
    }
    rk_status s = rk_context_create(m, &p, &ctx, &err);
    CHECK_MSG(s == RK_OK, "%s: %s", codec, err.msg);
    if (s) return 0;
    out->rows = 0;
    out->logits = malloc((size_t)(N_TEXT / 256 + 1 + N_DECODE) * (size_t)V * sizeof(float));
    for (int64_t at = 0; at < N_TEXT && !s; at += 256) {
        size_t n = N_TEXT - at < 256 ? (size_t)(N_TEXT - at) : 256;
        s = rk_context_eval(ctx, text + at, n, 0, &err);
        if (!s) memcpy(out->logits + out->rows++ * V, rk_context_logits(ctx, -1), (size_t)V * sizeof(float));
    }
    for (int i = 0; i < N_DECODE && !s; i++) {
        const float *l = out->logits + (out->rows - 1) * V;
        rk_token best = 0;
        for (rk_token t = 1; t < V; t++)
            if (l[t] > l[best]) best = t;
        s = rk_context_eval(ctx, &best, 1, 0, &err);
        if (!s) memcpy(out->logits + out->rows++ * V, rk_context_logits(ctx, -1), (size_t)V * sizeof(float));
    }
    CHECK_MSG(s == RK_OK, "%s disk=%s: %s", codec, disk ? disk : "-", err.msg);
    rk_context_kv_tiers(ctx, &out->stats);
    rk_context_free(ctx);
    return s == RK_OK;
}

static void compare(const rk_model *m, const rk_token *text, const char *codec, const char *dir, int64_t sparse) {
    const int64_t V = rk_model_n_vocab(m);
    run_out ram = {0}, disk = {0}, direct = {0};
    if (run(m, text, codec, NULL, 0, sparse, &ram) && run(m, text, codec, dir, 0, sparse, &disk) &&
        run(m, text, codec, dir, 1, sparse, &direct)) {
        CHECK(ram.rows == disk.rows && ram.rows == direct.rows);
        size_t bytes = (size_t)ram.rows * (size_t)V * sizeof(float);
        CHECK_MSG(memcmp(ram.logits, disk.logits, bytes) == 0, "%s sparse %lld: tiered logits differ", codec,
                  (long long)sparse);
        CHECK_MSG(memcmp(ram.logits, direct.logits, bytes) == 0, "%s sparse %lld: O_DIRECT logits differ", codec,
                  (long long)sparse);
        const rk_kv_tier_stats *t = &disk.stats;
        int64_t pages = t->pages_hot + t->pages_warm + t->pages_cold;
        printf("%-6s sparse %lld: %lld rows identical; pages hot %lld warm %lld cold %lld; read from disk %.1f MiB "
               "(%llu pages, %llu prefetched); waited %.3f of %.3f s\n",
               codec, (long long)sparse, (long long)ram.rows, (long long)t->pages_hot, (long long)t->pages_warm,
               (long long)t->pages_cold, t->read_cold_bytes / 1048576.0, (unsigned long long)t->pages_fetched,
               (unsigned long long)t->pages_prefetched, t->io_wait_seconds, t->io_seconds);
        CHECK(pages == 30 * (N_TEXT + N_DECODE) / 256);
        CHECK_MSG(t->pages_cold * 2 >= pages, "only %lld of %lld pages cold", (long long)t->pages_cold,
                  (long long)pages);
        CHECK(t->read_cold_bytes > 0);
        if (sparse) CHECK(t->sparse_pages_skipped > 0 && ram.stats.sparse_pages_skipped == t->sparse_pages_skipped);
    }
    free(ram.logits);
    free(disk.logits);
    free(direct.logits);
}

/* A full disk while a step seals pages: the step fails with a clear error, the context keeps
 * its previous length, and once there is room again it continues as if nothing happened. */
static void test_disk_full(const rk_model *m, const rk_token *text, const char *dir) {
    const int64_t V = rk_model_n_vocab(m);
    rk_context_params p = rk_context_default_params();
    p.n_ctx = 2048;
    p.n_threads = 2;
    p.kv_codec_k = p.kv_codec_v = "q8";
    rk_context *ram = NULL, *disk = NULL;
    rk_error err;
    CHECK(rk_context_create(m, &p, &ram, &err) == RK_OK);
    p.kv_disk_dir = dir;
    p.kv_hot_bytes = (size_t)64 << 20;
    CHECK(rk_context_create(m, &p, &disk, &err) == RK_OK);
    if (!ram || !disk) goto out;
    CHECK(rk_context_eval(ram, text, 1024 + 300, 0, &err) == RK_OK);
    CHECK(rk_context_eval(disk, text, 1024, 0, &err) == RK_OK); /* pages 0-3 written */
    struct rlimit old, small;
    getrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_IGN);
    small = old;
    rk_kv_tier_stats t;
    rk_context_kv_tiers(disk, &t);
    small.rlim_cur = (rlim_t)(t.disk_bytes / 30); /* each layer's file holds its 4 pages: no 5th */
    setrlimit(RLIMIT_FSIZE, &small);
    rk_status s = rk_context_eval(disk, text + 1024, 300, 0, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(s == RK_ERR_IO);
    CHECK_MSG(strstr(err.msg, "no space") != NULL, "message: %s", err.msg);
    CHECK(rk_context_n_past(disk) == 1024);
    CHECK(rk_context_eval(disk, text + 1024, 300, 0, &err) == RK_OK);
    CHECK(memcmp(rk_context_logits(ram, -1), rk_context_logits(disk, -1), (size_t)V * sizeof(float)) == 0);
out:
    rk_context_free(ram);
    rk_context_free(disk);
}

int main(void) {
    char path[1024];
    if (!rk_test_model_path(path, sizeof path, "SmolLM2-135M-Instruct.Q4_1.gguf")) return RK_TEST_SKIP;
    rk_model_params mp = rk_model_default_params();
    rk_model *m = NULL;
    rk_error err;
    if (rk_model_load(path, &mp, &m, &err) != RK_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    rk_token *text = essay_tokens(m, N_TEXT);
    CHECK(text != NULL);
    char dir[] = "/tmp/ringkv-test-kv-tier-model-XXXXXX";
    if (text && mkdtemp(dir)) {
        compare(m, text, "tq3.5", dir, 0);
        compare(m, text, "f16", dir, 0);
        compare(m, text, "q4", dir, 3);
        test_disk_full(m, text, dir);
        CHECK(rmdir(dir) == 0);
    }
    free(text);
    rk_model_free(m);
    return rk_test_finish("test-kv-tier-model");
}
