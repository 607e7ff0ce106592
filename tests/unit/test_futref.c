/*
 * test_futref.c - future references: the encoding, finding them inside
 * task arguments, and splicing results in their place.
 */
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

/* ---------------------------------------------------------- helpers */

/* Arguments being built. */
struct args {
	msgpack_sbuffer sb;
	msgpack_packer  pk;
};

static void
args_init(struct args *a)
{
	msgpack_sbuffer_init(&a->sb);
	msgpack_packer_init(&a->pk, &a->sb, msgpack_sbuffer_write);
}

static void
args_fini(struct args *a)
{
	msgpack_sbuffer_destroy(&a->sb);
}

/* Append a reference to tag (code < 0: a failed input). */
static void
put_ref(struct args *a, uint64_t tag, int32_t code, const char *msg)
{
	uint8_t buf[256];
	size_t  n;

	assert_int_equal(futref_encode(buf, sizeof(buf), &n, tag, code, msg,
	                     msg != NULL ? strlen(msg) : 0),
	    0);
	/* the packer writes straight through: whole values may go in */
	msgpack_sbuffer_write(&a->sb, (const char *)buf, n);
}

static void
put_str(struct args *a, const char *s)
{
	msgpack_pack_str_with_body(&a->pk, s, strlen(s));
}

/* A reference whose payload is the map fill packs: ext 71 around it. */
static void
put_raw_ref(struct args *a, void (*fill)(msgpack_packer *))
{
	msgpack_sbuffer body;
	msgpack_packer  pk;

	msgpack_sbuffer_init(&body);
	msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
	fill(&pk);
	msgpack_pack_ext_with_body(&a->pk, body.data, body.size,
	    FUTREF_EXT_TYPE);
	msgpack_sbuffer_destroy(&body);
}

/* Unpack exactly one value of data into o (zone: the caller's). */
static void
unpack_one(const void *data, size_t len, msgpack_zone *z, msgpack_object *o)
{
	size_t off = 0;
	assert_int_equal(msgpack_unpack(data, len, &off, z, o),
	    MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, len);
}

/* Decode a whole reference (ext header and payload). */
static void
decode_whole(const void *data, size_t len, struct fut_ref *r)
{
	msgpack_zone   z;
	msgpack_object o;
	char           err[256];

	msgpack_zone_init(&z, 256);
	unpack_one(data, len, &z, &o);
	assert_int_equal(o.type, MSGPACK_OBJECT_EXT);
	assert_int_equal(o.via.ext.type, FUTREF_EXT_TYPE);
	assert_int_equal(futref_decode(o.via.ext.ptr, o.via.ext.size, r, err,
	                     sizeof(err)),
	    0);
	/* r->msg points into data, which outlives the zone */
	msgpack_zone_destroy(&z);
}

/* The tags futref_scan reports, in order. */
struct seen {
	uint64_t tags[8];
	int32_t  codes[8];
	int      n;
};

static void
collect(void *arg, const struct fut_ref *r)
{
	struct seen *s = arg;
	if (s->n < 8) {
		s->tags[s->n]  = r->tag;
		s->codes[s->n] = r->code;
	}
	s->n++;
}

/* ----------------------------------------------------------- encoding */

static void
test_round_trip(void **state)
{
	uint8_t        buf[FERRY_FUTURE_REF_MAX];
	size_t         n;
	struct fut_ref r;
	(void)state;

	assert_int_equal(futref_encode(buf, sizeof(buf), &n, 7, 0, NULL, 0),
	    0);
	decode_whole(buf, n, &r);
	assert_true(r.tag == 7);
	assert_int_equal(r.code, 0);
	assert_null(r.msg);
	assert_int_equal(r.msg_len, 0);

	/* the largest tag still fits in what the public header promises */
	assert_int_equal(futref_encode(buf, sizeof(buf), &n, UINT64_MAX, 0,
	                     NULL, 0),
	    0);
	assert_true(n <= FERRY_FUTURE_REF_MAX);
	decode_whole(buf, n, &r);
	assert_true(r.tag == UINT64_MAX);
}

