/*
 * cmd-bench-decode.c — `ringkv bench decode --depth N` (see cmd-bench-decode.h).
 *
 * Where the time goes. Each decode step reads every weight once (rk_model_decode_bytes) and
 * every sealed KV page of every layer once (exact attention); with tiers, pages that are not in
 * RAM come back from disk through the warm tier, read by the I/O thread one layer ahead. So the
 * table reports, per decoded token: the KV page bytes attention read, split by where they were
 * (hot RAM, warm RAM, disk — additive: hot + warm + disk = all KV bytes read), the weight bytes,
 * and the achieved bandwidth (weights + KV bytes) / time, to compare with bench-membw.
 *
 * Fill. `text`: the text (default: the haystack essays) tokenized and repeated to `depth`
 * tokens, prefilled in micro-batches: real attention at every position, but quadratic in the
 * depth (32K tokens take minutes on two cores). `replicate`: a real prefill of --fill-tokens
 * tokens, then rk_context_fill_replicated copies its pages to the depth (a memcpy and a disk
 * write per page): the same codec bytes, tiers and traffic as a real context, but the copies
 * keep their originals' RoPE positions, so the tokens decoded are not what a real context of
 * that length would give. Both are untimed; their times go to stderr.
 *
 * Timing. After the fill one warm-up token is evaluated (untimed: it opens the tail page and
 * settles the tiers after the fill), then STEPS greedy steps (sample from the logits, evaluate
 * the token) are timed, with the tier counters read before and after. --drop-caches drops the
 * OS page cache between the fill and the warm-up token: the page files were written during the
 * fill and buffered reads would otherwise find them in the page cache (the memory-mapped
 * weights go too; the warm-up token reads them back).
 */
#include "tools/cmd-bench-decode.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/threadpool.h"
#include "tools/generate.h"
#include "tools/opts.h"
#include "tools/run-opts.h"
#include "tools/text-files.h"

#define CMD "bench decode"
#define PAGE 256                 /* RK_KV_PAGE_TOKENS: the fill by replication is in pages */
#define TEXT_FILL_MAX 32768      /* the default fill is text up to this depth, else replicate */
#define MAX_DEPTH ((int64_t)1 << 32)

typedef enum fill_kind { FILL_AUTO, FILL_TEXT, FILL_REPLICATE } fill_kind;

typedef struct decode_opts {
    rk_run_opts run;
    int64_t depth;        /* 0: not given */
    int64_t n_steps;
    int64_t fill_tokens;  /* real prefill before replication */
    fill_kind fill;
    const char *text_path;/* NULL: the default text */
    int ctx_given;
    int drop_caches;      /* drop the OS page cache after the fill */
} decode_opts;

/* What the fill did, for the report. */
typedef struct fill_result {
    const char *kind;     /* "text" or "replicate" */
    int64_t real_tokens;  /* tokens prefilled through the model */
    double prefill_s, replicate_s, warmup_s;
    int cache_dropped;    /* the OS page cache was dropped after the fill */
} fill_result;

static void usage(FILE *out) {
    fprintf(out,
            "usage: ringkv bench decode --depth N [-n STEPS] [--fill text|replicate] [-f TEXT]\n"
            "                           [--fill-tokens N] [-m MODEL] [options]\n"
            "  --depth N              context depth to decode at, in tokens (K/M suffixes: 1M = 1048576)\n"
            "  -n, --n-gen N          decode steps timed (default 32)\n"
            "  --fill text|replicate  text: prefill the text repeated to the depth (real attention;\n"
            "                         quadratic time); replicate: prefill --fill-tokens real tokens and\n"
            "                         copy their KV pages to the depth (depth a multiple of 256;\n"
            "                         sliding-window layers move the pages of their window to the end).\n"
            "                         Default: text up to %d, else replicate\n"
            "  -f, --file TEXT        text to fill with, a file or a directory of files (default: the\n"
            "                         haystack essays, .cache/bench/haystack.txt or\n"
            "                         ../shared/testdata/haystack/pg-essays)\n"
            "  --fill-tokens N        real prefill before replication (default 4096; rounded down to a\n"
            "                         multiple of 256)\n"
            "  -c N                   context size (default: depth + STEPS + 256; a larger -c is kept)\n"
            "  --drop-caches          after the fill, drop the OS page cache (needs root), so that\n"
            "                         buffered reads of the page files (--kv-disk) come from the disk\n"
            "  Prints a table and a JSON line on stdout: ms per token, KV bytes read per token from the\n"
            "  hot and warm RAM tiers and from disk, weight bytes per token, achieved GB/s, disk I/O\n"
            "  time per token and the share of it hidden behind compute, peak RSS, KV RAM.\n",
            TEXT_FILL_MAX);
    rk_run_opts_usage(out);
}

