/*
 * process_int.h - one worker process's private types, shared by its
 * modules:
 *
 *   process.c   start and stop: options, signals, the slot table, task
 *               libraries, the object cache, the socket; the I/O loop
 *               (drain, crash exit, recycling, a silent scheduler, lost
 *               descriptors)
 *   link.c      the link to the scheduler: requests on REQ contexts,
 *               hello, work requests (results out, credit, tasks in),
 *               heartbeats, a lost connection
 *   executor.c  the executor threads: the inbox, running a task with
 *               crash isolation, the slot table's running and returned
 *               tasks
 *   task_api.c  the ferry_task_* functions task libraries call
 *
 * Locking: one mutex (lock) guards what executors and the link share;
 * functions named *_locked are called with it held.
 */
#ifndef FERRY_PROCESS_INT_H
#define FERRY_PROCESS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <nng/nng.h>

#include "ferry/ferry.h"
#include "proto.h"
#include "req.h"
#include "security.h"
#include "worker.h"

#define MAX_REQS 8

/* The kinds of request a worker process sends. */
enum wreq_kind {
	WREQ_HELLO = 1,
	WREQ_POLL,    /* a work request without results */
	WREQ_RESULTS, /* a work request with results */
};

/* A task received, until it has run. */
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
 * A request slot (link.c): one REQ context with its own send and receive
 * operations, so a request leaves from the thread that sends it and its
 * reply is handled on the NNG thread that reads it.  A slot is free when
 * no request is outstanding on it and both operations have finished.
 */
struct wreq {
	struct req           h;     /* h.id non-zero while outstanding */
	struct wproc        *w;
	int                  polls; /* a results request that is also the
	                             * poll */
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
	/* set at start, then read-only (process.c) */
	const struct wrk_options *o;
	struct ferry_registry     reg;
	nng_socket                sock;
	int                       event_fd, signal_fd;
	char                      token[SEC_TOKEN_MAX + 1]; /* "": none */
	uint32_t                  capacity;
	const char              **fn_names; /* reg's, for hello */
	char                      name[160];
	char                      host[128];
	struct objcache          *cache;
	struct wrk_slots         *slots; /* shared with the supervisor, or
	                                  * NULL */
	int                       canary[2]; /* a pipe only we hold (see
	                                      * wp_canary_intact) */
	pthread_mutex_t           lock;
	pthread_cond_t            cv;

	/* the I/O loop (process.c) */
	atomic_int fatal; /* exit status the link asks for */
	uint64_t   next_canary_ms;

	/* executors (executor.c), under lock */
	struct wtask    *in_head, *in_tail; /* the inbox */
	uint32_t         held;    /* in the inbox or running */
	uint32_t         running;
	uint64_t         taken;   /* tasks received and not handed back
	                           * (for max_tasks) */
	uint64_t         tasks_run;
	double           avg_us;  /* moving average of task run time */
	uint64_t         n_timed;
	int              crashed; /* a task crashed: report, then exit */
	int              stopping;
	pthread_t       *threads;
	struct executor *execs;
	int              n_threads;
	uint64_t        *ret_task;  /* per slot: the task that returned
	                             * there last, while the outbox batch */
	uint64_t        *ret_batch; /* its result is in is not answered;
	                             * 0: none */
	uint64_t        *run_task;  /* per slot: the task it runs, 0: none */
	uint8_t         *run_drop;  /* per slot: drop that task's result (the
	                             * scheduler said so on registering
	                             * again) */

	/* the link (link.c), under lock but for what the comment says */
	struct proto_writer out;   /* finished tasks' result entries (the
	                            * outbox; executors append) */
	uint64_t            out_batch; /* number of the batch in the outbox */
	struct proto_writer spare; /* the outbox batch in flight, kept until
	                            * answered (back to the outbox if the
	                            * connection drops first) */
	struct proto_writer ev_loaded, ev_evicted; /* keys to report */
	struct proto_writer msgw;  /* the request being written */
	struct wreq         reqs[MAX_REQS];
	struct req_set      rs;    /* reqs */
	struct req_link     link;  /* what the welcome said: worker id,
	                            * heartbeats, max_msg (executors read
	                            * it) */
	atomic_int          pipe_lost; /* set by NNG's pipe callback */
	atomic_int          relink;    /* the scheduler no longer knows this
	                                * registration: register again */
	uint64_t            epoch;     /* the scheduler run of the last
	                                * welcome (0: none, or an older
	                                * scheduler) */
	uint64_t            hello_epoch; /* what the hello in flight said */
	uint64_t            granted;   /* credit of the requests in flight */
	int                 poll_inflight, res_inflight;
	int                 registered;
	uint64_t            hello_deadline;
	uint32_t            hello_wait_ms; /* how long that deadline is */
	uint64_t            last_reply_ms;
	uint64_t            last_send_ms;
	int                 draining;
	int                 closing; /* no more requests */
};

