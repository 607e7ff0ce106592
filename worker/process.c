/*
 * process.c - one worker process.
 *
 * An I/O thread talks to the scheduler over a REQ socket and keeps at
 * most two requests in flight: a "poll" (a work request with no results,
 * which the scheduler may park until it has tasks) and a "results" request
 * (results to report, answered at once; the last results of a process that
 * then holds nothing also serve as its poll, "park" 1, and may be parked
 * in its place).  Both carry credit: how many more tasks this process can
 * hold, counting what earlier in-flight requests already asked for.  Executor threads (one per slot) run tasks from the
 * inbox and pack results into the outbox; results leave in batches, as
 * many as finished while the previous batch was in flight.
 *
 * Under a supervisor, each executor writes the task it runs (with its
 * deadline) into its slot of the shared slot table (slots.h) before
 * running it, and skips a task the supervisor marked cancelled; the
 * supervisor enforces the deadline.  A task that returned stays in its
 * slot as "returned" until the scheduler answers the request that carried
 * its result, so that a process that dies in between (a task that broke
 * it: closed its descriptors, left a thread that calls exit()) is charged
 * to that task.  The process declares in the table the exit status it
 * chose before it exits, and a fault in its own code: the supervisor
 * believes nothing else.  With max_tasks the process asks for no more
 * than that many tasks in its life and exits with WRK_EXIT_RECYCLED once
 * their results are acknowledged.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "ferry/ferry.h"
#include "log.h"
#include "objcache.h"
#include "objref.h"
#include "proto.h"
#include "security.h"
#include "slots.h"
#include "util.h"
#include "worker.h"

#define MAX_REQS 8
#define ORPHAN_LOOK_MS 500 /* after a stop signal: is the supervisor gone? */
#define RECONNECT_WAIT_MS 3000 /* for a hello after a lost connection */

enum req_kind { REQ_HELLO = 1, REQ_POLL, REQ_RESULTS };

struct wtask {
	struct wtask *next;
	uint64_t      id;
	ferry_task_fn fn;
	uint32_t      fn_len, args_len;
	uint32_t      timeout_ms; /* hard timeout of the run, 0: none */
	char         *name;
	uint8_t      *args;
	uint8_t       data[];
};

struct wproc;

/*
 * A request slot: one REQ context with its own send and receive
 * operations, so a request leaves from the thread that sends it and its
 * reply is handled on the NNG thread that reads it.  A slot is free when
 * no request is outstanding on it and both operations have finished.
 */
struct req {
	struct wproc        *w;
	uint32_t             id; /* non-zero while a request is outstanding */
	int                  kind;
	int                  polls; /* a results request that is also the poll */
	uint64_t             credit;
	uint64_t             batch; /* results: the outbox batch it carries */
	nng_ctx              ctx;
	nng_aio             *tx, *rx;
	int                  tx_busy, rx_busy;
	int                  dead; /* no context: never used again */
	struct proto_decoder dec;
};

/* An executor thread and the slot of the slot table it writes. */
struct executor {
	struct wproc *w;
	uint32_t      slot;
};

struct wproc {
	const struct wrk_options *o;
	struct ferry_registry     reg;
	nng_socket                sock;
	int                       event_fd, signal_fd;
	atomic_int                fatal; /* exit status requested by rx */
	char                      token[SEC_TOKEN_MAX + 1]; /* "": none */
	uint32_t                  capacity;
	const char              **fn_names; /* reg's, for hello */
	char                      name[160];
	char                      host[128];

	/* shared with executors, under lock */
	pthread_mutex_t     lock;
	pthread_cond_t      cv;
	struct wtask       *in_head, *in_tail;
	uint32_t            held;    /* in the inbox or running */
	uint32_t            running;
	struct proto_writer out;     /* packed result entries (out.entries) */
	int                 stopping;
	double              avg_us;  /* moving average of task run time */
	uint64_t            n_timed;
	struct objcache    *cache;
	struct proto_writer ev_loaded, ev_evicted; /* keys to report */
	int                 crashed; /* a task crashed: report, then exit */
	pthread_t          *threads;
	struct executor    *execs;
	int                 n_threads;
	uint64_t            taken;   /* tasks received and not handed back
	                              * (for max_tasks) */
	struct wrk_slots   *slots;   /* shared with the supervisor, or NULL */
	int                 canary[2]; /* a pipe only we hold (see
	                                * canary_intact) */
	uint64_t            next_canary_ms;
	uint64_t            out_batch; /* number of the batch in the outbox */
	uint64_t           *ret_task;  /* per slot: the task that returned
	                                * there last, while the outbox batch */
	uint64_t           *ret_batch; /* its result is in is not answered;
	                                * 0: none */

