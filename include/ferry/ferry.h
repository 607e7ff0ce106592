/*
 * ferry.h - the Ferry client API.
 *
 * A client connects to a Ferry scheduler, submits tasks (a function name a
 * worker's task library registered, plus msgpack-encoded arguments) and
 * receives their results through futures.  The client only sends messages:
 * it never starts processes and never serializes code.
 *
 * Thread safety: a ferry_client and the futures it created may be used from
 * any number of threads at once.  One background I/O thread per client talks
 * to the scheduler and batches submissions and results automatically.
 *
 * Ownership: every object returned through an out-parameter belongs to the
 * caller and is released with the matching _free/_close function.  Pointers
 * returned by accessors (result bytes, error text) are borrowed: valid until
 * the object they came from is freed.
 *
 * Errors: functions return 0 (FERRY_OK) or a negative ferry_error; see
 * ferry_strerror().
 */
#ifndef FERRY_FERRY_H
#define FERRY_FERRY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(FERRY_BUILDING)
#define FERRY_API __attribute__((visibility("default")))
#else
#define FERRY_API
#endif

#define FERRY_VERSION_MAJOR 0
#define FERRY_VERSION_MINOR 1
#define FERRY_VERSION_PATCH 0
#define FERRY_VERSION_STRING "0.1.0"

/* Error codes: 0 is success, the rest are negative. */
enum ferry_error {
	FERRY_OK         = 0,
	FERRY_EINVAL     = -1,  /* an argument is invalid */
	FERRY_ENOMEM     = -2,  /* out of memory */
	FERRY_ETIMEDOUT  = -3,  /* the timeout passed first */
	FERRY_ECONNECT   = -4,  /* cannot reach the scheduler */
	FERRY_ECLOSED    = -5,  /* the client or connection is closed */
	FERRY_EPROTO     = -6,  /* a malformed or unexpected message */
	FERRY_EVERSION   = -7,  /* protocol version mismatch */
	FERRY_ETOOBIG    = -8,  /* a message or payload exceeds a limit */
	FERRY_EFULL      = -9,  /* the scheduler's queue is full */
	FERRY_ENOFUNC    = -10, /* no worker registered that function */
	FERRY_ETASK      = -11, /* the task failed (see ferry_future_error) */
	FERRY_ECANCELED  = -12, /* the task was cancelled */
	FERRY_EPENDING   = -13, /* the task has not finished yet */
	FERRY_ENOTFOUND  = -14, /* no such task, worker or object */
	FERRY_ESTATE     = -15, /* not possible in the current state */
	FERRY_EWORKER    = -16, /* the worker running the task was lost */
	FERRY_ETRANSPORT = -17, /* an NNG transport error */
	FERRY_ESYSTEM    = -18, /* an operating system error (see errno) */
	FERRY_EDEAD      = -19, /* quarantined after killing workers */
	FERRY_ECRASHED   = -20, /* the task crashed its worker process */
	FERRY_EOBJECT    = -21, /* an object reference cannot be loaded */
	FERRY_EMEMORY    = -22, /* the task's process went over its memory
	                         * limit */
	FERRY_EAUTH      = -23, /* authentication failed (wrong or missing
	                         * token, see docs/security.md) */
	FERRY_EJOURNAL   = -24, /* the scheduler's journal cannot be written
	                         * (disk full, I/O error): not accepted */
	FERRY_EDEPENDENCY = -25, /* a task this one's arguments refer to
	                          * (ferry_future_ref) failed or was
	                          * quarantined; the message names the
	                          * first such task and its error (after a
	                          * cancelled one: FERRY_ECANCELED) */
};

/* A human-readable description of an error code (never NULL). */
FERRY_API const char *ferry_strerror(int err);

/* The library's version string at run time, e.g. "0.1.0". */
FERRY_API const char *ferry_version(void);

/* Task states as a client sees them. */
enum ferry_state {
	FERRY_PENDING   = 0, /* submitted, not finished */
	FERRY_DONE      = 1, /* finished with a result */
	FERRY_FAILED    = 2, /* finished with an error */
	FERRY_CANCELLED = 3, /* cancelled before it finished */
	FERRY_DEAD      = 4, /* quarantined: it killed worker processes
	                      * (errcode FERRY_EDEAD; ferry_future_error()
	                      * lists the reasons); never run again */
};

