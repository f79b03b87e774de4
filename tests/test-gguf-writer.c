/*
 * test-gguf-writer.c — the GGUF writer against the GGUF reader: every value type and array
 * kind round-trips, tensors land aligned with their bytes intact, errors are sticky and named,
 * and failed writes (missing directory, full disk) leave no file behind.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf/gguf-writer.h"
#include "gguf/gguf.h"
#include "test-util.h"

static const uint8_t u8s[] = {0, 1, 255};
static const int16_t i16s[] = {-32768, 0, 32767};
static const float f32s[] = {1.5f, -2.25f, 1e-30f, 3.0f};
static const int32_t i32s[] = {-7, 0, 2147483647};
static const double f64s[] = {3.141592653589793, -1e300};
static const uint8_t bools[] = {1, 0, 7}; /* 7 is written as 1 */
static const char *const strs[] = {"alpha", "", "\xe2\x96\x81hello"};
static float t_a[3] = {1, 2, 3}; /* 12 bytes: the next tensor needs padding */
static float t_b[2 * 5];         /* ne = {5, 2} */
static float t_c[2 * 3 * 4];     /* ne = {2, 3, 4} */
static uint8_t t_q[2 * 34];      /* Q8_0, ne = {64}: 2 blocks */

static rk_gguf_writer *build(void) {
    rk_gguf_writer *w = NULL;
    rk_error err;
    CHECK(rk_gguf_writer_create(&w, &err) == RK_OK);
    if (!w) return NULL;
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    CHECK(rk_gguf_writer_add_str(w, "general.architecture", "llama") == RK_OK);
    CHECK(rk_gguf_writer_add_scalar(w, "t.u8", RK_GGUF_UINT8, &u8) == RK_OK);
    CHECK(rk_gguf_writer_add_scalar(w, "t.i8", RK_GGUF_INT8, &i8) == RK_OK);
    CHECK(rk_gguf_writer_add_scalar(w, "t.u16", RK_GGUF_UINT16, &u16) == RK_OK);
    CHECK(rk_gguf_writer_add_scalar(w, "t.i16", RK_GGUF_INT16, &i16) == RK_OK);
    CHECK(rk_gguf_writer_add_u32(w, "t.u32", 4000000000u) == RK_OK);
    CHECK(rk_gguf_writer_add_i32(w, "t.i32", -2000000000) == RK_OK);
    CHECK(rk_gguf_writer_add_u64(w, "t.u64", 1234567890123ull) == RK_OK);
    CHECK(rk_gguf_writer_add_i64(w, "t.i64", -1234567890123ll) == RK_OK);
    CHECK(rk_gguf_writer_add_f32(w, "t.f32", 1e-5f) == RK_OK);
    CHECK(rk_gguf_writer_add_f64(w, "t.f64", 0.1) == RK_OK);
    CHECK(rk_gguf_writer_add_bool(w, "t.true", true) == RK_OK);
    CHECK(rk_gguf_writer_add_bool(w, "t.false", false) == RK_OK);
    CHECK(rk_gguf_writer_add_strn(w, "t.nul", "a\0b", 3) == RK_OK);
    CHECK(rk_gguf_writer_add_str(w, "t.empty", "") == RK_OK);
    CHECK(rk_gguf_writer_add_array(w, "a.u8", RK_GGUF_UINT8, u8s, 3) == RK_OK);
    CHECK(rk_gguf_writer_add_array(w, "a.i16", RK_GGUF_INT16, i16s, 3) == RK_OK);
    CHECK(rk_gguf_writer_add_f32_array(w, "a.f32", f32s, 4) == RK_OK);
    CHECK(rk_gguf_writer_add_i32_array(w, "a.i32", i32s, 3) == RK_OK);
    CHECK(rk_gguf_writer_add_array(w, "a.f64", RK_GGUF_FLOAT64, f64s, 2) == RK_OK);
    CHECK(rk_gguf_writer_add_array(w, "a.bool", RK_GGUF_BOOL, bools, 3) == RK_OK);
    CHECK(rk_gguf_writer_add_i32_array(w, "a.empty", NULL, 0) == RK_OK);
    CHECK(rk_gguf_writer_add_str_array(w, "a.str", strs, NULL, 3) == RK_OK);
    const char *nul_strs[] = {"x\0y", "z"};
    const size_t nul_lens[] = {3, 1};
    CHECK(rk_gguf_writer_add_str_array(w, "a.strn", nul_strs, nul_lens, 2) == RK_OK);

    for (size_t i = 0; i < sizeof t_b / sizeof t_b[0]; i++)
        t_b[i] = (float)i * 0.5f;
    for (size_t i = 0; i < sizeof t_c / sizeof t_c[0]; i++)
        t_c[i] = -(float)i;
    for (size_t i = 0; i < sizeof t_q; i++)
        t_q[i] = (uint8_t)(i * 7);
    int64_t ne_a[] = {3}, ne_b[] = {5, 2}, ne_c[] = {2, 3, 4}, ne_q[] = {64};
    CHECK(rk_gguf_writer_add_tensor(w, "a", RK_TYPE_F32, 1, ne_a, t_a, sizeof t_a) == RK_OK);
    CHECK(rk_gguf_writer_add_tensor(w, "blk.0.b.weight", RK_TYPE_F32, 2, ne_b, t_b, sizeof t_b) ==
          RK_OK);
    CHECK(rk_gguf_writer_add_tensor(w, "c", RK_TYPE_F32, 3, ne_c, t_c, sizeof t_c) == RK_OK);
    CHECK(rk_gguf_writer_add_tensor(w, "q", RK_TYPE_Q8_0, 1, ne_q, t_q, sizeof t_q) == RK_OK);
    CHECK(rk_gguf_writer_status(w) == RK_OK);
    return w;
}

