/*
 * gguf.h — a validating reader for GGUF files (versions 2 and 3).
 *
 * The file is memory-mapped read-only. Parsing checks every count, string length, array size,
 * type, tensor dimension, offset and the alignment before anything is used, so a truncated,
 * malformed or hostile file yields RK_ERR_FORMAT (or RK_ERR_UNSUPPORTED for an unknown tensor
 * type) with a message naming the key or tensor — never an out-of-bounds read.
 *
 * Metadata values are copied into the reader's own memory at open time (strings become
 * NUL-terminated; numeric arrays become naturally aligned native arrays), so lookups are
 * cheap and safe. Tensor data stays in the mapping: rk_gguf_tensor.data points into it and
 * lives as long as the rk_gguf.
 *
 * The reader knows nothing about models: it only gives keys, values and tensors.
 */
#ifndef RK_GGUF_H
#define RK_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf/gguf-types.h"
#include "ringkv.h"

/* Value types of GGUF metadata (numbering is part of the format). */
typedef enum rk_gguf_vtype {
    RK_GGUF_UINT8 = 0,
    RK_GGUF_INT8 = 1,
    RK_GGUF_UINT16 = 2,
    RK_GGUF_INT16 = 3,
    RK_GGUF_UINT32 = 4,
    RK_GGUF_INT32 = 5,
    RK_GGUF_FLOAT32 = 6,
    RK_GGUF_BOOL = 7,
    RK_GGUF_STRING = 8,
    RK_GGUF_ARRAY = 9,
    RK_GGUF_UINT64 = 10,
    RK_GGUF_INT64 = 11,
    RK_GGUF_FLOAT64 = 12,
    RK_GGUF_VTYPE_COUNT = 13
} rk_gguf_vtype;

#define RK_GGUF_MAX_DIMS 4

typedef struct rk_gguf_tensor {
    const char *name;          /* NUL-terminated, owned by the reader */
    uint32_t type;             /* rk_ggml_type */
    int32_t n_dims;            /* 1..4 */
    int64_t ne[RK_GGUF_MAX_DIMS]; /* elements per dimension, ne[0] fastest; unused dims are 1 */
    uint64_t offset;           /* from the start of the data section */
    size_t nbytes;             /* size of the data */
    const void *data;          /* into the mapping; NULL for vocab-only opens of files
                                  without a data section */
} rk_gguf_tensor;

typedef struct rk_gguf rk_gguf;

/* Opens, maps and validates `path`. On success *out belongs to the caller
 * (rk_gguf_close). Errors: RK_ERR_IO (cannot open/map), RK_ERR_FORMAT, RK_ERR_UNSUPPORTED,
 * RK_ERR_NO_MEMORY. */
rk_status rk_gguf_open(const char *path, rk_gguf **out, rk_error *err);

/* Parses a GGUF image already in memory. The bytes are borrowed and must outlive *out
 * (tensor data points into them). Used by tests and the fuzzer. */
rk_status rk_gguf_open_memory(const void *data, size_t size, rk_gguf **out, rk_error *err);

void rk_gguf_close(rk_gguf *gguf);

/* For measurements of what a computation reads: asks the kernel to drop the mapped file's
 * pages from memory (MADV_PAGEOUT; clean file pages that only this process maps leave the page
 * cache) and to read later faults page by page, without readahead (MADV_RANDOM). Afterwards the
 * bytes read from storage (/proc/self/io read_bytes) are the pages the computation touched.
 * RK_ERR_UNSUPPORTED when the file is not mapped or the kernel lacks MADV_PAGEOUT. */
rk_status rk_gguf_evict_pages(const rk_gguf *gguf, rk_error *err);

uint32_t rk_gguf_version(const rk_gguf *gguf);
size_t rk_gguf_file_size(const rk_gguf *gguf);

/* ---- metadata ---- */

int64_t rk_gguf_kv_count(const rk_gguf *gguf);
const char *rk_gguf_kv_key(const rk_gguf *gguf, int64_t i);
rk_gguf_vtype rk_gguf_kv_type(const rk_gguf *gguf, int64_t i);
/* Index of `key`, or -1 when absent. */
int64_t rk_gguf_find_key(const rk_gguf *gguf, const char *key);

/* Typed getters. Each returns RK_OK and writes *out, RK_ERR_INVALID_ARG when the key is absent
 * (message names it), or RK_ERR_FORMAT when the value has the wrong type or does not fit.
 * Integer getters accept any integer type whose value fits; float getters accept f32/f64. */
rk_status rk_gguf_get_u32(const rk_gguf *gguf, const char *key, uint32_t *out, rk_error *err);
rk_status rk_gguf_get_i64(const rk_gguf *gguf, const char *key, int64_t *out, rk_error *err);
rk_status rk_gguf_get_f32(const rk_gguf *gguf, const char *key, float *out, rk_error *err);
rk_status rk_gguf_get_bool(const rk_gguf *gguf, const char *key, bool *out, rk_error *err);
/* *out is NUL-terminated and owned by the reader; *out_len excludes the NUL (may be NULL).
 * Strings may contain NUL bytes; use the length. */
rk_status rk_gguf_get_str(const rk_gguf *gguf, const char *key, const char **out,
                          size_t *out_len, rk_error *err);

/* Convenience: the same with a default when the key is absent (wrong type is still an error). */
rk_status rk_gguf_get_u32_or(const rk_gguf *gguf, const char *key, uint32_t def, uint32_t *out,
                             rk_error *err);
rk_status rk_gguf_get_f32_or(const rk_gguf *gguf, const char *key, float def, float *out,
                             rk_error *err);
rk_status rk_gguf_get_bool_or(const rk_gguf *gguf, const char *key, bool def, bool *out,
                              rk_error *err);

/* An array value. For numeric element types `data` is a native, aligned array of `n` elements
 * of elem_type (bool as uint8). For strings, `strs[i]` is NUL-terminated with length
 * `lens[i]`. All owned by the reader. */
typedef struct rk_gguf_array {
    rk_gguf_vtype elem_type;
    uint64_t n;
    const void *data;
    const char *const *strs;
    const uint64_t *lens;
} rk_gguf_array;

/* RK_ERR_INVALID_ARG when absent, RK_ERR_FORMAT when not an array. */
rk_status rk_gguf_get_array(const rk_gguf *gguf, const char *key, rk_gguf_array *out,
                            rk_error *err);

/* Writes a short human-readable rendering of value i (numbers, a truncated string, or
 * "[n x type]" for arrays) into buf, always NUL-terminated. */
void rk_gguf_kv_format(const rk_gguf *gguf, int64_t i, char *buf, size_t size);

const char *rk_gguf_vtype_name(rk_gguf_vtype type);

/* ---- tensors ---- */

int64_t rk_gguf_tensor_count(const rk_gguf *gguf);
const rk_gguf_tensor *rk_gguf_tensor_at(const rk_gguf *gguf, int64_t i);
/* NULL when absent. */
const rk_gguf_tensor *rk_gguf_find_tensor(const rk_gguf *gguf, const char *name);

#endif
