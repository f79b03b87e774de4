/*
 * gguf-writer.c — the GGUF v3 writer (see gguf-writer.h).
 *
 * Metadata is serialised into one growing byte buffer as it is added, so the write is a few
 * large copies: header, that buffer, tensor infos (offsets computed on the fly from the sizes
 * and the alignment), padding, then each tensor's borrowed data followed by its padding.
 * GGUF is little-endian; so is every host ringkv supports, so native values are written as is.
 */
#include "gguf/gguf-writer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#error "gguf-writer: GGUF files are little-endian; big-endian hosts are not supported"
#endif

#define GGUF_VERSION 3
static const char ALIGN_KEY[] = "general.alignment";

typedef struct wtensor {
    char *name;
    size_t name_len;
    uint32_t type;
    uint32_t n_dims;
    int64_t ne[RK_GGUF_MAX_DIMS];
    const void *data; /* borrowed */
    size_t nbytes;
} wtensor;

struct rk_gguf_writer {
    uint8_t *kv; /* serialised key/value pairs */
    size_t kv_len, kv_cap;
    char **keys; /* for duplicate detection */
    size_t n_keys, keys_cap;
    wtensor *tensors;
    size_t n_tensors, tensors_cap;
    uint32_t alignment;
    bool has_alignment_key;
    rk_error first; /* first failure; code RK_OK while none */
};

/* Records the first failure and returns its code. */
#define FAIL(w, status, ...)                                                                       \
    ((w)->first.code == RK_OK ? rk_error_set(&(w)->first, (status), __VA_ARGS__) : (status))

rk_status rk_gguf_writer_create(rk_gguf_writer **out, rk_error *err) {
    if (!out) return rk_error_set(err, RK_ERR_INVALID_ARG, "gguf-writer: out is NULL");
    *out = NULL;
    rk_gguf_writer *w = calloc(1, sizeof *w);
    if (!w) return rk_error_set(err, RK_ERR_NO_MEMORY, "gguf-writer: out of memory");
    w->alignment = RK_GGUF_WRITER_ALIGNMENT;
    rk_error_clear(&w->first);
    *out = w;
    return RK_OK;
}

void rk_gguf_writer_free(rk_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_keys; i++)
        free(w->keys[i]);
    for (size_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->keys);
    free(w->tensors);
    free(w->kv);
    free(w);
}

rk_status rk_gguf_writer_status(const rk_gguf_writer *w) {
    return w ? w->first.code : RK_ERR_INVALID_ARG;
}
const char *rk_gguf_writer_error(const rk_gguf_writer *w) {
    return w ? w->first.msg : "gguf-writer: NULL writer";
}

/* ---- serialisation into the kv buffer ---- */

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem) return false;
        c *= 2;
    }
    void *q = realloc(*p, c * elem);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

static bool kv_put(rk_gguf_writer *w, const void *p, size_t n) {
    if (n > SIZE_MAX - w->kv_len) return false;
    if (!grow((void **)&w->kv, &w->kv_cap, w->kv_len + n, 1)) return false;
    if (n) memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
    return true;
}

static bool kv_u32(rk_gguf_writer *w, uint32_t v) { return kv_put(w, &v, 4); }
static bool kv_u64(rk_gguf_writer *w, uint64_t v) { return kv_put(w, &v, 8); }
static bool kv_string(rk_gguf_writer *w, const char *s, size_t n) {
    return kv_u64(w, (uint64_t)n) && kv_put(w, s, n);
}

