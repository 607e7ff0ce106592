/*
 * bench_graph.c - `ferry bench graph`: task graphs (ferry_future_ref) on a
 * private cluster.
 *
 *  - chain: N tasks, each `add [ref(previous), 1]`, all submitted at
 *    once; only the last is waited for.  The scheduler runs each link as
 *    its input finishes, with no client round trip in between: what a
 *    link costs is one hand-off through the scheduler.
 *  - tree: M leaves `add [i, 0]` reduced by `sum` tasks of fan-in F,
 *    level by level, to one root, all submitted at once; the root must be
 *    M(M-1)/2 exactly.
 *  - independent: as many no-op tasks as the tree has, mapped (as `ferry
 *    bench throughput` does), to compare the tree's rate with in the same
 *    run.
 *  - memory: one input held back (a long sleep_ms) and K tasks waiting
 *    for it; the scheduler's resident memory before and after, per
 *    waiting task; then the input is cancelled and every waiting task
 *    must end cancelled.
 *
 * Each run starts a fresh private cluster for chain, tree and
 * independent, and another for memory (a scheduler that has held nothing
 * yet, so that its growth is the waiting tasks').
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ferry/ferry.h"
#include "util.h"

#include <msgpack.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

enum {
	G_CHAIN  = 1,
	G_TREE   = 2,
	G_INDEP  = 4,
	G_MEMORY = 8,
};

/* the private scheduler's scheduler.max_queue: waiting tasks count */
#define G_MAX_WAITING 1000000L

struct gopts {
	long     links, leaves, fanin, waiting, runs, workers;
	int      json;
	unsigned only;
};

/* The figures of one run (NaN-free: a bench not run leaves its zeros). */
struct grun {
	double   chain_s, chain_us;
	double   tree_s, tree_tps;
	double   indep_s, indep_tps;
	uint64_t tree_tasks;
	uint64_t tree_refused, indep_refused; /* submits the scheduler
	                                       * refused as full, resent */
	double   args_bytes, per_waiting, client_per_task;
	uint64_t rss_before, rss_after;
};

static void
graph_usage(FILE *out)
{
	fprintf(out,
	    "usage: ferry bench graph [--links N] [--leaves M] [--fanin F] "
	    "[--waiting K]\n"
	    "                         [--runs R] [--workers W] [--json]\n"
	    "                         [--only chain|tree|independent|memory]\n"
	    "\n"
	    "Task graphs (ferry_future_ref) on a private cluster of W worker "
	    "processes\n"
	    "(default 2); every task of a graph is submitted at once, and the "
	    "scheduler\n"
	    "runs each one as its inputs finish.\n"
	    "\n"
	    "  chain        N tasks (default 10000), each add [ref(previous), "
	    "1]; the\n"
	    "               last is waited for and must be N.  Prints seconds "
	    "and\n"
	    "               microseconds per link, first submit to last "
	    "result\n"
	    "  tree         M leaves add [i, 0] (default 1000000) reduced by "
	    "sum tasks\n"
	    "               of fan-in F (default 16) level by level to one "
	    "root, which\n"
	    "               must be M(M-1)/2.  Prints tasks and tasks/s\n"
	    "  independent  as many no-op tasks as the tree has, mapped, in "
	    "the same\n"
	    "               run: the tree's tasks/s next to independent "
	    "tasks'\n"
	    "  memory       one input held back (sleep_ms) and K tasks "
	    "(default 1000000,\n"
	    "               at most the scheduler's max_queue, 1000000) each "
	    "add\n"
	    "               [ref(input), i] waiting for it; prints the "
	    "scheduler's RSS\n"
	    "               growth per waiting task and the arguments' size, "
	    "then\n"
	    "               cancels the input: every waiting task must end "
	    "cancelled\n"
	    "\n"
	    "  -l, --links N        chain length\n"
	    "  -m, --leaves M       leaves of the tree\n"
	    "  -F, --fanin F        inputs of each sum task (2 to 1000)\n"
	    "  -k, --waiting K      waiting tasks of the memory benchmark\n"
	    "  -o, --only LIST      a comma-separated list of chain, tree, "
	    "independent,\n"
	    "                       memory (default: all four)\n"
	    "  -w, --workers W      worker processes (default 2)\n"
	    "  -r, --runs R         repeat R times (each run on fresh "
	    "clusters) and print\n"
	    "                       the medians (default 1)\n"
	    "  -j, --json           one JSON object per line\n"
	    "  -h, --help           show this help\n");
}

