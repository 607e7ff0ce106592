/*
 * jstore.c - the journal on disk (see jstore.h), on LMDB.
 *
 * Values:   u32 CRC32C of what follows | u8 kind | u8 version | u16 0 |
 *           the record's fields, little-endian, then its byte strings.
 * Keys:     tasks: id; results: session, seq; sessions: id (all u64,
 *           big-endian); meta: a name.
 * Batches:  u8 op | u8 table | u16 key length | u32 value length | key |
 *           value, one after another.
 */
#include "jstore.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

enum { T_TASKS, T_RESULTS, T_SESSIONS, T_META, T_MAX };
static const char *const table_names[T_MAX] = { "tasks", "results",
	"sessions", "meta" };

enum { OP_PUT = 1, OP_DEL, OP_ACK, OP_DEL_SESSION };
enum { K_TASK = 1, K_RESULT, K_SESSION, K_META };

#define HEAD 8 /* crc, kind, version, pad */
#define OP_HEAD 8

struct jstore {
	MDB_env *env;
	MDB_dbi  dbi[T_MAX];
	int      lock_fd;
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

uint32_t
jstore_crc32c(uint32_t crc, const void *p, size_t n)
{
	const uint8_t *b = p;

	if (crc_table[1] == 0)
		crc_init();
	crc = ~crc;
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

/* The value header, once the fields after it are written. */
static void
seal(uint8_t *v, size_t vlen, int kind)
{
	v[4] = (uint8_t)kind;
	v[5] = 1; /* record version */
	v[6] = v[7] = 0;
	le32(v, jstore_crc32c(0, v + 4, vlen - 4));
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
	p[0] = t->n_objs, p[1] = t->retry_errors, p += 2;
	le16(p, t->attempts), p += 2;
	le16(p, t->failures), p += 2;
	le16(p, t->kills), p += 2;
	le32(p, t->retries), p += 4;
	le32(p, t->backoff_ms), p += 4;
	le32(p, t->backoff_max_ms), p += 4;
	le32(p, t->timeout_ms), p += 4;
	for (uint8_t i = 0; i < t->n_objs; i++, p += 8)
		le64(p, t->objs[i]);
	memcpy(p, t->fn, t->fn_len), p += t->fn_len;
	if (t->args_len > 0)
		memcpy(p, t->args, t->args_len), p += t->args_len;
	if (t->why_len > 0)
		memcpy(p, t->why, t->why_len);
	seal(v, vlen, K_TASK);
	return 0;
}

int
jbatch_del_task(struct jbatch *b, uint64_t id)
{
	uint8_t *k = op_begin(b, OP_DEL, T_TASKS, 8, 0);
	if (k == NULL)
		return -1;
	be64(k, id);
	return 0;
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
	seal(v, vlen, K_RESULT);
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
	seal(v, SESSION_FIXED, K_SESSION);
	return 0;
}

int
jbatch_del_session(struct jbatch *b, uint64_t session)
{
	uint8_t *k = op_begin(b, OP_DEL_SESSION, T_SESSIONS, 8, 0);
	if (k == NULL)
		return -1;
	be64(k, session);
	return 0;
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
	seal(k + klen, HEAD + 8, K_META);
	return 0;
}

int
jbatch_next_task_id(struct jbatch *b, uint64_t next)
{
	return meta_u64(b, "next_task_id", next);
}

/* ------------------------------------------------------------ store */

static int
mdb_fail(char *err, size_t errlen, const char *path, const char *what,
    int rc)
{
	snprintf(err, errlen, "journal %s: %s: %s", path, what,
	    mdb_strerror(rc));
	return -1;
}

/* Take the directory's lock: another scheduler's journal is refused,
 * naming the pid that holds it. */
static int
lock_dir(struct jstore *j, const char *dir, char *err, size_t errlen)
{
	char path[4200], pid[32] = "";
	int  fd;

	snprintf(path, sizeof(path), "%s/lock", dir);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		snprintf(err, errlen, "journal %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		snprintf(err, errlen,
		    "journal %s is in use by another scheduler%s%s%s: two "
		    "schedulers must not share a journal",
		    dir, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
		close(fd);
		return -1;
	}
	snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) != 0 ||
	    pwrite(fd, pid, strlen(pid), 0) != (ssize_t)strlen(pid)) {
		/* the lock holds all the same; only the note is missing */
	}
	j->lock_fd = fd;
	return 0;
}

