/*
 * fuzz_json.c - fuzz the JSON parser behind `ferry submit` and the JSON
 * printer behind the CLI's output.
 *
 * Each input is used twice:
 *  - as JSON text: json_to_msgpack() either fails with "offset N: ..."
 *    (N within the input) having packed nothing, or packs one value that
 *    msgpack_unpack() decodes in full and that prints (compactly and
 *    pretty) as JSON which parses back to exactly the same msgpack bytes;
 *  - as msgpack bytes: json_from_msgpack_bytes() must not crash, and the
 *    JSON it returns must itself pass the checks above (unless it is too
 *    deep: an ext at the deepest level prints as one more object).
 * Any violation abort()s.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Report a broken property and abort. */
static void
die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_json: %s%s%s\n", what, detail ? ": " : "",
	    detail ? detail : "");
	abort();
}

/* Parse len bytes of JSON into a fresh *sb. */
static int
parse(const void *json, size_t len, msgpack_sbuffer *sb, char *err,
    size_t errlen)
{
	msgpack_packer pk;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	return json_to_msgpack(json, len, &pk, err, errlen);
}

/* A parse error must read "offset N: <text>" with N <= size. */
static void
check_error(const char *err, size_t size)
{
	unsigned long long off;
	int                n = 0;

	if (strcmp(err, "out of memory") == 0)
		return;
	if (sscanf(err, "offset %llu: %n", &off, &n) != 1 || n == 0 ||
	    err[n] == '\0' || off > size)
		die("malformed error message", err);
}

/* Print o (compact, or pretty when indent > 0); the text must parse back
 * to the bytes in want. */
static void
check_reparse(const msgpack_object *o, int indent, const msgpack_sbuffer *want)
{
	msgpack_sbuffer text, again;
	char            err[256];
	int             rv;

	msgpack_sbuffer_init(&text);
	rv = indent > 0 ? msgpack_to_json_pretty(o, &text, indent)
	                : msgpack_to_json(o, &text);
	if (rv != 0 || text.size == 0)
		die("printing failed", NULL);
	if (parse(text.data, text.size, &again, err, sizeof(err)) != 0)
		die("printed JSON does not parse", err);
	if (again.size != want->size ||
	    memcmp(again.data, want->data, want->size) != 0)
		die("JSON -> msgpack -> JSON -> msgpack changed the bytes",
		    NULL);
	msgpack_sbuffer_destroy(&again);
	msgpack_sbuffer_destroy(&text);
}

/* The checks on data as JSON text; returns json_to_msgpack()'s result
 * and leaves its error in err. */
static int
check_json(const void *data, size_t size, char *err, size_t errlen)
{
	msgpack_sbuffer sb;
	msgpack_zone    zone;
	msgpack_object  o;
	size_t          off = 0;
	char           *s;

	if (parse(data, size, &sb, err, errlen) != 0) {
		check_error(err, size);
		if (sb.size != 0)
			die("a failed parse packed something", err);
		msgpack_sbuffer_destroy(&sb);
		return -1;
	}
	if (err[0] != '\0')
		die("success left an error message", err);
	if (!msgpack_zone_init(&zone, 2048))
		die("out of memory", NULL);
	if (msgpack_unpack(sb.data, sb.size, &off, &zone, &o) !=
	        MSGPACK_UNPACK_SUCCESS ||
	    off != sb.size)
		die("the packed value does not unpack as one value", NULL);
	check_reparse(&o, 0, &sb);
	check_reparse(&o, 2, &sb);
	msgpack_zone_destroy(&zone);

	s = json_from_msgpack_bytes(sb.data, sb.size, err, errlen);
	if (s == NULL)
		die("json_from_msgpack_bytes refused a parsed value", err);
	free(s);
	msgpack_sbuffer_destroy(&sb);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char  err[256];
	char *s;

	check_json(data, size, err, sizeof(err));

	s = json_from_msgpack_bytes(data, size, err, sizeof(err));
	if (s == NULL) {
		if (err[0] == '\0')
			die("json_from_msgpack_bytes failed without a message",
			    NULL);
		return 0;
	}
	if (check_json(s, strlen(s), err, sizeof(err)) != 0 &&
	    strstr(err, "nesting deeper than") == NULL)
		die("JSON printed from msgpack does not parse", err);
	free(s);
	return 0;
}
