/*
 * kv-store.h — the cold tier of the KV cache: sealed pages in files on disk, one checksum each.
 *
 * A store is a private subdirectory with one sparse file per layer (unlinked as soon as they
 * are open, so nothing outlives the process); page i of a layer lives at
 * offset i * record_bytes of that layer's file, so a run of consecutive pages is one large
 * sequential read or write (preadv / pwritev), and never-written pages take no disk space.
 *
 * A *record* is the unit of I/O: a 64-byte header, then the page's payload, padded to a
 * multiple of RK_KV_STORE_ALIGN:
 *
 *     [0, 64)                     header, filled by the store on write (magic, format version,
 *                                 layer, page, payload length, generation, CRC32C of the
 *                                 payload as written, the sealer's 16-byte tag or zeros,
 *                                 CRC32C of the header)
 *     [64, 64 + payload_bytes)    the payload: the page's bytes, owned by the caller
 *     [.., record_bytes)          padding (written as is, never read back)
 *
 * The caller keeps each page in a record buffer of record_bytes bytes aligned to
 * rk_kv_store_align (the cache carves them from chunks: kv-record-pool.h), so the store reads
 * and writes records in place — no copy, and O_DIRECT works when the filesystem allows it.
 *
 * Trust: the store remembers in RAM, for every slot, whether it holds a valid page, the
 * generation of its last write and the payload's CRC. A read serves a page only when the
 * record on disk is the one written last to that very slot and its bytes are intact; anything
 * else (bit flips, truncation, records moved or left over from an older write) is an
 * RK_ERR_IO naming the page and the layer.
 *
 * Threads: reads may run on another thread concurrently with writes and drops of *other*
 * slots (the slot table and the stats are behind a mutex, held only between I/Os). Two calls
 * touching the same slot at the same time are not supported.
 */
#ifndef RK_KV_STORE_H
#define RK_KV_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "ringkv.h"

#define RK_KV_STORE_HEADER_BYTES 64
#define RK_KV_STORE_ALIGN 4096          /* records and buffers with O_DIRECT */
#define RK_KV_STORE_ALIGN_BUFFERED 64   /* ... without */

typedef struct rk_kv_store rk_kv_store;

typedef struct rk_kv_store_config {
    const char *dir;        /* an existing directory; the store makes its own subdirectory in
                             * it (mkdtemp "ringkv-kv-XXXXXX") and removes it on close */
    uint64_t max_bytes;     /* most record bytes the store may hold at once; 0 = no limit */
    int64_t n_files;        /* one file per layer ("layer-%03lld.kv" in the subdirectory) */
    int64_t slots_per_file; /* pages per layer; page i of a file lives at offset
                             * i * record_bytes (files are sparse) */
    size_t payload_bytes;   /* bytes of one page's payload (the same for every page) */
    int direct;             /* 1: try O_DIRECT (falls back to buffered I/O, silently, where
                             * the filesystem refuses it, e.g. tmpfs) */
    const rk_kv_sealer *sealer; /* NULL: payloads are written as they are; else each payload
                                 * is sealed on its way to disk (the caller's record keeps the
                                 * plain page) and opened after it is read and its CRC checked */
    int keep_sealed;        /* with a sealer, 1: reads check the CRC and leave the payload
                             * sealed; the caller opens it with the generation and tag that
                             * rk_kv_store_record_seal reads from the header (the cache keeps
                             * pages read back sealed in RAM) */
} rk_kv_store_config;

typedef struct rk_kv_store_stats {
    uint64_t bytes_written, bytes_read; /* record bytes moved by successful calls */
    uint64_t pages_written, pages_read; /* pages moved by successful calls */
    uint64_t bytes_held;                /* record bytes of the pages currently valid (and of
                                         * those being written right now) */
    double write_seconds, read_seconds; /* wall time inside write / read calls (all calls,
                                         * checksums included) */
    uint64_t write_errors, read_errors; /* calls that failed (any reason, bad arguments
                                         * excepted) */
} rk_kv_store_stats;

/* Creates the subdirectory and the layer files, then unlinks them and removes the subdirectory:
 * the store keeps only open descriptors, so the files vanish with the process however it ends
 * (their space is freed when the descriptors close). *out belongs to the caller
 * (rk_kv_store_close).
 * RK_ERR_INVALID_ARG for a NULL config, dir or out, non-positive sizes, or sizes whose files
 * would not fit in an off_t; RK_ERR_IO when the directory is missing or not writable, or a
 * file cannot be created (the message names the path and strerror); RK_ERR_NO_MEMORY. */
rk_status rk_kv_store_open(const rk_kv_store_config *config, rk_kv_store **out, rk_error *err);

/* Closes the files (already unlinked), which frees their space. NULL is a no-op. */
void rk_kv_store_close(rk_kv_store *store);

/* Bytes of one record: RK_KV_STORE_HEADER_BYTES + payload_bytes rounded up to
 * RK_KV_STORE_ALIGN. */
