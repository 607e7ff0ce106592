/*
 * test_faults_restart.c - the fault-injection suite, with scheduler kills.
 *
 * Runs many ordinary tasks (200,000 by default; $FERRY_FI_TASKS) through a
 * cluster whose scheduler keeps a journal (sync: always) while a driver
 * thread, from a seed it prints ($FERRY_FI_SEED repeats it), kill -9s a
 * random worker process every 150-450 ms, as test_faults.c does, and
 * kill -9s the scheduler SCHED_KILLS times, at random points spread over
 * the run (by the progress the start records show, not by the clock, so
 * that a slow machine takes longer instead of missing kills), each time
 * starting a new one with the same arguments on the same address and
 * journal.  The client rides through every restart (reconnect_ms), the
 * worker processes too (the run's epoch is in the journal).  A few fi_fork
 * tasks leave `sleep` grandchildren in their worker processes.
 *
 * Then it checks what a user relies on: every task has exactly one result
 * at the client and it is correct, from a run the start records show; no
 * result was delivered twice; no task failed (retries 10 cover the worker
 * kills); no worker process and no grandchild outlives the supervisor;
 * every scheduler was stopped by the test, by pid.  The figures are its
 * last lines: the seed, the kills, the recovery time (kill -9 -> the new
 * scheduler has restored its journal and listens: its ready file), and the
 * tasks run more than once, by cause: their worker process was gone, or a
 * scheduler restart came between their runs.
 */
#include <errno.h>
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
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "fi_common.h"
#include "ferry/ferry.h"
#include "harness.h"
#include "util.h"

#define PROCESSES 4
#define DELAY_US 400        /* each ordinary task sleeps this long */
#define SCHED_KILLS 12      /* scheduler kills planned over the run */
#define MIN_SCHED_KILLS 10  /* fewer than this fails the test */
#define MAX_WORKER_KILLS 2048
#define N_FORK 8            /* fi_fork tasks (their grandchildren) */
#define RECONNECT_MS 60000  /* the client's window: longer than a restart */
#define POLL_MS 20          /* the driver's step */
#define MAX_ROUNDS 180000   /* of POLL_MS at least: an hour */
#define READY_MS 120000     /* a new scheduler must listen by then */
#define STALL_MS 120000     /* no future completing this long: a hang */
#define CHUNK 10000         /* tasks per ferry_map_opts */

static const char *fi_lib;
static char        g_logpath[512]; /* the start records, for main() */

/* One scheduler kill and the start of its successor. */
struct restart {
	pid_t    old, pid;
	uint64_t kill_us;    /* CLOCK_MONOTONIC when it was sent */
	uint64_t ready_us;   /* when the new one's ready file appeared */
	uint64_t records;    /* start records when it was sent */
	uint64_t restored;   /* queued tasks the new one restored (its log) */
	double   restore_ms; /* what its log says reading the journal took */
};

struct worker_kill {
	pid_t    pid;
	uint64_t us;
};

struct driver {
	unsigned       seed;
	const char    *log;  /* the start records */
	const char    *url;
	const char    *jdir; /* the journal */
	pid_t          sup;  /* the supervisor: its children are ours */
	pid_t          sched; /* the scheduler running now */
	atomic_int     done;    /* the tasks are done: no more kills */
	atomic_int     idle;    /* the driver kills no more */
	atomic_int     release; /* the driver may end (see driver_main) */
	atomic_int     broken;  /* the driver could not go on: why says */
	char           why[512];
	uint64_t       at[SCHED_KILLS]; /* start records at each kill */
	uint64_t       gap; /* and at least this many since the last one */
	struct restart rs[SCHED_KILLS];
	int            n_rs;
	struct worker_kill wk[MAX_WORKER_KILLS];
	int            n_wk;
	struct fi_seen seen;
};

/* Start a scheduler at url on journal jdir; its log is logname, its ready
 * file ready (which must not exist yet). */
