/*
 * test_util.c - unit tests for common/util.c: the id map, the u64 ring
 * queue, the timer heap, URL checks and NNG error translation.
 *
 * The randomised tests use a fixed seed and cross-check every operation
 * against a deliberately simple reference implementation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ferry/ferry.h"
#include "security.h"
#include "util.h"

static uint64_t rng_state;

static void
rng_seed(uint64_t s)
{
	rng_state = s ? s : 1;
}

static uint64_t
rng(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

/* A distinct non-NULL pointer value standing for n. */
static void *
val(uint64_t n)
{
	return (void *)(uintptr_t)(n * 16 + 8);
}

/* --------------------------------------------------------------- idmap */

/* Every occupied slot must be reachable from its home slot: no empty slot
 * between home and where the key sits.  This is what backward-shift
 * deletion has to preserve. */
static void
idmap_check_chains(const struct idmap *m)
{
	size_t used = 0;

	if (m->cap == 0) {
		assert_int_equal(m->count, 0);
		return;
	}
	for (size_t j = 0; j < m->cap; j++) {
		uint64_t k = m->slots[j].key;
		if (k == 0) {
			assert_null(m->slots[j].val);
			continue;
		}
		used++;
		/* the probe from k's home reaches j before any hole */
		assert_ptr_equal(idmap_get(m, k), m->slots[j].val);
	}
	assert_int_equal(used, m->count);
	assert_true(m->count < m->cap); /* never full: lookups end */
}

/* The slot a key lands in when inserted alone into a fresh map of 16
 * slots: its home slot there. */
static size_t
home16(uint64_t key)
{
	struct idmap m;
	size_t       home = SIZE_MAX;

	idmap_init(&m);
	assert_int_equal(idmap_put(&m, key, val(1)), 0);
	assert_int_equal(m.cap, 16);
	for (size_t j = 0; j < m.cap; j++)
		if (m.slots[j].key == key)
			home = j;
	idmap_fini(&m);
	assert_true(home != SIZE_MAX);
	return home;
}

static void
test_idmap_basic(void **state)
{
	struct idmap m;
	(void)state;

	idmap_init(&m);
	/* an empty map answers without a table */
	assert_null(idmap_get(&m, 1));
	assert_null(idmap_del(&m, 1));
	assert_int_equal(m.count, 0);

	assert_int_equal(idmap_put(&m, 1, val(1)), 0);
	assert_int_equal(idmap_put(&m, 2, val(2)), 0);
	assert_int_equal(idmap_put(&m, UINT64_MAX, val(3)), 0);
	assert_int_equal(m.count, 3);
	assert_ptr_equal(idmap_get(&m, 1), val(1));
	assert_ptr_equal(idmap_get(&m, 2), val(2));
	assert_ptr_equal(idmap_get(&m, UINT64_MAX), val(3));
	assert_null(idmap_get(&m, 3));

	/* replace keeps the count */
	assert_int_equal(idmap_put(&m, 2, val(20)), 0);
	assert_int_equal(m.count, 3);
	assert_ptr_equal(idmap_get(&m, 2), val(20));

	/* delete returns the value, once */
	assert_ptr_equal(idmap_del(&m, 2), val(20));
	assert_int_equal(m.count, 2);
	assert_null(idmap_get(&m, 2));
	assert_null(idmap_del(&m, 2));
	assert_int_equal(m.count, 2);
	assert_null(idmap_del(&m, 12345));
	assert_ptr_equal(idmap_get(&m, 1), val(1));

	/* put after delete */
	assert_int_equal(idmap_put(&m, 2, val(21)), 0);
	assert_ptr_equal(idmap_get(&m, 2), val(21));
	assert_int_equal(m.count, 3);
	idmap_check_chains(&m);

	idmap_fini(&m);
	assert_null(m.slots);
	assert_int_equal(m.count, 0);
	assert_null(idmap_get(&m, 1));
	idmap_fini(&m); /* twice is fine */
}

static void
test_idmap_key_zero(void **state)
{
	struct idmap m;
	(void)state;

	idmap_init(&m);
	assert_int_equal(idmap_put(&m, 0, val(1)), -1);
	assert_int_equal(m.count, 0);
	assert_int_equal(idmap_put(&m, 5, val(5)), 0);
	assert_int_equal(idmap_put(&m, 0, val(1)), -1);
	assert_int_equal(m.count, 1);
	assert_null(idmap_get(&m, 0));
	assert_null(idmap_del(&m, 0));
	assert_int_equal(m.count, 1);
	assert_ptr_equal(idmap_get(&m, 5), val(5));
	idmap_check_chains(&m);
	idmap_fini(&m);
}

