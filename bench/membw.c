/*
 * membw.c — this machine's memory read bandwidth, the ceiling for decode (which reads every
 * weight once per token). Sums a 1 GiB buffer with 1..N threads (integer adds the compiler
 * vectorises) and prints the best of 5 passes per thread count as CSV: threads,gb_per_s.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BYTES ((size_t)1 << 30)

typedef struct slice {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} slice;

static void *sum_slice(void *arg) {
    slice *s = arg;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i + 4 <= s->n; i += 4) {
        a += s->p[i];
        b += s->p[i + 1];
        c += s->p[i + 2];
        d += s->p[i + 3];
    }
    s->sum = a + b + c + d;
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int max_threads = argc > 1 ? atoi(argv[1]) : 2;
    if (max_threads < 1 || max_threads > 256) {
        fprintf(stderr, "usage: bench-membw [MAX_THREADS]\n");
        return 2;
    }
    uint64_t *buf = malloc(BYTES);
    if (!buf) {
        fprintf(stderr, "bench-membw: cannot allocate 1 GiB\n");
        return 1;
    }
    memset(buf, 1, BYTES);
    size_t n = BYTES / sizeof(uint64_t);
    printf("threads,gb_per_s\n");
    for (int t = 1; t <= max_threads; t++) {
        double best = 0;
        uint64_t check = 0;
        for (int pass = 0; pass < 5; pass++) {
            pthread_t th[256];
            slice sl[256];
            double t0 = now();
            for (int i = 0; i < t; i++) {
                sl[i] = (slice){buf + n / t * i, n / t, 0};
                pthread_create(&th[i], NULL, sum_slice, &sl[i]);
            }
            for (int i = 0; i < t; i++) {
                pthread_join(th[i], NULL);
                check += sl[i].sum;
            }
            double gbs = BYTES / (now() - t0) / 1e9;
            if (gbs > best) best = gbs;
        }
        printf("%d,%.1f\n", t, best);
        if (check == 42) puts(""); /* keep the sums alive */
    }
    free(buf);
    return 0;
}
