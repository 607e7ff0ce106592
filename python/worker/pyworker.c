/*
 * pyworker.c - the task library ferry_python: one CPython interpreter
 * embedded in a worker process, running the functions Python modules
 * mark @ferry.task (docs/python.md).
 *
 * The worker loads this library when its group names Python modules
 * (python.modules, --python-module), which reach it as the settings
 * "python.module" and "python.path".  At start, on the worker's main
 * thread: libpython is promoted to the global symbol scope (extension
 * modules such as numpy's do not link it themselves), the interpreter
 * starts without signal handlers of its own (the worker's crash
 * isolation stays in place), the path directories go first on sys.path,
 * ferry._worker imports the modules and returns every @ferry.task
 * function, and each is registered under its name with one C task
 * function, py_task, which finds the Python function by the task's name
 * in a table built here.  Then the GIL is released.
 *
 * A task takes the GIL once (each executor thread keeps its own thread
 * state), decodes its msgpack arguments into Python values, calls the
 * function, and packs the result, all in C (pyconv.c); an exception
 * fails the task with "Type: message" and the traceback.  A crash in
 * Python or an extension jumps out of all this through the worker's
 * crash handler, the GIL still held: the process reports the task and
 * exits without touching Python again.
 *
 * The interpreter is never finalized: the process exits with it (objects
 * task code keeps, memoryviews over mappings among them, go with it).
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pyworker.h"

#ifndef FERRY_PY_EXE
#define FERRY_PY_EXE "/usr/bin/python3"
#endif
#ifndef FERRY_PY_LIB_BUILD_DIR
#define FERRY_PY_LIB_BUILD_DIR ""
#endif
#ifndef FERRY_PY_BUILD_PKG
#define FERRY_PY_BUILD_PKG ""
#endif
#ifndef FERRY_PY_INSTALL_PKG
#define FERRY_PY_INSTALL_PKG ""
#endif

#define MSG_MAX 15000 /* bytes of a failure message (cut at a character) */

/* ------------------------------------------------ the function table */

struct pyfn {
	char     *name;
	size_t    len;
	uint64_t  hash;
	PyObject *fn;
};

/* Built at start, then only read (by any executor thread, no lock). */
static struct pyfn *fns;
static size_t       n_fns;
static uint32_t    *table; /* open addressing: index into fns + 1 */
static size_t       table_cap;

static uint64_t
name_hash(const char *s, size_t n)
{
	uint64_t h = 14695981039346656037ULL; /* FNV-1a */

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return h;
}

static const struct pyfn *
fn_find(const char *name)
{
	size_t   len = strlen(name);
	uint64_t h   = name_hash(name, len);

	if (table_cap == 0)
		return NULL;
	for (size_t j = h & (table_cap - 1); table[j] != 0;
	     j        = (j + 1) & (table_cap - 1)) {
		const struct pyfn *f = &fns[table[j] - 1];
		if (f->hash == h && f->len == len
		    && memcmp(f->name, name, len) == 0)
			return f;
	}
	return NULL;
}

/* Room for n functions.  Returns 0 or -1 (out of memory). */
static int
fns_alloc(size_t n)
{
	table_cap = 16;
	while (table_cap < 2 * n)
		table_cap *= 2;
	fns   = calloc(n > 0 ? n : 1, sizeof(*fns));
	table = calloc(table_cap, sizeof(*table));
	return fns != NULL && table != NULL ? 0 : -1;
}

/* Add fn (a new reference, kept) as name.  Returns 0 or -1 (out of
 * memory). */
static int
fns_add(const char *name, size_t len, PyObject *fn)
{
	struct pyfn *f = &fns[n_fns];
	size_t       j;

	if ((f->name = malloc(len + 1)) == NULL)
		return -1;
	memcpy(f->name, name, len);
	f->name[len] = '\0';
	f->len       = len;
	f->hash      = name_hash(name, len);
	f->fn        = fn;
	for (j = f->hash & (table_cap - 1); table[j] != 0;
	     j = (j + 1) & (table_cap - 1))
		;
	table[j] = (uint32_t)++n_fns;
	return 0;
}

/* ------------------------------------------------------------ tasks */

static PyObject *failure_fn; /* ferry._worker.failure */

