/*
 * conf.c - the cluster file's schema: one table of keys from which the
 * loader reads, frees and documents struct conf.
 *
 * Three files: conf_tree.c turns the file into a tree of YAML nodes with
 * positions and writes the messages; conf_value.c reads one value of
 * each kind (integer, duration, size, string, URL, path, list); here
 * every mapping of the file is a section, a table of keys, each with its
 * kind, where its value goes in the section's struct, its bounds, the
 * hint its messages give, and what the documentation says where the
 * default is not a value (a required key, a mapping).  The defaults are
 * the structs' own (SCHED_CONFIG_DEFAULTS, WRK_OPTIONS_DEFAULTS,
 * conf_defaults()); conf_key() shows them, and tests/unit/test_conf.c
 * holds docs/configuration.md to the table.  Every error names
 * FILE:LINE:COLUMN and the key as a path ("scheduler.listen[1]",
 * "workers[0].slots").
 */
#include "conf.h"
#include "conf_int.h"

#include "log.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONF_MAX_NAME 64             /* cluster and group names */
#define CONF_MAX_BACKOFF 86400000u   /* 24h, as the wire allows */
#define CONF_MAX_TIMEOUT 2147483647u /* ms, as the wire allows */
#define KIB ((long long) 1024)
#define MIB (KIB * 1024)
#define COUNT_MAX                                                        \
	(SIZE_MAX < LLONG_MAX ? (long long) SIZE_MAX : LLONG_MAX)

/* Error for a required key absent from mapping m, or present with an
 * empty value (reported at the key). */
static int
missing(struct ctx *x, const struct node *m, const char *key,
    const char *what)
{
	path_key(x, key);
	for (size_t i = 0; i + 1 < m->n_kids; i += 2) {
		if (strcmp(m->kids[i]->text, key) == 0)
			return node_fail(x, m->kids[i],
			    "required, but the value is empty (expected %s)",
			    what);
	}
	return node_fail(x, m, "required key missing (expected %s)", what);
}

/* -------------------------------------------------------- mappings */

/* Refuse keys of mapping m that section sec does not have. */
static int
keys_only(struct ctx *x, const struct node *m, const struct section *sec)
{
	for (size_t i = 0; i + 1 < m->n_kids; i += 2) {
		const struct node *k = m->kids[i];
		char               list[400]; /* every key of the largest
		                                  * section, with room */
		size_t             at = 0;
		bool               found = false;

		for (size_t j = 0; j < sec->n_keys && !found; j++)
			found = strcmp(k->text, sec->keys[j].name) == 0;
		if (found)
			continue;
		list[0] = '\0';
		for (size_t j = 0; j < sec->n_keys; j++) {
			int w = snprintf(list + at, sizeof(list) - at, "%s%s",
			    j > 0 ? ", " : "", sec->keys[j].name);
			if (w < 0 || (size_t) w >= sizeof(list) - at)
				break;
			at += (size_t) w;
		}
		path_push(x, k->text, k->len);
		return node_fail(x, k, "unknown key (expected one of: %s)",
		    list);
	}
	return 0;
}

/* Mapping m into base by section sec: unknown keys first, then each key
 * in the table's order, then the rules across them. */
static int
section_read(struct ctx *x, const struct node *m, const struct section *sec,
    void *base)
{
	if (m->kind != NODE_MAP)
		return node_fail(x, m, "must be %s, got %s", sec->hint,
		    node_what(m));
	if (keys_only(x, m, sec) != 0)
		return -1;
	for (size_t i = 0; i < sec->n_keys; i++) {
		const struct key  *k = &sec->keys[i];
		const struct node *v = map_get(m, k->name);
		size_t             old;

		if (v == NULL && (k->flags & F_REQUIRED))
			return missing(x, m, k->name, k->hint);
		if (v == NULL)
			continue;
		old = path_key(x, k->name);
		if (k->type->read(x, v, k, base) != 0)
			return -1;
		path_pop(x, old);
	}
	return sec->check != NULL ? sec->check(x, m, base) : 0;
}

