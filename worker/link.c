/*
 * link.c - a worker process's link to the scheduler.
 *
 * Requests go on a REQ socket with one context per outstanding request
 * (struct wreq), so a request is written by the thread that sends it
 * (an executor sends its results itself when no report is in flight)
 * and its reply is handled in an NNG aio callback on the thread that
 * read it.  At most two work requests are in flight: a "poll" (a work
 * request with no results, which the scheduler may park until it has
 * tasks) and a "results" request (results to report, answered at once;
 * the last results of a process that then holds nothing also serve as
 * its poll, "park" 1, and may be parked in its place).  Both carry
 * credit: how many more tasks this process can hold, counting what
 * earlier in-flight requests already asked for.  Results leave in
 * batches, as many as finished while the previous batch was in flight.
 * After a lost connection (or when the scheduler no longer knows this
 * registration) every request is abandoned (a REQ context would send it
 * again on the next connection), and the process registers again saying
 * what it holds: the tasks in the inbox, those running, and the results
 * not acknowledged (those in flight go back to the outbox).  Nothing
 * starts meanwhile.  The welcome says which of them the scheduler gave
 * to someone else: those are dropped (a running one finishes, and its
 * result is dropped); the others are its own again (docs/protocol.md
 * 4.9).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "objcache.h"
#include "process_int.h"
#include "slots.h"
#include "util.h"

#define RECONNECT_WAIT_MS 3000 /* for a hello after a lost connection */

/*
 * How many more tasks to ask for (lock held).  A process holds its running
 * tasks plus a prefetch: enough queued work to cover about PREFETCH_US of
 * run time at the measured average (so tiny tasks travel in big batches
 * and long ones stay in the queue where any free worker can take them),
 * never more than the configured prefetch, and at most 8 per slot before
 * the first measurements.
 */
#define PREFETCH_US 20000.0

static uint64_t
credit_locked(struct wproc *w)
{
	uint64_t pf = (uint64_t)w->o->prefetch, cap;
	if (w->draining)
		return 0;
	if (w->n_timed < 4) {
		if (pf > 8u * (uint64_t)w->o->slots)
			pf = 8u * (uint64_t)w->o->slots;
	} else {
		double want = PREFETCH_US / (w->avg_us > 0.05 ? w->avg_us
		                                               : 0.05) *
		    w->o->slots;
		if (want < (double)pf)
			pf = want < 1.0 ? 1 : (uint64_t)want;
	}
	cap = (uint64_t)w->o->slots + pf;
	if (cap <= w->held + w->granted)
		return 0;
	cap -= w->held + w->granted;
	if (w->o->max_tasks > 0) {
		/* never take more than max_tasks in this process's life */
		uint64_t left = w->o->max_tasks > w->taken + w->granted
		    ? w->o->max_tasks - w->taken - w->granted
		    : 0;
		if (cap > left)
			cap = left;
	}
	return cap;
}

/* ----------------------------------------------------------- requests */

/* Whether a slot's operations are still running (or it has no context):
 * not free even with no request outstanding. */
static int
wreq_busy(const struct req *h)
{
	const struct wreq *r = (const struct wreq *)h;
	return r->tx_busy || r->rx_busy || r->dead;
}

static struct wreq *
wreq_new(struct wproc *w, int kind, uint64_t credit)
{
	struct wreq *r = (struct wreq *)req_new(&w->rs, kind);

	if (r == NULL)
		return NULL;
	r->polls  = 0;
	r->credit = credit;
	return r;
}

/* Send w->msgw as request r (lock held).  Returns 0, or -1: r is free
 * again. */
