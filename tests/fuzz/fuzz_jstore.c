/*
 * fuzz_jstore.c - fuzz target for the journal's reader (scheduler/
 * jstore.c): its record decoder, and whole data files read as the
 * scheduler reads them at a start.
 *
 * The first byte of an input chooses what it is (its value mod 8):
 *
 * 0-2  A record, raw: u8 kind, u8 flags, u8 key length, the key, then the
 *      value.  Flags bit 0: give the value the right CRC first; bit 1:
 *      also its kind and version bytes (the kind given, version 1).
 * 3-4  A record made at startup (jbatch_*), changed: u8 which, u8 flags
 *      (bit 0: leave its CRC as the edits leave it; bit 1: decode it as
 *      kind flags >> 2 mod 6 instead of its own), then edits of 3 bytes
 *      each (op, at, arg) on its key and value (a byte set or xored,
 *      bytes inserted or deleted, a u16 or u32 set to a value of note or
 *      moved, the key's end moved); then the CRC is made right, unless
 *      bit 0 says not.
 *      Either way jstore_decode() runs on the key and value copied into
 *      buffers of their exact size (so that ASan sees a byte read past
 *      either), and must return -1, or 0 with a record that holds
 *      together: lengths that add up to the value's, byte strings inside
 *      it, the checksum right, and written again with jbatch_*, the same
 *      key and value.
 * 5-6  A journal made at startup, damaged: u8 which, then patches of
 *      4 bytes each (u8 page, u16 offset in the page | op << 12, u8 n),
 *      set and xor followed by 1 + n % 16 bytes of their own: bytes set,
 *      xored, a u16 or u64 moved by n or set to a value of note, a field
 *      of LMDB's meta page changed, a field of a node (the node header
 *      before its key) changed, a page copied over another, the file
 *      truncated.
 * 7    A data file, raw: the rest of the input.
 *      Either way the file is written as data.mdb in a directory of our
 *      own and checked with jstore_check(), which reads it in a child
 *      process; only when that passes is it opened with jstore_open() and
 *      read with jstore_read() in this process, where a crash is a bug in
 *      the journal's reading (the damage jstore_check() exists to catch
 *      got past it).  An error must name the journal; a read's counts
 *      must match its callbacks; a journal left as it was made must pass
 *      and read back whole.  The child's stderr (LMDB's assertion
 *      messages) goes to a file; a sanitizer report in the child, which
 *      jstore_check() would take for damage, fails the test, and so does
 *      a child still reading after CHECK_CPU seconds of CPU (LMDB going
 *      round in circles: jstore_check() would never return).
 *      Files cost a fork and two opens each where a record costs next to
 *      nothing: the first FILES_ALL file inputs all run (the seeds among
 *      them, or an input given alone), then one in FILE_EVERY.
 *
 * Seeds: not committed, made when the project is built.  This file built
 * with FUZZ_JSTORE_SEEDS (fuzz_jstore_seeds, tests/fuzz/meson.build)
 * writes them into a directory: each journal made at startup as a raw
 * file (7) and with a few patches (5), and each record raw (0) and with
 * an edit (3), so they always follow the jstore.c under test.
 *
 * Files live in a mkdtemp directory under $TMPDIR (or /tmp), removed at
 * exit; after a crash it is left behind with the data.mdb that did it.
 * LMDB's page and meta layouts below are those of 64-bit builds (as in
 * jstore.c's META_TXNID).  The exit prints what happened to the files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jstore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Called by a sanitizer before it ends the process over a report
 * (present only in sanitizer builds). */
void __sanitizer_set_death_callback(void (*callback)(void))
    __attribute__((weak));

#define MAP (1u << 20)    /* journals' maps here */
#define CHECK_CPU 10      /* seconds of CPU jstore_check's child may use */
#define FILES_ALL 64      /* file inputs all run, the seeds among them; */
#define FILE_EVERY 16     /* then one in FILE_EVERY (a fork each) */
#define PAGE 4096         /* LMDB's page size on this machine */
#define MAX_FILE 65535    /* a raw seed, with its mode byte, fits the
                           * driver's 64 KiB */
#define MAX_REC 8192      /* a record being edited */
#define HEAD 8            /* a value's CRC, kind, version, pad */
#define TASK_FIXED 60     /* a task value's fixed part (jstore.c) */
#define RESULT_FIXED 28
#define SESSION_FIXED 24

#define CHECK(cond)                                                         \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "fuzz_jstore: %s:%d: check failed: %s " \
			    "(files in %s)\n", __FILE__, __LINE__, #cond, tmp); \
			abort();                                            \
		}                                                           \
	} while (0)

static char tmp[PATH_MAX];    /* the mkdtemp directory */
static char jdir[PATH_MAX];   /* tmp/j: the journal fuzzed */
static char jpath[PATH_MAX];  /* its data.mdb */
static char marker[PATH_MAX]; /* made by the death callback */
static char check_log[PATH_MAX]; /* the check's child's stderr */
static int  ready;

static struct {
	unsigned long records, decoded;
	unsigned long file_inputs, files, refused, child_died, passed,
	    open_failed, read_ok, read_failed, damaged, missing, restored;
} stats;

