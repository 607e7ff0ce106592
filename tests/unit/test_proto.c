/*
 * test_proto.c - unit tests for the wire protocol codec (common/proto.c).
 *
 * Round trips write every message type with its writer (proto_write_*, as
 * the peers do) and check every decoded field; the writers' bytes are
 * checked against protocol.md 6.1, and the map sizes proto_open() /
 * proto_end() count against every header width.  The malformed cases check the return code and
 * that the error text names what is wrong and where.  Inputs are always
 * copied into a heap buffer of exactly their length, so valgrind and ASan
 * see any read past the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ferry/ferry.h"
#include "proto.h"

/* ------------------------------------------------------------ fixture */

struct fx;
static void pk_key(struct fx *f, const char *s);

struct fx {
	struct proto_decoder d;
	struct proto_writer  w;
	struct proto_msg     m;
	uint8_t             *in; /* exact-size copy of the last input */
	char                 err[512];
	int                  rc;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	proto_decoder_init(&f->d);
	proto_writer_init(&f->w);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	proto_decoder_fini(&f->d);
	proto_writer_fini(&f->w);
	free(f->in);
	free(f);
	return 0;
}

/* Decode len bytes of p from an exact-size heap copy (kept alive until the
 * next decode, since the decoded message points into it). */
static int
decode_bytes(struct fx *f, const void *p, size_t len)
{
	free(f->in);
	f->in = malloc(len > 0 ? len : 1);
	assert_non_null(f->in);
	if (len > 0)
		memcpy(f->in, p, len);
	memset(f->err, 0, sizeof(f->err));
	f->rc = proto_decode(
	    &f->d, f->in, len, &f->m, f->err, sizeof(f->err));
	return f->rc;
}

/* Decode what the writer holds. */
static int
decode(struct fx *f)
{
	return decode_bytes(f, f->w.buf.data, f->w.buf.size);
}

/* Decode and require success. */
static void
decode_ok(struct fx *f, int type)
{
	if (decode(f) != 0)
		fail_msg("decode failed (%d): %s", f->rc, f->err);
	assert_int_equal(f->m.type, type);
	assert_int_equal(f->m.version, PROTO_VERSION);
	assert_string_equal(f->err, "");
}

/* Check that the last decode failed with rc and that the error text
 * contains each of the NULL-terminated substrings. */
static void
check_err(struct fx *f, int rc, ...) __attribute__((sentinel));

static void
check_err(struct fx *f, int rc, ...)
{
	va_list     ap;
	const char *s;

	if (f->rc != rc)
		fail_msg("expected rc %d, got %d (err \"%s\")", rc, f->rc,
		    f->err);
	if (f->err[0] == '\0')
		fail_msg("rc %d but the error text is empty", f->rc);
	va_start(ap, rc);
	while ((s = va_arg(ap, const char *)) != NULL) {
		if (strstr(f->err, s) == NULL) {
			va_end(ap);
			fail_msg("error text \"%s\" lacks \"%s\"", f->err, s);
		}
	}
	va_end(ap);
}

/* A message head of a map sized by hand (nfields after "v" and "t"), for
 * crafting what no writer sends: missing fields, wrong types, fields in
 * another order, raw bytes.  Real messages come from the writers. */
static void
begin(struct fx *f, int type, uint32_t nfields)
{
	msgpack_pack_map(&f->w.pk, 2 + nfields);
	pk_key(f, "v");
	msgpack_pack_uint32(&f->w.pk, PROTO_VERSION);
	pk_key(f, "t");
	pk_key(f, proto_type_name(type));
}

static void
pk_raw(struct fx *f, const void *p, size_t len)
{
	msgpack_sbuffer_write(&f->w.buf, p, len);
}

static void
pk_cstr(struct fx *f, const char *s)
{
	proto_pack_str(&f->w, s, strlen(s));
}

/* A string that is not a list element (a key, a type name). */
static void
pk_key(struct fx *f, const char *s)
{
	msgpack_pack_str(&f->w.pk, strlen(s));
	msgpack_pack_str_body(&f->w.pk, s, strlen(s));
}

static void
assert_mem(const void *got, size_t got_len, const void *want,
    size_t want_len)
{
	assert_int_equal(got_len, want_len);
	if (want_len > 0)
		assert_memory_equal(got, want, want_len);
}

static void
assert_task(const struct proto_task *t, uint64_t id, const char *fn,
    const void *args, size_t args_len)
{
	assert_true(t->id == id);
	assert_mem(t->fn, t->fn_len, fn, strlen(fn));
	assert_mem(t->args, t->args_len, args, args_len);
}

static void
assert_result(const struct proto_result *r, uint64_t id, int32_t code,
    const void *data, size_t len)
{
	assert_true(r->id == id);
	assert_int_equal(r->code, code);
	assert_mem(r->data, r->len, data, len);
}

/* ------------------------------------------------------- round trips */

static const char *const worker_fns[] = { "add", "mul", "ns.sub:fn-1" };

static void
pack_worker_hello(struct fx *f)
{
	struct proto_hello h = { 0 };

	h.name        = "w-1";
	h.host        = "node7.example";
	h.group       = "gpu";
	h.pid         = 4242;
	h.session     = UINT64_MAX;
	h.slots       = 4;
	h.capacity    = 8;
	h.functions   = worker_fns;
	h.n_functions = 3;
	proto_write_hello_worker(&f->w, &h);
}

/* A submit entry without keys or options. */
#define SUBMIT(f, id, fn, fn_len, args, args_len)                          \
	proto_write_submit_entry(&(f)->w, id, fn, fn_len, args, args_len,  \
	    NULL, NULL, 0, NULL, NULL, 0)

static void
test_hello_worker(void **state)
{
	struct fx *f = *state;

	pack_worker_hello(f);
	decode_ok(f, PROTO_HELLO);
	assert_int_equal(f->m.role, PROTO_ROLE_WORKER);
	assert_string_equal(f->m.name, "w-1");
	assert_string_equal(f->m.host, "node7.example");
	assert_string_equal(f->m.group, "gpu");
	assert_true(f->m.pid == 4242);
	assert_true(f->m.session == UINT64_MAX);
	assert_true(f->m.slots == 4);
	assert_true(f->m.capacity == 8);
	assert_int_equal(f->m.n_functions, 3);
	for (int i = 0; i < 3; i++)
		assert_string_equal(f->m.functions[i], worker_fns[i]);
	/* nothing of other types is set */
	assert_int_equal(f->m.n_tasks, 0);
	assert_null(f->m.tasks);
	assert_int_equal(f->m.n_results, 0);
	assert_string_equal(f->m.token, "");
	assert_true(f->m.supervisor == 0);

	/* with a token and a supervisor */
	proto_writer_reset(&f->w);
	{
		struct proto_hello h = { 0 };
		h.token      = "s3cret";
		h.slots      = 1;
		h.capacity   = 1;
		h.supervisor = 99;
		proto_write_hello_worker(&f->w, &h);
	}
	decode_ok(f, PROTO_HELLO);
	assert_string_equal(f->m.token, "s3cret");
	assert_true(f->m.supervisor == 99);
	assert_int_equal(f->m.n_functions, 0);
}

/* A worker's hello with slots, capacity and a functions array of n
 * names, which the caller packs next, and then extra more fields. */
static void
begin_worker_hello_more(struct fx *f, uint64_t slots, uint64_t capacity,
    uint32_t n, uint32_t extra)
{
	begin(f, PROTO_HELLO, 4 + extra);
	proto_put_str(&f->w, "role", "worker");
	proto_put_uint(&f->w, "slots", slots);
	proto_put_uint(&f->w, "capacity", capacity);
	proto_put_key(&f->w, "functions");
	msgpack_pack_array(&f->w.pk, n);
}

static void
begin_worker_hello(struct fx *f, uint64_t slots, uint64_t capacity,
    uint32_t n)
{
	begin_worker_hello_more(f, slots, capacity, n, 0);
}

static void
test_hello_worker_limits(void **state)
{
	struct fx *f = *state;
	char       name[256];

	/* slots == capacity at the top of their ranges; a 255-byte name */
	memset(name, 'f', 255);
	name[255] = '\0';
	begin_worker_hello(f, 1u << 20, 1u << 24, 1);
	pk_cstr(f, name);
	decode_ok(f, PROTO_HELLO);
	assert_true(f->m.slots == 1u << 20);
	assert_true(f->m.capacity == 1u << 24);
	assert_int_equal(f->m.n_functions, 1);
	assert_string_equal(f->m.functions[0], name);
	/* optional strings default to "" */
	assert_string_equal(f->m.name, "");
	assert_string_equal(f->m.host, "");
	assert_string_equal(f->m.group, "");
	assert_true(f->m.pid == 0);

	/* slots 1, capacity 1, no functions */
	proto_writer_reset(&f->w);
	begin_worker_hello(f, 1, 1, 0);
	decode_ok(f, PROTO_HELLO);
	assert_true(f->m.slots == 1 && f->m.capacity == 1);
	assert_int_equal(f->m.n_functions, 0);
}

static void
test_hello_client(void **state)
{
	struct fx         *f = *state;
	struct proto_hello h = { 0 };

	h.name    = "etl-job";
	h.pid     = 17;
	h.session = 99;
	proto_write_hello_client(&f->w, &h);
	decode_ok(f, PROTO_HELLO);
	assert_int_equal(f->m.role, PROTO_ROLE_CLIENT);
	assert_string_equal(f->m.name, "etl-job");
	assert_string_equal(f->m.host, "");
	assert_true(f->m.pid == 17);
	assert_true(f->m.session == 99);
	/* a client needs no slots/capacity/functions */
	assert_true(f->m.slots == 0 && f->m.capacity == 0);
	assert_int_equal(f->m.n_functions, 0);
	assert_string_equal(f->m.token, "");

	proto_writer_reset(&f->w);
	h.token = "0123456789abcdef-secret";
	proto_write_hello_client(&f->w, &h);
	decode_ok(f, PROTO_HELLO);
	assert_string_equal(f->m.token, "0123456789abcdef-secret");
	assert_true(f->m.session == 99);
}

/* The shared token in hello: optional, a string of at most 256 bytes. */
static void
test_hello_token(void **state)
{
	struct fx *f = *state;
	char       big[300];

	begin(f, PROTO_HELLO, 3);
	proto_put_str(&f->w, "role", "client");
	proto_put_uint(&f->w, "session", 99);
	proto_put_str(&f->w, "token", "0123456789abcdef-secret");
	decode_ok(f, PROTO_HELLO);
	assert_string_equal(f->m.token, "0123456789abcdef-secret");

	proto_writer_reset(&f->w);
	begin(f, PROTO_HELLO, 2);
	proto_put_str(&f->w, "role", "client");
	proto_put_uint(&f->w, "session", 99);
	decode_ok(f, PROTO_HELLO);
	assert_string_equal(f->m.token, "");

	memset(big, 'k', 257);
	big[257] = '\0';
	proto_writer_reset(&f->w);
	begin(f, PROTO_HELLO, 3);
	proto_put_str(&f->w, "role", "supervisor");
	proto_put_uint(&f->w, "supervisor", 5);
	proto_put_str(&f->w, "token", big);
	assert_int_equal(decode(f), FERRY_EPROTO);
	assert_non_null(strstr(f->err, "field 'token'"));

	proto_writer_reset(&f->w);
	begin(f, PROTO_HELLO, 3);
	proto_put_str(&f->w, "role", "client");
	proto_put_uint(&f->w, "session", 99);
	proto_put_uint(&f->w, "token", 7);
	assert_int_equal(decode(f), FERRY_EPROTO);
	assert_non_null(strstr(f->err, "field 'token': expected a string"));
}

static void
test_welcome(void **state)
{
	struct fx           *f = *state;
	struct proto_welcome wl = { 12345678901ULL, 2500, 7000, 64u << 20, 0,
		33, 1 };

	proto_write_welcome(&f->w, &wl);
	decode_ok(f, PROTO_WELCOME);
	assert_true(f->m.id == 12345678901ULL);
	assert_true(f->m.heartbeat_ms == 2500);
	assert_true(f->m.heartbeat_timeout_ms == 7000);
	assert_true(f->m.max_message_size == 64u << 20);
	/* only a client's welcome says max_tag and resumed */
	assert_true(f->m.max_tag == 0 && f->m.resumed == 0);
	proto_writer_reset(&f->w);
	wl.client = 1;
	proto_write_welcome(&f->w, &wl);
	decode_ok(f, PROTO_WELCOME);
	assert_true(f->m.max_tag == 33 && f->m.resumed == 1);
	assert_true(f->m.id == 12345678901ULL);

	/* max_message_size is optional */
	proto_writer_reset(&f->w);
	begin(f, PROTO_WELCOME, 2);
	proto_put_uint(&f->w, "id", 1);
	proto_put_uint(&f->w, "heartbeat_ms", 0);
	decode_ok(f, PROTO_WELCOME);
	assert_true(f->m.id == 1 && f->m.heartbeat_ms == 0);
	assert_true(f->m.max_message_size == 0);
}

/* A worker that registers again says which scheduler run its tasks came
 * from, the registration it had and the tasks it holds; its welcome
 * says the run and which of them to drop.  Without an epoch none of it
 * is written. */
