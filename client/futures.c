/*
 * futures.c - libferry's futures: completion, waiting for one, all or
 * each as it completes, reading the outcome, cancelling.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client_int.h"

/* f is done: the next one it yields. */
static void
iter_ready(struct ferry_iter *it, struct ferry_future *f)
{
	f->iter_next = NULL;
	if (it->ready_tail != NULL)
		it->ready_tail->iter_next = f;
	else
		it->ready_head = f;
	it->ready_tail = f;
}

int
future_release_locked(struct ferry_future *f)
{
	ferry_client *c = f->c;
	if (--f->refs > 0)
		return 0;
	graph_forget_locked(c, f);
	free(f->data);
	free(f->fn);
	free(f->args);
	free(f->keys);
	free(f);
	return client_release_locked(c);
}

void
future_complete_locked(ferry_client *c, struct ferry_future *f, int state,
    int code, const void *data, size_t len)
{
	if (f->state != FERRY_PENDING)
		return;
	if (f->unsent) {
		f->unsent = 0;
		c->unsent--;
	}
	if (f->attached) /* remember it: a repeat is a duplicate */
		(void)idmap_put(&c->attached_done, f->tag, f);
	f->state   = state;
	f->errcode = code;
	f->data    = malloc(len + 1);
	if (f->data != NULL) {
		if (len > 0)
			memcpy(f->data, data, len);
		f->data[len] = '\0';
		f->len       = len;
	} else {
		f->errcode = FERRY_ENOMEM;
		f->state   = FERRY_FAILED;
	}
	free(f->fn);
	free(f->args);
	f->fn   = NULL;
	f->args = NULL;
	graph_drop_locked(c, f); /* its inputs' results may go */
	if (f->iter != NULL)
		iter_ready(f->iter, f);
	idmap_del(&c->pending, f->tag);
	c->stats.completed++;
	future_release_locked(f); /* the client's reference */
}

void
futures_fail_locked(ferry_client *c, int code, const char *msg, size_t len,
    int sent_only)
{
	struct idmap_iter    it = { 0, 0 };
	struct ferry_future *f;

	/* completing takes each out of the map: the walk allows that */
	while (idmap_iter_next(&c->pending, &it, NULL, (void **)&f))
		if (!sent_only || !f->queued)
			future_complete_locked(c, f, FERRY_FAILED, code, msg,
			    len);
}