/* Free what the keys of sec own in base. */
static void
section_free(const struct section *sec, void *base)
{
	for (size_t i = 0; i < sec->n_keys; i++) {
		if (sec->keys[i].type->free != NULL)
			sec->keys[i].type->free(&sec->keys[i], base);
	}
}

static int
read_map(struct ctx *x, const struct node *v, const struct key *k,
    void *base)
{
	return section_read(x, v, k->sub, base);
}

static void
free_map(const struct key *k, void *base)
{
	section_free(k->sub, base);
}

/* A list of mappings into an array of structs: groups, hosts.  With
 * F_ONE an element may be written as its name alone. */
struct maps {
	struct list           list;
	const struct section *sec;      /* of one element; its first key is
	                                 * the element's name */
	size_t                size;     /* of one element's struct */
	size_t                name_off; /* of its name, unique in the list */
	void (*init)(void *e);          /* an element before its keys */
	/* error for the name of element i repeating element j's */
	int (*dup)(struct ctx *x, const struct node *v, size_t i, size_t j,
	    const char *name);
};

/* The elements of a list of mappings; with F_ALLOC base + off holds a
 * pointer to them (calloc'd), else the array itself. */
static char *
maps_at(const struct key *k, const void *base)
{
	char *p;

	if (!(k->flags & F_ALLOC))
		return (char *) base + k->off;
	memcpy(&p, (const char *) base + k->off, sizeof(p));
	return p;
}

/* A list of mappings (k->sub a struct maps). */
static int
read_maps(struct ctx *x, const struct node *v, const struct key *k,
    void *base)
{
	const struct maps *m = k->sub;
	char              *elems;

	if (list_check(x, v, &m->list) != 0)
		return -1;
	if (k->flags & F_ALLOC) {
		if ((elems = calloc(v->n_kids, m->size)) == NULL)
			return node_fail(x, v, "out of memory");
		memcpy((char *) base + k->off, &elems, sizeof(elems));
	}
	elems = maps_at(k, base);
	for (size_t i = 0; i < v->n_kids; i++) {
		const struct node *e = v->kids[i];
		char              *el = elems + i * m->size, *name = NULL;
		size_t             old = path_index(x, i), n = i + 1;

		if (m->init != NULL)
			m->init(el);
		memcpy((char *) base + k->n_off, &n, sizeof(n));
		if (e->kind == NODE_SCALAR && (k->flags & F_ONE)) {
			/* written as its name alone: the name key reads it */
			if (read_str(x, e, &m->sec->keys[0], el) != 0)
				return -1;
		} else if (section_read(x, e, m->sec, el) != 0) {
			return -1;
		}
		name = str_get(el, m->name_off);
		for (size_t j = 0; j < i; j++) {
			if (strcmp(str_get(elems + j * m->size, m->name_off),
			        name) == 0)
				return m->dup(x, v, i, j, name);
		}
		path_pop(x, old);
	}
	return 0;
}

static void
free_maps(const struct key *k, void *base)
{
	const struct maps *m = k->sub;
	char              *elems = maps_at(k, base);
	size_t             n, zero = 0;

	memcpy(&n, (char *) base + k->n_off, sizeof(n));
	for (size_t i = 0; elems != NULL && i < n; i++)
		section_free(m->sec, elems + i * m->size);
	if (k->flags & F_ALLOC) {
		free(elems);
		elems = NULL;
		memcpy((char *) base + k->off, &elems, sizeof(elems));
	}
	memcpy((char *) base + k->n_off, &zero, sizeof(zero));
}

/* A group's settings before its keys: the workers' defaults. */
static void
group_init(void *e)
{
	struct conf_group *g = e;

	memset(g, 0, sizeof(*g));
	g->wrk       = (struct wrk_options) WRK_OPTIONS_DEFAULTS;
	g->wrk.group = NULL; /* the group owns its name, read from the file */
}

static int
group_dup(struct ctx *x, const struct node *v, size_t i, size_t j,
    const char *name)
{
	const struct node *first = map_get(v->kids[j], "name");

	path_key(x, "name");
	return node_fail(x, map_get(v->kids[i], "name"),
	    "duplicate group name '%s' (first at line %zu, column %zu)", name,
	    first->line, first->col);
}

