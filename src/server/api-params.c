/*
 * api-params.c — OpenAI request bodies into rk_api_params (see api-params.h for the contract).
 *
 * The path of a body: size limit (413) → a byte scan counting nesting outside strings (so
 * jansson's recursive parser never sees a body deeper than the limit) → json_loadb with
 * JSON_ALLOW_NUL (so a \u0000 is reported against its field rather than as a bare parse error)
 * → one small function per group of fields, each refusing with the field's path in `param`.
 * Every function returns 0 or an HTTP status; the first refusal wins and the caller unwinds by
 * freeing whatever was filled so far, so partial results never leak.
 *
 * Messages follow OpenAI's wording where clients or users may match on it ("Invalid type for
 * 'temperature': expected a number, but got a string instead.", "'messages' is a required
 * property") and always quote the offending value, cut short when long.
 */
#include "server/api-params.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T_INVALID "invalid_request_error"
#define SESSION_MAX 128
#define PARAM_MAX 128 /* local buffers for field paths (rk_api_error keeps the first 63 bytes) */

rk_api_limits rk_api_default_limits(void) {
    rk_api_limits l = {4u << 20, 32, (int64_t)1 << 20};
    return l;
}

/* ---- errors ----------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is not one (overlong, surrogate,
 * above U+10FFFF, cut short by the terminating NUL). */
