/*
 * test_scheduling.c - what the scheduler decides, end to end, with the
 * real binaries: where a task may run (only on workers that registered
 * its function; otherwise it waits), what a task's attempts count when a
 * process dies before starting what it held, how acknowledgements and
 * held-back answers behave for a client that speaks the protocol itself,
 * and how a stop signal drains.
 */
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
#include <msgpack.h>

#include "ferry/ferry.h"
#include "harness.h"
#include "util.h"

static const char *fi_lib; /* a second task library: fi_step */

/* A supervisor of group name running n processes of library lib, its
 * output in DIR/group-NAME.log. */
static pid_t
group(const char *url, const char *name, const char *lib, int n)
{
	const char *libs[]  = { lib, NULL };
	const char *extra[] = { "--group", name, NULL };
	char        log[64];
	snprintf(log, sizeof(log), "group-%s", name);
	return h_start_workers(log, url, n, libs, extra);
}

/* Put a submit of one task (client id, fn of fn_len bytes, args) into
 * the peer's writer. */
static void
raw_submit(struct h_peer *p, uint64_t id, const char *fn, size_t fn_len,
    const uint8_t *args, size_t args_len)
{
	proto_writer_reset(&p->w);
	proto_write_submit_begin(&p->w);
	proto_write_submit_entry(&p->w, id, fn, fn_len, args, args_len, NULL,
	    NULL, 0, NULL, NULL, 0);
	proto_write_submit_end(&p->w);
}

static void
raw_fetch(struct h_peer *p, uint64_t ack, uint64_t wait_ms)
{
	proto_writer_reset(&p->w);
	proto_write_fetch(&p->w, ack, wait_ms);
}

/* ------------------------------------------------------------------ */

/* An ack above the highest sequence number the session was sent is
 * refused, and deletes nothing: a result stored later is still
 * delivered. */
static void
test_ack_above_highest(void **state)
{
	char          url[128];
	ferry_client *c;
	struct h_peer p;
	uint8_t       args[32];
	size_t        len = h_pack_args(args, 2, 2, 3);
	uint64_t      v;
	(void)state;

	h_ipc_url(url, sizeof(url), "ack");
	c = h_cluster(url, NULL, 1, NULL);

	h_peer_open(&p, url);
	h_peer_hello(&p, 0xac4ac4);
	raw_submit(&p, 1, "add", 3, args, len);
	assert_int_equal(h_peer_call(&p, 10000), 0);
	assert_int_equal(p.m.type, PROTO_SUBMITTED);
	raw_fetch(&p, 0, 10000);
	assert_int_equal(h_peer_call(&p, 15000), 0);
	assert_int_equal(p.m.type, PROTO_RESULTS);
	assert_int_equal(p.m.n_results, 1);
	assert_int_equal(p.m.seq, 1);

	/* a second result is stored, never sent */
	raw_submit(&p, 2, "add", 3, args, len);
	assert_int_equal(h_peer_call(&p, 10000), 0);
	assert_int_equal(h_wait_status(c, "results_stored", 2, 15000), 0);

	raw_fetch(&p, 5, 0);
	assert_int_equal(h_peer_call(&p, 10000), 0);
	assert_int_equal(p.m.type, PROTO_ERROR);
	assert_int_equal(p.m.code, FERRY_EPROTO);
	assert_non_null(strstr(p.m.msg, "ack 5"));
	assert_non_null(strstr(p.m.msg, "highest result sequence number "
	                                "sent to this session (1)"));
	assert_int_equal(h_status_uint(c, "results_stored"), 2);

	/* nothing was deleted: the second result comes with seq 2 */
	raw_fetch(&p, 1, 0);
	assert_int_equal(h_peer_call(&p, 10000), 0);
	assert_int_equal(p.m.type, PROTO_RESULTS);
	assert_int_equal(p.m.n_results, 1);
	assert_int_equal(p.m.results[0].id, 2);
	assert_int_equal(p.m.results[0].code, 0);
	assert_int_equal(p.m.seq, 2);
	assert_int_equal(h_unpack_uint(p.m.results[0].data,
	                     p.m.results[0].len, &v),
	    0);
	assert_int_equal(v, 5);
	h_peer_close(&p);
	ferry_client_close(c);
}

/* A function name with a NUL byte is refused with the whole name shown,
 * escaped. */
