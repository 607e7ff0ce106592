/*
 * pydecode.c - a task's msgpack arguments as Python values, in C (no
 * detour through the msgpack package): nil None, bool, int, float32 and
 * float64 float, str (UTF-8) str, bin bytes, array list (tuple where it
 * is a dict key), map dict, ext 70 (an object reference) a read-only
 * memoryview over the worker's mapping or, for a .npy file, a read-only
 * numpy.ndarray over it, other ext types ExtType(code, data).
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

struct pyw_env pyw;

/* ------------------------------------------------ held object mapping */

/* A held object: its bytes, exported read-only (buffer protocol) while
 * this lives; freeing it releases the hold. */
struct mapping {
	PyObject_HEAD ferry_object *obj;
	const void                 *data;
	Py_ssize_t                  len;
};

static int
mapping_getbuffer(PyObject *self, Py_buffer *view, int flags)
{
	struct mapping *m = (struct mapping *)self;

	/* read-only: a writable request raises BufferError */
	return PyBuffer_FillInfo(
	    view, self, (void *)(uintptr_t)m->data, m->len, 1, flags);
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
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ferry.ObjectMapping",
	.tp_basicsize                          = sizeof(struct mapping),
	.tp_dealloc                            = mapping_dealloc,
	.tp_as_buffer                          = &mapping_buffer,
	.tp_flags                              = Py_TPFLAGS_DEFAULT,
	.tp_doc = "An object reference's file, mapped by the worker: "
	          "read-only bytes (buffer protocol) that stay mapped "
	          "while this object lives.",
};

int
pyw_conv_init(void)
{
	if (PyType_Ready(&mapping_type) != 0)
		return -1;
	if ((pyw.ferry_ext = PyUnicode_InternFromString("__ferry_ext__"))
	    == NULL)
		return -1;
	return 0;
}

/* Whether the reference's path (in its ext payload) ends in ".npy"
 * (1 or 0, or -1 with an exception); the path as a new str in *path
 * (NULL if there is none). */
