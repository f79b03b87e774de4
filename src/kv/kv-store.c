/*
 * kv-store.c — the cold (disk) tier: records of sealed pages in one sparse file per layer
 * (see kv-store.h for the record layout and the contract).
 *
 * Where the time goes: moving bytes. A run of consecutive pages is one pwritev / preadv of the
 * caller's record buffers (up to STORE_BATCH records a call), straight from and into them, with
 * O_DIRECT when the filesystem takes it so that the page cache neither doubles the memory nor
 * adds a copy. The CRC32C of a payload (SSE4.2, several GB/s) costs little next to the disk.
 *
 * The layer files are unlinked as soon as they are open, and the subdirectory removed: the
 * store works on open descriptors, and a killed or crashed process leaves no page on disk.
 *
 * Trust comes from a slot table in RAM (16 bytes per page): the generation of the page's last
 * write (0 = not valid) and its payload CRC. Generations count writes store-wide, so a record
 * left over from an earlier write of the same slot never passes for the current one. The
 * 64-byte header on disk repeats layer, page, length, generation and payload CRC and carries
 * its own CRC, so a read can tell *what* went wrong: a flipped bit, a record written elsewhere,
 * a truncated file, a stale record.
 *
 * Threads: one mutex guards the slot table, the generation counter and the stats. It is never
 * held across I/O: a write reserves its slots (marks them invalid, counts their bytes) under
 * the lock, writes, then publishes the new generations; a read snapshots the expected
 * generations and CRCs of a batch under the lock, then reads and verifies without it.
 *
 * Header layout (little-endian):
 *     0 magic "RKKV"   4 format version   8 layer (u64)   16 page (u64)   24 payload bytes (u64)
 *    32 generation (u64)   40 payload CRC32C   44..59 zero   60 CRC32C of bytes 0..59
 */
#include "kv/kv-store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/crc32c.h"
#include "kv/kv-uring.h"
#include "core/clock.h"
#include "core/error.h"

#define STORE_MAGIC 0x564B4B52u /* "RKKV" read as a little-endian u32 */
#define STORE_VERSION 1u
#define STORE_BATCH 256 /* records per preadv / pwritev (at most IOV_MAX = 1024 on Linux) */
#define HDR_CRC_OFFSET 60
#define HDR_TAG_OFFSET 44 /* the sealer's 16-byte tag (zeros without a sealer) */

typedef struct store_slot {
    uint64_t gen; /* generation of the last completed write; 0: not valid */
    uint32_t crc; /* CRC32C of that write's payload */
    uint32_t pad;
} store_slot;

struct rk_kv_store {
    char *path; /* the subdirectory */
    int *fds;   /* (n_files) */
    int64_t n_files;
    int64_t slots_per_file;
    size_t payload_bytes;
    size_t record_bytes;
    uint64_t max_bytes;
    int direct;
    int unlinked; /* the names are gone (unlink_files ran) */
    const rk_kv_sealer *sealer; /* NULL: plain payloads */
    int keep_sealed;            /* reads leave sealed payloads sealed */

    pthread_mutex_t lock; /* guards everything below */
    store_slot *slots;    /* (n_files, slots_per_file) */
    uint64_t next_gen;    /* last generation handed out */
    rk_kv_store_stats stats;
};

/* ---- small helpers ---- */

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* The lock is logically not part of the store's value: const accessors take it too. */
static void store_lock(const rk_kv_store *s) { pthread_mutex_lock((pthread_mutex_t *)&s->lock); }
static void store_unlock(const rk_kv_store *s) {
    pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
}

static store_slot *slot_at(const rk_kv_store *s, int64_t file, int64_t slot) {
    return &s->slots[file * s->slots_per_file + slot];
}

static int is_space_errno(int e) {
    if (e == ENOSPC || e == EFBIG) return 1;
#ifdef EDQUOT
    if (e == EDQUOT) return 1;
#endif
    return 0;
}

/* ---- open / close ---- */

static char *layer_path(const rk_kv_store *s, int64_t file) {
    size_t n = strlen(s->path) + 48;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/layer-%03lld.kv", s->path, (long long)file);
    return p;
}

/* Creates layer `file`'s file. The first file decides O_DIRECT for all: where the filesystem
 * refuses it (EINVAL), the store silently falls back to buffered I/O. */
