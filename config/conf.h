/*
 * conf.h - the YAML cluster file: schema, defaults and validation.
 *
 * A cluster file describes one Ferry cluster: where the scheduler listens,
 * which worker groups run and with which task libraries, timeouts and
 * limits.  conf_load() reads and validates a whole file; every error names
 * the file, the line and column, and the key.  See docs/configuration.md.
 */
#ifndef FERRY_CONF_H
#define FERRY_CONF_H

#include <stddef.h>
#include <stdint.h>

#define CONF_MAX_LISTEN 8
#define CONF_MAX_GROUPS 64
#define CONF_MAX_LIBRARIES 32
#define CONF_MAX_ROOTS 16
#define CONF_MAX_HOSTS 256    /* hosts of one worker group */
#define CONF_MAX_SSH_ARGS 32  /* words of ssh.command */

/* One host of a worker group (cluster up starts its supervisor over SSH).
 * NULL / 0 fields fall back to the group's or the ssh section's values. */
struct conf_host {
	char *name;          /* what the ssh command is given: host, user@host */
	char *ferry;         /* remote ferry binary; NULL: ssh.ferry */
	char *object_roots[CONF_MAX_ROOTS]; /* absolute; used when
	                                     * n_object_roots > 0 */
	size_t n_object_roots;
	char *libraries[CONF_MAX_LIBRARIES]; /* used when n_libraries > 0 */
	size_t n_libraries;
	char *library_dir;   /* where relative library paths resolve on the
	                      * host; NULL: the cluster file's directory */
};

/* One worker group: a set of identical worker processes. */
struct conf_group {
	char *name;           /* required, unique, [A-Za-z0-9_.-]+ */
	int processes;        /* worker processes; 0 means one per core */
	int slots;            /* tasks a process runs at once (threads) */
	int prefetch;         /* queued tasks a process may hold beyond its
	                       * running ones */
	char *libraries[CONF_MAX_LIBRARIES]; /* task libraries, as written */
	size_t n_libraries;
	char *object_roots[CONF_MAX_ROOTS]; /* absolute directories objects
	                                     * may be loaded from */
	size_t n_object_roots;
	size_t object_cache;  /* byte budget per process; 0: "auto" (a
	                       * quarter of physical memory) */
	size_t memory_limit;  /* resident bytes a process may use before
	                       * its supervisor kills it; 0: "none" */
	uint64_t max_tasks_per_process; /* tasks after which a process is
	                                 * replaced; 0: unlimited */
	struct conf_host *hosts; /* hosts to run the group on over SSH;
	                          * n_hosts == 0: this machine */
	size_t n_hosts;
};

struct conf {
	char *path;      /* the file this was loaded from (absolute) */
	char *dir;       /* its directory (relative library paths resolve
	                  * against it) */
	char *name;      /* cluster name, default "local" */
	char *state_dir; /* where `cluster up` keeps pids, logs, addresses
	                  * (${FERRY_RUNTIME_DIR} expanded); NULL means
	                  * the default (see conf_state_dir) */
	int log_level;   /* LOG_ERROR..LOG_DEBUG from common/log.h */

	/* scheduler */
	char *listen[CONF_MAX_LISTEN]; /* NNG URLs: tcp://, ipc://, ...;
	                                * ${FERRY_RUNTIME_DIR} expanded */
	size_t n_listen;
	char *address; /* URL workers and clients dial; default listen[0];
	                * ${FERRY_RUNTIME_DIR} expanded */
	uint32_t heartbeat_interval_ms; /* default 1000 */
	uint32_t heartbeat_timeout_ms;  /* default 5000 */
	uint32_t connect_timeout_ms;    /* default 10000 */
	uint32_t drain_timeout_ms;      /* default 30000 */
	uint32_t function_wait_ms;      /* tasks of a function whose workers
	                                 * are all gone fail after this;
	                                 * 0 (default): never */
	uint32_t unknown_function_wait_ms; /* the same for a function no
	                                    * worker registered, default
	                                    * 30000 */
	size_t max_message_size;        /* bytes, default 64 MiB */
	size_t max_queue;               /* queued tasks, default 1000000 */
	size_t max_results;             /* undelivered results kept,
	                                 * default 1000000 */
	uint32_t result_ttl_ms;         /* how long results of a
	                                 * disconnected client are kept,
	                                 * default 600000 */
	size_t max_result_bytes;        /* bytes of undelivered results
	                                 * kept, default 1 GiB */
	uint32_t quarantine_after;      /* kills after which a task is
	                                 * dead, 1..100, default 3 */

