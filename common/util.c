/*
 * util.c - small shared utilities.
 */
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nng/protocol/reqrep0/req.h>

#include "ferry/ferry.h"

uint64_t
util_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t
util_now_ms(void)
{
	return util_now_us() / 1000u;
}

int
util_nng_err(int rv)
{
	switch (rv) {
	case 0: return FERRY_OK;
	case NNG_ENOMEM: return FERRY_ENOMEM;
	case NNG_EINVAL:
	case NNG_EADDRINVAL: return FERRY_EINVAL;
	case NNG_ETIMEDOUT: return FERRY_ETIMEDOUT;
	case NNG_ECLOSED: return FERRY_ECLOSED;
	case NNG_ECONNREFUSED:
	case NNG_ECONNRESET:
	case NNG_ECONNSHUT:
	case NNG_EUNREACHABLE:
	case NNG_ENOENT: return FERRY_ECONNECT;
	case NNG_EMSGSIZE: return FERRY_ETOOBIG;
	case NNG_EPROTO: return FERRY_EPROTO;
	case NNG_ENOTSUP: return FERRY_EINVAL; /* e.g. an unknown URL scheme */
	default: return FERRY_ETRANSPORT;
	}
}

int
util_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (err == NULL || errlen == 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

int
util_proc_stat(pid_t pid, struct util_proc_stat *st)
{
	char               path[64], buf[1024], *p, state;
	int                fd, ppid, pgid;
	ssize_t            n;
	unsigned long long start;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* "PID (COMM) S PPID PGRP ... STARTTIME ...": COMM may hold
	 * anything, so start after its last ')' (field 3 on) */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 1, " %c %d %d", &state, &ppid, &pgid) != 3)
		return -1;
	/* from the space before field 3 to the one before field 22 */
	p++;
	for (int field = 4; field <= 22; field++)
		if ((p = strchr(p + 1, ' ')) == NULL)
			return -1;
	if (sscanf(p, "%llu", &start) != 1)
		return -1;
	st->state = state;
	st->ppid  = (pid_t)ppid;
	st->pgid  = (pid_t)pgid;
	st->start = (uint64_t)start;
	return 0;
}

long long
util_proc_kib(pid_t pid, const char *file, const char *key)
{
	char      path[128], line[256];
	FILE     *f;
	size_t    klen = strlen(key);
	long long kib  = -1;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			if (sscanf(line + klen + 1, "%lld", &kib) != 1)
				kib = -1;
			break;
		}
	fclose(f);
	return kib;
}

