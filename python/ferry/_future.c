/*
 * _future.c - FutureBase, the C half of ferry.Future.
 *
 * ferry.Future is `class Future(FutureBase, concurrent.futures.Future)`:
 * a real concurrent.futures.Future whose fields (_state, _result,
 * _exception, _condition, _waiters, _done_callbacks) are descriptors
 * here, so that concurrent.futures' own code (wait, as_completed,
 * add_done_callback, set_result) works on it unchanged, while the
 * common path never runs it:
 *
 *  - a future is allocated in C, without __init__; its Condition and
 *    lists are made on first use;
 *  - a future nobody has waited on (no Condition yet) completes by
 *    setting its fields, in C, with the GIL held: any thread that looks
 *    later takes the Condition and sees the outcome;
 *  - one somebody waits on completes through concurrent.futures'
 *    set_result/set_exception/cancel, which wake the waiters and call
 *    the callbacks;
 *  - result(), exception() and done() read a finished future without
 *    locking (a finished future never changes), and wait for a pending
 *    one on libferry's future with the GIL released, then complete it
 *    themselves (whichever thread comes first completes it; the
 *    completion thread then finds it done).
 */
#include "_ferry.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

struct mod_state g;

#define WAIT_SLICE_MS 100 /* signals (Ctrl-C) are seen this often */

static int
is_done_state(int s)
{
	return s == FS_FINISHED || s == FS_CANCELLED ||
	    s == FS_CANCELLED_AND_NOTIFIED;
}

static int
is_cancelled_state(int s)
{
	return s == FS_CANCELLED || s == FS_CANCELLED_AND_NOTIFIED;
}

FutureObject *
future_new(ferry_future *fut, ferry_client *c, PyObject *fn, PyObject *owner)
{
	FutureObject *f;

	f = (FutureObject *)g.future_type->tp_alloc(g.future_type, 0);
	if (f == NULL) {
		ferry_future_free(fut);
		return NULL;
	}
	f->fut = fut;
	f->c   = c;
	f->id  = ferry_future_id(fut);
	Py_XINCREF(fn);
	f->fn = fn;
	Py_XINCREF(owner);
	f->owner = owner;
	return f;
}

PyObject *
error_new(int code, const char *msg, uint32_t attempts, uint64_t id,
    PyObject *fn)
{
	PyObject *m, *e;

	/* what a task reported need not be UTF-8 */
	if (msg == NULL)
		msg = "";
	if ((m = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg),
	         "replace")) == NULL)
		return NULL;
	e = PyObject_CallFunction(g.make_error, "iOIKO", code, m,
	    (unsigned int)attempts, (unsigned long long)id,
	    fn != NULL ? fn : Py_None);
	Py_DECREF(m);
	return e;
}

/* Whether anybody may be waiting on f or listening to it. */
static int
observed(const FutureObject *f)
{
	return f->condition != NULL ||
	    (f->waiters != NULL && PyList_GET_SIZE(f->waiters) > 0) ||
	    (f->callbacks != NULL && PyList_GET_SIZE(f->callbacks) > 0);
}

/* Call concurrent.futures.Future's method m on f with arg (may be
 * NULL); a failure is reported as unraisable (it is a bug). */
static void
call_base(FutureObject *f, PyObject *m, PyObject *arg)
{
	PyObject *r = arg != NULL
	    ? PyObject_CallFunctionObjArgs(m, (PyObject *)f, arg, NULL)
	    : PyObject_CallFunctionObjArgs(m, (PyObject *)f, NULL);
	if (r == NULL)
		PyErr_WriteUnraisable((PyObject *)f);
	Py_XDECREF(r);
}

/* Give f its outcome (it is pending and not being settled): value, or
 * exc, or cancelled.  Steals value and exc. */
static void complete_(FutureObject *f, PyObject *value, PyObject *exc,
    int cancelled);

