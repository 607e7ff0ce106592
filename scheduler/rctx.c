/*
 * rctx.c - request contexts: the scheduler's side of NNG's REP protocol.
 *
 * Every request arrives on a context of its own (an NNG REP context with
 * its own receive and send operations), is handled on the NNG thread that
 * delivered it under the loop lock, and is answered on that context now
 * or later (a parked request keeps its context).  Exactly one context
 * receives at a time, so one connection's requests are handled in order.
 * Contexts are pooled: one that has sent its reply rests until it is the
 * one to receive again.  Nothing above this file touches NNG's contexts:
 * handlers write a reply into s->w and call reply().
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>

#include "log.h"
#include "sched_int.h"

static void ctx_rx_cb(void *arg);
static void ctx_tx_cb(void *arg);

static struct rctx *
rctx_new(struct sched *s)
{
	struct rctx *rc = calloc(1, sizeof(*rc));
	int          rv;

	if (rc == NULL)
		return NULL;
	rc->s = s;
	if ((rv = nng_ctx_open(&rc->ctx, s->sock)) != 0) {
		log_error("cannot open a request context: %s", nng_strerror(rv));
		free(rc);
		return NULL;
	}
	if ((rv = nng_aio_alloc(&rc->rx, ctx_rx_cb, rc)) != 0 ||
	    (rv = nng_aio_alloc(&rc->tx, ctx_tx_cb, rc)) != 0) {
		log_error("cannot allocate an aio: %s", nng_strerror(rv));
		nng_aio_free(rc->rx);
		nng_ctx_close(rc->ctx);
		free(rc);
		return NULL;
	}
	pthread_mutex_lock(&s->pool_lock);
	rc->all_next = s->ctxs;
	s->ctxs      = rc;
	pthread_mutex_unlock(&s->pool_lock);
	return rc;
}

/* rc is done with its request (answered, or dropped unanswered). */
void
rctx_release(struct sched *s, struct rctx *rc)
{
	pthread_mutex_lock(&s->pool_lock);
	rc->idle_next = s->idle;
	s->idle       = rc;
	pthread_mutex_unlock(&s->pool_lock);
}

/*
 * Let the next request in (lock held, or before the loop starts).  Exactly
 * one context receives at a time, and the next one starts only once the
 * handler of the previous request holds the lock: NNG may run the
 * handlers of two requests on two threads, and they must not overtake
 * each other (a client's submits, in order, are the queue's order).
 */
void
rctx_receive_next(struct sched *s)
{
	struct rctx *rc;

	if (atomic_load(&s->closing))
		return;
	pthread_mutex_lock(&s->pool_lock);
	if ((rc = s->idle) != NULL)
		s->idle = rc->idle_next;
	pthread_mutex_unlock(&s->pool_lock);
	if (rc == NULL && (rc = rctx_new(s)) == NULL) {
		log_error("no request context: the scheduler cannot receive");
		s->stop = 1;
		wake_loop(s);
		return;
	}
	nng_ctx_recv(rc->ctx, rc->rx);
}

/* Send the writer's bytes as the reply to the request held by rc. */
void
reply(struct sched *s, struct rctx *rc)
{
	nng_msg *msg;
	int      rv;

	if ((rv = nng_msg_alloc(&msg, s->w.buf.size)) != 0) {
		log_error("reply: %s", nng_strerror(rv));
		rctx_release(s, rc);
		return;
	}
	memcpy(nng_msg_body(msg), s->w.buf.data, s->w.buf.size);
	nng_aio_set_msg(rc->tx, msg);
	nng_ctx_send(rc->ctx, rc->tx); /* ctx_tx_cb receives again */
}

void
reply_error(struct sched *s, struct rctx *rc, int code,
    const char *text)
{
	proto_writer_reset(&s->w);
	proto_write_error(&s->w, code, text);
	reply(s, rc);
}

/*
 * Replies held for the journal wait in one list, in the order they were
 * made: their marks only grow along it, so the front is always the next
 * to go.
 */
