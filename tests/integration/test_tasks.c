/*
 * test_tasks.c - end to end: a real scheduler and real worker processes,
 * driven through the C client API.
 *
 * What a user relies on: every task's result arrives, is correct, and
 * arrives once, even when a worker process is killed or goes silent, when
 * garbage reaches the scheduler, or when another client vanishes.
 */
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
#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "ferry/ferry.h"
#include "harness.h"
#include "util.h"

/* Map square over 0..n-1 (with an optional per-task delay) and return the
 * futures; args are packed [i] or [i, delay_us]. */
static ferry_future **
map_squares(ferry_client *c, size_t n, unsigned delay_us)
{
	ferry_future **futs = calloc(n, sizeof(*futs));
	const void   **args = calloc(n, sizeof(*args));
	size_t        *lens = calloc(n, sizeof(*lens));
	uint8_t       *buf  = calloc(n, H_ARGS_MAX);
	assert_non_null(futs);
	assert_non_null(buf);
	for (size_t i = 0; i < n; i++) {
		args[i] = buf + i * H_ARGS_MAX;
		lens[i] = h_pack_args(
		    buf + i * H_ARGS_MAX, delay_us ? 2 : 1, i, delay_us);
	}
	assert_int_equal(ferry_map(c, "square", n, args, lens, futs), 0);
	free(args);
	free(lens);
	free(buf);
	return futs;
}

/* Check that every future finished with i*i; frees them. */
static void
check_squares(ferry_future **futs, size_t n)
{
	size_t wrong = 0, failed = 0;
	for (size_t i = 0; i < n; i++) {
		const void *data;
		size_t      len;
		uint64_t    v;
		int         rv = ferry_future_result(futs[i], &data, &len);
		if (rv != 0) {
			if (failed++ < 5)
				fprintf(stderr, "task %zu failed: %s: %s\n", i,
				    ferry_strerror(rv),
				    ferry_future_error(futs[i]));
		} else if (h_unpack_uint(data, len, &v) != 0 ||
		    v != (uint64_t)i * i) {
			if (wrong++ < 5)
				fprintf(stderr, "task %zu: wrong result\n", i);
		}
		ferry_future_free(futs[i]);
	}
	free(futs);
	assert_int_equal(failed, 0);
	assert_int_equal(wrong, 0);
}

static void
assert_no_duplicates(ferry_client *c, size_t completed_at_least)
{
	struct ferry_client_stats st = h_client_stats(c);

	assert_int_equal(st.duplicates, 0);
	assert_true(st.completed >= completed_at_least);
}

/* 100k no-op-sized tasks over loopback TCP: every result correct. */
static void
test_100k_over_tcp(void **state)
{
	char           url[128];
	ferry_client  *c;
	ferry_future **futs;
	const size_t   n = 100000;
	(void)state;

	h_tcp_url(url, sizeof(url));
	c = h_cluster(url, NULL, 2, NULL);
	futs = map_squares(c, n, 0);
	assert_int_equal(ferry_wait_all(futs, n, 120000), 0);
	check_squares(futs, n);
	assert_no_duplicates(c, n);
	assert_int_equal(h_status_uint(c, "done"), n);
	assert_int_equal(h_status_uint(c, "failed"), 0);
	assert_int_equal(h_status_uint(c, "queued"), 0);
	ferry_client_close(c);
}

/* kill -9 a worker process mid-run: all 100k results still arrive, each
 * exactly once, and the supervisor starts a replacement. */
static void
test_kill9_worker_midrun(void **state)
{
	char           url[128];
	ferry_client  *c;
	ferry_future **futs;
	pid_t          before[8], victim;
	int            nb;
	const size_t   n = 100000;
	uint64_t       end;
	(void)state;

	h_ipc_url(url, sizeof(url), "kill9");
	c = h_cluster(url, NULL, 3, NULL);
	nb = h_worker_pids(c, before, 8);
	assert_int_equal(nb, 3);

	/* ~30 us per task: the run lasts about a second on 2 cores */
	futs = map_squares(c, n, 30);
	end  = util_now_ms() + 30000;
	while (h_status_uint(c, "done") < n / 10 && util_now_ms() < end)
		usleep(5000);
	assert_true(h_status_uint(c, "done") < n); /* still mid-run */
	victim = before[0];
	assert_int_equal(kill(victim, SIGKILL), 0);

	assert_int_equal(ferry_wait_all(futs, n, 120000), 0);
	check_squares(futs, n);
	assert_no_duplicates(c, n);
	/* its held tasks were re-queued, not lost */
	assert_true(h_status_uint(c, "requeued") > 0);
	assert_int_equal(h_status_uint(c, "done"), n);

	/* the supervisor replaced it */
	assert_int_equal(h_wait_replaced(c, victim, 3, 10000), 0);
	ferry_client_close(c);
}

