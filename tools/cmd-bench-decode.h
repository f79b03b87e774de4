/* cmd-bench-decode.h — `ringkv bench decode`: decode time per token at a given context depth.
 *
 *     ringkv bench decode --depth N [-n STEPS] [--fill text|replicate] [-f TEXT]
 *                         [--fill-tokens N] [-m MODEL] [-t THREADS] [-c CTX] [--kv-codec C]
 *                         [--kv-hot SIZE --kv-warm SIZE --kv-disk DIR --kv-disk-direct ...]
 *                         [--drop-caches]
 *
 * Fills the context to `depth` tokens (untimed), either by prefilling real text repeated to the
 * depth, or — for depths too long to prefill — by prefilling a few thousand real tokens and
 * replicating their KV pages to the depth (rk_context_fill_replicated), then decodes STEPS
 * tokens greedily and reports time per token, the KV bytes attention read per token from each
 * tier, the weight bytes per token and the achieved bandwidth: a table on stdout followed by one
 * JSON line with the same fields; what was filled and how goes to stderr.
 * argv[0] is "decode". Exit codes: 0 ok, 1 runtime failure, 2 bad usage. */
#ifndef RK_TOOLS_CMD_BENCH_DECODE_H
#define RK_TOOLS_CMD_BENCH_DECODE_H

int rk_cmd_bench_decode(int argc, char **argv);

#endif
