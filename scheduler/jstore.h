/*
 * jstore.h - the scheduler's journal on disk: an LMDB environment in a
 * directory of its own (docs/journal.md says why LMDB, measured).
 *
 * Four tables: tasks (by scheduler task id), results (by session and
 * sequence number), sessions (by id) and meta (the format version, the
 * next task id, the run's epoch).  Keys are big-endian so that a session's results sit
 * together in order; every value starts with its own CRC32C and record
 * version, checksummed together with its key, so a damaged record is
 * found at recovery instead of believed.  A lock file taken with flock()
 * keeps a second scheduler out.
 *
 * LMDB itself has no checksums: a damaged page can make it crash.  Before
 * opening a journal that exists, the scheduler calls jstore_check(), which
 * reads it in a child process; jstore.c's opening comment says what each
 * kind of damage leads to.
 *
 * The scheduler's loop never touches LMDB: it appends operations to a
 * batch (jbatch_*), and one journal thread applies a whole batch in one
 * write transaction (group commit).  Not thread-safe otherwise.
 */
#ifndef FERRY_JSTORE_H
#define FERRY_JSTORE_H

#include <stddef.h>
#include <stdint.h>

#define JSTORE_FORMAT 1   /* the journal format this code writes */
#define JSTORE_MAX_OBJS 16 /* object keys a task record holds */

struct jstore;

/* A task as the journal keeps it (its byte strings point into the
 * caller's memory when writing, into the store's when reading: valid in
 * the callback only). */
struct jtask {
	uint64_t        id, session, tag;
	uint16_t        attempts, failures, kills;
	uint8_t         retry_errors, n_objs;
	uint8_t         run_anyway; /* with retry_errors in one byte */
	uint32_t        retries, backoff_ms, backoff_max_ms, timeout_ms;
	uint64_t        objs[JSTORE_MAX_OBJS];
	const char     *fn;
	uint32_t        fn_len;
	const uint8_t  *args;
	uint32_t        args_len;
	const char     *why; /* may be NULL */
	uint32_t        why_len;
};

struct jresult {
	uint64_t    session, seq, tag;
	int32_t     code;
	uint32_t    attempts;
	const void *data;
	uint32_t    len;
};

struct jsession {
	uint64_t id, next_seq, max_tag;
};

/* The kinds of record, as jstore_decode() takes them. */
enum jkind { JSTORE_TASK = 1, JSTORE_RESULT, JSTORE_SESSION, JSTORE_META };

/* One record decoded (byte strings point into the value given). */
struct jrecord {
	int kind;
	union {
		struct jtask    task;
		struct jresult  result;
		struct jsession session;
		struct {
			const char *name; /* the key: "format", "next_task_id" */
			size_t      name_len;
			uint64_t    value;
		} meta;
	} u;
};

/* Decode the record of kind stored under key (klen bytes) with value val
 * (vlen bytes) into *out.  Returns 0, or -1 when it is damaged: a wrong
 * checksum, kind, version or length.  Reads no byte outside key and val.
 * jstore_read() uses it; exposed for the fuzz tests. */
int jstore_decode(int kind, const void *key, size_t klen, const void *val,
    size_t vlen, struct jrecord *out);

/* ---------------------------------------------------------- batches */

/* Operations waiting to be written, in order. */
struct jbatch {
	uint8_t *buf;
	size_t   len, cap;
	size_t   n_ops;
	int      oom; /* an operation could not be added */
};

void jbatch_init(struct jbatch *b);
void jbatch_fini(struct jbatch *b);
void jbatch_clear(struct jbatch *b);

/* Each returns 0, or -1 when memory runs out or a record passes 4 GiB
 * (b->oom is then set: the batch is incomplete and the journal must fail
 * rather than write it). */
int jbatch_put_task(struct jbatch *b, const struct jtask *t);
int jbatch_del_task(struct jbatch *b, uint64_t id);
int jbatch_put_result(struct jbatch *b, const struct jresult *r);
/* the session's results with seq <= ack */
int jbatch_ack(struct jbatch *b, uint64_t session, uint64_t ack);
int jbatch_put_session(struct jbatch *b, const struct jsession *s);
/* the session and every result it has */
int jbatch_del_session(struct jbatch *b, uint64_t session);
int jbatch_next_task_id(struct jbatch *b, uint64_t next);
/* The run's epoch, the name of its task ids for workers that ride through
 * a restart (kept so that the next run on this journal has the same). */
