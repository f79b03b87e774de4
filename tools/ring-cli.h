/* ring-cli.h — the tool's side of ring attention (`--ring`, DESIGN.md "Ring attention"): the MPI
 * transport, rank 0 as the only reader of the prompt and writer of the output, tokens broadcast
 * from it, and the per-rank report. Every rank runs the same command line (mpirun). */
#ifndef RK_TOOLS_RING_CLI_H
#define RK_TOOLS_RING_CLI_H

#include <stdio.h>

#include "dist/transport.h"
#include "ringkv.h"
#include "tools/generate.h"

/* The most tokens of a prefill round a rank evaluates at once when -ub is not given: a whole
 * prompt share up to this, more in rounds (activations stay bounded; each round passes the
 * ranks' KV blocks around the ring once). */
#define RK_RING_DEFAULT_UBATCH 4096

/* This process's transport: MPI when the tool was built with it (a process started without
 * mpirun is a ring of one). RK_ERR_UNSUPPORTED, with what to install, when built without MPI.
 * *out belongs to the caller (rk_transport_free after the context is freed). */
rk_status rk_ring_cli_open(rk_transport **out, rk_error *err);

/* Rank 0's tokens (*tokens, *n) on every rank: the other ranks' *tokens are replaced by a copy
 * they own (free). */
rk_status rk_ring_cli_share_tokens(rk_transport *t, rk_token **tokens, size_t *n, rk_error *err);

/* rk_generate for a ring context: every rank evaluates, rank 0 samples, prints to `out` and
 * sends each token to the others. stats as rk_generate's (on every rank). */
rk_status rk_ring_cli_generate(rk_context *ctx, const rk_model *model, rk_sampler *sampler, rk_transport *t,
                               const rk_token *prompt, size_t n, int64_t n_predict, FILE *out, rk_gen_stats *stats,
                               rk_error *err);

/* v[0..n) summed over the ranks, in rank order, so every rank gets the same bits. n <= 8. */
rk_status rk_ring_cli_sum(rk_transport *t, double *v, int n, rk_error *err);

/* Rank 0 prints one line per rank to `out`: KV bytes and tokens held, attention time, network
 * wait, bytes sent and received. Collective: every rank calls it. */
void rk_ring_cli_report(FILE *out, const rk_context *ctx, rk_transport *t);

#endif