static pid_t
start_scheduler(const struct driver *d, const char *logname,
    const char *ready)
{
	const char *const args[] = { "scheduler", "--listen", d->url,
		"--journal", d->jdir, "--journal-sync", "always",
		"--restore-wait-ms", "1000", "--heartbeat-timeout-ms", "2000",
		"--ready-file", ready, NULL };
	return h_start(logname, args);
}

/* Wait (bounded; polling often, since it is measured) until the
 * scheduler pid writes its ready file; 0, or -1 when it exited or did not
 * within timeout_ms. */
static int
wait_ready(pid_t pid, const char *ready, int timeout_ms)
{
	uint64_t end = util_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		int last = util_now_ms() >= end;
		if (access(ready, F_OK) == 0)
			return 0;
		if (last || !h_alive(pid))
			return -1;
		usleep(2000);
	}
}

/* From DIR/<logname>.log: "journal ...: restored N queued task(s), ...
 * in X ms".  0, or -1 when the line is not there. */
static int
restored_of(const char *logname, uint64_t *n, double *ms)
{
	char    path[600], *line = NULL;
	size_t  cap = 0;
	FILE   *f;
	int     rv = -1;

	snprintf(path, sizeof(path), "%s/%s.log", h_dir(), logname);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (rv != 0 && getline(&line, &cap, f) != -1) {
		const char *p = strstr(line, ": restored ");
		const char *q = p != NULL ? strstr(p, " session(s) in ") : NULL;
		if (p != NULL && q != NULL &&
		    sscanf(p, ": restored %" SCNu64 " queued", n) == 1 &&
		    sscanf(q, " session(s) in %lf ms", ms) == 1)
			rv = 0;
	}
	free(line);
	fclose(f);
	return rv;
}

/* The driver cannot go on: say why (main fails the test with it). */
static int
broken(struct driver *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->why, sizeof(d->why), fmt, ap);
	va_end(ap);
	atomic_store(&d->broken, 1);
	return -1;
}

/* Kill -9 the scheduler, start a new one on the same address and
 * journal, and measure until it listens. */
static int
restart(struct driver *d)
{
	struct restart *rs = &d->rs[d->n_rs];
	char            logname[32], ready[600];

	snprintf(logname, sizeof(logname), "sched-%d", d->n_rs + 1);
	snprintf(ready, sizeof(ready), "%s/%s.ready", h_dir(), logname);
	rs->old     = d->sched;
	rs->records = fi_count_records(d->log);
	rs->kill_us = util_now_us();
	if (kill(rs->old, SIGKILL) != 0)
		return broken(d, "kill -9 of scheduler %d: %s", (int)rs->old,
		    strerror(errno));
	/* gone (and reaped: our child) before another opens its journal */
	if (h_wait_gone(rs->old, 30000) != 0)
		return broken(d, "scheduler %d outlived kill -9", (int)rs->old);
	h_forget(rs->old);
	rs->pid = start_scheduler(d, logname, ready);
	if (wait_ready(rs->pid, ready, READY_MS) != 0)
		return broken(d, "the scheduler started after kill %d did not "
		                 "come up within %d ms (%s.log)",
		    d->n_rs + 1, READY_MS, logname);
	rs->ready_us = util_now_us();
	d->sched     = rs->pid;
	if (restored_of(logname, &rs->restored, &rs->restore_ms) != 0)
		return broken(d, "%s.log does not say what it restored from the "
		                 "journal",
		    logname);
	d->n_rs++;
	return 0;
}

/* Kill -9 one of our worker processes, keeping one running. */
static void
kill_worker(struct driver *d, ferry_client *c, unsigned *r)
{
	pid_t               ours[64];
	int                 k = fi_our_workers(c, d->sup, &d->seen, ours, 64);
	struct worker_kill *e;

	if (k < 2 || d->n_wk >= MAX_WORKER_KILLS)
		return;
	e      = &d->wk[d->n_wk];
	e->pid = ours[rand_r(r) % (unsigned)k];
	e->us  = util_now_us();
	if (kill(e->pid, SIGKILL) == 0)
		d->n_wk++;
}

static uint64_t
worker_pause_us(unsigned *r)
{
	return 150000 + (uint64_t)(rand_r(r) % 300000);
}

