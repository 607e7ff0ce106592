/*
 * cmd_scheduler.c - `ferry scheduler`: run a scheduler in the foreground,
 * with the settings of a cluster file (struct conf's sched) and the
 * flags over them.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "log.h"
#include "scheduler.h"

static void
scheduler_usage(FILE *out)
{
	fprintf(out,
	    "usage: ferry scheduler [-f FILE] [--listen URL]... "
	    "[--log-level LEVEL]\n"
	    "\n"
	    "Run a scheduler in the foreground until SIGINT or SIGTERM.  The "
	    "first\n"
	    "signal drains: submissions are refused, nothing more is "
	    "dispatched,\n"
	    "running tasks finish and connected clients take their results, "
	    "for\n"
	    "up to the drain timeout; a second signal stops at once.\n"
	    "\n"
	    "  -f, --file FILE      cluster file: listen addresses, heartbeat "
	    "and\n"
	    "                       limits from its 'scheduler' section\n"
	    "  -l, --listen URL     listen here (tcp://HOST:PORT, "
	    "ipc:///PATH, ...);\n"
	    "                       may repeat; replaces the file's list\n"
	    "      --heartbeat-timeout-ms MS\n"
	    "                       declare a silent worker lost after MS\n"
	    "      --drain-timeout-ms MS\n"
	    "                       on a stop signal, let running tasks "
	    "finish\n"
	    "                       for at most MS (default 30000; 0: stop "
	    "at once)\n"
	    "      --ready-file PATH  write the pid here once listening\n"
	    "      --tls-cert-key FILE  certificate and private key (one "
	    "PEM file)\n"
	    "                       for tls+tcp:// addresses\n"
	    "      --tls-ca FILE    CA (PEM) to verify client certificates "
	    "with\n"
	    "      --require-client-cert  refuse TLS peers without a "
	    "certificate\n"
	    "                       signed by --tls-ca (mutual TLS)\n"
	    "      --token-file FILE  require the token in FILE in every "
	    "hello\n"
	    "      --log-level L    error, warn, info (default) or debug\n"
	    "  -h, --help           show this help\n"
	    "\n"
	    "Without -f or --listen it listens on %s.\n",
	    CLI_DEFAULT_ADDRESS);
}

static const struct option scheduler_opts[] = {
	{ "file", required_argument, NULL, 'f' },
	{ "listen", required_argument, NULL, 'l' },
	{ "heartbeat-timeout-ms", required_argument, NULL, 'T' },
	{ "drain-timeout-ms", required_argument, NULL, 'D' },
	{ "ready-file", required_argument, NULL, 'r' },
	{ "log-level", required_argument, NULL, 'L' },
	{ "tls-cert-key", required_argument, NULL, 'K' },
	{ "tls-ca", required_argument, NULL, 'A' },
	{ "require-client-cert", no_argument, NULL, 'Q' },
	{ "token-file", required_argument, NULL, 'O' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/*
 * Apply the flags of argv over sc and *level.  Returns -1 when they are
 * all taken, else the exit status (0 after --help).
 */
static int
scheduler_flags(int argc, char **argv, struct sched_config *sc,
    int *level)
{
	long hb_timeout = -1;
	int  ch, listen_flags = 0;

	while ((ch = getopt_long(argc, argv, "f:l:h", scheduler_opts,
	            NULL)) != -1) {
		switch (ch) {
		case 'f': break; /* read before */
		case 'l':
			if (!listen_flags++)
				sc->n_listen = 0; /* replaces the file's */
			if (sc->n_listen == SCHED_MAX_LISTEN) {
				fprintf(stderr, "ferry scheduler: at most %d "
				                "--listen addresses\n",
				    SCHED_MAX_LISTEN);
				return 2;
			}
			sc->listen[sc->n_listen++] = optarg;
			break;
		case 'T':
			hb_timeout = cli_parse_long("--heartbeat-timeout-ms",
			    optarg, 100, 86400000);
			break;
		case 'D':
			sc->drain_timeout_ms = (uint32_t)cli_parse_long(
			    "--drain-timeout-ms", optarg, 0, 86400000);
			break;
		case 'r': sc->ready_file = optarg; break;
		case 'K': sc->tls_cert_key_file = optarg; break;
		case 'A': sc->tls_ca_file = optarg; break;
		case 'Q': sc->require_client_cert = 1; break;
		case 'O': sc->token_file = optarg; break;
		case 'L':
			if ((*level = log_level_parse(optarg)) < 0) {
				fprintf(stderr, "ferry scheduler: unknown log "
				                "level '%s'\n",
				    optarg);
				return 2;
			}
			break;
		case 'h':
			scheduler_usage(stdout);
			return 0;
		default:
			scheduler_usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ferry scheduler: unexpected argument '%s'\n",
		    argv[optind]);
		return 2;
	}
	if (hb_timeout > 0) {
		sc->heartbeat_timeout_ms = (uint32_t)hb_timeout;
		if (sc->heartbeat_interval_ms * 2 > sc->heartbeat_timeout_ms)
			sc->heartbeat_interval_ms = sc->heartbeat_timeout_ms / 3;
	}
	return -1;
}

int
cmd_scheduler(int argc, char **argv)
{
	struct sched_config sc;
	struct conf         c;
	const char         *file = NULL;
	int                 level = -1, rc, have_conf = 0;

	if (cli_opt_value(argc, argv, "f:l:h", scheduler_opts, 'h') == NULL)
		file = cli_opt_value(argc, argv, "f:l:h", scheduler_opts, 'f');
	if (file != NULL) {
		if (cli_load_conf(file, &c) != 0)
			return 1;
		have_conf = 1;
		sc        = c.sched;
		level     = c.log_level;
	} else {
		sched_config_defaults(&sc);
	}
	if ((rc = scheduler_flags(argc, argv, &sc, &level)) < 0) {
		if (sc.n_listen == 0) {
			sc.listen[0] = CLI_DEFAULT_ADDRESS;
			sc.n_listen  = 1;
		}
		log_init("scheduler", level < 0 ? LOG_INFO : level);
		if (cli_runtime_dir_ready(sc.listen, sc.n_listen) != 0)
			rc = 1;
		else
			rc = sched_run(&sc);
	}
	if (have_conf)
		conf_free(&c);
	return rc;
}