static void
complete(FutureObject *f, PyObject *value, PyObject *exc, int cancelled)
{
	PyObject *w;

	complete_(f, value, exc, cancelled);
	if ((w = f->watchers) != NULL && is_done_state(f->state)) {
		/* a finished future is watched no more */
		f->watchers = NULL;
		watch_notify(w, (PyObject *)f);
		Py_DECREF(w);
	}
}

static void
complete_(FutureObject *f, PyObject *value, PyObject *exc, int cancelled)
{
	if (!observed(f)) {
		/* nobody can be waiting: no Python code runs here, so no
		 * thread can start waiting before the state is set */
		if (cancelled) {
			f->state = FS_CANCELLED_AND_NOTIFIED;
		} else {
			Py_XSETREF(f->result, value);
			Py_XSETREF(f->exception, exc);
			f->state = FS_FINISHED;
			value = exc = NULL;
		}
		Py_XDECREF(value);
		Py_XDECREF(exc);
		return;
	}
	f->settling = 1;
	Py_INCREF(f); /* callbacks may drop the last reference */
	if (cancelled) {
		call_base(f, g.base_cancel, NULL);
		call_base(f, g.base_notify_cancel, NULL);
	} else if (exc != NULL) {
		call_base(f, g.base_set_exception, exc);
	} else {
		call_base(f, g.base_set_result, value != NULL ? value : Py_None);
	}
	f->settling = 0;
	Py_XDECREF(value);
	Py_XDECREF(exc);
	Py_DECREF(f);
}

/* The exception being raised, normalised, with its traceback. */
static PyObject *
fetch_exception(void)
{
	PyObject *t, *v, *tb;
	PyErr_Fetch(&t, &v, &tb);
	PyErr_NormalizeException(&t, &v, &tb);
	if (v != NULL && tb != NULL)
		PyException_SetTraceback(v, tb);
	Py_XDECREF(t);
	Py_XDECREF(tb);
	return v;
}

int
future_settle(FutureObject *f)
{
	PyObject *value = NULL, *exc = NULL;
	int       st, cancelled = 0;

	if (f->state != FS_PENDING || f->settling || f->fut == NULL)
		return 0;
	st = ferry_future_state(f->fut);
	if (st == FERRY_PENDING)
		return 0;
	if (st == FERRY_DONE) {
		const void *data = NULL;
		size_t      len  = 0;
		ferry_future_result(f->fut, &data, &len);
		/* the bytes stay while f holds its C future */
		if ((value = unpack_result(data, len)) == NULL)
			exc = fetch_exception(); /* undecodable: raised */
	} else if (st == FERRY_CANCELLED) {
		cancelled = 1;
	} else {
		exc = error_new(ferry_future_errcode(f->fut),
		    ferry_future_error(f->fut), ferry_future_attempts(f->fut),
		    f->id, f->fn);
		if (exc == NULL) /* (no memory): that is its error */
			exc = fetch_exception();
	}
	/* decoding may have run Python code: did another thread settle
	 * it meanwhile? */
	if (f->state != FS_PENDING || f->settling) {
		Py_XDECREF(value);
		Py_XDECREF(exc);
		return 0;
	}
	complete(f, value, exc, cancelled);
	return 0;
}

int
future_mark_cancelled(FutureObject *f)
{
	if (f->state != FS_PENDING || f->settling)
		return 0;
	complete(f, NULL, NULL, 1);
	return 0;
}

/* ------------------------------------------------------------ waiting */

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A timeout argument (None: -1, else seconds >= 0) as a deadline in
 * seconds of the monotonic clock (-1: none).  -2 on a bad value. */
static double
deadline_of(PyObject *timeout)
{
	double t;
	if (timeout == NULL || timeout == Py_None)
		return -1;
	t = PyFloat_AsDouble(timeout);
	if (t == -1 && PyErr_Occurred())
		return -2;
	if (isnan(t)) {
		PyErr_SetString(PyExc_ValueError, "timeout must be a number");
		return -2;
	}
	if (t < 0)
		t = 0;
	return now_s() + t;
}