static void
test_hello_worker_rejoin(void **state)
{
	static const uint64_t held[] = { 7, 1, UINT64_MAX, 1ULL << 40 };
	static const uint64_t drop[] = { 1ULL << 40, 9 };
	struct fx                  *f = *state;
	struct proto_hello          h = { 0 };
	struct proto_welcome        wl = { 5, 1000, 5000, 1u << 20, 0, 0, 0 };
	struct proto_welcome_worker x = { 0 };

	h.slots     = 2;
	h.capacity  = 2;
	h.epoch     = 0xfeedfacecafebeefULL;
	h.previous  = 41;
	h.holding   = held;
	h.n_holding = 4;
	proto_write_hello_worker(&f->w, &h);
	decode_ok(f, PROTO_HELLO);
	assert_true(f->m.epoch == 0xfeedfacecafebeefULL);
	assert_true(f->m.previous == 41);
	assert_int_equal(f->m.n_holding, 4);
	for (int i = 0; i < 4; i++)
		assert_true(f->m.holding[i] == held[i]);

	/* registering again holding nothing: an empty list */
	proto_writer_reset(&f->w);
	h.n_holding = 0;
	proto_write_hello_worker(&f->w, &h);
	decode_ok(f, PROTO_HELLO);
	assert_true(f->m.epoch == 0xfeedfacecafebeefULL);
	assert_int_equal(f->m.n_holding, 0);
	assert_null(f->m.holding);

	/* a new process (epoch 0): no epoch, previous or holding */
	proto_writer_reset(&f->w);
	h.epoch     = 0;
	h.n_holding = 4;
	proto_write_hello_worker(&f->w, &h);
	decode_ok(f, PROTO_HELLO);
	assert_true(f->m.epoch == 0 && f->m.previous == 0);
	assert_int_equal(f->m.n_holding, 0);
	assert_null(f->m.holding);
	assert_null(memmem(f->w.buf.data, f->w.buf.size, "holding", 7));

	/* the worker's welcome: epoch and drop; a client's has neither */
	proto_writer_reset(&f->w);
	x.epoch  = 3;
	x.drop   = drop;
	x.n_drop = 2;
	proto_write_welcome_worker(&f->w, &wl, &x);
	decode_ok(f, PROTO_WELCOME);
	assert_true(f->m.id == 5 && f->m.epoch == 3);
	assert_int_equal(f->m.n_drop, 2);
	assert_true(f->m.drop[0] == (1ULL << 40) && f->m.drop[1] == 9);
	assert_true(f->m.max_tag == 0 && f->m.resumed == 0);
	/* nothing to drop: no list */
	proto_writer_reset(&f->w);
	x.n_drop = 0;
	proto_write_welcome_worker(&f->w, &wl, &x);
	decode_ok(f, PROTO_WELCOME);
	assert_true(f->m.epoch == 3);
	assert_int_equal(f->m.n_drop, 0);
	assert_null(f->m.drop);
	assert_null(memmem(f->w.buf.data, f->w.buf.size, "drop", 4));
	/* the plain welcome (clients, supervisors, older schedulers) */
	proto_writer_reset(&f->w);
	proto_write_welcome(&f->w, &wl);
	decode_ok(f, PROTO_WELCOME);
	assert_true(f->m.epoch == 0 && f->m.n_drop == 0);
}

/* A hello's holding list: at most twice its capacity, each a task id
 * (an integer above 0); a welcome's drop list: task ids. */
static void
test_hello_holding_limits(void **state)
{
	struct fx *f = *state;

	/* capacity 2: four ids are fine, five are refused */
	begin_worker_hello_more(f, 1, 2, 0, 2);
	proto_put_uint(&f->w, "epoch", 9);
	proto_put_key(&f->w, "holding");
	msgpack_pack_array(&f->w.pk, 4);
	for (uint64_t i = 1; i <= 4; i++)
		msgpack_pack_uint64(&f->w.pk, i);
	decode_ok(f, PROTO_HELLO);
	assert_int_equal(f->m.n_holding, 4);

	proto_writer_reset(&f->w);
	begin_worker_hello_more(f, 1, 2, 0, 2);
	proto_put_uint(&f->w, "epoch", 9);
	proto_put_key(&f->w, "holding");
	msgpack_pack_array(&f->w.pk, 5);
	for (uint64_t i = 1; i <= 5; i++)
		msgpack_pack_uint64(&f->w.pk, i);
	decode(f);
	check_err(f, FERRY_EPROTO, "hello: field 'holding': 5 task ids",
	    "more than twice the capacity (4)", NULL);

	/* a 0, a string, a negative number: not task ids */
	{
		static const char *const bad[] = { "\x92\x01\x00",
			"\x92\x01\xa1x", "\x91\xff" };
		static const char *const what[] = { "holding[1]: expected a "
			                            "task id (an integer above "
			                            "0), got 0",
			"holding[1]: expected a task id (an integer above 0), "
			"got a string",
			"holding[0]: expected a task id" };
		static const size_t len[] = { 3, 4, 2 };
		for (int k = 0; k < 3; k++) {
			proto_writer_reset(&f->w);
			begin_worker_hello_more(f, 1, 2, 0, 1);
			proto_put_key(&f->w, "holding");
			pk_raw(f, bad[k], len[k]);
			decode(f);
			check_err(f, FERRY_EPROTO, what[k], NULL);
		}
	}
	proto_writer_reset(&f->w);
	begin_worker_hello_more(f, 1, 2, 0, 1);
	proto_put_uint(&f->w, "holding", 3);
	decode(f);
	check_err(f, FERRY_EPROTO, "field 'holding': expected an array",
	    NULL);
	proto_writer_reset(&f->w);
	begin_worker_hello_more(f, 1, 2, 0, 1);
	proto_put_str(&f->w, "epoch", "x");
	decode(f);
	check_err(f, FERRY_EPROTO, "field 'epoch': expected a non-negative",
	    NULL);

	/* the welcome's drop list */
	proto_writer_reset(&f->w);
	begin(f, PROTO_WELCOME, 3);
	proto_put_uint(&f->w, "id", 1);
	proto_put_uint(&f->w, "heartbeat_ms", 1000);
	proto_put_key(&f->w, "drop");
	pk_raw(f, "\x92\x05\x00", 3);
	decode(f);
	check_err(f, FERRY_EPROTO, "welcome: drop[1]: expected a task id",
	    NULL);
	proto_writer_reset(&f->w);
	begin(f, PROTO_WELCOME, 3);
	proto_put_uint(&f->w, "id", 1);
	proto_put_uint(&f->w, "heartbeat_ms", 1000);
	proto_put_str(&f->w, "drop", "all");
	decode(f);
	check_err(f, FERRY_EPROTO, "welcome: field 'drop': expected an array",
	    NULL);
}

static void
test_submit(void **state)
{
	struct fx     *f       = *state;
	const uint8_t args1[]  = { 0x92, 0x01, 0x02 }; /* [1, 2] */
	uint8_t       bin[256];
	uint8_t      *big;
	char          longfn[301];

	for (int i = 0; i < 256; i++)
		bin[i] = (uint8_t)(255 - i); /* includes 0x00, 0xc1, 0xff */
	big = malloc(70000);             /* needs a bin32 header */
	assert_non_null(big);
	for (size_t i = 0; i < 70000; i++)
		big[i] = (uint8_t)(i * 31);
	memset(longfn, 'x', 300); /* needs a str16 header */
	longfn[300] = '\0';

	proto_write_submit_begin(&f->w);
	SUBMIT(f, 1, "add", 3, args1, sizeof(args1));
	SUBMIT(f, 2, "noargs", 6, NULL, 0);
	SUBMIT(f, 3, "bin", 3, bin, sizeof(bin));
	SUBMIT(f, UINT64_MAX, "m", 1, big, 70000);
	SUBMIT(f, 0, longfn, 300, "\xc0", 1);
	SUBMIT(f, 1, "add", 3, args1, sizeof(args1));
	proto_write_submit_end(&f->w);
	decode_ok(f, PROTO_SUBMIT);
	assert_int_equal(f->m.n_tasks, 6);
	assert_task(&f->m.tasks[0], 1, "add", args1, sizeof(args1));
	assert_task(&f->m.tasks[1], 2, "noargs", NULL, 0);
	assert_task(&f->m.tasks[2], 3, "bin", bin, sizeof(bin));
	assert_task(&f->m.tasks[3], UINT64_MAX, "m", big, 70000);
	assert_task(&f->m.tasks[4], 0, longfn, "\xc0", 1);
	/* a duplicate id is the scheduler's business, not the codec's */
	assert_task(&f->m.tasks[5], 1, "add", args1, sizeof(args1));
	free(big);
}

static void
test_submit_empty_and_many(void **state)
{
	struct fx *f = *state;
	uint64_t   n = 5000;

	proto_write_submit_begin(&f->w);
	proto_write_submit_end(&f->w);
	decode_ok(f, PROTO_SUBMIT);
	assert_int_equal(f->m.n_tasks, 0);

	proto_writer_reset(&f->w);
	proto_write_submit_begin(&f->w);
	for (uint64_t i = 0; i < n; i++) {
		uint8_t a = (uint8_t)i;
		SUBMIT(f, i * 1000003u, "fn", 2, &a, 1);
	}
	proto_write_submit_end(&f->w);
	decode_ok(f, PROTO_SUBMIT);
	assert_int_equal(f->m.n_tasks, n);
	for (uint64_t i = 0; i < n; i++) {
		uint8_t a = (uint8_t)i;
		assert_task(&f->m.tasks[i], i * 1000003u, "fn", &a, 1);
	}
}

static void
test_tasks(void **state)
{
	struct fx *f = *state;

	proto_write_tasks_begin(&f->w);
	proto_write_tasks_entry(&f->w, 900, "add", 3, "\x92\x01\x02", 3, 0);
	proto_write_tasks_entry(&f->w, 901, "nop", 3, "", 0, 0);
	proto_write_tasks_end(&f->w);
	decode_ok(f, PROTO_TASKS);
	assert_int_equal(f->m.n_tasks, 2);
	assert_task(&f->m.tasks[0], 900, "add", "\x92\x01\x02", 3);
	assert_task(&f->m.tasks[1], 901, "nop", NULL, 0);
}

static void
test_task_extra_elements(void **state)
{
	struct fx *f = *state;

	/* the 4th element lists locality keys, the 5th options, the 6th
	 * deps; a newer sender may append more elements after them */
	begin(f, PROTO_SUBMIT, 1);
	proto_put_key(&f->w, "tasks");
	msgpack_pack_array(&f->w.pk, 1);
	msgpack_pack_array(&f->w.pk, 7);
	msgpack_pack_uint64(&f->w.pk, 5);
	pk_cstr(f, "fn");
	proto_pack_bin(&f->w, "\x01", 1);
	msgpack_pack_array(&f->w.pk, 2);
	pk_cstr(f, "mmap:/data/a.bin");
	pk_cstr(f, "read:/data/b.bin");
	msgpack_pack_nil(&f->w.pk); /* options: none */
	msgpack_pack_nil(&f->w.pk); /* deps: none */
	pk_cstr(f, "extra");
	decode_ok(f, PROTO_SUBMIT);
	assert_int_equal(f->m.tasks[0].opts.set, 0);
	assert_int_equal(f->m.tasks[0].n_deps, 0);
	assert_int_equal(f->m.n_tasks, 1);
	assert_task(&f->m.tasks[0], 5, "fn", "\x01", 1);
	assert_int_equal(f->m.tasks[0].n_objs, 2);
	assert_int_equal(f->m.tasks[0].objs[1].via.str.size, 16);
	assert_memory_equal(f->m.tasks[0].objs[1].via.str.ptr,
	    "read:/data/b.bin", 16);
}

/* A submit task entry [id, fn, args (a packed nil), [], {n options}]
 * whose options the caller packs next. */
static void
pack_opts_entry(struct fx *f, uint64_t id, const char *fn, uint32_t n)
{
	msgpack_pack_array(&f->w.pk, 5);
	msgpack_pack_uint64(&f->w.pk, id);
	pk_cstr(f, fn);
	proto_pack_bin(&f->w, "\xc0", 1);
	msgpack_pack_array(&f->w.pk, 0);
	msgpack_pack_map(&f->w.pk, n);
}

static void
test_task_options(void **state)
{
	struct fx               *f = *state;
	struct proto_task_opts   o;
	const struct proto_task *t;

	/* all five set; one set; none (the plain 3-element form) */
	memset(&o, 0, sizeof(o));
	o.set = PROTO_OPT_RETRIES | PROTO_OPT_BACKOFF | PROTO_OPT_BACKOFF_MAX |
	    PROTO_OPT_TIMEOUT | PROTO_OPT_RETRY_ERRORS;
	o.retries        = 7;
	o.backoff_ms     = 250;
	o.backoff_max_ms = 9000;
	o.timeout_ms     = 1500;
	o.retry_errors   = 1;
	proto_write_submit_begin(&f->w);
	proto_write_submit_entry(&f->w, 1, "a", 1, "\xc0", 1, NULL, NULL, 0, &o, NULL, 0);
	o.set = PROTO_OPT_TIMEOUT;
	proto_write_submit_entry(&f->w, 2, "b", 1, "\xc0", 1, NULL, NULL, 0, &o, NULL, 0);
	proto_write_submit_entry(&f->w, 3, "c", 1, "\xc0", 1, NULL, NULL, 0,
	    NULL, NULL, 0);
	proto_write_submit_end(&f->w);
	decode_ok(f, PROTO_SUBMIT);
	t = &f->m.tasks[0];
	assert_int_equal(t->opts.set, 0x1f);
	assert_int_equal(t->opts.retries, 7);
	assert_int_equal(t->opts.backoff_ms, 250);
	assert_int_equal(t->opts.backoff_max_ms, 9000);
	assert_int_equal(t->opts.timeout_ms, 1500);
	assert_int_equal(t->opts.retry_errors, 1);
	assert_int_equal(f->m.tasks[1].opts.set, PROTO_OPT_TIMEOUT);
	assert_int_equal(f->m.tasks[1].opts.timeout_ms, 1500);
	assert_int_equal(f->m.tasks[2].opts.set, 0);

	/* a value over its limit and a wrong type are named */
	proto_writer_reset(&f->w);
	begin(f, PROTO_SUBMIT, 1);
	proto_put_key(&f->w, "tasks");
	msgpack_pack_array(&f->w.pk, 1);
	pack_opts_entry(f, 1, "a", 1);
	proto_put_uint(&f->w, "retries", 1001);
	decode(f);
	check_err(f, FERRY_EPROTO, "tasks[0][4] (options): 'retries': 1001",
	    NULL);
	proto_writer_reset(&f->w);
	begin(f, PROTO_SUBMIT, 1);
	proto_put_key(&f->w, "tasks");
	msgpack_pack_array(&f->w.pk, 1);
	pack_opts_entry(f, 1, "a", 2);
	proto_put_str(&f->w, "unknown", "ignored");
	proto_put_str(&f->w, "timeout_ms", "soon");
	decode(f);
	check_err(f, FERRY_EPROTO,
	    "'timeout_ms': expected a non-negative integer, got a string",
	    NULL);

	/* tasks: the 4th element is the run's timeout */
	proto_writer_reset(&f->w);
	proto_write_tasks_begin(&f->w);
	proto_write_tasks_entry(&f->w, 9, "x", 1, "\xc0", 1, 2500);
	proto_write_tasks_entry(&f->w, 10, "y", 1, "\xc0", 1, 0);
	proto_write_tasks_end(&f->w);
	decode_ok(f, PROTO_TASKS);
	assert_int_equal(f->m.tasks[0].timeout_ms, 2500);
	assert_int_equal(f->m.tasks[1].timeout_ms, 0);

	/* results: the 4th element counts the runs */
	proto_writer_reset(&f->w);
	proto_write_results_begin(&f->w);
	proto_write_results_entry(&f->w, 1, FERRY_EDEAD, "why", 3, 3);
	proto_write_results_entry(&f->w, 2, 0, "\xc0", 1, 0);
	proto_write_results_end(&f->w, 2);
	decode_ok(f, PROTO_RESULTS);
	assert_true(f->m.seq == 2);
	assert_int_equal(f->m.results[0].attempts, 3);
	assert_int_equal(f->m.results[0].code, FERRY_EDEAD);
	assert_int_equal(f->m.results[1].attempts, 0);
}

