/* opts.c — see opts.h. */
#include "tools/opts.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_MODEL_FILE "SmolLM2-135M-Instruct.Q4_1.gguf"

int rk_opt_is(const char *arg, const char *short_name, const char *long_name) {
    return (short_name && strcmp(arg, short_name) == 0) || (long_name && strcmp(arg, long_name) == 0);
}

int rk_opt_int(const char *cmd, const char *flag, const char *value, int64_t lo, int64_t hi,
               int64_t *out) {
    if (!value) {
        fprintf(stderr, "%s: %s needs a value\n", cmd, flag);
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    /* accept 1k / 32K / 1M style suffixes (powers of 1024) */
    long long mul = 1;
    if (end != value && (*end == 'k' || *end == 'K')) mul = 1024;
    if (end != value && (*end == 'm' || *end == 'M')) mul = 1024 * 1024;
    if (mul > 1 && end[1] == '\0' && v <= LLONG_MAX / mul && v >= LLONG_MIN / mul) {
        v *= mul;
        end++;
    }
    if (errno || end == value || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "%s: %s expects an integer in %lld..%lld, got '%s'\n", cmd, flag,
                (long long)lo, (long long)hi, value);
        return 0;
    }
    *out = v;
    return 1;
}

int rk_opt_size(const char *cmd, const char *flag, const char *value, uint64_t *out) {
    if (!value) {
        fprintf(stderr, "%s: %s needs a size (e.g. 512M, 4G)\n", cmd, flag);
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    double unit = 1.0;
    if (end != value && *end) {
        const char *units = "KMGT";
        const char *u = strchr(units, *end >= 'a' ? *end - 32 : *end);
        if (u) {
            unit = pow(1024.0, (double)(u - units + 1));
            end++;
            if (*end == 'i' || *end == 'I') end++; /* KiB, MiB */
            if (*end == 'b' || *end == 'B') end++;
        }
    }
    double bytes = v * unit;
    if (errno || end == value || *end != '\0' || isnan(v) || v < 0 || bytes > 1.8e19) {
        fprintf(stderr, "%s: %s expects a size in bytes with an optional K, M, G or T suffix, got '%s'\n",
                cmd, flag, value);
        return 0;
    }
    *out = (uint64_t)bytes;
    return 1;
}

int rk_opt_float(const char *cmd, const char *flag, const char *value, double lo, double hi,
                 double *out) {
    if (!value) {
        fprintf(stderr, "%s: %s needs a value\n", cmd, flag);
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end != '\0' || isnan(v) || v < lo || v > hi) {
        fprintf(stderr, "%s: %s expects a number in %g..%g, got '%s'\n", cmd, flag, lo, hi, value);
        return 0;
    }
    *out = v;
    return 1;
}

int rk_opt_exe_dir(char *buf, size_t cap) {
    if (cap < 2) return 0;
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n <= 0 || (size_t)n >= cap - 1) return 0;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash) return 0;
    *slash = '\0';
    return 1;
}

const char *rk_opt_default_model(void) {
    static char path[PATH_MAX]; /* written once per process by the tool, read-only after */
    char dir[PATH_MAX / 2];
    if (rk_opt_exe_dir(dir, sizeof dir)) {
        int len = snprintf(path, sizeof path, "%s/../models/%s", dir, DEFAULT_MODEL_FILE);
        if (len > 0 && len < (int)sizeof path && access(path, R_OK) == 0) return path;
    }
    snprintf(path, sizeof path, "models/%s", DEFAULT_MODEL_FILE);
    return path;
}

char *rk_opt_read_file(const char *cmd, const char *path, size_t *out_len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open '%s': %s\n", cmd, path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (len + 1 >= cap) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        fprintf(stderr, "%s: cannot read '%s'\n", cmd, path);
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    if (out_len) *out_len = len;
    return buf;
}
