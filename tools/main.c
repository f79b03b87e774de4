/*
 * main.c — the `ringkv` command: dispatches `ringkv <command> ...` to one file per command.
 * Only tools/ reads argv and the environment.
 */
#include <stdio.h>
#include <string.h>

#include "tools/commands.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} command;

static const command commands[] = {
    {"run", rk_cmd_run, "generate text from a prompt"},
    {"chat", rk_cmd_chat, "interactive chat with history"},
    {"serve", rk_cmd_serve, "OpenAI-compatible HTTP server with continuous batching and sessions"},
    {"info", rk_cmd_info, "print a GGUF file's metadata and tensors"},
    {"tokenize", rk_cmd_tokenize, "print the token ids of stdin"},
    {"convert", rk_cmd_convert, "convert a llama2.c checkpoint to GGUF"},
    {"eval", rk_cmd_eval, "evaluations: ppl (perplexity), logits (dump for tests)"},
    {"bench", rk_cmd_bench, "prompt-processing and decode speed (llama-bench style); bench decode --depth N"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: ringkv <command> [options]   (ringkv <command> --help for its options)\n\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "ringkv: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
