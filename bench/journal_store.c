/*
 * journal_store.c - SQLite and LMDB measured as the scheduler's journal.
 *
 * Issue 10 asks for a write-ahead journal chosen by measurement.  This
 * program streams the scheduler's journal workload through each candidate
 * store with the same data, the same sync semantics and the same machine,
 * alternating between them round by round, and prints per-run lines and
 * the medians.  docs/journal.md holds the figures and the choice.
 *
 * The workload, per task (what the scheduler would write):
 *   submit  insert a task row (id, session, tag, function name, msgpack
 *           arguments, five small options, state, attempts, kills);
 *   retry   one task in RETRY_EVERY has its attempts/kills updated;
 *   result  the task row is deleted and a result row inserted, keyed by
 *           (session, seq);
 *   ack     per session, result rows with seq <= ack are deleted (a range
 *           delete) and the session row's acked seq updated;
 *   session NSESS sessions live at a time; they are replaced every
 *           2^EPOCH_SHIFT tasks (inserted before their first task, deleted
 *           when their last result is acknowledged).
 * Group commit: commit k holds the submits of batch k, the retries of
 * batch k-1, the results of batch k-2 and the acks of batch k-3, so about
 * three batches of tasks are live at any time.
 *
 * Tests (run in the order given; "all" runs every one, in this order):
 *   probe    raw fdatasync latency of the journal's file system
 *   stream   durable tasks/s and commits/s per batch size and sync mode
 *   rtt      one task at a time: a submit commit then a result commit
 *   recover  1M queued tasks loaded, closed, then opened and read back into
 *            memory (cold: page cache dropped first, when allowed; warm)
 *   group    group commit as the scheduler would run it: a producer thread
 *            hands in submit messages at a fixed rate (or as fast as a
 *            window allows), the journal thread commits whatever arrived
 *            while it last wrote; tasks/s and arrival-to-durable latency
 *   size     10M tasks streamed with a small live set, file size sampled;
 *            then a burst of --recover-tasks tasks queued and drained
 *
 *   journal_store [--dir DIR] [--rounds R] [--tasks N] [--batches 1,64,..]
 *       [--max-commits C] [--configs sqlite-full,lmdb-sync,..] [--rtt N]
 *       [--recover-tasks N] [--size-tasks N] [--size-batch B] [--no-vacuum]
 *       [--no-drop] [--group-tasks N] [--rates R,...] [--group-window W]
 *       [TEST...]
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>
#include <sqlite3.h>

#define NSESS 8 /* sessions live at a time */
#define EPOCH_SHIFT 18 /* sessions replaced every 262,144 tasks */
#define EPOCH ((uint64_t)1 << EPOCH_SHIFT)
#define SESS_TASKS (EPOCH / NSESS)
#define RETRY_EVERY 64 /* one task in 64 has its attempts updated */
#define MAX_ROUNDS 32
#define MAX_BATCHES 8
#define MAX_CONFIGS 8

/* --- errors --------------------------------------------------------- */

static void die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* Print a message and exit 1: this is a benchmark, not a server. */
static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("journal_store: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* --- clocks and statistics ------------------------------------------ */

/* Monotonic time in seconds. */
static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Process CPU time (user + system) in seconds. */
static double
cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6
	    + (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The q-quantile (0..1) of n values; sorts v in place. */
static double
quantile(double *v, size_t n, double q)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return v[(size_t)(q * (double)(n - 1) + 0.5)];
}

/* Median of n values, without changing v. */
static double
median(const double *v, size_t n)
{
	double tmp[MAX_ROUNDS];

	if (n == 0)
		return 0;
	if (n > MAX_ROUNDS)
		n = MAX_ROUNDS;
	memcpy(tmp, v, n * sizeof(*v));
	qsort(tmp, n, sizeof(*tmp), cmp_double);
	return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

/* A growable list of latencies in microseconds. */
struct lat {
	double *v;
	size_t  n, cap;
};

static void
lat_add(struct lat *l, double us)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 4096;
		l->v   = realloc(l->v, l->cap * sizeof(*l->v));
		if (l->v == NULL)
			die("out of memory");
	}
	l->v[l->n++] = us;
}

