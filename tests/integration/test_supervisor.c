/*
 * test_supervisor.c - the worker side of failure handling, end to end:
 * a real scheduler, a real `ferry worker` supervisor and its processes,
 * driven through the client API.
 *
 * What a user relies on: a task past its timeout is stopped (its process
 * killed and replaced) and fails with a timed-out reason, while a task
 * that merely shared the process runs again; a process over its memory
 * limit is killed with a memory reason; processes are recycled after N
 * tasks without losing any; a running task that is cancelled is stopped;
 * a process killed from outside is reported with its cause; and the
 * supervisor keeps supervising while the scheduler is away.
 *
 * Tasks that break their worker process (from the fault-injection task
 * library, fi_tasks.c): one that calls exit() with any status, 0 and the
 * statuses the worker itself uses included, or closes its process's
 * descriptors and returns, is charged for each process it ends and is
 * quarantined (dead) after three, while the tasks around it complete; the
 * processes a task starts go with its worker process when it crashes,
 * exits, times out, is cancelled, is recycled, or the supervisor stops,
 * even if they left its process group.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fi_log.h"
#include "ferry/ferry.h"
#include "harness.h"
#include "util.h"

/* The fault-injection task library and the start records it writes. */
static const char *g_fi_lib;
static char        g_fi_log[512];

/* Grandchildren the tests' tasks started (stopped at teardown, by pid, if
 * a test failed before they were gone). */
static pid_t g_grand[64];
static int   g_n_grand;

static int
teardown(void **state)
{
	h_teardown(state);
	for (int i = 0; i < g_n_grand; i++)
		if (h_is_sleep(g_grand[i]))
			kill(g_grand[i], SIGKILL);
	g_n_grand = 0;
	return 0;
}

/* The running test's scheduler and supervisor, and the supervisor's
 * log. */
static pid_t g_sched, g_sup;
static char  g_log[64];

/* Start a supervisor with n processes of both task libraries on url,
 * logging to its own file (workers-NAME). */
static pid_t
workers(const char *name, const char *url, int n, const char *const *extra)
{
	const char *libs[] = { "ferry_examples", g_fi_lib, NULL };
	snprintf(g_log, sizeof(g_log), "workers-%s", name);
	return h_start_workers(g_log, url, n, libs, extra);
}

/* What cluster() waits for: the worker processes, or also the
 * supervisor itself (its reports charge the tasks that end processes,
 * and the scheduler's kill orders go to it). */
enum { PROCESSES, SUPERVISED };

/* A scheduler on a fresh address (into url, len bytes) and a supervisor
 * of n processes (as workers()), their pids in g_sched and g_sup;
 * returns a client that has seen all n register and, with SUPERVISED,
 * the supervisor too. */
static ferry_client *
cluster(const char *name, char *url, size_t len, int n,
    const char *const *extra, int wait_for)
{
	ferry_client *c;
	h_ipc_url(url, len, name);
	g_sched = h_scheduler(url, NULL);
	g_sup   = workers(name, url, n, extra);
	assert_non_null(c = h_connect(url));
	assert_int_equal(h_wait_workers(c, (uint32_t)n, 10000), 0);
	if (wait_for == SUPERVISED)
		assert_int_equal(
		    h_wait_log(g_log, "as supervisor", 1, 10000), 0);
	return c;
}

/* The one worker process registered now (0 if not exactly one). */
static pid_t
only_worker(ferry_client *c)
{
	pid_t p[4];
	return h_worker_pids(c, p, 4) == 1 ? p[0] : 0;
}

/* Pids of the processes whose parent is ppid, up to max. */
static int
children_of(pid_t ppid, pid_t *out, int max)
{
	DIR           *d = opendir("/proc");
	struct dirent *e;
	int            n = 0;
	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL && n < max) {
		pid_t                 pid = (pid_t)atoi(e->d_name);
		struct util_proc_stat ps;
		if (util_proc_stat(pid, &ps) == 0 && ps.ppid == ppid &&
		    ps.state != 'Z')
			out[n++] = pid;
	}
	closedir(d);
	return n;
}

/* A task past its hard timeout: its process is killed and replaced, the
 * task is retried and then fails as timed out; a task that ran beside it
 * in the same process is not charged and runs again. */
