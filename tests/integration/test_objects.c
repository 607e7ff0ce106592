/*
 * test_objects.c - heavy objects by path on a real cluster: each worker
 * process loads an object once, tasks go to workers that hold their
 * objects, refusals fail the task (not the worker), and a file truncated
 * under a running task fails that task with SIGBUS and nothing else, and
 * a directory swapped for a symbolic link in a tight loop while thousands
 * of tasks load through it never lets a worker read outside the root.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "ferry/ferry.h"
#include "harness.h"
#include "util.h"

#define WORDS 65536 /* 512 KiB files */

static char data_dir[512];

/* Write a file of WORDS 64-bit words v, v+1, ...; returns the sum. */
static uint64_t
write_words(const char *name, uint64_t v)
{
	char      path[600];
	uint64_t *buf = malloc(WORDS * 8), sum = 0;
	FILE     *f;
	snprintf(path, sizeof(path), "%s/%s", data_dir, name);
	assert_non_null(buf);
	for (int i = 0; i < WORDS; i++) {
		buf[i] = v + (uint64_t)i;
		sum += buf[i];
	}
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 8, WORDS, f), WORDS);
	fclose(f);
	free(buf);
	return sum;
}

/* Submit sum_u64 over [off, off+len) of file name (path may escape). */
static ferry_future *
submit_sum(ferry_client *c, const char *name, uint64_t off, uint64_t len,
    uint64_t delay_ms, uint64_t expect_size, const uint8_t *sha)
{
	char            path[600];
	uint8_t         ref[1024];
	size_t          n;
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	ferry_future   *f;
	struct ferry_task_opts once;

	if (name[0] == '/')
		snprintf(path, sizeof(path), "%s", name);
	else
		snprintf(path, sizeof(path), "%s/%s", data_dir, name);
	assert_int_equal(ferry_object_ref(ref, sizeof(ref), &n, path, NULL,
	                     expect_size, sha),
	    0);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, delay_ms ? 4 : 3);
	msgpack_pack_ext(&pk, n, FERRY_EXT_OBJECT);
	msgpack_pack_ext_body(&pk, ref, n);
	msgpack_pack_uint64(&pk, off);
	msgpack_pack_uint64(&pk, len);
	if (delay_ms)
		msgpack_pack_uint64(&pk, delay_ms);
	/* no retries: a run that crashes (the truncated file below) must
	 * report the crash itself, not what a retry on the new file says */
	ferry_task_opts_init(&once);
	once.retries = 0;
	assert_int_equal(
	    ferry_submit_opts(c, "sum_u64", sb.data, sb.size, &once, &f), 0);
	msgpack_sbuffer_destroy(&sb);
	return f;
}

static uint64_t
result_u64(ferry_future *f)
{
	const void *data;
	size_t      len;
	uint64_t    v = 0;
	int         rv;
	assert_int_equal(ferry_future_wait(f, 30000), 0);
	rv = ferry_future_result(f, &data, &len);
	if (rv != 0)
		fail_msg("task failed: %s: %s", ferry_strerror(rv),
		    ferry_future_error(f));
	assert_int_equal(h_unpack_uint(data, len, &v), 0);
	return v;
}

/* Wait for the task and return its error code and message. */
static int
task_error(ferry_future *f, const char **msg)
{
	assert_int_equal(ferry_future_wait(f, 30000), 0);
	*msg = ferry_future_error(f);
	return ferry_future_errcode(f);
}

/* A task on object name (as submit_sum, the first word, an expected
 * size and SHA-256 that may be 0 and NULL) fails as refused
 * (FERRY_EOBJECT), its reason saying text. */