static void
lat_free(struct lat *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* --- the workload ---------------------------------------------------- */

/* splitmix64: deterministic pseudo-random bytes from a task index. */
static uint64_t
mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

struct task {
	uint64_t id, session, tag;
	uint8_t  state, attempts, kills;
	uint8_t  prio, retries, flags, resources; /* options */
	uint32_t timeout_ms; /* option */
	uint8_t  fn_len;
	char     fn[16];
	uint16_t args_len;
	uint8_t  args[104];
};

struct result {
	uint64_t session, seq, tag;
	int32_t  code;
	uint8_t  attempts;
	uint16_t value_len;
	uint8_t  value[104];
};

/* Session of task index i (sessions are numbered from 1). */
static uint64_t
sess_of(uint64_t i)
{
	return 1 + (i >> EPOCH_SHIFT) * NSESS + (i % NSESS);
}

/* Result sequence number of task index i inside its session (from 1). */
static uint64_t
seq_of(uint64_t i)
{
	return (i & (EPOCH - 1)) / NSESS + 1;
}

/* Fill len bytes of msgpack: [bin] with pseudo-random content. */
static void
fill_msgpack(uint8_t *p, unsigned len, uint64_t seed)
{
	p[0] = 0x91; /* fixarray of 1 */
	p[1] = 0xc4; /* bin 8 */
	p[2] = (uint8_t)(len - 3);
	for (unsigned i = 3; i < len; i += 8) {
		uint64_t r = mix(seed + i);
		memcpy(p + i, &r, len - i < 8 ? len - i : 8);
	}
}

/* The submitted task with index i (id i + 1). */
static void
task_make(uint64_t i, struct task *t)
{
	static const char *fns[]
	    = { "noop_one", "add_ints", "img_tile", "hash_blk" };
	uint64_t r = mix(i);

	t->id         = i + 1;
	t->session    = sess_of(i);
	t->tag        = mix(i ^ 0x7a6) >> 1;
	t->state      = 1; /* queued */
	t->attempts   = 0;
	t->kills      = 0;
	t->prio       = (uint8_t)(r & 3);
	t->retries    = 3;
	t->flags      = 0;
	t->resources  = 1;
	t->timeout_ms = (r >> 2) & 1 ? 30000 : 0;
	t->fn_len     = 8;
	memcpy(t->fn, fns[(r >> 3) & 3], 8);
	t->fn[8]    = '\0';
	t->args_len = (uint16_t)(10 + (r >> 8) % 91); /* 10..100 */
	fill_msgpack(t->args, t->args_len, r);
}

/* The result of task index i. */
static void
result_make(uint64_t i, struct result *r)
{
	uint64_t x = mix(i ^ 0x5eed);

	r->session   = sess_of(i);
	r->seq       = seq_of(i);
	r->tag       = mix(i ^ 0x7a6) >> 1;
	r->code      = 0;
	r->attempts  = 1;
	r->value_len = (uint16_t)(5 + x % 96); /* 5..100 */
	fill_msgpack(r->value, r->value_len, x);
}

/* Bytes of payload a task row carries (fields at their natural sizes). */
static size_t
task_payload(const struct task *t)
{
	return 3 * 8 + 3 + 4 + 4 + t->fn_len + t->args_len;
}

/* --- what recovery rebuilds: the scheduler's tables in memory ------- */

struct mtask {
	uint64_t id, session, tag;
	uint32_t timeout_ms;
	uint8_t  state, attempts, kills, prio, retries, flags, resources;
	char     fn[16];
	uint8_t *args;
	uint32_t args_len;
};

struct mresult {
	uint64_t session, seq, tag;
	int32_t  code;
	uint8_t  attempts;
	uint8_t *value;
	uint32_t value_len;
};

struct msession {
	uint64_t id, created, acked;
};

struct mem {
	struct mtask    *tasks;
	size_t           ntasks, tcap;
	uint32_t        *index; /* open addressing: task id -> slot + 1 */
	size_t           imask;
	struct mresult  *results;
	size_t           nresults, rcap;
	struct msession *sessions;
	size_t           nsessions, scap;
};

static void *
grow(void *p, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return p;
	*cap = *cap ? 2 * *cap : 1024;
	p    = realloc(p, *cap * size);
	if (p == NULL)
		die("out of memory");
	return p;
}

static void
mem_index(struct mem *m, size_t slot)
{
	size_t h = (size_t)mix(m->tasks[slot].id) & m->imask;

	while (m->index[h] != 0)
		h = (h + 1) & m->imask;
	m->index[h] = (uint32_t)(slot + 1);
}

/* Add a recovered task: its arguments are copied into their own block. */
static void
mem_task(struct mem *m, const struct mtask *t, const void *args)
{
	struct mtask *d;

	if (2 * (m->ntasks + 1) > m->imask + 1) {
		size_t size = m->imask ? 2 * (m->imask + 1) : 4096;

		free(m->index);
		m->index = calloc(size, sizeof(*m->index));
		if (m->index == NULL)
			die("out of memory");
		m->imask = size - 1;
		for (size_t i = 0; i < m->ntasks; i++)
			mem_index(m, i);
	}
	m->tasks = grow(m->tasks, &m->tcap, m->ntasks, sizeof(*m->tasks));
	d        = &m->tasks[m->ntasks];
	*d       = *t;
	d->args  = malloc(t->args_len);
	if (d->args == NULL)
		die("out of memory");
	memcpy(d->args, args, t->args_len);
	mem_index(m, m->ntasks++);
}

static void
mem_result(struct mem *m, const struct mresult *r, const void *value)
{
	struct mresult *d;

	m->results
	    = grow(m->results, &m->rcap, m->nresults, sizeof(*m->results));
	d        = &m->results[m->nresults++];
	*d       = *r;
	d->value = malloc(r->value_len ? r->value_len : 1);
	if (d->value == NULL)
		die("out of memory");
	memcpy(d->value, value, r->value_len);
}

static void
mem_session(struct mem *m, const struct msession *s)
{
	m->sessions
	    = grow(m->sessions, &m->scap, m->nsessions, sizeof(*m->sessions));
	m->sessions[m->nsessions++] = *s;
}

static void
mem_free(struct mem *m)
{
	for (size_t i = 0; i < m->ntasks; i++)
		free(m->tasks[i].args);
	for (size_t i = 0; i < m->nresults; i++)
		free(m->results[i].value);
	free(m->tasks);
	free(m->index);
	free(m->results);
	free(m->sessions);
	memset(m, 0, sizeof(*m));
}

/* --- the stores ------------------------------------------------------ */

enum sync_mode {
	SQ_FULL, /* WAL, synchronous=FULL: the WAL is synced every commit */
	SQ_NORMAL, /* WAL, synchronous=NORMAL: synced only at checkpoints */
	LM_SYNC, /* LMDB default: data synced, then meta written+synced */
	LM_ENVSYNC, /* MDB_NOSYNC, mdb_env_sync(force) after each commit */
	LM_NOSYNC, /* MDB_NOSYNC, never synced (a ceiling, not durable) */
};

struct config {
	const char    *name;
	bool           lmdb;
	enum sync_mode mode;
	bool           durable; /* a commit is on disk when it returns */
};

static const struct config all_configs[] = {
	{ "sqlite-full", false, SQ_FULL, true },
	{ "lmdb-sync", true, LM_SYNC, true },
	{ "lmdb-envsync", true, LM_ENVSYNC, true },
	{ "sqlite-normal", false, SQ_NORMAL, false },
	{ "lmdb-nosync", true, LM_NOSYNC, false },
};

enum {
	ST_BEGIN,
	ST_COMMIT,
	ST_TASK_INS,
	ST_TASK_UPD,
	ST_TASK_DEL,
	ST_RES_INS,
	ST_RES_ACK,
	ST_SESS_INS,
	ST_SESS_ACK,
	ST_SESS_DEL,
	ST_COUNT
};

static const char *sql_stmts[ST_COUNT] = {
	"BEGIN",
	"COMMIT",
	"INSERT INTO task(id, session, tag, state, attempts, kills, prio,"
	" retries, flags, resources, timeout_ms, fn, args)"
	" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	"UPDATE task SET attempts = ?, kills = ? WHERE id = ?",
	"DELETE FROM task WHERE id = ?",
	"INSERT INTO result(session, seq, tag, code, attempts, value)"
	" VALUES (?, ?, ?, ?, ?, ?)",
	"DELETE FROM result WHERE session = ? AND seq <= ?",
	"INSERT INTO session(id, created, acked) VALUES (?, ?, 0)",
	"UPDATE session SET acked = ? WHERE id = ?",
	"DELETE FROM session WHERE id = ?",
};

static const char *sql_schema
    = "CREATE TABLE IF NOT EXISTS session(id INTEGER PRIMARY KEY,"
      " created INTEGER NOT NULL, acked INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS task(id INTEGER PRIMARY KEY,"
      " session INTEGER NOT NULL, tag INTEGER NOT NULL,"
      " state INTEGER NOT NULL, attempts INTEGER NOT NULL,"
      " kills INTEGER NOT NULL, prio INTEGER NOT NULL,"
      " retries INTEGER NOT NULL, flags INTEGER NOT NULL,"
      " resources INTEGER NOT NULL, timeout_ms INTEGER NOT NULL,"
      " fn TEXT NOT NULL, args BLOB NOT NULL);"
      "CREATE TABLE IF NOT EXISTS result(session INTEGER NOT NULL,"
      " seq INTEGER NOT NULL, tag INTEGER NOT NULL, code INTEGER NOT NULL,"
      " attempts INTEGER NOT NULL, value BLOB NOT NULL,"
      " PRIMARY KEY (session, seq)) WITHOUT ROWID;";

struct store {
	const struct config *cf;
	char                 dir[512];
	char                 file[600]; /* the main file */
	/* SQLite */
	sqlite3      *db;
	sqlite3_stmt *st[ST_COUNT];
	/* LMDB */
	MDB_env    *env;
	MDB_txn    *txn;
	MDB_cursor *rcur;
	MDB_dbi     dtask, dres, dsess;
	uint64_t    last_id; /* highest task id appended */
};

static bool opt_vacuum = true; /* SQLite auto_vacuum=INCREMENTAL */

static void
sq_check(struct store *s, int rc, const char *what)
{
	if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
		die("sqlite %s: %s: %s", s->file, what, sqlite3_errmsg(s->db));
}

static void
sq_exec(struct store *s, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(s->db, sql, NULL, NULL, &err) != SQLITE_OK)
		die("sqlite %s: %s: %s", s->file, sql, err ? err : "?");
}

/* Run a prepared statement that returns no rows, and reset it. */
static void
sq_run(struct store *s, int which)
{
	sqlite3_stmt *st = s->st[which];
	int           rc = sqlite3_step(st);

	if (rc != SQLITE_DONE)
		die("sqlite %s: %s: %s", s->file, sql_stmts[which],
		    sqlite3_errmsg(s->db));
	sqlite3_reset(st);
}

static void
lm_check(int rc, const char *what)
{
	if (rc != MDB_SUCCESS)
		die("lmdb: %s: %s", what, mdb_strerror(rc));
}

/* Big-endian keys, so LMDB's default memcmp order is numeric order. */
static void
be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t
get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static void
rm_file(const char *path)
{
	if (unlink(path) != 0 && errno != ENOENT)
		die("remove %s: %s", path, strerror(errno));
}

/* Open the store in dir (fresh: remove what was there first). */
static void
store_open(
    struct store *s, const struct config *cf, const char *dir, bool fresh)
{
	memset(s, 0, sizeof(*s));
	s->cf = cf;
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		die("mkdir %s: %s", dir, strerror(errno));
	if (!cf->lmdb) {
		char p[700];

		snprintf(s->file, sizeof(s->file), "%s/journal.db", dir);
		if (fresh) {
			rm_file(s->file);
			snprintf(p, sizeof(p), "%s-wal", s->file);
			rm_file(p);
			snprintf(p, sizeof(p), "%s-shm", s->file);
			rm_file(p);
		}
		if (sqlite3_open_v2(s->file, &s->db,
		        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
		            | SQLITE_OPEN_NOMUTEX,
		        NULL)
		    != SQLITE_OK)
			die("sqlite open %s: %s", s->file,
			    sqlite3_errmsg(s->db));
		/* Exclusive before WAL: no -shm file, and a second
		 * process cannot open the journal. */
		sq_exec(s, "PRAGMA locking_mode = EXCLUSIVE");
		if (fresh && opt_vacuum)
			sq_exec(s, "PRAGMA auto_vacuum = INCREMENTAL");
		sq_exec(s, "PRAGMA journal_mode = WAL");
		sq_exec(s,
		    cf->mode == SQ_FULL ? "PRAGMA synchronous = FULL"
		                        : "PRAGMA synchronous = NORMAL");
		sq_exec(s, "PRAGMA cache_size = -16384");
		/* Debian builds with SQLITE_SECURE_DELETE: deleted rows
		 * are zeroed, costing CPU and writes on every delete. */
		sq_exec(s, "PRAGMA secure_delete = OFF");
		sq_exec(s, "PRAGMA journal_size_limit = 16777216");
		sq_exec(s, sql_schema);
		for (int i = 0; i < ST_COUNT; i++)
			sq_check(s,
			    sqlite3_prepare_v3(s->db, sql_stmts[i], -1,
			        SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL),
			    sql_stmts[i]);
	} else {
		unsigned flags = MDB_NOSUBDIR;
		MDB_txn *txn;

		snprintf(s->file, sizeof(s->file), "%s/journal.mdb", dir);
		if (fresh) {
			char p[700];

			rm_file(s->file);
			snprintf(p, sizeof(p), "%s-lock", s->file);
			rm_file(p);
		}
		if (cf->mode == LM_ENVSYNC || cf->mode == LM_NOSYNC)
			flags |= MDB_NOSYNC;
		lm_check(mdb_env_create(&s->env), "env_create");
		lm_check(mdb_env_set_mapsize(s->env, (size_t)16 << 30),
		    "set_mapsize");
		lm_check(mdb_env_set_maxdbs(s->env, 4), "set_maxdbs");
		lm_check(mdb_env_open(s->env, s->file, flags, 0644), s->file);
		lm_check(mdb_txn_begin(s->env, NULL, 0, &txn), "txn_begin");
		lm_check(mdb_dbi_open(txn, "task", MDB_CREATE, &s->dtask),
		    "dbi task");
		lm_check(mdb_dbi_open(txn, "result", MDB_CREATE, &s->dres),
		    "dbi result");
		lm_check(mdb_dbi_open(txn, "session", MDB_CREATE, &s->dsess),
		    "dbi session");
		lm_check(mdb_txn_commit(txn), "txn_commit");
	}
}

