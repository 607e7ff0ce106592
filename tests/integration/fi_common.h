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

/*
 * A task graph workload for the fault-injection suites, from the
 * fault-injection tasks alone (fi_step, fi_gsum): chains, small trees
 * summing fi_step leaves, and chains broken by a link that fails (an
 * input fi_gsum cannot add), so that the links after it must fail with
 * FERRY_EDEPENDENCY without ever starting.  Every task has a seq of its
 * own, from seq0 up, and its outcome is known in advance.
 */
enum fi_gkind {
	FI_G_VALUE, /* done, with want as its value */
	FI_G_BREAK, /* fails by itself (FERRY_ETASK) */
	FI_G_DEP,   /* fails with FERRY_EDEPENDENCY naming breaker, never
	             * starts */
};

struct fi_gtask {
	ferry_future *f;
	uint64_t      seq;
	uint64_t      want;
	int           kind;
	size_t        breaker; /* FI_G_DEP: index of the link that failed */
};

struct fi_graph {
	uint64_t         seq0, next; /* the seqs used: [seq0, next) */
	struct fi_gtask *t;
	size_t           n, cap;
	int              chains, trees, broken;
};

void fi_graph_init(struct fi_graph *g, uint64_t seq0);

/* A chain of links fi_gsum tasks, each adding 1 to the one before (the
 * first holds 1), each sleeping delay_us; options o (NULL: defaults). */
void fi_graph_chain(struct fi_graph *g, ferry_client *c, int links,
    uint64_t delay_us, const struct ferry_task_opts *o);

/* A tree: 16 fi_step leaves, 4 fi_gsum tasks summing 4 of them each, and
 * a root summing those 4. */
void fi_graph_tree(struct fi_graph *g, ferry_client *c, uint64_t delay_us,
    const struct ferry_task_opts *o);

/* A chain of links whose link bad (0-based) fails. */
void fi_graph_broken(struct fi_graph *g, ferry_client *c, int links, int bad,
    uint64_t delay_us, const struct ferry_task_opts *o);

/* The futures of g's tasks, in a new array (g->n of them) to wait on. */
ferry_future **fi_graph_futures(const struct fi_graph *g);

/* Check every task of g ended as it must (all must have finished), the
 * FI_G_DEP ones never started (from the start records in log), and print
 * what ran.  Fails the test otherwise. */
void fi_graph_check(const struct fi_graph *g, const char *log);

/* Free g's futures and memory. */
void fi_graph_free(struct fi_graph *g);

#endif
