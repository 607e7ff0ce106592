/*
 * sched_int.h - the scheduler's private types and the calls between its
 * modules (docs/architecture.md draws the map).
 *
 * One logical loop under one lock (struct sched.lock): every function
 * here runs with it held, on an NNG thread handling a request or on the
 * loop thread, unless it says otherwise.  Each struct says which module
 * owns it (creates, changes and frees it); other modules read it, and
 * change it only through the owner's functions.
 *
 * Layers, lowest first; a module calls down or sideways, never up (an
 * upper layer that must hear of something registers a callback):
 *
 *   loop.c rctx.c listen.c      timers, wake-ups; request contexts and
 *                               replies; the socket and its listeners
 *   task.c                      the one door for task state, observers
 *   functions.c results.c stats.c
 *                               function registry and waits; stored
 *                               results and acks; the counter table
 *   workers.c supervisors.c sessions.c
 *                               the three kinds of peer
 *   router.c sched.c            decoding and routing requests; start,
 *                               drain and stop
 *   journal.c                   the write-ahead journal: an observer of
 *                               tasks and sessions, its own thread
 */
#ifndef FERRY_SCHED_INT_H
#define FERRY_SCHED_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "proto.h"
#include "scheduler.h"
#include "security.h"
#include "status_fields.h"
#include "list.h"
#include "util.h"

#define MAX_FN_LEN 255
#define SCHED_MAX_BATCH 4096   /* tasks per message to a worker */
#define MAX_UNKNOWN_FNS 1024   /* names no worker registered, at once */
#define ACK_HOLD_MS 1          /* longest a submit's answer is held back */
#define MAX_WHY 1024           /* reasons kept per task */
#define RECENT_FAILURES 16     /* failed and dead tasks shown in status */
#define SCHED_MAX_OBSERVERS 16 /* task-state observers */
#define SCHED_MAX_TURN_HOOKS 4 /* called at the end of each turn */
#define MAX_ORDERS 4096        /* unfetched kill orders per supervisor */
#define TIMER_SPARE 256        /* timers kept aside when the heap is full */

struct sched;
struct rctx;
struct worker;
struct session;
struct fnreg;

/* ------------------------------------------------------------ parked */

/*
 * A request held for a later answer (a long poll).  Owned by the peer it
 * belongs to (a worker's work, a session's fetch, a supervisor's watch);
 * park.c's functions change it.
 */
struct parked {
	struct rctx *rc;     /* the request's context, held until answered */
	uint32_t     gen;    /* bumped whenever it is answered */
	uint64_t     credit; /* work requests: the credit it came with */
	int          active;
};

/* ------------------------------------------------------------- tasks */

/* Owned by task.c: created, changed and freed only there. */
struct task {
	uint64_t        id;   /* scheduler's id */
	uint64_t        tag;  /* client's id within its session */
	struct session *sess; /* NULL once its session expired */
	union {
		struct worker *worker; /* while assigned (also a ghost's);
		                        * read it only then */
		uint32_t unmet; /* waiting: inputs not finished yet */
	};
	struct fnreg   *fnr;  /* its function (holds a count in tasks) */
	union { /* never both: a task in limbo is queued */
		struct list_node wnode; /* in worker->tasks while assigned */
		struct task *limbo_next; /* queued, waiting for room in
		                          * dispatch */
	};
	uint32_t        fn_len, args_len;
	uint8_t         state;
	uint8_t         n_objs;
	uint8_t         retry_errors;
	uint8_t         held_back; /* restored, queued but not dispatched
	                            * until its worker reports it or the
	                            * restore wait ends */
	uint8_t         run_anyway; /* runs even if an input failed */
	uint8_t         args_owned; /* args is its own allocation (results
	                             * were spliced in), not in data[] */
	uint8_t         graph_ended; /* ended because an input did: its
	                              * dependents get its message as is */
	uint8_t         objs_owned;
	/* the tasks waiting for this one (graph.c): the first one's id
	 * (0: none), the others in deps (or NULL) */
	uint64_t        dep1;
	struct gdeps   *deps;
	uint16_t        attempts; /* runs known to have started */
	uint16_t        failures; /* failed runs that count */
	uint16_t        kills;    /* worker processes it killed */
	uint32_t        retries, backoff_ms, backoff_max_ms, timeout_ms;
	uint64_t        result_from; /* worker whose result came last */
	char           *why;  /* reasons of failed runs, or NULL */
	uint8_t        *args; /* points into data[] */
	uint64_t       *objs; /* n_objs locality keys: at the start of data[],
	                       * or (objs_owned) an allocation of its own */
	/* fn and a NUL (at the start: task_fn()), padded to 8 bytes; the
	 * objs it was submitted with; args */
	_Alignas(8) uint8_t data[];
};