static rk_status open_layer(rk_kv_store *s, int64_t file, rk_error *err) {
    char *p = layer_path(s, file);
    if (!p) return rk_error_set(err, RK_ERR_NO_MEMORY, "kv disk tier: out of memory");
    int flags = O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC;
    int fd = -1;
#ifdef O_DIRECT
    if (s->direct) {
        fd = open(p, flags | O_DIRECT, 0600);
        if (fd < 0 && errno == EINVAL && file == 0) s->direct = 0;
    }
#else
    s->direct = 0;
#endif
    if (!s->direct) fd = open(p, flags, 0600);
    if (fd < 0) {
        rk_status st =
            rk_error_set(err, RK_ERR_IO, "kv disk tier: cannot create %s: %s", p, strerror(errno));
        free(p);
        return st;
    }
    free(p);
    s->fds[file] = fd;
    return RK_OK;
}

/* Removes the names of the files opened so far and the subdirectory. The open descriptors keep
 * the files alive; the kernel frees them when the last one closes, so nothing is left on disk
 * when the process ends, however it ends. Failures are ignored (nothing to lose). */
static void unlink_files(rk_kv_store *s) {
    if (!s->path || !s->fds || s->unlinked) return;
    s->unlinked = 1; /* once: the name may belong to another store afterwards */
    for (int64_t f = 0; f < s->n_files; f++) {
        if (s->fds[f] < 0) continue;
        char *p = layer_path(s, f);
        if (p) unlink(p);
        free(p);
    }
    rmdir(s->path);
}

static rk_status check_config(const rk_kv_store_config *c, rk_error *err) {
    if (!c || !c->dir)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "kv disk tier: no directory given");
    if (c->n_files <= 0 || c->slots_per_file <= 0 || c->payload_bytes == 0)
        return rk_error_set(err, RK_ERR_INVALID_ARG,
                            "kv disk tier: %lld files of %lld pages of %zu bytes: sizes must be "
                            "positive",
                            (long long)c->n_files, (long long)c->slots_per_file, c->payload_bytes);
    const uint64_t max_payload = (uint64_t)INT64_MAX / 2;
    if ((uint64_t)c->payload_bytes > max_payload)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "kv disk tier: page of %zu bytes is too large",
                            c->payload_bytes);
    uint64_t rb = ((uint64_t)c->payload_bytes + RK_KV_STORE_HEADER_BYTES + RK_KV_STORE_ALIGN - 1) /
                  RK_KV_STORE_ALIGN * RK_KV_STORE_ALIGN;
    if ((uint64_t)c->slots_per_file > (uint64_t)INT64_MAX / rb)
        return rk_error_set(err, RK_ERR_INVALID_ARG,
                            "kv disk tier: a file of %lld records of %llu bytes is too large",
                            (long long)c->slots_per_file, (unsigned long long)rb);
    if ((uint64_t)c->n_files > SIZE_MAX / sizeof(store_slot) / (uint64_t)c->slots_per_file)
        return rk_error_set(err, RK_ERR_INVALID_ARG,
                            "kv disk tier: %lld files of %lld pages: slot table too large",
                            (long long)c->n_files, (long long)c->slots_per_file);
    return RK_OK;
}