/* ------------------------------------------------------------ bytes */

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
getn(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = n; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

static void
putn(uint8_t *p, size_t n, uint64_t v)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Whether [p, p + n) lies inside [base, base + len). */
static int
inside(const void *base, size_t len, const void *p, size_t n)
{
	const uint8_t *b = base, *q = p;
	return q >= b && (size_t)(q - b) <= len && n <= len - (size_t)(q - b);
}

/* The CRC a value v (vlen >= 4) under key k must carry (jstore.c). */
static uint32_t
record_crc(const uint8_t *k, size_t klen, const uint8_t *v, size_t vlen)
{
	return jstore_crc32c(jstore_crc32c(0, k, klen), v + 4, vlen - 4);
}

/* -------------------------------------------------------- files */

static int
rm_entry(const char *path, const struct stat *sb, int flag,
    struct FTW *ftw)
{
	return remove(path);
}

static void
cleanup(void)
{
	if (tmp[0] != '\0')
		nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
write_file(const char *path, const void *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, p, len) == (ssize_t)len);
	CHECK(close(fd) == 0);
}

static uint8_t *
read_file(const char *path, size_t *len)
{
	struct stat st;
	uint8_t    *p;
	int         fd = open(path, O_RDONLY | O_CLOEXEC);

	CHECK(fd >= 0);
	CHECK(fstat(fd, &st) == 0);
	*len = (size_t)st.st_size;
	CHECK((p = malloc(*len + 1)) != NULL);
	CHECK(read(fd, p, *len) == (ssize_t)*len);
	close(fd);
	return p;
}

/* A sanitizer's report, in this process or in jstore_check's child: say
 * so in a file (async-signal-safe calls only). */
static void
on_death(void)
{
	int fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
}

/* ------------------------------------------------- what is written */

/* Task number i: several object keys, function names, arguments and
 * reasons. */
static void
make_task(uint32_t i, struct jtask *t, uint8_t *args, size_t args_len,
    char *why)
{
	memset(t, 0, sizeof(*t));
	t->id             = 1000 + i;
	t->session        = 1 + i % 3;
	t->tag            = 0x0100000000000000ull + i;
	t->attempts       = (uint16_t)(i % 7);
	t->failures       = (uint16_t)(i % 5);
	t->kills          = (uint16_t)(i % 3);
	t->retry_errors   = (uint8_t)(i % 2);
	t->retries        = i * 3;
	t->backoff_ms     = 100 + i;
	t->backoff_max_ms = 60000;
	t->timeout_ms     = i % 2 ? 0 : 5000;
	t->n_objs = (uint8_t)(i % 4 == 3 ? JSTORE_MAX_OBJS : i % 4);
	for (uint8_t k = 0; k < t->n_objs; k++)
		t->objs[k] = ((uint64_t)i << 32) | k;
	t->fn     = i % 5 == 4 ? "" : i % 2 ? "pkg.mod.function" : "f";
	t->fn_len = (uint32_t)strlen(t->fn);
	t->args_len = (uint32_t)args_len;
	for (size_t k = 0; k < args_len; k++)
		args[k] = (uint8_t)(i * 31 + k);
	t->args = args;
	if (i % 3 == 0) {
		snprintf(why, 64, "worker %u died: exit status %u", i, i % 9);
		t->why     = why;
		t->why_len = (uint32_t)strlen(why);
	}
}

static void
make_result(uint64_t session, uint64_t seq, size_t len, struct jresult *r,
    uint8_t *data)
{
	memset(r, 0, sizeof(*r));
	r->session  = session;
	r->seq      = seq;
	r->tag      = session * 1000000 + seq;
	r->code     = seq % 3 == 0 ? -2 : (int32_t)(seq % 2);
	r->attempts = (uint32_t)(seq % 4 + 1);
	r->len      = (uint32_t)len;
	for (size_t k = 0; k < len; k++)
		data[k] = (uint8_t)(session + seq + k);
	r->data = data;
}

/* ---------------------------------------------------------- records */

/* The records mode 3 starts from: one batch of each kind, in the
 * batch's layout (u8 op, u8 table, u16 klen, u32 vlen, key, value). */
struct rec {
	int            kind;
	const uint8_t *key, *val;
	size_t         klen, vlen;
};

#define MAX_RECS 32
static struct jbatch rec_batch;
static uint8_t       rec_format[6 + HEAD + 8]; /* "format", its value */
static struct rec    recs[MAX_RECS];
static size_t        n_recs;

static void
make_records(void)
{
	static const int kind_of_table[] = { JSTORE_TASK, JSTORE_RESULT,
		JSTORE_SESSION, JSTORE_META };
	uint8_t  args[300], data[200];
	char     why[64];
	size_t   off = 0;

	jbatch_init(&rec_batch);
	for (uint32_t i = 0; i < 8; i++) {
		struct jtask t;
		make_task(i, &t, args, i % 4 == 1 ? 0 : 17 * i, why);
		CHECK(jbatch_put_task(&rec_batch, &t) == 0);
	}
	for (uint64_t s = 0; s < 4; s++) {
		struct jresult r;
		make_result(s + 1, s * 100, s == 0 ? 0 : 50 * s, &r, data);
		CHECK(jbatch_put_result(&rec_batch, &r) == 0);
	}
	for (uint64_t s = 0; s < 2; s++) {
		struct jsession js = { s + 1, s * 1000 + 7, s ? UINT64_MAX : 0 };
		CHECK(jbatch_put_session(&rec_batch, &js) == 0);
	}
	CHECK(jbatch_next_task_id(&rec_batch, 4242) == 0);
	while (off < rec_batch.len) {
		const uint8_t *op = rec_batch.buf + off;
		struct rec    *r  = &recs[n_recs++];
		r->kind = kind_of_table[op[1]];
		r->klen = get16(op + 2);
		r->vlen = get32(op + 4);
		r->key  = op + 8;
		r->val  = r->key + r->klen;
		off += 8 + r->klen + r->vlen;
	}
	CHECK(off == rec_batch.len && n_recs < MAX_RECS);
	/* the format record, which jstore.c writes with no jbatch_* */
	memcpy(rec_format, "format", 6);
	rec_format[6 + 4] = JSTORE_META;
	rec_format[6 + 5] = 1;
	putn(rec_format + 6 + HEAD, 8, JSTORE_FORMAT);
	putn(rec_format + 6, 4, record_crc(rec_format, 6, rec_format + 6,
	                             HEAD + 8));
	recs[n_recs++] = (struct rec){ JSTORE_META, rec_format,
		rec_format + 6, 6, HEAD + 8 };
}

