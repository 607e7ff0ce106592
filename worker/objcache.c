/*
 * objcache.c - the worker's object cache (see objcache.h).
 *
 * Entries live in one map keyed by a hash of (loader, canonical path).
 * Each map slot holds a chain of the entries with that key: the versions
 * of one file (an old one still held while its replacement loads), the
 * same file with and without an expected hash, and the rare hash
 * collision.  Lookups compare the full identity (loader, canonical path,
 * device, inode, size, mtime, expected hash), so one walk of one short
 * chain finds the entry, and on a miss finds the older versions of the
 * file that the new one makes stale.
 *
 * Locking: one mutex guards everything except the readers of the address
 * table.  Loads run without it: the entry sits in the map as LOADING and
 * other acquirers of the same identity wait on `cond`.  Values are
 * released (munmap, a loader's release) and the listener is called
 * without it too: functions that drop entries collect them on a local
 * list and finish them after unlocking, and listener events go through a
 * queue that one thread at a time drains, so the listener sees loads and
 * drops in the order they happened and may call back into the cache.
 *
 * Locality keys ("LOADER:PATH") are counted across entries: a key is
 * announced when the first loaded entry lists it and withdrawn when the
 * last loaded entry listing it goes.  So an old version that was held
 * while its replacement loaded does not, when it is finally dropped,
 * withdraw the key the replacement still serves.
 *
 * LRU: only loaded, unpinned entries are candidates for eviction; they
 * sit on the idle list, most recently released first.  An acquire takes
 * an entry off the list and its release puts it back at the front, so
 * eviction order is least recently used, in O(1).
 */
#include "objcache.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/sha256.h>
#include <mbedtls/version.h>

#include "safepath.h"
#include "util.h"

#define OBJ_KEYS_MAX 8 /* locality keys kept per entry */
#define OBJ_ADDR_SLOTS 4096 /* mappings objcache_path_of_addr knows */
#define OBJ_HASH_CHUNK 65536 /* read size when hashing through the fd */
#define OBJ_SHOW_MAX 1024 /* longest path quoted in a message */
#define OBJ_CAUSE_MAX 512 /* a load failure's cause */
#define OBJ_KEY_MAX (OBJ_LOADER_NAME_MAX + 1 + PATH_MAX)
#define OBJ_OPEN_TRIES 3 /* resolve-and-open attempts on a changing path */

/* The address table is read from signal handlers: its words must be
 * lock-free atomics. */
_Static_assert(ATOMIC_LONG_LOCK_FREE == 2, "unsigned long atomics lock");
_Static_assert(sizeof(unsigned long) >= sizeof(uintptr_t),
    "an address does not fit in an unsigned long");

enum obj_state {
	OBJ_LOADING,
	OBJ_READY,
	OBJ_FAILED,
};

/* What makes two acquires the same object. */
struct obj_ident {
	const struct obj_loader *loader; /* owned by the cache; unique name */
	char                    *path; /* canonical; owned by the entry */
	dev_t                    dev;
	ino_t                    ino;
	uint64_t                 size;
	int64_t                  mtime_sec;
	long                     mtime_nsec;
	bool                     has_sha;
	uint8_t                  sha[32];
};

/* A locality key, shared by the entries that list it. */
struct obj_key {
	struct obj_key *next; /* chain in the key map */
	uint64_t        hash;
	unsigned        refs; /* entries listing it */
	unsigned        holders; /* loaded entries listing it */
	char            str[]; /* "LOADER:PATH" */
};

struct obj_entry {
	struct obj_entry *hnext; /* chain in the entry map */
	struct obj_entry *prev; /* idle list */
	struct obj_entry *next; /* idle list, or a list of dead entries */
	uint64_t          hkey;
	struct obj_ident  id;
	enum obj_state    state;
	bool              stale; /* drop when unpinned; never served again */
	bool              idle; /* on the idle list */
	unsigned          refs; /* pins */
	void             *value;
	size_t            bytes;
	char             *err; /* OBJ_FAILED: the cause, for waiters */
	int               slot; /* address table slot or -1 */
	size_t            nkeys;
	struct obj_key   *keys[OBJ_KEYS_MAX];
};

/* A listener call waiting to be made. */
struct obj_event {
	struct obj_event *next;
	int               loaded;
	char              key[];
};

/* One live mapping, for objcache_path_of_addr.  Written under the lock
 * as a seqlock (seq is odd while a writer is inside), read without. */
struct obj_slot {
	atomic_ulong seq;
	atomic_ulong start; /* 0: empty */
	atomic_ulong end;
	atomic_ulong path; /* const char * */
};

struct objcache {
	pthread_mutex_t       mu;
	pthread_cond_t        cond; /* a load finished */
	size_t                budget;
	char                 *roots[OBJ_MAX_ROOTS]; /* canonical */
	int                   root_fd[OBJ_MAX_ROOTS]; /* O_PATH, or -1 */
	dev_t                 root_dev[OBJ_MAX_ROOTS]; /* root_fd's identity */
	ino_t                 root_ino[OBJ_MAX_ROOTS];
	size_t                n_roots;
	struct obj_loader   **loaders;
	size_t                n_loaders;
	size_t                cap_loaders;
	struct idmap          entries; /* chain_key -> chain of entries */
	struct idmap          keys; /* hash of key -> chain of obj_key */
	struct obj_entry     *idle_head; /* most recently used */
	struct obj_entry     *idle_tail; /* next to evict */
	struct objcache_stats st;
	objcache_listener     listener;
	void                 *listener_arg;
	struct obj_event     *ev_head;
	struct obj_event     *ev_tail;
	bool                  draining;
	int                   free_slots[OBJ_ADDR_SLOTS];
	size_t                n_free_slots;
	atomic_ulong          slots_hw; /* slots below this may be in use */
	struct obj_slot       slots[OBJ_ADDR_SLOTS];
};

