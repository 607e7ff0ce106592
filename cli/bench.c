/*
 * bench.c - `ferry bench throughput|latency`.
 *
 * Without an address, starts a private local cluster (a scheduler on a
 * fresh ipc path and one worker supervisor with W processes loading the
 * example library), measures, and stops it.  Results are checked, not
 * just counted: a benchmark whose tasks failed reports failure.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "ferry/ferry.h"
#include "util.h"

struct bench_opts {
	const char *kind;
	const char *file, *url;
	long        tasks;
	long        workers;
	long        runs;
	long        prefetch;
	int         json;
	const char *fn;
};

struct private_cluster {
	pid_t sched, worker;
	char  url[256];
	char  log[256];
};

static void
bench_usage(FILE *out)
{
	fprintf(out,
	    "usage: ferry bench throughput|latency [OPTIONS]\n"
	    "\n"
	    "  throughput   map N no-op tasks and wait for every result; "
	    "prints\n"
	    "               tasks/s from the first submit to the last result\n"
	    "  latency      N single tasks one after another; prints the "
	    "median\n"
	    "               and 99th percentile round trip\n"
	    "\n"
	    "  -n, --tasks N        tasks (default 200000 for throughput, "
	    "2000 for\n"
	    "                       latency)\n"
	    "  -w, --workers W      worker processes of the private cluster "
	    "(default 2)\n"
	    "  -r, --runs R         repeat R times and report each run and "
	    "the median\n"
	    "                       (default 1)\n"
	    "  -p, --prefetch N     prefetch of the private cluster's workers\n"
	    "  -c, --connect URL    use a running cluster instead of starting "
	    "one\n"
	    "  -f, --file FILE      use the running cluster of this file\n"
	    "      --fn NAME        the task function (default noop, from "
	    "ferry_examples)\n"
	    "  -j, --json           one JSON object per line\n"
	    "  -h, --help           show this help\n");
}

static int
cluster_start(struct private_cluster *pc, long workers, long prefetch)
{
	const char  *argv[16];
	char         nproc[16], pf[16];
	ferry_client *c;
	struct ferry_status st;
	uint64_t     deadline;
	int          rv;

	snprintf(pc->url, sizeof(pc->url), "ipc:///tmp/ferry-bench-%d.sock",
	    (int)getpid());
	snprintf(pc->log, sizeof(pc->log), "/tmp/ferry-bench-%d.log",
	    (int)getpid());
	unlink(pc->log);
	argv[0] = "ferry";
	argv[1] = "scheduler";
	argv[2] = "--listen";
	argv[3] = pc->url;
	argv[4] = "--log-level";
	argv[5] = "warn";
	argv[6] = NULL;
	if ((pc->sched = cli_spawn(argv, pc->log)) < 0)
		return -1;
	snprintf(nproc, sizeof(nproc), "%ld", workers);
	snprintf(pf, sizeof(pf), "%ld", prefetch);
	argv[0] = "ferry";
	argv[1] = "worker";
	argv[2] = "--connect";
	argv[3] = pc->url;
	argv[4] = "--processes";
	argv[5] = nproc;
	argv[6] = "--library";
	argv[7] = "ferry_examples";
	argv[8] = "--log-level";
	argv[9] = "warn";
	argv[10] = prefetch >= 0 ? "--prefetch" : NULL;
	argv[11] = pf;
	argv[12] = NULL;
	if ((pc->worker = cli_spawn(argv, pc->log)) < 0)
		return -1;
	if ((rv = ferry_client_connect(&c, pc->url, 10000)) != 0) {
		fprintf(stderr, "ferry bench: scheduler did not start: %s\n",
		    ferry_strerror(rv));
		cli_tail_log(pc->log, 10);
		return -1;
	}
	memset(&st, 0, sizeof(st));
	st.size  = sizeof(st);
	deadline = util_now_ms() + 20000;
	while (ferry_cluster_status(c, &st, NULL, 2000) != 0 ||
	    st.workers < (uint32_t)workers) {
		if (util_now_ms() > deadline) {
			fprintf(stderr, "ferry bench: only %u of %ld workers "
			                "registered\n",
			    st.workers, workers);
			cli_tail_log(pc->log, 10);
			ferry_client_close(c);
			return -1;
		}
		usleep(20000);
	}
	ferry_client_close(c);
	return 0;
}

static void
cluster_stop(struct private_cluster *pc)
{
	int st;
	if (pc->worker > 0) {
		kill(pc->worker, SIGTERM);
		if (cli_wait_gone(pc->worker, 10000) != 0)
			kill(-pc->worker, SIGKILL);
		waitpid(pc->worker, &st, 0);
		kill(-pc->worker, SIGKILL);
	}
	if (pc->sched > 0) {
		kill(pc->sched, SIGTERM);
		if (cli_wait_gone(pc->sched, 5000) != 0)
			kill(pc->sched, SIGKILL);
		waitpid(pc->sched, &st, 0);
	}
	unlink(pc->log);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* One throughput run: returns tasks/s, or a negative value on failure. */
