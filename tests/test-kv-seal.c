/*
 * test-kv-seal.c — the server's page sealer (server/seal.h) alone and under the disk tier's
 * store (kv/kv-store.h): pages come back exactly; the file holds no plaintext; a sealed page
 * opens only at its own (id, layer, page, generation) and only with its key; a copy taken
 * before the key is shredded cannot be opened by any key made afterwards; a flipped bit in a
 * sealed page fails to open; a store that keeps pages sealed returns them sealed, and they open
 * with the generation and tag of their record's header.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "kv/kv-store.h"
#include "server/seal.h"
#include "test-util.h"

#define PAYLOAD 3000

static void fill_plain(uint8_t *p, size_t n, int seed) {
    static const char marker[] = "PLAINTEXT-MARKER";
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)marker[(i + (size_t)seed) % (sizeof marker - 1)];
}

static void test_sealer_alone(void) {
    rk_seal_key *a = NULL, *b = NULL;
    rk_error err;
    CHECK(rk_seal_key_create("0123456789abcdef0123456789abcdef", &a, &err) == RK_OK);
    CHECK(rk_seal_key_create("0123456789abcdef0123456789abcdef", &b, &err) == RK_OK);
    const rk_kv_sealer *sa = rk_seal_key_sealer(a), *sb = rk_seal_key_sealer(b);
    uint8_t plain[PAYLOAD], sealed[PAYLOAD], buf[PAYLOAD], tag[16];
    fill_plain(plain, sizeof plain, 0);
    CHECK(sa->seal(sa->user, 3, 7, 42, plain, sealed, sizeof plain, tag) == 0);
    CHECK(memcmp(plain, sealed, sizeof plain) != 0);
    CHECK(memmem(sealed, sizeof sealed, "PLAINTEXT", 9) == NULL);
    memcpy(buf, sealed, sizeof buf);
    CHECK(sa->open(sa->user, 3, 7, 42, buf, buf, sizeof buf, tag) == 0 && memcmp(buf, plain, sizeof plain) == 0);
    /* elsewhere, at another generation, under another key of the same id: refused */
    const int64_t places[3][3] = {{4, 7, 42}, {3, 8, 42}, {3, 7, 41}};
    for (int i = 0; i < 3; i++) {
        memcpy(buf, sealed, sizeof buf);
        CHECK(sa->open(sa->user, places[i][0], places[i][1], (uint64_t)places[i][2], buf, buf, sizeof buf, tag) != 0);
    }
    memcpy(buf, sealed, sizeof buf);
    CHECK(sb->open(sb->user, 3, 7, 42, buf, buf, sizeof buf, tag) != 0);
    /* one flipped bit anywhere */
    for (size_t at = 0; at < sizeof sealed; at += 997) {
        memcpy(buf, sealed, sizeof buf);
        buf[at] ^= 1;
        CHECK(sa->open(sa->user, 3, 7, 42, buf, buf, sizeof buf, tag) != 0);
    }
    /* shredded: the copy is noise to every key made afterwards */
    rk_seal_key_shred(a);
    for (int i = 0; i < 8; i++) {
        rk_seal_key *c = NULL;
        CHECK(rk_seal_key_create("0123456789abcdef0123456789abcdef", &c, &err) == RK_OK);
        const rk_kv_sealer *sc = rk_seal_key_sealer(c);
        memcpy(buf, sealed, sizeof buf);
        CHECK(sc->open(sc->user, 3, 7, 42, buf, buf, sizeof buf, tag) != 0);
        rk_seal_key_shred(c);
    }
    rk_seal_key_shred(b);
    rk_seal_key_shred(NULL);
    char long_id[80];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    CHECK(rk_seal_key_create(long_id, &a, &err) == RK_ERR_INVALID_ARG);
}

/* The store writes sealed records and reads back plain pages; its files hold no plaintext. */
/* A second store over the same directory with keep_sealed: a page read back stays sealed and
 * opens, in place, only with the generation and tag of its header, at its own place. */
