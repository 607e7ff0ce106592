/*
 * loop.c - the scheduler's loop thread and its timers.
 *
 * One logical loop under one lock: requests are handled on the NNG
 * threads that deliver them (rctx.c), while this thread waits on a
 * signalfd and an eventfd, woken by NNG's pipe callbacks and by timers
 * that come due sooner than it meant to wake, and then does what is due:
 * closed connections, due timers, dispatch, results to parked fetches.
 * Timers carry their own callback (no central switch): each module's
 * timers are its own.
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "dispatch.h"
#include "log.h"
#include "sched_int.h"

#define DRAIN_CHECK_MS 50 /* how often a draining loop looks */
#define SPARE_RETRY_MS 10 /* how soon spare timers try the heap again */

uint64_t
sched_now(const struct sched *s)
{
	return s->now_ms != 0 ? s->now_ms : util_now_ms();
}

void
wake_loop(struct sched *s)
{
	uint64_t one = 1;
	if (s->event_fd >= 0 && write(s->event_fd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: readable anyway */
	}
}

/* Put a timer in the heap; without memory for it, aside (the loop puts
 * it in later; only when even that is full is it lost).  Returns 0 when
 * it is in the heap. */
static int
timer_push(struct sched *s, uint64_t when, timer_fn fn, uint64_t id,
    uint32_t gen)
{
	struct timer t = { when, id, fn, gen };

	if (timerheap_push(&s->timers, t) == 0)
		return 0;
	if (s->n_spare == TIMER_SPARE)
		log_error("out of memory: a timer is lost");
	else
		s->spare[s->n_spare++] = t;
	return -1;
}

void
timer_add(struct sched *s, uint64_t when, timer_fn fn, uint64_t id,
    uint32_t gen)
{
	/* due before the loop thread would look, or aside: wake it */
	if (timer_push(s, when, fn, id, gen) != 0 || when < s->sleep_until)
		wake_loop(s);
}

void
timer_add_lazy(struct sched *s, uint64_t when, timer_fn fn, uint64_t id,
    uint32_t gen)
{
	(void)timer_push(s, when, fn, id, gen);
}

/* Put spare timers in the heap, as far as it has room. */
static void
spares_to_heap(struct sched *s)
{
	while (s->n_spare > 0 &&
	    timerheap_push(&s->timers, s->spare[s->n_spare - 1]) == 0)
		s->n_spare--;
}

static void
run_timers(struct sched *s)
{
	uint64_t            now = sched_now(s);
	const struct timer *top;
	struct timer        t;

	if (s->n_spare > 0)
		spares_to_heap(s);
	while ((top = timerheap_peek(&s->timers)) != NULL && top->when <= now) {
		timerheap_pop(&s->timers, &t);
		t.fn(s, t.id, t.gen);
	}
}

void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct sched *s = arg;
	(void)ev;
	pthread_mutex_lock(&s->ev_lock);
	if (util_grow(&s->gone_pipes, &s->cap_gone, s->n_gone,
	        sizeof(*s->gone_pipes), 64) != 0) {
		pthread_mutex_unlock(&s->ev_lock);
		log_error("out of memory noting a closed pipe");
		return;
	}
	s->gone_pipes[s->n_gone++] = nng_pipe_id(p);
	pthread_mutex_unlock(&s->ev_lock);
	wake_loop(s);
}

/*
 * Closed pipes.  Only while no request is being handled: one that arrived
 * before its connection dropped counts first (results that reached us
 * still count); the last request handler does it otherwise.
 */
static void
gone_pipes_locked(struct sched *s)
{
	uint32_t *gone;
	size_t    n;

	if (atomic_load(&s->busy) != 0)
		return;
	pthread_mutex_lock(&s->ev_lock);
	gone          = s->gone_pipes;
	n             = s->n_gone;
	s->gone_pipes = NULL;
	s->n_gone = s->cap_gone = 0;
	pthread_mutex_unlock(&s->ev_lock);
	for (size_t i = 0; i < n; i++)
		pipe_gone(s, gone[i]);
	free(gone);
}

/*
 * Everything submitted has finished and been delivered: give the memory
 * of the burst back (tables sized for the peak, freed heap pages), so a
 * long-lived scheduler returns near its baseline between bursts.
 */
static void
give_back_memory(struct sched *s)
{
	struct idmap_iter it = { 0, 0 };
	struct session   *se;

	idmap_shrink(&s->tasks);
	while (idmap_iter_next(&s->sessions, &it, NULL, (void **)&se)) {
		idmap_shrink(&se->tags);
		idmap_shrink(&se->done);
	}
	disp_compact(s->disp);
	malloc_trim(0);
	s->untrimmed = 0;
}

int
sched_on_turn(struct sched *s, void (*fn)(struct sched *s))
{
	if (s->n_turn_hooks >= SCHED_MAX_TURN_HOOKS)
		return -1;
	s->turn_hooks[s->n_turn_hooks++] = fn;
	return 0;
}

void
loop_turn_locked(struct sched *s)
{
	gone_pipes_locked(s);
	run_timers(s);
	if (s->limbo != NULL)
		tasks_retry_limbo(s);
	dispatch(s);
	flush_dirty(s);
	if (s->untrimmed && s->tasks.count == 0 && s->results_stored == 0)
		give_back_memory(s);
	for (size_t i = 0; i < s->n_turn_hooks; i++)
		s->turn_hooks[i](s);
}

/* How long the loop thread may sleep (ms). */
static int
sleep_ms(struct sched *s, uint64_t now)
{
	const struct timer *top     = timerheap_peek(&s->timers);
	int                 timeout = 1000;

	if (top != NULL)
		timeout = top->when <= now ? 0
		    : (top->when - now > 1000) ? 1000
		                               : (int)(top->when - now);
	if (s->draining && timeout > DRAIN_CHECK_MS)
		timeout = DRAIN_CHECK_MS;
	if ((s->n_spare > 0 || s->limbo != NULL) && timeout > SPARE_RETRY_MS)
		timeout = SPARE_RETRY_MS;
	return timeout;
}

int
sched_loop(struct sched *s)
{
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		struct pollfd pfd[2];
		uint64_t      now     = sched_now(s);
		int           timeout = sleep_ms(s, now);

		s->sleep_until = now + (uint64_t)timeout;
		pthread_mutex_unlock(&s->lock);
		pfd[0].fd     = s->event_fd;
		pfd[0].events = POLLIN;
		pfd[1].fd     = s->signal_fd;
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, timeout) < 0 && errno != EINTR) {
			log_error("poll: %s", strerror(errno));
			rc = 1;
			pthread_mutex_lock(&s->lock);
			break;
		}
		if (pfd[0].revents & POLLIN) {
			uint64_t v;
			if (read(s->event_fd, &v, sizeof(v)) < 0) {
				/* spurious */
			}
		}
		pthread_mutex_lock(&s->lock);
		s->sleep_until = 0;
		if (pfd[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(s->signal_fd, &si, sizeof(si)) > 0)
				drain_begin(s, si.ssi_signo);
			if (s->stop)
				break;
		}
		loop_turn_locked(s); /* held answers leave by their timers */
		if (s->draining && drain_over(s))
			break;
	}
	s->stop = 1;
	pthread_mutex_unlock(&s->lock);
	return rc;
}
