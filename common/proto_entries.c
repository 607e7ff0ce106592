/*
 * proto_entries.c - decode the lists inside messages: task entries (with
 * their locality keys, options and timeouts), result entries, ids, the
 * [a, b] pairs of reports and orders, locality keys and cache counters.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ferry/ferry.h"
#include "proto_int.h"

/* Entry i of list key must be an array of at least 3 elements (what
 * they are, for the error): 0 or an error. */
static int
entry_check(struct dctx *c, const char *key, uint32_t i,
    const msgpack_object *e, const char *what)
{
	if (e->type == MSGPACK_OBJECT_ARRAY && e->via.array.size >= 3)
		return 0;
	return pd_bad(c, "%s[%u]: expected an array %s, got %s", key, i, what,
	    e->type == MSGPACK_OBJECT_ARRAY ? "a shorter array"
	                                    : pd_obj_type(e));
}

/* Decodes entry i of list key into out. */
typedef int (*entry_fn)(struct dctx *c, const char *key, uint32_t i,
    const msgpack_object *e, void *out);

/* The entries of the list key of map (an array; it may be absent unless
 * required), each into size bytes of a zone array: returns it (NULL when
 * there are none) with their count in *n, and 0 or an error in *rv. */
static void *
decode_list(struct dctx *c, const msgpack_object *map, const char *key,
    int required, size_t size, entry_fn fn, uint32_t *n, int *rv)
{
	const msgpack_object *arr;
	char                 *a;

	if ((*rv = pd_get_array(c, map, key, &arr, required)) != 0 ||
	    arr == NULL || (*n = arr->via.array.size) == 0)
		return NULL;
	if ((a = msgpack_zone_malloc(&c->d->zone, size * *n)) == NULL) {
		*rv = FERRY_ENOMEM;
		return NULL;
	}
	for (uint32_t i = 0; i < *n && *rv == 0; i++)
		*rv = fn(c, key, i, &arr->via.array.ptr[i],
		    a + (size_t)i * size);
	return a;
}

/* The options map of a submit entry (tasks[i][4]); unknown keys are
 * ignored so that newer clients can talk to this scheduler.  Counts and
 * durations take integers only (true is not 1 retry); retry_errors, a
 * flag, takes 0/1 or a boolean, as docs/protocol.md says. */
static int
decode_task_opts(struct dctx *c, uint32_t i, const msgpack_object *o,
    struct proto_task_opts *opts)
{
	static const struct {
		const char *key;
		uint32_t    bit;
		size_t      off;
		uint32_t    max;
		int         flag; /* a boolean is accepted too */
	} keys[] = {
		{ "retries", PROTO_OPT_RETRIES,
		    offsetof(struct proto_task_opts, retries), 1000, 0 },
		{ "backoff_ms", PROTO_OPT_BACKOFF,
		    offsetof(struct proto_task_opts, backoff_ms), 86400000,
		    0 },
		{ "backoff_max_ms", PROTO_OPT_BACKOFF_MAX,
		    offsetof(struct proto_task_opts, backoff_max_ms),
		    86400000, 0 },
		{ "timeout_ms", PROTO_OPT_TIMEOUT,
		    offsetof(struct proto_task_opts, timeout_ms), 0x7fffffff,
		    0 },
		{ "retry_errors", PROTO_OPT_RETRY_ERRORS,
		    offsetof(struct proto_task_opts, retry_errors), 1, 1 },
		{ "run_anyway", PROTO_OPT_RUN_ANYWAY,
		    offsetof(struct proto_task_opts, run_anyway), 1, 1 },
	};

