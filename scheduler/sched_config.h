/*
 * sched_config.h - what a scheduler is started with, and its defaults.
 *
 * Apart from scheduler.h so that the cluster-file loader (config/) can
 * embed a struct sched_config without pulling in the scheduler.
 */
#ifndef FERRY_SCHED_CONFIG_H
#define FERRY_SCHED_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define SCHED_MAX_LISTEN 8
#define SCHED_MAX_GROUPS 64

enum { SCHED_SYNC_ALWAYS, SCHED_SYNC_BATCH, SCHED_SYNC_NONE };

/* Every string is borrowed: whoever fills the struct keeps them alive
 * while the scheduler runs (the loader's struct conf owns those it
 * fills). */
struct sched_config {
	const char *listen[SCHED_MAX_LISTEN];
	size_t      n_listen;
	uint32_t    heartbeat_interval_ms;
	uint32_t    heartbeat_timeout_ms;
	size_t      max_message_size;
	size_t      max_queue;
	size_t      max_results;
	uint32_t    result_ttl_ms;
	size_t      max_result_bytes;    /* bytes of stored results, 1 GiB */
	/* task failure defaults (a submit entry's options override them) */
	uint32_t    task_retries;        /* default 3 */
	uint32_t    task_backoff_ms;     /* default 100 */
	uint32_t    task_backoff_max_ms; /* default 10000 */
	uint32_t    task_timeout_ms;     /* default 0: none */
	int         task_retry_errors;   /* default 0 */
	uint32_t    quarantine_after;    /* kills that make a task dead, 3 */
	uint32_t    report_grace_ms;     /* wait for a supervisor's report,
	                                  * default 500 */
	/* tasks whose function no connected worker runs wait; they fail
	 * after function_wait_ms (0: never) once its last worker is gone,
	 * or after unknown_function_wait_ms (30000) for a name no worker
	 * ever registered, counted while every configured group is up */
	uint32_t    function_wait_ms;
	uint32_t    unknown_function_wait_ms;
	const char *groups[SCHED_MAX_GROUPS]; /* the configured worker
	                                       * groups, if known */
	size_t      n_groups;
	uint32_t    drain_timeout_ms;    /* on SIGTERM, how long running
	                                  * tasks may finish and their
	                                  * results reach clients, 30000 */
	/* the write-ahead journal (docs/reliability.md): with a path, the
	 * scheduler restores from it before it listens and records every
	 * change of state there; sync says when an answer may leave */
	const char *journal_path;      /* a directory; NULL: no journal */
	int         journal_sync;      /* SCHED_SYNC_ALWAYS (default):
	                                * answers wait for the disk;
	                                * SCHED_SYNC_BATCH: a sync at least
	                                * every journal_window_ms, answers at
	                                * once; SCHED_SYNC_NONE: no journal */
	uint32_t    journal_window_ms; /* batch: the window of loss, 10 */
	size_t      journal_max_size;  /* the most it may take (then
	                                * submissions are refused), 16 GiB */
	uint32_t    restore_wait_ms;   /* after a restart, how long restored
	                                * tasks wait for the workers that
	                                * held them to report, 3000 */
	const char *ready_file; /* written once listening, or NULL */
	/* security (docs/security.md); NULL: off */
	const char *tls_cert_key_file; /* for tls+tcp:// listeners */
	const char *tls_ca_file;       /* CA of client certificates */
	int         require_client_cert; /* mutual TLS */
	const char *token_file;        /* peers must send this token */
};

/* The defaults, written once: an initializer for a struct sched_config
 * (no listen addresses).  sched_config_defaults() and the cluster-file
 * loader (config/conf.c, whose keys document them) both start from it. */
#define SCHED_CONFIG_DEFAULTS                                          \
	{                                                                  \
		.heartbeat_interval_ms    = 1000,                          \
		.heartbeat_timeout_ms     = 5000,                          \
		.max_message_size         = (size_t)64 << 20,              \
		.max_queue                = 1000000,                       \
		.max_results              = 1000000,                       \
		.result_ttl_ms            = 600000,                        \
		.max_result_bytes         = (size_t)1 << 30,               \
		.task_retries             = 3,                             \
		.task_backoff_ms          = 100,                           \
		.task_backoff_max_ms      = 10000,                         \
		.task_timeout_ms          = 0,                             \
		.task_retry_errors        = 0,                             \
		.quarantine_after         = 3,                             \
		.report_grace_ms          = 500,                           \
		.drain_timeout_ms         = 30000,                         \
		.function_wait_ms         = 0,                             \
		.unknown_function_wait_ms = 30000,                         \
		.journal_sync             = SCHED_SYNC_ALWAYS,             \
		.journal_window_ms        = 10,                            \
		.journal_max_size         = (size_t)16 << 30,              \
		.restore_wait_ms          = 3000,                          \
	}

/* Fill c with the defaults (SCHED_CONFIG_DEFAULTS). */
void sched_config_defaults(struct sched_config *c);

#endif
