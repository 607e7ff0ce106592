/*
 * proto.h - Ferry's wire protocol: msgpack messages over NNG.
 *
 * Every message body is one msgpack map with at least "v" (the protocol
 * version) and "t" (the message type, a string).  docs/protocol.md
 * documents each message field by field.  Decoders never trust the input:
 * proto_decode() first checks that the bytes are one complete, well-formed
 * msgpack value whose containers fit the message, then checks each field's
 * presence and type, and reports what is wrong and where.
 */
#ifndef FERRY_PROTO_H
#define FERRY_PROTO_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION 1

/* Message types. */
enum proto_type {
	PROTO_NONE = 0,
	PROTO_HELLO,     /* peer -> scheduler: register a worker or client */
	PROTO_WELCOME,   /* scheduler -> peer: registration accepted */
	PROTO_SUBMIT,    /* client -> scheduler: a batch of tasks */
	PROTO_SUBMITTED, /* scheduler -> client: what was accepted */
	PROTO_FETCH,     /* client -> scheduler: ack results, wait for more */
	PROTO_RESULTS,   /* scheduler -> client: a batch of results */
	PROTO_CANCEL,    /* client -> scheduler: cancel tasks */
	PROTO_CANCELLED, /* scheduler -> client: which were cancelled */
	PROTO_STATUS,    /* anyone -> scheduler: ask for counters */
	PROTO_STATUS_REPLY, /* scheduler -> asker: the counters */
	PROTO_WORK,      /* worker -> scheduler: results and credit */
	PROTO_TASKS,     /* scheduler -> worker: tasks to run */
	PROTO_ERROR,     /* either way: a request failed */
	PROTO_WATCH,     /* supervisor -> scheduler: wait for orders */
	PROTO_REPORT,    /* supervisor -> scheduler: a worker process died */
	PROTO_ORDERS,    /* scheduler -> supervisor: processes to kill */
	PROTO_TYPE_MAX,
};

/* Roles a peer announces in hello. */
enum proto_role {
	PROTO_ROLE_WORKER = 1,
	PROTO_ROLE_CLIENT = 2,
	PROTO_ROLE_SUPERVISOR = 3,
};

/* Per-task failure options a submit entry may carry (its 5th element, a
 * map); each field counts only when its bit is in set, otherwise the
 * scheduler's defaults apply. */
#define PROTO_OPT_RETRIES 0x01u
#define PROTO_OPT_BACKOFF 0x02u
#define PROTO_OPT_BACKOFF_MAX 0x04u
#define PROTO_OPT_TIMEOUT 0x08u
#define PROTO_OPT_RETRY_ERRORS 0x10u
#define PROTO_OPT_RUN_ANYWAY   0x20u

struct proto_task_opts {
	uint32_t set;            /* PROTO_OPT_* bits */
	uint32_t retries;        /* retries after a failure that counts */
	uint32_t backoff_ms;     /* first retry delay */
	uint32_t backoff_max_ms; /* cap of the (doubling) delay */
	uint32_t timeout_ms;     /* hard timeout of one run, 0: none */
	uint32_t retry_errors;   /* 1: errors the task reports are retried */
	uint32_t run_anyway;     /* 1: run even if an input failed, with an
	                          * error value in its place (4.12) */
};

/* A task as it travels (client -> scheduler -> worker).  Strings and
 * bytes point into the decoded message. */
struct proto_task {
	uint64_t    id;       /* client's id in submit, scheduler's in tasks */
	const char *fn;       /* function name, fn_len bytes, not NUL-ended */
	uint32_t    fn_len;
	const char *args;     /* msgpack-encoded arguments */
	uint32_t    args_len;
	/* locality keys ("LOADER:PATH") of the objects its arguments
	 * reference (submit only; optional 4th element) */
	const msgpack_object *objs; /* n_objs strings */
	uint32_t              n_objs;
	/* submit: failure options (optional 5th element) */
	struct proto_task_opts opts;
	/* submit: the client's ids of the tasks its arguments refer to
	 * (optional 6th element, section 4.12), n_deps integers */
	const msgpack_object *deps;
	uint32_t              n_deps;
	/* tasks: hard timeout of this run in ms (optional 4th element), 0:
	 * none */
	uint32_t timeout_ms;
};

/* A task named in a supervisor's report: charged 1 means the process
 * died because of it (it counts toward quarantine), 0 that it merely ran
 * there at the time. */
struct proto_report_task {
	uint64_t id;
	uint32_t charged;
};

/* An order to a supervisor: kill process pid if it is running task. */
struct proto_kill {
	uint64_t pid;
	uint64_t task;
};