static int
wreq_send(struct wproc *w, struct wreq *r)
{
	nng_msg *msg;
	int      rv;

	if (w->closing) {
		req_done(&r->h);
		return -1;
	}
	if ((rv = req_msg(&msg, &w->msgw, 0)) != 0) {
		log_error("cannot build a request: %s", nng_strerror(rv));
		req_done(&r->h);
		return -1;
	}
	nng_aio_set_msg(r->tx, msg);
	r->tx_busy = r->rx_busy = 1;
	/* NNG writes it from this thread when the connection is free; the
	 * reply arrives in wreq_rx_cb (failures, too) */
	nng_ctx_send(r->ctx, r->tx);
	nng_ctx_recv(r->ctx, r->rx);
	w->last_send_ms = util_now_ms();
	return 0;
}

/*
 * Abandon the request in slot r (lock held): closing its context ends both
 * operations (as NNG_ECLOSED), and the slot gets a fresh context.
 * (Cancelling the operations instead trips NNG 1.5: a send still queued
 * for a connection cannot be cancelled while its receive waits, and
 * cancelling the receive first leaves a send that crashes when it is
 * cancelled later.)
 */
static void
wreq_abandon(struct req *h, void *arg)
{
	struct wproc *w = arg;
	struct wreq  *r = (struct wreq *)h;

	h->id = 0;
	if (r->dead || (!r->tx_busy && !r->rx_busy))
		return;
	nng_ctx_close(r->ctx);
	if (w->closing || nng_ctx_open(&r->ctx, w->sock) != 0)
		r->dead = 1;
}

/* ------------------------------------------------------------ holding */

/* Keep in the outbox only the results whose task keep(id, arg) says
 * (lock held); returns how many went.  (Its entries are ours: one
 * [id, code, value] each.) */
static uint32_t
outbox_filter_locked(struct wproc *w, int (*keep)(uint64_t id, void *arg),
    void *arg)
{
	struct proto_writer kept;
	msgpack_unpacked    u;
	size_t              off = 0, start = 0;
	uint32_t            gone;

	if (w->out.entries == 0)
		return 0;
	proto_writer_init(&kept);
	msgpack_unpacked_init(&u);
	while (msgpack_unpack_next(&u, w->out.buf.data, w->out.buf.size,
	           &off) == MSGPACK_UNPACK_SUCCESS) {
		const msgpack_object *o = &u.data;
		if (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size > 0 &&
		    o->via.array.ptr[0].type ==
		        MSGPACK_OBJECT_POSITIVE_INTEGER &&
		    keep(o->via.array.ptr[0].via.u64, arg)) {
			msgpack_sbuffer_write(&kept.buf, w->out.buf.data + start,
			    off - start);
			kept.entries++;
		}
		start = off;
	}
	msgpack_unpacked_destroy(&u);
	gone = w->out.entries - kept.entries;
	proto_writer_swap(&w->out, &kept);
	proto_writer_fini(&kept);
	return gone;
}

/* The results in flight were not taken, or may not have arrived (lock
 * held): back to the outbox, ahead of those finished since. */
static void
results_unsent_locked(struct wproc *w)
{
	if (w->spare.entries == 0) {
		proto_writer_reset(&w->spare);
		return;
	}
	proto_writer_append(&w->spare, &w->out);
	proto_writer_swap(&w->out, &w->spare);
	proto_writer_reset(&w->spare);
}

/* Task ids collected into a list of at most max. */
struct idlist {
	uint64_t *ids;
	uint32_t  n, max;
};

static int
idlist_add(uint64_t id, void *arg)
{
	struct idlist *l = arg;

	if (l->n >= l->max)
		return 0; /* no room: its result goes, its task runs again */
	l->ids[l->n++] = id;
	return 1;
}

/*
 * What a process that registers again holds (lock held): the tasks
 * queued and running, then those whose results wait in the outbox; at
 * most twice its capacity, and no more than a hello can carry (results
 * beyond that are dropped: their tasks run again).  Into l->ids
 * (malloc'd); returns 0, or -1 when memory runs out.
 */
