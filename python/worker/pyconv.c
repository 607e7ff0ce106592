/*
 * pyconv.c - msgpack values to Python values and back, in C (no detour
 * through the msgpack package), and object references as read-only
 * views of the worker's mapping.
 *
 *   msgpack            Python (decoding)       Python -> msgpack
 *   nil                None                    None
 *   bool               bool                    bool, numpy.bool_
 *   int                int                     int (int64/uint64 range),
 *                                              anything with __index__
 *   float32, float64   float                   float, numpy.floating
 *   str                str                     str
 *   bin                bytes                   bytes, bytearray,
 *                                              memoryview
 *   array              list (tuple as a key)   list, tuple
 *   map                dict                    dict
 *   ext 70             memoryview, or ndarray  (an ObjectRef's
 *                      for a .npy file         __ferry_ext__)
 *   other ext          ExtType(code, data)     ExtType, __ferry_ext__()
 *
 * Anything else fails with a TypeError that names the type and where it
 * was ("result[2]['x']: cannot encode numpy.ndarray; ...").
 *
 * An object reference is held (ferry_task_object_hold) by a small object
 * that exports the mapping's bytes read-only through the buffer
 * protocol; the memoryview, or the ndarray over it, keeps it alive, and
 * freeing it releases the hold: the mapping stays valid exactly as long
 * as Python can see it.
 */
#include <string.h>
#include <strings.h>

#include "pyworker.h"

#define MAX_DEPTH 512 /* of nested lists and dicts */

struct pyw_env pyw;

/* ------------------------------------------------------------- paths */

/* Where a value is, for messages: "args[0]['k']", "result[3]". */
struct path {
	const struct path *up;
	const char        *root;   /* at the top: "args", "result" */
	Py_ssize_t         index;  /* [index], unless key */
	PyObject          *key;    /* [key] (borrowed) */
	int                is_key; /* the key itself: "... key 'k'" */
};

/* One step of a path: "[3]", "['k']", " key 'k'". */
static PyObject *
path_step(PyObject *acc, const struct path *p)
{
	PyObject *s;

	if (p->is_key)
		s = PyUnicode_FromFormat("%U key %.60R", acc, p->key);
	else if (p->key != NULL)
		s = PyUnicode_FromFormat("%U[%.60R]", acc, p->key);
	else
		s = PyUnicode_FromFormat("%U[%zd]", acc, p->index);
	Py_DECREF(acc);
	return s;
}

/* The path as a str; a deep one shows its first and last steps. */
static PyObject *
path_str(const struct path *p)
{
	const struct path *steps[MAX_DEPTH + 4];
	size_t             n = 0;
	PyObject          *s;

	for (; p->up != NULL && n < MAX_DEPTH + 4; p = p->up)
		steps[n++] = p;
	while (p->up != NULL)
		p = p->up;
	if ((s = PyUnicode_FromString(p->root)) == NULL)
		return NULL;
	for (size_t i = n; i > 0 && s != NULL; i--) {
		if (n > 12 && i == n - 6) {
			PyObject *t = PyUnicode_FromFormat("%U...(%zu levels)...",
			    s, n - 12);
			Py_DECREF(s);
			s = t;
			i = 7;
		}
		if (s != NULL)
			s = path_step(s, steps[i - 1]);
	}
	return s;
}

/* Raise type("PATH: message"); an exception already set becomes its
 * cause (so a failure inside user code keeps its traceback).  Returns
 * -1. */
static int
path_fail(const struct path *p, PyObject *type, const char *fmt, ...)
{
	PyObject *ct = NULL, *cv = NULL, *ctb = NULL, *where, *msg;
	PyObject *et, *ev, *etb;
	va_list   ap;

	PyErr_Fetch(&ct, &cv, &ctb);
	if (ct != NULL) {
		PyErr_NormalizeException(&ct, &cv, &ctb);
		if (ctb != NULL && cv != NULL)
			PyException_SetTraceback(cv, ctb);
	}
	va_start(ap, fmt);
	msg = PyUnicode_FromFormatV(fmt, ap);
	va_end(ap);
	where = msg != NULL ? path_str(p) : NULL;
	if (where != NULL)
		PyErr_Format(type, "%U: %U", where, msg);
	Py_XDECREF(where);
	Py_XDECREF(msg);
	if (ct == NULL)
		return -1;
	if (!PyErr_Occurred()) { /* out of memory making the message */
		PyErr_Restore(ct, cv, ctb);
		return -1;
	}
	PyErr_Fetch(&et, &ev, &etb);
	PyErr_NormalizeException(&et, &ev, &etb);
	if (ev != NULL && cv != NULL) {
		PyException_SetCause(ev, cv); /* steals cv */
		cv = NULL;
	}
	PyErr_Restore(et, ev, etb);
	Py_XDECREF(ct);
	Py_XDECREF(cv);
	Py_XDECREF(ctb);
	return -1;
}