/* Fail t with the exception set: "Type: message", a blank line and the
 * traceback (ferry._worker.failure), cut to MSG_MAX bytes. */
static int
fail_exception(ferry_task *t)
{
	PyObject   *type, *value, *tb, *msg = NULL;
	const char *s = NULL;
	Py_ssize_t  n = 0;

	PyErr_Fetch(&type, &value, &tb);
	PyErr_NormalizeException(&type, &value, &tb);
	if (value != NULL && tb != NULL)
		PyException_SetTraceback(value, tb);
	if (value != NULL)
		msg = PyObject_CallOneArg(failure_fn, value);
	if (msg != NULL && PyUnicode_Check(msg))
		s = PyUnicode_AsUTF8AndSize(msg, &n);
	PyErr_Clear();
	if (s != NULL) {
		if (n > MSG_MAX) {
			n = MSG_MAX;
			while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
				n--; /* not inside a character */
		}
		ferry_task_fail(t, "%.*s", (int)n, s);
	} else {
		ferry_task_fail(t,
		    "%s: the task raised %s, which could not be formatted",
		    ferry_task_name(t),
		    type != NULL ? ((PyTypeObject *)type)->tp_name
		                 : "an exception");
	}
	Py_XDECREF(msg);
	Py_XDECREF(type);
	Py_XDECREF(value);
	Py_XDECREF(tb);
	return -1;
}

/* Call f with t's arguments and pack its result (GIL held). */
static int
task_call(ferry_task *t, const struct pyfn *f, const msgpack_object *args)
{
	PyObject  *stack[8], **argv, *res;
	Py_ssize_t argc;
	int        rc;

	if (pyw_args_decode(
	        t, args, stack, sizeof(stack) / sizeof(stack[0]), &argv, &argc)
	    != 0)
		return PyErr_Occurred() ? fail_exception(t) : -1;
	res = PyObject_Vectorcall(f->fn, argv, (size_t)argc, NULL);
	pyw_args_free(stack, argv, argc);
	if (res == NULL)
		return fail_exception(t);
	rc = pyw_result_encode(ferry_task_packer(t), res);
	Py_DECREF(res);
	return rc == 0 ? 0 : fail_exception(t);
}

/* This thread's Python thread state, made by its first task and kept:
 * each later task only takes and releases the GIL. */
static __thread PyThreadState *tstate;

/* The C task function of every Python task. */
static int
py_task(ferry_task *t, const msgpack_object *args)
{
	const struct pyfn *f = fn_find(ferry_task_name(t));
	int                rc;

	if (f == NULL) /* registered only under the table's names */
		return ferry_task_fail(
		    t, "'%s' is not a Python task", ferry_task_name(t));
	if (tstate == NULL) {
		/* the counter stays at 1: the state is never deleted */
		(void)PyGILState_Ensure();
		tstate = PyThreadState_Get();
	} else {
		PyEval_RestoreThread(tstate);
	}
	rc = task_call(t, f, args);
	PyEval_SaveThread();
	return rc;
}

/* ------------------------------------------------------------ start */

/* Fail the start with the exception set: prefix, then its message
 * (a StartError's says it all) or the formatted exception. */
static int
fail_start(ferry_registry *reg, PyObject *start_error, const char *prefix)
{
	PyObject   *type, *value, *tb, *msg = NULL;
	const char *s = NULL;

	PyErr_Fetch(&type, &value, &tb);
	PyErr_NormalizeException(&type, &value, &tb);
	if (value != NULL && tb != NULL)
		PyException_SetTraceback(value, tb);
	if (value != NULL) {
		if (start_error != NULL
		    && PyObject_IsInstance(value, start_error) == 1)
			msg = PyObject_Str(value);
		else if (failure_fn != NULL)
			msg = PyObject_CallOneArg(failure_fn, value);
		else
			msg = PyObject_Str(value);
	}
	if (msg != NULL && PyUnicode_Check(msg))
		s = PyUnicode_AsUTF8(msg);
	PyErr_Clear();
	ferry_registry_fail(reg, "%s%s", prefix,
	    s != NULL ? s
	              : (type != NULL ? ((PyTypeObject *)type)->tp_name
	                              : "unknown error"));
	Py_XDECREF(msg);
	Py_XDECREF(type);
	Py_XDECREF(value);
	Py_XDECREF(tb);
	return -1;
}

