/* cmd-convert.c — `ringkv convert --llama2c` (see cmd-convert.h).
 *
 * The checkpoint is memory-mapped and its tensors are handed to the GGUF writer as borrowed
 * slices of the mapping, so converting a multi-GB checkpoint costs no extra memory. llama2.c
 * stores each matrix (out, in) row-major, which is exactly ggml's layout for ne = {in, out}.
 * RoPE needs no permutation: run.c rotates adjacent pairs (2i, 2i+1) of each head, which is
 * llama.cpp's "normal" RoPE used for the llama architecture.
 *
 * tokenizer.bin stores SentencePiece pieces with '▁' already replaced by ' ' and BOS/EOS as
 * "\n<s>\n" / "\n</s>\n"; we undo both so the vocabulary is an ordinary `llama` SPM vocabulary
 * (what llama.cpp's convert-llama2c-to-ggml does). llama2.c's encoder prepends a dummy " " to
 * non-empty text, hence add_space_prefix = true.
 */
#include "tools/cmd-convert.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "gguf/gguf-writer.h"
#include "tools/commands.h"

#define HEADER_BYTES 28
#define MAGIC_AK42 0x616b3432u /* llama2.c export.py version >= 1 ("ak42") */

typedef struct l2c_config {
    int64_t dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len;
    int shared; /* classifier tied to the token embedding */
    int64_t head_size, kv_dim;
} l2c_config;

typedef struct l2c_vocab {
    int32_t n;
    char **text;   /* (n) escaped pieces, NUL-terminated */
    size_t *len;   /* (n) */
    float *score;  /* (n) */
    int32_t *type; /* (n) llama token types */
} l2c_vocab;

/* ---- checkpoint ---- */

static rk_status check_range(const char *path, const char *what, int64_t v, int64_t lo, int64_t hi,
                             rk_error *err) {
    if (v < lo || v > hi)
        return rk_error_set(err, RK_ERR_FORMAT,
                            "convert: '%s': header field %s = %lld is outside [%lld, %lld]", path,
                            what, (long long)v, (long long)lo, (long long)hi);
    return RK_OK;
}

static rk_status parse_config(const char *path, const uint8_t *p, size_t size, l2c_config *c,
                              rk_error *err) {
    if (size < HEADER_BYTES)
        return rk_error_set(err, RK_ERR_FORMAT,
                            "convert: '%s' is %zu bytes, too short for the %d-byte llama2.c header",
                            path, size, HEADER_BYTES);
    int32_t h[7];
    memcpy(h, p, sizeof h);
    if ((uint32_t)h[0] == MAGIC_AK42)
        return rk_error_set(
            err, RK_ERR_UNSUPPORTED,
            "convert: '%s' is a llama2.c export of version %d (magic \"ak42\"); only the legacy "
            "format (export.py --version 0) is supported",
            path, h[1]);
    *c = (l2c_config){h[0], h[1],     h[2], h[3], h[4], h[5] < 0 ? -(int64_t)h[5] : h[5],
                      h[6], h[5] > 0, 0,    0};
    rk_status s;
    if ((s = check_range(path, "dim", c->dim, 1, 1 << 16, err)) ||
        (s = check_range(path, "hidden_dim", c->hidden, 1, 1 << 20, err)) ||
        (s = check_range(path, "n_layers", c->n_layers, 1, 1024, err)) ||
        (s = check_range(path, "n_heads", c->n_heads, 1, c->dim, err)) ||
        (s = check_range(path, "n_kv_heads", c->n_kv_heads, 1, c->n_heads, err)) ||
        (s = check_range(path, "vocab_size (absolute value)", c->vocab, 3, 1 << 24, err)) ||
        (s = check_range(path, "seq_len", c->seq_len, 1, 1 << 24, err)))
        return s;
    if (c->dim % c->n_heads != 0 || (c->dim / c->n_heads) % 2 != 0)
        return rk_error_set(err, RK_ERR_FORMAT,
                            "convert: '%s': dim %lld is not n_heads %lld times an even head size",
                            path, (long long)c->dim, (long long)c->n_heads);
    if (c->n_heads % c->n_kv_heads != 0)
        return rk_error_set(err, RK_ERR_FORMAT,
                            "convert: '%s': n_heads %lld is not a multiple of n_kv_heads %lld",
                            path, (long long)c->n_heads, (long long)c->n_kv_heads);
    c->head_size = c->dim / c->n_heads;
    c->kv_dim = c->head_size * c->n_kv_heads;
    return RK_OK;
}

