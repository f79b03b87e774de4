/*
 * api-keys.h — bearer-token authentication for `ringkv serve --api-keys FILE`.
 *
 * The server loads a key file once at start-up and checks the Authorization header of every
 * request against it. The file holds one key per line, optionally followed by whitespace and a
 * name that logs and metrics use instead of the key:
 *
 *     # production keys
 *     sk-4f9c0e1d7a2b8c3e5f6a alice
 *     sk-0b1c2d3e4f5a6b7c8d9e
 *
 * Keys never leave this module: it keeps only keyed BLAKE2b digests of them (under a random key
 * drawn at load), in libsodium's guarded memory, and compares a presented key against every
 * stored digest in constant time, so neither which key matched nor the keys' lengths show in
 * the timing. Error messages name line numbers, never key text.
 *
 * Threading: rk_api_keys_check, _count and _name only read, so any number of threads may call
 * them at once on one loaded rk_api_keys.
 */
#ifndef RK_SERVER_API_KEYS_H
#define RK_SERVER_API_KEYS_H

#include <stddef.h>

#include "ringkv.h"

#define RK_API_KEY_MIN_LEN 16          /* bytes */
#define RK_API_KEY_NAME_MAX 64         /* bytes */
#define RK_API_KEYS_FILE_MAX (1 << 20) /* bytes of key file read at most */

typedef struct rk_api_keys rk_api_keys;

/* Loads a key file. A line is, after leading spaces and tabs: empty or starting with '#'
 * (skipped), or a key (a run of printable ASCII other than space, at least RK_API_KEY_MIN_LEN
 * bytes) optionally followed by spaces/tabs and a name (printable ASCII, spaces allowed inside,
 * trailing whitespace dropped, at most RK_API_KEY_NAME_MAX bytes). A trailing "\r" (CRLF files)
 * is ignored. Duplicate names are allowed.
 *
 * Returns RK_ERR_FORMAT (the message names the line number, never the key) for a file with no
 * keys, a key that is too short, a byte outside printable ASCII in a key or name, a key given
 * twice, a name that is too long, or a file larger than RK_API_KEYS_FILE_MAX; RK_ERR_IO when
 * the file cannot be opened or read or is not a regular file; RK_ERR_NO_MEMORY; RK_ERR_INTERNAL
 * when libsodium cannot be initialized. On success *out belongs to the caller (rk_api_keys_free)
 * and *world_readable (when not NULL) is set to 1 when the file's mode lets its group or others
 * read it, else 0: the caller should warn. */
rk_status rk_api_keys_load(const char *path, rk_api_keys **out, int *world_readable, rk_error *err);

/* Frees the keys (the digests are wiped). NULL is a no-op. */
void rk_api_keys_free(rk_api_keys *keys);

/* Number of keys loaded (0 for NULL). */
size_t rk_api_keys_count(const rk_api_keys *keys);

/* Checks an HTTP Authorization header value: "Bearer <key>", the scheme case-insensitive and
 * followed by exactly one space; the key is everything after that space, compared whole.
 * Returns the index of the matching key (0-based, in file order), or -1 for no match, a NULL
 * or malformed header, or NULL keys. The presented key is compared against every stored key,
 * whatever matches, in time that depends only on the presented length and the key count. */
int rk_api_keys_check(const rk_api_keys *keys, const char *authorization);

/* Name of key i: the name on its line, or "key-<i>" when the line had none. NULL when i is out
 * of range. The string lives as long as keys. */
const char *rk_api_keys_name(const rk_api_keys *keys, int i);

#endif