/* The value of every empty byte object. */
static char obj_empty[1];


/* How many bytes of a path to quote in a message. */
static int
show_len(size_t n)
{
	return n > OBJ_SHOW_MAX ? OBJ_SHOW_MAX : (int)n;
}

/* errno as text, thread-safe. */
static const char *
errstr(int e, char *buf, size_t len)
{
	return strerror_r(e, buf, len);
}

/* ------------------------------------------------------------- SHA-256 */

/* SHA-256 of n bytes at p into out.  Returns 0 or an mbedTLS error. */
static int
sha256_buf(const void *p, size_t n, uint8_t out[32])
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
	return mbedtls_sha256(p, n, out, 0);
#else
	return mbedtls_sha256_ret(p, n, out, 0);
#endif
}

/* SHA-256 of the first size bytes of fd, read with pread (the file
 * offset stays 0).  Returns 0, or -1 with a cause in err. */
static int
sha256_fd(int fd, uint64_t size, uint8_t out[32], char *err, size_t errlen)
{
	mbedtls_sha256_context ctx;
	uint8_t               *buf;
	uint64_t               off = 0;
	char                   eb[128];
	int                    rv = -1;

	if ((buf = malloc(OBJ_HASH_CHUNK)) == NULL) {
		util_errf(err, errlen, "hashing: out of memory");
		return -1;
	}
	mbedtls_sha256_init(&ctx);
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
	if (mbedtls_sha256_starts(&ctx, 0) != 0)
#else
	if (mbedtls_sha256_starts_ret(&ctx, 0) != 0)
#endif
		goto hash_fail;
	while (off < size) {
		size_t  want = size - off > OBJ_HASH_CHUNK
		     ? OBJ_HASH_CHUNK
		     : (size_t)(size - off);
		ssize_t n    = pread(fd, buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			util_errf(err, errlen,
			    "reading to hash at offset %llu: %s",
			    (unsigned long long)off,
			    errstr(errno, eb, sizeof eb));
			goto out;
		}
		if (n == 0) {
			util_errf(err, errlen,
			    "file shrank to %llu bytes while being hashed "
			    "(expected %llu)",
			    (unsigned long long)off, (unsigned long long)size);
			goto out;
		}
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
		if (mbedtls_sha256_update(&ctx, buf, (size_t)n) != 0)
#else
		if (mbedtls_sha256_update_ret(&ctx, buf, (size_t)n) != 0)
#endif
			goto hash_fail;
		off += (uint64_t)n;
	}
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
	if (mbedtls_sha256_finish(&ctx, out) != 0)
#else
	if (mbedtls_sha256_finish_ret(&ctx, out) != 0)
#endif
		goto hash_fail;
	rv = 0;
	goto out;
hash_fail:
	util_errf(err, errlen, "SHA-256 computation failed");
out:
	mbedtls_sha256_free(&ctx);
	free(buf);
	return rv;
}

/* 32 bytes as 64 lowercase hex digits. */
static void
hex32(const uint8_t h[32], char out[65])
{
	static const char d[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		out[2 * i]     = d[h[i] >> 4];
		out[2 * i + 1] = d[h[i] & 15];
	}
	out[64] = '\0';
}

/* ---------------------------------------------------- built-in loaders */

/* Map size bytes of fd read-only and shared, with extra mmap flags. */
static int
map_file(int fd, uint64_t size, int flags, void **value, size_t *bytes,
    char *err, size_t errlen)
{
	char  eb[128];
	void *p;

	if (size == 0) {
		*value = obj_empty;
		*bytes = 0;
		return 0;
	}
	if (size > SIZE_MAX) {
		util_errf(err, errlen, "%llu bytes do not fit in memory",
		    (unsigned long long)size);
		return -1;
	}
	p = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED | flags, fd, 0);
	if (p == MAP_FAILED) {
		util_errf(err, errlen, "mmap of %llu bytes: %s",
		    (unsigned long long)size, errstr(errno, eb, sizeof eb));
		return -1;
	}
	*value = p;
	*bytes = (size_t)size;
	return 0;
}

/* Loader "mmap": a read-only shared mapping. */
static int
load_mmap(void *arg, const char *path, int fd, uint64_t size, void **value,
    size_t *bytes, char *err, size_t errlen)
{
	return map_file(fd, size, 0, value, bytes, err, errlen);
}

/* Loader "mmap_prefault": the same, with the pages read in now
 * (MAP_POPULATE: read-ahead plus page tables; unlike touching each page
 * it cannot raise SIGBUS here if the file shrinks meanwhile). */
static int
load_mmap_prefault(void *arg, const char *path, int fd, uint64_t size,
    void **value, size_t *bytes, char *err, size_t errlen)
{
	return map_file(fd, size, MAP_POPULATE, value, bytes, err, errlen);
}

/* Unmap a value of the mmap loaders. */
static void
release_mmap(void *arg, void *value, size_t bytes)
{
	if (bytes != 0)
		munmap(value, bytes);
}

/* Loader "read": a private heap copy. */
static int
load_read(void *arg, const char *path, int fd, uint64_t size, void **value,
    size_t *bytes, char *err, size_t errlen)
{
	char   eb[128];
	char  *buf;
	size_t off = 0;

	if (size == 0) {
		*value = obj_empty;
		*bytes = 0;
		return 0;
	}
	if (size > SIZE_MAX || (buf = malloc((size_t)size)) == NULL) {
		util_errf(err, errlen, "no memory for %llu bytes",
		    (unsigned long long)size);
		return -1;
	}
	while (off < size) {
		size_t  want = (size_t)size - off;
		ssize_t n;
		if (want > (size_t)1 << 30)
			want = (size_t)1 << 30;
		n = pread(fd, buf + off, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			util_errf(err, errlen, "read at offset %zu: %s", off,
			    errstr(errno, eb, sizeof eb));
			free(buf);
			return -1;
		}
		if (n == 0) {
			util_errf(err, errlen,
			    "file shrank to %zu bytes while being read "
			    "(expected %llu)",
			    off, (unsigned long long)size);
			free(buf);
			return -1;
		}
		off += (size_t)n;
	}
	*value = buf;
	*bytes = (size_t)size;
	return 0;
}