/* Put "PATH: " in front of the message of the exception set, keeping
 * its type (for errors whose own message says the rest).  Returns -1. */
static int
path_prefix(const struct path *p)
{
	PyObject *t, *v, *tb, *where;

	PyErr_Fetch(&t, &v, &tb);
	PyErr_NormalizeException(&t, &v, &tb);
	if ((where = path_str(p)) != NULL) {
		PyErr_Format(t != NULL ? t : PyExc_RuntimeError, "%U: %S",
		    where, v != NULL ? v : Py_None);
		Py_DECREF(where);
	}
	Py_XDECREF(t);
	Py_XDECREF(v);
	Py_XDECREF(tb);
	return -1;
}

/* "module.QualName" of o's type ("set" for builtins); a new reference
 * or NULL. */
static PyObject *
type_name(PyObject *o)
{
	PyObject *tp = (PyObject *)Py_TYPE(o), *mod, *qual, *s;

	mod  = PyObject_GetAttrString(tp, "__module__");
	qual = mod != NULL ? PyObject_GetAttrString(tp, "__qualname__") : NULL;
	if (qual == NULL) {
		Py_XDECREF(mod);
		PyErr_Clear();
		return PyUnicode_FromString(Py_TYPE(o)->tp_name);
	}
	if (PyUnicode_Check(mod) &&
	    PyUnicode_CompareWithASCIIString(mod, "builtins") != 0)
		s = PyUnicode_FromFormat("%U.%S", mod, qual);
	else
		s = PyUnicode_FromFormat("%S", qual);
	Py_DECREF(mod);
	Py_DECREF(qual);
	return s;
}

/* ------------------------------------------------ held object mapping */

/* A held object: its bytes, exported read-only (buffer protocol) while
 * this lives; freeing it releases the hold. */
struct mapping {
	PyObject_HEAD
	ferry_object *obj;
	const void   *data;
	Py_ssize_t    len;
};

static int
mapping_getbuffer(PyObject *self, Py_buffer *view, int flags)
{
	struct mapping *m = (struct mapping *)self;

	/* read-only: a writable request raises BufferError */
	return PyBuffer_FillInfo(view, self, (void *)(uintptr_t)m->data,
	    m->len, 1, flags);
}

static void
mapping_dealloc(PyObject *self)
{
	struct mapping *m = (struct mapping *)self;

	ferry_object_release(m->obj);
	PyObject_Free(self);
}

static PyBufferProcs mapping_buffer = {
	.bf_getbuffer = mapping_getbuffer,
};

static PyTypeObject mapping_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name      = "ferry.ObjectMapping",
	.tp_basicsize = sizeof(struct mapping),
	.tp_dealloc   = mapping_dealloc,
	.tp_as_buffer = &mapping_buffer,
	.tp_flags     = Py_TPFLAGS_DEFAULT,
	.tp_doc       = "An object reference's file, mapped by the worker: "
	                "read-only bytes (buffer protocol) that stay mapped "
	                "while this object lives.",
};

int
pyw_conv_init(void)
{
	if (PyType_Ready(&mapping_type) != 0)
		return -1;
	if ((pyw.ferry_ext = PyUnicode_InternFromString("__ferry_ext__")) ==
	    NULL)
		return -1;
	return 0;
}

/* Whether the reference's path (in its ext payload) ends in ".npy"; the
 * path as a new str in *path (NULL if there is none). */