typedef struct ferry_client ferry_client;
typedef struct ferry_future ferry_future;

/* What ferry_submit()/ferry_map() do when the client already holds
 * max_unsent tasks the scheduler has not accepted (struct
 * ferry_client_opts, on_full). */
enum ferry_on_full {
	/* wait until the scheduler accepts some (bounded by
	 * submit_timeout_ms: FERRY_ETIMEDOUT, and by ferry_client_close:
	 * FERRY_ECLOSED); tasks the scheduler rejects because its queue is
	 * full are kept and sent again as results of this client show that
	 * room freed, or after a back-off (20 ms, doubling up to 1 s),
	 * whichever comes first; ferry_client_stats' resent counts them */
	FERRY_FULL_BLOCK = 0,
	/* return FERRY_EFULL at once, creating no future; a task the
	 * scheduler rejects because its queue is full completes as
	 * FERRY_FAILED with errcode FERRY_EFULL and the scheduler's message */
	FERRY_FULL_FAIL = 1,
};

/*
 * Options for ferry_client_connect_opts(); zero-initialise, then set
 * size = sizeof(struct ferry_client_opts) so the struct can grow.  A zero
 * field means its default.
 */
struct ferry_client_opts {
	size_t size;
	int connect_timeout_ms; /* default 10000 */
	size_t max_message_size; /* default 64 MiB */
	size_t max_batch;        /* tasks per submit message, default 4096 */
	/* back-pressure (enum ferry_on_full), default FERRY_FULL_BLOCK */
	int on_full;
	/* most tasks submitted here and not yet accepted by the scheduler
	 * (queued in the client, in flight, or rejected as full and waiting
	 * to be sent again); bounds the client's memory.  Default
	 * 16 x max_batch (65536). */
	size_t max_unsent;
	/* FERRY_FULL_BLOCK: longest wait in ferry_submit/ferry_map for room,
	 * in ms; 0 (default) or -1: no limit */
	int submit_timeout_ms;
	/* session to resume (0, default: a new random session).  A process
	 * that knows the session of an earlier one (ferry_client_session())
	 * resumes it to collect its results with ferry_attach().  Only one
	 * connection may use a session at a time: a hello for a session
	 * still attached elsewhere is refused (FERRY_ESTATE), and connecting
	 * fails if the scheduler has not yet noticed that the earlier
	 * process is gone before connect_timeout_ms. */
	uint64_t session;
	/* security (docs/security.md); NULL: not used.  For a tls+tcp://
	 * URL tls_ca_file is required: the CA bundle (PEM) that signed the
	 * scheduler's certificate.  tls_cert_key_file: the client's own
	 * certificate and private key in one PEM file, for a scheduler that
	 * requires client certificates.  tls_server_name: the name the
	 * scheduler's certificate must carry (default: the URL's host).
	 * token_file: a file holding the cluster's shared token, sent in
	 * hello; refused (FERRY_EINVAL) when the URL is plain tcp:// to a
	 * host other than loopback.  A wrong or missing token makes the
	 * connection fail with FERRY_EAUTH.  The strings are read during
	 * ferry_client_connect_opts() only. */
	const char *tls_ca_file;
	const char *tls_cert_key_file;
	const char *tls_server_name;
	const char *token_file;
	/* when not NULL, a failing ferry_client_connect_opts() writes what
	 * failed here (errbuf_len bytes, always NUL-terminated): the file,
	 * the address, or the scheduler's refusal */
	char  *errbuf;
	size_t errbuf_len;
	/* since 0.1.0 with bounded reconnection: */
	/* after the connection to the scheduler drops, how long (ms) the
	 * client keeps trying to reach it again; default 30000, -1: for
	 * ever.  Back within it, the session resumes (docs/protocol.md
	 * 4.9).  When it runs out, every pending future fails with
	 * FERRY_ECLOSED and a message naming the address, the cause and
	 * how long it tried ("no scheduler at ipc:///tmp/f.sock:
	 * connection refused; gave up after 30 s"); until a scheduler
	 * takes the client back (it keeps dialing), new tasks and
	 * ferry_attach()'s new futures fail the same way at once and
	 * ferry_cluster_status() returns FERRY_ECLOSED. */
	int reconnect_ms;
	/* while connecting, how long (ms) to keep dialing when nothing
	 * listens at the address (no connection was made, and attempts
	 * were refused or failed): then connecting fails with
	 * FERRY_ECONNECT and errbuf says why ("no scheduler at URL:
	 * connection refused").  0 (default): for all of
	 * connect_timeout_ms, so that a client may start before its
	 * scheduler.  The ferry command uses 800. */
	int no_scheduler_ms;
};

