/*
 * supervisors.c - `ferry worker` supervisors: they report how their
 * worker processes end (so the task to blame is charged, docs/protocol.md
 * 4.13) and take orders to kill a process that runs a cancelled task.
 * A supervisor keeps one watch parked here; it is its heartbeat and
 * brings its orders.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/ferry.h"
#include "log.h"
#include "sched_int.h"

#define WATCH_MAX_MS 60000 /* longest a watch is parked */

struct supervisor *
sup_of(struct sched *s, const struct worker *w)
{
	return w->sup_token != 0 ? idmap_get(&s->sups, w->sup_token) : NULL;
}

static void
send_orders(struct sched *s, struct supervisor *sp, struct rctx *rc)
{
	proto_writer_reset(&s->w);
	proto_write_orders(&s->w, sp->orders, sp->n_orders);
	sp->n_orders = 0;
	reply(s, rc);
}

/* Order w's supervisor to kill w's process if it runs task id (a
 * cancelled task), or to make sure it never starts it. */
void
order_kill(struct sched *s, struct worker *w, uint64_t id)
{
	struct supervisor *sp = sup_of(s, w);
	struct rctx       *rc;

	if (sp == NULL) {
		log_info("task %" PRIu64 " cancelled while on worker %" PRIu64
		         ", which has no supervisor: it runs to its end and "
		         "its result is dropped",
		    id, w->id);
		return;
	}
	if (sp->n_orders >= MAX_ORDERS ||
	    util_grow(&sp->orders, &sp->cap_orders, sp->n_orders,
	        sizeof(*sp->orders), 16) != 0) {
		log_error("supervisor %" PRIx64 " has %zu unfetched orders: "
		          "order to stop task %" PRIu64 " dropped",
		    sp->token, sp->n_orders, id);
		return;
	}
	sp->orders[sp->n_orders].pid  = w->pid;
	sp->orders[sp->n_orders].task = id;
	sp->n_orders++;
	if ((rc = park_take(&sp->park)) != NULL)
		send_orders(s, sp, rc);
}

void
handle_supervisor_hello(struct sched *s, uint32_t pipe,
    const struct proto_msg *m, struct rctx *rc)
{
	struct supervisor *sp;

	if (idmap_get(&s->sups, m->supervisor) != NULL) {
		reply_error(s, rc, FERRY_ESTATE,
		    "hello: a supervisor with this token is already "
		    "connected");
		return;
	}
	sp = calloc(1, sizeof(*sp));
	if (sp == NULL || idmap_put(&s->sups, m->supervisor, sp) != 0) {
		free(sp);
		reply_error(s, rc, FERRY_ENOMEM, "out of memory");
		return;
	}
	sp->token = m->supervisor;
	sp->pipe  = pipe;
	sp->pid   = m->pid;
	util_strlcpy(sp->name, m->name, sizeof(sp->name));
	util_strlcpy(sp->host, m->host, sizeof(sp->host));
	if (peer_add(s, pipe, PEER_SUPERVISOR, sp) != 0) {
		idmap_del(&s->sups, sp->token);
		free(sp);
		reply_error(s, rc, FERRY_ENOMEM, "out of memory");
		return;
	}
	s->n_sups++;
	log_info("supervisor %" PRIx64 " registered: %s pid %" PRIu64
	         " on %s",
	    sp->token, sp->name, sp->pid, sp->host);
	welcome_send(s, rc, sp->token, 0, 0, 0);
}

static void
sup_free(struct supervisor *sp)
{
	free(sp->orders);
	free(sp);
}

/* A parked watch's wait is over: answer it (with no orders). */
static void
watch_due(void *owner, uint64_t id, uint32_t gen)
{
	struct sched      *s  = owner;
	struct supervisor *sp = idmap_get(&s->sups, id);

	if (sp != NULL && park_due(&sp->park, gen))
		send_orders(s, sp, park_take(&sp->park));
}

void
handle_watch(struct sched *s, struct supervisor *sp,
    const struct proto_msg *m, struct rctx *rc)
{
	uint64_t     wait = m->wait_ms;
	struct rctx *old;

	if ((old = park_take(&sp->park)) != NULL)
		send_orders(s, sp, old); /* superseded: with any orders */
	if (sp->n_orders > 0 || wait == 0) {
		send_orders(s, sp, rc);
		return;
	}
	park_hold(s, &sp->park, rc, wait < WATCH_MAX_MS ? wait : WATCH_MAX_MS,
	    watch_due, sp->token);
}

/*
 * Whether a report that names t as run by worker speaks of a run whose
 * result has come already (the process died after reporting it, for
 * example after a crash the worker caught and reported itself): that run
 * is counted and judged; the report adds nothing.  A run of t that worker
 * holds now is never stale.
 */
