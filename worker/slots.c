/*
 * slots.c - the slot table shared by a worker process and its supervisor
 * (see slots.h for who writes what and the ordering rules).
 */
#include "slots.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define SLOTS_MAGIC UINT64_C(0x3174736c73797266) /* "ferryslt1" */
#define SLOTS_VERSION 2
#define SLOTS_MAX 1048576u

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2,
    "the slot table needs lock-free 64-bit atomics (shared between "
    "processes)");

/* One slot, on its own cache line: each is written by one executor. */
struct slot {
	_Atomic uint64_t task;
	_Atomic uint64_t started_ms;
	_Atomic uint64_t deadline_ms;
	_Atomic uint64_t returned; /* result not acknowledged yet */
	uint64_t         pad[4];
};

struct table {
	uint64_t         magic;
	uint32_t         version;
	uint32_t         n_slots;
	_Atomic uint64_t worker_id;   /* written by the worker */
	_Atomic uint64_t recycled;    /* written by the worker */
	_Atomic uint64_t exiting;     /* declared exit status + 1 (worker) */
	_Atomic uint64_t fault;       /* signal in its own code (worker) */
	_Atomic uint64_t drain;       /* a stop signal is coming from the
	                               * supervisor itself (supervisor) */
	uint64_t         pad[1];
	_Atomic uint64_t cancel_seq;  /* ids ever added (supervisor) */
	_Atomic uint64_t cancelled[WRK_SLOTS_CANCEL_RING];
	struct slot      slots[];
};

struct wrk_slots {
	struct table *t;
	size_t        size;
	uint32_t      n;
};

static size_t
table_size(uint32_t n)
{
	return sizeof(struct table) + (size_t)n * sizeof(struct slot);
}

static int
map_table(struct wrk_slots **out, int fd, size_t size, char *err,
    size_t errlen)
{
	struct wrk_slots *s;
	void             *p;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return util_errf(err, errlen, "slot table: out of memory");
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		free(s);
		return util_errf(err, errlen, "slot table: mmap of %zu bytes: %s",
		    size, strerror(errno));
	}
	s->t    = p;
	s->size = size;
	*out    = s;
	return 0;
}

int
wrk_slots_create(struct wrk_slots **out, uint32_t n_slots, int *fd,
    char *err, size_t errlen)
{
	size_t size;
	int    mfd;

	*out = NULL;
	*fd  = -1;
	if (n_slots == 0 || n_slots > SLOTS_MAX)
		return util_errf(err, errlen,
		    "slot table: %u slots is out of range 1..%u", n_slots,
		    SLOTS_MAX);
	size = table_size(n_slots);
	if ((mfd = memfd_create("ferry-slots", MFD_CLOEXEC)) < 0)
		return util_errf(err, errlen, "slot table: memfd_create: %s",
		    strerror(errno));
	if (ftruncate(mfd, (off_t)size) != 0) {
		int e = errno;
		close(mfd);
		return util_errf(err, errlen,
		    "slot table: cannot size it to %zu bytes: %s", size,
		    strerror(e));
	}
	if (map_table(out, mfd, size, err, errlen) != 0) {
		close(mfd);
		return -1;
	}
	/* a fresh memfd reads as zeroes: every slot idle, nothing cancelled */
	(*out)->t->version = SLOTS_VERSION;
	(*out)->t->n_slots = n_slots;
	(*out)->n          = n_slots;
	atomic_store(&(*out)->t->worker_id, 0);
	(*out)->t->magic = SLOTS_MAGIC;
	*fd              = mfd;
	return 0;
}

int
wrk_slots_attach(struct wrk_slots **out, int fd, uint32_t min_slots,
    char *err, size_t errlen)
{
	struct stat st;
	struct table head;

	*out = NULL;
	if (fstat(fd, &st) != 0)
		return util_errf(err, errlen, "slot table on fd %d: %s", fd,
		    strerror(errno));
	if ((size_t)st.st_size < sizeof(head) ||
	    pread(fd, &head, sizeof(head), 0) != (ssize_t)sizeof(head))
		return util_errf(err, errlen,
		    "slot table on fd %d: too small (%lld bytes)", fd,
		    (long long)st.st_size);
	if (head.magic != SLOTS_MAGIC || head.version != SLOTS_VERSION)
		return util_errf(err, errlen,
		    "slot table on fd %d: not a ferry slot table (version %u)",
		    fd, head.version);
	if (head.n_slots < min_slots || head.n_slots > SLOTS_MAX ||
	    (size_t)st.st_size < table_size(head.n_slots))
		return util_errf(err, errlen,
		    "slot table on fd %d: %u slots, %lld bytes; need %u slots",
		    fd, head.n_slots, (long long)st.st_size, min_slots);
	if (map_table(out, fd, table_size(head.n_slots), err, errlen) != 0)
		return -1;
	(*out)->n = head.n_slots;
	return 0;
}

void
wrk_slots_free(struct wrk_slots *s)
{
	if (s == NULL)
		return;
	munmap(s->t, s->size);
	free(s);
}

uint32_t
wrk_slots_count(const struct wrk_slots *s)
{
	return s != NULL ? s->n : 0;
}

/* ------------------------------------------------------ worker side */

void
wrk_slots_set_worker(struct wrk_slots *s, uint64_t worker_id)
{
	if (s != NULL)
		atomic_store(&s->t->worker_id, worker_id);
}

