/*
 * conf_value.c - the values of a cluster file: how each kind of value
 * (integer, duration, size, boolean, one of a few words, string, list of
 * strings) is read from a YAML node into the struct a key names, freed,
 * and shown as a default; and the strings' own rules (names, URLs,
 * paths).
 */
#include "conf.h"
#include "conf_int.h"

#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The one placeholder the loader expands (in scheduler.listen,
 * scheduler.address, scheduler.journal.path and cluster.state_dir): this
 * user's runtime directory, util_runtime_dir(). */
#define RUNTIME_TOKEN "${FERRY_RUNTIME_DIR}"

/* The value of a string (or string list element) at base + off. */
char *
str_get(const void *base, size_t off)
{
	char *s;

	memcpy(&s, (const char *) base + off, sizeof(s));
	return s;
}

void
str_put(void *base, size_t off, char *s)
{
	memcpy((char *) base + off, &s, sizeof(s));
}

/* An unsigned integer of size 4 or 8 at base + off. */
static uint64_t
uint_get(const void *base, const struct key *k)
{
	uint32_t u32;
	uint64_t u64;

	if (k->size == sizeof(u32)) {
		memcpy(&u32, (const char *) base + k->off, sizeof(u32));
		return u32;
	}
	memcpy(&u64, (const char *) base + k->off, sizeof(u64));
	return u64;
}

static void
uint_put(void *base, const struct key *k, uint64_t v)
{
	uint32_t u32 = (uint32_t) v;

	if (k->size == sizeof(u32))
		memcpy((char *) base + k->off, &u32, sizeof(u32));
	else
		memcpy((char *) base + k->off, &v, sizeof(v));
}

/* Take n as a non-empty string into a fresh *out. */
int
want_string(struct ctx *x, const struct node *n, char **out)
{
	if (n->kind != NODE_SCALAR || node_is_null(n))
		return node_fail(x, n, "must be a string, got %s",
		    node_what(n));
	if (n->len == 0)
		return node_fail(x, n, "must not be empty");
	if ((*out = strdup(n->text)) == NULL)
		return node_fail(x, n, "out of memory");
	return 0;
}

/* Refuse a control character in s (n's text). */
static int
no_control(struct ctx *x, const struct node *n, const char *s)
{
	for (const char *p = s; *p != '\0'; p++) {
		if (iscntrl((unsigned char) *p))
			return node_fail(x, n, "contains a control character");
	}
	return 0;
}

