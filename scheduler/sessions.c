/*
 * sessions.c - clients: a session per client (docs/protocol.md 4.4), its
 * hello, submits and cancels, and what happens when its connection goes
 * (kept for result_ttl, then expired).  Fetches and stored results are
 * results.c's.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/ferry.h"
#include "jstore.h"
#include "log.h"
#include "sched_int.h"

int
sched_observe_sessions(struct sched *s, session_observer_fn fn, void *arg)
{
	if (s->n_sess_observers >= SCHED_MAX_OBSERVERS)
		return -1;
	s->sess_observers[s->n_sess_observers].fn    = fn;
	s->sess_observers[s->n_sess_observers++].arg = arg;
	return 0;
}

void
session_notify(struct sched *s, struct session *se, int event, uint64_t ack)
{
	for (size_t i = 0; i < s->n_sess_observers; i++)
		s->sess_observers[i].fn(s, se, event, ack,
		    s->sess_observers[i].arg);
}

void
session_free(struct sched *s, struct session *se)
{
	struct idmap_iter it = { 0, 0 };
	struct task      *t;
	uint64_t         *ids;
	size_t            n = 0;

	session_notify(s, se, SESSION_ENDED, 0);
	/* queued tasks of a session that is gone are cancelled; tasks
	 * already running finish and their results are dropped.  First
	 * every task loses its session (a finishing task then leaves
	 * se->tags alone), then the ones to cancel go by id: cancelling
	 * one ends the tasks waiting for it too (graph.c), which the walk
	 * would otherwise find freed */
	ids = malloc((se->tags.count + 1) * sizeof(*ids));
	while (idmap_iter_next(&se->tags, &it, NULL, (void **)&t)) {
		t->sess = NULL;
		if (ids != NULL && (t->state == TASK_QUEUED ||
		                       t->state == TASK_DELAYED ||
		                       t->state == TASK_WAITING))
			ids[n++] = t->id;
	}
	if (ids == NULL && se->tags.count > 0)
		log_error("client session %" PRIx64 ": out of memory "
		          "cancelling its %zu task(s): they run for nobody",
		    se->id, se->tags.count);
	for (size_t i = 0; i < n; i++)
		if ((t = idmap_get(&s->tasks, ids[i])) != NULL &&
		    t->state != TASK_ASSIGNED)
			(void)task_finish(s, t, TASK_CANCELLED,
			    FERRY_ECANCELED, NULL, 0,
			    "client session expired"); /* stores nothing */
	free(ids);
	idmap_fini(&se->tags);
	idmap_fini(&se->done);
	idmap_fini(&se->full);
	results_drop(s, se);
	ack_forget(s, se);
	free(se);
}

void
sessions_free_all(struct sched *s)
{
	struct idmap_iter it = { 0, 0 };
	void             *se;

	while (idmap_iter_next(&s->sessions, &it, NULL, &se))
		session_free(s, se);
	idmap_fini(&s->sessions);
}

void
handle_client_hello(struct sched *s, uint32_t pipe, const struct proto_msg *m,
    struct rctx *rc)
{
	struct session *se;
	int             resumed = 0, made = 0;

	if (m->session == 0) {
		reply_error(s, rc, FERRY_EPROTO,
		    "hello: a client must send a non-zero 'session'");
		return;
	}
	se = idmap_get(&s->sessions, m->session);
	if (se != NULL && se->pipe != 0) {
		reply_error(s, rc, FERRY_ESTATE,
		    "hello: session is already connected");
		return;
	}
	if (se == NULL) {
		if ((se = calloc(1, sizeof(*se))) == NULL ||
		    idmap_put(&s->sessions, m->session, se) != 0) {
			free(se);
			reply_error(s, rc, FERRY_ENOMEM, "out of memory");
			return;
		}
		se->id = m->session;
		idmap_init(&se->tags);
		idmap_init(&se->done);
		idmap_init(&se->full);
		made = 1;
	} else {
		resumed = 1;
	}
	if (peer_add(s, pipe, PEER_CLIENT, se) != 0) {
		if (made) {
			idmap_del(&s->sessions, se->id);
			free(se);
		}
		reply_error(s, rc, FERRY_ENOMEM, "out of memory");
		return;
	}
	if (made) {
		log_info("client session %" PRIx64 " opened (%s pid %" PRIu64
		         ")",
		    se->id, m->host, m->pid);
		session_notify(s, se, SESSION_OPENED, 0);
	}
	else
		log_info("client session %" PRIx64 " reconnected", se->id);
	se->pipe = pipe;
	se->detach_gen++;
	s->n_clients++;
	welcome_send(s, rc, se->id, 1, se->max_tag, resumed);
}

/*
 * Check one submit entry; on success *fnr is its function's entry.
 * Returns 0, or the code it is rejected with and the reason in why.  A
 * function no connected worker runs is accepted (its tasks wait), unless
 * no worker ever registered it while every configured group is up (a
 * misspelt name: refused at once), or its tasks have waited too long.
 */