/* Seconds left until deadline (-1: none). */
static double
left(double deadline)
{
	double now;
	if (deadline < 0)
		return -1;
	now = now_s();
	return deadline > now ? deadline - now : 0;
}

/*
 * Wait until f is done here or deadline passes, on libferry's future
 * with the GIL released, settling it when that finishes.  Returns 0
 * (done), 1 (deadline passed, or another thread is settling it: wait on
 * its Condition), -1 (a signal handler raised).
 */
static int
wait_settled(FutureObject *f, double deadline)
{
	for (;;) {
		double rest;
		int    ms;
		if (future_settle(f) != 0)
			return -1;
		if (f->state != FS_PENDING)
			return 0;
		if (f->settling || f->fut == NULL)
			return 1;
		if ((rest = left(deadline)) == 0)
			return 1;
		ms = rest < 0 || rest * 1000 > WAIT_SLICE_MS
		    ? WAIT_SLICE_MS
		    : (int)ceil(rest * 1000);
		Py_BEGIN_ALLOW_THREADS
		ferry_future_wait(f->fut, ms);
		Py_END_ALLOW_THREADS
		if (PyErr_CheckSignals() != 0)
			return -1;
	}
}

/* f's outcome: its result (new reference), or NULL with the exception
 * raised (CancelledError for a cancelled one). */
static PyObject *
outcome(FutureObject *f)
{
	if (is_cancelled_state(f->state)) {
		PyErr_SetNone(g.cancelled_error);
		return NULL;
	}
	if (f->exception != NULL) {
		PyErr_SetObject((PyObject *)Py_TYPE(f->exception), f->exception);
		return NULL;
	}
	return Py_NewRef(f->result != NULL ? f->result : Py_None);
}

/* Wait for f until deadline as result() and exception() do.  Returns 0
 * when done here, or -1 with an exception set (TimeoutError when the
 * deadline passed); *base: wait in concurrent.futures instead (another
 * thread is completing it). */
static int
wait_for(FutureObject *f, double deadline, int *base)
{
	int rv;

	*base = 0;
	if ((rv = wait_settled(f, deadline)) < 0)
		return -1;
	if (rv == 0)
		return 0;
	if (f->settling || f->fut == NULL) {
		*base = 1;
		return 0;
	}
	PyErr_SetNone(g.timeout_error);
	return -1;
}

/* concurrent.futures' method m with the time left (rest < 0: none). */
static PyObject *
call_base_wait(FutureObject *f, PyObject *m, double rest)
{
	if (rest < 0)
		return PyObject_CallFunctionObjArgs(m, (PyObject *)f, NULL);
	return PyObject_CallFunction(m, "Od", (PyObject *)f, rest);
}

static PyObject *
fut_result(FutureObject *f, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "timeout", NULL };
	PyObject    *timeout  = Py_None;
	int          base;
	double       deadline;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:result", kwlist,
	        &timeout))
		return NULL;
	if (is_done_state(f->state))
		return outcome(f);
	if ((deadline = deadline_of(timeout)) == -2 ||
	    wait_for(f, deadline, &base) != 0)
		return NULL;
	if (base)
		return call_base_wait(f, g.base_result, left(deadline));
	return outcome(f);
}

static PyObject *
fut_exception(FutureObject *f, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "timeout", NULL };
	PyObject    *timeout  = Py_None;
	int          base;
	double       deadline;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:exception", kwlist,
	        &timeout))
		return NULL;
	if (!is_done_state(f->state)) {
		if ((deadline = deadline_of(timeout)) == -2 ||
		    wait_for(f, deadline, &base) != 0)
			return NULL;
		if (base)
			return call_base_wait(f, g.base_exception,
			    left(deadline));
	}
	if (is_cancelled_state(f->state)) {
		PyErr_SetNone(g.cancelled_error);
		return NULL;
	}
	return Py_NewRef(f->exception != NULL ? f->exception : Py_None);
}

