/*
 * test_client.c - libferry's side of task graphs against a stand-in
 * scheduler in this process (an inproc socket the test answers by hand):
 * future references, what a submit carries for them (the results and
 * failures the client knows put in place, the deps), and the
 * acknowledgement of a result held back while a submit that depends on
 * it is unanswered.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "ferry/ferry.h"
#include "futref.h"
#include "proto.h"

/* ------------------------------------------------- the stand-in */

#define MAX_HELD 64

struct fake {
	char                 url[64];
	nng_socket           sock; /* raw REP: replies in any order */
	struct proto_decoder dec;
	struct proto_writer  w;
	struct proto_msg     m; /* the request fake_recv returned last */
	nng_msg             *held[MAX_HELD]; /* received, not yet asked */
	int                  n_held;
	pthread_t            hello;
	int                  hello_rv;
	ferry_client        *c;
};

/* Decode msg into f->m; its type, or -1. */
static int
decode(struct fake *f, nng_msg *msg)
{
	char err[256];
	if (proto_decode(&f->dec, nng_msg_body(msg), nng_msg_len(msg), &f->m,
	        err, sizeof(err)) != 0)
		return -1;
	return f->m.type;
}

/* Answer request req with f->w (req is freed). */
static int
reply(struct fake *f, nng_msg *req)
{
	nng_msg *rep;
	int      rv;

	if ((rv = nng_msg_alloc(&rep, 0)) != 0)
		return rv;
	/* raw REP: the request's header routes the reply back */
	if ((rv = nng_msg_header_append(rep, nng_msg_header(req),
	         nng_msg_header_len(req))) != 0 ||
	    (rv = nng_msg_append(rep, f->w.buf.data, f->w.buf.size)) != 0 ||
	    (rv = nng_sendmsg(f->sock, rep, 0)) != 0) {
		nng_msg_free(rep);
		return rv;
	}
	nng_msg_free(req);
	return 0;
}

/* The next request of type, decoded in f->m (others received meanwhile
 * are kept for later); NULL after 5 s. */
static nng_msg *
recv_type(struct fake *f, int type)
{
	nng_msg *msg;

	for (int i = 0; i < f->n_held; i++) {
		if (decode(f, f->held[i]) != type)
			continue;
		msg = f->held[i];
		memmove(&f->held[i], &f->held[i + 1],
		    (size_t)(f->n_held - i - 1) * sizeof(msg));
		f->n_held--;
		return msg;
	}
	while (nng_recvmsg(f->sock, &msg, 0) == 0) {
		if (decode(f, msg) == type)
			return msg;
		if (f->n_held == MAX_HELD) {
			nng_msg_free(msg);
			return NULL;
		}
		f->held[f->n_held++] = msg;
	}
	return NULL;
}

/* Welcome the next hello (resumed: the session was known). */
static int
welcome(struct fake *f, int resumed, uint64_t max_tag)
{
	struct proto_welcome wm = { 0 };
	nng_msg             *req;

	if ((req = recv_type(f, PROTO_HELLO)) == NULL)
		return -1;
	wm.id                   = 1;
	wm.heartbeat_ms         = 1000;
	wm.heartbeat_timeout_ms = 5000;
	wm.client               = 1;
	wm.resumed              = (uint64_t)resumed;
	wm.max_tag              = max_tag;
	proto_writer_reset(&f->w);
	proto_write_welcome(&f->w, &wm);
	return reply(f, req);
}

/* The first hello comes while the test thread is in connect. */
static void *
hello_main(void *arg)
{
	struct fake *f = arg;
	f->hello_rv    = welcome(f, 0, 0);
	return NULL;
}

static ferry_client *
fake_start(struct fake *f)
{
	static int               n;
	struct ferry_client_opts o;

	memset(f, 0, sizeof(*f));
	snprintf(f->url, sizeof(f->url), "inproc://test_client_%d", n++);
	proto_decoder_init(&f->dec);
	proto_writer_init(&f->w);
	assert_int_equal(nng_rep0_open_raw(&f->sock), 0);
	assert_int_equal(nng_socket_set_ms(f->sock, NNG_OPT_RECVTIMEO, 5000),
	    0);
	assert_int_equal(nng_listen(f->sock, f->url, NULL, 0), 0);
	assert_int_equal(pthread_create(&f->hello, NULL, hello_main, f), 0);
	memset(&o, 0, sizeof(o));
	o.size               = sizeof(o);
	o.connect_timeout_ms = 5000;
	assert_int_equal(ferry_client_connect_opts(&f->c, f->url, &o), 0);
	pthread_join(f->hello, NULL);
	assert_int_equal(f->hello_rv, 0);
	return f->c;
}

