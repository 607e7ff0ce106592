/*
 * dispatch.h - the scheduler's queue and its dispatch policy.
 *
 * Queued tasks wait in one FIFO; a task that names objects (by locality
 * key, a hash of "LOADER:PATH") also waits in a queue per object.  When a
 * worker asks for work, it gets first the tasks whose objects it already
 * holds, then the oldest tasks — except that a task is left for another
 * worker that holds its objects and is asking for work right now.  No task
 * waits for the "right" worker while any worker is free: the skip only
 * ever defers a task to an idle holder.
 *
 * A task may need a function (a small index, 0: any worker will do): it
 * goes only to a worker that declared that function.  A worker that meets
 * a task it cannot run moves it aside, into a queue per function, where
 * the next worker that can run it finds it first (it is older than the
 * rest of the FIFO).  Each task is set aside at most once per enqueue.
 *
 * Every operation is O(1) amortised, or O(objects of the task / worker,
 * functions of the worker), never a scan of the queue.  Not thread-safe:
 * the scheduler's loop owns it.
 */
#ifndef FERRY_DISPATCH_H
#define FERRY_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#define DISP_MAX_OBJS 16 /* locality keys kept per task */

struct disp;

/* Create / free a dispatcher. */
struct disp *disp_new(void);
void         disp_free(struct disp *d);

/* Queue task id (non-zero, not already queued) needing function fn (0:
 * any) with its object keys (at most DISP_MAX_OBJS are kept); front puts
 * it ahead of everything (a re-queued task).  Returns 0, or -1 on
 * allocation failure. */
int disp_enqueue(struct disp *d, uint64_t id, uint32_t fn,
    const uint64_t *objs, uint32_t n_objs, int front);

/* Take a queued task out (cancelled, expired).  No-op if not queued. */
void disp_remove(struct disp *d, uint64_t id);

/* Whether id is queued. */
int disp_is_queued(const struct disp *d, uint64_t id);

/* Give memory back after a burst (call when the queue is empty or
 * small). */
void disp_compact(struct disp *d);

/* Number of queued tasks. */
size_t disp_queued(const struct disp *d);

/* A worker appears / disappears (its holdings are forgotten). */
int  disp_worker_add(struct disp *d, uint64_t worker);
void disp_worker_remove(struct disp *d, uint64_t worker);

/* The functions (non-zero indexes) a worker runs, replacing what it said
 * before.  A worker runs tasks of function 0 and of these only.  Returns
 * 0, or -1 on allocation failure (the worker then runs function-0 tasks
 * only). */
int disp_worker_functions(struct disp *d, uint64_t worker,
    const uint32_t *fns, size_t n);

/* A worker now holds (holds = 1) or dropped (0) an object. */
int disp_worker_object(struct disp *d, uint64_t worker, uint64_t obj,
    int holds);

/* Whether a worker is asking for work now (parked with credit). */
void disp_worker_idle(struct disp *d, uint64_t worker, int idle);

/* How many workers hold obj. */
size_t disp_holders(const struct disp *d, uint64_t obj);

/*
 * Choose up to max queued tasks for worker and dequeue them into out.
 * Returns how many; *local (may be NULL) gets how many were chosen because
 * the worker holds one of their objects.
 */
size_t disp_pick(struct disp *d, uint64_t worker, uint64_t *out, size_t max,
    size_t *local);

/* Hash a locality key ("LOADER:PATH") to its non-zero id. */
uint64_t disp_key(const char *key, size_t len);

#endif
