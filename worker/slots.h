/*
 * slots.h - the slot table a worker process shares with its supervisor.
 *
 * The supervisor creates one table per worker process (a memfd, mapped
 * shared on both sides) and hands it over at spawn.  The worker writes,
 * per executor slot, the scheduler id of the task it runs with the run's
 * start time and deadline, then, once the task returned, its id as
 * "returned" until the scheduler acknowledged its result; in the header,
 * the worker id it registered as, the exit status it is about to exit
 * with by its own decision, and what stopped its own code (not a task's).
 * The supervisor reads them to enforce timeouts and to say, when the
 * process dies, which tasks died with it and which one to blame: the
 * table, not the exit status, says whether a task was running, since a
 * task can call exit() with any status.  The supervisor writes the other
 * way only the ids of tasks the scheduler cancelled, so that the worker
 * skips them if they have not started.
 *
 * Every shared field is a C11 atomic (64-bit, lock-free, so usable across
 * processes).  Cancelling follows Dekker's pattern with sequentially
 * consistent accesses: the worker stores its slot THEN loads the cancel
 * list; the supervisor stores into the cancel list THEN loads the slots.
 * At least one of them sees the other's store, so a cancelled task is
 * either skipped by the worker or seen running by the supervisor (both may
 * happen: then a process that was about to skip the task is killed).
 *
 * Times are util_now_ms() (CLOCK_MONOTONIC, the same in every process).
 */
#ifndef FERRY_SLOTS_H
#define FERRY_SLOTS_H

#include <stddef.h>
#include <stdint.h>

/* Ids of cancelled tasks a table remembers (a ring: the oldest are
 * forgotten first; a task cancelled that long before it starts runs and
 * its result is dropped as late by the scheduler). */
#define WRK_SLOTS_CANCEL_RING 1024

/* The file descriptor a supervised worker process finds its table on. */
#define WRK_SLOTS_FD 3

struct wrk_slots;

/* One slot as read by wrk_slots_read(). */
struct wrk_slot_info {
	uint64_t task;        /* scheduler task id; 0: idle */
	uint64_t started_ms;  /* when the run started */
	uint64_t deadline_ms; /* when it must have ended; 0: no timeout */
	uint64_t returned;    /* the oldest task that returned here and
	                       * whose result is not acknowledged; 0: none */
};

/*
 * Create a table of n_slots slots in a new memfd (close-on-exec) and map
 * it.  Returns 0 with the table in *out and the memfd in *fd (the caller
 * passes it to the child and closes it; the mapping stays valid), or -1
 * with a message in err.
 */
int wrk_slots_create(struct wrk_slots **out, uint32_t n_slots, int *fd,
    char *err, size_t errlen);

/*
 * Map the table on fd (created by wrk_slots_create, here or in another
 * process); it must have at least min_slots slots.  The fd may be closed
 * afterwards.  Returns 0 and the table in *out, or -1 with a message.
 */
int wrk_slots_attach(struct wrk_slots **out, int fd, uint32_t min_slots,
    char *err, size_t errlen);

/* Unmap and free a table (NULL is fine).  The other side's mapping stays
 * valid. */
void wrk_slots_free(struct wrk_slots *s);

/* Number of slots. */
uint32_t wrk_slots_count(const struct wrk_slots *s);

/* ---- the worker's side ---- */

/* Record the worker id the process registered as (after each welcome). */
void wrk_slots_set_worker(struct wrk_slots *s, uint64_t worker_id);

/*
 * Claim slot for task (non-zero) before running it: write the slot, then
 * check the cancel list.  Returns 0: run it (call wrk_slots_end after);
 * 1: the task was cancelled, do not run it (the slot is already idle).
 */
int wrk_slots_begin(struct wrk_slots *s, uint32_t slot, uint64_t task,
    uint64_t started_ms, uint64_t deadline_ms);

/* Mark slot idle after its task ended (record it as returned first). */
void wrk_slots_end(struct wrk_slots *s, uint32_t slot);

/* Set the returned task of slot (0: none): the oldest task that ran there
 * and whose result the scheduler has not acknowledged. */
void wrk_slots_set_returned(struct wrk_slots *s, uint32_t slot,
    uint64_t task);

/* The returned task of slot (0: none). */
uint64_t wrk_slots_returned(const struct wrk_slots *s, uint32_t slot);

/* Say that the process exits because it was recycled (max tasks), so the
 * supervisor does not take the exit status alone for it. */
void wrk_slots_set_recycled(struct wrk_slots *s);

/* Whether the supervisor said, before a stop signal, that it sends it
 * (a living supervisor draining; else the signal may be the kernel's
 * word that the supervisor died). */
int wrk_slots_drain_asked(const struct wrk_slots *s);

/* Declare, just before exiting, the exit status the process chose; the
 * supervisor believes a status with a meaning (enum wrk_exit) only when it
 * was declared, so that a task calling exit(N) cannot pass for it. */
void wrk_slots_set_exit(struct wrk_slots *s, int status);

/* A fault that is not a signal: the process found its descriptors closed
 * under it (by a task). */
#define WRK_SLOTS_FAULT_FDS 1000

/* Record that signal sig (or WRK_SLOTS_FAULT_FDS) stopped the worker's own
 * code, outside any task run; the first one recorded stays.
 * Async-signal-safe: for a fatal-signal handler. */
void wrk_slots_set_fault(struct wrk_slots *s, int sig);

/* ---- the supervisor's side ---- */

/* The worker id last recorded (0: not registered yet). */
uint64_t wrk_slots_worker(const struct wrk_slots *s);

/* Read slot consistently (task, start and deadline of one run, and the
 * task returned there last, if not acknowledged).  Returns 1 if a task is
 * running in it, 0 if idle. */
int wrk_slots_read(const struct wrk_slots *s, uint32_t slot,
    struct wrk_slot_info *out);

/*
 * Cancel task (non-zero): add it to the cancel list, then look for it in
 * the slots.  Returns 1 if it is running (kill the process to stop it), 0
 * if not (the worker will skip it should it start later).
 */
int wrk_slots_cancel(struct wrk_slots *s, uint64_t task);

/* Whether the worker said it exits to be recycled. */
int wrk_slots_recycled(const struct wrk_slots *s);

/* Supervisor: say a stop signal for this process comes from us (before
 * sending it). */
void wrk_slots_ask_drain(struct wrk_slots *s);

/* The exit status the worker declared (wrk_slots_set_exit), or -1. */
int wrk_slots_exit(const struct wrk_slots *s);

/* The signal (or WRK_SLOTS_FAULT_FDS) that stopped the worker's own code,
 * or 0. */
int wrk_slots_fault(const struct wrk_slots *s);

#endif
