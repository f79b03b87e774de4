/*
 * test-gguf.c — the GGUF reader against real files (the shared vocabulary files, the cached
 * models) and against hostile images: every truncation point of a small valid file, bad magic
 * and version, oversized strings and counts, unknown types, misaligned or out-of-range tensor
 * data, duplicate names, and random byte flips in real headers. Each must give an error (never
 * a crash or an out-of-bounds read: run it under ASan).
 */
#include <stdint.h>
#include <string.h>

#include "gguf/gguf.h"
#include "test-util.h"

/* ---- a tiny in-memory GGUF builder ---- */

typedef struct buf {
    uint8_t data[4096];
    size_t len;
} buf;

static void put(buf *b, const void *p, size_t n) {
    memcpy(b->data + b->len, p, n);
    b->len += n;
}
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

typedef struct layout {
    size_t version_at, n_kv_at, str_len_at, arr_n_at, tensor_type_at, tensor_off_at, n_dims_at,
        dim0_at, align_val_at;
} layout;

/* A valid v3 file: 4 keys (string, u32, f32 array, alignment) and 2 F32 tensors. */
static void build_valid(buf *b, layout *L) {
    b->len = 0;
    put(b, "GGUF", 4);
    L->version_at = b->len;
    put_u32(b, 3);
    put_u64(b, 2); /* tensors */
    L->n_kv_at = b->len;
    put_u64(b, 4); /* kvs */
    put_str(b, "general.architecture");
    put_u32(b, RK_GGUF_STRING);
    L->str_len_at = b->len;
    put_str(b, "llama");
    put_str(b, "llama.block_count");
    put_u32(b, RK_GGUF_UINT32);
    put_u32(b, 2);
    put_str(b, "test.floats");
    put_u32(b, RK_GGUF_ARRAY);
    put_u32(b, RK_GGUF_FLOAT32);
    L->arr_n_at = b->len;
    put_u64(b, 3);
    float f[3] = {1.5f, -2.0f, 3.25f};
    put(b, f, sizeof f);
    put_str(b, "general.alignment");
    put_u32(b, RK_GGUF_UINT32);
    L->align_val_at = b->len;
    put_u32(b, 32);
    /* tensor a: 8 floats at offset 0; tensor b: 2x4 floats at offset 32 */
    put_str(b, "a");
    L->n_dims_at = b->len;
    put_u32(b, 1);
    L->dim0_at = b->len;
    put_u64(b, 8);
    L->tensor_type_at = b->len;
    put_u32(b, RK_TYPE_F32);
    L->tensor_off_at = b->len;
    put_u64(b, 0);
    put_str(b, "b");
    put_u32(b, 2);
    put_u64(b, 4);
    put_u64(b, 2);
    put_u32(b, RK_TYPE_F32);
    put_u64(b, 32);
    while (b->len % 32) b->data[b->len++] = 0;
    for (int i = 0; i < 16; i++) {
        float v = (float)i;
        put(b, &v, 4);
    }
}

static rk_status try_open(const buf *b, rk_error *err) {
    rk_gguf *g = NULL;
    rk_status s = rk_gguf_open_memory(b->data, b->len, &g, err);
    rk_gguf_close(g);
    return s;
}

