/*
 * test-server-params.c — the server's request-body parsers (src/server/api-params.c).
 *
 * Bodies as the official openai Python client sends them must parse into the expected fields;
 * every refusal the module promises is checked for its HTTP status, its `param` and a
 * non-empty message; errors must serialise to the JSON shape clients read. The last part
 * feeds every prefix of valid bodies and thousands of randomly corrupted ones (fixed seed) to
 * all parsers: under ASan this is the check that nothing crashes or leaks.
 */
#include <jansson.h>
#include <string.h>

#include "server/api-params.h"
#include "test-util.h"

static rk_api_limits g_lim;

static int parse(rk_api_kind kind, const char *body, rk_api_params *p, rk_api_error *e) {
    return rk_api_parse_request(kind, body, strlen(body), &g_lim, p, e);
}

static int is_zero(const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

/* Parses `body`, expecting a refusal with `status` and `param` ("" = null). */
static void reject_at(int line, rk_api_kind kind, const char *body, int status, const char *param) {
    rk_api_params p;
    rk_api_error e;
    memset(&p, 0xAB, sizeof p);
    int rc = parse(kind, body, &p, &e);
    CHECK_MSG(rc == status, "line %d: status %d, want %d (%s) for %s", line, rc, status,
              rc ? e.message : "accepted", body);
    if (rc == 0) {
        rk_api_params_free(&p);
        return;
    }
    CHECK_MSG(e.http_status == rc, "line %d", line);
    CHECK_MSG(strcmp(e.param, param) == 0, "line %d: param '%s', want '%s' (%s)", line, e.param,
              param, e.message);
    CHECK_MSG(e.message[0] != '\0', "line %d: empty message", line);
    CHECK_MSG(e.type && strcmp(e.type, "invalid_request_error") == 0, "line %d", line);
    CHECK_MSG(is_zero(&p, sizeof p), "line %d: *out not zeroed on failure", line);
    rk_api_params_free(&p);
}
#define REJECT(kind, body, status, param) reject_at(__LINE__, kind, body, status, param)
#define CHAT RK_API_CHAT
#define COMPL RK_API_COMPLETION
#define MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

/* What openai-python 1.x sends for client.chat.completions.create(...) with these arguments. */
static void test_openai_client_chat(void) {
    const char *body = "{\"messages\": [{\"role\": \"system\", \"content\": \"You are terse.\"}, "
                       "{\"role\": \"user\", \"content\": \"Say hi\"}], \"model\": \"ringkv\", "
                       "\"logprobs\": true, \"max_completion_tokens\": 64, \"seed\": -7, "
                       "\"stop\": [\"\\n\\n\", \"END\"], \"stream\": true, "
                       "\"stream_options\": {\"include_usage\": true}, \"temperature\": 0, "
                       "\"top_logprobs\": 3, \"user\": \"u-1\", \"session\": \"conv-42\"}";
    rk_api_params p;
    rk_api_error e;
    int rc = parse(CHAT, body, &p, &e);
    CHECK_MSG(rc == 0, "%s", e.message);
    if (rc) return;
    CHECK(p.kind == RK_API_CHAT);
    CHECK(p.model && strcmp(p.model, "ringkv") == 0);
    CHECK(p.n_messages == 2);
    CHECK(strcmp(p.messages[0].role, "system") == 0);
    CHECK(strcmp(p.messages[0].content, "You are terse.") == 0);
    CHECK(strcmp(p.messages[1].role, "user") == 0);
    CHECK(strcmp(p.messages[1].content, "Say hi") == 0);
    CHECK(p.stream == 1 && p.include_usage == 1);
    CHECK(p.max_tokens == 64);
    CHECK(p.temperature == 0.0f && p.top_p == 1.0f);
    CHECK(p.has_seed && p.seed == (uint64_t)-7);
    CHECK(p.n_stop == 2 && strcmp(p.stop[0], "\n\n") == 0 && strcmp(p.stop[1], "END") == 0);
    CHECK(p.logprobs == 1 && p.top_logprobs == 3);
    CHECK(p.user && strcmp(p.user, "u-1") == 0);
    CHECK(p.session && strcmp(p.session, "conv-42") == 0);
    CHECK(p.prompt == NULL && p.prompt_tokens == NULL);
    rk_api_params_free(&p);
    CHECK(is_zero(&p, sizeof p));
    rk_api_params_free(NULL);

    /* stop as a string; max_tokens (deprecated name); defaults of everything else */
    rc = parse(CHAT, "{" MSGS ",\"stop\":\"###\",\"max_tokens\":5}", &p, &e);
    CHECK_MSG(rc == 0, "%s", e.message);
    CHECK(p.n_stop == 1 && strcmp(p.stop[0], "###") == 0 && p.max_tokens == 5);
    CHECK(p.model == NULL && p.stream == 0 && p.has_seed == 0 && p.logprobs == 0);
    CHECK(p.temperature == 1.0f && p.top_p == 1.0f);
    rk_api_params_free(&p);

    rc = parse(CHAT, "{" MSGS "}", &p, &e);
    CHECK(rc == 0 && p.max_tokens == -1 && p.n_stop == 0 && p.session == NULL);
    rk_api_params_free(&p);
}

static void test_chat_variants(void) {
    rk_api_params p;
    rk_api_error e;
    /* content parts, developer → system, assistant with null / no content, extra fields */
    const char *body =
        "{\"messages\":[{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"Be "
        "\"},{\"type\":\"text\",\"text\":\"brief.\"}]},{\"role\":\"user\",\"content\":\"x\","
        "\"name\":\"bob\"},{\"role\":\"assistant\",\"content\":null},{\"role\":\"assistant\"},"
        "{\"role\":\"user\",\"content\":[]}],\"unknown_field\":{\"a\":[1,2]},\"metadata\":{}}";
    int rc = parse(CHAT, body, &p, &e);
    CHECK_MSG(rc == 0, "%s", e.message);
    if (rc == 0) {
        CHECK(p.n_messages == 5);
        CHECK(strcmp(p.messages[0].role, "system") == 0);
        CHECK(strcmp(p.messages[0].content, "Be brief.") == 0);
        CHECK(strcmp(p.messages[2].role, "assistant") == 0 && p.messages[2].content[0] == 0);
        CHECK(strcmp(p.messages[3].content, "") == 0);
        CHECK(strcmp(p.messages[4].content, "") == 0);
    }
    rk_api_params_free(&p);

    /* nulls mean "default"; harmless values of unsupported features pass */
    body = "{" MSGS ",\"temperature\":null,\"top_p\":null,\"seed\":null,\"stop\":null,"
           "\"max_tokens\":null,\"tools\":null,\"tool_choice\":\"none\",\"functions\":[],"
           "\"n\":1,\"presence_penalty\":0,\"frequency_penalty\":0.0,\"logit_bias\":{},"
           "\"response_format\":{\"type\":\"text\"},\"stream\":false,\"stream_options\":null,"
           "\"model\":null,\"user\":null,\"session\":null,\"logprobs\":false,"
           "\"top_logprobs\":null,\"parallel_tool_calls\":true}";
    rc = parse(CHAT, body, &p, &e);
    CHECK_MSG(rc == 0, "%s", e.message);
    CHECK(p.temperature == 1.0f && p.max_tokens == -1 && p.n_stop == 0 && !p.has_seed);
    rk_api_params_free(&p);

    /* integral decimals for integers; both token limits equal; seed extremes; top_p edge */
    rc = parse(CHAT,
               "{" MSGS ",\"max_tokens\":10.0,\"max_completion_tokens\":10,\"seed\":"
               "9223372036854775807,\"top_p\":1,\"temperature\":2,\"top_logprobs\":0,"
               "\"logprobs\":true}",
               &p, &e);
    CHECK_MSG(rc == 0, "%s", e.message);
    CHECK(p.max_tokens == 10 && p.seed == 9223372036854775807ull && p.temperature == 2.0f);
    CHECK(p.logprobs == 1 && p.top_logprobs == 0);
    rk_api_params_free(&p);
    rc = parse(CHAT, "{" MSGS ",\"seed\":-1}", &p, &e);
    CHECK(rc == 0 && p.seed == UINT64_MAX);
    rk_api_params_free(&p);

    /* max_tokens exactly at the limit passes */
    char buf[256];
    snprintf(buf, sizeof buf, "{" MSGS ",\"max_tokens\":%lld}", (long long)g_lim.max_tokens_limit);
    rc = parse(CHAT, buf, &p, &e);
    CHECK(rc == 0 && p.max_tokens == g_lim.max_tokens_limit);
    rk_api_params_free(&p);

    /* a NULL error pointer is allowed */
    CHECK(rk_api_parse_request(CHAT, "{}", 2, NULL, &p, NULL) == 400);
}

static void test_completions(void) {
    rk_api_params p;
    rk_api_error e;
    int rc = parse(COMPL,
                   "{\"model\":\"m\",\"prompt\":\"Once upon\",\"max_tokens\":16,\"logprobs\":3,"
                   "\"echo\":false,\"best_of\":1,\"suffix\":null,\"stream\":true}",
                   &p, &e);
    CHECK_MSG(rc == 0, "%s", e.message);
    CHECK(p.kind == RK_API_COMPLETION && p.prompt && strcmp(p.prompt, "Once upon") == 0);
    CHECK(p.prompt_tokens == NULL && p.max_tokens == 16 && p.stream == 1);
    CHECK(p.logprobs == 1 && p.top_logprobs == 3 && p.echo == 0);
    CHECK(p.messages == NULL && p.n_messages == 0);
    rk_api_params_free(&p);

    rc = parse(COMPL, "{\"prompt\":[\"only one\"],\"logprobs\":0}", &p, &e);
    CHECK(rc == 0 && p.prompt && strcmp(p.prompt, "only one") == 0);
    CHECK(p.logprobs == 1 && p.top_logprobs == 0);
    rk_api_params_free(&p);

    rc = parse(COMPL, "{\"prompt\":[1, 15043, 2147483647]}", &p, &e);
    CHECK_MSG(rc == 0, "%s", e.message);
    CHECK(p.prompt == NULL && p.n_prompt_tokens == 3 && p.prompt_tokens);
    if (p.prompt_tokens)
        CHECK(p.prompt_tokens[0] == 1 && p.prompt_tokens[1] == 15043 &&
              p.prompt_tokens[2] == 2147483647);
    CHECK(p.logprobs == 0);
    rk_api_params_free(&p);

    rc = parse(COMPL, "{\"prompt\":[[7,8]]}", &p, &e);
    CHECK(rc == 0 && p.n_prompt_tokens == 2 && p.prompt_tokens[1] == 8);
    rk_api_params_free(&p);

    rc = parse(COMPL, "{\"prompt\":\"\",\"messages\":5}", &p, &e); /* messages: not ours here */
    CHECK(rc == 0 && p.prompt && p.prompt[0] == '\0');
    rk_api_params_free(&p);
}

/* Bodies, required fields, messages. */
static void test_reject_structure(void) {
    REJECT(CHAT, "not json", 400, "");
    REJECT(CHAT, "{\"messages\": [", 400, "");
    REJECT(CHAT, "[1,2]", 400, "");
    REJECT(CHAT, "\"text\"", 400, "");
    REJECT(CHAT, "", 400, "");
    REJECT(CHAT, "{" MSGS "} trailing", 400, "");
    /* required fields */
    REJECT(CHAT, "{\"model\":\"x\"}", 400, "messages");
    REJECT(CHAT, "{\"messages\":null}", 400, "messages");
    REJECT(CHAT, "{\"messages\":\"hi\"}", 400, "messages");
    REJECT(CHAT, "{\"messages\":[]}", 400, "messages");
    REJECT(COMPL, "{\"model\":\"x\"}", 400, "prompt");
    REJECT(COMPL, "{\"prompt\":5}", 400, "prompt");
    REJECT(COMPL, "{\"prompt\":[]}", 400, "prompt");
    REJECT(COMPL, "{\"prompt\":[\"a\",\"b\"]}", 400, "prompt");
    REJECT(COMPL, "{\"prompt\":[[1],[2]]}", 400, "prompt");
    REJECT(COMPL, "{\"prompt\":[[]]}", 400, "prompt[0]");
    REJECT(COMPL, "{\"prompt\":[{}]}", 400, "prompt[0]");
    REJECT(COMPL, "{\"prompt\":[1,-1]}", 400, "prompt[1]");
    REJECT(COMPL, "{\"prompt\":[1,\"a\"]}", 400, "prompt[1]");
    REJECT(COMPL, "{\"prompt\":[1,2.5]}", 400, "prompt[1]");
    REJECT(COMPL, "{\"prompt\":[2147483648]}", 400, "prompt[0]");
    /* messages */
    REJECT(CHAT, "{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", 400, "messages[0].role");
    REJECT(CHAT, "{\"messages\":[{\"role\":\"function\",\"content\":\"x\"}]}", 400,
           "messages[0].role");
    REJECT(CHAT, "{\"messages\":[{\"content\":\"x\"}]}", 400, "messages[0].role");
    REJECT(CHAT, "{\"messages\":[{\"role\":7,\"content\":\"x\"}]}", 400, "messages[0].role");
    REJECT(CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":null}]}", 400,
           "messages[0].content");
    REJECT(CHAT, "{\"messages\":[{\"role\":\"system\"}]}", 400, "messages[0].content");
    REJECT(CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":42}]}", 400, "messages[0].content");
    REJECT(CHAT,
           "{\"messages\":["
           "{\"role\":\"user\",\"content\":\"a\"}, 3]}",
           400, "messages[1]");
    REJECT(CHAT,
           "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
           "{\"type\":\"image_url\",\"image_url\":{\"url\":\"http://x\"}}]}]}",
           400, "messages[0].content[1].type");
    REJECT(CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}", 400,
           "messages[0].content[0].text");
    REJECT(CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}]}", 400,
           "messages[0].content[0].type");
    REJECT(CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[\"a\"]}]}", 400,
           "messages[0].content[0]");
    REJECT(CHAT,
           "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\","
           "\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\"}]}]}",
           400, "messages[1].tool_calls");
}

