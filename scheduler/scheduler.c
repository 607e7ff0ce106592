/*
 * scheduler.c - the scheduler's event loop.
 *
 * One logical loop under one lock.  A REP socket receives every request
 * from workers and clients through a pool of contexts; each request is
 * handled on the NNG thread that delivered it, and answered on its context
 * now or later (long polls are "parked" with their context).  The loop
 * thread waits on a signalfd and an eventfd (woken by NNG's pipe callbacks
 * and by timers that come due sooner) and runs due timers from a heap.
 *
 * Dispatch flows by credit: a worker's "work" request says how many more
 * tasks it can hold; the scheduler answers with at most that many, several
 * per message.  A "work" request with no results and nothing to hand out is
 * parked until tasks arrive or a heartbeat interval passes.
 */
#include "scheduler.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "authlimit.h"
#include "dispatch.h"
#include "ferry/ferry.h"
#include "log.h"
#include "proto.h"
#include "security.h"
#include "util.h"

#define MAX_FN_LEN 255
#define MSGS_PER_TURN 256
#define SCHED_MAX_BATCH 4096 /* tasks per message to a worker */

enum timer_kind {
	TM_PARK_WORKER = 1, /* a parked work request is due an answer */
	TM_PARK_FETCH,      /* a parked fetch is due an answer */
	TM_HEARTBEAT,       /* check that a worker was heard from */
	TM_SESSION,         /* expire a disconnected client's session */
	TM_RETRY,           /* a delayed task's backoff is over */
	TM_GHOST,           /* a lost worker's supervisor did not report */
	TM_PARK_WATCH,      /* a parked supervisor watch is due an answer */
	TM_ACK,             /* a held-back submit answer is due */
	TM_FN_WAIT,         /* tasks waited too long for their function */
	TM_AUTH_REFUSE,     /* a slowed refusal is due (id: the refusal) */
	TM_AUTH_SUMMARY,    /* failed authentications to summarise */
};

#define MAX_UNKNOWN_FNS 1024 /* names no worker registered, at once */

#define ACK_HOLD_MS 1 /* longest a submit's answer is held back */

#define MAX_WHY 1024      /* reasons kept per task */
#define RECENT_FAILURES 16 /* failed and dead tasks shown in status */

struct rctx;

struct parked {
	struct rctx *rc; /* the request's context, held until answered */
	uint32_t gen;   /* bumped whenever it is answered */
	uint64_t credit;
	int      active;
};

struct worker;
struct session;

struct task {
	uint64_t        id;  /* scheduler's id */
	uint64_t        tag; /* client's id within its session */
	struct session *sess;
	struct worker  *worker;
	struct fnreg   *fnr;  /* its function (holds a count in tasks) */
	struct task    *wprev, *wnext; /* in worker->tasks */
	uint32_t        fn_len, args_len;
	uint8_t         state;
	uint8_t         n_objs;
	uint8_t         retry_errors;
	uint16_t        attempts; /* runs known to have started */
	uint16_t        failures; /* failed runs that count */
	uint16_t        kills;    /* worker processes it killed */
	uint32_t        retries, backoff_ms, backoff_max_ms, timeout_ms;
	uint64_t        result_from; /* worker whose result came last */
	char           *why;      /* reasons of failed runs, or NULL */
	char           *fn;   /* points into data[] */
	uint8_t        *args; /* points into data[] */
	uint64_t        objs[PROTO_MAX_TASK_OBJS]; /* locality keys */
	uint8_t         data[];
};

struct result {
	struct result *next;
	uint64_t       seq;
	uint64_t       tag;
	int32_t        code;
	uint32_t       len;
	uint32_t       attempts;
	uint8_t        data[];
};

/*
 * A task function by name: registered by workers (refs), or only named by
 * submitted tasks so far.  Tasks go only to workers that registered their
 * function; those of a function no connected worker runs wait (counted in
 * n_unserved), for at most function_wait_ms (unknown_function_wait_ms for
 * a function no worker ever registered), and then fail.
 */
struct fnreg {
	struct fnreg *next;        /* hash collisions */
	uint64_t      hash;
	uint32_t      idx;         /* its index in dispatch, 1, 2, ... */
	uint32_t      refs;        /* live workers that registered it */
	uint64_t      queued;      /* its tasks in state queued */
	uint64_t      tasks;       /* live tasks that name it */
	uint64_t      unserved_ms; /* since when no worker runs it */
	uint32_t      wait_gen;    /* of its pending wait timer */
	uint8_t       ever;        /* some worker registered it this run */
	uint8_t       unavailable; /* waited too long: submits refused */
	char          name[];
};

struct worker {
	uint64_t       id;
	uint32_t       pipe;
	char           name[128], host[128], group[64];
	uint64_t       pid;
	uint32_t       slots, capacity;
	struct fnreg **functions; /* each holds a reference */
	uint32_t       n_functions;
	struct task   *tasks; /* assigned, doubly linked */
	uint32_t       held;
	uint64_t       done, failed;
	uint64_t       last_seen_ms;
	uint64_t       connected_ms;
	struct parked  park;
	struct worker *wait_prev, *wait_next; /* in waiting list */
	int            waiting;
	uint64_t       local;  /* tasks sent because it held their objects */
	struct proto_cache cache;
	uint64_t       sup_token; /* its supervisor's token, 0: none */
	int            ghost;     /* lost; tasks held until its report */
};

/* A supervisor (`ferry worker`): reports how its processes end and takes
 * orders to kill one that runs a cancelled task. */
struct supervisor {
	uint64_t           token;
	uint32_t           pipe;
	char               name[128], host[128];
	uint64_t           pid;
	struct parked      park; /* its watch */
	struct proto_kill *orders;
	size_t             n_orders, cap_orders;
	uint64_t           reports;
	uint64_t           reported[64]; /* pids reported lately */
	uint32_t           n_reported;
};

struct recent {
	uint64_t id;
	uint8_t  state;
	uint16_t attempts;
	char     fn[64];
	char     reason[256];
};

struct session {
	uint64_t        id;
	uint32_t        pipe;   /* 0 while disconnected */
	struct idmap    tags;   /* tag -> task (not yet finished) */
	struct idmap    done;   /* tag -> result (finished, not acked) */
	struct result  *rhead, *rtail;
	uint64_t        next_seq;
	uint64_t        sent_seq; /* highest seq sent in a results reply */
	uint64_t        n_results;
	struct parked   park;
	uint64_t        detached_ms;
	uint32_t        detach_gen;
	struct session *dirty_next;
	int             dirty;
	uint64_t        submitted;
	uint64_t        max_tag; /* highest task id it submitted */
	struct rctx    *ack_rc;   /* a submit whose answer is held back */
	uint64_t        ack_accepted;
	uint32_t        ack_gen;
	struct session *ack_prev, *ack_next; /* in the held-answers list */
};

enum peer_kind { PEER_WORKER = 1, PEER_CLIENT, PEER_SUPERVISOR };

/*
 * One request context: an NNG REP context with its own receive and send
 * operations.  It receives a request, is held while the scheduler answers
 * it at once or parks it, sends the reply, and then rests in the idle list
 * until it is the one to receive again.
 */
struct rctx {
	struct sched *s;
	nng_ctx       ctx;
	nng_aio      *rx, *tx;
	struct rctx  *all_next;  /* every context, for shutdown */
	struct rctx  *idle_next; /* in the idle list */
};

struct peer {
	int   kind;
	void *obj;
};

struct sched {
	const struct sched_config *cfg;
	nng_socket                 sock;
	int                        event_fd, signal_fd;

	/* the event loop: requests are handled on NNG's threads as they
	 * arrive, timers, closed pipes and signals on the loop thread, all
	 * under this lock, one at a time */
	pthread_mutex_t            lock;
	uint64_t                   sleep_until; /* the loop thread's wake-up */
	atomic_int                 busy;    /* requests being handled */
	atomic_int                 closing;
	pthread_mutex_t            pool_lock; /* the two lists below */
	struct rctx               *ctxs, *idle;

	pthread_mutex_t            ev_lock;
	uint32_t                  *gone_pipes;
	size_t                     n_gone, cap_gone;

	struct idmap     tasks;    /* id -> task */
	struct disp     *disp;     /* the queue and its policy */
	uint64_t         n_queued;
	uint64_t         next_task_id;
	struct idmap     workers;  /* id -> worker */
	uint64_t         next_worker_id;
	uint32_t         n_workers;
	struct worker   *wait_head, *wait_tail;
	struct idmap     sessions; /* id -> session */
	uint32_t         n_clients;
	struct idmap     peers;    /* pipe id -> peer */
	struct idmap     fns;      /* hash(name) -> fnreg chain */
	struct fnreg   **fn_by_idx; /* idx -> fnreg (NULL: free) */
	size_t           n_fn_idx, cap_fn_idx;
	uint32_t        *fn_free;   /* indexes free for reuse */
	size_t           n_fn_free, cap_fn_free;
	uint64_t         n_unknown_fns; /* never registered, still named */
	uint64_t         n_unserved; /* queued tasks no connected worker runs */
	uint32_t         fn_wait_gen;
	struct idmap     ghosts;   /* id -> lost worker awaiting a report */
	struct idmap     sups;     /* token -> supervisor */
	uint32_t         n_sups;
	uint64_t         result_bytes;
	struct recent    recent[RECENT_FAILURES];
	uint32_t         n_recent;
	struct timerheap timers;
	struct session  *dirty;
	struct session  *acks; /* sessions holding back a submit's answer */
	uint64_t         results_stored;

	/* counters */
	uint64_t submitted, done, failed, cancelled, requeued, late_results,
	    rejected, bad_messages;
	uint64_t retried, dead, kills, timeouts, memory_kills, reports,
	    n_delayed;
	uint64_t auth_failures;
	struct authlimit *auth; /* failed authentications per host */
	int      auth_timer;    /* a summary timer is pending */
	char     token[SEC_TOKEN_MAX + 1]; /* "" : no token required */
	uint64_t start_ms;

	struct proto_decoder dec;
	struct proto_writer  w;
	struct proto_writer  rej;
	uint64_t             pick[SCHED_MAX_BATCH];
	uint64_t             local; /* tasks sent to a holder of their objects */
	int                  stop;
	int                  draining;  /* a stop signal came: finishing */
	uint64_t             drain_until;
	uint64_t             n_assigned; /* tasks held by workers and ghosts */
	int                  untrimmed; /* work since memory was returned */
};

static const char *state_names[TASK_STATE_MAX] = {
	"queued", "assigned", "done", "failed", "cancelled", "delayed", "dead"
};

const char *
sched_state_name(int state)
{
	if (state < 0 || state >= TASK_STATE_MAX)
		return "?";
	return state_names[state];
}

int
sched_transition_ok(int from, int to)
{
	switch (from) {
	case TASK_QUEUED:
		return to == TASK_ASSIGNED || to == TASK_CANCELLED ||
		    to == TASK_FAILED || to == TASK_DEAD;
	case TASK_ASSIGNED:
		return to == TASK_QUEUED || to == TASK_DONE ||
		    to == TASK_FAILED || to == TASK_CANCELLED ||
		    to == TASK_DELAYED || to == TASK_DEAD;
	case TASK_DELAYED:
		return to == TASK_QUEUED || to == TASK_CANCELLED ||
		    to == TASK_FAILED || to == TASK_DEAD;
	default:
		return 0; /* done, failed, cancelled and dead are final */
	}
}

void
sched_config_defaults(struct sched_config *c)
{
	memset(c, 0, sizeof(*c));
	c->heartbeat_interval_ms = 1000;
	c->heartbeat_timeout_ms  = 5000;
	c->max_message_size      = 64u << 20;
	c->max_queue             = 1000000;
	c->max_results           = 1000000;
	c->result_ttl_ms         = 600000;
	c->max_result_bytes      = (size_t)1 << 30;
	c->task_retries          = 3;
	c->task_backoff_ms       = 100;
	c->task_backoff_max_ms   = 10000;
	c->task_timeout_ms       = 0;
	c->task_retry_errors     = 0;
	c->quarantine_after      = 3;
	c->report_grace_ms       = 500;
	c->drain_timeout_ms      = 30000;
	c->function_wait_ms      = 0;
	c->unknown_function_wait_ms = 30000;
}

