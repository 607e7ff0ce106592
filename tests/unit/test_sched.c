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
	/* from \ to: queued assigned done failed cancelled */
	static const int allowed[TASK_STATE_MAX][TASK_STATE_MAX] = {
		[TASK_QUEUED]    = { 0, 1, 0, 1, 1 },
		[TASK_ASSIGNED]  = { 1, 0, 1, 1, 1 },
		[TASK_DONE]      = { 0, 0, 0, 0, 0 },
		[TASK_FAILED]    = { 0, 0, 0, 0, 0 },
		[TASK_CANCELLED] = { 0, 0, 0, 0, 0 },
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
	}
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
	assert_string_equal(sched_state_name(-1), "?");
	assert_string_equal(sched_state_name(TASK_STATE_MAX), "?");
	assert_false(sched_transition_ok(-1, TASK_QUEUED));
	assert_false(sched_transition_ok(TASK_STATE_MAX, TASK_QUEUED));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allowed_transitions),
		cmocka_unit_test(test_final_states_are_final),
		cmocka_unit_test(test_state_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