/* ---- task_api.c ---- */

/* Release the objects task t holds; invalidate: drop them from the
 * cache too (a crash may have met a file changed under its mapping). */
void wp_unpin_all(struct ferry_task *t, int invalidate);

/* How many holds (ferry_task_object_hold) are not released. */
size_t wp_objects_held(void);

/* ---- executor.c ---- */

/* Install the crash handlers (SIGSEGV, SIGBUS, SIGFPE, SIGILL,
 * SIGABRT), which declare a fault of the worker's own code in slots
 * (NULL: none); _forget: no more (the process ends). */
void wp_crash_handlers_install(struct wrk_slots *slots);
void wp_crash_handlers_forget(void);

/* Watch fd, the read end of a pipe only this process holds (the canary):
 * wp_canary_intact() says whether it is still ours; _clear: no more. */
void wp_canary_set(int fd);
void wp_canary_clear(void);

/* Whether this process's descriptors are still its own (the canary's
 * inode is).  Async-signal-safe. */
int wp_canary_intact(void);

/* Start n executor threads; returns 0 or -1 (logged). */
int wp_executors_start(struct wproc *w, int n);

/* Stop the executor threads (none may be running a task) and free them. */
void wp_executors_join(struct wproc *w);

/* Copy the tasks of a message into a list (no lock needed); returns
 * how many. */
uint32_t wp_tasks_build(struct wproc *w, const struct proto_msg *m,
    struct wtask **head, struct wtask **tail);

/* Free a list of tasks. */
void wp_tasks_free(struct wtask *t);

/* Append a list of n tasks to the inbox and wake executors (lock held). */
void wp_inbox_append_locked(struct wproc *w, struct wtask *head,
    struct wtask *tail, uint32_t n);

/* Drop the tasks not yet started (the scheduler re-queues them);
 * returns how many. */
uint32_t wp_inbox_drop_locked(struct wproc *w);
uint32_t wp_inbox_drop(struct wproc *w);

/* The ids of the tasks queued in the inbox and running (lock held), at
 * most max, into ids; returns how many. */
uint32_t wp_held_ids_locked(struct wproc *w, uint64_t *ids, uint32_t max);

/* Of the tasks queued and running (lock held), those that drop(id, arg)
 * says: queued ones are freed, running ones finish and their results
 * are dropped.  Counts into *queued and *running. */
void wp_held_drop_locked(struct wproc *w, int (*drop)(uint64_t id,
    void *arg), void *arg, uint32_t *queued, uint32_t *running);

/* Whether executors may start tasks (lock held): only while registered;
 * wake them when they may again. */
void wp_executors_wake_locked(struct wproc *w);

/* The scheduler answered the results request that carried batch (lock
 * held): the slot table no longer shows the tasks in it as returned. */
void wp_acked_locked(struct wproc *w, uint64_t batch);

/* Wake the I/O thread. */
void wp_wake_io(struct wproc *w);

/* ---- link.c ---- */

/* Open / stop / free the request slots on w->sock. */
int wp_reqs_open(struct wproc *w);
void wp_reqs_stop(struct wproc *w);
void wp_reqs_free(struct wproc *w);

/* Register (lock held). */
void wp_hello_locked(struct wproc *w);

/* Send a work request (lock held); with_results takes the outbox along. */
void wp_work_locked(struct wproc *w, int with_results);

/* Send what is due (lock held): results, a poll for more, a heartbeat. */
void wp_pump_locked(struct wproc *w);

/* What a worker process holds when its link is lost. */
struct wp_holding {
	uint32_t queued, running, results;
};

/* The connection dropped (pipe_lost), or the scheduler no longer knows
 * this registration (lock held): abandon every request, keep the tasks
 * and the results not acknowledged (counted into *h), and register again
 * saying what it holds (docs/protocol.md 4.9), unless the connection
 * dropped while draining (the process exits). */
void wp_link_lost_locked(struct wproc *w, int pipe_lost,
    struct wp_holding *h);

/* Draining (lock held): ask for nothing more, and answer a report
 * parked as the poll at once (credit 0). */
void wp_drain_locked(struct wproc *w);

/* The cache loaded or dropped an object (its listener). */
void wp_cache_event(void *arg, int loaded, const char *key);

/* NNG's pipe callback: a connection dropped. */
void wp_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg);

#endif
