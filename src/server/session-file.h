/*
 * session-file.h — sessions kept across restarts (`ringkv serve --session-dir DIR`).
 *
 * DIR holds master.key (32 random bytes, mode 0600, made on first use; refused when other users
 * may read it) and one ID.session file per session:
 *
 *   "RKSESS01" | id (32 hex) | the session key wrapped by the master key (72 bytes) |
 *   a random 16-byte nonce prefix | chunks: [u32 length][sealed bytes][16-byte tag] ... and a
 *   final chunk of length 0
 *
 * The chunks carry, sealed with the session's own key (XChaCha20-Poly1305, bound to the id and
 * the chunk's index, so chunks cannot be reordered, dropped or cut off): the owner's key name,
 * the idle ttl, the token history and the context's KV cache (rk_context_save). Nothing of the
 * document is readable in the file, and once the session is deleted (its file unlinked, its key
 * wiped) a copy of the file opens with nothing. Files are written to ID.session.tmp and renamed.
 */
#ifndef RK_SERVER_SESSION_FILE_H
#define RK_SERVER_SESSION_FILE_H

#include "ringkv.h"
#include "server/seal.h"

typedef struct rk_session_meta {
    char owner[65];     /* name of the API key that owns it ("-": no keys) */
    double ttl;         /* idle expiry, seconds */
} rk_session_meta;

/* Loads DIR/master.key, making DIR (0700) and the key (0600) when missing. *master: sodium_malloc'd, free with
 * rk_master_key_free. RK_ERR_IO / RK_ERR_FORMAT with the reason (wrong size, readable by others). */
rk_status rk_master_key_load(const char *dir, uint8_t **master, rk_error *err);
void rk_master_key_free(uint8_t *master);

/* Writes DIR/ID.session (through a temporary file and a rename). */
rk_status rk_session_file_save(const char *dir, const char *id, const rk_seal_key *key, const uint8_t *master,
                               const rk_session_meta *meta, const rk_token *history, size_t n_history,
                               rk_context *ctx, rk_error *err);

typedef struct rk_session_reader rk_session_reader;

/* Opens a session file and unwraps its key: *id (33 bytes) and *key (the caller's, to create the
 * session's context with before reading the body). */
rk_status rk_session_file_open(const char *path, const uint8_t *master, rk_session_reader **out, char *id,
                               rk_seal_key **key, rk_error *err);
/* Reads the body into an empty context; *history is malloc'd (caller frees). */
rk_status rk_session_file_read(rk_session_reader *r, rk_session_meta *meta, rk_token **history, size_t *n_history,
                               rk_context *ctx, rk_error *err);
void rk_session_file_close(rk_session_reader *r);

/* Removes DIR/ID.session if it exists. */
void rk_session_file_remove(const char *dir, const char *id);

#endif