static int
holding_locked(struct wproc *w, struct idlist *l)
{
	uint64_t cap = 2 * (uint64_t)w->capacity,
	         fit = (w->link.max_msg - 4096) / 9;

	if (cap > fit)
		cap = fit;
	if (cap > (uint64_t)w->held + w->out.entries)
		cap = (uint64_t)w->held + w->out.entries;
	l->n   = 0;
	l->max = (uint32_t)cap;
	if ((l->ids = malloc((cap + 1) * sizeof(*l->ids))) == NULL)
		return -1;
	l->n = wp_held_ids_locked(w, l->ids, l->max);
	(void)outbox_filter_locked(w, idlist_add, l);
	return 0;
}

/* The held tasks a welcome says to drop (sorted), or all of them. */
struct dropset {
	const uint64_t *ids;
	uint32_t        n;
	int             all;
};

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int
dropset_has(uint64_t id, void *arg)
{
	const struct dropset *d = arg;
	return d->all || (d->n > 0 &&
	    bsearch(&id, d->ids, d->n, sizeof(id), cmp_u64) != NULL);
}

static int
dropset_keeps(uint64_t id, void *arg)
{
	return !dropset_has(id, arg);
}

/* What registering again did to what the process held. */
struct rejoin {
	int      all; /* everything dropped: another run, or an older
	               * scheduler */
	uint32_t queued, running, results; /* dropped */
	uint32_t kept;
};

/* The welcome m answers a hello that said what this process holds (lock
 * held): drop what it says, or everything if the scheduler is another
 * run or does not know what the process holds; the rest is its own
 * again. */
static void
rejoin_locked(struct wproc *w, const struct proto_msg *m, struct rejoin *rj)
{
	struct dropset d = { m->drop, m->n_drop, 0 };

	memset(rj, 0, sizeof(*rj));
	d.all = rj->all = w->hello_epoch == 0 || m->epoch != w->hello_epoch;
	if (!d.all && m->n_drop > 1)
		qsort(m->drop, m->n_drop, sizeof(*m->drop), cmp_u64);
	wp_held_drop_locked(w, dropset_has, &d, &rj->queued, &rj->running);
	rj->results = outbox_filter_locked(w, dropset_keeps, &d);
	rj->kept    = w->held - rj->running + w->out.entries;
	w->epoch    = m->epoch;
}

/* ------------------------------------------------------------ sending */

void
wp_hello_locked(struct wproc *w)
{
	struct wreq       *r = wreq_new(w, WREQ_HELLO, 0);
	struct proto_hello h = { 0 };
	struct idlist      l = { NULL, 0, 0 };

	if (r == NULL)
		return;
	/* a process that was registered says what it still holds, unless
	 * memory runs out: then it drops it all at the welcome */
	if (w->epoch != 0 && holding_locked(w, &l) == 0) {
		h.epoch     = w->epoch;
		h.previous  = w->link.id;
		h.holding   = l.ids;
		h.n_holding = l.n;
	}
	w->hello_epoch = h.epoch;
	h.token       = w->token;
	h.name        = w->name;
	h.host        = w->host;
	h.group       = w->o->group;
	h.pid         = (uint64_t)getpid();
	h.slots       = (uint64_t)w->o->slots;
	h.capacity    = w->capacity;
	h.functions   = w->fn_names;
	h.n_functions = (uint32_t)w->reg.n;
	h.supervisor  = w->o->supervisor_token;
	proto_writer_reset(&w->msgw);
	proto_write_hello_worker(&w->msgw, &h);
	free(l.ids);
	wreq_send(w, r);
	w->hello_wait_ms  = w->o->connect_timeout_ms;
	w->hello_deadline = util_now_ms() + w->hello_wait_ms;
	w->last_reply_ms  = util_now_ms();
}

/* Write a work request asking for credit into w->msgw (lock held);
 * results: the batch it carries, or NULL. */
