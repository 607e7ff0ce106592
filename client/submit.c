/*
 * submit.c - libferry's submissions: ferry_submit and ferry_map make
 * futures and queue them; the queue leaves in "submit" messages of up to
 * max_batch tasks, at most MAX_SUBMITS_INFLIGHT at a time; what the
 * scheduler accepted frees its arguments, what it rejected as full goes
 * back to the front of the queue and is sent again as room appears
 * (back-pressure, FERRY_FULL_BLOCK), anything else it rejected fails.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client_int.h"
#include "objref.h"

/* ------------------------------------------------------------ futures */

/* The locality keys found in a task's arguments, NUL-separated. */
struct keys {
	char    *buf;
	size_t   len, cap;
	uint32_t n;
	int      nomem;
};

static void
add_key(void *arg, const struct obj_ref *ref)
{
	struct keys *k = arg;
	char         key[OBJREF_MAX_PATH + 80];
	size_t       n = objref_key(ref, key, sizeof(key));
	if (n == 0 || k->nomem)
		return;
	if (k->len + n + 1 > k->cap) {
		size_t ncap = (k->cap + n + 1) * 2;
		char  *nb   = realloc(k->buf, ncap);
		if (nb == NULL) {
			k->nomem = 1;
			return;
		}
		k->buf = nb;
		k->cap = ncap;
	}
	memcpy(k->buf + k->len, key, n + 1);
	k->len += n + 1;
	k->n++;
}

/* Find the object references in args (their locality keys go with the
 * task).  Returns 0, FERRY_EINVAL for a malformed reference, or
 * FERRY_ENOMEM. */
static int
find_keys(const void *args, size_t len, struct keys *k)
{
	char err[256];
	memset(k, 0, sizeof(*k));
	if (objref_scan(args, len, PROTO_MAX_TASK_OBJS, add_key, k, err,
	        sizeof(err)) < 0) {
		free(k->buf);
		return FERRY_EINVAL;
	}
	if (k->nomem) {
		free(k->buf);
		return FERRY_ENOMEM;
	}
	return 0;
}

/* Free a future that was never queued or counted. */
static void
future_discard(struct ferry_future *f)
{
	free(f->fn);
	free(f->args);
	free(f->keys);
	free(f);
}

/* A new future for one task (lock held; args not yet copied): its
 * future references resolved (once any was made), locality keys found.
 * Returns 0 or an error, with nothing changed. */
static int
future_make_locked(ferry_client *c, const char *fn, size_t fn_len,
    const void *args, size_t len, struct ferry_future **out)
{
	struct ferry_future *f;
	struct graph_args    g;
	struct keys          k;
	int                  rv;

	memset(&g, 0, sizeof(g));
	if (c->refs_made &&
	    (rv = graph_resolve_locked(c, args, len, c->next_tag, &g)) != 0)
		return rv;
	if (g.args != NULL) {
		/* results put in place: the task has these arguments now */
		args = g.args;
		len  = g.len;
		if (len + fn_len + 4096 > c->opts.max_message_size) {
			graph_args_free_locked(&g);
			return FERRY_ETOOBIG;
		}
	}
	if ((rv = find_keys(args, len, &k)) != 0) {
		graph_args_free_locked(&g);
		return rv;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    (f->fn = malloc(fn_len + 1)) == NULL ||
	    (g.args == NULL && len > 0 && (f->args = malloc(len)) == NULL)) {
		if (f != NULL)
			future_discard(f);
		free(k.buf);
		graph_args_free_locked(&g);
		return FERRY_ENOMEM;
	}
	memcpy(f->fn, fn, fn_len + 1);
	f->fn_len = fn_len;
	if (g.args != NULL)
		f->args = g.args; /* f takes the copy */
	else if (len > 0)
		memcpy(f->args, args, len);
	f->args_len = len;
	f->keys     = k.buf;
	f->n_keys   = k.n;
	f->deps     = g.deps;
	f->n_deps   = g.n_deps;
	f->inputs   = g.inputs;
	f->n_inputs = g.n_inputs;
	*out        = f;
	return 0;
}

