/*
 * graph.c - tasks that wait for the results of other tasks
 * (docs/protocol.md 4.12).
 *
 * A task whose arguments hold future references (common/futref.h) is
 * submitted with the client's ids of the tasks it refers to (its deps)
 * and starts out waiting.  graph_link() counts the inputs still running
 * (t->unmet) and notes the task among each one's dependents (in->dep1,
 * then in->deps, a growing array of ids).  When an input ends, the observer below visits
 * its dependents only (no scans):
 *
 *  - it finished: its result's msgpack value replaces each reference to
 *    it in the dependent's arguments at once, so a result is never kept
 *    for later (each dependent holds its own copy) and no edge outlives
 *    the input; the dependent is queued when the last input came;
 *  - it failed, was cancelled or quarantined: the dependent ends too,
 *    without running: cancelled after a cancelled input, otherwise failed
 *    with FERRY_EDEPENDENCY, its message naming the first task of the
 *    chain that failed and why (a dependent that ended so passes its
 *    message on unchanged).  A dependent submitted with run_anyway gets
 *    {"error": code, "message": str} in the input's place instead.
 *
 * A dependent that ends does so through a work list drained by the
 * outermost observer call, so a long chain ends in a loop, not a
 * recursion as deep as the chain.  A dependent that ended or was
 * cancelled meanwhile is simply not found when its input ends.
 *
 * An input's retries happen before any of this: only final transitions
 * reach the observer.  Each change of a waiting task's arguments is a
 * waiting -> waiting transition, so the journal records it.
 */
#include <inttypes.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "ferry/ferry.h"
#include "futref.h"
#include "log.h"
#include "objref.h"
#include "sched_int.h"

#define MSG_MAX  1024 /* of a dependent's error message */
#define MSG_ROOM 4096 /* a task message's bytes besides fn and args */

/* The tasks waiting for one task: their ids (any may have ended since). */
struct gdeps {
	uint32_t n, cap;
	uint64_t id[];
};

/* A dependent to end, with how. */
struct gend {
	struct gend *next;
	uint64_t     id;
	int          to;
	int32_t      code;
	size_t       len;
	char         msg[];
};

struct graph {
	struct gend *head, *tail;
	int          draining;
};

/* Note dependent id among in's dependents: the first in the task itself
 * (most inputs have one: chains, trees), the others in an array.  0, or
 * -1 (no memory). */
static int
deps_add(struct task *in, uint64_t id)
{
	struct gdeps *d = in->deps;

	if (in->dep1 == 0) {
		in->dep1 = id;
		return 0;
	}
	if (d == NULL || d->n == d->cap) {
		uint32_t      cap = d == NULL ? 2 : d->cap * 2;
		struct gdeps *nd  = realloc(d, sizeof(*d) + cap * sizeof(d->id[0]));
		if (nd == NULL)
			return -1;
		if (d == NULL)
			nd->n = 0;
		nd->cap  = cap;
		in->deps = d = nd;
	}
	d->id[d->n++] = id;
	return 0;
}

/* ------------------------------------------------ ending dependents */

/* End dependent id later (the work list), as to with code and msg. */
static void
end_later(struct sched *s, uint64_t id, int to, int32_t code,
    const char *msg, size_t len)
{
	struct graph *g = s->graph;
	struct gend  *e;

	if (len > MSG_MAX)
		len = MSG_MAX;
	if ((e = malloc(sizeof(*e) + len + 1)) == NULL) {
		/* it stays waiting: better than ending it with no word of
		 * why; cancelling it still works */
		log_error("task %" PRIu64 ": out of memory ending it after "
		          "its input: it keeps waiting",
		    id);
		return;
	}
	e->next = NULL;
	e->id   = id;
	e->to   = to;
	e->code = code;
	e->len  = len;
	memcpy(e->msg, msg, len);
	e->msg[len] = '\0';
	if (g->tail != NULL)
		g->tail->next = e;
	else
		g->head = e;
	g->tail = e;
}

