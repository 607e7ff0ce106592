/*
 * client_int.h - libferry's private types, shared by its modules:
 *
 *   conn.c     the connection: connect (options, socket, I/O thread),
 *              hello and welcome, replies in, what is due out (pump),
 *              a lost connection, close; the client's references
 *   reach.c    why the scheduler cannot be reached (NNG's dialer
 *              statistics), and giving up when the reconnect window
 *              closes
 *   submit.c   submit and map: futures made and queued, the submit
 *              messages, what the scheduler accepted, back-pressure
 *   futures.c  futures: completion, wait, as-completed, outcome,
 *              cancel
 *   graph.c    task graphs: future references, what they stand for when
 *              a task is submitted and sent (its deps), and holding back
 *              the acknowledgement of a result a submit in flight needs
 *   results.c  results: the fetch long poll, orphans and attach, a
 *              session the scheduler lost
 *   status.c   the cluster's status and the client's own counters
 *
 * Locking: one mutex per client (lock) guards everything below but
 * what is marked otherwise; functions named *_locked are called with it
 * held.  A module calls down or sideways: conn.c dispatches replies to
 * the modules' *_answer_locked() and asks each for what is due
 * (*_pump_locked()).
 *
 * Tags (client task ids) at or below base_tag belong to an earlier
 * process whose session this one resumed; their results, when no future
 * waits for them, are kept as orphans until ferry_attach() takes them.
 * Every tag above base_tag was made here, so a result for one of those
 * that has no future is a duplicate.
 *
 * unsent counts tasks not yet accepted by the scheduler (queued here, in
 * a submit in flight, or rejected as full); ferry_submit/ferry_map wait
 * for it to fall below max_unsent, or refuse (FERRY_FULL_FAIL).
 */
#ifndef FERRY_CLIENT_INT_H
#define FERRY_CLIENT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <nng/nng.h>

#include "ferry/ferry.h"
#include "proto.h"
#include "req.h"
#include "security.h"
#include "util.h"

#define MAX_REQS 16
#define MAX_SUBMITS_INFLIGHT 4
#define FETCH_WAIT_MS 5000
#define RETRY_FULL_MS 20       /* first back-off after a full queue */
#define RETRY_FULL_MAX_MS 1000 /* its cap (it doubles) */
#define ROOM_GAP_MS 5          /* least time between sends for room */

/* Whether a caller's options struct (of o->size bytes) has field. */
#define OPT_HAS(o, type, field)                                            \
	((o)->size >= offsetof(type, field) + sizeof((o)->field))

/* The kinds of request a client sends. */
enum creq_kind {
	CREQ_HELLO = 1,
	CREQ_SUBMIT,
	CREQ_FETCH,
	CREQ_CANCEL,
	CREQ_STATUS,
};

struct ferry_future {
	ferry_client          *c;
	uint64_t               tag;
	int                    state;
	int                    errcode;
	uint8_t               *data; /* result bytes, or NUL-ended message */
	size_t                 len;
	char                  *fn;   /* until submitted */
	uint8_t               *args; /* until accepted */
	size_t                 fn_len, args_len;
	char                  *keys; /* locality keys, NUL-separated */
	uint32_t               n_keys;
	struct proto_task_opts opts;     /* failure options sent with it */
	uint32_t               attempts; /* runs started, from the result */
	int                    refs;     /* the caller's, the client's (until
	                                  * complete), the queue's or a
	                                  * request's (while it carries it) */
	int                    queued;   /* in the submit queue */
	int                    unsent;   /* counted in the client's unsent */
	int                    cancel_requested; /* a cancel was sent */
	int                    attached;  /* made by ferry_attach */
	struct ferry_future   *next;      /* submit queue */
	struct ferry_iter     *iter;      /* the iterator it belongs to */
	struct ferry_future   *iter_next; /* that iterator's ready list */
	void                  *iter_data; /* the caller's datum for it
	                                   * there (ferry_iter_add) */

