/*
 * bench.c - `ferry bench throughput|latency|heavy` (and the private
 * clusters of `ferry bench graph`, bench_graph.c).
 *
 * Without an address, starts a private local cluster (a scheduler on a
 * fresh ipc path and one worker supervisor with W processes loading the
 * example library), measures, and stops it.  Results are checked, not
 * just counted: a benchmark whose tasks failed reports failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "conf.h"
#include "ferry/ferry.h"
#include "util.h"

#include <msgpack.h>

/* The options every benchmark takes, and the end of the list. */
#define BENCH_OPTIONS                                                    \
	{ "workers", required_argument, NULL, 'w' },                         \
	    { "tasks", required_argument, NULL, 'n' },                       \
	    { "runs", required_argument, NULL, 'r' },                        \
	    { "json", no_argument, NULL, 'j' },                              \
	    { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 }

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

/* The journal modes `--journal` takes, in the order they run. */
static const char *const journal_modes[] = { "always", "batch", "none" };
#define N_MODES 3

static void
bench_usage(FILE *out)
{
	fprintf(out,
	    "usage: ferry bench throughput|latency|heavy|graph [OPTIONS]\n"
	    "\n"
	    "  throughput   map N no-op tasks and wait for every result; "
	    "prints\n"
	    "               tasks/s from the first submit to the last result\n"
	    "  latency      N single tasks one after another; prints the "
	    "median\n"
	    "               and 99th percentile round trip\n"
	    "  heavy        tasks reading slices of one large file by path "
	    "(see\n"
	    "               'ferry bench heavy --help')\n"
	    "  graph        task graphs: a chain of dependent tasks, a tree "
	    "of sums, as\n"
	    "               many independent tasks, and the scheduler's "
	    "memory per\n"
	    "               waiting task (see 'ferry bench graph --help')\n"
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
	    "      --journal MODES  private clusters whose scheduler keeps a "
	    "journal:\n"
	    "                       a comma-separated list of always, batch, "
	    "none (or\n"
	    "                       all); each run measures each mode in turn "
	    "and the\n"
	    "                       medians are printed side by side\n"
	    "      --journal-dir D  where those journals go (default $TMPDIR "
	    "or /tmp)\n"
	    "  -j, --json           one JSON object per line\n"
	    "  -h, --help           show this help\n");
}

int
bench_cluster_start(struct private_cluster *pc, long workers, long prefetch,
    const char *object_root)
{
	const char  *argv[20];
	char         nproc[16], pf[16];
	ferry_client *c;
	struct ferry_status st;
	uint64_t     deadline;
	int          rv;

	/* the private cluster dies with this process, however it ends */
	setenv("FERRY_PARENT_DEATHSIG", "1", 1);
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
	if (pc->journal != NULL && strcmp(pc->journal, "none") != 0) {
		snprintf(pc->journal_dir, sizeof(pc->journal_dir),
		    "%s/ferry-bench-journal.XXXXXX", pc->journal_parent);
		if (mkdtemp(pc->journal_dir) == NULL) {
			fprintf(stderr, "ferry bench: cannot make a journal "
			                "directory in %s: %s\n",
			    pc->journal_parent, strerror(errno));
			pc->journal_dir[0] = '\0';
			return -1;
		}
		argv[6] = "--journal";
		argv[7] = pc->journal_dir;
		argv[8] = "--journal-sync";
		argv[9] = pc->journal;
		argv[10] = NULL;
	}
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
	if (object_root != NULL) {
		int k = prefetch >= 0 ? 12 : 10;
		argv[k++] = "--object-root";
		argv[k++] = object_root;
		argv[k]   = NULL;
	}
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

void
bench_cluster_stop(struct private_cluster *pc)
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
	if (pc->journal_dir[0] != '\0') {
		char path[600];
		snprintf(path, sizeof(path), "%s/data.mdb", pc->journal_dir);
		unlink(path);
		snprintf(path, sizeof(path), "%s/lock.mdb", pc->journal_dir);
		unlink(path);
		snprintf(path, sizeof(path), "%s/lock", pc->journal_dir);
		unlink(path);
		if (rmdir(pc->journal_dir) != 0)
			fprintf(stderr, "ferry bench: cannot remove %s: %s\n",
			    pc->journal_dir, strerror(errno));
		pc->journal_dir[0] = '\0';
	}
	pc->sched = pc->worker = 0;
}

