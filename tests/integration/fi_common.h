/*
 * fi_common.h - what the fault-injection suites share (test_faults.c,
 * test_faults_restart.c): the start records fi_tasks.c writes, fi_step's
 * results, the worker processes a suite kills (and must see gone at the
 * end), and the grandchildren fi_fork tasks start.
 */
#ifndef FERRY_FI_COMMON_H
#define FERRY_FI_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fi_log.h"
#include "ferry/ferry.h"

/* Every worker process a suite saw (for the check that none is left). */
#define FI_MAX_SEEN 4096
struct fi_seen {
	pid_t pid[FI_MAX_SEEN];
	int   n;
};

/* Note pid in seen (once). */
void fi_seen_add(struct fi_seen *seen, pid_t pid);

/* The worker processes registered with c's scheduler whose parent is sup
 * (the supervisor the test started: the others are not ours), each noted
 * in seen, up to max of them in ours.  Returns how many (0 when the
 * scheduler does not answer). */
int fi_our_workers(ferry_client *c, pid_t sup, struct fi_seen *seen,
    pid_t *ours, int max);

/* Stop the supervisor sup of the scheduler at url (SIGTERM, by pid; the
 * processes registered now are noted in seen first) and fail the test if
 * any worker process of seen outlives it. */
void fi_stop_workers(const char *url, pid_t sup, struct fi_seen *seen);

/* qsort comparison of uint64_t. */
int fi_cmp_u64(const void *a, const void *b);

/* Decode fi_step's result [value, pid]; 0, or -1. */
int fi_unpack_pair(const void *data, size_t len, uint64_t *v, uint64_t *pid);

/* How many start records log holds now (0 if it does not exist yet). */
size_t fi_count_records(const char *log);

/* Every start record of log (malloc'd; *n of them), or NULL. */
struct fi_record *fi_read_records(const char *log, size_t *n);

/* The grandchildren fi_fork tasks started (from their records), up to
 * max. */
int fi_grandchildren(const char *log, pid_t *out, int max);

/* Wait (bounded) until none of the n grandchildren runs; returns how many
 * still do (and kills those, by pid: the test started them). */
int fi_grandchildren_left(const pid_t *g, int n, int timeout_ms);

/* Kill, by pid, the grandchildren of log still running (after a failed
 * run, from main()); log may be empty (no run yet). */
void fi_kill_grandchildren(const char *log);

#endif
