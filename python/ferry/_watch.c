/*
 * _watch.c - Watch: many ferry futures watched as they finish, for
 * ferry.as_completed() and ferry.wait() on big sets.
 *
 * concurrent.futures.as_completed() locks every future's Condition and
 * installs a waiter object whose methods each completion calls: a few
 * microseconds of Python per future.  A Watch registers itself on each
 * pending future (FutureObject.watchers); the code that completes a
 * future (future_settle, cancel) appends it to the ready list of each of
 * its watches with the GIL held, and bumps a counter the reader waits
 * on, with the GIL released, under a mutex of the watch's own.  The
 * reader takes the ready ones a batch at a time.
 *
 * No wakeup is lost: the reader reads the counter and looks at the ready
 * list while holding the GIL, which every completion holds too, then
 * waits for the counter to move.
 */
#include "_ferry.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <time.h>

#define WATCH_SLICE_MS 100 /* signals are seen this often */

typedef struct {
	PyObject_HEAD
	pthread_mutex_t mu;
	pthread_cond_t  cv;
	uint64_t        seq;     /* bumped under mu at each completion */
	PyObject       *ready;   /* finished, not yet taken (list) */
	PyObject       *pending; /* registered on (list; unregistered at
	                          * close) */
	Py_ssize_t      remaining; /* not yet taken */
	int             closed;
} WatchObject;

static int
done_state(int s)
{
	return s == FS_FINISHED || s == FS_CANCELLED ||
	    s == FS_CANCELLED_AND_NOTIFIED;
}

void
watch_notify(PyObject *watchers, PyObject *fut)
{
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(watchers); i++) {
		WatchObject *w = (WatchObject *)PyList_GET_ITEM(watchers, i);
		if (w->closed || w->ready == NULL)
			continue;
		if (PyList_Append(w->ready, fut) != 0) {
			PyErr_WriteUnraisable(fut);
			continue;
		}
		pthread_mutex_lock(&w->mu);
		w->seq++;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
	}
}

/* Take w off the watchers of f. */
static void
unregister(WatchObject *w, FutureObject *f)
{
	PyObject *l = f->watchers;
	if (l == NULL)
		return;
	for (Py_ssize_t i = PyList_GET_SIZE(l); i-- > 0;) {
		if (PyList_GET_ITEM(l, i) == (PyObject *)w) {
			PySequence_DelItem(l, i);
			break;
		}
	}
}

static void
watch_close_(WatchObject *w)
{
	PyObject *p = w->pending;
	if (w->closed)
		return;
	w->closed = 1;
	if (p == NULL)
		return;
	w->pending = NULL;
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(p); i++)
		unregister(w, (FutureObject *)PyList_GET_ITEM(p, i));
	Py_DECREF(p);
}

static int
watch_init(WatchObject *w, PyObject *args, PyObject *kw)
{
	PyObject *seq, *fast;

	if (!PyArg_ParseTuple(args, "O:Watch", &seq))
		return -1;
	if (w->ready != NULL) {
		PyErr_SetString(PyExc_RuntimeError, "already initialised");
		return -1;
	}
	if ((fast = PySequence_Fast(seq, "futures must be a sequence")) ==
	    NULL)
		return -1;
	if ((w->ready = PyList_New(0)) == NULL ||
	    (w->pending = PyList_New(0)) == NULL)
		goto fail;
	for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); i++) {
		FutureObject *f = (FutureObject *)PySequence_Fast_GET_ITEM(fast, i);
		if (!PyObject_TypeCheck(f, &FutureBase_Type)) {
			PyErr_SetString(PyExc_TypeError, "not a ferry future");
			goto fail;
		}
		if (future_settle(f) != 0)
			goto fail;
		if (done_state(f->state)) {
			if (PyList_Append(w->ready, (PyObject *)f) != 0)
				goto fail;
		} else {
			if (f->watchers == NULL &&
			    (f->watchers = PyList_New(0)) == NULL)
				goto fail;
			if (PyList_Append(f->watchers, (PyObject *)w) != 0)
				goto fail;
			if (PyList_Append(w->pending, (PyObject *)f) != 0) {
				unregister(w, f);
				goto fail;
			}
		}
		w->remaining++;
	}
	Py_DECREF(fast);
	return 0;