/* Whether the next scheduler kill is due: the start records reached its
 * point, and grew by d->gap since the last kill (one that came late, the
 * driver having waited for an answer, does not bring the next at once). */
static int
kill_due(const struct driver *d)
{
	uint64_t n    = fi_count_records(d->log);
	uint64_t last = d->n_rs > 0 ? d->rs[d->n_rs - 1].records : 0;

	return n >= d->at[d->n_rs] && n >= last + d->gap;
}

/*
 * Every POLL_MS: when the start records reach the next kill point, kill
 * -9 the scheduler and start another; otherwise, every 150-450 ms, kill
 * -9 a random worker process.
 */
static void *
driver_main(void *arg)
{
	struct driver *d = arg;
	ferry_client  *c = h_connect_riding(d->url, RECONNECT_MS);
	unsigned       r = d->seed;
	uint64_t       next;

	if (c == NULL) {
		broken(d, "the driver cannot connect to %s", d->url);
		atomic_store(&d->idle, 1);
		return NULL; /* it started no process */
	}
	next = util_now_us() + worker_pause_us(&r);
	for (int round = 0; round < MAX_ROUNDS && !atomic_load(&d->done);
	     round++) {
		usleep(POLL_MS * 1000);
		if (atomic_load(&d->done))
			break;
		if (d->n_rs < SCHED_KILLS && kill_due(d)) {
			if (restart(d) != 0)
				break;
			continue;
		}
		if (util_now_us() < next)
			continue;
		kill_worker(d, c, &r);
		next = util_now_us() + worker_pause_us(&r);
	}
	ferry_client_close(c);
	atomic_store(&d->idle, 1);
	/* the schedulers it started die with this thread (the harness's
	 * FERRY_PARENT_DEATHSIG: PR_SET_PDEATHSIG follows the thread that
	 * started a process), so it ends once the test has stopped them
	 * (bounded: meson's timeout comes first) */
	for (int i = 0; i < 60000 && !atomic_load(&d->release); i++)
		usleep(10000);
	return NULL;
}

/* The kill points: one at random in each of SCHED_KILLS equal parts of
 * [2 %, 88 %] of the tasks' start records (in the middle 80 % of each
 * part, and a fifth of a part after the last kill at least, so that
 * consecutive kills are apart), so that all happen before the last tasks
 * start. */
static void
plan_kills(struct driver *d, uint64_t n_tasks, unsigned *r)
{
	double lo = 0.02 * (double)n_tasks, hi = 0.88 * (double)n_tasks;
	double part = (hi - lo) / SCHED_KILLS;

	for (int i = 0; i < SCHED_KILLS; i++) {
		double u = (double)(rand_r(r) % 10000) / 10000.0;
		d->at[i] = (uint64_t)(lo + part * (i + 0.1 + 0.8 * u)) + 1;
	}
	d->gap = (uint64_t)(part * 0.2);
}

static int
cmp_record(const void *a, const void *b)
{
	const struct fi_record *x = a, *y = b;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return x->us < y->us ? -1 : x->us > y->us;
}

/* (pid, the time of its last start record), sorted by pid. */
struct last_start {
	uint64_t pid, us;
};

static int
cmp_last(const void *a, const void *b)
{
	const struct last_start *x = a, *y = b;
	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	return x->us < y->us ? -1 : x->us > y->us;
}

/* Each process's last start, from recs (n): *out (malloc'd), how many. */
static size_t
last_starts(const struct fi_record *recs, size_t n, struct last_start **out)
{
	struct last_start *l = malloc(sizeof(*l) * (n + 1));
	size_t             k = 0;

	assert_non_null(l);
	for (size_t i = 0; i < n; i++) {
		l[i].pid = recs[i].pid;
		l[i].us  = recs[i].us;
	}
	qsort(l, n, sizeof(*l), cmp_last);
	for (size_t i = 0; i < n; i++)
		if (i + 1 == n || l[i + 1].pid != l[i].pid)
			l[k++] = l[i];
	*out = l;
	return k;
}

/* Whether start (pid, us) was the last start of its process: it died with
 * that task (or before it started another). */