size_t rk_kv_store_record_bytes(const rk_kv_store *store);

/* The alignment of records (on disk and of the caller's buffers): RK_KV_STORE_ALIGN when the
 * files are O_DIRECT, else RK_KV_STORE_ALIGN_BUFFERED. */
size_t rk_kv_store_align(const rk_kv_store *store);

/* 1 when the files were opened with O_DIRECT, 0 when the store fell back to buffered I/O. */
int rk_kv_store_is_direct(const rk_kv_store *store);

/* The store's subdirectory, for messages (removed right after open; valid until close). */
const char *rk_kv_store_path(const rk_kv_store *store);

/* Writes pages first .. first+count-1 of layer `file` from records[i] (record buffers as
 * above, aligned to RK_KV_STORE_ALIGN, payload at offset 64), in as few large sequential
 * writes as possible. The store fills each record's 64-byte header in place and remembers
 * the page's generation and checksum. Rewriting a valid page is allowed (it gets a new
 * generation and is not counted twice against max_bytes). count = 0 does nothing.
 * Errors:
 *   RK_ERR_INVALID_ARG  layer or pages out of range, NULL or misaligned record buffers
 *                       (nothing changes);
 *   RK_ERR_IO           "kv disk tier: --kv-disk-max of X bytes reached writing page P of layer
 *                       L (holding Y, page needs Z)" when max_bytes would be exceeded: checked
 *                       before any I/O, so nothing changes;
 *                       "kv disk tier: no space left in DIR writing page P of layer L (N
 *                       bytes): ..." for ENOSPC, EFBIG, EDQUOT, and other I/O errors with
 *                       strerror: every page of the call is then invalid (never served) and
 *                       bytes_held no longer counts them. */
rk_status rk_kv_store_write(rk_kv_store *store, int64_t file, int64_t first, int64_t count,
                            uint8_t *const *records, rk_error *err);

/* Reads pages first .. first+count-1 of layer `file` into records[i] (the caller's record
 * buffers, aligned to RK_KV_STORE_ALIGN, record_bytes each), in large sequential reads, and
 * verifies each page: it must be valid, its header's magic, version, layer, page, length and
 * generation must be those of its last write, and both CRCs must match. The payload is then
 * at records[i] + RK_KV_STORE_HEADER_BYTES. count = 0 does nothing.
 * Errors: RK_ERR_INVALID_ARG as for writes; RK_ERR_IO for the first page that fails, naming
 * it and what was wrong ("kv disk tier: page 17 of layer 3: checksum mismatch (stored 0x…, read
 * 0x…)", "…: short read (N of M bytes): the file was truncated", "…: never written (or
 * dropped, or its write failed)", "…: header names page X of layer Y", …). A page that fails
 * is never served: on error the contents of records[] are unspecified. Safe on another
 * thread concurrently with writes of other slots. */
rk_status rk_kv_store_read(rk_kv_store *store, int64_t file, int64_t first, int64_t count,
                           uint8_t *const *records, rk_error *err);

typedef struct rk_kv_uring rk_kv_uring;

/* Reads pages[0 .. n) of layer `file` (ascending, not necessarily consecutive) into
 * records[0 .. n), with the same checks and errors as rk_kv_store_read. With a ring
 * (kv-uring.h) every run of consecutive pages, cut into 256 KiB pieces, is in flight at once;
 * with NULL the runs are read one after another. The ring's statistics count as reads (a page
 * re-read after a short or failed piece counts twice). */
rk_status rk_kv_store_read_pages(rk_kv_store *store, rk_kv_uring *ring, int64_t file, const int64_t *pages,
                                 int64_t n, uint8_t *const *records, rk_error *err);

/* Forgets pages first .. slots_per_file-1 of layer `file` (a truncated sequence): they become
 * invalid, stop counting in bytes_held, and their disk space is released (fallocate
 * PUNCH_HOLE where supported; failure is ignored). Out-of-range arguments are clamped: a
 * layer out of range does nothing, first < 0 drops the whole layer. */
void rk_kv_store_drop(rk_kv_store *store, int64_t file, int64_t first);

/* Forgets slots first .. end-1 of `file` alike (pages freed behind a sliding window). */
void rk_kv_store_drop_range(rk_kv_store *store, int64_t file, int64_t first, int64_t end);

/* 1 when page `slot` of layer `file` holds a valid page, else 0 (also out of range). */
int rk_kv_store_valid(const rk_kv_store *store, int64_t file, int64_t slot);

/* The generation and sealer's tag of a record read with keep_sealed: the sealed payload opens
 * with sealer->open(layer, page, *gen, ..., tag). */
void rk_kv_store_record_seal(const uint8_t *record, uint64_t *gen, uint8_t tag[16]);

/* A consistent snapshot of the counters. */
void rk_kv_store_get_stats(const rk_kv_store *store, rk_kv_store_stats *out);

#endif