static void
test_function_name_with_nul(void **state)
{
	char             url[128];
	struct h_peer    p;
	uint8_t          args[32];
	size_t           len = h_pack_args(args, 1, 3, 0);
	static const char fn[] = "square\0x";
	char             text[256];
	(void)state;

	h_ipc_url(url, sizeof(url), "nul");
	h_scheduler(url, NULL);
	h_peer_open(&p, url);
	h_peer_hello(&p, 0x4e55);
	raw_submit(&p, 1, fn, sizeof(fn) - 1, args, len);
	assert_int_equal(h_peer_call(&p, 10000), 0);
	assert_int_equal(p.m.type, PROTO_SUBMITTED);
	assert_int_equal(p.m.accepted, 0);
	assert_int_equal(p.m.n_results, 1);
	assert_int_equal(p.m.results[0].code, FERRY_EINVAL);
	snprintf(text, sizeof(text), "%.*s", (int)p.m.results[0].len,
	    p.m.results[0].data);
	assert_non_null(strstr(text, "'square\\0x'"));
	assert_non_null(strstr(text, "NUL"));
	h_peer_close(&p);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/*
 * A client that sends one request at a time gets the answer to a submit
 * whose task went straight to a worker about as fast as any other answer:
 * the scheduler holds a submit's answer back only while the session has a
 * fetch parked (its results then carry the answer along), not until the
 * task's result leaves.  Measured as a difference of medians against
 * status round trips on the same connection, with a margin (50 ms) far
 * above the bound and far below what an unbounded hold costs (the
 * scheduler's loop wakes every few hundred milliseconds).
 */
static void
test_submit_answer_not_held(void **state)
{
	char          url[128];
	ferry_client *c;
	struct h_peer p;
	uint8_t       args[32];
	enum { ROUNDS = 15 };
	uint64_t      sub[ROUNDS], st[ROUNDS], ack = 0;
	(void)state;

	h_ipc_url(url, sizeof(url), "hold");
	c = h_cluster(url, NULL, 1, NULL);
	h_peer_open(&p, url);
	h_peer_hello(&p, 0x401d);
	for (int i = 0; i < ROUNDS; i++) {
		size_t   len = h_pack_args(args, 1, (uint64_t)i, 0);
		uint64_t t0;

		/* the worker is idle and parked: the task goes straight to
		 * it, and the answer is the one that may be held */
		t0 = util_now_us();
		raw_submit(&p, (uint64_t)i + 1, "square", 6, args, len);
		assert_int_equal(h_peer_call(&p, 10000), 0);
		sub[i] = util_now_us() - t0;
		assert_int_equal(p.m.type, PROTO_SUBMITTED);
		assert_int_equal(p.m.accepted, 1);

		raw_fetch(&p, ack, 10000);
		assert_int_equal(h_peer_call(&p, 15000), 0);
		assert_int_equal(p.m.type, PROTO_RESULTS);
		assert_int_equal(p.m.n_results, 1);
		ack = p.m.seq;

		t0 = util_now_us();
		proto_writer_reset(&p.w);
		proto_write_status(&p.w);
		assert_int_equal(h_peer_call(&p, 10000), 0);
		st[i] = util_now_us() - t0;
		assert_int_equal(p.m.type, PROTO_STATUS_REPLY);
	}
	qsort(sub, ROUNDS, sizeof(sub[0]), cmp_u64);
	qsort(st, ROUNDS, sizeof(st[0]), cmp_u64);
	printf("# submit answered in %" PRIu64 " us (median), status in "
	       "%" PRIu64 " us\n",
	    sub[ROUNDS / 2], st[ROUNDS / 2]);
	assert_true(sub[ROUNDS / 2] < st[ROUNDS / 2] + 50000);
	h_peer_close(&p);
	ferry_client_close(c);
}

/*
 * attempts counts runs that started.  A task prefetched by a process that
 * dies before starting it is not counted, even when the supervisor's
 * report comes after the scheduler gave up waiting for it (here: the
 * supervisor is stopped while its process dies).
 */
static void
test_attempts_after_late_report(void **state)
{
	char                   url[128];
	ferry_client          *c;
	ferry_future          *hold, *seg;
	struct ferry_task_opts once, fast;
	pid_t                  sup, pids[4];
	(void)state;

	h_ipc_url(url, sizeof(url), "late");
	h_scheduler(url, NULL);
	assert_non_null(c = h_connect(url));
	/* both queued before any worker: the first worker takes both */
	ferry_task_opts_init(&once);
	once.retries = 0;
	ferry_task_opts_init(&fast);
	fast.backoff_ms = 10;
	hold = h_submit(c, "sleep_ms", 1, 8000, 0, &once);
	seg  = h_submit(c, "crash", 0, 0, 0, &fast);
	sup  = h_workers(url, 1, NULL);
	assert_int_equal(h_wait_workers(c, 1, 10000), 0);
	assert_int_equal(h_wait_status(c, "busy", 2, 10000), 0);
	assert_int_equal(h_worker_pids(c, pids, 4), 1);

	/* the process dies holding both while its supervisor cannot
	 * report: the scheduler re-queues them after its grace time */
	assert_int_equal(kill(sup, SIGSTOP), 0);
	assert_int_equal(kill(pids[0], SIGKILL), 0);
	assert_int_equal(h_wait_status(c, "queued", 2, 10000), 0);
	assert_int_equal(kill(sup, SIGCONT), 0);

	/* the late report charges the sleeper (retries 0: failed); the
	 * crashing task then runs three times and is quarantined */
	assert_int_equal(ferry_future_wait(hold, 30000), 0);
	assert_int_equal(ferry_future_state(hold), FERRY_FAILED);
	assert_int_equal(ferry_future_attempts(hold), 1);
	assert_int_equal(ferry_future_wait(seg, 30000), 0);
	assert_int_equal(ferry_future_state(seg), FERRY_DEAD);
	assert_int_equal(ferry_future_attempts(seg), 3);
	ferry_future_free(hold);
	ferry_future_free(seg);
	ferry_client_close(c);
}

/*
 * The first SIGTERM drains: new submissions are refused, what runs
 * finishes and reaches the client, nothing queued is started, and the
 * scheduler exits by itself saying what it dropped.
 */
static void
test_sigterm_drains(void **state)
{
	char          url[128];
	ferry_client *c;
	ferry_future *run[2], *queued[3];
	struct h_peer p;
	uint8_t       args[32];
	size_t        len = h_pack_args(args, 1, 5, 0);
	pid_t         sched;
	const char   *extra[] = { "--drain-timeout-ms", "60000", NULL };
	const char   *wx[]    = { "--prefetch", "0", NULL };
	(void)state;

	h_ipc_url(url, sizeof(url), "drain");
	sched = h_scheduler_named("sched-drain", url, extra);
	h_workers(url, 2, wx);
	assert_non_null(c = h_connect(url));
	assert_int_equal(h_wait_workers(c, 2, 10000), 0);
	h_peer_open(&p, url);
	h_peer_hello(&p, 0xd4a1);

	for (int i = 0; i < 2; i++)
		run[i] = h_submit(c, "sleep_ms", 1, 1500, 0, NULL);
	assert_int_equal(h_wait_status(c, "busy", 2, 10000), 0);
	/* one slot each, no prefetch, and each holds one: these wait in
	 * the queue */
	for (int i = 0; i < 3; i++)
		queued[i] = h_submit(c, "sleep_ms", 1, 1500, 0, NULL);
	assert_int_equal(h_wait_status(c, "queued", 3, 10000), 0);

	assert_int_equal(kill(sched, SIGTERM), 0);
	assert_int_equal(h_wait_log("sched-drain", "draining", 1, 10000), 0);
	raw_submit(&p, 1, "square", 6, args, len);
	assert_int_equal(h_peer_call(&p, 10000), 0);
	assert_int_equal(p.m.type, PROTO_ERROR);
	assert_int_equal(p.m.code, FERRY_ESTATE);
	assert_non_null(strstr(p.m.msg, "shutting down"));

	for (int i = 0; i < 2; i++) {
		assert_int_equal(ferry_future_wait(run[i], 30000), 0);
		assert_int_equal(ferry_future_state(run[i]), FERRY_DONE);
	}
	assert_int_equal(h_wait_gone(sched, 30000), 0);
	assert_true(
	    h_log_count("sched-drain", "dropping 3 unfinished task(s)") > 0);
	for (int i = 0; i < 3; i++)
		assert_int_not_equal(ferry_future_state(queued[i]), FERRY_DONE);
	for (int i = 0; i < 2; i++)
		ferry_future_free(run[i]);
	for (int i = 0; i < 3; i++)
		ferry_future_free(queued[i]);
	h_peer_close(&p);
	ferry_client_close(c);
}

/* A second SIGTERM stops a draining scheduler at once, while a task
 * still runs. */
static void
test_second_sigterm_stops(void **state)
{
	char          url[128];
	ferry_client *c;
	ferry_future *f;
	pid_t         sched;
	const char   *extra[] = { "--drain-timeout-ms", "600000", NULL };
	(void)state;

	h_ipc_url(url, sizeof(url), "stop2");
	sched = h_scheduler_named("sched-stop2", url, extra);
	h_workers(url, 1, NULL);
	assert_non_null(c = h_connect(url));
	assert_int_equal(h_wait_workers(c, 1, 10000), 0);
	f = h_submit(c, "sleep_ms", 1, 600000, 0, NULL);
	assert_int_equal(h_wait_status(c, "busy", 1, 10000), 0);
	assert_int_equal(kill(sched, SIGTERM), 0);
	assert_int_equal(h_wait_log("sched-stop2", "draining", 1, 10000), 0);
	assert_true(h_alive(sched));
	assert_int_equal(kill(sched, SIGTERM), 0);
	assert_int_equal(h_wait_gone(sched, 30000), 0);
	assert_true(h_log_count("sched-stop2", "stopping now") > 0);
	assert_int_not_equal(ferry_future_state(f), FERRY_DONE);
	ferry_future_free(f);
	ferry_client_close(c);
}

/* Two worker groups with different task libraries: every task goes to a
 * worker that has its function, and every result is right. */
static void
test_tasks_go_where_their_function_is(void **state)
{
	char           url[128];
	ferry_client  *c;
	enum { N = 600 };
	ferry_future  *f[N];
	(void)state;

	h_ipc_url(url, sizeof(url), "fns");
	h_scheduler(url, NULL);
	group(url, "a", "ferry_examples", 2);
	group(url, "b", fi_lib, 1);
	assert_non_null(c = h_connect(url));
	assert_int_equal(h_wait_workers(c, 3, 10000), 0);
	for (int i = 0; i < N; i++)
		f[i] = i % 2 ? h_submit(c, "fi_step", 1, (uint64_t)i, 0, NULL)
		             : h_submit(c, "square", 1, (uint64_t)i, 0, NULL);
	assert_int_equal(ferry_wait_all(f, N, 120000), 0);
	for (int i = 0; i < N; i++) {
		const void    *data;
		size_t         len, off = 0;
		msgpack_zone   zone;
		msgpack_object o;

		assert_int_equal(ferry_future_state(f[i]), FERRY_DONE);
		assert_int_equal(ferry_future_result(f[i], &data, &len), 0);
		msgpack_zone_init(&zone, 256);
		assert_int_equal(msgpack_unpack(data, len, &off, &zone, &o),
		    MSGPACK_UNPACK_SUCCESS);
		if (i % 2) {
			/* fi_step: [seq * 7 + 3, pid] */
			assert_int_equal(o.type, MSGPACK_OBJECT_ARRAY);
			assert_int_equal(o.via.array.ptr[0].via.u64,
			    (uint64_t)i * 7 + 3);
		} else {
			assert_int_equal(o.via.u64, (uint64_t)i * i);
		}
		msgpack_zone_destroy(&zone);
		ferry_future_free(f[i]);
	}
	assert_int_equal(h_status_uint(c, "failed"), 0);
	ferry_client_close(c);
}

/* Tasks of a function whose workers are all gone wait for them (shown in
 * the status) and run when they come back. */
static void
test_function_waits_for_its_group(void **state)
{
	char          url[128];
	ferry_client *c;
	ferry_future *f;
	pid_t         b;
	const void   *data;
	size_t        len;
	(void)state;

	h_ipc_url(url, sizeof(url), "fnwait");
	h_scheduler(url, NULL);
	group(url, "a", "ferry_examples", 1);
	b = group(url, "b", fi_lib, 1);
	assert_non_null(c = h_connect(url));
	assert_int_equal(h_wait_workers(c, 2, 10000), 0);
	h_stop(b, 15000);
	assert_int_equal(h_wait_status(c, "workers", 1, 10000), 0);

	f = h_submit(c, "fi_step", 1, 6, 0, NULL);
	assert_int_equal(h_wait_status(c, "waiting_function", 1, 10000), 0);
	assert_int_equal(ferry_future_wait(f, 300), FERRY_ETIMEDOUT);
	{
		/* the C API has every counter of the table */
		struct ferry_status st;
		void               *doc = NULL;
		size_t              doc_len = 0;
		memset(&st, 0, sizeof(st));
		st.size = sizeof(st);
		assert_int_equal(ferry_cluster_status_doc(c, &st, &doc,
		                     &doc_len, 10000),
		    0);
		assert_int_equal(st.waiting_function, 1);
		assert_int_equal(st.workers, 1);
		assert_int_equal(st.supervisors, 1);
		assert_true(st.uptime_ms > 0);
		assert_non_null(doc);
		assert_true(doc_len > 100);
		free(doc);
	}
	{
		/* `ferry status` says what waits, and for what */
		const char *args[] = { "status", "--connect", url, NULL };
		char       *out = NULL;
		assert_int_equal(h_run(args, 20000, &out, NULL), 0);
		assert_non_null(strstr(out, "1 queued task(s) for a function "
		                            "no connected worker runs: fi_step "
		                            "(1,"));
		free(out);
	}

	group(url, "b", fi_lib, 1);
	assert_int_equal(ferry_future_wait(f, 30000), 0);
	assert_int_equal(ferry_future_state(f), FERRY_DONE);
	assert_int_equal(ferry_future_result(f, &data, &len), 0);
	assert_int_equal(h_status_uint(c, "waiting_function"), 0);
	ferry_future_free(f);
	ferry_client_close(c);
}

/*
 * With the worker groups known (a cluster file), a task of a function no
 * worker registered yet waits while a group is not up; once every group
 * is up, such a name is refused at once, and tasks that waited for it
 * fail after scheduler.unknown_function_wait.
 */
static void
test_unknown_function_with_groups(void **state)
{
	char          url[128], file[512];
	ferry_client *c;
	ferry_future *early, *never, *late;
	const char   *extra[] = { "-f", file, NULL };
	(void)state;

	h_ipc_url(url, sizeof(url), "unk");
	snprintf(file, sizeof(file), "%s/groups.yaml", h_dir());
	h_write_file(file, 0644,
	    "scheduler:\n"
	    "  listen: %s\n"
	    "  unknown_function_wait: 1s\n"
	    "workers:\n"
	    "  - name: a\n"
	    "    libraries: [ferry_examples]\n"
	    "  - name: b\n"
	    "    libraries: [ferry_examples]\n",
	    url);
	h_scheduler(url, extra);
	group(url, "a", "ferry_examples", 1);
	assert_non_null(c = h_connect(url));
	assert_int_equal(h_wait_workers(c, 1, 10000), 0);

	/* group b is not up: it may bring these functions */
	early = h_submit(c, "fi_step", 1, 2, 0, NULL);
	never = h_submit(c, "no_such_function", 0, 0, 0, NULL);
	assert_int_equal(h_wait_status(c, "waiting_function", 2, 10000), 0);
	assert_int_equal(ferry_future_wait(early, 1500), FERRY_ETIMEDOUT);

	group(url, "b", fi_lib, 1);
	assert_int_equal(ferry_future_wait(early, 30000), 0);
	assert_int_equal(ferry_future_state(early), FERRY_DONE);

	/* every group is up and none has it */
	assert_int_equal(ferry_future_wait(never, 30000), 0);
	assert_int_equal(ferry_future_state(never), FERRY_FAILED);
	assert_int_equal(ferry_future_errcode(never), FERRY_ENOFUNC);
	assert_non_null(strstr(ferry_future_error(never),
	    "no worker registered it within"));
	late = h_submit(c, "no_such_function", 0, 0, 0, NULL);
	assert_int_equal(ferry_future_wait(late, 10000), 0);
	assert_int_equal(ferry_future_errcode(late), FERRY_ENOFUNC);
	assert_non_null(strstr(ferry_future_error(late), "unknown function"));
	ferry_future_free(early);
	ferry_future_free(never);
	ferry_future_free(late);
	ferry_client_close(c);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_ack_above_highest, h_teardown),
		cmocka_unit_test_teardown(
		    test_function_name_with_nul, h_teardown),
		cmocka_unit_test_teardown(
		    test_submit_answer_not_held, h_teardown),
		cmocka_unit_test_teardown(
		    test_attempts_after_late_report, h_teardown),
		cmocka_unit_test_teardown(test_sigterm_drains, h_teardown),
		cmocka_unit_test_teardown(
		    test_second_sigterm_stops, h_teardown),
		cmocka_unit_test_teardown(
		    test_tasks_go_where_their_function_is, h_teardown),
		cmocka_unit_test_teardown(
		    test_function_waits_for_its_group, h_teardown),
		cmocka_unit_test_teardown(
		    test_unknown_function_with_groups, h_teardown),
	};
	h_init(argc, argv);
	fi_lib = h_fi_lib(argc, argv);
	return H_RUN_TESTS(tests, NULL);
}