static int
was_last(const struct last_start *l, size_t n, uint64_t pid, uint64_t us)
{
	size_t a = 0, b = n;
	while (a < b) {
		size_t m = (a + b) / 2;
		if (l[m].pid < pid)
			a = m + 1;
		else
			b = m;
	}
	return a < n && l[a].pid == pid && l[a].us == us;
}

/* The re-runs, by cause. */
struct reruns {
	uint64_t tasks, extra;   /* tasks run more than once; their extra runs */
	uint64_t gone, killed;   /* tasks re-run as their process was gone
	                          * (killed: by the driver) */
	uint64_t restart, other; /* ... after a scheduler restart; neither */
};

/* Why the run b of a task followed its run a: 'g', a's process was gone
 * (the driver killed it between the two runs, or a was the last task it
 * started: it died with it); else 'r', a scheduler restart came between
 * them; else 'o'.  *killed: the driver killed a's process after a. */
static int
cause(const struct driver *d, const struct last_start *l, size_t n_l,
    const struct fi_record *a, const struct fi_record *b, int *killed)
{
	*killed = 0;
	for (int i = 0; i < d->n_wk; i++)
		if (d->wk[i].pid == (pid_t)a->pid && d->wk[i].us > a->us) {
			*killed = 1;
			if (d->wk[i].us < b->us)
				return 'g'; /* with a's result, if it had one */
		}
	if (was_last(l, n_l, a->pid, a->us))
		return 'g';
	*killed = 0;
	/* a began before a new scheduler listened (the old one, maybe
	 * already killed, had handed it out), b after the kill */
	for (int i = 0; i < d->n_rs; i++)
		if (a->us < d->rs[i].ready_us && d->rs[i].kill_us < b->us)
			return 'r';
	return 'o';
}

/*
 * From the start records: every task started (at least once), its result
 * came from one of its runs, and the tasks run more than once, by cause.
 * Also, for each restart, when tasks started again after it.
 */
static void
check_runs(const struct driver *d, ferry_future **futs, uint64_t n_tasks,
    struct reruns *rr, uint64_t *resumed)
{
	size_t             n, n_l, i = 0;
	struct fi_record  *recs = fi_read_records(d->log, &n);
	struct last_start *l;
	int                shown = 0;

	assert_non_null(recs);
	memset(rr, 0, sizeof(*rr));
	/* after each restart: the first start once the new one listened */
	for (int k = 0; k < d->n_rs; k++) {
		resumed[k] = 0;
		for (size_t j = 0; j < n; j++)
			if (recs[j].us >= d->rs[k].ready_us &&
			    (resumed[k] == 0 || recs[j].us < resumed[k]))
				resumed[k] = recs[j].us;
	}
	n_l = last_starts(recs, n, &l);
	qsort(recs, n, sizeof(*recs), cmp_record);
	for (uint64_t seq = 0; seq < n_tasks; seq++) {
		size_t      first, runs;
		const void *data;
		size_t      len;
		uint64_t    v, pid;
		int         from = 0, why = 0;

		while (i < n && recs[i].seq < seq)
			i++;
		first = i;
		while (i < n && recs[i].seq == seq)
			i++;
		runs = i - first;
		if (runs == 0)
			fail_msg("task %" PRIu64 " has a result but never "
			         "started",
			    seq);
		assert_int_equal(ferry_future_result(futs[seq], &data, &len), 0);
		assert_int_equal(fi_unpack_pair(data, len, &v, &pid), 0);
		for (size_t j = first; j < i; j++)
			from |= recs[j].pid == pid;
		if (!from)
			fail_msg("task %" PRIu64 ": its result names process "
			         "%" PRIu64 ", which never started it",
			    seq, pid);
		if (runs == 1)
			continue;
		rr->tasks++;
		rr->extra += runs - 1;
		/* the task's cause: its process gone, if any of its re-runs
		 * was; else a restart; else other */
		for (size_t j = first + 1; j < i; j++) {
			int killed, c = cause(d, l, n_l, &recs[j - 1], &recs[j],
			                        &killed);
			if (c == 'g' && why != 'g') {
				why = 'g';
				rr->killed += killed;
			} else if (c == 'r' && why != 'g')
				why = 'r';
			else if (why == 0)
				why = c;
		}
		if (why == 'g')
			rr->gone++;
		else if (why == 'r')
			rr->restart++;
		else {
			rr->other++;
			if (shown++ < 5) {
				printf("task %" PRIu64 " re-run for no cause "
				       "seen; its starts:",
				    seq);
				for (size_t j = first; j < i; j++)
					printf(" pid %" PRIu64 " at %.3f s",
					    recs[j].pid,
					    (double)recs[j].us / 1e6);
				printf("\n");
			}
		}
	}
	free(l);
	free(recs);
}