/* ------------------------------------------------------------ helpers */

static uint64_t
fnv64(const char *s, size_t n)
{
	return util_hash_bytes(s, n) | 1; /* idmap keys must be non-zero */
}

static struct fnreg *
fn_find(struct sched *s, const char *name, size_t n)
{
	struct fnreg *f = idmap_get(&s->fns, fnv64(name, n));
	for (; f != NULL; f = f->next)
		if (strlen(f->name) == n && memcmp(f->name, name, n) == 0)
			return f;
	return NULL;
}

static void timer_add(struct sched *s, uint64_t when, int kind, uint64_t id,
    uint32_t gen);

/* The entry for a function name (without NUL), made if need be (refs 0,
 * not served).  Returns NULL when memory runs out. */
static struct fnreg *
fn_get(struct sched *s, const char *name, size_t n)
{
	uint64_t      h = fnv64(name, n);
	struct fnreg *f = fn_find(s, name, n);
	uint32_t      idx;

	if (f != NULL)
		return f;
	if (s->n_fn_free == 0 &&
	    util_grow(&s->fn_by_idx, &s->cap_fn_idx, s->n_fn_idx + 1,
	        sizeof(*s->fn_by_idx), 64) != 0)
		return NULL;
	if ((f = calloc(1, sizeof(*f) + n + 1)) == NULL)
		return NULL;
	memcpy(f->name, name, n);
	f->hash = h;
	f->next = idmap_get(&s->fns, h);
	if (idmap_put(&s->fns, h, f) != 0) {
		free(f);
		return NULL;
	}
	/* index 0 means "any worker": ours start at 1 */
	idx = s->n_fn_free > 0 ? s->fn_free[--s->n_fn_free]
	                       : (uint32_t)++s->n_fn_idx;
	f->idx            = idx;
	s->fn_by_idx[idx] = f;
	f->unserved_ms    = util_now_ms();
	s->n_unknown_fns++;
	return f;
}

/* Forget an entry that no worker ever registered and no task names. */
static void
fn_drop(struct sched *s, struct fnreg *f)
{
	struct fnreg *head = idmap_get(&s->fns, f->hash), **pp;

	if (f->ever || f->refs > 0 || f->tasks > 0)
		return;
	for (pp = &head; *pp != NULL && *pp != f; pp = &(*pp)->next)
		;
	if (*pp == NULL)
		return;
	*pp = f->next;
	if (head != NULL)
		(void)idmap_put(&s->fns, f->hash, head); /* replaces: no
		                                          * allocation */
	else
		idmap_del(&s->fns, f->hash);
	s->fn_by_idx[f->idx] = NULL;
	if (util_grow(&s->fn_free, &s->cap_fn_free, s->n_fn_free,
	        sizeof(*s->fn_free), 16) == 0)
		s->fn_free[s->n_fn_free++] = f->idx;
	s->n_unknown_fns--;
	free(f);
}

/* Start the clock on tasks waiting for f, which no worker runs now. */
static void
fn_wait_start(struct sched *s, struct fnreg *f, uint32_t wait_ms)
{
	f->unserved_ms = util_now_ms();
	if (wait_ms == 0)
		return; /* they wait as long as it takes */
	f->wait_gen = ++s->fn_wait_gen;
	timer_add(s, f->unserved_ms + wait_ms, TM_FN_WAIT, f->idx, f->wait_gen);
}

/* A worker registers name: returns its entry with a reference, or NULL
 * when memory runs out. */
static struct fnreg *
fn_ref(struct sched *s, const char *name)
{
	struct fnreg *f = fn_get(s, name, strlen(name));

	if (f == NULL)
		return NULL;
	if (f->refs++ == 0) {
		/* its waiting tasks can go now */
		s->n_unserved -= f->queued;
		f->unserved_ms = 0;
		f->unavailable = 0;
		f->wait_gen    = 0;
	}
	if (!f->ever) {
		f->ever = 1;
		s->n_unknown_fns--;
	}
	return f;
}

/* A worker that registered f is gone.  Entries of registered functions
 * stay (with refs 0): a name is not re-hashed per worker restart, and
 * their number is bounded by the functions ever registered. */
static void
fn_unref(struct sched *s, struct fnreg *f)
{
	if (f == NULL || f->refs == 0 || --f->refs > 0)
		return;
	s->n_unserved += f->queued;
	fn_wait_start(s, f, s->cfg->function_wait_ms);
}

/* A task of f enters (delta 1) or leaves (-1) the queued state. */
static void
fn_queued(struct sched *s, struct fnreg *f, int delta)
{
	f->queued += (uint64_t)(int64_t)delta;
	if (f->refs == 0)
		s->n_unserved += (uint64_t)(int64_t)delta;
}

