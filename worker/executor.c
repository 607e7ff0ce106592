/*
 * executor.c - a worker process's executors: one thread per slot runs
 * tasks from the inbox and puts their results in the outbox.
 *
 * Crash isolation: a task that faults or aborts fails alone (the handler
 * jumps back to its executor), and the process then exits so that the
 * supervisor starts a clean one.  Under a supervisor, each executor
 * writes the task it runs (with its deadline) into its slot of the
 * shared slot table (slots.h) before running it, and skips a task the
 * supervisor marked cancelled; the supervisor enforces the deadline.  A
 * task that returned stays in its slot as "returned" until the scheduler
 * answers the request that carried its result, so that a process that
 * dies in between (a task that broke it: closed its descriptors, left a
 * thread that calls exit()) is charged to that task.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "objcache.h"
#include "process_int.h"
#include "slots.h"
#include "util.h"

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
int
wp_canary_intact(void)
{
	struct stat st;
	return canary_fd < 0 ||
	    (fstat(canary_fd, &st) == 0 && st.st_dev == canary_dev &&
	        st.st_ino == canary_ino);
}

void
wp_canary_set(int fd)
{
	struct stat st;

	if (fstat(fd, &st) != 0) {
		log_warn("canary pipe: %s", strerror(errno));
		return;
	}
	canary_dev = st.st_dev;
	canary_ino = st.st_ino;
	canary_fd  = fd;
}

void
wp_canary_clear(void)
{
	canary_fd = -1;
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
		    wp_canary_intact() ? sig : WRK_SLOTS_FAULT_FDS);
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

void
wp_crash_handlers_install(struct wrk_slots *slots)
{
	static const int sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL,
		SIGABRT };
	struct sigaction sa;

	crash_slots = slots;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = crash_handler;
	sa.sa_flags     = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

void
wp_crash_handlers_forget(void)
{
	crash_slots = NULL;
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

void
wp_wake_io(struct wproc *w)
{
	uint64_t one = 1;
	if (write(w->event_fd, &one, sizeof(one)) < 0) {
		/* the eventfd counter is saturated: it is readable anyway */
	}
}

/* Check what task t packed (ctx->out) as its result and pack the result
 * entry into res: the value, or why it cannot be sent. */
static void
pack_value(struct wproc *w, struct wtask *t, struct ferry_task *ctx,
    struct proto_writer *res)
{
	static const char nil = (char)0xc0;
	char              msg[1200];

	if (ctx->out.size == 0) {
		proto_pack_result(res, t->id, 0, &nil, 1);
		return;
	}
	if (proto_check(ctx->out.data, ctx->out.size, NULL, 0) != 0) {
		snprintf(msg, sizeof(msg),
		    "task '%s' packed a result that is not exactly one "
		    "msgpack value",
		    t->name);
		proto_pack_result(res, t->id, FERRY_ETASK, msg, strlen(msg));
		return;
	}
	if (ctx->out.size + 4096 > w->link.max_msg) {
		snprintf(msg, sizeof(msg),
		    "result of '%s' is %zu bytes, over the message limit of "
		    "%zu",
		    t->name, ctx->out.size, w->link.max_msg);
		proto_pack_result(res, t->id, FERRY_ETOOBIG, msg, strlen(msg));
		return;
	}
	proto_pack_result(res, t->id, 0, ctx->out.data, ctx->out.size);
}

/* Unpack t's arguments into *args (in zone).  Returns 0, or a code with
 * the reason in msg. */
static int
unpack_args(struct wproc *w, struct wtask *t, msgpack_zone *zone,
    msgpack_object *args, char *msg, size_t len)
{
	char   why[1024];
	size_t off = 0;

	if (t->fn == NULL) {
		snprintf(msg, len,
		    "unknown function '%s' on worker %s: its task libraries "
		    "do not register it",
		    t->name, w->name);
		return FERRY_ENOFUNC;
	}
	if (t->args_len == 0) {
		args->type = MSGPACK_OBJECT_NIL;
		return 0;
	}
	if (proto_check(t->args, t->args_len, msg, len) != 0 ||
	    msgpack_unpack((const char *)t->args, t->args_len, &off, zone,
	        args) != MSGPACK_UNPACK_SUCCESS) {
		util_strlcpy(why, msg, sizeof(why));
		snprintf(msg, len,
		    "arguments of '%s' are not valid msgpack: %s", t->name,
		    why);
		return FERRY_EINVAL;
	}
	return 0;
}

