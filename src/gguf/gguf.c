/*
 * gguf.c — the validating GGUF reader (see gguf.h for the contract).
 *
 * Parsing walks the header with a bounds-checked cursor: every read first checks that the
 * bytes exist, every count is checked against what the remaining bytes could possibly hold
 * before anything is allocated, and every tensor's extent is checked against the data section.
 * Metadata is copied out of the mapping; tensor data is not.
 */
#include "gguf/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_STRING (1u << 30)   /* 1 GiB: longer strings are refused as hostile */

typedef struct gguf_kv {
    char *key;
    rk_gguf_vtype type;
    union {
        uint64_t u;
        int64_t i;
        double f;
    } num;           /* scalars: integers, bool, floats */
    char *str;       /* RK_GGUF_STRING */
    uint64_t str_len;
    rk_gguf_array arr; /* RK_GGUF_ARRAY; pointers below own the memory */
    void *arr_data;
    char **arr_strs;
    uint64_t *arr_lens;
} gguf_kv;

struct rk_gguf {
    const uint8_t *base;  /* the whole file */
    size_t size;
    int mapped;           /* 1 when base is our mmap */
    uint32_t version;
    uint32_t alignment;
    int64_t n_kv;
    gguf_kv *kvs;
    int64_t n_tensors;
    rk_gguf_tensor *tensors;
    char **tensor_names;
};

/* ---- bounds-checked cursor ---- */

typedef struct cursor {
    const uint8_t *p;
    size_t size;
    size_t pos;
    rk_error *err;
} cursor;

static rk_status need(cursor *c, size_t n, const char *what) {
    if (n > c->size - c->pos)
        return rk_error_set(c->err, RK_ERR_FORMAT,
                            "gguf: truncated file: %s needs %zu bytes at offset %zu (size %zu)",
                            what, n, c->pos, c->size);
    return RK_OK;
}

static rk_status read_bytes(cursor *c, void *dst, size_t n, const char *what) {
    rk_status s = need(c, n, what);
    if (s) return s;
    memcpy(dst, c->p + c->pos, n);
    c->pos += n;
    return RK_OK;
}

static rk_status read_u32(cursor *c, uint32_t *v, const char *what) {
    return read_bytes(c, v, 4, what);
}

static rk_status read_u64(cursor *c, uint64_t *v, const char *what) {
    return read_bytes(c, v, 8, what);
}

/* Reads a GGUF string into a fresh NUL-terminated buffer. */
static rk_status read_string(cursor *c, char **out, uint64_t *out_len, const char *what) {
    uint64_t len;
    rk_status s = read_u64(c, &len, what);
    if (s) return s;
    if (len > GGUF_MAX_STRING || len > c->size - c->pos)
        return rk_error_set(c->err, RK_ERR_FORMAT,
                            "gguf: %s: string length %llu at offset %zu exceeds the file (size %zu)",
                            what, (unsigned long long)len, c->pos, c->size);
    char *str = malloc(len + 1);
    if (!str) return rk_error_set(c->err, RK_ERR_NO_MEMORY, "gguf: %s: out of memory", what);
    memcpy(str, c->p + c->pos, len);
    str[len] = '\0';
    c->pos += len;
    *out = str;
    if (out_len) *out_len = len;
    return RK_OK;
}

