/*
 * test-util.h — the tiny harness every C test uses: CHECK macros that count failures and print
 * file:line, paths to shared test data and cached models, and a skip code (77) CTest knows.
 */
#ifndef RK_TEST_UTIL_H
#define RK_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define RK_TEST_SKIP 77

extern int rk_test_failures;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            rk_test_failures++;                                                      \
        }                                                                            \
    } while (0)

#define CHECK_MSG(cond, ...)                                                         \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
            rk_test_failures++;                                                      \
        }                                                                            \
    } while (0)

/* Path of a file under ../shared/testdata (static buffer per call site is not needed:
 * writes into buf and returns it). */
const char *rk_test_data_path(char *buf, size_t size, const char *relative);

/* Path of a cached model under models/; returns NULL (and prints why) when it is missing. */
const char *rk_test_model_path(char *buf, size_t size, const char *file_name);

/* Reads a whole file into a malloc'd, NUL-terminated buffer; NULL on failure. */
char *rk_test_read_file(const char *path, size_t *out_size);

/* A small seeded generator (xorshift64) for reproducible random test data. s must not be 0. */
typedef struct rk_test_rng {
    uint64_t s;
} rk_test_rng;
uint64_t rk_test_rng_next(rk_test_rng *r);
double rk_test_rng_unif(rk_test_rng *r); /* uniform in (0, 1) */

/* Opens (O_RDWR, buffered) a file this process holds open but whose name was unlinked, found
 * through /proc/self/fd: the first whose former path contains both `a` and `b` (b may be
 * NULL). For tests that corrupt the KV disk tier's page files behind its back. Returns the new
 * descriptor, or -1. */
int rk_test_open_unlinked(const char *a, const char *b);

/* 0 when no CHECK failed, else 1; prints a summary line. */
int rk_test_finish(const char *name);

#endif
