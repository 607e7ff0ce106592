/*
 * test_dispatch.c - the scheduler's dispatch policy: holders first, the
 * oldest task otherwise, and no task left waiting while a worker is free.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dispatch.h"

#define A 101 /* worker ids */
#define B 102
#define C 103

static void
test_fifo_without_objects(void **state)
{
	struct disp *d = disp_new();
	uint64_t     out[8];
	(void)state;
	assert_non_null(d);
	for (uint64_t id = 1; id <= 5; id++)
		assert_int_equal(disp_enqueue(d, id, 0, NULL, 0, 0), 0);
	assert_int_equal(disp_enqueue(d, 3, 0, NULL, 0, 0), -1); /* twice */
	assert_int_equal(disp_queued(d), 5);
	assert_int_equal(disp_pick(d, A, out, 2, NULL), 2);
	assert_int_equal(out[0], 1);
	assert_int_equal(out[1], 2);
	/* a re-queued task goes first */
	assert_int_equal(disp_enqueue(d, 1, 0, NULL, 0, 1), 0);
	disp_remove(d, 4);
	assert_false(disp_is_queued(d, 4));
	assert_int_equal(disp_pick(d, B, out, 8, NULL), 3);
	assert_int_equal(out[0], 1);
	assert_int_equal(out[1], 3);
	assert_int_equal(out[2], 5);
	assert_int_equal(disp_queued(d), 0);
	assert_int_equal(disp_pick(d, B, out, 8, NULL), 0);
	disp_free(d);
}

/* A worker that holds an object gets that object's tasks first, even
 * when older tasks wait. */
static void
test_holder_preferred(void **state)
{
	struct disp *d  = disp_new();
	uint64_t     X  = disp_key("mmap:/data/x", 12);
	uint64_t     Y  = disp_key("mmap:/data/y", 12);
	uint64_t     out[8];
	size_t       local;
	(void)state;
	assert_int_equal(disp_worker_add(d, A), 0);
	assert_int_equal(disp_worker_add(d, B), 0);
	assert_int_equal(disp_worker_object(d, A, X, 1), 0);
	assert_int_equal(disp_worker_object(d, B, Y, 1), 0);
	assert_int_equal(disp_holders(d, X), 1);
	/* 1, 2 need Y; 3, 4 need X */
	assert_int_equal(disp_enqueue(d, 1, 0, &Y, 1, 0), 0);
	assert_int_equal(disp_enqueue(d, 2, 0, &Y, 1, 0), 0);
	assert_int_equal(disp_enqueue(d, 3, 0, &X, 1, 0), 0);
	assert_int_equal(disp_enqueue(d, 4, 0, &X, 1, 0), 0);
	assert_int_equal(disp_pick(d, A, out, 2, &local), 2);
	assert_int_equal(local, 2);
	assert_int_equal(out[0], 3);
	assert_int_equal(out[1], 4);
	assert_int_equal(disp_pick(d, B, out, 8, &local), 2);
	assert_int_equal(local, 2);
	assert_int_equal(out[0], 1);
	assert_int_equal(out[1], 2);
	disp_free(d);
}

/* Nobody starves: a worker holding nothing takes tasks of a busy holder,
 * and a holder's own object never blocks other work. */
static void
test_no_starvation(void **state)
{
	struct disp *d = disp_new();
	uint64_t     X = disp_key("mmap:/data/x", 12);
	uint64_t     out[16];
	size_t       local;
	(void)state;
	disp_worker_add(d, A);
	disp_worker_add(d, B);
	disp_worker_object(d, A, X, 1);
	for (uint64_t id = 1; id <= 6; id++)
		assert_int_equal(disp_enqueue(d, id, 0, &X, 1, 0), 0);
	/* A is busy (not idle): B takes X's tasks rather than wait */
	disp_worker_idle(d, A, 0);
	assert_int_equal(disp_pick(d, B, out, 3, &local), 3);
	assert_int_equal(local, 0);
	assert_int_equal(out[0], 1);
	/* A still gets the rest, via its object queue (dead entries of the
	 * tasks B took are skipped) */
	assert_int_equal(disp_pick(d, A, out, 16, &local), 3);
	assert_int_equal(local, 3);
	assert_int_equal(out[0], 4);
	assert_int_equal(disp_queued(d), 0);
	disp_free(d);
}

/* A task is left for an idle holder, but only that task: the asking
 * worker still gets everything else, in order. */