/* A task's function name (fn_len bytes and a NUL). */
static inline char *
task_fn(const struct task *t)
{
	return (char *)(uintptr_t)t->data;
}

/* How a task ended: what its client gets (final transitions only). */
struct task_end {
	int32_t     code;
	const void *data; /* the result's value, or the error message */
	size_t      len;
	uint64_t    seq;  /* its stored result's number; 0: none stored */
};


/*
 * A task-state observer: called after every transition of a task whose
 * from-state is in its from_mask or whose to-state is in its to_mask
 * (bits 1u << state; TASK_SUBMITTED as from for a new task).  end is set
 * for final transitions, the task is freed after the observers ran.
 * from and to are both TASK_ASSIGNED when a task moves to a new
 * registration of the worker process that holds it (task_reclaim).
 * Observers must not change the task's state.
 */
typedef void (*task_observer_fn)(struct sched *s, struct task *t, int from,
    int to, const struct task_end *end, void *arg);

struct task_observer {
	uint32_t         from_mask, to_mask;
	task_observer_fn fn;
	void            *arg;
};

#define TASK_FINAL_MASK                                                     \
	((1u << TASK_DONE) | (1u << TASK_FAILED) | (1u << TASK_CANCELLED) |   \
	    (1u << TASK_DEAD))

/* Register an observer (before the scheduler starts).  0, or -1 when
 * SCHED_MAX_OBSERVERS are registered. */
int sched_observe(struct sched *s, uint32_t from_mask, uint32_t to_mask,
    task_observer_fn fn, void *arg);

/* Make task pt of session se, queued (state queued, function fnr); NULL
 * when memory runs out (nothing changed). */
struct task *task_new(struct sched *s, struct session *se,
    const struct proto_task *pt, struct fnreg *fnr);

/* The one state setter for non-final transitions but assignment: checks
 * the life cycle, logs, keeps queue and counters, tells observers. */
void task_set_state(struct sched *s, struct task *t, int to,
    const char *reason);

/* t is handed to worker w (state assigned). */
void task_assign(struct sched *s, struct task *t, struct worker *w);

/* t is held by worker w's process, which registered again and said so
 * (docs/protocol.md 4.9): queued (re-queued when it was lost), it is
 * assigned to w without being dispatched; assigned to an earlier
 * registration of the same process, it moves to w (observers see
 * assigned -> assigned).  The same run either way: attempts do not
 * change. */
void task_reclaim(struct sched *s, struct task *t, struct worker *w);

/* t ends (done, failed, cancelled, dead) with what its client gets:
 * results.c stores it first, observers see the transition, then t is
 * freed.  Returns 0, or -1 when the result cannot be stored (out of
 * memory): then nothing changed. */
int task_finish(struct sched *s, struct task *t, int to, int32_t code,
    const void *data, size_t len, const char *reason);

/* task_finish, or when that cannot be, back to the queue to run again
 * (for a run that produced the result: at-least-once, never lost). */
void task_finish_or_requeue(struct sched *s, struct task *t, int to,
    int32_t code, const void *data, size_t len, const char *reason);

/* Put queued task t in the dispatch queue (front: it waited already);
 * without memory it waits in limbo, retried at the loop's turns. */
void task_enqueue(struct sched *s, struct task *t, int front);
void tasks_retry_limbo(struct sched *s);

/* A run of t on worker (a registration id; 0 unknown) started. */
void task_ran(struct task *t, uint64_t worker);

/* A run of t failed (docs/protocol.md 4.13): retry, quarantine or fail. */
void task_run_failed(struct sched *s, struct task *t, int killed,
    int32_t code, const char *why, size_t len);

