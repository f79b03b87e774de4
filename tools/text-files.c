/* text-files.c — see text-files.h. */
#include "tools/text-files.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tools/opts.h"

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends src to the growing buffer *buf (length *len), separated by a blank line. */
static int append_text(char **buf, size_t *len, const char *src, size_t n) {
    char *bigger = realloc(*buf, *len + n + 3);
    if (!bigger) return 0;
    *buf = bigger;
    if (*len > 0) {
        memcpy(*buf + *len, "\n\n", 2);
        *len += 2;
    }
    memcpy(*buf + *len, src, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 1;
}

static void free_names(char **names, size_t n) {
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* Lists the regular files of dir sorted by name into *out (malloc'd paths). Returns 0, or the
 * exit code after printing why. */
static int list_dir(const char *cmd, const char *what, const char *dir, char ***out, size_t *out_n) {
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "%s: %s '%s': %s\n", cmd, what, dir, strerror(errno));
        return 2;
    }
    char **names = NULL;
    size_t n = 0;
    int ok = 1;
    for (struct dirent *e; ok && (e = readdir(d));) {
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char **bigger = realloc(names, (n + 1) * sizeof *names);
        if (bigger) names = bigger;
        char *path = bigger ? malloc(len) : NULL;
        struct stat st;
        if (!path) {
            ok = 0;
            break;
        }
        snprintf(path, len, "%s/%s", dir, e->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) names[n++] = path;
        else free(path);
    }
    closedir(d);
    if (!ok) {
        fprintf(stderr, "%s: out of memory listing '%s'\n", cmd, dir);
        free_names(names, n);
        return 1;
    }
    if (n == 0) {
        fprintf(stderr, "%s: %s directory '%s' has no regular files\n", cmd, what, dir);
        free(names);
        return 2;
    }
    qsort(names, n, sizeof *names, cmp_names);
    *out = names;
    *out_n = n;
    return 0;
}

/* Checks the path and lists the files it stands for. Returns 0 or the exit code. */
static int path_files(const char *cmd, const char *what, const char *path, char ***files, size_t *n_files) {
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "%s: %s '%s': %s\n", cmd, what, path, strerror(errno));
        return 2;
    }
    if (S_ISDIR(st.st_mode)) return list_dir(cmd, what, path, files, n_files);
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "%s: %s '%s' is neither a file nor a directory\n", cmd, what, path);
        return 2;
    }
    char **one = malloc(sizeof *one);
    if (one) one[0] = strdup(path);
    if (!one || !one[0]) {
        free(one);
        fprintf(stderr, "%s: out of memory\n", cmd);
        return 1;
    }
    *files = one;
    *n_files = 1;
    return 0;
}

int rk_text_read_path(const char *cmd, const char *what, const char *path, char **out, size_t *out_len) {
    char **files = NULL;
    size_t n_files = 0;
    int rc = path_files(cmd, what, path, &files, &n_files);
    if (rc) return rc;
    char *text = NULL;
    size_t len = 0;
    for (size_t i = 0; i < n_files && !rc; i++) {
        size_t n = 0;
        char *part = rk_opt_read_file(cmd, files[i], &n);
        if (!part || !append_text(&text, &len, part, n)) rc = 1;
        free(part);
    }
    free_names(files, n_files);
    if (!rc && len == 0) {
        fprintf(stderr, "%s: the %s is empty\n", cmd, what);
        rc = 1;
    }
    if (rc) {
        free(text);
        return rc;
    }
    *out = text;
    *out_len = len;
    return 0;
}
