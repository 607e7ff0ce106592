/*
 * proto_decode.c - decode Ferry's msgpack messages, field by field.
 *
 * proto_decode() runs proto_check() first, so msgpack-c never unpacks
 * bytes whose containers do not fit them; then it checks the envelope
 * ("v", "t") and hands the map to the decoder of the message's type,
 * which checks each field's presence and type and says what is wrong and
 * where.  Everything decoded points into the decoder's zone or the input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/ferry.h"
#include "proto_int.h"

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

const char *
pd_obj_type(const msgpack_object *o)
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


int
pd_bad(struct dctx *c, const char *fmt, ...)
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

const msgpack_object *
pd_map_get(const msgpack_object *map, const char *key)
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

/* Field key of map: *o is it (NULL when absent and not required, or on
 * error).  Returns 0, or an error naming key: missing, or not of type
 * (what). */
static int
get_field(struct dctx *c, const msgpack_object *map, const char *key,
    msgpack_object_type type, const char *what, int required,
    const msgpack_object **o)
{
	const msgpack_object *f = pd_map_get(map, key);

	*o = NULL;
	if (f == NULL)
		return required ? pd_bad(c, "missing field '%s'", key) : 0;
	if (f->type != type)
		return pd_bad(c, "field '%s': expected %s, got %s", key, what,
		    pd_obj_type(f));
	*o = f;
	return 0;
}

int
pd_get_uint(struct dctx *c, const msgpack_object *map, const char *key,
    uint64_t *out, int required)
{
	const msgpack_object *o;
	int                   rv;

	if ((rv = get_field(c, map, key, MSGPACK_OBJECT_POSITIVE_INTEGER,
	         "a non-negative integer", required, &o)) != 0 ||
	    o == NULL)
		return rv;
	*out = o->via.u64;
	return 0;
}