static void
test_idmap_growth(void **state)
{
	struct idmap m;
	const size_t n = 50000;
	(void)state;

	idmap_init(&m);
	for (uint64_t k = 1; k <= n; k++) {
		assert_int_equal(idmap_put(&m, k, val(k)), 0);
		/* load stays at or below 3/4 */
		assert_true(m.count * 4 <= m.cap * 3);
	}
	assert_int_equal(m.count, n);
	for (uint64_t k = 1; k <= n; k++)
		assert_ptr_equal(idmap_get(&m, k), val(k));
	assert_null(idmap_get(&m, n + 1));
	idmap_check_chains(&m);
	/* delete every other key, then the rest */
	for (uint64_t k = 1; k <= n; k += 2)
		assert_ptr_equal(idmap_del(&m, k), val(k));
	idmap_check_chains(&m);
	for (uint64_t k = 1; k <= n; k++)
		assert_ptr_equal(idmap_get(&m, k), k % 2 ? NULL : val(k));
	for (uint64_t k = 2; k <= n; k += 2)
		assert_ptr_equal(idmap_del(&m, k), val(k));
	assert_int_equal(m.count, 0);
	for (size_t j = 0; j < m.cap; j++)
		assert_true(m.slots[j].key == 0);
	idmap_fini(&m);
}

#define REF_KEYS 3000

static void
test_idmap_random(void **state)
{
	struct idmap m;
	uint64_t    *keys = calloc(REF_KEYS, sizeof(*keys));
	void       **ref  = calloc(REF_KEYS, sizeof(*ref));
	size_t       ref_count = 0;
	(void)state;

	assert_non_null(keys);
	assert_non_null(ref);
	rng_seed(0x5eed1234);
	/* a pool of keys: small sequential ones (as the scheduler's ids
	 * are), random 64-bit ones, and ones differing only in high bits */
	for (size_t i = 0; i < REF_KEYS; i++) {
		switch (i % 3) {
		case 0: keys[i] = i + 1; break;
		case 1: keys[i] = rng() | 1; break;
		default: keys[i] = ((uint64_t)i << 40) | 7; break;
		}
	}
	idmap_init(&m);
	for (long op = 0; op < 100000; op++) {
		size_t   i = (size_t)(rng() % REF_KEYS);
		uint64_t r = rng() % 100;
		if (r < 45) {
			void *v = val(rng() >> 8);
			assert_int_equal(idmap_put(&m, keys[i], v), 0);
			if (ref[i] == NULL)
				ref_count++;
			ref[i] = v;
		} else if (r < 80) {
			assert_ptr_equal(idmap_del(&m, keys[i]), ref[i]);
			if (ref[i] != NULL)
				ref_count--;
			ref[i] = NULL;
		} else {
			assert_ptr_equal(idmap_get(&m, keys[i]), ref[i]);
		}
		assert_int_equal(m.count, ref_count);
		if (op % 5000 == 0) {
			for (size_t k = 0; k < REF_KEYS; k++)
				assert_ptr_equal(idmap_get(&m, keys[k]), ref[k]);
			idmap_check_chains(&m);
		}
	}
	for (size_t k = 0; k < REF_KEYS; k++)
		assert_ptr_equal(idmap_get(&m, keys[k]), ref[k]);
	idmap_check_chains(&m);
	idmap_fini(&m);
	free(keys);
	free(ref);
}

/* Insert keys whose home slots crowd one region of a 16-slot table (and
 * wrap around its end), then delete them in many orders, checking after
 * every step that all remaining keys are found and chains have no holes. */
#define CLUSTER 9

static void
cluster_delete(const uint64_t *keys, const size_t *order)
{
	struct idmap m;
	int          gone[CLUSTER] = { 0 };

	idmap_init(&m);
	for (size_t i = 0; i < CLUSTER; i++)
		assert_int_equal(idmap_put(&m, keys[i], val(i + 1)), 0);
	assert_int_equal(m.cap, 16);
	idmap_check_chains(&m);
	for (size_t s = 0; s < CLUSTER; s++) {
		size_t d = order[s];
		/* a missing key probing through the cluster changes nothing */
		assert_null(idmap_del(&m, 0xdeadbeefULL + s));
		assert_ptr_equal(idmap_del(&m, keys[d]), val(d + 1));
		gone[d] = 1;
		idmap_check_chains(&m);
		assert_int_equal(m.count, CLUSTER - s - 1);
		for (size_t i = 0; i < CLUSTER; i++)
			assert_ptr_equal(idmap_get(&m, keys[i]),
			    gone[i] ? NULL : val(i + 1));
	}
	idmap_fini(&m);
}