static size_t scalar_size(rk_gguf_vtype t) {
    switch (t) {
    case RK_GGUF_UINT8:
    case RK_GGUF_INT8:
    case RK_GGUF_BOOL: return 1;
    case RK_GGUF_UINT16:
    case RK_GGUF_INT16: return 2;
    case RK_GGUF_UINT32:
    case RK_GGUF_INT32:
    case RK_GGUF_FLOAT32: return 4;
    case RK_GGUF_UINT64:
    case RK_GGUF_INT64:
    case RK_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

/* Checks the writer and the key, remembers the key, and serialises key + value type.
 * On failure the kv buffer is unchanged. `mark` receives the buffer length before the key so
 * the caller can roll back if the value does not fit. */
static rk_status begin_kv(rk_gguf_writer *w, const char *key, rk_gguf_vtype type, size_t *mark) {
    if (w->first.code != RK_OK) return w->first.code;
    if (!key || !*key) return FAIL(w, RK_ERR_INVALID_ARG, "gguf-writer: empty metadata key");
    for (size_t i = 0; i < w->n_keys; i++)
        if (strcmp(w->keys[i], key) == 0)
            return FAIL(w, RK_ERR_INVALID_ARG, "gguf-writer: duplicate metadata key '%s'", key);
    if (type != RK_GGUF_UINT32 && strcmp(key, ALIGN_KEY) == 0)
        return FAIL(w, RK_ERR_INVALID_ARG, "gguf-writer: '%s' must be a u32 power of two",
                    ALIGN_KEY);
    char *copy = strdup(key);
    if (!copy || !grow((void **)&w->keys, &w->keys_cap, w->n_keys + 1, sizeof *w->keys)) {
        free(copy);
        return FAIL(w, RK_ERR_NO_MEMORY, "gguf-writer: out of memory adding key '%s'", key);
    }
    *mark = w->kv_len;
    if (!kv_string(w, key, strlen(key)) || !kv_u32(w, (uint32_t)type)) {
        w->kv_len = *mark;
        free(copy);
        return FAIL(w, RK_ERR_NO_MEMORY, "gguf-writer: out of memory adding key '%s'", key);
    }
    w->keys[w->n_keys++] = copy;
    return RK_OK;
}

/* Rolls back a key whose value could not be serialised. */
static rk_status abort_kv(rk_gguf_writer *w, size_t mark, const char *key) {
    w->kv_len = mark;
    free(w->keys[--w->n_keys]);
    return FAIL(w, RK_ERR_NO_MEMORY, "gguf-writer: out of memory adding key '%s'", key);
}

rk_status rk_gguf_writer_add_scalar(rk_gguf_writer *w, const char *key, rk_gguf_vtype type,
                                    const void *value) {
    if (!w) return RK_ERR_INVALID_ARG;
    size_t size = scalar_size(type);
    if (size == 0 || !value)
        return FAIL(w, RK_ERR_INVALID_ARG, "gguf-writer: key '%s': type %d is not a scalar type",
                    key ? key : "(null)", (int)type);
    uint8_t buf[8];
    memcpy(buf, value, size);
    if (type == RK_GGUF_BOOL) buf[0] = buf[0] != 0;
    if (strcmp(key ? key : "", "general.alignment") == 0) {
        uint32_t a = 0;
        if (type == RK_GGUF_UINT32) memcpy(&a, buf, 4);
        if (a == 0 || (a & (a - 1)) != 0)
            return FAIL(w, RK_ERR_INVALID_ARG,
                        "gguf-writer: 'general.alignment' must be a u32 power of two");
    }
    size_t mark;
    rk_status s = begin_kv(w, key, type, &mark);
    if (s != RK_OK) return s;
    if (!kv_put(w, buf, size)) return abort_kv(w, mark, key);
    if (strcmp(key, "general.alignment") == 0) {
        memcpy(&w->alignment, buf, 4);
        w->has_alignment_key = true;
    }
    return RK_OK;
}

rk_status rk_gguf_writer_add_u32(rk_gguf_writer *w, const char *key, uint32_t v) {
    return rk_gguf_writer_add_scalar(w, key, RK_GGUF_UINT32, &v);
}
rk_status rk_gguf_writer_add_i32(rk_gguf_writer *w, const char *key, int32_t v) {
    return rk_gguf_writer_add_scalar(w, key, RK_GGUF_INT32, &v);
}
rk_status rk_gguf_writer_add_u64(rk_gguf_writer *w, const char *key, uint64_t v) {
    return rk_gguf_writer_add_scalar(w, key, RK_GGUF_UINT64, &v);
}
rk_status rk_gguf_writer_add_i64(rk_gguf_writer *w, const char *key, int64_t v) {
    return rk_gguf_writer_add_scalar(w, key, RK_GGUF_INT64, &v);
}
rk_status rk_gguf_writer_add_f32(rk_gguf_writer *w, const char *key, float v) {
    return rk_gguf_writer_add_scalar(w, key, RK_GGUF_FLOAT32, &v);
}
rk_status rk_gguf_writer_add_f64(rk_gguf_writer *w, const char *key, double v) {
    return rk_gguf_writer_add_scalar(w, key, RK_GGUF_FLOAT64, &v);
}
rk_status rk_gguf_writer_add_bool(rk_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return rk_gguf_writer_add_scalar(w, key, RK_GGUF_BOOL, &b);
}

rk_status rk_gguf_writer_add_strn(rk_gguf_writer *w, const char *key, const char *v, size_t len) {
    if (!w) return RK_ERR_INVALID_ARG;
    if (!v && len)
        return FAIL(w, RK_ERR_INVALID_ARG, "gguf-writer: key '%s': NULL string",
                    key ? key : "(null)");
    size_t mark;
    rk_status s = begin_kv(w, key, RK_GGUF_STRING, &mark);
    if (s != RK_OK) return s;
    if (!kv_string(w, v ? v : "", len)) return abort_kv(w, mark, key);
    return RK_OK;
}

rk_status rk_gguf_writer_add_str(rk_gguf_writer *w, const char *key, const char *v) {
    return rk_gguf_writer_add_strn(w, key, v, v ? strlen(v) : 0);
}

rk_status rk_gguf_writer_add_array(rk_gguf_writer *w, const char *key, rk_gguf_vtype elem_type,
                                   const void *data, size_t n) {
    if (!w) return RK_ERR_INVALID_ARG;
    const char *k = key ? key : "(null)";
    if (elem_type == RK_GGUF_ARRAY)
        return FAIL(w, RK_ERR_UNSUPPORTED, "gguf-writer: key '%s': nested arrays are not supported",
                    k);
    size_t size = scalar_size(elem_type);
    if (size == 0)
        return FAIL(
            w, RK_ERR_INVALID_ARG,
            "gguf-writer: key '%s': element type %d is not numeric (strings: add_str_array)", k,
            (int)elem_type);
    if (!data && n) return FAIL(w, RK_ERR_INVALID_ARG, "gguf-writer: key '%s': NULL array data", k);
    if (n > SIZE_MAX / size)
        return FAIL(w, RK_ERR_NO_MEMORY, "gguf-writer: key '%s': array of %zu elements too large",
                    k, n);
    size_t mark;
    rk_status s = begin_kv(w, key, RK_GGUF_ARRAY, &mark);
    if (s != RK_OK) return s;
    if (!kv_u32(w, (uint32_t)elem_type) || !kv_u64(w, (uint64_t)n) || !kv_put(w, data, n * size))
        return abort_kv(w, mark, key);
    if (elem_type == RK_GGUF_BOOL) /* normalise to 0/1 */
        for (size_t i = 0; i < n; i++)
            w->kv[w->kv_len - n + i] = w->kv[w->kv_len - n + i] != 0;
    return RK_OK;
}

rk_status rk_gguf_writer_add_f32_array(rk_gguf_writer *w, const char *key, const float *v,
                                       size_t n) {
    return rk_gguf_writer_add_array(w, key, RK_GGUF_FLOAT32, v, n);
}
rk_status rk_gguf_writer_add_i32_array(rk_gguf_writer *w, const char *key, const int32_t *v,
                                       size_t n) {
    return rk_gguf_writer_add_array(w, key, RK_GGUF_INT32, v, n);
}

rk_status rk_gguf_writer_add_str_array(rk_gguf_writer *w, const char *key, const char *const *strs,
                                       const size_t *lens, size_t n) {
    if (!w) return RK_ERR_INVALID_ARG;
    if (!strs && n)
        return FAIL(w, RK_ERR_INVALID_ARG, "gguf-writer: key '%s': NULL string array",
                    key ? key : "(null)");
    for (size_t i = 0; i < n; i++)
        if (!strs[i] && (!lens || lens[i]))
            return FAIL(w, RK_ERR_INVALID_ARG, "gguf-writer: key '%s': string %zu is NULL",
                        key ? key : "(null)", i);
    size_t mark;
    rk_status s = begin_kv(w, key, RK_GGUF_ARRAY, &mark);
    if (s != RK_OK) return s;
    if (!kv_u32(w, RK_GGUF_STRING) || !kv_u64(w, (uint64_t)n)) return abort_kv(w, mark, key);
    for (size_t i = 0; i < n; i++) {
        size_t len = lens ? lens[i] : strlen(strs[i]);
        if (!kv_string(w, strs[i] ? strs[i] : "", len)) return abort_kv(w, mark, key);
    }
    return RK_OK;
}

/* ---- tensors ---- */

static rk_status check_shape(rk_gguf_writer *w, const char *name, uint32_t type, int n_dims,
                             const int64_t *ne, size_t nbytes) {
    const rk_type_info *info = rk_type_get_info(type);
    if (!info)
        return FAIL(w, RK_ERR_UNSUPPORTED, "gguf-writer: tensor '%s': unknown type %u", name, type);
    if (n_dims < 1 || n_dims > RK_GGUF_MAX_DIMS || !ne)
        return FAIL(w, RK_ERR_INVALID_ARG, "gguf-writer: tensor '%s': %d dimensions (1..%d)", name,
                    n_dims, RK_GGUF_MAX_DIMS);
    uint64_t rows = 1;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] <= 0)
            return FAIL(w, RK_ERR_INVALID_ARG, "gguf-writer: tensor '%s': ne[%d] = %lld", name, d,
                        (long long)ne[d]);
        if (d > 0) {
            if ((uint64_t)ne[d] > UINT64_MAX / rows)
                return FAIL(w, RK_ERR_INVALID_ARG, "gguf-writer: tensor '%s': shape overflows",
                            name);
            rows *= (uint64_t)ne[d];
        }
    }
    size_t row = rk_type_row_bytes(type, ne[0]);
    if (row == 0)
        return FAIL(
            w, RK_ERR_INVALID_ARG,
            "gguf-writer: tensor '%s': ne[0] = %lld is not a multiple of %s's block size %d", name,
            (long long)ne[0], info->name, info->block_size);
    if (rows > SIZE_MAX / row)
        return FAIL(w, RK_ERR_INVALID_ARG, "gguf-writer: tensor '%s': size overflows", name);
    if ((size_t)rows * row != nbytes)
        return FAIL(w, RK_ERR_INVALID_ARG,
                    "gguf-writer: tensor '%s': %zu bytes given, shape and type %s need %zu", name,
                    nbytes, info->name, (size_t)rows * row);
    return RK_OK;
}

