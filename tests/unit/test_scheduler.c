/*
 * test_scheduler.c - the scheduler's modules together, with no network
 * (sched_fake.c stands in for the request contexts): the task state
 * machine seen by an observer, results and acks, leases, parked
 * requests, timers, function-aware dispatch, workers that register again
 * holding their tasks, and what every allocation failure on the submit,
 * dispatch, result, session-expiry and re-registration paths leaves
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

#include "ferry/ferry.h"
#include "log.h"
#include "sched_fake.h"

enum { W = 1, C = 2, S = 3, W2 = 11, W3 = 12, W4 = 13 }; /* pipe ids */

static const char *const fns[] = { "square", "noop", NULL };

/* ------------------------------------------------------------ helpers */

/* Ids of the tasks in a "tasks" reply, into ids (up to max). */
static uint32_t
tasks_of(struct fake *f, const struct fake_req *r, uint64_t *ids,
    uint32_t max)
{
	struct proto_msg m;
	uint32_t         n = 0;

	assert_int_equal(fake_reply(f, r, &m), 0);
	assert_int_equal(m.type, PROTO_TASKS);
	for (uint32_t i = 0; i < m.n_tasks && n < max; i++)
		ids[n++] = m.tasks[i].id;
	return n;
}

/* A worker and a client, both registered. */
static void
setup(struct fake *f)
{
	struct proto_msg m;
	fake_init(f, NULL);
	assert_int_equal(fake_reply(f, fake_hello_worker(f, W, fns, 0, 100),
	                     &m),
	    0);
	assert_int_equal(m.type, PROTO_WELCOME);
	assert_int_equal(fake_reply(f, fake_hello_client(f, C, 77), &m), 0);
	assert_int_equal(m.type, PROTO_WELCOME);
}

/* ---------------------------------------------- one door, observers */

struct seen {
	int      from[32], to[32];
	int      n;
	int32_t  end_code;
	uint64_t id;
};

static void
watch(struct sched *s, struct task *t, int from, int to,
    const struct task_end *end, void *arg)
{
	struct seen *v = arg;
	(void)s;
	if (v->id == 0)
		v->id = t->id;
	if (t->id != v->id || v->n == 32)
		return;
	v->from[v->n] = from;
	v->to[v->n++] = to;
	if (end != NULL)
		v->end_code = end->code;
}

/* An observer sees every transition of a task that is submitted,
 * dispatched, killed, retried, dispatched again and finished. */
static void
test_observer_sees_every_transition(void **state)
{
	static const int want_from[] = { TASK_SUBMITTED, TASK_QUEUED,
		TASK_ASSIGNED, TASK_DELAYED, TASK_QUEUED, TASK_ASSIGNED };
	static const int want_to[] = { TASK_QUEUED, TASK_ASSIGNED,
		TASK_DELAYED, TASK_QUEUED, TASK_ASSIGNED, TASK_DONE };
	struct fake      f;
	struct seen      v;
	struct proto_msg m;
	uint64_t         id;
	(void)state;

	memset(&v, 0, sizeof(v));
	fake_init(&f, NULL);
	assert_int_equal(sched_observe(&f.s, ~0u, ~0u, watch, &v), 0);
	fake_hello_supervisor(&f, S, 55);
	fake_hello_worker(&f, W, fns, 55, 100);
	fake_hello_client(&f, C, 77);
	fake_submit(&f, C, "square", 1, 1);
	assert_int_equal(tasks_of(&f, fake_work(&f, W, 8, NULL, 0, 0), &id, 1),
	    1);
	/* its process dies of it: the supervisor says so */
	assert_int_equal(fake_reply(&f, fake_report(&f, S, 100, 1, id, 1,
	                                    "signal"),
	                     &m),
	    0);
	assert_int_equal(m.type, PROTO_ORDERS);
	fake_check(&f);
	/* the retry comes after its backoff (at most 100 ms) */
	fake_advance(&f, 200);
	fake_hello_worker(&f, W4, fns, 55, 101);
	assert_int_equal(tasks_of(&f, fake_work(&f, W4, 8, NULL, 0, 0),
	                     &id, 1),
	    1);
	fake_work(&f, W4, 0, &id, 1, 0);
	fake_check(&f);

	assert_int_equal(v.n, 6);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(v.from[i], want_from[i]);
		assert_int_equal(v.to[i], want_to[i]);
	}
	assert_int_equal(v.end_code, 0);
	assert_int_equal(f.s.stat[ST_submitted], 1);
	assert_int_equal(f.s.stat[ST_retried], 1);
	assert_int_equal(f.s.stat[ST_kills], 1);
	assert_int_equal(f.s.stat[ST_done], 1);
	fake_fini(&f);
}

