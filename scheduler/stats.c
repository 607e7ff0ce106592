/*
 * stats.c - the scheduler's counters and its status reply.
 *
 * The numbers are those of common/status_fields.h, kept in s->stat[]:
 * counters are counted where they happen (most of them here, by watching
 * task transitions), gauges are filled in when the status is asked for.
 * The reply writes every row of the table in order, then the lists
 * (functions waited for, recent failures, workers).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ferry/ferry.h"
#include "sched_int.h"

/* Observer: what transitions count. */
static void
count_transition(struct sched *s, struct task *t, int from, int to,
    const struct task_end *end, void *arg)
{
	struct recent *rc;

	(void)arg;
	switch (to) {
	case TASK_WAITING:
	case TASK_QUEUED:
		if (from == TASK_SUBMITTED)
			s->stat[ST_submitted]++;
		else if (from == TASK_RESTORED)
			s->stat[ST_restored]++;
		else if (from == TASK_ASSIGNED)
			s->stat[ST_requeued]++;
		return;
	case TASK_DELAYED:
		s->stat[ST_retried]++;
		return;
	case TASK_DONE:
		s->stat[ST_done]++;
		return;
	case TASK_CANCELLED:
		s->stat[ST_cancelled]++;
		return;
	case TASK_DEAD:
		s->stat[ST_dead]++;
		break;
	case TASK_FAILED:
		s->stat[ST_failed]++;
		break;
	default:
		return;
	}
	/* failed or dead: kept among the recent failures */
	rc           = &s->recent[s->n_recent++ % RECENT_FAILURES];
	rc->id       = t->id;
	rc->state    = (uint8_t)to;
	rc->attempts = t->attempts;
	snprintf(rc->fn, sizeof(rc->fn), "%.*s", (int)t->fn_len, task_fn(t));
	snprintf(rc->reason, sizeof(rc->reason), "%.*s",
	    (int)(end->len < 255 ? end->len : 255), (const char *)end->data);
}

int
stats_init(struct sched *s)
{
	s->start_ms = sched_now(s);
	return sched_observe(s, 0,
	    (1u << TASK_QUEUED) | (1u << TASK_DELAYED) | (1u << TASK_WAITING) |
	        TASK_FINAL_MASK,
	    count_transition, NULL);
}

/* The gauges of the table, as they are now. */
static void
fill_gauges(struct sched *s)
{
	struct idmap_iter    it = { 0, 0 };
	const struct worker *w;
	uint64_t             slots = 0, busy = 0, lost = 0;

	while (idmap_iter_next(&s->workers, &it, NULL, (void **)&w)) {
		slots += w->slots;
		busy += w->held;
	}
	it.pos = 0;
	it.key = 0;
	while (idmap_iter_next(&s->ghosts, &it, NULL, (void **)&w))
		lost += w->held;
	s->stat[ST_uptime_ms]        = sched_now(s) - s->start_ms;
	s->stat[ST_workers]          = s->n_workers;
	s->stat[ST_slots]            = slots;
	s->stat[ST_busy]             = busy;
	s->stat[ST_queued]           = s->n_queued;
	s->stat[ST_clients]          = s->n_clients;
	s->stat[ST_results_stored]   = s->results_stored;
	s->stat[ST_delayed]          = s->n_delayed;
	s->stat[ST_awaiting_report]  = lost;
	s->stat[ST_supervisors]      = s->n_sups;
	s->stat[ST_waiting_function] = s->n_unserved;
	s->stat[ST_waiting]          = s->n_waiting;
}

static void
recent_status(struct sched *s)
{
	uint32_t nr = s->n_recent < RECENT_FAILURES ? s->n_recent
	                                            : RECENT_FAILURES;

	proto_put_key(&s->w, "recent_failures");
	msgpack_pack_array(&s->w.pk, nr);
	for (uint32_t k = 0; k < nr; k++) { /* newest first */
		const struct recent *rf =
		    &s->recent[(s->n_recent - 1 - k) % RECENT_FAILURES];
		proto_open_map(&s->w);
		proto_put_uint(&s->w, "id", rf->id);
		proto_put_str(&s->w, "fn", rf->fn);
		proto_put_str(&s->w, "state", sched_state_name(rf->state));
		proto_put_uint(&s->w, "attempts", rf->attempts);
		proto_put_str(&s->w, "reason", rf->reason);
		proto_end(&s->w);
	}
}

void
handle_status(struct sched *s, struct rctx *rc)
{
#define STAT_NAME(name, kind, width, doc) #name,
	static const char *const names[ST_MAX] = {
		FERRY_STATUS_FIELDS(STAT_NAME)
	};
#undef STAT_NAME

	fill_gauges(s);
	proto_writer_reset(&s->w);
	proto_open(&s->w, PROTO_STATUS_REPLY);
	proto_put_str(&s->w, "version", FERRY_VERSION_STRING);
	for (int i = 0; i < ST_MAX; i++)
		proto_put_uint(&s->w, names[i], s->stat[i]);
	functions_status(s);
	recent_status(s);
	workers_status(s);
	proto_end(&s->w);
	reply(s, rc);
}