static int
host_dup(struct ctx *x, const struct node *v, size_t i, size_t j,
    const char *name)
{
	return node_fail(x, v->kids[i],
	    "host '%s' listed twice (also at index %zu)", name, j);
}

static const struct type t_map = { read_map, free_map, NULL };
static const struct type t_maps = { read_maps, free_maps, NULL };

/* ------------------------------------------------- rules across keys */

/*
 * Keys lo and hi of mapping m whose values (ms) must keep lo < hi
 * (strict) or lo <= hi: the error goes to hi when the file sets it, else
 * to lo, saying which value is the default.
 */
static int
check_order(struct ctx *x, const struct node *m, const char *lo,
    uint32_t lo_ms, const char *hi, uint32_t hi_ms, bool strict)
{
	const struct node *lo_n = map_get(m, lo), *hi_n = map_get(m, hi);

	if (strict ? lo_ms < hi_ms : lo_ms <= hi_ms)
		return 0;
	if (hi_n != NULL) {
		path_key(x, hi);
		return node_fail(x, hi_n,
		    "must be %s %s (%" PRIu32 " ms%s), got %" PRIu32 " ms",
		    strict ? "greater than" : "at least", lo, lo_ms,
		    lo_n == NULL ? ", the default" : "", hi_ms);
	}
	path_key(x, lo);
	return node_fail(x, lo_n,
	    "must %s %s (%" PRIu32 " ms, the default); set %s too",
	    strict ? "be less than" : "not be more than", hi, hi_ms, hi);
}

/* scheduler: address defaults to listen[0], which must then be one to
 * dial; heartbeat_timeout > heartbeat_interval. */
static int
check_scheduler(struct ctx *x, const struct node *m, void *base)
{
	struct conf         *c = base;
	struct sched_config *s = &c->sched;
	char                 why[160];

	if (c->address == NULL) {
		size_t old = path_key(x, "address");

		if (util_url_problem(s->listen[0], UTIL_URL_DIAL, why,
		        sizeof(why)) != 0)
			return node_fail(x, m,
			    "missing, and listen[0] '%s' cannot stand in for "
			    "it: %s",
			    s->listen[0], why);
		if ((c->address = strdup(s->listen[0])) == NULL)
			return node_fail(x, m, "out of memory");
		path_pop(x, old);
	}
	return check_order(x, m, "heartbeat_interval", s->heartbeat_interval_ms,
	    "heartbeat_timeout", s->heartbeat_timeout_ms, true);
}

/* scheduler.task_defaults: retry_backoff_max >= retry_backoff. */
static int
check_task_defaults(struct ctx *x, const struct node *m, void *base)
{
	const struct sched_config *s = &((struct conf *) base)->sched;

	return check_order(x, m, "retry_backoff", s->task_backoff_ms,
	    "retry_backoff_max", s->task_backoff_max_ms, false);
}

/* security.tls: require_client_cert needs ca_file. */
static int
check_tls(struct ctx *x, const struct node *m, void *base)
{
	const struct sched_config *s = &((struct conf *) base)->sched;

	if (!s->require_client_cert || s->tls_ca_file != NULL)
		return 0;
	path_key(x, "require_client_cert");
	return node_fail(x, map_get(m, "require_client_cert"),
	    "needs 'ca_file' (the CA that signed the client certificates)");
}

/* A worker group runs task libraries, Python modules, or both. */
static int
check_group(struct ctx *x, const struct node *m, void *base)
{
	const struct conf_group *g = base;

	if (g->wrk.n_libraries > 0 || g->wrk.n_python_modules > 0)
		return 0;
	return missing(x, m, "libraries",
	    "a list of task library names or paths, or python.modules");
}

/* A Python module name: dotted identifiers (ASCII here; the import says
 * the rest). */
