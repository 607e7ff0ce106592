/*
 * err.c - ferry_strerror() and ferry_version().
 */
#include "ferry/ferry.h"

FERRY_API const char *
ferry_strerror(int err)
{
	switch (err) {
	case FERRY_OK: return "success";
	case FERRY_EINVAL: return "invalid argument";
	case FERRY_ENOMEM: return "out of memory";
	case FERRY_ETIMEDOUT: return "timed out";
	case FERRY_ECONNECT: return "cannot reach the scheduler";
	case FERRY_ECLOSED: return "closed";
	case FERRY_EPROTO: return "protocol error (malformed message)";
	case FERRY_EVERSION: return "protocol version mismatch";
	case FERRY_ETOOBIG: return "message or payload too large";
	case FERRY_EFULL: return "scheduler queue is full";
	case FERRY_ENOFUNC: return "no worker registered that function";
	case FERRY_ETASK: return "task failed";
	case FERRY_ECANCELED: return "task cancelled";
	case FERRY_EPENDING: return "task not finished yet";
	case FERRY_ENOTFOUND: return "not found";
	case FERRY_ESTATE: return "not possible in the current state";
	case FERRY_EWORKER: return "worker lost while running the task";
	case FERRY_ETRANSPORT: return "transport error";
	case FERRY_ESYSTEM: return "system error";
	case FERRY_EDEAD: return "task quarantined after killing workers";
	case FERRY_ECRASHED: return "task crashed its worker process";
	case FERRY_EMEMORY: return "task went over its worker's memory limit";
	case FERRY_EOBJECT: return "object reference cannot be loaded";
	case FERRY_EAUTH: return "authentication failed";
	case FERRY_EJOURNAL: return "scheduler journal cannot be written";
	case FERRY_EDEPENDENCY: return "a task this one depends on failed";
	}
	return "unknown error";
}

FERRY_API const char *
ferry_version(void)
{
	return FERRY_VERSION_STRING;
}
