/*
 * proto.c - encode and decode Ferry's msgpack messages.
 */
#include "proto.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/ferry.h"
#include "util.h"

static const char *type_names[PROTO_TYPE_MAX] = {
	[PROTO_NONE]         = NULL,
	[PROTO_HELLO]        = "hello",
	[PROTO_WELCOME]      = "welcome",
	[PROTO_SUBMIT]       = "submit",
	[PROTO_SUBMITTED]    = "submitted",
	[PROTO_FETCH]        = "fetch",
	[PROTO_RESULTS]      = "results",
	[PROTO_CANCEL]       = "cancel",
	[PROTO_CANCELLED]    = "cancelled",
	[PROTO_STATUS]       = "status",
	[PROTO_STATUS_REPLY] = "status_reply",
	[PROTO_WORK]         = "work",
	[PROTO_TASKS]        = "tasks",
	[PROTO_ERROR]        = "error",
	[PROTO_WATCH]        = "watch",
	[PROTO_REPORT]       = "report",
	[PROTO_ORDERS]       = "orders",
};

const char *
proto_type_name(int type)
{
	if (type <= PROTO_NONE || type >= PROTO_TYPE_MAX)
		return NULL;
	return type_names[type];
}

static int
type_lookup(const char *s, uint32_t len)
{
	for (int i = 1; i < PROTO_TYPE_MAX; i++) {
		if (strlen(type_names[i]) == len &&
		    memcmp(type_names[i], s, len) == 0)
			return i;
	}
	return PROTO_NONE;
}

/* ---------------------------------------------------------------- check */

/* msgpack-c's unpacker holds at most this many open containers
 * (MSGPACK_EMBED_STACK_SIZE) and reports deeper nesting as out of memory. */
#define PROTO_MAX_DEPTH 32

static uint64_t
be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

int
proto_check(const void *data, size_t len, char *err, size_t errlen)
{
	const uint8_t *p       = data;
	size_t         pos     = 0;
	uint64_t       pending = 1; /* values still to read */
	uint64_t       open[PROTO_MAX_DEPTH + 1]; /* values left per level */
	int            depth = 0;

	open[0] = 1;
	if (len == 0)
		return util_errf(err, errlen, "empty message");
	while (pending > 0) {
		uint8_t  b;
		size_t   at = pos;
		uint64_t skip = 0, items = 0;
		int      lenbytes = 0;

		if (pos >= len)
			return util_errf(err, errlen,
			    "truncated message: %llu value(s) missing after "
			    "byte %zu",
			    (unsigned long long)pending, len);
		b = p[pos++];
		pending--;
		open[depth]--;
		if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 ||
		    b == 0xc3) {
			skip = 0; /* fixint, nil, bool */
		} else if (b >= 0x80 && b <= 0x8f) {
			items = 2 * (uint64_t)(b & 0x0f);
		} else if (b >= 0x90 && b <= 0x9f) {
			items = b & 0x0f;
		} else if (b >= 0xa0 && b <= 0xbf) {
			skip = b & 0x1f;
		} else {
			switch (b) {
			case 0xc1:
				return util_errf(err, errlen,
				    "invalid msgpack byte 0xc1 at offset %zu",
				    at);
			case 0xc4: case 0xd9: lenbytes = 1; break; /* bin8 str8 */
			case 0xc5: case 0xda: lenbytes = 2; break;
			case 0xc6: case 0xdb: lenbytes = 4; break;
			case 0xc7: lenbytes = 1; skip = 1; break; /* ext8 */
			case 0xc8: lenbytes = 2; skip = 1; break;
			case 0xc9: lenbytes = 4; skip = 1; break;
			case 0xca: skip = 4; break; /* float32 */
			case 0xcb: skip = 8; break;
			case 0xcc: case 0xd0: skip = 1; break;
			case 0xcd: case 0xd1: skip = 2; break;
			case 0xce: case 0xd2: skip = 4; break;
			case 0xcf: case 0xd3: skip = 8; break;
			case 0xd4: skip = 2; break; /* fixext */
			case 0xd5: skip = 3; break;
			case 0xd6: skip = 5; break;
			case 0xd7: skip = 9; break;
			case 0xd8: skip = 17; break;
			case 0xdc: case 0xde: /* array16, map16 */
			case 0xdd: case 0xdf: { /* array32, map32 */
				int n = (b == 0xdc || b == 0xde) ? 2 : 4;
				if (len - pos < (size_t)n)
					return util_errf(err, errlen,
					    "truncated message: container "
					    "length at offset %zu",
					    at);
				items = be(p + pos, n);
				pos += (size_t)n;
				if (b == 0xde || b == 0xdf)
					items *= 2;
				break;
			}
			default:
				return util_errf(err, errlen,
				    "invalid msgpack byte 0x%02x at offset %zu",
				    b, at);
			}
		}
		if (lenbytes > 0) {
			if (len - pos < (size_t)lenbytes)
				return util_errf(err, errlen,
				    "truncated message: length at offset %zu",
				    at);
			skip += be(p + pos, lenbytes);
			pos += (size_t)lenbytes;
		}
		if (skip > len - pos)
			return util_errf(err, errlen,
			    "truncated message: value at offset %zu needs %llu "
			    "bytes, %zu remain",
			    at, (unsigned long long)skip, len - pos);
		pos += skip;
		if (items > len - pos)
			return util_errf(err, errlen,
			    "container at offset %zu declares %llu items but "
			    "only %zu bytes remain",
			    at, (unsigned long long)items, len - pos);
		pending += items;
		if ((b >= 0x80 && b <= 0x9f) || (b >= 0xdc && b <= 0xdf)) {
			if (depth == PROTO_MAX_DEPTH)
				return util_errf(err, errlen,
				    "container at offset %zu is nested deeper "
				    "than %d levels",
				    at, PROTO_MAX_DEPTH);
			if (items > 0)
				open[++depth] = items;
		}
		while (depth > 0 && open[depth] == 0)
			depth--;
	}
	if (pos != len)
		return util_errf(err, errlen,
		    "%zu unexpected bytes after the message at offset %zu",
		    len - pos, pos);
	return 0;
}

