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

static int open_page(void *user, int64_t layer, int64_t page, uint64_t gen, uint8_t *buf, size_t len,
                     const uint8_t tag[16]) {
    const rk_seal_key *k = user;
    unsigned char ad[ID_MAX + 24], nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
    const size_t ad_len = make_ad(k, layer, page, gen, ad);
    make_nonce(k, gen, nonce);
    return crypto_aead_xchacha20poly1305_ietf_decrypt_detached(buf, NULL, buf, len, tag, ad, ad_len, nonce, k->key);
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

void rk_seal_key_shred(rk_seal_key *key) {
    if (!key) return;
    sodium_free(key->key); /* zeroes the key before unmapping it */
    sodium_memzero(key, sizeof *key);
    free(key);
}
