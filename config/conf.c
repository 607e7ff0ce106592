/*
 * conf.c - load and validate a YAML cluster file.
 *
 * The file is read whole (at most CONF_MAX_FILE bytes) and turned into a
 * small tree of nodes with libyaml's event API, so that every node keeps
 * its line and column and so that anchors, aliases and extra documents can
 * be refused.  One generic pass then checks what is wrong whatever the key
 * (aliases, duplicate keys, NUL bytes), and the schema walk fills struct
 * conf.  Every error names FILE:LINE:COLUMN and the key as a path
 * ("scheduler.listen[1]", "workers[0].slots").  See docs/configuration.md.
 */
#include "conf.h"

#include "log.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#define CONF_MAX_FILE (1024 * 1024) /* bytes in a cluster file */
#define CONF_MAX_DEPTH 16           /* nesting of lists and mappings */
#define CONF_MAX_NODES 100000       /* scalars, lists and mappings */
#define CONF_MAX_KEYS 256           /* keys in one mapping */
#define CONF_MAX_NAME 64            /* cluster and group names */
#define CONF_MAX_PROCESSES 1024
#define CONF_MAX_SLOTS 1024
#define CONF_MAX_PREFETCH 100000
#define CONF_MIN_MESSAGE (64 * 1024)
#define CONF_MAX_RETRIES 1000
#define CONF_MAX_BACKOFF 86400000u   /* 24h, as the wire allows */
#define CONF_MAX_TIMEOUT 2147483647u /* ms, as the wire allows */
#define CONF_MAX_QUARANTINE 100
#define CONF_MIN_RESULT_BYTES (64 * 1024)
#define CONF_MIN_MEMORY_LIMIT ((size_t) 16 * 1024 * 1024)
#define CONF_IPC_MAX 107 /* sizeof(sun_path) - 1 */
#define CONF_PATH_MAX 256
#define CONF_SHOW_MAX 40 /* bytes of a bad value quoted in a message */

/* The one placeholder the loader expands (in scheduler.listen,
 * scheduler.address and cluster.state_dir): this user's runtime
 * directory, util_runtime_dir(). */
#define RUNTIME_TOKEN "${FERRY_RUNTIME_DIR}"

enum node_kind {
	NODE_SCALAR,
	NODE_SEQ,
	NODE_MAP,
	NODE_ALIAS,
};

/* One YAML node; a mapping's kids alternate key, value. */
struct node {
	enum node_kind kind;
	size_t         line; /* 1-based */
	size_t         col;  /* 1-based */
	char          *anchor; /* anchor, or an alias's target; NULL if none */
	char          *text;   /* scalar value, NUL-terminated */
	size_t         len;    /* scalar length, may hide an inner NUL */
	bool           plain;  /* an unquoted scalar */
	struct node  **kids;
	size_t         n_kids;
	size_t         cap_kids;
};

/* Where we are: the file, the error buffer and the current key path. */
struct ctx {
	const char *file;
	char       *err;
	size_t      errlen;
	char        path[CONF_PATH_MAX];
	size_t      path_len;
	size_t      n_nodes;
};

/* Write "FILE:LINE:COLUMN: key 'PATH': PROBLEM" (or without the key when
 * there is no path) into the error buffer; returns -1. */
static int ctx_fail(struct ctx *x, size_t line, size_t col, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));

static int
ctx_fail(struct ctx *x, size_t line, size_t col, const char *fmt, ...)
{
	va_list ap;
	int     n;

	if (x->err == NULL || x->errlen == 0)
		return -1;
	if (x->path_len > 0)
		n = snprintf(x->err, x->errlen, "%s:%zu:%zu: key '%s': ",
		    x->file, line, col, x->path);
	else
		n = snprintf(x->err, x->errlen, "%s:%zu:%zu: ", x->file,
		    line, col);
	if (n < 0 || (size_t) n >= x->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(x->err + n, x->errlen - (size_t) n, fmt, ap);
	va_end(ap);
	return -1;
}

/* ctx_fail at node n. */
static int node_fail(struct ctx *x, const struct node *n, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

static int
node_fail(struct ctx *x, const struct node *n, const char *fmt, ...)
{
	char    msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return ctx_fail(x, n->line, n->col, "%s", msg);
}

/* Write an error that has no line: "FILE: PROBLEM"; returns -1. */
static int ctx_fail_file(struct ctx *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
ctx_fail_file(struct ctx *x, const char *fmt, ...)
{
	va_list ap;
	int     n;

	if (x->err == NULL || x->errlen == 0)
		return -1;
	n = snprintf(x->err, x->errlen, "%s: ", x->file);
	if (n < 0 || (size_t) n >= x->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(x->err + n, x->errlen - (size_t) n, fmt, ap);
	va_end(ap);
	return -1;
}

/* Append s (len bytes) to buf, escaping control bytes and quotes and
 * cutting it at max bytes with "..."; buf holds size bytes. */
static void
escape_into(char *buf, size_t size, size_t *at, const char *s, size_t len,
    size_t max)
{
	for (size_t i = 0; i < len && *at + 1 < size; i++) {
		unsigned char ch = (unsigned char) s[i];
		char          tmp[8];
		size_t        n;

		if (i == max) {
			snprintf(tmp, sizeof(tmp), "...");
		} else if (ch < 0x20 || ch == 0x7f || ch == '\'' ||
		    ch == '\\') {
			snprintf(tmp, sizeof(tmp), "\\x%02x", ch);
		} else {
			tmp[0] = (char) ch;
			tmp[1] = '\0';
		}
		n = strlen(tmp);
		if (*at + n >= size)
			break;
		memcpy(buf + *at, tmp, n);
		*at += n;
		if (i == max)
			break;
	}
	buf[*at] = '\0';
}

/* A printable, bounded copy of scalar n's text for a message. */
static const char *
node_show(const struct node *n, char *buf, size_t size)
{
	size_t at = 0;

	buf[0] = '\0';
	escape_into(buf, size, &at, n->text, n->len, CONF_SHOW_MAX);
	return buf;
}

/* Append ".key" (or "key" at the top) to the path; returns the old
 * length for path_pop. */
static size_t
path_push(struct ctx *x, const char *key, size_t len)
{
	size_t old = x->path_len;

	if (x->path_len > 0 && x->path_len + 1 < sizeof(x->path))
		x->path[x->path_len++] = '.';
	x->path[x->path_len] = '\0';
	escape_into(x->path, sizeof(x->path), &x->path_len, key, len,
	    CONF_SHOW_MAX);
	return old;
}

/* Append "[i]" to the path; returns the old length for path_pop. */
static size_t
path_index(struct ctx *x, size_t i)
{
	size_t old = x->path_len;
	int    n;

	n = snprintf(x->path + x->path_len, sizeof(x->path) - x->path_len,
	    "[%zu]", i);
	if (n > 0)
		x->path_len += (size_t) n;
	if (x->path_len >= sizeof(x->path))
		x->path_len = sizeof(x->path) - 1;
	return old;
}

/* Cut the path back to length old. */
static void
path_pop(struct ctx *x, size_t old)
{
	x->path_len = old;
	x->path[old] = '\0';
}

/* Free a node and everything below it. */
static void
node_free(struct node *n)
{
	if (n == NULL)
		return;
	for (size_t i = 0; i < n->n_kids; i++)
		node_free(n->kids[i]);
	free(n->kids);
	free(n->anchor);
	free(n->text);
	free(n);
}

/* Append kid to the list or mapping n; returns -1 when out of memory. */
static int
node_add(struct node *n, struct node *kid)
{
	if (n->n_kids == n->cap_kids) {
		size_t        cap = n->cap_kids ? n->cap_kids * 2 : 8;
		struct node **k = realloc(n->kids, cap * sizeof(*k));
		if (k == NULL)
			return -1;
		n->kids = k;
		n->cap_kids = cap;
	}
	n->kids[n->n_kids++] = kid;
	return 0;
}

/* Copy a libyaml string (NULL stays NULL); sets *oom when out of
 * memory. */
static char *
dup_or_null(const yaml_char_t *s, bool *oom)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup((const char *) s)) == NULL)
		*oom = true;
	return d;
}

/* Make a node from a scalar, sequence-start, mapping-start or alias
 * event; NULL when out of memory. */
static struct node *
node_from_event(const yaml_event_t *ev)
{
	struct node *n = calloc(1, sizeof(*n));
	bool         oom = false;

	if (n == NULL)
		return NULL;
	n->line = ev->start_mark.line + 1;
	n->col = ev->start_mark.column + 1;
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		n->kind = NODE_SCALAR;
		n->anchor = dup_or_null(ev->data.scalar.anchor, &oom);
		n->len = ev->data.scalar.length;
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		if ((n->text = malloc(n->len + 1)) == NULL) {
			oom = true;
			break;
		}
		memcpy(n->text, ev->data.scalar.value, n->len);
		n->text[n->len] = '\0';
		break;
	case YAML_SEQUENCE_START_EVENT:
		n->kind = NODE_SEQ;
		n->anchor = dup_or_null(ev->data.sequence_start.anchor, &oom);
		break;
	case YAML_MAPPING_START_EVENT:
		n->kind = NODE_MAP;
		n->anchor = dup_or_null(ev->data.mapping_start.anchor, &oom);
		break;
	default:
		n->kind = NODE_ALIAS;
		n->anchor = dup_or_null(ev->data.alias.anchor, &oom);
		break;
	}
	if (oom) {
		node_free(n);
		return NULL;
	}
	return n;
}