static void
test_idmap_shrink(void **state)
{
	struct idmap m;
	(void)state;
	idmap_init(&m);
	for (uint64_t k = 1; k <= 20000; k++)
		assert_int_equal(idmap_put(&m, k, (void *)(uintptr_t)k), 0);
	assert_true(m.cap >= 20000);
	/* not sparse enough: unchanged */
	idmap_shrink(&m);
	assert_true(m.cap >= 20000);
	for (uint64_t k = 11; k <= 20000; k++)
		assert_ptr_equal(idmap_del(&m, k), (void *)(uintptr_t)k);
	idmap_shrink(&m);
	assert_true(m.cap <= 32);
	assert_int_equal(m.count, 10);
	for (uint64_t k = 1; k <= 10; k++)
		assert_ptr_equal(idmap_get(&m, k), (void *)(uintptr_t)k);
	assert_null(idmap_get(&m, 11));
	/* still usable, then empty: freed */
	assert_int_equal(idmap_put(&m, 99, (void *)(uintptr_t)99), 0);
	assert_ptr_equal(idmap_get(&m, 99), (void *)(uintptr_t)99);
	for (uint64_t k = 1; k <= 10; k++)
		idmap_del(&m, k);
	idmap_del(&m, 99);
	idmap_shrink(&m);
	assert_int_equal(m.cap, 0);
	assert_null(idmap_get(&m, 5));
	assert_int_equal(idmap_put(&m, 5, (void *)(uintptr_t)5), 0);
	assert_ptr_equal(idmap_get(&m, 5), (void *)(uintptr_t)5);
	idmap_fini(&m);
}

static void
test_idmap_probe_chains(void **state)
{
	/* homes wanted: three at 14, two at 15, two at 0, one at 1, one at
	 * 13 - a run that wraps from slot 13 to slot 5 */
	const size_t want[CLUSTER] = { 14, 14, 14, 15, 15, 0, 0, 1, 13 };
	uint64_t     keys[CLUSTER];
	int          taken[CLUSTER] = { 0 };
	size_t       found = 0;
	size_t       order[CLUSTER];
	(void)state;

	for (uint64_t k = 1; found < CLUSTER; k++) {
		size_t h = home16(k);
		for (size_t i = 0; i < CLUSTER; i++) {
			if (!taken[i] && want[i] == h) {
				taken[i] = 1;
				keys[i]  = k;
				found++;
				break;
			}
		}
		assert_true(k < 100000);
	}

	/* the chain really wraps: some key sits below its home */
	{
		struct idmap m;
		int          wrapped = 0;
		idmap_init(&m);
		for (size_t i = 0; i < CLUSTER; i++)
			idmap_put(&m, keys[i], val(i + 1));
		for (size_t j = 0; j < m.cap; j++)
			if (m.slots[j].key != 0 && j < 8 &&
			    home16(m.slots[j].key) >= 13)
				wrapped = 1;
		assert_true(wrapped);
		idmap_fini(&m);
	}

	/* in insertion order, in reverse, and from the middle out */
	for (size_t i = 0; i < CLUSTER; i++)
		order[i] = i;
	cluster_delete(keys, order);
	for (size_t i = 0; i < CLUSTER; i++)
		order[i] = CLUSTER - 1 - i;
	cluster_delete(keys, order);
	for (size_t i = 0; i < CLUSTER; i++)
		order[i] = (4 + (i % 2 ? (i + 1) / 2 : CLUSTER - i / 2)) %
		           CLUSTER;
	cluster_delete(keys, order);
	/* and 3000 random orders */
	rng_seed(42);
	for (int r = 0; r < 3000; r++) {
		for (size_t i = 0; i < CLUSTER; i++)
			order[i] = i;
		for (size_t i = CLUSTER - 1; i > 0; i--) {
			size_t j = (size_t)(rng() % (i + 1));
			size_t t = order[i];
			order[i] = order[j];
			order[j] = t;
		}
		cluster_delete(keys, order);
	}

	/* insertion order matters too: insert shuffled, delete shuffled */
	for (int r = 0; r < 1000; r++) {
		struct idmap m;
		size_t       ins[CLUSTER];
		for (size_t i = 0; i < CLUSTER; i++)
			ins[i] = order[i] = i;
		for (size_t i = CLUSTER - 1; i > 0; i--) {
			size_t j = (size_t)(rng() % (i + 1));
			size_t t = ins[i];
			ins[i]   = ins[j];
			ins[j]   = t;
			j        = (size_t)(rng() % (i + 1));
			t        = order[i];
			order[i] = order[j];
			order[j] = t;
		}
		idmap_init(&m);
		for (size_t i = 0; i < CLUSTER; i++)
			idmap_put(&m, keys[ins[i]], val(ins[i] + 1));
		for (size_t s = 0; s < CLUSTER; s++) {
			assert_ptr_equal(idmap_del(&m, keys[order[s]]),
			    val(order[s] + 1));
			idmap_check_chains(&m);
			for (size_t t = s + 1; t < CLUSTER; t++)
				assert_ptr_equal(idmap_get(&m, keys[order[t]]),
				    val(order[t] + 1));
		}
		idmap_fini(&m);
	}
}

