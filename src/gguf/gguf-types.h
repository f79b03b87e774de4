/*
 * gguf-types.h — the tensor element types a GGUF file may name (ggml's numbering, which is part
 * of the file format) and their block geometry. The GGUF reader needs the geometry to validate
 * tensor sizes; the quant module implements the formats. Types whose geometry is unknown here
 * are refused by the reader with a message naming the type number.
 */
#ifndef RK_GGUF_TYPES_H
#define RK_GGUF_TYPES_H

#include <stddef.h>
#include <stdint.h>

typedef enum rk_ggml_type {
    RK_TYPE_F32 = 0,
    RK_TYPE_F16 = 1,
    RK_TYPE_Q4_0 = 2,
    RK_TYPE_Q4_1 = 3,
    RK_TYPE_Q5_0 = 6,
    RK_TYPE_Q5_1 = 7,
    RK_TYPE_Q8_0 = 8,
    RK_TYPE_Q8_1 = 9,
    RK_TYPE_Q2_K = 10,
    RK_TYPE_Q3_K = 11,
    RK_TYPE_Q4_K = 12,
    RK_TYPE_Q5_K = 13,
    RK_TYPE_Q6_K = 14,
    RK_TYPE_Q8_K = 15,
    RK_TYPE_BF16 = 30,
    RK_TYPE_COUNT = 40 /* upper bound of the numbering we know */
} rk_ggml_type;

typedef struct rk_type_info {
    const char *name;     /* "Q4_K"; NULL when the number is not a known type */
    int32_t block_size;   /* elements per block */
    int32_t block_bytes;  /* bytes per block */
} rk_type_info;

/* Geometry of `type`, or NULL when ringkv does not know the type number. */
const rk_type_info *rk_type_get_info(uint32_t type);

/* Bytes of a row of n elements; 0 when n is not a multiple of the block size or the type is
 * unknown. */
size_t rk_type_row_bytes(uint32_t type, int64_t n);

#endif