static double
run_throughput(ferry_client *c, const struct bench_opts *o, double *secs)
{
	size_t         n    = (size_t)o->tasks;
	ferry_future **futs = calloc(n, sizeof(*futs));
	const void   **args = calloc(n, sizeof(*args));
	size_t        *lens = calloc(n, sizeof(*lens));
	uint64_t       t0, t1;
	size_t         bad = 0;
	int            rv;

	if (futs == NULL || args == NULL || lens == NULL) {
		free(futs);
		free(args);
		free(lens);
		return -1;
	}
	t0 = util_now_us();
	rv = ferry_map(c, o->fn, n, args, lens, futs);
	if (rv == 0)
		rv = ferry_wait_all(futs, n, 600000);
	t1 = util_now_us();
	if (rv != 0) {
		fprintf(stderr, "ferry bench: %s\n", ferry_strerror(rv));
	} else {
		for (size_t i = 0; i < n; i++)
			if (ferry_future_result(futs[i], NULL, NULL) != 0) {
				if (bad++ == 0)
					fprintf(stderr,
					    "ferry bench: task failed: %s\n",
					    ferry_future_error(futs[i]));
			}
	}
	for (size_t i = 0; i < n; i++)
		ferry_future_free(futs[i]);
	free(futs);
	free(args);
	free(lens);
	*secs = (double)(t1 - t0) / 1e6;
	if (rv != 0 || bad > 0) {
		if (bad > 0)
			fprintf(stderr, "ferry bench: %zu of %zu tasks failed\n",
			    bad, n);
		return -1;
	}
	return (double)n / *secs;
}