static void
work_write_locked(struct wproc *w, uint64_t credit, int park,
    const struct proto_writer *results)
{
	struct proto_work     m = { 0 };
	struct objcache_stats st;
	struct proto_cache    pc;

	m.credit  = credit;
	m.park    = park;
	m.results = results;
	m.loaded  = &w->ev_loaded;
	m.evicted = &w->ev_evicted;
	if (w->cache != NULL) {
		objcache_stats(w->cache, &st);
		pc = (struct proto_cache) { st.objects, st.bytes, st.loads,
			st.hits, st.evictions, st.failures, 1 };
		m.cache = &pc;
	}
	proto_writer_reset(&w->msgw);
	proto_write_work(&w->msgw, &m);
}

void
wp_work_locked(struct wproc *w, int with_results)
{
	uint64_t     avail = credit_locked(w);
	int          polls;
	struct wreq *r;

	/* the last results of an idle process ask for work themselves: the
	 * scheduler may park them like a poll, and no separate poll (and no
	 * empty answer to the report) is needed */
	polls = with_results && !w->poll_inflight && !w->draining &&
	    !w->crashed && w->held == 0 && avail > 0;
	/* the outbox's results go in this request: a new outbox takes
	 * those that finish meanwhile */
	if (with_results)
		proto_writer_swap(&w->out, &w->spare);
	r = wreq_new(w, with_results ? WREQ_RESULTS : WREQ_POLL, avail);
	work_write_locked(w, avail, polls, with_results ? &w->spare : NULL);
	if (r == NULL || wreq_send(w, r) != 0) {
		/* keep the results (and events) for the next attempt, the
		 * older ones first */
		if (with_results) {
			proto_writer_append(&w->spare, &w->out);
			proto_writer_swap(&w->out, &w->spare);
			proto_writer_reset(&w->spare);
		}
		return;
	}
	/* the batch sent stays in spare until it is answered */
	proto_writer_reset(&w->ev_loaded);
	proto_writer_reset(&w->ev_evicted);
	w->granted += avail;
	r->polls = polls;
	if (with_results) {
		w->res_inflight = 1;
		r->batch        = w->out_batch++;
	}
	if (!with_results || polls)
		w->poll_inflight = 1;
}

void
wp_pump_locked(struct wproc *w)
{
	if (!w->registered)
		return;
	if (w->out.entries > 0 && !w->res_inflight)
		wp_work_locked(w, 1);
	/* ask for more with a poll only when idle or when no report is on
	 * its way: a report carries credit too, and a poll sent while the
	 * first task of a batch runs only competes with it for the CPU */
	if (!w->poll_inflight && !w->draining &&
	    (w->held == 0 || (!w->res_inflight && w->out.entries == 0 &&
	                         w->held < (uint32_t)w->o->slots)) &&
	    credit_locked(w) > 0)
		wp_work_locked(w, 0);
	if (!w->poll_inflight && !w->res_inflight &&
	    util_now_ms() - w->last_send_ms >= w->link.hb_ms)
		wp_work_locked(w, 0); /* heartbeat */
}

/* ------------------------------------------------------------ replies */

/* The answer to the hello (on an NNG thread; lock held, released).
 * Returns 0, -1 to exit (the supervisor restarts the process) or -2 to
 * exit for good (the scheduler refused the token). */
