/*
 * workers.c - the worker registry: hellos, work requests (results in,
 * tasks out), leases, lost workers and ghosts.
 *
 * Dispatch flows by credit (docs/protocol.md 4.5): a worker's work
 * request says how many more tasks it can hold; it gets at most that
 * many, several per message, and only tasks whose function it registered.
 * A work request with nothing to hand out is parked until tasks arrive or
 * a heartbeat interval passes.  A worker silent past the heartbeat
 * timeout loses its lease (its tasks go back to the queue); one whose
 * connection closes while its supervisor may still report is a ghost: its
 * tasks wait for that report (or report_grace_ms), so the task that
 * killed the process is charged before it runs again.  A process that
 * registers again says what it still holds (docs/protocol.md 4.9): what
 * was not handed to anyone else meanwhile stays its own (workers_claim),
 * the rest it drops.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "ferry/ferry.h"
#include "log.h"
#include "sched_int.h"

static void
wait_remove(struct sched *s, struct worker *w)
{
	if (!list_linked(&w->wait_node))
		return;
	disp_worker_idle(s->disp, w->id, 0);
	list_remove(&w->wait_node);
}

static void
wait_append(struct sched *s, struct worker *w)
{
	if (list_linked(&w->wait_node))
		return;
	disp_worker_idle(s->disp, w->id, 1);
	list_append(&s->waiting, &w->wait_node);
}

/*
 * Choose for worker w up to credit queued tasks that it runs (into
 * s->pick, taken out of the queue), no more than a fair share when others
 * wait too.  Returns how many.
 */
static size_t
tasks_pick(struct sched *s, struct worker *w, uint64_t credit)
{
	uint64_t share;
	size_t   picked, local = 0;

	if (credit == 0 || s->n_queued == 0 || results_full(s) ||
	    s->draining)
		return 0; /* clients are not fetching, or stopping */
	share = (s->n_queued + s->n_workers - 1) /
	    (s->n_workers ? s->n_workers : 1);
	if (share == 0)
		share = 1;
	if (credit > share)
		credit = share;
	if (credit > SCHED_MAX_BATCH)
		credit = SCHED_MAX_BATCH;
	picked = disp_pick(s->disp, w->id, s->pick, credit, &local);
	w->local += local;
	s->stat[ST_local] += local;
	return picked;
}

/*
 * Answer a worker's work request (held by rc) with the first picked tasks
 * of s->pick, as many as fit in a message (the rest go back to the front
 * of the queue).  Returns how many were sent.
 */
static uint32_t
tasks_send(struct sched *s, struct worker *w, struct rctx *rc, size_t picked)
{
	uint64_t     n = 0, *ids = s->pick;
	size_t       budget = s->cfg->max_message_size - 4096;
	struct task *t;

	proto_writer_reset(&s->w);
	proto_write_tasks_begin(&s->w);
	disp_worker_idle(s->disp, w->id, 0);
	for (size_t i = 0; i < picked; i++) {
		t = idmap_get(&s->tasks, ids[i]);
		if (n > 0 &&
		    s->w.buf.size + t->args_len + t->fn_len + 32 > budget) {
			/* the rest go in later messages: back in front, in
			 * their order (the state did not change yet) */
			for (size_t j = picked; j-- > i;)
				task_enqueue(s, idmap_get(&s->tasks, ids[j]),
				    1);
			break;
		}
		task_assign(s, t, w);
		proto_write_tasks_entry(&s->w, t->id, task_fn(t), t->fn_len,
		    t->args, t->args_len, t->timeout_ms);
		n++;
	}
	proto_write_tasks_end(&s->w);
	reply(s, rc);
	return (uint32_t)n;
}

void
dispatch(struct sched *s)
{
	struct list_node *n, *next;

	list_for_each_safe(&s->waiting, n, next)
	{
		struct worker *w = list_entry(n, struct worker, wait_node);
		size_t         picked;

		if (s->n_queued <= s->n_unserved || results_full(s) ||
		    s->draining)
			break;
		if (!w->park.active) {
			wait_remove(s, w);
			continue;
		}
		if ((picked = tasks_pick(s, w, w->park.credit)) == 0)
			continue; /* it runs none of them: stays parked */
		wait_remove(s, w);
		tasks_send(s, w, park_take(&w->park), picked);
	}
}

