/*
 * functions.c - the task functions workers registered, and the tasks
 * that wait for one no connected worker runs.
 *
 * Each name has one entry (struct fnreg) with a small index that dispatch
 * uses to match tasks with the workers that declared their function.  It
 * counts the workers that registered it and the queued tasks that name it
 * (an observer of the queued state); the sum over functions no worker
 * runs is what status shows as waiting_function.  Names only tasks named
 * are forgotten with their last task; registered names stay for the
 * scheduler's run (their number is bounded by what workers registered).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/ferry.h"
#include "log.h"
#include "sched_int.h"

#define STATUS_UNSERVED 16 /* functions listed as waited for */

static uint64_t
fnv64(const char *s, size_t n)
{
	return util_hash_bytes(s, n) | 1; /* idmap keys must be non-zero */
}

struct fnreg *
fn_find(struct sched *s, const char *name, size_t n)
{
	struct fnreg *f = idmap_get(&s->fns, fnv64(name, n));
	for (; f != NULL; f = f->next)
		if (strlen(f->name) == n && memcmp(f->name, name, n) == 0)
			return f;
	return NULL;
}

/* The entry for a function name (without NUL), made if need be (refs 0,
 * not served).  Returns NULL when memory runs out. */
struct fnreg *
fn_get(struct sched *s, const char *name, size_t n)
{
	uint64_t      h = fnv64(name, n);
	struct fnreg *f = fn_find(s, name, n);
	uint32_t      idx;

	if (f != NULL)
		return f;
	if (s->n_fn_free == 0 &&
	    util_grow(&s->fn_by_idx, &s->cap_fn_idx, s->n_fn_idx + 1,
	        sizeof(*s->fn_by_idx), 64) != 0)
		return NULL;
	if ((f = calloc(1, sizeof(*f) + n + 1)) == NULL)
		return NULL;
	memcpy(f->name, name, n);
	f->hash = h;
	f->next = idmap_get(&s->fns, h);
	if (idmap_put(&s->fns, h, f) != 0) {
		free(f);
		return NULL;
	}
	/* index 0 means "any worker": ours start at 1 */
	idx = s->n_fn_free > 0 ? s->fn_free[--s->n_fn_free]
	                       : (uint32_t)++s->n_fn_idx;
	f->idx            = idx;
	s->fn_by_idx[idx] = f;
	f->unserved_ms    = sched_now(s);
	s->n_unknown_fns++;
	return f;
}

/* Forget an entry that no worker ever registered and no task names. */
void
fn_drop(struct sched *s, struct fnreg *f)
{
	struct fnreg *head = idmap_get(&s->fns, f->hash), **pp;

	if (f->ever || f->refs > 0 || f->tasks > 0)
		return;
	for (pp = &head; *pp != NULL && *pp != f; pp = &(*pp)->next)
		;
	if (*pp == NULL)
		return;
	*pp = f->next;
	if (head != NULL)
		(void)idmap_put(&s->fns, f->hash, head); /* replaces: no
		                                          * allocation */
	else
		idmap_del(&s->fns, f->hash);
	s->fn_by_idx[f->idx] = NULL;
	if (util_grow(&s->fn_free, &s->cap_fn_free, s->n_fn_free,
	        sizeof(*s->fn_free), 16) == 0)
		s->fn_free[s->n_fn_free++] = f->idx;
	s->n_unknown_fns--;
	free(f);
}

static void fn_wait_over(void *owner, uint64_t idx, uint32_t gen);

/* Start the clock on tasks waiting for f, which no worker runs now. */
void
fn_wait_start(struct sched *s, struct fnreg *f, uint32_t wait_ms)
{
	f->unserved_ms = sched_now(s);
	if (wait_ms == 0)
		return; /* they wait as long as it takes */
	f->wait_gen = ++s->fn_wait_gen;
	timer_add(s, f->unserved_ms + wait_ms, fn_wait_over, f->idx, f->wait_gen);
}

/* A worker registers name: returns its entry with a reference, or NULL
 * when memory runs out. */
struct fnreg *
fn_ref(struct sched *s, const char *name)
{
	struct fnreg *f = fn_get(s, name, strlen(name));

	if (f == NULL)
		return NULL;
	if (f->refs++ == 0) {
		/* its waiting tasks can go now */
		s->n_unserved -= f->queued;
		f->unserved_ms = 0;
		f->unavailable = 0;
		f->wait_gen    = 0;
	}
	if (!f->ever) {
		f->ever = 1;
		s->n_unknown_fns--;
	}
	return f;
}

/* A worker that registered f is gone.  Entries of registered functions
 * stay (with refs 0): a name is not re-hashed per worker restart, and
 * their number is bounded by the functions ever registered. */
void
fn_unref(struct sched *s, struct fnreg *f)
{
	if (f == NULL || f->refs == 0 || --f->refs > 0)
		return;
	s->n_unserved += f->queued;
	fn_wait_start(s, f, s->cfg->function_wait_ms);
}

/* Observer: a task enters or leaves the queued state; its function
 * counts the tasks that wait for it. */