static int
hello_answer(struct wproc *w, int rv, const struct proto_msg *m,
    const char *err)
{
	uint64_t        was = w->link.id;
	enum req_answer a   = req_link_answer(&w->link, rv, m);
	struct rejoin   rj  = { 0, 0, 0, 0, 0 };

	if (a == REQ_WELCOMED) {
		rejoin_locked(w, m, &rj);
		w->registered = 1;
		wrk_slots_set_worker(w->slots, w->link.id);
		wp_executors_wake_locked(w);
	}
	pthread_mutex_unlock(&w->lock);
	switch (a) {
	case REQ_BAD:
		log_error("bad answer to hello: %s", err);
		return -1;
	case REQ_REFUSED:
		log_error("scheduler refused registration: %s%s", m->msg,
		    m->code == FERRY_EAUTH
		        ? " (check the token file: --token-file)"
		        : "");
		return m->code == FERRY_EAUTH ? -2 : -1;
	case REQ_UNEXPECTED:
		log_error("unexpected %s in answer to hello",
		    proto_type_name(m->type));
		return -1;
	case REQ_WELCOMED:
		break;
	}
	log_info("registered with %s as worker %" PRIu64
	         " (%u slot(s), prefetch up to %d)",
	    w->o->connect, w->link.id, w->o->slots, w->o->prefetch);
	if (rj.queued + rj.running + rj.results > 0)
		log_warn("worker %" PRIu64 " (was %" PRIu64 "): %u held task(s) "
		         "kept; dropped %u queued, %u running (their results "
		         "go too) and %u result(s): %s",
		    w->link.id, was, rj.kept, rj.queued, rj.running,
		    rj.results,
		    !rj.all ? "the scheduler gave them to other workers "
		              "meanwhile"
		    : m->epoch == 0 ? "this scheduler does not take them back"
		                    : "the scheduler restarted without them");
	else if (rj.kept > 0)
		log_info("worker %" PRIu64 " (was %" PRIu64 "): %u held task(s) "
		         "kept",
		    w->link.id, was, rj.kept);
	return 0;
}

/* The answer to work request r (lock held): its new tasks (head, n_new)
 * go to the inbox unless draining; *head is left with what is to be
 * freed. */
static void
work_answer_locked(struct wproc *w, struct wreq *r, int kind, int rv,
    const struct proto_msg *m, struct wtask **head, struct wtask *tail,
    uint32_t n_new)
{
	/* the credit this request asked for becomes held tasks in one step,
	 * so no other request can ask for it twice */
	if (w->granted >= r->credit)
		w->granted -= r->credit;
	else
		w->granted = 0;
	if (n_new > 0 && !w->draining) {
		wp_inbox_append_locked(w, *head, tail, n_new);
		*head = NULL;
	}
	int unknown = rv == 0 && m->type == PROTO_ERROR &&
	    m->code == FERRY_ESTATE;

	if (kind == WREQ_POLL || r->polls)
		w->poll_inflight = 0;
	if (kind == WREQ_RESULTS) {
		w->res_inflight = 0;
		if (unknown)
			results_unsent_locked(w); /* not taken */
		else
			proto_writer_reset(&w->spare);
	}
	if (unknown && w->registered) {
		/* it does not know us (our lease lapsed while we were
		 * frozen): register again, as after a lost connection, saying
		 * what we hold (the I/O thread abandons the requests) */
		log_warn("the scheduler no longer knows this worker (%s); "
		         "registering again",
		    m->msg);
		w->registered = 0;
		atomic_store(&w->relink, 1);
		wp_wake_io(w);
	}
}

/* Handle the reply to the request in slot r (on an NNG thread).  Returns
 * as hello_answer. */
static int
reply_in(struct wproc *w, struct wreq *r, nng_msg *msg)
{
	struct proto_msg m;
	char             err[512];
	uint32_t         n_new = 0;
	int              rv, kind;
	struct wtask    *head = NULL, *tail = NULL;

	rv = proto_decode(&r->dec, nng_msg_body(msg), nng_msg_len(msg), &m,
	    err, sizeof(err));
	if (rv == 0 && m.type == PROTO_TASKS && m.n_tasks > 0)
		n_new = wp_tasks_build(w, &m, &head, &tail);

	pthread_mutex_lock(&w->lock);
	w->last_reply_ms = util_now_ms();
	if (r->h.id == 0) {
		pthread_mutex_unlock(&w->lock);
		wp_tasks_free(head);
		return 0; /* a reply from before a reconnection */
	}
	kind = r->h.kind;
	req_done(&r->h);
	if (kind == WREQ_RESULTS && rv == 0 &&
	    !(m.type == PROTO_ERROR && m.code == FERRY_ESTATE))
		wp_acked_locked(w, r->batch);
	if (kind == WREQ_HELLO)
		return hello_answer(w, rv, &m, err);
	work_answer_locked(w, r, kind, rv, &m, &head, tail, n_new);
	pthread_mutex_unlock(&w->lock);
	wp_tasks_free(head); /* only if draining */
	if (rv != 0)
		log_error("bad message from the scheduler: %s", err);
	else if (m.type == PROTO_ERROR)
		log_warn("scheduler: %s", m.msg);
	else if (m.type != PROTO_TASKS)
		log_warn("unexpected %s from the scheduler",
		    proto_type_name(m.type));
	return 0;
}

