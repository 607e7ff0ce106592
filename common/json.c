/*
 * json.c - strict JSON <-> msgpack conversion.
 *
 * The parser reads the text twice.  The first pass checks all of it and
 * counts the members of every array and object, in the order they open
 * (msgpack writes a container's size before its contents); the second pass
 * packs, taking the sizes from that list.  So a bad argument never leaves
 * half a value in the caller's buffer, and no tree is built in between.
 *
 * Numbers are read and written in the "C" locale whatever setlocale() says,
 * so a German locale cannot turn 1.5 into 1,5.
 */
#include "json.h"
#include "util.h"

#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

/* Deepest msgpack_object the printer walks (it recurses). */
#define PRINT_MAX_DEPTH 1000

/*
 * Most keys-inside-keys the printer renders.  A non-string key becomes its
 * JSON text inside a string, so each level escapes the quotes and
 * backslashes of the level inside it again and can double its size: keys
 * nested 32 deep would print 2^32 times larger than they came in.
 */
#define PRINT_MAX_KEY_NESTING 4

/* Printer results other than 0. */
#define PRINT_NOMEM (-1) /* the buffer could not grow */
#define PRINT_LIMIT (-2) /* past PRINT_MAX_DEPTH or PRINT_MAX_KEY_NESTING */

/* ---------------------------------------------------------- shared bits */

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t       c_locale;

/* Create the "C" locale once (pthread_once callback). */
static void
c_locale_init(void)
{
	c_locale = newlocale(LC_ALL_MASK, "C", (locale_t) 0);
}

/* The "C" locale, or (locale_t)0 if it could not be created. */
static locale_t
c_locale_get(void)
{
	pthread_once(&c_locale_once, c_locale_init);
	return c_locale;
}

/* strtod() in the "C" locale. */
static double
c_strtod(const char *s, char **end)
{
	locale_t loc = c_locale_get();

	return loc != (locale_t) 0 ? strtod_l(s, end, loc) : strtod(s, end);
}

/*
 * Length (1-4) of the well-formed UTF-8 sequence at p (n > 0 bytes
 * available), or 0 if p does not start one: no overlong forms, no
 * surrogates (U+D800-U+DFFF), nothing above U+10FFFF.
 */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t        need;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (n < need || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < need; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return need;
}

/* Write code point cp (not a surrogate, <= U+10FFFF) as UTF-8 at out;
 * returns the number of bytes. */
