/*
 * pyencode.c - a task's Python result as one msgpack value, packed in C
 * straight into the task's packer: None nil, bool and numpy.bool_ bool,
 * int (int64/uint64 range) and anything with __index__ int, float and
 * numpy.floating float64, str str, bytes, bytearray and memoryview bin,
 * list and tuple array, dict map, ExtType and objects with
 * __ferry_ext__() ext.  Anything else fails with a TypeError that names
 * the type and where it was ("result[2]['x']: cannot encode
 * numpy.ndarray; ...").
 */
#include <string.h>

#include "pyworker.h"

struct enc {
	msgpack_packer *pk;
	/* numpy's scalar types, once numpy is imported (new references) */
	PyObject *np_bool, *np_floating, *np_ndarray;
};

static int enc_value(
    struct enc *e, PyObject *o, const struct pyw_path *p, int depth);

/* The packer failed: only its buffer can, when memory runs out. */
static int
pack_check(const struct pyw_path *p, int rc)
{
	if (rc == 0)
		return 0;
	return pyw_path_fail(
	    p, PyExc_MemoryError, "out of memory packing the result");
}

static int
enc_int(struct enc *e, PyObject *o, const struct pyw_path *p)
{
	int                overflow;
	long long          v = PyLong_AsLongLongAndOverflow(o, &overflow);
	unsigned long long u;

	if (overflow == 0) {
		if (v == -1 && PyErr_Occurred())
			return pyw_path_fail(p, PyExc_TypeError, "bad int");
		return pack_check(p, msgpack_pack_int64(e->pk, v));
	}
	if (overflow > 0) {
		u = PyLong_AsUnsignedLongLong(o);
		if (!(u == (unsigned long long)-1 && PyErr_Occurred()))
			return pack_check(p, msgpack_pack_uint64(e->pk, u));
		PyErr_Clear();
	}
	return pyw_path_fail(p, PyExc_OverflowError,
	    "int %.40R is out of msgpack's range (-2**63 to 2**64-1); send it "
	    "as a str",
	    o);
}

static int
enc_str(struct enc *e, PyObject *o, const struct pyw_path *p)
{
	Py_ssize_t  n;
	const char *s = PyUnicode_AsUTF8AndSize(o, &n);

	if (s == NULL)
		return pyw_path_fail(
		    p, PyExc_ValueError, "str cannot be encoded as UTF-8");
	if ((unsigned long long)n > UINT32_MAX)
		return pyw_path_fail(p, PyExc_ValueError,
		    "str of %zd bytes is over msgpack's 4 GiB", n);
	return pack_check(p, msgpack_pack_str_with_body(e->pk, s, (size_t)n));
}

static int
enc_bin(struct enc *e, const void *s, Py_ssize_t n, const struct pyw_path *p)
{
	if ((unsigned long long)n > UINT32_MAX)
		return pyw_path_fail(p, PyExc_ValueError,
		    "bytes of %zd bytes are over msgpack's 4 GiB", n);
	return pack_check(p, msgpack_pack_bin_with_body(e->pk, s, (size_t)n));
}

/* Any object with the buffer protocol (bytearray, memoryview): its
 * bytes, which must be contiguous. */
static int
enc_buffer(struct enc *e, PyObject *o, const struct pyw_path *p)
{
	Py_buffer b;
	int       rc;

	if (PyObject_GetBuffer(o, &b, PyBUF_C_CONTIGUOUS) != 0)
		return pyw_path_fail(p, PyExc_TypeError,
		    "cannot encode a non-contiguous buffer; copy it with "
		    "bytes() first");
	rc = enc_bin(e, b.buf, b.len, p);
	PyBuffer_Release(&b);
	return rc;
}

/* A list or tuple, each item held while it is encoded (user code in
 * __ferry_ext__ may change the list). */