/* ---------------------------------------------------------------- u64q */

/* Reference deque: a big array with the front in the middle. */
#define REFQ_SIZE (1u << 20)

struct refq {
	uint64_t *a;
	size_t    head, tail; /* [head, tail) */
};

static void
test_u64q_basic(void **state)
{
	struct u64q q;
	uint64_t    v = 77;
	(void)state;

	u64q_init(&q);
	assert_int_equal(u64q_len(&q), 0);
	assert_false(u64q_pop(&q, &v));
	assert_true(v == 77);

	/* push_front on a queue that has no buffer yet */
	assert_int_equal(u64q_push_front(&q, 5), 0);
	assert_int_equal(u64q_push(&q, 6), 0);
	assert_int_equal(u64q_push_front(&q, 4), 0);
	assert_int_equal(u64q_len(&q), 3);
	assert_true(u64q_pop(&q, &v) && v == 4);
	assert_true(u64q_pop(&q, &v) && v == 5);
	assert_true(u64q_pop(&q, &v) && v == 6);
	assert_false(u64q_pop(&q, &v));
	u64q_fini(&q);

	/* FIFO order across several doublings */
	u64q_init(&q);
	for (uint64_t i = 0; i < 10000; i++)
		assert_int_equal(u64q_push(&q, i * 3), 0);
	assert_int_equal(u64q_len(&q), 10000);
	for (uint64_t i = 0; i < 10000; i++) {
		assert_true(u64q_pop(&q, &v));
		assert_true(v == i * 3);
	}
	assert_false(u64q_pop(&q, &v));

	/* push_front alone is LIFO, across growth */
	for (uint64_t i = 0; i < 1000; i++)
		assert_int_equal(u64q_push_front(&q, i), 0);
	for (uint64_t i = 1000; i-- > 0;) {
		assert_true(u64q_pop(&q, &v));
		assert_true(v == i);
	}
	u64q_fini(&q);
	u64q_fini(&q);
}

static void
test_u64q_wraparound_growth(void **state)
{
	struct u64q q;
	uint64_t    v, next_in = 0, next_out = 0;
	(void)state;

	/* fill the first buffer, move the head to the middle, then fill it
	 * so the contents wrap, then grow while wrapped */
	u64q_init(&q);
	for (int i = 0; i < 64; i++)
		assert_int_equal(u64q_push(&q, next_in++), 0);
	assert_int_equal(q.cap, 64);
	for (int i = 0; i < 40; i++) {
		assert_true(u64q_pop(&q, &v));
		assert_true(v == next_out++);
	}
	for (int i = 0; i < 40; i++)
		assert_int_equal(u64q_push(&q, next_in++), 0);
	assert_int_equal(q.cap, 64);
	assert_true(q.head + q.len > q.cap); /* wrapped */
	assert_int_equal(u64q_push(&q, next_in++), 0); /* grows */
	assert_int_equal(q.cap, 128);
	while (u64q_pop(&q, &v))
		assert_true(v == next_out++);
	assert_true(next_out == next_in);

	/* grow through push_front while wrapped the other way */
	for (int i = 0; i < 64; i++)
		assert_int_equal(u64q_push(&q, 1000 + (uint64_t)i), 0);
	for (int i = 0; i < 10; i++)
		assert_true(u64q_pop(&q, &v) && v == 1000 + (uint64_t)i);
	for (int i = 0; i < 80; i++)
		assert_int_equal(u64q_push_front(&q, 999 - (uint64_t)i), 0);
	assert_int_equal(q.cap, 256);
	for (uint64_t i = 920; i < 1064; i++) {
		if (i == 1000)
			i = 1010; /* popped above */
		assert_true(u64q_pop(&q, &v) && v == i);
	}
	assert_int_equal(u64q_len(&q), 0);
	u64q_fini(&q);
}