/* Run one task and pack its result entry into res. */
static void
run_task(struct wproc *w, struct wtask *t, struct ferry_task *ctx,
    msgpack_zone *zone, struct proto_writer *res)
{
	msgpack_object args;
	char           msg[1200];
	int            code = 0, rc;

	proto_writer_reset(res);
	msgpack_sbuffer_clear(&ctx->out);
	ctx->id      = t->id;
	ctx->name    = t->name;
	ctx->failed  = 0;
	ctx->crashed = 0;
	ctx->code    = 0;
	ctx->err[0]  = '\0';
	ctx->n_pins  = 0;
	msgpack_zone_clear(zone);

	msg[0] = '\0';
	if ((code = unpack_args(w, t, zone, &args, msg, sizeof(msg))) != 0)
		goto report;
	if (sigsetjmp(crash_jmp, 1) != 0) {
		/* the task faulted (see crash_handler) */
		code = FERRY_ECRASHED;
		crash_describe(w, ctx, msg, sizeof(msg));
		wp_unpin_all(ctx, 1);
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
	wp_unpin_all(ctx, 0);
	if (rc == 0 && !ctx->failed) {
		pack_value(w, t, ctx, res);
		return;
	}
	code = ctx->code != 0 ? ctx->code : FERRY_ETASK;
	if (ctx->err[0] != '\0') {
		proto_pack_result(res, t->id, code, ctx->err,
		    strlen(ctx->err));
		return;
	}
	snprintf(msg, sizeof(msg), "task function '%s' returned %d", t->name,
	    rc);
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

/* The tasks whose results were in the batch the scheduler answered, or
 * in an earlier one, are no longer this process's to answer for. */
void
wp_acked_locked(struct wproc *w, uint64_t batch)
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

/* Take the next task from the inbox for ex's slot (lock held, released
 * while waiting); NULL when the executors stop.  None starts while the
 * process is not registered: after a lost connection, the scheduler may
 * have given the tasks queued here to another worker, and the welcome
 * says which (docs/protocol.md 4.9). */
static struct wtask *
inbox_take_locked(struct executor *ex)
{
	struct wproc *w = ex->w;
	struct wtask *t;

	while (!w->stopping && !w->crashed &&
	    (w->in_head == NULL || !w->registered))
		pthread_cond_wait(&w->cv, &w->lock);
	if (w->stopping || w->crashed)
		return NULL;
	t          = w->in_head;
	w->in_head = t->next;
	if (w->in_head == NULL)
		w->in_tail = NULL;
	w->running++;
	w->run_task[ex->slot] = t->id;
	w->run_drop[ex->slot] = 0;
	return t;
}

void
wp_executors_wake_locked(struct wproc *w)
{
	if (w->registered && w->in_head != NULL)
		pthread_cond_broadcast(&w->cv);
}

/* The task id that ran in ex's slot (ran: it was not skipped) took dt us
 * and its result is in res (lock held): into the outbox, and off to the
 * scheduler at once when no report is in flight (otherwise the results
 * wait for its answer and leave together).  Returns whether to wake the
 * I/O thread. */
static int
task_done_locked(struct executor *ex, uint64_t id, int ran, double dt,
    const struct proto_writer *res, const struct ferry_task *ctx)
{
	struct wproc *w    = ex->w;
	int           wake = 0;

	w->avg_us = w->n_timed++ == 0 ? dt : 0.9 * w->avg_us + 0.1 * dt;
	if (!w->run_drop[ex->slot]) {
		proto_writer_append(&w->out, res);
		if (ran)
			returned_locked(w, ex->slot, id);
	} else {
		/* the scheduler gave it to another worker while this one was
		 * away, or it is of another run: its result is not wanted */
		log_debug("task %" PRIu64 " finished; its result is dropped",
		    id);
		if (ran && w->slots != NULL)
			wrk_slots_end(w->slots, ex->slot);
	}
	w->run_task[ex->slot] = 0;
	w->run_drop[ex->slot] = 0;
	w->running--;
	w->held--;
	w->tasks_run++;
	if (ctx->crashed)
		w->crashed = 1;
	if (w->crashed) {
		pthread_cond_broadcast(&w->cv);
		wake = 1;
	}
	if (w->registered && !w->res_inflight)
		wp_work_locked(w, 1);
	else if (w->draining)
		wake = 1;
	return wake;
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
	struct wtask       *t;

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
	while ((t = inbox_take_locked(ex)) != NULL) {
		uint64_t t0 = util_now_us(), id = t->id;
		int      ran;
		double   dt;

		pthread_mutex_unlock(&w->lock);
		ran = run_claimed(w, ex->slot, t, &ctx, &zone, &res);
		dt  = (double)(util_now_us() - t0);
		free(t);
		pthread_mutex_lock(&w->lock);
		if (task_done_locked(ex, id, ran, dt, &res, &ctx)) {
			pthread_mutex_unlock(&w->lock);
			wp_wake_io(w);
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

int
wp_executors_start(struct wproc *w, int n)
{
	w->out_batch = 1;
	if ((w->threads = calloc((size_t)n, sizeof(pthread_t))) == NULL ||
	    (w->execs = calloc((size_t)n, sizeof(*w->execs))) == NULL ||
	    (w->ret_task = calloc((size_t)n, sizeof(uint64_t))) == NULL ||
	    (w->ret_batch = calloc((size_t)n, sizeof(uint64_t))) == NULL ||
	    (w->run_task = calloc((size_t)n, sizeof(uint64_t))) == NULL ||
	    (w->run_drop = calloc((size_t)n, 1)) == NULL)
		return -1;
	for (int i = 0; i < n; i++) {
		w->execs[i].w    = w;
		w->execs[i].slot = (uint32_t)i;
		if (pthread_create(&w->threads[i], NULL, executor_main,
		        &w->execs[i]) != 0) {
			log_error("cannot start executor thread: %s",
			    strerror(errno));
			return -1;
		}
		w->n_threads = i + 1;
	}
	return 0;
}

void
wp_executors_join(struct wproc *w)
{
	pthread_mutex_lock(&w->lock);
	w->stopping = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->lock);
	for (int i = 0; i < w->n_threads; i++)
		pthread_join(w->threads[i], NULL);
	free(w->threads);
	free(w->execs);
	w->threads   = NULL;
	w->execs     = NULL;
	w->n_threads = 0;
}

/* ------------------------------------------------------------ inbox */

uint32_t
wp_tasks_build(struct wproc *w, const struct proto_msg *m, struct wtask **head,
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

void
wp_inbox_append_locked(struct wproc *w, struct wtask *head, struct wtask *tail,
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

void
wp_tasks_free(struct wtask *t)
{
	while (t != NULL) {
		struct wtask *next = t->next;
		free(t);
		t = next;
	}
}

uint32_t
wp_inbox_drop_locked(struct wproc *w)
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

uint32_t
wp_held_ids_locked(struct wproc *w, uint64_t *ids, uint32_t max)
{
	uint32_t n = 0;

	for (struct wtask *t = w->in_head; t != NULL && n < max; t = t->next)
		ids[n++] = t->id;
	for (int i = 0; i < w->n_threads && n < max; i++)
		if (w->run_task[i] != 0 && !w->run_drop[i])
			ids[n++] = w->run_task[i];
	return n;
}

void
wp_held_drop_locked(struct wproc *w, int (*drop)(uint64_t id, void *arg),
    void *arg, uint32_t *queued, uint32_t *running)
{
	struct wtask **pp = &w->in_head, *t;

	*queued = *running = 0;
	w->in_tail         = NULL;
	while ((t = *pp) != NULL) {
		if (!drop(t->id, arg)) {
			w->in_tail = t;
			pp         = &t->next;
			continue;
		}
		*pp = t->next;
		free(t);
		(*queued)++;
	}
	w->held -= *queued;
	w->taken -= *queued; /* handed back: not toward max_tasks */
	for (int i = 0; i < w->n_threads; i++) {
		if (w->run_task[i] != 0 && !w->run_drop[i] &&
		    drop(w->run_task[i], arg)) {
			w->run_drop[i] = 1;
			(*running)++;
		}
		/* a returned task whose result is dropped is no longer this
		 * process's to answer for */
		if (w->slots != NULL && w->ret_batch[i] != 0 &&
		    drop(w->ret_task[i], arg)) {
			if (wrk_slots_returned(w->slots, (uint32_t)i) ==
			    w->ret_task[i])
				wrk_slots_set_returned(w->slots, (uint32_t)i, 0);
			w->ret_batch[i] = 0;
		}
	}
}

uint32_t
wp_inbox_drop(struct wproc *w)
{
	uint32_t n;
	pthread_mutex_lock(&w->lock);
	n = wp_inbox_drop_locked(w);
	pthread_mutex_unlock(&w->lock);
	return n;
}