/*
 * The address of this user's default cluster, the one `ferry submit`
 * dials without --connect: $FERRY_ADDRESS if set, else the socket of
 * config/local.yaml in the user's runtime directory,
 * ipc://RUNTIME/local.sock, RUNTIME being $FERRY_RUNTIME_DIR, else
 * $XDG_RUNTIME_DIR/ferry, else /tmp/ferry-UID.  Writes it into buf (len
 * bytes).  Returns 0, FERRY_EINVAL when $FERRY_RUNTIME_DIR is not an
 * absolute path, or FERRY_ETOOBIG when it does not fit in buf.
 */
FERRY_API int ferry_default_address(char *buf, size_t len);

/*
 * Connect to the scheduler at url (an NNG URL such as
 * "tcp://127.0.0.1:7710" or "ipc:///tmp/ferry-local.sock"), waiting up to
 * timeout_ms for it to answer.  On success *out is a new client the caller
 * closes with ferry_client_close().
 */
FERRY_API int ferry_client_connect(
    ferry_client **out, const char *url, int timeout_ms);

/* As ferry_client_connect(), with options (opts may be NULL). */
FERRY_API int ferry_client_connect_opts(ferry_client **out, const char *url,
    const struct ferry_client_opts *opts);

/* The client's session id (non-zero), to resume it later from another
 * process (ferry_client_opts.session).  0 if c is NULL. */
FERRY_API uint64_t ferry_client_session(const ferry_client *c);

/*
 * Close the connection and free the client.  Futures still held stay valid
 * (pending ones become FERRY_ECLOSED failures) and must still be freed with
 * ferry_future_free().  Accepts NULL.
 */
FERRY_API void ferry_client_close(ferry_client *c);

/*
 * Submit one task: function fn with msgpack-encoded arguments (args, len
 * bytes, copied; may be NULL/0 for no arguments).  On success *out is a
 * future the caller frees with ferry_future_free().  Returns at once; the
 * task is sent in the next batch.  Arguments holding future references
 * (ferry_future_ref) that are malformed, or refer to a task this client
 * has not submitted before this one, are FERRY_EINVAL.
 */
FERRY_API int ferry_submit(ferry_client *c, const char *fn, const void *args,
    size_t len, ferry_future **out);

/*
 * Submit n tasks of the same function; args[i] of lens[i] bytes are the
 * msgpack-encoded arguments of task i (copied).  On success futs[0..n-1]
 * are new futures, each freed by the caller.  They travel batched.  All
 * or nothing: on an error no future is returned (tasks already sent are
 * cancelled).  With FERRY_FULL_BLOCK a map larger than max_unsent is sent
 * in chunks, waiting for room between them; with FERRY_FULL_FAIL it
 * returns FERRY_EFULL unless all n tasks fit under max_unsent.
 */
FERRY_API int ferry_map(ferry_client *c, const char *fn, size_t n,
    const void *const *args, const size_t *lens, ferry_future **futs);

