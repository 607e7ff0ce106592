/*
 * _ferry.c - the module ferry._ferry: its setup, and Client, the core of
 * ferry.Client over one libferry client.
 *
 * A Client core submits (one task, or a map in batches of one
 * ferry_map_opts call each) and adds every future to one open
 * as-completed iterator (ferry_iter_new), together with a reference to
 * its Python future.  The completion thread that ferry.Client starts
 * runs Client.run_completions(): it waits on that iterator with the GIL
 * released and settles each batch of finished futures in one C loop.
 * close() closes the libferry client: pending futures fail with
 * FERRY_ECLOSED, the thread settles them, finds the iterator closed and
 * returns.
 */
#include "_ferry.h"

#include <string.h>

#define BATCH_MAX  4096 /* futures settled per wake of the thread */
#define ADDR_MAX   1024

typedef struct {
	PyObject_HEAD
	ferry_client *c;
	ferry_iter   *it;
	int           closed;
	size_t        max_unsent;
} ClientObject;

static PyTypeObject Client_Type;

/* ------------------------------------------------------------ errors */

static const struct {
	int         code;
	const char *name;
} err_names[] = {
	{ FERRY_EINVAL, "EINVAL" },
	{ FERRY_ENOMEM, "ENOMEM" },
	{ FERRY_ETIMEDOUT, "ETIMEDOUT" },
	{ FERRY_ECONNECT, "ECONNECT" },
	{ FERRY_ECLOSED, "ECLOSED" },
	{ FERRY_EPROTO, "EPROTO" },
	{ FERRY_EVERSION, "EVERSION" },
	{ FERRY_ETOOBIG, "ETOOBIG" },
	{ FERRY_EFULL, "EFULL" },
	{ FERRY_ENOFUNC, "ENOFUNC" },
	{ FERRY_ETASK, "ETASK" },
	{ FERRY_ECANCELED, "ECANCELED" },
	{ FERRY_EPENDING, "EPENDING" },
	{ FERRY_ENOTFOUND, "ENOTFOUND" },
	{ FERRY_ESTATE, "ESTATE" },
	{ FERRY_EWORKER, "EWORKER" },
	{ FERRY_ETRANSPORT, "ETRANSPORT" },
	{ FERRY_ESYSTEM, "ESYSTEM" },
	{ FERRY_EDEAD, "EDEAD" },
	{ FERRY_ECRASHED, "ECRASHED" },
	{ FERRY_EOBJECT, "EOBJECT" },
	{ FERRY_EMEMORY, "EMEMORY" },
	{ FERRY_EAUTH, "EAUTH" },
	{ FERRY_EJOURNAL, "EJOURNAL" },
	{ FERRY_EDEPENDENCY, "EDEPENDENCY" },
};

/* Raise the FerryError for a failed libferry call. */
static void
raise_error(int code, const char *msg)
{
	PyObject *e = error_new(code, msg != NULL ? msg : ferry_strerror(code),
	    0, 0, NULL);
	if (e != NULL) {
		PyErr_SetObject((PyObject *)Py_TYPE(e), e);
		Py_DECREF(e);
	}
}

/* ---------------------------------------------------------- task opts */

/* opts: None, or a tuple (retries, timeout_ms, retry_errors, run_anyway,
 * backoff_ms, backoff_max_ms) of ints, -1 for the scheduler's default. */
static int
task_opts(PyObject *opts, struct ferry_task_opts *o, int *have)
{
	int v[6];
	ferry_task_opts_init(o);
	*have = 0;
	if (opts == NULL || opts == Py_None)
		return 0;
	if (!PyArg_ParseTuple(opts, "iiiiii:task options", &v[0], &v[1],
	        &v[2], &v[3], &v[4], &v[5]))
		return -1;
	o->retries        = v[0];
	o->timeout_ms     = v[1];
	o->retry_errors   = v[2];
	o->run_anyway     = v[3];
	o->backoff_ms     = v[4];
	o->backoff_max_ms = v[5];
	*have             = 1;
	return 0;
}

/* ------------------------------------------------------------ client */

