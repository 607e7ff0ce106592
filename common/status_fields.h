/*
 * status_fields.h - the one table of the scheduler's counters and gauges.
 *
 * Every number of the status reply (docs/protocol.md 3.12) is a row here,
 * in the reply's order: the scheduler writes the reply from it, libferry
 * fills struct ferry_status from it, `ferry status` prints from it (test_cli
 * checks `--counters` against it), and docs/protocol.md 3.12 lists it by
 * hand.  A new counter is one new row
 * (and, for the C API, one new member at the end of struct ferry_status).
 *
 * X(name, kind, width, doc):
 *   name   the field's key on the wire and its member of struct
 *          ferry_status;
 *   kind   COUNTER (counted since the scheduler started) or GAUGE (how
 *          many now, computed when asked);
 *   width  U32 or U64: the member's type in struct ferry_status;
 *   doc    what it counts, as docs/protocol.md says it.
 */
#ifndef FERRY_STATUS_FIELDS_H
#define FERRY_STATUS_FIELDS_H

#define FERRY_STATUS_FIELDS(X)                                              \
	X(uptime_ms, GAUGE, U64, "Since the scheduler started")             \
	X(workers, GAUGE, U32, "Registered workers")                        \
	X(slots, GAUGE, U32, "Sum of their `slots`")                        \
	X(busy, GAUGE, U32,                                                 \
	    "Tasks assigned to workers (running or prefetched)")            \
	X(queued, GAUGE, U64, "Tasks waiting in the queue")                 \
	X(submitted, COUNTER, U64,                                          \
	    "Tasks accepted since start (duplicates not counted)")          \
	X(done, COUNTER, U64, "Finished with code 0")                       \
	X(failed, COUNTER, U64, "Finished with an error code")              \
	X(cancelled, COUNTER, U64,                                          \
	    "Cancelled (by `cancel` or session expiry)")                    \
	X(requeued, COUNTER, U64, "Re-queued because their worker was lost") \
	X(late_results, COUNTER, U64,                                       \
	    "Results dropped as late (section 4.10)")                       \
	X(rejected, COUNTER, U64, "Entries rejected in `submitted`")        \
	X(clients, GAUGE, U32, "Connected clients")                         \
	X(results_stored, GAUGE, U64,                                       \
	    "Results waiting to be fetched and acked, all sessions")        \
	X(local, COUNTER, U64,                                              \
	    "Tasks handed to a worker because it held one of their "        \
	    "objects")                                                      \
	X(bad_messages, COUNTER, U64,                                       \
	    "Requests refused as malformed, of an unknown type or "         \
	    "version, or not allowed for the sender (each also answered "   \
	    "with `error` and logged)")                                     \
	X(auth_failures, COUNTER, U64,                                      \
	    "Requests refused with `FERRY_EAUTH`: a `hello` with a wrong "  \
	    "or missing token, or a `status` before `hello` (section "      \
	    "3.3c)")                                                        \
	X(retried, COUNTER, U64,                                            \
	    "Retries scheduled (a failed run that will run again after "    \
	    "its backoff)")                                                 \
	X(dead, COUNTER, U64,                                               \
	    "Tasks quarantined after killing `quarantine_after` worker "    \
	    "processes")                                                    \
	X(kills, COUNTER, U64,                                              \
	    "Worker processes that died because of a task (crash caught "   \
	    "by the worker, or a supervisor's charged report)")             \
	X(timeouts, COUNTER, U64,                                           \
	    "Of those, killed for running past a timeout")                  \
	X(memory_kills, COUNTER, U64,                                       \
	    "Of those, killed for going over the memory limit")             \
	X(delayed, GAUGE, U64, "Tasks waiting for their retry backoff now") \
	X(awaiting_report, GAUGE, U64,                                      \
	    "Tasks of lost workers held until their supervisor reports "    \
	    "(section 4.13)")                                               \
	X(supervisors, GAUGE, U32, "Connected supervisors")                 \
	X(reports, COUNTER, U64,                                            \
	    "Process-death reports received from supervisors")              \
	X(waiting_function, GAUGE, U64,                                     \
	    "Queued tasks whose function no connected worker runs "         \
	    "(section 4.5)")                                                \
	X(restored, COUNTER, U64,                                           \
	    "Tasks read back from the journal when the scheduler started")  \
	X(journal_commits, COUNTER, U64,                                    \
	    "Batches written to the journal, one sync each")               \
	X(journal_records, COUNTER, U64, "Records written to the journal")  \
	X(journal_bytes, GAUGE, U64, "Bytes the journal takes on disk")     \
	X(journal_trouble, GAUGE, U32,                                      \
	    "1 while the journal cannot be written (submissions refused)")  \
	X(waiting, GAUGE, U64,                                              \
	    "Tasks waiting for the tasks their arguments refer to "         \
	    "(section 4.12)")

#endif