static void
wake_loop(struct sched *s)
{
	uint64_t one = 1;
	if (write(s->event_fd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: readable anyway */
	}
}

static void
timer_add(struct sched *s, uint64_t when, int kind, uint64_t id, uint32_t gen)
{
	struct timer t = { when, id, (uint32_t)kind, gen };
	if (timerheap_push(&s->timers, t) != 0)
		log_error("out of memory adding a timer");
	else if (when < s->sleep_until)
		wake_loop(s); /* due before the loop thread would look */
}

/* A timer that does not wake the loop thread: it runs at the next
 * request or turn of the loop after it is due. */
static void
timer_add_lazy(struct sched *s, uint64_t when, int kind, uint64_t id,
    uint32_t gen)
{
	struct timer t = { when, id, (uint32_t)kind, gen };
	if (timerheap_push(&s->timers, t) != 0)
		log_error("out of memory adding a timer");
}

/* ------------------------------------------------- request contexts */

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
static void
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
static void
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
static void
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

static void
reply_error(struct sched *s, struct rctx *rc, int code,
    const char *text)
{
	proto_writer_reset(&s->w);
	proto_write_error(&s->w, code, text);
	reply(s, rc);
}

/* Start a welcome for id in the writer: the fields every peer gets, and
 * room for extra more that the caller packs. */
static void
welcome_begin(struct sched *s, uint64_t id, uint32_t extra)
{
	proto_writer_reset(&s->w);
	proto_begin(&s->w, PROTO_WELCOME, 4 + extra);
	proto_put_uint(&s->w, "id", id);
	proto_put_uint(&s->w, "heartbeat_ms", s->cfg->heartbeat_interval_ms);
	proto_put_uint(&s->w, "heartbeat_timeout_ms",
	    s->cfg->heartbeat_timeout_ms);
	proto_put_uint(&s->w, "max_message_size", s->cfg->max_message_size);
}

static void flush_dirty(struct sched *s);
static void dispatch(struct sched *s);

/* ------------------------------------------------------ state machine */

/*
 * The one place a task's state changes.  Every transition is checked
 * against the life cycle and logged at debug level with the task, the
 * worker and the reason.
 */
static void
task_set_state(struct sched *s, struct task *t, int to, const char *reason)
{
	if (!sched_transition_ok(t->state, to)) {
		log_error("task %" PRIu64 ": illegal transition %s -> %s (%s)",
		    t->id, sched_state_name(t->state), sched_state_name(to),
		    reason);
		return;
	}
	log_debug("task %" PRIu64 " (%.*s, client %" PRIx64 ":%" PRIu64
	          "): %s -> %s, worker %" PRIu64 ", %s",
	    t->id, (int)t->fn_len, t->fn, t->sess ? t->sess->id : 0, t->tag,
	    sched_state_name(t->state), sched_state_name(to),
	    t->worker ? t->worker->id : 0, reason);

	/* leave the old state */
	if (t->state == TASK_QUEUED) {
		s->n_queued--;
		fn_queued(s, t->fnr, -1);
		disp_remove(s->disp, t->id); /* no-op if dispatch took it */
	} else if (t->state == TASK_DELAYED) {
		s->n_delayed--;
	} else if (t->state == TASK_ASSIGNED) {
		struct worker *w = t->worker;
		if (t->wprev != NULL)
			t->wprev->wnext = t->wnext;
		else
			w->tasks = t->wnext;
		if (t->wnext != NULL)
			t->wnext->wprev = t->wprev;
		t->wprev = t->wnext = NULL;
		w->held--;
		s->n_assigned--;
		if (to != TASK_QUEUED)
			t->worker = NULL;
	}
	t->state = (uint8_t)to;
	switch (to) {
	case TASK_QUEUED:
		t->worker = NULL;
		s->n_queued++;
		fn_queued(s, t->fnr, 1);
		/* a task taken back from a lost worker, or back from its
		 * retry backoff, goes first: it has waited longest, and a
		 * retry must not wait behind the whole queue again */
		if (disp_enqueue(s->disp, t->id, t->fnr->idx, t->objs,
		        t->n_objs, 1) != 0)
			log_error("task %" PRIu64 ": out of memory re-queueing",
			    t->id);
		break;
	case TASK_ASSIGNED:
		t->wprev = NULL;
		t->wnext = t->worker->tasks;
		if (t->wnext != NULL)
			t->wnext->wprev = t;
		t->worker->tasks = t;
		t->worker->held++;
		s->n_assigned++;
		break;
	case TASK_DELAYED:
		s->n_delayed++;
		break;
	default:
		break;
	}
}

static void
session_mark_dirty(struct sched *s, struct session *se)
{
	if (!se->dirty) {
		se->dirty      = 1;
		se->dirty_next = s->dirty;
		s->dirty       = se;
	}
}

static void
task_free(struct sched *s, struct task *t)
{
	if (t->fnr != NULL && --t->fnr->tasks == 0)
		fn_drop(s, t->fnr); /* a name no worker ever had */
	free(t->why);
	free(t);
}

/* Record a finished task's outcome for its client and free the task. */
static void
task_finish(struct sched *s, struct task *t, int to, int32_t code,
    const void *data, size_t len, const char *reason)
{
	struct session *se = t->sess;
	struct result  *r;

	task_set_state(s, t, to, reason);
	if (to == TASK_DONE)
		s->done++;
	else if (to == TASK_CANCELLED)
		s->cancelled++;
	else if (to == TASK_DEAD)
		s->dead++;
	else
		s->failed++;
	if (to == TASK_FAILED || to == TASK_DEAD) {
		struct recent *rc = &s->recent[s->n_recent++ % RECENT_FAILURES];
		rc->id       = t->id;
		rc->state    = (uint8_t)to;
		rc->attempts = t->attempts;
		snprintf(rc->fn, sizeof(rc->fn), "%.*s", (int)t->fn_len, t->fn);
		snprintf(rc->reason, sizeof(rc->reason), "%.*s",
		    (int)(len < 255 ? len : 255), (const char *)data);
	}
	idmap_del(&s->tasks, t->id);
	if (se != NULL) {
		idmap_del(&se->tags, t->tag);
		if ((r = malloc(sizeof(*r) + len)) == NULL) {
			log_error("task %" PRIu64 ": out of memory storing "
			          "its result",
			    t->id);
		} else {
			r->next = NULL;
			r->seq  = ++se->next_seq;
			r->tag  = t->tag;
			r->code = code;
			r->len  = (uint32_t)len;
			r->attempts = t->attempts;
			if (len > 0)
				memcpy(r->data, data, len);
			if (se->rtail != NULL)
				se->rtail->next = r;
			else
				se->rhead = r;
			se->rtail = r;
			se->n_results++;
			if (idmap_put(&se->done, r->tag, r) != 0)
				log_error("out of memory indexing a result");
			s->results_stored++;
			s->result_bytes += len;
			session_mark_dirty(s, se);
		}
	}
	task_free(s, t);
}

/* Whether undelivered results fill their store: dispatch holds back until
 * clients fetch (or their sessions expire). */
static int
results_full(const struct sched *s)
{
	return s->results_stored >= s->cfg->max_results ||
	    s->result_bytes >= s->cfg->max_result_bytes;
}

/*
 * A run of t on worker (a registration id) is known to have started: its
 * result came, or a supervisor reported the process died while running
 * it.  attempts counts only such evidence, so a task handed to a process
 * that died before starting it (it was only prefetched) is not counted,
 * however late that process's report comes.
 */
static void
task_ran(struct task *t, uint64_t worker)
{
	if (t->attempts < UINT16_MAX)
		t->attempts++;
	t->result_from = worker;
}

/* Note why a run of t failed (kept for its final error message). */
static void
task_note(struct task *t, const char *why, size_t len)
{
	size_t have = t->why != NULL ? strlen(t->why) : 0;
	char  *p;

	if (have + 2 >= MAX_WHY)
		return;
	if (len > MAX_WHY - have - 3)
		len = MAX_WHY - have - 3;
	if ((p = realloc(t->why, have + len + 3)) == NULL)
		return;
	t->why = p;
	if (have > 0) {
		memcpy(p + have, "; ", 2);
		have += 2;
	}
	memcpy(p + have, why, len);
	p[have + len] = '\0';
}

/* The delay before retry n (1, 2, ...): doubling from backoff_ms, capped,
 * scaled by a random factor in [0.5, 1] so that tasks that failed together
 * do not all come back at once. */
uint64_t
sched_backoff_ms(uint32_t base, uint32_t cap, uint32_t n, uint32_t rnd16)
{
	uint64_t d = base;
	for (uint32_t i = 1; i < n && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	return d / 2 + (d - d / 2) * (uint64_t)(rnd16 & 0xffff) / 0xffff;
}

int
sched_verdict(uint32_t kills, uint32_t failures, uint32_t retries,
    uint32_t quarantine_after, int killed, int retryable)
{
	if (killed && kills >= quarantine_after)
		return SCHED_DEAD;
	if (retryable && failures <= retries)
		return SCHED_RETRY;
	return SCHED_FAIL;
}

/*
 * A run of t failed: the worker reported code with message why, or a
 * supervisor reported that its process died because of t (killed).
 * Decides between another try (after a backoff), quarantine and failure;
 * see docs/protocol.md 4.13.  t may be assigned to the worker that ran it,
 * or already back in the queue (or assigned elsewhere) when the report
 * came late: then only the counting and a final verdict apply.
 */
static void
task_run_failed(struct sched *s, struct task *t, int killed, int32_t code,
    const char *why, size_t len)
{
	char msg[MAX_WHY + 160];
	int  retryable, verdict;

	task_note(t, why, len);
	t->failures++;
	if (killed) {
		t->kills++;
		s->kills++;
	}
	retryable = killed || (code == FERRY_ETASK && t->retry_errors);
	verdict   = sched_verdict(t->kills, t->failures, t->retries,
	      s->cfg->quarantine_after, killed, retryable);
	if (verdict == SCHED_DEAD) {
		snprintf(msg, sizeof(msg),
		    "quarantined: task killed %u worker process%s (%s)",
		    t->kills, t->kills == 1 ? "" : "es", t->why ? t->why : "");
		task_finish(s, t, TASK_DEAD, FERRY_EDEAD, msg, strlen(msg),
		    "quarantined");
		return;
	}
	if (verdict == SCHED_RETRY) {
		if (t->state == TASK_ASSIGNED) {
			uint64_t d = sched_backoff_ms(t->backoff_ms,
			    t->backoff_max_ms, t->failures,
			    (uint32_t)random());
			task_set_state(s, t, TASK_DELAYED, "retry after a failure");
			timer_add(s, util_now_ms() + d, TM_RETRY, t->id,
			    t->failures);
			s->retried++;
			log_info("task %" PRIu64 " (%.*s): run %u failed (%.*s); "
			         "retry %u of %u in %" PRIu64 " ms",
			    t->id, (int)t->fn_len, t->fn, t->attempts, (int)len,
			    why, t->failures, t->retries, d);
		}
		return;
	}
	if (t->attempts > 1 && t->why != NULL)
		snprintf(msg, sizeof(msg), "%.*s (after %u runs: %s)", (int)len,
		    why, t->attempts, t->why);
	else
		snprintf(msg, sizeof(msg), "%.*s", (int)len, why);
	task_finish(s, t, TASK_FAILED, code, msg, strlen(msg),
	    retryable ? "out of retries" : "failed");
}

/* ----------------------------------------------------------- workers */

static void
wait_remove(struct sched *s, struct worker *w)
{
	if (!w->waiting)
		return;
	disp_worker_idle(s->disp, w->id, 0);
	if (w->wait_prev != NULL)
		w->wait_prev->wait_next = w->wait_next;
	else
		s->wait_head = w->wait_next;
	if (w->wait_next != NULL)
		w->wait_next->wait_prev = w->wait_prev;
	else
		s->wait_tail = w->wait_prev;
	w->wait_prev = w->wait_next = NULL;
	w->waiting                  = 0;
}

static void
wait_append(struct sched *s, struct worker *w)
{
	if (w->waiting)
		return;
	disp_worker_idle(s->disp, w->id, 1);
	w->wait_next = NULL;
	w->wait_prev = s->wait_tail;
	if (s->wait_tail != NULL)
		s->wait_tail->wait_next = w;
	else
		s->wait_head = w;
	s->wait_tail = w;
	w->waiting   = 1;
}


/*
 * Choose for worker w up to credit queued tasks that it runs (into
 * s->pick, taken out of the queue), no more than a fair share when others
 * wait too.  Returns how many.
 */
static size_t
tasks_pick(struct sched *s, struct worker *w, uint64_t credit)
{
	uint64_t share;
	size_t   picked, local = 0;

	if (credit == 0 || s->n_queued == 0 || results_full(s) ||
	    s->draining)
		return 0; /* clients are not fetching, or stopping */
	share = (s->n_queued + s->n_workers - 1) /
	    (s->n_workers ? s->n_workers : 1);
	if (share == 0)
		share = 1;
	if (credit > share)
		credit = share;
	if (credit > SCHED_MAX_BATCH)
		credit = SCHED_MAX_BATCH;
	picked = disp_pick(s->disp, w->id, s->pick, credit, &local);
	w->local += local;
	s->local += local;
	return picked;
}

/*
 * Answer a worker's work request (held by rc) with the first picked tasks
 * of s->pick, as many as fit in a message (the rest go back to the front
 * of the queue).  Returns how many were sent.
 */
static uint32_t
tasks_send(struct sched *s, struct worker *w, struct rctx *rc, size_t picked)
{
	uint64_t     n = 0, *ids = s->pick;
	size_t       budget = s->cfg->max_message_size - 4096;
	size_t       count_at;
	struct task *t;

	proto_writer_reset(&s->w);
	proto_begin(&s->w, PROTO_TASKS, 1);
	proto_put_key(&s->w, "tasks");
	/* array32 header, count patched below */
	count_at = s->w.buf.size;
	proto_reserve_array32(&s->w);
	disp_worker_idle(s->disp, w->id, 0);
	for (size_t i = 0; i < picked; i++) {
		t = idmap_get(&s->tasks, ids[i]);
		if (n > 0 &&
		    s->w.buf.size + t->args_len + t->fn_len + 32 > budget) {
			/* the rest go in later messages: back in front, in
			 * their order (the state did not change yet) */
			for (size_t j = picked; j-- > i;) {
				t = idmap_get(&s->tasks, ids[j]);
				disp_enqueue(s->disp, t->id, t->fnr->idx,
				    t->objs, t->n_objs, 1);
			}
			break;
		}
		t->worker = w;
		task_set_state(s, t, TASK_ASSIGNED, "dispatched");
		proto_pack_task_timeout(&s->w, t->id, t->fn, t->fn_len,
		    t->args, t->args_len, t->timeout_ms);
		n++;
	}
	proto_patch_array32(&s->w, count_at, n);
	reply(s, rc);
	return (uint32_t)n;
}

/* Hand queued tasks to workers whose work requests are parked; a worker
 * that runs none of them stays parked. */
static void
dispatch(struct sched *s)
{
	struct worker *w, *next;

	for (w = s->wait_head; w != NULL && s->n_queued > s->n_unserved &&
	     !results_full(s) && !s->draining;
	     w = next) {
		size_t n;
		next = w->wait_next;
		if (!w->park.active) {
			wait_remove(s, w);
			continue;
		}
		if ((n = tasks_pick(s, w, w->park.credit)) == 0)
			continue;
		wait_remove(s, w);
		w->park.active = 0;
		w->park.gen++;
		tasks_send(s, w, w->park.rc, n);
	}
}

/* Forget a worker's task functions (it runs nothing any more). */
static void
worker_drop_functions(struct sched *s, struct worker *w)
{
	for (uint32_t i = 0; i < w->n_functions; i++)
		fn_unref(s, w->functions[i]);
	free(w->functions);
	w->functions   = NULL;
	w->n_functions = 0;
}

static void
worker_free(struct sched *s, struct worker *w)
{
	worker_drop_functions(s, w);
	free(w);
}

/* A worker is gone (its connection dropped, or it fell silent): its tasks
 * go back to the queue. */
static void
worker_lost(struct sched *s, struct worker *w, const char *why)
{
	uint32_t n = 0;

	log_warn("worker %" PRIu64 " (%s, pid %" PRIu64 ", %s) lost: %s; "
	         "re-queueing %u task(s)",
	    w->id, w->name, w->pid, w->host, why, w->held);
	while (w->tasks != NULL) {
		task_set_state(s, w->tasks, TASK_QUEUED, why);
		n++;
	}
	s->requeued += n;
	if (w->park.active) {
		/* its parked request is never answered */
		w->park.active = 0;
		rctx_release(s, w->park.rc);
	}
	wait_remove(s, w);
	disp_worker_remove(s->disp, w->id);
	idmap_del(&s->workers, w->id);
	s->n_workers--;
	worker_free(s, w);
}

static void
handle_worker_hello(struct sched *s, uint32_t pipe, const struct proto_msg *m,
    struct rctx *rc)
{
	struct worker *w = calloc(1, sizeof(*w));
	struct peer   *p = calloc(1, sizeof(*p));
	uint32_t      *idx = NULL;

	if (w == NULL || p == NULL ||
	    (w->functions = calloc(m->n_functions + 1,
	         sizeof(*w->functions))) == NULL ||
	    (idx = calloc(m->n_functions + 1, sizeof(*idx))) == NULL) {
		if (w != NULL)
			free(w->functions);
		free(p);
		free(w);
		reply_error(s, rc, FERRY_ENOMEM, "out of memory");
		return;
	}
	w->id   = ++s->next_worker_id;
	w->pipe = pipe;
	util_strlcpy(w->name, m->name, sizeof(w->name));
	util_strlcpy(w->host, m->host, sizeof(w->host));
	util_strlcpy(w->group, m->group, sizeof(w->group));
	w->pid          = m->pid;
	w->sup_token    = m->supervisor;
	w->slots        = (uint32_t)m->slots;
	w->capacity     = (uint32_t)m->capacity;
	w->last_seen_ms = w->connected_ms = util_now_ms();
	for (uint32_t i = 0; i < m->n_functions; i++) {
		struct fnreg *f = fn_ref(s, m->functions[i]);
		if (f == NULL)
			break;
		w->functions[w->n_functions] = f;
		idx[w->n_functions++]        = f->idx;
	}
	p->kind = PEER_WORKER;
	p->obj  = w;
	if (w->n_functions < m->n_functions ||
	    idmap_put(&s->workers, w->id, w) != 0 ||
	    idmap_put(&s->peers, pipe, p) != 0 ||
	    disp_worker_add(s->disp, w->id) != 0 ||
	    disp_worker_functions(s->disp, w->id, idx, w->n_functions) != 0) {
		idmap_del(&s->workers, w->id);
		idmap_del(&s->peers, pipe);
		disp_worker_remove(s->disp, w->id);
		worker_free(s, w);
		free(p);
		free(idx);
		reply_error(s, rc, FERRY_ENOMEM, "out of memory");
		return;
	}
	free(idx);
	s->n_workers++;
	timer_add(s, w->last_seen_ms + s->cfg->heartbeat_interval_ms,
	    TM_HEARTBEAT, w->id, 0);
	log_info("worker %" PRIu64 " registered: %s pid %" PRIu64
	         " on %s, group %s, %u slot(s), %u function(s)",
	    w->id, w->name, w->pid, w->host, w->group, w->slots,
	    w->n_functions);

	welcome_begin(s, w->id, 0);
	reply(s, rc);
}

static void
handle_work(struct sched *s, struct worker *w, const struct proto_msg *m,
    struct rctx *rc)
{
	size_t n;

	/* what it holds now: locality for the tasks below */
	for (uint32_t i = 0; i < m->n_loaded; i++)
		disp_worker_object(s->disp, w->id,
		    disp_key(m->loaded[i].via.str.ptr,
		        m->loaded[i].via.str.size),
		    1);
	for (uint32_t i = 0; i < m->n_evicted; i++)
		disp_worker_object(s->disp, w->id,
		    disp_key(m->evicted[i].via.str.ptr,
		        m->evicted[i].via.str.size),
		    0);
	if (m->cache.present)
		w->cache = m->cache;

	for (uint32_t i = 0; i < m->n_results; i++) {
		const struct proto_result *r = &m->results[i];
		struct task               *t = idmap_get(&s->tasks, r->id);
		if (t != NULL)
			task_ran(t, w->id);
		if (t == NULL || t->state != TASK_ASSIGNED || t->worker != w) {
			/* its lease was lost and it was re-queued or already
			 * finished elsewhere: never deliver twice */
			s->late_results++;
			log_debug("late result for task %" PRIu64
			          " from worker %" PRIu64 " dropped",
			    r->id, w->id);
			continue;
		}
		if (r->code == 0) {
			w->done++;
			task_finish(s, t, TASK_DONE, 0, r->data, r->len, "ok");
		} else {
			/* a crash the worker caught is a kill: its process
			 * exits after this report */
			w->failed++;
			task_run_failed(s, t, r->code == FERRY_ECRASHED, r->code,
			    r->data, r->len);
		}
	}
	/* results to clients first: they are what someone waits for */
	if (m->n_results > 0)
		flush_dirty(s);

	if (w->park.active) {
		/* a new request supersedes a parked one (the worker's view of
		 * its credit is newer); answer the old one empty */
		w->park.active = 0;
		w->park.gen++;
		wait_remove(s, w);
		tasks_send(s, w, w->park.rc, 0);
	}
	if ((n = tasks_pick(s, w, m->credit)) > 0) {
		tasks_send(s, w, rc, n);
		return;
	}
	if (m->credit == 0 || (m->n_results > 0 && m->park == 0)) {
		tasks_send(s, w, rc, 0);
		return;
	}
	/* nothing to hand out: park until tasks arrive or the heartbeat
	 * interval passes (a report of results only when it says it also
	 * serves as the worker's poll) */
	w->park.rc      = rc;
	w->park.credit  = m->credit;
	w->park.active  = 1;
	w->park.gen++;
	wait_append(s, w);
	timer_add(s, util_now_ms() + s->cfg->heartbeat_interval_ms,
	    TM_PARK_WORKER, w->id, w->park.gen);
}

/* Re-queue what a ghost held and free it. */
static void
ghost_release(struct sched *s, struct worker *w, const char *why)
{
	uint32_t n = 0;
	while (w->tasks != NULL) {
		task_set_state(s, w->tasks, TASK_QUEUED, why);
		n++;
	}
	s->requeued += n;
	if (n > 0)
		log_info("worker %" PRIu64 " (pid %" PRIu64 "): %u task(s) "
		         "re-queued: %s",
		    w->id, w->pid, n, why);
	idmap_del(&s->ghosts, w->id);
	worker_free(s, w);
}

static struct supervisor *
sup_of(struct sched *s, const struct worker *w)
{
	return w->sup_token != 0 ? idmap_get(&s->sups, w->sup_token) : NULL;
}

/*
 * A supervised worker's connection dropped: most likely its process died,
 * and its supervisor will say which task (if any) killed it.  Hold its
 * tasks until that report (or report_grace_ms), so that a task that kills
 * processes is charged before another worker gets it.
 */
static void
worker_ghost(struct sched *s, struct worker *w)
{
	log_warn("worker %" PRIu64 " (%s, pid %" PRIu64 ") lost: connection "
	         "closed; holding %u task(s) until its supervisor reports",
	    w->id, w->name, w->pid, w->held);
	if (w->park.active) {
		/* its parked request is never answered */
		w->park.active = 0;
		rctx_release(s, w->park.rc);
	}
	wait_remove(s, w);
	disp_worker_remove(s->disp, w->id);
	idmap_del(&s->workers, w->id);
	s->n_workers--;
	worker_drop_functions(s, w);
	w->ghost = 1;
	if (idmap_put(&s->ghosts, w->id, w) != 0) {
		ghost_release(s, w, "connection closed");
		return;
	}
	timer_add(s, util_now_ms() + s->cfg->report_grace_ms, TM_GHOST, w->id,
	    0);
}

static void
send_orders(struct sched *s, struct supervisor *sp, struct rctx *rc)
{
	proto_writer_reset(&s->w);
	proto_begin(&s->w, PROTO_ORDERS, 1);
	proto_put_key(&s->w, "kill");
	msgpack_pack_array(&s->w.pk, (uint32_t)sp->n_orders);
	for (size_t i = 0; i < sp->n_orders; i++) {
		msgpack_pack_array(&s->w.pk, 2);
		msgpack_pack_uint64(&s->w.pk, sp->orders[i].pid);
		msgpack_pack_uint64(&s->w.pk, sp->orders[i].task);
	}
	sp->n_orders = 0;
	reply(s, rc);
}

#define MAX_ORDERS 4096

/* Order w's supervisor to kill w's process if it runs task id (a
 * cancelled task), or to make sure it never starts it. */
static void
order_kill(struct sched *s, struct worker *w, uint64_t id)
{
	struct supervisor *sp = sup_of(s, w);

	if (sp == NULL) {
		log_info("task %" PRIu64 " cancelled while on worker %" PRIu64
		         ", which has no supervisor: it runs to its end and "
		         "its result is dropped",
		    id, w->id);
		return;
	}
	if (sp->n_orders >= MAX_ORDERS ||
	    util_grow(&sp->orders, &sp->cap_orders, sp->n_orders,
	        sizeof(*sp->orders), 16) != 0) {
		log_error("supervisor %" PRIx64 " has %zu unfetched orders: "
		          "order to stop task %" PRIu64 " dropped",
		    sp->token, sp->n_orders, id);
		return;
	}
	sp->orders[sp->n_orders].pid  = w->pid;
	sp->orders[sp->n_orders].task = id;
	sp->n_orders++;
	if (sp->park.active) {
		sp->park.active = 0;
		sp->park.gen++;
		send_orders(s, sp, sp->park.rc);
	}
}

static void
handle_supervisor_hello(struct sched *s, uint32_t pipe,
    const struct proto_msg *m, struct rctx *rc)
{
	struct supervisor *sp;
	struct peer       *p;

	if (idmap_get(&s->sups, m->supervisor) != NULL) {
		reply_error(s, rc, FERRY_ESTATE,
		    "hello: a supervisor with this token is already "
		    "connected");
		return;
	}
	sp = calloc(1, sizeof(*sp));
	p  = calloc(1, sizeof(*p));
	if (sp == NULL || p == NULL ||
	    idmap_put(&s->sups, m->supervisor, sp) != 0) {
		free(sp);
		free(p);
		reply_error(s, rc, FERRY_ENOMEM, "out of memory");
		return;
	}
	sp->token = m->supervisor;
	sp->pipe  = pipe;
	sp->pid   = m->pid;
	util_strlcpy(sp->name, m->name, sizeof(sp->name));
	util_strlcpy(sp->host, m->host, sizeof(sp->host));
	p->kind = PEER_SUPERVISOR;
	p->obj  = sp;
	if (idmap_put(&s->peers, pipe, p) != 0) {
		idmap_del(&s->sups, sp->token);
		free(sp);
		free(p);
		reply_error(s, rc, FERRY_ENOMEM, "out of memory");
		return;
	}
	s->n_sups++;
	log_info("supervisor %" PRIx64 " registered: %s pid %" PRIu64
	         " on %s",
	    sp->token, sp->name, sp->pid, sp->host);
	welcome_begin(s, sp->token, 0);
	reply(s, rc);
}

static void
sup_free(struct supervisor *sp)
{
	free(sp->orders);
	free(sp);
}

static void
handle_watch(struct sched *s, struct supervisor *sp,
    const struct proto_msg *m, struct rctx *rc)
{
	uint64_t wait = m->wait_ms;

	if (sp->park.active) {
		/* superseded: answer the old one (with any orders) */
		sp->park.active = 0;
		sp->park.gen++;
		send_orders(s, sp, sp->park.rc);
	}
	if (sp->n_orders > 0 || wait == 0) {
		send_orders(s, sp, rc);
		return;
	}
	if (wait > 60000)
		wait = 60000;
	sp->park.rc = rc;
	sp->park.active  = 1;
	sp->park.gen++;
	timer_add(s, util_now_ms() + wait, TM_PARK_WATCH, sp->token,
	    sp->park.gen);
}

/*
 * Whether a report that names t as run by worker speaks of a run whose
 * result has come already (the process died after reporting it, for
 * example after a crash the worker caught and reported itself): that run
 * is counted and judged; the report adds nothing.  A run of t that worker
 * holds now is never stale.
 */
static int
report_stale(const struct task *t, uint64_t worker)
{
	if (worker == 0 || t->result_from != worker)
		return 0;
	return !(t->state == TASK_ASSIGNED && t->worker != NULL &&
	    t->worker->id == worker);
}

/* The worker (live or ghost) that a supervisor's report is about. */
static struct worker *
report_worker(struct sched *s, const struct supervisor *sp,
    const struct proto_msg *m)
{
	struct worker *w = NULL;
	struct idmap  *maps[2] = { &s->ghosts, &s->workers };

	if (m->worker_id != 0) {
		w = idmap_get(&s->ghosts, m->worker_id);
		if (w == NULL)
			w = idmap_get(&s->workers, m->worker_id);
		if (w != NULL && w->sup_token == sp->token && w->pid == m->pid)
			return w;
	}
	/* not named (it died before registering, or the table was lost):
	 * look for it; a report is per process death, not per task */
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < maps[k]->cap; i++) {
			w = maps[k]->slots[i].val;
			if (maps[k]->slots[i].key != 0 &&
			    w->sup_token == sp->token && w->pid == m->pid)
				return w;
		}
	return NULL;
}

static void
handle_report(struct sched *s, struct supervisor *sp,
    const struct proto_msg *m, struct rctx *rc)
{
	struct worker *w = report_worker(s, sp, m);
	int32_t        code;
	int            charge = 1;
	char           why[600];
	int            n;

	/* a supervisor resends reports it is not sure arrived: once each */
	for (uint32_t i = 0; i < sp->n_reported && i < 64; i++)
		if (sp->reported[i] == m->pid) {
			log_debug("supervisor %" PRIx64 ": report for pid %" PRIu64
			          " again; ignored",
			    sp->token, m->pid);
			send_orders(s, sp, rc);
			return;
		}
	sp->reported[sp->n_reported++ % 64] = m->pid;
	s->reports++;
	sp->reports++;
	if (strcmp(m->cause, "timeout") == 0)
		code = FERRY_ETIMEDOUT;
	else if (strcmp(m->cause, "memory") == 0)
		code = FERRY_EMEMORY;
	else if (strcmp(m->cause, "cancel") == 0 ||
	         strcmp(m->cause, "recycle") == 0) {
		code   = FERRY_ECRASHED;
		charge = 0;
	} else
		code = FERRY_ECRASHED;
	if (charge && m->n_rtasks > 0)
		log_warn("worker process %" PRIu64 " on %s (worker %" PRIu64
		         ") ended: %s: %s; it was running %u task(s)",
		    m->pid, sp->host, w != NULL ? w->id : 0, m->cause,
		    m->reason, m->n_rtasks);
	else
		log_info("worker process %" PRIu64 " on %s (worker %" PRIu64
		         ") ended: %s: %s",
		    m->pid, sp->host, w != NULL ? w->id : 0, m->cause,
		    m->reason);
	n = snprintf(why, sizeof(why), "worker process %" PRIu64 " on %s: %s",
	    m->pid, sp->host, m->reason);
	if (n < 0 || (size_t)n >= sizeof(why))
		n = (int)strlen(why);
	for (uint32_t i = 0; i < m->n_rtasks; i++) {
		struct task *t = idmap_get(&s->tasks, m->rtasks[i].id);
		if (t == NULL || report_stale(t, m->worker_id))
			continue;
		task_ran(t, m->worker_id);
		if (!charge || !m->rtasks[i].charged)
			continue;
		if (code == FERRY_ETIMEDOUT)
			s->timeouts++;
		else if (code == FERRY_EMEMORY)
			s->memory_kills++;
		task_run_failed(s, t, 1, code, why, (size_t)n);
	}
	if (w != NULL && w->ghost) {
		ghost_release(s, w, "its process ended");
	} else if (w != NULL) {
		/* the report came before the connection's end */
		free(idmap_del(&s->peers, w->pipe));
		worker_lost(s, w, m->reason);
	}
	send_orders(s, sp, rc);
}

/* ----------------------------------------------------------- clients */

static void
session_free(struct sched *s, struct session *se)
{
	struct result *r, *next;
	struct task  **ts;
	size_t         n = 0;

	/* queued tasks of a session that is gone are cancelled; tasks
	 * already running finish and their results are dropped */
	ts = calloc(se->tags.count + 1, sizeof(*ts));
	for (size_t i = 0; ts != NULL && i < se->tags.cap; i++)
		if (se->tags.slots[i].key != 0)
			ts[n++] = se->tags.slots[i].val;
	for (size_t i = 0; i < n; i++) {
		ts[i]->sess = NULL;
		if (ts[i]->state == TASK_QUEUED ||
		    ts[i]->state == TASK_DELAYED)
			task_finish(s, ts[i], TASK_CANCELLED, FERRY_ECANCELED,
			    NULL, 0, "client session expired");
	}
	free(ts);
	idmap_fini(&se->tags);
	idmap_fini(&se->done);
	for (r = se->rhead; r != NULL; r = next) {
		next = r->next;
		s->results_stored--;
		s->result_bytes -= r->len;
		free(r);
	}
	free(se);
}

static void
handle_client_hello(struct sched *s, uint32_t pipe, const struct proto_msg *m,
    struct rctx *rc)
{
	struct session *se;
	struct peer    *p;
	int             resumed = 0;

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
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		reply_error(s, rc, FERRY_ENOMEM, "out of memory");
		return;
	}
	if (se == NULL) {
		if ((se = calloc(1, sizeof(*se))) == NULL ||
		    idmap_put(&s->sessions, m->session, se) != 0) {
			free(se);
			free(p);
			reply_error(
			    s, rc, FERRY_ENOMEM, "out of memory");
			return;
		}
		se->id = m->session;
		idmap_init(&se->tags);
		idmap_init(&se->done);
		log_info("client session %" PRIx64 " opened (%s pid %" PRIu64
		         ")",
		    se->id, m->host, m->pid);
	} else {
		log_info("client session %" PRIx64 " reconnected", se->id);
		resumed = 1;
	}
	se->pipe = pipe;
	se->detach_gen++;
	p->kind = PEER_CLIENT;
	p->obj  = se;
	if (idmap_put(&s->peers, pipe, p) != 0) {
		free(p);
		se->pipe = 0;
		reply_error(s, rc, FERRY_ENOMEM, "out of memory");
		return;
	}
	s->n_clients++;
	welcome_begin(s, se->id, 2);
	proto_put_uint(&s->w, "max_tag", se->max_tag);
	proto_put_uint(&s->w, "resumed", resumed);
	reply(s, rc);
}