/* ------------------------------------------------- results and acks */

static void
test_results_and_acks(void **state)
{
	struct fake      f;
	struct proto_msg m;
	uint64_t         ids[4];
	struct fake_req *park;
	(void)state;

	setup(&f);
	/* a fetch waits for results */
	park = fake_fetch(&f, C, 0, 5000);
	assert_false(park->answered);
	fake_submit(&f, C, "square", 1, 3);
	assert_int_equal(tasks_of(&f, fake_work(&f, W, 8, NULL, 0, 0), ids, 4),
	    3);
	fake_work(&f, W, 0, ids, 2, 0);
	/* the parked fetch got the two results */
	assert_int_equal(fake_reply(&f, park, &m), 0);
	assert_int_equal(m.type, PROTO_RESULTS);
	assert_int_equal(m.n_results, 2);
	assert_int_equal(m.seq, 2);
	assert_int_equal(m.results[0].attempts, 1);
	/* an ack beyond what was sent is refused and deletes nothing */
	fake_work(&f, W, 0, ids + 2, 1, 0);
	assert_int_equal(fake_reply(&f, fake_fetch(&f, C, 3, 0), &m), 0);
	assert_int_equal(m.type, PROTO_ERROR);
	assert_int_equal(m.code, FERRY_EPROTO);
	assert_int_equal(f.s.results_stored, 3);
	/* ack 2: the third comes, with seq 3 */
	assert_int_equal(fake_reply(&f, fake_fetch(&f, C, 2, 0), &m), 0);
	assert_int_equal(m.n_results, 1);
	assert_int_equal(m.results[0].id, 3);
	assert_int_equal(m.seq, 3);
	assert_int_equal(fake_check(&f), 0);
	assert_int_equal(f.s.results_stored, 1);
	assert_int_equal(fake_reply(&f, fake_fetch(&f, C, 3, 0), &m), 0);
	assert_int_equal(m.n_results, 0);
	assert_int_equal(f.s.results_stored, 0);
	fake_fini(&f);
}

/* ---------------------------------------------------------- leases */

/* A worker silent past the heartbeat timeout loses its tasks to the
 * queue; its later results are late and never delivered. */
static void
test_lease_lost(void **state)
{
	struct fake      f;
	struct proto_msg m;
	uint64_t         ids[4];
	(void)state;

	setup(&f);
	fake_submit(&f, C, "square", 1, 2);
	assert_int_equal(tasks_of(&f, fake_work(&f, W, 8, NULL, 0, 0), ids, 4),
	    2);
	assert_int_equal(f.s.n_assigned, 2);
	fake_advance(&f, f.cfg.heartbeat_timeout_ms / 2);
	assert_int_equal(f.s.n_workers, 1);
	fake_advance(&f, f.cfg.heartbeat_timeout_ms);
	assert_int_equal(f.s.n_workers, 0);
	assert_int_equal(f.s.n_queued, 2);
	assert_int_equal(f.s.stat[ST_requeued], 2);
	fake_check(&f);
	/* it speaks again with its results: late, and told to register */
	assert_int_equal(fake_reply(&f, fake_work(&f, W, 8, ids, 2, 0), &m),
	    0);
	assert_int_equal(m.type, PROTO_ERROR);
	assert_int_equal(m.code, FERRY_ESTATE);
	assert_int_equal(f.s.stat[ST_late_results], 2);
	assert_int_equal(f.s.results_stored, 0);
	fake_fini(&f);
}

/* ------------------------------------------------- parked requests */