/* Features the engine lacks are refused, never ignored. */
static void test_reject_unsupported(void) {
    REJECT(CHAT, "{" MSGS ",\"n\":2}", 400, "n");
    REJECT(CHAT, "{" MSGS ",\"n\":\"1\"}", 400, "n");
    REJECT(COMPL, "{\"prompt\":\"a\",\"n\":3}", 400, "n");
    REJECT(COMPL, "{\"prompt\":\"a\",\"best_of\":2}", 400, "best_of");
    REJECT(CHAT, "{" MSGS ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}",
           400, "tools");
    REJECT(CHAT, "{" MSGS ",\"tools\":{}}", 400, "tools");
    REJECT(CHAT, "{" MSGS ",\"tool_choice\":\"required\"}", 400, "tool_choice");
    REJECT(CHAT, "{" MSGS ",\"functions\":[{\"name\":\"f\"}]}", 400, "functions");
    REJECT(CHAT, "{" MSGS ",\"function_call\":{\"name\":\"f\"}}", 400, "function_call");
    REJECT(CHAT, "{" MSGS ",\"response_format\":{\"type\":\"json_object\"}}", 400,
           "response_format");
    REJECT(CHAT, "{" MSGS ",\"response_format\":\"text\"}", 400, "response_format");
    REJECT(CHAT, "{" MSGS ",\"presence_penalty\":0.5}", 400, "presence_penalty");
    REJECT(CHAT, "{" MSGS ",\"frequency_penalty\":-1}", 400, "frequency_penalty");
    REJECT(CHAT, "{" MSGS ",\"frequency_penalty\":\"0\"}", 400, "frequency_penalty");
    REJECT(CHAT, "{" MSGS ",\"logit_bias\":{\"50256\":-100}}", 400, "logit_bias");
    REJECT(CHAT, "{" MSGS ",\"logit_bias\":[1]}", 400, "logit_bias");
    REJECT(COMPL, "{\"prompt\":\"a\",\"suffix\":\"end\"}", 400, "suffix");
    REJECT(COMPL, "{\"prompt\":\"a\",\"echo\":true}", 400, "echo");
    REJECT(COMPL, "{\"prompt\":\"a\",\"echo\":1}", 400, "echo");
}

