/*
 * test_objref.c - object references: the payload format, locality keys,
 * and finding references inside task arguments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "objref.h"

static void
test_round_trip(void **state)
{
	uint8_t        buf[512], sha[32];
	size_t         n;
	struct obj_ref r;
	char           err[256], key[256];
	(void)state;

	memset(sha, 0x5a, sizeof(sha));
	assert_int_equal(objref_encode(buf, sizeof(buf), &n, "/data/x.bin",
	                     "read", 4096, sha),
	    0);
	assert_int_equal(objref_decode((char *)buf, n, &r, err, sizeof(err)), 0);
	assert_int_equal(r.path_len, 11);
	assert_memory_equal(r.path, "/data/x.bin", 11);
	assert_int_equal(r.loader_len, 4);
	assert_memory_equal(r.loader, "read", 4);
	assert_int_equal(r.size, 4096);
	assert_memory_equal(r.sha256, sha, 32);
	assert_int_equal(objref_key(&r, key, sizeof(key)), 16);
	assert_string_equal(key, "read:/data/x.bin");

	/* defaults: no loader means mmap */
	assert_int_equal(objref_encode(buf, sizeof(buf), &n, "/y", NULL, 0,
	                     NULL),
	    0);
	assert_int_equal(objref_decode((char *)buf, n, &r, err, sizeof(err)), 0);
	assert_null(r.sha256);
	assert_int_equal(r.size, 0);
	assert_int_equal(objref_key(&r, key, sizeof(key)), 7);
	assert_string_equal(key, "mmap:/y");
	assert_int_equal(objref_key(&r, key, 7), 0); /* does not fit */
}

static void
test_encode_refuses(void **state)
{
	uint8_t buf[64];
	size_t  n;
	char    longpath[5000];
	(void)state;
	assert_int_equal(objref_encode(buf, sizeof(buf), &n, "", NULL, 0,
	                     NULL),
	    -1);
	assert_int_equal(objref_encode(buf, sizeof(buf), &n, NULL, NULL, 0,
	                     NULL),
	    -1);
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(objref_encode(buf, sizeof(buf), &n, longpath, NULL,
	                     0, NULL),
	    -1);
	/* too small a buffer */
	assert_int_equal(objref_encode(buf, 8, &n, "/data/x.bin", NULL, 0,
	                     NULL),
	    -1);
}

/* Pack a map payload with the given key/value writer. */
static size_t
payload(uint8_t *out, void (*fill)(msgpack_packer *))
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	size_t          n;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	fill(&pk);
	memcpy(out, sb.data, sb.size);
	n = sb.size;
	msgpack_sbuffer_destroy(&sb);
	return n;
}

static void
no_path(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 1);
	msgpack_pack_str_with_body(pk, "size", 4);
	msgpack_pack_uint64(pk, 1);
}

static void
path_int(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 1);
	msgpack_pack_str_with_body(pk, "path", 4);
	msgpack_pack_int(pk, 7);
}

static void
short_hash(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 2);
	msgpack_pack_str_with_body(pk, "path", 4);
	msgpack_pack_str_with_body(pk, "/x", 2);
	msgpack_pack_str_with_body(pk, "sha256", 6);
	msgpack_pack_bin_with_body(pk, "abc", 3);
}

static void
not_a_map(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 0);
}

static void
test_decode_errors(void **state)
{
	uint8_t        buf[128];
	size_t         n;
	struct obj_ref r;
	char           err[256];
	(void)state;

	n = payload(buf, no_path);
	assert_int_equal(objref_decode((char *)buf, n, &r, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "missing 'path'"));
	n = payload(buf, path_int);
	assert_int_equal(objref_decode((char *)buf, n, &r, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "'path' must be"));
	n = payload(buf, short_hash);
	assert_int_equal(objref_decode((char *)buf, n, &r, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "'sha256' must be 32 bytes"));
	n = payload(buf, not_a_map);
	assert_int_equal(objref_decode((char *)buf, n, &r, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "expected a map"));
	/* truncated */
	n = payload(buf, short_hash);
	assert_int_equal(objref_decode((char *)buf, n - 1, &r, err,
	                     sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "truncated"));
}

static int found;
static char found_keys[4][128];

static void
on_ref(void *arg, const struct obj_ref *r)
{
	(void)arg;
	if (found < 4)
		objref_key(r, found_keys[found], sizeof(found_keys[0]));
	found++;
}

static void
test_scan(void **state)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	uint8_t         ref[256];
	size_t          n;
	char            err[256];
	(void)state;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	/* [ref(/a), {"k": [1, ref(read:/b)]}, ext of another type] */
	msgpack_pack_array(&pk, 3);
	objref_encode(ref, sizeof(ref), &n, "/a", NULL, 0, NULL);
	msgpack_pack_ext(&pk, n, OBJREF_EXT_TYPE);
	msgpack_pack_ext_body(&pk, ref, n);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "k", 1);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_int(&pk, 1);
	objref_encode(ref, sizeof(ref), &n, "/b", "read", 0, NULL);
	msgpack_pack_ext(&pk, n, OBJREF_EXT_TYPE);
	msgpack_pack_ext_body(&pk, ref, n);
	msgpack_pack_ext(&pk, 2, 5);
	msgpack_pack_ext_body(&pk, "zz", 2);

	found = 0;
	assert_int_equal(objref_scan(sb.data, sb.size, 16, on_ref, NULL, err,
	                     sizeof(err)),
	    2);
	assert_int_equal(found, 2);
	assert_string_equal(found_keys[0], "mmap:/a");
	assert_string_equal(found_keys[1], "read:/b");
	/* a limit stops the walk */
	found = 0;
	assert_int_equal(objref_scan(sb.data, sb.size, 1, on_ref, NULL, err,
	                     sizeof(err)),
	    1);
	/* no references, and empty arguments */
	assert_int_equal(objref_scan("\x93\x01\x02\x03", 4, 16, on_ref, NULL,
	                     err, sizeof(err)),
	    0);
	assert_int_equal(objref_scan(NULL, 0, 16, on_ref, NULL, err,
	                     sizeof(err)),
	    0);
	/* a malformed reference is an error */
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_ext(&pk, 1, OBJREF_EXT_TYPE);
	msgpack_pack_ext_body(&pk, "\x90", 1);
	assert_int_equal(objref_scan(sb.data, sb.size, 16, on_ref, NULL, err,
	                     sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "expected a map"));
	msgpack_sbuffer_destroy(&sb);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_encode_refuses),
		cmocka_unit_test(test_decode_errors),
		cmocka_unit_test(test_scan),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
