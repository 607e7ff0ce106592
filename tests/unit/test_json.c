/*
 * test_json.c - the JSON <-> msgpack converter behind `ferry submit` and
 * the JSON that `ferry` prints: exact msgpack bytes for what users type,
 * exact JSON text for what they read, and an error naming the right byte
 * offset for every kind of malformed argument.
 */
#include <locale.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"

/* ------------------------------------------------------------ helpers */

/* Parse len bytes of JSON into a fresh *sb; returns json_to_msgpack's
 * result. */
static int
parse(const char *json, size_t len, msgpack_sbuffer *sb, char *err,
    size_t errlen)
{
	msgpack_packer pk;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	return json_to_msgpack(json, len, &pk, err, errlen);
}

/* Parse json (must succeed) and print it back compactly; caller frees. */
static char *
round_trip(const char *json, size_t len, msgpack_sbuffer *sb)
{
	char  err[256];
	char *out;

	if (parse(json, len, sb, err, sizeof(err)) != 0)
		fail_msg("parsing %s failed: %s", json, err);
	out = json_from_msgpack_bytes(sb->data, sb->size, err, sizeof(err));
	if (out == NULL)
		fail_msg("printing %s failed: %s", json, err);
	return out;
}

/* in -> msgpack -> JSON must give want, and want must parse back to the
 * same msgpack bytes. */
static void
check_rt_len(const char *in, size_t len, const char *want)
{
	msgpack_sbuffer a, b;
	char           *out = round_trip(in, len, &a);
	char           *again;

	assert_string_equal(out, want);
	again = round_trip(out, strlen(out), &b);
	assert_string_equal(again, want);
	assert_int_equal(a.size, b.size);
	assert_memory_equal(a.data, b.data, a.size);
	free(again);
	free(out);
	msgpack_sbuffer_destroy(&a);
	msgpack_sbuffer_destroy(&b);
}

#define check_rt(in, want) check_rt_len(in, strlen(in), want)
/* A JSON text that prints back exactly as it was written. */
#define check_same(in) check_rt(in, in)

/* in must pack to exactly the bytes want (wantlen). */
static void
check_pack(const char *in, const char *want, size_t wantlen)
{
	msgpack_sbuffer sb;
	char            err[256];

	if (parse(in, strlen(in), &sb, err, sizeof(err)) != 0)
		fail_msg("parsing %s failed: %s", in, err);
	if (sb.size != wantlen || memcmp(sb.data, want, wantlen) != 0) {
		print_error("%s packed to", in);
		for (size_t i = 0; i < sb.size; i++)
			print_error(" %02x", (unsigned char) sb.data[i]);
		print_error("\n");
		fail();
	}
	msgpack_sbuffer_destroy(&sb);
}

#define PACKS(in, bytes) check_pack(in, bytes, sizeof(bytes) - 1)

/* in (len bytes) must be rejected with exactly the message want, and
 * nothing may have been packed. */
static void
check_bad_len(const char *in, size_t len, const char *want)
{
	msgpack_sbuffer sb;
	char            err[256];

	memset(err, 'x', sizeof(err));
	assert_int_equal(parse(in, len, &sb, err, sizeof(err)), -1);
	assert_string_equal(err, want);
	assert_int_equal(sb.size, 0);
	msgpack_sbuffer_destroy(&sb);
}

#define BAD(in, want) check_bad_len(in, strlen(in), want)

/* Print the msgpack bytes (len) compactly, or with indent if > 0. */
static char *
print_bytes(const void *data, size_t len, int indent)
{
	msgpack_zone    z;
	msgpack_object  o;
	msgpack_sbuffer sb;
	size_t          off = 0;
	char           *s;

	msgpack_zone_init(&z, 1024);
	assert_int_equal(msgpack_unpack(data, len, &off, &z, &o),
	    MSGPACK_UNPACK_SUCCESS);
	msgpack_sbuffer_init(&sb);
	if (indent > 0)
		assert_int_equal(msgpack_to_json_pretty(&o, &sb, indent), 0);
	else
		assert_int_equal(msgpack_to_json(&o, &sb), 0);
	msgpack_sbuffer_write(&sb, "", 1);
	s = msgpack_sbuffer_release(&sb);
	msgpack_zone_destroy(&z);
	return s;
}

/* What the packer built in sb must print as want. */
static void
check_print(msgpack_sbuffer *sb, const char *want)
{
	char *s = print_bytes(sb->data, sb->size, 0);

	assert_string_equal(s, want);
	free(s);
	msgpack_sbuffer_clear(sb);
}

/* ------------------------------------------------------- round trips */

static void
test_scalars(void **state)
{
	(void) state;
	check_same("null");
	check_same("true");
	check_same("false");
	check_same("0");
	check_rt("-0", "0");
	check_same("1");
	check_same("-1");
	check_same("127");
	check_same("128");
	check_same("-32");
	check_same("-33");
	check_same("65536");
	check_same("4294967296");
	check_same("-2147483649");
	check_same("\"\"");
	check_same("\"hello\"");
	check_same("[]");
	check_same("{}");
}