int
util_runtime_dir(char *buf, size_t len)
{
	const char *own = getenv("FERRY_RUNTIME_DIR");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int         n;

	if (buf == NULL || len == 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	buf[0] = '\0';
	if (own != NULL && own[0] != '\0') {
		if (own[0] != '/') {
			errno = EINVAL;
			return -1;
		}
		n = snprintf(buf, len, "%s", own);
	} else if (xdg != NULL && xdg[0] == '/')
		/* the XDG base directory spec: a relative value is ignored */
		n = snprintf(buf, len, "%s/ferry", xdg);
	else
		n = snprintf(buf, len, "/tmp/ferry-%lu",
		    (unsigned long)getuid());
	if (n < 0 || (size_t)n >= len) {
		buf[0] = '\0';
		errno  = ENAMETOOLONG;
		return -1;
	}
	/* one spelling per directory: no trailing slashes */
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	return 0;
}

void
util_strlcpy(char *dst, const char *src, size_t len)
{
	size_t n;
	if (len == 0)
		return;
	n = strlen(src);
	if (n >= len)
		n = len - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

const char *
util_escape(char *dst, size_t len, const void *src, size_t n)
{
	static const char   hex[] = "0123456789abcdef";
	const unsigned char *p    = src;
	size_t               o    = 0;

	if (len == 0)
		return dst;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = p[i];
		char          e[5];
		size_t        k = 0;
		if (ch == '\\' || ch == '"') {
			e[k++] = '\\';
			e[k++] = (char)ch;
		} else if (ch == 0) {
			e[k++] = '\\';
			e[k++] = '0';
		} else if (ch < 0x20 || ch >= 0x7f) {
			e[k++] = '\\';
			e[k++] = 'x';
			e[k++] = hex[ch >> 4];
			e[k++] = hex[ch & 15];
		} else {
			e[k++] = (char)ch;
		}
		/* keep room for "..." and the NUL */
		if (o + k + 4 > len && i + 1 < n) {
			if (o + 4 <= len) {
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (o + k + 1 > len)
			break;
		memcpy(dst + o, e, k);
		o += k;
	}
	dst[o] = '\0';
	return dst;
}

uint64_t
util_hash_bytes(const void *s, size_t n)
{
	const uint8_t *p = s;
	uint64_t       h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

int
util_grow(void *bufp, size_t *cap, size_t len, size_t elem, size_t first)
{
	void  *old, *n;
	size_t ncap;

	if (len < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : first;
	if (ncap == 0 || ncap > SIZE_MAX / elem)
		return -1;
	memcpy(&old, bufp, sizeof(old));
	if ((n = realloc(old, ncap * elem)) == NULL)
		return -1;
	memcpy(bufp, &n, sizeof(n));
	*cap = ncap;
	return 0;
}

int
util_u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

size_t
util_u64_sort_unique(uint64_t *v, size_t n)
{
	size_t k = 0;

	qsort(v, n, sizeof(*v), util_u64_cmp);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || v[i] != v[k - 1])
			v[k++] = v[i];
	return k;
}

struct bounded_call {
	void (*fn)(void *);
	void *arg;
};

static void *
bounded_main(void *p)
{
	struct bounded_call *b = p;
	b->fn(b->arg);
	free(b);
	return NULL;
}

int
util_mkdir_p(const char *path)
{
	char   buf[4096];
	size_t n = strlen(path);

	if (n >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] == '/' || buf[i] == '\0') {
			char c = buf[i];
			buf[i] = '\0';
			if (mkdir(buf, 0700) != 0 && errno != EEXIST)
				return -1;
			buf[i] = c;
		}
	}
	return 0;
}

int
util_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int      rv;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rv = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rv;
}

int
util_call_bounded(void (*fn)(void *), void *arg, int seconds)
{
	struct bounded_call *b = malloc(sizeof(*b));
	struct timespec      ts;
	pthread_t            t;
	int                  rv;

	if (b == NULL) {
		fn(arg);
		return -1;
	}
	b->fn  = fn;
	b->arg = arg;
	if ((rv = util_thread_start(&t, bounded_main, b)) != 0) {
		free(b);
		fn(arg);
		return -1;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += seconds;
	if (pthread_timedjoin_np(t, NULL, &ts) != 0) {
		pthread_detach(t);
		return -1;
	}
	return 0;
}

int
util_signal_fds(int *signal_fd, int *event_fd)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((*signal_fd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0 ||
	    (*event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return -1;
	return 0;
}

uint64_t
util_random64(void)
{
	uint64_t v = 0;
	while (v == 0) {
		if (getrandom(&v, sizeof(v), 0) != sizeof(v)) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			v = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
			    ((uint64_t)getpid() << 40);
		}
	}
	return v;
}

/* ------------------------------------------------------------- idmap */

static size_t
hash64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return (size_t)k;
}

void
idmap_init(struct idmap *m)
{
	m->slots = NULL;
	m->cap   = 0;
	m->count = 0;
}

void
idmap_fini(struct idmap *m)
{
	free(m->slots);
	idmap_init(m);
}

void *
idmap_get(const struct idmap *m, uint64_t key)
{
	size_t i;
	if (m->cap == 0 || key == 0)
		return NULL;
	for (i = hash64(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (m->slots[i].key == key)
			return m->slots[i].val;
		if (m->slots[i].key == 0)
			return NULL;
	}
}

static int
idmap_rehash(struct idmap *m, size_t ncap)
{
	struct idmap_slot *ns = calloc(ncap, sizeof(*ns));
	if (ns == NULL)
		return -1;
	for (size_t j = 0; j < m->cap; j++) {
		uint64_t k = m->slots[j].key;
		size_t   i;
		if (k == 0)
			continue;
		for (i = hash64(k) & (ncap - 1); ns[i].key != 0;
		     i = (i + 1) & (ncap - 1))
			;
		ns[i] = m->slots[j];
	}
	free(m->slots);
	m->slots = ns;
	m->cap   = ncap;
	return 0;
}

static int
idmap_grow(struct idmap *m)
{
	return idmap_rehash(m, m->cap ? m->cap * 2 : 16);
}

void
idmap_shrink(struct idmap *m)
{
	size_t ncap = 16;
	if (m->count == 0) {
		idmap_fini(m);
		return;
	}
	/* half full at most, as after growing */
	while (ncap < m->count * 2)
		ncap *= 2;
	if (ncap * 4 <= m->cap)
		(void)idmap_rehash(m, ncap); /* on failure keep the old one */
}

int
idmap_put(struct idmap *m, uint64_t key, void *val)
{
	size_t i;
	if (key == 0)
		return -1;
	/* replacing never needs room: it never fails */
	if ((m->count + 1) * 4 > m->cap * 3 && idmap_get(m, key) == NULL &&
	    idmap_grow(m) != 0)
		return -1;
	for (i = hash64(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (m->slots[i].key == key) {
			m->slots[i].val = val;
			return 0;
		}
		if (m->slots[i].key == 0) {
			m->slots[i].key = key;
			m->slots[i].val = val;
			m->count++;
			return 0;
		}
	}
}

void *
idmap_del(struct idmap *m, uint64_t key)
{
	size_t i, j;
	void  *val;
	if (m->cap == 0 || key == 0)
		return NULL;
	for (i = hash64(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (m->slots[i].key == 0)
			return NULL;
		if (m->slots[i].key == key)
			break;
	}
	val = m->slots[i].val;
	m->count--;
	/* backward-shift deletion keeps probe chains intact */
	for (j = (i + 1) & (m->cap - 1);; j = (j + 1) & (m->cap - 1)) {
		size_t home;
		if (m->slots[j].key == 0)
			break;
		home = hash64(m->slots[j].key) & (m->cap - 1);
		/* can slot j move to i? only if home is not in (i, j] */
		if ((j > i && (home <= i || home > j)) ||
		    (j < i && (home <= i && home > j))) {
			m->slots[i] = m->slots[j];
			i           = j;
		}
	}
	m->slots[i].key = 0;
	m->slots[i].val = NULL;
	return val;
}

/* -------------------------------------------------------------- u64q */

void
u64q_init(struct u64q *q)
{
	memset(q, 0, sizeof(*q));
}

void
u64q_fini(struct u64q *q)
{
	free(q->buf);
	u64q_init(q);
}

void
u64q_shrink(struct u64q *q)
{
	if (q->len == 0)
		u64q_fini(q);
}

static int
u64q_grow(struct u64q *q)
{
	size_t    ncap = q->cap ? q->cap * 2 : 64;
	uint64_t *nb   = malloc(ncap * sizeof(*nb));
	if (nb == NULL)
		return -1;
	for (size_t i = 0; i < q->len; i++)
		nb[i] = q->buf[(q->head + i) & (q->cap - 1)];
	free(q->buf);
	q->buf  = nb;
	q->cap  = ncap;
	q->head = 0;
	return 0;
}

int
u64q_push(struct u64q *q, uint64_t v)
{
	if (q->len == q->cap && u64q_grow(q) != 0)
		return -1;
	q->buf[(q->head + q->len) & (q->cap - 1)] = v;
	q->len++;
	return 0;
}

int
u64q_push_front(struct u64q *q, uint64_t v)
{
	if (q->len == q->cap && u64q_grow(q) != 0)
		return -1;
	q->head         = (q->head + q->cap - 1) & (q->cap - 1);
	q->buf[q->head] = v;
	q->len++;
	return 0;
}

bool
u64q_pop(struct u64q *q, uint64_t *v)
{
	if (q->len == 0)
		return false;
	*v      = q->buf[q->head];
	q->head = (q->head + 1) & (q->cap - 1);
	q->len--;
	if (q->len == 0)
		q->head = 0;
	return true;
}

size_t
u64q_len(const struct u64q *q)
{
	return q->len;
}

bool
idmap_iter_next(const struct idmap *m, struct idmap_iter *it, uint64_t *key,
    void **val)
{
	size_t i = it->pos;

	/* past the last one, unless it was deleted (then its slot may hold
	 * an entry moved back from further on) */
	if (it->key != 0 && i < m->cap && m->slots[i].key == it->key)
		i++;
	for (; i < m->cap; i++) {
		if (m->slots[i].key == 0)
			continue;
		it->pos = i;
		it->key = m->slots[i].key;
		if (key != NULL)
			*key = m->slots[i].key;
		if (val != NULL)
			*val = m->slots[i].val;
		return true;
	}
	it->pos = m->cap;
	it->key = 0;
	return false;
}

/* --------------------------------------------------------- timerheap */

void
timerheap_init(struct timerheap *h)
{
	memset(h, 0, sizeof(*h));
}

void
timerheap_fini(struct timerheap *h)
{
	free(h->t);
	timerheap_init(h);
}

int
timerheap_push(struct timerheap *h, struct timer t)
{
	size_t i;
	if (util_grow(&h->t, &h->cap, h->len, sizeof(*h->t), 64) != 0)
		return -1;
	i = h->len++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (h->t[p].when <= t.when)
			break;
		h->t[i] = h->t[p];
		i       = p;
	}
	h->t[i] = t;
	return 0;
}

const struct timer *
timerheap_peek(const struct timerheap *h)
{
	return h->len > 0 ? &h->t[0] : NULL;
}

bool
timerheap_pop(struct timerheap *h, struct timer *out)
{
	struct timer last;
	size_t       i = 0;
	if (h->len == 0)
		return false;
	*out = h->t[0];
	last = h->t[--h->len];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= h->len)
			break;
		if (c + 1 < h->len && h->t[c + 1].when < h->t[c].when)
			c++;
		if (last.when <= h->t[c].when)
			break;
		h->t[i] = h->t[c];
		i       = c;
	}
	if (h->len > 0)
		h->t[i] = last;
	return true;
}

/* --------------------------------------------------------------- NNG */

int
util_sock_setup(nng_socket s, size_t max_msg)
{
	int rv;
	if ((rv = nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, max_msg)) != 0)
		return rv;
	/* deep socket queues: batching keeps message counts low, and a
	 * shallow queue stalls the sender on every burst */
	if ((rv = nng_socket_set_int(s, NNG_OPT_SENDBUF, 1024)) != 0 ||
	    (rv = nng_socket_set_int(s, NNG_OPT_RECVBUF, 1024)) != 0)
		return rv;
	/* a reply may be parked for a long time (long polls, long tasks):
	 * a cooked REQ socket must never re-send on its own.  Our raw REQ
	 * sockets never re-send and refuse the option (NNG_ENOTSUP). */
	rv = nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	if (rv != 0 && rv != NNG_ENOTSUP)
		return rv;
	nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 50);
	nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, 1000);
	return 0;
}