static void
test_timeout(void **state)
{
	char                   url[128];
	const char            *extra[] = { "--slots", "2", NULL };
	ferry_client          *c;
	ferry_future          *slow, *side;
	struct ferry_task_opts to, plain;
	pid_t                  p0;
	(void)state;

	c = cluster("timeout", url, sizeof(url), 1, extra, PROCESSES);
	assert_true((p0 = only_worker(c)) > 0);

	ferry_task_opts_init(&to);
	to.timeout_ms = 1000;
	to.retries    = 1;
	to.backoff_ms = 10;
	ferry_task_opts_init(&plain);
	plain.retries = 0; /* a bystander is not charged: no retry needed */
	slow = h_submit(c, "sleep_ms", 1, 60000, 0, &to);
	side = h_submit(c, "sleep_ms", 1, 2500, 0, &plain);

	assert_int_equal(ferry_future_wait(slow, 60000), 0);
	assert_int_equal(ferry_future_state(slow), FERRY_FAILED);
	assert_int_equal(ferry_future_errcode(slow), FERRY_ETIMEDOUT);
	assert_int_equal(ferry_future_attempts(slow), 2);
	assert_non_null(strstr(ferry_future_error(slow), "timeout of 1000 ms"));

	/* the bystander ran again and finished */
	assert_int_equal(ferry_future_wait(side, 60000), 0);
	assert_int_equal(ferry_future_state(side), FERRY_DONE);
	assert_true(ferry_future_attempts(side) >= 2);

	/* the process was replaced, and the new one works */
	assert_int_equal(h_wait_replaced(c, p0, 1, 20000), 0);
	assert_false(h_alive(p0));
	assert_int_equal(
	    h_wait_log(g_log, "ran past its timeout of 1000 ms", 2, 10000), 0);
	h_expect_square(c, 12);
	ferry_future_free(slow);
	ferry_future_free(side);
	ferry_client_close(c);
}

/* A task that allocates past the group's memory limit: its process is
 * killed with a memory reason and replaced; a task under the limit
 * succeeds. */
static void
test_memory_limit(void **state)
{
	char                   url[128];
	const char            *extra[] = { "--memory-limit", "128MiB", NULL };
	ferry_client          *c;
	ferry_future          *big, *small;
	struct ferry_task_opts once;
	const void            *data;
	size_t                 len;
	uint64_t               v;
	pid_t                  p0;
	(void)state;

	c = cluster("memory", url, sizeof(url), 1, extra, PROCESSES);
	assert_true((p0 = only_worker(c)) > 0);

	ferry_task_opts_init(&once);
	once.retries = 0;
	small = h_submit(c, "hog", 2, 16, 0, &once);
	assert_int_equal(ferry_future_wait(small, 30000), 0);
	assert_int_equal(ferry_future_result(small, &data, &len), 0);
	assert_int_equal(h_unpack_uint(data, len, &v), 0);
	assert_int_equal(v, 16);
	assert_int_equal(only_worker(c), p0);

	/* 1 GiB in 16 MiB steps, 50 ms apart: the supervisor (which looks
	 * every 100 ms) stops it long before the end */
	big = h_submit(c, "hog", 2, 1024, 50, &once);
	assert_int_equal(ferry_future_wait(big, 60000), 0);
	assert_int_equal(ferry_future_state(big), FERRY_FAILED);
	assert_int_equal(ferry_future_errcode(big), FERRY_EMEMORY);
	assert_non_null(strstr(ferry_future_error(big), "anonymous memory"));
	assert_non_null(strstr(ferry_future_error(big), "limit of 128 MiB"));
	assert_int_equal(h_wait_replaced(c, p0, 1, 20000), 0);
	assert_int_equal(
	    h_wait_log(g_log, "over the limit of 128 MiB", 1, 10000), 0);
	h_expect_square(c, 7);
	ferry_future_free(small);
	ferry_future_free(big);
	ferry_client_close(c);
}

/* With max_tasks_per_process 5 (from the cluster file), 20 tasks are
 * spread over at least 4 processes, every one of them answered once. */
