/*
 * task.c - the one door for task state.
 *
 * A task is made (task_new), changes state (task_set_state, task_assign,
 * task_reclaim) and ends (task_finish) here and nowhere else.  Every transition is
 * checked against the life cycle (docs/protocol.md 4.11), logged at debug
 * level with the task, the worker and the reason, reflected in the queue
 * and the state counts, and then shown to the observers that asked for it
 * (sched_observe): the counters, the function registry's waiting counts,
 * and whatever a later module needs (a journal, a dependency tracker, a
 * metrics feed) register themselves instead of being called from here.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "ferry/ferry.h"
#include "jstore.h"
#include "log.h"
#include "sched_int.h"

static const char *state_names[TASK_STATE_MAX] = {
	"queued", "assigned", "done", "failed", "cancelled", "delayed", "dead",
	"waiting"
};

const char *
sched_state_name(int state)
{
	if (state == TASK_SUBMITTED)
		return "submitted";
	if (state == TASK_RESTORED)
		return "restored";
	if (state < 0 || state >= TASK_STATE_MAX)
		return "?";
	return state_names[state];
}

int
sched_transition_ok(int from, int to)
{
	switch (from) {
	case TASK_SUBMITTED:
	case TASK_RESTORED:
		return to == TASK_QUEUED || to == TASK_WAITING;
	case TASK_WAITING:
		/* waiting to waiting: an input's result was put in place of
		 * its reference, others still to come (graph.c) */
		return to == TASK_QUEUED || to == TASK_WAITING ||
		    to == TASK_CANCELLED || to == TASK_FAILED;
	case TASK_QUEUED:
		return to == TASK_ASSIGNED || to == TASK_CANCELLED ||
		    to == TASK_FAILED || to == TASK_DEAD;
	case TASK_ASSIGNED:
		return to == TASK_QUEUED || to == TASK_DONE ||
		    to == TASK_FAILED || to == TASK_CANCELLED ||
		    to == TASK_DELAYED || to == TASK_DEAD;
	case TASK_DELAYED:
		return to == TASK_QUEUED || to == TASK_CANCELLED ||
		    to == TASK_FAILED || to == TASK_DEAD;
	default:
		return 0; /* done, failed, cancelled and dead are final */
	}
}

int
sched_observe(struct sched *s, uint32_t from_mask, uint32_t to_mask,
    task_observer_fn fn, void *arg)
{
	struct task_observer *o;

	if (s->n_observers >= SCHED_MAX_OBSERVERS)
		return -1;
	o            = &s->observers[s->n_observers++];
	o->from_mask = from_mask;
	o->to_mask   = to_mask;
	o->fn        = fn;
	o->arg       = arg;
	return 0;
}

static void
notify(struct sched *s, struct task *t, int from, int to,
    const struct task_end *end)
{
	for (size_t i = 0; i < s->n_observers; i++) {
		const struct task_observer *o = &s->observers[i];
		if ((o->from_mask >> from & 1) || (o->to_mask >> to & 1))
			o->fn(s, t, from, to, end, o->arg);
	}
}

/* Put t in the dispatch queue (front: it has waited already).  When
 * memory runs out it waits in limbo, still queued, and the loop tries
 * again at its next turn: never counted as queued but lost. */
void
task_enqueue(struct sched *s, struct task *t, int front)
{
	if (t->held_back)
		return; /* tasks_release_held_back() queues it */
	if (disp_enqueue(s->disp, t->id, t->fnr->idx, t->objs, t->n_objs,
	        front) == 0)
		return;
	log_error("task %" PRIu64 ": out of memory queueing it; trying again "
	          "shortly",
	    t->id);
	t->limbo_next = s->limbo;
	s->limbo      = t;
	wake_loop(s);
}

void
tasks_retry_limbo(struct sched *s)
{
	struct task *t = s->limbo, *next;

	s->limbo = NULL;
	for (; t != NULL; t = next) {
		next          = t->limbo_next;
		t->limbo_next = NULL;
		if (t->state == TASK_QUEUED)
			task_enqueue(s, t, 1);
	}
}

/* Take t out of limbo (it is leaving the queued state). */
static void
limbo_remove(struct sched *s, struct task *t)
{
	struct task **pp;
	for (pp = &s->limbo; *pp != NULL; pp = &(*pp)->limbo_next)
		if (*pp == t) {
			*pp           = t->limbo_next;
			t->limbo_next = NULL;
			return;
		}
}

