/*
 * main.c - the ferry command: dispatch to subcommands, and the scheduler,
 * worker, submit and status subcommands.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ferry/ferry.h"
#include <nng/nng.h>
#include "json.h"
#include "log.h"
#include "scheduler.h"
#include "util.h"
#include "worker.h"

extern char **environ;

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

int
cli_ncpu(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

int
cli_load_conf(const char *path, struct conf *c)
{
	char err[1024];
	if (conf_load(path, c, err, sizeof(err)) != 0) {
		fprintf(stderr, "ferry: %s\n", err);
		return -1;
	}
	return 0;
}

long
cli_parse_long(const char *opt, const char *val, long min, long max)
{
	char *end;
	long  v;
	errno = 0;
	v     = strtol(val, &end, 10);
	if (errno != 0 || end == val || *end != '\0' || v < min || v > max) {
		fprintf(stderr,
		    "ferry: %s: '%s' is not a number between %ld and %ld\n", opt,
		    val, min, max);
		exit(2);
	}
	return v;
}

int
cli_address(const char *file, const char *url, char *buf, size_t len)
{
	const char *env;
	if (url != NULL) {
		util_strlcpy(buf, url, len);
		return 0;
	}
	if (file != NULL) {
		struct conf c;
		if (cli_load_conf(file, &c) != 0)
			return -1;
		util_strlcpy(buf, c.address, len);
		conf_free(&c);
		return 0;
	}
	if ((env = getenv("FERRY_ADDRESS")) != NULL && env[0] != '\0') {
		util_strlcpy(buf, env, len);
		return 0;
	}
	util_strlcpy(buf, CLI_DEFAULT_ADDRESS, len);
	return 0;
}

pid_t
cli_spawn(const char *const *argv, const char *log_path)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t          attr;
	sigset_t                   none;
	pid_t                      pid;
	int                        rv;

	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	if (log_path != NULL) {
		posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null",
		    O_RDONLY, 0);
		posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log_path,
		    O_WRONLY | O_CREAT | O_APPEND, 0644);
		posix_spawn_file_actions_adddup2(
		    &fa, STDOUT_FILENO, STDERR_FILENO);
	}
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID |
	        POSIX_SPAWN_SETSIGMASK);
	rv = posix_spawn(&pid, self_exe, &fa, &attr, (char *const *)argv,
	    environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (rv != 0) {
		fprintf(stderr, "ferry: cannot start %s %s: %s\n", self_exe,
		    argv[1], strerror(rv));
		return -1;
	}
	return pid;
}

int
cli_pid_stat(pid_t pid, char *state, uint64_t *start)
{
	char               path[64], buf[1024], *p;
	FILE              *f;
	size_t             n;
	unsigned long long v;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* "PID (COMM) STATE f4 ... f22 ...": COMM may hold spaces and
	 * parentheses, so count the fields after its last ')' */
	if ((p = strrchr(buf, ')')) == NULL || p[1] != ' ' || p[2] == '\0')
		return -1;
	*state = p[2];
	p += 3;
	for (int field = 4; field <= 22; field++) {
		while (*p == ' ')
			p++;
		if (field == 22)
			break;
		p += strcspn(p, " ");
	}
	if (sscanf(p, "%llu", &v) != 1)
		return -1;
	*start = v;
	return 0;
}

int
cli_pid_is(pid_t pid, uint64_t start)
{
	char     state;
	uint64_t now;
	int      st;

	if (pid <= 0 || start == 0)
		return 0;
	/* reap it if it is our own child that already exited */
	if (waitpid(pid, &st, WNOHANG) == pid)
		return 0;
	return cli_pid_stat(pid, &state, &now) == 0 && now == start &&
	    state != 'Z' && state != 'X';
}

int
cli_wait_gone(pid_t pid, int timeout_ms)
{
	uint64_t end = util_now_ms() + (uint64_t)timeout_ms, start;
	char     state;

	/* the process pid is now; once it ends, whatever else gets the
	 * pid is not it */
	if (cli_pid_stat(pid, &state, &start) != 0)
		return 0;
	for (;;) {
		if (!cli_pid_is(pid, start))
			return 0;
		if (util_now_ms() >= end)
			return -1;
		usleep(20000);
	}
}

void
cli_tail_log(const char *path, int lines)
{
	FILE  *f = fopen(path, "r");
	char **ring;
	char   line[2048];
	int    n = 0;

	if (f == NULL)
		return;
	ring = calloc((size_t)lines, sizeof(*ring));
	while (ring != NULL && fgets(line, sizeof(line), f) != NULL) {
		free(ring[n % lines]);
		ring[n % lines] = strdup(line);
		n++;
	}
	fclose(f);
	if (ring == NULL)
		return;
	fprintf(stderr, "  --- last lines of %s ---\n", path);
	for (int i = n > lines ? n - lines : 0; i < n; i++)
		fprintf(stderr, "  %s", ring[i % lines] ? ring[i % lines] : "\n");
	for (int i = 0; i < lines; i++)
		free(ring[i]);
	free(ring);
}

/* ---------------------------------------------------------- scheduler */

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

