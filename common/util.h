/*
 * util.h - small shared utilities: clocks, an id map, a ring queue, a
 * timer heap, NNG socket setup.
 */
#ifndef FERRY_UTIL_H
#define FERRY_UTIL_H

#include <stdbool.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <nng/nng.h>

/* Monotonic clock in microseconds / milliseconds. */
uint64_t util_now_us(void);
uint64_t util_now_ms(void);

/* Translate an NNG error into a ferry_error. */
int util_nng_err(int nng_rv);

/* Format a message into err (errlen bytes, always NUL-terminated; nothing
 * if err is NULL or errlen 0).  Returns -1, for `return util_errf(...)`. */
int util_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copy at most len-1 bytes of src into dst, always NUL-terminated. */
void util_strlcpy(char *dst, const char *src, size_t len);

/* Write n bytes of src into dst (len bytes, always NUL-terminated) so a
 * person can read them: backslash and double quote escaped, NUL as \0,
 * other control and non-ASCII bytes as \xNN; what does not fit ends in
 * "...".  Returns dst, for use in a printf argument list. */
const char *util_escape(char *dst, size_t len, const void *src, size_t n);

/* FNV-1a hash of n bytes of s. */
uint64_t util_hash_bytes(const void *s, size_t n);

/* Make room for element number len in the growable array whose pointer
 * is at bufp (any T **), *cap elements of elem bytes: the capacity
 * doubles, starting at first.  Returns 0, or -1 without changing anything
 * when memory runs out. */
int util_grow(void *bufp, size_t *cap, size_t len, size_t elem,
    size_t first);

/* qsort's comparison of two uint64_t. */
int util_u64_cmp(const void *a, const void *b);

/* Sort v (n ids) and drop repeats; returns how many are left. */
size_t util_u64_sort_unique(uint64_t *v, size_t n);

/*
 * Run fn(arg) on a thread of its own and wait for it at most seconds.
 * Returns 0 when it finished, -1 when it did not in time (it goes on in
 * the background, so arg must stay valid) or no thread could be made (it
 * then ran here).  For NNG 1.5's close and fini, which have been seen to
 * wait for ever.
 */
int util_call_bounded(void (*fn)(void *), void *arg, int seconds);

/* Make directory path and its missing parents (mode 0700).  0, or -1 with
 * errno set. */
int util_mkdir_p(const char *path);

/* Start a thread running fn(arg) that takes no signals (they stay with
 * the threads that wait for them).  0, or an errno value. */
int util_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/*
 * For a poll loop stopped by SIGINT or SIGTERM: block the two in this
 * thread and every thread it starts from now on (NNG's included), ignore
 * SIGPIPE, and open a signalfd that reads them into *signal_fd and an
 * eventfd (non-blocking) that wakes the loop into *event_fd, both
 * close-on-exec.  Returns 0, or -1 with errno (what was opened is in
 * *signal_fd, the caller closes it).
 */
int util_signal_fds(int *signal_fd, int *event_fd);

/* A random 64-bit value from the system (getrandom), never 0. */
uint64_t util_random64(void);

/*
 * Write this user's Ferry runtime directory into buf (len bytes): where
 * default sockets and cluster state live.  $FERRY_RUNTIME_DIR if set,
 * else $XDG_RUNTIME_DIR/ferry if XDG_RUNTIME_DIR is an absolute path,
 * else /tmp/ferry-UID (UID: the real user id).  Only computes the path
 * (nothing is created).  Returns 0, or -1 with errno EINVAL when
 * FERRY_RUNTIME_DIR is not an absolute path, ENAMETOOLONG when the path
 * does not fit (buf is then "").
 */
int util_runtime_dir(char *buf, size_t len);

/* What Ferry reads of a process from /proc/PID/stat (proc(5)). */
struct util_proc_stat {
	char     state; /* field 3: R, S, D, T, Z (zombie), X (dead), ... */
	pid_t    ppid;  /* field 4: the parent */
	pid_t    pgid;  /* field 5: the process group */
	uint64_t start; /* field 22: start time in clock ticks after boot; a
	                 * pid reused by another process has another one */
};

/* Read pid's /proc/PID/stat into *st (the command name may hold spaces
 * and parentheses: fields are counted after its last ')').  Returns 0, or
 * -1 (st unchanged) when there is no such process or it does not parse. */
int util_proc_stat(pid_t pid, struct util_proc_stat *st);

/* The number N of the "key:   N kB" line of /proc/PID/file ("status",
 * "smaps_rollup"), in KiB; -1 when the process, the file or the line is
 * not there. */
long long util_proc_kib(pid_t pid, const char *file, const char *key);

/* ---- u64 -> pointer map (open addressing, linear probing) ---- */

struct idmap_slot {
	uint64_t key; /* 0 means empty; keys must be non-zero */
	void    *val;
};

struct idmap {
	struct idmap_slot *slots;
	size_t             cap; /* power of two */
	size_t             count;
};

/* Initialise an empty map. */
void idmap_init(struct idmap *m);
/* Free the map's table (not the values). */
void idmap_fini(struct idmap *m);
/* Value for key, or NULL. */
void *idmap_get(const struct idmap *m, uint64_t key);
/* Insert or replace key -> val (key != 0).  Returns 0 or -1 (no memory;
 * replacing the value of a key that is there never fails). */