/* Leave t's current state: queue, worker list, counts. */
static void
leave(struct sched *s, struct task *t)
{
	if (t->state == TASK_QUEUED) {
		s->n_queued--;
		disp_remove(s->disp, t->id); /* no-op if dispatch took it */
		t->held_back = 0;
		if (s->limbo != NULL)
			limbo_remove(s, t);
	} else if (t->state == TASK_DELAYED) {
		s->n_delayed--;
	} else if (t->state == TASK_WAITING) {
		s->n_waiting--;
	} else if (t->state == TASK_ASSIGNED) {
		struct worker *w = t->worker;
		list_remove(&t->wnode);
		w->held--;
		s->n_assigned--;
	}
}

/* Enter state to (t->state is still the old one); returns it. */
static int
enter(struct sched *s, struct task *t, int to, struct worker *w)
{
	int from = t->state;

	t->state = (uint8_t)to;
	switch (to) {
	case TASK_QUEUED:
		t->worker = NULL;
		s->n_queued++;
		/* a task taken back from a lost worker, or back from its
		 * retry backoff, goes first: it has waited longest, and a
		 * retry must not wait behind the whole queue again */
		task_enqueue(s, t, 1);
		break;
	case TASK_ASSIGNED:
		t->worker = w;
		list_prepend(&w->tasks, &t->wnode);
		w->held++;
		s->n_assigned++;
		break;
	case TASK_DELAYED:
		t->worker = NULL;
		s->n_delayed++;
		break;
	case TASK_WAITING:
		s->n_waiting++;
		break;
	default:
		t->worker = NULL;
		break;
	}
	return from;
}

/* Check and log a transition of t; 0 if it may happen. */
static int
check(struct task *t, int to, struct worker *w, const char *reason)
{
	if (!sched_transition_ok(t->state, to)) {
		log_error("task %" PRIu64 ": illegal transition %s -> %s (%s)",
		    t->id, sched_state_name(t->state), sched_state_name(to),
		    reason);
		return -1;
	}
	log_debug("task %" PRIu64 " (%.*s, client %" PRIx64 ":%" PRIu64
	          "): %s -> %s, worker %" PRIu64 ", %s",
	    t->id, (int)t->fn_len, task_fn(t), t->sess ? t->sess->id : 0, t->tag,
	    sched_state_name(t->state), sched_state_name(to),
	    w != NULL                                       ? w->id
	    : t->state == TASK_ASSIGNED && t->worker != NULL ? t->worker->id
	                                                     : 0,
	    reason);
	return 0;
}

void
task_set_state(struct sched *s, struct task *t, int to, const char *reason)
{
	int from;

	if (to == TASK_ASSIGNED || check(t, to, NULL, reason) != 0)
		return; /* assignment is task_assign's */
	leave(s, t);
	from = enter(s, t, to, NULL);
	notify(s, t, from, to, NULL);
}

void
task_assign(struct sched *s, struct task *t, struct worker *w)
{
	int from;

	if (check(t, TASK_ASSIGNED, w, "dispatched") != 0)
		return;
	leave(s, t);
	from = enter(s, t, TASK_ASSIGNED, w);
	notify(s, t, from, TASK_ASSIGNED, NULL);
}

void
task_reclaim(struct sched *s, struct task *t, struct worker *w)
{
	int from = t->state;

	if (from == TASK_ASSIGNED && t->worker != w) {
		/* not a step of its life: the same run, held by the same
		 * process, under its new registration */
		log_debug("task %" PRIu64 " (%.*s): stays assigned, worker %" PRIu64
		          " -> %" PRIu64 ": its process registered again",
		    t->id, (int)t->fn_len, task_fn(t), t->worker->id, w->id);
	} else if (from != TASK_QUEUED ||
	    check(t, TASK_ASSIGNED, w,
	        "held by its worker process, which registered again") != 0) {
		log_error("task %" PRIu64 ": cannot be reclaimed by worker %" PRIu64
		          " from state %s",
		    t->id, w->id, sched_state_name(from));
		return;
	}
	leave(s, t);
	enter(s, t, TASK_ASSIGNED, w);
	notify(s, t, from, TASK_ASSIGNED, NULL);
}