static void
fake_stop(struct fake *f)
{
	ferry_client_close(f->c);
	for (int i = 0; i < f->n_held; i++)
		nng_msg_free(f->held[i]);
	nng_close(f->sock);
	proto_decoder_fini(&f->dec);
	proto_writer_fini(&f->w);
}

/* The next submit, which must carry n tasks. */
static nng_msg *
recv_submit(struct fake *f, uint32_t n)
{
	nng_msg *req = recv_type(f, PROTO_SUBMIT);
	assert_non_null(req);
	assert_int_equal(f->m.n_tasks, n);
	return req;
}

/* The next fetch; its ack. */
static uint64_t
recv_fetch(struct fake *f, nng_msg **req)
{
	*req = recv_type(f, PROTO_FETCH);
	assert_non_null(*req);
	return f->m.ack;
}

/* Accept every task of submit req. */
static void
accept_all(struct fake *f, nng_msg *req, uint64_t n)
{
	proto_writer_reset(&f->w);
	proto_write_submitted(&f->w, n, NULL);
	assert_int_equal(reply(f, req), 0);
}

/* Receive submits, accepting those without task id, until the one
 * with it, returned unanswered (*at: its index in f->m). */
static nng_msg *
recv_task(struct fake *f, uint64_t id, uint32_t *at)
{
	for (;;) {
		nng_msg *req = recv_type(f, PROTO_SUBMIT);
		assert_non_null(req);
		for (uint32_t i = 0; i < f->m.n_tasks; i++) {
			if (f->m.tasks[i].id == id) {
				*at = i;
				return req;
			}
		}
		accept_all(f, req, f->m.n_tasks);
	}
}

/* Receive and accept submits up to the one with task id. */
static void
accept_upto(struct fake *f, uint64_t id)
{
	uint32_t at;
	nng_msg *req = recv_task(f, id, &at);
	accept_all(f, req, f->m.n_tasks);
}

/* One result entry for a results message. */
struct res {
	uint64_t    id;
	int32_t     code;
	const char *data;
	size_t      len;
};

/* Answer fetch req with n results, the last with seq. */
static void
send_results(struct fake *f, nng_msg *req, const struct res *r, size_t n,
    uint64_t seq)
{
	proto_writer_reset(&f->w);
	if (n == 0) {
		proto_write_results_empty(&f->w);
	} else {
		proto_write_results_begin(&f->w);
		for (size_t i = 0; i < n; i++)
			proto_write_results_entry(&f->w, r[i].id, r[i].code,
			    r[i].data, r[i].len, 1);
		proto_write_results_end(&f->w, seq);
	}
	assert_int_equal(reply(f, req), 0);
}

/* ---------------------------------------------------------- helpers */

static ferry_future *
submit(ferry_client *c, const void *args, size_t len)
{
	ferry_future *fut = NULL;
	assert_int_equal(ferry_submit(c, "f", args, len, &fut), 0);
	return fut;
}

/* A reference to fut. */
struct ref {
	uint8_t b[FERRY_FUTURE_REF_MAX];
	size_t  n;
};

static void
make_ref(struct ref *r, const ferry_future *fut)
{
	assert_int_equal(ferry_future_ref(r->b, sizeof(r->b), &r->n, fut), 0);
}

/* Append n bytes to out (*len of them so far). */
static void
put(uint8_t *out, size_t *len, const void *b, size_t n)
{
	memcpy(out + *len, b, n);
	*len += n;
}

/* Arguments [r1, r2, ...] of n references. */
static size_t
ref_array(uint8_t *out, const struct ref *const *refs, int n)
{
	size_t len = 0;
	out[len++] = (uint8_t)(0x90 | n);
	for (int i = 0; i < n; i++) {
		memcpy(out + len, refs[i]->b, refs[i]->n);
		len += refs[i]->n;
	}
	return len;
}

/* Task i of the submit in f->m has these deps. */
static void
assert_deps(const struct fake *f, uint32_t i, const uint64_t *want,
    uint32_t n)
{
	const struct proto_task *t = &f->m.tasks[i];
	assert_int_equal(t->n_deps, n);
	for (uint32_t k = 0; k < n; k++)
		assert_true(t->deps[k].via.u64 == want[k]);
}

/* Task i of the submit in f->m has these arguments. */
static void
assert_args(const struct fake *f, uint32_t i, const void *want, size_t len)
{
	const struct proto_task *t = &f->m.tasks[i];
	assert_int_equal(t->args_len, len);
	assert_memory_equal(t->args, want, len);
}

