/* run-opts.c — see run-opts.h. */
#include "tools/run-opts.h"

#include <stdbool.h>
#include <string.h>

#include "kv/kv-codec.h"
#include "tools/opts.h"
#include "tools/ring-cli.h"

void rk_run_opts_init(rk_run_opts *o) {
    memset(o, 0, sizeof *o);
    o->ctx = rk_context_default_params();
    o->ctx.n_ctx = 4096;
    o->sampling = rk_sampler_default_params();
}

void rk_run_opts_usage(FILE *out) {
    fprintf(out,
            "  -t, --threads N        compute threads (default: all cores)\n"
            "  -c, --ctx-size N       context length in tokens (default 4096; 0 = trained)\n"
            "  -ub, --ubatch N        prompt tokens per forward step (default 512)\n"
            "  --kv-codec CODEC       KV cache codec for keys and values (default f16):\n"
            "                         f32, f16, q8, q4, tq2.5, tq3, tq3.5, tq4\n"
            "  -ctk, --ctk CODEC      codec for keys only (also tqR+qjl: a QJL residual sketch)\n"
            "  -ctv, --ctv CODEC      codec for values only\n"
            "  --kv-hot SIZE          RAM for the hot KV tier (open pages, sinks, newest and most\n"
            "                         attended pages); K/M/G suffixes (default: no limit, or half\n"
            "                         the available memory with --kv-disk)\n"
            "  --kv-warm SIZE         RAM for the warm KV tier (pages read back from disk; default:\n"
            "                         no limit, or the least that works with --kv-disk)\n"
            "  --kv-disk DIR          cold KV tier: page files in DIR (checksummed, removed at exit)\n"
            "  --kv-disk-max SIZE     most bytes of page files (default: no limit)\n"
            "  --kv-disk-direct       O_DIRECT page files (bypass the OS page cache)\n"
            "  --kv-sparse PAGES      opt-in sparse decode: the first and newest pages plus the PAGES\n"
            "                         pages with the highest key bounds (default 0: exact)\n"
            "  --temp T               temperature (default 0.8; 0 = greedy)\n"
            "  --top-k N              (default 40; 0 = off)\n"
            "  --top-p P              (default 0.95; 1 = off)\n"
            "  --min-p P              (default 0.05; 0 = off)\n"
            "  --repeat-penalty R     (default 1.0 = off)\n"
            "  --repeat-last-n N      tokens the penalty looks back (default 64)\n"
            "  -s, --seed N           sampling seed (default 42)\n"
            "  --ring                 one rank of a ring (mpirun -np N ringkv ... --ring): the\n"
            "                         sequence's KV pages are spread over the ranks; rank 0 reads\n"
            "                         the prompt and writes the output (default -ub: a rank's\n"
            "                         share of the context)\n"
            "  --verbose              with --ring: per rank KV held, attention and network time\n");
}