/* Parse --only's list; 0, or -1 (said). */
static int
parse_only(const char *arg, unsigned *only)
{
	static const char *const names[] = { "chain", "tree", "independent",
		"memory" };
	const char              *p       = arg;

	*only = 0;
	while (*p != '\0') {
		size_t n = strcspn(p, ",");
		int    k;
		for (k = 0; k < 4; k++)
			if (strlen(names[k]) == n && strncmp(p, names[k], n) == 0)
				break;
		if (k == 4 || n == 0) {
			fprintf(stderr, "ferry bench graph: --only '%s': expected "
			                "a list of chain, tree, independent and "
			                "memory\n",
			    arg);
			return -1;
		}
		*only |= 1u << k;
		p += n + (p[n] == ',');
	}
	return *only != 0 ? 0 : -1;
}

/* Write `[ref(f), ` ... : a msgpack array header of n entries. */
static size_t
pack_array_header(uint8_t *buf, size_t n)
{
	if (n < 16) {
		buf[0] = (uint8_t)(0x90 | n);
		return 1;
	}
	buf[0] = 0xdc;
	buf[1] = (uint8_t)(n >> 8);
	buf[2] = (uint8_t)n;
	return 3;
}

/* A non-negative integer in msgpack's shortest form. */
static size_t
pack_uint(uint8_t *buf, uint64_t v)
{
	if (v < 128) {
		buf[0] = (uint8_t)v;
		return 1;
	}
	if (v < 256) {
		buf[0] = 0xcc;
		buf[1] = (uint8_t)v;
		return 2;
	}
	if (v < 65536) {
		buf[0] = 0xcd;
		buf[1] = (uint8_t)(v >> 8);
		buf[2] = (uint8_t)v;
		return 3;
	}
	buf[0] = 0xce;
	for (int i = 0; i < 4; i++)
		buf[1 + i] = (uint8_t)(v >> (24 - 8 * i));
	return 5;
}

/* The integer result of a finished task into *v; 0, or -1 (said). */
static int
result_int(const char *what, ferry_future *f, int64_t *v)
{
	const void    *data;
	size_t         len, off = 0;
	msgpack_zone   zone;
	msgpack_object o;
	int            rc = -1;

	if (ferry_future_result(f, &data, &len) != 0) {
		fprintf(stderr, "ferry bench graph: %s failed: %s\n", what,
		    ferry_future_error(f) != NULL ? ferry_future_error(f)
		                                  : ferry_strerror(
		                                        ferry_future_errcode(f)));
		return -1;
	}
	msgpack_zone_init(&zone, 64);
	if (msgpack_unpack(data, len, &off, &zone, &o) ==
	    MSGPACK_UNPACK_SUCCESS) {
		if (o.type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
		    o.via.u64 <= INT64_MAX) {
			*v = (int64_t)o.via.u64;
			rc = 0;
		} else if (o.type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
			*v = o.via.i64;
			rc = 0;
		}
	}
	msgpack_zone_destroy(&zone);
	if (rc != 0)
		fprintf(stderr, "ferry bench graph: %s returned no integer\n",
		    what);
	return rc;
}

static int
status_of(ferry_client *c, struct ferry_status *st)
{
	memset(st, 0, sizeof(*st));
	st->size = sizeof(*st);
	return ferry_cluster_status(c, st, NULL, 5000);
}

/* VmRSS of a process, in bytes (0 if unknown). */
static uint64_t
rss_bytes(pid_t pid)
{
	long long kib = util_proc_kib(pid, "status", "VmRSS");
	return kib > 0 ? (uint64_t)kib * 1024 : 0;
}

/* This process's heap in use, in bytes (glibc: every arena, mmapped
 * blocks too), else its VmRSS: what the client holds, without the pages
 * earlier benchmarks freed but the allocator kept. */
