/*
 * test_ridethrough.c - worker processes ride through a lost connection
 * and a scheduler restart (docs/protocol.md 4.9), with the real binaries.
 *
 * A connection blip: the worker processes reach the scheduler through a
 * byte-forwarding proxy on a local socket that the test controls, and
 * the test cuts every connection through it while tasks run and wait in
 * the worker process's queue.  The process registers again saying what
 * it holds; every task still completes, once, in that same process (the
 * fi_step start records show each run).
 *
 * A restart: the scheduler is killed (SIGKILL) while tasks run and a new
 * one is started on the same address.  It has no journal, so it knows
 * none of the tasks the worker process holds: the process drops them all
 * (their results too, whose ids now name other tasks), registers
 * cleanly, and the tasks of the new scheduler get their own results.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
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
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "ferry/ferry.h"
#include "fi_log.h"
#include "harness.h"
#include "util.h"

static const char *fi_lib;     /* the fault-injection tasks: fi_step */
static char        fi_log[512]; /* their start records */

/* ------------------------------------------------------------ a proxy */

#define PX_PAIRS 16

/*
 * A proxy on a local stream socket: each connection accepted at front is
 * joined to a new connection to back, and bytes go both ways untouched
 * (NNG's ipc framing passes through).  proxy_cut() closes every joined
 * pair at once, as a network blip would; new connections are accepted
 * afterwards as before.
 */
struct proxy {
	pthread_t  thr;
	int        lfd;     /* listening at front */
	int        ctl[2];  /* commands: 'c' cut, 's' stop */
	char       back[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int        fd[PX_PAIRS][2];
	atomic_int accepted; /* connections joined so far */
	atomic_int cut;      /* connections cut so far */
	atomic_int cuts;     /* cuts done */
};

static int
unix_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -1;
	strcpy(sa->sun_path, path);
	return 0;
}

static void
pair_close(struct proxy *px, int i)
{
	for (int k = 0; k < 2; k++)
		if (px->fd[i][k] >= 0) {
			close(px->fd[i][k]);
			px->fd[i][k] = -1;
		}
}