/*
 * A future reference: write into buf (cap bytes; FERRY_FUTURE_REF_MAX is
 * always enough) a msgpack value that stands for the result of f's task,
 * and set *len to its size.  Put it anywhere in the msgpack arguments of a
 * task submitted later on the same client, nested in arrays and maps, as
 * often as needed: the scheduler keeps that task waiting until f's task
 * has finished, then puts f's result (its msgpack value) in the
 * reference's place and runs it.  The task function sees plain values.
 * If f's task fails or is quarantined, the dependent task ends with
 * FERRY_EDEPENDENCY naming it, and so do its own dependents, without
 * running; if it is cancelled, they end cancelled (FERRY_ECANCELED),
 * their message naming it (see run_anyway in struct ferry_task_opts).
 *
 * The result is kept for the dependents even after this client has
 * fetched it; keep f (do not free it) until the tasks that refer to it
 * are submitted.  The reference names this client's session: put in a
 * task of another session it is refused (FERRY_EINVAL from the submit).
 * A whole pipeline can be submitted at once, and the client may then
 * disconnect: the scheduler runs each task as its inputs finish.  Close
 * only once the submits were accepted (ferry_client_stats' unsent is 0:
 * ferry_client_close drops what was not sent), and come back (resume the
 * session) within the scheduler's result_ttl: a session left longer
 * expires, and its waiting tasks are cancelled with it.  Returns 0,
 * FERRY_EINVAL (f or an argument NULL), FERRY_ETOOBIG (cap too small) or
 * FERRY_ENOMEM.
 */
#define FERRY_FUTURE_REF_MAX 48
FERRY_API int ferry_future_ref(
    void *buf, size_t cap, size_t *len, const ferry_future *f);

/*
 * Per-task failure options.  Initialise with ferry_task_opts_init() (a
 * zeroed struct is NOT "all defaults": it means no retries, no backoff
 * and no timeout), then set the fields you want.  -1 in a field means the
 * scheduler's default (its cluster file's scheduler.task_defaults); any
 * other negative value is FERRY_EINVAL.  See docs/protocol.md, 4.13.
 */
struct ferry_task_opts {
	size_t size;        /* sizeof(struct ferry_task_opts) */
	int retries;        /* runs again after a failure that counts
	                     * (crash, timeout; task errors only with
	                     * retry_errors), 0 ... 1000 */
	int backoff_ms;     /* delay before the first retry; doubles per
	                     * retry, with jitter */
	int backoff_max_ms; /* cap of that delay */
	int timeout_ms;     /* hard timeout of one run (the worker process
	                     * running it past this is killed); 0: none */
	int retry_errors;   /* non-zero: also retry errors the task function
	                     * reports (FERRY_ETASK); 0: fail on them */
	/* non-zero: when a task this one's arguments refer to
	 * (ferry_future_ref) fails, is cancelled or quarantined, run this one
	 * anyway, with {"error": code, "message": str} in that input's place
	 * (for clean-up steps); 0: end with FERRY_EDEPENDENCY without
	 * running */
	int run_anyway;
};

/* Set size and every option to -1 (the scheduler's defaults; for
 * run_anyway: off). */
FERRY_API void ferry_task_opts_init(struct ferry_task_opts *o);

/* As ferry_submit(), with failure options (opts NULL: all defaults).
 * Returns FERRY_EINVAL for an option out of range. */
FERRY_API int ferry_submit_opts(ferry_client *c, const char *fn,
    const void *args, size_t len, const struct ferry_task_opts *opts,
    ferry_future **out);

/* As ferry_map(), with the same failure options for every task (opts
 * NULL: all defaults). */
FERRY_API int ferry_map_opts(ferry_client *c, const char *fn, size_t n,
    const void *const *args, const size_t *lens,
    const struct ferry_task_opts *opts, ferry_future **futs);

/*
 * A future for task id of this client's session, submitted earlier by
 * this process or by an earlier one whose session this client resumed
 * (ferry_client_opts.session).  On success *out is a future the caller
 * frees with ferry_future_free().
 *
 * Results that arrive for tasks without a future (tasks of the earlier
 * process) are kept in the client, counted in ferry_client_stats' orphans,
 * until ferry_attach() takes them or the client closes; the scheduler
 * deletes a result once the client has it (a future's or the kept
 * store), so each result reaches exactly one future.  Hence:
 *  - a task this process still waits for: the same future (another
 *    reference to it: free each one);
 *  - a kept result: a finished future, and the result leaves the store;
 *  - a task of the earlier process with no result yet: a pending future
 *    completed when the result comes.  If the earlier process had already
 *    received that result (or never got its submit accepted) it never
 *    comes: wait with a timeout;
 *  - a task whose result this process already handed to a future (even
 *    one since freed), id 0, or an id above every id the session has
 *    used: FERRY_ENOTFOUND.
 */