static int
run_latency(ferry_client *c, const struct bench_opts *o, uint64_t *p50,
    uint64_t *p99)
{
	size_t    n  = (size_t)o->tasks;
	uint64_t *us = calloc(n, sizeof(*us));
	int       rv = 0;

	if (us == NULL)
		return -1;
	/* warm up: the first tasks pay for page faults and first messages */
	for (size_t i = 0; i < 50 && rv == 0; i++) {
		ferry_future *f;
		if ((rv = ferry_submit(c, o->fn, NULL, 0, &f)) == 0) {
			rv = ferry_future_wait(f, 10000);
			ferry_future_free(f);
		}
	}
	for (size_t i = 0; i < n && rv == 0; i++) {
		ferry_future *f;
		uint64_t      t0 = util_now_us();
		if ((rv = ferry_submit(c, o->fn, NULL, 0, &f)) != 0)
			break;
		rv    = ferry_future_wait(f, 10000);
		us[i] = util_now_us() - t0;
		if (rv == 0 && ferry_future_result(f, NULL, NULL) != 0) {
			fprintf(stderr, "ferry bench: task failed: %s\n",
			    ferry_future_error(f));
			rv = FERRY_ETASK;
		}
		ferry_future_free(f);
	}
	if (rv != 0) {
		fprintf(stderr, "ferry bench: %s\n", ferry_strerror(rv));
		free(us);
		return -1;
	}
	qsort(us, n, sizeof(*us), cmp_u64);
	*p50 = us[n / 2];
	*p99 = us[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
	free(us);
	return 0;
}

int
cmd_bench(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tasks", required_argument, NULL, 'n' },
		{ "workers", required_argument, NULL, 'w' },
		{ "runs", required_argument, NULL, 'r' },
		{ "prefetch", required_argument, NULL, 'p' },
		{ "connect", required_argument, NULL, 'c' },
		{ "file", required_argument, NULL, 'f' },
		{ "fn", required_argument, NULL, 'F' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench_opts      o;
	struct private_cluster pc;
	char                   addr[1024];
	ferry_client          *c = NULL;
	int                    ch, rc = 0, latency;
	double                *vals;

	memset(&o, 0, sizeof(o));
	memset(&pc, 0, sizeof(pc));
	o.workers  = 2;
	o.runs     = 1;
	o.prefetch = -1;
	o.fn       = "noop";
	if (argc < 2 || argv[1][0] == '-') {
		if (argc >= 2 && (strcmp(argv[1], "-h") == 0 ||
		                     strcmp(argv[1], "--help") == 0)) {
			bench_usage(stdout);
			return 0;
		}
		bench_usage(stderr);
		return 2;
	}
	o.kind = argv[1];
	if (strcmp(o.kind, "throughput") != 0 && strcmp(o.kind, "latency") != 0) {
		fprintf(stderr, "ferry bench: unknown benchmark '%s' "
		                "(throughput or latency)\n",
		    o.kind);
		return 2;
	}
	latency = strcmp(o.kind, "latency") == 0;
	o.tasks = latency ? 2000 : 200000;
	optind  = 2;
	while ((ch = getopt_long(argc, argv, "n:w:r:p:c:f:jh", opts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'n':
			o.tasks = cli_parse_long("--tasks", optarg, 1, 100000000);
			break;
		case 'w':
			o.workers = cli_parse_long("--workers", optarg, 1, 1024);
			break;
		case 'r':
			o.runs = cli_parse_long("--runs", optarg, 1, 1000);
			break;
		case 'p':
			o.prefetch = cli_parse_long("--prefetch", optarg, 0,
			    100000);
			break;
		case 'c': o.url = optarg; break;
		case 'f': o.file = optarg; break;
		case 'F': o.fn = optarg; break;
		case 'j': o.json = 1; break;
		case 'h':
			bench_usage(stdout);
			return 0;
		default:
			bench_usage(stderr);
			return 2;
		}
	}
	if (o.url != NULL || o.file != NULL) {
		if (cli_address(o.file, o.url, addr, sizeof(addr)) != 0)
			return 2;
	} else {
		if (cluster_start(&pc, o.workers, o.prefetch) != 0) {
			cluster_stop(&pc);
			return 1;
		}
		util_strlcpy(addr, pc.url, sizeof(addr));
	}
	if ((rc = ferry_client_connect(&c, addr, 10000)) != 0) {
		fprintf(stderr, "ferry bench: cannot connect to %s: %s\n", addr,
		    ferry_strerror(rc));
		cluster_stop(&pc);
		return 3;
	}
	{
		struct ferry_status st;
		memset(&st, 0, sizeof(st));
		st.size = sizeof(st);
		if (ferry_cluster_status(c, &st, NULL, 5000) == 0)
			o.workers = st.workers;
	}
	vals = calloc((size_t)o.runs, sizeof(*vals));
	rc   = 0;
	for (long r = 0; r < o.runs && vals != NULL; r++) {
		if (latency) {
			uint64_t p50, p99;
			if (run_latency(c, &o, &p50, &p99) != 0) {
				rc = 1;
				break;
			}
			vals[r] = (double)p50;
			if (o.json)
				printf("{\"bench\":\"latency\",\"n\":%ld,"
				       "\"workers\":%ld,\"run\":%ld,"
				       "\"p50_us\":%" PRIu64 ",\"p99_us\":%" PRIu64
				       "}\n",
				    o.tasks, o.workers, r + 1, p50, p99);
			else
				printf("latency run %ld: %ld round trips, "
				       "p50 %" PRIu64 " us, p99 %" PRIu64
				       " us\n",
				    r + 1, o.tasks, p50, p99);
		} else {
			double secs, tps = run_throughput(c, &o, &secs);
			if (tps < 0) {
				rc = 1;
				break;
			}
			vals[r] = tps;
			if (o.json)
				printf("{\"bench\":\"throughput\",\"tasks\":%ld,"
				       "\"workers\":%ld,\"run\":%ld,"
				       "\"seconds\":%.4f,\"tasks_per_s\":%.0f}\n",
				    o.tasks, o.workers, r + 1, secs, tps);
			else
				printf("throughput run %ld: %ld tasks on %ld "
				       "worker(s) in %.3f s: %.0f tasks/s\n",
				    r + 1, o.tasks, o.workers, secs, tps);
		}
		fflush(stdout);
	}
	if (rc == 0 && o.runs > 1 && vals != NULL) {
		qsort(vals, (size_t)o.runs, sizeof(*vals), cmp_double);
		if (o.json)
			printf("{\"bench\":\"%s\",\"summary\":\"median\","
			       "\"runs\":%ld,\"%s\":%.0f}\n",
			    o.kind, o.runs,
			    latency ? "p50_us" : "tasks_per_s",
			    vals[o.runs / 2]);
		else
			printf("median of %ld runs: %.0f %s\n", o.runs,
			    vals[o.runs / 2], latency ? "us (p50)" : "tasks/s");
	}
	free(vals);
	ferry_client_close(c);
	cluster_stop(&pc);
	return rc;
}
