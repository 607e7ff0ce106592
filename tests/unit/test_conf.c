/*
 * test_conf.c - unit tests for the YAML cluster-file loader (config/conf.c).
 *
 * Valid files are checked value by value; each invalid file is checked for
 * the exact "FILE:LINE:COLUMN: key 'KEY': " prefix and for the words of the
 * problem, since that message is what a person reads.  Files are written to
 * a private temporary directory; a few awkward ones (bad UTF-8, a BOM with
 * CRLF lines) live in $FERRY_TEST_DATA/conf.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "scheduler.h"
#include "worker.h"
#include "log.h"
#include "util.h"

#define SCHED "scheduler:\n  listen: tcp://127.0.0.1:7710\n"
#define WORKERS "workers:\n  - name: a\n    libraries: [x]\n"
/* scheduler with one more key on line 3, then the workers */
#define WITH_SCHED(line) SCHED line WORKERS
/* one group "a" whose other keys start on line 5 */
#define WITH_GROUP(lines) SCHED "workers:\n  - name: a\n" lines
/* scheduler.task_defaults whose keys start on line 4, column 5 */
#define WITH_TASK(lines) WITH_SCHED("  task_defaults:\n" lines)
/* group "a" with its libraries, then more keys from line 6, column 5 */
#define WITH_GROUP_KEY(line) WITH_GROUP("    libraries: [x]\n" line)
/* scheduler.journal whose keys start on line 4, column 5 */
#define WITH_JOURNAL(lines) WITH_SCHED("  journal:\n" lines)

static char tmpdir[PATH_MAX];

/* Write text (len bytes) to tmpdir/name; returns the path (static). */
static const char *
write_file_len(const char *name, const char *text, size_t len)
{
	static char path[PATH_MAX + 64];
	FILE       *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	return path;
}

/* Write a NUL-terminated text to tmpdir/name. */
static const char *
write_file(const char *name, const char *text)
{
	return write_file_len(name, text, strlen(text));
}