rk_status rk_kv_store_open(const rk_kv_store_config *config, rk_kv_store **out, rk_error *err) {
    if (!out) return rk_error_set(err, RK_ERR_INVALID_ARG, "kv disk tier: out is NULL");
    *out = NULL;
    rk_status st = check_config(config, err);
    if (st != RK_OK) return st;

    struct stat sb;
    if (stat(config->dir, &sb) != 0)
        return rk_error_set(err, RK_ERR_IO, "kv disk tier: directory %s: %s", config->dir,
                            strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return rk_error_set(err, RK_ERR_IO, "kv disk tier: %s: %s", config->dir, strerror(ENOTDIR));

    rk_kv_store *s = calloc(1, sizeof *s);
    if (!s) return rk_error_set(err, RK_ERR_NO_MEMORY, "kv disk tier: out of memory");
    s->n_files = config->n_files;
    s->slots_per_file = config->slots_per_file;
    s->payload_bytes = config->payload_bytes;
    s->max_bytes = config->max_bytes;
    s->direct = config->direct ? 1 : 0;
    s->sealer = config->sealer;
    s->keep_sealed = config->sealer && config->keep_sealed;
    pthread_mutex_init(&s->lock, NULL);
    s->fds = malloc((size_t)s->n_files * sizeof *s->fds);
    s->slots = calloc((size_t)(s->n_files * s->slots_per_file), sizeof *s->slots);
    size_t plen = strlen(config->dir) + sizeof "/ringkv-kv-XXXXXX";
    s->path = malloc(plen);
    if (s->fds)
        for (int64_t f = 0; f < s->n_files; f++)
            s->fds[f] = -1;
    if (!s->fds || !s->slots || !s->path) {
        free(s->path);
        s->path = NULL;
        rk_kv_store_close(s);
        return rk_error_set(err, RK_ERR_NO_MEMORY,
                            "kv disk tier: out of memory for %lld x %lld slots",
                            (long long)config->n_files, (long long)config->slots_per_file);
    }
    snprintf(s->path, plen, "%s/ringkv-kv-XXXXXX", config->dir);
    if (!mkdtemp(s->path)) {
        st = rk_error_set(err, RK_ERR_IO, "kv disk tier: cannot create a directory in %s: %s",
                          config->dir, strerror(errno));
        free(s->path);
        s->path = NULL;
        rk_kv_store_close(s);
        return st;
    }
    for (int64_t f = 0; f < s->n_files; f++) {
        st = open_layer(s, f, err);
        if (st != RK_OK) {
            rk_kv_store_close(s);
            return st;
        }
    }
    unlink_files(s);
    /* O_DIRECT needs 4096-byte records; buffered files pack them at 64 bytes (a tq3 page of
     * SmolLM2 would waste 10% padded to 4096) */
    const size_t align = rk_kv_store_align(s);
    s->record_bytes = (config->payload_bytes + RK_KV_STORE_HEADER_BYTES + align - 1) / align * align;
    *out = s;
    return RK_OK;
}

void rk_kv_store_close(rk_kv_store *store) {
    if (!store) return;
    unlink_files(store); /* when open failed half-way */
    if (store->fds)
        for (int64_t f = 0; f < store->n_files; f++)
            if (store->fds[f] >= 0) close(store->fds[f]);
    pthread_mutex_destroy(&store->lock);
    free(store->path);
    free(store->fds);
    free(store->slots);
    free(store);
}

size_t rk_kv_store_align(const rk_kv_store *store) {
    return store && store->direct ? RK_KV_STORE_ALIGN : RK_KV_STORE_ALIGN_BUFFERED;
}

size_t rk_kv_store_record_bytes(const rk_kv_store *store) {
    return store ? store->record_bytes : 0;
}

int rk_kv_store_is_direct(const rk_kv_store *store) { return store ? store->direct : 0; }

const char *rk_kv_store_path(const rk_kv_store *store) { return store ? store->path : NULL; }

/* ---- I/O ---- */

/* Checks the arguments common to write and read. */
static rk_status check_run(const rk_kv_store *s, int64_t file, int64_t first, int64_t count,
                           uint8_t *const *records, rk_error *err) {
    if (!s) return rk_error_set(err, RK_ERR_INVALID_ARG, "kv disk tier: no store");
    if (file < 0 || file >= s->n_files)
        return rk_error_set(err, RK_ERR_INVALID_ARG,
                            "kv disk tier: layer %lld out of range (%lld layers)", (long long)file,
                            (long long)s->n_files);
    if (count < 0 || first < 0 || count > s->slots_per_file || first > s->slots_per_file - count)
        return rk_error_set(err, RK_ERR_INVALID_ARG,
                            "kv disk tier: %lld pages from page %lld of layer %lld: out of range "
                            "(%lld pages per layer)",
                            (long long)count, (long long)first, (long long)file,
                            (long long)s->slots_per_file);
    if (count > 0 && !records)
        return rk_error_set(err, RK_ERR_INVALID_ARG,
                            "kv disk tier: no record buffers for page %lld of layer %lld",
                            (long long)first, (long long)file);
    for (int64_t i = 0; i < count; i++)
        if (!records[i] || (uintptr_t)records[i] % rk_kv_store_align(s) != 0)
            return rk_error_set(err, RK_ERR_INVALID_ARG,
                                "kv disk tier: record buffer of page %lld of layer %lld is %s",
                                (long long)(first + i), (long long)file,
                                records[i] ? "not aligned as rk_kv_store_align asks" : "NULL");
    return RK_OK;
}

/* Moves records[0 .. count-1] to / from consecutive records at byte offset `off` of fd, in
 * pwritev / preadv calls of up to STORE_BATCH records, resuming after short transfers.
 * Returns 0, or an errno value (-1: end of file while reading), with *done = bytes moved. */
static int transfer(int fd, int writing, off_t off, uint8_t *const *records, int64_t count,
                    size_t rb, uint64_t *done) {
    const uint64_t total = (uint64_t)count * rb;
    struct iovec iov[STORE_BATCH];
    *done = 0;
    while (*done < total) {
        int64_t page = (int64_t)(*done / rb);
        size_t skip = (size_t)(*done % rb);
        int n = count - page < STORE_BATCH ? (int)(count - page) : STORE_BATCH;
        const size_t want = (size_t)n * rb - skip;
        for (int i = 0; i < n; i++) {
            iov[i].iov_base = records[page + i];
            iov[i].iov_len = rb;
        }
        iov[0].iov_base = records[page] + skip;
        iov[0].iov_len = rb - skip;
        off_t at = off + (off_t)*done;
        ssize_t r = writing ? pwritev(fd, iov, n, at) : preadv(fd, iov, n, at);
        if (r < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (r == 0) return writing ? EIO : -1;
        *done += (uint64_t)r;
        /* A short read stops at the end of the file; asking again there could fail with
         * EINVAL under O_DIRECT (an unaligned offset) rather than return 0. */
        struct stat sb;
        if (!writing && (size_t)r < want && fstat(fd, &sb) == 0 && sb.st_size <= off + (off_t)*done)
            return -1;
    }
    return 0;
}

/* Fills the header of a record about to be written as page `slot` of `file`. */
static void fill_header(const rk_kv_store *s, uint8_t *rec, int64_t file, int64_t slot,
                        uint64_t gen, const uint8_t *tag) {
    memset(rec, 0, RK_KV_STORE_HEADER_BYTES);
    if (tag) memcpy(rec + HDR_TAG_OFFSET, tag, 16);
    put32(rec + 0, STORE_MAGIC);
    put32(rec + 4, STORE_VERSION);
    put64(rec + 8, (uint64_t)file);
    put64(rec + 16, (uint64_t)slot);
    put64(rec + 24, (uint64_t)s->payload_bytes);
    put64(rec + 32, gen);
    put32(rec + 40, rk_crc32c(0, rec + RK_KV_STORE_HEADER_BYTES, s->payload_bytes));
    put32(rec + HDR_CRC_OFFSET, rk_crc32c(0, rec, HDR_CRC_OFFSET));
}

#define ESEAL (-2) /* "errno" of a write whose sealing failed (out of memory, or the sealer) */

static void free_sealed(uint8_t **sealed, int64_t count) {
    for (int64_t i = 0; sealed && i < count; i++) free(sealed[i]);
    free(sealed);
}

/* Seals records[0 .. count) into new records (*out, freed with free_sealed): header with the
 * tag and the CRC of the sealed payload. The caller's records get the same header. 0 or ESEAL. */
static int seal_records(const rk_kv_store *s, int64_t file, int64_t first, int64_t count, uint64_t gen0,
                        uint8_t *const *records, uint8_t ***out) {
    const size_t rb = s->record_bytes, align = rk_kv_store_align(s);
    uint8_t **sealed = calloc((size_t)count, sizeof *sealed);
    int e = sealed ? 0 : ESEAL;
    for (int64_t i = 0; i < count && e == 0; i++) {
        sealed[i] = aligned_alloc(align, rb);
        uint8_t tag[16];
        if (!sealed[i] || s->sealer->seal(s->sealer->user, file, first + i, gen0 + (uint64_t)i,
                                          records[i] + RK_KV_STORE_HEADER_BYTES,
                                          sealed[i] + RK_KV_STORE_HEADER_BYTES, s->payload_bytes, tag) != 0) {
            e = ESEAL;
            break;
        }
        memset(sealed[i] + RK_KV_STORE_HEADER_BYTES + s->payload_bytes, 0,
               rb - RK_KV_STORE_HEADER_BYTES - s->payload_bytes);
        fill_header(s, sealed[i], file, first + i, gen0 + (uint64_t)i, tag);
        memcpy(records[i], sealed[i], RK_KV_STORE_HEADER_BYTES);
    }
    *out = sealed;
    return e;
}

/* Opens a sealed payload in place after its record passed verify() (unless the caller keeps
 * pages sealed). */
static rk_status open_sealed(const rk_kv_store *s, uint8_t *rec, int64_t file, int64_t slot, uint64_t gen,
                             rk_error *err) {
    if (!s->sealer || s->keep_sealed) return RK_OK;
    if (s->sealer->open(s->sealer->user, file, slot, gen, rec + RK_KV_STORE_HEADER_BYTES,
                        rec + RK_KV_STORE_HEADER_BYTES, s->payload_bytes,
                        rec + HDR_TAG_OFFSET) == 0)
        return RK_OK;
    return rk_error_set(err, RK_ERR_IO,
                        "kv disk tier: page %lld of layer %lld: the sealed page does not open (altered, or "
                        "sealed with another key)", (long long)slot, (long long)file);
}

/* Under the lock: checks the budget for pages first .. first+count-1 (rewritten pages count
 * once), then marks them invalid, counts them in bytes_held and hands out their generations
 * (*gen0 + i). Nothing changes when the budget says no. */
static rk_status reserve(rk_kv_store *s, int64_t file, int64_t first, int64_t count, uint64_t *gen0,
                         rk_error *err) {
    rk_status st = RK_OK;
    store_lock(s);
    uint64_t held = s->stats.bytes_held;
    for (int64_t i = 0; i < count; i++) {
        if (slot_at(s, file, first + i)->gen == 0) held += s->record_bytes;
        if (s->max_bytes && held > s->max_bytes) {
            s->stats.write_errors++;
            st = rk_error_set(err, RK_ERR_IO,
                              "kv disk tier: --kv-disk-max of %llu bytes reached writing page "
                              "%lld of layer %lld (holding %llu, page needs %zu)",
                              (unsigned long long)s->max_bytes, (long long)(first + i),
                              (long long)file, (unsigned long long)s->stats.bytes_held,
                              s->record_bytes);
            break;
        }
    }
    if (st == RK_OK) {
        for (int64_t i = 0; i < count; i++)
            slot_at(s, file, first + i)->gen = 0;
        s->stats.bytes_held = held;
        *gen0 = s->next_gen + 1;
        s->next_gen += (uint64_t)count;
    }
    store_unlock(s);
    return st;
}

rk_status rk_kv_store_write(rk_kv_store *store, int64_t file, int64_t first, int64_t count,
                            uint8_t *const *records, rk_error *err) {
    rk_status st = check_run(store, file, first, count, records, err);
    if (st != RK_OK || count == 0) return st;
    rk_kv_store_stats *stats = &store->stats;
    const size_t rb = store->record_bytes;
    const double t0 = rk_now_seconds();
    uint64_t gen0 = 0;
    st = reserve(store, file, first, count, &gen0, err);
    if (st != RK_OK) return st;

    uint8_t **out = (uint8_t **)records, **sealed = NULL;
    int e = 0;
    if (store->sealer) { /* sealed copies go to disk; the caller's records keep the plain page */
        e = seal_records(store, file, first, count, gen0, records, &sealed);
        out = sealed;
    } else {
        for (int64_t i = 0; i < count; i++) fill_header(store, records[i], file, first + i, gen0 + i, NULL);
    }
    uint64_t done = 0;
    if (e == 0) e = transfer(store->fds[file], 1, (off_t)first * (off_t)rb, out, count, rb, &done);

    store_lock(store);
    if (e == 0) {
        for (int64_t i = 0; i < count; i++) {
            store_slot *sl = slot_at(store, file, first + i);
            sl->gen = gen0 + (uint64_t)i;
            sl->crc = get32(out[i] + 40);
        }
        stats->bytes_written += (uint64_t)count * rb;
        stats->pages_written += (uint64_t)count;
    } else {
        stats->bytes_held -= (uint64_t)count * rb; /* the pages stay invalid */
        stats->write_errors++;
    }
    stats->write_seconds += rk_now_seconds() - t0;
    store_unlock(store);
    free_sealed(sealed, count);
    if (e == 0) return RK_OK;
    if (e == ESEAL)
        return rk_error_set(err, RK_ERR_IO, "kv disk tier: sealing pages %lld.. of layer %lld failed",
                            (long long)first, (long long)file);

    long long page = (long long)(first + (int64_t)(done / rb));
    if (is_space_errno(e))
        return rk_error_set(err, RK_ERR_IO,
                            "kv disk tier: no space left in %s writing page %lld of layer %lld "
                            "(%zu bytes): %s",
                            store->path, page, (long long)file, rb, strerror(e));
    return rk_error_set(err, RK_ERR_IO, "kv disk tier: writing page %lld of layer %lld in %s: %s",
                        page, (long long)file, store->path, strerror(e));
}

/* Checks one record read as page `slot` of `file` against the slot table's expectations
 * (gen, crc). RK_OK, or RK_ERR_IO saying what is wrong. */
static rk_status verify(const rk_kv_store *s, const uint8_t *rec, int64_t file, int64_t slot,
                        uint64_t gen, uint32_t crc, rk_error *err) {
    const long long p = (long long)slot, l = (long long)file;
#define FAIL(...)                                                                                  \
    rk_error_set(err, RK_ERR_IO, "kv disk tier: page %lld of layer %lld: " __VA_ARGS__)
    uint32_t magic = get32(rec);
    if (magic != STORE_MAGIC)
        return FAIL("not a page record (magic 0x%08x, expected 0x%08x)", p, l, magic, STORE_MAGIC);
    uint32_t hcrc_stored = get32(rec + HDR_CRC_OFFSET), hcrc = rk_crc32c(0, rec, HDR_CRC_OFFSET);
    if (hcrc != hcrc_stored)
        return FAIL("header checksum mismatch (stored 0x%08x, read 0x%08x)", p, l, hcrc_stored,
                    hcrc);
    if (get32(rec + 4) != STORE_VERSION)
        return FAIL("format version %u (expected %u)", p, l, get32(rec + 4), STORE_VERSION);
    uint64_t hfile = get64(rec + 8), hslot = get64(rec + 16);
    if (hfile != (uint64_t)file || hslot != (uint64_t)slot)
        return FAIL("header names page %lld of layer %lld", p, l, (long long)hslot,
                    (long long)hfile);
    if (get64(rec + 24) != (uint64_t)s->payload_bytes)
        return FAIL("header says %llu payload bytes (expected %zu)", p, l,
                    (unsigned long long)get64(rec + 24), s->payload_bytes);
    if (get64(rec + 32) != gen)
        return FAIL("stale record of generation %llu (the last write was generation %llu)", p, l,
                    (unsigned long long)get64(rec + 32), (unsigned long long)gen);
    uint32_t pcrc = rk_crc32c(0, rec + RK_KV_STORE_HEADER_BYTES, s->payload_bytes);
    if (pcrc != crc) return FAIL("checksum mismatch (stored 0x%08x, read 0x%08x)", p, l, crc, pcrc);
    if (get32(rec + 40) != crc)
        return FAIL("header records checksum 0x%08x (stored 0x%08x)", p, l, get32(rec + 40), crc);
#undef FAIL
    return RK_OK;
}

/* What the slot table expects of pages[0 .. n) of `file` (pages NULL: first, first+1, ...):
 * their generations and CRCs, taken under the lock. RK_ERR_IO for a page never written. */
static rk_status snapshot(rk_kv_store *s, int64_t file, const int64_t *pages, int64_t first, int64_t n,
                          uint64_t *gens, uint32_t *crcs, rk_error *err) {
    int64_t invalid = -1;
    store_lock(s);
    for (int64_t i = 0; i < n; i++) {
        const store_slot *sl = slot_at(s, file, pages ? pages[i] : first + i);
        gens[i] = sl->gen;
        crcs[i] = sl->crc;
        if (sl->gen == 0 && invalid < 0) invalid = pages ? pages[i] : first + i;
    }
    store_unlock(s);
    if (invalid >= 0)
        return rk_error_set(err, RK_ERR_IO,
                            "kv disk tier: page %lld of layer %lld: never written (or dropped, or "
                            "its write failed)",
                            (long long)invalid, (long long)file);
    return RK_OK;
}

/* Reads and verifies up to STORE_BATCH pages (first .. first+count-1). */
static rk_status read_batch(rk_kv_store *s, int64_t file, int64_t first, int64_t count,
                            uint8_t *const *records, rk_error *err) {
    uint64_t gens[STORE_BATCH];
    uint32_t crcs[STORE_BATCH];
    rk_status snap = snapshot(s, file, NULL, first, count, gens, crcs, err);
    if (snap) return snap;

    const size_t rb = s->record_bytes;
    uint64_t done = 0;
    int e = transfer(s->fds[file], 0, (off_t)first * (off_t)rb, records, count, rb, &done);
    if (e != 0) {
        long long page = (long long)(first + (int64_t)(done / rb));
        if (e < 0)
            return rk_error_set(err, RK_ERR_IO,
                                "kv disk tier: page %lld of layer %lld: short read (%llu of %zu "
                                "bytes): the file was truncated",
                                page, (long long)file, (unsigned long long)(done % rb), rb);
        return rk_error_set(err, RK_ERR_IO,
                            "kv disk tier: page %lld of layer %lld: read failed: %s", page,
                            (long long)file, strerror(e));
    }
    for (int64_t i = 0; i < count; i++) {
        rk_status st = verify(s, records[i], file, first + i, gens[i], crcs[i], err);
        if (st == RK_OK) st = open_sealed(s, records[i], file, first + i, gens[i], err);
        if (st != RK_OK) return st;
    }
    return RK_OK;
}

/* Adds a read call of `pages` pages that started at t0 (and ended with st) to the stats. */
static void count_read(rk_kv_store *store, rk_status st, int64_t pages, double t0) {
    store_lock(store);
    if (st == RK_OK) {
        store->stats.bytes_read += (uint64_t)pages * store->record_bytes;
        store->stats.pages_read += (uint64_t)pages;
    } else {
        store->stats.read_errors++;
    }
    store->stats.read_seconds += rk_now_seconds() - t0;
    store_unlock(store);
}

rk_status rk_kv_store_read(rk_kv_store *store, int64_t file, int64_t first, int64_t count,
                           uint8_t *const *records, rk_error *err) {
    rk_status st = check_run(store, file, first, count, records, err);
    if (st != RK_OK || count == 0) return st;
    const double t0 = rk_now_seconds();
    for (int64_t i = 0; i < count && st == RK_OK; i += STORE_BATCH) {
        int64_t n = count - i < STORE_BATCH ? count - i : STORE_BATCH;
        st = read_batch(store, file, first + i, n, records + i, err);
    }
    count_read(store, st, count, t0);
    return st;
}

#define EXTENT_BYTES (256 * 1024) /* one read in flight; a layer's run is cut into these */

/* The io_uring path of rk_kv_store_read_pages: every run in EXTENT_BYTES pieces, all in flight,
 * then every page verified. A piece that comes back short or failed is read again with
 * rk_kv_store_read, which reports the exact cause. */
static rk_status read_pages_uring(rk_kv_store *s, rk_kv_uring *ring, int64_t file, const int64_t *pages,
                                  int64_t n, uint8_t *const *records, rk_error *err) {
    const size_t rb = s->record_bytes;
    const int64_t per_extent = rb >= EXTENT_BYTES ? 1 : (int64_t)(EXTENT_BYTES / rb);
    uint64_t *gens = malloc((size_t)n * sizeof *gens);
    uint32_t *crcs = malloc((size_t)n * sizeof *crcs);
    struct iovec *iov = malloc((size_t)n * sizeof *iov);
    rk_kv_extent *ext = malloc((size_t)n * sizeof *ext);
    int64_t *res = malloc((size_t)n * sizeof *res), *ext_first = malloc((size_t)n * sizeof *ext_first);
    rk_status st = RK_OK;
    if (!gens || !crcs || !iov || !ext || !res || !ext_first)
        st = rk_error_set(err, RK_ERR_NO_MEMORY, "kv disk tier: out of memory reading layer %lld", (long long)file);
    if (!st) st = snapshot(s, file, pages, 0, n, gens, crcs, err);
    int n_ext = 0;
    for (int64_t i = 0; i < n && !st; i++) {
        iov[i].iov_base = records[i];
        iov[i].iov_len = rb;
        const rk_kv_extent *last = n_ext > 0 ? &ext[n_ext - 1] : NULL;
        if (last && pages[i] == pages[i - 1] + 1 && last->n_iov < per_extent) {
            ext[n_ext - 1].n_iov++;
            ext[n_ext - 1].bytes += rb;
        } else {
            ext_first[n_ext] = i;
            ext[n_ext++] = (rk_kv_extent){s->fds[file], (off_t)pages[i] * (off_t)rb, &iov[i], 1, rb};
        }
    }
    if (!st) rk_kv_uring_read(ring, ext, n_ext, res);
    for (int e = 0; e < n_ext && !st; e++) {
        const int64_t i0 = ext_first[e];
        if (res[e] != (int64_t)ext[e].bytes) { /* short, failed or never submitted: again, plainly */
            st = rk_kv_store_read(s, file, pages[i0], ext[e].n_iov, records + i0, err);
            continue;
        }
        for (int64_t i = i0; i < i0 + ext[e].n_iov && !st; i++)
            if (!(st = verify(s, records[i], file, pages[i], gens[i], crcs[i], err)))
                st = open_sealed(s, records[i], file, pages[i], gens[i], err);
    }
    free(gens), free(crcs), free(iov), free(ext), free(res), free(ext_first);
    return st;
}

rk_status rk_kv_store_read_pages(rk_kv_store *store, rk_kv_uring *ring, int64_t file, const int64_t *pages,
                                 int64_t n, uint8_t *const *records, rk_error *err) {
    for (int64_t i = 0; i < n; i++) { /* each page in range, ascending, its buffer fit */
        if (i > 0 && pages[i] <= pages[i - 1])
            return rk_error_set(err, RK_ERR_INVALID_ARG, "kv disk tier: pages of layer %lld not ascending",
                                (long long)file);
        rk_status st = check_run(store, file, pages[i], 1, records + i, err);
        if (st) return st;
    }
    if (n == 0) return RK_OK;
    if (!ring) { /* one run of consecutive pages after another */
        for (int64_t a = 0; a < n;) {
            int64_t b = a + 1;
            while (b < n && pages[b] == pages[b - 1] + 1) b++;
            rk_status st = rk_kv_store_read(store, file, pages[a], b - a, records + a, err);
            if (st) return st;
            a = b;
        }
        return RK_OK;
    }
    const double t0 = rk_now_seconds();
    rk_status st = read_pages_uring(store, ring, file, pages, n, records, err);
    count_read(store, st, n, t0);
    return st;
}

void rk_kv_store_drop_range(rk_kv_store *store, int64_t file, int64_t first, int64_t end) {
    if (!store || file < 0 || file >= store->n_files) return;
    if (first < 0) first = 0;
    if (end > store->slots_per_file) end = store->slots_per_file;
    if (first >= end) return;
    store_lock(store);
    for (int64_t i = first; i < end; i++) {
        store_slot *sl = slot_at(store, file, i);
        if (sl->gen != 0) store->stats.bytes_held -= store->record_bytes;
        sl->gen = 0;
    }
    store_unlock(store);
#if defined(FALLOC_FL_PUNCH_HOLE) && defined(FALLOC_FL_KEEP_SIZE)
    const off_t rb = (off_t)store->record_bytes;
    (void)fallocate(store->fds[file], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, first * rb, (end - first) * rb);
#endif
}

void rk_kv_store_drop(rk_kv_store *store, int64_t file, int64_t first) {
    if (store) rk_kv_store_drop_range(store, file, first, store->slots_per_file);
}

int rk_kv_store_valid(const rk_kv_store *store, int64_t file, int64_t slot) {
    if (!store || file < 0 || file >= store->n_files || slot < 0 || slot >= store->slots_per_file)
        return 0;
    store_lock(store);
    int valid = slot_at(store, file, slot)->gen != 0;
    store_unlock(store);
    return valid;
}

void rk_kv_store_record_seal(const uint8_t *record, uint64_t *gen, uint8_t tag[16]) {
    *gen = get64(record + 32);
    memcpy(tag, record + HDR_TAG_OFFSET, 16);
}

void rk_kv_store_get_stats(const rk_kv_store *store, rk_kv_store_stats *out) {
    if (!out) return;
    if (!store) {
        memset(out, 0, sizeof *out);
        return;
    }
    store_lock(store);
    *out = store->stats;
    store_unlock(store);
}
