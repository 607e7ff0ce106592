/*
 * test_sched.c - the task life cycle the scheduler enforces.
 *
 * Every bug in a task queue is a wrong transition; these are the ones the
 * scheduler's single state-changing function accepts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "scheduler.h"

static void
test_allowed_transitions(void **state)
{
	/* from \ to: queued assigned done failed cancelled delayed dead
	 * waiting */
	static const int allowed[TASK_STATE_MAX][TASK_STATE_MAX] = {
		[TASK_QUEUED]    = { 0, 1, 0, 1, 1, 0, 1, 0 },
		[TASK_ASSIGNED]  = { 1, 0, 1, 1, 1, 1, 1, 0 },
		[TASK_DONE]      = { 0, 0, 0, 0, 0, 0, 0, 0 },
		[TASK_FAILED]    = { 0, 0, 0, 0, 0, 0, 0, 0 },
		[TASK_CANCELLED] = { 0, 0, 0, 0, 0, 0, 0, 0 },
		[TASK_DELAYED]   = { 1, 0, 0, 1, 1, 0, 1, 0 },
		[TASK_DEAD]      = { 0, 0, 0, 0, 0, 0, 0, 0 },
		/* a waiting task never runs or dies before it is queued;
		 * waiting -> waiting records an input's result put in */
		[TASK_WAITING]   = { 1, 0, 0, 1, 1, 0, 0, 1 },
	};
	(void)state;
	for (int from = 0; from < TASK_STATE_MAX; from++)
		for (int to = 0; to < TASK_STATE_MAX; to++) {
			int ok = sched_transition_ok(from, to) != 0;
			if (ok != allowed[from][to])
				fail_msg("%s -> %s: expected %s",
				    sched_state_name(from), sched_state_name(to),
				    allowed[from][to] ? "allowed" : "refused");
		}
}

static void
test_final_states_are_final(void **state)
{
	(void)state;
	for (int to = 0; to < TASK_STATE_MAX; to++) {
		assert_false(sched_transition_ok(TASK_DONE, to));
		assert_false(sched_transition_ok(TASK_FAILED, to));
		assert_false(sched_transition_ok(TASK_CANCELLED, to));
		assert_false(sched_transition_ok(TASK_DEAD, to));
	}
	/* a task waiting for its retry never runs before it is queued */
	assert_false(sched_transition_ok(TASK_DELAYED, TASK_ASSIGNED));
	assert_false(sched_transition_ok(TASK_DELAYED, TASK_DONE));
	/* a worker's loss sends an assigned task back to the queue */
	assert_true(sched_transition_ok(TASK_ASSIGNED, TASK_QUEUED));
	/* but a queued task cannot finish without running */
	assert_false(sched_transition_ok(TASK_QUEUED, TASK_DONE));
}

static void
test_state_names(void **state)
{
	(void)state;
	assert_string_equal(sched_state_name(TASK_QUEUED), "queued");
	assert_string_equal(sched_state_name(TASK_ASSIGNED), "assigned");
	assert_string_equal(sched_state_name(TASK_DONE), "done");
	assert_string_equal(sched_state_name(TASK_FAILED), "failed");
	assert_string_equal(sched_state_name(TASK_CANCELLED), "cancelled");
	assert_string_equal(sched_state_name(TASK_DELAYED), "delayed");
	assert_string_equal(sched_state_name(TASK_DEAD), "dead");
	assert_string_equal(sched_state_name(TASK_WAITING), "waiting");
	assert_string_equal(sched_state_name(TASK_SUBMITTED), "submitted");
	assert_string_equal(sched_state_name(-1), "?");
	assert_string_equal(sched_state_name(TASK_RESTORED), "restored");
	assert_string_equal(sched_state_name(TASK_RESTORED + 1), "?");
	assert_false(sched_transition_ok(-1, TASK_QUEUED));
	assert_false(sched_transition_ok(TASK_RESTORED + 1, TASK_QUEUED));
	/* a new task, or one read back from the journal, goes to the
	 * queue, or waits for the tasks it refers to */
	for (int to = 0; to < TASK_STATE_MAX; to++) {
		assert_int_equal(sched_transition_ok(TASK_SUBMITTED, to),
		    to == TASK_QUEUED || to == TASK_WAITING);
		assert_int_equal(sched_transition_ok(TASK_RESTORED, to),
		    to == TASK_QUEUED || to == TASK_WAITING);
	}
}

static void
test_backoff(void **state)
{
	(void)state;
	/* no jitter (factor 1) at rnd 0xffff, half at rnd 0 */
	assert_int_equal(sched_backoff_ms(100, 10000, 1, 0xffff), 100);
	assert_int_equal(sched_backoff_ms(100, 10000, 1, 0), 50);
	assert_int_equal(sched_backoff_ms(100, 10000, 2, 0xffff), 200);
	assert_int_equal(sched_backoff_ms(100, 10000, 4, 0xffff), 800);
	/* capped */
	assert_int_equal(sched_backoff_ms(100, 1000, 10, 0xffff), 1000);
	assert_int_equal(sched_backoff_ms(100, 1000, 1000000, 0xffff), 1000);
	assert_int_equal(sched_backoff_ms(100, 1000, 10, 0), 500);
	/* always within [d/2, d] */
	for (uint32_t r = 0; r < 0x10000; r += 257) {
		uint64_t d = sched_backoff_ms(300, 100000, 3, r);
		assert_true(d >= 600 && d <= 1200);
	}
	assert_int_equal(sched_backoff_ms(0, 0, 5, 0x1234), 0);
}

static void
test_verdict(void **state)
{
	(void)state;
	/* a crash with retries left: retried */
	assert_int_equal(sched_verdict(1, 1, 3, 3, 1, 1), SCHED_RETRY);
	/* the third kill: dead, whatever the retries */
	assert_int_equal(sched_verdict(3, 3, 10, 3, 1, 1), SCHED_DEAD);
	/* out of retries before quarantine: failed */
	assert_int_equal(sched_verdict(1, 1, 0, 3, 1, 1), SCHED_FAIL);
	assert_int_equal(sched_verdict(2, 4, 3, 3, 1, 1), SCHED_FAIL);
	/* a task error is retried only when retryable */
	assert_int_equal(sched_verdict(0, 1, 3, 3, 0, 0), SCHED_FAIL);
	assert_int_equal(sched_verdict(0, 1, 3, 3, 0, 1), SCHED_RETRY);
	assert_int_equal(sched_verdict(0, 4, 3, 3, 0, 1), SCHED_FAIL);
	/* errors never make a task dead */
	assert_int_equal(sched_verdict(5, 5, 10, 3, 0, 1), SCHED_RETRY);
	/* quarantine after one kill */
	assert_int_equal(sched_verdict(1, 1, 3, 1, 1, 1), SCHED_DEAD);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allowed_transitions),
		cmocka_unit_test(test_final_states_are_final),
		cmocka_unit_test(test_state_names),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_verdict),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