/* The format version: written when new, refused when newer. */
static int
check_format(struct jstore *j, char *err, size_t errlen)
{
	MDB_txn *txn;
	MDB_val  k = { 6, (void *)"format" }, v;
	uint8_t  buf[HEAD + 8];
	int      rc;

	if ((rc = mdb_txn_begin(j->env, NULL, 0, &txn)) != 0)
		return mdb_fail(err, errlen, j->path, "begin", rc);
	rc = mdb_get(txn, j->dbi[T_META], &k, &v);
	if (rc == MDB_NOTFOUND) {
		le64(buf + HEAD, JSTORE_FORMAT);
		seal(buf, sizeof(buf), K_META);
		v.mv_size = sizeof(buf);
		v.mv_data = buf;
		if ((rc = mdb_put(txn, j->dbi[T_META], &k, &v, 0)) != 0 ||
		    (rc = mdb_txn_commit(txn)) != 0)
			return mdb_fail(err, errlen, j->path, "writing its format",
			    rc);
		return 0;
	}
	if (rc != 0) {
		mdb_txn_abort(txn);
		return mdb_fail(err, errlen, j->path, "reading its format", rc);
	}
	if (v.mv_size != HEAD + 8 ||
	    get32(v.mv_data) !=
	        jstore_crc32c(0, (uint8_t *)v.mv_data + 4, v.mv_size - 4)) {
		mdb_txn_abort(txn);
		snprintf(err, errlen,
		    "journal %s: its format record is damaged: refusing it "
		    "(move it away to start without it)",
		    j->path);
		return -1;
	}
	if (get64((uint8_t *)v.mv_data + HEAD) > JSTORE_FORMAT) {
		unsigned long long f = get64((uint8_t *)v.mv_data + HEAD);
		mdb_txn_abort(txn);
		snprintf(err, errlen,
		    "journal %s was written by a newer Ferry (format %llu, "
		    "this one reads %d): refusing it",
		    j->path, f, JSTORE_FORMAT);
		return -1;
	}
	mdb_txn_abort(txn);
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
	MDB_txn *txn;
	int      rc;

	if ((rc = mdb_env_create(&j->env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(j->env, T_MAX)) != 0 ||
	    (rc = mdb_env_set_mapsize(j->env, j->map_size)) != 0)
		return mdb_fail(err, errlen, j->path, "setting up", rc);
	/* our own lock keeps others out, and one thread writes */
	if ((rc = mdb_env_open(j->env, j->dir, MDB_NOLOCK | MDB_NOTLS,
	         0600)) != 0)
		return mdb_fail(err, errlen, j->path, "opening", rc);
	if ((rc = mdb_txn_begin(j->env, NULL, 0, &txn)) != 0)
		return mdb_fail(err, errlen, j->path, "begin", rc);
	for (int i = 0; i < T_MAX; i++)
		if ((rc = mdb_dbi_open(txn, table_names[i], MDB_CREATE,
		         &j->dbi[i])) != 0) {
			mdb_txn_abort(txn);
			return mdb_fail(err, errlen, j->path, table_names[i], rc);
		}
	if ((rc = mdb_txn_commit(txn)) != 0)
		return mdb_fail(err, errlen, j->path, "creating its tables", rc);
	return 0;
}

int
jstore_open(struct jstore **out, const char *dir, size_t map_size,
    char *err, size_t errlen)
{
	struct jstore *j;

	*out = NULL;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "journal %s: %s", dir, strerror(errno));
		return -1;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		snprintf(err, errlen, "journal %s: out of memory", dir);
		return -1;
	}
	j->lock_fd  = -1;
	j->map_size = map_size;
	snprintf(j->dir, sizeof(j->dir), "%s", dir);
	snprintf(j->path, sizeof(j->path), "%s/data.mdb", dir);
	if (lock_dir(j, dir, err, errlen) != 0 ||
	    env_open(j, err, errlen) != 0 || check_format(j, err, errlen) != 0)
		goto fail;
	*out = j;
	return 0;
fail:
	jstore_close(j);
	return -1;
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