void
reply_when(struct sched *s, struct rctx *rc, uint64_t mark)
{
	nng_msg *msg;
	int      rv;

	/* in trouble nothing gets written until it ends: what is answered
	 * now (refusals, cancels) goes at once, as results do */
	if ((mark <= s->jr_durable || s->jr_trouble) && s->held_head == NULL) {
		reply(s, rc);
		return;
	}
	if ((rv = nng_msg_alloc(&msg, s->w.buf.size)) != 0) {
		log_error("reply: %s", nng_strerror(rv));
		rctx_release(s, rc);
		return;
	}
	memcpy(nng_msg_body(msg), s->w.buf.data, s->w.buf.size);
	rc->held      = msg;
	rc->held_mark = mark;
	rc->held_next = NULL;
	if (s->held_tail != NULL)
		s->held_tail->held_next = rc;
	else
		s->held_head = rc;
	s->held_tail = rc;
}

/* Take the front held reply out of the list. */
static struct rctx *
held_pop(struct sched *s)
{
	struct rctx *rc = s->held_head;

	if ((s->held_head = rc->held_next) == NULL)
		s->held_tail = NULL;
	rc->held_next = NULL;
	return rc;
}

void
replies_release(struct sched *s)
{
	while (s->held_head != NULL &&
	    s->held_head->held_mark <= s->jr_durable) {
		struct rctx *rc = held_pop(s);
		nng_aio_set_msg(rc->tx, rc->held);
		rc->held = NULL;
		nng_ctx_send(rc->ctx, rc->tx);
	}
}

void
replies_refuse_held(struct sched *s, int code, const char *text)
{
	while (s->held_head != NULL) {
		struct rctx *rc = held_pop(s);
		nng_msg_free(rc->held);
		rc->held = NULL;
		reply_error(s, rc, code, text);
	}
}


/* A request arrived (on an NNG thread): handle it under the loop lock. */
static void
ctx_rx_cb(void *arg)
{
	struct rctx  *rc = arg;
	struct sched *s  = rc->s;
	int           rv = nng_aio_result(rc->rx);
	nng_msg      *msg;

	if (rv != 0) {
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
			return;
		log_warn("receive: %s", nng_strerror(rv));
		pthread_mutex_lock(&s->lock);
		rctx_release(s, rc);
		rctx_receive_next(s);
		pthread_mutex_unlock(&s->lock);
		return;
	}
	msg = nng_aio_get_msg(rc->rx);
	nng_aio_set_msg(rc->rx, NULL);
	atomic_fetch_add(&s->busy, 1);
	pthread_mutex_lock(&s->lock);
	rctx_receive_next(s);
	if (!s->stop)
		handle_message(s, msg, rc);
	atomic_fetch_sub(&s->busy, 1);
	if (!s->stop)
		loop_turn_locked(s);
	pthread_mutex_unlock(&s->lock);
	nng_msg_free(msg);
}

/* A reply left (or could not): the context is free again. */
static void
ctx_tx_cb(void *arg)
{
	struct rctx  *rc = arg;
	struct sched *s  = rc->s;
	int           rv = nng_aio_result(rc->tx);

	if (rv != 0) {
		nng_msg_free(nng_aio_get_msg(rc->tx));
		nng_aio_set_msg(rc->tx, NULL);
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
			return;
		log_warn("reply: %s", nng_strerror(rv));
	}
	rctx_release(s, rc);
}

void
rctx_close_all(struct sched *s)
{
	struct rctx *rc, *next;

	/* wait for every callback; replies still queued are dropped */
	for (rc = s->ctxs; rc != NULL; rc = rc->all_next) {
		nng_aio_stop(rc->rx);
		nng_aio_stop(rc->tx);
	}
	for (rc = s->ctxs; rc != NULL; rc = next) {
		next = rc->all_next;
		nng_msg_free(nng_aio_get_msg(rc->rx));
		nng_msg_free(nng_aio_get_msg(rc->tx));
		nng_msg_free(rc->held); /* never sent: stopped first */
		nng_aio_free(rc->rx);
		nng_aio_free(rc->tx);
		free(rc);
	}
	s->ctxs = s->idle = NULL;
	s->held_head = s->held_tail = NULL;
}