static int
ref_is_npy(const msgpack_object *ref, PyObject **path)
{
	msgpack_zone   zone;
	msgpack_object o;
	size_t         off = 0;
	int            npy = 0;

	*path = NULL;
	if (!msgpack_zone_init(&zone, 256))
		return 0;
	if (msgpack_unpack(ref->via.ext.ptr, ref->via.ext.size, &off, &zone,
	        &o) == MSGPACK_UNPACK_SUCCESS &&
	    o.type == MSGPACK_OBJECT_MAP) {
		for (uint32_t i = 0; i < o.via.map.size; i++) {
			const msgpack_object *k = &o.via.map.ptr[i].key;
			const msgpack_object *v = &o.via.map.ptr[i].val;
			if (k->type != MSGPACK_OBJECT_STR || k->via.str.size != 4 ||
			    memcmp(k->via.str.ptr, "path", 4) != 0 ||
			    v->type != MSGPACK_OBJECT_STR)
				continue;
			npy = v->via.str.size >= 4 &&
			    strncasecmp(v->via.str.ptr + v->via.str.size - 4,
			        ".npy", 4) == 0;
			*path = PyUnicode_DecodeUTF8(v->via.str.ptr,
			    v->via.str.size, "replace");
			break;
		}
	}
	msgpack_zone_destroy(&zone);
	if (*path == NULL)
		PyErr_Clear();
	return npy;
}

/* An object reference: a read-only memoryview over the held mapping, or
 * an ndarray for a .npy file.  NULL with an exception, or with the task
 * failed (the hold's reason) and none. */
static PyObject *
dec_object(ferry_task *t, const msgpack_object *ref, const struct path *p)
{
	struct mapping *m;
	ferry_object   *h;
	const void     *data;
	size_t          len;
	PyObject       *view, *path, *arr;

	if (ferry_task_object_hold(t, ref, &h, &data, &len) != 0)
		return NULL;
	if ((m = PyObject_New(struct mapping, &mapping_type)) == NULL) {
		ferry_object_release(h);
		return NULL;
	}
	m->obj  = h;
	m->data = data;
	m->len  = (Py_ssize_t)len;
	view    = PyMemoryView_FromObject((PyObject *)m);
	Py_DECREF(m); /* the view holds it now (or it is released) */
	if (view == NULL || !ref_is_npy(ref, &path))
		return view;
	arr = PyObject_CallFunctionObjArgs(pyw.npy_array, view,
	    path != NULL ? path : Py_None, NULL);
	Py_DECREF(view);
	Py_XDECREF(path);
	if (arr == NULL)
		path_prefix(p);
	return arr;
}

/* ---------------------------------------------------------- decoding */

/* An ext value of another type: ExtType(code, data). */
static PyObject *
dec_ext(const msgpack_object *o)
{
	static PyObject *cls; /* the class, once looked up (GIL held) */

	if (cls == NULL && (cls = PyObject_CallNoArgs(pyw.ext_type)) == NULL)
		return NULL;
	return PyObject_CallFunction(cls, "iy#", (int)o->via.ext.type,
	    o->via.ext.ptr, (Py_ssize_t)o->via.ext.size);
}

static PyObject *dec_value(ferry_task *t, const msgpack_object *o,
    const struct path *p, int as_key, int depth);

/* An array: a list, or a tuple where it is (part of) a dict key. */
static PyObject *
dec_array(ferry_task *t, const msgpack_object *o, const struct path *p,
    int as_key, int depth)
{
	uint32_t  n = o->via.array.size;
	PyObject *seq = as_key ? PyTuple_New(n) : PyList_New(n);

	if (seq == NULL)
		return NULL;
	for (uint32_t i = 0; i < n; i++) {
		struct path sub = { p, NULL, (Py_ssize_t)i, NULL, 0 };
		PyObject   *v   = dec_value(t, &o->via.array.ptr[i], &sub,
                    as_key, depth + 1);
		if (v == NULL) {
			Py_DECREF(seq);
			return NULL;
		}
		if (as_key)
			PyTuple_SET_ITEM(seq, i, v);
		else
			PyList_SET_ITEM(seq, i, v);
	}
	return seq;
}

static PyObject *
dec_map(ferry_task *t, const msgpack_object *o, const struct path *p,
    int depth)
{
	PyObject *d = PyDict_New();

	if (d == NULL)
		return NULL;
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object_kv *kv = &o->via.map.ptr[i];
		struct path              kp = { p, NULL, 0, Py_None, 1 };
		PyObject                *k, *v;
		int                      rc;

		if ((k = dec_value(t, &kv->key, &kp, 1, depth + 1)) == NULL)
			goto fail;
		{
			struct path vp = { p, NULL, 0, k, 0 };
			v = dec_value(t, &kv->val, &vp, 0, depth + 1);
		}
		if (v == NULL) {
			Py_DECREF(k);
			goto fail;
		}
		rc = PyDict_SetItem(d, k, v);
		Py_DECREF(v);
		if (rc != 0) {
			kp.key = k;
			path_fail(&kp, PyExc_TypeError,
			    "cannot be a dict key (unhashable)");
			Py_DECREF(k);
			goto fail;
		}
		Py_DECREF(k);
	}
	return d;