static void
test_u64q_random(void **state)
{
	struct u64q q;
	struct refq r;
	uint64_t    counter = 1;
	(void)state;

	r.a = malloc(REFQ_SIZE * sizeof(uint64_t));
	assert_non_null(r.a);
	r.head = r.tail = REFQ_SIZE / 2;
	rng_seed(0xfeed);
	u64q_init(&q);
	for (long op = 0; op < 200000; op++) {
		uint64_t x = rng() % 100;
		uint64_t v;
		/* phases that favour growth, then draining */
		int grow = (op / 20000) % 2 == 0;
		if (x < (grow ? 40u : 25u)) {
			assert_int_equal(u64q_push(&q, counter), 0);
			r.a[r.tail++] = counter++;
		} else if (x < (grow ? 60u : 40u)) {
			assert_int_equal(u64q_push_front(&q, counter), 0);
			r.a[--r.head] = counter++;
		} else {
			bool ok = u64q_pop(&q, &v);
			assert_int_equal(ok, r.head != r.tail);
			if (ok)
				assert_true(v == r.a[r.head++]);
		}
		assert_int_equal(u64q_len(&q), r.tail - r.head);
		assert_true(r.head > 0 && r.tail < REFQ_SIZE);
	}
	while (r.head != r.tail) {
		uint64_t v;
		assert_true(u64q_pop(&q, &v));
		assert_true(v == r.a[r.head++]);
	}
	assert_int_equal(u64q_len(&q), 0);
	u64q_fini(&q);
	free(r.a);
}

/* ----------------------------------------------------------- timerheap */

/* A callback the heap carries but never calls. */
static void
timer_probe(void *owner, uint64_t id, uint32_t gen)
{
	(void)owner;
	(void)id;
	(void)gen;
	fail();
}

static void
test_timerheap_sorted(void **state)
{
	struct timerheap h;
	struct timer     t;
	const size_t     n    = 20000;
	int             *seen = calloc(n, sizeof(*seen));
	uint64_t         last = 0;
	(void)state;

	assert_non_null(seen);
	timerheap_init(&h);
	assert_null(timerheap_peek(&h));
	assert_false(timerheap_pop(&h, &t));

	rng_seed(7);
	for (size_t i = 0; i < n; i++) {
		/* many equal deadlines, and the extremes */
		uint64_t when = i == 0 ? UINT64_MAX
		              : i == 1 ? 0
		                       : rng() % 5000;
		struct timer x = { when, i, i % 2 ? timer_probe : NULL,
			~(uint32_t)i };
		assert_int_equal(timerheap_push(&h, x), 0);
	}
	assert_int_equal(h.len, n);
	for (size_t i = 0; i < n; i++) {
		const struct timer *p = timerheap_peek(&h);
		assert_non_null(p);
		struct timer top = *p;
		assert_true(timerheap_pop(&h, &t));
		/* peek showed what pop removed */
		assert_true(top.when == t.when && top.id == t.id);
		assert_true(t.when >= last);
		last = t.when;
		/* each timer comes out once, intact */
		assert_true(t.id < n);
		assert_false(seen[t.id]);
		seen[t.id] = 1;
		assert_true(t.fn == (t.id % 2 ? timer_probe : NULL));
		assert_int_equal(t.gen, ~(uint32_t)t.id);
		if (t.id == 1)
			assert_int_equal(i, 0);
		if (t.id == 0)
			assert_int_equal(i, n - 1);
	}
	assert_false(timerheap_pop(&h, &t));
	assert_null(timerheap_peek(&h));
	timerheap_fini(&h);
	timerheap_fini(&h);
	free(seen);
}

static void
test_timerheap_interleaved(void **state)
{
	struct timerheap h;
	uint64_t        *ref   = malloc(100000 * sizeof(*ref));
	size_t           nref  = 0;
	uint64_t         clock = 0;
	(void)state;

	/* as the scheduler uses it: deadlines after a moving "now", pops
	 * of the earliest, checked against a linear scan */
	assert_non_null(ref);
	rng_seed(99);
	timerheap_init(&h);
	for (long op = 0; op < 100000; op++) {
		if (rng() % 100 < 55) {
			struct timer x = { clock + rng() % 1000, (uint64_t)op,
				NULL, 0 };
			assert_int_equal(timerheap_push(&h, x), 0);
			ref[nref++] = x.when;
		} else {
			struct timer t;
			size_t       min = 0;
			bool         ok  = timerheap_pop(&h, &t);
			assert_int_equal(ok, nref > 0);
			if (!ok)
				continue;
			for (size_t i = 1; i < nref; i++)
				if (ref[i] < ref[min])
					min = i;
			assert_true(t.when == ref[min]);
			ref[min] = ref[--nref];
			clock    = t.when;
		}
		assert_int_equal(h.len, nref);
		if (nref > 2000) /* keep the linear scan cheap */
			while (nref > 1000) {
				struct timer t;
				size_t       min = 0;
				assert_true(timerheap_pop(&h, &t));
				for (size_t i = 1; i < nref; i++)
					if (ref[i] < ref[min])
						min = i;
				assert_true(t.when == ref[min]);
				ref[min] = ref[--nref];
			}
	}
	timerheap_fini(&h);
	free(ref);
}

