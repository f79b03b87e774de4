/* cmd-eval-niah.h — `ringkv eval niah`: the needle-in-a-haystack retrieval test.
 *
 *     ringkv eval niah [-m MODEL] [--haystack FILE|DIR] [--needle T --question T --answer T]
 *                      [--passkey [--seed N]] [--lengths 1k,2k,...] [--depths 0,10,...,100]
 *                      [--kv-codec CODEC] [-n TOKENS] [--out DIR] [-t THREADS]
 *
 * For every (length, depth) cell it builds a prompt of exactly `length` tokens (chat template,
 * or a completion prompt for models without one) whose document is the haystack trimmed by
 * tokens with the needle inserted at `depth` percent of it (at a sentence boundary), decodes
 * greedily from an empty cache and scores whether the answer appears in the reply (case-
 * insensitive). --passkey: RULER's variant, a seeded random 5–7 digit key hidden in repeated
 * filler sentences. Writes DIR/results.csv (length,depth,correct,tokens,seconds),
 * DIR/responses.jsonl (the replies) and DIR/heatmap.png (when gnuplot is installed); prints
 * one progress line per cell on stderr and one JSON summary line on stdout.
 * argv[0] is "niah". Exit codes: 0 ok, 1 runtime failure, 2 bad usage (checked before any work). */
#ifndef RK_TOOLS_CMD_EVAL_NIAH_H
#define RK_TOOLS_CMD_EVAL_NIAH_H

int rk_cmd_eval_niah(int argc, char **argv);

#endif
