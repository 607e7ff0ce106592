/*
 * results.c - libferry's results: the fetch long poll that brings them
 * (acknowledged by sequence number in the next fetch, so a reply lost
 * with a dropped connection is sent again, and a reconnecting client gets
 * every result exactly once), results kept for tags without a future
 * (orphans) until ferry_attach() takes them, and a session the scheduler
 * lost.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

int
tag_completed_locked(const ferry_client *c, uint64_t tag)
{
	if (tag > c->base_tag && tag <= c->next_tag)
		return 1; /* made here, and no longer pending */
	return idmap_get(&c->attached_done, tag) != NULL ||
	    idmap_get(&c->orphans, tag) != NULL;
}

/* Keep a result nobody waits for (lock held).  Returns 0 or -1 (no
 * memory). */
static int
orphan_keep_locked(ferry_client *c, const struct proto_result *res)
{
	struct orphan *o = malloc(sizeof(*o) + res->len + 1);
	if (o == NULL)
		return -1;
	o->code     = res->code;
	o->attempts = res->attempts;
	o->len      = res->len;
	if (res->len > 0)
		memcpy(o->data, res->data, res->len);
	o->data[res->len] = '\0';
	if (idmap_put(&c->orphans, res->id, o) != 0) {
		free(o);
		return -1;
	}
	return 0;
}

/* The future state a result code means. */
static int
state_of_code(int32_t code)
{
	switch (code) {
	case 0:
		return FERRY_DONE;
	case FERRY_ECANCELED:
		return FERRY_CANCELLED;
	case FERRY_EDEAD:
		return FERRY_DEAD;
	default:
		return FERRY_FAILED;
	}
}

void
ack_update_locked(ferry_client *c)
{
	uint64_t to = c->seen;

	if (c->frozen.count > 0 && c->frozen_min - 1 < to)
		to = c->frozen_min - 1;
	if (to > c->ack) /* acks only grow */
		c->ack = to;
}

void
results_taken_locked(ferry_client *c, uint64_t upto)
{
	if (upto > c->seen)
		c->seen = upto;
	ack_update_locked(c);
}

/* A batch of results (lock held): complete their futures, keep the
 * orphans, and acknowledge them in the next fetch. */
static void
results_locked(ferry_client *c, const struct proto_msg *m)
{
	/* entries carry consecutive seqs ending at m->seq */
	int      seqs  = m->seq >= m->n_results;
	uint64_t first = m->seq + 1 - m->n_results;

	for (uint32_t i = 0; i < m->n_results; i++) {
		const struct proto_result *res = &m->results[i];
		struct ferry_future       *f   = idmap_get(&c->pending, res->id);
		uint64_t                   seq = seqs ? first + i : m->seq;
		if (f == NULL) {
			if (res->id == 0 || tag_completed_locked(c, res->id)) {
				/* never deliver twice, but count it: a
				 * duplicate means a bug somewhere (a result
				 * whose future failed when the client gave
				 * up on the scheduler is not one, nor one
				 * sent again because its ack was held
				 * back) */
				if (res->id > c->gave_up_tag && seq > c->seen)
					c->stats.duplicates++;
				continue;
			}
			if (orphan_keep_locked(c, res) != 0) {
				/* no memory: acknowledge only what came
				 * before; the rest is delivered again */
				if (seqs)
					results_taken_locked(c, seq - 1);
				return;
			}
			continue;
		}
		if (f->refs_inflight > 0 &&
		    graph_freeze_locked(c, f, seq) != 0) {
			/* no memory to hold its ack back: take it (and
			 * what follows) when it comes again */
			if (seqs)
				results_taken_locked(c, seq - 1);
			return;
		}
		f->attempts = res->attempts;
		future_complete_locked(c, f, state_of_code(res->code),
		    res->code, res->data, res->len);
	}
	if (c->full) /* those tasks left the scheduler: room for as many */
		c->full_room += m->n_results;
	results_taken_locked(c, m->seq);
}

void
fetch_answer_locked(ferry_client *c, int rv, const struct proto_msg *m)
{
	c->fetch_inflight = 0;
	if (rv == 0 && m->type == PROTO_RESULTS)
		results_locked(c, m);
}

void
fetch_pump_locked(ferry_client *c)
{
	struct creq *r;

	if (c->fetch_inflight || (r = creq_new(c, CREQ_FETCH)) == NULL)
		return;
	proto_writer_reset(&c->w);
	proto_write_fetch(&c->w, c->ack, FETCH_WAIT_MS);
	if (creq_send(c, r) == 0)
		c->fetch_inflight = 1;
	else
		creq_clear(r);
}

/* The scheduler no longer knows our session (it expired, or the scheduler
 * restarted): tasks it had accepted are gone; fail their futures.  Tasks
 * not yet accepted are sent again. */
void
session_lost_locked(ferry_client *c)
{
	static const char msg[] = "the scheduler lost this client's session "
	                          "while it was disconnected";

	futures_fail_locked(c, FERRY_ECLOSED, msg, sizeof(msg) - 1, 1);
	/* a new session numbers its results from 1 again */
	graph_session_reset_locked(c);
	c->seen = 0;
	c->ack  = 0;
}

FERRY_API int
ferry_attach(ferry_client *c, uint64_t id, ferry_future **out)
{
	struct ferry_future *f;
	struct orphan       *o;

	if (c == NULL || out == NULL)
		return FERRY_EINVAL;
	*out = NULL;
	pthread_mutex_lock(&c->lock);
	if (c->closing) {
		pthread_mutex_unlock(&c->lock);
		return FERRY_ECLOSED;
	}
	if ((f = idmap_get(&c->pending, id)) != NULL) {
		f->refs++; /* another reference to the same future */
		*out = f;
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	o = idmap_get(&c->orphans, id);
	if (o == NULL && (id == 0 || id > c->next_tag ||
	                     tag_completed_locked(c, id))) {
		pthread_mutex_unlock(&c->lock);
		return FERRY_ENOTFOUND;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL) {
		pthread_mutex_unlock(&c->lock);
		return FERRY_ENOMEM;
	}
	f->c        = c;
	f->tag      = id;
	f->state    = FERRY_PENDING;
	f->refs     = 2; /* the caller's, the client's */
	f->attached = 1;
	c->refs++;
	if (o != NULL) {
		idmap_del(&c->orphans, id);
		f->attempts = o->attempts;
		future_complete_locked(c, f, state_of_code(o->code), o->code,
		    o->data, o->len);
		free(o);
	} else if (c->offline) {
		/* no scheduler for reconnect_ms: as every pending future */
		future_complete_locked(c, f, FERRY_FAILED, FERRY_ECLOSED,
		    c->down_msg, strlen(c->down_msg));
	} else if (idmap_put(&c->pending, id, f) != 0) {
		c->refs--;
		free(f);
		pthread_mutex_unlock(&c->lock);
		return FERRY_ENOMEM;
	}
	*out = f;
	pthread_mutex_unlock(&c->lock);
	return 0;
}