/* Parses argv (argv[0] = "decode"). Returns 0, or 2 after printing a usage error. */
static int parse_args(decode_opts *o, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = rk_run_opts_parse(&o->run, CMD, argc, argv, i);
        if (used < 0) return 2;
        if (used > 0) {
            if (rk_opt_is(a, "-c", "--ctx-size")) o->ctx_given = 1;
            i += used - 1;
            continue;
        }
        if (rk_opt_is(a, "-d", "--depth")) {
            if (!rk_opt_int(CMD, a, v, 1, MAX_DEPTH, &o->depth)) return 2;
        } else if (rk_opt_is(a, "-n", "--n-gen")) {
            if (!rk_opt_int(CMD, a, v, 1, 1 << 20, &o->n_steps)) return 2;
        } else if (rk_opt_is(a, NULL, "--fill-tokens")) {
            if (!rk_opt_int(CMD, a, v, PAGE, MAX_DEPTH, &o->fill_tokens)) return 2;
        } else if (rk_opt_is(a, NULL, "--fill") && v) {
            if (strcmp(v, "text") == 0) o->fill = FILL_TEXT;
            else if (strcmp(v, "replicate") == 0) o->fill = FILL_REPLICATE;
            else return fprintf(stderr, "%s: --fill takes text or replicate, not '%s'\n", CMD, v), 2;
        } else if (rk_opt_is(a, NULL, "--drop-caches")) {
            o->drop_caches = 1;
            continue;
        } else if (rk_opt_is(a, "-f", "--file") && v) {
            o->text_path = v;
        } else {
            fprintf(stderr, "%s: unknown or incomplete option '%s' (ringkv bench decode --help)\n", CMD, a);
            return 2;
        }
        i++;
    }
    if (o->depth == 0) {
        fprintf(stderr, "%s: --depth N is required (e.g. --depth 32K)\n", CMD);
        return 2;
    }
    if (o->fill == FILL_AUTO) o->fill = o->depth <= TEXT_FILL_MAX ? FILL_TEXT : FILL_REPLICATE;
    if (o->fill == FILL_REPLICATE && (o->depth % PAGE != 0 || o->depth < PAGE)) {
        fprintf(stderr, "%s: --fill replicate copies whole pages: --depth must be a multiple of %d, not %lld\n",
                CMD, PAGE, (long long)o->depth);
        return 2;
    }
    int64_t need = o->depth + 1 + o->n_steps; /* the fill, the warm-up token, the timed steps */
    if (o->ctx_given && o->run.ctx.n_ctx > 0 && o->run.ctx.n_ctx < need) {
        fprintf(stderr, "%s: depth %lld + 1 warm-up + %lld steps = %lld tokens do not fit in -c %lld\n", CMD,
                (long long)o->depth, (long long)o->n_steps, (long long)need, (long long)o->run.ctx.n_ctx);
        return 2;
    }
    if (!o->ctx_given) o->run.ctx.n_ctx = o->depth + o->n_steps + PAGE;
    return 0;
}

