/*
 * dispatch.c - the scheduler's queue and its locality-aware policy.
 *
 * Queues hold task ids with lazy deletion: an id is live while the task
 * map has it, so taking a task from one queue leaves a dead entry in the
 * others that is skipped when reached.  A per-object queue exists only
 * while some worker holds the object.
 */
#include "dispatch.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define PICK_OBJS_MAX 256   /* held objects looked at per pick */
#define DEFER_MAX 1024      /* queued tasks set aside per pick */

struct qent {
	uint64_t id;
	uint32_t fn;
	uint32_t n_objs;
	uint64_t objs[];
};

struct objq {
	uint64_t    key;
	struct u64q q;
	uint64_t   *holders;
	size_t      n_holders, cap_holders;
};

struct wstate {
	uint64_t  id;
	int       idle;
	uint64_t *objs;
	size_t    n_objs, cap_objs;
	uint32_t *fns;  /* the functions it runs */
	size_t    n_fns;
	uint64_t *bits; /* the same as a bit set */
	size_t    n_words;
};

struct disp {
	struct idmap tasks;   /* id -> qent, queued only */
	struct u64q  fifo;    /* every queued id, oldest first */
	struct idmap objs;    /* key -> objq */
	struct idmap workers; /* id -> wstate */
	struct idmap aside;   /* fn + 1 -> u64q of tasks set aside */
	size_t       n_aside; /* entries in those queues, dead ones too */
	size_t       n_queued;
};

uint64_t
disp_key(const char *key, size_t len)
{
	return util_hash_bytes(key, len) | 1;
}

struct disp *
disp_new(void)
{
	struct disp *d = calloc(1, sizeof(*d));
	if (d == NULL)
		return NULL;
	idmap_init(&d->tasks);
	u64q_init(&d->fifo);
	idmap_init(&d->objs);
	idmap_init(&d->workers);
	idmap_init(&d->aside);
	return d;
}

static void
objq_free(struct objq *q)
{
	u64q_fini(&q->q);
	free(q->holders);
	free(q);
}

static void
wstate_free(struct wstate *w)
{
	free(w->objs);
	free(w->fns);
	free(w->bits);
	free(w);
}

/* Drop every set-aside queue. */
static void
aside_clear(struct disp *d)
{
	for (size_t i = 0; i < d->aside.cap; i++) {
		struct u64q *q = d->aside.slots[i].val;
		if (d->aside.slots[i].key == 0)
			continue;
		u64q_fini(q);
		free(q);
	}
	idmap_fini(&d->aside);
	idmap_init(&d->aside);
	d->n_aside = 0;
}

void
disp_free(struct disp *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->tasks.cap; i++)
		if (d->tasks.slots[i].key != 0)
			free(d->tasks.slots[i].val);
	for (size_t i = 0; i < d->objs.cap; i++)
		if (d->objs.slots[i].key != 0)
			objq_free(d->objs.slots[i].val);
	for (size_t i = 0; i < d->workers.cap; i++)
		if (d->workers.slots[i].key != 0)
			wstate_free(d->workers.slots[i].val);
	aside_clear(d);
	idmap_fini(&d->aside);
	idmap_fini(&d->tasks);
	idmap_fini(&d->objs);
	idmap_fini(&d->workers);
	u64q_fini(&d->fifo);
	free(d);
}

static struct objq *
objq_get(struct disp *d, uint64_t key, int create)
{
	struct objq *q = idmap_get(&d->objs, key);
	if (q != NULL || !create)
		return q;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->key = key;
	u64q_init(&q->q);
	if (idmap_put(&d->objs, key, q) != 0) {
		free(q);
		return NULL;
	}
	return q;
}

/* Forget an object's queue once nothing refers to it. */
static void
objq_maybe_drop(struct disp *d, struct objq *q)
{
	if (u64q_len(&q->q) == 0 && q->n_holders == 0) {
		idmap_del(&d->objs, q->key);
		objq_free(q);
	}
}

int
disp_enqueue(struct disp *d, uint64_t id, uint32_t fn, const uint64_t *objs,
    uint32_t n_objs, int front)
{
	struct qent *e;

	if (id == 0 || idmap_get(&d->tasks, id) != NULL)
		return -1;
	if (n_objs > DISP_MAX_OBJS)
		n_objs = DISP_MAX_OBJS;
	if ((e = malloc(sizeof(*e) + n_objs * sizeof(uint64_t))) == NULL)
		return -1;
	e->id     = id;
	e->fn     = fn;
	e->n_objs = n_objs;
	if (n_objs > 0)
		memcpy(e->objs, objs, n_objs * sizeof(uint64_t));
	if (idmap_put(&d->tasks, id, e) != 0 ||
	    (front ? u64q_push_front(&d->fifo, id)
	           : u64q_push(&d->fifo, id)) != 0) {
		idmap_del(&d->tasks, id);
		free(e);
		return -1;
	}
	d->n_queued++;
	for (uint32_t i = 0; i < n_objs; i++) {
		/* only objects some worker holds have a queue: a task for
		 * an object nobody holds yet is simply the oldest task for
		 * whoever asks (and if a push fails, the task still waits
		 * in the FIFO: locality is lost, nothing else) */
		struct objq *q = objq_get(d, objs[i], 0);
		if (q != NULL && q->n_holders > 0)
			(void)(front ? u64q_push_front(&q->q, id)
			             : u64q_push(&q->q, id));
	}
	return 0;
}

