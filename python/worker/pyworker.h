/*
 * pyworker.h - the task library ferry_python's private half: what its
 * start and task calls (pyworker.c) share with the conversions between
 * msgpack and Python values (pydecode.c, pyencode.c) and the paths
 * their messages name (pypath.c).
 *
 * Every function here is called with the GIL held.
 */
#ifndef FERRY_PYWORKER_H
#define FERRY_PYWORKER_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "ferry/task.h"

#define PYW_MAX_DEPTH 512 /* of nested lists and dicts */

/* Where a value is, for messages: "args[0]['k']", "result[3]"; each
 * step of a conversion's recursion adds one on its stack. */
struct pyw_path {
	const struct pyw_path *up;
	const char            *root; /* at the top: "args", "result" */
	Py_ssize_t             index; /* [index], unless key */
	PyObject              *key; /* [key] (borrowed) */
	int                    is_key; /* the key itself: "... key 'k'",
	                                * or "... (a key)" while key is
	                                * NULL */
};

/* ---- pypath.c ---- */

/* The path as a str (a deep one shows its first and last steps); a new
 * reference, or NULL with an exception. */
PyObject *pyw_path_str(const struct pyw_path *p);

/* Raise type("PATH: message"); an exception already set becomes its
 * cause (so a failure inside user code keeps its traceback).  Returns
 * -1. */
int pyw_path_fail(
    const struct pyw_path *p, PyObject *type, const char *fmt, ...);

/* Put "PATH: " in front of the message of the exception set, keeping
 * its type (for errors whose own message says the rest).  Returns -1. */
int pyw_path_prefix(const struct pyw_path *p);

/* "module.QualName" of o's type ("set" for builtins); a new reference,
 * or NULL with an exception. */
PyObject *pyw_type_name(PyObject *o);

/* ---- pydecode.c, pyencode.c ---- */

/* What the conversions take from ferry._worker, set once at start (new
 * references, kept for the process's life). */
struct pyw_env {
	PyObject *ext_type; /* ext_type(): the class ExtType(code, data) of
	                     * other ext types */
	PyObject *npy_array; /* npy_array(view, path): a .npy file's array */
	PyObject *ferry_ext; /* the interned name "__ferry_ext__" */
};

extern struct pyw_env pyw;

/* Ready the conversions (the object mapping type).  Returns 0, or -1
 * with a Python exception set. */
int pyw_conv_init(void);

/*
 * Decode a task's arguments: a msgpack array is the positional
 * arguments, nil none.  *argv gets argc new references, in stack (room
 * for n_stack) or allocated; free them with pyw_args_free.  An object
 * reference is held by the value made of it (a read-only memoryview, or
 * an ndarray for a .npy file) until Python frees that value.  Returns
 * 0, or -1 with a Python exception set (naming where: "args[1]['k']:
 * ...") or, for an object reference that cannot be held, the task
 * already failed (ferry_task_fail) and no exception set.
 */
int pyw_args_decode(ferry_task *t, const msgpack_object *args,
    PyObject **stack, size_t n_stack, PyObject ***argv, Py_ssize_t *argc);

/* Drop the references pyw_args_decode made. */
void pyw_args_free(PyObject **stack, PyObject **argv, Py_ssize_t argc);

/* Pack value as exactly one msgpack value into pk (see docs/python.md
 * for the mapping).  Returns 0, or -1 with a Python exception set that
 * names what could not be encoded and where ("result[2]['x']: ..."). */
int pyw_result_encode(msgpack_packer *pk, PyObject *value);

#endif