/* Float counts of each section in file order (freq_cis included, skipped on output). The
 * limits in parse_config keep every product far below 2^63. */
static uint64_t expected_floats(const l2c_config *c) {
    uint64_t d = (uint64_t)c->dim, h = (uint64_t)c->hidden, L = (uint64_t)c->n_layers;
    uint64_t kv = (uint64_t)c->kv_dim, v = (uint64_t)c->vocab;
    uint64_t n = v * d                                            /* token_embedding_table */
                 + L * d                                          /* rms_att_weight */
                 + L * d * d + 2 * L * d * kv                     /* wq, wk, wv */
                 + L * d * d                                      /* wo */
                 + L * d                                          /* rms_ffn_weight */
                 + 3 * L * d * h                                  /* w1, w2, w3 */
                 + d                                              /* rms_final_weight */
                 + (uint64_t)c->seq_len * (uint64_t)c->head_size; /* freq_cis_real + imag */
    if (!c->shared) n += v * d;                                   /* wcls */
    return n;
}

/* Maps the checkpoint read-only. *map / *size describe the mapping (munmap when done). */
static rk_status map_file(const char *path, const uint8_t **map, size_t *size, rk_error *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return rk_error_set(err, RK_ERR_IO, "convert: cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return rk_error_set(err, RK_ERR_IO, "convert: '%s' is not a regular file", path);
    }
    *size = (size_t)st.st_size;
    *map = NULL;
    if (*size == 0) {
        close(fd);
        return rk_error_set(err, RK_ERR_FORMAT, "convert: '%s' is empty", path);
    }
    void *m = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED)
        return rk_error_set(err, RK_ERR_IO, "convert: cannot map '%s': %s", path, strerror(e));
    *map = m;
    return RK_OK;
}

/* ---- tokenizer ---- */

static void vocab_free(l2c_vocab *v) {
    if (v->text)
        for (int32_t i = 0; i < v->n; i++)
            free(v->text[i]);
    free(v->text);
    free(v->len);
    free(v->score);
    free(v->type);
    memset(v, 0, sizeof *v);
}

static char *read_small_file(const char *path, size_t *out_size, rk_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        rk_error_set(err, RK_ERR_IO, "convert: cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    char *buf = NULL;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (1 << 30)) {
        rk_error_set(err, RK_ERR_IO, "convert: '%s' is not a regular file of at most 1 GiB", path);
    } else if (!(buf = malloc((size_t)st.st_size + 1))) {
        rk_error_set(err, RK_ERR_NO_MEMORY, "convert: out of memory reading '%s'", path);
    } else if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        rk_error_set(err, RK_ERR_IO, "convert: short read on '%s'", path);
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) *out_size = (size_t)st.st_size;
    return buf;
}

/* Replaces ' ' by U+2581 (what SentencePiece stores) and NUL-terminates. */
static char *escape_spaces(const char *s, size_t n, size_t *out_len) {
    size_t spaces = 0;
    for (size_t i = 0; i < n; i++)
        spaces += s[i] == ' ';
    char *t = malloc(n + 2 * spaces + 1), *q = t;
    if (!t) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            memcpy(q, "\xe2\x96\x81", 3);
            q += 3;
        } else
            *q++ = s[i];
    }
    *q = '\0';
    *out_len = (size_t)(q - t);
    return t;
}