/* -------------------------------------------------------------- URLs */

static void
test_url_check(void **state)
{
	char err[512];
	char url[300];
	(void)state;

	assert_int_equal(util_url_check("tcp://127.0.0.1:7710", err,
	                     sizeof(err)),
	    0);
	assert_int_equal(util_url_check("tcp://localhost:1", err,
	                     sizeof(err)),
	    0);
	assert_int_equal(util_url_check("tcp://[::1]:7710", err, sizeof(err)),
	    0);
	assert_int_equal(util_url_check("tcp://*:7710", err, sizeof(err)), 0);
	assert_int_equal(util_url_check("ipc:///tmp/ferry-local.sock", err,
	                     sizeof(err)),
	    0);
	assert_int_equal(util_url_check("ipc://relative.sock", err,
	                     sizeof(err)),
	    0);

	/* an ipc path of exactly 107 bytes fits sun_path with its NUL */
	strcpy(url, "ipc://");
	memset(url + 6, 'p', 107);
	url[6]       = '/';
	url[6 + 107] = '\0';
	assert_int_equal(util_url_check(url, err, sizeof(err)), 0);

	/* 108 does not: the message says how long and what the limit is */
	strcpy(url, "ipc://");
	memset(url + 6, 'p', 108);
	url[6]       = '/';
	url[6 + 108] = '\0';
	err[0]       = '\0';
	assert_int_equal(util_url_check(url, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "ipc path is 108 bytes"));
	assert_non_null(strstr(err, "the limit is 107"));
	assert_non_null(strstr(err, url));

	/* much longer */
	strcpy(url, "ipc:///");
	memset(url + 7, 'q', 250);
	url[257] = '\0';
	assert_int_equal(util_url_check(url, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "ipc path is 251 bytes"));

	/* garbage names the address */
	err[0] = '\0';
	assert_int_equal(util_url_check("garbage", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "invalid address 'garbage'"));
	err[0] = '\0';
	assert_int_equal(util_url_check("", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "invalid address ''"));
	err[0] = '\0';
	assert_int_equal(util_url_check("tcp:/127.0.0.1:1", err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "invalid address"));

	/* a short error buffer is still terminated */
	memset(err, 'Z', sizeof(err));
	assert_int_equal(util_url_check("garbage", err, 8), -1);
	assert_int_equal(strlen(err), 7);
}

static void
test_nng_err(void **state)
{
	(void)state;
	assert_int_equal(util_nng_err(0), FERRY_OK);
	assert_int_equal(util_nng_err(NNG_ENOMEM), FERRY_ENOMEM);
	assert_int_equal(util_nng_err(NNG_EINVAL), FERRY_EINVAL);
	assert_int_equal(util_nng_err(NNG_EADDRINVAL), FERRY_EINVAL);
	assert_int_equal(util_nng_err(NNG_ETIMEDOUT), FERRY_ETIMEDOUT);
	assert_int_equal(util_nng_err(NNG_ECLOSED), FERRY_ECLOSED);
	assert_int_equal(util_nng_err(NNG_ECONNREFUSED), FERRY_ECONNECT);
	assert_int_equal(util_nng_err(NNG_ECONNRESET), FERRY_ECONNECT);
	assert_int_equal(util_nng_err(NNG_ECONNSHUT), FERRY_ECONNECT);
	assert_int_equal(util_nng_err(NNG_EUNREACHABLE), FERRY_ECONNECT);
	assert_int_equal(util_nng_err(NNG_ENOENT), FERRY_ECONNECT);
	assert_int_equal(util_nng_err(NNG_EMSGSIZE), FERRY_ETOOBIG);
	assert_int_equal(util_nng_err(NNG_EPROTO), FERRY_EPROTO);
	/* everything else is a transport error, never success */
	assert_int_equal(util_nng_err(NNG_EBUSY), FERRY_ETRANSPORT);
	assert_int_equal(util_nng_err(NNG_EAGAIN), FERRY_ETRANSPORT);
	assert_int_equal(util_nng_err(NNG_ECANCELED), FERRY_ETRANSPORT);
	assert_int_equal(util_nng_err(NNG_ESYSERR + 5), FERRY_ETRANSPORT);
	assert_int_equal(util_nng_err(12345), FERRY_ETRANSPORT);
}

/* ------------------------------------------------------------- misc */

