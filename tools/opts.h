/* opts.h — small, strict command-line helpers shared by the commands: every number is parsed
 * completely and range-checked, so `-n 12abc` or `--temp nan` is a usage error, not a surprise. */
#ifndef RK_TOOLS_OPTS_H
#define RK_TOOLS_OPTS_H

#include <stddef.h>
#include <stdint.h>

/* 1 when arg equals the short or the long spelling (either may be NULL). */
int rk_opt_is(const char *arg, const char *short_name, const char *long_name);

/* Parse argv[i+1] as a number in [lo, hi] (a K or M suffix multiplies by 1024 or 1024²); print
 * "<cmd>: <flag> ..." and return 0 on error. */
int rk_opt_int(const char *cmd, const char *flag, const char *value, int64_t lo, int64_t hi,
               int64_t *out);
/* Parse a byte size: a number with an optional K/M/G/T suffix (powers of 1024; "KiB", "MB"
 * spellings too). */
int rk_opt_size(const char *cmd, const char *flag, const char *value, uint64_t *out);
int rk_opt_float(const char *cmd, const char *flag, const char *value, double lo, double hi,
                 double *out);

/* Writes the directory holding the running executable into buf; 1 on success, 0 if unknown. */
int rk_opt_exe_dir(char *buf, size_t cap);

/* The default model: SmolLM2-135M-Instruct cached by scripts/fetch-models.sh, found beside the
 * executable (build/../models/...) or under ./models. */
const char *rk_opt_default_model(void);

/* Reads a whole file into a malloc'd NUL-terminated buffer (caller frees); NULL + message on
 * failure. */
char *rk_opt_read_file(const char *cmd, const char *path, size_t *out_len);

#endif