/* Make *s absolute against the directory base. */
static int
make_absolute(struct ctx *x, const struct node *n, const char *base,
    char **s)
{
	size_t len;
	char  *abs;

	if ((*s)[0] == '/')
		return 0;
	len = strlen(base) + strlen(*s) + 2;
	if ((abs = malloc(len)) == NULL)
		return node_fail(x, n, "out of memory");
	snprintf(abs, len, "%s/%s", base, *s);
	free(*s);
	*s = abs;
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

/* Whether scalar n is the word w ("auto", "none") that k allows (flag). */
static bool
is_word(const struct node *n, const struct key *k, unsigned flag,
    const char *w)
{
	return (k->flags & flag) && n->kind == NODE_SCALAR &&
	    strcmp(n->text, w) == 0;
}

/* An integer in [lo, hi] ("auto": 0 with F_AUTO). */
static int
read_int(struct ctx *x, const struct node *n, const struct key *k,
    void *base)
{
	char      show[CONF_SHOW_BUF];
	long long v = 0;

	if (is_word(n, k, F_AUTO, "auto")) {
		uint_put(base, k, 0);
		return 0;
	}
	if (n->kind != NODE_SCALAR)
		return node_fail(x, n, "must be %s, got %s", k->hint,
		    node_what(n));
	if (parse_ll(n->text, &v) != 0 || v < k->lo || v > k->hi)
		return node_fail(x, n, "must be %s, got '%s'", k->hint,
		    node_show(n, show, sizeof(show)));
	uint_put(base, k, (uint64_t) v);
	return 0;
}

static void
show_int(const struct key *k, const void *base, char *buf, size_t len)
{
	uint64_t v = uint_get(base, k);

	if (v == 0 && (k->flags & F_AUTO))
		snprintf(buf, len, "auto");
	else
		snprintf(buf, len, "%" PRIu64, v);
}

/* A duration in ms, at least lo and at most hi (hint says it; "none":
 * 0 with F_NONE). */
static int
read_duration(struct ctx *x, const struct node *n, const struct key *k,
    void *base)
{
	const char *alt = (k->flags & F_NONE) ? " or 'none'" : "";
	char        show[CONF_SHOW_BUF];
	uint32_t    ms = 0;

	if (n->kind != NODE_SCALAR)
		return node_fail(x, n, "must be a duration%s, got %s", alt,
		    node_what(n));
	node_show(n, show, sizeof(show));
	if (is_word(n, k, F_NONE, "none"))
		ms = 0;
	else if (conf_parse_duration(n->text, &ms) != 0)
		return node_fail(x, n,
		    "must be a duration%s (250ms, 5s, 2m, 1h or a number of "
		    "milliseconds up to %s), got '%s'",
		    alt, k->hint != NULL ? k->hint : "4294967295", show);
	else if (ms < k->lo)
		return node_fail(x, n, "must be greater than 0, got '%s'",
		    show);
	else if (k->hi > 0 && ms > k->hi)
		return node_fail(x, n, "must be at most %s, got '%s'",
		    k->hint, show);
	uint_put(base, k, ms);
	return 0;
}

static void
show_duration(const struct key *k, const void *base, char *buf,
    size_t len)
{
	static const struct {
		uint64_t    ms;
		const char *unit;
	} units[] = { { 3600000, "h" }, { 60000, "m" }, { 1000, "s" } };
	uint64_t ms = uint_get(base, k);

	if (ms == 0) {
		snprintf(buf, len, "%s", (k->flags & F_NONE) ? "none" : "0");
		return;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (ms % units[i].ms == 0) {
			snprintf(buf, len, "%" PRIu64 "%s", ms / units[i].ms,
			    units[i].unit);
			return;
		}
	}
	snprintf(buf, len, "%" PRIu64 "ms", ms);
}

/* A size in bytes of at least lo (hint says it; "auto" or "none": 0
 * with F_AUTO or F_NONE). */
static int
read_size(struct ctx *x, const struct node *n, const struct key *k,
    void *base)
{
	const bool none = (k->flags & F_NONE) != 0;
	char       show[CONF_SHOW_BUF];
	size_t     v = 0;

	if (n->kind != NODE_SCALAR)
		return node_fail(x, n, "must be a size%s, got %s",
		    none ? " or 'none'" : "", node_what(n));
	node_show(n, show, sizeof(show));
	if (is_word(n, k, F_AUTO, "auto") || is_word(n, k, F_NONE, "none"))
		v = 0;
	else if (conf_parse_size(n->text, &v) != 0)
		return node_fail(x, n, "must be a size %s, got '%s'",
		    none ? "(16MiB, 512MiB, 2GiB, 500MB) or 'none'"
		         : "(65536, 64KiB, 64MiB, 1GiB, 64MB)",
		    show);
	else if ((long long) v < k->lo)
		return node_fail(x, n, "must be %sat least %s, got '%s'",
		    none ? "'none' or " : "", k->hint, show);
	uint_put(base, k, v);
	return 0;
}

static void
show_size(const struct key *k, const void *base, char *buf, size_t len)
{
	static const char *const units[] = { "GiB", "MiB", "KiB" };
	uint64_t v = uint_get(base, k);

	if (v == 0 && (k->flags & (F_AUTO | F_NONE))) {
		snprintf(buf, len, "%s", (k->flags & F_AUTO) ? "auto" : "none");
		return;
	}
	for (size_t i = 0; i < 3; i++) {
		uint64_t unit = (uint64_t) 1 << (10 * (3 - i));
		if (v != 0 && v % unit == 0) {
			snprintf(buf, len, "%" PRIu64 "%s", v / unit, units[i]);
			return;
		}
	}
	snprintf(buf, len, "%" PRIu64, v);
}

/* true, True, TRUE, false, False or FALSE (quoted or not, as integers
 * are), into an int. */
static int
read_bool(struct ctx *x, const struct node *n, const struct key *k,
    void *base)
{
	static const char *const words[] = { "false", "False", "FALSE",
		"true", "True", "TRUE" };
	char                     show[CONF_SHOW_BUF];

	if (n->kind != NODE_SCALAR)
		return node_fail(x, n, "must be true or false, got %s",
		    node_what(n));
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (strcmp(n->text, words[i]) == 0) {
			uint_put(base, k, i >= 3);
			return 0;
		}
	}
	return node_fail(x, n, "must be true or false, got '%s'",
	    node_show(n, show, sizeof(show)));
}