/* Free a value of the read loader. */
static void
release_read(void *arg, void *value, size_t bytes)
{
	if (bytes != 0)
		free(value);
}

static const struct obj_loader builtin_loaders[] = {
	{ "mmap", load_mmap, release_mmap, NULL, 1 },
	{ "mmap_prefault", load_mmap_prefault, release_mmap, NULL, 1 },
	{ "read", load_read, release_read, NULL, 1 },
};

/* The loader called name (len bytes), or NULL.  Under the lock. */
static const struct obj_loader *
loader_find(struct objcache *c, const char *name, size_t len)
{
	for (size_t i = 0; i < c->n_loaders; i++) {
		const struct obj_loader *l = c->loaders[i];
		if (strlen(l->name) == len && memcmp(l->name, name, len) == 0)
			return l;
	}
	return NULL;
}

/* "mmap, mmap_prefault, read, ..." into buf.  Under the lock. */
static void
loaders_list(struct objcache *c, char *buf, size_t len)
{
	size_t at = 0;
	buf[0]    = '\0';
	for (size_t i = 0; i < c->n_loaders && at < len; i++) {
		int n = snprintf(buf + at, len - at, "%s%s", i ? ", " : "",
		    c->loaders[i]->name);
		if (n < 0)
			break;
		at += (size_t)n;
	}
}

/* ------------------------------------------------------ chains, lists */

/* The entry map key of (loader, canonical path); never 0. */
static uint64_t
chain_key(const struct obj_loader *l, const char *path)
{
	uint64_t h = util_hash_bytes(path, strlen(path));
	h ^= util_hash_bytes(l->name, strlen(l->name)) * 0x9e3779b97f4a7c15ULL;
	return h ? h : 1;
}

/* The same file content (as the file system tells it). */
static bool
ident_same_file(const struct obj_ident *a, const struct obj_ident *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size
	    && a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec;
}

/* The same object: loader, path, file and expected hash. */
static bool
ident_equal(const struct obj_ident *a, const struct obj_ident *b)
{
	return a->loader == b->loader && ident_same_file(a, b)
	    && a->has_sha == b->has_sha
	    && (!a->has_sha || memcmp(a->sha, b->sha, 32) == 0)
	    && strcmp(a->path, b->path) == 0;
}

/* The live (not stale) entry with identity id, or NULL. */
static struct obj_entry *
chain_find(struct objcache *c, const struct obj_ident *id, uint64_t hkey)
{
	struct obj_entry *e = idmap_get(&c->entries, hkey);
	for (; e != NULL; e = e->hnext)
		if (!e->stale && ident_equal(&e->id, id))
			return e;
	return NULL;
}

/* Add e to its chain.  Returns 0 or -1 (no memory). */
static int
chain_insert(struct objcache *c, struct obj_entry *e)
{
	struct obj_entry *head = idmap_get(&c->entries, e->hkey);
	if (head != NULL) {
		e->hnext    = head->hnext;
		head->hnext = e;
		return 0;
	}
	e->hnext = NULL;
	return idmap_put(&c->entries, e->hkey, e);
}

/* Take e out of its chain.  (Replacing a chain head is a delete and a
 * put; the put cannot fail, as the delete made room.) */
static void
chain_remove(struct objcache *c, struct obj_entry *e)
{
	struct obj_entry *p = idmap_get(&c->entries, e->hkey);
	if (p == e) {
		idmap_del(&c->entries, e->hkey);
		if (e->hnext != NULL)
			(void)idmap_put(&c->entries, e->hkey, e->hnext);
	} else {
		while (p != NULL && p->hnext != e)
			p = p->hnext;
		if (p != NULL)
			p->hnext = e->hnext;
	}
	e->hnext = NULL;
}

/* Take e off the idle list, if it is there. */
static void
idle_remove(struct objcache *c, struct obj_entry *e)
{
	if (!e->idle)
		return;
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		c->idle_head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		c->idle_tail = e->prev;
	e->prev = e->next = NULL;
	e->idle           = false;
}

/* Put e at the front (most recently used) of the idle list. */
static void
idle_push_front(struct objcache *c, struct obj_entry *e)
{
	e->prev = NULL;
	e->next = c->idle_head;
	if (c->idle_head != NULL)
		c->idle_head->prev = e;
	else
		c->idle_tail = e;
	c->idle_head = e;
	e->idle      = true;
}

/* ------------------------------------------------------ listener, keys */

/* Queue a listener call (made by events_drain).  Under the lock. */
static void
event_push(struct objcache *c, int loaded, const char *key)
{
	size_t            n = strlen(key);
	struct obj_event *ev;
	if (c->listener == NULL || (ev = malloc(sizeof(*ev) + n + 1)) == NULL)
		return;
	ev->next   = NULL;
	ev->loaded = loaded;
	memcpy(ev->key, key, n + 1);
	if (c->ev_tail != NULL)
		c->ev_tail->next = ev;
	else
		c->ev_head = ev;
	c->ev_tail = ev;
}

/* Make the queued listener calls, in order, without the lock.  One
 * thread drains at a time; others leave their events to it. */