static uint64_t
duplicates(ferry_client *c)
{
	struct ferry_client_stats st;
	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	assert_int_equal(ferry_client_stats(c, &st), 0);
	return st.duplicates;
}

/* ------------------------------------------------------------ tests */

static void
test_future_ref_args(void **state)
{
	struct fake    f;
	ferry_client  *c = fake_start(&f);
	ferry_future  *x = submit(c, "\x91\x01", 2);
	uint8_t        buf[FERRY_FUTURE_REF_MAX];
	size_t         n = 0;
	msgpack_zone   z;
	msgpack_object o;
	struct fut_ref r;
	char           err[256];
	(void)state;

	assert_int_equal(ferry_future_ref(NULL, sizeof(buf), &n, x),
	    FERRY_EINVAL);
	assert_int_equal(ferry_future_ref(buf, sizeof(buf), NULL, x),
	    FERRY_EINVAL);
	assert_int_equal(ferry_future_ref(buf, sizeof(buf), &n, NULL),
	    FERRY_EINVAL);
	assert_int_equal(ferry_future_ref(buf, 4, &n, x), FERRY_ETOOBIG);

	/* a plain reference to x's task, as one msgpack value */
	assert_int_equal(ferry_future_ref(buf, sizeof(buf), &n, x), 0);
	msgpack_zone_init(&z, 256);
	{
		size_t off = 0;
		assert_int_equal(msgpack_unpack((const char *)buf, n, &off, &z,
		                     &o),
		    MSGPACK_UNPACK_SUCCESS);
		assert_int_equal(off, n);
	}
	assert_int_equal(o.type, MSGPACK_OBJECT_EXT);
	assert_int_equal(o.via.ext.type, FUTREF_EXT_TYPE);
	assert_int_equal(futref_decode(o.via.ext.ptr, o.via.ext.size, &r, err,
	                     sizeof(err)),
	    0);
	assert_true(r.tag == ferry_future_id(x));
	assert_int_equal(r.code, 0);
	msgpack_zone_destroy(&z);

	ferry_future_free(x);
	fake_stop(&f);
}

/* References to pending tasks stay, and their tags go as deps (each
 * once, in order); the arguments travel as they were written. */
static void
test_submit_pending_deps(void **state)
{
	struct fake   f;
	ferry_client *c = fake_start(&f);
	ferry_future *x, *y, *b, *m[2];
	struct ref    rx, ry;
	uint8_t       args[128];
	size_t        len = 0, mlens[2];
	const void   *margs[2];
	nng_msg      *req;
	uint32_t      at;
	static const uint64_t both[] = { 1, 2 }, only_y[] = { 2 };
	(void)state;

	x = submit(c, "\x91\x01", 2);
	y = submit(c, "\x91\x02", 2);
	make_ref(&rx, x);
	make_ref(&ry, y);
	/* [ry, {"k": rx, "again": ry}, rx] */
	put(args, &len, "\x93", 1);
	put(args, &len, ry.b, ry.n);
	put(args, &len, "\x82\xa1k", 3);
	put(args, &len, rx.b, rx.n);
	put(args, &len, "\xa5" "again", 6);
	put(args, &len, ry.b, ry.n);
	put(args, &len, rx.b, rx.n);
	b = submit(c, args, len);

	req = recv_task(&f, ferry_future_id(b), &at);
	assert_args(&f, at, args, len);
	assert_deps(&f, at, both, 2);
	accept_all(&f, req, f.m.n_tasks);

	/* a map: each task carries its own */
	len      = ref_array(args, (const struct ref *[]){ &ry }, 1);
	margs[0] = margs[1] = args;
	mlens[0] = mlens[1] = len;
	assert_int_equal(ferry_map(c, "f", 2, margs, mlens, m), 0);
	req = recv_submit(&f, 2);
	assert_deps(&f, 0, only_y, 1);
	assert_deps(&f, 1, only_y, 1);
	accept_all(&f, req, 2);

	ferry_future_free(x);
	ferry_future_free(y);
	ferry_future_free(b);
	ferry_future_free(m[0]);
	ferry_future_free(m[1]);
	fake_stop(&f);
}

/* Results the client holds go in place of their references; failures it
 * knows become failed inputs, listed among the deps (the scheduler ends
 * the task, or gives it the error with run_anyway). */
