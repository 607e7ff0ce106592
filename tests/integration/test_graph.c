/*
 * test_graph.c - task graphs through the public C API (ferry_future_ref,
 * run_anyway, FERRY_EDEPENDENCY, the waiting gauge) against a real
 * cluster: chains, a diamond, a fan-in tree over 10,000 leaves,
 * references nested in maps and arrays, references to tasks that have
 * finished (done, or failed and known to the client), failure and
 * cancellation passed down a chain without running it, run_anyway, a
 * dependency whose worker process is killed, a chain that runs while no
 * client is connected, the scheduler killed and started again on its
 * journal in the middle of a chain, while tasks wait and while submits
 * are in flight, the queue limit counting waiting tasks (and refused
 * links sent again in order), and a session expiring with thousands of
 * tasks waiting.
 *
 * The fault-injection task fi_gsum [seq, delay_us, x...] logs each start
 * (fi_log.h) and returns [sum of the xs, pid], so a test can tell what
 * ran, where and how often, as well as what it computed; given a path
 * instead of a delay it waits for that file, a gate the test opens when
 * the task's dependents are where the test wants them.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "fi_common.h"
#include "ferry/ferry.h"
#include "harness.h"
#include "util.h"

static const char *fi_lib;
static char        fi_log[512]; /* this test's start records */

/* ------------------------------------------------------------ helpers */

/* The start records of the processes started from now on go to a log of
 * this test's own. */
static void
use_log(const char *name)
{
	snprintf(fi_log, sizeof(fi_log), "%s/%s-starts.bin", h_dir(), name);
	unlink(fi_log);
	setenv("FERRY_FI_LOG", fi_log, 1);
}

/* How many times fi_gsum seq started, and (first, if not NULL) when it
 * first started and (last) last, CLOCK_MONOTONIC us. */
static int
starts(uint64_t seq, uint64_t *first, uint64_t *last)
{
	size_t            n;
	struct fi_record *r = fi_read_records(fi_log, &n);
	int               k = 0;

	if (first != NULL)
		*first = 0;
	if (last != NULL)
		*last = 0;
	for (size_t i = 0; r != NULL && i < n; i++) {
		if (r[i].seq != seq)
			continue;
		if (first != NULL && (k == 0 || r[i].us < *first))
			*first = r[i].us;
		if (last != NULL && r[i].us > *last)
			*last = r[i].us;
		k++;
	}
	free(r);
	return k;
}

/* The process that last started fi_gsum seq, waiting for its start up to
 * timeout_ms; 0 if it did not start. */
static pid_t
runner_of(uint64_t seq, int timeout_ms)
{
	uint64_t end = util_now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		int               last = util_now_ms() >= end;
		size_t            n;
		struct fi_record *r   = fi_read_records(fi_log, &n);
		pid_t             pid = 0;
		for (size_t i = 0; r != NULL && i < n; i++)
			if (r[i].seq == seq)
				pid = (pid_t)r[i].pid;
		free(r);
		if (pid != 0 || last)
			return pid;
		usleep(10000);
	}
}

/* A scheduler and n worker processes that load the example tasks and
 * the fault-injection ones; a client that has seen them register. */
static ferry_client *
gcluster(const char *url, const char *const *sched_extra, int n)
{
	const char *const wx[] = { "--library", fi_lib, NULL };
	return h_cluster(url, sched_extra, n, wx);
}

/* The worker processes of gcluster, started on their own. */
static pid_t
gworkers(const char *url, int n)
{
	const char *const wx[] = { "--library", fi_lib, NULL };
	return h_workers(url, n, wx);
}

/* Connect with options (size and a 10 s connect timeout filled in). */
static ferry_client *
connect_with(const char *url, struct ferry_client_opts o)
{
	ferry_client *c = NULL;
	char          err[256] = "";
	int           rv;

	o.size               = sizeof(o);
	o.connect_timeout_ms = o.connect_timeout_ms ? o.connect_timeout_ms
	                                            : 10000;
	o.errbuf             = err;
	o.errbuf_len         = sizeof(err);
	if ((rv = ferry_client_connect_opts(&c, url, &o)) != 0)
		fail_msg("connect %s: %s (%s)", url, ferry_strerror(rv), err);
	return c;
}

/* The scheduler's counters. */
static struct ferry_status
status_of(ferry_client *c)
{
	struct ferry_status st;

	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	assert_int_equal(ferry_cluster_status(c, &st, NULL, 10000), 0);
	return st;
}

/* Task arguments being built: msgpack, with references written in
 * place by ferry_future_ref. */
struct args {
	msgpack_sbuffer sb;
	msgpack_packer  pk;
};

static void
a_init(struct args *a)
{
	msgpack_sbuffer_init(&a->sb);
	msgpack_packer_init(&a->pk, &a->sb, msgpack_sbuffer_write);
}

static void
a_ref(struct args *a, const ferry_future *f)
{
	uint8_t ref[FERRY_FUTURE_REF_MAX];
	size_t  n = 0;

	assert_int_equal(ferry_future_ref(ref, sizeof(ref), &n, f), 0);
	assert_true(n > 0 && n <= sizeof(ref));
	msgpack_sbuffer_write(&a->sb, (const char *)ref, n);
}

static void
a_str(struct args *a, const char *s)
{
	msgpack_pack_str_with_body(&a->pk, s, strlen(s));
}

/* Submit fn with the arguments built in a (then freed) and options o
 * (NULL: the defaults); fails the test if the submit is refused. */
static ferry_future *
a_submit(ferry_client *c, const char *fn, struct args *a,
    const struct ferry_task_opts *o)
{
	ferry_future *f = NULL;
	int           rv;

	rv = ferry_submit_opts(c, fn, a->sb.data, a->sb.size, o, &f);

	msgpack_sbuffer_destroy(&a->sb);
	if (rv != 0)
		fail_msg("submit %s: %s", fn, ferry_strerror(rv));
	return f;
}

/* add [ref(in), k] */
static ferry_future *
add_ref(ferry_client *c, const ferry_future *in, uint64_t k)
{
	struct args a;

	a_init(&a);
	msgpack_pack_array(&a.pk, 2);
	a_ref(&a, in);
	msgpack_pack_uint64(&a.pk, k);
	return a_submit(c, "add", &a, NULL);
}

/* fi_gsum [seq, delay_us, ref(in) (if in is not NULL), k] */
static ferry_future *
gsum(ferry_client *c, uint64_t seq, uint64_t delay_us, const ferry_future *in,
    uint64_t k, const struct ferry_task_opts *o)
{
	struct args a;

	a_init(&a);
	msgpack_pack_array(&a.pk, in != NULL ? 4 : 3);
	msgpack_pack_uint64(&a.pk, seq);
	msgpack_pack_uint64(&a.pk, delay_us);
	if (in != NULL)
		a_ref(&a, in);
	msgpack_pack_uint64(&a.pk, k);
	return a_submit(c, "fi_gsum", &a, o);
}

/* A gate: a file fi_gsum can wait for (see gsum_gated); its path in
 * buf.  The test opens it with gate_open. */
static const char *
gate_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s.gate", h_dir(), name);
	unlink(buf);
	return buf;
}

static void
gate_open(const char *path)
{
	h_write_file(path, 0644, "open\n");
}

/* fi_gsum [seq, gate, ref(in) (if in is not NULL), k]: it runs until the
 * gate is opened (fi_tasks.c). */
static ferry_future *
gsum_gated(ferry_client *c, uint64_t seq, const char *gate,
    const ferry_future *in, uint64_t k, const struct ferry_task_opts *o)
{
	struct args a;

	a_init(&a);
	msgpack_pack_array(&a.pk, in != NULL ? 4 : 3);
	msgpack_pack_uint64(&a.pk, seq);
	a_str(&a, gate);
	if (in != NULL)
		a_ref(&a, in);
	msgpack_pack_uint64(&a.pk, k);
	return a_submit(c, "fi_gsum", &a, o);
}

/* Fail the test unless f's task is done (saying how it ended). */
static void
expect_done(const ferry_future *f)
{
	if (ferry_future_state(f) != FERRY_DONE)
		fail_msg("task %" PRIu64 ": state %d, error %d: %s",
		    ferry_future_id(f), ferry_future_state(f),
		    ferry_future_errcode(f),
		    ferry_future_error(f) ? ferry_future_error(f) : "-");
}

/* The integer f's task returned (an integral float counts). */
static int64_t
int_of(const ferry_future *f)
{
	const void    *data;
	size_t         len, off = 0;
	msgpack_zone   zone;
	msgpack_object o;
	int64_t        v = 0;

	expect_done(f);
	assert_int_equal(ferry_future_result(f, &data, &len), 0);
	msgpack_zone_init(&zone, 256);
	assert_int_equal(msgpack_unpack(data, len, &off, &zone, &o),
	    MSGPACK_UNPACK_SUCCESS);
	switch (o.type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		v = (int64_t)o.via.u64;
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		v = o.via.i64;
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		v = (int64_t)o.via.f64;
		assert_true((double)v == o.via.f64);
		break;
	default:
		fail_msg("task %" PRIu64 ": result of type %d, not a number",
		    ferry_future_id(f), (int)o.type);
	}
	msgpack_zone_destroy(&zone);
	return v;
}

