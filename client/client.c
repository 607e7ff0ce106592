/*
 * client.c - libferry: the C client API (include/ferry/ferry.h).
 *
 * A client is a raw REQ socket and one I/O thread.  User threads queue
 * submissions under the client's lock and wake the I/O thread, which sends
 * everything queued in as few "submit" messages as the limits allow, keeps
 * one "fetch" long poll outstanding for results, and completes futures.
 * Results are acknowledged by sequence number in the next fetch, so a
 * reply lost with a dropped connection is sent again, and a reconnecting
 * client (same session) gets every result exactly once.
 *
 * Tags (client task ids) at or below base_tag belong to an earlier process
 * whose session this one resumed; their results, when no future waits for
 * them, are kept as orphans until ferry_attach() takes them.  Every tag
 * above base_tag was made here, so a result for one of those that has no
 * future is a duplicate.
 *
 * unsent counts tasks not yet accepted by the scheduler (queued here, in
 * a submit in flight, or rejected as full); ferry_submit/ferry_map wait
 * for it to fall below max_unsent, or refuse (FERRY_FULL_FAIL).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "ferry/ferry.h"
#include "json.h"
#include "objref.h"
#include "proto.h"
#include "status_fields.h"
#include "security.h"
#include "util.h"

#define MAX_REQS 16
#define MAX_SUBMITS_INFLIGHT 4
#define FETCH_WAIT_MS 5000
#define RETRY_FULL_MS 20       /* first back-off after a full queue */
#define RETRY_FULL_MAX_MS 1000 /* its cap (it doubles) */
#define ROOM_GAP_MS 5          /* least time between sends for room */
#define CLOSE_WAIT_S 2
#define RECONNECT_MS 30000 /* default reconnect_ms */
#define DIAL_CHECK_MS 50   /* no_scheduler_ms: how often to look */
#define MAX_UNSENT_PER_BATCH 16 /* default max_unsent = 16 x max_batch */

/* Whether a caller's options struct (of o->size bytes) has field. */
#define OPT_HAS(o, type, field)                                            \
	((o)->size >= offsetof(type, field) + sizeof((o)->field))
#define CL_HAS(o, field) OPT_HAS(o, struct ferry_client_opts, field)

enum req_kind { REQ_HELLO = 1, REQ_SUBMIT, REQ_FETCH, REQ_CANCEL, REQ_STATUS };

struct ferry_future {
	ferry_client        *c;
	uint64_t             tag;
	int                  state;
	int                  errcode;
	uint8_t             *data; /* result bytes, or NUL-ended message */
	size_t               len;
	char                *fn;   /* until submitted */
	uint8_t             *args;
	size_t               fn_len, args_len;
	char                *keys; /* locality keys, NUL-separated */
	uint32_t             n_keys;
	struct proto_task_opts opts; /* failure options sent with it */
	uint32_t             attempts; /* runs started, from the result */
	int                  refs;
	int                  queued; /* in the submit queue */
	int                  unsent; /* counted in the client's unsent */
	int                  cancel_requested; /* a cancel was sent */
	int                  attached; /* made by ferry_attach */
	struct ferry_future *next;   /* submit queue / request list */
	struct ferry_iter   *iter;
	struct ferry_future *iter_next;
};

/* A result that arrived for a tag without a future. */
struct orphan {
	int32_t  code;
	uint32_t attempts;
	size_t   len;
	uint8_t  data[];
};

struct ferry_iter {
	ferry_client         *c;
	size_t                total, yielded;
	struct ferry_future  *ready_head, *ready_tail;
};

struct req {
	uint32_t              id;
	int                   kind;
	struct ferry_future **futs; /* submit: the futures it carried */
	uint32_t              n_futs;
	uint64_t             *ids;  /* cancel: the ids it carried */
	uint32_t              n_ids;
	/* submit: sent while backing off, as a probe (1) or for the room
	 * results showed (2) */
	int                   backoff;
};

/* What the dialer of a client's socket went through (NNG's statistics):
 * connections made, and attempts that failed, by kind. */
struct dial_counts {
	uint64_t connect;
	uint64_t refused, timeout, other, auth, proto, reject;
};

struct ferry_client {
	char                *url;
	struct ferry_client_opts opts;
	nng_socket           sock;
	int                  event_fd;
	nng_aio             *rx;
	pthread_t            thread;
	int                  thread_started;
	pthread_mutex_t      lock;
	pthread_cond_t       cv;
	int                  refs;       /* user + live futures */
	int                  closing;
	int                  leaked; /* the socket could not be closed */
	int                  connected;  /* welcome received */
	int                  was_connected;
	int                  hello_inflight;
	int                  resume_retry; /* first hello refused: resend */
	uint64_t             hello_retry_ms;
	int                  conn_error; /* fatal error from hello */
	char                 conn_msg[1024];
	/* the connection dropped at down_ms (0: up, or never was); after
	 * reconnect_ms the client gave up: offline until welcomed again,
	 * every pending future failed with down_msg, and so does every
	 * new task; results for tags up to gave_up_tag were given up on */
	uint64_t             down_ms;
	struct dial_counts   down_dial; /* the dialer's counts at down_ms */
	int                  offline;
	uint64_t             gave_up_tag;
	char                 down_msg[1200];
	char                 token[SEC_TOKEN_MAX + 1]; /* "": none */
	uint64_t             session;
	uint64_t             next_tag;
	uint64_t             base_tag; /* tags <= this: earlier process's */
	struct ferry_client_stats stats;

	/* results kept for tags without a future (tag -> struct orphan),
	 * and tags of attached futures that completed (tag -> non-NULL) */
	struct idmap         orphans;
	struct idmap         attached_done;
	size_t               unsent; /* tasks the scheduler has not accepted */

	/* submit queue */
	struct ferry_future *sq_head, *sq_tail;
	uint64_t             retry_at_ms;
	/* back-pressure (FERRY_FULL_BLOCK): after the scheduler rejected
	 * tasks as full, one submit at a time goes out, when results came
	 * back (room freed: as many tasks as results), when the last one
	 * was taken whole (probe tasks, doubling), or when the back-off
	 * (RETRY_FULL_MS doubling to RETRY_FULL_MAX_MS) runs out */
	int                  full;
	int                  full_go;      /* last probe taken whole */
	uint32_t             full_backoff_ms;
	uint32_t             full_probe;
	uint64_t             full_room;    /* results since the last send */
	uint64_t             full_sent_ms; /* when the last one went */
	struct idmap         pending; /* tag -> future awaiting a result */

	/* cancel requests */
	uint64_t            *cancel_ids;
	size_t               n_cancel, cap_cancel;

	/* status */
	int                  status_want;
	uint64_t             status_gen;
	uint8_t             *status_bytes;
	size_t               status_len;

	/* I/O thread only */
	atomic_int           pipe_lost;
	struct req           reqs[MAX_REQS];
	uint32_t             next_req;
	int                  fetch_inflight, submits_inflight;
	uint64_t             ack;
	struct proto_writer  w;
	struct proto_decoder dec;
};

/* ----------------------------------------------------- refcounting */

static int client_release_locked(ferry_client *c);

/* Drop one reference to f (lock held).  Returns 1 if that freed the
 * client too (its lock is then gone and was released). */
static int
future_release_locked(struct ferry_future *f)
{
	ferry_client *c = f->c;
	if (--f->refs > 0)
		return 0;
	free(f->data);
	free(f->fn);
	free(f->args);
	free(f->keys);
	free(f);
	return client_release_locked(c);
}

static void
client_destroy(ferry_client *c)
{
	if (c->leaked) {
		/* NNG may still call into it (see close_bounded) */
		pthread_mutex_unlock(&c->lock);
		return;
	}
	free(c->url);
	free(c->cancel_ids);
	free(c->status_bytes);
	idmap_fini(&c->pending);
	for (size_t i = 0; i < c->orphans.cap; i++)
		if (c->orphans.slots[i].key != 0)
			free(c->orphans.slots[i].val);
	idmap_fini(&c->orphans);
	idmap_fini(&c->attached_done);
	proto_writer_fini(&c->w);
	proto_decoder_fini(&c->dec);
	if (c->event_fd >= 0)
		close(c->event_fd);
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cv);
	free(c);
}

/* Drop one reference (lock held).  Returns 1 if it destroyed the client,
 * lock included; 0 if the lock is still held. */
static int
client_release_locked(ferry_client *c)
{
	if (--c->refs > 0)
		return 0;
	client_destroy(c); /* unlocks and frees */
	return 1;
}

/* Complete a future (lock held): it leaves the pending map. */
static void
future_complete_locked(ferry_client *c, struct ferry_future *f, int state,
    int code, const void *data, size_t len)
{
	if (f->state != FERRY_PENDING)
		return;
	if (f->unsent) {
		f->unsent = 0;
		c->unsent--;
	}
	if (f->attached) /* remember it: a repeat is a duplicate */
		(void)idmap_put(&c->attached_done, f->tag, f);
	f->state   = state;
	f->errcode = code;
	f->data    = malloc(len + 1);
	if (f->data != NULL) {
		if (len > 0)
			memcpy(f->data, data, len);
		f->data[len] = '\0';
		f->len       = len;
	} else {
		f->errcode = FERRY_ENOMEM;
		f->state   = FERRY_FAILED;
	}
	free(f->fn);
	free(f->args);
	f->fn   = NULL;
	f->args = NULL;
	if (f->iter != NULL) {
		struct ferry_iter *it = f->iter;
		f->iter_next          = NULL;
		if (it->ready_tail != NULL)
			it->ready_tail->iter_next = f;
		else
			it->ready_head = f;
		it->ready_tail = f;
	}
	idmap_del(&c->pending, f->tag);
	c->stats.completed++;
	future_release_locked(f); /* the client's reference */
}

