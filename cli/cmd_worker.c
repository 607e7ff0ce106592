/*
 * cmd_worker.c - `ferry worker` (a supervisor of N worker processes) and
 * `ferry worker-process` (one of them, started by the supervisor), with
 * the settings of a cluster file's worker group (struct conf_group's
 * wrk) and the flags over them.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "worker.h"

static void
worker_usage(FILE *out)
{
	struct wrk_options d; /* the defaults the help states */

	wrk_options_defaults(&d);
	fprintf(out,
	    "usage: ferry worker [-f FILE [--group NAME]] [--connect URL]\n"
	    "                    [--processes N] [--slots N] [--prefetch N]\n"
	    "                    [--library LIB]... [--python-module M]...\n"
	    "                    [--python-path DIR]... [--memory-limit SIZE]\n"
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
	    "      --python-module M  import Python module M in each process "
	    "and\n"
	    "                       run the functions it marks @ferry.task; "
	    "may\n"
	    "                       repeat (loads the library ferry_python)\n"
	    "      --python-path DIR  put DIR first on sys.path for those "
	    "imports;\n"
	    "                       may repeat\n"
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
	OPT_PYMOD,
	OPT_PYPATH,
};

/* Options shared by `worker` and `worker-process`. */
static const struct option worker_opts[] = {
	{ "group", required_argument, NULL, 'g' },
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
	{ "python-module", required_argument, NULL, OPT_PYMOD },
	{ "python-path", required_argument, NULL, OPT_PYPATH },
	CLI_CLIENT_OPTIONS,
};

#define WORKER_SHORT "f:g:c:n:s:p:L:R:h"

/* What the flags change besides struct wrk_options. */
struct worker_flags {
	const char *who; /* "ferry worker" or "ferry worker-process" */
	long        processes;
	int         level;
	int         libs, roots, libdir, pymods, pypath; /* given on the
	                                              * command line */
};

/* Add val to a list of at most max (libraries, object roots); the first
 * flag replaces the cluster file's list.  0, or -1 after saying why. */
static int
worker_list_add(const struct worker_flags *f, int *given, const char **list,
    size_t *n, size_t max, const char *what, const char *val)
{
	if (!(*given)++)
		*n = 0;
	if (*n == max) {
		fprintf(stderr, "%s: at most %zu %s\n", f->who, max, what);
		return -1;
	}
	list[(*n)++] = val;
	return 0;
}

/* Whether name is a dotted Python module name (a typo is reported
 * here, not by N processes that fail to import it); says why not. */
static int
python_module_valid(const struct worker_flags *f, const char *name)
{
	int start = 1;

	for (const char *p = name; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '.' && !start) {
			start = 1;
			continue;
		}
		if (!(c == '_' || (c >= 'a' && c <= 'z') ||
		        (c >= 'A' && c <= 'Z') || c >= 0x80 ||
		        (!start && c >= '0' && c <= '9')))
			goto bad;
		start = 0;
	}
	if (!start)
		return 1;
bad:
	fprintf(stderr,
	    "%s: --python-module '%s' is not a module name (dotted "
	    "identifiers, e.g. mytasks or pkg.tasks)\n",
	    f->who, name);
	return 0;
}

/* Apply one flag (ch, optarg) over o; 0, 1 after --help, or -1 after
 * saying what is wrong. */
static int
worker_flag(struct wrk_options *o, struct worker_flags *f, int ch)
{
	char *end;

	switch (ch) {
	case 'f': case 'g': return 0; /* read before */
	case 'c': o->connect = optarg; return 0;
	case 'n':
		f->processes = cli_parse_long("--processes", optarg, 1, 1024);
		return 0;
	case 's':
		o->slots = (int)cli_parse_long("--slots", optarg, 1, 1024);
		return 0;
	case 'p':
		o->prefetch = (int)cli_parse_long("--prefetch", optarg, 0,
		    100000);
		return 0;
	case 'R':
		return worker_list_add(f, &f->roots, o->object_roots,
		    &o->n_object_roots, WRK_MAX_ROOTS, "object roots", optarg);
	case 'L':
		/* the file's libraries resolve against its directory, these
		 * against --library-dir or the current one */
		if (!f->libs && !f->libdir)
			o->library_dir = NULL;
		return worker_list_add(f, &f->libs, o->libraries,
		    &o->n_libraries, WRK_MAX_LIBRARIES, "libraries", optarg);
	case OPT_PYMOD:
		if (!python_module_valid(f, optarg))
			return -1;
		return worker_list_add(f, &f->pymods, o->python_modules,
		    &o->n_python_modules, WRK_MAX_PYTHON, "python modules",
		    optarg);
	case OPT_PYPATH:
		return worker_list_add(f, &f->pypath, o->python_path,
		    &o->n_python_path, WRK_MAX_PYTHON, "python path directories",
		    optarg);
	case OPT_LOG:
		if ((f->level = log_level_parse(optarg)) >= 0)
			return 0;
		fprintf(stderr, "%s: unknown log level '%s'\n", f->who, optarg);
		return -1;
	case OPT_CTMO:
		o->connect_timeout_ms = (uint32_t)cli_parse_long(
		    "--connect-timeout-ms", optarg, 1, 86400000);
		return 0;
	case OPT_DTMO:
		o->drain_timeout_ms = (uint32_t)cli_parse_long(
		    "--drain-timeout-ms", optarg, 0, 86400000);
		return 0;
	case OPT_MAXMSG:
		o->max_message_size = (size_t)cli_parse_long(
		    "--max-message-size", optarg, 65536, LONG_MAX);
		return 0;
	case OPT_PARENT:
		o->parent_pid = (int)cli_parse_long("--parent-pid", optarg, 1,
		    INT_MAX);
		return 0;
	case OPT_NAME: o->name = optarg; return 0;
	case OPT_LIBDIR:
		o->library_dir = optarg;
		f->libdir      = 1;
		return 0;
	case OPT_OCACHE:
		o->object_cache = cli_parse_size("--object-cache", optarg,
		    (size_t)1 << 20);
		return 0;
	case OPT_MEMLIMIT:
		o->memory_limit = cli_parse_size("--memory-limit", optarg,
		    (size_t)1 << 20);
		return 0;
	case OPT_MAXTASKS:
		o->max_tasks = (uint64_t)cli_parse_long("--max-tasks", optarg,
		    1, LONG_MAX);
		return 0;
	case OPT_SUPTOKEN:
		errno               = 0;
		o->supervisor_token = strtoull(optarg, &end, 10);
		if (errno == 0 && *end == '\0' && end != optarg)
			return 0;
		fprintf(stderr, "%s: --supervisor-token: '%s' is not a "
		                "number\n",
		    f->who, optarg);
		return -1;
	case OPT_SLOTFD:
		o->slot_table_fd = (int)cli_parse_long("--slot-table-fd",
		    optarg, 0, INT_MAX);
		return 0;
	case 'h':
		worker_usage(stdout);
		return 1;
	case CLI_OPT_TLS_CA: o->tls_ca_file = optarg; return 0;
	case CLI_OPT_TLS_CERTKEY: o->tls_cert_key_file = optarg; return 0;
	case CLI_OPT_TLS_NAME: o->tls_server_name = optarg; return 0;
	case CLI_OPT_TOKEN_FILE: o->token_file = optarg; return 0;
	default:
		worker_usage(stderr);
		return -1;
	}
}

