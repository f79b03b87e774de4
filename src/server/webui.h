/* webui.h — the web page served at / (src/server/webui.html, embedded at build time by
 * cmake/embed.cmake): a streaming chat, a session picker and each session's KV bytes per tier. */
#ifndef RK_SERVER_WEBUI_H
#define RK_SERVER_WEBUI_H

#include <stddef.h>

extern const char rk_webui_html[];   /* NUL-terminated */
extern const size_t rk_webui_html_len;

#endif