static int
submit_locked(ferry_client *c, const char *fn, size_t fn_len,
    const void *args, size_t len, const struct proto_task_opts *po,
    ferry_future **out)
{
	struct ferry_future *f;
	int                  rv;

	if ((rv = future_make_locked(c, fn, fn_len, args, len, &f)) != 0)
		return rv;
	f->opts  = *po;
	f->c     = c;
	f->tag   = ++c->next_tag;
	f->state = FERRY_PENDING;
	f->refs  = 3; /* the caller's, the client's, the queue's */
	f->queued = 1;
	if (c->offline) {
		/* the scheduler has been out of reach for reconnect_ms: the
		 * task fails at once, as the pending ones did */
		f->refs   = 2;
		f->queued = 0;
		c->refs++;
		c->stats.submitted++;
		future_complete_locked(c, f, FERRY_FAILED, FERRY_ECLOSED,
		    c->down_msg, strlen(c->down_msg));
		*out = f;
		return 0;
	}
	if (idmap_put(&c->pending, f->tag, f) != 0) {
		c->next_tag--;
		graph_drop_locked(c, f);
		future_discard(f);
		return FERRY_ENOMEM;
	}
	f->unsent = 1;
	c->unsent++;
	c->refs++;
	c->stats.submitted++;
	if (c->sq_tail != NULL)
		c->sq_tail->next = f;
	else
		c->sq_head = f;
	c->sq_tail = f;
	*out       = f;
	return 0;
}

FERRY_API int
ferry_object_ref(void *buf, size_t cap, size_t *len, const char *path,
    const char *loader, uint64_t size, const uint8_t *sha256)
{
	if (buf == NULL || len == NULL)
		return FERRY_EINVAL;
	return objref_encode(buf, cap, len, path, loader, size, sha256) == 0
	    ? 0
	    : FERRY_EINVAL;
}

static int
check_fn(const char *fn, size_t *fn_len)
{
	if (fn == NULL)
		return FERRY_EINVAL;
	*fn_len = strlen(fn);
	if (*fn_len == 0 || *fn_len > 255)
		return FERRY_EINVAL;
	return 0;
}

FERRY_API void
ferry_task_opts_init(struct ferry_task_opts *o)
{
	if (o == NULL)
		return;
	o->size           = sizeof(*o);
	o->retries        = -1;
	o->backoff_ms     = -1;
	o->backoff_max_ms = -1;
	o->timeout_ms     = -1;
	o->retry_errors   = -1;
	o->run_anyway     = -1;
}

/* One option: -1 leaves it unset (the scheduler's default), 0 ... max
 * sets it. */
static int
task_opt(int v, int max, uint32_t bit, uint32_t *set, uint32_t *out)
{
	if (v == -1)
		return 0;
	if (v < 0 || v > max)
		return FERRY_EINVAL;
	*set |= bit;
	*out = (uint32_t)v;
	return 0;
}

/* Check the caller's options and turn them into the wire form. */
static int
task_opts_convert(const struct ferry_task_opts *o, struct proto_task_opts *p)
{
	int rv = 0;

	memset(p, 0, sizeof(*p));
	if (o == NULL)
		return 0;
	if (o->size < sizeof(size_t))
		return FERRY_EINVAL;
#define TASK_OPT(field, max, bit)                                          \
	if (rv == 0 && OPT_HAS(o, struct ferry_task_opts, field))          \
	rv = task_opt(o->field, max, bit, &p->set, &p->field)
	TASK_OPT(retries, 1000, PROTO_OPT_RETRIES);
	TASK_OPT(backoff_ms, INT32_MAX, PROTO_OPT_BACKOFF);
	TASK_OPT(backoff_max_ms, INT32_MAX, PROTO_OPT_BACKOFF_MAX);
	TASK_OPT(timeout_ms, INT32_MAX, PROTO_OPT_TIMEOUT);
	TASK_OPT(retry_errors, INT32_MAX, PROTO_OPT_RETRY_ERRORS);
	TASK_OPT(run_anyway, INT32_MAX, PROTO_OPT_RUN_ANYWAY);
#undef TASK_OPT
	/* flags: any non-zero value is on */
	if (p->retry_errors > 1)
		p->retry_errors = 1;
	if (p->run_anyway > 1)
		p->run_anyway = 1;
	return rv;
}