/* Turn libyaml's parser error into a message; returns -1. */
static int
syntax_fail(struct ctx *x, const yaml_parser_t *p, const char *buf,
    size_t len)
{
	const char *problem = p->problem ? p->problem : "unknown problem";
	size_t      line = 1;
	size_t      col = 1;

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		return ctx_fail_file(x, "out of memory reading YAML");
	case YAML_READER_ERROR:
		/* Only a byte offset is known: count lines and characters
		 * (UTF-8 lead bytes) up to it. */
		for (size_t i = 0; i < p->problem_offset && i < len; i++) {
			if (buf[i] == '\n') {
				line++;
				col = 1;
			} else if (((unsigned char) buf[i] & 0xc0) != 0x80) {
				col++;
			}
		}
		return ctx_fail(x, line, col,
		    "not valid text: %s (byte 0x%02x at offset %zu)", problem,
		    (unsigned) p->problem_value & 0xffu, p->problem_offset);
	default:
		break;
	}
	line = p->problem_mark.line + 1;
	col = p->problem_mark.column + 1;
	if (p->context != NULL)
		return ctx_fail(x, line, col,
		    "YAML syntax error: %s (%s at line %zu, column %zu)",
		    problem, p->context, p->context_mark.line + 1,
		    p->context_mark.column + 1);
	return ctx_fail(x, line, col, "YAML syntax error: %s", problem);
}

/* Parse the whole stream into a tree at *root (freed by the caller, also
 * on error); refuses a second document and deep nesting. */
static int
tree_build(struct ctx *x, yaml_parser_t *p, const char *buf, size_t len,
    struct node **root)
{
	struct node *stack[CONF_MAX_DEPTH];
	size_t       depth = 0;
	int          docs = 0;
	bool         done = false;
	yaml_event_t ev;

	*root = NULL;
	while (!done) {
		struct node *n;
		int          rv = 0;

		if (!yaml_parser_parse(p, &ev))
			return syntax_fail(x, p, buf, len);
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (docs++ > 0)
				rv = ctx_fail(x, ev.start_mark.line + 1,
				    ev.start_mark.column + 1,
				    "a second YAML document; a cluster file "
				    "holds exactly one (remove this '---')");
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			depth--;
			break;
		case YAML_SCALAR_EVENT:
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
		case YAML_ALIAS_EVENT:
			if (++x->n_nodes > CONF_MAX_NODES) {
				rv = ctx_fail(x, ev.start_mark.line + 1,
				    ev.start_mark.column + 1,
				    "more than %d YAML values; not a cluster "
				    "file?", CONF_MAX_NODES);
				break;
			}
			if ((n = node_from_event(&ev)) == NULL) {
				rv = ctx_fail_file(x, "out of memory");
				break;
			}
			if (depth > 0 && stack[depth - 1]->kind == NODE_MAP &&
			    stack[depth - 1]->n_kids >= 2 * CONF_MAX_KEYS) {
				rv = node_fail(x, n,
				    "more than %d keys in one mapping",
				    CONF_MAX_KEYS);
				node_free(n);
				break;
			}
			if (depth == 0) {
				*root = n;
			} else if (node_add(stack[depth - 1], n) != 0) {
				node_free(n);
				rv = ctx_fail_file(x, "out of memory");
				break;
			}
			if (n->kind != NODE_SEQ && n->kind != NODE_MAP)
				break;
			if (depth == CONF_MAX_DEPTH) {
				rv = node_fail(x, n,
				    "lists and mappings nested more than %d "
				    "deep", CONF_MAX_DEPTH);
				break;
			}
			stack[depth++] = n;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
		if (rv != 0)
			return rv;
	}
	return 0;
}

/* Whether n is a YAML null: an empty plain scalar, "~" or "null". */
static bool
node_is_null(const struct node *n)
{
	if (n->kind != NODE_SCALAR || !n->plain)
		return false;
	return n->len == 0 || strcmp(n->text, "~") == 0 ||
	    strcmp(n->text, "null") == 0 || strcmp(n->text, "Null") == 0 ||
	    strcmp(n->text, "NULL") == 0;
}

/* What n is, for "got ..." in messages. */
static const char *
node_what(const struct node *n)
{
	switch (n->kind) {
	case NODE_SEQ:
		return "a list";
	case NODE_MAP:
		return "a mapping";
	case NODE_ALIAS:
		return "an alias";
	default:
		return node_is_null(n) ? "an empty value" : "a string";
	}
}

/* Refuse, anywhere in the tree, what no key accepts: anchors, aliases,
 * non-scalar or duplicate mapping keys and scalars holding a NUL. */
static int
tree_check(struct ctx *x, const struct node *n)
{
	if (n->kind == NODE_ALIAS)
		return node_fail(x, n,
		    "YAML aliases ('*%s') are not supported; write the value "
		    "out", n->anchor);
	if (n->anchor != NULL)
		return node_fail(x, n,
		    "YAML anchors ('&%s') are not supported; write the value "
		    "out", n->anchor);
	if (n->kind == NODE_SCALAR && strlen(n->text) != n->len)
		return node_fail(x, n, "the value contains a NUL character");
	if (n->kind == NODE_SEQ) {
		for (size_t i = 0; i < n->n_kids; i++) {
			size_t old = path_index(x, i);
			if (tree_check(x, n->kids[i]) != 0)
				return -1;
			path_pop(x, old);
		}
	}
	if (n->kind != NODE_MAP)
		return 0;
	for (size_t i = 0; i + 1 < n->n_kids; i += 2) {
		const struct node *k = n->kids[i];
		size_t             old;

		if (k->kind == NODE_SEQ || k->kind == NODE_MAP)
			return node_fail(x, k,
			    "mapping keys must be plain names, got %s",
			    node_what(k));
		if (tree_check(x, k) != 0)
			return -1;
		old = path_push(x, k->text, k->len);
		for (size_t j = 0; j < i; j += 2) {
			if (strcmp(n->kids[j]->text, k->text) == 0)
				return node_fail(x, k,
				    "duplicate key (first at line %zu, column "
				    "%zu)", n->kids[j]->line, n->kids[j]->col);
		}
		if (tree_check(x, n->kids[i + 1]) != 0)
			return -1;
		path_pop(x, old);
	}
	return 0;
}

/* The value of key in mapping m, or NULL when absent or null. */
static const struct node *
map_get(const struct node *m, const char *key)
{
	for (size_t i = 0; i + 1 < m->n_kids; i += 2) {
		if (strcmp(m->kids[i]->text, key) == 0)
			return node_is_null(m->kids[i + 1]) ? NULL
			                                    : m->kids[i + 1];
	}
	return NULL;
}

/* Refuse keys of mapping m not in the NULL-terminated list keys. */
static int
map_only(struct ctx *x, const struct node *m, const char *const *keys)
{
	for (size_t i = 0; i + 1 < m->n_kids; i += 2) {
		const struct node *k = m->kids[i];
		char               list[256];
		size_t             at = 0;
		size_t             old;
		bool               found = false;

		for (size_t j = 0; keys[j] != NULL && !found; j++)
			found = strcmp(k->text, keys[j]) == 0;
		if (found)
			continue;
		list[0] = '\0';
		for (size_t j = 0; keys[j] != NULL; j++) {
			int w = snprintf(list + at, sizeof(list) - at, "%s%s",
			    j > 0 ? ", " : "", keys[j]);
			if (w < 0 || (size_t) w >= sizeof(list) - at)
				break;
			at += (size_t) w;
		}
		old = path_push(x, k->text, k->len);
		node_fail(x, k, "unknown key (expected one of: %s)", list);
		path_pop(x, old);
		return -1;
	}
	return 0;
}

/* Error for a required key absent from mapping m, or present with an
 * empty value (reported at the key). */
static int
missing(struct ctx *x, const struct node *m, const char *key,
    const char *what)
{
	path_push(x, key, strlen(key));
	for (size_t i = 0; i + 1 < m->n_kids; i += 2) {
		if (strcmp(m->kids[i]->text, key) == 0)
			return node_fail(x, m->kids[i],
			    "required, but the value is empty (expected %s)",
			    what);
	}
	return node_fail(x, m, "required key missing (expected %s)", what);
}

/* Take n as a non-empty string into a fresh *out (freeing the old). */
static int
want_string(struct ctx *x, const struct node *n, char **out)
{
	char *s;

	if (n->kind != NODE_SCALAR || node_is_null(n))
		return node_fail(x, n, "must be a string, got %s",
		    node_what(n));
	if (n->len == 0)
		return node_fail(x, n, "must not be empty");
	if ((s = strdup(n->text)) == NULL)
		return node_fail(x, n, "out of memory");
	free(*out);
	*out = s;
	return 0;
}

/* Parse all of s as a decimal integer (optional sign); -1 if it is not
 * one or does not fit. */
