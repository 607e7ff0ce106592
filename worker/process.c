/*
 * process.c - one worker process: start, the I/O loop, stop.
 *
 * The process loads its task libraries, opens its object cache and its
 * REQ socket to the scheduler, starts one executor thread per slot
 * (executor.c) and runs the I/O loop on the main thread: it registers
 * (link.c), sends what is due, and watches for the end: a stop signal
 * (drain: queued tasks handed back, running ones finish), a task that
 * crashed (its report sent, the process exits for a clean one), max_tasks
 * reached (recycled once their results are acknowledged), a scheduler
 * silent for longer than its heartbeat timeout, a supervisor gone, or
 * descriptors closed under it.  The process declares in its slot table
 * the exit status it chose before it exits, and a fault in its own code:
 * the supervisor believes nothing else (supervisor.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
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

#include "log.h"
#include "objcache.h"
#include "process_int.h"
#include "slots.h"
#include "util.h"

#define ORPHAN_LOOK_MS 500 /* after a stop signal: is the supervisor gone? */

void
wrk_options_defaults(struct wrk_options *o)
{
	*o = (struct wrk_options)WRK_OPTIONS_DEFAULTS;
}

/* ---------------------------------------------------- object cache */

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
	objcache_set_listener(w->cache, wp_cache_event, w);
	return 0;
}

/* --------------------------------------------------------- I/O loop */

/* Die if this process lost its descriptors (wp_canary_intact), looking at
 * most every 50 ms unless woken by the canary: the table says so, and the
 * supervisor charges the task that ran (or had just returned). */
static void
check_descriptors(struct wproc *w, uint64_t now, int woken)
{
	if (w->canary[0] < 0 || (!woken && now < w->next_canary_ms))
		return;
	w->next_canary_ms = now + 50;
	if (wp_canary_intact() && !woken)
		return;
	/* not even the log may be where it was: no message */
	wrk_slots_set_fault(w->slots, WRK_SLOTS_FAULT_FDS);
	abort();
}

/* The checks of each turn that need no lock.  Returns -1 to go on, or
 * the exit status. */