/* A work request with nothing to do is parked and answered by the next
 * submit; after a heartbeat interval an idle one is answered empty. */
static void
test_parked_work(void **state)
{
	struct fake      f;
	struct fake_req *park;
	uint64_t         ids[4];
	(void)state;

	setup(&f);
	park = fake_work(&f, W, 8, NULL, 0, 0);
	assert_false(park->answered);
	fake_submit(&f, C, "noop", 1, 1);
	assert_true(park->answered);
	assert_int_equal(tasks_of(&f, park, ids, 4), 1);
	park = fake_work(&f, W, 8, NULL, 0, 0);
	assert_false(park->answered);
	fake_advance(&f, f.cfg.heartbeat_interval_ms + 1);
	assert_true(park->answered);
	assert_int_equal(tasks_of(&f, park, ids, 4), 0);
	fake_check(&f);
	fake_fini(&f);
}

/* A task goes only to a worker that registered its function; one whose
 * function no worker runs waits, counted, and runs when one comes. */
static void
test_dispatch_by_function(void **state)
{
	static const char *const other[] = { "other", NULL };
	struct fake              f;
	struct fake_req         *park;
	uint64_t                 ids[4];
	(void)state;

	setup(&f);
	fake_hello_worker(&f, W2, other, 0, 200);
	fake_submit(&f, C, "other", 1, 1);
	fake_submit(&f, C, "square", 2, 1);
	/* the first worker does not run "other" */
	assert_int_equal(tasks_of(&f, fake_work(&f, W, 8, NULL, 0, 0), ids, 4),
	    1);
	assert_int_equal(idmap_get(&f.s.tasks, ids[0]) != NULL, 1);
	assert_int_equal(((struct task *)idmap_get(&f.s.tasks, ids[0]))->tag,
	    2);
	park = fake_work(&f, W, 8, NULL, 0, 0);
	assert_false(park->answered); /* "other" is not for it */
	fake_check(&f);
	/* the second worker leaves: "other" waits for a worker */
	fake_close(&f, W2);
	assert_int_equal(f.s.n_unserved, 1);
	assert_false(park->answered);
	fake_hello_worker(&f, W3, other, 0, 201);
	assert_int_equal(f.s.n_unserved, 0);
	assert_int_equal(tasks_of(&f, fake_work(&f, W3, 8, NULL, 0, 0),
	                     ids, 4),
	    1);
	fake_check(&f);
	fake_fini(&f);
}

/* ---------------------------------------------------------- timers */

/* A task that failed with retries waits its backoff, then is queued. */
static void
test_retry_timer(void **state)
{
	struct fake f;
	uint64_t    id;
	(void)state;

	setup(&f);
	fake_hello_supervisor(&f, S, 9);
	fake_submit(&f, C, "square", 1, 1);
	assert_int_equal(tasks_of(&f, fake_work(&f, W, 8, NULL, 0, 0), &id, 1),
	    1);
	fake_work(&f, W, 0, &id, 1, FERRY_ECRASHED);
	assert_int_equal(f.s.n_delayed, 1);
	fake_advance(&f, 10);
	assert_true(f.s.n_delayed == 1 || f.s.n_queued == 1);
	fake_advance(&f, f.cfg.task_backoff_ms + 1);
	assert_int_equal(f.s.n_delayed, 0);
	assert_int_equal(f.s.n_queued, 1);
	fake_check(&f);
	fake_fini(&f);
}

/* ---------------------------------------------- riding through a drop */

/* The task ids a welcome says to drop, sorted into ids; how many. */
static uint32_t
drops_of(struct fake *f, const struct fake_req *r, uint64_t *ids,
    uint32_t max)
{
	struct proto_msg m;
	uint32_t         n = 0;

	assert_int_equal(fake_reply(f, r, &m), 0);
	assert_int_equal(m.type, PROTO_WELCOME);
	assert_true(m.epoch == f->s.epoch && m.epoch != 0);
	for (uint32_t i = 0; i < m.n_drop && n < max; i++)
		ids[n++] = m.drop[i];
	for (uint32_t i = 1; i < n; i++) /* few: insertion sort */
		for (uint32_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
			uint64_t x = ids[j];
			ids[j]     = ids[j - 1];
			ids[j - 1] = x;
		}
	return n;
}