/* A worker that stops answering (SIGSTOP) loses its tasks after the
 * heartbeat timeout; they finish elsewhere; it comes back when resumed. */
static void
test_silent_worker_requeued(void **state)
{
	static const char *sched_args[] = { "--heartbeat-timeout-ms", "1500",
		NULL };
	char           url[128];
	ferry_client  *c;
	ferry_future **futs;
	pid_t          pids[4];
	const size_t   n = 300;
	uint64_t       end;
	(void)state;

	h_ipc_url(url, sizeof(url), "silent");
	c = h_cluster(url, sched_args, 2, NULL);
	assert_int_equal(h_worker_pids(c, pids, 4), 2);

	futs = map_squares(c, n, 10000); /* 10 ms each: 1.5 s on 2 */
	end  = util_now_ms() + 10000;
	while (h_status_uint(c, "done") < 20 && util_now_ms() < end)
		usleep(5000);
	assert_int_equal(kill(pids[0], SIGSTOP), 0);
	assert_int_equal(ferry_wait_all(futs, n, 60000), 0);
	check_squares(futs, n);
	assert_true(h_status_uint(c, "requeued") > 0);
	assert_int_equal(h_status_uint(c, "workers"), 1);

	/* resumed, it registers again; the run it was in when stopped ran
	 * elsewhere meanwhile.  Its result is either reported and dropped
	 * as late (counted), or dropped by the worker itself when its new
	 * registration is told so (logged): which one depends on whether
	 * the result or the registration leaves first.  Never delivered
	 * twice */
	assert_int_equal(kill(pids[0], SIGCONT), 0);
	assert_int_equal(h_wait_workers(c, 2, 15000), 0);
	end = util_now_ms() + 10000;
	while (h_status_uint(c, "late_results") == 0 &&
	    h_log_count("scheduler", "registered again holding") == 0 &&
	    util_now_ms() < end)
		usleep(20000);
	if (h_status_uint(c, "late_results") == 0 &&
	    h_log_count("scheduler", "registered again holding") == 0)
		fail_msg("the resumed worker's run was neither dropped as a "
		         "late result nor by its new registration");
	assert_no_duplicates(c, n);
	ferry_client_close(c);
}

/* Send raw bytes to the scheduler; return the error text it answers
 * (malloc'd) or NULL if it answered something else or nothing. */
static char *
raw_exchange(nng_socket s, const void *data, size_t len, int *code)
{
	nng_msg       *msg;
	msgpack_zone   zone;
	msgpack_object o;
	size_t         off = 0;
	char          *text = NULL;

	assert_int_equal(nng_msg_alloc(&msg, 0), 0);
	assert_int_equal(nng_msg_append(msg, data, len), 0);
	assert_int_equal(nng_sendmsg(s, msg, 0), 0);
	if (nng_recvmsg(s, &msg, 0) != 0)
		return NULL;
	msgpack_zone_init(&zone, 1024);
	if (msgpack_unpack(nng_msg_body(msg), nng_msg_len(msg), &off, &zone,
	        &o) == MSGPACK_UNPACK_SUCCESS &&
	    o.type == MSGPACK_OBJECT_MAP) {
		for (uint32_t i = 0; i < o.via.map.size; i++) {
			msgpack_object_kv *kv = &o.via.map.ptr[i];
			if (kv->key.type != MSGPACK_OBJECT_STR)
				continue;
			if (kv->key.via.str.size == 3 &&
			    memcmp(kv->key.via.str.ptr, "msg", 3) == 0 &&
			    kv->val.type == MSGPACK_OBJECT_STR)
				text = strndup(kv->val.via.str.ptr,
				    kv->val.via.str.size);
			if (kv->key.via.str.size == 4 &&
			    memcmp(kv->key.via.str.ptr, "code", 4) == 0 &&
			    kv->val.type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
				*code = (int)kv->val.via.i64;
		}
	}
	msgpack_zone_destroy(&zone);
	nng_msg_free(msg);
	return text;
}

/* Send raw bytes; the scheduler must answer with an error whose message
 * says text and, when code is not 0, whose code is code. */
static void
expect_error(nng_socket s, const void *data, size_t len, int code,
    const char *text)
{
	int   got = 0;
	char *msg = raw_exchange(s, data, len, &got);
	assert_non_null(msg);
	if (code != 0)
		assert_int_equal(got, code);
	assert_non_null(strstr(msg, text));
	free(msg);
}

/* What pack_msg adds to a message's version and type. */
enum { NOTHING, INT_FN_TASK, ACK_0 };

/* A message {v: version, t: type} and, with INT_FN_TASK, a task whose fn
 * is an integer, or with ACK_0, ack 0; into out (at least 64 bytes).
 * Returns the length. */
static size_t
pack_msg(uint8_t *out, int version, const char *type, int extra)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	size_t          n;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, extra != NOTHING ? 3 : 2);
	msgpack_pack_str_with_body(&pk, "v", 1);
	msgpack_pack_int(&pk, version);
	msgpack_pack_str_with_body(&pk, "t", 1);
	msgpack_pack_str_with_body(&pk, type, strlen(type));
	if (extra == INT_FN_TASK) {
		msgpack_pack_str_with_body(&pk, "tasks", 5);
		msgpack_pack_array(&pk, 1);
		msgpack_pack_array(&pk, 3);
		msgpack_pack_uint64(&pk, 1);
		msgpack_pack_int(&pk, 42);
		msgpack_pack_bin(&pk, 0);
	} else if (extra == ACK_0) {
		msgpack_pack_str_with_body(&pk, "ack", 3);
		msgpack_pack_int(&pk, 0);
	}
	memcpy(out, sb.data, sb.size);
	n = sb.size;
	msgpack_sbuffer_destroy(&sb);
	return n;
}

