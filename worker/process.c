/*
 * process.c - one worker process.
 *
 * An I/O thread talks to the scheduler over a raw REQ socket and keeps at
 * most two requests in flight: a "poll" (a work request with no results,
 * which the scheduler may park until it has tasks) and a "results" request
 * (results to report, answered at once).  Both carry credit: how many more
 * tasks this process can hold, counting what earlier in-flight requests
 * already asked for.  Executor threads (one per slot) run tasks from the
 * inbox and pack results into the outbox; results leave in batches, as
 * many as finished while the previous batch was in flight.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "ferry/ferry.h"
#include "log.h"
#include "proto.h"
#include "util.h"
#include "worker.h"

#define MAX_REQS 8

enum req_kind { REQ_HELLO = 1, REQ_POLL, REQ_RESULTS };

struct wtask {
	struct wtask *next;
	uint64_t      id;
	ferry_task_fn fn;
	uint32_t      fn_len, args_len;
	char         *name;
	uint8_t      *args;
	uint8_t       data[];
};

struct req {
	uint32_t id;
	int      kind;
	uint64_t credit;
	uint64_t sent_ms;
};

struct wproc {
	const struct wrk_options *o;
	struct ferry_registry     reg;
	nng_socket                sock;
	int                       event_fd, signal_fd;
	nng_aio                  *rx;
	atomic_int                fatal; /* exit status requested by rx */
	uint32_t                  capacity;
	char                      name[160];
	char                      host[128];

	/* shared with executors, under lock */
	pthread_mutex_t     lock;
	pthread_cond_t      cv;
	struct wtask       *in_head, *in_tail;
	uint32_t            held;    /* in the inbox or running */
	uint32_t            running;
	struct proto_writer out;     /* packed result entries */
	uint32_t            out_n;
	int                 stopping;
	double              avg_us;  /* moving average of task run time */
	uint64_t            n_timed;
	pthread_t          *threads;
	int                 n_threads;

	/* I/O thread only */
	atomic_int          pipe_lost;
	struct req          reqs[MAX_REQS];
	uint32_t            next_req;
	uint64_t            granted;
	int                 poll_inflight, res_inflight;
	int                 registered;
	uint64_t            hello_deadline;
	uint64_t            hb_ms, hb_timeout_ms;
	uint64_t            last_reply_ms;
	size_t              max_msg;
	uint64_t            last_send_ms;
	uint64_t            worker_id;
	int                 draining;
	struct proto_writer msgw, spare;
	struct proto_decoder dec;
	uint64_t            tasks_run;
};

void
wrk_options_defaults(struct wrk_options *o)
{
	memset(o, 0, sizeof(*o));
	o->slots              = 1;
	o->prefetch           = 1024;
	o->connect_timeout_ms = 10000;
	o->drain_timeout_ms   = 10000;
	o->max_message_size   = 64u << 20;
	o->group              = "default";
}

/* ------------------------------------------------------- task API */

__attribute__((visibility("default"))) msgpack_packer *
ferry_task_packer(ferry_task *t)
{
	return &t->pk;
}

__attribute__((visibility("default"))) int
ferry_task_fail(ferry_task *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t->err, sizeof(t->err), fmt, ap);
	va_end(ap);
	t->failed = 1;
	return -1;
}

__attribute__((visibility("default"))) uint64_t
ferry_task_id(const ferry_task *t)
{
	return t->id;
}

__attribute__((visibility("default"))) const char *
ferry_task_name(const ferry_task *t)
{
	return t->name;
}

static void send_work_locked(struct wproc *w, int with_results);

/* ------------------------------------------------------- executors */

static void
wake_io(struct wproc *w)
{
	uint64_t one = 1;
	if (write(w->event_fd, &one, sizeof(one)) < 0) {
		/* the eventfd counter is saturated: it is readable anyway */
	}
}

