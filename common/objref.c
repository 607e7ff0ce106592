/*
 * objref.c - encode, decode and find object references.
 */
#include "objref.h"

#include <stdio.h>
#include <string.h>

#include "proto.h"

int
objref_encode(void *buf, size_t cap, size_t *len, const char *path,
    const char *loader, uint64_t size, const uint8_t *sha256)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	size_t          plen = path != NULL ? strlen(path) : 0;
	uint32_t        n    = 1;
	int             rv   = -1;

	if (plen == 0 || plen > OBJREF_MAX_PATH)
		return -1;
	n += loader != NULL && loader[0] != '\0';
	n += size != 0;
	n += sha256 != NULL;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, n);
	msgpack_pack_str_with_body(&pk, "path", 4);
	msgpack_pack_str_with_body(&pk, path, plen);
	if (loader != NULL && loader[0] != '\0') {
		msgpack_pack_str_with_body(&pk, "loader", 6);
		msgpack_pack_str_with_body(&pk, loader, strlen(loader));
	}
	if (size != 0) {
		msgpack_pack_str_with_body(&pk, "size", 4);
		msgpack_pack_uint64(&pk, size);
	}
	if (sha256 != NULL) {
		msgpack_pack_str_with_body(&pk, "sha256", 6);
		msgpack_pack_bin_with_body(&pk, sha256, 32);
	}
	if (sb.size <= cap) {
		memcpy(buf, sb.data, sb.size);
		*len = sb.size;
		rv   = 0;
	}
	msgpack_sbuffer_destroy(&sb);
	return rv;
}

static int
key_is(const msgpack_object *k, const char *name)
{
	size_t n = strlen(name);
	return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
	    memcmp(k->via.str.ptr, name, n) == 0;
}

int
objref_decode(const char *payload, size_t len, struct obj_ref *ref,
    char *err, size_t errlen)
{
	msgpack_zone   zone;
	msgpack_object o;
	size_t         off = 0;

	memset(ref, 0, sizeof(*ref));
	if (proto_check(payload, len, err, errlen) != 0)
		return -1;
	if (!msgpack_zone_init(&zone, 1024))
		return -1;
	if (msgpack_unpack(payload, len, &off, &zone, &o) !=
	    MSGPACK_UNPACK_SUCCESS) {
		snprintf(err, errlen, "object reference: malformed payload");
		msgpack_zone_destroy(&zone);
		return -1;
	}
	if (o.type != MSGPACK_OBJECT_MAP) {
		snprintf(err, errlen, "object reference: expected a map");
		msgpack_zone_destroy(&zone);
		return -1;
	}
	for (uint32_t i = 0; i < o.via.map.size; i++) {
		const msgpack_object *k = &o.via.map.ptr[i].key;
		const msgpack_object *v = &o.via.map.ptr[i].val;
		const char           *bad = NULL;
		if (key_is(k, "path")) {
			if (v->type != MSGPACK_OBJECT_STR ||
			    v->via.str.size == 0 ||
			    v->via.str.size > OBJREF_MAX_PATH ||
			    memchr(v->via.str.ptr, '\0', v->via.str.size))
				bad = "'path' must be a non-empty string "
				      "without NUL of at most 4096 bytes";
			else {
				ref->path     = v->via.str.ptr;
				ref->path_len = v->via.str.size;
			}
		} else if (key_is(k, "loader")) {
			if (v->type != MSGPACK_OBJECT_STR ||
			    v->via.str.size > 63)
				bad = "'loader' must be a name of at most 63 "
				      "bytes";
			else {
				ref->loader     = v->via.str.ptr;
				ref->loader_len = v->via.str.size;
			}
		} else if (key_is(k, "size")) {
			if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
				bad = "'size' must be a non-negative integer";
			else
				ref->size = v->via.u64;
		} else if (key_is(k, "sha256")) {
			if (v->type != MSGPACK_OBJECT_BIN ||
			    v->via.bin.size != 32)
				bad = "'sha256' must be 32 bytes";
			else
				ref->sha256 = (const uint8_t *)v->via.bin.ptr;
		}
		if (bad != NULL) {
			snprintf(err, errlen, "object reference: %s", bad);
			msgpack_zone_destroy(&zone);
			return -1;
		}
	}
	msgpack_zone_destroy(&zone);
	/* the pointers point into payload, not the zone */
	if (ref->path == NULL) {
		snprintf(err, errlen, "object reference: missing 'path'");
		return -1;
	}
	return 0;
}

size_t
objref_key(const struct obj_ref *ref, char *buf, size_t cap)
{
	const char *l  = ref->loader_len > 0 ? ref->loader : "mmap";
	size_t      ll = ref->loader_len > 0 ? ref->loader_len : 4;
	if (ll + 1 + ref->path_len + 1 > cap)
		return 0;
	memcpy(buf, l, ll);
	buf[ll] = ':';
	memcpy(buf + ll + 1, ref->path, ref->path_len);
	buf[ll + 1 + ref->path_len] = '\0';
	return ll + 1 + ref->path_len;
}

struct scan {
	size_t max, found;
	void (*fn)(void *, const struct obj_ref *);
	void *arg;
	char *err;
	size_t errlen;
	int   failed;
};

static void
walk(struct scan *s, const msgpack_object *o)
{
	if (s->failed || s->found >= s->max)
		return;
	switch (o->type) {
	case MSGPACK_OBJECT_EXT:
		if (o->via.ext.type == OBJREF_EXT_TYPE) {
			struct obj_ref r;
			if (objref_decode(o->via.ext.ptr, o->via.ext.size, &r,
			        s->err, s->errlen) != 0) {
				s->failed = 1;
				return;
			}
			s->found++;
			if (s->fn != NULL)
				s->fn(s->arg, &r);
		}
		break;
	case MSGPACK_OBJECT_ARRAY:
		for (uint32_t i = 0; i < o->via.array.size; i++)
			walk(s, &o->via.array.ptr[i]);
		break;
	case MSGPACK_OBJECT_MAP:
		for (uint32_t i = 0; i < o->via.map.size; i++)
			walk(s, &o->via.map.ptr[i].val);
		break;
	default:
		break;
	}
}

int
objref_scan(const void *args, size_t len, size_t max,
    void (*fn)(void *arg, const struct obj_ref *ref), void *arg, char *err,
    size_t errlen)
{
	struct scan    s = { max, 0, fn, arg, err, errlen, 0 };
	msgpack_zone   zone;
	msgpack_object o;
	size_t         off = 0;

	if (len == 0)
		return 0;
	/* every reference has its type byte: most arguments have none */
	if (memchr(args, OBJREF_EXT_TYPE, len) == NULL)
		return 0;
	if (proto_check(args, len, err, errlen) != 0)
		return -1;
	msgpack_zone_init(&zone, 1024);
	if (msgpack_unpack(args, len, &off, &zone, &o) !=
	    MSGPACK_UNPACK_SUCCESS) {
		snprintf(err, errlen, "arguments are not valid msgpack");
		msgpack_zone_destroy(&zone);
		return -1;
	}
	walk(&s, &o);
	msgpack_zone_destroy(&zone);
	return s.failed ? -1 : (int)s.found;
}
