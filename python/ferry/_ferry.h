/*
 * _ferry.h - the C extension ferry._ferry, shared by its files:
 *
 *   _ferry.c    the module: its setup (_configure), the client core
 *               (connect, submit, map, cancel, status, close) and the
 *               completion loop its collecting thread runs
 *   _future.c   FutureBase, the C half of ferry.Future: outcome fields
 *               that concurrent.futures.Future's own methods read and
 *               write, settling from the C future, result/gather/wait
 *   _watch.c    Watch: many futures taken as they finish, for
 *               ferry.as_completed() and ferry.wait()
 *   _pack.c     msgpack in C for the common values: task arguments out
 *               (anything else goes to ferry._codec), results in
 *
 * Why a C extension and not cffi: a map of 200,000 tasks must cost a few
 * microseconds of Python per task, end to end.  Here a future is one
 * object allocated in C (no __init__, no threading.Condition until
 * someone waits on it), arguments are packed into one buffer per batch,
 * and a batch of results is settled in one C loop; through cffi each of
 * those would be a Python-level call per task (docs/client.md has the
 * figures).
 *
 * Threads and locks: everything here runs with the GIL held, except the
 * libferry calls that may wait (connect, map, close, waiting for
 * futures), made with the GIL released.  libferry's client lock is never
 * held while the GIL is wanted: no Python code runs inside libferry.
 */
#ifndef FERRY_PY_FERRY_H
#define FERRY_PY_FERRY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#include "ferry/ferry.h"

/* concurrent.futures' states, as FutureBase keeps them. */
enum fstate {
	FS_PENDING = 0,
	FS_RUNNING,
	FS_CANCELLED,
	FS_CANCELLED_AND_NOTIFIED,
	FS_FINISHED,
	FS_COUNT
};

/* The C half of a ferry.Future (class Future(FutureBase,
 * concurrent.futures.Future) in client.py). */
typedef struct {
	PyObject_HEAD
	ferry_future *fut;  /* owned, freed with the object; NULL: none */
	ferry_client *c;    /* its client (borrowed through fut) */
	uint64_t      id;
	PyObject     *fn;   /* the task's function name (str) */
	PyObject     *owner; /* the ferry.Client, kept alive (or NULL) */
	int           state;    /* enum fstate */
	int           settling; /* concurrent.futures' own methods are
	                         * completing it (Python code runs) */
	PyObject     *result;
	PyObject     *exception;
	/* made on first use: until someone waits, adds a callback or a
	 * waiter, the future completes without them */
	PyObject     *condition;
	PyObject     *waiters;
	PyObject     *callbacks;
	PyObject     *watchers; /* Watch objects (_watch.c), or NULL */
} FutureObject;

extern PyTypeObject FutureBase_Type;
extern PyTypeObject Watch_Type;

/* What the module imported or was given (_configure), all owned. */
struct mod_state {
	PyTypeObject *future_type; /* ferry.Future */
	PyObject     *decode;      /* _codec.decode(bytes) -> value */
	PyObject     *encode;      /* _codec.encode_args(args, fn, client)
	                            * -> bytes */
	PyObject     *make_error;  /* errors._from_code(code, message,
	                            * attempts, task_id, fn) -> exception */
	PyObject     *cancelled_error; /* concurrent.futures.CancelledError */
	PyObject     *timeout_error;   /* concurrent.futures.TimeoutError */
	PyObject     *condition_cls;   /* threading.Condition */
	PyObject     *base_result;     /* concurrent.futures.Future.result */
	PyObject     *base_exception;  /* ... .exception */
	PyObject     *base_set_result;
	PyObject     *base_set_exception;
	PyObject     *base_cancel;
	PyObject     *base_notify_cancel; /* set_running_or_notify_cancel */
	PyObject     *state_names[FS_COUNT]; /* 'PENDING', ... */
};

extern struct mod_state g;

/* ---- _future.c ---- */

/* A new future object of type g.future_type for fut of client c (fut
 * taken over) and function fn, keeping owner alive (may be NULL); or
 * NULL with an exception set (fut is then freed). */
FutureObject *future_new(ferry_future *fut, ferry_client *c, PyObject *fn,
    PyObject *owner);

/* Complete f from its C future if that has finished and f has not
 * (GIL held).  Returns 0, or -1 with an exception set (no memory). */
int future_settle(FutureObject *f);

/* Mark f cancelled here (GIL held), waking its waiters. */
int future_mark_cancelled(FutureObject *f);

/* The FerryError for a code and message (GIL held); new reference, or
 * NULL with an exception set. */
PyObject *error_new(int code, const char *msg, uint32_t attempts,
    uint64_t id, PyObject *fn);

/* Module functions of _future.c. */
PyObject *py_gather(PyObject *self, PyObject *args);
PyObject *py_wait_all(PyObject *self, PyObject *args);
PyObject *py_split_done(PyObject *self, PyObject *seq);

/* ---- _watch.c ---- */

/* fut has finished (GIL held): hand it to each Watch in the list. */
void watch_notify(PyObject *watchers, PyObject *fut);

/* ---- _pack.c ---- */

/* A growing byte buffer (malloc'd). */
struct pbuf {
	char  *data;
	size_t len, cap;
};

/* Append n bytes; 0 or -1 (MemoryError set). */
int pbuf_put(struct pbuf *b, const void *p, size_t n);

/* Pack o into b as msgpack (GIL held, no Python code runs).  c: the
 * client whose futures may appear (as future references).  Returns 0,
 * 1 when o holds something only ferry._codec packs (b is then as it
 * was), or -1 with an exception set. */
int pack_value(struct pbuf *b, PyObject *o, ferry_client *c);

/* Decode a result: scalars here, anything else through g.decode.  New
 * reference, or NULL with an exception set. */
PyObject *unpack_result(const void *data, size_t len);

#endif