int
bench_cmp_double(const void *a, const void *b)
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

/* ---------------------------------------------------------- heavy */

#define HEAVY_MAX_WORKERS 64

struct pss_sampler {
	pid_t           pids[HEAVY_MAX_WORKERS];
	int             n;
	volatile int    stop;
	uint64_t        peak_kb;
	uint64_t        samples;
	pthread_t       thread;
};

/* One sample: the workers' total PSS, and its peak. */
static void
sampler_take(struct pss_sampler *s)
{
	uint64_t total = 0;
	for (int i = 0; i < s->n; i++) {
		/* Pss of one process in kB (0 once it is gone) */
		long long kb = util_proc_kib(s->pids[i], "smaps_rollup", "Pss");
		total += kb > 0 ? (uint64_t)kb : 0;
	}
	if (total > s->peak_kb)
		s->peak_kb = total;
	s->samples++;
}

static void *
sampler_main(void *arg)
{
	struct pss_sampler *s = arg;
	while (!s->stop) {
		sampler_take(s);
		/* reading smaps walks page tables: sample sparingly, the
		 * final sample after the run catches the peak anyway (the
		 * cache keeps its mappings) */
		for (int i = 0; i < 10 && !s->stop; i++)
			usleep(5000);
	}
	return NULL;
}

static uint64_t
word_at(uint64_t i)
{
	return (i + 1) * 0x9E3779B97F4A7C15ULL;
}

/* Write size bytes of 64-bit words to path (page cache stays warm). */
static int
heavy_write(const char *path, uint64_t size)
{
	uint64_t *buf;
	size_t    words = 1 << 17; /* 1 MiB */
	int       fd;
	uint64_t  done = 0, w = 0;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) <
	    0) {
		fprintf(stderr, "ferry bench: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if ((buf = malloc(words * 8)) == NULL) {
		close(fd);
		return -1;
	}
	while (done < size) {
		size_t n = size - done < words * 8 ? (size_t)(size - done)
		                                   : words * 8;
		for (size_t i = 0; i < n / 8; i++)
			buf[i] = word_at(w++);
		if (write(fd, buf, n) != (ssize_t)n) {
			fprintf(stderr, "ferry bench: writing %s: %s\n", path,
			    strerror(errno));
			free(buf);
			close(fd);
			return -1;
		}
		done += n;
	}
	free(buf);
	return close(fd);
}

/* Sum the words of a mapped file once, timed: the baseline. */
static double
heavy_read_once(const char *path, uint64_t size, uint64_t *sum_out)
{
	int             fd = open(path, O_RDONLY | O_CLOEXEC);
	const uint64_t *p;
	uint64_t        t0, sum = 0;
	if (fd < 0)
		return -1;
	t0 = util_now_us();
	p  = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -1;
	for (uint64_t i = 0; i < size / 8; i++)
		sum += p[i];
	munmap((void *)p, size);
	*sum_out = sum;
	return (double)(util_now_us() - t0) / 1e6;
}

static int
cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Read the workers' cache counters from the status document: loads and
 * hits of all, the most loads of one, tasks sent where their object was;
 * the workers' pids into smp (may be NULL). */
static int
heavy_status(ferry_client *c, struct pss_sampler *smp, uint64_t *loads,
    uint64_t *hits, uint64_t *max_loads, uint64_t *local)
{
	struct cli_status     s;
	const msgpack_object *wl;

	*loads = *hits = *max_loads = *local = 0;
	if (cli_status_get(c, 5000, &s) != 0)
		return -1;
	if ((wl = cli_obj_array(&s.doc, "worker_list")) != NULL &&
	    smp != NULL)
		smp->n = 0;
	for (uint32_t j = 0; wl != NULL && j < wl->via.array.size; j++) {
		const msgpack_object *w     = &wl->via.array.ptr[j];
		const msgpack_object *cache = cli_obj_get(w, "cache");
		uint64_t              l     = cli_obj_uint(cache, "loads");

		if (smp != NULL && smp->n < HEAVY_MAX_WORKERS &&
		    cli_obj_get(w, "pid") != NULL)
			smp->pids[smp->n++] = (pid_t)cli_obj_uint(w, "pid");
		*local += cli_obj_uint(w, "local");
		*hits += cli_obj_uint(cache, "hits");
		*loads += l;
		if (l > *max_loads)
			*max_loads = l;
	}
	cli_status_free(&s);
	return wl != NULL ? 0 : -1;
}