static void
store_close(struct store *s)
{
	if (s->db != NULL) {
		for (int i = 0; i < ST_COUNT; i++)
			sqlite3_finalize(s->st[i]);
		if (sqlite3_close(s->db) != SQLITE_OK)
			die("sqlite close %s: %s", s->file,
			    sqlite3_errmsg(s->db));
	}
	if (s->env != NULL)
		mdb_env_close(s->env);
	s->db  = NULL;
	s->env = NULL;
}

static void
store_begin(struct store *s)
{
	if (s->db != NULL)
		sq_run(s, ST_BEGIN);
	else
		lm_check(mdb_txn_begin(s->env, NULL, 0, &s->txn), "txn_begin");
}

/* Commit; on return a durable config's data is on disk. */
static void
store_commit(struct store *s)
{
	if (s->db != NULL) {
		sq_run(s, ST_COMMIT);
		return;
	}
	s->rcur = NULL; /* freed with its write transaction */
	lm_check(mdb_txn_commit(s->txn), "txn_commit");
	s->txn = NULL;
	if (s->cf->mode == LM_ENVSYNC)
		lm_check(mdb_env_sync(s->env, 1), "env_sync");
}

/* LMDB task record: fixed header, then the function name and arguments. */
#define LT_HDR (8 + 8 + 4 + 7 + 1 + 2)

static size_t
lm_task_pack(const struct task *t, uint8_t *p)
{
	memcpy(p, &t->session, 8);
	memcpy(p + 8, &t->tag, 8);
	memcpy(p + 16, &t->timeout_ms, 4);
	p[20] = t->state;
	p[21] = t->attempts;
	p[22] = t->kills;
	p[23] = t->prio;
	p[24] = t->retries;
	p[25] = t->flags;
	p[26] = t->resources;
	p[27] = t->fn_len;
	memcpy(p + 28, &t->args_len, 2);
	memcpy(p + LT_HDR, t->fn, t->fn_len);
	memcpy(p + LT_HDR + t->fn_len, t->args, t->args_len);
	return LT_HDR + t->fn_len + t->args_len;
}

static void
store_task_put(struct store *s, const struct task *t)
{
	if (s->db != NULL) {
		sqlite3_stmt *st = s->st[ST_TASK_INS];

		sqlite3_bind_int64(st, 1, (sqlite3_int64)t->id);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)t->session);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)t->tag);
		sqlite3_bind_int(st, 4, t->state);
		sqlite3_bind_int(st, 5, t->attempts);
		sqlite3_bind_int(st, 6, t->kills);
		sqlite3_bind_int(st, 7, t->prio);
		sqlite3_bind_int(st, 8, t->retries);
		sqlite3_bind_int(st, 9, t->flags);
		sqlite3_bind_int(st, 10, t->resources);
		sqlite3_bind_int64(st, 11, t->timeout_ms);
		sqlite3_bind_text(st, 12, t->fn, t->fn_len, SQLITE_STATIC);
		sqlite3_bind_blob(st, 13, t->args, t->args_len, SQLITE_STATIC);
		sq_run(s, ST_TASK_INS);
	} else {
		uint8_t k[8], buf[256];
		MDB_val key = { 8, k }, val;

		be64(k, t->id);
		val.mv_data = buf;
		val.mv_size = lm_task_pack(t, buf);
		/* Task ids only grow: append without a search. */
		lm_check(mdb_put(s->txn, s->dtask, &key, &val,
		             t->id > s->last_id ? MDB_APPEND : 0),
		    "put task");
		if (t->id > s->last_id)
			s->last_id = t->id;
	}
}

static void
store_task_update(
    struct store *s, uint64_t id, uint8_t attempts, uint8_t kills)
{
	if (s->db != NULL) {
		sqlite3_stmt *st = s->st[ST_TASK_UPD];

		sqlite3_bind_int(st, 1, attempts);
		sqlite3_bind_int(st, 2, kills);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)id);
		sq_run(s, ST_TASK_UPD);
	} else {
		uint8_t k[8], buf[256];
		MDB_val key = { 8, k }, val;

		be64(k, id);
		lm_check(mdb_get(s->txn, s->dtask, &key, &val), "get task");
		if (val.mv_size > sizeof(buf))
			die("lmdb: task record of %zu bytes", val.mv_size);
		memcpy(buf, val.mv_data, val.mv_size);
		buf[21]     = attempts;
		buf[22]     = kills;
		val.mv_data = buf;
		lm_check(mdb_put(s->txn, s->dtask, &key, &val, 0), "put task");
	}
}

static void
store_task_del(struct store *s, uint64_t id)
{
	if (s->db != NULL) {
		sqlite3_bind_int64(s->st[ST_TASK_DEL], 1, (sqlite3_int64)id);
		sq_run(s, ST_TASK_DEL);
	} else {
		uint8_t k[8];
		MDB_val key = { 8, k };

		be64(k, id);
		lm_check(mdb_del(s->txn, s->dtask, &key, NULL), "del task");
	}
}

#define LR_HDR (8 + 4 + 1 + 2)

static void
store_result_put(struct store *s, const struct result *r)
{
	if (s->db != NULL) {
		sqlite3_stmt *st = s->st[ST_RES_INS];

		sqlite3_bind_int64(st, 1, (sqlite3_int64)r->session);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)r->seq);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)r->tag);
		sqlite3_bind_int(st, 4, r->code);
		sqlite3_bind_int(st, 5, r->attempts);
		sqlite3_bind_blob(
		    st, 6, r->value, r->value_len, SQLITE_STATIC);
		sq_run(s, ST_RES_INS);
	} else {
		uint8_t k[16], buf[256];
		MDB_val key = { 16, k }, val = { 0, buf };

		be64(k, r->session);
		be64(k + 8, r->seq);
		memcpy(buf, &r->tag, 8);
		memcpy(buf + 8, &r->code, 4);
		buf[12] = r->attempts;
		memcpy(buf + 13, &r->value_len, 2);
		memcpy(buf + LR_HDR, r->value, r->value_len);
		val.mv_size = LR_HDR + r->value_len;
		lm_check(
		    mdb_put(s->txn, s->dres, &key, &val, 0), "put result");
	}
}

/* A client acknowledged every result of session up to seq. */
static void
store_ack(struct store *s, uint64_t session, uint64_t seq)
{
	if (s->db != NULL) {
		sqlite3_stmt *st = s->st[ST_RES_ACK];

		sqlite3_bind_int64(st, 1, (sqlite3_int64)session);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
		sq_run(s, ST_RES_ACK);
		st = s->st[ST_SESS_ACK];
		sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)session);
		sq_run(s, ST_SESS_ACK);
	} else {
		uint8_t k[16], sk[8], sv[16];
		MDB_val key = { 16, k }, val, skey = { 8, sk },
		        sval = { 16, sv };
		int rc, op = MDB_SET_RANGE;

		if (s->rcur == NULL)
			lm_check(mdb_cursor_open(s->txn, s->dres, &s->rcur),
			    "cursor_open");
		/* The session's results sit together, oldest first: delete
		 * from (session, 0) while seq <= ack. */
		be64(k, session);
		be64(k + 8, 0);
		for (;;) {
			rc = mdb_cursor_get(
			    s->rcur, &key, &val, (MDB_cursor_op)op);
			/* After deleting the last row the cursor is no
			 * longer set (EINVAL); stream_verify() counts. */
			if (rc == MDB_NOTFOUND
			    || (rc == EINVAL && op == MDB_GET_CURRENT))
				break;
			lm_check(rc, "cursor_get result");
			if (key.mv_size != 16
			    || get_be64(key.mv_data) != session
			    || get_be64((uint8_t *)key.mv_data + 8) > seq)
				break;
			lm_check(mdb_cursor_del(s->rcur, 0), "del result");
			op = MDB_GET_CURRENT;
		}
		be64(sk, session);
		lm_check(
		    mdb_get(s->txn, s->dsess, &skey, &val), "get session");
		memcpy(sv, val.mv_data, 8);
		memcpy(sv + 8, &seq, 8);
		lm_check(
		    mdb_put(s->txn, s->dsess, &skey, &sval, 0), "put session");
	}
}