/* Forget a worker's task functions (it runs nothing any more). */
static void
worker_drop_functions(struct sched *s, struct worker *w)
{
	for (uint32_t i = 0; i < w->n_functions; i++)
		fn_unref(s, w->functions[i]);
	free(w->functions);
	w->functions   = NULL;
	w->n_functions = 0;
}

static void
worker_free(struct sched *s, struct worker *w)
{
	worker_drop_functions(s, w);
	free(w);
}

/* Take w out of the registry and dispatch (it stays allocated). */
static void
worker_unregister(struct sched *s, struct worker *w)
{
	park_drop(s, &w->park);
	wait_remove(s, w);
	disp_worker_remove(s->disp, w->id);
	idmap_del(&s->workers, w->id);
	s->n_workers--;
}

/* Put every task w holds back in the queue; returns how many. */
static uint32_t
requeue_held(struct sched *s, struct worker *w, const char *why)
{
	uint32_t n = 0;
	while (!list_empty(&w->tasks)) {
		task_set_state(s,
		    list_entry(list_first(&w->tasks), struct task, wnode),
		    TASK_QUEUED, why);
		n++;
	}
	return n;
}

void
worker_lost(struct sched *s, struct worker *w, const char *why)
{
	log_warn("worker %" PRIu64 " (%s, pid %" PRIu64 ", %s) lost: %s; "
	         "re-queueing %u task(s)",
	    w->id, w->name, w->pid, w->host, why, w->held);
	requeue_held(s, w, why);
	worker_unregister(s, w);
	worker_free(s, w);
}

/* A worker's lease: lost once it has been silent past the heartbeat
 * timeout, else looked at again in half a heartbeat interval. */
static void
lease_due(void *owner, uint64_t id, uint32_t gen)
{
	struct sched  *s = owner;
	struct worker *w = idmap_get(&s->workers, id);
	uint64_t       now = sched_now(s);
	struct rctx   *rc;
	char           why[128];

	(void)gen;
	if (w == NULL)
		return;
	if (now - w->last_seen_ms <= s->cfg->heartbeat_timeout_ms) {
		timer_add(s, now + s->cfg->heartbeat_interval_ms / 2 + 1,
		    lease_due, w->id, 0);
		return;
	}
	snprintf(why, sizeof(why),
	    "silent for %" PRIu64 " ms (heartbeat timeout %u ms)",
	    now - w->last_seen_ms, s->cfg->heartbeat_timeout_ms);
	/* forget it; its connection stays (closing a pipe from here could
	 * stall NNG's listener): if it ever speaks again it is told it is
	 * not registered, and registers afresh.  A parked request is told
	 * now (it reads it when it wakes) */
	if ((rc = park_take(&w->park)) != NULL)
		reply_error(s, rc, FERRY_ESTATE,
		    "lease lost: silent past the heartbeat timeout; register "
		    "again");
	peer_del(s, w->pipe);
	worker_lost(s, w, why);
}

uint64_t
workers_epoch(struct sched *s)
{
	if (s->epoch == 0)
		s->epoch = util_random64();
	return s->epoch;
}

/* Whether registrations a and b are of the same worker process: its
 * supervisor's token, its pid and its host. */
static int
same_process(const struct worker *a, const struct worker *b)
{
	return a->pid != 0 && a->pid == b->pid && a->sup_token == b->sup_token &&
	    strcmp(a->host, b->host) == 0;
}

size_t
workers_claim(struct sched *s, struct worker *w, const uint64_t *ids,
    size_t n, uint64_t previous, uint64_t *drop)
{
	size_t queued = 0, moved = 0, n_drop = 0;

	for (size_t i = 0; i < n; i++) {
		struct task *t = idmap_get(&s->tasks, ids[i]);

		if (t != NULL && t->state == TASK_QUEUED &&
		    (previous == 0 || t->result_from != previous)) {
			/* re-queued when the worker was lost, and not handed
			 * to anyone since: the run it has goes on */
			task_reclaim(s, t, w);
			queued++;
		} else if (t != NULL && t->state == TASK_ASSIGNED &&
		    t->worker != w && same_process(t->worker, w)) {
			task_reclaim(s, t, w); /* from a ghost, or a stale
			                        * registration */
			moved++;
		} else if (t == NULL || t->state != TASK_ASSIGNED ||
		    t->worker != w) {
			/* running elsewhere, waiting to retry, finished,
			 * unknown; or queued again after its result from the
			 * previous registration came (a retry): not its run */
			drop[n_drop++] = ids[i];
		}
	}
	if (n > 0)
		log_info("worker %" PRIu64 " (pid %" PRIu64 ") registered again "
		         "holding %zu task(s): %zu kept (%zu re-queued, %zu from "
		         "its lost registration), %zu to drop",
		    w->id, w->pid, n, queued + moved, queued, moved, n_drop);
	return n_drop;
}