/* Run one task and pack its result entry into buf. */
static void
run_task(struct wproc *w, struct wtask *t, struct ferry_task *ctx,
    msgpack_zone *zone, struct proto_writer *res)
{
	msgpack_object args;
	char           msg[1200];
	int            code = 0, rc;
	size_t         off  = 0;

	proto_writer_reset(res);
	msgpack_sbuffer_clear(&ctx->out);
	ctx->id     = t->id;
	ctx->name   = t->name;
	ctx->failed = 0;
	ctx->err[0] = '\0';
	msgpack_zone_clear(zone);

	if (t->fn == NULL) {
		code = FERRY_ENOFUNC;
		snprintf(msg, sizeof(msg),
		    "unknown function '%s' on worker %s: its task libraries "
		    "do not register it",
		    t->name, w->name);
		goto report;
	}
	if (t->args_len == 0) {
		args.type = MSGPACK_OBJECT_NIL;
	} else if (proto_check(t->args, t->args_len, msg, sizeof(msg)) != 0 ||
	           msgpack_unpack((const char *)t->args, t->args_len, &off,
	               zone, &args) != MSGPACK_UNPACK_SUCCESS) {
		char why[1024];
		util_strlcpy(why, msg, sizeof(why));
		code = FERRY_EINVAL;
		snprintf(msg, sizeof(msg),
		    "arguments of '%s' are not valid msgpack: %s", t->name,
		    why);
		goto report;
	}
	rc = t->fn(ctx, &args);
	if (rc != 0 || ctx->failed) {
		code = FERRY_ETASK;
		if (ctx->err[0] != '\0')
			util_strlcpy(msg, ctx->err, sizeof(msg));
		else
			snprintf(msg, sizeof(msg),
			    "task function '%s' returned %d", t->name, rc);
		goto report;
	}
	if (ctx->out.size == 0) {
		static const char nil = (char)0xc0;
		proto_pack_result(res, t->id, 0, &nil, 1);
		return;
	}
	if (proto_check(ctx->out.data, ctx->out.size, NULL, 0) != 0) {
		code = FERRY_ETASK;
		snprintf(msg, sizeof(msg),
		    "task '%s' packed a result that is not exactly one "
		    "msgpack value",
		    t->name);
		goto report;
	}
	if (ctx->out.size + 4096 > w->max_msg) {
		code = FERRY_ETOOBIG;
		snprintf(msg, sizeof(msg),
		    "result of '%s' is %zu bytes, over the message limit of "
		    "%zu",
		    t->name, ctx->out.size, w->max_msg);
		goto report;
	}
	proto_pack_result(res, t->id, 0, ctx->out.data, ctx->out.size);
	return;
report:
	proto_pack_result(res, t->id, code, msg, strlen(msg));
}

static void *
executor_main(void *arg)
{
	struct wproc       *w = arg;
	struct ferry_task   ctx;
	msgpack_zone        zone;
	struct proto_writer res;

	memset(&ctx, 0, sizeof(ctx));
	msgpack_sbuffer_init(&ctx.out);
	msgpack_packer_init(&ctx.pk, &ctx.out, msgpack_sbuffer_write);
	msgpack_zone_init(&zone, 4096);
	proto_writer_init(&res);

	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct wtask *t;
		int           wake;
		uint64_t      t0;
		double        dt;

		while (!w->stopping && w->in_head == NULL)
			pthread_cond_wait(&w->cv, &w->lock);
		if (w->stopping)
			break;
		t          = w->in_head;
		w->in_head = t->next;
		if (w->in_head == NULL)
			w->in_tail = NULL;
		w->running++;
		pthread_mutex_unlock(&w->lock);

		t0 = util_now_us();
		run_task(w, t, &ctx, &zone, &res);
		dt = (double)(util_now_us() - t0);
		free(t);

		pthread_mutex_lock(&w->lock);
		w->avg_us = w->n_timed++ == 0 ? dt : 0.9 * w->avg_us + 0.1 * dt;
		msgpack_sbuffer_write(&w->out.buf, res.buf.data, res.buf.size);
		w->out_n++;
		w->running--;
		w->held--;
		w->tasks_run++;
		/* report at once when no report is in flight; otherwise the
		 * results wait for its answer and leave together */
		wake = 0;
		if (w->registered && !w->res_inflight)
			send_work_locked(w, 1);
		else if (w->draining)
			wake = 1;
		if (wake) {
			pthread_mutex_unlock(&w->lock);
			wake_io(w);
			pthread_mutex_lock(&w->lock);
		}
	}
	pthread_mutex_unlock(&w->lock);
	proto_writer_fini(&res);
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_destroy(&ctx.out);
	return NULL;
}

