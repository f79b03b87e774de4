/* seal.c — see seal.h. */
#include "server/seal.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/error.h"

#define ID_MAX 64

struct rk_seal_key {
    unsigned char *key;              /* crypto_aead_xchacha20poly1305_ietf_KEYBYTES, sodium_malloc'd */
    unsigned char nonce_prefix[16];  /* + 8 bytes of generation = the 24-byte nonce */
    char id[ID_MAX + 1];
    size_t id_len;
    rk_kv_sealer sealer;
};

/* associated data: id, then layer, page and generation as little-endian 64-bit numbers */
static size_t make_ad(const rk_seal_key *k, int64_t layer, int64_t page, uint64_t gen, unsigned char *ad) {
    memcpy(ad, k->id, k->id_len);
    uint64_t v[3] = {(uint64_t)layer, (uint64_t)page, gen};
    for (int i = 0; i < 3; i++)
        for (int b = 0; b < 8; b++) ad[k->id_len + (size_t)(8 * i + b)] = (unsigned char)(v[i] >> (8 * b));
    return k->id_len + 24;
}

static void make_nonce(const rk_seal_key *k, uint64_t gen, unsigned char *nonce) {
    memcpy(nonce, k->nonce_prefix, sizeof k->nonce_prefix);
    for (int b = 0; b < 8; b++) nonce[16 + b] = (unsigned char)(gen >> (8 * b));
}

static int seal_page(void *user, int64_t layer, int64_t page, uint64_t gen, const uint8_t *in, uint8_t *out,
                     size_t len, uint8_t tag[16]) {
    const rk_seal_key *k = user;
    unsigned char ad[ID_MAX + 24], nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
    const size_t ad_len = make_ad(k, layer, page, gen, ad);
    make_nonce(k, gen, nonce);
    unsigned long long tag_len = 0;
    return crypto_aead_xchacha20poly1305_ietf_encrypt_detached(out, tag, &tag_len, in, len, ad, ad_len, NULL, nonce,
                                                               k->key) == 0 && tag_len == 16 ? 0 : -1;
}

static int open_page(void *user, int64_t layer, int64_t page, uint64_t gen, const uint8_t *in, uint8_t *out,
                     size_t len, const uint8_t tag[16]) {
    const rk_seal_key *k = user;
    unsigned char ad[ID_MAX + 24], nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
    const size_t ad_len = make_ad(k, layer, page, gen, ad);
    make_nonce(k, gen, nonce);
    return crypto_aead_xchacha20poly1305_ietf_decrypt_detached(out, NULL, in, len, tag, ad, ad_len, nonce, k->key);
}

rk_status rk_seal_key_create(const char *id, rk_seal_key **out, rk_error *err) {
    *out = NULL;
    size_t id_len = strlen(id);
    if (id_len > ID_MAX) return rk_error_set(err, RK_ERR_INVALID_ARG, "seal: id longer than %d bytes", ID_MAX);
    rk_seal_key *k = calloc(1, sizeof *k);
    if (k) k->key = sodium_malloc(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
    if (!k || !k->key) {
        free(k);
        return rk_error_set(err, RK_ERR_NO_MEMORY, "seal: no guarded memory for a key");
    }
    crypto_aead_xchacha20poly1305_ietf_keygen(k->key);
    sodium_mprotect_readonly(k->key);
    randombytes_buf(k->nonce_prefix, sizeof k->nonce_prefix);
    memcpy(k->id, id, id_len + 1);
    k->id_len = id_len;
    k->sealer = (rk_kv_sealer){k, seal_page, open_page};
    *out = k;
    return RK_OK;
}

const rk_kv_sealer *rk_seal_key_sealer(const rk_seal_key *key) { return &key->sealer; }

/* associated data of a file chunk: id, "file", index (the pages' AD is id + 24 bytes: disjoint) */
static size_t chunk_ad(const rk_seal_key *k, uint64_t index, unsigned char *ad) {
    memcpy(ad, k->id, k->id_len);
    memcpy(ad + k->id_len, "file", 4);
    for (int b = 0; b < 8; b++) ad[k->id_len + 4 + (size_t)b] = (unsigned char)(index >> (8 * b));
    return k->id_len + 12;
}

static void chunk_nonce(const uint8_t prefix[16], uint64_t index, unsigned char *nonce) {
    memcpy(nonce, prefix, 16);
    for (int b = 0; b < 8; b++) nonce[16 + b] = (unsigned char)(index >> (8 * b));
}

int rk_seal_key_seal_chunk(const rk_seal_key *k, const uint8_t prefix[16], uint64_t index, const uint8_t *in,
                           uint8_t *out, size_t len, uint8_t tag[16]) {
    unsigned char ad[ID_MAX + 12], nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
    size_t ad_len = chunk_ad(k, index, ad);
    chunk_nonce(prefix, index, nonce);
    unsigned long long tag_len = 0;
    return crypto_aead_xchacha20poly1305_ietf_encrypt_detached(out, tag, &tag_len, in, len, ad, ad_len, NULL, nonce,
                                                               k->key) == 0 ? 0 : -1;
}

int rk_seal_key_open_chunk(const rk_seal_key *k, const uint8_t prefix[16], uint64_t index, uint8_t *buf, size_t len,
                           const uint8_t tag[16]) {
    unsigned char ad[ID_MAX + 12], nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
    size_t ad_len = chunk_ad(k, index, ad);
    chunk_nonce(prefix, index, nonce);
    return crypto_aead_xchacha20poly1305_ietf_decrypt_detached(buf, NULL, buf, len, tag, ad, ad_len, nonce, k->key);
}

void rk_seal_key_wrap(const rk_seal_key *k, const uint8_t *master, uint8_t out[RK_SEAL_WRAPPED_BYTES]) {
    randombytes_buf(out, 24);
    unsigned long long tag_len = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt_detached(out + 24, out + 56, &tag_len, k->key, 32,
                                                        (const unsigned char *)k->id, k->id_len, NULL, out, master);
}

rk_status rk_seal_key_unwrap(const char *id, const uint8_t *master, const uint8_t in[RK_SEAL_WRAPPED_BYTES],
                             rk_seal_key **out, rk_error *err) {
    rk_status s = rk_seal_key_create(id, out, err);
    if (s) return s;
    rk_seal_key *k = *out;
    sodium_mprotect_readwrite(k->key);
    int bad = crypto_aead_xchacha20poly1305_ietf_decrypt_detached(k->key, NULL, in + 24, 32, in + 56,
                                                                  (const unsigned char *)k->id, k->id_len, in, master);
    sodium_mprotect_readonly(k->key);
    if (bad) {
        rk_seal_key_shred(k);
        *out = NULL;
        return rk_error_set(err, RK_ERR_FORMAT, "seal: the key of '%s' does not open with this master key", id);
    }
    return RK_OK;
}

void rk_seal_key_shred(rk_seal_key *key) {
    if (!key) return;
    sodium_free(key->key); /* zeroes the key before unmapping it */
    sodium_memzero(key, sizeof *key);
    free(key);
}