static void
test_submit_known_results(void **state)
{
	struct fake    f;
	ferry_client  *c = fake_start(&f);
	ferry_future  *x, *y, *b;
	struct ref     rx, ry;
	uint8_t        args[128];
	size_t         len;
	nng_msg       *req;
	msgpack_zone   z;
	msgpack_object o;
	struct fut_ref r;
	char           err[256];
	const struct res done[] = {
		{ 1, 0, "\x2a", 1 },
		{ 2, FERRY_ETASK, "ValueError: boom", 16 },
	};
	(void)state;

	x = submit(c, "\x91\x01", 2);
	y = submit(c, "\x91\x02", 2);
	make_ref(&rx, x); /* before it finished */
	accept_upto(&f, ferry_future_id(y));
	recv_fetch(&f, &req);
	send_results(&f, req, done, 2, 2);
	assert_int_equal(ferry_future_wait(x, 5000), 0);
	assert_int_equal(ferry_future_wait(y, 5000), 0);
	make_ref(&ry, y); /* after */

	len = ref_array(args, (const struct ref *[]){ &rx, &ry }, 2);
	b   = submit(c, args, len);
	req = recv_submit(&f, 1);
	assert_int_equal(f.m.tasks[0].n_deps, 1);
	assert_int_equal(f.m.tasks[0].deps[0].via.u64, ferry_future_id(y));
	/* [42, failed input 2] */
	msgpack_zone_init(&z, 256);
	{
		size_t off = 0;
		assert_int_equal(msgpack_unpack(f.m.tasks[0].args,
		                     f.m.tasks[0].args_len, &off, &z, &o),
		    MSGPACK_UNPACK_SUCCESS);
	}
	assert_int_equal(o.type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(o.via.array.size, 2);
	assert_true(o.via.array.ptr[0].via.u64 == 42);
	assert_int_equal(o.via.array.ptr[1].type, MSGPACK_OBJECT_EXT);
	assert_int_equal(o.via.array.ptr[1].via.ext.type, FUTREF_EXT_TYPE);
	assert_int_equal(futref_decode(o.via.array.ptr[1].via.ext.ptr,
	                     o.via.array.ptr[1].via.ext.size, &r, err,
	                     sizeof(err)),
	    0);
	assert_true(r.tag == 2);
	assert_int_equal(r.code, FERRY_ETASK);
	assert_int_equal(r.msg_len, 16);
	assert_memory_equal(r.msg, "ValueError: boom", 16);
	msgpack_zone_destroy(&z);
	accept_all(&f, req, 1);

	ferry_future_free(x);
	ferry_future_free(y);
	ferry_future_free(b);
	fake_stop(&f);
}

/* Bad references are refused at submit, with nothing submitted; before
 * any reference is made, arguments are not even looked at. */
static void
test_submit_bad_refs(void **state)
{
	struct fake               f;
	ferry_client             *c = fake_start(&f);
	ferry_future             *x, *y, *out = NULL, *m[2] = { NULL, NULL };
	struct ref                rx;
	uint8_t                   args[64], later[FERRY_FUTURE_REF_MAX];
	uint8_t                   self[FERRY_FUTURE_REF_MAX];
	uint8_t                   other[FERRY_FUTURE_REF_MAX];
	size_t                    len, n_later, n_self, n_other;
	struct ferry_client_stats st;
	const void               *margs[2];
	size_t                    mlens[2];
	(void)state;

	/* not msgpack, with the type byte: sent as it is (the worker will
	 * refuse it), as no reference was ever made */
	x = submit(c, "\x93\x47", 2);
	accept_upto(&f, ferry_future_id(x));

	make_ref(&rx, x);
	assert_int_equal(ferry_submit(c, "f", "\x93\x47", 2, &out),
	    FERRY_EINVAL);
	/* a task not submitted yet: a later one, or the task itself */
	assert_int_equal(futref_encode(later, sizeof(later), &n_later, 99, 0,
	                     NULL, 0),
	    0);
	assert_int_equal(ferry_submit(c, "f", later, n_later, &out),
	    FERRY_EINVAL);
	assert_int_equal(futref_encode(self, sizeof(self), &n_self,
	                     ferry_future_id(x) + 1, 0, NULL, 0),
	    0);
	assert_int_equal(ferry_submit(c, "f", self, n_self, &out),
	    FERRY_EINVAL);
	/* a reference made on a client of another session, to a task id
	 * this one also has */
	assert_int_equal(futref_encode_in(other, sizeof(other), &n_other,
	                     ferry_future_id(x), ferry_client_session(c) + 1,
	                     0, NULL, 0),
	    0);
	assert_int_equal(ferry_submit(c, "f", other, n_other, &out),
	    FERRY_EINVAL);
	/* a malformed reference: {"task": "1"} */
	len = 0;
	put(args, &len, "\xd7", 1); /* fixext 8 */
	args[len++] = FUTREF_EXT_TYPE;
	put(args, &len, "\x81\xa4task\xa1\x31", 8);
	assert_int_equal(ferry_submit(c, "f", args, len, &out), FERRY_EINVAL);
	assert_null(out);
	/* a map with one bad task: none of it */
	mlens[0] = ref_array(args, (const struct ref *[]){ &rx }, 1);
	margs[0] = args;
	margs[1] = later;
	mlens[1] = n_later;
	assert_int_equal(ferry_map(c, "f", 2, margs, mlens, m), FERRY_EINVAL);
	assert_null(m[0]);

	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	assert_int_equal(ferry_client_stats(c, &st), 0);
	assert_int_equal(st.submitted, 2); /* x, and the map's first */

	/* the next good one: its tag follows the map's withdrawn one, and
	 * it may refer to it (the client issued it) */
	y = submit(c, self, n_self);
	{
		uint32_t at;
		nng_msg *req = recv_task(&f, ferry_future_id(y), &at);
		static const uint64_t d[] = { 2 };
		assert_true(ferry_future_id(y) == ferry_future_id(x) + 2);
		assert_deps(&f, at, d, 1);
		accept_all(&f, req, f.m.n_tasks);
	}

	ferry_future_free(x);
	ferry_future_free(y);
	fake_stop(&f);
}

/* The ack stays below a result that a submit in flight depends on, and
 * catches up, lowest frozen first, as the submits are answered. */
static void
test_ack_freeze(void **state)
{
	struct fake   f;
	ferry_client *c = fake_start(&f);
	ferry_future *x1, *x2, *b1, *b2;
	struct ref    r1, r2;
	uint8_t       args[64];
	size_t        len;
	nng_msg      *s1, *s2, *fetch;
	const struct res done[] = {
		{ 1, 0, "\x01", 1 },
		{ 2, 0, "\x02", 1 },
	};
	static const uint64_t d1[] = { 1 }, d2[] = { 2 };
	(void)state;

	x1 = submit(c, "\x91\x01", 2);
	x2 = submit(c, "\x91\x02", 2);
	accept_upto(&f, ferry_future_id(x2));
	make_ref(&r1, x1);
	make_ref(&r2, x2);
	len = ref_array(args, (const struct ref *[]){ &r1 }, 1);
	b1  = submit(c, args, len);
	s1  = recv_submit(&f, 1);
	assert_deps(&f, 0, d1, 1);
	len = ref_array(args, (const struct ref *[]){ &r2 }, 1);
	b2  = submit(c, args, len);
	s2  = recv_submit(&f, 1);
	assert_deps(&f, 0, d2, 1);

	/* both inputs finish while both submits are unanswered */
	assert_int_equal(recv_fetch(&f, &fetch), 0);
	send_results(&f, fetch, done, 2, 2);
	assert_int_equal(ferry_future_wait(x1, 5000), 0);
	assert_int_equal(ferry_future_wait(x2, 5000), 0);
	assert_int_equal(recv_fetch(&f, &fetch), 0); /* both frozen */

	accept_all(&f, s1, 1);
	send_results(&f, fetch, NULL, 0, 0);
	assert_int_equal(recv_fetch(&f, &fetch), 1); /* x2 still frozen */

	accept_all(&f, s2, 1);
	send_results(&f, fetch, NULL, 0, 0);
	assert_int_equal(recv_fetch(&f, &fetch), 2);
	nng_msg_free(fetch);
	assert_int_equal(duplicates(c), 0);

	ferry_future_free(x1);
	ferry_future_free(x2);
	ferry_future_free(b1);
	ferry_future_free(b2);
	fake_stop(&f);
}

/* A dependent rejected as full goes again later, resolved again: its
 * input finished meanwhile (and was freed by the caller), so the result
 * is in place and the input's ack is no longer held. */
static void
test_full_resend_resolved(void **state)
{
	struct fake         f;
	ferry_client       *c = fake_start(&f);
	ferry_future       *x, *b, *c2;
	struct ref          rx;
	uint8_t             args[64];
	size_t              len;
	nng_msg            *sb, *fetch;
	struct proto_writer rej;
	const struct res    done[] = { { 1, 0, "\x2a", 1 } };
	static const uint64_t d[] = { 1 };
	(void)state;

	x = submit(c, "\x91\x01", 2);
	accept_upto(&f, ferry_future_id(x));
	make_ref(&rx, x);
	len = ref_array(args, (const struct ref *[]){ &rx }, 1);
	b   = submit(c, args, len);
	sb  = recv_submit(&f, 1);
	assert_deps(&f, 0, d, 1);

	assert_int_equal(recv_fetch(&f, &fetch), 0);
	send_results(&f, fetch, done, 1, 1);
	assert_int_equal(ferry_future_wait(x, 5000), 0);
	ferry_future_free(x); /* b was submitted: it keeps what it needs */
	assert_int_equal(recv_fetch(&f, &fetch), 0);

	proto_writer_init(&rej);
	proto_pack_result(&rej, ferry_future_id(b), FERRY_EFULL, "full", 4);
	proto_writer_reset(&f.w);
	proto_write_submitted(&f.w, 0, &rej);
	proto_writer_fini(&rej);
	assert_int_equal(reply(&f, sb), 0);
	send_results(&f, fetch, NULL, 0, 0);
	assert_int_equal(recv_fetch(&f, &fetch), 1);

	sb = recv_submit(&f, 1);
	assert_args(&f, 0, "\x91\x2a", 2);
	assert_int_equal(f.m.tasks[0].n_deps, 0);
	accept_all(&f, sb, 1);
	/* replies are taken in order: the next fetch comes after the
	 * accept was */
	send_results(&f, fetch, NULL, 0, 0);
	assert_int_equal(recv_fetch(&f, &fetch), 1);

	/* once b was accepted nothing holds x: a reference made before it
	 * was freed now names a task the client no longer knows, and is
	 * sent as it is, for the scheduler to judge */
	c2 = submit(c, args, len);
	sb = recv_submit(&f, 1);
	assert_args(&f, 0, args, len);
	assert_deps(&f, 0, d, 1);
	accept_all(&f, sb, 1);

	nng_msg_free(fetch);
	ferry_future_free(b);
	ferry_future_free(c2);
	fake_stop(&f);
}

/* A submit refused whole fails its tasks, and the ack catches up. */
static void
test_refused_submit_thaws(void **state)
{
	struct fake      f;
	ferry_client    *c = fake_start(&f);
	ferry_future    *x, *b;
	struct ref       rx;
	uint8_t          args[64];
	size_t           len;
	nng_msg         *sb, *fetch;
	const struct res done[] = { { 1, 0, "\x2a", 1 } };
	(void)state;

	x = submit(c, "\x91\x01", 2);
	accept_upto(&f, ferry_future_id(x));
	make_ref(&rx, x);
	len = ref_array(args, (const struct ref *[]){ &rx }, 1);
	b   = submit(c, args, len);
	sb  = recv_submit(&f, 1);
	assert_int_equal(recv_fetch(&f, &fetch), 0);
	send_results(&f, fetch, done, 1, 1);
	assert_int_equal(ferry_future_wait(x, 5000), 0);
	assert_int_equal(recv_fetch(&f, &fetch), 0);

	proto_writer_reset(&f.w);
	proto_write_error(&f.w, FERRY_EPROTO, "no");
	assert_int_equal(reply(&f, sb), 0);
	assert_int_equal(ferry_future_wait(b, 5000), 0);
	assert_int_equal(ferry_future_errcode(b), FERRY_EPROTO);
	send_results(&f, fetch, NULL, 0, 0);
	assert_int_equal(recv_fetch(&f, &fetch), 1);

	nng_msg_free(fetch);
	ferry_future_free(x);
	ferry_future_free(b);
	fake_stop(&f);
}

/* The connection drops while a dependent's submit is unanswered: the
 * scheduler may have it, so its input's ack stays held until the submit
 * sent again is answered; that one carries the result in place.  The
 * input's result, delivered again, is no duplicate. */
static void
test_reconnect_keeps_freeze(void **state)
{
	struct fake      f;
	ferry_client    *c = fake_start(&f);
	ferry_future    *x, *b;
	struct ref       rx;
	uint8_t          args[64];
	size_t           len;
	nng_msg         *sb, *fetch;
	const struct res done[] = { { 1, 0, "\x2a", 1 } };
	(void)state;

	x = submit(c, "\x91\x01", 2);
	accept_upto(&f, ferry_future_id(x));
	make_ref(&rx, x);
	len = ref_array(args, (const struct ref *[]){ &rx }, 1);
	b   = submit(c, args, len);
	sb  = recv_submit(&f, 1);
	assert_int_equal(recv_fetch(&f, &fetch), 0);
	send_results(&f, fetch, done, 1, 1);
	assert_int_equal(ferry_future_wait(x, 5000), 0);
	assert_int_equal(recv_fetch(&f, &fetch), 0);

	/* drop the connection with both unanswered */
	assert_int_equal(nng_pipe_close(nng_msg_get_pipe(fetch)), 0);
	nng_msg_free(fetch);
	nng_msg_free(sb);
	assert_int_equal(welcome(&f, 1, 2), 0);

	sb = recv_submit(&f, 1);
	assert_args(&f, 0, "\x91\x2a", 2);
	assert_int_equal(f.m.tasks[0].n_deps, 0);
	/* the scheduler sends x's result again (never acknowledged) */
	assert_int_equal(recv_fetch(&f, &fetch), 0);
	send_results(&f, fetch, done, 1, 1);
	assert_int_equal(recv_fetch(&f, &fetch), 0); /* still held */
	accept_all(&f, sb, 1);
	send_results(&f, fetch, NULL, 0, 0);
	assert_int_equal(recv_fetch(&f, &fetch), 1);
	nng_msg_free(fetch);
	assert_int_equal(duplicates(c), 0);

	ferry_future_free(x);
	ferry_future_free(b);
	fake_stop(&f);
}

static void
test_run_anyway(void **state)
{
	struct fake            f;
	ferry_client          *c = fake_start(&f);
	struct ferry_task_opts o;
	ferry_future          *fut[4];
	nng_msg               *req;
	const int              v[4]    = { -1, 0, 1, 5 };
	const int              set[4]  = { 0, 1, 1, 1 };
	const uint32_t         want[4] = { 0, 0, 1, 1 };
	(void)state;

	ferry_task_opts_init(&o);
	assert_int_equal(o.run_anyway, -1);
	for (int i = 0; i < 4; i++) {
		o.run_anyway = v[i];
		assert_int_equal(ferry_submit_opts(c, "f", "\xc0", 1, &o,
		                     &fut[i]),
		    0);
		req = recv_submit(&f, 1);
		assert_int_equal((f.m.tasks[0].opts.set & PROTO_OPT_RUN_ANYWAY) !=
		        0,
		    set[i]);
		assert_int_equal(f.m.tasks[0].opts.run_anyway, want[i]);
		accept_all(&f, req, 1);
		ferry_future_free(fut[i]);
	}
	o.run_anyway = -2;
	assert_int_equal(ferry_submit_opts(c, "f", "\xc0", 1, &o, &fut[0]),
	    FERRY_EINVAL);
	/* a caller built before the field: not sent */
	o.size       = offsetof(struct ferry_task_opts, run_anyway);
	o.run_anyway = 1;
	assert_int_equal(ferry_submit_opts(c, "f", "\xc0", 1, &o, &fut[0]),
	    0);
	req = recv_submit(&f, 1);
	assert_int_equal(f.m.tasks[0].opts.set & PROTO_OPT_RUN_ANYWAY, 0);
	accept_all(&f, req, 1);
	ferry_future_free(fut[0]);
	fake_stop(&f);
}

/* A thread waiting on an iterator, and a future that had finished when
 * it joined: the add wakes the thread (no result is coming to). */
struct waiter {
	ferry_iter   *it;
	ferry_future *got;
	int           rv;
};

static void *
waiter_main(void *arg)
{
	struct waiter *w = arg;
	size_t         n;
	w->rv = ferry_iter_next_many(w->it, 5000, &w->got, NULL, 1, &n);
	return NULL;
}

static void
test_iter_add_wakes(void **state)
{
	struct fake      f;
	ferry_client    *c = fake_start(&f);
	ferry_future    *a;
	nng_msg         *req;
	pthread_t        t;
	struct waiter    w = { NULL, NULL, -1 };
	const struct res r = { 1, 0, "\x05", 1 };
	(void)state;

	assert_int_equal(ferry_iter_new(c, &w.it), 0);
	a = submit(c, "\x90", 1);
	accept_upto(&f, 1);
	recv_fetch(&f, &req);
	send_results(&f, req, &r, 1, 1);
	assert_int_equal(ferry_future_wait(a, 5000), 0);
	/* the thread waits; nothing more will come from the scheduler */
	assert_int_equal(pthread_create(&t, NULL, waiter_main, &w), 0);
	usleep(50000);
	assert_int_equal(ferry_iter_add(w.it, &a, NULL, 1), 0);
	pthread_join(t, NULL);
	/* woken by the add: without it the wait times out */
	assert_int_equal(w.rv, 0);
	assert_ptr_equal(w.got, a);
	ferry_future_free(a);
	ferry_iter_free(w.it);
	fake_stop(&f);
}

/* An open iterator (ferry_iter_new): futures join over time, come back
 * with their data pointers, many at a time; having yielded all is no
 * end, until the client closes. */
static void
test_iter_open(void **state)
{
	struct fake   f;
	ferry_client *c = fake_start(&f);
	ferry_iter   *it, *other;
	ferry_future *a, *b, *x, *got[4];
	void         *data[4];
	void         *pa, *pb[2];
	int           da, db[2];
	size_t        n;
	nng_msg      *req;
	const struct res ra = { 1, 0, "\x05", 1 };
	const struct res rb[] = {
		{ 2, 0, "\x06", 1 },
		{ 3, FERRY_ETASK, "bad", 3 },
	};
	(void)state;

	pa    = &da;
	pb[0] = &db[0];
	pb[1] = &db[1];
	assert_int_equal(ferry_iter_new(c, &it), 0);
	/* empty: it waits for futures to come, and times out */
	assert_int_equal(ferry_iter_next_many(it, 10, got, data, 4, &n),
	    FERRY_ETIMEDOUT);
	a = submit(c, "\x90", 1);
	assert_int_equal(ferry_iter_add(it, &a, &pa, 1), 0);
	/* a future is in one iterator at a time */
	assert_int_equal(ferry_as_completed(c, NULL, 0, &other), 0);
	assert_int_equal(ferry_iter_add(other, &a, NULL, 1), FERRY_EINVAL);
	ferry_iter_free(other);
	accept_upto(&f, 1);
	recv_fetch(&f, &req);
	send_results(&f, req, &ra, 1, 1);
	assert_int_equal(ferry_iter_next_many(it, 5000, got, data, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_ptr_equal(got[0], a);
	assert_ptr_equal(data[0], &da);
	/* everything added was yielded: it waits again */
	assert_int_equal(ferry_iter_next_many(it, 10, got, data, 4, &n),
	    FERRY_ETIMEDOUT);

	/* two that finished before they joined come at once, in one call,
	 * each with its datum, the outcome readable */
	{
		ferry_future *two[2];
		two[0] = b = submit(c, "\x90", 1);
		two[1] = x = submit(c, "\x90", 1);
		accept_upto(&f, 3);
		recv_fetch(&f, &req);
		send_results(&f, req, rb, 2, 3);
		assert_int_equal(ferry_future_wait(x, 5000), 0);
		assert_int_equal(ferry_future_wait(b, 5000), 0);
		assert_int_equal(ferry_iter_add(it, two, pb, 2), 0);
	}
	assert_int_equal(ferry_iter_next_many(it, 0, got, data, 4, &n), 0);
	assert_int_equal(n, 2);
	assert_ptr_equal(got[0], b);
	assert_ptr_equal(data[0], &db[0]);
	assert_ptr_equal(got[1], x);
	assert_ptr_equal(data[1], &db[1]);
	assert_int_equal(ferry_future_errcode(x), FERRY_ETASK);
	ferry_future_free(a);
	ferry_future_free(b);
	ferry_future_free(x);

	/* one pending when the client closes: it comes failed, then the
	 * iterator says closed (and still holds the client's memory) */
	x = submit(c, "\x90", 1);
	assert_int_equal(ferry_iter_add(it, &x, NULL, 1), 0);
	ferry_client_close(c);
	f.c = NULL;
	assert_int_equal(ferry_iter_next_many(it, 5000, got, data, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_ptr_equal(got[0], x);
	assert_null(data[0]);
	assert_int_equal(ferry_future_errcode(x), FERRY_ECLOSED);
	assert_int_equal(ferry_iter_next_many(it, 5000, got, data, 4, &n),
	    FERRY_ECLOSED);
	assert_int_equal(ferry_iter_next(it, 5000, got), FERRY_ECLOSED);
	ferry_future_free(x);
	ferry_iter_free(it); /* the client's memory goes here */
	fake_stop(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_future_ref_args),
		cmocka_unit_test(test_submit_pending_deps),
		cmocka_unit_test(test_submit_known_results),
		cmocka_unit_test(test_submit_bad_refs),
		cmocka_unit_test(test_ack_freeze),
		cmocka_unit_test(test_full_resend_resolved),
		cmocka_unit_test(test_refused_submit_thaws),
		cmocka_unit_test(test_reconnect_keeps_freeze),
		cmocka_unit_test(test_run_anyway),
		cmocka_unit_test(test_iter_open),
		cmocka_unit_test(test_iter_add_wakes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
