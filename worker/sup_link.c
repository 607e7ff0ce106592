/*
 * sup_link.c - the supervisor's own connection to the scheduler.
 *
 * A raw REQ socket, polled in the supervisor's loop (NNG_OPT_RECVFD and
 * an eventfd its pipe callbacks write), registered with hello role
 * "supervisor" and a random token that every worker process it starts
 * also sends in its hello.  One `watch` stays in flight (it is the
 * heartbeat, and brings kill orders); each ended process is reported
 * (`report`: pid, worker id, cause, reason, the tasks it ran and which
 * are to blame).  Reports wait in a bounded queue while the scheduler is
 * away and go out once it is back.  After a lost connection the requests
 * in flight are abandoned (the report in flight stays first in the
 * queue) and the supervisor says hello again.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "ferry/ferry.h"
#include "log.h"
#include "sup_int.h"
#include "util.h"

#define TICK_MS 50          /* the supervisor's loop turns this often */
#define HELLO_RETRY_MS 2000 /* after the scheduler refused our hello */
#define HELLO_WAIT_MS 5000  /* a hello unanswered this long is lost */

static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct sconn *c   = arg;
	uint64_t      one = 1;
	(void)p;
	if (ev == NNG_PIPE_EV_ADD_POST) {
		atomic_fetch_add(&c->pipes, 1);
	} else {
		atomic_fetch_sub(&c->pipes, 1);
		atomic_store(&c->lost, 1);
	}
	if (write(c->event_fd, &one, sizeof(one)) < 0) {
		/* saturated: readable anyway */
	}
}

/* The socket and its dialer.  Returns 0, or -1 (logged). */
static int
sock_open(struct sconn *c)
{
	const struct wrk_options *o  = c->o;
	struct sec_dial           sd = { o->tls_ca_file, o->tls_cert_key_file,
		          o->tls_server_name, o->token_file };
	char                      err[512];
	int                       rv;

	if ((rv = nng_req0_open_raw(&c->sock)) != 0 ||
	    (rv = util_sock_setup(c->sock, o->max_message_size)) != 0 ||
	    (rv = nng_pipe_notify(c->sock, NNG_PIPE_EV_ADD_POST, pipe_cb,
	         c)) != 0 ||
	    (rv = nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, pipe_cb,
	         c)) != 0 ||
	    (rv = nng_socket_get_int(c->sock, NNG_OPT_RECVFD, &c->recv_fd)) !=
	        0) {
		log_error("cannot open a socket to the scheduler: %s; "
		          "supervising without reporting",
		    nng_strerror(rv));
		if (c->sock.id != 0)
			nng_close(c->sock);
		return -1;
	}
	if (req_dial(c->sock, o->connect, &sd, c->secret, &c->dialer, err,
	        sizeof(err)) != 0) {
		log_error("%s; supervising without reporting", err);
		nng_close(c->sock);
		return -1;
	}
	return 0;
}

