/*
 * cmd-eval-niah.c — `ringkv eval niah`, the needle-in-a-haystack test (see cmd-eval-niah.h).
 *
 * Everything happens in token space so that every prompt is exactly `length` tokens:
 *
 *     prompt = prefix | haystack[0:pos] | needle | haystack[pos:B] | suffix
 *
 * where prefix/suffix are the chat template (or completion prompt) rendered around a marker
 * and cut at the marker, B = length − |prefix| − |needle| − |suffix|, and pos is depth% of B
 * moved back to the nearest sentence end (when there is one within 1/16 of B, at most 256
 * tokens; otherwise it stays). The haystack is tokenized once; the pieces are
 * tokenized separately, so token boundaries at the joins may differ from tokenizing the whole
 * text — fine for a retrieval test, and it keeps the length exact.
 *
 * Each cell starts from an empty cache (rk_context_truncate to 0) of one context sized for the
 * longest length plus the generation room. Bad input is reported before the first cell runs;
 * only the model load (an mmap) precedes the length checks, which need its trained context.
 */
#include "tools/cmd-eval-niah.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/generate.h"
#include "tools/opts.h"
#include "tools/run-opts.h"
#include "tools/text-files.h"

#define CMD "eval niah"
#define MAX_AXIS 64
#define MARKER "@@RINGKV_NIAH_DOCUMENT@@"
#define REPLY_MAX 2048

static const char DEFAULT_NEEDLE[] =
    "The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day.";
static const char DEFAULT_QUESTION[] = "What is the best thing to do in San Francisco?";
static const char DEFAULT_ANSWER[] = "Dolores Park";
static const char PASSKEY_FILLER[] =
    " The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
static const char PASSKEY_QUESTION[] = "What is the pass key?";
static const int64_t DEFAULT_LENGTHS[] = {1024, 2048, 4096, 8192, 16384, 32768};

enum { PROMPT_AUTO = 0, PROMPT_CHAT = 1, PROMPT_COMPLETION = 2 };

typedef struct niah_opts {
    rk_run_opts run;
    const char *haystack; /* NULL: the default essays */
    const char *needle, *question, *answer, *out_dir;
    int passkey;
    int prompt; /* PROMPT_AUTO, PROMPT_CHAT or PROMPT_COMPLETION */
    int lengths_given;
    int64_t n_gen;
    int64_t lengths[MAX_AXIS];
    size_t n_lengths;
    int depths[MAX_AXIS];
    size_t n_depths;
} niah_opts;

/* One prompt layout: the token runs around the document. */
typedef struct niah_frame {
    rk_token *prefix, *suffix;
    size_t n_prefix, n_suffix;
    int chat; /* 1: chat template; 0: completion prompt */
} niah_frame;

static void usage(FILE *out) {
    fprintf(out,
            "usage: ringkv eval niah [-m MODEL] [--haystack FILE|DIR] [--needle TEXT --question TEXT\n"
            "                        --answer TEXT] [--passkey] [--lengths 1k,2k,...]\n"
            "                        [--depths 0,10,...,100] [--kv-codec CODEC] [--out DIR] [options]\n"
            "  --haystack FILE|DIR    text to hide the needle in; a DIR means its regular files in name\n"
            "                         order (default: ../shared/testdata/haystack/pg-essays)\n"
            "  --needle/--question/--answer   default: the San Francisco sandwich; scored by the\n"
            "                         answer appearing in the reply, ignoring case (default 'Dolores Park')\n"
            "  --passkey              RULER pass-key retrieval: a random 5-7 digit key (from --seed)\n"
            "                         in repeated filler sentences\n"
            "  --lengths LIST         prompt lengths in tokens, k = 1024 (default 1k,...,32k up to the\n"
            "                         model's trained context)\n"
            "  --depths LIST          needle depths in percent of the document (default 0,10,...,100)\n"
            "  -n, --n-predict N      tokens to decode per cell, greedily (default 32)\n"
            "  --prompt auto|chat|completion   how the question is asked: the model's chat template,\n"
            "                         or the document followed by 'Question: ...\\nAnswer:'. auto (the\n"
            "                         default): chat when the model file carries a chat template (an\n"
            "                         instruct model), else completion (a base model)\n"
            "  --out DIR              where results.csv, responses.jsonl and heatmap.png go (niah-out)\n"
            "  (the context is sized to the longest length plus -n; sampling options are ignored)\n"
            "  with --kv-sparse the prompt's tail after the document (the question) is decoded token\n"
            "  by token, so the sparse page selection is what answers it\n");
    rk_run_opts_usage(out);
}

