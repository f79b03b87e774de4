/*
 * ringkv.h — the public C API of libringkv.
 *
 * ringkv loads GGUF language models and runs them on the CPU. Every fallible call returns an
 * rk_status and, when it fails, writes a human-readable message into an rk_error the caller
 * owns (pass NULL if you do not want the text). Handles are opaque; `rk_x_free(NULL)` is a
 * no-op. Inputs are borrowed for the duration of the call unless a comment says otherwise;
 * `**out` results belong to the caller.
 *
 * Typical use:
 *
 *     rk_error err;
 *     rk_model *model;
 *     rk_model_params mp = rk_model_default_params();
 *     if (rk_model_load("model.gguf", &mp, &model, &err) != RK_OK) { puts(err.msg); ... }
 *     rk_context *ctx;
 *     rk_context_params cp = rk_context_default_params();
 *     rk_context_create(model, &cp, &ctx, &err);
 *     ... rk_tokenize(), rk_context_eval(), rk_context_logits(), rk_sampler_sample() ...
 *     rk_context_free(ctx); rk_model_free(model);
 *
 * Threading: a model is read-only after loading and may be shared by contexts; one context
 * is used by one thread at a time.
 */
#ifndef RINGKV_H
#define RINGKV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. Bad input, I/O, out-of-space and internal errors are distinct. */
typedef enum rk_status {
    RK_OK = 0,
    RK_ERR_INVALID_ARG = 1,  /* the caller passed something invalid (flag, NULL, range) */
    RK_ERR_IO = 2,           /* open/read/write/mmap failed */
    RK_ERR_FORMAT = 3,       /* malformed input data (GGUF, text, UTF-8, JSON, ...) */
    RK_ERR_UNSUPPORTED = 4,  /* well-formed but not supported (architecture, type, ...) */
    RK_ERR_NO_MEMORY = 5,    /* an allocation failed */
    RK_ERR_CONTEXT_FULL = 6, /* more tokens than the context holds */
    RK_ERR_INTERNAL = 7      /* a bug in ringkv */
} rk_status;

#define RK_ERROR_MSG_MAX 512

/* A message buffer owned by the caller. `code` repeats the returned status. */
typedef struct rk_error {
    rk_status code;
    char msg[RK_ERROR_MSG_MAX];
} rk_error;

/* A static, never-NULL name for a status ("ok", "invalid argument", ...). */
const char *rk_status_name(rk_status status);

/* The library version as "MAJOR.MINOR.PATCH". */
const char *rk_version(void);

typedef int32_t rk_token;

typedef struct rk_model rk_model;
typedef struct rk_context rk_context;
typedef struct rk_sampler rk_sampler;

/* Log callback: level 0 = error, 1 = warning, 2 = info, 3 = debug. */
typedef void (*rk_log_fn)(void *user, int level, const char *message);

typedef struct rk_model_params {
    int vocab_only;    /* load only the tokenizer (GGUF files without tensors are allowed) */
    rk_log_fn log;     /* NULL: silent */
    void *log_user;
} rk_model_params;

rk_model_params rk_model_default_params(void);

/* Opens and validates a GGUF file and binds its weights (memory-mapped, not copied).
 * On success *out belongs to the caller (free with rk_model_free). */
rk_status rk_model_load(const char *path, const rk_model_params *params, rk_model **out,
                        rk_error *err);
void rk_model_free(rk_model *model);

/* Writes a one-paragraph description (architecture, sizes) into buf (always NUL-terminated). */
void rk_model_describe(const rk_model *model, char *buf, size_t buf_size);

int32_t rk_model_n_vocab(const rk_model *model);
/* Weight bytes one decode step reads: every layer matrix and the output matrix in full, plus
 * one embedding row; for a mixture of experts, the router, n_used of the experts and any shared
 * expert. (Decode speed × this = achieved memory bandwidth.) The bytes really read are counted
 * as the products run: rk_context_weight_stats. */
size_t rk_model_decode_bytes(const rk_model *model);
/* For benchmarks: drops the model's weights from memory (they are read back from the file as
 * they are touched) and turns off readahead, so the bytes the process then reads from storage
 * are the weight pages a computation touched (rk_gguf_evict_pages). RK_ERR_UNSUPPORTED where
 * the kernel cannot. */