static void
events_drain(struct objcache *c)
{
	pthread_mutex_lock(&c->mu);
	if (c->draining) {
		pthread_mutex_unlock(&c->mu);
		return;
	}
	c->draining = true;
	while (c->ev_head != NULL) {
		struct obj_event *ev  = c->ev_head;
		objcache_listener fn  = c->listener;
		void             *arg = c->listener_arg;
		c->ev_head            = ev->next;
		if (c->ev_head == NULL)
			c->ev_tail = NULL;
		pthread_mutex_unlock(&c->mu);
		if (fn != NULL)
			fn(arg, ev->loaded, ev->key);
		free(ev);
		pthread_mutex_lock(&c->mu);
	}
	c->draining = false;
	pthread_mutex_unlock(&c->mu);
}

/* A loaded entry lists k: announce k if it is the first. */
static void
key_hold(struct objcache *c, struct obj_key *k)
{
	if (k->holders++ == 0)
		event_push(c, 1, k->str);
}

/* A loaded entry listing k goes: withdraw k if it was the last. */
static void
key_unhold(struct objcache *c, struct obj_key *k)
{
	if (--k->holders == 0)
		event_push(c, 0, k->str);
}

/* An entry stops listing k: free k if no entry lists it. */
static void
key_unref(struct objcache *c, struct obj_key *k)
{
	struct obj_key *p;
	if (--k->refs != 0)
		return;
	p = idmap_get(&c->keys, k->hash);
	if (p == k) {
		idmap_del(&c->keys, k->hash);
		if (k->next != NULL)
			(void)idmap_put(&c->keys, k->hash, k->next);
	} else {
		while (p != NULL && p->next != k)
			p = p->next;
		if (p != NULL)
			p->next = k->next;
	}
	free(k);
}

/* The key record for str (len bytes), created if new; NULL if out of
 * memory.  Its refs are not changed. */
static struct obj_key *
key_get(struct objcache *c, const char *str, size_t len)
{
	uint64_t        h = util_hash_bytes(str, len);
	struct obj_key *head, *k;

	h    = h ? h : 1;
	head = idmap_get(&c->keys, h);
	for (k = head; k != NULL; k = k->next)
		if (strlen(k->str) == len && memcmp(k->str, str, len) == 0)
			return k;
	if ((k = malloc(sizeof(*k) + len + 1)) == NULL)
		return NULL;
	k->hash    = h;
	k->refs    = 0;
	k->holders = 0;
	memcpy(k->str, str, len);
	k->str[len] = '\0';
	if (head != NULL) {
		k->next    = head->next;
		head->next = k;
	} else {
		k->next = NULL;
		if (idmap_put(&c->keys, h, k) != 0) {
			free(k);
			return NULL;
		}
	}
	return k;
}

/* List the key "LOADER:PATH" (path as the reference gave it) on e, unless
 * it is there already or e has OBJ_KEYS_MAX keys.  Under the lock. */
static void
entry_add_key(
    struct objcache *c, struct obj_entry *e, const char *path, size_t plen)
{
	char            buf[OBJ_KEY_MAX + 1];
	size_t          ln = strlen(e->id.loader->name), len = ln + 1 + plen;
	struct obj_key *k;

	if (len > OBJ_KEY_MAX)
		return;
	memcpy(buf, e->id.loader->name, ln);
	buf[ln] = ':';
	memcpy(buf + ln + 1, path, plen);
	buf[len] = '\0';
	for (size_t i = 0; i < e->nkeys; i++)
		if (strcmp(e->keys[i]->str, buf) == 0)
			return;
	if (e->nkeys == OBJ_KEYS_MAX || (k = key_get(c, buf, len)) == NULL)
		return;
	k->refs++;
	e->keys[e->nkeys++] = k;
	if (e->state == OBJ_READY)
		key_hold(c, k);
}

/* ------------------------------------------------------- address table */

/* Write a slot so that a lock-free reader sees all or nothing of it. */
static void
slot_write(struct obj_slot *s, unsigned long start, unsigned long end,
    unsigned long path)
{
	unsigned long q = atomic_load_explicit(&s->seq, memory_order_relaxed);
	atomic_store_explicit(&s->seq, q + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&s->start, start, memory_order_relaxed);
	atomic_store_explicit(&s->end, end, memory_order_relaxed);
	atomic_store_explicit(&s->path, path, memory_order_relaxed);
	atomic_store_explicit(&s->seq, q + 2, memory_order_release);
}

/* Record a loaded byte entry's range (if there is a free slot). */
static void
slot_put(struct objcache *c, struct obj_entry *e)
{
	int i;
	e->slot = -1;
	if (!e->id.loader->is_bytes || e->bytes == 0 || c->n_free_slots == 0)
		return;
	i = c->free_slots[--c->n_free_slots];
	slot_write(&c->slots[i], (unsigned long)(uintptr_t)e->value,
	    (unsigned long)(uintptr_t)e->value + e->bytes,
	    (unsigned long)(uintptr_t)e->id.path);
	if ((unsigned long)i + 1
	    > atomic_load_explicit(&c->slots_hw, memory_order_relaxed))
		atomic_store_explicit(
		    &c->slots_hw, (unsigned long)i + 1, memory_order_release);
	e->slot = i;
}

/* Clear e's slot (before its mapping goes). */
static void
slot_clear(struct objcache *c, struct obj_entry *e)
{
	if (e->slot < 0)
		return;
	slot_write(&c->slots[e->slot], 0, 0, 0);
	c->free_slots[c->n_free_slots++] = e->slot;
	e->slot                          = -1;
}

/* ------------------------------------------------------------- entries */

/* Stop listing e's keys (withdrawing them if e was loaded). */
static void
entry_drop_keys(struct objcache *c, struct obj_entry *e)
{
	for (size_t i = 0; i < e->nkeys; i++) {
		if (e->state == OBJ_READY)
			key_unhold(c, e->keys[i]);
		key_unref(c, e->keys[i]);
	}
	e->nkeys = 0;
}