static void
test_failed_input(void **state)
{
	uint8_t        buf[256];
	size_t         n;
	struct fut_ref r;
	(void)state;

	assert_int_equal(futref_encode(buf, sizeof(buf), &n, 12,
	                     FERRY_ETASK, "ValueError: boom", 16),
	    0);
	decode_whole(buf, n, &r);
	assert_true(r.tag == 12);
	assert_int_equal(r.code, FERRY_ETASK);
	assert_int_equal(r.msg_len, 16);
	assert_memory_equal(r.msg, "ValueError: boom", 16);

	/* no message: an empty one */
	assert_int_equal(futref_encode(buf, sizeof(buf), &n, 3,
	                     FERRY_ECANCELED, NULL, 0),
	    0);
	decode_whole(buf, n, &r);
	assert_int_equal(r.code, FERRY_ECANCELED);
	assert_int_equal(r.msg_len, 0);
}

static void
test_encode_small_buffer(void **state)
{
	uint8_t     buf[64];
	size_t      n, need;
	const char *msg = "a message far too long for sixty-four bytes of "
	                  "buffer, with its keys";
	(void)state;

	assert_int_equal(futref_encode(buf, sizeof(buf), &need, 1000, 0, NULL,
	                     0),
	    0);
	assert_int_equal(futref_encode(buf, need - 1, &n, 1000, 0, NULL, 0),
	    -1);
	assert_int_equal(futref_encode(buf, need, &n, 1000, 0, NULL, 0), 0);
	assert_int_equal(n, need);
	/* a failed input's message counts */
	assert_int_equal(futref_encode(buf, sizeof(buf), &n, 1,
	                     FERRY_ETASK, msg, strlen(msg)),
	    -1);
}

/* ------------------------------------------------------------ finding */

static void
test_scan_nested(void **state)
{
	struct args a;
	struct seen s = { .n = 0 };
	char        err[256];
	(void)state;

	/* [1, ref 3, {"a": ref 5, "b": [ref 3, "x"]}, failed 9] */
	args_init(&a);
	msgpack_pack_array(&a.pk, 4);
	msgpack_pack_int(&a.pk, 1);
	put_ref(&a, 3, 0, NULL);
	msgpack_pack_map(&a.pk, 2);
	put_str(&a, "a");
	put_ref(&a, 5, 0, NULL);
	put_str(&a, "b");
	msgpack_pack_array(&a.pk, 2);
	put_ref(&a, 3, 0, NULL); /* the same one again: reported again */
	put_str(&a, "x");
	put_ref(&a, 9, FERRY_EDEPENDENCY, "task 2 failed");
	assert_int_equal(futref_scan(a.sb.data, a.sb.size, collect, &s, err,
	                     sizeof(err)),
	    4);
	assert_int_equal(s.n, 4);
	assert_true(s.tags[0] == 3 && s.codes[0] == 0);
	assert_true(s.tags[1] == 5);
	assert_true(s.tags[2] == 3);
	assert_true(s.tags[3] == 9);
	assert_int_equal(s.codes[3], FERRY_EDEPENDENCY);

	/* counting only */
	assert_int_equal(futref_scan(a.sb.data, a.sb.size, NULL, NULL, err,
	                     sizeof(err)),
	    4);
	args_fini(&a);
}

static void
test_scan_none(void **state)
{
	struct args a;
	struct seen s = { .n = 0 };
	char        err[256];
	(void)state;

	/* no type byte: not parsed at all, not even checked */
	assert_int_equal(futref_scan("\xc1\xc1", 2, collect, &s, err,
	                     sizeof(err)),
	    0);
	assert_int_equal(futref_scan(NULL, 0, collect, &s, err, sizeof(err)),
	    0);
	assert_int_equal(s.n, 0);

	/* the type byte as plain data ("G", the integer 71, another ext
	 * type) is no reference */
	args_init(&a);
	msgpack_pack_array(&a.pk, 3);
	put_str(&a, "Go");
	msgpack_pack_int(&a.pk, 71);
	msgpack_pack_ext_with_body(&a.pk, "G", 1, 70);
	assert_int_equal(futref_scan(a.sb.data, a.sb.size, collect, &s, err,
	                     sizeof(err)),
	    0);
	assert_int_equal(s.n, 0);
	args_fini(&a);
}

static void
fill_array(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 1);
	msgpack_pack_int(pk, 1);
}

static void
fill_no_task(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 1);
	msgpack_pack_str_with_body(pk, "tusk", 4);
	msgpack_pack_int(pk, 1);
}