static int
str_module(struct ctx *x, const struct node *n, const struct key *k,
    char **out)
{
	char show[CONF_SHOW_BUF];
	int  start = 1;

	(void) k;
	if (want_string(x, n, out) != 0)
		return -1;
	for (const char *p = *out; *p != '\0'; p++) {
		char c = *p;
		if (c == '.' && !start) {
			start = 1;
			continue;
		}
		if (!(c == '_' || (c >= 'a' && c <= 'z') ||
		        (c >= 'A' && c <= 'Z') ||
		        (!start && c >= '0' && c <= '9')))
			goto bad;
		start = 0;
	}
	if (!start && strlen(*out) <= 255)
		return 0;
bad:
	return node_fail(x, n,
	    "bad module name '%s': use dotted identifiers of A-Z a-z 0-9 _ "
	    "(e.g. mytasks, pkg.tasks), at most 255 bytes",
	    node_show(n, show, sizeof(show)));
}

/* The whole file: each group's workers run with the cluster's address,
 * timeouts and security; the scheduler knows the groups' names. */
static int
check_root(struct ctx *x, const struct node *m, void *base)
{
	struct conf *c = base;

	for (size_t i = 0; i < c->n_groups; i++) {
		struct wrk_options *w = &c->groups[i].wrk;

		w->connect            = c->address;
		w->library_dir        = c->dir;
		w->connect_timeout_ms = c->connect_timeout_ms;
		w->drain_timeout_ms   = c->sched.drain_timeout_ms;
		w->max_message_size   = c->sched.max_message_size;
		w->tls_ca_file        = c->sched.tls_ca_file;
		w->tls_cert_key_file  = c->tls_client_cert_key_file;
		w->tls_server_name    = c->tls_server_name;
		w->token_file         = c->sched.token_file;
		c->sched.groups[i]    = w->group;
	}
	c->sched.n_groups = c->n_groups;
	return 0;
}

/* ----------------------------------------------------------- the table */

/* Where a key's value goes: member m of struct T (and, for a list, its
 * count n); C_, S_, G_, H_ for struct conf, its sched, a group, a host. */
#define AT(T, m) .off = offsetof(T, m), .size = sizeof(((T *) 0)->m)
#define LIST(T, m, n) AT(T, m), .n_off = offsetof(T, n)
#define C_(m) AT(struct conf, m)
#define S_(m) AT(struct conf, sched.m)
#define G_(m) AT(struct conf_group, m)
#define H_(m) AT(struct conf_host, m)
#define SECTION(keys, hint, check)                                       \
	{ keys, sizeof(keys) / sizeof(keys[0]), hint, check }

/* Cluster and group names (they name directories too). */
static const struct word name_word = { "name", ALNUM "_.-",
	"A-Z a-z 0-9 _ . -", CONF_MAX_NAME, { ".", ".." }, 0,
	" (and not '.' or '..')" };

/* A host name as ssh takes it: host, user@host, an IPv4 or [IPv6]
 * address; never starting with '-' (ssh would read an option). */
static const struct word host_word = { "host name", ALNUM "_.-@:[]%",
	"A-Z a-z 0-9 _ . - @ : [ ] %", 255, { NULL, NULL }, '-',
	", not starting with '-'" };

static const struct list listen_list = { "a URL or a list of URLs",
	"list at least one URL", "URLs", "URL", CONF_MAX_LISTEN };
static const struct list libraries_list = {
	"a list of library names or paths", "list at least one library",
	"libraries", "library", CONF_MAX_LIBRARIES
};
static const struct list roots_list = { "a list of directories", NULL,
	"object roots", NULL, CONF_MAX_ROOTS };
static const struct list host_roots_list = { "a list of directories",
	"list at least one directory (leave the key out to use the group's)",
	"object roots", NULL, CONF_MAX_ROOTS };
static const struct list words_list = {
	"a list: the program and its options (e.g. [ssh, -o, "
	"BatchMode=yes])",
	"name at least the program", "words", NULL, CONF_MAX_SSH_ARGS
};

static const struct key cluster_keys[] = {
	{ "name", &t_str, str_word, C_(name), .sub = &name_word },
	{ "state_dir", &t_str, str_dir, C_(state_dir), .doc = "see below" },
};

/* The log levels and the journal's sync modes, as words. */
static const struct choice level_choice = { log_level_parse,
	log_level_name, "error, warn, info or debug" };