/* Drop a loaded, unpinned entry: out of the map and the lists, its keys
 * withdrawn, onto *dead to be released without the lock. */
static void
entry_drop(struct objcache *c, struct obj_entry *e, struct obj_entry **dead)
{
	chain_remove(c, e);
	idle_remove(c, e);
	slot_clear(c, e);
	c->st.objects--;
	c->st.bytes -= e->bytes;
	c->st.evictions++;
	entry_drop_keys(c, e);
	e->next = *dead;
	*dead   = e;
}

/* Discard a failed entry nobody waits on any more. */
static void
entry_discard(struct objcache *c, struct obj_entry *e, struct obj_entry **dead)
{
	entry_drop_keys(c, e);
	e->next = *dead;
	*dead   = e;
}

/* Release the values of dropped entries and free them (no lock held). */
static void
dead_finish(struct obj_entry *dead)
{
	while (dead != NULL) {
		struct obj_entry        *e = dead;
		const struct obj_loader *l = e->id.loader;
		dead                       = e->next;
		if (e->state == OBJ_READY && l->release != NULL)
			l->release(l->arg, e->value, e->bytes);
		free(e->id.path);
		free(e->err);
		free(e);
	}
}

/* Evict idle entries, least recently used first, down to the budget. */
static void
trim(struct objcache *c, struct obj_entry **dead)
{
	while (
	    c->budget != 0 && c->st.bytes > c->budget && c->idle_tail != NULL)
		entry_drop(c, c->idle_tail, dead);
}

/* The file behind (loader, path) is now id: mark the entries of other
 * versions stale, dropping those nobody holds. */
static void
mark_stale_versions(struct objcache *c, const struct obj_ident *id,
    uint64_t hkey, struct obj_entry **dead)
{
	struct obj_entry *e = idmap_get(&c->entries, hkey), *next;
	for (; e != NULL; e = next) {
		next = e->hnext;
		if (e->stale || e->id.loader != id->loader
		    || strcmp(e->id.path, id->path) != 0
		    || ident_same_file(&e->id, id))
			continue;
		e->stale = true;
		if (e->state == OBJ_READY && e->refs == 0)
			entry_drop(c, e, dead);
	}
}

/* ----------------------------------------------------- resolving files */

/* "/data, /scratch" into buf. */
static void
roots_list(const struct objcache *c, char *buf, size_t len)
{
	size_t at = 0;
	if (c->n_roots == 0) {
		snprintf(buf, len, "none are configured");
		return;
	}
	buf[0] = '\0';
	for (size_t i = 0; i < c->n_roots && at < len; i++) {
		int n = snprintf(
		    buf + at, len - at, "%s%s", i ? ", " : "", c->roots[i]);
		if (n < 0)
			break;
		at += (size_t)n;
	}
}

/* Resolve ref's path (realpath: ".." and symbolic links) and check that
 * it lies inside a root.  This only chooses what to open: open_in_root
 * then opens it without following anything, so a change made after this
 * check cannot lead outside the root.  Returns 0 with the canonical path
 * (malloc'd) in *canon and the root's index in *root, or -1. */
static int
resolve(const struct objcache *c, const struct obj_ref *ref, char **canon,
    size_t *root, char *err, size_t errlen)
{
	char  path[PATH_MAX];
	char  roots[512];
	char  eb[128];
	char *r;
	int   n = show_len(ref->path_len);

	if (ref->path == NULL || ref->path_len == 0) {
		util_errf(err, errlen, "object reference with an empty path");
		return -1;
	}
	if (ref->path_len >= sizeof(path)) {
		util_errf(err, errlen,
		    "object '%.64s...': path is too long (%zu bytes, "
		    "limit %d)",
		    ref->path, ref->path_len, PATH_MAX - 1);
		return -1;
	}
	if (memchr(ref->path, '\0', ref->path_len) != NULL) {
		util_errf(err, errlen, "object '%s': path contains a NUL byte",
		    ref->path);
		return -1;
	}
	if (ref->path[0] != '/') {
		util_errf(err, errlen,
		    "object '%.*s': not an absolute path (object paths "
		    "start with '/' and lie inside the allowed roots)",
		    n, ref->path);
		return -1;
	}
	memcpy(path, ref->path, ref->path_len);
	path[ref->path_len] = '\0';
	if ((r = realpath(path, NULL)) == NULL) {
		util_errf(err, errlen, "object '%.*s': %s", n, ref->path,
		    errstr(errno, eb, sizeof eb));
		return -1;
	}
	for (size_t i = 0; i < c->n_roots; i++) {
		if (safepath_under(r, c->roots[i])) {
			*canon = r;
			*root  = i;
			return 0;
		}
	}
	roots_list(c, roots, sizeof(roots));
	util_errf(err, errlen,
	    "object '%.*s' resolves to %s, outside the allowed roots (%s)", n,
	    ref->path, r, roots);
	free(r);
	return -1;
}

/* Open canon, which resolve() found inside root ri, from the root's
 * descriptor without following any symbolic link (safepath_open: the
 * kernel keeps the open inside the root), and check that it is a regular
 * file of the expected size.  Returns 0 with *fdp and *st, or -1 with a
 * message and *changed set when a component had become a symbolic link
 * since resolve() (worth resolving again). */
