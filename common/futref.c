/*
 * futref.c - future references in task arguments (futref.h): encoding,
 * decoding, finding them, and splicing results in their place.
 */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "futref.h"
#include "proto.h"

int
futref_encode(void *buf, size_t cap, size_t *len, uint64_t tag,
    int32_t code, const char *msg, size_t msg_len)
{
	return futref_encode_in(buf, cap, len, tag, 0, code, msg, msg_len);
}

int
futref_encode_in(void *buf, size_t cap, size_t *len, uint64_t tag,
    uint64_t session, int32_t code, const char *msg, size_t msg_len)
{
	msgpack_sbuffer body, ext;
	msgpack_packer  pk;
	int             rc = -1;

	msgpack_sbuffer_init(&body);
	msgpack_sbuffer_init(&ext);
	msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
	if (msgpack_pack_map(&pk, (code < 0 ? 3 : 1) + (session != 0)) != 0 ||
	    msgpack_pack_str_with_body(&pk, "task", 4) != 0 ||
	    msgpack_pack_uint64(&pk, tag) != 0)
		goto out;
	if (session != 0 &&
	    (msgpack_pack_str_with_body(&pk, "session", 7) != 0 ||
	        msgpack_pack_uint64(&pk, session) != 0))
		goto out;
	if (code < 0 &&
	    (msgpack_pack_str_with_body(&pk, "error", 5) != 0 ||
	        msgpack_pack_int32(&pk, code) != 0 ||
	        msgpack_pack_str_with_body(&pk, "message", 7) != 0 ||
	        msgpack_pack_str_with_body(&pk, msg != NULL ? msg : "",
	            msg != NULL ? msg_len : 0) != 0))
		goto out;
	msgpack_packer_init(&pk, &ext, msgpack_sbuffer_write);
	if (msgpack_pack_ext_with_body(&pk, body.data, body.size,
	        FUTREF_EXT_TYPE) != 0 ||
	    ext.size > cap)
		goto out;
	memcpy(buf, ext.data, ext.size);
	*len = ext.size;
	rc   = 0;
out:
	msgpack_sbuffer_destroy(&body);
	msgpack_sbuffer_destroy(&ext);
	return rc;
}

int
futref_decode(const char *payload, size_t len, struct fut_ref *r,
    char *err, size_t errlen)
{
	msgpack_zone   zone;
	msgpack_object o;
	size_t         off = 0;
	int            have_task = 0, have_code = 0, rc = -1;

	memset(r, 0, sizeof(*r));
	msgpack_zone_init(&zone, 256);
	if (msgpack_unpack(payload, len, &off, &zone, &o) !=
	        MSGPACK_UNPACK_SUCCESS ||
	    off != len || o.type != MSGPACK_OBJECT_MAP) {
		snprintf(err, errlen,
		    "future reference: the payload is not a msgpack map");
		goto out;
	}
	for (uint32_t i = 0; i < o.via.map.size; i++) {
		const msgpack_object *k = &o.via.map.ptr[i].key;
		const msgpack_object *v = &o.via.map.ptr[i].val;
		if (k->type != MSGPACK_OBJECT_STR)
			continue;
		if (k->via.str.size == 4 &&
		    memcmp(k->via.str.ptr, "task", 4) == 0) {
			if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
			    v->via.u64 == 0) {
				snprintf(err, errlen,
				    "future reference: 'task' must be a "
				    "task id (an integer above 0)");
				goto out;
			}
			r->tag    = v->via.u64;
			have_task = 1;
		} else if (k->via.str.size == 7 &&
		    memcmp(k->via.str.ptr, "session", 7) == 0) {
			if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
				snprintf(err, errlen,
				    "future reference: 'session' must be a "
				    "session id");
				goto out;
			}
			r->session = v->via.u64;
		} else if (k->via.str.size == 5 &&
		    memcmp(k->via.str.ptr, "error", 5) == 0) {
			if (v->type != MSGPACK_OBJECT_NEGATIVE_INTEGER ||
			    v->via.i64 < INT32_MIN) {
				snprintf(err, errlen,
				    "future reference: 'error' must be a "
				    "negative error code");
				goto out;
			}
			r->code   = (int32_t)v->via.i64;
			have_code = 1;
		} else if (k->via.str.size == 7 &&
		    memcmp(k->via.str.ptr, "message", 7) == 0) {
			if (v->type != MSGPACK_OBJECT_STR) {
				snprintf(err, errlen,
				    "future reference: 'message' must be "
				    "a string");
				goto out;
			}
			/* points into payload: msgpack-c refers to strings
			 * in the buffer rather than copying them */
			r->msg     = v->via.str.ptr;
			r->msg_len = v->via.str.size;
		}
	}
	if (!have_task) {
		snprintf(err, errlen, "future reference: no 'task'");
		goto out;
	}
	(void)have_code;
	rc = 0;
out:
	msgpack_zone_destroy(&zone);
	return rc;
}

/* Whether args may hold a reference at all: every one has its type
 * byte, and most arguments have none. */