static void
store_session_put(struct store *s, uint64_t id, uint64_t created)
{
	if (s->db != NULL) {
		sqlite3_stmt *st = s->st[ST_SESS_INS];

		sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)created);
		sq_run(s, ST_SESS_INS);
	} else {
		uint8_t  k[8], v[16];
		uint64_t zero = 0;
		MDB_val  key = { 8, k }, val = { 16, v };

		be64(k, id);
		memcpy(v, &created, 8);
		memcpy(v + 8, &zero, 8);
		lm_check(
		    mdb_put(s->txn, s->dsess, &key, &val, 0), "put session");
	}
}

static void
store_session_del(struct store *s, uint64_t id)
{
	if (s->db != NULL) {
		sqlite3_bind_int64(s->st[ST_SESS_DEL], 1, (sqlite3_int64)id);
		sq_run(s, ST_SESS_DEL);
	} else {
		uint8_t k[8];
		MDB_val key = { 8, k };

		be64(k, id);
		lm_check(mdb_del(s->txn, s->dsess, &key, NULL), "del session");
	}
}

/* Rows in the task, result and session tables. */
static void
store_count(struct store *s, uint64_t n[3])
{
	if (s->db != NULL) {
		static const char *q[3] = { "SELECT count(*) FROM task",
			"SELECT count(*) FROM result",
			"SELECT count(*) FROM session" };

		for (int i = 0; i < 3; i++) {
			sqlite3_stmt *st;

			sq_check(s,
			    sqlite3_prepare_v2(s->db, q[i], -1, &st, NULL),
			    q[i]);
			sq_check(s, sqlite3_step(st), q[i]);
			n[i] = (uint64_t)sqlite3_column_int64(st, 0);
			sqlite3_finalize(st);
		}
	} else {
		MDB_txn *txn;
		MDB_stat ms;
		MDB_dbi  d[3] = { s->dtask, s->dres, s->dsess };

		lm_check(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn),
		    "txn_begin");
		for (int i = 0; i < 3; i++) {
			lm_check(mdb_stat(txn, d[i], &ms), "stat");
			n[i] = ms.ms_entries;
		}
		mdb_txn_abort(txn);
	}
}

/* Read every row into memory, as the scheduler's recovery would. */
static void
store_recover(struct store *s, struct mem *m)
{
	if (s->db != NULL) {
		sqlite3_stmt *st;
		const char   *q;

		q = "SELECT id, created, acked FROM session";
		sq_check(s, sqlite3_prepare_v2(s->db, q, -1, &st, NULL), q);
		while (sqlite3_step(st) == SQLITE_ROW) {
			struct msession ms
			    = { (uint64_t)sqlite3_column_int64(st, 0),
				      (uint64_t)sqlite3_column_int64(st, 1),
				      (uint64_t)sqlite3_column_int64(st, 2) };
			mem_session(m, &ms);
		}
		sqlite3_finalize(st);
		q = "SELECT id, session, tag, state, attempts, kills, prio,"
		    " retries, flags, resources, timeout_ms, fn, args FROM "
		    "task";
		sq_check(s, sqlite3_prepare_v2(s->db, q, -1, &st, NULL), q);
		while (sqlite3_step(st) == SQLITE_ROW) {
			struct mtask t;
			int          fn_len = sqlite3_column_bytes(st, 11);

			memset(&t, 0, sizeof(t));
			t.id         = (uint64_t)sqlite3_column_int64(st, 0);
			t.session    = (uint64_t)sqlite3_column_int64(st, 1);
			t.tag        = (uint64_t)sqlite3_column_int64(st, 2);
			t.state      = (uint8_t)sqlite3_column_int(st, 3);
			t.attempts   = (uint8_t)sqlite3_column_int(st, 4);
			t.kills      = (uint8_t)sqlite3_column_int(st, 5);
			t.prio       = (uint8_t)sqlite3_column_int(st, 6);
			t.retries    = (uint8_t)sqlite3_column_int(st, 7);
			t.flags      = (uint8_t)sqlite3_column_int(st, 8);
			t.resources  = (uint8_t)sqlite3_column_int(st, 9);
			t.timeout_ms = (uint32_t)sqlite3_column_int64(st, 10);
			if (fn_len > 15)
				fn_len = 15;
			memcpy(
			    t.fn, sqlite3_column_text(st, 11), (size_t)fn_len);
			t.args_len = (uint32_t)sqlite3_column_bytes(st, 12);
			mem_task(m, &t, sqlite3_column_blob(st, 12));
		}
		sqlite3_finalize(st);
		q = "SELECT session, seq, tag, code, attempts, value"
		    " FROM result";
		sq_check(s, sqlite3_prepare_v2(s->db, q, -1, &st, NULL), q);
		while (sqlite3_step(st) == SQLITE_ROW) {
			struct mresult r;

			memset(&r, 0, sizeof(r));
			r.session   = (uint64_t)sqlite3_column_int64(st, 0);
			r.seq       = (uint64_t)sqlite3_column_int64(st, 1);
			r.tag       = (uint64_t)sqlite3_column_int64(st, 2);
			r.code      = sqlite3_column_int(st, 3);
			r.attempts  = (uint8_t)sqlite3_column_int(st, 4);
			r.value_len = (uint32_t)sqlite3_column_bytes(st, 5);
			mem_result(m, &r, sqlite3_column_blob(st, 5));
		}
		sqlite3_finalize(st);
	} else {
		MDB_txn    *txn;
		MDB_cursor *cur;
		MDB_val     key, val;

		lm_check(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn),
		    "txn_begin");
		lm_check(mdb_cursor_open(txn, s->dsess, &cur), "cursor_open");
		while (mdb_cursor_get(cur, &key, &val, MDB_NEXT) == 0) {
			struct msession ms;

			ms.id = get_be64(key.mv_data);
			memcpy(&ms.created, val.mv_data, 8);
			memcpy(&ms.acked, (uint8_t *)val.mv_data + 8, 8);
			mem_session(m, &ms);
		}
		mdb_cursor_close(cur);
		lm_check(mdb_cursor_open(txn, s->dtask, &cur), "cursor_open");
		while (mdb_cursor_get(cur, &key, &val, MDB_NEXT) == 0) {
			const uint8_t *p = val.mv_data;
			struct mtask   t;
			uint16_t       args_len;

			memset(&t, 0, sizeof(t));
			t.id = get_be64(key.mv_data);
			memcpy(&t.session, p, 8);
			memcpy(&t.tag, p + 8, 8);
			memcpy(&t.timeout_ms, p + 16, 4);
			t.state     = p[20];
			t.attempts  = p[21];
			t.kills     = p[22];
			t.prio      = p[23];
			t.retries   = p[24];
			t.flags     = p[25];
			t.resources = p[26];
			memcpy(&args_len, p + 28, 2);
			memcpy(t.fn, p + LT_HDR, p[27] > 15 ? 15 : p[27]);
			t.args_len = args_len;
			mem_task(m, &t, p + LT_HDR + p[27]);
		}
		mdb_cursor_close(cur);
		lm_check(mdb_cursor_open(txn, s->dres, &cur), "cursor_open");
		while (mdb_cursor_get(cur, &key, &val, MDB_NEXT) == 0) {
			const uint8_t *p = val.mv_data;
			struct mresult r;
			uint16_t       value_len;

			memset(&r, 0, sizeof(r));
			r.session = get_be64(key.mv_data);
			r.seq     = get_be64((uint8_t *)key.mv_data + 8);
			memcpy(&r.tag, p, 8);
			memcpy(&r.code, p + 8, 4);
			r.attempts = p[12];
			memcpy(&value_len, p + 13, 2);
			r.value_len = value_len;
			mem_result(m, &r, p + LR_HDR);
		}
		mdb_cursor_close(cur);
		mdb_txn_abort(txn);
	}
}

static uint64_t
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Bytes on disk: the main file, plus SQLite's WAL. */
static uint64_t
store_bytes(const struct store *s, uint64_t *wal)
{
	char p[700];

	*wal = 0;
	if (!s->cf->lmdb) {
		snprintf(p, sizeof(p), "%s-wal", s->file);
		*wal = file_size(p);
	}
	return file_size(s->file) + *wal;
}

/* --- the stream ------------------------------------------------------ */

struct stream_out {
	double     secs, cpu;
	uint64_t   tasks, commits;
	struct lat apply, commit; /* microseconds per commit */
};

typedef void (*sample_fn)(struct store *, uint64_t tasks_done);

/* Task indexes [lo, hi): the tasks one commit writes a kind of record for. */
struct span {
	uint64_t lo, hi;
};

/* Write one group commit (between begin and commit): the submits of sub,
 * the retries in rty, the results of res and the acknowledgements of ack.
 * n is the number of tasks in the run (the last sessions end there). */
static void
group_write(struct store *s, struct span sub, struct span rty, struct span res,
    struct span ack, uint64_t n)
{
	struct task   t;
	struct result r;
	uint64_t      i;