static int
submit_check(struct sched *s, const struct proto_task *pt,
    struct fnreg **fnr, char *why, size_t len)
{
	char          name[4 * MAX_FN_LEN + 8];
	struct fnreg *f;
	int           code;

	if (pt->id == 0) {
		snprintf(why, len, "task id 0 is reserved");
		return FERRY_EINVAL;
	}
	if (pt->fn_len > MAX_FN_LEN) {
		snprintf(why, len, "function name is %u bytes, the limit is %d",
		    pt->fn_len, MAX_FN_LEN);
		return FERRY_EINVAL;
	}
	util_escape(name, sizeof(name), pt->fn, pt->fn_len);
	if (memchr(pt->fn, '\0', pt->fn_len) != NULL) {
		snprintf(why, len, "function name '%s' contains a NUL byte",
		    name);
		return FERRY_EINVAL;
	}
	f = fn_find(s, pt->fn, pt->fn_len);
	if ((f == NULL || !f->ever) && groups_all_up(s)) {
		snprintf(why, len,
		    "unknown function '%s': no connected worker registered "
		    "it",
		    name);
		return FERRY_ENOFUNC;
	}
	if (f != NULL && f->unavailable) {
		snprintf(why, len,
		    "function '%s': no worker has run it for %" PRIu64 " ms "
		    "(scheduler.function_wait)",
		    name, sched_now(s) - f->unserved_ms);
		return FERRY_ENOFUNC;
	}
	if ((code = journal_refuses(s, why, len)) != 0)
		return code;
	/* tasks waiting for others count: they are queued tasks to be */
	if (s->n_queued + s->n_waiting >= s->cfg->max_queue) {
		snprintf(why, len, "queue is full (%zu tasks, scheduler.max_queue)",
		    s->cfg->max_queue);
		return FERRY_EFULL;
	}
	if (f == NULL) {
		if (s->n_unknown_fns >= MAX_UNKNOWN_FNS) {
			snprintf(why, len,
			    "unknown function '%s': tasks already wait for %d "
			    "other functions no worker registered",
			    name, MAX_UNKNOWN_FNS);
			return FERRY_ENOFUNC;
		}
		if ((f = fn_get(s, pt->fn, pt->fn_len)) == NULL) {
			snprintf(why, len, "out of memory");
			return FERRY_ENOMEM;
		}
		fn_wait_start(s, f, s->cfg->unknown_function_wait_ms);
	}
	*fnr = f;
	return 0;
}

void
handle_submit(struct sched *s, struct session *se, const struct proto_msg *m,
    struct rctx *rc)
{
	uint64_t accepted = 0, queued = s->n_queued;
	char     why[1280];

	ack_send(s, se); /* answers leave in order */
	if (s->draining) {
		reply_error(s, rc, FERRY_ESTATE,
		    "submit refused: the scheduler is shutting down (draining "
		    "after a stop signal)");
		return;
	}
	/* rejected entries are collected in s->rej, the reply built after */
	proto_writer_reset(&s->rej);
	for (uint32_t i = 0; i < m->n_tasks; i++) {
		const struct proto_task *pt = &m->tasks[i];
		struct task             *t  = NULL;
		struct fnreg            *fnr;
		int                      code;

		if (idmap_get(&se->tags, pt->id) != NULL ||
		    idmap_get(&se->done, pt->id) != NULL) {
			/* sent again after a reconnection: it is queued,
			 * running, or its result waits to be fetched */
			accepted++;
			continue;
		}
		code = submit_check(s, pt, &fnr, why, sizeof(why));
		if (code == 0 && pt->n_deps > 0)
			code = graph_check(se, pt, why, sizeof(why));
		if (code == 0 && (t = task_new(s, se, pt, fnr)) == NULL) {
			code = FERRY_ENOMEM;
			snprintf(why, sizeof(why), "out of memory");
		}
		if (code != 0) {
			/* rejected entries are collected in the writer as
			 * result entries (it counts them); the header is
			 * written after */
			proto_pack_result(
			    &s->rej, pt->id, code, why, strlen(why));
			s->stat[ST_rejected]++;
			if (code == FERRY_EFULL) /* it comes again */
				(void)idmap_put(&se->full, pt->id, se);
			continue;
		}
		if (se->full.count > 0)
			(void)idmap_del(&se->full, pt->id);
		accepted++;
		s->untrimmed = 1;
		se->submitted++;
		if (t->tag > se->max_tag)
			se->max_tag = t->tag;
		if (pt->n_deps > 0)
			graph_link(s, se, t, pt); /* t may be gone after */
	}

	/* hand the new tasks to waiting workers before answering: the
	 * answer is not on any task's critical path, the tasks are */
	dispatch(s);
	if (s->rej.entries == 0 && accepted > 0 && s->n_queued <= queued &&
	    se->pipe != 0 && se->park.active) {
		ack_hold(s, se, rc, accepted);
		return;
	}

	/* the rejected entries are in s->rej */
	proto_writer_reset(&s->w);
	proto_write_submitted(&s->w, accepted, &s->rej);
	reply_when(s, rc, s->jr_mark);
}