/* The ghosts of w's process are not coming back: their tasks that the
 * process does not hold any more (lost on their way) go back to the
 * queue now rather than after the report grace. */
static void
ghosts_release_of(struct sched *s, const struct worker *w)
{
	struct idmap_iter it = { 0, 0 };
	struct worker    *g;

	while (idmap_iter_next(&s->ghosts, &it, NULL, (void **)&g))
		if (same_process(g, w))
			ghost_release(s, g, "its process registered again "
			                    "without them");
}

/* The process behind new registration w says what it holds (m's epoch,
 * previous and holding): keep what it may.  Returns how many of those
 * tasks it must drop, into drop (room for m->n_holding). */
static size_t
worker_rejoin(struct sched *s, struct worker *w, const struct proto_msg *m,
    uint64_t *drop)
{
	size_t n_drop;

	if (m->epoch == 0 && m->n_holding == 0)
		return 0; /* a new process */
	if (m->epoch != workers_epoch(s)) {
		/* ids of another run of the scheduler (restarted without a
		 * journal that kept them): here they name other tasks */
		log_info("worker %" PRIu64 " (pid %" PRIu64 ") holds %u task(s) "
		         "of another scheduler run: to drop",
		    w->id, w->pid, m->n_holding);
		if (m->n_holding > 0)
			memcpy(drop, m->holding, m->n_holding * sizeof(*drop));
		return m->n_holding;
	}
	n_drop = workers_claim(s, w, m->holding, m->n_holding, m->previous,
	    drop);
	ghosts_release_of(s, w);
	return n_drop;
}

/* Answer rc with w's welcome: its id, this run's epoch, and the n_drop
 * held tasks it must drop. */
static void
welcome_worker(struct sched *s, struct rctx *rc, const struct worker *w,
    const uint64_t *drop, size_t n_drop)
{
	struct proto_welcome        m = { w->id, s->cfg->heartbeat_interval_ms,
		       s->cfg->heartbeat_timeout_ms, s->cfg->max_message_size, 0, 0,
		       0 };
	struct proto_welcome_worker x = { workers_epoch(s), drop,
		(uint32_t)n_drop };

	proto_writer_reset(&s->w);
	proto_write_welcome_worker(&s->w, &m, &x);
	reply(s, rc);
}

void
handle_worker_hello(struct sched *s, uint32_t pipe, const struct proto_msg *m,
    struct rctx *rc)
{
	struct worker *w    = calloc(1, sizeof(*w));
	uint32_t      *idx  = NULL;
	uint64_t      *drop = NULL;
	size_t         n_drop;

