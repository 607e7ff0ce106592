/*
 * objcache.h - a worker process's object cache.
 *
 * Tasks name heavy inputs by path (an object reference); the worker loads
 * each one once and keeps it.  An entry is keyed by its loader and the
 * file's identity: canonical path, device, inode, size and modification
 * time (and the expected SHA-256 when the reference carries one), so a
 * file that changed on disk is loaded again, never served stale.  Paths
 * resolve only inside the allowed roots, after ".." and symlinks are
 * resolved, and the file is then opened from a descriptor of its root
 * without following any symlink (safepath.h): a path changed between the
 * check and the open cannot lead outside the root.  The cache has a byte
 * budget and evicts least-recently-used entries that no running task
 * holds.
 *
 * Thread-safe: executor threads acquire and release entries concurrently;
 * concurrent acquirers of the same object wait for a single load.
 */
#ifndef FERRY_OBJCACHE_H
#define FERRY_OBJCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "objref.h" /* struct obj_ref */

#define OBJ_MAX_ROOTS 16
#define OBJ_LOADER_NAME_MAX 63

struct objcache;
struct obj_entry;

/*
 * A loader turns an open file into a cached value.  load() gets the
 * canonical path, a read-only descriptor and the file's size; it returns
 * the value in *value and the bytes it holds in *bytes, or fails with a
 * message in err.  release() frees a value.  For the built-in loaders the
 * value is the bytes themselves (see objcache_data).
 */
struct obj_loader {
	char name[OBJ_LOADER_NAME_MAX + 1];
	int (*load)(void *arg, const char *path, int fd, uint64_t size,
	    void **value, size_t *bytes, char *err, size_t errlen);
	void (*release)(void *arg, void *value, size_t bytes);
	void *arg;
	int   is_bytes; /* value points at `bytes` bytes of file content */
};

/* Counters (for `ferry status`). */
struct objcache_stats {
	uint64_t objects;   /* entries held now */
	uint64_t bytes;     /* bytes they hold */
	uint64_t loads;     /* successful loads */
	uint64_t hits;      /* acquires served from the cache */
	uint64_t evictions; /* entries evicted for the budget or staleness */
	uint64_t failures;  /* acquires that failed */
};

/* Called (under no cache lock) when an entry is loaded or dropped, with
 * the locality key "LOADER:PATH" (PATH as references gave it) of every
 * reference that resolved to it. */
typedef void (*objcache_listener)(void *arg, int loaded, const char *key);

/*
 * Create a cache with a byte budget (0: unlimited) and allowed roots
 * (directories; each is resolved with realpath now and held open, O_PATH,
 * until objcache_free, and a root that does not exist is an error).
 * n_roots 0 refuses every path.  Registers the
 * built-in loaders "mmap" (read-only shared mapping), "mmap_prefault"
 * (the same, with the pages faulted in at load) and "read" (a private
 * copy).  Returns 0, or -1 with a message in err.
 */
int objcache_new(struct objcache **out, size_t budget,
    const char *const *roots, size_t n_roots, char *err, size_t errlen);

/* Free the cache and every entry (none may be held). Accepts NULL. */
void objcache_free(struct objcache *c);

/* Register a loader (the name must be new).  Returns 0 or -1. */
int objcache_add_loader(struct objcache *c, const struct obj_loader *l);

/* Set the load/evict listener (NULL to remove). */
void objcache_set_listener(struct objcache *c, objcache_listener fn,
    void *arg);

/*
 * Resolve ref and return its entry, pinned until objcache_release().
 * Loads it if needed (one load at a time per object; others wait).
 * Returns 0, or -1 with a message naming the path and the cause: outside
 * the allowed roots, changed into a symlink while being opened (named;
 * after 3 tries), missing, unreadable, a directory or not a regular
 * file, unknown loader, size or hash mismatch, the loader's own error.
 */
int objcache_acquire(struct objcache *c, const struct obj_ref *ref,
    struct obj_entry **out, char *err, size_t errlen);

/* The entry's bytes (for byte loaders) or NULL; *len gets the size. */
const void *objcache_data(const struct obj_entry *e, size_t *len);

/* The entry's loaded value (any loader). */
void *objcache_value(const struct obj_entry *e);

/* Unpin an entry. */
void objcache_release(struct objcache *c, struct obj_entry *e);

/* Drop an entry as soon as nobody holds it (its file went bad under us,
 * e.g. truncated while mapped).  Safe on a held entry. */
void objcache_invalidate(struct objcache *c, struct obj_entry *e);

/* The entry whose mapping contains addr, or NULL (for a SIGBUS report);
 * async-signal-safe enough for use in a fault handler: no locks, reads a
 * table that is only appended to under the lock. */
const char *objcache_path_of_addr(struct objcache *c, const void *addr);

/* Current counters. */
void objcache_stats(struct objcache *c, struct objcache_stats *st);

#endif
