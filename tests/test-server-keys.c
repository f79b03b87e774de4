/*
 * test-server-keys.c — API key files and bearer checks (server/api-keys.h), on key files
 * written to /tmp (mkstemp):
 *
 *   1. a good file: comments, blank lines, indentation, CRLF, no final newline, names (with
 *      inner spaces, trailing whitespace dropped) and default names "key-<i>";
 *   2. bearer parsing: the scheme in any case, exactly one space, the key compared whole (a
 *      prefix, an extra suffix, a trailing space, a wrong key, another scheme, NULL all fail);
 *   3. every refusal is RK_ERR_FORMAT naming the line and never the key text: no keys (empty
 *      or comments only), a key of 15 bytes (16 passes), control and non-ASCII bytes (also a
 *      NUL) in a key, a duplicate key, a name of 65 bytes (64 passes), a control byte in a name,
 *      a file over the size limit; RK_ERR_IO for a missing file and a directory;
 *   4. the world_readable flag for modes 0600, 0640 and 0644;
 *   5. 1000 keys, each found at its index, checked by 4 threads at once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/api-keys.h"
#include "test-util.h"

#define KEY_A "sk-alpha-0123456789abcdef"
#define KEY_B "sk-bravo-0123456789abcdef"
#define KEY_C "sk-charlie-0123456789abcdef"

/* Writes len bytes into a new file in /tmp with the given mode; path receives its name. */
static void write_file(char path[64], const char *text, size_t len, mode_t mode) {
    strcpy(path, "/tmp/rk-test-keys-XXXXXX");
    int fd = mkstemp(path);
    CHECK_MSG(fd >= 0, "mkstemp: %s", strerror(errno));
    if (fd < 0) return;
    CHECK(write(fd, text, len) == (ssize_t)len);
    CHECK(fchmod(fd, mode) == 0);
    close(fd);
}

/* Loads text as a key file (mode 0600); returns the status, *out the keys (or NULL). */
static rk_status load_text(const char *text, size_t len, rk_api_keys **out, rk_error *err) {
    char path[64];
    write_file(path, text, len, 0600);
    int wr = -1;
    rk_status st = rk_api_keys_load(path, out, &wr, err);
    CHECK(st != RK_OK || wr == 0);
    unlink(path);
    return st;
}

static int check_key(const rk_api_keys *k, const char *scheme_and_space, const char *key) {
    char header[256];
    snprintf(header, sizeof header, "%s%s", scheme_and_space, key);
    return rk_api_keys_check(k, header);
}

static void test_good_file(void) {
    /* clang-format off */
    static const char text[] =
        "# keys for the test\n"
        "\n"
        "   \t\n"
        KEY_A " alice\n"
        "  # indented comment\n"
        "\t" KEY_B "\r\n"
        KEY_C " \t carol the admin \t\r\n"
        "0123456789abcdef"; /* exactly 16 bytes, no final newline */
    /* clang-format on */
    rk_api_keys *k = NULL;
    rk_error err;
    CHECK_MSG(load_text(text, sizeof text - 1, &k, &err) == RK_OK, "%s", err.msg);
    if (!k) return;
    CHECK(rk_api_keys_count(k) == 4);
    CHECK(strcmp(rk_api_keys_name(k, 0), "alice") == 0);
    CHECK(strcmp(rk_api_keys_name(k, 1), "key-1") == 0);
    CHECK(strcmp(rk_api_keys_name(k, 2), "carol the admin") == 0);
    CHECK(strcmp(rk_api_keys_name(k, 3), "key-3") == 0);
    CHECK(rk_api_keys_name(k, 4) == NULL && rk_api_keys_name(k, -1) == NULL);

    CHECK(check_key(k, "Bearer ", KEY_A) == 0);
    CHECK(check_key(k, "Bearer ", KEY_B) == 1);
    CHECK(check_key(k, "Bearer ", KEY_C) == 2);
    CHECK(check_key(k, "Bearer ", "0123456789abcdef") == 3);
    CHECK(check_key(k, "bearer ", KEY_A) == 0);
    CHECK(check_key(k, "BEARER ", KEY_B) == 1);
    CHECK(check_key(k, "bEaReR ", KEY_C) == 2);
    CHECK(check_key(k, "Bearer  ", KEY_A) == -1); /* two spaces */
    CHECK(check_key(k, "Bearer\t", KEY_A) == -1);
    CHECK(check_key(k, "Bearer", KEY_A) == -1);
    CHECK(check_key(k, "Basic ", KEY_A) == -1);
    CHECK(check_key(k, "", KEY_A) == -1);
    CHECK(check_key(k, "Bearer ", KEY_A " ") == -1);
    CHECK(check_key(k, "Bearer ", KEY_A "x") == -1);                   /* extra suffix */
    CHECK(check_key(k, "Bearer ", "sk-alpha-0123456789abcde") == -1);  /* prefix */
    CHECK(check_key(k, "Bearer ", "sk-alpha-0123456789abcdeF") == -1); /* last byte wrong */
    CHECK(check_key(k, "Bearer ", "alice") == -1);                     /* a name is not a key */
    CHECK(check_key(k, "Bearer ", "") == -1);
    CHECK(rk_api_keys_check(k, "Bearer ") == -1);
    CHECK(rk_api_keys_check(k, "Bearer") == -1);
    CHECK(rk_api_keys_check(k, NULL) == -1);
    CHECK(rk_api_keys_check(NULL, "Bearer " KEY_A) == -1);
    CHECK(rk_api_keys_count(NULL) == 0 && rk_api_keys_name(NULL, 0) == NULL);
    rk_api_keys_free(k);
    rk_api_keys_free(NULL);
}

