/* test-tok-cli.c — `ringkv tokenize` as a stand-alone program for the tokenizer script tests,
 * so they need only the tokenizer module: test-tok-cli ARGS... == ringkv tokenize ARGS... */
#include "tools/cmd-tokenize.h"

int main(int argc, char **argv) { return rk_cmd_tokenize(argc, argv); }