FERRY_API int ferry_attach(ferry_client *c, uint64_t id, ferry_future **out);

/* The future's current state (enum ferry_state). */
FERRY_API int ferry_future_state(const ferry_future *f);

/*
 * Wait up to timeout_ms (-1: forever, 0: just check) for the task to
 * finish.  Returns 0 when it finished (done, failed or cancelled: see
 * ferry_future_state), FERRY_ETIMEDOUT otherwise.
 */
FERRY_API int ferry_future_wait(ferry_future *f, int timeout_ms);

/*
 * The result of a finished task: *data and *len are the msgpack-encoded
 * value the task function returned (borrowed: valid until the future is
 * freed).  Returns 0, FERRY_EPENDING if not finished, FERRY_ETASK (or
 * another error) if it failed, FERRY_ECANCELED if cancelled.
 */
FERRY_API int ferry_future_result(
    const ferry_future *f, const void **data, size_t *len);

/* The error code of a failed task (0 if it did not fail). */
FERRY_API int ferry_future_errcode(const ferry_future *f);

/* The error message of a failed task, or NULL (borrowed). */
FERRY_API const char *ferry_future_error(const ferry_future *f);

/* The task's id within its client session. */
FERRY_API uint64_t ferry_future_id(const ferry_future *f);

/* Runs of the task the scheduler started (more than 1 after retries; 0
 * for one that never ran, or when the scheduler does not say). */
FERRY_API uint32_t ferry_future_attempts(const ferry_future *f);

/*
 * Cancel the task: a queued task never runs; a running one is stopped
 * (its worker process is killed by its supervisor; a worker without a
 * supervisor finishes the run and its result is dropped).  Either way the
 * future becomes FERRY_CANCELLED, unless the task finished first.  Tasks
 * waiting for its result (ferry_future_ref) are cancelled with it, and
 * theirs in turn, without running (unless submitted with run_anyway, which
 * then run with an error value in its place).  Returns
 * 0 when the request was sent (wait on the future to see the outcome),
 * FERRY_ESTATE if the future has finished already.
 */
FERRY_API int ferry_cancel(ferry_future *f);

/*
 * Cancel many tasks of one client in one message (e.g. a whole map).
 * NULL entries and futures that have finished are skipped.  Returns 0,
 * FERRY_EINVAL if the futures belong to different clients, or
 * FERRY_ENOMEM.
 */
FERRY_API int ferry_cancel_many(ferry_future *const *futs, size_t n);

/* Free a future (pending or not); accepts NULL. */
FERRY_API void ferry_future_free(ferry_future *f);

/*
 * Wait up to timeout_ms (-1: forever) until all n futures have finished.
 * Returns 0, or FERRY_ETIMEDOUT.
 */
FERRY_API int ferry_wait_all(ferry_future *const *futs, size_t n,
    int timeout_ms);

/*
 * As-completed iteration over a set of futures:
 *
 *     ferry_iter *it;
 *     ferry_as_completed(c, futs, n, &it);
 *     ferry_future *f;
 *     while (ferry_iter_next(it, -1, &f) == 0) { ... }
 *     ferry_iter_free(it);
 *
 * ferry_iter_next() yields each future once, in the order they finish,
 * and returns FERRY_ENOTFOUND when all have been yielded, FERRY_ETIMEDOUT
 * when none finished within timeout_ms.  The iterator borrows the futures:
 * free it before them.
 */
typedef struct ferry_iter ferry_iter;
FERRY_API int ferry_as_completed(ferry_client *c, ferry_future *const *futs,
    size_t n, ferry_iter **out);
FERRY_API int ferry_iter_next(ferry_iter *it, int timeout_ms,
    ferry_future **f);