/* Wait (bounded) for every future of all (n): while they complete, as
 * long as it takes (a slow machine takes longer); fails the test when
 * none completes for STALL_MS, or when the driver broke down. */
static void
wait_all(ferry_client *c, ferry_future **all, size_t n, struct driver *d)
{
	size_t   from = 0;
	uint64_t done = 0, since = util_now_ms();

	/* at most an hour of one-second waits; meson's timeout comes first */
	for (int i = 0; from < n && i < 3600; i++) {
		struct ferry_client_stats cs;
		(void)ferry_wait_all(all + from, n - from, 1000);
		while (from < n && ferry_future_state(all[from]) != FERRY_PENDING)
			from++;
		if (atomic_load(&d->broken)) {
			h_dump_logs();
			fail_msg("driver: %s", d->why);
		}
		memset(&cs, 0, sizeof(cs));
		cs.size = sizeof(cs);
		if (ferry_client_stats(c, &cs) == 0 && cs.completed != done) {
			done  = cs.completed;
			since = util_now_ms();
		} else if (util_now_ms() - since > STALL_MS) {
			h_dump_logs();
			fail_msg("no task completed for %d ms: %zu of %zu "
			         "complete in order, task %zu pending",
			    STALL_MS, from, n, from);
		}
	}
	if (from < n)
		fail_msg("%zu of %zu tasks still pending", n - from, n);
}

static double
ms_of(uint64_t us)
{
	return (double)us / 1000.0;
}

