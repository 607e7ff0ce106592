/* fi_log.h - the start records fi_tasks.c appends to $FERRY_FI_LOG. */
#ifndef FERRY_FI_LOG_H
#define FERRY_FI_LOG_H

#include <stdint.h>

/* A record whose seq has this bit is fi_fork's grandchild: pid is its. */
#define FI_CHILD (UINT64_C(1) << 63)

/* fi_fork's how */
#define FI_FORK_SETSID 1 /* the grandchild leaves the process group */
#define FI_FORK_CRASH 2  /* the task then crashes (SIGSEGV) */
#define FI_FORK_EXIT 4   /* the task then calls exit(0) */
#define FI_FORK_HANG 8   /* the task then sleeps (600 s) */

struct fi_record {
	uint64_t seq; /* the task's sequence number */
	uint64_t pid; /* the worker process that started it */
	uint64_t us;  /* CLOCK_MONOTONIC, microseconds */
};

#endif