/* Garbage, truncated, unknown and wrong-version messages, sent while a
 * real client's tasks run: each gets a clear error, the scheduler stays
 * up, and no task of the real client is lost. */
static void
test_bad_input_loses_nothing(void **state)
{
	char           url[128];
	ferry_client  *c;
	ferry_future **futs;
	nng_socket     raw;
	uint8_t        buf[256];
	size_t         len;
	const size_t   n = 20000;
	static const uint8_t garbage[] = { 0xc1, 0xff, 0x00, 0x13 };
	static const uint8_t trunc[]   = { 0x82, 0xa1, 0x76, 0x01, 0xa1 };
	static const uint8_t huge[]    = { 0xdd, 0xff, 0xff, 0xff, 0xff };
	(void)state;

	h_ipc_url(url, sizeof(url), "bad");
	c = h_cluster(url, NULL, 2, NULL);
	futs = map_squares(c, n, 5);

	assert_int_equal(nng_req0_open(&raw), 0);
	nng_socket_set_ms(raw, NNG_OPT_RECVTIMEO, 5000);
	assert_int_equal(nng_dial(raw, url, NULL, 0), 0);

	expect_error(raw, garbage, sizeof(garbage), FERRY_EPROTO, "offset 0");
	expect_error(raw, trunc, sizeof(trunc), 0, "truncated");
	expect_error(raw, huge, sizeof(huge), 0, "declares");
	len = pack_msg(buf, 1, "launch_missiles", NOTHING);
	expect_error(raw, buf, len, 0, "unknown message type");
	len = pack_msg(buf, 99, "submit", NOTHING);
	expect_error(raw, buf, len, FERRY_EVERSION, "version 99");
	len = pack_msg(buf, 1, "submit", INT_FN_TASK);
	expect_error(raw, buf, len, 0, "tasks[0][1] (fn)");
	/* a well-formed fetch from a peer that never said hello */
	len = pack_msg(buf, 1, "fetch", ACK_0);
	expect_error(raw, buf, len, 0, "has not said hello");
	nng_close(raw);
	/* the six malformed ones are counted (not the one before hello) */
	assert_int_equal(h_status_uint(c, "bad_messages"), 6);

	assert_int_equal(ferry_wait_all(futs, n, 120000), 0);
	check_squares(futs, n);
	assert_no_duplicates(c, n);
	assert_true(h_status_uint(c, "workers") == 2);
	ferry_client_close(c);
}

