/*
 * test_graph.c - tasks that wait for others (scheduler/graph.c) with the
 * scheduler's real modules and no network (sched_fake.c): results put
 * into a dependent's arguments before it is dispatched, a chain far
 * longer than any stack ended in a loop, waiting tasks of an expired
 * session, and what every allocation failure on the graph's paths leaves
 * behind (the test is linked with failing allocation wrappers).
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "ferry/ferry.h"
#include "futref.h"
#include "sched_fake.h"

enum { W = 1, C = 2 }; /* pipe ids */

static const char *const fns[] = { "square", NULL };

static void
setup(struct fake *f)
{
	struct proto_msg m;
	fake_init(f, NULL);
	assert_int_equal(fake_reply(f, fake_hello_worker(f, W, fns, 0, 100),
	                     &m),
	    0);
	assert_int_equal(fake_reply(f, fake_hello_client(f, C, 77), &m), 0);
	assert_int_equal(m.type, PROTO_WELCOME);
}

/* [ref(dep)] (or [] for dep 0) into buf; returns its length. */
static size_t
args_ref(uint8_t *buf, size_t cap, uint64_t dep)
{
	size_t n = 0;

	buf[0] = dep != 0 ? 0x91 : 0x90;
	if (dep != 0)
		assert_int_equal(
		    futref_encode(buf + 1, cap - 1, &n, dep, 0, NULL, 0), 0);
	return n + 1;
}

/* One submit of tasks first..first+n-1, each "square" with [ref(tag-1)]
 * (the first with [] when first is 1): a chain. */
static struct fake_req *
submit_chain(struct fake *f, uint64_t first, uint32_t n)
{
	uint8_t args[FERRY_FUTURE_REF_MAX + 1];

	proto_writer_reset(&f->w);
	proto_write_submit_begin(&f->w);
	for (uint64_t tag = first; tag < first + n; tag++) {
		uint64_t dep = tag - 1;
		size_t   len = args_ref(args, sizeof(args), dep);
		proto_write_submit_entry(&f->w, tag, "square", 6, args, len,
		    NULL, NULL, 0, NULL, dep != 0 ? &dep : NULL, dep != 0);
	}
	proto_write_submit_end(&f->w);
	return fake_send(f, C);
}

/* Answered, all accepted (a held answer comes at the next turn). */
static void
accepted(struct fake *f, const struct fake_req *r, uint64_t n)
{
	struct proto_msg m;

	if (fake_reply(f, r, &m) != 0) {
		fake_advance(f, 2);
		assert_int_equal(fake_reply(f, r, &m), 0);
	}
	assert_int_equal(m.type, PROTO_SUBMITTED);
	assert_int_equal(m.accepted, n);
}

/* The tasks a work request got: ids and args (of the first) */
static uint32_t
work(struct fake *f, const uint64_t *done, uint32_t n_done, uint64_t *ids,
    uint8_t *args0, size_t *args0_len)
{
	struct fake_req *r = fake_work(f, W, 8, done, n_done, 0);
	struct proto_msg m;
	uint32_t         n = 0;

	if (!r->answered)
		return 0; /* parked: nothing to run */
	assert_int_equal(fake_reply(f, r, &m), 0);
	assert_int_equal(m.type, PROTO_TASKS);
	for (uint32_t i = 0; i < m.n_tasks; i++)
		ids[n++] = m.tasks[i].id;
	if (m.n_tasks > 0 && args0 != NULL) {
		memcpy(args0, m.tasks[0].args, m.tasks[0].args_len);
		*args0_len = m.tasks[0].args_len;
	}
	return n;
}

/* ------------------------------------------------------------------ */

/* A chain of 5 runs one link at a time, each dispatched only when its
 * input's result (7, from the fake worker) is in its arguments. */
static void
test_chain_dispatch(void **state)
{
	struct fake f;
	uint64_t    ids[8];
	uint8_t     args[64];
	size_t      len = 0;
	uint32_t    n;
	(void)state;

	setup(&f);
	accepted(&f, submit_chain(&f, 1, 5), 5);
	assert_int_equal(f.s.n_waiting, 4);
	fake_check(&f);
	n = work(&f, NULL, 0, ids, args, &len);
	assert_int_equal(n, 1); /* only the head */
	assert_memory_equal(args, "\x90", 1);
	for (int link = 2; link <= 5; link++) {
		uint64_t prev = ids[0];
		n             = work(&f, &prev, 1, ids, args, &len);
		assert_int_equal(n, 1);
		/* [ref] became [7] */
		assert_int_equal(len, 2);
		assert_memory_equal(args, "\x91\x07", 2);
		assert_int_equal(f.s.n_waiting, (uint64_t)(5 - link));
		fake_check(&f);
	}
	n = work(&f, ids, 1, ids, NULL, NULL);
	assert_int_equal(n, 0);
	assert_int_equal(f.s.stat[ST_done], 5);
	fake_check(&f);
	fake_fini(&f);
}

/* Cancelling the head of a chain of 20,000 ends every link, in a loop
 * (a recursion as deep as the chain would overflow the stack). */