static int64_t geti(const rk_gguf *g, const char *key) {
    int64_t v = 0;
    rk_error err;
    CHECK_MSG(rk_gguf_get_i64(g, key, &v, &err) == RK_OK, "%s: %s", key, err.msg);
    return v;
}

static void check_array(const rk_gguf *g, const char *key, rk_gguf_vtype type, const void *data,
                        size_t n, size_t elem) {
    rk_gguf_array a;
    rk_error err;
    if (rk_gguf_get_array(g, key, &a, &err) != RK_OK) {
        CHECK_MSG(0, "%s: %s", key, err.msg);
        return;
    }
    CHECK_MSG(a.elem_type == type && a.n == n, "%s: type %d n %llu", key, (int)a.elem_type,
              (unsigned long long)a.n);
    if (a.n == n && n) CHECK_MSG(memcmp(a.data, data, n * elem) == 0, "%s: contents differ", key);
}

static void check_tensor(const rk_gguf *g, const char *name, uint32_t type, int n_dims,
                         const int64_t *ne, const void *data, size_t nbytes, uint32_t align) {
    const rk_gguf_tensor *t = rk_gguf_find_tensor(g, name);
    CHECK_MSG(t != NULL, "tensor %s missing", name);
    if (!t) return;
    CHECK(t->type == type && t->n_dims == n_dims && t->nbytes == nbytes);
    for (int d = 0; d < n_dims; d++)
        CHECK(t->ne[d] == ne[d]);
    CHECK_MSG(t->offset % align == 0, "%s offset %llu", name, (unsigned long long)t->offset);
    CHECK_MSG(((uintptr_t)t->data) % align == 0 || align > 64, "%s data not aligned", name);
    CHECK(t->data && memcmp(t->data, data, nbytes) == 0);
}

