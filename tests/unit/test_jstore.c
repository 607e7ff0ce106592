/*
 * test_jstore.c - unit tests for scheduler/jstore.c, the journal on disk:
 * every kind of record comes back as written; an acknowledgement deletes
 * exactly its session's results up to it; a session goes with all its
 * results; deleting what is not there is no error; a second open, a newer
 * format, a missing table, a full map and an incomplete batch are refused
 * with a message naming the journal; and damaged files (a record's byte
 * flipped, records hidden by a damaged page, empty, garbage, truncated,
 * a node that makes LMDB read past the file, an odd lock file) are
 * recovered without the damaged records and counted, or refused with the
 * file's name, never a crash (issue 10).
 *
 * Every test works in its own directory under a mkdtemp directory TMP,
 * removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "jstore.h"

#define MAP (8u << 20) /* a journal's map in these tests */

static char tmp[PATH_MAX]; /* the mkdtemp directory */

/* --------------------------------------------------------------- helpers */

static void fmt(char *buf, size_t len, const char *f, ...)
    __attribute__((format(printf, 3, 4)));

/* snprintf that fails the test on truncation. */
static void
fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;
	int     n;
	va_start(ap, f);
	n = vsnprintf(buf, len, f, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len)
		fail_msg("fmt: '%s' truncated", f);
}

/* dir = TMP/name, made empty; path = dir/data.mdb when path != NULL. */
static void
journal_dir(char *dir, const char *name, char *path)
{
	fmt(dir, PATH_MAX, "%s/%s", tmp, name);
	assert_int_equal(mkdir(dir, 0700), 0);
	if (path != NULL)
		fmt(path, PATH_MAX, "%s/data.mdb", dir);
}

static struct jstore *
open_ok(const char *dir, size_t map)
{
	struct jstore *j;
	char           err[512] = "";
	if (jstore_open(&j, dir, map, err, sizeof(err)) != 0)
		fail_msg("jstore_open %s: %s", dir, err);
	return j;
}

static void
commit_ok(struct jstore *j, struct jbatch *b)
{
	char err[512] = "";
	if (jstore_commit(j, b, err, sizeof(err)) != 0)
		fail_msg("jstore_commit: %s", err);
	jbatch_clear(b);
}

/* The whole file at path into *len bytes (malloc'd). */
static uint8_t *
read_file(const char *path, size_t *len)
{
	struct stat st;
	uint8_t    *p;
	int         fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	*len = (size_t)st.st_size;
	p    = malloc(*len + 1);
	assert_non_null(p);
	assert_int_equal(read(fd, p, *len), (ssize_t)*len);
	close(fd);
	return p;
}

