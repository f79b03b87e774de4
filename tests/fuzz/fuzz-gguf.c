/*
 * fuzz-gguf.c — libFuzzer target for the GGUF reader. Every input must either open (then every
 * key and tensor is walked, so ASan sees any bad pointer) or be refused with a message.
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DRINGKV_FUZZ=ON && make -C build-fuzz fuzz-gguf
 *   ./build-fuzz/tests/fuzz/fuzz-gguf -max_total_time=60 tests/fuzz/corpus-gguf
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gguf/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rk_error err;
    rk_gguf *g = NULL;
    if (rk_gguf_open_memory(data, size, &g, &err) != RK_OK) {
        if (err.msg[0] == '\0') __builtin_trap(); /* every refusal must say why */
        return 0;
    }
    char buf[256];
    volatile uint64_t sink = 0;
    for (int64_t i = 0; i < rk_gguf_kv_count(g); i++) {
        rk_gguf_kv_format(g, i, buf, sizeof buf);
        rk_gguf_array a;
        if (rk_gguf_get_array(g, rk_gguf_kv_key(g, i), &a, NULL) == RK_OK && a.n > 0)
            sink += a.strs ? (uint64_t)a.lens[a.n - 1] + (uint8_t)a.strs[a.n - 1][0]
                           : ((const uint8_t *)a.data)[0];
    }
    for (int64_t i = 0; i < rk_gguf_tensor_count(g); i++) {
        const rk_gguf_tensor *t = rk_gguf_tensor_at(g, i);
        if (t->nbytes) sink += ((const uint8_t *)t->data)[0] + ((const uint8_t *)t->data)[t->nbytes - 1];
    }
    (void)sink;
    rk_gguf_close(g);
    return 0;
}