/* --------------------------------------------------------------- decode */

void
proto_decoder_init(struct proto_decoder *d)
{
	msgpack_zone_init(&d->zone, 8192);
}

void
proto_decoder_fini(struct proto_decoder *d)
{
	msgpack_zone_destroy(&d->zone);
}

static const char *
obj_type_name(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL: return "nil";
	case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
	case MSGPACK_OBJECT_POSITIVE_INTEGER: return "an integer";
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "a negative integer";
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: return "a float";
	case MSGPACK_OBJECT_STR: return "a string";
	case MSGPACK_OBJECT_ARRAY: return "an array";
	case MSGPACK_OBJECT_MAP: return "a map";
	case MSGPACK_OBJECT_BIN: return "bytes";
	case MSGPACK_OBJECT_EXT: return "an extension";
	}
	return "unknown";
}

struct dctx {
	struct proto_decoder *d;
	const char           *tname;
	char                 *err;
	size_t                errlen;
};

static int
bad(struct dctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
bad(struct dctx *c, const char *fmt, ...)
{
	va_list ap;
	int     n;
	if (c->err == NULL || c->errlen == 0)
		return FERRY_EPROTO;
	n = snprintf(c->err, c->errlen, "%s: ", c->tname);
	if (n < 0 || (size_t)n >= c->errlen)
		return FERRY_EPROTO;
	va_start(ap, fmt);
	vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return FERRY_EPROTO;
}

static const msgpack_object *
map_get(const msgpack_object *map, const char *key)
{
	size_t klen = strlen(key);
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
		    memcmp(k->via.str.ptr, key, klen) == 0)
			return &map->via.map.ptr[i].val;
	}
	return NULL;
}

static int
get_uint(struct dctx *c, const msgpack_object *map, const char *key,
    uint64_t *out, int required)
{
	const msgpack_object *o = map_get(map, key);
	if (o == NULL) {
		if (required)
			return bad(c, "missing field '%s'", key);
		return 0;
	}
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return bad(c, "field '%s': expected a non-negative integer, "
		              "got %s",
		    key, obj_type_name(o));
	*out = o->via.u64;
	return 0;
}

static char *
zone_strdup(struct dctx *c, const char *p, uint32_t len)
{
	char *s = msgpack_zone_malloc(&c->d->zone, (size_t)len + 1);
	if (s == NULL)
		return NULL;
	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

static int
get_str(struct dctx *c, const msgpack_object *map, const char *key,
    const char **out, int required)
{
	const msgpack_object *o = map_get(map, key);
	if (o == NULL) {
		if (required)
			return bad(c, "missing field '%s'", key);
		*out = "";
		return 0;
	}
	if (o->type != MSGPACK_OBJECT_STR)
		return bad(c, "field '%s': expected a string, got %s", key,
		    obj_type_name(o));
	if (memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL)
		return bad(c, "field '%s': string contains a NUL byte", key);
	if ((*out = zone_strdup(c, o->via.str.ptr, o->via.str.size)) == NULL)
		return FERRY_ENOMEM;
	return 0;
}

static int
get_array(struct dctx *c, const msgpack_object *map, const char *key,
    const msgpack_object **out, int required)
{
	const msgpack_object *o = map_get(map, key);
	*out = NULL;
	if (o == NULL) {
		if (required)
			return bad(c, "missing field '%s'", key);
		return 0;
	}
	if (o->type != MSGPACK_OBJECT_ARRAY)
		return bad(c, "field '%s': expected an array, got %s", key,
		    obj_type_name(o));
	*out = o;
	return 0;
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
	};

	if (o->type == MSGPACK_OBJECT_NIL)
		return 0;
	if (o->type != MSGPACK_OBJECT_MAP)
		return bad(c, "tasks[%u][4] (options): expected a map, got %s",
		    i, obj_type_name(o));
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		const msgpack_object *v = map_get(o, keys[k].key);
		uint64_t              x;
		if (v == NULL)
			continue;
		if (v->type == MSGPACK_OBJECT_BOOLEAN && keys[k].flag)
			x = v->via.boolean ? 1 : 0;
		else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			x = v->via.u64;
		else
			return bad(c,
			    "tasks[%u][4] (options): '%s': expected a "
			    "non-negative integer%s, got %s",
			    i, keys[k].key, keys[k].flag ? " or a boolean" : "",
			    obj_type_name(v));
		if (x > keys[k].max)
			return bad(c,
			    "tasks[%u][4] (options): '%s': %llu is over the "
			    "limit of %u",
			    i, keys[k].key, (unsigned long long)x, keys[k].max);
		*(uint32_t *)((char *)opts + keys[k].off) = (uint32_t)x;
		opts->set |= keys[k].bit;
	}
	return 0;
}