static void test_reject_values(void) {
    REJECT(CHAT, "{" MSGS ",\"temperature\":\"0.5\"}", 400, "temperature");
    REJECT(CHAT, "{" MSGS ",\"temperature\":2.5}", 400, "temperature");
    REJECT(CHAT, "{" MSGS ",\"temperature\":-0.1}", 400, "temperature");
    REJECT(CHAT, "{" MSGS ",\"temperature\":true}", 400, "temperature");
    REJECT(CHAT, "{" MSGS ",\"top_p\":0}", 400, "top_p");
    REJECT(CHAT, "{" MSGS ",\"top_p\":1.5}", 400, "top_p");
    REJECT(CHAT, "{" MSGS ",\"stream\":\"true\"}", 400, "stream");
    REJECT(CHAT, "{" MSGS ",\"stream\":1}", 400, "stream");
    REJECT(CHAT, "{" MSGS ",\"stream_options\":{\"include_usage\":true}}", 400, "stream_options");
    REJECT(CHAT, "{" MSGS ",\"stream\":false,\"stream_options\":{}}", 400, "stream_options");
    REJECT(CHAT, "{" MSGS ",\"stream\":true,\"stream_options\":[]}", 400, "stream_options");
    REJECT(CHAT, "{" MSGS ",\"stream\":true,\"stream_options\":{\"include_usage\":\"yes\"}}", 400,
           "stream_options.include_usage");
    REJECT(CHAT, "{" MSGS ",\"max_tokens\":0}", 400, "max_tokens");
    REJECT(CHAT, "{" MSGS ",\"max_tokens\":-5}", 400, "max_tokens");
    REJECT(CHAT, "{" MSGS ",\"max_tokens\":1.5}", 400, "max_tokens");
    REJECT(CHAT, "{" MSGS ",\"max_tokens\":\"10\"}", 400, "max_tokens");
    REJECT(CHAT, "{" MSGS ",\"max_completion_tokens\":0}", 400, "max_completion_tokens");
    REJECT(CHAT, "{" MSGS ",\"max_tokens\":10,\"max_completion_tokens\":20}", 400, "max_tokens");
    REJECT(CHAT, "{" MSGS ",\"max_tokens\":4097}", 400, "max_tokens");
    REJECT(COMPL, "{\"prompt\":\"a\",\"max_tokens\":99999999999}", 400, "max_tokens");
    REJECT(CHAT, "{" MSGS ",\"max_completion_tokens\":4097}", 400, "max_completion_tokens");
    REJECT(CHAT, "{" MSGS ",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", 400, "stop");
    REJECT(CHAT, "{" MSGS ",\"stop\":[\"a\",\"\"]}", 400, "stop[1]");
    REJECT(CHAT, "{" MSGS ",\"stop\":\"\"}", 400, "stop");
    REJECT(CHAT, "{" MSGS ",\"stop\":[1]}", 400, "stop[0]");
    REJECT(CHAT, "{" MSGS ",\"stop\":3}", 400, "stop");
    REJECT(CHAT, "{" MSGS ",\"seed\":1.5}", 400, "seed");
    REJECT(CHAT, "{" MSGS ",\"seed\":\"1\"}", 400, "seed");
    REJECT(CHAT, "{" MSGS ",\"seed\":18446744073709551615}", 400,
           ""); /* beyond int64: JSON error */
    REJECT(CHAT, "{" MSGS ",\"logprobs\":\"true\"}", 400, "logprobs");
    REJECT(CHAT, "{" MSGS ",\"logprobs\":true,\"top_logprobs\":21}", 400, "top_logprobs");
    REJECT(CHAT, "{" MSGS ",\"top_logprobs\":2}", 400, "top_logprobs");
    REJECT(CHAT, "{" MSGS ",\"logprobs\":false,\"top_logprobs\":2}", 400, "top_logprobs");
    REJECT(COMPL, "{\"prompt\":\"a\",\"logprobs\":6}", 400, "logprobs");
    REJECT(COMPL, "{\"prompt\":\"a\",\"logprobs\":true}", 400, "logprobs");
}