static void
test_strlcpy_clock_random(void **state)
{
	char     buf[8];
	uint64_t a, b;
	(void)state;

	util_strlcpy(buf, "abc", sizeof(buf));
	assert_string_equal(buf, "abc");
	util_strlcpy(buf, "abcdefghij", sizeof(buf));
	assert_string_equal(buf, "abcdefg");
	util_strlcpy(buf, "12345678", sizeof(buf));
	assert_string_equal(buf, "1234567");
	buf[0] = 'x';
	util_strlcpy(buf, "zzz", 0); /* no room: untouched */
	assert_int_equal(buf[0], 'x');
	util_strlcpy(buf, "zzz", 1);
	assert_string_equal(buf, "");

	a = util_now_us();
	b = util_now_us();
	assert_true(b >= a);
	assert_true(util_now_ms() >= a / 1000);

	for (int i = 0; i < 100; i++)
		assert_true(util_random64() != 0);
	assert_true(util_random64() != util_random64());
}

/* Which addresses stay on this host: the scheduler's warning and the
 * peers' refusal to send the token in clear text depend on it. */
static void
test_url_reach(void **state)
{
	(void)state;
	assert_int_equal(util_url_reach("tcp://127.0.0.1:7710"),
	    UTIL_REACH_LOOPBACK);
	assert_int_equal(util_url_reach("tcp://127.8.9.10:1"),
	    UTIL_REACH_LOOPBACK);
	assert_int_equal(util_url_reach("tcp4://127.0.0.1:7710"),
	    UTIL_REACH_LOOPBACK);
	assert_int_equal(util_url_reach("tcp://localhost:7710"),
	    UTIL_REACH_LOOPBACK);
	assert_int_equal(util_url_reach("tcp://LocalHost:7710"),
	    UTIL_REACH_LOOPBACK);
	assert_int_equal(util_url_reach("tcp://[::1]:7710"),
	    UTIL_REACH_LOOPBACK);
	assert_int_equal(util_url_reach("tls+tcp://127.0.0.1:7710"),
	    UTIL_REACH_LOOPBACK);
	assert_int_equal(util_url_reach("ipc:///tmp/ferry.sock"),
	    UTIL_REACH_LOCAL);
	assert_int_equal(util_url_reach("abstract://ferry"), UTIL_REACH_LOCAL);
	assert_int_equal(util_url_reach("inproc://ferry"), UTIL_REACH_LOCAL);
	assert_int_equal(util_url_reach("tcp://0.0.0.0:7710"),
	    UTIL_REACH_NETWORK);
	assert_int_equal(util_url_reach("tcp://*:7710"), UTIL_REACH_NETWORK);
	assert_int_equal(util_url_reach("tcp://:7710"), UTIL_REACH_NETWORK);
	assert_int_equal(util_url_reach("tcp://[::]:7710"),
	    UTIL_REACH_NETWORK);
	assert_int_equal(util_url_reach("tcp://10.0.0.7:7710"),
	    UTIL_REACH_NETWORK);
	assert_int_equal(util_url_reach("tcp://128.0.0.1:7710"),
	    UTIL_REACH_NETWORK);
	assert_int_equal(util_url_reach("tcp://localhost.example.org:1"),
	    UTIL_REACH_NETWORK);
	assert_int_equal(util_url_reach("tcp://127.0.0.1.evil.org:1"),
	    UTIL_REACH_NETWORK);
	assert_int_equal(util_url_reach("tcp://[::2]:7710"),
	    UTIL_REACH_NETWORK);
	assert_int_equal(util_url_reach("not a url"), UTIL_REACH_NETWORK);
	assert_int_equal(util_url_reach(NULL), UTIL_REACH_NETWORK);
	assert_true(util_url_is_tls("tls+tcp://10.0.0.7:7710"));
	assert_true(util_url_is_tls("tls+tcp6://[::1]:7710"));
	assert_false(util_url_is_tls("tcp://10.0.0.7:7710"));
	assert_false(util_url_is_tls(NULL));
}

/* The token goes over TLS, ipc or loopback; never in clear text to
 * another host. */
static void
test_token_may_send(void **state)
{
	char err[512];
	(void)state;
	assert_true(util_token_may_send("tls+tcp://10.0.0.7:7710"));
	assert_true(util_token_may_send("tls+tcp://queue.example.org:7710"));
	assert_true(util_token_may_send("ipc:///run/ferry.sock"));
	assert_true(util_token_may_send("tcp://127.0.0.1:7710"));
	assert_true(util_token_may_send("tcp://[::1]:7710"));
	assert_false(util_token_may_send("tcp://10.0.0.7:7710"));
	assert_false(util_token_may_send("tcp://queue.example.org:7710"));
	assert_false(util_token_may_send("tcp4://192.0.2.1:7710"));
	assert_int_equal(sec_token_check_url("tcp://10.0.0.7:7710",
	                     "0123456789abcdef", err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "refusing to send the token"));
	assert_non_null(strstr(err, "tcp://10.0.0.7:7710"));
	assert_int_equal(sec_token_check_url("tcp://10.0.0.7:7710", "", err,
	                     sizeof(err)),
	    0);
	assert_int_equal(sec_token_check_url("tcp://10.0.0.7:7710", NULL,
	                     err, sizeof(err)),
	    0);
	assert_int_equal(sec_token_check_url("tls+tcp://10.0.0.7:7710",
	                     "0123456789abcdef", err, sizeof(err)),
	    0);
}

