/*
 * test_graph_wire.c - task graphs as the wire protocol sees them
 * (docs/protocol.md 4.12), with a client that speaks it by hand: what
 * the scheduler does with a submit entry's deps and the future
 * references in its arguments, whatever the client library does.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "ferry/ferry.h"
#include "futref.h"
#include "harness.h"

#define MAX_TASKS 256

/* What the peer has been sent, by client task id. */
struct got {
	int      have[MAX_TASKS + 1];
	int32_t  code[MAX_TASKS + 1];
	char    *data[MAX_TASKS + 1];
	size_t   len[MAX_TASKS + 1];
	uint64_t ack;
	int      n;
};

static void
got_free(struct got *g)
{
	for (int i = 0; i <= MAX_TASKS; i++)
		free(g->data[i]);
}

/* [a, b] where either may be a reference (tag != 0) or a number. */
static size_t
pack_pair(uint8_t *buf, size_t cap, uint64_t ref_a, double a, uint64_t ref_b,
    double b)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	uint8_t         ref[FERRY_FUTURE_REF_MAX];
	size_t          n, len;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 2);
	if (ref_a != 0) {
		assert_int_equal(
		    futref_encode(ref, sizeof(ref), &n, ref_a, 0, NULL, 0), 0);
		msgpack_sbuffer_write(&sb, (const char *)ref, n);
	} else {
		msgpack_pack_double(&pk, a);
	}
	if (ref_b != 0) {
		assert_int_equal(
		    futref_encode(ref, sizeof(ref), &n, ref_b, 0, NULL, 0), 0);
		msgpack_sbuffer_write(&sb, (const char *)ref, n);
	} else {
		msgpack_pack_double(&pk, b);
	}
	assert_true(sb.size <= cap);
	memcpy(buf, sb.data, sb.size);
	len = sb.size;
	msgpack_sbuffer_destroy(&sb);
	return len;
}

/* Submit one entry: fn with args, deps (n_deps tags), run_anyway. */
static void
submit(struct h_peer *p, uint64_t id, const char *fn, const uint8_t *args,
    size_t len, const uint64_t *deps, uint32_t n_deps, int run_anyway)
{
	struct proto_task_opts o = { 0 };

	if (run_anyway) {
		o.set        = PROTO_OPT_RUN_ANYWAY;
		o.run_anyway = 1;
	}
	proto_writer_reset(&p->w);
	proto_write_submit_begin(&p->w);
	proto_write_submit_entry(&p->w, id, fn, strlen(fn), args, len, NULL,
	    NULL, 0, &o, deps, n_deps);
	proto_write_submit_end(&p->w);
	assert_int_equal(h_peer_call(p, 10000), 0);
	assert_int_equal(p->m.type, PROTO_SUBMITTED);
	assert_int_equal(p->m.accepted, 1);
}

/* Fetch until want results came (each once), or fail after 30 s; the
 * results of the last reply are acknowledged by the next fetch only. */
static void
collect(struct h_peer *p, struct got *g, int want)
{
	for (int round = 0; round < 300 && (round == 0 || g->n < want);
	     round++) {
		proto_writer_reset(&p->w);
		proto_write_fetch(&p->w, g->ack, 100);
		assert_int_equal(h_peer_call(p, 10000), 0);
		assert_int_equal(p->m.type, PROTO_RESULTS);
		for (uint32_t i = 0; i < p->m.n_results; i++) {
			const struct proto_result *r = &p->m.results[i];
			assert_true(r->id >= 1 && r->id <= MAX_TASKS);
			assert_false(g->have[r->id]); /* never twice */
			g->have[r->id] = 1;
			g->code[r->id] = r->code;
			g->len[r->id]  = r->len;
			g->data[r->id] = malloc(r->len + 1);
			assert_non_null(g->data[r->id]);
			memcpy(g->data[r->id], r->data, r->len);
			g->data[r->id][r->len] = '\0';
			g->n++;
		}
		if (p->m.seq > g->ack)
			g->ack = p->m.seq;
	}
	assert_int_equal(g->n, want);
}