static int
open_in_root(struct objcache *c, size_t ri, const struct obj_ref *ref,
    const char *canon, int *fdp, struct stat *st, bool *changed, char *err,
    size_t errlen)
{
	const char *rel = canon + strlen(c->roots[ri]);
	char        cause[OBJ_CAUSE_MAX + PATH_MAX];
	struct stat rst;
	int         n = show_len(ref->path_len), fd;

	*changed = false;
	/* task code runs in this process: make sure the root's descriptor
	 * is still the root (not closed, or reused for another file) */
	if (fstat(c->root_fd[ri], &rst) != 0 || !S_ISDIR(rst.st_mode)
	    || rst.st_dev != c->root_dev[ri]
	    || rst.st_ino != c->root_ino[ri]) {
		util_errf(err, errlen,
		    "object '%.*s': the descriptor of object root %s was "
		    "closed or replaced in this worker process (by task "
		    "code?); restart the worker",
		    n, ref->path, c->roots[ri]);
		return -1;
	}
	while (*rel == '/')
		rel++;
	fd = safepath_open(
	    c->root_fd[ri], c->roots[ri], rel, st, cause, sizeof(cause));
	if (fd < 0 && errno == ELOOP) {
		*changed = true;
		util_errf(err, errlen,
		    "object '%.*s' changed while it was being opened: %s; "
		    "refused: objects are opened only through directories "
		    "inside their root (%s)",
		    n, ref->path, cause, c->roots[ri]);
		return -1;
	}
	if (fd < 0 && errno == EXDEV) {
		util_errf(err, errlen,
		    "object '%.*s': refused after opening: %s", n, ref->path,
		    cause);
		return -1;
	}
	if (fd < 0) {
		util_errf(
		    err, errlen, "object '%.*s': %s", n, ref->path, cause);
		return -1;
	}
	if (ref->size != 0 && (uint64_t)st->st_size != ref->size) {
		util_errf(err, errlen,
		    "object '%.*s': size is %llu bytes, the reference "
		    "expects %llu",
		    n, ref->path, (unsigned long long)st->st_size,
		    (unsigned long long)ref->size);
		close(fd);
		return -1;
	}
	*fdp = fd;
	return 0;
}

/* Run loader l on fd and check the expected hash: through the loaded
 * bytes for byte loaders, by reading the file first for others.  Returns
 * 0 with the value, or -1 with a cause (no path) in cause. */
static int
entry_load(const struct obj_loader *l, const char *canon, int fd,
    uint64_t size, const uint8_t *sha, void **value, size_t *bytes,
    char *cause, size_t clen)
{
	uint8_t got[32];
	char    lerr[OBJ_CAUSE_MAX - 64];
	char    hx[2][65];

	*value = NULL;
	*bytes = 0;
	if (sha != NULL && !l->is_bytes) {
		if (sha256_fd(fd, size, got, cause, clen) != 0)
			return -1;
		if (memcmp(got, sha, 32) != 0)
			goto mismatch;
	}
	lerr[0] = '\0';
	if (l->load(l->arg, canon, fd, size, value, bytes, lerr, sizeof(lerr))
	    != 0) {
		lerr[sizeof(lerr) - 1] = '\0';
		if (lerr[0] != '\0')
			util_errf(cause, clen, "loader '%s': %s", l->name, lerr);
		else
			util_errf(cause, clen, "loader '%s' failed", l->name);
		return -1;
	}
	if (sha != NULL && l->is_bytes) {
		int hrv = sha256_buf(*value, *bytes, got);
		if (hrv == 0 && memcmp(got, sha, 32) == 0)
			return 0;
		if (l->release != NULL)
			l->release(l->arg, *value, *bytes);
		*value = NULL;
		*bytes = 0;
		if (hrv == 0)
			goto mismatch;
		util_errf(cause, clen, "SHA-256 computation failed");
		return -1;
	}
	return 0;
mismatch:
	hex32(sha, hx[0]);
	hex32(got, hx[1]);
	util_errf(cause, clen, "SHA-256 mismatch (expected %s, file has %s)",
	    hx[0], hx[1]);
	return -1;
}

/* ------------------------------------------------------------- the API */

int
objcache_new(struct objcache **out, size_t budget, const char *const *roots,
    size_t n_roots, char *err, size_t errlen)
{
	struct objcache *c;
	char             eb[128];
	struct stat      st;
	int              fd;

	if (err != NULL && errlen != 0)
		err[0] = '\0';
	if (out == NULL || (n_roots != 0 && roots == NULL)) {
		util_errf(err, errlen, "objcache_new: invalid arguments");
		return -1;
	}
	*out = NULL;
	if (n_roots > OBJ_MAX_ROOTS) {
		util_errf(err, errlen, "too many object roots (%zu, limit %d)",
		    n_roots, OBJ_MAX_ROOTS);
		return -1;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		util_errf(err, errlen, "object cache: out of memory");
		return -1;
	}
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cond, NULL);
	idmap_init(&c->entries);
	idmap_init(&c->keys);
	c->budget = budget;
	for (int i = 0; i < OBJ_ADDR_SLOTS; i++)
		c->free_slots[i] = OBJ_ADDR_SLOTS - 1 - i;
	c->n_free_slots = OBJ_ADDR_SLOTS;
	for (size_t i = 0; i < n_roots; i++) {
		char *r;
		if (roots[i] == NULL || roots[i][0] == '\0') {
			util_errf(err, errlen, "object root %zu is empty", i + 1);
			goto fail;
		}
		if ((r = realpath(roots[i], NULL)) == NULL) {
			util_errf(err, errlen, "object root '%s': %s", roots[i],
			    errstr(errno, eb, sizeof eb));
			goto fail;
		}
		c->root_fd[c->n_roots] = -1;
		c->roots[c->n_roots++] = r;
		/* held for the cache's life: every object is opened from
		 * it, so a root path changed later cannot move the root */
		fd = open(r, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 && errno != ENOTDIR) {
			util_errf(err, errlen, "object root '%s': %s",
			    roots[i], errstr(errno, eb, sizeof eb));
			goto fail;
		}
		if (fd < 0 || fstat(fd, &st) != 0 || !S_ISDIR(st.st_mode)) {
			if (fd >= 0)
				close(fd);
			util_errf(err, errlen,
			    "object root '%s': not a directory", roots[i]);
			goto fail;
		}
		c->root_fd[c->n_roots - 1]  = fd;
		c->root_dev[c->n_roots - 1] = st.st_dev;
		c->root_ino[c->n_roots - 1] = st.st_ino;
	}
	for (size_t i = 0;
	     i < sizeof(builtin_loaders) / sizeof(builtin_loaders[0]); i++) {
		if (objcache_add_loader(c, &builtin_loaders[i]) != 0) {
			util_errf(err, errlen, "object cache: out of memory");
			goto fail;
		}
	}
	*out = c;
	return 0;