static const struct choice sync_choice = { conf_parse_sync,
	conf_sync_name, "always, batch or none" };

static const struct key task_keys[] = {
	{ "retries", &t_int, NULL, S_(task_retries), .lo = 0, .hi = 1000,
	    .hint = "an integer between 0 and 1000" },
	{ "retry_backoff", &t_duration, NULL, S_(task_backoff_ms),
	    .hi = CONF_MAX_BACKOFF, .hint = "24h" },
	{ "retry_backoff_max", &t_duration, NULL, S_(task_backoff_max_ms),
	    .hi = CONF_MAX_BACKOFF, .hint = "24h" },
	{ "timeout", &t_duration, NULL, S_(task_timeout_ms),
	    .hi = CONF_MAX_TIMEOUT, .hint = "2147483647ms (about 24 days)",
	    .flags = F_NONE },
	{ "retry_errors", &t_bool, NULL, S_(task_retry_errors) },
};
static const struct section task_section = SECTION(task_keys,
    "a mapping (retries, retry_backoff, retry_backoff_max, timeout, "
    "retry_errors)",
    check_task_defaults);

/* scheduler.journal; a relative path is taken in the state directory,
 * so the cluster section (read first) must be known. */
static const struct key journal_keys[] = {
	{ "path", &t_str, str_dir, S_(journal_path), .flags = F_STATE,
	    .doc = "(none: no journal)" },
	{ "sync", &t_choice, NULL, S_(journal_sync), .sub = &sync_choice },
	{ "window", &t_duration, NULL, S_(journal_window_ms), .lo = 1,
	    .hi = 10000, .hint = "10s" },
	{ "max_size", &t_size, NULL, S_(journal_max_size), .lo = MIB,
	    .hint = "1MiB" },
	{ "restore_wait", &t_duration, NULL, S_(restore_wait_ms) },
};
static const struct section journal_section = SECTION(journal_keys,
    "a mapping (path, sync, window, max_size, restore_wait)", NULL);

static const struct key scheduler_keys[] = {
	{ "listen", &t_strs, str_url,
	    LIST(struct conf, sched.listen, sched.n_listen),
	    .hint = "a URL or a list of URLs the scheduler binds",
	    .flags = F_REQUIRED | F_ONE, .sub = &listen_list,
	    .doc = "(required)" },
	{ "address", &t_str, str_url, C_(address), .flags = F_DIAL,
	    .doc = "`listen[0]`" },
	{ "heartbeat_interval", &t_duration, NULL, S_(heartbeat_interval_ms),
	    .lo = 1 },
	{ "heartbeat_timeout", &t_duration, NULL, S_(heartbeat_timeout_ms),
	    .lo = 1 },
	{ "connect_timeout", &t_duration, NULL, C_(connect_timeout_ms),
	    .lo = 1 },
	{ "drain_timeout", &t_duration, NULL, S_(drain_timeout_ms) },
	{ "max_message_size", &t_size, NULL, S_(max_message_size),
	    .lo = 64 * KIB, .hint = "64KiB" },
	{ "max_queue", &t_int, NULL, S_(max_queue), .lo = 1,
	    .hi = COUNT_MAX, .hint = "a positive integer" },
	{ "max_results", &t_int, NULL, S_(max_results), .lo = 1,
	    .hi = COUNT_MAX, .hint = "a positive integer" },
	{ "result_ttl", &t_duration, NULL, S_(result_ttl_ms) },
	{ "max_result_bytes", &t_size, NULL, S_(max_result_bytes),
	    .lo = 64 * KIB, .hint = "64KiB" },
	{ "quarantine_after", &t_int, NULL, S_(quarantine_after), .lo = 1,
	    .hi = 100, .hint = "an integer between 1 and 100" },
	{ "task_defaults", &t_map, NULL, .sub = &task_section,
	    .doc = "see below" },
	{ "journal", &t_map, NULL, .sub = &journal_section, .doc = "off" },
	{ "host", &t_str, str_word, C_(scheduler_host), .sub = &host_word,
	    .doc = "this machine" },
	{ "function_wait", &t_duration, NULL, S_(function_wait_ms) },
	{ "unknown_function_wait", &t_duration, NULL,
	    S_(unknown_function_wait_ms) },
};
static const struct section scheduler_section = SECTION(scheduler_keys,
    "a mapping", check_scheduler);