static int
enc_seq(struct enc *e, PyObject *o, const struct pyw_path *p, int depth)
{
	int        is_list = PyList_Check(o);
	Py_ssize_t n = is_list ? PyList_GET_SIZE(o) : PyTuple_GET_SIZE(o);

	if ((unsigned long long)n > UINT32_MAX)
		return pyw_path_fail(p, PyExc_ValueError,
		    "a sequence of %zd items is over msgpack's limit", n);
	if (pack_check(p, msgpack_pack_array(e->pk, (size_t)n)) != 0)
		return -1;
	for (Py_ssize_t i = 0; i < n; i++) {
		struct pyw_path sub = { p, NULL, i, NULL, 0 };
		PyObject       *item;
		int             rc;

		if (is_list && PyList_GET_SIZE(o) != n)
			return pyw_path_fail(p, PyExc_RuntimeError,
			    "the list changed size while it was encoded");
		item
		    = is_list ? PyList_GET_ITEM(o, i) : PyTuple_GET_ITEM(o, i);
		Py_INCREF(item);
		rc = enc_value(e, item, &sub, depth + 1);
		Py_DECREF(item);
		if (rc != 0)
			return -1;
	}
	return 0;
}

static int
enc_map(struct enc *e, PyObject *o, const struct pyw_path *p, int depth)
{
	Py_ssize_t n = PyDict_GET_SIZE(o), pos = 0, seen = 0;
	PyObject  *k, *v;

	if ((unsigned long long)n > UINT32_MAX)
		return pyw_path_fail(p, PyExc_ValueError,
		    "a dict of %zd items is over msgpack's limit", n);
	if (pack_check(p, msgpack_pack_map(e->pk, (size_t)n)) != 0)
		return -1;
	while (PyDict_Next(o, &pos, &k, &v)) {
		struct pyw_path kp = { p, NULL, 0, k, 1 },
		                vp = { p, NULL, 0, k, 0 };
		int rc;

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
		return pyw_path_fail(p, PyExc_RuntimeError,
		    "the dict changed size while it was encoded");
	return 0;
}

/* ext (code, data) from an ExtType or a __ferry_ext__() result r. */
static int
enc_ext(struct enc *e, PyObject *r, const struct pyw_path *p, const char *what)
{
	PyObject  *code, *data;
	long       c;
	char      *s;
	Py_ssize_t n;

	if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 2)
		return pyw_path_fail(p, PyExc_TypeError,
		    "%s must be a pair (code, data), got %.60R", what, r);
	code = PyTuple_GET_ITEM(r, 0);
	data = PyTuple_GET_ITEM(r, 1);
	c    = PyLong_Check(code) ? PyLong_AsLong(code) : -1000;
	if (c < -128 || c > 127) {
		PyErr_Clear();
		return pyw_path_fail(p, PyExc_ValueError,
		    "%s: ext code must be an int from -128 to 127, got %.60R",
		    what, code);
	}
	if (!PyBytes_Check(data))
		return pyw_path_fail(p, PyExc_TypeError,
		    "%s: ext data must be bytes, got %.60R", what, data);
	PyBytes_AsStringAndSize(data, &s, &n);
	if ((unsigned long long)n > UINT32_MAX)
		return pyw_path_fail(
		    p, PyExc_ValueError, "ext data over 4 GiB");
	return pack_check(
	    p, msgpack_pack_ext_with_body(e->pk, s, (size_t)n, (int8_t)c));
}