/* The default fill text: the concatenated essays bench/run.sh caches (.cache/bench/haystack.txt
 * beside the build directory or in the working directory), else the essays themselves. */
static const char *default_text(char *buf, size_t cap) {
    char dir[PATH_MAX / 2];
    int have_dir = rk_opt_exe_dir(dir, sizeof dir);
    const char *td = getenv("RINGKV_TESTDATA");
    if (have_dir && snprintf(buf, cap, "%s/../.cache/bench/haystack.txt", dir) < (int)cap &&
        access(buf, R_OK) == 0)
        return buf;
    if (snprintf(buf, cap, ".cache/bench/haystack.txt") < (int)cap && access(buf, R_OK) == 0) return buf;
    if (td && snprintf(buf, cap, "%s/haystack/pg-essays", td) < (int)cap && access(buf, R_OK) == 0) return buf;
    if (have_dir && snprintf(buf, cap, "%s/../../shared/testdata/haystack/pg-essays", dir) < (int)cap &&
        access(buf, R_OK) == 0)
        return buf;
    snprintf(buf, cap, "../shared/testdata/haystack/pg-essays");
    return buf;
}

/* The fill: the text's tokens repeated to n tokens (BOS, when the model uses one, only first).
 * Returns a malloc'd array, or NULL after printing why. */
static rk_token *make_fill(const rk_model *model, const char *text, size_t len, int64_t n,
                             size_t *n_distinct) {
    rk_error err;
    rk_token *toks = NULL;
    size_t n_toks = 0;
    if (rk_tokenize(model, text, len, 1, 0, &toks, &n_toks, &err) != RK_OK) {
        fprintf(stderr, "%s: tokenizing the fill text: %s\n", CMD, err.msg);
        return NULL;
    }
    size_t skip = n_toks > 1 && rk_model_add_bos(model) && toks[0] == rk_model_token_bos(model) ? 1 : 0;
    rk_token *fill = n_toks > skip ? malloc((size_t)n * sizeof *fill) : NULL;
    if (!fill) {
        fprintf(stderr, "%s: %s\n", CMD, n_toks > skip ? "out of memory for the fill" : "the fill text has no tokens");
        free(toks);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++)
        fill[i] = i < (int64_t)n_toks ? toks[i] : toks[skip + (size_t)(i - (int64_t)skip) % (n_toks - skip)];
    *n_distinct = n_toks;
    free(toks);
    return fill;
}

/* Fills the context to o->depth tokens; leaves the first token to decode in *next. */
static int fill_context(rk_session *s, const decode_opts *o, const rk_token *fill, fill_result *r,
                        rk_token *next) {
    rk_error err;
    const int replicate = o->fill == FILL_REPLICATE;
    int64_t real = o->depth;
    if (replicate) {
        real = o->fill_tokens / PAGE * PAGE;
        if (real > o->depth) real = o->depth;
    }
    r->kind = replicate ? "replicate" : "text";
    r->real_tokens = real;
    double t0 = rk_now_seconds();
    if (rk_context_eval(s->ctx, fill, (size_t)real, 0, &err) != RK_OK) {
        fprintf(stderr, "%s: prefilling %lld tokens: %s\n", CMD, (long long)real, err.msg);
        return 1;
    }
    r->prefill_s = rk_now_seconds() - t0;
    *next = rk_sampler_sample(s->sampler, rk_context_logits(s->ctx, -1));
    if (!replicate) return 0;
    t0 = rk_now_seconds();
    if (rk_context_fill_replicated(s->ctx, o->depth, &err) != RK_OK) {
        fprintf(stderr, "%s: %s\n", CMD, err.msg);
        return 1;
    }
    r->replicate_s = rk_now_seconds() - t0;
    return 0;
}

/* Writes back dirty pages and drops the OS page cache (the page files just written would
 * otherwise be read back from it, at memory speed). Returns 1 when it was dropped. */
