/*
 * pypath.c - where a value is, for the messages of ferry_python's
 * conversions: "args[0]['k']", "result[3]", and the exceptions that name
 * it.
 */
#include "pyworker.h"

/* One step of a path: "[3]", "['k']", " key 'k'". */
static PyObject *
path_step(PyObject *acc, const struct pyw_path *p)
{
	PyObject *s;

	if (p->is_key && p->key == NULL)
		s = PyUnicode_FromFormat("%U (a key)", acc);
	else if (p->is_key)
		s = PyUnicode_FromFormat("%U key %.60R", acc, p->key);
	else if (p->key != NULL)
		s = PyUnicode_FromFormat("%U[%.60R]", acc, p->key);
	else
		s = PyUnicode_FromFormat("%U[%zd]", acc, p->index);
	Py_DECREF(acc);
	return s;
}

/* The path as a str; a deep one shows its first and last steps. */
PyObject *
pyw_path_str(const struct pyw_path *p)
{
	const struct pyw_path *steps[PYW_MAX_DEPTH + 4];
	size_t                 n = 0;
	PyObject              *s;

	for (; p->up != NULL && n < PYW_MAX_DEPTH + 4; p = p->up)
		steps[n++] = p;
	while (p->up != NULL)
		p = p->up;
	if ((s = PyUnicode_FromString(p->root)) == NULL)
		return NULL;
	for (size_t i = n; i > 0 && s != NULL; i--) {
		if (n > 12 && i == n - 6) {
			PyObject *t = PyUnicode_FromFormat(
			    "%U...(%zu levels)...", s, n - 12);
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
int
pyw_path_fail(const struct pyw_path *p, PyObject *type, const char *fmt, ...)
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
	where = msg != NULL ? pyw_path_str(p) : NULL;
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
int
pyw_path_prefix(const struct pyw_path *p)
{
	PyObject *t, *v, *tb, *where;

	PyErr_Fetch(&t, &v, &tb);
	PyErr_NormalizeException(&t, &v, &tb);
	if ((where = pyw_path_str(p)) != NULL) {
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
PyObject *
pyw_type_name(PyObject *o)
{
	PyObject *tp = (PyObject *)Py_TYPE(o), *mod, *qual, *s;

	mod  = PyObject_GetAttrString(tp, "__module__");
	qual = mod != NULL ? PyObject_GetAttrString(tp, "__qualname__") : NULL;
	if (qual == NULL) {
		Py_XDECREF(mod);
		PyErr_Clear();
		return PyUnicode_FromString(Py_TYPE(o)->tp_name);
	}
	if (PyUnicode_Check(mod)
	    && PyUnicode_CompareWithASCIIString(mod, "builtins") != 0)
		s = PyUnicode_FromFormat("%U.%S", mod, qual);
	else
		s = PyUnicode_FromFormat("%S", qual);
	Py_DECREF(mod);
	Py_DECREF(qual);
	return s;
}
