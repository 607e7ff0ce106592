/*
 * task.h - the task-library API.
 *
 * A task library is a shared object that a Ferry worker loads at start.  It
 * exports one function, ferry_library_init(), which registers named task
 * functions:
 *
 *     #include <ferry/task.h>
 *
 *     static int
 *     add(ferry_task *t, const msgpack_object *args)
 *     {
 *             if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 2)
 *                     return ferry_task_fail(t, "add expects [a, b]");
 *             int64_t a = args->via.array.ptr[0].via.i64;
 *             int64_t b = args->via.array.ptr[1].via.i64;
 *             msgpack_pack_int64(ferry_task_packer(t), a + b);
 *             return 0;
 *     }
 *
 *     FERRY_LIBRARY_INIT(reg)
 *     {
 *             return ferry_register(reg, "add", add);
 *     }
 *
 * A task function receives its arguments already decoded (the msgpack
 * object lives until the function returns) and writes exactly one msgpack
 * value as its result through ferry_task_packer(); writing nothing returns
 * nil.  It returns 0 on success, or the value of ferry_task_fail() to fail
 * the task with a message.
 *
 * Task functions may run on several threads of one worker process at once
 * (when the worker group has more than one slot): they must be
 * thread-safe.  A task that crashes its process fails that task only; the
 * worker's supervisor restarts the process.
 */
#ifndef FERRY_TASK_H
#define FERRY_TASK_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this interface; a worker refuses libraries built against
 * another major version. */
#define FERRY_TASK_ABI 1

typedef struct ferry_task ferry_task;
typedef struct ferry_registry ferry_registry;

/* A task function: see the comment at the top of this file. */
typedef int (*ferry_task_fn)(ferry_task *t, const msgpack_object *args);

/* Register fn under name (copied; at most 255 bytes of [A-Za-z0-9_.:-]).
 * Returns 0, or -1 if the name is invalid or already registered. */
int ferry_register(ferry_registry *reg, const char *name, ferry_task_fn fn);

/*
 * Settings the worker was started with for its task libraries rather
 * than for itself: a worker group's `python: {modules, path}` reaches
 * the library ferry_python as "python.module" and "python.path".
 * Returns the i-th value of key (i from 0), or NULL past the last or for
 * an unknown key.  Only during ferry_library_init(); the strings live as
 * long as the process.
 */
const char *ferry_registry_setting(const ferry_registry *reg,
    const char *key, size_t i);

/* Say why ferry_library_init() fails (printf format): the worker logs
 * this message and does not start.  Returns -1 so that an init can
 * `return ferry_registry_fail(reg, ...)`. */
int ferry_registry_fail(ferry_registry *reg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The packer a task writes its result into (owned by the worker). */
msgpack_packer *ferry_task_packer(ferry_task *t);

/* Fail the task with a message (printf format); returns -1 so a task can
 * `return ferry_task_fail(t, ...)`. Anything packed is discarded. */
int ferry_task_fail(ferry_task *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The task's id (as the scheduler numbers it) and its function's name. */
uint64_t ferry_task_id(const ferry_task *t);
const char *ferry_task_name(const ferry_task *t);

/*
 * Object references.  An argument of msgpack ext type FERRY_EXT_OBJECT
 * (70) names a file (see ferry.h, ferry_object_ref()).  The worker loads
 * it once into its object cache and every later task reuses it; read-only
 * files are memory-mapped, so all worker processes on a host share one
 * copy through the page cache.  The object stays valid until the task
 * function returns.
 */
#ifndef FERRY_EXT_OBJECT
#define FERRY_EXT_OBJECT 70
#endif

/* Whether o is an object reference. */
static inline int
ferry_is_object(const msgpack_object *o)
{
	return o->type == MSGPACK_OBJECT_EXT &&
	    o->via.ext.type == FERRY_EXT_OBJECT;
}

/* Resolve an object reference to the file's bytes (loaders "mmap",
 * "mmap_prefault", "read").  Returns 0 with *data and *len set, or fails
 * the task with the reason (outside the allowed roots, missing, changed
 * size or hash, ...) and returns -1. */
int ferry_task_object_bytes(ferry_task *t, const msgpack_object *ref,
    const void **data, size_t *len);

/* Resolve an object reference to its loaded value, for any loader (for a
 * task library's own loader, what its load function built).  Returns 0,
 * or fails the task and returns -1. */
int ferry_task_object(ferry_task *t, const msgpack_object *ref,
    void **value);

/*
 * Holding an object beyond the task.  ferry_task_object_bytes() pins the
 * object until the task function returns; a task library whose values
 * outlive the task (an embedded interpreter's memoryview over the
 * mapping) takes a hold instead: the bytes stay valid and mapped until
 * ferry_object_release(), which any thread may call once, at any time
 * (a held object is never evicted).  Returns 0 with *obj, *data and *len
 * set, or fails the task with the reason and returns -1 (*obj NULL).
 */
typedef struct ferry_object ferry_object;
int ferry_task_object_hold(ferry_task *t, const msgpack_object *ref,
    ferry_object **obj, const void **data, size_t *len);

/* Release a hold (NULL is fine). */
void ferry_object_release(ferry_object *obj);

/*
 * A loader builds a value from a file once; every later task that names
 * the same file (unchanged) with the same loader reuses it.  load() gets
 * the canonical path, a read-only descriptor and the size; it sets *value
 * and *bytes (what the value costs against the cache budget) and returns
 * 0, or writes a message into err and returns -1.  unload() frees a value
 * the cache evicts.  Both may run on any worker thread.
 */
typedef int (*ferry_loader_fn)(const char *path, int fd, uint64_t size,
    void **value, size_t *bytes, char *err, size_t errlen);
typedef void (*ferry_unloader_fn)(void *value, size_t bytes);

/* Register a loader under name (1-63 bytes).  Returns 0 or -1. */
int ferry_register_loader(ferry_registry *reg, const char *name,
    ferry_loader_fn load, ferry_unloader_fn unload);

/* Define the library's entry point: FERRY_LIBRARY_INIT(reg) { ... }. */
#define FERRY_LIBRARY_INIT(reg)                                             \
	int ferry_library_abi(void);                                        \
	int ferry_library_abi(void) { return FERRY_TASK_ABI; }              \
	int ferry_library_init(ferry_registry *reg);                        \
	int ferry_library_init(ferry_registry *reg)

#ifdef __cplusplus
}
#endif

#endif
