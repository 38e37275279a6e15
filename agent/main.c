/*
 * main.c: pgcheckd's entry point: the command line. Runs the agent (daemon.c), checks a configuration
 * (-t), talks to a running agent (ctl, check: ctl.c) or prints the key table.
 * Exits 2 for a bad configuration or command line; the agent's own exit codes are in daemon.h.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "ctl.h"
#include "daemon.h"
#include "tls.h"

#define EXIT_CONFIG 2

static void
daemon_usage(FILE *out)
{
	fprintf(out, "usage: pgcheckd [-c FILE]          run the agent (in the foreground)\n"
	             "       pgcheckd -t [-c FILE]       check a configuration file and exit (0 good, 2 bad)\n"
	             "       pgcheckd [-c FILE] ctl status|drain|maint|ready|release|cluster [--json]\n"
	             "                                   ask or tell the running agent over its admin socket\n"
	             "       pgcheckd [-c FILE] ctl drain --wait [SECONDS]\n"
	             "                                   drain, then wait until no HAProxy sends this node anything\n"
	             "                                   (default 60 s; exit 0 drained, 1 not)\n"
	             "       pgcheckd [-c FILE] check REQUEST\n"
	             "                                   exit 0 when the running agent answers up, 1 down, 2 unknown\n"
	             "       pgcheckd --help-config[=ini|markdown|man]\n"
	             "                                   print every configuration key\n"
	             "       pgcheckd -V                 print the version\n"
	             "FILE defaults to " CONF_DEFAULT_PATH ".\n");
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"test", no_argument, NULL, 't'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {"help-config", optional_argument, NULL, 'K'},
	    {"json", no_argument, NULL, 'J'},
	    {NULL, 0, NULL, 0},
	};
	char *ctl_argv[8];
	bool json = false;       /* `ctl cluster --json` (getopt takes the flag wherever it stands) */
	static struct conf conf; /* large: not on the stack */
	const char *conf_path = CONF_DEFAULT_PATH;
	char err[CONF_ERR_MAX];
	bool test_only = false;
	int opt;

	while ((opt = getopt_long(argc, argv, "+c:tVh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			conf_path = optarg;
			break;
		case 't':
			test_only = true;
			break;
		case 'J':
			json = true;
			break;
		case 'V':
			printf("pgcheckd %s\n", PGCHECKD_VERSION);
			return 0;
		case 'h':
			daemon_usage(stdout);
			return 0;
		case 'K':
			if (optarg != NULL && strcmp(optarg, "markdown") == 0)
				conf_print_keys(stdout);
			else if (optarg != NULL && strcmp(optarg, "man") == 0)
				conf_print_man(stdout);
			else if (optarg == NULL || strcmp(optarg, "ini") == 0)
				conf_print_example(stdout);
			else {
				daemon_usage(stderr);
				return EXIT_CONFIG;
			}
			return 0;
		default:
			daemon_usage(stderr);
			return EXIT_CONFIG;
		}
	}
	if (json && optind == argc) {
		daemon_usage(stderr);
		return EXIT_CONFIG;
	}
	if (optind != argc && strcmp(argv[optind], "ctl") != 0 && strcmp(argv[optind], "check") != 0) {
		daemon_usage(stderr);
		return EXIT_CONFIG;
	}
	if (!conf_load(conf_path, &conf, err, sizeof(err))) {
		fprintf(stderr, "pgcheckd: %s\n", err);
		return EXIT_CONFIG;
	}
	if (optind != argc) {
		int n = argc - optind, rc;
		char **av;

		if (json && (n != 2 || strcmp(argv[optind], "ctl") != 0 || strcmp(argv[optind + 1], "cluster") != 0)) {
			daemon_usage(stderr); /* --json is for ctl cluster only */
			return EXIT_CONFIG;
		}
		for (int i = 0; i < n && i < 6; i++)
			ctl_argv[i] = argv[optind + i];
		if (json)
			ctl_argv[n++] = (char *)"--json";
		av = n <= 6 ? ctl_argv : argv + optind;
		rc = ctl_is_drain_wait(n, av) ? ctl_drain_wait(&conf, n, av) : ctl_run(conf.admin_socket, n, av);

		if (rc == CTL_USAGE)
			daemon_usage(stderr);
		return rc == CTL_USAGE ? EXIT_CONFIG : rc;
	}
	if (test_only) {
		SSL_CTX *tls = tls_context_new(&conf, err, sizeof(err)); /* the certificate and key load */

		if (tls == NULL && err[0] != '\0') {
			fprintf(stderr, "pgcheckd: %s: %s\n", conf_path, err);
			return EXIT_CONFIG;
		}
		tls_context_free(tls);
		printf("%s: configuration is valid\n", conf_path);
		return 0;
	}

	return daemon_run(conf_path, &conf);
}