static int
parse_ll(const char *s, long long *out)
{
	const char *d = s;
	char       *end;

	if (*d == '-' || *d == '+')
		d++;
	if (!isdigit((unsigned char) *d))
		return -1;
	errno = 0;
	*out = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	return 0;
}

/* Take n as an integer in [lo, hi]; what says so in messages ("an
 * integer between 1 and 1024"). */
static int
want_int(struct ctx *x, const struct node *n, long long lo, long long hi,
    const char *what, long long *out)
{
	char show[CONF_SHOW_MAX * 4 + 8];

	if (n->kind != NODE_SCALAR)
		return node_fail(x, n, "must be %s, got %s", what,
		    node_what(n));
	if (parse_ll(n->text, out) != 0 || *out < lo || *out > hi)
		return node_fail(x, n, "must be %s, got '%s'", what,
		    node_show(n, show, sizeof(show)));
	return 0;
}

/* Take n as a duration of at least min ms. */
static int
want_duration(struct ctx *x, const struct node *n, uint32_t min,
    uint32_t *out)
{
	char show[CONF_SHOW_MAX * 4 + 8];

	if (n->kind != NODE_SCALAR)
		return node_fail(x, n, "must be a duration, got %s",
		    node_what(n));
	if (conf_parse_duration(n->text, out) != 0)
		return node_fail(x, n,
		    "must be a duration (250ms, 5s, 2m, 1h or a number of "
		    "milliseconds up to %" PRIu32 "), got '%s'",
		    UINT32_MAX, node_show(n, show, sizeof(show)));
	if (*out < min)
		return node_fail(x, n, "must be greater than 0, got '%s'",
		    node_show(n, show, sizeof(show)));
	return 0;
}

/* Take n as a size of at least min bytes (min_text says it). */
static int
want_size(struct ctx *x, const struct node *n, size_t min,
    const char *min_text, size_t *out)
{
	char show[CONF_SHOW_MAX * 4 + 8];

	if (n->kind != NODE_SCALAR)
		return node_fail(x, n, "must be a size, got %s",
		    node_what(n));
	if (conf_parse_size(n->text, out) != 0)
		return node_fail(x, n,
		    "must be a size (65536, 64KiB, 64MiB, 1GiB, 64MB), got "
		    "'%s'", node_show(n, show, sizeof(show)));
	if (*out < min)
		return node_fail(x, n, "must be at least %s, got '%s'",
		    min_text, node_show(n, show, sizeof(show)));
	return 0;
}

/* Take n as a duration of at most max ms (max_text says it); with
 * none_ok, "none" is also taken, as 0. */
static int
want_duration_max(struct ctx *x, const struct node *n, uint32_t max,
    const char *max_text, bool none_ok, uint32_t *out)
{
	const char *alt = none_ok ? " or 'none'" : "";
	char        show[CONF_SHOW_MAX * 4 + 8];

	if (n->kind != NODE_SCALAR)
		return node_fail(x, n, "must be a duration%s, got %s", alt,
		    node_what(n));
	if (none_ok && strcmp(n->text, "none") == 0) {
		*out = 0;
		return 0;
	}
	if (conf_parse_duration(n->text, out) != 0)
		return node_fail(x, n,
		    "must be a duration%s (250ms, 5s, 2m, 1h or a number of "
		    "milliseconds up to %s), got '%s'",
		    alt, max_text, node_show(n, show, sizeof(show)));
	if (*out > max)
		return node_fail(x, n, "must be at most %s, got '%s'",
		    max_text, node_show(n, show, sizeof(show)));
	return 0;
}

/* Take n as "none" (0) or a size of at least min bytes (min_text says
 * it). */
static int
want_size_or_none(struct ctx *x, const struct node *n, size_t min,
    const char *min_text, size_t *out)
{
	char show[CONF_SHOW_MAX * 4 + 8];

	if (n->kind != NODE_SCALAR)
		return node_fail(x, n, "must be a size or 'none', got %s",
		    node_what(n));
	if (strcmp(n->text, "none") == 0) {
		*out = 0;
		return 0;
	}
	if (conf_parse_size(n->text, out) != 0)
		return node_fail(x, n,
		    "must be a size (16MiB, 512MiB, 2GiB, 500MB) or 'none', "
		    "got '%s'", node_show(n, show, sizeof(show)));
	if (*out < min)
		return node_fail(x, n,
		    "must be 'none' or at least %s, got '%s'", min_text,
		    node_show(n, show, sizeof(show)));
	return 0;
}

/* Take n as a boolean: true, True, TRUE, false, False or FALSE (quoted
 * or not, as integers are). */
static int
want_bool(struct ctx *x, const struct node *n, int *out)
{
	static const char *const yes[] = { "true", "True", "TRUE" };
	static const char *const no[] = { "false", "False", "FALSE" };
	char                     show[CONF_SHOW_MAX * 4 + 8];

	if (n->kind != NODE_SCALAR)
		return node_fail(x, n, "must be true or false, got %s",
		    node_what(n));
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(n->text, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcmp(n->text, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return node_fail(x, n, "must be true or false, got '%s'",
	    node_show(n, show, sizeof(show)));
}

/* Whether s is a name: 1..CONF_MAX_NAME of [A-Za-z0-9_.-], not "." or
 * "..". */
static bool
name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > CONF_MAX_NAME || strcmp(s, ".") == 0 ||
	    strcmp(s, "..") == 0)
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                 "0123456789_.-") == n;
}

/* Take n as a name (cluster or group) into *out. */
static int
want_name(struct ctx *x, const struct node *n, char **out)
{
	char show[CONF_SHOW_MAX * 4 + 8];

	if (want_string(x, n, out) != 0)
		return -1;
	if (!name_ok(*out))
		return node_fail(x, n,
		    "bad name '%s': use 1 to %d of A-Z a-z 0-9 _ . - (and "
		    "not '.' or '..')",
		    node_show(n, show, sizeof(show)), CONF_MAX_NAME);
	return 0;
}

/* Check a URL; for_dial refuses wildcard hosts.  On error writes why. */
static int
url_check(const char *u, bool for_dial, char *why, size_t len)
{
	static const char *const schemes[] = { "tcp", "tcp4", "tcp6", "ipc",
		"abstract", "inproc", "tls+tcp", NULL };
	const char *sep = strstr(u, "://");
	const char *scheme = NULL;
	const char *rest;
	const char *port;
	size_t      slen;

	for (const char *p = u; *p != '\0'; p++) {
		unsigned char ch = (unsigned char) *p;
		if (isspace(ch) || iscntrl(ch)) {
			snprintf(why, len,
			    "URL contains a space or control character");
			return -1;
		}
	}
	if (sep == NULL) {
		snprintf(why, len,
		    "not a URL (write e.g. tcp://127.0.0.1:7710 or "
		    "ipc:///tmp/ferry.sock)");
		return -1;
	}
	slen = (size_t) (sep - u);
	for (size_t i = 0; schemes[i] != NULL && scheme == NULL; i++) {
		if (strlen(schemes[i]) == slen &&
		    strncmp(u, schemes[i], slen) == 0)
			scheme = schemes[i];
	}
	if (scheme == NULL) {
		snprintf(why, len,
		    "unknown URL scheme '%.*s' (use tcp, tcp4, tcp6, ipc, "
		    "abstract, inproc or tls+tcp)",
		    (int) (slen > CONF_SHOW_MAX ? CONF_SHOW_MAX : slen), u);
		return -1;
	}
	rest = sep + 3;
	if (*rest == '\0') {
		snprintf(why, len, "nothing after '%s://'", scheme);
		return -1;
	}
	if (strcmp(scheme, "ipc") == 0 || strcmp(scheme, "abstract") == 0) {
		if (strlen(rest) > CONF_IPC_MAX) {
			snprintf(why, len,
			    "socket path is %zu bytes, longer than the %d a "
			    "Unix socket allows",
			    strlen(rest), CONF_IPC_MAX);
			return -1;
		}
		return 0;
	}
	if (strcmp(scheme, "inproc") == 0)
		return 0;
	/* tcp, tcp4, tcp6, tls+tcp: HOST:PORT or [V6]:PORT */
	if (*rest == '[') {
		const char *close = strchr(rest, ']');
		if (close == NULL || close[1] != ':') {
			snprintf(why, len, "bad [IPv6]:PORT address");
			return -1;
		}
		port = close + 2;
	} else if ((port = strrchr(rest, ':')) != NULL) {
		port++;
	} else {
		snprintf(why, len, "missing ':PORT' after the host");
		return -1;
	}
	if (strlen(port) == 0 || strlen(port) > 5 ||
	    strspn(port, "0123456789") != strlen(port) || atoi(port) < 1 ||
	    atoi(port) > 65535) {
		snprintf(why, len,
		    "the port must be a number from 1 to 65535");
		return -1;
	}
	if (for_dial && (rest[0] == ':' || rest[0] == '*')) {
		snprintf(why, len,
		    "a wildcard host cannot be dialed; name the host workers "
		    "and clients connect to");
		return -1;
	}
	return 0;
}

/*
 * Copy scalar n into *out (malloc'd) with every ${FERRY_RUNTIME_DIR}
 * replaced by this user's runtime directory; that directory goes into rt
 * (rtlen bytes; "" when n does not name it).  Any other "${" is an
 * error: a value is never expanded silently in one way or another.
 */