/* A submit of two tasks whose second carries {key: value} as its options
 * (value a boolean). */
static void
pack_bool_option(struct fx *f, const char *key, int value)
{
	proto_writer_reset(&f->w);
	begin(f, PROTO_SUBMIT, 1);
	proto_put_key(&f->w, "tasks");
	msgpack_pack_array(&f->w.pk, 2);
	proto_pack_task(&f->w, 1, "a", 1, "\xc0", 1);
	pack_opts_entry(f, 2, "b", 1);
	pk_cstr(f, key);
	if (value)
		msgpack_pack_true(&f->w.pk);
	else
		msgpack_pack_false(&f->w.pk);
}

/* Options documented as integers refuse booleans (`retries: true` is
 * not one retry), naming the option and the entry; retry_errors, a
 * flag, takes either. */
static void
test_task_options_booleans(void **state)
{
	static const char *ints[] = { "retries", "backoff_ms",
		"backoff_max_ms", "timeout_ms" };
	struct fx         *f = *state;
	char               want[64];

	for (size_t k = 0; k < sizeof(ints) / sizeof(ints[0]); k++) {
		for (int v = 0; v <= 1; v++) {
			pack_bool_option(f, ints[k], v);
			decode(f);
			snprintf(want, sizeof(want), "'%s': expected a "
			    "non-negative integer, got a boolean", ints[k]);
			check_err(f, FERRY_EPROTO, "tasks[1][4] (options)",
			    want, NULL);
		}
	}
	pack_bool_option(f, "retry_errors", 1);
	decode_ok(f, PROTO_SUBMIT);
	assert_int_equal(f->m.tasks[1].opts.set, PROTO_OPT_RETRY_ERRORS);
	assert_int_equal(f->m.tasks[1].opts.retry_errors, 1);
	pack_bool_option(f, "retry_errors", 0);
	decode_ok(f, PROTO_SUBMIT);
	assert_int_equal(f->m.tasks[1].opts.set, PROTO_OPT_RETRY_ERRORS);
	assert_int_equal(f->m.tasks[1].opts.retry_errors, 0);
}

static void
test_supervisor_messages(void **state)
{
	struct fx *f = *state;

	struct proto_hello             h       = { 0 };
	const struct proto_report_task rt[]    = { { 8, 1 }, { 9, 0 } };
	const struct proto_kill        kills[] = { { 4242, 8 } };

	h.token      = "tok";
	h.supervisor = 77;
	h.name       = "node3";
	h.host       = "node3.example";
	h.group      = "cpu";
	h.pid        = 12;
	proto_write_hello_supervisor(&f->w, &h);
	decode_ok(f, PROTO_HELLO);
	assert_int_equal(f->m.role, PROTO_ROLE_SUPERVISOR);
	assert_int_equal(f->m.supervisor, 77);
	assert_string_equal(f->m.token, "tok");
	assert_string_equal(f->m.name, "node3");
	assert_string_equal(f->m.host, "node3.example");
	assert_string_equal(f->m.group, "cpu");
	assert_int_equal(f->m.pid, 12);

	proto_writer_reset(&f->w);
	begin(f, PROTO_HELLO, 2);
	proto_put_str(&f->w, "role", "supervisor");
	proto_put_uint(&f->w, "supervisor", 0);
	decode(f);
	check_err(f, FERRY_EPROTO, "token must not be 0", NULL);

	proto_writer_reset(&f->w);
	proto_write_report(&f->w, 4242, 3, "timeout",
	    "task 8 ran past its timeout", rt, 2);
	decode_ok(f, PROTO_REPORT);
	assert_int_equal(f->m.pid, 4242);
	assert_int_equal(f->m.worker_id, 3);
	assert_string_equal(f->m.cause, "timeout");
	assert_string_equal(f->m.reason, "task 8 ran past its timeout");
	assert_int_equal(f->m.n_rtasks, 2);
	assert_int_equal(f->m.rtasks[0].id, 8);
	assert_int_equal(f->m.rtasks[0].charged, 1);
	assert_int_equal(f->m.rtasks[1].charged, 0);

	/* charged must be 0 or 1 */
	proto_writer_reset(&f->w);
	begin(f, PROTO_REPORT, 4);
	proto_put_uint(&f->w, "pid", 1);
	proto_put_str(&f->w, "cause", "signal");
	proto_put_str(&f->w, "reason", "x");
	proto_put_key(&f->w, "tasks");
	msgpack_pack_array(&f->w.pk, 1);
	msgpack_pack_array(&f->w.pk, 2);
	msgpack_pack_uint64(&f->w.pk, 8);
	msgpack_pack_uint64(&f->w.pk, 2);
	decode(f);
	check_err(f, FERRY_EPROTO, "tasks[0][1] (charged)", NULL);

	proto_writer_reset(&f->w);
	proto_write_orders(&f->w, kills, 1);
	decode_ok(f, PROTO_ORDERS);
	assert_int_equal(f->m.n_kills, 1);
	assert_int_equal(f->m.kills[0].pid, 4242);
	assert_int_equal(f->m.kills[0].task, 8);

	proto_writer_reset(&f->w);
	begin(f, PROTO_ORDERS, 1);
	proto_put_key(&f->w, "kill");
	msgpack_pack_array(&f->w.pk, 1);
	pk_cstr(f, "all");
	decode(f);
	check_err(f, FERRY_EPROTO, "kill[0]: expected an array [pid, task id]",
	    NULL);

	proto_writer_reset(&f->w);
	proto_write_watch(&f->w, 1000);
	decode_ok(f, PROTO_WATCH);
	assert_int_equal(f->m.wait_ms, 1000);
}

static void
test_task_objects(void **state)
{
	struct fx              *f       = *state;
	const char *const       keys[]  = { "mmap:/x", "read:/data/y.bin" };
	const size_t            lens[]  = { 7, 16 };
	struct proto_writer     loaded, evicted;
	struct proto_work       wk      = { 0 };
	const struct proto_cache cache  = { 1, 4096, 2, 9, 1, 3, 1 };

	proto_write_submit_begin(&f->w);
	proto_write_submit_entry(&f->w, 1, "a", 1, "\xc0", 1, keys, lens, 2,
	    NULL, NULL, 0);
	proto_write_submit_entry(&f->w, 2, "b", 1, "\xc0", 1, NULL, NULL, 0,
	    NULL, NULL, 0);
	proto_write_submit_end(&f->w);
	decode_ok(f, PROTO_SUBMIT);
	assert_int_equal(f->m.tasks[0].n_objs, 2);
	assert_int_equal(f->m.tasks[0].objs[1].via.str.size, 16);
	assert_memory_equal(f->m.tasks[0].objs[1].via.str.ptr,
	    "read:/data/y.bin", 16);
	assert_int_equal(f->m.tasks[1].n_objs, 0);
	assert_null(f->m.tasks[1].objs);

	/* work carries loaded / evicted keys and cache counters; an empty
	 * list of keys is left out */
	proto_writer_init(&loaded);
	proto_writer_init(&evicted);
	proto_pack_str(&loaded, "mmap:/x", 7);
	wk.credit  = 3;
	wk.loaded  = &loaded;
	wk.evicted = &evicted;
	wk.cache   = &cache;
	proto_writer_reset(&f->w);
	proto_write_work(&f->w, &wk);
	decode_ok(f, PROTO_WORK);
	assert_int_equal(f->m.n_loaded, 1);
	assert_int_equal(f->m.loaded[0].via.str.size, 7);
	assert_int_equal(f->m.n_evicted, 0);
	assert_null(f->m.evicted);
	assert_true(f->m.cache.present);
	assert_int_equal(f->m.cache.objects, 1);
	assert_int_equal(f->m.cache.bytes, 4096);
	assert_int_equal(f->m.cache.loads, 2);
	assert_int_equal(f->m.cache.hits, 9);
	assert_int_equal(f->m.cache.evictions, 1);
	assert_int_equal(f->m.cache.failures, 3);
	proto_writer_fini(&loaded);
	proto_writer_fini(&evicted);

	/* "failures" is optional in the cache map */
	proto_writer_reset(&f->w);
	begin(f, PROTO_WORK, 2);
	proto_put_uint(&f->w, "credit", 3);
	proto_put_key(&f->w, "cache");
	msgpack_pack_map(&f->w.pk, 5);
	proto_put_uint(&f->w, "objects", 1);
	proto_put_uint(&f->w, "bytes", 4096);
	proto_put_uint(&f->w, "loads", 2);
	proto_put_uint(&f->w, "hits", 9);
	proto_put_uint(&f->w, "evictions", 1);
	decode_ok(f, PROTO_WORK);
	assert_true(f->m.cache.present);
	assert_int_equal(f->m.cache.failures, 0);
}

static void
test_submitted(void **state)
{
	struct fx          *f    = *state;
	const char         *nf   = "no worker serves function 'x'";
	const char         *full = "queue full (1000000 tasks)";
	struct proto_writer rej;

	proto_writer_init(&rej);
	proto_pack_result(&rej, 7, FERRY_ENOFUNC, nf, strlen(nf));
	proto_pack_result(&rej, 9, FERRY_EFULL, full, strlen(full));
	proto_write_submitted(&f->w, 5, &rej);
	proto_writer_fini(&rej);
	decode_ok(f, PROTO_SUBMITTED);
	assert_true(f->m.accepted == 5);
	assert_int_equal(f->m.n_results, 2);
	assert_result(&f->m.results[0], 7, FERRY_ENOFUNC, nf, strlen(nf));
	assert_result(&f->m.results[1], 9, FERRY_EFULL, full, strlen(full));

	/* none rejected: an empty list */
	proto_writer_reset(&f->w);
	proto_write_submitted(&f->w, 3, NULL);
	decode_ok(f, PROTO_SUBMITTED);
	assert_true(f->m.accepted == 3);
	assert_int_equal(f->m.n_results, 0);

	/* rejected is optional */
	proto_writer_reset(&f->w);
	begin(f, PROTO_SUBMITTED, 1);
	proto_put_uint(&f->w, "accepted", 0);
	decode_ok(f, PROTO_SUBMITTED);
	assert_true(f->m.accepted == 0);
	assert_int_equal(f->m.n_results, 0);
	assert_null(f->m.results);
}

static void
test_fetch(void **state)
{
	struct fx *f = *state;

	proto_write_fetch(&f->w, 77, 30000);
	decode_ok(f, PROTO_FETCH);
	assert_true(f->m.ack == 77);
	assert_true(f->m.wait_ms == 30000);

	proto_writer_reset(&f->w);
	begin(f, PROTO_FETCH, 1);
	proto_put_uint(&f->w, "ack", 0);
	decode_ok(f, PROTO_FETCH);
	assert_true(f->m.ack == 0 && f->m.wait_ms == 0);
}

static void
test_results(void **state)
{
	struct fx  *f     = *state;
	const char *boom  = "ValueError: boom";
	const char *value = "\x93\xa1x\xc3\xc0"; /* ["x", true, nil] */

	proto_write_results_begin(&f->w);
	proto_write_results_entry(&f->w, 1, 0, value, 5, 1);
	proto_write_results_entry(&f->w, 2, FERRY_ETASK, boom, strlen(boom), 2);
	proto_write_results_entry(&f->w, 3, 0, NULL, 0, 1);
	proto_write_results_entry(&f->w, 4, FERRY_EWORKER, "", 0, 0);
	proto_write_results_entry(&f->w, UINT64_MAX, INT32_MIN, "min", 3,
	    UINT32_MAX);
	proto_write_results_end(&f->w, 78);
	decode_ok(f, PROTO_RESULTS);
	assert_int_equal(f->m.results[1].attempts, 2);
	assert_int_equal(f->m.results[4].attempts, UINT32_MAX);
	assert_true(f->m.seq == 78);
	assert_int_equal(f->m.n_results, 5);
	assert_result(&f->m.results[0], 1, 0, value, 5);
	assert_result(&f->m.results[1], 2, FERRY_ETASK, boom, strlen(boom));
	assert_result(&f->m.results[2], 3, 0, NULL, 0);
	assert_result(&f->m.results[3], 4, FERRY_EWORKER, NULL, 0);
	assert_result(&f->m.results[4], UINT64_MAX, INT32_MIN, "min", 3);

	/* an empty batch, and the answer to a superseded fetch */
	proto_writer_reset(&f->w);
	proto_write_results_begin(&f->w);
	proto_write_results_end(&f->w, 0);
	decode_ok(f, PROTO_RESULTS);
	assert_int_equal(f->m.n_results, 0);
	proto_writer_reset(&f->w);
	proto_write_results_empty(&f->w);
	decode_ok(f, PROTO_RESULTS);
	assert_int_equal(f->m.n_results, 0);
	assert_true(f->m.seq == 0);

	/* a result entry of a worker, or in submitted: 3 elements */
	proto_writer_reset(&f->w);
	begin(f, PROTO_RESULTS, 2);
	proto_put_uint(&f->w, "seq", 5);
	proto_put_key(&f->w, "results");
	msgpack_pack_array(&f->w.pk, 1);
	proto_pack_result(&f->w, 5, 0, "\xc0", 1);
	decode_ok(f, PROTO_RESULTS);
	assert_int_equal(f->m.results[0].attempts, 0);
}