/* Free every task (shutdown). */
void tasks_free_all(struct sched *s);

/* graph.c: tasks waiting for the results of others (docs/protocol.md
 * 4.12).  graph_link() links t, just submitted waiting with pt's deps,
 * to its inputs; it may queue t, or end it (t must not be used after:
 * look it up by id). */
int  graph_init(struct sched *s);
void graph_fini(struct sched *s);
void graph_link(struct sched *s, struct session *se, struct task *t,
    const struct proto_task *pt);
/* Whether a submit entry with deps may be taken now: FERRY_EFULL (and
 * why) if one of its inputs was refused as full and is to come again
 * (it would not be found), else 0. */
int  graph_check(const struct session *se, const struct proto_task *pt,
    char *why, size_t len);
/* Whether a task read back from the journal still refers to inputs (it
 * is restored waiting); graph_restore() links every such task once all
 * are read back. */
int  graph_restores_waiting(const struct task *t);
void graph_restore(struct sched *s);

struct jtask;
/* Make a task read back from the journal, queued and held back (of
 * session se, which may be NULL); NULL when memory runs out. */
struct task *task_restore(struct sched *s, struct session *se,
    const struct jtask *jt, struct fnreg *fnr);
/* Queue the held-back tasks for dispatch (the restore wait is over). */
void tasks_release_held_back(struct sched *s);

/* --------------------------------------------------------- functions */

/*
 * A task function by name: registered by workers (refs), or only named by
 * submitted tasks so far.  Owned by functions.c.  Tasks go only to workers
 * that registered their function; those of a function no connected worker
 * runs wait (counted in n_unserved), for at most function_wait_ms
 * (unknown_function_wait_ms for a function no worker ever registered).
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

int           functions_init(struct sched *s);
void          functions_fini(struct sched *s);
struct fnreg *fn_find(struct sched *s, const char *name, size_t n);
struct fnreg *fn_get(struct sched *s, const char *name, size_t n);
void          fn_drop(struct sched *s, struct fnreg *f);
void          fn_wait_start(struct sched *s, struct fnreg *f, uint32_t ms);
struct fnreg *fn_ref(struct sched *s, const char *name);
void          fn_unref(struct sched *s, struct fnreg *f);
int           groups_all_up(struct sched *s);
/* status_reply's "unserved_functions" into the reply being written */
void          functions_status(struct sched *s);

/* ------------------------------------------------------------ workers */

/* Owned by workers.c. */
struct worker {
	uint64_t       id;
	uint32_t       pipe;
	char           name[128], host[128], group[64];
	uint64_t       pid;
	uint32_t       slots, capacity;
	struct fnreg **functions; /* each holds a reference */
	uint32_t       n_functions;
	struct list    tasks; /* assigned (task.c links them) */
	uint32_t       held;
	uint64_t       done, failed;
	uint64_t       last_seen_ms;
	uint64_t       connected_ms;
	struct parked  park;
	struct list_node wait_node; /* in s->waiting while parked */
	uint64_t       local;  /* tasks sent because it held their objects */
	struct proto_cache cache;
	uint64_t       sup_token; /* its supervisor's token, 0: none */
	int            ghost;     /* lost; tasks held until its report */
};

void handle_worker_hello(struct sched *s, uint32_t pipe,
    const struct proto_msg *m, struct rctx *rc);
void handle_work(struct sched *s, struct worker *w, const struct proto_msg *m,
    struct rctx *rc);
/* A worker said hello again on its connection: the same welcome. */
void worker_rehello(struct sched *s, struct worker *w, struct rctx *rc);
/* The connection of worker w closed. */
void worker_gone(struct sched *s, struct worker *w);
/* w is lost (re-queue its tasks, forget it); w is freed. */
void worker_lost(struct sched *s, struct worker *w, const char *why);
/* Re-queue what ghost w held and free it. */
void ghost_release(struct sched *s, struct worker *w, const char *why);
/*
 * Worker w, registered again by a process that holds the tasks ids[0..n)
 * (its hello's holding, docs/protocol.md 4.9; previous: the registration
 * it had, 0 unknown) keeps each one that it may: a queued task (not
 * dispatched elsewhere since) is assigned to w, one assigned to a lost or
 * stale registration of the same process (its supervisor's token, pid
 * and host) moves to w.  The others (assigned elsewhere, delayed,
 * finished, unknown, or queued again after a result from previous) go in
 * drop, which has room for n.  Returns how many.  Also for a journal's
 * restore: tasks restored as queued are kept by the worker that holds
 * them.
 */
