/* gguf-types.c — block geometry of the ggml tensor types (see gguf-types.h). */
#include "gguf/gguf-types.h"

static const rk_type_info type_table[RK_TYPE_COUNT] = {
    [RK_TYPE_F32] = {"F32", 1, 4},
    [RK_TYPE_F16] = {"F16", 1, 2},
    [RK_TYPE_Q4_0] = {"Q4_0", 32, 2 + 16},
    [RK_TYPE_Q4_1] = {"Q4_1", 32, 2 + 2 + 16},
    [RK_TYPE_Q5_0] = {"Q5_0", 32, 2 + 4 + 16},
    [RK_TYPE_Q5_1] = {"Q5_1", 32, 2 + 2 + 4 + 16},
    [RK_TYPE_Q8_0] = {"Q8_0", 32, 2 + 32},
    [RK_TYPE_Q8_1] = {"Q8_1", 32, 4 + 32},
    [RK_TYPE_Q2_K] = {"Q2_K", 256, 16 + 64 + 2 + 2},
    [RK_TYPE_Q3_K] = {"Q3_K", 256, 32 + 64 + 12 + 2},
    [RK_TYPE_Q4_K] = {"Q4_K", 256, 2 + 2 + 12 + 128},
    [RK_TYPE_Q5_K] = {"Q5_K", 256, 2 + 2 + 12 + 32 + 128},
    [RK_TYPE_Q6_K] = {"Q6_K", 256, 128 + 64 + 16 + 2},
    [RK_TYPE_Q8_K] = {"Q8_K", 256, 4 + 256 + 32},
    [RK_TYPE_BF16] = {"BF16", 1, 2},
};

const rk_type_info *rk_type_get_info(uint32_t type) {
    if (type >= RK_TYPE_COUNT || type_table[type].name == 0) return 0;
    return &type_table[type];
}

size_t rk_type_row_bytes(uint32_t type, int64_t n) {
    const rk_type_info *info = rk_type_get_info(type);
    if (!info || n < 0 || n % info->block_size != 0) return 0;
    return (size_t)(n / info->block_size) * (size_t)info->block_bytes;
}