static void check_image(const rk_gguf *g, uint32_t align) {
    rk_error err;
    const char *s;
    size_t len;
    uint32_t u32;
    float f;
    bool b;
    CHECK(rk_gguf_version(g) == 3);
    CHECK(rk_gguf_get_str(g, "general.architecture", &s, &len, &err) == RK_OK &&
          strcmp(s, "llama") == 0);
    CHECK(geti(g, "t.u8") == 200);
    CHECK(geti(g, "t.i8") == -100);
    CHECK(geti(g, "t.u16") == 60000);
    CHECK(geti(g, "t.i16") == -30000);
    CHECK(rk_gguf_get_u32(g, "t.u32", &u32, &err) == RK_OK && u32 == 4000000000u);
    CHECK(geti(g, "t.i32") == -2000000000);
    CHECK(geti(g, "t.u64") == 1234567890123ll);
    CHECK(geti(g, "t.i64") == -1234567890123ll);
    CHECK(rk_gguf_get_f32(g, "t.f32", &f, &err) == RK_OK && f == 1e-5f);
    CHECK(rk_gguf_get_f32(g, "t.f64", &f, &err) == RK_OK && f == 0.1f);
    CHECK(rk_gguf_get_bool(g, "t.true", &b, &err) == RK_OK && b);
    CHECK(rk_gguf_get_bool(g, "t.false", &b, &err) == RK_OK && !b);
    CHECK(rk_gguf_get_str(g, "t.nul", &s, &len, &err) == RK_OK && len == 3 &&
          memcmp(s, "a\0b", 3) == 0);
    CHECK(rk_gguf_get_str(g, "t.empty", &s, &len, &err) == RK_OK && len == 0);
    const struct {
        const char *k;
        rk_gguf_vtype t;
    } types[] = {
        {"t.u8", RK_GGUF_UINT8},    {"t.i8", RK_GGUF_INT8},    {"t.u16", RK_GGUF_UINT16},
        {"t.i16", RK_GGUF_INT16},   {"t.u32", RK_GGUF_UINT32}, {"t.i32", RK_GGUF_INT32},
        {"t.u64", RK_GGUF_UINT64},  {"t.i64", RK_GGUF_INT64},  {"t.f32", RK_GGUF_FLOAT32},
        {"t.f64", RK_GGUF_FLOAT64}, {"t.true", RK_GGUF_BOOL},  {"t.nul", RK_GGUF_STRING},
        {"a.u8", RK_GGUF_ARRAY},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        int64_t k = rk_gguf_find_key(g, types[i].k);
        CHECK_MSG(k >= 0 && rk_gguf_kv_type(g, k) == types[i].t, "%s", types[i].k);
    }
    check_array(g, "a.u8", RK_GGUF_UINT8, u8s, 3, 1);
    check_array(g, "a.i16", RK_GGUF_INT16, i16s, 3, 2);
    check_array(g, "a.f32", RK_GGUF_FLOAT32, f32s, 4, 4);
    check_array(g, "a.i32", RK_GGUF_INT32, i32s, 3, 4);
    check_array(g, "a.f64", RK_GGUF_FLOAT64, f64s, 2, 8);
    check_array(g, "a.bool", RK_GGUF_BOOL, (const uint8_t[]){1, 0, 1}, 3, 1);
    check_array(g, "a.empty", RK_GGUF_INT32, NULL, 0, 4);
    rk_gguf_array a;
    CHECK(rk_gguf_get_array(g, "a.str", &a, &err) == RK_OK && a.elem_type == RK_GGUF_STRING &&
          a.n == 3);
    if (a.n == 3)
        for (int i = 0; i < 3; i++)
            CHECK(a.lens[i] == strlen(strs[i]) && strcmp(a.strs[i], strs[i]) == 0);
    CHECK(rk_gguf_get_array(g, "a.strn", &a, &err) == RK_OK && a.n == 2);
    if (a.n == 2) CHECK(a.lens[0] == 3 && memcmp(a.strs[0], "x\0y", 3) == 0 && a.lens[1] == 1);
    CHECK(rk_gguf_get_u32(g, "general.alignment", &u32, &err) == RK_OK && u32 == align);

    CHECK(rk_gguf_tensor_count(g) == 4);
    int64_t ne_a[] = {3}, ne_b[] = {5, 2}, ne_c[] = {2, 3, 4}, ne_q[] = {64};
    check_tensor(g, "a", RK_TYPE_F32, 1, ne_a, t_a, sizeof t_a, align);
    check_tensor(g, "blk.0.b.weight", RK_TYPE_F32, 2, ne_b, t_b, sizeof t_b, align);
    check_tensor(g, "c", RK_TYPE_F32, 3, ne_c, t_c, sizeof t_c, align);
    check_tensor(g, "q", RK_TYPE_Q8_0, 1, ne_q, t_q, sizeof t_q, align);
}