size_t workers_claim(struct sched *s, struct worker *w, const uint64_t *ids,
    size_t n, uint64_t previous, uint64_t *drop);
/* This run's epoch: the name of its task ids for workers (hello and
 * welcome), random, made at the first worker's hello unless set before
 * (a journal that restores task ids restores it too). */
uint64_t workers_epoch(struct sched *s);
/* Hand queued tasks to parked workers. */
void dispatch(struct sched *s);
void workers_free_all(struct sched *s);
/* status_reply's "worker_list" into the reply being written */
void workers_status(struct sched *s);

/* -------------------------------------------------------- supervisors */

/* Owned by supervisors.c: a `ferry worker` that reports how its
 * processes end and takes orders to kill one that runs a cancelled
 * task. */
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

struct supervisor *sup_of(struct sched *s, const struct worker *w);
void handle_supervisor_hello(struct sched *s, uint32_t pipe,
    const struct proto_msg *m, struct rctx *rc);
void handle_watch(struct sched *s, struct supervisor *sp,
    const struct proto_msg *m, struct rctx *rc);
void handle_report(struct sched *s, struct supervisor *sp,
    const struct proto_msg *m, struct rctx *rc);
/* Order w's supervisor to stop task id in w's process. */
void order_kill(struct sched *s, struct worker *w, uint64_t id);
void supervisor_gone(struct sched *s, struct supervisor *sp);
void supervisors_free_all(struct sched *s);

/* ----------------------------------------------------------- sessions */

/* A stored result, owned by results.c. */
struct result {
	struct result *next;
	uint64_t       seq;
	uint64_t       batch; /* sent once the journal holds it (jr_durable
	                       * >= batch) */
	uint64_t       tag;
	int32_t        code;
	uint32_t       len;
	uint32_t       attempts;
	uint8_t        data[];
};

/* Owned by sessions.c; its result fields by results.c. */
struct session {
	uint64_t        id;
	uint32_t        pipe;   /* 0 while disconnected */
	struct idmap    tags;   /* tag -> task (not yet finished) */
	struct idmap    done;   /* tag -> result (finished, not acked) */
	struct idmap    full;   /* tags refused as full, to come again: a
	                         * task that refers to one is refused too
	                         * (graph.c) */
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
	uint64_t        ack_mark; /* the journal's mark when it was held */
	uint64_t        ack_accepted;
	uint32_t        ack_gen;
	struct list_node ack_node; /* in s->acks while an answer is held */
	struct list_node undurable_node; /* in s->undurable while it has
	                                  * results not yet on disk */
	struct list_node jr_node; /* journal.c: its record is to be
	                           * written with the next batch */
	int             restored; /* read back from the journal, no fetch
	                           * since: a client's ack above sent_seq
	                           * is believed (docs/protocol.md 4.4) */
};

/*
 * A session observer: told when a session is opened, when a client's
 * acknowledgement dropped its results up to ack, and when it ends
 * (expired or closed; not at shutdown).
 */
enum session_event { SESSION_OPENED, SESSION_ACKED, SESSION_ENDED };
typedef void (*session_observer_fn)(struct sched *s, struct session *se,
    int event, uint64_t ack, void *arg);
int sched_observe_sessions(struct sched *s, session_observer_fn fn,
    void *arg);
void session_notify(struct sched *s, struct session *se, int event,
    uint64_t ack);

struct jsession;
/* Make a session read back from the journal, disconnected (it expires
 * after result_ttl like any other); NULL when memory runs out. */
struct session *session_restore(struct sched *s, const struct jsession *js);
/* Start the expiry of every restored session (once restoring is done). */
void sessions_restored(struct sched *s);

void handle_client_hello(struct sched *s, uint32_t pipe,
    const struct proto_msg *m, struct rctx *rc);
void handle_submit(struct sched *s, struct session *se,
    const struct proto_msg *m, struct rctx *rc);