static void
test_recycle(void **state)
{
	char           url[128], conf[512];
	const char    *args[] = { "worker", "-f", conf, NULL };
	ferry_client  *c;
	ferry_future  *futs[20];
	pid_t          seen[20];
	int            n_seen = 0;
	(void)state;

	h_ipc_url(url, sizeof(url), "recycle");
	snprintf(conf, sizeof(conf), "%s/recycle.yaml", h_dir());
	h_write_file(conf, 0644,
	    "scheduler:\n"
	    "  listen: [\"%s\"]\n"
	    "workers:\n"
	    "  - name: default\n"
	    "    processes: 1\n"
	    "    max_tasks_per_process: 5\n"
	    "    libraries: [ferry_examples]\n",
	    url);
	h_scheduler(url, NULL);
	snprintf(g_log, sizeof(g_log), "workers-recycle");
	h_start(g_log, args);
	assert_non_null(c = h_connect(url));
	assert_int_equal(h_wait_workers(c, 1, 10000), 0);

	for (int i = 0; i < 20; i++)
		assert_int_equal(ferry_submit(c, "pid", NULL, 0, &futs[i]), 0);
	assert_int_equal(ferry_wait_all(futs, 20, 60000), 0);
	for (int i = 0; i < 20; i++) {
		const void *data;
		size_t      len;
		uint64_t    v;
		int         known = 0;
		assert_int_equal(ferry_future_result(futs[i], &data, &len), 0);
		assert_int_equal(ferry_future_attempts(futs[i]), 1);
		assert_int_equal(h_unpack_uint(data, len, &v), 0);
		for (int j = 0; j < n_seen; j++)
			known |= seen[j] == (pid_t)v;
		if (!known)
			seen[n_seen++] = (pid_t)v;
		ferry_future_free(futs[i]);
	}
	/* one process, five tasks each */
	assert_true(n_seen >= 4);
	assert_int_equal(h_status_uint(c, "done"), 20);
	assert_int_equal(h_status_uint(c, "failed"), 0);
	assert_int_equal(
	    h_wait_log(g_log, "recycled (max tasks per process)", 3, 10000),
	    0);
	ferry_client_close(c);
}

/* Cancelling a running task kills its process (a task not yet started
 * there is skipped); the process is replaced at once. */
static void
test_cancel_running(void **state)
{
	char          url[128];
	ferry_client *c;
	ferry_future *f;
	pid_t         p0;
	(void)state;

	/* the kill order goes to the supervisor */
	c = cluster("cancel", url, sizeof(url), 1, NULL, SUPERVISED);
	assert_true((p0 = only_worker(c)) > 0);

	f = h_submit(c, "sleep_ms", 1, 60000, 0, NULL);
	assert_int_equal(h_wait_status(c, "busy", 1, 10000), 0);
	usleep(200000); /* from the worker's queue into its slot */
	assert_int_equal(ferry_cancel(f), 0);
	assert_int_equal(ferry_future_wait(f, 10000), 0);
	assert_int_equal(ferry_future_state(f), FERRY_CANCELLED);
	assert_int_equal(
	    h_wait_log(g_log, "was cancelled while running", 1, 10000), 0);
	assert_int_equal(h_wait_replaced(c, p0, 1, 10000), 0);
	assert_false(h_alive(p0));
	h_expect_square(c, 3);
	ferry_future_free(f);
	ferry_client_close(c);
}

/* A task cancelled while it waits in a worker process's queue is skipped
 * there when its turn comes: the process is not killed. */
static void
test_cancel_queued(void **state)
{
	char          url[128];
	const char   *extra[] = { "--log-level", "debug", NULL };
	ferry_client *c;
	ferry_future *a, *b;
	pid_t         p0;
	(void)state;

	c = cluster("cancelq", url, sizeof(url), 1, extra, PROCESSES);
	assert_true((p0 = only_worker(c)) > 0);

	a = h_submit(c, "sleep_ms", 1, 1500, 0, NULL);
	b = h_submit(c, "sleep_ms", 1, 60000, 0, NULL);
	/* both held by the one process: a runs, b waits behind it */
	assert_int_equal(h_wait_status(c, "busy", 2, 10000), 0);
	assert_int_equal(ferry_cancel(b), 0);
	assert_int_equal(ferry_future_wait(b, 10000), 0);
	assert_int_equal(ferry_future_state(b), FERRY_CANCELLED);
	assert_int_equal(ferry_future_wait(a, 30000), 0);
	assert_int_equal(ferry_future_state(a), FERRY_DONE);
	assert_int_equal(
	    h_wait_log(g_log, "was cancelled: skipped", 1, 10000), 0);
	assert_int_equal(h_log_count(g_log, "cancelled while running"), 0);
	assert_int_equal(only_worker(c), p0);
	h_expect_square(c, 4);
	ferry_future_free(a);
	ferry_future_free(b);
	ferry_client_close(c);
}