static void
fill_task_zero(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 1);
	msgpack_pack_str_with_body(pk, "task", 4);
	msgpack_pack_int(pk, 0);
}

static void
fill_task_str(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 1);
	msgpack_pack_str_with_body(pk, "task", 4);
	msgpack_pack_str_with_body(pk, "7", 1);
}

static void
fill_task_negative(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 1);
	msgpack_pack_str_with_body(pk, "task", 4);
	msgpack_pack_int(pk, -7);
}

static void
fill_error_positive(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 2);
	msgpack_pack_str_with_body(pk, "task", 4);
	msgpack_pack_int(pk, 7);
	msgpack_pack_str_with_body(pk, "error", 5);
	msgpack_pack_int(pk, 3);
}

static void
fill_message_int(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 3);
	msgpack_pack_str_with_body(pk, "task", 4);
	msgpack_pack_int(pk, 7);
	msgpack_pack_str_with_body(pk, "error", 5);
	msgpack_pack_int(pk, -1);
	msgpack_pack_str_with_body(pk, "message", 7);
	msgpack_pack_int(pk, 3);
}

static void
fill_not_msgpack(msgpack_packer *pk)
{
	/* a map that promises two entries and has none */
	msgpack_pack_map(pk, 2);
}

static void
fill_unknown_keys(msgpack_packer *pk)
{
	/* unknown keys (and non-string ones) are ignored */
	msgpack_pack_map(pk, 3);
	msgpack_pack_int(pk, 1);
	msgpack_pack_int(pk, 2);
	msgpack_pack_str_with_body(pk, "later", 5);
	msgpack_pack_true(pk);
	msgpack_pack_str_with_body(pk, "task", 4);
	msgpack_pack_int(pk, 4);
}

/* One reference with the payload fill makes, inside an array: scan
 * says -1 and err holds want. */
static void
scan_bad(void (*fill)(msgpack_packer *), const char *want)
{
	struct args a;
	char        err[256] = "";

	args_init(&a);
	msgpack_pack_array(&a.pk, 2);
	msgpack_pack_int(&a.pk, 1);
	put_raw_ref(&a, fill);
	assert_int_equal(futref_scan(a.sb.data, a.sb.size, NULL, NULL, err,
	                     sizeof(err)),
	    -1);
	if (strstr(err, want) == NULL)
		fail_msg("error '%s' does not say '%s'", err, want);
	args_fini(&a);
}

static void
test_scan_malformed(void **state)
{
	struct args a;
	struct seen s = { .n = 0 };
	char        err[256];
	(void)state;

	scan_bad(fill_array, "not a msgpack map");
	scan_bad(fill_not_msgpack, "not a msgpack map");
	scan_bad(fill_no_task, "no 'task'");
	scan_bad(fill_task_zero, "'task' must be a task id");
	scan_bad(fill_task_str, "'task' must be a task id");
	scan_bad(fill_task_negative, "'task' must be a task id");
	scan_bad(fill_error_positive, "'error' must be a negative error code");
	scan_bad(fill_message_int, "'message' must be a string");

	args_init(&a);
	put_raw_ref(&a, fill_unknown_keys);
	assert_int_equal(futref_scan(a.sb.data, a.sb.size, collect, &s, err,
	                     sizeof(err)),
	    1);
	assert_true(s.tags[0] == 4);
	args_fini(&a);
}

static void
test_scan_max(void **state)
{
	struct args a;
	char        err[256] = "";
	(void)state;

	args_init(&a);
	msgpack_pack_array(&a.pk, FUTREF_MAX);
	for (int i = 0; i < FUTREF_MAX; i++)
		put_ref(&a, (uint64_t)i + 1, 0, NULL);
	assert_int_equal(futref_scan(a.sb.data, a.sb.size, NULL, NULL, err,
	                     sizeof(err)),
	    FUTREF_MAX);
	args_fini(&a);

	args_init(&a);
	msgpack_pack_array(&a.pk, FUTREF_MAX + 1);
	for (int i = 0; i <= FUTREF_MAX; i++)
		put_ref(&a, 1, 0, NULL);
	assert_int_equal(futref_scan(a.sb.data, a.sb.size, NULL, NULL, err,
	                     sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "more than 65536 future references"));
	args_fini(&a);
}

