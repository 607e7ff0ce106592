/*
 * proto_check.c - is a byte string one well-formed msgpack value?
 *
 * proto_check() walks the bytes once, without allocating, before
 * msgpack-c unpacks anything: a container may not declare more items than
 * bytes remain after it (so a 10-byte message cannot make the unpacker
 * allocate for 2^32 items), nesting stops at PROTO_MAX_DEPTH, and nothing
 * may follow the value.
 */
#include "proto.h"

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* msgpack-c's unpacker holds at most this many open containers
 * (MSGPACK_EMBED_STACK_SIZE) and reports deeper nesting as out of memory. */
#define PROTO_MAX_DEPTH 32

/* What one head byte says about the value it starts. */
struct head {
	uint64_t skip;     /* payload bytes after the head (and its length) */
	uint64_t items;    /* values inside (a map's pairs count twice) */
	int      lenbytes; /* big-endian length bytes after the head byte */
	int      countlen; /* big-endian item-count bytes (array/map 16/32) */
	int      pairs;    /* the count is of map pairs */
	int      container;
	int      invalid;
};

static uint64_t
be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/* The fixed-size values and the length-prefixed ones (0xc0 ... 0xdf). */
static void
head_typed(uint8_t b, struct head *h)
{
	switch (b) {
	case 0xc0: case 0xc2: case 0xc3: break; /* nil, false, true */
	case 0xc4: case 0xd9: h->lenbytes = 1; break; /* bin8 str8 */
	case 0xc5: case 0xda: h->lenbytes = 2; break;
	case 0xc6: case 0xdb: h->lenbytes = 4; break;
	case 0xc7: h->lenbytes = 1; h->skip = 1; break; /* ext8 */
	case 0xc8: h->lenbytes = 2; h->skip = 1; break;
	case 0xc9: h->lenbytes = 4; h->skip = 1; break;
	case 0xca: h->skip = 4; break; /* float32 */
	case 0xcb: h->skip = 8; break;
	case 0xcc: case 0xd0: h->skip = 1; break;
	case 0xcd: case 0xd1: h->skip = 2; break;
	case 0xce: case 0xd2: h->skip = 4; break;
	case 0xcf: case 0xd3: h->skip = 8; break;
	case 0xd4: h->skip = 2; break; /* fixext */
	case 0xd5: h->skip = 3; break;
	case 0xd6: h->skip = 5; break;
	case 0xd7: h->skip = 9; break;
	case 0xd8: h->skip = 17; break;
	case 0xdc: case 0xde: h->countlen = 2; break; /* array16 map16 */
	case 0xdd: case 0xdf: h->countlen = 4; break; /* array32 map32 */
	default: h->invalid = 1; break; /* 0xc1 */
	}
	h->pairs     = b == 0xde || b == 0xdf;
	h->container = h->countlen > 0;
}

/* Classify head byte b. */
static void
head_of(uint8_t b, struct head *h)
{
	*h = (struct head) { 0 };
	if (b <= 0x7f || b >= 0xe0) {
		/* fixint */
	} else if (b <= 0x8f) {
		h->items     = 2 * (uint64_t)(b & 0x0f);
		h->container = 1;
	} else if (b <= 0x9f) {
		h->items     = b & 0x0f;
		h->container = 1;
	} else if (b <= 0xbf) {
		h->skip = b & 0x1f;
	} else {
		head_typed(b, h);
	}
}

/* Read n big-endian bytes at *pos into *v and move past them; -1 when
 * fewer remain. */
static int
read_be(const uint8_t *p, size_t len, size_t *pos, int n, uint64_t *v)
{
	if (len - *pos < (size_t)n)
		return -1;
	*v = be(p + *pos, n);
	*pos += (size_t)n;
	return 0;
}

/* Read the count or length bytes that follow the head at offset at:
 * pos moves past them.  Returns 0, or -1 with a message. */
static int
head_lengths(const uint8_t *p, size_t len, size_t *pos, size_t at,
    struct head *h, char *err, size_t errlen)
{
	int      n = h->countlen > 0 ? h->countlen : h->lenbytes;
	uint64_t v;

	/* a head has an item count (array, map) or a length (str, bin,
	 * ext), never both */
	if (n == 0)
		return 0;
	if (read_be(p, len, pos, n, &v) != 0)
		return util_errf(err, errlen,
		    "truncated message: %slength at offset %zu",
		    h->countlen > 0 ? "container " : "", at);
	if (h->countlen > 0)
		h->items = h->pairs ? 2 * v : v;
	else
		h->skip += v;
	return 0;
}

int
proto_check(const void *data, size_t len, char *err, size_t errlen)
{
	const uint8_t *p       = data;
	size_t         pos     = 0;
	uint64_t       pending = 1; /* values still to read */
	uint64_t       open[PROTO_MAX_DEPTH + 1]; /* values left per level */
	int            depth = 0;

	open[0] = 1;
	if (len == 0)
		return util_errf(err, errlen, "empty message");
	while (pending > 0) {
		struct head h;
		size_t      at = pos;
		uint8_t     b;

		if (pos >= len)
			return util_errf(err, errlen,
			    "truncated message: %llu value(s) missing after "
			    "byte %zu",
			    (unsigned long long)pending, len);
		b = p[pos++];
		pending--;
		open[depth]--;
		head_of(b, &h);
		if (h.invalid)
			return util_errf(err, errlen,
			    "invalid msgpack byte 0x%02x at offset %zu", b,
			    at);
		if (head_lengths(p, len, &pos, at, &h, err, errlen) != 0)
			return -1;
		if (h.skip > len - pos)
			return util_errf(err, errlen,
			    "truncated message: value at offset %zu needs "
			    "%llu bytes, %zu remain",
			    at, (unsigned long long)h.skip, len - pos);
		pos += h.skip;
		if (h.items > len - pos)
			return util_errf(err, errlen,
			    "container at offset %zu declares %llu items but "
			    "only %zu bytes remain",
			    at, (unsigned long long)h.items, len - pos);
		pending += h.items;
		if (h.container) {
			if (depth == PROTO_MAX_DEPTH)
				return util_errf(err, errlen,
				    "container at offset %zu is nested deeper "
				    "than %d levels",
				    at, PROTO_MAX_DEPTH);
			if (h.items > 0)
				open[++depth] = h.items;
		}
		while (depth > 0 && open[depth] == 0)
			depth--;
	}
	if (pos != len)
		return util_errf(err, errlen,
		    "%zu unexpected bytes after the message at offset %zu",
		    len - pos, pos);
	return 0;
}