static void
test_long_chain_cancel(void **state)
{
	struct fake      f;
	struct session  *se;
	struct proto_msg m;
	(void)state;

	setup(&f);
	accepted(&f, submit_chain(&f, 1, 20000), 20000);
	assert_int_equal(f.s.n_waiting, 19999);
	assert_int_equal(fake_reply(&f, fake_cancel(&f, C, 1), &m), 0);
	assert_int_equal(m.type, PROTO_CANCELLED);
	assert_int_equal(f.s.n_waiting, 0);
	se = idmap_get(&f.s.sessions, 77);
	assert_int_equal(se->n_results, 20000);
	assert_int_equal(f.s.stat[ST_cancelled], 20000);
	fake_check(&f);
	fake_fini(&f);
}

/* The client goes and its session expires: its waiting tasks are
 * cancelled like its queued ones (one walk over the session's tasks,
 * while each cancel ends the tasks waiting for it). */
static void
test_session_expiry(void **state)
{
	struct fake f;
	uint64_t    ids[8];
	(void)state;

	setup(&f);
	accepted(&f, submit_chain(&f, 1, 200), 200);
	assert_int_equal(work(&f, NULL, 0, ids, NULL, NULL), 1);
	fake_close(&f, C);
	fake_advance(&f, f.cfg.result_ttl_ms + 1);
	assert_null(idmap_get(&f.s.sessions, 77));
	assert_int_equal(f.s.n_waiting, 0);
	/* the fake worker was silent past its heartbeat timeout too: the
	 * head went back to the queue, and was cancelled with the rest */
	assert_int_equal(f.s.stat[ST_cancelled], 200);
	assert_int_equal(f.s.tasks.count, 0);
	fake_check(&f);
	fake_fini(&f);
}

/* Expiry with trees: each tree's first task waits on a running head, its
 * second (some with run_anyway) on the first, its third on both and on
 * the previous tree's third.  Every waiting task ends cancelled: none
 * failed, none left. */
static void
test_expiry_trees(void **state)
{
	struct fake            f;
	struct proto_task_opts any = { PROTO_OPT_RUN_ANYWAY, 0, 0, 0, 0, 0,
		1 };
	uint8_t                args[4 * FERRY_FUTURE_REF_MAX];
	uint64_t               ids[8], tag = 2, last = 0;
	(void)state;

	setup(&f);
	proto_writer_reset(&f.w);
	proto_write_submit_begin(&f.w);
	proto_write_submit_entry(&f.w, 1, "square", 6, "\x90", 1, NULL, NULL,
	    0, NULL, NULL, 0);
	for (int i = 0; i < 200; i++) {
		uint64_t t0 = tag++, t1 = tag++, t2 = tag++, d[3];
		size_t   n = 1, k;
		args[0]    = 0x91;
		/* naming the session, as libferry's references do */
		futref_encode_in(args + 1, sizeof(args) - 1, &k, 1, 77, 0, NULL,
		    0);
		d[0] = 1;
		proto_write_submit_entry(&f.w, t0, "square", 6, args, k + 1,
		    NULL, NULL, 0, NULL, d, 1);
		futref_encode_in(args + 1, sizeof(args) - 1, &k, t0, 77, 0,
		    NULL, 0);
		d[0] = t0;
		proto_write_submit_entry(&f.w, t1, "square", 6, args, k + 1,
		    NULL, NULL, 0, i % 10 ? NULL : &any, d, 1);
		args[0] = last != 0 ? 0x93 : 0x92;
		d[0]    = t0;
		d[1]    = t1;
		d[2]    = last;
		for (int j = 0; j < (last != 0 ? 3 : 2); j++) {
			futref_encode_in(args + n, sizeof(args) - n, &k, d[j],
			    77, 0, NULL, 0);
			n += k;
		}
		proto_write_submit_entry(&f.w, t2, "square", 6, args, n, NULL,
		    NULL, 0, NULL, d, last != 0 ? 3 : 2);
		last = t2;
	}
	proto_write_submit_end(&f.w);
	accepted(&f, fake_send(&f, C), 601);
	assert_int_equal(f.s.n_waiting, 600);
	assert_int_equal(work(&f, NULL, 0, ids, NULL, NULL), 1);
	fake_close(&f, C);
	fake_advance(&f, f.cfg.result_ttl_ms + 1);
	assert_null(idmap_get(&f.s.sessions, 77));
	assert_int_equal(f.s.n_waiting, 0);
	assert_int_equal(f.s.stat[ST_failed], 0);
	assert_int_equal(f.s.stat[ST_cancelled], 601);
	fake_check(&f);
	fake_fini(&f);
}

/* A dependent whose arguments, with its input's result in place, would
 * not fit in a message to a worker fails with FERRY_ETOOBIG saying so,
 * instead of being sent and lost with the worker's connection. */
