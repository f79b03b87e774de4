/* test-util.c — see test-util.h. */
#include "test-util.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int rk_test_failures = 0;

const char *rk_test_data_path(char *buf, size_t size, const char *relative) {
    const char *root = getenv("RINGKV_TESTDATA");
    snprintf(buf, size, "%s/%s", root ? root : "../shared/testdata", relative);
    return buf;
}

const char *rk_test_model_path(char *buf, size_t size, const char *file_name) {
    const char *root = getenv("RINGKV_MODELS");
    snprintf(buf, size, "%s/%s", root ? root : "models", file_name);
    if (access(buf, R_OK) != 0) {
        fprintf(stderr, "model %s is not cached (run scripts/fetch-models.sh)\n", buf);
        return NULL;
    }
    return buf;
}

char *rk_test_read_file(const char *path, size_t *out_size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return NULL; }
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) { fclose(f); return NULL; }
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (out_size) *out_size = (size_t)n;
    }
    return buf;
}

int rk_test_finish(const char *name) {
    if (rk_test_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, rk_test_failures);
        return 1;
    }
    fprintf(stderr, "%s: ok\n", name);
    return 0;
}

uint64_t rk_test_rng_next(rk_test_rng *r) {
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}

double rk_test_rng_unif(rk_test_rng *r) { return ((double)(rk_test_rng_next(r) >> 11) + 0.5) / 9007199254740992.0; }

int rk_test_open_unlinked(const char *a, const char *b) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int fd = -1;
    struct dirent *e;
    while (fd < 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char link[300], target[4096];
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0) continue;
        target[n] = '\0';
        if (strstr(target, a) && (!b || strstr(target, b)) && strstr(target, " (deleted)"))
            fd = open(link, O_RDWR); /* a new open file description: buffered even if the store's is O_DIRECT */
    }
    closedir(d);
    return fd;
}