/* ------------------------------------------------------- I/O thread */

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
	return cap - w->held - w->granted;
}

static struct req *
req_new(struct wproc *w, int kind, uint64_t credit)
{
	for (int i = 0; i < MAX_REQS; i++) {
		if (w->reqs[i].id == 0) {
			if (++w->next_req >= 0x7fffffff)
				w->next_req = 1;
			w->reqs[i].id      = w->next_req;
			w->reqs[i].kind    = kind;
			w->reqs[i].credit  = credit;
			w->reqs[i].sent_ms = util_now_ms();
			return &w->reqs[i];
		}
	}
	return NULL;
}

static int
send_req(struct wproc *w, struct req *r, struct proto_writer *pw)
{
	nng_msg *msg;
	int      rv;

	if ((rv = nng_msg_alloc(&msg, 0)) != 0 ||
	    (rv = nng_msg_header_append_u32(msg, r->id | 0x80000000u)) != 0 ||
	    (rv = nng_msg_append(msg, pw->buf.data, pw->buf.size)) != 0) {
		if (rv != NNG_ENOMEM)
			nng_msg_free(msg);
		log_error("cannot build a request: %s", nng_strerror(rv));
		r->id = 0;
		return -1;
	}
	if ((rv = nng_sendmsg(w->sock, msg, 0)) != 0) {
		nng_msg_free(msg);
		log_error("send to scheduler: %s", nng_strerror(rv));
		r->id = 0;
		return -1;
	}
	w->last_send_ms = util_now_ms();
	return 0;
}

/* Register (lock held). */
static void
send_hello_locked(struct wproc *w)
{
	struct req *r = req_new(w, REQ_HELLO, 0);
	if (r == NULL)
		return;
	proto_writer_reset(&w->msgw);
	proto_begin(&w->msgw, PROTO_HELLO, 9);
	proto_put_str(&w->msgw, "role", "worker");
	proto_put_str(&w->msgw, "name", w->name);
	proto_put_str(&w->msgw, "host", w->host);
	proto_put_str(&w->msgw, "group", w->o->group);
	proto_put_uint(&w->msgw, "pid", (uint64_t)getpid());
	proto_put_uint(&w->msgw, "session", 0);
	proto_put_uint(&w->msgw, "slots", (uint64_t)w->o->slots);
	proto_put_uint(&w->msgw, "capacity", w->capacity);
	proto_put_key(&w->msgw, "functions");
	msgpack_pack_array(&w->msgw.pk, (uint32_t)w->reg.n);
	for (size_t i = 0; i < w->reg.n; i++)
		proto_pack_str(&w->msgw, w->reg.fns[i].name,
		    strlen(w->reg.fns[i].name));
	send_req(w, r, &w->msgw);
	w->hello_deadline = util_now_ms() + w->o->connect_timeout_ms;
	w->last_reply_ms  = util_now_ms();
}

/* Send a work request (lock held); with_results takes the outbox along. */
static void
send_work_locked(struct wproc *w, int with_results)
{
	uint64_t    avail = 0;
	uint32_t    n     = 0;
	struct req *r;

	avail = credit_locked(w);
	if (with_results) {
		struct proto_writer tmp = w->out;
		w->out                  = w->spare;
		w->spare                = tmp;
		/* the packer points at its own buffer: re-aim both */
		msgpack_packer_init(&w->out.pk, &w->out.buf,
		    msgpack_sbuffer_write);
		msgpack_packer_init(&w->spare.pk, &w->spare.buf,
		    msgpack_sbuffer_write);
		n        = w->out_n;
		w->out_n = 0;
	}

	r = req_new(w, with_results ? REQ_RESULTS : REQ_POLL, avail);
	if (r == NULL)
		return;
	proto_writer_reset(&w->msgw);
	proto_begin(&w->msgw, PROTO_WORK, with_results ? 2 : 1);
	proto_put_uint(&w->msgw, "credit", avail);
	if (with_results) {
		proto_put_key(&w->msgw, "results");
		msgpack_pack_array(&w->msgw.pk, n);
		msgpack_sbuffer_write(
		    &w->msgw.buf, w->spare.buf.data, w->spare.buf.size);
		proto_writer_reset(&w->spare);
	}
	if (send_req(w, r, &w->msgw) != 0)
		return;
	w->granted += avail;
	if (with_results)
		w->res_inflight = 1;
	else
		w->poll_inflight = 1;
}