void
deadline_of(int timeout_ms, struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += timeout_ms / 1000;
	ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int
wait_locked(ferry_client *c, int timeout_ms, const struct timespec *ts)
{
	if (timeout_ms == 0)
		return FERRY_ETIMEDOUT;
	if (timeout_ms < 0) {
		pthread_cond_wait(&c->cv, &c->lock);
		return 0;
	}
	if (pthread_cond_timedwait(&c->cv, &c->lock, ts) == ETIMEDOUT)
		return FERRY_ETIMEDOUT;
	return 0;
}

FERRY_API int
ferry_future_state(const ferry_future *f)
{
	int s;
	if (f == NULL)
		return FERRY_EINVAL;
	pthread_mutex_lock(&f->c->lock);
	s = f->state;
	pthread_mutex_unlock(&f->c->lock);
	return s;
}

FERRY_API int
ferry_future_wait(ferry_future *f, int timeout_ms)
{
	struct timespec ts;
	int             rv = 0;
	if (f == NULL)
		return FERRY_EINVAL;
	deadline_of(timeout_ms > 0 ? timeout_ms : 0, &ts);
	pthread_mutex_lock(&f->c->lock);
	while (f->state == FERRY_PENDING && rv == 0)
		rv = wait_locked(f->c, timeout_ms, &ts);
	rv = f->state == FERRY_PENDING ? FERRY_ETIMEDOUT : 0;
	pthread_mutex_unlock(&f->c->lock);
	return rv;
}

FERRY_API int
ferry_future_result(const ferry_future *f, const void **data, size_t *len)
{
	int rv;
	if (f == NULL)
		return FERRY_EINVAL;
	pthread_mutex_lock(&f->c->lock);
	switch (f->state) {
	case FERRY_PENDING:
		rv = FERRY_EPENDING;
		break;
	case FERRY_DONE:
		if (data != NULL)
			*data = f->data;
		if (len != NULL)
			*len = f->len;
		rv = 0;
		break;
	case FERRY_CANCELLED:
		rv = FERRY_ECANCELED;
		break;
	default:
		rv = f->errcode != 0 ? f->errcode : FERRY_ETASK;
		break;
	}
	pthread_mutex_unlock(&f->c->lock);
	return rv;
}

FERRY_API int
ferry_future_errcode(const ferry_future *f)
{
	int rv;
	if (f == NULL)
		return FERRY_EINVAL;
	pthread_mutex_lock(&f->c->lock);
	rv = (f->state != FERRY_PENDING && f->state != FERRY_DONE)
	    ? f->errcode
	    : 0;
	pthread_mutex_unlock(&f->c->lock);
	return rv;
}

FERRY_API const char *
ferry_future_error(const ferry_future *f)
{
	const char *s = NULL;
	if (f == NULL)
		return NULL;
	pthread_mutex_lock(&f->c->lock);
	if (f->state != FERRY_PENDING && f->state != FERRY_DONE)
		s = (const char *)f->data;
	pthread_mutex_unlock(&f->c->lock);
	return s;
}

FERRY_API uint64_t
ferry_future_id(const ferry_future *f)
{
	return f != NULL ? f->tag : 0;
}

FERRY_API uint32_t
ferry_future_attempts(const ferry_future *f)
{
	uint32_t n;
	if (f == NULL)
		return 0;
	pthread_mutex_lock(&f->c->lock);
	n = f->attempts;
	pthread_mutex_unlock(&f->c->lock);
	return n;
}

FERRY_API void
ferry_future_free(ferry_future *f)
{
	ferry_client *c;
	if (f == NULL)
		return;
	c = f->c;
	pthread_mutex_lock(&c->lock);
	if (f->iter != NULL) {
		/* freed while an iterator still holds it (the header says
		 * not to): take it out so the iterator stays sound */
		struct ferry_iter   *it   = f->iter;
		struct ferry_future *prev = NULL, *x;
		for (x = it->ready_head; x != NULL; prev = x, x = x->iter_next)
			if (x == f)
				break;
		if (x != NULL) {
			if (prev != NULL)
				prev->iter_next = f->iter_next;
			else
				it->ready_head = f->iter_next;
			if (it->ready_tail == f)
				it->ready_tail = prev;
		}
		it->total--;
		f->iter = NULL;
	}
	if (!future_release_locked(f))
		pthread_mutex_unlock(&c->lock);
}

FERRY_API int
ferry_wait_all(ferry_future *const *futs, size_t n, int timeout_ms)
{
	struct timespec ts;
	int             rv = 0;
	deadline_of(timeout_ms > 0 ? timeout_ms : 0, &ts);
	for (size_t i = 0; i < n; i++) {
		ferry_client *c = futs[i]->c;
		pthread_mutex_lock(&c->lock);
		while (futs[i]->state == FERRY_PENDING && rv == 0)
			rv = wait_locked(c, timeout_ms, &ts);
		if (futs[i]->state == FERRY_PENDING)
			rv = FERRY_ETIMEDOUT;
		pthread_mutex_unlock(&c->lock);
		if (rv != 0)
			return rv;
	}
	return 0;
}

FERRY_API int
ferry_as_completed(ferry_client *c, ferry_future *const *futs, size_t n,
    ferry_iter **out)
{
	ferry_iter *it;
	if (c == NULL || out == NULL || (n > 0 && futs == NULL))
		return FERRY_EINVAL;
	if ((it = calloc(1, sizeof(*it))) == NULL)
		return FERRY_ENOMEM;
	it->c = c;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < n; i++) {
		if (futs[i]->c != c || futs[i]->iter != NULL) {
			/* undo: a future belongs to one iterator at a time */
			for (size_t j = 0; j < i; j++)
				futs[j]->iter = NULL;
			pthread_mutex_unlock(&c->lock);
			free(it);
			return FERRY_EINVAL;
		}
		futs[i]->iter = it;
	}
	for (size_t i = 0; i < n; i++) {
		it->total++;
		if (futs[i]->state != FERRY_PENDING)
			iter_ready(it, futs[i]);
	}
	pthread_mutex_unlock(&c->lock);
	*out = it;
	return 0;
}