static int
client_init(ClientObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "address", "timeout_ms", "token_file",
		"tls_ca_file", "tls_cert_key_file", "tls_server_name",
		"reconnect_ms", "no_scheduler_ms", "max_unsent", "max_batch",
		"session", NULL };
	struct ferry_client_opts o;
	const char              *addr = NULL;
	char                     defaddr[ADDR_MAX], errbuf[1024];
	int                      timeout_ms = 10000, reconnect_ms = 0;
	int                      no_sched_ms = 0, rv;
	Py_ssize_t               max_unsent = 0, max_batch = 0;
	unsigned long long       session = 0;
	ferry_client            *c       = NULL;

	if (self->c != NULL) {
		PyErr_SetString(PyExc_RuntimeError, "already connected");
		return -1;
	}
	memset(&o, 0, sizeof(o));
	o.size = sizeof(o);
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|zizzzziinnK:Client",
	        kwlist, &addr, &timeout_ms, &o.token_file, &o.tls_ca_file,
	        &o.tls_cert_key_file, &o.tls_server_name, &reconnect_ms,
	        &no_sched_ms, &max_unsent, &max_batch, &session))
		return -1;
	if (addr == NULL) {
		if ((rv = ferry_default_address(defaddr, sizeof(defaddr))) != 0) {
			raise_error(rv, "cannot tell the default cluster's "
			                "address ($FERRY_RUNTIME_DIR must be an "
			                "absolute path)");
			return -1;
		}
		addr = defaddr;
	}
	o.connect_timeout_ms = timeout_ms;
	o.reconnect_ms       = reconnect_ms;
	o.no_scheduler_ms    = no_sched_ms;
	o.max_unsent         = (size_t)(max_unsent > 0 ? max_unsent : 0);
	o.max_batch          = (size_t)(max_batch > 0 ? max_batch : 0);
	o.session            = session;
	o.errbuf             = errbuf;
	o.errbuf_len         = sizeof(errbuf);
	errbuf[0]            = '\0';
	Py_BEGIN_ALLOW_THREADS
	rv = ferry_client_connect_opts(&c, addr, &o);
	Py_END_ALLOW_THREADS
	if (rv != 0) {
		raise_error(rv, errbuf[0] != '\0' ? errbuf : NULL);
		return -1;
	}
	if ((rv = ferry_iter_new(c, &self->it)) != 0) {
		ferry_client_close(c);
		raise_error(rv, NULL);
		return -1;
	}
	self->c          = c;
	self->max_unsent = o.max_unsent > 0 ? o.max_unsent
	                 : o.max_batch > 0  ? 16 * o.max_batch
	                                    : 65536;
	return 0;
}

static int
check_open(ClientObject *self)
{
	if (self->c == NULL || self->closed) {
		raise_error(FERRY_ECLOSED, "the client is closed");
		return -1;
	}
	return 0;
}

/* Settle and drop what the iterator yields now (GIL held). */
static void
drain(ClientObject *self)
{
	ferry_future *futs[64];
	void         *data[64];
	size_t        n;

	if (self->it == NULL)
		return;
	while (ferry_iter_next_many(self->it, 0, futs, data, 64, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			if (future_settle(data[i]) != 0)
				PyErr_WriteUnraisable(data[i]);
			Py_DECREF(data[i]);
		}
	}
}

static void
client_close_c(ClientObject *self)
{
	ferry_client *c = self->c;
	if (c == NULL || self->closed)
		return;
	self->closed = 1;
	Py_BEGIN_ALLOW_THREADS
	ferry_client_close(c);
	Py_END_ALLOW_THREADS
}

static PyObject *
client_close(ClientObject *self, PyObject *unused)
{
	client_close_c(self);
	Py_RETURN_NONE;
}