/*
 * A submit whose tasks all went straight to workers, from a session that
 * has a fetch parked (so its results will carry the answer along), is
 * answered a little later: when the session's results next leave, when
 * it sends another request, or at the first request or turn of the loop
 * a millisecond after (ACK_HOLD_MS), whichever comes first.  A client
 * that sends one request at a time has no fetch parked and is answered
 * at once.  Its
 * answer ("all accepted") tells the client nothing urgent, and sent at
 * once it competes with the tasks for the CPU on their way to the workers.
 */
static void
ack_send(struct sched *s, struct session *se)
{
	struct rctx *rc = se->ack_rc;

	if (rc == NULL)
		return;
	se->ack_rc = NULL;
	if (se->ack_prev != NULL)
		se->ack_prev->ack_next = se->ack_next;
	else
		s->acks = se->ack_next;
	if (se->ack_next != NULL)
		se->ack_next->ack_prev = se->ack_prev;
	se->ack_prev = se->ack_next = NULL;
	proto_writer_reset(&s->w);
	proto_begin(&s->w, PROTO_SUBMITTED, 2);
	proto_put_uint(&s->w, "accepted", se->ack_accepted);
	proto_put_key(&s->w, "rejected");
	msgpack_pack_array(&s->w.pk, 0);
	reply(s, rc);
}