	if (o->type == MSGPACK_OBJECT_NIL)
		return 0;
	if (o->type != MSGPACK_OBJECT_MAP)
		return pd_bad(c, "tasks[%u][4] (options): expected a map, got %s",
		    i, pd_obj_type(o));
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		const msgpack_object *v = pd_map_get(o, keys[k].key);
		uint64_t              x;
		if (v == NULL)
			continue;
		if (v->type == MSGPACK_OBJECT_BOOLEAN && keys[k].flag)
			x = v->via.boolean ? 1 : 0;
		else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			x = v->via.u64;
		else
			return pd_bad(c,
			    "tasks[%u][4] (options): '%s': expected a "
			    "non-negative integer%s, got %s",
			    i, keys[k].key, keys[k].flag ? " or a boolean" : "",
			    pd_obj_type(v));
		if (x > keys[k].max)
			return pd_bad(c,
			    "tasks[%u][4] (options): '%s': %llu is over the "
			    "limit of %u",
			    i, keys[k].key, (unsigned long long)x, keys[k].max);
		*(uint32_t *)((char *)opts + keys[k].off) = (uint32_t)x;
		opts->set |= keys[k].bit;
	}
	return 0;
}

static int
decode_tasks_timeout(struct dctx *c, uint32_t i, const msgpack_object *o,
    struct proto_task *t)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    o->via.u64 > UINT32_MAX)
		return pd_bad(c,
		    "tasks[%u][3] (timeout_ms): expected an integer 0..%u, "
		    "got %s",
		    i, UINT32_MAX, pd_obj_type(o));
	t->timeout_ms = (uint32_t)o->via.u64;
	return 0;
}

/* The locality keys of a submit entry (tasks[i][3]). */
static int
decode_task_objs(struct dctx *c, uint32_t i, const msgpack_object *o,
    struct proto_task *t)
{
	if (o->type != MSGPACK_OBJECT_ARRAY)
		return pd_bad(c,
		    "tasks[%u][3] (objects): expected an array of strings, "
		    "got %s",
		    i, pd_obj_type(o));
	if (o->via.array.size > PROTO_MAX_TASK_OBJS)
		return pd_bad(c,
		    "tasks[%u][3] (objects): %u keys, the limit is %d", i,
		    o->via.array.size, PROTO_MAX_TASK_OBJS);
	for (uint32_t k = 0; k < o->via.array.size; k++) {
		const msgpack_object *e = &o->via.array.ptr[k];
		if (e->type != MSGPACK_OBJECT_STR || e->via.str.size == 0)
			return pd_bad(c,
			    "tasks[%u][3][%u] (object key): expected a "
			    "non-empty string, got %s",
			    i, k, pd_obj_type(e));
	}
	t->objs   = o->via.array.ptr;
	t->n_objs = o->via.array.size;
	return 0;
}

/* The ids of the tasks a submit entry's arguments refer to
 * (tasks[i][5]). */
static int
decode_task_deps(struct dctx *c, uint32_t i, const msgpack_object *o,
    struct proto_task *t)
{
	if (o->type == MSGPACK_OBJECT_NIL)
		return 0;
	if (o->type != MSGPACK_OBJECT_ARRAY)
		return pd_bad(c,
		    "tasks[%u][5] (deps): expected an array of task ids, got "
		    "%s",
		    i, pd_obj_type(o));
	for (uint32_t k = 0; k < o->via.array.size; k++) {
		const msgpack_object *e = &o->via.array.ptr[k];
		if (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    e->via.u64 == 0)
			return pd_bad(c,
			    "tasks[%u][5][%u] (dep): expected a task id (an "
			    "integer above 0), got %s",
			    i, k, pd_obj_type(e));
	}
	t->deps   = o->via.array.ptr;
	t->n_deps = o->via.array.size;
	return 0;
}

