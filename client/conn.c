/*
 * conn.c - libferry's connection to the scheduler.
 *
 * A client is a raw REQ socket and one I/O thread.  User threads queue
 * submissions under the client's lock and send what is due themselves
 * (pump_locked); replies arrive in an NNG aio callback, which hands each
 * to the module whose request it answers and sends what is due next.
 * The I/O thread says hello again after a lost connection, retries after
 * back-pressure, and gives up when the reconnect window closes.  After a
 * lost connection every outstanding request is abandoned: the tasks of a
 * submit in flight go back to the front of the queue (the scheduler
 * ignores tags it has), the ids of a cancel are queued again, and the
 * fetch is sent again with the same acknowledgement.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "client_int.h"

#define CLOSE_WAIT_S 2
#define RECONNECT_MS 30000      /* default reconnect_ms */
#define MAX_UNSENT_PER_BATCH 16 /* default max_unsent = 16 x max_batch */

#define CL_HAS(o, field) OPT_HAS(o, struct ferry_client_opts, field)

/* ------------------------------------------------------- references */

static void
client_destroy(ferry_client *c)
{
	struct idmap_iter it = { 0, 0 };
	void             *o;

	if (c->leaked) {
		/* NNG may still call into it (see close_bounded) */
		pthread_mutex_unlock(&c->lock);
		return;
	}
	free(c->url);
	free(c->cancel_ids);
	free(c->status_bytes);
	idmap_fini(&c->pending);
	while (idmap_iter_next(&c->orphans, &it, NULL, &o))
		free(o);
	idmap_fini(&c->orphans);
	idmap_fini(&c->attached_done);
	idmap_fini(&c->refd);
	idmap_fini(&c->frozen);
	free(c->frz);
	proto_writer_fini(&c->w);
	proto_decoder_fini(&c->dec);
	if (c->event_fd >= 0)
		close(c->event_fd);
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cv);
	free(c);
}

int
client_release_locked(ferry_client *c)
{
	if (--c->refs > 0)
		return 0;
	client_destroy(c); /* unlocks and frees */
	return 1;
}

/* --------------------------------------------------------- requests */

static void
wake(ferry_client *c)
{
	uint64_t one = 1;
	if (write(c->event_fd, &one, sizeof(one)) < 0) {
		/* counter saturated: readable anyway */
	}
}

struct creq *
creq_new(ferry_client *c, int kind)
{
	struct creq *r = (struct creq *)req_new(&c->rs, kind);

	if (r == NULL)
		return NULL;
	r->futs    = NULL;
	r->n_futs  = 0;
	r->ids     = NULL;
	r->n_ids   = 0;
	r->backoff = 0;
	return r;
}

void
creq_clear(struct creq *r)
{
	free(r->futs);
	free(r->ids);
	memset(r, 0, sizeof(*r));
}

int
creq_send(ferry_client *c, struct creq *r)
{
	return req_send(c->sock, &r->h, &c->w, 0);
}

/* ------------------------------------------------------------ hello */

/* Say hello (lock held). */
static void
hello_send_locked(ferry_client *c)
{
	struct creq       *r = creq_new(c, CREQ_HELLO);
	struct proto_hello h = { 0 };
	char               host[128];

	if (r == NULL)
		return;
	if (gethostname(host, sizeof(host) - 1) != 0)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	h.token   = c->token;
	h.name    = "libferry " FERRY_VERSION_STRING;
	h.host    = host;
	h.pid     = (uint64_t)getpid();
	h.session = c->session;
	proto_writer_reset(&c->w);
	proto_write_hello_client(&c->w, &h);
	if (creq_send(c, r) != 0)
		creq_clear(r);
	else
		c->hello_inflight = 1;
}

/* Welcomed (lock held): a session resumed, or a new one. */
static void
welcomed_locked(ferry_client *c, const struct proto_msg *m)
{
	c->opts.max_message_size = c->link.max_msg;
	if (c->was_connected && !m->resumed)
		session_lost_locked(c);
	/* number new tasks above every id the session has used (an
	 * earlier process's, when resuming) */
	if (m->max_tag > c->next_tag)
		c->next_tag = m->max_tag;
	if (!c->was_connected)
		c->base_tag = c->next_tag;
	c->connected     = 1;
	c->was_connected = 1;
	c->down_ms       = 0;
	c->offline       = 0;
	full_reset_locked(c);
}