static void test_reject_ids(void) {
    REJECT(CHAT, "{" MSGS ",\"model\":5}", 400, "model");
    REJECT(CHAT, "{" MSGS ",\"user\":{}}", 400, "user");
    REJECT(CHAT, "{" MSGS ",\"session\":\"../../etc/passwd\"}", 400, "session");
    REJECT(CHAT, "{" MSGS ",\"session\":\".hidden\"}", 400, "session");
    REJECT(CHAT, "{" MSGS ",\"session\":\"\"}", 400, "session");
    REJECT(CHAT, "{" MSGS ",\"session\":\"a b\"}", 400, "session");
    REJECT(CHAT, "{" MSGS ",\"session\":42}", 400, "session");
    char buf[512];
    snprintf(buf, sizeof buf, "{" MSGS ",\"session\":\"%0129d\"}", 0);
    REJECT(CHAT, buf, 400, "session");
}

/* Message checks for the cases whose wording matters to a user. */
static void expect_message(rk_api_kind kind, const char *body, size_t len, const char *needle) {
    rk_api_params p;
    rk_api_error e;
    int rc = rk_api_parse_request(kind, body, len, &g_lim, &p, &e);
    CHECK_MSG(rc == 400 && strstr(e.message, needle), "rc %d, message '%s' lacks '%s'", rc,
              rc ? e.message : "", needle);
    if (rc == 0) rk_api_params_free(&p);
    char *js = rk_api_error_json(&e); /* quoted input must not break the JSON */
    CHECK(js != NULL);
    free(js);
}