/* End t as cancelled with code and msg, stopping it where it runs;
 * 0, or -1 when its result cannot be stored (out of memory). */
static int
cancel_one(struct sched *s, struct task *t, int32_t code, const char *msg,
    const char *reason)
{
	struct worker *w  = t->state == TASK_ASSIGNED ? t->worker : NULL;
	uint64_t       id = t->id;

	if (task_finish(s, t, TASK_CANCELLED, code, msg, strlen(msg),
	        reason) != 0)
		return -1;
	/* running (or held) by a worker: stop it there */
	if (w != NULL && !w->ghost)
		order_kill(s, w, id);
	return 0;
}

void
tasks_refuse_unrecorded(struct sched *s, uint64_t first_id, const char *why)
{
	struct idmap_iter it = { 0, 0 };
	struct task      *t;
	uint64_t          id, *ids, n = 0;

	/* collected first: cancelling changes the map being walked */
	if ((ids = malloc(sizeof(*ids) * (s->tasks.count + 1))) == NULL)
		return; /* they run: an answered submit is all they lack */
	while (idmap_iter_next(&s->tasks, &it, &id, (void **)&t))
		if (id >= first_id)
			ids[n++] = id;
	for (uint64_t i = 0; i < n; i++)
		if ((t = idmap_get(&s->tasks, ids[i])) != NULL)
			(void)cancel_one(s, t, FERRY_EJOURNAL, why,
			    "not recorded: the journal cannot be written");
	if (n > 0)
		log_warn("%" PRIu64 " task(s) whose submission the journal "
		         "could not record were cancelled, their submits "
		         "refused",
		    n);
	free(ids);
}

void
handle_cancel(struct sched *s, struct session *se, const struct proto_msg *m,
    struct rctx *rc)
{
	uint32_t  n = 0;
	uint64_t *done;

	done = calloc(m->n_ids + 1, sizeof(*done));
	if (done == NULL) {
		reply_error(s, rc, FERRY_ENOMEM, "out of memory");
		return;
	}
	for (uint32_t i = 0; i < m->n_ids; i++) {
		struct task *t = idmap_get(&se->tags, m->ids[i]);

		if (t == NULL)
			continue; /* unknown or finished */
		if (cancel_one(s, t, FERRY_ECANCELED, "cancelled",
		        "cancelled by client") != 0)
			continue; /* out of memory: not cancelled */
		done[n++] = m->ids[i];
	}
	proto_writer_reset(&s->w);
	proto_write_cancelled(&s->w, done, n);
	free(done);
	reply_when(s, rc, s->jr_mark);
}

/* A disconnected session's results have waited result_ttl: forget it. */
static void
session_expire(void *owner, uint64_t id, uint32_t gen)
{
	struct sched   *s  = owner;
	struct session *se = idmap_get(&s->sessions, id);

	if (se == NULL || se->pipe != 0 || se->detach_gen != gen)
		return;
	log_info("client session %" PRIx64 " expired; %" PRIu64
	         " undelivered result(s) dropped",
	    se->id, se->n_results);
	idmap_del(&s->sessions, se->id);
	session_free(s, se);
}

struct session *
session_restore(struct sched *s, const struct jsession *js)
{
	struct session *se = calloc(1, sizeof(*se));

	if (se == NULL || idmap_put(&s->sessions, js->id, se) != 0) {
		free(se);
		return NULL;
	}
	se->id       = js->id;
	se->next_seq = se->sent_seq = js->next_seq;
	se->max_tag  = js->max_tag;
	se->restored = 1;
	idmap_init(&se->tags);
	idmap_init(&se->done);
	idmap_init(&se->full);
	return se;
}

void
sessions_restored(struct sched *s)
{
	struct idmap_iter it = { 0, 0 };
	struct session   *se;

	while (idmap_iter_next(&s->sessions, &it, NULL, (void **)&se)) {
		se->detached_ms = sched_now(s);
		timer_add(s, se->detached_ms + s->cfg->result_ttl_ms,
		    session_expire, se->id, se->detach_gen);
	}
}

void
session_gone(struct sched *s, struct session *se)
{
	ack_send(s, se); /* to no one: it frees the context */
	se->pipe = 0;
	park_drop(s, &se->park);
	se->detached_ms = sched_now(s);
	se->detach_gen++;
	s->n_clients--;
	if (se->n_results == 0 && se->tags.count == 0) {
		/* nothing owed to it: forget it now */
		log_info("client session %" PRIx64 " closed", se->id);
		idmap_del(&s->sessions, se->id);
		session_free(s, se);
		return;
	}
	log_info("client session %" PRIx64 " disconnected; %" PRIu64
	         " result(s) and %zu unfinished task(s) kept for %u ms",
	    se->id, se->n_results, se->tags.count, s->cfg->result_ttl_ms);
	timer_add(s, se->detached_ms + s->cfg->result_ttl_ms, session_expire,
	    se->id, se->detach_gen);
}