static int
report_stale(const struct task *t, uint64_t worker)
{
	if (worker == 0 || t->result_from != worker)
		return 0;
	return !(t->state == TASK_ASSIGNED && t->worker != NULL &&
	    t->worker->id == worker);
}

/* The worker (live or ghost) that a supervisor's report is about. */
static struct worker *
report_worker(struct sched *s, const struct supervisor *sp,
    const struct proto_msg *m)
{
	struct worker *w = NULL;
	struct idmap  *maps[2] = { &s->ghosts, &s->workers };

	if (m->worker_id != 0) {
		w = idmap_get(&s->ghosts, m->worker_id);
		if (w == NULL)
			w = idmap_get(&s->workers, m->worker_id);
		if (w != NULL && w->sup_token == sp->token && w->pid == m->pid)
			return w;
	}
	/* not named (it died before registering, or the table was lost):
	 * look for it; a report is per process death, not per task */
	for (int k = 0; k < 2; k++) {
		struct idmap_iter it = { 0, 0 };
		while (idmap_iter_next(maps[k], &it, NULL, (void **)&w))
			if (w->sup_token == sp->token && w->pid == m->pid)
				return w;
	}
	return NULL;
}

void
handle_report(struct sched *s, struct supervisor *sp,
    const struct proto_msg *m, struct rctx *rc)
{
	struct worker *w = report_worker(s, sp, m);
	int32_t        code;
	int            charge = 1;
	char           why[600];
	int            n;

	/* a supervisor resends reports it is not sure arrived: once each */
	for (uint32_t i = 0; i < sp->n_reported && i < 64; i++)
		if (sp->reported[i] == m->pid) {
			log_debug("supervisor %" PRIx64 ": report for pid %" PRIu64
			          " again; ignored",
			    sp->token, m->pid);
			send_orders(s, sp, rc);
			return;
		}
	sp->reported[sp->n_reported++ % 64] = m->pid;
	s->stat[ST_reports]++;
	sp->reports++;
	if (strcmp(m->cause, "timeout") == 0)
		code = FERRY_ETIMEDOUT;
	else if (strcmp(m->cause, "memory") == 0)
		code = FERRY_EMEMORY;
	else if (strcmp(m->cause, "cancel") == 0 ||
	         strcmp(m->cause, "recycle") == 0) {
		code   = FERRY_ECRASHED;
		charge = 0;
	} else
		code = FERRY_ECRASHED;
	if (charge && m->n_rtasks > 0)
		log_warn("worker process %" PRIu64 " on %s (worker %" PRIu64
		         ") ended: %s: %s; it was running %u task(s)",
		    m->pid, sp->host, w != NULL ? w->id : 0, m->cause,
		    m->reason, m->n_rtasks);
	else
		log_info("worker process %" PRIu64 " on %s (worker %" PRIu64
		         ") ended: %s: %s",
		    m->pid, sp->host, w != NULL ? w->id : 0, m->cause,
		    m->reason);
	n = snprintf(why, sizeof(why), "worker process %" PRIu64 " on %s: %s",
	    m->pid, sp->host, m->reason);
	if (n < 0 || (size_t)n >= sizeof(why))
		n = (int)strlen(why);
	for (uint32_t i = 0; i < m->n_rtasks; i++) {
		struct task *t = idmap_get(&s->tasks, m->rtasks[i].id);
		if (t == NULL || report_stale(t, m->worker_id))
			continue;
		task_ran(t, m->worker_id);
		if (!charge || !m->rtasks[i].charged)
			continue;
		if (code == FERRY_ETIMEDOUT)
			s->stat[ST_timeouts]++;
		else if (code == FERRY_EMEMORY)
			s->stat[ST_memory_kills]++;
		task_run_failed(s, t, 1, code, why, (size_t)n);
	}
	if (w != NULL && w->ghost) {
		ghost_release(s, w, "its process ended");
	} else if (w != NULL) {
		/* the report came before the connection's end */
		peer_del(s, w->pipe);
		worker_lost(s, w, m->reason);
	}
	send_orders(s, sp, rc);
}

void
supervisor_gone(struct sched *s, struct supervisor *sp)
{
	idmap_del(&s->sups, sp->token);
	s->n_sups--;
	log_warn("supervisor %" PRIx64 " (%s) disconnected", sp->token,
	    sp->host);
	park_drop(s, &sp->park);
	sup_free(sp);
}

void
supervisors_free_all(struct sched *s)
{
	struct idmap_iter  it = { 0, 0 };
	struct supervisor *sp;

	while (idmap_iter_next(&s->sups, &it, NULL, (void **)&sp))
		sup_free(sp);
	idmap_fini(&s->sups);
}