static int
may_hold(const void *args, size_t len)
{
	return len > 0 && memchr(args, FUTREF_EXT_TYPE, len) != NULL;
}

/* Unpack args into o (zone initialised by the caller). */
static int
unpack(const void *args, size_t len, msgpack_zone *zone, msgpack_object *o,
    char *err, size_t errlen)
{
	size_t off = 0;

	if (proto_check(args, len, err, errlen) != 0)
		return -1;
	if (msgpack_unpack(args, len, &off, zone, o) !=
	    MSGPACK_UNPACK_SUCCESS) {
		snprintf(err, errlen, "arguments are not valid msgpack");
		return -1;
	}
	return 0;
}

struct walk {
	void (*fn)(void *, const struct fut_ref *);
	void            *arg;
	futref_subst_fn  subst;
	msgpack_packer  *pk; /* splicing: the copy being written */
	msgpack_sbuffer *sb;
	size_t           found;
	char            *err;
	size_t           errlen;
	int              failed;
};

/* One value: found (scan) or copied with references replaced (splice). */
static void
walk(struct walk *w, const msgpack_object *o)
{
	struct fut_ref r;
	const void    *val;
	size_t         vlen;
	int            rc;

	if (w->failed)
		return;
	switch (o->type) {
	case MSGPACK_OBJECT_EXT:
		if (o->via.ext.type != FUTREF_EXT_TYPE)
			break;
		if (futref_decode(o->via.ext.ptr, o->via.ext.size, &r, w->err,
		        w->errlen) != 0 ||
		    ++w->found > FUTREF_MAX) {
			if (w->found > FUTREF_MAX)
				snprintf(w->err, w->errlen,
				    "more than %d future references",
				    FUTREF_MAX);
			w->failed = 1;
			return;
		}
		if (w->fn != NULL)
			w->fn(w->arg, &r);
		if (w->pk == NULL)
			return;
		if ((rc = w->subst(w->arg, &r, &val, &vlen, w->err,
		         w->errlen)) < 0) {
			w->failed = 1;
			return;
		}
		if (rc == 0) {
			/* the packer writes straight through to sb, so
			 * bytes already encoded can go in between */
			if (msgpack_sbuffer_write(w->sb, val, vlen) != 0)
				w->failed = -1;
			return;
		}
		break;
	case MSGPACK_OBJECT_ARRAY:
		if (w->pk != NULL &&
		    msgpack_pack_array(w->pk, o->via.array.size) != 0) {
			w->failed = -1;
			return;
		}
		for (uint32_t i = 0; i < o->via.array.size; i++)
			walk(w, &o->via.array.ptr[i]);
		return;
	case MSGPACK_OBJECT_MAP:
		if (w->pk != NULL &&
		    msgpack_pack_map(w->pk, o->via.map.size) != 0) {
			w->failed = -1;
			return;
		}
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			if (w->pk != NULL &&
			    msgpack_pack_object(w->pk, o->via.map.ptr[i].key) !=
			        0) {
				w->failed = -1;
				return;
			}
			walk(w, &o->via.map.ptr[i].val);
		}
		return;
	default:
		break;
	}
	if (w->pk != NULL && msgpack_pack_object(w->pk, *o) != 0)
		w->failed = -1;
}

int
futref_scan(const void *args, size_t len,
    void (*fn)(void *arg, const struct fut_ref *r), void *arg, char *err,
    size_t errlen)
{
	struct walk    w = { fn, arg, NULL, NULL, NULL, 0, err, errlen, 0 };
	msgpack_zone   zone;
	msgpack_object o;

	if (!may_hold(args, len))
		return 0;
	msgpack_zone_init(&zone, 1024);
	if (unpack(args, len, &zone, &o, err, errlen) == 0)
		walk(&w, &o);
	else
		w.failed = 1;
	msgpack_zone_destroy(&zone);
	return w.failed ? -1 : (int)w.found;
}

int
futref_splice(const void *args, size_t len, futref_subst_fn subst,
    void *arg, void **out, size_t *out_len, char *err, size_t errlen)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	msgpack_zone    zone;
	msgpack_object  o;
	struct walk     w = { NULL, arg, subst, &pk, &sb, 0, err, errlen, 0 };

	*out     = NULL;
	*out_len = 0;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_zone_init(&zone, 1024);
	if (!may_hold(args, len)) {
		/* nothing to replace: a plain copy */
		if (len > 0 && msgpack_sbuffer_write(&sb, args, len) != 0)
			w.failed = -1;
	} else if (unpack(args, len, &zone, &o, err, errlen) == 0) {
		walk(&w, &o);
	} else {
		w.failed = 1;
	}
	msgpack_zone_destroy(&zone);
	if (w.failed != 0) {
		if (w.failed < 0)
			snprintf(err, errlen, "out of memory splicing results "
			                      "into arguments");
		msgpack_sbuffer_destroy(&sb);
		return -1;
	}
	*out_len = sb.size;
	*out     = msgpack_sbuffer_release(&sb);
	if (*out == NULL) /* empty: give the caller something to free */
		*out = malloc(1);
	return *out == NULL ? -1 : 0;
}
