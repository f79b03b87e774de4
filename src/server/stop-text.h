/*
 * stop-text.h — OpenAI-style stop strings over streamed token pieces.
 *
 * The scheduler turns each generated token into its piece (a few bytes of UTF-8, possibly only
 * part of a character: a multi-byte character may be split across tokens) and pushes it here;
 * what comes back is the text that is safe to stream to the client now. Three promises:
 *
 *   - the client never sees a stop string nor any part of one: a tail of the text that could
 *     still become a stop string is held back until it cannot;
 *   - every emitted chunk is valid UTF-8: an incomplete character is held back until its last
 *     byte arrives, and bytes that cannot be UTF-8 become U+FFFD (one per maximal invalid
 *     subpart, as Unicode recommends), so stops match the text the client would have seen;
 *   - text goes out as early as possible: exactly the two tails above are held.
 *
 * Generation stops at the first moment the text contains a stop string: the text is cut before
 * the stop string that completed first (if several complete with the same byte, the longest,
 * which starts earliest). So with the stops "bc" and "abcd", "abcd" ends the output at "a":
 * "bc" completes first, and generation stops there, before "abcd" could complete.
 *
 * Cost: each stop string runs a Knuth-Morris-Pratt matcher over the new bytes only, so a push
 * costs O(piece length × total stop length) at worst (amortized O(piece length × stops)) and
 * never depends on the length of the text so far; memory is the stops plus the held tail.
 *
 * One rk_stop_text per request (per choice); not thread-safe.
 */
#ifndef RK_SERVER_STOP_TEXT_H
#define RK_SERVER_STOP_TEXT_H

#include <stddef.h>

#include "ringkv.h"

#define RK_STOP_TEXT_MAX_STOPS 4  /* the OpenAI API allows up to 4 */
#define RK_STOP_TEXT_MAX_LEN 4096 /* bytes of one stop string */

typedef struct rk_stop_text rk_stop_text;

/* Creates a matcher for stops[0..n_stops) (copied; stops may be NULL when n_stops is 0, which
 * gives a UTF-8-completing pass-through). RK_ERR_INVALID_ARG when n_stops is outside
 * 0..RK_STOP_TEXT_MAX_STOPS or a stop is NULL, empty, longer than RK_STOP_TEXT_MAX_LEN or not
 * valid UTF-8; RK_ERR_NO_MEMORY. *out belongs to the caller (rk_stop_text_free). */
rk_status rk_stop_text_create(const char *const *stops, int n_stops, rk_stop_text **out,
                              rk_error *err);

/* NULL is a no-op. */
void rk_stop_text_free(rk_stop_text *st);

/* Appends a token's bytes (len may be 0). Sets *emit / *emit_len to the text now safe to send:
 * everything not sent before except (a) a trailing incomplete UTF-8 sequence and (b) the
 * longest trailing part that is a proper prefix of a stop string. *emit points into internal
 * storage, valid until the next call on st, and is never NULL (it may have length 0).
 * Returns 1 when a stop string is now complete: the emitted text then ends right before it, and
 * nothing after it is ever emitted (later calls emit nothing and return 1). Returns 0 otherwise,
 * and -1 when out of memory (nothing emitted, st unchanged: the call may be retried). After
 * rk_stop_text_flush, pushes emit nothing. */
int rk_stop_text_push(rk_stop_text *st, const char *piece, size_t len, const char **emit,
                      size_t *emit_len);

/* Ends the text (length limit or end-of-generation token): emits the held-back text, an
 * incomplete UTF-8 tail replaced by U+FFFD. Returns 1 when a stop string was complete (earlier,
 * or now, in the rare case a stop ends with U+FFFD and the replacement completed it; the text
 * emitted then ends before it), else 0. Calling it again emits nothing. */
int rk_stop_text_flush(rk_stop_text *st, const char **emit, size_t *emit_len);

/* Total bytes emitted so far (for text offsets). */
size_t rk_stop_text_emitted(const rk_stop_text *st);

#endif