/* The first operation of batch b as a key and value. */
static void
first_op(const struct jbatch *b, const uint8_t **k, size_t *klen,
    const uint8_t **v, size_t *vlen)
{
	CHECK(b->len >= 8);
	*klen = get16(b->buf + 2);
	*vlen = get32(b->buf + 4);
	*k    = b->buf + 8;
	*v    = *k + *klen;
}

/* The record decoded from key k and value v (rec), written again by
 * jbatch_*, must be that key and value: the same but for the pad bytes
 * 6 and 7 of the value, which jstore.c writes as 0 and does not read
 * (and so the CRC, which covers them). */
static void
same_written(const struct jrecord *rec, const uint8_t *k, size_t klen,
    const uint8_t *v, size_t vlen)
{
	static struct jbatch b;
	const uint8_t       *k2, *v2;
	size_t               klen2, vlen2;

	jbatch_clear(&b);
	switch (rec->kind) {
	case JSTORE_TASK:
		CHECK(jbatch_put_task(&b, &rec->u.task) == 0);
		break;
	case JSTORE_RESULT:
		CHECK(jbatch_put_result(&b, &rec->u.result) == 0);
		break;
	case JSTORE_SESSION:
		CHECK(jbatch_put_session(&b, &rec->u.session) == 0);
		break;
	case JSTORE_META:
		if (klen != 12 || memcmp(k, "next_task_id", 12) != 0)
			return; /* no writer of its own */
		CHECK(jbatch_next_task_id(&b, rec->u.meta.value) == 0);
		break;
	}
	first_op(&b, &k2, &klen2, &v2, &vlen2);
	CHECK(klen2 == klen && memcmp(k2, k, klen) == 0);
	CHECK(vlen2 == vlen);
	CHECK(memcmp(v2 + 4, v + 4, 2) == 0);
	CHECK(memcmp(v2 + HEAD, v + HEAD, vlen - HEAD) == 0);
	if (v[6] == 0 && v[7] == 0)
		CHECK(memcmp(v2, v, 4) == 0);
}

/* Decode the record of kind under key k (klen) with value v (vlen), in
 * buffers of their exact size, and check what comes back. */
static void
decode_one(int kind, const uint8_t *key, size_t klen, const uint8_t *val,
    size_t vlen)
{
	/* malloc(0) is a buffer of no bytes to ASan */
	uint8_t       *k = malloc(klen), *v = malloc(vlen);
	struct jrecord rec;
	int            rc;

	CHECK(k != NULL && v != NULL);
	if (klen > 0)
		memcpy(k, key, klen);
	if (vlen > 0)
		memcpy(v, val, vlen);
	stats.records++;
	rc = jstore_decode(kind, k, klen, v, vlen, &rec);
	CHECK(rc == 0 || rc == -1);
	if (rc == 0) {
		stats.decoded++;
		CHECK(kind >= JSTORE_TASK && kind <= JSTORE_META);
		CHECK(rec.kind == kind);
		CHECK(vlen >= HEAD && v[4] == kind && v[5] == 1);
		CHECK(get32(v) == record_crc(k, klen, v, vlen));
	}
	if (rc == 0 && kind == JSTORE_TASK) {
		const struct jtask *t = &rec.u.task;
		const uint8_t      *strings;
		CHECK(klen == 8 && t->n_objs <= JSTORE_MAX_OBJS);
		CHECK((uint64_t)TASK_FIXED + 8 * t->n_objs + t->fn_len +
		          t->args_len + t->why_len ==
		    vlen);
		strings = v + TASK_FIXED + 8 * (size_t)t->n_objs;
		CHECK(inside(v, vlen, t->fn, t->fn_len));
		CHECK(inside(v, vlen, t->args, t->args_len));
		CHECK((const uint8_t *)t->fn == strings);
		CHECK(t->args == strings + t->fn_len);
		if (t->why_len == 0)
			CHECK(t->why == NULL);
		else
			CHECK(inside(v, vlen, t->why, t->why_len) &&
			    (const uint8_t *)t->why == t->args + t->args_len);
	} else if (rc == 0 && kind == JSTORE_RESULT) {
		const struct jresult *r = &rec.u.result;
		CHECK(klen == 16 && vlen == RESULT_FIXED + (size_t)r->len);
		CHECK(inside(v, vlen, r->data, r->len));
		CHECK((const uint8_t *)r->data == v + RESULT_FIXED);
	} else if (rc == 0 && kind == JSTORE_SESSION) {
		CHECK(klen == 8 && vlen == SESSION_FIXED);
	} else if (rc == 0 && kind == JSTORE_META) {
		CHECK(klen > 0 && vlen == HEAD + 8);
		CHECK((const uint8_t *)rec.u.meta.name == k);
		CHECK(rec.u.meta.name_len == klen);
		CHECK(rec.u.meta.value == getn(v + HEAD, 8));
	}
	if (rc == 0)
		same_written(&rec, k, klen, v, vlen);
	free(k);
	free(v);
}

/* Give the value (after klen bytes of key in buf, len in all) the right
 * CRC, and first its kind and version when set_head. */