static void
test_invalid_msgpack(void **state)
{
	char   err[256] = "";
	void  *out      = (void *)1;
	size_t out_len  = 1;
	(void)state;

	/* the type byte is there (the integer 71), so it is parsed: an
	 * array of three with two elements */
	assert_int_equal(futref_scan("\x93\x47\x01", 3, NULL, NULL, err,
	                     sizeof(err)),
	    -1);
	assert_true(err[0] != '\0');
	err[0] = '\0';
	assert_int_equal(futref_splice("\x93\x47\x01", 3, NULL, NULL, &out,
	                     &out_len, err, sizeof(err)),
	    -1);
	assert_null(out);
	assert_int_equal(out_len, 0);
	assert_true(err[0] != '\0');

	/* two values where there must be one */
	assert_int_equal(futref_scan("\x47\x47", 2, NULL, NULL, err,
	                     sizeof(err)),
	    -1);
}

/* ----------------------------------------------------------- splicing */

/* subst for the splice tests: tag 1 -> 42, tag 2 -> "two", tag 3 is
 * kept, tag 4 stops the splice. */
static int
values(void *arg, const struct fut_ref *r, const void **val, size_t *vlen,
    char *err, size_t errlen)
{
	int *calls = arg;

	(*calls)++;
	switch (r->tag) {
	case 1:
		*val  = "\x2a";
		*vlen = 1;
		return 0;
	case 2:
		*val  = "\xa3two";
		*vlen = 4;
		return 0;
	case 3:
		return 1;
	default:
		snprintf(err, errlen, "task %llu: stop here",
		    (unsigned long long)r->tag);
		return -1;
	}
}

static void
assert_str_obj(const msgpack_object *o, const char *s)
{
	assert_int_equal(o->type, MSGPACK_OBJECT_STR);
	assert_int_equal(o->via.str.size, strlen(s));
	assert_memory_equal(o->via.str.ptr, s, strlen(s));
}