static void test_valid(void) {
    buf b;
    layout L;
    build_valid(&b, &L);
    rk_error err;
    rk_gguf *g;
    CHECK_MSG(rk_gguf_open_memory(b.data, b.len, &g, &err) == RK_OK, "%s", err.msg);
    if (!g) return;
    CHECK(rk_gguf_version(g) == 3);
    CHECK(rk_gguf_kv_count(g) == 4);
    const char *arch;
    CHECK(rk_gguf_get_str(g, "general.architecture", &arch, NULL, &err) == RK_OK && strcmp(arch, "llama") == 0);
    uint32_t n;
    CHECK(rk_gguf_get_u32(g, "llama.block_count", &n, &err) == RK_OK && n == 2);
    CHECK(rk_gguf_get_u32(g, "missing.key", &n, &err) == RK_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "missing.key") != NULL);
    CHECK(rk_gguf_get_u32(g, "general.architecture", &n, &err) == RK_ERR_FORMAT);
    rk_gguf_array a;
    CHECK(rk_gguf_get_array(g, "test.floats", &a, &err) == RK_OK && a.n == 3 &&
          a.elem_type == RK_GGUF_FLOAT32 && ((const float *)a.data)[2] == 3.25f);
    const rk_gguf_tensor *t = rk_gguf_find_tensor(g, "b");
    CHECK(t && t->ne[0] == 4 && t->ne[1] == 2 && t->nbytes == 32);
    CHECK(t && ((const float *)t->data)[0] == 8.0f);
    CHECK(rk_gguf_find_tensor(g, "c") == NULL);
    rk_gguf_close(g);
}

/* Every proper prefix of the file must be refused. */
static void test_truncations(void) {
    buf b;
    layout L;
    build_valid(&b, &L);
    size_t full = b.len;
    rk_error err;
    for (size_t cut = 0; cut < full; cut++) {
        b.len = cut;
        rk_status s = try_open(&b, &err);
        CHECK_MSG(s == RK_ERR_FORMAT, "prefix of %zu bytes gave %d", cut, s);
    }
}

typedef struct mutation {
    const char *what;
    size_t layout_offset_index;
    uint64_t value;
    int width;            /* 4 or 8 bytes */
    rk_status expect;
    const char *msg_part; /* the message must name this */
} mutation;