static int
expand_runtime(struct ctx *x, const struct node *n, char **out, char *rt,
    size_t rtlen)
{
	const size_t tl = strlen(RUNTIME_TOKEN);
	const char  *p = n->text, *at;
	char        *s;
	size_t       len = 0, cap;

	rt[0] = '\0';
	if (strstr(p, "${") == NULL) {
		if ((*out = strdup(p)) == NULL)
			return node_fail(x, n, "out of memory");
		return 0;
	}
	if (strstr(p, RUNTIME_TOKEN) != NULL &&
	    util_runtime_dir(rt, rtlen) != 0) {
		const char *own = getenv("FERRY_RUNTIME_DIR");
		char        show[CONF_SHOW_MAX * 4 + 8];
		size_t      at_show = 0;

		show[0] = '\0';
		if (errno == EINVAL && own != NULL) {
			escape_into(show, sizeof(show), &at_show, own,
			    strlen(own), CONF_SHOW_MAX);
			return node_fail(x, n,
			    "%s: the environment variable FERRY_RUNTIME_DIR "
			    "is '%s', not an absolute path",
			    RUNTIME_TOKEN, show);
		}
		return node_fail(x, n,
		    "%s: the runtime directory's path is too long (set "
		    "FERRY_RUNTIME_DIR to a shorter directory)",
		    RUNTIME_TOKEN);
	}
	cap = strlen(p) + 1;
	for (at = strstr(p, RUNTIME_TOKEN); at != NULL;
	     at = strstr(at + tl, RUNTIME_TOKEN))
		cap += strlen(rt);
	if ((s = malloc(cap)) == NULL)
		return node_fail(x, n, "out of memory");
	while (*p != '\0') {
		if (strncmp(p, RUNTIME_TOKEN, tl) == 0) {
			memcpy(s + len, rt, strlen(rt));
			len += strlen(rt);
			p += tl;
		} else if (p[0] == '$' && p[1] == '{') {
			char   show[CONF_SHOW_MAX * 4 + 8];
			size_t at_show = 0, k = strcspn(p, "}");

			show[0] = '\0';
			escape_into(show, sizeof(show), &at_show, p,
			    p[k] == '}' ? k + 1 : k, CONF_SHOW_MAX);
			free(s);
			return node_fail(x, n,
			    "unknown placeholder '%s': only %s is expanded",
			    show, RUNTIME_TOKEN);
		} else
			s[len++] = *p++;
	}
	s[len] = '\0';
	*out = s;
	return 0;
}

/* Take n as a URL (see url_check), ${FERRY_RUNTIME_DIR} expanded, into
 * *out. */
static int
want_url(struct ctx *x, const struct node *n, bool for_dial, char **out)
{
	char  why[160];
	char  show[CONF_SHOW_MAX * 4 + 8];
	char  rt[CONF_IPC_MAX + 64];
	char *s = NULL;

	if (n->kind != NODE_SCALAR || node_is_null(n))
		return node_fail(x, n, "must be a URL, got %s", node_what(n));
	if (expand_runtime(x, n, &s, rt, sizeof(rt)) != 0)
		return -1;
	if (url_check(s, for_dial, why, sizeof(why)) != 0) {
		free(s);
		if (rt[0] != '\0')
			return node_fail(x, n,
			    "bad URL '%s': %s (%s is '%s' here; set "
			    "FERRY_RUNTIME_DIR to a shorter directory, or "
			    "write the address out)",
			    node_show(n, show, sizeof(show)), why,
			    RUNTIME_TOKEN, rt);
		return node_fail(x, n, "bad URL '%s': %s",
		    node_show(n, show, sizeof(show)), why);
	}
	free(*out);
	*out = s;
	return 0;
}

/* The optional "cluster" mapping. */
static int
load_cluster(struct ctx *x, const struct node *m, struct conf *c)
{
	static const char *const keys[] = { "name", "state_dir", NULL };
	const struct node       *v;
	size_t                   old;

	if (m->kind != NODE_MAP)
		return node_fail(x, m, "must be a mapping, got %s",
		    node_what(m));
	if (map_only(x, m, keys) != 0)
		return -1;
	if ((v = map_get(m, "name")) != NULL) {
		old = path_push(x, "name", 4);
		if (want_name(x, v, &c->name) != 0)
			return -1;
		path_pop(x, old);
	}
	if ((v = map_get(m, "state_dir")) != NULL) {
		char rt[4096];

		old = path_push(x, "state_dir", 9);
		if (want_string(x, v, &c->state_dir) != 0)
			return -1;
		free(c->state_dir);
		c->state_dir = NULL;
		if (expand_runtime(x, v, &c->state_dir, rt, sizeof(rt)) != 0)
			return -1;
		if (c->state_dir[0] != '/') {
			char  *abs;
			size_t n = strlen(c->dir) + strlen(c->state_dir) + 2;
			if ((abs = malloc(n)) == NULL)
				return node_fail(x, v, "out of memory");
			snprintf(abs, n, "%s/%s", c->dir, c->state_dir);
			free(c->state_dir);
			c->state_dir = abs;
		}
		path_pop(x, old);
	}
	return 0;
}

/* scheduler.listen: one URL or a list of 1..CONF_MAX_LISTEN. */
static int
load_listen(struct ctx *x, const struct node *v, struct conf *c)
{
	for (size_t i = 0; i < c->n_listen; i++) {
		free(c->listen[i]);
		c->listen[i] = NULL;
	}
	c->n_listen = 0;
	if (v->kind == NODE_SCALAR) {
		if (want_url(x, v, false, &c->listen[0]) != 0)
			return -1;
		c->n_listen = 1;
		return 0;
	}
	if (v->kind != NODE_SEQ)
		return node_fail(x, v,
		    "must be a URL or a list of URLs, got %s", node_what(v));
	if (v->n_kids == 0)
		return node_fail(x, v, "must list at least one URL");
	for (size_t i = 0; i < v->n_kids; i++) {
		const struct node *u = v->kids[i];
		size_t             old;

		if (i == CONF_MAX_LISTEN)
			return node_fail(x, u, "too many URLs (at most %d)",
			    CONF_MAX_LISTEN);
		old = path_index(x, i);
		if (want_url(x, u, false, &c->listen[i]) != 0)
			return -1;
		c->n_listen = i + 1;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(c->listen[j], c->listen[i]) == 0)
				return node_fail(x, u,
				    "URL listed twice (also at index %zu)", j);
		}
		path_pop(x, old);
	}
	return 0;
}

/* scheduler.task_defaults: the failure options of tasks whose submit
 * entry does not set them (docs/protocol.md section 4.13). */
static int
load_task_defaults(struct ctx *x, const struct node *m, struct conf *c)
{
	static const char *const keys[] = { "retries", "retry_backoff",
		"retry_backoff_max", "timeout", "retry_errors", NULL };
	const struct node       *v;
	const struct node       *bo;
	const struct node       *bo_max;
	size_t                   old;
	long long                ll;

	if (m->kind != NODE_MAP)
		return node_fail(x, m,
		    "must be a mapping (retries, retry_backoff, "
		    "retry_backoff_max, timeout, retry_errors), got %s",
		    node_what(m));
	if (map_only(x, m, keys) != 0)
		return -1;

	if ((v = map_get(m, "retries")) != NULL) {
		old = path_push(x, "retries", 7);
		if (want_int(x, v, 0, CONF_MAX_RETRIES,
		        "an integer between 0 and 1000", &ll) != 0)
			return -1;
		c->task_retries = (uint32_t) ll;
		path_pop(x, old);
	}
	if ((bo = map_get(m, "retry_backoff")) != NULL) {
		old = path_push(x, "retry_backoff", 13);
		if (want_duration_max(x, bo, CONF_MAX_BACKOFF, "24h", false,
		        &c->task_backoff_ms) != 0)
			return -1;
		path_pop(x, old);
	}
	if ((bo_max = map_get(m, "retry_backoff_max")) != NULL) {
		old = path_push(x, "retry_backoff_max", 17);
		if (want_duration_max(x, bo_max, CONF_MAX_BACKOFF, "24h",
		        false, &c->task_backoff_max_ms) != 0)
			return -1;
		path_pop(x, old);
	}
	if (c->task_backoff_max_ms < c->task_backoff_ms) {
		if (bo_max != NULL) {
			path_push(x, "retry_backoff_max", 17);
			return node_fail(x, bo_max,
			    "must be at least retry_backoff (%" PRIu32
			    " ms%s), got %" PRIu32 " ms",
			    c->task_backoff_ms,
			    bo == NULL ? ", the default" : "",
			    c->task_backoff_max_ms);
		}
		path_push(x, "retry_backoff", 13);
		return node_fail(x, bo,
		    "must not be more than retry_backoff_max (%" PRIu32
		    " ms, the default); set retry_backoff_max too",
		    c->task_backoff_max_ms);
	}
	if ((v = map_get(m, "timeout")) != NULL) {
		old = path_push(x, "timeout", 7);
		if (want_duration_max(x, v, CONF_MAX_TIMEOUT,
		        "2147483647ms (about 24 days)", true,
		        &c->task_timeout_ms) != 0)
			return -1;
		path_pop(x, old);
	}
	if ((v = map_get(m, "retry_errors")) != NULL) {
		old = path_push(x, "retry_errors", 12);
		if (want_bool(x, v, &c->task_retry_errors) != 0)
			return -1;
		path_pop(x, old);
	}
	return 0;
}