/* A process killed from outside (kill -9) is reported as such: with no
 * retries its task fails, and the reason says what a SIGKILL means. */
static void
test_kill9_reported(void **state)
{
	char                   url[128];
	ferry_client          *c;
	ferry_future          *f;
	struct ferry_task_opts once;
	pid_t                  p0;
	(void)state;

	/* its report says what a SIGKILL means */
	c = cluster("kill9", url, sizeof(url), 1, NULL, SUPERVISED);
	assert_true((p0 = only_worker(c)) > 0);

	ferry_task_opts_init(&once);
	once.retries = 0;
	f = h_submit(c, "sleep_ms", 1, 60000, 0, &once);
	h_wait_status(c, "busy", 1, 10000);
	usleep(200000);
	assert_int_equal(kill(p0, SIGKILL), 0);
	assert_int_equal(ferry_future_wait(f, 20000), 0);
	assert_int_equal(ferry_future_state(f), FERRY_FAILED);
	assert_int_equal(ferry_future_errcode(f), FERRY_ECRASHED);
	assert_non_null(strstr(ferry_future_error(f), "kill -9"));
	assert_int_equal(h_wait_replaced(c, p0, 1, 10000), 0);
	ferry_future_free(f);
	ferry_client_close(c);
}

/* Without the scheduler the supervisor still restarts processes (whose
 * log says how long they waited for an answer); once the scheduler is
 * back it registers again and delivers what it queued. */
static void
test_scheduler_away(void **state)
{
	char          url[128];
	ferry_client *c;
	pid_t         kids[8], again[8];
	int           n;
	uint64_t      end;
	(void)state;

	c = cluster("away", url, sizeof(url), 1, NULL, SUPERVISED);
	ferry_client_close(c);

	h_stop(g_sched, 5000);
	assert_int_equal(h_wait_log(g_log,
	                     "lost the connection to the scheduler", 1, 10000),
	    0);
	/* its process gives up on a hello after a reconnect in 3 s (not the
	 * 10 s connect timeout), and says so; it is restarted */
	assert_int_equal(h_wait_log(g_log, "within 3000 ms", 1, 20000), 0);
	end = util_now_ms() + 10000;
	while (children_of(g_sup, kids, 8) != 1 && util_now_ms() < end)
		usleep(20000);
	assert_int_equal(children_of(g_sup, kids, 8), 1);
	assert_int_equal(kill(kids[0], SIGKILL), 0);
	/* replaced although nobody can be told */
	end = util_now_ms() + 10000;
	do {
		usleep(20000);
		n = children_of(g_sup, again, 8);
	} while ((n != 1 || again[0] == kids[0]) && util_now_ms() < end);
	assert_int_equal(n, 1);
	assert_true(again[0] != kids[0]);

	h_scheduler(url, NULL);
	assert_non_null(c = h_connect(url));
	assert_int_equal(h_wait_log(g_log, "as supervisor", 2, 20000), 0);
	assert_int_equal(
	    h_wait_log(g_log, "sending queued reports", 1, 1000), 0);
	assert_int_equal(h_wait_workers(c, 1, 20000), 0);
	h_expect_square(c, 5);
	ferry_client_close(c);
}

/* ------------------------------------- tasks that break their process */

static uint64_t g_seq = 1000; /* the next fi task's sequence number */

/* Submit fi function fn with [seq, b] and options; *seq gets the
 * sequence number its records carry. */
static ferry_future *
submit_fi(ferry_client *c, const char *fn, uint64_t b,
    const struct ferry_task_opts *o, uint64_t *seq)
{
	*seq = g_seq++;
	return h_submit(c, fn, 2, *seq, b, o);
}

/* The pid of the grandchild the fi_fork task seq started (from its
 * record), waiting for it up to timeout_ms; 0 if none. */
static pid_t
grandchild(uint64_t seq, int timeout_ms)
{
	uint64_t end = util_now_ms() + (uint64_t)timeout_ms;
	do {
		struct fi_record r;
		pid_t            pid = 0;
		int              fd  = open(g_fi_log, O_RDONLY);
		if (fd >= 0) {
			while (read(fd, &r, sizeof(r)) == (ssize_t)sizeof(r))
				if (r.seq == (FI_CHILD | seq))
					pid = (pid_t)r.pid;
			close(fd);
		}
		if (pid > 0) {
			if (g_n_grand < 64)
				g_grand[g_n_grand++] = pid;
			return pid;
		}
		usleep(20000);
	} while (util_now_ms() < end);
	fprintf(stderr, "task %" PRIu64 " logged no grandchild\n", seq);
	return 0;
}