#define PROTO_MAX_TASK_OBJS 16

/* The longest list of task ids in a worker's hello ("holding") or its
 * welcome ("drop"): twice the largest capacity (what a worker holds, and
 * as many finished results not yet acknowledged).  A hello's list is also
 * held to twice its own capacity. */
#define PROTO_MAX_HOLDING (2u << 24)

/* A worker's object cache, as "work" reports it. */
struct proto_cache {
	uint64_t objects, bytes, loads, hits, evictions, failures;
	int      present;
};

/* A result as it travels (worker -> scheduler -> client).  code 0: data
 * is the msgpack-encoded value; otherwise code is a ferry_error and data
 * is a UTF-8 message. */
struct proto_result {
	uint64_t    id;
	int32_t     code;
	const char *data;
	uint32_t    len;
	uint32_t    attempts; /* results to clients: runs started (optional
	                       * 4th element), 0 when absent */
};

/* One decoded message.  Only the fields of its type are set; everything
 * points into the decoder's zone and the original bytes, valid until the
 * next proto_decode() on the same decoder. */
struct proto_msg {
	int      type;
	uint32_t version;

	/* hello */
	int         role;
	const char *name, *host, *group;
	uint64_t    pid, session, slots, capacity;
	const char **functions;
	uint32_t     n_functions;
	uint64_t     supervisor; /* worker: its supervisor's token, 0: none;
	                          * supervisor: its own token */
	const char  *token; /* the shared secret (docs/security.md), "" when
	                     * absent; at most 256 bytes */
	/* worker hello, registering again: the scheduler run (epoch) its
	 * tasks came from (0: none, a new process), its registration then,
	 * and the task ids it holds (at most 2 x capacity) */
	uint64_t  epoch, previous;
	uint64_t *holding;
	uint32_t  n_holding;

	/* welcome */
	uint64_t id, heartbeat_ms, heartbeat_timeout_ms, max_message_size;
	uint64_t resumed; /* 1: an existing client session was resumed */
	uint64_t max_tag; /* client: highest task id the session has used */
	/* worker: epoch above (this run's, 0: an older scheduler), and the
	 * held tasks it must discard */
	uint64_t *drop;
	uint32_t  n_drop;

	/* submit, tasks */
	struct proto_task *tasks;
	uint32_t           n_tasks;

	/* work: objects loaded and dropped (locality keys), cache counters */
	const msgpack_object *loaded, *evicted; /* arrays of strings */
	uint32_t              n_loaded, n_evicted;
	struct proto_cache    cache;

	/* work (results + credit), results (seq + results), submitted
	 * (accepted + rejected as results with a non-zero code) */
	uint64_t             credit;
	uint64_t             park; /* work: 1 = may be parked like a poll */
	uint64_t             accepted;
	struct proto_result *results;
	uint32_t             n_results;

	/* fetch, results */
	uint64_t ack, wait_ms, seq;

	/* cancel, cancelled */
	uint64_t *ids;
	uint32_t  n_ids;

	/* error */
	int32_t     code;
	const char *msg;

	/* report (pid above): the worker id the process had (0: unknown),
	 * why it died, and the tasks it was running */
	uint64_t                  worker_id;
	const char               *cause, *reason;
	struct proto_report_task *rtasks;
	uint32_t                  n_rtasks;

	/* orders */
	struct proto_kill *kills;
	uint32_t           n_kills;

	/* status reply: the whole map */
	const msgpack_object *body;
};

/* A reusable decoder (one msgpack zone). */
struct proto_decoder {
	msgpack_zone zone;
};

/* Initialise / release a decoder. */
void proto_decoder_init(struct proto_decoder *d);
void proto_decoder_fini(struct proto_decoder *d);

/*
 * Decode one message of len bytes into m.  Returns 0, or a negative
 * ferry_error (FERRY_EPROTO, FERRY_EVERSION) with a message in err that
 * says what is wrong and where ("submit: tasks[3][1] (fn): expected a
 * string, got an integer").
 */
int proto_decode(struct proto_decoder *d, const void *data, size_t len,
    struct proto_msg *m, char *err, size_t errlen);

/*
 * Check that data holds exactly one well-formed msgpack value whose
 * containers are no larger than the bytes that follow them.  Returns 0, or
 * -1 with a message naming the byte offset.
 */
int proto_check(const void *data, size_t len, char *err, size_t errlen);

/* Name of a message type ("submit"), or NULL. */
const char *proto_type_name(int type);