static void test_keep_sealed(const rk_kv_store_config *base, uint8_t *const *rec) {
    rk_kv_store_config c = *base;
    c.keep_sealed = 1;
    rk_kv_store *store = NULL;
    rk_error err;
    CHECK(rk_kv_store_open(&c, &store, &err) == RK_OK);
    if (!store) return;
    const size_t rb = rk_kv_store_record_bytes(store);
    uint8_t *back = aligned_alloc(rk_kv_store_align(store), rb);
    CHECK(rk_kv_store_write(store, 0, 2, 1, rec + 2, &err) == RK_OK);
    CHECK(rk_kv_store_read(store, 0, 2, 1, &back, &err) == RK_OK);
    uint8_t *payload = back + RK_KV_STORE_HEADER_BYTES, tag[16];
    CHECK(memmem(payload, PAYLOAD, "PLAINTEXT", 9) == NULL);
    uint64_t gen = 0;
    rk_kv_store_record_seal(back, &gen, tag);
    const rk_kv_sealer *sl = c.sealer;
    uint8_t copy[PAYLOAD];
    memcpy(copy, payload, PAYLOAD);
    CHECK(sl->open(sl->user, 0, 3, gen, copy, copy, PAYLOAD, tag) != 0); /* another page's place */
    CHECK(sl->open(sl->user, 0, 2, gen, payload, copy, PAYLOAD, tag) == 0); /* into another buffer */
    CHECK(memcmp(copy, rec[2] + RK_KV_STORE_HEADER_BYTES, PAYLOAD) == 0);
    free(back);
    rk_kv_store_close(store);
}

static void test_sealed_store(void) {
    char dir[] = "/tmp/ringkv-test-kv-seal-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0);
        return;
    }
    rk_seal_key *key = NULL;
    rk_error err;
    CHECK(rk_seal_key_create("slot-0", &key, &err) == RK_OK);
    rk_kv_store_config c = {dir, 0, 2, 4, PAYLOAD, 0, rk_seal_key_sealer(key), 0};
    rk_kv_store *store = NULL;
    CHECK(rk_kv_store_open(&c, &store, &err) == RK_OK);
    if (!store) return;
    const size_t rb = rk_kv_store_record_bytes(store);
    uint8_t *rec[4], *back[4];
    for (int i = 0; i < 4; i++) {
        rec[i] = aligned_alloc(rk_kv_store_align(store), rb);
        back[i] = aligned_alloc(rk_kv_store_align(store), rb);
        fill_plain(rec[i] + RK_KV_STORE_HEADER_BYTES, PAYLOAD, i);
    }
    CHECK(rk_kv_store_write(store, 1, 0, 4, rec, &err) == RK_OK);
    for (int i = 0; i < 4; i++) { /* the caller's records keep the plain pages */
        uint8_t want[PAYLOAD];
        fill_plain(want, PAYLOAD, i);
        CHECK(memcmp(rec[i] + RK_KV_STORE_HEADER_BYTES, want, PAYLOAD) == 0);
    }
    CHECK(rk_kv_store_read(store, 1, 0, 4, back, &err) == RK_OK);
    for (int i = 0; i < 4; i++)
        CHECK(memcmp(back[i] + RK_KV_STORE_HEADER_BYTES, rec[i] + RK_KV_STORE_HEADER_BYTES, PAYLOAD) == 0);
    int64_t pages[2] = {1, 3};
    uint8_t *two[2] = {back[0], back[1]};
    CHECK(rk_kv_store_read_pages(store, NULL, 1, pages, 2, two, &err) == RK_OK);
    CHECK(memcmp(back[1] + RK_KV_STORE_HEADER_BYTES, rec[3] + RK_KV_STORE_HEADER_BYTES, PAYLOAD) == 0);
    test_keep_sealed(&c, rec);
    /* the file behind the store's descriptor (found in /proc/self/fd): no plaintext */
    int found = 0;
    for (int fd = 3; fd < 256; fd++) {
        char link[64], target[512];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0) continue;
        target[n] = '\0';
        if (!strstr(target, "layer-001.kv") || strncmp(target, dir, strlen(dir)) != 0) continue;
        uint8_t *file = malloc(4 * rb);
        ssize_t got = pread(fd, file, 4 * rb, 0);
        CHECK(got == (ssize_t)(4 * rb));
        CHECK(memmem(file, (size_t)got, "PLAINTEXT", 9) == NULL);
        /* flip a payload bit on disk: the read fails, naming the page */
        uint8_t b = file[rb + RK_KV_STORE_HEADER_BYTES + 100] ^ 0x10;
        CHECK(pwrite(fd, &b, 1, (off_t)rb + RK_KV_STORE_HEADER_BYTES + 100) == 1);
        CHECK(rk_kv_store_read(store, 1, 1, 1, back, &err) == RK_ERR_IO && strstr(err.msg, "page 1 of layer 1"));
        free(file);
        found = 1;
    }
    CHECK_MSG(found, "the layer file of the store was not found among the open descriptors");
    rk_kv_store_close(store);
    rk_seal_key_shred(key);
    for (int i = 0; i < 4; i++) {
        free(rec[i]);
        free(back[i]);
    }
    CHECK(rmdir(dir) == 0);
}

int main(void) {
    if (sodium_init() < 0) return 1;
    test_sealer_alone();
    test_sealed_store();
    return rk_test_finish("test-kv-seal");
}