/* The worker registered on pipe (NULL: none). */
static struct worker *
worker_on(struct fake *f, uint32_t pipe)
{
	struct idmap_iter it = { 0, 0 };
	struct worker    *w;

	while (idmap_iter_next(&f->s.workers, &it, NULL, (void **)&w))
		if (w->pipe == pipe)
			return w;
	return NULL;
}

/* Every result the session has, each tag once, fetched and checked: code
 * 0 with the worker's value 7 and the attempts wanted.  Returns how
 * many. */
static uint32_t
results_once(struct fake *f, uint64_t ack, uint32_t attempts)
{
	struct proto_msg m;
	uint64_t         seen = 0;

	assert_int_equal(fake_reply(f, fake_fetch(f, C, ack, 0), &m), 0);
	assert_int_equal(m.type, PROTO_RESULTS);
	for (uint32_t i = 0; i < m.n_results; i++) {
		const struct proto_result *r = &m.results[i];
		assert_true(r->id < 64);
		assert_false(seen >> r->id & 1); /* never twice */
		seen |= (uint64_t)1 << r->id;
		assert_int_equal(r->code, 0);
		assert_int_equal(r->len, 1);
		assert_int_equal(((const uint8_t *)r->data)[0], 7);
		assert_int_equal(r->attempts, attempts);
	}
	return m.n_results;
}

/* A worker whose connection drops keeps the tasks it holds when it
 * registers again saying so: they were re-queued, nobody took them, they
 * are its own again (no second dispatch), and its results count; each
 * task ran once. */
static void
test_rejoin_keeps_queued(void **state)
{
	struct fake      f;
	uint64_t         ids[8], drop[8], epoch;
	struct worker   *w;
	struct fake_req *r;
	(void)state;

	setup(&f);
	epoch = f.s.epoch;
	assert_true(epoch != 0);
	fake_submit(&f, C, "square", 1, 3);
	assert_int_equal(tasks_of(&f, fake_work(&f, W, 8, NULL, 0, 0), ids, 8),
	    3);
	fake_close(&f, W); /* no supervisor: re-queued at once */
	assert_int_equal(f.s.n_queued, 3);
	assert_int_equal(f.s.stat[ST_requeued], 3);
	fake_check(&f);

	r = fake_hello_rejoin(&f, W2, fns, 0, 100, epoch, 1, ids, 3);
	assert_int_equal(drops_of(&f, r, drop, 8), 0);
	assert_int_equal(f.s.n_queued, 0);
	assert_int_equal(f.s.n_assigned, 3);
	assert_non_null(w = worker_on(&f, W2));
	assert_int_equal(w->held, 3);
	assert_int_equal(fake_check(&f), 3);
	/* nothing is handed out again */
	assert_int_equal(tasks_of(&f, fake_work(&f, W2, 8, ids, 1, 0), drop,
	                     8),
	    0);
	fake_work(&f, W2, 0, ids + 1, 2, 0);
	assert_int_equal(f.s.stat[ST_late_results], 0);
	assert_int_equal(fake_check(&f), 0);
	/* one result each, one run each */
	assert_int_equal(results_once(&f, 0, 1), 3);
	fake_fini(&f);
}

/* A task re-dispatched to another worker while its first one was away is
 * dropped by the first; the one nobody took is kept.  Each runs once. */
