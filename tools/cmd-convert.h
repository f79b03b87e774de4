/* cmd-convert.h — `ringkv convert`: turn a llama2.c checkpoint and its tokenizer into a GGUF
 * file that ringkv (and llama.cpp) load as an ordinary Llama.
 *
 *     ringkv convert --llama2c CHECKPOINT.bin --tokenizer TOKENIZER.bin -o OUT.gguf [--name NAME]
 *
 * CHECKPOINT.bin is llama2.c's legacy format (run.c): a header of 7 int32 {dim, hidden_dim,
 * n_layers, n_heads, n_kv_heads, vocab_size (negative: separate classifier), seq_len}, then the
 * fp32 weights. TOKENIZER.bin is llama2.c's tokenizer.bin (int32 max_token_length, then per
 * token: f32 score, int32 length, bytes). All weights stay F32; names and shapes follow
 * llama.cpp (token_embd.weight, blk.N.attn_q.weight, ...). Every size is checked against the
 * header before anything is written; a bad input is an error message and exit code 1, never a
 * crash. Exit codes: 0 ok, 1 bad input or failed write, 2 bad usage. */
#ifndef RK_TOOLS_CMD_CONVERT_H
#define RK_TOOLS_CMD_CONVERT_H

#include "ringkv.h"

int rk_cmd_convert(int argc, char **argv);

/* The conversion itself. `name` (general.name) may be NULL: the checkpoint's file name without
 * directory and extension. RK_ERR_IO (cannot read/write), RK_ERR_FORMAT (sizes or values that
 * do not fit the format), RK_ERR_UNSUPPORTED (llama2.c's newer "ak42" export versions). */
rk_status rk_convert_llama2c(const char *checkpoint, const char *tokenizer, const char *out,
                             const char *name, rk_error *err);

#endif