/* The required "scheduler" mapping. */
static int want_host(struct ctx *x, const struct node *n, char **out);

static int
load_scheduler(struct ctx *x, const struct node *m, struct conf *c)
{
	static const char *const keys[] = { "listen", "address",
		"heartbeat_interval", "heartbeat_timeout", "connect_timeout",
		"drain_timeout", "max_message_size", "max_queue",
		"max_results", "result_ttl", "max_result_bytes",
		"quarantine_after", "task_defaults", "host", "function_wait",
		"unknown_function_wait", NULL };
	const struct {
		const char *key;
		uint32_t   *dst;
		uint32_t    min;
	} durations[] = {
		{ "heartbeat_interval", &c->heartbeat_interval_ms, 1 },
		{ "heartbeat_timeout", &c->heartbeat_timeout_ms, 1 },
		{ "connect_timeout", &c->connect_timeout_ms, 1 },
		{ "drain_timeout", &c->drain_timeout_ms, 0 },
		{ "result_ttl", &c->result_ttl_ms, 0 },
		{ "function_wait", &c->function_wait_ms, 0 },
		{ "unknown_function_wait", &c->unknown_function_wait_ms, 0 },
	};
	const struct {
		const char *key;
		size_t     *dst;
	} counts[] = {
		{ "max_queue", &c->max_queue },
		{ "max_results", &c->max_results },
	};
	const long long count_max =
	    SIZE_MAX < LLONG_MAX ? (long long) SIZE_MAX : LLONG_MAX;
	const struct node *v;
	const struct node *hb_int;
	const struct node *hb_to;
	size_t             old;
	long long          ll;

	if (m->kind != NODE_MAP)
		return node_fail(x, m, "must be a mapping, got %s",
		    node_what(m));
	if (map_only(x, m, keys) != 0)
		return -1;

	if ((v = map_get(m, "listen")) == NULL)
		return missing(x, m, "listen",
		    "a URL or a list of URLs the scheduler binds");
	old = path_push(x, "listen", 6);
	if (load_listen(x, v, c) != 0)
		return -1;
	path_pop(x, old);

	old = path_push(x, "address", 7);
	if ((v = map_get(m, "address")) != NULL) {
		if (want_url(x, v, true, &c->address) != 0)
			return -1;
	} else {
		char why[160];
		if (url_check(c->listen[0], true, why, sizeof(why)) != 0)
			return node_fail(x, m,
			    "missing, and listen[0] '%s' cannot stand in for "
			    "it: %s",
			    c->listen[0], why);
		free(c->address);
		if ((c->address = strdup(c->listen[0])) == NULL)
			return node_fail(x, m, "out of memory");
	}
	path_pop(x, old);

	for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]);
	     i++) {
		if ((v = map_get(m, durations[i].key)) == NULL)
			continue;
		old = path_push(x, durations[i].key,
		    strlen(durations[i].key));
		if (want_duration(x, v, durations[i].min,
		        durations[i].dst) != 0)
			return -1;
		path_pop(x, old);
	}
	hb_int = map_get(m, "heartbeat_interval");
	hb_to = map_get(m, "heartbeat_timeout");
	if (c->heartbeat_timeout_ms <= c->heartbeat_interval_ms) {
		if (hb_to != NULL) {
			path_push(x, "heartbeat_timeout", 17);
			return node_fail(x, hb_to,
			    "must be greater than heartbeat_interval (%" PRIu32
			    " ms), got %" PRIu32 " ms",
			    c->heartbeat_interval_ms, c->heartbeat_timeout_ms);
		}
		path_push(x, "heartbeat_interval", 18);
		return node_fail(x, hb_int,
		    "must be less than heartbeat_timeout (%" PRIu32
		    " ms, the default); set heartbeat_timeout too",
		    c->heartbeat_timeout_ms);
	}

	if ((v = map_get(m, "max_message_size")) != NULL) {
		old = path_push(x, "max_message_size", 16);
		if (want_size(x, v, CONF_MIN_MESSAGE, "64KiB",
		        &c->max_message_size) != 0)
			return -1;
		path_pop(x, old);
	}
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		if ((v = map_get(m, counts[i].key)) == NULL)
			continue;
		old = path_push(x, counts[i].key, strlen(counts[i].key));
		if (want_int(x, v, 1, count_max, "a positive integer", &ll) !=
		    0)
			return -1;
		*counts[i].dst = (size_t) ll;
		path_pop(x, old);
	}
	if ((v = map_get(m, "max_result_bytes")) != NULL) {
		old = path_push(x, "max_result_bytes", 16);
		if (want_size(x, v, CONF_MIN_RESULT_BYTES, "64KiB",
		        &c->max_result_bytes) != 0)
			return -1;
		path_pop(x, old);
	}
	if ((v = map_get(m, "quarantine_after")) != NULL) {
		old = path_push(x, "quarantine_after", 16);
		if (want_int(x, v, 1, CONF_MAX_QUARANTINE,
		        "an integer between 1 and 100", &ll) != 0)
			return -1;
		c->quarantine_after = (uint32_t) ll;
		path_pop(x, old);
	}
	if ((v = map_get(m, "task_defaults")) != NULL) {
		old = path_push(x, "task_defaults", 13);
		if (load_task_defaults(x, v, c) != 0)
			return -1;
		path_pop(x, old);
	}
	if ((v = map_get(m, "host")) != NULL) {
		old = path_push(x, "host", 4);
		if (want_host(x, v, &c->scheduler_host) != 0)
			return -1;
		path_pop(x, old);
	}
	return 0;
}

/* A group's "libraries": a list of 1..CONF_MAX_LIBRARIES strings. */
static int
load_libraries(struct ctx *x, const struct node *v, struct conf_group *g)
{
	if (v->kind != NODE_SEQ)
		return node_fail(x, v,
		    "must be a list of library names or paths, got %s",
		    node_what(v));
	if (v->n_kids == 0)
		return node_fail(x, v, "must list at least one library");
	for (size_t i = 0; i < v->n_kids; i++) {
		const struct node *l = v->kids[i];
		size_t             old;

		if (i == CONF_MAX_LIBRARIES)
			return node_fail(x, l,
			    "too many libraries (at most %d)",
			    CONF_MAX_LIBRARIES);
		old = path_index(x, i);
		if (want_string(x, l, &g->libraries[i]) != 0)
			return -1;
		g->n_libraries = i + 1;
		for (const char *p = l->text; *p != '\0'; p++) {
			if (iscntrl((unsigned char) *p))
				return node_fail(x, l,
				    "contains a control character");
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(g->libraries[j], g->libraries[i]) == 0)
				return node_fail(x, l,
				    "library listed twice (also at index "
				    "%zu)", j);
		}
		path_pop(x, old);
	}
	return 0;
}

/* A group's "object_roots": 1..CONF_MAX_ROOTS directories; relative ones
 * resolve against the cluster file's directory.  Whether they exist is
 * checked where the workers run, not here. */
static int
load_roots(struct ctx *x, const struct node *v, const struct conf *c,
    struct conf_group *g)
{
	if (v->kind != NODE_SEQ)
		return node_fail(x, v, "must be a list of directories, got %s",
		    node_what(v));
	for (size_t i = 0; i < v->n_kids; i++) {
		const struct node *r = v->kids[i];
		size_t             old;
		char              *s = NULL;

		if (i == CONF_MAX_ROOTS)
			return node_fail(x, r,
			    "too many object roots (at most %d)",
			    CONF_MAX_ROOTS);
		old = path_index(x, i);
		if (want_string(x, r, &s) != 0)
			return -1;
		if (s[0] == '\0') {
			free(s);
			return node_fail(x, r, "must not be empty");
		}
		if (s[0] != '/') {
			size_t n   = strlen(c->dir) + strlen(s) + 2;
			char  *abs = malloc(n);
			if (abs == NULL) {
				free(s);
				return node_fail(x, r, "out of memory");
			}
			snprintf(abs, n, "%s/%s", c->dir, s);
			free(s);
			s = abs;
		}
		g->object_roots[i] = s;
		g->n_object_roots  = i + 1;
		path_pop(x, old);
	}
	return 0;
}

/* A host name as ssh takes it: host, user@host, an IPv4 or [IPv6]
 * address; never starting with '-' (ssh would read an option). */
static int
want_host(struct ctx *x, const struct node *n, char **out)
{
	char   show[CONF_SHOW_MAX * 4 + 8];
	size_t len;

	if (want_string(x, n, out) != 0)
		return -1;
	len = strlen(*out);
	if (len > 255 || (*out)[0] == '-' ||
	    strspn(*out, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                 "0123456789_.-@:[]%") != len)
		return node_fail(x, n,
		    "bad host name '%s': use 1 to 255 of A-Z a-z 0-9 _ . - @ "
		    ": [ ] %%, not starting with '-'",
		    node_show(n, show, sizeof(show)));
	return 0;
}