/* Dequeue a live id (its entries elsewhere become dead). */
static void
take(struct disp *d, uint64_t id)
{
	free(idmap_del(&d->tasks, id));
	d->n_queued--;
}

void
disp_remove(struct disp *d, uint64_t id)
{
	if (idmap_get(&d->tasks, id) != NULL)
		take(d, id);
}

int
disp_is_queued(const struct disp *d, uint64_t id)
{
	return idmap_get(&d->tasks, id) != NULL;
}

size_t
disp_queued(const struct disp *d)
{
	return d->n_queued;
}

int
disp_worker_add(struct disp *d, uint64_t worker)
{
	struct wstate *w;
	if (idmap_get(&d->workers, worker) != NULL)
		return 0;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return -1;
	w->id = worker;
	if (idmap_put(&d->workers, worker, w) != 0) {
		free(w);
		return -1;
	}
	return 0;
}

static void
holder_remove(struct disp *d, uint64_t obj, uint64_t worker)
{
	struct objq *q = objq_get(d, obj, 0);
	if (q == NULL)
		return;
	for (size_t i = 0; i < q->n_holders; i++) {
		if (q->holders[i] == worker) {
			q->holders[i] = q->holders[--q->n_holders];
			break;
		}
	}
	objq_maybe_drop(d, q);
}

void
disp_worker_remove(struct disp *d, uint64_t worker)
{
	struct wstate *w = idmap_del(&d->workers, worker);
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->n_objs; i++)
		holder_remove(d, w->objs[i], worker);
	wstate_free(w);
}

