/*
 * results.c - finished tasks' results, kept for their clients until
 * acknowledged (docs/protocol.md 4.4), and the answers to submits that
 * are held back a moment (4.3).
 *
 * Each session keeps its results in order of their sequence numbers and
 * by client task id; a fetch first drops what its ack covers, then gets
 * the oldest of the rest (parked while there are none).  Sessions that got
 * results since the last turn are "dirty": their parked fetches are
 * answered by flush_dirty().
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/ferry.h"
#include "jstore.h"
#include "log.h"
#include "sched_int.h"

#define FETCH_MAX_MS 60000 /* longest a fetch is parked */

static void
session_mark_dirty(struct sched *s, struct session *se)
{
	if (!se->dirty) {
		se->dirty      = 1;
		se->dirty_next = s->dirty;
		s->dirty       = se;
	}
}

int
results_full(const struct sched *s)
{
	return s->results_stored >= s->cfg->max_results ||
	    s->result_bytes >= s->cfg->max_result_bytes;
}

/* Whether r may leave: the journal holds it (or cannot hold anything:
 * then results leave rather than wait for a disk that is full). */
static int
result_ready(const struct sched *s, const struct result *r)
{
	return r->batch <= s->jr_durable || s->jr_trouble;
}

/* r (len bytes of data) at the end of se's stored results. */
static void
result_append(struct sched *s, struct session *se, struct result *r,
    size_t len)
{
	if (se->rtail != NULL)
		se->rtail->next = r;
	else
		se->rhead = r;
	se->rtail = r;
	se->n_results++;
	s->results_stored++;
	s->result_bytes += len;
}

int
results_store(struct sched *s, struct task *t, struct task_end *end)
{
	struct session *se = t->sess;
	struct result  *r  = malloc(sizeof(*r) + end->len);

	if (r == NULL)
		return -1;
	r->next     = NULL;
	r->tag      = t->tag;
	r->code     = end->code;
	r->len      = (uint32_t)end->len;
	r->attempts = t->attempts;
	if (end->len > 0)
		memcpy(r->data, end->data, end->len);
	if (idmap_put(&se->done, r->tag, r) != 0) {
		free(r);
		return -1;
	}
	idmap_del(&se->tags, t->tag);
	r->seq   = ++se->next_seq;
	r->batch = s->jr_fill; /* the journal records it in this batch */
	end->seq = r->seq;
	if (!result_ready(s, r) && !list_linked(&se->undurable_node))
		list_append(&s->undurable, &se->undurable_node);
	result_append(s, se, r, end->len);
	session_mark_dirty(s, se);
	return 0;
}

static void
result_free(struct sched *s, struct session *se, struct result *r)
{
	se->n_results--;
	s->results_stored--;
	s->result_bytes -= r->len;
	free(r);
}

void
results_drop(struct sched *s, struct session *se)
{
	struct result *r, *next;

	if (list_linked(&se->undurable_node))
		list_remove(&se->undurable_node);
	for (r = se->rhead; r != NULL; r = next) {
		next = r->next;
		result_free(s, se, r);
	}
	se->rhead = se->rtail = NULL;
}

/*
 * A submit whose tasks all went straight to workers, from a session that
 * has a fetch parked (so its results will carry the answer along), is
 * answered a little later: when the session's results next leave, when
 * it sends another request, or at the first request or turn of the loop
 * a millisecond after (ACK_HOLD_MS), whichever comes first.  A client
 * that sends one request at a time has no fetch parked and is answered
 * at once.  Its answer ("all accepted") tells the client nothing urgent,
 * and sent at once it competes with the tasks for the CPU on their way to
 * the workers.
 */
/* Take se's held answer out of the list; returns its context. */
static struct rctx *
ack_unlink(struct sched *s, struct session *se)
{
	struct rctx *rc = se->ack_rc;

	(void)s;
	if (rc == NULL)
		return NULL;
	se->ack_rc = NULL;
	list_remove(&se->ack_node);
	return rc;
}

void
ack_forget(struct sched *s, struct session *se)
{
	(void)ack_unlink(s, se); /* its context is freed with the others */
}

void
ack_send(struct sched *s, struct session *se)
{
	struct rctx *rc = ack_unlink(s, se);

	if (rc == NULL)
		return;
	proto_writer_reset(&s->w);
	proto_write_submitted(&s->w, se->ack_accepted, NULL);
	reply_when(s, rc, se->ack_mark);
}

/* A held answer's time is up. */
static void
ack_due(void *owner, uint64_t id, uint32_t gen)
{
	struct sched   *s  = owner;
	struct session *se = idmap_get(&s->sessions, id);

	if (se != NULL && se->ack_gen == gen)
		ack_send(s, se);
}

void
ack_hold(struct sched *s, struct session *se, struct rctx *rc,
    uint64_t accepted)
{
	se->ack_rc       = rc;
	se->ack_accepted = accepted;
	se->ack_mark     = s->jr_mark; /* its tasks are recorded up to it */
	list_append(&s->acks, &se->ack_node);
	/* a millisecond at most, as far as the loop looks: it is not woken
	 * for this (that costs the round trip more than the hold saves);
	 * every request and every turn of the loop runs due timers, and the
	 * session's parked fetch brings the answer along with its results */
	timer_add_lazy(s, sched_now(s) + ACK_HOLD_MS, ack_due, se->id,
	    ++se->ack_gen);
}