static void
test_rejoin_drops_redispatched(void **state)
{
	struct fake      f;
	uint64_t         ids[8], other[8], drop[8], epoch;
	struct fake_req *r;
	(void)state;

	setup(&f);
	epoch = f.s.epoch;
	fake_submit(&f, C, "square", 1, 2);
	assert_int_equal(tasks_of(&f, fake_work(&f, W, 8, NULL, 0, 0), ids, 8),
	    2);
	fake_hello_worker(&f, W3, fns, 0, 300);
	fake_close(&f, W);
	/* the other worker takes one of them meanwhile */
	assert_int_equal(tasks_of(&f, fake_work(&f, W3, 1, NULL, 0, 0), other,
	                     8),
	    1);
	r = fake_hello_rejoin(&f, W2, fns, 0, 100, epoch, 1, ids, 2);
	assert_int_equal(drops_of(&f, r, drop, 8), 1);
	assert_true(drop[0] == other[0]);
	assert_int_equal(f.s.n_queued, 0);
	assert_int_equal(worker_on(&f, W2)->held, 1);
	assert_int_equal(worker_on(&f, W3)->held, 1);
	fake_check(&f);
	/* both report; the dropped one's run is only W3's */
	fake_work(&f, W3, 0, other, 1, 0);
	fake_work(&f, W2, 0, ids[0] == other[0] ? ids + 1 : ids, 1, 0);
	assert_int_equal(f.s.stat[ST_late_results], 0);
	assert_int_equal(fake_check(&f), 0);
	assert_int_equal(results_once(&f, 0, 1), 2);
	fake_fini(&f);
}

/* A supervised worker's tasks wait for its supervisor's report (a
 * ghost); the process registers again before it: what it holds moves to
 * the new registration, what it lost on the way goes back to the queue
 * at once, and the grace ending later changes nothing. */
static void
test_rejoin_from_ghost(void **state)
{
	struct fake      f;
	uint64_t         ids[8], drop[8], epoch;
	struct fake_req *r;
	(void)state;

	fake_init(&f, NULL);
	fake_hello_supervisor(&f, S, 55);
	fake_hello_worker(&f, W, fns, 55, 100);
	fake_hello_client(&f, C, 77);
	epoch = f.s.epoch;
	fake_submit(&f, C, "square", 1, 3);
	assert_int_equal(tasks_of(&f, fake_work(&f, W, 8, NULL, 0, 0), ids, 8),
	    3);
	fake_close(&f, W);
	assert_int_equal(f.s.ghosts.count, 1);
	assert_int_equal(f.s.n_assigned, 3);
	/* another process of the same supervisor does not take them */
	r = fake_hello_rejoin(&f, W3, fns, 55, 101, epoch, 1, ids, 2);
	assert_int_equal(drops_of(&f, r, drop, 8), 2);
	assert_int_equal(worker_on(&f, W3)->held, 0);
	assert_int_equal(f.s.ghosts.count, 1);
	fake_check(&f);
	/* its own process does: the third was lost on its way */
	r = fake_hello_rejoin(&f, W2, fns, 55, 100, epoch, 1, ids, 2);
	assert_int_equal(drops_of(&f, r, drop, 8), 0);
	assert_int_equal(f.s.ghosts.count, 0);
	assert_int_equal(worker_on(&f, W2)->held, 2);
	assert_int_equal(f.s.n_queued, 1);
	assert_int_equal(f.s.stat[ST_requeued], 1);
	fake_check(&f);
	fake_advance(&f, f.cfg.report_grace_ms + 1);
	assert_int_equal(worker_on(&f, W2)->held, 2);
	fake_work(&f, W2, 0, ids, 2, 0);
	assert_int_equal(tasks_of(&f, fake_work(&f, W3, 8, NULL, 0, 0), drop,
	                     8),
	    1);
	assert_true(drop[0] == ids[2]);
	fake_work(&f, W3, 0, drop, 1, 0);
	assert_int_equal(f.s.stat[ST_late_results], 0);
	assert_int_equal(fake_check(&f), 0);
	assert_int_equal(results_once(&f, 0, 1), 3);
	fake_fini(&f);
}

/* A process that held tasks of another run of the scheduler (it restarted
 * without a journal) drops them all, even where the same ids name tasks
 * of this run: those are not the ones it holds. */