static void
task_free(struct sched *s, struct task *t)
{
	if (t->fnr != NULL && --t->fnr->tasks == 0)
		fn_drop(s, t->fnr); /* a name no worker ever had */
	free(t->why);
	free(t->deps);
	if (t->args_owned)
		free(t->args);
	if (t->objs_owned)
		free(t->objs);
	free(t);
}

int
task_finish(struct sched *s, struct task *t, int to, int32_t code,
    const void *data, size_t len, const char *reason)
{
	struct task_end end = { code, data, len, 0 };
	int             from;

	if (check(t, to, NULL, reason) != 0)
		return -1;
	/* what the client gets comes first: without it nothing changes */
	if (t->sess != NULL && results_store(s, t, &end) != 0) {
		log_error("task %" PRIu64 ": out of memory storing its result",
		    t->id);
		return -1;
	}
	leave(s, t);
	from = enter(s, t, to, NULL);
	idmap_del(&s->tasks, t->id);
	notify(s, t, from, to, &end);
	task_free(s, t);
	return 0;
}

void
task_finish_or_requeue(struct sched *s, struct task *t, int to,
    int32_t code, const void *data, size_t len, const char *reason)
{
	if (task_finish(s, t, to, code, data, len, reason) == 0)
		return;
	/* its result cannot be kept: it runs again rather than vanish */
	if (t->state == TASK_ASSIGNED || t->state == TASK_DELAYED)
		task_set_state(s, t, TASK_QUEUED,
		    "out of memory storing its result");
}

void
task_ran(struct task *t, uint64_t worker)
{
	if (t->attempts < UINT16_MAX)
		t->attempts++;
	t->result_from = worker;
}

/* Note why a run of t failed (kept for its final error message). */
static void
task_note(struct task *t, const char *why, size_t len)
{
	size_t have = t->why != NULL ? strlen(t->why) : 0;
	char  *p;

	if (have + 2 >= MAX_WHY)
		return;
	if (len > MAX_WHY - have - 3)
		len = MAX_WHY - have - 3;
	if ((p = realloc(t->why, have + len + 3)) == NULL)
		return; /* only the message is shorter */
	t->why = p;
	if (have > 0) {
		memcpy(p + have, "; ", 2);
		have += 2;
	}
	memcpy(p + have, why, len);
	p[have + len] = '\0';
}

/* The delay before retry n (1, 2, ...): doubling from backoff_ms, capped,
 * scaled by a random factor in [0.5, 1] so that tasks that failed together
 * do not all come back at once. */
