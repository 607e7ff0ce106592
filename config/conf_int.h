/*
 * conf_int.h - the cluster-file loader's private half: the YAML tree with
 * positions, the key path and the error messages (conf_tree.c), shared
 * with the schema (conf.c).
 */
#ifndef FERRY_CONF_INT_H
#define FERRY_CONF_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* ---- the schema's parts (conf.c holds the table, conf_value.c the
 * values) ---- */

struct key;

/* A kind of value: how it is read from node v into the section's struct
 * at base, freed, and shown as a default (free and show may be NULL). */
struct type {
	int  (*read)(struct ctx *x, const struct node *v, const struct key *k,
	    void *base);
	void (*free)(const struct key *k, void *base);
	void (*show)(const struct key *k, const void *base, char *buf,
	    size_t len);
};

/* Read one string (of a string key or a list of strings) into *out,
 * malloc'd; the caller frees *out also on failure. */
typedef int str_fn(struct ctx *x, const struct node *v, const struct key *k,
    char **out);

enum key_flags {
	F_REQUIRED = 1,  /* absent or empty is an error */
	F_AUTO     = 2,  /* "auto" stands for 0 */
	F_NONE     = 4,  /* "none" stands for 0 */
	F_ONE      = 8,  /* a list may be written as its one element */
	F_ABS      = 16, /* paths for another host: must be absolute */
	F_DIAL     = 32, /* a URL to dial: no wildcard host */
	F_ALLOC    = 64, /* a list of mappings: allocated, not an array */
	F_LOCAL    = 128, /* a path here: relative to the file's directory */
	F_STATE    = 256, /* a directory: relative to the cluster's state
	                   * directory (conf_state_dir) */
};

struct key {
	const char        *name;
	const struct type *type;
	str_fn            *str;    /* strings and lists of strings */
	size_t             off;    /* the value's place in the section's
	                            * struct */
	size_t             size;   /* and its size (integers: 4 or 8) */
	size_t             n_off;  /* lists: their count's place */
	long long          lo, hi; /* numbers: bounds (durations: hi 0 is
	                            * none) */
	const char        *hint;   /* what a number must be ("an integer
	                            * between 1 and 1024"), a duration's
	                            * most or a size's least, as messages
	                            * say it; for a required key what
	                            * "required key missing (expected ...)"
	                            * says */
	unsigned           flags;  /* enum key_flags */
	const void        *sub;    /* mappings and lists of them: their
	                            * struct section; lists of strings:
	                            * their struct list */
	const char        *doc;    /* the default as the docs write it,
	                            * when it is not a value to show */
};

/* A mapping of the file: its keys, in the order the messages list them
 * and the loader reads them. */
struct section {
	const struct key *keys;
	size_t            n_keys;
	const char       *hint; /* "must be HINT, got ..." */
	/* rules across keys, checked after the keys are read */
	int (*check)(struct ctx *x, const struct node *m, void *base);
};

/* A value that is one of a few words (log_level, scheduler.journal.sync),
 * kept as an int. */
struct choice {
	int         (*parse)(const char *s); /* the word's value, or -1 */
	const char *(*name)(int v);          /* the value's word */
	const char   *words; /* "must be WORDS, got ..." */
};

/* A list of the file and its messages. */
struct list {
	const char *kind;  /* "must be KIND, got a mapping" */
	const char *empty; /* "must EMPTY" (NULL: may be empty) */
	const char *many;  /* "too many MANY (at most MAX)" */
	const char *dup;   /* "DUP listed twice (also at index I)" (NULL:
	                    * may repeat) */
	size_t      max;
};

#define ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

/* What a word (a name, a host name) may be, and how messages say it. */
struct word {
	const char *what;      /* "name" */
	const char *chars;     /* the bytes it may hold */
	const char *shown;     /* them, as the message lists them */
	size_t      max;       /* bytes at most */
	const char *refused[2]; /* words it may not be */
	char        bad_first; /* a byte it may not start with, or 0 */
	const char *tail;      /* the message's end, saying those */
};


/* The value of a string (or of element i of a string list: off + i *
 * sizeof(char *)) in the struct at base; str_put replaces it (without
 * freeing the old one). */
char *str_get(const void *base, size_t off);
void  str_put(void *base, size_t off, char *s);

/* path_push() of a key name. */
size_t path_key(struct ctx *x, const char *key);

/* Take n as a non-empty string into a fresh *out (malloc'd). */
int want_string(struct ctx *x, const struct node *n, char **out);

/* Check list v's kind and length against l. */
int list_check(struct ctx *x, const struct node *v, const struct list *l);

/* The kinds of values (conf_value.c). */
extern const struct type t_int;      /* an integer in [lo, hi] (F_AUTO) */
extern const struct type t_duration; /* ms in [lo, hi] (F_NONE) */
extern const struct type t_size;     /* bytes, at least lo (F_AUTO,
                                      * F_NONE) */
extern const struct type t_bool;     /* true or false, into an int */
extern const struct type t_choice;   /* one of k->sub's words (a struct
                                      * choice), into an int */
extern const struct type t_str;      /* a string read by k->str */
extern const struct type t_strs;     /* a list of them (k->sub a struct
                                      * list; F_ONE) */

/* A string key's value (k->str of a t_str key) into base. */
int read_str(struct ctx *x, const struct node *n, const struct key *k,
    void *base);

/* Readers of one string (str_fn): a word of kind k->sub (a struct word);
 * a URL (F_DIAL), ${FERRY_RUNTIME_DIR} expanded; a directory of this
 * machine (expanded, made absolute against the file's directory, or with
 * F_STATE the state directory's); a path, library or command word (F_ABS,
 * F_LOCAL); a TLS server name. */
str_fn str_word, str_url, str_dir, str_path, str_server_name;

#endif