static void
test_cancel_cancelled(void **state)
{
	struct fx     *f     = *state;
	const uint64_t ids[] = { 1, 2, 300, 70000, 1ULL << 40, UINT64_MAX };

	proto_write_cancel(&f->w, ids, 6);
	decode_ok(f, PROTO_CANCEL);
	assert_int_equal(f->m.n_ids, 6);
	for (int i = 0; i < 6; i++)
		assert_true(f->m.ids[i] == ids[i]);

	proto_writer_reset(&f->w);
	proto_write_cancelled(&f->w, ids + 2, 1);
	decode_ok(f, PROTO_CANCELLED);
	assert_int_equal(f->m.n_ids, 1);
	assert_true(f->m.ids[0] == 300);

	proto_writer_reset(&f->w);
	proto_write_cancelled(&f->w, NULL, 0);
	decode_ok(f, PROTO_CANCELLED);
	assert_int_equal(f->m.n_ids, 0);
}

static void
test_status(void **state)
{
	struct fx            *f = *state;
	const msgpack_object *b;
	int                   found = 0;

	proto_write_status(&f->w);
	decode_ok(f, PROTO_STATUS);
	assert_null(f->m.body);

	proto_writer_reset(&f->w);
	proto_open(&f->w, PROTO_STATUS_REPLY);
	proto_put_uint(&f->w, "queued", 12);
	proto_put_key(&f->w, "workers");
	msgpack_pack_array(&f->w.pk, 0);
	proto_end(&f->w);
	decode_ok(f, PROTO_STATUS_REPLY);
	b = f->m.body;
	assert_non_null(b);
	assert_int_equal(b->type, MSGPACK_OBJECT_MAP);
	assert_int_equal(b->via.map.size, 4);
	for (uint32_t i = 0; i < b->via.map.size; i++) {
		const msgpack_object_kv *kv = &b->via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_STR &&
		    kv->key.via.str.size == 6 &&
		    memcmp(kv->key.via.str.ptr, "queued", 6) == 0) {
			assert_int_equal(kv->val.type,
			    MSGPACK_OBJECT_POSITIVE_INTEGER);
			assert_true(kv->val.via.u64 == 12);
			found = 1;
		}
	}
	assert_true(found);
}

static void
test_work(void **state)
{
	struct fx          *f   = *state;
	const char         *msg = "segfault in task";
	struct proto_writer res;
	struct proto_work   wk = { 0 };

	proto_writer_init(&res);
	proto_pack_result(&res, 900, 0, "\x2a", 1);
	proto_pack_result(&res, 901, FERRY_ETASK, msg, strlen(msg));
	wk.credit  = 16;
	wk.results = &res;
	proto_write_work(&f->w, &wk);
	decode_ok(f, PROTO_WORK);
	assert_false(f->m.cache.present);
	assert_true(f->m.credit == 16);
	assert_int_equal(f->m.n_results, 2);
	assert_result(&f->m.results[0], 900, 0, "\x2a", 1);
	assert_result(&f->m.results[1], 901, FERRY_ETASK, msg, strlen(msg));

	/* credit alone: results are optional in work */
	proto_writer_reset(&f->w);
	wk.credit  = 0;
	wk.results = NULL;
	proto_write_work(&f->w, &wk);
	decode_ok(f, PROTO_WORK);
	assert_true(f->m.credit == 0);
	assert_int_equal(f->m.n_results, 0);
	assert_true(f->m.park == 0); /* absent: answered at once */

	/* results that also ask to be parked like a poll */
	proto_writer_reset(&f->w);
	proto_writer_reset(&res);
	proto_pack_result(&res, 902, 0, "\xc0", 1);
	wk.credit  = 8;
	wk.park    = 1;
	wk.results = &res;
	proto_write_work(&f->w, &wk);
	decode_ok(f, PROTO_WORK);
	assert_true(f->m.park == 1);
	assert_int_equal(f->m.n_results, 1);
	assert_result(&f->m.results[0], 902, 0, "\xc0", 1);

	/* results present even when none finished (a heartbeat's) */
	proto_writer_reset(&f->w);
	proto_writer_reset(&res);
	proto_write_work(&f->w, &wk);
	decode_ok(f, PROTO_WORK);
	assert_int_equal(f->m.n_results, 0);
	proto_writer_fini(&res);
}

static void
test_error(void **state)
{
	struct fx *f = *state;

	proto_write_error(&f->w, FERRY_ENOFUNC, "no function 'x' (worker?)");
	decode_ok(f, PROTO_ERROR);
	assert_int_equal(f->m.code, FERRY_ENOFUNC);
	assert_string_equal(f->m.msg, "no function 'x' (worker?)");

	proto_writer_reset(&f->w);
	proto_write_error(&f->w, FERRY_EVERSION, NULL);
	decode_ok(f, PROTO_ERROR);
	assert_int_equal(f->m.code, FERRY_EVERSION);
	assert_string_equal(f->m.msg, "");

	proto_writer_reset(&f->w);
	proto_write_error(&f->w, INT32_MIN, "min");
	decode_ok(f, PROTO_ERROR);
	assert_int_equal(f->m.code, INT32_MIN);
}

static void
test_type_names(void **state)
{
	struct fx        *f       = *state;
	static const char *want[] = { NULL, "hello", "welcome", "submit",
		"submitted", "fetch", "results", "cancel", "cancelled",
		"status", "status_reply", "work", "tasks", "error", "watch",
		"report", "orders" };

	assert_int_equal(sizeof(want) / sizeof(want[0]), PROTO_TYPE_MAX);
	assert_null(proto_type_name(PROTO_NONE));
	assert_null(proto_type_name(-1));
	assert_null(proto_type_name(PROTO_TYPE_MAX));
	assert_null(proto_type_name(1000));
	for (int t = 1; t < PROTO_TYPE_MAX; t++) {
		assert_string_equal(proto_type_name(t), want[t]);
		/* begin() writes the name the decoder looks up; the
		 * type's required fields are absent, so only check that the
		 * type was recognised */
		proto_writer_reset(&f->w);
		begin(f, t, 0);
		decode(f);
		assert_int_equal(f->m.type, t);
	}
}

static void
test_field_order_and_unknown_fields(void **state)
{
	struct fx *f = *state;

	/* fields in any order, unknown fields ignored, a non-string key */
	msgpack_pack_map(&f->w.pk, 5);
	proto_put_uint(&f->w, "ack", 3);
	proto_put_str(&f->w, "future", "ignored");
	msgpack_pack_uint64(&f->w.pk, 7);
	msgpack_pack_nil(&f->w.pk);
	proto_put_str(&f->w, "t", "fetch");
	proto_put_uint(&f->w, "v", PROTO_VERSION);
	decode_ok(f, PROTO_FETCH);
	assert_true(f->m.ack == 3);
}

static void
test_decoder_reuse(void **state)
{
	struct fx *f = *state;

	/* one decoder, many messages: each decode resets the message */
	for (int round = 0; round < 50; round++) {
		proto_writer_reset(&f->w);
		pack_worker_hello(f);
		decode_ok(f, PROTO_HELLO);
		assert_int_equal(f->m.n_functions, 3);

		proto_writer_reset(&f->w);
		proto_write_fetch(&f->w, (uint64_t)round, 0);
		decode_ok(f, PROTO_FETCH);
		assert_true(f->m.ack == (uint64_t)round);
		assert_int_equal(f->m.n_functions, 0);
		assert_null(f->m.functions);
		assert_int_equal(f->m.role, 0);

		proto_writer_reset(&f->w);
		proto_write_error(&f->w, FERRY_EFULL, "x");
		decode(f);
		assert_int_equal(f->m.type, PROTO_ERROR);
		proto_writer_reset(&f->w);
		decode(f); /* empty: fails, and clears the message */
		assert_int_equal(f->m.type, PROTO_NONE);
		assert_null(f->m.msg);
	}
}


/* ------------------------------------------------------------ writers */

/* The writer's bytes are exactly xlen bytes of x. */
static void
assert_bytes(struct fx *f, const char *x, size_t xlen)
{
	if (f->w.buf.size != xlen) {
		fail_msg("wrote %zu bytes, expected %zu", f->w.buf.size, xlen);
	}
	assert_memory_equal(f->w.buf.data, x, xlen);
}

#define ASSERT_BYTES(f, lit) assert_bytes(f, lit, sizeof(lit) - 1)

/* write(h) writes exactly the bytes f->w holds now (the writer is left
 * empty). */
static void
assert_writes_same(struct fx *f,
    void (*write)(struct proto_writer *, const struct proto_hello *),
    const struct proto_hello *h)
{
	char   want[512];
	size_t n = f->w.buf.size;

	assert_true(n <= sizeof(want));
	memcpy(want, f->w.buf.data, n);
	proto_writer_reset(&f->w);
	write(&f->w, h);
	assert_bytes(f, want, n);
	proto_writer_reset(&f->w);
}

/* The bytes of protocol.md 6.1, written by the writers the peers use. */
static void
test_writer_bytes(void **state)
{
	struct fx          *f = *state;
	struct proto_writer res;
	struct proto_work   wk = { 0 };

	/* submit: one task, client id 1, add [2, 3] (35 bytes) */
	proto_write_submit_begin(&f->w);
	SUBMIT(f, 1, "add", 3, "\x92\x02\x03", 3);
	proto_write_submit_end(&f->w);
	assert_int_equal(f->w.buf.size, 35);
	ASSERT_BYTES(f,
	    "\x83\xa1v\x01\xa1t\xa6submit\xa5tasks\xdd\x00\x00\x00\x01"
	    "\x93\x01\xa3" "add\xc4\x03\x92\x02\x03");

	/* submitted: accepted 1, rejected [] (36 bytes) */
	proto_writer_reset(&f->w);
	proto_write_submitted(&f->w, 1, NULL);
	assert_int_equal(f->w.buf.size, 36);
	ASSERT_BYTES(f,
	    "\x84\xa1v\x01\xa1t\xa9submitted\xa8" "accepted\x01"
	    "\xa8rejected\x90");

	/* tasks: scheduler id 7 */
	proto_writer_reset(&f->w);
	proto_write_tasks_begin(&f->w);
	proto_write_tasks_entry(&f->w, 7, "add", 3, "\x92\x02\x03", 3, 0);
	proto_write_tasks_end(&f->w);
	ASSERT_BYTES(f,
	    "\x83\xa1v\x01\xa1t\xa5tasks\xa5tasks\xdd\x00\x00\x00\x01"
	    "\x93\x07\xa3" "add\xc4\x03\x92\x02\x03");

	/* work: credit 1, results [[7, 0, bin 05]] */
	proto_writer_init(&res);
	proto_pack_result(&res, 7, 0, "\x05", 1);
	wk.credit  = 1;
	wk.results = &res;
	proto_writer_reset(&f->w);
	proto_write_work(&f->w, &wk);
	ASSERT_BYTES(f,
	    "\x84\xa1v\x01\xa1t\xa4work\xa6" "credit\x01"
	    "\xa7results\x91\x93\x07\x00\xc4\x01\x05");

	/* results: [[1, 0, bin 05, 1]], seq 1 */
	proto_writer_reset(&f->w);
	proto_write_results_begin(&f->w);
	proto_write_results_entry(&f->w, 1, 0, "\x05", 1, 1);
	proto_write_results_end(&f->w, 1);
	ASSERT_BYTES(f,
	    "\x84\xa1v\x01\xa1t\xa7results\xa7results\xdd\x00\x00\x00\x01"
	    "\x94\x01\x00\xc4\x01\x05\x01\xa3seq\x01");

	/* a failed result entry, from a worker and on to a client */
	proto_writer_reset(&res);
	proto_pack_result(&res, 1, FERRY_ETASK, "boom", 4);
	assert_int_equal(res.buf.size, 8);
	assert_memory_equal(res.buf.data, "\x93\x01\xf5\xa4" "boom", 8);
	proto_writer_reset(&f->w);
	proto_write_results_entry(&f->w, 1, FERRY_ETASK, "boom", 4, 1);
	ASSERT_BYTES(f, "\x94\x01\xf5\xa4" "boom\x01");
	proto_writer_fini(&res);

	/* the answer to a superseded fetch: results [] (fixarray), seq 0 */
	proto_writer_reset(&f->w);
	proto_write_results_empty(&f->w);
	ASSERT_BYTES(f,
	    "\x84\xa1v\x01\xa1t\xa7results\xa7results\x90\xa3seq\x00");
}

/* The hello writers write each role's fields in the order its peer has
 * always sent them: the same bytes as a hand-built message. */
static void
test_writer_hello_bytes(void **state)
{
	struct fx         *f      = *state;
	const char *const  fns[]  = { "add" };
	struct proto_hello h      = { 0 };

	h.token       = "0123456789abcdef";
	h.name        = "w-1";
	h.host        = "node7";
	h.group       = "gpu";
	h.pid         = 4242;
	h.session     = 9;
	h.supervisor  = 77;
	h.slots       = 2;
	h.capacity    = 10;
	h.functions   = fns;
	h.n_functions = 1;

	/* worker: role token name host group pid session slots capacity
	 * functions supervisor */
	begin(f, PROTO_HELLO, 11);
	proto_put_str(&f->w, "role", "worker");
	proto_put_str(&f->w, "token", h.token);
	proto_put_str(&f->w, "name", h.name);
	proto_put_str(&f->w, "host", h.host);
	proto_put_str(&f->w, "group", h.group);
	proto_put_uint(&f->w, "pid", h.pid);
	proto_put_uint(&f->w, "session", h.session);
	proto_put_uint(&f->w, "slots", h.slots);
	proto_put_uint(&f->w, "capacity", h.capacity);
	proto_put_key(&f->w, "functions");
	msgpack_pack_array(&f->w.pk, 1);
	pk_cstr(f, "add");
	proto_put_uint(&f->w, "supervisor", h.supervisor);
	assert_writes_same(f, proto_write_hello_worker, &h);

	/* client: role token name host pid session */
	begin(f, PROTO_HELLO, 6);
	proto_put_str(&f->w, "role", "client");
	proto_put_str(&f->w, "token", h.token);
	proto_put_str(&f->w, "name", h.name);
	proto_put_str(&f->w, "host", h.host);
	proto_put_uint(&f->w, "pid", h.pid);
	proto_put_uint(&f->w, "session", h.session);
	assert_writes_same(f, proto_write_hello_client, &h);

	/* supervisor: role token supervisor name host group pid */
	begin(f, PROTO_HELLO, 7);
	proto_put_str(&f->w, "role", "supervisor");
	proto_put_str(&f->w, "token", h.token);
	proto_put_uint(&f->w, "supervisor", h.supervisor);
	proto_put_str(&f->w, "name", h.name);
	proto_put_str(&f->w, "host", h.host);
	proto_put_str(&f->w, "group", h.group);
	proto_put_uint(&f->w, "pid", h.pid);
	assert_writes_same(f, proto_write_hello_supervisor, &h);
}

