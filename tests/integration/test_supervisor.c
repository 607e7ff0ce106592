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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "fi_log.h"
#include "ferry/ferry.h"
#include "harness.h"

/* The fault-injection task library and the start records it writes. */
static const char *g_fi_lib;
static char        g_fi_log[512];

/* Grandchildren the tests' tasks started (stopped at teardown, by pid, if
 * a test failed before they were gone). */
static pid_t g_grand[64];
static int   g_n_grand;

static uint64_t
ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Whether pid is alive and runs `sleep` (a grandchild of ours, not a
 * process that took its pid since). */
static int
is_sleep(pid_t pid)
{
	char  path[64], cmd[64];
	FILE *f;
	int   yes = 0;
	if (!h_alive(pid))
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	yes = fgets(cmd, sizeof(cmd), f) != NULL && strcmp(cmd, "sleep") == 0;
	fclose(f);
	return yes;
}

static int
teardown(void **state)
{
	(void)state;
	h_cleanup();
	for (int i = 0; i < g_n_grand; i++)
		if (is_sleep(g_grand[i]))
			kill(g_grand[i], SIGKILL);
	g_n_grand = 0;
	return 0;
}

/* Pack [a] or [a, b] into buf (at least 32 bytes); returns the length. */
static size_t
pack2(uint8_t *buf, int n, uint64_t a, uint64_t b)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	size_t          len;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, (size_t)n);
	msgpack_pack_uint64(&pk, a);
	if (n > 1)
		msgpack_pack_uint64(&pk, b);
	memcpy(buf, sb.data, sb.size);
	len = sb.size;
	msgpack_sbuffer_destroy(&sb);
	return len;
}

/* Submit fn with [a] (n 1) or [a, b] (n 2) and options. */
static ferry_future *
submit(ferry_client *c, const char *fn, int n, uint64_t a, uint64_t b,
    const struct ferry_task_opts *o)
{
	uint8_t       buf[32];
	size_t        len = pack2(buf, n, a, b);
	ferry_future *f   = NULL;
	assert_int_equal(ferry_submit_opts(c, fn, buf, len, o, &f), 0);
	return f;
}

/* The supervisor's log of the running test. */
static char g_log[64];

/* Start a supervisor with n processes on url, logging to its own file. */
static pid_t
workers(const char *name, const char *url, int n, const char *const *extra)
{
	const char *args[32];
	char        num[16];
	int         k = 0;
	snprintf(g_log, sizeof(g_log), "workers-%s", name);
	snprintf(num, sizeof(num), "%d", n);
	args[k++] = "worker";
	args[k++] = "--connect";
	args[k++] = url;
	args[k++] = "--processes";
	args[k++] = num;
	args[k++] = "--library";
	args[k++] = "ferry_examples";
	args[k++] = "--library";
	args[k++] = g_fi_lib;
	for (int i = 0; extra != NULL && extra[i] != NULL && k < 31; i++)
		args[k++] = extra[i];
	args[k] = NULL;
	return h_start(g_log, args);
}

/* How many times text occurs in the supervisor's log. */
static int
log_count(const char *text)
{
	char  path[512], line[2048];
	FILE *f;
	int   n = 0;
	snprintf(path, sizeof(path), "%s/%s.log", h_dir(), g_log);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, text) != NULL)
			n++;
	fclose(f);
	return n;
}

/* Wait (bounded) until text occurs at least n times in the log. */
static int
wait_log(const char *text, int n, int timeout_ms)
{
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
	while (ms_now() < end) {
		if (log_count(text) >= n)
			return 0;
		usleep(20000);
	}
	fprintf(stderr, "log never said '%s' %d time(s)\n", text, n);
	return -1;
}

/* The one worker process registered now (0 if not exactly one). */
static pid_t
only_worker(ferry_client *c)
{
	pid_t p[4];
	return h_worker_pids(c, p, 4) == 1 ? p[0] : 0;
}