/* The answer to a hello (lock held). */
static void
hello_answer_locked(ferry_client *c, int rv, const struct proto_msg *m,
    const char *err)
{
	enum req_answer a = req_link_answer(&c->link, rv, m);

	c->hello_inflight = 0;
	if (c->was_connected && (a == REQ_BAD || a == REQ_REFUSED)) {
		/* re-registering after a dropped connection: the scheduler
		 * may not have seen the old one go yet */
		c->hello_retry_ms = util_now_ms() + 200;
	} else if (a == REQ_REFUSED && m->code == FERRY_ESTATE &&
	    c->opts.session != 0) {
		/* resuming a session the scheduler still sees attached to
		 * an earlier process's connection: ask again until it
		 * notices that one is gone (bounded by the connect timeout) */
		c->resume_retry   = 1;
		c->hello_retry_ms = util_now_ms() + 100;
	} else if (a == REQ_BAD) {
		c->conn_error = rv;
		snprintf(c->conn_msg, sizeof(c->conn_msg),
		    "bad answer to hello: %s", err);
	} else if (a == REQ_REFUSED) {
		c->conn_error = m->code;
		snprintf(c->conn_msg, sizeof(c->conn_msg),
		    "scheduler refused the connection: %s", m->msg);
	} else if (a == REQ_WELCOMED) {
		welcomed_locked(c, m);
	}
}

/* ------------------------------------------------------ replies in */

/* A reply (on the receive callback's thread): to the module whose
 * request it answers. */
static void
reply_in(ferry_client *c, nng_msg *msg)
{
	struct proto_msg m;
	struct creq     *r;
	char             err[512];
	uint32_t         id;
	int              rv;

	if (req_reply_id(msg, &id) != 0)
		return;
	rv = proto_decode(&c->dec, nng_msg_body(msg), nng_msg_len(msg), &m,
	    err, sizeof(err));
	pthread_mutex_lock(&c->lock);
	if ((r = (struct creq *)req_find(&c->rs, id)) == NULL) {
		/* from before a reconnection */
		pthread_mutex_unlock(&c->lock);
		return;
	}
	switch (r->h.kind) {
	case CREQ_HELLO:
		hello_answer_locked(c, rv, &m, err);
		break;
	case CREQ_SUBMIT:
		submit_answer_locked(c, r, rv, &m, err);
		break;
	case CREQ_FETCH:
		fetch_answer_locked(c, rv, &m);
		break;
	case CREQ_STATUS:
		status_answer_locked(c, rv, &m, msg);
		break;
	default: /* a cancel's answer: its results come by fetch */
		break;
	}
	creq_clear(r);
	/* send what is due (the next fetch, acknowledging these results)
	 * before waking anyone: a caller that closes the client as soon as
	 * its futures complete must not beat the acknowledgement */
	pump_locked(c);
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->lock);
}

/* Replies arrive here, on an NNG thread, one at a time. */
static void
rx_cb(void *arg)
{
	ferry_client *c  = arg;
	int           rv = nng_aio_result(c->rx);
	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
		return;
	if (rv == 0) {
		nng_msg *msg = nng_aio_get_msg(c->rx);
		reply_in(c, msg);
		nng_msg_free(msg);
		pthread_mutex_lock(&c->lock);
		pump_locked(c);
		pthread_mutex_unlock(&c->lock);
	}
	nng_recv_aio(c->sock, c->rx);
}

void
pump_locked(ferry_client *c)
{
	if (!c->connected || c->closing)
		return;
	submit_pump_locked(c);
	cancel_pump_locked(c);
	status_pump_locked(c);
	fetch_pump_locked(c);
}

/* -------------------------------------------------- connection lost */

static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	ferry_client *c = arg;
	(void)p;
	(void)ev;
	atomic_store(&c->pipe_lost, 1);
	wake(c);
}

/* An outstanding request when the connection dropped (lock held): what
 * it carried that must not be lost is queued again. */