static void
fix_crc(uint8_t *buf, size_t klen, size_t len, int set_head, int kind)
{
	uint8_t *v    = buf + klen;
	size_t   vlen = len - klen;

	if (set_head && vlen >= HEAD) {
		v[4] = (uint8_t)kind;
		v[5] = 1;
	}
	if (vlen >= 4)
		putn(v, 4, record_crc(buf, klen, v, vlen));
}

/* Mode 0: u8 kind, u8 flags, u8 klen, key, value. */
static void
record_raw(const uint8_t *d, size_t n)
{
	static uint8_t buf[65536];
	size_t         klen;
	int            kind;

	if (n < 3)
		return;
	kind = d[0] % 6;
	klen = d[2] < n - 3 ? d[2] : n - 3;
	memcpy(buf, d + 3, n - 3);
	if (d[1] & 1)
		fix_crc(buf, klen, n - 3, d[1] & 2, kind);
	decode_one(kind, buf, klen, buf + klen, n - 3 - klen);
}

/* Values of note for a u32 or u16 field of a record of len bytes. */
static uint32_t
value_of_note(uint8_t arg, size_t len)
{
	static const uint32_t v[] = { 0, 1, 2, 7, 8, 16, 17, 0x7f, 0xff,
		0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe,
		0xffffffff };
	if (arg < 16)
		return v[arg];
	switch (arg % 8) {
	case 0:
		return (uint32_t)len;
	case 1:
		return (uint32_t)len - TASK_FIXED;
	case 2:
		return (uint32_t)len - RESULT_FIXED;
	case 3:
		return (uint32_t)len + 1;
	default:
		return arg;
	}
}

/* Mode 3: u8 which, u8 flags, then edits (u8 op, u8 at, u8 arg). */
static void
record_edit(const uint8_t *d, size_t n)
{
	static uint8_t    buf[MAX_REC];
	const struct rec *r;
	size_t            len, klen;
	int               kind;

	if (n < 2)
		return;
	r    = &recs[d[0] % n_recs];
	kind = d[1] & 2 ? (d[1] >> 2) % 6 : r->kind;
	klen = r->klen;
	len  = r->klen + r->vlen;
	memcpy(buf, r->key, r->klen);
	memcpy(buf + r->klen, r->val, r->vlen);
	for (size_t i = 2; i + 3 <= n; i += 3) {
		uint8_t op = d[i], arg = d[i + 2];
		size_t  at = len > 0 ? d[i + 1] % len : 0, m;
		switch (op % 8) {
		case 0:
			if (len > 0)
				buf[at] = arg;
			break;
		case 1:
			if (len > 0)
				buf[at] ^= arg;
			break;
		case 2: /* insert 1-16 bytes */
			m = 1 + arg % 16;
			if (len + m <= sizeof(buf)) {
				memmove(buf + at + m, buf + at, len - at);
				memset(buf + at, op, m);
				len += m;
				if (at < klen)
					klen += m;
			}
			break;
		case 3: /* delete 1-16 bytes */
			m = 1 + arg % 16;
			if (m > len - at)
				m = len - at;
			memmove(buf + at, buf + at + m, len - at - m);
			len -= m;
			if (klen > at)
				klen = klen - at > m ? klen - m : at;
			break;
		case 4:
			if (at + 4 <= len)
				putn(buf + at, 4, value_of_note(arg, len - klen));
			break;
		case 5: /* the key ends elsewhere */
			klen = d[i + 1] <= len ? d[i + 1] : len;
			break;
		case 6:
			if (at + 2 <= len)
				putn(buf + at, 2, value_of_note(arg, len - klen));
			break;
		case 7:
			if (at + 4 <= len)
				putn(buf + at, 4, get32(buf + at) + (int8_t)arg);
			break;
		}
	}
	if (!(d[1] & 1))
		fix_crc(buf, klen, len, 0, kind);
	decode_one(kind, buf, klen, buf + klen, len - klen);
}

/* --------------------------------------------------------- journals */

/* The journals mode 5 starts from, made with jstore.c and read back. */
struct base {
	const char *name;
	uint8_t    *file;
	size_t      len;
	uint64_t    sessions, tasks, results, next_task_id, sum;
};

#define N_BASES 4
static struct base bases[N_BASES];

struct counts {
	uint64_t sessions, tasks, results, sum;
};

static int
on_session(void *arg, const struct jsession *s)
{
	struct counts *c = arg;
	c->sessions++;
	c->sum += s->id + s->next_seq + s->max_tag;
	return 0;
}

/* Every byte of a record's strings is read, as the scheduler copies
 * them. */
static uint64_t
sum_bytes(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t       s = 0;
	for (size_t i = 0; i < n; i++)
		s += b[i];
	return s;
}

static int
on_task(void *arg, const struct jtask *t)
{
	struct counts *c = arg;
	CHECK(t->n_objs <= JSTORE_MAX_OBJS);
	CHECK((t->why == NULL) == (t->why_len == 0));
	c->tasks++;
	c->sum += t->id + sum_bytes(t->fn, t->fn_len) +
	    sum_bytes(t->args, t->args_len) + sum_bytes(t->why, t->why_len);
	return 0;
}

static int
on_result(void *arg, const struct jresult *r)
{
	struct counts *c = arg;
	c->results++;
	c->sum += r->seq + sum_bytes(r->data, r->len);
	return 0;
}