static const struct key host_keys[] = {
	{ "name", &t_str, str_word, H_(name), .sub = &host_word,
	    .hint = "the host's name, as ssh takes it", .flags = F_REQUIRED,
	    .doc = "(required)" },
	{ "ferry", &t_str, str_path, H_(ferry), .doc = "`ssh.ferry`" },
	{ "object_roots", &t_strs, str_path,
	    LIST(struct conf_host, object_roots, n_object_roots),
	    .flags = F_ABS, .sub = &host_roots_list, .doc = "the group's" },
	{ "libraries", &t_strs, str_path,
	    LIST(struct conf_host, libraries, n_libraries),
	    .sub = &libraries_list, .doc = "the group's" },
	{ "library_dir", &t_str, str_path, H_(library_dir),
	    .flags = F_ABS, .doc = "the cluster file's directory" },
};
static const struct section host_section = SECTION(host_keys,
    "a host name or a mapping (name, ferry, object_roots, libraries, "
    "library_dir)",
    NULL);
static const struct maps hosts_list = {
	{ "a list of hosts (names or mappings)",
	    "list at least one host (leave the key out to run the group on "
	    "this machine)",
	    "hosts", NULL, CONF_MAX_HOSTS },
	&host_section, sizeof(struct conf_host),
	offsetof(struct conf_host, name), NULL, host_dup
};

static const struct list modules_list = { "a list of Python module names",
	"list at least one module", "python modules", "module",
	WRK_MAX_PYTHON };
static const struct list pypath_list = { "a list of directories", NULL,
	"python path directories", "directory", WRK_MAX_PYTHON };

/* workers[].python: the Python task modules of the group. */
static const struct key python_keys[] = {
	{ "modules", &t_strs, str_module,
	    LIST(struct conf_group, wrk.python_modules,
	        wrk.n_python_modules),
	    .hint = "a list of Python module names",
	    .flags = F_REQUIRED | F_ONE, .sub = &modules_list,
	    .doc = "(required)" },
	{ "path", &t_strs, str_path,
	    LIST(struct conf_group, wrk.python_path, wrk.n_python_path),
	    .flags = F_LOCAL | F_ONE, .sub = &pypath_list, .doc = "(none)" },
};
static const struct section python_section = SECTION(python_keys,
    "a mapping (modules, path)", NULL);

static const struct key group_keys[] = {
	{ "name", &t_str, str_word, G_(wrk.group), .sub = &name_word,
	    .hint = "a unique group name", .flags = F_REQUIRED,
	    .doc = "(required)" },
	{ "processes", &t_int, NULL, G_(processes), .lo = 1, .hi = 1024,
	    .hint = "'auto' or an integer between 1 and 1024",
	    .flags = F_AUTO },
	{ "slots", &t_int, NULL, G_(wrk.slots), .lo = 1, .hi = 1024,
	    .hint = "an integer between 1 and 1024" },
	{ "prefetch", &t_int, NULL, G_(wrk.prefetch), .lo = 0, .hi = 100000,
	    .hint = "an integer between 0 and 100000" },
	{ "libraries", &t_strs, str_path,
	    LIST(struct conf_group, wrk.libraries, wrk.n_libraries),
	    .hint = "a list of task library names or paths",
	    .sub = &libraries_list,
	    .doc = "(required unless `python`)" },
	{ "python", &t_map, NULL, .sub = &python_section,
	    .doc = "(none)" },
	{ "object_roots", &t_strs, str_path,
	    LIST(struct conf_group, wrk.object_roots, wrk.n_object_roots),
	    .flags = F_LOCAL, .sub = &roots_list, .doc = "(none)" },
	{ "object_cache", &t_size, NULL, G_(wrk.object_cache), .lo = MIB,
	    .hint = "1MiB", .flags = F_AUTO },
	{ "memory_limit", &t_size, NULL, G_(wrk.memory_limit), .lo = 16 * MIB,
	    .hint = "16MiB", .flags = F_NONE },
	{ "max_tasks_per_process", &t_int, NULL, G_(wrk.max_tasks), .lo = 0,
	    .hi = LLONG_MAX, .hint = "an integer of 0 (unlimited) or more" },
	{ "hosts", &t_maps, NULL, LIST(struct conf_group, hosts, n_hosts),
	    .flags = F_ALLOC | F_ONE, .sub = &hosts_list,
	    .doc = "(none: this machine)" },
};
static const struct section group_section = SECTION(group_keys,
    "a mapping (name, processes, slots, prefetch, libraries, python)",
    check_group);
