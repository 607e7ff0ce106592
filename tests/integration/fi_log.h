/* fi_log.h - the start record fi_step appends to $FERRY_FI_LOG. */
#ifndef FERRY_FI_LOG_H
#define FERRY_FI_LOG_H

#include <stdint.h>

struct fi_record {
	uint64_t seq; /* the task's sequence number */
	uint64_t pid; /* the worker process that started it */
	uint64_t us;  /* CLOCK_MONOTONIC, microseconds */
};

#endif