/* The sum fi_gsum returned. */
static uint64_t
gsum_of(const ferry_future *f)
{
	const void *data;
	size_t      len;
	uint64_t    v, pid;

	expect_done(f);
	assert_int_equal(ferry_future_result(f, &data, &len), 0);
	assert_int_equal(fi_unpack_pair(data, len, &v, &pid), 0);
	return v;
}

/* Fail the test unless f ended failed with code, its message holding
 * each of has (up to 3, ending at NULL). */
static void
expect_failed(const ferry_future *f, int state, int code,
    const char *const *has)
{
	const char *why = ferry_future_error(f);

	if (ferry_future_state(f) != state || ferry_future_errcode(f) != code)
		fail_msg("task %" PRIu64 ": state %d, error %d (%s), wanted "
		         "state %d, error %d",
		    ferry_future_id(f), ferry_future_state(f),
		    ferry_future_errcode(f), why ? why : "-", state, code);
	for (int i = 0; i < 3 && has != NULL && has[i] != NULL; i++)
		if (why == NULL || strstr(why, has[i]) == NULL)
			fail_msg("task %" PRIu64 ": the message \"%s\" lacks "
			         "\"%s\"",
			    ferry_future_id(f), why ? why : "(none)", has[i]);
}

/* "input task N" for f's id, in buf. */
static const char *
input_task(char *buf, size_t len, const ferry_future *f)
{
	snprintf(buf, len, "input task %" PRIu64 " ", ferry_future_id(f));
	return buf;
}

static void
free_all(ferry_future **f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ferry_future_free(f[i]);
}

/* The value {"error": code, "message": str} that run_anyway put in the
 * place of element i of f's echoed arguments: code, and the message
 * into msg (cap bytes). */