/* Copy the tasks of a message into a list (no lock needed). */
static uint32_t
build_tasks(struct wproc *w, const struct proto_msg *m, struct wtask **head,
    struct wtask **tail)
{
	uint32_t n = 0;

	*head = *tail = NULL;
	for (uint32_t i = 0; i < m->n_tasks; i++) {
		const struct proto_task *pt = &m->tasks[i];
		struct wtask            *t;

		t = malloc(sizeof(*t) + pt->fn_len + 1 + pt->args_len);
		if (t == NULL) {
			/* never answered: the scheduler re-queues it when
			 * this process dies or reconnects */
			log_error("out of memory receiving task %" PRIu64,
			    pt->id);
			continue;
		}
		t->next     = NULL;
		t->id       = pt->id;
		t->fn_len   = pt->fn_len;
		t->args_len = pt->args_len;
		t->name     = (char *)t->data;
		t->args     = t->data + pt->fn_len + 1;
		memcpy(t->name, pt->fn, pt->fn_len);
		t->name[pt->fn_len] = '\0';
		if (pt->args_len > 0)
			memcpy(t->args, pt->args, pt->args_len);
		t->fn = wrk_registry_find(&w->reg, pt->fn, pt->fn_len);
		if (*tail != NULL)
			(*tail)->next = t;
		else
			*head = t;
		*tail = t;
		n++;
	}
	return n;
}

/* Append a list to the inbox and wake executors (lock held). */
static void
inbox_append_locked(struct wproc *w, struct wtask *head, struct wtask *tail,
    uint32_t n)
{
	if (n == 0)
		return;
	if (w->in_tail != NULL)
		w->in_tail->next = head;
	else
		w->in_head = head;
	w->in_tail = tail;
	w->held += n;
	if (n == 1)
		pthread_cond_signal(&w->cv);
	else
		pthread_cond_broadcast(&w->cv);
}

static void
free_list(struct wtask *t)
{
	while (t != NULL) {
		struct wtask *next = t->next;
		free(t);
		t = next;
	}
}

/* Drop tasks not yet started (the scheduler re-queues them). */
static uint32_t
drop_inbox(struct wproc *w)
{
	struct wtask *t, *next;
	uint32_t      n = 0;
	pthread_mutex_lock(&w->lock);
	for (t = w->in_head; t != NULL; t = next) {
		next = t->next;
		free(t);
		n++;
	}
	w->in_head = w->in_tail = NULL;
	w->held -= n;
	pthread_mutex_unlock(&w->lock);
	return n;
}