fail:
	watch_close_(w);
	Py_DECREF(fast);
	return -1;
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait with the GIL released until w->seq moves from s, or ms pass. */
static void
wait_seq(WatchObject *w, uint64_t s, int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	Py_BEGIN_ALLOW_THREADS
	pthread_mutex_lock(&w->mu);
	while (w->seq == s)
		if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&w->mu);
	Py_END_ALLOW_THREADS
}

/* next(timeout=None): the futures that finished since the last call (at
 * least one; [] when all have been taken).  TimeoutError when none
 * finished within timeout seconds. */
static PyObject *
watch_next(WatchObject *w, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "timeout", NULL };
	PyObject    *timeout  = Py_None;
	double       deadline = -1;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:next", kwlist, &timeout))
		return NULL;
	if (w->ready == NULL) {
		PyErr_SetString(PyExc_RuntimeError, "not initialised");
		return NULL;
	}
	if (timeout != Py_None) {
		double t = PyFloat_AsDouble(timeout);
		if (t == -1 && PyErr_Occurred())
			return NULL;
		deadline = now_s() + (isnan(t) || t < 0 ? 0 : t);
	}
	for (;;) {
		uint64_t s;
		int      ms = WATCH_SLICE_MS;
		if (PyList_GET_SIZE(w->ready) > 0) {
			PyObject *got = w->ready;
			if ((w->ready = PyList_New(0)) == NULL) {
				w->ready = got;
				return NULL;
			}
			w->remaining -= PyList_GET_SIZE(got);
			return got;
		}
		if (w->remaining <= 0 || w->closed)
			return PyList_New(0);
		if (deadline >= 0) {
			double rest = deadline - now_s();
			if (rest <= 0) {
				PyErr_SetNone(g.timeout_error);
				return NULL;
			}
			if (rest * 1000 < ms)
				ms = (int)ceil(rest * 1000);
		}
		pthread_mutex_lock(&w->mu);
		s = w->seq;
		pthread_mutex_unlock(&w->mu);
		wait_seq(w, s, ms);
		if (PyErr_CheckSignals() != 0)
			return NULL;
	}
}

static PyObject *
watch_close(WatchObject *w, PyObject *unused)
{
	watch_close_(w);
	Py_RETURN_NONE;
}

static PyObject *
watch_remaining(WatchObject *w, void *unused)
{
	return PyLong_FromSsize_t(w->remaining);
}

static int
watch_traverse(WatchObject *w, visitproc visit, void *arg)
{
	Py_VISIT(w->ready);
	Py_VISIT(w->pending);
	return 0;
}

static int
watch_clear(WatchObject *w)
{
	Py_CLEAR(w->ready);
	Py_CLEAR(w->pending);
	return 0;
}

static void
watch_dealloc(WatchObject *w)
{
	PyObject_GC_UnTrack(w);
	watch_close_(w);
	watch_clear(w);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	Py_TYPE(w)->tp_free((PyObject *)w);
}

static PyObject *
watch_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
	WatchObject *w = (WatchObject *)type->tp_alloc(type, 0);
	if (w == NULL)
		return NULL;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	return (PyObject *)w;
}

static PyMethodDef watch_methods[] = {
	{ "next", (PyCFunction)(void (*)(void))watch_next,
	    METH_VARARGS | METH_KEYWORDS,
	    "next(timeout=None) -> the futures finished since the last call "
	    "([] when all were taken)" },
	{ "close", (PyCFunction)watch_close, METH_NOARGS,
	    "Stop watching (idempotent)." },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef watch_getset[] = {
	{ "remaining", (getter)watch_remaining, NULL,
	    "Futures not yet taken by next().", NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

PyTypeObject Watch_Type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name      = "ferry._ferry.Watch",
	.tp_basicsize = sizeof(WatchObject),
	.tp_flags     = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc       = "Watch(futures): ferry futures taken as they finish.",
	.tp_new       = watch_new,
	.tp_init      = (initproc)watch_init,
	.tp_dealloc   = (destructor)watch_dealloc,
	.tp_traverse  = (traverseproc)watch_traverse,
	.tp_clear     = (inquiry)watch_clear,
	.tp_methods   = watch_methods,
	.tp_getset    = watch_getset,
};