void handle_cancel(struct sched *s, struct session *se,
    const struct proto_msg *m, struct rctx *rc);
void session_gone(struct sched *s, struct session *se);
/* Cancel every task with an id from first_id on, its client getting
 * FERRY_EJOURNAL and why: the journal failed before they were on disk,
 * so their submits are refused rather than answered. */
void tasks_refuse_unrecorded(struct sched *s, uint64_t first_id,
    const char *why);
void session_free(struct sched *s, struct session *se);
void sessions_free_all(struct sched *s);

/* results.c */
int  results_full(const struct sched *s);
/* Store the result of finishing task t (its session not NULL), its number
 * into end->seq; 0, or -1 when memory runs out (nothing changed). */
int  results_store(struct sched *s, struct task *t,
    struct task_end *end);
void handle_fetch(struct sched *s, struct session *se,
    const struct proto_msg *m, struct rctx *rc);
void send_results(struct sched *s, struct session *se, struct rctx *rc);
/* Answer the parked fetches of sessions that got results. */
void flush_dirty(struct sched *s);
/* Hold back / send the answer to a submit (docs/protocol.md 4.3). */
void ack_hold(struct sched *s, struct session *se, struct rctx *rc,
    uint64_t accepted);
void ack_send(struct sched *s, struct session *se);
/* se is being freed at shutdown: its held answer is never sent. */
void ack_forget(struct sched *s, struct session *se);
/* Undelivered results of connected sessions. */
uint64_t results_owed(const struct sched *s);
/* Drop every stored result of se (it is being freed). */
void results_drop(struct sched *s, struct session *se);
struct jresult;
/* Keep a result read back from the journal (in seq order); 0 or -1. */
int  results_restore(struct sched *s, struct session *se,
    const struct jresult *jr);
/* The journal made more durable: results waiting for it may leave. */
void results_durable(struct sched *s);

/* --------------------------------------------------------------- stats */

#define STAT_ENUM(name, kind, width, doc) ST_##name,
enum sched_stat { FERRY_STATUS_FIELDS(STAT_ENUM) ST_MAX };
#undef STAT_ENUM

int  stats_init(struct sched *s);
void handle_status(struct sched *s, struct rctx *rc);

/* -------------------------------------------------- peers and requests */

enum peer_kind { PEER_WORKER = 1, PEER_CLIENT, PEER_SUPERVISOR };

/* Owned by router.c: what a connection (pipe id) has registered as. */
struct peer {
	int   kind;
	void *obj;
};

/* router.c */
/* Register pipe as kind/obj; 0, or -1 when memory runs out. */
int  peer_add(struct sched *s, uint32_t pipe, int kind, void *obj);
void peer_del(struct sched *s, uint32_t pipe);
void handle_message(struct sched *s, nng_msg *msg, struct rctx *rc);
void pipe_gone(struct sched *s, uint32_t pipe);
int  router_init(struct sched *s);
void router_fini(struct sched *s);

/*
 * rctx.c: one request context, an NNG REP context with its own receive
 * and send operations.  It receives a request, is held while the
 * scheduler answers it at once or parks it, sends the reply, and then
 * rests in the idle list until it is the one to receive again.  Owned by
 * rctx.c.
 */
struct rctx {
	struct sched *s;
	nng_ctx       ctx;
	nng_aio      *rx, *tx;
	struct rctx  *all_next;  /* every context, for shutdown */
	struct rctx  *idle_next; /* in the idle list */
	nng_msg      *held;      /* a reply waiting for the journal */
	uint64_t      held_mark;
	struct rctx  *held_next;
};

/* Send the bytes in s->w as the reply to rc's request. */
void reply(struct sched *s, struct rctx *rc);
/* Reply with an error. */
void reply_error(struct sched *s, struct rctx *rc, int code,
    const char *text);
/* reply(), once the journal holds everything recorded up to mark (at
 * once when it does already): an answer that acknowledges a change of
 * state leaves only once the change is on disk. */
void reply_when(struct sched *s, struct rctx *rc, uint64_t mark);
/* Send the held replies the journal's progress allows. */
void replies_release(struct sched *s);
/* Answer every held reply with an error instead (stopping without the
 * journal having them). */
