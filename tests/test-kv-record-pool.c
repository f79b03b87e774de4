/*
 * test-kv-record-pool.c — the cache's record pool (kv-record-pool.h):
 *
 *   1. bad arguments (no size, an alignment that is not a power of two) are refused;
 *   2. records are aligned, disjoint and hold what was written into them, across chunks;
 *   3. freed slots are reused before a chunk is added, and a chunk whose records all came back
 *      is released except one spare;
 *   4. a record larger than a chunk's target gets a chunk of its own;
 *   5. two threads taking and giving records at once lose none (run under ASan in CI).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv-record-pool.h"
#include "test-util.h"

static int aligned(const uint8_t *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

static void test_bad_args(void) {
    kv_record_pool *pool = NULL;
    rk_error err;
    CHECK(kv_record_pool_create(0, 64, &pool, &err) == RK_ERR_INVALID_ARG && pool == NULL);
    CHECK(kv_record_pool_create(100, 48, &pool, &err) == RK_ERR_INVALID_ARG && pool == NULL);
    CHECK(kv_record_pool_create(100, 2, &pool, &err) == RK_ERR_INVALID_ARG && pool == NULL);
    kv_record_pool_free(NULL);
}

/* Fills rec with a pattern of its index; checks it. */
static void stamp(uint8_t *rec, size_t n, size_t id) {
    for (size_t i = 0; i < n; i++) rec[i] = (uint8_t)(id * 31 + i);
}
static int stamped(const uint8_t *rec, size_t n, size_t id) {
    for (size_t i = 0; i < n; i++)
        if (rec[i] != (uint8_t)(id * 31 + i)) return 0;
    return 1;
}

static void test_reuse_and_release(size_t rec_bytes, size_t align) {
    kv_record_pool *pool = NULL;
    rk_error err;
    CHECK(kv_record_pool_create(rec_bytes, align, &pool, &err) == RK_OK);
    const size_t per = kv_record_pool_per_chunk(pool), n = per * 3 + per / 2 + 1;
    CHECK(per >= 1);
    uint8_t **recs = calloc(n, sizeof *recs);
    CHECK(recs != NULL);
    for (size_t i = 0; i < n; i++) {
        recs[i] = kv_record_pool_get(pool);
        CHECK(recs[i] != NULL && aligned(recs[i], align));
        stamp(recs[i], rec_bytes, i);
    }
    CHECK(kv_record_pool_in_use(pool) == n);
    for (size_t i = 0; i < n; i++) CHECK(stamped(recs[i], rec_bytes, i)); /* disjoint */
    const size_t held = kv_record_pool_chunk_bytes(pool);
    CHECK(held == (n + per - 1) / per * per * ((rec_bytes + align - 1) / align * align));

    /* every other record back, then as many taken: no new chunk, every slot a freed one */
    for (size_t i = 0; i < n; i += 2) {
        kv_record_pool_put(pool, recs[i]);
        recs[i] = NULL;
    }
    for (size_t i = 0; i < n; i += 2) {
        recs[i] = kv_record_pool_get(pool);
        CHECK(recs[i] != NULL && aligned(recs[i], align));
        stamp(recs[i], rec_bytes, i);
    }
    CHECK(kv_record_pool_chunk_bytes(pool) == held);
    for (size_t i = 0; i < n; i++) CHECK(stamped(recs[i], rec_bytes, i));

    /* all back (in reverse): one chunk stays as the spare */
    for (size_t i = n; i-- > 0;) kv_record_pool_put(pool, recs[i]);
    CHECK(kv_record_pool_in_use(pool) == 0);
    CHECK(kv_record_pool_chunk_bytes(pool) == per * ((rec_bytes + align - 1) / align * align));
    kv_record_pool_put(pool, NULL);
    /* and it serves again */
    uint8_t *again = kv_record_pool_get(pool);
    CHECK(again != NULL && aligned(again, align));
    kv_record_pool_put(pool, again);
    free(recs);
    kv_record_pool_free(pool);
}

typedef struct {
    kv_record_pool *pool;
    int id, failures;
} churn_arg;

static void *churn(void *arg) {
    churn_arg *a = arg;
    uint8_t *held[40] = {0};
    unsigned seed = (unsigned)a->id * 7919u + 1u;
    for (int step = 0; step < 20000; step++) {
        seed = seed * 1103515245u + 12345u;
        int k = (int)((seed >> 16) % 40);
        if (held[k]) {
            if (!stamped(held[k], 64, (size_t)(a->id * 40 + k))) a->failures++;
            kv_record_pool_put(a->pool, held[k]);
            held[k] = NULL;
        } else if ((held[k] = kv_record_pool_get(a->pool)) != NULL) {
            stamp(held[k], 64, (size_t)(a->id * 40 + k));
        } else {
            a->failures++;
        }
    }
    for (int k = 0; k < 40; k++) kv_record_pool_put(a->pool, held[k]);
    return NULL;
}

static void test_threads(void) {
    kv_record_pool *pool = NULL;
    rk_error err;
    CHECK(kv_record_pool_create(300000, 4096, &pool, &err) == RK_OK); /* 6 per chunk: many chunks */
    churn_arg args[2] = {{pool, 0, 0}, {pool, 1, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&th[i], NULL, churn, &args[i]) == 0);
    for (int i = 0; i < 2; i++) CHECK(pthread_join(th[i], NULL) == 0);
    CHECK(args[0].failures == 0 && args[1].failures == 0);
    CHECK(kv_record_pool_in_use(pool) == 0);
    kv_record_pool_free(pool);
}

int main(void) {
    test_bad_args();
    test_reuse_and_release(37324, 64);      /* SmolLM2 tq3 page of a layer, RAM only */
    test_reuse_and_release(40960, 4096);    /* the same as an O_DIRECT record */
    test_reuse_and_release(100, 8);         /* many per chunk */
    test_reuse_and_release(3u << 20, 4096); /* larger than a chunk: one per chunk */
    test_threads();
    return rk_test_finish("test-kv-record-pool");
}