static struct jstore *
open_ok(const char *dir)
{
	struct jstore *j;
	char           err[1024] = "";
	if (jstore_open(&j, dir, MAP, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_jstore: %s\n", err);
		CHECK(!"jstore_open");
	}
	return j;
}

static void
commit_ok(struct jstore *j, struct jbatch *b)
{
	char err[1024] = "";
	if (jstore_commit(j, b, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_jstore: %s\n", err);
		CHECK(!"jstore_commit");
	}
	jbatch_clear(b);
}

/* Tasks first .. first + n - 1, the first with arguments of big
 * bytes. */
static void
put_tasks(struct jbatch *b, uint32_t first, uint32_t n, size_t big)
{
	static uint8_t args[4096];
	char           why[64];
	for (uint32_t i = first; i < first + n; i++) {
		struct jtask t;
		make_task(i, &t, args, i == first ? big : i % 40, why);
		CHECK(jbatch_put_task(b, &t) == 0);
	}
}

static void
put_results(struct jbatch *b, uint64_t session, uint64_t first,
    uint64_t n, size_t len)
{
	uint8_t data[256];
	for (uint64_t q = first; q < first + n; q++) {
		struct jresult r;
		make_result(session, q, (len + q) % sizeof(data), &r, data);
		CHECK(jbatch_put_result(b, &r) == 0);
	}
}

static void
put_session(struct jbatch *b, uint64_t id, uint64_t next_seq)
{
	struct jsession s = { id, next_seq, id * 100 };
	CHECK(jbatch_put_session(b, &s) == 0);
}

/* Journal v's contents, in one or several commits. */
static void
fill_base(struct jstore *j, int v)
{
	struct jbatch b;

	jbatch_init(&b);
	switch (v) {
	case 0: /* new: the format record only */
		break;
	case 1: /* one commit of each kind */
		put_session(&b, 1, 3);
		put_session(&b, 2, 1);
		put_tasks(&b, 0, 3, 20);
		put_results(&b, 1, 1, 2, 10);
		put_results(&b, 2, 1, 1, 0);
		CHECK(jbatch_next_task_id(&b, 1003) == 0);
		commit_ok(j, &b);
		break;
	case 2: /* a second commit with acks and deletes: free pages */
		for (uint64_t s = 1; s <= 3; s++)
			put_session(&b, s, 20);
		put_tasks(&b, 0, 6, 100);
		put_results(&b, 1, 1, 4, 30);
		put_results(&b, 2, 1, 4, 30);
		CHECK(jbatch_next_task_id(&b, 1006) == 0);
		commit_ok(j, &b);
		CHECK(jbatch_ack(&b, 1, 2) == 0);
		CHECK(jbatch_del_task(&b, 1003) == 0);
		CHECK(jbatch_del_task(&b, 1004) == 0);
		put_results(&b, 3, 1, 3, 5);
		CHECK(jbatch_del_session(&b, 2) == 0);
		commit_ok(j, &b);
		break;
	case 3: /* a results table two levels deep, a task on overflow
	         * pages */
		put_session(&b, 1, 120);
		put_tasks(&b, 0, 4, 3000);
		put_results(&b, 1, 1, 100, 20);
		CHECK(jbatch_next_task_id(&b, 1004) == 0);
		commit_ok(j, &b);
		break;
	}
	jbatch_fini(&b);
}

static void
make_bases(void)
{
	static const char *const names[N_BASES] = { "new", "small",
		"history", "deep" };

	for (int v = 0; v < N_BASES; v++) {
		struct base    *base = &bases[v];
		struct jstore  *j;
		struct jrestore r = { 0 };
		struct counts   c = { 0 };
		char            dir[PATH_MAX + 32], path[PATH_MAX + 64];
		char            err[1024] = "";

		snprintf(dir, sizeof(dir), "%s/base-%s", tmp, names[v]);
		snprintf(path, sizeof(path), "%s/data.mdb", dir);
		j = open_ok(dir);
		fill_base(j, v);
		r.arg     = &c;
		r.session = on_session;
		r.task    = on_task;
		r.result  = on_result;
		CHECK(jstore_read(j, &r, err, sizeof(err)) == 0);
		CHECK(r.damaged == 0);
		jstore_close(j);
		base->name         = names[v];
		base->file         = read_file(path, &base->len);
		base->sessions     = r.sessions;
		base->tasks        = r.tasks;
		base->results      = r.results;
		base->next_task_id = r.next_task_id;
		base->sum          = c.sum;
		CHECK(base->len >= 2 * PAGE && base->len % PAGE == 0);
		if (base->len >= MAX_FILE)
			fprintf(stderr, "fuzz_jstore: journal '%s' is %zu bytes\n",
			    names[v], base->len);
		CHECK(base->len < MAX_FILE);
		snprintf(path, sizeof(path), "%s/lock", dir);
		unlink(path);
		snprintf(path, sizeof(path), "%s/data.mdb", dir);
		unlink(path);
		rmdir(dir);
	}
}

/* Limit the CPU time of jstore_check's child, which inherits the limit
 * (and counts its time from 0): this process's time so far and CHECK_CPU
 * seconds, so that LMDB going round in circles on a damaged file ends
 * with SIGXCPU instead of hanging the test.  on 0: as it was. */
static void
limit_child_cpu(int on)
{
	static rlim_t was;
	struct rusage ru;
	struct rlimit rl;
	rlim_t        cur;

	CHECK(getrlimit(RLIMIT_CPU, &rl) == 0);
	if (on) {
		CHECK(getrusage(RUSAGE_SELF, &ru) == 0);
		cur = (rlim_t)ru.ru_utime.tv_sec + (rlim_t)ru.ru_stime.tv_sec + 1 +
		    CHECK_CPU;
		was         = rl.rlim_cur;
		rl.rlim_cur = cur < was ? cur : was;
	} else {
		rl.rlim_cur = was;
	}
	CHECK(setrlimit(RLIMIT_CPU, &rl) == 0);
}

/* Whether err names the journal fuzzed. */
static int
names_journal(const char *err)
{
	return strstr(err, jdir) != NULL;
}

/* Whether to run this file input: files cost a fork and two opens each,
 * records next to nothing. */
static int
file_sampled(void)
{
	stats.file_inputs++;
	return stats.file_inputs <= FILES_ALL ||
	    stats.file_inputs % FILE_EVERY == 0;
}

/* Check, and if that passes, open and read the data file in jdir, which
 * is base when it was left as made (NULL otherwise). */
static void
read_journal(const struct base *base)
{
	struct jstore  *j;
	struct jrestore r = { 0 };
	struct counts   c = { 0 };
	char            err[2048] = "";
	int             rc, saved, fd;

	stats.files++;
	/* the child's stderr into a file: LMDB says why it aborts */
	fflush(stderr);
	CHECK((saved = dup(2)) >= 0);
	CHECK((fd = open(check_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	           0600)) >= 0);
	CHECK(dup2(fd, 2) == 2);
	close(fd);
	limit_child_cpu(1);
	rc = jstore_check(jdir, MAP, err, sizeof(err));
	limit_child_cpu(0);
	CHECK(dup2(saved, 2) == 2);
	close(saved);
	if (access(marker, F_OK) == 0) {
		size_t   len;
		uint8_t *text = read_file(check_log, &len);
		fprintf(stderr, "fuzz_jstore: a sanitizer report in "
		                "jstore_check's child:\n%.*s\n",
		    (int)len, (const char *)text);
		free(text);
		CHECK(!"a sanitizer report in jstore_check's child");
	}
	if (rc != 0 && strstr(err, "(SIGXCPU)") != NULL) {
		fprintf(stderr, "fuzz_jstore: %s\n", err);
		CHECK(!"jstore_check's child still reading after CHECK_CPU s");
	}
	if (rc != 0) {
		CHECK(rc == -1 && names_journal(err));
		if (strstr(err, "ended with signal") != NULL)
			stats.child_died++;
		else
			stats.refused++;
		if (base != NULL)
			fprintf(stderr, "fuzz_jstore: journal '%s': %s\n",
			    base->name, err);
		CHECK(base == NULL);
		return;
	}
	stats.passed++;

	/* it passed: what follows must not crash */
	if (jstore_open(&j, jdir, MAP, err, sizeof(err)) != 0) {
		CHECK(names_journal(err));
		stats.open_failed++;
		CHECK(base == NULL);
		return;
	}
	r.arg     = &c;
	r.session = on_session;
	r.task    = on_task;
	r.result  = on_result;
	rc        = jstore_read(j, &r, err, sizeof(err));
	jstore_close(j);
	if (rc != 0) {
		CHECK(rc == -1 && names_journal(err));
		stats.read_failed++;
		CHECK(base == NULL);
		return;
	}
	CHECK(r.sessions == c.sessions && r.tasks == c.tasks &&
	    r.results == c.results);
	CHECK(r.missing <= r.damaged);
	stats.read_ok++;
	stats.damaged += r.damaged > 0;
	stats.missing += r.missing > 0;
	stats.restored += r.sessions + r.tasks + r.results;
	if (base != NULL)
		CHECK(r.damaged == 0 && r.sessions == base->sessions &&
		    r.tasks == base->tasks && r.results == base->results &&
		    r.next_task_id == base->next_task_id && c.sum == base->sum);
}

/* Mode 7: the input is the data file. */
static void
file_raw(const uint8_t *d, size_t n)
{
	const struct base *same = NULL;

	if (!file_sampled())
		return;
	for (int v = 0; v < N_BASES; v++)
		if (bases[v].len == n && memcmp(bases[v].file, d, n) == 0)
			same = &bases[v];
	write_file(jpath, d, n);
	read_journal(same);
}

/* LMDB's meta page (mdb.c's MDB_meta after a 16-byte page header, 64-bit
 * layout): its fields' offsets and sizes. */
static const struct {
	uint16_t off;
	uint8_t  size;
} meta_fields[] = {
	{ 16, 4 },  /* mm_magic */
	{ 20, 4 },  /* mm_version */
	{ 24, 8 },  /* mm_address */
	{ 32, 8 },  /* mm_mapsize */
	{ 40, 4 },  /* mm_dbs[FREE_DBI]: md_pad (the page size) */
	{ 44, 2 },  /* md_flags */
	{ 46, 2 },  /* md_depth */
	{ 48, 8 },  /* md_branch_pages */
	{ 56, 8 },  /* md_leaf_pages */
	{ 64, 8 },  /* md_overflow_pages */
	{ 72, 8 },  /* md_entries */
	{ 80, 8 },  /* md_root */
	{ 88, 4 },  /* mm_dbs[MAIN_DBI] likewise */
	{ 92, 2 },
	{ 94, 2 },
	{ 96, 8 },
	{ 104, 8 },
	{ 112, 8 },
	{ 120, 8 },
	{ 128, 8 },
	{ 136, 8 }, /* mm_last_pg */
	{ 144, 8 }, /* mm_txnid */
};
#define N_META_FIELDS (sizeof(meta_fields) / sizeof(meta_fields[0]))

enum {
	P_SET, P_XOR, P_ADD16, P_ADD64, P_NOTE16, P_TRUNCATE, P_META,
	P_NODE, P_COPY, P_HEADER
};
/* a patch's op (4 bits) */
static const uint8_t patch_ops[16] = { P_SET, P_XOR, P_ADD16, P_ADD64,
	P_NOTE16, P_TRUNCATE, P_META, P_NODE, P_COPY, P_HEADER, P_SET,
	P_XOR, P_NODE, P_META, P_HEADER, P_ADD16 };

static uint16_t
note16(uint8_t n, uint16_t was)
{
	static const uint16_t v[] = { 0, 1, 2, 16, 0x7fff, 0x8000, 0xffff,
		PAGE - 1, PAGE, PAGE + 1, 8, 0x20 };
	switch (n % 16) {
	case 12:
		return (uint16_t)(was + 2);
	case 13:
		return (uint16_t)(was - 2);
	case 14:
	case 15:
		return (uint16_t)(was ^ 1u << (n >> 4));
	default:
		return v[n % 16];
	}
}

/* A field of size bytes at p changed as n says (other: the same field
 * of the other meta page). */
static void
set_meta_field(uint8_t *p, size_t size, const uint8_t *other, uint8_t n)
{
	uint64_t was = getn(p, size), v;

	switch (n % 8) {
	case 0: v = 0; break;
	case 1: v = 1; break;
	case 2: v = was + 1; break;
	case 3: v = was - 1; break;
	case 4: v = UINT64_MAX; break;
	case 5: v = getn(other, size); break;
	case 6: v = was + (n >> 3); break;
	default: v = was ^ (1ull << ((n >> 3) % (8 * size))); break;
	}
	putn(p, size, v);
}

/* Mode 5: u8 which, then patches (u8 page, u16 off | op << 12, u8 n[,
 * bytes]). */
static void
file_patch(const uint8_t *d, size_t n)
{
	static uint8_t     file[MAX_FILE];
	const struct base *base;
	size_t             len, i = 1;

	if (n < 1 || !file_sampled())
		return;
	base = &bases[d[0] % N_BASES];
	len  = base->len;
	memcpy(file, base->file, len);
	while (i + 4 <= n && len >= PAGE) {
		size_t   pages = len / PAGE, page = d[i] % pages, m, nkeys;
		uint16_t w   = get16(d + i + 1);
		size_t   off = w & 0xfff;
		int      op  = patch_ops[w >> 12];
		uint8_t  arg = d[i + 3], *pg = file + page * PAGE, *p = pg + off;

		i += 4;
		switch (op) {
		case P_SET:
		case P_XOR:
			m = 1 + arg % 16;
			if (m > n - i)
				m = n - i;
			if (m > PAGE - off)
				m = PAGE - off;
			for (size_t k = 0; k < m; k++)
				p[k] = op == P_SET ? d[i + k] : p[k] ^ d[i + k];
			i += m;
			break;
		case P_ADD16:
			if (off + 2 <= PAGE)
				putn(p, 2, get16(p) + (int8_t)arg);
			break;
		case P_ADD64:
			if (off + 8 <= PAGE)
				putn(p, 8, getn(p, 8) + (uint64_t)(int64_t)(int8_t)arg);
			break;
		case P_NOTE16:
			if (off + 2 <= PAGE)
				putn(p, 2, note16(arg, get16(p)));
			break;
		case P_HEADER: /* mp_pad, mp_flags, mp_lower, mp_upper */
			p = pg + 8 + 2 * (off % 4);
			putn(p, 2, note16(arg, get16(p)));
			break;
		case P_TRUNCATE:
			if (page * PAGE + off < len)
				len = page * PAGE + off;
			break;
		case P_META:
			m  = off % N_META_FIELDS;
			pg = file + (page % 2) * PAGE;
			set_meta_field(pg + meta_fields[m].off, meta_fields[m].size,
			    file + (1 - page % 2) * PAGE + meta_fields[m].off, arg);
			break;
		case P_NODE: /* u16 data size low, high, flags, key size */
			nkeys = get16(pg + 12) >= 16 && get16(pg + 12) <= PAGE ?
			    (get16(pg + 12) - 16u) / 2 : 0;
			if (nkeys == 0)
				break;
			m = get16(pg + 16 + 2 * (off % nkeys));
			if (m + 8 > PAGE)
				break;
			p = pg + m + 2 * (arg & 3);
			putn(p, 2, note16(arg >> 2, get16(p)));
			break;
		case P_COPY:
			if (arg % pages != page)
				memcpy(pg, file + arg % pages * PAGE, PAGE);
			break;
		}
	}
	write_file(jpath, file, len);
	read_journal(len == base->len && memcmp(file, base->file, len) == 0 ?
	        base :
	        NULL);
}

/* ------------------------------------------------------------ setup */

static void
print_stats(void)
{
	printf("fuzz_jstore: records %lu (%lu decoded); files %lu of %lu: "
	       "refused %lu, the check's child died %lu, passed %lu (then "
	       "open failed %lu, read failed %lu, read %lu: %lu with "
	       "damaged records, %lu with missing ones, %lu records)\n",
	    stats.records, stats.decoded, stats.files, stats.file_inputs,
	    stats.refused,
	    stats.child_died, stats.passed, stats.open_failed,
	    stats.read_failed, stats.read_ok, stats.damaged, stats.missing,
	    stats.restored);
}

static void
setup(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmp, sizeof(tmp), "%s/fuzz_jstore.XXXXXX",
	    t != NULL && t[0] != '\0' ? t : "/tmp");
	if (mkdtemp(tmp) == NULL) {
		fprintf(stderr, "fuzz_jstore: mkdtemp %s: %s\n", tmp,
		    strerror(errno));
		exit(2);
	}
	atexit(cleanup);
	snprintf(jdir, sizeof(jdir), "%.*s/j", PATH_MAX - 16, tmp);
	snprintf(jpath, sizeof(jpath), "%.*s/data.mdb", PATH_MAX - 16, jdir);
	snprintf(marker, sizeof(marker), "%.*s/sanitizer-report",
	    PATH_MAX - 32, tmp);
	snprintf(check_log, sizeof(check_log), "%.*s/check.log", PATH_MAX - 16, tmp);
	CHECK(mkdir(jdir, 0700) == 0);
	if (__sanitizer_set_death_callback != NULL)
		__sanitizer_set_death_callback(on_death);
	make_records();
	make_bases();
	ready = 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ready) {
		setup();
		atexit(print_stats);
	}
	if (size == 0)
		return 0;
	switch (data[0] % 8) {
	case 0:
	case 1:
	case 2:
		record_raw(data + 1, size - 1);
		break;
	case 3:
	case 4:
		record_edit(data + 1, size - 1);
		break;
	case 5:
	case 6:
		file_patch(data + 1, size - 1);
		break;
	case 7:
		file_raw(data + 1, size - 1);
		break;
	}
	return 0;
}