	if (w == NULL ||
	    (w->functions = calloc(m->n_functions + 1,
	         sizeof(*w->functions))) == NULL ||
	    (idx = calloc(m->n_functions + 1, sizeof(*idx))) == NULL ||
	    (drop = malloc((m->n_holding + 1) * sizeof(*drop))) == NULL) {
		if (w != NULL)
			free(w->functions);
		free(w);
		free(idx);
		reply_error(s, rc, FERRY_ENOMEM, "out of memory");
		return;
	}
	w->id   = ++s->next_worker_id;
	w->pipe = pipe;
	list_init(&w->tasks);
	util_strlcpy(w->name, m->name, sizeof(w->name));
	util_strlcpy(w->host, m->host, sizeof(w->host));
	util_strlcpy(w->group, m->group, sizeof(w->group));
	w->pid          = m->pid;
	w->sup_token    = m->supervisor;
	w->slots        = (uint32_t)m->slots;
	w->capacity     = (uint32_t)m->capacity;
	w->last_seen_ms = w->connected_ms = sched_now(s);
	for (uint32_t i = 0; i < m->n_functions; i++) {
		struct fnreg *f = fn_ref(s, m->functions[i]);
		if (f == NULL)
			break;
		w->functions[w->n_functions] = f;
		idx[w->n_functions++]        = f->idx;
	}
	if (w->n_functions < m->n_functions ||
	    idmap_put(&s->workers, w->id, w) != 0 ||
	    disp_worker_add(s->disp, w->id) != 0 ||
	    disp_worker_functions(s->disp, w->id, idx, w->n_functions) != 0 ||
	    peer_add(s, pipe, PEER_WORKER, w) != 0) {
		idmap_del(&s->workers, w->id);
		disp_worker_remove(s->disp, w->id);
		worker_free(s, w);
		free(idx);
		free(drop);
		reply_error(s, rc, FERRY_ENOMEM, "out of memory");
		return;
	}
	free(idx);
	s->n_workers++;
	timer_add(s, w->last_seen_ms + s->cfg->heartbeat_interval_ms,
	    lease_due, w->id, 0);
	log_info("worker %" PRIu64 " registered: %s pid %" PRIu64
	         " on %s, group %s, %u slot(s), %u function(s)",
	    w->id, w->name, w->pid, w->host, w->group, w->slots,
	    w->n_functions);
	n_drop = worker_rejoin(s, w, m, drop);
	welcome_worker(s, rc, w, drop, n_drop);
	free(drop);
}

void
worker_rehello(struct sched *s, struct worker *w, struct rctx *rc)
{
	/* what it holds was settled by its first hello: what was kept is
	 * assigned to it; nothing more to drop */
	w->last_seen_ms = sched_now(s);
	welcome_worker(s, rc, w, NULL, 0);
}

/* A parked work request's heartbeat interval passed: answer it empty. */
static void
work_due(void *owner, uint64_t id, uint32_t gen)
{
	struct sched  *s = owner;
	struct worker *w = idmap_get(&s->workers, id);

	if (w == NULL || !park_due(&w->park, gen))
		return;
	wait_remove(s, w);
	tasks_send(s, w, park_take(&w->park), 0);
}

/* The results a work request carries. */
static void
take_results(struct sched *s, struct worker *w, const struct proto_msg *m)
{
	for (uint32_t i = 0; i < m->n_results; i++) {
		const struct proto_result *r = &m->results[i];
		struct task               *t = idmap_get(&s->tasks, r->id);
		if (t != NULL)
			task_ran(t, w->id);
		if (t == NULL || t->state != TASK_ASSIGNED || t->worker != w) {
			/* its lease was lost and it was re-queued or already
			 * finished elsewhere: never deliver twice */
			s->stat[ST_late_results]++;
			log_debug("late result for task %" PRIu64
			          " from worker %" PRIu64 " dropped",
			    r->id, w->id);
			continue;
		}
		if (r->code == 0) {
			w->done++;
			task_finish_or_requeue(s, t, TASK_DONE, 0, r->data,
			    r->len, "ok");
		} else {
			/* a crash the worker caught is a kill: its process
			 * exits after this report */
			w->failed++;
			task_run_failed(s, t, r->code == FERRY_ECRASHED, r->code,
			    r->data, r->len);
		}
	}
}

void
handle_work(struct sched *s, struct worker *w, const struct proto_msg *m,
    struct rctx *rc)
{
	struct rctx *old;
	size_t       n;

	/* what it holds now: locality for the tasks below (a hint: one
	 * that cannot be noted costs locality, nothing else) */
	for (uint32_t i = 0; i < m->n_loaded; i++)
		(void)disp_worker_object(s->disp, w->id,
		    disp_key(m->loaded[i].via.str.ptr,
		        m->loaded[i].via.str.size),
		    1);
	for (uint32_t i = 0; i < m->n_evicted; i++)
		(void)disp_worker_object(s->disp, w->id,
		    disp_key(m->evicted[i].via.str.ptr,
		        m->evicted[i].via.str.size),
		    0);
	if (m->cache.present)
		w->cache = m->cache;
	take_results(s, w, m);
	/* results to clients first: they are what someone waits for */
	if (m->n_results > 0)
		flush_dirty(s);