rk_status rk_model_evict_weights(const rk_model *model, rk_error *err);
int64_t rk_model_n_ctx_train(const rk_model *model);
rk_token rk_model_token_bos(const rk_model *model); /* -1 when the model has none */
rk_token rk_model_token_eos(const rk_model *model); /* -1 when the model has none */
int rk_model_add_bos(const rk_model *model);         /* 1 when prompts start with BOS */
/* 1 when the token ends a turn or the text (EOS, EOT, <end_of_turn>, <|im_end|>, ...). */
int rk_model_token_is_eog(const rk_model *model, rk_token token);

/* Tokenizes UTF-8 text. `add_bos`: prepend BOS when the model's vocabulary asks for it.
 * `parse_special`: text like "<|im_start|>" becomes the special token rather than characters.
 * On success *out_tokens (malloc'd, caller frees) holds *out_n tokens.
 * RK_ERR_FORMAT for invalid UTF-8. */
rk_status rk_tokenize(const rk_model *model, const char *text, size_t text_len, int add_bos,
                      int parse_special, rk_token **out_tokens, size_t *out_n, rk_error *err);

/* The bytes a token stands for when it is printed. Control tokens give "" unless
 * `render_special`. Returns the number of bytes the piece needs; writes at most buf_size
 * bytes (no NUL terminator). Returns -1 for an id outside the vocabulary. */
int32_t rk_token_to_piece(const rk_model *model, rk_token token, int render_special, char *buf,
                          int32_t buf_size);

/* One message of a conversation. */
typedef struct rk_chat_message {
    const char *role;    /* "system", "user" or "assistant" */
    const char *content; /* UTF-8, NUL-terminated */
} rk_chat_message;

/* Renders a conversation with the model's chat template (ChatML, Llama 3 or Gemma, chosen
 * from tokenizer.chat_template). `add_assistant_prompt`: end with the opening of the
 * assistant's turn. *out (malloc'd, NUL-terminated) belongs to the caller.
 * RK_ERR_UNSUPPORTED when the model has no chat template ringkv knows. */
rk_status rk_chat_format(const rk_model *model, const rk_chat_message *messages, size_t n,
                         int add_assistant_prompt, char **out, rk_error *err);

/* 1 when the model file carries a chat template (tokenizer.chat_template): an instruct or chat
 * model. rk_chat_format also serves a model without one whose vocabulary has a known family's
 * turn markers (a base model's), which such a model was not trained to follow. */
int rk_model_has_chat_template(const rk_model *model);

/* 1 when a printer should drop the leading space of the first piece after BOS (SentencePiece
 * vocabularies add a space prefix the text did not have; llama2.c and llama.cpp drop it). */
int rk_model_strips_leading_space(const rk_model *model);

typedef struct rk_engine rk_engine;

/* Encryption of the KV pages that leave the hot tier: the disk tier's page files and, with
 * budgets, the warm pages kept in RAM. ringkv calls it and never sees the key: the server
 * implements it with libsodium (XChaCha20-Poly1305, a key per session), so erasing the key
 * erases every copy ("shredding"). Each sealed page is bound to (layer, page, generation): a
 * context never passes the same generation twice (page files count up from 1, warm pages from
 * 2^63), so it can serve as a nonce counter, and a page moved, replayed or altered fails to
 * open. One sealer serves one context. */
typedef struct rk_kv_sealer {
    void *user;
    /* Encrypts len bytes from `in` to `out` (the same buffer, or disjoint ones) and writes the
     * 16-byte tag. Returns 0, or -1 on failure (the write, or the demotion, then fails). */
    int (*seal)(void *user, int64_t layer, int64_t page, uint64_t generation, const uint8_t *in, uint8_t *out,
                size_t len, uint8_t tag[16]);
    /* Decrypts len bytes from `in` to `out` (the same buffer, or disjoint ones) after checking
     * the tag. Returns 0, or -1 when the tag does not verify (out is then unspecified:
     * libsodium zeroes it). */
    int (*open)(void *user, int64_t layer, int64_t page, uint64_t generation, const uint8_t *in, uint8_t *out,
                size_t len, const uint8_t tag[16]);
} rk_kv_sealer;