/* Whether task is in the cancel list. */
static int
is_cancelled(struct table *t, uint64_t task)
{
	uint64_t seq = atomic_load(&t->cancel_seq);
	uint64_t n   = seq < WRK_SLOTS_CANCEL_RING ? seq
	                                           : WRK_SLOTS_CANCEL_RING;
	/* newest first: a cancel that races with this task is the newest */
	for (uint64_t k = 1; k <= n; k++)
		if (atomic_load(&t->cancelled[(seq - k) %
		        WRK_SLOTS_CANCEL_RING]) == task)
			return 1;
	return 0;
}

int
wrk_slots_begin(struct wrk_slots *s, uint32_t slot, uint64_t task,
    uint64_t started_ms, uint64_t deadline_ms)
{
	struct slot *sl;

	if (s == NULL || slot >= s->n)
		return 0;
	sl = &s->t->slots[slot];
	/* start and deadline first, the id last: a reader that sees the id
	 * sees this run's times (wrk_slots_read) */
	atomic_store(&sl->started_ms, started_ms);
	atomic_store(&sl->deadline_ms, deadline_ms);
	atomic_store(&sl->task, task);
	/* the slot is written: now the cancel list (seq_cst, see slots.h) */
	if (is_cancelled(s->t, task)) {
		atomic_store(&sl->task, 0);
		return 1;
	}
	return 0;
}

void
wrk_slots_end(struct wrk_slots *s, uint32_t slot)
{
	if (s != NULL && slot < s->n)
		atomic_store(&s->t->slots[slot].task, 0);
}

void
wrk_slots_set_returned(struct wrk_slots *s, uint32_t slot, uint64_t task)
{
	/* read by the supervisor once the process is dead, and by the
	 * process itself: no ordering with other fields needed (a plain
	 * store on x86, where a sequentially consistent one is a fence) */
	if (s != NULL && slot < s->n)
		atomic_store_explicit(&s->t->slots[slot].returned, task,
		    memory_order_release);
}

uint64_t
wrk_slots_returned(const struct wrk_slots *s, uint32_t slot)
{
	if (s == NULL || slot >= s->n)
		return 0;
	return atomic_load_explicit(&s->t->slots[slot].returned,
	    memory_order_acquire);
}

void
wrk_slots_set_recycled(struct wrk_slots *s)
{
	if (s != NULL)
		atomic_store(&s->t->recycled, 1);
}

void
wrk_slots_set_exit(struct wrk_slots *s, int status)
{
	if (s != NULL && status >= 0)
		atomic_store(&s->t->exiting, (uint64_t)status + 1);
}

void
wrk_slots_set_fault(struct wrk_slots *s, int sig)
{
	/* the first one wins: it is the cause, a later one its effect */
	uint64_t none = 0;
	if (s != NULL && sig > 0)
		atomic_compare_exchange_strong(&s->t->fault, &none,
		    (uint64_t)sig);
}

int
wrk_slots_drain_asked(const struct wrk_slots *s)
{
	return s != NULL && atomic_load(&s->t->drain) != 0;
}

/* -------------------------------------------------- supervisor side */

void
wrk_slots_ask_drain(struct wrk_slots *s)
{
	if (s != NULL)
		atomic_store(&s->t->drain, 1);
}

uint64_t
wrk_slots_worker(const struct wrk_slots *s)
{
	return s != NULL ? atomic_load(&s->t->worker_id) : 0;
}

int
wrk_slots_read(const struct wrk_slots *s, uint32_t slot,
    struct wrk_slot_info *out)
{
	struct slot *sl;
	uint64_t     t1, t2;

	memset(out, 0, sizeof(*out));
	if (s == NULL || slot >= s->n)
		return 0;
	sl = &s->t->slots[slot];
	/* the times belong to the task if the id did not change while they
	 * were read (ids are unique, and every new run first clears it) */
	for (int tries = 0; tries < 1000; tries++) {
		t1               = atomic_load(&sl->task);
		out->started_ms  = atomic_load(&sl->started_ms);
		out->deadline_ms = atomic_load(&sl->deadline_ms);
		t2               = atomic_load(&sl->task);
		if (t1 == t2)
			break;
	}
	out->task     = t2;
	out->returned = atomic_load(&sl->returned);
	if (out->task == 0) {
		out->started_ms = out->deadline_ms = 0;
		return 0;
	}
	return 1;
}

int
wrk_slots_cancel(struct wrk_slots *s, uint64_t task)
{
	uint64_t seq;

	if (s == NULL || task == 0)
		return 0;
	/* the supervisor is the only writer of the list */
	seq = atomic_load(&s->t->cancel_seq);
	atomic_store(&s->t->cancelled[seq % WRK_SLOTS_CANCEL_RING], task);
	atomic_store(&s->t->cancel_seq, seq + 1);
	/* the list is written: now the slots (seq_cst, see slots.h) */
	for (uint32_t i = 0; i < s->n; i++)
		if (atomic_load(&s->t->slots[i].task) == task)
			return 1;
	return 0;
}

int
wrk_slots_recycled(const struct wrk_slots *s)
{
	return s != NULL && atomic_load(&s->t->recycled) != 0;
}

int
wrk_slots_exit(const struct wrk_slots *s)
{
	uint64_t v = s != NULL ? atomic_load(&s->t->exiting) : 0;
	return v == 0 || v > 256 ? -1 : (int)(v - 1);
}

int
wrk_slots_fault(const struct wrk_slots *s)
{
	uint64_t v = s != NULL ? atomic_load(&s->t->fault) : 0;
	return v > WRK_SLOTS_FAULT_FDS ? 0 : (int)v;
}