static void
test_integers(void **state)
{
	(void) state;
	PACKS("0", "\x00");
	PACKS("127", "\x7f");
	PACKS("128", "\xcc\x80");
	PACKS("-1", "\xff");
	PACKS("-32", "\xe0");
	PACKS("-33", "\xd0\xdf");
	PACKS("-0", "\x00");
	/* int64 max, int64 min, uint64 max */
	PACKS("9223372036854775807", "\xcf\x7f\xff\xff\xff\xff\xff\xff\xff");
	PACKS("-9223372036854775808", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00");
	PACKS("18446744073709551615", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff");
	check_same("9223372036854775807");
	check_same("-9223372036854775808");
	check_same("18446744073709551615");
	check_same("9223372036854775808");
	/* one past uint64 max / int64 min: floats */
	PACKS("18446744073709551616", "\xcb\x43\xf0\x00\x00\x00\x00\x00\x00");
	PACKS("-9223372036854775809", "\xcb\xc3\xe0\x00\x00\x00\x00\x00\x00");
	check_rt("18446744073709551616", "1.8446744073709552e+19");
	check_rt("-9223372036854775809", "-9.223372036854776e+18");
	check_rt("100000000000000000000000000000", "1e+29");
}

static void
test_floats(void **state)
{
	(void) state;
	PACKS("1.5", "\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00");
	PACKS("1.0", "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00");
	PACKS("1e0", "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00");
	PACKS("-0.0", "\xcb\x80\x00\x00\x00\x00\x00\x00\x00");
	check_same("1.5");
	check_same("-1.5");
	check_same("1.0");
	check_same("-0.0");
	check_same("0.0");
	check_same("0.1");
	check_same("3.141592653589793");
	check_same("0.30000000000000004");
	check_same("1e+21");
	check_same("1.7976931348623157e+308");
	check_same("2.2250738585072014e-308");
	/* subnormals print exactly, if not in the fewest digits */
	check_rt("5e-324", "4.94065645841247e-324");
	check_rt("1E2", "100.0");
	check_rt("1e+2", "100.0");
	check_rt("1e-2", "0.01");
	check_rt("2.50", "2.5");
	check_rt("12345678901234567890.0", "1.2345678901234567e+19");
	check_rt("1e-400", "0.0"); /* underflow rounds to zero */
	check_rt("-1e-400", "-0.0");
	check_rt("[0.5,-2e-3]", "[0.5,-0.002]");
}

static void
test_containers(void **state)
{
	(void) state;
	PACKS("[]", "\x90");
	PACKS("{}", "\x80");
	PACKS("[1,[2]]", "\x92\x01\x91\x02");
	PACKS("{\"a\":1}", "\x81\xa1\x61\x01");
	PACKS("[true,false,null]", "\x93\xc3\xc2\xc0");
	check_same("[1,2,3]");
	check_same("[[],{},[[]],{\"\":{}}]");
	check_same("{\"a\":[1,2,{\"b\":null}],\"c\":\"x\"}");
	check_same("{\"b\":1,\"a\":2}"); /* input order kept */
	check_same("{\"a\":1,\"a\":2}"); /* duplicates kept */
	check_same("[\"mixed\",1,-2,3.5,true,null,{\"k\":[false]}]");
}

static void
test_large(void **state)
{
	size_t n = 100000, len = 0;
	char  *in = malloc(n * 8 + 2);
	char  *big;

	(void) state;
	in[len++] = '[';
	for (size_t i = 0; i < n; i++)
		len += (size_t) sprintf(in + len, "%s%zu", i ? "," : "", i);
	in[len++] = ']';
	in[len]   = '\0';
	check_same(in);
	free(in);

	/* 1 MB string full of escapes: the scratch buffer and str32 */
	n   = 1 << 20;
	big = malloc(n + 3);
	big[0] = '"';
	for (size_t i = 1; i <= n; i++) /* n % 4 == 0: ends with \n */
		big[i] = "ab\\n"[(i - 1) % 4];
	big[n + 1] = '"';
	big[n + 2] = '\0';
	check_same(big);
	free(big);
}

/* ------------------------------------------------------------ strings */

static void
test_escapes(void **state)
{
	(void) state;
	PACKS("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
	    "\xa8\x22\x5c\x2f\x08\x0c\x0a\x0d\x09");
	check_rt("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
	    "\"\\\"\\\\/\\b\\f\\n\\r\\t\"");
	PACKS("\"\\u0000\"", "\xa1\x00");
	check_same("\"\\u0000\"");
	check_same("\"a\\u0001b\\u001fc\"");
	check_rt("\"\\u001F\"", "\"\\u001f\"");
	PACKS("\"\\u0041\"", "\xa1\x41");
	check_rt("\"\\u0041\\u0062\"", "\"Ab\"");
	PACKS("\"\\u00e9\"", "\xa2\xc3\xa9");
	PACKS("\"\\u00E9\"", "\xa2\xc3\xa9");
	PACKS("\"\\u07ff\"", "\xa2\xdf\xbf");
	PACKS("\"\\u0800\"", "\xa3\xe0\xa0\x80");
	PACKS("\"\\u20ac\"", "\xa3\xe2\x82\xac");
	PACKS("\"\\uffff\"", "\xa3\xef\xbf\xbf");
	check_rt("\"\\u20AC\"", "\"\xe2\x82\xac\"");
	check_rt("\"\\u007f\"", "\"\x7f\""); /* DEL needs no escape */
	/* raw UTF-8 passes through untouched */
	check_same("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
	check_same("\"\\\\u0041\""); /* an escaped backslash, not \u */
}

static void
test_surrogates(void **state)
{
	(void) state;
	PACKS("\"\\ud83d\\ude00\"", "\xa4\xf0\x9f\x98\x80");
	PACKS("\"\\uD834\\uDD1E\"", "\xa4\xf0\x9d\x84\x9e");
	PACKS("\"\\ud800\\udc00\"", "\xa4\xf0\x90\x80\x80");
	PACKS("\"\\udbff\\udfff\"", "\xa4\xf4\x8f\xbf\xbf");
	check_rt("\"x\\ud83d\\ude00y\"", "\"x\xf0\x9f\x98\x80y\"");

	BAD("\"\\ud83d\"",
	    "offset 1: lone surrogate \\uD83D: a high surrogate must be "
	    "followed by a low one (\\uDC00-\\uDFFF)");
	BAD("\"ab\\ud83dx\"",
	    "offset 3: lone surrogate \\uD83D: a high surrogate must be "
	    "followed by a low one (\\uDC00-\\uDFFF)");
	BAD("\"\\ud83d\\u0041\"",
	    "offset 1: lone surrogate \\uD83D: a high surrogate must be "
	    "followed by a low one (\\uDC00-\\uDFFF)");
	BAD("\"\\ud83d\\ud83d\"",
	    "offset 1: lone surrogate \\uD83D: a high surrogate must be "
	    "followed by a low one (\\uDC00-\\uDFFF)");
	BAD("\"\\ud83d\\n\"",
	    "offset 1: lone surrogate \\uD83D: a high surrogate must be "
	    "followed by a low one (\\uDC00-\\uDFFF)");
	BAD("\"\\ud83d",
	    "offset 1: lone surrogate \\uD83D: a high surrogate must be "
	    "followed by a low one (\\uDC00-\\uDFFF)");
	BAD("\"\\ude00\"",
	    "offset 1: lone surrogate \\uDE00: a low surrogate must follow "
	    "a high one (\\uD800-\\uDBFF)");
	BAD("\"\\ude00\\ud83d\"",
	    "offset 1: lone surrogate \\uDE00: a low surrogate must follow "
	    "a high one (\\uD800-\\uDBFF)");
	BAD("\"\\ud83d\\ude0\"",
	    "offset 7: invalid \\u escape: expected 4 hex digits");
}

/* -------------------------------------------------------- whitespace */

static void
test_whitespace(void **state)
{
	(void) state;
	check_rt(" \t\n\r 1 \n\r\t ", "1");
	check_rt("[ 1 , 2 ]", "[1,2]");
	check_rt("{ \"a\" : 1 , \"b\" : [ ] }", "{\"a\":1,\"b\":[]}");
	check_rt("\n{\n\t\"a\":\n\t\t{ }\n}\n", "{\"a\":{}}");
	check_rt("\" a b \"", "\" a b \""); /* inside strings it is data */
	BAD("\x0c" "1", "offset 0: expected a JSON value, got byte 0x0C");
	BAD("1\x0b", "offset 1: unexpected byte 0x0B after the JSON value");
	BAD("\xc2\xa0" "1",
	    "offset 0: expected a JSON value, got byte 0xC2"); /* NBSP */
	BAD("\xef\xbb\xbf" "1",
	    "offset 0: expected a JSON value, got byte 0xEF"); /* BOM */
}

/* ----------------------------------------------------------- nesting */

/* n '[' then n ']' (caller frees). */
static char *
nested(size_t n)
{
	char *s = malloc(2 * n + 1);

	memset(s, '[', n);
	memset(s + n, ']', n);
	s[2 * n] = '\0';
	return s;
}

static void
test_nesting(void **state)
{
	char *s;

	(void) state;
	s = nested(JSON_MAX_DEPTH);
	check_same(s);
	free(s);

	s = nested(JSON_MAX_DEPTH + 1);
	BAD(s, "offset 32: nesting deeper than 32 levels of arrays and "
	       "objects");
	free(s);

	/* a million '[' is rejected at the limit, not by the stack */
	s = nested(1000000);
	BAD(s, "offset 32: nesting deeper than 32 levels of arrays and "
	       "objects");
	free(s);

	/* objects count too: 16 x {"k": [ is 32 levels */
	{
		char   in[512], want[512];
		size_t n = 0, m = 0;
		for (int i = 0; i < 16; i++) {
			n += (size_t) sprintf(in + n, "{\"k\": [");
			m += (size_t) sprintf(want + m, "{\"k\":[");
		}
		n += (size_t) sprintf(in + n, "1");
		m += (size_t) sprintf(want + m, "1");
		for (int i = 0; i < 16; i++) {
			n += (size_t) sprintf(in + n, "]}");
			m += (size_t) sprintf(want + m, "]}");
		}
		check_rt(in, want);
		/* one more level: the 33rd opening is at 16 * 7 = 112 */
		in[16 * 7] = '\0';
		strcat(in, "[1]");
		BAD(in, "offset 112: nesting deeper than 32 levels of arrays "
		        "and objects");
	}
	/* 32 levels deep after a sibling that was also deep */
	{
		char *a = nested(JSON_MAX_DEPTH);
		char *b = nested(JSON_MAX_DEPTH - 1);
		char  buf[512];
		snprintf(buf, sizeof(buf), "[%s,%s]", b, b);
		check_same(buf);
		snprintf(buf, sizeof(buf), "[1, %s]", a);
		BAD(buf, "offset 35: nesting deeper than 32 levels of arrays "
		         "and objects");
		free(a);
		free(b);
	}
	{
		char buf[256] = "";
		for (int i = 0; i < JSON_MAX_DEPTH + 1; i++)
			strcat(buf, "{\"a\":");
		strcat(buf, "1");
		BAD(buf, "offset 160: nesting deeper than 32 levels of arrays "
		         "and objects");
	}
}

/* --------------------------------------------------------- malformed */

static void
test_malformed_structure(void **state)
{
	(void) state;
	BAD("", "offset 0: expected a JSON value, got end of input");
	BAD("   ", "offset 3: expected a JSON value, got end of input");
	BAD("[", "offset 1: expected a JSON value, got end of input");
	BAD("[1,2", "offset 4: expected ',' or ']', got end of input");
	BAD("[1 2]", "offset 3: expected ',' or ']', got '2'");
	BAD("[1;2]", "offset 2: expected ',' or ']', got ';'");
	BAD("[1,]", "offset 3: expected a JSON value, got ']'");
	BAD("[,1]", "offset 1: expected a JSON value, got ','");
	BAD("[1,,2]", "offset 3: expected a JSON value, got ','");
	BAD("[1}", "offset 2: expected ',' or ']', got '}'");
	BAD("]", "offset 0: expected a JSON value, got ']'");
	BAD("{", "offset 1: expected a string key or '}', got end of input");
	BAD("{a:1}", "offset 1: expected a string key or '}', got 'a'");
	BAD("{'a':1}", "offset 1: expected a string key or '}', got '''");
	BAD("{1:1}", "offset 1: expected a string key or '}', got '1'");
	BAD("{\"a\" 1}", "offset 5: expected ':' after the key, got '1'");
	BAD("{\"a\"",
	    "offset 4: expected ':' after the key, got end of input");
	BAD("{\"a\":}", "offset 5: expected a JSON value, got '}'");
	BAD("{\"a\":1,}", "offset 7: expected a string key, got '}'");
	BAD("{\"a\":1, }", "offset 8: expected a string key, got '}'");
	BAD("{\"a\":1 \"b\":2}", "offset 7: expected ',' or '}', got '\"'");
	BAD("{\"a\":1]", "offset 6: expected ',' or '}', got ']'");
	BAD("{\"a\"=1}", "offset 4: expected ':' after the key, got '='");
	BAD("[1]]", "offset 3: unexpected ']' after the JSON value");
	BAD("1 2", "offset 2: unexpected '2' after the JSON value");
	BAD("{} {}", "offset 3: unexpected '{' after the JSON value");
	BAD("\"a\"\"b\"", "offset 3: unexpected '\"' after the JSON value");
	BAD("[1 /* c */]", "offset 3: expected ',' or ']', got '/'");
	BAD("// c\n1", "offset 0: expected a JSON value, got '/'");
	BAD("'a'", "offset 0: expected a JSON value, got '''");
	check_bad_len("[1,2]\0", 6,
	    "offset 5: unexpected byte 0x00 after the JSON value");
	check_bad_len(
	    "\0", 1, "offset 0: expected a JSON value, got byte 0x00");
}

static void
test_malformed_numbers(void **state)
{
	(void) state;
	BAD("01", "offset 1: leading zeros are not allowed in numbers");
	BAD("-01", "offset 2: leading zeros are not allowed in numbers");
	BAD("[00]", "offset 2: leading zeros are not allowed in numbers");
	BAD("-", "offset 1: expected a digit after '-', got end of input");
	BAD("-a", "offset 1: expected a digit after '-', got 'a'");
	BAD("- 1", "offset 1: expected a digit after '-', got byte 0x20");
	BAD("--1", "offset 1: expected a digit after '-', got '-'");
	BAD("+1", "offset 0: expected a JSON value, got '+'");
	BAD("1.", "offset 2: expected a digit after '.', got end of input");
	BAD("1.e5", "offset 2: expected a digit after '.', got 'e'");
	BAD(".5", "offset 0: expected a JSON value, got '.'");
	BAD("1e", "offset 2: expected a digit in the exponent, got end of "
	          "input");
	BAD("1e+", "offset 3: expected a digit in the exponent, got end of "
	           "input");
	BAD("1E-x", "offset 3: expected a digit in the exponent, got 'x'");
	BAD("1.5.2", "offset 3: unexpected '.' after the JSON value");
	BAD("[1e5x]", "offset 4: expected ',' or ']', got 'x'");
	BAD("0x10", "offset 1: unexpected 'x' after the JSON value");
	BAD("1_000", "offset 1: unexpected '_' after the JSON value");
	BAD("NaN", "offset 0: expected a JSON value, got 'N'");
	BAD("Infinity", "offset 0: expected a JSON value, got 'I'");
	BAD("-Infinity", "offset 1: expected a digit after '-', got 'I'");
	BAD("1e400", "offset 0: number out of range (larger than a 64-bit "
	             "float can hold)");
	BAD("[1, -1e999]", "offset 4: number out of range (larger than a "
	                   "64-bit float can hold)");
}

static void
test_malformed_literals(void **state)
{
	(void) state;
	BAD("tru", "offset 0: invalid literal (expected 'true')");
	BAD("trUe", "offset 0: invalid literal (expected 'true')");
	BAD("fals", "offset 0: invalid literal (expected 'false')");
	BAD("[nul]", "offset 1: invalid literal (expected 'null')");
	BAD("True", "offset 0: expected a JSON value, got 'T'");
	BAD("None", "offset 0: expected a JSON value, got 'N'");
	BAD("truex", "offset 4: unexpected 'x' after the JSON value");
	BAD("nulll", "offset 4: unexpected 'l' after the JSON value");
	BAD("[true false]", "offset 6: expected ',' or ']', got 'f'");
	BAD("undefined", "offset 0: expected a JSON value, got 'u'");
}

static void
test_malformed_strings(void **state)
{
	(void) state;
	BAD("\"abc", "offset 4: unterminated string (opened at offset 0)");
	BAD("[\"abc\\", "offset 6: unterminated string (opened at offset 1)");
	BAD("\"abc\\\"", "offset 6: unterminated string (opened at offset 0)");
	BAD("\"a\tb\"", "offset 2: control character 0x09 in string (write "
	                "it as an escape such as \\n or \\u0009)");
	BAD("\"a\nb\"", "offset 2: control character 0x0A in string (write "
	                "it as an escape such as \\n or \\u000A)");
	check_bad_len("\"a\0b\"", 5,
	    "offset 2: control character 0x00 in string (write it as an "
	    "escape such as \\n or \\u0000)");
	BAD("\"\\x41\"", "offset 1: invalid escape: '\\' followed by 'x'");
	BAD("\"\\U0041\"", "offset 1: invalid escape: '\\' followed by 'U'");
	BAD("\"\\'\"", "offset 1: invalid escape: '\\' followed by '''");
	BAD("\"ab\\ \"", "offset 3: invalid escape: '\\' followed by byte "
	                 "0x20");
	BAD("\"\\u12\"", "offset 1: invalid \\u escape: expected 4 hex "
	                 "digits");
	BAD("\"\\u12G4\"", "offset 1: invalid \\u escape: expected 4 hex "
	                   "digits");
	BAD("\"\\u", "offset 1: invalid \\u escape: expected 4 hex digits");
	BAD("\"\\u-123\"", "offset 1: invalid \\u escape: expected 4 hex "
	                   "digits");
	/* invalid UTF-8 inside strings */
	BAD("\"\xff\"", "offset 1: invalid UTF-8 byte 0xFF in string");
	BAD("\"ok\x80\"", "offset 3: invalid UTF-8 byte 0x80 in string");
	BAD("\"\xc0\xaf\"", "offset 1: invalid UTF-8 byte 0xC0 in string");
	BAD("\"\xe0\x80\xaf\"", "offset 1: invalid UTF-8 byte 0xE0 in "
	                        "string"); /* overlong */
	BAD("\"\xed\xa0\x80\"", "offset 1: invalid UTF-8 byte 0xED in "
	                        "string"); /* surrogate */
	BAD("\"\xf4\x90\x80\x80\"", "offset 1: invalid UTF-8 byte 0xF4 in "
	                            "string"); /* > U+10FFFF */
	BAD("\"\xf5\x80\x80\x80\"", "offset 1: invalid UTF-8 byte 0xF5 in "
	                            "string");
	BAD("\"x\xe2\x82\"", "offset 2: invalid UTF-8 byte 0xE2 in "
	                     "string"); /* truncated */
	BAD("\"\xe2\x82", "offset 1: invalid UTF-8 byte 0xE2 in string");
	BAD("{\"k\xff\":1}", "offset 3: invalid UTF-8 byte 0xFF in string");
	/* and the biggest valid ones are fine */
	check_same("\"\xf4\x8f\xbf\xbf\xef\xbf\xbf\xdf\xbf\"");
}

static void
test_err_buffer(void **state)
{
	msgpack_sbuffer sb;
	char            small[10];
	char            err[64];

	(void) state;
	/* no error buffer at all */
	assert_int_equal(parse("[1,", 3, &sb, NULL, 0), -1);
	msgpack_sbuffer_destroy(&sb);
	assert_int_equal(parse("[1]", 3, &sb, NULL, 0), 0);
	msgpack_sbuffer_destroy(&sb);
	/* a short one is cut, NUL-terminated */
	assert_int_equal(parse("[1,", 3, &sb, small, sizeof(small)), -1);
	assert_string_equal(small, "offset 3:");
	msgpack_sbuffer_destroy(&sb);
	/* success clears a stale message */
	strcpy(err, "stale");
	assert_int_equal(parse("1", 1, &sb, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	msgpack_sbuffer_destroy(&sb);
	/* NULL text is empty text */
	assert_int_equal(parse(NULL, 0, &sb, err, sizeof(err)), -1);
	assert_string_equal(err,
	    "offset 0: expected a JSON value, got end of input");
	msgpack_sbuffer_destroy(&sb);
	/* len bounds the text: bytes after it are never read */
	assert_int_equal(parse("[1]garbage", 3, &sb, err, sizeof(err)), 0);
	msgpack_sbuffer_destroy(&sb);
}

/* Two arguments packed one after the other, the way `ferry submit` packs
 * its ARGS into one array: a bad one adds nothing. */
static void
test_appends(void **state)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	char            err[128];

	(void) state;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 2);
	assert_int_equal(json_to_msgpack("1", 1, &pk, err, sizeof(err)), 0);
	assert_int_equal(
	    json_to_msgpack("[1,{\"a\":x}]", 11, &pk, err, sizeof(err)), -1);
	assert_string_equal(err, "offset 8: expected a JSON value, got 'x'");
	assert_int_equal(sb.size, 2);
	assert_int_equal(
	    json_to_msgpack("\"s\"", 3, &pk, err, sizeof(err)), 0);
	assert_int_equal(sb.size, 4);
	assert_memory_equal(sb.data, "\x92\x01\xa1s", 4);
	msgpack_sbuffer_destroy(&sb);
}

/* ----------------------------------------------------------- printer */

static void
test_print_strings(void **state)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;

	(void) state;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

	msgpack_pack_str_with_body(&pk, "a\xff" "b", 3);
	check_print(&sb, "\"a\\ufffdb\"");
	msgpack_pack_str_with_body(&pk, "\xe2\x82", 2); /* cut short */
	check_print(&sb, "\"\\ufffd\\ufffd\"");
	msgpack_pack_str_with_body(&pk, "\xed\xa0\x80", 3); /* surrogate */
	check_print(&sb, "\"\\ufffd\\ufffd\\ufffd\"");
	msgpack_pack_str_with_body(&pk, "\xc0\xaf", 2); /* overlong */
	check_print(&sb, "\"\\ufffd\\ufffd\"");
	msgpack_pack_str_with_body(&pk, "\xe2\x82\xac", 3);
	check_print(&sb, "\"\xe2\x82\xac\"");
	msgpack_pack_str_with_body(&pk, "\x01\x1f\x7f\x00", 4);
	check_print(&sb, "\"\\u0001\\u001f\x7f\\u0000\"");
	msgpack_pack_str_with_body(&pk, "q\"b\\s/", 6);
	check_print(&sb, "\"q\\\"b\\\\s/\"");
	msgpack_pack_str_with_body(&pk, "\b\f\n\r\t", 5);
	check_print(&sb, "\"\\b\\f\\n\\r\\t\"");
	msgpack_pack_str_with_body(&pk, "", 0);
	check_print(&sb, "\"\"");
	msgpack_sbuffer_destroy(&sb);
}

static void
test_print_bin_ext(void **state)
{
	static const char *const b64[][2] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" },
		{ "foo", "Zm9v" }, { "foob", "Zm9vYg==" },
		{ "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	char            want[64];
	unsigned char   all[256];
	char           *s;

	(void) state;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	for (size_t i = 0; i < sizeof(b64) / sizeof(b64[0]); i++) {
		msgpack_pack_bin_with_body(&pk, b64[i][0], strlen(b64[i][0]));
		snprintf(want, sizeof(want), "\"base64:%s\"", b64[i][1]);
		check_print(&sb, want);
	}
	msgpack_pack_bin_with_body(&pk, "\xfb\xff\xbf", 3);
	check_print(&sb, "\"base64:+/+/\"");

	/* every byte value, long enough to flush the encoder's buffer */
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char) i;
	msgpack_pack_bin_with_body(&pk, all, sizeof(all));
	s = print_bytes(sb.data, sb.size, 0);
	assert_int_equal(strlen(s), 2 + 7 + 344);
	assert_memory_equal(
	    s, "\"base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYX", 40);
	assert_string_equal(s + strlen(s) - 9, "/P3+/w==\"");
	free(s);
	msgpack_sbuffer_clear(&sb);

	msgpack_pack_ext_with_body(&pk, "\x01\x02", 2, 5);
	check_print(&sb, "{\"ext\":5,\"base64\":\"AQI=\"}");
	msgpack_pack_ext_with_body(&pk, "\x00\x00\x00\x00", 4, -1);
	check_print(&sb, "{\"ext\":-1,\"base64\":\"AAAAAA==\"}");
	msgpack_pack_ext_with_body(&pk, "", 0, 127);
	check_print(&sb, "{\"ext\":127,\"base64\":\"\"}");
	msgpack_sbuffer_destroy(&sb);
}

static void
test_print_numbers(void **state)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;

	(void) state;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_float(&pk, 1.1f);
	check_print(&sb, "1.1");
	msgpack_pack_float(&pk, 16777216.0f);
	check_print(&sb, "16777216.0");
	msgpack_pack_float(&pk, 3.4028235e38f);
	check_print(&sb, "3.4028235e+38");
	msgpack_pack_float(&pk, -0.0f);
	check_print(&sb, "-0.0");
	msgpack_pack_double(&pk, 1.1f); /* a float32 widened: all digits */
	check_print(&sb, "1.100000023841858");
	msgpack_pack_double(&pk, 1e300);
	check_print(&sb, "1e+300");
	msgpack_pack_double(&pk, 100.0);
	check_print(&sb, "100.0");
	msgpack_pack_double(&pk, NAN);
	check_print(&sb, "null");
	msgpack_pack_double(&pk, INFINITY);
	check_print(&sb, "null");
	msgpack_pack_float(&pk, -INFINITY);
	check_print(&sb, "null");
	msgpack_pack_int64(&pk, INT64_MIN);
	check_print(&sb, "-9223372036854775808");
	msgpack_pack_uint64(&pk, UINT64_MAX);
	check_print(&sb, "18446744073709551615");
	/* a positive value in a signed encoding prints as itself */
	msgpack_sbuffer_write(&sb, "\xd3\x00\x00\x00\x00\x00\x00\x00\x05", 9);
	check_print(&sb, "5");
	msgpack_sbuffer_destroy(&sb);
}

static void
test_print_keys(void **state)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;

	(void) state;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 10);
	msgpack_pack_int(&pk, 1);
	msgpack_pack_str_with_body(&pk, "one", 3);
	msgpack_pack_int(&pk, -2);
	msgpack_pack_int(&pk, 0);
	msgpack_pack_nil(&pk);
	msgpack_pack_int(&pk, 0);
	msgpack_pack_true(&pk);
	msgpack_pack_int(&pk, 0);
	msgpack_pack_double(&pk, 1.5);
	msgpack_pack_int(&pk, 0);
	msgpack_pack_array(&pk, 2); /* key [1,"a"] */
	msgpack_pack_int(&pk, 1);
	msgpack_pack_str_with_body(&pk, "a", 1);
	msgpack_pack_int(&pk, 0);
	msgpack_pack_map(&pk, 1); /* key {"x":[]} */
	msgpack_pack_str_with_body(&pk, "x", 1);
	msgpack_pack_array(&pk, 0);
	msgpack_pack_int(&pk, 0);
	msgpack_pack_bin_with_body(&pk, "\x00", 1);
	msgpack_pack_int(&pk, 0);
	msgpack_pack_ext_with_body(&pk, "\x01", 1, 3);
	msgpack_pack_int(&pk, 0);
	msgpack_pack_str_with_body(&pk, "s\"", 2);
	msgpack_pack_int(&pk, 0);
	check_print(&sb,
	    "{\"1\":\"one\",\"-2\":0,\"null\":0,\"true\":0,\"1.5\":0,"
	    "\"[1,\\\"a\\\"]\":0,\"{\\\"x\\\":[]}\":0,\"base64:AA==\":0,"
	    "\"{\\\"ext\\\":3,\\\"base64\\\":\\\"AQ==\\\"}\":0,"
	    "\"s\\\"\":0}");
	msgpack_sbuffer_destroy(&sb);
}