FERRY_API void ferry_iter_free(ferry_iter *it);

/*
 * An as-completed iterator that futures join over time, for a program
 * that keeps one thread collecting results (a language binding's
 * completion thread):
 *
 *     ferry_iter_new(c, &it);
 *     ...   ferry_map(c, fn, n, args, lens, futs);
 *           ferry_iter_add(it, futs, mine, n);      (any thread)
 *     ...   while (ferry_iter_next_many(it, -1, done, data, 256, &k) == 0)
 *                   for (i = 0; i < k; i++) deliver(done[i], data[i]);
 *
 * ferry_iter_new() makes an empty iterator of client c; it keeps c's
 * memory (not its connection) until ferry_iter_free(), so it may outlive
 * ferry_client_close().  Unlike one of ferry_as_completed(), having
 * yielded every future added so far is no end: ferry_iter_next() and
 * ferry_iter_next_many() on it wait for futures added later, until the
 * timeout (FERRY_ETIMEDOUT), or until the client is closed and every
 * future added has been yielded (FERRY_ECLOSED; ferry_client_close()
 * fails the pending ones with FERRY_ECLOSED, which yields them first).
 */
FERRY_API int ferry_iter_new(ferry_client *c, ferry_iter **out);

/*
 * Add n futures of the iterator's client to it (any iterator, also one
 * of ferry_as_completed()), each yielded once when it finishes (at once
 * if it has).  data (may be NULL) gives each a pointer of the caller's
 * that comes back with it from ferry_iter_next_many().  A future belongs
 * to one iterator at a time until yielded: one that is in an iterator
 * now, or of another client, is FERRY_EINVAL and then none is added.
 * The iterator borrows the futures, as with ferry_as_completed().
 */
FERRY_API int ferry_iter_add(ferry_iter *it, ferry_future *const *futs,
    void *const *data, size_t n);

/*
 * As ferry_iter_next(), many at a time: waits up to timeout_ms (-1:
 * forever) for at least one future to finish, then moves up to cap of
 * the finished ones, in the order they finished, into futs (and their
 * data pointers into data, which may be NULL); *n gets how many.
 * Returns 0 (*n > 0), FERRY_ETIMEDOUT, FERRY_ENOTFOUND (an iterator of
 * ferry_as_completed() that yielded all) or FERRY_ECLOSED (one of
 * ferry_iter_new(), as said there).
 */
FERRY_API int ferry_iter_next_many(ferry_iter *it, int timeout_ms,
    ferry_future **futs, void **data, size_t cap, size_t *n);

/*
 * Object references.  A task names a heavy input by path instead of
 * sending it: put an object reference anywhere in its msgpack arguments,
 * as an ext value of type FERRY_EXT_OBJECT whose payload
 * ferry_object_ref() writes:
 *
 *     uint8_t ref[512];
 *     size_t  n;
 *     ferry_object_ref(ref, sizeof(ref), &n, "/data/matrix.bin", NULL,
 *         0, NULL);
 *     msgpack_pack_ext(pk, n, FERRY_EXT_OBJECT);
 *     msgpack_pack_ext_body(pk, ref, n);
 *
 * The worker loads the file once into its object cache (memory-mapped by
 * default) and every later task on that worker reuses it; the scheduler
 * prefers workers that already hold a task's objects.  The path must lie
 * inside the worker group's object_roots.  docs/protocol.md describes the
 * payload so other languages can write it.
 */
#define FERRY_EXT_OBJECT 70

/*
 * Write an object reference's payload into buf (cap bytes; 64 + the
 * path's length always suffice); *len gets its size.  loader may be NULL
 * ("mmap"; also "mmap_prefault", "read", or one a task library
 * registered), size 0 (not checked) and sha256 NULL (not checked; else 32
 * bytes the file's content must hash to).  Returns 0 or FERRY_EINVAL.
 */
FERRY_API int ferry_object_ref(void *buf, size_t cap, size_t *len,
    const char *path, const char *loader, uint64_t size,
    const uint8_t *sha256);