/* Parses "512,1k,32K,1m" (k = 1024, m = 1024²) into lengths >= 1. */
static int parse_lengths(const char *list, niah_opts *o) {
    const char *p = list;
    o->n_lengths = 0;
    while (*p) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        long long mul = 1;
        if (end != p && (*end == 'k' || *end == 'K')) mul = 1024, end++;
        else if (end != p && (*end == 'm' || *end == 'M')) mul = 1024 * 1024, end++;
        if (errno || end == p || v < 1 || v > ((long long)1 << 40) || (*end && *end != ',')) {
            fprintf(stderr, "%s: --lengths: cannot parse '%s' (expected a list like 512,1k,32k)\n", CMD,
                    list);
            return 0;
        }
        if (o->n_lengths == MAX_AXIS) {
            fprintf(stderr, "%s: --lengths: more than %d lengths\n", CMD, MAX_AXIS);
            return 0;
        }
        o->lengths[o->n_lengths++] = v * mul;
        p = *end ? end + 1 : end;
    }
    if (o->n_lengths == 0) {
        fprintf(stderr, "%s: --lengths is empty\n", CMD);
        return 0;
    }
    return 1;
}

/* Parses "0,25,50" into depths in 0..100. */
static int parse_depths(const char *list, niah_opts *o) {
    const char *p = list;
    o->n_depths = 0;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || (*end && *end != ',')) {
            fprintf(stderr, "%s: --depths: cannot parse '%s' (expected a list like 0,50,100)\n", CMD,
                    list);
            return 0;
        }
        if (v < 0 || v > 100) {
            fprintf(stderr, "%s: --depths: depth %ld is outside 0..100 (percent of the document)\n",
                    CMD, v);
            return 0;
        }
        if (o->n_depths == MAX_AXIS) {
            fprintf(stderr, "%s: --depths: more than %d depths\n", CMD, MAX_AXIS);
            return 0;
        }
        o->depths[o->n_depths++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (o->n_depths == 0) {
        fprintf(stderr, "%s: --depths is empty\n", CMD);
        return 0;
    }
    return 1;
}

/* Parses argv (argv[0] = "niah"). Returns 0, or 2 after printing a usage error. */
static int parse_args(niah_opts *o, int argc, char **argv) {
    const char *needle = NULL, *question = NULL, *answer = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = rk_run_opts_parse(&o->run, CMD, argc, argv, i);
        if (used < 0) return 2;
        if (used > 0) { i += used - 1; continue; }
        if (rk_opt_is(a, NULL, "--passkey")) { o->passkey = 1; continue; }
        if (rk_opt_is(a, NULL, "--lengths") && v) {
            if (!parse_lengths(v, o)) return 2;
            o->lengths_given = 1;
        } else if (rk_opt_is(a, NULL, "--depths") && v) {
            if (!parse_depths(v, o)) return 2;
        } else if (rk_opt_is(a, "-n", "--n-predict")) {
            if (!rk_opt_int(CMD, a, v, 1, 4096, &o->n_gen)) return 2;
        } else if (rk_opt_is(a, NULL, "--haystack") && v) o->haystack = v;
        else if (rk_opt_is(a, NULL, "--needle") && v) needle = v;
        else if (rk_opt_is(a, NULL, "--question") && v) question = v;
        else if (rk_opt_is(a, NULL, "--answer") && v) answer = v;
        else if (rk_opt_is(a, "-o", "--out") && v) o->out_dir = v;
        else if (rk_opt_is(a, NULL, "--prompt") && v) {
            if (strcmp(v, "auto") == 0) o->prompt = PROMPT_AUTO;
            else if (strcmp(v, "chat") == 0) o->prompt = PROMPT_CHAT;
            else if (strcmp(v, "completion") == 0) o->prompt = PROMPT_COMPLETION;
            else {
                fprintf(stderr, "%s: --prompt takes auto, chat or completion, not '%s'\n", CMD, v);
                return 2;
            }
        } else {
            fprintf(stderr, "%s: unknown or incomplete option '%s'\n", CMD, a);
            return 2;
        }
        i++;
    }
    if (o->passkey && (o->haystack || needle || question || answer)) {
        fprintf(stderr, "%s: --passkey brings its own filler, needle, question and answer; drop "
                        "--haystack/--needle/--question/--answer\n", CMD);
        return 2;
    }
    if ((needle || question || answer) && !(needle && question && answer)) {
        fprintf(stderr, "%s: --needle, --question and --answer go together\n", CMD);
        return 2;
    }
    if (needle && (!*needle || !*question || !*answer)) {
        fprintf(stderr, "%s: --needle, --question and --answer must not be empty\n", CMD);
        return 2;
    }
    o->needle = needle ? needle : DEFAULT_NEEDLE;
    o->question = needle ? question : o->passkey ? PASSKEY_QUESTION : DEFAULT_QUESTION;
    o->answer = needle ? answer : DEFAULT_ANSWER;
    return 0;
}