/*
 * The heavy-object benchmark: one file of `size` bytes, W worker
 * processes, T tasks each summing a different slice of the whole file.
 * Reports wall time against reading the file once, loads per worker
 * process, the share of tasks served from the cache, and the peak total
 * PSS of the worker processes.
 */
static int
bench_heavy(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "dir", required_argument, NULL, 'd' },
		{ "loader", required_argument, NULL, 'l' },
		BENCH_OPTIONS,
	};
	size_t                 size = (size_t)1 << 30;
	long                   workers = 4, tasks = 32, runs = 1;
	const char            *dir_opt = NULL, *loader = NULL;
	char                   dir[512], path[600];
	int                    ch, json = 0, rc = 0;
	struct private_cluster pc;
	ferry_client          *c = NULL;
	double                 base[3];
	uint64_t               total_sum = 0;

	memset(&pc, 0, sizeof(pc));
	optind = 2;
	while ((ch = getopt_long(argc, argv, "s:w:n:r:d:l:jh", opts, NULL)) !=
	    -1) {
		switch (ch) {
		case 's':
			if (conf_parse_size(optarg, &size) != 0 || size < 4096) {
				fprintf(stderr, "ferry bench heavy: --size: "
				                "'%s' is not a size >= 4KiB\n",
				    optarg);
				return 2;
			}
			break;
		case 'w':
			workers = cli_parse_long("--workers", optarg, 1,
			    HEAVY_MAX_WORKERS);
			break;
		case 'n':
			tasks = cli_parse_long("--tasks", optarg, 1, 100000);
			break;
		case 'r':
			runs = cli_parse_long("--runs", optarg, 1, 100);
			break;
		case 'd': dir_opt = optarg; break;
		case 'l': loader = optarg; break;
		case 'j': json = 1; break;
		case 'h':
			printf("usage: ferry bench heavy [--size 1GiB] "
			       "[--workers 4] [--tasks 32] [--runs 1]\n"
			       "                         [--dir DIR] [--loader "
			       "mmap] [--json]\n\n"
			       "One file of SIZE bytes (written to DIR, default "
			       "/tmp), W worker\nprocesses, T tasks each "
			       "summing a different slice of the whole\nfile "
			       "through an object reference.  Each run starts a "
			       "fresh cluster.\nReports wall time against "
			       "reading the file once from the page\ncache, "
			       "loads per worker process, the share of tasks "
			       "served from\nthe cache, and the peak total PSS "
			       "of the worker processes.\n");
			return 0;
		default:
			return 2;
		}
	}
	size &= ~(size_t)7;
	snprintf(dir, sizeof(dir), "%s/ferry-bench-heavy-%d",
	    dir_opt != NULL ? dir_opt : "/tmp", (int)getpid());
	snprintf(path, sizeof(path), "%s/data.bin", dir);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "ferry bench heavy: %s: %s\n", dir,
		    strerror(errno));
		return 1;
	}
	if (heavy_write(path, size) != 0) {
		rmdir(dir);
		return 1;
	}
	for (int i = 0; i < 3; i++)
		base[i] = heavy_read_once(path, size, &total_sum);
	qsort(base, 3, sizeof(double), cmp_dbl);

	for (long run = 1; run <= runs && rc == 0; run++) {
		struct pss_sampler smp;
		ferry_future     **futs = calloc((size_t)tasks, sizeof(*futs));
		uint64_t           t0, t1, loads, hits, max_loads, local;
		uint64_t           sum = 0, slice = (size / 8 / (uint64_t)tasks) * 8;
		size_t             bad = 0;
		double             secs;

		memset(&smp, 0, sizeof(smp));
		if (futs == NULL || bench_cluster_start(&pc, workers, -1, dir) != 0 ||
		    ferry_client_connect(&c, pc.url, 10000) != 0) {
			free(futs);
			rc = 1;
			break;
		}
		heavy_status(c, &smp, &loads, &hits, &max_loads, &local);
		pthread_create(&smp.thread, NULL, sampler_main, &smp);
		t0 = util_now_us();
		for (long i = 0; i < tasks; i++) {
			msgpack_sbuffer sb;
			msgpack_packer  pk;
			uint8_t         ref[1024];
			size_t          rn;
			uint64_t        off = (uint64_t)i * slice;
			uint64_t        len = i == tasks - 1 ? size - off : slice;
			msgpack_sbuffer_init(&sb);
			msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
			ferry_object_ref(ref, sizeof(ref), &rn, path, loader, 0,
			    NULL);
			msgpack_pack_array(&pk, 3);
			msgpack_pack_ext(&pk, rn, FERRY_EXT_OBJECT);
			msgpack_pack_ext_body(&pk, ref, rn);
			msgpack_pack_uint64(&pk, off);
			msgpack_pack_uint64(&pk, len);
			ferry_submit(c, "sum_u64", sb.data, sb.size, &futs[i]);
			msgpack_sbuffer_destroy(&sb);
		}
		if (ferry_wait_all(futs, (size_t)tasks, 600000) != 0)
			rc = 1;
		t1         = util_now_us();
		smp.stop   = 1;
		pthread_join(smp.thread, NULL);
		sampler_take(&smp);
		secs = (double)(t1 - t0) / 1e6;
		for (long i = 0; i < tasks; i++) {
			const void *data;
			size_t      len;
			uint64_t    v = 0;
			msgpack_zone   zone;
			msgpack_object o;
			size_t         off = 0;
			if (ferry_future_result(futs[i], &data, &len) != 0) {
				if (bad++ == 0)
					fprintf(stderr, "ferry bench heavy: %s\n",
					    ferry_future_error(futs[i]));
			} else {
				msgpack_zone_init(&zone, 64);
				if (msgpack_unpack(data, len, &off, &zone, &o) ==
				        MSGPACK_UNPACK_SUCCESS &&
				    o.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
					v = o.via.u64;
				msgpack_zone_destroy(&zone);
			}
			sum += v;
			ferry_future_free(futs[i]);
		}
		free(futs);
		heavy_status(c, NULL, &loads, &hits, &max_loads, &local);
		ferry_client_close(c);
		c = NULL;
		bench_cluster_stop(&pc);
		memset(&pc, 0, sizeof(pc));
		if (bad > 0 || sum != total_sum) {
			fprintf(stderr, "ferry bench heavy: %zu task(s) failed, "
			                "sum %s\n",
			    bad, sum == total_sum ? "ok" : "WRONG");
			rc = 1;
			break;
		}
		if (json)
			printf("{\"bench\":\"heavy\",\"run\":%ld,"
			       "\"file_bytes\":%zu,\"workers\":%ld,"
			       "\"tasks\":%ld,\"seconds\":%.4f,"
			       "\"read_once_seconds\":%.4f,"
			       "\"time_ratio\":%.3f,\"loads\":%" PRIu64
			       ",\"max_loads_per_worker\":%" PRIu64
			       ",\"cache_hits\":%" PRIu64
			       ",\"cached_share\":%.3f,\"local_dispatch\":%" PRIu64
			       ",\"peak_pss_bytes\":%" PRIu64
			       ",\"pss_ratio\":%.3f,\"pss_samples\":%" PRIu64
			       "}\n",
			    run, size, workers, tasks, secs, base[1],
			    secs / base[1], loads, max_loads, hits,
			    (double)hits / (double)tasks, local,
			    smp.peak_kb * 1024,
			    (double)smp.peak_kb * 1024 / (double)size,
			    smp.samples);
		else
			printf("heavy run %ld: %.2f GiB file, %ld workers, %ld "
			       "tasks: %.3f s (reading it once: %.3f s, ratio "
			       "%.2f); %" PRIu64 " loads (at most %" PRIu64
			       " per worker), %.0f%% of tasks found it cached; "
			       "peak PSS of the workers %.2f GiB (%.2f x the "
			       "file)\n",
			    run, (double)size / (1 << 30), workers, tasks, secs,
			    base[1], secs / base[1], loads, max_loads,
			    100.0 * (double)hits / (double)tasks,
			    (double)smp.peak_kb / (1 << 20),
			    (double)smp.peak_kb * 1024 / (double)size);
		fflush(stdout);
	}
	if (c != NULL)
		ferry_client_close(c);
	bench_cluster_stop(&pc);
	unlink(path);
	rmdir(dir);
	return rc;
}