/* Pack V(n): V(0) = ["q"], V(n) = {V(n-1): 0}, so V(n) has n non-string
 * keys nested inside each other. */
static void
pack_key_nest(msgpack_packer *pk, int n)
{
	if (n == 0) {
		msgpack_pack_array(pk, 1);
		msgpack_pack_str_with_body(pk, "q", 1);
		return;
	}
	msgpack_pack_map(pk, 1);
	pack_key_nest(pk, n - 1);
	msgpack_pack_int(pk, 0);
}

static void
test_print_key_nesting(void **state)
{
	msgpack_sbuffer sb, j;
	msgpack_packer  pk;
	msgpack_zone    z;
	msgpack_object  o;
	size_t          off = 0;
	char            err[256];
	char           *s;

	(void) state;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	pack_key_nest(&pk, 2);
	check_print(&sb, "{\"{\\\"[\\\\\\\"q\\\\\\\"]\\\":0}\":0}");

	/* four levels print, and the text is JSON */
	pack_key_nest(&pk, 4);
	s = json_from_msgpack_bytes(sb.data, sb.size, err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(parse(s, strlen(s), &j, err, sizeof(err)), 0);
	msgpack_sbuffer_destroy(&j);
	free(s);
	msgpack_sbuffer_clear(&sb);

	/* five would double the innermost text once more: refused */
	pack_key_nest(&pk, 5);
	assert_null(json_from_msgpack_bytes(sb.data, sb.size, err,
	    sizeof(err)));
	assert_string_equal(err,
	    "map keys that are maps or arrays with such keys of their own, "
	    "nested more than 4 deep, cannot be printed as JSON");
	msgpack_zone_init(&z, 1024);
	assert_int_equal(msgpack_unpack(sb.data, sb.size, &off, &z, &o),
	    MSGPACK_UNPACK_SUCCESS);
	msgpack_sbuffer_init(&j);
	assert_int_equal(msgpack_to_json(&o, &j), -1);
	msgpack_sbuffer_clear(&j);
	assert_int_equal(msgpack_to_json_pretty(&o, &j, 2), -1);
	msgpack_sbuffer_destroy(&j);
	msgpack_zone_destroy(&z);
	msgpack_sbuffer_destroy(&sb);
}

static void
test_pretty(void **state)
{
	const char *in =
	    "{\"a\":1,\"b\":[1,[2,{}]],\"c\":{},\"d\":[],"
	    "\"e\":{\"f\":\"x\"}}";
	msgpack_sbuffer sb, again;
	char           *s, err[128];

	(void) state;
	assert_int_equal(parse(in, strlen(in), &sb, err, sizeof(err)), 0);
	s = print_bytes(sb.data, sb.size, 2);
	assert_string_equal(s,
	    "{\n"
	    "  \"a\": 1,\n"
	    "  \"b\": [\n"
	    "    1,\n"
	    "    [\n"
	    "      2,\n"
	    "      {}\n"
	    "    ]\n"
	    "  ],\n"
	    "  \"c\": {},\n"
	    "  \"d\": [],\n"
	    "  \"e\": {\n"
	    "    \"f\": \"x\"\n"
	    "  }\n"
	    "}");
	/* the pretty text is JSON for the same value */
	assert_int_equal(parse(s, strlen(s), &again, err, sizeof(err)), 0);
	assert_int_equal(again.size, sb.size);
	assert_memory_equal(again.data, sb.data, sb.size);
	free(s);
	msgpack_sbuffer_destroy(&again);
	s = print_bytes(sb.data, sb.size, 4);
	{
		const char *want4 =
		    "{\n    \"a\": 1,\n    \"b\": [\n        1,";
		assert_memory_equal(s, want4, strlen(want4));
	}
	free(s);
	s = print_bytes(sb.data, sb.size, 0); /* indent 0: compact */
	assert_string_equal(s, in);
	free(s);
	msgpack_sbuffer_destroy(&sb);

	/* scalars, and ext as a two-member object */
	msgpack_sbuffer_init(&sb);
	{
		msgpack_packer pk;
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_array(&pk, 2);
		msgpack_pack_str_with_body(&pk, "é\n", 3);
		msgpack_pack_ext_with_body(&pk, "\xff", 1, 1);
	}
	s = print_bytes(sb.data, sb.size, 2);
	assert_string_equal(s,
	    "[\n"
	    "  \"é\\n\",\n"
	    "  {\n"
	    "    \"ext\": 1,\n"
	    "    \"base64\": \"/w==\"\n"
	    "  }\n"
	    "]");
	free(s);
	msgpack_sbuffer_destroy(&sb);
	s = print_bytes("\x2a", 1, 2);
	assert_string_equal(s, "42");
	free(s);
}

/* ------------------------------------------- json_from_msgpack_bytes */

/* data must be refused with a message containing want. */
static void
check_bytes_bad(const void *data, size_t len, const char *want)
{
	char  err[256];
	char *s;

	s = json_from_msgpack_bytes(data, len, err, sizeof(err));
	if (s != NULL)
		fail_msg("accepted, printed %s", s);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", err, want);
}

static void
test_from_bytes(void **state)
{
	char  err[256];
	char *s;

	(void) state;
	s = json_from_msgpack_bytes("\x82\xa1" "a\x01\xa1" "b\x90", 7, err,
	    sizeof(err));
	assert_non_null(s);
	assert_string_equal(s, "{\"a\":1,\"b\":[]}");
	free(s);

	check_bytes_bad(NULL, 0, "empty msgpack value");
	check_bytes_bad("", 0, "empty msgpack value");
	check_bytes_bad("\x92\x01", 2, "declares 2 items");
	check_bytes_bad("\xa5" "ab", 3, "truncated");
	check_bytes_bad("\x01\x02", 2, "unexpected bytes after");
	check_bytes_bad("\xc1", 1, "invalid msgpack byte 0xc1");
	check_bytes_bad("\xdd\xff\xff\xff\xff", 5, "declares");
	check_bytes_bad("\xdf\x7f\xff\xff\xff\x01", 6, "declares");
	check_bytes_bad("\xc6\xff\xff\xff\xff", 5, "truncated");
	/* err may be NULL */
	assert_null(json_from_msgpack_bytes("\x92", 1, NULL, 0));

	/* 32 nested arrays decode, 33 cannot (msgpack-c's limit) */
	{
		unsigned char buf[40];
		memset(buf, 0x91, sizeof(buf));
		buf[JSON_MAX_DEPTH - 1] = 0x90;
		s = json_from_msgpack_bytes(buf, JSON_MAX_DEPTH, err,
		    sizeof(err));
		assert_non_null(s);
		free(s);
		buf[JSON_MAX_DEPTH - 1] = 0x91;
		buf[JSON_MAX_DEPTH]     = 0x90;
		check_bytes_bad(buf, JSON_MAX_DEPTH + 1,
		    "nested deeper than 32 levels");
		buf[JSON_MAX_DEPTH] = 0x80; /* an empty map counts too */
		check_bytes_bad(buf, JSON_MAX_DEPTH + 1,
		    "nested deeper than 32 levels");
		/* a deep value after a shallow one in a map */
		buf[0] = 0x81;
		buf[1] = 0x01;
		memset(buf + 2, 0x91, 32);
		buf[34] = 0xc0;
		check_bytes_bad(buf, 35, "nested deeper than 32 levels");
		buf[33] = 0xc0;
		s = json_from_msgpack_bytes(buf, 34, err, sizeof(err));
		assert_non_null(s);
		free(s);
	}
}

/* Numbers read and print the same under a locale whose decimal point is
 * a comma. */
static void
test_locale(void **state)
{
	static const char *names[] = { "de_DE.UTF-8", "de_DE.utf8",
		"fr_FR.UTF-8", "fr_FR.utf8", "de_DE", NULL };
	const char        *set = NULL;

	(void) state;
	for (int i = 0; names[i] != NULL && set == NULL; i++)
		set = setlocale(LC_NUMERIC, names[i]);
	if (set == NULL) {
		skip(); /* no comma locale installed */
		return;
	}
	check_same("1.5");
	check_same("[0.25,-1e+300]");
	setlocale(LC_NUMERIC, "C");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalars),
		cmocka_unit_test(test_integers),
		cmocka_unit_test(test_floats),
		cmocka_unit_test(test_containers),
		cmocka_unit_test(test_large),
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_surrogates),
		cmocka_unit_test(test_whitespace),
		cmocka_unit_test(test_nesting),
		cmocka_unit_test(test_malformed_structure),
		cmocka_unit_test(test_malformed_numbers),
		cmocka_unit_test(test_malformed_literals),
		cmocka_unit_test(test_malformed_strings),
		cmocka_unit_test(test_err_buffer),
		cmocka_unit_test(test_appends),
		cmocka_unit_test(test_print_strings),
		cmocka_unit_test(test_print_bin_ext),
		cmocka_unit_test(test_print_numbers),
		cmocka_unit_test(test_print_keys),
		cmocka_unit_test(test_print_key_nesting),
		cmocka_unit_test(test_pretty),
		cmocka_unit_test(test_from_bytes),
		cmocka_unit_test(test_locale),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