rk_status rk_gguf_writer_add_tensor(rk_gguf_writer *w, const char *name, uint32_t type, int n_dims,
                                    const int64_t *ne, const void *data, size_t nbytes) {
    if (!w) return RK_ERR_INVALID_ARG;
    if (w->first.code != RK_OK) return w->first.code;
    if (!name || !*name) return FAIL(w, RK_ERR_INVALID_ARG, "gguf-writer: empty tensor name");
    size_t len = strlen(name);
    if (len > RK_GGUF_WRITER_MAX_NAME)
        return FAIL(w, RK_ERR_INVALID_ARG,
                    "gguf-writer: tensor name '%.40s...' is %zu bytes (max %d)", name, len,
                    RK_GGUF_WRITER_MAX_NAME);
    if (!data && nbytes)
        return FAIL(w, RK_ERR_INVALID_ARG, "gguf-writer: tensor '%s': NULL data", name);
    rk_status s = check_shape(w, name, type, n_dims, ne, nbytes);
    if (s != RK_OK) return s;
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return FAIL(w, RK_ERR_INVALID_ARG, "gguf-writer: duplicate tensor '%s'", name);
    if (!grow((void **)&w->tensors, &w->tensors_cap, w->n_tensors + 1, sizeof *w->tensors))
        return FAIL(w, RK_ERR_NO_MEMORY, "gguf-writer: out of memory adding tensor '%s'", name);
    wtensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name)))
        return FAIL(w, RK_ERR_NO_MEMORY, "gguf-writer: out of memory adding tensor '%s'", name);
    t->name_len = len;
    t->type = type;
    t->n_dims = (uint32_t)n_dims;
    for (int d = 0; d < n_dims; d++)
        t->ne[d] = ne[d];
    t->data = data;
    t->nbytes = nbytes;
    w->n_tensors++;
    return RK_OK;
}