static int
ref_is_npy(const msgpack_object *ref, PyObject **path)
{
	msgpack_zone   zone;
	msgpack_object o;
	size_t         off = 0;
	int            npy = 0;

	*path = NULL;
	if (!msgpack_zone_init(&zone, 256)) {
		PyErr_NoMemory();
		return -1;
	}
	if (msgpack_unpack(
	        ref->via.ext.ptr, ref->via.ext.size, &off, &zone, &o)
	        == MSGPACK_UNPACK_SUCCESS
	    && o.type == MSGPACK_OBJECT_MAP) {
		for (uint32_t i = 0; i < o.via.map.size; i++) {
			const msgpack_object *k = &o.via.map.ptr[i].key;
			const msgpack_object *v = &o.via.map.ptr[i].val;
			if (k->type != MSGPACK_OBJECT_STR
			    || k->via.str.size != 4
			    || memcmp(k->via.str.ptr, "path", 4) != 0
			    || v->type != MSGPACK_OBJECT_STR)
				continue;
			npy = v->via.str.size >= 4
			    && strncasecmp(
			           v->via.str.ptr + v->via.str.size - 4,
			           ".npy", 4)
			        == 0;
			*path = PyUnicode_DecodeUTF8(
			    v->via.str.ptr, v->via.str.size, "replace");
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
dec_object(ferry_task *t, const msgpack_object *ref, const struct pyw_path *p)
{
	struct mapping *m;
	ferry_object   *h;
	const void     *data;
	size_t          len;
	PyObject       *view, *path, *arr;
	int             npy;

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
	if (view == NULL)
		return NULL;
	if ((npy = ref_is_npy(ref, &path)) <= 0) {
		Py_XDECREF(path);
		if (npy == 0)
			return view;
		Py_DECREF(view);
		return NULL;
	}
	arr = PyObject_CallFunctionObjArgs(
	    pyw.npy_array, view, path != NULL ? path : Py_None, NULL);
	Py_DECREF(view);
	Py_XDECREF(path);
	if (arr == NULL)
		pyw_path_prefix(p);
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
    const struct pyw_path *p, int as_key, int depth);

/* An array: a list, or a tuple where it is (part of) a dict key. */
static PyObject *
dec_array(ferry_task *t, const msgpack_object *o, const struct pyw_path *p,
    int as_key, int depth)
{
	uint32_t  n   = o->via.array.size;
	PyObject *seq = as_key ? PyTuple_New(n) : PyList_New(n);

	if (seq == NULL)
		return NULL;
	for (uint32_t i = 0; i < n; i++) {
		struct pyw_path sub = { p, NULL, (Py_ssize_t)i, NULL, 0 };
		PyObject       *v   = dec_value(
		            t, &o->via.array.ptr[i], &sub, as_key, depth + 1);
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
dec_map(ferry_task *t, const msgpack_object *o, const struct pyw_path *p,
    int depth)
{
	PyObject *d = PyDict_New();

	if (d == NULL)
		return NULL;
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object_kv *kv = &o->via.map.ptr[i];
		struct pyw_path          kp = { p, NULL, 0, NULL, 1 };
		PyObject                *k, *v;
		int                      rc;

		if ((k = dec_value(t, &kv->key, &kp, 1, depth + 1)) == NULL)
			goto fail;
		{
			struct pyw_path vp = { p, NULL, 0, k, 0 };
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
			pyw_path_fail(&kp, PyExc_TypeError,
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
dec_value(ferry_task *t, const msgpack_object *o, const struct pyw_path *p,
    int as_key, int depth)
{
	PyObject *s;

	if (depth > PYW_MAX_DEPTH) {
		pyw_path_fail(p, PyExc_ValueError,
		    "nested deeper than %d levels", PYW_MAX_DEPTH);
		return NULL;
	}
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		Py_RETURN_NONE;
	case MSGPACK_OBJECT_BOOLEAN:
		return PyBool_FromLong(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return PyLong_FromUnsignedLongLong(o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return PyLong_FromLongLong(o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return PyFloat_FromDouble(o->via.f64);
	case MSGPACK_OBJECT_STR:
		s = PyUnicode_DecodeUTF8(
		    o->via.str.ptr, o->via.str.size, NULL);
		if (s == NULL && PyErr_ExceptionMatches(PyExc_UnicodeError))
			pyw_path_fail(
			    p, PyExc_ValueError, "str is not valid UTF-8");
		return s;
	case MSGPACK_OBJECT_BIN:
		return PyBytes_FromStringAndSize(
		    o->via.bin.ptr, o->via.bin.size);
	case MSGPACK_OBJECT_ARRAY:
		return dec_array(t, o, p, as_key, depth);
	case MSGPACK_OBJECT_MAP:
		return dec_map(t, o, p, depth);
	case MSGPACK_OBJECT_EXT:
		if (ferry_is_object(o)) {
			if (as_key) {
				pyw_path_fail(p, PyExc_TypeError,
				    "an object reference cannot be a dict "
				    "key");
				return NULL;
			}
			return dec_object(t, o, p);
		}
		return dec_ext(o);
	}
	pyw_path_fail(
	    p, PyExc_ValueError, "unknown msgpack type %d", (int)o->type);
	return NULL;
}

int
pyw_args_decode(ferry_task *t, const msgpack_object *args, PyObject **stack,
    size_t n_stack, PyObject ***argv, Py_ssize_t *argc)
{
	struct pyw_path top = { NULL, "args", 0, NULL, 0 };
	uint32_t        n;

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
	if (n > n_stack
	    && (*argv = PyMem_Malloc(n * sizeof(**argv))) == NULL) {
		*argv = stack;
		PyErr_NoMemory();
		return -1;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct pyw_path sub = { &top, NULL, (Py_ssize_t)i, NULL, 0 };
		PyObject       *v
		    = dec_value(t, &args->via.array.ptr[i], &sub, 0, 1);
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