/* Counters of one client, as ferry_client_stats() reports them. */
struct ferry_client_stats {
	size_t size;           /* set to sizeof(struct ferry_client_stats) */
	uint64_t submitted;    /* tasks handed to ferry_submit/ferry_map */
	uint64_t completed;    /* futures completed (any outcome) */
	uint64_t duplicates;   /* results received for an already completed
	                        * task and ignored (should stay 0) */
	uint64_t resent;       /* tasks sent again after a reconnection or
	                        * a full queue */
	uint64_t reconnects;   /* connections re-established */
	uint64_t orphans;      /* results kept now for tasks without a
	                        * future (see ferry_attach) */
	uint64_t unsent;       /* tasks not yet accepted by the scheduler */
};

/* Fill st (st->size must be set) with the client's counters. */
FERRY_API int ferry_client_stats(ferry_client *c,
    struct ferry_client_stats *st);

/* Counters of a cluster, as ferry_cluster_status() reports them. */
struct ferry_status {
	size_t size;             /* set to sizeof(struct ferry_status) */
	uint32_t workers;        /* registered worker processes */
	uint32_t slots;          /* their slots in total */
	uint32_t busy;           /* tasks running or held by workers */
	uint64_t queued;         /* tasks waiting in the queue */
	uint64_t submitted;      /* tasks accepted since start */
	uint64_t done;           /* finished with a result */
	uint64_t failed;         /* finished with an error */
	uint64_t requeued;       /* re-queued after a worker was lost */
	uint32_t clients;        /* connected clients */
	double uptime_s;         /* seconds since the scheduler started */
	/* since 0.1.0 with failure handling (docs/reliability.md) */
	uint64_t cancelled;      /* cancelled (queued, waiting or running) */
	uint64_t retried;        /* retries scheduled after failed runs */
	uint64_t dead;           /* quarantined after killing processes */
	uint64_t delayed;        /* waiting for their retry backoff now */
	uint64_t kills;          /* worker processes tasks killed */
	uint64_t late_results;   /* results of lost leases, dropped */
	/* since 0.1.0 with the counter table: every number of the status
	 * reply has a member of its name (docs/protocol.md 3.12) */
	uint64_t uptime_ms;        /* milliseconds since it started */
	uint64_t rejected;         /* submit entries rejected */
	uint64_t results_stored;   /* results waiting for their clients */
	uint64_t local;            /* tasks sent to a holder of their object */
	uint64_t bad_messages;     /* malformed or misplaced requests */
	uint64_t auth_failures;    /* requests refused with FERRY_EAUTH */
	uint64_t timeouts;         /* processes killed past a task's timeout */
	uint64_t memory_kills;     /* processes killed over the memory limit */
	uint64_t awaiting_report;  /* tasks of lost workers held for a report */
	uint32_t supervisors;      /* connected supervisors */
	uint64_t reports;          /* process-death reports received */
	uint64_t waiting_function; /* queued tasks no connected worker runs */
	/* since 0.1.0 with the journal (docs/reliability.md) */
	uint64_t restored;         /* tasks read back from the journal */
	uint64_t journal_commits;  /* batches written, one sync each */
	uint64_t journal_records;  /* records written */
	uint64_t journal_bytes;    /* bytes the journal takes on disk */
	uint32_t journal_trouble;  /* 1: it cannot be written */
	/* task graphs (ferry_future_ref) */
	uint64_t waiting; /* tasks waiting for the tasks they refer to */
};

/*
 * Ask the scheduler for its counters (st->size must be set).  When json is
 * not NULL, *json receives the scheduler's full status document (workers
 * listed one by one) as a NUL-terminated JSON string the caller frees with
 * free().
 */
FERRY_API int ferry_cluster_status(ferry_client *c, struct ferry_status *st,
    char **json, int timeout_ms);

/*
 * The same, with the scheduler's status document as it came: *doc gets a
 * msgpack map (docs/protocol.md 3.12: the counters, the workers, the
 * recent failures, the functions tasks wait for) of *len bytes that the
 * caller frees with free().  st may be NULL.
 */
FERRY_API int ferry_cluster_status_doc(ferry_client *c, struct ferry_status *st,
    void **doc, size_t *len, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif
