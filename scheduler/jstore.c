/*
 * jstore.c - the journal on disk (see jstore.h), on LMDB.
 *
 * Values:   u32 CRC32C of the key and then of the value's bytes after the
 *           CRC | u8 kind | u8 version | u16 0 | the record's fields,
 *           little-endian, then its byte strings.
 * Keys:     tasks: id; results: session, seq; sessions: id (all u64,
 *           big-endian); meta: a name.
 * Batches:  u8 op | u8 table | u16 key length | u32 value length | key |
 *           value, one after another.
 *
 * Damage.  LMDB (0.9.24) has no checksums of its own and trusts its
 * pages; a damaged data.mdb leads to the following, as found by damaging
 * files on purpose (tests/unit/test_jstore.c, tests/fuzz/fuzz_jstore.c):
 *
 * - Empty (0 bytes): LMDB would start a new journal in it.  Refused
 *   here, since a journal that was ever opened holds its format record.
 * - Shorter than two meta pages, or not an LMDB file at all: LMDB says
 *   MDB_INVALID ("File is not an LMDB file").  Refused.
 * - Truncated anywhere after the meta pages: LMDB opens it and then dies
 *   of SIGBUS touching a page past the end.  Refused at open: the file
 *   must hold the last page LMDB's meta page names.
 * - A byte changed inside a record (key or value): the record's CRC
 *   fails; it is dropped and counted in jrestore.damaged.
 * - A byte changed in a page's or a node's header (leaf or branch):
 *   anything LMDB can do.  It reports MDB_CORRUPTED, MDB_PAGE_NOTFOUND or
 *   MDB_BAD_TXN (refused); shows records that fail their CRC (dropped and
 *   counted); hides records (the walk finds fewer than the table's count:
 *   counted as damaged and missing); shows more than the count (refused);
 *   or dies of SIGSEGV, SIGBUS or SIGABRT (an assertion) reading a node
 *   at an offset past the page: jstore_check(), which reads the journal
 *   in a child process first, refuses it with the signal.
 * - A table's record in LMDB's table of tables damaged: the table is not
 *   found (refused: a missing table is not created again in a journal
 *   that had them), or its counts or root are wrong (as above).
 * - A meta page damaged: MDB_INVALID or MDB_VERSION_MISMATCH when its
 *   magic, version or flags change (refused, even when it was the older
 *   of the two); a wrong page size, map size or last page as above or
 *   as truncation.  Not caught: a changed transaction id that makes LMDB
 *   choose the older meta page, i.e. the journal one commit back.
 * - Pages that are free (old copies, LMDB's free list): no effect on
 *   reading; a damaged free list can make later writes overwrite live
 *   pages, found at the next recovery at best.
 *
 * So a journal that jstore_check() passes and jstore_read() reads is the
 * last state LMDB points at, minus the records counted in damaged; after
 * damage the scheduler should write what it restored into a new journal
 * rather than go on writing into damaged pages.
 */
#include "jstore.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>

enum { T_TASKS, T_RESULTS, T_SESSIONS, T_META, T_MAX };
static const char *const table_names[T_MAX] = { "tasks", "results",
	"sessions", "meta" };
static const int table_kinds[T_MAX] = { JSTORE_TASK, JSTORE_RESULT,
	JSTORE_SESSION, JSTORE_META };

enum { OP_PUT = 1, OP_DEL, OP_ACK, OP_DEL_SESSION };

#define HEAD 8 /* crc, kind, version, pad */
#define OP_HEAD 8

struct jstore {
	MDB_env *env;
	MDB_dbi  dbi[T_MAX];
	int      lock_fd;
	int      rdonly; /* jstore_check's: nothing is written */
	int      fresh;  /* rdonly, and no commit yet: nothing to read */
	int      remade; /* a file with no commit was removed and made anew */
	size_t   map_size;
	char     dir[4096];
	char     path[4200];
};

/* ------------------------------------------------------------ CRC32C */

static uint32_t crc_table[256];

static void
crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		crc_table[i] = c;
	}
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <nmmintrin.h>
#define CRC_HW 1

/* The same with SSE 4.2's crc32 instruction (CRC32C's polynomial), eight
 * bytes at a time: about ten times the table's speed. */
__attribute__((target("sse4.2"))) static uint32_t
crc_sse42(uint32_t crc, const uint8_t *b, size_t n)
{
	uint64_t c = crc;

	for (; n >= 8; b += 8, n -= 8) {
		uint64_t v;
		memcpy(&v, b, 8);
		c = _mm_crc32_u64(c, v);
	}
	crc = (uint32_t)c;
	while (n-- > 0)
		crc = _mm_crc32_u8(crc, *b++);
	return crc;
}
#endif

/* 1: use the CPU's instruction, 0: the table (also when the
 * environment has FERRY_CRC_TABLE, for the tests of the table). */
static int            crc_hw;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void
crc_choose(void)
{
	crc_init();
#ifdef CRC_HW
	crc_hw = getenv("FERRY_CRC_TABLE") == NULL &&
	    __builtin_cpu_supports("sse4.2");
#endif
}

uint32_t
jstore_crc32c(uint32_t crc, const void *p, size_t n)
{
	const uint8_t *b = p;

	pthread_once(&crc_once, crc_choose);
	crc = ~crc;
#ifdef CRC_HW
	if (crc_hw)
		return ~crc_sse42(crc, b, n);
#endif
	while (n-- > 0)
		crc = crc_table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* ----------------------------------------------------- byte helpers */

static void
le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void
le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static uint64_t
get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint64_t
getbe64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* ----------------------------------------------------------- batches */

void
jbatch_init(struct jbatch *b)
{
	memset(b, 0, sizeof(*b));
}

void
jbatch_fini(struct jbatch *b)
{
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

void
jbatch_clear(struct jbatch *b)
{
	b->len   = 0;
	b->n_ops = 0;
	b->oom   = 0;
}

/* Room for an operation with a key of klen and a value of vlen bytes:
 * returns where its key goes (the value follows), or NULL. */
static uint8_t *
op_begin(struct jbatch *b, int op, int table, size_t klen, size_t vlen)
{
	size_t need = b->len + OP_HEAD + klen + vlen;
	uint8_t *p;

	if (b->oom)
		return NULL;
	if (vlen > UINT32_MAX) {
		b->oom = 1; /* the batch's own header cannot say it */
		return NULL;
	}
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < need)
			cap *= 2;
		if ((p = realloc(b->buf, cap)) == NULL) {
			b->oom = 1;
			return NULL;
		}
		b->buf = p;
		b->cap = cap;
	}
	p    = b->buf + b->len;
	p[0] = (uint8_t)op;
	p[1] = (uint8_t)table;
	le16(p + 2, (uint16_t)klen);
	le32(p + 4, (uint32_t)vlen);
	b->len = need;
	b->n_ops++;
	return p + OP_HEAD;
}

