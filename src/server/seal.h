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

/* Files (session-file.c): chunk `index` of a stream sealed under the key with the stream's own
 * 16-byte nonce prefix (random per file), bound to the id and the index. 0, or -1 (open: the
 * tag does not verify). */
int rk_seal_key_seal_chunk(const rk_seal_key *key, const uint8_t prefix[16], uint64_t index, const uint8_t *in,
                           uint8_t *out, size_t len, uint8_t tag[16]);
int rk_seal_key_open_chunk(const rk_seal_key *key, const uint8_t prefix[16], uint64_t index, uint8_t *buf,
                           size_t len, const uint8_t tag[16]);

#define RK_SEAL_WRAPPED_BYTES 72 /* nonce 24 + key 32 + tag 16 */
#define RK_SEAL_MASTER_BYTES 32
/* The key encrypted under a master key (bound to the id), for storing next to what it sealed. */
void rk_seal_key_wrap(const rk_seal_key *key, const uint8_t *master, uint8_t out[RK_SEAL_WRAPPED_BYTES]);
/* The key back from its wrapped form; RK_ERR_FORMAT when it does not open (another master key,
 * another id, altered). */
rk_status rk_seal_key_unwrap(const char *id, const uint8_t *master, const uint8_t in[RK_SEAL_WRAPPED_BYTES],
                             rk_seal_key **out, rk_error *err);

/* Wipes and frees the key. NULL is a no-op. */
void rk_seal_key_shred(rk_seal_key *key);

#endif