static void test_round_trip_memory(void) {
    rk_gguf_writer *w = build();
    void *img = NULL;
    size_t size = 0;
    rk_error err;
    CHECK(rk_gguf_writer_write_memory(w, &img, &size, &err) == RK_OK);
    CHECK(size == rk_gguf_writer_size(w));
    CHECK(size % RK_GGUF_WRITER_ALIGNMENT == 0);
    rk_gguf *g = NULL;
    /* copy into an aligned buffer so tensor data alignment can be checked */
    void *aligned = NULL;
    CHECK(posix_memalign(&aligned, 64, size ? size : 1) == 0);
    memcpy(aligned, img, size);
    if (rk_gguf_open_memory(aligned, size, &g, &err) != RK_OK) {
        CHECK_MSG(0, "open_memory: %s", err.msg);
    } else {
        check_image(g, 32);
    }
    rk_gguf_close(g);
    free(aligned);
    free(img);
    rk_gguf_writer_free(w);
}

static void make_tmpdir(char *dir, size_t size) {
    const char *base = getenv("TMPDIR");
    snprintf(dir, size, "%s/rk-gguf-writer-XXXXXX", base && *base ? base : "/tmp");
    CHECK(mkdtemp(dir) != NULL);
}

static void test_round_trip_file(const char *dir) {
    char path[1024], tmp[1100];
    snprintf(path, sizeof path, "%s/out.gguf", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    rk_gguf_writer *w = build();
    rk_error err;
    CHECK_MSG(rk_gguf_writer_write_file(w, path, &err) == RK_OK, "%s", err.msg);
    CHECK(access(tmp, F_OK) != 0); /* renamed away */
    rk_gguf *g = NULL;
    if (rk_gguf_open(path, &g, &err) != RK_OK)
        CHECK_MSG(0, "open: %s", err.msg);
    else
        check_image(g, 32);
    rk_gguf_close(g);
    /* writing again replaces the file */
    CHECK(rk_gguf_writer_write_file(w, path, &err) == RK_OK);
    rk_gguf_writer_free(w);
    remove(path);
}

static void test_custom_alignment(void) {
    rk_gguf_writer *w = NULL;
    rk_error err;
    CHECK(rk_gguf_writer_create(&w, &err) == RK_OK);
    CHECK(rk_gguf_writer_add_u32(w, "general.alignment", 64) == RK_OK);
    float x[5] = {1, 2, 3, 4, 5};
    int64_t ne[] = {5};
    CHECK(rk_gguf_writer_add_tensor(w, "x", RK_TYPE_F32, 1, ne, x, sizeof x) == RK_OK);
    CHECK(rk_gguf_writer_add_tensor(w, "y", RK_TYPE_F32, 1, ne, x, sizeof x) == RK_OK);
    void *img;
    size_t size;
    CHECK(rk_gguf_writer_write_memory(w, &img, &size, &err) == RK_OK);
    void *aligned = NULL;
    CHECK(posix_memalign(&aligned, 64, size) == 0);
    memcpy(aligned, img, size);
    rk_gguf *g = NULL;
    CHECK_MSG(rk_gguf_open_memory(aligned, size, &g, &err) == RK_OK, "%s", err.msg);
    if (g) {
        uint32_t a = 0;
        CHECK(rk_gguf_kv_count(g) == 1);
        CHECK(rk_gguf_get_u32(g, "general.alignment", &a, &err) == RK_OK && a == 64);
        const rk_gguf_tensor *y = rk_gguf_find_tensor(g, "y");
        CHECK(y && y->offset == 64 && memcmp(y->data, x, sizeof x) == 0);
    }
    rk_gguf_close(g);
    free(aligned);
    free(img);
    rk_gguf_writer_free(w);

    CHECK(rk_gguf_writer_create(&w, &err) == RK_OK);
    CHECK(rk_gguf_writer_add_u32(w, "general.alignment", 48) == RK_ERR_INVALID_ARG);
    rk_gguf_writer_free(w);
    CHECK(rk_gguf_writer_create(&w, &err) == RK_OK);
    CHECK(rk_gguf_writer_add_str(w, "general.alignment", "32") == RK_ERR_INVALID_ARG);
    rk_gguf_writer_free(w);
}

static void test_empty(void) {
    rk_gguf_writer *w = NULL;
    rk_error err;
    CHECK(rk_gguf_writer_create(&w, &err) == RK_OK);
    void *img;
    size_t size;
    CHECK(rk_gguf_writer_write_memory(w, &img, &size, &err) == RK_OK);
    rk_gguf *g = NULL;
    CHECK_MSG(rk_gguf_open_memory(img, size, &g, &err) == RK_OK, "%s", err.msg);
    if (g) CHECK(rk_gguf_tensor_count(g) == 0 && rk_gguf_kv_count(g) == 1);
    rk_gguf_close(g);
    free(img);
    rk_gguf_writer_free(w);
}

/* The first failure sticks: later adds fail and the write reports that first message. */
static void test_sticky_errors(void) {
    rk_gguf_writer *w = NULL;
    rk_error err;
    float x[4] = {0};
    int64_t ne[] = {4}, bad_ne[] = {0}, q_ne[] = {33};
    CHECK(rk_gguf_writer_create(&w, &err) == RK_OK);
    CHECK(rk_gguf_writer_add_u32(w, "k", 1) == RK_OK);
    CHECK(rk_gguf_writer_add_u32(w, "k", 2) == RK_ERR_INVALID_ARG);
    CHECK(strstr(rk_gguf_writer_error(w), "duplicate metadata key 'k'") != NULL);
    CHECK(rk_gguf_writer_add_u32(w, "other", 2) != RK_OK);
    CHECK(rk_gguf_writer_write_file(w, "/nonexistent-never-created.gguf", &err) ==
          RK_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "duplicate metadata key 'k'") != NULL);
    CHECK(access("/nonexistent-never-created.gguf.tmp", F_OK) != 0);
    rk_gguf_writer_free(w);

    struct {
        const char *name;
        uint32_t type;
        int n_dims;
        const int64_t *ne;
        size_t nbytes;
        rk_status want;
        const char *msg;
    } cases[] = {
        {"t", RK_TYPE_F32, 1, ne, 15, RK_ERR_INVALID_ARG, "15 bytes given"},
        {"t", RK_TYPE_F32, 1, bad_ne, 0, RK_ERR_INVALID_ARG, "ne[0] = 0"},
        {"t", RK_TYPE_F32, 0, ne, 16, RK_ERR_INVALID_ARG, "0 dimensions"},
        {"t", RK_TYPE_F32, 5, ne, 16, RK_ERR_INVALID_ARG, "5 dimensions"},
        {"t", 99, 1, ne, 16, RK_ERR_UNSUPPORTED, "unknown type 99"},
        {"t", RK_TYPE_Q8_0, 1, q_ne, 34, RK_ERR_INVALID_ARG, "block size"},
        {"", RK_TYPE_F32, 1, ne, 16, RK_ERR_INVALID_ARG, "empty tensor name"},
        {"an.extremely.long.tensor.name.that.goes.on.and.on.past.sixty.four.bytes", RK_TYPE_F32, 1,
         ne, 16, RK_ERR_INVALID_ARG, "max 64"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(rk_gguf_writer_create(&w, &err) == RK_OK);
        rk_status s = rk_gguf_writer_add_tensor(w, cases[i].name, cases[i].type, cases[i].n_dims,
                                                cases[i].ne, x, cases[i].nbytes);
        CHECK_MSG(s == cases[i].want && strstr(rk_gguf_writer_error(w), cases[i].msg),
                  "case %zu: %d '%s'", i, (int)s, rk_gguf_writer_error(w));
        rk_gguf_writer_free(w);
    }
    CHECK(rk_gguf_writer_create(&w, &err) == RK_OK);
    CHECK(rk_gguf_writer_add_tensor(w, "t", RK_TYPE_F32, 1, ne, x, 16) == RK_OK);
    CHECK(rk_gguf_writer_add_tensor(w, "t", RK_TYPE_F32, 1, ne, x, 16) == RK_ERR_INVALID_ARG);
    CHECK(strstr(rk_gguf_writer_error(w), "duplicate tensor 't'") != NULL);
    rk_gguf_writer_free(w);
    CHECK(rk_gguf_writer_create(&w, &err) == RK_OK);
    CHECK(rk_gguf_writer_add_array(w, "n", RK_GGUF_ARRAY, x, 1) == RK_ERR_UNSUPPORTED);
    rk_gguf_writer_free(w);
    CHECK(rk_gguf_writer_create(&w, &err) == RK_OK);
    CHECK(rk_gguf_writer_add_scalar(w, "s", RK_GGUF_STRING, "x") == RK_ERR_INVALID_ARG);
    rk_gguf_writer_free(w);
    CHECK(rk_gguf_writer_create(&w, &err) == RK_OK);
    CHECK(rk_gguf_writer_add_str(w, "", "x") == RK_ERR_INVALID_ARG);
    rk_gguf_writer_free(w);
    rk_gguf_writer_free(NULL);
}

static void test_io_errors(const char *dir) {
    rk_gguf_writer *w = build();
    rk_error err;
    char path[1024];
    snprintf(path, sizeof path, "%s/no/such/dir/out.gguf", dir);
    CHECK(rk_gguf_writer_write_file(w, path, &err) == RK_ERR_IO);
    CHECK_MSG(strstr(err.msg, "cannot create") && strstr(err.msg, "no/such/dir/out.gguf.tmp"), "%s",
              err.msg);
    CHECK(access(path, F_OK) != 0);

    /* a full disk: every write to /dev/full fails with ENOSPC */
    FILE *f = fopen("/dev/full", "wb");
    if (f) {
        setvbuf(f, NULL, _IONBF, 0);
        CHECK(rk_gguf_writer_write_stream(w, f, &err) == RK_ERR_IO);
        CHECK_MSG(strstr(err.msg, "failed") != NULL, "%s", err.msg);
        fclose(f);
    } else {
        fprintf(stderr, "note: /dev/full missing, disk-full case skipped\n");
    }
    /* a path that is a directory: creation fails, nothing is left behind */
    char dpath[1024], tmp[1100];
    snprintf(dpath, sizeof dpath, "%s/adir", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", dpath);
    CHECK(mkdir(dpath, 0700) == 0);
    CHECK(rk_gguf_writer_write_file(w, dpath, &err) == RK_ERR_IO);
    CHECK_MSG(strstr(err.msg, "rename") != NULL, "%s", err.msg);
    CHECK(access(tmp, F_OK) != 0);
    rmdir(dpath);
    rk_gguf_writer_free(w);
}

int main(void) {
    char dir[512];
    make_tmpdir(dir, sizeof dir);
    test_round_trip_memory();
    test_round_trip_file(dir);
    test_custom_alignment();
    test_empty();
    test_sticky_errors();
    test_io_errors(dir);
    rmdir(dir);
    return rk_test_finish("test-gguf-writer");
}