/* Write a reason into why (len bytes); returns -1. */
static int url_fail(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
url_fail(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || len == 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return -1;
}

/* HOST:PORT or [V6]:PORT of a TCP URL (rest: after "://"). */
static int
url_host_port(const char *rest, int flags, char *why, size_t len)
{
	const char *port;
	size_t      plen;

	if (*rest == '[') {
		const char *close = strchr(rest, ']');
		if (close == NULL || close[1] != ':')
			return url_fail(why, len, "bad [IPv6]:PORT address");
		port = close + 2;
	} else if ((port = strrchr(rest, ':')) != NULL) {
		port++;
	} else {
		return url_fail(why, len, "missing ':PORT' after the host");
	}
	plen = strlen(port);
	if (plen == 0 || plen > 5 || strspn(port, "0123456789") != plen ||
	    atoi(port) < 1 || atoi(port) > 65535)
		return url_fail(why, len,
		    "the port must be a number from 1 to 65535");
	if ((flags & UTIL_URL_DIAL) && (rest[0] == ':' || rest[0] == '*'))
		return url_fail(why, len,
		    "a wildcard host cannot be dialed; name the host workers "
		    "and clients connect to");
	return 0;
}

int
util_url_problem(const char *url, int flags, char *why, size_t len)
{
	static const char *const schemes[] = { "tcp", "tcp4", "tcp6", "ipc",
		"abstract", "inproc", "tls+tcp" };
	const char *sep = strstr(url, "://");
	const char *scheme = NULL, *rest;
	size_t      slen;
	nng_url    *u;
	int         rv;

	for (const char *p = url; *p != '\0'; p++) {
		if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
			return url_fail(why, len,
			    "URL contains a space or control character");
	}
	if (sep == NULL)
		return url_fail(why, len,
		    "not a URL (write e.g. tcp://127.0.0.1:7710 or "
		    "ipc:///tmp/ferry.sock)");
	slen = (size_t)(sep - url);
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		if (strlen(schemes[i]) == slen &&
		    strncmp(url, schemes[i], slen) == 0)
			scheme = schemes[i];
	}
	if (scheme == NULL)
		return url_fail(why, len,
		    "unknown URL scheme '%.*s' (use tcp, tcp4, tcp6, ipc, "
		    "abstract, inproc or tls+tcp)",
		    (int)(slen > 40 ? 40 : slen), url);
	rest = sep + 3;
	if (*rest == '\0')
		return url_fail(why, len, "nothing after '%s://'", scheme);
	if (strcmp(scheme, "ipc") == 0 || strcmp(scheme, "abstract") == 0) {
		if (strlen(rest) > UTIL_IPC_MAX)
			return url_fail(why, len,
			    "ipc path is %zu bytes, the limit is %d for a "
			    "Unix socket",
			    strlen(rest), UTIL_IPC_MAX);
	} else if (strcmp(scheme, "inproc") != 0 &&
	    url_host_port(rest, flags, why, len) != 0) {
		return -1;
	}
	/* and NNG must take it as it is */
	if ((rv = nng_url_parse(&u, url)) != 0)
		return url_fail(why, len, "%s", nng_strerror(rv));
	nng_url_free(u);
	return 0;
}