/* A request failed without an answer (lock held): forget it (what it
 * asked for lapses) and carry on; a reset connection is handled as a
 * lost one (wp_pipe_cb). */
static void
wreq_failed_locked(struct wproc *w, struct wreq *r, int rv)
{
	if (rv != NNG_ECONNRESET)
		log_warn("request to the scheduler failed: %s",
		    nng_strerror(rv));
	w->granted = w->granted >= r->credit ? w->granted - r->credit : 0;
	if (r->h.kind == WREQ_POLL || r->polls)
		w->poll_inflight = 0;
	if (r->h.kind == WREQ_RESULTS) {
		w->res_inflight = 0;
		results_unsent_locked(w); /* they may not have arrived */
	}
	req_done(&r->h);
	wp_pump_locked(w);
}

/* A request's reply (or its failure) arrives here, on an NNG thread. */
static void
wreq_rx_cb(void *arg)
{
	struct wreq  *r = arg;
	struct wproc *w = r->w;
	nng_msg      *msg;
	int           rv = nng_aio_result(r->rx), wake;

	if (rv != 0) {
		pthread_mutex_lock(&w->lock);
		r->rx_busy = 0;
		if (r->h.id != 0 && rv != NNG_ECLOSED && !w->closing)
			wreq_failed_locked(w, r, rv);
		pthread_mutex_unlock(&w->lock);
		return;
	}
	msg = nng_aio_get_msg(r->rx);
	nng_aio_set_msg(r->rx, NULL);
	rv = reply_in(w, r, msg);
	nng_msg_free(msg);
	pthread_mutex_lock(&w->lock);
	r->rx_busy = 0;
	if (rv != 0) {
		pthread_mutex_unlock(&w->lock);
		/* the supervisor restarts us, unless the scheduler refused
		 * our token: restarting cannot help */
		atomic_store(&w->fatal,
		    rv == -2 ? WRK_EXIT_CONFIG : WRK_EXIT_LOST);
		wp_wake_io(w);
		return;
	}
	wp_pump_locked(w);
	/* the I/O thread decides: drain, crash exit, or recycling */
	wake = w->draining || w->crashed ||
	    (w->o->max_tasks > 0 && w->taken >= w->o->max_tasks &&
	        w->held == 0);
	pthread_mutex_unlock(&w->lock);
	if (wake)
		wp_wake_io(w);
}

/* A request left (or could not). */
static void
wreq_tx_cb(void *arg)
{
	struct wreq  *r  = arg;
	struct wproc *w  = r->w;
	int           rv = nng_aio_result(r->tx);

	if (rv != 0) {
		nng_msg *msg = nng_aio_get_msg(r->tx);
		nng_aio_set_msg(r->tx, NULL);
		if (msg != NULL)
			nng_msg_free(msg);
	}
	pthread_mutex_lock(&w->lock);
	r->tx_busy = 0;
	pthread_mutex_unlock(&w->lock);
	if (rv != 0 && rv != NNG_ECLOSED && rv != NNG_ECANCELED)
		nng_aio_cancel(r->rx); /* no reply can come */
}

/* ------------------------------------------------------ connection */