static size_t vtype_size(rk_gguf_vtype t) {
    switch (t) {
    case RK_GGUF_UINT8: case RK_GGUF_INT8: case RK_GGUF_BOOL: return 1;
    case RK_GGUF_UINT16: case RK_GGUF_INT16: return 2;
    case RK_GGUF_UINT32: case RK_GGUF_INT32: case RK_GGUF_FLOAT32: return 4;
    case RK_GGUF_UINT64: case RK_GGUF_INT64: case RK_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

const char *rk_gguf_vtype_name(rk_gguf_vtype type) {
    static const char *names[RK_GGUF_VTYPE_COUNT] = {
        "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64",
        "f64"};
    return (unsigned)type < RK_GGUF_VTYPE_COUNT ? names[type] : "?";
}

/* Decodes a scalar of type t at p into kv->num. */
static void decode_scalar(rk_gguf_vtype t, const uint8_t *p, gguf_kv *kv) {
    uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; float f32;
    switch (t) {
    case RK_GGUF_UINT8: case RK_GGUF_BOOL: memcpy(&u8, p, 1); kv->num.u = u8; break;
    case RK_GGUF_INT8: memcpy(&i8, p, 1); kv->num.i = i8; break;
    case RK_GGUF_UINT16: memcpy(&u16, p, 2); kv->num.u = u16; break;
    case RK_GGUF_INT16: memcpy(&i16, p, 2); kv->num.i = i16; break;
    case RK_GGUF_UINT32: memcpy(&u32, p, 4); kv->num.u = u32; break;
    case RK_GGUF_INT32: memcpy(&i32, p, 4); kv->num.i = i32; break;
    case RK_GGUF_FLOAT32: memcpy(&f32, p, 4); kv->num.f = f32; break;
    case RK_GGUF_UINT64: memcpy(&kv->num.u, p, 8); break;
    case RK_GGUF_INT64: memcpy(&kv->num.i, p, 8); break;
    case RK_GGUF_FLOAT64: memcpy(&kv->num.f, p, 8); break;
    default: break;
    }
}

static rk_status read_array(cursor *c, gguf_kv *kv) {
    uint32_t et;
    uint64_t n;
    rk_status s = read_u32(c, &et, kv->key);
    if (!s) s = read_u64(c, &n, kv->key);
    if (s) return s;
    if (et >= RK_GGUF_VTYPE_COUNT || et == RK_GGUF_ARRAY)
        return rk_error_set(c->err, RK_ERR_FORMAT, "gguf: key '%s': invalid array element type %u",
                            kv->key, et);
    kv->arr.elem_type = (rk_gguf_vtype)et;
    kv->arr.n = n;
    if (et == RK_GGUF_STRING) {
        /* each string needs at least its 8-byte length */
        if (n > (c->size - c->pos) / 8)
            return rk_error_set(c->err, RK_ERR_FORMAT,
                                "gguf: key '%s': array of %llu strings exceeds the file",
                                kv->key, (unsigned long long)n);
        kv->arr_strs = calloc(n ? n : 1, sizeof *kv->arr_strs);
        kv->arr_lens = calloc(n ? n : 1, sizeof *kv->arr_lens);
        if (!kv->arr_strs || !kv->arr_lens)
            return rk_error_set(c->err, RK_ERR_NO_MEMORY, "gguf: key '%s': out of memory", kv->key);
        for (uint64_t i = 0; i < n; i++) {
            s = read_string(c, &kv->arr_strs[i], &kv->arr_lens[i], kv->key);
            if (s) return s;
        }
        kv->arr.strs = (const char *const *)kv->arr_strs;
        kv->arr.lens = kv->arr_lens;
        return RK_OK;
    }
    size_t es = vtype_size((rk_gguf_vtype)et);
    if (n > (c->size - c->pos) / es)
        return rk_error_set(c->err, RK_ERR_FORMAT,
                            "gguf: key '%s': array of %llu x %s exceeds the file", kv->key,
                            (unsigned long long)n, rk_gguf_vtype_name((rk_gguf_vtype)et));
    kv->arr_data = malloc(n ? n * es : 1);
    if (!kv->arr_data)
        return rk_error_set(c->err, RK_ERR_NO_MEMORY, "gguf: key '%s': out of memory", kv->key);
    memcpy(kv->arr_data, c->p + c->pos, n * es);
    c->pos += n * es;
    kv->arr.data = kv->arr_data;
    return RK_OK;
}

static rk_status read_kv(cursor *c, gguf_kv *kv, int64_t index) {
    char what[64];
    snprintf(what, sizeof what, "key #%lld", (long long)index);
    rk_status s = read_string(c, &kv->key, NULL, what);
    if (s) return s;
    uint32_t t;
    s = read_u32(c, &t, kv->key);
    if (s) return s;
    if (t >= RK_GGUF_VTYPE_COUNT)
        return rk_error_set(c->err, RK_ERR_FORMAT, "gguf: key '%s': invalid value type %u",
                            kv->key, t);
    kv->type = (rk_gguf_vtype)t;
    if (t == RK_GGUF_STRING) return read_string(c, &kv->str, &kv->str_len, kv->key);
    if (t == RK_GGUF_ARRAY) return read_array(c, kv);
    size_t es = vtype_size(kv->type);
    s = need(c, es, kv->key);
    if (s) return s;
    decode_scalar(kv->type, c->p + c->pos, kv);
    if (t == RK_GGUF_BOOL && kv->num.u > 1)
        return rk_error_set(c->err, RK_ERR_FORMAT, "gguf: key '%s': bool value %llu is not 0 or 1",
                            kv->key, (unsigned long long)kv->num.u);
    c->pos += es;
    return RK_OK;
}

static rk_status read_tensor_info(cursor *c, rk_gguf *g, int64_t i) {
    rk_gguf_tensor *t = &g->tensors[i];
    char what[64];
    snprintf(what, sizeof what, "tensor #%lld name", (long long)i);
    rk_status s = read_string(c, &g->tensor_names[i], NULL, what);
    if (s) return s;
    const char *name = g->tensor_names[i];
    t->name = name;
    uint32_t n_dims;
    s = read_u32(c, &n_dims, name);
    if (s) return s;
    if (n_dims < 1 || n_dims > RK_GGUF_MAX_DIMS)
        return rk_error_set(c->err, RK_ERR_FORMAT, "gguf: tensor '%s': %u dimensions (1..%d allowed)",
                            name, n_dims, RK_GGUF_MAX_DIMS);
    t->n_dims = (int32_t)n_dims;
    uint64_t n_elem = 1;
    for (int d = 0; d < RK_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        uint64_t ne;
        s = read_u64(c, &ne, name);
        if (s) return s;
        if (ne == 0 || ne > (uint64_t)INT64_MAX / n_elem)
            return rk_error_set(c->err, RK_ERR_FORMAT,
                                "gguf: tensor '%s': dimension %u has invalid size %llu", name, d,
                                (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
        n_elem *= ne;
    }
    s = read_u32(c, &t->type, name);
    if (!s) s = read_u64(c, &t->offset, name);
    if (s) return s;
    const rk_type_info *info = rk_type_get_info(t->type);
    if (!info)
        return rk_error_set(c->err, RK_ERR_UNSUPPORTED, "gguf: tensor '%s': unknown tensor type %u",
                            name, t->type);
    if (t->ne[0] % info->block_size != 0)
        return rk_error_set(c->err, RK_ERR_FORMAT,
                            "gguf: tensor '%s': row of %lld elements is not a multiple of the %s "
                            "block size %d",
                            name, (long long)t->ne[0], info->name, info->block_size);
    uint64_t blocks = n_elem / (uint64_t)info->block_size;
    if (blocks > SIZE_MAX / (uint64_t)info->block_bytes)
        return rk_error_set(c->err, RK_ERR_FORMAT, "gguf: tensor '%s': size overflows", name);
    t->nbytes = (size_t)(blocks * (uint64_t)info->block_bytes);
    return RK_OK;
}

static rk_status find_alignment(rk_gguf *g, rk_error *err) {
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t i = rk_gguf_find_key(g, "general.alignment");
    if (i < 0) return RK_OK;
    const gguf_kv *kv = &g->kvs[i];
    if (kv->type != RK_GGUF_UINT32 || kv->num.u == 0 || (kv->num.u & (kv->num.u - 1)) != 0)
        return rk_error_set(err, RK_ERR_FORMAT,
                            "gguf: key 'general.alignment' must be a u32 power of two");
    g->alignment = (uint32_t)kv->num.u;
    return RK_OK;
}

/* Checks that tensor names are unique, data lies inside the file and is aligned. */
static rk_status place_tensors(rk_gguf *g, size_t data_start, rk_error *err) {
    size_t data_size = data_start <= g->size ? g->size - data_start : 0;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        rk_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment != 0)
            return rk_error_set(err, RK_ERR_FORMAT,
                                "gguf: tensor '%s': offset %llu is not a multiple of the alignment %u",
                                t->name, (unsigned long long)t->offset, g->alignment);
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return rk_error_set(err, RK_ERR_FORMAT,
                                "gguf: tensor '%s': data [%llu, +%zu) past end of data section "
                                "(size %zu): file truncated?",
                                t->name, (unsigned long long)t->offset, t->nbytes, data_size);
        t->data = g->base + data_start + t->offset;
    }
    /* Duplicate names: O(n^2) is fine for a few thousand tensors; bound it for hostile files. */
    if (g->n_tensors <= 65536) {
        for (int64_t i = 0; i < g->n_tensors; i++)
            for (int64_t j = i + 1; j < g->n_tensors; j++)
                if (strcmp(g->tensors[i].name, g->tensors[j].name) == 0)
                    return rk_error_set(err, RK_ERR_FORMAT, "gguf: tensor '%s' appears twice",
                                        g->tensors[i].name);
    }
    return RK_OK;
}

static rk_status parse(rk_gguf *g, rk_error *err) {
    cursor c = {g->base, g->size, 0, err};
    char magic[4];
    rk_status s = read_bytes(&c, magic, 4, "magic");
    if (s) return rk_error_set(err, RK_ERR_FORMAT, "gguf: file too small to be GGUF (%zu bytes)",
                               g->size);
    if (memcmp(magic, "GGUF", 4) != 0)
        return rk_error_set(err, RK_ERR_FORMAT, "gguf: bad magic (not a GGUF file)");
    if ((s = read_u32(&c, &g->version, "version"))) return s;
    if (g->version != 2 && g->version != 3)
        return rk_error_set(err, RK_ERR_UNSUPPORTED, "gguf: version %u (2 and 3 are supported)",
                            g->version);
    uint64_t n_tensors, n_kv;
    if ((s = read_u64(&c, &n_tensors, "tensor count")) || (s = read_u64(&c, &n_kv, "kv count")))
        return s;
    /* A kv needs >= 12 bytes, a tensor info >= 24: refuse counts the file cannot hold. */
    if (n_kv > (g->size - c.pos) / 12 || n_tensors > (g->size - c.pos) / 24)
        return rk_error_set(err, RK_ERR_FORMAT,
                            "gguf: header claims %llu keys and %llu tensors, more than the file holds",
                            (unsigned long long)n_kv, (unsigned long long)n_tensors);
    g->kvs = calloc(n_kv ? n_kv : 1, sizeof *g->kvs);
    g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
    g->tensor_names = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensor_names);
    if (!g->kvs || !g->tensors || !g->tensor_names)
        return rk_error_set(err, RK_ERR_NO_MEMORY, "gguf: out of memory");
    for (uint64_t i = 0; i < n_kv; i++) {
        g->n_kv = (int64_t)i + 1; /* so close() frees what was read */
        if ((s = read_kv(&c, &g->kvs[i], (int64_t)i))) return s;
    }
    for (uint64_t i = 0; i < n_tensors; i++) {
        g->n_tensors = (int64_t)i + 1;
        if ((s = read_tensor_info(&c, g, (int64_t)i))) return s;
    }
    if ((s = find_alignment(g, err))) return s;
    size_t data_start = c.pos + (g->alignment - c.pos % g->alignment) % g->alignment;
    if (g->n_tensors > 0 && data_start > g->size)
        return rk_error_set(err, RK_ERR_FORMAT, "gguf: data section starts past end of file");
    return place_tensors(g, data_start, err);
}

static rk_status open_image(const void *data, size_t size, int mapped, rk_gguf **out,
                            rk_error *err) {
    *out = NULL;
    rk_gguf *g = calloc(1, sizeof *g);
    if (!g) return rk_error_set(err, RK_ERR_NO_MEMORY, "gguf: out of memory");
    g->base = data;
    g->size = size;
    g->mapped = mapped;
    rk_status s = parse(g, err);
    if (s) {
        rk_gguf_close(g);
        return s;
    }
    *out = g;
    return RK_OK;
}

rk_status rk_gguf_open_memory(const void *data, size_t size, rk_gguf **out, rk_error *err) {
    if (!out || (!data && size))
        return rk_error_set(err, RK_ERR_INVALID_ARG, "gguf: NULL argument");
    return open_image(data, size, 0, out, err);
}

rk_status rk_gguf_open(const char *path, rk_gguf **out, rk_error *err) {
    if (!path || !out) return rk_error_set(err, RK_ERR_INVALID_ARG, "gguf: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return rk_error_set(err, RK_ERR_IO, "gguf: cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return rk_error_set(err, RK_ERR_IO, "gguf: '%s' is not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (size == 0) {
        close(fd);
        return rk_error_set(err, RK_ERR_FORMAT, "gguf: '%s' is empty", path);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return rk_error_set(err, RK_ERR_IO, "gguf: cannot map '%s': %s", path, strerror(errno));
    rk_status s = open_image(map, size, 1, out, err);
    if (s) return rk_error_prefix(err, s, "%s", path);
    return RK_OK;
}

rk_status rk_gguf_evict_pages(const rk_gguf *g, rk_error *err) {
    if (!g || !g->mapped) return rk_error_set(err, RK_ERR_UNSUPPORTED, "gguf: the file is not memory-mapped");
#ifdef MADV_PAGEOUT
    void *base = (void *)g->base;
    if (madvise(base, g->size, MADV_PAGEOUT) != 0 || madvise(base, g->size, MADV_RANDOM) != 0)
        return rk_error_set(err, RK_ERR_UNSUPPORTED, "gguf: madvise: %s", strerror(errno));
    return RK_OK;
#else
    return rk_error_set(err, RK_ERR_UNSUPPORTED, "gguf: this system has no MADV_PAGEOUT");
#endif
}

void rk_gguf_close(rk_gguf *g) {
    if (!g) return;
    for (int64_t i = 0; i < g->n_kv; i++) {
        gguf_kv *kv = &g->kvs[i];
        free(kv->key);
        free(kv->str);
        free(kv->arr_data);
        if (kv->arr_strs)
            for (uint64_t j = 0; j < kv->arr.n; j++) free(kv->arr_strs[j]);
        free(kv->arr_strs);
        free(kv->arr_lens);
    }
    free(g->kvs);
    if (g->tensor_names)
        for (int64_t i = 0; i < g->n_tensors; i++) free(g->tensor_names[i]);
    free(g->tensor_names);
    free(g->tensors);
    if (g->mapped) munmap((void *)g->base, g->size);
    free(g);
}

uint32_t rk_gguf_version(const rk_gguf *g) { return g->version; }
size_t rk_gguf_file_size(const rk_gguf *g) { return g->size; }
int64_t rk_gguf_kv_count(const rk_gguf *g) { return g->n_kv; }
const char *rk_gguf_kv_key(const rk_gguf *g, int64_t i) { return g->kvs[i].key; }
rk_gguf_vtype rk_gguf_kv_type(const rk_gguf *g, int64_t i) { return g->kvs[i].type; }
int64_t rk_gguf_tensor_count(const rk_gguf *g) { return g->n_tensors; }
const rk_gguf_tensor *rk_gguf_tensor_at(const rk_gguf *g, int64_t i) { return &g->tensors[i]; }

int64_t rk_gguf_find_key(const rk_gguf *g, const char *key) {
    for (int64_t i = 0; i < g->n_kv; i++)
        if (strcmp(g->kvs[i].key, key) == 0) return i;
    return -1;
}

const rk_gguf_tensor *rk_gguf_find_tensor(const rk_gguf *g, const char *name) {
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

/* ---- typed getters ---- */

static rk_status lookup(const rk_gguf *g, const char *key, const gguf_kv **kv, rk_error *err) {
    int64_t i = rk_gguf_find_key(g, key);
    if (i < 0) return rk_error_set(err, RK_ERR_INVALID_ARG, "gguf: key '%s' not found", key);
    *kv = &g->kvs[i];
    return RK_OK;
}

static int is_signed_int(rk_gguf_vtype t) {
    return t == RK_GGUF_INT8 || t == RK_GGUF_INT16 || t == RK_GGUF_INT32 || t == RK_GGUF_INT64;
}

static int is_unsigned_int(rk_gguf_vtype t) {
    return t == RK_GGUF_UINT8 || t == RK_GGUF_UINT16 || t == RK_GGUF_UINT32 || t == RK_GGUF_UINT64;
}

rk_status rk_gguf_get_i64(const rk_gguf *g, const char *key, int64_t *out, rk_error *err) {
    const gguf_kv *kv = NULL;
    rk_status s = lookup(g, key, &kv, err);
    if (s) return s;
    if (is_signed_int(kv->type)) {
        *out = kv->num.i;
        return RK_OK;
    }
    if (is_unsigned_int(kv->type) && kv->num.u <= (uint64_t)INT64_MAX) {
        *out = (int64_t)kv->num.u;
        return RK_OK;
    }
    return rk_error_set(err, RK_ERR_FORMAT, "gguf: key '%s' is %s, expected an integer", key,
                        rk_gguf_vtype_name(kv->type));
}

rk_status rk_gguf_get_u32(const rk_gguf *g, const char *key, uint32_t *out, rk_error *err) {
    int64_t v;
    rk_status s = rk_gguf_get_i64(g, key, &v, err);
    if (s) return s;
    if (v < 0 || v > (int64_t)UINT32_MAX)
        return rk_error_set(err, RK_ERR_FORMAT, "gguf: key '%s' = %lld is out of range", key,
                            (long long)v);
    *out = (uint32_t)v;
    return RK_OK;
}

rk_status rk_gguf_get_f32(const rk_gguf *g, const char *key, float *out, rk_error *err) {
    const gguf_kv *kv = NULL;
    rk_status s = lookup(g, key, &kv, err);
    if (s) return s;
    if (kv->type != RK_GGUF_FLOAT32 && kv->type != RK_GGUF_FLOAT64)
        return rk_error_set(err, RK_ERR_FORMAT, "gguf: key '%s' is %s, expected a float", key,
                            rk_gguf_vtype_name(kv->type));
    *out = (float)kv->num.f;
    return RK_OK;
}

rk_status rk_gguf_get_bool(const rk_gguf *g, const char *key, bool *out, rk_error *err) {
    const gguf_kv *kv = NULL;
    rk_status s = lookup(g, key, &kv, err);
    if (s) return s;
    if (kv->type != RK_GGUF_BOOL)
        return rk_error_set(err, RK_ERR_FORMAT, "gguf: key '%s' is %s, expected a bool", key,
                            rk_gguf_vtype_name(kv->type));
    *out = kv->num.u != 0;
    return RK_OK;
}

rk_status rk_gguf_get_str(const rk_gguf *g, const char *key, const char **out, size_t *out_len,
                          rk_error *err) {
    const gguf_kv *kv = NULL;
    rk_status s = lookup(g, key, &kv, err);
    if (s) return s;
    if (kv->type != RK_GGUF_STRING)
        return rk_error_set(err, RK_ERR_FORMAT, "gguf: key '%s' is %s, expected a string", key,
                            rk_gguf_vtype_name(kv->type));
    *out = kv->str;
    if (out_len) *out_len = (size_t)kv->str_len;
    return RK_OK;
}

rk_status rk_gguf_get_u32_or(const rk_gguf *g, const char *key, uint32_t def, uint32_t *out,
                             rk_error *err) {
    if (rk_gguf_find_key(g, key) < 0) {
        *out = def;
        return RK_OK;
    }
    return rk_gguf_get_u32(g, key, out, err);
}

rk_status rk_gguf_get_f32_or(const rk_gguf *g, const char *key, float def, float *out,
                             rk_error *err) {
    if (rk_gguf_find_key(g, key) < 0) {
        *out = def;
        return RK_OK;
    }
    return rk_gguf_get_f32(g, key, out, err);
}

rk_status rk_gguf_get_bool_or(const rk_gguf *g, const char *key, bool def, bool *out,
                              rk_error *err) {
    if (rk_gguf_find_key(g, key) < 0) {
        *out = def;
        return RK_OK;
    }
    return rk_gguf_get_bool(g, key, out, err);
}

rk_status rk_gguf_get_array(const rk_gguf *g, const char *key, rk_gguf_array *out,
                            rk_error *err) {
    const gguf_kv *kv = NULL;
    rk_status s = lookup(g, key, &kv, err);
    if (s) return s;
    if (kv->type != RK_GGUF_ARRAY)
        return rk_error_set(err, RK_ERR_FORMAT, "gguf: key '%s' is %s, expected an array", key,
                            rk_gguf_vtype_name(kv->type));
    *out = kv->arr;
    return RK_OK;
}

void rk_gguf_kv_format(const rk_gguf *g, int64_t i, char *buf, size_t size) {
    const gguf_kv *kv = &g->kvs[i];
    if (kv->type == RK_GGUF_STRING) {
        size_t n = kv->str_len < 60 ? (size_t)kv->str_len : 60;
        char clip[64];
        size_t k = 0;
        for (size_t j = 0; j < n; j++) clip[k++] = (kv->str[j] == '\n') ? ' ' : kv->str[j];
        clip[k] = '\0';
        snprintf(buf, size, "\"%s\"%s", clip, kv->str_len > 60 ? "..." : "");
    } else if (kv->type == RK_GGUF_ARRAY) {
        snprintf(buf, size, "[%llu x %s]", (unsigned long long)kv->arr.n,
                 rk_gguf_vtype_name(kv->arr.elem_type));
    } else if (kv->type == RK_GGUF_FLOAT32 || kv->type == RK_GGUF_FLOAT64) {
        snprintf(buf, size, "%g", kv->num.f);
    } else if (kv->type == RK_GGUF_BOOL) {
        snprintf(buf, size, "%s", kv->num.u ? "true" : "false");
    } else if (is_signed_int(kv->type)) {
        snprintf(buf, size, "%lld", (long long)kv->num.i);
    } else {
        snprintf(buf, size, "%llu", (unsigned long long)kv->num.u);
    }
}