fail:
	objcache_free(c);
	return -1;
}

void
objcache_free(struct objcache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->entries.cap; i++) {
		struct obj_entry *e = c->entries.slots[i].key != 0
		    ? c->entries.slots[i].val
		    : NULL;
		while (e != NULL) {
			struct obj_entry *next = e->hnext;
			slot_clear(c, e);
			e->next = NULL;
			dead_finish(e);
			e = next;
		}
	}
	idmap_fini(&c->entries);
	for (size_t i = 0; i < c->keys.cap; i++) {
		struct obj_key *k
		    = c->keys.slots[i].key != 0 ? c->keys.slots[i].val : NULL;
		while (k != NULL) {
			struct obj_key *next = k->next;
			free(k);
			k = next;
		}
	}
	idmap_fini(&c->keys);
	while (c->ev_head != NULL) {
		struct obj_event *ev = c->ev_head;
		c->ev_head           = ev->next;
		free(ev);
	}
	for (size_t i = 0; i < c->n_loaders; i++)
		free(c->loaders[i]);
	free(c->loaders);
	for (size_t i = 0; i < c->n_roots; i++) {
		if (c->root_fd[i] >= 0)
			close(c->root_fd[i]);
		free(c->roots[i]);
	}
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

int
objcache_add_loader(struct objcache *c, const struct obj_loader *l)
{
	struct obj_loader *copy;
	size_t             n;
	int                rv = -1;

	if (c == NULL || l == NULL || l->load == NULL)
		return -1;
	n = strnlen(l->name, sizeof(l->name));
	if (n == 0 || n > OBJ_LOADER_NAME_MAX)
		return -1;
	/* the name goes into "LOADER:PATH" keys: no ':' or blanks */
	for (size_t i = 0; i < n; i++)
		if (l->name[i] == ':' || l->name[i] <= ' '
		    || l->name[i] == 0x7f)
			return -1;
	if ((copy = malloc(sizeof(*copy))) == NULL)
		return -1;
	*copy = *l;
	pthread_mutex_lock(&c->mu);
	if (loader_find(c, l->name, n) != NULL)
		goto out;
	if (util_grow(&c->loaders, &c->cap_loaders, c->n_loaders,
	        sizeof(*c->loaders), 8) != 0)
		goto out;
	c->loaders[c->n_loaders++] = copy;
	copy                       = NULL;
	rv                         = 0;
out:
	pthread_mutex_unlock(&c->mu);
	free(copy);
	return rv;
}

void
objcache_set_listener(struct objcache *c, objcache_listener fn, void *arg)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->listener     = fn;
	c->listener_arg = arg;
	pthread_mutex_unlock(&c->mu);
}

int
objcache_acquire(struct objcache *c, const struct obj_ref *ref,
    struct obj_entry **out, char *err, size_t errlen)
{
	const struct obj_loader *l;
	struct obj_entry        *e, *dead = NULL;
	struct obj_ident         id;
	struct stat              st;
	uint64_t                 hkey;
	char                    *canon = NULL;
	char                     cause[OBJ_CAUSE_MAX];
	char                     known[256];
	const char              *lname;
	size_t                   llen;
	void                    *value;
	size_t                   bytes;
	int                      fd = -1, rv, n;

	if (err != NULL && errlen != 0)
		err[0] = '\0';
	if (c == NULL || ref == NULL || out == NULL) {
		util_errf(err, errlen, "objcache_acquire: invalid arguments");
		return -1;
	}
	*out  = NULL;
	n     = show_len(ref->path_len);
	lname = ref->loader;
	llen  = ref->loader_len;
	if (lname == NULL || llen == 0) {
		lname = "mmap";
		llen  = 4;
	}

	pthread_mutex_lock(&c->mu);
	l = loader_find(c, lname, llen);
	if (l == NULL)
		loaders_list(c, known, sizeof(known));
	pthread_mutex_unlock(&c->mu);
	if (l == NULL) {
		util_errf(err, errlen,
		    "object '%.*s': unknown loader '%.*s' (known: %s)", n,
		    ref->path ? ref->path : "", show_len(llen), lname, known);
		goto fail;
	}
	/* a path that changed between resolving and opening is resolved
	 * again, a bounded number of times */
	for (int tries = 1;; tries++) {
		size_t ri;
		bool   changed;
		if (resolve(c, ref, &canon, &ri, err, errlen) != 0)
			goto fail;
		if (open_in_root(
		        c, ri, ref, canon, &fd, &st, &changed, err, errlen)
		    == 0)
			break;
		if (!changed || tries == OBJ_OPEN_TRIES)
			goto fail;
		free(canon);
		canon = NULL;
	}

	memset(&id, 0, sizeof(id));
	id.loader     = l;
	id.path       = canon;
	id.dev        = st.st_dev;
	id.ino        = st.st_ino;
	id.size       = (uint64_t)st.st_size;
	id.mtime_sec  = (int64_t)st.st_mtim.tv_sec;
	id.mtime_nsec = st.st_mtim.tv_nsec;
	if (ref->sha256 != NULL) {
		id.has_sha = true;
		memcpy(id.sha, ref->sha256, 32);
	}
	hkey = chain_key(l, canon);