/* end_later with a message made from fmt. */
static void end_laterf(struct sched *s, uint64_t id, int to, int32_t code,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
end_laterf(struct sched *s, uint64_t id, int to, int32_t code,
    const char *fmt, ...)
{
	char    msg[MSG_MAX];
	va_list ap;
	int     n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	end_later(s, id, to, code, msg,
	    n < 0 ? 0 : (size_t)n >= sizeof(msg) ? sizeof(msg) - 1 : (size_t)n);
}

/* End the dependents on the work list, and theirs, until none is left
 * (only the outermost call does). */
static void
drain(struct sched *s)
{
	struct graph *g = s->graph;
	struct gend  *e;

	if (g->draining)
		return;
	g->draining = 1;
	while ((e = g->head) != NULL) {
		struct task *t = idmap_get(&s->tasks, e->id);

		if ((g->head = e->next) == NULL)
			g->tail = NULL;
		if (t != NULL && t->state == TASK_WAITING) {
			t->graph_ended = 1;
			if (task_finish(s, t, e->to, e->code, e->msg, e->len,
			        "an input did not finish") != 0)
				t->graph_ended = 0; /* no memory: it waits */
		}
		free(e);
	}
	g->draining = 0;
}

/* ------------------------------------------- results into arguments */

struct splice_ctx {
	uint64_t    tag;
	uint64_t    session; /* the dependent's */
	const void *val;
	size_t      len;
};

static int
subst_one(void *arg, const struct fut_ref *r, const void **val, size_t *vlen,
    char *err, size_t errlen)
{
	const struct splice_ctx *c = arg;

	if (r->tag != c->tag)
		return 1; /* another input's, still to come */
	/* (a task whose session ended has none to compare with) */
	if (r->session != 0 && c->session != 0 && r->session != c->session) {
		snprintf(err, errlen,
		    "a reference to task %" PRIu64 " of another client "
		    "session (%" PRIx64 "): references name tasks of the "
		    "same session only",
		    r->tag, r->session);
		return -1;
	}
	*val  = c->val;
	*vlen = c->len;
	return 0;
}

/* Put val (msgpack, len bytes; empty: nil) in place of every reference
 * to task tag in t's arguments.  0, or -1 with err. */
static int
splice(struct task *t, uint64_t tag, const void *val, size_t len, char *err,
    size_t errlen)
{
	struct splice_ctx c = { tag, t->sess != NULL ? t->sess->id : 0, val,
		len };
	void             *out;
	size_t            out_len;

	if (len == 0) {
		c.val = "\xc0";
		c.len = 1;
	}
	if (futref_splice(t->args, t->args_len, subst_one, &c, &out, &out_len,
	        err, errlen) != 0)
		return -1;
	if (out_len > UINT32_MAX) {
		free(out);
		snprintf(err, errlen, "arguments over 4 GiB");
		return -1;
	}
	if (t->args_owned)
		free(t->args);
	t->args       = out;
	t->args_len   = (uint32_t)out_len;
	t->args_owned = 1;
	return 0;
}

/* {"error": code, "message": msg}: what a run_anyway dependent gets in
 * place of an input that did not finish.  malloc'd, or NULL. */
static void *
error_value(int32_t code, const char *msg, size_t len, size_t *out_len)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (msgpack_pack_map(&pk, 2) != 0 ||
	    msgpack_pack_str_with_body(&pk, "error", 5) != 0 ||
	    msgpack_pack_int32(&pk, code) != 0 ||
	    msgpack_pack_str_with_body(&pk, "message", 7) != 0 ||
	    msgpack_pack_str_with_body(&pk, msg, len) != 0) {
		msgpack_sbuffer_destroy(&sb);
		return NULL;
	}
	*out_len = sb.size;
	return msgpack_sbuffer_release(&sb);
}

/* ------------------------------------------- a dependent moves on */

/* Locality keys of the objects a msgpack value names. */
struct keys {
	uint64_t k[PROTO_MAX_TASK_OBJS];
	uint32_t n, max;
};

static void
add_key(void *arg, const struct obj_ref *ref)
{
	struct keys *k = arg;
	char         key[OBJREF_MAX_PATH + 64];
	size_t       n = objref_key(ref, key, sizeof(key));

	if (n > 0 && k->n < k->max)
		k->k[k->n++] = disp_key(key, n);
}

/* The keys of the objects val (len bytes) names, at most max. */
static void
keys_of(struct keys *k, const void *val, size_t len, uint32_t max)
{
	char err[128];

	k->n   = 0;
	k->max = max;
	if (len > 0 && memchr(val, OBJREF_EXT_TYPE, len) != NULL)
		(void)objref_scan(val, len, max, add_key, k, err, sizeof(err));
	/* a bad reference is a hint lost here, and an error at the
	 * worker that loads it */
}

/* t's arguments changed: queue it if no input is left (its locality
 * keys now include the objects its inputs' results name), or record the
 * change (waiting -> waiting). */