fail:
	Py_DECREF(d);
	return NULL;
}

static PyObject *
dec_value(ferry_task *t, const msgpack_object *o, const struct path *p,
    int as_key, int depth)
{
	PyObject *s;

	if (depth > MAX_DEPTH) {
		path_fail(p, PyExc_ValueError, "nested deeper than %d levels",
		    MAX_DEPTH);
		return NULL;
	}
	switch (o->type) {
	case MSGPACK_OBJECT_NIL: Py_RETURN_NONE;
	case MSGPACK_OBJECT_BOOLEAN: return PyBool_FromLong(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return PyLong_FromUnsignedLongLong(o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return PyLong_FromLongLong(o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: return PyFloat_FromDouble(o->via.f64);
	case MSGPACK_OBJECT_STR:
		s = PyUnicode_DecodeUTF8(o->via.str.ptr, o->via.str.size, NULL);
		if (s == NULL && PyErr_ExceptionMatches(PyExc_UnicodeError))
			path_fail(p, PyExc_ValueError, "str is not valid UTF-8");
		return s;
	case MSGPACK_OBJECT_BIN:
		return PyBytes_FromStringAndSize(o->via.bin.ptr,
		    o->via.bin.size);
	case MSGPACK_OBJECT_ARRAY: return dec_array(t, o, p, as_key, depth);
	case MSGPACK_OBJECT_MAP: return dec_map(t, o, p, depth);
	case MSGPACK_OBJECT_EXT:
		if (ferry_is_object(o)) {
			if (as_key) {
				path_fail(p, PyExc_TypeError,
				    "an object reference cannot be a dict key");
				return NULL;
			}
			return dec_object(t, o, p);
		}
		return dec_ext(o);
	}
	path_fail(p, PyExc_ValueError, "unknown msgpack type %d",
	    (int)o->type);
	return NULL;
}

int
pyw_args_decode(ferry_task *t, const msgpack_object *args, PyObject **stack,
    size_t n_stack, PyObject ***argv, Py_ssize_t *argc)
{
	struct path top = { NULL, "args", 0, NULL, 0 };
	uint32_t    n;

	*argv = stack;
	*argc = 0;
	if (args->type == MSGPACK_OBJECT_NIL)
		return 0;
	if (args->type != MSGPACK_OBJECT_ARRAY) {
		PyErr_Format(PyExc_TypeError,
		    "args: a Python task takes an array of positional "
		    "arguments, got msgpack type %d (send [value] for one "
		    "argument)",
		    (int)args->type);
		return -1;
	}
	n = args->via.array.size;
	if (n > n_stack && (*argv = PyMem_Malloc(n * sizeof(**argv))) == NULL) {
		*argv = stack;
		PyErr_NoMemory();
		return -1;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct path sub = { &top, NULL, (Py_ssize_t)i, NULL, 0 };
		PyObject   *v   = dec_value(t, &args->via.array.ptr[i], &sub,
                    0, 1);
		if (v == NULL) {
			pyw_args_free(stack, *argv, *argc);
			*argv = stack;
			*argc = 0;
			return -1;
		}
		(*argv)[(*argc)++] = v;
	}
	return 0;
}

void
pyw_args_free(PyObject **stack, PyObject **argv, Py_ssize_t argc)
{
	for (Py_ssize_t i = 0; i < argc; i++)
		Py_DECREF(argv[i]);
	if (argv != stack)
		PyMem_Free(argv);
}

/* ---------------------------------------------------------- encoding */

struct enc {
	msgpack_packer *pk;
	/* numpy's scalar types, once numpy is imported (new references) */
	PyObject *np_bool, *np_floating, *np_ndarray;
};

static int enc_value(struct enc *e, PyObject *o, const struct path *p,
    int depth);

/* The packer failed: only its buffer can, when memory runs out. */
static int
pack_check(const struct path *p, int rc)
{
	if (rc == 0)
		return 0;
	return path_fail(p, PyExc_MemoryError,
	    "out of memory packing the result");
}

static int
enc_int(struct enc *e, PyObject *o, const struct path *p)
{
	int                overflow;
	long long          v = PyLong_AsLongLongAndOverflow(o, &overflow);
	unsigned long long u;

	if (overflow == 0) {
		if (v == -1 && PyErr_Occurred())
			return path_fail(p, PyExc_TypeError, "bad int");
		return pack_check(p, msgpack_pack_int64(e->pk, v));
	}
	if (overflow > 0) {
		u = PyLong_AsUnsignedLongLong(o);
		if (!(u == (unsigned long long)-1 && PyErr_Occurred()))
			return pack_check(p, msgpack_pack_uint64(e->pk, u));
		PyErr_Clear();
	}
	return path_fail(p, PyExc_OverflowError,
	    "int %.40R is out of msgpack's range (-2**63 to 2**64-1); send it "
	    "as a str",
	    o);
}

static int
enc_str(struct enc *e, PyObject *o, const struct path *p)
{
	Py_ssize_t  n;
	const char *s = PyUnicode_AsUTF8AndSize(o, &n);

	if (s == NULL)
		return path_fail(p, PyExc_ValueError,
		    "str cannot be encoded as UTF-8");
	if ((unsigned long long)n > UINT32_MAX)
		return path_fail(p, PyExc_ValueError,
		    "str of %zd bytes is over msgpack's 4 GiB", n);
	return pack_check(p, msgpack_pack_str_with_body(e->pk, s, (size_t)n));
}

static int
enc_bin(struct enc *e, const void *s, Py_ssize_t n, const struct path *p)
{
	if ((unsigned long long)n > UINT32_MAX)
		return path_fail(p, PyExc_ValueError,
		    "bytes of %zd bytes are over msgpack's 4 GiB", n);
	return pack_check(p, msgpack_pack_bin_with_body(e->pk, s, (size_t)n));
}

/* Any object with the buffer protocol (bytearray, memoryview): its
 * bytes, which must be contiguous. */
static int
enc_buffer(struct enc *e, PyObject *o, const struct path *p)
{
	Py_buffer b;
	int       rc;

	if (PyObject_GetBuffer(o, &b, PyBUF_C_CONTIGUOUS) != 0)
		return path_fail(p, PyExc_TypeError,
		    "cannot encode a non-contiguous buffer; copy it with "
		    "bytes() first");
	rc = enc_bin(e, b.buf, b.len, p);
	PyBuffer_Release(&b);
	return rc;
}

/* A list or tuple, each item held while it is encoded (user code in
 * __ferry_ext__ may change the list). */
static int
enc_seq(struct enc *e, PyObject *o, const struct path *p, int depth)
{
	int        is_list = PyList_Check(o);
	Py_ssize_t n = is_list ? PyList_GET_SIZE(o) : PyTuple_GET_SIZE(o);

	if ((unsigned long long)n > UINT32_MAX)
		return path_fail(p, PyExc_ValueError,
		    "a sequence of %zd items is over msgpack's limit", n);
	if (pack_check(p, msgpack_pack_array(e->pk, (size_t)n)) != 0)
		return -1;
	for (Py_ssize_t i = 0; i < n; i++) {
		struct path sub = { p, NULL, i, NULL, 0 };
		PyObject   *item;
		int         rc;

		if (is_list && PyList_GET_SIZE(o) != n)
			return path_fail(p, PyExc_RuntimeError,
			    "the list changed size while it was encoded");
		item = is_list ? PyList_GET_ITEM(o, i) : PyTuple_GET_ITEM(o, i);
		Py_INCREF(item);
		rc = enc_value(e, item, &sub, depth + 1);
		Py_DECREF(item);
		if (rc != 0)
			return -1;
	}
	return 0;
}

static int
enc_map(struct enc *e, PyObject *o, const struct path *p, int depth)
{
	Py_ssize_t n = PyDict_GET_SIZE(o), pos = 0, seen = 0;
	PyObject  *k, *v;

	if ((unsigned long long)n > UINT32_MAX)
		return path_fail(p, PyExc_ValueError,
		    "a dict of %zd items is over msgpack's limit", n);
	if (pack_check(p, msgpack_pack_map(e->pk, (size_t)n)) != 0)
		return -1;
	while (PyDict_Next(o, &pos, &k, &v)) {
		struct path kp = { p, NULL, 0, k, 1 }, vp = { p, NULL, 0, k, 0 };
		int         rc;

		if (++seen > n)
			break;
		Py_INCREF(k);
		Py_INCREF(v);
		rc = enc_value(e, k, &kp, depth + 1);
		if (rc == 0)
			rc = enc_value(e, v, &vp, depth + 1);
		Py_DECREF(k);
		Py_DECREF(v);
		if (rc != 0)
			return -1;
	}
	if (seen != n || PyDict_GET_SIZE(o) != n)
		return path_fail(p, PyExc_RuntimeError,
		    "the dict changed size while it was encoded");
	return 0;
}

/* ext (code, data) from an ExtType or a __ferry_ext__() result r. */
static int
enc_ext(struct enc *e, PyObject *r, const struct path *p, const char *what)
{
	PyObject  *code, *data;
	long       c;
	char      *s;
	Py_ssize_t n;

	if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 2)
		return path_fail(p, PyExc_TypeError,
		    "%s must be a pair (code, data), got %.60R", what, r);
	code = PyTuple_GET_ITEM(r, 0);
	data = PyTuple_GET_ITEM(r, 1);
	c    = PyLong_Check(code) ? PyLong_AsLong(code) : -1000;
	if (c < -128 || c > 127) {
		PyErr_Clear();
		return path_fail(p, PyExc_ValueError,
		    "%s: ext code must be an int from -128 to 127, got %.60R",
		    what, code);
	}
	if (!PyBytes_Check(data))
		return path_fail(p, PyExc_TypeError,
		    "%s: ext data must be bytes, got %.60R", what, data);
	PyBytes_AsStringAndSize(data, &s, &n);
	if ((unsigned long long)n > UINT32_MAX)
		return path_fail(p, PyExc_ValueError, "ext data over 4 GiB");
	return pack_check(p,
	    msgpack_pack_ext_with_body(e->pk, s, (size_t)n, (int8_t)c));
}

/* Why o cannot be encoded, with the way out for the usual cases. */
static int
enc_refuse(struct enc *e, PyObject *o, const struct path *p)
{
	PyObject *name = type_name(o);
	int       rc;

	if (name == NULL)
		return -1;
	if (e->np_ndarray != NULL &&
	    PyObject_IsInstance(o, e->np_ndarray) == 1)
		rc = path_fail(p, PyExc_TypeError,
		    "cannot encode %U; return arr.tolist() or write it to a "
		    "file and return ferry.object(path)",
		    name);
	else if (PyAnySet_Check(o))
		rc = path_fail(p, PyExc_TypeError,
		    "cannot encode %U; return a list (sorted(s)) instead", name);
	else
		rc = path_fail(p, PyExc_TypeError,
		    "cannot encode %U; return None, bool, int, float, str, "
		    "bytes, list, tuple or dict (msgpack values)",
		    name);
	Py_DECREF(name);
	return rc;
}

/* Look up numpy's scalar types once numpy is in sys.modules. */
static int
numpy_load(struct enc *e)
{
	PyObject *name, *np;

	if (e->np_ndarray != NULL)
		return 0;
	if ((name = PyUnicode_FromString("numpy")) == NULL)
		return -1;
	np = PyImport_GetModule(name);
	Py_DECREF(name);
	if (np == NULL)
		return PyErr_Occurred() ? -1 : 0;
	e->np_bool     = PyObject_GetAttrString(np, "bool_");
	e->np_floating = PyObject_GetAttrString(np, "floating");
	e->np_ndarray  = PyObject_GetAttrString(np, "ndarray");
	Py_DECREF(np);
	if (e->np_bool == NULL || e->np_floating == NULL ||
	    e->np_ndarray == NULL) {
		Py_CLEAR(e->np_bool);
		Py_CLEAR(e->np_floating);
		Py_CLEAR(e->np_ndarray);
		return -1;
	}
	return 0;
}

/* The types past the exact builtin ones: ext types, subclasses, numpy
 * scalars, anything with __index__. */
static int
enc_other(struct enc *e, PyObject *o, const struct path *p, int depth)
{
	PyObject *meth, *r;
	int       rc;

	if (PyTuple_Check(o) && PyTuple_GET_SIZE(o) == 2 &&
	    strcmp(Py_TYPE(o)->tp_name, "ExtType") == 0)
		return enc_ext(e, o, p, "ExtType"); /* msgpack's, or alike */
	if ((meth = PyObject_GetAttr(o, pyw.ferry_ext)) != NULL) {
		r = PyObject_CallNoArgs(meth);
		Py_DECREF(meth);
		if (r == NULL)
			return path_fail(p, PyExc_TypeError,
			    "%.60R.__ferry_ext__() failed", o);
		rc = enc_ext(e, r, p, "__ferry_ext__()");
		Py_DECREF(r);
		return rc;
	}
	if (!PyErr_ExceptionMatches(PyExc_AttributeError))
		return -1;
	PyErr_Clear();
	if (PyLong_Check(o))
		return enc_int(e, o, p);
	if (PyFloat_Check(o))
		return pack_check(p, msgpack_pack_double(e->pk,
		                         PyFloat_AS_DOUBLE(o)));
	if (PyUnicode_Check(o))
		return enc_str(e, o, p);
	if (PyBytes_Check(o))
		return enc_bin(e, PyBytes_AS_STRING(o), PyBytes_GET_SIZE(o), p);
	if (PyByteArray_Check(o) || PyMemoryView_Check(o))
		return enc_buffer(e, o, p);
	if (PyList_Check(o) || PyTuple_Check(o))
		return enc_seq(e, o, p, depth);
	if (PyDict_Check(o))
		return enc_map(e, o, p, depth);
	if (numpy_load(e) != 0)
		return -1;
	if (e->np_ndarray != NULL && PyObject_IsInstance(o, e->np_ndarray) == 1)
		return enc_refuse(e, o, p); /* before __index__: it has one */
	if (e->np_bool != NULL && PyObject_IsInstance(o, e->np_bool) == 1)
		return pack_check(p, PyObject_IsTrue(o)
		        ? msgpack_pack_true(e->pk)
		        : msgpack_pack_false(e->pk));
	if (e->np_floating != NULL &&
	    PyObject_IsInstance(o, e->np_floating) == 1) {
		double d = PyFloat_AsDouble(o);
		if (d == -1.0 && PyErr_Occurred())
			return path_fail(p, PyExc_TypeError, "bad float");
		return pack_check(p, msgpack_pack_double(e->pk, d));
	}
	if (PyIndex_Check(o)) {
		if ((r = PyNumber_Index(o)) == NULL)
			return path_fail(p, PyExc_TypeError,
			    "%.60R.__index__() failed", o);
		rc = enc_int(e, r, p);
		Py_DECREF(r);
		return rc;
	}
	return enc_refuse(e, o, p);
}

static int
enc_value(struct enc *e, PyObject *o, const struct path *p, int depth)
{
	if (depth > MAX_DEPTH)
		return path_fail(p, PyExc_ValueError,
		    "nested deeper than %d levels (does it contain itself?)",
		    MAX_DEPTH);
	if (o == Py_None)
		return pack_check(p, msgpack_pack_nil(e->pk));
	if (o == Py_True)
		return pack_check(p, msgpack_pack_true(e->pk));
	if (o == Py_False)
		return pack_check(p, msgpack_pack_false(e->pk));
	if (PyLong_CheckExact(o))
		return enc_int(e, o, p);
	if (PyFloat_CheckExact(o))
		return pack_check(p,
		    msgpack_pack_double(e->pk, PyFloat_AS_DOUBLE(o)));
	if (PyUnicode_CheckExact(o))
		return enc_str(e, o, p);
	if (PyBytes_CheckExact(o))
		return enc_bin(e, PyBytes_AS_STRING(o), PyBytes_GET_SIZE(o), p);
	if (PyList_CheckExact(o) || PyTuple_CheckExact(o))
		return enc_seq(e, o, p, depth);
	if (PyDict_CheckExact(o))
		return enc_map(e, o, p, depth);
	return enc_other(e, o, p, depth);
}

int
pyw_result_encode(msgpack_packer *pk, PyObject *value)
{
	struct path top = { NULL, "result", 0, NULL, 0 };
	struct enc  e   = { pk, NULL, NULL, NULL };
	int         rc;

	rc = enc_value(&e, value, &top, 0);
	Py_XDECREF(e.np_bool);
	Py_XDECREF(e.np_floating);
	Py_XDECREF(e.np_ndarray);
	return rc;
}