typedef struct rk_context_params {
    int64_t n_ctx;    /* tokens the context holds; 0 = the model's training context */
    int n_threads;    /* compute threads; 0 = all cores (ignored with an engine) */
    /* NULL: the context has its own threads. Otherwise it uses the engine's, and rk_engine_eval
     * can run it together with the engine's other contexts; the engine must outlive it. */
    rk_engine *engine;
    int n_ubatch;     /* prompt tokens evaluated per forward step (chunked prefill) */
    /* KV codecs of full (sealed) pages for keys and values: "f32", "f16", "q8", "q4", "tq2.5",
     * "tq3", "tq3.5", "tq4" (keys also "tqR+qjl"). NULL = "f16". The open tail page of each
     * layer is always f32. */
    const char *kv_codec_k;
    const char *kv_codec_v;
    /* KV tiers (DESIGN.md, "Tiers"). Without a disk tier and budgets every page stays in RAM.
     * With kv_disk_dir, sealed pages are also written to page files there, and only what the
     * budgets allow stays in RAM: kv_hot_bytes (default: half the available memory) holds the
     * open pages, the sinks, the newest pages and those attention weights most; kv_warm_bytes
     * (default: its minimum, two layers' pages) holds pages read back from disk. Tiers never
     * change a logit. */
    size_t kv_hot_bytes;
    size_t kv_warm_bytes;
    const char *kv_disk_dir;
    uint64_t kv_disk_max_bytes;   /* 0 = no limit */
    int kv_disk_direct;           /* 1: O_DIRECT page files (bypass the OS page cache) */
    const rk_kv_sealer *kv_sealer; /* NULL: pages outside the hot tier are plain; else page files
                                    * and warm pages in RAM are sealed (borrowed: must outlive
                                    * the context) */
    /* Opt-in sparse decode: 0 = exact (every page); N > 0 = visit the first page, the newest
     * pages and the N pages whose key bounds allow the highest scores (Quest). */
    int64_t kv_sparse_pages;
    /* Ring attention (DESIGN.md): NULL = one process. Otherwise this context is one rank of a
     * ring over that transport (borrowed; must outlive the context): every rank creates its
     * context with the same parameters and calls rk_context_eval and rk_context_truncate
     * with the same arguments; each holds only its share of the KV pages, and every rank gets
     * the same logits of the last token (with all_logits, each rank keeps those of the
     * positions it evaluated: rk_context_logits is NULL for the others). A prompt is evaluated
     * in rounds of at most n_ubatch tokens per rank (n_ubatch >= one KV page, 256 tokens).
     * A ring context runs alone (no engine, no sparse decode) and cannot be saved or loaded. */
    struct rk_transport *ring;
} rk_context_params;

/* Per-rank figures of a ring context (rk_context_ring_report). */
typedef struct rk_ring_report {
    int rank, n_ranks;
    int64_t tokens_held;          /* positions whose keys and values this rank holds */
    double attn_seconds;          /* ring attention partials and merges */
    double attn_wait_seconds;     /* blocked inside attention: waiting for a KV block or the
                                   * decode partials (the communication not hidden) */
    double wait_seconds;          /* blocked on the transport in all (also agreement, start-up,
                                   * a slower rank's matrix products) */
    uint64_t bytes_sent, bytes_received;
} rk_ring_report;

/* Tier statistics of a context's KV cache since it was created (see rk_context_kv_tiers). */
typedef struct rk_kv_tier_stats {
    int enabled;                               /* budgets or a disk tier are configured */
    uint64_t read_hot_bytes, read_warm_bytes, read_cold_bytes; /* page bytes attention read per tier (cold: read from disk) */
    uint64_t pages_fetched, pages_prefetched, pages_demoted, pages_evicted, pages_written;
    double io_seconds, io_wait_seconds;       /* disk reads; time the forward pass waited for them */
    int64_t pages_hot, pages_warm, pages_cold; /* sealed pages in each tier now */
    int64_t pages_warm_sealed;                 /* ... of the warm ones, encrypted in RAM (a sealer) */
    size_t hot_bytes, warm_bytes;              /* RAM in each tier now */
    uint64_t disk_bytes;                       /* page-file bytes held now */
    int disk_direct;
    int disk_io_uring;                         /* prefetch reads go through an io_uring */
    uint64_t sparse_pages_visited, sparse_pages_skipped; /* (page, KV head) pairs in sparse decode */
    uint64_t pages_locked, pages_unlocked;     /* warm pages encrypted in RAM / opened again (a sealer) */
    double ram_seal_seconds;                   /* time spent on both */
} rk_kv_tier_stats;