static void
advance(struct sched *s, struct task *t)
{
	struct keys k;

	/* what a worker is sent must fit in a message: a result too big
	 * for that goes by path (an object reference) */
	if ((uint64_t)t->args_len + t->fn_len + MSG_ROOM >
	    s->cfg->max_message_size) {
		end_laterf(s, t->id, TASK_FAILED, FERRY_ETOOBIG,
		    "its arguments, with its inputs' results in place, are "
		    "%" PRIu32 " bytes: over what a message to a worker may "
		    "hold (scheduler.max_message_size, %zu bytes); pass large "
		    "results by path (object references)",
		    t->args_len, s->cfg->max_message_size);
		return;
	}
	if (t->unmet > 0) {
		task_set_state(s, t, TASK_WAITING, "an input finished");
		return;
	}
	keys_of(&k, t->args, t->args_len, PROTO_MAX_TASK_OBJS - t->n_objs);
	if (k.n > 0) {
		uint64_t *o = malloc((t->n_objs + k.n) * sizeof(*o));
		if (o != NULL) { /* else: locality lost, nothing else */
			memcpy(o, t->objs, t->n_objs * sizeof(*o));
			memcpy(o + t->n_objs, k.k, k.n * sizeof(*o));
			if (t->objs_owned)
				free(t->objs);
			t->objs       = o;
			t->objs_owned = 1;
			t->n_objs     = (uint8_t)(t->n_objs + k.n);
		}
	}
	task_set_state(s, t, TASK_QUEUED, "its inputs finished");
}

/* The message of a dependent of task tag (the client's id) that ended as
 * to with code and msg: it names the first task of the chain that did
 * not finish (by id only: the same words whether the input ended before
 * or after the dependent came, when its function is no longer known). */
static size_t
origin_message(char *buf, size_t cap, uint64_t tag, int to, int32_t code,
    const char *msg, size_t len, int passed_on)
{
	const char *how = to == TASK_CANCELLED ? "was cancelled" :
	                  to == TASK_DEAD      ? "was quarantined" :
	                                         "failed";
	int         n;

	if (passed_on) { /* it ended because of an input: the same words */
		n = snprintf(buf, cap, "%.*s", (int)len, msg);
		return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
	}
	if (to == TASK_CANCELLED)
		n = snprintf(buf, cap, "input task %" PRIu64 " %s: %.*s", tag,
		    how, (int)len, msg);
	else
		n = snprintf(buf, cap, "input task %" PRIu64 " %s (%s): %.*s",
		    tag, how, ferry_strerror(code), (int)len, msg);
	return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}

/* Input tag of dependent t did not finish (ended as to with code; msg,
 * len: the dependent's message, made by origin_message). */
static void
input_failed(struct sched *s, struct task *t, uint64_t tag, int to,
    int32_t code, const char *msg, size_t len)
{
	char   err[256];
	void  *val;
	size_t vlen;

	if (!t->run_anyway) {
		if (to == TASK_CANCELLED)
			end_later(s, t->id, TASK_CANCELLED, FERRY_ECANCELED,
			    msg, len);
		else
			end_later(s, t->id, TASK_FAILED, FERRY_EDEPENDENCY,
			    msg, len);
		return;
	}
	if ((val = error_value(code, msg, len, &vlen)) == NULL ||
	    splice(t, tag, val, vlen, err, sizeof(err)) != 0) {
		if (val == NULL)
			snprintf(err, sizeof(err), "out of memory");
		free(val);
		end_laterf(s, t->id, TASK_FAILED, FERRY_EDEPENDENCY,
		    "cannot put the error of input task %" PRIu64
		    " in its place: %s",
		    tag, err);
		return;
	}
	free(val);
	t->unmet--;
	advance(s, t);
}

/* Input tag of dependent t finished with a result (val, len bytes). */
static void
input_done(struct sched *s, struct task *t, uint64_t tag, const void *val,
    size_t len)
{
	char err[256];

	if (splice(t, tag, val, len, err, sizeof(err)) != 0) {
		end_laterf(s, t->id, TASK_FAILED, FERRY_EDEPENDENCY,
		    "cannot put the result of input task %" PRIu64
		    " in its place: %s",
		    tag, err);
		return;
	}
	t->unmet--;
	advance(s, t);
}

/* A result names objects: the worker that made it is where they were
 * written, so their dependents go there first (a hint). */
static void
note_objects(struct sched *s, const struct task *in, const void *val,
    size_t len)
{
	struct keys k;

	if (in->result_from == 0)
		return;
	keys_of(&k, val, len, PROTO_MAX_TASK_OBJS);
	for (uint32_t i = 0; i < k.n; i++)
		(void)disp_worker_object(s->disp, in->result_from, k.k[i], 1);
}

