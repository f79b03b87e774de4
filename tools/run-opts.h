/* run-opts.h — options every model-running command shares (model, threads, context, micro-batch,
 * sampling) and the session they open: model + context + sampler. */
#ifndef RK_TOOLS_RUN_OPTS_H
#define RK_TOOLS_RUN_OPTS_H

#include <stdbool.h>
#include <stdio.h>

#include "ringkv.h"
#include "tools/generate.h"

typedef struct rk_run_opts {
    const char *model_path;
    rk_context_params ctx;
    rk_sampler_params sampling;
    bool ubatch_set;      /* -ub was given */
    bool ring;            /* --ring: one rank of a ring over MPI (tools/ring-cli.h) */
    bool verbose;         /* --verbose: per-rank ring figures */
} rk_run_opts;

void rk_run_opts_init(rk_run_opts *o);
void rk_run_opts_usage(FILE *out);

/* Tries to parse argv[i] (and its value). Returns how many arguments it used (0: not a shared
 * option), or -1 after printing an error for a bad value. */
int rk_run_opts_parse(rk_run_opts *o, const char *cmd, int argc, char **argv, int i);

typedef struct rk_session {
    rk_model *model;
    rk_context *ctx;
    rk_sampler *sampler;
    struct rk_transport *ring; /* --ring: this rank's transport, else NULL */
} rk_session;

/* Loads the model, creates the context and sampler (with --ring: joins the ring first; every
 * rank must open its session, and a failure on any rank fails all of them). Returns 0, or 1
 * after printing the error (the session is then closed). */
int rk_session_open(rk_session *s, const rk_run_opts *o, const char *cmd);
void rk_session_close(rk_session *s);

/* "prompt: N tokens in S s (T tok/s) | generation: ... | KV: B bytes/token, M MiB in use |
 * peak memory: M MiB" */
void rk_print_speed(FILE *out, const rk_gen_stats *st, const rk_context *ctx);

/* One line on where the KV pages live and what attention read from each tier (nothing when the
 * context has no tiers). */
void rk_print_tiers(FILE *out, const rk_context *ctx);
/* One line: weight bytes read per token (and GB/s over `seconds`) and, for a mixture of
 * experts, the share of experts computed; nothing when w counted no tokens. */
void rk_print_weight_traffic(FILE *out, const rk_weight_stats *w, double seconds);

#endif
