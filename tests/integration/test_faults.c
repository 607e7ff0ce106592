/*
 * test_faults.c - the fault-injection suite.
 *
 * Runs many ordinary tasks (200,000 by default; $FERRY_FI_TASKS) through a
 * real cluster while a driver thread, from a seed it prints, kill -9s
 * random worker processes and SIGSTOPs one for longer than the lease before
 * resuming it, and poisoned tasks segfault, abort, hang past their timeout,
 * go over the memory limit, call exit(0) in the middle of their run, close
 * every descriptor of their process and return, or start a grandchild
 * (`sleep 1000`, in the process group or out of it) and crash.  Beside
 * them runs a task graph workload (fi_common.h): chains, small trees, and
 * chains broken by a failing link.  Then it checks what a user relies on:
 * every ordinary task has exactly one, correct result at the client;
 * every poisoned task is dead or failed with its reason; every graph task
 * holds its value, or failed as its chain says, and no task after a
 * failed link ever started; no worker process and no grandchild is left
 * behind; the scheduler's memory comes back near where it started.
 * The figures are its last lines.  $FERRY_FI_SEED repeats a run.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "fi_common.h"
#include "ferry/ferry.h"
#include "harness.h"
#include "util.h"

#define LEASE_MS 2000      /* the scheduler's heartbeat timeout */
#define STOP_MS (LEASE_MS + 1500)
#define PROCESSES 4
#define MAX_EVENTS 512
#define DELAY_US 400       /* each ordinary task sleeps this long */
#define MEMORY_LIMIT_MIB 256
#define MAX_POISON 64      /* poisoned tasks at most */
#define GRAPH_SEQ 1000     /* graph tasks' seqs: n_tasks + this, up */
#define LINK_US 10000      /* each chain link sleeps this long */

static const char *fi_lib;
static char        g_logpath[512]; /* the start records, for main() */

struct event {
	pid_t    pid;
	uint64_t us;   /* CLOCK_MONOTONIC when it was sent */
	int      stop; /* 1: SIGSTOP (resumed later), 0: SIGKILL */
};

struct driver {
	unsigned       seed;
	const char    *log;    /* the start records */
	uint64_t       probe;  /* seq of the long task the stop targets */
	uint64_t       poison; /* seq of the first poisoned task */
	pid_t          sup;    /* the supervisor: its children are ours */
	const char    *url;
	atomic_int     done;
	struct event   ev[MAX_EVENTS];
	int            n_ev;
	struct fi_seen seen; /* every worker process it saw */
};

/* The resident memory of pid in KiB, 0 if unknown. */
static uint64_t
rss_kib(pid_t pid)
{
	long long kib = util_proc_kib(pid, "status", "VmRSS");
	return kib > 0 ? (uint64_t)kib : 0;
}

/*
 * From the start records: the process that last started the probe, and
 * those that last started each poisoned task (excl, at most n).  The
 * driver leaves them alone, so that each poisoned task fails for its own
 * reason and the probe measures the stop.  Returns how many in excl.
 */
static int
runners(const struct driver *d, pid_t *probe, pid_t *excl, int n)
{
	struct fi_record r[256];
	pid_t            last[MAX_POISON] = { 0 };
	ssize_t          got;
	int              fd = open(d->log, O_RDONLY), k = 0;

	*probe = 0;
	if (fd < 0)
		return 0;
	while ((got = read(fd, r, sizeof(r))) >= (ssize_t)sizeof(r[0]))
		for (size_t i = 0; i < (size_t)got / sizeof(r[0]); i++) {
			if (r[i].seq == d->probe)
				*probe = (pid_t)r[i].pid;
			else if (r[i].seq >= d->poison &&
			    r[i].seq < d->poison + MAX_POISON)
				last[r[i].seq - d->poison] = (pid_t)r[i].pid;
		}
	close(fd);
	for (int i = 0; i < MAX_POISON && k < n; i++)
		if (last[i] != 0)
			excl[k++] = last[i];
	return k;
}

/* Kill -9 a random worker process every 150-450 ms, sparing those that
 * run a poisoned task (it must fail for its own reason); once, early on,
 * SIGSTOP the process running the long probe task for longer than the
 * lease, then SIGCONT it. */
