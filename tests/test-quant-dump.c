/*
 * test-quant-dump.c — a tiny driver for tests/python/check_dequant.py: reads raw blocks of one
 * type from a file, dequantises them with ringkv's kernels at a chosen SIMD level and writes
 * float32 (native byte order).
 *
 *     test-quant-dump TYPE N IN OUT [LEVEL]     TYPE = ggml type number, N = element count,
 *                                               LEVEL = 0 scalar, 1 avx2, 2 avx512 (default 0;
 *                                               clamped to what the CPU has)
 * Exit 0 on success, 2 on bad usage or I/O, 3 when the type is not supported.
 */
#include <stdio.h>
#include <stdlib.h>

#include "quant/quant.h"

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s TYPE N IN OUT [LEVEL]\n", argv[0]);
        return 2;
    }
    const uint32_t type = (uint32_t)strtoul(argv[1], NULL, 10);
    const int64_t n = strtoll(argv[2], NULL, 10);
    int level = argc > 5 ? atoi(argv[5]) : 0;
    if (level > (int)rk_cpu_simd_level()) level = (int)rk_cpu_simd_level();
    const rk_quant_ops *ops = rk_quant_get_ops(type, (rk_simd_level)level);
    const size_t bytes = rk_type_row_bytes(type, n);
    if (!ops || bytes == 0) {
        fprintf(stderr, "type %u with n=%lld not supported\n", type, (long long)n);
        return 3;
    }
    FILE *f = fopen(argv[3], "rb");
    void *src = malloc(bytes);
    float *dst = malloc(sizeof(float) * (size_t)n);
    if (!f || !src || !dst || fread(src, 1, bytes, f) != bytes) {
        fprintf(stderr, "cannot read %zu bytes from %s\n", bytes, argv[3]);
        return 2;
    }
    fclose(f);
    ops->dequant_row(src, dst, n);
    FILE *o = fopen(argv[4], "wb");
    if (!o || fwrite(dst, sizeof(float), (size_t)n, o) != (size_t)n || fclose(o) != 0) {
        fprintf(stderr, "cannot write %s\n", argv[4]);
        return 2;
    }
    free(src);
    free(dst);
    return 0;
}