/* Wait (bounded) until the one registered worker process is not old. */
static pid_t
wait_replaced(ferry_client *c, pid_t old, int timeout_ms)
{
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
	while (ms_now() < end) {
		pid_t p = only_worker(c);
		if (p > 0 && p != old)
			return p;
		usleep(20000);
	}
	return 0;
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
		char  path[300];
		FILE *f;
		int   pid, pp;
		char  st;
		if ((pid = atoi(e->d_name)) <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		/* the command name may hold spaces: skip to its ')' */
		if (fscanf(f, "%*d (%*[^)]) %c %d", &st, &pp) == 2 &&
		    pp == (int)ppid && st != 'Z')
			out[n++] = pid;
		fclose(f);
	}
	closedir(d);
	return n;
}

static void
expect_square(ferry_client *c, uint64_t i)
{
	uint8_t       buf[32];
	size_t        len = pack2(buf, 1, i, 0);
	ferry_future *f;
	const void   *data;
	size_t        n;
	uint64_t      v;
	assert_int_equal(ferry_submit(c, "square", buf, len, &f), 0);
	assert_int_equal(ferry_future_wait(f, 30000), 0);
	assert_int_equal(ferry_future_result(f, &data, &n), 0);
	assert_int_equal(h_unpack_uint(data, n, &v), 0);
	assert_int_equal(v, i * i);
	ferry_future_free(f);
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
	pid_t                  p0, p1;
	(void)state;

	h_ipc_url(url, sizeof(url), "timeout");
	h_scheduler(url, NULL);
	workers("timeout", url, 1, extra);
	assert_non_null(c = h_connect(url));
	assert_int_equal(h_wait_workers(c, 1, 10000), 0);
	assert_true((p0 = only_worker(c)) > 0);

	ferry_task_opts_init(&to);
	to.timeout_ms = 1000;
	to.retries    = 1;
	to.backoff_ms = 10;
	ferry_task_opts_init(&plain);
	plain.retries = 0; /* a bystander is not charged: no retry needed */
	slow = submit(c, "sleep_ms", 1, 60000, 0, &to);
	side = submit(c, "sleep_ms", 1, 2500, 0, &plain);

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
	assert_true((p1 = wait_replaced(c, p0, 20000)) > 0);
	assert_false(h_alive(p0));
	assert_int_equal(wait_log("ran past its timeout of 1000 ms", 2, 10000),
	    0);
	expect_square(c, 12);
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

	h_ipc_url(url, sizeof(url), "memory");
	h_scheduler(url, NULL);
	workers("memory", url, 1, extra);
	assert_non_null(c = h_connect(url));
	assert_int_equal(h_wait_workers(c, 1, 10000), 0);
	assert_true((p0 = only_worker(c)) > 0);

	ferry_task_opts_init(&once);
	once.retries = 0;
	small = submit(c, "hog", 2, 16, 0, &once);
	assert_int_equal(ferry_future_wait(small, 30000), 0);
	assert_int_equal(ferry_future_result(small, &data, &len), 0);
	assert_int_equal(h_unpack_uint(data, len, &v), 0);
	assert_int_equal(v, 16);
	assert_int_equal(only_worker(c), p0);

	/* 1 GiB in 16 MiB steps, 50 ms apart: the supervisor (which looks
	 * every 100 ms) stops it long before the end */
	big = submit(c, "hog", 2, 1024, 50, &once);
	assert_int_equal(ferry_future_wait(big, 60000), 0);
	assert_int_equal(ferry_future_state(big), FERRY_FAILED);
	assert_int_equal(ferry_future_errcode(big), FERRY_EMEMORY);
	assert_non_null(strstr(ferry_future_error(big), "anonymous memory"));
	assert_non_null(strstr(ferry_future_error(big), "limit of 128 MiB"));
	assert_true(wait_replaced(c, p0, 20000) > 0);
	assert_int_equal(wait_log("over the limit of 128 MiB", 1, 10000), 0);
	expect_square(c, 7);
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
	const char    *args[8];
	FILE          *f;
	ferry_client  *c;
	ferry_future  *futs[20];
	pid_t          seen[20];
	int            n_seen = 0;
	(void)state;

	h_ipc_url(url, sizeof(url), "recycle");
	snprintf(conf, sizeof(conf), "%s/recycle.yaml", h_dir());
	assert_non_null(f = fopen(conf, "w"));
	fprintf(f,
	    "scheduler:\n"
	    "  listen: [\"%s\"]\n"
	    "workers:\n"
	    "  - name: default\n"
	    "    processes: 1\n"
	    "    max_tasks_per_process: 5\n"
	    "    libraries: [ferry_examples]\n",
	    url);
	fclose(f);
	h_scheduler(url, NULL);
	args[0] = "worker";
	args[1] = "-f";
	args[2] = conf;
	args[3] = NULL;
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
	assert_int_equal(wait_log("recycled (max tasks per process)", 3, 10000),
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
	uint64_t      end;
	(void)state;

	h_ipc_url(url, sizeof(url), "cancel");
	h_scheduler(url, NULL);
	workers("cancel", url, 1, NULL);
	assert_non_null(c = h_connect(url));
	assert_int_equal(h_wait_workers(c, 1, 10000), 0);
	/* the kill order goes to the supervisor */
	assert_int_equal(wait_log("as supervisor", 1, 10000), 0);
	assert_true((p0 = only_worker(c)) > 0);

	f = submit(c, "sleep_ms", 1, 60000, 0, NULL);
	end = ms_now() + 10000;
	while (h_status_uint(c, "busy") != 1 && ms_now() < end)
		usleep(20000);
	assert_int_equal(h_status_uint(c, "busy"), 1);
	usleep(200000); /* from the worker's queue into its slot */
	assert_int_equal(ferry_cancel(f), 0);
	assert_int_equal(ferry_future_wait(f, 10000), 0);
	assert_int_equal(ferry_future_state(f), FERRY_CANCELLED);
	assert_int_equal(wait_log("was cancelled while running", 1, 10000), 0);
	assert_true(wait_replaced(c, p0, 10000) > 0);
	assert_false(h_alive(p0));
	expect_square(c, 3);
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
	uint64_t      end;
	(void)state;

	h_ipc_url(url, sizeof(url), "cancelq");
	h_scheduler(url, NULL);
	workers("cancelq", url, 1, extra);
	assert_non_null(c = h_connect(url));
	assert_int_equal(h_wait_workers(c, 1, 10000), 0);
	assert_true((p0 = only_worker(c)) > 0);

	a = submit(c, "sleep_ms", 1, 1500, 0, NULL);
	b = submit(c, "sleep_ms", 1, 60000, 0, NULL);
	/* both held by the one process: a runs, b waits behind it */
	end = ms_now() + 10000;
	while (h_status_uint(c, "busy") != 2 && ms_now() < end)
		usleep(20000);
	assert_int_equal(h_status_uint(c, "busy"), 2);
	assert_int_equal(ferry_cancel(b), 0);
	assert_int_equal(ferry_future_wait(b, 10000), 0);
	assert_int_equal(ferry_future_state(b), FERRY_CANCELLED);
	assert_int_equal(ferry_future_wait(a, 30000), 0);
	assert_int_equal(ferry_future_state(a), FERRY_DONE);
	assert_int_equal(wait_log("was cancelled: skipped", 1, 10000), 0);
	assert_int_equal(log_count("cancelled while running"), 0);
	assert_int_equal(only_worker(c), p0);
	expect_square(c, 4);
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
	uint64_t               end;
	(void)state;

	h_ipc_url(url, sizeof(url), "kill9");
	h_scheduler(url, NULL);
	workers("kill9", url, 1, NULL);
	assert_non_null(c = h_connect(url));
	assert_int_equal(h_wait_workers(c, 1, 10000), 0);
	/* its report says what a SIGKILL means */
	assert_int_equal(wait_log("as supervisor", 1, 10000), 0);
	assert_true((p0 = only_worker(c)) > 0);

	ferry_task_opts_init(&once);
	once.retries = 0;
	f = submit(c, "sleep_ms", 1, 60000, 0, &once);
	end = ms_now() + 10000;
	while (h_status_uint(c, "busy") != 1 && ms_now() < end)
		usleep(20000);
	usleep(200000);
	assert_int_equal(kill(p0, SIGKILL), 0);
	assert_int_equal(ferry_future_wait(f, 20000), 0);
	assert_int_equal(ferry_future_state(f), FERRY_FAILED);
	assert_int_equal(ferry_future_errcode(f), FERRY_ECRASHED);
	assert_non_null(strstr(ferry_future_error(f), "kill -9"));
	assert_true(wait_replaced(c, p0, 10000) > 0);
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
	pid_t         sched, sup, kids[8], again[8];
	int           n;
	uint64_t      end;
	(void)state;

	h_ipc_url(url, sizeof(url), "away");
	sched = h_scheduler(url, NULL);
	sup   = workers("away", url, 1, NULL);
	assert_non_null(c = h_connect(url));
	assert_int_equal(h_wait_workers(c, 1, 10000), 0);
	assert_int_equal(wait_log("as supervisor", 1, 10000), 0);
	ferry_client_close(c);

	h_stop(sched, 5000);
	assert_int_equal(wait_log("lost the connection to the scheduler", 1,
	                     10000),
	    0);
	/* its process gives up on a hello after a reconnect in 3 s (not the
	 * 10 s connect timeout), and says so; it is restarted */
	assert_int_equal(wait_log("within 3000 ms", 1, 20000), 0);
	end = ms_now() + 10000;
	while (children_of(sup, kids, 8) != 1 && ms_now() < end)
		usleep(20000);
	assert_int_equal(children_of(sup, kids, 8), 1);
	assert_int_equal(kill(kids[0], SIGKILL), 0);
	/* replaced although nobody can be told */
	end = ms_now() + 10000;
	do {
		usleep(20000);
		n = children_of(sup, again, 8);
	} while ((n != 1 || again[0] == kids[0]) && ms_now() < end);
	assert_int_equal(n, 1);
	assert_true(again[0] != kids[0]);

	h_scheduler(url, NULL);
	assert_non_null(c = h_connect(url));
	assert_int_equal(wait_log("as supervisor", 2, 20000), 0);
	assert_int_equal(wait_log("sending queued reports", 1, 1000), 0);
	assert_int_equal(h_wait_workers(c, 1, 20000), 0);
	expect_square(c, 5);
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
	return submit(c, fn, 2, *seq, b, o);
}

/* The pid of the grandchild the fi_fork task seq started (from its
 * record), waiting for it up to timeout_ms; 0 if none. */
static pid_t
grandchild(uint64_t seq, int timeout_ms)
{
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
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
	} while (ms_now() < end);
	fprintf(stderr, "task %" PRIu64 " logged no grandchild\n", seq);
	return 0;
}