/* Observer: a task ended; its dependents move on. */
static void
on_final(struct sched *s, struct task *in, int from, int to,
    const struct task_end *end, void *arg)
{
	struct gdeps *d = in->deps;
	char          msg[MSG_MAX];
	size_t        len = 0;
	uint32_t      n   = d != NULL ? d->n : 0;

	(void)from;
	(void)arg;
	if (in->dep1 == 0)
		return;
	if (to == TASK_DONE)
		note_objects(s, in, end->data, end->len);
	else
		len = origin_message(msg, sizeof(msg), in->tag, to, end->code,
		    end->data, end->len, in->graph_ended);
	for (uint32_t i = 0; i <= n; i++) {
		struct task *t =
		    idmap_get(&s->tasks, i == 0 ? in->dep1 : d->id[i - 1]);
		if (t == NULL || t->state != TASK_WAITING)
			continue; /* ended or cancelled meanwhile */
		if (to == TASK_DONE)
			input_done(s, t, in->tag, end->data, end->len);
		else
			input_failed(s, t, in->tag, to, end->code, msg, len);
	}
	drain(s);
}

/* ------------------------------------------------------ linking */

/* A failed input the client already knew of (a reference with an error
 * in t's arguments), looked for by tag. */
struct known {
	uint64_t       tag;
	struct fut_ref r;
	int            found;
};

static void
find_known(void *arg, const struct fut_ref *r)
{
	struct known *k = arg;

	if (!k->found && r->tag == k->tag && r->code < 0) {
		k->r     = *r;
		k->found = 1;
	}
}

/* Input tag of t ended with code (not 0) and msg before t was linked:
 * the same as if it had ended while t waited. */
static void
ended_failed(struct sched *s, struct task *t, uint64_t tag, int32_t code,
    const char *msg, size_t len)
{
	char   buf[MSG_MAX];
	int    to = code == FERRY_ECANCELED ? TASK_CANCELLED :
	            code == FERRY_EDEAD     ? TASK_DEAD :
	                                      TASK_FAILED;
	size_t n  = origin_message(buf, sizeof(buf), tag, to, code, msg, len,
	     code == FERRY_EDEPENDENCY);

	t->unmet++; /* input_failed counts it off */
	input_failed(s, t, tag, to, code, buf, n);
}

/* An input of t that is not running: its result still held (done), a
 * failure the client put in the reference, or nothing known. */
static void
link_ended(struct sched *s, struct session *se, struct task *t,
    uint64_t tag)
{
	const struct result *r = idmap_get(&se->done, tag);
	struct known         k = { tag, { 0 }, 0 };
	char                 err[256];

	if (r != NULL && r->code == 0) {
		t->unmet++; /* input_done counts it off */
		input_done(s, t, tag, r->data, r->len);
		return;
	}
	if (r != NULL) {
		ended_failed(s, t, tag, r->code, (const char *)r->data, r->len);
		return;
	}
	(void)futref_scan(t->args, t->args_len, find_known, &k, err,
	    sizeof(err));
	if (k.found) {
		ended_failed(s, t, tag, k.r.code, k.r.msg, k.r.msg_len);
		return;
	}
	end_laterf(s, t->id, TASK_FAILED, FERRY_EDEPENDENCY,
	    "input task %" PRIu64 " is not known to this session: never "
	    "submitted, or its result was already fetched and acknowledged "
	    "(keep its future until the tasks that refer to it are "
	    "submitted)",
	    tag);
}

/* Link waiting task t of session se to its inputs tags[0..n-1] (sorted,
 * unique; overwritten): the running ones first, counted; then the ended
 * ones, whose results go in at once.  One count more holds it waiting
 * until every input is seen. */
static void
link_tags(struct sched *s, struct session *se, struct task *t,
    uint64_t *tags, uint32_t n)
{
	uint64_t id = t->id;

	t->unmet = 1;
	for (uint32_t i = 0; i < n; i++) {
		struct task *in = idmap_get(&se->tags, tags[i]);
		if (tags[i] == t->tag) {
			end_laterf(s, id, TASK_FAILED, FERRY_EDEPENDENCY,
			    "it refers to itself (task %" PRIu64 ")", t->tag);
			return;
		}
		if (in == NULL)
			continue;
		if (deps_add(in, id) != 0) {
			end_later(s, id, TASK_FAILED, FERRY_ENOMEM,
			    "out of memory linking it to its inputs", 39);
			return;
		}
		t->unmet++;
		tags[i] = 0; /* linked */
	}
	for (uint32_t i = 0; i < n && s->graph->head == NULL; i++)
		if (tags[i] != 0 && (t = idmap_get(&s->tasks, id)) != NULL &&
		    t->state == TASK_WAITING)
			link_ended(s, se, t, tags[i]);
	if (s->graph->head == NULL && (t = idmap_get(&s->tasks, id)) != NULL &&
	    t->state == TASK_WAITING && --t->unmet == 0)
		advance(s, t);
}