/*
 * Make room for one more unsent task (lock held): returns 0 when there is
 * room, FERRY_EFULL (FERRY_FULL_FAIL) or, after waiting, FERRY_ETIMEDOUT
 * or FERRY_ECLOSED.  *gone is set if the client was freed meanwhile (by
 * a ferry_client_close in another thread); its lock is then released.
 */
static int
room_locked(ferry_client *c, size_t need, const struct timespec *ts,
    int *gone)
{
	int rv = 0;

	*gone = 0;
	if (c->unsent + need <= c->opts.max_unsent)
		return 0;
	if (c->opts.on_full == FERRY_FULL_FAIL)
		return FERRY_EFULL;
	c->refs++; /* the client stays while we wait, even if closed */
	while (rv == 0 && !c->closing &&
	    c->unsent + need > c->opts.max_unsent) {
		pump_locked(c);
		rv = wait_locked(c, c->opts.submit_timeout_ms, ts);
	}
	if (c->closing)
		rv = FERRY_ECLOSED;
	else if (c->unsent + need <= c->opts.max_unsent)
		rv = 0;
	if (client_release_locked(c))
		*gone = 1;
	return rv;
}

/* Take back a task of a map that failed half-way (lock held): one not
 * sent yet is dropped here, one sent is cancelled at the scheduler (its
 * future stays, with the client's reference only, until the result of
 * the cancel arrives). */
static void
withdraw_locked(ferry_client *c, struct ferry_future *f)
{
	if (f->queued)
		future_complete_locked(c, f, FERRY_CANCELLED, FERRY_ECANCELED,
		    "withdrawn", 9);
	else if (f->state == FERRY_PENDING &&
	    cancel_add_locked(c, f->tag) == 0)
		f->cancel_requested = 1;
	future_release_locked(f); /* the caller's */
}

FERRY_API int
ferry_submit_opts(ferry_client *c, const char *fn, const void *args,
    size_t len, const struct ferry_task_opts *opts, ferry_future **out)
{
	/* a map of one */
	if (c == NULL || out == NULL)
		return FERRY_EINVAL;
	return ferry_map_opts(c, fn, 1, &args, &len, opts, out);
}

FERRY_API int
ferry_submit(ferry_client *c, const char *fn, const void *args, size_t len,
    ferry_future **out)
{
	return ferry_submit_opts(c, fn, args, len, NULL, out);
}

FERRY_API int
ferry_map_opts(ferry_client *c, const char *fn, size_t n,
    const void *const *args, const size_t *lens,
    const struct ferry_task_opts *opts, ferry_future **futs)
{
	struct proto_task_opts po;
	struct timespec        ts;
	size_t                 fn_len, i;
	int                    rv = 0, gone = 0;

	if (c == NULL || futs == NULL || (n > 0 && (args == NULL || lens == NULL)))
		return FERRY_EINVAL;
	if ((rv = check_fn(fn, &fn_len)) != 0)
		return rv;
	if ((rv = task_opts_convert(opts, &po)) != 0)
		return rv;
	for (i = 0; i < n; i++) {
		if (args[i] == NULL && lens[i] > 0)
			return FERRY_EINVAL;
		if (lens[i] + fn_len + 4096 > c->opts.max_message_size)
			return FERRY_ETOOBIG;
	}
	deadline_of(c->opts.submit_timeout_ms > 0 ? c->opts.submit_timeout_ms
	                                          : 0,
	    &ts);
	pthread_mutex_lock(&c->lock);
	if (c->closing) {
		pthread_mutex_unlock(&c->lock);
		return FERRY_ECLOSED;
	}
	/* FERRY_FULL_FAIL: all of them fit now, or none is taken */
	if (c->opts.on_full == FERRY_FULL_FAIL && n > 0 &&
	    (rv = room_locked(c, n, &ts, &gone)) != 0) {
		pthread_mutex_unlock(&c->lock); /* FAIL never waits */
		return rv;
	}
	for (i = 0; i < n; i++) {
		/* FERRY_FULL_BLOCK: one chunk at a time as room appears */
		if (c->unsent >= c->opts.max_unsent) {
			rv = room_locked(c, 1, &ts, &gone);
			if (gone) /* freed by a close; only when i == 0, as
			           * futures hold the client */
				return rv;
			if (rv != 0)
				break;
		}
		if ((rv = submit_locked(c, fn, fn_len, args[i], lens[i], &po,
		         &futs[i])) != 0)
			break;
		if ((i & 4095) == 4095)
			pump_locked(c); /* start sending big maps early */
	}
	if (rv != 0) {
		/* all or nothing: withdraw the ones submitted so far */
		for (size_t j = 0; j < i; j++) {
			withdraw_locked(c, futs[j]);
			futs[j] = NULL;
		}
	}
	pump_locked(c);
	pthread_mutex_unlock(&c->lock);
	return rv;
}

