/*
 * _pack.c - msgpack in C for the values most tasks take and return.
 *
 * Out: None, bool, int (int64/uint64 range), float, str, bytes,
 * bytearray, list, tuple, dict and this client's futures (as future
 * references), nested, packed exactly as msgpack-python's packb would
 * (the smallest header that fits, floats as float64, strings as str,
 * bytes as bin).  Anything else (numpy scalars, object references,
 * ExtType, a big int, a str with lone surrogates) sends the whole task's
 * arguments to ferry._codec, which packs or explains.
 *
 * In: a result that is one scalar (nil, bool, int, float, str, bin) is
 * decoded here; arrays, maps and ext values go to ferry._codec.decode
 * (msgpack-python with the package's options).
 */
#include "_ferry.h"

#include <string.h>

#define PACK_DEPTH 512 /* msgpack-python's default nesting limit */

int
pbuf_put(struct pbuf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t ncap = b->cap > 0 ? b->cap * 2 : 4096;
		char  *nd;
		while (ncap < b->len + n)
			ncap *= 2;
		if ((nd = PyMem_RawRealloc(b->data, ncap)) == NULL) {
			PyErr_NoMemory();
			return -1;
		}
		b->data = nd;
		b->cap  = ncap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

/* A type byte and a big-endian number of size bytes (0, 1, 2, 4, 8). */
static int
put_head(struct pbuf *b, uint8_t type, uint64_t v, int size)
{
	uint8_t h[9];
	h[0] = type;
	for (int i = 0; i < size; i++)
		h[1 + i] = (uint8_t)(v >> (8 * (size - 1 - i)));
	return pbuf_put(b, h, (size_t)size + 1);
}

/* A header for a length: fix (with the length in its low bits, up to
 * fixmax), else the 8-bit (if t8), 16- or 32-bit form. */
static int
put_len(struct pbuf *b, size_t n, uint8_t fix, size_t fixmax, uint8_t t8,
    uint8_t t16, uint8_t t32)
{
	if (fix != 0 && n <= fixmax)
		return put_head(b, (uint8_t)(fix | n), 0, 0);
	if (t8 != 0 && n <= 0xff)
		return put_head(b, t8, n, 1);
	if (n <= 0xffff)
		return put_head(b, t16, n, 2);
	return put_head(b, t32, n, 4);
}

static int
put_uint(struct pbuf *b, uint64_t v)
{
	if (v < 128)
		return put_head(b, (uint8_t)v, 0, 0);
	if (v <= 0xff)
		return put_head(b, 0xcc, v, 1);
	if (v <= 0xffff)
		return put_head(b, 0xcd, v, 2);
	if (v <= 0xffffffffu)
		return put_head(b, 0xce, v, 4);
	return put_head(b, 0xcf, v, 8);
}

static int
put_int(struct pbuf *b, int64_t v)
{
	if (v >= 0)
		return put_uint(b, (uint64_t)v);
	if (v >= -32)
		return put_head(b, (uint8_t)(0xe0 | (v + 32)), 0, 0);
	if (v >= INT8_MIN)
		return put_head(b, 0xd0, (uint64_t)v & 0xff, 1);
	if (v >= INT16_MIN)
		return put_head(b, 0xd1, (uint64_t)v & 0xffff, 2);
	if (v >= INT32_MIN)
		return put_head(b, 0xd2, (uint64_t)v & 0xffffffffu, 4);
	return put_head(b, 0xd3, (uint64_t)v, 8);
}

static int
pack_long(struct pbuf *b, PyObject *o)
{
	int       overflow;
	long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
	if (v == -1 && PyErr_Occurred())
		return -1;
	if (overflow == 0)
		return put_int(b, (int64_t)v);
	if (overflow > 0) {
		unsigned long long u = PyLong_AsUnsignedLongLong(o);
		if (u == (unsigned long long)-1 && PyErr_Occurred()) {
			PyErr_Clear();
			return 1; /* too big: _codec says so */
		}
		return put_uint(b, (uint64_t)u);
	}
	return 1;
}

static int
pack_float(struct pbuf *b, double d)
{
	uint64_t u;
	memcpy(&u, &d, sizeof(u));
	return put_head(b, 0xcb, u, 8);
}

static int
pack_raw(struct pbuf *b, const char *p, size_t n, int bin)
{
	int rv = bin ? put_len(b, n, 0, 0, 0xc4, 0xc5, 0xc6)
	             : put_len(b, n, 0xa0, 31, 0xd9, 0xda, 0xdb);
	return rv != 0 ? rv : pbuf_put(b, p, n);
}

static int pack_obj(struct pbuf *b, PyObject *o, ferry_client *c, int depth);

static int
pack_seq(struct pbuf *b, PyObject **items, Py_ssize_t n, ferry_client *c,
    int depth)
{
	int rv;
	if ((rv = put_len(b, (size_t)n, 0x90, 15, 0, 0xdc, 0xdd)) != 0)
		return rv;
	for (Py_ssize_t i = 0; i < n; i++)
		if ((rv = pack_obj(b, items[i], c, depth + 1)) != 0)
			return rv;
	return 0;
}

static int
pack_dict(struct pbuf *b, PyObject *o, ferry_client *c, int depth)
{
	Py_ssize_t pos = 0;
	PyObject  *k, *v;
	int        rv;
	if ((rv = put_len(b, (size_t)PyDict_GET_SIZE(o), 0x80, 15, 0, 0xde,
	         0xdf)) != 0)
		return rv;
	while (PyDict_Next(o, &pos, &k, &v)) {
		if ((rv = pack_obj(b, k, c, depth + 1)) != 0 ||
		    (rv = pack_obj(b, v, c, depth + 1)) != 0)
			return rv;
	}
	return 0;
}

/* A future of client c: its reference. */
static int
pack_future(struct pbuf *b, FutureObject *f, ferry_client *c)
{
	uint8_t ref[FERRY_FUTURE_REF_MAX];
	size_t  n;
	if (f->fut == NULL || f->c != c) {
		PyErr_Format(PyExc_ValueError,
		    "the future of task %llu (%S) belongs to another client: "
		    "a future is an argument only of tasks of the client "
		    "that submitted it (pass its result() instead)",
		    (unsigned long long)f->id, f->fn != NULL ? f->fn : Py_None);
		return -1;
	}
	if (ferry_future_ref(ref, sizeof(ref), &n, f->fut) != 0) {
		PyErr_NoMemory();
		return -1;
	}
	return pbuf_put(b, ref, n);
}

static int
pack_obj(struct pbuf *b, PyObject *o, ferry_client *c, int depth)
{
	if (depth > PACK_DEPTH)
		return 1;
	if (o == Py_None)
		return put_head(b, 0xc0, 0, 0);
	if (o == Py_True)
		return put_head(b, 0xc3, 0, 0);
	if (o == Py_False)
		return put_head(b, 0xc2, 0, 0);
	if (PyLong_Check(o))
		return pack_long(b, o);
	if (PyFloat_Check(o))
		return pack_float(b, PyFloat_AS_DOUBLE(o));
	if (PyUnicode_Check(o)) {
		Py_ssize_t  n;
		const char *s = PyUnicode_AsUTF8AndSize(o, &n);
		if (s == NULL) {
			PyErr_Clear(); /* lone surrogates: _codec says so */
			return 1;
		}
		return pack_raw(b, s, (size_t)n, 0);
	}
	if (PyBytes_Check(o))
		return pack_raw(b, PyBytes_AS_STRING(o),
		    (size_t)PyBytes_GET_SIZE(o), 1);
	if (PyByteArray_Check(o))
		return pack_raw(b, PyByteArray_AS_STRING(o),
		    (size_t)PyByteArray_GET_SIZE(o), 1);
	if (PyTuple_Check(o))
		return pack_seq(b, &PyTuple_GET_ITEM(o, 0), PyTuple_GET_SIZE(o),
		    c, depth);
	if (PyList_Check(o))
		return pack_seq(b, PySequence_Fast_ITEMS(o), PyList_GET_SIZE(o),
		    c, depth);
	if (PyDict_Check(o))
		return pack_dict(b, o, c, depth);
	if (PyObject_TypeCheck(o, &FutureBase_Type))
		return pack_future(b, (FutureObject *)o, c);
	return 1;
}

int
pack_value(struct pbuf *b, PyObject *o, ferry_client *c)
{
	size_t mark = b->len;
	int    rv   = pack_obj(b, o, c, 0);
	if (rv != 0)
		b->len = mark;
	return rv;
}

/* ------------------------------------------------------------ results */

static uint64_t
be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/* One scalar that fills data exactly, or NULL without an exception when
 * it is not one. */
static PyObject *
unpack_scalar(const uint8_t *p, size_t len)
{
	uint8_t t = p[0];
	size_t  n, h;

	if (t <= 0x7f && len == 1)
		return PyLong_FromLong(t);
	if (t >= 0xe0 && len == 1)
		return PyLong_FromLong((int8_t)t);
	switch (t) {
	case 0xc0:
		if (len == 1)
			Py_RETURN_NONE;
		return NULL;
	case 0xc2:
	case 0xc3:
		if (len != 1)
			return NULL;
		return PyBool_FromLong(t == 0xc3);
	case 0xcc:
	case 0xcd:
	case 0xce:
	case 0xcf:
		n = (size_t)1 << (t - 0xcc);
		if (len != 1 + n)
			return NULL;
		return PyLong_FromUnsignedLongLong(be(p + 1, (int)n));
	case 0xd0:
	case 0xd1:
	case 0xd2:
	case 0xd3: {
		uint64_t u;
		n = (size_t)1 << (t - 0xd0);
		if (len != 1 + n)
			return NULL;
		u = be(p + 1, (int)n);
		if (n < 8 && (u >> (8 * n - 1)) != 0) /* sign-extend */
			u |= ~(uint64_t)0 << (8 * n);
		return PyLong_FromLongLong((long long)(int64_t)u);
	}
	case 0xca: {
		uint32_t u;
		float    fl;
		if (len != 5)
			return NULL;
		u = (uint32_t)be(p + 1, 4);
		memcpy(&fl, &u, 4);
		return PyFloat_FromDouble((double)fl);
	}
	case 0xcb: {
		uint64_t u;
		double   d;
		if (len != 9)
			return NULL;
		u = be(p + 1, 8);
		memcpy(&d, &u, 8);
		return PyFloat_FromDouble(d);
	}
	default:
		break;
	}
	/* strings and bin */
	if ((t & 0xe0) == 0xa0) {
		n = t & 0x1f;
		h = 1;
	} else if (t == 0xd9 || t == 0xc4) {
		if (len < 2)
			return NULL;
		n = p[1];
		h = 2;
	} else if (t == 0xda || t == 0xc5) {
		if (len < 3)
			return NULL;
		n = (size_t)be(p + 1, 2);
		h = 3;
	} else if (t == 0xdb || t == 0xc6) {
		if (len < 5)
			return NULL;
		n = (size_t)be(p + 1, 4);
		h = 5;
	} else {
		return NULL;
	}
	if (len != h + n)
		return NULL;
	if (t >= 0xc4 && t <= 0xc6)
		return PyBytes_FromStringAndSize((const char *)p + h,
		    (Py_ssize_t)n);
	return PyUnicode_DecodeUTF8((const char *)p + h, (Py_ssize_t)n,
	    "strict");
}

PyObject *
unpack_result(const void *data, size_t len)
{
	PyObject *v;
	if (len == 0)
		Py_RETURN_NONE;
	if ((v = unpack_scalar(data, len)) != NULL || PyErr_Occurred())
		return v;
	return PyObject_CallFunction(g.decode, "y#", (const char *)data,
	    (Py_ssize_t)len);
}