	/* I/O thread only */
	atomic_int          pipe_lost;
	struct req          reqs[MAX_REQS];
	uint32_t            next_req;
	uint64_t            granted;
	int                 poll_inflight, res_inflight;
	int                 registered;
	uint64_t            hello_deadline;
	uint32_t            hello_wait_ms; /* how long that deadline is */
	uint64_t            hb_ms, hb_timeout_ms;
	uint64_t            last_reply_ms;
	size_t              max_msg;
	uint64_t            last_send_ms;
	uint64_t            worker_id;
	int                 draining;
	struct proto_writer msgw, spare;
	int                 closing; /* no more requests */
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
	o->slot_table_fd      = -1;
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

/* The object an argument references, pinned for the task's duration. */
static int
task_object(ferry_task *t, const msgpack_object *ref, struct obj_entry **out)
{
	struct obj_ref r;
	char           err[900];

	if (!ferry_is_object(ref)) {
		t->code = FERRY_EOBJECT;
		return ferry_task_fail(t,
		    "%s: argument is not an object reference (msgpack ext "
		    "type %d)",
		    t->name, FERRY_EXT_OBJECT);
	}
	if (objref_decode(ref->via.ext.ptr, ref->via.ext.size, &r, err,
	        sizeof(err)) != 0) {
		t->code = FERRY_EOBJECT;
		return ferry_task_fail(t, "%s: %s", t->name, err);
	}
	if (t->n_pins == WRK_MAX_PINS) {
		t->code = FERRY_EOBJECT;
		return ferry_task_fail(t,
		    "%s: a task may hold at most %d objects", t->name,
		    WRK_MAX_PINS);
	}
	if (t->cache == NULL ||
	    objcache_acquire(t->cache, &r, out, err, sizeof(err)) != 0) {
		t->code = FERRY_EOBJECT;
		return ferry_task_fail(t, "%s", t->cache != NULL ? err
		    : "this worker has no object cache");
	}
	t->pins[t->n_pins++] = *out;
	return 0;
}

__attribute__((visibility("default"))) int
ferry_task_object_bytes(ferry_task *t, const msgpack_object *ref,
    const void **data, size_t *len)
{
	struct obj_entry *e;
	const void       *p;
	size_t            n;
	if (task_object(t, ref, &e) != 0)
		return -1;
	if ((p = objcache_data(e, &n)) == NULL) {
		t->code = FERRY_EOBJECT;
		return ferry_task_fail(t,
		    "%s: this object's loader builds a value, not bytes: use "
		    "ferry_task_object()",
		    t->name);
	}
	*data = p;
	*len  = n;
	return 0;
}

__attribute__((visibility("default"))) int
ferry_task_object(ferry_task *t, const msgpack_object *ref, void **value)
{
	struct obj_entry *e;
	if (task_object(t, ref, &e) != 0)
		return -1;
	*value = objcache_value(e);
	return 0;
}

static void
unpin_all(struct ferry_task *t, int invalidate)
{
	for (int i = 0; i < t->n_pins; i++) {
		if (invalidate)
			objcache_invalidate(t->cache, t->pins[i]);
		objcache_release(t->cache, t->pins[i]);
	}
	t->n_pins = 0;
}

static void send_work_locked(struct wproc *w, int with_results);

/* ------------------------------------------------ crash isolation */

/*
 * A task that faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL) or aborts fails
 * alone: the handler jumps back to the executor, which reports the task
 * failed with the signal, and the process then exits so that the
 * supervisor starts a clean one (the fault may have left locks or heap
 * state broken).  A watchdog alarm ends the process if reporting hangs.
 */
static __thread sigjmp_buf   crash_jmp;
static __thread volatile int in_task;
static __thread volatile int crash_sig;
static __thread void *volatile crash_addr;
static struct wrk_slots *volatile crash_slots; /* to say it was ours */
static int   canary_fd = -1; /* the read end of the canary pipe */
static dev_t canary_dev;
static ino_t canary_ino;

/*
 * Whether this process's descriptors are still its own.  A task that
 * closes them (0-1023, say) leaves NNG's sockets, eventfds and epoll
 * descriptors gone, or replaced by whatever was opened since: the process
 * cannot go on.  The canary is a pipe only this process holds: its inode
 * is its own, and the I/O thread, which polls its read end, wakes the
 * moment its write end is closed.  Async-signal-safe.
 */
static int
canary_intact(void)
{
	struct stat st;
	return canary_fd < 0 ||
	    (fstat(canary_fd, &st) == 0 && st.st_dev == canary_dev &&
	        st.st_ino == canary_ino);
}

static void
crash_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (!in_task) {
		/* not in a task: the worker itself is broken (maybe by a
		 * task: its descriptors closed); say so in the table and die
		 * with the signal so the supervisor reports it */
		wrk_slots_set_fault(crash_slots,
		    canary_intact() ? sig : WRK_SLOTS_FAULT_FDS);
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	in_task    = 0;
	crash_sig  = sig;
	crash_addr = si != NULL ? si->si_addr : NULL;
	alarm(5);
	siglongjmp(crash_jmp, 1);
}

static void
crash_handlers_install(void)
{
	static const int sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL,
		SIGABRT };
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = crash_handler;
	sa.sa_flags     = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

/* Describe a crash for the task's error message. */
static void
crash_describe(struct wproc *w, struct ferry_task *ctx, char *msg,
    size_t len)
{
	const char *obj = w->cache != NULL
	    ? objcache_path_of_addr(w->cache, crash_addr)
	    : NULL;
	if (crash_sig == SIGBUS && obj != NULL)
		snprintf(msg, len,
		    "task '%s' crashed its worker process: SIGBUS (bus "
		    "error) reading object %s at %p: the file was truncated "
		    "or changed while mapped; the cached object is dropped",
		    ctx->name, obj, crash_addr);
	else
		snprintf(msg, len,
		    "task '%s' crashed its worker process: SIG%s (%s) at %p",
		    ctx->name,
		    sigabbrev_np(crash_sig) ? sigabbrev_np(crash_sig) : "?",
		    strsignal(crash_sig), crash_addr);
}

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
	ctx->failed  = 0;
	ctx->crashed = 0;
	ctx->code   = 0;
	ctx->err[0] = '\0';
	ctx->n_pins = 0;
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
	if (sigsetjmp(crash_jmp, 1) != 0) {
		/* the task faulted (see crash_handler) */
		code = FERRY_ECRASHED;
		crash_describe(w, ctx, msg, sizeof(msg));
		unpin_all(ctx, 1);
		/* the executor marks the process crashed once this report
		 * is in the outbox: marked now, the I/O thread could exit
		 * before the report leaves, and the crash would go
		 * uncounted */
		ctx->crashed = 1;
		log_error("%s", msg);
		goto report;
	}
	in_task = 1;
	rc      = t->fn(ctx, &args);
	in_task = 0;
	unpin_all(ctx, 0);
	if (rc != 0 || ctx->failed) {
		code = ctx->code != 0 ? ctx->code : FERRY_ETASK;
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

/*
 * Claim the executor's slot in the slot table for t, then run it, unless
 * the scheduler cancelled it (the supervisor says so in the table): then
 * its result is FERRY_ECANCELED, which the scheduler drops as late.
 */
static int
run_claimed(struct wproc *w, uint32_t slot, struct wtask *t,
    struct ferry_task *ctx, msgpack_zone *zone, struct proto_writer *res)
{
	uint64_t now = util_now_ms();
	static const char msg[] = "cancelled before it started";

	if (wrk_slots_begin(w->slots, slot, t->id, now,
	        t->timeout_ms > 0 ? now + t->timeout_ms : 0) != 0) {
		log_debug("task %" PRIu64 " (%s) was cancelled: skipped", t->id,
		    t->name);
		proto_writer_reset(res);
		proto_pack_result(res, t->id, FERRY_ECANCELED, msg,
		    sizeof(msg) - 1);
		return 0;
	}
	/* the slot shows it running until its result is in the outbox */
	run_task(w, t, ctx, zone, res);
	return 1;
}

/*
 * The task that ran in slot has its result in the outbox (lock held): the
 * slot shows it as returned until the scheduler answers the request that
 * carries that batch, then it is idle.  A process that dies in between
 * (the task broke it) is charged to the task (slots.h).
 */
static void
returned_locked(struct wproc *w, uint32_t slot, uint64_t task)
{
	if (w->slots == NULL)
		return;
	wrk_slots_set_returned(w->slots, slot, task);
	wrk_slots_end(w->slots, slot);
	w->ret_task[slot]  = task;
	w->ret_batch[slot] = w->out_batch;
}

/* The scheduler answered the results request that carried batch (lock
 * held): the tasks whose results were in it, or in an earlier one, are no
 * longer this process's to answer for. */
static void
acked_locked(struct wproc *w, uint64_t batch)
{
	if (w->slots == NULL)
		return;
	for (int i = 0; i < w->n_threads; i++)
		if (w->ret_batch[i] != 0 && w->ret_batch[i] <= batch) {
			if (wrk_slots_returned(w->slots, (uint32_t)i) ==
			    w->ret_task[i])
				wrk_slots_set_returned(w->slots, (uint32_t)i,
				    0);
			w->ret_batch[i] = 0;
		}
}

static void *
executor_main(void *arg)
{
	struct executor    *ex = arg;
	struct wproc       *w  = ex->w;
	struct ferry_task   ctx;
	msgpack_zone        zone;
	struct proto_writer res;
	stack_t             ss, old_ss;

	memset(&ctx, 0, sizeof(ctx));
	ctx.cache = w->cache;
	/* an alternate stack, so a task that overflows its own stack is
	 * still reported; the previous one (a sanitizer's, say) comes back
	 * when the thread ends */
	memset(&old_ss, 0, sizeof(old_ss));
	ss.ss_size  = 64 * 1024;
	ss.ss_flags = 0;
	if ((ss.ss_sp = malloc(ss.ss_size)) != NULL &&
	    sigaltstack(&ss, &old_ss) != 0) {
		free(ss.ss_sp);
		ss.ss_sp = NULL;
	}
	msgpack_sbuffer_init(&ctx.out);
	msgpack_packer_init(&ctx.pk, &ctx.out, msgpack_sbuffer_write);
	msgpack_zone_init(&zone, 4096);
	proto_writer_init(&res);

	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct wtask *t;
		int           wake, ran;
		uint64_t      t0, id;
		double        dt;

		while (!w->stopping && !w->crashed && w->in_head == NULL)
			pthread_cond_wait(&w->cv, &w->lock);
		if (w->stopping || w->crashed)
			break;
		t          = w->in_head;
		w->in_head = t->next;
		if (w->in_head == NULL)
			w->in_tail = NULL;
		w->running++;
		pthread_mutex_unlock(&w->lock);

		t0  = util_now_us();
		id  = t->id;
		ran = run_claimed(w, ex->slot, t, &ctx, &zone, &res);
		dt  = (double)(util_now_us() - t0);
		free(t);

		pthread_mutex_lock(&w->lock);
		wake      = 0;
		w->avg_us = w->n_timed++ == 0 ? dt : 0.9 * w->avg_us + 0.1 * dt;
		proto_writer_append(&w->out, &res);
		if (ran)
			returned_locked(w, ex->slot, id);
		w->running--;
		w->held--;
		w->tasks_run++;
		if (ctx.crashed)
			w->crashed = 1;
		if (w->crashed) {
			pthread_cond_broadcast(&w->cv);
			wake = 1;
		}
		/* report at once when no report is in flight; otherwise the
		 * results wait for its answer and leave together */
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
	if (ss.ss_sp != NULL) {
		sigaltstack(&old_ss, NULL);
		free(ss.ss_sp);
	}
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

static struct req *
req_new(struct wproc *w, int kind, uint64_t credit)
{
	for (int i = 0; i < MAX_REQS; i++) {
		if (w->reqs[i].id == 0 && !w->reqs[i].tx_busy &&
		    !w->reqs[i].rx_busy && !w->reqs[i].dead) {
			if (++w->next_req >= 0x7fffffff)
				w->next_req = 1;
			w->reqs[i].id      = w->next_req;
			w->reqs[i].kind    = kind;
			w->reqs[i].polls   = 0;
			w->reqs[i].credit  = credit;
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

	if (w->closing) {
		r->id = 0;
		return -1;
	}
	if ((rv = nng_msg_alloc(&msg, pw->buf.size)) != 0) {
		log_error("cannot build a request: %s", nng_strerror(rv));
		r->id = 0;
		return -1;
	}
	memcpy(nng_msg_body(msg), pw->buf.data, pw->buf.size);
	nng_aio_set_msg(r->tx, msg);
	r->tx_busy = r->rx_busy = 1;
	/* NNG writes it from this thread when the connection is free; the
	 * reply arrives in req_rx_cb (failures, too) */
	nng_ctx_send(r->ctx, r->tx);
	nng_ctx_recv(r->ctx, r->rx);
	w->last_send_ms = util_now_ms();
	return 0;
}

/* Register (lock held). */
static void
send_hello_locked(struct wproc *w)
{
	struct req        *r = req_new(w, REQ_HELLO, 0);
	struct proto_hello h = { 0 };
	if (r == NULL)
		return;
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
	send_req(w, r, &w->msgw);
	w->hello_wait_ms  = w->o->connect_timeout_ms;
	w->hello_deadline = util_now_ms() + w->hello_wait_ms;
	w->last_reply_ms  = util_now_ms();
}

/* Send a work request (lock held); with_results takes the outbox along. */
static void
send_work_locked(struct wproc *w, int with_results)
{
	uint64_t              avail = 0;
	int                   polls;
	struct req           *r;
	struct proto_work     m = { 0 };
	struct objcache_stats st;
	struct proto_cache    pc;

	avail = credit_locked(w);
	/* the last results of an idle process ask for work themselves: the
	 * scheduler may park them like a poll, and no separate poll (and no
	 * empty answer to the report) is needed */
	polls = with_results && !w->poll_inflight && !w->draining &&
	    !w->crashed && w->held == 0 && avail > 0;
	/* the outbox's results go in this request: a new outbox takes
	 * those that finish meanwhile */
	if (with_results)
		proto_writer_swap(&w->out, &w->spare);

	r = req_new(w, with_results ? REQ_RESULTS : REQ_POLL, avail);
	m.credit  = avail;
	m.park    = polls;
	m.results = with_results ? &w->spare : NULL;
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
	if (r == NULL || send_req(w, r, &w->msgw) != 0) {
		/* keep the results (and events) for the next attempt, the
		 * older ones first */
		if (with_results) {
			proto_writer_append(&w->spare, &w->out);
			proto_writer_swap(&w->out, &w->spare);
			proto_writer_reset(&w->spare);
		}
		return;
	}
	proto_writer_reset(&w->spare);
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
		t->next       = NULL;
		t->id         = pt->id;
		t->timeout_ms = pt->timeout_ms;
		t->fn_len     = pt->fn_len;
		t->args_len   = pt->args_len;
		t->name       = (char *)t->data;
		t->args       = t->data + pt->fn_len + 1;
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
	w->taken += n;
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
drop_inbox_locked(struct wproc *w)
{
	struct wtask *t, *next;
	uint32_t      n = 0;
	for (t = w->in_head; t != NULL; t = next) {
		next = t->next;
		free(t);
		n++;
	}
	w->in_head = w->in_tail = NULL;
	w->held -= n;
	w->taken -= n; /* handed back: they do not count toward max_tasks */
	return n;
}

static uint32_t
drop_inbox(struct wproc *w)
{
	uint32_t n;
	pthread_mutex_lock(&w->lock);
	n = drop_inbox_locked(w);
	pthread_mutex_unlock(&w->lock);
	return n;
}

/* Handle the reply to the request in slot r (on an NNG thread). */
static int
handle_reply(struct wproc *w, struct req *r, nng_msg *msg)
{
	struct proto_msg m;
	char             err[512];
	uint32_t         n_new = 0;
	int              rv, kind;
	struct wtask    *head = NULL, *tail = NULL;

	rv = proto_decode(&r->dec, nng_msg_body(msg), nng_msg_len(msg), &m,
	    err, sizeof(err));
	if (rv == 0 && m.type == PROTO_TASKS && m.n_tasks > 0)
		n_new = build_tasks(w, &m, &head, &tail);

	pthread_mutex_lock(&w->lock);
	w->last_reply_ms = util_now_ms();
	if (r->id == 0) {
		pthread_mutex_unlock(&w->lock);
		free_list(head);
		return 0; /* a reply from before a reconnection */
	}
	kind  = r->kind;
	r->id = 0;
	if (kind == REQ_RESULTS && rv == 0)
		acked_locked(w, r->batch);
	if (kind == REQ_HELLO) {
		if (rv == 0 && m.type == PROTO_WELCOME) {
			w->registered = 1;
			w->worker_id  = m.id;
			wrk_slots_set_worker(w->slots, m.id);
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
			log_error("scheduler refused registration: %s%s", m.msg,
			    m.code == FERRY_EAUTH
			        ? " (check the token file: --token-file)"
			        : "");
			return m.code == FERRY_EAUTH ? -2 : -1;
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
	if (kind == REQ_POLL || r->polls)
		w->poll_inflight = 0;
	if (kind == REQ_RESULTS)
		w->res_inflight = 0;
	if (rv == 0 && m.type == PROTO_ERROR && m.code == FERRY_ESTATE) {
		/* it does not know us (our lease lapsed while we were
		 * frozen, or it restarted): the tasks queued here were
		 * re-queued there, so running them now would only duplicate
		 * work; drop them and register again */
		if (w->registered) {
			uint32_t n = drop_inbox_locked(w);
			log_warn("the scheduler no longer knows this worker "
			         "(%s); %u queued task(s) dropped, registering "
			         "again",
			    m.msg, n);
		}
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
	if (w->out.entries > 0 && !w->res_inflight)
		send_work_locked(w, 1);
	/* ask for more with a poll only when idle or when no report is on
	 * its way: a report carries credit too, and a poll sent while the
	 * first task of a batch runs only competes with it for the CPU */
	if (!w->poll_inflight && !w->draining &&
	    (w->held == 0 || (!w->res_inflight && w->out.entries == 0 &&
	                         w->held < (uint32_t)w->o->slots)) &&
	    credit_locked(w) > 0)
		send_work_locked(w, 0);
	if (!w->poll_inflight && !w->res_inflight &&
	    util_now_ms() - w->last_send_ms >= w->hb_ms)
		send_work_locked(w, 0); /* heartbeat */
}

/* A request's reply (or its failure) arrives here, on an NNG thread. */
static void
req_rx_cb(void *arg)
{
	struct req   *r = arg;
	struct wproc *w = r->w;
	nng_msg      *msg;
	int           rv = nng_aio_result(r->rx), wake;

	if (rv == 0) {
		msg = nng_aio_get_msg(r->rx);
		nng_aio_set_msg(r->rx, NULL);
		rv  = handle_reply(w, r, msg);
		nng_msg_free(msg);
		pthread_mutex_lock(&w->lock);
		r->rx_busy = 0;
		if (rv != 0) {
			pthread_mutex_unlock(&w->lock);
			/* the supervisor restarts us, unless the scheduler
			 * refused our token: restarting cannot help */
			atomic_store(&w->fatal,
			    rv == -2 ? WRK_EXIT_CONFIG : WRK_EXIT_LOST);
			wake_io(w);
			return;
		}
		pump_locked(w);
		/* the I/O thread decides: drain, crash exit, or recycling */
		wake = w->draining || w->crashed ||
		    (w->o->max_tasks > 0 && w->taken >= w->o->max_tasks &&
		        w->held == 0);
		pthread_mutex_unlock(&w->lock);
		if (wake)
			wake_io(w);
		return;
	}
	pthread_mutex_lock(&w->lock);
	r->rx_busy = 0;
	if (r->id != 0 && rv != NNG_ECLOSED && !w->closing) {
		/* the request failed without an answer: forget it (what it
		 * asked for lapses) and carry on; a reset connection is
		 * handled as a lost one (pipe_cb) */
		if (rv != NNG_ECONNRESET)
			log_warn("request to the scheduler failed: %s",
			    nng_strerror(rv));
		w->granted = w->granted >= r->credit ? w->granted - r->credit
		                                     : 0;
		if (r->kind == REQ_POLL || r->polls)
			w->poll_inflight = 0;
		if (r->kind == REQ_RESULTS)
			w->res_inflight = 0;
		r->id = 0;
		pump_locked(w);
	}
	pthread_mutex_unlock(&w->lock);
}

/* A request left (or could not). */
static void
req_tx_cb(void *arg)
{
	struct req   *r = arg;
	struct wproc *w = r->w;
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

/*
 * Abandon the request in slot r (lock held): closing its context ends both
 * operations (as NNG_ECLOSED), and the slot gets a fresh context.
 * (Cancelling the operations instead trips NNG 1.5: a send still queued
 * for a connection cannot be cancelled while its receive waits, and
 * cancelling the receive first leaves a send that crashes when it is
 * cancelled later.)
 */
static void
req_abandon_locked(struct wproc *w, struct req *r)
{
	r->id = 0;
	if (r->dead || (!r->tx_busy && !r->rx_busy))
		return;
	nng_ctx_close(r->ctx);
	if (w->closing || nng_ctx_open(&r->ctx, w->sock) != 0)
		r->dead = 1;
}

/* Abandon every outstanding request (lock held): after a lost connection
 * a REQ context would send them again on the next one. */
static void
reqs_abandon_locked(struct wproc *w)
{
	for (int i = 0; i < MAX_REQS; i++)
		req_abandon_locked(w, &w->reqs[i]);
}

static void
reqs_stop(struct wproc *w)
{
	pthread_mutex_lock(&w->lock);
	w->closing = 1;
	reqs_abandon_locked(w);
	pthread_mutex_unlock(&w->lock);
	for (int i = 0; i < MAX_REQS; i++) {
		if (w->reqs[i].tx != NULL)
			nng_aio_stop(w->reqs[i].tx);
		if (w->reqs[i].rx != NULL)
			nng_aio_stop(w->reqs[i].rx);
	}
}

static int
reqs_open(struct wproc *w)
{
	int rv;
	for (int i = 0; i < MAX_REQS; i++) {
		struct req *r = &w->reqs[i];
		r->w          = w;
		proto_decoder_init(&r->dec);
		if ((rv = nng_ctx_open(&r->ctx, w->sock)) != 0 ||
		    (rv = nng_aio_alloc(&r->rx, req_rx_cb, r)) != 0 ||
		    (rv = nng_aio_alloc(&r->tx, req_tx_cb, r)) != 0)
			return rv;
	}
	return 0;
}

static void
reqs_free(struct wproc *w)
{
	for (int i = 0; i < MAX_REQS; i++) {
		struct req *r = &w->reqs[i];
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

/* The cache loaded or dropped an object: tell the scheduler in the next
 * work request (bounded: locality is a hint, not a promise). */
static void
on_cache_event(void *arg, int loaded, const char *key)
{
	struct wproc *w = arg;
	size_t        n = strlen(key);
	pthread_mutex_lock(&w->lock);
	if (loaded && w->ev_loaded.entries < 1024)
		proto_pack_str(&w->ev_loaded, key, n);
	else if (!loaded && w->ev_evicted.entries < 1024)
		proto_pack_str(&w->ev_evicted, key, n);
	pthread_mutex_unlock(&w->lock);
}

/* Loaders of task libraries, called through the cache's interface. */
static int
lib_load(void *arg, const char *path, int fd, uint64_t size, void **value,
    size_t *bytes, char *err, size_t errlen)
{
	const struct wrk_loader *f = arg;
	return f->load(path, fd, size, value, bytes, err, errlen);
}

static void
lib_release(void *arg, void *value, size_t bytes)
{
	const struct wrk_loader *f = arg;
	if (f->unload != NULL)
		f->unload(value, bytes);
}

/* Create the object cache with the group's roots and budget, and the
 * loaders task libraries registered. */
static int
cache_open(struct wproc *w)
{
	char   err[1024];
	size_t budget = w->o->object_cache;

	if (budget == 0) {
		long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
		budget = (pages > 0 && psz > 0) ? (size_t)pages * (size_t)psz / 4
		                                : (size_t)1 << 30;
	}
	if (objcache_new(&w->cache, budget, w->o->object_roots,
	        w->o->n_object_roots, err, sizeof(err)) != 0) {
		log_error("object cache: %s", err);
		return -1;
	}
	for (size_t i = 0; i < w->reg.n_loaders; i++) {
		struct obj_loader l;
		memset(&l, 0, sizeof(l));
		util_strlcpy(l.name, w->reg.loaders[i].name, sizeof(l.name));
		l.load    = lib_load;
		l.release = lib_release;
		l.arg     = &w->reg.loaders[i];
		if (objcache_add_loader(w->cache, &l) != 0) {
			log_error("loader '%s': a loader of that name exists",
			    l.name);
			return -1;
		}
	}
	objcache_set_listener(w->cache, on_cache_event, w);
	return 0;
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

/* Die if this process lost its descriptors (canary_intact), looking at
 * most every 50 ms unless woken by the canary: the table says so, and the
 * supervisor charges the task that ran (or had just returned). */
static void
check_descriptors(struct wproc *w, uint64_t now, int woken)
{
	if (w->canary[0] < 0 || (!woken && now < w->next_canary_ms))
		return;
	w->next_canary_ms = now + 50;
	if (canary_intact() && !woken)
		return;
	/* not even the log may be where it was: no message */
	wrk_slots_set_fault(w->slots, WRK_SLOTS_FAULT_FDS);
	abort();
}

static int
io_loop(struct wproc *w)
{
	uint64_t drain_deadline = 0;

	pthread_mutex_lock(&w->lock);
	send_hello_locked(w);
	pthread_mutex_unlock(&w->lock);
	for (;;) {
		struct pollfd pfd[3];
		uint64_t      now = util_now_ms();
		uint32_t      out_n, running;
		static uint64_t last_turn;
		int           inflight, registered;

		check_descriptors(w, now, 0);
		pthread_mutex_lock(&w->lock);
		registered = w->registered;
		pthread_mutex_unlock(&w->lock);
		if (!registered && now >= w->hello_deadline) {
			log_error("no answer from the scheduler at %s within "
			          "%u ms%s",
			    w->o->connect, w->hello_wait_ms,
			    sec_connect_hint(w->o->connect));
			return WRK_EXIT_LOST;
		}
		if (w->o->parent_pid > 0 && getppid() != w->o->parent_pid) {
			log_warn("supervisor is gone: exiting");
			return 0;
		}
		if (atomic_load(&w->fatal) != 0)
			return atomic_load(&w->fatal);
		if (last_turn != 0 && now - last_turn > 1000) {
			/* this loop turns at least every 100 ms: the process
			 * was frozen (SIGSTOP, a suspended host), so silence
			 * is ours, not the scheduler's; give it time to answer
			 * (it may say the lease is gone: then register again,
			 * after reporting what finished, which it counts as
			 * late) */
			log_warn("this process was frozen for %" PRIu64 " ms",
			    now - last_turn);
			pthread_mutex_lock(&w->lock);
			w->last_reply_ms = now;
			pthread_mutex_unlock(&w->lock);
		}
		last_turn = now;
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
			return WRK_EXIT_LOST;
		}
		out_n    = w->out.entries;
		running  = w->running;
		inflight = w->res_inflight;
		if (w->crashed && out_n == 0 && !inflight) {
			/* the crash is reported: start afresh */
			pthread_mutex_unlock(&w->lock);
			log_warn("exiting after a task crashed; the "
			         "supervisor starts a new process");
			return WRK_EXIT_CRASHED;
		}
		if (w->o->max_tasks > 0 && w->taken >= w->o->max_tasks &&
		    w->held == 0 && out_n == 0 && !inflight && !w->draining) {
			/* every task it may take has run and its result is
			 * acknowledged: make room for a fresh process */
			uint64_t run = w->tasks_run;
			pthread_mutex_unlock(&w->lock);
			wrk_slots_set_recycled(w->slots);
			log_info("recycling: %" PRIu64 " task(s) run, the "
			         "limit per process is %" PRIu64,
			    run, w->o->max_tasks);
			return WRK_EXIT_RECYCLED;
		}
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
		pfd[2].fd     = w->canary[0];
		pfd[2].events = POLLIN;
		pfd[2].revents = 0;
		if (poll(pfd, w->canary[0] >= 0 ? 3 : 2, 100) < 0 &&
		    errno != EINTR) {
			log_error("poll: %s", strerror(errno));
			return 1;
		}
		/* the canary's other end closed, or any of these gone: the
		 * process's descriptors were closed under it */
		if ((pfd[2].revents | ((pfd[0].revents | pfd[1].revents) &
		                          POLLNVAL)) != 0)
			check_descriptors(w, util_now_ms(), 1);
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
				/* a report parked as the poll is answered only
				 * when superseded: do that now (credit 0), so the
				 * drain need not wait for a heartbeat interval */
				for (int i = 0; i < MAX_REQS; i++)
					if (w->reqs[i].id != 0 &&
					    w->reqs[i].kind == REQ_RESULTS &&
					    w->reqs[i].polls) {
						send_work_locked(w, 0);
						break;
					}
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
			reqs_abandon_locked(w);
			w->granted       = 0;
			w->poll_inflight = w->res_inflight = 0;
			w->registered    = 0;
			proto_writer_reset(&w->out);
			if (!w->draining) {
				send_hello_locked(w);
				/* a hello can be lost with the old connection:
				 * if none is answered soon, start afresh (the
				 * supervisor restarts this process) */
				if (w->hello_wait_ms > RECONNECT_WAIT_MS) {
					w->hello_wait_ms = RECONNECT_WAIT_MS;
					w->hello_deadline = util_now_ms() +
					    RECONNECT_WAIT_MS;
				}
			}
			pthread_mutex_unlock(&w->lock);
			if (w->draining)
				return 0;
		}
	}
}

/*
 * Before exiting: if the supervisor is gone, nobody will kill this
 * process's group when it ends, so take it down here, this process with
 * it (as its last act: nobody waits for its exit status any more).  What
 * its tasks started goes with it, as it would under a living supervisor.
 */
static void
orphaned_group_stop(const struct wrk_options *o, int signalled)
{
	/* only a process a supervisor started (in a group of its own) */
	if (o->supervisor_token == 0 || o->parent_pid <= 0 ||
	    getpgrp() != getpid())
		return;
	/* a stop signal the supervisor did not announce in the table may be
	 * the kernel's word that it died (PR_SET_PDEATHSIG): that comes when
	 * the supervisor's first thread ends, a moment before this process
	 * is given to a new parent, so look again for a little while */
	for (int i = 0; signalled && i < ORPHAN_LOOK_MS / 10 &&
	     getppid() == o->parent_pid;
	     i++)
		usleep(10000);
	if (getppid() == o->parent_pid)
		return;
	log_info("supervisor gone: stopping process group %d (this process "
	         "and what its tasks started)",
	    (int)getpid());
	kill(0, SIGKILL);
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
	w.canary[0] = w.canary[1] = -1;
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
	proto_writer_init(&w.ev_loaded);
	proto_writer_init(&w.ev_evicted);
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
	/* the table first, so that every exit from here on is declared in
	 * it (a library that cannot load too) */
	if (o->slot_table_fd >= 0) {
		char err[512];
		struct stat st;
		if (wrk_slots_attach(&w.slots, o->slot_table_fd,
		        (uint32_t)o->slots, err, sizeof(err)) != 0) {
			log_error("%s", err);
			rc = WRK_EXIT_CONFIG;
			goto out;
		}
		close(o->slot_table_fd);
		crash_slots = w.slots;
		/* the canary of canary_intact() (without it, a process whose
		 * descriptors a task closed may linger until it gives up on
		 * the scheduler) */
		if (pipe2(w.canary, O_CLOEXEC) == 0 &&
		    fstat(w.canary[0], &st) == 0) {
			canary_dev = st.st_dev;
			canary_ino = st.st_ino;
			canary_fd  = w.canary[0];
		} else {
			log_warn("canary pipe: %s", strerror(errno));
		}
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
	if (cache_open(&w) != 0) {
		rc = 2;
		goto out;
	}
	if ((w.fn_names = calloc(w.reg.n + 1, sizeof(*w.fn_names))) == NULL) {
		log_error("out of memory");
		rc = 1;
		goto out;
	}
	for (size_t i = 0; i < w.reg.n; i++)
		w.fn_names[i] = w.reg.fns[i].name;
	crash_handlers_install();

	if ((rv = nng_req0_open(&w.sock)) != 0 ||
	    (rv = util_sock_setup(w.sock, o->max_message_size)) != 0 ||
	    (rv = nng_pipe_notify(w.sock, NNG_PIPE_EV_REM_POST, pipe_cb,
	         &w)) != 0 ||
	    (rv = reqs_open(&w)) != 0) {
		log_error("cannot open a socket: %s", nng_strerror(rv));
		rc = 1;
		goto out;
	}
	{
		struct sec_dial sd = { o->tls_ca_file, o->tls_cert_key_file,
			o->tls_server_name, o->token_file };
		char            err[512];
		if ((o->token_file != NULL &&
		        (sec_token_load(o->token_file, w.token, err,
		             sizeof(err)) != 0 ||
		            sec_token_check_url(o->connect, w.token, err,
		                sizeof(err)) != 0)) ||
		    sec_dial(w.sock, o->connect, &sd, err, sizeof(err)) != 0) {
			log_error("%s", err);
			rc = WRK_EXIT_CONFIG;
			goto out;
		}
	}

	w.n_threads = o->slots;
	w.out_batch = 1;
	if ((w.threads = calloc((size_t)w.n_threads, sizeof(pthread_t))) ==
	        NULL ||
	    (w.execs = calloc((size_t)w.n_threads, sizeof(*w.execs))) ==
	        NULL ||
	    (w.ret_task = calloc((size_t)w.n_threads, sizeof(uint64_t))) ==
	        NULL ||
	    (w.ret_batch = calloc((size_t)w.n_threads, sizeof(uint64_t))) ==
	        NULL) {
		w.n_threads = 0;
		rc          = 1;
		goto out;
	}
	for (int i = 0; i < w.n_threads; i++) {
		w.execs[i].w    = &w;
		w.execs[i].slot = (uint32_t)i;
		if (pthread_create(&w.threads[i], NULL, executor_main,
		        &w.execs[i]) != 0) {
			log_error("cannot start executor thread: %s",
			    strerror(errno));
			w.n_threads = i;
			rc          = 1;
			goto out;
		}
	}
	rc = io_loop(&w);
	/* an orphan has reported what it ran (it drained): nobody waits for
	 * its cleanup, and a close that hangs must not keep what its tasks
	 * started alive, so its group goes now, this process with it */
	orphaned_group_stop(o, w.draining && !wrk_slots_drain_asked(w.slots));
	/* if closing hangs (NNG 1.5's nng_close can), the alarm ends the
	 * process: the supervisor only needs it gone */
	alarm(10);
	reqs_stop(&w);
out:
	if (w.threads != NULL) {
		drop_inbox(&w);
		pthread_mutex_lock(&w.lock);
		if (w.running > 0) {
			/* a task is still running (drain timeout): its
			 * thread cannot be stopped, so leave now */
			pthread_mutex_unlock(&w.lock);
			nng_close(w.sock);
			wrk_slots_set_exit(w.slots, rc);
			orphaned_group_stop(o,
			    w.draining && !wrk_slots_drain_asked(w.slots));
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
		free(w.execs);
	}
	reqs_stop(&w);
	if (w.sock.id != 0)
		nng_close(w.sock);
	reqs_free(&w);
	drop_inbox(&w);
	if (w.signal_fd >= 0)
		close(w.signal_fd);
	if (w.event_fd >= 0)
		close(w.event_fd);
	canary_fd = -1;
	for (int i = 0; i < 2; i++)
		if (w.canary[i] >= 0)
			close(w.canary[i]);
	proto_writer_fini(&w.out);
	proto_writer_fini(&w.spare);
	proto_writer_fini(&w.msgw);
	proto_writer_fini(&w.ev_loaded);
	proto_writer_fini(&w.ev_evicted);
	objcache_free(w.cache);
	wrk_registry_fini(&w.reg);
	free(w.ret_task);
	free(w.ret_batch);
	free(w.fn_names);
	/* the last word: this status is the process's own choice */
	crash_slots = NULL;
	wrk_slots_set_exit(w.slots, rc);
	wrk_slots_free(w.slots);
	pthread_mutex_destroy(&w.lock);
	pthread_cond_destroy(&w.cv);
	orphaned_group_stop(o, 0);
	return rc;
}