static void
show_bool(const struct key *k, const void *base, char *buf, size_t len)
{
	snprintf(buf, len, "%s", uint_get(base, k) ? "true" : "false");
}

/* One of the words of k->sub (a struct choice), as its value. */
static int
read_choice(struct ctx *x, const struct node *n, const struct key *k,
    void *base)
{
	const struct choice *c = k->sub;
	char                 show[CONF_SHOW_BUF];
	int                  v;

	if (n->kind != NODE_SCALAR)
		return node_fail(x, n, "must be %s, got %s", c->words,
		    node_what(n));
	if ((v = c->parse(n->text)) < 0)
		return node_fail(x, n, "must be %s, got '%s'", c->words,
		    node_show(n, show, sizeof(show)));
	uint_put(base, k, (uint64_t) v);
	return 0;
}

static void
show_choice(const struct key *k, const void *base, char *buf, size_t len)
{
	const struct choice *c = k->sub;

	snprintf(buf, len, "%s", c->name((int) uint_get(base, k)));
}

/* A string key: k->str reads it, replacing the default. */
int
read_str(struct ctx *x, const struct node *n, const struct key *k,
    void *base)
{
	char *s = NULL;

	if (k->str(x, n, k, &s) != 0) {
		free(s);
		return -1;
	}
	free(str_get(base, k->off));
	str_put(base, k->off, s);
	return 0;
}

static void
free_str(const struct key *k, void *base)
{
	free(str_get(base, k->off));
	str_put(base, k->off, NULL);
}

static void
show_str(const struct key *k, const void *base, char *buf, size_t len)
{
	const char *s = str_get(base, k->off);

	snprintf(buf, len, "%s", s != NULL ? s : "");
}

/* Check list v's kind and length against l. */
int
list_check(struct ctx *x, const struct node *v, const struct list *l)
{
	if (v->kind != NODE_SEQ)
		return node_fail(x, v, "must be %s, got %s", l->kind,
		    node_what(v));
	if (v->n_kids == 0 && l->empty != NULL)
		return node_fail(x, v, "must %s", l->empty);
	if (v->n_kids > l->max)
		return node_fail(x, v->kids[l->max],
		    "too many %s (at most %zu)", l->many, l->max);
	return 0;
}

/* Whether string i of the list at base + off repeats an earlier one;
 * writes the earlier index into *j. */
static bool
list_repeats(const void *base, size_t off, size_t i, size_t *j)
{
	const char *s = str_get(base, off + i * sizeof(char *));

	for (*j = 0; *j < i; (*j)++) {
		if (strcmp(str_get(base, off + *j * sizeof(char *)), s) == 0)
			return true;
	}
	return false;
}

static void
free_strs(const struct key *k, void *base)
{
	const struct list *l = k->sub;
	size_t             zero = 0;

	for (size_t i = 0; i < l->max; i++) {
		free(str_get(base, k->off + i * sizeof(char *)));
		str_put(base, k->off + i * sizeof(char *), NULL);
	}
	memcpy((char *) base + k->n_off, &zero, sizeof(zero));
}

/* Element i of a list of strings: read by k->str, counted, and checked
 * against the earlier ones. */
static int
strs_put(struct ctx *x, const struct node *e, const struct key *k,
    void *base, size_t i)
{
	const struct list *l = k->sub;
	size_t             j, n = i + 1;
	char              *s = NULL;

	if (k->str(x, e, k, &s) != 0) {
		free(s);
		return -1;
	}
	str_put(base, k->off + i * sizeof(char *), s);
	memcpy((char *) base + k->n_off, &n, sizeof(n));
	if (l->dup != NULL && list_repeats(base, k->off, i, &j))
		return node_fail(x, e, "%s listed twice (also at index %zu)",
		    l->dup, j);
	return 0;
}

/* A list of strings replacing the default; with F_ONE a single string
 * stands for a list of one. */
static int
read_strs(struct ctx *x, const struct node *v, const struct key *k,
    void *base)
{
	free_strs(k, base);
	if (v->kind == NODE_SCALAR && (k->flags & F_ONE))
		return strs_put(x, v, k, base, 0);
	if (list_check(x, v, k->sub) != 0)
		return -1;
	for (size_t i = 0; i < v->n_kids; i++) {
		size_t old = path_index(x, i);

		if (strs_put(x, v->kids[i], k, base, i) != 0)
			return -1;
		path_pop(x, old);
	}
	return 0;
}