static int
decode_tasks(struct dctx *c, const msgpack_object *map, struct proto_msg *m)
{
	const msgpack_object *arr;
	int                   rv;

	if ((rv = get_array(c, map, "tasks", &arr, 1)) != 0)
		return rv;
	m->n_tasks = arr->via.array.size;
	if (m->n_tasks == 0)
		return 0;
	m->tasks = msgpack_zone_malloc(
	    &c->d->zone, sizeof(struct proto_task) * m->n_tasks);
	if (m->tasks == NULL)
		return FERRY_ENOMEM;
	for (uint32_t i = 0; i < m->n_tasks; i++) {
		const msgpack_object *e = &arr->via.array.ptr[i];
		const msgpack_object *f;
		struct proto_task    *t = &m->tasks[i];
		if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size < 3)
			return bad(c,
			    "tasks[%u]: expected an array [id, fn, args], "
			    "got %s",
			    i, e->type == MSGPACK_OBJECT_ARRAY
			        ? "a shorter array"
			        : obj_type_name(e));
		f = e->via.array.ptr;
		if (f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			return bad(c, "tasks[%u][0] (id): expected an integer, "
			              "got %s",
			    i, obj_type_name(&f[0]));
		if (f[1].type != MSGPACK_OBJECT_STR || f[1].via.str.size == 0)
			return bad(c, "tasks[%u][1] (fn): expected a non-empty "
			              "string, got %s",
			    i, f[1].type == MSGPACK_OBJECT_STR
			        ? "an empty string"
			        : obj_type_name(&f[1]));
		if (f[2].type != MSGPACK_OBJECT_BIN)
			return bad(c,
			    "tasks[%u][2] (args): expected bytes holding "
			    "msgpack, got %s",
			    i, obj_type_name(&f[2]));
		t->id       = f[0].via.u64;
		t->fn       = f[1].via.str.ptr;
		t->fn_len   = f[1].via.str.size;
		t->args     = f[2].via.bin.ptr;
		t->args_len = f[2].via.bin.size;
		t->objs     = NULL;
		t->n_objs   = 0;
		if (e->via.array.size > 3 && m->type == PROTO_TASKS) {
			if (f[3].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
			    f[3].via.u64 > UINT32_MAX)
				return bad(c,
				    "tasks[%u][3] (timeout_ms): expected an "
				    "integer 0..%u, got %s",
				    i, UINT32_MAX, obj_type_name(&f[3]));
			t->objs       = NULL;
			t->n_objs     = 0;
			memset(&t->opts, 0, sizeof(t->opts));
			t->timeout_ms = (uint32_t)f[3].via.u64;
			continue;
		}
		if (e->via.array.size > 3) {
			const msgpack_object *o = &f[3];
			if (o->type != MSGPACK_OBJECT_ARRAY)
				return bad(c,
				    "tasks[%u][3] (objects): expected an "
				    "array of strings, got %s",
				    i, obj_type_name(o));
			if (o->via.array.size > PROTO_MAX_TASK_OBJS)
				return bad(c,
				    "tasks[%u][3] (objects): %u keys, the "
				    "limit is %d",
				    i, o->via.array.size, PROTO_MAX_TASK_OBJS);
			for (uint32_t k = 0; k < o->via.array.size; k++)
				if (o->via.array.ptr[k].type !=
				        MSGPACK_OBJECT_STR ||
				    o->via.array.ptr[k].via.str.size == 0)
					return bad(c,
					    "tasks[%u][3][%u] (object key): "
					    "expected a non-empty string, got "
					    "%s",
					    i, k,
					    obj_type_name(
						&o->via.array.ptr[k]));
			t->objs   = o->via.array.ptr;
			t->n_objs = o->via.array.size;
		}
		memset(&t->opts, 0, sizeof(t->opts));
		t->timeout_ms = 0;
		if (e->via.array.size > 4 &&
		    (rv = decode_task_opts(c, i, &f[4], &t->opts)) != 0)
			return rv;
	}
	return 0;
}

/* An optional array of non-empty strings (locality keys). */
static int
get_keys(struct dctx *c, const msgpack_object *map, const char *key,
    const msgpack_object **out, uint32_t *n)
{
	const msgpack_object *arr;
	int                   rv;

	*out = NULL;
	*n   = 0;
	if ((rv = get_array(c, map, key, &arr, 0)) != 0 || arr == NULL)
		return rv;
	for (uint32_t i = 0; i < arr->via.array.size; i++) {
		const msgpack_object *e = &arr->via.array.ptr[i];
		if (e->type != MSGPACK_OBJECT_STR || e->via.str.size == 0)
			return bad(c, "%s[%u]: expected a non-empty string, "
			              "got %s",
			    key, i, obj_type_name(e));
	}
	*out = arr->via.array.ptr;
	*n   = arr->via.array.size;
	return 0;
}