	/* task graphs (graph.c) */
	int                    refd;    /* in the client's refd map */
	uint64_t              *deps;    /* until accepted: the tags its
	                                 * arguments refer to that are not
	                                 * finished here (sorted, distinct),
	                                 * sent with it */
	uint32_t               n_deps;
	struct ferry_future  **inputs;  /* until accepted: the futures of
	                                 * those tags that were pending when
	                                 * it was last resolved, a reference
	                                 * each */
	uint32_t               n_inputs;
	int                    holding; /* sent, unanswered: counted in each
	                                 * input's refs_inflight */
	uint32_t               refs_inflight; /* tasks referring to this
	                                       * one that are holding */
	uint64_t               frozen_seq;    /* its result's seq, kept out
	                                       * of the ack (0: none) */
};

/* What resolving a task's future references gave (graph.c). */
struct graph_args {
	uint8_t              *args; /* a copy with references replaced
	                             * (malloc'd), NULL: none replaced */
	size_t                len;
	uint64_t             *deps; /* as in struct ferry_future */
	uint32_t              n_deps;
	struct ferry_future **inputs;
	uint32_t              n_inputs;
};

/* A result that arrived for a tag without a future (futures.c). */
struct orphan {
	int32_t  code;
	uint32_t attempts;
	size_t   len;
	uint8_t  data[];
};

struct ferry_iter {
	ferry_client        *c;
	size_t               total, yielded;
	struct ferry_future *ready_head, *ready_tail;
	/* made by ferry_iter_new: futures come over time, so having
	 * yielded all is no end; it holds a reference on the client */
	int                  open;
};

/* A request in flight (struct req first: the request layer's head). */
struct creq {
	struct req            h;
	struct ferry_future **futs; /* submit: the futures it carried, a
	                             * reference on each */
	uint32_t              n_futs;
	uint64_t             *ids;  /* cancel: the ids it carried */
	uint32_t              n_ids;
	/* submit: sent while backing off, as a probe (1) or for the room
	 * results showed (2) */
	int                   backoff;
};

/* What the dialer of a client's socket went through (NNG's statistics):
 * connections made, and attempts that failed, by kind (reach.c). */
struct dial_counts {
	uint64_t connect;
	uint64_t refused, timeout, other, auth, proto, reject;
};

struct ferry_client {
	/* set at connect, then read-only (conn.c) */
	char                    *url;
	struct ferry_client_opts opts; /* max_message_size: lowered by the
	                                * welcome */
	nng_socket               sock;
	struct req_dialer        dialer;   /* its dialer, watched (I/O
	                                    * thread, after connect) */
	int                      event_fd; /* wakes the I/O thread */
	nng_aio                 *rx;       /* receives every reply */
	pthread_t                thread;
	int                      thread_started;
	char                     token[SEC_TOKEN_MAX + 1]; /* "": none */
	uint64_t                 session;
	pthread_mutex_t          lock;
	pthread_cond_t           cv; /* any change a caller may wait for */

	/* the connection (conn.c) */
	int                refs;       /* the caller's + live futures */
	int                closing;
	int                leaked;     /* the socket could not be closed */
	int                connected;  /* welcome received */
	int                was_connected;
	int                hello_inflight;
	int                resume_retry; /* first hello refused: resend */
	uint64_t           hello_retry_ms;
	int                conn_error;   /* fatal error from hello */
	char               conn_msg[1024];
	struct req_link    link;         /* what the welcome said */
	struct creq        reqs[MAX_REQS];
	struct req_set     rs;           /* reqs */
	struct proto_writer w;           /* the request being written */
	struct proto_decoder dec;        /* replies (the receive callback) */
	atomic_int         pipe_lost;    /* set by NNG's pipe callback */

	/* the reconnect window (reach.c): the connection dropped at
	 * down_ms (0: up, or never was); after reconnect_ms the client
	 * gave up: offline until welcomed again, every pending future
	 * failed with down_msg, and so does every new task; results for
	 * tags up to gave_up_tag were given up on */
	uint64_t           down_ms;
	struct dial_counts down_dial; /* the dialer's counts at down_ms */
	int                offline;
	uint64_t           gave_up_tag;
	char               down_msg[1200];

