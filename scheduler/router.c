/*
 * router.c - every request, in: decoded, authenticated (a token, when the
 * scheduler has one; refusals rate-limited per host by authlimit.c) and
 * handed to the module of the peer that sent it, by its connection's
 * registration and the message type.  Also what a closed connection
 * means for the peer registered on it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authlimit.h"
#include "ferry/ferry.h"
#include "log.h"
#include "sched_int.h"

/* A slowed refusal waiting for its time (authlimit.h). */
struct refusal {
	struct rctx    *rc;
	uint64_t        key;
	struct list_node node; /* in s->refusals */
};

static void
auth_summary(void *arg, const char *host, uint64_t n, uint64_t ms)
{
	(void)arg;
	log_warn("%" PRIu64 " more failed authentication(s) from %s in the "
	         "last %" PRIu64 " s (not logged one by one; refusals slowed "
	         "to %d per second)",
	    n, host, (ms + 500) / 1000, AUTHLIMIT_RATE);
}

static void auth_report_due(void *owner, uint64_t id, uint32_t gen);

/* Summaries of failed authentications that are due, and the timer for
 * the next ones. */
static void
auth_report(struct sched *s)
{
	uint64_t next = authlimit_report(s->auth, sched_now(s), auth_summary,
	    s);
	s->auth_timer = next != UINT64_MAX;
	if (s->auth_timer)
		timer_add(s, next, auth_report_due, 0, 0);
}

static void auth_refuse_late(void *owner, uint64_t id, uint32_t gen);

/*
 * Refuse a request that failed authentication (section 3.3c of
 * docs/protocol.md): counted always, logged while its host has not failed
 * often lately (then summarised), answered at once, later (a host that
 * keeps failing), or not at all (one that has many refusals waiting).
 */
static void
auth_refuse(struct sched *s, nng_pipe pipe, const struct proto_msg *m,
    struct rctx *rc)
{
	struct authlimit_verdict v;
	struct refusal          *r;
	char                     addr[128];

	sec_pipe_addr(pipe, addr, sizeof(addr));
	s->stat[ST_auth_failures]++;
	authlimit_fail(s->auth, addr, sched_now(s), &v);
	if (v.log)
		log_warn("pipe %u from %s: %s refused: %s%s", nng_pipe_id(pipe),
		    addr,
		    m->type == PROTO_STATUS            ? "status before hello"
		        : m->role == PROTO_ROLE_WORKER ? "worker hello"
		        : m->role == PROTO_ROLE_SUPERVISOR
		        ? "supervisor hello"
		        : "client hello",
		    m->type == PROTO_STATUS ? "say hello with the token first"
		        : m->token[0] == '\0' ? "no token"
		                              : "wrong token",
		    v.delay_ms > 0 || v.drop
		        ? " (this host keeps failing: refusals are slowed)"
		        : "");
	if (!v.log && !s->auth_timer)
		auth_report(s);
	if (v.drop) {
		rctx_release(s, rc); /* no answer at all */
		return;
	}
	if (v.delay_ms > 0 && (r = malloc(sizeof(*r))) != NULL) {
		r->rc   = rc;
		r->key  = v.key;
		list_append(&s->refusals, &r->node);
		timer_add(s, sched_now(s) + v.delay_ms, auth_refuse_late,
		    (uint64_t)(uintptr_t)r, 0);
		return;
	}
	authlimit_answered(s->auth, v.key);
	reply_error(s, rc, FERRY_EAUTH, "authentication failed");
}

static void
auth_report_due(void *owner, uint64_t id, uint32_t gen)
{
	(void)id;
	(void)gen;
	auth_report(owner);
}

/* A slowed refusal's time has come (id: the refusal). */
static void
auth_refuse_late(void *owner, uint64_t id, uint32_t gen)
{
	struct sched   *s = owner;
	struct refusal *r = (struct refusal *)(uintptr_t)id;

	(void)gen;
	list_remove(&r->node);
	authlimit_answered(s->auth, r->key);
	reply_error(s, r->rc, FERRY_EAUTH, "authentication failed");
	free(r);
}

/* A hello: a registration for this connection. */
static void
route_hello(struct sched *s, uint32_t pipe, struct peer *p,
    const struct proto_msg *m, struct rctx *rc)
{
	if (p != NULL && p->kind == PEER_WORKER &&
	    m->role == PROTO_ROLE_WORKER) {
		/* said twice (its first answer crossed a reconnection): the
		 * same registration again */
		worker_rehello(s, p->obj, rc);
		return;
	}
	if (p != NULL) {
		reply_error(s, rc, FERRY_ESTATE,
		    "hello: this connection is already registered");
		return;
	}
	if (m->role == PROTO_ROLE_WORKER)
		handle_worker_hello(s, pipe, m, rc);
	else if (m->role == PROTO_ROLE_SUPERVISOR)
		handle_supervisor_hello(s, pipe, m, rc);
	else
		handle_client_hello(s, pipe, m, rc);
}

/* A request from a connection that has not said hello. */
static void
route_stranger(struct sched *s, uint32_t pipe, const struct proto_msg *m,
    struct rctx *rc)
{
	if (m->type == PROTO_WORK && m->n_results > 0) {
		/* a worker whose lease ended (it was silent) speaks again:
		 * its tasks ran elsewhere, so these results are late; it
		 * registers afresh after this answer */
		s->stat[ST_late_results] += m->n_results;
		for (uint32_t i = 0; i < m->n_results; i++) {
			/* they ran, all the same */
			struct task *t = idmap_get(&s->tasks, m->results[i].id);
			if (t != NULL)
				task_ran(t, 0);
		}
		log_info("pipe %u: %u late result(s) from a worker whose "
		         "lease ended dropped",
		    pipe, m->n_results);
	}
	reply_error(s, rc, FERRY_ESTATE, "this connection has not said hello");
}