int
disp_worker_functions(struct disp *d, uint64_t worker, const uint32_t *fns,
    size_t n)
{
	struct wstate *w = idmap_get(&d->workers, worker);
	uint32_t       top = 0;
	uint32_t      *list;
	uint64_t      *bits;
	size_t         words;

	if (w == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (fns[i] > top)
			top = fns[i];
	words = (size_t)top / 64 + 1;
	list  = malloc((n + 1) * sizeof(*list));
	bits  = calloc(words, sizeof(*bits));
	if (list == NULL || bits == NULL) {
		free(list);
		free(bits);
		free(w->fns);
		free(w->bits);
		w->fns  = NULL;
		w->bits = NULL;
		w->n_fns = w->n_words = 0;
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		list[i] = fns[i];
		bits[fns[i] / 64] |= (uint64_t)1 << (fns[i] % 64);
	}
	free(w->fns);
	free(w->bits);
	w->fns     = list;
	w->n_fns   = n;
	w->bits    = bits;
	w->n_words = words;
	return 0;
}

/* Whether worker state w (NULL: unknown) runs function fn. */
static int
runs(const struct wstate *w, uint32_t fn)
{
	if (fn == 0)
		return 1;
	return w != NULL && fn / 64 < w->n_words &&
	    (w->bits[fn / 64] >> (fn % 64) & 1) != 0;
}

/* Set queued task e aside for a worker that runs its function.  Returns
 * 0, or -1 when memory runs out (the caller keeps it in the FIFO). */
static int
set_aside(struct disp *d, const struct qent *e)
{
	struct u64q *q = idmap_get(&d->aside, (uint64_t)e->fn + 1);

	if (q == NULL) {
		if ((q = calloc(1, sizeof(*q))) == NULL)
			return -1;
		u64q_init(q);
		if (idmap_put(&d->aside, (uint64_t)e->fn + 1, q) != 0) {
			free(q);
			return -1;
		}
	}
	if (u64q_push(q, e->id) != 0)
		return -1;
	d->n_aside++;
	return 0;
}

int
disp_worker_object(struct disp *d, uint64_t worker, uint64_t obj, int holds)
{
	struct wstate *w = idmap_get(&d->workers, worker);
	struct objq   *q;
	size_t         i;

	if (w == NULL)
		return -1;
	for (i = 0; i < w->n_objs && w->objs[i] != obj; i++)
		;
	if (!holds) {
		if (i == w->n_objs)
			return 0;
		w->objs[i] = w->objs[--w->n_objs];
		holder_remove(d, obj, worker);
		return 0;
	}
	if (i < w->n_objs)
		return 0; /* already known */
	if ((q = objq_get(d, obj, 1)) == NULL)
		return -1;
	if (util_grow(&w->objs, &w->cap_objs, w->n_objs, sizeof(*w->objs),
	        8) != 0 ||
	    util_grow(&q->holders, &q->cap_holders, q->n_holders,
	        sizeof(*q->holders), 4) != 0)
		return -1;
	w->objs[w->n_objs++]        = obj;
	q->holders[q->n_holders++] = worker;
	return 0;
}

void
disp_worker_idle(struct disp *d, uint64_t worker, int idle)
{
	struct wstate *w = idmap_get(&d->workers, worker);
	if (w != NULL)
		w->idle = idle;
}

size_t
disp_holders(const struct disp *d, uint64_t obj)
{
	struct objq *q = idmap_get(&d->objs, obj);
	return q != NULL ? q->n_holders : 0;
}

/* Whether another worker that holds one of e's objects is idle now. */
static int
idle_holder_elsewhere(struct disp *d, const struct qent *e, uint64_t worker)
{
	for (uint32_t i = 0; i < e->n_objs; i++) {
		struct objq *q = idmap_get(&d->objs, e->objs[i]);
		if (q == NULL)
			continue;
		for (size_t j = 0; j < q->n_holders; j++) {
			struct wstate *w;
			if (q->holders[j] == worker)
				return 0; /* we hold it ourselves */
			w = idmap_get(&d->workers, q->holders[j]);
			if (w != NULL && w->idle)
				return 1;
		}
	}
	return 0;
}

/* Take up to max set-aside tasks that w runs into out (from n). */
static size_t
pick_aside(struct disp *d, const struct wstate *w, uint64_t *out, size_t n,
    size_t max)
{
	uint64_t id;

	for (size_t i = 0; w != NULL && i < w->n_fns && n < max; i++) {
		struct u64q *q = idmap_get(&d->aside, (uint64_t)w->fns[i] + 1);
		while (q != NULL && n < max && u64q_pop(q, &id)) {
			d->n_aside--;
			if (!disp_is_queued(d, id))
				continue;
			take(d, id);
			out[n++] = id;
		}
	}
	return n;
}

size_t
disp_pick(struct disp *d, uint64_t worker, uint64_t *out, size_t max,
    size_t *local)
{
	struct wstate *w = idmap_get(&d->workers, worker);
	uint64_t       deferred[DEFER_MAX];
	size_t         n = 0, n_local = 0, n_def = 0;
	uint64_t       id;

	/* 0. tasks set aside for a function it runs: older than the FIFO */
	if (d->n_aside > 0)
		n = pick_aside(d, w, out, n, max);

	/* 1. tasks whose objects this worker holds */
	if (w != NULL) {
		size_t looked = 0;
		for (size_t i = 0; i < w->n_objs && n < max &&
		    looked < PICK_OBJS_MAX;
		     i++, looked++) {
			struct objq *q = idmap_get(&d->objs, w->objs[i]);
			if (q == NULL)
				continue;
			while (n < max && u64q_pop(&q->q, &id)) {
				const struct qent *e = idmap_get(&d->tasks, id);
				if (e == NULL || !runs(w, e->fn))
					continue; /* the FIFO still has it */
				take(d, id);
				out[n++] = id;
				n_local++;
			}
		}
	}

	/* 2. the oldest tasks, leaving to an idle holder what it holds, and
	 *    to others what this worker cannot run */
	while (n < max && u64q_pop(&d->fifo, &id)) {
		const struct qent *e = idmap_get(&d->tasks, id);
		if (e == NULL)
			continue;
		if (!runs(w, e->fn)) {
			if (set_aside(d, e) == 0)
				continue;
			if (n_def < DEFER_MAX) {
				deferred[n_def++] = id; /* stays in front */
				continue;
			}
			(void)u64q_push_front(&d->fifo, id); /* slot just freed */
			break;
		}
		if (e->n_objs > 0 && n_def < DEFER_MAX &&
		    idle_holder_elsewhere(d, e, worker)) {
			deferred[n_def++] = id;
			continue;
		}
		take(d, id);
		out[n++] = id;
	}
	/* set-aside tasks keep their place at the front, in order */
	while (n_def > 0)
		if (u64q_push_front(&d->fifo, deferred[--n_def]) != 0)
			break; /* cannot happen: their slots were just freed */
	if (local != NULL)
		*local = n_local;
	return n;
}

void
disp_compact(struct disp *d)
{
	if (d->n_queued == 0)
		aside_clear(d); /* only dead entries are left there */
	idmap_shrink(&d->tasks);
	u64q_shrink(&d->fifo);
	for (size_t i = 0; i < d->objs.cap; i++) {
		struct objq *q = d->objs.slots[i].val;
		if (d->objs.slots[i].key != 0)
			u64q_shrink(&q->q);
	}
}