/* The "journal" member of a JSON line, or nothing. */
static void
json_journal(const char *mode)
{
	if (mode != NULL)
		printf("\"journal\":\"%s\",", mode);
}

/* Run r of o's benchmark on c (mode: the journal of the private cluster,
 * NULL when not comparing): prints its line, its figure (p50 in us, or
 * tasks/s) in *val.  0, or 1 on failure. */
static int
measure(ferry_client *c, const struct bench_opts *o, long r,
    const char *mode, double *val)
{
	const char *j = mode != NULL ? mode : "";
	const char *sep = mode != NULL ? ", journal " : "";

	if (strcmp(o->kind, "latency") == 0) {
		uint64_t p50, p99;
		if (run_latency(c, o, &p50, &p99) != 0)
			return 1;
		*val = (double)p50;
		if (o->json) {
			printf("{\"bench\":\"latency\",");
			json_journal(mode);
			printf("\"n\":%ld,\"workers\":%ld,\"run\":%ld,"
			       "\"p50_us\":%" PRIu64 ",\"p99_us\":%" PRIu64
			       "}\n",
			    o->tasks, o->workers, r + 1, p50, p99);
		} else {
			printf("latency run %ld%s%s: %ld round trips, p50 %" PRIu64
			       " us, p99 %" PRIu64 " us\n",
			    r + 1, sep, j, o->tasks, p50, p99);
		}
	} else {
		double secs, tps = run_throughput(c, o, &secs);
		if (tps < 0)
			return 1;
		*val = tps;
		if (o->json) {
			printf("{\"bench\":\"throughput\",");
			json_journal(mode);
			printf("\"tasks\":%ld,\"workers\":%ld,\"run\":%ld,"
			       "\"seconds\":%.4f,\"tasks_per_s\":%.0f}\n",
			    o->tasks, o->workers, r + 1, secs, tps);
		} else {
			printf("throughput run %ld%s%s: %ld tasks on %ld "
			       "worker(s) in %.3f s: %.0f tasks/s\n",
			    r + 1, sep, j, o->tasks, o->workers, secs, tps);
		}
	}
	fflush(stdout);
	return 0;
}