void replies_refuse_held(struct sched *s, int code, const char *text);
/* rc is done with its request without an answer (dropped). */
void rctx_release(struct sched *s, struct rctx *rc);
/* Let the next request in. */
void rctx_receive_next(struct sched *s);
/* Stop and free every context (shutdown, lock not held). */
void rctx_close_all(struct sched *s);
/* Answer rc with a welcome for id; a client's (client 1) also says
 * max_tag and resumed. */
void welcome_send(struct sched *s, struct rctx *rc, uint64_t id, int client,
    uint64_t max_tag, uint64_t resumed);

/* park.c */
/* Hold rc's request in p, answered by due(id, gen) after ms at the
 * latest; returns p->gen for the timer. */
void park_hold(struct sched *s, struct parked *p, struct rctx *rc,
    uint64_t ms, timer_fn due, uint64_t id);
/* Take p's request to answer it now (NULL if none parked). */
struct rctx *park_take(struct parked *p);
/* Whether a due timer (gen) still speaks of p's parked request. */
int park_due(const struct parked *p, uint32_t gen);
/* Drop p's request unanswered (its connection is gone). */
void park_drop(struct sched *s, struct parked *p);

/* loop.c */
/* Run fn(s, id, gen) at when (ms); a timer that cannot be added is
 * logged and run at the loop's next turn instead of being lost. */
void timer_add(struct sched *s, uint64_t when, timer_fn fn, uint64_t id,
    uint32_t gen);
/* The same without waking the loop thread for it: it runs at the first
 * request or turn of the loop after it is due. */
void timer_add_lazy(struct sched *s, uint64_t when, timer_fn fn, uint64_t id,
    uint32_t gen);
/* Wake the loop thread (from any thread). */
void wake_loop(struct sched *s);
/* What is due after any event. */
void loop_turn_locked(struct sched *s);
/* Have fn(s) run at the end of every turn (and after every request):
 * 0, or -1 when SCHED_MAX_TURN_HOOKS are registered. */
int  sched_on_turn(struct sched *s, void (*fn)(struct sched *s));
/* The loop thread's body: until s->stop or a drain ends.  Returns 0, or
 * 1 after a poll failure. */
int  sched_loop(struct sched *s);
/* NNG's pipe callback: a connection closed (any thread). */
void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg);
/* The scheduler's clock (ms); a unit test may set s->now_ms. */
uint64_t sched_now(const struct sched *s);

/* listen.c: the socket, its listeners, TLS and the token. */
int  sched_listen(struct sched *s);

/* journal.c */
/* With cfg->journal_path: open the journal, restore what it holds into s
 * (before the scheduler listens) and record every change from now on.
 * Without one, say so.  0, or -1 (logged: the scheduler must not
 * start). */
int  journal_start(struct sched *s);
/* Write what is left and close it (after the loop stopped, before
 * sched_fini: freeing the state at exit is not recorded). */
void journal_stop(struct sched *s);
/* 0 when a task may be submitted now, else the code it is refused with
 * and the reason in why (the journal cannot be written). */
int  journal_refuses(struct sched *s, char *why, size_t len);

/* sched.c: the state of every module (no socket): 0, or -1 */
int  sched_init(struct sched *s, const struct sched_config *cfg);
void sched_fini(struct sched *s);
/* stopping (a signal came) */
void drain_begin(struct sched *s, uint32_t signo);
int  drain_over(struct sched *s);

/* ----------------------------------------------------- the scheduler */

struct recent {
	uint64_t id;
	uint8_t  state;
	uint16_t attempts;
	char     fn[64];
	char     reason[256];
};

struct authlimit;
struct disp;
struct refusal;

struct sched {
	const struct sched_config *cfg;

	/* loop.c and listen.c: the socket and the loop thread's wake-ups */
	nng_socket      sock;
	int             event_fd, signal_fd;
	/* requests are handled on NNG's threads as they arrive, timers,
	 * closed pipes and signals on the loop thread, all under this
	 * lock, one at a time */
	pthread_mutex_t lock;
	uint64_t        sleep_until; /* the loop thread's wake-up */
	atomic_int      busy;        /* requests being handled */
	atomic_int      closing;
	pthread_mutex_t ev_lock;     /* gone_pipes */
	uint32_t       *gone_pipes;
	size_t          n_gone, cap_gone;
	struct timerheap timers;
	struct timer    spare[TIMER_SPARE]; /* not yet in the heap */
	size_t          n_spare;
	uint64_t        now_ms;      /* a unit test's clock; 0: the real one */