static void
test_rejoin_other_run(void **state)
{
	struct fake      f;
	uint64_t         held[2] = { 1, 2 }, drop[8];
	struct fake_req *r;
	(void)state;

	setup(&f);
	fake_submit(&f, C, "square", 1, 1); /* task 1 of this run */
	assert_non_null(idmap_get(&f.s.tasks, 1));
	r = fake_hello_rejoin(&f, W2, fns, 0, 100, f.s.epoch ^ 1, 4, held, 2);
	assert_int_equal(drops_of(&f, r, drop, 8), 2);
	assert_true(drop[0] == 1 && drop[1] == 2);
	assert_int_equal(f.s.n_queued, 1);
	assert_int_equal(worker_on(&f, W2)->held, 0);
	/* holding without an epoch: dropped too */
	r = fake_hello_rejoin(&f, W3, fns, 0, 101, 0, 0, held, 2);
	assert_int_equal(drops_of(&f, r, drop, 8), 0); /* not sent */
	{
		/* the writer sends holding only with an epoch: by hand */
		proto_writer_reset(&f.w);
		proto_open(&f.w, PROTO_HELLO);
		proto_put_str(&f.w, "role", "worker");
		proto_put_uint(&f.w, "slots", 1);
		proto_put_uint(&f.w, "capacity", 4);
		proto_put_key(&f.w, "functions");
		msgpack_pack_array(&f.w.pk, 0);
		proto_put_key(&f.w, "holding");
		msgpack_pack_array(&f.w.pk, 1);
		msgpack_pack_uint64(&f.w.pk, 1);
		proto_end(&f.w);
		r = fake_send(&f, W4);
		assert_int_equal(drops_of(&f, r, drop, 8), 1);
		assert_true(drop[0] == 1);
	}
	assert_int_equal(f.s.n_queued, 1);
	assert_int_equal(fake_check(&f), 1);
	fake_fini(&f);
}

/* A failed run's result reached the scheduler, the connection dropped
 * before its answer, and the retry was queued by the time the worker
 * came back still holding that result: not its run any more (the
 * failure is counted once), and the retry is dispatched as usual. */
static void
test_rejoin_after_failed_run(void **state)
{
	struct fake      f;
	uint64_t         id, drop[8], epoch;
	struct fake_req *r;
	struct task     *t;
	(void)state;

	setup(&f);
	epoch = f.s.epoch;
	fake_submit(&f, C, "square", 1, 1);
	assert_int_equal(tasks_of(&f, fake_work(&f, W, 8, NULL, 0, 0), &id, 1),
	    1);
	fake_work(&f, W, 0, &id, 1, FERRY_ECRASHED);
	fake_close(&f, W);
	assert_int_equal(f.s.n_delayed, 1);
	/* back while it waits: dropped */
	r = fake_hello_rejoin(&f, W2, fns, 0, 100, epoch, 1, &id, 1);
	assert_int_equal(drops_of(&f, r, drop, 8), 1);
	fake_close(&f, W2);
	/* back after the backoff: dropped too (its result came from
	 * registration 1) */
	fake_advance(&f, f.cfg.task_backoff_max_ms + 1);
	assert_int_equal(f.s.n_queued, 1);
	r = fake_hello_rejoin(&f, W3, fns, 0, 100, epoch, 1, &id, 1);
	assert_int_equal(drops_of(&f, r, drop, 8), 1);
	assert_int_equal(f.s.n_queued, 1);
	assert_non_null(t = idmap_get(&f.s.tasks, id));
	assert_int_equal(t->failures, 1);
	assert_int_equal(t->attempts, 1);
	assert_int_equal(tasks_of(&f, fake_work(&f, W3, 8, NULL, 0, 0), drop,
	                     8),
	    1);
	fake_work(&f, W3, 0, &id, 1, 0);
	assert_int_equal(fake_check(&f), 0);
	assert_int_equal(results_once(&f, 0, 2), 1);
	fake_fini(&f);
}

/* The same hello twice on one connection (its first answer crossed a
 * reconnection): the same registration, its tasks still its own. */
static void
test_rejoin_twice(void **state)
{
	struct fake      f;
	uint64_t         ids[8], drop[8], epoch;
	struct fake_req *r;
	(void)state;

	setup(&f);
	epoch = f.s.epoch;
	fake_submit(&f, C, "square", 1, 2);
	assert_int_equal(tasks_of(&f, fake_work(&f, W, 8, NULL, 0, 0), ids, 8),
	    2);
	fake_close(&f, W);
	fake_hello_rejoin(&f, W2, fns, 0, 100, epoch, 1, ids, 2);
	r = fake_hello_rejoin(&f, W2, fns, 0, 100, epoch, 1, ids, 2);
	assert_int_equal(drops_of(&f, r, drop, 8), 0);
	assert_int_equal(f.s.n_workers, 1);
	assert_int_equal(worker_on(&f, W2)->held, 2);
	fake_work(&f, W2, 0, ids, 2, 0);
	assert_int_equal(fake_check(&f), 0);
	assert_int_equal(results_once(&f, 0, 1), 2);
	fake_fini(&f);
}