	for (i = sub.lo; i < sub.hi; i++) {
		if (i % EPOCH == 0)
			for (uint64_t j = 0; j < NSESS; j++)
				store_session_put(s, sess_of(i + j), i);
		task_make(i, &t);
		store_task_put(s, &t);
	}
	i = (rty.lo + RETRY_EVERY - 1) / RETRY_EVERY * RETRY_EVERY;
	for (; i < rty.hi; i += RETRY_EVERY)
		store_task_update(s, i + 1, 1, (uint8_t)(i / RETRY_EVERY % 2));
	for (i = res.lo; i < res.hi; i++) {
		store_task_del(s, i + 1);
		result_make(i, &r);
		store_result_put(s, &r);
	}
	/* Acknowledge, epoch by epoch, each session's highest seq in the
	 * span: within an epoch the span's last NSESS tasks are one per
	 * session.  A session ends with its last task's acknowledgement. */
	for (uint64_t lo = ack.lo, hi; lo < ack.hi; lo = hi) {
		hi = (lo / EPOCH + 1) * EPOCH;
		if (hi > ack.hi)
			hi = ack.hi;
		for (i = hi; i > lo && i + NSESS > hi; i--) {
			uint64_t id = sess_of(i - 1), seq = seq_of(i - 1);

			store_ack(s, id, seq);
			if (seq == SESS_TASKS || i - 1 + NSESS >= n)
				store_session_del(s, id);
		}
	}
}

/* Stream n tasks through submit, retry, result and ack, b per commit:
 * commit k holds the submits of batch k, the retries of batch k-1, the
 * results of batch k-2 and the acknowledgements of batch k-3. */
static void
stream_run(struct store *s, uint64_t n, uint64_t b, struct stream_out *o,
    sample_fn sample, uint64_t sample_every)
{
	uint64_t    nb = (n + b - 1) / b, next_sample = sample_every;
	double      t0 = now_s(), c0 = cpu_s(), skip = 0, skip_cpu = 0;
	struct span span[4] = { { 0, 0 } }; /* batches k, k-1, k-2, k-3 */

	memset(o, 0, sizeof(*o));
	for (uint64_t k = 0; k < nb + 3; k++) {
		double a = now_s(), c;

		memmove(&span[1], &span[0], 3 * sizeof(span[0]));
		span[0].lo = k < nb ? k * b : n;
		span[0].hi = k < nb && (k + 1) * b < n ? (k + 1) * b : n;
		store_begin(s);
		group_write(s, span[0], span[1], span[2], span[3], n);
		c = now_s();
		store_commit(s);
		lat_add(&o->apply, (c - a) * 1e6);
		lat_add(&o->commit, (now_s() - c) * 1e6);
		o->commits++;
		if (sample != NULL && k < nb && (k + 1) * b >= next_sample) {
			double x = now_s(), y = cpu_s();

			sample(s, span[0].hi);
			next_sample += sample_every;
			skip += now_s() - x;
			skip_cpu += cpu_s() - y;
		}
	}
	o->secs  = now_s() - t0 - skip;
	o->cpu   = cpu_s() - c0 - skip_cpu;
	o->tasks = n;
}

/* The stream must leave every table empty; anything else is a bug. */
static void
stream_verify(struct store *s)
{
	uint64_t c[3];

	store_count(s, c);
	if (c[0] || c[1] || c[2])
		die("%s: after the stream %" PRIu64 " tasks, %" PRIu64
		    " results, %" PRIu64 " sessions remain",
		    s->cf->name, c[0], c[1], c[2]);
}

/* --- options and reporting ------------------------------------------ */

static struct {
	const char          *dir;
	int                  rounds;
	uint64_t             tasks, max_commits, rtt, recover_tasks;
	uint64_t             size_tasks, size_batch;
	uint64_t             group_tasks, group_window;
	uint64_t             rates[MAX_BATCHES];
	int                  nrates;
	uint64_t             batches[MAX_BATCHES];
	int                  nbatches;
	const struct config *configs[MAX_CONFIGS];
	int                  nconfigs;
	bool                 drop;
} opt = {
	.dir           = "/var/tmp/ferry-journal-bench",
	.rounds        = 5,
	.tasks         = 2000000,
	.max_commits   = 4000,
	.rtt           = 2000,
	.recover_tasks = 1000000,
	.size_tasks    = 10000000,
	.size_batch    = 4096,
	.group_tasks   = 1000000,
	.group_window  = 16384,
	.rates         = { 250000, 0 },
	.nrates        = 2,
	.batches       = { 1, 64, 1024, 4096 },
	.nbatches      = 4,
	.drop          = true,
};

/* Directory of config c under the bench directory. */
static void
config_dir(const struct config *c, const char *what, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s-%s", opt.dir, c->name, what);
}

/* Config order for round r: forward in even rounds, reversed in odd ones,
 * so drift on a shared machine falls on both sides alike. */
static const struct config *
config_at(int r, int i)
{
	return opt.configs[r % 2 ? opt.nconfigs - 1 - i : i];
}

static void
print_load(const char *when)
{
	FILE  *f        = fopen("/proc/loadavg", "r");
	char   buf[128] = "?";
	size_t n;

	if (f != NULL) {
		n                      = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n > 0 ? n - 1 : 0] = '\0';
		fclose(f);
	}
	printf("# load average %s: %s\n", when, buf);
	fflush(stdout);
}

/* Drop the page cache (needs root); says whether it could. */
static bool
drop_caches(void)
{
	int fd;

	sync();
	fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
	if (fd < 0)
		return false;
	if (write(fd, "3\n", 2) != 2) {
		close(fd);
		return false;
	}
	close(fd);
	return true;
}

/* --- the tests ------------------------------------------------------- */

static void
test_probe(void)
{
	char       path[600];
	uint8_t    buf[4096];
	int        fd;
	struct lat over = { 0 }, app = { 0 };

	snprintf(path, sizeof(path), "%s/probe", opt.dir);
	memset(buf, 0xa5, sizeof(buf));
	for (int r = 0; r < opt.rounds; r++) {
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			die("open %s: %s", path, strerror(errno));
		/* Append a page and sync: the file grows each time. */
		for (int i = 0; i < 500; i++) {
			double a = now_s();

			if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf)
			    || fdatasync(fd) != 0)
				die("write %s: %s", path, strerror(errno));
			lat_add(&app, (now_s() - a) * 1e6);
		}
		/* Overwrite a page inside the file and sync: no metadata. */
		for (int i = 0; i < 500; i++) {
			double a = now_s();

			if (pwrite(
			        fd, buf, sizeof(buf), (off_t)(i % 64) * 4096)
			        != (ssize_t)sizeof(buf)
			    || fdatasync(fd) != 0)
				die("write %s: %s", path, strerror(errno));
			lat_add(&over, (now_s() - a) * 1e6);
		}
		close(fd);
	}
	rm_file(path);
	printf("probe append 4 KiB + fdatasync: p50 %.0f us, p99 %.0f us "
	       "(%zu syncs)\n",
	    quantile(app.v, app.n, 0.5), quantile(app.v, app.n, 0.99), app.n);
	printf("probe overwrite 4 KiB + fdatasync: p50 %.0f us, p99 %.0f us "
	       "(%zu syncs)\n",
	    quantile(over.v, over.n, 0.5), quantile(over.v, over.n, 0.99),
	    over.n);
	lat_free(&app);
	lat_free(&over);
}

static void
test_stream(void)
{
	/* [config][batch][round] */
	static double tps[MAX_CONFIGS][MAX_BATCHES][MAX_ROUNDS];
	static double cps[MAX_CONFIGS][MAX_BATCHES][MAX_ROUNDS];
	static double cp50[MAX_CONFIGS][MAX_BATCHES][MAX_ROUNDS];
	static double cp99[MAX_CONFIGS][MAX_BATCHES][MAX_ROUNDS];
	static double ap50[MAX_CONFIGS][MAX_BATCHES][MAX_ROUNDS];
	static double cpu[MAX_CONFIGS][MAX_BATCHES][MAX_ROUNDS];

	for (int r = 0; r < opt.rounds; r++) {
		for (int bi = 0; bi < opt.nbatches; bi++) {
			uint64_t b = opt.batches[bi];
			uint64_t n = opt.tasks;

			if (n > b * opt.max_commits)
				n = b * opt.max_commits;
			for (int i = 0; i < opt.nconfigs; i++) {
				const struct config *c = config_at(r, i);
				int                  ci;
				struct store         s;
				struct stream_out    o;
				char                 dir[600];

				for (ci = 0; opt.configs[ci] != c; ci++)
					;
				config_dir(c, "stream", dir, sizeof(dir));
				store_open(&s, c, dir, true);
				stream_run(&s, n, b, &o, NULL, 0);
				stream_verify(&s);
				store_close(&s);
				tps[ci][bi][r] = (double)o.tasks / o.secs;
				cps[ci][bi][r] = (double)o.commits / o.secs;
				cp50[ci][bi][r]
				    = quantile(o.commit.v, o.commit.n, 0.5);
				cp99[ci][bi][r]
				    = quantile(o.commit.v, o.commit.n, 0.99);
				ap50[ci][bi][r]
				    = quantile(o.apply.v, o.apply.n, 0.5);
				cpu[ci][bi][r] = o.cpu * 1e6 / (double)o.tasks;
				printf("stream %-13s batch %4" PRIu64
				       " round %d: %" PRIu64
				       " tasks in %.2f s = %.0f tasks/s, "
				       "%.0f commits/s; commit p50 %.0f p99 "
				       "%.0f us; apply p50 %.0f us; cpu "
				       "%.2f us/task\n",
				    c->name, b, r + 1, o.tasks, o.secs,
				    tps[ci][bi][r], cps[ci][bi][r],
				    cp50[ci][bi][r], cp99[ci][bi][r],
				    ap50[ci][bi][r], cpu[ci][bi][r]);
				fflush(stdout);
				lat_free(&o.apply);
				lat_free(&o.commit);
			}
		}
	}
	printf("\n# stream, medians of %d rounds\n", opt.rounds);
	printf("| config | batch | tasks/s | commits/s | commit p50 us | "
	       "commit p99 us | apply p50 us | cpu us/task |\n");
	printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	for (int ci = 0; ci < opt.nconfigs; ci++)
		for (int bi = 0; bi < opt.nbatches; bi++)
			printf(
			    "| %s | %" PRIu64
			    " | %.0f | %.0f | %.0f | %.0f | %.0f | %.2f |\n",
			    opt.configs[ci]->name, opt.batches[bi],
			    median(tps[ci][bi], (size_t)opt.rounds),
			    median(cps[ci][bi], (size_t)opt.rounds),
			    median(cp50[ci][bi], (size_t)opt.rounds),
			    median(cp99[ci][bi], (size_t)opt.rounds),
			    median(ap50[ci][bi], (size_t)opt.rounds),
			    median(cpu[ci][bi], (size_t)opt.rounds));
	fflush(stdout);
}