static void
drop_req(struct req *h, void *arg)
{
	ferry_client *c = arg;
	struct creq  *r = (struct creq *)h;

	if (h->kind == CREQ_SUBMIT) {
		/* we do not know whether they arrived: send them again; the
		 * scheduler ignores tags it has */
		requeue_front_locked(c, r->futs, r->n_futs);
		r->n_futs = 0;
	} else if (h->kind == CREQ_CANCEL) {
		for (uint32_t j = 0; j < r->n_ids; j++)
			if (cancel_add_locked(c, r->ids[j]) != 0)
				break;
	}
	creq_clear(r);
}

static void
on_pipe_lost(ferry_client *c)
{
	struct dial_counts dc;
	int                got = dial_counts_get(c, &dc);

	pthread_mutex_lock(&c->lock);
	if (c->was_connected && c->down_ms == 0) {
		/* the reconnection window opens */
		c->down_ms = util_now_ms();
		if (got == 0)
			c->down_dial = dc;
	}
	req_abandon(&c->rs, drop_req, c);
	c->fetch_inflight   = 0;
	c->submits_inflight = 0;
	c->connected        = 0;
	c->hello_inflight   = 0;
	c->stats.reconnects++;
	hello_send_locked(c);
	pthread_mutex_unlock(&c->lock);
}

/* The I/O thread: reconnection, retries after back-pressure, and the
 * occasional fetch that could not be sent. */
static void *
io_main(void *arg)
{
	ferry_client *c = arg;

	pthread_mutex_lock(&c->lock);
	hello_send_locked(c);
	pthread_mutex_unlock(&c->lock);
	for (;;) {
		struct pollfd pfd;
		int           closing, tmo = 200, away;
		uint64_t      now;

		pthread_mutex_lock(&c->lock);
		closing = c->closing;
		now     = util_now_ms();
		if (!c->connected && (c->was_connected || c->resume_retry) &&
		    !c->hello_inflight && !closing &&
		    now >= c->hello_retry_ms)
			hello_send_locked(c);
		pump_locked(c);
		if (c->sq_head != NULL && c->retry_at_ms > now &&
		    c->retry_at_ms - now < (uint64_t)tmo)
			tmo = (int)(c->retry_at_ms - now); /* a retry is due */
		if (!c->connected && c->down_ms != 0 && !c->offline &&
		    !closing && c->opts.reconnect_ms >= 0) {
			/* reconnecting: give up when the window closes */
			uint64_t end = c->down_ms +
			    (uint64_t)c->opts.reconnect_ms;
			if (now >= end)
				give_up_locked(c);
			else if (end - now < (uint64_t)tmo)
				tmo = (int)(end - now);
		}
		away = !c->connected && c->was_connected;
		pthread_mutex_unlock(&c->lock);
		if (closing)
			break;
		if (away) {
			/* reconnecting: a dialer that stopped trying is
			 * replaced (req_dial_watch; outside the lock, as
			 * NNG's statistics are read; if that fails, it is
			 * tried again at a later turn) */
			char err[256];
			(void)req_dial_watch(c->sock, c->url, &c->dialer, err,
			    sizeof(err));
		}
		pfd.fd     = c->event_fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, tmo) < 0 && errno != EINTR)
			break;
		if (pfd.revents & POLLIN) {
			uint64_t v;
			if (read(c->event_fd, &v, sizeof(v)) < 0) {
				/* nothing */
			}
		}
		if (atomic_exchange(&c->pipe_lost, 0))
			on_pipe_lost(c);
	}
	return NULL;
}

static void client_shutdown(ferry_client *c);

/* ---------------------------------------------------------- connect */

FERRY_API int
ferry_client_connect(ferry_client **out, const char *url, int timeout_ms)
{
	struct ferry_client_opts o;
	memset(&o, 0, sizeof(o));
	o.size               = sizeof(o);
	o.connect_timeout_ms = timeout_ms;
	return ferry_client_connect_opts(out, url, &o);
}

/* Take the caller's options into c->opts (defaults for what is unset)
 * and the TLS and token files into sd.  Returns 0 or FERRY_EINVAL. */