/* ---- output ---- */

static size_t pad_to(size_t n, size_t align) { return (align - n % align) % align; }

/* Bytes of the implicit general.alignment entry written when the caller did not add one. */
static size_t align_kv_size(const rk_gguf_writer *w) {
    return w->has_alignment_key ? 0 : 8 + (sizeof ALIGN_KEY - 1) + 4 + 4;
}

static size_t infos_size(const rk_gguf_writer *w) {
    size_t n = 0;
    for (size_t i = 0; i < w->n_tensors; i++)
        n += 8 + w->tensors[i].name_len + 4 + 8 * (size_t)w->tensors[i].n_dims + 4 + 8;
    return n;
}

static size_t meta_size(const rk_gguf_writer *w) {
    return 4 + 4 + 8 + 8 + w->kv_len + align_kv_size(w) + infos_size(w);
}

size_t rk_gguf_writer_size(const rk_gguf_writer *w) {
    if (!w) return 0;
    size_t n = meta_size(w);
    n += pad_to(n, w->alignment);
    for (size_t i = 0; i < w->n_tensors; i++)
        n += w->tensors[i].nbytes + pad_to(w->tensors[i].nbytes, w->alignment);
    return n;
}

/* A destination: a stream, or a memory buffer of known size. */
typedef struct sink {
    FILE *f;
    uint8_t *mem;
    size_t pos, cap;
} sink;