static void
test_rtt(void)
{
	static double c50[MAX_CONFIGS][MAX_ROUNDS],
	    c99[MAX_CONFIGS][MAX_ROUNDS];
	static double r50[MAX_CONFIGS][MAX_ROUNDS],
	    r99[MAX_CONFIGS][MAX_ROUNDS];

	for (int r = 0; r < opt.rounds; r++) {
		for (int i = 0; i < opt.nconfigs; i++) {
			const struct config *c = config_at(r, i);
			struct store         s;
			struct lat           commit = { 0 }, rt = { 0 };
			char                 dir[600];
			int                  ci;

			for (ci = 0; opt.configs[ci] != c; ci++)
				;
			config_dir(c, "rtt", dir, sizeof(dir));
			store_open(&s, c, dir, true);
			store_begin(&s);
			store_session_put(&s, 1, 0);
			store_commit(&s);
			for (uint64_t k = 0; k < opt.rtt + 50; k++) {
				uint64_t      i2 = k * NSESS; /* session 1 */
				struct task   t;
				struct result res;
				double        a, b2, e;

				task_make(i2, &t);
				result_make(i2, &res);
				/* Submit: answered after this commit.  The
				 * previous result's ack rides along. */
				a = now_s();
				store_begin(&s);
				if (k > 0)
					store_ack(&s, 1, res.seq - 1);
				store_task_put(&s, &t);
				store_commit(&s);
				/* Result: delivered after this commit. */
				b2 = now_s();
				store_begin(&s);
				store_task_del(&s, t.id);
				store_result_put(&s, &res);
				store_commit(&s);
				e = now_s();
				if (k < 50)
					continue; /* warm-up */
				lat_add(&commit, (b2 - a) * 1e6);
				lat_add(&commit, (e - b2) * 1e6);
				lat_add(&rt, (e - a) * 1e6);
			}
			store_close(&s);
			c50[ci][r] = quantile(commit.v, commit.n, 0.5);
			c99[ci][r] = quantile(commit.v, commit.n, 0.99);
			r50[ci][r] = quantile(rt.v, rt.n, 0.5);
			r99[ci][r] = quantile(rt.v, rt.n, 0.99);
			printf(
			    "rtt %-13s round %d: commit p50 %.0f p99 %.0f us;"
			    " submit+result p50 %.0f p99 %.0f us\n",
			    c->name, r + 1, c50[ci][r], c99[ci][r], r50[ci][r],
			    r99[ci][r]);
			fflush(stdout);
			lat_free(&commit);
			lat_free(&rt);
		}
	}
	printf("\n# rtt (%" PRIu64 " single tasks), medians of %d rounds\n",
	    opt.rtt, opt.rounds);
	printf("| config | commit p50 us | commit p99 us | submit+result "
	       "p50 us | submit+result p99 us |\n");
	printf("| --- | ---: | ---: | ---: | ---: |\n");
	for (int ci = 0; ci < opt.nconfigs; ci++)
		printf("| %s | %.0f | %.0f | %.0f | %.0f |\n",
		    opt.configs[ci]->name, median(c50[ci], (size_t)opt.rounds),
		    median(c99[ci], (size_t)opt.rounds),
		    median(r50[ci], (size_t)opt.rounds),
		    median(r99[ci], (size_t)opt.rounds));
	fflush(stdout);
}

static void
test_recover(void)
{
	static double cold[MAX_CONFIGS][MAX_ROUNDS],
	    warm[MAX_CONFIGS][MAX_ROUNDS];
	static double bytes[MAX_CONFIGS], payload;
	bool          dropped = opt.drop;
	/* Only one config per backend: the sync mode does not change what
	 * is on disk. */
	const struct config *load[MAX_CONFIGS];
	int                  nload = 0;

	for (int ci = 0; ci < opt.nconfigs; ci++) {
		bool dup = false;

		for (int j = 0; j < nload; j++)
			dup |= load[j]->lmdb == opt.configs[ci]->lmdb;
		if (!dup)
			load[nload++] = opt.configs[ci];
	}
	for (int li = 0; li < nload; li++) {
		const struct config *c = load[li];
		struct store         s;
		char                 dir[600];
		uint64_t             wal, pl = 0;
		double               a = now_s();

		config_dir(c, "recover", dir, sizeof(dir));
		store_open(&s, c, dir, true);
		for (uint64_t i = 0; i < opt.recover_tasks; i += 4096) {
			store_begin(&s);
			for (uint64_t j = i;
			     j < i + 4096 && j < opt.recover_tasks; j++) {
				struct task t;

				if (j % EPOCH == 0)
					for (uint64_t q = 0; q < NSESS; q++)
						store_session_put(
						    &s, sess_of(j + q), j);
				task_make(j, &t);
				store_task_put(&s, &t);
				pl += task_payload(&t);
			}
			store_commit(&s);
		}
		store_close(&s);
		bytes[li] = (double)store_bytes(&s, &wal);
		payload   = (double)pl;
		printf("recover %-13s: loaded %" PRIu64
		       " queued tasks in %.1f s; %.0f bytes on disk "
		       "(WAL %" PRIu64 "), %.1f bytes/task; payload "
		       "%.1f bytes/task\n",
		    c->name, opt.recover_tasks, now_s() - a, bytes[li], wal,
		    bytes[li] / (double)opt.recover_tasks,
		    payload / (double)opt.recover_tasks);
		fflush(stdout);
	}
	for (int r = 0; r < opt.rounds; r++) {
		for (int i = 0; i < nload; i++) {
			int                  li = r % 2 ? nload - 1 - i : i;
			const struct config *c  = load[li];
			char                 dir[600];

			config_dir(c, "recover", dir, sizeof(dir));
			for (int w = 0; w < 2; w++) {
				struct store s;
				struct mem   m;
				double       a;

				memset(&m, 0, sizeof(m));
				if (w == 0 && opt.drop && !drop_caches())
					dropped = false;
				a = now_s();
				store_open(&s, c, dir, false);
				store_recover(&s, &m);
				(w ? warm : cold)[li][r] = now_s() - a;
				store_close(&s);
				if (m.ntasks != opt.recover_tasks)
					die("%s: recovered %zu tasks, not "
					    "%" PRIu64,
					    c->name, m.ntasks,
					    opt.recover_tasks);
				printf("recover %-13s round %d %s: %zu tasks, "
				       "%zu sessions in %.3f s\n",
				    c->lmdb ? "lmdb" : "sqlite", r + 1,
				    w ? "warm" : "cold", m.ntasks, m.nsessions,
				    (w ? warm : cold)[li][r]);
				fflush(stdout);
				mem_free(&m);
			}
		}
	}
	printf("\n# recover %" PRIu64 " queued tasks, medians of %d rounds; "
	       "page cache dropped before cold runs: %s\n",
	    opt.recover_tasks, opt.rounds, dropped ? "yes" : "no");
	printf("| store | bytes/task on disk | cold s | warm s |\n");
	printf("| --- | ---: | ---: | ---: |\n");
	for (int li = 0; li < nload; li++)
		printf("| %s | %.1f | %.3f | %.3f |\n",
		    load[li]->lmdb ? "lmdb" : "sqlite",
		    bytes[li] / (double)opt.recover_tasks,
		    median(cold[li], (size_t)opt.rounds),
		    median(warm[li], (size_t)opt.rounds));
	printf("payload (fields at natural sizes): %.1f bytes/task\n",
	    payload / (double)opt.recover_tasks);
	fflush(stdout);
}