static void
write_file(const char *path, const void *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* Where in buf (len bytes) the record of kind with key k (klen bytes)
 * starts: its key, followed by a value that says kind and version 1
 * (branch pages hold copies of some keys, without a value).  Fails
 * unless there is exactly one (written in one commit, so LMDB holds no
 * older copy of its page). */
static size_t
find_record(const uint8_t *buf, size_t len, const void *k, size_t klen,
    int kind)
{
	size_t at = SIZE_MAX;
	for (size_t i = 0; i + klen + 8 <= len; i++)
		if (memcmp(buf + i, k, klen) == 0 &&
		    buf[i + klen + 4] == kind && buf[i + klen + 5] == 1) {
			if (at != SIZE_MAX)
				fail_msg("record found twice");
			at = i;
		}
	if (at == SIZE_MAX)
		fail_msg("record not found");
	return at;
}

static void
be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* ------------------------------------------------- records, and reading */

/* Task number i as the tests write it: ids 1000 + i, in sessions 1..3,
 * with i % 4 object keys, arguments of i % 300 bytes and a reason on
 * every third. */
static void
make_task(uint32_t i, struct jtask *t, uint8_t *args, char *why)
{
	memset(t, 0, sizeof(*t));
	t->id             = 1000 + i;
	t->session        = 1 + i % 3;
	t->tag            = 0x0100000000000000ull + i;
	t->attempts       = (uint16_t)(i % 7);
	t->failures       = (uint16_t)(i % 5);
	t->kills          = (uint16_t)(i % 3);
	t->retry_errors   = (uint8_t)(i % 2);
	t->run_anyway     = (uint8_t)(i / 2 % 2);
	t->retries        = i * 3;
	t->backoff_ms     = 100 + i;
	t->backoff_max_ms = 60000;
	t->timeout_ms     = i % 2 ? 0 : 5000;
	t->n_objs         = (uint8_t)(i % 4 == 3 ? JSTORE_MAX_OBJS : i % 4);
	for (uint8_t k = 0; k < t->n_objs; k++)
		t->objs[k] = ((uint64_t)i << 32) | k;
	t->fn     = i % 2 ? "pkg.mod.function" : "f";
	t->fn_len = (uint32_t)strlen(t->fn);
	t->args_len = i % 300;
	for (uint32_t k = 0; k < t->args_len; k++)
		args[k] = (uint8_t)(i * 31 + k);
	t->args = args;
	if (i % 3 == 0) {
		snprintf(why, 64, "worker %u died: exit status %u", i, i % 9);
		t->why     = why;
		t->why_len = (uint32_t)strlen(why);
	}
}

static void
make_result(uint64_t session, uint64_t seq, struct jresult *r,
    uint8_t *data)
{
	memset(r, 0, sizeof(*r));
	r->session  = session;
	r->seq      = seq;
	r->tag      = session * 1000000 + seq;
	r->code     = seq % 3 == 0 ? -2 : (int32_t)(seq % 2);
	r->attempts = (uint32_t)(seq % 4 + 1);
	r->len      = (uint32_t)(seq % 200);
	for (uint32_t k = 0; k < r->len; k++)
		data[k] = (uint8_t)(session + seq + k);
	r->data = data;
}

#define MAX_TASKS 2048
#define MAX_SEQ 1024

/* What a read gave back. */
struct got {
	uint8_t  task[MAX_TASKS];          /* times task i came back */
	uint8_t  result[4][MAX_SEQ + 1];   /* session 1..3, seq */
	uint64_t session_next_seq[4];      /* 0: not back */
	int      bad;                      /* a record unlike what was written */
};

static int
on_session(void *arg, const struct jsession *s)
{
	struct got *g = arg;
	if (s->id < 1 || s->id > 3 || s->max_tag != s->id * 10)
		g->bad++;
	else
		g->session_next_seq[s->id] = s->next_seq;
	return 0;
}

static int
on_task(void *arg, const struct jtask *t)
{
	struct got  *g = arg;
	struct jtask e;
	uint8_t      args[300];
	char         why[64];
	uint32_t     i = (uint32_t)(t->id - 1000);

	if (t->id < 1000 || i >= MAX_TASKS) {
		g->bad++;
		return 0;
	}
	make_task(i, &e, args, why);
	if (t->session != e.session || t->tag != e.tag ||
	    t->attempts != e.attempts || t->failures != e.failures ||
	    t->kills != e.kills || t->retry_errors != e.retry_errors ||
	    t->run_anyway != e.run_anyway ||
	    t->retries != e.retries || t->backoff_ms != e.backoff_ms ||
	    t->backoff_max_ms != e.backoff_max_ms ||
	    t->timeout_ms != e.timeout_ms || t->n_objs != e.n_objs ||
	    memcmp(t->objs, e.objs, sizeof(e.objs)) != 0 ||
	    t->fn_len != e.fn_len || memcmp(t->fn, e.fn, e.fn_len) != 0 ||
	    t->args_len != e.args_len ||
	    memcmp(t->args, e.args, e.args_len) != 0 ||
	    t->why_len != e.why_len || (t->why == NULL) != (e.why == NULL) ||
	    (e.why != NULL && memcmp(t->why, e.why, e.why_len) != 0)) {
		g->bad++;
		return 0;
	}
	g->task[i]++;
	return 0;
}

static int
on_result(void *arg, const struct jresult *r)
{
	struct got    *g = arg;
	struct jresult e;
	uint8_t        data[200];

	if (r->session < 1 || r->session > 3 || r->seq > MAX_SEQ) {
		g->bad++;
		return 0;
	}
	make_result(r->session, r->seq, &e, data);
	if (r->tag != e.tag || r->code != e.code ||
	    r->attempts != e.attempts || r->len != e.len ||
	    memcmp(r->data, e.data, e.len) != 0) {
		g->bad++;
		return 0;
	}
	g->result[r->session][r->seq]++;
	return 0;
}

/* Read the journal in dir (opened and closed here) into g and r. */
static void
read_back(const char *dir, struct got *g, struct jrestore *r)
{
	struct jstore *j = open_ok(dir, MAP);
	char           err[512] = "";

	memset(g, 0, sizeof(*g));
	memset(r, 0, sizeof(*r));
	r->arg     = g;
	r->session = on_session;
	r->task    = on_task;
	r->result  = on_result;
	if (jstore_read(j, r, err, sizeof(err)) != 0)
		fail_msg("jstore_read: %s", err);
	jstore_close(j);
	assert_int_equal(g->bad, 0);
}

/* Write sessions 1..3, tasks 0..n_tasks-1 and results 1..n_seq of each
 * session, and next_task_id, in one commit. */
static void
fill(struct jstore *j, uint32_t n_tasks, uint64_t n_seq)
{
	struct jbatch b;
	uint8_t       args[300], data[200];
	char          why[64];

	jbatch_init(&b);
	for (uint64_t s = 1; s <= 3; s++) {
		struct jsession js = { s, n_seq + 1, s * 10 };
		assert_int_equal(jbatch_put_session(&b, &js), 0);
	}
	for (uint32_t i = 0; i < n_tasks; i++) {
		struct jtask t;
		make_task(i, &t, args, why);
		assert_int_equal(jbatch_put_task(&b, &t), 0);
	}
	for (uint64_t s = 1; s <= 3; s++)
		for (uint64_t q = 1; q <= n_seq; q++) {
			struct jresult r;
			make_result(s, q, &r, data);
			assert_int_equal(jbatch_put_result(&b, &r), 0);
		}
	assert_int_equal(jbatch_next_task_id(&b, 1000 + n_tasks), 0);
	commit_ok(j, &b);
	jbatch_fini(&b);
}

/* CRC32C's check value, and the same sums whatever the lengths and
 * alignments (the instruction eight bytes at a time, or the table: this
 * test also runs with FERRY_CRC_TABLE set, as jstore_crc_table). */
static void
test_crc32c(void **state)
{
	uint8_t buf[80];
	(void)state;

	assert_int_equal(jstore_crc32c(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(jstore_crc32c(0, "", 0), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	for (size_t off = 0; off < 8; off++)
		for (size_t n = 0; n + off <= 64; n++) {
			uint32_t whole = jstore_crc32c(0, buf + off, n);
			uint32_t parts = 0;
			for (size_t i = 0; i < n; i++) /* byte by byte */
				parts = jstore_crc32c(parts, buf + off + i, 1);
			assert_int_equal(whole, parts);
		}
}

static void
test_round_trip(void **state)
{
	char            dir[PATH_MAX];
	struct jstore  *j;
	struct got      g;
	struct jrestore r;
	(void)state;

	journal_dir(dir, "round_trip", NULL);
	j = open_ok(dir, MAP);
	fill(j, 100, 50);
	jstore_close(j);
	read_back(dir, &g, &r);
	assert_int_equal(r.sessions, 3);
	assert_int_equal(r.tasks, 100);
	assert_int_equal(r.results, 150);
	assert_int_equal(r.damaged, 0);
	assert_int_equal(r.missing, 0);
	assert_int_equal(r.next_task_id, 1100);
	for (int i = 0; i < 100; i++)
		assert_int_equal(g.task[i], 1);
	for (int s = 1; s <= 3; s++) {
		assert_int_equal(g.session_next_seq[s], 51);
		for (int q = 1; q <= 50; q++)
			assert_int_equal(g.result[s][q], 1);
	}
}

/* A put of an existing key replaces it; records may be empty. */
static void
test_replace_and_empty(void **state)
{
	char            dir[PATH_MAX];
	struct jstore  *j;
	struct jbatch   b;
	struct jtask    t;
	struct jresult  res;
	struct got      g;
	struct jrestore r;
	uint8_t         args[300], data[200];
	char            why[64];
	(void)state;

	journal_dir(dir, "replace", NULL);
	j = open_ok(dir, MAP);
	jbatch_init(&b);
	make_task(5, &t, args, why);
	t.attempts = 99; /* replaced below */
	assert_int_equal(jbatch_put_task(&b, &t), 0);
	assert_int_equal(jbatch_next_task_id(&b, 7), 0);
	commit_ok(j, &b);
	make_task(5, &t, args, why);
	assert_int_equal(jbatch_put_task(&b, &t), 0);
	make_task(300, &t, args, why); /* no arguments, no objects */
	assert_int_equal(t.args_len, 0);
	assert_int_equal(t.n_objs, 0);
	assert_int_equal(jbatch_put_task(&b, &t), 0);
	make_result(2, 200, &res, data); /* no data */
	assert_int_equal(res.len, 0);
	assert_int_equal(jbatch_put_result(&b, &res), 0);
	assert_int_equal(jbatch_next_task_id(&b, 1301), 0);
	commit_ok(j, &b);
	jbatch_fini(&b);
	jstore_close(j);

	read_back(dir, &g, &r);
	assert_int_equal(r.tasks, 2);
	assert_int_equal(g.task[5], 1);
	assert_int_equal(g.task[300], 1);
	assert_int_equal(r.results, 1);
	assert_int_equal(g.result[2][200], 1);
	assert_int_equal(r.next_task_id, 1301);
	assert_int_equal(r.damaged, 0);
}

/* An acknowledgement deletes the session's results with seq <= ack, over
 * many pages, and no other session's. */
static void
test_ack(void **state)
{
	char            dir[PATH_MAX];
	struct jstore  *j;
	struct jbatch   b;
	struct got      g;
	struct jrestore r;
	(void)state;

	journal_dir(dir, "ack", NULL);
	j = open_ok(dir, MAP);
	fill(j, 10, 600);
	jbatch_init(&b);
	assert_int_equal(jbatch_ack(&b, 2, 450), 0);
	assert_int_equal(jbatch_ack(&b, 3, 0), 0); /* nothing: seqs from 1 */
	assert_int_equal(jbatch_ack(&b, 1, 1), 0);
	commit_ok(j, &b);
	jbatch_fini(&b);
	jstore_close(j);

	read_back(dir, &g, &r);
	assert_int_equal(r.results, 599 + 150 + 600);
	for (int q = 1; q <= 600; q++) {
		assert_int_equal(g.result[1][q], q > 1);
		assert_int_equal(g.result[2][q], q > 450);
		assert_int_equal(g.result[3][q], 1);
	}
	/* the sessions themselves stay */
	assert_int_equal(r.sessions, 3);

	/* all of a session's results, then again: nothing left to do */
	j = open_ok(dir, MAP);
	jbatch_init(&b);
	assert_int_equal(jbatch_ack(&b, 3, UINT64_MAX), 0);
	assert_int_equal(jbatch_ack(&b, 3, UINT64_MAX), 0);
	commit_ok(j, &b);
	jbatch_fini(&b);
	jstore_close(j);
	read_back(dir, &g, &r);
	assert_int_equal(r.results, 599 + 150);
	assert_int_equal(g.result[2][451], 1);
	assert_int_equal(g.result[1][600], 1);
}

/* Deleting a session deletes it and all its results, no other's. */
static void
test_del_session(void **state)
{
	char            dir[PATH_MAX];
	struct jstore  *j;
	struct jbatch   b;
	struct got      g;
	struct jrestore r;
	(void)state;

	journal_dir(dir, "del_session", NULL);
	j = open_ok(dir, MAP);
	fill(j, 30, 400);
	jbatch_init(&b);
	assert_int_equal(jbatch_del_session(&b, 2), 0);
	assert_int_equal(jbatch_del_task(&b, 1000 + 7), 0);
	commit_ok(j, &b);
	jbatch_fini(&b);
	jstore_close(j);

	read_back(dir, &g, &r);
	assert_int_equal(r.sessions, 2);
	assert_int_equal(g.session_next_seq[2], 0);
	assert_int_equal(g.session_next_seq[1], 401);
	assert_int_equal(g.session_next_seq[3], 401);
	assert_int_equal(r.results, 800);
	for (int q = 1; q <= 400; q++) {
		assert_int_equal(g.result[1][q], 1);
		assert_int_equal(g.result[2][q], 0);
		assert_int_equal(g.result[3][q], 1);
	}
	/* tasks are not the session's to delete */
	assert_int_equal(r.tasks, 29);
	assert_int_equal(g.task[7], 0);
	assert_int_equal(g.task[8], 1);
}

/* Deleting what is not there commits and changes nothing. */
static void
test_delete_absent(void **state)
{
	char            dir[PATH_MAX];
	struct jstore  *j;
	struct jbatch   b;
	struct got      g;
	struct jrestore r;
	(void)state;

	journal_dir(dir, "absent", NULL);
	j = open_ok(dir, MAP);
	jbatch_init(&b);
	/* on an empty journal */
	assert_int_equal(jbatch_del_task(&b, 5), 0);
	assert_int_equal(jbatch_del_session(&b, 5), 0);
	assert_int_equal(jbatch_ack(&b, 5, 100), 0);
	commit_ok(j, &b);
	fill(j, 20, 10);
	/* and next to records that are there */
	assert_int_equal(jbatch_del_task(&b, 999), 0);
	assert_int_equal(jbatch_del_task(&b, 1000 + 20), 0);
	assert_int_equal(jbatch_del_session(&b, 4), 0);
	assert_int_equal(jbatch_del_session(&b, 0), 0);
	assert_int_equal(jbatch_ack(&b, 4, UINT64_MAX), 0);
	assert_int_equal(jbatch_ack(&b, 0, UINT64_MAX), 0);
	commit_ok(j, &b);
	jbatch_fini(&b);
	jstore_close(j);

	read_back(dir, &g, &r);
	assert_int_equal(r.sessions, 3);
	assert_int_equal(r.tasks, 20);
	assert_int_equal(r.results, 30);
}

/* -------------------------------------------------------------- refusals */

/* Within one batch, a put that a later operation overwrites or deletes
 * is skipped (jstore.c's compaction): what comes back is what the
 * operations in order leave, and a record too big for the map that the
 * batch itself deletes does not make the commit fail. */
static void
test_compaction(void **state)
{
	char            dir[PATH_MAX];
	struct jstore  *j;
	struct jbatch   b;
	struct got      g;
	struct jrestore r;
	struct jtask    t;
	uint8_t         args[300], data[200];
	char            why[64];
	(void)state;

	journal_dir(dir, "compaction", NULL);
	j = open_ok(dir, MAP);
	fill(j, 0, 0); /* sessions 1..3 */
	jbatch_init(&b);
	for (uint32_t i = 0; i < 100; i++) { /* put, some twice */
		make_task(i, &t, args, why);
		assert_int_equal(jbatch_put_task(&b, &t), 0);
	}
	for (uint32_t i = 0; i < 50; i++) {
		make_task(i, &t, args, why);
		assert_int_equal(jbatch_put_task(&b, &t), 0);
	}
	for (uint32_t i = 0; i < 25; i++) /* deleted after */
		assert_int_equal(jbatch_del_task(&b, 1000 + i), 0);
	for (uint32_t i = 10; i < 15; i++) { /* and put again after that */
		make_task(i, &t, args, why);
		assert_int_equal(jbatch_put_task(&b, &t), 0);
	}
	for (uint64_t q = 1; q <= 100; q++) { /* session 1: acked to 50 */
		struct jresult res;
		make_result(1, q, &res, data);
		assert_int_equal(jbatch_put_result(&b, &res), 0);
		if (q == 70)
			assert_int_equal(jbatch_ack(&b, 1, 50), 0);
	}
	for (uint64_t q = 1; q <= 10; q++) { /* session 2: ended */
		struct jresult res;
		make_result(2, q, &res, data);
		assert_int_equal(jbatch_put_result(&b, &res), 0);
	}
	assert_int_equal(jbatch_del_session(&b, 2), 0);
	{
		struct jresult res; /* session 3: a result after its ack */
		assert_int_equal(jbatch_ack(&b, 3, 5), 0);
		make_result(3, 6, &res, data);
		assert_int_equal(jbatch_put_result(&b, &res), 0);
	}
	/* a task bigger than the whole map, put and deleted */
	{
		size_t   big = 2 * MAP;
		uint8_t *p   = calloc(big, 1);
		assert_non_null(p);
		make_task(500, &t, args, why);
		t.args     = p;
		t.args_len = (uint32_t)big;
		assert_int_equal(jbatch_put_task(&b, &t), 0);
		assert_int_equal(jbatch_del_task(&b, 1500), 0);
		free(p);
	}
	commit_ok(j, &b);
	jbatch_fini(&b);
	jstore_close(j);

	read_back(dir, &g, &r);
	for (uint32_t i = 0; i < 100; i++)
		assert_int_equal(g.task[i], i >= 25 || (i >= 10 && i < 15));
	assert_int_equal(g.task[500], 0);
	assert_int_equal(r.tasks, 80);
	for (uint64_t q = 1; q <= 100; q++)
		assert_int_equal(g.result[1][q], q > 50);
	for (uint64_t q = 1; q <= 10; q++)
		assert_int_equal(g.result[2][q], 0);
	assert_int_equal(g.result[3][6], 1);
	assert_int_equal(r.results, 50 + 1);
	assert_int_equal(r.sessions, 2); /* 1 and 3 */
	assert_int_equal(g.session_next_seq[2], 0);
}

static void
test_second_open_refused(void **state)
{
	char           dir[PATH_MAX], err[512] = "", pid[32];
	struct jstore *j, *j2 = (struct jstore *)1;
	(void)state;

	journal_dir(dir, "in_use", NULL);
	j = open_ok(dir, MAP);
	assert_int_equal(jstore_open(&j2, dir, MAP, err, sizeof(err)), -1);
	assert_null(j2);
	assert_non_null(strstr(err, dir));
	assert_non_null(strstr(err, "in use"));
	fmt(pid, sizeof(pid), "(pid %d)", (int)getpid());
	assert_non_null(strstr(err, pid));
	/* the check takes the lock too */
	err[0] = '\0';
	assert_int_equal(jstore_check(dir, MAP, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "in use"));
	jstore_close(j);
	/* free again once closed */
	j = open_ok(dir, MAP);
	jstore_close(j);
	assert_int_equal(jstore_check(dir, MAP, err, sizeof(err)), 0);
}

/* Put a meta record straight into the journal's LMDB environment. */
static void
lmdb_put_meta(const char *dir, const char *name, uint64_t value, int sealed)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi  dbi;
	uint8_t  v[16] = { 0 };
	MDB_val  k = { strlen(name), (void *)name }, d = { sizeof(v), v };
	uint32_t crc;

	v[4] = JSTORE_META;
	v[5] = 1;
	for (int i = 0; i < 8; i++)
		v[8 + i] = (uint8_t)(value >> (8 * i));
	crc = jstore_crc32c(jstore_crc32c(0, name, strlen(name)), v + 4, 12);
	if (!sealed)
		crc ^= 1;
	for (int i = 0; i < 4; i++)
		v[i] = (uint8_t)(crc >> (8 * i));
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_NOLOCK, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &d, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void
test_newer_format_refused(void **state)
{
	char           dir[PATH_MAX], path[PATH_MAX], err[512] = "";
	struct jstore *j;
	(void)state;

	journal_dir(dir, "newer", path);
	j = open_ok(dir, MAP);
	fill(j, 3, 3);
	jstore_close(j);
	lmdb_put_meta(dir, "format", JSTORE_FORMAT + 1, 1);
	assert_int_equal(jstore_open(&j, dir, MAP, err, sizeof(err)), -1);
	assert_null(j);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "newer"));
	err[0] = '\0';
	assert_int_equal(jstore_check(dir, MAP, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "newer"));

	/* the same format record, damaged */
	lmdb_put_meta(dir, "format", JSTORE_FORMAT, 0);
	assert_int_equal(jstore_open(&j, dir, MAP, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "format record"));
	/* and whole again */
	lmdb_put_meta(dir, "format", JSTORE_FORMAT, 1);
	jstore_close(open_ok(dir, MAP));
}

/* A journal that has had commits and lost a table is not given an empty
 * one in its place; one that lost its format record is not either. */
static void
test_missing_table_refused(void **state)
{
	char           dir[PATH_MAX], path[PATH_MAX], err[512] = "";
	struct jstore *j;
	MDB_env       *env;
	MDB_txn       *txn;
	MDB_dbi        dbi;
	MDB_val        k = { 6, (void *)"format" };
	(void)state;

	journal_dir(dir, "missing_table", path);
	j = open_ok(dir, MAP);
	fill(j, 3, 3);
	jstore_close(j);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_NOLOCK, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	assert_int_equal(jstore_open(&j, dir, MAP, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "no format record"));

	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "sessions", 0, &dbi), 0);
	assert_int_equal(mdb_drop(txn, dbi, 1), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	assert_int_equal(jstore_open(&j, dir, MAP, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "table 'sessions' is missing"));
	assert_int_equal(jstore_check(dir, MAP, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "table 'sessions' is missing"));
}

/* A full map fails the commit with a clear message and writes nothing of
 * the batch; the same batch commits into a larger map. */
static void
test_map_full(void **state)
{
	char            dir[PATH_MAX], err[512] = "";
	struct jstore  *j;
	struct jbatch   b;
	struct got      g;
	struct jrestore r;
	uint8_t         args[300];
	char            why[64];
	(void)state;

	journal_dir(dir, "map_full", NULL);
	j = open_ok(dir, 128 << 10);
	fill(j, 5, 2);
	jbatch_init(&b);
	for (uint32_t i = 5; i < 600; i++) {
		struct jtask t;
		make_task(i, &t, args, why);
		assert_int_equal(jbatch_put_task(&b, &t), 0);
	}
	assert_int_equal(jstore_commit(j, &b, err, sizeof(err)), -1);
	assert_non_null(strstr(err, dir));
	assert_non_null(strstr(err, "MDB_MAP_FULL"));
	assert_non_null(strstr(err, "size limit"));
	/* still usable for what fits */
	{
		struct jbatch small;
		jbatch_init(&small);
		assert_int_equal(jbatch_del_task(&small, 1000), 0);
		commit_ok(j, &small);
		jbatch_fini(&small);
	}
	jstore_close(j);
	read_back(dir, &g, &r);
	assert_int_equal(r.tasks, 4); /* 1..4: none of the batch */

	j = open_ok(dir, MAP);
	commit_ok(j, &b);
	jbatch_fini(&b);
	jstore_close(j);
	read_back(dir, &g, &r);
	assert_int_equal(r.tasks, 599);
	assert_int_equal(r.damaged, 0);
}

/* A batch that could not be completed is not written. */
static void
test_oom_batch_refused(void **state)
{
	char            dir[PATH_MAX], err[512] = "";
	struct jstore  *j;
	struct jbatch   b;
	struct got      g;
	struct jrestore r;
	uint8_t         args[300];
	char            why[64];
	struct jtask    t;
	(void)state;

	journal_dir(dir, "oom", NULL);
	j = open_ok(dir, MAP);
	jbatch_init(&b);
	make_task(1, &t, args, why);
	assert_int_equal(jbatch_put_task(&b, &t), 0);
	b.oom = 1; /* as when an allocation had failed */
	assert_int_equal(jbatch_put_task(&b, &t), -1);
	assert_int_equal(jstore_commit(j, &b, err, sizeof(err)), -1);
	assert_non_null(strstr(err, dir));
	assert_non_null(strstr(err, "out of memory"));
	jbatch_clear(&b);
	assert_int_equal(b.oom, 0);
	jbatch_fini(&b);
	jstore_close(j);
	read_back(dir, &g, &r);
	assert_int_equal(r.tasks, 0);
}

/* ----------------------------------------------------------- damage */

/* Flip a byte of one task's arguments, one of another task's key and one
 * of a result's data: each is dropped and counted, everything else comes
 * back. */
static void
test_flipped_records(void **state)
{
	char            dir[PATH_MAX], path[PATH_MAX], err[512] = "";
	struct jstore  *j;
	struct got      g;
	struct jrestore r;
	struct jtask    t;
	struct jresult  res;
	uint8_t         args[300], data[200], key[16], *file;
	char            why[64];
	size_t          len, at;
	(void)state;

	journal_dir(dir, "flipped", path);
	j = open_ok(dir, MAP);
	fill(j, 60, 40);
	jstore_close(j);
	file = read_file(path, &len);

	/* task 41: one object key, a 16-byte name, then its arguments */
	make_task(41, &t, args, why);
	assert_int_equal(t.n_objs, 1);
	be64(key, 1000 + 41);
	at = find_record(file, len, key, 8, JSTORE_TASK);
	file[at + 8 + 60 + 8 + t.fn_len + 20] ^= 0x04;
	/* task 52's key */
	be64(key, 1000 + 52);
	file[find_record(file, len, key, 8, JSTORE_TASK) + 7] ^= 0x80;
	/* the last byte of result 33 of session 3 */
	make_result(3, 33, &res, data);
	be64(key, 3);
	be64(key + 8, 33);
	at = find_record(file, len, key, 16, JSTORE_RESULT);
	file[at + 16 + 28 + res.len - 1] ^= 0xff;
	write_file(path, file, len);
	free(file);

	assert_int_equal(jstore_check(dir, MAP, err, sizeof(err)), 0);
	read_back(dir, &g, &r);
	assert_int_equal(r.damaged, 3);
	assert_int_equal(r.missing, 0);
	assert_int_equal(r.tasks, 58);
	assert_int_equal(r.results, 119);
	for (int i = 0; i < 60; i++)
		assert_int_equal(g.task[i], i != 41 && i != 52);
	for (int s = 1; s <= 3; s++)
		for (int q = 1; q <= 40; q++)
			assert_int_equal(g.result[s][q], s != 3 || q != 33);
	assert_int_equal(r.sessions, 3);
	assert_int_equal(r.next_task_id, 1060);
}

/*
 * Records that a damaged page hides: the walk through the table finds
 * fewer than LMDB counts, and the difference is counted as damaged and
 * missing.  Made by lowering the node count of the leaf page that holds
 * one result (mp_lower, a u16 12 bytes into LMDB's page header, mdb.c:
 * two bytes less is one node less).
 */
static void
test_hidden_records(void **state)
{
	char            dir[PATH_MAX], path[PATH_MAX], err[512] = "";
	struct jstore  *j;
	struct got      g;
	struct jrestore r;
	uint8_t         key[16], *file;
	size_t          len, page;
	uint16_t        lower;
	(void)state;

	journal_dir(dir, "hidden", path);
	j = open_ok(dir, MAP);
	fill(j, 10, 10);
	jstore_close(j);
	file = read_file(path, &len);
	be64(key, 2);
	be64(key + 8, 5);
	page = find_record(file, len, key, 16, JSTORE_RESULT) / 4096 * 4096;
	memcpy(&lower, file + page + 12, 2);
	lower -= 2;
	memcpy(file + page + 12, &lower, 2);
	write_file(path, file, len);
	free(file);

	assert_int_equal(jstore_check(dir, MAP, err, sizeof(err)), 0);
	read_back(dir, &g, &r);
	assert_int_equal(r.missing, 1);
	assert_int_equal(r.damaged, 1);
	assert_int_equal(r.results, 29);
}

/* Empty, not LMDB's, truncated: refused by jstore_check and jstore_open
 * alike, naming the file (and for truncation both sizes). */
static void
test_bad_files_refused(void **state)
{
	char           dir[PATH_MAX], path[PATH_MAX], err[512], want[128];
	struct jstore *j;
	uint8_t       *file, junk[3 * 4096];
	size_t         len;
	(void)state;

	journal_dir(dir, "bad_files", path);
	/* no data file: nothing to check */
	assert_int_equal(jstore_check(dir, MAP, err, sizeof(err)), 0);
	j = open_ok(dir, MAP);
	fill(j, 200, 100);
	jstore_close(j);
	assert_int_equal(jstore_check(dir, MAP, err, sizeof(err)), 0);
	file = read_file(path, &len);
	assert_true(len > 8 * 4096);

	/* empty */
	write_file(path, file, 0);
	assert_int_equal(jstore_check(dir, MAP, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "empty"));
	assert_int_equal(jstore_open(&j, dir, MAP, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "empty"));

	/* garbage, and less than the meta pages */
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 7 + 3);
	write_file(path, junk, sizeof(junk));
	assert_int_equal(jstore_check(dir, MAP, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "MDB_INVALID"));
	write_file(path, file, 100);
	assert_int_equal(jstore_check(dir, MAP, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "MDB_INVALID"));
	assert_int_equal(jstore_open(&j, dir, MAP, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "MDB_INVALID"));

	/* truncated after the meta pages: mid-file, a page short, a byte
	 * short */
	const size_t cut[] = { 4096 + 300, 2 * 4096, len / 2, len - 4096,
		len - 1 };
	for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		write_file(path, file, cut[i]);
		assert_int_equal(jstore_check(dir, MAP, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "truncated"));
		assert_int_equal(jstore_open(&j, dir, MAP, err, sizeof(err)),
		    -1);
		assert_non_null(strstr(err, path));
		fmt(want, sizeof(want), "is truncated: it is %zu bytes, but "
		    "its last transaction needs %zu", cut[i], len);
		assert_non_null(strstr(err, want));
	}

	/* whole again: all there */
	write_file(path, file, len);
	free(file);
	assert_int_equal(jstore_check(dir, MAP, err, sizeof(err)), 0);
	{
		struct got      g;
		struct jrestore r;
		read_back(dir, &g, &r);
		assert_int_equal(r.tasks, 200);
		assert_int_equal(r.results, 300);
	}
}

