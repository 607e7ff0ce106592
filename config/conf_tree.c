/*
 * conf_tree.c - a cluster file as a tree of YAML nodes with positions.
 *
 * The file is read whole (at most CONF_MAX_FILE bytes) and turned into a
 * small tree of nodes with libyaml's event API, so that every node keeps
 * its line and column and so that anchors, aliases and extra documents can
 * be refused.  One generic pass then checks what is wrong whatever the key
 * (aliases, duplicate keys, NUL bytes).  The messages name FILE:LINE:COLUMN
 * and the key as a path ("scheduler.listen[1]", "workers[0].slots").
 */
#include "conf_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#define CONF_MAX_FILE (1024 * 1024) /* bytes in a cluster file */
#define CONF_MAX_DEPTH 16           /* nesting of lists and mappings */
#define CONF_MAX_NODES 100000       /* scalars, lists and mappings */
#define CONF_MAX_KEYS 256           /* keys in one mapping */

/* Write the message after a prefix of n bytes already in the error
 * buffer (n < 0 or too long: nothing more fits); returns -1. */
static int
ctx_vfail(struct ctx *x, int n, const char *fmt, va_list ap)
{
	if (n >= 0 && (size_t) n < x->errlen)
		vsnprintf(x->err + n, x->errlen - (size_t) n, fmt, ap);
	return -1;
}

int
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
	va_start(ap, fmt);
	ctx_vfail(x, n, fmt, ap);
	va_end(ap);
	return -1;
}

int
node_fail(struct ctx *x, const struct node *n, const char *fmt, ...)
{
	char    msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return ctx_fail(x, n->line, n->col, "%s", msg);
}

int
ctx_fail_file(struct ctx *x, const char *fmt, ...)
{
	va_list ap;

	if (x->err == NULL || x->errlen == 0)
		return -1;
	va_start(ap, fmt);
	ctx_vfail(x, snprintf(x->err, x->errlen, "%s: ", x->file), fmt, ap);
	va_end(ap);
	return -1;
}

/* Append s (len bytes) to buf, escaping control bytes and quotes and
 * cutting it at max bytes with "..."; buf holds size bytes. */
void
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
const char *
node_show(const struct node *n, char *buf, size_t size)
{
	size_t at = 0;

	buf[0] = '\0';
	escape_into(buf, size, &at, n->text, n->len, CONF_SHOW_MAX);
	return buf;
}

/* Append ".key" (or "key" at the top) to the path; returns the old
 * length for path_pop. */
size_t
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
size_t
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
void
path_pop(struct ctx *x, size_t old)
{
	x->path_len = old;
	x->path[old] = '\0';
}

/* path_push() of a key name. */
size_t
path_key(struct ctx *x, const char *key)
{
	return path_push(x, key, strlen(key));
}

/* Free a node and everything below it. */
void
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
bool
node_is_null(const struct node *n)
{
	if (n->kind != NODE_SCALAR || !n->plain)
		return false;
	return n->len == 0 || strcmp(n->text, "~") == 0 ||
	    strcmp(n->text, "null") == 0 || strcmp(n->text, "Null") == 0 ||
	    strcmp(n->text, "NULL") == 0;
}

/* What n is, for "got ..." in messages. */
const char *
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
const struct node *
map_get(const struct node *m, const char *key)
{
	for (size_t i = 0; i + 1 < m->n_kids; i += 2) {
		if (strcmp(m->kids[i]->text, key) == 0)
			return node_is_null(m->kids[i + 1]) ? NULL
			                                    : m->kids[i + 1];
	}
	return NULL;
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

int
tree_load(struct ctx *x, const char *path, struct node **root)
{
	yaml_parser_t p;
	char         *buf = NULL;
	size_t        len = 0;
	int           rv;

	*root = NULL;
	if (read_file(x, path, &buf, &len) != 0)
		return -1;
	if (!yaml_parser_initialize(&p)) {
		free(buf);
		return ctx_fail_file(x, "out of memory");
	}
	yaml_parser_set_input_string(&p, (const unsigned char *) buf, len);
	rv = tree_build(x, &p, buf, len, root);
	if (rv == 0 && *root != NULL)
		rv = tree_check(x, *root);
	yaml_parser_delete(&p);
	free(buf);
	return rv;
}
