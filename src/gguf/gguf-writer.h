/*
 * gguf-writer.h — builds a GGUF v3 file: metadata key/values, then tensor infos, then the
 * tensor data, each tensor aligned to 32 bytes (or to `general.alignment` when the caller adds
 * that key as a u32 power of two).
 *
 * Use:
 *
 *     rk_gguf_writer *w;
 *     if (rk_gguf_writer_create(&w, err) != RK_OK) return err->code;
 *     rk_gguf_writer_add_str(w, "general.architecture", "llama");
 *     rk_gguf_writer_add_u32(w, "llama.block_count", 5);
 *     rk_gguf_writer_add_tensor(w, "token_embd.weight", RK_TYPE_F32, 2, ne, data, nbytes);
 *     rk_status s = rk_gguf_writer_write_file(w, "out.gguf", err);
 *     rk_gguf_writer_free(w);
 *
 * Error model: the add functions return an rk_status, and the writer also remembers the first
 * failure (duplicate key or tensor name, bad shape, size mismatch, out of memory) and refuses
 * to write afterwards, reporting that first message. So a caller may add everything and check
 * only the result of the write. Keys and values are copied at add time; tensor *data* is
 * borrowed and must stay valid until the write returns.
 *
 * Files are written to "PATH.tmp" and renamed over PATH only once everything was written,
 * flushed, fsync()ed and closed; on any failure (disk full, bad directory) the partial file is
 * removed and nothing appears at PATH.
 */
#ifndef RK_GGUF_WRITER_H
#define RK_GGUF_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gguf/gguf.h"
#include "ringkv.h"

#define RK_GGUF_WRITER_ALIGNMENT 32
#define RK_GGUF_WRITER_MAX_NAME 64 /* tensor names, bytes without the NUL (as llama.cpp) */

typedef struct rk_gguf_writer rk_gguf_writer;

/* A new, empty writer; *out belongs to the caller (rk_gguf_writer_free).
 * RK_ERR_NO_MEMORY on allocation failure. */
rk_status rk_gguf_writer_create(rk_gguf_writer **out, rk_error *err);
void rk_gguf_writer_free(rk_gguf_writer *w);

/* The first error the writer met (RK_OK when none) and its message ("" when none). */
rk_status rk_gguf_writer_status(const rk_gguf_writer *w);
const char *rk_gguf_writer_error(const rk_gguf_writer *w);

/* ---- metadata (keys are NUL-terminated; a key may be added once) ---- */

/* A scalar of any non-array, non-string type; `value` points at a native value of that type
 * (bool as a uint8_t or bool, both one byte). RK_ERR_INVALID_ARG for STRING/ARRAY. */
rk_status rk_gguf_writer_add_scalar(rk_gguf_writer *w, const char *key, rk_gguf_vtype type,
                                    const void *value);
rk_status rk_gguf_writer_add_u32(rk_gguf_writer *w, const char *key, uint32_t v);
rk_status rk_gguf_writer_add_i32(rk_gguf_writer *w, const char *key, int32_t v);
rk_status rk_gguf_writer_add_u64(rk_gguf_writer *w, const char *key, uint64_t v);
rk_status rk_gguf_writer_add_i64(rk_gguf_writer *w, const char *key, int64_t v);
rk_status rk_gguf_writer_add_f32(rk_gguf_writer *w, const char *key, float v);
rk_status rk_gguf_writer_add_f64(rk_gguf_writer *w, const char *key, double v);
rk_status rk_gguf_writer_add_bool(rk_gguf_writer *w, const char *key, bool v);
/* A NUL-terminated string; add_strn takes an explicit length (the bytes may contain NULs). */
rk_status rk_gguf_writer_add_str(rk_gguf_writer *w, const char *key, const char *v);
rk_status rk_gguf_writer_add_strn(rk_gguf_writer *w, const char *key, const char *v, size_t len);

/* An array of n numeric (or bool) elements of elem_type, native layout. Nested arrays are
 * RK_ERR_UNSUPPORTED; STRING elements must use add_str_array. */
rk_status rk_gguf_writer_add_array(rk_gguf_writer *w, const char *key, rk_gguf_vtype elem_type,
                                   const void *data, size_t n);
rk_status rk_gguf_writer_add_f32_array(rk_gguf_writer *w, const char *key, const float *v,
                                       size_t n);
rk_status rk_gguf_writer_add_i32_array(rk_gguf_writer *w, const char *key, const int32_t *v,
                                       size_t n);
/* n strings; lens[i] is the byte length of strs[i], or lens == NULL for NUL-terminated ones. */
rk_status rk_gguf_writer_add_str_array(rk_gguf_writer *w, const char *key, const char *const *strs,
                                       const size_t *lens, size_t n);

/* ---- tensors ---- */

/* Adds a tensor of `type` (rk_ggml_type) with n_dims (1..4) dimensions ne[0..n_dims), ne[0]
 * fastest. nbytes must equal the size the type and shape imply. `data` is borrowed until the
 * write returns. Names are unique and at most RK_GGUF_WRITER_MAX_NAME bytes. */
rk_status rk_gguf_writer_add_tensor(rk_gguf_writer *w, const char *name, uint32_t type, int n_dims,
                                    const int64_t *ne, const void *data, size_t nbytes);

/* ---- output ---- */

/* Writes PATH.tmp, flushes, closes and renames it to PATH. RK_ERR_IO with the path and
 * strerror text on any failure (the temporary file is removed), or the writer's first error. */
rk_status rk_gguf_writer_write_file(const rk_gguf_writer *w, const char *path, rk_error *err);

/* Writes the whole image to an open stream (not flushed or closed). RK_ERR_IO on a short
 * write. Used by write_file, and by tests (fault injection with /dev/full). */
rk_status rk_gguf_writer_write_stream(const rk_gguf_writer *w, FILE *f, rk_error *err);

/* The whole image in a malloc'd buffer (*out belongs to the caller, free()). For tests and
 * for building GGUF images in memory (rk_gguf_open_memory). */
rk_status rk_gguf_writer_write_memory(const rk_gguf_writer *w, void **out, size_t *out_size,
                                      rk_error *err);

/* The size in bytes the image will have. */
size_t rk_gguf_writer_size(const rk_gguf_writer *w);

#endif