/* A message of type status_reply with n uint fields after "v", "t"
 * ("f0", "f1", ...), decoded: its map must have n + 2 pairs. */
static void
check_map_of(struct fx *f, uint32_t n, const char *head, size_t head_len)
{
	char key[16];

	proto_writer_reset(&f->w);
	proto_open(&f->w, PROTO_STATUS_REPLY);
	for (uint32_t i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "f%u", i);
		proto_put_uint(&f->w, key, i);
	}
	proto_end(&f->w);
	assert_int_equal(f->w.depth, 0);
	assert_memory_equal(f->w.buf.data, head, head_len);
	decode_ok(f, PROTO_STATUS_REPLY);
	assert_int_equal(f->m.body->via.map.size, n + 2);
	/* the last field is intact after the header moved */
	assert_int_equal(
	    f->m.body->via.map.ptr[n + 1].val.via.u64, n > 0 ? n - 1 : 0);
}

/* proto_open/proto_end count the fields and write the smallest header:
 * fixmap up to 15 pairs, map16 up to 65535, map32 beyond. */
static void
test_writer_map_sizes(void **state)
{
	struct fx *f = *state;

	check_map_of(f, 13, "\x8f", 1);
	check_map_of(f, 14, "\xde\x00\x10", 3);
	check_map_of(f, 65533, "\xde\xff\xff", 3);
	check_map_of(f, 65534, "\xdf\x00\x01\x00\x00", 5);
	check_map_of(f, 70000, "\xdf\x00\x01\x11\x72", 5);
}

/* A list of 3 task entries, as the value of key "list", in f->w (a
 * submit's tasks, written under another key). */
static void
list_in(struct fx *f)
{
	struct proto_writer l;

	proto_writer_init(&l);
	for (uint64_t i = 10; i < 13; i++)
		proto_pack_task(&l, i, "fn", 2, "\xc0", 1);
	proto_put_list(&f->w, "list", &l);
	proto_writer_fini(&l);
}

/* Maps inside maps, each counted on its own; a list inside a map that
 * grows past 15 fields keeps its elements when the header moves. */
static void
test_writer_nested(void **state)
{
	struct fx               *f = *state;
	char                     key[16];
	const msgpack_object    *b, *inner, *list;
	const struct proto_cache c = { 1, 2, 3, 4, 5, 6, 1 };

	proto_open(&f->w, PROTO_STATUS_REPLY);
	proto_put_key(&f->w, "inner");
	proto_open_map(&f->w);
	for (uint32_t i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "k%u", i);
		proto_put_uint(&f->w, key, i);
	}
	proto_put_cache(&f->w, "cache", &c);
	proto_end(&f->w);
	list_in(f);
	for (uint32_t i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "g%u", i);
		proto_put_str(&f->w, key, "x");
	}
	proto_end(&f->w);
	assert_int_equal(f->w.depth, 0);
	decode_ok(f, PROTO_STATUS_REPLY);
	b = f->m.body;
	assert_int_equal(b->via.map.size, 2 + 1 + 1 + 20);
	inner = &b->via.map.ptr[2].val;
	assert_int_equal(inner->type, MSGPACK_OBJECT_MAP);
	assert_int_equal(inner->via.map.size, 21);
	assert_int_equal(inner->via.map.ptr[20].val.via.map.size, 6);
	list = &b->via.map.ptr[3].val;
	assert_int_equal(list->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(list->via.array.size, 3);
	assert_int_equal(list->via.array.ptr[2].via.array.ptr[0].via.u64, 12);
}

/* Elements packed ahead (a worker's outbox, rejected entries) keep their
 * count through append and swap; a reset forgets it. */
static void
test_writer_lists(void **state)
{
	struct fx          *f = *state;
	struct proto_writer a, b;

	proto_writer_init(&a);
	proto_writer_init(&b);
	proto_pack_result(&a, 1, 0, "\x01", 1);
	proto_pack_result(&a, 2, 0, "\x02", 1);
	proto_pack_result(&b, 3, FERRY_ETASK, "no", 2);
	assert_int_equal(a.entries, 2);
	proto_writer_append(&a, &b);
	assert_int_equal(a.entries, 3);
	proto_writer_swap(&a, &b);
	assert_int_equal(a.entries, 1);
	assert_int_equal(b.entries, 3);
	/* each packer still writes into its own buffer */
	proto_pack_str(&a, "k", 1);
	proto_pack_str(&b, "k", 1);
	assert_int_equal(a.entries, 2);
	proto_writer_reset(&b);
	assert_int_equal(b.entries, 0);
	proto_pack_result(&b, 4, 0, "\xc0", 1);
	proto_pack_result(&b, 5, 0, "\xc0", 1);
	proto_write_submitted(&f->w, 0, &b);
	decode_ok(f, PROTO_SUBMITTED);
	assert_int_equal(f->m.n_results, 2);
	assert_true(f->m.results[1].id == 5);
	proto_writer_fini(&a);
	proto_writer_fini(&b);
}

/* Every message type has a writer, and what it writes decodes as that
 * type (the fields are checked in the tests above). */
static void
test_writer_every_type(void **state)
{
	struct fx               *f = *state;
	struct proto_hello       h = { 0 };
	struct proto_welcome     wl = { 1, 1000, 5000, 65536, 0, 0, 0 };
	struct proto_work        wk = { 0 };
	const uint64_t           ids[] = { 1 };
	const struct proto_kill  k[] = { { 1, 2 } };
	int                      seen[PROTO_TYPE_MAX] = { 0 };

	h.slots    = 1;
	h.capacity = 1;
	h.session  = 1;
	h.supervisor = 1;
	for (int t = 1; t < PROTO_TYPE_MAX; t++) {
		for (int v = 0; v < 3; v++) {
			proto_writer_reset(&f->w);
			switch (t) {
			case PROTO_HELLO:
				if (v == 0)
					proto_write_hello_worker(&f->w, &h);
				else if (v == 1)
					proto_write_hello_client(&f->w, &h);
				else
					proto_write_hello_supervisor(&f->w, &h);
				break;
			case PROTO_WELCOME:
				wl.client = v;
				proto_write_welcome(&f->w, &wl);
				break;
			case PROTO_SUBMIT:
				proto_write_submit_begin(&f->w);
				proto_write_submit_end(&f->w);
				break;
			case PROTO_SUBMITTED:
				proto_write_submitted(&f->w, 0, NULL);
				break;
			case PROTO_FETCH:
				proto_write_fetch(&f->w, 0, 0);
				break;
			case PROTO_RESULTS:
				proto_write_results_empty(&f->w);
				break;
			case PROTO_CANCEL:
				proto_write_cancel(&f->w, ids, 1);
				break;
			case PROTO_CANCELLED:
				proto_write_cancelled(&f->w, ids, 1);
				break;
			case PROTO_STATUS:
				proto_write_status(&f->w);
				break;
			case PROTO_STATUS_REPLY: /* written in steps */
				proto_open(&f->w, t);
				proto_end(&f->w);
				break;
			case PROTO_WORK:
				proto_write_work(&f->w, &wk);
				break;
			case PROTO_TASKS:
				proto_write_tasks_begin(&f->w);
				proto_write_tasks_end(&f->w);
				break;
			case PROTO_ERROR:
				proto_write_error(&f->w, FERRY_EINVAL, "x");
				break;
			case PROTO_WATCH:
				proto_write_watch(&f->w, 0);
				break;
			case PROTO_REPORT:
				proto_write_report(&f->w, 1, 0, "exit", "x",
				    NULL, 0);
				break;
			case PROTO_ORDERS:
				proto_write_orders(&f->w, k, 1);
				break;
			}
			decode_ok(f, t);
			assert_int_equal(f->w.depth, 0);
			seen[t] = 1;
		}
	}
	for (int t = 1; t < PROTO_TYPE_MAX; t++)
		assert_true(seen[t]);
}

/* ----------------------------------------------------------- malformed */

/* A sample submit, as a client packs it. */
static void
pack_sample_submit(struct fx *f)
{
	begin(f, PROTO_SUBMIT, 1);
	proto_put_key(&f->w, "tasks");
	msgpack_pack_array(&f->w.pk, 3);
	proto_pack_task(&f->w, 1, "add", 3, "\x92\x01\x02", 3);
	proto_pack_task(&f->w, 2, "noargs", 6, NULL, 0);
	proto_pack_task(&f->w, 300, "bin", 3, "\x00\xc1\xff", 3);
}

static void
test_empty(void **state)
{
	struct fx *f = *state;

	decode_bytes(f, "", 0);
	check_err(f, FERRY_EPROTO, "empty message", NULL);
	assert_int_equal(f->m.type, PROTO_NONE);
	f->rc = proto_decode(&f->d, NULL, 0, &f->m, f->err, sizeof(f->err));
	check_err(f, FERRY_EPROTO, "empty message", NULL);
}

/* Every proper prefix of msg must fail cleanly, with a message about
 * truncation (or a container larger than what is left). */
static void
check_all_prefixes(struct fx *f, const uint8_t *msg, size_t len)
{
	for (size_t n = 0; n < len; n++) {
		decode_bytes(f, msg, n);
		if (f->rc != FERRY_EPROTO)
			fail_msg("prefix of %zu/%zu bytes: rc %d (%s)", n, len,
			    f->rc, f->err);
		if (f->err[0] == '\0')
			fail_msg("prefix of %zu bytes: empty error", n);
		if (n == 0)
			assert_string_equal(f->err, "empty message");
		else if (strstr(f->err, "truncated") == NULL &&
		         strstr(f->err, "bytes remain") == NULL)
			fail_msg("prefix of %zu bytes: \"%s\"", n, f->err);
		if (n > 0 && strstr(f->err, "offset") == NULL &&
		    strstr(f->err, "after byte") == NULL)
			fail_msg("prefix of %zu bytes: no position in \"%s\"",
			    n, f->err);
		assert_int_equal(f->m.type, PROTO_NONE);
		assert_int_equal(proto_check(msg, n, NULL, 0), -1);
	}
}

static void
test_truncated_submit(void **state)
{
	struct fx *f = *state;
	uint8_t   *msg;
	size_t     len;

	pack_sample_submit(f);
	len = f->w.buf.size;
	msg = malloc(len);
	assert_non_null(msg);
	memcpy(msg, f->w.buf.data, len);
	decode_bytes(f, msg, len);
	assert_int_equal(f->rc, 0);
	check_all_prefixes(f, msg, len);
	free(msg);
}

/* Each of these senders' messages, cut short anywhere, is rejected. */
static void
test_truncated_all_types(void **state)
{
	struct fx *f = *state;

	for (int t = 1; t < PROTO_TYPE_MAX; t++) {
		uint8_t *msg;
		size_t   len;
		proto_writer_reset(&f->w);
		switch (t) {
		case PROTO_HELLO:
			pack_worker_hello(f);
			break;
		case PROTO_RESULTS:
			begin(f, t, 2);
			proto_put_uint(&f->w, "seq", 1000);
			proto_put_key(&f->w, "results");
			msgpack_pack_array(&f->w.pk, 2);
			proto_pack_result(&f->w, 1, 0, "\xc3", 1);
			proto_pack_result(&f->w, 2, FERRY_ETASK, "no", 2);
			break;
		case PROTO_ERROR:
			proto_write_error(&f->w, FERRY_EPROTO, "bad");
			break;
		default:
			begin(f, t, 1);
			proto_put_uint(&f->w, "x", 70000);
			break;
		}
		len = f->w.buf.size;
		msg = malloc(len);
		assert_non_null(msg);
		memcpy(msg, f->w.buf.data, len);
		check_all_prefixes(f, msg, len);
		free(msg);
	}
}

static void
test_trailing_bytes(void **state)
{
	struct fx *f = *state;
	char       want[96];
	size_t     len;

	pack_sample_submit(f);
	len = f->w.buf.size;
	pk_raw(f, "\x00", 1);
	decode(f);
	snprintf(want, sizeof(want),
	    "1 unexpected bytes after the message at offset %zu", len);
	check_err(f, FERRY_EPROTO, want, NULL);

	/* two whole messages in one body */
	proto_writer_reset(&f->w);
	pack_sample_submit(f);
	pack_sample_submit(f);
	decode(f);
	snprintf(want, sizeof(want), "%zu unexpected bytes", len);
	check_err(f, FERRY_EPROTO, want, "offset", NULL);
}

static void
test_invalid_byte(void **state)
{
	struct fx *f = *state;
	char       want[64];
	size_t     at;

	/* {"v": 1, "t": "fetch", "ack": <0xc1>} */
	begin(f, PROTO_FETCH, 1);
	proto_put_key(&f->w, "ack");
	at = f->w.buf.size;
	pk_raw(f, "\xc1", 1);
	decode(f);
	snprintf(want, sizeof(want), "invalid msgpack byte 0xc1 at offset %zu",
	    at);
	check_err(f, FERRY_EPROTO, want, NULL);

	decode_bytes(f, "\xc1", 1);
	check_err(f, FERRY_EPROTO, "0xc1 at offset 0", NULL);
}

static void
test_not_a_map(void **state)
{
	struct fx *f = *state;

	/* ["submit", 1] */
	msgpack_pack_array(&f->w.pk, 2);
	pk_cstr(f, "submit");
	msgpack_pack_uint64(&f->w.pk, 1);
	decode(f);
	check_err(f, FERRY_EPROTO, "expected a map, got an array", NULL);

	decode_bytes(f, "\x2a", 1);
	check_err(f, FERRY_EPROTO, "expected a map, got an integer", NULL);
	decode_bytes(f, "\xa3" "abc", 4);
	check_err(f, FERRY_EPROTO, "expected a map, got a string", NULL);
	decode_bytes(f, "\xc0", 1);
	check_err(f, FERRY_EPROTO, "expected a map, got nil", NULL);
}