int
wp_reqs_open(struct wproc *w)
{
	int rv;

	req_set_init(&w->rs, w->reqs, sizeof(w->reqs[0]), MAX_REQS,
	    wreq_busy);
	for (int i = 0; i < MAX_REQS; i++) {
		struct wreq *r = &w->reqs[i];
		r->w           = w;
		proto_decoder_init(&r->dec);
		if ((rv = nng_ctx_open(&r->ctx, w->sock)) != 0 ||
		    (rv = nng_aio_alloc(&r->rx, wreq_rx_cb, r)) != 0 ||
		    (rv = nng_aio_alloc(&r->tx, wreq_tx_cb, r)) != 0)
			return rv;
	}
	return 0;
}

void
wp_reqs_stop(struct wproc *w)
{
	pthread_mutex_lock(&w->lock);
	w->closing = 1;
	req_abandon(&w->rs, wreq_abandon, w);
	pthread_mutex_unlock(&w->lock);
	for (int i = 0; i < MAX_REQS; i++) {
		if (w->reqs[i].tx != NULL)
			nng_aio_stop(w->reqs[i].tx);
		if (w->reqs[i].rx != NULL)
			nng_aio_stop(w->reqs[i].rx);
	}
}

void
wp_reqs_free(struct wproc *w)
{
	for (int i = 0; i < MAX_REQS; i++) {
		struct wreq *r = &w->reqs[i];
		if (r->w == NULL)
			continue;
		if (r->tx != NULL) {
			nng_msg *msg = nng_aio_get_msg(r->tx);
			if (msg != NULL)
				nng_msg_free(msg);
		}
		if (r->rx != NULL)
			nng_aio_free(r->rx);
		if (r->tx != NULL)
			nng_aio_free(r->tx);
		proto_decoder_fini(&r->dec);
	}
}

void
wp_link_lost_locked(struct wproc *w, int pipe_lost, struct wp_holding *h)
{
	uint32_t wait = RECONNECT_WAIT_MS;

	req_abandon(&w->rs, wreq_abandon, w);
	w->granted       = 0;
	w->poll_inflight = w->res_inflight = 0;
	w->registered    = 0;
	results_unsent_locked(w);
	h->running = w->running;
	h->queued  = w->held - w->running;
	h->results = w->out.entries;
	if (w->draining && pipe_lost)
		return; /* the process exits */
	wp_hello_locked(w);
	/* a hello can be lost with the old connection: if none is answered
	 * soon, start afresh (the supervisor restarts this process); one
	 * that holds tasks waits as long as for its first connection, for
	 * a scheduler that restarts */
	if (w->held + w->out.entries > 0 &&
	    w->o->connect_timeout_ms > RECONNECT_WAIT_MS)
		wait = w->o->connect_timeout_ms;
	if (w->hello_wait_ms > wait) {
		w->hello_wait_ms  = wait;
		w->hello_deadline = util_now_ms() + wait;
	}
}

void
wp_drain_locked(struct wproc *w)
{
	w->draining = 1;
	/* a report parked as the poll is answered only when superseded: do
	 * that now (credit 0), so the drain need not wait for a heartbeat
	 * interval */
	for (int i = 0; i < MAX_REQS; i++)
		if (w->reqs[i].h.id != 0 &&
		    w->reqs[i].h.kind == WREQ_RESULTS && w->reqs[i].polls) {
			wp_work_locked(w, 0);
			break;
		}
}

void
wp_cache_event(void *arg, int loaded, const char *key)
{
	struct wproc *w = arg;
	size_t        n = strlen(key);

	/* bounded: locality is a hint, not a promise */
	pthread_mutex_lock(&w->lock);
	if (loaded && w->ev_loaded.entries < 1024)
		proto_pack_str(&w->ev_loaded, key, n);
	else if (!loaded && w->ev_evicted.entries < 1024)
		proto_pack_str(&w->ev_evicted, key, n);
	pthread_mutex_unlock(&w->lock);
}

void
wp_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct wproc *w = arg;
	(void)p;
	(void)ev;
	atomic_store(&w->pipe_lost, 1);
	wp_wake_io(w);
}