static const struct maps workers_list = {
	{ "a list of worker groups", "list at least one worker group",
	    "worker groups", NULL, CONF_MAX_GROUPS },
	&group_section, sizeof(struct conf_group),
	offsetof(struct conf_group, wrk.group), group_init, group_dup
};

static const struct key ssh_keys[] = {
	{ "command", &t_strs, str_path,
	    LIST(struct conf, ssh_command, n_ssh_command),
	    .sub = &words_list },
	{ "ferry", &t_str, str_path, C_(ssh_ferry) },
};

static const struct key tls_keys[] = {
	{ "cert_key_file", &t_str, str_path, S_(tls_cert_key_file),
	    .flags = F_LOCAL, .doc = "(none)" },
	{ "ca_file", &t_str, str_path, S_(tls_ca_file), .flags = F_LOCAL,
	    .doc = "(none)" },
	{ "require_client_cert", &t_bool, NULL, S_(require_client_cert) },
	{ "client_cert_key_file", &t_str, str_path,
	    C_(tls_client_cert_key_file), .flags = F_LOCAL, .doc = "(none)" },
	{ "server_name", &t_str, str_server_name, C_(tls_server_name),
	    .doc = "the URL's host" },
};
static const struct section tls_section = SECTION(tls_keys,
    "a mapping (cert_key_file, ca_file, require_client_cert, "
    "client_cert_key_file, server_name)",
    check_tls);

static const struct key security_keys[] = {
	{ "token_file", &t_str, str_path, S_(token_file), .flags = F_LOCAL,
	    .doc = "(none)" },
	{ "tls", &t_map, NULL, .sub = &tls_section, .doc = "(none)" },
};

static const struct section cluster_section = SECTION(cluster_keys,
    "a mapping", NULL);
static const struct section ssh_section = SECTION(ssh_keys,
    "a mapping (command, ferry)", NULL);
static const struct section security_section = SECTION(security_keys,
    "a mapping (token_file, tls)", NULL);

static const struct key root_keys[] = {
	{ "cluster", &t_map, NULL, .sub = &cluster_section,
	    .doc = "see below" },
	{ "log_level", &t_choice, NULL, C_(log_level),
	    .sub = &level_choice },
	{ "scheduler", &t_map, NULL, .hint = "a mapping with at least 'listen'",
	    .flags = F_REQUIRED, .sub = &scheduler_section,
	    .doc = "(required)" },
	{ "workers", &t_maps, NULL, LIST(struct conf, groups, n_groups),
	    .hint = "a list of worker groups", .flags = F_REQUIRED,
	    .sub = &workers_list, .doc = "(required)" },
	{ "ssh", &t_map, NULL, .sub = &ssh_section, .doc = "see below" },
	{ "security", &t_map, NULL, .sub = &security_section, .doc = "off" },
};
static const struct section root_section = SECTION(root_keys,
    "a mapping with 'scheduler' and 'workers'", check_root);

/* ------------------------------------------------------------ loading */

