/*
 * wrk_options.h - what a worker process (and its supervisor) is started
 * with, and its defaults.
 *
 * Apart from worker.h so that the cluster-file loader (config/) can embed
 * a struct wrk_options per worker group without pulling in the worker.
 */
#ifndef FERRY_WRK_OPTIONS_H
#define FERRY_WRK_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#define WRK_MAX_LIBRARIES 32
#define WRK_MAX_ROOTS 16
#define WRK_MAX_PYTHON 32 /* python modules, python path dirs */

/* Every string is borrowed: whoever fills the struct keeps them alive
 * while the worker runs (the loader's struct conf owns those it fills). */
struct wrk_options {
	const char *connect;        /* scheduler URL */
	const char *name;           /* shown in status, default host-pid */
	const char *group;          /* worker group name */
	const char *libraries[WRK_MAX_LIBRARIES];
	size_t      n_libraries;
	const char *library_dir;    /* base for relative library paths */
	const char *object_roots[WRK_MAX_ROOTS]; /* where objects may be */
	size_t      n_object_roots;
	/* Python task modules (`python: {modules, path}`): a group that
	 * names modules loads the task library ferry_python, which imports
	 * them with the path directories first on sys.path */
	const char *python_modules[WRK_MAX_PYTHON];
	size_t      n_python_modules;
	const char *python_path[WRK_MAX_PYTHON];
	size_t      n_python_path;
	size_t      object_cache;   /* cache budget in bytes; 0: auto */
	int         slots;          /* default 1 */
	int         prefetch;       /* default 1024 */
	uint32_t    connect_timeout_ms;
	uint32_t    drain_timeout_ms;
	size_t      max_message_size;
	int         parent_pid;     /* exit when this process goes away */
	size_t      memory_limit;   /* supervisor: kill a process whose
	                             * anonymous memory (RssAnon) exceeds
	                             * this many bytes; 0: none */
	uint64_t    max_tasks;      /* a process exits (recycled) after this
	                             * many tasks; 0: never */
	/* set by the supervisor for the processes it starts */
	uint64_t    supervisor_token; /* sent in hello; 0: none */
	int         slot_table_fd;  /* the shared slot table, -1: none */
	/* security (docs/security.md); NULL: not used */
	const char *tls_ca_file;       /* CA to verify the scheduler */
	const char *tls_cert_key_file; /* own certificate + key */
	const char *tls_server_name;   /* default: the URL's host */
	const char *token_file;        /* the shared token */
};

/* The defaults, written once: an initializer for a struct wrk_options.
 * wrk_options_defaults() and the cluster-file loader (a worker group's
 * settings) both start from it. */
#define WRK_OPTIONS_DEFAULTS                                           \
	{                                                                  \
		.group              = "default",                           \
		.slots              = 1,                                   \
		.prefetch           = 1024,                                \
		.connect_timeout_ms = 10000,                               \
		.drain_timeout_ms   = 10000,                               \
		.max_message_size   = (size_t)64 << 20,                    \
		.slot_table_fd      = -1,                                  \
	}

/* Fill o with the defaults (WRK_OPTIONS_DEFAULTS). */
void wrk_options_defaults(struct wrk_options *o);

#endif