static int
opts_take(ferry_client *c, const struct ferry_client_opts *opts,
    struct sec_dial *sd)
{
	c->opts.size               = sizeof(c->opts);
	c->opts.connect_timeout_ms = 10000;
	c->opts.max_message_size   = 64u << 20;
	c->opts.max_batch          = 4096;
	c->opts.submit_timeout_ms  = -1;
	c->opts.reconnect_ms       = RECONNECT_MS;
	if (opts == NULL || opts->size < sizeof(size_t))
		return 0;
	if (opts->connect_timeout_ms != 0)
		c->opts.connect_timeout_ms = opts->connect_timeout_ms;
	if (opts->max_message_size >= 65536)
		c->opts.max_message_size = opts->max_message_size;
	if (opts->max_batch > 0)
		c->opts.max_batch = opts->max_batch;
	if (CL_HAS(opts, on_full)) {
		if (opts->on_full != FERRY_FULL_BLOCK &&
		    opts->on_full != FERRY_FULL_FAIL)
			return FERRY_EINVAL;
		c->opts.on_full = opts->on_full;
	}
	if (CL_HAS(opts, max_unsent) && opts->max_unsent > 0)
		c->opts.max_unsent = opts->max_unsent;
	if (CL_HAS(opts, submit_timeout_ms) && opts->submit_timeout_ms > 0)
		c->opts.submit_timeout_ms = opts->submit_timeout_ms;
	if (CL_HAS(opts, session))
		c->opts.session = opts->session;
	if (CL_HAS(opts, token_file)) {
		sd->tls_ca_file       = opts->tls_ca_file;
		sd->tls_cert_key_file = opts->tls_cert_key_file;
		sd->tls_server_name   = opts->tls_server_name;
		sd->token_file        = opts->token_file;
	}
	if (CL_HAS(opts, reconnect_ms) && opts->reconnect_ms != 0)
		c->opts.reconnect_ms = opts->reconnect_ms < 0
		    ? -1
		    : opts->reconnect_ms;
	if (CL_HAS(opts, no_scheduler_ms) && opts->no_scheduler_ms > 0)
		c->opts.no_scheduler_ms = opts->no_scheduler_ms;
	return 0;
}

/* Everything of a new client but its socket and thread. */
static void
client_init(ferry_client *c)
{
	if (c->opts.max_unsent == 0)
		c->opts.max_unsent = c->opts.max_batch * MAX_UNSENT_PER_BATCH;
	c->refs     = 1;
	c->event_fd = -1;
	c->session  = c->opts.session != 0 ? c->opts.session
	                                   : util_random64();
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cv, NULL);
	idmap_init(&c->pending);
	idmap_init(&c->orphans);
	idmap_init(&c->attached_done);
	idmap_init(&c->refd);
	idmap_init(&c->frozen);
	proto_writer_init(&c->w);
	proto_decoder_init(&c->dec);
	req_set_init(&c->rs, c->reqs, sizeof(c->reqs[0]), MAX_REQS, NULL);
	req_link_init(&c->link, c->opts.max_message_size);
}

/* Open c's socket, load the token and dial url, and start the I/O
 * thread (its first act is a hello).  Returns 0 or an error, with a
 * message in errbuf. */
