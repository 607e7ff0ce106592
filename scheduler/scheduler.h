/*
 * scheduler.h - the Ferry scheduler: one event loop that owns the task table,
 * the queue, the worker registry, client sessions and their results.
 */
#ifndef FERRY_SCHED_H
#define FERRY_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "sched_config.h"

/* Task states (see docs/protocol.md, "Life of a task"). */
enum sched_task_state {
	TASK_QUEUED = 0,
	TASK_ASSIGNED,
	TASK_DONE,
	TASK_FAILED,
	TASK_CANCELLED,
	TASK_DELAYED, /* failed, waiting for its retry backoff */
	TASK_DEAD,    /* quarantined after killing worker processes */
	TASK_WAITING, /* for the tasks its arguments refer to (graph.c) */
	TASK_STATE_MAX,
};

/* Not a state a task is in: where its first transition (to queued) comes
 * from, as observers see it. */
#define TASK_SUBMITTED TASK_STATE_MAX
/* Not a state either: where the first transition of a task read back
 * from the journal comes from. */
#define TASK_RESTORED (TASK_SUBMITTED + 1)

/*
 * Run a scheduler until SIGINT or SIGTERM.  The first signal drains: new
 * submissions are refused, nothing more is dispatched, running tasks
 * finish and connected clients get their results, for up to
 * drain_timeout_ms; a second signal stops at once.  Returns 0 after a
 * clean shutdown, or non-zero after logging why it could not start (for
 * example "listen tcp://127.0.0.1:7710: address in use").
 */
int sched_run(const struct sched_config *c);

/* Name of a task state ("queued"). */
const char *sched_state_name(int state);

/* Whether the task life cycle allows from -> to. */
int sched_transition_ok(int from, int to);

/*
 * The delay before the n-th retry (n >= 1): base doubled n-1 times,
 * capped at cap, then scaled by a factor in [0.5, 1] taken from the low
 * 16 bits of rnd16 (jitter).
 */
uint64_t sched_backoff_ms(uint32_t base, uint32_t cap, uint32_t n,
    uint32_t rnd16);

enum sched_verdict { SCHED_RETRY = 1, SCHED_FAIL, SCHED_DEAD };

/*
 * What happens to a task after a failed run (docs/protocol.md 4.13):
 * kills and failures already count this run; killed says the run killed
 * its worker process; retryable whether this kind of failure may be
 * retried at all.  Dead once kills reach quarantine_after, else a retry
 * while failures <= retries, else failed.
 */
int sched_verdict(uint32_t kills, uint32_t failures, uint32_t retries,
    uint32_t quarantine_after, int killed, int retryable);

#endif