/* A path used on another machine: absolute, no control characters. */
static int
want_remote_path(struct ctx *x, const struct node *n, bool absolute,
    char **out)
{
	if (want_string(x, n, out) != 0)
		return -1;
	for (const char *p = *out; *p != '\0'; p++) {
		if (iscntrl((unsigned char) *p))
			return node_fail(x, n, "contains a control character");
	}
	if (absolute && (*out)[0] != '/')
		return node_fail(x, n,
		    "must be an absolute path (it is used on that host), got "
		    "'%s'", *out);
	return 0;
}

/* One entry of a group's "hosts": a name, or a mapping with name and
 * overrides. */
static int
load_host(struct ctx *x, const struct node *m, struct conf_host *h)
{
	static const char *const keys[] = { "name", "ferry", "object_roots",
		"libraries", "library_dir", NULL };
	const struct node       *v;
	size_t                   old;

	if (m->kind == NODE_SCALAR)
		return want_host(x, m, &h->name);
	if (m->kind != NODE_MAP)
		return node_fail(x, m,
		    "must be a host name or a mapping (name, ferry, "
		    "object_roots, libraries, library_dir), got %s",
		    node_what(m));
	if (map_only(x, m, keys) != 0)
		return -1;
	if ((v = map_get(m, "name")) == NULL)
		return missing(x, m, "name", "the host's name, as ssh takes it");
	old = path_push(x, "name", 4);
	if (want_host(x, v, &h->name) != 0)
		return -1;
	path_pop(x, old);
	if ((v = map_get(m, "ferry")) != NULL) {
		old = path_push(x, "ferry", 5);
		if (want_remote_path(x, v, false, &h->ferry) != 0)
			return -1;
		path_pop(x, old);
	}
	if ((v = map_get(m, "library_dir")) != NULL) {
		old = path_push(x, "library_dir", 11);
		if (want_remote_path(x, v, true, &h->library_dir) != 0)
			return -1;
		path_pop(x, old);
	}
	if ((v = map_get(m, "libraries")) != NULL) {
		struct conf_group tmp;
		int               rv;

		memset(&tmp, 0, sizeof(tmp));
		old = path_push(x, "libraries", 9);
		rv  = load_libraries(x, v, &tmp);
		memcpy(h->libraries, tmp.libraries, sizeof(h->libraries));
		h->n_libraries = tmp.n_libraries;
		if (rv != 0) {
			/* conf_free frees up to n_libraries */
			for (size_t i = h->n_libraries; i < CONF_MAX_LIBRARIES;
			     i++)
				free(tmp.libraries[i]);
			return -1;
		}
		path_pop(x, old);
	}
	if ((v = map_get(m, "object_roots")) != NULL) {
		old = path_push(x, "object_roots", 12);
		if (v->kind != NODE_SEQ)
			return node_fail(x, v,
			    "must be a list of directories, got %s",
			    node_what(v));
		if (v->n_kids == 0)
			return node_fail(x, v,
			    "must list at least one directory (leave the key "
			    "out to use the group's)");
		for (size_t i = 0; i < v->n_kids; i++) {
			size_t o2;

			if (i == CONF_MAX_ROOTS)
				return node_fail(x, v->kids[i],
				    "too many object roots (at most %d)",
				    CONF_MAX_ROOTS);
			o2 = path_index(x, i);
			if (want_remote_path(x, v->kids[i], true,
			        &h->object_roots[i]) != 0) {
				h->n_object_roots = i + 1;
				return -1;
			}
			h->n_object_roots = i + 1;
			path_pop(x, o2);
		}
		path_pop(x, old);
	}
	return 0;
}

/* A group's "hosts": 1..CONF_MAX_HOSTS distinct hosts. */
static int
load_hosts(struct ctx *x, const struct node *v, struct conf_group *g)
{
	if (v->kind != NODE_SEQ)
		return node_fail(x, v,
		    "must be a list of hosts (names or mappings), got %s",
		    node_what(v));
	if (v->n_kids == 0)
		return node_fail(x, v,
		    "must list at least one host (leave the key out to run "
		    "the group on this machine)");
	if (v->n_kids > CONF_MAX_HOSTS)
		return node_fail(x, v->kids[CONF_MAX_HOSTS],
		    "too many hosts (at most %d)", CONF_MAX_HOSTS);
	if ((g->hosts = calloc(v->n_kids, sizeof(*g->hosts))) == NULL)
		return node_fail(x, v, "out of memory");
	for (size_t i = 0; i < v->n_kids; i++) {
		size_t old = path_index(x, i);

		g->n_hosts = i + 1;
		if (load_host(x, v->kids[i], &g->hosts[i]) != 0)
			return -1;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(g->hosts[j].name, g->hosts[i].name) == 0)
				return node_fail(x, v->kids[i],
				    "host '%s' listed twice (also at index "
				    "%zu)", g->hosts[i].name, j);
		}
		path_pop(x, old);
	}
	return 0;
}

/* The top-level "ssh" mapping: command and default remote binary. */
static int
load_ssh(struct ctx *x, const struct node *m, struct conf *c)
{
	static const char *const keys[] = { "command", "ferry", NULL };
	const struct node       *v;
	size_t                   old;

	if (m->kind != NODE_MAP)
		return node_fail(x, m, "must be a mapping (command, ferry), "
		                       "got %s",
		    node_what(m));
	if (map_only(x, m, keys) != 0)
		return -1;
	if ((v = map_get(m, "command")) != NULL) {
		old = path_push(x, "command", 7);
		if (v->kind != NODE_SEQ)
			return node_fail(x, v,
			    "must be a list: the program and its options "
			    "(e.g. [ssh, -o, BatchMode=yes]), got %s",
			    node_what(v));
		if (v->n_kids == 0)
			return node_fail(x, v,
			    "must name at least the program");
		if (v->n_kids > CONF_MAX_SSH_ARGS)
			return node_fail(x, v->kids[CONF_MAX_SSH_ARGS],
			    "too many words (at most %d)", CONF_MAX_SSH_ARGS);
		for (size_t i = 0; i < c->n_ssh_command; i++) {
			free(c->ssh_command[i]);
			c->ssh_command[i] = NULL;
		}
		c->n_ssh_command = 0;
		for (size_t i = 0; i < v->n_kids; i++) {
			size_t o2 = path_index(x, i);

			if (want_remote_path(x, v->kids[i], false,
			        &c->ssh_command[i]) != 0) {
				c->n_ssh_command = i + 1;
				return -1;
			}
			c->n_ssh_command = i + 1;
			path_pop(x, o2);
		}
		path_pop(x, old);
	}
	if ((v = map_get(m, "ferry")) != NULL) {
		old = path_push(x, "ferry", 5);
		if (want_remote_path(x, v, false, &c->ssh_ferry) != 0)
			return -1;
		path_pop(x, old);
	}
	return 0;
}

/* One entry of "workers"; names[] holds the earlier groups' name nodes
 * for the duplicate check. */
static int
load_group(struct ctx *x, const struct node *m, struct conf *c,
    const struct node **names)
{
	static const char *const keys[] = { "name", "processes", "slots",
		"prefetch", "libraries", "object_roots", "object_cache",
		"memory_limit", "max_tasks_per_process", "hosts", NULL };
	struct conf_group       *g = &c->groups[c->n_groups];
	const struct node       *v;
	size_t                   old;
	long long                ll;

	if (m->kind != NODE_MAP)
		return node_fail(x, m,
		    "must be a mapping (name, processes, slots, prefetch, "
		    "libraries), got %s",
		    node_what(m));
	if (map_only(x, m, keys) != 0)
		return -1;
	c->n_groups++; /* g now belongs to c, for conf_free */
	g->processes = 0;
	g->slots = 1;
	g->prefetch = 1024;

	if ((v = map_get(m, "name")) == NULL)
		return missing(x, m, "name", "a unique group name");
	old = path_push(x, "name", 4);
	if (want_name(x, v, &g->name) != 0)
		return -1;
	for (size_t i = 0; i + 1 < c->n_groups; i++) {
		if (strcmp(c->groups[i].name, g->name) == 0)
			return node_fail(x, v,
			    "duplicate group name '%s' (first at line %zu, "
			    "column %zu)",
			    g->name, names[i]->line, names[i]->col);
	}
	names[c->n_groups - 1] = v;
	path_pop(x, old);

	if ((v = map_get(m, "processes")) != NULL) {
		old = path_push(x, "processes", 9);
		if (v->kind == NODE_SCALAR && strcmp(v->text, "auto") == 0)
			g->processes = 0;
		else if (want_int(x, v, 1, CONF_MAX_PROCESSES,
		             "'auto' or an integer between 1 and 1024",
		             &ll) != 0)
			return -1;
		else
			g->processes = (int) ll;
		path_pop(x, old);
	}
	if ((v = map_get(m, "slots")) != NULL) {
		old = path_push(x, "slots", 5);
		if (want_int(x, v, 1, CONF_MAX_SLOTS,
		        "an integer between 1 and 1024", &ll) != 0)
			return -1;
		g->slots = (int) ll;
		path_pop(x, old);
	}
	if ((v = map_get(m, "prefetch")) != NULL) {
		old = path_push(x, "prefetch", 8);
		if (want_int(x, v, 0, CONF_MAX_PREFETCH,
		        "an integer between 0 and 100000", &ll) != 0)
			return -1;
		g->prefetch = (int) ll;
		path_pop(x, old);
	}
	if ((v = map_get(m, "libraries")) == NULL)
		return missing(x, m, "libraries",
		    "a list of task library names or paths");
	old = path_push(x, "libraries", 9);
	if (load_libraries(x, v, g) != 0)
		return -1;
	path_pop(x, old);
	if ((v = map_get(m, "object_roots")) != NULL) {
		old = path_push(x, "object_roots", 12);
		if (load_roots(x, v, c, g) != 0)
			return -1;
		path_pop(x, old);
	}
	if ((v = map_get(m, "object_cache")) != NULL) {
		old = path_push(x, "object_cache", 12);
		if (v->kind == NODE_SCALAR && strcmp(v->text, "auto") == 0)
			g->object_cache = 0;
		else if (want_size(x, v, 1024 * 1024, "1MiB",
		             &g->object_cache) != 0)
			return -1;
		path_pop(x, old);
	}
	if ((v = map_get(m, "memory_limit")) != NULL) {
		old = path_push(x, "memory_limit", 12);
		if (want_size_or_none(x, v, CONF_MIN_MEMORY_LIMIT, "16MiB",
		        &g->memory_limit) != 0)
			return -1;
		path_pop(x, old);
	}
	if ((v = map_get(m, "max_tasks_per_process")) != NULL) {
		old = path_push(x, "max_tasks_per_process", 21);
		if (want_int(x, v, 0, LLONG_MAX,
		        "an integer of 0 (unlimited) or more", &ll) != 0)
			return -1;
		g->max_tasks_per_process = (uint64_t) ll;
		path_pop(x, old);
	}
	if ((v = map_get(m, "hosts")) != NULL) {
		old = path_push(x, "hosts", 5);
		if (load_hosts(x, v, g) != 0)
			return -1;
		path_pop(x, old);
	}
	return 0;
}

