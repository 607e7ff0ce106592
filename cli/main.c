/*
 * main.c - the ferry command: its usage and the dispatch to subcommands
 * (cmd_scheduler.c, cmd_worker.c, cmd_submit.c, cmd_status.c,
 * cluster.c, bench.c).
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <nng/nng.h>

#include "cli.h"
#include "util.h"

static const char *usage_text =
    "usage: ferry COMMAND [OPTIONS]\n"
    "\n"
    "Ferry runs named task functions from shared-object task libraries on\n"
    "worker processes, scheduled over NNG with msgpack messages.\n"
    "\n"
    "Commands:\n"
    "  scheduler        run a scheduler in the foreground\n"
    "  worker           run a worker supervisor (N worker processes)\n"
    "  cluster up|down|status -f FILE\n"
    "                   start, stop or inspect a local cluster from a "
    "YAML file\n"
    "  submit FN [ARG...]\n"
    "                   run one task and print its result as JSON\n"
    "  status           show workers, slots, queue depth and counters\n"
    "  bench throughput|latency\n"
    "                   measure tasks/s and round-trip latency\n"
    "  version          print the version\n"
    "\n"
    "Run 'ferry COMMAND --help' for a command's options.\n"
    "Documentation: README.md and docs/ in the source tree.\n";

static char self_exe[PATH_MAX];

const char *
cli_self_exe(void)
{
	return self_exe;
}

static void
fini_call(void *arg)
{
	(void)arg;
	nng_fini();
}

/* nng_fini(), or exit with rc if it takes longer than 3 s. */
static void
fini_bounded(int rc)
{
	if (util_call_bounded(fini_call, NULL, 3) != 0) {
		fflush(stdout);
		fflush(stderr);
		_exit(rc);
	}
}

static const struct {
	const char *name;
	int (*fn)(int, char **);
} commands[] = {
	{ "scheduler", cmd_scheduler },
	{ "worker", cmd_worker },
	{ "worker-process", cmd_worker_process },
	{ "cluster", cmd_cluster },
	{ "submit", cmd_submit },
	{ "status", cmd_status },
	{ "bench", cmd_bench },
};

int
main(int argc, char **argv)
{
	ssize_t     n;
	const char *cmd;

	n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (n <= 0)
		util_strlcpy(self_exe, argv[0], sizeof(self_exe));
	else
		self_exe[n] = '\0';
	if (argc < 2) {
		fputs(usage_text, stderr);
		return 2;
	}
	/* FERRY_PARENT_DEATHSIG=1 (set by test harnesses): die with the
	 * process that started us, so a crashed test leaves nothing behind */
	{
		const char *e = getenv("FERRY_PARENT_DEATHSIG");
		if (e != NULL && strcmp(e, "1") == 0)
			prctl(PR_SET_PDEATHSIG, SIGKILL);
	}
	cmd = argv[1];
	argc--;
	argv++;
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
	    strcmp(cmd, "help") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("ferry %s\n", ferry_version());
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(cmd, commands[i].name) == 0) {
			int rc = commands[i].fn(argc, argv);
			/* NNG's threads and global state, so leak checkers see
			 * a clean exit; bounded, because NNG 1.5.2 can wait
			 * forever for a connection whose close hung (seen with
			 * tls+tcp://, see docs/security.md) */
			fini_bounded(rc);
			return rc;
		}
	}
	fprintf(stderr, "ferry: unknown command '%s'\n\n%s", cmd, usage_text);
	return 2;
}
