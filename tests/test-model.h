/*
 * test-model.h — for C tests that run a cached model: loading it by file name (a missing model
 * skips, a model that fails to load counts as a failure), and whether this build has a sanitizer
 * (they run the model some 20 times slower, so such tests shorten their work).
 * Header-only, so tests that never load a model do not link the model library for it.
 */
#ifndef RK_TEST_MODEL_H
#define RK_TEST_MODEL_H

#include "ringkv.h"
#include "test-util.h"

#if defined(__SANITIZE_ADDRESS__)
#define RK_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RK_TEST_SANITIZED 1
#endif
#endif
#ifndef RK_TEST_SANITIZED
#define RK_TEST_SANITIZED 0
#endif

/* models/<file>, loaded; NULL when it is not cached (a note is printed) or fails to load (the
 * error is printed and counted as a test failure). The caller frees it. */
static inline rk_model *rk_test_load_model(const char *file) {
    char path[1024];
    if (!rk_test_model_path(path, sizeof path, file)) return NULL;
    rk_model_params mp = rk_model_default_params();
    rk_model *m = NULL;
    rk_error err;
    if (rk_model_load(path, &mp, &m, &err) != RK_OK) {
        fprintf(stderr, "%s\n", err.msg);
        rk_test_failures++;
        return NULL;
    }
    return m;
}

/* The index of the largest of V logits (the first on ties): a greedy token. */
static inline rk_token rk_test_argmax(const float *logits, int32_t V) {
    rk_token best = 0;
    for (int32_t i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

#endif