/* The default haystack: $RINGKV_TESTDATA/haystack/pg-essays, else the shared test data beside
 * the executable (build/../../shared/...), else ../shared/... relative to the working dir. */
static const char *default_haystack(char *buf, size_t cap) {
    const char *td = getenv("RINGKV_TESTDATA");
    if (td && snprintf(buf, cap, "%s/haystack/pg-essays", td) < (int)cap && access(buf, R_OK) == 0)
        return buf;
    char dir[PATH_MAX / 2];
    if (rk_opt_exe_dir(dir, sizeof dir) &&
        snprintf(buf, cap, "%s/../../shared/testdata/haystack/pg-essays", dir) < (int)cap &&
        access(buf, R_OK) == 0)
        return buf;
    snprintf(buf, cap, "../shared/testdata/haystack/pg-essays");
    return buf;
}

/* Renders the prompt around MARKER and tokenizes the two sides: the chat template for a model
 * that carries one (or with --prompt chat), else a completion prompt. A base model given a chat
 * turn tends to copy the document from its start, which only the needle at depth 0 survives. */
static int build_frame(const rk_model *model, const char *question, int prompt, niah_frame *f) {
    memset(f, 0, sizeof *f);
    rk_error err;
    char user[4096], *text = NULL;
    int n = snprintf(user, sizeof user,
                     "<document>\n%s\n</document>\n\n%s Answer briefly, using only the document.",
                     MARKER, question);
    if (n < 0 || n >= (int)sizeof user) {
        fprintf(stderr, "%s: the question is too long (%zu bytes)\n", CMD, strlen(question));
        return 0;
    }
    const int chat = prompt == PROMPT_CHAT || (prompt == PROMPT_AUTO && rk_model_has_chat_template(model));
    rk_chat_message msg = {"user", user};
    rk_status s = chat ? rk_chat_format(model, &msg, 1, 1, &text, &err) : RK_ERR_UNSUPPORTED;
    if (s == RK_OK) {
        f->chat = 1;
    } else if (s == RK_ERR_UNSUPPORTED && prompt != PROMPT_CHAT) {
        size_t cap = strlen(question) + 64;
        text = malloc(cap);
        if (text) snprintf(text, cap, "%s\n\nQuestion: %s\nAnswer:", MARKER, question);
    } else {
        fprintf(stderr, "%s: %s\n", CMD, s == RK_ERR_UNSUPPORTED ? "--prompt chat: the model has no chat template ringkv knows" : err.msg);
        return 0;
    }
    char *mark = text ? strstr(text, MARKER) : NULL;
    int ok = mark != NULL;
    if (ok) {
        const char *after = mark + strlen(MARKER);
        ok = rk_tokenize(model, text, (size_t)(mark - text), rk_model_add_bos(model), 1, &f->prefix,
                         &f->n_prefix, &err) == RK_OK &&
             rk_tokenize(model, after, strlen(after), 0, 1, &f->suffix, &f->n_suffix, &err) == RK_OK;
        if (!ok) fprintf(stderr, "%s: %s\n", CMD, err.msg);
    } else {
        fprintf(stderr, "%s: %s\n", CMD, text ? "the chat template dropped the document" : "out of memory");
    }
    free(text);
    return ok;
}

static void free_frame(niah_frame *f) {
    free(f->prefix);
    free(f->suffix);
    memset(f, 0, sizeof *f);
}

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The pass key of cell `cell` (5 to 7 digits) as text, a pure function of (seed, cell). */
static void passkey_for(uint64_t seed, size_t cell, char *out, size_t cap) {
    uint64_t st = seed ^ ((uint64_t)cell * 0xD1B54A32D192ED03ull);
    uint64_t r = splitmix64(&st);
    int digits = 5 + (int)(r % 3);
    uint64_t lo = digits == 5 ? 10000 : digits == 6 ? 100000 : 1000000;
    snprintf(out, cap, "%llu", (unsigned long long)(lo + splitmix64(&st) % (9 * lo)));
}

/* Tokenizes the needle as a sentence of its own (leading space, no BOS). */
static rk_token *needle_tokens(const rk_model *model, const char *needle, size_t *n) {
    size_t len = strlen(needle) + 2;
    char *text = malloc(len);
    rk_token *t = NULL;
    rk_error err;
    if (!text) return NULL;
    snprintf(text, len, " %s", needle);
    if (rk_tokenize(model, text, strlen(text), 0, 0, &t, n, &err) != RK_OK) {
        fprintf(stderr, "%s: %s\n", CMD, err.msg);
        t = NULL;
    }
    free(text);
    return t;
}

/* The needle text of a cell (the pass key sentence, or the fixed needle). */
static void cell_needle(const niah_opts *o, size_t cell, char *needle, size_t cap, char *answer,
                        size_t answer_cap) {
    if (!o->passkey) {
        snprintf(needle, cap, "%s", o->needle);
        snprintf(answer, answer_cap, "%s", o->answer);
        return;
    }
    char key[32];
    passkey_for(o->run.sampling.seed, cell, key, sizeof key);
    snprintf(needle, cap, "The pass key is %s. Remember it. %s is the pass key.", key, key);
    snprintf(answer, answer_cap, "%s", key);
}

/* Haystack tokens: `need` tokens of the text (repeated when it is shorter; `note`: say so), and
 * for each a flag saying whether it ends a sentence. */
static int haystack_tokens(const rk_model *model, const char *text, size_t len, size_t need,
                           int note, rk_token **out, unsigned char **ends) {
    rk_token *t = NULL;
    size_t n = 0;
    rk_error err;
    if (rk_tokenize(model, text, len, 0, 0, &t, &n, &err) != RK_OK) {
        fprintf(stderr, "%s: haystack: %s\n", CMD, err.msg);
        return 0;
    }
    if (n == 0) {
        fprintf(stderr, "%s: the haystack has no tokens\n", CMD);
        free(t);
        return 0;
    }
    if (n < need && note)
        fprintf(stderr, "%s: note: the haystack has %zu tokens, repeating it to fill %zu\n", CMD, n, need);
    rk_token *all = malloc((need ? need : 1) * sizeof *all);
    unsigned char *e = malloc(need ? need : 1);
    if (!all || !e) {
        fprintf(stderr, "%s: out of memory\n", CMD);
        free(t), free(all), free(e);
        return 0;
    }
    for (size_t i = 0; i < need; i++) {
        all[i] = t[i % n];
        char piece[64];
        int32_t pl = rk_token_to_piece(model, all[i], 0, piece, sizeof piece);
        if (pl > (int32_t)sizeof piece) pl = sizeof piece;
        while (pl > 0 && (piece[pl - 1] == ' ' || piece[pl - 1] == '\n' || piece[pl - 1] == '\t'))
            pl--;
        e[i] = pl > 0 && (piece[pl - 1] == '.' || piece[pl - 1] == '!' || piece[pl - 1] == '?');
    }
    free(t);
    *out = all;
    *ends = e;
    return 1;
}

/* ASCII case-insensitive substring test. */
static int contains_nocase(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++) {
        size_t i = 0;
        while (i < n && p[i]) {
            char a = p[i], b = needle[i];
            if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
            if (b >= 'A' && b <= 'Z') b = (char)(b - 'A' + 'a');
            if (a != b) break;
            i++;
        }
        if (i == n) return 1;
    }
    return n == 0;
}

/* Evaluates the prompt from an empty cache and decodes greedily up to n_gen tokens (or an
 * end-of-generation token) into reply (NUL-terminated). The last `tail` prompt tokens are fed
 * one at a time, as decode steps (the question asked of a document already read: that is where
 * the opt-in sparse decode applies). */
static rk_status run_cell(rk_context *ctx, const rk_model *model, const rk_token *prompt, size_t n,
                          size_t tail, int64_t n_gen, char *reply, size_t cap, rk_error *err) {
    size_t len = 0;
    reply[0] = '\0';
    if (tail >= n) tail = n - 1;
    rk_status s = rk_context_truncate(ctx, 0, err);
    if (s == RK_OK) s = rk_context_eval(ctx, prompt, n - tail, 0, err);
    for (size_t i = n - tail; s == RK_OK && i < n; i++) s = rk_context_eval(ctx, prompt + i, 1, 0, err);
    const int32_t V = rk_model_n_vocab(model);
    for (int64_t g = 0; s == RK_OK && g < n_gen; g++) {
        const float *logits = rk_context_logits(ctx, -1);
        if (!logits) break;
        rk_token best = 0;
        for (int32_t i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        if (rk_model_token_is_eog(model, best)) break;
        char piece[256];
        int32_t pl = rk_token_to_piece(model, best, 0, piece, sizeof piece);
        if (pl > (int32_t)sizeof piece) pl = sizeof piece;
        if (pl > 0 && len + (size_t)pl < cap) {
            memcpy(reply + len, piece, (size_t)pl);
            len += (size_t)pl;
            reply[len] = '\0';
        }
        if (g + 1 == n_gen || rk_context_n_past(ctx) >= rk_context_n_ctx(ctx)) break;
        s = rk_context_eval(ctx, &best, 1, 0, err);
    }
    return s;
}

/* Writes s as a JSON string literal. */
static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* Writes s as a gnuplot single-quoted string ('' stands for a quote). */
static void gp_string(FILE *f, const char *s) {
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') fputc('\'', f);
        if ((unsigned char)*s >= 0x20) fputc(*s, f);
    }
    fputc('\'', f);
}

/* DIR/heatmap.png through gnuplot: depth (rows, 0 on top) × length (columns), green = found,
 * red = missed. Says so on stderr and returns when gnuplot is missing or fails. */
static void write_heatmap(const niah_opts *o, const char *model_name, const unsigned char *correct,
                          double score) {
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
        fprintf(stderr, "%s: gnuplot not found; heatmap.png not written (results.csv is)\n", CMD);
        return;
    }
    FILE *gp = popen("gnuplot", "w");
    if (!gp) {
        fprintf(stderr, "%s: cannot start gnuplot: %s\n", CMD, strerror(errno));
        return;
    }
    const char *base = strrchr(model_name, '/');
    char title[512];
    snprintf(title, sizeof title, "%s %s: %.0f%% found", o->passkey ? "pass key" : "NIAH",
             base ? base + 1 : model_name, 100.0 * score);
    int w = 200 + 90 * (int)o->n_lengths, h = 160 + 36 * (int)o->n_depths;
    if (w < 640) w = 640;
    if (h < 400) h = 400;
    fprintf(gp, "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
                "  set terminal pngcairo noenhanced size %d,%d\n} else {\n"
                "  set terminal png noenhanced size %d,%d\n}\n", w, h, w, h);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/heatmap.png", o->out_dir);
    fputs("set output ", gp), gp_string(gp, path), fputs("\nset title ", gp), gp_string(gp, title);
    fprintf(gp, "\nset xlabel 'prompt length (tokens)'\nset ylabel 'needle depth (%% of document)'\n"
                "set xrange [-0.5:%g]\nset yrange [%g:-0.5]\nset palette defined (0 '#d62728', 1 "
                "'#2ca02c')\nset cbrange [0:1]\nunset colorbox\nunset key\nset tics scale 0\n"
                "set style fill solid 1.0 border lc rgb 'white'\nset xtics (",
            o->n_lengths - 0.5, o->n_depths - 0.5);
    for (size_t i = 0; i < o->n_lengths; i++)
        fprintf(gp, "%s'%lld' %zu", i ? ", " : "", (long long)o->lengths[i], i);
    fputs(")\nset ytics (", gp);
    for (size_t j = 0; j < o->n_depths; j++) fprintf(gp, "%s'%d' %zu", j ? ", " : "", o->depths[j], j);
    fputs(")\nplot '-' using 1:2:(0.5):(0.5):3 with boxxyerror fillcolor palette\n", gp);
    for (size_t i = 0; i < o->n_lengths; i++)
        for (size_t j = 0; j < o->n_depths; j++)
            fprintf(gp, "%zu %zu %d\n", i, j, correct[i * o->n_depths + j]);
    fputs("e\n", gp);
    int st = pclose(gp);
    if (st != 0) fprintf(stderr, "%s: gnuplot failed (status %d); heatmap.png may be missing\n", CMD, st);
}

/* mkdir -p for the output directory. */
static int make_dirs(const char *dir) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) return 0;
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST) return 0;
        *p = '/';
    }
    return mkdir(path, 0777) == 0 || errno == EEXIST;
}

/* Everything a run needs once the inputs are checked. */
typedef struct niah_run {
    const niah_opts *o;
    const char *model_name;
    rk_model *model;
    rk_context *ctx;
    niah_frame frame;
    rk_token *hay;       /* (max document tokens) */
    unsigned char *ends; /* (max document tokens) 1 where a sentence ends */
    FILE *csv, *jsonl;
    int sparse;          /* --kv-sparse: the question is decoded token by token */
} niah_run;

/* Runs cell `cell` (length index li, depth index di); returns 0/1 for the score or -1. */
static int niah_cell(niah_run *r, size_t cell, size_t li, size_t di, rk_token *prompt) {
    const niah_opts *o = r->o;
    char needle[1024], answer[512], reply[REPLY_MAX];
    cell_needle(o, cell, needle, sizeof needle, answer, sizeof answer);
    size_t n_needle = 0;
    rk_token *nt = needle_tokens(r->model, needle, &n_needle);
    if (!nt) return -1;
    const int64_t length = o->lengths[li];
    const int64_t B = length - (int64_t)(r->frame.n_prefix + r->frame.n_suffix + n_needle);
    if (B < 1) { /* checked up front; only a surprising tokenization gets here */
        fprintf(stderr, "%s: length %lld leaves no room for the document\n", CMD, (long long)length);
        free(nt);
        return -1;
    }
    /* back to the nearest sentence end; a document without one nearby keeps the exact depth */
    const int64_t target = B * o->depths[di] / 100;
    const int64_t lookback = B / 16 < 8 ? 8 : B / 16 > 256 ? 256 : B / 16;
    int64_t pos = target;
    while (pos > 0 && !r->ends[pos - 1] && target - pos < lookback) pos--;
    if (pos > 0 && !r->ends[pos - 1]) pos = target;
    size_t n = 0;
/* (a completion prompt of a model without BOS has an empty prefix, whose tokens are NULL) */
#define PUT(src, cnt) ((cnt) > 0 ? (memcpy(prompt + n, (src), (size_t)(cnt) * sizeof *prompt), n += (size_t)(cnt)) : n)
    PUT(r->frame.prefix, r->frame.n_prefix);
    PUT(r->hay, pos);
    PUT(nt, n_needle);
    PUT(r->hay + pos, B - pos);
    PUT(r->frame.suffix, r->frame.n_suffix);
#undef PUT
    free(nt);
    rk_error err;
    double t0 = rk_now_seconds();
    size_t tail = r->sparse ? r->frame.n_suffix : 0;
    if (run_cell(r->ctx, r->model, prompt, n, tail, o->n_gen, reply, sizeof reply, &err) != RK_OK) {
        fprintf(stderr, "%s: %s\n", CMD, err.msg);
        return -1;
    }
    double secs = rk_now_seconds() - t0;
    int ok = contains_nocase(reply, answer);
    fprintf(stderr, "[%zu/%zu] length %lld depth %d%%: %s (%.1f s)\n", cell + 1,
            o->n_lengths * o->n_depths, (long long)length, o->depths[di], ok ? "correct" : "wrong", secs);
    fprintf(r->csv, "%lld,%d,%d,%zu,%.3f\n", (long long)length, o->depths[di], ok, n, secs);
    fflush(r->csv);
    fprintf(r->jsonl, "{\"length\":%lld,\"depth\":%d,\"needle_token\":%lld,\"correct\":%d,\"answer\":",
            (long long)length, o->depths[di], (long long)(r->frame.n_prefix + pos), ok);
    json_string(r->jsonl, answer);
    fputs(",\"reply\":", r->jsonl);
    json_string(r->jsonl, reply);
    fputs("}\n", r->jsonl);
    fflush(r->jsonl);
    return ok;
}

/* Runs the grid, writes the heatmap and prints the JSON summary. */
static int niah_grid(niah_run *r, int64_t max_len) {
    const niah_opts *o = r->o;
    const size_t cells = o->n_lengths * o->n_depths;
    unsigned char *correct = calloc(cells, 1);
    rk_token *prompt = malloc((size_t)max_len * sizeof *prompt);
    if (!correct || !prompt) {
        fprintf(stderr, "%s: out of memory\n", CMD);
        free(correct), free(prompt);
        return 1;
    }
    size_t found = 0, cell = 0;
    int rc = 0;
    double t0 = rk_now_seconds();
    for (size_t li = 0; li < o->n_lengths && rc == 0; li++)
        for (size_t di = 0; di < o->n_depths && rc == 0; di++, cell++) {
            int ok = niah_cell(r, cell, li, di, prompt);
            if (ok < 0) rc = 1;
            else correct[cell] = (unsigned char)ok, found += (size_t)ok;
        }
    if (rc == 0) {
        double score = (double)found / (double)cells;
        rk_kv_tier_stats ts;
        rk_context_kv_tiers(r->ctx, &ts);
        write_heatmap(o, r->model_name, correct, score);
        printf("{\"mode\":\"%s\",\"model\":", o->passkey ? "passkey" : "niah");
        json_string(stdout, r->model_name);
        printf(",\"kv_codec_k\":\"%s\",\"kv_codec_v\":\"%s\",\"kv_bytes_per_token\":%zu,"
               "\"kv_bytes_in_use\":%zu,\"peak_rss_bytes\":%zu,\"prompt\":\"%s\",\"cells\":%zu,"
               "\"correct\":%zu,\"score\":%.4f,\"sparse_pages\":%lld,\"sparse_skipped_fraction\":%.4f,"
               "\"seconds\":%.2f,\"out\":",
               rk_context_kv_codec_k(r->ctx), rk_context_kv_codec_v(r->ctx),
               rk_context_kv_bytes_per_token(r->ctx), rk_context_kv_bytes_in_use(r->ctx),
               rk_peak_rss_bytes(), r->frame.chat ? "chat" : "completion", cells, found, score,
               (long long)o->run.ctx.kv_sparse_pages,
               ts.sparse_pages_visited + ts.sparse_pages_skipped > 0
                   ? (double)ts.sparse_pages_skipped / (double)(ts.sparse_pages_visited + ts.sparse_pages_skipped)
                   : 0.0,
               rk_now_seconds() - t0);
        json_string(stdout, o->out_dir);
        printf("}\n");
    }
    free(correct);
    free(prompt);
    return rc;
}

/* Checks the lengths against the model and the prompt frame; fills in the default lengths. */
static int check_lengths(niah_opts *o, const niah_run *r, size_t longest_needle) {
    const int64_t train = rk_model_n_ctx_train(r->model);
    if (!o->lengths_given) {
        o->n_lengths = 0;
        for (size_t i = 0; i < sizeof DEFAULT_LENGTHS / sizeof *DEFAULT_LENGTHS; i++)
            if (DEFAULT_LENGTHS[i] <= train) o->lengths[o->n_lengths++] = DEFAULT_LENGTHS[i];
        if (o->n_lengths == 0) o->lengths[o->n_lengths++] = train;
    }
    const int64_t fixed = (int64_t)(r->frame.n_prefix + r->frame.n_suffix + longest_needle);
    for (size_t i = 0; i < o->n_lengths; i++) {
        if (o->lengths[i] > train) {
            fprintf(stderr, "%s: length %lld is beyond the model's context (%lld tokens)\n", CMD,
                    (long long)o->lengths[i], (long long)train);
            return 0;
        }
        if (o->lengths[i] <= fixed) {
            fprintf(stderr, "%s: length %lld is too short: template, question and needle take %lld tokens\n",
                    CMD, (long long)o->lengths[i], (long long)fixed);
            return 0;
        }
    }
    return 1;
}

/* Loads the model, checks the lengths, prepares the document tokens, the context and the
 * output files. `text` is the haystack (NULL in pass-key mode). Returns 0, 1 (runtime
 * failure) or 2 (bad input), after printing why. */
static int niah_prepare(niah_run *r, niah_opts *o, const char *text, size_t len, int64_t *max_len) {
    rk_error err;
    rk_model_params mp = rk_model_default_params();
    if (rk_model_load(r->model_name, &mp, &r->model, &err) != RK_OK) {
        fprintf(stderr, "%s: %s\n", CMD, err.msg);
        if (!r->o->run.model_path)
            fprintf(stderr, "%s: (fetch the default model with scripts/fetch-models.sh)\n", CMD);
        return 1;
    }
    size_t longest = 0;
    rk_token *nt = needle_tokens(r->model, o->passkey ? "The pass key is 9999999. Remember it. "
                                                        "9999999 is the pass key." : o->needle, &longest);
    if (!nt || !build_frame(r->model, o->question, o->prompt, &r->frame)) {
        free(nt);
        return 1;
    }
    free(nt);
    if (!check_lengths(o, r, longest)) return 2;
    *max_len = 0;
    for (size_t i = 0; i < o->n_lengths; i++)
        if (o->lengths[i] > *max_len) *max_len = o->lengths[i];
    if (o->passkey) text = PASSKEY_FILLER, len = strlen(PASSKEY_FILLER);
    if (!haystack_tokens(r->model, text, len, (size_t)*max_len, !o->passkey, &r->hay, &r->ends)) return 1;
    rk_context_params cp = o->run.ctx;
    cp.n_ctx = *max_len + o->n_gen;
    if (cp.n_ubatch == 0) cp.n_ubatch = 512;
    if (rk_context_create(r->model, &cp, &r->ctx, &err) != RK_OK) {
        fprintf(stderr, "%s: %s\n", CMD, err.msg);
        return 1;
    }
    if (!make_dirs(o->out_dir)) {
        fprintf(stderr, "%s: cannot create '%s': %s\n", CMD, o->out_dir, strerror(errno));
        return 1;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/results.csv", o->out_dir);
    r->csv = fopen(path, "w");
    if (r->csv) snprintf(path, sizeof path, "%s/responses.jsonl", o->out_dir);
    r->jsonl = r->csv ? fopen(path, "w") : NULL;
    if (!r->csv || !r->jsonl) {
        fprintf(stderr, "%s: cannot write '%s': %s\n", CMD, path, strerror(errno));
        return 1;
    }
    fputs("length,depth,correct,tokens,seconds\n", r->csv);
    return 0;
}

int rk_cmd_eval_niah(int argc, char **argv) {
    if (argc >= 2 && rk_opt_is(argv[1], "-h", "--help")) {
        usage(stdout);
        return 0;
    }
    niah_opts o;
    memset(&o, 0, sizeof o);
    rk_run_opts_init(&o.run);
    o.n_gen = 32;
    o.out_dir = "niah-out";
    static const int default_depths[] = {0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100};
    o.n_depths = sizeof default_depths / sizeof *default_depths;
    memcpy(o.depths, default_depths, sizeof default_depths);
    int rc = parse_args(&o, argc, argv);
    if (rc) return rc;
    char hay_buf[PATH_MAX];
    const char *hay_path = o.haystack ? o.haystack : default_haystack(hay_buf, sizeof hay_buf);
    size_t len = 0;
    char *text = NULL;
    if (!o.passkey) {
        rc = rk_text_read_path(CMD, "haystack", hay_path, &text, &len);
        if (rc) return rc;
    }
    niah_run r;
    memset(&r, 0, sizeof r);
    r.o = &o;
    r.sparse = o.run.ctx.kv_sparse_pages > 0;
    r.model_name = o.run.model_path ? o.run.model_path : rk_opt_default_model();
    int64_t max_len = 0;
    rc = niah_prepare(&r, &o, text, len, &max_len);
    free(text);
    if (rc == 0) rc = niah_grid(&r, max_len);
    if (r.csv) fclose(r.csv);
    if (r.jsonl) fclose(r.jsonl);
    free(r.hay);
    free(r.ends);
    free_frame(&r.frame);
    rk_context_free(r.ctx);
    rk_model_free(r.model);
    return rc;
}