static int
client_open(ferry_client *c, const char *url, const struct sec_dial *sd,
    char *errbuf, size_t errbuf_len)
{
	sigset_t all, old;
	int      rv;

	if ((c->url = strdup(url)) == NULL)
		return FERRY_ENOMEM;
	if ((c->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return FERRY_ESYSTEM;
	if ((rv = nng_req0_open_raw(&c->sock)) != 0 ||
	    (rv = util_sock_setup(c->sock, c->opts.max_message_size)) != 0 ||
	    (rv = nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, pipe_cb,
	         c)) != 0 ||
	    (rv = nng_aio_alloc(&c->rx, rx_cb, c)) != 0)
		return util_nng_err(rv);
	if (req_dial(c->sock, url, sd, c->token, &c->dialer, errbuf,
	        errbuf_len) != 0)
		return FERRY_EINVAL;
	/* NNG's and our I/O threads must not take the caller's signals */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rv = pthread_create(&c->thread, NULL, io_main, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rv != 0)
		return FERRY_ESYSTEM;
	c->thread_started = 1;
	nng_recv_aio(c->sock, c->rx);
	return 0;
}

FERRY_API int
ferry_client_connect_opts(ferry_client **out, const char *url,
    const struct ferry_client_opts *opts)
{
	ferry_client   *c;
	struct sec_dial sd         = { 0 };
	char           *errbuf     = NULL;
	size_t          errbuf_len = 0;
	int             rv;
	char            err[256];

	if (out == NULL || url == NULL)
		return FERRY_EINVAL;
	*out = NULL;
	if (opts != NULL && CL_HAS(opts, errbuf_len)) {
		errbuf     = opts->errbuf;
		errbuf_len = opts->errbuf_len;
	}
	if (util_url_check(url, err, sizeof(err)) != 0) {
		util_errf(errbuf, errbuf_len, "%s", err);
		return FERRY_EINVAL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return FERRY_ENOMEM;
	if (opts_take(c, opts, &sd) != 0) {
		free(c);
		return FERRY_EINVAL;
	}
	client_init(c);
	if ((rv = client_open(c, url, &sd, errbuf, errbuf_len)) == 0 &&
	    (rv = connect_wait(c, c->opts.connect_timeout_ms, errbuf,
	         errbuf_len)) == 0) {
		*out = c;
		return 0;
	}
	client_shutdown(c);
	pthread_mutex_lock(&c->lock);
	if (!client_release_locked(c))
		pthread_mutex_unlock(&c->lock);
	return rv;
}

/* ------------------------------------------------------------ close */

static pthread_mutex_t leaked_lock = PTHREAD_MUTEX_INITIALIZER;
static ferry_client   *leaked[256];
static int             n_leaked;

static void
close_call(void *arg)
{
	nng_close(((ferry_client *)arg)->sock);
}

/*
 * Close the socket, waiting at most CLOSE_WAIT_S.  NNG 1.5's nng_close
 * has been seen to wait forever when replies kept arriving while the
 * socket closed; a program must not hang in ferry_client_close for that.
 * If it happens, the socket and this client's memory (which NNG's
 * callbacks may still touch) are left behind, and the close goes on in
 * the background.
 */
static void
close_bounded(ferry_client *c)
{
	if (util_call_bounded(close_call, c, CLOSE_WAIT_S) == 0)
		return;
	c->leaked = 1;
	/* keep it reachable: it is kept on purpose */
	pthread_mutex_lock(&leaked_lock);
	if (n_leaked < (int)(sizeof(leaked) / sizeof(leaked[0])))
		leaked[n_leaked++] = c;
	pthread_mutex_unlock(&leaked_lock);
	fprintf(stderr,
	    "libferry: closing the connection to %s did not finish within "
	    "%d s; leaving it to finish in the background\n",
	    c->url, CLOSE_WAIT_S);
}

static void
client_shutdown(ferry_client *c)
{
	pthread_mutex_lock(&c->lock);
	c->closing = 1;
	pthread_cond_broadcast(&c->cv); /* callers waiting for room */
	pthread_mutex_unlock(&c->lock);
	if (c->rx != NULL)
		nng_aio_stop(c->rx);
	if (c->thread_started) {
		wake(c);
		pthread_join(c->thread, NULL);
		c->thread_started = 0;
	}
	if (c->sock.id != 0) {
		close_bounded(c);
		if (!c->leaked)
			c->sock.id = 0;
	}
	if (!c->leaked) {
		nng_aio_free(c->rx);
		c->rx = NULL;
	}
}

FERRY_API void
ferry_client_close(ferry_client *c)
{
	if (c == NULL)
		return;
	client_shutdown(c);
	pthread_mutex_lock(&c->lock);
	/* fail what never finished */
	futures_fail_locked(c, FERRY_ECLOSED, "client closed", 13, 0);
	/* requests and the queue hold references too */
	for (uint32_t i = 0; i < MAX_REQS; i++) {
		for (uint32_t j = 0; j < c->reqs[i].n_futs; j++)
			future_release_locked(c->reqs[i].futs[j]);
		creq_clear(&c->reqs[i]);
	}
	while (c->sq_head != NULL) {
		struct ferry_future *f = c->sq_head;
		c->sq_head             = f->next;
		f->queued              = 0;
		future_release_locked(f);
	}
	c->sq_tail = NULL;
	pthread_cond_broadcast(&c->cv);
	if (!client_release_locked(c))
		pthread_mutex_unlock(&c->lock);
}

FERRY_API uint64_t
ferry_client_session(const ferry_client *c)
{
	return c != NULL ? c->session : 0;
}