int rk_run_opts_parse(rk_run_opts *o, const char *cmd, int argc, char **argv, int i) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int64_t n;
    double x;
    if (rk_opt_is(a, "-m", "--model")) {
        if (!v) return fprintf(stderr, "%s: %s needs a value\n", cmd, a), -1;
        o->model_path = v;
    } else if (rk_opt_is(a, "-t", "--threads")) {
        if (!rk_opt_int(cmd, a, v, 1, 1024, &n)) return -1;
        o->ctx.n_threads = (int)n;
    } else if (rk_opt_is(a, "-c", "--ctx-size")) {
        if (!rk_opt_int(cmd, a, v, 0, (int64_t)1 << 32, &n)) return -1;
        o->ctx.n_ctx = n;
    } else if (rk_opt_is(a, "-ub", "--ubatch")) {
        if (!rk_opt_int(cmd, a, v, 1, 1 << 20, &n)) return -1;
        o->ctx.n_ubatch = (int)n;
        o->ubatch_set = true;
    } else if (rk_opt_is(a, NULL, "--kv-codec") || rk_opt_is(a, "-ctk", "--ctk") ||
               rk_opt_is(a, "-ctv", "--ctv")) {
        if (!v) return fprintf(stderr, "%s: %s needs a codec name\n", cmd, a), -1;
        rk_kv_codec_spec spec;
        rk_error err;
        if (rk_kv_codec_parse(v, &spec, &err) != RK_OK) return fprintf(stderr, "%s: %s\n", cmd, err.msg), -1;
        if (spec.qjl && !rk_opt_is(a, "-ctk", "--ctk"))
            return fprintf(stderr, "%s: %s %s: the QJL sketch is for keys only (use --ctk %s)\n", cmd, a, v, v), -1;
        bool keys = !rk_opt_is(a, "-ctv", "--ctv"), values = !rk_opt_is(a, "-ctk", "--ctk");
        if (keys) o->ctx.kv_codec_k = v;
        if (values) o->ctx.kv_codec_v = v;
    } else if (rk_opt_is(a, NULL, "--kv-hot") || rk_opt_is(a, NULL, "--kv-warm") ||
               rk_opt_is(a, NULL, "--kv-disk-max")) {
        uint64_t bytes;
        if (!rk_opt_size(cmd, a, v, &bytes)) return -1;
        if (rk_opt_is(a, NULL, "--kv-hot")) o->ctx.kv_hot_bytes = (size_t)bytes;
        if (rk_opt_is(a, NULL, "--kv-warm")) o->ctx.kv_warm_bytes = (size_t)bytes;
        if (rk_opt_is(a, NULL, "--kv-disk-max")) o->ctx.kv_disk_max_bytes = bytes;
    } else if (rk_opt_is(a, NULL, "--kv-disk")) {
        if (!v) return fprintf(stderr, "%s: %s needs a directory\n", cmd, a), -1;
        o->ctx.kv_disk_dir = v;
    } else if (rk_opt_is(a, NULL, "--ring") || rk_opt_is(a, NULL, "--verbose")) {
        if (rk_opt_is(a, NULL, "--ring") && strcmp(cmd, "run") != 0 && strcmp(cmd, "eval") != 0)
            return fprintf(stderr, "%s: --ring is not supported here (`ringkv run` and `ringkv eval ppl` take "
                                   "it)\n", cmd), -1;
        if (rk_opt_is(a, NULL, "--ring")) o->ring = true;
        else o->verbose = true;
        return 1;
    } else if (rk_opt_is(a, NULL, "--kv-disk-direct")) {
        o->ctx.kv_disk_direct = 1;
        return 1;
    } else if (rk_opt_is(a, NULL, "--kv-sparse")) {
        if (!rk_opt_int(cmd, a, v, 0, (int64_t)1 << 32, &n)) return -1;
        o->ctx.kv_sparse_pages = n;
    } else if (rk_opt_is(a, NULL, "--temp")) {
        if (!rk_opt_float(cmd, a, v, 0.0, 100.0, &x)) return -1;
        o->sampling.temperature = (float)x;
    } else if (rk_opt_is(a, NULL, "--top-k")) {
        if (!rk_opt_int(cmd, a, v, 0, 1 << 30, &n)) return -1;
        o->sampling.top_k = (int32_t)n;
    } else if (rk_opt_is(a, NULL, "--top-p")) {
        if (!rk_opt_float(cmd, a, v, 0.0, 1.0, &x)) return -1;
        o->sampling.top_p = (float)x;
    } else if (rk_opt_is(a, NULL, "--min-p")) {
        if (!rk_opt_float(cmd, a, v, 0.0, 1.0, &x)) return -1;
        o->sampling.min_p = (float)x;
    } else if (rk_opt_is(a, NULL, "--repeat-penalty")) {
        if (!rk_opt_float(cmd, a, v, 0.0, 100.0, &x) ) return -1;
        o->sampling.repeat_penalty = (float)x;
    } else if (rk_opt_is(a, NULL, "--repeat-last-n")) {
        if (!rk_opt_int(cmd, a, v, 0, 1 << 20, &n)) return -1;
        o->sampling.repeat_last_n = (int32_t)n;
    } else if (rk_opt_is(a, "-s", "--seed")) {
        if (!rk_opt_int(cmd, a, v, 0, INT64_MAX, &n)) return -1;
        o->sampling.seed = (uint64_t)n;
    } else {
        return 0;
    }
    return 2;
}

/* --ring: this rank's transport. */
static int open_ring(rk_session *s, rk_context_params *cp, const char *cmd) {
    rk_error err;
    if (rk_ring_cli_open(&s->ring, &err) != RK_OK) {
        fprintf(stderr, "%s: %s\n", cmd, err.msg);
        return 1;
    }
    cp->ring = s->ring;
    return 0;
}