/* Two fi_fork tasks that return, one leaving its grandchild in the
 * process group and one not (setsid), submitted together: both done;
 * their grandchildren's pids into g. */
static void
fork_two(ferry_client *c, pid_t g[2])
{
	ferry_future *f[2];
	uint64_t      seq[2];
	f[0] = submit_fi(c, "fi_fork", 0, NULL, &seq[0]);
	f[1] = submit_fi(c, "fi_fork", FI_FORK_SETSID, NULL, &seq[1]);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(ferry_future_wait(f[i], 30000), 0);
		assert_int_equal(ferry_future_state(f[i]), FERRY_DONE);
		assert_true((g[i] = grandchild(seq[i], 10000)) > 0);
		ferry_future_free(f[i]);
	}
}

/* Submit n squares (1..n) and return their futures. */
static ferry_future **
submit_squares(ferry_client *c, int n)
{
	ferry_future **f = calloc((size_t)n, sizeof(*f));
	assert_non_null(f);
	for (int i = 0; i < n; i++)
		f[i] = h_submit(c, "square", 1, (uint64_t)i + 1, 0, NULL);
	return f;
}

/* Every square done, correct, and freed. */
static void
check_squares(ferry_future **f, int n)
{
	assert_int_equal(ferry_wait_all(f, (size_t)n, 60000), 0);
	for (int i = 0; i < n; i++) {
		const void *data;
		size_t      len;
		uint64_t    v;
		assert_int_equal(ferry_future_state(f[i]), FERRY_DONE);
		assert_int_equal(ferry_future_result(f[i], &data, &len), 0);
		assert_int_equal(h_unpack_uint(data, len, &v), 0);
		assert_int_equal(v, (uint64_t)(i + 1) * (uint64_t)(i + 1));
		ferry_future_free(f[i]);
	}
	free(f);
}

/* f ended dead after 3 runs (quarantine_after), each reason with text. */
static void
expect_dead(ferry_future *f, const char *text)
{
	const char *why;
	assert_int_equal(ferry_future_wait(f, 60000), 0);
	why = ferry_future_error(f);
	if (ferry_future_state(f) != FERRY_DEAD || why == NULL ||
	    strstr(why, text) == NULL)
		fail_msg("expected dead with '%s'; state %d, error %s", text,
		    ferry_future_state(f), why != NULL ? why : "-");
	assert_int_equal(ferry_future_errcode(f), FERRY_EDEAD);
	assert_int_equal(ferry_future_attempts(f), 3);
	assert_non_null(strstr(why, "quarantined"));
}

/* A task that calls exit() ends its process with that status, whatever it
 * is -- 0, or one the worker itself uses (2: cannot start, 3: lost the
 * scheduler, 4: a crash already reported, 5: recycled) -- and is charged
 * each time: dead after 3 runs, with the status in its reason.  Tasks
 * around it complete, and the supervisor (which stops on a worker's own
 * status 2) keeps its processes running. */
static void
test_exit_any_status(void **state)
{
	static const int       st[] = { 0, 1, 2, 3, 4, 5 };
	enum { N = sizeof(st) / sizeof(st[0]), SQ = 60 };
	char                   url[128], text[64];
	ferry_client          *c;
	ferry_future          *f[N], **sq;
	struct ferry_task_opts fast;
	uint64_t               seq;
	(void)state;

	c = cluster("exits", url, sizeof(url), 2, NULL, SUPERVISED);

	ferry_task_opts_init(&fast);
	fast.backoff_ms = 10;
	for (int i = 0; i < N; i++)
		f[i] = submit_fi(c, "fi_exit", (uint64_t)st[i], &fast, &seq);
	sq = submit_squares(c, SQ);
	for (int i = 0; i < N; i++) {
		snprintf(text, sizeof(text),
		    "exit status %d while the task ran", st[i]);
		expect_dead(f[i], text);
		ferry_future_free(f[i]);
	}
	check_squares(sq, SQ);
	assert_int_equal(h_status_uint(c, "dead"), N);
	assert_true(h_alive(g_sup));
	assert_int_equal(h_wait_workers(c, 2, 20000), 0);
	h_expect_square(c, 9);
	ferry_client_close(c);
}