/* Remove the files in tmpdir and tmpdir itself. */
static int
remove_tmpdir(void **state)
{
	DIR           *d;
	struct dirent *e;
	char           path[PATH_MAX + 300];

	(void) state;
	if ((d = opendir(tmpdir)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
		if (unlink(path) != 0)
			rmdir(path);
	}
	closedir(d);
	return rmdir(tmpdir) == 0 ? 0 : -1;
}

/* Make the private temporary directory. */
static int
make_tmpdir(void **state)
{
	const char *base = getenv("TMPDIR");

	(void) state;
	if (base == NULL || base[0] == '\0')
		base = "/tmp";
	snprintf(tmpdir, sizeof(tmpdir), "%s/ferry-test-conf-XXXXXX", base);
	return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

/* A file of the source tree: via $FERRY_TEST_DATA (tests/unit/data),
 * else relative to tests/unit (meson's workdir), else to the top. */
static const char *
source_path(const char *rel, char *buf, size_t len)
{
	const char *data = getenv("FERRY_TEST_DATA");

	if (data != NULL) {
		snprintf(buf, len, "%s/../../../%s", data, rel);
		if (access(buf, R_OK) == 0)
			return buf;
	}
	snprintf(buf, len, "../../%s", rel);
	if (access(buf, R_OK) == 0)
		return buf;
	snprintf(buf, len, "%s", rel);
	return buf;
}

/* A file of $FERRY_TEST_DATA/conf (or the tree's copy). */
static const char *
data_path(const char *name, char *buf, size_t len)
{
	const char *data = getenv("FERRY_TEST_DATA");
	char        rel[256];

	if (data != NULL) {
		snprintf(buf, len, "%s/conf/%s", data, name);
		return buf;
	}
	snprintf(rel, sizeof(rel), "tests/unit/data/conf/%s", name);
	return source_path(rel, buf, len);
}

/* The environment that decides the runtime directory, saved by
 * saved_env_push() and put back by saved_env_pop(), so that a test can
 * change it freely (and never names the runtime directory of whoever
 * runs it). */
static const char *const runtime_env[] = { "FERRY_RUNTIME_DIR",
	"XDG_RUNTIME_DIR", "HOME" };
static char *saved_env[3];
static int   saved_set[3];

static void
saved_env_push(void)
{
	for (size_t i = 0; i < 3; i++) {
		const char *v = getenv(runtime_env[i]);
		saved_set[i]  = v != NULL;
		saved_env[i]  = v != NULL ? strdup(v) : NULL;
	}
}

static void
saved_env_pop(void)
{
	for (size_t i = 0; i < 3; i++) {
		if (saved_set[i])
			setenv(runtime_env[i], saved_env[i], 1);
		else
			unsetenv(runtime_env[i]);
		free(saved_env[i]);
		saved_env[i] = NULL;
	}
}

/* Load path, failing the test with the message if it does not load. */
static void
load_ok(const char *path, struct conf *c)
{
	char err[512];

	if (conf_load(path, c, err, sizeof(err)) != 0)
		fail_msg("conf_load(%s) failed: %s", path, err);
	assert_string_equal(err, "");
}

/* Whether struct conf is all zero bytes (what conf_free leaves). */
static int
conf_is_zero(const struct conf *c)
{
	const unsigned char *p = (const unsigned char *) c;

	for (size_t i = 0; i < sizeof(*c); i++) {
		if (p[i] != 0)
			return 0;
	}
	return 1;
}

/* Check err against "PATH:LINE:COL: key 'KEY': " (or no key) and each
 * '|'-separated word of words; print and return 1 on a mismatch. */
static int
check_error(const char *what, const char *path, const char *err, int line,
    int col, const char *key, const char *words)
{
	char        want[PATH_MAX + 512];
	char        word[256];
	const char *w = words;
	size_t      n;

	if (key != NULL)
		snprintf(want, sizeof(want), "%s:%d:%d: key '%s': ", path,
		    line, col, key);
	else
		snprintf(want, sizeof(want), "%s:%d:%d: ", path, line, col);
	n = strlen(want);
	if (strncmp(err, want, n) != 0 ||
	    (key == NULL && strncmp(err + n, "key '", 5) == 0)) {
		print_error("%s: want prefix \"%s\"\n  got \"%s\"\n", what,
		    want, err);
		return 1;
	}
	while (*w != '\0') {
		size_t l = strcspn(w, "|");
		snprintf(word, sizeof(word), "%.*s", (int) l, w);
		if (strstr(err + n, word) == NULL) {
			print_error("%s: want \"%s\" in\n  \"%s\"\n", what,
			    word, err);
			return 1;
		}
		w += l;
		if (*w == '|')
			w++;
	}
	return 0;
}

/* Load text from a file and expect the given error; returns 1 on a
 * mismatch (printed). */
static int
expect_error(const char *what, const char *text, size_t len, int line,
    int col, const char *key, const char *words)
{
	struct conf c;
	char        err[1024];
	const char *path = write_file_len("case.yaml", text, len);

	memset(&c, 0xa5, sizeof(c));
	if (conf_load(path, &c, err, sizeof(err)) == 0) {
		print_error("%s: loaded, but should fail with %s\n", what,
		    words);
		conf_free(&c);
		return 1;
	}
	if (!conf_is_zero(&c)) {
		print_error("%s: conf not freed and zeroed on error\n", what);
		return 1;
	}
	return check_error(what, path, err, line, col, key, words);
}

struct bad_case {
	const char *yaml;
	int         line;
	int         col;
	const char *key; /* NULL: a message without a key */
	const char *words;
};

/* Invalid files: each with the position, key and problem words it must
 * report. */
static const struct bad_case bad_cases[] = {
	/* the document as a whole */
	{ "", 1, 1, NULL, "the file is empty|'scheduler'" },
	{ "# nothing here\n\n", 1, 1, NULL, "the file is empty" },
	{ "- a\n- b\n", 1, 1, NULL, "top level must be a mapping|got a list" },
	{ "hello\n", 1, 1, NULL, "top level must be a mapping|got a string" },
	{ SCHED WORKERS "colour: blue\n", 6, 1, "colour",
	    "unknown key|expected one of: cluster, log_level, scheduler, "
	    "workers" },
	{ WORKERS, 1, 1, "scheduler", "required key missing|expected" },
	{ SCHED, 1, 1, "workers", "required key missing|expected" },
	{ "scheduler: [a]\n" WORKERS, 1, 12, "scheduler",
	    "must be a mapping|got a list" },
	{ "scheduler:\n" WORKERS, 1, 1, "scheduler",
	    "required, but the value is empty|expected" },
	{ "scheduler: ~\n" WORKERS, 1, 1, "scheduler", "the value is empty" },

	/* YAML itself */
	{ SCHED WORKERS "---\nlog_level: info\n", 6, 1, NULL,
	    "second YAML document" },
	{ "scheduler:\n  listen: [a, b\nworkers: []\n", 3, 8, NULL,
	    "YAML syntax error|did not find expected ',' or ']'|line 2, "
	    "column 11" },
	{ "scheduler:\n\tlisten: x\n", 2, 1, NULL,
	    "YAML syntax error|cannot start any token" },
	{ "scheduler:\n  listen: &l tcp://127.0.0.1:7710\n" WORKERS, 2, 11,
	    "scheduler.listen", "anchors|'&l'|not supported" },
	{ "cluster:\n  state_dir: *n\n" SCHED WORKERS, 2, 14,
	    "cluster.state_dir", "aliases|'*n'|not supported" },
	{ "scheduler:\n  listen: tcp://127.0.0.1:7710\n"
	  "  listen: tcp://127.0.0.1:7711\n" WORKERS,
	    3, 3, "scheduler.listen",
	    "duplicate key|first at line 2, column 3" },
	{ "[a]: 1\n", 1, 1, NULL, "mapping keys must be plain names|a list" },
	{ "log_level: \"in\\0fo\"\n" SCHED WORKERS, 1, 12, "log_level",
	    "NUL character" },
	{ "a: [[[[[[[[[[[[[[[[[[[[\n", 1, 19, NULL, "nested more than 16" },

	/* cluster */
	{ "cluster:\n  nme: x\n" SCHED WORKERS, 2, 3, "cluster.nme",
	    "unknown key|expected one of: name, state_dir" },
	{ "cluster:\n  name: my cluster\n" SCHED WORKERS, 2, 9,
	    "cluster.name", "bad name 'my cluster'|A-Z a-z 0-9 _ . -" },
	{ "cluster:\n  name: ..\n" SCHED WORKERS, 2, 9, "cluster.name",
	    "bad name '..'" },
	{ "cluster:\n  name: a/b\n" SCHED WORKERS, 2, 9, "cluster.name",
	    "bad name 'a/b'" },
	{ "cluster:\n  name: \"\"\n" SCHED WORKERS, 2, 9, "cluster.name",
	    "must not be empty" },
	{ "cluster:\n  name: [a]\n" SCHED WORKERS, 2, 9, "cluster.name",
	    "must be a string|got a list" },
	{ "cluster: foo\n" SCHED WORKERS, 1, 10, "cluster",
	    "must be a mapping|got a string" },
	{ "cluster:\n  state_dir: \"\"\n" SCHED WORKERS, 2, 14,
	    "cluster.state_dir", "must not be empty" },
	{ "cluster:\n  state_dir: {a: b}\n" SCHED WORKERS, 2, 14,
	    "cluster.state_dir", "must be a string|got a mapping" },

	/* log_level */
	{ "log_level: verbose\n" SCHED WORKERS, 1, 12, "log_level",
	    "must be error, warn, info or debug|got 'verbose'" },
	{ "log_level: [info]\n" SCHED WORKERS, 1, 12, "log_level",
	    "must be error, warn, info or debug|got a list" },

	/* scheduler.listen and address */
	{ "scheduler:\n  address: tcp://h:1\n" WORKERS, 2, 3,
	    "scheduler.listen", "required key missing|expected" },
	{ "scheduler:\n  listen: {a: b}\n" WORKERS, 2, 11, "scheduler.listen",
	    "must be a URL or a list of URLs|got a mapping" },
	{ "scheduler:\n  listen: []\n" WORKERS, 2, 11, "scheduler.listen",
	    "at least one URL" },
	{ "scheduler:\n  listen: http://x:1\n" WORKERS, 2, 11,
	    "scheduler.listen",
	    "bad URL 'http://x:1'|unknown URL scheme 'http'" },
	{ "scheduler:\n  listen:\n    - tcp://127.0.0.1:7710\n"
	  "    - udp://x:1\n" WORKERS,
	    4, 7, "scheduler.listen[1]", "unknown URL scheme 'udp'" },
	{ "scheduler:\n  listen:\n    - [tcp://a:1]\n" WORKERS, 3, 7,
	    "scheduler.listen[0]", "must be a URL|got a list" },
	{ "scheduler:\n  listen: tcp://127.0.0.1\n" WORKERS, 2, 11,
	    "scheduler.listen", "missing ':PORT'" },
	{ "scheduler:\n  listen: tcp://127.0.0.1:70000\n" WORKERS, 2, 11,
	    "scheduler.listen", "port must be a number from 1 to 65535" },
	{ "scheduler:\n  listen: tcp://127.0.0.1:0\n" WORKERS, 2, 11,
	    "scheduler.listen", "port must be a number from 1 to 65535" },
	{ "scheduler:\n  listen: tcp://[::1\n" WORKERS, 2, 11,
	    "scheduler.listen", "bad [IPv6]:PORT" },
	{ "scheduler:\n  listen: 127.0.0.1:7710\n" WORKERS, 2, 11,
	    "scheduler.listen", "not a URL" },
	{ "scheduler:\n  listen: ipc://\n" WORKERS, 2, 11, "scheduler.listen",
	    "nothing after 'ipc://'" },
	{ "scheduler:\n  listen: \"tcp://127.0.0.1: 7710\"\n" WORKERS, 2, 11,
	    "scheduler.listen", "space or control character" },
	{ "scheduler:\n  listen: [tcp://127.0.0.1:7710, "
	  "tcp://127.0.0.1:7710]\n" WORKERS,
	    2, 34, "scheduler.listen[1]", "listed twice|index 0" },
	{ "scheduler:\n  listen: tcp://0.0.0.0:7710\n"
	  "  address: tcp://*:7710\n" WORKERS,
	    3, 12, "scheduler.address", "wildcard host cannot be dialed" },
	{ "scheduler:\n  listen: tcp://*:7710\n" WORKERS, 2, 3,
	    "scheduler.address", "missing|listen[0] 'tcp://*:7710'|wildcard" },
	{ "scheduler:\n  listen: tcp://:7710\n" WORKERS, 2, 3,
	    "scheduler.address", "missing|wildcard" },
	{ WITH_SCHED("  address: [tcp://h:1]\n"), 3, 12, "scheduler.address",
	    "must be a URL|got a list" },

	/* scheduler durations */
	{ WITH_SCHED("  heartbeat_interval: 0\n"), 3, 23,
	    "scheduler.heartbeat_interval", "greater than 0|got '0'" },
	{ WITH_SCHED("  heartbeat_interval: 1.5s\n"), 3, 23,
	    "scheduler.heartbeat_interval", "must be a duration|got '1.5s'" },
	{ WITH_SCHED("  heartbeat_interval: -1s\n"), 3, 23,
	    "scheduler.heartbeat_interval", "must be a duration|got '-1s'" },
	{ WITH_SCHED("  heartbeat_interval: \"5 s\"\n"), 3, 23,
	    "scheduler.heartbeat_interval", "must be a duration|got '5 s'" },
	{ WITH_SCHED("  heartbeat_interval: 2s\n  heartbeat_timeout: 2s\n"), 4,
	    22, "scheduler.heartbeat_timeout",
	    "greater than heartbeat_interval (2000 ms)|got 2000 ms" },
	{ WITH_SCHED("  heartbeat_timeout: 500ms\n"), 3, 22,
	    "scheduler.heartbeat_timeout",
	    "greater than heartbeat_interval (1000 ms, the default)" },
	{ WITH_SCHED("  heartbeat_interval: 10s\n"), 3, 23,
	    "scheduler.heartbeat_interval",
	    "less than heartbeat_timeout (5000 ms, the default)" },
	{ WITH_SCHED("  connect_timeout: 10x\n"), 3, 20,
	    "scheduler.connect_timeout", "must be a duration|got '10x'" },
	{ WITH_SCHED("  connect_timeout: 0\n"), 3, 20,
	    "scheduler.connect_timeout", "greater than 0" },
	{ WITH_SCHED("  drain_timeout: [1s]\n"), 3, 18,
	    "scheduler.drain_timeout", "must be a duration, got a list" },
	{ WITH_SCHED("  result_ttl: 5000000000\n"), 3, 15,
	    "scheduler.result_ttl", "must be a duration|got '5000000000'" },
	{ WITH_SCHED("  result_ttl: 2000000h\n"), 3, 15,
	    "scheduler.result_ttl", "must be a duration|got '2000000h'" },
	{ WITH_SCHED("  result_ttl: 10d\n"), 3, 15, "scheduler.result_ttl",
	    "must be a duration|got '10d'" },

	/* scheduler sizes and counts */
	{ WITH_SCHED("  max_message_size: 1KiB\n"), 3, 21,
	    "scheduler.max_message_size",
	    "must be at least 64KiB|got '1KiB'" },
	{ WITH_SCHED("  max_message_size: 65535\n"), 3, 21,
	    "scheduler.max_message_size", "must be at least 64KiB" },
	{ WITH_SCHED("  max_message_size: 64XB\n"), 3, 21,
	    "scheduler.max_message_size", "must be a size|got '64XB'" },
	{ WITH_SCHED("  max_message_size: 99999999999999999999999\n"), 3, 21,
	    "scheduler.max_message_size", "must be a size" },
	{ WITH_SCHED("  max_message_size: [1]\n"), 3, 21,
	    "scheduler.max_message_size", "must be a size, got a list" },
	{ WITH_SCHED("  max_queue: 0\n"), 3, 14, "scheduler.max_queue",
	    "must be a positive integer|got '0'" },
	{ WITH_SCHED("  max_queue: lots\n"), 3, 14, "scheduler.max_queue",
	    "must be a positive integer|got 'lots'" },
	{ WITH_SCHED("  max_queue: 99999999999999999999\n"), 3, 14,
	    "scheduler.max_queue", "must be a positive integer" },
	{ WITH_SCHED("  max_queue: 0x10\n"), 3, 14, "scheduler.max_queue",
	    "must be a positive integer|got '0x10'" },
	{ WITH_SCHED("  max_results: -5\n"), 3, 16, "scheduler.max_results",
	    "must be a positive integer|got '-5'" },
	{ WITH_SCHED("  max_results: {a: 1}\n"), 3, 16,
	    "scheduler.max_results",
	    "must be a positive integer|got a mapping" },
	{ WITH_SCHED("  bogus: 1\n"), 3, 3, "scheduler.bogus",
	    "unknown key|listen, address, heartbeat_interval" },
	{ WITH_SCHED("  bogus: 1\n"), 3, 3, "scheduler.bogus",
	    "unknown key|host, function_wait, unknown_function_wait)" },
	{ WITH_SCHED("  retries: 3\n"), 3, 3, "scheduler.retries",
	    "unknown key|max_result_bytes, quarantine_after, task_defaults" },

	/* scheduler failure handling: quarantine_after, max_result_bytes */
	{ WITH_SCHED("  quarantine_after: 0\n"), 3, 21,
	    "scheduler.quarantine_after",
	    "must be an integer between 1 and 100|got '0'" },
	{ WITH_SCHED("  quarantine_after: 101\n"), 3, 21,
	    "scheduler.quarantine_after", "between 1 and 100|got '101'" },
	{ WITH_SCHED("  quarantine_after: three\n"), 3, 21,
	    "scheduler.quarantine_after", "between 1 and 100|got 'three'" },
	{ WITH_SCHED("  quarantine_after: [3]\n"), 3, 21,
	    "scheduler.quarantine_after", "between 1 and 100|got a list" },
	{ WITH_SCHED("  max_result_bytes: 1KiB\n"), 3, 21,
	    "scheduler.max_result_bytes", "must be at least 64KiB|got '1KiB'" },
	{ WITH_SCHED("  max_result_bytes: 65535\n"), 3, 21,
	    "scheduler.max_result_bytes", "must be at least 64KiB" },
	{ WITH_SCHED("  max_result_bytes: 1gib\n"), 3, 21,
	    "scheduler.max_result_bytes", "must be a size|got '1gib'" },
	{ WITH_SCHED("  max_result_bytes: {a: 1}\n"), 3, 21,
	    "scheduler.max_result_bytes", "must be a size, got a mapping" },

	/* scheduler.task_defaults */
	{ WITH_SCHED("  task_defaults: 3\n"), 3, 18, "scheduler.task_defaults",
	    "must be a mapping|got a string" },
	{ WITH_SCHED("  task_defaults: [retries]\n"), 3, 18,
	    "scheduler.task_defaults", "must be a mapping|got a list" },
	{ WITH_TASK("    retires: 3\n"), 4, 5,
	    "scheduler.task_defaults.retires",
	    "unknown key|expected one of: retries, retry_backoff, "
	    "retry_backoff_max, timeout, retry_errors" },
	{ WITH_TASK("    retries: 3\n    max_queue: 5\n"), 5, 5,
	    "scheduler.task_defaults.max_queue", "unknown key" },
	{ WITH_TASK("    retries: -1\n"), 4, 14,
	    "scheduler.task_defaults.retries",
	    "must be an integer between 0 and 1000|got '-1'" },
	{ WITH_TASK("    retries: 1001\n"), 4, 14,
	    "scheduler.task_defaults.retries",
	    "between 0 and 1000|got '1001'" },
	{ WITH_TASK("    retries: three\n"), 4, 14,
	    "scheduler.task_defaults.retries",
	    "between 0 and 1000|got 'three'" },
	{ WITH_TASK("    retries: [3]\n"), 4, 14,
	    "scheduler.task_defaults.retries", "between 0 and 1000|got a list" },
	{ WITH_TASK("    retry_backoff: 1.5s\n"), 4, 20,
	    "scheduler.task_defaults.retry_backoff",
	    "must be a duration|got '1.5s'" },
	{ WITH_TASK("    retry_backoff: 25h\n"), 4, 20,
	    "scheduler.task_defaults.retry_backoff",
	    "must be at most 24h|got '25h'" },
	{ WITH_TASK("    retry_backoff: none\n"), 4, 20,
	    "scheduler.task_defaults.retry_backoff",
	    "must be a duration|got 'none'" },
	{ WITH_TASK("    retry_backoff: {a: 1}\n"), 4, 20,
	    "scheduler.task_defaults.retry_backoff",
	    "must be a duration, got a mapping" },
	{ WITH_TASK("    retry_backoff_max: 10x\n"), 4, 24,
	    "scheduler.task_defaults.retry_backoff_max",
	    "must be a duration|got '10x'" },
	{ WITH_TASK("    retry_backoff_max: 86400001\n"), 4, 24,
	    "scheduler.task_defaults.retry_backoff_max",
	    "must be at most 24h|got '86400001'" },
	{ WITH_TASK("    retry_backoff: 1s\n    retry_backoff_max: 500ms\n"),
	    5, 24, "scheduler.task_defaults.retry_backoff_max",
	    "must be at least retry_backoff (1000 ms)|got 500 ms" },
	{ WITH_TASK("    retry_backoff_max: 50ms\n"), 4, 24,
	    "scheduler.task_defaults.retry_backoff_max",
	    "must be at least retry_backoff (100 ms, the default)|got 50 ms" },
	{ WITH_TASK("    retry_backoff: 20s\n"), 4, 20,
	    "scheduler.task_defaults.retry_backoff",
	    "not be more than retry_backoff_max (10000 ms, the default)|"
	    "set retry_backoff_max too" },
	{ WITH_TASK("    timeout: forever\n"), 4, 14,
	    "scheduler.task_defaults.timeout",
	    "must be a duration or 'none'|got 'forever'" },
	{ WITH_TASK("    timeout: None\n"), 4, 14,
	    "scheduler.task_defaults.timeout", "or 'none'|got 'None'" },
	{ WITH_TASK("    timeout: -5s\n"), 4, 14,
	    "scheduler.task_defaults.timeout", "must be a duration|got '-5s'" },
	{ WITH_TASK("    timeout: 600h\n"), 4, 14,
	    "scheduler.task_defaults.timeout",
	    "must be at most 2147483647ms|got '600h'" },
	{ WITH_TASK("    timeout: 2147483648\n"), 4, 14,
	    "scheduler.task_defaults.timeout", "at most 2147483647ms" },
	{ WITH_TASK("    timeout: [1s]\n"), 4, 14,
	    "scheduler.task_defaults.timeout",
	    "must be a duration or 'none', got a list" },
	{ WITH_TASK("    retry_errors: yes\n"), 4, 19,
	    "scheduler.task_defaults.retry_errors",
	    "must be true or false|got 'yes'" },
	{ WITH_TASK("    retry_errors: 1\n"), 4, 19,
	    "scheduler.task_defaults.retry_errors",
	    "must be true or false|got '1'" },
	{ WITH_TASK("    retry_errors: tRUE\n"), 4, 19,
	    "scheduler.task_defaults.retry_errors", "got 'tRUE'" },
	{ WITH_TASK("    retry_errors: [true]\n"), 4, 19,
	    "scheduler.task_defaults.retry_errors",
	    "must be true or false, got a list" },

	/* workers */
	{ SCHED "workers:\n  name: a\n", 4, 3, "workers",
	    "must be a list of worker groups|got a mapping" },
	{ SCHED "workers: []\n", 3, 10, "workers",
	    "at least one worker group" },
	{ SCHED "workers:\n", 3, 1, "workers",
	    "required, but the value is empty|expected" },
	{ SCHED "workers:\n  - default\n", 4, 5, "workers[0]",
	    "must be a mapping|got a string" },
	{ SCHED "workers:\n  - libraries: [x]\n", 4, 5, "workers[0].name",
	    "required key missing|expected" },
	{ SCHED "workers:\n  - name: a\n", 4, 5, "workers[0].libraries",
	    "required key missing|expected" },
	{ WITH_GROUP("    proceses: 2\n    libraries: [x]\n"), 5, 5,
	    "workers[0].proceses",
	    "unknown key|name, processes, slots, prefetch, libraries" },
	{ SCHED "workers:\n  - name: gpu workers\n    libraries: [x]\n", 4,
	    11, "workers[0].name", "bad name 'gpu workers'" },
	{ SCHED "workers:\n  - name: [a]\n    libraries: [x]\n", 4, 11,
	    "workers[0].name", "must be a string|got a list" },
	{ SCHED WORKERS "  - name: b\n    libraries: [x]\n"
	                "  - name: a\n    libraries: [y]\n",
	    8, 11, "workers[2].name",
	    "duplicate group name 'a'|first at line 4, column 11" },
	{ WITH_GROUP("    processes: 0\n    libraries: [x]\n"), 5, 16,
	    "workers[0].processes",
	    "'auto' or an integer between 1 and 1024|got '0'" },
	{ WITH_GROUP("    processes: -1\n    libraries: [x]\n"), 5, 16,
	    "workers[0].processes", "got '-1'" },
	{ WITH_GROUP("    processes: 1025\n    libraries: [x]\n"), 5, 16,
	    "workers[0].processes", "between 1 and 1024|got '1025'" },
	{ WITH_GROUP("    processes: many\n    libraries: [x]\n"), 5, 16,
	    "workers[0].processes", "'auto' or an integer|got 'many'" },
	{ WITH_GROUP("    processes: 2.5\n    libraries: [x]\n"), 5, 16,
	    "workers[0].processes", "got '2.5'" },
	{ WITH_GROUP("    processes: Auto\n    libraries: [x]\n"), 5, 16,
	    "workers[0].processes", "got 'Auto'" },
	{ WITH_GROUP("    processes: \"\"\n    libraries: [x]\n"), 5, 16,
	    "workers[0].processes", "got ''" },
	{ WITH_GROUP("    processes: [2]\n    libraries: [x]\n"), 5, 16,
	    "workers[0].processes", "got a list" },
	{ WITH_GROUP("    slots: 0\n    libraries: [x]\n"), 5, 12,
	    "workers[0].slots", "integer between 1 and 1024|got '0'" },
	{ WITH_GROUP("    slots: 2000\n    libraries: [x]\n"), 5, 12,
	    "workers[0].slots", "between 1 and 1024|got '2000'" },
	{ WITH_GROUP("    slots: [1]\n    libraries: [x]\n"), 5, 12,
	    "workers[0].slots", "got a list" },
	{ WITH_GROUP("    libraries: [x]\n    object_roots: /data\n"), 6, 19,
	    "workers[0].object_roots",
	    "must be a list of directories|got a string" },
	{ WITH_GROUP("    libraries: [x]\n    object_roots: ['']\n"), 6, 20,
	    "workers[0].object_roots[0]", "must not be empty" },
	{ WITH_GROUP("    libraries: [x]\n    object_cache: lots\n"), 6, 19,
	    "workers[0].object_cache", "must be a size|got 'lots'" },
	{ WITH_GROUP("    libraries: [x]\n    object_cache: 1000\n"), 6, 19,
	    "workers[0].object_cache", "at least 1MiB" },
	{ WITH_GROUP_KEY("    memory_limit: 1MiB\n"), 6, 19,
	    "workers[0].memory_limit",
	    "must be 'none' or at least 16MiB|got '1MiB'" },
	{ WITH_GROUP_KEY("    memory_limit: 16777215\n"), 6, 19,
	    "workers[0].memory_limit", "at least 16MiB|got '16777215'" },
	{ WITH_GROUP_KEY("    memory_limit: 0\n"), 6, 19,
	    "workers[0].memory_limit", "'none' or at least 16MiB|got '0'" },
	{ WITH_GROUP_KEY("    memory_limit: unlimited\n"), 6, 19,
	    "workers[0].memory_limit",
	    "must be a size|or 'none'|got 'unlimited'" },
	{ WITH_GROUP_KEY("    memory_limit: None\n"), 6, 19,
	    "workers[0].memory_limit", "must be a size|got 'None'" },
	{ WITH_GROUP_KEY("    memory_limit: 2 GiB\n"), 6, 19,
	    "workers[0].memory_limit", "must be a size|got '2 GiB'" },
	{ WITH_GROUP_KEY("    memory_limit: [1GiB]\n"), 6, 19,
	    "workers[0].memory_limit", "must be a size or 'none', got a list" },
	{ WITH_GROUP_KEY("    max_tasks_per_process: -1\n"), 6, 28,
	    "workers[0].max_tasks_per_process",
	    "must be an integer of 0 (unlimited) or more|got '-1'" },
	{ WITH_GROUP_KEY("    max_tasks_per_process: many\n"), 6, 28,
	    "workers[0].max_tasks_per_process", "0 (unlimited)|got 'many'" },
	{ WITH_GROUP_KEY("    max_tasks_per_process: 1e6\n"), 6, 28,
	    "workers[0].max_tasks_per_process", "got '1e6'" },
	{ WITH_GROUP_KEY("    max_tasks_per_process: 9223372036854775808\n"),
	    6, 28, "workers[0].max_tasks_per_process",
	    "got '9223372036854775808'" },
	{ WITH_GROUP_KEY("    max_tasks_per_process: {a: 1}\n"), 6, 28,
	    "workers[0].max_tasks_per_process", "got a mapping" },
	{ WITH_GROUP_KEY("    memory_limt: 1GiB\n"), 6, 5,
	    "workers[0].memory_limt",
	    "unknown key|object_cache, memory_limit, max_tasks_per_process" },
	{ WITH_GROUP("    prefetch: -1\n    libraries: [x]\n"), 5, 15,
	    "workers[0].prefetch", "between 0 and 100000|got '-1'" },
	{ WITH_GROUP("    prefetch: 100001\n    libraries: [x]\n"), 5, 15,
	    "workers[0].prefetch", "between 0 and 100000|got '100001'" },
	{ WITH_GROUP("    libraries: ferry_examples\n"), 5, 16,
	    "workers[0].libraries",
	    "must be a list of library names or paths|got a string" },
	{ WITH_GROUP("    libraries: []\n"), 5, 16, "workers[0].libraries",
	    "at least one library" },
	{ WITH_GROUP("    libraries:\n"), 5, 5, "workers[0].libraries",
	    "required, but the value is empty|expected" },
	{ WITH_GROUP("    libraries: [[a]]\n"), 5, 17,
	    "workers[0].libraries[0]", "must be a string|got a list" },
	{ WITH_GROUP("    libraries: [a, a]\n"), 5, 20,
	    "workers[0].libraries[1]", "listed twice|index 0" },
	{ WITH_GROUP("    libraries: [\"\"]\n"), 5, 17,
	    "workers[0].libraries[0]", "must not be empty" },
	{ WITH_GROUP("    libraries: [~]\n"), 5, 17, "workers[0].libraries[0]",
	    "must be a string|empty value" },
	{ WITH_GROUP("    libraries: [\"a\\tb\"]\n"), 5, 17,
	    "workers[0].libraries[0]", "control character" },
	{ WITH_GROUP_KEY("    object_roots: [\"a\\tb\"]\n"), 6, 20,
	    "workers[0].object_roots[0]", "control character" },

	/* waiting for functions */
	{ WITH_SCHED("  function_wait: 5x\n"), 3, 18, "scheduler.function_wait",
	    "must be a duration|got '5x'" },
	{ WITH_SCHED("  unknown_function_wait: [1]\n"), 3, 26,
	    "scheduler.unknown_function_wait", "must be a duration, got a list" },
};

/* expect_error for each of the n cases of the table called name; fails
 * the test after them all if any did not report as it should. */
static void
expect_cases(const char *name, const struct bad_case *cases, size_t n)
{
	int failures = 0;

	for (size_t i = 0; i < n; i++) {
		const struct bad_case *b = &cases[i];
		char                   what[64];

		snprintf(what, sizeof(what), "%s[%zu]", name, i);
		failures += expect_error(what, b->yaml, strlen(b->yaml),
		    b->line, b->col, b->key, b->words);
	}
	assert_int_equal(failures, 0);
}

/* expect_cases on a table (an array). */
#define EXPECT_CASES(cases)                                               \
	expect_cases(#cases, cases, sizeof(cases) / sizeof((cases)[0]))

/* Every invalid file reports its position, key and problem. */
static void
test_invalid_files(void **state)
{
	(void) state;
	EXPECT_CASES(bad_cases);
}

/* Invalid files kept in $FERRY_TEST_DATA/conf (bytes awkward inline). */
static void
test_invalid_data_files(void **state)
{
	static const struct {
		const char *name;
		int         line;
		int         col;
		const char *key;
		const char *words;
	} cases[] = {
		{ "bad_utf8.yaml", 2, 16, NULL,
		    "not valid text|UTF-8|byte 0xff" },
		{ "tab_indent.yaml", 4, 1, NULL,
		    "YAML syntax error|cannot start any token" },
		{ "two_documents.yaml", 7, 1, NULL, "second YAML document" },
		{ "anchor_alias.yaml", 5, 16, "workers[0].libraries",
		    "anchors|'&libs'|not supported" },
		{ "bad_timeout.yaml", 5, 22, "scheduler.heartbeat_timeout",
		    "greater than heartbeat_interval (3000 ms)" },
	};
	int failures = 0;

	(void) state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct conf c;
		char        path[PATH_MAX];
		char        err[1024];

		data_path(cases[i].name, path, sizeof(path));
		if (conf_load(path, &c, err, sizeof(err)) == 0) {
			print_error("%s: loaded\n", cases[i].name);
			conf_free(&c);
			failures++;
			continue;
		}
		failures += check_error(cases[i].name, path, err,
		    cases[i].line, cases[i].col, cases[i].key, cases[i].words);
	}
	assert_int_equal(failures, 0);
}

/* The documented defaults of every scheduler and timing key, and of the
 * failure-handling keys of group g (what a file that sets none gets, and
 * what conf_defaults() fills in). */
static void
assert_defaults(const struct conf *c, const struct conf_group *g)
{
	assert_int_equal(c->sched.heartbeat_interval_ms, 1000);
	assert_int_equal(c->sched.heartbeat_timeout_ms, 5000);
	assert_int_equal(c->connect_timeout_ms, 10000);
	assert_int_equal(c->sched.drain_timeout_ms, 30000);
	assert_int_equal(c->sched.function_wait_ms, 0);
	assert_int_equal(c->sched.unknown_function_wait_ms, 30000);
	assert_int_equal(c->sched.max_message_size, 64 * 1024 * 1024);
	assert_int_equal(c->sched.max_queue, 1000000);
	assert_int_equal(c->sched.max_results, 1000000);
	assert_int_equal(c->sched.result_ttl_ms, 600000);
	assert_int_equal(c->sched.max_result_bytes, (size_t) 1 << 30);
	assert_int_equal(c->sched.quarantine_after, 3);
	assert_int_equal(c->sched.task_retries, 3);
	assert_int_equal(c->sched.task_backoff_ms, 100);
	assert_int_equal(c->sched.task_backoff_max_ms, 10000);
	assert_int_equal(c->sched.task_timeout_ms, 0);
	assert_int_equal(c->sched.task_retry_errors, 0);
	assert_int_equal(c->sched.journal_sync, SCHED_SYNC_ALWAYS);
	assert_int_equal(c->sched.journal_window_ms, 10);
	assert_int_equal(c->sched.journal_max_size, (size_t) 16 << 30);
	assert_int_equal(c->sched.restore_wait_ms, 3000);
	assert_int_equal(g->wrk.memory_limit, 0);
	assert_int_equal(g->wrk.max_tasks, 0);
}

/* The shipped config/local.yaml loads with the documented values. */
static void
test_local_yaml(void **state)
{
	struct conf c;
	char        path[PATH_MAX];
	char        real[PATH_MAX];
	size_t      dl;

	(void) state;
	/* its socket is in the runtime directory of whoever loads it */
	saved_env_push();
	assert_int_equal(setenv("FERRY_RUNTIME_DIR", "/run/ferry-test/a", 1),
	    0);
	source_path("config/local.yaml", path, sizeof(path));
	load_ok(path, &c);

	assert_non_null(realpath(path, real));
	assert_string_equal(c.path, real);
	assert_true(c.path[0] == '/');
	dl = strlen(c.dir);
	assert_true(strlen(c.path) > dl);
	assert_memory_equal(c.path, c.dir, dl);
	assert_string_equal(c.path + dl, "/local.yaml");
	assert_string_equal(c.dir + dl - strlen("/config"), "/config");

	assert_string_equal(c.name, "local");
	assert_null(c.state_dir);
	assert_int_equal(c.log_level, LOG_INFO);
	/* one Unix socket of this user's, and no TCP port (a port is
	 * machine-wide) */
	assert_int_equal(c.sched.n_listen, 1);
	assert_string_equal(c.sched.listen[0], "ipc:///run/ferry-test/a/local.sock");
	assert_string_equal(c.address, "ipc:///run/ferry-test/a/local.sock");
	/* a journal in the state directory, RUNTIME/local */
	assert_string_equal(c.sched.journal_path,
	    "/run/ferry-test/a/local/journal");
	assert_defaults(&c, &c.groups[0]);

	assert_int_equal(c.n_groups, 1);
	assert_string_equal(c.groups[0].wrk.group, "default");
	assert_int_equal(c.groups[0].processes, 0);
	assert_int_equal(c.groups[0].wrk.slots, 1);
	assert_int_equal(c.groups[0].wrk.prefetch, 1024);
	assert_int_equal(c.groups[0].wrk.n_libraries, 1);
	assert_string_equal(c.groups[0].wrk.libraries[0], "ferry_examples");
	assert_ptr_equal(conf_group_find(&c, "default"), &c.groups[0]);
	conf_free(&c);
	assert_true(conf_is_zero(&c));
	saved_env_pop();
}

/* Every file in config/examples loads, with each example's own values. */
static void
test_examples(void **state)
{
	struct conf              c;
	char                     path[PATH_MAX];
	const struct conf_group *g;

	(void) state;
	saved_env_push();
	assert_int_equal(setenv("FERRY_RUNTIME_DIR", "/run/ferry-test/b", 1),
	    0);
	source_path("config/examples/two-groups.yaml", path, sizeof(path));
	load_ok(path, &c);
	assert_string_equal(c.name, "two-groups");
	assert_int_equal(c.n_groups, 2);
	assert_non_null(g = conf_group_find(&c, "cpu"));
	assert_int_equal(g->processes, 0);
	assert_int_equal(g->wrk.slots, 1);
	assert_non_null(g = conf_group_find(&c, "io"));
	assert_int_equal(g->processes, 2);
	assert_int_equal(g->wrk.slots, 16);
	assert_int_equal(g->wrk.prefetch, 256);
	assert_int_equal(g->wrk.n_libraries, 2);
	assert_string_equal(g->wrk.libraries[1], "./lib/libferry_io_tasks.so");
	assert_string_equal(c.sched.listen[0],
	    "ipc:///run/ferry-test/b/two-groups.sock");
	assert_string_equal(c.address, c.sched.listen[0]);
	conf_free(&c);

	source_path("config/examples/throughput.yaml", path, sizeof(path));
	load_ok(path, &c);
	assert_string_equal(c.name, "throughput");
	assert_int_equal(c.log_level, LOG_WARN);
	assert_string_equal(c.sched.listen[0], "ipc:///run/ferry-test/b/throughput.sock");
	assert_int_equal(c.sched.max_message_size, 256 * 1024 * 1024);
	assert_int_equal(c.sched.max_queue, 10000000);
	assert_int_equal(c.sched.heartbeat_interval_ms, 2000);
	assert_int_equal(c.sched.heartbeat_timeout_ms, 10000);
	assert_int_equal(c.sched.result_ttl_ms, 60000);
	assert_int_equal(c.groups[0].wrk.slots, 4);
	assert_int_equal(c.groups[0].wrk.prefetch, 1024);
	conf_free(&c);

	source_path("config/examples/network.yaml", path, sizeof(path));
	load_ok(path, &c);
	assert_string_equal(c.name, "shared");
	assert_int_equal(c.sched.n_listen, 2);
	assert_string_equal(c.sched.listen[0], "tcp://0.0.0.0:7710");
	assert_string_equal(c.address, "tcp://queue.example.internal:7710");
	assert_string_equal(c.state_dir, "/var/lib/ferry/shared");
	assert_int_equal(c.log_level, LOG_DEBUG);
	assert_int_equal(c.connect_timeout_ms, 30000);
	assert_int_equal(c.sched.drain_timeout_ms, 120000);
	conf_free(&c);
	saved_env_pop();
}

/* conf_defaults sets every documented default; conf_free zeroes. */
static void
test_defaults(void **state)
{
	struct conf c;

	(void) state;
	memset(&c, 0x5a, sizeof(c));
	conf_defaults(&c);
	assert_null(c.path);
	assert_null(c.dir);
	assert_string_equal(c.name, "local");
	assert_null(c.state_dir);
	assert_int_equal(c.log_level, LOG_INFO);
	/* no machine-wide default address: a cluster file names it */
	assert_int_equal(c.sched.n_listen, 0);
	assert_null(c.sched.listen[0]);
	assert_null(c.address);
	assert_null(c.sched.journal_path);
	assert_defaults(&c, &c.groups[0]);
	assert_int_equal(c.n_groups, 0);
	assert_null(conf_group_find(&c, "default"));
	assert_null(c.groups[0].wrk.group);
	conf_free(&c);
	assert_true(conf_is_zero(&c));
	conf_free(&c); /* zeroed: still safe */
	conf_free(NULL);
}

/* A minimal file: every optional key takes its default, address is a copy
 * of listen[0]; empty (null) optional values also mean the default. */
/* Object roots resolve against the file's directory; the cache budget
 * takes sizes or "auto". */
static void
test_object_keys(void **state)
{
	struct conf c;
	char        want[PATH_MAX + 32];

	(void) state;
	load_ok(write_file("objects.yaml",
	            SCHED "workers:\n  - name: a\n    libraries: [x]\n"
	                  "    object_roots: [/srv/data, rel/dir]\n"
	                  "    object_cache: 2GiB\n"
	                  "  - name: b\n    libraries: [x]\n"
	                  "    object_cache: auto\n"),
	    &c);
	assert_int_equal(c.groups[0].wrk.n_object_roots, 2);
	assert_string_equal(c.groups[0].wrk.object_roots[0], "/srv/data");
	snprintf(want, sizeof(want), "%s/rel/dir", c.dir);
	assert_string_equal(c.groups[0].wrk.object_roots[1], want);
	assert_int_equal(c.groups[0].wrk.object_cache, (size_t) 2 << 30);
	assert_int_equal(c.groups[1].wrk.n_object_roots, 0);
	assert_int_equal(c.groups[1].wrk.object_cache, 0);
	conf_free(&c);
}

/* workers[].python: modules and path directories, with or without task
 * libraries; a group needs one or the other. */
static const struct bad_case bad_python_cases[] = {
	{ WITH_GROUP("    python: {}\n"), 5, 13, "workers[0].python.modules",
	    "required key missing|Python module names" },
	{ WITH_GROUP("    python:\n      path: [x]\n"), 6, 7,
	    "workers[0].python.modules", "required key missing" },
	{ WITH_GROUP("    python:\n      modules: []\n"), 6, 16,
	    "workers[0].python.modules", "at least one module" },
	{ WITH_GROUP("    python:\n      modules: [a, a]\n"), 6, 20,
	    "workers[0].python.modules[1]", "listed twice" },
	{ WITH_GROUP("    python:\n      modules: [my-tasks]\n"), 6, 17,
	    "workers[0].python.modules[0]", "bad module name 'my-tasks'" },
	{ WITH_GROUP("    python:\n      modules: [a..b]\n"), 6, 17,
	    "workers[0].python.modules[0]", "bad module name 'a..b'" },
	{ WITH_GROUP("    python:\n      modules: [.a]\n"), 6, 17,
	    "workers[0].python.modules[0]", "dotted identifiers" },
	{ WITH_GROUP("    python:\n      modules: [9a]\n"), 6, 17,
	    "workers[0].python.modules[0]", "bad module name" },
	{ WITH_GROUP("    python:\n      modules: [a]\n      pth: [x]\n"), 7,
	    7, "workers[0].python.pth", "unknown key|modules, path" },
	{ WITH_GROUP("    python: [a]\n"), 5, 13, "workers[0].python",
	    "must be a mapping (modules, path)|got a list" },
	{ WITH_GROUP("    processes: 2\n"), 4, 5, "workers[0].libraries",
	    "required key missing|or python.modules" },
};

static void
test_python_keys(void **state)
{
	struct conf c;
	char        want[PATH_MAX + 32];

	(void) state;
	load_ok(write_file("python.yaml",
	            SCHED "workers:\n  - name: py\n"
	                  "    python:\n"
	                  "      modules: [mytasks, pkg.more_tasks]\n"
	                  "      path: [/srv/src, ./src]\n"
	                  "  - name: mixed\n    libraries: [x]\n"
	                  "    python: {modules: one}\n"
	                  "  - name: c\n    libraries: [x]\n"),
	    &c);
	assert_int_equal(c.groups[0].wrk.n_libraries, 0);
	assert_int_equal(c.groups[0].wrk.n_python_modules, 2);
	assert_string_equal(c.groups[0].wrk.python_modules[0], "mytasks");
	assert_string_equal(c.groups[0].wrk.python_modules[1],
	    "pkg.more_tasks");
	assert_int_equal(c.groups[0].wrk.n_python_path, 2);
	assert_string_equal(c.groups[0].wrk.python_path[0], "/srv/src");
	snprintf(want, sizeof(want), "%s/./src", c.dir);
	if (strcmp(c.groups[0].wrk.python_path[1], want) != 0) {
		snprintf(want, sizeof(want), "%s/src", c.dir);
		assert_string_equal(c.groups[0].wrk.python_path[1], want);
	}
	assert_int_equal(c.groups[1].wrk.n_libraries, 1);
	assert_int_equal(c.groups[1].wrk.n_python_modules, 1);
	assert_string_equal(c.groups[1].wrk.python_modules[0], "one");
	assert_int_equal(c.groups[1].wrk.n_python_path, 0);
	assert_int_equal(c.groups[2].wrk.n_python_modules, 0);
	conf_free(&c);
	EXPECT_CASES(bad_python_cases);
}

static void
test_minimal_and_nulls(void **state)
{
	static const char *const files[] = {
		SCHED WORKERS,
		"cluster:\nlog_level: ~\n"
		"scheduler:\n  listen: tcp://127.0.0.1:7710\n  address:\n"
		"  heartbeat_interval: null\n  max_queue: ~\n" WORKERS,
		"cluster:\n  name:\n  state_dir: ~\n" SCHED
		"workers:\n  - name: a\n    processes:\n    slots: ~\n"
		"    libraries: [x]\n",
		WITH_SCHED("  quarantine_after:\n  max_result_bytes: ~\n"
		           "  task_defaults:\n"),
		WITH_SCHED("  task_defaults: {}\n"),
		WITH_SCHED("  journal:\n"),
		WITH_JOURNAL("    path:\n    sync: ~\n    window: null\n"
		             "    max_size:\n    restore_wait: ~\n"),
		WITH_TASK("    retries:\n    retry_backoff: ~\n"
		          "    retry_backoff_max: null\n    timeout:\n"
		          "    retry_errors: ~\n"),
		WITH_GROUP("    libraries: [x]\n    memory_limit: ~\n"
		           "    max_tasks_per_process:\n"),
	};

	(void) state;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		struct conf c;
		load_ok(write_file("minimal.yaml", files[i]), &c);
		assert_string_equal(c.name, "local");
		assert_null(c.state_dir);
		assert_int_equal(c.log_level, LOG_INFO);
		assert_int_equal(c.sched.n_listen, 1);
		assert_string_equal(c.sched.listen[0], "tcp://127.0.0.1:7710");
		assert_string_equal(c.address, "tcp://127.0.0.1:7710");
		assert_ptr_not_equal(c.address, c.sched.listen[0]);
		assert_null(c.sched.journal_path);
		assert_defaults(&c, &c.groups[0]);
		assert_int_equal(c.n_groups, 1);
		assert_string_equal(c.groups[0].wrk.group, "a");
		assert_int_equal(c.groups[0].processes, 0);
		assert_int_equal(c.groups[0].wrk.slots, 1);
		assert_int_equal(c.groups[0].wrk.prefetch, 1024);
		assert_int_equal(c.groups[0].wrk.n_libraries, 1);
		assert_string_equal(c.groups[0].wrk.libraries[0], "x");
		conf_free(&c);
	}
}

/* The failure-handling keys (scheduler.task_defaults, quarantine_after,
 * max_result_bytes; a group's memory_limit and max_tasks_per_process):
 * each value lands in its field, at and inside the edges of its range. */
static void
test_failure_keys(void **state)
{
	struct conf c;

	(void) state;
	load_ok(write_file("failure.yaml",
	            "scheduler:\n"
	            "  listen: tcp://127.0.0.1:7710\n"
	            "  quarantine_after: 5\n"
	            "  max_result_bytes: 256MiB\n"
	            "  task_defaults:\n"
	            "    retries: 7\n"
	            "    retry_backoff: 250ms\n"
	            "    retry_backoff_max: 1m\n"
	            "    timeout: 30s\n"
	            "    retry_errors: true\n"
	            "workers:\n"
	            "  - name: a\n"
	            "    libraries: [x]\n"
	            "    memory_limit: 512MiB\n"
	            "    max_tasks_per_process: 1000\n"
	            "  - name: b\n"
	            "    libraries: [x]\n"
	            "    memory_limit: none\n"
	            "    max_tasks_per_process: 0\n"
	            "  - name: c\n"
	            "    libraries: [x]\n"),
	    &c);
	assert_int_equal(c.sched.quarantine_after, 5);
	assert_int_equal(c.sched.max_result_bytes, (size_t) 256 << 20);
	assert_int_equal(c.sched.task_retries, 7);
	assert_int_equal(c.sched.task_backoff_ms, 250);
	assert_int_equal(c.sched.task_backoff_max_ms, 60000);
	assert_int_equal(c.sched.task_timeout_ms, 30000);
	assert_int_equal(c.sched.task_retry_errors, 1);
	assert_int_equal(c.groups[0].wrk.memory_limit, (size_t) 512 << 20);
	assert_int_equal(c.groups[0].wrk.max_tasks, 1000);
	assert_int_equal(c.groups[1].wrk.memory_limit, 0);
	assert_int_equal(c.groups[1].wrk.max_tasks, 0);
	assert_int_equal(c.groups[2].wrk.memory_limit, 0);
	assert_int_equal(c.groups[2].wrk.max_tasks, 0);
	/* the rest keeps its defaults */
	assert_int_equal(c.sched.max_results, 1000000);
	assert_int_equal(c.groups[0].wrk.slots, 1);
	conf_free(&c);

	/* the low edges: no retries, no delay, timeout 0, quoted and
	 * capitalised values */
	load_ok(write_file("failure-low.yaml",
	            WITH_SCHED("  quarantine_after: 1\n"
	                       "  max_result_bytes: 64KiB\n"
	                       "  task_defaults:\n"
	                       "    retries: \"0\"\n"
	                       "    retry_backoff: 0\n"
	                       "    retry_backoff_max: 0ms\n"
	                       "    timeout: 0\n"
	                       "    retry_errors: False\n")),
	    &c);
	assert_int_equal(c.sched.quarantine_after, 1);
	assert_int_equal(c.sched.max_result_bytes, 65536);
	assert_int_equal(c.sched.task_retries, 0);
	assert_int_equal(c.sched.task_backoff_ms, 0);
	assert_int_equal(c.sched.task_backoff_max_ms, 0);
	assert_int_equal(c.sched.task_timeout_ms, 0);
	assert_int_equal(c.sched.task_retry_errors, 0);
	conf_free(&c);

	/* the high edges; retry_backoff may equal retry_backoff_max, and
	 * a backoff above the default cap is fine when the cap is raised */
	load_ok(write_file("failure-high.yaml",
	            SCHED "  quarantine_after: 100\n"
	                  "  max_result_bytes: 1GB\n"
	                  "  task_defaults:\n"
	                  "    retries: 1000\n"
	                  "    retry_backoff: 24h\n"
	                  "    retry_backoff_max: 86400000\n"
	                  "    timeout: 2147483647\n"
	                  "    retry_errors: 'TRUE'\n"
	                  "workers:\n  - name: a\n    libraries: [x]\n"
	                  "    memory_limit: 16MiB\n"
	                  "    max_tasks_per_process: 9223372036854775807\n"
	                  "  - name: b\n    libraries: [x]\n"
	                  "    memory_limit: 16777216\n"
	                  "    max_tasks_per_process: 1\n"),
	    &c);
	assert_int_equal(c.sched.quarantine_after, 100);
	assert_int_equal(c.sched.max_result_bytes, 1000000000);
	assert_int_equal(c.sched.task_retries, 1000);
	assert_int_equal(c.sched.task_backoff_ms, 86400000);
	assert_int_equal(c.sched.task_backoff_max_ms, 86400000);
	assert_int_equal(c.sched.task_timeout_ms, 2147483647);
	assert_int_equal(c.sched.task_retry_errors, 1);
	assert_int_equal(c.groups[0].wrk.memory_limit, 16 * 1024 * 1024);
	assert_true(c.groups[0].wrk.max_tasks ==
	    (uint64_t) 9223372036854775807LL);
	assert_int_equal(c.groups[1].wrk.memory_limit, 16 * 1024 * 1024);
	assert_int_equal(c.groups[1].wrk.max_tasks, 1);
	conf_free(&c);

	/* timeout "none" (also quoted), backoff 20s with its cap set to
	 * match, flow style */
	load_ok(write_file("failure-none.yaml",
	            WITH_SCHED("  task_defaults: {timeout: \"none\", "
	                       "retry_backoff: 20s, retry_backoff_max: 20s, "
	                       "retry_errors: FALSE}\n")),
	    &c);
	assert_int_equal(c.sched.task_timeout_ms, 0);
	assert_int_equal(c.sched.task_backoff_ms, 20000);
	assert_int_equal(c.sched.task_backoff_max_ms, 20000);
	assert_int_equal(c.sched.task_retry_errors, 0);
	assert_int_equal(c.sched.task_retries, 3);
	conf_free(&c);
}

/* Every key set: each value lands in its field; quoted integers and
 * every URL scheme are accepted; a relative state_dir is made absolute
 * against the file's directory. */
static void
test_full_file(void **state)
{
	static const char text[] =
	    "# every key\n"
	    "cluster:\n"
	    "  name: prod-1.eu_west\n"
	    "  state_dir: state/here\n"
	    "log_level: debug\n"
	    "scheduler:\n"
	    "  listen:\n"
	    "    - tcp://0.0.0.0:7710\n"
	    "    - \"ipc:///tmp/ferry-test.sock\"\n"
	    "    - tcp6://[::1]:7711\n"
	    "    - tls+tcp://127.0.0.1:7712\n"
	    "    - abstract://ferry\n"
	    "    - inproc://ferry\n"
	    "    - tcp4://localhost:7713\n"
	    "    - 'ipc://relative.sock'\n"
	    "  address: tcp://10.0.0.1:7710\n"
	    "  heartbeat_interval: 250ms\n"
	    "  heartbeat_timeout: 2s\n"
	    "  connect_timeout: 1m\n"
	    "  drain_timeout: 0\n"
	    "  max_message_size: 1GiB\n"
	    "  max_queue: \"500\"\n"
	    "  max_results: 42\n"
	    "  result_ttl: 1h\n"
	    "workers:\n"
	    "  - name: cpu\n"
	    "    processes: 4\n"
	    "    slots: '2'\n"
	    "    prefetch: 0\n"
	    "    libraries: [ferry_examples, ./lib/libmine.so, "
	    "/opt/x/liby.so]\n"
	    "  - name: io\n"
	    "    processes: \"auto\"\n"
	    "    slots: 1024\n"
	    "    prefetch: 100000\n"
	    "    libraries:\n"
	    "      - ferry_io\n"
	    "  - {name: Z, processes: 1024, libraries: [z]}\n";
	struct conf              c;
	char                     want[PATH_MAX + 64];
	const struct conf_group *g;

	(void) state;
	load_ok(write_file("full.yaml", text), &c);
	assert_string_equal(c.name, "prod-1.eu_west");
	snprintf(want, sizeof(want), "%s/state/here", c.dir);
	assert_string_equal(c.state_dir, want);
	assert_int_equal(c.log_level, LOG_DEBUG);
	assert_int_equal(c.sched.n_listen, 8);
	assert_string_equal(c.sched.listen[0], "tcp://0.0.0.0:7710");
	assert_string_equal(c.sched.listen[1], "ipc:///tmp/ferry-test.sock");
	assert_string_equal(c.sched.listen[2], "tcp6://[::1]:7711");
	assert_string_equal(c.sched.listen[3], "tls+tcp://127.0.0.1:7712");
	assert_string_equal(c.sched.listen[4], "abstract://ferry");
	assert_string_equal(c.sched.listen[5], "inproc://ferry");
	assert_string_equal(c.sched.listen[6], "tcp4://localhost:7713");
	assert_string_equal(c.sched.listen[7], "ipc://relative.sock");
	assert_string_equal(c.address, "tcp://10.0.0.1:7710");
	assert_int_equal(c.sched.heartbeat_interval_ms, 250);
	assert_int_equal(c.sched.heartbeat_timeout_ms, 2000);
	assert_int_equal(c.connect_timeout_ms, 60000);
	assert_int_equal(c.sched.drain_timeout_ms, 0);
	assert_int_equal(c.sched.max_message_size, 1024 * 1024 * 1024);
	assert_int_equal(c.sched.max_queue, 500);
	assert_int_equal(c.sched.max_results, 42);
	assert_int_equal(c.sched.result_ttl_ms, 3600000);

	assert_int_equal(c.n_groups, 3);
	g = conf_group_find(&c, "cpu");
	assert_ptr_equal(g, &c.groups[0]);
	assert_int_equal(g->processes, 4);
	assert_int_equal(g->wrk.slots, 2);
	assert_int_equal(g->wrk.prefetch, 0);
	assert_int_equal(g->wrk.n_libraries, 3);
	assert_string_equal(g->wrk.libraries[0], "ferry_examples");
	assert_string_equal(g->wrk.libraries[1], "./lib/libmine.so");
	assert_string_equal(g->wrk.libraries[2], "/opt/x/liby.so");
	assert_null(g->wrk.libraries[3]);
	g = conf_group_find(&c, "io");
	assert_ptr_equal(g, &c.groups[1]);
	assert_int_equal(g->processes, 0);
	assert_int_equal(g->wrk.slots, 1024);
	assert_int_equal(g->wrk.prefetch, 100000);
	assert_int_equal(g->wrk.n_libraries, 1);
	assert_string_equal(g->wrk.libraries[0], "ferry_io");
	g = conf_group_find(&c, "Z");
	assert_ptr_equal(g, &c.groups[2]);
	assert_int_equal(g->processes, 1024);
	assert_null(conf_group_find(&c, "z"));
	assert_null(conf_group_find(&c, NULL));
	conf_free(&c);

	/* an absolute state_dir is kept as written; listen as one string */
	load_ok(write_file("abs.yaml",
	            "cluster:\n  state_dir: /srv/ferry/x\n"
	            "log_level: warning\n"
	            "scheduler:\n  listen: ipc:///tmp/f.sock\n" WORKERS),
	    &c);
	assert_string_equal(c.state_dir, "/srv/ferry/x");
	assert_int_equal(c.log_level, LOG_WARN);
	assert_int_equal(c.sched.n_listen, 1);
	assert_string_equal(c.sched.listen[0], "ipc:///tmp/f.sock");
	assert_string_equal(c.address, "ipc:///tmp/f.sock");
	conf_free(&c);
}

/* A file with a UTF-8 BOM, CRLF line ends and a trailing "..." loads. */
static void
test_bom_crlf(void **state)
{
	struct conf c;
	char        path[PATH_MAX];

	(void) state;
	load_ok(data_path("bom_crlf.yaml", path, sizeof(path)), &c);
	assert_string_equal(c.name, "crlf");
	assert_string_equal(c.sched.listen[0], "tcp://127.0.0.1:7799");
	assert_string_equal(c.groups[0].wrk.group, "w");
	assert_string_equal(c.groups[0].wrk.libraries[0], "ferry_examples");
	conf_free(&c);
}

/* Bounded arrays: the maximum loads, one more is reported at the extra
 * entry; long ipc paths and names are refused. */
static void
test_limits(void **state)
{
	static char buf[1 << 16];
	size_t      at;
	struct conf c;
	int         failures = 0;

	(void) state;

	/* listen: 8 ok, 9 too many (9th item on line 11) */
	for (int n = 8; n <= 9; n++) {
		at = (size_t) sprintf(buf, "scheduler:\n  listen:\n");
		for (int i = 0; i < n; i++)
			at += (size_t) sprintf(buf + at,
			    "    - tcp://127.0.0.1:%d\n", 7000 + i);
		strcpy(buf + at, WORKERS);
		if (n == 8) {
			load_ok(write_file("listen.yaml", buf), &c);
			assert_int_equal(c.sched.n_listen, 8);
			assert_string_equal(c.sched.listen[7],
			    "tcp://127.0.0.1:7007");
			conf_free(&c);
		} else {
			failures += expect_error("9 listen", buf, strlen(buf),
			    11, 7, "scheduler.listen",
			    "too many URLs (at most 8)");
		}
	}

	/* groups: 64 ok, 65 too many (65th on line 4 + 2 * 64) */
	for (int n = 64; n <= 65; n++) {
		at = (size_t) sprintf(buf, SCHED "workers:\n");
		for (int i = 0; i < n; i++)
			at += (size_t) sprintf(buf + at,
			    "  - name: g%d\n    libraries: [x]\n", i);
		if (n == 64) {
			load_ok(write_file("groups.yaml", buf), &c);
			assert_int_equal(c.n_groups, 64);
			assert_ptr_equal(conf_group_find(&c, "g63"),
			    &c.groups[63]);
			conf_free(&c);
		} else {
			failures += expect_error("65 groups", buf, strlen(buf),
			    132, 5, "workers",
			    "too many worker groups (at most 64)");
		}
	}

	/* libraries: 32 ok, 33 too many (33rd on line 38) */
	for (int n = 32; n <= 33; n++) {
		at = (size_t) sprintf(buf,
		    SCHED "workers:\n  - name: a\n    libraries:\n");
		for (int i = 0; i < n; i++)
			at += (size_t) sprintf(buf + at, "      - lib%d\n", i);
		if (n == 32) {
			load_ok(write_file("libs.yaml", buf), &c);
			assert_int_equal(c.groups[0].wrk.n_libraries, 32);
			assert_string_equal(c.groups[0].wrk.libraries[31],
			    "lib31");
			conf_free(&c);
		} else {
			failures += expect_error("33 libraries", buf,
			    strlen(buf), 38, 9, "workers[0].libraries",
			    "too many libraries (at most 32)");
		}
	}

	/* ipc and abstract paths: 107 bytes ok, 108 too long */
	for (int scheme = 0; scheme < 2; scheme++) {
		const char *pre = scheme == 0 ? "ipc:///" : "abstract://";
		size_t      base = scheme == 0 ? 1 : 0; /* the leading '/' */
		for (size_t len = 107; len <= 108; len++) {
			at = (size_t) sprintf(buf, "scheduler:\n  listen: %s",
			    pre);
			memset(buf + at, 'a', len - base);
			at += len - base;
			strcpy(buf + at, "\n" WORKERS);
			if (len == 107) {
				load_ok(write_file("ipc.yaml", buf), &c);
				assert_int_equal(strlen(c.sched.listen[0]),
				    strlen(pre) - base + 107);
				conf_free(&c);
			} else {
				failures += expect_error("long ipc", buf,
				    strlen(buf), 2, 11, "scheduler.listen",
				    "ipc path is 108 bytes, the limit is 107");
			}
		}
	}

	/* names: 64 characters ok, 65 too long */
	for (int len = 64; len <= 65; len++) {
		at = (size_t) sprintf(buf, "cluster:\n  name: ");
		memset(buf + at, 'n', (size_t) len);
		at += (size_t) len;
		strcpy(buf + at, "\n" SCHED WORKERS);
		if (len == 64) {
			load_ok(write_file("name.yaml", buf), &c);
			assert_int_equal(strlen(c.name), 64);
			conf_free(&c);
		} else {
			failures += expect_error("long name", buf, strlen(buf),
			    2, 9, "cluster.name", "bad name|1 to 64");
		}
	}
	/* 257 keys in one mapping (the 257th on line 257) */
	at = 0;
	for (int i = 0; i <= 256; i++)
		at += (size_t) sprintf(buf + at, "k%d: 1\n", i);
	failures += expect_error("257 keys", buf, at, 257, 1, NULL,
	    "more than 256 keys in one mapping");

	/* 100001 values: map, key, list and 99998 items; item k (from 1)
	 * starts at column 5 + 2 * (k - 1) */
	{
		size_t len = 4 + 2 * 100000 + 2;
		char  *big = malloc(len);
		assert_non_null(big);
		memcpy(big, "a: [", 4);
		for (size_t i = 0; i < 100000; i++)
			memcpy(big + 4 + 2 * i, "1,", 2);
		memcpy(big + len - 2, "]\n", 2);
		failures += expect_error("100001 values", big, len, 1,
		    5 + 2 * (99998 - 1), NULL,
		    "more than 100000 YAML values");
		free(big);
	}
	assert_int_equal(failures, 0);
}

/* Files that cannot be read: the message names the file and the OS
 * error; too large a file is refused before parsing. */
static void
test_unreadable(void **state)
{
	struct conf c;
	char        err[512];
	char        want[PATH_MAX + 128];
	char        path[PATH_MAX + 64];
	char       *big;
	size_t      big_len = 1024 * 1024 + 1;

	(void) state;
	snprintf(path, sizeof(path), "%s/does-not-exist.yaml", tmpdir);
	memset(&c, 0xa5, sizeof(c));
	assert_int_equal(conf_load(path, &c, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: cannot open: %s", path,
	    strerror(ENOENT));
	assert_string_equal(err, want);
	assert_true(conf_is_zero(&c));

	assert_int_equal(conf_load(tmpdir, &c, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: cannot read: %s", tmpdir,
	    strerror(EISDIR));
	assert_string_equal(err, want);

	if (geteuid() != 0) {
		const char *p = write_file("secret.yaml", SCHED WORKERS);
		assert_int_equal(chmod(p, 0), 0);
		assert_int_equal(conf_load(p, &c, err, sizeof(err)), -1);
		snprintf(want, sizeof(want), "%s: cannot open: %s", p,
		    strerror(EACCES));
		assert_string_equal(err, want);
	}

	big = malloc(big_len);
	assert_non_null(big);
	memset(big, '#', big_len);
	assert_int_equal(conf_load(write_file_len("big.yaml", big, big_len),
	                     &c, err, sizeof(err)),
	    -1);
	free(big);
	assert_non_null(strstr(err, "big.yaml: larger than 1048576 bytes"));
	assert_true(conf_is_zero(&c));
}

/* The error buffer is always NUL-terminated, however small; a NULL
 * buffer is allowed. */
static void
test_error_buffer(void **state)
{
	struct conf c;
	char        err[16];
	const char *p = write_file("bad.yaml", "log_level: loud\n");

	(void) state;
	memset(err, 'x', sizeof(err));
	assert_int_equal(conf_load(p, &c, err, sizeof(err)), -1);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_memory_equal(err, p, sizeof(err) - 1);

	memset(err, 'x', sizeof(err));
	assert_int_equal(conf_load(p, &c, err, 1), -1);
	assert_int_equal(err[0], '\0');
	assert_int_equal(err[1], 'x');

	assert_int_equal(conf_load(p, &c, NULL, 0), -1);
	assert_true(conf_is_zero(&c));

	/* a good load after a failed one into the same struct */
	load_ok(write_file("good.yaml", SCHED WORKERS), &c);
	assert_int_equal(c.n_groups, 1);
	conf_free(&c);
}

/* conf_parse_duration: every form, and what it refuses. */
static void
test_parse_duration(void **state)
{
	static const struct {
		const char *s;
		uint32_t    ms;
	} good[] = {
		{ "0", 0 },
		{ "250", 250 },
		{ "250ms", 250 },
		{ "0ms", 0 },
		{ "5s", 5000 },
		{ "2m", 120000 },
		{ "1h", 3600000 },
		{ "007s", 7000 },
		{ "1193h", 1193u * 3600000u },
		{ "71582m", 71582u * 60000u },
		{ "4294967s", 4294967000u },
		{ "4294967295", 4294967295u },
		{ "4294967295ms", 4294967295u },
	};
	static const char *const bad[] = { "", "-1", "-5s", "+5s", "5x",
		"5 s", " 5s", "5s ", "1.5s", "s", "ms", "5S", "5sec", "5MS",
		"4294967296", "1194h", "4294968s", "71583m",
		"99999999999999999999999", "5ms5", "1e3", "0x10", "5d" };

	(void) state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint32_t ms = 12345;
		if (conf_parse_duration(good[i].s, &ms) != 0)
			fail_msg("'%s' refused", good[i].s);
		if (ms != good[i].ms)
			fail_msg("'%s' gave %u, want %u", good[i].s,
			    (unsigned) ms, (unsigned) good[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint32_t ms = 0;
		if (conf_parse_duration(bad[i], &ms) != -1)
			fail_msg("'%s' accepted as %u", bad[i], (unsigned) ms);
	}
	{
		uint32_t ms;
		assert_int_equal(conf_parse_duration(NULL, &ms), -1);
	}
}

/* conf_parse_size: every unit, and what it refuses. */
static void
test_parse_size(void **state)
{
	static const struct {
		const char *s;
		uint64_t    bytes;
	} good[] = {
		{ "0", 0 },
		{ "4096", 4096 },
		{ "4096B", 4096 },
		{ "64KiB", 65536 },
		{ "64MiB", 64ull << 20 },
		{ "1GiB", 1ull << 30 },
		{ "3GiB", 3ull << 30 },
		{ "1kB", 1000 },
		{ "64MB", 64000000 },
		{ "2GB", 2000000000 },
		{ "0064KiB", 65536 },
	};
	static const char *const bad[] = { "", "-1", "+1", "1.5MiB", "64 MiB",
		" 64", "64 ", "64mib", "64KB", "64K", "64M", "64kib", "MiB",
		"64MiBs", "1e6", "0x10", "64XB", "64TiB" };
	char too_big[64];

	(void) state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		size_t b = 12345;
		if (conf_parse_size(good[i].s, &b) != 0)
			fail_msg("'%s' refused", good[i].s);
		if ((uint64_t) b != good[i].bytes)
			fail_msg("'%s' gave %zu", good[i].s, b);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t b = 0;
		if (conf_parse_size(bad[i], &b) != -1)
			fail_msg("'%s' accepted as %zu", bad[i], b);
	}

	/* the largest size_t parses; one more, or a unit past it, does
	 * not */
	{
		size_t b = 0;
		snprintf(too_big, sizeof(too_big), "%zu", (size_t) SIZE_MAX);
		assert_int_equal(conf_parse_size(too_big, &b), 0);
		assert_true(b == SIZE_MAX);
		snprintf(too_big, sizeof(too_big), "%zu0", (size_t) SIZE_MAX);
		assert_int_equal(conf_parse_size(too_big, &b), -1);
		snprintf(too_big, sizeof(too_big), "%zuGiB",
		    (size_t) (SIZE_MAX / (1u << 30)) + 1);
		assert_int_equal(conf_parse_size(too_big, &b), -1);
		snprintf(too_big, sizeof(too_big), "%zuGiB",
		    (size_t) (SIZE_MAX / (1u << 30)));
		assert_int_equal(conf_parse_size(too_big, &b), 0);
		assert_int_equal(conf_parse_size(NULL, &b), -1);
	}
}

/* util_runtime_dir and conf_state_dir in a child that runs as user uid
 * with no FERRY_RUNTIME_DIR or XDG_RUNTIME_DIR: "RUNTIME|STATE". */
static void
runtime_as_user(uid_t uid, char *out, size_t len)
{
	int     p[2], st;
	pid_t   pid;
	ssize_t n;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct conf c;
		char        rt[256], sd[256], line[600];
		close(p[0]);
		if (setresuid(uid, uid, uid) != 0)
			_exit(1);
		unsetenv("FERRY_RUNTIME_DIR");
		unsetenv("XDG_RUNTIME_DIR");
		conf_defaults(&c);
		if (util_runtime_dir(rt, sizeof(rt)) != 0 ||
		    conf_state_dir(&c, sd, sizeof(sd)) != 0)
			_exit(2);
		snprintf(line, sizeof(line), "%s|%s", rt, sd);
		if (write(p[1], line, strlen(line)) < 0)
			_exit(3);
		_exit(0);
	}
	close(p[1]);
	n = read(p[0], out, len - 1);
	close(p[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_true(n > 0);
	out[n] = '\0';
}

/*
 * This user's runtime directory (util_runtime_dir) and the default state
 * directory in it: $FERRY_RUNTIME_DIR, else $XDG_RUNTIME_DIR/ferry (when
 * absolute), else /tmp/ferry-UID; HOME plays no part; each user has
 * their own; an explicit state_dir wins; too small a buffer fails.
 */
static void
test_state_dir(void **state)
{
	struct conf c;
	char        buf[256];
	char        want[256];

	(void) state;
	saved_env_push();
	conf_defaults(&c);
	free(c.name);
	c.name = strdup("prod");
	unsetenv("FERRY_RUNTIME_DIR");

	assert_int_equal(setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1), 0);
	assert_int_equal(util_runtime_dir(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/run/user/4242/ferry");
	assert_int_equal(conf_state_dir(&c, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/run/user/4242/ferry/prod");

	/* FERRY_RUNTIME_DIR wins (trailing slashes dropped) */
	assert_int_equal(setenv("FERRY_RUNTIME_DIR", "/srv/co-2/run//", 1), 0);
	assert_int_equal(util_runtime_dir(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/srv/co-2/run");
	assert_int_equal(conf_state_dir(&c, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/srv/co-2/run/prod");
	/* ... and must be absolute: it is never taken relative to where a
	 * command happens to run */
	assert_int_equal(setenv("FERRY_RUNTIME_DIR", "run", 1), 0);
	errno = 0;
	assert_int_equal(util_runtime_dir(buf, sizeof(buf)), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(conf_state_dir(&c, buf, sizeof(buf)), -1);
	assert_int_equal(setenv("FERRY_RUNTIME_DIR", "", 1), 0);
	assert_int_equal(util_runtime_dir(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/run/user/4242/ferry");
	unsetenv("FERRY_RUNTIME_DIR");

	/* an empty or relative XDG_RUNTIME_DIR is ignored (as the XDG spec
	 * says), and HOME changes nothing */
	snprintf(want, sizeof(want), "/tmp/ferry-%lu/prod",
	    (unsigned long) getuid());
	assert_int_equal(setenv("XDG_RUNTIME_DIR", "", 1), 0);
	assert_int_equal(conf_state_dir(&c, buf, sizeof(buf)), 0);
	assert_string_equal(buf, want);
	assert_int_equal(setenv("XDG_RUNTIME_DIR", "run/user/4242", 1), 0);
	assert_int_equal(conf_state_dir(&c, buf, sizeof(buf)), 0);
	assert_string_equal(buf, want);
	assert_int_equal(unsetenv("XDG_RUNTIME_DIR"), 0);
	assert_int_equal(setenv("HOME", "/home/someone-else", 1), 0);
	assert_int_equal(conf_state_dir(&c, buf, sizeof(buf)), 0);
	assert_string_equal(buf, want);

	/* exactly fits, then one byte short */
	assert_int_equal(conf_state_dir(&c, buf, strlen(want) + 1), 0);
	assert_string_equal(buf, want);
	assert_int_equal(conf_state_dir(&c, buf, strlen(want)), -1);
	assert_int_equal(conf_state_dir(&c, buf, 0), -1);
	assert_int_equal(util_runtime_dir(buf, 4), -1);
	assert_string_equal(buf, "");

	c.state_dir = strdup("/srv/ferry/prod");
	assert_int_equal(setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1), 0);
	assert_int_equal(setenv("FERRY_RUNTIME_DIR", "/srv/co-2/run", 1), 0);
	assert_int_equal(conf_state_dir(&c, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/srv/ferry/prod");
	assert_int_equal(conf_state_dir(&c, buf, 5), -1);
	conf_free(&c);

	/* another user gets another directory (a child switches user;
	 * needs root) */
	if (geteuid() == 0) {
		runtime_as_user(4242, buf, sizeof(buf));
		assert_string_equal(buf, "/tmp/ferry-4242|/tmp/ferry-4242/local");
		runtime_as_user(4343, buf, sizeof(buf));
		assert_string_equal(buf, "/tmp/ferry-4343|/tmp/ferry-4343/local");
	} else
		print_message("  (not root: the switch to other users is "
		              "skipped)\n");
	saved_env_pop();
}

/* expect_error for a NUL-terminated text. */
static int
expect_text(const char *what, const char *text, int line, int col,
    const char *key, const char *words)
{
	return expect_error(what, text, strlen(text), line, col, key, words);
}

/* ${FERRY_RUNTIME_DIR} in listen, address and state_dir is this user's
 * runtime directory; any other ${...}, a relative FERRY_RUNTIME_DIR, or
 * a socket path it makes too long is an error at its line and column,
 * naming the key. */
static void
test_runtime_token(void **state)
{
	struct conf c;
	char        err[1024], longdir[200];
	const char *path;
	int         bad = 0;

	(void) state;
	saved_env_push();
	assert_int_equal(setenv("FERRY_RUNTIME_DIR", "/run/ft", 1), 0);
	path = write_file("token.yaml",
	    "cluster:\n  state_dir: ${FERRY_RUNTIME_DIR}/st\n"
	    "scheduler:\n"
	    /* in a flow list, YAML wants braces quoted */
	    "  listen: ['ipc://${FERRY_RUNTIME_DIR}/x.sock', "
	    "tcp://127.0.0.1:7710]\n"
	    "  address: ipc://${FERRY_RUNTIME_DIR}/x.sock\n" WORKERS);
	load_ok(path, &c);
	assert_string_equal(c.state_dir, "/run/ft/st");
	assert_string_equal(c.sched.listen[0], "ipc:///run/ft/x.sock");
	assert_string_equal(c.sched.listen[1], "tcp://127.0.0.1:7710");
	assert_string_equal(c.address, "ipc:///run/ft/x.sock");
	conf_free(&c);

	/* without FERRY_RUNTIME_DIR: XDG_RUNTIME_DIR/ferry */
	unsetenv("FERRY_RUNTIME_DIR");
	assert_int_equal(setenv("XDG_RUNTIME_DIR", "/run/user/77", 1), 0);
	path = write_file("token.yaml",
	    "scheduler:\n  listen: ipc://${FERRY_RUNTIME_DIR}/x.sock\n"
	    WORKERS);
	load_ok(path, &c);
	assert_string_equal(c.sched.listen[0], "ipc:///run/user/77/ferry/x.sock");
	assert_string_equal(c.address, c.sched.listen[0]);
	conf_free(&c);

	/* what cannot be expanded */
	bad += expect_text("unknown placeholder",
	    "scheduler:\n  listen: ipc://${HOME}/x.sock\n" WORKERS,
	    2, 11, "scheduler.listen",
	    "unknown placeholder '${HOME}'|only ${FERRY_RUNTIME_DIR}");
	bad += expect_text("unknown placeholder in state_dir",
	    "cluster:\n  state_dir: /a/${FERRY_RUNTIME}\n" SCHED WORKERS,
	    2, 14, "cluster.state_dir",
	    "unknown placeholder '${FERRY_RUNTIME}'");
	assert_int_equal(setenv("FERRY_RUNTIME_DIR", "rel/dir", 1), 0);
	bad += expect_text("relative FERRY_RUNTIME_DIR",
	    "scheduler:\n  listen: tcp://127.0.0.1:1\n"
	    "  address: ipc://${FERRY_RUNTIME_DIR}/x.sock\n" WORKERS,
	    3, 12, "scheduler.address",
	    "FERRY_RUNTIME_DIR is 'rel/dir', not an absolute path");
	memset(longdir, 'd', sizeof(longdir));
	longdir[0]  = '/';
	longdir[99] = '\0';
	assert_int_equal(setenv("FERRY_RUNTIME_DIR", longdir, 1), 0);
	bad += expect_text("socket path too long",
	    "scheduler:\n  listen: ipc://${FERRY_RUNTIME_DIR}/local.sock\n"
	    WORKERS, 2, 11, "scheduler.listen",
	    "ipc path is 110 bytes|the limit is 107|set "
	    "FERRY_RUNTIME_DIR to a shorter directory");
	saved_env_pop();
	(void) err;
	assert_int_equal(bad, 0);
}

/* Worker groups on other hosts, the scheduler's host and the ssh
 * section: values, defaults and fallbacks. */
static void
test_host_keys(void **state)
{
	struct conf              c;
	const struct conf_group *g;

	(void) state;
	/* defaults: no hosts, ssh with BatchMode and a connect timeout */
	load_ok(write_file("nohosts.yaml", SCHED WORKERS), &c);
	assert_null(c.scheduler_host);
	assert_int_equal(c.groups[0].n_hosts, 0);
	assert_int_equal(c.n_ssh_command, 5);
	assert_string_equal(c.ssh_command[0], "ssh");
	assert_string_equal(c.ssh_command[2], "BatchMode=yes");
	assert_string_equal(c.ssh_command[4], "ConnectTimeout=10");
	assert_string_equal(c.ssh_ferry, "ferry");
	conf_free(&c);

	load_ok(write_file("hosts.yaml",
	            "scheduler:\n"
	            "  listen: tcp://10.0.0.1:7710\n"
	            "  host: queue-1\n"
	            "ssh:\n"
	            "  command: [/usr/bin/ssh, -p, '2222']\n"
	            "  ferry: /opt/ferry/bin/ferry\n"
	            "workers:\n"
	            "  - name: cpu\n"
	            "    libraries: [x, ./lib/y.so]\n"
	            "    object_roots: [/data]\n"
	            "    hosts:\n"
	            "      - node1\n"
	            "      - name: ops@node2\n"
	            "        ferry: /usr/local/bin/ferry\n"
	            "        object_roots: [/mnt/a, /mnt/b]\n"
	            "        libraries: [z]\n"
	            "        library_dir: /srv/ferry\n"
	            "  - name: local\n"
	            "    libraries: [x]\n"),
	    &c);
	assert_string_equal(c.scheduler_host, "queue-1");
	assert_int_equal(c.n_ssh_command, 3);
	assert_string_equal(c.ssh_command[0], "/usr/bin/ssh");
	assert_string_equal(c.ssh_command[2], "2222");
	assert_string_equal(c.ssh_ferry, "/opt/ferry/bin/ferry");
	g = &c.groups[0];
	assert_int_equal(g->n_hosts, 2);
	assert_string_equal(g->hosts[0].name, "node1");
	assert_null(g->hosts[0].ferry);
	assert_int_equal(g->hosts[0].n_object_roots, 0);
	assert_int_equal(g->hosts[0].n_libraries, 0);
	assert_null(g->hosts[0].library_dir);
	assert_string_equal(g->hosts[1].name, "ops@node2");
	assert_string_equal(g->hosts[1].ferry, "/usr/local/bin/ferry");
	assert_int_equal(g->hosts[1].n_object_roots, 2);
	assert_string_equal(g->hosts[1].object_roots[1], "/mnt/b");
	assert_int_equal(g->hosts[1].n_libraries, 1);
	assert_string_equal(g->hosts[1].libraries[0], "z");
	assert_string_equal(g->hosts[1].library_dir, "/srv/ferry");
	assert_int_equal(c.groups[1].n_hosts, 0);
	conf_free(&c);

	{
		char path[PATH_MAX];
		source_path("config/examples/many-hosts.yaml", path,
		    sizeof(path));
		load_ok(path, &c);
		assert_string_equal(c.scheduler_host, "queue-1");
		assert_int_equal(c.groups[0].n_hosts, 3);
		assert_string_equal(c.groups[0].hosts[2].name, "ops@node3");
		assert_int_equal(c.groups[1].n_hosts, 0);
		conf_free(&c);
	}
}

/* Bad hosts and ssh sections report position, key and problem. */
static const struct bad_case bad_host_cases[] = {
	{ WITH_GROUP_KEY("    hosts: node1\n"), 6, 12, "workers[0].hosts",
	    "must be a list of hosts|got a string" },
	{ WITH_GROUP_KEY("    hosts: []\n"), 6, 12, "workers[0].hosts",
	    "at least one host" },
	{ WITH_GROUP_KEY("    hosts: [a, b, a]\n"), 6, 19,
	    "workers[0].hosts[2]", "host 'a' listed twice|index 0" },
	{ WITH_GROUP_KEY("    hosts: [-oProxyCommand=x]\n"), 6, 13,
	    "workers[0].hosts[0]", "bad host name|not starting with '-'" },
	{ WITH_GROUP_KEY("    hosts: ['a b']\n"), 6, 13,
	    "workers[0].hosts[0]", "bad host name 'a b'" },
	{ WITH_GROUP_KEY("    hosts:\n      - ferry: /x\n"), 7, 9,
	    "workers[0].hosts[0].name", "required key missing" },
	{ WITH_GROUP_KEY("    hosts:\n      - name: a\n        user: b\n"),
	    8, 9, "workers[0].hosts[0].user",
	    "unknown key|name, ferry, object_roots, libraries, library_dir" },
	{ WITH_GROUP_KEY("    hosts:\n      - name: a\n"
	                 "        object_roots: [data]\n"),
	    8, 24, "workers[0].hosts[0].object_roots[0]",
	    "must be an absolute path|'data'" },
	{ WITH_GROUP_KEY("    hosts:\n      - name: a\n"
	                 "        library_dir: lib\n"),
	    8, 22, "workers[0].hosts[0].library_dir",
	    "must be an absolute path" },
	{ WITH_GROUP_KEY("    hosts:\n      - name: a\n"
	                 "        libraries: []\n"),
	    8, 20, "workers[0].hosts[0].libraries", "at least one library" },
	{ WITH_GROUP_KEY("    hosts:\n      - [a]\n"), 7, 9,
	    "workers[0].hosts[0]", "host name or a mapping|got a list" },
	{ WITH_SCHED("  host: [a]\n"), 3, 9, "scheduler.host",
	    "must be a string|got a list" },
	{ SCHED "ssh: yes\n" WORKERS, 3, 6, "ssh",
	    "must be a mapping|command, ferry" },
	{ SCHED "ssh:\n  command: ssh -v\n" WORKERS, 4, 12, "ssh.command",
	    "must be a list|BatchMode" },
	{ SCHED "ssh:\n  command: []\n" WORKERS, 4, 12, "ssh.command",
	    "at least the program" },
	{ SCHED "ssh:\n  password: x\n" WORKERS, 4, 3, "ssh.password",
	    "unknown key|command, ferry" },
	{ SCHED "ssh:\n  ferry: ''\n" WORKERS, 4, 10, "ssh.ferry",
	    "must not be empty" },
};

static void
test_invalid_hosts(void **state)
{
	(void) state;
	EXPECT_CASES(bad_host_cases);
}

/* Bad security sections report position, key and problem. */
static const struct bad_case bad_security_cases[] = {
	/* not a map */
	{ SCHED WORKERS "security: yes\n", 6, 11, "security",
	    "must be a mapping" },
	{ SCHED WORKERS "security:\n  token: abc\n", 7, 3, "security.token",
	    "unknown key|token_file" },
	{ SCHED WORKERS "security:\n  token_file: ''\n", 7, 15,
	    "security.token_file", "must not be empty" },
	/* a bad bool */
	{ SCHED WORKERS "security:\n  tls:\n    ca_file: ca.pem\n"
	                "    require_client_cert: maybe\n",
	    9, 26, "security.tls.require_client_cert", "true or false" },
	/* client certificates without a CA to check them */
	{ SCHED WORKERS "security:\n  tls:\n    require_client_cert: true\n",
	    8, 26, "security.tls.require_client_cert", "ca_file" },
	{ SCHED WORKERS "security:\n  tls:\n    cert: x\n", 8, 5,
	    "security.tls.cert", "unknown key" },
};

/* security: token_file and tls; relative paths resolve against the
 * file's directory; bad values name the key. */
static void
test_security_keys(void **state)
{
	struct conf c;
	char        want[PATH_MAX + 64];

	(void) state;
	load_ok(write_file("nosec.yaml", SCHED WORKERS), &c);
	assert_null(c.sched.token_file);
	assert_null(c.sched.tls_cert_key_file);
	assert_null(c.sched.tls_ca_file);
	assert_null(c.tls_client_cert_key_file);
	assert_null(c.tls_server_name);
	assert_int_equal(c.sched.require_client_cert, 0);
	conf_free(&c);

	load_ok(write_file("sec.yaml",
	            SCHED WORKERS
	            "security:\n"
	            "  token_file: secrets/token\n"
	            "  tls:\n"
	            "    cert_key_file: /etc/ferry/server.pem\n"
	            "    ca_file: ca.pem\n"
	            "    require_client_cert: true\n"
	            "    client_cert_key_file: ./client.pem\n"
	            "    server_name: queue.example.org\n"),
	    &c);
	snprintf(want, sizeof(want), "%s/secrets/token", tmpdir);
	assert_string_equal(c.sched.token_file, want);
	assert_string_equal(c.sched.tls_cert_key_file, "/etc/ferry/server.pem");
	snprintf(want, sizeof(want), "%s/ca.pem", tmpdir);
	assert_string_equal(c.sched.tls_ca_file, want);
	snprintf(want, sizeof(want), "%s/./client.pem", tmpdir);
	assert_string_equal(c.tls_client_cert_key_file, want);
	assert_string_equal(c.tls_server_name, "queue.example.org");
	assert_int_equal(c.sched.require_client_cert, 1);
	/* the workers of every group use the same files */
	assert_ptr_equal(c.groups[0].wrk.token_file, c.sched.token_file);
	assert_ptr_equal(c.groups[0].wrk.tls_ca_file, c.sched.tls_ca_file);
	assert_ptr_equal(c.groups[0].wrk.tls_cert_key_file,
	    c.tls_client_cert_key_file);
	assert_ptr_equal(c.groups[0].wrk.tls_server_name, c.tls_server_name);
	conf_free(&c);

	EXPECT_CASES(bad_security_cases);
}

/* scheduler.journal: what each bad value says, at its line. */
static const struct bad_case bad_journal_cases[] = {
	{ WITH_SCHED("  journal: on\n"), 3, 12, "scheduler.journal",
	    "must be a mapping (path, sync, window, max_size, restore_wait)|"
	    "got a string" },
	{ WITH_SCHED("  journal: [journal]\n"), 3, 12, "scheduler.journal",
	    "must be a mapping|got a list" },
	{ WITH_JOURNAL("    pth: j\n"), 4, 5, "scheduler.journal.pth",
	    "unknown key|expected one of: path, sync, window, max_size, "
	    "restore_wait" },
	{ WITH_JOURNAL("    path: \"\"\n"), 4, 11, "scheduler.journal.path",
	    "must not be empty" },
	{ WITH_JOURNAL("    path: [a]\n"), 4, 11, "scheduler.journal.path",
	    "must be a string|got a list" },
	{ WITH_JOURNAL("    path: \"a\\tb\"\n"), 4, 11,
	    "scheduler.journal.path", "control character" },
	{ WITH_JOURNAL("    path: ${HOME}/journal\n"), 4, 11,
	    "scheduler.journal.path",
	    "unknown placeholder '${HOME}'|only ${FERRY_RUNTIME_DIR}" },
	{ WITH_JOURNAL("    sync: sometimes\n"), 4, 11,
	    "scheduler.journal.sync",
	    "must be always, batch or none|got 'sometimes'" },
	{ WITH_JOURNAL("    sync: Always\n"), 4, 11, "scheduler.journal.sync",
	    "must be always, batch or none|got 'Always'" },
	{ WITH_JOURNAL("    sync: [batch]\n"), 4, 11,
	    "scheduler.journal.sync",
	    "must be always, batch or none, got a list" },
	{ WITH_JOURNAL("    sync: batch\n    window: 0\n"), 5, 13,
	    "scheduler.journal.window", "greater than 0|got '0'" },
	{ WITH_JOURNAL("    window: 11s\n"), 4, 13,
	    "scheduler.journal.window", "must be at most 10s|got '11s'" },
	{ WITH_JOURNAL("    window: 10001\n"), 4, 13,
	    "scheduler.journal.window", "must be at most 10s|got '10001'" },
	{ WITH_JOURNAL("    window: 1.5ms\n"), 4, 13,
	    "scheduler.journal.window", "must be a duration|got '1.5ms'" },
	{ WITH_JOURNAL("    window: none\n"), 4, 13,
	    "scheduler.journal.window", "must be a duration|got 'none'" },
	{ WITH_JOURNAL("    max_size: 1KiB\n"), 4, 15,
	    "scheduler.journal.max_size", "must be at least 1MiB|got '1KiB'" },
	{ WITH_JOURNAL("    max_size: 1048575\n"), 4, 15,
	    "scheduler.journal.max_size", "at least 1MiB|got '1048575'" },
	{ WITH_JOURNAL("    max_size: lots\n"), 4, 15,
	    "scheduler.journal.max_size", "must be a size|got 'lots'" },
	{ WITH_JOURNAL("    max_size: {a: 1}\n"), 4, 15,
	    "scheduler.journal.max_size", "must be a size, got a mapping" },
	{ WITH_JOURNAL("    restore_wait: soon\n"), 4, 19,
	    "scheduler.journal.restore_wait", "must be a duration|got 'soon'" },
	{ WITH_JOURNAL("    restore_wait: -1s\n"), 4, 19,
	    "scheduler.journal.restore_wait", "must be a duration|got '-1s'" },
};

/* scheduler.journal: each value lands in struct sched_config, at and
 * inside the edges of its range; bad values name the key and the line. */
static void
test_journal_keys(void **state)
{
	struct conf c;

	(void) state;
	saved_env_push();
	assert_int_equal(setenv("FERRY_RUNTIME_DIR", "/run/fj", 1), 0);
	load_ok(write_file("journal.yaml",
	            WITH_JOURNAL("    path: journal\n    sync: batch\n"
	                         "    window: 5ms\n    max_size: 64GiB\n"
	                         "    restore_wait: 10s\n")),
	    &c);
	assert_string_equal(c.sched.journal_path, "/run/fj/local/journal");
	assert_int_equal(c.sched.journal_sync, SCHED_SYNC_BATCH);
	assert_int_equal(c.sched.journal_window_ms, 5);
	assert_int_equal(c.sched.journal_max_size, (size_t) 64 << 30);
	assert_int_equal(c.sched.restore_wait_ms, 10000);
	conf_free(&c);

	/* the cluster section may follow; the edges of each range */
	load_ok(write_file("journal.yaml",
	            WITH_JOURNAL("    path: a/j\n    sync: none\n"
	                         "    window: 10s\n    max_size: 1MiB\n"
	                         "    restore_wait: 0\n")
	                "cluster:\n  name: jc\n"),
	    &c);
	assert_string_equal(c.sched.journal_path, "/run/fj/jc/a/j");
	assert_int_equal(c.sched.journal_sync, SCHED_SYNC_NONE);
	assert_int_equal(c.sched.journal_window_ms, 10000);
	assert_int_equal(c.sched.journal_max_size, (size_t) 1 << 20);
	assert_int_equal(c.sched.restore_wait_ms, 0);
	conf_free(&c);
	saved_env_pop();
	EXPECT_CASES(bad_journal_cases);
}

/* scheduler.journal.path: a relative path is taken in the state
 * directory (RUNTIME/NAME, or cluster.state_dir), an absolute one is
 * kept, ${FERRY_RUNTIME_DIR} is expanded. */
static void
test_journal_path(void **state)
{
	struct conf c;
	char        want[PATH_MAX + 64];
	int         bad = 0;

	(void) state;
	saved_env_push();
	assert_int_equal(setenv("FERRY_RUNTIME_DIR", "/run/fj", 1), 0);
	/* in cluster.state_dir, relative to the file's directory */
	load_ok(write_file("journal.yaml",
	            "cluster:\n  state_dir: st\n"
	            WITH_JOURNAL("    path: journal\n    sync: always\n"
	                         "    window: 1ms\n")),
	    &c);
	snprintf(want, sizeof(want), "%s/st/journal", tmpdir);
	assert_string_equal(c.sched.journal_path, want);
	assert_int_equal(c.sched.journal_sync, SCHED_SYNC_ALWAYS);
	assert_int_equal(c.sched.journal_window_ms, 1);
	conf_free(&c);

	/* absolute, as written; ${FERRY_RUNTIME_DIR} expanded */
	load_ok(write_file("journal.yaml",
	            "cluster:\n  state_dir: /srv/st\n"
	            WITH_JOURNAL("    path: /var/lib/ferry/j\n")),
	    &c);
	assert_string_equal(c.sched.journal_path, "/var/lib/ferry/j");
	conf_free(&c);
	load_ok(write_file("journal.yaml",
	            WITH_JOURNAL("    path: ${FERRY_RUNTIME_DIR}/j\n")),
	    &c);
	assert_string_equal(c.sched.journal_path, "/run/fj/j");
	conf_free(&c);

	/* a relative path needs a state directory */
	assert_int_equal(setenv("FERRY_RUNTIME_DIR", "rel", 1), 0);
	bad += expect_text("relative path, relative FERRY_RUNTIME_DIR",
	    WITH_JOURNAL("    path: journal\n"), 4, 11,
	    "scheduler.journal.path",
	    "taken in the state directory|FERRY_RUNTIME_DIR is 'rel', not "
	    "an absolute path");
	saved_env_pop();
	assert_int_equal(bad, 0);
}

/* The journal's sync modes as words, both ways. */
static void
test_parse_sync(void **state)
{
	(void) state;
	assert_int_equal(conf_parse_sync("always"), SCHED_SYNC_ALWAYS);
	assert_int_equal(conf_parse_sync("batch"), SCHED_SYNC_BATCH);
	assert_int_equal(conf_parse_sync("none"), SCHED_SYNC_NONE);
	assert_int_equal(conf_parse_sync("Batch"), -1);
	assert_int_equal(conf_parse_sync(""), -1);
	assert_int_equal(conf_parse_sync(NULL), -1);
	assert_string_equal(conf_sync_name(SCHED_SYNC_ALWAYS), "always");
	assert_string_equal(conf_sync_name(SCHED_SYNC_BATCH), "batch");
	assert_string_equal(conf_sync_name(SCHED_SYNC_NONE), "none");
	assert_string_equal(conf_sync_name(3), "?");
	assert_string_equal(conf_sync_name(-1), "?");
}

/* ------------------------------------------- defaults and their docs */

/*
 * The scheduler's and the worker's own defaults (what they run with
 * without a cluster file) are the file's: one initializer each
 * (SCHED_CONFIG_DEFAULTS, WRK_OPTIONS_DEFAULTS), which the file's keys
 * start from.  Only drain_timeout differs on purpose: the file's key is
 * the scheduler's (30 s), which its workers then use too.
 */
static void
test_defaults_agree(void **state)
{
	struct sched_config s;
	struct wrk_options  w;
	struct conf         c;
	char                path[PATH_MAX];

	(void) state;
	sched_config_defaults(&s);
	wrk_options_defaults(&w);
	conf_defaults(&c);
#define SAME(f) assert_true(c.sched.f == s.f)
	SAME(n_listen);
	SAME(heartbeat_interval_ms);
	SAME(heartbeat_timeout_ms);
	SAME(max_message_size);
	SAME(max_queue);
	SAME(max_results);
	SAME(result_ttl_ms);
	SAME(max_result_bytes);
	SAME(task_retries);
	SAME(task_backoff_ms);
	SAME(task_backoff_max_ms);
	SAME(task_timeout_ms);
	SAME(task_retry_errors);
	SAME(quarantine_after);
	SAME(report_grace_ms);
	SAME(function_wait_ms);
	SAME(unknown_function_wait_ms);
	SAME(n_groups);
	SAME(drain_timeout_ms);
	SAME(journal_sync);
	SAME(journal_window_ms);
	SAME(journal_max_size);
	SAME(restore_wait_ms);
	SAME(require_client_cert);
#undef SAME
	assert_null(c.sched.ready_file);
	assert_null(c.sched.journal_path);
	assert_null(s.journal_path);
	assert_int_equal(c.connect_timeout_ms, w.connect_timeout_ms);
	conf_free(&c);

	/* a group with only a name and libraries: the workers' defaults,
	 * and the rest of the file's settings */
	load_ok(write_file("g.yaml", SCHED WORKERS), &c);
	assert_int_equal(c.groups[0].wrk.slots, w.slots);
	assert_int_equal(c.groups[0].wrk.prefetch, w.prefetch);
	assert_int_equal(c.groups[0].wrk.object_cache, w.object_cache);
	assert_int_equal(c.groups[0].wrk.memory_limit, w.memory_limit);
	assert_int_equal(c.groups[0].wrk.max_tasks, w.max_tasks);
	assert_int_equal(c.groups[0].wrk.slot_table_fd, w.slot_table_fd);
	assert_int_equal(c.groups[0].wrk.connect_timeout_ms,
	    w.connect_timeout_ms);
	assert_int_equal(c.groups[0].wrk.max_message_size, w.max_message_size);
	assert_int_equal(c.groups[0].wrk.drain_timeout_ms,
	    c.sched.drain_timeout_ms);
	assert_int_equal(c.groups[0].processes, 0);
	assert_ptr_equal(c.groups[0].wrk.connect, c.address);
	assert_ptr_equal(c.groups[0].wrk.library_dir, c.dir);
	assert_string_equal(c.sched.groups[0], "a");
	assert_int_equal(c.sched.n_groups, 1);
	snprintf(path, sizeof(path), "%s", c.dir);
	assert_string_equal(path, tmpdir);
	conf_free(&c);
}

/* conf_key() walks every key, mappings and lists of mappings included,
 * and shows each default as the documentation writes it. */
static void
test_schema_keys(void **state)
{
	static const struct {
		const char *path, *def;
	} want[] = {
		{ "cluster", "see below" },
		{ "cluster.name", "`local`" },
		{ "log_level", "`info`" },
		{ "scheduler.listen", "(required)" },
		{ "scheduler.heartbeat_timeout", "`5s`" },
		{ "scheduler.max_message_size", "`64MiB`" },
		{ "scheduler.max_result_bytes", "`1GiB`" },
		{ "scheduler.result_ttl", "`10m`" },
		{ "scheduler.task_defaults.retry_backoff", "`100ms`" },
		{ "scheduler.task_defaults.timeout", "`none`" },
		{ "scheduler.task_defaults.retry_errors", "`false`" },
		{ "scheduler.function_wait", "`0`" },
		{ "scheduler.journal", "off" },
		{ "scheduler.journal.path", "(none: no journal)" },
		{ "scheduler.journal.sync", "`always`" },
		{ "scheduler.journal.window", "`10ms`" },
		{ "scheduler.journal.max_size", "`16GiB`" },
		{ "scheduler.journal.restore_wait", "`3s`" },
		{ "workers[].processes", "`auto`" },
		{ "workers[].prefetch", "`1024`" },
		{ "workers[].object_cache", "`auto`" },
		{ "workers[].memory_limit", "`none`" },
		{ "workers[].hosts[].library_dir", "the cluster file's directory" },
		{ "ssh.command", "`[ssh, -o, BatchMode=yes, -o, ConnectTimeout=10]`" },
		{ "security.tls.require_client_cert", "`false`" },
	};
	char        def[160];
	const char *p;
	size_t      n = 0;

	(void) state;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		size_t j = 0;

		while ((p = conf_key(j, def, sizeof(def))) != NULL &&
		    strcmp(p, want[i].path) != 0)
			j++;
		if (p == NULL)
			fail_msg("no key '%s'", want[i].path);
		assert_string_equal(def, want[i].def);
	}
	while (conf_key(n, def, sizeof(def)) != NULL)
		n++;
	assert_null(conf_key(n + 5, def, sizeof(def)));
	assert_true(n >= 50);
}

/* One key documented in docs/configuration.md. */
struct doc_key {
	char path[128];
	char def[160];
	int  line;
};

/* The path below which the keys of the table under heading h sit
 * ("scheduler.", "workers[].hosts[]."), or "" with *ok 0 when h names
 * no mapping of the schema. */
static void
doc_prefix(const char *h, char *prefix, size_t len, int *ok)
{
	const char *open = strchr(h, '`'), *close;
	char        name[64], def[160];

	*ok       = 0;
	prefix[0] = '\0';
	if (strncmp(h, "## Top level", 12) == 0) {
		*ok = 1;
		return;
	}
	if (open == NULL || (close = strchr(open + 1, '`')) == NULL)
		return;
	snprintf(name, sizeof(name), "%.*s", (int) (close - open - 1),
	    open + 1);
	for (size_t i = 0; conf_key(i, def, sizeof(def)) != NULL; i++) {
		const char *p    = conf_key(i, def, sizeof(def));
		const char *last = strrchr(p, '.');
		char        key[128];
		size_t      kl;

		snprintf(key, sizeof(key), "%s", p);
		if (strcmp(last != NULL ? last + 1 : p, name) != 0)
			continue;
		kl = strlen(key);
		/* a mapping or a list of mappings: keys follow below it */
		for (size_t j = i + 1; conf_key(j, def, sizeof(def)) != NULL;
		     j++) {
			p = conf_key(j, def, sizeof(def));
			if (strncmp(p, key, kl) == 0 &&
			    (p[kl] == '.' || strncmp(p + kl, "[].", 3) == 0)) {
				snprintf(prefix, len, "%s%s", key,
				    p[kl] == '.' ? "." : "[].");
				*ok = 1;
				return;
			}
		}
	}
}

/* Split a markdown table row into trimmed cells; returns how many. */
static size_t
doc_cells(char *line, char **cells, size_t max)
{
	size_t n = 0;
	char  *p = line + 1, *bar;

	while (n < max && (bar = strchr(p, '|')) != NULL) {
		char *e = bar;
		*bar    = '\0';
		while (*p == ' ')
			p++;
		while (e > p && e[-1] == ' ')
			*--e = '\0';
		cells[n++] = p;
		p          = bar + 1;
	}
	return n;
}

/* Read every key table of docs/configuration.md (a table whose header
 * has "Key" and "Default") into keys; returns how many. */
static size_t
doc_keys(struct doc_key *keys, size_t max)
{
	char    path[PATH_MAX], line[4096], prefix[128] = "";
	FILE   *f;
	size_t  n = 0;
	int     ok = 0, lineno = 0, key_col = -1, def_col = -1;

	source_path("docs/configuration.md", path, sizeof(path));
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		char  *cells[16];
		size_t nc;

		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#') {
			doc_prefix(line, prefix, sizeof(prefix), &ok);
			key_col = def_col = -1;
			continue;
		}
		if (line[0] != '|') {
			key_col = def_col = -1;
			continue;
		}
		nc = doc_cells(line, cells, 16);
		if (key_col < 0 && def_col < 0 && nc > 0 &&
		    strcmp(cells[0], "Key") == 0) {
			for (size_t i = 0; i < nc; i++) {
				if (strcmp(cells[i], "Default") == 0)
					def_col = (int) i;
			}
			key_col = 0;
			if (def_col < 0 || !ok)
				fail_msg("docs/configuration.md:%d: a key table "
				         "without a Default column or under a "
				         "heading that names no mapping",
				    lineno);
			continue;
		}
		if (key_col < 0 || strncmp(cells[0], "---", 3) == 0 ||
		    strncmp(cells[0], "-", 1) == 0 || (size_t) def_col >= nc)
			continue;
		assert_true(n < max);
		if (cells[0][0] != '`' || cells[0][strlen(cells[0]) - 1] != '`')
			fail_msg("docs/configuration.md:%d: key '%s' is not "
			         "written `like_this`",
			    lineno, cells[0]);
		if (snprintf(keys[n].path, sizeof(keys[n].path), "%s%.*s",
		        prefix, (int) strlen(cells[0]) - 2, cells[0] + 1) >=
		        (int) sizeof(keys[n].path) ||
		    snprintf(keys[n].def, sizeof(keys[n].def), "%s",
		        cells[def_col]) >= (int) sizeof(keys[n].def))
			fail_msg("docs/configuration.md:%d: key or default too "
			         "long for this test",
			    lineno);
		keys[n++].line = lineno;
	}
	fclose(f);
	return n;
}

/*
 * docs/configuration.md lists exactly the schema's keys, each once and
 * with the default the loader gives it: a key added to the table (or a
 * default changed) without the documentation fails here.
 */
static void
test_docs_keys(void **state)
{
	static struct doc_key docs[256];
	size_t                n = doc_keys(docs, 256), n_schema = 0;
	int                   failures = 0;
	char                  def[160];
	const char           *p;

	(void) state;
	for (size_t i = 0; (p = conf_key(i, def, sizeof(def))) != NULL; i++) {
		int found = 0;

		n_schema++;
		for (size_t j = 0; j < n; j++) {
			if (strcmp(docs[j].path, p) != 0)
				continue;
			if (found++) {
				print_error("docs/configuration.md:%d: '%s' "
				            "listed again\n",
				    docs[j].line, p);
				failures++;
			} else if (strcmp(docs[j].def, def) != 0) {
				print_error("docs/configuration.md:%d: '%s' "
				            "default '%s', the loader's is "
				            "'%s'\n",
				    docs[j].line, p, docs[j].def, def);
				failures++;
			}
		}
		if (!found) {
			print_error("docs/configuration.md: key '%s' (default "
			            "'%s') is not listed\n",
			    p, def);
			failures++;
		}
	}
	for (size_t j = 0; j < n; j++) {
		int known = 0;

		for (size_t i = 0; (p = conf_key(i, def, sizeof(def))) != NULL;
		     i++)
			known |= strcmp(docs[j].path, p) == 0;
		if (!known) {
			print_error("docs/configuration.md:%d: '%s' is not a "
			            "key of the cluster file\n",
			    docs[j].line, docs[j].path);
			failures++;
		}
	}
	assert_true(n_schema > 40);
	assert_int_equal(failures, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_object_keys),
		cmocka_unit_test(test_python_keys),
		cmocka_unit_test(test_failure_keys),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_state_dir),
		cmocka_unit_test(test_runtime_token),
		cmocka_unit_test(test_local_yaml),
		cmocka_unit_test(test_examples),
		cmocka_unit_test(test_minimal_and_nulls),
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_bom_crlf),
		cmocka_unit_test(test_invalid_files),
		cmocka_unit_test(test_invalid_data_files),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_unreadable),
		cmocka_unit_test(test_error_buffer),
		cmocka_unit_test(test_host_keys),
		cmocka_unit_test(test_invalid_hosts),
		cmocka_unit_test(test_security_keys),
		cmocka_unit_test(test_journal_keys),
		cmocka_unit_test(test_journal_path),
		cmocka_unit_test(test_parse_sync),
		cmocka_unit_test(test_defaults_agree),
		cmocka_unit_test(test_schema_keys),
		cmocka_unit_test(test_docs_keys),
	};

	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