static size_t utf8_seq_len(const unsigned char *p) {
    unsigned c = p[0];
    size_t n;
    uint32_t min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, min = 0x80;
    else if ((c & 0xF0) == 0xE0)
        n = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, min = 0x10000;
    else
        return 0;
    uint32_t cp = c & (0x7Fu >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0; /* also stops at the NUL */
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

/* Replaces every byte that does not start a valid UTF-8 sequence with '?', in place: messages
 * quote client input (and jansson's "near '...'" does too), and are cut at a byte count. */
static void utf8_sanitize(char *s) {
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t n = utf8_seq_len(p);
        if (n == 0)
            *p++ = '?';
        else
            p += n;
    }
}

int rk_api_error_set(rk_api_error *e, int http_status, const char *type, const char *param,
                     const char *code, const char *fmt, ...) {
    if (!e) return http_status;
    e->http_status = http_status;
    e->type = type ? type : T_INVALID;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    utf8_sanitize(e->message);
    utf8_sanitize(e->param);
    return http_status;
}

char *rk_api_error_json(const rk_api_error *e) {
    if (!e) return NULL;
    char msg[sizeof e->message], param[sizeof e->param];
    snprintf(msg, sizeof msg, "%s", e->message);
    snprintf(param, sizeof param, "%s", e->param);
    utf8_sanitize(msg); /* the struct may have been filled by hand */
    utf8_sanitize(param);
    json_t *o =
        json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error", "message", msg, "type",
                  e->type ? e->type : T_INVALID, "param", param[0] ? param : NULL, "code", e->code);
    if (!o) return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* A 400 invalid_request_error. */
static int fail(rk_api_error *e, const char *param, const char *code, const char *fmt, ...)
    RK_API_PRINTF(4, 5);
static int fail(rk_api_error *e, const char *param, const char *code, const char *fmt, ...) {
    char buf[sizeof e->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return rk_api_error_set(e, 400, T_INVALID, param, code, "%s", buf);
}

static int oom(rk_api_error *e) {
    return rk_api_error_set(e, 500, "server_error", NULL, NULL,
                            "out of memory while parsing the request body");
}

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a decimal";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "an unknown value";
}

static int fail_type(rk_api_error *e, const char *param, const char *expected, const json_t *got) {
    return fail(e, param, "invalid_type", "Invalid type for '%s': expected %s, but got %s instead.",
                param, expected, type_name(got));
}

static int fail_missing(rk_api_error *e, const char *param) {
    return fail(e, param, "missing_required_parameter", "'%s' is a required property", param);
}

/* ---- typed getters ---------------------------------------------------------------------- */

/* The value of `key`, or NULL when it is absent or null (null means "use the default"). */
static json_t *field(const json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return v && !json_is_null(v) ? v : NULL;
}

/* 1 when v is the string `lit` exactly (a \u0000 inside cannot make it match). */
static int str_eq(const json_t *v, const char *lit) {
    return json_is_string(v) && json_string_length(v) == strlen(lit) &&
           memcmp(json_string_value(v), lit, json_string_length(v)) == 0;
}

/* Borrows v's text into *s after checking it is a string without NUL. */
static int get_text(const json_t *v, const char *param, const char **s, rk_api_error *e) {
    if (!json_is_string(v)) return fail_type(e, param, "a string", v);
    if (json_string_length(v) != strlen(json_string_value(v)))
        return fail(e, param, "invalid_value",
                    "Invalid value for '%s': the string contains a NUL character (\\u0000) at "
                    "offset %zu; ringkv does not accept NUL in text",
                    param, strlen(json_string_value(v)));
    *s = json_string_value(v);
    return 0;
}

/* As get_text, into a malloc'd copy the caller owns. */
static int get_string(const json_t *v, const char *param, char **out, rk_api_error *e) {
    const char *s = NULL;
    int rc = get_text(v, param, &s, e);
    if (rc) return rc;
    size_t n = strlen(s);
    if (!(*out = malloc(n + 1))) return oom(e);
    memcpy(*out, s, n + 1);
    return 0;
}

/* An optional string field into *out (left NULL when absent). */
static int opt_string(const json_t *obj, const char *key, char **out, rk_api_error *e) {
    const json_t *v = field(obj, key);
    return v ? get_string(v, key, out, e) : 0;
}

/* An optional boolean field; *out is left alone when absent. */
static int opt_bool(const json_t *obj, const char *key, const char *param, int *out,
                    rk_api_error *e) {
    const json_t *v = field(obj, key);
    if (!v) return 0;
    if (!json_is_boolean(v)) return fail_type(e, param, "a boolean", v);
    *out = json_is_true(v);
    return 0;
}

static int get_number(const json_t *v, const char *param, double *out, rk_api_error *e) {
    if (!json_is_number(v)) return fail_type(e, param, "a number", v);
    *out = json_number_value(v);
    return 0;
}

/* An integer; an integral decimal (2.0, 1e3) is taken too, up to 2^53 where doubles are exact. */
static int get_int(const json_t *v, const char *param, int64_t *out, rk_api_error *e) {
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d == floor(d) && fabs(d) <= 9007199254740992.0) {
            *out = (int64_t)d;
            return 0;
        }
    }
    return fail_type(e, param, "an integer", v);
}

/* ---- fields shared by both endpoints ---------------------------------------------------- */

static int parse_sampling(const json_t *root, rk_api_params *p, rk_api_error *e) {
    const json_t *v;
    double d = 0;
    int64_t i = 0;
    int rc;
    if ((v = field(root, "temperature"))) {
        if ((rc = get_number(v, "temperature", &d, e))) return rc;
        if (!(d >= 0 && d <= 2))
            return fail(e, "temperature", "invalid_value",
                        "Invalid 'temperature': %g is outside [0, 2].", d);
        p->temperature = (float)d;
    }
    if ((v = field(root, "top_p"))) {
        if ((rc = get_number(v, "top_p", &d, e))) return rc;
        if (!(d > 0 && d <= 1))
            return fail(e, "top_p", "invalid_value", "Invalid 'top_p': %g is outside (0, 1].", d);
        p->top_p = (float)d;
    }
    if ((v = field(root, "seed"))) {
        if ((rc = get_int(v, "seed", &i, e))) return rc;
        p->has_seed = 1;
        p->seed = (uint64_t)i; /* two's complement for negative seeds */
    }
    return 0;
}