/* ------------------------------------------------- failing allocations */

#define N 5

/* Every task of the client's N: pending or with its result, once. */
static void
check_none_lost(struct fake *f, uint64_t accepted_mask)
{
	struct session *se = idmap_get(&f->s.sessions, 77);
	assert_non_null(se);
	for (uint64_t tag = 1; tag <= N; tag++) {
		int pending = idmap_get(&se->tags, tag) != NULL;
		int done    = idmap_get(&se->done, tag) != NULL;
		if (accepted_mask >> tag & 1)
			assert_int_equal(pending + done, 1);
		else
			assert_int_equal(pending + done, 0);
	}
}

/* The ids of the tasks the (only) worker holds, into ids. */
static uint32_t
held_by_worker(struct fake *f, uint64_t *ids, uint32_t max)
{
	struct idmap_iter it = { 0, 0 };
	struct worker    *w;
	uint32_t          n = 0;

	while (idmap_iter_next(&f->s.workers, &it, NULL, (void **)&w))
		for (struct list_node *ln = list_first(&w->tasks);
		     ln != NULL && n < max; ln = list_next(&w->tasks, ln))
			ids[n++] = list_entry(ln, struct task, wnode)->id;
	return n;
}

/* Run every task to its result with no failure: the worker reports what
 * it holds and asks for more, until nothing is pending (retries and
 * limbo get their time).  Returns how many results the session holds. */
static uint64_t
finish_all(struct fake *f)
{
	struct session *se = idmap_get(&f->s.sessions, 77);
	for (int round = 0; round < 50 && se->tags.count > 0; round++) {
		uint64_t ids[64];
		uint32_t n = held_by_worker(f, ids, 64);
		struct fake_req *r = fake_work(f, W, n > 0 ? 0 : 64, ids, n, 0);
		if (!r->answered)
			fake_advance(f, 2000); /* parked: answered empty */
		else
			fake_advance(f, 50);
	}
	return se->n_results;
}

/* Which of the tags 1..N the reply to a submit accepted. */
static uint64_t
accepted_of(struct fake *f, const struct fake_req *r)
{
	struct proto_msg m;
	uint64_t         mask = 0;

	if (fake_reply(f, r, &m) != 0) {
		/* held back: all accepted (it is sent at the next turn) */
		fake_advance(f, 2);
		assert_int_equal(fake_reply(f, r, &m), 0);
	}
	if (m.type == PROTO_ERROR)
		return 0;
	assert_int_equal(m.type, PROTO_SUBMITTED);
	for (uint64_t tag = 1; tag <= N; tag++)
		mask |= (uint64_t)1 << tag;
	for (uint32_t i = 0; i < m.n_results; i++)
		mask &= ~((uint64_t)1 << m.results[i].id);
	return mask;
}

/*
 * The step of the scenario where allocations fail: 0 submit, 1 dispatch,
 * 2 results, 3 the client's session goes and expires, 4 the worker's
 * process registers again holding its tasks.  fail_at: which
 * allocation of that step fails (0: none).  Returns the allocations the
 * step made.
 */