static void
show_strs(const struct key *k, const void *base, char *buf, size_t len)
{
	const struct list *l = k->sub;
	size_t             at = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < l->max && at + 1 < len; i++) {
		const char *s = str_get(base, k->off + i * sizeof(char *));
		if (s == NULL)
			break;
		at += (size_t) snprintf(buf + at, len - at, "%s%s",
		    i == 0 ? "[" : ", ", s);
	}
	if (at > 0 && at + 1 < len)
		snprintf(buf + at, len - at, "]");
}

/* ---------------------------------------------------------- strings */


/* Whether s is at most max bytes, each of chars. */
static bool
word_ok(const char *s, const char *chars, size_t max)
{
	size_t len = strlen(s);

	return len <= max && strspn(s, chars) == len;
}

/* A word of k->sub's kind (a struct word). */
int
str_word(struct ctx *x, const struct node *n, const struct key *k,
    char **out)
{
	const struct word *w = k->sub;
	char               show[CONF_SHOW_BUF];
	bool               ok;

	if (want_string(x, n, out) != 0)
		return -1;
	ok = word_ok(*out, w->chars, w->max) && (*out)[0] != w->bad_first;
	for (size_t i = 0; i < 2 && w->refused[i] != NULL; i++)
		ok = ok && strcmp(*out, w->refused[i]) != 0;
	if (ok)
		return 0;
	return node_fail(x, n, "bad %s '%s': use 1 to %zu of %s%s", w->what,
	    node_show(n, show, sizeof(show)), w->max, w->shown, w->tail);
}

/* Error at n for what needs this user's runtime directory, which
 * util_runtime_dir() just could not give (errno says why). */
static int
runtime_fail(struct ctx *x, const struct node *n, const char *what)
{
	const char *own = getenv("FERRY_RUNTIME_DIR");
	char        show[CONF_SHOW_BUF];
	size_t      at_show = 0;

	show[0] = '\0';
	if (errno == EINVAL && own != NULL) {
		escape_into(show, sizeof(show), &at_show, own, strlen(own),
		    CONF_SHOW_MAX);
		return node_fail(x, n,
		    "%s: the environment variable FERRY_RUNTIME_DIR is '%s', "
		    "not an absolute path",
		    what, show);
	}
	return node_fail(x, n,
	    "%s: the runtime directory's path is too long (set "
	    "FERRY_RUNTIME_DIR to a shorter directory)",
	    what);
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
	    util_runtime_dir(rt, rtlen) != 0)
		return runtime_fail(x, n, RUNTIME_TOKEN);
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
			char   show[CONF_SHOW_BUF];
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

/* A URL (util_url_problem(); F_DIAL: one to dial), with
 * ${FERRY_RUNTIME_DIR} expanded. */
int
str_url(struct ctx *x, const struct node *n, const struct key *k,
    char **out)
{
	char why[160];
	char show[CONF_SHOW_BUF];
	char rt[UTIL_IPC_MAX + 64];

	if (n->kind != NODE_SCALAR || node_is_null(n))
		return node_fail(x, n, "must be a URL, got %s", node_what(n));
	if (expand_runtime(x, n, out, rt, sizeof(rt)) != 0)
		return -1;
	if (util_url_problem(*out, (k->flags & F_DIAL) ? UTIL_URL_DIAL : 0,
	        why, sizeof(why)) == 0)
		return 0;
	if (rt[0] != '\0')
		return node_fail(x, n,
		    "bad URL '%s': %s (%s is '%s' here; set FERRY_RUNTIME_DIR "
		    "to a shorter directory, or write the address out)",
		    node_show(n, show, sizeof(show)), why, RUNTIME_TOKEN, rt);
	return node_fail(x, n, "bad URL '%s': %s",
	    node_show(n, show, sizeof(show)), why);
}

/*
 * A directory of this machine: a string, ${FERRY_RUNTIME_DIR} expanded,
 * made absolute against the cluster file's directory (cluster.state_dir)
 * or with F_STATE against the cluster's state directory
 * (scheduler.journal.path; the table reads cluster.name and
 * cluster.state_dir before it).
 */