static int drop_page_cache(void) {
    sync();
    FILE *f = fopen("/proc/sys/vm/drop_caches", "w");
    if (!f) {
        fprintf(stderr, "%s: cannot drop the OS page cache (/proc/sys/vm/drop_caches: %s): buffered disk "
                        "reads may come from it\n", CMD, strerror(errno));
        return 0;
    }
    int ok = fputs("1\n", f) >= 0;
    ok = fclose(f) == 0 && ok;
    if (!ok) fprintf(stderr, "%s: writing /proc/sys/vm/drop_caches failed: the OS page cache stays\n", CMD);
    return ok;
}

/* One warm-up token, then n timed greedy steps between two snapshots of the tier counters. */
static int decode_steps(rk_session *s, int64_t n, rk_token next, fill_result *r, rk_kv_tier_stats *before,
                        rk_kv_tier_stats *after, double *seconds) {
    rk_error err;
    double t0 = rk_now_seconds();
    int rc = rk_context_eval(s->ctx, &next, 1, 0, &err) != RK_OK;
    r->warmup_s = rk_now_seconds() - t0;
    rk_context_kv_tiers(s->ctx, before);
    t0 = rk_now_seconds();
    for (int64_t i = 0; i < n && !rc; i++) {
        rk_token t = rk_sampler_sample(s->sampler, rk_context_logits(s->ctx, -1));
        rc = rk_context_eval(s->ctx, &t, 1, 0, &err) != RK_OK;
    }
    *seconds = rk_now_seconds() - t0;
    rk_context_kv_tiers(s->ctx, after);
    if (rc) fprintf(stderr, "%s: decoding: %s\n", CMD, err.msg);
    return rc;
}

typedef struct report {
    char codec[72];
    double ms_per_token, tok_per_s, kv_bytes, hot_mib, warm_mib, disk_mib, weights, gbps;
    double io_s, wait_s, hidden; /* share of disk I/O time not waited for; < 0: no disk reads */
    double rss_mib, kv_ram_mib;
    int64_t pages_hot, pages_warm, pages_cold;
    int kv_computed; /* no tier counters (tiers off): KV bytes computed from the positions */
    int disk_direct; /* the page files use O_DIRECT */
} report;

/* KV page bytes the n steps after the warm-up read (tiers off, the cache keeps no counters):
 * the step at position p reads the pages sealed by then, within the window in sliding-window
 * layers. */
static double computed_kv_bytes(const rk_context *ctx, int64_t depth, int64_t n) {
    double bytes = 0;
    for (int64_t p = depth + 1; p < depth + 1 + n; p++) bytes += rk_context_kv_page_bytes_read(ctx, p);
    return bytes;
}

static void make_report(const rk_session *s, int64_t depth, int64_t n, double seconds,
                        const rk_kv_tier_stats *b, const rk_kv_tier_stats *a, report *r) {
    const char *ck = rk_context_kv_codec_k(s->ctx), *cv = rk_context_kv_codec_v(s->ctx);
    if (strcmp(ck, cv) == 0) snprintf(r->codec, sizeof r->codec, "%s", ck);
    else snprintf(r->codec, sizeof r->codec, "%s/%s", ck, cv);
    double hot = (double)(a->read_hot_bytes - b->read_hot_bytes);
    const double warm = (double)(a->read_warm_bytes - b->read_warm_bytes);
    const double disk = (double)(a->read_cold_bytes - b->read_cold_bytes);
    const double mib = 1048576.0 * (double)n;
    r->kv_computed = !a->enabled && hot + warm == 0;
    if (r->kv_computed) hot = computed_kv_bytes(s->ctx, depth, n);
    r->ms_per_token = 1e3 * seconds / (double)n;
    r->tok_per_s = (double)n / seconds;
    r->kv_bytes = (hot + warm) / (double)n;
    r->hot_mib = hot / mib;
    r->warm_mib = (warm > disk ? warm - disk : 0.0) / mib; /* warm counts the pages read from disk */
    r->disk_mib = disk / mib;
    r->weights = (double)rk_model_decode_bytes(s->model);
    r->gbps = (r->weights + r->kv_bytes) * (double)n / seconds / 1e9;
    r->io_s = (a->io_seconds - b->io_seconds) / (double)n;
    r->wait_s = (a->io_wait_seconds - b->io_wait_seconds) / (double)n;
    r->hidden = -1.0;
    if (r->io_s > 0) /* waiting includes waking up: it can exceed the I/O itself */
        r->hidden = r->wait_s >= r->io_s ? 0.0 : 1.0 - r->wait_s / r->io_s;
    r->rss_mib = (double)rk_peak_rss_bytes() / 1048576.0;
    r->kv_ram_mib = (double)rk_context_kv_bytes_in_use(s->ctx) / 1048576.0;
    r->pages_hot = a->pages_hot;
    r->pages_warm = a->pages_warm;
    r->pages_cold = a->pages_cold;
    r->disk_direct = a->disk_direct;
}