static void
test_huge_container(void **state)
{
	struct fx     *f = *state;
	/* an array32 / map32 of 2^32-1 items in a 10-byte message: must be
	 * refused by proto_check, before msgpack allocates anything */
	const uint8_t arr[10] = { 0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5 };
	const uint8_t map[10] = { 0xdf, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5 };
	char          err[256];

	decode_bytes(f, arr, sizeof(arr));
	check_err(f, FERRY_EPROTO,
	    "container at offset 0 declares 4294967295 items but only 5 "
	    "bytes remain",
	    NULL);
	assert_int_equal(proto_check(arr, sizeof(arr), err, sizeof(err)), -1);
	assert_string_equal(err, f->err);

	decode_bytes(f, map, sizeof(map));
	check_err(f, FERRY_EPROTO, "declares 8589934590 items", "offset 0",
	    NULL);

	/* the same inside a valid-looking message */
	begin(f, PROTO_SUBMIT, 1);
	proto_put_key(&f->w, "tasks");
	{
		char   want[64];
		size_t at = f->w.buf.size;
		pk_raw(f, arr, 5);
		decode(f);
		snprintf(want, sizeof(want), "container at offset %zu", at);
		check_err(f, FERRY_EPROTO, want, "declares 4294967295",
		    NULL);
	}

	/* a str32 / bin32 / ext32 claiming 4 GiB */
	decode_bytes(f, "\xdb\xff\xff\xff\xff" "abc", 8);
	check_err(f, FERRY_EPROTO, "value at offset 0 needs 4294967295 bytes",
	    "3 remain", NULL);
	decode_bytes(f, "\xc6\xff\xff\xff\xff" "abc", 8);
	check_err(f, FERRY_EPROTO, "needs 4294967295 bytes", NULL);
	decode_bytes(f, "\xc9\xff\xff\xff\xff\x01" "abc", 9);
	check_err(f, FERRY_EPROTO, "needs 4294967296 bytes", NULL);
}

/* {"v": 1, "t": "status", "x": <arrays nested n deep around nil, or
 * around an empty array>}; returns the offset of the first array */
static size_t
pack_nested_status(struct fx *f, int n, int empty_inside)
{
	size_t at;
	proto_writer_reset(&f->w);
	begin(f, PROTO_STATUS, 1);
	proto_put_key(&f->w, "x");
	at = f->w.buf.size;
	for (int i = 0; i < n; i++)
		msgpack_pack_array(&f->w.pk, 1);
	if (empty_inside)
		msgpack_pack_array(&f->w.pk, 0);
	else
		msgpack_pack_nil(&f->w.pk);
	return at;
}

static void
test_deep_nesting(void **state)
{
	struct fx *f = *state;
	char       want[96];
	size_t     at;

	/* the root map and 31 arrays: 32 levels, what msgpack-c takes */
	pack_nested_status(f, 31, 0);
	decode_ok(f, PROTO_STATUS);
	pack_nested_status(f, 30, 1);
	decode_ok(f, PROTO_STATUS);

	/* one more, even an empty one, is refused by proto_check with the
	 * offset of the container, not reported as "out of memory" */
	at = pack_nested_status(f, 32, 0);
	decode(f);
	snprintf(want, sizeof(want),
	    "container at offset %zu is nested deeper than 32 levels",
	    at + 31);
	check_err(f, FERRY_EPROTO, want, NULL);
	at = pack_nested_status(f, 31, 1);
	decode(f);
	snprintf(want, sizeof(want), "container at offset %zu is nested",
	    at + 31);
	check_err(f, FERRY_EPROTO, want, NULL);
	pack_nested_status(f, 1000, 0);
	decode(f);
	check_err(f, FERRY_EPROTO, "nested deeper than 32 levels", NULL);

	/* siblings do not add up: 40 arrays side by side, each 20 deep */
	proto_writer_reset(&f->w);
	begin(f, PROTO_STATUS, 1);
	proto_put_key(&f->w, "x");
	msgpack_pack_array(&f->w.pk, 40);
	for (int i = 0; i < 40; i++) {
		for (int k = 0; k < 20; k++)
			msgpack_pack_array(&f->w.pk, k == 19 ? 0 : 2);
		for (int k = 0; k < 19; k++)
			msgpack_pack_map(&f->w.pk, 0);
	}
	decode_ok(f, PROTO_STATUS);
}

static void
test_err_buffer_sizes(void **state)
{
	struct fx *f = *state;
	char       small[8];

	pack_sample_submit(f);
	pk_raw(f, "\x00", 1);
	/* no error buffer at all */
	assert_int_equal(proto_decode(&f->d, f->w.buf.data, f->w.buf.size,
	                     &f->m, NULL, 0),
	    FERRY_EPROTO);
	assert_int_equal(proto_check(f->w.buf.data, f->w.buf.size, NULL, 0),
	    -1);
	/* a small one is filled and terminated */
	memset(small, 'Z', sizeof(small));
	assert_int_equal(proto_decode(&f->d, f->w.buf.data, f->w.buf.size,
	                     &f->m, small, sizeof(small)),
	    FERRY_EPROTO);
	assert_int_equal(strlen(small), sizeof(small) - 1);

	/* the field errors too, even when the type name does not fit */
	proto_writer_reset(&f->w);
	begin(f, PROTO_SUBMITTED, 0);
	memset(small, 'Z', sizeof(small));
	assert_int_equal(proto_decode(&f->d, f->w.buf.data, f->w.buf.size,
	                     &f->m, small, 4),
	    FERRY_EPROTO);
	assert_int_equal(strlen(small), 3);
	assert_int_equal(proto_decode(&f->d, f->w.buf.data, f->w.buf.size,
	                     &f->m, NULL, 0),
	    FERRY_EPROTO);
	/* and the version error */
	proto_writer_reset(&f->w);
	msgpack_pack_map(&f->w.pk, 2);
	proto_put_uint(&f->w, "v", 9);
	proto_put_str(&f->w, "t", "status");
	assert_int_equal(proto_decode(&f->d, f->w.buf.data, f->w.buf.size,
	                     &f->m, NULL, 0),
	    FERRY_EVERSION);
}

/*
 * Table-driven field errors.  A message is a list of (key, raw msgpack
 * value) fields; each case replaces, omits or adds one field and names
 * the return code and the text the error must contain.
 */
struct field {
	const char *key;
	const char *raw;
	size_t      len;
};

#define F(k, lit) { k, lit, sizeof(lit) - 1 }
#define RAW(lit) lit, sizeof(lit) - 1
#define OMIT NULL, 0

/* [1, "add", bin [1, 2]] */
#define TASK_OK "\x93\x01\xa3" "add" "\xc4\x03\x92\x01\x02"
/* [1, 0, bin 3] and [2, -11, "boom"] */
#define RES_OK "\x93\x01\x00\xc4\x01\x03"
#define RES_ERR "\x93\x02\xf5\xa4" "boom"

static const struct field submit_msg[] = {
	F("v", "\x01"),
	F("t", "\xa6" "submit"),
	F("tasks", "\x91" TASK_OK),
};
static const struct field tasks_msg[] = {
	F("v", "\x01"),
	F("t", "\xa5" "tasks"),
	F("tasks", "\x91" TASK_OK),
};
static const struct field results_msg[] = {
	F("v", "\x01"),
	F("t", "\xa7" "results"),
	F("seq", "\x05"),
	F("results", "\x92" RES_OK RES_ERR),
};
static const struct field work_msg[] = {
	F("v", "\x01"),
	F("t", "\xa4" "work"),
	F("credit", "\x08"),
	F("results", "\x91" RES_OK),
};
static const struct field submitted_msg[] = {
	F("v", "\x01"),
	F("t", "\xa9" "submitted"),
	F("accepted", "\x02"),
	F("rejected", "\x91" RES_ERR),
};
static const struct field hello_msg[] = {
	F("v", "\x01"),
	F("t", "\xa5" "hello"),
	F("role", "\xa6" "worker"),
	F("name", "\xa2" "w1"),
	F("host", "\xa1" "h"),
	F("group", "\xa1" "g"),
	F("pid", "\xcd\x10\x92"),
	F("session", "\x07"),
	F("slots", "\x04"),
	F("capacity", "\x08"),
	F("functions", "\x92\xa3" "add" "\xa3" "mul"),
};
static const struct field welcome_msg[] = {
	F("v", "\x01"),
	F("t", "\xa7" "welcome"),
	F("id", "\x01"),
	F("heartbeat_ms", "\xcd\x03\xe8"),
	F("max_message_size", "\xce\x04\x00\x00\x00"),
};
static const struct field fetch_msg[] = {
	F("v", "\x01"),
	F("t", "\xa5" "fetch"),
	F("ack", "\x01"),
	F("wait_ms", "\x10"),
};
static const struct field cancel_msg[] = {
	F("v", "\x01"),
	F("t", "\xa6" "cancel"),
	F("ids", "\x92\x01\x02"),
};
static const struct field cancelled_msg[] = {
	F("v", "\x01"),
	F("t", "\xa9" "cancelled"),
	F("ids", "\x91\x01"),
};
static const struct field error_msg[] = {
	F("v", "\x01"),
	F("t", "\xa5" "error"),
	F("code", "\xf6"), /* -10 */
	F("msg", "\xa2" "no"),
};

#define MSG(a) a, sizeof(a) / sizeof(a[0])

struct bad_case {
	const struct field *msg;
	size_t              nmsg;
	const char         *key;
	const char         *raw; /* NULL: omit the field */
	size_t              len;
	int                 rc;
	const char         *want[3];
};