static void
client_dealloc(ClientObject *self)
{
	client_close_c(self);
	drain(self); /* the iterator's references to futures */
	ferry_iter_free(self->it);
	self->it = NULL;
	self->c  = NULL;
	Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Make the futures of futs[0..n) and add them to the iterator, appending
 * them to out (a list) or returning the one (out NULL).  On an error
 * the C futures not yet taken are freed (their tasks cancelled). */
static PyObject *
adopt(ClientObject *self, ferry_future **futs, size_t n, PyObject *fn,
    PyObject *owner, PyObject *out, void **data)
{
	size_t i;
	int    rv;

	for (i = 0; i < n; i++) {
		FutureObject *f = future_new(futs[i], self->c, fn, owner);
		if (f == NULL)
			goto fail;
		data[i] = f;
	}
	if ((rv = ferry_iter_add(self->it, futs, data, n)) != 0) {
		raise_error(rv, NULL);
		i = n;
		goto fail_made;
	}
	if (out == NULL) {
		Py_INCREF(data[0]); /* the iterator's, until it yields it */
		return data[0];
	}
	for (i = 0; i < n; i++) {
		/* the reference made moves to the iterator, the list takes
		 * its own */
		if (PyList_Append(out, data[i]) != 0) {
			/* those not in out are not withdrawn with it */
			for (size_t j = i; j < n; j++)
				ferry_cancel(futs[j]);
			return NULL;
		}
	}
	return out;
fail:
	/* futs[i] was freed by future_new; cancel and free the rest */
	ferry_cancel_many(futs + i + 1, n - i - 1);
	for (size_t j = i + 1; j < n; j++)
		ferry_future_free(futs[j]);
fail_made:
	/* the objects made cancel and free theirs */
	for (size_t j = 0; j < i; j++) {
		ferry_cancel(((FutureObject *)data[j])->fut);
		Py_DECREF(data[j]);
	}
	return NULL;
}

/* The packed arguments of one task: C's packer, else _codec's. */
static int
pack_args(ClientObject *self, struct pbuf *b, PyObject *args, PyObject *fn)
{
	PyObject *bytes;
	int       rv;

	if (!PyTuple_Check(args)) {
		PyErr_SetString(PyExc_TypeError,
		    "a task's arguments must be a tuple");
		return -1;
	}
	if ((rv = pack_value(b, args, self->c)) <= 0)
		return rv;
	if ((bytes = PyObject_CallFunctionObjArgs(g.encode, args, fn,
	         (PyObject *)self, NULL)) == NULL)
		return -1;
	if (!PyBytes_Check(bytes)) {
		Py_DECREF(bytes);
		PyErr_SetString(PyExc_TypeError, "encode_args must return bytes");
		return -1;
	}
	rv = pbuf_put(b, PyBytes_AS_STRING(bytes),
	    (size_t)PyBytes_GET_SIZE(bytes));
	Py_DECREF(bytes);
	return rv;
}

/* Whether a submit of n tasks could wait for room (then the GIL goes). */
static int
may_block(ClientObject *self, size_t n)
{
	struct ferry_client_stats st;
	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	if (ferry_client_stats(self->c, &st) != 0)
		return 1;
	return st.unsent + n + 1 > self->max_unsent;
}

static const char *
submit_why(int rv)
{
	switch (rv) {
	case FERRY_EINVAL:
		return "invalid task: its function name must be 1 to 255 "
		       "bytes, and a future among its arguments must be of "
		       "this client and submitted before it";
	case FERRY_ETOOBIG:
		return "the task's arguments exceed the largest message the "
		       "scheduler takes (pass big data as ferry.object(path))";
	default:
		return NULL;
	}
}

/* submit(fn, args, opts, owner=None): one task; its future, which
 * keeps owner (the ferry.Client) alive. */
static PyObject *
client_submit(ClientObject *self, PyObject *args)
{
	PyObject              *fn, *targs, *opts, *r, *owner = NULL;
	struct ferry_task_opts to;
	struct pbuf            b = { NULL, 0, 0 };
	ferry_future          *fut;
	const char            *name;
	void                  *data[1];
	int                    rv, have;

	if (!PyArg_ParseTuple(args, "UOO|O:submit", &fn, &targs, &opts, &owner))
		return NULL;
	if (check_open(self) != 0 || task_opts(opts, &to, &have) != 0 ||
	    (name = PyUnicode_AsUTF8(fn)) == NULL)
		return NULL;
	if (pack_args(self, &b, targs, fn) != 0) {
		PyMem_RawFree(b.data);
		return NULL;
	}
	if (!may_block(self, 1)) {
		rv = ferry_submit_opts(self->c, name, b.data, b.len,
		    have ? &to : NULL, &fut);
	} else {
		Py_BEGIN_ALLOW_THREADS
		rv = ferry_submit_opts(self->c, name, b.data, b.len,
		    have ? &to : NULL, &fut);
		Py_END_ALLOW_THREADS
	}
	PyMem_RawFree(b.data);
	if (rv != 0) {
		raise_error(rv, submit_why(rv));
		return NULL;
	}
	r = adopt(self, &fut, 1, fn, owner, NULL, data);
	return r;
}

/* One batch of a map: submit n tasks whose arguments are packed in b at
 * offs[0..n] (n + 1 offsets), then adopt their futures into out. */
static int
map_batch(ClientObject *self, const char *name, PyObject *fn,
    PyObject *owner, const struct ferry_task_opts *to, struct pbuf *b,
    const size_t *offs, size_t n, PyObject *out)
{
	const void   **argv = PyMem_RawMalloc(n * sizeof(*argv));
	size_t        *lens = PyMem_RawMalloc(n * sizeof(*lens));
	ferry_future **futs = PyMem_RawMalloc(n * sizeof(*futs));
	void         **data = PyMem_RawMalloc(n * sizeof(*data));
	int            rv   = -1, err;

	if (argv == NULL || lens == NULL || futs == NULL || data == NULL) {
		PyErr_NoMemory();
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		argv[i] = b->data + offs[i];
		lens[i] = offs[i + 1] - offs[i];
	}
	Py_BEGIN_ALLOW_THREADS
	err = ferry_map_opts(self->c, name, n, argv, lens, to, futs);
	Py_END_ALLOW_THREADS
	if (err != 0) {
		raise_error(err, submit_why(err));
		goto done;
	}
	if (adopt(self, futs, n, fn, owner, out, data) != NULL)
		rv = 0;
done:
	PyMem_RawFree(argv);
	PyMem_RawFree(lens);
	PyMem_RawFree(futs);
	PyMem_RawFree(data);
	return rv;
}

/* attach(task_id, owner=None): the future of a task of this session
 * submitted earlier, by this process or by one whose session this
 * client resumed (ferry_attach). */
static PyObject *
client_attach(ClientObject *self, PyObject *args)
{
	unsigned long long id;
	PyObject          *owner = NULL;
	ferry_future      *fut;
	void              *data[1];
	int                rv;

	if (!PyArg_ParseTuple(args, "K|O:attach", &id, &owner))
		return NULL;
	if (check_open(self) != 0)
		return NULL;
	if ((rv = ferry_attach(self->c, (uint64_t)id, &fut)) != 0) {
		raise_error(rv, rv == FERRY_ENOTFOUND
		        ? "no such task in this session, or its result was "
		          "delivered to a future already"
		        : NULL);
		return NULL;
	}
	return adopt(self, &fut, 1, NULL, owner, NULL, data);
}

/* Cancel the futures in list out (a map that failed half-way). */
static void
withdraw(PyObject *out)
{
	PyObject *t, *v, *tb;
	PyErr_Fetch(&t, &v, &tb);
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(out); i++) {
		FutureObject *f = (FutureObject *)PyList_GET_ITEM(out, i);
		if (f->fut != NULL)
			ferry_cancel(f->fut);
		future_mark_cancelled(f);
	}
	PyErr_Restore(t, v, tb);
}

