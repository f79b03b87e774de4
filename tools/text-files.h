/* text-files.h — reading the text a command runs over (haystack essays, fill text) from a file
 * or from a directory of files. */
#ifndef RK_TOOLS_TEXT_FILES_H
#define RK_TOOLS_TEXT_FILES_H

#include <stddef.h>

/* Reads `path` into *out (malloc'd, NUL-terminated; the caller frees it) and its length into
 * *out_len. A directory stands for its regular files in name order, joined by blank lines.
 * Messages go to stderr as "<cmd>: <what> '<path>': ..." (`what` names the text, e.g.
 * "haystack"). Returns 0; 2 when the path is missing, not a file or directory, or an empty
 * directory (a usage error); 1 when reading fails, the text is empty or memory runs out. */
int rk_text_read_path(const char *cmd, const char *what, const char *path, char **out, size_t *out_len);

#endif