/* "max_completion_tokens" (current) and "max_tokens" (deprecated) mean the same thing. */
static int parse_max_tokens(const json_t *root, const rk_api_limits *lim, rk_api_params *p,
                            rk_api_error *e) {
    const json_t *a = field(root, "max_completion_tokens"), *b = field(root, "max_tokens");
    int64_t va = -1, vb = -1;
    int rc;
    if (a && (rc = get_int(a, "max_completion_tokens", &va, e))) return rc;
    if (b && (rc = get_int(b, "max_tokens", &vb, e))) return rc;
    if (a && b && va != vb)
        return fail(e, "max_tokens", "invalid_value",
                    "'max_tokens' (%lld) and 'max_completion_tokens' (%lld) disagree; send one "
                    "of them",
                    (long long)vb, (long long)va);
    if (!a && !b) return 0;
    const char *name = a ? "max_completion_tokens" : "max_tokens";
    int64_t v = a ? va : vb;
    if (v < 1)
        return fail(e, name, "integer_below_min_value",
                    "Invalid '%s': integer below minimum value. Expected a value >= 1, but got "
                    "%lld instead.",
                    name, (long long)v);
    if (lim->max_tokens_limit > 0 && v > lim->max_tokens_limit)
        return fail(e, name, "invalid_value",
                    "'%s' is too large: %lld. This server's context holds at most %lld tokens.",
                    name, (long long)v, (long long)lim->max_tokens_limit);
    p->max_tokens = v;
    return 0;
}

static int add_stop(const json_t *v, const char *param, rk_api_params *p, rk_api_error *e) {
    char *s = NULL;
    int rc = get_string(v, param, &s, e);
    if (rc) return rc;
    if (!s[0]) {
        free(s);
        return fail(e, param, "invalid_value", "Invalid '%s': stop sequences must not be empty.",
                    param);
    }
    p->stop[p->n_stop++] = s;
    return 0;
}

static int parse_stop(const json_t *root, rk_api_params *p, rk_api_error *e) {
    const json_t *v = field(root, "stop");
    if (!v) return 0;
    if (json_is_string(v)) return add_stop(v, "stop", p, e);
    if (!json_is_array(v)) return fail_type(e, "stop", "a string or an array of strings", v);
    size_t n = json_array_size(v);
    if (n > 4)
        return fail(e, "stop", "invalid_value",
                    "Invalid 'stop': %zu sequences given; at most 4 are allowed.", n);
    for (size_t i = 0; i < n; i++) {
        char param[PARAM_MAX];
        snprintf(param, sizeof param, "stop[%zu]", i);
        int rc = add_stop(json_array_get(v, i), param, p, e);
        if (rc) return rc;
    }
    return 0;
}

static int parse_stream(const json_t *root, rk_api_params *p, rk_api_error *e) {
    int rc = opt_bool(root, "stream", "stream", &p->stream, e);
    if (rc) return rc;
    const json_t *so = field(root, "stream_options");
    if (!so) return 0;
    if (!json_is_object(so)) return fail_type(e, "stream_options", "an object", so);
    if (!p->stream)
        return fail(e, "stream_options", "invalid_value",
                    "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
    return opt_bool(so, "include_usage", "stream_options.include_usage", &p->include_usage, e);
}

/* The session id may end up in file names and logs: a conservative alphabet, no leading dot. */
static int check_session(const char *s, rk_api_error *e) {
    size_t n = strlen(s);
    if (n == 0 || n > SESSION_MAX)
        return fail(e, "session", "invalid_value",
                    "Invalid 'session': it must be 1 to %d bytes long, got %zu.", SESSION_MAX, n);
    if (s[0] == '.')
        return fail(e, "session", "invalid_value",
                    "Invalid 'session': it must not start with '.'.");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok)
            return fail(e, "session", "invalid_value",
                        "Invalid 'session': byte %zu is 0x%02x; only letters, digits and . _ : - "
                        "are allowed.",
                        i, c);
    }
    return 0;
}

static int parse_ids(const json_t *root, rk_api_params *p, rk_api_error *e) {
    int rc;
    if ((rc = opt_string(root, "model", &p->model, e))) return rc;
    if ((rc = opt_string(root, "user", &p->user, e))) return rc;
    if ((rc = opt_string(root, "session", &p->session, e))) return rc;
    return p->session ? check_session(p->session, e) : 0;
}

/* "n" and "best_of": only one choice per request. */
static int require_one(const json_t *root, const char *key, rk_api_error *e) {
    const json_t *v = field(root, key);
    int64_t n = 0;
    int rc;
    if (!v) return 0;
    if ((rc = get_int(v, key, &n, e))) return rc;
    if (n != 1)
        return fail(e, key, "unsupported_value",
                    "Unsupported value for '%s': %lld; ringkv returns one choice per request, "
                    "so only 1 is supported.",
                    key, (long long)n);
    return 0;
}

static int parse_unsupported_common(const json_t *root, rk_api_error *e) {
    static const char *const penalties[] = {"presence_penalty", "frequency_penalty"};
    int rc;
    if ((rc = require_one(root, "n", e))) return rc;
    for (size_t i = 0; i < 2; i++) {
        const json_t *v = field(root, penalties[i]);
        double d = 0;
        if (!v) continue;
        if ((rc = get_number(v, penalties[i], &d, e))) return rc;
        if (d != 0)
            return fail(e, penalties[i], "unsupported_value",
                        "'%s' is not supported yet (got %g); leave it at 0.", penalties[i], d);
    }
    const json_t *lb = field(root, "logit_bias");
    if (lb && !json_is_object(lb)) return fail_type(e, "logit_bias", "an object", lb);
    if (lb && json_object_size(lb) > 0)
        return fail(e, "logit_bias", "unsupported_value",
                    "'logit_bias' is not supported yet (got %zu entries); send {} or leave it out.",
                    json_object_size(lb));
    return 0;
}

/* ---- chat ------------------------------------------------------------------------------- */

/* Concatenates an array of {"type": "text", "text": ...} parts into *out. */
static int parse_parts(const json_t *arr, size_t i, char **out, rk_api_error *e) {
    char param[PARAM_MAX];
    size_t n = json_array_size(arr), total = 0;
    for (size_t j = 0; j < n; j++) {
        const json_t *part = json_array_get(arr, j), *v;
        const char *text = NULL;
        int rc;
        snprintf(param, sizeof param, "messages[%zu].content[%zu]", i, j);
        if (!json_is_object(part)) return fail_type(e, param, "an object", part);
        snprintf(param, sizeof param, "messages[%zu].content[%zu].type", i, j);
        if (!(v = field(part, "type"))) return fail_missing(e, param);
        if ((rc = get_text(v, param, &text, e))) return rc;
        if (!str_eq(v, "text"))
            return fail(e, param, "unsupported_value",
                        "Content parts of type '%.64s' are not supported; only 'text' is.", text);
        snprintf(param, sizeof param, "messages[%zu].content[%zu].text", i, j);
        if (!(v = field(part, "text"))) return fail_missing(e, param);
        if ((rc = get_text(v, param, &text, e))) return rc;
        total += strlen(text);
    }
    char *s = malloc(total + 1);
    if (!s) return oom(e);
    size_t off = 0;
    for (size_t j = 0; j < n; j++) {
        const char *text = json_string_value(json_object_get(json_array_get(arr, j), "text"));
        size_t len = strlen(text);
        memcpy(s + off, text, len);
        off += len;
    }
    s[off] = '\0';
    *out = s;
    return 0;
}

static int parse_content(const json_t *m, size_t i, const char *role, char **out, rk_api_error *e) {
    char param[PARAM_MAX];
    snprintf(param, sizeof param, "messages[%zu].content", i);
    const json_t *c = field(m, "content");
    if (!c) {
        if (strcmp(role, "assistant") != 0) return fail_missing(e, param);
        if (!(*out = calloc(1, 1))) return oom(e); /* an assistant turn without text */
        return 0;
    }
    if (json_is_string(c)) return get_string(c, param, out, e);
    if (json_is_array(c)) return parse_parts(c, i, out, e);
    return fail_type(e, param, "a string or an array of content parts", c);
}

/* The role as a static string ("developer" is OpenAI's new name for "system"). */
static int parse_role(const json_t *m, size_t i, const char **role, rk_api_error *e) {
    char param[PARAM_MAX];
    const char *s = NULL;
    snprintf(param, sizeof param, "messages[%zu].role", i);
    const json_t *v = field(m, "role");
    if (!v) return fail_missing(e, param);
    int rc = get_text(v, param, &s, e);
    if (rc) return rc;
    if (str_eq(v, "system") || str_eq(v, "developer"))
        *role = "system";
    else if (str_eq(v, "user"))
        *role = "user";
    else if (str_eq(v, "assistant"))
        *role = "assistant";
    else
        return fail(e, param, "invalid_value",
                    "Invalid value for '%s': '%.64s' is not supported; ringkv accepts 'system', "
                    "'developer', 'user' and 'assistant' (tools are not supported).",
                    param, s);
    return 0;
}

static int parse_message(const json_t *m, size_t i, rk_api_message *out, rk_api_error *e) {
    char param[PARAM_MAX];
    const char *role = NULL;
    snprintf(param, sizeof param, "messages[%zu]", i);
    if (!json_is_object(m)) return fail_type(e, param, "an object", m);
    int rc = parse_role(m, i, &role, e);
    if (rc) return rc;
    const json_t *tc = field(m, "tool_calls");
    if (tc && !(json_is_array(tc) && json_array_size(tc) == 0)) {
        snprintf(param, sizeof param, "messages[%zu].tool_calls", i);
        return fail(e, param, "unsupported_parameter", "tools are not supported by ringkv.");
    }
    if (!(out->role = strdup(role))) return oom(e);
    return parse_content(m, i, role, &out->content, e);
}

static int parse_messages(const json_t *root, rk_api_params *p, rk_api_error *e) {
    const json_t *v = field(root, "messages");
    if (!v) return fail_missing(e, "messages");
    if (!json_is_array(v)) return fail_type(e, "messages", "an array", v);
    size_t n = json_array_size(v);
    if (n == 0)
        return fail(e, "messages", "invalid_value",
                    "Invalid 'messages': empty array. Expected an array with minimum length 1.");
    if (!(p->messages = calloc(n, sizeof *p->messages))) return oom(e);
    for (size_t i = 0; i < n; i++) {
        p->n_messages = i + 1; /* so rk_api_params_free sees what this one filled */
        int rc = parse_message(json_array_get(v, i), i, &p->messages[i], e);
        if (rc) return rc;
    }
    return 0;
}

/* tools, functions, tool_choice, function_call, response_format. */
static int parse_chat_unsupported(const json_t *root, rk_api_error *e) {
    static const char *const lists[] = {"tools", "functions"};
    static const char *const choices[] = {"tool_choice", "function_call"};
    for (size_t i = 0; i < 2; i++) {
        const json_t *v = field(root, lists[i]);
        if (v && !(json_is_array(v) && json_array_size(v) == 0))
            return fail(e, lists[i], "unsupported_parameter", "tools are not supported by ringkv.");
        v = field(root, choices[i]);
        if (v && !str_eq(v, "none") && !str_eq(v, "auto"))
            return fail(e, choices[i], "unsupported_parameter",
                        "tools are not supported by ringkv.");
    }
    const json_t *rf = field(root, "response_format");
    if (rf && !(json_is_object(rf) && str_eq(json_object_get(rf, "type"), "text"))) {
        const json_t *t = json_is_object(rf) ? json_object_get(rf, "type") : NULL;
        return fail(e, "response_format", "unsupported_value",
                    "'response_format' of type '%.64s' is not supported; only 'text' is.",
                    json_is_string(t) ? json_string_value(t) : "?");
    }
    return 0;
}