	/* futures (futures.c) */
	uint64_t           next_tag;
	uint64_t           base_tag; /* tags <= this: earlier process's */
	struct idmap       pending;  /* tag -> future awaiting a result */
	/* results kept for tags without a future (tag -> struct orphan),
	 * and tags of attached futures that completed (tag -> non-NULL) */
	struct idmap       orphans;
	struct idmap       attached_done;
	uint64_t           seen;     /* the highest result seq taken */
	uint64_t           ack;      /* what the next fetch acknowledges:
	                              * seen, or less while a result is
	                              * frozen (graph.c) */
	int                fetch_inflight;
	uint64_t          *cancel_ids; /* cancels to send */
	size_t             n_cancel, cap_cancel;
	struct ferry_client_stats stats;

	/* submissions (submit.c) */
	size_t               unsent; /* tasks the scheduler has not
	                              * accepted */
	struct ferry_future *sq_head, *sq_tail; /* the submit queue */
	int                  submits_inflight;
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

	/* task graphs (graph.c) */
	int                  refs_made;  /* ferry_future_ref was called:
	                                  * submits look for references */
	struct idmap         refd;       /* tag -> future a reference was
	                                  * made to (until it is freed) */
	struct idmap         frozen;     /* tag -> future whose result is
	                                  * kept out of the ack */
	uint64_t             frozen_min; /* the lowest seq of those */
	/* the frozen results in seq order (seq, tag pairs), thawed ones
	 * dropped from the front lazily: the lowest is found in O(1) */
	uint64_t            *frz;
	size_t               frz_head, frz_len, frz_cap; /* in pairs */

	/* status (status.c) */
	int                  status_want;
	uint64_t             status_gen;
	uint8_t             *status_bytes;
	size_t               status_len;
};

/* ---- conn.c ---- */

/* Drop one reference (lock held).  Returns 1 if it destroyed the
 * client, lock included; 0 if the lock is still held. */
int client_release_locked(ferry_client *c);

/* Send whatever is due (lock held): submissions, cancels, a status
 * request, the fetch long poll.  Called from user threads, the receive
 * callback and the I/O thread, so nothing waits for a thread to wake. */
void pump_locked(ferry_client *c);

/* A request slot for kind, its fields cleared; NULL if all are busy. */
struct creq *creq_new(ferry_client *c, int kind);

/* Free what r holds and its slot. */
void creq_clear(struct creq *r);

/* Send c->w as request r (lock held).  Returns 0 or an NNG error. */
int creq_send(ferry_client *c, struct creq *r);

/* ---- reach.c ---- */

/* Sum the counts of the dialers of c's socket into dc (call without the
 * client's lock: NNG's locks are taken).  Returns 0, or -1 when NNG
 * keeps no statistics. */
int dial_counts_get(ferry_client *c, struct dial_counts *dc);

/* Why no connection came between counts a and b (a NULL: since the
 * start), or NULL if no attempt failed; *nobody: whether that means
 * nothing listens there. */
const char *dial_cause(const struct dial_counts *a,
    const struct dial_counts *b, const char *url, int *nobody);

/* The scheduler stayed out of reach for reconnect_ms (lock held, taken
 * and released inside): fail every pending future and go offline. */
void give_up_locked(ferry_client *c);

/* Wait for the welcome at connect (timeout_ms at most, -1: no limit).
 * Returns 0, or why not with a message in errbuf. */
int connect_wait(ferry_client *c, int timeout_ms, char *errbuf,
    size_t errbuf_len);

/* ---- submit.c ---- */

/* Send the queued submissions that are due (lock held). */
void submit_pump_locked(ferry_client *c);

/* The answer to submit request r (lock held; rv: decoding it). */
void submit_answer_locked(ferry_client *c, struct creq *r, int rv,
    const struct proto_msg *m, const char *err);

/* Put futures back at the front of the submit queue, moving the
 * caller's reference on each to the queue (or dropping it if done). */
void requeue_front_locked(ferry_client *c, struct ferry_future **fs,
    uint32_t n);

/* Leave back-off (lock held): a new connection, maybe a new scheduler. */
void full_reset_locked(ferry_client *c);

/* ---- futures.c, results.c ---- */