static PyObject *
fut_done(FutureObject *f, PyObject *unused)
{
	if (future_settle(f) != 0)
		return NULL;
	return PyBool_FromLong(is_done_state(f->state));
}

static PyObject *
fut_cancelled(FutureObject *f, PyObject *unused)
{
	return PyBool_FromLong(is_cancelled_state(f->state));
}

static PyObject *
fut_running(FutureObject *f, PyObject *unused)
{
	return PyBool_FromLong(f->state == FS_RUNNING);
}

/*
 * Cancel the task, in the scheduler too.  True unless the outcome is
 * here already (or arrives as the cancel is asked for): then False, as
 * for a finished concurrent.futures.Future.  A True cancel is final
 * here (result() raises CancelledError), whatever the scheduler did
 * with the task: it may have been running (its worker process is then
 * killed) or finishing.
 */
static PyObject *
fut_cancel(FutureObject *f, PyObject *unused)
{
	if (is_cancelled_state(f->state))
		Py_RETURN_TRUE;
	if (f->state != FS_PENDING || f->settling)
		Py_RETURN_FALSE;
	if (f->fut != NULL && ferry_cancel(f->fut) == FERRY_ESTATE) {
		/* finished in libferry: that outcome stands */
		if (future_settle(f) != 0)
			return NULL;
		return PyBool_FromLong(is_cancelled_state(f->state));
	}
	if (future_mark_cancelled(f) != 0)
		return NULL;
	return PyBool_FromLong(is_cancelled_state(f->state));
}

/* (71, payload): the future reference that stands for this task's
 * result in the arguments of a later task (ferry_future_ref). */
static PyObject *
fut_ferry_ext(FutureObject *f, PyObject *unused)
{
	uint8_t        ref[FERRY_FUTURE_REF_MAX];
	size_t         n, h;
	const uint8_t *p = ref;

	if (f->fut == NULL) {
		PyErr_SetString(PyExc_ValueError, "this future has no task");
		return NULL;
	}
	if (ferry_future_ref(ref, sizeof(ref), &n, f->fut) != 0)
		return PyErr_NoMemory();
	/* the payload of the ext value libferry wrote */
	if (p[0] >= 0xd4 && p[0] <= 0xd8)
		h = 2;
	else if (p[0] == 0xc7)
		h = 3;
	else if (p[0] == 0xc8)
		h = 4;
	else
		h = 6;
	if (h > n) {
		PyErr_SetString(PyExc_SystemError, "malformed future reference");
		return NULL;
	}
	return Py_BuildValue("(iy#)", (int)(int8_t)p[h - 1],
	    (const char *)p + h, (Py_ssize_t)(n - h));
}

/* ------------------------------------------------------------ fields */

static PyObject *
get_state(FutureObject *f, void *unused)
{
	return Py_NewRef(g.state_names[f->state]);
}

static int
set_state(FutureObject *f, PyObject *v, void *unused)
{
	for (int i = 0; v != NULL && i < FS_COUNT; i++) {
		int eq = v == g.state_names[i]
		    ? 1
		    : PyObject_RichCompareBool(v, g.state_names[i], Py_EQ);
		if (eq < 0)
			return -1;
		if (eq) {
			f->state = i;
			return 0;
		}
	}
	PyErr_SetString(PyExc_ValueError, "not a future state");
	return -1;
}

/* The object fields concurrent.futures' code reads and writes: the
 * getset closure is the field's offset in FutureObject. */
#define FIELD(f, off) ((PyObject **)((char *)(f) + (size_t)(uintptr_t)(off)))
#define OFF(field) ((void *)(uintptr_t)offsetof(FutureObject, field))