/* Promote libpython (loaded with this library, locally) to the global
 * scope, for extension modules that expect its symbols there. */
static int
libpython_promote(ferry_registry *reg)
{
	Dl_info di;

	if (dladdr((void *)(uintptr_t)&Py_InitializeFromConfig, &di) == 0
	    || di.dli_fname == NULL)
		return ferry_registry_fail(reg,
		    "ferry_python: cannot find libpython's file (dladdr)");
	if (dlopen(di.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL) == NULL)
		return ferry_registry_fail(reg,
		    "ferry_python: cannot make %s global: %s", di.dli_fname,
		    dlerror());
	/* the handle stays open: libpython is never unloaded */
	return 0;
}

/* Start the interpreter: no signal handlers of its own, unbuffered
 * stdout and stderr, sys.executable the Python it was built for (so
 * that subprocesses of tasks run Python, not the worker). */
static int
interpreter_start(ferry_registry *reg)
{
	PyPreConfig pre;
	PyConfig    cfg;
	PyStatus    st;

	PyPreConfig_InitPythonConfig(&pre);
#if defined(__SANITIZE_ADDRESS__)
	/* every object from malloc, so that the sanitizer sees them, and
	 * its leak check follows references through them */
	pre.allocator = PYMEM_ALLOCATOR_MALLOC;
#endif
	st = Py_PreInitialize(&pre);
	if (PyStatus_Exception(st))
		return ferry_registry_fail(reg,
		    "ferry_python: cannot start Python: %s",
		    st.err_msg != NULL ? st.err_msg : "pre-initialization");
	PyConfig_InitPythonConfig(&cfg);
	cfg.install_signal_handlers = 0;
	cfg.parse_argv              = 0;
	/* what tasks print reaches the worker's log at once: the
	 * interpreter is never finalized to flush a buffer */
	cfg.buffered_stdio = 0;
	st = PyConfig_SetBytesString(&cfg, &cfg.program_name, FERRY_PY_EXE);
	if (!PyStatus_Exception(st))
		st = Py_InitializeFromConfig(&cfg);
	PyConfig_Clear(&cfg);
	if (PyStatus_Exception(st))
		return ferry_registry_fail(reg,
		    "ferry_python: cannot start Python: %s%s%s",
		    st.func != NULL ? st.func : "",
		    st.func != NULL ? ": " : "",
		    st.err_msg != NULL ? st.err_msg : "unknown error");
	return 0;
}

/* Whether this library runs from the build tree (its package is then
 * build/python, not the installed one). */
static int
in_build_tree(void)
{
	Dl_info di;
	char    self[PATH_MAX], dir[PATH_MAX], *slash;

	if (FERRY_PY_LIB_BUILD_DIR[0] == '\0'
	    || dladdr((void *)(uintptr_t)&in_build_tree, &di) == 0
	    || di.dli_fname == NULL || realpath(di.dli_fname, self) == NULL
	    || realpath(FERRY_PY_LIB_BUILD_DIR, dir) == NULL)
		return 0;
	if ((slash = strrchr(self, '/')) != NULL)
		*slash = '\0';
	return strcmp(self, dir) == 0;
}

/* Make the ferry package of this build importable: the build tree's
 * first, the installed one last (if sys.path lacks it). */
static int
package_path(void)
{
	int         front = in_build_tree();
	const char *dir   = front ? FERRY_PY_BUILD_PKG : FERRY_PY_INSTALL_PKG;
	PyObject   *path  = PySys_GetObject("path"), *d; /* borrowed */
	int         rc;

	if (dir[0] == '\0' || path == NULL || !PyList_Check(path))
		return 0;
	if ((d = PyUnicode_DecodeFSDefault(dir)) == NULL)
		return -1;
	rc = PySequence_Contains(path, d);
	if (rc == 0)
		rc = front ? PyList_Insert(path, 0, d)
		           : PyList_Append(path, d);
	Py_DECREF(d);
	return rc < 0 ? -1 : 0;
}

