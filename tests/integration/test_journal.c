/*
 * test_journal.c - a scheduler restart loses nothing (docs/reliability.md,
 * "The journal").
 *
 * Each test kills or stops a real scheduler that keeps a journal and
 * starts another on the same directory, and checks what a user relies on:
 * queued tasks run, results held for a client reach it once, retry and
 * kill counts carry on, a stop signal leaves nothing to replay, a second
 * scheduler cannot open the journal, a damaged journal is refused naming
 * the file, and a full journal refuses submissions clearly while the
 * results of what it accepted still arrive.
 */
#include <errno.h>
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
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "ferry/ferry.h"
#include "harness.h"
#include "proto.h"
#include "util.h"

/* ------------------------------------------------------------ helpers */

/* A scheduler at url on journal dir (created by the scheduler), with
 * extra arguments (NULL-terminated, may be NULL); its log is logname. */
static pid_t
sched_on(const char *logname, const char *url, const char *dir,
    const char *const *extra)
{
	const char *args[40] = { "scheduler", "--listen", url, "--journal", dir,
		"--heartbeat-timeout-ms", "3000", "--restore-wait-ms", "300" };
	int         n = 9;

	for (int i = 0; extra != NULL && extra[i] != NULL && n < 38; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	return h_start_scheduler(logname, args);
}

static void
journal_dir(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s.journal", h_dir(), name);
}

static ferry_client *
connect_riding(const char *url)
{
	ferry_client *c = h_connect_riding(url, 60000); /* longer than any
	                                                 * restart here */
	if (c == NULL)
		fail_msg("cannot connect to %s", url);
	return c;
}

/* Map square over [first, first + n). */
static void
map_squares(ferry_client *c, uint64_t first, size_t n, ferry_future **futs)
{
	const void **args = calloc(n, sizeof(*args));
	size_t      *lens = calloc(n, sizeof(*lens));
	uint8_t     *buf  = calloc(n, H_ARGS_MAX);

	assert_non_null(args);
	assert_non_null(lens);
	assert_non_null(buf);
	for (size_t i = 0; i < n; i++) {
		args[i] = buf + i * H_ARGS_MAX;
		lens[i] = h_pack_args(buf + i * H_ARGS_MAX, 1, first + i, 0);
	}
	assert_int_equal(ferry_map(c, "square", n, args, lens, futs), 0);
	free(args);
	free(lens);
	free(buf);
}

/* Every future of squares [first, first + n) holds its square; frees
 * them. */
static void
expect_squares(ferry_future **futs, uint64_t first, size_t n)
{
	assert_int_equal(ferry_wait_all(futs, n, 90000), 0);
	for (size_t i = 0; i < n; i++) {
		const void *data;
		size_t      len;
		uint64_t    v;
		if (ferry_future_result(futs[i], &data, &len) != 0 ||
		    h_unpack_uint(data, len, &v) != 0 ||
		    v != (first + i) * (first + i))
			fail_msg("square(%" PRIu64 "): %s", first + i,
			    ferry_future_error(futs[i]));
		ferry_future_free(futs[i]);
	}
}

static void
kill9(pid_t pid)
{
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(h_wait_gone(pid, 10000), 0);
}

/* ------------------------------------------------------------- tests */

/* Queued tasks outlive a kill -9 of the scheduler: the client rides
 * through the restart and every future completes, once, correctly. */
static void
test_queued_survive_kill(void **state)
{
	char           url[256], dir[512];
	const size_t   n = 2000;
	ferry_future **futs = calloc(n, sizeof(*futs));
	ferry_client  *c;
	pid_t          s1;
	(void)state;

	assert_non_null(futs);
	h_ipc_url(url, sizeof(url), "queued");
	journal_dir(dir, sizeof(dir), "queued");
	s1 = sched_on("queued-1", url, dir, NULL);
	c  = connect_riding(url);
	map_squares(c, 1, n, futs); /* no worker yet: they wait */
	assert_int_equal(h_wait_sent(c, 20000), 0);
	assert_int_equal(h_status_uint(c, "queued"), n);

	kill9(s1);
	sched_on("queued-2", url, dir, NULL);
	assert_int_equal(h_wait_log("queued-2", "restored 2000 queued task(s)",
	                     1, 10000),
	    0);
	h_workers(url, 2, NULL);
	expect_squares(futs, 1, n);
	assert_int_equal(h_client_stats(c).duplicates, 0);
	assert_int_equal(h_status_uint(c, "restored"), n);
	assert_int_equal(h_status_uint(c, "submitted"), 0); /* none again */
	ferry_client_close(c);
	free(futs);
}

/* Results a client has not fetched yet outlive a kill -9, reach the
 * client after the restart, and once it acknowledged them they do not
 * come again after another kill. */
static void
test_results_survive_kill(void **state)
{
	char          url[256], dir[512];
	ferry_client *c;
	struct h_peer p;
	uint8_t       args[H_ARGS_MAX];
	uint64_t      seen[21] = { 0 }, ack = 0;
	int           got = 0;
	pid_t         s;
	(void)state;

	h_ipc_url(url, sizeof(url), "held");
	journal_dir(dir, sizeof(dir), "held");
	s = sched_on("held-1", url, dir, NULL);
	h_workers(url, 1, NULL);
	c = connect_riding(url);
	assert_int_equal(h_wait_workers(c, 1, 20000), 0);

	/* a client that submits and does not fetch */
	h_peer_open(&p, url);
	h_peer_hello(&p, 0x4e1d);
	proto_writer_reset(&p.w);
	proto_write_submit_begin(&p.w);
	for (uint64_t i = 1; i <= 20; i++) {
		size_t len = h_pack_args(args, 2, i, 100);
		proto_write_submit_entry(&p.w, i, "add", 3, args, len, NULL,
		    NULL, 0, NULL, NULL, 0);
	}
	proto_write_submit_end(&p.w);
	assert_int_equal(h_peer_call(&p, 10000), 0);
	assert_int_equal(p.m.type, PROTO_SUBMITTED);
	assert_int_equal(p.m.accepted, 20);
	assert_int_equal(h_wait_status(c, "results_stored", 20, 20000), 0);

	kill9(s);
	s = sched_on("held-2", url, dir, NULL);
	assert_int_equal(h_wait_log("held-2", "result(s) and", 1, 10000), 0);
	h_peer_hello(&p, 0x4e1d);
	assert_int_equal(p.m.resumed, 1);
	/* each once: those on disk at once, any whose result was not yet
	 * (its record written in the same batch as its deletion) after it
	 * runs again */
	for (int round = 0; round < 100 && got < 20; round++) {
		proto_writer_reset(&p.w);
		proto_write_fetch(&p.w, ack, 5000);
		assert_int_equal(h_peer_call(&p, 10000), 0);
		assert_int_equal(p.m.type, PROTO_RESULTS);
		for (uint32_t i = 0; i < p.m.n_results; i++) {
			const struct proto_result *r = &p.m.results[i];
			uint64_t                   v;
			assert_true(r->id >= 1 && r->id <= 20);
			assert_int_equal(r->code, 0);
			assert_int_equal(h_unpack_uint(r->data, r->len, &v), 0);
			assert_int_equal(v, r->id + 100);
			assert_int_equal(seen[r->id]++, 0);
			got++;
		}
		if (p.m.n_results > 0)
			ack = p.m.seq;
	}
	assert_int_equal(got, 20);

	/* acknowledged: gone, even if the ack itself was not yet on disk
	 * when the scheduler died (the client says it again) */
	proto_writer_reset(&p.w);
	proto_write_fetch(&p.w, ack, 0);
	assert_int_equal(h_peer_call(&p, 10000), 0);
	assert_int_equal(p.m.n_results, 0);
	kill9(s);
	sched_on("held-3", url, dir, NULL);
	h_peer_hello(&p, 0x4e1d);
	proto_writer_reset(&p.w);
	proto_write_fetch(&p.w, ack, 0);
	assert_int_equal(h_peer_call(&p, 10000), 0);
	assert_int_equal(p.m.type, PROTO_RESULTS);
	assert_int_equal(p.m.n_results, 0);
	h_peer_close(&p);
	ferry_client_close(c);
}

/* A task's kill count carries on across a restart: one that crashed its
 * worker once before is quarantined after two more crashes, not three. */
static void
test_counts_carry_on(void **state)
{
	char                    url[256], dir[512];
	ferry_client           *c;
	ferry_future           *f;
	struct ferry_task_opts  o;
	pid_t                   s;
	(void)state;

	h_ipc_url(url, sizeof(url), "counts");
	journal_dir(dir, sizeof(dir), "counts");
	s = sched_on("counts-1", url, dir, NULL);
	h_workers(url, 1, NULL);
	c = connect_riding(url);
	assert_int_equal(h_wait_workers(c, 1, 20000), 0);
	ferry_task_opts_init(&o);
	o.retries        = 10;
	o.backoff_ms     = 3000; /* it waits to retry while we restart */
	o.backoff_max_ms = 3000;
	assert_int_equal(ferry_submit_opts(c, "crash", NULL, 0, &o, &f), 0);
	assert_int_equal(h_wait_status(c, "kills", 1, 30000), 0);
	assert_int_equal(h_status_uint(c, "delayed"), 1);
	/* answered: on disk (unanswered, it is re-sent) */
	assert_int_equal(h_wait_sent(c, 20000), 0);

	kill9(s);
	sched_on("counts-2", url, dir, NULL);
	assert_int_equal(ferry_future_wait(f, 90000), 0);
	assert_int_equal(ferry_future_errcode(f), FERRY_EDEAD);
	assert_non_null(strstr(ferry_future_error(f), "killed 3 worker"));
	/* the restarted scheduler saw two of them */
	assert_int_equal(h_status_uint(c, "kills"), 2);
	assert_int_equal(h_status_uint(c, "restored"), 1);
	ferry_future_free(f);
	ferry_client_close(c);
}

/* SIGTERM drains, keeps what is queued, and the next start reads it back
 * without running again what had finished. */
static void
test_stop_and_start(void **state)
{
	char           url[256], dir[512];
	ferry_future  *done[100], *queued[50];
	ferry_client  *c;
	pid_t          s, w;
	(void)state;

	h_ipc_url(url, sizeof(url), "stop");
	journal_dir(dir, sizeof(dir), "stop");
	s = sched_on("stop-1", url, dir, NULL);
	w = h_workers(url, 1, NULL);
	c = connect_riding(url);
	map_squares(c, 1, 100, done);
	expect_squares(done, 1, 100);
	/* what status says of the journal */
	assert_true(h_status_uint(c, "journal_commits") >= 1);
	assert_true(h_status_uint(c, "journal_records") >= 100);
	assert_true(h_status_uint(c, "journal_bytes") >= 4096);
	assert_int_equal(h_status_uint(c, "journal_trouble"), 0);
	{
		const char *args[] = { "status", "-c", url, NULL };
		char       *out = NULL;
		assert_int_equal(h_run(args, 20000, &out, NULL), 0);
		if (strstr(out, "\njournal    ok, ") == NULL)
			fail_msg("ferry status shows no journal:\n%s", out);
		free(out);
	}
	h_stop(w, 20000);
	map_squares(c, 1000, 50, queued);
	assert_int_equal(h_wait_sent(c, 20000), 0);

	h_stop(s, 20000);
	assert_false(h_alive(s));
	assert_int_equal(h_log_count("stop-1", "kept in the journal for the "
	                                       "next start: 50 unfinished"),
	    1);
	sched_on("stop-2", url, dir, NULL);
	assert_int_equal(h_wait_log("stop-2", "restored 50 queued task(s), 0 "
	                                      "result(s)",
	                     1, 10000),
	    0);
	h_workers(url, 1, NULL);
	expect_squares(queued, 1000, 50);
	assert_int_equal(h_status_uint(c, "done"), 50);
	assert_int_equal(h_client_stats(c).duplicates, 0);
	ferry_client_close(c);
}

/* A second scheduler on the same journal is refused, naming the
 * journal and the scheduler that has it. */
static void
test_second_scheduler_refused(void **state)
{
	char        url[256], url2[256], dir[512], pid[32];
	const char *args[] = { "scheduler", "--listen", url2, "--journal", dir,
		NULL };
	char       *out = NULL, *err = NULL;
	pid_t       s;
	(void)state;

	h_ipc_url(url, sizeof(url), "lock1");
	h_ipc_url(url2, sizeof(url2), "lock2");
	journal_dir(dir, sizeof(dir), "lock");
	s = sched_on("lock-1", url, dir, NULL);
	assert_true(h_alive(s));
	assert_int_not_equal(h_run(args, 20000, &out, &err), 0);
	snprintf(pid, sizeof(pid), "pid %d", (int)s);
	if (strstr(err, "in use by another scheduler") == NULL ||
	    strstr(err, dir) == NULL || strstr(err, pid) == NULL)
		fail_msg("unexpected refusal: %s", err);
	free(out);
	free(err);
	assert_true(h_alive(s));
}

/* A journal that is not one (garbage in its data file) is refused with
 * an error naming the file; nothing starts on it. */
static void
test_damaged_refused(void **state)
{
	char        url[256], dir[512], path[600];
	const char *args[] = { "scheduler", "--listen", url, "--journal", dir,
		NULL };
	char       *out = NULL, *err = NULL;
	(void)state;

	h_ipc_url(url, sizeof(url), "damaged");
	journal_dir(dir, sizeof(dir), "damaged");
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	h_write_file(path, 0600, "%s",
	    "this is not a journal, but it is long enough to look at: "
	    "0123456789abcdef0123456789abcdef0123456789abcdef");
	assert_int_not_equal(h_run(args, 20000, &out, &err), 0);
	if (strstr(err, path) == NULL)
		fail_msg("the error does not name %s: %s", path, err);
	free(out);
	free(err);
}

/* A full journal (its max_size reached) refuses submissions with
 * FERRY_EJOURNAL, naming it; what it accepted before still runs and its
 * results arrive; once space is free again, submissions are taken. */
/*
 * The journal in dir (its scheduler at url) fills up: echo tasks of 64
 * KiB each are submitted with no worker until one is refused with
 * FERRY_EJOURNAL naming the journal; then what was accepted runs and its
 * results arrive, the journal writes again once they are gone, and a new
 * task is taken and runs.
 */
static void
fill_then_recover(const char *url, const char *dir)
{
	ferry_client  *c;
	ferry_future  *f[64], *late;
	uint8_t       *big = malloc(70000);
	size_t         n = 0, len;
	uint64_t       end;
	int            refused = 0;

	assert_non_null(big);
	c = connect_riding(url);
	/* echo of a 64 KiB string, with no worker: each waits, recorded */
	memset(big, 'x', 70000);
	big[0] = 0xda; /* str16 */
	big[1] = 0xfa;
	big[2] = 0x00;
	len    = 3 + 0xfa00;
	for (n = 0; n < 64 && !refused; n++) {
		assert_int_equal(ferry_submit(c, "echo", big, len, &f[n]), 0);
		if (ferry_future_wait(f[n], 300) == 0 &&
		    ferry_future_errcode(f[n]) == FERRY_EJOURNAL)
			refused = 1;
	}
	assert_true(refused);
	n--; /* f[n] was refused */
	if (strstr(ferry_future_error(f[n]), dir) == NULL)
		fail_msg("the refusal does not name the journal: %s",
		    ferry_future_error(f[n]));
	printf("refused after %zu tasks: %s\n", n, ferry_future_error(f[n]));
	ferry_future_free(f[n]);
	assert_int_equal(h_status_uint(c, "journal_trouble"), 1);

	/* what was accepted runs, and its results arrive */
	h_workers(url, 1, NULL);
	for (size_t i = 0; i < n; i++) {
		const void *data;
		size_t      dlen;
		assert_int_equal(ferry_future_wait(f[i], 60000), 0);
		assert_int_equal(ferry_future_result(f[i], &data, &dlen), 0);
		assert_int_equal(dlen, len);
		ferry_future_free(f[i]);
	}
	/* the refused ones never ran */
	assert_int_equal(h_wait_status(c, "done", n, 30000), 0);
	usleep(200000);
	assert_int_equal(h_status_uint(c, "done"), n);
	/* they are done: the journal writes again and takes new work */
	end = util_now_ms() + 30000;
	while (h_status_uint(c, "journal_trouble") != 0 && util_now_ms() < end)
		usleep(50000);
	assert_int_equal(h_status_uint(c, "journal_trouble"), 0);
	late = h_submit(c, "add", 2, 2, 3, NULL);
	assert_int_equal(ferry_future_wait(late, 30000), 0);
	assert_int_equal(ferry_future_errcode(late), 0);
	ferry_future_free(late);
	free(big);
	ferry_client_close(c);
}

/* A journal at its size limit (max_size: LMDB's map full). */
static void
test_full_refuses(void **state)
{
	char        url[256], dir[512];
	const char *extra[] = { "--journal-max-size", "1MiB", NULL };
	(void)state;

	h_ipc_url(url, sizeof(url), "full");
	journal_dir(dir, sizeof(dir), "full");
	sched_on("full-1", url, dir, extra);
	fill_then_recover(url, dir);
}

/* A journal on a file system that fills up (ENOSPC): a 4 MiB tmpfs in
 * a mount namespace of this test's own (root only; skipped otherwise).
 * The scheduler started here inherits the namespace. */
static void
test_disk_full(void **state)
{
	char url[256], dir[512];
	(void)state;

	if (geteuid() != 0) {
		printf("skipped: mounting a tmpfs needs root\n");
		skip();
	}
	if (unshare(CLONE_NEWNS) != 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
		printf("skipped: no mount namespace: %s\n", strerror(errno));
		skip();
	}
	h_ipc_url(url, sizeof(url), "disk");
	journal_dir(dir, sizeof(dir), "disk");
	assert_int_equal(mkdir(dir, 0700), 0);
	if (mount("ferry-test", dir, "tmpfs", MS_NOSUID | MS_NODEV,
	        "size=4m,mode=0700") != 0) {
		printf("skipped: cannot mount a tmpfs: %s\n", strerror(errno));
		skip();
	}
	sched_on("disk-1", url, dir, NULL);
	fill_then_recover(url, dir);
	assert_true(h_log_count("disk-1", "No space left on device") >= 1);
	/* the scheduler still has it open: detach it, gone when it exits */
	assert_int_equal(umount2(dir, MNT_DETACH), 0);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_queued_survive_kill, h_teardown),
		cmocka_unit_test_teardown(test_results_survive_kill, h_teardown),
		cmocka_unit_test_teardown(test_counts_carry_on, h_teardown),
		cmocka_unit_test_teardown(test_stop_and_start, h_teardown),
		cmocka_unit_test_teardown(
		    test_second_scheduler_refused, h_teardown),
		cmocka_unit_test_teardown(test_damaged_refused, h_teardown),
		cmocka_unit_test_teardown(test_full_refuses, h_teardown),
		cmocka_unit_test_teardown(test_disk_full, h_teardown),
	};

	h_init(argc, argv);
	return H_RUN_TESTS(tests, NULL);
}