/* A connection came to front: join it to a new one to back. */
static void
proxy_accept(struct proxy *px)
{
	struct sockaddr_un sa;
	int                c = accept(px->lfd, NULL, NULL), b;

	if (c < 0)
		return;
	b = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (b < 0 || unix_addr(&sa, px->back) != 0 ||
	    connect(b, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(c);
		if (b >= 0)
			close(b);
		return;
	}
	for (int i = 0; i < PX_PAIRS; i++)
		if (px->fd[i][0] < 0) {
			px->fd[i][0] = c;
			px->fd[i][1] = b;
			atomic_fetch_add(&px->accepted, 1);
			return;
		}
	close(c);
	close(b);
}

/* Move what fd k of pair i has to the other side; 0, or -1 when either
 * side is closed. */
static int
proxy_move(struct proxy *px, int i, int k)
{
	char    buf[65536];
	ssize_t n = read(px->fd[i][k], buf, sizeof(buf));

	if (n <= 0)
		return -1;
	for (ssize_t off = 0; off < n;) {
		ssize_t m = write(px->fd[i][1 - k], buf + off,
		    (size_t)(n - off));
		if (m < 0 && errno == EINTR)
			continue;
		if (m <= 0)
			return -1;
		off += m;
	}
	return 0;
}

static void *
proxy_main(void *arg)
{
	struct proxy *px = arg;

	for (;;) {
		struct pollfd p[2 + 2 * PX_PAIRS];
		int           who[2 + 2 * PX_PAIRS], n = 0;
		char          cmd;

		p[n].fd       = px->ctl[0];
		p[n].events   = POLLIN;
		who[n++]      = -1;
		p[n].fd       = px->lfd;
		p[n].events   = POLLIN;
		who[n++]      = -2;
		for (int i = 0; i < PX_PAIRS; i++)
			for (int k = 0; k < 2 && px->fd[i][0] >= 0; k++) {
				p[n].fd     = px->fd[i][k];
				p[n].events = POLLIN;
				who[n++]    = 2 * i + k;
			}
		if (poll(p, (nfds_t)n, 1000) < 0 && errno != EINTR)
			return NULL;
		if (p[0].revents & POLLIN) {
			if (read(px->ctl[0], &cmd, 1) != 1 || cmd == 's')
				return NULL;
			for (int i = 0; i < PX_PAIRS; i++)
				if (px->fd[i][0] >= 0) {
					pair_close(px, i);
					atomic_fetch_add(&px->cut, 1);
				}
			atomic_fetch_add(&px->cuts, 1);
			continue;
		}
		if (p[1].revents & POLLIN)
			proxy_accept(px);
		for (int j = 2; j < n; j++) {
			int i = who[j] / 2;
			if (p[j].revents != 0 && px->fd[i][0] >= 0 &&
			    proxy_move(px, i, who[j] % 2) != 0)
				pair_close(px, i);
		}
	}
}

/* Listen at front, forwarding to back. */
static void
proxy_start(struct proxy *px, const char *front, const char *back)
{
	struct sockaddr_un sa;

	memset(px, 0, sizeof(*px));
	for (int i = 0; i < PX_PAIRS; i++)
		px->fd[i][0] = px->fd[i][1] = -1;
	assert_int_equal(pipe(px->ctl), 0);
	assert_true(strlen(back) < sizeof(px->back));
	strcpy(px->back, back);
	assert_int_equal(unix_addr(&sa, front), 0);
	px->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(px->lfd >= 0);
	assert_int_equal(bind(px->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(px->lfd, 16), 0);
	assert_int_equal(pthread_create(&px->thr, NULL, proxy_main, px), 0);
}

/* Cut every connection through the proxy; returns how many it cut. */
static int
proxy_cut(struct proxy *px)
{
	int      before = atomic_load(&px->cuts), was = atomic_load(&px->cut);
	uint64_t end    = util_now_ms() + 10000;

	assert_int_equal(write(px->ctl[1], "c", 1), 1);
	while (atomic_load(&px->cuts) == before && util_now_ms() < end)
		usleep(1000);
	assert_int_not_equal(atomic_load(&px->cuts), before);
	return atomic_load(&px->cut) - was;
}

static void
proxy_stop(struct proxy *px)
{
	assert_int_equal(write(px->ctl[1], "s", 1), 1);
	pthread_join(px->thr, NULL);
	for (int i = 0; i < PX_PAIRS; i++)
		pair_close(px, i);
	close(px->lfd);
	close(px->ctl[0]);
	close(px->ctl[1]);
}

/* ---------------------------------------------------------- helpers */

/* How many times fi_step seq started (its start records). */
static int
starts_of(uint64_t seq)
{
	struct fi_record r;
	int              fd = open(fi_log, O_RDONLY), n = 0;

	if (fd < 0)
		return 0;
	while (read(fd, &r, sizeof(r)) == (ssize_t)sizeof(r))
		n += r.seq == seq;
	close(fd);
	return n;
}

/* Wait (bounded) until n of the tasks seq0 .. seq0 + count - 1 have
 * started; 0, or -1. */
static int
wait_started(uint64_t seq0, int count, int n, int timeout_ms)
{
	uint64_t end = util_now_ms() + (uint64_t)timeout_ms;
	int      k;

	do {
		k = 0;
		for (int i = 0; i < count; i++)
			k += starts_of(seq0 + (uint64_t)i) > 0;
		if (k >= n)
			return 0;
		usleep(10000);
	} while (util_now_ms() < end);
	printf("only %d of %d tasks started within %d ms\n", k, n,
	    timeout_ms);
	return -1;
}

/* The future of fi_step seq is done with [seq * 7 + 3, pid]. */
static void
expect_step(ferry_future *f, uint64_t seq, pid_t pid)
{
	const void    *data;
	size_t         len, off = 0;
	msgpack_zone   zone;
	msgpack_object o;

	if (ferry_future_state(f) != FERRY_DONE)
		fail_msg("task %" PRIu64 ": %s", seq, ferry_future_error(f));
	assert_int_equal(ferry_future_result(f, &data, &len), 0);
	msgpack_zone_init(&zone, 256);
	assert_int_equal(msgpack_unpack(data, len, &off, &zone, &o),
	    MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(o.type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(o.via.array.size, 2);
	if (o.via.array.ptr[0].via.u64 != seq * 7 + 3)
		fail_msg("task %" PRIu64 ": result %" PRIu64 ", expected %" PRIu64
		         " (another task's result)",
		    seq, o.via.array.ptr[0].via.u64, seq * 7 + 3);
	assert_int_equal(o.via.array.ptr[1].via.u64, (uint64_t)pid);
	msgpack_zone_destroy(&zone);
}

/* The only worker process registered. */
static pid_t
the_worker(ferry_client *c)
{
	pid_t pids[4];

	assert_int_equal(h_wait_workers(c, 1, 20000), 0);
	assert_int_equal(h_worker_pids(c, pids, 4), 1);
	return pids[0];
}

/* ------------------------------------------------------------ tests */

#define N 4

/* The worker process's connection is cut while two tasks run and two
 * wait in its queue: it registers again holding all four, the scheduler
 * keeps them with it, and each completes once, in that process. */
static void
test_connection_blip(void **state)
{
	static const uint64_t seq0 = 1000;
	const char *const     libs[]  = { fi_lib, NULL };
	const char *const     extra[] = { "--slots", "2", NULL };
	char                  back[256], front[256], url[300], furl[300];
	struct proxy          px;
	ferry_client         *c;
	ferry_future         *f[N];
	pid_t                 pid;
	(void)state;

	snprintf(back, sizeof(back), "%s/blip.sock", h_dir());
	snprintf(front, sizeof(front), "%s/blip-front.sock", h_dir());
	snprintf(url, sizeof(url), "ipc://%s", back);
	snprintf(furl, sizeof(furl), "ipc://%s", front);
	h_scheduler(url, NULL);
	proxy_start(&px, front, back);
	h_start_workers("workers-blip", furl, 1, libs, extra);
	assert_non_null(c = h_connect(url)); /* not through the proxy */
	pid = the_worker(c);

	for (int i = 0; i < N; i++)
		f[i] = h_submit(c, "fi_step", 2, seq0 + (uint64_t)i, 1500000,
		    NULL);
	assert_int_equal(wait_started(seq0, N, 2, 20000), 0);
	/* the worker process's connection and its supervisor's */
	assert_true(proxy_cut(&px) >= 1);

	assert_int_equal(ferry_wait_all(f, N, 60000), 0);
	for (int i = 0; i < N; i++) {
		expect_step(f[i], seq0 + (uint64_t)i, pid);
		assert_int_equal(starts_of(seq0 + (uint64_t)i), 1);
		ferry_future_free(f[i]);
	}
	assert_int_equal(h_log_count("workers-blip",
	                     "connection to the scheduler lost"),
	    1);
	assert_int_equal(h_log_count("workers-blip", "held task(s) kept"), 1);
	assert_int_equal(h_status_uint(c, "late_results"), 0);
	assert_int_equal(the_worker(c), pid);
	ferry_client_close(c);
	proxy_stop(&px);
}

/* The scheduler is killed while two tasks run and two wait in the
 * worker process's queue, and a new one (no journal: it knows none of
 * them) starts on the same address: the process drops all four, their
 * results too, registers cleanly, and the new scheduler's tasks (whose
 * ids are those of the old ones) get their own results. */
static void
test_scheduler_restart(void **state)
{
	static const uint64_t seq0 = 2000, seq1 = 3000;
	const char *const     libs[]  = { fi_lib, NULL };
	const char *const     extra[] = { "--slots", "2", NULL };
	char                  url[256];
	ferry_client         *c;
	ferry_future         *f[N];
	pid_t                 sched, pid;
	(void)state;

	h_ipc_url(url, sizeof(url), "restart");
	sched = h_scheduler_named("sched-first", url, NULL);
	h_start_workers("workers-restart", url, 1, libs, extra);
	assert_non_null(c = h_connect(url));
	pid = the_worker(c);
	for (int i = 0; i < N; i++)
		f[i] = h_submit(c, "fi_step", 2, seq0 + (uint64_t)i, 4000000,
		    NULL);
	assert_int_equal(wait_started(seq0, N, 2, 20000), 0);
	for (int i = 0; i < N; i++)
		ferry_future_free(f[i]);
	ferry_client_close(c);

	assert_int_equal(kill(sched, SIGKILL), 0);
	assert_int_equal(h_wait_gone(sched, 10000), 0);
	h_scheduler_named("sched-second", url, NULL);
	assert_non_null(c = h_connect(url));
	assert_int_equal(the_worker(c), pid); /* the same process */
	/* tasks 1, 2, ... of the new scheduler, while tasks 1 and 2 of the
	 * old one still run in that process */
	for (int i = 0; i < N; i++)
		f[i] = h_submit(c, "fi_step", 2, seq1 + (uint64_t)i, 10000,
		    NULL);
	assert_int_equal(ferry_wait_all(f, N, 60000), 0);
	for (int i = 0; i < N; i++) {
		expect_step(f[i], seq1 + (uint64_t)i, pid);
		assert_int_equal(starts_of(seq1 + (uint64_t)i), 1);
		ferry_future_free(f[i]);
	}
	assert_int_equal(h_wait_log("workers-restart",
	                     "the scheduler restarted without them", 1,
	                     10000),
	    0);
	/* the two that waited never started; the two running were not run
	 * again */
	for (int i = 0; i < N; i++)
		assert_int_equal(starts_of(seq0 + (uint64_t)i), i < 2 ? 1 : 0);
	assert_int_equal(h_status_uint(c, "late_results"), 0);
	assert_int_equal(h_status_uint(c, "failed"), 0);
	assert_int_equal(the_worker(c), pid);
	ferry_client_close(c);
}

/* As above, but the scheduler keeps a journal: the new one restores the
 * four tasks and the worker process, registering again with the run's
 * epoch, keeps all four (docs/reliability.md): none runs again, each
 * completes once, in that process, and the client that submitted them
 * rides through the restart and gets every result. */
static void
test_scheduler_restart_journal(void **state)
{
	static const uint64_t seq0 = 4000;
	const char *const     libs[]  = { fi_lib, NULL };
	const char *const     extra[] = { "--slots", "2", NULL };
	char                  url[256], dir[512];
	ferry_client         *c;
	ferry_future         *f[N];
	pid_t                 sched, pid;
	(void)state;

	h_ipc_url(url, sizeof(url), "restart-journal");
	snprintf(dir, sizeof(dir), "%s/restart.journal", h_dir());
	{
		const char *const jargs[] = { "--journal", dir,
			"--restore-wait-ms", "20000", NULL };
		sched = h_scheduler_named("sched-j1", url, jargs);
	}
	h_start_workers("workers-restart-j", url, 1, libs, extra);
	assert_non_null(c = h_connect(url));
	pid = the_worker(c);
	for (int i = 0; i < N; i++)
		f[i] = h_submit(c, "fi_step", 2, seq0 + (uint64_t)i, 3000000,
		    NULL);
	assert_int_equal(wait_started(seq0, N, 2, 20000), 0);
	/* answered, so on disk: an unanswered submit is re-sent after the
	 * restart and its task is not the one the worker holds */
	assert_int_equal(h_wait_sent(c, 20000), 0);

	assert_int_equal(kill(sched, SIGKILL), 0);
	assert_int_equal(h_wait_gone(sched, 10000), 0);
	{
		const char *const jargs[] = { "--journal", dir,
			"--restore-wait-ms", "20000", NULL };
		h_scheduler_named("sched-j2", url, jargs);
	}
	assert_int_equal(h_wait_log("sched-j2", "restored 4 queued task(s)",
	                     1, 10000),
	    0);
	/* the client's session resumes; the futures complete */
	assert_int_equal(ferry_wait_all(f, N, 60000), 0);
	for (int i = 0; i < N; i++) {
		expect_step(f[i], seq0 + (uint64_t)i, pid);
		assert_int_equal(starts_of(seq0 + (uint64_t)i), 1);
		ferry_future_free(f[i]);
	}
	assert_int_equal(h_log_count("workers-restart-j", "held task(s) kept"),
	    1);
	assert_int_equal(h_log_count("workers-restart-j",
	                     "the scheduler restarted without them"),
	    0);
	assert_int_equal(h_status_uint(c, "late_results"), 0);
	assert_int_equal(h_status_uint(c, "failed"), 0);
	assert_int_equal(h_status_uint(c, "restored"), N);
	ferry_client_close(c);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_connection_blip, h_teardown),
		cmocka_unit_test_teardown(test_scheduler_restart, h_teardown),
		cmocka_unit_test_teardown(test_scheduler_restart_journal,
		    h_teardown),
	};
	h_init(argc, argv);
	fi_lib = h_fi_lib(argc, argv);
	snprintf(fi_log, sizeof(fi_log), "%s/fi-starts.bin", h_dir());
	setenv("FERRY_FI_LOG", fi_log, 1);
	return H_RUN_TESTS(tests, NULL);
}