/* the field, or None while it is unset */
static PyObject *
get_field(FutureObject *f, void *off)
{
	PyObject *v = *FIELD(f, off);
	return Py_NewRef(v != NULL ? v : Py_None);
}

static int
set_field(FutureObject *f, PyObject *v, void *off)
{
	Py_XINCREF(v);
	Py_XSETREF(*FIELD(f, off), v);
	return 0;
}

static int
set_exception_field(FutureObject *f, PyObject *v, void *off)
{
	return set_field(f, v == Py_None ? NULL : v, off);
}

static PyObject *
get_condition(FutureObject *f, void *unused)
{
	if (f->condition == NULL) {
		/* Condition() runs Python code: another thread may make
		 * one meanwhile, and the first one made stays */
		PyObject *cond = PyObject_CallNoArgs(g.condition_cls);
		if (cond == NULL)
			return NULL;
		if (f->condition == NULL)
			f->condition = cond;
		else
			Py_DECREF(cond);
	}
	return Py_NewRef(f->condition);
}

/* a list field (waiters, callbacks), made empty when first read */
static PyObject *
get_list(FutureObject *f, void *off)
{
	PyObject **slot = FIELD(f, off);
	if (*slot == NULL && (*slot = PyList_New(0)) == NULL)
		return NULL;
	return Py_NewRef(*slot);
}

static PyObject *
get_id(FutureObject *f, void *unused)
{
	return PyLong_FromUnsignedLongLong(f->id);
}

static PyObject *
get_attempts(FutureObject *f, void *unused)
{
	return PyLong_FromUnsignedLong(
	    f->fut != NULL ? ferry_future_attempts(f->fut) : 0);
}

static PyObject *
get_owner(FutureObject *f, void *unused)
{
	return Py_NewRef(f->owner != NULL ? f->owner : Py_None);
}

static PyObject *
get_fn(FutureObject *f, void *unused)
{
	return Py_NewRef(f->fn != NULL ? f->fn : Py_None);
}

