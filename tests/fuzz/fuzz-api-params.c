/*
 * fuzz-api-params.c — libFuzzer target for the server's request-body parsers
 * (src/server/api-params.c). Every input goes through the chat and completions parsers and the
 * tokenize / detokenize parsers. Each must either succeed (then every returned string is read,
 * so ASan sees a bad pointer) or refuse with a status, a message and a zeroed result, and the
 * refusal must serialise to JSON.
 *   cmake -S . -B build-fuzz-params -DCMAKE_C_COMPILER=clang -DRINGKV_FUZZ=ON
 *   cmake --build build-fuzz-params --target fuzz-api-params
 *   ./build-fuzz-params/tests/fuzz/fuzz-api-params -max_total_time=60
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/api-params.h"

static void check_error(int rc, const rk_api_error *e) {
    if (rc != 400 && rc != 413) __builtin_trap();
    if (e->http_status != rc || e->message[0] == '\0') __builtin_trap(); /* say why */
    char *js = rk_api_error_json(e);
    if (!js) __builtin_trap(); /* quoted input must not make the error unserialisable */
    free(js);
}

static void run_request(rk_api_kind kind, const char *body, size_t size, const rk_api_limits *lim) {
    rk_api_params p;
    rk_api_error e;
    volatile size_t sink = 0;
    int rc = rk_api_parse_request(kind, body, size, lim, &p, &e);
    if (rc) {
        check_error(rc, &e);
        if (p.messages || p.prompt || p.prompt_tokens || p.model || p.n_stop) __builtin_trap();
        return;
    }
    for (size_t i = 0; i < p.n_messages; i++)
        sink += strlen(p.messages[i].role) + strlen(p.messages[i].content);
    for (int i = 0; i < p.n_stop; i++)
        sink += strlen(p.stop[i]);
    if (p.prompt) sink += strlen(p.prompt);
    if (p.n_prompt_tokens) sink += (size_t)p.prompt_tokens[p.n_prompt_tokens - 1];
    if (p.model) sink += strlen(p.model);
    if (p.session) sink += strlen(p.session);
    (void)sink;
    rk_api_params_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *body = (const char *)data;
    rk_api_limits lim = rk_api_default_limits();
    lim.max_body_bytes = 1 << 16;
    lim.max_tokens_limit = 4096;
    run_request(RK_API_CHAT, body, size, &lim);
    run_request(RK_API_COMPLETION, body, size, &lim);

    rk_api_error e;
    char *text = NULL;
    int add_special = 0, with_pieces = 0;
    int rc = rk_api_parse_tokenize_ex(body, size, &lim, &text, &add_special, &with_pieces, &e);
    if (rc) {
        check_error(rc, &e);
        if (text) __builtin_trap();
    } else {
        volatile size_t n = strlen(text);
        (void)n;
        free(text);
    }
    rk_token *tokens = NULL;
    size_t n_tokens = 0;
    rc = rk_api_parse_detokenize(body, size, &lim, &tokens, &n_tokens, &e);
    if (rc) {
        check_error(rc, &e);
        if (tokens || n_tokens) __builtin_trap();
    } else {
        volatile rk_token t = n_tokens ? tokens[n_tokens - 1] : 0;
        (void)t;
        free(tokens);
    }
    return 0;
}