/* Wait (bounded: the promise is "within about a second"; the bound is
 * generous for a loaded machine) until pid is gone. */
static int
wait_gone(pid_t pid, int timeout_ms)
{
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
	while (h_alive(pid)) {
		if (ms_now() >= end) {
			fprintf(stderr, "pid %d still alive\n", (int)pid);
			return -1;
		}
		usleep(10000);
	}
	return 0;
}

/* Submit n squares (1..n) and return their futures. */
static ferry_future **
submit_squares(ferry_client *c, int n)
{
	ferry_future **f = calloc((size_t)n, sizeof(*f));
	assert_non_null(f);
	for (int i = 0; i < n; i++)
		f[i] = submit(c, "square", 1, (uint64_t)i + 1, 0, NULL);
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
	pid_t                  sup;
	(void)state;

	h_ipc_url(url, sizeof(url), "exits");
	h_scheduler(url, NULL);
	sup = workers("exits", url, 2, NULL);
	assert_non_null(c = h_connect(url));
	assert_int_equal(h_wait_workers(c, 2, 10000), 0);
	/* its reports charge the tasks that end processes */
	assert_int_equal(wait_log("as supervisor", 1, 10000), 0);

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
	assert_true(h_alive(sup));
	assert_int_equal(h_wait_workers(c, 2, 20000), 0);
	expect_square(c, 9);
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

	h_ipc_url(url, sizeof(url), "closefds");
	h_scheduler(url, NULL);
	workers("closefds", url, 2, NULL);
	assert_non_null(c = h_connect(url));
	assert_int_equal(h_wait_workers(c, 2, 10000), 0);
	/* its reports charge the tasks that end processes */
	assert_int_equal(wait_log("as supervisor", 1, 10000), 0);

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

	h_ipc_url(url, sizeof(url), "forkcrash");
	h_scheduler(url, NULL);
	workers("forkcrash", url, 1, NULL);
	assert_non_null(c = h_connect(url));
	assert_int_equal(h_wait_workers(c, 1, 10000), 0);
	/* its reports charge the tasks that end processes */
	assert_int_equal(wait_log("as supervisor", 1, 10000), 0);

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
		assert_int_equal(wait_gone(g, 10000), 0);
		ferry_future_free(f);
	}
	assert_int_equal(h_wait_workers(c, 1, 20000), 0);
	expect_square(c, 6);
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

	h_ipc_url(url, sizeof(url), "forkhang");
	h_scheduler(url, NULL);
	workers("forkhang", url, 1, NULL);
	assert_non_null(c = h_connect(url));
	assert_int_equal(h_wait_workers(c, 1, 10000), 0);
	/* its reports charge the tasks that end processes */
	assert_int_equal(wait_log("as supervisor", 1, 10000), 0);

	ferry_task_opts_init(&to);
	to.retries    = 0;
	to.timeout_ms = 1000;
	f = submit_fi(c, "fi_fork", FI_FORK_HANG | FI_FORK_SETSID, &to, &seq);
	assert_true((g = grandchild(seq, 10000)) > 0);
	assert_int_equal(ferry_future_wait(f, 30000), 0);
	assert_int_equal(ferry_future_errcode(f), FERRY_ETIMEDOUT);
	assert_int_equal(wait_gone(g, 10000), 0);
	ferry_future_free(f);

	assert_int_equal(h_wait_workers(c, 1, 20000), 0);
	f = submit_fi(c, "fi_fork", FI_FORK_HANG, NULL, &seq);
	assert_true((g = grandchild(seq, 10000)) > 0);
	assert_int_equal(ferry_cancel(f), 0);
	assert_int_equal(ferry_future_wait(f, 10000), 0);
	assert_int_equal(ferry_future_state(f), FERRY_CANCELLED);
	assert_int_equal(wait_gone(g, 10000), 0);
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
	ferry_future *f[2];
	uint64_t      seq[2];
	pid_t         g[2];
	(void)state;

	h_ipc_url(url, sizeof(url), "forkrecycle");
	h_scheduler(url, NULL);
	workers("forkrecycle", url, 1, extra);
	assert_non_null(c = h_connect(url));
	assert_int_equal(h_wait_workers(c, 1, 10000), 0);
	/* its reports charge the tasks that end processes */
	assert_int_equal(wait_log("as supervisor", 1, 10000), 0);

	f[0] = submit_fi(c, "fi_fork", 0, NULL, &seq[0]);
	f[1] = submit_fi(c, "fi_fork", FI_FORK_SETSID, NULL, &seq[1]);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(ferry_future_wait(f[i], 30000), 0);
		assert_int_equal(ferry_future_state(f[i]), FERRY_DONE);
		assert_true((g[i] = grandchild(seq[i], 10000)) > 0);
	}
	assert_int_equal(
	    wait_log("recycled (max tasks per process)", 1, 20000), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(wait_gone(g[i], 10000), 0);
		ferry_future_free(f[i]);
	}
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
	ferry_future *f[2];
	uint64_t      seq[2];
	pid_t         sup, g[2], kids[8];
	int           n_kids;
	uint64_t      end;
	(void)state;

	h_ipc_url(url, sizeof(url), "stop");
	h_scheduler(url, NULL);
	sup = workers("stop", url, 2, NULL);
	assert_non_null(c = h_connect(url));
	assert_int_equal(h_wait_workers(c, 2, 10000), 0);

	f[0] = submit_fi(c, "fi_fork", 0, NULL, &seq[0]);
	f[1] = submit_fi(c, "fi_fork", FI_FORK_SETSID, NULL, &seq[1]);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(ferry_future_wait(f[i], 30000), 0);
		assert_int_equal(ferry_future_state(f[i]), FERRY_DONE);
		assert_true((g[i] = grandchild(seq[i], 10000)) > 0);
		assert_true(h_alive(g[i]));
		ferry_future_free(f[i]);
	}
	n_kids = children_of(sup, kids, 8);
	assert_true(n_kids >= 2);

	/* SIGTERM, and nothing else: what goes, the supervisor stopped */
	assert_int_equal(kill(sup, SIGTERM), 0);
	end = ms_now() + 30000;
	while (h_alive(sup) && ms_now() < end)
		usleep(20000);
	assert_false(h_alive(sup));
	for (int i = 0; i < 2; i++)
		assert_int_equal(wait_gone(g[i], 5000), 0);
	for (int i = 0; i < n_kids; i++)
		assert_int_equal(wait_gone(kids[i], 5000), 0);
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
	uint64_t      seq, end;
	pid_t         sup, g, kids[8];
	(void)state;

	h_ipc_url(url, sizeof(url), "kill9sup");
	h_scheduler(url, NULL);
	sup = workers("kill9sup", url, 1, NULL);
	assert_non_null(c = h_connect(url));
	assert_int_equal(h_wait_workers(c, 1, 10000), 0);

	f = submit_fi(c, "fi_fork", 0, NULL, &seq);
	assert_int_equal(ferry_future_wait(f, 30000), 0);
	assert_int_equal(ferry_future_state(f), FERRY_DONE);
	assert_true((g = grandchild(seq, 10000)) > 0);
	ferry_future_free(f);
	assert_int_equal(children_of(sup, kids, 8), 1);

	assert_int_equal(kill(sup, SIGKILL), 0);
	end = ms_now() + 10000;
	while (h_alive(sup) && ms_now() < end)
		usleep(20000);
	assert_false(h_alive(sup));
	/* the worker process drains (nothing runs) and exits, taking its
	 * group along */
	assert_int_equal(wait_gone(kids[0], 20000), 0);
	assert_int_equal(wait_gone(g, 5000), 0);
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
	int rv;
	h_init(argc, argv);
	g_fi_lib = argc > 2 ? argv[2] : getenv("FERRY_FI_LIB");
	if (g_fi_lib == NULL) {
		fprintf(stderr,
		    "usage: test_supervisor FERRY_BIN FI_LIBRARY\n");
		return 2;
	}
	/* the start records of fi tasks (grandchildren's pids) */
	snprintf(g_fi_log, sizeof(g_fi_log), "%s/fi-starts.bin", h_dir());
	setenv("FERRY_FI_LOG", g_fi_log, 1);
	if (getenv("FERRY_TEST_FILTER") != NULL) /* e.g. "*kill9*" */
		cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
	rv = cmocka_run_group_tests(tests, NULL, NULL);
	if (rv != 0)
		h_dump_logs();
	return rv;
}