/* map(fn, iterable of argument tuples, opts, batch_size, owner=None):
 * the futures (keeping owner alive),
 * submitted batch_size at a time with one ferry_map_opts call each.
 * All or nothing: if one task's arguments cannot be packed or a batch
 * is refused, those submitted are cancelled. */
static PyObject *
client_map(ClientObject *self, PyObject *args)
{
	PyObject              *fn, *iterable, *opts, *it = NULL, *out = NULL;
	PyObject              *owner = NULL;
	struct ferry_task_opts to;
	struct pbuf            b    = { NULL, 0, 0 };
	size_t                *offs = NULL;
	Py_ssize_t             batch;
	size_t                 n = 0;
	const char            *name;
	int                    have;

	if (!PyArg_ParseTuple(args, "UOOn|O:map", &fn, &iterable, &opts, &batch,
	        &owner))
		return NULL;
	if (check_open(self) != 0 || task_opts(opts, &to, &have) != 0 ||
	    (name = PyUnicode_AsUTF8(fn)) == NULL)
		return NULL;
	if (batch < 1)
		batch = 1;
	if ((it = PyObject_GetIter(iterable)) == NULL)
		return NULL;
	if ((out = PyList_New(0)) == NULL)
		goto fail;
	if ((offs = PyMem_RawMalloc(((size_t)batch + 1) * sizeof(*offs))) ==
	    NULL) {
		PyErr_NoMemory();
		goto fail;
	}
	for (;;) {
		PyObject *item = PyIter_Next(it);
		int       rv;
		if (item == NULL) {
			if (PyErr_Occurred())
				goto fail;
			break;
		}
		offs[n] = b.len;
		rv      = pack_args(self, &b, item, fn);
		Py_DECREF(item);
		if (rv != 0)
			goto fail;
		if (++n == (size_t)batch) {
			offs[n] = b.len;
			if (map_batch(self, name, fn, owner, have ? &to : NULL,
			        &b, offs, n, out) != 0)
				goto fail;
			n     = 0;
			b.len = 0;
		}
	}
	if (n > 0) {
		offs[n] = b.len;
		if (map_batch(self, name, fn, owner, have ? &to : NULL, &b,
		        offs, n, out) != 0)
			goto fail;
	}
	Py_DECREF(it);
	PyMem_RawFree(offs);
	PyMem_RawFree(b.data);
	return out;
fail:
	if (out != NULL) {
		withdraw(out);
		Py_DECREF(out);
	}
	Py_XDECREF(it);
	PyMem_RawFree(offs);
	PyMem_RawFree(b.data);
	return NULL;
}