/* The checksum of a record: its key, then its value after the CRC. */
static uint32_t
record_crc(const void *k, size_t klen, const uint8_t *v, size_t vlen)
{
	return jstore_crc32c(jstore_crc32c(0, k, klen), v + 4, vlen - 4);
}

/* The value header, once the key and the fields after it are written. */
static void
seal(const uint8_t *k, size_t klen, uint8_t *v, size_t vlen, int kind)
{
	v[4] = (uint8_t)kind;
	v[5] = 1; /* record version */
	v[6] = v[7] = 0;
	le32(v, record_crc(k, klen, v, vlen));
}

#define TASK_FIXED (HEAD + 8 * 2 + 4 * 3 + 2 + 2 * 3 + 4 * 4)

int
jbatch_put_task(struct jbatch *b, const struct jtask *t)
{
	size_t   vlen;
	uint8_t *k, *v, *p;

	if (t->n_objs > JSTORE_MAX_OBJS)
		return -1;
	vlen = TASK_FIXED + 8 * (size_t)t->n_objs + t->fn_len +
	    t->args_len + t->why_len;
	if ((k = op_begin(b, OP_PUT, T_TASKS, 8, vlen)) == NULL)
		return -1;
	be64(k, t->id);
	v = p = k + 8;
	p += HEAD;
	le64(p, t->session), p += 8;
	le64(p, t->tag), p += 8;
	le32(p, t->fn_len), p += 4;
	le32(p, t->args_len), p += 4;
	le32(p, t->why_len), p += 4;
	/* flags: bit 0 retry_errors, bit 1 run_anyway (a journal written
	 * before run_anyway existed has 0 or 1 there) */
	p[0] = t->n_objs;
	p[1] = (uint8_t)((t->retry_errors != 0) | (t->run_anyway != 0) << 1);
	p += 2;
	le16(p, t->attempts), p += 2;
	le16(p, t->failures), p += 2;
	le16(p, t->kills), p += 2;
	le32(p, t->retries), p += 4;
	le32(p, t->backoff_ms), p += 4;
	le32(p, t->backoff_max_ms), p += 4;
	le32(p, t->timeout_ms), p += 4;
	for (uint8_t i = 0; i < t->n_objs; i++, p += 8)
		le64(p, t->objs[i]);
	if (t->fn_len > 0)
		memcpy(p, t->fn, t->fn_len), p += t->fn_len;
	if (t->args_len > 0)
		memcpy(p, t->args, t->args_len), p += t->args_len;
	if (t->why_len > 0)
		memcpy(p, t->why, t->why_len);
	seal(k, 8, v, vlen, JSTORE_TASK);
	return 0;
}

/* An operation whose key is one id and which has no value. */
static int
op_id(struct jbatch *b, int op, int table, uint64_t id)
{
	uint8_t *k = op_begin(b, op, table, 8, 0);
	if (k == NULL)
		return -1;
	be64(k, id);
	return 0;
}

int
jbatch_del_task(struct jbatch *b, uint64_t id)
{
	return op_id(b, OP_DEL, T_TASKS, id);
}

#define RESULT_FIXED (HEAD + 8 + 4 * 3)

int
jbatch_put_result(struct jbatch *b, const struct jresult *r)
{
	size_t   vlen = RESULT_FIXED + r->len;
	uint8_t *k = op_begin(b, OP_PUT, T_RESULTS, 16, vlen), *v, *p;

	if (k == NULL)
		return -1;
	be64(k, r->session);
	be64(k + 8, r->seq);
	v = p = k + 16;
	p += HEAD;
	le64(p, r->tag), p += 8;
	le32(p, (uint32_t)r->code), p += 4;
	le32(p, r->attempts), p += 4;
	le32(p, r->len), p += 4;
	if (r->len > 0)
		memcpy(p, r->data, r->len);
	seal(k, 16, v, vlen, JSTORE_RESULT);
	return 0;
}

int
jbatch_ack(struct jbatch *b, uint64_t session, uint64_t ack)
{
	uint8_t *k = op_begin(b, OP_ACK, T_RESULTS, 8, 8);
	if (k == NULL)
		return -1;
	be64(k, session);
	le64(k + 8, ack);
	return 0;
}

#define SESSION_FIXED (HEAD + 8 * 2)

int
jbatch_put_session(struct jbatch *b, const struct jsession *s)
{
	uint8_t *k = op_begin(b, OP_PUT, T_SESSIONS, 8, SESSION_FIXED);
	uint8_t *v;

	if (k == NULL)
		return -1;
	be64(k, s->id);
	v = k + 8;
	le64(v + HEAD, s->next_seq);
	le64(v + HEAD + 8, s->max_tag);
	seal(k, 8, v, SESSION_FIXED, JSTORE_SESSION);
	return 0;
}

int
jbatch_del_session(struct jbatch *b, uint64_t session)
{
	return op_id(b, OP_DEL_SESSION, T_SESSIONS, session);
}

static int
meta_u64(struct jbatch *b, const char *name, uint64_t v)
{
	size_t   klen = strlen(name);
	uint8_t *k = op_begin(b, OP_PUT, T_META, klen, HEAD + 8);
	if (k == NULL)
		return -1;
	memcpy(k, name, klen);
	le64(k + klen + HEAD, v);
	seal(k, klen, k + klen, HEAD + 8, JSTORE_META);
	return 0;
}