rk_context_params rk_context_default_params(void);

rk_status rk_context_create(const rk_model *model, const rk_context_params *params,
                            rk_context **out, rk_error *err);
void rk_context_free(rk_context *ctx);

int64_t rk_context_n_ctx(const rk_context *ctx);
int64_t rk_context_n_past(const rk_context *ctx); /* tokens already in the KV cache */

/* KV cache memory: bytes each token of context takes (all layers, keys and values, with any
 * scales), and bytes allocated right now (whole pages). */
size_t rk_context_kv_bytes_per_token(const rk_context *ctx);
size_t rk_context_kv_bytes_in_use(const rk_context *ctx);
/* Bytes of sealed KV pages (all layers) that dense attention by the query at position pos
 * reads: every full page before it, and in sliding-window layers only the pages the window
 * reaches. The open page (f32) and the sink rows are not counted. */
double rk_context_kv_page_bytes_read(const rk_context *ctx, int64_t pos);

/* Fills *out; all zero when the context has no tiers. */
void rk_context_kv_tiers(const rk_context *ctx, rk_kv_tier_stats *out);

/* Weight traffic of a context's forward passes, counted as the matrix products run (each
 * product adds the rows it read), since creation or the last reset. For a mixture of experts
 * only the experts a micro-batch routed to are read, each once per micro-batch. */
typedef struct rk_weight_stats {
    uint64_t bytes_read;        /* weight bytes read: matrices, router, embedding rows */
    uint64_t tokens;            /* tokens evaluated */
    uint64_t micro_batches;     /* forward passes (one per decode step) */
    uint64_t experts_touched;   /* (layer, expert) pairs computed, summed over micro-batches */
    uint64_t experts_available; /* (layer, expert) pairs there were, summed over micro-batches */
} rk_weight_stats;
void rk_context_weight_stats(const rk_context *ctx, rk_weight_stats *out);
void rk_context_reset_weight_stats(rk_context *ctx);

/* Canonical names of the context's key and value codecs (static strings owned by ctx). */
const char *rk_context_kv_codec_k(const rk_context *ctx);
const char *rk_context_kv_codec_v(const rk_context *ctx);

/* A ring context's figures on this rank; returns 0 (and leaves *out alone) for a context on
 * one machine. */
int rk_context_ring_report(const rk_context *ctx, rk_ring_report *out);

/* Byte streams for saving and loading: move exactly len bytes, or fail with a status and a
 * message in *err (which the caller gets back). */
typedef rk_status (*rk_stream_write_fn)(void *user, const void *data, size_t len, rk_error *err);
typedef rk_status (*rk_stream_read_fn)(void *user, void *data, size_t len, rk_error *err);

/* Writes the context's KV cache (its n_past tokens, exactly as held: codec pages, the open page,
 * sink rows) to a stream, reading cold pages back from the disk tier on the way. The stream is
 * not encrypted or checksummed: seal it when it leaves the machine's trust. */
rk_status rk_context_save(rk_context *ctx, rk_stream_write_fn write, void *user, rk_error *err);
/* Reads a saved KV cache into an empty context of the same model, codecs and n_ctx or more; the
 * context then continues as the saved one would (no logits until the next eval).
 * RK_ERR_INVALID_ARG when the context holds tokens; RK_ERR_FORMAT for a stream of another model,
 * codec or a damaged one (the context stays empty). */
rk_status rk_context_load(rk_context *ctx, rk_stream_read_fn read, void *user, rk_error *err);

/* Forgets every token from position `pos` on (0 clears the context). */
rk_status rk_context_truncate(rk_context *ctx, int64_t pos, rk_error *err);

