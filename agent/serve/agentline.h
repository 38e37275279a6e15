/*
 * agentline.h: the agent line protocol (HAProxy agent-check and tcp-check send/expect).
 * Parsing a request line and rendering a verdict as one complete reply line. Pure: no sockets.
 */
#ifndef PGCHECKD_AGENTLINE_H
#define PGCHECKD_AGENTLINE_H

#include <stdbool.h>
#include <stddef.h>

#include "request.h"
#include "verdict.h"

/* The longest request line accepted; longer input is a bad request. */
#define AGENTLINE_MAX 256

enum agentline_parse { AGENTLINE_OK, AGENTLINE_EMPTY, AGENTLINE_BAD };

/*
 * agentline_parse reads one request from buf (len bytes, with or without its "\n" or "\r\n"):
 * "KIND [key=value ...]", words separated by spaces, tabs or commas. AGENTLINE_EMPTY when there is
 * nothing but whitespace (the listener's default applies); AGENTLINE_BAD for anything not understood,
 * including bytes after the first line and control characters.
 */
enum agentline_parse agentline_parse(const char *buf, size_t len, struct request *out);

/* agentline_render writes "up 73%\n" or "down #reason\n" into buf; returns its length (0 if it cannot fit). */
size_t agentline_render(const struct verdict *v, char *buf, size_t len);

/*
 * agentline_render_unasked is agentline_render for an answer given without a whole request line (no
 * request within the wait, or one ended by silence or EOF): "73% up\n" or "down #reason\n". HAProxy's
 * agent-check reads the words in any order; a check that sent a line and expects "^up" never takes
 * it for the answer to its own request, however late that request arrived.
 */
size_t agentline_render_unasked(const struct verdict *v, char *buf, size_t len);

#endif