/* Why o cannot be encoded, with the way out for the usual cases. */
static int
enc_refuse(struct enc *e, PyObject *o, const struct pyw_path *p)
{
	PyObject *name = pyw_type_name(o);
	int       rc;

	if (name == NULL)
		return -1;
	if (e->np_ndarray != NULL
	    && PyObject_IsInstance(o, e->np_ndarray) == 1)
		rc = pyw_path_fail(p, PyExc_TypeError,
		    "cannot encode %U; return arr.tolist() or write it to a "
		    "file and return ferry.object(path)",
		    name);
	else if (PyAnySet_Check(o))
		rc = pyw_path_fail(p, PyExc_TypeError,
		    "cannot encode %U; return a list (sorted(s)) instead",
		    name);
	else
		rc = pyw_path_fail(p, PyExc_TypeError,
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
	if (e->np_bool == NULL || e->np_floating == NULL
	    || e->np_ndarray == NULL) {
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
enc_other(struct enc *e, PyObject *o, const struct pyw_path *p, int depth)
{
	PyObject *meth, *r;
	int       rc;

	if (PyTuple_Check(o) && PyTuple_GET_SIZE(o) == 2
	    && strcmp(Py_TYPE(o)->tp_name, "ExtType") == 0)
		return enc_ext(e, o, p, "ExtType"); /* msgpack's, or alike */
	if ((meth = PyObject_GetAttr(o, pyw.ferry_ext)) != NULL) {
		r = PyObject_CallNoArgs(meth);
		Py_DECREF(meth);
		if (r == NULL)
			return pyw_path_fail(p, PyExc_TypeError,
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
		return pack_check(
		    p, msgpack_pack_double(e->pk, PyFloat_AS_DOUBLE(o)));
	if (PyUnicode_Check(o))
		return enc_str(e, o, p);
	if (PyBytes_Check(o))
		return enc_bin(
		    e, PyBytes_AS_STRING(o), PyBytes_GET_SIZE(o), p);
	if (PyByteArray_Check(o) || PyMemoryView_Check(o))
		return enc_buffer(e, o, p);
	if (PyList_Check(o) || PyTuple_Check(o))
		return enc_seq(e, o, p, depth);
	if (PyDict_Check(o))
		return enc_map(e, o, p, depth);
	if (numpy_load(e) != 0)
		return -1;
	if (e->np_ndarray != NULL
	    && PyObject_IsInstance(o, e->np_ndarray) == 1)
		return enc_refuse(e, o, p); /* before __index__: it has one */
	if (e->np_bool != NULL && PyObject_IsInstance(o, e->np_bool) == 1)
		return pack_check(p,
		    PyObject_IsTrue(o) ? msgpack_pack_true(e->pk)
		                       : msgpack_pack_false(e->pk));
	if (e->np_floating != NULL
	    && PyObject_IsInstance(o, e->np_floating) == 1) {
		double d = PyFloat_AsDouble(o);
		if (d == -1.0 && PyErr_Occurred())
			return pyw_path_fail(p, PyExc_TypeError, "bad float");
		return pack_check(p, msgpack_pack_double(e->pk, d));
	}
	if (PyIndex_Check(o)) {
		if ((r = PyNumber_Index(o)) == NULL)
			return pyw_path_fail(
			    p, PyExc_TypeError, "%.60R.__index__() failed", o);
		rc = enc_int(e, r, p);
		Py_DECREF(r);
		return rc;
	}
	return enc_refuse(e, o, p);
}

static int
enc_value(struct enc *e, PyObject *o, const struct pyw_path *p, int depth)
{
	if (depth > PYW_MAX_DEPTH)
		return pyw_path_fail(p, PyExc_ValueError,
		    "nested deeper than %d levels (does it contain itself?)",
		    PYW_MAX_DEPTH);
	if (o == Py_None)
		return pack_check(p, msgpack_pack_nil(e->pk));
	if (o == Py_True)
		return pack_check(p, msgpack_pack_true(e->pk));
	if (o == Py_False)
		return pack_check(p, msgpack_pack_false(e->pk));
	if (PyLong_CheckExact(o))
		return enc_int(e, o, p);
	if (PyFloat_CheckExact(o))
		return pack_check(
		    p, msgpack_pack_double(e->pk, PyFloat_AS_DOUBLE(o)));
	if (PyUnicode_CheckExact(o))
		return enc_str(e, o, p);
	if (PyBytes_CheckExact(o))
		return enc_bin(
		    e, PyBytes_AS_STRING(o), PyBytes_GET_SIZE(o), p);
	if (PyList_CheckExact(o) || PyTuple_CheckExact(o))
		return enc_seq(e, o, p, depth);
	if (PyDict_CheckExact(o))
		return enc_map(e, o, p, depth);
	return enc_other(e, o, p, depth);
}

int
pyw_result_encode(msgpack_packer *pk, PyObject *value)
{
	struct pyw_path top = { NULL, "result", 0, NULL, 0 };
	struct enc      e   = { pk, NULL, NULL, NULL };
	int             rc;

	rc = enc_value(&e, value, &top, 0);
	Py_XDECREF(e.np_bool);
	Py_XDECREF(e.np_floating);
	Py_XDECREF(e.np_ndarray);
	return rc;
}
