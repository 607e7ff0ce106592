/*
 * task_api.c - the ferry_task_* functions task libraries call
 * (include/ferry/task.h): the result packer, failing a task, its id and
 * name, and the objects its arguments reference (resolved through the
 * process's object cache and pinned until the task returns).
 */
#include <stdarg.h>
#include <stdio.h>

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

/* The object an argument references, pinned for the task's duration. */
static int
task_object(ferry_task *t, const msgpack_object *ref, struct obj_entry **out)
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
	if (t->n_pins == WRK_MAX_PINS) {
		t->code = FERRY_EOBJECT;
		return ferry_task_fail(t,
		    "%s: a task may hold at most %d objects", t->name,
		    WRK_MAX_PINS);
	}
	if (t->cache == NULL ||
	    objcache_acquire(t->cache, &r, out, err, sizeof(err)) != 0) {
		t->code = FERRY_EOBJECT;
		return ferry_task_fail(t, "%s", t->cache != NULL ? err
		    : "this worker has no object cache");
	}
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