static int
turn_checks(struct wproc *w, uint64_t now)
{
	static uint64_t last_turn;
	int             registered;

	check_descriptors(w, now, 0);
	pthread_mutex_lock(&w->lock);
	registered = w->registered;
	pthread_mutex_unlock(&w->lock);
	if (!registered && now >= w->hello_deadline) {
		log_error("no answer from the scheduler at %s within %u ms%s",
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
		/* this loop turns at least every 100 ms: the process was
		 * frozen (SIGSTOP, a suspended host), so silence is ours, not
		 * the scheduler's; give it time to answer (it may say the
		 * lease is gone: then register again, after reporting what
		 * finished, which it counts as late) */
		log_warn("this process was frozen for %" PRIu64 " ms",
		    now - last_turn);
		pthread_mutex_lock(&w->lock);
		w->last_reply_ms = now;
		pthread_mutex_unlock(&w->lock);
	}
	last_turn = now;
	return -1;
}

/* Send what is due, then whether to end (lock held, released): a
 * silent scheduler, a crash reported, recycling, a drain done or out of
 * time.  Returns -1 to go on, or the exit status. */
static int
turn_state_locked(struct wproc *w, uint64_t now, uint64_t drain_deadline)
{
	uint32_t out_n, running;
	int      inflight;

	wp_pump_locked(w);
	if (w->registered && (w->poll_inflight || w->res_inflight) &&
	    util_now_ms() - w->last_reply_ms >
	        w->link.hb_timeout_ms + w->link.hb_ms) {
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
		log_warn("exiting after a task crashed; the supervisor starts "
		         "a new process");
		return WRK_EXIT_CRASHED;
	}
	if (w->o->max_tasks > 0 && w->taken >= w->o->max_tasks &&
	    w->held == 0 && out_n == 0 && !inflight && !w->draining) {
		/* every task it may take has run and its result is
		 * acknowledged: make room for a fresh process */
		uint64_t run = w->tasks_run;
		pthread_mutex_unlock(&w->lock);
		wrk_slots_set_recycled(w->slots);
		log_info("recycling: %" PRIu64 " task(s) run, the limit per "
		         "process is %" PRIu64,
		    run, w->o->max_tasks);
		return WRK_EXIT_RECYCLED;
	}
	pthread_mutex_unlock(&w->lock);
	if (!w->draining)
		return -1;
	if (running == 0 && out_n == 0 && !inflight) {
		log_info("drained: %" PRIu64 " task(s) run", w->tasks_run);
		return 0;
	}
	if (now >= drain_deadline) {
		log_warn("drain timeout: %u task(s) still running", running);
		return 0;
	}
	return -1;
}

/* A stop signal: hand back what has not started, and drain. */
static void
drain_start(struct wproc *w, uint64_t *drain_deadline)
{
	struct signalfd_siginfo si;
	uint32_t                n;

	if (read(w->signal_fd, &si, sizeof(si)) <= 0 || w->draining)
		return;
	n = wp_inbox_drop(w);
	log_info("signal %u: draining (%u queued task(s) handed back)",
	    si.ssi_signo, n);
	pthread_mutex_lock(&w->lock);
	wp_drain_locked(w);
	pthread_mutex_unlock(&w->lock);
	*drain_deadline = util_now_ms() + w->o->drain_timeout_ms;
}

/* The connection to the scheduler dropped (pipe_lost), or it no longer
 * knows this registration (why says which).  Returns -1 to go on, or 0
 * to exit (the connection dropped while draining). */
static int
link_lost(struct wproc *w, int pipe_lost, const char *why)
{
	struct wp_holding h;

	pthread_mutex_lock(&w->lock);
	wp_link_lost_locked(w, pipe_lost, &h);
	pthread_mutex_unlock(&w->lock);
	if (w->draining && pipe_lost) {
		log_warn("%s while draining: exiting", why);
		return 0;
	}
	log_warn("%s; registering again, holding %u queued task(s), %u "
	         "running and %u result(s)",
	    why, h.queued, h.running, h.results);
	return -1;
}

/* Wait up to 100 ms for a wakeup, a signal or the canary, and handle
 * them.  Returns -1 to go on, or the exit status. */
static int
turn_wait(struct wproc *w, uint64_t *drain_deadline)
{
	struct pollfd pfd[3];
	uint64_t      v;

	pfd[0].fd      = w->event_fd;
	pfd[0].events  = POLLIN;
	pfd[1].fd      = w->signal_fd;
	pfd[1].events  = POLLIN;
	pfd[2].fd      = w->canary[0];
	pfd[2].events  = POLLIN;
	pfd[2].revents = 0;
	if (poll(pfd, w->canary[0] >= 0 ? 3 : 2, 100) < 0 && errno != EINTR) {
		log_error("poll: %s", strerror(errno));
		return 1;
	}
	/* the canary's other end closed, or any of these gone: the
	 * process's descriptors were closed under it */
	if ((pfd[2].revents |
	        ((pfd[0].revents | pfd[1].revents) & POLLNVAL)) != 0)
		check_descriptors(w, util_now_ms(), 1);
	if (pfd[1].revents & POLLIN)
		drain_start(w, drain_deadline);
	if ((pfd[0].revents & POLLIN) &&
	    read(w->event_fd, &v, sizeof(v)) < 0) {
		/* nothing */
	}
	if (atomic_exchange(&w->pipe_lost, 0)) {
		atomic_store(&w->relink, 0);
		return link_lost(w, 1, "connection to the scheduler lost");
	}
	if (atomic_exchange(&w->relink, 0))
		return link_lost(w, 0, "the scheduler no longer knows this "
		                       "registration");
	return -1;
}

/* The I/O thread: register, then send what is due and watch for the
 * end.  Returns the process's exit status. */
static int
io_loop(struct wproc *w)
{
	uint64_t drain_deadline = 0;
	int      rc;

	pthread_mutex_lock(&w->lock);
	wp_hello_locked(w);
	pthread_mutex_unlock(&w->lock);
	for (;;) {
		uint64_t now = util_now_ms();

		if ((rc = turn_checks(w, now)) >= 0)
			return rc;
		pthread_mutex_lock(&w->lock);
		if ((rc = turn_state_locked(w, now, drain_deadline)) >= 0 ||
		    (rc = turn_wait(w, &drain_deadline)) >= 0)
			return rc;
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

/* Signals: SIGINT and SIGTERM come by signalfd (drain), SIGPIPE is
 * ignored; and the eventfd that wakes the I/O thread.  Returns 0 or -1
 * (logged). */
static int
signals_open(struct wproc *w)
{
	if (util_signal_fds(&w->signal_fd, &w->event_fd) != 0) {
		log_error("signalfd/eventfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* The slot table the supervisor gave us, and the canary pipe of
 * wp_canary_intact() (without it, a process whose descriptors a task
 * closed may linger until it gives up on the scheduler).  Returns 0 or
 * -1 (logged). */
static int
slots_open(struct wproc *w)
{
	char err[512];

	if (w->o->slot_table_fd < 0)
		return 0;
	if (wrk_slots_attach(&w->slots, w->o->slot_table_fd,
	        (uint32_t)w->o->slots, err, sizeof(err)) != 0) {
		log_error("%s", err);
		return -1;
	}
	close(w->o->slot_table_fd);
	if (pipe2(w->canary, O_CLOEXEC) == 0)
		wp_canary_set(w->canary[0]);
	else
		log_warn("canary pipe: %s", strerror(errno));
	return 0;
}

/* Load task library spec (resolved against dir, NULL: the current
 * one).  Returns 0, or -1 (logged). */
static int
library_load(struct wproc *w, const char *spec, const char *dir)
{
	char path[4096], err[8192];

	if (wrk_library_resolve(spec, dir, path, sizeof(path), err,
	        sizeof(err)) != 0 ||
	    wrk_library_load(&w->reg, path, err, sizeof(err)) != 0) {
		log_error("%s", err);
		return -1;
	}
	return 0;
}

/* Load the task libraries, and ferry_python after them when the group
 * names Python modules; the names of their functions for hello.
 * Returns 0 or an exit status (logged). */
static int
libraries_load(struct wproc *w)
{
	for (size_t i = 0; i < w->o->n_libraries; i++)
		if (library_load(w, w->o->libraries[i], w->o->library_dir) != 0)
			return 2;
	if (w->o->n_python_modules > 0 &&
	    library_load(w, WRK_PYTHON_LIBRARY, NULL) != 0)
		return 2;
	if (w->reg.n == 0)
		log_warn("no task functions loaded: this worker can run "
		         "nothing (give it --library or --python-module)");
	if (cache_open(w) != 0)
		return 2;
	if ((w->fn_names = calloc(w->reg.n + 1, sizeof(*w->fn_names))) ==
	    NULL) {
		log_error("out of memory");
		return 1;
	}
	for (size_t i = 0; i < w->reg.n; i++)
		w->fn_names[i] = w->reg.fns[i].name;
	return 0;
}

/* The socket to the scheduler, its request slots, the token and the
 * dialer.  Returns 0 or an exit status (logged). */
static int
socket_open(struct wproc *w)
{
	const struct wrk_options *o  = w->o;
	struct sec_dial           sd = { o->tls_ca_file, o->tls_cert_key_file,
		          o->tls_server_name, o->token_file };
	char                      err[512];
	int                       rv;

	if ((rv = nng_req0_open(&w->sock)) != 0 ||
	    (rv = util_sock_setup(w->sock, o->max_message_size)) != 0 ||
	    (rv = nng_pipe_notify(w->sock, NNG_PIPE_EV_REM_POST, wp_pipe_cb,
	         w)) != 0 ||
	    (rv = wp_reqs_open(w)) != 0) {
		log_error("cannot open a socket: %s", nng_strerror(rv));
		return 1;
	}
	/* its dialer is not watched (req_dial_watch): a process that cannot
	 * register again in time exits, and its supervisor starts another */
	if (req_dial(w->sock, o->connect, &sd, w->token, NULL, err,
	        sizeof(err)) != 0) {
		log_error("%s", err);
		return WRK_EXIT_CONFIG;
	}
	return 0;
}

/* Everything before the I/O loop.  Returns -1 to run, or the exit
 * status. */
static int
process_start(struct wproc *w)
{
	const struct wrk_options *o = w->o;
	int                       rc;

	if (o->parent_pid > 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != o->parent_pid)
			return 0; /* the supervisor died while we started */
	}
	if (signals_open(w) != 0)
		return 1;
	/* the table first, so that every exit from here on is declared in
	 * it (a library that cannot load too) */
	if (slots_open(w) != 0)
		return WRK_EXIT_CONFIG;
	if ((rc = libraries_load(w)) != 0)
		return rc;
	wp_crash_handlers_install(w->slots);
	if ((rc = socket_open(w)) != 0)
		return rc;
	if (wp_executors_start(w, o->slots) != 0)
		return 1;
	return -1;
}

/* Stop the executors: if a task still runs (drain timeout), its thread
 * cannot be stopped, so the process leaves at once with rc. */
static void
executors_stop(struct wproc *w, int rc)
{
	if (w->threads == NULL)
		return;
	wp_inbox_drop(w);
	pthread_mutex_lock(&w->lock);
	if (w->running > 0) {
		pthread_mutex_unlock(&w->lock);
		nng_close(w->sock);
		wrk_slots_set_exit(w->slots, rc);
		orphaned_group_stop(w->o,
		    w->draining && !wrk_slots_drain_asked(w->slots));
		_exit(rc);
	}
	pthread_mutex_unlock(&w->lock);
	wp_executors_join(w);
}

/* fn(each of the link's writers): init or fini. */
static void
writers(struct wproc *w, void (*fn)(struct proto_writer *))
{
	struct proto_writer *all[] = { &w->out, &w->spare, &w->msgw,
		&w->ev_loaded, &w->ev_evicted };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		fn(all[i]);
}

/* Free everything; the exit status rc is declared in the slot table. */
static void
process_stop(struct wproc *w, int rc)
{
	executors_stop(w, rc);
	wp_reqs_stop(w);
	if (w->sock.id != 0)
		nng_close(w->sock);
	wp_reqs_free(w);
	wp_inbox_drop(w);
	if (w->signal_fd >= 0)
		close(w->signal_fd);
	if (w->event_fd >= 0)
		close(w->event_fd);
	wp_canary_clear();
	for (int i = 0; i < 2; i++)
		if (w->canary[i] >= 0)
			close(w->canary[i]);
	writers(w, proto_writer_fini);
	/* objects task code still holds (an interpreter's views over their
	 * mappings, never finalized) keep the cache: it goes with the
	 * process */
	if (wp_objects_held() == 0)
		objcache_free(w->cache);
	else
		log_debug("%zu object(s) still held by task code at exit",
		    wp_objects_held());
	wrk_registry_fini(&w->reg);
	free(w->ret_task);
	free(w->ret_batch);
	free(w->run_task);
	free(w->run_drop);
	free(w->fn_names);
	/* the last word: this status is the process's own choice */
	wp_crash_handlers_forget();
	wrk_slots_set_exit(w->slots, rc);
	wrk_slots_free(w->slots);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cv);
}

int
wrk_process_run(const struct wrk_options *o)
{
	struct wproc w;
	int          rc;

	memset(&w, 0, sizeof(w));
	w.o         = o;
	w.event_fd  = w.signal_fd = -1;
	w.canary[0] = w.canary[1] = -1;
	w.capacity  = (uint32_t)(o->slots + o->prefetch);
	req_link_init(&w.link, o->max_message_size);
	wrk_registry_init(&w.reg, o);
	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cv, NULL);
	writers(&w, proto_writer_init);
	if (gethostname(w.host, sizeof(w.host) - 1) != 0)
		strcpy(w.host, "localhost");
	if (o->name != NULL)
		util_strlcpy(w.name, o->name, sizeof(w.name));
	else
		snprintf(w.name, sizeof(w.name), "%s-%d", w.host, (int)getpid());

	if ((rc = process_start(&w)) < 0) {
		rc = io_loop(&w);
		/* an orphan has reported what it ran (it drained): nobody
		 * waits for its cleanup, and a close that hangs must not keep
		 * what its tasks started alive, so its group goes now, this
		 * process with it */
		orphaned_group_stop(o,
		    w.draining && !wrk_slots_drain_asked(w.slots));
		/* if closing hangs (NNG 1.5's nng_close can), the alarm ends
		 * the process: the supervisor only needs it gone */
		alarm(10);
		wp_reqs_stop(&w);
	}
	process_stop(&w, rc);
	orphaned_group_stop(o, 0);
	return rc;
}