static uint64_t
self_heap_bytes(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
	struct mallinfo2 mi = mallinfo2();
	return (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
#else
	return rss_bytes(getpid());
#endif
}

/* ----------------------------------------------------------- chain */

static int
run_chain(ferry_client *c, long n, double *secs)
{
	ferry_future *prev = NULL, *f = NULL;
	uint8_t       buf[8 + FERRY_FUTURE_REF_MAX];
	uint64_t      t0, t1;
	int64_t       last = -1;
	int           rv = 0;

	t0 = util_now_us();
	for (long i = 0; i < n; i++) {
		size_t len = pack_array_header(buf, 2), rl;
		if (prev == NULL) {
			buf[len++] = 0;
		} else if ((rv = ferry_future_ref(buf + len, sizeof(buf) - len,
		                &rl, prev)) == 0) {
			len += rl;
		}
		buf[len++] = 1;
		if (rv != 0 || (rv = ferry_submit(c, "add", buf, len, &f)) != 0)
			break;
		/* its dependent is submitted: the scheduler keeps its
		 * result for it, the client need not */
		ferry_future_free(prev);
		prev = f;
	}
	if (rv == 0)
		rv = ferry_future_wait(prev, 600000);
	t1    = util_now_us();
	*secs = (double)(t1 - t0) / 1e6;
	if (rv != 0)
		fprintf(stderr, "ferry bench graph: chain: %s\n",
		    ferry_strerror(rv));
	else if (result_int("the chain's last link", prev, &last) != 0)
		rv = -1;
	else if (last != n) {
		fprintf(stderr, "ferry bench graph: the chain's last link "
		                "returned %" PRId64 ", not %ld\n",
		    last, n);
		rv = -1;
	}
	ferry_future_free(prev);
	return rv == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ tree */

/* Tasks of a tree of m leaves and fan-in f. */
static uint64_t
tree_tasks(uint64_t m, uint64_t f)
{
	uint64_t total = m;
	while (m > 1) {
		m = (m + f - 1) / f;
		total += m;
	}
	return total;
}

static int
run_tree(ferry_client *c, long leaves, long fanin, double *secs)
{
	size_t          m    = (size_t)leaves, n;
	uint8_t        *lbuf = malloc(m * 8);
	const void    **args = calloc(m, sizeof(*args));
	size_t         *lens = calloc(m, sizeof(*lens));
	ferry_future  **cur  = calloc(m, sizeof(*cur)), **next = NULL;
	uint8_t        *sbuf = malloc(3 + (size_t)fanin * FERRY_FUTURE_REF_MAX);
	uint64_t        t0, t1;
	int64_t         root = -1;
	int             rv = 0;

	if (lbuf == NULL || args == NULL || lens == NULL || cur == NULL ||
	    sbuf == NULL) {
		fprintf(stderr, "ferry bench graph: tree: out of memory\n");
		free(lbuf);
		free(args);
		free(lens);
		free(cur);
		free(sbuf);
		return -1;
	}
	/* leaf i: add [i, 0] (at most 8 bytes) */
	for (size_t i = 0; i < m; i++) {
		uint8_t *p = lbuf + i * 8;
		size_t   k = pack_array_header(p, 2);
		k += pack_uint(p + k, i);
		p[k++]  = 0;
		args[i] = p;
		lens[i] = k;
	}
	t0 = util_now_us();
	rv = ferry_map(c, "add", m, args, lens, cur);
	free(lbuf);
	free(args);
	free(lens);
	if (rv != 0) {
		fprintf(stderr, "ferry bench graph: tree: submitting the "
		                "leaves: %s\n",
		    ferry_strerror(rv));
		free(cur);
		free(sbuf);
		return -1;
	}
	/* level by level: sums of up to fanin futures of the level below,
	 * each freed once its sum is submitted */
	for (n = m; n > 1 && rv == 0;) {
		size_t up = (n + (size_t)fanin - 1) / (size_t)fanin;
		if ((next = calloc(up, sizeof(*next))) == NULL) {
			rv = FERRY_ENOMEM;
			break;
		}
		for (size_t j = 0; j < up && rv == 0; j++) {
			size_t lo = j * (size_t)fanin;
			size_t k  = n - lo < (size_t)fanin ? n - lo : (size_t)fanin;
			size_t len = pack_array_header(sbuf, k), rl;
			for (size_t q = 0; q < k && rv == 0; q++) {
				rv = ferry_future_ref(sbuf + len,
				    FERRY_FUTURE_REF_MAX, &rl, cur[lo + q]);
				len += rl;
			}
			if (rv == 0)
				rv = ferry_submit(c, "sum", sbuf, len, &next[j]);
			if (rv == 0)
				for (size_t q = 0; q < k; q++) {
					ferry_future_free(cur[lo + q]);
					cur[lo + q] = NULL;
				}
		}
		for (size_t i = 0; i < n; i++)
			ferry_future_free(cur[i]);
		free(cur);
		cur  = next;
		next = NULL;
		n    = up;
	}
	if (rv == 0)
		rv = ferry_future_wait(cur[0], 1800000);
	t1    = util_now_us();
	*secs = (double)(t1 - t0) / 1e6;
	if (rv != 0) {
		fprintf(stderr, "ferry bench graph: tree: %s\n",
		    ferry_strerror(rv));
	} else if (result_int("the tree's root", cur[0], &root) != 0) {
		rv = -1;
	} else if ((uint64_t)root != (uint64_t)m * (m - 1) / 2) {
		fprintf(stderr, "ferry bench graph: the tree's root is %" PRId64
		                ", not %" PRIu64 "\n",
		    root, (uint64_t)m * (m - 1) / 2);
		rv = -1;
	}
	if (cur != NULL)
		for (size_t i = 0; i < n; i++)
			ferry_future_free(cur[i]);
	free(cur);
	free(sbuf);
	return rv == 0 ? 0 : -1;
}

/* ----------------------------------------------------- independent */

static int
run_independent(ferry_client *c, size_t n, double *secs)
{
	ferry_future **futs = calloc(n, sizeof(*futs));
	const void   **args = calloc(n, sizeof(*args));
	size_t        *lens = calloc(n, sizeof(*lens));
	uint64_t       t0, t1;
	size_t         bad = 0;
	int            rv  = FERRY_ENOMEM;

	if (futs != NULL && args != NULL && lens != NULL) {
		t0 = util_now_us();
		rv = ferry_map(c, "noop", n, args, lens, futs);
		if (rv == 0)
			rv = ferry_wait_all(futs, n, 1800000);
		t1    = util_now_us();
		*secs = (double)(t1 - t0) / 1e6;
	}
	if (rv != 0)
		fprintf(stderr, "ferry bench graph: independent: %s\n",
		    ferry_strerror(rv));
	for (size_t i = 0; rv == 0 && i < n; i++)
		if (ferry_future_result(futs[i], NULL, NULL) != 0 &&
		    bad++ == 0)
			fprintf(stderr, "ferry bench graph: independent: task "
			                "failed: %s\n",
			    ferry_future_error(futs[i]));
	if (bad > 0)
		fprintf(stderr, "ferry bench graph: independent: %zu of %zu "
		                "tasks failed\n",
		    bad, n);
	if (futs != NULL && rv == 0)
		for (size_t i = 0; i < n; i++)
			ferry_future_free(futs[i]);
	free(futs);
	free(args);
	free(lens);
	return rv == 0 && bad == 0 ? 0 : -1;
}

/* ---------------------------------------------------------- memory */

/* Poll the scheduler until waiting == want (and nothing of ours is
 * unsent), up to timeout_ms; 0, or -1 (said). */
static int
wait_waiting(ferry_client *c, uint64_t want, int timeout_ms)
{
	struct ferry_status       st;
	struct ferry_client_stats cs;
	uint64_t                  deadline = util_now_ms() + (uint64_t)timeout_ms;

	memset(&st, 0, sizeof(st));
	for (;;) {
		memset(&cs, 0, sizeof(cs));
		cs.size = sizeof(cs);
		if (status_of(c, &st) == 0 && st.waiting == want &&
		    ferry_client_stats(c, &cs) == 0 && cs.unsent == 0)
			return 0;
		if (util_now_ms() > deadline) {
			fprintf(stderr, "ferry bench graph: memory: %" PRIu64
			                " tasks waiting, expected %" PRIu64
			                " (rejected so far: %" PRIu64 ")\n",
			    st.waiting, want, st.rejected);
			return -1;
		}
		usleep(50000);
	}
}

static int
run_memory(const struct gopts *o, struct grun *g)
{
	struct private_cluster pc;
	ferry_client          *c     = NULL;
	ferry_future          *input = NULL, **futs = NULL;
	struct ferry_status    st;
	size_t                 k = (size_t)o->waiting, sent = 0;
	uint8_t                buf[16 + FERRY_FUTURE_REF_MAX], ref[FERRY_FUTURE_REF_MAX];
	size_t                 rl = 0;
	uint64_t               arg_total = 0, self0, self1, deadline;
	size_t                 cancelled = 0;
	int                    rv = -1;

	memset(&pc, 0, sizeof(pc));
	if (bench_cluster_start(&pc, o->workers, -1, NULL) != 0)
		goto out;
	if (ferry_client_connect(&c, pc.url, 10000) != 0) {
		fprintf(stderr, "ferry bench graph: cannot connect to %s\n",
		    pc.url);
		goto out;
	}
	if ((futs = calloc(k, sizeof(*futs))) == NULL)
		goto out;
	/* the input: held by a worker for ten minutes, or until cancelled */
	buf[0] = 0x91;
	if (ferry_submit(c, "sleep_ms", buf, 1 + pack_uint(buf + 1, 600000),
	        &input) != 0 ||
	    ferry_future_ref(ref, sizeof(ref), &rl, input) != 0)
		goto out;
	deadline = util_now_ms() + 10000;
	while (status_of(c, &st) != 0 || st.busy < 1 || st.queued > 0) {
		if (util_now_ms() > deadline) {
			fprintf(stderr, "ferry bench graph: memory: the input "
			                "did not start\n");
			goto out;
		}
		usleep(20000);
	}
	usleep(200000);
	g->rss_before = rss_bytes(pc.sched);
	self0         = self_heap_bytes();
	for (sent = 0; sent < k; sent++) {
		size_t len = pack_array_header(buf, 2);
		memcpy(buf + len, ref, rl);
		len += rl;
		len += pack_uint(buf + len, sent);
		arg_total += len;
		if (ferry_submit(c, "add", buf, len, &futs[sent]) != 0) {
			fprintf(stderr, "ferry bench graph: memory: submit "
			                "failed\n");
			goto out;
		}
	}
	if (wait_waiting(c, k, 300000) != 0)
		goto out;
	g->rss_after       = rss_bytes(pc.sched);
	self1              = self_heap_bytes();
	g->args_bytes      = (double)arg_total / (double)k;
	g->per_waiting     = ((double)g->rss_after - (double)g->rss_before) /
	    (double)k;
	g->client_per_task = ((double)self1 - (double)self0) / (double)k;

	/* cancelling the input ends every waiting task, cancelled */
	if (ferry_cancel(input) != 0 || ferry_future_wait(input, 60000) != 0 ||
	    ferry_wait_all(futs, k, 300000) != 0) {
		fprintf(stderr, "ferry bench graph: memory: the cancelled "
		                "tasks did not end\n");
		goto out;
	}
	for (size_t i = 0; i < k; i++)
		if (ferry_future_state(futs[i]) == FERRY_CANCELLED)
			cancelled++;
	if (ferry_future_state(input) != FERRY_CANCELLED ||
	    cancelled != k) {
		fprintf(stderr, "ferry bench graph: memory: %zu of %zu "
		                "waiting tasks ended cancelled (the input: "
		                "state %d)\n",
		    cancelled, k, ferry_future_state(input));
		goto out;
	}
	if (wait_waiting(c, 0, 60000) != 0)
		goto out;
	rv = 0;
out:
	if (futs != NULL)
		for (size_t i = 0; i < sent; i++)
			ferry_future_free(futs[i]);
	free(futs);
	ferry_future_free(input);
	ferry_client_close(c);
	bench_cluster_stop(&pc);
	return rv;
}

/* ----------------------------------------------------------- report */

static double
median(double *v, long n)
{
	qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
	return v[n / 2];
}

/* The end of a text line: how many submits the scheduler refused as
 * its queue was full (max_queue counts waiting tasks too), if any. */
static void
print_refused(uint64_t n)
{
	if (n > 0)
		printf(" (the scheduler refused %" PRIu64 " submits as its "
		       "queue was full; sent again)",
		    n);
	printf("\n");
}

static void
print_run(const struct gopts *o, long r, unsigned which,
    const struct grun *g)
{
	if (which == G_CHAIN) {
		if (o->json)
			printf("{\"bench\":\"graph_chain\",\"system\":\"ferry\","
			       "\"links\":%ld,\"workers\":%ld,\"run\":%ld,"
			       "\"seconds\":%.4f,\"us_per_link\":%.1f}\n",
			    o->links, o->workers, r, g->chain_s, g->chain_us);
		else
			printf("graph chain run %ld: %ld links in %.3f s: %.1f "
			       "us per link\n",
			    r, o->links, g->chain_s, g->chain_us);
	} else if (which == G_TREE) {
		if (o->json)
			printf("{\"bench\":\"graph_tree\",\"system\":\"ferry\","
			       "\"leaves\":%ld,\"fanin\":%ld,\"tasks\":%" PRIu64
			       ",\"workers\":%ld,\"run\":%ld,\"seconds\":%.4f,"
			       "\"tasks_per_s\":%.0f}\n",
			    o->leaves, o->fanin, g->tree_tasks, o->workers, r,
			    g->tree_s, g->tree_tps);
		else
		{
			printf("graph tree run %ld: %ld leaves, fan-in %ld, %" PRIu64
			       " tasks in %.3f s: %.0f tasks/s",
			    r, o->leaves, o->fanin, g->tree_tasks, g->tree_s,
			    g->tree_tps);
			print_refused(g->tree_refused);
		}
	} else if (which == G_INDEP) {
		if (o->json)
			printf("{\"bench\":\"graph_independent\",\"system\":"
			       "\"ferry\",\"tasks\":%" PRIu64 ",\"workers\":%ld,"
			       "\"run\":%ld,\"seconds\":%.4f,\"tasks_per_s\":%.0f}"
			       "\n",
			    g->tree_tasks, o->workers, r, g->indep_s,
			    g->indep_tps);
		else
		{
			printf("graph independent run %ld: %" PRIu64 " no-op "
			       "tasks in %.3f s: %.0f tasks/s",
			    r, g->tree_tasks, g->indep_s, g->indep_tps);
			print_refused(g->indep_refused);
		}
	} else {
		if (o->json)
			printf("{\"bench\":\"graph_memory\",\"system\":\"ferry\","
			       "\"waiting\":%ld,\"args_bytes\":%.1f,"
			       "\"rss_before\":%" PRIu64 ",\"rss_after\":%" PRIu64
			       ",\"bytes_per_waiting\":%.0f,\"run\":%ld,"
			       "\"client_bytes_per_task\":%.0f}\n",
			    o->waiting, g->args_bytes, g->rss_before,
			    g->rss_after, g->per_waiting, r,
			    g->client_per_task);
		else
			printf("graph memory run %ld: %ld tasks waiting "
			       "(arguments %.1f bytes each): scheduler RSS "
			       "%.1f -> %.1f MiB, %.0f bytes per waiting task; "
			       "the client's heap %.0f bytes per task\n",
			    r, o->waiting, g->args_bytes,
			    (double)g->rss_before / (1 << 20),
			    (double)g->rss_after / (1 << 20), g->per_waiting,
			    g->client_per_task);
	}
	fflush(stdout);
}

static void
print_medians(const struct gopts *o, const struct grun *runs)
{
	long    n = o->runs;
	double *a = calloc((size_t)n, sizeof(double));
	double *b = calloc((size_t)n, sizeof(double));
	double  tps_tree = 0, tps_ind = 0;

	if (a == NULL || b == NULL) {
		free(a);
		free(b);
		return;
	}
	if (o->only & G_CHAIN) {
		for (long r = 0; r < n; r++) {
			a[r] = runs[r].chain_s;
			b[r] = runs[r].chain_us;
		}
		if (o->json)
			printf("{\"bench\":\"graph_chain\",\"system\":\"ferry\","
			       "\"summary\":\"median\",\"runs\":%ld,\"links\":%ld,"
			       "\"workers\":%ld,\"seconds\":%.4f,"
			       "\"us_per_link\":%.1f}\n",
			    n, o->links, o->workers, median(a, n), median(b, n));
		else
			printf("median of %ld runs, chain: %.1f us per link\n", n,
			    median(b, n));
	}
	if (o->only & G_TREE) {
		for (long r = 0; r < n; r++) {
			a[r] = runs[r].tree_s;
			b[r] = runs[r].tree_tps;
		}
		tps_tree = median(b, n);
		if (o->json)
			printf("{\"bench\":\"graph_tree\",\"system\":\"ferry\","
			       "\"summary\":\"median\",\"runs\":%ld,\"leaves\":%ld,"
			       "\"fanin\":%ld,\"tasks\":%" PRIu64 ",\"workers\":%ld,"
			       "\"seconds\":%.4f,\"tasks_per_s\":%.0f}\n",
			    n, o->leaves, o->fanin, runs[0].tree_tasks,
			    o->workers, median(a, n), tps_tree);
		else
			printf("median of %ld runs, tree: %.0f tasks/s\n", n,
			    tps_tree);
	}
	if (o->only & G_INDEP) {
		for (long r = 0; r < n; r++) {
			a[r] = runs[r].indep_s;
			b[r] = runs[r].indep_tps;
		}
		tps_ind = median(b, n);
		if (o->json)
			printf("{\"bench\":\"graph_independent\",\"system\":"
			       "\"ferry\",\"summary\":\"median\",\"runs\":%ld,"
			       "\"tasks\":%" PRIu64 ",\"workers\":%ld,"
			       "\"seconds\":%.4f,\"tasks_per_s\":%.0f}\n",
			    n, runs[0].tree_tasks, o->workers, median(a, n),
			    tps_ind);
		else
			printf("median of %ld runs, independent: %.0f tasks/s%s",
			    n, tps_ind, tps_tree > 0 ? "" : "\n");
		if (!o->json && tps_tree > 0)
			printf(" (the tree: %.2f x)\n", tps_tree / tps_ind);
	}
	if (o->only & G_MEMORY) {
		double *c = calloc((size_t)n, sizeof(double));
		for (long r = 0; r < n; r++) {
			a[r] = runs[r].per_waiting;
			if (c != NULL)
				c[r] = runs[r].client_per_task;
		}
		if (o->json)
			printf("{\"bench\":\"graph_memory\",\"system\":\"ferry\","
			       "\"summary\":\"median\",\"runs\":%ld,"
			       "\"waiting\":%ld,\"args_bytes\":%.1f,"
			       "\"bytes_per_waiting\":%.0f,"
			       "\"client_bytes_per_task\":%.0f}\n",
			    n, o->waiting, runs[0].args_bytes, median(a, n),
			    c != NULL ? median(c, n) : 0);
		else
			printf("median of %ld runs, memory: %.0f bytes per "
			       "waiting task (arguments %.1f bytes); the "
			       "client's heap %.0f bytes per task\n",
			    n, median(a, n), runs[0].args_bytes,
			    c != NULL ? median(c, n) : 0);
		free(c);
	}
	free(a);
	free(b);
}

/* Tasks the scheduler has refused so far (its queue was full: the
 * client sends them again). */
static uint64_t
refused(ferry_client *c)
{
	struct ferry_status st;
	return status_of(c, &st) == 0 ? st.rejected : 0;
}

/* Chain, tree and independent on one fresh cluster; 0 or 1. */
static int
run_graphs(const struct gopts *o, long r, struct grun *g)
{
	struct private_cluster pc;
	ferry_client          *c = NULL;
	int                    rc = 1;

	memset(&pc, 0, sizeof(pc));
	if (bench_cluster_start(&pc, o->workers, -1, NULL) != 0)
		goto out;
	if (ferry_client_connect(&c, pc.url, 10000) != 0) {
		fprintf(stderr, "ferry bench graph: cannot connect to %s\n",
		    pc.url);
		goto out;
	}
	if (o->only & G_CHAIN) {
		if (run_chain(c, o->links, &g->chain_s) != 0)
			goto out;
		g->chain_us = g->chain_s * 1e6 / (double)o->links;
		print_run(o, r, G_CHAIN, g);
	}
	if (o->only & G_TREE) {
		uint64_t r0 = refused(c);
		if (run_tree(c, o->leaves, o->fanin, &g->tree_s) != 0)
			goto out;
		g->tree_refused = refused(c) - r0;
		g->tree_tps = (double)g->tree_tasks / g->tree_s;
		print_run(o, r, G_TREE, g);
	}
	if (o->only & G_INDEP) {
		uint64_t r0 = refused(c);
		if (run_independent(c, (size_t)g->tree_tasks, &g->indep_s) != 0)
			goto out;
		g->indep_refused = refused(c) - r0;
		g->indep_tps = (double)g->tree_tasks / g->indep_s;
		print_run(o, r, G_INDEP, g);
	}
	rc = 0;
out:
	ferry_client_close(c);
	bench_cluster_stop(&pc);
	return rc;
}

int
bench_graph(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "links", required_argument, NULL, 'l' },
		{ "leaves", required_argument, NULL, 'm' },
		{ "fanin", required_argument, NULL, 'F' },
		{ "waiting", required_argument, NULL, 'k' },
		{ "only", required_argument, NULL, 'o' },
		{ "workers", required_argument, NULL, 'w' },
		{ "runs", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct gopts o = { .links = 10000, .leaves = 1000000, .fanin = 16,
		.waiting = G_MAX_WAITING, .runs = 1, .workers = 2, .json = 0,
		.only = G_CHAIN | G_TREE | G_INDEP | G_MEMORY };
	struct grun *runs;
	int          ch, rc = 0;

	optind = 2;
	while ((ch = getopt_long(argc, argv, "l:m:F:k:o:w:r:jh", opts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'l':
			o.links = cli_parse_long("--links", optarg, 1, 100000000);
			break;
		case 'm':
			o.leaves = cli_parse_long("--leaves", optarg, 1,
			    100000000);
			break;
		case 'F':
			o.fanin = cli_parse_long("--fanin", optarg, 2, 1000);
			break;
		case 'k':
			o.waiting = cli_parse_long("--waiting", optarg, 1,
			    G_MAX_WAITING);
			break;
		case 'o':
			if (parse_only(optarg, &o.only) != 0)
				return 2;
			break;
		case 'w':
			o.workers = cli_parse_long("--workers", optarg, 1, 1024);
			break;
		case 'r':
			o.runs = cli_parse_long("--runs", optarg, 1, 1000);
			break;
		case 'j': o.json = 1; break;
		case 'h':
			graph_usage(stdout);
			return 0;
		default:
			graph_usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ferry bench graph: unexpected argument '%s'\n",
		    argv[optind]);
		return 2;
	}
	if ((runs = calloc((size_t)o.runs, sizeof(*runs))) == NULL)
		return 1;
	for (long r = 0; r < o.runs && rc == 0; r++) {
		struct grun *g = &runs[r];
		g->tree_tasks  = tree_tasks((uint64_t)o.leaves, (uint64_t)o.fanin);
		if ((o.only & (G_CHAIN | G_TREE | G_INDEP)) != 0)
			rc = run_graphs(&o, r + 1, g);
		if (rc == 0 && (o.only & G_MEMORY) != 0) {
			if (run_memory(&o, g) != 0)
				rc = 1;
			else
				print_run(&o, r + 1, G_MEMORY, g);
		}
	}
	if (rc == 0 && o.runs > 1)
		print_medians(&o, runs);
	free(runs);
	return rc;
}