/* ----------------------------------------------------- reachability */

static uint64_t
stat_of(nng_stat *st, const char *name)
{
	nng_stat *x = nng_stat_find(st, name);
	return x != NULL ? nng_stat_value(x) : 0;
}

/* Sum the counts of the dialers of c's socket into dc (call without the
 * client's lock: NNG's locks are taken).  Returns 0, or -1 when NNG
 * keeps no statistics. */
static int
dial_counts_get(ferry_client *c, struct dial_counts *dc)
{
	nng_stat *all, *x;
	uint64_t  id = (uint64_t)nng_socket_id(c->sock);
	int       found = 0;

	memset(dc, 0, sizeof(*dc));
	if (nng_stats_get(&all) != 0)
		return -1;
	for (x = nng_stat_child(all); x != NULL; x = nng_stat_next(x)) {
		const char *name = nng_stat_name(x);
		nng_stat   *sock = nng_stat_find(x, "socket");
		if (name == NULL || strcmp(name, "dialer") != 0 ||
		    sock == NULL || nng_stat_value(sock) != id)
			continue;
		found = 1;
		dc->connect += stat_of(x, "connect");
		dc->refused += stat_of(x, "refused");
		dc->timeout += stat_of(x, "timeout");
		dc->other += stat_of(x, "other");
		dc->auth += stat_of(x, "auth");
		dc->proto += stat_of(x, "proto");
		dc->reject += stat_of(x, "reject");
	}
	nng_stats_free(all);
	return found ? 0 : -1;
}

static const struct dial_counts zero;

/* Why no connection came between counts a and b: the kind of failed
 * attempt seen most, or NULL if none failed.  *nobody: whether that kind
 * means nothing listens there (refused, timed out, unreachable), rather
 * than a peer that failed the handshake.  Over TLS a handshake the peer
 * refused counts as "other", as an unreachable address does: neither is
 * known to be nobody. */
static const char *
dial_cause(const struct dial_counts *a, const struct dial_counts *b,
    const char *url, int *nobody)
{
	static const struct {
		size_t      off;
		int         nobody;
		const char *why;
	} kinds[] = {
		{ offsetof(struct dial_counts, refused), 1,
		    "connection refused" },
		{ offsetof(struct dial_counts, timeout), 1,
		    "connection timed out" },
		{ offsetof(struct dial_counts, other), 1,
		    "cannot connect (unreachable address or unknown host)" },
		{ offsetof(struct dial_counts, auth), 0,
		    "TLS handshake or peer authentication failed" },
		{ offsetof(struct dial_counts, proto), 0,
		    "the peer is not a Ferry scheduler (wrong protocol)" },
		{ offsetof(struct dial_counts, reject), 0,
		    "connection rejected" },
	};
	const char *why  = NULL;
	uint64_t    most = 0;
	*nobody          = 0;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		uint64_t d = *(const uint64_t *)((const char *)b + kinds[i].off) -
		    *(const uint64_t *)((const char *)a + kinds[i].off);
		if (d > most) {
			most    = d;
			why     = kinds[i].why;
			*nobody = kinds[i].nobody;
			if (kinds[i].off == offsetof(struct dial_counts, other) &&
			    util_url_is_tls(url)) {
				why = "the connection failed (TLS handshake, "
				      "or an unreachable address)";
				*nobody = 0;
			}
		}
	}
	return why;
}

/* "30 s", "1.5 s", "200 ms". */
static void
duration_str(char *buf, size_t len, uint64_t ms)
{
	if (ms < 1000)
		snprintf(buf, len, "%" PRIu64 " ms", ms);
	else if (ms % 1000 == 0)
		snprintf(buf, len, "%" PRIu64 " s", ms / 1000);
	else
		snprintf(buf, len, "%.1f s", (double)ms / 1000.0);
}

/* The scheduler stayed out of reach for reconnect_ms (lock held): fail
 * every pending future with why it could not be reached, and go offline
 * (new tasks fail the same way) until a scheduler welcomes us again. */
static void
give_up_locked(ferry_client *c)
{
	struct dial_counts   dc;
	struct ferry_future **fs;
	const char          *why = NULL;
	char                 took[32];
	size_t               n = 0;
	int                  got, nobody = 0;

	pthread_mutex_unlock(&c->lock);
	got = dial_counts_get(c, &dc);
	pthread_mutex_lock(&c->lock);
	if (c->connected || c->offline || c->closing)
		return; /* it came back, or it is over, meanwhile */
	if (got == 0)
		why = dial_cause(&c->down_dial, &dc, c->url, &nobody);
	duration_str(took, sizeof(took), (uint64_t)c->opts.reconnect_ms);
	if (why != NULL)
		snprintf(c->down_msg, sizeof(c->down_msg),
		    "%s at %s: %s; gave up after %s",
		    nobody ? "no scheduler" : "cannot reach the scheduler",
		    c->url, why, took);
	else if (got == 0 && dc.connect > c->down_dial.connect)
		snprintf(c->down_msg, sizeof(c->down_msg),
		    "no answer from the scheduler at %s (connected, but it "
		    "did not take this client back); gave up after %s",
		    c->url, took);
	else
		snprintf(c->down_msg, sizeof(c->down_msg),
		    "no scheduler at %s: cannot connect%s; gave up after %s",
		    c->url, sec_connect_hint(c->url), took);
	c->offline     = 1;
	c->gave_up_tag = c->next_tag;
	fs = calloc(c->pending.count + 1, sizeof(*fs));
	for (size_t i = 0; fs != NULL && i < c->pending.cap; i++)
		if (c->pending.slots[i].key != 0)
			fs[n++] = c->pending.slots[i].val;
	for (size_t i = 0; i < n; i++) {
		fs[i]->refs++; /* completing drops the client's reference */
		future_complete_locked(c, fs[i], FERRY_FAILED, FERRY_ECLOSED,
		    c->down_msg, strlen(c->down_msg));
	}
	for (size_t i = 0; i < n; i++)
		future_release_locked(fs[i]); /* the caller's reference keeps
		                               * the client */
	free(fs);
	pthread_cond_broadcast(&c->cv);
}

/* ----------------------------------------------------- I/O thread */

static void
wake(ferry_client *c)
{
	uint64_t one = 1;
	if (write(c->event_fd, &one, sizeof(one)) < 0) {
		/* counter saturated: readable anyway */
	}
}

static struct req *
req_new(ferry_client *c, int kind)
{
	for (int i = 0; i < MAX_REQS; i++) {
		if (c->reqs[i].id == 0) {
			if (++c->next_req >= 0x7fffffff)
				c->next_req = 1;
			c->reqs[i].id     = c->next_req;
			c->reqs[i].kind   = kind;
			c->reqs[i].futs   = NULL;
			c->reqs[i].n_futs = 0;
			c->reqs[i].ids    = NULL;
			c->reqs[i].n_ids  = 0;
			c->reqs[i].backoff = 0;
			return &c->reqs[i];
		}
	}
	return NULL;
}

static void
req_clear(struct req *r)
{
	free(r->futs);
	free(r->ids);
	memset(r, 0, sizeof(*r));
}

static int
send_req(ferry_client *c, struct req *r)
{
	nng_msg *msg;
	int      rv;
	if ((rv = nng_msg_alloc(&msg, 0)) != 0)
		return rv;
	if ((rv = util_request_id(msg, r->id)) != 0 ||
	    (rv = nng_msg_append(msg, c->w.buf.data, c->w.buf.size)) != 0 ||
	    (rv = nng_sendmsg(c->sock, msg, 0)) != 0) {
		nng_msg_free(msg);
		return rv;
	}
	return 0;
}

static void
send_hello(ferry_client *c)
{
	struct req        *r = req_new(c, REQ_HELLO);
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
	if (send_req(c, r) != 0)
		req_clear(r);
	else
		c->hello_inflight = 1;
}

/* Build and send one submit message of at most cap tasks from the queue
 * (lock held); backoff as in struct req. */
