/*
 * test_slots.c - the slot table a worker process shares with its
 * supervisor: what each side reads of the other's writes, and that a
 * cancel racing with a task's start is never missed by both sides.
 *
 * The two sides use two separate mappings of the same memfd, as the two
 * processes do.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "slots.h"

/* A table created by the "supervisor" and attached by the "worker". */
struct pair {
	struct wrk_slots *sup, *wrk;
};

static void
pair_open(struct pair *p, uint32_t n)
{
	char err[256];
	int  fd;
	assert_int_equal(wrk_slots_create(&p->sup, n, &fd, err, sizeof(err)),
	    0);
	assert_true(fd >= 0);
	assert_int_equal(wrk_slots_attach(&p->wrk, fd, n, err, sizeof(err)),
	    0);
	close(fd); /* both mappings outlive the descriptor */
	assert_int_equal(wrk_slots_count(p->sup), n);
	assert_int_equal(wrk_slots_count(p->wrk), n);
}

static void
pair_close(struct pair *p)
{
	wrk_slots_free(p->wrk);
	wrk_slots_free(p->sup);
}

static void
test_write_read(void **state)
{
	struct pair          p;
	struct wrk_slot_info si;
	(void)state;

	pair_open(&p, 4);
	/* fresh: idle, not registered, not recycled */
	for (uint32_t i = 0; i < 4; i++) {
		assert_int_equal(wrk_slots_read(p.sup, i, &si), 0);
		assert_int_equal(si.task, 0);
	}
	assert_int_equal(wrk_slots_worker(p.sup), 0);
	assert_int_equal(wrk_slots_recycled(p.sup), 0);

	wrk_slots_set_worker(p.wrk, 17);
	assert_int_equal(wrk_slots_worker(p.sup), 17);

	assert_int_equal(wrk_slots_begin(p.wrk, 2, 99, 1000, 3000), 0);
	assert_int_equal(wrk_slots_begin(p.wrk, 0, 5, 1500, 0), 0);
	assert_int_equal(wrk_slots_read(p.sup, 2, &si), 1);
	assert_int_equal(si.task, 99);
	assert_int_equal(si.started_ms, 1000);
	assert_int_equal(si.deadline_ms, 3000);
	assert_int_equal(wrk_slots_read(p.sup, 0, &si), 1);
	assert_int_equal(si.task, 5);
	assert_int_equal(si.deadline_ms, 0);
	assert_int_equal(wrk_slots_read(p.sup, 1, &si), 0);

	wrk_slots_end(p.wrk, 2);
	assert_int_equal(wrk_slots_read(p.sup, 2, &si), 0);
	assert_int_equal(si.task, 0);
	assert_int_equal(si.deadline_ms, 0);

	/* out of range slots are ignored, never written */
	assert_int_equal(wrk_slots_begin(p.wrk, 4, 7, 1, 2), 0);
	assert_int_equal(wrk_slots_read(p.sup, 4, &si), 0);

	wrk_slots_set_recycled(p.wrk);
	assert_int_equal(wrk_slots_recycled(p.sup), 1);
	pair_close(&p);

	/* no table at all: every call is harmless */
	assert_int_equal(wrk_slots_begin(NULL, 0, 1, 1, 1), 0);
	wrk_slots_end(NULL, 0);
	assert_int_equal(wrk_slots_cancel(NULL, 1), 0);
	assert_int_equal(wrk_slots_worker(NULL), 0);
	wrk_slots_free(NULL);
}

static void
test_cancel(void **state)
{
	struct pair          p;
	struct wrk_slot_info si;
	(void)state;

	pair_open(&p, 2);
	/* cancelled before it starts: skipped, the slot stays idle */
	assert_int_equal(wrk_slots_cancel(p.sup, 10), 0);
	assert_int_equal(wrk_slots_begin(p.wrk, 0, 10, 1, 0), 1);
	assert_int_equal(wrk_slots_read(p.sup, 0, &si), 0);
	/* other tasks still run */
	assert_int_equal(wrk_slots_begin(p.wrk, 0, 11, 1, 0), 0);
	/* cancelled while running: the supervisor sees it */
	assert_int_equal(wrk_slots_cancel(p.sup, 11), 1);
	wrk_slots_end(p.wrk, 0);
	/* in the other slot too */
	assert_int_equal(wrk_slots_begin(p.wrk, 1, 12, 1, 0), 0);
	assert_int_equal(wrk_slots_cancel(p.sup, 12), 1);
	wrk_slots_end(p.wrk, 1);
	/* the ring remembers the last WRK_SLOTS_CANCEL_RING ids */
	for (uint64_t id = 1000; id < 1000 + WRK_SLOTS_CANCEL_RING; id++)
		assert_int_equal(wrk_slots_cancel(p.sup, id), 0);
	assert_int_equal(wrk_slots_begin(p.wrk, 0, 1000, 1, 0), 1);
	assert_int_equal(
	    wrk_slots_begin(p.wrk, 0, 1000 + WRK_SLOTS_CANCEL_RING - 1, 1, 0),
	    1);
	/* ...and forgets older ones */
	assert_int_equal(wrk_slots_begin(p.wrk, 0, 10, 1, 0), 0);
	wrk_slots_end(p.wrk, 0);
	pair_close(&p);
}