static int is_byte_token(const char *s, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    return n == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' && s[3] && s[4] && strchr(hex, s[3]) &&
           strchr(hex, s[4]);
}

/* One token: its text (escaped, with llama2.c's BOS/EOS spellings undone) and type. */
static rk_status add_token(l2c_vocab *v, int32_t id, const char *s, size_t n, rk_error *err) {
    const char *fixed = id == 0 ? "<unk>" : id == 1 ? "<s>" : id == 2 ? "</s>" : NULL;
    v->type[id] = id == 0 ? 2 : id <= 2 ? 3 : n == 0 ? 3 : is_byte_token(s, n) ? 6 : 1;
    if (fixed) {
        s = fixed;
        n = strlen(fixed);
    }
    if (!(v->text[id] = escape_spaces(s, n, &v->len[id])))
        return rk_error_set(err, RK_ERR_NO_MEMORY, "convert: out of memory");
    return RK_OK;
}

static rk_status parse_vocab(const char *path, const uint8_t *p, size_t size, int32_t n_vocab,
                             l2c_vocab *v, rk_error *err) {
    memset(v, 0, sizeof *v);
    if (size < 4)
        return rk_error_set(err, RK_ERR_FORMAT, "convert: tokenizer '%s' is %zu bytes, too short",
                            path, size);
    int32_t max_len;
    memcpy(&max_len, p, 4);
    if (max_len < 1 || max_len > (1 << 16))
        return rk_error_set(err, RK_ERR_FORMAT,
                            "convert: tokenizer '%s': max_token_length %d is outside [1, 65536]",
                            path, max_len);
    v->n = n_vocab;
    v->text = calloc((size_t)n_vocab, sizeof *v->text);
    v->len = calloc((size_t)n_vocab, sizeof *v->len);
    v->score = calloc((size_t)n_vocab, sizeof *v->score);
    v->type = calloc((size_t)n_vocab, sizeof *v->type);
    if (!v->text || !v->len || !v->score || !v->type)
        return rk_error_set(err, RK_ERR_NO_MEMORY, "convert: out of memory for %d tokens", n_vocab);
    size_t pos = 4;
    for (int32_t id = 0; id < n_vocab; id++) {
        int32_t len;
        if (size - pos < 8)
            return rk_error_set(
                err, RK_ERR_FORMAT,
                "convert: tokenizer '%s' ends at token %d but the checkpoint has %d tokens", path,
                id, n_vocab);
        memcpy(&v->score[id], p + pos, 4);
        memcpy(&len, p + pos + 4, 4);
        pos += 8;
        if (!isfinite(v->score[id]))
            return rk_error_set(err, RK_ERR_FORMAT,
                                "convert: tokenizer '%s': token %d has a non-finite score", path,
                                id);
        if (len < 0 || len > max_len || (size_t)len > size - pos)
            return rk_error_set(err, RK_ERR_FORMAT,
                                "convert: tokenizer '%s': token %d has length %d (max_token_length "
                                "%d, %zu bytes left)",
                                path, id, len, max_len, size - pos);
        rk_status s = add_token(v, id, (const char *)p + pos, (size_t)len, err);
        if (s != RK_OK) return s;
        pos += (size_t)len;
    }
    if (pos != size)
        return rk_error_set(
            err, RK_ERR_FORMAT,
            "convert: tokenizer '%s' has %zu bytes after its %d tokens: it does not match the "
            "checkpoint's vocab_size %d",
            path, size - pos, n_vocab, n_vocab);
    return RK_OK;
}

/* ---- GGUF ---- */