/* -------------------------------------------------- seed generator */
#ifdef FUZZ_JSTORE_SEEDS

int main(int argc, char **argv);

static const char *seed_dir;

static void
seed(const char *name, int i, uint8_t mode, const uint8_t *a, size_t alen,
    const uint8_t *b, size_t blen)
{
	static uint8_t buf[MAX_FILE + 1];
	char           path[PATH_MAX + 64];

	CHECK(1 + alen + blen <= MAX_FILE);
	buf[0] = mode;
	if (alen > 0)
		memcpy(buf + 1, a, alen);
	if (blen > 0)
		memcpy(buf + 1 + alen, b, blen);
	snprintf(path, sizeof(path), "%s/%s-%02d", seed_dir, name, i);
	write_file(path, buf, 1 + alen + blen);
}

/* A patch: page, offset, op (P_* as patch_ops[] numbers it), n. */
#define PATCH(page, off, op, n)                                          \
	(uint8_t)(page), (uint8_t)((off) & 0xff),                        \
	    (uint8_t)(((off) >> 8) | (op) << 4), (uint8_t)(n)

int
main(int argc, char **argv)
{
	/* on each journal (its byte 0: which) */
	static const uint8_t patches[][5] = {
		{ 0 },                       /* none */
		{ 0, PATCH(2, 12, 15, -2) }, /* page 2's mp_lower - 2 */
		{ 0, PATCH(3, 12, 2, -2) },  /* page 3's mp_lower - 2 */
		{ 0, PATCH(1, 21, 6, 0) },   /* meta 1's mm_txnid = 0 */
		{ 0, PATCH(2, 3, 7, 25) },   /* a node's data size high 0xffff */
		{ 0, PATCH(2, 0, 8, 3) },    /* page 3 copied over page 2 */
		{ 0, PATCH(0, 19, 13, 5) },  /* meta 0's main root: meta 1's */
		{ 0, PATCH(4, 2, 9, 2) },    /* page 4's mp_lower = 2 */
	};
	/* on each record in turn (its bytes 0-1: which, flags) */
	static const uint8_t edits[][5] = {
		{ 0, 0, 4, 8 + 24, 0 },  /* a task's fn_len = 0 */
		{ 0, 0, 0, 8 + 36, 17 }, /* a task's n_objs = 17 */
		{ 0, 0, 4, 16 + 24, 0 }, /* a result's length = 0 */
		{ 0, 0, 2, 20, 0 },      /* a byte inserted */
		{ 0, 0, 5, 7, 0 },       /* the key ends at 7 */
	};
	struct dirent *e;
	DIR           *dir;
	int            k = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR (writes fuzz_jstore's seeds)\n",
		    argv[0]);
		return 2;
	}
	seed_dir = argv[1];
	if (mkdir(seed_dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "%s: %s\n", seed_dir, strerror(errno));
		return 1;
	}
	if ((dir = opendir(seed_dir)) == NULL) {
		fprintf(stderr, "%s: %s\n", seed_dir, strerror(errno));
		return 1;
	}
	while ((e = readdir(dir)) != NULL) /* the last run's */
		if (e->d_name[0] != '.')
			unlinkat(dirfd(dir), e->d_name, 0);
	closedir(dir);
	setup();

	for (int v = 0; v < N_BASES; v++) {
		const struct base *b = &bases[v];
		seed("file-raw", v, 7, b->file, b->len, NULL, 0);
		for (size_t p = 0; p < sizeof(patches) / sizeof(patches[0]);
		     p++) {
			uint8_t patch[5];
			memcpy(patch, patches[p], sizeof(patch));
			patch[0] = (uint8_t)v;
			seed("file-patch", k++, 5, patch, p == 0 ? 1 : 5, NULL, 0);
		}
	}
	for (size_t i = 0; i < n_recs; i++) {
		const struct rec *r = &recs[i];
		uint8_t           head[3] = { (uint8_t)r->kind, 0,
			          (uint8_t)r->klen };
		uint8_t           kv[MAX_REC];
		const uint8_t    *edit = edits[i % 5];
		uint8_t           e5[5];
		memcpy(kv, r->key, r->klen);
		memcpy(kv + r->klen, r->val, r->vlen);
		seed("record-raw", (int)i, 0, head, 3, kv, r->klen + r->vlen);
		memcpy(e5, edit, sizeof(e5));
		e5[0] = (uint8_t)i;
		seed("record-edit", (int)i, 3, e5, sizeof(e5), NULL, 0);
	}
	return 0;
}
#endif
