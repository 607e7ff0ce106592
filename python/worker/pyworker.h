/*
 * pyworker.h - the task library ferry_python's private half: what its
 * start and task calls (pyworker.c) share with the conversions between
 * msgpack and Python values (pyconv.c).
 *
 * Every function here is called with the GIL held.
 */
#ifndef FERRY_PYWORKER_H
#define FERRY_PYWORKER_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "ferry/task.h"

/* What the conversions take from ferry._worker, set once at start (new
 * references, kept for the process's life). */
struct pyw_env {
	PyObject *ext_type;  /* ext_type(): the class ExtType(code, data) of
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