static void
ack_hold(struct sched *s, struct session *se, struct rctx *rc,
    uint64_t accepted)
{
	se->ack_rc       = rc;
	se->ack_accepted = accepted;
	se->ack_prev     = NULL;
	se->ack_next     = s->acks;
	if (s->acks != NULL)
		s->acks->ack_prev = se;
	s->acks = se;
	/* a millisecond at most, as far as the loop looks: it is not woken
	 * for this (that costs the round trip more than the hold saves);
	 * every request and every turn of the loop runs due timers, and the
	 * session's parked fetch brings the answer along with its results */
	timer_add_lazy(s, util_now_ms() + ACK_HOLD_MS, TM_ACK, se->id,
	    ++se->ack_gen);
}

/* A task's failure options: the submit entry's, else the defaults. */
static void
task_options(struct sched *s, struct task *t, const struct proto_task_opts *o)
{
	const struct sched_config *c = s->cfg;
	t->retries = o->set & PROTO_OPT_RETRIES ? o->retries : c->task_retries;
	t->backoff_ms =
	    o->set & PROTO_OPT_BACKOFF ? o->backoff_ms : c->task_backoff_ms;
	t->backoff_max_ms = o->set & PROTO_OPT_BACKOFF_MAX ? o->backoff_max_ms
	                                                   : c->task_backoff_max_ms;
	t->timeout_ms =
	    o->set & PROTO_OPT_TIMEOUT ? o->timeout_ms : c->task_timeout_ms;
	t->retry_errors = (uint8_t)(o->set & PROTO_OPT_RETRY_ERRORS
	        ? o->retry_errors != 0
	        : c->task_retry_errors != 0);
	if (t->backoff_max_ms < t->backoff_ms)
		t->backoff_max_ms = t->backoff_ms;
}

/* Whether every configured worker group has a worker connected now
 * (without a list of groups: whether any worker is). */
static int
groups_all_up(struct sched *s)
{
	if (s->n_workers == 0)
		return 0;
	for (size_t g = 0; g < s->cfg->n_groups; g++) {
		int up = 0;
		for (size_t i = 0; i < s->workers.cap && !up; i++) {
			const struct worker *w = s->workers.slots[i].val;
			up = s->workers.slots[i].key != 0 &&
			    strcmp(w->group, s->cfg->groups[g]) == 0;
		}
		if (!up)
			return 0;
	}
	return 1;
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
		    name, util_now_ms() - f->unserved_ms);
		return FERRY_ENOFUNC;
	}
	if (s->n_queued >= s->cfg->max_queue) {
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

/* Make and queue the task of submit entry pt; NULL when memory runs out
 * (nothing changed). */
static struct task *
task_new(struct sched *s, struct session *se, const struct proto_task *pt,
    struct fnreg *fnr)
{
	struct task *t = calloc(1, sizeof(*t) + pt->fn_len + 1 + pt->args_len);

	if (t == NULL)
		goto fail;
	t->id       = ++s->next_task_id;
	t->tag      = pt->id;
	t->sess     = se;
	t->fnr      = fnr;
	t->fn_len   = pt->fn_len;
	t->args_len = pt->args_len;
	t->fn       = (char *)t->data;
	t->args     = t->data + pt->fn_len + 1;
	memcpy(t->fn, pt->fn, pt->fn_len);
	if (pt->args_len > 0)
		memcpy(t->args, pt->args, pt->args_len);
	t->n_objs = (uint8_t)pt->n_objs;
	task_options(s, t, &pt->opts);
	for (uint32_t k = 0; k < pt->n_objs; k++)
		t->objs[k] = disp_key(pt->objs[k].via.str.ptr,
		    pt->objs[k].via.str.size);
	if (idmap_put(&s->tasks, t->id, t) != 0 ||
	    idmap_put(&se->tags, t->tag, t) != 0 ||
	    disp_enqueue(s->disp, t->id, fnr->idx, t->objs, t->n_objs, 0) != 0) {
		idmap_del(&s->tasks, t->id);
		idmap_del(&se->tags, t->tag);
		free(t);
		goto fail;
	}
	fnr->tasks++;
	t->state = TASK_QUEUED;
	s->n_queued++;
	fn_queued(s, fnr, 1);
	log_debug("task %" PRIu64 " (%s, client %" PRIx64 ":%" PRIu64
	          "): submitted -> queued",
	    t->id, t->fn, se->id, t->tag);
	return t;
fail:
	if (fnr->tasks == 0)
		fn_drop(s, fnr); /* made for this task alone */
	return NULL;
}

static void
handle_submit(struct sched *s, struct session *se, const struct proto_msg *m,
    struct rctx *rc)
{
	uint64_t accepted = 0, queued = s->n_queued;
	uint32_t n_rej    = 0;
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
		struct task             *t;
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
		if (code == 0 && (t = task_new(s, se, pt, fnr)) == NULL) {
			code = FERRY_ENOMEM;
			snprintf(why, sizeof(why), "out of memory");
		}
		if (code != 0) {
			/* rejected entries are collected in the writer as
			 * result entries; the header is written after */
			proto_pack_result(
			    &s->rej, pt->id, code, why, strlen(why));
			n_rej++;
			s->rejected++;
			continue;
		}
		accepted++;
		s->submitted++;
		s->untrimmed = 1;
		se->submitted++;
		if (t->tag > se->max_tag)
			se->max_tag = t->tag;
	}

	/* hand the new tasks to waiting workers before answering: the
	 * answer is not on any task's critical path, the tasks are */
	dispatch(s);
	if (n_rej == 0 && accepted > 0 && s->n_queued <= queued &&
	    se->pipe != 0 && se->park.active) {
		ack_hold(s, se, rc, accepted);
		return;
	}

	/* the rejected entries are in s->rej; put the envelope first */
	proto_writer_reset(&s->w);
	proto_begin(&s->w, PROTO_SUBMITTED, 2);
	proto_put_uint(&s->w, "accepted", accepted);
	proto_put_key(&s->w, "rejected");
	msgpack_pack_array(&s->w.pk, n_rej);
	if (s->rej.buf.size > 0)
		msgpack_sbuffer_write(&s->w.buf, s->rej.buf.data, s->rej.buf.size);
	reply(s, rc);
}

/* Answer a client's fetch (held by rc) with its results. */
static void
send_results(struct sched *s, struct session *se, struct rctx *rc)
{
	size_t         budget = s->cfg->max_message_size - 4096;
	size_t         count_at;
	uint32_t       n   = 0;
	uint64_t       seq = 0;
	struct result *r;

	proto_writer_reset(&s->w);
	proto_begin(&s->w, PROTO_RESULTS, 2);
	proto_put_key(&s->w, "results");
	count_at = s->w.buf.size;
	proto_reserve_array32(&s->w);
	for (r = se->rhead; r != NULL; r = r->next) {
		if (n > 0 && s->w.buf.size + r->len + 32 > budget)
			break;
		proto_pack_result_attempts(
		    &s->w, r->tag, r->code, r->data, r->len, r->attempts);
		seq = r->seq;
		n++;
	}
	proto_patch_array32(&s->w, count_at, n);
	proto_put_uint(&s->w, "seq", seq);
	if (seq > se->sent_seq)
		se->sent_seq = seq;
	reply(s, rc);
	ack_send(s, se);
}

static void
handle_fetch(struct sched *s, struct session *se, const struct proto_msg *m,
    struct rctx *rc)
{
	uint64_t wait = m->wait_ms;