/* clang-format off */
static const struct bad_case bad_cases[] = {
	/* v and t */
	{ MSG(submit_msg), "v", OMIT, FERRY_EPROTO,
	  { "message: missing field 'v' (protocol version)" } },
	{ MSG(submit_msg), "v", RAW("\xa1" "1"), FERRY_EPROTO,
	  { "message: field 'v': expected an integer, got a string" } },
	{ MSG(submit_msg), "v", RAW("\xff"), FERRY_EPROTO,
	  { "field 'v': expected an integer, got a negative integer" } },
	{ MSG(submit_msg), "v", RAW("\xcb\x3f\xf0\0\0\0\0\0\0"), FERRY_EPROTO,
	  { "field 'v': expected an integer, got a float" } },
	{ MSG(submit_msg), "v", RAW("\x02"), FERRY_EVERSION,
	  { "submit: protocol version 2 is not supported",
	    "this side speaks version 1" } },
	{ MSG(submit_msg), "v", RAW("\x00"), FERRY_EVERSION,
	  { "protocol version 0" } },
	{ MSG(hello_msg), "v", RAW("\xcf\xff\xff\xff\xff\xff\xff\xff\xff"),
	  FERRY_EVERSION, { "hello: protocol version 18446744073709551615" } },
	{ MSG(submit_msg), "t", OMIT, FERRY_EPROTO,
	  { "message: missing field 't' (message type)" } },
	{ MSG(submit_msg), "t", RAW("\x03"), FERRY_EPROTO,
	  { "message: field 't': expected a string, got an integer" } },
	{ MSG(submit_msg), "t", RAW("\xc4\x06" "submit"), FERRY_EPROTO,
	  { "field 't': expected a string, got bytes" } },
	{ MSG(submit_msg), "t", RAW("\xaa" "frobnicate"), FERRY_EPROTO,
	  { "message: unknown message type \"frobnicate\"" } },
	{ MSG(submit_msg), "t", RAW("\xa0"), FERRY_EPROTO,
	  { "unknown message type \"\"" } },
	{ MSG(submit_msg), "t", RAW("\xa6" "SUBMIT"), FERRY_EPROTO,
	  { "unknown message type \"SUBMIT\"" } },
	{ MSG(submit_msg), "t", RAW("\xa7" "submits"), FERRY_EPROTO,
	  { "unknown message type \"submits\"" } },

	/* submit / tasks */
	{ MSG(submit_msg), "tasks", OMIT, FERRY_EPROTO,
	  { "submit: missing field 'tasks'" } },
	{ MSG(submit_msg), "tasks", RAW("\x80"), FERRY_EPROTO,
	  { "submit: field 'tasks': expected an array, got a map" } },
	{ MSG(submit_msg), "tasks", RAW("\xc0"), FERRY_EPROTO,
	  { "field 'tasks': expected an array, got nil" } },
	{ MSG(submit_msg), "tasks", RAW("\x92" TASK_OK "\x05"), FERRY_EPROTO,
	  { "submit: tasks[1]: expected an array [id, fn, args], got an "
	    "integer" } },
	{ MSG(submit_msg), "tasks", RAW("\x92" TASK_OK "\x92\x01\xa1" "f"),
	  FERRY_EPROTO, { "tasks[1]: expected an array [id, fn, args], got "
	                  "a shorter array" } },
	{ MSG(submit_msg), "tasks", RAW("\x92" TASK_OK "\x90"), FERRY_EPROTO,
	  { "tasks[1]: ", "shorter array" } },
	{ MSG(submit_msg), "tasks",
	  RAW("\x92" TASK_OK "\x93\xa1" "1" "\xa1" "f" "\xc4\x00"),
	  FERRY_EPROTO,
	  { "submit: tasks[1][0] (id): expected an integer, got a string" } },
	{ MSG(submit_msg), "tasks",
	  RAW("\x92" TASK_OK "\x93\xff\xa1" "f" "\xc4\x00"), FERRY_EPROTO,
	  { "tasks[1][0] (id): expected an integer, got a negative "
	    "integer" } },
	{ MSG(submit_msg), "tasks",
	  RAW("\x92" TASK_OK "\x93\xc0\xa1" "f" "\xc4\x00"), FERRY_EPROTO,
	  { "tasks[1][0] (id): expected an integer, got nil" } },
	{ MSG(submit_msg), "tasks", RAW("\x92" TASK_OK "\x93\x02\x07\xc4\x00"),
	  FERRY_EPROTO, { "submit: tasks[1][1] (fn): expected a non-empty "
	                  "string, got an integer" } },
	{ MSG(submit_msg), "tasks", RAW("\x92" TASK_OK "\x93\x02\xa0\xc4\x00"),
	  FERRY_EPROTO, { "tasks[1][1] (fn): ", "empty string" } },
	{ MSG(submit_msg), "tasks",
	  RAW("\x92" TASK_OK "\x93\x02\xc4\x01" "f" "\xc4\x00"), FERRY_EPROTO,
	  { "tasks[1][1] (fn): ", "got bytes" } },
	{ MSG(submit_msg), "tasks",
	  RAW("\x92" TASK_OK "\x93\x02\xa1" "f" "\xa2" "xx"), FERRY_EPROTO,
	  { "submit: tasks[1][2] (args): expected bytes holding msgpack, "
	    "got a string" } },
	{ MSG(submit_msg), "tasks", RAW("\x92" TASK_OK "\x93\x02\xa1" "f"
	                                "\x92\x01\x02"),
	  FERRY_EPROTO, { "tasks[1][2] (args): ", "got an array" } },
	{ MSG(submit_msg), "tasks", RAW("\x92" TASK_OK "\x93\x02\xa1" "f"
	                                "\xc0"),
	  FERRY_EPROTO, { "tasks[1][2] (args): ", "got nil" } },
	{ MSG(submit_msg), "tasks", RAW("\x91\x93\x02\xa1" "f" "\xc3"),
	  FERRY_EPROTO, { "tasks[0][2] (args): ", "got a boolean" } },
	{ MSG(tasks_msg), "tasks", RAW("\x92" TASK_OK "\x93\x02\x07\xc4\x00"),
	  FERRY_EPROTO, { "tasks: tasks[1][1] (fn)" } },
	{ MSG(tasks_msg), "tasks", OMIT, FERRY_EPROTO,
	  { "tasks: missing field 'tasks'" } },

	/* results */
	{ MSG(results_msg), "seq", OMIT, FERRY_EPROTO,
	  { "results: missing field 'seq'" } },
	{ MSG(results_msg), "seq", RAW("\xa1" "1"), FERRY_EPROTO,
	  { "results: field 'seq': expected a non-negative integer, got a "
	    "string" } },
	{ MSG(results_msg), "results", OMIT, FERRY_EPROTO,
	  { "results: missing field 'results'" } },
	{ MSG(results_msg), "results", RAW("\xc0"), FERRY_EPROTO,
	  { "results: field 'results': expected an array, got nil" } },
	{ MSG(results_msg), "results", RAW("\x92" RES_OK "\x07"), FERRY_EPROTO,
	  { "results: results[1]: expected an array [id, code, value], got "
	    "an integer" } },
	{ MSG(results_msg), "results", RAW("\x92" RES_OK "\x92\x01\x00"),
	  FERRY_EPROTO, { "results[1]: ", "a shorter array" } },
	{ MSG(results_msg), "results", RAW("\x92" RES_OK "\x93\xff\x00\xc4\x00"),
	  FERRY_EPROTO, { "results: results[1][0] (id): expected an "
	                  "integer, got a negative integer" } },
	{ MSG(results_msg), "results",
	  RAW("\x92" RES_OK "\x93\x03\x05\xa1" "x"), FERRY_EPROTO,
	  { "results: results[1][1] (code): expected 0 or a negative error "
	    "code, got 5" } },
	{ MSG(results_msg), "results",
	  RAW("\x92" RES_OK "\x93\x03\xa1" "0" "\xc4\x00"), FERRY_EPROTO,
	  { "results[1][1] (code): ", "got a string" } },
	{ MSG(results_msg), "results",
	  RAW("\x92" RES_OK "\x93\x03\xc0\xc4\x00"), FERRY_EPROTO,
	  { "results[1][1] (code): ", "got nil" } },
	{ MSG(results_msg), "results",
	  RAW("\x92" RES_OK "\x93\x03\xd3\xff\xff\xff\xff\x7f\xff\xff\xff"
	      "\xa1" "x"),
	  FERRY_EPROTO, { "results[1][1] (code): ", "got -2147483649" } },
	{ MSG(results_msg), "results",
	  RAW("\x92" RES_OK "\x93\x03\x00\xa1" "x"), FERRY_EPROTO,
	  { "results: results[1][2] (value): expected bytes holding "
	    "msgpack, got a string" } },
	{ MSG(results_msg), "results",
	  RAW("\x92" RES_OK "\x93\x03\xf5\xc4\x01" "x"), FERRY_EPROTO,
	  { "results: results[1][2] (error): expected a string, got "
	    "bytes" } },
	{ MSG(results_msg), "results",
	  RAW("\x92" RES_OK "\x93\x03\xf5\xc0"), FERRY_EPROTO,
	  { "results[1][2] (error): ", "got nil" } },

	/* work */
	{ MSG(work_msg), "credit", OMIT, FERRY_EPROTO,
	  { "work: missing field 'credit'" } },
	{ MSG(work_msg), "credit", RAW("\xf0"), FERRY_EPROTO,
	  { "work: field 'credit': expected a non-negative integer, got a "
	    "negative integer" } },
	{ MSG(work_msg), "park", RAW("\xa1" "y"), FERRY_EPROTO,
	  { "work: field 'park': expected a non-negative integer, got a "
	    "string" } },
	{ MSG(work_msg), "results", RAW("\x81\x01\x02"), FERRY_EPROTO,
	  { "work: field 'results': expected an array, got a map" } },
	{ MSG(work_msg), "results", RAW("\x92" RES_OK "\x93\x03\x01\xa1" "x"),
	  FERRY_EPROTO, { "work: results[1][1] (code)", "got 1" } },
	{ MSG(work_msg), "results", RAW("\x91\x93\x03\xf5\xc4\x00"),
	  FERRY_EPROTO, { "work: results[0][2] (error)" } },

	/* submitted */
	{ MSG(submitted_msg), "accepted", OMIT, FERRY_EPROTO,
	  { "submitted: missing field 'accepted'" } },
	{ MSG(submitted_msg), "rejected", RAW("\xa1" "x"), FERRY_EPROTO,
	  { "submitted: field 'rejected': expected an array, got a "
	    "string" } },
	{ MSG(submitted_msg), "rejected", RAW("\x92" RES_ERR "\x93\x03\x05"
	                                      "\xa1" "x"),
	  FERRY_EPROTO, { "submitted: rejected[1][1] (code)" } },
	{ MSG(submitted_msg), "rejected", RAW("\x91\x93\xa1" "x" "\xf5\xa1"
	                                      "x"),
	  FERRY_EPROTO, { "submitted: rejected[0][0] (id)" } },

	/* hello */
	{ MSG(hello_msg), "role", OMIT, FERRY_EPROTO,
	  { "hello: missing field 'role'" } },
	{ MSG(hello_msg), "role", RAW("\xa4" "boss"), FERRY_EPROTO,
	  { "hello: field 'role': expected \"worker\", \"client\" or "
	    "\"supervisor\", got \"boss\"" } },
	{ MSG(hello_msg), "role", RAW("\xa0"), FERRY_EPROTO,
	  { "field 'role': expected \"worker\", \"client\" or "
	    "\"supervisor\", got \"\"" } },
	{ MSG(hello_msg), "role", RAW("\x01"), FERRY_EPROTO,
	  { "hello: field 'role': expected a string, got an integer" } },
	{ MSG(hello_msg), "role", RAW("\xa7" "worker" "\x00"), FERRY_EPROTO,
	  { "hello: field 'role': string contains a NUL byte" } },
	{ MSG(hello_msg), "name", RAW("\xa3" "a" "\x00" "b"), FERRY_EPROTO,
	  { "hello: field 'name': string contains a NUL byte" } },
	{ MSG(hello_msg), "host", RAW("\x07"), FERRY_EPROTO,
	  { "hello: field 'host': expected a string, got an integer" } },
	{ MSG(hello_msg), "group", RAW("\xc4\x01" "g"), FERRY_EPROTO,
	  { "hello: field 'group': expected a string, got bytes" } },
	{ MSG(hello_msg), "pid", RAW("\xa2" "42"), FERRY_EPROTO,
	  { "hello: field 'pid': expected a non-negative integer, got a "
	    "string" } },
	{ MSG(hello_msg), "session", RAW("\xff"), FERRY_EPROTO,
	  { "field 'session': expected a non-negative integer, got a "
	    "negative integer" } },
	{ MSG(hello_msg), "slots", OMIT, FERRY_EPROTO,
	  { "hello: missing field 'slots'" } },
	{ MSG(hello_msg), "slots", RAW("\x00"), FERRY_EPROTO,
	  { "hello: field 'slots': 0 is out of range 1..1048576" } },
	{ MSG(hello_msg), "slots", RAW("\xce\x00\x10\x00\x01"), FERRY_EPROTO,
	  { "field 'slots': 1048577 is out of range" } },
	{ MSG(hello_msg), "slots", RAW("\xa1" "4"), FERRY_EPROTO,
	  { "field 'slots': expected a non-negative integer, got a "
	    "string" } },
	{ MSG(hello_msg), "capacity", OMIT, FERRY_EPROTO,
	  { "hello: missing field 'capacity'" } },
	{ MSG(hello_msg), "capacity", RAW("\x03"), FERRY_EPROTO,
	  { "hello: field 'capacity': 3 is out of range" } },
	{ MSG(hello_msg), "capacity", RAW("\xce\x01\x00\x00\x01"),
	  FERRY_EPROTO, { "field 'capacity': 16777217 is out of range" } },
	{ MSG(hello_msg), "functions", OMIT, FERRY_EPROTO,
	  { "hello: missing field 'functions'" } },
	{ MSG(hello_msg), "functions", RAW("\xa3" "add"), FERRY_EPROTO,
	  { "hello: field 'functions': expected an array, got a string" } },
	{ MSG(hello_msg), "functions", RAW("\x92\xa3" "add" "\xa0"),
	  FERRY_EPROTO, { "hello: functions[1]: expected a name of 1..255 "
	                  "bytes" } },
	{ MSG(hello_msg), "functions", RAW("\x92\xa3" "add" "\x05"),
	  FERRY_EPROTO, { "hello: functions[1]: ", "got an integer" } },
	{ MSG(hello_msg), "functions", RAW("\x92\xa3" "add" "\xa3" "a"
	                                   "\x00" "b"),
	  FERRY_EPROTO, { "hello: functions[1]: ", "NUL byte" } },

	/* welcome, fetch, cancel, cancelled */
	{ MSG(welcome_msg), "id", OMIT, FERRY_EPROTO,
	  { "welcome: missing field 'id'" } },
	{ MSG(welcome_msg), "heartbeat_ms", OMIT, FERRY_EPROTO,
	  { "welcome: missing field 'heartbeat_ms'" } },
	{ MSG(welcome_msg), "heartbeat_ms", RAW("\xa1" "1"), FERRY_EPROTO,
	  { "welcome: field 'heartbeat_ms': expected a non-negative "
	    "integer, got a string" } },
	{ MSG(welcome_msg), "max_message_size", RAW("\xff"), FERRY_EPROTO,
	  { "welcome: field 'max_message_size': ", "negative integer" } },
	{ MSG(fetch_msg), "ack", OMIT, FERRY_EPROTO,
	  { "fetch: missing field 'ack'" } },
	{ MSG(fetch_msg), "wait_ms", RAW("\xc3"), FERRY_EPROTO,
	  { "fetch: field 'wait_ms': expected a non-negative integer, got a "
	    "boolean" } },
	{ MSG(cancel_msg), "ids", OMIT, FERRY_EPROTO,
	  { "cancel: missing field 'ids'" } },
	{ MSG(cancel_msg), "ids", RAW("\x01"), FERRY_EPROTO,
	  { "cancel: field 'ids': expected an array, got an integer" } },
	{ MSG(cancel_msg), "ids", RAW("\x92\x01\xa1" "2"), FERRY_EPROTO,
	  { "cancel: ids[1]: expected an integer, got a string" } },
	{ MSG(cancelled_msg), "ids", RAW("\x91\xff"), FERRY_EPROTO,
	  { "cancelled: ids[0]: expected an integer, got a negative "
	    "integer" } },

	/* error */
	{ MSG(error_msg), "code", OMIT, FERRY_EPROTO,
	  { "error: missing field 'code'" } },
	{ MSG(error_msg), "code", RAW("\x00"), FERRY_EPROTO,
	  { "error: field 'code': expected a negative error code" } },
	{ MSG(error_msg), "code", RAW("\x05"), FERRY_EPROTO,
	  { "error: field 'code': expected a negative error code, got "
	    "5" } },
	{ MSG(error_msg), "code", RAW("\xa2" "-1"), FERRY_EPROTO,
	  { "error: field 'code': ", "got a string" } },
	{ MSG(error_msg), "code", RAW("\xd3\xff\xff\xff\xff\x7f\xff\xff\xff"),
	  FERRY_EPROTO, { "error: field 'code': ", "got -2147483649" } },
	{ MSG(error_msg), "msg", OMIT, FERRY_EPROTO,
	  { "error: missing field 'msg'" } },
	{ MSG(error_msg), "msg", RAW("\x01"), FERRY_EPROTO,
	  { "error: field 'msg': expected a string, got an integer" } },
	{ MSG(error_msg), "msg", RAW("\xa2" "\x00" "x"), FERRY_EPROTO,
	  { "error: field 'msg': string contains a NUL byte" } },
};
/* clang-format on */

/* Pack msg with key replaced by raw (or omitted when raw is NULL, or
 * added when msg has no such field). */
static void
build(struct fx *f, const struct field *msg, size_t n, const char *key,
    const char *raw, size_t len)
{
	size_t count = 0;
	int    found = 0;

	for (size_t i = 0; i < n; i++) {
		if (key != NULL && strcmp(msg[i].key, key) == 0) {
			found = 1;
			if (raw == NULL)
				continue;
		}
		count++;
	}
	if (key != NULL && !found && raw != NULL)
		count++;
	proto_writer_reset(&f->w);
	msgpack_pack_map(&f->w.pk, count);
	for (size_t i = 0; i < n; i++) {
		if (key != NULL && strcmp(msg[i].key, key) == 0) {
			if (raw == NULL)
				continue;
			pk_cstr(f, key);
			pk_raw(f, raw, len);
		} else {
			pk_cstr(f, msg[i].key);
			pk_raw(f, msg[i].raw, msg[i].len);
		}
	}
	if (key != NULL && !found && raw != NULL) {
		pk_cstr(f, key);
		pk_raw(f, raw, len);
	}
}