static void add_hparams(rk_gguf_writer *w, const l2c_config *c, const char *name) {
    rk_gguf_writer_add_str(w, "general.architecture", "llama");
    rk_gguf_writer_add_str(w, "general.name", name);
    rk_gguf_writer_add_u32(w, "general.file_type", 0); /* all F32 */
    rk_gguf_writer_add_u32(w, "llama.vocab_size", (uint32_t)c->vocab);
    rk_gguf_writer_add_u32(w, "llama.context_length", (uint32_t)c->seq_len);
    rk_gguf_writer_add_u32(w, "llama.embedding_length", (uint32_t)c->dim);
    rk_gguf_writer_add_u32(w, "llama.feed_forward_length", (uint32_t)c->hidden);
    rk_gguf_writer_add_u32(w, "llama.block_count", (uint32_t)c->n_layers);
    rk_gguf_writer_add_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads);
    rk_gguf_writer_add_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    rk_gguf_writer_add_u32(w, "llama.rope.dimension_count", (uint32_t)c->head_size);
    rk_gguf_writer_add_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    rk_gguf_writer_add_f32(w, "llama.rope.freq_base", 10000.0f);
}

static void add_vocab(rk_gguf_writer *w, const l2c_vocab *v) {
    rk_gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
    rk_gguf_writer_add_str_array(w, "tokenizer.ggml.tokens", (const char *const *)v->text, v->len,
                                 (size_t)v->n);
    rk_gguf_writer_add_f32_array(w, "tokenizer.ggml.scores", v->score, (size_t)v->n);
    rk_gguf_writer_add_i32_array(w, "tokenizer.ggml.token_type", v->type, (size_t)v->n);
    rk_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1);
    rk_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2);
    rk_gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    rk_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true);
    rk_gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", false);
    rk_gguf_writer_add_bool(w, "tokenizer.ggml.add_space_prefix", true);
}

/* Adds tensor `name` with shape {ne0, ne1} (ne1 = 0: a vector) taken from *cur, advancing it. */
static void take(rk_gguf_writer *w, const char *name, const float **cur, int64_t ne0, int64_t ne1) {
    int64_t ne[2] = {ne0, ne1};
    size_t n = (size_t)ne0 * (size_t)(ne1 ? ne1 : 1);
    rk_gguf_writer_add_tensor(w, name, RK_TYPE_F32, ne1 ? 2 : 1, ne, *cur, n * sizeof(float));
    *cur += n;
}

/* Per-layer tensors of one llama2.c section (all layers are stored one after another). */
static void take_layers(rk_gguf_writer *w, const l2c_config *c, const char *suffix,
                        const float **cur, int64_t ne0, int64_t ne1) {
    char name[96];
    for (int64_t l = 0; l < c->n_layers; l++) {
        snprintf(name, sizeof name, "blk.%lld.%s.weight", (long long)l, suffix);
        take(w, name, cur, ne0, ne1);
    }
}

static void add_tensors(rk_gguf_writer *w, const l2c_config *c, const float *f) {
    int64_t d = c->dim, h = c->hidden, kv = c->kv_dim;
    const float *cur = f;
    take(w, "token_embd.weight", &cur, d, c->vocab);
    take_layers(w, c, "attn_norm", &cur, d, 0);
    take_layers(w, c, "attn_q", &cur, d, d);
    take_layers(w, c, "attn_k", &cur, d, kv);
    take_layers(w, c, "attn_v", &cur, d, kv);
    take_layers(w, c, "attn_output", &cur, d, d);
    take_layers(w, c, "ffn_norm", &cur, d, 0);
    take_layers(w, c, "ffn_gate", &cur, d, h); /* w1 */
    take_layers(w, c, "ffn_down", &cur, h, d); /* w2 */
    take_layers(w, c, "ffn_up", &cur, d, h);   /* w3 */
    take(w, "output_norm.weight", &cur, d, 0);
    cur += (size_t)c->seq_len * (size_t)c->head_size; /* freq_cis_real, freq_cis_imag */
    if (!c->shared) take(w, "output.weight", &cur, d, c->vocab);
}

/* The file name without directory and extension ("stories260K"). */
static void default_name(const char *path, char *buf, size_t size) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(buf, size, "%s", base);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf) *dot = '\0';
}