	if (m->ack > se->sent_seq) {
		/* it cannot have processed what was never sent: taking it
		 * at its word would delete results stored later, unseen */
		char err[160];
		snprintf(err, sizeof(err),
		    "fetch: ack %" PRIu64 " is above the highest result "
		    "sequence number sent to this session (%" PRIu64 ")",
		    m->ack, se->sent_seq);
		s->bad_messages++;
		reply_error(s, rc, FERRY_EPROTO, err);
		return;
	}
	/* everything up to ack has reached the client: drop it */
	while (se->rhead != NULL && se->rhead->seq <= m->ack) {
		struct result *r = se->rhead;
		se->rhead        = r->next;
		if (se->rhead == NULL)
			se->rtail = NULL;
		idmap_del(&se->done, r->tag);
		se->n_results--;
		s->results_stored--;
		s->result_bytes -= r->len;
		free(r);
	}
	if (se->park.active) {
		/* superseded: answer the old one empty */
		se->park.active = 0;
		se->park.gen++;
		proto_writer_reset(&s->w);
		proto_begin(&s->w, PROTO_RESULTS, 2);
		proto_put_key(&s->w, "results");
		msgpack_pack_array(&s->w.pk, 0);
		proto_put_uint(&s->w, "seq", 0);
		reply(s, se->park.rc);
	}
	if (se->rhead != NULL || wait == 0) {
		send_results(s, se, rc);
		return;
	}
	if (wait > 60000)
		wait = 60000;
	se->park.rc      = rc;
	se->park.active  = 1;
	se->park.gen++;
	timer_add(s, util_now_ms() + wait, TM_PARK_FETCH, se->id,
	    se->park.gen);
}

static void
handle_cancel(struct sched *s, struct session *se, const struct proto_msg *m,
    struct rctx *rc)
{
	uint32_t     n = 0;
	uint64_t    *done;
	struct task *t;

	done = calloc(m->n_ids + 1, sizeof(*done));
	if (done == NULL) {
		reply_error(s, rc, FERRY_ENOMEM, "out of memory");
		return;
	}
	for (uint32_t i = 0; i < m->n_ids; i++) {
		struct worker *w;
		uint64_t       id;
		t = idmap_get(&se->tags, m->ids[i]);
		if (t == NULL)
			continue; /* unknown or finished */
		done[n++] = m->ids[i];
		w         = t->state == TASK_ASSIGNED ? t->worker : NULL;
		id        = t->id;
		task_finish(s, t, TASK_CANCELLED, FERRY_ECANCELED,
		    "cancelled", 9, "cancelled by client");
		/* running (or held) by a worker: stop it there */
		if (w != NULL && !w->ghost)
			order_kill(s, w, id);
	}
	proto_writer_reset(&s->w);
	proto_begin(&s->w, PROTO_CANCELLED, 1);
	proto_put_key(&s->w, "ids");
	msgpack_pack_array(&s->w.pk, n);
	for (uint32_t i = 0; i < n; i++)
		msgpack_pack_uint64(&s->w.pk, done[i]);
	free(done);
	reply(s, rc);
}

#define STATUS_UNSERVED 16 /* functions listed as waited for */

/* status_reply's "unserved_functions": functions that queued tasks wait
 * for, with no connected worker that runs them. */
static void
status_unserved(struct sched *s)
{
	uint32_t n = 0, k = 0;
	uint64_t now = util_now_ms();

	for (size_t i = 1; i <= s->n_fn_idx; i++) {
		const struct fnreg *f = s->fn_by_idx[i];
		if (f != NULL && f->refs == 0 && f->queued > 0)
			n++;
	}
	if (n > STATUS_UNSERVED)
		n = STATUS_UNSERVED;
	proto_put_key(&s->w, "unserved_functions");
	msgpack_pack_array(&s->w.pk, n);
	for (size_t i = 1; i <= s->n_fn_idx && k < n; i++) {
		const struct fnreg *f = s->fn_by_idx[i];
		if (f == NULL || f->refs > 0 || f->queued == 0)
			continue;
		msgpack_pack_map(&s->w.pk, 4);
		proto_put_str(&s->w, "fn", f->name);
		proto_put_uint(&s->w, "queued", f->queued);
		proto_put_uint(&s->w, "waiting_ms", now - f->unserved_ms);
		proto_put_uint(&s->w, "known", f->ever);
		k++;
	}
}

static void
handle_status(struct sched *s, struct rctx *rc)
{
	uint32_t       slots = 0, busy = 0, held_lost = 0;
	struct worker *w;
	uint64_t       now = util_now_ms();

	for (size_t i = 0; i < s->workers.cap; i++) {
		if (s->workers.slots[i].key == 0)
			continue;
		w = s->workers.slots[i].val;
		slots += w->slots;
		busy += w->held;
	}
	for (size_t i = 0; i < s->ghosts.cap; i++)
		if (s->ghosts.slots[i].key != 0)
			held_lost += ((struct worker *)s->ghosts.slots[i].val)->held;
	proto_writer_reset(&s->w);
	proto_begin(&s->w, PROTO_STATUS_REPLY, 31);
	proto_put_str(&s->w, "version", FERRY_VERSION_STRING);
	proto_put_uint(&s->w, "uptime_ms", now - s->start_ms);
	proto_put_uint(&s->w, "workers", s->n_workers);
	proto_put_uint(&s->w, "slots", slots);
	proto_put_uint(&s->w, "busy", busy);
	proto_put_uint(&s->w, "queued", s->n_queued);
	proto_put_uint(&s->w, "submitted", s->submitted);
	proto_put_uint(&s->w, "done", s->done);
	proto_put_uint(&s->w, "failed", s->failed);
	proto_put_uint(&s->w, "cancelled", s->cancelled);
	proto_put_uint(&s->w, "requeued", s->requeued);
	proto_put_uint(&s->w, "late_results", s->late_results);
	proto_put_uint(&s->w, "rejected", s->rejected);
	proto_put_uint(&s->w, "clients", s->n_clients);
	proto_put_uint(&s->w, "results_stored", s->results_stored);
	proto_put_uint(&s->w, "local", s->local);
	proto_put_uint(&s->w, "bad_messages", s->bad_messages);
	proto_put_uint(&s->w, "auth_failures", s->auth_failures);
	proto_put_uint(&s->w, "retried", s->retried);
	proto_put_uint(&s->w, "dead", s->dead);
	proto_put_uint(&s->w, "kills", s->kills);
	proto_put_uint(&s->w, "timeouts", s->timeouts);
	proto_put_uint(&s->w, "memory_kills", s->memory_kills);
	proto_put_uint(&s->w, "delayed", s->n_delayed);
	proto_put_uint(&s->w, "awaiting_report", held_lost);
	proto_put_uint(&s->w, "supervisors", s->n_sups);
	proto_put_uint(&s->w, "reports", s->reports);
	proto_put_uint(&s->w, "waiting_function", s->n_unserved);
	status_unserved(s);
	proto_put_key(&s->w, "recent_failures");
	{
		uint32_t nr = s->n_recent < RECENT_FAILURES ? s->n_recent
		                                            : RECENT_FAILURES;
		msgpack_pack_array(&s->w.pk, nr);
		/* newest first */
		for (uint32_t k = 0; k < nr; k++) {
			const struct recent *rf =
			    &s->recent[(s->n_recent - 1 - k) % RECENT_FAILURES];
			msgpack_pack_map(&s->w.pk, 5);
			proto_put_uint(&s->w, "id", rf->id);
			proto_put_str(&s->w, "fn", rf->fn);
			proto_put_str(&s->w, "state", sched_state_name(rf->state));
			proto_put_uint(&s->w, "attempts", rf->attempts);
			proto_put_str(&s->w, "reason", rf->reason);
		}
	}
	proto_put_key(&s->w, "worker_list");
	msgpack_pack_array(&s->w.pk, s->n_workers);
	for (size_t i = 0; i < s->workers.cap; i++) {
		if (s->workers.slots[i].key == 0)
			continue;
		w = s->workers.slots[i].val;
		msgpack_pack_map(&s->w.pk, 13);
		proto_put_uint(&s->w, "id", w->id);
		proto_put_str(&s->w, "name", w->name);
		proto_put_str(&s->w, "host", w->host);
		proto_put_str(&s->w, "group", w->group);
		proto_put_uint(&s->w, "pid", w->pid);
		proto_put_uint(&s->w, "slots", w->slots);
		proto_put_uint(&s->w, "held", w->held);
		proto_put_uint(&s->w, "done", w->done);
		proto_put_uint(&s->w, "failed", w->failed);
		proto_put_uint(&s->w, "last_seen_ms", now - w->last_seen_ms);
		proto_put_uint(&s->w, "functions", w->n_functions);
		proto_put_uint(&s->w, "local", w->local);
		proto_put_key(&s->w, "cache");
		msgpack_pack_map(&s->w.pk, 6);
		proto_put_uint(&s->w, "objects", w->cache.objects);
		proto_put_uint(&s->w, "bytes", w->cache.bytes);
		proto_put_uint(&s->w, "loads", w->cache.loads);
		proto_put_uint(&s->w, "hits", w->cache.hits);
		proto_put_uint(&s->w, "evictions", w->cache.evictions);
		proto_put_uint(&s->w, "failures", w->cache.failures);
	}
	reply(s, rc);
}

/* ------------------------------------------------------------- loop */

/* A slowed refusal waiting for its time (authlimit.h). */
struct refusal {
	struct rctx *rc;
	uint64_t     key;
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

/* Summaries of failed authentications that are due, and the timer for
 * the next ones. */
static void
auth_report(struct sched *s)
{
	uint64_t next = authlimit_report(s->auth, util_now_ms(), auth_summary,
	    s);
	s->auth_timer = next != UINT64_MAX;
	if (s->auth_timer)
		timer_add(s, next, TM_AUTH_SUMMARY, 0, 0);
}

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
	s->auth_failures++;
	authlimit_fail(s->auth, addr, util_now_ms(), &v);
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
		r->rc  = rc;
		r->key = v.key;
		timer_add(s, util_now_ms() + v.delay_ms, TM_AUTH_REFUSE,
		    (uint64_t)(uintptr_t)r, 0);
		return;
	}
	authlimit_answered(s->auth, v.key);
	reply_error(s, rc, FERRY_EAUTH, "authentication failed");
}

/* A slowed refusal's time has come. */
static void
auth_refuse_late(struct sched *s, struct refusal *r)
{
	authlimit_answered(s->auth, r->key);
	reply_error(s, r->rc, FERRY_EAUTH, "authentication failed");
	free(r);
}

static void
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
		s->bad_messages++;
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
	if (m.type == PROTO_HELLO) {
		if (p != NULL && p->kind == PEER_WORKER &&
		    m.role == PROTO_ROLE_WORKER) {
			/* said twice (its first answer crossed a reconnection):
			 * the same registration again */
			struct worker *w = p->obj;
			w->last_seen_ms  = util_now_ms();
			welcome_begin(s, w->id, 0);
			reply(s, rc);
			return;
		}
		if (p != NULL) {
			reply_error(s, rc, FERRY_ESTATE,
			    "hello: this connection is already registered");
			return;
		}
		if (m.role == PROTO_ROLE_WORKER)
			handle_worker_hello(s, pipe, &m, rc);
		else if (m.role == PROTO_ROLE_SUPERVISOR)
			handle_supervisor_hello(s, pipe, &m, rc);
		else
			handle_client_hello(s, pipe, &m, rc);
		return;
	}
	if (m.type == PROTO_STATUS) {
		handle_status(s, rc);
		return;
	}
	if (p == NULL) {
		if (m.type == PROTO_WORK && m.n_results > 0) {
			/* a worker whose lease ended (it was silent) speaks
			 * again: its tasks ran elsewhere, so these results are
			 * late; it registers afresh after this answer */
			s->late_results += m.n_results;
			for (uint32_t i = 0; i < m.n_results; i++) {
				/* they ran, all the same */
				struct task *t =
				    idmap_get(&s->tasks, m.results[i].id);
				if (t != NULL)
					task_ran(t, 0);
			}
			log_info("pipe %u: %u late result(s) from a worker "
			         "whose lease ended dropped",
			    pipe, m.n_results);
		}
		reply_error(s, rc, FERRY_ESTATE,
		    "this connection has not said hello");
		return;
	}
	if (p->kind == PEER_WORKER) {
		struct worker *w = p->obj;
		w->last_seen_ms  = util_now_ms();
		if (m.type == PROTO_WORK) {
			handle_work(s, w, &m, rc);
			return;
		}
	} else if (p->kind == PEER_SUPERVISOR) {
		struct supervisor *sp = p->obj;
		if (m.type == PROTO_WATCH) {
			handle_watch(s, sp, &m, rc);
			return;
		}
		if (m.type == PROTO_REPORT) {
			handle_report(s, sp, &m, rc);
			return;
		}
	} else {
		struct session *se = p->obj;
		switch (m.type) {
		case PROTO_SUBMIT:
			handle_submit(s, se, &m, rc);
			return;
		case PROTO_FETCH:
			ack_send(s, se);
			handle_fetch(s, se, &m, rc);
			return;
		case PROTO_CANCEL:
			ack_send(s, se);
			handle_cancel(s, se, &m, rc);
			return;
		default:
			break;
		}
	}
	snprintf(err, sizeof(err), "%s: not a request a %s may send",
	    proto_type_name(m.type),
	    p->kind == PEER_WORKER       ? "worker"
	        : p->kind == PEER_CLIENT ? "client"
	                                 : "supervisor");
	s->bad_messages++;
	reply_error(s, rc, FERRY_EPROTO, err);
}