FERRY_API int
ferry_map(ferry_client *c, const char *fn, size_t n, const void *const *args,
    const size_t *lens, ferry_future **futs)
{
	return ferry_map_opts(c, fn, n, args, lens, NULL, futs);
}

/* ----------------------------------------------------------- sending */

/* Put f at the front of the submit queue (lock held). */
static void
queue_front_locked(ferry_client *c, struct ferry_future *f)
{
	f->next    = c->sq_head;
	f->queued  = 1;
	c->sq_head = f;
	if (c->sq_tail == NULL)
		c->sq_tail = f;
}

/* Pack f as an entry of the submit being written (lock held). */
static void
submit_entry_locked(ferry_client *c, const struct ferry_future *f)
{
	const char *keys[PROTO_MAX_TASK_OBJS], *k = f->keys;
	size_t      lens[PROTO_MAX_TASK_OBJS];

	for (uint32_t i = 0; i < f->n_keys; i++) {
		keys[i] = k;
		lens[i] = strlen(k);
		k += lens[i] + 1;
	}
	proto_write_submit_entry(&c->w, f->tag, f->fn, f->fn_len, f->args,
	    f->args_len, keys, lens, f->n_keys, &f->opts, f->deps, f->n_deps);
}

/* Move up to cap queued futures into submit request r and pack them
 * into c->w, as many as fit in half a message (lock held); the queue's
 * reference on each moves to r.  A future cancelled while queued is
 * dropped, and so is one whose references cannot be resolved again
 * (it fails). */
static void
submit_take_locked(ferry_client *c, struct creq *r, uint32_t cap)
{
	struct ferry_future *f;
	size_t               budget = c->opts.max_message_size / 2;
	int                  rv;

	proto_writer_reset(&c->w);
	proto_write_submit_begin(&c->w);
	while ((f = c->sq_head) != NULL && r->n_futs < cap) {
		if (r->n_futs > 0 &&
		    c->w.buf.size + f->args_len + f->fn_len +
		            9 * (size_t)f->n_deps + 128 >
		        budget)
			break;
		c->sq_head = f->next;
		if (c->sq_head == NULL)
			c->sq_tail = NULL;
		f->next   = NULL;
		f->queued = 0;
		if (f->state == FERRY_PENDING &&
		    (rv = graph_take_locked(c, f)) != 0) {
			static const char msg[] = "cannot put the results of "
			                          "the tasks its arguments refer "
			                          "to in place";
			future_complete_locked(c, f, FERRY_FAILED, rv, msg,
			    sizeof(msg) - 1);
		}
		if (f->state != FERRY_PENDING) {
			/* cancelled (or failed) before it was sent: drop
			 * the queue's reference */
			future_release_locked(f);
			continue;
		}
		submit_entry_locked(c, f);
		r->futs[r->n_futs++] = f;
	}
	proto_write_submit_end(&c->w);
}

/* Build and send one submit message of at most cap tasks from the queue
 * (lock held); backoff as in struct creq. */