/* Drop one reference to f (lock held).  Returns 1 if that freed the
 * client too (its lock is then gone and was released). */
int future_release_locked(struct ferry_future *f);

/* Complete f (lock held) with state and code, the result or message
 * copied: it leaves the pending map, and its client reference goes. */
void future_complete_locked(ferry_client *c, struct ferry_future *f,
    int state, int code, const void *data, size_t len);

/* Fail every pending future with msg (lock held); with sent_only, only
 * those sent to the scheduler (not in the submit queue). */
void futures_fail_locked(ferry_client *c, int code, const char *msg,
    size_t len, int sent_only);

/* Queue a cancel request for tag (lock held).  Returns 0 or -1. */
int cancel_add_locked(ferry_client *c, uint64_t tag);

/* Send the cancels and the fetch that are due (lock held). */
void cancel_pump_locked(ferry_client *c);
void fetch_pump_locked(ferry_client *c);

/* The answer to the fetch (lock held). */
void fetch_answer_locked(ferry_client *c, int rv, const struct proto_msg *m);

/* The scheduler no longer knows our session (lock held): fail the
 * futures of the tasks it had accepted. */
void session_lost_locked(ferry_client *c);

/* Whether a result for tag, which has no future, is a repeat of one
 * delivered here already. */
int tag_completed_locked(const ferry_client *c, uint64_t tag);

/* ts = now + timeout_ms (a deadline for wait_locked). */
void deadline_of(int timeout_ms, struct timespec *ts);

/* Wait on the client's condition once, until ts (timeout_ms < 0:
 * without a deadline; 0: not at all).  Returns 0 or FERRY_ETIMEDOUT. */
int wait_locked(ferry_client *c, int timeout_ms, const struct timespec *ts);

/* The results up to seq upto were taken (lock held): acknowledge them
 * in the next fetch, all but those from the lowest frozen one on. */
void results_taken_locked(ferry_client *c, uint64_t upto);

/* Recompute the ack from seen and the frozen results (lock held). */
void ack_update_locked(ferry_client *c);

/* ---- graph.c ---- */

/* Resolve the future references in args (lock held): a result known
 * here goes in place of its reference, a failure known here becomes a
 * failed input, the other tags (at most max_tag) are the deps.  Returns
 * 0, FERRY_EINVAL (args malformed, or a tag above max_tag) or
 * FERRY_ENOMEM; g is then empty. */
int graph_resolve_locked(ferry_client *c, const void *args, size_t len,
    uint64_t max_tag, struct graph_args *g);

/* Free what g holds, its references on inputs included (lock held). */
void graph_args_free_locked(struct graph_args *g);

/* f is about to be sent (lock held): if an input finished since it was
 * resolved, resolve it again.  Returns 0, or an error to fail f with. */
int graph_take_locked(ferry_client *c, struct ferry_future *f);

/* A submit carrying f went out (lock held). */
void graph_sent_locked(ferry_client *c, struct ferry_future *f);

/* The submit carrying f was answered (lock held): its inputs' results
 * may be acknowledged; once accepted, it needs them no more. */
void graph_answered_locked(ferry_client *c, struct ferry_future *f);

/* f completed, or was accepted (lock held): drop its deps and inputs. */
void graph_drop_locked(ferry_client *c, struct ferry_future *f);

/* f is being freed (lock held). */
void graph_forget_locked(ferry_client *c, struct ferry_future *f);

/* A result with seq arrived for f while a submit referring to it is in
 * flight (lock held): keep it out of the ack.  Returns 0 or -1 (no
 * memory: take nothing from seq on). */
int graph_freeze_locked(ferry_client *c, struct ferry_future *f,
    uint64_t seq);

/* A new session (lock held): seqs start again, nothing is frozen. */
void graph_session_reset_locked(ferry_client *c);

/* ---- status.c ---- */

/* Send the status request that is due (lock held). */
void status_pump_locked(ferry_client *c);

/* The answer to a status request (lock held): msg's bytes are kept. */
void status_answer_locked(ferry_client *c, int rv, const struct proto_msg *m,
    nng_msg *msg);

#endif