static void
token_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

/* Reading and comparing tokens. */
static void
test_token(void **state)
{
	char tok[SEC_TOKEN_MAX + 1], err[512], path[] = "/tmp/ferry-tok-XXXXXX";
	char big[SEC_TOKEN_MAX + 8];
	int  fd;
	(void)state;
	assert_true(sec_token_equal("0123456789abcdef", "0123456789abcdef"));
	assert_false(sec_token_equal("0123456789abcdef", "0123456789abcdeg"));
	assert_false(sec_token_equal("0123456789abcdef", "0123456789abcde"));
	assert_false(sec_token_equal("", "0123456789abcdef"));
	assert_true(sec_token_equal("", ""));

	assert_true((fd = mkstemp(path)) >= 0);
	close(fd);
	token_file(path, "0123456789abcdef-token\n\n", 0600);
	assert_int_equal(sec_token_load(path, tok, err, sizeof(err)), 0);
	assert_string_equal(tok, "0123456789abcdef-token");
	token_file(path, "short\n", 0600);
	assert_int_equal(sec_token_load(path, tok, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "at least 16"));
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	token_file(path, big, 0600);
	assert_int_equal(sec_token_load(path, tok, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "longer than 256"));
	unlink(path);
	assert_int_equal(sec_token_load(path, tok, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_string_equal(tok, "");
}

/* /proc/PID/stat read right even when the command name holds spaces and
 * parentheses; a zombie shows as 'Z', a reaped process not at all; and a
 * "Key: N kB" line of /proc/PID/status matches its whole key only. */
static void
test_proc_stat(void **state)
{
	struct util_proc_stat ps, self;
	int                   fds[2];
	char                  c;
	pid_t                 kid;
	(void)state;

	assert_int_equal(pipe(fds), 0);
	if ((kid = fork()) == 0) {
		prctl(PR_SET_NAME, "a) 9 (8 7", 0, 0, 0);
		if (write(fds[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	assert_true(kid > 0);
	assert_int_equal(read(fds[0], &c, 1), 1);
	assert_int_equal(util_proc_stat(getpid(), &self), 0);
	assert_int_equal(util_proc_stat(kid, &ps), 0);
	assert_true(ps.state == 'S' || ps.state == 'R');
	assert_int_equal(ps.ppid, getpid());
	assert_int_equal(ps.pgid, getpgrp());
	assert_true(ps.start >= self.start);
	assert_true(util_proc_kib(getpid(), "status", "VmRSS") > 0);
	assert_int_equal(util_proc_kib(getpid(), "status", "VmRS"), -1);
	assert_int_equal(util_proc_kib(getpid(), "no-such-file", "VmRSS"), -1);

	kill(kid, SIGKILL);
	for (int i = 0; i < 1000 && ps.state != 'Z'; i++) {
		usleep(10000);
		assert_int_equal(util_proc_stat(kid, &ps), 0);
	}
	assert_int_equal(ps.state, 'Z');
	assert_int_equal(waitpid(kid, NULL, 0), kid);
	assert_int_equal(util_proc_stat(kid, &ps), -1);
	assert_int_equal(util_proc_kib(kid, "status", "VmRSS"), -1);
	assert_int_equal(util_proc_stat(0, &ps), -1);
	close(fds[0]);
	close(fds[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idmap_basic),
		cmocka_unit_test(test_idmap_key_zero),
		cmocka_unit_test(test_idmap_growth),
		cmocka_unit_test(test_idmap_random),
		cmocka_unit_test(test_idmap_probe_chains),
		cmocka_unit_test(test_idmap_shrink),
		cmocka_unit_test(test_u64q_basic),
		cmocka_unit_test(test_u64q_wraparound_growth),
		cmocka_unit_test(test_u64q_random),
		cmocka_unit_test(test_timerheap_sorted),
		cmocka_unit_test(test_timerheap_interleaved),
		cmocka_unit_test(test_url_check),
		cmocka_unit_test(test_url_reach),
		cmocka_unit_test(test_token_may_send),
		cmocka_unit_test(test_token),
		cmocka_unit_test(test_nng_err),
		cmocka_unit_test(test_strlcpy_clock_random),
		cmocka_unit_test(test_proc_stat),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