/* The median of o->runs figures in vals (sorted here); with mode, and
 * base (the median without a journal, 0: unknown), their ratio too. */
static double
summary(const struct bench_opts *o, const char *mode, double *vals,
    const double *base)
{
	int    latency = strcmp(o->kind, "latency") == 0;
	double med;

	qsort(vals, (size_t)o->runs, sizeof(*vals), bench_cmp_double);
	med = vals[o->runs / 2];
	if (o->json) {
		printf("{\"bench\":\"%s\",\"summary\":\"median\",", o->kind);
		json_journal(mode);
		printf("\"runs\":%ld,\"%s\":%.0f", o->runs,
		    latency ? "p50_us" : "tasks_per_s", med);
		if (base != NULL && *base > 0)
			printf(",\"vs_none\":%.3f", med / *base);
		printf("}\n");
	} else {
		printf("median of %ld runs%s%s: %.0f %s", o->runs,
		    mode != NULL ? ", journal " : "", mode != NULL ? mode : "",
		    med, latency ? "us (p50)" : "tasks/s");
		if (base != NULL && *base > 0)
			printf(" (%.2f x no journal)", med / *base);
		printf("\n");
	}
	return med;
}

/* Parse --journal's list into use[N_MODES]; 0, or -1 (said). */
static int
parse_modes(const char *arg, int *use)
{
	const char *p = arg;

	memset(use, 0, N_MODES * sizeof(*use));
	if (strcmp(arg, "all") == 0) {
		for (int m = 0; m < N_MODES; m++)
			use[m] = 1;
		return 0;
	}
	while (*p != '\0') {
		size_t n = strcspn(p, ",");
		int    m;
		for (m = 0; m < N_MODES; m++)
			if (strlen(journal_modes[m]) == n &&
			    strncmp(p, journal_modes[m], n) == 0)
				break;
		if (m == N_MODES || n == 0) {
			fprintf(stderr, "ferry bench: --journal '%s': expected a "
			                "list of always, batch and none, or all\n",
			    arg);
			return -1;
		}
		use[m] = 1;
		p += n + (p[n] == ',');
	}
	return 0;
}

/* --journal: each run measures each mode on its own private cluster,
 * modes alternating so that drift of a shared machine hits all alike;
 * then the medians side by side. */
