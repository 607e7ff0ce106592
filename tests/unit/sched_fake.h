/*
 * sched_fake.h - the scheduler's real modules with no network, for unit
 * tests.
 *
 * sched_fake.c stands in for the request-context layer (rctx.c): a
 * request is a message built with the protocol writer and handed to the
 * real router on a fake connection (a pipe id); every reply is decoded
 * and kept, in order.  The clock is the test's (s.now_ms), and timers
 * run when the test turns the loop.
 */
#ifndef FERRY_SCHED_FAKE_H
#define FERRY_SCHED_FAKE_H

#include <stddef.h>
#include <stdint.h>

#include "sched_int.h"

#define FAKE_MAX_REPLIES 64

/* A request context of the fake layer. */
struct fake_req {
	struct rctx rc;       /* what the scheduler holds (first) */
	int         answered; /* a reply was sent, or it was dropped */
	int         dropped;
	uint8_t    *reply;    /* the reply's bytes */
	size_t      len;
};

struct fake {
	struct sched        s;
	struct sched_config cfg;
	struct proto_writer w;      /* the next request */
	struct proto_decoder dec;
	struct fake_req    *reqs[1024]; /* every request, to free */
	size_t              n_reqs;
	long                fail_at; /* the allocation to fail, 0: none */
	long                allocs;  /* counted in the last operation */
};

/* Count the scheduler's allocations from now; the n-th fails (0: off).
 * Only in tests linked with the allocation wrappers (meson.build). */
void fake_alloc_arm(long n);
/* Allocations counted since arming (armed with a huge n: counts only). */
long fake_alloc_count(void);

/* Set up a scheduler (defaults, or cfg if not NULL) at time 1000 ms. */
void fake_init(struct fake *f, const struct sched_config *cfg);
void fake_fini(struct fake *f);

/* Send what is in f->w on connection pipe; returns its request, whose
 * reply (if any yet) is in ->reply. */
struct fake_req *fake_send(struct fake *f, uint32_t pipe);

/* Decode a request's reply into m (it points into the reply); 0, or -1
 * when there is none or it does not decode. */
int fake_reply(struct fake *f, const struct fake_req *r, struct proto_msg *m);

/* Advance the clock by ms and turn the loop (timers, dispatch). */
void fake_advance(struct fake *f, uint64_t ms);

/* Requests, built in f->w and sent on pipe. */
struct fake_req *fake_hello_worker(struct fake *f, uint32_t pipe,
    const char *const *fns, uint64_t supervisor, uint64_t pid);
/* A worker process registering again: the epoch of its last welcome,
 * the worker id it had and the n task ids it holds (docs/protocol.md
 * 4.9). */
struct fake_req *fake_hello_rejoin(struct fake *f, uint32_t pipe,
    const char *const *fns, uint64_t supervisor, uint64_t pid,
    uint64_t epoch, uint64_t previous, const uint64_t *ids, uint32_t n);
struct fake_req *fake_hello_client(struct fake *f, uint32_t pipe,
    uint64_t session);
struct fake_req *fake_hello_supervisor(struct fake *f, uint32_t pipe,
    uint64_t token);
/* n tasks fn with ids first, first+1, ... and no arguments */
struct fake_req *fake_submit(struct fake *f, uint32_t pipe, const char *fn,
    uint64_t first, uint32_t n);
struct fake_req *fake_fetch(struct fake *f, uint32_t pipe, uint64_t ack,
    uint64_t wait_ms);
struct fake_req *fake_cancel(struct fake *f, uint32_t pipe, uint64_t id);
/* a work request with credit and, for each of ids, a result (code 0,
 * the value 7, or code if not 0) */
struct fake_req *fake_work(struct fake *f, uint32_t pipe, uint64_t credit,
    const uint64_t *ids, uint32_t n, int32_t code);
/* a supervisor's report: process pid of worker wid died running task
 * (charged) */
struct fake_req *fake_report(struct fake *f, uint32_t pipe, uint64_t pid,
    uint64_t wid, uint64_t task, int charged, const char *cause);

/* The connection closed. */
void fake_close(struct fake *f, uint32_t pipe);

/* The scheduler's invariants (asserted with cmocka): counts match the
 * tasks, every queued task can be dispatched, worker lists agree with
 * the tasks' workers, sessions' maps agree with their tasks and results.
 * Returns the number of live tasks. */
size_t fake_check(struct fake *f);

#endif