FERRY_API int
ferry_iter_new(ferry_client *c, ferry_iter **out)
{
	ferry_iter *it;
	if (c == NULL || out == NULL)
		return FERRY_EINVAL;
	if ((it = calloc(1, sizeof(*it))) == NULL)
		return FERRY_ENOMEM;
	it->c    = c;
	it->open = 1;
	pthread_mutex_lock(&c->lock);
	c->refs++; /* the lock stays while the iterator does */
	pthread_mutex_unlock(&c->lock);
	*out = it;
	return 0;
}

FERRY_API int
ferry_iter_add(ferry_iter *it, ferry_future *const *futs, void *const *data,
    size_t n)
{
	ferry_client *c;
	int           ready = 0;
	if (it == NULL || (n > 0 && futs == NULL))
		return FERRY_EINVAL;
	c = it->c;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < n; i++) {
		if (futs[i] == NULL || futs[i]->c != c ||
		    futs[i]->iter != NULL) {
			pthread_mutex_unlock(&c->lock);
			return FERRY_EINVAL; /* nothing added */
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct ferry_future *f = futs[i];
		f->iter                = it;
		f->iter_data           = data != NULL ? data[i] : NULL;
		it->total++;
		if (f->state != FERRY_PENDING) {
			iter_ready(it, f);
			ready = 1;
		}
	}
	/* finished before they joined: no result will wake a thread
	 * waiting on the iterator for them */
	if (ready)
		pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* Take up to cap ready futures of it (lock held), waiting for the first
 * as ferry_iter_next_many says.  Returns 0 with *n > 0, or the error. */
static int
iter_take_locked(ferry_iter *it, int timeout_ms, const struct timespec *ts,
    ferry_future **futs, void **data, size_t cap, size_t *n)
{
	ferry_client *c = it->c;
	int           rv;

	*n = 0;
	for (;;) {
		while (it->ready_head != NULL && *n < cap) {
			struct ferry_future *f = it->ready_head;
			it->ready_head         = f->iter_next;
			if (it->ready_head == NULL)
				it->ready_tail = NULL;
			f->iter_next = NULL;
			f->iter      = NULL; /* yielded: no longer ours */
			if (data != NULL)
				data[*n] = f->iter_data;
			f->iter_data = NULL;
			futs[(*n)++] = f;
			it->yielded++;
		}
		if (*n > 0)
			return 0;
		if (it->yielded >= it->total) {
			if (!it->open)
				return FERRY_ENOTFOUND;
			if (c->closing)
				return FERRY_ECLOSED;
		}
		if ((rv = wait_locked(c, timeout_ms, ts)) != 0)
			return rv;
	}
}

FERRY_API int
ferry_iter_next_many(ferry_iter *it, int timeout_ms, ferry_future **futs,
    void **data, size_t cap, size_t *n)
{
	struct timespec ts;
	int             rv;
	if (it == NULL || futs == NULL || cap == 0 || n == NULL)
		return FERRY_EINVAL;
	deadline_of(timeout_ms > 0 ? timeout_ms : 0, &ts);
	pthread_mutex_lock(&it->c->lock);
	rv = iter_take_locked(it, timeout_ms, &ts, futs, data, cap, n);
	pthread_mutex_unlock(&it->c->lock);
	return rv;
}

FERRY_API int
ferry_iter_next(ferry_iter *it, int timeout_ms, ferry_future **f)
{
	size_t n;
	if (it == NULL || f == NULL)
		return FERRY_EINVAL;
	return ferry_iter_next_many(it, timeout_ms, f, NULL, 1, &n);
}

FERRY_API void
ferry_iter_free(ferry_iter *it)
{
	ferry_client       *c;
	struct idmap_iter   pi = { 0, 0 };
	struct ferry_future *f;

	if (it == NULL)
		return;
	c = it->c;
	pthread_mutex_lock(&c->lock);
	/* detach every future still pointing here: walk the pending map
	 * (the ready list holds finished ones) */
	for (f = it->ready_head; f != NULL; f = f->iter_next) {
		f->iter      = NULL;
		f->iter_data = NULL;
	}
	while (idmap_iter_next(&c->pending, &pi, NULL, (void **)&f)) {
		if (f->iter == it) {
			f->iter      = NULL;
			f->iter_data = NULL;
		}
	}
	if (!it->open || !client_release_locked(c))
		pthread_mutex_unlock(&c->lock);
	free(it);
}

/* ------------------------------------------------------------ cancel */

int
cancel_add_locked(ferry_client *c, uint64_t tag)
{
	if (util_grow(&c->cancel_ids, &c->cap_cancel, c->n_cancel,
	        sizeof(*c->cancel_ids), 64) != 0)
		return -1;
	c->cancel_ids[c->n_cancel++] = tag;
	return 0;
}

void
cancel_pump_locked(ferry_client *c)
{
	while (c->n_cancel > 0) {
		/* as many ids as fit in half a message (9 bytes each at
		 * most); the rest go in the next one */
		size_t       max = c->opts.max_message_size / 2 / 9;
		size_t       k   = c->n_cancel < max ? c->n_cancel : max;
		struct creq *r   = creq_new(c, CREQ_CANCEL);
		if (r == NULL)
			break;
		if ((r->ids = malloc(k * sizeof(*r->ids))) == NULL) {
			creq_clear(r);
			break;
		}
		memcpy(r->ids, c->cancel_ids, k * sizeof(*r->ids));
		r->n_ids = (uint32_t)k;
		proto_writer_reset(&c->w);
		proto_write_cancel(&c->w, r->ids, r->n_ids);
		/* r keeps them: sent again if the connection drops */
		if (creq_send(c, r) != 0) {
			creq_clear(r);
			break;
		}
		c->n_cancel -= k;
		memmove(c->cancel_ids, c->cancel_ids + k,
		    c->n_cancel * sizeof(*c->cancel_ids));
	}
}

/* Cancel one pending future (lock held): one not sent yet is cancelled
 * here (the queue skips it), the others at the scheduler.  Returns 0 or
 * FERRY_ENOMEM. */
static int
cancel_one_locked(ferry_client *c, struct ferry_future *f)
{
	if (f->queued) {
		f->refs++;
		future_complete_locked(c, f, FERRY_CANCELLED, FERRY_ECANCELED,
		    "cancelled", 9);
		future_release_locked(f); /* never the last reference */
		return 0;
	}
	if (f->cancel_requested)
		return 0;
	if (cancel_add_locked(c, f->tag) != 0)
		return FERRY_ENOMEM;
	f->cancel_requested = 1;
	return 0;
}

FERRY_API int
ferry_cancel(ferry_future *f)
{
	ferry_client *c;
	int           rv;
	if (f == NULL)
		return FERRY_EINVAL;
	c = f->c;
	pthread_mutex_lock(&c->lock);
	if (f->state != FERRY_PENDING) {
		pthread_mutex_unlock(&c->lock);
		return FERRY_ESTATE;
	}
	rv = cancel_one_locked(c, f);
	pump_locked(c);
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->lock);
	return rv;
}

FERRY_API int
ferry_cancel_many(ferry_future *const *futs, size_t n)
{
	ferry_client *c = NULL;
	int           rv = 0;

	if (n > 0 && futs == NULL)
		return FERRY_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (futs[i] == NULL)
			continue;
		if (c == NULL)
			c = futs[i]->c;
		else if (futs[i]->c != c)
			return FERRY_EINVAL;
	}
	if (c == NULL)
		return 0;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < n && rv == 0; i++)
		if (futs[i] != NULL && futs[i]->state == FERRY_PENDING)
			rv = cancel_one_locked(c, futs[i]);
	pump_locked(c); /* the ids leave together */
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->lock);
	return rv;
}