/* Entry i of a submit's or a tasks' "tasks": [id, fn, args, ...]. */
static int
decode_task(struct dctx *c, const char *key, uint32_t i,
    const msgpack_object *e, void *out)
{
	struct proto_task    *t = out;
	const msgpack_object *f;
	int                   rv;

	if ((rv = entry_check(c, key, i, e, "[id, fn, args]")) != 0)
		return rv;
	f = e->via.array.ptr;
	if (f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return pd_bad(c,
		    "tasks[%u][0] (id): expected an integer, got %s", i,
		    pd_obj_type(&f[0]));
	if (f[1].type != MSGPACK_OBJECT_STR || f[1].via.str.size == 0)
		return pd_bad(c,
		    "tasks[%u][1] (fn): expected a non-empty string, got "
		    "%s",
		    i, f[1].type == MSGPACK_OBJECT_STR ? "an empty string"
		                                    : pd_obj_type(&f[1]));
	if (f[2].type != MSGPACK_OBJECT_BIN)
		return pd_bad(c,
		    "tasks[%u][2] (args): expected bytes holding msgpack, got "
		    "%s",
		    i, pd_obj_type(&f[2]));
	memset(t, 0, sizeof(*t));
	t->id       = f[0].via.u64;
	t->fn       = f[1].via.str.ptr;
	t->fn_len   = f[1].via.str.size;
	t->args     = f[2].via.bin.ptr;
	t->args_len = f[2].via.bin.size;
	if (e->via.array.size <= 3)
		return 0;
	if (c->type == PROTO_TASKS)
		return decode_tasks_timeout(c, i, &f[3], t);
	if ((rv = decode_task_objs(c, i, &f[3], t)) != 0)
		return rv;
	if (e->via.array.size > 4 &&
	    (rv = decode_task_opts(c, i, &f[4], &t->opts)) != 0)
		return rv;
	if (e->via.array.size > 5)
		return decode_task_deps(c, i, &f[5], t);
	return 0;
}

int
pd_tasks(struct dctx *c, const msgpack_object *map, struct proto_msg *m)
{
	int rv;

	m->tasks = decode_list(c, map, "tasks", 1, sizeof(struct proto_task),
	    decode_task, &m->n_tasks, &rv);
	return rv;
}

/* An optional array of non-empty strings (locality keys). */
int
pd_keys(struct dctx *c, const msgpack_object *map, const char *key,
    const msgpack_object **out, uint32_t *n)
{
	const msgpack_object *arr;
	int                   rv;

	*out = NULL;
	*n   = 0;
	if ((rv = pd_get_array(c, map, key, &arr, 0)) != 0 || arr == NULL)
		return rv;
	for (uint32_t i = 0; i < arr->via.array.size; i++) {
		const msgpack_object *e = &arr->via.array.ptr[i];
		if (e->type != MSGPACK_OBJECT_STR || e->via.str.size == 0)
			return pd_bad(c, "%s[%u]: expected a non-empty string, "
			              "got %s",
			    key, i, pd_obj_type(e));
	}
	*out = arr->via.array.ptr;
	*n   = arr->via.array.size;
	return 0;
}

/* The optional "cache" map of a work request. */
int
pd_cache(struct dctx *c, const msgpack_object *map, struct proto_cache *pc)
{
	const msgpack_object *o = pd_map_get(map, "cache");
	int                   rv;

	memset(pc, 0, sizeof(*pc));
	if (o == NULL)
		return 0;
	if (o->type != MSGPACK_OBJECT_MAP)
		return pd_bad(c, "field 'cache': expected a map, got %s",
		    pd_obj_type(o));
	if ((rv = pd_get_uint(c, o, "objects", &pc->objects, 1)) != 0 ||
	    (rv = pd_get_uint(c, o, "bytes", &pc->bytes, 1)) != 0 ||
	    (rv = pd_get_uint(c, o, "loads", &pc->loads, 1)) != 0 ||
	    (rv = pd_get_uint(c, o, "hits", &pc->hits, 1)) != 0 ||
	    (rv = pd_get_uint(c, o, "evictions", &pc->evictions, 1)) != 0 ||
	    (rv = pd_get_uint(c, o, "failures", &pc->failures, 0)) != 0)
		return rv;
	pc->present = 1;
	return 0;
}

/* The code of result entry i: 0 or a negative error code. */
static int
decode_result_code(struct dctx *c, const char *key, uint32_t i,
    const msgpack_object *o, int32_t *code)
{
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 == 0) {
		*code = 0;
		return 0;
	}
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER &&
	    o->via.i64 >= INT32_MIN) {
		*code = (int32_t)o->via.i64;
		return 0;
	}
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		return pd_bad(c,
		    "%s[%u][1] (code): expected 0 or a negative error code, "
		    "got %llu",
		    key, i, (unsigned long long)o->via.u64);
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		return pd_bad(c,
		    "%s[%u][1] (code): expected 0 or a negative error code, "
		    "got %lld",
		    key, i, (long long)o->via.i64);
	return pd_bad(c,
	    "%s[%u][1] (code): expected 0 or a negative error code, got %s",
	    key, i, pd_obj_type(o));
}