static void
expect_refused(ferry_client *c, const char *name, uint64_t expect_size,
    const uint8_t *sha, const char *text)
{
	ferry_future *f = submit_sum(c, name, 0, 8, 0, expect_size, sha);
	const char   *msg;
	assert_int_equal(task_error(f, &msg), FERRY_EOBJECT);
	assert_non_null(strstr(msg, text));
	ferry_future_free(f);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(data_dir, sizeof(data_dir), "%s/data", h_dir());
	if (mkdir(data_dir, 0755) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* A scheduler on url and n worker processes with DATA as their object
 * root; returns a client that has seen them register. */
static ferry_client *
cluster(const char *url, int n)
{
	const char *extra[] = { "--object-root", data_dir, NULL };
	return h_cluster(url, NULL, n, extra);
}

/* Many tasks on one object: each worker process loads it once, and the
 * rest are cache hits; results are right. */
static void
test_loaded_once_per_worker(void **state)
{
	char           url[128];
	ferry_client  *c;
	ferry_future  *f[40];
	uint64_t       sum = 0, want;
	const uint64_t slice = WORDS * 8 / 40 / 8 * 8;
	(void)state;

	want = write_words("one.bin", 1000);
	h_ipc_url(url, sizeof(url), "once");
	c = cluster(url, 2);
	for (int i = 0; i < 40; i++)
		f[i] = submit_sum(c, "one.bin", (uint64_t)i * slice,
		    i == 39 ? WORDS * 8 - 39 * slice : slice, 0, 0, NULL);
	for (int i = 0; i < 40; i++) {
		sum += result_u64(f[i]);
		ferry_future_free(f[i]);
	}
	assert_int_equal(sum, want);
	/* cache counters arrive with the workers' next requests */
	usleep(1500 * 1000);
	{
		char *json = NULL;
		struct ferry_status st;
		memset(&st, 0, sizeof(st));
		st.size = sizeof(st);
		assert_int_equal(ferry_cluster_status(c, &st, &json, 5000), 0);
		/* every worker that ran a task loaded the file exactly once */
		assert_null(strstr(json, "\"loads\":2"));
		assert_null(strstr(json, "\"loads\":3"));
		assert_non_null(strstr(json, "\"loads\":1"));
		free(json);
	}
	ferry_client_close(c);
}

/* With two objects held by different workers, tasks go to the holder. */
static void
test_locality(void **state)
{
	char          url[128], *json = NULL;
	ferry_client *c;
	ferry_future *f[64];
	uint64_t      local;
	pid_t         pids[2];
	(void)state;

	write_words("x.bin", 1);
	write_words("y.bin", 2);
	h_ipc_url(url, sizeof(url), "local");
	c = cluster(url, 2);
	assert_int_equal(h_worker_pids(c, pids, 2), 2);

	/* warm up: one task per object, one at a time, so each object is
	 * held by whichever worker ran it */
	for (int i = 0; i < 2; i++) {
		f[0] = submit_sum(c, i == 0 ? "x.bin" : "y.bin", 0, 8, 0, 0,
		    NULL);
		result_u64(f[0]);
		ferry_future_free(f[0]);
	}
	usleep(1500 * 1000); /* loads reported with the next requests */
	local = h_status_uint(c, "local");
	for (int i = 0; i < 64; i++)
		f[i] = submit_sum(c, i % 2 ? "x.bin" : "y.bin", 8 * (uint64_t)i,
		    8, 20, 0, NULL);
	for (int i = 0; i < 64; i++) {
		result_u64(f[i]);
		ferry_future_free(f[i]);
	}
	/* most of them went to a holder */
	assert_true(h_status_uint(c, "local") - local >= 32);
	usleep(1500 * 1000);
	assert_int_equal(ferry_cluster_status(c, NULL, &json, 5000), 0);
	/* no worker loaded an object twice */
	assert_null(strstr(json, "\"loads\":3"));
	free(json);
	ferry_client_close(c);
}

/* Refusals fail the task with a clear reason; the worker stays. */
static void
test_refusals(void **state)
{
	char          url[128], dirpath[600], link[600];
	ferry_client *c;
	ferry_future *f;
	pid_t         before[2], after[2];
	uint8_t       sha[32];
	(void)state;

	write_words("ok.bin", 7);
	snprintf(dirpath, sizeof(dirpath), "%s/subdir", data_dir);
	mkdir(dirpath, 0755);
	snprintf(link, sizeof(link), "%s/escape.bin", data_dir);
	unlink(link);
	assert_int_equal(symlink("/etc/hostname", link), 0);
	h_ipc_url(url, sizeof(url), "refuse");
	c = cluster(url, 1);
	assert_int_equal(h_worker_pids(c, before, 2), 1);

	expect_refused(
	    c, "/etc/hostname", 0, NULL, "outside the allowed roots");
	expect_refused(c, "../../../../etc/hostname", 0, NULL,
	    "outside the allowed roots");
	expect_refused(c, "escape.bin", 0, NULL, "outside the allowed roots");
	expect_refused(c, "missing.bin", 0, NULL, "No such file");
	expect_refused(c, "subdir", 0, NULL, "directory");
	expect_refused(c, "ok.bin", 12345, NULL, "12345");
	memset(sha, 0xab, sizeof(sha));
	expect_refused(c, "ok.bin", 0, sha, "SHA-256");

	/* and a good one still works, on the same worker process */
	f = submit_sum(c, "ok.bin", 0, 16, 0, WORDS * 8, NULL);
	assert_int_equal(result_u64(f), 7 + 8);
	ferry_future_free(f);
	assert_int_equal(h_worker_pids(c, after, 2), 1);
	assert_int_equal(after[0], before[0]);
	ferry_client_close(c);
}

/* A file changed on disk is loaded again, never served stale. */
static void
test_reload_after_change(void **state)
{
	char          url[128];
	ferry_client *c;
	ferry_future *f;
	uint64_t      a, b;
	(void)state;

	a = write_words("change.bin", 10);
	h_ipc_url(url, sizeof(url), "change");
	c = cluster(url, 1);
	f = submit_sum(c, "change.bin", 0, WORDS * 8, 0, 0, NULL);
	assert_int_equal(result_u64(f), a);
	ferry_future_free(f);
	usleep(20000); /* a different modification time */
	b = write_words("change.bin", 99);
	assert_true(a != b);
	f = submit_sum(c, "change.bin", 0, WORDS * 8, 0, 0, NULL);
	assert_int_equal(result_u64(f), b);
	ferry_future_free(f);
	ferry_client_close(c);
}

/* A file truncated while a task reads its mapping: the task fails with
 * SIGBUS, the worker process is replaced, later tasks work. */
static void
test_truncated_under_task(void **state)
{
	char          url[128], path[600];
	ferry_client *c;
	ferry_future *f;
	const char   *msg;
	pid_t         before[2];
	(void)state;

	write_words("trunc.bin", 5);
	snprintf(path, sizeof(path), "%s/trunc.bin", data_dir);
	h_ipc_url(url, sizeof(url), "trunc");
	c = cluster(url, 1);
	assert_int_equal(h_worker_pids(c, before, 2), 1);

	/* the task maps the file, then waits 700 ms before reading */
	f = submit_sum(c, "trunc.bin", 0, WORDS * 8, 700, 0, NULL);
	usleep(300 * 1000);
	assert_int_equal(truncate(path, 0), 0);
	assert_int_equal(task_error(f, &msg), FERRY_ECRASHED);
	assert_non_null(strstr(msg, "SIGBUS"));
	assert_non_null(strstr(msg, "trunc.bin"));
	ferry_future_free(f);

	/* the supervisor replaced the process */
	assert_int_equal(h_wait_replaced(c, before[0], 1, 10000), 0);

	write_words("trunc.bin", 6);
	f = submit_sum(c, "trunc.bin", 0, 16, 0, 0, NULL);
	assert_int_equal(result_u64(f), 6 + 7);
	ferry_future_free(f);
	ferry_client_close(c);
}

#define RACE_TASKS 3000
#define RACE_WAVE 250

static pid_t swapper_pid = -1; /* killed by swap_teardown if still there */

/* Swap names a and b (RENAME_EXCHANGE) until killed, at most 100 million
 * times or 5 minutes; exit 0, or 1 if a swap failed. */
static void
swapper(const char *a, const char *b)
{
	uint64_t end = util_now_ms() + 300000;
	for (long i = 0; i < 100000000L; i++) {
		if (renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0)
			_exit(1);
		if (i % 4096 == 0 && util_now_ms() > end)
			break;
	}
	_exit(0);
}

/* Item 5 of issue #8 on real workers: DATA/swap is, in turn, a directory
 * holding obj.bin and a symbolic link to a directory outside the root
 * whose obj.bin has other words.  While a process swaps the two in a
 * tight loop, RACE_TASKS tasks sum the first two words of swap/obj.bin:
 * each gets the inside sum or fails with a clear refusal; none gets the
 * outside sum. */
static void
test_swap_race(void **state)
{
	char          url[128], a[600], b[600], out[600], path[700];
	ferry_client *c;
	ferry_future *f[RACE_WAVE];
	pid_t         pid;
	int           status;
	long          inside = 0, outside = 0, refused = 0, other = 0;
	(void)state;

	snprintf(a, sizeof(a), "%s/swap", data_dir);
	snprintf(b, sizeof(b), "%s/swap-alt", data_dir);
	snprintf(out, sizeof(out), "%s/outside", h_dir());
	assert_int_equal(mkdir(a, 0755), 0);
	assert_int_equal(mkdir(out, 0755), 0);
	write_words("swap/obj.bin", 100); /* first two words: 201 */
	/* the same size, other words: 1801 */
	snprintf(path, sizeof(path), "%s/obj.bin", out);
	{
		uint64_t *buf = calloc(WORDS, 8);
		FILE     *fp  = fopen(path, "wb");
		assert_non_null(buf);
		assert_non_null(fp);
		for (int i = 0; i < WORDS; i++)
			buf[i] = 900 + (uint64_t)i;
		assert_int_equal(fwrite(buf, 8, WORDS, fp), WORDS);
		fclose(fp);
		free(buf);
	}
	assert_int_equal(symlink(out, b), 0);
	if (renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0) {
		print_message("[  SKIP    ] no RENAME_EXCHANGE on this "
		              "filesystem (%s)\n",
		    strerror(errno));
		return;
	}
	assert_int_equal(
	    renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE), 0);

	h_ipc_url(url, sizeof(url), "swap");
	c = cluster(url, 2);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		swapper(a, b);
	swapper_pid = pid;
	for (int done = 0; done < RACE_TASKS; done += RACE_WAVE) {
		for (int i = 0; i < RACE_WAVE; i++)
			f[i]
			    = submit_sum(c, "swap/obj.bin", 0, 16, 0, 0, NULL);
		for (int i = 0; i < RACE_WAVE; i++) {
			const void *data;
			size_t      len;
			uint64_t    v = 0;
			assert_int_equal(ferry_future_wait(f[i], 30000), 0);
			if (ferry_future_result(f[i], &data, &len) == 0) {
				assert_int_equal(
				    h_unpack_uint(data, len, &v), 0);
				if (v == 201)
					inside++;
				else if (v == 1801)
					outside++;
				else
					other++;
			} else {
				const char *msg = ferry_future_error(f[i]);
				if (ferry_future_errcode(f[i]) == FERRY_EOBJECT
				    && msg != NULL
				    && strstr(msg, "swap/obj.bin")
				    && (strstr(
				            msg, "outside the allowed roots")
				        || strstr(msg, "symbolic link")))
					refused++;
				else {
					if (other++ == 0)
						print_message(
						    "unexpected: %s\n",
						    msg ? msg : "(none)");
				}
			}
			ferry_future_free(f[i]);
		}
	}
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	swapper_pid = -1;
	print_message("[  RACE    ] %d tasks: %ld inside, %ld OUTSIDE, %ld "
	              "refused, %ld other\n",
	    RACE_TASKS, inside, outside, refused, other);
	/* the swapper was still swapping, not stopped by a failure */
	assert_true(WIFSIGNALED(status));
	assert_int_equal(outside, 0);
	assert_int_equal(other, 0);
	assert_int_equal(inside + refused, RACE_TASKS);
	ferry_client_close(c);
}

/* teardown, and the swapper stopped if the test failed while it ran */
static int
swap_teardown(void **state)
{
	if (swapper_pid > 0) {
		kill(swapper_pid, SIGKILL);
		waitpid(swapper_pid, NULL, 0);
		swapper_pid = -1;
	}
	return h_teardown(state);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_loaded_once_per_worker, setup, h_teardown),
		cmocka_unit_test_setup_teardown(
		    test_locality, setup, h_teardown),
		cmocka_unit_test_setup_teardown(
		    test_refusals, setup, h_teardown),
		cmocka_unit_test_setup_teardown(
		    test_reload_after_change, setup, h_teardown),
		cmocka_unit_test_setup_teardown(
		    test_truncated_under_task, setup, h_teardown),
		cmocka_unit_test_setup_teardown(
		    test_swap_race, setup, swap_teardown),
	};
	h_init(argc, argv);
	return H_RUN_TESTS(tests, NULL);
}