/*
 * Writing (proto_write.c).  A proto_writer appends msgpack to a growable
 * buffer.  Each message type has one writer below, proto_write_TYPE(),
 * which writes "v", "t" and the fields and counts the map's size itself;
 * messages with a list of tasks or results, which may be long, are
 * written in three steps (_begin, one _entry per element, _end).  The
 * bytes are the caller's in w->buf (data, size) until the next reset.
 *
 * The pieces they are made of are public too, for messages built in
 * steps (the scheduler's status reply) and for tests: proto_open() /
 * proto_open_map() / proto_end() and the proto_put_* fields, and the
 * list elements proto_pack_*.
 */
#define PROTO_MAX_OPEN 8 /* maps open at once in a writer */

struct proto_writer {
	msgpack_sbuffer buf;
	msgpack_packer  pk;
	/* maps opened by proto_open / proto_open_map and not yet ended:
	 * where their header is, and the fields put so far */
	size_t   open_at[PROTO_MAX_OPEN];
	uint32_t open_n[PROTO_MAX_OPEN];
	int      depth;
	/* list elements packed (proto_pack_*) since the last reset */
	uint32_t entries;
	/* the array32 list a _begin opened: where its header is, and the
	 * elements packed before it (list_at 0: none open) */
	size_t   list_at;
	uint32_t list_from;
};

void proto_writer_init(struct proto_writer *w);
void proto_writer_fini(struct proto_writer *w);
void proto_writer_reset(struct proto_writer *w);

/* Exchange the contents of two writers. */
void proto_writer_swap(struct proto_writer *a, struct proto_writer *b);

/* Append the list elements src holds (bytes and count) to dst. */
void proto_writer_append(struct proto_writer *dst,
    const struct proto_writer *src);

/*
 * Maps whose size the writer counts: proto_open() starts a message of
 * type (its "v" and "t" written), proto_open_map() starts a map as the
 * value of the key just put (or as an array element); every proto_put_*
 * in the innermost open map counts as a field; proto_end() ends the
 * innermost map and writes its size in the smallest form (moving what
 * follows when it needs more than one byte, so a list inside such a map
 * is closed before the map ends).  At most PROTO_MAX_OPEN maps are open
 * at once.
 */
void proto_open(struct proto_writer *w, int type);
void proto_open_map(struct proto_writer *w);
void proto_end(struct proto_writer *w);

/* Put a key and a value (proto_put_key: the value follows). */
void proto_put_uint(struct proto_writer *w, const char *key, uint64_t v);
void proto_put_int(struct proto_writer *w, const char *key, int64_t v);
void proto_put_str(struct proto_writer *w, const char *key, const char *s);
void proto_put_key(struct proto_writer *w, const char *key);

/* Put key with the list src holds (proto_pack_* elements) as its value:
 * an array header of src's count in the smallest form, then the bytes. */
void proto_put_list(struct proto_writer *w, const char *key,
    const struct proto_writer *src);

/* Put key with a cache's counters as a map (objects, bytes, loads, hits,
 * evictions, failures). */
void proto_put_cache(struct proto_writer *w, const char *key,
    const struct proto_cache *c);

/*
 * List elements: each packs one element and counts it in w->entries.  A
 * string or bytes of known length; a task entry [id, fn, args]; a result
 * entry [id, code, value-bin | message-str].
 */
void proto_pack_str(struct proto_writer *w, const char *s, size_t len);
void proto_pack_bin(struct proto_writer *w, const void *p, size_t len);
void proto_pack_task(struct proto_writer *w, uint64_t id, const char *fn,
    size_t fn_len, const void *args, size_t args_len);
void proto_pack_result(struct proto_writer *w, uint64_t id, int32_t code,
    const void *data, size_t len);

/* ---- one writer per message type (protocol.md section 3) ---- */

/* What a hello says; each role's writer takes the fields its hello has
 * (protocol.md 3.2, 3.3, 3.3b).  token "" or NULL: not sent. */
struct proto_hello {
	const char         *token;
	const char         *name, *host, *group;
	uint64_t            pid;
	uint64_t            session;    /* client */
	uint64_t            supervisor; /* worker: its supervisor's token (0:
	                                 * not sent); supervisor: its own */
	uint64_t            slots, capacity; /* worker */
	const char *const  *functions;       /* worker: n_functions names */
	uint32_t            n_functions;
	/* worker registering again (epoch 0: none of these is sent): the
	 * epoch of its last welcome, the worker id it had, and the task ids
	 * it holds (queued, running, or finished and not acknowledged) */
	uint64_t            epoch, previous;
	const uint64_t     *holding;
	uint32_t            n_holding;
};