static int parse_chat(const json_t *root, rk_api_params *p, rk_api_error *e) {
    int rc = parse_messages(root, p, e);
    if (rc) return rc;
    if ((rc = opt_bool(root, "logprobs", "logprobs", &p->logprobs, e))) return rc;
    const json_t *v = field(root, "top_logprobs");
    if (v) {
        int64_t n = 0;
        if ((rc = get_int(v, "top_logprobs", &n, e))) return rc;
        if (n < 0 || n > 20)
            return fail(e, "top_logprobs", "invalid_value",
                        "Invalid 'top_logprobs': %lld is outside [0, 20].", (long long)n);
        if (!p->logprobs)
            return fail(e, "top_logprobs", "invalid_value",
                        "'top_logprobs' requires 'logprobs' to be true.");
        p->top_logprobs = (int)n;
    }
    return parse_chat_unsupported(root, e);
}

/* ---- completions ------------------------------------------------------------------------ */

/* An array of token ids (0..INT32_MAX; the vocabulary is checked later) into *out. */
static int parse_token_array(const json_t *arr, const char *name, rk_token **out, size_t *n_out,
                             rk_api_error *e) {
    size_t n = json_array_size(arr);
    rk_token *t = malloc((n ? n : 1) * sizeof *t);
    if (!t) return oom(e);
    for (size_t i = 0; i < n; i++) {
        char param[PARAM_MAX];
        int64_t id = 0;
        snprintf(param, sizeof param, "%s[%zu]", name, i);
        int rc = get_int(json_array_get(arr, i), param, &id, e);
        if (!rc && (id < 0 || id > INT32_MAX))
            rc = fail(e, param, "invalid_value",
                      "Invalid token id %lld at '%s': ids must be between 0 and %d.", (long long)id,
                      param, INT32_MAX);
        if (rc) {
            free(t);
            return rc;
        }
        t[i] = (rk_token)id;
    }
    *out = t;
    *n_out = n;
    return 0;
}

/* "prompt": a string, [string], [ids] or [[ids]]; batches of several prompts are refused. */
static int parse_prompt(const json_t *root, rk_api_params *p, rk_api_error *e) {
    const json_t *v = field(root, "prompt");
    if (!v) return fail_missing(e, "prompt");
    if (json_is_string(v)) return get_string(v, "prompt", &p->prompt, e);
    if (!json_is_array(v))
        return fail_type(e, "prompt", "a string, an array of strings or of token ids", v);
    size_t n = json_array_size(v);
    if (n == 0)
        return fail(e, "prompt", "invalid_value",
                    "Invalid 'prompt': empty array. Expected a string or token ids.");
    const json_t *first = json_array_get(v, 0);
    if (json_is_number(first))
        return parse_token_array(v, "prompt", &p->prompt_tokens, &p->n_prompt_tokens, e);
    if (n != 1)
        return fail(e, "prompt", "unsupported_value",
                    "Batches of prompts are not supported: 'prompt' holds %zu prompts; send one "
                    "per request.",
                    n);
    if (json_is_string(first)) return get_string(first, "prompt[0]", &p->prompt, e);
    if (!json_is_array(first))
        return fail_type(e, "prompt[0]", "a string or an array of token ids", first);
    if (json_array_size(first) == 0)
        return fail(e, "prompt[0]", "invalid_value", "Invalid 'prompt[0]': empty token array.");
    return parse_token_array(first, "prompt[0]", &p->prompt_tokens, &p->n_prompt_tokens, e);
}