static void
send_submit_locked(ferry_client *c, uint32_t cap, int backoff)
{
	struct creq *r;

	if ((r = creq_new(c, CREQ_SUBMIT)) == NULL)
		return;
	if ((r->futs = malloc(sizeof(*r->futs) * cap)) == NULL) {
		creq_clear(r);
		return;
	}
	r->backoff = backoff;
	submit_take_locked(c, r, cap);
	if (r->n_futs == 0) {
		creq_clear(r);
		return;
	}
	if (creq_send(c, r) != 0) {
		/* put them back in front, in order (they were the front) */
		for (uint32_t i = r->n_futs; i-- > 0;)
			queue_front_locked(c, r->futs[i]);
		creq_clear(r);
		c->retry_at_ms = util_now_ms() + RETRY_FULL_MS;
		return;
	}
	for (uint32_t i = 0; i < r->n_futs; i++)
		graph_sent_locked(c, r->futs[i]);
	c->submits_inflight++;
}

/*
 * Tasks sent and to be sent again (refused as full, or their submit lost
 * with the connection) go back among the queued ones in the order they
 * were submitted (by tag; fs is in that order, as sent): several submits
 * are in flight at once, and their answers or losses come in any order,
 * so putting each one's tasks in front would send later tasks first, and
 * a task would reach the scheduler before the input it refers to.  The
 * queue is in tag order, and this walks it only as far as the last of fs.
 */
void
requeue_front_locked(ferry_client *c, struct ferry_future **fs, uint32_t n)
{
	struct ferry_future **pp = &c->sq_head;

	for (uint32_t i = 0; i < n; i++) {
		struct ferry_future *f = fs[i];
		if (f->state != FERRY_PENDING || f->queued) {
			future_release_locked(f);
			continue;
		}
		c->stats.resent++;
		while (*pp != NULL && (*pp)->tag < f->tag)
			pp = &(*pp)->next;
		f->next   = *pp;
		f->queued = 1;
		*pp       = f;
		if (f->next == NULL)
			c->sq_tail = f;
		pp = &f->next;
	}
}

void
submit_pump_locked(ferry_client *c)
{
	uint64_t now = util_now_ms();
	int      room;

	if (!c->full) {
		while (c->sq_head != NULL &&
		    c->submits_inflight < MAX_SUBMITS_INFLIGHT &&
		    now >= c->retry_at_ms) {
			int before = c->submits_inflight;
			send_submit_locked(c, (uint32_t)c->opts.max_batch, 0);
			if (c->submits_inflight == before)
				break;
		}
		return;
	}
	/* backing off a full queue: one submit at a time, as many tasks as
	 * results came back (room freed; gathered for ROOM_GAP_MS at
	 * least), or a probe when the back-off ran out or the last probe
	 * was taken whole */
	room = c->full_room > 0 && now >= c->full_sent_ms + ROOM_GAP_MS;
	if (c->sq_head != NULL && c->submits_inflight == 0 &&
	    (room || c->full_go || now >= c->retry_at_ms)) {
		uint64_t n    = room ? c->full_room : c->full_probe;
		int      kind = room ? 2 : 1;
		if (n > c->opts.max_batch)
			n = c->opts.max_batch;
		c->full_room    = 0;
		c->full_go      = 0;
		c->full_sent_ms = now;
		c->retry_at_ms  = now + c->full_backoff_ms;
		send_submit_locked(c, (uint32_t)n, kind);
	} else if (c->full_room > 0 &&
	    c->full_sent_ms + ROOM_GAP_MS < c->retry_at_ms) {
		/* the I/O thread wakes for the room */
		c->retry_at_ms = c->full_sent_ms + ROOM_GAP_MS;
	}
}

/* ------------------------------------------------------------ answers */

/* Mark f accepted by the scheduler (or finally refused): it no longer
 * counts against max_unsent. */
static void
unsent_done_locked(ferry_client *c, struct ferry_future *f)
{
	if (f->unsent) {
		f->unsent = 0;
		c->unsent--;
	}
}

/* The scheduler rejected tasks of a submit as full, and took accepted
 * (lock held): back off.  The next submit goes when results show room,
 * or after the back-off, which doubles while rejections go on. */