static size_t
utf8_put(char *out, uint32_t cp)
{
	unsigned char *o = (unsigned char *) out;

	if (cp < 0x80) {
		o[0] = (unsigned char) cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char) (0xc0 | (cp >> 6));
		o[1] = (unsigned char) (0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char) (0xe0 | (cp >> 12));
		o[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
		o[2] = (unsigned char) (0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (unsigned char) (0xf0 | (cp >> 18));
	o[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3f));
	o[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
	o[3] = (unsigned char) (0x80 | (cp & 0x3f));
	return 4;
}


/* ------------------------------------------------------- JSON -> msgpack */

struct jparse {
	const unsigned char *s;
	size_t               len;
	size_t               pos;
	msgpack_packer      *pk;       /* NULL in the checking pass */
	uint32_t            *counts;   /* members per container, open order */
	size_t               n_counts; /* filled by the checking pass */
	size_t               cap_counts;
	size_t               next;     /* next entry the packing pass takes */
	char                *scratch;  /* len + 1 bytes: strings, numbers */
	int                  depth;
	char                *err;
	size_t               errlen;
};

/* Record "offset AT: <message>" and return -1. */
static int
jfail(struct jparse *p, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
jfail(struct jparse *p, size_t at, const char *fmt, ...)
{
	char    msg[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	util_errf(p->err, p->errlen, "offset %zu: %s", at, msg);
	return -1;
}

/* Record that memory ran out (in a buffer of ours or pk's) and return -1. */
static int
jnomem(struct jparse *p)
{
	util_errf(p->err, p->errlen, "out of memory");
	return -1;
}

/* Describe the byte at p->pos for a message: "'x'", "byte 0xC3" or
 * "end of input". */
static const char *
jgot(const struct jparse *p, char *buf, size_t buflen)
{
	unsigned char c;

	if (p->pos >= p->len)
		return "end of input";
	c = p->s[p->pos];
	if (c > 0x20 && c < 0x7f)
		snprintf(buf, buflen, "'%c'", c);
	else
		snprintf(buf, buflen, "byte 0x%02X", c);
	return buf;
}

/* Fail at p->pos with "expected WHAT, got <the byte there>". */
static int
jexpected(struct jparse *p, const char *what)
{
	char buf[16];

	return jfail(p, p->pos, "expected %s, got %s", what,
	    jgot(p, buf, sizeof(buf)));
}

/* Skip JSON whitespace (space, tab, LF, CR). */
static void
jskip_ws(struct jparse *p)
{
	while (p->pos < p->len) {
		unsigned char c = p->s[p->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

/* Pack-pass helper: turn a packer result into 0 or -1 (no memory). */
static int
jpacked(struct jparse *p, int rv)
{
	return rv == 0 ? 0 : jnomem(p);
}

/* Value of the 4 hex digits at s[at], or -1 if they are not there. */
static int32_t
jhex4(const struct jparse *p, size_t at)
{
	int32_t v = 0;

	if (at > p->len || p->len - at < 4)
		return -1;
	for (size_t i = 0; i < 4; i++) {
		unsigned char c = p->s[at + i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/*
 * Read the string at p->pos (which is '"') and decode it into p->scratch;
 * *n is its length.  The decoded form is never longer than the escaped
 * one, so scratch (len + 1 bytes) always has room.
 */
static int
jstring(struct jparse *p, size_t *n)
{
	size_t start = p->pos;
	size_t o     = 0;
	char  *out   = p->scratch;

	p->pos++;
	for (;;) {
		unsigned char c;
		size_t        esc, l;
		int32_t       cp, lo;

		if (p->pos >= p->len)
			return jfail(p, p->pos,
			    "unterminated string (opened at offset %zu)",
			    start);
		c = p->s[p->pos];
		if (c == '"') {
			p->pos++;
			break;
		}
		if (c < 0x20)
			return jfail(p, p->pos,
			    "control character 0x%02X in string (write it "
			    "as an escape such as \\n or \\u%04X)",
			    c, c);
		if (c >= 0x80) {
			l = utf8_len(p->s + p->pos, p->len - p->pos);
			if (l == 0)
				return jfail(p, p->pos,
				    "invalid UTF-8 byte 0x%02X in string", c);
			memcpy(out + o, p->s + p->pos, l);
			o += l;
			p->pos += l;
			continue;
		}
		if (c != '\\') {
			out[o++] = (char) c;
			p->pos++;
			continue;
		}
		esc = p->pos++;
		if (p->pos >= p->len)
			return jfail(p, p->pos,
			    "unterminated string (opened at offset %zu)",
			    start);
		c = p->s[p->pos++];
		switch (c) {
		case '"': out[o++] = '"'; continue;
		case '\\': out[o++] = '\\'; continue;
		case '/': out[o++] = '/'; continue;
		case 'b': out[o++] = '\b'; continue;
		case 'f': out[o++] = '\f'; continue;
		case 'n': out[o++] = '\n'; continue;
		case 'r': out[o++] = '\r'; continue;
		case 't': out[o++] = '\t'; continue;
		case 'u': break;
		default: {
			char buf[16];
			p->pos = esc + 1;
			return jfail(p, esc,
			    "invalid escape: '\\' followed by %s",
			    jgot(p, buf, sizeof(buf)));
		}
		}
		if ((cp = jhex4(p, p->pos)) < 0)
			return jfail(p, esc,
			    "invalid \\u escape: expected 4 hex digits");
		p->pos += 4;
		if (cp >= 0xdc00 && cp <= 0xdfff)
			return jfail(p, esc,
			    "lone surrogate \\u%04X: a low surrogate must "
			    "follow a high one (\\uD800-\\uDBFF)",
			    (unsigned) cp);
		if (cp >= 0xd800 && cp <= 0xdbff) {
			if (p->len - p->pos < 2 || p->s[p->pos] != '\\' ||
			    p->s[p->pos + 1] != 'u')
				return jfail(p, esc,
				    "lone surrogate \\u%04X: a high surrogate "
				    "must be followed by a low one "
				    "(\\uDC00-\\uDFFF)",
				    (unsigned) cp);
			if ((lo = jhex4(p, p->pos + 2)) < 0)
				return jfail(p, p->pos,
				    "invalid \\u escape: expected 4 hex "
				    "digits");
			if (lo < 0xdc00 || lo > 0xdfff)
				return jfail(p, esc,
				    "lone surrogate \\u%04X: a high surrogate "
				    "must be followed by a low one "
				    "(\\uDC00-\\uDFFF)",
				    (unsigned) cp);
			p->pos += 6;
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		}
		o += utf8_put(out + o, (uint32_t) cp);
	}
	if (o > UINT32_MAX)
		return jfail(p, start, "string longer than 4294967295 bytes");
	*n = o;
	return 0;
}

/* Read the number at p->pos and, in the packing pass, pack it. */
static int
jnumber(struct jparse *p)
{
	size_t   start = p->pos;
	size_t   digits;
	int      neg = 0, is_int = 1;
	uint64_t v = 0;
	double   d;
	char    *end;

	if (p->s[p->pos] == '-') {
		neg = 1;
		p->pos++;
	}
	digits = p->pos;
	if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
		return jexpected(p, "a digit after '-'");
	if (p->s[p->pos] == '0') {
		p->pos++;
		if (p->pos < p->len && p->s[p->pos] >= '0' &&
		    p->s[p->pos] <= '9')
			return jfail(p, p->pos,
			    "leading zeros are not allowed in numbers");
	} else {
		while (p->pos < p->len && p->s[p->pos] >= '0' &&
		    p->s[p->pos] <= '9')
			p->pos++;
	}
	if (p->pos < p->len && p->s[p->pos] == '.') {
		is_int = 0;
		p->pos++;
		if (p->pos >= p->len || p->s[p->pos] < '0' ||
		    p->s[p->pos] > '9')
			return jexpected(p, "a digit after '.'");
		while (p->pos < p->len && p->s[p->pos] >= '0' &&
		    p->s[p->pos] <= '9')
			p->pos++;
	}
	if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
		is_int = 0;
		p->pos++;
		if (p->pos < p->len &&
		    (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
			p->pos++;
		if (p->pos >= p->len || p->s[p->pos] < '0' ||
		    p->s[p->pos] > '9')
			return jexpected(p, "a digit in the exponent");
		while (p->pos < p->len && p->s[p->pos] >= '0' &&
		    p->s[p->pos] <= '9')
			p->pos++;
	}

	if (is_int) {
		size_t i;
		for (i = digits; i < p->pos; i++) {
			unsigned dig = p->s[i] - '0';
			if (v > (UINT64_MAX - dig) / 10)
				break;
			v = v * 10 + dig;
		}
		if (i == p->pos && !neg)
			return p->pk == NULL
			    ? 0
			    : jpacked(p, msgpack_pack_uint64(p->pk, v));
		if (i == p->pos && v == 0) /* -0 */
			return p->pk == NULL
			    ? 0
			    : jpacked(p, msgpack_pack_uint64(p->pk, 0));
		if (i == p->pos && v <= (uint64_t) INT64_MAX + 1) {
			int64_t n = v == (uint64_t) INT64_MAX + 1
			    ? INT64_MIN
			    : -(int64_t) v;
			return p->pk == NULL
			    ? 0
			    : jpacked(p, msgpack_pack_int64(p->pk, n));
		}
		/* Too large for any 64-bit integer: a float. */
	}
	memcpy(p->scratch, p->s + start, p->pos - start);
	p->scratch[p->pos - start] = '\0';
	d = c_strtod(p->scratch, &end);
	if (end != p->scratch + (p->pos - start))
		return jfail(p, start, "malformed number"); /* not reached */
	if (isinf(d))
		return jfail(p, start,
		    "number out of range (larger than a 64-bit float can "
		    "hold)");
	return p->pk == NULL ? 0 : jpacked(p, msgpack_pack_double(p->pk, d));
}

/* Read the literal word at p->pos (true, false or null); *which is the
 * index into the word list. */
static int
jliteral(struct jparse *p, int *which)
{
	static const char *const words[] = { "true", "false", "null" };
	unsigned char             c = p->s[p->pos];
	int                       w = c == 't' ? 0 : c == 'f' ? 1 : 2;
	size_t                    n = strlen(words[w]);

	if (p->len - p->pos < n || memcmp(p->s + p->pos, words[w], n) != 0)
		return jfail(p, p->pos, "invalid literal (expected '%s')",
		    words[w]);
	p->pos += n;
	*which = w;
	return 0;
}

static int jvalue(struct jparse *p);

/* Open a container at p->pos: check depth, take or reserve its count
 * slot.  *slot is the index of its count in p->counts. */
static int
jopen(struct jparse *p, size_t *slot)
{
	if (++p->depth > JSON_MAX_DEPTH)
		return jfail(p, p->pos,
		    "nesting deeper than %d levels of arrays and objects",
		    JSON_MAX_DEPTH);
	if (p->pk != NULL) {
		*slot = p->next++;
	} else {
		if (p->n_counts == p->cap_counts) {
			size_t    cap = p->cap_counts ? p->cap_counts * 2 : 16;
			uint32_t *c = realloc(p->counts, cap * sizeof(*c));
			if (c == NULL)
				return jnomem(p);
			p->counts     = c;
			p->cap_counts = cap;
		}
		*slot            = p->n_counts++;
		p->counts[*slot] = 0;
	}
	p->pos++;
	return 0;
}

/* Whether the next character is c; if so, it is taken. */
static bool
jtake(struct jparse *p, char c)
{
	if (p->pos >= p->len || p->s[p->pos] != c)
		return false;
	p->pos++;
	return true;
}

/* After an element of a container: 1 at a ',' (another element follows,
 * whitespace skipped), 0 at its closing character close, else -1 with
 * the error (expected what). */
static int
jnext(struct jparse *p, char close, const char *what)
{
	jskip_ws(p);
	if (jtake(p, ',')) {
		jskip_ws(p);
		return 1;
	}
	if (jtake(p, close))
		return 0;
	return jexpected(p, what);
}

/* Close the container opened at slot, which held n elements. */
static int
jclose(struct jparse *p, size_t slot, uint32_t n)
{
	p->counts[slot] = n;
	p->depth--;
	return 0;
}

/* Read the array at p->pos ('['). */
static int
jarray(struct jparse *p)
{
	size_t   slot;
	uint32_t n = 0;
	int      more;

	if (jopen(p, &slot) != 0)
		return -1;
	if (p->pk != NULL &&
	    jpacked(p, msgpack_pack_array(p->pk, p->counts[slot])) != 0)
		return -1;
	jskip_ws(p);
	for (more = !jtake(p, ']'); more > 0;
	     more = jnext(p, ']', "',' or ']'")) {
		if (n == UINT32_MAX)
			return jfail(p, p->pos,
			    "array has more than %" PRIu32 " elements",
			    UINT32_MAX);
		if (jvalue(p) != 0)
			return -1;
		n++;
	}
	return more < 0 ? -1 : jclose(p, slot, n);
}

/* Read the object at p->pos ('{'). */
static int
jobject(struct jparse *p)
{
	size_t   slot, klen;
	uint32_t n = 0;
	int      more;

	if (jopen(p, &slot) != 0)
		return -1;
	if (p->pk != NULL &&
	    jpacked(p, msgpack_pack_map(p->pk, p->counts[slot])) != 0)
		return -1;
	jskip_ws(p);
	for (more = !jtake(p, '}'); more > 0;
	     more = jnext(p, '}', "',' or '}'")) {
		if (p->pos >= p->len || p->s[p->pos] != '"')
			return jexpected(p,
			    n == 0 ? "a string key or '}'" : "a string key");
		if (n == UINT32_MAX)
			return jfail(p, p->pos,
			    "object has more than %" PRIu32 " members",
			    UINT32_MAX);
		if (jstring(p, &klen) != 0)
			return -1;
		if (p->pk != NULL &&
		    jpacked(p,
			msgpack_pack_str_with_body(p->pk, p->scratch, klen)) !=
		        0)
			return -1;
		jskip_ws(p);
		if (!jtake(p, ':'))
			return jexpected(p, "':' after the key");
		if (jvalue(p) != 0)
			return -1;
		n++;
	}
	return more < 0 ? -1 : jclose(p, slot, n);
}

/* Read (and in the packing pass, pack) one value, whitespace first. */
static int
jvalue(struct jparse *p)
{
	size_t n;
	int    w = 0;

	jskip_ws(p);
	if (p->pos >= p->len)
		return jexpected(p, "a JSON value");
	switch (p->s[p->pos]) {
	case '{': return jobject(p);
	case '[': return jarray(p);
	case '"':
		if (jstring(p, &n) != 0)
			return -1;
		if (p->pk == NULL)
			return 0;
		return jpacked(
		    p, msgpack_pack_str_with_body(p->pk, p->scratch, n));
	case '-':
	case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		return jnumber(p);
	case 't':
	case 'f':
	case 'n':
		if (jliteral(p, &w) != 0)
			return -1;
		if (p->pk == NULL)
			return 0;
		if (w == 0)
			return jpacked(p, msgpack_pack_true(p->pk));
		if (w == 1)
			return jpacked(p, msgpack_pack_false(p->pk));
		return jpacked(p, msgpack_pack_nil(p->pk));
	default: return jexpected(p, "a JSON value");
	}
}

/* One pass over the whole text: a value, then only whitespace. */
static int
jdocument(struct jparse *p)
{
	char buf[16];

	p->pos   = 0;
	p->depth = 0;
	p->next  = 0;
	if (jvalue(p) != 0)
		return -1;
	jskip_ws(p);
	if (p->pos < p->len)
		return jfail(p, p->pos, "unexpected %s after the JSON value",
		    jgot(p, buf, sizeof(buf)));
	return 0;
}

int
json_to_msgpack(
    const char *s, size_t len, msgpack_packer *pk, char *err, size_t errlen)
{
	struct jparse p;
	int           rv;

	memset(&p, 0, sizeof(p));
	p.s      = (const unsigned char *) (s != NULL ? s : "");
	p.len    = s != NULL ? len : 0;
	p.err    = err;
	p.errlen = errlen;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (p.len == SIZE_MAX || (p.scratch = malloc(p.len + 1)) == NULL)
		return jnomem(&p);
	rv = jdocument(&p);
	if (rv == 0) {
		p.pk = pk;
		rv   = jdocument(&p);
	}
	free(p.scratch);
	free(p.counts);
	return rv;
}

/* ------------------------------------------------------- msgpack -> JSON */

struct jprint {
	msgpack_sbuffer *b;
	int              indent;    /* spaces per level; 0 = compact */
	int              key_depth; /* non-string keys we are inside */
};

/* Append n bytes (n may be 0). */
static int
put(msgpack_sbuffer *b, const void *data, size_t n)
{
	if (n == 0)
		return 0;
	return msgpack_sbuffer_write(b, data, n) == 0 ? 0 : -1;
}

/* Append a NUL-terminated string. */
static int
put_str(msgpack_sbuffer *b, const char *s)
{
	return put(b, s, strlen(s));
}

/* Append data as standard base64 with padding (no quotes). */
static int
put_base64(msgpack_sbuffer *b, const void *data, size_t n)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *in = data;
	char                 out[256];
	size_t               o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t) in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t) in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = abc[(v >> 18) & 0x3f];
		out[o++] = abc[(v >> 12) & 0x3f];
		out[o++] = i + 1 < n ? abc[(v >> 6) & 0x3f] : '=';
		out[o++] = i + 2 < n ? abc[v & 0x3f] : '=';
		if (o == sizeof(out)) {
			if (put(b, out, o) != 0)
				return -1;
			o = 0;
		}
	}
	return put(b, out, o);
}

/* Append data (n bytes; NULL if n is 0, as msgpack-c gives empty
 * strings) as a quoted JSON string. */
static int
put_escaped(msgpack_sbuffer *b, const void *data, size_t n)
{
	const unsigned char *s   = data;
	size_t               run = 0, i = 0;

	if (n == 0)
		return put(b, "\"\"", 2);
	if (put(b, "\"", 1) != 0)
		return -1;
	while (i < n) {
		unsigned char c = s[i];
		char          esc[8];
		size_t        l;

		if (c >= 0x20 && c != '"' && c != '\\') {
			l = c < 0x80 ? 1 : utf8_len(s + i, n - i);
			if (l > 0) {
				i += l;
				continue;
			}
		}
		if (put(b, s + run, i - run) != 0)
			return -1;
		switch (c) {
		case '"': strcpy(esc, "\\\""); break;
		case '\\': strcpy(esc, "\\\\"); break;
		case '\b': strcpy(esc, "\\b"); break;
		case '\f': strcpy(esc, "\\f"); break;
		case '\n': strcpy(esc, "\\n"); break;
		case '\r': strcpy(esc, "\\r"); break;
		case '\t': strcpy(esc, "\\t"); break;
		default:
			if (c < 0x20)
				snprintf(esc, sizeof(esc), "\\u%04x", c);
			else
				strcpy(esc, "\\ufffd"); /* invalid UTF-8 */
			break;
		}
		if (put_str(b, esc) != 0)
			return -1;
		run = ++i;
	}
	if (put(b, s + run, n - run) != 0)
		return -1;
	return put(b, "\"", 1);
}

/*
 * Append d in the shortest %.Ng form (N up to 17, or 9 for a float32)
 * that reads back as the same value, with ".0" added when it would
 * otherwise read back as an integer.  NaN and infinities are null.
 */
static int
put_double(msgpack_sbuffer *b, double d, int is_f32)
{
	char     buf[40];
	locale_t loc = c_locale_get(), old = (locale_t) 0;

	if (!isfinite(d))
		return put_str(b, "null");
	if (loc != (locale_t) 0)
		old = uselocale(loc);
	for (int prec = is_f32 ? 6 : 15;; prec++) {
		double back;
		snprintf(buf, sizeof(buf), "%.*g", prec, d);
		back = strtod(buf, NULL);
		if (prec >= (is_f32 ? 9 : 17) ||
		    (is_f32 ? (float) back == (float) d : back == d))
			break;
	}
	if (loc != (locale_t) 0)
		uselocale(old);
	if (strpbrk(buf, ".e") == NULL)
		strcat(buf, ".0");
	return put_str(b, buf);
}

/* In pretty mode, start a new line indented for level depth. */
static int
put_newline(const struct jprint *pr, int depth)
{
	static const char spaces[] = "                                ";
	size_t            n;

	if (pr->indent <= 0)
		return 0;
	if (put(pr->b, "\n", 1) != 0)
		return -1;
	n = (size_t) pr->indent * (size_t) depth;
	while (n > 0) {
		size_t k = n < sizeof(spaces) - 1 ? n : sizeof(spaces) - 1;
		if (put(pr->b, spaces, k) != 0)
			return -1;
		n -= k;
	}
	return 0;
}

/* Append the key/value separator (":" or ": "). */
static int
put_colon(const struct jprint *pr)
{
	return pr->indent > 0 ? put(pr->b, ": ", 2) : put(pr->b, ":", 1);
}

static int print_value(
    const struct jprint *pr, const msgpack_object *o, int depth);

/* Append a map key: strings as they are, bin as its "base64:" string,
 * anything else as its compact JSON text inside a string. */
static int
print_key(const struct jprint *pr, const msgpack_object *k, int depth)
{
	msgpack_sbuffer tmp;
	struct jprint   sub;
	int             rv;

	if (k->type == MSGPACK_OBJECT_STR)
		return put_escaped(pr->b, k->via.str.ptr, k->via.str.size);
	if (k->type == MSGPACK_OBJECT_BIN)
		return print_value(pr, k, depth);
	if (pr->key_depth >= PRINT_MAX_KEY_NESTING)
		return PRINT_LIMIT;
	msgpack_sbuffer_init(&tmp);
	sub.b         = &tmp;
	sub.indent    = 0;
	sub.key_depth = pr->key_depth + 1;
	rv            = print_value(&sub, k, depth);
	if (rv == 0)
		rv = put_escaped(pr->b, tmp.data, tmp.size);
	msgpack_sbuffer_destroy(&tmp);
	return rv;
}

/* Append {"ext": type, "base64": "..."} for an ext value. */
static int
print_ext(const struct jprint *pr, const msgpack_object *o, int depth)
{
	char num[8];

	snprintf(num, sizeof(num), "%d", (int) o->via.ext.type);
	if (put(pr->b, "{", 1) != 0 || put_newline(pr, depth + 1) != 0 ||
	    put_str(pr->b, "\"ext\"") != 0 || put_colon(pr) != 0 ||
	    put_str(pr->b, num) != 0 || put(pr->b, ",", 1) != 0 ||
	    put_newline(pr, depth + 1) != 0 ||
	    put_str(pr->b, "\"base64\"") != 0 || put_colon(pr) != 0 ||
	    put(pr->b, "\"", 1) != 0 ||
	    put_base64(pr->b, o->via.ext.ptr, o->via.ext.size) != 0 ||
	    put(pr->b, "\"", 1) != 0 || put_newline(pr, depth) != 0)
		return PRINT_NOMEM;
	return put(pr->b, "}", 1);
}

/* Append the JSON text of o, which sits at nesting level depth.  Returns
 * 0, PRINT_NOMEM or PRINT_LIMIT. */
static int
print_value(const struct jprint *pr, const msgpack_object *o, int depth)
{
	char num[32];
	int  rv;

	if (depth > PRINT_MAX_DEPTH)
		return PRINT_LIMIT;
	switch (o->type) {
	case MSGPACK_OBJECT_NIL: return put_str(pr->b, "null");
	case MSGPACK_OBJECT_BOOLEAN:
		return put_str(pr->b, o->via.boolean ? "true" : "false");
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		snprintf(num, sizeof(num), "%" PRIu64, o->via.u64);
		return put_str(pr->b, num);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		snprintf(num, sizeof(num), "%" PRId64, o->via.i64);
		return put_str(pr->b, num);
	case MSGPACK_OBJECT_FLOAT32: return put_double(pr->b, o->via.f64, 1);
	case MSGPACK_OBJECT_FLOAT64: return put_double(pr->b, o->via.f64, 0);
	case MSGPACK_OBJECT_STR:
		return put_escaped(pr->b, o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_BIN:
		if (put_str(pr->b, "\"base64:") != 0 ||
		    put_base64(pr->b, o->via.bin.ptr, o->via.bin.size) != 0)
			return PRINT_NOMEM;
		return put(pr->b, "\"", 1);
	case MSGPACK_OBJECT_EXT: return print_ext(pr, o, depth);
	case MSGPACK_OBJECT_ARRAY:
		if (o->via.array.size == 0)
			return put(pr->b, "[]", 2);
		if (put(pr->b, "[", 1) != 0)
			return PRINT_NOMEM;
		for (uint32_t i = 0; i < o->via.array.size; i++) {
			if ((i > 0 && put(pr->b, ",", 1) != 0) ||
			    put_newline(pr, depth + 1) != 0)
				return PRINT_NOMEM;
			rv = print_value(pr, &o->via.array.ptr[i], depth + 1);
			if (rv != 0)
				return rv;
		}
		if (put_newline(pr, depth) != 0)
			return PRINT_NOMEM;
		return put(pr->b, "]", 1);
	case MSGPACK_OBJECT_MAP:
		if (o->via.map.size == 0)
			return put(pr->b, "{}", 2);
		if (put(pr->b, "{", 1) != 0)
			return PRINT_NOMEM;
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];
			if ((i > 0 && put(pr->b, ",", 1) != 0) ||
			    put_newline(pr, depth + 1) != 0)
				return PRINT_NOMEM;
			if ((rv = print_key(pr, &kv->key, depth + 1)) != 0)
				return rv;
			if (put_colon(pr) != 0)
				return PRINT_NOMEM;
			if ((rv = print_value(pr, &kv->val, depth + 1)) != 0)
				return rv;
		}
		if (put_newline(pr, depth) != 0)
			return PRINT_NOMEM;
		return put(pr->b, "}", 1);
	}
	return put_str(pr->b, "null"); /* a type msgpack-c added later */
}

int
msgpack_to_json(const msgpack_object *o, msgpack_sbuffer *b)
{
	struct jprint pr = { .b = b, .indent = 0, .key_depth = 0 };

	return print_value(&pr, o, 0) == 0 ? 0 : -1;
}

int
msgpack_to_json_pretty(
    const msgpack_object *o, msgpack_sbuffer *b, int indent)
{
	struct jprint pr = {
		.b = b, .indent = indent > 0 ? indent : 0, .key_depth = 0
	};

	return print_value(&pr, o, 0) == 0 ? 0 : -1;
}

/* Big-endian unsigned value of the n bytes at p. */
static uint64_t
be(const unsigned char *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/*
 * Deepest nesting of containers in the msgpack value at data (len bytes),
 * counting until it passes max.  The bytes must have passed proto_check();
 * reads stay in bounds regardless.
 */
static int
mp_depth(const unsigned char *p, size_t len, int max)
{
	uint64_t rem[JSON_MAX_DEPTH + 2];
	int      top = 0, deepest = 0;
	size_t   pos = 0;

	if (max > JSON_MAX_DEPTH)
		max = JSON_MAX_DEPTH;
	rem[0] = 1;
	while (top >= 0) {
		unsigned char b;
		uint64_t      skip = 0, items = 0;
		size_t        lenbytes = 0, cntbytes = 0;
		int           container = 0;

		if (rem[top] == 0) {
			top--;
			continue;
		}
		rem[top]--;
		if (pos >= len)
			break;
		b = p[pos++];
		if (b >= 0x80 && b <= 0x8f) {
			container = 1;
			items     = 2 * (uint64_t) (b & 0x0f);
		} else if (b >= 0x90 && b <= 0x9f) {
			container = 1;
			items     = b & 0x0f;
		} else if (b >= 0xa0 && b <= 0xbf) {
			skip = b & 0x1f;
		} else {
			switch (b) {
			case 0xc4: case 0xd9: lenbytes = 1; break;
			case 0xc5: case 0xda: lenbytes = 2; break;
			case 0xc6: case 0xdb: lenbytes = 4; break;
			case 0xc7: lenbytes = 1; skip = 1; break;
			case 0xc8: lenbytes = 2; skip = 1; break;
			case 0xc9: lenbytes = 4; skip = 1; break;
			case 0xca: case 0xce: case 0xd2: skip = 4; break;
			case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
			case 0xcc: case 0xd0: skip = 1; break;
			case 0xcd: case 0xd1: skip = 2; break;
			case 0xd4: skip = 2; break;
			case 0xd5: skip = 3; break;
			case 0xd6: skip = 5; break;
			case 0xd7: skip = 9; break;
			case 0xd8: skip = 17; break;
			case 0xdc: case 0xde: /* array16, map16 */
				cntbytes  = 2;
				container = 1;
				break;
			case 0xdd: case 0xdf: /* array32, map32 */
				cntbytes  = 4;
				container = 1;
				break;
			default: break; /* fixint, nil, bool (0xc1: checked) */
			}
		}
		if (lenbytes + cntbytes > len - pos)
			break;
		if (lenbytes > 0)
			skip += be(p + pos, lenbytes);
		if (cntbytes > 0) {
			items = be(p + pos, cntbytes);
			if (b == 0xde || b == 0xdf)
				items *= 2;
		}
		pos += lenbytes + cntbytes;
		if (skip > len - pos)
			break;
		pos += (size_t) skip;
		if (container) {
			if (top + 1 > deepest)
				deepest = top + 1;
			if (deepest > max)
				break;
			rem[++top] = items;
		}
	}
	return deepest;
}

char *
json_from_msgpack_bytes(
    const void *data, size_t len, char *err, size_t errlen)
{
	msgpack_zone    zone;
	msgpack_object  obj;
	msgpack_sbuffer b;
	struct jprint   pr  = { .b = NULL, .indent = 0, .key_depth = 0 };
	size_t          off = 0;
	int             rv;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (data == NULL || len == 0) {
		util_errf(err, errlen, "empty msgpack value");
		return NULL;
	}
	if (proto_check(data, len, err, errlen) != 0)
		return NULL;
	if (mp_depth(data, len, JSON_MAX_DEPTH) > JSON_MAX_DEPTH) {
		util_errf(err, errlen,
		    "msgpack value nested deeper than %d levels of arrays "
		    "and maps; msgpack-c cannot decode it",
		    JSON_MAX_DEPTH);
		return NULL;
	}
	if (!msgpack_zone_init(&zone, 2048)) {
		util_errf(err, errlen, "out of memory");
		return NULL;
	}
	rv = msgpack_unpack(data, len, &off, &zone, &obj);
	if (rv != MSGPACK_UNPACK_SUCCESS) {
		util_errf(err, errlen, "%s",
		    rv == MSGPACK_UNPACK_NOMEM_ERROR
		        ? "out of memory decoding msgpack"
		        : "malformed msgpack value");
		msgpack_zone_destroy(&zone);
		return NULL;
	}
	msgpack_sbuffer_init(&b);
	pr.b = &b;
	if ((rv = print_value(&pr, &obj, 0)) == 0)
		rv = put(&b, "", 1);
	if (rv != 0) {
		if (rv == PRINT_LIMIT)
			util_errf(err, errlen,
			    "map keys that are maps or arrays with such keys "
			    "of their own, nested more than %d deep, cannot "
			    "be printed as JSON",
			    PRINT_MAX_KEY_NESTING);
		else
			util_errf(err, errlen, "out of memory");
		msgpack_sbuffer_destroy(&b);
		msgpack_zone_destroy(&zone);
		return NULL;
	}
	msgpack_zone_destroy(&zone);
	return msgpack_sbuffer_release(&b);
}