static void
pipe_gone(struct sched *s, uint32_t pipe)
{
	struct peer *p = idmap_get(&s->peers, pipe);
	if (p == NULL)
		return;
	if (p->kind == PEER_WORKER) {
		struct worker *w = p->obj;
		idmap_del(&s->peers, pipe);
		if (w->held > 0 && sup_of(s, w) != NULL &&
		    s->cfg->report_grace_ms > 0)
			worker_ghost(s, w);
		else
			worker_lost(s, w, "connection closed");
	} else if (p->kind == PEER_SUPERVISOR) {
		struct supervisor *sp = p->obj;
		idmap_del(&s->peers, pipe);
		idmap_del(&s->sups, sp->token);
		s->n_sups--;
		log_warn("supervisor %" PRIx64 " (%s) disconnected", sp->token,
		    sp->host);
		if (sp->park.active) {
			sp->park.active = 0;
			rctx_release(s, sp->park.rc);
		}
		sup_free(sp);
	} else {
		struct session *se = p->obj;
		idmap_del(&s->peers, pipe);
		ack_send(s, se); /* to no one: it frees the context */
		se->pipe = 0;
		if (se->park.active) {
			se->park.active = 0;
			rctx_release(s, se->park.rc);
		}
		se->park.gen++;
		se->detached_ms = util_now_ms();
		se->detach_gen++;
		s->n_clients--;
		if (se->n_results == 0 && se->tags.count == 0) {
			/* nothing owed to it: forget it now */
			log_info("client session %" PRIx64 " closed", se->id);
			idmap_del(&s->sessions, se->id);
			session_free(s, se);
			free(p);
			return;
		}
		log_info("client session %" PRIx64 " disconnected; %" PRIu64
		         " result(s) and %zu unfinished task(s) kept for %u ms",
		    se->id, se->n_results, se->tags.count,
		    s->cfg->result_ttl_ms);
		timer_add(s, se->detached_ms + s->cfg->result_ttl_ms,
		    TM_SESSION, se->id, se->detach_gen);
	}
	free(p);
}

/*
 * Tasks of a function waited long enough for a worker that runs it.  An
 * unknown name keeps waiting while a configured worker group is not up
 * (its workers may bring it); otherwise its queued and delayed tasks fail
 * and new ones are refused until a worker registers it.
 */
static void
fn_wait_over(struct sched *s, uint32_t idx, uint32_t gen)
{
	struct fnreg *f = idx <= s->n_fn_idx ? s->fn_by_idx[idx] : NULL;
	char          msg[4 * MAX_FN_LEN + 160], name[4 * MAX_FN_LEN + 8];
	uint64_t      waited, n = 0;

	if (f == NULL || f->wait_gen != gen || f->refs > 0)
		return;
	if (!f->ever && !groups_all_up(s)) {
		fn_wait_start(s, f, s->cfg->unknown_function_wait_ms);
		return;
	}
	f->unavailable = f->ever; /* an unknown name is forgotten below */
	waited         = util_now_ms() - f->unserved_ms;
	util_escape(name, sizeof(name), f->name, strlen(f->name));
	if (f->ever)
		snprintf(msg, sizeof(msg),
		    "no worker has run function '%s' for %" PRIu64 " ms "
		    "(scheduler.function_wait)",
		    name, waited);
	else
		snprintf(msg, sizeof(msg),
		    "unknown function '%s': no worker registered it within %"
		    PRIu64 " ms (scheduler.unknown_function_wait)",
		    name, waited);
	/* a rare event, not a hot path: look at every task.  Finishing
	 * one deletes it from the map, which may move a later entry into
	 * its slot: that slot is looked at again.  The extra count keeps f
	 * while its last task goes */
	f->tasks++;
	for (size_t i = 0; i < s->tasks.cap;) {
		struct task *t = s->tasks.slots[i].val;
		if (s->tasks.slots[i].key != 0 && t->fnr == f &&
		    (t->state == TASK_QUEUED || t->state == TASK_DELAYED)) {
			task_finish(s, t, TASK_FAILED, FERRY_ENOFUNC, msg,
			    strlen(msg), "no worker runs its function");
			n++;
			continue;
		}
		i++;
	}
	log_warn("%s: %" PRIu64 " task(s) failed%s", msg, n,
	    f->ever ? "; new ones are refused until a worker registers it"
	            : "");
	if (--f->tasks == 0)
		fn_drop(s, f);
}

static void
run_timers(struct sched *s)
{
	uint64_t            now = util_now_ms();
	const struct timer *top;
	struct timer        t;

	while ((top = timerheap_peek(&s->timers)) != NULL && top->when <= now) {
		timerheap_pop(&s->timers, &t);
		switch (t.kind) {
		case TM_PARK_WORKER: {
			struct worker *w = idmap_get(&s->workers, t.id);
			if (w == NULL || !w->park.active || w->park.gen != t.gen)
				break;
			w->park.active = 0;
			w->park.gen++;
			wait_remove(s, w);
			tasks_send(s, w, w->park.rc, 0);
			break;
		}
		case TM_PARK_FETCH: {
			struct session *se = idmap_get(&s->sessions, t.id);
			if (se == NULL || !se->park.active ||
			    se->park.gen != t.gen)
				break;
			se->park.active = 0;
			se->park.gen++;
			send_results(s, se, se->park.rc);
			break;
		}
		case TM_HEARTBEAT: {
			struct worker *w = idmap_get(&s->workers, t.id);
			if (w == NULL)
				break;
			if (now - w->last_seen_ms >
			    s->cfg->heartbeat_timeout_ms) {
				char why[128];
				snprintf(why, sizeof(why),
				    "silent for %" PRIu64 " ms (heartbeat "
				    "timeout %u ms)",
				    now - w->last_seen_ms,
				    s->cfg->heartbeat_timeout_ms);
				uint32_t pipe = w->pipe;
				/* forget it; its connection stays (closing a
				 * pipe from here could stall NNG's listener):
				 * if it ever speaks again it is told it is not
				 * registered, and registers afresh.  A parked
				 * request is told now (it reads it when it
				 * wakes) */
				if (w->park.active) {
					w->park.active = 0;
					w->park.gen++;
					reply_error(s, w->park.rc, FERRY_ESTATE,
					    "lease lost: silent past the "
					    "heartbeat timeout; register again");
				}
				free(idmap_del(&s->peers, pipe));
				worker_lost(s, w, why);
				break;
			}
			timer_add(s, now + s->cfg->heartbeat_interval_ms / 2 + 1,
			    TM_HEARTBEAT, w->id, 0);
			break;
		}
		case TM_RETRY: {
			struct task *tk = idmap_get(&s->tasks, t.id);
			if (tk == NULL || tk->state != TASK_DELAYED ||
			    tk->failures != t.gen)
				break;
			task_set_state(s, tk, TASK_QUEUED, "retry backoff over");
			break;
		}
		case TM_GHOST: {
			struct worker *w = idmap_get(&s->ghosts, t.id);
			if (w != NULL)
				ghost_release(s, w,
				    "no report from its supervisor in time");
			break;
		}
		case TM_PARK_WATCH: {
			struct supervisor *sp = idmap_get(&s->sups, t.id);
			if (sp == NULL || !sp->park.active ||
			    sp->park.gen != t.gen)
				break;
			sp->park.active = 0;
			sp->park.gen++;
			send_orders(s, sp, sp->park.rc);
			break;
		}
		case TM_FN_WAIT:
			fn_wait_over(s, (uint32_t)t.id, t.gen);
			break;
		case TM_AUTH_REFUSE:
			auth_refuse_late(s, (struct refusal *)(uintptr_t)t.id);
			break;
		case TM_AUTH_SUMMARY:
			auth_report(s);
			break;
		case TM_ACK: {
			struct session *se = idmap_get(&s->sessions, t.id);
			if (se != NULL && se->ack_gen == t.gen)
				ack_send(s, se);
			break;
		}
		case TM_SESSION: {
			struct session *se = idmap_get(&s->sessions, t.id);
			if (se == NULL || se->pipe != 0 ||
			    se->detach_gen != t.gen)
				break;
			log_info("client session %" PRIx64 " expired; %" PRIu64
			         " undelivered result(s) dropped",
			    se->id, se->n_results);
			idmap_del(&s->sessions, se->id);
			session_free(s, se);
			break;
		}
		}
	}
}

static void
flush_dirty(struct sched *s)
{
	struct session *se;
	while ((se = s->dirty) != NULL) {
		s->dirty   = se->dirty_next;
		se->dirty  = 0;
		if (se->park.active && se->pipe != 0) {
			se->park.active = 0;
			se->park.gen++;
			send_results(s, se, se->park.rc);
		}
	}
}

/*
 * Everything submitted has finished and been delivered: give the memory
 * of the burst back (tables sized for the peak, freed heap pages), so a
 * long-lived scheduler returns near its baseline between bursts.
 */
static void
give_back_memory(struct sched *s)
{
	idmap_shrink(&s->tasks);
	for (size_t i = 0; i < s->sessions.cap; i++) {
		struct session *se = s->sessions.slots[i].val;
		if (s->sessions.slots[i].key == 0)
			continue;
		idmap_shrink(&se->tags);
		idmap_shrink(&se->done);
	}
	disp_compact(s->disp);
	malloc_trim(0);
	s->untrimmed = 0;
}

static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct sched *s = arg;
	(void)ev;
	pthread_mutex_lock(&s->ev_lock);
	if (util_grow(&s->gone_pipes, &s->cap_gone, s->n_gone,
	        sizeof(*s->gone_pipes), 64) != 0) {
		pthread_mutex_unlock(&s->ev_lock);
		log_error("out of memory noting a closed pipe");
		return;
	}
	s->gone_pipes[s->n_gone++] = nng_pipe_id(p);
	pthread_mutex_unlock(&s->ev_lock);
	wake_loop(s);
}

/*
 * Closed pipes (lock held).  Only while no request is being handled: one
 * that arrived before its connection dropped counts first (results that
 * reached us still count); the last request handler does it otherwise.
 */
static void
gone_pipes_locked(struct sched *s)
{
	uint32_t *gone;
	size_t    n;

	if (atomic_load(&s->busy) != 0)
		return;
	pthread_mutex_lock(&s->ev_lock);
	gone          = s->gone_pipes;
	n             = s->n_gone;
	s->gone_pipes = NULL;
	s->n_gone = s->cap_gone = 0;
	pthread_mutex_unlock(&s->ev_lock);
	for (size_t i = 0; i < n; i++)
		pipe_gone(s, gone[i]);
	free(gone);
}