static void *
driver_main(void *arg)
{
	struct driver *d = arg;
	ferry_client  *c;
	unsigned       r = d->seed;
	int            stopped = 0, round = 0, n_excl;
	pid_t          probe, stopped_pid = 0, excl[MAX_POISON];

	if (ferry_client_connect(&c, d->url, 10000) != 0)
		return NULL;
	while (!atomic_load(&d->done) && d->n_ev < MAX_EVENTS - 1 &&
	    round++ < 2000) {
		pid_t ours[64];
		int   k;

		usleep(150000 + (useconds_t)(rand_r(&r) % 300000));
		if (atomic_load(&d->done))
			break;
		k = fi_our_workers(c, d->sup, &d->seen, ours, 64);
		if (k < 2)
			continue; /* keep one running */
		n_excl = runners(d, &probe, excl, MAX_POISON);
		if (!stopped && round >= 3 && probe > 0) {
			struct event *e = &d->ev[d->n_ev];
			int           mine = 0;
			for (int i = 0; i < k; i++)
				mine |= ours[i] == probe;
			if (!mine)
				continue;
			e->pid  = probe;
			e->stop = 1;
			e->us   = util_now_us();
			if (kill(e->pid, SIGSTOP) == 0) {
				d->n_ev++;
				stopped     = 1;
				stopped_pid = e->pid;
				usleep(STOP_MS * 1000);
				kill(e->pid, SIGCONT);
			}
			continue;
		}
		{
			struct event *e = &d->ev[d->n_ev];
			int           spared = 0;
			e->pid = ours[rand_r(&r) % (unsigned)k];
			/* the probe's runs are for measuring the stop, and a
			 * poisoned task must fail for its own reason */
			for (int i = 0; i < n_excl; i++)
				spared |= e->pid == excl[i];
			if (spared || e->pid == probe || e->pid == stopped_pid)
				continue;
			e->stop = 0;
			e->us   = util_now_us();
			if (kill(e->pid, SIGKILL) == 0)
				d->n_ev++;
		}
	}
	ferry_client_close(c);
	return NULL;
}

enum poison { P_SEGV, P_ABORT, P_HANG, P_HOG, P_EXIT, P_CLOSE, P_FORK,
	P_KINDS };
static const char *const poison_fn[P_KINDS] = { "fi_segv", "fi_abort",
	"fi_hang", "fi_hog", "fi_exit", "fi_close_fds", "fi_fork" };

/* What the reason of a poisoned task of kind k says when it ended for its
 * own cause. */
static const char *
poison_reason(int k)
{
	switch (k) {
	case P_SEGV:
		return "SIGSEGV";
	case P_ABORT:
		return "SIGABRT";
	case P_HANG:
		return "timeout";
	case P_HOG:
		return "memory";
	case P_EXIT:
		return "exit status 0 while the task ran";
	case P_CLOSE:
		return "its descriptors were closed under it";
	default:
		return "SIGSEGV"; /* P_FORK crashes after its fork */
	}
}