/* Handle one reply from the scheduler (I/O thread). */
static int
handle_reply(struct wproc *w, nng_msg *msg)
{
	struct proto_msg m;
	struct req      *r = NULL;
	const uint8_t   *h;
	char             err[512];
	uint32_t         id, n_new = 0;
	int              rv, kind;
	struct wtask    *head = NULL, *tail = NULL;

	if (nng_msg_header_len(msg) < 4)
		return 0;
	h  = nng_msg_header(msg);
	id = (uint32_t)(h[0] & 0x7f) << 24 | (uint32_t)h[1] << 16 |
	    (uint32_t)h[2] << 8 | h[3];
	rv = proto_decode(&w->dec, nng_msg_body(msg), nng_msg_len(msg), &m,
	    err, sizeof(err));
	if (rv == 0 && m.type == PROTO_TASKS && m.n_tasks > 0)
		n_new = build_tasks(w, &m, &head, &tail);

	pthread_mutex_lock(&w->lock);
	w->last_reply_ms = util_now_ms();
	for (int i = 0; i < MAX_REQS; i++)
		if (w->reqs[i].id == id)
			r = &w->reqs[i];
	if (r == NULL) {
		pthread_mutex_unlock(&w->lock);
		free_list(head);
		return 0; /* a reply from before a reconnection */
	}
	kind  = r->kind;
	r->id = 0;
	if (kind == REQ_HELLO) {
		if (rv == 0 && m.type == PROTO_WELCOME) {
			w->registered = 1;
			w->worker_id  = m.id;
			w->hb_ms      = m.heartbeat_ms ? m.heartbeat_ms : 1000;
			if (m.heartbeat_timeout_ms > 0)
				w->hb_timeout_ms = m.heartbeat_timeout_ms;
			if (m.max_message_size >= 65536 &&
			    m.max_message_size < w->max_msg)
				w->max_msg = m.max_message_size;
		}
		pthread_mutex_unlock(&w->lock);
		if (rv != 0) {
			log_error("bad answer to hello: %s", err);
			return -1;
		}
		if (m.type == PROTO_ERROR) {
			log_error("scheduler refused registration: %s", m.msg);
			return -1;
		}
		if (m.type != PROTO_WELCOME) {
			log_error("unexpected %s in answer to hello",
			    proto_type_name(m.type));
			return -1;
		}
		log_info("registered with %s as worker %" PRIu64
		         " (%u slot(s), prefetch up to %d)",
		    w->o->connect, w->worker_id, w->o->slots, w->o->prefetch);
		return 0;
	}
	/* the credit this request asked for becomes held tasks in one step,
	 * so no other request can ask for it twice */
	if (w->granted >= r->credit)
		w->granted -= r->credit;
	else
		w->granted = 0;
	if (n_new > 0 && !w->draining) {
		inbox_append_locked(w, head, tail, n_new);
		head = NULL;
	}
	if (kind == REQ_POLL)
		w->poll_inflight = 0;
	else
		w->res_inflight = 0;
	if (rv == 0 && m.type == PROTO_ERROR && m.code == FERRY_ESTATE) {
		/* it does not know us (it restarted?): register again */
		w->registered = 0;
		send_hello_locked(w);
	}
	pthread_mutex_unlock(&w->lock);
	free_list(head); /* only if draining */
	if (rv != 0) {
		log_error("bad message from the scheduler: %s", err);
		return 0;
	}
	if (m.type == PROTO_ERROR) {
		log_warn("scheduler: %s", m.msg);
		return 0;
	}
	if (m.type != PROTO_TASKS) {
		log_warn("unexpected %s from the scheduler",
		    proto_type_name(m.type));
		return 0;
	}
	return 0;
}

/* Send what is due (lock held): results, a poll for more, a heartbeat. */
static void
pump_locked(struct wproc *w)
{
	if (!w->registered)
		return;
	if (w->out_n > 0 && !w->res_inflight)
		send_work_locked(w, 1);
	if (!w->poll_inflight && !w->draining && credit_locked(w) > 0)
		send_work_locked(w, 0);
	if (!w->poll_inflight && !w->res_inflight &&
	    util_now_ms() - w->last_send_ms >= w->hb_ms)
		send_work_locked(w, 0); /* heartbeat */
}

/* Replies arrive here, on an NNG thread, one at a time. */
static void
rx_cb(void *arg)
{
	struct wproc *w = arg;
	nng_msg      *msg;
	int           rv = nng_aio_result(w->rx);

	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
		return;
	if (rv == 0) {
		msg = nng_aio_get_msg(w->rx);
		rv  = handle_reply(w, msg);
		nng_msg_free(msg);
		if (rv != 0) {
			atomic_store(&w->fatal, 2);
			wake_io(w);
			return;
		}
		pthread_mutex_lock(&w->lock);
		pump_locked(w);
		pthread_mutex_unlock(&w->lock);
	}
	nng_recv_aio(w->sock, w->rx);
}

static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct wproc *w = arg;
	(void)p;
	(void)ev;
	atomic_store(&w->pipe_lost, 1);
	wake_io(w);
}

