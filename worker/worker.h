/*
 * worker.h - the worker: task libraries, worker processes and their
 * supervisor.
 */
#ifndef FERRY_WORKER_H
#define FERRY_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "ferry/task.h"
#include "wrk_options.h"

struct objcache;
struct obj_entry;

#define WRK_MAX_LOADERS 32

/* ---- task libraries (registry.c) ---- */

/* The task library that runs Python task functions: loaded after the
 * group's libraries when it names Python modules. */
#define WRK_PYTHON_LIBRARY "ferry_python"

struct wrk_fn {
	char         *name;
	ferry_task_fn fn;
	uint64_t      hash;
};

struct ferry_registry {
	struct wrk_fn *fns;
	size_t         n, cap;
	size_t        *table; /* open-addressed index into fns, +1 */
	size_t         table_cap;
	const char    *loading; /* library being initialised (for messages) */
	char          *fail;    /* why its init failed (ferry_registry_fail),
	                         * malloc'd, or NULL */
	const struct wrk_options *opts; /* the settings libraries see
	                                 * (ferry_registry_setting); may be
	                                 * NULL */
	void          *handles[WRK_MAX_LIBRARIES];
	size_t         n_handles;
	/* loaders task libraries registered */
	struct wrk_loader {
		char              name[64];
		ferry_loader_fn   load;
		ferry_unloader_fn unload;
	} loaders[WRK_MAX_LOADERS];
	size_t n_loaders;
};

/* Initialise / release a registry (release unloads its libraries).
 * opts (NULL: none) answers ferry_registry_setting(). */
void wrk_registry_init(struct ferry_registry *r,
    const struct wrk_options *opts);
void wrk_registry_fini(struct ferry_registry *r);

/*
 * Resolve spec to a shared object path: a spec containing '/' is a path
 * (relative ones against base_dir, which may be NULL for the current
 * directory); a bare name is looked up as lib<name>.so, <name>.so and
 * <name> in $FERRY_LIBRARY_PATH, next to the ferry binary's build tree
 * (../examples, ../python/worker), and in the install's library
 * directory.  Returns 0 and
 * the path in out, or -1 with a message in err.
 */
int wrk_library_resolve(const char *spec, const char *base_dir, char *out,
    size_t outlen, char *err, size_t errlen);

/* Load the library at path and run its ferry_library_init() (a library
 * already loaded is not initialised again).  Returns 0, or -1 with a
 * message naming the library and the cause. */
int wrk_library_load(struct ferry_registry *r, const char *path, char *err,
    size_t errlen);

/* The function registered as name (len bytes), or NULL. */
ferry_task_fn wrk_registry_find(const struct ferry_registry *r,
    const char *name, size_t len);

/* ---- the task context the API in task.h sees (task_api.c) ---- */

#define WRK_MAX_PINS 16

struct ferry_task {
	uint64_t          id;
	const char       *name;
	msgpack_sbuffer   out;       /* the result being packed */
	msgpack_packer    pk;
	char              err[16384]; /* set by ferry_task_fail (room for
	                               * a Python traceback) */
	int               failed;
	int               crashed;   /* the run faulted (see executor.c) */
	int               code;      /* error code when failed (0: ETASK) */
	struct objcache  *cache;     /* the process's object cache */
	struct obj_entry *pins[WRK_MAX_PINS]; /* objects held by the task */
	int               n_pins;
};

/* ---- one worker process (process.c) ----
 *
 * struct wrk_options, its defaults and wrk_options_defaults() are in
 * wrk_options.h. */

/*
 * Exit statuses of a worker process (`ferry worker-process`); the
 * supervisor decides by them what to report and how to restart, but only
 * when the process declared the status in its slot table before exiting
 * (wrk_slots_set_exit): a task can call exit() with any of them.
 */
enum wrk_exit {
	WRK_EXIT_OK       = 0, /* drained (SIGTERM) or the supervisor left */
	WRK_EXIT_ERROR    = 1, /* a system error (threads, sockets) */
	WRK_EXIT_CONFIG   = 2, /* cannot start: bad library, options: the
	                        * supervisor stops instead of restarting */
	WRK_EXIT_LOST     = 3, /* gave up on the scheduler's connection */
	WRK_EXIT_CRASHED  = 4, /* a task crashed; it was reported as
	                        * FERRY_ECRASHED before exiting */
	WRK_EXIT_RECYCLED = 5, /* ran max_tasks tasks and drained: replace
	                        * at once */
};

/* Run one worker process until SIGTERM (drain) or SIGINT; returns the
 * process exit status. */
int wrk_process_run(const struct wrk_options *o);

/* ---- the supervisor: `ferry worker` (supervisor.c) ---- */

/*
 * Start `processes` worker processes (each a fresh exec of self_exe with
 * argv built from o) and keep them running: one that dies is restarted
 * with exponential backoff.  On SIGTERM or SIGINT, asks them to drain,
 * waits up to o->drain_timeout_ms, then kills what is left.  Returns the
 * exit status.
 */
int wrk_supervise(const struct wrk_options *o, int processes,
    const char *self_exe);

#endif
