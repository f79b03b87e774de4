/* cmd-eval-kld.h — `ringkv eval kld`: KL divergence of a KV codec's next-token distributions
 * from the reference codec's (f16 by default), position by position.
 *
 *     ringkv eval kld [-m MODEL] -f TEXT [-c CTX] --kv-codec CODEC [--ref-codec f16]
 *                     [--chunks N] [--step N] [-t THREADS]
 *
 * The text (BOS first when the model adds one) is cut into chunks of CTX tokens, each read from
 * an empty cache by both contexts; positions in the second half of each chunk are scored
 * (llama-perplexity's convention). Prints progress on stderr and one JSON line on stdout with
 * mean_kld, p99_kld, max_kld, top1_agreement, ppl_f16 (reference), ppl_codec,
 * kv_bytes_per_token (codec) and kv_bytes_per_token_ref. argv[0] is "kld". Exit codes: 0 ok,
 * 1 runtime failure, 2 bad usage (checked before any work). */
#ifndef RK_TOOLS_CMD_EVAL_KLD_H
#define RK_TOOLS_CMD_EVAL_KLD_H

int rk_cmd_eval_kld(int argc, char **argv);

#endif