/* What is due after any event (lock held). */
static void
loop_turn_locked(struct sched *s)
{
	gone_pipes_locked(s);
	run_timers(s);
	dispatch(s);
	flush_dirty(s);
	if (s->untrimmed && s->tasks.count == 0 && s->results_stored == 0)
		give_back_memory(s);
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

static int
sched_open(struct sched *s)
{
	sigset_t          mask;
	struct sec_listen sl;
	int               rv;

	/* block the stop signals in every thread (NNG's included) and read
	 * them from a signalfd in the loop */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((s->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0 ||
	    (s->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		log_error("signalfd/eventfd: %s", strerror(errno));
		return -1;
	}
	if ((rv = nng_rep0_open(&s->sock)) != 0 ||
	    (rv = util_sock_setup(s->sock, s->cfg->max_message_size)) != 0) {
		log_error("cannot open the scheduler socket: %s",
		    nng_strerror(rv));
		return -1;
	}
	nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, pipe_cb, s);
	sl.tls_cert_key_file   = s->cfg->tls_cert_key_file;
	sl.tls_ca_file         = s->cfg->tls_ca_file;
	sl.require_client_cert = s->cfg->require_client_cert;
	if (s->cfg->token_file != NULL) {
		char err[512];
		if (sec_token_load(s->cfg->token_file, s->token, err,
		        sizeof(err)) != 0) {
			log_error("%s", err);
			return -1;
		}
	}
	for (size_t i = 0; i < s->cfg->n_listen; i++) {
		const char *url = s->cfg->listen[i];
		char        err[512];
		if (util_url_check(url, err, sizeof(err)) != 0) {
			log_error("listen: %s", err);
			return -1;
		}
		if (strncmp(url, "ipc://", 6) == 0) {
			/* a stale socket file from a crashed scheduler would
			 * make listen fail; remove it only if nothing
			 * answers there */
			nng_socket probe;
			if (nng_req0_open(&probe) == 0) {
				if (nng_dial(probe, url, NULL, 0) != 0)
					unlink(url + 6);
				nng_close(probe);
			}
		}
		if (sec_listen(s->sock, url, &sl, err, sizeof(err)) != 0) {
			log_error("%s", err);
			return -1;
		}
		log_info("listening on %s%s", url,
		    s->token[0] != '\0' ? " (token required)" : "");
		if (util_url_reach(url) == UTIL_REACH_NETWORK &&
		    (!util_url_is_tls(url) || s->token[0] == '\0'))
			log_warn("WARNING: listening on %s WITHOUT %s: ANYONE "
			         "WHO CAN REACH IT CAN RUN TASKS "
			         "(see docs/security.md)",
			    url,
			    util_url_is_tls(url) ? "A TOKEN"
			        : s->token[0] != '\0' ? "TLS"
			                              : "TLS AND A TOKEN");
	}
	pthread_mutex_lock(&s->lock);
	rctx_receive_next(s);
	pthread_mutex_unlock(&s->lock);
	if (s->ctxs == NULL)
		return -1;
	return 0;
}

static void
sched_close(struct sched *s)
{
	struct rctx *rc, *rc_next;

	atomic_store(&s->closing, 1);
	if (s->sock.id != 0)
		nng_close(s->sock);
	/* wait for every callback; replies still queued are dropped */
	for (rc = s->ctxs; rc != NULL; rc = rc->all_next) {
		nng_aio_stop(rc->rx);
		nng_aio_stop(rc->tx);
	}
	for (rc = s->ctxs; rc != NULL; rc = rc_next) {
		rc_next = rc->all_next;
		nng_msg_free(nng_aio_get_msg(rc->rx));
		nng_msg_free(nng_aio_get_msg(rc->tx));
		nng_aio_free(rc->rx);
		nng_aio_free(rc->tx);
		free(rc);
	}
	for (size_t i = 0; i < s->cfg->n_listen; i++)
		if (strncmp(s->cfg->listen[i], "ipc://", 6) == 0)
			unlink(s->cfg->listen[i] + 6);
	for (size_t i = 0; i < s->sessions.cap; i++)
		if (s->sessions.slots[i].key != 0)
			session_free(s, s->sessions.slots[i].val);
	for (size_t i = 0; i < s->workers.cap; i++) {
		struct worker *w = s->workers.slots[i].val;
		if (s->workers.slots[i].key == 0)
			continue;
		while (w->tasks != NULL)
			task_set_state(s, w->tasks, TASK_QUEUED, "shutdown");
		worker_free(s, w);
	}
	for (size_t i = 0; i < s->ghosts.cap; i++) {
		struct worker *w = s->ghosts.slots[i].val;
		if (s->ghosts.slots[i].key == 0)
			continue;
		while (w->tasks != NULL)
			task_set_state(s, w->tasks, TASK_QUEUED, "shutdown");
		worker_free(s, w);
	}
	for (size_t i = 0; i < s->sups.cap; i++)
		if (s->sups.slots[i].key != 0)
			sup_free(s->sups.slots[i].val);
	for (size_t i = 0; i < s->tasks.cap; i++)
		if (s->tasks.slots[i].key != 0)
			task_free(s, s->tasks.slots[i].val);
	for (size_t i = 0; i < s->peers.cap; i++)
		if (s->peers.slots[i].key != 0)
			free(s->peers.slots[i].val);
	for (size_t i = 0; i < s->fns.cap; i++) {
		struct fnreg *f = s->fns.slots[i].val, *next;
		if (s->fns.slots[i].key == 0)
			continue;
		for (; f != NULL; f = next) {
			next = f->next;
			free(f);
		}
	}
	idmap_fini(&s->tasks);
	idmap_fini(&s->workers);
	idmap_fini(&s->sessions);
	idmap_fini(&s->peers);
	idmap_fini(&s->fns);
	free(s->fn_by_idx);
	free(s->fn_free);
	idmap_fini(&s->ghosts);
	idmap_fini(&s->sups);
	disp_free(s->disp);
	authlimit_free(s->auth);
	{
		/* slowed refusals still waiting own a small record */
		struct timer t;
		while (timerheap_pop(&s->timers, &t))
			if (t.kind == TM_AUTH_REFUSE)
				free((struct refusal *)(uintptr_t)t.id);
	}
	timerheap_fini(&s->timers);
	proto_decoder_fini(&s->dec);
	proto_writer_fini(&s->w);
	proto_writer_fini(&s->rej);
	free(s->gone_pipes);
	pthread_mutex_destroy(&s->ev_lock);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->pool_lock);
	if (s->signal_fd >= 0)
		close(s->signal_fd);
	if (s->event_fd >= 0)
		close(s->event_fd);
}

/* ------------------------------------------------------------ stopping */

#define DRAIN_CHECK_MS 50 /* how often a draining loop looks */

/* A stop signal: the first one drains, a second one stops at once. */
static void
drain_begin(struct sched *s, uint32_t signo)
{
	if (s->draining || s->cfg->drain_timeout_ms == 0) {
		log_info("signal %u: stopping now", signo);
		s->stop = 1;
		return;
	}
	s->draining    = 1;
	s->drain_until = util_now_ms() + s->cfg->drain_timeout_ms;
	log_info("signal %u: draining (up to %u ms; a second signal stops at "
	         "once): refusing new submissions, dispatching nothing more; "
	         "%" PRIu64 " running task(s) may finish, %" PRIu64
	         " queued will not run",
	    signo, s->cfg->drain_timeout_ms, s->n_assigned,
	    s->n_queued + s->n_delayed);
}

/* Undelivered results of connected sessions (their clients are still
 * there to take them). */
static uint64_t
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

/* Whether a drain has finished: nothing runs and connected clients have
 * acknowledged their results, or the drain timeout passed. */
static int
drain_over(struct sched *s)
{
	if (s->n_assigned == 0 && results_owed(s) == 0) {
		log_info("drained: no task running, every connected client "
		         "has its results");
		return 1;
	}
	if (util_now_ms() >= s->drain_until) {
		log_warn("drain timeout (%u ms) passed: stopping with %" PRIu64
		         " task(s) still running and %" PRIu64
		         " result(s) not yet taken by connected clients",
		    s->cfg->drain_timeout_ms, s->n_assigned, results_owed(s));
		return 1;
	}
	return 0;
}

/* What a stop leaves behind (the lock is no longer needed: every request
 * handler sees stop and does nothing). */
static void
drain_end(struct sched *s)
{
	uint64_t held = 0, stored = 0;

	for (size_t i = 0; i < s->sessions.cap; i++)
		if (s->sessions.slots[i].key != 0)
			stored += ((struct session *)s->sessions.slots[i].val)
			              ->n_results;
	held = s->n_queued + s->n_delayed + s->n_assigned;
	log_info("scheduler stopping: %" PRIu64 " submitted, %" PRIu64
	         " done, %" PRIu64 " failed, %" PRIu64 " queued",
	    s->submitted, s->done, s->failed, s->n_queued);
	if (held > 0 || stored > 0)
		log_warn("dropping %" PRIu64 " unfinished task(s) (%" PRIu64
		         " queued, %" PRIu64 " waiting to retry, %" PRIu64
		         " running) and %" PRIu64 " undelivered result(s): "
		         "this scheduler keeps no journal, so they are lost",
		    held, s->n_queued, s->n_delayed, s->n_assigned, stored);
}

int
sched_run(const struct sched_config *cfg)
{
	struct sched s;
	int          rc = 0;

	memset(&s, 0, sizeof(s));
	s.cfg       = cfg;
	s.signal_fd = s.event_fd = -1;
	s.start_ms               = util_now_ms();
	pthread_mutex_init(&s.ev_lock, NULL);
	pthread_mutex_init(&s.lock, NULL);
	pthread_mutex_init(&s.pool_lock, NULL);
	idmap_init(&s.tasks);
	idmap_init(&s.workers);
	idmap_init(&s.sessions);
	idmap_init(&s.peers);
	idmap_init(&s.fns);
	idmap_init(&s.ghosts);
	idmap_init(&s.sups);
	srandom((unsigned)(util_now_us() ^ (uint64_t)getpid()));
	if ((s.disp = disp_new()) == NULL ||
	    (s.auth = authlimit_new()) == NULL) {
		log_error("out of memory");
		disp_free(s.disp);
		return 1;
	}
	timerheap_init(&s.timers);
	proto_decoder_init(&s.dec);
	proto_writer_init(&s.w);
	proto_writer_init(&s.rej);

	if (cfg->n_listen == 0) {
		log_error("no listen address configured");
		rc = 1;
		goto out;
	}
	if (sched_open(&s) != 0) {
		rc = 1;
		goto out;
	}
	if (cfg->ready_file != NULL) {
		FILE *f = fopen(cfg->ready_file, "w");
		if (f != NULL) {
			fprintf(f, "%d\n", (int)getpid());
			fclose(f);
		}
	}
	log_info("scheduler ready (pid %d, heartbeat %u ms, timeout %u ms)",
	    (int)getpid(), cfg->heartbeat_interval_ms,
	    cfg->heartbeat_timeout_ms);

	pthread_mutex_lock(&s.lock);
	while (!s.stop) {
		struct pollfd       pfd[2];
		const struct timer *top = timerheap_peek(&s.timers);
		int                 timeout = 1000;
		uint64_t            now     = util_now_ms();

		if (top != NULL)
			timeout = top->when <= now ? 0
			    : (top->when - now > 1000) ? 1000
			                               : (int)(top->when - now);
		if (s.draining && timeout > DRAIN_CHECK_MS)
			timeout = DRAIN_CHECK_MS;
		s.sleep_until = now + (uint64_t)timeout;
		pthread_mutex_unlock(&s.lock);
		pfd[0].fd     = s.event_fd;
		pfd[0].events = POLLIN;
		pfd[1].fd     = s.signal_fd;
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, timeout) < 0 && errno != EINTR) {
			log_error("poll: %s", strerror(errno));
			rc = 1;
			pthread_mutex_lock(&s.lock);
			break;
		}
		if (pfd[0].revents & POLLIN) {
			uint64_t v;
			if (read(s.event_fd, &v, sizeof(v)) < 0) {
				/* spurious */
			}
		}
		pthread_mutex_lock(&s.lock);
		s.sleep_until = 0;
		if (pfd[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(s.signal_fd, &si, sizeof(si)) > 0)
				drain_begin(&s, si.ssi_signo);
			if (s.stop)
				break;
		}
		loop_turn_locked(&s); /* held answers leave by their timers */
		if (s.draining && drain_over(&s))
			break;
	}
	s.stop = 1;
	pthread_mutex_unlock(&s.lock);
	drain_end(&s);
out:
	alarm(10); /* a hanging nng_close must not keep a stopped scheduler */
	sched_close(&s);
	return rc;
}