int
str_dir(struct ctx *x, const struct node *n, const struct key *k,
    char **out)
{
	char rt[4096], state[4096];

	if (want_string(x, n, out) != 0)
		return -1;
	free(*out);
	*out = NULL;
	if (expand_runtime(x, n, out, rt, sizeof(rt)) != 0)
		return -1;
	if (!(k->flags & F_STATE))
		return make_absolute(x, n, x->c->dir, out);
	if (no_control(x, n, *out) != 0)
		return -1;
	errno = 0;
	if ((*out)[0] != '/' &&
	    conf_state_dir(x->c, state, sizeof(state)) != 0) {
		if (x->c->state_dir == NULL)
			return runtime_fail(x, n,
			    "a relative path is taken in the state directory "
			    "RUNTIME/NAME");
		return node_fail(x, n,
		    "a relative path is taken in cluster.state_dir, whose "
		    "path is too long");
	}
	return make_absolute(x, n, state, out);
}

/* A path, a library or a word of a command: no control characters;
 * with F_ABS absolute (it is used on another host); with F_LOCAL a
 * relative one resolves against the cluster file's directory.  Whether
 * it exists is checked where it is used. */
int
str_path(struct ctx *x, const struct node *n, const struct key *k,
    char **out)
{
	if (want_string(x, n, out) != 0 || no_control(x, n, *out) != 0)
		return -1;
	if ((k->flags & F_ABS) && (*out)[0] != '/')
		return node_fail(x, n,
		    "must be an absolute path (it is used on that host), got "
		    "'%s'", *out);
	return (k->flags & F_LOCAL) ? make_absolute(x, n, x->c->dir, out)
	                            : 0;
}

/* security.tls.server_name: 1 to 255 bytes. */
int
str_server_name(struct ctx *x, const struct node *n, const struct key *k,
    char **out)
{
	if (want_string(x, n, out) != 0)
		return -1;
	if (strlen(*out) > 255)
		return node_fail(x, n, "must be a host name of 1 to 255 bytes");
	return 0;
}

/* A unit of a number ("ms", "MiB") and what it multiplies by. */
struct unit {
	const char *name;
	uint64_t    mult;
};

/* All of s as digits and one of the n units into *out, at most max. */
static int
parse_units(const char *s, const struct unit *units, size_t n,
    uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (s == NULL || !isdigit((unsigned char) *s))
		return -1;
	for (; isdigit((unsigned char) *s); s++) {
		uint64_t d = (uint64_t) (*s - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(s, units[i].name) != 0)
			continue;
		if (v > max / units[i].mult)
			return -1;
		*out = v * units[i].mult;
		return 0;
	}
	return -1;
}

int
conf_parse_duration(const char *s, uint32_t *ms)
{
	static const struct unit units[] = { { "", 1 }, { "ms", 1 },
		{ "s", 1000 }, { "m", 60000 }, { "h", 3600000 } };
	uint64_t v;

	if (parse_units(s, units, sizeof(units) / sizeof(units[0]),
	        UINT32_MAX, &v) != 0)
		return -1;
	*ms = (uint32_t) v;
	return 0;
}

int
conf_parse_size(const char *s, size_t *bytes)
{
	static const struct unit units[] = { { "", 1 }, { "B", 1 },
		{ "KiB", 1 << 10 }, { "MiB", 1 << 20 }, { "GiB", 1 << 30 },
		{ "kB", 1000 }, { "MB", 1000000 }, { "GB", 1000000000 } };
	uint64_t v;

	if (parse_units(s, units, sizeof(units) / sizeof(units[0]), SIZE_MAX,
	        &v) != 0)
		return -1;
	*bytes = (size_t) v;
	return 0;
}

/* The journal's sync modes, by their SCHED_SYNC_* value. */
static const char *const sync_names[] = {
	[SCHED_SYNC_ALWAYS] = "always",
	[SCHED_SYNC_BATCH]  = "batch",
	[SCHED_SYNC_NONE]   = "none",
};
#define N_SYNC (sizeof(sync_names) / sizeof(sync_names[0]))

int
conf_parse_sync(const char *s)
{
	for (size_t i = 0; s != NULL && i < N_SYNC; i++) {
		if (strcmp(s, sync_names[i]) == 0)
			return (int) i;
	}
	return -1;
}

const char *
conf_sync_name(int mode)
{
	return mode >= 0 && (size_t) mode < N_SYNC ? sync_names[mode] : "?";
}

const struct type t_int = { read_int, NULL, show_int };
const struct type t_duration = { read_duration, NULL, show_duration };
const struct type t_size = { read_size, NULL, show_size };
const struct type t_bool = { read_bool, NULL, show_bool };
const struct type t_choice = { read_choice, NULL, show_choice };
const struct type t_str = { read_str, free_str, show_str };
const struct type t_strs = { read_strs, free_strs, show_strs };
