/*
 * ctl.c: the client side of the admin socket: `pgcheckd ctl COMMAND` and `pgcheckd check REQUEST`
 * (HAProxy's external-check). One line out, the whole reply back, each way bounded by a 2 s timeout.
 */
#include "ctl.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin.h"
#include "drainwait.h"

/* ctl_ask sends one line to the running agent's admin socket and reads the whole reply. */
static bool
ctl_ask(const char *path, const char *line, char *reply, size_t len)
{
	struct sockaddr_un sun;
	struct timeval tv = {2, 0};
	size_t got = 0;
	ssize_t n;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (path[0] == '\0' || strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "pgcheckd: no admin socket configured ([admin] socket)\n");
		return false;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		fprintf(stderr, "pgcheckd: cannot reach the agent at %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	if (send(fd, line, strlen(line), MSG_NOSIGNAL) != (ssize_t)strlen(line) ||
	    send(fd, "\n", 1, MSG_NOSIGNAL) != 1) {
		fprintf(stderr, "pgcheckd: cannot send to the agent: %s\n", strerror(errno));
		close(fd);
		return false;
	}
	while (got + 1 < len && (n = recv(fd, reply + got, len - 1 - got, 0)) > 0)
		got += (size_t)n;
	reply[got] = '\0';
	close(fd);
	if (got == 0) {
		fprintf(stderr, "pgcheckd: no answer from the agent at %s\n", path);
		return false;
	}
	return true;
}

int
ctl_run(const char *admin_socket, int argc, char **argv)
{
	char line[256], reply[16384];
	size_t n = 0;
	bool check = strcmp(argv[0], "check") == 0;

	bool cluster_json = !check && argc == 3 && strcmp(argv[1], "cluster") == 0 && strcmp(argv[2], "--json") == 0;

	if (argc < 2 || (!check && argc != 2 && !cluster_json) || (!check && !admin_is_ctl_word(argv[1])))
		return CTL_USAGE;
	n = (size_t)snprintf(line, sizeof(line), "%s", check ? "check" : cluster_json ? "cluster json" : argv[1]);
	for (int i = 1; check && i < argc && n < sizeof(line); i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, " %s", argv[i]);
	if (n >= sizeof(line)) {
		fprintf(stderr, "pgcheckd: request too long\n");
		return CTL_UNKNOWN;
	}
	if (!ctl_ask(admin_socket, line, reply, sizeof(reply)))
		return CTL_UNKNOWN; /* errors have been logged already */
	fputs(reply, stdout);
	if (check)
		return strncmp(reply, "up", 2) == 0 ? 0 : strncmp(reply, "down", 4) == 0 ? 1 : CTL_UNKNOWN;
	return strncmp(reply, "error", 5) == 0 ? 1 : 0;
}

bool
ctl_is_drain_wait(int argc, char **argv)
{
	return argc >= 3 && strcmp(argv[0], "ctl") == 0 && strcmp(argv[1], "drain") == 0 &&
	       strcmp(argv[2], "--wait") == 0;
}

int
ctl_drain_wait(const struct conf *c, int argc, char **argv)
{
	char reply[256], *end = NULL;
	long seconds = DRAINWAIT_DEFAULT_S;

	if (argc > 4 || !ctl_is_drain_wait(argc, argv))
		return CTL_USAGE;
	if (argc == 4) {
		seconds = strtol(argv[3], &end, 10);
		if (end == argv[3] || *end != '\0' || seconds < 0 || seconds > DRAINWAIT_MAX_S) {
			fprintf(stderr, "pgcheckd: drain --wait takes seconds from 0 to %d, not '%s'\n",
			        DRAINWAIT_MAX_S, argv[3]);
			return CTL_USAGE;
		}
	}
	if (!drainwait_configured(c, stderr))
		return 1; /* nothing changed: a drain it cannot see the end of is not started */
	if (!ctl_ask(c->admin_socket, "drain", reply, sizeof(reply)))
		return 1; /* errors have been logged already; never claim a drain */
	fputs(reply, stdout);
	if (strncmp(reply, "ok", 2) != 0)
		return 1;
	fflush(stdout);
	return drainwait_run(c, (int)seconds, stdout, stderr);
}