/* A task that closes descriptors 0-1023 and returns breaks its process,
 * which finds its descriptors gone and aborts: that death is charged to
 * the task (dead after 3), not to a task that ran before or after it, and
 * the others complete. */
static void
test_close_fds(void **state)
{
	enum { SQ = 60 };
	char                   url[128];
	ferry_client          *c;
	ferry_future          *f, **sq;
	struct ferry_task_opts fast;
	uint64_t               seq;
	(void)state;

	c = cluster("closefds", url, sizeof(url), 2, NULL, SUPERVISED);

	ferry_task_opts_init(&fast);
	fast.backoff_ms = 10;
	sq = submit_squares(c, SQ / 2);
	f  = submit_fi(c, "fi_close_fds", 0, &fast, &seq);
	check_squares(sq, SQ / 2);
	sq = submit_squares(c, SQ);
	expect_dead(f, "its descriptors were closed under it");
	check_squares(sq, SQ);
	assert_int_equal(h_status_uint(c, "dead"), 1);
	assert_int_equal(h_wait_workers(c, 2, 20000), 0);
	ferry_future_free(f);
	ferry_client_close(c);
}

/* A task forks a `sleep 1000` grandchild, then crashes or calls exit(0):
 * the grandchild goes with the worker process, also when it had left the
 * process group (setsid). */
static void
test_grandchild_of_crash(void **state)
{
	static const uint64_t  how[] = { FI_FORK_CRASH,
		 FI_FORK_CRASH | FI_FORK_SETSID, FI_FORK_EXIT,
		 FI_FORK_EXIT | FI_FORK_SETSID };
	char                   url[128];
	ferry_client          *c;
	struct ferry_task_opts once;
	(void)state;

	c = cluster("forkcrash", url, sizeof(url), 1, NULL, SUPERVISED);

	ferry_task_opts_init(&once);
	once.retries = 0;
	for (size_t i = 0; i < sizeof(how) / sizeof(how[0]); i++) {
		uint64_t      seq;
		ferry_future *f = submit_fi(c, "fi_fork", how[i], &once, &seq);
		pid_t         g;
		assert_int_equal(ferry_future_wait(f, 30000), 0);
		assert_int_equal(ferry_future_state(f), FERRY_FAILED);
		assert_int_equal(ferry_future_errcode(f), FERRY_ECRASHED);
		assert_non_null(strstr(ferry_future_error(f),
		    (how[i] & FI_FORK_CRASH) ? "SIGSEGV" : "exit status 0"));
		assert_true((g = grandchild(seq, 10000)) > 0);
		assert_int_equal(h_wait_gone(g, 10000), 0);
		ferry_future_free(f);
	}
	assert_int_equal(h_wait_workers(c, 1, 20000), 0);
	h_expect_square(c, 6);
	ferry_client_close(c);
}

/* A task forks a grandchild and hangs: when the supervisor kills its
 * process for the timeout, or to stop the task when it is cancelled, the
 * grandchild goes too. */
static void
test_grandchild_of_timeout_cancel(void **state)
{
	char                   url[128];
	ferry_client          *c;
	ferry_future          *f;
	struct ferry_task_opts to;
	uint64_t               seq;
	pid_t                  g;
	(void)state;

	c = cluster("forkhang", url, sizeof(url), 1, NULL, SUPERVISED);

	ferry_task_opts_init(&to);
	to.retries    = 0;
	to.timeout_ms = 1000;
	f = submit_fi(c, "fi_fork", FI_FORK_HANG | FI_FORK_SETSID, &to, &seq);
	assert_true((g = grandchild(seq, 10000)) > 0);
	assert_int_equal(ferry_future_wait(f, 30000), 0);
	assert_int_equal(ferry_future_errcode(f), FERRY_ETIMEDOUT);
	assert_int_equal(h_wait_gone(g, 10000), 0);
	ferry_future_free(f);

	assert_int_equal(h_wait_workers(c, 1, 20000), 0);
	f = submit_fi(c, "fi_fork", FI_FORK_HANG, NULL, &seq);
	assert_true((g = grandchild(seq, 10000)) > 0);
	assert_int_equal(ferry_cancel(f), 0);
	assert_int_equal(ferry_future_wait(f, 10000), 0);
	assert_int_equal(ferry_future_state(f), FERRY_CANCELLED);
	assert_int_equal(h_wait_gone(g, 10000), 0);
	ferry_future_free(f);
	ferry_client_close(c);
}