void
sconn_open(struct sconn *c, const struct wrk_options *o, const char *host,
    sconn_orders_fn on_orders, void *arg)
{
	c->o         = o;
	c->host      = host;
	c->on_orders = on_orders;
	c->arg       = arg;
	c->token     = util_random64();
	c->recv_fd   = -1;
	req_set_init(&c->rs, c->reqs, sizeof(c->reqs[0]), 3, NULL);
	req_link_init(&c->link, o->max_message_size);
	proto_writer_init(&c->w);
	proto_decoder_init(&c->dec);
	if ((c->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		log_error("eventfd: %s: no reports to the scheduler",
		    strerror(errno));
		return;
	}
	if (sock_open(c) != 0) {
		c->recv_fd = -1;
		return;
	}
	c->open = 1;
}

void
report_clear(struct report *r)
{
	free(r->tasks);
	memset(r, 0, sizeof(*r));
}

/* Drop the report at the head of the queue. */
static void
report_pop(struct sconn *c)
{
	report_clear(&c->q[c->q_head]);
	c->q_head = (c->q_head + 1) % REPORTS_MAX;
	c->q_len--;
}

void
sconn_close(struct sconn *c)
{
	if (c->open)
		nng_close(c->sock);
	c->open = 0;
	if (c->event_fd >= 0)
		close(c->event_fd);
	while (c->q_len > 0)
		report_pop(c);
	proto_writer_fini(&c->w);
	proto_decoder_fini(&c->dec);
}

/* Send c->w as a request of kind; returns it, or NULL if it could not
 * go. */
static struct sreq *
sreq_send(struct sconn *c, int kind)
{
	struct sreq *r;
	int          rv;

	if (!c->open || (r = (struct sreq *)req_new(&c->rs, kind)) == NULL)
		return NULL;
	r->sent_ms = util_now_ms();
	if ((rv = req_send(c->sock, &r->h, &c->w, NNG_FLAG_NONBLOCK)) != 0) {
		log_debug("send to the scheduler: %s", nng_strerror(rv));
		req_done(&r->h);
		return NULL;
	}
	return r;
}

static void
send_hello(struct sconn *c)
{
	struct proto_hello h = { 0 };

	h.token      = c->secret;
	h.supervisor = c->token;
	h.name       = c->host;
	h.host       = c->host;
	h.group      = c->o->group;
	h.pid        = (uint64_t)getpid();
	proto_writer_reset(&c->w);
	proto_write_hello_supervisor(&c->w, &h);
	if (sreq_send(c, SREQ_HELLO) == NULL)
		c->next_hello_ms = util_now_ms() + HELLO_RETRY_MS;
}

static void
send_watch(struct sconn *c)
{
	proto_writer_reset(&c->w);
	proto_write_watch(&c->w, c->link.hb_ms);
	if (sreq_send(c, SREQ_WATCH) == NULL)
		c->next_watch_ms = util_now_ms() + TICK_MS;
}

static void
send_report(struct sconn *c)
{
	const struct report *r = &c->q[c->q_head];

	proto_writer_reset(&c->w);
	proto_write_report(&c->w, r->pid, r->worker, r->cause, r->reason,
	    r->tasks, r->n_tasks);
	sreq_send(c, SREQ_REPORT);
}

/* Forget what is in flight: its replies will never come (or are
 * ignored); the report in flight stays first in the queue. */
static void
conn_reset(struct sconn *c)
{
	c->registered = 0;
	req_abandon(&c->rs, NULL, NULL);
	c->next_hello_ms = c->next_watch_ms = 0;
}

/* Forget the request of kind in flight, if any. */
static void
forget(struct sconn *c, int kind)
{
	struct req *r = req_of_kind(&c->rs, kind);

	if (r != NULL)
		req_done(r);
}

void
sconn_report(struct sconn *c, struct report *r)
{
	if (c->q_len == REPORTS_MAX) {
		struct report *old = &c->q[c->q_head];
		/* the one in flight can go too: its answer is then ignored */
		forget(c, SREQ_REPORT);
		log_warn("report queue full (%d): dropping the report on pid "
		         "%" PRIu64 " (%s: %s)",
		    REPORTS_MAX, old->pid, old->cause, old->reason);
		report_pop(c);
		c->dropped++;
	}
	c->q[(c->q_head + c->q_len) % REPORTS_MAX] = *r;
	c->q_len++;
	memset(r, 0, sizeof(*r));
}

/* The answer to our hello. */
static void
hello_answer(struct sconn *c, int rv, const struct proto_msg *m)
{
	const char *why;

	if (req_link_answer(&c->link, rv, m) == REQ_WELCOMED) {
		c->registered = 1;
		c->refused    = 0;
		log_info("registered with %s as supervisor %" PRIu64 "%s",
		    c->o->connect, c->link.id,
		    c->q_len > 0 ? " (sending queued reports)" : "");
		return;
	}
	/* an older scheduler, or it has not yet noticed our previous
	 * connection drop: try again later */
	why = m->type == PROTO_ERROR ? m->msg : "unexpected answer";
	if (c->refused++ == 0)
		log_warn("the scheduler refused this supervisor: %s; trying "
		         "again every %d ms (timeouts, limits and restarts "
		         "work regardless)",
		    why, HELLO_RETRY_MS);
	else
		log_debug("hello refused again: %s", why);
	c->next_hello_ms = util_now_ms() + HELLO_RETRY_MS;
}

/* The answer to the watch. */
static void
watch_answer(struct sconn *c, const struct proto_msg *m)
{
	if (m->type == PROTO_ORDERS) {
		c->on_orders(c->arg, m);
		return;
	}
	if (m->type == PROTO_ERROR)
		log_warn("scheduler, on watch: %s", m->msg);
	c->next_watch_ms = util_now_ms() + c->link.hb_ms;
}

/* The answer to the report at the head of the queue. */
static void
report_answer(struct sconn *c, const struct proto_msg *m)
{
	if (m->type == PROTO_ERROR)
		log_warn("scheduler refused the report on pid %" PRIu64
		         ": %s; dropping it",
		    c->q[c->q_head].pid, m->msg);
	report_pop(c);
	if (m->type == PROTO_ORDERS)
		c->on_orders(c->arg, m);
}

/* Handle one reply from the scheduler. */
static void
conn_reply(struct sconn *c, nng_msg *msg)
{
	struct proto_msg m;
	struct req      *r;
	char             err[512];
	uint32_t         id;
	int              rv, kind;

	if (req_reply_id(msg, &id) != 0 ||
	    (r = req_find(&c->rs, id)) == NULL)
		return; /* from before a reconnection */
	rv = proto_decode(&c->dec, nng_msg_body(msg), nng_msg_len(msg), &m,
	    err, sizeof(err));
	if (rv != 0) {
		log_error("bad message from the scheduler: %s", err);
		m.type = PROTO_NONE;
	}
	kind = r->kind;
	if (kind == SREQ_HELLO) {
		req_done(r);
		hello_answer(c, rv, &m);
		return;
	}
	if (m.type == PROTO_ERROR && m.code == FERRY_ESTATE) {
		/* it does not know us (it restarted?): register again */
		log_warn("scheduler: %s: registering again", m.msg);
		conn_reset(c);
		return;
	}
	req_done(r);
	if (kind == SREQ_WATCH)
		watch_answer(c, &m);
	else
		report_answer(c, &m);
}

/* Registered: keep a watch in flight (asking again when one goes
 * unanswered much longer than its wait: an unknown peer is told so,
 * and registers again), and send the first queued report. */
static void
send_due(struct sconn *c, uint64_t now)
{
	struct sreq *watch = (struct sreq *)req_of_kind(&c->rs, SREQ_WATCH);

	if (watch != NULL &&
	    now - watch->sent_ms >
	        c->link.hb_ms + c->link.hb_timeout_ms + c->link.hb_ms) {
		log_warn("no answer from the scheduler for %" PRIu64
		         " ms: asking again",
		    now - watch->sent_ms);
		req_done(&watch->h);
		forget(c, SREQ_REPORT);
		watch = NULL;
	}
	if (watch == NULL && now >= c->next_watch_ms)
		send_watch(c);
	if (req_of_kind(&c->rs, SREQ_REPORT) == NULL && c->q_len > 0)
		send_report(c);
}

void
sconn_service(struct sconn *c)
{
	uint64_t     now = util_now_ms(), v;
	nng_msg     *msg;
	struct sreq *hello;

	if (!c->open)
		return;
	if (read(c->event_fd, &v, sizeof(v)) < 0) {
		/* nothing new */
	}
	hello = (struct sreq *)req_of_kind(&c->rs, SREQ_HELLO);
	if (atomic_exchange(&c->lost, 0)) {
		if (c->registered || hello != NULL)
			log_warn("lost the connection to the scheduler; "
			         "reconnecting (%zu report(s) queued)",
			    c->q_len);
		conn_reset(c);
	}
	while (nng_recvmsg(c->sock, &msg, NNG_FLAG_NONBLOCK) == 0) {
		conn_reply(c, msg);
		nng_msg_free(msg);
	}
	if (atomic_load(&c->pipes) <= 0) {
		/* nothing would reach it: wait for the connection, with a
		 * dialer that still tries (req_dial_watch) */
		char err[512];
		int  rv = req_dial_watch(c->sock, c->o->connect, &c->dialer,
		     err, sizeof(err));
		if (rv > 0)
			log_warn("the connection to %s was not being retried "
			         "any more: dialing again",
			    c->o->connect);
		else if (rv < 0)
			log_error("%s", err);
		return;
	}
	if (c->registered) {
		send_due(c, now);
		return;
	}
	hello = (struct sreq *)req_of_kind(&c->rs, SREQ_HELLO);
	if (hello != NULL && now - hello->sent_ms > HELLO_WAIT_MS) {
		req_done(&hello->h); /* lost on the way */
		hello = NULL;
	}
	if (hello == NULL && now >= c->next_hello_ms)
		send_hello(c);
}