static int
io_loop(struct wproc *w)
{
	uint64_t drain_deadline = 0;

	pthread_mutex_lock(&w->lock);
	send_hello_locked(w);
	pthread_mutex_unlock(&w->lock);
	for (;;) {
		struct pollfd pfd[2];
		uint64_t      now = util_now_ms();
		uint32_t      out_n, running;
		int           inflight, registered;

		pthread_mutex_lock(&w->lock);
		registered = w->registered;
		pthread_mutex_unlock(&w->lock);
		if (!registered && now >= w->hello_deadline) {
			log_error("no answer from the scheduler at %s within "
			          "%u ms",
			    w->o->connect, w->o->connect_timeout_ms);
			return 3;
		}
		if (w->o->parent_pid > 0 && getppid() != w->o->parent_pid) {
			log_warn("supervisor is gone: exiting");
			return 0;
		}
		if (atomic_load(&w->fatal) != 0)
			return atomic_load(&w->fatal);
		pthread_mutex_lock(&w->lock);
		pump_locked(w);
		if (w->registered && (w->poll_inflight || w->res_inflight) &&
		    util_now_ms() - w->last_reply_ms >
		        w->hb_timeout_ms + w->hb_ms) {
			uint64_t silent = util_now_ms() - w->last_reply_ms;
			pthread_mutex_unlock(&w->lock);
			log_error("no answer from the scheduler for %" PRIu64
			          " ms: giving up on this connection",
			    silent);
			return 3;
		}
		out_n    = w->out_n;
		running  = w->running;
		inflight = w->res_inflight;
		pthread_mutex_unlock(&w->lock);
		if (w->draining) {
			if (running == 0 && out_n == 0 && !inflight) {
				log_info("drained: %" PRIu64 " task(s) run",
				    w->tasks_run);
				return 0;
			}
			if (now >= drain_deadline) {
				log_warn("drain timeout: %u task(s) still "
				         "running",
				    running);
				return 0;
			}
		}

		pfd[0].fd     = w->event_fd;
		pfd[0].events = POLLIN;
		pfd[1].fd     = w->signal_fd;
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, 100) < 0 && errno != EINTR) {
			log_error("poll: %s", strerror(errno));
			return 1;
		}
		if (pfd[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(w->signal_fd, &si, sizeof(si)) > 0 &&
			    !w->draining) {
				uint32_t n = drop_inbox(w);
				log_info("signal %u: draining (%u queued "
				         "task(s) handed back)",
				    si.ssi_signo, n);
				pthread_mutex_lock(&w->lock);
				w->draining = 1;
				pthread_mutex_unlock(&w->lock);
				drain_deadline = util_now_ms() +
				    w->o->drain_timeout_ms;
			}
		}
		if (pfd[0].revents & POLLIN) {
			uint64_t v;
			if (read(w->event_fd, &v, sizeof(v)) < 0) {
				/* nothing */
			}
		}
		if (atomic_exchange(&w->pipe_lost, 0)) {
			uint32_t n = drop_inbox(w);
			log_warn("connection to the scheduler lost; %u queued "
			         "task(s) dropped (the scheduler re-queues "
			         "them); registering again",
			    n);
			pthread_mutex_lock(&w->lock);
			memset(w->reqs, 0, sizeof(w->reqs));
			w->granted       = 0;
			w->poll_inflight = w->res_inflight = 0;
			w->registered    = 0;
			proto_writer_reset(&w->out);
			w->out_n = 0;
			if (!w->draining)
				send_hello_locked(w);
			pthread_mutex_unlock(&w->lock);
			if (w->draining)
				return 0;
		}
	}
}