int rk_session_open(rk_session *s, const rk_run_opts *o, const char *cmd) {
    memset(s, 0, sizeof *s);
    rk_error err;
    rk_context_params cp = o->ctx;
    if (o->ring && open_ring(s, &cp, cmd)) return 1;
    rk_model_params mp = rk_model_default_params();
    const char *path = o->model_path ? o->model_path : rk_opt_default_model();
    rk_status st = rk_model_load(path, &mp, &s->model, &err);
    if (s->ring) st = rk_transport_agree(s->ring, st, &err); /* every rank has its model, or none goes on */
    if (st != RK_OK) {
        fprintf(stderr, "%s: %s\n", cmd, err.msg);
        if (!o->model_path) fprintf(stderr, "%s: (fetch the default model with scripts/fetch-models.sh)\n", cmd);
        rk_session_close(s);
        return 1;
    }
    if (cp.n_ctx == 0 || cp.n_ctx > rk_model_n_ctx_train(s->model)) {
        if (cp.n_ctx > rk_model_n_ctx_train(s->model))
            fprintf(stderr, "%s: note: context %lld is longer than the model was trained on (%lld)\n",
                    cmd, (long long)cp.n_ctx, (long long)rk_model_n_ctx_train(s->model));
        if (cp.n_ctx == 0) cp.n_ctx = rk_model_n_ctx_train(s->model);
    }
    if (s->ring && !o->ubatch_set) { /* a ring prefill round: each rank's share in one micro-batch */
        int64_t share = (cp.n_ctx + s->ring->size - 1) / s->ring->size + 256;
        if (share > RK_RING_DEFAULT_UBATCH) share = RK_RING_DEFAULT_UBATCH;
        cp.n_ubatch = (int)(share < cp.n_ctx ? share : cp.n_ctx);
    }
    if (rk_context_create(s->model, &cp, &s->ctx, &err) != RK_OK ||
        rk_sampler_create(&o->sampling, rk_model_n_vocab(s->model), &s->sampler, &err) != RK_OK) {
        fprintf(stderr, "%s: %s\n", cmd, err.msg);
        rk_session_close(s);
        return 1;
    }
    return 0;
}

void rk_session_close(rk_session *s) {
    rk_sampler_free(s->sampler);
    rk_context_free(s->ctx);
    rk_model_free(s->model);
    rk_transport_free(s->ring); /* after the context, which borrowed it */
    memset(s, 0, sizeof *s);
}

void rk_print_tiers(FILE *out, const rk_context *ctx) {
    rk_kv_tier_stats t;
    rk_context_kv_tiers(ctx, &t);
    if (t.enabled)
        fprintf(out, "KV tiers: %lld pages hot (%.1f MiB), %lld warm (%.1f MiB), %lld cold (%.1f MiB on disk%s) | "
                 "read hot %.1f, warm %.1f, of which from disk %.1f MiB | disk reads %.3f s, waited %.3f s "
                 "(%.0f%% hidden)\n",
            (long long)t.pages_hot, t.hot_bytes / 1048576.0, (long long)t.pages_warm, t.warm_bytes / 1048576.0,
            (long long)t.pages_cold, t.disk_bytes / 1048576.0,
            t.disk_direct ? (t.disk_io_uring ? ", O_DIRECT, io_uring" : ", O_DIRECT")
                          : (t.disk_io_uring ? ", io_uring" : ""),
            t.read_hot_bytes / 1048576.0, t.read_warm_bytes / 1048576.0, t.read_cold_bytes / 1048576.0,
            t.io_seconds, t.io_wait_seconds,
            t.io_seconds > 0 ? 100.0 * (1.0 - t.io_wait_seconds / t.io_seconds) : 0.0);
    if (t.sparse_pages_visited + t.sparse_pages_skipped > 0)
        fprintf(out, "KV sparse: visited %llu, skipped %llu (page, head) pairs (%.1f%% skipped)\n",
                (unsigned long long)t.sparse_pages_visited, (unsigned long long)t.sparse_pages_skipped,
                100.0 * (double)t.sparse_pages_skipped / (double)(t.sparse_pages_visited + t.sparse_pages_skipped));
}

void rk_print_speed(FILE *out, const rk_gen_stats *st, const rk_context *ctx) {
    fprintf(out, "prompt: %lld tokens in %.3f s (%.1f tok/s) | generation: %lld tokens in %.3f s "
                 "(%.1f tok/s) | KV %s/%s: %zu bytes/token, %.1f MiB in use | peak memory: %.1f MiB\n",
            (long long)st->n_prompt, st->prompt_seconds,
            st->prompt_seconds > 0 ? st->n_prompt / st->prompt_seconds : 0.0,
            (long long)st->n_generated, st->gen_seconds,
            st->gen_seconds > 0 ? st->n_generated / st->gen_seconds : 0.0,
            rk_context_kv_codec_k(ctx), rk_context_kv_codec_v(ctx), rk_context_kv_bytes_per_token(ctx), rk_context_kv_bytes_in_use(ctx) / 1048576.0,
            rk_peak_rss_bytes() / 1048576.0);
    rk_print_weight_traffic(out, &st->decode_weights, st->gen_seconds);
    rk_print_tiers(out, ctx);
}

void rk_print_weight_traffic(FILE *out, const rk_weight_stats *w, double seconds) {
    if (w->tokens == 0) return;
    double per_token = (double)w->bytes_read / (double)w->tokens;
    fprintf(out, "weights: %.2f MiB read per decoded token (%.2f GB/s)", per_token / 1048576.0,
            seconds > 0 ? (double)w->bytes_read / seconds / 1e9 : 0.0);
    if (w->experts_available > 0)
        fprintf(out, " | experts: %.1f%% of (layer, expert) pairs computed per step",
                100.0 * (double)w->experts_touched / (double)w->experts_available);
    fputc('\n', out);
}