/* The required "workers" list. */
static int
load_workers(struct ctx *x, const struct node *v, struct conf *c)
{
	const struct node *names[CONF_MAX_GROUPS];

	if (v->kind != NODE_SEQ)
		return node_fail(x, v,
		    "must be a list of worker groups, got %s", node_what(v));
	if (v->n_kids == 0)
		return node_fail(x, v, "must list at least one worker group");
	for (size_t i = 0; i < v->n_kids; i++) {
		size_t old;

		if (i == CONF_MAX_GROUPS)
			return node_fail(x, v->kids[i],
			    "too many worker groups (at most %d)",
			    CONF_MAX_GROUPS);
		old = path_index(x, i);
		if (load_group(x, v->kids[i], c, names) != 0)
			return -1;
		path_pop(x, old);
	}
	return 0;
}

/* A path in the security section: a non-empty string without control
 * characters; relative ones resolve against the cluster file's
 * directory. */
static int
want_local_path(struct ctx *x, const struct node *n, const struct conf *c,
    char **out)
{
	char *s = NULL;

	if (want_string(x, n, &s) != 0)
		return -1;
	*out = s;
	if (s[0] == '\0')
		return node_fail(x, n, "must not be empty");
	for (const char *p = s; *p != '\0'; p++) {
		if (iscntrl((unsigned char) *p))
			return node_fail(x, n, "contains a control character");
	}
	if (s[0] != '/') {
		size_t len = strlen(c->dir) + strlen(s) + 2;
		char  *abs = malloc(len);
		if (abs == NULL)
			return node_fail(x, n, "out of memory");
		snprintf(abs, len, "%s/%s", c->dir, s);
		free(s);
		*out = abs;
	}
	return 0;
}

/* The optional "security" mapping: token_file and tls. */
static int
load_security(struct ctx *x, const struct node *m, struct conf *c)
{
	static const char *const keys[] = { "token_file", "tls", NULL };
	static const char *const tls_keys[] = { "cert_key_file", "ca_file",
		"require_client_cert", "client_cert_key_file", "server_name",
		NULL };
	const struct node       *v, *t;
	size_t                   old, old2;

	if (m->kind != NODE_MAP)
		return node_fail(x, m, "must be a mapping (token_file, tls), "
		                       "got %s",
		    node_what(m));
	if (map_only(x, m, keys) != 0)
		return -1;
	if ((v = map_get(m, "token_file")) != NULL) {
		old = path_push(x, "token_file", 10);
		if (want_local_path(x, v, c, &c->token_file) != 0)
			return -1;
		path_pop(x, old);
	}
	if ((t = map_get(m, "tls")) == NULL)
		return 0;
	old = path_push(x, "tls", 3);
	if (t->kind != NODE_MAP)
		return node_fail(x, t,
		    "must be a mapping (cert_key_file, ca_file, "
		    "require_client_cert, client_cert_key_file, server_name), "
		    "got %s",
		    node_what(t));
	if (map_only(x, t, tls_keys) != 0)
		return -1;
	if ((v = map_get(t, "cert_key_file")) != NULL) {
		old2 = path_push(x, "cert_key_file", 13);
		if (want_local_path(x, v, c, &c->tls_cert_key_file) != 0)
			return -1;
		path_pop(x, old2);
	}
	if ((v = map_get(t, "ca_file")) != NULL) {
		old2 = path_push(x, "ca_file", 7);
		if (want_local_path(x, v, c, &c->tls_ca_file) != 0)
			return -1;
		path_pop(x, old2);
	}
	if ((v = map_get(t, "client_cert_key_file")) != NULL) {
		old2 = path_push(x, "client_cert_key_file", 20);
		if (want_local_path(x, v, c, &c->tls_client_cert_key_file) !=
		    0)
			return -1;
		path_pop(x, old2);
	}
	if ((v = map_get(t, "server_name")) != NULL) {
		old2 = path_push(x, "server_name", 11);
		if (want_string(x, v, &c->tls_server_name) != 0)
			return -1;
		if (c->tls_server_name[0] == '\0' ||
		    strlen(c->tls_server_name) > 255)
			return node_fail(x, v, "must be a host name of 1 to "
			                       "255 bytes");
		path_pop(x, old2);
	}
	if ((v = map_get(t, "require_client_cert")) != NULL) {
		old2 = path_push(x, "require_client_cert", 19);
		if (want_bool(x, v, &c->tls_require_client_cert) != 0)
			return -1;
		if (c->tls_require_client_cert && c->tls_ca_file == NULL)
			return node_fail(x, v,
			    "needs 'ca_file' (the CA that signed the client "
			    "certificates)");
		path_pop(x, old2);
	}
	path_pop(x, old);
	return 0;
}

/* The top-level mapping. */
static int
load_root(struct ctx *x, const struct node *root, struct conf *c)
{
	static const char *const keys[] = { "cluster", "log_level",
		"scheduler", "workers", "ssh", "security", NULL };
	const struct node       *v;
	size_t                   old;

	if (root == NULL)
		return ctx_fail(x, 1, 1,
		    "the file is empty; a cluster file is a mapping with at "
		    "least 'scheduler' and 'workers'");
	if (root->kind != NODE_MAP)
		return node_fail(x, root,
		    "the top level must be a mapping with 'scheduler' and "
		    "'workers', got %s",
		    node_what(root));
	if (map_only(x, root, keys) != 0)
		return -1;

	if ((v = map_get(root, "cluster")) != NULL) {
		old = path_push(x, "cluster", 7);
		if (load_cluster(x, v, c) != 0)
			return -1;
		path_pop(x, old);
	}
	if ((v = map_get(root, "log_level")) != NULL) {
		char show[CONF_SHOW_MAX * 4 + 8];
		int  lvl;

		old = path_push(x, "log_level", 9);
		if (v->kind != NODE_SCALAR)
			return node_fail(x, v,
			    "must be error, warn, info or debug, got %s",
			    node_what(v));
		if ((lvl = log_level_parse(v->text)) < 0)
			return node_fail(x, v,
			    "must be error, warn, info or debug, got '%s'",
			    node_show(v, show, sizeof(show)));
		c->log_level = lvl;
		path_pop(x, old);
	}
	if ((v = map_get(root, "scheduler")) == NULL)
		return missing(x, root, "scheduler",
		    "a mapping with at least 'listen'");
	old = path_push(x, "scheduler", 9);
	if (load_scheduler(x, v, c) != 0)
		return -1;
	path_pop(x, old);

	if ((v = map_get(root, "security")) != NULL) {
		old = path_push(x, "security", 8);
		if (load_security(x, v, c) != 0)
			return -1;
		path_pop(x, old);
	}
	if ((v = map_get(root, "ssh")) != NULL) {
		old = path_push(x, "ssh", 3);
		if (load_ssh(x, v, c) != 0)
			return -1;
		path_pop(x, old);
	}
	if ((v = map_get(root, "workers")) == NULL)
		return missing(x, root, "workers",
		    "a list of worker groups");
	old = path_push(x, "workers", 7);
	if (load_workers(x, v, c) != 0)
		return -1;
	path_pop(x, old);
	return 0;
}