/* The top-level mapping. */
static int
load_root(struct ctx *x, const struct node *root, struct conf *c)
{
	if (root == NULL)
		return ctx_fail(x, 1, 1,
		    "the file is empty; a cluster file is a mapping with at "
		    "least 'scheduler' and 'workers'");
	if (root->kind != NODE_MAP)
		return node_fail(x, root,
		    "the top level must be a mapping with 'scheduler' and "
		    "'workers', got %s",
		    node_what(root));
	return section_read(x, root, &root_section, c);
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
	static const char *const ssh[] = { "ssh", "-o", "BatchMode=yes", "-o",
		"ConnectTimeout=10" };
	const struct wrk_options w = WRK_OPTIONS_DEFAULTS;

	memset(c, 0, sizeof(*c));
	c->sched              = (struct sched_config) SCHED_CONFIG_DEFAULTS;
	c->connect_timeout_ms = w.connect_timeout_ms;
	c->name               = strdup("local");
	c->log_level          = LOG_INFO;
	/* no listen address or address: a cluster file names them (the
	 * shipped ones in this user's runtime directory, RUNTIME_TOKEN) */
	for (size_t i = 0; i < sizeof(ssh) / sizeof(ssh[0]); i++) {
		if ((c->ssh_command[i] = strdup(ssh[i])) != NULL)
			c->n_ssh_command = i + 1;
	}
	c->ssh_ferry = strdup("ferry");
}

int
conf_load(const char *path, struct conf *c, char *err, size_t errlen)
{
	struct ctx   x;
	struct node *root = NULL;
	int          rv = -1;

	memset(&x, 0, sizeof(x));
	x.file   = path != NULL ? path : "(null)";
	x.err    = err;
	x.errlen = errlen;
	x.c      = c;
	if (err != NULL && errlen > 0)
		err[0] = '\0';

	conf_defaults(c);
	if (c->name == NULL)
		ctx_fail_file(&x, "out of memory");
	else if (path == NULL)
		ctx_fail_file(&x, "no cluster file given");
	else if (tree_load(&x, path, &root) == 0 &&
	    set_paths(&x, path, c) == 0 && load_root(&x, root, c) == 0)
		rv = 0;
	node_free(root);
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
	section_free(&root_section, c);
	free(c->path);
	free(c->dir);
	memset(c, 0, sizeof(*c));
}

/* Key k's default, as the documentation writes it. */
static void
key_default(const struct key *k, const void *base, char *def, size_t len)
{
	char show[256];

	if (k->doc != NULL || k->type->show == NULL) {
		snprintf(def, len, "%s", k->doc != NULL ? k->doc : "");
		return;
	}
	k->type->show(k, base, show, sizeof(show));
	snprintf(def, len, "`%s`", show);
}

/* The keys of sec (base: its struct with the defaults), with their paths
 * below prefix, until the i-th: returns its path (a static buffer) and
 * writes its default into def. */
static const char *
key_walk(const struct section *sec, const void *base, const char *prefix,
    size_t *i, char *def, size_t deflen)
{
	static char path[CONF_PATH_MAX];

	for (size_t j = 0; j < sec->n_keys; j++) {
		const struct key  *k = &sec->keys[j];
		const struct maps *m = k->sub;
		const char        *hit = NULL;
		char               here[CONF_PATH_MAX];
		void              *el;

		snprintf(here, sizeof(here), "%s%s", prefix, k->name);
		if ((*i)-- == 0) {
			key_default(k, base, def, deflen);
			snprintf(path, sizeof(path), "%s", here);
			return path;
		}
		if (k->type == &t_map) {
			strcat(here, ".");
			hit = key_walk(k->sub, base, here, i, def, deflen);
		} else if (k->type == &t_maps &&
		    (el = calloc(1, m->size)) != NULL) {
			/* an element as it is before its keys */
			if (m->init != NULL)
				m->init(el);
			strcat(here, "[].");
			hit = key_walk(m->sec, el, here, i, def, deflen);
			free(el);
		}
		if (hit != NULL)
			return hit;
	}
	return NULL;
}

const char *
conf_key(size_t i, char *def, size_t deflen)
{
	struct conf c;
	const char *path;

	conf_defaults(&c);
	path = key_walk(&root_section, &c, "", &i, def, deflen);
	conf_free(&c);
	return path;
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
		if (c->groups[i].wrk.group != NULL &&
		    strcmp(c->groups[i].wrk.group, name) == 0)
			return &c->groups[i];
	}
	return NULL;
}