static bool put(sink *s, const void *p, size_t n) {
    if (n == 0) return true;
    if (s->f) return fwrite(p, 1, n, s->f) == n;
    if (n > s->cap - s->pos) return false;
    memcpy(s->mem + s->pos, p, n);
    s->pos += n;
    return true;
}
static bool put_u32(sink *s, uint32_t v) { return put(s, &v, 4); }
static bool put_u64(sink *s, uint64_t v) { return put(s, &v, 8); }
static bool put_zeros(sink *s, size_t n) {
    static const uint8_t zeros[256];
    while (n) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        if (!put(s, zeros, k)) return false;
        n -= k;
    }
    return true;
}

static bool write_meta(const rk_gguf_writer *w, sink *s) {
    uint64_t n_kv = (uint64_t)w->n_keys + (w->has_alignment_key ? 0 : 1);
    if (!put(s, "GGUF", 4) || !put_u32(s, GGUF_VERSION) || !put_u64(s, (uint64_t)w->n_tensors) ||
        !put_u64(s, n_kv) || !put(s, w->kv, w->kv_len))
        return false;
    if (!w->has_alignment_key &&
        (!put_u64(s, sizeof ALIGN_KEY - 1) || !put(s, ALIGN_KEY, sizeof ALIGN_KEY - 1) ||
         !put_u32(s, RK_GGUF_UINT32) || !put_u32(s, w->alignment)))
        return false;
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        if (!put_u64(s, t->name_len) || !put(s, t->name, t->name_len) || !put_u32(s, t->n_dims))
            return false;
        for (uint32_t d = 0; d < t->n_dims; d++)
            if (!put_u64(s, (uint64_t)t->ne[d])) return false;
        if (!put_u32(s, t->type) || !put_u64(s, offset)) return false;
        offset += t->nbytes + pad_to(t->nbytes, w->alignment);
    }
    return put_zeros(s, pad_to(meta_size(w), w->alignment));
}

