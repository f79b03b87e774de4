/*
 * kv-prefetch.h — the I/O thread of the disk tier (private to src/kv).
 *
 * One background thread reads cold pages into record buffers while the forward pass computes:
 * when layer L's attention starts, the cold pages of layer L+1 are handed over, and by the time
 * layer L+1 needs them they are (ideally) in RAM. One request is outstanding at a time; the
 * buffers belong to the caller, who must not touch them between submit and wait.
 */
#ifndef RK_KV_PREFETCH_H
#define RK_KV_PREFETCH_H

#include <stdint.h>

#include "kv/kv-store.h"

typedef struct kv_prefetch kv_prefetch;

/* Starts the thread. *out belongs to the caller (kv_prefetch_stop). RK_ERR_NO_MEMORY or
 * RK_ERR_INTERNAL when the thread cannot start. */
rk_status kv_prefetch_start(rk_kv_store *store, int64_t max_pages, kv_prefetch **out,
                            rk_error *err);
/* Waits for an outstanding request, then stops and frees the thread. NULL is a no-op. */
void kv_prefetch_stop(kv_prefetch *io);

/* Asks the thread to read pages[0 .. n) (ascending page indices of file `file`, n <= max_pages)
 * into recs[0 .. n). Requires no outstanding request. Both arrays are copied. */
void kv_prefetch_submit(kv_prefetch *io, int64_t file, const int64_t *pages, uint8_t *const *recs,
                        int64_t n);

/* 1 when the thread reads through an io_uring (every piece of a request in flight at once). */
int kv_prefetch_uses_uring(const kv_prefetch *io);

/* The file of the outstanding request, or -1 when there is none. */
int64_t kv_prefetch_pending_file(const kv_prefetch *io);

/* Waits for the outstanding request (if any) to finish. *io_seconds gets the time the thread
 * spent reading it, *wait_seconds the time this call blocked. Returns the read's status: on
 * failure err names the page, and every buffer of the request is to be treated as unread. */
rk_status kv_prefetch_wait(kv_prefetch *io, double *io_seconds, double *wait_seconds,
                           rk_error *err);

#endif