int idmap_put(struct idmap *m, uint64_t key, void *val);
/* Remove key; returns its value or NULL. */
void *idmap_del(struct idmap *m, uint64_t key);

/* Give memory back after a burst: rebuild m smaller when it is at most an
 * eighth full (freed entirely when empty).  Never fails visibly. */
void idmap_shrink(struct idmap *m);

/*
 * A walk over a map, start it as { 0, 0 }:
 *
 *	struct idmap_iter it = { 0, 0 };
 *	while (idmap_iter_next(&m, &it, &key, &val)) ...
 *
 * The entry just visited may be deleted during the walk (a deletion can
 * move a later entry into its slot: that slot is looked at again).  With
 * deletions, an entry that wrapped around the table's end may be seen
 * twice; none is missed.  Nothing may be inserted during a walk.  key and
 * val may be NULL.
 */
struct idmap_iter {
	size_t   pos;
	uint64_t key; /* the entry visited last, 0: none yet */
};

bool idmap_iter_next(const struct idmap *m, struct idmap_iter *it,
    uint64_t *key, void **val);

/* ---- a growable FIFO of u64 (ring buffer) ---- */

struct u64q {
	uint64_t *buf;
	size_t    cap; /* power of two or 0 */
	size_t    head;
	size_t    len;
};

void   u64q_init(struct u64q *q);
void   u64q_fini(struct u64q *q);
int    u64q_push(struct u64q *q, uint64_t v);       /* at the back */
int    u64q_push_front(struct u64q *q, uint64_t v); /* at the front */
bool   u64q_pop(struct u64q *q, uint64_t *v);       /* from the front */
size_t u64q_len(const struct u64q *q);
void   u64q_shrink(struct u64q *q);                 /* free if empty */

/* ---- a min-heap of timers keyed by deadline ---- */

/* What a timer does when it comes due: owner is the heap's user (e.g.
 * the scheduler), id and gen what the timer was set with. */
typedef void (*timer_fn)(void *owner, uint64_t id, uint32_t gen);

struct timer {
	uint64_t when; /* deadline, ms (util_now_ms clock) */
	uint64_t id;   /* what it is for (caller-defined) */
	timer_fn fn;   /* what to do then (the heap never calls it) */
	uint32_t gen;  /* caller-defined generation, to ignore stale ones */
};

struct timerheap {
	struct timer *t;
	size_t        len, cap;
};

void timerheap_init(struct timerheap *h);
void timerheap_fini(struct timerheap *h);
int  timerheap_push(struct timerheap *h, struct timer t);
/* The earliest timer, or NULL. */
const struct timer *timerheap_peek(const struct timerheap *h);
/* Remove the earliest timer into *t; false if empty. */
bool timerheap_pop(struct timerheap *h, struct timer *t);

/* ---- NNG ---- */

/* Set Ferry's limits on a socket: maximum message size, buffers, and no
 * automatic request re-send.  Returns an NNG error or 0. */
int util_sock_setup(nng_socket s, size_t max_msg);

/*
 * Request ids on raw REQ sockets: util_request_id() puts id (31 bits) in
 * the header of a request to send (returns an NNG error); util_reply_id()
 * reads it back from a reply (returns -1 if the header is too short).
 */
int util_request_id(nng_msg *msg, uint32_t id);
int util_reply_id(nng_msg *msg, uint32_t *id);

/* The longest ipc:// or abstract:// path: sizeof(sun_path) - 1. */
#define UTIL_IPC_MAX 107

/* util_url_problem() flags: the URL is to be dialed (refuse a wildcard
 * host: '*' or none before the port). */
#define UTIL_URL_DIAL 1

/*
 * The one check of an NNG URL, for the cluster file, the scheduler's
 * listeners and every client: one of the schemes Ferry uses (tcp, tcp4,
 * tcp6, tls+tcp, ipc, abstract, inproc); no space or control character;
 * HOST:PORT or [V6]:PORT with a port 1..65535 for TCP; a socket path of
 * at most UTIL_IPC_MAX bytes for ipc and abstract; and NNG must parse
 * it.  Returns 0, or -1 with the reason (without the URL: "the port must
 * be a number from 1 to 65535") in why (len bytes).
 */
int util_url_problem(const char *url, int flags, char *why, size_t len);

/* util_url_problem() with no flags; on failure writes "invalid address
 * 'URL': REASON" into err and returns -1. */
int util_url_check(const char *url, char *err, size_t errlen);

/* Where the peer of an NNG URL is (docs/security.md). */
enum util_reach {
	UTIL_REACH_LOCAL    = 0, /* ipc://, abstract://, inproc://: this host
	                          * only (file permissions guard ipc) */
	UTIL_REACH_LOOPBACK = 1, /* tcp to 127.0.0.0/8, ::1 or localhost */
	UTIL_REACH_NETWORK  = 2, /* tcp to any other host, a wildcard
	                          * (a star host, 0.0.0.0, ::), or a URL
	                          * that does not parse */
};

/* Classify url (never fails: what it cannot tell is NETWORK). */
int util_url_reach(const char *url);

/* Whether url uses NNG's TLS transport (tls+tcp://, tls+tcp4/6://). */
bool util_url_is_tls(const char *url);

/* Whether a peer may send the shared token to url: over TLS, or to an
 * address that never leaves the host (LOCAL or LOOPBACK). */
bool util_token_may_send(const char *url);

#endif