static void
test_base_messages_valid(void **state)
{
	struct fx *f = *state;
	const struct {
		const struct field *msg;
		size_t              n;
		int                 type;
	} base[] = {
		{ MSG(submit_msg), PROTO_SUBMIT },
		{ MSG(tasks_msg), PROTO_TASKS },
		{ MSG(results_msg), PROTO_RESULTS },
		{ MSG(work_msg), PROTO_WORK },
		{ MSG(submitted_msg), PROTO_SUBMITTED },
		{ MSG(hello_msg), PROTO_HELLO },
		{ MSG(welcome_msg), PROTO_WELCOME },
		{ MSG(fetch_msg), PROTO_FETCH },
		{ MSG(cancel_msg), PROTO_CANCEL },
		{ MSG(cancelled_msg), PROTO_CANCELLED },
		{ MSG(error_msg), PROTO_ERROR },
	};

	/* the table's base messages are valid, so each case's failure is
	 * due to its one change */
	for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++) {
		build(f, base[i].msg, base[i].n, NULL, NULL, 0);
		decode_ok(f, base[i].type);
	}
	build(f, MSG(results_msg), NULL, NULL, 0);
	decode_ok(f, PROTO_RESULTS);
	assert_int_equal(f->m.n_results, 2);
	assert_result(&f->m.results[0], 1, 0, "\x03", 1);
	assert_result(&f->m.results[1], 2, FERRY_ETASK, "boom", 4);
	build(f, MSG(hello_msg), NULL, NULL, 0);
	decode_ok(f, PROTO_HELLO);
	assert_true(f->m.pid == 4242);
	build(f, MSG(error_msg), NULL, NULL, 0);
	decode_ok(f, PROTO_ERROR);
	assert_int_equal(f->m.code, FERRY_ENOFUNC);
	/* a client hello needs none of the worker fields */
	build(f, MSG(hello_msg), "role", RAW("\xa6" "client"));
	decode_ok(f, PROTO_HELLO);
	assert_int_equal(f->m.role, PROTO_ROLE_CLIENT);
	/* an unknown extra field is ignored */
	build(f, MSG(fetch_msg), "later", RAW("\x81\xa1" "k" "\xc0"));
	decode_ok(f, PROTO_FETCH);
}

static void
test_field_errors(void **state)
{
	struct fx *f = *state;

	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		build(f, c->msg, c->nmsg, c->key, c->raw, c->len);
		decode(f);
		if (f->rc != c->rc)
			fail_msg("case %zu (%s): expected rc %d, got %d (%s)", i,
			    c->key, c->rc, f->rc, f->err);
		for (int k = 0; k < 3 && c->want[k] != NULL; k++)
			if (strstr(f->err, c->want[k]) == NULL)
				fail_msg("case %zu (%s): error \"%s\" lacks "
				         "\"%s\"",
				    i, c->key, f->err, c->want[k]);
	}
}

static void
test_version_before_type(void **state)
{
	struct fx *f = *state;

	/* a newer peer's message of a type this side does not know is a
	 * version mismatch, not garbage */
	msgpack_pack_map(&f->w.pk, 2);
	proto_put_uint(&f->w, "v", 2);
	proto_put_str(&f->w, "t", "newtype");
	decode(f);
	check_err(f, FERRY_EVERSION, "protocol version 2", NULL);
}

static void
test_hello_function_names(void **state)
{
	struct fx *f = *state;
	char       name[300];

	/* 256 bytes: one over the limit */
	memset(name, 'a', 256);
	name[256] = '\0';
	begin_worker_hello(f, 1, 1, 2);
	pk_cstr(f, "ok");
	pk_cstr(f, name);
	decode(f);
	check_err(f, FERRY_EPROTO, "hello: functions[1]: ", "1..255 bytes",
	    "256", NULL);

	/* a NUL inside a name must not silently shorten it */
	proto_writer_reset(&f->w);
	begin_worker_hello(f, 1, 1, 1);
	proto_pack_str(&f->w, "add\0evil", 8);
	decode(f);
	check_err(f, FERRY_EPROTO, "hello: functions[0]: ", "NUL byte",
	    NULL);
}

/* ---------------------------------------------------------- proto_check */

struct fmt_case {
	const char *name;
	const char *bytes;
	size_t      len;
};

#define FMT(name, lit) { name, lit, sizeof(lit) - 1 }

/* clang-format off */
static const struct fmt_case formats[] = {
	FMT("positive fixint", "\x05"),
	FMT("negative fixint", "\xe0"),
	FMT("nil", "\xc0"),
	FMT("false", "\xc2"),
	FMT("true", "\xc3"),
	FMT("uint8", "\xcc\xff"),
	FMT("uint16", "\xcd\xff\xff"),
	FMT("uint32", "\xce\xff\xff\xff\xff"),
	FMT("uint64", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff"),
	FMT("int8", "\xd0\x80"),
	FMT("int16", "\xd1\x80\x00"),
	FMT("int32", "\xd2\x80\x00\x00\x00"),
	FMT("int64", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00"),
	FMT("float32", "\xca\x3f\x80\x00\x00"),
	FMT("float64", "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00"),
	FMT("fixstr", "\xa3" "abc"),
	FMT("fixstr empty", "\xa0"),
	FMT("str8", "\xd9\x03" "abc"),
	FMT("str16", "\xda\x00\x03" "abc"),
	FMT("str32", "\xdb\x00\x00\x00\x03" "abc"),
	FMT("str8 empty", "\xd9\x00"),
	FMT("bin8", "\xc4\x02\x00\xc1"),
	FMT("bin16", "\xc5\x00\x02\x00\xc1"),
	FMT("bin32", "\xc6\x00\x00\x00\x02\x00\xc1"),
	FMT("bin8 empty", "\xc4\x00"),
	FMT("fixext1", "\xd4\x05\xc1"),
	FMT("fixext2", "\xd5\x05\xc1\xc1"),
	FMT("fixext4", "\xd6\x05" "abcd"),
	FMT("fixext8", "\xd7\xff" "abcdefgh"),
	FMT("fixext16", "\xd8\x01" "abcdefghijklmnop"),
	FMT("ext8", "\xc7\x03\x05" "abc"),
	FMT("ext8 empty", "\xc7\x00\x05"),
	FMT("ext16", "\xc8\x00\x03\x05" "abc"),
	FMT("ext32", "\xc9\x00\x00\x00\x03\x05" "abc"),
	FMT("fixarray", "\x92\x01\x02"),
	FMT("fixarray empty", "\x90"),
	FMT("array16", "\xdc\x00\x02\x01\x02"),
	FMT("array32", "\xdd\x00\x00\x00\x02\x01\x02"),
	FMT("array32 empty", "\xdd\x00\x00\x00\x00"),
	FMT("fixmap", "\x81\x01\x02"),
	FMT("fixmap empty", "\x80"),
	FMT("map16", "\xde\x00\x01\xa1" "k" "\x02"),
	FMT("map32", "\xdf\x00\x00\x00\x01\xa1" "k" "\x02"),
	FMT("nested", "\x82\xa1" "a" "\x92\xd9\x01" "x" "\xc6\x00\x00\x00"
	    "\x01\x00" "\xa1" "b" "\xde\x00\x01\x90\xdc\x00\x01\xd8\x01"
	    "0123456789abcdef"),
};
/* clang-format on */

static void
test_check_formats(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		const struct fmt_case *c = &formats[i];
		uint8_t               *buf = malloc(c->len + 1);
		char                   err[256];
		msgpack_zone           zone;
		msgpack_object         obj;
		size_t                 off = 0;

		assert_non_null(buf);
		memcpy(buf, c->bytes, c->len);
		/* valid, and msgpack agrees it is exactly one value */
		err[0] = '\0';
		if (proto_check(buf, c->len, err, sizeof(err)) != 0)
			fail_msg("%s: rejected: %s", c->name, err);
		msgpack_zone_init(&zone, 256);
		assert_int_equal(
		    msgpack_unpack((const char *)buf, c->len, &off, &zone, &obj),
		    MSGPACK_UNPACK_SUCCESS);
		assert_int_equal(off, c->len);
		msgpack_zone_destroy(&zone);

		/* every truncation is rejected, naming a position */
		for (size_t n = 1; n < c->len; n++) {
			uint8_t *cut = malloc(n);
			assert_non_null(cut);
			memcpy(cut, c->bytes, n);
			err[0] = '\0';
			if (proto_check(cut, n, err, sizeof(err)) != -1)
				fail_msg("%s: prefix of %zu bytes accepted",
				    c->name, n);
			if (strstr(err, "truncated") == NULL &&
			    strstr(err, "bytes remain") == NULL)
				fail_msg("%s/%zu: \"%s\"", c->name, n, err);
			if (strstr(err, "offset") == NULL &&
			    strstr(err, "after byte") == NULL)
				fail_msg("%s/%zu: \"%s\"", c->name, n, err);
			free(cut);
		}

		/* one byte more is rejected too */
		buf[c->len] = 0xc0;
		assert_int_equal(proto_check(buf, c->len + 1, err, sizeof(err)),
		    -1);
		{
			char want[80];
			snprintf(want, sizeof(want),
			    "1 unexpected bytes after the message at offset "
			    "%zu",
			    c->len);
			assert_string_equal(err, want);
		}
		free(buf);
	}
}

static void
test_check_messages(void **state)
{
	char err[256];
	(void)state;

#define CHECK(lit, want)                                                    \
	do {                                                                \
		err[0] = '\0';                                              \
		assert_int_equal(                                           \
		    proto_check(lit, sizeof(lit) - 1, err, sizeof(err)), -1); \
		if (strstr(err, want) == NULL)                              \
			fail_msg("\"%s\" lacks \"%s\"", err, want);          \
	} while (0)

	CHECK("", "empty message");
	CHECK("\xc1", "invalid msgpack byte 0xc1 at offset 0");
	CHECK("\x92\x01\xc1", "invalid msgpack byte 0xc1 at offset 2");
	CHECK("\xd9", "truncated message: length at offset 0");
	CHECK("\x91\xc5\x00", "truncated message: length at offset 1");
	CHECK("\xc9\x00\x00\x00", "truncated message: length at offset 0");
	CHECK("\xd9\x05" "ab",
	    "truncated message: value at offset 0 needs 5 bytes, 2 remain");
	CHECK("\xc7\x02\x05" "a",
	    "truncated message: value at offset 0 needs 3 bytes, 2 remain");
	CHECK("\xd8\x01" "abc", "value at offset 0 needs 17 bytes, 4 remain");
	CHECK("\xcb\x00\x00", "value at offset 0 needs 8 bytes, 2 remain");
	CHECK("\x91\x91\xcf\x00", "value at offset 2 needs 8 bytes");
	CHECK("\xdc\x00", "truncated message: container length at offset 0");
	CHECK("\xdf\x00\x00\x00", "container length at offset 0");
	CHECK("\x92\x91\x01",
	    "truncated message: 1 value(s) missing after byte 3");
	CHECK("\x92\x92\x92\x01\x02",
	    "truncated message: 2 value(s) missing after byte 5");
	CHECK("\x81\x91\x01", "1 value(s) missing after byte 3");
	CHECK("\x92\x01",
	    "container at offset 0 declares 2 items but only 1 bytes "
	    "remain");
	CHECK("\x8f\x01\x02",
	    "container at offset 0 declares 30 items but only 2 bytes "
	    "remain");
	CHECK("\x91\xdc\xff\xff\x00", "container at offset 1 declares 65535");
	CHECK("\xde\x80\x00\x00\x00", "declares 65536 items");
	CHECK("\xc0\xc0", "1 unexpected bytes after the message at offset 1");
#undef CHECK

	/* nesting: 32 levels of containers pass, 33 do not */
	{
		uint8_t buf[64];
		size_t  n = 0;
		for (int i = 0; i < 32; i++)
			buf[n++] = 0x91;
		buf[n++] = 0xc0;
		assert_int_equal(proto_check(buf, n, err, sizeof(err)), 0);
		assert_int_equal(proto_check(buf, n - 1, err, sizeof(err)),
		    -1);
		assert_string_equal(err, "container at offset 31 declares 1 "
		                         "items but only 0 bytes remain");
		buf[n - 1] = 0x80; /* an empty map is a level too */
		assert_int_equal(proto_check(buf, n, err, sizeof(err)), -1);
		assert_string_equal(err, "container at offset 32 is nested "
		                         "deeper than 32 levels");
		/* a level closes when its last item is read */
		n = 0;
		for (int i = 0; i < 31; i++)
			buf[n++] = 0x92;
		buf[n++] = 0xc0;
		for (int i = 0; i < 31; i++)
			buf[n++] = 0x90;
		assert_int_equal(proto_check(buf, n, err, sizeof(err)), 0);
	}
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_hello_worker),
		T(test_hello_worker_limits),
		T(test_hello_client),
		T(test_hello_token),
		T(test_welcome),
		T(test_hello_worker_rejoin),
		T(test_hello_holding_limits),
		T(test_submit),
		T(test_submit_empty_and_many),
		T(test_tasks),
		T(test_task_extra_elements),
		T(test_task_objects),
		T(test_task_options),
		T(test_task_options_booleans),
		T(test_supervisor_messages),
		T(test_submitted),
		T(test_fetch),
		T(test_results),
		T(test_cancel_cancelled),
		T(test_status),
		T(test_work),
		T(test_error),
		T(test_type_names),
		T(test_field_order_and_unknown_fields),
		T(test_decoder_reuse),
		T(test_empty),
		T(test_truncated_submit),
		T(test_truncated_all_types),
		T(test_trailing_bytes),
		T(test_invalid_byte),
		T(test_not_a_map),
		T(test_huge_container),
		T(test_deep_nesting),
		T(test_err_buffer_sizes),
		T(test_base_messages_valid),
		T(test_field_errors),
		T(test_version_before_type),
		T(test_hello_function_names),
		T(test_check_formats),
		T(test_check_messages),
		T(test_writer_bytes),
		T(test_writer_hello_bytes),
		T(test_writer_map_sizes),
		T(test_writer_nested),
		T(test_writer_lists),
		T(test_writer_every_type),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