static void
full_rejected_locked(ferry_client *c, const struct creq *r,
    uint32_t accepted)
{
	if (!c->full || !r->backoff || c->full_backoff_ms == 0)
		c->full_backoff_ms = RETRY_FULL_MS; /* the first rejection */
	else if ((c->full_backoff_ms *= 2) > RETRY_FULL_MAX_MS)
		c->full_backoff_ms = RETRY_FULL_MAX_MS;
	c->full        = 1;
	c->full_go     = 0;
	c->full_room   = 0;
	c->full_probe  = accepted > 0 ? accepted : 1;
	c->retry_at_ms = util_now_ms() + c->full_backoff_ms;
}

/* A probe sent while backing off was taken whole (lock held): there may
 * be more room, so send a probe twice as big at once; back to normal
 * once a whole max_batch fits. */
static void
full_accepted_locked(ferry_client *c)
{
	c->full_backoff_ms = RETRY_FULL_MS;
	c->full_go         = 1;
	if (c->full_probe < c->opts.max_batch / 2)
		c->full_probe *= 2;
	else
		c->full_probe = (uint32_t)c->opts.max_batch;
	if (c->full_probe >= c->opts.max_batch) {
		c->full        = 0;
		c->retry_at_ms = 0;
	}
}

void
full_reset_locked(ferry_client *c)
{
	c->full            = 0;
	c->full_go         = 0;
	c->full_room       = 0;
	c->full_backoff_ms = 0;
	c->retry_at_ms     = 0;
}

/* What the scheduler accepted and rejected of submit r (lock held). */
static void
submitted_locked(ferry_client *c, struct creq *r,
    const struct proto_msg *m)
{
	struct ferry_future **full  = NULL;
	uint32_t              nfull = 0;

	for (uint32_t i = 0; i < m->n_results; i++) {
		const struct proto_result *res = &m->results[i];
		struct ferry_future       *f   = idmap_get(&c->pending, res->id);
		if (f == NULL)
			continue;
		if (res->code == FERRY_EFULL &&
		    c->opts.on_full == FERRY_FULL_BLOCK) {
			/* back-pressure: send it again shortly, unless it
			 * was cancelled meanwhile (the scheduler never had
			 * it, so it is cancelled here) */
			if (f->cancel_requested) {
				future_complete_locked(c, f, FERRY_CANCELLED,
				    FERRY_ECANCELED, "cancelled", 9);
				continue;
			}
			if (full == NULL)
				full = calloc(m->n_results, sizeof(*full));
			if (full != NULL) {
				f->refs++;
				full[nfull++] = f;
				continue;
			}
		}
		future_complete_locked(c, f, FERRY_FAILED, res->code, res->data,
		    res->len);
	}
	if (nfull > 0) {
		/* those rejected as full keep their arguments and go back
		 * to the front of the queue, sent again as room appears */
		full_rejected_locked(c, r, r->n_futs - nfull);
		requeue_front_locked(c, full, nfull);
	} else if (c->full && r->backoff == 1) {
		/* a probe taken whole: maybe there is more room (for room
		 * the results showed, no more is known) */
		full_accepted_locked(c);
	}
	free(full);
	/* the accepted ones no longer need their arguments */
	for (uint32_t i = 0; i < r->n_futs; i++) {
		struct ferry_future *f = r->futs[i];
		if (f->state == FERRY_PENDING && !f->queued) {
			free(f->args);
			f->args     = NULL;
			f->args_len = 0;
			unsent_done_locked(c, f);
		}
	}
}

void
submit_answer_locked(ferry_client *c, struct creq *r, int rv,
    const struct proto_msg *m, const char *err)
{
	c->submits_inflight--;
	if (rv == 0 && m->type == PROTO_SUBMITTED) {
		submitted_locked(c, r, m);
	} else {
		/* the whole message was refused: fail its tasks with the
		 * reason */
		const char *why  = rv != 0 ? err
		     : m->msg != NULL ? m->msg
		                      : "unexpected answer to submit";
		int         code = rv != 0 ? rv
		            : m->type == PROTO_ERROR ? m->code
		                                     : FERRY_EPROTO;
		for (uint32_t i = 0; i < r->n_futs; i++)
			future_complete_locked(c, r->futs[i], FERRY_FAILED,
			    code, why, strlen(why));
	}
	for (uint32_t i = 0; i < r->n_futs; i++) {
		graph_answered_locked(c, r->futs[i]);
		future_release_locked(r->futs[i]);
	}
}
