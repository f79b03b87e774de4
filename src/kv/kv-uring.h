/*
 * kv-uring.h — many reads in flight at once for the disk tier (private to src/kv).
 *
 * The I/O thread reads a layer's cold pages as a handful of large extents. One preadv after
 * another keeps one request at the disk; an io_uring keeps them all there, which is what lets
 * a virtual disk or an NVMe drive reach its bandwidth (this VM's disk: 1.2 GB/s to one reader
 * of 1 MiB requests, 1.44 GB/s to four). Built only with liburing (Debian liburing-dev); without
 * it, or where the kernel refuses io_uring, rk_kv_uring_create returns NULL and callers read one
 * extent after another.
 */
#ifndef RK_KV_URING_H
#define RK_KV_URING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct rk_kv_uring rk_kv_uring;

/* One read: n_iov buffers filled from `offset` of fd, `bytes` in all. */
typedef struct rk_kv_extent {
    int fd;
    off_t offset;
    const struct iovec *iov;
    int n_iov;
    size_t bytes;
} rk_kv_extent;

/* A ring for up to `depth` reads in flight, or NULL when io_uring is not available. Use it
 * from one thread at a time. */
rk_kv_uring *rk_kv_uring_create(unsigned depth);
void rk_kv_uring_free(rk_kv_uring *ring);

/* Reads every extent, up to the ring's depth in flight at once, and waits for all of them.
 * res[i] gets the bytes extent i read (short at the end of a file) or -errno. A result other
 * than ext[i].bytes is for the caller to retry or report (with pread it gets the exact cause). */
void rk_kv_uring_read(rk_kv_uring *ring, const rk_kv_extent *ext, int n, int64_t *res);

#endif