/* For benchmarks of decode at depth: grows the KV cache to `depth` positions with copies of
 * the pages of the real prefill it holds, without running the model (kv/kv-replicate.h). The
 * context is first truncated to a whole number of pages (it must hold at least 256 tokens);
 * then every layer's pages up to depth are copies of its pages 1.. in turn (page 0, the
 * attention sinks, is not copied), written to the disk tier and placed in the tiers as real
 * pages would be, and n_past becomes depth. A sliding-window layer, which holds only the pages
 * its window reaches, moves copies of those to the end of the depth instead (so the depth is
 * the prefill's length or at least that plus those pages; see kv/kv-replicate.h). The copies keep the RoPE positions of their
 * originals, so the context is not a real sequence: it measures speed and memory traffic, not
 * quality. Logits are cleared: evaluate a token next. depth: a multiple of 256, at most n_ctx.
 * RK_ERR_INVALID_ARG for a bad depth or too short a prefill; RK_ERR_NO_MEMORY; RK_ERR_IO
 * from the disk tier (e.g. no space left). On error the context holds the truncated prefill. */
rk_status rk_context_fill_replicated(rk_context *ctx, int64_t depth, rk_error *err);

/* Appends n tokens at the current position and runs the model over them.
 * `all_logits`: keep logits for every token (perplexity) instead of only the last one.
 * RK_ERR_CONTEXT_FULL when n_past + n exceeds n_ctx (nothing is appended). */
rk_status rk_context_eval(rk_context *ctx, const rk_token *tokens, size_t n, int all_logits,
                          rk_error *err);

/* ---- several sequences at once (a server's continuous batching) ----
 *
 * An engine is a thread pool that contexts share. rk_engine_eval runs one step over several of
 * its contexts: every matrix product of the step reads each weight once for all of them, while
 * attention reads each context's own cache. Each context's logits are exactly those of running
 * its tokens alone through rk_context_eval in micro-batches of the same sizes (the kernels never
 * change their order of summation with the batch), so a request's output does not depend on
 * what else runs beside it. One thread at a time uses an engine and its contexts. */
rk_status rk_engine_create(const rk_model *model, int n_threads, rk_engine **out, rk_error *err);
void rk_engine_free(rk_engine *engine);
int rk_engine_n_threads(const rk_engine *engine);

typedef struct rk_batch_item {
    rk_context *ctx;          /* created with this engine; at most once per call */
    const rk_token *tokens;   /* appended at the context's position */
    size_t n;                 /* 1 .. the context's n_ubatch */
    rk_status status;         /* out: RK_OK, or why this item failed (its context is then as it was) */
    rk_error err;             /* out: the message of a failed item */
} rk_batch_item;

/* Evaluates every item (rk_context_logits(ctx, -1) then holds the logits of its last token).
 * Items fail one by one (bad tokens, a full context, a disk-tier error) without stopping the
 * others. Returns RK_OK when every item succeeded, else the status of the first that failed
 * (its message in *err); RK_ERR_INVALID_ARG for a context of another engine or one given twice,
 * RK_ERR_NO_MEMORY when the step's scratch cannot grow (then no item ran). */
rk_status rk_engine_eval(rk_engine *engine, rk_batch_item *items, size_t n_items, rk_error *err);

/* Logits (n_vocab floats) of the i-th token of the last rk_context_eval call; i = -1 means
 * the last token. Returns NULL when the logits of that token were not kept.
 * The pointer is borrowed and valid until the next eval. */
const float *rk_context_logits(const rk_context *ctx, int64_t i);

/* Peak resident memory of the process so far, in bytes (0 when unknown). */
size_t rk_peak_rss_bytes(void);
/* Memory the system can give this process now without swapping (Linux MemAvailable);
 * 0 when unknown. */
size_t rk_available_memory_bytes(void);

/* ---- sampling ---- */

typedef struct rk_sampler_params {
    float temperature;        /* <= 0: greedy */
    int32_t top_k;            /* <= 0: off */
    float top_p;              /* >= 1: off */
    float min_p;              /* <= 0: off */
    float repeat_penalty;     /* 1: off */
    int32_t repeat_last_n;    /* how many recent tokens the penalty looks at */
    uint64_t seed;
} rk_sampler_params;

rk_sampler_params rk_sampler_default_params(void);

rk_status rk_sampler_create(const rk_sampler_params *params, int32_t n_vocab, rk_sampler **out,
                            rk_error *err);
void rk_sampler_free(rk_sampler *sampler);
/* Tells the sampler a token was added to the context (for the repetition penalty). */
void rk_sampler_accept(rk_sampler *sampler, rk_token token);
/* Picks the next token from n_vocab logits (not modified). */
rk_token rk_sampler_sample(rk_sampler *sampler, const float *logits);

#ifdef __cplusplus
}
#endif
#endif /* RINGKV_H */