/* A request of a registered peer; 0, or -1 if its kind may not send it. */
static int
route_peer(struct sched *s, struct peer *p, const struct proto_msg *m,
    struct rctx *rc)
{
	if (p->kind == PEER_WORKER) {
		struct worker *w = p->obj;
		w->last_seen_ms  = sched_now(s);
		if (m->type != PROTO_WORK)
			return -1;
		handle_work(s, w, m, rc);
	} else if (p->kind == PEER_SUPERVISOR) {
		if (m->type == PROTO_WATCH)
			handle_watch(s, p->obj, m, rc);
		else if (m->type == PROTO_REPORT)
			handle_report(s, p->obj, m, rc);
		else
			return -1;
	} else {
		struct session *se = p->obj;
		if (m->type == PROTO_SUBMIT) {
			handle_submit(s, se, m, rc);
		} else if (m->type == PROTO_FETCH) {
			ack_send(s, se); /* answers leave in order */
			handle_fetch(s, se, m, rc);
		} else if (m->type == PROTO_CANCEL) {
			ack_send(s, se);
			handle_cancel(s, se, m, rc);
		} else {
			return -1;
		}
	}
	return 0;
}

void
handle_message(struct sched *s, nng_msg *msg, struct rctx *rc)
{
	struct proto_msg m;
	char             err[512];
	uint32_t         pipe = nng_pipe_id(nng_msg_get_pipe(msg));
	struct peer     *p;
	int              rv;

	rv = proto_decode(&s->dec, nng_msg_body(msg), nng_msg_len(msg), &m,
	    err, sizeof(err));
	if (rv != 0) {
		s->stat[ST_bad_messages]++;
		log_warn("pipe %u: bad message (%zu bytes): %s", pipe,
		    nng_msg_len(msg), err);
		reply_error(s, rc, rv, err);
		return;
	}
	p = idmap_get(&s->peers, pipe);
	if (s->token[0] != '\0' &&
	    ((m.type == PROTO_HELLO && !sec_token_equal(m.token, s->token)) ||
	        (m.type == PROTO_STATUS && p == NULL))) {
		auth_refuse(s, nng_msg_get_pipe(msg), &m, rc);
		return;
	}
	if (m.type == PROTO_HELLO)
		route_hello(s, pipe, p, &m, rc);
	else if (m.type == PROTO_STATUS)
		handle_status(s, rc);
	else if (p == NULL)
		route_stranger(s, pipe, &m, rc);
	else if (route_peer(s, p, &m, rc) != 0) {
		snprintf(err, sizeof(err), "%s: not a request a %s may send",
		    proto_type_name(m.type),
		    p->kind == PEER_WORKER       ? "worker"
		        : p->kind == PEER_CLIENT ? "client"
		                                 : "supervisor");
		s->stat[ST_bad_messages]++;
		reply_error(s, rc, FERRY_EPROTO, err);
	}
}


void
welcome_send(struct sched *s, struct rctx *rc, uint64_t id, int client,
    uint64_t max_tag, uint64_t resumed)
{
	struct proto_welcome m = { id, s->cfg->heartbeat_interval_ms,
		s->cfg->heartbeat_timeout_ms, s->cfg->max_message_size, client,
		max_tag, resumed };

	proto_writer_reset(&s->w);
	proto_write_welcome(&s->w, &m);
	reply(s, rc);
}

int
peer_add(struct sched *s, uint32_t pipe, int kind, void *obj)
{
	struct peer *p = malloc(sizeof(*p));

	if (p == NULL)
		return -1;
	p->kind = kind;
	p->obj  = obj;
	if (idmap_put(&s->peers, pipe, p) != 0) {
		free(p);
		return -1;
	}
	return 0;
}

void
peer_del(struct sched *s, uint32_t pipe)
{
	free(idmap_del(&s->peers, pipe));
}

void
pipe_gone(struct sched *s, uint32_t pipe)
{
	struct peer *p = idmap_del(&s->peers, pipe);

	if (p == NULL)
		return;
	if (p->kind == PEER_WORKER)
		worker_gone(s, p->obj);
	else if (p->kind == PEER_SUPERVISOR)
		supervisor_gone(s, p->obj);
	else
		session_gone(s, p->obj);
	free(p);
}

int
router_init(struct sched *s)
{
	idmap_init(&s->peers);
	if ((s->auth = authlimit_new()) == NULL)
		return -1;
	if (s->cfg->token_file != NULL) {
		char err[512];
		if (sec_token_load(s->cfg->token_file, s->token, err,
		        sizeof(err)) != 0) {
			log_error("%s", err);
			return -1;
		}
	}
	return 0;
}

void
router_fini(struct sched *s)
{
	struct idmap_iter it = { 0, 0 };
	void             *p;

	while (idmap_iter_next(&s->peers, &it, NULL, &p))
		free(p);
	idmap_fini(&s->peers);
	while (!list_empty(&s->refusals)) { /* their timers never run now */
		struct list_node *n = list_first(&s->refusals);
		list_remove(n);
		free(list_entry(n, struct refusal, node));
	}
	authlimit_free(s->auth);
	s->auth = NULL;
}