static int64_t
error_value(const ferry_future *f, uint32_t i, char *msg, size_t cap)
{
	const void    *data;
	size_t         len, off = 0;
	msgpack_zone   zone;
	msgpack_object o;
	const msgpack_object *e, *code, *m;
	int64_t        rv;

	expect_done(f);
	assert_int_equal(ferry_future_result(f, &data, &len), 0);
	msgpack_zone_init(&zone, 512);
	assert_int_equal(msgpack_unpack(data, len, &off, &zone, &o),
	    MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(o.type, MSGPACK_OBJECT_ARRAY);
	assert_true(o.via.array.size > i);
	e = &o.via.array.ptr[i];
	assert_int_equal(e->type, MSGPACK_OBJECT_MAP);
	assert_int_equal(e->via.map.size, 2);
	assert_non_null(code = h_mp_get(e, "error"));
	assert_non_null(m = h_mp_get(e, "message"));
	assert_int_equal(code->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
	assert_int_equal(m->type, MSGPACK_OBJECT_STR);
	rv = code->via.i64;
	snprintf(msg, cap, "%.*s", (int)m->via.str.size, m->via.str.ptr);
	msgpack_zone_destroy(&zone);
	return rv;
}

/* ------------------------------------------------------------- tests */

#define CHAIN 1000

/* 1,000 links, each adding 1 to the one before, all submitted before
 * waiting: each holds its position, the scheduler ran each once and
 * holds nothing waiting afterwards. */
static void
test_chain(void **state)
{
	char                url[256];
	ferry_client       *c;
	ferry_future      **f = calloc(CHAIN, sizeof(*f));
	struct ferry_status st;
	(void)state;

	assert_non_null(f);
	h_ipc_url(url, sizeof(url), "chain");
	c    = gcluster(url, NULL, 2);
	f[0] = h_submit(c, "add", 2, 0, 1, NULL);
	for (size_t i = 1; i < CHAIN; i++)
		f[i] = add_ref(c, f[i - 1], 1);
	assert_int_equal(ferry_wait_all(f, CHAIN, 180000), 0);
	for (size_t i = 0; i < CHAIN; i++) {
		if (int_of(f[i]) != (int64_t)i + 1)
			fail_msg("link %zu holds %" PRId64, i + 1, int_of(f[i]));
		assert_int_equal(ferry_future_attempts(f[i]), 1);
	}
	assert_int_equal(int_of(f[CHAIN - 1]), CHAIN);
	st = status_of(c);
	assert_int_equal(st.waiting, 0);
	assert_int_equal(st.done, CHAIN);
	assert_int_equal(st.failed, 0);
	assert_int_equal(st.queued, 0);
	assert_int_equal(h_client_stats(c).duplicates, 0);
	free_all(f, CHAIN);
	free(f);
	ferry_client_close(c);
}

/* A -> B, A -> C, B + C -> D; and D waits for both while B and C wait
 * for A. */
static void
test_diamond(void **state)
{
	char          url[256];
	ferry_client *c;
	ferry_future *a, *b, *cc, *d;
	struct args   ar;
	(void)state;

	h_ipc_url(url, sizeof(url), "diamond");
	c  = gcluster(url, NULL, 2);
	a  = h_submit(c, "sleep_ms", 1, 300, 0, NULL); /* 300 */
	b  = add_ref(c, a, 10);                        /* 310 */
	cc = add_ref(c, a, 100);                       /* 400 */
	a_init(&ar);
	msgpack_pack_array(&ar.pk, 2);
	a_ref(&ar, b);
	a_ref(&ar, cc);
	d = a_submit(c, "add", &ar, NULL); /* 710 */
	/* B and C wait for A, D for both (unless A was done already) */
	assert_int_equal(ferry_future_wait(d, 60000), 0);
	assert_int_equal(int_of(a), 300);
	assert_int_equal(int_of(b), 310);
	assert_int_equal(int_of(cc), 400);
	assert_int_equal(int_of(d), 710);
	assert_int_equal(status_of(c).waiting, 0);
	assert_int_equal(status_of(c).done, 4);
	ferry_future_free(a);
	ferry_future_free(b);
	ferry_future_free(cc);
	ferry_future_free(d);
	ferry_client_close(c);
}

#define LEAVES 10000
#define FAN 16

/* 10,000 leaves (square i) summed by a tree of sum tasks, 16 inputs
 * each (the references are the elements of the array sum takes): every
 * inner task holds exactly the sum of its inputs, and the root the sum
 * of the squares. */
static void
test_fan_in(void **state)
{
	char            url[256];
	ferry_client   *c;
	ferry_future  **all = calloc(2 * LEAVES, sizeof(*all));
	ferry_future  **lvl, **next;
	size_t          n_all = 0, n = LEAVES, level = 0;
	uint8_t        (*buf)[H_ARGS_MAX] = calloc(LEAVES, H_ARGS_MAX);
	const void    **ap  = calloc(LEAVES, sizeof(*ap));
	size_t         *al  = calloc(LEAVES, sizeof(*al));
	struct args    *pa  = calloc(LEAVES / FAN + 1, sizeof(*pa));
	uint64_t        want = 0;
	(void)state;

	assert_true(all && buf && ap && al && pa);
	h_ipc_url(url, sizeof(url), "fanin");
	c = gcluster(url, NULL, 2);
	for (size_t i = 0; i < LEAVES; i++) {
		al[i] = h_pack_args(buf[i], 1, i, 0);
		ap[i] = buf[i];
		want += (uint64_t)i * i;
	}
	assert_int_equal(ferry_map(c, "square", LEAVES, ap, al, all), 0);
	lvl   = all;
	n_all = LEAVES;
	while (n > 1) {
		size_t parents = (n + FAN - 1) / FAN;
		next           = all + n_all;
		for (size_t p = 0; p < parents; p++) {
			size_t k = n - p * FAN < FAN ? n - p * FAN : FAN;
			a_init(&pa[p]);
			msgpack_pack_array(&pa[p].pk, k);
			for (size_t i = 0; i < k; i++)
				a_ref(&pa[p], lvl[p * FAN + i]);
			ap[p] = pa[p].sb.data;
			al[p] = pa[p].sb.size;
		}
		if (level == 0) { /* the first level as one map */
			assert_int_equal(
			    ferry_map(c, "sum", parents, ap, al, next), 0);
			for (size_t p = 0; p < parents; p++)
				msgpack_sbuffer_destroy(&pa[p].sb);
		} else {
			for (size_t p = 0; p < parents; p++)
				next[p] = a_submit(c, "sum", &pa[p], NULL);
		}
		n_all += parents;
		lvl   = next;
		n     = parents;
		level++;
	}
	assert_int_equal(level, 4); /* 10000 -> 625 -> 40 -> 3 -> 1 */
	assert_int_equal(ferry_future_wait(lvl[0], 300000), 0);
	assert_int_equal(int_of(lvl[0]), (int64_t)want);
	assert_int_equal(want, UINT64_C(333283335000));
	/* every inner task: the sum of its inputs */
	assert_int_equal(ferry_wait_all(all, n_all, 60000), 0);
	{
		size_t below = 0, at = LEAVES, width = LEAVES;
		while (width > 1) {
			size_t parents = (width + FAN - 1) / FAN;
			for (size_t p = 0; p < parents; p++) {
				int64_t s = 0;
				for (size_t i = p * FAN; i < width &&
				     i < (p + 1) * FAN; i++)
					s += int_of(all[below + i]);
				assert_int_equal(int_of(all[at + p]), s);
			}
			below = at;
			at += parents;
			width = parents;
		}
		assert_int_equal(at, n_all);
	}
	assert_int_equal(status_of(c).waiting, 0);
	assert_int_equal(status_of(c).done, n_all);
	assert_int_equal(h_client_stats(c).duplicates, 0);
	free_all(all, n_all);
	free(all);
	free(buf);
	free(ap);
	free(al);
	free(pa);
	ferry_client_close(c);
}

/* {"a": [ref(a), {"b": ref(b)}], "c": ref(a), "d": "x"} (a NULL future:
 * 42 or 3 in its place). */
static void
pack_nested(struct args *ar, const ferry_future *a, const ferry_future *b)
{
	msgpack_pack_map(&ar->pk, 3);
	a_str(ar, "a");
	msgpack_pack_array(&ar->pk, 2);
	if (a != NULL)
		a_ref(ar, a);
	else
		msgpack_pack_uint64(&ar->pk, 42);
	msgpack_pack_map(&ar->pk, 1);
	a_str(ar, "b");
	if (b != NULL)
		a_ref(ar, b);
	else
		msgpack_pack_uint64(&ar->pk, 3);
	a_str(ar, "c");
	if (a != NULL)
		a_ref(ar, a);
	else
		msgpack_pack_uint64(&ar->pk, 42);
	a_str(ar, "d");
	a_str(ar, "x");
}

/* Fail unless f's result is exactly the msgpack in want. */
static void
expect_bytes(const ferry_future *f, const struct args *want)
{
	const void *data;
	size_t      len;

	expect_done(f);
	assert_int_equal(ferry_future_result(f, &data, &len), 0);
	if (len != want->sb.size || memcmp(data, want->sb.data, len) != 0) {
		char   got[512] = "", exp[512] = "";
		size_t off      = 0;
		msgpack_unpacked u;
		msgpack_unpacked_init(&u);
		if (msgpack_unpack_next(&u, data, len, &off) ==
		    MSGPACK_UNPACK_SUCCESS)
			msgpack_object_print_buffer(got, sizeof(got), u.data);
		off = 0;
		if (msgpack_unpack_next(&u, want->sb.data, want->sb.size,
		        &off) == MSGPACK_UNPACK_SUCCESS)
			msgpack_object_print_buffer(exp, sizeof(exp), u.data);
		msgpack_unpacked_destroy(&u);
		fail_msg("task %" PRIu64 ": got %s, wanted %s",
		    ferry_future_id(f), got, exp);
	}
}

/* References nested in maps and arrays come back (echo) as the values in
 * place, the same reference twice (and three times) in one task counts
 * each time; whether the inputs were still running at the submit or had
 * finished. */
static void
test_nested(void **state)
{
	char          url[256];
	ferry_client *c;
	ferry_future *a, *b, *e, *twice, *deep, *e2, *twice2;
	struct args   ar, want, want_deep;
	(void)state;

	h_ipc_url(url, sizeof(url), "nested");
	c = gcluster(url, NULL, 2);
	/* inputs still running when their dependents are submitted: a is
	 * 300, after a 300 ms sleep */
	{
		ferry_future *slow = h_submit(c, "sleep_ms", 1, 300, 0, NULL);
		a                  = add_ref(c, slow, 0); /* 300 */
		ferry_future_free(slow); /* a's submit holds it */
	}
	b = h_submit(c, "add", 2, 1, 2, NULL); /* 3 */

	a_init(&ar);
	pack_nested(&ar, a, b);
	e = a_submit(c, "echo", &ar, NULL);
	a_init(&ar);
	msgpack_pack_array(&ar.pk, 2);
	a_ref(&ar, a);
	a_ref(&ar, a);
	twice = a_submit(c, "add", &ar, NULL);
	/* [[[ref b]], {"k": [ref a, ref b, ref a]}] */
	a_init(&ar);
	msgpack_pack_array(&ar.pk, 2);
	msgpack_pack_array(&ar.pk, 1);
	msgpack_pack_array(&ar.pk, 1);
	a_ref(&ar, b);
	msgpack_pack_map(&ar.pk, 1);
	a_str(&ar, "k");
	msgpack_pack_array(&ar.pk, 3);
	a_ref(&ar, a);
	a_ref(&ar, b);
	a_ref(&ar, a);
	deep = a_submit(c, "echo", &ar, NULL);

	assert_int_equal(ferry_future_wait(e, 60000), 0);
	assert_int_equal(ferry_future_wait(twice, 60000), 0);
	assert_int_equal(ferry_future_wait(deep, 60000), 0);
	assert_int_equal(int_of(a), 300);
	assert_int_equal(int_of(twice), 600);

	/* a is 300, not 42: the wanted values follow it */
	a_init(&want);
	msgpack_pack_map(&want.pk, 3);
	a_str(&want, "a");
	msgpack_pack_array(&want.pk, 2);
	msgpack_pack_uint64(&want.pk, 300);
	msgpack_pack_map(&want.pk, 1);
	a_str(&want, "b");
	msgpack_pack_uint64(&want.pk, 3);
	a_str(&want, "c");
	msgpack_pack_uint64(&want.pk, 300);
	a_str(&want, "d");
	a_str(&want, "x");
	expect_bytes(e, &want);

	a_init(&want_deep);
	msgpack_pack_array(&want_deep.pk, 2);
	msgpack_pack_array(&want_deep.pk, 1);
	msgpack_pack_array(&want_deep.pk, 1);
	msgpack_pack_uint64(&want_deep.pk, 3);
	msgpack_pack_map(&want_deep.pk, 1);
	a_str(&want_deep, "k");
	msgpack_pack_array(&want_deep.pk, 3);
	msgpack_pack_uint64(&want_deep.pk, 300);
	msgpack_pack_uint64(&want_deep.pk, 3);
	msgpack_pack_uint64(&want_deep.pk, 300);
	expect_bytes(deep, &want_deep);

	/* the same, now that a and b have finished (and were fetched) */
	a_init(&ar);
	pack_nested(&ar, a, b);
	e2 = a_submit(c, "echo", &ar, NULL);
	a_init(&ar);
	msgpack_pack_array(&ar.pk, 2);
	a_ref(&ar, a);
	a_ref(&ar, a);
	twice2 = a_submit(c, "add", &ar, NULL);
	assert_int_equal(ferry_future_wait(e2, 30000), 0);
	assert_int_equal(ferry_future_wait(twice2, 30000), 0);
	expect_bytes(e2, &want);
	assert_int_equal(int_of(twice2), 600);
	assert_int_equal(status_of(c).waiting, 0);

	msgpack_sbuffer_destroy(&want.sb);
	msgpack_sbuffer_destroy(&want_deep.sb);
	ferry_future_free(a);
	ferry_future_free(b);
	ferry_future_free(e);
	ferry_future_free(twice);
	ferry_future_free(deep);
	ferry_future_free(e2);
	ferry_future_free(twice2);
	ferry_client_close(c);
}

/* A reference to a task that has finished: (a) one whose result the
 * client has taken (waited on, acknowledged, so the scheduler let it
 * go); (b) one the scheduler has finished while the program never
 * looked at its future.  Each dependent gets the right value. */
static void
test_finished_inputs(void **state)
{
	char          url[256];
	ferry_client *c;
	ferry_future *a, *b, *a2, *b2;
	(void)state;

	h_ipc_url(url, sizeof(url), "finished");
	c = gcluster(url, NULL, 2);

	/* (a) waited on; its result leaves the scheduler once the client
	 * acknowledges it */
	a = h_submit(c, "add", 2, 5, 6, NULL);
	assert_int_equal(ferry_future_wait(a, 30000), 0);
	assert_int_equal(int_of(a), 11);
	assert_int_equal(h_wait_status(c, "results_stored", 0, 20000), 0);
	b = add_ref(c, a, 1);
	assert_int_equal(ferry_future_wait(b, 30000), 0);
	assert_int_equal(int_of(b), 12);

	/* (b) finished at the scheduler, its future never waited on */
	a2 = h_submit(c, "add", 2, 7, 8, NULL);
	assert_int_equal(h_wait_status(c, "done", 3, 20000), 0);
	b2 = add_ref(c, a2, 1);
	assert_int_equal(ferry_future_wait(b2, 30000), 0);
	assert_int_equal(int_of(b2), 16);
	assert_int_equal(int_of(a2), 15);

	assert_int_equal(status_of(c).waiting, 0);
	assert_int_equal(status_of(c).done, 4);
	ferry_future_free(a);
	ferry_future_free(b);
	ferry_future_free(a2);
	ferry_future_free(b2);
	ferry_client_close(c);
}

/* A reference to a task that failed, whose failure the client has
 * (waited on): (a) alone, the dependent fails with FERRY_EDEPENDENCY
 * naming it, without running; (b) beside a reference to a task still
 * running, the same once that one finishes; (c) with run_anyway, it runs
 * with {"error": FERRY_ETASK, "message": ...} in the input's place. */
static void
test_known_failed_input(void **state)
{
	char                   url[256], it[64], msg[512];
	ferry_client          *c;
	ferry_future          *x, *s, *b1, *b2, *b3;
	struct ferry_task_opts o;
	struct args            ar;
	(void)state;

	h_ipc_url(url, sizeof(url), "knownfail");
	c = gcluster(url, NULL, 2);
	{
		uint8_t buf[64];
		size_t  len = h_pack_str1(buf, sizeof(buf), "gone wrong");
		assert_int_equal(ferry_submit(c, "fail", buf, len, &x), 0);
	}
	assert_int_equal(ferry_future_wait(x, 30000), 0);
	expect_failed(x, FERRY_FAILED, FERRY_ETASK,
	    (const char *const[]){ "gone wrong", NULL });
	input_task(it, sizeof(it), x);

	/* (a) */
	b1 = add_ref(c, x, 1);
	assert_int_equal(ferry_future_wait(b1, 30000), 0);
	expect_failed(b1, FERRY_FAILED, FERRY_EDEPENDENCY,
	    (const char *const[]){ it, "gone wrong", NULL });
	assert_int_equal(ferry_future_attempts(b1), 0);

	/* (b) */
	s = h_submit(c, "sleep_ms", 1, 300, 0, NULL);
	a_init(&ar);
	msgpack_pack_array(&ar.pk, 2);
	a_ref(&ar, x);
	a_ref(&ar, s);
	b2 = a_submit(c, "add", &ar, NULL);
	assert_int_equal(ferry_future_wait(b2, 30000), 0);
	expect_failed(b2, FERRY_FAILED, FERRY_EDEPENDENCY,
	    (const char *const[]){ it, "gone wrong", NULL });
	assert_int_equal(ferry_future_attempts(b2), 0);

	/* (c) */
	ferry_task_opts_init(&o);
	o.run_anyway = 1;
	a_init(&ar);
	msgpack_pack_array(&ar.pk, 1);
	a_ref(&ar, x);
	b3 = a_submit(c, "echo", &ar, &o);
	assert_int_equal(ferry_future_wait(b3, 30000), 0);
	assert_int_equal(error_value(b3, 0, msg, sizeof(msg)), FERRY_ETASK);
	if (strstr(msg, it) == NULL || strstr(msg, "gone wrong") == NULL)
		fail_msg("run_anyway's message (input known failed): %s", msg);

	assert_int_equal(status_of(c).waiting, 0);
	ferry_future_free(x);
	ferry_future_free(s);
	ferry_future_free(b1);
	ferry_future_free(b2);
	ferry_future_free(b3);
	ferry_client_close(c);
}

/* A chain of 10 whose 4th link fails: 1-3 hold their values, 4 failed
 * for its own reason, 5-10 failed with FERRY_EDEPENDENCY naming task 4
 * and its message, and none of them started.  (The head waits at a gate
 * until every link is submitted, so the failure happens at the
 * scheduler while the links wait.) */
static void
test_failure_mid_chain(void **state)
{
	char          url[256], it[64], gate[512];
	ferry_client *c;
	ferry_future *f[10];
	struct args   ar;
	(void)state;

	use_log("midfail");
	h_ipc_url(url, sizeof(url), "midfail");
	c    = gcluster(url, NULL, 2);
	f[0] = gsum_gated(c, 1, gate_path(gate, sizeof(gate), "midfail"),
	    NULL, 1, NULL);
	f[1] = gsum(c, 2, 0, f[0], 1, NULL);
	f[2] = gsum(c, 3, 0, f[1], 1, NULL);
	a_init(&ar);
	msgpack_pack_array(&ar.pk, 2);
	a_str(&ar, "the 4th link broke");
	a_ref(&ar, f[2]);
	f[3] = a_submit(c, "fail", &ar, NULL);
	for (int i = 4; i < 10; i++)
		f[i] = gsum(c, 1 + (uint64_t)i, 0, f[i - 1], 1, NULL);
	assert_int_equal(h_wait_sent(c, 20000), 0);
	assert_int_equal(h_wait_status(c, "waiting", 9, 20000), 0);
	gate_open(gate);
	assert_int_equal(ferry_wait_all(f, 10, 60000), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(gsum_of(f[i]), 1 + (uint64_t)i);
	expect_failed(f[3], FERRY_FAILED, FERRY_ETASK,
	    (const char *const[]){ "the 4th link broke", NULL });
	assert_int_equal(ferry_future_attempts(f[3]), 1);
	input_task(it, sizeof(it), f[3]);
	for (int i = 4; i < 10; i++) {
		expect_failed(f[i], FERRY_FAILED, FERRY_EDEPENDENCY,
		    (const char *const[]){ it, "the 4th link broke", NULL });
		assert_int_equal(ferry_future_attempts(f[i]), 0);
		assert_int_equal(starts(1 + (uint64_t)i, NULL, NULL), 0);
	}
	/* three results, seven failures, nothing waiting */
	assert_int_equal(status_of(c).done, 3);
	assert_int_equal(status_of(c).failed, 7);
	assert_int_equal(status_of(c).waiting, 0);
	free_all(f, 10);
	ferry_client_close(c);
}

/* The message of a dependent names the failed input the same way
 * whether that input was still running when the dependent was submitted
 * or had already failed (the client then sends the failure it knows):
 * both say "input task N failed (...): message".  */
static void
test_failure_message_same(void **state)
{
	char          url[256], early[512], late[512], gate[512];
	ferry_client *c;
	ferry_future *s, *x, *d1, *d2;
	struct args   ar;
	(void)state;

	h_ipc_url(url, sizeof(url), "samemsg");
	c = gcluster(url, NULL, 2);
	s = gsum_gated(c, 1, gate_path(gate, sizeof(gate), "samemsg"), NULL,
	    1, NULL);
	a_init(&ar);
	msgpack_pack_array(&ar.pk, 2);
	a_str(&ar, "broken");
	a_ref(&ar, s);
	x  = a_submit(c, "fail", &ar, NULL);
	d1 = add_ref(c, x, 1); /* x still waits for s */
	assert_int_equal(h_wait_sent(c, 20000), 0);
	gate_open(gate);
	assert_int_equal(ferry_future_wait(d1, 30000), 0);
	assert_int_equal(ferry_future_wait(x, 30000), 0);
	d2 = add_ref(c, x, 1); /* x failed, and the client knows it */
	assert_int_equal(ferry_future_wait(d2, 30000), 0);
	expect_failed(d1, FERRY_FAILED, FERRY_EDEPENDENCY, NULL);
	expect_failed(d2, FERRY_FAILED, FERRY_EDEPENDENCY, NULL);
	snprintf(early, sizeof(early), "%s", ferry_future_error(d1));
	snprintf(late, sizeof(late), "%s", ferry_future_error(d2));
	printf("running input: %s\nfailed input:  %s\n", early, late);
	snprintf(gate, sizeof(gate), "input task %" PRIu64 " failed",
	    ferry_future_id(x));
	assert_non_null(strstr(early, gate));
	assert_string_equal(late, early);
	ferry_future_free(s);
	ferry_future_free(x);
	ferry_future_free(d1);
	ferry_future_free(d2);
	ferry_client_close(c);
}

/* run_anyway: a clean-up step (echo) on a failing input runs with
 * {"error": FERRY_ETASK, "message": ...} in its place; on a dependent
 * that failed because of it, with FERRY_EDEPENDENCY naming the first
 * failure; on an input that finished, with its value. */
static void
test_run_anyway(void **state)
{
	char                   url[256], msg[512], it[64], gate[512];
	ferry_client          *c;
	ferry_future          *s, *f, *g, *x, *h, *k;
	struct ferry_task_opts o;
	struct args            ar;
	int64_t                code;
	(void)state;

	ferry_task_opts_init(&o);
	o.run_anyway = 1;
	h_ipc_url(url, sizeof(url), "anyway");
	c = gcluster(url, NULL, 2);
	/* s waits at a gate until every dependent is submitted */
	s = gsum_gated(c, 1, gate_path(gate, sizeof(gate), "anyway"), NULL,
	    300, NULL);
	a_init(&ar);
	msgpack_pack_array(&ar.pk, 2);
	a_str(&ar, "cleanup needed");
	a_ref(&ar, s);
	f = a_submit(c, "fail", &ar, NULL);
	/* echo [ref f], run anyway */
	a_init(&ar);
	msgpack_pack_array(&ar.pk, 1);
	a_ref(&ar, f);
	g = a_submit(c, "echo", &ar, &o);
	/* x = f + 1 fails; echo [ref x, "tail"] runs anyway */
	x = add_ref(c, f, 1);
	a_init(&ar);
	msgpack_pack_array(&ar.pk, 2);
	a_ref(&ar, x);
	a_str(&ar, "tail");
	h = a_submit(c, "echo", &ar, &o);
	/* echo [ref s], run anyway: s finishes */
	a_init(&ar);
	msgpack_pack_array(&ar.pk, 1);
	a_ref(&ar, s);
	k = a_submit(c, "echo", &ar, &o);
	assert_int_equal(h_wait_sent(c, 20000), 0);
	gate_open(gate);

	assert_int_equal(ferry_future_wait(g, 30000), 0);
	assert_int_equal(ferry_future_wait(h, 30000), 0);
	assert_int_equal(ferry_future_wait(k, 30000), 0);
	assert_int_equal(ferry_future_wait(x, 30000), 0);
	input_task(it, sizeof(it), f);

	code = error_value(g, 0, msg, sizeof(msg));
	assert_int_equal(code, FERRY_ETASK);
	if (strstr(msg, it) == NULL || strstr(msg, "cleanup needed") == NULL)
		fail_msg("run_anyway's message: %s", msg);
	assert_int_equal(ferry_future_attempts(g), 1);

	expect_failed(x, FERRY_FAILED, FERRY_EDEPENDENCY,
	    (const char *const[]){ it, "cleanup needed", NULL });
	code = error_value(h, 0, msg, sizeof(msg));
	assert_int_equal(code, FERRY_EDEPENDENCY);
	if (strstr(msg, it) == NULL || strstr(msg, "cleanup needed") == NULL)
		fail_msg("run_anyway's message (after a dependent): %s", msg);
	{
		const void    *data;
		size_t         len, off = 0;
		msgpack_zone   zone;
		msgpack_object ob;
		assert_int_equal(ferry_future_result(h, &data, &len), 0);
		msgpack_zone_init(&zone, 512);
		assert_int_equal(msgpack_unpack(data, len, &off, &zone, &ob),
		    MSGPACK_UNPACK_SUCCESS);
		assert_int_equal(ob.via.array.size, 2);
		assert_int_equal(ob.via.array.ptr[1].type, MSGPACK_OBJECT_STR);
		assert_int_equal(ob.via.array.ptr[1].via.str.size, 4);
		assert_memory_equal(ob.via.array.ptr[1].via.str.ptr, "tail", 4);
		msgpack_zone_destroy(&zone);
	}
	{
		/* [s's result], and s's result is [300, pid] */
		const void    *data;
		size_t         len, off = 0;
		msgpack_zone   zone;
		msgpack_object ob;
		uint64_t       v, pid;
		expect_done(k);
		assert_int_equal(ferry_future_result(k, &data, &len), 0);
		msgpack_zone_init(&zone, 512);
		assert_int_equal(msgpack_unpack(data, len, &off, &zone, &ob),
		    MSGPACK_UNPACK_SUCCESS);
		assert_int_equal(ob.type, MSGPACK_OBJECT_ARRAY);
		assert_int_equal(ob.via.array.size, 1);
		msgpack_zone_destroy(&zone);
		assert_int_equal(ferry_future_result(s, &data, &len), 0);
		assert_int_equal(fi_unpack_pair(data, len, &v, &pid), 0);
		assert_int_equal(v, 300);
	}

	assert_int_equal(status_of(c).waiting, 0);

	ferry_future_free(s);
	ferry_future_free(f);
	ferry_future_free(g);
	ferry_future_free(x);
	ferry_future_free(h);
	ferry_future_free(k);
	ferry_client_close(c);
}

#define LINKS 20

/* Cancelling a chain's head (running, held at a gate) cancels every
 * waiting link, none runs, and the waiting gauge goes back to 0.  Before
 * that, with the only worker process busy with that head, a link in the
 * middle of another chain is cancelled: it and those after it end
 * cancelled, and once the head is gone those before it run. */
static void
test_cancel(void **state)
{
	char          url[256], it[64], gate[512];
	ferry_client *c;
	ferry_future *f[LINKS], *m[10];
	(void)state;

	use_log("cancel");
	h_ipc_url(url, sizeof(url), "cancel");
	c    = gcluster(url, NULL, 1);
	f[0] = gsum_gated(c, 1, gate_path(gate, sizeof(gate), "cancel"), NULL,
	    1, NULL); /* never opened */
	for (int i = 1; i < LINKS; i++)
		f[i] = gsum(c, 1 + (uint64_t)i, 0, f[i - 1], 1, NULL);
	/* 100 -> 101 -> ... behind it (one worker process, one slot) */
	m[0] = gsum(c, 100, 0, NULL, 100, NULL);
	for (int i = 1; i < 10; i++)
		m[i] = gsum(c, 100 + (uint64_t)i, 0, m[i - 1], 1, NULL);
	assert_int_equal(h_wait_status(c, "waiting", LINKS - 1 + 9, 20000), 0);
	assert_true(runner_of(1, 20000) > 0); /* the head runs */

	/* the 6th of the second chain */
	assert_int_equal(ferry_cancel(m[5]), 0);
	for (int i = 5; i < 10; i++)
		assert_int_equal(ferry_future_wait(m[i], 30000), 0);
	assert_int_equal(ferry_future_state(m[5]), FERRY_CANCELLED);
	input_task(it, sizeof(it), m[5]);
	for (int i = 6; i < 10; i++)
		expect_failed(m[i], FERRY_CANCELLED, FERRY_ECANCELED,
		    (const char *const[]){ it, "was cancelled", NULL });
	assert_int_equal(h_wait_status(c, "waiting", LINKS - 1 + 4, 10000), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(ferry_future_state(m[i]), FERRY_PENDING);

	/* the head of the first */
	assert_int_equal(ferry_cancel(f[0]), 0);
	assert_int_equal(ferry_wait_all(f, LINKS, 30000), 0);
	assert_int_equal(ferry_future_state(f[0]), FERRY_CANCELLED);
	input_task(it, sizeof(it), f[0]);
	for (int i = 1; i < LINKS; i++) {
		expect_failed(f[i], FERRY_CANCELLED, FERRY_ECANCELED,
		    (const char *const[]){ it, "was cancelled", NULL });
		assert_int_equal(ferry_future_attempts(f[i]), 0);
		assert_int_equal(starts(1 + (uint64_t)i, NULL, NULL), 0);
	}
	/* the second chain's first five run */
	assert_int_equal(ferry_wait_all(m, 10, 60000), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(gsum_of(m[i]), 100 + (uint64_t)i);
	for (int i = 5; i < 10; i++)
		assert_int_equal(starts(100 + (uint64_t)i, NULL, NULL), 0);
	assert_int_equal(h_wait_status(c, "waiting", 0, 10000), 0);
	assert_int_equal(status_of(c).done, 5);
	assert_int_equal(status_of(c).cancelled, LINKS + 5);
	free_all(f, LINKS);
	free_all(m, 10);
	ferry_client_close(c);
}

/* The worker process running a chain's head (retries 2) is killed -9
 * mid-run (the head held at a gate): the head runs again (2 attempts),
 * and only then do its dependents run, each once, with the right
 * value. */
static void
test_input_worker_killed(void **state)
{
	char                   url[256], gate[512];
	ferry_client          *c;
	ferry_future          *f[6];
	struct ferry_task_opts o;
	pid_t                  pids[4], victim;
	uint64_t               head_last, first;
	(void)state;

	use_log("killed");
	h_ipc_url(url, sizeof(url), "killed");
	c = gcluster(url, NULL, 1);
	assert_int_equal(h_worker_pids(c, pids, 4), 1);
	ferry_task_opts_init(&o);
	o.retries    = 2;
	o.backoff_ms = 50;
	/* the head waits at a gate: its first run cannot finish before
	 * the kill */
	f[0] = gsum_gated(c, 1, gate_path(gate, sizeof(gate), "killed"), NULL,
	    10, &o);
	for (int i = 1; i < 6; i++)
		f[i] = gsum(c, 1 + (uint64_t)i, 0, f[i - 1], 1, NULL);
	victim = runner_of(1, 20000);
	assert_int_equal(victim, pids[0]);
	assert_int_equal(h_wait_status(c, "waiting", 5, 20000), 0);
	assert_int_equal(kill(victim, SIGKILL), 0);
	assert_int_equal(h_wait_gone(victim, 10000), 0);
	gate_open(gate);

	assert_int_equal(ferry_wait_all(f, 6, 90000), 0);
	assert_int_equal(gsum_of(f[0]), 10);
	assert_int_equal(ferry_future_attempts(f[0]), 2);
	assert_int_equal(starts(1, NULL, &head_last), 2);
	for (int i = 1; i < 6; i++) {
		assert_int_equal(gsum_of(f[i]), 10 + (uint64_t)i);
		assert_int_equal(ferry_future_attempts(f[i]), 1);
		assert_int_equal(starts(1 + (uint64_t)i, &first, NULL), 1);
		assert_true(first > head_last); /* after the head's rerun */
	}
	assert_int_equal(h_wait_replaced(c, victim, 1, 10000), 0);
	assert_int_equal(status_of(c).waiting, 0);
	assert_int_equal(h_client_stats(c).duplicates, 0);
	free_all(f, 6);
	ferry_client_close(c);
}

#define RUN_ALONE 50

/* A chain of 50 submitted by a client that disconnects as soon as the
 * scheduler has answered the submits: it runs with nobody connected (its
 * head held at a gate until then); a new client resumes the session,
 * attaches to the last link and gets its value (each link ran once).
 * Then again with the new client resuming while the chain waits, and
 * referring to the pending last link it attached to. */
static void
test_no_client(void **state)
{
	char          url[256], gate[512], gate2[512];
	ferry_client *c, *c1, *c2;
	ferry_future *f[RUN_ALONE], *last, *more;
	uint64_t      session, last_id, prev_first = 0;
	(void)state;

	use_log("alone");
	h_ipc_url(url, sizeof(url), "alone");
	c  = gcluster(url, NULL, 2);
	c1 = h_connect(url);
	assert_non_null(c1);
	/* the head waits at a gate opened once the client is gone */
	f[0] = gsum_gated(c1, 1, gate_path(gate, sizeof(gate), "alone"),
	    NULL, 1, NULL);
	for (int i = 1; i < RUN_ALONE; i++)
		f[i] = gsum(c1, 1 + (uint64_t)i, 10000, f[i - 1], 1, NULL);
	assert_int_equal(h_wait_sent(c1, 20000), 0);
	session = ferry_client_session(c1);
	last_id = ferry_future_id(f[RUN_ALONE - 1]);
	ferry_client_close(c1);
	free_all(f, RUN_ALONE);
	gate_open(gate);

	/* it finishes with nobody there */
	assert_int_equal(h_wait_status(c, "done", RUN_ALONE, 60000), 0);
	assert_int_equal(status_of(c).waiting, 0);
	for (int i = 0; i < RUN_ALONE; i++) {
		uint64_t first;
		assert_int_equal(starts(1 + (uint64_t)i, &first, NULL), 1);
		assert_true(first > prev_first); /* in order */
		prev_first = first;
	}
	c2 = connect_with(url, (struct ferry_client_opts){ .session = session });
	assert_int_equal(ferry_client_session(c2), session);
	assert_int_equal(ferry_attach(c2, last_id, &last), 0);
	assert_int_equal(ferry_future_wait(last, 30000), 0);
	assert_int_equal(gsum_of(last), RUN_ALONE);
	/* and a new task may refer to it */
	more = gsum(c2, 999, 0, last, 1000, NULL);
	assert_int_equal(ferry_future_wait(more, 30000), 0);
	assert_int_equal(gsum_of(more), RUN_ALONE + 1000);
	ferry_future_free(last);
	ferry_future_free(more);
	ferry_client_close(c2);

	/* resumed while the chain runs: the last link is attached while it
	 * waits, and a new task refers to it */
	c1 = h_connect(url);
	assert_non_null(c1);
	f[0] = gsum_gated(c1, 201, gate_path(gate2, sizeof(gate2), "alone2"),
	    NULL, 1, NULL);
	for (int i = 1; i < 20; i++)
		f[i] = gsum(c1, 201 + (uint64_t)i, 10000, f[i - 1], 1, NULL);
	assert_int_equal(h_wait_sent(c1, 20000), 0);
	session = ferry_client_session(c1);
	last_id = ferry_future_id(f[19]);
	ferry_client_close(c1);
	free_all(f, 20);
	c2 = connect_with(url, (struct ferry_client_opts){ .session = session });
	assert_int_equal(ferry_attach(c2, last_id, &last), 0);
	assert_int_equal(ferry_future_state(last), FERRY_PENDING);
	more = gsum(c2, 300, 0, last, 1000, NULL);
	assert_int_equal(h_wait_sent(c2, 20000), 0);
	gate_open(gate2);
	assert_int_equal(ferry_future_wait(more, 60000), 0);
	assert_int_equal(gsum_of(more), 1020);
	assert_int_equal(ferry_future_wait(last, 30000), 0);
	assert_int_equal(gsum_of(last), 20);
	for (int i = 0; i < 20; i++)
		assert_int_equal(starts(201 + (uint64_t)i, NULL, NULL), 1);
	assert_int_equal(h_client_stats(c2).duplicates, 0);
	ferry_future_free(last);
	ferry_future_free(more);
	ferry_client_close(c2);
	ferry_client_close(c);
}

#define RESTART_LINKS 30

/* A scheduler on a journal, kill -9'd twice in the middle of a chain of
 * 30 (150 ms a link) and started again on it: the client rides through,
 * every link completes once at the client with its right value (none
 * lost, none twice), the last holds 30; links may run again (at least
 * once), never before the link they wait for first started. */
static void
test_restart_mid_chain(void **state)
{
	char          url[256], dir[512];
	ferry_client *c;
	ferry_future *f[RESTART_LINKS];
	pid_t         sched;
	int           reruns = 0;
	const char   *jx[]   = { "--journal", dir, "--heartbeat-timeout-ms",
		    "3000", NULL };
	(void)state;

	use_log("restart");
	h_ipc_url(url, sizeof(url), "restart");
	snprintf(dir, sizeof(dir), "%s/restart.journal", h_dir());
	sched = h_scheduler_named("sched-1", url, jx);
	gworkers(url, 2);
	c = h_connect_riding(url, 60000);
	assert_non_null(c);
	assert_int_equal(h_wait_workers(c, 2, 20000), 0);
	f[0] = gsum(c, 1, 150000, NULL, 1, NULL);
	for (int i = 1; i < RESTART_LINKS; i++)
		f[i] = gsum(c, 1 + (uint64_t)i, 150000, f[i - 1], 1, NULL);
	/* answered, so on disk */
	assert_int_equal(h_wait_sent(c, 20000), 0);

	for (int k = 0; k < 2; k++) {
		char     name[32];
		uint64_t seq = k == 0 ? 10 : 20;
		assert_true(runner_of(seq, 60000) > 0);
		assert_int_equal(kill(sched, SIGKILL), 0);
		assert_int_equal(h_wait_gone(sched, 10000), 0);
		h_forget(sched);
		snprintf(name, sizeof(name), "sched-%d", k + 2);
		sched = h_scheduler_named(name, url, jx);
		assert_int_equal(h_wait_log(name, "restored", 1, 10000), 0);
	}
	assert_int_equal(ferry_wait_all(f, RESTART_LINKS, 120000), 0);
	for (int i = 0; i < RESTART_LINKS; i++) {
		uint64_t first, prev_first;
		int      n = starts(1 + (uint64_t)i, &first, NULL);
		assert_int_equal(gsum_of(f[i]), 1 + (uint64_t)i);
		assert_true(n >= 1);
		reruns += n - 1;
		if (i > 0) {
			assert_true(starts((uint64_t)i, &prev_first, NULL) >= 1);
			assert_true(first > prev_first);
		}
	}
	assert_int_equal(gsum_of(f[RESTART_LINKS - 1]), RESTART_LINKS);
	printf("links run again after the restarts: %d\n", reruns);
	assert_int_equal(h_client_stats(c).duplicates, 0);
	assert_int_equal(h_client_stats(c).completed, RESTART_LINKS);
	assert_int_equal(status_of(c).waiting, 0);
	free_all(f, RESTART_LINKS);
	ferry_client_close(c);
}

/* A scheduler on a journal is killed -9 and started again while tasks
 * wait: D waits for A (finished, its result already in D's arguments and
 * taken by the client) and for B (running, held at a gate), E waits for
 * D, and a chain of a client that has gone away waits for its head.
 * After the restart, D gets B's result beside A's, E runs after it, and
 * a new client resuming the gone one's session finds its chain's last
 * link done; each of these ran once. */
static void
test_restart_waiting(void **state)
{
	char          url[256], dir[512], gb[512], gx[512];
	ferry_client *c, *c1, *c2;
	ferry_future *a, *b, *d, *e, *x[5], *last;
	struct args   ar;
	uint64_t      session, last_id;
	pid_t         sched;
	const char   *jx[] = { "--journal", dir, "--heartbeat-timeout-ms",
		  "3000", NULL };
	(void)state;

	use_log("rwait");
	h_ipc_url(url, sizeof(url), "rwait");
	snprintf(dir, sizeof(dir), "%s/rwait.journal", h_dir());
	sched = h_scheduler_named("rwait-1", url, jx);
	gworkers(url, 2);
	c = h_connect_riding(url, 60000);
	assert_non_null(c);
	assert_int_equal(h_wait_workers(c, 2, 20000), 0);

	a = gsum(c, 1, 0, NULL, 5, NULL);
	b = gsum_gated(c, 2, gate_path(gb, sizeof(gb), "rwait-b"), NULL, 7,
	    NULL);
	a_init(&ar);
	msgpack_pack_array(&ar.pk, 4);
	msgpack_pack_uint64(&ar.pk, 3);
	msgpack_pack_uint64(&ar.pk, 0);
	a_ref(&ar, a);
	a_ref(&ar, b);
	d = a_submit(c, "fi_gsum", &ar, NULL);
	e = gsum(c, 4, 0, d, 1, NULL);
	assert_int_equal(ferry_future_wait(a, 30000), 0);
	assert_int_equal(gsum_of(a), 5);
	assert_int_equal(h_wait_sent(c, 20000), 0);
	assert_int_equal(h_wait_status(c, "results_stored", 0, 20000), 0);

	/* a client that submits a chain and goes */
	c1 = h_connect(url);
	assert_non_null(c1);
	x[0] = gsum_gated(c1, 10, gate_path(gx, sizeof(gx), "rwait-x"), NULL,
	    1, NULL);
	for (int i = 1; i < 5; i++)
		x[i] = gsum(c1, 10 + (uint64_t)i, 0, x[i - 1], 1, NULL);
	assert_int_equal(h_wait_sent(c1, 20000), 0);
	session = ferry_client_session(c1);
	last_id = ferry_future_id(x[4]);
	ferry_client_close(c1);
	free_all(x, 5);
	assert_int_equal(h_wait_status(c, "waiting", 2 + 4, 20000), 0);
	assert_true(runner_of(2, 20000) > 0);

	assert_int_equal(kill(sched, SIGKILL), 0);
	assert_int_equal(h_wait_gone(sched, 10000), 0);
	h_forget(sched);
	sched = h_scheduler_named("rwait-2", url, jx);
	assert_int_equal(h_wait_log("rwait-2", "restored", 1, 10000), 0);
	assert_int_equal(h_wait_status(c, "waiting", 2 + 4, 20000), 0);
	gate_open(gb);
	gate_open(gx);

	assert_int_equal(ferry_future_wait(e, 60000), 0);
	assert_int_equal(gsum_of(b), 7);
	assert_int_equal(gsum_of(d), 12);
	assert_int_equal(gsum_of(e), 13);
	c2 = connect_with(url, (struct ferry_client_opts){ .session = session });
	assert_int_equal(ferry_attach(c2, last_id, &last), 0);
	assert_int_equal(ferry_future_wait(last, 60000), 0);
	assert_int_equal(gsum_of(last), 5);
	assert_int_equal(starts(3, NULL, NULL), 1);
	assert_int_equal(starts(4, NULL, NULL), 1);
	for (uint64_t k = 11; k < 15; k++)
		assert_int_equal(starts(k, NULL, NULL), 1);
	assert_int_equal(h_wait_status(c, "waiting", 0, 10000), 0);
	assert_int_equal(h_client_stats(c).duplicates, 0);
	ferry_future_free(a);
	ferry_future_free(b);
	ferry_future_free(d);
	ferry_future_free(e);
	ferry_future_free(last);
	ferry_client_close(c2);
	ferry_client_close(c);
}

#define SUBMIT_LINKS 200

/* The scheduler (on a journal) is killed -9 while a chain of 200 is
 * still being submitted, its submits in flight, and started again: the
 * client sends again what was not answered, goes on submitting links
 * that refer to tasks submitted before the kill, and every link
 * completes once with its right value. */
static void
test_restart_while_submitting(void **state)
{
	char          url[256], dir[512];
	ferry_client *c;
	ferry_future *f[SUBMIT_LINKS];
	pid_t         sched;
	const char   *jx[] = { "--journal", dir, "--heartbeat-timeout-ms",
		  "3000", NULL };
	(void)state;

	use_log("resubmit");
	h_ipc_url(url, sizeof(url), "resubmit");
	snprintf(dir, sizeof(dir), "%s/resubmit.journal", h_dir());
	sched = h_scheduler_named("resub-1", url, jx);
	gworkers(url, 2);
	c = h_connect_riding(url, 60000);
	assert_non_null(c);
	assert_int_equal(h_wait_workers(c, 2, 20000), 0);
	f[0] = gsum(c, 1, 5000, NULL, 1, NULL);
	for (int i = 1; i < SUBMIT_LINKS / 2; i++)
		f[i] = gsum(c, 1 + (uint64_t)i, 5000, f[i - 1], 1, NULL);
	/* no wait for the answers */
	assert_int_equal(kill(sched, SIGKILL), 0);
	assert_int_equal(h_wait_gone(sched, 10000), 0);
	h_forget(sched);
	for (int i = SUBMIT_LINKS / 2; i < SUBMIT_LINKS; i++)
		f[i] = gsum(c, 1 + (uint64_t)i, 5000, f[i - 1], 1, NULL);
	sched = h_scheduler_named("resub-2", url, jx);
	assert_int_equal(ferry_wait_all(f, SUBMIT_LINKS, 120000), 0);
	for (int i = 0; i < SUBMIT_LINKS; i++) {
		uint64_t first, prev_first;
		assert_int_equal(gsum_of(f[i]), 1 + (uint64_t)i);
		assert_true(starts(1 + (uint64_t)i, &first, NULL) >= 1);
		if (i > 0) {
			assert_true(starts((uint64_t)i, &prev_first, NULL) >= 1);
			assert_true(first > prev_first);
		}
	}
	printf("sent again: %" PRIu64 ", reconnections: %" PRIu64 "\n",
	    h_client_stats(c).resent, h_client_stats(c).reconnects);
	assert_int_equal(h_client_stats(c).duplicates, 0);
	assert_int_equal(h_client_stats(c).completed, SUBMIT_LINKS);
	assert_int_equal(status_of(c).waiting, 0);
	free_all(f, SUBMIT_LINKS);
	ferry_client_close(c);
}

/* A scheduler at url from a cluster file (the only way to set some of
 * its limits) whose scheduler section also holds the lines in extra. */
static pid_t
scheduler_file(const char *url, const char *name, const char *extra)
{
	char        path[512];
	const char *sargs[] = { "scheduler", "-f", path, NULL };

	snprintf(path, sizeof(path), "%s/%s.yaml", h_dir(), name);
	h_write_file(path, 0644,
	    "cluster:\n"
	    "  name: %s\n"
	    "  state_dir: %s/state-%s\n"
	    "scheduler:\n"
	    "  listen: %s\n"
	    "%s"
	    "workers:\n"
	    "  - name: main\n"
	    "    processes: 1\n"
	    "    libraries: [ferry_examples]\n",
	    name, h_dir(), name, url, extra);
	return h_start_scheduler(name, sargs);
}

/* scheduler_file with scheduler.max_queue. */
static pid_t
scheduler_max_queue(const char *url, int max_queue, const char *name)
{
	char extra[64];

	snprintf(extra, sizeof(extra), "  max_queue: %d\n", max_queue);
	return scheduler_file(url, name, extra);
}

/* Waiting tasks count toward scheduler.max_queue: with room for 10 and
 * no worker, a chain's head and 9 links fill it (1 queued, 9 waiting),
 * so a further task, plain or a link, is refused as full (the client
 * fails it: FERRY_FULL_FAIL); those taken complete once workers come.
 * Then with room for 8 and a blocking client, a chain of 100 and five
 * small trees go through the full queue and every value is right. */
static void
test_backpressure(void **state)
{
	char                url[256];
	ferry_client       *c;
	ferry_future       *f[10], *over, *link;
	ferry_future      **all;
	struct ferry_status st;
	size_t              n_all = 0;
	(void)state;

	use_log("full");
	h_ipc_url(url, sizeof(url), "full");
	scheduler_max_queue(url, 10, "full-1");
	c = connect_with(url,
	    (struct ferry_client_opts){ .on_full = FERRY_FULL_FAIL });
	f[0] = h_submit(c, "add", 2, 0, 1, NULL);
	for (int i = 1; i < 10; i++)
		f[i] = add_ref(c, f[i - 1], 1);
	assert_int_equal(h_wait_sent(c, 20000), 0);
	st = status_of(c);
	assert_int_equal(st.queued, 1);
	assert_int_equal(st.waiting, 9);
	over = h_submit(c, "square", 1, 3, 0, NULL);
	assert_int_equal(ferry_future_wait(over, 20000), 0);
	expect_failed(over, FERRY_FAILED, FERRY_EFULL,
	    (const char *const[]){ "max_queue", NULL });
	link = add_ref(c, f[9], 1);
	assert_int_equal(ferry_future_wait(link, 20000), 0);
	expect_failed(link, FERRY_FAILED, FERRY_EFULL,
	    (const char *const[]){ "max_queue", NULL });
	gworkers(url, 2);
	assert_int_equal(ferry_wait_all(f, 10, 60000), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(int_of(f[i]), i + 1);
	assert_int_equal(h_wait_status(c, "waiting", 0, 10000), 0);
	free_all(f, 10);
	ferry_future_free(over);
	ferry_future_free(link);
	ferry_client_close(c);
	h_cleanup();

	/* a blocking client: the full queue only slows things down */
	h_ipc_url(url, sizeof(url), "full2");
	scheduler_max_queue(url, 8, "full-2");
	c = connect_with(url,
	    (struct ferry_client_opts){ .on_full = FERRY_FULL_BLOCK });
	all = calloc(100 + 5 * 9, sizeof(*all));
	assert_non_null(all);
	all[n_all++] = gsum(c, 1, 2000, NULL, 1, NULL);
	for (int i = 1; i < 100; i++, n_all++)
		all[n_all] = gsum(c, 1 + (uint64_t)i, 2000, all[n_all - 1], 1,
		    NULL);
	for (int t = 0; t < 5; t++) {
		struct args ar;
		size_t      leaf0 = n_all;
		for (int l = 0; l < 8; l++, n_all++)
			all[n_all] = gsum(c, 1000 + (uint64_t)(t * 10 + l),
			    1000, NULL, (uint64_t)(t * 10 + l), NULL);
		a_init(&ar);
		msgpack_pack_array(&ar.pk, 10);
		msgpack_pack_uint64(&ar.pk, 2000 + (uint64_t)t);
		msgpack_pack_uint64(&ar.pk, 0);
		for (int l = 0; l < 8; l++)
			a_ref(&ar, all[leaf0 + (size_t)l]);
		all[n_all++] = a_submit(c, "fi_gsum", &ar, NULL);
	}
	/* no worker yet: the queue fills (the chain's head queued, the
	 * rest waiting) and the surplus waits in the client */
	assert_int_equal(h_wait_status(c, "waiting", 7, 20000), 0);
	st = status_of(c);
	assert_int_equal(st.queued + st.waiting, 8);
	assert_true(h_client_stats(c).unsent > 0);
	gworkers(url, 2);
	assert_int_equal(ferry_wait_all(all, n_all, 180000), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(gsum_of(all[i]), 1 + (uint64_t)i);
	for (int t = 0; t < 5; t++) {
		uint64_t want = 0;
		for (int l = 0; l < 8; l++)
			want += (uint64_t)(t * 10 + l);
		assert_int_equal(gsum_of(all[100 + (size_t)t * 9 + 8]), want);
	}
	printf("sent again after a full queue: %" PRIu64 "\n",
	    h_client_stats(c).resent);
	assert_true(h_client_stats(c).resent > 0);
	assert_int_equal(h_client_stats(c).duplicates, 0);
	assert_int_equal(status_of(c).waiting, 0);
	free_all(all, n_all);
	free(all);
	ferry_client_close(c);
}

#define EXPIRY_TREES 1000

/* Links of a chain refused one by one as the queue is full (max_queue
 * 8, no worker yet; each submitted on its own, so that several submits
 * are answered "full" in turn) are sent again in the order they were
 * submitted once room appears: each finds the link it refers to, and the
 * whole chain completes. */
static void
test_full_resend_order(void **state)
{
	char          url[256];
	ferry_client *c;
	ferry_future *f[12];
	(void)state;

	use_log("fullorder");
	h_ipc_url(url, sizeof(url), "fullorder");
	scheduler_max_queue(url, 8, "fullorder");
	c    = connect_with(url,
	       (struct ferry_client_opts){ .on_full = FERRY_FULL_BLOCK });
	f[0] = gsum(c, 1, 0, NULL, 1, NULL);
	for (int i = 1; i < 8; i++)
		f[i] = gsum(c, 1 + (uint64_t)i, 0, f[i - 1], 1, NULL);
	assert_int_equal(h_wait_sent(c, 20000), 0);
	/* four more, back to back: the queue is full */
	for (int i = 8; i < 12; i++)
		f[i] = gsum(c, 1 + (uint64_t)i, 0, f[i - 1], 1, NULL);
	assert_int_equal(h_wait_status_min(c, "rejected", 4, 20000), 0);
	gworkers(url, 2);
	assert_int_equal(ferry_wait_all(f, 12, 60000), 0);
	for (int i = 0; i < 12; i++)
		assert_int_equal(gsum_of(f[i]), 1 + (uint64_t)i);
	printf("rejected as full: %" PRIu64 ", sent again: %" PRIu64 "\n",
	    h_status_uint(c, "rejected"), h_client_stats(c).resent);
	assert_int_equal(status_of(c).waiting, 0);
	free_all(f, 12);
	ferry_client_close(c);
}

/* A client submits a graph and goes away; its session expires
 * (result_ttl 500 ms) while the graph's root still runs (held at a
 * gate): every task
 * waiting in it (thousands, whose inputs are cancelled with them in
 * whatever order the expiry meets them) and every queued one is
 * cancelled, none runs, the waiting gauge and the queue go back to 0,
 * and the scheduler goes on serving. */
static void
test_session_expiry(void **state)
{
	char                   url[256], gate[512];
	ferry_client          *c, *c1;
	ferry_future          *head, *head2, *f[3], *last = NULL, *later;
	struct ferry_task_opts anyway;
	struct args            ar;
	uint64_t               seq = 10;
	pid_t                  sched;
	struct ferry_status    st;
	(void)state;

	use_log("expiry");
	h_ipc_url(url, sizeof(url), "expiry");
	sched = scheduler_file(url, "expiry", "  result_ttl: 500ms\n");
	gworkers(url, 1);
	c = h_connect(url);
	assert_non_null(c);
	assert_int_equal(h_wait_workers(c, 1, 20000), 0);
	ferry_task_opts_init(&anyway);
	anyway.run_anyway = 1;

	c1 = h_connect(url);
	assert_non_null(c1);
	/* the head runs until the gate opens, after the expiry */
	head  = gsum_gated(c1, 1, gate_path(gate, sizeof(gate), "expiry"),
	     NULL, 1, NULL);
	head2 = gsum(c1, 2, 0, NULL, 1, NULL); /* behind it */
	for (int i = 0; i < EXPIRY_TREES; i++) {
		ferry_future *in = i % 2 ? head : head2;
		f[0] = gsum(c1, seq++, 0, in, 1, NULL);
		f[1] = gsum(c1, seq++, 0, f[0], 1, i % 10 ? NULL : &anyway);
		a_init(&ar);
		msgpack_pack_array(&ar.pk, 5);
		msgpack_pack_uint64(&ar.pk, seq++);
		msgpack_pack_uint64(&ar.pk, 0);
		a_ref(&ar, f[0]);
		a_ref(&ar, f[1]);
		if (last != NULL)
			a_ref(&ar, last);
		else
			msgpack_pack_uint64(&ar.pk, 0);
		f[2] = a_submit(c1, "fi_gsum", &ar, NULL);
		ferry_future_free(f[0]);
		ferry_future_free(f[1]);
		ferry_future_free(last);
		last = f[2];
	}
	assert_int_equal(h_wait_sent(c1, 30000), 0);
	assert_true(runner_of(1, 20000) > 0);
	assert_int_equal(status_of(c).waiting, 3 * EXPIRY_TREES);
	ferry_future_free(head);
	ferry_future_free(head2);
	ferry_future_free(last);
	ferry_client_close(c1);

	/* expired: nothing waits or is queued any more */
	assert_int_equal(h_wait_log("expiry", "expired", 1, 20000), 0);
	assert_int_equal(h_wait_status(c, "waiting", 0, 20000), 0);
	assert_int_equal(h_wait_status(c, "queued", 0, 20000), 0);
	assert_true(h_alive(sched));
	/* the head finishes; nothing after it runs */
	gate_open(gate);
	assert_int_equal(h_wait_status(c, "busy", 0, 20000), 0);
	later = gsum(c, 99999, 0, NULL, 5, NULL);
	assert_int_equal(ferry_future_wait(later, 30000), 0);
	assert_int_equal(gsum_of(later), 5);
	/* (head2 may have been handed to the worker process already: then
	 * it ran) */
	for (uint64_t k = 10; k < seq; k++)
		if (starts(k, NULL, NULL) != 0)
			fail_msg("task %" PRIu64 " of the expired session ran",
			    k);
	st = status_of(c);
	printf("cancelled with the session: %" PRIu64 " (failed %" PRIu64
	       ", done %" PRIu64 ", submitted %" PRIu64 ")\n",
	    st.cancelled, st.failed, st.done, st.submitted);
	assert_true(st.cancelled >= 3 * EXPIRY_TREES);
	assert_true(h_alive(sched));
	ferry_future_free(later);
	ferry_client_close(c);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_chain, h_teardown),
		cmocka_unit_test_teardown(test_diamond, h_teardown),
		cmocka_unit_test_teardown(test_fan_in, h_teardown),
		cmocka_unit_test_teardown(test_nested, h_teardown),
		cmocka_unit_test_teardown(test_finished_inputs, h_teardown),
		cmocka_unit_test_teardown(
		    test_known_failed_input, h_teardown),
		cmocka_unit_test_teardown(test_failure_mid_chain, h_teardown),
		cmocka_unit_test_teardown(
		    test_failure_message_same, h_teardown),
		cmocka_unit_test_teardown(test_run_anyway, h_teardown),
		cmocka_unit_test_teardown(test_cancel, h_teardown),
		cmocka_unit_test_teardown(
		    test_input_worker_killed, h_teardown),
		cmocka_unit_test_teardown(test_no_client, h_teardown),
		cmocka_unit_test_teardown(test_restart_mid_chain, h_teardown),
		cmocka_unit_test_teardown(test_restart_waiting, h_teardown),
		cmocka_unit_test_teardown(
		    test_restart_while_submitting, h_teardown),
		cmocka_unit_test_teardown(test_backpressure, h_teardown),
		cmocka_unit_test_teardown(test_full_resend_order, h_teardown),
		cmocka_unit_test_teardown(test_session_expiry, h_teardown),
	};

	h_init(argc, argv);
	fi_lib = h_fi_lib(argc, argv);
	use_log("none");
	return H_RUN_TESTS(tests, NULL);
}