void proto_write_hello_worker(struct proto_writer *w,
    const struct proto_hello *h);
void proto_write_hello_client(struct proto_writer *w,
    const struct proto_hello *h);
void proto_write_hello_supervisor(struct proto_writer *w,
    const struct proto_hello *h);

/* welcome; client 1 adds max_tag and resumed (a client's welcome). */
struct proto_welcome {
	uint64_t id, heartbeat_ms, heartbeat_timeout_ms, max_message_size;
	int      client;
	uint64_t max_tag, resumed;
};

/* What a worker's welcome adds (protocol.md 3.4): the epoch of the
 * scheduler's run (0: not sent), and the held tasks the worker must
 * discard (n_drop 0: not sent). */
struct proto_welcome_worker {
	uint64_t        epoch;
	const uint64_t *drop;
	uint32_t        n_drop;
};

void proto_write_welcome(struct proto_writer *w,
    const struct proto_welcome *m);
void proto_write_welcome_worker(struct proto_writer *w,
    const struct proto_welcome *m, const struct proto_welcome_worker *x);

/* submit: its tasks in an array32 list.  An entry has n_keys locality
 * keys (keys[i] of lens[i] bytes) and failure options (NULL or none
 * set: none) and n_deps ids of the tasks its arguments refer to:
 * [id, fn, args], [id, fn, args, [key...]],
 * [id, fn, args, [key...], {options}] or
 * [id, fn, args, [key...], {options} or nil, [dep...]], whichever is
 * shortest. */
void proto_write_submit_begin(struct proto_writer *w);
void proto_write_submit_entry(struct proto_writer *w, uint64_t id,
    const char *fn, size_t fn_len, const void *args, size_t args_len,
    const char *const *keys, const size_t *lens, uint32_t n_keys,
    const struct proto_task_opts *opts, const uint64_t *deps,
    uint32_t n_deps);
void proto_write_submit_end(struct proto_writer *w);

/* submitted: accepted, and the rejected entries rej holds
 * (proto_pack_result elements; NULL: none). */
void proto_write_submitted(struct proto_writer *w, uint64_t accepted,
    const struct proto_writer *rej);

void proto_write_fetch(struct proto_writer *w, uint64_t ack,
    uint64_t wait_ms);

/* results: the entries in an array32 list, each with its attempts
 * ([id, code, value | error, attempts]), then seq (of the last entry,
 * 0: none).  _empty: the answer to a superseded fetch, "results": []
 * (fixarray) and seq 0. */
void proto_write_results_begin(struct proto_writer *w);
void proto_write_results_entry(struct proto_writer *w, uint64_t id,
    int32_t code, const void *data, size_t len, uint32_t attempts);
void proto_write_results_end(struct proto_writer *w, uint64_t seq);
void proto_write_results_empty(struct proto_writer *w);

void proto_write_cancel(struct proto_writer *w, const uint64_t *ids,
    uint32_t n);
void proto_write_cancelled(struct proto_writer *w, const uint64_t *ids,
    uint32_t n);
void proto_write_status(struct proto_writer *w);

/* work: credit, and each of the others when given: park (1: sent),
 * results (NULL: absent, otherwise present even if empty), loaded and
 * evicted (NULL or empty: absent), cache (NULL: absent). */
struct proto_work {
	uint64_t                   credit;
	int                        park;
	const struct proto_writer *results; /* proto_pack_result elements */
	const struct proto_writer *loaded;  /* proto_pack_str elements */
	const struct proto_writer *evicted;
	const struct proto_cache  *cache;
};

void proto_write_work(struct proto_writer *w, const struct proto_work *m);

/* tasks: an array32 list of [id, fn, args] entries, with timeout_ms as
 * a 4th element when it is not 0. */
void proto_write_tasks_begin(struct proto_writer *w);
void proto_write_tasks_entry(struct proto_writer *w, uint64_t id,
    const char *fn, size_t fn_len, const void *args, size_t args_len,
    uint32_t timeout_ms);
void proto_write_tasks_end(struct proto_writer *w);

void proto_write_error(struct proto_writer *w, int code, const char *msg);
void proto_write_watch(struct proto_writer *w, uint64_t wait_ms);

/* report: the process pid had worker id worker (0: unknown), ended for
 * cause (reason for humans), running n tasks. */
void proto_write_report(struct proto_writer *w, uint64_t pid,
    uint64_t worker, const char *cause, const char *reason,
    const struct proto_report_task *tasks, uint32_t n);

void proto_write_orders(struct proto_writer *w,
    const struct proto_kill *kills, size_t n);

#endif