rk_status rk_convert_llama2c(const char *checkpoint, const char *tokenizer, const char *out,
                             const char *name, rk_error *err) {
    const uint8_t *map = NULL;
    size_t map_size = 0, tok_size = 0;
    char *tok = NULL, name_buf[256];
    l2c_config c = {0};
    l2c_vocab v = {0};
    rk_gguf_writer *w = NULL;
    rk_status s = map_file(checkpoint, &map, &map_size, err);
    if (s == RK_OK) s = parse_config(checkpoint, map, map_size, &c, err);
    if (s == RK_OK) {
        uint64_t want = HEADER_BYTES + 4 * expected_floats(&c);
        if ((uint64_t)map_size != want)
            s = rk_error_set(
                err, RK_ERR_FORMAT,
                "convert: '%s' is %zu bytes but its header (dim %lld, hidden %lld, %lld layers, "
                "%lld/%lld heads, vocab %lld %s, seq_len %lld) implies %llu bytes",
                checkpoint, map_size, (long long)c.dim, (long long)c.hidden, (long long)c.n_layers,
                (long long)c.n_heads, (long long)c.n_kv_heads, (long long)c.vocab,
                c.shared ? "shared" : "unshared", (long long)c.seq_len, (unsigned long long)want);
    }
    if (s == RK_OK && !(tok = read_small_file(tokenizer, &tok_size, err)))
        s = err ? err->code : RK_ERR_IO;
    if (s == RK_OK)
        s = parse_vocab(tokenizer, (const uint8_t *)tok, tok_size, (int32_t)c.vocab, &v, err);
    if (s == RK_OK) s = rk_gguf_writer_create(&w, err);
    if (s == RK_OK) {
        if (!name) default_name(checkpoint, name_buf, sizeof name_buf);
        add_hparams(w, &c, name ? name : name_buf);
        add_vocab(w, &v);
        add_tensors(w, &c, (const float *)(map + HEADER_BYTES));
        s = rk_gguf_writer_write_file(w, out, err); /* reports the writer's first error, if any */
    }
    rk_gguf_writer_free(w);
    vocab_free(&v);
    free(tok);
    if (map) munmap((void *)map, map_size);
    return s;
}

/* ---- command line ---- */

static void usage(FILE *f) {
    fprintf(f,
            "usage: ringkv convert --llama2c CHECKPOINT.bin --tokenizer TOKENIZER.bin -o OUT.gguf "
            "[--name NAME]\n"
            "  converts a llama2.c checkpoint (legacy format, fp32) and its tokenizer.bin into a\n"
            "  GGUF file (architecture llama, all tensors F32)\n"
            "  --name NAME   general.name (default: the checkpoint's file name)\n");
}

int rk_cmd_convert(int argc, char **argv) {
    const char *ckpt = NULL, *tok = NULL, *out = NULL, *name = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = !strcmp(a, "--llama2c")                        ? &ckpt
                           : !strcmp(a, "--tokenizer")                    ? &tok
                           : (!strcmp(a, "-o") || !strcmp(a, "--output")) ? &out
                           : !strcmp(a, "--name")                         ? &name
                                                                          : NULL;
        if (dst && i + 1 < argc) {
            *dst = argv[++i];
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "ringkv convert: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!ckpt || !tok || !out) {
        fprintf(stderr, "ringkv convert: --llama2c, --tokenizer and -o are required\n");
        usage(stderr);
        return 2;
    }
    rk_error err;
    rk_error_clear(&err);
    if (rk_convert_llama2c(ckpt, tok, out, name, &err) != RK_OK) {
        int own = strncmp(err.msg, "convert: ", 9) == 0;
        fprintf(stderr, "ringkv %s%s\n", own ? "" : "convert: ", err.msg);
        return 1;
    }
    fprintf(stderr, "ringkv convert: wrote '%s'\n", out);
    return 0;
}