	pthread_mutex_lock(&c->mu);
	if ((e = chain_find(c, &id, hkey)) != NULL) {
		/* a hit, or a load in progress to wait for */
		close(fd);
		free(canon);
		e->refs++;
		idle_remove(c, e);
		entry_add_key(c, e, ref->path, ref->path_len);
		while (e->state == OBJ_LOADING)
			pthread_cond_wait(&c->cond, &c->mu);
		if (e->state == OBJ_FAILED) {
			util_errf(err, errlen, "object '%.*s': %s", n, ref->path,
			    e->err ? e->err : "load failed");
			c->st.failures++;
			if (--e->refs == 0)
				entry_discard(c, e, &dead);
			pthread_mutex_unlock(&c->mu);
			dead_finish(dead);
			events_drain(c);
			return -1;
		}
		c->st.hits++;
		pthread_mutex_unlock(&c->mu);
		events_drain(c);
		*out = e;
		return 0;
	}

	/* a miss: this thread loads, others wait for it */
	mark_stale_versions(c, &id, hkey, &dead);
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		pthread_mutex_unlock(&c->mu);
		util_errf(
		    err, errlen, "object '%.*s': out of memory", n, ref->path);
		goto fail_dead;
	}
	e->id    = id;
	e->hkey  = hkey;
	e->state = OBJ_LOADING;
	e->refs  = 1;
	e->slot  = -1;
	if (chain_insert(c, e) != 0) {
		pthread_mutex_unlock(&c->mu);
		free(e);
		util_errf(
		    err, errlen, "object '%.*s': out of memory", n, ref->path);
		goto fail_dead;
	}
	canon = NULL; /* the entry's now */
	entry_add_key(c, e, ref->path, ref->path_len);
	pthread_mutex_unlock(&c->mu);
	dead_finish(dead);
	dead = NULL;
	events_drain(c);

	rv = entry_load(l, e->id.path, fd, e->id.size, ref->sha256, &value,
	    &bytes, cause, sizeof(cause));
	close(fd);

	pthread_mutex_lock(&c->mu);
	if (rv == 0) {
		e->value = value;
		e->bytes = bytes;
		e->state = OBJ_READY;
		c->st.loads++;
		c->st.objects++;
		c->st.bytes += bytes;
		slot_put(c, e);
		for (size_t i = 0; i < e->nkeys; i++)
			key_hold(c, e->keys[i]);
		trim(c, &dead);
	} else {
		util_errf(err, errlen, "object '%.*s': %s", n, ref->path, cause);
		e->err   = strdup(cause);
		e->state = OBJ_FAILED;
		chain_remove(c, e);
		c->st.failures++;
		if (--e->refs == 0)
			entry_discard(c, e, &dead);
	}
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->mu);
	dead_finish(dead);
	events_drain(c);
	if (rv != 0)
		return -1;
	*out = e;
	return 0;

fail_dead:
	dead_finish(dead);
	events_drain(c);
fail:
	if (fd >= 0)
		close(fd);
	free(canon);
	pthread_mutex_lock(&c->mu);
	c->st.failures++;
	pthread_mutex_unlock(&c->mu);
	return -1;
}

const void *
objcache_data(const struct obj_entry *e, size_t *len)
{
	if (e == NULL || !e->id.loader->is_bytes) {
		if (len != NULL)
			*len = 0;
		return NULL;
	}
	if (len != NULL)
		*len = e->bytes;
	return e->value;
}

void *
objcache_value(const struct obj_entry *e)
{
	return e != NULL ? e->value : NULL;
}

void
objcache_release(struct objcache *c, struct obj_entry *e)
{
	struct obj_entry *dead = NULL;

	if (c == NULL || e == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	if (e->refs > 0 && --e->refs == 0) {
		if (e->stale) {
			entry_drop(c, e, &dead);
		} else {
			idle_push_front(c, e);
			trim(c, &dead);
		}
	}
	pthread_mutex_unlock(&c->mu);
	dead_finish(dead);
	events_drain(c);
}

void
objcache_invalidate(struct objcache *c, struct obj_entry *e)
{
	struct obj_entry *dead = NULL;

	if (c == NULL || e == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	if (!e->stale) {
		e->stale = true;
		if (e->state == OBJ_READY && e->refs == 0)
			entry_drop(c, e, &dead);
	}
	pthread_mutex_unlock(&c->mu);
	dead_finish(dead);
	events_drain(c);
}

const char *
objcache_path_of_addr(struct objcache *c, const void *addr)
{
	unsigned long a = (unsigned long)(uintptr_t)addr, hw;

	if (c == NULL)
		return NULL;
	hw = atomic_load_explicit(&c->slots_hw, memory_order_acquire);
	for (unsigned long i = 0; i < hw && i < OBJ_ADDR_SLOTS; i++) {
		struct obj_slot *s = &c->slots[i];
		unsigned long    q1, q2, start, end, path;
		q1 = atomic_load_explicit(&s->seq, memory_order_acquire);
		if (q1 & 1)
			continue;
		start = atomic_load_explicit(&s->start, memory_order_relaxed);
		end   = atomic_load_explicit(&s->end, memory_order_relaxed);
		path  = atomic_load_explicit(&s->path, memory_order_relaxed);
		atomic_thread_fence(memory_order_acquire);
		q2 = atomic_load_explicit(&s->seq, memory_order_relaxed);
		if (q1 != q2 || start == 0)
			continue;
		if (a >= start && a < end)
			return (const char *)(uintptr_t)path;
	}
	return NULL;
}

void
objcache_stats(struct objcache *c, struct objcache_stats *st)
{
	if (st == NULL)
		return;
	if (c == NULL) {
		memset(st, 0, sizeof(*st));
		return;
	}
	pthread_mutex_lock(&c->mu);
	*st = c->st;
	pthread_mutex_unlock(&c->mu);
}