static int
bench_modes(struct bench_opts *o, const int *use, const char *parent)
{
	double *vals[N_MODES] = { NULL };
	double  base = 0;
	int     rc = 0;

	for (int m = 0; m < N_MODES; m++)
		if (use[m] &&
		    (vals[m] = calloc((size_t)o->runs, sizeof(double))) == NULL)
			rc = 1;
	for (long r = 0; r < o->runs && rc == 0; r++)
		for (int m = 0; m < N_MODES && rc == 0; m++) {
			struct private_cluster pc;
			ferry_client          *c;
			if (!use[m])
				continue;
			memset(&pc, 0, sizeof(pc));
			pc.journal        = journal_modes[m];
			pc.journal_parent = parent;
			if (bench_cluster_start(&pc, o->workers, o->prefetch, NULL) !=
			    0) {
				bench_cluster_stop(&pc);
				return 1;
			}
			if ((rc = ferry_client_connect(&c, pc.url, 10000)) !=
			    0) {
				fprintf(stderr, "ferry bench: cannot connect to "
				                "%s: %s\n",
				    pc.url, ferry_strerror(rc));
				bench_cluster_stop(&pc);
				rc = 3;
				break;
			}
			rc = measure(c, o, r, journal_modes[m], &vals[m][r]);
			ferry_client_close(c);
			bench_cluster_stop(&pc);
		}
	if (rc == 0 && use[2])
		base = summary(o, "none", vals[2], NULL);
	for (int m = 0; m < 2 && rc == 0; m++)
		if (use[m])
			summary(o, journal_modes[m], vals[m], &base);
	for (int m = 0; m < N_MODES; m++)
		free(vals[m]);
	return rc;
}

int
cmd_bench(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "prefetch", required_argument, NULL, 'p' },
		{ "connect", required_argument, NULL, 'c' },
		{ "file", required_argument, NULL, 'f' },
		{ "fn", required_argument, NULL, 'F' },
		{ "journal", required_argument, NULL, 'J' },
		{ "journal-dir", required_argument, NULL, 'D' },
		BENCH_OPTIONS,
	};
	const char            *tmp = getenv("TMPDIR");
	const char            *jdir = tmp != NULL && *tmp != '\0' ? tmp : "/tmp";
	int                    modes[N_MODES], use_modes = 0;
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
	if (strcmp(o.kind, "heavy") == 0)
		return bench_heavy(argc, argv);
	if (strcmp(o.kind, "graph") == 0)
		return bench_graph(argc, argv);
	if (strcmp(o.kind, "throughput") != 0 && strcmp(o.kind, "latency") != 0) {
		fprintf(stderr, "ferry bench: unknown benchmark '%s' "
		                "(throughput, latency, heavy or graph)\n",
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
		case 'J':
			if (parse_modes(optarg, modes) != 0)
				return 2;
			use_modes = 1;
			break;
		case 'D': jdir = optarg; break;
		case 'j': o.json = 1; break;
		case 'h':
			bench_usage(stdout);
			return 0;
		default:
			bench_usage(stderr);
			return 2;
		}
	}
	if (use_modes) {
		if (o.url != NULL || o.file != NULL) {
			fprintf(stderr, "ferry bench: --journal measures private "
			                "clusters; it cannot be used with "
			                "--connect or --file\n");
			return 2;
		}
		return bench_modes(&o, modes, jdir);
	}
	if (o.url != NULL || o.file != NULL) {
		if (cli_address(o.file, o.url, addr, sizeof(addr)) != 0)
			return 2;
	} else {
		if (bench_cluster_start(&pc, o.workers, o.prefetch, NULL) != 0) {
			bench_cluster_stop(&pc);
			return 1;
		}
		util_strlcpy(addr, pc.url, sizeof(addr));
	}
	if (o.file != NULL) {
		/* a running cluster: its TLS and token settings too */
		struct conf bc;
		if (cli_load_conf(o.file, &bc) != 0)
			return 2;
		rc = cli_connect_conf(&bc, addr, 10000, &c, NULL, 0);
		conf_free(&bc);
	} else {
		rc = ferry_client_connect(&c, addr, 10000);
	}
	if (rc != 0) {
		fprintf(stderr, "ferry bench: cannot connect to %s: %s\n", addr,
		    ferry_strerror(rc));
		bench_cluster_stop(&pc);
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
	rc   = vals == NULL;
	for (long r = 0; r < o.runs && rc == 0; r++)
		rc = measure(c, &o, r, NULL, &vals[r]);
	if (rc == 0 && o.runs > 1)
		summary(&o, NULL, vals, NULL);
	free(vals);
	ferry_client_close(c);
	bench_cluster_stop(&pc);
	return rc;
}