/* cancel_many(futures): cancel these (of this client) in one message;
 * how many are cancelled here. */
static PyObject *
client_cancel_many(ClientObject *self, PyObject *seq)
{
	PyObject      *fast;
	ferry_future **futs;
	Py_ssize_t     n, k = 0, cancelled = 0;
	int            rv;

	if (check_open(self) != 0)
		return NULL;
	if ((fast = PySequence_Fast(seq, "futures must be a sequence")) ==
	    NULL)
		return NULL;
	n = PySequence_Fast_GET_SIZE(fast);
	if ((futs = PyMem_RawMalloc((size_t)(n > 0 ? n : 1) *
	         sizeof(*futs))) == NULL) {
		Py_DECREF(fast);
		return PyErr_NoMemory();
	}
	for (Py_ssize_t i = 0; i < n; i++) {
		FutureObject *f = (FutureObject *)PySequence_Fast_GET_ITEM(fast, i);
		if (!PyObject_TypeCheck(f, &FutureBase_Type) || f->c != self->c) {
			PyErr_SetString(PyExc_ValueError,
			    "cancel: not a future of this client");
			goto fail;
		}
		if (f->state == FS_PENDING && !f->settling && f->fut != NULL)
			futs[k++] = f->fut;
	}
	if ((rv = ferry_cancel_many(futs, (size_t)k)) != 0) {
		raise_error(rv, NULL);
		goto fail;
	}
	for (Py_ssize_t i = 0; i < n; i++) {
		FutureObject *f = (FutureObject *)PySequence_Fast_GET_ITEM(fast, i);
		/* finished in libferry before the cancel: that outcome
		 * stands; else cancelled here */
		if (future_settle(f) != 0 || future_mark_cancelled(f) != 0)
			goto fail;
		cancelled += f->state == FS_CANCELLED ||
		    f->state == FS_CANCELLED_AND_NOTIFIED;
	}
	PyMem_RawFree(futs);
	Py_DECREF(fast);
	return PyLong_FromSsize_t(cancelled);
fail:
	PyMem_RawFree(futs);
	Py_DECREF(fast);
	return NULL;
}

/* run_completions(): the completion thread's body; returns once the
 * client is closed and every future it had has been settled. */
static PyObject *
client_run(ClientObject *self, PyObject *unused)
{
	ferry_future **futs;
	void         **data;
	int            rv = 0;

	if (self->it == NULL)
		Py_RETURN_NONE;
	futs = PyMem_RawMalloc(BATCH_MAX * sizeof(*futs));
	data = PyMem_RawMalloc(BATCH_MAX * sizeof(*data));
	if (futs == NULL || data == NULL) {
		PyMem_RawFree(futs);
		PyMem_RawFree(data);
		return PyErr_NoMemory();
	}
	while (rv == 0) {
		size_t n = 0;
		Py_BEGIN_ALLOW_THREADS
		rv = ferry_iter_next_many(self->it, -1, futs, data, BATCH_MAX,
		    &n);
		Py_END_ALLOW_THREADS
		for (size_t i = 0; i < n; i++) {
			if (future_settle(data[i]) != 0)
				PyErr_WriteUnraisable(data[i]);
			Py_DECREF(data[i]);
		}
	}
	PyMem_RawFree(futs);
	PyMem_RawFree(data);
	if (rv != FERRY_ECLOSED) {
		raise_error(rv, NULL);
		return NULL;
	}
	Py_RETURN_NONE;
}