	if ((old = park_take(&w->park)) != NULL) {
		/* a new request supersedes a parked one (the worker's view of
		 * its credit is newer); answer the old one empty */
		wait_remove(s, w);
		tasks_send(s, w, old, 0);
	}
	if ((n = tasks_pick(s, w, m->credit)) > 0) {
		tasks_send(s, w, rc, n);
		return;
	}
	if (m->credit == 0 || (m->n_results > 0 && m->park == 0)) {
		tasks_send(s, w, rc, 0);
		return;
	}
	/* nothing to hand out: park until tasks arrive or the heartbeat
	 * interval passes (a report of results only when it says it also
	 * serves as the worker's poll) */
	w->park.credit = m->credit;
	park_hold(s, &w->park, rc, s->cfg->heartbeat_interval_ms, work_due,
	    w->id);
	wait_append(s, w);
}

void
ghost_release(struct sched *s, struct worker *w, const char *why)
{
	uint32_t n = requeue_held(s, w, why);

	if (n > 0)
		log_info("worker %" PRIu64 " (pid %" PRIu64 "): %u task(s) "
		         "re-queued: %s",
		    w->id, w->pid, n, why);
	idmap_del(&s->ghosts, w->id);
	worker_free(s, w);
}

/* A ghost's supervisor did not report in time. */
static void
ghost_due(void *owner, uint64_t id, uint32_t gen)
{
	struct sched  *s = owner;
	struct worker *w = idmap_get(&s->ghosts, id);

	(void)gen;
	if (w != NULL)
		ghost_release(s, w, "no report from its supervisor in time");
}

/*
 * A supervised worker's connection dropped: most likely its process died,
 * and its supervisor will say which task (if any) killed it.  Hold its
 * tasks until that report (or report_grace_ms), so that a task that kills
 * processes is charged before another worker gets it.
 */
static void
worker_ghost(struct sched *s, struct worker *w)
{
	log_warn("worker %" PRIu64 " (%s, pid %" PRIu64 ") lost: connection "
	         "closed; holding %u task(s) until its supervisor reports",
	    w->id, w->name, w->pid, w->held);
	worker_unregister(s, w);
	worker_drop_functions(s, w);
	w->ghost = 1;
	if (idmap_put(&s->ghosts, w->id, w) != 0) {
		ghost_release(s, w, "connection closed");
		return;
	}
	timer_add(s, sched_now(s) + s->cfg->report_grace_ms, ghost_due, w->id,
	    0);
}

void
worker_gone(struct sched *s, struct worker *w)
{
	if (w->held > 0 && sup_of(s, w) != NULL && s->cfg->report_grace_ms > 0)
		worker_ghost(s, w);
	else
		worker_lost(s, w, "connection closed");
}

void
workers_status(struct sched *s)
{
	struct idmap_iter    it  = { 0, 0 };
	uint64_t             now = sched_now(s);
	const struct worker *w;

	proto_put_key(&s->w, "worker_list");
	msgpack_pack_array(&s->w.pk, s->n_workers);
	while (idmap_iter_next(&s->workers, &it, NULL, (void **)&w)) {
		proto_open_map(&s->w);
		proto_put_uint(&s->w, "id", w->id);
		proto_put_str(&s->w, "name", w->name);
		proto_put_str(&s->w, "host", w->host);
		proto_put_str(&s->w, "group", w->group);
		proto_put_uint(&s->w, "pid", w->pid);
		proto_put_uint(&s->w, "slots", w->slots);
		proto_put_uint(&s->w, "held", w->held);
		proto_put_uint(&s->w, "done", w->done);
		proto_put_uint(&s->w, "failed", w->failed);
		proto_put_uint(&s->w, "last_seen_ms", now - w->last_seen_ms);
		proto_put_uint(&s->w, "functions", w->n_functions);
		proto_put_uint(&s->w, "local", w->local);
		proto_put_cache(&s->w, "cache", &w->cache);
		proto_end(&s->w);
	}
}

/* Tasks held by workers and ghosts go back to the queue, and every
 * worker is freed (shutdown). */
void
workers_free_all(struct sched *s)
{
	struct idmap     *maps[2] = { &s->workers, &s->ghosts };
	struct idmap_iter it;
	struct worker    *w;

	for (int k = 0; k < 2; k++) {
		it.pos = 0;
		it.key = 0;
		while (idmap_iter_next(maps[k], &it, NULL, (void **)&w)) {
			requeue_held(s, w, "shutdown");
			worker_free(s, w);
		}
		idmap_fini(maps[k]);
	}
}