/* The optional "cache" map of a work request. */
static int
get_cache(struct dctx *c, const msgpack_object *map, struct proto_cache *pc)
{
	const msgpack_object *o = map_get(map, "cache");
	int                   rv;

	memset(pc, 0, sizeof(*pc));
	if (o == NULL)
		return 0;
	if (o->type != MSGPACK_OBJECT_MAP)
		return bad(c, "field 'cache': expected a map, got %s",
		    obj_type_name(o));
	if ((rv = get_uint(c, o, "objects", &pc->objects, 1)) != 0 ||
	    (rv = get_uint(c, o, "bytes", &pc->bytes, 1)) != 0 ||
	    (rv = get_uint(c, o, "loads", &pc->loads, 1)) != 0 ||
	    (rv = get_uint(c, o, "hits", &pc->hits, 1)) != 0 ||
	    (rv = get_uint(c, o, "evictions", &pc->evictions, 1)) != 0 ||
	    (rv = get_uint(c, o, "failures", &pc->failures, 0)) != 0)
		return rv;
	pc->present = 1;
	return 0;
}

static int
decode_results(struct dctx *c, const msgpack_object *map, const char *key,
    struct proto_msg *m, int required)
{
	const msgpack_object *arr;
	int                   rv;

	if ((rv = get_array(c, map, key, &arr, required)) != 0)
		return rv;
	if (arr == NULL || arr->via.array.size == 0)
		return 0;
	m->n_results = arr->via.array.size;
	m->results   = msgpack_zone_malloc(
            &c->d->zone, sizeof(struct proto_result) * m->n_results);
	if (m->results == NULL)
		return FERRY_ENOMEM;
	for (uint32_t i = 0; i < m->n_results; i++) {
		const msgpack_object *e = &arr->via.array.ptr[i];
		const msgpack_object *f;
		struct proto_result  *r = &m->results[i];
		if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size < 3)
			return bad(c,
			    "%s[%u]: expected an array [id, code, value], "
			    "got %s",
			    key, i,
			    e->type == MSGPACK_OBJECT_ARRAY ? "a shorter array"
			                                    : obj_type_name(e));
		f = e->via.array.ptr;
		if (f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			return bad(c, "%s[%u][0] (id): expected an integer, "
			              "got %s",
			    key, i, obj_type_name(&f[0]));
		if (f[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
		    f[1].via.u64 == 0)
			r->code = 0;
		else if (f[1].type == MSGPACK_OBJECT_NEGATIVE_INTEGER &&
		         f[1].via.i64 >= INT32_MIN)
			r->code = (int32_t)f[1].via.i64;
		else if (f[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			return bad(c,
			    "%s[%u][1] (code): expected 0 or a negative "
			    "error code, got %llu",
			    key, i, (unsigned long long)f[1].via.u64);
		else if (f[1].type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
			return bad(c,
			    "%s[%u][1] (code): expected 0 or a negative "
			    "error code, got %lld",
			    key, i, (long long)f[1].via.i64);
		else
			return bad(c,
			    "%s[%u][1] (code): expected 0 or a negative "
			    "error code, got %s",
			    key, i, obj_type_name(&f[1]));
		if (r->code == 0) {
			if (f[2].type != MSGPACK_OBJECT_BIN)
				return bad(c,
				    "%s[%u][2] (value): expected bytes "
				    "holding msgpack, got %s",
				    key, i, obj_type_name(&f[2]));
			r->data = f[2].via.bin.ptr;
			r->len  = f[2].via.bin.size;
		} else {
			if (f[2].type != MSGPACK_OBJECT_STR)
				return bad(c,
				    "%s[%u][2] (error): expected a string, "
				    "got %s",
				    key, i, obj_type_name(&f[2]));
			r->data = f[2].via.str.ptr;
			r->len  = f[2].via.str.size;
		}
		r->id       = f[0].via.u64;
		r->attempts = 0;
		if (e->via.array.size > 3) {
			if (f[3].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
			    f[3].via.u64 > UINT32_MAX)
				return bad(c,
				    "%s[%u][3] (attempts): expected an "
				    "integer, got %s",
				    key, i, obj_type_name(&f[3]));
			r->attempts = (uint32_t)f[3].via.u64;
		}
	}
	return 0;
}

static int
decode_ids(struct dctx *c, const msgpack_object *map, struct proto_msg *m)
{
	const msgpack_object *arr;
	int                   rv;

	if ((rv = get_array(c, map, "ids", &arr, 1)) != 0)
		return rv;
	m->n_ids = arr->via.array.size;
	if (m->n_ids == 0)
		return 0;
	m->ids = msgpack_zone_malloc(&c->d->zone, sizeof(uint64_t) * m->n_ids);
	if (m->ids == NULL)
		return FERRY_ENOMEM;
	for (uint32_t i = 0; i < m->n_ids; i++) {
		const msgpack_object *e = &arr->via.array.ptr[i];
		if (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			return bad(c, "ids[%u]: expected an integer, got %s", i,
			    obj_type_name(e));
		m->ids[i] = e->via.u64;
	}
	return 0;
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
	if ((rv = get_array(c, map, key, &arr, 1)) != 0)
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
			return bad(c, "%s[%u]: expected %s", key, i, what);
		(*out)[2 * i]     = e->via.array.ptr[0].via.u64;
		(*out)[2 * i + 1] = e->via.array.ptr[1].via.u64;
	}
	*n = arr->via.array.size;
	return 0;
}

static int
decode_report(struct dctx *c, const msgpack_object *map, struct proto_msg *m)
{
	uint64_t *pairs;
	int       rv;

	if ((rv = get_uint(c, map, "pid", &m->pid, 1)) != 0 ||
	    (rv = get_uint(c, map, "worker", &m->worker_id, 0)) != 0 ||
	    (rv = get_str(c, map, "cause", &m->cause, 1)) != 0 ||
	    (rv = get_str(c, map, "reason", &m->reason, 1)) != 0 ||
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
			return bad(c, "tasks[%u][1] (charged): expected 0 or 1, "
			              "got %llu",
			    i, (unsigned long long)pairs[2 * i + 1]);
		m->rtasks[i].id      = pairs[2 * i];
		m->rtasks[i].charged = (uint32_t)pairs[2 * i + 1];
	}
	return 0;
}

static int
decode_orders(struct dctx *c, const msgpack_object *map, struct proto_msg *m)
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

static int
decode_hello(struct dctx *c, const msgpack_object *map, struct proto_msg *m)
{
	const char           *role;
	const msgpack_object *fns;
	int                   rv;

	if ((rv = get_str(c, map, "role", &role, 1)) != 0)
		return rv;
	if (strcmp(role, "worker") == 0)
		m->role = PROTO_ROLE_WORKER;
	else if (strcmp(role, "client") == 0)
		m->role = PROTO_ROLE_CLIENT;
	else if (strcmp(role, "supervisor") == 0)
		m->role = PROTO_ROLE_SUPERVISOR;
	else
		return bad(c, "field 'role': expected \"worker\", "
		              "\"client\" or \"supervisor\", got \"%.64s\"",
		    role);
	if ((rv = get_str(c, map, "name", &m->name, 0)) != 0 ||
	    (rv = get_str(c, map, "host", &m->host, 0)) != 0 ||
	    (rv = get_str(c, map, "group", &m->group, 0)) != 0 ||
	    (rv = get_uint(c, map, "pid", &m->pid, 0)) != 0 ||
	    (rv = get_uint(c, map, "session", &m->session, 0)) != 0 ||
	    (rv = get_uint(c, map, "supervisor", &m->supervisor,
	         m->role == PROTO_ROLE_SUPERVISOR)) != 0)
		return rv;
	if ((rv = get_str(c, map, "token", &m->token, 0)) != 0)
		return rv;
	if (strlen(m->token) > 256)
		return bad(c, "field 'token': %zu bytes, at most 256",
		    strlen(m->token));
	if (m->role == PROTO_ROLE_SUPERVISOR && m->supervisor == 0)
		return bad(c, "field 'supervisor': a supervisor's token must "
		              "not be 0");
	if (m->role != PROTO_ROLE_WORKER)
		return 0;
	if ((rv = get_uint(c, map, "slots", &m->slots, 1)) != 0 ||
	    (rv = get_uint(c, map, "capacity", &m->capacity, 1)) != 0 ||
	    (rv = get_array(c, map, "functions", &fns, 1)) != 0)
		return rv;
	if (m->slots == 0 || m->slots > 1u << 20)
		return bad(c, "field 'slots': %llu is out of range 1..%u",
		    (unsigned long long)m->slots, 1u << 20);
	if (m->capacity < m->slots || m->capacity > 1u << 24)
		return bad(c, "field 'capacity': %llu is out of range "
		              "slots..%u",
		    (unsigned long long)m->capacity, 1u << 24);
	m->n_functions = fns->via.array.size;
	m->functions   = msgpack_zone_malloc(
            &c->d->zone, sizeof(char *) * (m->n_functions + 1));
	if (m->functions == NULL)
		return FERRY_ENOMEM;
	for (uint32_t i = 0; i < m->n_functions; i++) {
		const msgpack_object *e = &fns->via.array.ptr[i];
		if (e->type != MSGPACK_OBJECT_STR)
			return bad(c,
			    "functions[%u]: expected a name of 1..255 bytes, "
			    "got %s",
			    i, obj_type_name(e));
		if (e->via.str.size == 0 || e->via.str.size > 255)
			return bad(c,
			    "functions[%u]: expected a name of 1..255 bytes, "
			    "got %u bytes",
			    i, e->via.str.size);
		if (memchr(e->via.str.ptr, '\0', e->via.str.size) != NULL)
			return bad(c, "functions[%u]: name contains a NUL byte",
			    i);
		m->functions[i] =
		    zone_strdup(c, e->via.str.ptr, e->via.str.size);
		if (m->functions[i] == NULL)
			return FERRY_ENOMEM;
	}
	return 0;
}

int
proto_decode(struct proto_decoder *d, const void *data, size_t len,
    struct proto_msg *m, char *err, size_t errlen)
{
	msgpack_object        root;
	const msgpack_object *o;
	size_t                off = 0;
	struct dctx           c   = { d, "message", err, errlen };
	uint64_t              v;
	int                   rv;

	memset(m, 0, sizeof(*m));
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (proto_check(data, len, err, errlen) != 0)
		return FERRY_EPROTO;
	msgpack_zone_clear(&d->zone);
	switch (msgpack_unpack(data, len, &off, &d->zone, &root)) {
	case MSGPACK_UNPACK_SUCCESS:
		break;
	case MSGPACK_UNPACK_NOMEM_ERROR:
		return bad(&c, "out of memory while decoding");
	default:
		return bad(&c, "malformed msgpack (nested too deeply?)");
	}
	if (root.type != MSGPACK_OBJECT_MAP)
		return bad(&c, "expected a map, got %s", obj_type_name(&root));
	if ((o = map_get(&root, "v")) == NULL)
		return bad(&c, "missing field 'v' (protocol version)");
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return bad(&c, "field 'v': expected an integer, got %s",
		    obj_type_name(o));
	v = o->via.u64;
	if ((o = map_get(&root, "t")) == NULL)
		return bad(&c, "missing field 't' (message type)");
	if (o->type != MSGPACK_OBJECT_STR)
		return bad(&c, "field 't': expected a string, got %s",
		    obj_type_name(o));
	m->type = type_lookup(o->via.str.ptr, o->via.str.size);
	if (m->type != PROTO_NONE)
		c.tname = type_names[m->type];
	if (v != PROTO_VERSION) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen,
			    "%s: protocol version %llu is not supported (this "
			    "side speaks version %d)",
			    c.tname, (unsigned long long)v, PROTO_VERSION);
		return FERRY_EVERSION;
	}
	if (m->type == PROTO_NONE)
		return bad(&c, "unknown message type \"%.*s\"",
		    (int)(o->via.str.size > 64 ? 64 : o->via.str.size),
		    o->via.str.ptr);
	m->version = (uint32_t)v;

	switch (m->type) {
	case PROTO_HELLO:
		rv = decode_hello(&c, &root, m);
		break;
	case PROTO_WELCOME:
		if ((rv = get_uint(&c, &root, "id", &m->id, 1)) == 0 &&
		    (rv = get_uint(&c, &root, "heartbeat_ms", &m->heartbeat_ms,
		         1)) == 0)
			rv = get_uint(&c, &root, "max_message_size",
			    &m->max_message_size, 0);
		if (rv == 0)
			rv = get_uint(&c, &root, "heartbeat_timeout_ms",
			    &m->heartbeat_timeout_ms, 0);
		if (rv == 0)
			rv = get_uint(&c, &root, "resumed", &m->resumed, 0);
		if (rv == 0)
			rv = get_uint(&c, &root, "max_tag", &m->max_tag, 0);
		break;
	case PROTO_WATCH:
		rv = get_uint(&c, &root, "wait_ms", &m->wait_ms, 0);
		break;
	case PROTO_REPORT:
		rv = decode_report(&c, &root, m);
		break;
	case PROTO_ORDERS:
		rv = decode_orders(&c, &root, m);
		break;
	case PROTO_SUBMIT:
	case PROTO_TASKS:
		rv = decode_tasks(&c, &root, m);
		break;
	case PROTO_SUBMITTED:
		if ((rv = get_uint(&c, &root, "accepted", &m->accepted, 1)) ==
		    0)
			rv = decode_results(&c, &root, "rejected", m, 0);
		break;
	case PROTO_FETCH:
		if ((rv = get_uint(&c, &root, "ack", &m->ack, 1)) == 0)
			rv = get_uint(&c, &root, "wait_ms", &m->wait_ms, 0);
		break;
	case PROTO_RESULTS:
		if ((rv = get_uint(&c, &root, "seq", &m->seq, 1)) == 0)
			rv = decode_results(&c, &root, "results", m, 1);
		break;
	case PROTO_CANCEL:
	case PROTO_CANCELLED:
		rv = decode_ids(&c, &root, m);
		break;
	case PROTO_STATUS:
		rv = 0;
		break;
	case PROTO_STATUS_REPLY:
		m->body = msgpack_zone_malloc(&d->zone, sizeof(root));
		if (m->body == NULL)
			return FERRY_ENOMEM;
		memcpy((void *)m->body, &root, sizeof(root));
		rv = 0;
		break;
	case PROTO_WORK:
		if ((rv = get_uint(&c, &root, "credit", &m->credit, 1)) == 0 &&
		    (rv = get_uint(&c, &root, "park", &m->park, 0)) == 0 &&
		    (rv = decode_results(&c, &root, "results", m, 0)) == 0 &&
		    (rv = get_keys(&c, &root, "loaded", &m->loaded,
		         &m->n_loaded)) == 0 &&
		    (rv = get_keys(&c, &root, "evicted", &m->evicted,
		         &m->n_evicted)) == 0)
			rv = get_cache(&c, &root, &m->cache);
		break;
	case PROTO_ERROR: {
		const msgpack_object *co = map_get(&root, "code");
		if (co == NULL)
			return bad(&c, "missing field 'code'");
		if (co->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			return bad(&c, "field 'code': expected a negative "
			               "error code, got %llu",
			    (unsigned long long)co->via.u64);
		if (co->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
			return bad(&c, "field 'code': expected a negative "
			               "error code, got %s",
			    obj_type_name(co));
		if (co->via.i64 < INT32_MIN)
			return bad(&c, "field 'code': expected a negative "
			               "error code, got %lld",
			    (long long)co->via.i64);
		m->code = (int32_t)co->via.i64;
		rv      = get_str(&c, &root, "msg", &m->msg, 1);
		break;
	}
	default:
		rv = bad(&c, "unexpected message type");
		break;
	}
	return rv;
}

/* --------------------------------------------------------------- encode */

void
proto_writer_init(struct proto_writer *w)
{
	msgpack_sbuffer_init(&w->buf);
	msgpack_packer_init(&w->pk, &w->buf, msgpack_sbuffer_write);
	w->depth = 0;
}

void
proto_writer_fini(struct proto_writer *w)
{
	msgpack_sbuffer_destroy(&w->buf);
}

void
proto_writer_reset(struct proto_writer *w)
{
	msgpack_sbuffer_clear(&w->buf);
	w->depth = 0;
}

static void
pack_cstr(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

void
proto_begin(struct proto_writer *w, int type, uint32_t nfields)
{
	msgpack_pack_map(&w->pk, 2 + nfields);
	pack_cstr(&w->pk, "v");
	msgpack_pack_uint32(&w->pk, PROTO_VERSION);
	pack_cstr(&w->pk, "t");
	pack_cstr(&w->pk, type_names[type]);
}

void
proto_open_map(struct proto_writer *w)
{
	static const char fixmap0 = (char)0x80;

	if (w->depth >= PROTO_MAX_OPEN)
		abort(); /* a writer bug, not input */
	w->open_at[w->depth] = w->buf.size;
	w->open_n[w->depth]  = 0;
	w->depth++;
	msgpack_sbuffer_write(&w->buf, &fixmap0, 1);
}

void
proto_open(struct proto_writer *w, int type)
{
	proto_open_map(w);
	proto_put_uint(w, "v", PROTO_VERSION);
	proto_put_str(w, "t", type_names[type]);
}

void
proto_end(struct proto_writer *w)
{
	uint8_t *p;
	size_t   at, extra;
	uint32_t n;

	if (w->depth == 0)
		abort(); /* a writer bug, not input */
	w->depth--;
	at = w->open_at[w->depth];
	n  = w->open_n[w->depth];
	if (n <= 15) {
		((uint8_t *)w->buf.data)[at] = (uint8_t)(0x80 | n);
		return;
	}
	/* a map16 or map32 header: make room after the placeholder byte */
	extra = n <= 0xffff ? 2 : 4;
	if (msgpack_sbuffer_write(&w->buf, "\0\0\0\0", extra) != 0)
		return; /* out of memory: the sender sees a short buffer */
	p = (uint8_t *)w->buf.data + at;
	memmove(p + 1 + extra, p + 1, w->buf.size - at - 1 - extra);
	if (extra == 2) {
		p[0] = 0xde;
		p[1] = (uint8_t)(n >> 8);
		p[2] = (uint8_t)n;
	} else {
		p[0] = 0xdf;
		p[1] = (uint8_t)(n >> 24);
		p[2] = (uint8_t)(n >> 16);
		p[3] = (uint8_t)(n >> 8);
		p[4] = (uint8_t)n;
	}
}

void
proto_put_key(struct proto_writer *w, const char *key)
{
	if (w->depth > 0)
		w->open_n[w->depth - 1]++;
	pack_cstr(&w->pk, key);
}

void
proto_put_uint(struct proto_writer *w, const char *key, uint64_t v)
{
	proto_put_key(w, key);
	msgpack_pack_uint64(&w->pk, v);
}

void
proto_put_int(struct proto_writer *w, const char *key, int64_t v)
{
	proto_put_key(w, key);
	msgpack_pack_int64(&w->pk, v);
}

void
proto_put_str(struct proto_writer *w, const char *key, const char *s)
{
	proto_put_key(w, key);
	pack_cstr(&w->pk, s != NULL ? s : "");
}

void
proto_pack_str(struct proto_writer *w, const char *s, size_t len)
{
	msgpack_pack_str(&w->pk, len);
	msgpack_pack_str_body(&w->pk, s, len);
}

void
proto_pack_bin(struct proto_writer *w, const void *p, size_t len)
{
	msgpack_pack_bin(&w->pk, len);
	msgpack_pack_bin_body(&w->pk, p, len);
}

/* The head of a task entry of n elements: [id, fn, args, ...]. */
static void
pack_task_head(struct proto_writer *w, uint32_t n, uint64_t id,
    const char *fn, size_t fn_len, const void *args, size_t args_len)
{
	msgpack_pack_array(&w->pk, n);
	msgpack_pack_uint64(&w->pk, id);
	proto_pack_str(w, fn, fn_len);
	proto_pack_bin(w, args, args_len);
}

/* The head of a result entry of n elements: [id, code, value|error, ...]. */
static void
pack_result_head(struct proto_writer *w, uint32_t n, uint64_t id,
    int32_t code, const void *data, size_t len)
{
	msgpack_pack_array(&w->pk, n);
	msgpack_pack_uint64(&w->pk, id);
	msgpack_pack_int32(&w->pk, code);
	if (code == 0)
		proto_pack_bin(w, data, len);
	else
		proto_pack_str(w, data, len);
}

/* The locality keys of a submit entry. */
static void
pack_keys(struct proto_writer *w, const char *const *keys,
    const size_t *lens, uint32_t n_keys)
{
	msgpack_pack_array(&w->pk, n_keys);
	for (uint32_t i = 0; i < n_keys; i++)
		proto_pack_str(w, keys[i], lens[i]);
}

void
proto_pack_task(struct proto_writer *w, uint64_t id, const char *fn,
    size_t fn_len, const void *args, size_t args_len)
{
	pack_task_head(w, 3, id, fn, fn_len, args, args_len);
}

void
proto_pack_task_objs(struct proto_writer *w, uint64_t id, const char *fn,
    size_t fn_len, const void *args, size_t args_len,
    const char *const *keys, const size_t *lens, uint32_t n_keys)
{
	if (n_keys == 0) {
		proto_pack_task(w, id, fn, fn_len, args, args_len);
		return;
	}
	pack_task_head(w, 4, id, fn, fn_len, args, args_len);
	pack_keys(w, keys, lens, n_keys);
}

void
proto_pack_result(struct proto_writer *w, uint64_t id, int32_t code,
    const void *data, size_t len)
{
	pack_result_head(w, 3, id, code, data, len);
}

void
proto_pack_submit_task(struct proto_writer *w, uint64_t id, const char *fn,
    size_t fn_len, const void *args, size_t args_len,
    const char *const *keys, const size_t *lens, uint32_t n_keys,
    const struct proto_task_opts *opts)
{
	uint32_t nf = 0;

	if (opts == NULL || opts->set == 0) {
		proto_pack_task_objs(
		    w, id, fn, fn_len, args, args_len, keys, lens, n_keys);
		return;
	}
	pack_task_head(w, 5, id, fn, fn_len, args, args_len);
	pack_keys(w, keys, lens, n_keys);
	for (uint32_t b = opts->set & 0x1fu; b != 0; b &= b - 1)
		nf++;
	msgpack_pack_map(&w->pk, nf);
	if (opts->set & PROTO_OPT_RETRIES)
		proto_put_uint(w, "retries", opts->retries);
	if (opts->set & PROTO_OPT_BACKOFF)
		proto_put_uint(w, "backoff_ms", opts->backoff_ms);
	if (opts->set & PROTO_OPT_BACKOFF_MAX)
		proto_put_uint(w, "backoff_max_ms", opts->backoff_max_ms);
	if (opts->set & PROTO_OPT_TIMEOUT)
		proto_put_uint(w, "timeout_ms", opts->timeout_ms);
	if (opts->set & PROTO_OPT_RETRY_ERRORS)
		proto_put_uint(w, "retry_errors", opts->retry_errors ? 1 : 0);
}

void
proto_pack_task_timeout(struct proto_writer *w, uint64_t id, const char *fn,
    size_t fn_len, const void *args, size_t args_len, uint32_t timeout_ms)
{
	if (timeout_ms == 0) {
		proto_pack_task(w, id, fn, fn_len, args, args_len);
		return;
	}
	pack_task_head(w, 4, id, fn, fn_len, args, args_len);
	msgpack_pack_uint32(&w->pk, timeout_ms);
}

void
proto_pack_result_attempts(struct proto_writer *w, uint64_t id, int32_t code,
    const void *data, size_t len, uint32_t attempts)
{
	pack_result_head(w, 4, id, code, data, len);
	msgpack_pack_uint32(&w->pk, attempts);
}

void
proto_reserve_array32(struct proto_writer *w)
{
	static const char hdr[5] = { (char)0xdd, 0, 0, 0, 0 };
	msgpack_sbuffer_write(&w->buf, hdr, sizeof(hdr));
}

void
proto_patch_array32(struct proto_writer *w, size_t at, uint32_t n)
{
	uint8_t *p = (uint8_t *)w->buf.data + at;
	p[0]       = 0xdd;
	p[1]       = (uint8_t)(n >> 24);
	p[2]       = (uint8_t)(n >> 16);
	p[3]       = (uint8_t)(n >> 8);
	p[4]       = (uint8_t)n;
}

void
proto_write_error(struct proto_writer *w, int code, const char *msg)
{
	proto_open(w, PROTO_ERROR);
	proto_put_int(w, "code", code);
	proto_put_str(w, "msg", msg);
	proto_end(w);
}
