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

/* The journal's flags in --help (docs/configuration.md, "journal"). */
#define SCHEDULER_JOURNAL_HELP                                           \
	"      --journal DIR    keep a write-ahead journal in "          \
	"DIR and restore from it\n"                                      \
	"                       at start (over the file's "              \
	"scheduler.journal.path)\n"                                      \
	"      --journal-sync always|batch|none\n"                       \
	"                       always (default): answers wait "         \
	"for the disk;\n"                                                \
	"                       batch: answers at once, a sync "         \
	"at least every\n"                                               \
	"                       --journal-window-ms; none: no "          \
	"journal\n"                                                      \
	"      --journal-window-ms MS\n"                                 \
	"                       batch: the longest time between "        \
	"syncs, 1 to\n"                                                  \
	"                       10000 (default 10)\n"                    \
	"      --journal-max-size BYTES\n"                               \
	"                       refuse submissions once the "            \
	"journal takes this\n"                                           \
	"                       much (64GiB, 500MB; at least "           \
	"1MiB; default 16GiB)\n"                                         \
	"      --restore-wait-ms MS\n"                                   \
	"                       after a restart, how long "              \
	"restored tasks wait for\n"                                      \
	"                       the workers that held them to "          \
	"report (default 3000)\n"

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
	    SCHEDULER_JOURNAL_HELP
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
	{ "journal", required_argument, NULL, 'J' },
	{ "journal-sync", required_argument, NULL, 'S' },
	{ "journal-window-ms", required_argument, NULL, 'W' },
	{ "journal-max-size", required_argument, NULL, 'M' },
	{ "restore-wait-ms", required_argument, NULL, 'R' },
	{ "ready-file", required_argument, NULL, 'r' },
	{ "log-level", required_argument, NULL, 'L' },
	{ "tls-cert-key", required_argument, NULL, 'K' },
	{ "tls-ca", required_argument, NULL, 'A' },
	{ "require-client-cert", no_argument, NULL, 'Q' },
	{ "token-file", required_argument, NULL, 'O' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* What the flags change besides struct sched_config. */
struct scheduler_flags {
	long hb_timeout; /* --heartbeat-timeout-ms, or -1 */
	int  listens;    /* --listen flags taken */
	int  level;      /* the log level, or -1 */
};

/* --listen URL: the first replaces the file's list.  0, or -1 after
 * saying why. */
static int
scheduler_listen(struct sched_config *sc, struct scheduler_flags *f,
    const char *url)
{
	if (!f->listens++)
		sc->n_listen = 0;
	if (sc->n_listen == SCHED_MAX_LISTEN) {
		fprintf(stderr, "ferry scheduler: at most %d --listen "
		                "addresses\n",
		    SCHED_MAX_LISTEN);
		return -1;
	}
	sc->listen[sc->n_listen++] = url;
	return 0;
}

/* Apply one flag (ch, optarg) over sc and f; 0, 1 after --help, or -1
 * after saying what is wrong. */
static int
scheduler_flag(struct sched_config *sc, struct scheduler_flags *f, int ch)
{
	int mode;

	switch (ch) {
	case 'f': return 0; /* read before */
	case 'l': return scheduler_listen(sc, f, optarg);
	case 'T':
		f->hb_timeout = cli_parse_long("--heartbeat-timeout-ms",
		    optarg, 100, 86400000);
		return 0;
	case 'D':
		sc->drain_timeout_ms = (uint32_t)cli_parse_long(
		    "--drain-timeout-ms", optarg, 0, 86400000);
		return 0;
	case 'J': sc->journal_path = optarg; return 0;
	case 'S':
		if ((mode = conf_parse_sync(optarg)) < 0) {
			fprintf(stderr, "ferry scheduler: --journal-sync: '%s' "
			                "is not always, batch or none\n",
			    optarg);
			return -1;
		}
		sc->journal_sync = mode;
		return 0;
	case 'W':
		sc->journal_window_ms = (uint32_t)cli_parse_long(
		    "--journal-window-ms", optarg, 1, 10000);
		return 0;
	case 'M':
		sc->journal_max_size = cli_parse_size("--journal-max-size",
		    optarg, (size_t)1 << 20);
		return 0;
	case 'R':
		sc->restore_wait_ms = (uint32_t)cli_parse_long(
		    "--restore-wait-ms", optarg, 0, 86400000);
		return 0;
	case 'r': sc->ready_file = optarg; return 0;
	case 'K': sc->tls_cert_key_file = optarg; return 0;
	case 'A': sc->tls_ca_file = optarg; return 0;
	case 'Q': sc->require_client_cert = 1; return 0;
	case 'O': sc->token_file = optarg; return 0;
	case 'L':
		if ((f->level = log_level_parse(optarg)) >= 0)
			return 0;
		fprintf(stderr, "ferry scheduler: unknown log level '%s'\n",
		    optarg);
		return -1;
	case 'h':
		scheduler_usage(stdout);
		return 1;
	default:
		scheduler_usage(stderr);
		return -1;
	}
}

/*
 * Apply the flags of argv over sc and *level.  Returns -1 when they are
 * all taken, else the exit status (0 after --help).
 */
static int
scheduler_flags(int argc, char **argv, struct sched_config *sc,
    int *level)
{
	struct scheduler_flags f = { -1, 0, *level };
	int                    ch, rc;

	while ((ch = getopt_long(argc, argv, "f:l:h", scheduler_opts,
	            NULL)) != -1) {
		if ((rc = scheduler_flag(sc, &f, ch)) != 0)
			return rc > 0 ? 0 : 2;
	}
	if (optind < argc) {
		fprintf(stderr, "ferry scheduler: unexpected argument '%s'\n",
		    argv[optind]);
		return 2;
	}
	if (f.hb_timeout > 0) {
		sc->heartbeat_timeout_ms = (uint32_t)f.hb_timeout;
		if (sc->heartbeat_interval_ms * 2 > sc->heartbeat_timeout_ms)
			sc->heartbeat_interval_ms = sc->heartbeat_timeout_ms / 3;
	}
	*level = f.level;
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