static void test_mutations(void) {
    rk_error err;
    buf b;
    layout L;
    build_valid(&b, &L);
    memcpy(b.data, "GGUX", 4);
    CHECK(try_open(&b, &err) == RK_ERR_FORMAT && strstr(err.msg, "magic"));
    const struct {
        const char *what;
        size_t *at;
        uint64_t value;
        int width;
        rk_status expect;
        const char *msg_part;
    } cases[] = {
        {"version 1", &L.version_at, 1, 4, RK_ERR_UNSUPPORTED, "version"},
        {"version 4", &L.version_at, 4, 4, RK_ERR_UNSUPPORTED, "version"},
        {"huge kv count", &L.n_kv_at, UINT64_MAX, 8, RK_ERR_FORMAT, "keys"},
        {"huge string", &L.str_len_at, (uint64_t)1 << 40, 8, RK_ERR_FORMAT, "general.architecture"},
        {"huge array", &L.arr_n_at, (uint64_t)1 << 61, 8, RK_ERR_FORMAT, "test.floats"},
        {"unknown tensor type", &L.tensor_type_at, 77, 4, RK_ERR_UNSUPPORTED, "'a'"},
        {"Q4_0 row of 8", &L.tensor_type_at, RK_TYPE_Q4_0, 4, RK_ERR_FORMAT, "'a'"},
        {"misaligned offset", &L.tensor_off_at, 4, 8, RK_ERR_FORMAT, "'a'"},
        {"offset past end", &L.tensor_off_at, 1 << 20, 8, RK_ERR_FORMAT, "'a'"},
        {"zero dims", &L.n_dims_at, 0, 4, RK_ERR_FORMAT, "'a'"},
        {"five dims", &L.n_dims_at, 5, 4, RK_ERR_FORMAT, "'a'"},
        {"zero-size dim", &L.dim0_at, 0, 8, RK_ERR_FORMAT, "'a'"},
        {"huge dim", &L.dim0_at, UINT64_MAX / 2, 8, RK_ERR_FORMAT, "'a'"},
        {"alignment 3", &L.align_val_at, 3, 4, RK_ERR_FORMAT, "alignment"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        build_valid(&b, &L);
        memcpy(b.data + *cases[i].at, &cases[i].value, (size_t)cases[i].width);
        rk_status s = try_open(&b, &err);
        CHECK_MSG(s == cases[i].expect, "%s: status %d (%s)", cases[i].what, s, err.msg);
        CHECK_MSG(s == RK_OK || strstr(err.msg, cases[i].msg_part), "%s: message '%s'",
                  cases[i].what, err.msg);
    }
    /* duplicate tensor name */
    build_valid(&b, &L);
    uint8_t *second = memmem(b.data + L.tensor_off_at, b.len - L.tensor_off_at, "\x01\0\0\0\0\0\0\0b", 9);
    CHECK(second != NULL);
    if (second) {
        second[8] = 'a';
        CHECK(try_open(&b, &err) == RK_ERR_FORMAT && strstr(err.msg, "twice"));
    }
}

/* xorshift for reproducible corruption */
static uint64_t next_rand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Byte flips and truncations of a real vocabulary file's header: any status is fine,
 * crashing or reading out of bounds is not (ASan). */
static void test_real_file_corruption(const char *rel) {
    char path[1024];
    size_t size;
    char *data = rk_test_read_file(rk_test_data_path(path, sizeof path, rel), &size);
    CHECK_MSG(data != NULL, "cannot read %s", path);
    if (!data) return;
    rk_error err;
    rk_gguf *g;
    CHECK_MSG(rk_gguf_open_memory(data, size, &g, &err) == RK_OK, "%s", err.msg);
    rk_gguf_array tokens;
    CHECK(g && rk_gguf_get_array(g, "tokenizer.ggml.tokens", &tokens, &err) == RK_OK &&
          tokens.elem_type == RK_GGUF_STRING && tokens.n > 1000);
    rk_gguf_close(g);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    char *copy = malloc(size);
    int ok = 0, refused = 0;
    for (int trial = 0; trial < 300 && copy; trial++) {
        memcpy(copy, data, size);
        int flips = 1 + (int)(next_rand(&seed) % 4);
        size_t region = size < 65536 ? size : 65536; /* header and metadata */
        for (int f = 0; f < flips; f++) copy[next_rand(&seed) % region] ^= (char)(1u << (next_rand(&seed) % 8));
        size_t len = trial % 3 == 0 ? next_rand(&seed) % size : size;
        if (rk_gguf_open_memory(copy, len, &g, &err) == RK_OK) {
            ok++;
            rk_gguf_close(g);
        } else {
            refused++;
        }
    }
    fprintf(stderr, "%s: %d corrupted copies opened, %d refused\n", rel, ok, refused);
    CHECK(refused > 0);
    free(copy);
    free(data);
}

static void test_real_models(void) {
    char path[1024];
    const char *p = rk_test_model_path(path, sizeof path, "SmolLM2-135M-Instruct.Q4_1.gguf");
    if (!p) return;
    rk_error err;
    rk_gguf *g;
    CHECK_MSG(rk_gguf_open(p, &g, &err) == RK_OK, "%s", err.msg);
    if (!g) return;
    CHECK(rk_gguf_tensor_count(g) == 272);
    const rk_gguf_tensor *t = rk_gguf_find_tensor(g, "blk.0.attn_q.weight");
    CHECK(t && t->type == RK_TYPE_Q4_1 && t->ne[0] == 576 && t->ne[1] == 576);
    rk_gguf_close(g);
}

int main(void) {
    rk_error err;
    rk_gguf *g;
    CHECK(rk_gguf_open("/nonexistent/file.gguf", &g, &err) == RK_ERR_IO);
    CHECK(strstr(err.msg, "/nonexistent/file.gguf") != NULL);
    test_valid();
    test_truncations();
    test_mutations();
    test_real_file_corruption("tokenizer/ggml-vocab-llama-spm.gguf");
    test_real_file_corruption("tokenizer/ggml-vocab-gpt-2.gguf");
    test_real_models();
    return rk_test_finish("test-gguf");
}