/* The number a result holds. */
static double
num(const struct got *g, uint64_t id)
{
	msgpack_unpacked u;
	size_t           off = 0;
	double           v   = -1;

	assert_true(g->have[id]);
	assert_int_equal(g->code[id], 0);
	msgpack_unpacked_init(&u);
	assert_int_equal(msgpack_unpack_next(&u, g->data[id], g->len[id], &off),
	    MSGPACK_UNPACK_SUCCESS);
	if (u.data.type == MSGPACK_OBJECT_FLOAT64 ||
	    u.data.type == MSGPACK_OBJECT_FLOAT32)
		v = u.data.via.f64;
	else if (u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		v = (double)u.data.via.u64;
	msgpack_unpacked_destroy(&u);
	return v;
}

/* A chain 1 -> 2 -> ... -> 100, each adding 1 to its input, all
 * submitted before the first finishes: every link runs once, in order,
 * and the last holds 100. */
static void
test_chain(void **state)
{
	char          url[128];
	ferry_client *c;
	struct h_peer p;
	struct got    g = { 0 };
	uint8_t       args[64];
	size_t        len;
	(void)state;

	h_ipc_url(url, sizeof(url), "gchain");
	c = h_cluster(url, NULL, 2, NULL);
	h_peer_open(&p, url);
	h_peer_hello(&p, 0x6a1);
	len = pack_pair(args, sizeof(args), 0, 0, 0, 1);
	submit(&p, 1, "add", args, len, NULL, 0, 0);
	for (uint64_t i = 2; i <= 100; i++) {
		uint64_t dep = i - 1;
		len          = pack_pair(args, sizeof(args), dep, 0, 0, 1);
		submit(&p, i, "add", args, len, &dep, 1, 0);
	}
	collect(&p, &g, 100);
	for (uint64_t i = 1; i <= 100; i++)
		assert_true(num(&g, i) == (double)i);
	assert_int_equal(h_status_uint(c, "waiting"), 0);
	assert_int_equal(h_status_uint(c, "done"), 100);
	got_free(&g);
	h_peer_close(&p);
	ferry_client_close(c);
}

/* A diamond (1 -> 2, 1 -> 3, 2 + 3 -> 4), the same reference twice in one
 * task (5 = 4 + 4), a reference to a task that finished and whose result
 * is still held, and one to a task whose result was acknowledged. */
static void
test_diamond_twice_finished(void **state)
{
	char          url[128];
	ferry_client *c;
	struct h_peer p;
	struct got    g = { 0 };
	uint8_t       args[64];
	size_t        len;
	uint64_t      d1 = 1, d23[2] = { 2, 3 }, d4 = 4, d6 = 6;
	(void)state;

	h_ipc_url(url, sizeof(url), "gdiamond");
	c = h_cluster(url, NULL, 2, NULL);
	h_peer_open(&p, url);
	h_peer_hello(&p, 0x6a2);
	len = pack_pair(args, sizeof(args), 0, 5, 0, 0);
	submit(&p, 1, "add", args, len, NULL, 0, 0); /* 5 */
	len = pack_pair(args, sizeof(args), 1, 0, 0, 1);
	submit(&p, 2, "add", args, len, &d1, 1, 0); /* 6 */
	len = pack_pair(args, sizeof(args), 1, 0, 0, 2);
	submit(&p, 3, "add", args, len, &d1, 1, 0); /* 7 */
	len = pack_pair(args, sizeof(args), 2, 0, 3, 0);
	submit(&p, 4, "add", args, len, d23, 2, 0); /* 13 */
	len = pack_pair(args, sizeof(args), 4, 0, 4, 0);
	submit(&p, 5, "add", args, len, &d4, 1, 0); /* 26 */
	collect(&p, &g, 5);
	assert_true(num(&g, 4) == 13);
	assert_true(num(&g, 5) == 26);
	collect(&p, &g, 5); /* one more fetch: every result so far acked */
	/* 6 finishes and is not fetched: its result is still held, and 7
	 * gets it at once */
	len = pack_pair(args, sizeof(args), 0, 40, 0, 2);
	submit(&p, 6, "add", args, len, NULL, 0, 0); /* 42 */
	assert_int_equal(h_wait_status(c, "done", 6, 15000), 0);
	len = pack_pair(args, sizeof(args), 6, 0, 0, 1);
	submit(&p, 7, "add", args, len, &d6, 1, 0); /* 43 */
	/* 1 was fetched and acknowledged: nothing is left of it */
	len = pack_pair(args, sizeof(args), 1, 0, 0, 1);
	submit(&p, 8, "add", args, len, &d1, 1, 0);
	collect(&p, &g, 8);
	assert_true(num(&g, 6) == 42);
	assert_true(num(&g, 7) == 43);
	assert_int_equal(g.code[8], FERRY_EDEPENDENCY);
	assert_non_null(strstr(g.data[8], "input task 1 is not known"));
	got_free(&g);
	h_peer_close(&p);
	ferry_client_close(c);
}

/* 1 sleeps, 2 fails, 3 and 4 chain on it: 3 and 4 end with
 * FERRY_EDEPENDENCY naming task 2 and its error, without running; a
 * run_anyway task 5 on 2 runs with the error value in its place (echo
 * returns it). */
static void
test_failure_propagates(void **state)
{
	char          url[128];
	ferry_client *c;
	struct h_peer p;
	struct got    g = { 0 };
	uint8_t       args[64];
	size_t        len, n;
	uint64_t      d2 = 2, d3 = 3;
	uint8_t       ref[FERRY_FUTURE_REF_MAX + 1];
	(void)state;

	h_ipc_url(url, sizeof(url), "gfail");
	c = h_cluster(url, NULL, 2, NULL);
	h_peer_open(&p, url);
	h_peer_hello(&p, 0x6a3);
	submit(&p, 1, "sleep_ms", (const uint8_t *)"\x91\x14", 2, NULL, 0, 0);
	len = h_pack_str1(args, sizeof(args), "boom");
	submit(&p, 2, "fail", args, len, NULL, 0, 0);
	len = pack_pair(args, sizeof(args), 2, 0, 0, 1);
	submit(&p, 3, "add", args, len, &d2, 1, 0);
	len = pack_pair(args, sizeof(args), 3, 0, 0, 1);
	submit(&p, 4, "add", args, len, &d3, 1, 0);
	/* [ref(2)] to echo, run anyway */
	ref[0] = 0x91;
	assert_int_equal(futref_encode(ref + 1, sizeof(ref) - 1, &n, 2, 0,
	                     NULL, 0),
	    0);
	submit(&p, 5, "echo", ref, n + 1, &d2, 1, 1);
	collect(&p, &g, 5);
	assert_int_equal(g.code[2], FERRY_ETASK);
	assert_int_equal(g.code[3], FERRY_EDEPENDENCY);
	assert_int_equal(g.code[4], FERRY_EDEPENDENCY);
	assert_non_null(strstr(g.data[3], "input task 2 failed"));
	assert_non_null(strstr(g.data[3], "boom"));
	/* the first failed ancestor, not the task in between */
	assert_string_equal(g.data[4], g.data[3]);
	assert_int_equal(g.code[5], 0);
	assert_non_null(memmem(g.data[5], g.len[5], "error", 5));
	assert_non_null(memmem(g.data[5], g.len[5], "boom", 4));
	/* 3 and 4 never ran: only 1, 2 and 5 reached a worker */
	assert_int_equal(h_status_uint(c, "done"), 2);
	got_free(&g);
	h_peer_close(&p);
	ferry_client_close(c);
}

/* Cancelling a chain's head cancels the waiting links, none runs. */
static void
test_cancel_head(void **state)
{
	char          url[128];
	ferry_client *c;
	struct h_peer p;
	struct got    g = { 0 };
	uint8_t       args[64];
	size_t        len;
	uint64_t      head = 1;
	(void)state;

	h_ipc_url(url, sizeof(url), "gcancel");
	c = h_cluster(url, NULL, 1, NULL);
	h_peer_open(&p, url);
	h_peer_hello(&p, 0x6a4);
	submit(&p, 1, "sleep_ms", (const uint8_t *)"\x91\xcd\x75\x30", 4, NULL,
	    0, 0); /* 30 s */
	for (uint64_t i = 2; i <= 20; i++) {
		uint64_t dep = i - 1;
		len          = pack_pair(args, sizeof(args), dep, 0, 0, 1);
		submit(&p, i, "add", args, len, &dep, 1, 0);
	}
	assert_int_equal(h_wait_status(c, "waiting", 19, 10000), 0);
	proto_writer_reset(&p.w);
	proto_write_cancel(&p.w, &head, 1);
	assert_int_equal(h_peer_call(&p, 10000), 0);
	collect(&p, &g, 20);
	for (uint64_t i = 1; i <= 20; i++)
		assert_int_equal(g.code[i], FERRY_ECANCELED);
	assert_non_null(strstr(g.data[20], "input task 1 was cancelled"));
	assert_int_equal(h_status_uint(c, "waiting"), 0);
	assert_int_equal(h_status_uint(c, "done"), 0);
	got_free(&g);
	h_peer_close(&p);
	ferry_client_close(c);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_chain, h_teardown),
		cmocka_unit_test_teardown(
		    test_diamond_twice_finished, h_teardown),
		cmocka_unit_test_teardown(test_failure_propagates, h_teardown),
		cmocka_unit_test_teardown(test_cancel_head, h_teardown),
	};
	h_init(argc, argv);
	return H_RUN_TESTS(tests, NULL);
}