int
wrk_process_run(const struct wrk_options *o)
{
	struct wproc w;
	sigset_t     mask;
	int          rv, rc = 0;

	memset(&w, 0, sizeof(w));
	w.o         = o;
	w.event_fd  = w.signal_fd = -1;
	w.capacity  = (uint32_t)(o->slots + o->prefetch);
	w.hb_ms     = 1000;
	w.hb_timeout_ms = 5000;
	w.max_msg   = o->max_message_size;
	wrk_registry_init(&w.reg);
	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cv, NULL);
	proto_writer_init(&w.out);
	proto_writer_init(&w.spare);
	proto_writer_init(&w.msgw);
	proto_decoder_init(&w.dec);
	if (gethostname(w.host, sizeof(w.host) - 1) != 0)
		strcpy(w.host, "localhost");
	if (o->name != NULL)
		util_strlcpy(w.name, o->name, sizeof(w.name));
	else
		snprintf(w.name, sizeof(w.name), "%s-%d", w.host, (int)getpid());

	if (o->parent_pid > 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != o->parent_pid) {
			rc = 0; /* the supervisor died while we started */
			goto out;
		}
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((w.signal_fd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0 ||
	    (w.event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		log_error("signalfd/eventfd: %s", strerror(errno));
		rc = 1;
		goto out;
	}

	for (size_t i = 0; i < o->n_libraries; i++) {
		char path[4096], err[1024];
		if (wrk_library_resolve(o->libraries[i], o->library_dir, path,
		        sizeof(path), err, sizeof(err)) != 0 ||
		    wrk_library_load(&w.reg, path, err, sizeof(err)) != 0) {
			log_error("%s", err);
			rc = 2;
			goto out;
		}
	}
	if (w.reg.n == 0)
		log_warn("no task functions loaded: this worker can run "
		         "nothing (give it --library)");

	if ((rv = nng_req0_open_raw(&w.sock)) != 0 ||
	    (rv = util_sock_setup(w.sock, o->max_message_size)) != 0 ||
	    (rv = nng_pipe_notify(w.sock, NNG_PIPE_EV_REM_POST, pipe_cb,
	         &w)) != 0 ||
	    (rv = nng_aio_alloc(&w.rx, rx_cb, &w)) != 0) {
		log_error("cannot open a socket: %s", nng_strerror(rv));
		rc = 1;
		goto out;
	}
	if ((rv = nng_dial(w.sock, o->connect, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		log_error("dial %s: %s", o->connect, nng_strerror(rv));
		rc = 2;
		goto out;
	}

	w.n_threads = o->slots;
	if ((w.threads = calloc((size_t)w.n_threads, sizeof(pthread_t))) ==
	    NULL) {
		rc = 1;
		goto out;
	}
	for (int i = 0; i < w.n_threads; i++) {
		if (pthread_create(&w.threads[i], NULL, executor_main, &w) !=
		    0) {
			log_error("cannot start executor thread: %s",
			    strerror(errno));
			w.n_threads = i;
			rc          = 1;
			goto out;
		}
	}
	nng_recv_aio(w.sock, w.rx);
	rc = io_loop(&w);
	nng_aio_stop(w.rx);
out:
	if (w.threads != NULL) {
		drop_inbox(&w);
		pthread_mutex_lock(&w.lock);
		if (w.running > 0) {
			/* a task is still running (drain timeout): its
			 * thread cannot be stopped, so leave now */
			pthread_mutex_unlock(&w.lock);
			nng_close(w.sock);
			_exit(rc);
		}
		pthread_mutex_unlock(&w.lock);
		pthread_mutex_lock(&w.lock);
		w.stopping = 1;
		pthread_cond_broadcast(&w.cv);
		pthread_mutex_unlock(&w.lock);
		for (int i = 0; i < w.n_threads; i++)
			pthread_join(w.threads[i], NULL);
		free(w.threads);
	}
	if (w.rx != NULL)
		nng_aio_stop(w.rx);
	if (w.sock.id != 0)
		nng_close(w.sock);
	nng_aio_free(w.rx);
	drop_inbox(&w);
	if (w.signal_fd >= 0)
		close(w.signal_fd);
	if (w.event_fd >= 0)
		close(w.event_fd);
	proto_writer_fini(&w.out);
	proto_writer_fini(&w.spare);
	proto_writer_fini(&w.msgw);
	proto_decoder_fini(&w.dec);
	wrk_registry_fini(&w.reg);
	pthread_mutex_destroy(&w.lock);
	pthread_cond_destroy(&w.cv);
	return rc;
}