static void print_report(const decode_opts *o, const fill_result *f, const report *r, int threads) {
    char hidden[32] = "-";
    if (r->hidden >= 0) snprintf(hidden, sizeof hidden, "%.0f%%", 100.0 * r->hidden);
    printf("| depth | codec | fill | ms/token | tok/s | KV bytes read/token | hot MiB/token | warm MiB/token "
           "| disk MiB/token | weight bytes/token | achieved GB/s | disk I/O s/token | waited s/token "
           "| I/O hidden | peak RSS MiB | KV RAM MiB |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    printf("| %lld | %s | %s | %.2f | %.2f | %.0f | %.2f | %.2f | %.2f | %.0f | %.2f | %.4f | %.4f | %s | %.0f "
           "| %.0f |\n",
           (long long)o->depth, r->codec, f->kind, r->ms_per_token, r->tok_per_s, r->kv_bytes, r->hot_mib,
           r->warm_mib, r->disk_mib, r->weights, r->gbps, r->io_s, r->wait_s, hidden, r->rss_mib,
           r->kv_ram_mib);
    char hidden_json[32] = "null";
    if (r->hidden >= 0) snprintf(hidden_json, sizeof hidden_json, "%.4f", r->hidden);
    printf("{\"depth\":%lld,\"codec\":\"%s\",\"fill\":\"%s\",\"fill_real_tokens\":%lld,\"prefill_s\":%.3f,"
           "\"replicate_s\":%.3f,\"warmup_ms\":%.3f,\"n\":%lld,\"threads\":%d,\"n_ctx\":%lld,"
           "\"ms_per_token\":%.4f,\"tok_per_s\":%.4f,\"kv_bytes_per_token_read\":%.0f,"
           "\"hot_mib_per_token\":%.4f,\"warm_mib_per_token\":%.4f,\"disk_mib_per_token\":%.4f,"
           "\"weights_bytes_per_token\":%.0f,\"achieved_gb_per_s\":%.4f,\"io_s_per_token\":%.6f,"
           "\"io_wait_s_per_token\":%.6f,\"io_hidden\":%s,\"peak_rss_mib\":%.1f,\"kv_ram_mib\":%.1f,"
           "\"pages_hot\":%lld,\"pages_warm\":%lld,\"pages_cold\":%lld,\"kv_bytes_source\":\"%s\","
           "\"disk_direct\":%s,\"page_cache_dropped\":%s}\n",
           (long long)o->depth, r->codec, f->kind, (long long)f->real_tokens, f->prefill_s, f->replicate_s,
           1e3 * f->warmup_s, (long long)o->n_steps, threads, (long long)o->run.ctx.n_ctx, r->ms_per_token,
           r->tok_per_s, r->kv_bytes, r->hot_mib, r->warm_mib, r->disk_mib, r->weights, r->gbps, r->io_s,
           r->wait_s, hidden_json, r->rss_mib, r->kv_ram_mib, (long long)r->pages_hot,
           (long long)r->pages_warm, (long long)r->pages_cold, r->kv_computed ? "computed" : "counted",
           r->disk_direct ? "true" : "false", f->cache_dropped ? "true" : "false");
}