uint64_t
sched_backoff_ms(uint32_t base, uint32_t cap, uint32_t n, uint32_t rnd16)
{
	uint64_t d = base;
	for (uint32_t i = 1; i < n && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	return d / 2 + (d - d / 2) * (uint64_t)(rnd16 & 0xffff) / 0xffff;
}

int
sched_verdict(uint32_t kills, uint32_t failures, uint32_t retries,
    uint32_t quarantine_after, int killed, int retryable)
{
	if (killed && kills >= quarantine_after)
		return SCHED_DEAD;
	if (retryable && failures <= retries)
		return SCHED_RETRY;
	return SCHED_FAIL;
}

/* A delayed task's backoff is over (gen: its failures then). */
static void
retry_due(void *owner, uint64_t id, uint32_t gen)
{
	struct sched *s = owner;
	struct task  *t = idmap_get(&s->tasks, id);

	if (t != NULL && t->state == TASK_DELAYED && t->failures == gen)
		task_set_state(s, t, TASK_QUEUED, "retry backoff over");
}

void
task_run_failed(struct sched *s, struct task *t, int killed, int32_t code,
    const char *why, size_t len)
{
	char msg[MAX_WHY + 160];
	int  retryable, verdict;

	task_note(t, why, len);
	t->failures++;
	if (killed) {
		t->kills++;
		s->stat[ST_kills]++;
	}
	retryable = killed || (code == FERRY_ETASK && t->retry_errors);
	verdict   = sched_verdict(t->kills, t->failures, t->retries,
	      s->cfg->quarantine_after, killed, retryable);
	if (verdict == SCHED_DEAD) {
		snprintf(msg, sizeof(msg),
		    "quarantined: task killed %u worker process%s (%s)",
		    t->kills, t->kills == 1 ? "" : "es", t->why ? t->why : "");
		task_finish_or_requeue(s, t, TASK_DEAD, FERRY_EDEAD, msg,
		    strlen(msg), "quarantined");
		return;
	}
	if (verdict == SCHED_RETRY) {
		if (t->state == TASK_ASSIGNED) {
			uint64_t d = sched_backoff_ms(t->backoff_ms,
			    t->backoff_max_ms, t->failures,
			    (uint32_t)random());
			task_set_state(s, t, TASK_DELAYED, "retry after a failure");
			timer_add(s, sched_now(s) + d, retry_due, t->id,
			    t->failures);
			log_info("task %" PRIu64 " (%.*s): run %u failed (%.*s); "
			         "retry %u of %u in %" PRIu64 " ms",
			    t->id, (int)t->fn_len, task_fn(t), t->attempts, (int)len,
			    why, t->failures, t->retries, d);
		}
		return;
	}
	if (t->attempts > 1 && t->why != NULL)
		snprintf(msg, sizeof(msg), "%.*s (after %u runs: %s)", (int)len,
		    why, t->attempts, t->why);
	else
		snprintf(msg, sizeof(msg), "%.*s", (int)len, why);
	task_finish_or_requeue(s, t, TASK_FAILED, code, msg, strlen(msg),
	    retryable ? "out of retries" : "failed");
}

/* A task with room for n_objs keys, fn and args in one allocation (all
 * zero but the lengths and pointers); NULL when memory runs out. */
static struct task *
task_alloc(uint32_t n_objs, uint32_t fn_len, uint32_t args_len)
{
	size_t       name = ((size_t)fn_len + 1 + 7) & ~(size_t)7;
	size_t       objs = (size_t)n_objs * sizeof(uint64_t);
	struct task *t    = calloc(1, sizeof(*t) + name + objs + args_len);

	if (t == NULL)
		return NULL;
	t->n_objs   = (uint8_t)n_objs;
	t->objs     = (uint64_t *)(void *)(t->data + name);
	t->fn_len   = fn_len;
	t->args_len = args_len;
	t->args     = t->data + name + objs;
	return t;
}

/* A task's failure options: the submit entry's, else the defaults. */
static void
task_options(struct sched *s, struct task *t, const struct proto_task_opts *o)
{
	const struct sched_config *c = s->cfg;
	t->retries = o->set & PROTO_OPT_RETRIES ? o->retries : c->task_retries;
	t->backoff_ms =
	    o->set & PROTO_OPT_BACKOFF ? o->backoff_ms : c->task_backoff_ms;
	t->backoff_max_ms = o->set & PROTO_OPT_BACKOFF_MAX ? o->backoff_max_ms
	                                                   : c->task_backoff_max_ms;
	t->timeout_ms =
	    o->set & PROTO_OPT_TIMEOUT ? o->timeout_ms : c->task_timeout_ms;
	t->retry_errors = (uint8_t)(o->set & PROTO_OPT_RETRY_ERRORS
	        ? o->retry_errors != 0
	        : c->task_retry_errors != 0);
	t->run_anyway = (uint8_t)(o->set & PROTO_OPT_RUN_ANYWAY &&
	    o->run_anyway != 0);
	if (t->backoff_max_ms < t->backoff_ms)
		t->backoff_max_ms = t->backoff_ms;
}

struct task *
task_new(struct sched *s, struct session *se, const struct proto_task *pt,
    struct fnreg *fnr)
{
	struct task *t = task_alloc(pt->n_objs, pt->fn_len, pt->args_len);
	int          to;

	if (t == NULL)
		goto fail;
	t->id       = ++s->next_task_id;
	t->tag      = pt->id;
	t->sess     = se;
	t->fnr      = fnr;
	t->state    = TASK_SUBMITTED;
	memcpy(task_fn(t), pt->fn, pt->fn_len);
	if (pt->args_len > 0)
		memcpy(t->args, pt->args, pt->args_len);
	task_options(s, t, &pt->opts);
	for (uint32_t k = 0; k < pt->n_objs; k++)
		t->objs[k] = disp_key(pt->objs[k].via.str.ptr,
		    pt->objs[k].via.str.size);
	/* a task that refers to others waits for them (graph.c links it
	 * to them next) instead of joining the queue */
	to = pt->n_deps > 0 ? TASK_WAITING : TASK_QUEUED;
	if (idmap_put(&s->tasks, t->id, t) != 0 ||
	    idmap_put(&se->tags, t->tag, t) != 0 ||
	    (to == TASK_QUEUED && disp_enqueue(s->disp, t->id, fnr->idx,
	                              t->objs, t->n_objs, 0) != 0)) {
		idmap_del(&s->tasks, t->id);
		idmap_del(&se->tags, t->tag);
		free(t);
		goto fail;
	}
	fnr->tasks++;
	(void)check(t, to, NULL, "submitted");
	t->state = (uint8_t)to;
	if (to == TASK_QUEUED)
		s->n_queued++;
	else
		s->n_waiting++;
	notify(s, t, TASK_SUBMITTED, to, NULL);
	return t;
fail:
	if (fnr->tasks == 0)
		fn_drop(s, fnr); /* made for this task alone */
	return NULL;
}

/* The fields a restored task takes from its record. */
static void
task_fill_restored(struct task *t, const struct jtask *jt)
{
	t->id             = jt->id;
	t->tag            = jt->tag;
	t->state          = TASK_RESTORED;
	t->held_back      = 1;
	t->retry_errors   = jt->retry_errors;
	t->run_anyway     = jt->run_anyway;
	t->attempts       = jt->attempts;
	t->failures       = jt->failures;
	t->kills          = jt->kills;
	t->retries        = jt->retries;
	t->backoff_ms     = jt->backoff_ms;
	t->backoff_max_ms = jt->backoff_max_ms;
	t->timeout_ms     = jt->timeout_ms;
	memcpy(task_fn(t), jt->fn, jt->fn_len);
	if (jt->args_len > 0)
		memcpy(t->args, jt->args, jt->args_len);
	memcpy(t->objs, jt->objs, sizeof(t->objs[0]) * jt->n_objs);
}

struct task *
task_restore(struct sched *s, struct session *se, const struct jtask *jt,
    struct fnreg *fnr)
{
	struct task *t;

	if (jt->n_objs > PROTO_MAX_TASK_OBJS ||
	    (t = task_alloc(jt->n_objs, jt->fn_len, jt->args_len)) == NULL)
		return NULL;
	task_fill_restored(t, jt);
	if (jt->why_len > 0 && (t->why = malloc(jt->why_len + 1)) != NULL) {
		memcpy(t->why, jt->why, jt->why_len);
		t->why[jt->why_len] = '\0';
	}
	t->sess = se;
	t->fnr  = fnr;
	if (idmap_put(&s->tasks, t->id, t) != 0 ||
	    (se != NULL && idmap_put(&se->tags, t->tag, t) != 0)) {
		idmap_del(&s->tasks, t->id);
		free(t->why);
		free(t);
		return NULL;
	}
	fnr->tasks++;
	if (graph_restores_waiting(t)) {
		/* graph_restore() links it once every task is back */
		t->held_back = 0;
		t->state     = TASK_WAITING;
		s->n_waiting++;
		notify(s, t, TASK_RESTORED, TASK_WAITING, NULL);
		return t;
	}
	t->state = TASK_QUEUED;
	s->n_queued++;
	notify(s, t, TASK_RESTORED, TASK_QUEUED, NULL);
	return t;
}

void
tasks_release_held_back(struct sched *s)
{
	struct idmap_iter it = { 0, 0 };
	struct task      *t;
	uint64_t         *ids, id;
	size_t            n = 0;

	/* in the order they were submitted */
	if ((ids = malloc(sizeof(*ids) * (s->tasks.count + 1))) != NULL) {
		while (idmap_iter_next(&s->tasks, &it, &id, (void **)&t))
			if (t->held_back)
				ids[n++] = id;
		qsort(ids, n, sizeof(*ids), util_u64_cmp);
	}
	for (size_t i = 0; i < n; i++) {
		t            = idmap_get(&s->tasks, ids[i]);
		t->held_back = 0;
		task_enqueue(s, t, 0);
	}
	free(ids);
	if (ids == NULL) {
		/* no memory to sort them: in any order, then */
		memset(&it, 0, sizeof(it));
		while (idmap_iter_next(&s->tasks, &it, NULL, (void **)&t))
			if (t->held_back) {
				t->held_back = 0;
				task_enqueue(s, t, 0);
			}
	}
}

void
tasks_free_all(struct sched *s)
{
	for (size_t i = 0; i < s->tasks.cap; i++)
		if (s->tasks.slots[i].key != 0)
			task_free(s, s->tasks.slots[i].val);
	idmap_fini(&s->tasks);
	s->limbo = NULL;
}