/*
 * A damaged node that makes LMDB hand out a value running 4 GiB past its
 * page: reading it would crash the scheduler; jstore_check crashes its
 * child instead and says so.  The node's header (mdb.c's MDB_node: u16
 * data size low, u16 data size high, u16 flags, u16 key size) sits just
 * before its key.
 */
static void
test_crash_becomes_error(void **state)
{
	char           dir[PATH_MAX], path[PATH_MAX], err[512] = "";
	struct jstore *j;
	uint8_t        key[16], *file;
	size_t         len, at;
	(void)state;

	journal_dir(dir, "crash", path);
	j = open_ok(dir, 1 << 20);
	fill(j, 5, 5);
	jstore_close(j);
	file = read_file(path, &len);
	be64(key, 1);
	be64(key + 8, 3);
	at = find_record(file, len, key, 16, JSTORE_RESULT);
	assert_true(at >= 8);
	assert_int_equal(file[at - 2] | file[at - 1] << 8, 16); /* key size */
	file[at - 6] = file[at - 5] = 0xff; /* data size + 0xffff0000 */
	write_file(path, file, len);
	free(file);

	assert_int_equal(jstore_check(dir, 1 << 20, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "is damaged: reading it ended with signal"));
	assert_true(strstr(err, "(SIGSEGV)") != NULL ||
	    strstr(err, "(SIGBUS)") != NULL);
}

