/*
 * graph.c - libferry's side of task graphs.
 *
 * ferry_future_ref writes a future reference (common/futref.h) and
 * records the future in the client's refd map.  When a task is submitted,
 * and again when it is sent if one of its inputs finished meanwhile, each
 * reference is resolved: a result this client holds goes in its place
 * (the scheduler may have dropped it already, as this client
 * acknowledged it), a failure this client knows becomes a failed input,
 * and the rest stay references whose tags go with the task as its deps.
 *
 * The acknowledgement freeze.  Results are acknowledged by seq in the
 * next fetch, and the scheduler drops a result once acknowledged unless a
 * task it holds refers to it.  A fetch and a submit are in flight at
 * once: if the ack of X's result reached the scheduler before a submit
 * listing X in its deps, X's result would be gone when its dependent
 * arrived.  So from the first send of a task with inputs until a submit
 * carrying it is answered (not merely until the connection drops: the
 * scheduler may have it), the task is "holding": each of its inputs
 * counts it in refs_inflight.  A result arriving for a future with
 * refs_inflight > 0 completes it as usual but is frozen: the ack stays
 * below the lowest frozen seq until the count falls to 0, and then
 * catches up with every result taken.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"
#include "futref.h"

FERRY_API int
ferry_future_ref(void *buf, size_t cap, size_t *len, const ferry_future *f)
{
	/* recording f is the library's business, not a change the caller
	 * sees: hence the cast */
	struct ferry_future *mf = (struct ferry_future *)(uintptr_t)f;
	ferry_client        *c;
	int                  rv = 0;

	if (buf == NULL || len == NULL || f == NULL)
		return FERRY_EINVAL;
	c = f->c;
	if (futref_encode_in(buf, cap, len, f->tag, c->session, 0, NULL, 0) !=
	    0)
		return FERRY_ETOOBIG;
	pthread_mutex_lock(&c->lock);
	if (!mf->refd) {
		if (idmap_put(&c->refd, mf->tag, mf) == 0)
			mf->refd = 1;
		else
			rv = FERRY_ENOMEM;
	}
	if (rv == 0)
		c->refs_made = 1;
	pthread_mutex_unlock(&c->lock);
	return rv;
}

/* ---------------------------------------------------------- resolving */

/* A resolution under way. */
struct resolve {
	ferry_client *c;
	uint64_t      max_tag;
	uint64_t     *tags; /* references to tasks not finished here */
	size_t        n, cap;
	int           known; /* references to tasks finished here */
	int           bad;   /* a tag above max_tag */
	int           nomem;
	uint8_t      *tmp;   /* the failed input being spliced */
	size_t        tmp_cap;
};

/* The future of tag, or NULL: one a reference was made to (it may have
 * finished), else one still pending. */
static struct ferry_future *
lookup_locked(ferry_client *c, uint64_t tag)
{
	struct ferry_future *f = idmap_get(&c->refd, tag);
	return f != NULL ? f : idmap_get(&c->pending, tag);
}

/* futref_scan's callback: sort each reference. */
static void
found(void *arg, const struct fut_ref *r)
{
	struct resolve      *s = arg;
	struct ferry_future *d;

	if (r->tag > s->max_tag ||
	    (r->session != 0 && r->session != s->c->session)) {
		s->bad = 1; /* not made here, or of another session */
		return;
	}
	d = r->code < 0 ? NULL : lookup_locked(s->c, r->tag);
	if (d != NULL && d->state == FERRY_DONE) {
		s->known = 1; /* its result goes in: nothing to wait for */
		return;
	}
	if (d != NULL && d->state != FERRY_PENDING)
		s->known = 1; /* becomes a failed input, listed as a dep */
	/* pending, failed (the scheduler ends the task, or gives it the
	 * error with run_anyway: it must see the tag among the deps), or
	 * not known here */
	if (util_grow(&s->tags, &s->cap, s->n, sizeof(*s->tags), 16) != 0) {
		s->nomem = 1;
		return;
	}
	s->tags[s->n++] = r->tag;
}

/* The distinct tags of s as g's deps, and the futures of those pending
 * as its inputs (a reference each).  Returns 0 or FERRY_ENOMEM. */
static int
deps_take_locked(struct resolve *s, struct graph_args *g)
{
	size_t n;

	if (s->n == 0)
		return 0;
	n = util_u64_sort_unique(s->tags, s->n);
	if ((g->inputs = malloc(n * sizeof(*g->inputs))) == NULL)
		return FERRY_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct ferry_future *d = lookup_locked(s->c, s->tags[i]);
		if (d != NULL && d->state == FERRY_PENDING) {
			d->refs++;
			g->inputs[g->n_inputs++] = d;
		}
	}
	g->deps   = s->tags; /* g takes the array */
	g->n_deps = (uint32_t)n;
	s->tags   = NULL;
	return 0;
}

