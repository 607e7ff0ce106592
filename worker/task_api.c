/*
 * task_api.c - the ferry_task_* functions task libraries call
 * (include/ferry/task.h): the result packer, failing a task, its id and
 * name, and the objects its arguments reference (resolved through the
 * process's object cache and pinned until the task returns, or held
 * until released).
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "objcache.h"
#include "objref.h"
#include "process_int.h"

__attribute__((visibility("default"))) msgpack_packer *
ferry_task_packer(ferry_task *t)
{
	return &t->pk;
}

__attribute__((visibility("default"))) int
ferry_task_fail(ferry_task *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t->err, sizeof(t->err), fmt, ap);
	va_end(ap);
	t->failed = 1;
	return -1;
}

__attribute__((visibility("default"))) uint64_t
ferry_task_id(const ferry_task *t)
{
	return t->id;
}

__attribute__((visibility("default"))) const char *
ferry_task_name(const ferry_task *t)
{
	return t->name;
}

/* The object an argument references, acquired (the caller releases
 * it). */
static int
task_acquire(ferry_task *t, const msgpack_object *ref,
    struct obj_entry **out)
{
	struct obj_ref r;
	char           err[900];

	if (!ferry_is_object(ref)) {
		t->code = FERRY_EOBJECT;
		return ferry_task_fail(t,
		    "%s: argument is not an object reference (msgpack ext "
		    "type %d)",
		    t->name, FERRY_EXT_OBJECT);
	}
	if (objref_decode(ref->via.ext.ptr, ref->via.ext.size, &r, err,
	        sizeof(err)) != 0) {
		t->code = FERRY_EOBJECT;
		return ferry_task_fail(t, "%s: %s", t->name, err);
	}
	if (t->cache == NULL ||
	    objcache_acquire(t->cache, &r, out, err, sizeof(err)) != 0) {
		t->code = FERRY_EOBJECT;
		return ferry_task_fail(t, "%s", t->cache != NULL ? err
		    : "this worker has no object cache");
	}
	return 0;
}

/* The object an argument references, pinned for the task's duration. */
static int
task_object(ferry_task *t, const msgpack_object *ref, struct obj_entry **out)
{
	if (t->n_pins == WRK_MAX_PINS) {
		t->code = FERRY_EOBJECT;
		return ferry_task_fail(t,
		    "%s: a task may hold at most %d objects", t->name,
		    WRK_MAX_PINS);
	}
	if (task_acquire(t, ref, out) != 0)
		return -1;
	t->pins[t->n_pins++] = *out;
	return 0;
}

__attribute__((visibility("default"))) int
ferry_task_object_bytes(ferry_task *t, const msgpack_object *ref,
    const void **data, size_t *len)
{
	struct obj_entry *e;
	const void       *p;
	size_t            n;
	if (task_object(t, ref, &e) != 0)
		return -1;
	if ((p = objcache_data(e, &n)) == NULL) {
		t->code = FERRY_EOBJECT;
		return ferry_task_fail(t,
		    "%s: this object's loader builds a value, not bytes: use "
		    "ferry_task_object()",
		    t->name);
	}
	*data = p;
	*len  = n;
	return 0;
}

__attribute__((visibility("default"))) int
ferry_task_object(ferry_task *t, const msgpack_object *ref, void **value)
{
	struct obj_entry *e;
	if (task_object(t, ref, &e) != 0)
		return -1;
	*value = objcache_value(e);
	return 0;
}

/* A hold: the entry stays acquired until ferry_object_release(). */
struct ferry_object {
	struct objcache  *cache;
	struct obj_entry *e;
};

static atomic_size_t objects_held;

__attribute__((visibility("default"))) int
ferry_task_object_hold(ferry_task *t, const msgpack_object *ref,
    ferry_object **obj, const void **data, size_t *len)
{
	struct ferry_object *h;
	struct obj_entry    *e;
	const void          *p;
	size_t               n;

	*obj = NULL;
	if ((h = malloc(sizeof(*h))) == NULL) {
		t->code = FERRY_EOBJECT;
		return ferry_task_fail(t, "%s: out of memory holding an object",
		    t->name);
	}
	if (task_acquire(t, ref, &e) != 0) {
		free(h);
		return -1;
	}
	if ((p = objcache_data(e, &n)) == NULL) {
		objcache_release(t->cache, e);
		free(h);
		t->code = FERRY_EOBJECT;
		return ferry_task_fail(t,
		    "%s: this object's loader builds a value, not bytes: it "
		    "cannot be held as bytes",
		    t->name);
	}
	h->cache = t->cache;
	h->e     = e;
	atomic_fetch_add(&objects_held, 1);
	*obj  = h;
	*data = p;
	*len  = n;
	return 0;
}

__attribute__((visibility("default"))) void
ferry_object_release(ferry_object *h)
{
	if (h == NULL)
		return;
	objcache_release(h->cache, h->e);
	atomic_fetch_sub(&objects_held, 1);
	free(h);
}

size_t
wp_objects_held(void)
{
	return atomic_load(&objects_held);
}

void
wp_unpin_all(struct ferry_task *t, int invalidate)
{
	for (int i = 0; i < t->n_pins; i++) {
		if (invalidate)
			objcache_invalidate(t->cache, t->pins[i]);
		objcache_release(t->cache, t->pins[i]);
	}
	t->n_pins = 0;
}