static PyGetSetDef fut_getset[] = {
	{ "_state", (getter)get_state, (setter)set_state, NULL, NULL },
	{ "_result", (getter)get_field, (setter)set_field, NULL,
	    OFF(result) },
	{ "_exception", (getter)get_field, (setter)set_exception_field, NULL,
	    OFF(exception) },
	{ "_condition", (getter)get_condition, (setter)set_field, NULL,
	    OFF(condition) },
	{ "_waiters", (getter)get_list, (setter)set_field, NULL,
	    OFF(waiters) },
	{ "_done_callbacks", (getter)get_list, (setter)set_field, NULL,
	    OFF(callbacks) },
	{ "id", (getter)get_id, NULL,
	    "The task's id in its client's session.", NULL },
	{ "attempts", (getter)get_attempts, NULL,
	    "Runs of the task the scheduler started (more than 1 after "
	    "retries; 0 if it never ran, or not known yet).",
	    NULL },
	{ "function", (getter)get_fn, NULL, "The task's function name.",
	    NULL },
	{ "client", (getter)get_owner, NULL,
	    "The ferry.Client that submitted it (kept open while the future "
	    "lives).",
	    NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyMethodDef fut_methods[] = {
	{ "result", (PyCFunction)(void (*)(void))fut_result,
	    METH_VARARGS | METH_KEYWORDS,
	    "result(timeout=None): the task's result; raises its error, "
	    "CancelledError, or TimeoutError when timeout seconds pass." },
	{ "exception", (PyCFunction)(void (*)(void))fut_exception,
	    METH_VARARGS | METH_KEYWORDS,
	    "exception(timeout=None): the task's error, or None." },
	{ "done", (PyCFunction)fut_done, METH_NOARGS,
	    "Whether the task has finished (or was cancelled)." },
	{ "cancelled", (PyCFunction)fut_cancelled, METH_NOARGS,
	    "Whether it was cancelled." },
	{ "running", (PyCFunction)fut_running, METH_NOARGS,
	    "Always False: the client does not know when a task starts." },
	{ "cancel", (PyCFunction)fut_cancel, METH_NOARGS,
	    "Cancel the task here and in the scheduler (a running one's "
	    "worker process is killed).  False if it has finished." },
	{ "__ferry_ext__", (PyCFunction)fut_ferry_ext, METH_NOARGS,
	    "(71, payload): the future reference a later task's arguments "
	    "carry in its place." },
	{ NULL, NULL, 0, NULL },
};

static int
fut_traverse(FutureObject *f, visitproc visit, void *arg)
{
	Py_VISIT(f->fn);
	Py_VISIT(f->owner);
	Py_VISIT(f->result);
	Py_VISIT(f->exception);
	Py_VISIT(f->condition);
	Py_VISIT(f->waiters);
	Py_VISIT(f->callbacks);
	Py_VISIT(f->watchers);
	return 0;
}

static int
fut_clear(FutureObject *f)
{
	Py_CLEAR(f->fn);
	Py_CLEAR(f->owner);
	Py_CLEAR(f->result);
	Py_CLEAR(f->exception);
	Py_CLEAR(f->condition);
	Py_CLEAR(f->waiters);
	Py_CLEAR(f->callbacks);
	Py_CLEAR(f->watchers);
	return 0;
}

static void
fut_dealloc(FutureObject *f)
{
	PyObject_GC_UnTrack(f);
	fut_clear(f);
	ferry_future_free(f->fut);
	f->fut = NULL;
	Py_TYPE(f)->tp_free((PyObject *)f);
}

static PyObject *
fut_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
	PyErr_SetString(PyExc_TypeError,
	    "ferry futures are made by Client.submit() and Client.map()");
	return NULL;
}

PyTypeObject FutureBase_Type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name      = "ferry._ferry.FutureBase",
	.tp_basicsize = sizeof(FutureObject),
	.tp_flags     = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE |
	    Py_TPFLAGS_HAVE_GC,
	.tp_doc       = "The C half of ferry.Future.",
	.tp_new       = fut_new,
	.tp_dealloc   = (destructor)fut_dealloc,
	.tp_traverse  = (traverseproc)fut_traverse,
	.tp_clear     = (inquiry)fut_clear,
	.tp_methods   = fut_methods,
	.tp_getset    = fut_getset,
};

/* -------------------------------------------------- module functions */

/* gather(futures, skip, timeout): their results in order; a failed or
 * cancelled one raises (skip false) or is left out (skip true). */
PyObject *
py_gather(PyObject *self, PyObject *args)
{
	PyObject *seq, *timeout, *fast, *out = NULL;
	int       skip;
	double    deadline;

	if (!PyArg_ParseTuple(args, "OpO:gather", &seq, &skip, &timeout))
		return NULL;
	if ((deadline = deadline_of(timeout)) == -2)
		return NULL;
	if ((fast = PySequence_Fast(seq, "futures must be a sequence")) ==
	    NULL)
		return NULL;
	if ((out = PyList_New(0)) == NULL)
		goto fail;
	for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); i++) {
		PyObject *o = PySequence_Fast_GET_ITEM(fast, i), *v;
		int       base = 0;
		if (PyObject_TypeCheck(o, &FutureBase_Type)) {
			FutureObject *f = (FutureObject *)o;
			if (!is_done_state(f->state) &&
			    wait_for(f, deadline, &base) != 0)
				goto fail;
			if (!base && skip &&
			    (is_cancelled_state(f->state) ||
			        f->exception != NULL))
				continue;
			v = base ? call_base_wait(f, g.base_result,
			               left(deadline))
			         : outcome(f);
		} else {
			double r = left(deadline);
			v        = r < 0
			           ? PyObject_CallMethod(o, "result", NULL)
			           : PyObject_CallMethod(o, "result", "d", r);
		}
		if (v == NULL) {
			/* errors="skip" leaves out failed tasks, not a
			 * timeout or an interrupt */
			if (skip && !PyErr_ExceptionMatches(g.timeout_error) &&
			    PyErr_ExceptionMatches(PyExc_Exception)) {
				PyErr_Clear();
				continue;
			}
			goto fail;
		}
		if (PyList_Append(out, v) != 0) {
			Py_DECREF(v);
			goto fail;
		}
		Py_DECREF(v);
	}
	Py_DECREF(fast);
	return out;
