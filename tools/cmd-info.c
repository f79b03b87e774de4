/* cmd-info.c — `ringkv info -m FILE`: architecture, hyper-parameters, metadata and every
 * tensor's type, shape and size. Works on any valid GGUF (vocabulary-only files included). */
#include <stdio.h>
#include <string.h>

#include "gguf/gguf.h"
#include "ringkv.h"
#include "tools/commands.h"
#include "tools/opts.h"

int rk_cmd_info(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (rk_opt_is(argv[i], "-m", "--model") && i + 1 < argc) {
            path = argv[++i];
        } else if (rk_opt_is(argv[i], "-h", "--help")) {
            printf("usage: ringkv info -m FILE.gguf\n");
            return 0;
        } else {
            fprintf(stderr, "info: unknown or incomplete option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!path) path = rk_opt_default_model();
    rk_error err;
    rk_gguf *g;
    if (rk_gguf_open(path, &g, &err) != RK_OK) {
        fprintf(stderr, "info: %s\n", err.msg);
        return 1;
    }
    printf("file: %s (GGUF v%u, %zu bytes)\n", path, rk_gguf_version(g), rk_gguf_file_size(g));
    printf("\nmetadata (%lld keys):\n", (long long)rk_gguf_kv_count(g));
    char buf[512];
    for (int64_t i = 0; i < rk_gguf_kv_count(g); i++) {
        rk_gguf_kv_format(g, i, buf, sizeof buf);
        printf("  %-48s %s\n", rk_gguf_kv_key(g, i), buf);
    }
    rk_model_params mp = rk_model_default_params();
    rk_model *model = NULL;
    mp.vocab_only = rk_gguf_tensor_count(g) == 0;
    if (rk_model_load(path, &mp, &model, &err) == RK_OK) {
        rk_model_describe(model, buf, sizeof buf);
        printf("\nmodel: %s\n", buf);
        rk_model_free(model);
    } else {
        printf("\nmodel: cannot be run by ringkv: %s\n", err.msg);
    }
    printf("\ntensors (%lld):\n", (long long)rk_gguf_tensor_count(g));
    size_t total = 0;
    for (int64_t i = 0; i < rk_gguf_tensor_count(g); i++) {
        const rk_gguf_tensor *t = rk_gguf_tensor_at(g, i);
        char shape[96] = "";
        for (int d = 0; d < t->n_dims; d++) {
            size_t len = strlen(shape);
            snprintf(shape + len, sizeof shape - len, "%s%lld", d ? " x " : "", (long long)t->ne[d]);
        }
        printf("  %-40s %-6s %-22s %12zu bytes\n", t->name, rk_type_get_info(t->type)->name, shape,
               t->nbytes);
        total += t->nbytes;
    }
    printf("total tensor data: %zu bytes (%.1f MiB)\n", total, total / 1048576.0);
    rk_gguf_close(g);
    return 0;
}