	/* rctx.c */
	pthread_mutex_t pool_lock;   /* the two lists below */
	struct rctx    *ctxs, *idle;
	struct proto_decoder dec;    /* router.c: the request being handled */
	struct proto_writer  w;      /* the reply being written */
	struct proto_writer  rej;    /* sessions.c: rejected submit entries */

	/* task.c */
	struct idmap     tasks;      /* id -> task */
	struct disp     *disp;       /* the queue and its policy */
	uint64_t         next_task_id;
	uint64_t         n_queued, n_delayed, n_assigned, n_waiting;
	struct graph    *graph;      /* graph.c */
	struct task_observer observers[SCHED_MAX_OBSERVERS];
	size_t           n_observers;
	struct {
		session_observer_fn fn;
		void               *arg;
	} sess_observers[SCHED_MAX_OBSERVERS];
	size_t           n_sess_observers;
	void           (*turn_hooks[SCHED_MAX_TURN_HOOKS])(struct sched *s);
	size_t           n_turn_hooks;
	struct task     *limbo;      /* queued tasks dispatch had no room for */

	/* functions.c */
	struct idmap     fns;        /* hash(name) -> fnreg chain */
	struct fnreg   **fn_by_idx;  /* idx -> fnreg (NULL: free) */
	size_t           n_fn_idx, cap_fn_idx;
	uint32_t        *fn_free;    /* indexes free for reuse */
	size_t           n_fn_free, cap_fn_free;
	uint64_t         n_unknown_fns; /* never registered, still named */
	uint64_t         n_unserved; /* queued tasks no connected worker runs */
	uint32_t         fn_wait_gen;

	/* workers.c */
	struct idmap     workers;    /* id -> worker */
	struct idmap     ghosts;     /* id -> lost worker awaiting a report */
	uint64_t         next_worker_id;
	uint64_t         epoch;      /* workers_epoch(); 0: not made yet */
	uint32_t         n_workers;
	struct list      waiting;    /* workers parked for work, in order */
	uint64_t         pick[SCHED_MAX_BATCH];

	/* supervisors.c */
	struct idmap     sups;       /* token -> supervisor */
	uint32_t         n_sups;

	/* sessions.c and results.c */
	struct idmap     sessions;   /* id -> session */
	uint32_t         n_clients;
	uint64_t         results_stored, result_bytes;
	struct session  *dirty;      /* sessions with new results */
	struct list      acks;       /* sessions holding back an answer */
	struct list      undurable;  /* sessions with results not yet on
	                              * disk */

	/* journal.c (jr NULL: no journal).  Batch numbers gate what leaves:
	 * what was recorded while jr_fill was the batch being filled is on
	 * disk once jr_durable >= jr_fill; jr_mark is the batch of the last
	 * record.  All three stay 0 when answers need not wait (no journal,
	 * or sync: batch). */
	struct journal  *jr;
	uint64_t         jr_fill, jr_mark, jr_durable;
	int              jr_trouble; /* cannot write: submissions refused,
	                              * results sent without waiting */
	uint64_t         restore_until; /* held-back tasks wait till then */

	/* rctx.c: replies waiting for the journal, in order */
	struct rctx     *held_head, *held_tail;

	/* router.c */
	struct idmap      peers;     /* pipe id -> peer */
	struct authlimit *auth;      /* failed authentications per host */
	struct list       refusals;  /* slowed refusals waiting */
	int               auth_timer; /* a summary timer is pending */
	char              token[SEC_TOKEN_MAX + 1]; /* "": none required */

	/* stats.c: the counters of status_fields.h (gauges are filled in
	 * when the status is asked for) */
	uint64_t         stat[ST_MAX];
	struct recent    recent[RECENT_FAILURES];
	uint32_t         n_recent;
	uint64_t         start_ms;

	/* sched.c */
	int              stop;
	int              draining;   /* a stop signal came: finishing */
	uint64_t         drain_until;
	int              untrimmed;  /* work since memory was returned */
};

#endif