/* Read the whole file into *buf (at most CONF_MAX_FILE bytes). */
static int
read_file(struct ctx *x, const char *path, char **buf, size_t *len)
{
	FILE  *f;
	char  *b = NULL;
	size_t cap = 0;
	size_t n = 0;
	int    e = 0;

	if ((f = fopen(path, "rb")) == NULL)
		return ctx_fail_file(x, "cannot open: %s", strerror(errno));
	for (;;) {
		size_t got;

		if (n == cap) {
			char *nb;
			cap = cap == 0 ? 4096 : cap * 2;
			if (cap > CONF_MAX_FILE + 1)
				cap = CONF_MAX_FILE + 1;
			if ((nb = realloc(b, cap)) == NULL) {
				e = ENOMEM;
				break;
			}
			b = nb;
		}
		got = fread(b + n, 1, cap - n, f);
		n += got;
		if (got == 0 || n > CONF_MAX_FILE) {
			if (ferror(f))
				e = errno != 0 ? errno : EIO;
			break;
		}
	}
	fclose(f);
	if (e != 0) {
		free(b);
		return ctx_fail_file(x, "cannot read: %s", strerror(e));
	}
	if (n > CONF_MAX_FILE) {
		free(b);
		return ctx_fail_file(x,
		    "larger than %d bytes; is this a cluster file?",
		    CONF_MAX_FILE);
	}
	*buf = b;
	*len = n;
	return 0;
}

/* Set c->path (absolute) and c->dir from path. */
static int
set_paths(struct ctx *x, const char *path, struct conf *c)
{
	char *slash;

	if ((c->path = realpath(path, NULL)) == NULL)
		return ctx_fail_file(x, "cannot resolve path: %s",
		    strerror(errno));
	if ((c->dir = strdup(c->path)) == NULL)
		return ctx_fail_file(x, "out of memory");
	slash = strrchr(c->dir, '/');
	if (slash == c->dir)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	return 0;
}

void
conf_defaults(struct conf *c)
{
	memset(c, 0, sizeof(*c));
	c->name = strdup("local");
	c->log_level = LOG_INFO;
	/* no listen address or address: a cluster file names them (the
	 * shipped ones in this user's runtime directory, RUNTIME_TOKEN) */
	c->heartbeat_interval_ms = 1000;
	c->heartbeat_timeout_ms = 5000;
	c->connect_timeout_ms = 10000;
	c->drain_timeout_ms = 30000;
	c->unknown_function_wait_ms = 30000;
	c->max_message_size = (size_t) 64 * 1024 * 1024;
	c->max_queue = 1000000;
	c->max_results = 1000000;
	c->result_ttl_ms = 600000;
	c->max_result_bytes = (size_t) 1024 * 1024 * 1024;
	c->quarantine_after = 3;
	c->task_retries = 3;
	c->task_backoff_ms = 100;
	c->task_backoff_max_ms = 10000;
	c->task_timeout_ms = 0;
	c->task_retry_errors = 0;
	{
		static const char *const ssh[] = { "ssh", "-o",
			"BatchMode=yes", "-o", "ConnectTimeout=10" };
		for (size_t i = 0; i < sizeof(ssh) / sizeof(ssh[0]); i++)
			if ((c->ssh_command[i] = strdup(ssh[i])) != NULL)
				c->n_ssh_command = i + 1;
	}
	c->ssh_ferry = strdup("ferry");
}

int
conf_load(const char *path, struct conf *c, char *err, size_t errlen)
{
	struct ctx    x;
	struct node  *root = NULL;
	char         *buf = NULL;
	size_t        len = 0;
	yaml_parser_t p;
	bool          have_parser = false;
	int           rv = -1;

	memset(&x, 0, sizeof(x));
	x.file = path != NULL ? path : "(null)";
	x.err = err;
	x.errlen = errlen;
	if (err != NULL && errlen > 0)
		err[0] = '\0';

	conf_defaults(c);
	if (c->name == NULL) {
		ctx_fail_file(&x, "out of memory");
		goto out;
	}
	if (path == NULL) {
		ctx_fail_file(&x, "no cluster file given");
		goto out;
	}
	if (read_file(&x, path, &buf, &len) != 0 ||
	    set_paths(&x, path, c) != 0)
		goto out;
	if (!yaml_parser_initialize(&p)) {
		ctx_fail_file(&x, "out of memory");
		goto out;
	}
	have_parser = true;
	yaml_parser_set_input_string(&p, (const unsigned char *) buf, len);
	if (tree_build(&x, &p, buf, len, &root) != 0)
		goto out;
	if (root != NULL && tree_check(&x, root) != 0)
		goto out;
	if (load_root(&x, root, c) != 0)
		goto out;
	rv = 0;
out:
	if (have_parser)
		yaml_parser_delete(&p);
	node_free(root);
	free(buf);
	if (rv != 0) {
		conf_free(c);
		/* Every path to here wrote a message; be sure of it. */
		if (err != NULL && errlen > 0 && err[0] == '\0')
			snprintf(err, errlen, "%s: cannot load", x.file);
	}
	return rv;
}

void
conf_free(struct conf *c)
{
	if (c == NULL)
		return;
	free(c->path);
	free(c->dir);
	free(c->name);
	free(c->state_dir);
	for (size_t i = 0; i < CONF_MAX_LISTEN; i++)
		free(c->listen[i]);
	free(c->address);
	for (size_t i = 0; i < CONF_MAX_GROUPS; i++) {
		struct conf_group *g = &c->groups[i];
		free(g->name);
		for (size_t j = 0; j < CONF_MAX_LIBRARIES; j++)
			free(g->libraries[j]);
		for (size_t j = 0; j < g->n_object_roots; j++)
			free(g->object_roots[j]);
		for (size_t j = 0; j < g->n_hosts; j++) {
			struct conf_host *h = &g->hosts[j];
			free(h->name);
			free(h->ferry);
			free(h->library_dir);
			for (size_t k = 0; k < h->n_object_roots; k++)
				free(h->object_roots[k]);
			for (size_t k = 0; k < h->n_libraries; k++)
				free(h->libraries[k]);
		}
		free(g->hosts);
	}
	free(c->scheduler_host);
	free(c->token_file);
	free(c->tls_cert_key_file);
	free(c->tls_ca_file);
	free(c->tls_client_cert_key_file);
	free(c->tls_server_name);
	for (size_t i = 0; i < CONF_MAX_SSH_ARGS; i++)
		free(c->ssh_command[i]);
	free(c->ssh_ferry);
	memset(c, 0, sizeof(*c));
}

int
conf_parse_duration(const char *s, uint32_t *ms)
{
	static const struct {
		const char *unit;
		uint64_t    mult;
	} units[] = {
		{ "", 1 },
		{ "ms", 1 },
		{ "s", 1000 },
		{ "m", 60 * 1000 },
		{ "h", 60 * 60 * 1000 },
	};
	uint64_t v = 0;

	if (s == NULL || !isdigit((unsigned char) *s))
		return -1;
	for (; isdigit((unsigned char) *s); s++) {
		v = v * 10 + (uint64_t) (*s - '0');
		if (v > UINT32_MAX)
			return -1;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(s, units[i].unit) != 0)
			continue;
		if (v * units[i].mult > UINT32_MAX)
			return -1;
		*ms = (uint32_t) (v * units[i].mult);
		return 0;
	}
	return -1;
}

int
conf_parse_size(const char *s, size_t *bytes)
{
	static const struct {
		const char *unit;
		uint64_t    mult;
	} units[] = {
		{ "", 1 },
		{ "B", 1 },
		{ "KiB", 1024 },
		{ "MiB", 1024 * 1024 },
		{ "GiB", 1024 * 1024 * 1024 },
		{ "kB", 1000 },
		{ "MB", 1000 * 1000 },
		{ "GB", 1000 * 1000 * 1000 },
	};
	uint64_t v = 0;

	if (s == NULL || !isdigit((unsigned char) *s))
		return -1;
	for (; isdigit((unsigned char) *s); s++) {
		uint64_t d = (uint64_t) (*s - '0');
		if (v > (SIZE_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(s, units[i].unit) != 0)
			continue;
		if (v > SIZE_MAX / units[i].mult)
			return -1;
		*bytes = (size_t) (v * units[i].mult);
		return 0;
	}
	return -1;
}

int
conf_state_dir(const struct conf *c, char *buf, size_t len)
{
	const char *name = c->name != NULL ? c->name : "local";
	int         n;

	if (buf == NULL || len == 0)
		return -1;
	if (c->state_dir != NULL)
		n = snprintf(buf, len, "%s", c->state_dir);
	else {
		char rt[4096];

		if (util_runtime_dir(rt, sizeof(rt)) != 0) {
			buf[0] = '\0';
			return -1;
		}
		n = snprintf(buf, len, "%s/%s", rt, name);
	}
	if (n < 0 || (size_t) n >= len) {
		buf[0] = '\0';
		return -1;
	}
	return 0;
}

const struct conf_group *
conf_group_find(const struct conf *c, const char *name)
{
	if (c == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < c->n_groups; i++) {
		if (c->groups[i].name != NULL &&
		    strcmp(c->groups[i].name, name) == 0)
			return &c->groups[i];
	}
	return NULL;
}
