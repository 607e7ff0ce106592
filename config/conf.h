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

#include "sched_config.h"
#include "wrk_options.h"

#define CONF_MAX_LISTEN SCHED_MAX_LISTEN
#define CONF_MAX_GROUPS SCHED_MAX_GROUPS
#define CONF_MAX_LIBRARIES WRK_MAX_LIBRARIES
#define CONF_MAX_ROOTS WRK_MAX_ROOTS
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
	/*
	 * What `ferry worker -f FILE --group NAME` runs with.  From the
	 * group's keys (owned by the group): group (its name, required,
	 * unique, [A-Za-z0-9_.-]+), slots, prefetch, libraries (as written),
	 * object_roots (absolute), object_cache (0: "auto", a quarter of
	 * physical memory), memory_limit (0: "none"), max_tasks
	 * (max_tasks_per_process; 0: unlimited).  From the rest of the file
	 * (pointing into struct conf): connect (the address), library_dir
	 * (the file's directory), connect_timeout_ms, drain_timeout_ms,
	 * max_message_size, and the security files of workers and clients.
	 */
	struct wrk_options wrk;
	int processes;           /* worker processes; 0 means one per core */
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

	/*
	 * What `ferry scheduler -f FILE` runs with: the scheduler section
	 * (listen URLs with ${FERRY_RUNTIME_DIR} expanded, heartbeats,
	 * limits, task_defaults, function waits, drain_timeout, the
	 * journal with journal_path absolute: a relative one is taken in
	 * the state directory, conf_state_dir), the scheduler's half of
	 * the security section (tls_cert_key_file, tls_ca_file,
	 * require_client_cert, token_file: absolute paths) and the names of
	 * the worker groups.  The strings belong to struct conf; defaults
	 * are SCHED_CONFIG_DEFAULTS.
	 */
	struct sched_config sched;
	char *address; /* URL workers and clients dial; default listen[0];
	                * ${FERRY_RUNTIME_DIR} expanded */
	uint32_t connect_timeout_ms; /* default 10000 */
	char *scheduler_host; /* scheduler.host: run the scheduler there over
	                       * SSH; NULL: this machine */

	/* ssh: how cluster up reaches the hosts of scheduler.host and
	 * workers[].hosts */
	char *ssh_command[CONF_MAX_SSH_ARGS]; /* argv; the host and the
	                                       * command follow */
	size_t n_ssh_command;
	char *ssh_ferry; /* remote ferry binary, default "ferry" */

	/* security for workers and clients (docs/security.md), besides
	 * sched.tls_ca_file and sched.token_file; NULL: off */
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
 * "${FERRY_RUNTIME_DIR}" in scheduler.listen, scheduler.address,
 * scheduler.journal.path and cluster.state_dir is replaced by this user's
 * runtime directory (util_runtime_dir); any other "${...}" there is an
 * error.
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

/* Parse a journal sync mode ("always", "batch" or "none") into its
 * SCHED_SYNC_* value; -1 if s is none of them. */
int conf_parse_sync(const char *s);

/* The word of a SCHED_SYNC_* value ("batch"); "?" for another. */
const char *conf_sync_name(int mode);

/* Write the state directory for c into buf: c->state_dir when set, else
 * "RUNTIME/NAME", RUNTIME being this user's runtime directory
 * (util_runtime_dir: $FERRY_RUNTIME_DIR, $XDG_RUNTIME_DIR/ferry or
 * /tmp/ferry-UID).  Returns 0, or -1 if buf is too small or
 * FERRY_RUNTIME_DIR is not an absolute path. */
int conf_state_dir(const struct conf *c, char *buf, size_t len);

/*
 * The keys of a cluster file, in the schema's order, for documents and
 * their tests: for i = 0, 1, ... returns the i-th key's path
 * ("scheduler.listen", "workers[].slots", "workers[].hosts[].name") and
 * writes its default into def (deflen bytes) as docs/configuration.md
 * writes it ("`5s`", "(required)"); NULL past the last key.
 */
const char *conf_key(size_t i, char *def, size_t deflen);

/* Find group by name, or NULL. */
const struct conf_group *conf_group_find(const struct conf *c,
                                         const char *name);

#endif