/* A failed input for d into s->tmp: its tag, code and message. */
static int
failed_input(struct resolve *s, const struct ferry_future *d,
    const void **val, size_t *vlen)
{
	const char *msg  = (const char *)d->data;
	size_t      mlen = msg != NULL ? strnlen(msg, d->len) : 0;
	int32_t     code = d->errcode < 0 ? d->errcode : FERRY_ETASK;
	size_t      need = mlen + 80; /* ext header, keys, numbers: < 80 */

	if (need > s->tmp_cap) {
		uint8_t *nb = realloc(s->tmp, need);
		if (nb == NULL)
			return -1;
		s->tmp     = nb;
		s->tmp_cap = need;
	}
	if (futref_encode_in(s->tmp, s->tmp_cap, vlen, d->tag, s->c->session,
	        code, msg, mlen) != 0)
		return -1;
	*val = s->tmp;
	return 0;
}

/* futref_splice's callback: what a finished task's reference becomes. */
static int
subst(void *arg, const struct fut_ref *r, const void **val, size_t *vlen,
    char *err, size_t errlen)
{
	struct resolve      *s = arg;
	struct ferry_future *d;

	if (r->code < 0 || (d = lookup_locked(s->c, r->tag)) == NULL ||
	    d->state == FERRY_PENDING)
		return 1;
	if (d->state == FERRY_DONE) {
		/* a result is one msgpack value; an empty one stands for
		 * nil, as the worker would have sent */
		*val  = d->len > 0 ? (const void *)d->data : "\xc0";
		*vlen = d->len > 0 ? d->len : 1;
		return 0;
	}
	if (failed_input(s, d, val, vlen) != 0) {
		snprintf(err, errlen, "out of memory");
		s->nomem = 1;
		return -1;
	}
	return 0;
}

int
graph_resolve_locked(ferry_client *c, const void *args, size_t len,
    uint64_t max_tag, struct graph_args *g)
{
	struct resolve s;
	char           err[256];
	void          *out;
	size_t         out_len;
	int            n, rv = 0;

	memset(&s, 0, sizeof(s));
	memset(g, 0, sizeof(*g));
	s.c       = c;
	s.max_tag = max_tag;
	n         = futref_scan(args, len, found, &s, err, sizeof(err));
	if (n < 0 || s.bad)
		rv = FERRY_EINVAL;
	else if (s.nomem)
		rv = FERRY_ENOMEM;
	else if (n > 0)
		rv = deps_take_locked(&s, g);
	if (rv == 0 && s.known) {
		/* the scan checked the arguments: only memory can fail */
		if (futref_splice(args, len, subst, &s, &out, &out_len, err,
		        sizeof(err)) != 0)
			rv = FERRY_ENOMEM;
		else {
			g->args = out;
			g->len  = out_len;
		}
	}
	free(s.tags);
	free(s.tmp);
	if (rv != 0)
		graph_args_free_locked(g);
	return rv;
}

void
graph_args_free_locked(struct graph_args *g)
{
	/* the futures of the task being resolved hold the client: these
	 * releases never free it */
	for (uint32_t i = 0; i < g->n_inputs; i++)
		(void)future_release_locked(g->inputs[i]);
	free(g->inputs);
	free(g->deps);
	free(g->args);
	memset(g, 0, sizeof(*g));
}

/* Whether an input of f finished since f was resolved. */
static int
inputs_changed(const struct ferry_future *f)
{
	for (uint32_t i = 0; i < f->n_inputs; i++)
		if (f->inputs[i]->state != FERRY_PENDING)
			return 1;
	return 0;
}

int
graph_take_locked(ferry_client *c, struct ferry_future *f)
{
	struct graph_args g;
	int               rv;

	if (f->n_inputs == 0 || !inputs_changed(f))
		return 0;
	if ((rv = graph_resolve_locked(c, f->args, f->args_len, f->tag - 1,
	         &g)) != 0)
		return rv;
	if (g.args != NULL &&
	    g.len + f->fn_len + 4096 > c->opts.max_message_size) {
		graph_args_free_locked(&g);
		return FERRY_ETOOBIG;
	}
	if (g.args != NULL) {
		free(f->args);
		f->args     = g.args;
		f->args_len = g.len;
		g.args      = NULL;
	}
	free(f->deps);
	f->deps   = g.deps;
	f->n_deps = g.n_deps;
	g.deps    = NULL;
	g.n_deps  = 0;
	if (!f->holding) {
		/* only the inputs still pending matter now; a holding task
		 * keeps the ones it counts in until it is answered */
		struct ferry_future **old   = f->inputs;
		uint32_t              n_old = f->n_inputs;
		f->inputs   = g.inputs;
		f->n_inputs = g.n_inputs;
		g.inputs    = old;
		g.n_inputs  = n_old;
	}
	graph_args_free_locked(&g);
	return 0;
}

/* ------------------------------------------------------------ holding */

void
graph_sent_locked(ferry_client *c, struct ferry_future *f)
{
	(void)c;
	if (f->holding || f->n_inputs == 0)
		return;
	for (uint32_t i = 0; i < f->n_inputs; i++)
		f->inputs[i]->refs_inflight++;
	f->holding = 1;
}