static void
send_submit_locked(ferry_client *c, uint32_t cap, int backoff)
{
	struct req          *r;
	struct ferry_future *f;
	size_t               budget = c->opts.max_message_size / 2;
	uint32_t             n = 0;

	if ((r = req_new(c, REQ_SUBMIT)) == NULL)
		return;
	if ((r->futs = malloc(sizeof(*r->futs) * cap)) == NULL) {
		req_clear(r);
		return;
	}
	proto_writer_reset(&c->w);
	proto_write_submit_begin(&c->w);
	while ((f = c->sq_head) != NULL && n < cap) {
		if (n > 0 &&
		    c->w.buf.size + f->args_len + f->fn_len + 128 > budget)
			break;
		c->sq_head = f->next;
		if (c->sq_head == NULL)
			c->sq_tail = NULL;
		f->next   = NULL;
		f->queued = 0;
		if (f->state != FERRY_PENDING) {
			/* cancelled before it was sent: drop the queue's
			 * reference */
			future_release_locked(f);
			continue;
		}
		{
			const char *keys[PROTO_MAX_TASK_OBJS];
			size_t      lens[PROTO_MAX_TASK_OBJS];
			const char *k = f->keys;
			for (uint32_t i = 0; i < f->n_keys; i++) {
				keys[i] = k;
				lens[i] = strlen(k);
				k += lens[i] + 1;
			}
			proto_write_submit_entry(&c->w, f->tag, f->fn, f->fn_len,
			    f->args, f->args_len, keys, lens, f->n_keys,
			    &f->opts);
		}
		r->futs[n++] = f; /* the queue's reference moves here */
	}
	r->n_futs  = n;
	r->backoff = backoff;
	proto_write_submit_end(&c->w);
	if (n == 0) {
		req_clear(r);
		return;
	}
	if (send_req(c, r) != 0) {
		/* put them back in front, in order */
		for (uint32_t i = n; i-- > 0;) {
			f         = r->futs[i];
			f->next   = c->sq_head;
			f->queued = 1;
			c->sq_head = f;
			if (c->sq_tail == NULL)
				c->sq_tail = f;
		}
		req_clear(r);
		c->retry_at_ms = util_now_ms() + RETRY_FULL_MS;
		return;
	}
	c->submits_inflight++;
}

/* Put futures back at the front of the submit queue, moving the caller's
 * reference on each to the queue (or dropping it if it is done). */
static void
requeue_front_locked(ferry_client *c, struct ferry_future **fs, uint32_t n)
{
	for (uint32_t i = n; i-- > 0;) {
		struct ferry_future *f = fs[i];
		if (f->state == FERRY_PENDING && !f->queued) {
			c->stats.resent++;
			f->next    = c->sq_head;
			f->queued  = 1;
			c->sq_head = f;
			if (c->sq_tail == NULL)
				c->sq_tail = f;
		} else {
			future_release_locked(f);
		}
	}
}

/* Mark f accepted by the scheduler (or finally refused): it no longer
 * counts against max_unsent. */
static void
unsent_done_locked(ferry_client *c, struct ferry_future *f)
{
	if (f->unsent) {
		f->unsent = 0;
		c->unsent--;
	}
}

/* The scheduler rejected tasks of a submit as full, and took accepted
 * (lock held): back off.  The next submit goes when results show room,
 * or after the back-off, which doubles while rejections go on. */
static void
full_rejected_locked(ferry_client *c, const struct req *r, uint32_t accepted)
{
	if (!c->full || !r->backoff || c->full_backoff_ms == 0)
		c->full_backoff_ms = RETRY_FULL_MS; /* the first rejection */
	else if ((c->full_backoff_ms *= 2) > RETRY_FULL_MAX_MS)
		c->full_backoff_ms = RETRY_FULL_MAX_MS;
	c->full        = 1;
	c->full_go     = 0;
	c->full_room   = 0;
	c->full_probe  = accepted > 0 ? accepted : 1;
	c->retry_at_ms = util_now_ms() + c->full_backoff_ms;
}

/* A probe sent while backing off was taken whole (lock held): there may
 * be more room, so send a probe twice as big at once; back to normal
 * once a whole max_batch fits. */
static void
full_accepted_locked(ferry_client *c)
{
	c->full_backoff_ms = RETRY_FULL_MS;
	c->full_go         = 1;
	if (c->full_probe < c->opts.max_batch / 2)
		c->full_probe *= 2;
	else
		c->full_probe = (uint32_t)c->opts.max_batch;
	if (c->full_probe >= c->opts.max_batch) {
		c->full        = 0;
		c->retry_at_ms = 0;
	}
}

/* Leave back-off (lock held): a new connection, maybe a new scheduler. */
static void
full_reset_locked(ferry_client *c)
{
	c->full            = 0;
	c->full_go         = 0;
	c->full_room       = 0;
	c->full_backoff_ms = 0;
	c->retry_at_ms     = 0;
}

static void
handle_submitted_locked(ferry_client *c, struct req *r,
    const struct proto_msg *m)
{
	struct ferry_future **full  = NULL;
	uint32_t              nfull = 0;

	for (uint32_t i = 0; i < m->n_results; i++) {
		const struct proto_result *res = &m->results[i];
		struct ferry_future       *f   = idmap_get(&c->pending, res->id);
		if (f == NULL)
			continue;
		if (res->code == FERRY_EFULL &&
		    c->opts.on_full == FERRY_FULL_BLOCK) {
			/* back-pressure: send it again shortly, unless it
			 * was cancelled meanwhile (the scheduler never had
			 * it, so it is cancelled here) */
			if (f->cancel_requested) {
				future_complete_locked(c, f, FERRY_CANCELLED,
				    FERRY_ECANCELED, "cancelled", 9);
				continue;
			}
			if (full == NULL)
				full = calloc(m->n_results, sizeof(*full));
			if (full != NULL) {
				f->refs++;
				full[nfull++] = f;
				continue;
			}
		}
		future_complete_locked(c, f, FERRY_FAILED, res->code, res->data,
		    res->len);
	}
	if (nfull > 0) {
		/* those rejected as full keep their arguments and go back
		 * to the front of the queue, sent again as room appears */
		full_rejected_locked(c, r, r->n_futs - nfull);
		requeue_front_locked(c, full, nfull);
	} else if (c->full && r->backoff == 1) {
		/* a probe taken whole: maybe there is more room (for room
		 * the results showed, no more is known) */
		full_accepted_locked(c);
	}
	free(full);
	/* the accepted ones no longer need their arguments */
	for (uint32_t i = 0; i < r->n_futs; i++) {
		struct ferry_future *f = r->futs[i];
		if (f->state == FERRY_PENDING && !f->queued) {
			free(f->args);
			f->args     = NULL;
			f->args_len = 0;
			unsent_done_locked(c, f);
		}
	}
}

/* Whether a result for tag, which has no future, is a repeat of one
 * delivered here already. */
static int
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

static void
handle_results_locked(ferry_client *c, const struct proto_msg *m)
{
	/* entries carry consecutive seqs ending at m->seq */
	uint64_t first = m->seq + 1 - m->n_results;

	for (uint32_t i = 0; i < m->n_results; i++) {
		const struct proto_result *res = &m->results[i];
		struct ferry_future       *f   = idmap_get(&c->pending, res->id);
		if (f == NULL) {
			if (res->id == 0 || tag_completed_locked(c, res->id)) {
				/* never deliver twice, but count it: a
				 * duplicate means a bug somewhere (a result
				 * whose future failed when the client gave
				 * up on the scheduler is not one) */
				if (res->id > c->gave_up_tag)
					c->stats.duplicates++;
				continue;
			}
			if (orphan_keep_locked(c, res) != 0) {
				/* no memory: acknowledge only what came
				 * before; the rest is delivered again */
				uint64_t last = first + i - 1;
				if (m->seq >= m->n_results && last > c->ack)
					c->ack = last;
				return;
			}
			continue;
		}
		f->attempts = res->attempts;
		future_complete_locked(c, f, state_of_code(res->code),
		    res->code, res->data, res->len);
	}
	if (c->full) /* those tasks left the scheduler: room for as many */
		c->full_room += m->n_results;
	if (m->seq > c->ack)
		c->ack = m->seq;
}

static void pump_locked(ferry_client *c);
static void deadline_of(int timeout_ms, struct timespec *ts);
static int  wait_locked(ferry_client *c, int timeout_ms,
     const struct timespec *ts);

/* The scheduler no longer knows our session (it expired, or the scheduler
 * restarted): tasks it had accepted are gone; fail their futures.  Tasks
 * not yet accepted are sent again. */
static void
session_lost_locked(ferry_client *c)
{
	struct ferry_future **fs;
	size_t                n = 0;

	fs = calloc(c->pending.count + 1, sizeof(*fs));
	for (size_t i = 0; fs != NULL && i < c->pending.cap; i++) {
		struct ferry_future *f = c->pending.slots[i].val;
		if (c->pending.slots[i].key != 0 && !f->queued)
			fs[n++] = f;
	}
	for (size_t i = 0; i < n; i++)
		future_complete_locked(c, fs[i], FERRY_FAILED, FERRY_ECLOSED,
		    "the scheduler lost this client's session while it was "
		    "disconnected",
		    66);
	free(fs);
	c->ack = 0;
}