static long
scenario(int step, long fail_at)
{
	struct fake      f;
	struct fake_req *r;
	uint64_t         mask = 0, ids[N];
	uint32_t         n    = 0;
	long             allocs;

	setup(&f);
	f.fail_at = step == 0 ? fail_at : 0;
	if (f.fail_at == 0 && step == 0)
		f.fail_at = LONG_MAX; /* count only */
	r         = fake_submit(&f, C, "square", 1, N);
	allocs    = f.allocs;
	f.fail_at = 0;
	mask      = accepted_of(&f, r);
	fake_check(&f);
	check_none_lost(&f, mask);
	if (step >= 1) {
		r = fake_work(&f, W, 64, NULL, 0, 0);
		if (r->answered && !r->dropped)
			n = tasks_of(&f, r, ids, N);
	}
	if (step == 1) {
		/* the worker is lost: its tasks go back to the queue (room
		 * in dispatch), and a new one takes them */
		f.fail_at = fail_at ? fail_at : LONG_MAX;
		fake_close(&f, W);
		allocs    = f.allocs;
		f.fail_at = 0;
		fake_check(&f);
		check_none_lost(&f, mask);
		fake_hello_worker(&f, W, fns, 0, 101);
		fake_check(&f);
	}
	if (step == 4) {
		/* the worker's connection drops and its process registers
		 * again holding them: kept, or (if that fails) registered
		 * afresh by its restarted process, and nothing lost */
		struct proto_msg m;
		fake_close(&f, W);
		f.fail_at = fail_at ? fail_at : LONG_MAX;
		r = fake_hello_rejoin(&f, W, fns, 0, 100, f.s.epoch, 1, ids, n);
		allocs    = f.allocs;
		f.fail_at = 0;
		fake_check(&f);
		check_none_lost(&f, mask);
		assert_int_equal(fake_reply(&f, r, &m), 0);
		if (m.type == PROTO_ERROR)
			fake_hello_worker(&f, W, fns, 0, 101);
		else
			assert_int_equal(m.n_drop, 0);
		fake_check(&f);
	}
	if (step >= 2 && step < 4) {
		f.fail_at = step == 2 ? (fail_at ? fail_at : LONG_MAX) : 0;
		fake_work(&f, W, 0, ids, n, 0);
		if (step == 2)
			allocs = f.allocs;
		f.fail_at = 0;
		fake_check(&f);
		check_none_lost(&f, mask);
	}
	if (step != 3) {
		/* nothing lost: every accepted task reaches its result */
		uint64_t want = 0;
		for (uint64_t tag = 1; tag <= N; tag++)
			want += mask >> tag & 1;
		assert_int_equal(finish_all(&f), want);
		check_none_lost(&f, mask);
	} else {
		/* results and tasks pending: the client goes, then expires */
		f.fail_at = fail_at ? fail_at : LONG_MAX;
		fake_close(&f, C);
		allocs = f.allocs;
		fake_advance(&f, f.cfg.result_ttl_ms + 1);
		allocs += f.allocs;
		f.fail_at = 0;
		fake_check(&f);
		assert_null(idmap_get(&f.s.sessions, 77));
	}
	fake_check(&f);
	fake_fini(&f);
	return allocs;
}

static void
test_allocation_failures(void **state)
{
	static const char *const step_names[] = { "submit",
		"re-queue and dispatch", "result", "session expiry",
		"registering again" };
	(void)state;

	for (int step = 0; step < 5; step++) {
		long total = scenario(step, 0);
		printf("# %s: %ld allocations, each failed in turn\n",
		    step_names[step], total);
		assert_true(total > 0 || step == 3);
		for (long k = 1; k <= total; k++) {
			if (getenv("FERRY_TEST_LOG") != NULL)
				printf("# %s: allocation %ld fails\n",
				    step_names[step], k);
			scenario(step, k);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_observer_sees_every_transition),
		cmocka_unit_test(test_results_and_acks),
		cmocka_unit_test(test_lease_lost),
		cmocka_unit_test(test_parked_work),
		cmocka_unit_test(test_dispatch_by_function),
		cmocka_unit_test(test_retry_timer),
		cmocka_unit_test(test_rejoin_keeps_queued),
		cmocka_unit_test(test_rejoin_drops_redispatched),
		cmocka_unit_test(test_rejoin_from_ghost),
		cmocka_unit_test(test_rejoin_other_run),
		cmocka_unit_test(test_rejoin_after_failed_run),
		cmocka_unit_test(test_rejoin_twice),
		cmocka_unit_test(test_allocation_failures),
	};
	log_init("test", getenv("FERRY_TEST_LOG") != NULL ? LOG_DEBUG
	                                                 : LOG_ERROR + 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