fail:
	Py_XDECREF(out);
	Py_DECREF(fast);
	return NULL;
}

/* wait_all(futures, timeout): wait until every one (all ferry futures)
 * is done; whether they all are. */
PyObject *
py_wait_all(PyObject *self, PyObject *args)
{
	PyObject *seq, *timeout, *fast;
	double    deadline;
	int       all = 1;

	if (!PyArg_ParseTuple(args, "OO:wait_all", &seq, &timeout))
		return NULL;
	if ((deadline = deadline_of(timeout)) == -2)
		return NULL;
	if ((fast = PySequence_Fast(seq, "futures must be a sequence")) ==
	    NULL)
		return NULL;
	for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); i++) {
		PyObject     *o = PySequence_Fast_GET_ITEM(fast, i);
		FutureObject *f = (FutureObject *)o;
		int           rv;
		if (!PyObject_TypeCheck(o, &FutureBase_Type)) {
			PyErr_SetString(PyExc_TypeError, "not a ferry future");
			Py_DECREF(fast);
			return NULL;
		}
		if (is_done_state(f->state))
			continue;
		if ((rv = wait_settled(f, deadline)) < 0) {
			Py_DECREF(fast);
			return NULL;
		}
		if (rv == 1 && !f->settling) {
			all = 0; /* the deadline passed */
			break;
		}
	}
	Py_DECREF(fast);
	return PyBool_FromLong(all);
}

/* split_done(futures): (the ones not done, how many of the done ones
 * failed or were cancelled); any futures. */
PyObject *
py_split_done(PyObject *self, PyObject *seq)
{
	PyObject  *fast, *rest;
	Py_ssize_t failed = 0;

	if ((fast = PySequence_Fast(seq, "futures must be a sequence")) ==
	    NULL)
		return NULL;
	if ((rest = PyList_New(0)) == NULL)
		goto fail;
	for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); i++) {
		PyObject *o = PySequence_Fast_GET_ITEM(fast, i);
		int       done, bad;
		if (PyObject_TypeCheck(o, &FutureBase_Type)) {
			FutureObject *f = (FutureObject *)o;
			if (future_settle(f) != 0)
				goto fail;
			done = is_done_state(f->state);
			bad  = is_cancelled_state(f->state) ||
			    f->exception != NULL;
		} else {
			PyObject *d = PyObject_CallMethod(o, "done", NULL);
			done        = d != NULL ? PyObject_IsTrue(d) : -1;
			Py_XDECREF(d);
			if (done < 0)
				goto fail;
			bad = 0;
			if (done) {
				PyObject *c = PyObject_CallMethod(o, "cancelled",
				    NULL);
				PyObject *e = NULL;
				bad         = c != NULL ? PyObject_IsTrue(c) : -1;
				Py_XDECREF(c);
				if (bad == 0) {
					e = PyObject_CallMethod(o, "exception",
					    NULL);
					bad = e == NULL ? -1 : e != Py_None;
				}
				Py_XDECREF(e);
				if (bad < 0)
					goto fail;
			}
		}
		if (!done && PyList_Append(rest, o) != 0)
			goto fail;
		failed += done && bad;
	}
	Py_DECREF(fast);
	return Py_BuildValue("(Nn)", rest, failed);
fail:
	Py_XDECREF(rest);
	Py_DECREF(fast);
	return NULL;
}