/* A client that submits and disconnects mid-stream harms nobody. */
static void
test_client_vanishes(void **state)
{
	char           url[128];
	ferry_client  *a, *b;
	ferry_future **fa, **fb;
	const size_t   n = 5000;
	(void)state;

	h_ipc_url(url, sizeof(url), "vanish");
	h_scheduler(url, NULL);
	h_workers(url, 2, NULL);
	assert_non_null(a = h_connect(url));
	assert_non_null(b = h_connect(url));
	assert_int_equal(h_wait_workers(b, 2, 10000), 0);
	fa = map_squares(a, n, 50);
	usleep(50000);
	ferry_client_close(a); /* its futures fail as closed */
	for (size_t i = 0; i < n; i++) {
		int st = ferry_future_state(fa[i]);
		assert_true(st != FERRY_PENDING);
		ferry_future_free(fa[i]);
	}
	free(fa);
	fb = map_squares(b, n, 0);
	assert_int_equal(ferry_wait_all(fb, n, 60000), 0);
	check_squares(fb, n);
	assert_int_equal(h_status_uint(b, "workers"), 2);
	ferry_client_close(b);
}

/* Unknown function, cancellation, as-completed order, task errors. */
static void
test_api_semantics(void **state)
{
	static const char *wargs[] = { "--slots", "3", "--prefetch", "0",
		NULL };
	char           url[128];
	ferry_client  *c;
	ferry_future  *f, *slow[3], *q[6], *got;
	ferry_iter    *it;
	uint8_t        buf[32];
	size_t         len;
	int            order[3], k = 0;
	static const unsigned ms[3] = { 600, 100, 350 };
	(void)state;

	h_ipc_url(url, sizeof(url), "api");
	c = h_cluster(url, NULL, 1, wargs);

	/* unknown function: refused with a message naming it */
	assert_int_equal(ferry_submit(c, "no_such_fn", NULL, 0, &f), 0);
	assert_int_equal(ferry_future_wait(f, 10000), 0);
	assert_int_equal(ferry_future_state(f), FERRY_FAILED);
	assert_int_equal(ferry_future_errcode(f), FERRY_ENOFUNC);
	assert_non_null(strstr(ferry_future_error(f), "no_such_fn"));
	ferry_future_free(f);

	/* a task's own error comes back as its message */
	len = h_pack_str1(buf, sizeof(buf), "disk on fire");
	assert_int_equal(ferry_submit(c, "fail", buf, len, &f), 0);
	assert_int_equal(ferry_future_wait(f, 10000), 0);
	assert_int_equal(ferry_future_errcode(f), FERRY_ETASK);
	assert_string_equal(ferry_future_error(f), "disk on fire");
	ferry_future_free(f);

	/* as-completed yields in finishing order */
	for (int i = 0; i < 3; i++)
		slow[i] = h_submit(c, "sleep_ms", 1, ms[i], 0, NULL);
	assert_int_equal(ferry_as_completed(c, slow, 3, &it), 0);
	while (ferry_iter_next(it, 10000, &got) == 0)
		for (int i = 0; i < 3; i++)
			if (got == slow[i])
				order[k++] = i;
	ferry_iter_free(it);
	assert_int_equal(k, 3);
	assert_int_equal(order[0], 1);
	assert_int_equal(order[1], 2);
	assert_int_equal(order[2], 0);
	for (int i = 0; i < 3; i++)
		ferry_future_free(slow[i]);

	/* cancel queued tasks: 3 slots busy with 500 ms tasks, 3 more wait
	 * in the queue (prefetch 0) and are cancelled */
	for (int i = 0; i < 6; i++)
		q[i] = h_submit(c, "sleep_ms", 1, 500, 0, NULL);
	usleep(200000);
	for (int i = 3; i < 6; i++)
		assert_int_equal(ferry_cancel(q[i]), 0);
	assert_int_equal(ferry_wait_all(q, 6, 10000), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(ferry_future_state(q[i]), FERRY_DONE);
	for (int i = 3; i < 6; i++) {
		assert_int_equal(ferry_future_state(q[i]), FERRY_CANCELLED);
		assert_int_equal(ferry_future_result(q[i], NULL, NULL),
		    FERRY_ECANCELED);
	}
	for (int i = 0; i < 6; i++)
		ferry_future_free(q[i]);
	assert_int_equal(h_status_uint(c, "cancelled"), 3);

	/* wait with a timeout that passes */
	f = h_submit(c, "sleep_ms", 1, 300, 0, NULL);
	assert_int_equal(ferry_future_wait(f, 20), FERRY_ETIMEDOUT);
	assert_int_equal(ferry_future_result(f, NULL, NULL), FERRY_EPENDING);
	assert_int_equal(ferry_future_wait(f, 10000), 0);
	ferry_future_free(f);
	ferry_client_close(c);
}

/* Tasks that crash their worker (SIGSEGV, abort) fail alone, with the
 * signal in their error; ordinary tasks around them all succeed, and the
 * supervisor replaces the processes. */
static void
test_crashing_tasks(void **state)
{
	char           url[128];
	ferry_client  *c;
	ferry_future  *segv, *abrt, **futs;
	struct ferry_task_opts once, fast;
	const size_t   n = 300;
	(void)state;

	h_ipc_url(url, sizeof(url), "crash");
	c = h_cluster(url, NULL, 2, NULL);

	/* with the defaults (3 retries, quarantine after 3 kills) a task
	 * that always crashes is tried 3 times and becomes dead; with no
	 * retries it fails with the signal at once */
	ferry_task_opts_init(&once);
	once.retries    = 0;
	ferry_task_opts_init(&fast);
	fast.backoff_ms = 10;
	assert_int_equal(
	    ferry_submit_opts(c, "crash", NULL, 0, &fast, &segv), 0);
	assert_int_equal(ferry_submit_opts(c, "abort", NULL, 0, &once, &abrt),
	    0);
	futs = map_squares(c, n, 1000);

	assert_int_equal(ferry_future_wait(segv, 30000), 0);
	assert_int_equal(ferry_future_state(segv), FERRY_DEAD);
	assert_int_equal(ferry_future_errcode(segv), FERRY_EDEAD);
	assert_int_equal(ferry_future_attempts(segv), 3);
	assert_non_null(strstr(ferry_future_error(segv), "quarantined"));
	assert_non_null(strstr(ferry_future_error(segv), "SIGSEGV"));
	assert_int_equal(ferry_future_wait(abrt, 30000), 0);
	assert_int_equal(ferry_future_state(abrt), FERRY_FAILED);
	assert_int_equal(ferry_future_errcode(abrt), FERRY_ECRASHED);
	assert_int_equal(ferry_future_attempts(abrt), 1);
	assert_non_null(strstr(ferry_future_error(abrt), "SIGABRT"));
	assert_int_equal(h_status_uint(c, "dead"), 1);
	assert_int_equal(h_status_uint(c, "retried"), 2);
	{
		/* the client API shows the same */
		struct ferry_status st;
		memset(&st, 0, sizeof(st));
		st.size = sizeof(st);
		assert_int_equal(ferry_cluster_status(c, &st, NULL, 10000), 0);
		assert_int_equal(st.dead, 1);
		assert_int_equal(st.retried, 2);
		assert_int_equal(st.kills, 4);
		assert_int_equal(st.delayed, 0);
	}

	assert_int_equal(ferry_wait_all(futs, n, 60000), 0);
	check_squares(futs, n);
	assert_no_duplicates(c, n + 2);
	ferry_future_free(segv);
	ferry_future_free(abrt);

	/* the supervisor keeps both processes running */
	h_wait_workers(c, 2, 15000);
	assert_int_equal(h_status_uint(c, "workers"), 2);
	ferry_client_close(c);
}

/* A connect to an address where nothing listens fails in time. */
static void
test_connect_timeout(void **state)
{
	char          url[128];
	ferry_client *c = NULL;
	uint64_t      t0;
	(void)state;
	h_ipc_url(url, sizeof(url), "nobody");
	t0 = util_now_ms();
	assert_int_equal(ferry_client_connect(&c, url, 300), FERRY_ECONNECT);
	assert_null(c);
	/* not a timing test: only that it gives up instead of hanging */
	assert_true(util_now_ms() - t0 < 30000);
	assert_int_equal(ferry_client_connect(&c, "bogus://x", 300),
	    FERRY_EINVAL);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_100k_over_tcp, h_teardown),
		cmocka_unit_test_teardown(
		    test_kill9_worker_midrun, h_teardown),
		cmocka_unit_test_teardown(
		    test_silent_worker_requeued, h_teardown),
		cmocka_unit_test_teardown(
		    test_bad_input_loses_nothing, h_teardown),
		cmocka_unit_test_teardown(test_client_vanishes, h_teardown),
		cmocka_unit_test_teardown(test_api_semantics, h_teardown),
		cmocka_unit_test_teardown(test_crashing_tasks, h_teardown),
		cmocka_unit_test_teardown(test_connect_timeout, h_teardown),
	};
	h_init(argc, argv);
	return H_RUN_TESTS(tests, NULL);
}
