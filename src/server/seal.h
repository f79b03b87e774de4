/*
 * seal.h — per-sequence encryption keys for the KV pages that leave memory (contextual
 * shredding).
 *
 * Every sequence of the server (each session, each slot) gets a random 256-bit key from
 * libsodium, held in guarded memory (sodium_malloc: guard pages, locked against swapping,
 * read-only after creation, wiped when freed). The key seals each page the disk tier writes
 * with XChaCha20-Poly1305; the associated data binds the sealed bytes to the sequence's id, the
 * layer, the page number and the write's generation, so a page cannot be moved to another
 * place, another session or replayed from an older write without failing to open. The nonce is
 * 16 random bytes drawn once per key followed by the generation, which the store makes unique
 * per write. Shredding wipes the key: every sealed copy, wherever it went, is then noise.
 */
#ifndef RK_SERVER_SEAL_H
#define RK_SERVER_SEAL_H

#include "ringkv.h"

typedef struct rk_seal_key rk_seal_key;

/* A fresh key bound to `id` (at most 64 bytes: the session id, or "slot-N"). libsodium must be
 * initialised (sodium_init). RK_ERR_NO_MEMORY when guarded memory cannot be had. */
rk_status rk_seal_key_create(const char *id, rk_seal_key **out, rk_error *err);

/* The sealer the KV cache calls (valid until rk_seal_key_shred). */
const rk_kv_sealer *rk_seal_key_sealer(const rk_seal_key *key);

/* Wipes and frees the key. NULL is a no-op. */
void rk_seal_key_shred(rk_seal_key *key);

#endif