	/* scheduler.task_defaults: failure handling of tasks whose submit
	 * entry does not say (docs/protocol.md section 4.13) */
	uint32_t task_retries;        /* 0..1000, default 3 */
	uint32_t task_backoff_ms;     /* first retry delay, default 100 */
	uint32_t task_backoff_max_ms; /* cap of the delay, >= backoff,
	                               * default 10000 */
	uint32_t task_timeout_ms;     /* hard timeout of one run, 0: none
	                               * (the default) */
	int task_retry_errors;        /* 1: retry FERRY_ETASK too,
	                               * default 0 */

	char *scheduler_host; /* scheduler.host: run the scheduler there over
	                       * SSH; NULL: this machine */

	/* ssh: how cluster up reaches the hosts of scheduler.host and
	 * workers[].hosts */
	char *ssh_command[CONF_MAX_SSH_ARGS]; /* argv; the host and the
	                                       * command follow */
	size_t n_ssh_command;
	char *ssh_ferry; /* remote ferry binary, default "ferry" */

	/* security: TLS and the shared token (docs/security.md); NULL / 0:
	 * off.  Paths are absolute: relative ones in the file resolve
	 * against its directory.  Whether the files exist is checked where
	 * they are used. */
	char *token_file;               /* security.token_file */
	char *tls_cert_key_file;        /* security.tls.cert_key_file: the
	                                 * scheduler's certificate + key */
	char *tls_ca_file;              /* security.tls.ca_file */
	int   tls_require_client_cert;  /* security.tls.require_client_cert */
	char *tls_client_cert_key_file; /* security.tls.client_cert_key_file:
	                                 * workers' and clients' own */
	char *tls_server_name;          /* security.tls.server_name */

	struct conf_group groups[CONF_MAX_GROUPS];
	size_t n_groups;
};

/* Set every field of c to its default (no groups, no listen address and
 * no address: a cluster file must name them). */
void conf_defaults(struct conf *c);

/*
 * Load and validate the cluster file at path into c (which need not be
 * initialised).  Returns 0 on success.  On failure returns -1, writes a
 * message of the form "FILE:LINE:COLUMN: key 'KEY': PROBLEM" into err
 * (errlen bytes, always NUL-terminated) and leaves c freed (safe to pass to
 * conf_free).  The caller frees a loaded c with conf_free().
 * "${FERRY_RUNTIME_DIR}" in scheduler.listen, scheduler.address and
 * cluster.state_dir is replaced by this user's runtime directory
 * (util_runtime_dir); any other "${...}" there is an error.
 */
int conf_load(const char *path, struct conf *c, char *err, size_t errlen);

/* Free everything c owns; c may be zeroed or partially loaded. */
void conf_free(struct conf *c);

/* Parse a duration ("250ms", "5s", "2m", "1h", or a bare integer of
 * milliseconds) into *ms.  Returns 0, or -1 if the text is not one. */
int conf_parse_duration(const char *s, uint32_t *ms);

/* Parse a size ("4096", "64KiB", "64MiB", "1GiB", also "kB"/"MB"/"GB" as
 * powers of 1000) into *bytes.  Returns 0, or -1 if the text is not one. */
int conf_parse_size(const char *s, size_t *bytes);

/* Write the state directory for c into buf: c->state_dir when set, else
 * "RUNTIME/NAME", RUNTIME being this user's runtime directory
 * (util_runtime_dir: $FERRY_RUNTIME_DIR, $XDG_RUNTIME_DIR/ferry or
 * /tmp/ferry-UID).  Returns 0, or -1 if buf is too small or
 * FERRY_RUNTIME_DIR is not an absolute path. */
int conf_state_dir(const struct conf *c, char *buf, size_t len);

/* Find group by name, or NULL. */
const struct conf_group *conf_group_find(const struct conf *c,
                                         const char *name);

#endif