static rk_status write_all(const rk_gguf_writer *w, sink *s, const char *what, rk_error *err) {
    if (!w) return rk_error_set(err, RK_ERR_INVALID_ARG, "gguf-writer: NULL writer");
    if (w->first.code != RK_OK) return rk_error_set(err, w->first.code, "%s", w->first.msg);
    if (!write_meta(w, s))
        return rk_error_set(err, RK_ERR_IO, "gguf-writer: %s: writing the header failed: %s", what,
                            errno ? strerror(errno) : "short write");
    for (size_t i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        if (!put(s, t->data, t->nbytes) || !put_zeros(s, pad_to(t->nbytes, w->alignment)))
            return rk_error_set(err, RK_ERR_IO,
                                "gguf-writer: %s: writing tensor '%s' (%zu bytes) failed: %s", what,
                                t->name, t->nbytes, errno ? strerror(errno) : "short write");
    }
    return RK_OK;
}

rk_status rk_gguf_writer_write_stream(const rk_gguf_writer *w, FILE *f, rk_error *err) {
    if (!f) return rk_error_set(err, RK_ERR_INVALID_ARG, "gguf-writer: NULL stream");
    sink s = {.f = f};
    errno = 0;
    return write_all(w, &s, "stream", err);
}

rk_status rk_gguf_writer_write_memory(const rk_gguf_writer *w, void **out, size_t *out_size,
                                      rk_error *err) {
    if (!out || !out_size) return rk_error_set(err, RK_ERR_INVALID_ARG, "gguf-writer: NULL output");
    *out = NULL;
    *out_size = 0;
    if (!w) return rk_error_set(err, RK_ERR_INVALID_ARG, "gguf-writer: NULL writer");
    if (w->first.code != RK_OK) return rk_error_set(err, w->first.code, "%s", w->first.msg);
    size_t size = rk_gguf_writer_size(w);
    sink s = {.mem = malloc(size ? size : 1), .cap = size};
    if (!s.mem)
        return rk_error_set(err, RK_ERR_NO_MEMORY, "gguf-writer: out of memory (%zu bytes)", size);
    rk_status st = write_all(w, &s, "memory", err);
    if (st == RK_OK && s.pos != size)
        st = rk_error_set(err, RK_ERR_INTERNAL, "gguf-writer: wrote %zu bytes, expected %zu", s.pos,
                          size);
    if (st != RK_OK) {
        free(s.mem);
        return st;
    }
    *out = s.mem;
    *out_size = size;
    return RK_OK;
}

rk_status rk_gguf_writer_write_file(const rk_gguf_writer *w, const char *path, rk_error *err) {
    if (!w || !path || !*path)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "gguf-writer: NULL writer or empty path");
    if (w->first.code != RK_OK) return rk_error_set(err, w->first.code, "%s", w->first.msg);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) return rk_error_set(err, RK_ERR_NO_MEMORY, "gguf-writer: out of memory");
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        rk_status s = rk_error_set(err, RK_ERR_IO, "gguf-writer: cannot create '%s': %s", tmp,
                                   strerror(errno));
        free(tmp);
        return s;
    }
    sink snk = {.f = f};
    errno = 0;
    rk_status s = write_all(w, &snk, tmp, err);
    /* some file systems report a full disk only at flush/fsync/close time */
    if (s == RK_OK && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        s = rk_error_set(err, RK_ERR_IO, "gguf-writer: writing '%s' failed: %s", tmp,
                         strerror(errno));
    if (fclose(f) != 0 && s == RK_OK)
        s = rk_error_set(err, RK_ERR_IO, "gguf-writer: closing '%s' failed: %s", tmp,
                         strerror(errno));
    if (s == RK_OK && rename(tmp, path) != 0)
        s = rk_error_set(err, RK_ERR_IO, "gguf-writer: cannot rename '%s' to '%s': %s", tmp, path,
                         strerror(errno));
    if (s != RK_OK) remove(tmp);
    free(tmp);
    return s;
}