static char *
pd_strdup(struct dctx *c, const char *p, uint32_t len)
{
	char *s = msgpack_zone_malloc(&c->d->zone, (size_t)len + 1);
	if (s == NULL)
		return NULL;
	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

int
pd_get_str(struct dctx *c, const msgpack_object *map, const char *key,
    const char **out, int required)
{
	const msgpack_object *o;
	int                   rv;

	if ((rv = get_field(c, map, key, MSGPACK_OBJECT_STR, "a string",
	         required, &o)) != 0)
		return rv;
	if (o == NULL) {
		*out = "";
		return 0;
	}
	if (memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL)
		return pd_bad(c, "field '%s': string contains a NUL byte", key);
	if ((*out = pd_strdup(c, o->via.str.ptr, o->via.str.size)) == NULL)
		return FERRY_ENOMEM;
	return 0;
}

int
pd_get_array(struct dctx *c, const msgpack_object *map, const char *key,
    const msgpack_object **out, int required)
{
	return get_field(c, map, key, MSGPACK_OBJECT_ARRAY, "an array",
	    required, out);
}

/* The functions a worker's hello names: 1..255 bytes each, no NUL. */
static int
decode_functions(struct dctx *c, const msgpack_object *fns,
    struct proto_msg *m)
{
	m->n_functions = fns->via.array.size;
	m->functions   = msgpack_zone_malloc(
            &c->d->zone, sizeof(char *) * (m->n_functions + 1));
	if (m->functions == NULL)
		return FERRY_ENOMEM;
	for (uint32_t i = 0; i < m->n_functions; i++) {
		const msgpack_object *e = &fns->via.array.ptr[i];
		if (e->type != MSGPACK_OBJECT_STR)
			return pd_bad(c,
			    "functions[%u]: expected a name of 1..255 bytes, "
			    "got %s",
			    i, pd_obj_type(e));
		if (e->via.str.size == 0 || e->via.str.size > 255)
			return pd_bad(c,
			    "functions[%u]: expected a name of 1..255 bytes, "
			    "got %u bytes",
			    i, e->via.str.size);
		if (memchr(e->via.str.ptr, '\0', e->via.str.size) != NULL)
			return pd_bad(c, "functions[%u]: name contains a NUL byte",
			    i);
		m->functions[i] =
		    pd_strdup(c, e->via.str.ptr, e->via.str.size);
		if (m->functions[i] == NULL)
			return FERRY_ENOMEM;
	}
	return 0;
}

/* What only a worker's hello has: slots, capacity, functions. */
static int
decode_hello_worker(struct dctx *c, const msgpack_object *map,
    struct proto_msg *m)
{
	const msgpack_object *fns;
	int                   rv;

	if ((rv = pd_get_uint(c, map, "slots", &m->slots, 1)) != 0 ||
	    (rv = pd_get_uint(c, map, "capacity", &m->capacity, 1)) != 0 ||
	    (rv = pd_get_array(c, map, "functions", &fns, 1)) != 0)
		return rv;
	if (m->slots == 0 || m->slots > 1u << 20)
		return pd_bad(c, "field 'slots': %llu is out of range 1..%u",
		    (unsigned long long)m->slots, 1u << 20);
	if (m->capacity < m->slots || m->capacity > 1u << 24)
		return pd_bad(c, "field 'capacity': %llu is out of range "
		              "slots..%u",
		    (unsigned long long)m->capacity, 1u << 24);
	if ((rv = decode_functions(c, fns, m)) != 0 ||
	    (rv = pd_get_uint(c, map, "epoch", &m->epoch, 0)) != 0 ||
	    (rv = pd_get_uint(c, map, "previous", &m->previous, 0)) != 0)
		return rv;
	return pd_task_ids(c, map, "holding", 2 * m->capacity,
	    "twice the capacity", &m->holding, &m->n_holding);
}

static int
decode_hello(struct dctx *c, const msgpack_object *map, struct proto_msg *m)
{
	const char *role;
	int         rv;

	if ((rv = pd_get_str(c, map, "role", &role, 1)) != 0)
		return rv;
	if (strcmp(role, "worker") == 0)
		m->role = PROTO_ROLE_WORKER;
	else if (strcmp(role, "client") == 0)
		m->role = PROTO_ROLE_CLIENT;
	else if (strcmp(role, "supervisor") == 0)
		m->role = PROTO_ROLE_SUPERVISOR;
	else
		return pd_bad(c, "field 'role': expected \"worker\", "
		              "\"client\" or \"supervisor\", got \"%.64s\"",
		    role);
	if ((rv = pd_get_str(c, map, "name", &m->name, 0)) != 0 ||
	    (rv = pd_get_str(c, map, "host", &m->host, 0)) != 0 ||
	    (rv = pd_get_str(c, map, "group", &m->group, 0)) != 0 ||
	    (rv = pd_get_uint(c, map, "pid", &m->pid, 0)) != 0 ||
	    (rv = pd_get_uint(c, map, "session", &m->session, 0)) != 0 ||
	    (rv = pd_get_uint(c, map, "supervisor", &m->supervisor,
	         m->role == PROTO_ROLE_SUPERVISOR)) != 0)
		return rv;
	if ((rv = pd_get_str(c, map, "token", &m->token, 0)) != 0)
		return rv;
	if (strlen(m->token) > 256)
		return pd_bad(c, "field 'token': %zu bytes, at most 256",
		    strlen(m->token));
	if (m->role == PROTO_ROLE_SUPERVISOR && m->supervisor == 0)
		return pd_bad(c, "field 'supervisor': a supervisor's token must "
		              "not be 0");
	if (m->role != PROTO_ROLE_WORKER)
		return 0;
	return decode_hello_worker(c, map, m);
}

/* The uint fields of each message type, in the order they are checked
 * (the first wrong one is named); more types' fields in decode_hello and
 * proto_entries.c. */
static const struct {
	int         type;
	const char *key;
	size_t      off;
	int         required;
} uints[] = {
#define U(type, key, field, req)                                            \
	{ type, key, offsetof(struct proto_msg, field), req }
	U(PROTO_WELCOME, "id", id, 1),
	U(PROTO_WELCOME, "heartbeat_ms", heartbeat_ms, 1),
	U(PROTO_WELCOME, "max_message_size", max_message_size, 0),
	U(PROTO_WELCOME, "heartbeat_timeout_ms", heartbeat_timeout_ms, 0),
	U(PROTO_WELCOME, "resumed", resumed, 0),
	U(PROTO_WELCOME, "max_tag", max_tag, 0),
	U(PROTO_WELCOME, "epoch", epoch, 0),
	U(PROTO_WATCH, "wait_ms", wait_ms, 0),
	U(PROTO_SUBMITTED, "accepted", accepted, 1),
	U(PROTO_FETCH, "ack", ack, 1),
	U(PROTO_FETCH, "wait_ms", wait_ms, 0),
	U(PROTO_RESULTS, "seq", seq, 1),
	U(PROTO_WORK, "credit", credit, 1),
	U(PROTO_WORK, "park", park, 0),
#undef U
};

/* The uint fields of m's type. */
static int
decode_uints(struct dctx *c, const msgpack_object *map, struct proto_msg *m)
{
	int rv;

	for (size_t i = 0; i < sizeof(uints) / sizeof(uints[0]); i++)
		if (uints[i].type == m->type &&
		    (rv = pd_get_uint(c, map, uints[i].key,
		         (uint64_t *)((char *)m + uints[i].off),
		         uints[i].required)) != 0)
			return rv;
	return 0;
}

/* welcome: the uints, then a worker's list of tasks to drop. */
static int
decode_welcome(struct dctx *c, const msgpack_object *map, struct proto_msg *m)
{
	int rv;

	if ((rv = decode_uints(c, map, m)) != 0)
		return rv;
	return pd_task_ids(c, map, "drop", PROTO_MAX_HOLDING, "the limit",
	    &m->drop, &m->n_drop);
}

/* submitted (its rejected entries, optional) and results (required):
 * the uints, then the list of result entries. */
static int
decode_result_list(struct dctx *c, const msgpack_object *map,
    struct proto_msg *m)
{
	int submitted = m->type == PROTO_SUBMITTED;
	int rv;

	if ((rv = decode_uints(c, map, m)) != 0)
		return rv;
	return pd_results(c, map, submitted ? "rejected" : "results", m,
	    !submitted);
}

static int
decode_status(struct dctx *c, const msgpack_object *map, struct proto_msg *m)
{
	(void)c;
	(void)map;
	(void)m;
	return 0;
}

static int
decode_status_reply(struct dctx *c, const msgpack_object *map,
    struct proto_msg *m)
{
	msgpack_object *body = msgpack_zone_malloc(&c->d->zone, sizeof(*map));

	if (body == NULL)
		return FERRY_ENOMEM;
	memcpy(body, map, sizeof(*map));
	m->body = body;
	return 0;
}

static int
decode_work(struct dctx *c, const msgpack_object *map, struct proto_msg *m)
{
	int rv;

	if ((rv = decode_uints(c, map, m)) != 0 ||
	    (rv = pd_results(c, map, "results", m, 0)) != 0 ||
	    (rv = pd_keys(c, map, "loaded", &m->loaded, &m->n_loaded)) != 0 ||
	    (rv = pd_keys(c, map, "evicted", &m->evicted, &m->n_evicted)) !=
	        0)
		return rv;
	return pd_cache(c, map, &m->cache);
}

static int
decode_error(struct dctx *c, const msgpack_object *map, struct proto_msg *m)
{
	const msgpack_object *co = pd_map_get(map, "code");

	if (co == NULL)
		return pd_bad(c, "missing field 'code'");
	if (co->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		return pd_bad(c,
		    "field 'code': expected a negative error code, got %llu",
		    (unsigned long long)co->via.u64);
	if (co->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
		return pd_bad(c,
		    "field 'code': expected a negative error code, got %s",
		    pd_obj_type(co));
	if (co->via.i64 < INT32_MIN)
		return pd_bad(c,
		    "field 'code': expected a negative error code, got %lld",
		    (long long)co->via.i64);
	m->code = (int32_t)co->via.i64;
	return pd_get_str(c, map, "msg", &m->msg, 1);
}

/* The decoder of each message type's fields. */
static int (*const decoders[PROTO_TYPE_MAX])(struct dctx *,
    const msgpack_object *, struct proto_msg *) = {
	[PROTO_HELLO]        = decode_hello,
	[PROTO_WELCOME]      = decode_welcome,
	[PROTO_SUBMIT]       = pd_tasks,
	[PROTO_SUBMITTED]    = decode_result_list,
	[PROTO_FETCH]        = decode_uints,
	[PROTO_RESULTS]      = decode_result_list,
	[PROTO_CANCEL]       = pd_ids,
	[PROTO_CANCELLED]    = pd_ids,
	[PROTO_STATUS]       = decode_status,
	[PROTO_STATUS_REPLY] = decode_status_reply,
	[PROTO_WORK]         = decode_work,
	[PROTO_TASKS]        = pd_tasks,
	[PROTO_ERROR]        = decode_error,
	[PROTO_WATCH]        = decode_uints,
	[PROTO_REPORT]       = pd_report,
	[PROTO_ORDERS]       = pd_orders,
};

/* Unpack the checked bytes into *root, a map with "v" and "t": the
 * version in c->v, the type in m->type (PROTO_NONE if unknown) and *t
 * the type's string. */
static int
decode_envelope(struct dctx *c, const void *data, size_t len,
    msgpack_object *root, struct proto_msg *m, const msgpack_object **t)
{
	const msgpack_object *o;
	size_t                off = 0;

	switch (msgpack_unpack(data, len, &off, &c->d->zone, root)) {
	case MSGPACK_UNPACK_SUCCESS:
		break;
	case MSGPACK_UNPACK_NOMEM_ERROR:
		return pd_bad(c, "out of memory while decoding");
	default:
		return pd_bad(c, "malformed msgpack (nested too deeply?)");
	}
	if (root->type != MSGPACK_OBJECT_MAP)
		return pd_bad(c, "expected a map, got %s", pd_obj_type(root));
	if ((o = pd_map_get(root, "v")) == NULL)
		return pd_bad(c, "missing field 'v' (protocol version)");
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return pd_bad(c, "field 'v': expected an integer, got %s",
		    pd_obj_type(o));
	c->v = o->via.u64;
	if ((o = pd_map_get(root, "t")) == NULL)
		return pd_bad(c, "missing field 't' (message type)");
	if (o->type != MSGPACK_OBJECT_STR)
		return pd_bad(c, "field 't': expected a string, got %s",
		    pd_obj_type(o));
	m->type = type_lookup(o->via.str.ptr, o->via.str.size);
	c->type = m->type;
	if (m->type != PROTO_NONE)
		c->tname = type_names[m->type];
	*t = o;
	return 0;
}

int
proto_decode(struct proto_decoder *d, const void *data, size_t len,
    struct proto_msg *m, char *err, size_t errlen)
{
	msgpack_object        root;
	const msgpack_object *t = NULL;
	struct dctx           c = { d, PROTO_NONE, "message", err, errlen, 0 };
	int                   rv;

	memset(m, 0, sizeof(*m));
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (proto_check(data, len, err, errlen) != 0)
		return FERRY_EPROTO;
	msgpack_zone_clear(&d->zone);
	if ((rv = decode_envelope(&c, data, len, &root, m, &t)) != 0)
		return rv;
	if (c.v != PROTO_VERSION) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen,
			    "%s: protocol version %llu is not supported (this "
			    "side speaks version %d)",
			    c.tname, (unsigned long long)c.v, PROTO_VERSION);
		return FERRY_EVERSION;
	}
	if (m->type == PROTO_NONE)
		return pd_bad(&c, "unknown message type \"%.*s\"",
		    (int)(t->via.str.size > 64 ? 64 : t->via.str.size),
		    t->via.str.ptr);
	m->version = PROTO_VERSION;
	return decoders[m->type](&c, &root, m);
}