static void
size_sample(struct store *s, uint64_t done)
{
	uint64_t wal, total = store_bytes(s, &wal), c[3];
	char     extra[160] = "";

	store_count(s, c);
	if (s->db != NULL) {
		sqlite3_stmt *st;
		long long     pages = 0, freep = 0;

		if (sqlite3_prepare_v2(
		        s->db, "PRAGMA page_count", -1, &st, NULL)
		        == SQLITE_OK
		    && sqlite3_step(st) == SQLITE_ROW)
			pages = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		if (sqlite3_prepare_v2(
		        s->db, "PRAGMA freelist_count", -1, &st, NULL)
		        == SQLITE_OK
		    && sqlite3_step(st) == SQLITE_ROW)
			freep = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		snprintf(extra, sizeof(extra),
		    "db %" PRIu64 " + WAL %" PRIu64 "; pages %lld, free %lld",
		    total - wal, wal, pages, freep);
	} else {
		MDB_envinfo ei;
		MDB_stat    st;

		mdb_env_info(s->env, &ei);
		mdb_env_stat(s->env, &st);
		snprintf(extra, sizeof(extra), "last page %zu of %u bytes",
		    ei.me_last_pgno, st.ms_psize);
	}
	printf("size %-13s %s %9" PRIu64 " tasks: %" PRIu64
	       " bytes (%s); live %" PRIu64 " tasks, %" PRIu64
	       " results, %" PRIu64 " sessions\n",
	    s->cf->name, c[0] + c[1] + c[2] ? "after" : "drained,", done,
	    total, extra, c[0], c[1], c[2]);
	fflush(stdout);
}

static void
test_size(void)
{
	for (int i = 0; i < opt.nconfigs; i++) {
		const struct config *c = opt.configs[i];
		struct store         s;
		struct stream_out    o;
		char                 dir[600];

		if (!c->durable)
			continue; /* the sync mode does not change the size */
		config_dir(c, "size", dir, sizeof(dir));
		store_open(&s, c, dir, true);
		stream_run(&s, opt.size_tasks, opt.size_batch, &o, size_sample,
		    opt.size_tasks / 10);
		stream_verify(&s);
		size_sample(&s, opt.size_tasks);
		printf("size %-13s: %" PRIu64 " tasks, batch %" PRIu64
		       ", %.0f tasks/s\n",
		    c->name, o.tasks, opt.size_batch,
		    (double)o.tasks / o.secs);
		lat_free(&o.apply);
		lat_free(&o.commit);
		/* A burst: the recovery test's queue length arrives at once
		 * (four commits), then drains.  Free pages are reused, but
		 * does the file give them back? */
		stream_run(
		    &s, opt.recover_tasks, opt.recover_tasks / 4, &o, NULL, 0);
		stream_verify(&s);
		printf("size %-13s: burst of %" PRIu64
		       " tasks in commits of %" PRIu64 ", drained\n",
		    c->name, opt.recover_tasks, opt.recover_tasks / 4);
		size_sample(&s, opt.recover_tasks);
		lat_free(&o.apply);
		lat_free(&o.commit);
		if (s.db != NULL) {
			sq_exec(&s, "PRAGMA incremental_vacuum");
			sq_exec(&s, "PRAGMA wal_checkpoint(TRUNCATE)");
			printf(
			    "size %-13s: after incremental_vacuum (auto_vacuum"
			    " %s) and wal_checkpoint(TRUNCATE)\n",
			    c->name,
			    opt_vacuum ? "INCREMENTAL" : "NONE: no effect");
			size_sample(&s, opt.recover_tasks);
		}
		store_close(&s);
		printf("size %-13s: after close %" PRIu64 " bytes\n", c->name,
		    file_size(s.file));
		fflush(stdout);
	}
}

/* --- group commit with a producer on another thread ------------------ */

#define CHUNK 256 /* tasks per submit message */

/* The scheduler loop (producer) and the journal thread share this. */
struct group {
	pthread_mutex_t mu;
	pthread_cond_t  more, room;
	uint64_t        n, rate, window;
	uint64_t        produced, durable; /* tasks */
	double         *chunk_t; /* when each chunk arrived */
};

/* The scheduler loop: a submit message of CHUNK tasks every CHUNK/rate
 * seconds (rate 0: as fast as the window of tasks not yet durable allows;
 * the journal then takes at most a quarter of the window per commit). */
static void *
group_producer(void *arg)
{
	struct group   *g  = arg;
	struct timespec t0 = { 0, 0 };

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint64_t c = 0; c * CHUNK < g->n; c++) {
		if (g->rate != 0) {
			double at = (double)(c * CHUNK) / (double)g->rate;
			struct timespec ts = t0;
			long ns = (long)((at - (double)(long)at) * 1e9);

			ts.tv_sec += (time_t)at;
			ts.tv_nsec += ns;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			while (clock_nanosleep(
			           CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)
			    == EINTR)
				;
		}
		pthread_mutex_lock(&g->mu);
		while (g->rate == 0 && g->produced - g->durable >= g->window)
			pthread_cond_wait(&g->room, &g->mu);
		g->chunk_t[c] = now_s();
		g->produced = (c + 1) * CHUNK < g->n ? (c + 1) * CHUNK : g->n;
		pthread_cond_signal(&g->more);
		pthread_mutex_unlock(&g->mu);
	}
	return NULL;
}

struct group_out {
	double     secs, cpu;
	uint64_t   commits;
	struct lat wait; /* microseconds from a chunk's arrival to durable */
	struct lat size; /* tasks submitted per commit */
};

/* The journal thread: each commit takes every submit that arrived while
 * the previous one was written and synced (group commit). */
static void
group_run(struct store *s, struct group *g, struct group_out *o)
{
	struct span     span[4] = { { 0, 0 } };
	uint64_t        done = 0, tail = 0;
	pthread_t       th;
	double          t0 = now_s();
	struct timespec c0, c1;

	memset(o, 0, sizeof(*o));
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
	if (pthread_create(&th, NULL, group_producer, g) != 0)
		die("pthread_create failed");
	while (tail < 3) {
		uint64_t p;
		double   e;

		pthread_mutex_lock(&g->mu);
		while (g->produced == done && done < g->n)
			pthread_cond_wait(&g->more, &g->mu);
		p = g->produced;
		pthread_mutex_unlock(&g->mu);
		/* Unpaced, at most a quarter of the window per commit, so
		 * the producer refills while the journal writes. */
		if (g->rate == 0 && p - done > g->window / 4)
			p = done + g->window / 4;
		if (p == g->n && done == g->n)
			tail++; /* the last results and acknowledgements */
		memmove(&span[1], &span[0], 3 * sizeof(span[0]));
		span[0].lo = done;
		span[0].hi = p;
		store_begin(s);
		group_write(s, span[0], span[1], span[2], span[3], g->n);
		store_commit(s);
		e = now_s();
		pthread_mutex_lock(&g->mu);
		g->durable = p;
		pthread_cond_signal(&g->room);
		pthread_mutex_unlock(&g->mu);
		for (uint64_t c = done / CHUNK; c * CHUNK < p; c++)
			lat_add(&o->wait, (e - g->chunk_t[c]) * 1e6);
		if (p > done)
			lat_add(&o->size, (double)(p - done));
		done = p;
		o->commits++;
	}
	pthread_join(th, NULL);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
	o->secs = now_s() - t0;
	o->cpu  = (double)(c1.tv_sec - c0.tv_sec)
	    + (double)(c1.tv_nsec - c0.tv_nsec) * 1e-9;
}