static void
test_too_big_after_splice(void **state)
{
	struct fake         f;
	struct sched_config cfg;
	struct proto_msg    m;
	struct session     *se;
	const struct result *r;
	uint8_t             args[128];
	size_t              n;
	uint64_t            ids[8], dep = 1;
	(void)state;

	sched_config_defaults(&cfg);
	cfg.max_message_size = 4096 + 64;
	fake_init(&f, &cfg);
	assert_int_equal(fake_reply(&f, fake_hello_worker(&f, W, fns, 0, 100),
	                     &m),
	    0);
	assert_int_equal(fake_reply(&f, fake_hello_client(&f, C, 77), &m), 0);
	/* [ref(1), "xxxx..." (60 bytes)] */
	args[0] = 0x92;
	assert_int_equal(futref_encode(args + 1, sizeof(args) - 1, &n, 1, 0,
	                     NULL, 0),
	    0);
	n += 1;
	args[n++] = 0xd9;
	args[n++] = 60;
	memset(args + n, 'x', 60);
	n += 60;
	proto_writer_reset(&f.w);
	proto_write_submit_begin(&f.w);
	proto_write_submit_entry(&f.w, 1, "square", 6, "\x90", 1, NULL, NULL,
	    0, NULL, NULL, 0);
	proto_write_submit_entry(&f.w, 2, "square", 6, args, n, NULL, NULL, 0,
	    NULL, &dep, 1);
	proto_write_submit_end(&f.w);
	accepted(&f, fake_send(&f, C), 2);
	assert_int_equal(work(&f, NULL, 0, ids, NULL, NULL), 1);
	assert_int_equal(work(&f, ids, 1, ids, NULL, NULL), 0);
	se = idmap_get(&f.s.sessions, 77);
	assert_non_null(r = idmap_get(&se->done, 2));
	assert_int_equal(r->code, FERRY_ETOOBIG);
	assert_non_null(memmem(r->data, r->len, "max_message_size", 16));
	assert_int_equal(f.s.n_waiting, 0);
	fake_check(&f);
	fake_fini(&f);
}

/*
 * Allocation failures: step 0 the submit of a chain of 4 (linking), 1 the
 * head's result (splicing, queueing the next), 2 the head cancelled (the
 * others end with it), 3 the session's expiry.  fail_at: which
 * allocation of that step fails (0: none).  Every task accepted is, after
 * the step, alive in a consistent state or ended with a result: never
 * lost.  Returns the allocations the step made.
 */
static long
scenario(int step, long fail_at)
{
	struct fake      f;
	struct fake_req *r;
	struct proto_msg m;
	struct session  *se;
	uint64_t         ids[8];
	uint64_t         ok = 0;
	long             allocs;

	setup(&f);
	f.fail_at = step == 0 ? (fail_at ? fail_at : LONG_MAX) : 0;
	r         = submit_chain(&f, 1, 4);
	allocs    = f.allocs;
	f.fail_at = 0;
	if (fake_reply(&f, r, &m) != 0) {
		fake_advance(&f, 2);
		assert_int_equal(fake_reply(&f, r, &m), 0);
	}
	if (m.type == PROTO_SUBMITTED)
		ok = m.accepted;
	fake_check(&f);
	se = idmap_get(&f.s.sessions, 77);
	/* each task is pending or has its result; none is both or lost */
	assert_int_equal(se->tags.count + se->n_results, ok);
	if (step == 1 && ok == 4) {
		assert_int_equal(work(&f, NULL, 0, ids, NULL, NULL), 1);
		f.fail_at = fail_at ? fail_at : LONG_MAX;
		fake_work(&f, W, 0, ids, 1, 0);
		allocs    = f.allocs;
		f.fail_at = 0;
		fake_check(&f);
		assert_int_equal(se->tags.count + se->n_results, 4);
	}
	if (step == 2 && ok == 4) {
		f.fail_at = fail_at ? fail_at : LONG_MAX;
		fake_cancel(&f, C, 1);
		allocs    = f.allocs;
		f.fail_at = 0;
		fake_check(&f);
		assert_int_equal(se->tags.count + se->n_results, 4);
	}
	if (step == 3) {
		f.fail_at = fail_at ? fail_at : LONG_MAX;
		fake_close(&f, C);
		allocs = f.allocs;
		fake_advance(&f, f.cfg.result_ttl_ms + 1);
		if (f.allocs > allocs)
			allocs = f.allocs; /* each call fails its k-th */
		f.fail_at = 0;
		fake_check(&f);
	}
	fake_check(&f);
	fake_fini(&f);
	return allocs;
}

static void
test_allocation_failures(void **state)
{
	static const char *const names[] = { "submit and link",
		"an input's result", "cancel of the head", "session expiry" };
	(void)state;

	for (int step = 0; step < 4; step++) {
		long total = scenario(step, 0);
		printf("# %s: %ld allocations, each failed in turn\n",
		    names[step], total);
		assert_true(total > 0);
		for (long k = 1; k <= total; k++)
			scenario(step, k);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chain_dispatch),
		cmocka_unit_test(test_long_chain_cancel),
		cmocka_unit_test(test_session_expiry),
		cmocka_unit_test(test_too_big_after_splice),
		cmocka_unit_test(test_expiry_trees),
		cmocka_unit_test(test_allocation_failures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