static void
test_attach_rejects(void **state)
{
	char              err[256];
	struct wrk_slots *s = NULL, *t = NULL;
	int               fd, fds[2];
	(void)state;

	assert_int_equal(wrk_slots_create(&s, 0, &fd, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "out of range"));
	assert_int_equal(wrk_slots_create(&s, 2, &fd, err, sizeof(err)), 0);
	/* fewer slots than the process runs */
	assert_int_equal(wrk_slots_attach(&t, fd, 3, err, sizeof(err)), -1);
	assert_null(t);
	assert_non_null(strstr(err, "need 3 slots"));
	close(fd);
	wrk_slots_free(s);
	/* not a table */
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(wrk_slots_attach(&t, fds[0], 1, err, sizeof(err)),
	    -1);
	close(fds[0]);
	close(fds[1]);
	assert_int_equal(wrk_slots_attach(&t, -1, 1, err, sizeof(err)), -1);
}

/* ---- two threads: a cancel racing with the start of the same task ---- */

#define RACE_N 20000

struct race {
	struct pair       p;
	_Atomic uint64_t  sup_ready; /* the supervisor is at task i */
	_Atomic uint64_t  sup_done;  /* ... and finished with it */
	_Atomic uint64_t  wrk_done;  /* the worker finished task i */
	uint8_t           skipped[RACE_N + 1];
	uint8_t           seen[RACE_N + 1];
	int               timed_out;
};

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wait (bounded: 20 s in all) until *v >= want; 0, or -1 on timeout. */
static int
wait_for(struct race *r, _Atomic uint64_t *v, uint64_t want, uint64_t end)
{
	unsigned spins = 0;
	while (atomic_load(v) < want) {
		if (r->timed_out)
			return -1;
		if (++spins % 1024 == 0) {
			if (now_ms() > end) {
				r->timed_out = 1;
				return -1;
			}
			sched_yield();
		}
	}
	return 0;
}

static void *
race_worker(void *arg)
{
	struct race *r   = arg;
	uint64_t     end = now_ms() + 20000;
	for (uint64_t i = 1; i <= RACE_N; i++) {
		/* start task i while the supervisor may be cancelling it */
		if (wait_for(r, &r->sup_ready, i, end) != 0)
			break;
		if (wrk_slots_begin(r->p.wrk, (uint32_t)(i % 2), i, i, 0)) {
			r->skipped[i] = 1;
		} else {
			/* "run" it until the supervisor has looked */
			if (wait_for(r, &r->sup_done, i, end) != 0)
				break;
			wrk_slots_end(r->p.wrk, (uint32_t)(i % 2));
		}
		atomic_store(&r->wrk_done, i);
	}
	return NULL;
}

static void *
race_supervisor(void *arg)
{
	struct race *r   = arg;
	uint64_t     end = now_ms() + 20000;
	for (uint64_t i = 1; i <= RACE_N; i++) {
		if (wait_for(r, &r->wrk_done, i - 1, end) != 0)
			break;
		atomic_store(&r->sup_ready, i);
		if (i % 3 != 0 && wrk_slots_cancel(r->p.sup, i))
			r->seen[i] = 1;
		atomic_store(&r->sup_done, i);
	}
	return NULL;
}

static void
test_cancel_race(void **state)
{
	struct race *r = calloc(1, sizeof(*r));
	pthread_t    a, b;
	unsigned     both = 0, missed = 0, wrong = 0;
	(void)state;

	assert_non_null(r);
	pair_open(&r->p, 2);
	assert_int_equal(pthread_create(&a, NULL, race_worker, r), 0);
	assert_int_equal(pthread_create(&b, NULL, race_supervisor, r), 0);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	assert_false(r->timed_out);
	for (uint64_t i = 1; i <= RACE_N; i++) {
		int cancelled = i % 3 != 0;
		if (!cancelled && (r->skipped[i] || r->seen[i]))
			wrong++; /* never cancelled, yet skipped or "killed" */
		if (cancelled && !r->skipped[i] && !r->seen[i])
			missed++; /* ran, and the supervisor did not see it */
		if (r->skipped[i] && r->seen[i])
			both++;
	}
	printf("# %u of %u cancels seen by both sides\n", both,
	    RACE_N * 2 / 3);
	assert_int_equal(wrong, 0);
	assert_int_equal(missed, 0);
	pair_close(&r->p);
	free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_read),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_attach_rejects),
		cmocka_unit_test(test_cancel_race),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