/* Whether pair i of the seq-ordered list is still frozen. */
static int
frz_live(const ferry_client *c, size_t i)
{
	const struct ferry_future *f = idmap_get(&c->frozen, c->frz[2 * i + 1]);
	return f != NULL && f->frozen_seq == c->frz[2 * i];
}

/* The lowest seq among the frozen results, 0: none.  Pairs thawed
 * since are dropped from the front here, each once: O(1) amortised
 * (a walk of the map for every thaw made a submit's answer quadratic
 * in the results it had frozen). */
static uint64_t
frozen_lowest(ferry_client *c)
{
	while (c->frz_len > 0 && !frz_live(c, c->frz_head)) {
		c->frz_head++;
		c->frz_len--;
	}
	if (c->frz_len == 0) {
		c->frz_head = 0;
		return 0;
	}
	return c->frz[2 * c->frz_head];
}

/* Add (seq, tag) to the seq-ordered list.  0, or -1 (no memory). */
static int
frz_add(ferry_client *c, uint64_t seq, uint64_t tag)
{
	size_t end = c->frz_head + c->frz_len, i;

	if (end == c->frz_cap) {
		if (c->frz_head > 0) { /* room at the front: slide down */
			memmove(c->frz, c->frz + 2 * c->frz_head,
			    c->frz_len * 2 * sizeof(*c->frz));
			c->frz_head = 0;
		} else {
			size_t    cap = c->frz_cap ? c->frz_cap * 2 : 64;
			uint64_t *p   = realloc(c->frz, cap * 2 * sizeof(*p));
			if (p == NULL)
				return -1;
			c->frz     = p;
			c->frz_cap = cap;
		}
		end = c->frz_head + c->frz_len;
	}
	/* results come in seq order: the end, nearly always */
	for (i = end; i > c->frz_head && c->frz[2 * (i - 1)] > seq; i--) {
		c->frz[2 * i]     = c->frz[2 * (i - 1)];
		c->frz[2 * i + 1] = c->frz[2 * (i - 1) + 1];
	}
	c->frz[2 * i]     = seq;
	c->frz[2 * i + 1] = tag;
	c->frz_len++;
	return 0;
}

/* No submit in flight refers to f any more: its result may be
 * acknowledged (lock held). */
static void
thaw_locked(ferry_client *c, struct ferry_future *f)
{
	uint64_t seq = f->frozen_seq;

	idmap_del(&c->frozen, f->tag);
	f->frozen_seq = 0;
	if (seq == c->frozen_min)
		c->frozen_min = frozen_lowest(c);
	ack_update_locked(c);
}

/* f's submit was answered, or f completed (lock held). */
static void
unhold_locked(ferry_client *c, struct ferry_future *f)
{
	if (!f->holding)
		return;
	f->holding = 0;
	for (uint32_t i = 0; i < f->n_inputs; i++) {
		struct ferry_future *d = f->inputs[i];
		if (--d->refs_inflight == 0 && d->frozen_seq != 0)
			thaw_locked(c, d);
	}
}

void
graph_answered_locked(ferry_client *c, struct ferry_future *f)
{
	unhold_locked(c, f);
	/* one rejected as full is queued again, and resolved again when
	 * it is sent */
	if (!f->queued)
		graph_drop_locked(c, f);
}

void
graph_drop_locked(ferry_client *c, struct ferry_future *f)
{
	unhold_locked(c, f);
	/* f holds the client: these releases never free it */
	for (uint32_t i = 0; i < f->n_inputs; i++)
		(void)future_release_locked(f->inputs[i]);
	free(f->inputs);
	free(f->deps);
	f->inputs   = NULL;
	f->n_inputs = 0;
	f->deps     = NULL;
	f->n_deps   = 0;
}

void
graph_forget_locked(ferry_client *c, struct ferry_future *f)
{
	graph_drop_locked(c, f);
	if (f->refd && idmap_get(&c->refd, f->tag) == f)
		idmap_del(&c->refd, f->tag);
	f->refd = 0;
}

/* ------------------------------------------------------------ freezing */

int
graph_freeze_locked(ferry_client *c, struct ferry_future *f, uint64_t seq)
{
	if (frz_add(c, seq, f->tag) != 0)
		return -1;
	if (idmap_put(&c->frozen, f->tag, f) != 0)
		return -1; /* the pair added is not live: dropped later */
	f->frozen_seq = seq;
	c->frozen_min = frozen_lowest(c);
	return 0;
}

void
graph_session_reset_locked(ferry_client *c)
{
	struct idmap_iter    it = { 0, 0 };
	struct ferry_future *f;

	while (idmap_iter_next(&c->frozen, &it, NULL, (void **)&f)) {
		f->frozen_seq = 0;
		idmap_del(&c->frozen, f->tag);
	}
	c->frozen_min = 0;
	c->frz_head = c->frz_len = 0;
}