int
cmd_scheduler(int argc, char **argv)
{
	static const struct option opts[] = {
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
	struct sched_config sc;
	struct conf         c;
	const char         *file = NULL, *listen[SCHED_MAX_LISTEN];
	size_t              n_listen = 0;
	int                 level = -1, ch, rc, have_conf = 0;
	long                hb_timeout = -1, drain = -1;
	const char         *tls_cert_key = NULL, *tls_ca = NULL;
	const char         *token_file = NULL;
	int                 require_cc = 0;

	sched_config_defaults(&sc);
	while ((ch = getopt_long(argc, argv, "f:l:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			file = optarg;
			break;
		case 'l':
			if (n_listen == SCHED_MAX_LISTEN) {
				fprintf(stderr, "ferry scheduler: at most %d "
				                "--listen addresses\n",
				    SCHED_MAX_LISTEN);
				return 2;
			}
			listen[n_listen++] = optarg;
			break;
		case 'T':
			hb_timeout = cli_parse_long("--heartbeat-timeout-ms",
			    optarg, 100, 86400000);
			break;
		case 'D':
			drain = cli_parse_long("--drain-timeout-ms", optarg, 0,
			    86400000);
			break;
		case 'r':
			sc.ready_file = optarg;
			break;
		case 'K': tls_cert_key = optarg; break;
		case 'A': tls_ca = optarg; break;
		case 'Q': require_cc = 1; break;
		case 'O': token_file = optarg; break;
		case 'L':
			if ((level = log_level_parse(optarg)) < 0) {
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
	if (file != NULL) {
		if (cli_load_conf(file, &c) != 0)
			return 1;
		have_conf = 1;
		for (size_t i = 0; i < c.n_listen; i++)
			sc.listen[i] = c.listen[i];
		sc.n_listen              = c.n_listen;
		sc.heartbeat_interval_ms = c.heartbeat_interval_ms;
		sc.heartbeat_timeout_ms  = c.heartbeat_timeout_ms;
		sc.max_message_size      = c.max_message_size;
		sc.max_queue             = c.max_queue;
		sc.max_results           = c.max_results;
		sc.result_ttl_ms         = c.result_ttl_ms;
		sc.max_result_bytes      = c.max_result_bytes;
		sc.quarantine_after      = c.quarantine_after;
		sc.drain_timeout_ms      = c.drain_timeout_ms;
		sc.function_wait_ms      = c.function_wait_ms;
		sc.unknown_function_wait_ms = c.unknown_function_wait_ms;
		for (size_t i = 0; i < c.n_groups && i < SCHED_MAX_GROUPS; i++)
			sc.groups[sc.n_groups++] = c.groups[i].name;
		sc.task_retries          = c.task_retries;
		sc.task_backoff_ms       = c.task_backoff_ms;
		sc.task_backoff_max_ms   = c.task_backoff_max_ms;
		sc.task_timeout_ms       = c.task_timeout_ms;
		sc.task_retry_errors     = c.task_retry_errors;
		sc.tls_cert_key_file     = c.tls_cert_key_file;
		sc.tls_ca_file           = c.tls_ca_file;
		sc.require_client_cert   = c.tls_require_client_cert;
		sc.token_file            = c.token_file;
		if (level < 0)
			level = c.log_level;
	}
	if (tls_cert_key != NULL)
		sc.tls_cert_key_file = tls_cert_key;
	if (tls_ca != NULL)
		sc.tls_ca_file = tls_ca;
	if (require_cc)
		sc.require_client_cert = 1;
	if (token_file != NULL)
		sc.token_file = token_file;
	if (n_listen > 0) {
		for (size_t i = 0; i < n_listen; i++)
			sc.listen[i] = listen[i];
		sc.n_listen = n_listen;
	} else if (!have_conf) {
		sc.listen[0] = CLI_DEFAULT_ADDRESS;
		sc.n_listen  = 1;
	}
	if (hb_timeout > 0) {
		sc.heartbeat_timeout_ms = (uint32_t)hb_timeout;
		if (sc.heartbeat_interval_ms * 2 > sc.heartbeat_timeout_ms)
			sc.heartbeat_interval_ms = sc.heartbeat_timeout_ms / 3;
	}
	if (drain >= 0)
		sc.drain_timeout_ms = (uint32_t)drain;
	log_init("scheduler", level < 0 ? LOG_INFO : level);
	if (cli_runtime_dir_ready(sc.listen, sc.n_listen) != 0)
		rc = 1;
	else
		rc = sched_run(&sc);
	if (have_conf)
		conf_free(&c);
	return rc;
}

/* ------------------------------------------------------------- worker */

static void
worker_usage(FILE *out)
{
	struct wrk_options d; /* the defaults the help states */

	wrk_options_defaults(&d);
	fprintf(out,
	    "usage: ferry worker [-f FILE [--group NAME]] [--connect URL]\n"
	    "                    [--processes N] [--slots N] [--prefetch N]\n"
	    "                    [--library LIB]... [--memory-limit SIZE]\n"
	    "                    [--max-tasks N] [--log-level LEVEL]\n"
	    "\n"
	    "Start N worker processes for one worker group and keep them "
	    "running:\n"
	    "one that dies is restarted with backoff, and the scheduler "
	    "re-queues\n"
	    "its tasks.  SIGTERM drains (running tasks finish), then stops.\n"
	    "\n"
	    "  -f, --file FILE      cluster file (scheduler address, group "
	    "settings)\n"
	    "  -g, --group NAME     the file's worker group (default: the "
	    "first)\n"
	    "  -c, --connect URL    scheduler address (default: the file's, "
	    "or\n"
	    "                       $FERRY_ADDRESS, or %s)\n"
	    "  -n, --processes N    worker processes (default: one per core)\n"
	    "  -s, --slots N        tasks each process runs at once (default "
	    "%d)\n"
	    "  -p, --prefetch N     queued tasks a process may hold beyond "
	    "its\n"
	    "                       running ones (default %d)\n"
	    "  -L, --library LIB    task library (path or name); may repeat\n"
	    "  -R, --object-root DIR  a directory object references may name "
	    "files\n"
	    "                       in; may repeat (none: objects are "
	    "refused)\n"
	    "      --object-cache SIZE  object cache budget per process "
	    "(default:\n"
	    "                       a quarter of physical memory)\n"
	    "      --memory-limit SIZE  kill a process whose anonymous "
	    "memory\n"
	    "                       (RssAnon) exceeds SIZE, e.g. 2GiB "
	    "(default: none)\n"
	    "      --max-tasks N    replace each process after N tasks "
	    "(default:\n"
	    "                       never)\n"
	    "      --tls-ca FILE    CA (PEM) that signed the scheduler's "
	    "certificate;\n"
	    "                       needed for tls+tcp:// addresses\n"
	    "      --tls-cert-key FILE  own certificate and key (PEM), for "
	    "a\n"
	    "                       scheduler that requires client "
	    "certificates\n"
	    "      --tls-server-name NAME  name the scheduler's certificate "
	    "must\n"
	    "                       carry (default: the address's host)\n"
	    "      --token-file FILE  send the cluster's token from FILE "
	    "(only\n"
	    "                       over TLS, ipc:// or loopback)\n"
	    "      --name NAME      name its processes NAME/GROUP/K in "
	    "status\n"
	    "                       (default: this host's name)\n"
	    "      --library-dir DIR  resolve relative library paths "
	    "against DIR\n"
	    "      --log-level L    error, warn, info (default) or debug\n"
	    "  -h, --help           show this help\n",
	    CLI_DEFAULT_ADDRESS, d.slots, d.prefetch);
}

enum {
	OPT_LOG = 1000,
	OPT_CTMO,
	OPT_DTMO,
	OPT_MAXMSG,
	OPT_PARENT,
	OPT_NAME,
	OPT_LIBDIR,
	OPT_OCACHE,
	OPT_MEMLIMIT,
	OPT_MAXTASKS,
	OPT_SUPTOKEN,
	OPT_SLOTFD,
	OPT_TLS_CA,
	OPT_TLS_CERTKEY,
	OPT_TLS_NAME,
	OPT_TOKEN_FILE,
};

/* Options shared by `worker` and `worker-process`. */
static const struct option worker_opts[] = {
	{ "file", required_argument, NULL, 'f' },
	{ "group", required_argument, NULL, 'g' },
	{ "connect", required_argument, NULL, 'c' },
	{ "processes", required_argument, NULL, 'n' },
	{ "slots", required_argument, NULL, 's' },
	{ "prefetch", required_argument, NULL, 'p' },
	{ "library", required_argument, NULL, 'L' },
	{ "log-level", required_argument, NULL, OPT_LOG },
	{ "connect-timeout-ms", required_argument, NULL, OPT_CTMO },
	{ "drain-timeout-ms", required_argument, NULL, OPT_DTMO },
	{ "max-message-size", required_argument, NULL, OPT_MAXMSG },
	{ "parent-pid", required_argument, NULL, OPT_PARENT },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "library-dir", required_argument, NULL, OPT_LIBDIR },
	{ "object-root", required_argument, NULL, 'R' },
	{ "object-cache", required_argument, NULL, OPT_OCACHE },
	{ "memory-limit", required_argument, NULL, OPT_MEMLIMIT },
	{ "max-tasks", required_argument, NULL, OPT_MAXTASKS },
	{ "supervisor-token", required_argument, NULL, OPT_SUPTOKEN },
	{ "slot-table-fd", required_argument, NULL, OPT_SLOTFD },
	{ "tls-ca", required_argument, NULL, OPT_TLS_CA },
	{ "tls-cert-key", required_argument, NULL, OPT_TLS_CERTKEY },
	{ "tls-server-name", required_argument, NULL, OPT_TLS_NAME },
	{ "token-file", required_argument, NULL, OPT_TOKEN_FILE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int
worker_main(int argc, char **argv, int is_process)
{
	struct wrk_options o;
	struct conf        c;
	const char        *file = NULL, *group = NULL;
	const char        *libs[WRK_MAX_LIBRARIES];
	const char        *roots[WRK_MAX_ROOTS];
	size_t             n_libs = 0, n_roots = 0;
	int                ch, level = -1, have_conf = 0, rc;
	long               processes = -1, slots = -1, prefetch = -1;
	const char        *who = is_process ? "ferry worker-process"
	                                    : "ferry worker";

	wrk_options_defaults(&o);
	while ((ch = getopt_long(argc, argv, "f:g:c:n:s:p:L:R:h", worker_opts,
	            NULL)) != -1) {
		switch (ch) {
		case 'f': file = optarg; break;
		case 'g': group = optarg; break;
		case 'c': o.connect = optarg; break;
		case 'n':
			processes = cli_parse_long("--processes", optarg, 1, 1024);
			break;
		case 's':
			slots = cli_parse_long("--slots", optarg, 1, 1024);
			break;
		case 'p':
			prefetch = cli_parse_long("--prefetch", optarg, 0, 100000);
			break;
		case 'R':
			if (n_roots == WRK_MAX_ROOTS) {
				fprintf(stderr, "%s: at most %d object roots\n",
				    who, WRK_MAX_ROOTS);
				return 2;
			}
			roots[n_roots++] = optarg;
			break;
		case 'L':
			if (n_libs == WRK_MAX_LIBRARIES) {
				fprintf(stderr, "%s: at most %d libraries\n", who,
				    WRK_MAX_LIBRARIES);
				return 2;
			}
			libs[n_libs++] = optarg;
			break;
		case OPT_LOG:
			if ((level = log_level_parse(optarg)) < 0) {
				fprintf(stderr, "%s: unknown log level '%s'\n",
				    who, optarg);
				return 2;
			}
			break;
		case OPT_CTMO:
			o.connect_timeout_ms = (uint32_t)cli_parse_long(
			    "--connect-timeout-ms", optarg, 1, 86400000);
			break;
		case OPT_DTMO:
			o.drain_timeout_ms = (uint32_t)cli_parse_long(
			    "--drain-timeout-ms", optarg, 0, 86400000);
			break;
		case OPT_MAXMSG:
			o.max_message_size = (size_t)cli_parse_long(
			    "--max-message-size", optarg, 65536, LONG_MAX);
			break;
		case OPT_PARENT:
			o.parent_pid = (int)cli_parse_long(
			    "--parent-pid", optarg, 1, INT_MAX);
			break;
		case OPT_NAME: o.name = optarg; break;
		case OPT_LIBDIR: o.library_dir = optarg; break;
		case OPT_OCACHE:
			if (conf_parse_size(optarg, &o.object_cache) != 0 ||
			    o.object_cache < (1u << 20)) {
				fprintf(stderr,
				    "%s: --object-cache: '%s' is not a size of "
				    "at least 1MiB (e.g. 512MiB, 4GiB)\n",
				    who, optarg);
				return 2;
			}
			break;
		case OPT_MEMLIMIT:
			if (conf_parse_size(optarg, &o.memory_limit) != 0 ||
			    o.memory_limit < (1u << 20)) {
				fprintf(stderr,
				    "%s: --memory-limit: '%s' is not a size of "
				    "at least 1MiB (e.g. 512MiB, 4GiB)\n",
				    who, optarg);
				return 2;
			}
			break;
		case OPT_MAXTASKS:
			o.max_tasks = (uint64_t)cli_parse_long(
			    "--max-tasks", optarg, 1, LONG_MAX);
			break;
		case OPT_SUPTOKEN: {
			char *end;
			errno              = 0;
			o.supervisor_token = strtoull(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || end == optarg) {
				fprintf(stderr,
				    "%s: --supervisor-token: '%s' is not a "
				    "number\n",
				    who, optarg);
				return 2;
			}
			break;
		}
		case OPT_SLOTFD:
			o.slot_table_fd = (int)cli_parse_long(
			    "--slot-table-fd", optarg, 0, INT_MAX);
			break;
		case OPT_TLS_CA: o.tls_ca_file = optarg; break;
		case OPT_TLS_CERTKEY: o.tls_cert_key_file = optarg; break;
		case OPT_TLS_NAME: o.tls_server_name = optarg; break;
		case OPT_TOKEN_FILE: o.token_file = optarg; break;
		case 'h':
			worker_usage(stdout);
			return 0;
		default:
			worker_usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", who,
		    argv[optind]);
		return 2;
	}
	if (file != NULL) {
		const struct conf_group *g;
		if (cli_load_conf(file, &c) != 0)
			return 1;
		have_conf = 1;
		g = group != NULL ? conf_group_find(&c, group)
		                  : (c.n_groups > 0 ? &c.groups[0] : NULL);
		if (g == NULL) {
			fprintf(stderr, "%s: %s has no worker group '%s'\n", who,
			    c.path, group ? group : "(any)");
			conf_free(&c);
			return 1;
		}
		if (o.connect == NULL)
			o.connect = c.address;
		o.group = g->name;
		if (processes < 0 && g->processes > 0)
			processes = g->processes;
		if (slots < 0)
			slots = g->slots;
		if (prefetch < 0)
			prefetch = g->prefetch;
		if (n_libs == 0) {
			for (size_t i = 0; i < g->n_libraries; i++)
				libs[n_libs++] = g->libraries[i];
			o.library_dir = c.dir;
		}
		if (n_roots == 0)
			for (size_t i = 0; i < g->n_object_roots; i++)
				roots[n_roots++] = g->object_roots[i];
		if (o.object_cache == 0)
			o.object_cache = g->object_cache;
		if (o.memory_limit == 0)
			o.memory_limit = g->memory_limit;
		if (o.max_tasks == 0)
			o.max_tasks = g->max_tasks_per_process;
		if (o.tls_ca_file == NULL)
			o.tls_ca_file = c.tls_ca_file;
		if (o.tls_cert_key_file == NULL)
			o.tls_cert_key_file = c.tls_client_cert_key_file;
		if (o.tls_server_name == NULL)
			o.tls_server_name = c.tls_server_name;
		if (o.token_file == NULL)
			o.token_file = c.token_file;
		o.connect_timeout_ms = c.connect_timeout_ms;
		o.drain_timeout_ms   = c.drain_timeout_ms;
		o.max_message_size   = c.max_message_size;
		if (level < 0)
			level = c.log_level;
	} else if (group != NULL) {
		o.group = group;
	}
	if (o.connect == NULL) {
		const char *env = getenv("FERRY_ADDRESS");
		o.connect = (env != NULL && env[0] != '\0') ? env
		                                            : CLI_DEFAULT_ADDRESS;
	}
	if (slots > 0)
		o.slots = (int)slots;
	if (prefetch >= 0)
		o.prefetch = (int)prefetch;
	for (size_t i = 0; i < n_libs; i++)
		o.libraries[i] = libs[i];
	o.n_libraries = n_libs;
	for (size_t i = 0; i < n_roots; i++)
		o.object_roots[i] = roots[i];
	o.n_object_roots = n_roots;
	log_init(is_process ? "worker" : "supervisor",
	    level < 0 ? LOG_INFO : level);

	if (is_process) {
		rc = wrk_process_run(&o);
	} else {
		char err[1024], path[4096];
		/* find every library now: a typo is reported once, here,
		 * not by N restarting processes */
		for (size_t i = 0; i < o.n_libraries; i++) {
			if (wrk_library_resolve(o.libraries[i], o.library_dir,
			        path, sizeof(path), err, sizeof(err)) != 0) {
				fprintf(stderr, "ferry worker: %s\n", err);
				if (have_conf)
					conf_free(&c);
				return 1;
			}
		}
		rc = wrk_supervise(&o, processes > 0 ? (int)processes
		                                     : cli_ncpu(),
		    self_exe);
	}
	if (have_conf)
		conf_free(&c);
	return rc;
}

int
cmd_worker(int argc, char **argv)
{
	return worker_main(argc, argv, 0);
}

int
cmd_worker_process(int argc, char **argv)
{
	return worker_main(argc, argv, 1);
}

/* ------------------------------------------------- client connections */

/* Security flags of `submit` and `status` (docs/security.md). */
struct cli_sec {
	const char *tls_ca, *tls_cert_key, *tls_server_name, *token_file;
};

#define CLI_SEC_OPTIONS                                                  \
	{ "tls-ca", required_argument, NULL, OPT_TLS_CA },                   \
	    { "tls-cert-key", required_argument, NULL, OPT_TLS_CERTKEY },    \
	    { "tls-server-name", required_argument, NULL, OPT_TLS_NAME },    \
	    { "token-file", required_argument, NULL, OPT_TOKEN_FILE }

#define CLI_SEC_HELP                                                     \
	"      --tls-ca FILE    CA (PEM) that signed the scheduler's "        \
	"certificate\n"                                                      \
	"                       (needed for tls+tcp:// addresses)\n"         \
	"      --tls-cert-key FILE  own certificate and key (PEM), for "      \
	"mutual TLS\n"                                                       \
	"      --tls-server-name NAME  name the scheduler's certificate "     \
	"must carry\n"                                                       \
	"      --token-file FILE  the cluster's token (with -f: the file's "  \
	"security\n"                                                         \
	"                       section gives these four)\n"

int
cli_connect_conf(const struct conf *c, const char *url, int timeout_ms,
    ferry_client **out, char *err, size_t errlen)
{
	struct ferry_client_opts o;

	memset(&o, 0, sizeof(o));
	o.size               = sizeof(o);
	o.connect_timeout_ms = timeout_ms;
	if (err != NULL && errlen > 0) {
		err[0]       = '\0';
		o.errbuf     = err;
		o.errbuf_len = errlen;
	}
	if (c != NULL) {
		o.tls_ca_file       = c->tls_ca_file;
		o.tls_cert_key_file = c->tls_client_cert_key_file;
		o.tls_server_name   = c->tls_server_name;
		o.token_file        = c->token_file;
	}
	return ferry_client_connect_opts(out, url, &o);
}

/* Take one security flag into sec; 0 if ch is not one. */
static int
cli_sec_flag(struct cli_sec *sec, int ch, const char *val)
{
	switch (ch) {
	case OPT_TLS_CA: sec->tls_ca = val; return 1;
	case OPT_TLS_CERTKEY: sec->tls_cert_key = val; return 1;
	case OPT_TLS_NAME: sec->tls_server_name = val; return 1;
	case OPT_TOKEN_FILE: sec->token_file = val; return 1;
	default: return 0;
	}
}

/*
 * Connect a client for command who: the address from url, else the
 * cluster file, else $FERRY_ADDRESS, else the default; TLS and token
 * settings from the flags, else the cluster file's security section.
 * Writes the address into addr.  Returns 0, or an exit status after
 * printing why: CLI_EXIT_NO_SCHEDULER when nothing answers at the address
 * (nothing listening there is known within CLI_NO_SCHEDULER_MS),
 * CLI_EXIT_REFUSED when the scheduler refused us or the connection could
 * not be set up (token, TLS files).
 */
static int
cli_client_connect(const char *who, const char *file, const char *url,
    const struct cli_sec *sec, int timeout_ms, char *addr, size_t addrlen,
    ferry_client **out)
{
	struct ferry_client_opts o;
	struct conf              c;
	char                     err[1024];
	int                      rv, have_conf = 0;

	memset(&o, 0, sizeof(o));
	o.size               = sizeof(o);
	o.connect_timeout_ms = timeout_ms;
	o.tls_ca_file        = sec->tls_ca;
	o.tls_cert_key_file  = sec->tls_cert_key;
	o.tls_server_name    = sec->tls_server_name;
	o.token_file         = sec->token_file;
	o.errbuf             = err;
	o.errbuf_len         = sizeof(err);
	o.no_scheduler_ms    = CLI_NO_SCHEDULER_MS;
	err[0]               = '\0';
	if (file != NULL) {
		if (cli_load_conf(file, &c) != 0)
			return 2;
		have_conf = 1;
		if (o.tls_ca_file == NULL)
			o.tls_ca_file = c.tls_ca_file;
		if (o.tls_cert_key_file == NULL)
			o.tls_cert_key_file = c.tls_client_cert_key_file;
		if (o.tls_server_name == NULL)
			o.tls_server_name = c.tls_server_name;
		if (o.token_file == NULL)
			o.token_file = c.token_file;
		util_strlcpy(addr, url != NULL ? url : c.address, addrlen);
	} else if (cli_address(NULL, url, addr, addrlen) != 0) {
		return 2;
	}
	rv = ferry_client_connect_opts(out, addr, &o);
	if (have_conf)
		conf_free(&c);
	if (rv == FERRY_ECONNECT) {
		/* err: "no scheduler at ADDRESS: connection refused", or
		 * no answer within the timeout */
		if (err[0] != '\0')
			fprintf(stderr, "%s: %s\n", who, err);
		else
			fprintf(stderr, "%s: no scheduler at %s\n", who, addr);
		return CLI_EXIT_NO_SCHEDULER;
	}
	if (rv != 0) {
		fprintf(stderr, "%s: cannot connect to %s: %s%s%s\n", who, addr,
		    ferry_strerror(rv), err[0] != '\0' ? ": " : "", err);
		return CLI_EXIT_REFUSED;
	}
	return 0;
}

/* ------------------------------------------------------------- submit */

static void
submit_usage(FILE *out)
{
	fprintf(out,
	    "usage: ferry submit [-f FILE | -c URL] [--wait DURATION] "
	    "[--args JSON]\n"
	    "                    [--retries N] [--timeout DURATION] "
	    "[--backoff DURATION]\n"
	    "                    [--backoff-max DURATION] [--retry-errors] "
	    "FN [ARG...]\n"
	    "\n"
	    "Run task function FN once and print its result as JSON.  The\n"
	    "arguments are sent as a msgpack array of the ARGs, each parsed "
	    "as\n"
	    "JSON when it is valid JSON and taken as a string otherwise.  "
	    "An ARG\n"
	    "that starts like JSON ([, {, \", a digit, or - and a digit) "
	    "must be\n"
	    "valid JSON: one that is not is an error with the byte offset "
	    "(quote\n"
	    "text that starts so as a JSON string: '\"2024-01-01\"'):\n"
	    "\n"
	    "    ferry submit add 2 3          # args [2, 3]  -> 5\n"
	    "    ferry submit echo hello       # args [\"hello\"]\n"
	    "    ferry submit --args '{\"n\": 4}' fn   # args exactly {\"n\": "
	    "4}\n"
	    "    ferry submit wordcount @/data/big.txt 0 4096\n"
	    "                    # @PATH (or @LOADER:PATH) is an object "
	    "reference:\n"
	    "                    # the worker loads the file itself; \"@@x\" "
	    "is \"@x\"\n"
	    "\n"
	    "  -f, --file FILE      take the scheduler address from a cluster "
	    "file\n"
	    "  -c, --connect URL    scheduler address (default "
	    "$FERRY_ADDRESS or\n"
	    "                       %s)\n"
	    "  -w, --wait DURATION  give up waiting for the result after "
	    "DURATION\n"
	    "                       (250ms, 30s, 5m; default 60s; the task "
	    "goes on)\n"
	    "  -a, --args JSON      send this JSON value as the arguments\n"
	    "\n"
	    "Failure handling (default: the scheduler's task_defaults):\n"
	    "      --retries N      run it again up to N times (0 ... 1000) "
	    "after a\n"
	    "                       crash or timeout\n"
	    "      --retry-errors   also retry errors the task function "
	    "reports\n"
	    "      --timeout DURATION\n"
	    "                       kill a run that takes longer (0: no "
	    "timeout)\n"
	    "      --backoff DURATION\n"
	    "                       wait this long before the first retry; "
	    "doubles\n"
	    "                       per retry\n"
	    "      --backoff-max DURATION\n"
	    "                       cap of that wait\n"
	    CLI_SEC_HELP
	    "  -h, --help           show this help\n"
	    "\n"
	    "A task that failed or was quarantined (it killed worker "
	    "processes) prints\n"
	    "its error and how many times it ran to stderr; a task that "
	    "succeeded\n"
	    "after retries says so on stderr.\n"
	    "\n"
	    "Exit status: 0 on success, 1 if the task failed or no result "
	    "came in\n"
	    "time (its error is printed), 2 on bad usage, %d if no "
	    "scheduler\n"
	    "answers at the address (\"no scheduler at ADDRESS: connection "
	    "refused\",\n"
	    "said within a second when nothing listens there), %d if the "
	    "scheduler\n"
	    "refused the connection or it could not be set up (token, "
	    "TLS).\n",
	    CLI_DEFAULT_ADDRESS, CLI_EXIT_NO_SCHEDULER, CLI_EXIT_REFUSED);
}

/* Pack "@[LOADER:]PATH" (without the @) as an object reference. */
static int
pack_object_arg(msgpack_packer *pk, const char *spec)
{
	char        loader[64] = "", path[4096];
	const char *colon      = strchr(spec, ':');
	uint8_t     ref[4300];
	size_t      n;

	if (colon != NULL && spec[0] != '/' && colon - spec < 64) {
		memcpy(loader, spec, (size_t)(colon - spec));
		loader[colon - spec] = '\0';
		spec                 = colon + 1;
	}
	if (spec[0] != '/' && realpath(".", path) != NULL) {
		/* relative to where the command runs: make it absolute, the
		 * worker's directory is not ours */
		size_t l = strlen(path);
		snprintf(path + l, sizeof(path) - l, "/%s", spec);
	} else {
		util_strlcpy(path, spec, sizeof(path));
	}
	if (ferry_object_ref(ref, sizeof(ref), &n, path,
	        loader[0] ? loader : NULL, 0, NULL) != 0) {
		fprintf(stderr, "ferry submit: bad object reference '@%s'\n",
		    spec);
		return -1;
	}
	msgpack_pack_ext(pk, n, FERRY_EXT_OBJECT);
	msgpack_pack_ext_body(pk, ref, n);
	return 0;
}

/* Parse a --OPT DURATION ("500ms", "2s", a bare number of ms). */
static int
submit_duration(const char *opt, const char *val, uint32_t *ms)
{
	if (conf_parse_duration(val, ms) != 0) {
		fprintf(stderr, "ferry submit: %s: '%s' is not a duration "
		                "(500ms, 2s, 5m, 1h or milliseconds)\n",
		    opt, val);
		return -1;
	}
	return 0;
}

/* The same, into an int option of struct ferry_task_opts. */
static int
submit_duration_int(const char *opt, const char *val, int *out)
{
	uint32_t ms;
	if (submit_duration(opt, val, &ms) != 0)
		return -1;
	if (ms > INT32_MAX) {
		fprintf(stderr, "ferry submit: %s: '%s' is too long\n", opt,
		    val);
		return -1;
	}
	*out = (int)ms;
	return 0;
}

/* Whether a submit ARG starts like a JSON array, object, string or
 * number ('[', '{', '"', a digit, '-' and a digit, after JSON's
 * whitespace), so that one that does not parse is a mistake to report,
 * not a word to send as a string. */
static int
submit_looks_json(const char *arg)
{
	arg += strspn(arg, " \t\r\n");
	return arg[0] == '[' || arg[0] == '{' || arg[0] == '"' ||
	    (arg[0] >= '0' && arg[0] <= '9') ||
	    (arg[0] == '-' && arg[1] >= '0' && arg[1] <= '9');
}

int
cmd_submit(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "connect", required_argument, NULL, 'c' },
		{ "wait", required_argument, NULL, 'w' },
		{ "args", required_argument, NULL, 'a' },
		{ "retries", required_argument, NULL, 'R' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "backoff", required_argument, NULL, 'B' },
		{ "backoff-max", required_argument, NULL, 'M' },
		{ "retry-errors", no_argument, NULL, 'E' },
		CLI_SEC_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_sec  sec  = { 0 };
	const char     *file = NULL, *url = NULL, *args_json = NULL, *fn;
	char            addr[1024], err[512];
	uint32_t        wait_ms = 60000;
	int             ch, rv, rc = 0;
	struct ferry_task_opts topts;
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	ferry_client   *c;
	ferry_future   *f;

	ferry_task_opts_init(&topts);
	while ((ch = getopt_long(argc, argv, "+f:c:w:a:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'f': file = optarg; break;
		case 'c': url = optarg; break;
		case 'w':
			if (submit_duration("--wait", optarg, &wait_ms) != 0)
				return 2;
			if (wait_ms == 0 || wait_ms > INT32_MAX) {
				fprintf(stderr, "ferry submit: --wait: must be "
				                "between 1ms and 24 days\n");
				return 2;
			}
			break;
		case 'a': args_json = optarg; break;
		case 'R':
			topts.retries = (int)cli_parse_long("--retries", optarg,
			    0, 1000);
			break;
		case 'T':
			if (submit_duration_int("--timeout", optarg,
			        &topts.timeout_ms) != 0)
				return 2;
			break;
		case 'B':
			if (submit_duration_int("--backoff", optarg,
			        &topts.backoff_ms) != 0)
				return 2;
			break;
		case 'M':
			if (submit_duration_int("--backoff-max", optarg,
			        &topts.backoff_max_ms) != 0)
				return 2;
			break;
		case 'E': topts.retry_errors = 1; break;
		case 'h':
			submit_usage(stdout);
			return 0;
		default:
			if (cli_sec_flag(&sec, ch, optarg))
				break;
			submit_usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "ferry submit: missing the function name\n");
		submit_usage(stderr);
		return 2;
	}
	fn = argv[optind++];
	if (args_json != NULL && optind < argc) {
		fprintf(stderr, "ferry submit: give either --args or ARGs, "
		                "not both\n");
		return 2;
	}
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (args_json != NULL) {
		if (json_to_msgpack(args_json, strlen(args_json), &pk, err,
		        sizeof(err)) != 0) {
			fprintf(stderr, "ferry submit: --args: %s\n", err);
			msgpack_sbuffer_destroy(&sb);
			return 2;
		}
	} else {
		msgpack_pack_array(&pk, (size_t)(argc - optind));
		for (int i = optind; i < argc; i++) {
			size_t before = sb.size;
			if (argv[i][0] == '@' && argv[i][1] != '@') {
				if (pack_object_arg(&pk, argv[i] + 1) != 0) {
					msgpack_sbuffer_destroy(&sb);
					return 2;
				}
				continue;
			}
			if (argv[i][0] == '@') { /* "@@x" is the string "@x" */
				msgpack_pack_str(&pk, strlen(argv[i]) - 1);
				msgpack_pack_str_body(
				    &pk, argv[i] + 1, strlen(argv[i]) - 1);
				continue;
			}
			if (json_to_msgpack(argv[i], strlen(argv[i]), &pk, err,
			        sizeof(err)) == 0)
				continue;
			sb.size = before;
			if (submit_looks_json(argv[i])) {
				/* meant as JSON, mistyped: say where */
				fprintf(stderr,
				    "ferry submit: argument %d '%.80s%s' starts "
				    "like JSON but is not valid JSON: %s\n"
				    "(to send it as a string, quote it as one: "
				    "'\"...\"')\n",
				    i - optind + 1, argv[i],
				    strlen(argv[i]) > 80 ? "..." : "", err);
				msgpack_sbuffer_destroy(&sb);
				return 2;
			}
			/* a plain word: a string */
			msgpack_pack_str(&pk, strlen(argv[i]));
			msgpack_pack_str_body(&pk, argv[i], strlen(argv[i]));
		}
	}
	if ((rv = cli_client_connect("ferry submit", file, url, &sec, 10000,
	         addr, sizeof(addr), &c)) != 0) {
		msgpack_sbuffer_destroy(&sb);
		return rv;
	}
	rv = ferry_submit_opts(c, fn, sb.data, sb.size, &topts, &f);
	msgpack_sbuffer_destroy(&sb);
	if (rv != 0) {
		fprintf(stderr, "ferry submit: %s\n", ferry_strerror(rv));
		ferry_client_close(c);
		return 2;
	}
	if (ferry_future_wait(f, (int)wait_ms) != 0) {
		fprintf(stderr,
		    "ferry submit: no result within %" PRIu32 " ms (task %"
		    PRIu64 " of session %016" PRIx64 " is still pending)\n",
		    wait_ms, ferry_future_id(f), ferry_client_session(c));
		rc = 1;
	} else {
		const void *data;
		size_t      len;
		uint32_t    attempts = ferry_future_attempts(f);
		rv = ferry_future_result(f, &data, &len);
		if (rv == 0 && attempts > 1)
			fprintf(stderr, "ferry submit: %s succeeded on attempt "
			                "%" PRIu32 "\n",
			    fn, attempts);
		if (rv == 0) {
			char *js = json_from_msgpack_bytes(data, len, err,
			    sizeof(err));
			if (js != NULL) {
				printf("%s\n", js);
				free(js);
			} else {
				fprintf(stderr, "ferry submit: result is not "
				                "valid msgpack: %s\n",
				    err);
				rc = 1;
			}
		} else {
			const char *msg = ferry_future_error(f);
			char        runs[64] = "";
			if (attempts > 0)
				snprintf(runs, sizeof(runs), " (ran %" PRIu32
				    " time%s)", attempts, attempts == 1 ? "" : "s");
			fprintf(stderr, "ferry submit: %s %s: %s%s%s%s\n", fn,
			    ferry_future_state(f) == FERRY_DEAD
			        ? "is dead (quarantined)"
			        : "failed",
			    ferry_strerror(rv), msg ? ": " : "",
			    msg ? msg : "", runs);
			rc = 1;
		}
	}
	ferry_future_free(f);
	ferry_client_close(c);
	return rc;
}

/* ------------------------------------------------------------- status */

static void
status_usage(FILE *out)
{
	fprintf(out,
	    "usage: ferry status [-f FILE | -c URL] [--json]\n"
	    "\n"
	    "Show the scheduler's workers (slots busy and free), queue depth "
	    "and\n"
	    "task counters.\n"
	    "\n"
	    "  -f, --file FILE      take the scheduler address from a cluster "
	    "file\n"
	    "  -c, --connect URL    scheduler address (default "
	    "$FERRY_ADDRESS or\n"
	    "                       %s)\n"
	    "  -j, --json           print the full status as one JSON "
	    "object\n"
	    CLI_SEC_HELP
	    "  -h, --help           show this help\n"
	    "\n"
	    "Exit status: 0 when the scheduler answered, 1 if the status "
	    "request\n"
	    "failed, 2 on bad usage, %d if no scheduler answers at the "
	    "address\n"
	    "(\"no scheduler at ADDRESS: connection refused\", said within a "
	    "second\n"
	    "when nothing listens there), %d if the scheduler refused the "
	    "connection\n"
	    "or it could not be set up (token, TLS).\n",
	    CLI_DEFAULT_ADDRESS, CLI_EXIT_NO_SCHEDULER, CLI_EXIT_REFUSED);
}

const msgpack_object *
cli_obj_get(const msgpack_object *map, const char *key)
{
	size_t klen = strlen(key);
	if (map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_STR &&
		    kv->key.via.str.size == klen &&
		    memcmp(kv->key.via.str.ptr, key, klen) == 0)
			return &kv->val;
	}
	return NULL;
}

static uint64_t
obj_uint(const msgpack_object *map, const char *key)
{
	const msgpack_object *o = cli_obj_get(map, key);
	return (o != NULL && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
	    ? o->via.u64
	    : 0;
}

static const char *
obj_str(const msgpack_object *map, const char *key, char *buf, size_t len)
{
	const msgpack_object *o = cli_obj_get(map, key);
	if (o == NULL || o->type != MSGPACK_OBJECT_STR) {
		util_strlcpy(buf, "-", len);
		return buf;
	}
	snprintf(buf, len, "%.*s", (int)o->via.str.size, o->via.str.ptr);
	return buf;
}

/* Print the human status from its JSON (re-encoded to msgpack). */
static void
print_status(const char *addr, const char *json)
{
	msgpack_sbuffer       sb;
	msgpack_packer        pk;
	msgpack_zone          zone;
	msgpack_object        o;
	const msgpack_object *wl;
	size_t                off = 0;
	char                  err[256];
	uint64_t              slots, busy;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_zone_init(&zone, 4096);
	if (json_to_msgpack(json, strlen(json), &pk, err, sizeof(err)) != 0 ||
	    msgpack_unpack(sb.data, sb.size, &off, &zone, &o) !=
	        MSGPACK_UNPACK_SUCCESS) {
		printf("%s\n", json);
		goto out;
	}
	slots = obj_uint(&o, "slots");
	busy  = 0;
	wl    = cli_obj_get(&o, "worker_list");
	if (wl != NULL && wl->type == MSGPACK_OBJECT_ARRAY)
		for (uint32_t i = 0; i < wl->via.array.size; i++) {
			uint64_t held = obj_uint(&wl->via.array.ptr[i], "held");
			uint64_t s    = obj_uint(&wl->via.array.ptr[i], "slots");
			busy += held < s ? held : s;
		}
	printf("scheduler  %s  up %.1f s  version %s\n", addr,
	    (double)obj_uint(&o, "uptime_ms") / 1000.0,
	    obj_str(&o, "version", err, sizeof(err)));
	printf("workers    %" PRIu64 " process(es), %" PRIu64
	       " slot(s): %" PRIu64 " busy, %" PRIu64 " free\n",
	    obj_uint(&o, "workers"), slots, busy, slots - busy);
	printf("queue      %" PRIu64 " queued, %" PRIu64
	       " held by workers, %" PRIu64 " result(s) awaiting clients\n",
	    obj_uint(&o, "queued"), obj_uint(&o, "busy"),
	    obj_uint(&o, "results_stored"));
	printf("tasks      %" PRIu64 " submitted, %" PRIu64 " done, %" PRIu64
	       " failed, %" PRIu64 " cancelled, %" PRIu64 " re-queued, %" PRIu64
	       " rejected\n",
	    obj_uint(&o, "submitted"), obj_uint(&o, "done"),
	    obj_uint(&o, "failed"), obj_uint(&o, "cancelled"),
	    obj_uint(&o, "requeued"), obj_uint(&o, "rejected"));
	printf("failures   %" PRIu64 " retried, %" PRIu64 " dead (quarantined), "
	       "%" PRIu64 " waiting to retry, %" PRIu64 " process(es) killed "
	       "by tasks (%" PRIu64 " timed out, %" PRIu64 " over memory)\n",
	    obj_uint(&o, "retried"), obj_uint(&o, "dead"),
	    obj_uint(&o, "delayed"), obj_uint(&o, "kills"),
	    obj_uint(&o, "timeouts"), obj_uint(&o, "memory_kills"));
	printf("clients    %" PRIu64 " connected, %" PRIu64
	       " supervisor(s), %" PRIu64 " late result(s) dropped\n",
	    obj_uint(&o, "clients"), obj_uint(&o, "supervisors"),
	    obj_uint(&o, "late_results"));
	printf("security   %" PRIu64 " authentication failure(s), %" PRIu64
	       " bad message(s)\n",
	    obj_uint(&o, "auth_failures"), obj_uint(&o, "bad_messages"));
	if (obj_uint(&o, "waiting_function") > 0) {
		const msgpack_object *uf = cli_obj_get(&o, "unserved_functions");
		printf("waiting    %" PRIu64 " queued task(s) for a function no "
		       "connected worker runs:",
		    obj_uint(&o, "waiting_function"));
		for (uint32_t i = 0; uf != NULL &&
		     uf->type == MSGPACK_OBJECT_ARRAY && i < uf->via.array.size;
		     i++) {
			const msgpack_object *e = &uf->via.array.ptr[i];
			char                  fn[300];
			printf("%s %s (%" PRIu64 ", %.1f s%s)", i ? "," : "",
			    obj_str(e, "fn", fn, sizeof(fn)),
			    obj_uint(e, "queued"),
			    (double)obj_uint(e, "waiting_ms") / 1000.0,
			    obj_uint(e, "known") ? "" : ", never registered");
		}
		printf("\n");
	}
	{
		const msgpack_object *rf = cli_obj_get(&o, "recent_failures");
		if (rf != NULL && rf->type == MSGPACK_OBJECT_ARRAY &&
		    rf->via.array.size > 0) {
			printf("\nRECENT FAILURES (newest first)\n");
			for (uint32_t i = 0; i < rf->via.array.size; i++) {
				const msgpack_object *e = &rf->via.array.ptr[i];
				char fn[80], st[16], why[300];
				printf("  task %" PRIu64 " %s: %s after %" PRIu64
				       " run(s): %s\n",
				    obj_uint(e, "id"),
				    obj_str(e, "fn", fn, sizeof(fn)),
				    obj_str(e, "state", st, sizeof(st)),
				    obj_uint(e, "attempts"),
				    obj_str(e, "reason", why, sizeof(why)));
			}
		}
	}
	if (wl != NULL && wl->type == MSGPACK_OBJECT_ARRAY &&
	    wl->via.array.size > 0) {
		printf("\n%-24s %7s %-8s %5s %4s %5s %9s %6s %8s %5s %8s "
		       "%6s %6s %5s\n",
		    "WORKER", "PID", "GROUP", "SLOTS", "BUSY", "HELD", "DONE",
		    "FAILED", "LASTSEEN", "OBJS", "CACHE_MB", "LOADS", "HITS",
		    "EVICT");
		for (uint32_t i = 0; i < wl->via.array.size; i++) {
			const msgpack_object *w = &wl->via.array.ptr[i];
			char name[128], group[64];
			uint64_t held = obj_uint(w, "held");
			uint64_t s    = obj_uint(w, "slots");
			const msgpack_object *cache = cli_obj_get(w, "cache");
			printf("%-24s %7" PRIu64 " %-8s %5" PRIu64 " %4" PRIu64
			       " %5" PRIu64 " %9" PRIu64 " %6" PRIu64
			       " %6" PRIu64 "ms %5" PRIu64 " %8.1f %6" PRIu64
			       " %6" PRIu64 " %5" PRIu64 "\n",
			    obj_str(w, "name", name, sizeof(name)),
			    obj_uint(w, "pid"),
			    obj_str(w, "group", group, sizeof(group)), s,
			    held < s ? held : s, held, obj_uint(w, "done"),
			    obj_uint(w, "failed"), obj_uint(w, "last_seen_ms"),
			    cache ? obj_uint(cache, "objects") : 0,
			    cache ? (double)obj_uint(cache, "bytes") / 1048576.0
			          : 0.0,
			    cache ? obj_uint(cache, "loads") : 0,
			    cache ? obj_uint(cache, "hits") : 0,
			    cache ? obj_uint(cache, "evictions") : 0);
		}
	}
out:
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_destroy(&sb);
}

int
cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "connect", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		CLI_SEC_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_sec      sec  = { 0 };
	const char         *file = NULL, *url = NULL;
	char                addr[1024], *json = NULL;
	int                 ch, rv, as_json = 0;
	ferry_client       *c;
	struct ferry_status st;

	while ((ch = getopt_long(argc, argv, "f:c:jh", opts, NULL)) != -1) {
		switch (ch) {
		case 'f': file = optarg; break;
		case 'c': url = optarg; break;
		case 'j': as_json = 1; break;
		case 'h':
			status_usage(stdout);
			return 0;
		default:
			if (cli_sec_flag(&sec, ch, optarg))
				break;
			status_usage(stderr);
			return 2;
		}
	}
	if ((rv = cli_client_connect("ferry status", file, url, &sec, 5000,
	         addr, sizeof(addr), &c)) != 0)
		return rv;
	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	if ((rv = ferry_cluster_status(c, &st, &json, 5000)) != 0) {
		fprintf(stderr, "ferry status: %s\n", ferry_strerror(rv));
		ferry_client_close(c);
		return 1;
	}
	if (as_json)
		printf("%s\n", json);
	else
		print_status(addr, json);
	free(json);
	ferry_client_close(c);
	return 0;
}

/* --------------------------------------------------------------- main */

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