int
util_url_check(const char *url, char *err, size_t errlen)
{
	char why[256];

	if (util_url_problem(url, 0, why, sizeof(why)) == 0)
		return 0;
	snprintf(err, errlen, "invalid address '%s': %s", url, why);
	return -1;
}

int
util_url_reach(const char *url)
{
	nng_url       *u;
	const char    *h;
	unsigned char  a[16];
	int            reach = UTIL_REACH_NETWORK;
	static const unsigned char v6_loop[16] = { [15] = 1 };

	if (url == NULL || nng_url_parse(&u, url) != 0)
		return UTIL_REACH_NETWORK;
	h = u->u_hostname != NULL ? u->u_hostname : "";
	if (strcmp(u->u_scheme, "ipc") == 0 ||
	    strcmp(u->u_scheme, "abstract") == 0 ||
	    strcmp(u->u_scheme, "inproc") == 0)
		reach = UTIL_REACH_LOCAL;
	else if (strcasecmp(h, "localhost") == 0)
		reach = UTIL_REACH_LOOPBACK;
	else if (inet_pton(AF_INET, h, a) == 1 && a[0] == 127)
		reach = UTIL_REACH_LOOPBACK;
	else if (inet_pton(AF_INET6, h, a) == 1 &&
	    memcmp(a, v6_loop, 16) == 0)
		reach = UTIL_REACH_LOOPBACK;
	nng_url_free(u);
	return reach;
}

bool
util_url_is_tls(const char *url)
{
	return url != NULL && strncmp(url, "tls+tcp", 7) == 0;
}

bool
util_token_may_send(const char *url)
{
	return util_url_is_tls(url) ||
	    util_url_reach(url) != UTIL_REACH_NETWORK;
}

int
util_request_id(nng_msg *msg, uint32_t id)
{
	return nng_msg_header_append_u32(msg, id | 0x80000000u);
}

int
util_reply_id(nng_msg *msg, uint32_t *id)
{
	const uint8_t *h;

	if (nng_msg_header_len(msg) < 4)
		return -1;
	h   = nng_msg_header(msg);
	*id = (uint32_t)(h[0] & 0x7f) << 24 | (uint32_t)h[1] << 16 |
	    (uint32_t)h[2] << 8 | h[3];
	return 0;
}
