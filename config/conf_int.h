/*
 * conf_int.h - the cluster-file loader's private half: the YAML tree with
 * positions, the key path and the error messages (conf_tree.c), shared
 * with the schema (conf.c).
 */
#ifndef FERRY_CONF_INT_H
#define FERRY_CONF_INT_H

#include <stdbool.h>
#include <stddef.h>

#define CONF_PATH_MAX 256
#define CONF_SHOW_MAX 40 /* bytes of a bad value quoted in a message */
#define CONF_SHOW_BUF (CONF_SHOW_MAX * 4 + 8) /* node_show's buffer */

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

struct conf;

/* Where we are: the file, the error buffer, the current key path, and
 * the struct conf being filled. */
struct ctx {
	const char  *file;
	char        *err;
	size_t       errlen;
	char         path[CONF_PATH_MAX];
	size_t       path_len;
	size_t       n_nodes;
	struct conf *c;
};

/* Write "FILE:LINE:COLUMN: key 'PATH': PROBLEM" (or without the key when
 * there is no path) into the error buffer; return -1. */
int ctx_fail(struct ctx *x, size_t line, size_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ctx_fail at node n. */
int node_fail(struct ctx *x, const struct node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* An error that has no line: "FILE: PROBLEM"; returns -1. */
int ctx_fail_file(struct ctx *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Append s (len bytes) to buf, escaping control bytes and quotes and
 * cutting it at max bytes with "..."; buf holds size bytes. */
void escape_into(char *buf, size_t size, size_t *at, const char *s,
    size_t len, size_t max);

/* A printable, bounded copy of scalar n's text for a message (buf of
 * CONF_SHOW_BUF bytes). */
const char *node_show(const struct node *n, char *buf, size_t size);

/* Append ".key" (or "key" at the top) / "[i]" to the path; each returns
 * the old length for path_pop(), which cuts the path back to it. */
size_t path_push(struct ctx *x, const char *key, size_t len);
size_t path_index(struct ctx *x, size_t i);
void   path_pop(struct ctx *x, size_t old);

/* Whether n is a YAML null: an empty plain scalar, "~" or "null". */
bool node_is_null(const struct node *n);

/* What n is, for "got ..." in messages ("a list"). */
const char *node_what(const struct node *n);

/* The value of key in mapping m, or NULL when absent or null. */
const struct node *map_get(const struct node *m, const char *key);

/*
 * Read the file at path (at most 1 MiB) into a tree at *root (NULL for
 * an empty file), refusing what no key accepts anywhere: a second
 * document, deep nesting, anchors, aliases, duplicate or non-scalar
 * mapping keys, NUL bytes.  Returns 0, or -1 with the error written.
 * The caller frees *root with node_free(), also on error.
 */
int tree_load(struct ctx *x, const char *path, struct node **root);

/* Free a node and everything below it (NULL is fine). */
void node_free(struct node *n);

#endif