static void
fn_queued(struct sched *s, struct task *t, int from, int to,
    const struct task_end *end, void *arg)
{
	struct fnreg *f = t->fnr;
	int64_t       delta = (to == TASK_QUEUED) - (from == TASK_QUEUED);

	(void)end;
	(void)arg;
	f->queued += (uint64_t)delta;
	if (f->refs == 0)
		s->n_unserved += (uint64_t)delta;
}

int
functions_init(struct sched *s)
{
	idmap_init(&s->fns);
	return sched_observe(s, 1u << TASK_QUEUED, 1u << TASK_QUEUED,
	    fn_queued, NULL);
}

void
functions_fini(struct sched *s)
{
	struct idmap_iter it = { 0, 0 };
	struct fnreg     *f, *next;

	while (idmap_iter_next(&s->fns, &it, NULL, (void **)&f))
		for (; f != NULL; f = next) {
			next = f->next;
			free(f);
		}
	idmap_fini(&s->fns);
	free(s->fn_by_idx);
	free(s->fn_free);
}

/* Whether every configured worker group has a worker connected now
 * (without a list of groups: whether any worker is). */
int
groups_all_up(struct sched *s)
{
	if (s->n_workers == 0)
		return 0;
	for (size_t g = 0; g < s->cfg->n_groups; g++) {
		struct idmap_iter    it = { 0, 0 };
		const struct worker *w;
		int                  up = 0;
		while (!up &&
		    idmap_iter_next(&s->workers, &it, NULL, (void **)&w))
			up = strcmp(w->group, s->cfg->groups[g]) == 0;
		if (!up)
			return 0;
	}
	return 1;
}

/* status_reply's "unserved_functions": functions that queued tasks wait
 * for, with no connected worker that runs them. */
void
functions_status(struct sched *s)
{
	uint32_t n = 0, k = 0;
	uint64_t now = sched_now(s);

	for (size_t i = 1; i <= s->n_fn_idx; i++) {
		const struct fnreg *f = s->fn_by_idx[i];
		if (f != NULL && f->refs == 0 && f->queued > 0)
			n++;
	}
	if (n > STATUS_UNSERVED)
		n = STATUS_UNSERVED;
	proto_put_key(&s->w, "unserved_functions");
	msgpack_pack_array(&s->w.pk, n);
	for (size_t i = 1; i <= s->n_fn_idx && k < n; i++) {
		const struct fnreg *f = s->fn_by_idx[i];
		if (f == NULL || f->refs > 0 || f->queued == 0)
			continue;
		proto_open_map(&s->w);
		proto_put_str(&s->w, "fn", f->name);
		proto_put_uint(&s->w, "queued", f->queued);
		proto_put_uint(&s->w, "waiting_ms", now - f->unserved_ms);
		proto_put_uint(&s->w, "known", f->ever);
		proto_end(&s->w);
		k++;
	}
}

/*
 * Tasks of a function waited long enough for a worker that runs it.  An
 * unknown name keeps waiting while a configured worker group is not up
 * (its workers may bring it); otherwise its queued and delayed tasks fail
 * and new ones are refused until a worker registers it.
 */
static void
fn_wait_over(void *owner, uint64_t idx, uint32_t gen)
{
	struct sched *s = owner;
	struct fnreg *f = idx <= s->n_fn_idx ? s->fn_by_idx[idx] : NULL;
	char          msg[4 * MAX_FN_LEN + 160], name[4 * MAX_FN_LEN + 8];
	uint64_t      waited, n = 0;
	struct idmap_iter it = { 0, 0 };
	struct task      *t;

	if (f == NULL || f->wait_gen != gen || f->refs > 0)
		return;
	if (!f->ever && !groups_all_up(s)) {
		fn_wait_start(s, f, s->cfg->unknown_function_wait_ms);
		return;
	}
	f->unavailable = f->ever; /* an unknown name is forgotten below */
	waited         = sched_now(s) - f->unserved_ms;
	util_escape(name, sizeof(name), f->name, strlen(f->name));
	if (f->ever)
		snprintf(msg, sizeof(msg),
		    "no worker has run function '%s' for %" PRIu64 " ms "
		    "(scheduler.function_wait)",
		    name, waited);
	else
		snprintf(msg, sizeof(msg),
		    "unknown function '%s': no worker registered it within %"
		    PRIu64 " ms (scheduler.unknown_function_wait)",
		    name, waited);
	/* a rare event, not a hot path: look at every task (the walk
	 * allows finishing the one it is at).  The extra count keeps f
	 * while its last task goes */
	f->tasks++;
	while (idmap_iter_next(&s->tasks, &it, NULL, (void **)&t))
		if (t->fnr == f &&
		    (t->state == TASK_QUEUED || t->state == TASK_DELAYED) &&
		    task_finish(s, t, TASK_FAILED, FERRY_ENOFUNC, msg,
		        strlen(msg), "no worker runs its function") == 0)
			n++;
	log_warn("%s: %" PRIu64 " task(s) failed%s", msg, n,
	    f->ever ? "; new ones are refused until a worker registers it"
	            : "");
	if (--f->tasks == 0)
		fn_drop(s, f);
}