/* Expects the text to be refused with RK_ERR_FORMAT and a message containing `want` and
 * none of the keys. */
static void expect_refused(const char *text, size_t len, const char *want) {
    rk_api_keys *k = (rk_api_keys *)1;
    rk_error err;
    rk_status st = load_text(text, len, &k, &err);
    CHECK_MSG(st == RK_ERR_FORMAT, "'%s': status %d", want, st);
    CHECK(k == NULL);
    CHECK_MSG(strstr(err.msg, want) != NULL, "message '%s' lacks '%s'", err.msg, want);
    CHECK_MSG(strstr(err.msg, "0123456789") == NULL && strstr(err.msg, "sk-") == NULL,
              "message names the key: %s", err.msg);
}

static void test_refusals(void) {
#define REFUSE(text, want) expect_refused(text, sizeof(text) - 1, want)
    REFUSE("", "no keys");
    REFUSE("# only a comment\n\n  \n", "no keys");
    REFUSE(KEY_A "\n# fine\nsk-0123456789ab\n", "line 3"); /* 15 bytes */
    REFUSE(KEY_A "\nsk-01234567\00189abcdef\n", "line 2"); /* octal escapes: \001 then '8' */
    REFUSE("sk-0123456789\303\251abcdef\n", "line 1");     /* U+00E9 */
    REFUSE("sk-01234567\17789abcdef\n", "line 1");         /* DEL */
    REFUSE(KEY_A "\nsk-0123\000456789abcdef\n", "line 2"); /* NUL */
    REFUSE(KEY_A "\n" KEY_B "\n\n" KEY_A " again\n", "line 4: same key as line 1");
    REFUSE(KEY_A " \x1b[31mred\n", "line 1: name");
    char text[256];
    memset(text, 0, sizeof text);
    strcpy(text, KEY_A " ");
    size_t base = strlen(text);
    memset(text + base, 'n', 65);
    expect_refused(text, base + 65, "line 1: name is 65 bytes");
    rk_api_keys *k;
    rk_error err;
    CHECK(load_text(text, base + 64, &k, &err) == RK_OK);
    CHECK(k && strlen(rk_api_keys_name(k, 0)) == 64);
    rk_api_keys_free(k);

    size_t big = RK_API_KEYS_FILE_MAX + 1;
    char *huge = malloc(big);
    memset(huge, '#', big);
    expect_refused(huge, big, "more than");
    free(huge);
#undef REFUSE

    CHECK(rk_api_keys_load("/nonexistent/keys.txt", &k, NULL, &err) == RK_ERR_IO);
    CHECK(k == NULL && strstr(err.msg, "/nonexistent/keys.txt") != NULL);
    CHECK(rk_api_keys_load("/tmp", &k, NULL, &err) == RK_ERR_IO);
}

static void test_world_readable(void) {
    static const mode_t modes[] = {0600, 0400, 0640, 0644, 0604};
    static const int want[] = {0, 0, 1, 1, 1};
    for (int i = 0; i < 5; i++) {
        char path[64];
        write_file(path, KEY_A "\n", strlen(KEY_A) + 1, modes[i]);
        rk_api_keys *k;
        rk_error err;
        int wr = -1;
        CHECK_MSG(rk_api_keys_load(path, &k, &wr, &err) == RK_OK, "%s", err.msg);
        CHECK_MSG(wr == want[i], "mode %o: world_readable %d", (unsigned)modes[i], wr);
        rk_api_keys_free(k);
        unlink(path);
    }
}

#define MANY 1000

typedef struct many_arg {
    const rk_api_keys *k;
    int start, wrong;
} many_arg;

static void *check_many(void *p) {
    many_arg *a = p;
    for (int r = 0; r < 5; r++)
        for (int i = a->start; i < MANY; i += 4) {
            char h[64];
            snprintf(h, sizeof h, "Bearer sk-many-%08d-padding", i);
            a->wrong += rk_api_keys_check(a->k, h) != i;
        }
    return NULL;
}

static void test_many_keys(void) {
    char *text = malloc(MANY * 40);
    size_t len = 0;
    for (int i = 0; i < MANY; i++)
        len += (size_t)sprintf(text + len, "sk-many-%08d-padding\n", i);
    rk_api_keys *k;
    rk_error err;
    CHECK_MSG(load_text(text, len, &k, &err) == RK_OK, "%s", err.msg);
    free(text);
    if (!k) return;
    CHECK(rk_api_keys_count(k) == MANY);
    pthread_t t[4];
    many_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (many_arg){k, i, 0};
        pthread_create(&t[i], NULL, check_many, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK_MSG(a[i].wrong == 0, "thread %d: %d wrong answers", i, a[i].wrong);
    }
    CHECK(rk_api_keys_check(k, "Bearer sk-many-00001000-padding") == -1);
    rk_api_keys_free(k);
}

int main(void) {
    test_good_file();
    test_refusals();
    test_world_readable();
    test_many_keys();
    return rk_test_finish("test-server-keys");
}