static void
test_splice_values(void **state)
{
	struct args    a;
	char           err[256];
	void          *out;
	size_t         out_len;
	int            calls = 0;
	msgpack_zone   z;
	msgpack_object o;
	(void)state;

	/* [ref 1, {"k": ref 2, "n": [ref 1, nil]}, "tail"] */
	args_init(&a);
	msgpack_pack_array(&a.pk, 3);
	put_ref(&a, 1, 0, NULL);
	msgpack_pack_map(&a.pk, 2);
	put_str(&a, "k");
	put_ref(&a, 2, 0, NULL);
	put_str(&a, "n");
	msgpack_pack_array(&a.pk, 2);
	put_ref(&a, 1, 0, NULL);
	msgpack_pack_nil(&a.pk);
	put_str(&a, "tail");
	assert_int_equal(futref_splice(a.sb.data, a.sb.size, values, &calls,
	                     &out, &out_len, err, sizeof(err)),
	    0);
	assert_int_equal(calls, 3);
	args_fini(&a);

	/* [42, {"k": "two", "n": [42, nil]}, "tail"] */
	msgpack_zone_init(&z, 1024);
	unpack_one(out, out_len, &z, &o);
	assert_int_equal(o.type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(o.via.array.size, 3);
	assert_int_equal(o.via.array.ptr[0].type,
	    MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_true(o.via.array.ptr[0].via.u64 == 42);
	{
		const msgpack_object *m = &o.via.array.ptr[1];
		const msgpack_object *n;
		assert_int_equal(m->type, MSGPACK_OBJECT_MAP);
		assert_int_equal(m->via.map.size, 2);
		assert_str_obj(&m->via.map.ptr[0].key, "k");
		assert_str_obj(&m->via.map.ptr[0].val, "two");
		assert_str_obj(&m->via.map.ptr[1].key, "n");
		n = &m->via.map.ptr[1].val;
		assert_int_equal(n->type, MSGPACK_OBJECT_ARRAY);
		assert_int_equal(n->via.array.size, 2);
		assert_true(n->via.array.ptr[0].via.u64 == 42);
		assert_int_equal(n->via.array.ptr[1].type, MSGPACK_OBJECT_NIL);
	}
	assert_str_obj(&o.via.array.ptr[2], "tail");
	msgpack_zone_destroy(&z);
	free(out);

	/* a bare reference as the whole arguments */
	args_init(&a);
	put_ref(&a, 2, 0, NULL);
	assert_int_equal(futref_splice(a.sb.data, a.sb.size, values, &calls,
	                     &out, &out_len, err, sizeof(err)),
	    0);
	assert_int_equal(out_len, 4);
	assert_memory_equal(out, "\xa3two", 4);
	free(out);
	args_fini(&a);
}

static void
test_splice_keep_and_stop(void **state)
{
	struct args    a;
	char           err[256] = "";
	void          *out;
	size_t         out_len;
	int            calls = 0;
	msgpack_zone   z;
	msgpack_object o;
	struct fut_ref r;
	(void)state;

	/* [ref 1, ref 3]: 3 is kept as it was */
	args_init(&a);
	msgpack_pack_array(&a.pk, 2);
	put_ref(&a, 1, 0, NULL);
	put_ref(&a, 3, 0, NULL);
	assert_int_equal(futref_splice(a.sb.data, a.sb.size, values, &calls,
	                     &out, &out_len, err, sizeof(err)),
	    0);
	args_fini(&a);
	msgpack_zone_init(&z, 256);
	unpack_one(out, out_len, &z, &o);
	assert_int_equal(o.via.array.size, 2);
	assert_true(o.via.array.ptr[0].via.u64 == 42);
	assert_int_equal(o.via.array.ptr[1].type, MSGPACK_OBJECT_EXT);
	assert_int_equal(o.via.array.ptr[1].via.ext.type, FUTREF_EXT_TYPE);
	assert_int_equal(futref_decode(o.via.array.ptr[1].via.ext.ptr,
	                     o.via.array.ptr[1].via.ext.size, &r, err,
	                     sizeof(err)),
	    0);
	assert_true(r.tag == 3);
	msgpack_zone_destroy(&z);
	free(out);

	/* [ref 1, ref 4]: subst stops, with its reason */
	args_init(&a);
	msgpack_pack_array(&a.pk, 2);
	put_ref(&a, 1, 0, NULL);
	put_ref(&a, 4, 0, NULL);
	assert_int_equal(futref_splice(a.sb.data, a.sb.size, values, &calls,
	                     &out, &out_len, err, sizeof(err)),
	    -1);
	assert_null(out);
	assert_string_equal(err, "task 4: stop here");
	args_fini(&a);
}

static void
test_splice_no_refs(void **state)
{
	struct args a;
	char        err[256];
	void       *out;
	size_t      out_len;
	int         calls = 0;
	(void)state;

	/* no type byte: an identical copy, not parsed */
	args_init(&a);
	msgpack_pack_array(&a.pk, 2);
	put_str(&a, "plain");
	msgpack_pack_double(&a.pk, 1.5);
	assert_int_equal(futref_splice(a.sb.data, a.sb.size, values, &calls,
	                     &out, &out_len, err, sizeof(err)),
	    0);
	assert_int_equal(out_len, a.sb.size);
	assert_memory_equal(out, a.sb.data, out_len);
	assert_int_equal(calls, 0);
	free(out);
	args_fini(&a);

	/* the type byte, but no reference: the same bytes */
	args_init(&a);
	msgpack_pack_array(&a.pk, 2);
	put_str(&a, "Go");
	msgpack_pack_int(&a.pk, 71);
	assert_int_equal(futref_splice(a.sb.data, a.sb.size, values, &calls,
	                     &out, &out_len, err, sizeof(err)),
	    0);
	assert_int_equal(out_len, a.sb.size);
	assert_memory_equal(out, a.sb.data, out_len);
	assert_int_equal(calls, 0);
	free(out);
	args_fini(&a);

	/* no arguments at all: an empty copy the caller can still free */
	assert_int_equal(futref_splice(NULL, 0, values, &calls, &out,
	                     &out_len, err, sizeof(err)),
	    0);
	assert_non_null(out);
	assert_int_equal(out_len, 0);
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_failed_input),
		cmocka_unit_test(test_encode_small_buffer),
		cmocka_unit_test(test_scan_nested),
		cmocka_unit_test(test_scan_none),
		cmocka_unit_test(test_scan_malformed),
		cmocka_unit_test(test_scan_max),
		cmocka_unit_test(test_invalid_msgpack),
		cmocka_unit_test(test_splice_values),
		cmocka_unit_test(test_splice_keep_and_stop),
		cmocka_unit_test(test_splice_no_refs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
