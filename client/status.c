/*
 * status.c - the cluster's status (the scheduler's status document, and
 * struct ferry_status filled from the counter table of
 * common/status_fields.h) and the client's own counters.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"
#include "json.h"
#include "status_fields.h"

void
status_pump_locked(ferry_client *c)
{
	struct creq *r;

	if (!c->status_want)
		return;
	c->status_want = 0;
	if ((r = creq_new(c, CREQ_STATUS)) == NULL)
		return;
	proto_writer_reset(&c->w);
	proto_write_status(&c->w);
	if (creq_send(c, r) != 0)
		creq_clear(r);
}

void
status_answer_locked(ferry_client *c, int rv, const struct proto_msg *m,
    nng_msg *msg)
{
	if (rv != 0 || m->type != PROTO_STATUS_REPLY)
		return;
	free(c->status_bytes);
	c->status_bytes = malloc(nng_msg_len(msg));
	if (c->status_bytes != NULL) {
		memcpy(c->status_bytes, nng_msg_body(msg), nng_msg_len(msg));
		c->status_len = nng_msg_len(msg);
	}
	c->status_gen++;
}

static uint64_t
map_uint(const msgpack_object *map, const char *key)
{
	size_t klen = strlen(key);
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_STR &&
		    kv->key.via.str.size == klen &&
		    memcmp(kv->key.via.str.ptr, key, klen) == 0 &&
		    kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			return kv->val.via.u64;
	}
	return 0;
}

/* Ask for the scheduler's status document: *bytes (malloc'd) and *len. */
static int
status_fetch(ferry_client *c, uint8_t **bytes, size_t *len, int timeout_ms)
{
	struct timespec ts;
	uint64_t        gen;
	int             rv = 0;

	*bytes = NULL;
	*len   = 0;
	deadline_of(timeout_ms > 0 ? timeout_ms : 0, &ts);
	pthread_mutex_lock(&c->lock);
	gen            = c->status_gen;
	c->status_want = 1;
	pump_locked(c);
	while (c->status_gen == gen && rv == 0 && !c->offline)
		rv = wait_locked(c, timeout_ms, &ts);
	if (c->status_gen == gen && c->offline) {
		rv = FERRY_ECLOSED; /* gave up on the scheduler */
	} else if (c->status_gen != gen && c->status_bytes != NULL) {
		if ((*bytes = malloc(c->status_len)) != NULL) {
			memcpy(*bytes, c->status_bytes, c->status_len);
			*len = c->status_len;
		}
		rv = *bytes != NULL ? 0 : FERRY_ENOMEM;
	} else if (rv == 0) {
		rv = FERRY_ETIMEDOUT;
	}
	pthread_mutex_unlock(&c->lock);
	return rv;
}

/* Fill st (st->size bytes of it) from a status document: every number
 * of the counter table (common/status_fields.h) has a member. */
static int
status_fill(struct ferry_status *st, const uint8_t *bytes, size_t len)
{
#define U32 4
#define U64 8
#define STATUS_MEMBER(name, kind, width, doc)                               \
	{ #name, offsetof(struct ferry_status, name), width },
	static const struct {
		const char *name;
		size_t      off;
		int         width;
	} members[] = { FERRY_STATUS_FIELDS(STATUS_MEMBER) };
#undef STATUS_MEMBER
#undef U32
#undef U64
	struct ferry_status full;
	msgpack_zone        zone;
	msgpack_object      o;
	size_t              off = 0;
	int                 rv  = 0;

	msgpack_zone_init(&zone, 2048);
	if (msgpack_unpack((const char *)bytes, len, &off, &zone, &o) !=
	        MSGPACK_UNPACK_SUCCESS ||
	    o.type != MSGPACK_OBJECT_MAP) {
		msgpack_zone_destroy(&zone);
		return FERRY_EPROTO;
	}
	memset(&full, 0, sizeof(full));
	full.size = st->size;
	for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
		uint64_t v = map_uint(&o, members[i].name);
		char    *p = (char *)&full + members[i].off;
		if (members[i].width == 4) {
			uint32_t v32 = (uint32_t)v;
			memcpy(p, &v32, sizeof(v32));
		} else {
			memcpy(p, &v, sizeof(v));
		}
	}
	full.uptime_s = (double)full.uptime_ms / 1e3;
	memcpy(st, &full, st->size < sizeof(full) ? st->size : sizeof(full));
	msgpack_zone_destroy(&zone);
	return rv;
}

FERRY_API int
ferry_cluster_status_doc(ferry_client *c, struct ferry_status *st, void **doc,
    size_t *len, int timeout_ms)
{
	uint8_t *bytes;
	size_t   n;
	int      rv;

	if (c == NULL || (st != NULL && st->size < sizeof(size_t)))
		return FERRY_EINVAL;
	if (doc != NULL)
		*doc = NULL;
	if ((rv = status_fetch(c, &bytes, &n, timeout_ms)) != 0)
		return rv;
	if (st != NULL && (rv = status_fill(st, bytes, n)) != 0) {
		free(bytes);
		return rv;
	}
	if (doc != NULL) {
		*doc = bytes;
		if (len != NULL)
			*len = n;
	} else {
		free(bytes);
	}
	return 0;
}

FERRY_API int
ferry_cluster_status(ferry_client *c, struct ferry_status *st, char **json,
    int timeout_ms)
{
	void  *doc = NULL;
	size_t len = 0;
	int    rv;

	if (json != NULL)
		*json = NULL;
	rv = ferry_cluster_status_doc(c, st, json != NULL ? &doc : NULL, &len,
	    timeout_ms);
	if (rv == 0 && json != NULL) {
		char err[256];
		*json = json_from_msgpack_bytes(doc, len, err, sizeof(err));
		if (*json == NULL)
			rv = FERRY_EPROTO;
	}
	free(doc);
	return rv;
}

FERRY_API int
ferry_client_stats(ferry_client *c, struct ferry_client_stats *st)
{
	size_t sz;
	if (c == NULL || st == NULL || st->size < sizeof(size_t))
		return FERRY_EINVAL;
	sz = st->size < sizeof(*st) ? st->size : sizeof(*st);
	pthread_mutex_lock(&c->lock);
	c->stats.size    = st->size;
	c->stats.orphans = c->orphans.count;
	c->stats.unsent  = c->unsent;
	memcpy(st, &c->stats, sz);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

FERRY_API int
ferry_default_address(char *buf, size_t len)
{
	const char *env = getenv("FERRY_ADDRESS");
	char        rt[4096];
	int         n;

	if (buf == NULL || len == 0)
		return FERRY_EINVAL;
	if (env != NULL && env[0] != '\0') {
		if (strlen(env) >= len)
			return FERRY_ETOOBIG;
		memcpy(buf, env, strlen(env) + 1);
		return 0;
	}
	if (util_runtime_dir(rt, sizeof(rt)) != 0)
		return errno == EINVAL ? FERRY_EINVAL : FERRY_ETOOBIG;
	n = snprintf(buf, len, "ipc://%s/local.sock", rt);
	return n < 0 || (size_t)n >= len ? FERRY_ETOOBIG : 0;
}
