/*
 * cmd-chat.c — `ringkv chat [-m MODEL] [--system TEXT]`: an interactive chat with history.
 *
 * Each turn renders the whole conversation with the model's chat template, tokenizes it, and
 * evaluates only the tokens after the longest prefix already in the KV cache, so earlier turns
 * are not recomputed. Commands at the prompt: /reset clears the history, /quit (or EOF) ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/commands.h"
#include "tools/generate.h"
#include "tools/opts.h"
#include "tools/run-opts.h"

typedef struct history {
    rk_chat_message *msgs;
    char **owned;        /* the strings msgs point to */
    size_t n, cap;
} history;

static int history_add(history *h, const char *role, const char *content) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 8;
        rk_chat_message *m = realloc(h->msgs, cap * sizeof *m);
        if (!m) return 0;
        h->msgs = m;
        char **o = realloc(h->owned, cap * sizeof *o);
        if (!o) return 0;
        h->owned = o;
        h->cap = cap;
    }
    char *copy = strdup(content);
    if (!copy) return 0;
    h->owned[h->n] = copy;
    h->msgs[h->n].role = role;
    h->msgs[h->n].content = copy;
    h->n++;
    return 1;
}

static void history_clear(history *h, size_t keep) {
    while (h->n > keep) free(h->owned[--h->n]);
}

/* Evaluates the conversation's tokens after the prefix the cache already holds. */
static int feed_conversation(rk_session *s, const history *h, rk_token **cached, size_t *n_cached,
                             rk_gen_stats *st) {
    rk_error err;
    char *text = NULL;
    rk_token *toks = NULL;
    size_t n = 0;
    if (rk_chat_format(s->model, h->msgs, h->n, 1, &text, &err) != RK_OK ||
        rk_tokenize(s->model, text, strlen(text), 1, 1, &toks, &n, &err) != RK_OK) {
        fprintf(stderr, "chat: %s\n", err.msg);
        free(text);
        return 1;
    }
    free(text);
    if ((int64_t)n >= rk_context_n_ctx(s->ctx)) {
        fprintf(stderr, "chat: the conversation (%zu tokens) no longer fits the context of %lld; /reset\n",
                n, (long long)rk_context_n_ctx(s->ctx));
        free(toks);
        return 1;
    }
    size_t common = 0;
    while (common < n && common < *n_cached && toks[common] == (*cached)[common]) common++;
    if (common == n) common--; /* re-evaluate the last token to get fresh logits */
    rk_status rs = rk_context_truncate(s->ctx, (int64_t)common, &err);
    if (rs == RK_ERR_UNSUPPORTED) { /* sliding-window pages are gone: read it all again */
        common = 0;
        rs = rk_context_truncate(s->ctx, 0, &err);
    }
    if (!rs) rs = rk_generate(s->ctx, s->model, s->sampler, toks + common, n - common, 0, stdout, NULL, st, &err);
    free(*cached);
    *cached = toks;
    *n_cached = n;
    if (rs) {
        fprintf(stderr, "chat: %s\n", err.msg);
        return 1;
    }
    return 0;
}

int rk_cmd_chat(int argc, char **argv) {
    rk_run_opts o;
    rk_run_opts_init(&o);
    const char *system = NULL;
    int64_t n_predict = 1024;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = rk_run_opts_parse(&o, "chat", argc, argv, i);
        if (used < 0) return 2;
        if (used > 0) { i += used - 1; continue; }
        if (rk_opt_is(a, NULL, "--system") && v) { system = v; i++; }
        else if (rk_opt_is(a, "-n", "--n-predict")) {
            if (!rk_opt_int("chat", a, v, 1, 1 << 30, &n_predict)) return 2;
            i++;
        } else if (rk_opt_is(a, "-h", "--help")) {
            printf("usage: ringkv chat [-m MODEL] [--system TEXT] [-n MAX_REPLY_TOKENS] [options]\n");
            rk_run_opts_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "chat: unknown or incomplete option '%s'\n", a);
            return 2;
        }
    }
    rk_session s;
    if (rk_session_open(&s, &o, "chat") != 0) return 1;
    history h = {0};
    size_t base = 0;
    if (system && history_add(&h, "system", system)) base = 1;
    rk_token *cached = NULL;
    size_t n_cached = 0;
    char *line = NULL;
    size_t line_cap = 0;
    int rc = 0;
    fprintf(stderr, "chat: /reset clears the history, /quit or Ctrl-D ends\n");
    for (;;) {
        fprintf(stderr, "\n> ");
        ssize_t len = getline(&line, &line_cap, stdin);
        if (len < 0) break;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (strcmp(line, "/quit") == 0) break;
        if (strcmp(line, "/reset") == 0) {
            history_clear(&h, base);
            continue;
        }
        if (len == 0) continue;
        if (!history_add(&h, "user", line)) { rc = 1; break; }
        rk_gen_stats fed, st;
        if (feed_conversation(&s, &h, &cached, &n_cached, &fed) != 0) {
            history_clear(&h, h.n - 1);
            continue;
        }
        char *reply = NULL;
        size_t reply_len = 0;
        FILE *tee = open_memstream(&reply, &reply_len);
        rk_error err;
        rk_status gs = rk_generate(s.ctx, s.model, s.sampler, NULL, 0, n_predict, stdout, tee, &st, &err);
        if (tee) fclose(tee);
        st.n_prompt = fed.n_prompt; /* new prompt tokens this turn (the rest was cached) */
        st.prompt_seconds = fed.prompt_seconds;
        fputc('\n', stdout);
        fflush(stdout);
        if (gs != RK_OK) fprintf(stderr, "chat: %s\n", err.msg);
        if (!history_add(&h, "assistant", reply ? reply : "")) rc = 1;
        free(reply);
        /* the cache now also holds the reply: it is re-matched against the next rendering */
        rk_print_speed(stderr, &st, s.ctx);
        if (rc) break;
    }
    free(line);
    free(cached);
    history_clear(&h, 0);
    free(h.msgs);
    free(h.owned);
    rk_session_close(&s);
    return rc;
}