/* status(timeout_ms): the scheduler's status document (msgpack bytes). */
static PyObject *
client_status(ClientObject *self, PyObject *args)
{
	int       timeout_ms = 10000, rv;
	void     *doc        = NULL;
	size_t    len        = 0;
	PyObject *r;

	if (!PyArg_ParseTuple(args, "|i:status", &timeout_ms))
		return NULL;
	if (check_open(self) != 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rv = ferry_cluster_status_doc(self->c, NULL, &doc, &len, timeout_ms);
	Py_END_ALLOW_THREADS
	if (rv != 0) {
		raise_error(rv, NULL);
		return NULL;
	}
	r = PyBytes_FromStringAndSize(doc, (Py_ssize_t)len);
	free(doc);
	return r;
}

/* stats(): the client's own counters (struct ferry_client_stats). */
static PyObject *
client_stats(ClientObject *self, PyObject *unused)
{
	struct ferry_client_stats st;
	int                       rv;

	if (check_open(self) != 0)
		return NULL;
	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	if ((rv = ferry_client_stats(self->c, &st)) != 0) {
		raise_error(rv, NULL);
		return NULL;
	}
	return Py_BuildValue("{sKsKsKsKsKsKsK}", "submitted",
	    (unsigned long long)st.submitted, "completed",
	    (unsigned long long)st.completed, "duplicates",
	    (unsigned long long)st.duplicates, "resent",
	    (unsigned long long)st.resent, "reconnects",
	    (unsigned long long)st.reconnects, "orphans",
	    (unsigned long long)st.orphans, "unsent",
	    (unsigned long long)st.unsent);
}

/* owns(future): whether future is one of this client's (a future is an
 * argument only of tasks of its own client). */
static PyObject *
client_owns(ClientObject *self, PyObject *o)
{
	return PyBool_FromLong(PyObject_TypeCheck(o, &FutureBase_Type) &&
	    ((FutureObject *)o)->c == self->c && self->c != NULL);
}

static PyObject *
client_get_session(ClientObject *self, void *unused)
{
	return PyLong_FromUnsignedLongLong(ferry_client_session(self->c));
}

static PyObject *
client_get_closed(ClientObject *self, void *unused)
{
	return PyBool_FromLong(self->c == NULL || self->closed);
}

static PyMethodDef client_methods[] = {
	{ "submit", (PyCFunction)client_submit, METH_VARARGS,
	    "submit(fn, args, opts) -> Future" },
	{ "map", (PyCFunction)client_map, METH_VARARGS,
	    "map(fn, iterable of argument tuples, opts, batch_size) -> list" },
	{ "attach", (PyCFunction)client_attach, METH_VARARGS,
	    "attach(task_id, owner=None) -> Future" },
	{ "cancel_many", (PyCFunction)client_cancel_many, METH_O,
	    "cancel_many(futures) -> how many are cancelled" },
	{ "owns", (PyCFunction)client_owns, METH_O,
	    "owns(future) -> whether it is a future of this client" },
	{ "run_completions", (PyCFunction)client_run, METH_NOARGS,
	    "The completion thread's body." },
	{ "status", (PyCFunction)client_status, METH_VARARGS,
	    "status(timeout_ms=10000) -> msgpack bytes" },
	{ "stats", (PyCFunction)client_stats, METH_NOARGS,
	    "stats() -> dict of the client's counters" },
	{ "close", (PyCFunction)client_close, METH_NOARGS,
	    "Close the connection; pending futures fail.  Idempotent." },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef client_getset[] = {
	{ "session", (getter)client_get_session, NULL, "The session id.",
	    NULL },
	{ "closed", (getter)client_get_closed, NULL, "Whether it is closed.",
	    NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyTypeObject Client_Type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name      = "ferry._ferry.Client",
	.tp_basicsize = sizeof(ClientObject),
	.tp_flags     = Py_TPFLAGS_DEFAULT,
	.tp_doc       = "The core of ferry.Client: one libferry client.",
	.tp_new       = PyType_GenericNew,
	.tp_init      = (initproc)client_init,
	.tp_dealloc   = (destructor)client_dealloc,
	.tp_methods   = client_methods,
	.tp_getset    = client_getset,
};

/* ---------------------------------------------------------- module */

/* _configure(future_type, decode, encode, make_error) */
static PyObject *
py_configure(PyObject *self, PyObject *args)
{
	PyObject *ft, *dec, *enc, *mk;

	if (!PyArg_ParseTuple(args, "O!OOO:_configure", &PyType_Type, &ft,
	        &dec, &enc, &mk))
		return NULL;
	if (!PyType_IsSubtype((PyTypeObject *)ft, &FutureBase_Type)) {
		PyErr_SetString(PyExc_TypeError,
		    "the future type must derive from FutureBase");
		return NULL;
	}
	Py_INCREF(ft);
	Py_XSETREF(g.future_type, (PyTypeObject *)ft);
	Py_INCREF(dec);
	Py_XSETREF(g.decode, dec);
	Py_INCREF(enc);
	Py_XSETREF(g.encode, enc);
	Py_INCREF(mk);
	Py_XSETREF(g.make_error, mk);
	Py_RETURN_NONE;
}

/* object_ref(path, loader, size, sha256) -> the payload of an object
 * reference (ext 70), as ferry_object_ref writes it. */
static PyObject *
py_object_ref(PyObject *self, PyObject *args)
{
	const char        *path, *loader;
	unsigned long long size = 0;
	Py_buffer          sha  = { 0 };
	PyObject          *shao = Py_None, *r;
	char              *buf;
	size_t             cap, len;
	int                rv;

	if (!PyArg_ParseTuple(args, "szKO:object_ref", &path, &loader, &size,
	        &shao))
		return NULL;
	if (shao != Py_None) {
		if (PyObject_GetBuffer(shao, &sha, PyBUF_SIMPLE) != 0)
			return NULL;
		if (sha.len != 32) {
			PyBuffer_Release(&sha);
			PyErr_SetString(PyExc_ValueError,
			    "sha256 must be 32 bytes (hashlib's digest())");
			return NULL;
		}
	}
	cap = 128 + strlen(path) + (loader != NULL ? strlen(loader) : 0);
	if ((buf = PyMem_RawMalloc(cap)) == NULL) {
		PyBuffer_Release(&sha);
		return PyErr_NoMemory();
	}
	rv = ferry_object_ref(buf, cap, &len, path, loader, size,
	    sha.buf != NULL ? sha.buf : NULL);
	PyBuffer_Release(&sha);
	if (rv != 0) {
		PyMem_RawFree(buf);
		PyErr_SetString(PyExc_ValueError,
		    "invalid object reference: the path must be 1 to 4096 "
		    "bytes");
		return NULL;
	}
	r = PyBytes_FromStringAndSize(buf, (Py_ssize_t)len);
	PyMem_RawFree(buf);
	return r;
}

/* _pack(value) -> msgpack bytes from the C packer, or None when it
 * leaves value to ferry._codec (for the tests). */
static PyObject *
py_pack(PyObject *self, PyObject *value)
{
	struct pbuf b = { NULL, 0, 0 };
	PyObject   *r;
	int         rv = pack_value(&b, value, NULL);
	if (rv < 0) {
		PyMem_RawFree(b.data);
		return NULL;
	}
	r = rv == 0 ? PyBytes_FromStringAndSize(b.data, (Py_ssize_t)b.len)
	            : Py_NewRef(Py_None);
	PyMem_RawFree(b.data);
	return r;
}

/* _unpack(bytes) -> a result's value as the client decodes it. */
static PyObject *
py_unpack(PyObject *self, PyObject *arg)
{
	Py_buffer b;
	PyObject *r;
	if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) != 0)
		return NULL;
	r = unpack_result(b.buf, (size_t)b.len);
	PyBuffer_Release(&b);
	return r;
}

static PyObject *
py_default_address(PyObject *self, PyObject *unused)
{
	char buf[ADDR_MAX];
	int  rv = ferry_default_address(buf, sizeof(buf));
	if (rv != 0) {
		raise_error(rv, NULL);
		return NULL;
	}
	return PyUnicode_FromString(buf);
}

static PyObject *
py_strerror(PyObject *self, PyObject *args)
{
	int code;
	if (!PyArg_ParseTuple(args, "i:strerror", &code))
		return NULL;
	return PyUnicode_FromString(ferry_strerror(code));
}

static PyMethodDef mod_methods[] = {
	{ "_configure", py_configure, METH_VARARGS,
	    "_configure(future_type, decode, encode, make_error)" },
	{ "object_ref", py_object_ref, METH_VARARGS,
	    "object_ref(path, loader, size, sha256) -> payload bytes" },
	{ "_pack", py_pack, METH_O,
	    "_pack(value) -> bytes from the C packer, or None" },
	{ "_unpack", py_unpack, METH_O,
	    "_unpack(bytes) -> the value, as results are decoded" },
	{ "default_address", py_default_address, METH_NOARGS,
	    "The default cluster's address (ferry_default_address)." },
	{ "strerror", py_strerror, METH_VARARGS,
	    "strerror(code) -> description" },
	{ "gather", py_gather, METH_VARARGS,
	    "gather(futures, skip, timeout) -> list of results" },
	{ "wait_all", py_wait_all, METH_VARARGS,
	    "wait_all(futures, timeout) -> whether all are done" },
	{ "split_done", py_split_done, METH_O,
	    "split_done(futures) -> (those not done, failed among done)" },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef mod_def = {
	PyModuleDef_HEAD_INIT,
	.m_name    = "ferry._ferry",
	.m_doc     = "libferry for Python: the C half of ferry.Client and "
	             "ferry.Future.",
	.m_size    = -1,
	.m_methods = mod_methods,
};

/* Take what the module needs from concurrent.futures and threading. */
static int
import_stdlib(void)
{
	static const char *names[FS_COUNT] = { "PENDING", "RUNNING",
		"CANCELLED", "CANCELLED_AND_NOTIFIED", "FINISHED" };
	PyObject *base = NULL, *thr = NULL, *fut = NULL;
	int       rv   = -1;

	if ((base = PyImport_ImportModule("concurrent.futures._base")) == NULL ||
	    (thr = PyImport_ImportModule("threading")) == NULL ||
	    (fut = PyObject_GetAttrString(base, "Future")) == NULL)
		goto done;
	for (int i = 0; i < FS_COUNT; i++)
		if ((g.state_names[i] = PyObject_GetAttrString(base, names[i])) ==
		    NULL)
			goto done;
	if ((g.cancelled_error = PyObject_GetAttrString(base,
	         "CancelledError")) == NULL ||
	    (g.timeout_error = PyObject_GetAttrString(base, "TimeoutError")) ==
	        NULL ||
	    (g.condition_cls = PyObject_GetAttrString(thr, "Condition")) ==
	        NULL ||
	    (g.base_result = PyObject_GetAttrString(fut, "result")) == NULL ||
	    (g.base_exception = PyObject_GetAttrString(fut, "exception")) ==
	        NULL ||
	    (g.base_set_result = PyObject_GetAttrString(fut, "set_result")) ==
	        NULL ||
	    (g.base_set_exception = PyObject_GetAttrString(fut,
	         "set_exception")) == NULL ||
	    (g.base_cancel = PyObject_GetAttrString(fut, "cancel")) == NULL ||
	    (g.base_notify_cancel = PyObject_GetAttrString(fut,
	         "set_running_or_notify_cancel")) == NULL)
		goto done;
	rv = 0;
done:
	Py_XDECREF(base);
	Py_XDECREF(thr);
	Py_XDECREF(fut);
	return rv;
}

PyMODINIT_FUNC PyInit__ferry(void);

PyMODINIT_FUNC
PyInit__ferry(void)
{
	PyObject *m, *errs;

	if (import_stdlib() != 0 || PyType_Ready(&FutureBase_Type) != 0 ||
	    PyType_Ready(&Client_Type) != 0 || PyType_Ready(&Watch_Type) != 0)
		return NULL;
	if ((m = PyModule_Create(&mod_def)) == NULL)
		return NULL;
	if (PyModule_AddObjectRef(m, "FutureBase",
	        (PyObject *)&FutureBase_Type) != 0 ||
	    PyModule_AddObjectRef(m, "Client", (PyObject *)&Client_Type) != 0 ||
	    PyModule_AddObjectRef(m, "Watch", (PyObject *)&Watch_Type) != 0 ||
	    PyModule_AddStringConstant(m, "VERSION", ferry_version()) != 0 ||
	    PyModule_AddIntConstant(m, "EXT_OBJECT", FERRY_EXT_OBJECT) != 0 ||
	    PyModule_AddIntConstant(m, "EXT_FUTURE", 71) != 0)
		goto fail;
	/* ERRORS: code -> name; and each name as a constant */
	if ((errs = PyDict_New()) == NULL)
		goto fail;
	for (size_t i = 0; i < sizeof(err_names) / sizeof(err_names[0]); i++) {
		PyObject *k = PyLong_FromLong(err_names[i].code);
		PyObject *v = PyUnicode_FromString(err_names[i].name);
		int       bad =
		    k == NULL || v == NULL || PyDict_SetItem(errs, k, v) != 0 ||
		    PyModule_AddIntConstant(m, err_names[i].name,
		        err_names[i].code) != 0;
		Py_XDECREF(k);
		Py_XDECREF(v);
		if (bad) {
			Py_DECREF(errs);
			goto fail;
		}
	}
	if (PyModule_AddObject(m, "ERRORS", errs) != 0) {
		Py_DECREF(errs);
		goto fail;
	}
	return m;
fail:
	Py_DECREF(m);
	return NULL;
}