void
send_results(struct sched *s, struct session *se, struct rctx *rc)
{
	size_t         budget = s->cfg->max_message_size - 4096;
	uint32_t       n   = 0;
	uint64_t       seq = 0;
	struct result *r;

	proto_writer_reset(&s->w);
	proto_write_results_begin(&s->w);
	for (r = se->rhead; r != NULL && result_ready(s, r); r = r->next) {
		if (n > 0 && s->w.buf.size + r->len + 32 > budget)
			break;
		proto_write_results_entry(
		    &s->w, r->tag, r->code, r->data, r->len, r->attempts);
		seq = r->seq;
		n++;
	}
	proto_write_results_end(&s->w, seq);
	if (seq > se->sent_seq)
		se->sent_seq = seq;
	reply(s, rc);
	ack_send(s, se);
}

/* A parked fetch's wait is over: answer it with whatever there is. */
static void
fetch_due(void *owner, uint64_t id, uint32_t gen)
{
	struct sched   *s  = owner;
	struct session *se = idmap_get(&s->sessions, id);

	if (se != NULL && park_due(&se->park, gen))
		send_results(s, se, park_take(&se->park));
}

/* Check a fetch's ack; 0, or -1 after answering rc with the error. */
static int
ack_check(struct sched *s, struct session *se, uint64_t ack,
    struct rctx *rc)
{
	char err[160];

	if (ack <= se->sent_seq)
		return 0;
	if (se->restored) {
		/* read back from a journal that had not yet recorded the
		 * client's results up to ack (sync: batch): believe it, and
		 * number new results above what the client has seen */
		se->sent_seq = ack;
		if (se->next_seq < ack)
			se->next_seq = ack;
		return 0;
	}
	/* it cannot have processed what was never sent: taking it at its
	 * word would delete results stored later, unseen */
	snprintf(err, sizeof(err),
	    "fetch: ack %" PRIu64 " is above the highest result sequence "
	    "number sent to this session (%" PRIu64 ")",
	    ack, se->sent_seq);
	s->stat[ST_bad_messages]++;
	reply_error(s, rc, FERRY_EPROTO, err);
	return -1;
}

void
handle_fetch(struct sched *s, struct session *se, const struct proto_msg *m,
    struct rctx *rc)
{
	uint64_t     wait = m->wait_ms, dropped = 0;
	struct rctx *old;

	if (ack_check(s, se, m->ack, rc) != 0)
		return;
	se->restored = 0;
	/* everything up to ack has reached the client: drop it */
	while (se->rhead != NULL && se->rhead->seq <= m->ack) {
		struct result *r = se->rhead;
		se->rhead        = r->next;
		if (se->rhead == NULL)
			se->rtail = NULL;
		idmap_del(&se->done, r->tag);
		result_free(s, se, r);
		dropped++;
	}
	if (dropped > 0)
		session_notify(s, se, SESSION_ACKED, m->ack);
	if ((old = park_take(&se->park)) != NULL) {
		/* superseded: answer the old one empty */
		proto_writer_reset(&s->w);
		proto_write_results_empty(&s->w);
		reply(s, old);
	}
	if ((se->rhead != NULL && result_ready(s, se->rhead)) || wait == 0) {
		send_results(s, se, rc);
		return;
	}
	park_hold(s, &se->park, rc, wait < FETCH_MAX_MS ? wait : FETCH_MAX_MS,
	    fetch_due, se->id);
}

void
flush_dirty(struct sched *s)
{
	struct session *se;
	while ((se = s->dirty) != NULL) {
		s->dirty  = se->dirty_next;
		se->dirty = 0;
		if (se->pipe != 0 && se->park.active && se->rhead != NULL &&
		    result_ready(s, se->rhead))
			send_results(s, se, park_take(&se->park));
	}
}

void
results_durable(struct sched *s)
{
	struct list_node *n, *tmp;

	list_for_each_safe(&s->undurable, n, tmp) {
		struct session *se =
		    list_entry(n, struct session, undurable_node);
		session_mark_dirty(s, se);
		if (se->rtail == NULL || result_ready(s, se->rtail))
			list_remove(n);
	}
	flush_dirty(s);
}

int
results_restore(struct sched *s, struct session *se,
    const struct jresult *jr)
{
	struct result *r = malloc(sizeof(*r) + jr->len);

	if (r == NULL)
		return -1;
	r->next     = NULL;
	r->seq      = jr->seq;
	r->batch    = 0; /* on disk */
	r->tag      = jr->tag;
	r->code     = jr->code;
	r->len      = jr->len;
	r->attempts = jr->attempts;
	if (jr->len > 0)
		memcpy(r->data, jr->data, jr->len);
	if (idmap_put(&se->done, r->tag, r) != 0) {
		free(r);
		return -1;
	}
	result_append(s, se, r, jr->len);
	if (jr->seq > se->next_seq)
		se->next_seq = se->sent_seq = jr->seq;
	return 0;
}

uint64_t
results_owed(const struct sched *s)
{
	uint64_t n = 0;
	for (size_t i = 0; i < s->sessions.cap; i++) {
		const struct session *se = s->sessions.slots[i].val;
		if (s->sessions.slots[i].key != 0 && se->pipe != 0)
			n += se->n_results;
	}
	return n;
}