/* A list of the values of setting key; NULL with an exception. */
static PyObject *
settings_list(ferry_registry *reg, const char *key)
{
	PyObject   *l = PyList_New(0), *s;
	const char *v;

	for (size_t i = 0;
	     l != NULL && (v = ferry_registry_setting(reg, key, i)) != NULL;
	     i++) {
		if ((s = PyUnicode_DecodeFSDefault(v)) == NULL
		    || PyList_Append(l, s) != 0) {
			Py_XDECREF(s);
			Py_CLEAR(l);
			break;
		}
		Py_DECREF(s);
	}
	return l;
}

/* Register the (name, function) pairs of list items. */
static int
functions_register(ferry_registry *reg, PyObject *items)
{
	Py_ssize_t n = PyList_GET_SIZE(items);

	if (fns_alloc((size_t)n) != 0)
		return ferry_registry_fail(reg, "ferry_python: out of memory");
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject   *it = PyList_GET_ITEM(items, i), *fn;
		const char *name;
		Py_ssize_t  len;

		if (!PyTuple_Check(it) || PyTuple_GET_SIZE(it) != 2
		    || (name = PyUnicode_AsUTF8AndSize(
		            PyTuple_GET_ITEM(it, 0), &len))
		        == NULL) {
			PyErr_Clear();
			return ferry_registry_fail(reg,
			    "ferry_python: ferry._worker.start returned a bad "
			    "item");
		}
		fn = PyTuple_GET_ITEM(it, 1);
		Py_INCREF(fn);
		if (fns_add(name, (size_t)len, fn) != 0) {
			Py_DECREF(fn);
			return ferry_registry_fail(
			    reg, "ferry_python: out of memory");
		}
		if (ferry_register(reg, name, py_task) != 0)
			return ferry_registry_fail(reg,
			    "python task '%s' (%s): cannot register it: the "
			    "name is taken by another task library's "
			    "function, or not valid (see the message above)",
			    name, Py_TYPE(fn)->tp_name);
	}
	return 0;
}

/* Import ferry._worker and the modules; register their functions. */
static int
modules_import(ferry_registry *reg)
{
	PyObject *mod, *start_error = NULL, *start = NULL, *paths = NULL;
	PyObject *mods = NULL, *items = NULL;
	int       rc = -1;

	if (package_path() != 0
	    || (mod = PyImport_ImportModule("ferry._worker")) == NULL)
		return fail_start(reg, NULL,
		    "ferry_python: cannot import ferry._worker (the ferry "
		    "package of this build): ");
	failure_fn    = PyObject_GetAttrString(mod, "failure");
	pyw.ext_type  = PyObject_GetAttrString(mod, "ext_type");
	pyw.npy_array = PyObject_GetAttrString(mod, "npy_array");
	start_error   = PyObject_GetAttrString(mod, "StartError");
	start         = PyObject_GetAttrString(mod, "start");
	Py_DECREF(mod);
	if (failure_fn == NULL || pyw.ext_type == NULL || pyw.npy_array == NULL
	    || start_error == NULL || start == NULL || pyw_conv_init() != 0
	    || (paths = settings_list(reg, "python.path")) == NULL
	    || (mods = settings_list(reg, "python.module")) == NULL) {
		fail_start(reg, NULL, "ferry_python: ");
		goto out;
	}
	items = PyObject_CallFunctionObjArgs(start, paths, mods, NULL);
	if (items == NULL || !PyList_Check(items)) {
		fail_start(reg, start_error, "");
		goto out;
	}
	rc = functions_register(reg, items);
out:
	Py_XDECREF(items);
	Py_XDECREF(mods);
	Py_XDECREF(paths);
	Py_XDECREF(start);
	Py_XDECREF(start_error);
	return rc;
}

FERRY_LIBRARY_INIT(reg)
{
	if (ferry_registry_setting(reg, "python.module", 0) == NULL)
		return ferry_registry_fail(reg,
		    "ferry_python: no Python modules to import "
		    "(python.modules "
		    "in the cluster file, or --python-module)");
	if (Py_IsInitialized())
		return ferry_registry_fail(reg,
		    "ferry_python: Python is already running in this process");
	if (libpython_promote(reg) != 0 || interpreter_start(reg) != 0)
		return -1;
	if (modules_import(reg) != 0)
		return -1; /* the worker exits: the interpreter goes with it */
	/* release the GIL: executor threads take it per task */
	(void)PyEval_SaveThread();
	return 0;
}