/* Entry i of a results list: [id, code, value | error, attempts?]. */
static int
decode_result(struct dctx *c, const char *key, uint32_t i,
    const msgpack_object *e, void *out)
{
	struct proto_result  *r = out;
	const msgpack_object *f;
	int                   rv;

	if ((rv = entry_check(c, key, i, e, "[id, code, value]")) != 0)
		return rv;
	f = e->via.array.ptr;
	if (f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return pd_bad(c,
		    "%s[%u][0] (id): expected an integer, got %s", key, i,
		    pd_obj_type(&f[0]));
	if ((rv = decode_result_code(c, key, i, &f[1], &r->code)) != 0)
		return rv;
	if (r->code == 0 && f[2].type != MSGPACK_OBJECT_BIN)
		return pd_bad(c,
		    "%s[%u][2] (value): expected bytes holding msgpack, "
		    "got %s",
		    key, i, pd_obj_type(&f[2]));
	if (r->code != 0 && f[2].type != MSGPACK_OBJECT_STR)
		return pd_bad(c,
		    "%s[%u][2] (error): expected a string, got %s", key, i, pd_obj_type(&f[2]));
	r->data     = r->code == 0 ? f[2].via.bin.ptr : f[2].via.str.ptr;
	r->len      = r->code == 0 ? f[2].via.bin.size : f[2].via.str.size;
	r->id       = f[0].via.u64;
	r->attempts = 0;
	if (e->via.array.size <= 3)
		return 0;
	if (f[3].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    f[3].via.u64 > UINT32_MAX)
		return pd_bad(c,
		    "%s[%u][3] (attempts): expected an integer, got %s",
		    key, i, pd_obj_type(&f[3]));
	r->attempts = (uint32_t)f[3].via.u64;
	return 0;
}

int
pd_results(struct dctx *c, const msgpack_object *map, const char *key,
    struct proto_msg *m, int required)
{
	int rv;

	m->results = decode_list(c, map, key, required,
	    sizeof(struct proto_result), decode_result, &m->n_results, &rv);
	return rv;
}

/* Entry i of a list of ids. */
static int
decode_id(struct dctx *c, const char *key, uint32_t i,
    const msgpack_object *e, void *out)
{
	if (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return pd_bad(c, "%s[%u]: expected an integer, got %s", key, i,
		    pd_obj_type(e));
	*(uint64_t *)out = e->via.u64;
	return 0;
}

int
pd_ids(struct dctx *c, const msgpack_object *map, struct proto_msg *m)
{
	int rv;

	m->ids = decode_list(c, map, "ids", 1, sizeof(uint64_t), decode_id,
	    &m->n_ids, &rv);
	return rv;
}

/* Entry i of a list of task ids: non-zero. */
static int
decode_task_id(struct dctx *c, const char *key, uint32_t i,
    const msgpack_object *e, void *out)
{
	if (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER || e->via.u64 == 0)
		return pd_bad(c, "%s[%u]: expected a task id (an integer above "
		              "0), got %s",
		    key, i,
		    e->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? "0"
		                                               : pd_obj_type(e));
	*(uint64_t *)out = e->via.u64;
	return 0;
}

int
pd_task_ids(struct dctx *c, const msgpack_object *map, const char *key,
    uint64_t max, const char *what, uint64_t **out, uint32_t *n)
{
	const msgpack_object *arr;
	int                   rv;

	*out = NULL;
	*n   = 0;
	if ((rv = pd_get_array(c, map, key, &arr, 0)) != 0 || arr == NULL)
		return rv;
	if (arr->via.array.size > max)
		return pd_bad(c, "field '%s': %u task ids, more than %s (%llu)",
		    key, arr->via.array.size, what, (unsigned long long)max);
	*out = decode_list(c, map, key, 0, sizeof(uint64_t), decode_task_id, n,
	    &rv);
	return rv;
}

/* An array of [uint, uint] pairs under key: n entries into *out, each
 * a pair of uint64 (the caller's struct has two uint64-sized reads). */
static int
decode_pairs(struct dctx *c, const msgpack_object *map, const char *key,
    const char *what, uint64_t **out, uint32_t *n)
{
	const msgpack_object *arr;
	int                   rv;

	*out = NULL;
	*n   = 0;
	if ((rv = pd_get_array(c, map, key, &arr, 1)) != 0)
		return rv;
	if (arr->via.array.size == 0)
		return 0;
	*out = msgpack_zone_malloc(
	    &c->d->zone, 2 * sizeof(uint64_t) * arr->via.array.size);
	if (*out == NULL)
		return FERRY_ENOMEM;
	for (uint32_t i = 0; i < arr->via.array.size; i++) {
		const msgpack_object *e = &arr->via.array.ptr[i];
		if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size < 2 ||
		    e->via.array.ptr[0].type !=
		        MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    e->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			return pd_bad(c, "%s[%u]: expected %s", key, i, what);
		(*out)[2 * i]     = e->via.array.ptr[0].via.u64;
		(*out)[2 * i + 1] = e->via.array.ptr[1].via.u64;
	}
	*n = arr->via.array.size;
	return 0;
}

int
pd_report(struct dctx *c, const msgpack_object *map, struct proto_msg *m)
{
	uint64_t *pairs;
	int       rv;

	if ((rv = pd_get_uint(c, map, "pid", &m->pid, 1)) != 0 ||
	    (rv = pd_get_uint(c, map, "worker", &m->worker_id, 0)) != 0 ||
	    (rv = pd_get_str(c, map, "cause", &m->cause, 1)) != 0 ||
	    (rv = pd_get_str(c, map, "reason", &m->reason, 1)) != 0 ||
	    (rv = decode_pairs(c, map, "tasks",
	         "an array [task id, charged 0|1]", &pairs, &m->n_rtasks)) !=
	        0)
		return rv;
	if (m->n_rtasks == 0)
		return 0;
	m->rtasks = msgpack_zone_malloc(
	    &c->d->zone, sizeof(*m->rtasks) * m->n_rtasks);
	if (m->rtasks == NULL)
		return FERRY_ENOMEM;
	for (uint32_t i = 0; i < m->n_rtasks; i++) {
		if (pairs[2 * i + 1] > 1)
			return pd_bad(c, "tasks[%u][1] (charged): expected 0 or 1, "
			              "got %llu",
			    i, (unsigned long long)pairs[2 * i + 1]);
		m->rtasks[i].id      = pairs[2 * i];
		m->rtasks[i].charged = (uint32_t)pairs[2 * i + 1];
	}
	return 0;
}

int
pd_orders(struct dctx *c, const msgpack_object *map, struct proto_msg *m)
{
	uint64_t *pairs;
	int       rv;

	if ((rv = decode_pairs(c, map, "kill", "an array [pid, task id]",
	         &pairs, &m->n_kills)) != 0 ||
	    m->n_kills == 0)
		return rv;
	m->kills =
	    msgpack_zone_malloc(&c->d->zone, sizeof(*m->kills) * m->n_kills);
	if (m->kills == NULL)
		return FERRY_ENOMEM;
	for (uint32_t i = 0; i < m->n_kills; i++) {
		m->kills[i].pid  = pairs[2 * i];
		m->kills[i].task = pairs[2 * i + 1];
	}
	return 0;
}