/* What the fill was, on stderr. */
static void print_fill(const decode_opts *o, const fill_result *f, const char *text_path, size_t n_distinct) {
    char what[64];
    if ((size_t)o->depth <= n_distinct)
        snprintf(what, sizeof what, "the first of its %zu tokens", n_distinct);
    else
        snprintf(what, sizeof what, "its %zu tokens repeated %.1f times", n_distinct,
                 (double)o->depth / (double)n_distinct);
    if (strcmp(f->kind, "text") == 0)
        fprintf(stderr, "%s: fill: text, %lld tokens of %s (%s), prefilled in %.1f s (%.0f tok/s)\n", CMD,
                (long long)o->depth, text_path, what, f->prefill_s, (double)o->depth / f->prefill_s);
    else
        fprintf(stderr, "%s: fill: replicate, a real prefill of %lld tokens of %s in %.1f s, replicated to "
                        "%lld tokens in %.1f s (pages replicated from a real prefill of %lld tokens; copies "
                        "keep their originals' RoPE positions)\n", CMD, (long long)f->real_tokens, text_path,
                f->prefill_s, (long long)o->depth, f->replicate_s, (long long)f->real_tokens);
}

int rk_cmd_bench_decode(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (rk_opt_is(argv[i], "-h", "--help")) {
            usage(stdout);
            return 0;
        }
    decode_opts o;
    memset(&o, 0, sizeof o);
    rk_run_opts_init(&o.run);
    o.run.sampling.temperature = 0.0f; /* greedy */
    o.n_steps = 32;
    o.fill_tokens = 4096;
    int rc = parse_args(&o, argc, argv);
    if (rc) return rc;
    char path_buf[PATH_MAX];
    const char *text_path = o.text_path ? o.text_path : default_text(path_buf, sizeof path_buf);
    char *text = NULL;
    size_t len = 0, n_distinct = 0;
    rc = rk_text_read_path(CMD, "fill text", text_path, &text, &len);
    if (rc) return rc;
    rk_session s;
    if (rk_session_open(&s, &o.run, CMD) != 0) {
        free(text);
        return 1;
    }
    int64_t n_fill = o.fill == FILL_REPLICATE ? (o.fill_tokens < o.depth ? o.fill_tokens : o.depth) : o.depth;
    rk_token *fill = make_fill(s.model, text, len, n_fill, &n_distinct);
    free(text);
    fill_result f = {0};
    rk_token next = 0;
    rc = fill ? fill_context(&s, &o, fill, &f, &next) : 1;
    free(fill);
    rk_kv_tier_stats before, after;
    double seconds = 0;
    if (!rc) print_fill(&o, &f, text_path, n_distinct);
    if (!rc && o.drop_caches) f.cache_dropped = drop_page_cache();
    if (!rc) rc = decode_steps(&s, o.n_steps, next, &f, &before, &after, &seconds);
    if (!rc) {
        fprintf(stderr, "%s: warm-up token %.1f ms; %lld decode steps in %.3f s\n", CMD, 1e3 * f.warmup_s,
                (long long)o.n_steps, seconds);
        report r;
        make_report(&s, o.depth, o.n_steps, seconds, &before, &after, &r);
        print_report(&o, &f, &r, o.run.ctx.n_threads ? o.run.ctx.n_threads : rk_cpu_count());
        rk_print_tiers(stderr, s.ctx);
        if (r.kv_computed)
            fprintf(stderr, "%s: no tiers, so no read counters: KV bytes read = the sealed pages each step's "
                            "query reaches (%zu KV bytes/token; sliding-window layers: their window)\n",
                    CMD, rk_context_kv_bytes_per_token(s.ctx));
    }
    rk_session_close(&s);
    return rc;
}
