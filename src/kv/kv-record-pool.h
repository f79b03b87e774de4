/*
 * kv-record-pool.h — a cache's page records, all of one size and alignment, carved from large
 * chunks (private to src/kv).
 *
 * Why: a record is tens of KiB and, with an O_DIRECT disk tier, 4096-byte aligned. glibc's
 * aligned_alloc(4096, n) leaves up to 4 KiB of each such block unusable, which measured 10% of
 * RSS on top of the records at 1M tokens (0.1% at 64-byte alignment). A chunk holds many
 * records back to back (about 2 MiB of them) in its own mapping, so alignment is paid once per
 * chunk; slots of freed records are reused first, and a chunk whose records are all free is
 * unmapped, except one kept as a spare.
 *
 * Thread-safe: get and put take the pool's mutex (the I/O thread and the caller's thread may
 * both hold records).
 */
#ifndef RK_KV_RECORD_POOL_H
#define RK_KV_RECORD_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct kv_record_pool kv_record_pool;

/* A pool of records of rec_bytes at `align` (a power of two, at least sizeof(void *)).
 * *out belongs to the caller (kv_record_pool_free). RK_ERR_INVALID_ARG for a zero size or a bad
 * alignment; RK_ERR_NO_MEMORY. */
rk_status kv_record_pool_create(size_t rec_bytes, size_t align, kv_record_pool **out,
                                rk_error *err);
/* Frees every chunk: records not put back become invalid. NULL is a no-op. */
void kv_record_pool_free(kv_record_pool *pool);

/* One record (uninitialised, aligned), or NULL when out of memory. */
uint8_t *kv_record_pool_get(kv_record_pool *pool);
/* Gives a record from this pool back. NULL is a no-op. */
void kv_record_pool_put(kv_record_pool *pool, uint8_t *rec);

/* Records handed out and not yet put back, and bytes of chunks the pool holds. */
size_t kv_record_pool_in_use(kv_record_pool *pool);
size_t kv_record_pool_chunk_bytes(kv_record_pool *pool);
/* Records one chunk holds (at least 1). */
size_t kv_record_pool_per_chunk(const kv_record_pool *pool);

#endif