/* Write b in one transaction; an LMDB error code. */
static int
write_batch(struct jstore *j, const struct jbatch *b)
{
	MDB_txn *txn;
	size_t   off = 0;
	int      rc;

	if ((rc = mdb_txn_begin(j->env, NULL, 0, &txn)) != 0)
		return rc;
	while (off < b->len) {
		const uint8_t *op = b->buf + off;
		if ((rc = apply(j, txn, op)) != 0) {
			mdb_txn_abort(txn);
			return rc;
		}
		off += OP_HEAD + get16(op + 2) + get32(op + 4);
	}
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

/* Whether value v (of kind) is whole: its checksum right, long enough
 * for its fixed fields. */
static int
value_ok(const MDB_val *v, int kind, size_t fixed)
{
	const uint8_t *p = v->mv_data;
	return v->mv_size >= fixed && p[4] == kind && p[5] == 1 &&
	    get32(p) == jstore_crc32c(0, p + 4, v->mv_size - 4);
}

static int
decode_task(const MDB_val *k, const MDB_val *v, struct jtask *t)
{
	const uint8_t *p = (const uint8_t *)v->mv_data + HEAD;

	if (k->mv_size != 8 || !value_ok(v, K_TASK, TASK_FIXED))
		return -1;
	memset(t, 0, sizeof(*t));
	t->id       = getbe64(k->mv_data);
	t->session  = get64(p), p += 8;
	t->tag      = get64(p), p += 8;
	t->fn_len   = get32(p), p += 4;
	t->args_len = get32(p), p += 4;
	t->why_len  = get32(p), p += 4;
	t->n_objs   = p[0], t->retry_errors = p[1], p += 2;
	t->attempts = get16(p), p += 2;
	t->failures = get16(p), p += 2;
	t->kills    = get16(p), p += 2;
	t->retries  = get32(p), p += 4;
	t->backoff_ms     = get32(p), p += 4;
	t->backoff_max_ms = get32(p), p += 4;
	t->timeout_ms     = get32(p), p += 4;
	if (t->n_objs > JSTORE_MAX_OBJS ||
	    v->mv_size != TASK_FIXED + 8 * (size_t)t->n_objs +
	            (size_t)t->fn_len + t->args_len + t->why_len)
		return -1;
	for (uint8_t i = 0; i < t->n_objs; i++, p += 8)
		t->objs[i] = get64(p);
	t->fn   = (const char *)p, p += t->fn_len;
	t->args = p, p += t->args_len;
	t->why  = t->why_len > 0 ? (const char *)p : NULL;
	return 0;
}

static int
decode_result(const MDB_val *k, const MDB_val *v, struct jresult *r)
{
	const uint8_t *p = (const uint8_t *)v->mv_data + HEAD;

	if (k->mv_size != 16 || !value_ok(v, K_RESULT, RESULT_FIXED))
		return -1;
	r->session  = getbe64(k->mv_data);
	r->seq      = getbe64((const uint8_t *)k->mv_data + 8);
	r->tag      = get64(p), p += 8;
	r->code     = (int32_t)get32(p), p += 4;
	r->attempts = get32(p), p += 4;
	r->len      = get32(p), p += 4;
	r->data     = p;
	return v->mv_size == RESULT_FIXED + r->len ? 0 : -1;
}

/* Walk one table; each record decoded and handed on. */
static int
read_table(struct jstore *j, MDB_txn *txn, int table, struct jrestore *r,
    char *err, size_t errlen)
{
	MDB_cursor *c;
	MDB_val     k, v;
	int         rc, stop = 0;

	if ((rc = mdb_cursor_open(txn, j->dbi[table], &c)) != 0)
		return mdb_fail(err, errlen, j->path, "reading", rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && !stop;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (table == T_SESSIONS) {
			struct jsession s;
			if (k.mv_size != 8 ||
			    !value_ok(&v, K_SESSION, SESSION_FIXED)) {
				r->damaged++;
				continue;
			}
			s.id       = getbe64(k.mv_data);
			s.next_seq = get64((uint8_t *)v.mv_data + HEAD);
			s.max_tag  = get64((uint8_t *)v.mv_data + HEAD + 8);
			r->sessions++;
			stop = r->session(r->arg, &s);
		} else if (table == T_TASKS) {
			struct jtask t;
			if (decode_task(&k, &v, &t) != 0) {
				r->damaged++;
				continue;
			}
			r->tasks++;
			stop = r->task(r->arg, &t);
		} else if (table == T_RESULTS) {
			struct jresult res;
			if (decode_result(&k, &v, &res) != 0) {
				r->damaged++;
				continue;
			}
			r->results++;
			stop = r->result(r->arg, &res);
		} else if (k.mv_size == 12 &&
		    memcmp(k.mv_data, "next_task_id", 12) == 0) {
			if (value_ok(&v, K_META, HEAD + 8))
				r->next_task_id =
				    get64((uint8_t *)v.mv_data + HEAD);
			else
				r->damaged++;
		}
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return mdb_fail(err, errlen, j->path, "reading", rc);
	if (stop) {
		snprintf(err, errlen, "journal %s: out of memory restoring it",
		    j->path);
		return -1;
	}
	return 0;
}

int
jstore_read(struct jstore *j, struct jrestore *r, char *err, size_t errlen)
{
	static const int order[] = { T_META, T_SESSIONS, T_TASKS, T_RESULTS };
	MDB_txn *txn;
	int      rc;

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

uint64_t
jstore_size(const struct jstore *j)
{
	struct stat st;
	return stat(j->path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}