/* Start the settings: a cluster file's group (-f, -g), else the
 * defaults.  0, or an exit status after saying why. */
static int
worker_base(int argc, char **argv, struct worker_flags *f,
    struct wrk_options *o, struct conf *c, int *have_conf)
{
	const struct conf_group *g;
	const char *group = cli_opt_value(argc, argv, WORKER_SHORT,
	    worker_opts, 'g');
	const char *file  = cli_opt_value(argc, argv, WORKER_SHORT,
	    worker_opts, 'f');

	wrk_options_defaults(o);
	if (file == NULL ||
	    cli_opt_value(argc, argv, WORKER_SHORT, worker_opts, 'h')) {
		o->group = group != NULL ? group : o->group;
		return 0;
	}
	if (cli_load_conf(file, c) != 0)
		return 1;
	*have_conf = 1;
	g = group != NULL ? conf_group_find(c, group)
	                  : (c->n_groups > 0 ? &c->groups[0] : NULL);
	if (g == NULL) {
		fprintf(stderr, "%s: %s has no worker group '%s'\n", f->who,
		    c->path, group ? group : "(any)");
		return 1;
	}
	*o           = g->wrk;
	f->level     = c->log_level;
	f->processes = g->processes > 0 ? g->processes : -1;
	return 0;
}

/* Every library can be found: a typo is reported once, here, not by N
 * restarting processes.  0, or -1 after saying why. */
static int
worker_libraries_found(const struct wrk_options *o)
{
	char err[1024], path[4096];

	for (size_t i = 0; i < o->n_libraries; i++) {
		if (wrk_library_resolve(o->libraries[i], o->library_dir, path,
		        sizeof(path), err, sizeof(err)) != 0) {
			fprintf(stderr, "ferry worker: %s\n", err);
			return -1;
		}
	}
	if (o->n_python_modules > 0 &&
	    wrk_library_resolve(WRK_PYTHON_LIBRARY, NULL, path, sizeof(path),
	        err, sizeof(err)) != 0) {
		fprintf(stderr,
		    "ferry worker: Python modules need the task library %s, "
		    "built with the python option: %s\n",
		    WRK_PYTHON_LIBRARY, err);
		return -1;
	}
	return 0;
}

static int
worker_main(int argc, char **argv, int is_process)
{
	struct worker_flags f = {
		.who       = is_process ? "ferry worker-process" : "ferry worker",
		.processes = -1,
		.level     = -1,
	};
	struct wrk_options  o;
	struct conf         c;
	int                 ch, rc, have_conf = 0;

	if ((rc = worker_base(argc, argv, &f, &o, &c, &have_conf)) != 0)
		goto out;
	while ((ch = getopt_long(argc, argv, WORKER_SHORT, worker_opts,
	            NULL)) != -1) {
		if ((rc = worker_flag(&o, &f, ch)) != 0) {
			rc = rc > 0 ? 0 : 2;
			goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", f.who,
		    argv[optind]);
		rc = 2;
		goto out;
	}
	if (o.connect == NULL) {
		const char *env = getenv("FERRY_ADDRESS");
		o.connect = (env != NULL && env[0] != '\0') ? env
		                                            : CLI_DEFAULT_ADDRESS;
	}
	log_init(is_process ? "worker" : "supervisor",
	    f.level < 0 ? LOG_INFO : f.level);
	if (is_process)
		rc = wrk_process_run(&o);
	else if (worker_libraries_found(&o) != 0)
		rc = 1;
	else
		rc = wrk_supervise(&o,
		    f.processes > 0 ? (int)f.processes : cli_ncpu(),
		    cli_self_exe());
out:
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