static void
test_faults_restart(void **state)
{
	char                      url[256], jdir[512], ready[600];
	const char               *env;
	uint64_t                  n_tasks = 200000, *rec, *res;
	unsigned                  seed, r;
	struct driver            *d;
	pthread_t                 th;
	ferry_client             *c;
	ferry_future            **futs, **all;
	struct ferry_client_stats cs;
	struct ferry_task_opts    plain;
	uint8_t                 (*args)[H_ARGS_MAX];
	const void              **argp;
	size_t                   *lens;
	uint64_t                  t0, t_end;
	struct reruns             rr;
	pid_t                     g[1024];
	int                       n_g;
	(void)state;

	if ((env = getenv("FERRY_FI_TASKS")) != NULL)
		n_tasks = strtoull(env, NULL, 10);
	assert_true(n_tasks >= 100);
	seed = (env = getenv("FERRY_FI_SEED")) != NULL
	    ? (unsigned)strtoul(env, NULL, 10)
	    : (unsigned)(util_now_us() ^ (uint64_t)getpid());
	printf("fault injection with scheduler restarts: seed %u "
	       "(FERRY_FI_SEED=%u repeats it), %" PRIu64 " tasks\n",
	    seed, seed, n_tasks);
	fflush(stdout);

	d = calloc(1, sizeof(*d));
	assert_non_null(d);
	snprintf(g_logpath, sizeof(g_logpath), "%s/fi-starts.bin", h_dir());
	setenv("FERRY_FI_LOG", g_logpath, 1);
	h_ipc_url(url, sizeof(url), "fir");
	snprintf(jdir, sizeof(jdir), "%s/faults.journal", h_dir());
	snprintf(ready, sizeof(ready), "%s/sched-0.ready", h_dir());
	d->seed = seed;
	d->log  = g_logpath;
	d->url  = url;
	d->jdir = jdir;
	r       = seed ^ 0x5eedu; /* the kill points: not the driver's draws */
	plan_kills(d, n_tasks, &r);

	d->sched = start_scheduler(d, "sched-0", ready);
	assert_int_equal(wait_ready(d->sched, ready, READY_MS), 0);
	{
		const char *const libs[] = { fi_lib, NULL };
		const char *const wx[]   = { "--slots", "1", NULL };
		d->sup = h_start_workers("workers", url, PROCESSES, libs, wx);
	}
	assert_non_null(c = h_connect_riding(url, RECONNECT_MS));
	assert_int_equal(h_wait_workers(c, PROCESSES, 30000), 0);
	assert_int_equal(pthread_create(&th, NULL, driver_main, d), 0);

	/* all: the ordinary tasks, then the fi_fork ones */
	all  = calloc(n_tasks + N_FORK, sizeof(*all));
	args = calloc(n_tasks, sizeof(*args));
	argp = calloc(n_tasks, sizeof(*argp));
	lens = calloc(n_tasks, sizeof(*lens));
	assert_true(all && args && argp && lens);
	futs = all;
	for (uint64_t i = 0; i < n_tasks; i++) {
		lens[i] = h_pack_args(args[i], 2, i, DELAY_US);
		argp[i] = args[i];
	}
	ferry_task_opts_init(&plain);
	plain.retries = 10; /* an innocent task may be hit by a kill */
	t0 = util_now_us();
	for (uint64_t at = 0; at < n_tasks;) {
		uint64_t n = n_tasks - at < CHUNK ? n_tasks - at : CHUNK;
		int      rv = ferry_map_opts(c, "fi_step", n, argp + at,
		         lens + at, &plain, futs + at);
		if (rv != 0)
			fail_msg("submitting tasks %" PRIu64 "-%" PRIu64 ": %s", at,
			    at + n - 1, ferry_strerror(rv));
		at += n;
		if (at >= n_tasks / 2 && all[n_tasks] == NULL)
			/* a grandchild in each of a few worker processes, in
			 * their process group or out of it */
			for (int i = 0; i < N_FORK; i++)
				all[n_tasks + (uint64_t)i] = h_submit(c, "fi_fork", 2,
				    n_tasks + 10 + (uint64_t)i,
				    i % 2 ? FI_FORK_SETSID : 0, &plain);
	}
	wait_all(c, all, n_tasks + N_FORK, d);
	t_end = util_now_us();
	atomic_store(&d->done, 1);
	/* until its restart in progress (if any) is over: bounded by
	 * READY_MS */
	for (int i = 0; i < READY_MS / 10 + 3000 && !atomic_load(&d->idle);
	     i++)
		usleep(10000);
	assert_true(atomic_load(&d->idle));
	if (atomic_load(&d->broken))
		fail_msg("driver: %s", d->why);

	/* every task: exactly one correct result, and none failed */
	for (uint64_t i = 0; i < n_tasks + N_FORK; i++) {
		const void *data;
		size_t      len;
		uint64_t    v, pid;
		if (ferry_future_state(all[i]) != FERRY_DONE)
			fail_msg("task %" PRIu64 ": state %d, error %s", i,
			    ferry_future_state(all[i]),
			    ferry_future_error(all[i]) ? ferry_future_error(all[i])
			                              : "-");
		assert_int_equal(ferry_future_result(all[i], &data, &len), 0);
		if (i >= n_tasks) {
			/* fi_fork: its grandchild's pid */
			assert_int_equal(h_unpack_uint(data, len, &v), 0);
			assert_true(v > 0);
			continue;
		}
		assert_int_equal(fi_unpack_pair(data, len, &v, &pid), 0);
		if (v != i * 7 + 3)
			fail_msg("task %" PRIu64 ": result %" PRIu64 ", not %" PRIu64,
			    i, v, i * 7 + 3);
	}
	memset(&cs, 0, sizeof(cs));
	cs.size = sizeof(cs);
	assert_int_equal(ferry_client_stats(c, &cs), 0);
	assert_int_equal(cs.completed, n_tasks + N_FORK);
	rec = calloc((size_t)d->n_rs + 1, sizeof(*rec));
	res = calloc((size_t)d->n_rs + 1, sizeof(*res));
	assert_true(rec && res);
	check_runs(d, futs, n_tasks, &rr, res);

	for (int k = 0; k < d->n_rs; k++) {
		const struct restart *rs = &d->rs[k];
		rec[k] = rs->ready_us - rs->kill_us;
		printf("restart %2d at %5.1f s (%" PRIu64 " starts): kill -9 "
		       "%d -> %d listening in %.0f ms (restored %" PRIu64
		       " queued task(s) in %.1f ms), tasks starting again "
		       "after %.0f ms\n",
		    k + 1, (double)(rs->kill_us - t0) / 1e6, rs->records,
		    (int)rs->old, (int)rs->pid, ms_of(rec[k]), rs->restored,
		    rs->restore_ms,
		    res[k] ? ms_of(res[k] - rs->kill_us) : -1.0);
		res[k] = res[k] ? res[k] - rs->kill_us : 0;
	}
	qsort(rec, (size_t)d->n_rs, sizeof(*rec), fi_cmp_u64);
	qsort(res, (size_t)d->n_rs, sizeof(*res), fi_cmp_u64);
	printf("client: %" PRIu64 " submitted, %" PRIu64 " completed, %" PRIu64
	       " resent, %" PRIu64 " reconnects, %" PRIu64
	       " duplicate deliveries\n",
	    cs.submitted, cs.completed, cs.resent, cs.reconnects,
	    cs.duplicates);
	assert_int_equal(cs.duplicates, 0);

	for (uint64_t i = 0; i < n_tasks + N_FORK; i++)
		ferry_future_free(all[i]);
	free(all);
	free(args);
	free(argp);
	free(lens);
	ferry_client_close(c);

	/* stop the cluster: no worker process and no grandchild may outlive
	 * it; then the scheduler, by pid */
	fi_stop_workers(url, d->sup, &d->seen);
	n_g = fi_grandchildren(g_logpath, g, 1024);
	assert_true(n_g >= N_FORK);
	assert_int_equal(fi_grandchildren_left(g, n_g, 10000), 0);
	h_stop(d->sched, 10000);
	assert_int_equal(h_wait_gone(d->sched, 1000), 0);
	atomic_store(&d->release, 1);
	pthread_join(th, NULL);

	printf("worker processes seen: %d, left running: 0; grandchildren "
	       "started by tasks: %d, left running: 0\n",
	    d->seen.n, n_g);
	printf("ran in %.1f s\n", (double)(t_end - t0) / 1e6);
	printf("seed: %u\n", seed);
	printf("scheduler kills: %d (kill -9, then a new scheduler on the "
	       "same journal; %d planned)\n",
	    d->n_rs, SCHED_KILLS);
	printf("worker kills: %d (kill -9)\n", d->n_wk);
	if (d->n_rs > 0) {
		printf("recovery, kill -9 -> the new scheduler listening with "
		       "its journal restored: median %.0f ms, max %.0f ms\n",
		    ms_of(rec[d->n_rs / 2]), ms_of(rec[d->n_rs - 1]));
		printf("kill -9 -> tasks starting again (restore wait 1000 "
		       "ms): median %.0f ms, max %.0f ms\n",
		    ms_of(res[d->n_rs / 2]), ms_of(res[d->n_rs - 1]));
	}
	printf("tasks run more than once: %" PRIu64 " (%" PRIu64
	       " extra runs): %" PRIu64 " re-run because their worker was "
	       "gone (%" PRIu64 " killed by the test), %" PRIu64
	       " re-run after a scheduler restart, %" PRIu64 " other\n",
	    rr.tasks, rr.extra, rr.gone, rr.killed, rr.restart, rr.other);
	free(rec);
	free(res);
	if (d->n_rs < MIN_SCHED_KILLS)
		fail_msg("only %d scheduler kill(s) before the tasks finished "
		         "(at least %d wanted)",
		    d->n_rs, MIN_SCHED_KILLS);
	assert_true(d->n_wk >= 1);
	free(d);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_faults_restart),
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