int
jbatch_next_task_id(struct jbatch *b, uint64_t next)
{
	return meta_u64(b, "next_task_id", next);
}

int
jbatch_epoch(struct jbatch *b, uint64_t epoch)
{
	return meta_u64(b, "epoch", epoch);
}


/* ----------------------------------------------------------- records */

/* Whether the value v (vlen bytes) stored under key k is a whole record
 * of kind: long enough for its fixed fields, its checksum right. */
static int
record_ok(const void *k, size_t klen, const uint8_t *v, size_t vlen,
    int kind, size_t fixed)
{
	return vlen >= fixed && v[4] == kind && v[5] == 1 &&
	    get32(v) == record_crc(k, klen, v, vlen);
}

static int
decode_task(const uint8_t *k, size_t klen, const uint8_t *v, size_t vlen,
    struct jtask *t)
{
	const uint8_t *p = v + HEAD;
	uint8_t        flags;

	if (klen != 8 || !record_ok(k, klen, v, vlen, JSTORE_TASK, TASK_FIXED))
		return -1;
	memset(t, 0, sizeof(*t));
	t->id       = getbe64(k);
	t->session  = get64(p), p += 8;
	t->tag      = get64(p), p += 8;
	t->fn_len   = get32(p), p += 4;
	t->args_len = get32(p), p += 4;
	t->why_len  = get32(p), p += 4;
	t->n_objs   = p[0];
	flags       = p[1]; /* bits the writer never sets: damage */
	t->retry_errors = flags & 1, t->run_anyway = flags >> 1 & 1, p += 2;
	t->attempts = get16(p), p += 2;
	t->failures = get16(p), p += 2;
	t->kills    = get16(p), p += 2;
	t->retries  = get32(p), p += 4;
	t->backoff_ms     = get32(p), p += 4;
	t->backoff_max_ms = get32(p), p += 4;
	t->timeout_ms     = get32(p), p += 4;
	if (t->n_objs > JSTORE_MAX_OBJS || flags > 3 ||
	    vlen != TASK_FIXED + 8 * (size_t)t->n_objs + (size_t)t->fn_len +
	            (size_t)t->args_len + (size_t)t->why_len)
		return -1;
	for (uint8_t i = 0; i < t->n_objs; i++, p += 8)
		t->objs[i] = get64(p);
	t->fn   = (const char *)p, p += t->fn_len;
	t->args = p, p += t->args_len;
	t->why  = t->why_len > 0 ? (const char *)p : NULL;
	return 0;
}

static int
decode_result(const uint8_t *k, size_t klen, const uint8_t *v, size_t vlen,
    struct jresult *r)
{
	const uint8_t *p = v + HEAD;

	if (klen != 16 ||
	    !record_ok(k, klen, v, vlen, JSTORE_RESULT, RESULT_FIXED))
		return -1;
	r->session  = getbe64(k);
	r->seq      = getbe64(k + 8);
	r->tag      = get64(p), p += 8;
	r->code     = (int32_t)get32(p), p += 4;
	r->attempts = get32(p), p += 4;
	r->len      = get32(p), p += 4;
	r->data     = p;
	return vlen == RESULT_FIXED + (size_t)r->len ? 0 : -1;
}

int
jstore_decode(int kind, const void *key, size_t klen, const void *val,
    size_t vlen, struct jrecord *out)
{
	const uint8_t *k = key, *v = val;

	memset(out, 0, sizeof(*out));
	out->kind = kind;
	switch (kind) {
	case JSTORE_TASK:
		return decode_task(k, klen, v, vlen, &out->u.task);
	case JSTORE_RESULT:
		return decode_result(k, klen, v, vlen, &out->u.result);
	case JSTORE_SESSION:
		if (klen != 8 || vlen != SESSION_FIXED ||
		    !record_ok(k, klen, v, vlen, kind, SESSION_FIXED))
			return -1;
		out->u.session.id       = getbe64(k);
		out->u.session.next_seq = get64(v + HEAD);
		out->u.session.max_tag  = get64(v + HEAD + 8);
		return 0;
	case JSTORE_META:
		if (klen == 0 || vlen != HEAD + 8 ||
		    !record_ok(k, klen, v, vlen, kind, HEAD + 8))
			return -1;
		out->u.meta.name     = key;
		out->u.meta.name_len = klen;
		out->u.meta.value    = get64(v + HEAD);
		return 0;
	default:
		return -1;
	}
}

/* ------------------------------------------------------------ store */

/* LMDB's error rc while doing what to the journal at path, with what to
 * do about it where that is clear. */
static int
mdb_fail(char *err, size_t errlen, const char *path, const char *what,
    int rc)
{
	const char *hint = "";

	switch (rc) {
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
	case MDB_INCOMPATIBLE:
	case MDB_BAD_TXN:
	case MDB_CURSOR_FULL:
		hint = ": the file is damaged; restore it from a copy, or move "
		       "it away to start with an empty journal";
		break;
	case MDB_MAP_FULL:
		hint = ": the journal has reached its size limit; finish or "
		       "drop tasks, or raise the limit";
		break;
	}
	snprintf(err, errlen, "journal %s: %s: %s%s", path, what,
	    mdb_strerror(rc), hint);
	return -1;
}

/* A journal refused as damaged: what is wrong (printf), then the
 * advice. */