static void
test_fault_injection(void **state)
{
	char              url[256], logpath[512], mem[32];
	const char       *env;
	uint64_t          n_tasks = 200000;
	unsigned          seed;
	struct driver    *d;
	pthread_t         th;
	pid_t             sched, sup;
	ferry_client     *c;
	ferry_future    **futs, *probe_f;
	ferry_future     *poison[P_KINDS * 8];
	int               n_poison = 0, n_grand;
	pid_t             grand[MAX_POISON * 4];
	uint64_t          base_rss, end_rss, requeued, late;
	struct ferry_client_stats cs;
	struct ferry_task_opts    plain, o;
	struct fi_graph           gr;
	ferry_future            **gf;
	uint8_t         (*args)[H_ARGS_MAX];
	const void      **argp;
	size_t           *lens;
	uint64_t          t0;
	(void)state;

	if ((env = getenv("FERRY_FI_TASKS")) != NULL)
		n_tasks = strtoull(env, NULL, 10);
	seed = (env = getenv("FERRY_FI_SEED")) != NULL
	    ? (unsigned)strtoul(env, NULL, 10)
	    : (unsigned)(util_now_us() ^ (uint64_t)getpid());
	printf("fault injection: seed %u (FERRY_FI_SEED=%u repeats it), "
	       "%" PRIu64 " tasks\n",
	    seed, seed, n_tasks);
	fflush(stdout);
	srand(seed);

	snprintf(logpath, sizeof(logpath), "%s/fi-starts.bin", h_dir());
	memcpy(g_logpath, logpath, sizeof(g_logpath));
	setenv("FERRY_FI_LOG", logpath, 1);
	h_ipc_url(url, sizeof(url), "fi");
	{
		const char *sx[] = { "--heartbeat-timeout-ms", "2000", NULL };
		sched = h_scheduler(url, sx);
	}
	/* under AddressSanitizer a process's shadow memory and allocator
	 * quarantine count as anonymous memory: allow for them */
	snprintf(mem, sizeof(mem), "%d",
	    (getenv("ASAN_OPTIONS") != NULL ? 1024 : MEMORY_LIMIT_MIB) << 20);
	{
		const char *wx[] = { "--library", fi_lib, "--memory-limit", mem,
			"--slots", "1", NULL };
		sup = h_workers(url, PROCESSES, wx);
	}
	assert_true(sched > 0 && sup > 0);
	assert_non_null(c = h_connect(url));
	assert_int_equal(h_wait_workers(c, PROCESSES, 30000), 0);

	/* warm up, then take the scheduler's baseline memory */
	{
		ferry_future *w[2000];
		uint8_t       a[2000][H_ARGS_MAX];
		const void   *ap[2000];
		size_t        al[2000];
		for (int i = 0; i < 2000; i++) {
			al[i] = h_pack_args(a[i], 2, 1000000000u + i, 0);
			ap[i] = a[i];
		}
		assert_int_equal(ferry_map(c, "fi_step", 2000, ap, al, w), 0);
		assert_int_equal(ferry_wait_all(w, 2000, 60000), 0);
		for (int i = 0; i < 2000; i++) {
			assert_int_equal(ferry_future_state(w[i]), FERRY_DONE);
			ferry_future_free(w[i]);
		}
	}
	usleep(300000);
	base_rss = rss_kib(sched);

	d = calloc(1, sizeof(*d));
	assert_non_null(d);
	d->seed = seed;
	d->log    = logpath;
	d->probe  = n_tasks + 1;
	d->poison = n_tasks + 100;
	d->sup  = sup;
	d->url  = url;
	assert_int_equal(pthread_create(&th, NULL, driver_main, d), 0);

	futs = calloc(n_tasks, sizeof(*futs));
	args = calloc(n_tasks, sizeof(*args));
	argp = calloc(n_tasks, sizeof(*argp));
	lens = calloc(n_tasks, sizeof(*lens));
	assert_true(futs && args && argp && lens);
	for (uint64_t i = 0; i < n_tasks; i++) {
		lens[i] = h_pack_args(args[i], 2, i, DELAY_US);
		argp[i] = args[i];
	}
	ferry_task_opts_init(&plain);
	plain.retries = 10; /* an innocent task may be hit by a kill */
	t0 = util_now_us();
	{
		/* the probe: a long task the driver will SIGSTOP the process of */
		uint8_t a[H_ARGS_MAX];
		size_t  al = h_pack_args(a, 2, d->probe, 5000000);
		assert_int_equal(ferry_submit_opts(c, "fi_step", a, al, &plain,
		                     &probe_f),
		    0);
	}
	/* graphs, ahead of the ordinary tasks and among them (below) */
	fi_graph_init(&gr, n_tasks + GRAPH_SEQ);
	for (int k = 0; k < 5; k++) {
		fi_graph_chain(&gr, c, 20, LINK_US, &plain);
		fi_graph_tree(&gr, c, DELAY_US, &plain);
		if (k % 2 == 0)
			fi_graph_broken(&gr, c, 10, 3, LINK_US, &plain);
	}
	for (uint64_t at = 0; at < n_tasks;) {
		uint64_t n = n_tasks - at < 10000 ? n_tasks - at : 10000;
		assert_int_equal(ferry_map_opts(c, "fi_step", n, argp + at,
		                     lens + at, &plain, futs + at),
		    0);
		at += n;
		if ((at / 10000) % 4 == 2) {
			fi_graph_chain(&gr, c, 20, LINK_US, &plain);
			fi_graph_tree(&gr, c, DELAY_US, &plain);
			if ((at / 10000) % 8 == 2)
				fi_graph_broken(&gr, c, 10, 3, LINK_US, &plain);
		}
		/* a poisoned task of each kind now and then */
		if (n_poison + P_KINDS <= (int)(sizeof(poison) / sizeof(poison[0])) &&
		    (at / 10000) % 3 == 1) {
			for (int k = 0; k < P_KINDS; k++) {
				uint8_t  a[H_ARGS_MAX];
				uint64_t arg = 2048; /* fi_hog: MiB */
				size_t   al;
				if (k == P_EXIT)
					arg = 0; /* exit(0) */
				else if (k == P_FORK)
					/* in the group, or out of it */
					arg = FI_FORK_CRASH |
					    (n_poison % 2 ? FI_FORK_SETSID
					                  : 0);
				al = h_pack_args(
				    a, 2, d->poison + (uint64_t)n_poison, arg);
				ferry_task_opts_init(&o);
				o.retries    = k == P_HANG ? 1 : 5;
				o.backoff_ms = 50;
				if (k == P_HANG)
					o.timeout_ms = 1000;
				assert_int_equal(ferry_submit_opts(c, poison_fn[k],
				                     a, al, &o, &poison[n_poison]),
				    0);
				n_poison++;
			}
		}
	}
	{
		int rv = ferry_wait_all(futs, n_tasks, 240000);
		if (rv != 0)
			h_dump_logs();
		assert_int_equal(rv, 0);
	}
	assert_int_equal(ferry_wait_all(poison, (size_t)n_poison, 120000), 0);
	gf = fi_graph_futures(&gr);
	{
		int rv = ferry_wait_all(gf, gr.n, 120000);
		if (rv != 0)
			h_dump_logs();
		assert_int_equal(rv, 0);
	}
	free(gf);
	/* the grandchildren of crashed tasks went with their processes */
	n_grand = fi_grandchildren(logpath, grand, MAX_POISON * 4);
	assert_true(n_grand > 0);
	assert_int_equal(fi_grandchildren_left(grand, n_grand, 10000), 0);
	assert_int_equal(ferry_future_wait(probe_f, 120000), 0);
	{
		const void *data;
		size_t      len;
		uint64_t    v, pid;
		assert_int_equal(ferry_future_result(probe_f, &data, &len), 0);
		assert_int_equal(fi_unpack_pair(data, len, &v, &pid), 0);
		assert_int_equal(v, d->probe * 7 + 3);
	}
	atomic_store(&d->done, 1);
	pthread_join(th, NULL);
	printf("ran in %.1f s\n", (double)(util_now_us() - t0) / 1e6);

	/* every ordinary task: exactly one correct result */
	for (uint64_t i = 0; i < n_tasks; i++) {
		const void *data;
		size_t      len;
		uint64_t    v, pid;
		if (ferry_future_state(futs[i]) != FERRY_DONE)
			fail_msg("task %" PRIu64 ": state %d, error %s", i,
			    ferry_future_state(futs[i]),
			    ferry_future_error(futs[i]) ? ferry_future_error(futs[i])
			                               : "-");
		assert_int_equal(ferry_future_result(futs[i], &data, &len), 0);
		assert_int_equal(fi_unpack_pair(data, len, &v, &pid), 0);
		assert_int_equal(v, i * 7 + 3);
	}
	/* every poisoned task: dead or failed, with its reason */
	{
		int dead = 0, failed = 0, own[P_KINDS] = { 0 };
		for (int i = 0; i < n_poison; i++) {
			int         k   = i % P_KINDS;
			int         st  = ferry_future_state(poison[i]);
			int         ec  = ferry_future_errcode(poison[i]);
			const char *why = ferry_future_error(poison[i]);
			assert_non_null(why);
			if (st == FERRY_DEAD) {
				dead++;
				assert_int_equal(ec, FERRY_EDEAD);
				assert_non_null(strstr(why, "quarantined"));
			} else {
				failed++;
				assert_int_equal(st, FERRY_FAILED);
			}
			/* the driver's kills may hit a poisoned task too, so
			 * each must carry the reason that ended it, whichever
			 * it was */
			switch (ec) {
			case FERRY_EDEAD:
				break;
			case FERRY_ETIMEDOUT:
				assert_non_null(strstr(why, "timeout"));
				break;
			case FERRY_EMEMORY:
				assert_non_null(strstr(why, "memory"));
				break;
			case FERRY_ECRASHED:
				if (strstr(why, "SIG") == NULL &&
				    strstr(why, "signal") == NULL &&
				    strstr(why, "exit status") == NULL)
					fail_msg("poisoned task %s: crashed "
					         "without a cause: %s",
					    poison_fn[k], why);
				break;
			default:
				fail_msg("poisoned task %s: error %d (%s)",
				    poison_fn[k], ec, why);
			}
			if (strstr(why, poison_reason(k)) != NULL)
				own[k]++;
		}
		/* and every kind failed for its own reason at least once */
		for (int k = 0; k < P_KINDS; k++) {
			if (own[k] > 0)
				continue;
			for (int i = k; i < n_poison; i += P_KINDS)
				printf("%s: %s\n", poison_fn[k],
				    ferry_future_error(poison[i]));
			fail_msg("no %s task reported its own failure",
			    poison_fn[k]);
		}
		printf("poisoned tasks: %d (%d dead, %d failed), every one with "
		       "its reason\n",
		    n_poison, dead, failed);
	}
	/* every graph task: its value, or the failure its chain set */
	fi_graph_check(&gr, logpath);
	memset(&cs, 0, sizeof(cs));
	cs.size = sizeof(cs);
	assert_int_equal(ferry_client_stats(c, &cs), 0);
	requeued = h_status_uint(c, "requeued");
	late     = h_status_uint(c, "late_results");

	/* executions, from the start records */
	{
		struct stat       sb;
		int               fd = open(logpath, O_RDONLY);
		struct fi_record *recs;
		size_t            nrec;
		uint32_t         *count;
		uint64_t          dup = 0, *gaps, n_gaps = 0, stop_gap = 0;
		int               n_kill = 0;

		assert_true(fd >= 0 && fstat(fd, &sb) == 0);
		nrec = (size_t)sb.st_size / sizeof(*recs);
		recs = malloc(nrec * sizeof(*recs) + 1);
		assert_non_null(recs);
		assert_int_equal(read(fd, recs, nrec * sizeof(*recs)),
		    (ssize_t)(nrec * sizeof(*recs)));
		close(fd);
		count = calloc(n_tasks, sizeof(*count));
		gaps  = calloc(MAX_EVENTS, sizeof(*gaps));
		assert_true(count && gaps);
		for (size_t i = 0; i < nrec; i++)
			if (recs[i].seq < n_tasks)
				count[recs[i].seq]++;
		for (uint64_t i = 0; i < n_tasks; i++) {
			assert_true(count[i] >= 1); /* it ran */
			dup += count[i] - 1;
		}
		/*
		 * For each kill (or stop) of process P at time T: the task P
		 * was running is the one whose latest start on P before T
		 * has no result from P; it runs elsewhere at its first
		 * start after T.
		 */
		for (int e = 0; e < d->n_ev; e++) {
			const struct event *ev = &d->ev[e];
			uint64_t best = 0, seq = UINT64_MAX, next = 0;
			if (ev->stop) {
				for (size_t i = 0; i < nrec; i++)
					if (recs[i].seq == d->probe &&
					    recs[i].us > ev->us &&
					    recs[i].pid != (uint64_t)ev->pid &&
					    (next == 0 || recs[i].us < next))
						next = recs[i].us;
				if (next != 0)
					stop_gap = next - ev->us;
				continue;
			}
			n_kill++;
			for (size_t i = 0; i < nrec; i++)
				if (recs[i].pid == (uint64_t)ev->pid &&
				    recs[i].us < ev->us && recs[i].us >= best &&
				    recs[i].seq < n_tasks) {
					best = recs[i].us;
					seq  = recs[i].seq;
				}
			if (seq == UINT64_MAX)
				continue;
			{
				const void *data;
				size_t      len;
				uint64_t    v, pid;
				if (ferry_future_result(futs[seq], &data, &len) != 0 ||
				    fi_unpack_pair(data, len, &v, &pid) != 0 ||
				    pid == (uint64_t)ev->pid)
					continue; /* it had finished there */
			}
			for (size_t i = 0; i < nrec; i++)
				if (recs[i].seq == seq && recs[i].us > ev->us &&
				    recs[i].pid != (uint64_t)ev->pid &&
				    (next == 0 || recs[i].us < next))
					next = recs[i].us;
			if (next == 0)
				continue;
			if (ev->stop)
				stop_gap = next - ev->us;
			else
				gaps[n_gaps++] = next - ev->us;
			if (!ev->stop && next - ev->us > 1000000) {
				/* say why: every start of that task, relative
				 * to the kill */
				printf("slow: task %" PRIu64 " killed on pid %d; "
				       "its starts:",
				    seq, (int)ev->pid);
				for (size_t i = 0; i < nrec; i++)
					if (recs[i].seq == seq)
						printf(" pid %" PRIu64 " at %+.1f ms",
						    recs[i].pid,
						    ((double)recs[i].us -
						        (double)ev->us) / 1000.0);
				printf("\n");
			}
		}
		qsort(gaps, n_gaps, sizeof(*gaps), fi_cmp_u64);
		usleep(500000);
		end_rss = rss_kib(sched);

		printf("tasks: %" PRIu64 " ordinary + %d poisoned\n", n_tasks,
		    n_poison);
		printf("kills: %d (kill -9) and 1 SIGSTOP for %d ms (lease %d "
		       "ms)\n",
		    n_kill, STOP_MS, LEASE_MS);
		printf("re-queues: %" PRIu64 "; late results dropped: %" PRIu64
		       "\n",
		    requeued, late);
		printf("duplicate executions: %" PRIu64 " (allowed: "
		       "at-least-once)\n",
		    dup);
		printf("duplicate deliveries to the client: %" PRIu64 "\n",
		    cs.duplicates);
		if (n_gaps > 0)
			printf("kill -> running elsewhere: median %.1f ms, max "
			       "%.1f ms (%" PRIu64 " interrupted tasks)\n",
			    (double)gaps[n_gaps / 2] / 1000.0,
			    (double)gaps[n_gaps - 1] / 1000.0, n_gaps);
		printf("stop -> running elsewhere: %.1f ms (lease %d ms)\n",
		    (double)stop_gap / 1000.0, LEASE_MS);
		/* the stopped process's long task ran elsewhere */
		assert_true(stop_gap > 0);
		printf("scheduler memory: %" PRIu64 " KiB at the start, %" PRIu64
		       " KiB after the run\n",
		    base_rss, end_rss);
		assert_int_equal(cs.duplicates, 0);
		assert_true(n_kill >= 1);
		/* near its baseline: the run's tasks and results are freed
		 * (not under AddressSanitizer, whose allocator keeps freed
		 * memory in quarantine) */
		if (getenv("ASAN_OPTIONS") == NULL)
			assert_true(end_rss <= base_rss + 32768);
		else
			printf("(scheduler memory not checked under "
			       "AddressSanitizer)\n");
		free(count);
		free(gaps);
		free(recs);
	}

	for (uint64_t i = 0; i < n_tasks; i++)
		ferry_future_free(futs[i]);
	for (int i = 0; i < n_poison; i++)
		ferry_future_free(poison[i]);
	ferry_future_free(probe_f);
	fi_graph_free(&gr);
	free(futs);
	free(args);
	free(argp);
	free(lens);
	ferry_client_close(c);

	/* stop the cluster: no worker process may outlive it */
	fi_stop_workers(url, sup, &d->seen);
	printf("worker processes seen: %d, left running: 0\n", d->seen.n);
	n_grand = fi_grandchildren(logpath, grand, MAX_POISON * 4);
	assert_int_equal(fi_grandchildren_left(grand, n_grand, 10000), 0);
	printf("grandchildren started by tasks: %d, left running: 0\n",
	    n_grand);
	h_stop(sched, 10000);
	free(d);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fault_injection),
	};
	int rc;
	h_init(argc, argv);
	fi_lib = h_fi_lib(argc, argv);
	rc     = H_RUN_TESTS(tests, NULL);
	h_cleanup();
	/* grandchildren left by a failed run: ours, stopped by pid */
	fi_kill_grandchildren(g_logpath);
	return rc;
}