static void
handle_reply(ferry_client *c, nng_msg *msg)
{
	struct proto_msg m;
	struct req      *r = NULL;
	char             err[512];
	uint32_t         id;
	int              rv;

	if (util_reply_id(msg, &id) != 0)
		return;
	for (int i = 0; i < MAX_REQS; i++)
		if (c->reqs[i].id == id)
			r = &c->reqs[i];
	if (r == NULL)
		return;
	rv = proto_decode(&c->dec, nng_msg_body(msg), nng_msg_len(msg), &m,
	    err, sizeof(err));

	pthread_mutex_lock(&c->lock);
	switch (r->kind) {
	case REQ_HELLO:
		c->hello_inflight = 0;
		if (c->was_connected && (rv != 0 || m.type == PROTO_ERROR)) {
			/* re-registering after a dropped connection: the
			 * scheduler may not have seen the old one go yet */
			c->hello_retry_ms = util_now_ms() + 200;
		} else if (rv == 0 && m.type == PROTO_ERROR &&
		    m.code == FERRY_ESTATE && c->opts.session != 0) {
			/* resuming a session the scheduler still sees
			 * attached to an earlier process's connection: ask
			 * again until it notices that one is gone (bounded
			 * by the connect timeout) */
			c->resume_retry   = 1;
			c->hello_retry_ms = util_now_ms() + 100;
		} else if (rv != 0) {
			c->conn_error = rv;
			snprintf(c->conn_msg, sizeof(c->conn_msg),
			    "bad answer to hello: %s", err);
		} else if (m.type == PROTO_ERROR) {
			c->conn_error = m.code;
			snprintf(c->conn_msg, sizeof(c->conn_msg),
			    "scheduler refused the connection: %s", m.msg);
		} else if (m.type == PROTO_WELCOME) {
			if (m.max_message_size >= 65536 &&
			    m.max_message_size < c->opts.max_message_size)
				c->opts.max_message_size = m.max_message_size;
			if (c->was_connected && !m.resumed)
				session_lost_locked(c);
			/* number new tasks above every id the session has
			 * used (an earlier process's, when resuming) */
			if (m.max_tag > c->next_tag)
				c->next_tag = m.max_tag;
			if (!c->was_connected)
				c->base_tag = c->next_tag;
			c->connected     = 1;
			c->was_connected = 1;
			c->down_ms       = 0;
			c->offline       = 0;
			full_reset_locked(c);
		}
		break;
	case REQ_SUBMIT:
		c->submits_inflight--;
		if (rv == 0 && m.type == PROTO_SUBMITTED) {
			handle_submitted_locked(c, r, &m);
		} else {
			/* the whole message was refused: fail its tasks
			 * with the reason */
			const char *why = rv != 0 ? err : m.msg;
			int code = rv != 0 ? rv : m.code;
			for (uint32_t i = 0; i < r->n_futs; i++)
				future_complete_locked(c, r->futs[i],
				    FERRY_FAILED, code, why, strlen(why));
		}
		for (uint32_t i = 0; i < r->n_futs; i++)
			future_release_locked(r->futs[i]);
		break;
	case REQ_FETCH:
		c->fetch_inflight = 0;
		if (rv == 0 && m.type == PROTO_RESULTS)
			handle_results_locked(c, &m);
		break;
	case REQ_STATUS:
		if (rv == 0 && m.type == PROTO_STATUS_REPLY) {
			free(c->status_bytes);
			c->status_bytes = malloc(nng_msg_len(msg));
			if (c->status_bytes != NULL) {
				memcpy(c->status_bytes, nng_msg_body(msg),
				    nng_msg_len(msg));
				c->status_len = nng_msg_len(msg);
			}
			c->status_gen++;
		}
		break;
	default:
		break;
	}
	req_clear(r);
	/* send what is due (the next fetch, acknowledging these results)
	 * before waking anyone: a caller that closes the client as soon as
	 * its futures complete must not beat the acknowledgement */
	pump_locked(c);
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->lock);
}

static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	ferry_client *c = arg;
	(void)p;
	(void)ev;
	atomic_store(&c->pipe_lost, 1);
	wake(c);
}

static int cancel_add_locked(ferry_client *c, uint64_t tag);

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
	for (int i = 0; i < MAX_REQS; i++) {
		struct req *r = &c->reqs[i];
		if (r->id == 0)
			continue;
		if (r->kind == REQ_SUBMIT) {
			/* we do not know whether they arrived: send them
			 * again; the scheduler ignores tags it has */
			requeue_front_locked(c, r->futs, r->n_futs);
			free(r->futs);
			r->futs = NULL;
		} else if (r->kind == REQ_CANCEL) {
			for (uint32_t j = 0; j < r->n_ids; j++)
				if (cancel_add_locked(c, r->ids[j]) != 0)
					break;
		}
		req_clear(r);
	}
	c->fetch_inflight   = 0;
	c->submits_inflight = 0;
	c->connected        = 0;
	c->hello_inflight   = 0;
	c->stats.reconnects++;
	send_hello(c);
	pthread_mutex_unlock(&c->lock);
}

/* Queue a cancel request for tag (lock held). */
static int
cancel_add_locked(ferry_client *c, uint64_t tag)
{
	if (util_grow(&c->cancel_ids, &c->cap_cancel, c->n_cancel,
	        sizeof(*c->cancel_ids), 64) != 0)
		return -1;
	c->cancel_ids[c->n_cancel++] = tag;
	return 0;
}

/* Send whatever is due (lock held): submissions, cancels, a status
 * request, and the fetch long poll.  Called from user threads, the receive
 * callback and the I/O thread, so nothing waits for a thread to wake. */
static void
pump_locked(ferry_client *c)
{
	uint64_t now;

	if (!c->connected || c->closing)
		return;
	now = util_now_ms();
	if (c->full) {
		/* backing off a full queue: one submit at a time, as many
		 * tasks as results came back (room freed; gathered for
		 * ROOM_GAP_MS at least), or a probe when the back-off ran
		 * out or the last probe was taken whole */
		int room = c->full_room > 0 &&
		    now >= c->full_sent_ms + ROOM_GAP_MS;
		if (c->sq_head != NULL && c->submits_inflight == 0 &&
		    (room || c->full_go || now >= c->retry_at_ms)) {
			uint64_t n    = room ? c->full_room : c->full_probe;
			int      kind = room ? 2 : 1;
			if (n > c->opts.max_batch)
				n = c->opts.max_batch;
			c->full_room    = 0;
			c->full_go      = 0;
			c->full_sent_ms = now;
			c->retry_at_ms  = now + c->full_backoff_ms;
			send_submit_locked(c, (uint32_t)n, kind);
		} else if (c->full_room > 0 &&
		    c->full_sent_ms + ROOM_GAP_MS < c->retry_at_ms) {
			/* the I/O thread wakes for the room */
			c->retry_at_ms = c->full_sent_ms + ROOM_GAP_MS;
		}
	} else {
		while (c->sq_head != NULL &&
		    c->submits_inflight < MAX_SUBMITS_INFLIGHT &&
		    now >= c->retry_at_ms) {
			int before = c->submits_inflight;
			send_submit_locked(c, (uint32_t)c->opts.max_batch, 0);
			if (c->submits_inflight == before)
				break;
		}
	}
	while (c->n_cancel > 0) {
		/* as many ids as fit in half a message (9 bytes each at
		 * most); the rest go in the next one */
		size_t      max = c->opts.max_message_size / 2 / 9;
		size_t      k   = c->n_cancel < max ? c->n_cancel : max;
		struct req *r   = req_new(c, REQ_CANCEL);
		if (r == NULL)
			break;
		if ((r->ids = malloc(k * sizeof(*r->ids))) == NULL) {
			req_clear(r);
			break;
		}
		memcpy(r->ids, c->cancel_ids, k * sizeof(*r->ids));
		r->n_ids = (uint32_t)k;
		proto_writer_reset(&c->w);
		proto_write_cancel(&c->w, r->ids, r->n_ids);
		/* r keeps them: sent again if the connection drops */
		if (send_req(c, r) != 0) {
			req_clear(r);
			break;
		}
		c->n_cancel -= k;
		memmove(c->cancel_ids, c->cancel_ids + k,
		    c->n_cancel * sizeof(*c->cancel_ids));
	}
	if (c->status_want) {
		struct req *r  = req_new(c, REQ_STATUS);
		c->status_want = 0;
		if (r != NULL) {
			proto_writer_reset(&c->w);
			proto_write_status(&c->w);
			if (send_req(c, r) != 0)
				req_clear(r);
		}
	}
	if (!c->fetch_inflight) {
		struct req *r = req_new(c, REQ_FETCH);
		if (r != NULL) {
			proto_writer_reset(&c->w);
			proto_write_fetch(&c->w, c->ack, FETCH_WAIT_MS);
			if (send_req(c, r) == 0)
				c->fetch_inflight = 1;
			else
				req_clear(r);
		}
	}
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
		handle_reply(c, msg);
		nng_msg_free(msg);
		pthread_mutex_lock(&c->lock);
		pump_locked(c);
		pthread_mutex_unlock(&c->lock);
	}
	nng_recv_aio(c->sock, c->rx);
}

/* The I/O thread: reconnection, retries after back-pressure, and the
 * occasional fetch that could not be sent. */