static void
test_deferred_to_idle_holder(void **state)
{
	struct disp *d = disp_new();
	uint64_t     X = disp_key("mmap:/x", 7);
	uint64_t     out[16];
	(void)state;
	disp_worker_add(d, A);
	disp_worker_add(d, B);
	disp_worker_object(d, A, X, 1);
	disp_worker_idle(d, A, 1);
	assert_int_equal(disp_enqueue(d, 1, 0, NULL, 0, 0), 0);
	assert_int_equal(disp_enqueue(d, 2, 0, &X, 1, 0), 0);
	assert_int_equal(disp_enqueue(d, 3, 0, NULL, 0, 0), 0);
	assert_int_equal(disp_pick(d, B, out, 16, NULL), 2);
	assert_int_equal(out[0], 1);
	assert_int_equal(out[1], 3);
	assert_true(disp_is_queued(d, 2));
	/* the idle holder takes it next */
	assert_int_equal(disp_pick(d, A, out, 16, NULL), 1);
	assert_int_equal(out[0], 2);
	/* once the holder is gone, anyone gets such tasks */
	assert_int_equal(disp_enqueue(d, 4, 0, &X, 1, 0), 0);
	disp_worker_remove(d, A);
	assert_int_equal(disp_holders(d, X), 0);
	assert_int_equal(disp_pick(d, B, out, 16, NULL), 1);
	assert_int_equal(out[0], 4);
	disp_free(d);
}

/* Dropping an object ends the preference; unknown workers get FIFO. */
static void
test_evicted_object(void **state)
{
	struct disp *d = disp_new();
	uint64_t     X = disp_key("mmap:/x", 7);
	uint64_t     out[4];
	size_t       local;
	(void)state;
	disp_worker_add(d, A);
	disp_worker_object(d, A, X, 1);
	disp_worker_object(d, A, X, 1); /* twice is once */
	assert_int_equal(disp_holders(d, X), 1);
	disp_worker_object(d, A, X, 0);
	assert_int_equal(disp_holders(d, X), 0);
	assert_int_equal(disp_enqueue(d, 7, 0, &X, 1, 0), 0);
	assert_int_equal(disp_pick(d, A, out, 4, &local), 1);
	assert_int_equal(local, 0);
	assert_int_equal(disp_pick(d, 999, out, 4, NULL), 0);
	assert_int_equal(disp_worker_object(d, 999, X, 1), -1);
	disp_free(d);
}

/* Many tasks and workers: every task is picked exactly once. */
static void
test_each_task_once(void **state)
{
	struct disp *d = disp_new();
	enum { N = 20000, W = 4, O = 7 };
	uint64_t   keys[O], out[64];
	uint8_t   *seen = calloc(N + 1, 1);
	size_t     total = 0;
	unsigned   rnd   = 12345;
	(void)state;
	for (int i = 0; i < O; i++) {
		char k[16];
		int  len = snprintf(k, sizeof(k), "mmap:/o%d", i);
		keys[i]  = disp_key(k, (size_t)len);
	}
	for (int w = 0; w < W; w++) {
		disp_worker_add(d, 1000 + w);
		disp_worker_object(d, 1000 + w, keys[w % O], 1);
	}
	for (uint64_t id = 1; id <= N; id++)
		assert_int_equal(disp_enqueue(d, id, 0, &keys[id % O], 1, 0), 0);
	while (disp_queued(d) > 0) {
		size_t n;
		rnd = rnd * 1103515245u + 12345u;
		disp_worker_idle(d, 1000 + (rnd >> 8) % W, (rnd >> 4) & 1);
		n = disp_pick(d, 1000 + (rnd >> 16) % W, out, 1 + (rnd >> 20) % 64,
		    NULL);
		for (size_t i = 0; i < n; i++) {
			assert_true(out[i] >= 1 && out[i] <= N);
			assert_int_equal(seen[out[i]], 0);
			seen[out[i]] = 1;
		}
		total += n;
		if ((rnd & 0xff) == 7 && total > 0) /* re-queue one */
			for (uint64_t id = 1; id <= N; id++)
				if (seen[id]) {
					seen[id] = 0;
					total--;
					assert_int_equal(disp_enqueue(d, id, 0,
					    &keys[id % O], 1, 1), 0);
					break;
				}
	}
	assert_int_equal(total, N);
	free(seen);
	disp_free(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fifo_without_objects),
		cmocka_unit_test(test_holder_preferred),
		cmocka_unit_test(test_no_starvation),
		cmocka_unit_test(test_deferred_to_idle_holder),
		cmocka_unit_test(test_evicted_object),
		cmocka_unit_test(test_each_task_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