static int damaged(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
damaged(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	size_t  n;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	n = strlen(err);
	if (n < errlen)
		snprintf(err + n, errlen - n,
		    ": refusing it (restore it from a copy, or move it away "
		    "to start with an empty journal)");
	return -1;
}

/* Take the directory's lock: another scheduler's journal is refused,
 * naming the pid that holds it; note_pid writes ours into the file. */
static int
lock_dir(struct jstore *j, int note_pid, char *err, size_t errlen)
{
	char path[4200], pid[32] = "";
	int  fd;

	snprintf(path, sizeof(path), "%s/lock", j->dir);
	if ((fd = open(path, (note_pid ? O_RDWR : O_RDONLY) | O_CREAT |
	             O_CLOEXEC, 0600)) < 0) {
		snprintf(err, errlen,
		    "journal %s: %s (it must be a file this user can %s)", path,
		    strerror(errno), note_pid ? "read and write" : "read");
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		snprintf(err, errlen,
		    "journal %s is in use by another scheduler%s%s%s: two "
		    "schedulers must not share a journal",
		    j->dir, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
		close(fd);
		return -1;
	}
	if (note_pid) {
		snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
		if (ftruncate(fd, 0) != 0 ||
		    pwrite(fd, pid, strlen(pid), 0) != (ssize_t)strlen(pid)) {
			/* the lock holds all the same; only the note is
			 * missing */
		}
	}
	j->lock_fd = fd;
	return 0;
}

/* Refuse an empty data file: LMDB would make a new journal of it. */
static int
check_not_empty(struct jstore *j, char *err, size_t errlen)
{
	struct stat st;

	if (stat(j->path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > 0)
		return 0; /* LMDB says what is wrong, or makes it */
	return damaged(err, errlen,
	    "journal %s is empty (0 bytes), which a journal that was ever "
	    "opened never is: it was truncated, or its first start was cut "
	    "short",
	    j->path);
}

/* Where a meta page holds its transaction id (mdb.c, data format 1: a
 * 16-byte page header; then MDB_meta: u32 magic, u32 version, void *
 * address, size_t map size, two MDB_db of u32, u16, u16 and five size_t,
 * size_t last page, size_t transaction id). */
#define META_TXNID                                                       \
	(16 + 4 + 4 + sizeof(void *) + sizeof(size_t) +                  \
	    2 * (8 + 5 * sizeof(size_t)) + sizeof(size_t))

/* Refuse two meta pages whose transactions are not consecutive: LMDB
 * reads the tree of the one with the higher id, so a damaged id can make
 * it read the older tree, the journal one commit back, without a word. */
static int
check_metas(struct jstore *j, int fd, unsigned psize, char *err,
    size_t errlen)
{
	size_t t[2];

	for (int i = 0; i < 2; i++)
		if (pread(fd, &t[i], sizeof(t[i]),
		        (off_t)i * psize + (off_t)META_TXNID) != sizeof(t[i])) {
			snprintf(err, errlen, "journal %s: reading it: %s",
			    j->path, strerror(errno ? errno : EIO));
			return -1;
		}
	if (t[0] == t[1] ? t[0] == 0 : (t[0] > t[1] ? t[0] - t[1] : t[1] - t[0]) == 1)
		return 0;
	return damaged(err, errlen,
	    "journal %s is damaged: LMDB's two meta pages are for "
	    "transactions %zu and %zu, which are not consecutive",
	    j->path, t[0], t[1]);
}

/* Refuse a data file shorter than its last transaction needs (LMDB would
 * die of SIGBUS reading the pages past its end), or whose meta pages do
 * not agree. */
static int
check_file(struct jstore *j, char *err, size_t errlen)
{
	MDB_envinfo        info;
	MDB_stat           st;
	struct stat        fst;
	mdb_filehandle_t   fd;
	unsigned long long pages, have;
	int                rc;

	if ((rc = mdb_env_info(j->env, &info)) != 0 ||
	    (rc = mdb_env_stat(j->env, &st)) != 0 ||
	    (rc = mdb_env_get_fd(j->env, &fd)) != 0)
		return mdb_fail(err, errlen, j->path, "opening", rc);
	if (fstat(fd, &fst) != 0) {
		snprintf(err, errlen, "journal %s: %s", j->path,
		    strerror(errno));
		return -1;
	}
	pages = (unsigned long long)info.me_last_pgno + 1;
	have  = (unsigned long long)fst.st_size / st.ms_psize;
	if (have < pages)
		return damaged(err, errlen,
		    "journal %s is truncated: it is %llu bytes, but its last "
		    "transaction needs %llu (%llu pages of %u bytes)",
		    j->path, (unsigned long long)fst.st_size,
		    pages * st.ms_psize, pages, st.ms_psize);
	return check_metas(j, fd, st.ms_psize, err, errlen);
}

/* Write the format record in txn (a new journal). */
static int
put_format(struct jstore *j, MDB_txn *txn)
{
	uint8_t buf[HEAD + 8];
	MDB_val k = { 6, (void *)"format" }, v = { sizeof(buf), buf };

	le64(buf + HEAD, JSTORE_FORMAT);
	seal(k.mv_data, k.mv_size, buf, sizeof(buf), JSTORE_META);
	return mdb_put(txn, j->dbi[T_META], &k, &v, 0);
}

static int env_open_tables(struct jstore *j, char *err, size_t errlen);

/*
 * LMDB says no transaction was ever written.  A file LMDB has just made
 * is its two meta pages and nothing else: 0 (nothing to do).  A file
 * that holds more has had commits, and damage made its meta pages say
 * otherwise: -1 (refused; LMDB would follow whatever tree they name).
 * A file of only two meta pages from a start that never wrote its first
 * transaction holds nothing, but its meta pages may be damaged too: it
 * is removed and made again (1: open it again), once.
 */
static int
fresh_file(struct jstore *j, char *err, size_t errlen)
{
	struct stat st;
	long        page = sysconf(_SC_PAGESIZE);

	if (page <= 0)
		page = 4096;
	if (stat(j->path, &st) != 0)
		return 0;
	if (st.st_size > 2 * (off_t)page)
		return damaged(err, errlen,
		    "journal %s is damaged: its meta pages say nothing was "
		    "ever written to it, yet it holds %lld bytes",
		    j->path, (long long)st.st_size);
	if (j->rdonly || j->remade)
		return 0;
	mdb_env_close(j->env);
	j->env    = NULL;
	j->remade = 1;
	if (unlink(j->path) != 0) {
		snprintf(err, errlen, "journal %s: %s", j->path,
		    strerror(errno));
		return -1;
	}
	return 1;
}

/* Open the tables in a journal LMDB has opened: a new one (no commit
 * yet) gets them and its format record; in one that has had commits, a
 * missing table is damage. */
static int
open_tables(struct jstore *j, char *err, size_t errlen)
{
	MDB_envinfo info;
	MDB_txn    *txn;
	int         rc, fresh;

	if ((rc = mdb_env_info(j->env, &info)) != 0)
		return mdb_fail(err, errlen, j->path, "opening", rc);
	fresh = info.me_last_txnid == 0;
	if (fresh && (rc = fresh_file(j, err, errlen)) != 0)
		return rc < 0 ? -1 : env_open_tables(j, err, errlen);
	if (fresh && j->rdonly) {
		j->fresh = 1;
		return 0;
	}
	if ((rc = mdb_txn_begin(j->env, NULL, j->rdonly ? MDB_RDONLY : 0,
	         &txn)) != 0)
		return mdb_fail(err, errlen, j->path, "begin", rc);
	for (int i = 0; i < T_MAX; i++) {
		rc = mdb_dbi_open(txn, table_names[i], fresh ? MDB_CREATE : 0,
		    &j->dbi[i]);
		if (rc == MDB_NOTFOUND) {
			mdb_txn_abort(txn);
			return damaged(err, errlen,
			    "journal %s is damaged: its table '%s' is missing",
			    j->path, table_names[i]);
		}
		if (rc != 0) {
			char what[64];
			snprintf(what, sizeof(what), "opening its table '%s'",
			    table_names[i]);
			mdb_txn_abort(txn);
			return mdb_fail(err, errlen, j->path, what, rc);
		}
	}
	if (fresh && (rc = put_format(j, txn)) != 0) {
		mdb_txn_abort(txn);
		return mdb_fail(err, errlen, j->path, "writing its format", rc);
	}
	/* a read-only commit keeps the tables' handles too */
	if ((rc = mdb_txn_commit(txn)) != 0)
		return mdb_fail(err, errlen, j->path, "creating its tables", rc);
	return 0;
}

/* Whether all four tables are empty (before the format record). */
static int
tables_empty(struct jstore *j, MDB_txn *txn)
{
	for (int i = 0; i < T_MAX; i++) {
		MDB_stat st;
		if (mdb_stat(txn, j->dbi[i], &st) != 0 || st.ms_entries > 0)
			return 0;
	}
	return 1;
}

/* The format version: refused when newer, damaged or missing (missing
 * is allowed only in a journal with nothing in it, whose first start
 * stopped before writing it: it is written then). */
static int
check_format(struct jstore *j, char *err, size_t errlen)
{
	MDB_txn       *txn;
	MDB_val        k = { 6, (void *)"format" }, v;
	struct jrecord rec;
	int            rc, ok;

	if (j->fresh)
		return 0;
	if ((rc = mdb_txn_begin(j->env, NULL, j->rdonly ? MDB_RDONLY : 0,
	         &txn)) != 0)
		return mdb_fail(err, errlen, j->path, "begin", rc);
	rc = mdb_get(txn, j->dbi[T_META], &k, &v);
	if (rc == MDB_NOTFOUND && tables_empty(j, txn)) {
		if (j->rdonly) {
			mdb_txn_abort(txn);
			return 0;
		}
		if ((rc = put_format(j, txn)) != 0 ||
		    (rc = mdb_txn_commit(txn)) != 0)
			return mdb_fail(err, errlen, j->path, "writing its format",
			    rc);
		return 0;
	}
	ok = rc == 0 && jstore_decode(JSTORE_META, k.mv_data, k.mv_size,
	                    v.mv_data, v.mv_size, &rec) == 0;
	mdb_txn_abort(txn);
	if (rc == MDB_NOTFOUND)
		return damaged(err, errlen,
		    "journal %s is damaged: it holds records but no format "
		    "record",
		    j->path);
	if (rc != 0)
		return mdb_fail(err, errlen, j->path, "reading its format", rc);
	if (!ok)
		return damaged(err, errlen,
		    "journal %s is damaged: its format record fails its "
		    "checksum",
		    j->path);
	if (rec.u.meta.value > JSTORE_FORMAT) {
		snprintf(err, errlen,
		    "journal %s was written by a newer Ferry (format %llu, "
		    "this one reads %d): refusing it",
		    j->path, (unsigned long long)rec.u.meta.value,
		    JSTORE_FORMAT);
		return -1;
	}
	return 0;
}

static int env_open_tables(struct jstore *j, char *err, size_t errlen);

/* Open the LMDB environment in j->dir and its tables (j->env NULL when it
 * cannot be). */
static int
env_open(struct jstore *j, char *err, size_t errlen)
{
	if (env_open_tables(j, err, errlen) == 0)
		return 0;
	if (j->env != NULL)
		mdb_env_close(j->env);
	j->env = NULL;
	return -1;
}

static int
env_open_tables(struct jstore *j, char *err, size_t errlen)
{
	/* our own lock keeps others out, and one thread writes */
	unsigned flags = MDB_NOLOCK | MDB_NOTLS | (j->rdonly ? MDB_RDONLY : 0);
	int      rc;

	if (check_not_empty(j, err, errlen) != 0)
		return -1;
	if ((rc = mdb_env_create(&j->env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(j->env, T_MAX)) != 0 ||
	    (rc = mdb_env_set_mapsize(j->env, j->map_size)) != 0)
		return mdb_fail(err, errlen, j->path, "setting up", rc);
	if ((rc = mdb_env_open(j->env, j->dir, flags, 0600)) != 0)
		return mdb_fail(err, errlen, j->path,
		    rc == ENOMEM ? "mapping it (its size limit, or what a "
		                   "damaged meta page asks for, is more than "
		                   "the address space allows)"
		                 : "opening",
		    rc);
	if (check_file(j, err, errlen) != 0)
		return -1;
	return open_tables(j, err, errlen);
}

/* jstore_open's work; rdonly: jstore_check's, writing nothing. */
static int
store_open(struct jstore **out, const char *dir, size_t map_size,
    int rdonly, char *err, size_t errlen)
{
	struct jstore *j;

	*out = NULL;
	if (!rdonly && mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "journal %s: %s", dir, strerror(errno));
		return -1;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		snprintf(err, errlen, "journal %s: out of memory", dir);
		return -1;
	}
	j->lock_fd  = -1;
	j->rdonly   = rdonly;
	j->map_size = map_size;
	snprintf(j->dir, sizeof(j->dir), "%s", dir);
	snprintf(j->path, sizeof(j->path), "%s/data.mdb", dir);
	if (lock_dir(j, !rdonly, err, errlen) != 0 ||
	    env_open(j, err, errlen) != 0 || check_format(j, err, errlen) != 0)
		goto fail;
	*out = j;
	return 0;
fail:
	jstore_close(j);
	return -1;
}

int
jstore_open(struct jstore **out, const char *dir, size_t map_size,
    char *err, size_t errlen)
{
	return store_open(out, dir, map_size, 0, err, errlen);
}

void
jstore_close(struct jstore *j)
{
	if (j == NULL)
		return;
	if (j->env != NULL)
		mdb_env_close(j->env);
	if (j->lock_fd >= 0)
		close(j->lock_fd); /* releases the lock */
	free(j);
}

/* Delete the results of session with seq <= ack (ack UINT64_MAX: all). */
static int
del_results(struct jstore *j, MDB_txn *txn, const uint8_t *session,
    uint64_t ack)
{
	MDB_cursor *c;
	uint8_t     first[16];
	MDB_val     k = { sizeof(first), first }, v;
	int         rc;

	memcpy(first, session, 8);
	memset(first + 8, 0, 8);
	if ((rc = mdb_cursor_open(txn, j->dbi[T_RESULTS], &c)) != 0)
		return rc;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size == 16 &&
	    memcmp(k.mv_data, session, 8) == 0 &&
	    getbe64((uint8_t *)k.mv_data + 8) <= ack) {
		if ((rc = mdb_cursor_del(c, 0)) != 0)
			break;
		rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT);
		if (rc == EINVAL || rc == MDB_NOTFOUND)
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
apply(struct jstore *j, MDB_txn *txn, const uint8_t *op)
{
	int      table = op[1];
	uint16_t klen  = get16(op + 2);
	uint32_t vlen  = get32(op + 4);
	MDB_val  k = { klen, (void *)(op + OP_HEAD) };
	MDB_val  v = { vlen, (void *)(op + OP_HEAD + klen) };
	int      rc;

	switch (op[0]) {
	case OP_PUT:
		return mdb_put(txn, j->dbi[table], &k, &v, 0);
	case OP_DEL:
		rc = mdb_del(txn, j->dbi[table], &k, NULL);
		return rc == MDB_NOTFOUND ? 0 : rc;
	case OP_ACK:
		return del_results(j, txn, k.mv_data,
		    get64((const uint8_t *)v.mv_data));
	case OP_DEL_SESSION:
		if ((rc = del_results(j, txn, k.mv_data, UINT64_MAX)) != 0)
			return rc;
		rc = mdb_del(txn, j->dbi[T_SESSIONS], &k, NULL);
		return rc == MDB_NOTFOUND ? 0 : rc;
	default:
		return EINVAL;
	}
}

/*
 * Compaction.  Under load most records die in the batch that made them: a
 * task put when queued, put again when assigned and deleted when done, a
 * result put and acknowledged.  A put that a later operation of the same
 * batch overwrites or deletes is skipped: the transaction writes what the
 * batch ends with, in fewer pages.  Deletes are all kept (what they
 * delete may have been written by an earlier batch).
 */

/* One key seen later in the batch: a task or session (put or deleted
 * after), or a session whose results up to ack are deleted after. */
struct seen {
	const uint8_t *key; /* NULL: a free slot */
	uint16_t       klen;
	uint8_t        table;
	uint64_t       ack; /* T_RESULTS: results up to this seq die */
};

struct compact {
	struct seen *slot;
	size_t       mask;
};

static uint64_t
key_hash(int table, const uint8_t *k, size_t n)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)table;

	while (n-- > 0)
		h = (h ^ *k++) * 1099511628211ULL;
	return h ^ (h >> 29);
}

/* The slot of (table, key), empty when not seen yet. */
static struct seen *
seen_slot(struct compact *c, int table, const uint8_t *k, uint16_t klen)
{
	size_t i = key_hash(table, k, klen) & c->mask;

	for (;; i = (i + 1) & c->mask) {
		struct seen *e = &c->slot[i];
		if (e->key == NULL || (e->table == table && e->klen == klen &&
		                          memcmp(e->key, k, klen) == 0))
			return e;
	}
}

static void
seen_mark(struct seen *e, int table, const uint8_t *k, uint16_t klen,
    uint64_t ack)
{
	if (e->key == NULL) {
		e->key   = k;
		e->klen  = klen;
		e->table = (uint8_t)table;
		e->ack   = 0;
	}
	if (ack > e->ack)
		e->ack = ack;
}

/* Whether op, a put, is dead: a later operation of the batch overwrites
 * or deletes what it writes.  Then marks what op itself kills. */
static int
superseded(struct compact *c, const uint8_t *op)
{
	int            table = op[1];
	uint16_t       klen  = get16(op + 2);
	const uint8_t *k     = op + OP_HEAD;
	struct seen   *e;
	int            dead = 0;

	switch (op[0]) {
	case OP_PUT:
		if (table == T_RESULTS && klen == 16) {
			e    = seen_slot(c, T_RESULTS, k, 8);
			dead = e->key != NULL && e->ack >= getbe64(k + 8);
			break; /* a result is put once */
		}
		e    = seen_slot(c, table, k, klen);
		dead = e->key != NULL;
		seen_mark(e, table, k, klen, 0);
		break;
	case OP_DEL:
		seen_mark(seen_slot(c, table, k, klen), table, k, klen, 0);
		break;
	case OP_ACK:
		seen_mark(seen_slot(c, T_RESULTS, k, 8), T_RESULTS, k, 8,
		    get64(op + OP_HEAD + klen));
		break;
	case OP_DEL_SESSION:
		seen_mark(seen_slot(c, T_RESULTS, k, 8), T_RESULTS, k, 8,
		    UINT64_MAX);
		seen_mark(seen_slot(c, T_SESSIONS, k, klen), T_SESSIONS, k,
		    klen, 0);
		break;
	}
	return dead;
}

/* For each of b's operations, whether to skip it (a byte each), or NULL
 * when the batch is small or memory is short: then nothing is skipped. */
static uint8_t *
compact(const struct jbatch *b)
{
	struct compact c;
	const uint8_t **ops;
	uint8_t        *skip;
	size_t          n = 0, size = 16, off;

	if (b->n_ops < 4)
		return NULL;
	while (size < 2 * b->n_ops)
		size <<= 1;
	ops    = malloc(b->n_ops * sizeof(*ops));
	skip   = calloc(b->n_ops, 1);
	c.slot = calloc(size, sizeof(*c.slot));
	c.mask = size - 1;
	if (ops == NULL || skip == NULL || c.slot == NULL) {
		free(ops);
		free(skip);
		free(c.slot);
		return NULL;
	}
	for (off = 0; off < b->len && n < b->n_ops; n++) {
		ops[n] = b->buf + off;
		off += OP_HEAD + get16(ops[n] + 2) + get32(ops[n] + 4);
	}
	while (n-- > 0) /* from the last operation back */
		skip[n] = (uint8_t)superseded(&c, ops[n]);
	free(ops);
	free(c.slot);
	return skip;
}

/* Write b in one transaction; an LMDB error code. */
static int
write_batch(struct jstore *j, const struct jbatch *b)
{
	MDB_txn *txn;
	uint8_t *skip = compact(b);
	size_t   off = 0, i = 0;
	int      rc;

	if ((rc = mdb_txn_begin(j->env, NULL, 0, &txn)) != 0) {
		free(skip);
		return rc;
	}
	for (; off < b->len; i++) {
		const uint8_t *op = b->buf + off;
		if ((skip == NULL || !skip[i]) &&
		    (rc = apply(j, txn, op)) != 0) {
			mdb_txn_abort(txn);
			free(skip);
			return rc;
		}
		off += OP_HEAD + get16(op + 2) + get32(op + 4);
	}
	free(skip);
	return mdb_txn_commit(txn); /* and syncs: no MDB_NOSYNC */
}

int
jstore_commit(struct jstore *j, const struct jbatch *b, char *err,
    size_t errlen)
{
	int rc;

	if (b->oom) {
		snprintf(err, errlen,
		    "journal %s: out of memory collecting records", j->path);
		return -1;
	}
	if (j->env == NULL && env_open(j, err, errlen) != 0)
		return -1; /* reopening after a failure failed again */
	if ((rc = write_batch(j, b)) == MDB_PANIC) {
		/* an earlier write failed so that LMDB gave the environment
		 * up (a full disk while writing its meta page): open it
		 * again, which finds the last whole transaction */
		mdb_env_close(j->env);
		j->env = NULL;
		if (env_open(j, err, errlen) != 0)
			return -1;
		rc = write_batch(j, b);
	}
	if (rc != 0)
		return mdb_fail(err, errlen, j->path, "writing", rc);
	return 0;
}

/* Hand one decoded record of table on; non-zero stops the walk. */
static int
hand_on(struct jrestore *r, const struct jrecord *rec)
{
	switch (rec->kind) {
	case JSTORE_SESSION:
		r->sessions++;
		return r->session(r->arg, &rec->u.session);
	case JSTORE_TASK:
		r->tasks++;
		return r->task(r->arg, &rec->u.task);
	case JSTORE_RESULT:
		r->results++;
		return r->result(r->arg, &rec->u.result);
	default:
		if (rec->u.meta.name_len == 12 &&
		    memcmp(rec->u.meta.name, "next_task_id", 12) == 0)
			r->next_task_id = rec->u.meta.value;
		else if (rec->u.meta.name_len == 5 &&
		    memcmp(rec->u.meta.name, "epoch", 5) == 0)
			r->epoch = rec->u.meta.value;
		return 0; /* "format" was checked at open */
	}
}

/* Walk one table; each record decoded and handed on.  Then LMDB's count
 * of the table's records against the walk's. */
static int
read_table(struct jstore *j, MDB_txn *txn, int table, struct jrestore *r,
    char *err, size_t errlen)
{
	MDB_cursor    *c;
	MDB_val        k, v;
	MDB_stat       st;
	struct jrecord rec;
	uint64_t       walked = 0;
	char           what[64];
	int            rc, stop = 0;

	snprintf(what, sizeof(what), "reading its table '%s'",
	    table_names[table]);
	if ((rc = mdb_cursor_open(txn, j->dbi[table], &c)) != 0)
		return mdb_fail(err, errlen, j->path, what, rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && !stop;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		walked++;
		if (jstore_decode(table_kinds[table], k.mv_data, k.mv_size,
		        v.mv_data, v.mv_size, &rec) != 0) {
			r->damaged++;
			continue;
		}
		stop = hand_on(r, &rec);
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return mdb_fail(err, errlen, j->path, what, rc);
	if (stop) {
		snprintf(err, errlen, "journal %s: out of memory restoring it",
		    j->path);
		return -1;
	}
	if ((rc = mdb_stat(txn, j->dbi[table], &st)) != 0)
		return mdb_fail(err, errlen, j->path, what, rc);
	if (walked > st.ms_entries)
		return damaged(err, errlen,
		    "journal %s is damaged: its table '%s' shows %" PRIu64
		    " records where LMDB counts %zu",
		    j->path, table_names[table], walked, st.ms_entries);
	r->missing += st.ms_entries - walked;
	r->damaged += st.ms_entries - walked;
	return 0;
}

int
jstore_read(struct jstore *j, struct jrestore *r, char *err, size_t errlen)
{
	static const int order[] = { T_META, T_SESSIONS, T_TASKS, T_RESULTS };
	MDB_txn *txn;
	int      rc;

	if (j->fresh)
		return 0;
	if ((rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn)) != 0)
		return mdb_fail(err, errlen, j->path, "begin", rc);
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (read_table(j, txn, order[i], r, err, errlen) != 0) {
			mdb_txn_abort(txn);
			return -1;
		}
	mdb_txn_abort(txn);
	return 0;
}

int
jstore_reserve(struct jstore *j, uint64_t bytes, char *err, size_t errlen)
{
	MDB_envinfo info;
	MDB_stat    st;
	struct stat fs;
	int         fd, rc;
	uint64_t    used, want;

	if (j->env == NULL || mdb_env_info(j->env, &info) != 0 ||
	    mdb_env_stat(j->env, &st) != 0 || mdb_env_get_fd(j->env, &fd) != 0)
		return 0; /* nothing open to keep room in */
	if (fstat(fd, &fs) != 0) {
		snprintf(err, errlen, "journal %s: %s", j->path,
		    strerror(errno));
		return -1;
	}
	used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	if ((uint64_t)fs.st_size >= used + bytes)
		return 0;
	want = used + 2 * bytes;
	if (want > j->map_size)
		want = j->map_size;
	if (want <= (uint64_t)fs.st_size)
		return 0; /* the map ends first: max_size says when */
	if ((rc = posix_fallocate(fd, 0, (off_t)want)) != 0) {
		snprintf(err, errlen,
		    "journal %s: cannot keep %" PRIu64 " KiB free for it: %s",
		    j->path, bytes >> 10, strerror(rc));
		return -1;
	}
	return 0;
}

uint64_t
jstore_size(const struct jstore *j)
{
	struct stat st;
	return stat(j->path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

/* ------------------------------------------------------------ check */

static int
check_session(void *arg, const struct jsession *s)
{
	return 0;
}

static int
check_task(void *arg, const struct jtask *t)
{
	return 0;
}

static int
check_result(void *arg, const struct jresult *res)
{
	return 0;
}

struct check_args {
	const char *dir;
	size_t      map_size;
};

/* In the child: open read-only, read everything.  0 or -1 with err. */
static int
check_read(void *arg, char *err, size_t errlen)
{
	const struct check_args *a = arg;
	struct jstore           *j;
	struct jrestore          r = { 0 };
	int                      rc;

	r.session = check_session;
	r.task    = check_task;
	r.result  = check_result;
	if (store_open(&j, a->dir, a->map_size, 1, err, errlen) != 0)
		return -1;
	rc = jstore_read(j, &r, err, errlen);
	jstore_close(j);
	return rc;
}

/*
 * The POSIX part: run fn(arg, msg, len) in a child process (fork), with
 * the default action for the signals of a crash and no core file.
 * Returns fn's result (0 or -1, its message in msg, passed back through
 * a pipe), or -1 with *sig the signal that ended the child (0: it did not
 * die of one; msg says what went wrong then).
 */
static int
call_in_child(int (*fn)(void *, char *, size_t), void *arg, char *msg,
    size_t len, int *sig, unsigned cpu_s)
{
	static const int crash[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL,
		SIGABRT, SIGTRAP, SIGSYS };
	char    buf[1024];
	size_t  got = 0;
	ssize_t n;
	pid_t   pid;
	int     fds[2], status;

	*sig = 0;
	if (pipe2(fds, O_CLOEXEC) != 0) {
		snprintf(msg, len, "pipe: %s", strerror(errno));
		return -1;
	}
	if ((pid = fork()) < 0) {
		snprintf(msg, len, "fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		struct rlimit none = { 0, 0 }, cpu = { cpu_s, cpu_s + 1 };
		int           rc;
		for (size_t i = 0; i < sizeof(crash) / sizeof(crash[0]); i++)
			signal(crash[i], SIG_DFL);
		signal(SIGXCPU, SIG_DFL);
		setrlimit(RLIMIT_CORE, &none);
		setrlimit(RLIMIT_CPU, &cpu); /* a damaged tree can loop */
		close(fds[0]);
		buf[0] = '\0';
		rc     = fn(arg, buf, sizeof(buf));
		if (rc != 0 && write(fds[1], buf, strlen(buf)) < 0)
			rc = -1; /* the parent reads no message */
		_exit(rc == 0 ? 0 : 1);
	}
	close(fds[1]);
	while (got < sizeof(buf) - 1 &&
	    ((n = read(fds[0], buf + got, sizeof(buf) - 1 - got)) > 0 ||
	        (n < 0 && errno == EINTR)))
		got += n > 0 ? (size_t)n : 0;
	buf[got] = '\0';
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			snprintf(msg, len, "waitpid: %s", strerror(errno));
			return -1;
		}
	if (WIFSIGNALED(status)) {
		*sig = WTERMSIG(status);
		return -1;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	snprintf(msg, len, "%s", got > 0 ? buf : "it ended with an error");
	return -1;
}

int
jstore_check(const char *dir, size_t map_size, char *err, size_t errlen)
{
	struct check_args a = { dir, map_size };
	struct stat       st;
	char              path[4200], msg[1024];
	int               sig;
	unsigned          cpu;

	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (stat(path, &st) != 0) {
		if (errno == ENOENT)
			return 0; /* nothing to check */
		st.st_size = 0;
	}
	/* reading takes well under a second per 100 MiB: far more is a
	 * loop, which damage can make */
	cpu = 5 + (unsigned)(st.st_size / (32 << 20));
	if (call_in_child(check_read, &a, msg, sizeof(msg), &sig, cpu) == 0)
		return 0;
	if (sig == SIGXCPU)
		return damaged(err, errlen,
		    "journal %s is damaged: reading it took more than %u s "
		    "of CPU time (a damaged page can make LMDB go round in "
		    "circles)",
		    path, cpu);
	if (sig != 0) {
		const char *name = sigabbrev_np(sig);
		return damaged(err, errlen,
		    "journal %s is damaged: reading it ended with signal %d "
		    "(SIG%s)",
		    path, sig, name != NULL ? name : "?");
	}
	if (strncmp(msg, "journal ", 8) == 0)
		snprintf(err, errlen, "%s", msg);
	else
		snprintf(err, errlen, "journal %s: cannot check it: %s", path,
		    msg);
	return -1;
}
