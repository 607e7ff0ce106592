/*
 * test_req.c - the request layer of the scheduler's peers (common/req.c):
 * ids are fresh and never 0, replies find their request, abandoning a
 * lost connection sees every outstanding request once, busy slots are not
 * reused, a request id travels in the message header, and a hello's
 * answer is classified and read as the peers need.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ferry/ferry.h"
#include "proto.h"
#include "req.h"

struct my_req {
	struct req head; /* first, as req.h asks */
	int        payload;
	int        in_flight; /* the peer's own "operations not finished" */
};

static int
my_busy(const struct req *r)
{
	return ((const struct my_req *)r)->in_flight;
}

static void
test_ids_and_slots(void **state)
{
	struct my_req  slots[4];
	struct req_set set;
	struct req    *r[5];
	(void)state;

	memset(slots, 0, sizeof(slots));
	req_set_init(&set, slots, sizeof(slots[0]), 4, NULL);
	for (int i = 0; i < 4; i++) {
		assert_non_null(r[i] = req_new(&set, 10 + i));
		assert_int_not_equal(r[i]->id, 0);
		for (int j = 0; j < i; j++)
			assert_int_not_equal(r[i]->id, r[j]->id);
	}
	/* every slot outstanding: none left */
	assert_null(req_new(&set, 99));
	assert_ptr_equal(req_find(&set, r[2]->id), r[2]);
	assert_ptr_equal(req_of_kind(&set, 13), r[3]);
	assert_null(req_find(&set, 0x7ffffff0));
	/* a reply: its slot is free again, and its id no longer found */
	{
		uint32_t id = r[1]->id;
		req_done(r[1]);
		assert_null(req_find(&set, id));
		assert_non_null(r[4] = req_new(&set, 20));
		assert_int_not_equal(r[4]->id, id);
	}
}

static int dropped;

static void
count_drop(struct req *r, void *arg)
{
	(void)arg;
	assert_int_not_equal(r->id, 0);
	dropped++;
}

static void
test_abandon_and_busy(void **state)
{
	struct my_req  slots[3];
	struct req_set set;
	struct req    *a, *b;
	(void)state;

	memset(slots, 0, sizeof(slots));
	req_set_init(&set, slots, sizeof(slots[0]), 3, my_busy);
	assert_non_null(a = req_new(&set, 1));
	assert_non_null(b = req_new(&set, 2));
	((struct my_req *)a)->in_flight = 1;
	dropped = 0;
	req_abandon(&set, count_drop, NULL);
	assert_int_equal(dropped, 2);
	assert_int_equal(a->id, 0);
	assert_int_equal(b->id, 0);
	assert_null(req_of_kind(&set, 1));
	/* a's operations have not finished: its slot is not handed out */
	for (int i = 0; i < 2; i++) {
		struct req *n = req_new(&set, 3);
		assert_non_null(n);
		assert_ptr_not_equal(n, a);
	}
	assert_null(req_new(&set, 3));
	((struct my_req *)a)->in_flight = 0;
	assert_ptr_equal(req_new(&set, 3), a);
}

static void
test_message_header(void **state)
{
	struct proto_writer w;
	nng_msg            *msg;
	uint32_t            id = 0;
	(void)state;

	proto_writer_init(&w);
	proto_write_status(&w);
	assert_int_equal(req_msg(&msg, &w, 0x1234), 0);
	assert_int_equal(req_reply_id(msg, &id), 0);
	assert_int_equal(id, 0x1234);
	assert_int_equal(nng_msg_len(msg), w.buf.size);
	assert_memory_equal(nng_msg_body(msg), w.buf.data, w.buf.size);
	nng_msg_free(msg);
	/* without an id (a REQ context adds its own): no header */
	assert_int_equal(req_msg(&msg, &w, 0), 0);
	assert_int_equal(req_reply_id(msg, &id), -1);
	nng_msg_free(msg);
	proto_writer_fini(&w);
}

static void
test_hello_answers(void **state)
{
	struct req_link      l;
	struct proto_writer  w;
	struct proto_decoder d;
	struct proto_msg     m;
	char                 err[128];
	int                  rv;
	(void)state;

	req_link_init(&l, 64u << 20);
	assert_int_equal(l.hb_ms, 1000);
	assert_int_equal(l.hb_timeout_ms, 5000);
	proto_writer_init(&w);
	proto_decoder_init(&d);

	/* a welcome: the link takes the id, heartbeats and a lower limit */
	proto_writer_reset(&w);
	proto_open(&w, PROTO_WELCOME);
	proto_put_uint(&w, "id", 42);
	proto_put_uint(&w, "heartbeat_ms", 250);
	proto_put_uint(&w, "heartbeat_timeout_ms", 900);
	proto_put_uint(&w, "max_message_size", 1u << 20);
	proto_end(&w);
	rv = proto_decode(&d, w.buf.data, w.buf.size, &m, err, sizeof(err));
	assert_int_equal(req_link_answer(&l, rv, &m), REQ_WELCOMED);
	assert_int_equal(l.id, 42);
	assert_int_equal(l.hb_ms, 250);
	assert_int_equal(l.hb_timeout_ms, 900);
	assert_int_equal(l.max_msg, 1u << 20);

	/* an error: refused, with its code */
	proto_writer_reset(&w);
	proto_write_error(&w, FERRY_EAUTH, "authentication failed");
	rv = proto_decode(&d, w.buf.data, w.buf.size, &m, err, sizeof(err));
	assert_int_equal(req_link_answer(&l, rv, &m), REQ_REFUSED);
	assert_int_equal(m.code, FERRY_EAUTH);

	/* something else */
	proto_writer_reset(&w);
	proto_write_status(&w);
	rv = proto_decode(&d, w.buf.data, w.buf.size, &m, err, sizeof(err));
	assert_int_equal(req_link_answer(&l, rv, &m), REQ_UNEXPECTED);

	/* garbage */
	rv = proto_decode(&d, "\xc1", 1, &m, err, sizeof(err));
	assert_int_equal(req_link_answer(&l, rv, &m), REQ_BAD);
	assert_int_equal(l.id, 42); /* unchanged by what was not a welcome */
	proto_writer_fini(&w);
	proto_decoder_fini(&d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids_and_slots),
		cmocka_unit_test(test_abandon_and_busy),
		cmocka_unit_test(test_message_header),
		cmocka_unit_test(test_hello_answers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
