/*
 * runtimeapi.h: a small client of HAProxy's runtime API (the stats socket, "level admin"): one
 * command line per connection, synchronous with one deadline for connect, send and receive (it runs on
 * worker threads, never on the event loop), and a parser for "show servers state".
 */
#ifndef PGCHECKD_RUNTIMEAPI_H
#define PGCHECKD_RUNTIMEAPI_H

#include <stdbool.h>
#include <stddef.h>

#define RUNTIMEAPI_SLOTS_MAX 256

/* One server of a backend, as "show servers state" lists it. */
struct runtimeapi_server {
	int id;
	char name[64];
	char addr[64];
	int port;
	int op_state;    /* 0 stopped, 1 starting, 2 running, 3 stopping */
	int admin_state; /* bit 0x01: forced maintenance (an operator, or our withdrawal) */
	int check_port;
	char agent_addr[64];
	int agent_port;
	int uweight; /* the weight now (srv_uweight); -1 when the answer has no such column */
	int iweight; /* the configured weight (srv_iweight), which "N%" is relative to; -1 likewise */
};

/*
 * runtimeapi_command sends one line (commands may be joined with "; ") to addr ("/path/to/socket" or
 * "host:port") and reads the whole answer into out. False (with why) when HAProxy cannot be reached or
 * has not answered within timeout_ms, counted from the call: connect (even to a unix socket whose
 * backlog is full), send and receive together.
 */
bool runtimeapi_command(const char *addr, const char *line, int timeout_ms, char *out, size_t outlen, char *why,
                        size_t whylen);

/*
 * runtimeapi_stat_columns finds, in the header line of "show stat" ("# pxname,svname,..."), the column of
 * each of the count names (every column of the header, however many: the ones asked for may come
 * anywhere); col[i] must be -1 on entry. False when the text has no such header or a name is missing.
 */
bool runtimeapi_stat_columns(const char *csv, const char *const *names, int count, int *col);

/* runtimeapi_parse_state reads "show servers state BACKEND" output; returns the number of servers, -1 if malformed. */
int runtimeapi_parse_state(const char *text, const char *backend, struct runtimeapi_server *out, int max);

/* runtimeapi_error_line is the line of answer holding one of HAProxy's error words, or NULL. */
const char *runtimeapi_error_line(const char *answer);

/* runtimeapi_answer_ok is false when an answer holds one of HAProxy's error words for a command. */
bool runtimeapi_answer_ok(const char *answer);

#endif