static int parse_completion(const json_t *root, rk_api_params *p, rk_api_error *e) {
    int rc = parse_prompt(root, p, e);
    if (rc) return rc;
    const json_t *v = field(root, "logprobs");
    if (v) {
        int64_t n = 0;
        if ((rc = get_int(v, "logprobs", &n, e))) return rc;
        if (n < 0 || n > 5)
            return fail(e, "logprobs", "invalid_value",
                        "Invalid 'logprobs': %lld is outside [0, 5].", (long long)n);
        p->logprobs = 1;
        p->top_logprobs = (int)n;
    }
    if ((rc = opt_bool(root, "echo", "echo", &p->echo, e))) return rc;
    if (p->echo)
        return fail(e, "echo", "unsupported_value", "'echo': true is not supported by ringkv.");
    if ((rc = require_one(root, "best_of", e))) return rc;
    v = field(root, "suffix");
    if (v && !str_eq(v, ""))
        return fail(e, "suffix", "unsupported_parameter", "'suffix' is not supported by ringkv.");
    return 0;
}

/* ---- bodies ----------------------------------------------------------------------------- */

/* Counts nesting outside strings. Up to the first syntax error this is exactly the depth the
 * parser will recurse to, so a body that passes cannot make jansson recurse deeper. */
static int check_depth(const char *s, size_t n, int max, rk_api_error *e) {
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                return fail(e, NULL, "invalid_value",
                            "The request body nests JSON deeper than %d levels (at byte %zu).", max,
                            i);
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return 0;
}

static int parse_error(const json_error_t *je, rk_api_error *e) {
    if (json_error_code(je) == json_error_out_of_memory || je->text[0] == '\0')
        return oom(e); /* jansson leaves the text empty on some allocation failures */
    switch (json_error_code(je)) {
    case json_error_invalid_utf8:
        return fail(e, NULL, "invalid_value",
                    "The request body is not valid UTF-8: %s (line %d, column %d, byte %d).",
                    je->text, je->line, je->column, je->position);
    case json_error_numeric_overflow:
        return fail(e, NULL, "invalid_value",
                    "The request body holds a number out of range: %s (line %d, column %d, byte "
                    "%d).",
                    je->text, je->line, je->column, je->position);
    default:
        return fail(e, NULL, "invalid_json",
                    "The request body is not valid JSON: %s (line %d, column %d, byte %d).",
                    je->text, je->line, je->column, je->position);
    }
}

/* Limits, depth scan, parse; *root is a JSON object on success (caller decrefs). */
static int load_body(const char *body, size_t len, const rk_api_limits *lim, json_t **root,
                     rk_api_error *e) {
    *root = NULL;
    if (lim->max_body_bytes && len > lim->max_body_bytes)
        return rk_api_error_set(e, 413, T_INVALID, NULL, "request_too_large",
                                "The request body is %zu bytes; this server accepts at most %zu.",
                                len, lim->max_body_bytes);
    if (!body || len == 0)
        return fail(e, NULL, "invalid_json", "The request body is empty; expected a JSON object.");
    int rc = check_depth(body, len, lim->max_json_depth > 0 ? lim->max_json_depth : 32, e);
    if (rc) return rc;
    json_error_t je;
    json_t *v = json_loadb(body, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!v) return parse_error(&je, e);
    if (!json_is_object(v)) {
        rc = fail(e, NULL, "invalid_type", "The request body must be a JSON object, got %s.",
                  type_name(v));
        json_decref(v);
        return rc;
    }
    *root = v;
    return 0;
}

static void error_clear(rk_api_error *e) {
    e->http_status = 0;
    e->message[0] = '\0';
    e->type = NULL;
    e->param[0] = '\0';
    e->code = NULL;
}

static int parse_fields(const json_t *root, const rk_api_limits *lim, rk_api_params *p,
                        rk_api_error *e) {
    int rc = p->kind == RK_API_CHAT ? parse_chat(root, p, e) : parse_completion(root, p, e);
    if (!rc) rc = parse_ids(root, p, e);
    if (!rc) rc = parse_stream(root, p, e);
    if (!rc) rc = parse_max_tokens(root, lim, p, e);
    if (!rc) rc = parse_sampling(root, p, e);
    if (!rc) rc = parse_stop(root, p, e);
    if (!rc) rc = parse_unsupported_common(root, e);
    return rc;
}