/* Tasks fork grandchildren and return; when their process is recycled
 * (max tasks), the grandchildren go with it. */
static void
test_grandchild_of_recycled(void **state)
{
	char          url[128];
	const char   *extra[] = { "--max-tasks", "2", NULL };
	ferry_client *c;
	pid_t         g[2];
	(void)state;

	c = cluster("forkrecycle", url, sizeof(url), 1, extra, SUPERVISED);
	fork_two(c, g);
	assert_int_equal(
	    h_wait_log(g_log, "recycled (max tasks per process)", 1, 20000),
	    0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(h_wait_gone(g[i], 10000), 0);
	ferry_client_close(c);
}

/* `ferry worker` stopped with SIGTERM leaves nothing behind: its worker
 * processes and the grandchildren its tasks started (in their process
 * group or not) are gone once it has exited. */
static void
test_stop_leaves_nothing(void **state)
{
	char          url[128];
	ferry_client *c;
	pid_t         g[2], kids[8];
	int           n_kids;
	(void)state;

	c = cluster("stop", url, sizeof(url), 2, NULL, PROCESSES);
	fork_two(c, g);
	for (int i = 0; i < 2; i++)
		assert_true(h_alive(g[i]));
	n_kids = children_of(g_sup, kids, 8);
	assert_true(n_kids >= 2);

	/* SIGTERM, and nothing else: what goes, the supervisor stopped */
	assert_int_equal(kill(g_sup, SIGTERM), 0);
	assert_int_equal(h_wait_gone(g_sup, 30000), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(h_wait_gone(g[i], 5000), 0);
	for (int i = 0; i < n_kids; i++)
		assert_int_equal(h_wait_gone(kids[i], 5000), 0);
	ferry_client_close(c);
}

/* `ferry worker` killed with kill -9 cannot clean up: its worker processes
 * then stop their own process groups as they exit, so what their tasks
 * started in them goes too. */
static void
test_kill9_supervisor(void **state)
{
	char          url[128];
	ferry_client *c;
	ferry_future *f;
	uint64_t      seq;
	pid_t         g, kids[8];
	(void)state;

	c = cluster("kill9sup", url, sizeof(url), 1, NULL, PROCESSES);

	f = submit_fi(c, "fi_fork", 0, NULL, &seq);
	assert_int_equal(ferry_future_wait(f, 30000), 0);
	assert_int_equal(ferry_future_state(f), FERRY_DONE);
	assert_true((g = grandchild(seq, 10000)) > 0);
	ferry_future_free(f);
	assert_int_equal(children_of(g_sup, kids, 8), 1);

	assert_int_equal(kill(g_sup, SIGKILL), 0);
	assert_int_equal(h_wait_gone(g_sup, 10000), 0);
	/* the worker process drains (nothing runs) and exits, taking its
	 * group along */
	assert_int_equal(h_wait_gone(kids[0], 20000), 0);
	assert_int_equal(h_wait_gone(g, 5000), 0);
	ferry_client_close(c);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_timeout, teardown),
		cmocka_unit_test_teardown(test_memory_limit, teardown),
		cmocka_unit_test_teardown(test_recycle, teardown),
		cmocka_unit_test_teardown(test_cancel_running, teardown),
		cmocka_unit_test_teardown(test_cancel_queued, teardown),
		cmocka_unit_test_teardown(test_kill9_reported, teardown),
		cmocka_unit_test_teardown(test_scheduler_away, teardown),
		cmocka_unit_test_teardown(test_exit_any_status, teardown),
		cmocka_unit_test_teardown(test_close_fds, teardown),
		cmocka_unit_test_teardown(test_grandchild_of_crash, teardown),
		cmocka_unit_test_teardown(test_grandchild_of_timeout_cancel,
		    teardown),
		cmocka_unit_test_teardown(test_grandchild_of_recycled,
		    teardown),
		cmocka_unit_test_teardown(test_stop_leaves_nothing, teardown),
		cmocka_unit_test_teardown(test_kill9_supervisor, teardown),
	};
	h_init(argc, argv);
	g_fi_lib = h_fi_lib(argc, argv);
	/* the start records of fi tasks (grandchildren's pids) */
	snprintf(g_fi_log, sizeof(g_fi_log), "%s/fi-starts.bin", h_dir());
	setenv("FERRY_FI_LOG", g_fi_log, 1);
	return H_RUN_TESTS(tests, NULL);
}