static void
test_group(void)
{
	static double tps[MAX_CONFIGS][MAX_BATCHES][MAX_ROUNDS];
	static double w50[MAX_CONFIGS][MAX_BATCHES][MAX_ROUNDS];
	static double w99[MAX_CONFIGS][MAX_BATCHES][MAX_ROUNDS];
	static double b50[MAX_CONFIGS][MAX_BATCHES][MAX_ROUNDS];
	static double cpu[MAX_CONFIGS][MAX_BATCHES][MAX_ROUNDS];

	for (int r = 0; r < opt.rounds; r++) {
		for (int ri = 0; ri < opt.nrates; ri++) {
			for (int i = 0; i < opt.nconfigs; i++) {
				const struct config *c = config_at(r, i);
				struct store         s;
				struct group         g;
				struct group_out     o;
				char                 dir[600];
				int                  ci;

				for (ci = 0; opt.configs[ci] != c; ci++)
					;
				memset(&g, 0, sizeof(g));
				pthread_mutex_init(&g.mu, NULL);
				pthread_cond_init(&g.more, NULL);
				pthread_cond_init(&g.room, NULL);
				g.n      = opt.group_tasks;
				g.rate   = opt.rates[ri];
				g.window = opt.group_window;
				g.chunk_t
				    = calloc(g.n / CHUNK + 1, sizeof(double));
				if (g.chunk_t == NULL)
					die("out of memory");
				config_dir(c, "group", dir, sizeof(dir));
				store_open(&s, c, dir, true);
				group_run(&s, &g, &o);
				stream_verify(&s);
				store_close(&s);
				tps[ci][ri][r] = (double)g.n / o.secs;
				w50[ci][ri][r]
				    = quantile(o.wait.v, o.wait.n, 0.5);
				w99[ci][ri][r]
				    = quantile(o.wait.v, o.wait.n, 0.99);
				b50[ci][ri][r]
				    = quantile(o.size.v, o.size.n, 0.5);
				cpu[ci][ri][r] = o.cpu * 1e6 / (double)g.n;
				printf("group %-13s rate %7" PRIu64
				       " round %d: %.0f tasks/s, %" PRIu64
				       " commits, %.0f tasks/commit p50; "
				       "arrival to durable p50 %.0f p99 %.0f "
				       "us; journal thread cpu %.2f us/task\n",
				    c->name, g.rate, r + 1, tps[ci][ri][r],
				    o.commits, b50[ci][ri][r], w50[ci][ri][r],
				    w99[ci][ri][r], cpu[ci][ri][r]);
				fflush(stdout);
				lat_free(&o.wait);
				lat_free(&o.size);
				free(g.chunk_t);
				pthread_mutex_destroy(&g.mu);
				pthread_cond_destroy(&g.more);
				pthread_cond_destroy(&g.room);
			}
		}
	}
	printf("\n# group commit, %" PRIu64 " tasks in messages of %d; rate 0:"
	       " unpaced, at most %" PRIu64
	       " tasks not yet durable and %" PRIu64 " per commit; "
	       "medians of %d rounds\n",
	    opt.group_tasks, CHUNK, opt.group_window, opt.group_window / 4,
	    opt.rounds);
	printf("| config | offered tasks/s | tasks/s | tasks/commit p50 | "
	       "arrival to durable p50 us | p99 us | journal cpu us/task "
	       "|\n");
	printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	for (int ci = 0; ci < opt.nconfigs; ci++)
		for (int ri = 0; ri < opt.nrates; ri++)
			printf(
			    "| %s | %s%.0f | %.0f | %.0f | %.0f | %.0f | %.2f "
			    "|\n",
			    opt.configs[ci]->name,
			    opt.rates[ri] ? "" : "unpaced ",
			    (double)opt.rates[ri],
			    median(tps[ci][ri], (size_t)opt.rounds),
			    median(b50[ci][ri], (size_t)opt.rounds),
			    median(w50[ci][ri], (size_t)opt.rounds),
			    median(w99[ci][ri], (size_t)opt.rounds),
			    median(cpu[ci][ri], (size_t)opt.rounds));
	fflush(stdout);
}

/* --- main ------------------------------------------------------------ */

static uint64_t
parse_u64(const char *s, const char *what)
{
	char              *end;
	unsigned long long v;

	errno = 0;
	v     = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0'
	    || (v == 0 && strcmp(what, "--rates") != 0))
		die("%s: not a positive number: %s", what, s);
	return v;
}

/* A comma-separated list of numbers into v[MAX_BATCHES]; returns how many. */
static int
parse_list(const char *s, const char *what, uint64_t *v)
{
	char buf[256], *save, *tok;
	int  n = 0;

	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		if (n == MAX_BATCHES)
			die("%s: at most %d values", what, MAX_BATCHES);
		v[n++] = parse_u64(tok, what);
	}
	return n;
}

static void
usage(void)
{
	printf(
	    "usage: journal_store [--dir DIR] [--rounds R] [--tasks N]\n"
	    "    [--batches 1,64,1024,4096] [--max-commits C]\n"
	    "    [--configs NAME,...] [--rtt N] [--recover-tasks N]\n"
	    "    [--size-tasks N] [--size-batch B] [--no-vacuum] [--no-drop]\n"
	    "    [--group-tasks N] [--rates 250000,0] [--group-window W]\n"
	    "    [probe|stream|rtt|recover|group|size|all]...\n"
	    "configs:");
	for (size_t i = 0; i < sizeof(all_configs) / sizeof(*all_configs); i++)
		printf(" %s", all_configs[i].name);
	printf("\n");
}

int
main(int argc, char **argv)
{
	const char   *tests[8];
	int           ntests = 0;
	struct statfs sf;
	char          cmd[1024] = "";

	{
		sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
		sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	}
	for (size_t i = 0;
	     i < sizeof(all_configs) / sizeof(*all_configs) && i < MAX_CONFIGS;
	     i++)
		opt.configs[opt.nconfigs++] = &all_configs[i];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i],
		           *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage();
			return 0;
		} else if (strcmp(a, "--no-drop") == 0) {
			opt.drop = false;
		} else if (strcmp(a, "--no-vacuum") == 0) {
			opt_vacuum = false;
		} else if (a[0] == '-' && v == NULL) {
			die("%s needs a value (see --help)", a);
		} else if (strcmp(a, "--dir") == 0) {
			opt.dir = v, i++;
		} else if (strcmp(a, "--rounds") == 0) {
			opt.rounds = (int)parse_u64(v, a), i++;
			if (opt.rounds > MAX_ROUNDS)
				die("--rounds: at most %d", MAX_ROUNDS);
		} else if (strcmp(a, "--tasks") == 0) {
			opt.tasks = parse_u64(v, a), i++;
		} else if (strcmp(a, "--max-commits") == 0) {
			opt.max_commits = parse_u64(v, a), i++;
		} else if (strcmp(a, "--rtt") == 0) {
			opt.rtt = parse_u64(v, a), i++;
		} else if (strcmp(a, "--recover-tasks") == 0) {
			opt.recover_tasks = parse_u64(v, a), i++;
		} else if (strcmp(a, "--size-tasks") == 0) {
			opt.size_tasks = parse_u64(v, a), i++;
		} else if (strcmp(a, "--size-batch") == 0) {
			opt.size_batch = parse_u64(v, a), i++;
		} else if (strcmp(a, "--batches") == 0) {
			opt.nbatches = parse_list(v, a, opt.batches), i++;
		} else if (strcmp(a, "--rates") == 0) {
			opt.nrates = parse_list(v, a, opt.rates), i++;
		} else if (strcmp(a, "--group-tasks") == 0) {
			opt.group_tasks = parse_u64(v, a), i++;
		} else if (strcmp(a, "--group-window") == 0) {
			opt.group_window = parse_u64(v, a), i++;
		} else if (strcmp(a, "--configs") == 0) {
			char buf[256], *save, *tok;

			snprintf(buf, sizeof(buf), "%s", v);
			opt.nconfigs = 0;
			for (tok = strtok_r(buf, ",", &save); tok != NULL;
			     tok = strtok_r(NULL, ",", &save)) {
				size_t k,
				    nall = sizeof(all_configs)
				    / sizeof(*all_configs);

				for (k = 0; k < nall
				     && strcmp(all_configs[k].name, tok) != 0;
				     k++)
					;
				if (k == nall)
					die("--configs: no config %s (see "
					    "--help)",
					    tok);
				if (opt.nconfigs == MAX_CONFIGS)
					die("--configs: too many");
				opt.configs[opt.nconfigs++] = &all_configs[k];
			}
			i++;
		} else if (a[0] == '-') {
			die("unknown option %s (see --help)", a);
		} else if (strcmp(a, "all") == 0) {
			ntests          = 0;
			tests[ntests++] = "probe";
			tests[ntests++] = "stream";
			tests[ntests++] = "rtt";
			tests[ntests++] = "recover";
			tests[ntests++] = "group";
			tests[ntests++] = "size";
		} else if (ntests < 8) {
			tests[ntests++] = a;
		}
	}
	if (ntests == 0) {
		usage();
		return 2;
	}
	if (mkdir(opt.dir, 0755) != 0 && errno != EEXIST)
		die("mkdir %s: %s", opt.dir, strerror(errno));
	for (int i = 0; i < argc; i++) {
		strncat(cmd, " ", sizeof(cmd) - strlen(cmd) - 1);
		strncat(cmd, argv[i], sizeof(cmd) - strlen(cmd) - 1);
	}
	printf("#%s\n", cmd);
	printf("# SQLite %s, %s, %ld CPUs\n", sqlite3_libversion(),
	    MDB_VERSION_STRING, sysconf(_SC_NPROCESSORS_ONLN));
	if (statfs(opt.dir, &sf) == 0)
		printf("# %s: file system type 0x%lx%s\n", opt.dir,
		    (unsigned long)sf.f_type,
		    sf.f_type == 0xef53 ? " (ext2/3/4)"
		        : sf.f_type == 0x01021994
		        ? " (tmpfs: nothing is durable!)"
		        : "");
	print_load("at start");
	for (int i = 0; i < ntests; i++) {
		if (strcmp(tests[i], "probe") == 0)
			test_probe();
		else if (strcmp(tests[i], "stream") == 0)
			test_stream();
		else if (strcmp(tests[i], "rtt") == 0)
			test_rtt();
		else if (strcmp(tests[i], "recover") == 0)
			test_recover();
		else if (strcmp(tests[i], "group") == 0)
			test_group();
		else if (strcmp(tests[i], "size") == 0)
			test_size();
		else
			die("unknown test %s (see --help)", tests[i]);
		print_load("now");
	}
	return 0;
}
