/*
 * park.c - requests held for a later answer (long polls).
 *
 * A worker's work request, a session's fetch and a supervisor's watch may
 * wait for something to answer with (tasks, results, orders) instead of
 * being answered empty at once.  Each peer holds at most one such request
 * in a struct parked; this is where one is held, taken to be answered,
 * and dropped with its connection.  The generation number tells a timer
 * that comes due whether it still speaks of the request it was set for.
 */
#include "sched_int.h"

void
park_hold(struct sched *s, struct parked *p, struct rctx *rc, uint64_t ms,
    timer_fn due, uint64_t id)
{
	p->rc     = rc;
	p->active = 1;
	p->gen++;
	timer_add(s, sched_now(s) + ms, due, id, p->gen);
}

struct rctx *
park_take(struct parked *p)
{
	if (!p->active)
		return NULL;
	p->active = 0;
	p->gen++;
	return p->rc;
}

int
park_due(const struct parked *p, uint32_t gen)
{
	return p->active && p->gen == gen;
}

void
park_drop(struct sched *s, struct parked *p)
{
	if (p->active)
		rctx_release(s, p->rc); /* never answered */
	p->active = 0;
	p->gen++;
}
