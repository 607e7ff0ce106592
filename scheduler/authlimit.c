/*
 * authlimit.c - failed authentications per peer host (see authlimit.h).
 *
 * Each host has a token bucket counted in thousandths of a refusal.  A
 * refusal takes one whole token; the bucket may go into debt, and a
 * refusal made in debt waits until the refill (AUTHLIMIT_RATE per second)
 * has paid it back.  So a guesser, however many connections it opens, is
 * answered no faster than the rate once its burst is spent.
 */
#include "authlimit.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define UNIT 1000 /* thousandths of a token */

struct host {
	char     name[64];
	int64_t  tokens;       /* in UNITs; negative: in debt */
	uint64_t last_ms;      /* last refill */
	uint32_t pending;      /* slowed refusals not answered yet */
	uint64_t window_start; /* of the current summary window */
	uint32_t logged;       /* failures logged in full in it */
	uint64_t unlogged;     /* failures only counted in it */
};

struct authlimit {
	struct idmap hosts;    /* hash(name) -> host */
	struct host  overflow; /* every host once the table is full */
};

struct authlimit *
authlimit_new(void)
{
	struct authlimit *a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	idmap_init(&a->hosts);
	util_strlcpy(a->overflow.name, "(other hosts)",
	    sizeof(a->overflow.name));
	a->overflow.tokens = AUTHLIMIT_BURST * UNIT;
	return a;
}

void
authlimit_free(struct authlimit *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->hosts.cap; i++)
		if (a->hosts.slots[i].key != 0)
			free(a->hosts.slots[i].val);
	idmap_fini(&a->hosts);
	free(a);
}

/* The host part of addr: without a trailing ":PORT". */
static size_t
host_len(const char *addr)
{
	size_t n = strlen(addr), i = n;
	while (i > 0 && addr[i - 1] >= '0' && addr[i - 1] <= '9')
		i--;
	if (i > 0 && i < n && addr[i - 1] == ':')
		return i - 1;
	return n;
}

static uint64_t
host_key(const char *name, size_t n)
{
	return util_hash_bytes(name, n) | 1;
}

static struct host *
host_get(struct authlimit *a, const char *addr, uint64_t now, uint64_t *key)
{
	size_t       n = host_len(addr);
	struct host *h;

	if (n >= sizeof(h->name))
		n = sizeof(h->name) - 1;
	*key = host_key(addr, n);
	if ((h = idmap_get(&a->hosts, *key)) != NULL)
		return h;
	if (a->hosts.count >= AUTHLIMIT_HOSTS ||
	    (h = calloc(1, sizeof(*h))) == NULL)
		goto shared;
	memcpy(h->name, addr, n);
	h->tokens       = AUTHLIMIT_BURST * UNIT;
	h->last_ms      = now;
	h->window_start = now;
	if (idmap_put(&a->hosts, *key, h) != 0) {
		free(h);
		goto shared;
	}
	return h;
shared:
	*key = 0;
	return &a->overflow;
}

void
authlimit_fail(struct authlimit *a, const char *addr, uint64_t now_ms,
    struct authlimit_verdict *v)
{
	struct host *h;
	uint64_t     key;
	int64_t      debt;

	memset(v, 0, sizeof(*v));
	if (a == NULL) {
		v->log = 1;
		return;
	}
	h = host_get(a, addr, now_ms, &key);
	if (now_ms > h->last_ms) {
		h->tokens += (int64_t)(now_ms - h->last_ms) * AUTHLIMIT_RATE;
		if (h->tokens > AUTHLIMIT_BURST * UNIT)
			h->tokens = AUTHLIMIT_BURST * UNIT;
		h->last_ms = now_ms;
	}
	if (h->logged < AUTHLIMIT_LOG_FULL) {
		h->logged++;
		v->log = 1;
	} else {
		h->unlogged++;
	}
	debt = UNIT - h->tokens; /* what this refusal lacks */
	if (debt <= 0) {
		h->tokens -= UNIT;
		return;
	}
	if (h->pending >= AUTHLIMIT_MAX_PENDING ||
	    debt / AUTHLIMIT_RATE > AUTHLIMIT_MAX_DELAY_MS) {
		v->drop = 1;
		return;
	}
	h->tokens -= UNIT;
	h->pending++;
	v->delay_ms = (uint32_t)(debt / AUTHLIMIT_RATE);
	v->key      = key;
}

void
authlimit_answered(struct authlimit *a, uint64_t key)
{
	struct host *h;

	if (a == NULL)
		return;
	h = key != 0 ? idmap_get(&a->hosts, key) : &a->overflow;
	if (h != NULL && h->pending > 0)
		h->pending--;
}

/* Summarise h if its window is over; returns when it next needs a
 * look (UINT64_MAX: never, it may be forgotten). */
static uint64_t
host_report(struct host *h, uint64_t now,
    void (*fn)(void *, const char *, uint64_t, uint64_t), void *arg)
{
	uint64_t end = h->window_start + AUTHLIMIT_SUMMARY_MS;

	if (now < end)
		return end;
	if (h->unlogged > 0)
		fn(arg, h->name, h->unlogged, now - h->window_start);
	else if (h->pending == 0 && now - h->last_ms >= AUTHLIMIT_SUMMARY_MS)
		return UINT64_MAX; /* quiet for a whole window */
	h->window_start = now;
	h->logged       = 0;
	h->unlogged     = 0;
	return now + AUTHLIMIT_SUMMARY_MS;
}

uint64_t
authlimit_report(struct authlimit *a, uint64_t now_ms,
    void (*fn)(void *arg, const char *host, uint64_t n, uint64_t ms),
    void *arg)
{
	uint64_t next = UINT64_MAX, due;

	if (a == NULL)
		return next;
	/* deleting an entry may move a later one into its slot: that slot
	 * is looked at again */
	for (size_t i = 0; i < a->hosts.cap;) {
		struct host *h = a->hosts.slots[i].val;
		if (a->hosts.slots[i].key == 0) {
			i++;
			continue;
		}
		if ((due = host_report(h, now_ms, fn, arg)) == UINT64_MAX) {
			free(idmap_del(&a->hosts, a->hosts.slots[i].key));
			continue;
		}
		if (due < next)
			next = due;
		i++;
	}
	if (a->overflow.unlogged > 0 &&
	    (due = host_report(&a->overflow, now_ms, fn, arg)) < next)
		next = due;
	return next;
}

size_t
authlimit_hosts(const struct authlimit *a)
{
	return a != NULL ? a->hosts.count : 0;
}