static void test_text_checks(void) {
    /* \u0000 in every kind of returned string */
    REJECT(CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]}", 400,
           "messages[0].content");
    REJECT(CHAT,
           "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
           "\"\\u0000\"}]}]}",
           400, "messages[0].content[0].text");
    REJECT(CHAT, "{\"messages\":[{\"role\":\"user\\u0000\",\"content\":\"a\"}]}", 400,
           "messages[0].role");
    REJECT(CHAT, "{" MSGS ",\"model\":\"m\\u0000\"}", 400, "model");
    REJECT(CHAT, "{" MSGS ",\"stop\":[\"\\u0000\"]}", 400, "stop[0]");
    REJECT(COMPL, "{\"prompt\":\"x\\u0000\"}", 400, "prompt");
    const char *nul = "{\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]}";
    expect_message(CHAT, nul, strlen(nul), "NUL");
    /* a NUL in a field nobody reads is harmless */
    rk_api_params p;
    rk_api_error e;
    CHECK(parse(CHAT, "{" MSGS ",\"extra\":\"\\u0000\"}", &p, &e) == 0);
    rk_api_params_free(&p);

    /* invalid UTF-8: a stray byte, an overlong form, a lone surrogate (raw and escaped) */
    const char bad1[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"caf\xe9\"}]}";
    const char bad2[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"\xc0\xaf\"}]}";
    const char bad3[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"\xed\xa0\x80\"}]}";
    const char bad4[] = "{\"model\":\"\xff\"," MSGS "}";
    expect_message(CHAT, bad1, sizeof bad1 - 1, "UTF-8");
    expect_message(CHAT, bad2, sizeof bad2 - 1, "UTF-8");
    expect_message(CHAT, bad3, sizeof bad3 - 1, "UTF-8");
    expect_message(CHAT, bad4, sizeof bad4 - 1, "UTF-8");
    REJECT(CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"\\ud800\"}]}", 400, "");
    /* valid multi-byte text passes untouched */
    CHECK(parse(CHAT,
                "{\"messages\":[{\"role\":\"user\",\"content\":\"h\xc3\xa9llo \xf0\x9f\x98"
                "\x80 \\u00e9\\ud83d\\ude00\"}]}",
                &p, &e) == 0);
    CHECK(strcmp(p.messages[0].content, "h\xc3\xa9llo \xf0\x9f\x98\x80 \xc3\xa9\xf0\x9f\x98\x80") ==
          0);
    rk_api_params_free(&p);
    /* JSON error positions are reported */
    const char *broken = "{\n  \"messages\": [\n    {\"role\": \"user\" \"content\": \"x\"}]}";
    expect_message(CHAT, broken, strlen(broken), "line 3");
}

static void test_limits(void) {
    rk_api_limits lim = rk_api_default_limits();
    CHECK(lim.max_body_bytes == 4u << 20 && lim.max_json_depth == 32 &&
          lim.max_tokens_limit == 1 << 20);
    rk_api_params p;
    rk_api_error e;
    const char *body = "{" MSGS "}";
    size_t n = strlen(body);
    lim.max_body_bytes = n;
    CHECK(rk_api_parse_request(CHAT, body, n, &lim, &p, &e) == 0);
    rk_api_params_free(&p);
    lim.max_body_bytes = n - 1;
    CHECK(rk_api_parse_request(CHAT, body, n, &lim, &p, &e) == 413);
    CHECK(e.http_status == 413 && e.param[0] == '\0' && e.message[0]);
    CHECK(e.code && strcmp(e.code, "request_too_large") == 0);
    CHECK(rk_api_parse_request(COMPL, body, n, &lim, &p, &e) == 413);
    char *text = NULL;
    CHECK(rk_api_parse_tokenize(body, n, &lim, &text, NULL, &e) == 413 && text == NULL);

    /* depth: 32 levels pass, 33 do not; brackets inside strings do not count */
    char buf[4096];
    int off = snprintf(buf, sizeof buf, "{" MSGS ",\"x\":");
    for (int i = 0; i < 31; i++)
        buf[off++] = '[';
    for (int i = 0; i < 31; i++)
        buf[off++] = ']';
    buf[off++] = '}';
    buf[off] = '\0';
    CHECK(parse(CHAT, buf, &p, &e) == 0);
    rk_api_params_free(&p);
    off = snprintf(buf, sizeof buf, "{" MSGS ",\"x\":");
    for (int i = 0; i < 32; i++)
        buf[off++] = '[';
    for (int i = 0; i < 32; i++)
        buf[off++] = ']';
    buf[off++] = '}';
    buf[off] = '\0';
    REJECT(CHAT, buf, 400, "");
    off = snprintf(buf, sizeof buf, "{\"messages\":[{\"role\":\"user\",\"content\":\"");
    for (int i = 0; i < 200; i++)
        buf[off++] = i % 3 ? '[' : '{';
    off += snprintf(buf + off, sizeof buf - off, "\\\"[[\"}]}");
    CHECK_MSG(parse(CHAT, buf, &p, &e) == 0, "%s", e.message);
    rk_api_params_free(&p);
    /* a megabyte of '[' is refused by the scan, not by a stack overflow */
    size_t big = 1 << 20;
    char *deep = malloc(big);
    memset(deep, '[', big);
    lim = rk_api_default_limits();
    CHECK(rk_api_parse_request(CHAT, deep, big, &lim, &p, &e) == 400);
    CHECK(strstr(e.message, "deeper") != NULL);
    lim.max_json_depth = 0; /* ≤ 0 means the default, never "unlimited" */
    CHECK(rk_api_parse_request(CHAT, deep, big, &lim, &p, &e) == 400);
    free(deep);
}

static int str_is(const json_t *v, const char *want) {
    return json_is_string(v) && strcmp(json_string_value(v), want) == 0;
}

static void test_error_json(void) {
    rk_api_error e;
    CHECK(rk_api_error_set(&e, 401, "authentication_error", NULL, "invalid_api_key",
                           "Incorrect API key provided: %s", "sk-...") == 401);
    char *s = rk_api_error_json(&e);
    CHECK(s != NULL);
    json_error_t je;
    json_t *root = s ? json_loads(s, 0, &je) : NULL;
    json_t *err = json_object_get(root, "error");
    CHECK(json_is_object(err) && json_object_size(err) == 4 && json_object_size(root) == 1);
    CHECK(str_is(json_object_get(err, "message"), "Incorrect API key provided: sk-..."));
    CHECK(str_is(json_object_get(err, "type"), "authentication_error"));
    CHECK(json_is_null(json_object_get(err, "param")));
    CHECK(str_is(json_object_get(err, "code"), "invalid_api_key"));
    json_decref(root);
    free(s);

    rk_api_params p;
    REJECT(CHAT, "{" MSGS ",\"temperature\":\"hot\"}", 400, "temperature");
    CHECK(parse(CHAT, "{" MSGS ",\"temperature\":\"hot\"}", &p, &e) == 400);
    s = rk_api_error_json(&e);
    root = s ? json_loads(s, 0, &je) : NULL;
    err = json_object_get(root, "error");
    CHECK(json_object_size(err) == 4);
    CHECK(str_is(json_object_get(err, "param"), "temperature"));
    CHECK(str_is(json_object_get(err, "type"), "invalid_request_error"));
    CHECK(str_is(json_object_get(err, "code"), "invalid_type"));
    CHECK(strstr(json_string_value(json_object_get(err, "message")), "string") != NULL);
    json_decref(root);
    free(s);

    /* code NULL → null; a message cut inside a multi-byte character stays valid UTF-8 */
    char longtext[2000];
    for (int i = 0; i < 666; i++)
        memcpy(longtext + 3 * i, "\xe2\x82\xac", 3); /* € */
    longtext[1998] = '\0';
    rk_api_error_set(&e, 500, "server_error", NULL, NULL, "x%s", longtext);
    CHECK(strlen(e.message) == sizeof e.message - 1);
    s = rk_api_error_json(&e);
    CHECK(s != NULL);
    root = s ? json_loads(s, 0, &je) : NULL;
    err = json_object_get(root, "error");
    CHECK(json_is_null(json_object_get(err, "code")) &&
          json_is_null(json_object_get(err, "param")));
    json_decref(root);
    free(s);
    /* filled by hand with bytes that are not UTF-8 */
    memset(&e, 0, sizeof e);
    strcpy(e.message, "bad \xff\xfe bytes");
    s = rk_api_error_json(&e);
    CHECK(s && strstr(s, "invalid_request_error"));
    free(s);
    CHECK(rk_api_error_json(NULL) == NULL);
    CHECK(rk_api_error_set(NULL, 503, NULL, NULL, NULL, "busy") == 503);
}

static void test_tokenize(void) {
    rk_api_error e;
    char *text = NULL;
    int add = -1, pieces = -1;
    const char *b = "{\"content\":\"Hello world\",\"add_special\":true,\"with_pieces\":true}";
    CHECK(rk_api_parse_tokenize_ex(b, strlen(b), NULL, &text, &add, &pieces, &e) == 0);
    CHECK(text && strcmp(text, "Hello world") == 0 && add == 1 && pieces == 1);
    free(text);
    b = "{\"content\":\"\"}";
    CHECK(rk_api_parse_tokenize(b, strlen(b), NULL, &text, &add, &e) == 0);
    CHECK(text && text[0] == '\0' && add == 0);
    free(text);
    static const char *const bad[][2] = {
        {"{}", "content"},
        {"{\"content\":5}", "content"},
        {"{\"content\":\"a\\u0000\"}", "content"},
        {"{\"content\":\"a\",\"add_special\":\"yes\"}", "add_special"},
        {"{\"content\":\"a\",\"with_pieces\":1}", "with_pieces"},
        {"[]", ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        text = (char *)"sentinel";
        int rc = rk_api_parse_tokenize(bad[i][0], strlen(bad[i][0]), NULL, &text, &add, &e);
        CHECK_MSG(rc == 400 && strcmp(e.param, bad[i][1]) == 0 && e.message[0] && !text,
                  "%s: rc %d param '%s'", bad[i][0], rc, e.param);
    }

    rk_token *tok = NULL;
    size_t n = 99;
    b = "{\"tokens\":[1, 2, 32000]}";
    CHECK(rk_api_parse_detokenize(b, strlen(b), NULL, &tok, &n, &e) == 0);
    CHECK(n == 3 && tok && tok[0] == 1 && tok[2] == 32000);
    free(tok);
    b = "{\"tokens\":[]}";
    CHECK(rk_api_parse_detokenize(b, strlen(b), NULL, &tok, &n, &e) == 0 && n == 0);
    free(tok);
    static const char *const badd[][2] = {
        {"{}", "tokens"},
        {"{\"tokens\":\"abc\"}", "tokens"},
        {"{\"tokens\":[-1]}", "tokens[0]"},
        {"{\"tokens\":[1,null]}", "tokens[1]"},
        {"{\"tokens\":[1", ""},
    };
    for (size_t i = 0; i < sizeof badd / sizeof badd[0]; i++) {
        int rc = rk_api_parse_detokenize(badd[i][0], strlen(badd[i][0]), NULL, &tok, &n, &e);
        CHECK_MSG(rc == 400 && strcmp(e.param, badd[i][1]) == 0 && e.message[0] && !tok && !n,
                  "%s: rc %d param '%s'", badd[i][0], rc, e.param);
    }
}

/* jansson's allocations fail one after another (json_set_alloc_funcs): every outcome must be a
 * success or a refusal that says why, with nothing leaked (ASan) and *out zeroed. jansson
 * reports some allocation failures inside its lexer as syntax errors, so a 400 is possible. */
static long g_allocs_left = -1;
static void *failing_malloc(size_t n) {
    if (g_allocs_left == 0) return NULL;
    if (g_allocs_left > 0) g_allocs_left--;
    return malloc(n);
}

static void test_alloc_failure(void) {
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                       "\"text\":\"a\"}]}],\"stop\":[\"x\"],\"model\":\"m\",\"seed\":1}";
    int n_oom = 0, n_ok = 0, n_400 = 0;
    json_set_alloc_funcs(failing_malloc, free);
    for (long k = 0; k < 400; k++) {
        rk_api_params p;
        rk_api_error e;
        g_allocs_left = k;
        int rc = parse(CHAT, body, &p, &e);
        g_allocs_left = -1;
        CHECK_MSG(rc == 0 || rc == 400 || rc == 500, "allocation %ld: rc %d", k, rc);
        if (rc) CHECK(e.message[0] && is_zero(&p, sizeof p));
        if (rc == 500) CHECK(e.type && strcmp(e.type, "server_error") == 0);
        n_oom += rc == 500;
        n_ok += rc == 0;
        n_400 += rc == 400;
        rk_api_params_free(&p);
    }
    json_set_alloc_funcs(malloc, free);
    CHECK_MSG(n_oom > 0 && n_ok > 0, "%d ok, %d out of memory, %d 400", n_ok, n_oom, n_400);
    fprintf(stderr,
            "allocation failures: %d ok, %d out of memory (500), %d misreported by jansson (400)\n",
            n_ok, n_oom, n_400);
}

/* One body through every parser; any outcome is fine but a crash, a leak, or a failure that
 * does not say why (or leaves *out filled). */
static void feed_all(const char *body, size_t len) {
    static const rk_api_kind kinds[] = {RK_API_CHAT, RK_API_COMPLETION};
    rk_api_params p;
    rk_api_error e;
    for (size_t k = 0; k < 2; k++) {
        int rc = rk_api_parse_request(kinds[k], body, len, &g_lim, &p, &e);
        if (rc) {
            CHECK_MSG((rc == 400 || rc == 413) && e.message[0] && is_zero(&p, sizeof p),
                      "rc %d '%s'", rc, e.message);
            char *js = rk_api_error_json(&e);
            CHECK(js != NULL);
            free(js);
        }
        rk_api_params_free(&p);
    }
    char *text;
    int add;
    if (rk_api_parse_tokenize(body, len, &g_lim, &text, &add, &e) == 0)
        free(text);
    else
        CHECK(e.message[0] && text == NULL);
    rk_token *tok;
    size_t n;
    if (rk_api_parse_detokenize(body, len, &g_lim, &tok, &n, &e) == 0)
        free(tok);
    else
        CHECK(e.message[0] && tok == NULL);
}

static void test_corruption(void) {
    static const char *const bodies[] = {
        "{\"messages\":[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":"
        "[{\"type\":\"text\",\"text\":\"caf\xc3\xa9 \\u00e9\"}]},{\"role\":\"assistant\","
        "\"content\":null}],\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":"
        "true},\"max_completion_tokens\":64,\"temperature\":0.7,\"top_p\":0.9,\"seed\":-3,"
        "\"stop\":[\"a\",\"b\"],\"logprobs\":true,\"top_logprobs\":2,\"session\":\"s-1\","
        "\"n\":1,\"logit_bias\":{},\"tools\":[],\"response_format\":{\"type\":\"text\"}}",
        "{\"prompt\":[[1,2,3]],\"max_tokens\":3,\"logprobs\":2,\"echo\":false,\"best_of\":1,"
        "\"suffix\":\"\",\"stop\":\"x\",\"content\":\"tok\",\"tokens\":[4,5],\"add_special\":true}",
        "{\"prompt\":\"p\",\"tokens\":[1,2],\"content\":\"c\"}",
    };
    for (size_t b = 0; b < sizeof bodies / sizeof bodies[0]; b++) {
        size_t n = strlen(bodies[b]);
        for (size_t len = 0; len <= n; len++) {
            char *copy = malloc(len ? len : 1); /* exact size: ASan sees any read past the end */
            memcpy(copy, bodies[b], len);
            feed_all(copy, len);
            free(copy);
        }
    }
    rk_test_rng rng = {0x5eed1234abcdull};
    static const char interesting[] = "{}[]\",:\\0-1e.\x00\xff\xc3ntu";
    for (int iter = 0; iter < 20000; iter++) {
        const char *src = bodies[iter % 3];
        size_t n = strlen(src);
        char *copy = malloc(n);
        memcpy(copy, src, n);
        int flips = 1 + (int)(rk_test_rng_next(&rng) % 4);
        for (int f = 0; f < flips; f++) {
            size_t at = rk_test_rng_next(&rng) % n;
            uint64_t r = rk_test_rng_next(&rng);
            copy[at] = (r & 1) ? (char)(r >> 8) : interesting[(r >> 8) % (sizeof interesting - 1)];
        }
        size_t len = (iter & 7) ? n : rk_test_rng_next(&rng) % (n + 1);
        feed_all(copy, len);
        free(copy);
    }
}

int main(void) {
    g_lim = rk_api_default_limits();
    g_lim.max_tokens_limit = 4096;
    test_openai_client_chat();
    test_chat_variants();
    test_completions();
    test_reject_structure();
    test_reject_unsupported();
    test_reject_values();
    test_reject_ids();
    test_text_checks();
    test_limits();
    test_error_json();
    test_tokenize();
    test_alloc_failure();
    test_corruption();
    return rk_test_finish("test-server-params");
}