static void *
io_main(void *arg)
{
	ferry_client *c = arg;

	pthread_mutex_lock(&c->lock);
	send_hello(c);
	pthread_mutex_unlock(&c->lock);
	for (;;) {
		struct pollfd pfd;
		int           closing, tmo = 200;
		uint64_t      now;

		pthread_mutex_lock(&c->lock);
		closing = c->closing;
		now     = util_now_ms();
		if (!c->connected && (c->was_connected || c->resume_retry) &&
		    !c->hello_inflight && !closing &&
		    now >= c->hello_retry_ms)
			send_hello(c);
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
		pthread_mutex_unlock(&c->lock);
		if (closing)
			break;
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

/* ----------------------------------------------------- public API */

FERRY_API int
ferry_client_connect(ferry_client **out, const char *url, int timeout_ms)
{
	struct ferry_client_opts o;
	memset(&o, 0, sizeof(o));
	o.size               = sizeof(o);
	o.connect_timeout_ms = timeout_ms;
	return ferry_client_connect_opts(out, url, &o);
}

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
	fprintf(stderr, "libferry: closing the connection to %s did not finish "
	                "within %d s; leaving it to finish in the background\n",
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

/*
 * Wait (without the lock) until c is welcomed or refused, timeout_ms run
 * out (-1: never), or, with no_scheduler_ms, nothing listens at the
 * address: no connection was ever made and dials failed, no_scheduler_ms
 * after the start (then returns 1).  *dc and *got: the dialer's counts
 * at the end (*got -1 without them).
 */
static int
connect_wait(ferry_client *c, int timeout_ms, struct dial_counts *dc,
    int *got)
{
	struct timespec ts;
	uint64_t        start = util_now_ms(), now;
	uint64_t        end   = timeout_ms >= 0
	           ? start + (uint64_t)timeout_ms
	           : UINT64_MAX;
	uint64_t        look  = c->opts.no_scheduler_ms > 0
	            ? start + (uint64_t)c->opts.no_scheduler_ms
	            : UINT64_MAX;
	int             done, absent = 0;

	pthread_mutex_lock(&c->lock);
	while (!(done = c->connected || c->conn_error != 0) &&
	    (now = util_now_ms()) < end) {
		uint64_t wake = end < look ? end : look;
		if (now >= look) {
			/* is anything listening there? */
			int nobody = 0;
			pthread_mutex_unlock(&c->lock);
			absent = dial_counts_get(c, dc) == 0 &&
			    dc->connect == 0 &&
			    dial_cause(&zero, dc, c->url, &nobody) != NULL &&
			    nobody;
			pthread_mutex_lock(&c->lock);
			if (absent && !c->connected && c->conn_error == 0)
				break;
			absent = 0;
			look   = now + DIAL_CHECK_MS;
			wake   = end < look ? end : look;
		}
		if (wake == UINT64_MAX) {
			pthread_cond_wait(&c->cv, &c->lock);
		} else {
			deadline_of((int)(wake - now), &ts);
			pthread_cond_timedwait(&c->cv, &c->lock, &ts);
		}
	}
	pthread_mutex_unlock(&c->lock);
	*got = done ? -1 : dial_counts_get(c, dc);
	return absent;
}

FERRY_API int
ferry_client_connect_opts(ferry_client **out, const char *url,
    const struct ferry_client_opts *opts)
{
	ferry_client      *c;
	struct sec_dial    sd = { 0 };
	struct dial_counts dc;
	char              *errbuf     = NULL;
	size_t             errbuf_len = 0;
	int                rv, timeout, absent, got;
	char               err[256];

	if (out == NULL || url == NULL)
		return FERRY_EINVAL;
	*out = NULL;
	if (util_url_check(url, err, sizeof(err)) != 0) {
		if (opts != NULL && CL_HAS(opts, errbuf_len))
			util_errf(opts->errbuf, opts->errbuf_len, "%s", err);
		return FERRY_EINVAL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return FERRY_ENOMEM;
	c->opts.size               = sizeof(c->opts);
	c->opts.connect_timeout_ms = 10000;
	c->opts.max_message_size   = 64u << 20;
	c->opts.max_batch          = 4096;
	c->opts.submit_timeout_ms  = -1;
	c->opts.reconnect_ms       = RECONNECT_MS;
	if (opts != NULL && opts->size >= sizeof(size_t)) {
		if (opts->connect_timeout_ms != 0)
			c->opts.connect_timeout_ms = opts->connect_timeout_ms;
		if (opts->max_message_size >= 65536)
			c->opts.max_message_size = opts->max_message_size;
		if (opts->max_batch > 0)
			c->opts.max_batch = opts->max_batch;
		if (CL_HAS(opts, on_full)) {
			if (opts->on_full != FERRY_FULL_BLOCK &&
			    opts->on_full != FERRY_FULL_FAIL) {
				free(c);
				return FERRY_EINVAL;
			}
			c->opts.on_full = opts->on_full;
		}
		if (CL_HAS(opts, max_unsent) && opts->max_unsent > 0)
			c->opts.max_unsent = opts->max_unsent;
		if (CL_HAS(opts, submit_timeout_ms) &&
		    opts->submit_timeout_ms > 0)
			c->opts.submit_timeout_ms = opts->submit_timeout_ms;
		if (CL_HAS(opts, session))
			c->opts.session = opts->session;
		if (CL_HAS(opts, token_file)) {
			sd.tls_ca_file       = opts->tls_ca_file;
			sd.tls_cert_key_file = opts->tls_cert_key_file;
			sd.tls_server_name   = opts->tls_server_name;
			sd.token_file        = opts->token_file;
		}
		if (CL_HAS(opts, errbuf_len)) {
			errbuf     = opts->errbuf;
			errbuf_len = opts->errbuf_len;
		}
		if (CL_HAS(opts, reconnect_ms) && opts->reconnect_ms != 0)
			c->opts.reconnect_ms = opts->reconnect_ms < 0
			    ? -1
			    : opts->reconnect_ms;
		if (CL_HAS(opts, no_scheduler_ms) && opts->no_scheduler_ms > 0)
			c->opts.no_scheduler_ms = opts->no_scheduler_ms;
	}
	if (sd.token_file != NULL &&
	    (sec_token_load(sd.token_file, c->token, errbuf, errbuf_len) !=
	            0 ||
	        sec_token_check_url(url, c->token, errbuf, errbuf_len) !=
	            0)) {
		free(c);
		return FERRY_EINVAL;
	}
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
	proto_writer_init(&c->w);
	proto_decoder_init(&c->dec);
	if ((c->url = strdup(url)) == NULL) {
		rv = FERRY_ENOMEM;
		goto fail;
	}
	if ((c->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		rv = FERRY_ESYSTEM;
		goto fail;
	}
	if ((rv = nng_req0_open_raw(&c->sock)) != 0 ||
	    (rv = util_sock_setup(c->sock, c->opts.max_message_size)) != 0 ||
	    (rv = nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, pipe_cb,
	         c)) != 0 ||
	    (rv = nng_aio_alloc(&c->rx, rx_cb, c)) != 0) {
		rv = util_nng_err(rv);
		goto fail;
	}
	if (sec_dial(c->sock, url, &sd, errbuf, errbuf_len) != 0) {
		rv = FERRY_EINVAL;
		goto fail;
	}
	{
		/* NNG's and our I/O threads must not take the caller's
		 * signals */
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		rv = pthread_create(&c->thread, NULL, io_main, c);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (rv != 0) {
			rv = FERRY_ESYSTEM;
			goto fail;
		}
		c->thread_started = 1;
	}
	nng_recv_aio(c->sock, c->rx);
	timeout = c->opts.connect_timeout_ms;
	absent  = connect_wait(c, timeout, &dc, &got);
	pthread_mutex_lock(&c->lock);
	rv = c->connected         ? 0
	    : c->conn_error != 0  ? c->conn_error
	    : c->resume_retry     ? FERRY_ESTATE /* session still in use */
	                          : FERRY_ECONNECT;
	if (rv == FERRY_ECONNECT) {
		/* nothing listens there (every dial failed), or something
		 * does and did not answer, or failed the handshake */
		int         nobody = 0;
		const char *why    = got == 0 && dc.connect == 0
		       ? dial_cause(&zero, &dc, url, &nobody)
		       : NULL;
		if (why != NULL && nobody && absent)
			util_errf(errbuf, errbuf_len, "no scheduler at %s: %s",
			    url, why);
		else if (why != NULL && nobody)
			util_errf(errbuf, errbuf_len,
			    "no scheduler at %s: %s (tried for %d ms)", url, why,
			    timeout);
		else
			util_errf(errbuf, errbuf_len,
			    "no answer from the scheduler at %s within %d "
			    "ms%s%s%s",
			    url, timeout, sec_connect_hint(url),
			    why != NULL ? ": " : "", why != NULL ? why : "");
	} else if (rv == FERRY_ESTATE && c->conn_error == 0)
		util_errf(errbuf, errbuf_len,
		    "session %" PRIu64 " is still attached to another "
		    "connection",
		    c->session);
	else if (rv != 0)
		util_errf(errbuf, errbuf_len, "%s", c->conn_msg);
	pthread_mutex_unlock(&c->lock);
	if (rv != 0)
		goto fail;
	*out = c;
	return 0;
fail:
	client_shutdown(c);
	pthread_mutex_lock(&c->lock);
	if (!client_release_locked(c))
		pthread_mutex_unlock(&c->lock);
	return rv;
}

FERRY_API void
ferry_client_close(ferry_client *c)
{
	struct ferry_future **fs;
	size_t                n = 0;

	if (c == NULL)
		return;
	client_shutdown(c);
	pthread_mutex_lock(&c->lock);
	/* fail what never finished: collect first, completing edits the
	 * map */
	fs = calloc(c->pending.count + 1, sizeof(*fs));
	for (size_t i = 0; fs != NULL && i < c->pending.cap; i++)
		if (c->pending.slots[i].key != 0)
			fs[n++] = c->pending.slots[i].val;
	for (size_t i = 0; i < n; i++) {
		fs[i]->refs++;
		future_complete_locked(c, fs[i], FERRY_FAILED, FERRY_ECLOSED,
		    "client closed", 13);
	}
	/* requests and the queue hold references too */
	for (int i = 0; i < MAX_REQS; i++) {
		for (uint32_t j = 0; j < c->reqs[i].n_futs; j++)
			future_release_locked(c->reqs[i].futs[j]);
		req_clear(&c->reqs[i]);
	}
	while (c->sq_head != NULL) {
		struct ferry_future *f = c->sq_head;
		c->sq_head             = f->next;
		f->queued              = 0;
		future_release_locked(f);
	}
	c->sq_tail = NULL;
	for (size_t i = 0; i < n; i++)
		future_release_locked(fs[i]);
	free(fs);
	pthread_cond_broadcast(&c->cv);
	if (!client_release_locked(c))
		pthread_mutex_unlock(&c->lock);
}

struct keys {
	char    *buf;
	size_t   len, cap;
	uint32_t n;
	int      nomem;
};

static void
add_key(void *arg, const struct obj_ref *ref)
{
	struct keys *k = arg;
	char         key[OBJREF_MAX_PATH + 80];
	size_t       n = objref_key(ref, key, sizeof(key));
	if (n == 0 || k->nomem)
		return;
	if (k->len + n + 1 > k->cap) {
		size_t ncap = (k->cap + n + 1) * 2;
		char  *nb   = realloc(k->buf, ncap);
		if (nb == NULL) {
			k->nomem = 1;
			return;
		}
		k->buf = nb;
		k->cap = ncap;
	}
	memcpy(k->buf + k->len, key, n + 1);
	k->len += n + 1;
	k->n++;
}

/* Find the object references in args (their locality keys go with the
 * task).  Returns 0, FERRY_EINVAL for a malformed reference, or
 * FERRY_ENOMEM. */
static int
find_keys(const void *args, size_t len, struct keys *k)
{
	char err[256];
	memset(k, 0, sizeof(*k));
	if (objref_scan(args, len, PROTO_MAX_TASK_OBJS, add_key, k, err,
	        sizeof(err)) < 0) {
		free(k->buf);
		return FERRY_EINVAL;
	}
	if (k->nomem) {
		free(k->buf);
		return FERRY_ENOMEM;
	}
	return 0;
}

static int
submit_locked(ferry_client *c, const char *fn, size_t fn_len,
    const void *args, size_t len, const struct proto_task_opts *po,
    ferry_future **out)
{
	struct ferry_future *f;
	struct keys          k;
	int                  rv;

	if ((rv = find_keys(args, len, &k)) != 0)
		return rv;
	if ((f = calloc(1, sizeof(*f))) == NULL) {
		free(k.buf);
		return FERRY_ENOMEM;
	}
	f->keys   = k.buf;
	f->n_keys = k.n;
	if ((f->fn = malloc(fn_len + 1)) == NULL ||
	    (len > 0 && (f->args = malloc(len)) == NULL)) {
		free(f->fn);
		free(f->keys);
		free(f);
		return FERRY_ENOMEM;
	}
	memcpy(f->fn, fn, fn_len + 1);
	f->fn_len = fn_len;
	if (len > 0)
		memcpy(f->args, args, len);
	f->args_len = len;
	f->opts     = *po;
	f->c        = c;
	f->tag      = ++c->next_tag;
	f->state    = FERRY_PENDING;
	f->refs     = 3; /* the caller's, the client's, the queue's */
	f->queued   = 1;
	if (c->offline) {
		/* the scheduler has been out of reach for reconnect_ms: the
		 * task fails at once, as the pending ones did */
		f->refs   = 2;
		f->queued = 0;
		c->refs++;
		c->stats.submitted++;
		future_complete_locked(c, f, FERRY_FAILED, FERRY_ECLOSED,
		    c->down_msg, strlen(c->down_msg));
		*out = f;
		return 0;
	}
	if (idmap_put(&c->pending, f->tag, f) != 0) {
		c->next_tag--;
		free(f->fn);
		free(f->args);
		free(f->keys);
		free(f);
		return FERRY_ENOMEM;
	}
	f->unsent = 1;
	c->unsent++;
	c->refs++;
	c->stats.submitted++;
	if (c->sq_tail != NULL)
		c->sq_tail->next = f;
	else
		c->sq_head = f;
	c->sq_tail = f;
	*out       = f;
	return 0;
}

static int
check_fn(const char *fn, size_t *fn_len)
{
	if (fn == NULL)
		return FERRY_EINVAL;
	*fn_len = strlen(fn);
	if (*fn_len == 0 || *fn_len > 255)
		return FERRY_EINVAL;
	return 0;
}

FERRY_API void
ferry_task_opts_init(struct ferry_task_opts *o)
{
	if (o == NULL)
		return;
	o->size           = sizeof(*o);
	o->retries        = -1;
	o->backoff_ms     = -1;
	o->backoff_max_ms = -1;
	o->timeout_ms     = -1;
	o->retry_errors   = -1;
}

/* One option: -1 leaves it unset (the scheduler's default), 0 ... max
 * sets it. */
static int
task_opt(int v, int max, uint32_t bit, uint32_t *set, uint32_t *out)
{
	if (v == -1)
		return 0;
	if (v < 0 || v > max)
		return FERRY_EINVAL;
	*set |= bit;
	*out = (uint32_t)v;
	return 0;
}

/* Check the caller's options and turn them into the wire form. */
static int
task_opts_convert(const struct ferry_task_opts *o, struct proto_task_opts *p)
{
	int rv = 0;

	memset(p, 0, sizeof(*p));
	if (o == NULL)
		return 0;
	if (o->size < sizeof(size_t))
		return FERRY_EINVAL;
#define TASK_OPT(field, max, bit)                                          \
	if (rv == 0 && OPT_HAS(o, struct ferry_task_opts, field))          \
	rv = task_opt(o->field, max, bit, &p->set, &p->field)
	TASK_OPT(retries, 1000, PROTO_OPT_RETRIES);
	TASK_OPT(backoff_ms, INT32_MAX, PROTO_OPT_BACKOFF);
	TASK_OPT(backoff_max_ms, INT32_MAX, PROTO_OPT_BACKOFF_MAX);
	TASK_OPT(timeout_ms, INT32_MAX, PROTO_OPT_TIMEOUT);
	TASK_OPT(retry_errors, INT32_MAX, PROTO_OPT_RETRY_ERRORS);
#undef TASK_OPT
	if (p->retry_errors > 1)
		p->retry_errors = 1;
	return rv;
}

/*
 * Make room for one more unsent task (lock held): returns 0 when there is
 * room, FERRY_EFULL (FERRY_FULL_FAIL) or, after waiting, FERRY_ETIMEDOUT
 * or FERRY_ECLOSED.  *gone is set if the client was freed meanwhile (by
 * a ferry_client_close in another thread); its lock is then released.
 */
static int
room_locked(ferry_client *c, size_t need, const struct timespec *ts,
    int *gone)
{
	int rv = 0;

	*gone = 0;
	if (c->unsent + need <= c->opts.max_unsent)
		return 0;
	if (c->opts.on_full == FERRY_FULL_FAIL)
		return FERRY_EFULL;
	c->refs++; /* the client stays while we wait, even if closed */
	while (rv == 0 && !c->closing &&
	    c->unsent + need > c->opts.max_unsent) {
		pump_locked(c);
		rv = wait_locked(c, c->opts.submit_timeout_ms, ts);
	}
	if (c->closing)
		rv = FERRY_ECLOSED;
	else if (c->unsent + need <= c->opts.max_unsent)
		rv = 0;
	if (client_release_locked(c))
		*gone = 1;
	return rv;
}

/* Take back a task of a map that failed half-way (lock held): one not
 * sent yet is dropped here, one sent is cancelled at the scheduler (its
 * future stays, with the client's reference only, until the result of
 * the cancel arrives). */
static void
withdraw_locked(ferry_client *c, struct ferry_future *f)
{
	if (f->queued)
		future_complete_locked(c, f, FERRY_CANCELLED, FERRY_ECANCELED,
		    "withdrawn", 9);
	else if (f->state == FERRY_PENDING &&
	    cancel_add_locked(c, f->tag) == 0)
		f->cancel_requested = 1;
	future_release_locked(f); /* the caller's */
}

FERRY_API int
ferry_submit_opts(ferry_client *c, const char *fn, const void *args,
    size_t len, const struct ferry_task_opts *opts, ferry_future **out)
{
	struct proto_task_opts po;
	struct timespec        ts;
	size_t                 fn_len;
	int                    rv, gone;

	if (c == NULL || out == NULL || (args == NULL && len > 0))
		return FERRY_EINVAL;
	if ((rv = check_fn(fn, &fn_len)) != 0)
		return rv;
	if ((rv = task_opts_convert(opts, &po)) != 0)
		return rv;
	if (len + fn_len + 4096 > c->opts.max_message_size)
		return FERRY_ETOOBIG;
	deadline_of(c->opts.submit_timeout_ms > 0 ? c->opts.submit_timeout_ms
	                                          : 0,
	    &ts);
	pthread_mutex_lock(&c->lock);
	if (c->closing) {
		pthread_mutex_unlock(&c->lock);
		return FERRY_ECLOSED;
	}
	if ((rv = room_locked(c, 1, &ts, &gone)) != 0) {
		if (!gone)
			pthread_mutex_unlock(&c->lock);
		return rv;
	}
	rv = submit_locked(c, fn, fn_len, args, len, &po, out);
	if (rv == 0)
		pump_locked(c); /* send now unless a batch is already going */
	pthread_mutex_unlock(&c->lock);
	return rv;
}

FERRY_API int
ferry_submit(ferry_client *c, const char *fn, const void *args, size_t len,
    ferry_future **out)
{
	return ferry_submit_opts(c, fn, args, len, NULL, out);
}

FERRY_API int
ferry_map_opts(ferry_client *c, const char *fn, size_t n,
    const void *const *args, const size_t *lens,
    const struct ferry_task_opts *opts, ferry_future **futs)
{
	struct proto_task_opts po;
	struct timespec        ts;
	size_t                 fn_len, i;
	int                    rv = 0, gone = 0;

	if (c == NULL || futs == NULL || (n > 0 && (args == NULL || lens == NULL)))
		return FERRY_EINVAL;
	if ((rv = check_fn(fn, &fn_len)) != 0)
		return rv;
	if ((rv = task_opts_convert(opts, &po)) != 0)
		return rv;
	for (i = 0; i < n; i++) {
		if (args[i] == NULL && lens[i] > 0)
			return FERRY_EINVAL;
		if (lens[i] + fn_len + 4096 > c->opts.max_message_size)
			return FERRY_ETOOBIG;
	}
	deadline_of(c->opts.submit_timeout_ms > 0 ? c->opts.submit_timeout_ms
	                                          : 0,
	    &ts);
	pthread_mutex_lock(&c->lock);
	if (c->closing) {
		pthread_mutex_unlock(&c->lock);
		return FERRY_ECLOSED;
	}
	/* FERRY_FULL_FAIL: all of them fit now, or none is taken */
	if (c->opts.on_full == FERRY_FULL_FAIL && n > 0 &&
	    (rv = room_locked(c, n, &ts, &gone)) != 0) {
		pthread_mutex_unlock(&c->lock); /* FAIL never waits */
		return rv;
	}
	for (i = 0; i < n; i++) {
		/* FERRY_FULL_BLOCK: one chunk at a time as room appears */
		if (c->unsent >= c->opts.max_unsent) {
			rv = room_locked(c, 1, &ts, &gone);
			if (gone) /* freed by a close; only when i == 0, as
			           * futures hold the client */
				return rv;
			if (rv != 0)
				break;
		}
		if ((rv = submit_locked(c, fn, fn_len, args[i], lens[i], &po,
		         &futs[i])) != 0)
			break;
		if ((i & 4095) == 4095)
			pump_locked(c); /* start sending big maps early */
	}
	if (rv != 0) {
		/* all or nothing: withdraw the ones submitted so far */
		for (size_t j = 0; j < i; j++) {
			withdraw_locked(c, futs[j]);
			futs[j] = NULL;
		}
	}
	pump_locked(c);
	pthread_mutex_unlock(&c->lock);
	return rv;
}

FERRY_API int
ferry_map(ferry_client *c, const char *fn, size_t n, const void *const *args,
    const size_t *lens, ferry_future **futs)
{
	return ferry_map_opts(c, fn, n, args, lens, NULL, futs);
}

FERRY_API int
ferry_future_state(const ferry_future *f)
{
	int s;
	if (f == NULL)
		return FERRY_EINVAL;
	pthread_mutex_lock(&f->c->lock);
	s = f->state;
	pthread_mutex_unlock(&f->c->lock);
	return s;
}

static void
deadline_of(int timeout_ms, struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += timeout_ms / 1000;
	ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Wait on the client's condition until pred() or the deadline. */
static int
wait_locked(ferry_client *c, int timeout_ms, const struct timespec *ts)
{
	if (timeout_ms == 0)
		return FERRY_ETIMEDOUT;
	if (timeout_ms < 0) {
		pthread_cond_wait(&c->cv, &c->lock);
		return 0;
	}
	if (pthread_cond_timedwait(&c->cv, &c->lock, ts) == ETIMEDOUT)
		return FERRY_ETIMEDOUT;
	return 0;
}

FERRY_API int
ferry_future_wait(ferry_future *f, int timeout_ms)
{
	struct timespec ts;
	int             rv = 0;
	if (f == NULL)
		return FERRY_EINVAL;
	deadline_of(timeout_ms > 0 ? timeout_ms : 0, &ts);
	pthread_mutex_lock(&f->c->lock);
	while (f->state == FERRY_PENDING && rv == 0)
		rv = wait_locked(f->c, timeout_ms, &ts);
	rv = f->state == FERRY_PENDING ? FERRY_ETIMEDOUT : 0;
	pthread_mutex_unlock(&f->c->lock);
	return rv;
}

FERRY_API int
ferry_future_result(const ferry_future *f, const void **data, size_t *len)
{
	int rv;
	if (f == NULL)
		return FERRY_EINVAL;
	pthread_mutex_lock(&f->c->lock);
	switch (f->state) {
	case FERRY_PENDING:
		rv = FERRY_EPENDING;
		break;
	case FERRY_DONE:
		if (data != NULL)
			*data = f->data;
		if (len != NULL)
			*len = f->len;
		rv = 0;
		break;
	case FERRY_CANCELLED:
		rv = FERRY_ECANCELED;
		break;
	default:
		rv = f->errcode != 0 ? f->errcode : FERRY_ETASK;
		break;
	}
	pthread_mutex_unlock(&f->c->lock);
	return rv;
}

FERRY_API int
ferry_future_errcode(const ferry_future *f)
{
	int rv;
	if (f == NULL)
		return FERRY_EINVAL;
	pthread_mutex_lock(&f->c->lock);
	rv = (f->state != FERRY_PENDING && f->state != FERRY_DONE)
	    ? f->errcode
	    : 0;
	pthread_mutex_unlock(&f->c->lock);
	return rv;
}

FERRY_API const char *
ferry_future_error(const ferry_future *f)
{
	const char *s = NULL;
	if (f == NULL)
		return NULL;
	pthread_mutex_lock(&f->c->lock);
	if (f->state != FERRY_PENDING && f->state != FERRY_DONE)
		s = (const char *)f->data;
	pthread_mutex_unlock(&f->c->lock);
	return s;
}

FERRY_API uint64_t
ferry_future_id(const ferry_future *f)
{
	return f != NULL ? f->tag : 0;
}

FERRY_API uint32_t
ferry_future_attempts(const ferry_future *f)
{
	uint32_t n;
	if (f == NULL)
		return 0;
	pthread_mutex_lock(&f->c->lock);
	n = f->attempts;
	pthread_mutex_unlock(&f->c->lock);
	return n;
}

/* Cancel one pending future (lock held): one not sent yet is cancelled
 * here (the queue skips it), the others at the scheduler.  Returns 0 or
 * FERRY_ENOMEM. */
static int
cancel_one_locked(ferry_client *c, struct ferry_future *f)
{
	if (f->queued) {
		f->refs++;
		future_complete_locked(c, f, FERRY_CANCELLED, FERRY_ECANCELED,
		    "cancelled", 9);
		future_release_locked(f); /* never the last reference */
		return 0;
	}
	if (f->cancel_requested)
		return 0;
	if (cancel_add_locked(c, f->tag) != 0)
		return FERRY_ENOMEM;
	f->cancel_requested = 1;
	return 0;
}

FERRY_API int
ferry_cancel(ferry_future *f)
{
	ferry_client *c;
	int           rv;
	if (f == NULL)
		return FERRY_EINVAL;
	c = f->c;
	pthread_mutex_lock(&c->lock);
	if (f->state != FERRY_PENDING) {
		pthread_mutex_unlock(&c->lock);
		return FERRY_ESTATE;
	}
	rv = cancel_one_locked(c, f);
	pump_locked(c);
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->lock);
	return rv;
}

FERRY_API int
ferry_cancel_many(ferry_future *const *futs, size_t n)
{
	ferry_client *c = NULL;
	int           rv = 0;

	if (n > 0 && futs == NULL)
		return FERRY_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (futs[i] == NULL)
			continue;
		if (c == NULL)
			c = futs[i]->c;
		else if (futs[i]->c != c)
			return FERRY_EINVAL;
	}
	if (c == NULL)
		return 0;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < n && rv == 0; i++)
		if (futs[i] != NULL && futs[i]->state == FERRY_PENDING)
			rv = cancel_one_locked(c, futs[i]);
	pump_locked(c); /* the ids leave together */
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->lock);
	return rv;
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

FERRY_API uint64_t
ferry_client_session(const ferry_client *c)
{
	return c != NULL ? c->session : 0;
}

FERRY_API void
ferry_future_free(ferry_future *f)
{
	ferry_client *c;
	if (f == NULL)
		return;
	c = f->c;
	pthread_mutex_lock(&c->lock);
	if (f->iter != NULL) {
		/* freed while an iterator still holds it (the header says
		 * not to): take it out so the iterator stays sound */
		struct ferry_iter   *it   = f->iter;
		struct ferry_future *prev = NULL, *x;
		for (x = it->ready_head; x != NULL; prev = x, x = x->iter_next)
			if (x == f)
				break;
		if (x != NULL) {
			if (prev != NULL)
				prev->iter_next = f->iter_next;
			else
				it->ready_head = f->iter_next;
			if (it->ready_tail == f)
				it->ready_tail = prev;
		}
		it->total--;
		f->iter = NULL;
	}
	if (!future_release_locked(f))
		pthread_mutex_unlock(&c->lock);
}

FERRY_API int
ferry_wait_all(ferry_future *const *futs, size_t n, int timeout_ms)
{
	struct timespec ts;
	int             rv = 0;
	deadline_of(timeout_ms > 0 ? timeout_ms : 0, &ts);
	for (size_t i = 0; i < n; i++) {
		ferry_client *c = futs[i]->c;
		pthread_mutex_lock(&c->lock);
		while (futs[i]->state == FERRY_PENDING && rv == 0)
			rv = wait_locked(c, timeout_ms, &ts);
		if (futs[i]->state == FERRY_PENDING)
			rv = FERRY_ETIMEDOUT;
		pthread_mutex_unlock(&c->lock);
		if (rv != 0)
			return rv;
	}
	return 0;
}

FERRY_API int
ferry_as_completed(ferry_client *c, ferry_future *const *futs, size_t n,
    ferry_iter **out)
{
	ferry_iter *it;
	if (c == NULL || out == NULL || (n > 0 && futs == NULL))
		return FERRY_EINVAL;
	if ((it = calloc(1, sizeof(*it))) == NULL)
		return FERRY_ENOMEM;
	it->c = c;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < n; i++) {
		if (futs[i]->c != c || futs[i]->iter != NULL) {
			/* undo: a future belongs to one iterator at a time */
			for (size_t j = 0; j < i; j++)
				futs[j]->iter = NULL;
			pthread_mutex_unlock(&c->lock);
			free(it);
			return FERRY_EINVAL;
		}
		futs[i]->iter = it;
	}
	for (size_t i = 0; i < n; i++) {
		ferry_future *f = futs[i];
		it->total++;
		if (f->state != FERRY_PENDING) {
			f->iter_next = NULL;
			if (it->ready_tail != NULL)
				it->ready_tail->iter_next = f;
			else
				it->ready_head = f;
			it->ready_tail = f;
		}
	}
	pthread_mutex_unlock(&c->lock);
	*out = it;
	return 0;
}

FERRY_API int
ferry_iter_next(ferry_iter *it, int timeout_ms, ferry_future **f)
{
	struct timespec ts;
	ferry_client   *c;
	int             rv = 0;
	if (it == NULL || f == NULL)
		return FERRY_EINVAL;
	c = it->c;
	deadline_of(timeout_ms > 0 ? timeout_ms : 0, &ts);
	pthread_mutex_lock(&c->lock);
	for (;;) {
		if (it->ready_head != NULL) {
			*f             = it->ready_head;
			it->ready_head = (*f)->iter_next;
			if (it->ready_head == NULL)
				it->ready_tail = NULL;
			(*f)->iter_next = NULL;
			(*f)->iter      = NULL; /* yielded: no longer ours */
			it->yielded++;
			rv = 0;
			break;
		}
		if (it->yielded >= it->total) {
			rv = FERRY_ENOTFOUND;
			break;
		}
		if ((rv = wait_locked(c, timeout_ms, &ts)) != 0)
			break;
	}
	pthread_mutex_unlock(&c->lock);
	return rv;
}

FERRY_API void
ferry_iter_free(ferry_iter *it)
{
	ferry_client *c;
	if (it == NULL)
		return;
	c = it->c;
	pthread_mutex_lock(&c->lock);
	/* detach every future still pointing here: walk the pending map
	 * (the ready list holds finished ones) */
	for (ferry_future *f = it->ready_head; f != NULL; f = f->iter_next)
		f->iter = NULL;
	for (size_t i = 0; i < c->pending.cap; i++) {
		ferry_future *f = c->pending.slots[i].val;
		if (c->pending.slots[i].key != 0 && f->iter == it)
			f->iter = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	free(it);
}

static uint64_t
map_uint(const msgpack_object *map, const char *key)
{
	size_t klen = strlen(key);
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_STR &&
		    kv->key.via.str.size == klen &&
		    memcmp(kv->key.via.str.ptr, key, klen) == 0 &&
		    kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			return kv->val.via.u64;
	}
	return 0;
}

/* Ask for the scheduler's status document: *bytes (malloc'd) and *len. */
static int
status_fetch(ferry_client *c, uint8_t **bytes, size_t *len, int timeout_ms)
{
	struct timespec ts;
	uint64_t        gen;
	int             rv = 0;

	*bytes = NULL;
	*len   = 0;
	deadline_of(timeout_ms > 0 ? timeout_ms : 0, &ts);
	pthread_mutex_lock(&c->lock);
	gen            = c->status_gen;
	c->status_want = 1;
	pump_locked(c);
	while (c->status_gen == gen && rv == 0 && !c->offline)
		rv = wait_locked(c, timeout_ms, &ts);
	if (c->status_gen == gen && c->offline) {
		rv = FERRY_ECLOSED; /* gave up on the scheduler */
	} else if (c->status_gen != gen && c->status_bytes != NULL) {
		if ((*bytes = malloc(c->status_len)) != NULL) {
			memcpy(*bytes, c->status_bytes, c->status_len);
			*len = c->status_len;
		}
		rv = *bytes != NULL ? 0 : FERRY_ENOMEM;
	} else if (rv == 0) {
		rv = FERRY_ETIMEDOUT;
	}
	pthread_mutex_unlock(&c->lock);
	return rv;
}

/* Fill st (st->size bytes of it) from a status document: every number
 * of the counter table (common/status_fields.h) has a member. */
static int
status_fill(struct ferry_status *st, const uint8_t *bytes, size_t len)
{
#define U32 4
#define U64 8
#define STATUS_MEMBER(name, kind, width, doc)                               \
	{ #name, offsetof(struct ferry_status, name), width },
	static const struct {
		const char *name;
		size_t      off;
		int         width;
	} members[] = { FERRY_STATUS_FIELDS(STATUS_MEMBER) };
#undef STATUS_MEMBER
#undef U32
#undef U64
	struct ferry_status full;
	msgpack_zone        zone;
	msgpack_object      o;
	size_t              off = 0;
	int                 rv  = 0;

	msgpack_zone_init(&zone, 2048);
	if (msgpack_unpack((const char *)bytes, len, &off, &zone, &o) !=
	        MSGPACK_UNPACK_SUCCESS ||
	    o.type != MSGPACK_OBJECT_MAP) {
		msgpack_zone_destroy(&zone);
		return FERRY_EPROTO;
	}
	memset(&full, 0, sizeof(full));
	full.size = st->size;
	for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
		uint64_t v = map_uint(&o, members[i].name);
		char    *p = (char *)&full + members[i].off;
		if (members[i].width == 4) {
			uint32_t v32 = (uint32_t)v;
			memcpy(p, &v32, sizeof(v32));
		} else {
			memcpy(p, &v, sizeof(v));
		}
	}
	full.uptime_s = (double)full.uptime_ms / 1e3;
	memcpy(st, &full, st->size < sizeof(full) ? st->size : sizeof(full));
	msgpack_zone_destroy(&zone);
	return rv;
}

FERRY_API int
ferry_cluster_status_doc(ferry_client *c, struct ferry_status *st, void **doc,
    size_t *len, int timeout_ms)
{
	uint8_t *bytes;
	size_t   n;
	int      rv;

	if (c == NULL || (st != NULL && st->size < sizeof(size_t)))
		return FERRY_EINVAL;
	if (doc != NULL)
		*doc = NULL;
	if ((rv = status_fetch(c, &bytes, &n, timeout_ms)) != 0)
		return rv;
	if (st != NULL && (rv = status_fill(st, bytes, n)) != 0) {
		free(bytes);
		return rv;
	}
	if (doc != NULL) {
		*doc = bytes;
		if (len != NULL)
			*len = n;
	} else {
		free(bytes);
	}
	return 0;
}

FERRY_API int
ferry_cluster_status(ferry_client *c, struct ferry_status *st, char **json,
    int timeout_ms)
{
	void  *doc = NULL;
	size_t len = 0;
	int    rv;

	if (json != NULL)
		*json = NULL;
	rv = ferry_cluster_status_doc(c, st, json != NULL ? &doc : NULL, &len,
	    timeout_ms);
	if (rv == 0 && json != NULL) {
		char err[256];
		*json = json_from_msgpack_bytes(doc, len, err, sizeof(err));
		if (*json == NULL)
			rv = FERRY_EPROTO;
	}
	free(doc);
	return rv;
}

FERRY_API int
ferry_object_ref(void *buf, size_t cap, size_t *len, const char *path,
    const char *loader, uint64_t size, const uint8_t *sha256)
{
	if (buf == NULL || len == NULL)
		return FERRY_EINVAL;
	return objref_encode(buf, cap, len, path, loader, size, sha256) == 0
	    ? 0
	    : FERRY_EINVAL;
}

FERRY_API int
ferry_client_stats(ferry_client *c, struct ferry_client_stats *st)
{
	size_t sz;
	if (c == NULL || st == NULL || st->size < sizeof(size_t))
		return FERRY_EINVAL;
	sz = st->size < sizeof(*st) ? st->size : sizeof(*st);
	pthread_mutex_lock(&c->lock);
	c->stats.size    = st->size;
	c->stats.orphans = c->orphans.count;
	c->stats.unsent  = c->unsent;
	memcpy(st, &c->stats, sz);
	pthread_mutex_unlock(&c->lock);
	return 0;
}
