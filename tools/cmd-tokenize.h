/* cmd-tokenize.h — `ringkv tokenize`: print the token ids of UTF-8 text read from stdin.
 *
 *     ringkv tokenize -m FILE.gguf [--no-bos] [--no-special] [--batch] [--pieces]
 *
 * Prints the ids space-separated on one line. BOS is added when the vocabulary asks for it
 * (unless --no-bos) and special-token texts become special tokens (unless --no-special), like
 * llama-tokenize. Works on vocabulary-only GGUF files. --batch: stdin holds several texts
 * separated by NUL bytes; one line of ids per text. --pieces: print each token's piece after
 * its id as id:'piece' (for people, not for scripts).
 * Exit codes: 0 ok, 1 runtime failure (bad file, invalid UTF-8), 2 bad usage. */
#ifndef RK_TOOLS_CMD_TOKENIZE_H
#define RK_TOOLS_CMD_TOKENIZE_H

int rk_cmd_tokenize(int argc, char **argv);

#endif