int
graph_check(const struct session *se, const struct proto_task *pt,
    char *why, size_t len)
{
	if (se->full.count == 0)
		return 0;
	for (uint32_t i = 0; i < pt->n_deps; i++)
		if (idmap_get(&se->full, pt->deps[i].via.u64) != NULL) {
			snprintf(why, len,
			    "queue is full: its input task %" PRIu64 " was "
			    "refused as full and has not come again yet",
			    pt->deps[i].via.u64);
			return FERRY_EFULL;
		}
	return 0;
}

void
graph_link(struct sched *s, struct session *se, struct task *t,
    const struct proto_task *pt)
{
	uint64_t *tags;

	if ((tags = malloc(sizeof(*tags) * pt->n_deps)) == NULL) {
		end_later(s, t->id, TASK_FAILED, FERRY_ENOMEM,
		    "out of memory linking it to its inputs", 39);
	} else {
		for (uint32_t i = 0; i < pt->n_deps; i++)
			tags[i] = pt->deps[i].via.u64;
		link_tags(s, se, t, tags,
		    (uint32_t)util_u64_sort_unique(tags, pt->n_deps));
		free(tags);
	}
	drain(s);
}

/* The tags a task's references name. */
struct tagset {
	uint64_t *tags;
	size_t    n, cap;
	int       oom;
};

static void
collect_tag(void *arg, const struct fut_ref *r)
{
	struct tagset *ts = arg;

	if (r->code < 0)
		return; /* a failure the client knew of: nothing to wait for */
	if (util_grow(&ts->tags, &ts->cap, ts->n, sizeof(*ts->tags), 8) != 0) {
		ts->oom = 1;
		return;
	}
	ts->tags[ts->n++] = r->tag;
}

int
graph_restores_waiting(const struct task *t)
{
	char err[128];

	return t->args_len > 0 &&
	    memchr(t->args, FUTREF_EXT_TYPE, t->args_len) != NULL &&
	    futref_scan(t->args, t->args_len, NULL, NULL, err, sizeof(err)) >
	        0;
}

void
graph_restore(struct sched *s)
{
	struct idmap_iter it = { 0, 0 };
	struct task      *t;
	uint64_t         *ids, id;
	size_t            n = 0;
	char              err[256];

	if (s->n_waiting == 0)
		return;
	/* collected first: linking may end tasks, changing the map */
	if ((ids = malloc(sizeof(*ids) * s->n_waiting)) == NULL) {
		log_error("graph: out of memory relinking %" PRIu64 " restored "
		          "waiting task(s); they wait until cancelled",
		    s->n_waiting);
		return;
	}
	while (idmap_iter_next(&s->tasks, &it, &id, (void **)&t) &&
	    n < s->n_waiting)
		if (t->state == TASK_WAITING)
			ids[n++] = id;
	for (size_t i = 0; i < n; i++) {
		struct tagset ts = { NULL, 0, 0, 0 };
		if ((t = idmap_get(&s->tasks, ids[i])) == NULL ||
		    t->state != TASK_WAITING || t->sess == NULL)
			continue;
		if (futref_scan(t->args, t->args_len, collect_tag, &ts, err,
		        sizeof(err)) < 0 ||
		    ts.oom) {
			if (ts.oom)
				snprintf(err, sizeof(err), "out of memory "
				    "relinking it after a restart");
			end_later(s, t->id, TASK_FAILED, FERRY_EDEPENDENCY, err,
			    strlen(err));
		} else {
			link_tags(s, t->sess, t, ts.tags,
			    (uint32_t)util_u64_sort_unique(ts.tags, ts.n));
		}
		free(ts.tags);
		drain(s);
	}
	free(ids);
}

/* ------------------------------------------------------- set up */

int
graph_init(struct sched *s)
{
	if ((s->graph = calloc(1, sizeof(*s->graph))) == NULL)
		return -1;
	return sched_observe(s, 0, TASK_FINAL_MASK, on_final, NULL);
}

void
graph_fini(struct sched *s)
{
	struct gend *e, *next;

	if (s->graph == NULL)
		return;
	for (e = s->graph->head; e != NULL; e = next) {
		next = e->next;
		free(e);
	}
	free(s->graph);
	s->graph = NULL;
}