int jbatch_epoch(struct jbatch *b, uint64_t epoch);

/* ------------------------------------------------------------ store */

/*
 * Open (creating if need be) the journal in directory dir, its map at
 * most map_size bytes.  Takes the directory's lock; refuses a journal of
 * a newer format, one another process holds, one LMDB finds damaged, and
 * a data file that is empty, shorter than LMDB's last transaction needs
 * (truncated), or missing one of the four tables.  Returns 0, or -1 with
 * a message naming the file and the cause in err.
 */
int jstore_open(struct jstore **out, const char *dir, size_t map_size,
    char *err, size_t errlen);
void jstore_close(struct jstore *j);

/* Write batch b in one transaction and make it durable (on disk when this
 * returns).  Returns 0, or -1 with the cause in err (a full disk, a full
 * map, an I/O error): then nothing of b was written, and b may be
 * committed again later. */
int jstore_commit(struct jstore *j, const struct jbatch *b, char *err,
    size_t errlen);

/* What recovery found: callbacks for each record (in key order: sessions,
 * then tasks, then each session's results by seq), and counts.  Damaged
 * and missing records are left out; the caller logs how many. */
struct jrestore {
	void *arg;
	int (*session)(void *arg, const struct jsession *s);
	int (*task)(void *arg, const struct jtask *t);
	int (*result)(void *arg, const struct jresult *r);
	uint64_t next_task_id;
	uint64_t epoch; /* 0: none recorded */
	uint64_t sessions, tasks, results;
	uint64_t damaged; /* records dropped: their checksum was wrong, or
	                   * (counted in missing too) they could not be
	                   * found */
	uint64_t missing; /* of those, records LMDB counts in a table that
	                   * the walk through it did not find (a damaged page
	                   * hid them) */
};

/* Read the whole journal into the callbacks (one returning non-zero
 * stops it).  Returns 0, or -1 with the cause in err: an error LMDB
 * reports, or a table in which more records were found than LMDB counts
 * (a damaged page showed records twice or from an old tree). */
int jstore_read(struct jstore *j, struct jrestore *r, char *err,
    size_t errlen);

/*
 * Read the whole journal in directory dir (its map at most map_size
 * bytes) as jstore_open() and jstore_read() would, every record decoded,
 * but in a child process and without writing: a damaged file that makes
 * LMDB crash crashes the child.  For the scheduler, before jstore_open(),
 * when dir/data.mdb exists.  Returns 0 when the child
 * read it through (damaged records it dropped are not an error: the real
 * read counts them), or -1 with the cause in err: "journal DIR/data.mdb
 * is damaged: reading it ended with signal N (SIGNAME)...", or the
 * child's own error (in use, truncated, LMDB's error, ...).  Takes the
 * directory's lock while it reads.  Forks: call it before starting
 * threads where possible (glibc's allocator is safe after fork()).
 */
int jstore_check(const char *dir, size_t map_size, char *err,
    size_t errlen);

/*
 * Keep at least `bytes` of the data file allocated beyond the last page
 * LMDB uses (posix_fallocate ahead, in steps of twice that), so that when
 * the disk fills up, the journal can still write the transactions that
 * delete finished tasks and free its own pages: LMDB copies every page it
 * changes, so even a delete needs new pages.  Returns 0, or -1 with a
 * message naming the file and the cause (ENOSPC: the disk is full).
 */
int jstore_reserve(struct jstore *j, uint64_t bytes, char *err,
    size_t errlen);

/* Bytes the journal's data file takes on disk. */
uint64_t jstore_size(const struct jstore *j);

/* CRC32C (Castagnoli) of n bytes, continuing from crc (0 to start). */
uint32_t jstore_crc32c(uint32_t crc, const void *p, size_t n);

#endif