int rk_api_parse_request(rk_api_kind kind, const char *body, size_t len,
                         const rk_api_limits *limits, rk_api_params *out, rk_api_error *err) {
    rk_api_error scratch;
    rk_api_limits lim = limits ? *limits : rk_api_default_limits();
    if (!err) err = &scratch;
    error_clear(err);
    memset(out, 0, sizeof *out);
    if (kind != RK_API_CHAT && kind != RK_API_COMPLETION)
        return rk_api_error_set(err, 500, "server_error", NULL, NULL, "unknown request kind %d",
                                (int)kind);
    json_t *root;
    int rc = load_body(body, len, &lim, &root, err);
    if (rc) return rc;
    out->kind = kind;
    out->max_tokens = -1;
    out->temperature = 1.0f;
    out->top_p = 1.0f;
    rc = parse_fields(root, &lim, out, err);
    json_decref(root);
    if (rc) rk_api_params_free(out);
    return rc;
}

void rk_api_params_free(rk_api_params *p) {
    if (!p) return;
    free(p->model);
    for (size_t i = 0; i < p->n_messages; i++) {
        free(p->messages[i].role);
        free(p->messages[i].content);
    }
    free(p->messages);
    free(p->prompt);
    free(p->prompt_tokens);
    for (int i = 0; i < p->n_stop && i < 4; i++)
        free(p->stop[i]);
    free(p->session);
    free(p->user);
    memset(p, 0, sizeof *p);
}

/* ---- tokenize / detokenize -------------------------------------------------------------- */

int rk_api_parse_tokenize_ex(const char *body, size_t len, const rk_api_limits *limits, char **text,
                             int *add_special, int *with_pieces, rk_api_error *err) {
    rk_api_error scratch;
    rk_api_limits lim = limits ? *limits : rk_api_default_limits();
    int special = 0, pieces = 0;
    if (!err) err = &scratch;
    error_clear(err);
    *text = NULL;
    json_t *root;
    int rc = load_body(body, len, &lim, &root, err);
    if (rc) return rc;
    const json_t *v = field(root, "content");
    rc = v ? get_string(v, "content", text, err) : fail_missing(err, "content");
    if (!rc) rc = opt_bool(root, "add_special", "add_special", &special, err);
    if (!rc) rc = opt_bool(root, "with_pieces", "with_pieces", &pieces, err);
    json_decref(root);
    if (rc) {
        free(*text);
        *text = NULL;
        return rc;
    }
    if (add_special) *add_special = special;
    if (with_pieces) *with_pieces = pieces;
    return 0;
}

int rk_api_parse_tokenize(const char *body, size_t len, const rk_api_limits *limits, char **text,
                          int *add_special, rk_api_error *err) {
    return rk_api_parse_tokenize_ex(body, len, limits, text, add_special, NULL, err);
}

int rk_api_parse_detokenize(const char *body, size_t len, const rk_api_limits *limits,
                            rk_token **tokens, size_t *n, rk_api_error *err) {
    rk_api_error scratch;
    rk_api_limits lim = limits ? *limits : rk_api_default_limits();
    if (!err) err = &scratch;
    error_clear(err);
    *tokens = NULL;
    *n = 0;
    json_t *root;
    int rc = load_body(body, len, &lim, &root, err);
    if (rc) return rc;
    const json_t *v = field(root, "tokens");
    if (!v)
        rc = fail_missing(err, "tokens");
    else if (!json_is_array(v))
        rc = fail_type(err, "tokens", "an array of token ids", v);
    else
        rc = parse_token_array(v, "tokens", tokens, n, err);
    json_decref(root);
    return rc;
}