static void
test_odd_lock_and_data_files(void **state)
{
	char           dir[PATH_MAX], path[PATH_MAX], lock[PATH_MAX];
	char           err[512] = "";
	struct jstore *j;
	(void)state;

	journal_dir(dir, "odd_lock", path);
	fmt(lock, sizeof(lock), "%s/lock", dir);
	assert_int_equal(mkdir(lock, 0700), 0);
	assert_int_equal(jstore_open(&j, dir, MAP, err, sizeof(err)), -1);
	assert_non_null(strstr(err, lock));
	assert_non_null(strstr(err, strerror(EISDIR)));
	j = (struct jstore *)1;
	assert_int_equal(jstore_open(&j, dir, MAP, err, sizeof(err)), -1);
	assert_null(j);
	assert_int_equal(rmdir(lock), 0);

	/* unreadable (root reads it all the same) */
	if (geteuid() != 0) {
		write_file(lock, "", 0);
		assert_int_equal(chmod(lock, 0), 0);
		assert_int_equal(jstore_open(&j, dir, MAP, err, sizeof(err)),
		    -1);
		assert_non_null(strstr(err, lock));
		assert_non_null(strstr(err, strerror(EACCES)));
		assert_int_equal(unlink(lock), 0);
	}

	/* the data file a directory */
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(jstore_open(&j, dir, MAP, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_int_equal(jstore_check(dir, MAP, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_int_equal(rmdir(path), 0);
	jstore_close(open_ok(dir, MAP));
}

/* Every byte of each record kind flipped in turn: the decoder says
 * damaged every time. */
static void
test_decode_every_flip(void **state)
{
	struct jbatch  b;
	struct jtask   t;
	struct jresult res;
	struct jsession s = { 7, 8, 9 };
	struct jrecord rec;
	uint8_t        args[300], data[200];
	char           why[64];
	size_t         off = 0;
	static const int kind[] = { JSTORE_TASK, JSTORE_RESULT,
		JSTORE_SESSION, JSTORE_META };
	(void)state;

	jbatch_init(&b);
	make_task(6, &t, args, why);
	assert_int_equal(jbatch_put_task(&b, &t), 0);
	make_result(1, 77, &res, data);
	assert_int_equal(jbatch_put_result(&b, &res), 0);
	assert_int_equal(jbatch_put_session(&b, &s), 0);
	assert_int_equal(jbatch_next_task_id(&b, 5), 0);
	/* the batch holds u8 op, u8 table, u16 klen, u32 vlen, key, value */
	for (int n = 0; n < 4; n++) {
		uint8_t *op   = b.buf + off;
		size_t   klen = (size_t)(op[2] | op[3] << 8);
		size_t   vlen = (size_t)op[4] | (size_t)op[5] << 8 |
		    (size_t)op[6] << 16 | (size_t)op[7] << 24;
		uint8_t *k = op + 8, *v = k + klen;

		assert_int_equal(jstore_decode(kind[n], k, klen, v, vlen, &rec),
		    0);
		assert_int_equal(rec.kind, kind[n]);
		for (size_t i = 0; i < klen + vlen; i++) {
			k[i] ^= 0x10;
			assert_int_equal(
			    jstore_decode(kind[n], k, klen, v, vlen, &rec), -1);
			k[i] ^= 0x10;
		}
		/* shorter or under another kind: damaged */
		assert_int_equal(jstore_decode(kind[n], k, klen, v, vlen - 1,
		                     &rec),
		    -1);
		assert_int_equal(jstore_decode(kind[(n + 1) % 4], k, klen, v,
		                     vlen, &rec),
		    -1);
		off += 8 + klen + vlen;
	}
	assert_int_equal(off, b.len);
	assert_int_equal(jstore_decode(0, "", 0, "", 0, &rec), -1);
	assert_int_equal(jstore_decode(JSTORE_TASK, "", 0, "", 0, &rec), -1);
	jbatch_fini(&b);
	assert_int_equal(jstore_decode(JSTORE_SESSION, "\0\0\0\0\0\0\0\7", 8,
	                     "", 0, &rec),
	    -1);
}

/* ----------------------------------------------------------------- main */

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	chmod(path, 0700);
	return remove(path);
}

static int
setup(void **state)
{
	char t[] = "/tmp/ferry-jstore-XXXXXX";
	if (mkdtemp(t) == NULL)
		return -1;
	fmt(tmp, sizeof(tmp), "%s", t);
	return 0;
}

static int
teardown(void **state)
{
	return nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_replace_and_empty),
		cmocka_unit_test(test_ack),
		cmocka_unit_test(test_del_session),
		cmocka_unit_test(test_delete_absent),
		cmocka_unit_test(test_compaction),
		cmocka_unit_test(test_second_open_refused),
		cmocka_unit_test(test_newer_format_refused),
		cmocka_unit_test(test_missing_table_refused),
		cmocka_unit_test(test_map_full),
		cmocka_unit_test(test_oom_batch_refused),
		cmocka_unit_test(test_flipped_records),
		cmocka_unit_test(test_hidden_records),
		cmocka_unit_test(test_bad_files_refused),
		cmocka_unit_test(test_crash_becomes_error),
		cmocka_unit_test(test_odd_lock_and_data_files),
		cmocka_unit_test(test_decode_every_flip),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
