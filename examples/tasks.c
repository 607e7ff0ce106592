/*
 * tasks.c - libferry_examples: the example task library.
 *
 * Small functions a new user can call right away (`ferry submit add 2 3`)
 * and that the tests and benchmarks use: no-op, echo, arithmetic, sleeping,
 * failing, and crashing on purpose; counting words in files named by
 * path, and the word frequencies of examples/graph_wordcount.c.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ferry/task.h>

/* Read args[i] as a number, or fail. */
static int
arg_num(ferry_task *t, const msgpack_object *args, uint32_t i, double *out)
{
	const msgpack_object *o;
	if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size <= i)
		return ferry_task_fail(t, "%s: expected at least %u argument(s)",
		    ferry_task_name(t), i + 1);
	o = &args->via.array.ptr[i];
	switch (o->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		*out = (double)o->via.u64;
		return 0;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		*out = (double)o->via.i64;
		return 0;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		*out = o->via.f64;
		return 0;
	default:
		return ferry_task_fail(t, "%s: argument %u must be a number",
		    ferry_task_name(t), i + 1);
	}
}

/* Pack a number as an integer when it is one. */
static void
pack_num(msgpack_packer *pk, double v)
{
	if (v == (double)(int64_t)v && v > -9.2e18 && v < 9.2e18)
		msgpack_pack_int64(pk, (int64_t)v);
	else
		msgpack_pack_double(pk, v);
}

/* noop: returns nil. */
static int
noop(ferry_task *t, const msgpack_object *args)
{
	(void)t;
	(void)args;
	return 0;
}

/* echo: returns its arguments unchanged. */
static int
echo(ferry_task *t, const msgpack_object *args)
{
	return msgpack_pack_object(ferry_task_packer(t), *args);
}

/* add [a, b]: returns a + b. */
static int
add(ferry_task *t, const msgpack_object *args)
{
	double a = 0, b = 0;
	if (arg_num(t, args, 0, &a) != 0 || arg_num(t, args, 1, &b) != 0)
		return -1;
	pack_num(ferry_task_packer(t), a + b);
	return 0;
}

/* square [n] or [n, delay_us]: returns n * n, after sleeping delay_us. */
static int
square(ferry_task *t, const msgpack_object *args)
{
	double n, us = 0;
	if (arg_num(t, args, 0, &n) != 0)
		return -1;
	if (args->via.array.size > 1 && arg_num(t, args, 1, &us) != 0)
		return -1;
	if (us > 0) {
		struct timespec ts;
		if (us > 60e6)
			return ferry_task_fail(t, "square: delay too long");
		ts.tv_sec  = (time_t)(us / 1e6);
		ts.tv_nsec = (long)((us - (double)ts.tv_sec * 1e6) * 1e3);
		while (nanosleep(&ts, &ts) != 0)
			;
	}
	pack_num(ferry_task_packer(t), n * n);
	return 0;
}

/* sum [x, y, ...]: returns the sum of its numeric arguments. */
static int
sum(ferry_task *t, const msgpack_object *args)
{
	double total = 0, v = 0;
	if (args->type != MSGPACK_OBJECT_ARRAY)
		return ferry_task_fail(t, "sum: expected an array of numbers");
	for (uint32_t i = 0; i < args->via.array.size; i++) {
		if (arg_num(t, args, i, &v) != 0)
			return -1;
		total += v;
	}
	pack_num(ferry_task_packer(t), total);
	return 0;
}

/* sleep_ms [ms]: sleeps, then returns ms. */
static int
sleep_ms(ferry_task *t, const msgpack_object *args)
{
	double          ms;
	struct timespec ts;
	if (arg_num(t, args, 0, &ms) != 0)
		return -1;
	if (ms < 0 || ms > 3600e3)
		return ferry_task_fail(t, "sleep_ms: %g is out of range", ms);
	ts.tv_sec  = (time_t)(ms / 1000);
	ts.tv_nsec = (long)((ms - (double)ts.tv_sec * 1000) * 1e6);
	while (nanosleep(&ts, &ts) != 0)
		;
	pack_num(ferry_task_packer(t), ms);
	return 0;
}

/* fail [message]: fails with the message. */
static int
fail(ferry_task *t, const msgpack_object *args)
{
	if (args->type == MSGPACK_OBJECT_ARRAY && args->via.array.size > 0 &&
	    args->via.array.ptr[0].type == MSGPACK_OBJECT_STR)
		return ferry_task_fail(t, "%.*s",
		    (int)args->via.array.ptr[0].via.str.size,
		    args->via.array.ptr[0].via.str.ptr);
	return ferry_task_fail(t, "failed as asked");
}

/* pid: returns the worker process's pid (to see where a task ran). */
static int
pid(ferry_task *t, const msgpack_object *args)
{
	(void)args;
	msgpack_pack_int64(ferry_task_packer(t), (int64_t)getpid());
	return 0;
}

/* crash: dies of SIGSEGV, as buggy native code would. */
static int
crash(ferry_task *t, const msgpack_object *args)
{
	(void)t;
	(void)args;
	raise(SIGSEGV);
	return 0;
}

/* Read args[i] as a non-negative integer. */
static int
arg_u64(ferry_task *t, const msgpack_object *args, uint32_t i, uint64_t *out)
{
	if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size <= i ||
	    args->via.array.ptr[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return ferry_task_fail(t, "%s: argument %u must be a "
		                          "non-negative integer",
		    ferry_task_name(t), i + 1);
	*out = args->via.array.ptr[i].via.u64;
	return 0;
}

/* The object in args[0] (*data, *len bytes) and the slice [*off,
 * *off + *cnt) of it that args[1] and args[2] name. */
static int
arg_object_slice(ferry_task *t, const msgpack_object *args,
    const uint8_t **data, size_t *len, size_t *off, size_t *cnt)
{
	const void *d;
	uint64_t    o = 0, c = 0;
	if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size < 3)
		return ferry_task_fail(t, "%s expects [object, offset, length]",
		    ferry_task_name(t));
	if (ferry_task_object_bytes(t, &args->via.array.ptr[0], &d, len) !=
	        0 ||
	    arg_u64(t, args, 1, &o) != 0 || arg_u64(t, args, 2, &c) != 0)
		return -1;
	if (o > *len || c > *len - o)
		return ferry_task_fail(t,
		    "%s: slice [%llu, +%llu) is outside the object's %zu "
		    "bytes",
		    ferry_task_name(t), (unsigned long long)o,
		    (unsigned long long)c, *len);
	*data = d;
	*off  = (size_t)o;
	*cnt  = (size_t)c;
	return 0;
}

/* The bytes [offset, offset+length) of the object in args[0]. */
static int
arg_slice(ferry_task *t, const msgpack_object *args, const uint8_t **p,
    size_t *n)
{
	const uint8_t *data;
	size_t         len, off, cnt;
	if (arg_object_slice(t, args, &data, &len, &off, &cnt) != 0)
		return -1;
	*p = data + off;
	*n = cnt;
	return 0;
}

/* sum_u64 [object, offset, length] or [object, offset, length, delay_ms]:
 * the sum (mod 2^64) of the little-endian 64-bit words in a slice of a
 * file; length is rounded down to whole words.  With a delay, it waits
 * after resolving the object and before reading it (tests use this to
 * change the file under a running task). */
static int
sum_u64(ferry_task *t, const msgpack_object *args)
{
	const uint8_t *p;
	size_t         n;
	uint64_t       sum = 0, delay = 0;
	if (arg_slice(t, args, &p, &n) != 0)
		return -1;
	if (args->via.array.size > 3 && arg_u64(t, args, 3, &delay) != 0)
		return -1;
	if (delay > 0) {
		struct timespec ts = { (time_t)(delay / 1000),
			(long)(delay % 1000) * 1000000L };
		while (nanosleep(&ts, &ts) != 0)
			;
	}
	for (size_t i = 0; i + 8 <= n; i += 8) {
		uint64_t v;
		memcpy(&v, p + i, 8);
		sum += v;
	}
	msgpack_pack_uint64(ferry_task_packer(t), sum);
	return 0;
}

static int
is_space(uint8_t c)
{
	return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

/* wordcount [object, offset, length]: words that start in a slice of a
 * text file (a word starts at a non-space byte after a space or at the
 * start of the file), so slices that tile the file add up exactly. */
static int
wordcount(ferry_task *t, const msgpack_object *args)
{
	const uint8_t *p;
	size_t         n;
	uint64_t       off = 0, words = 0;
	if (arg_slice(t, args, &p, &n) != 0 || arg_u64(t, args, 1, &off) != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int start_of_word = !is_space(p[i]) &&
		    ((i == 0 && off == 0) || (i == 0 ? is_space(p[-1])
		                                     : is_space(p[i - 1])));
		words += (uint64_t)start_of_word;
	}
	msgpack_pack_uint64(ferry_task_packer(t), words);
	return 0;
}

/*
 * Word frequencies (examples/graph_wordcount.c, docs/graphs.md):
 * count_words counts the words of a slice, merge_counts adds counts up,
 * clean_counts removes the files they wrote.  Counts are a msgpack map
 * {word: count}.  Given a directory, count_words and merge_counts write
 * their map to a file there and return an object reference to it
 * instead: a large intermediate travels by path, not through the
 * scheduler, and the next task loads it from the file.
 */

/* A word -> count table: open addressing, the words in one arena. */
struct wslot {
	uint64_t count; /* 0: an empty slot */
	uint32_t hash, len;
	size_t   off; /* of the word in the arena */
};

struct wtab {
	struct wslot *slot;
	size_t        cap, n; /* cap: a power of two */
	char         *arena;
	size_t        used, room;
};

static uint32_t
word_hash(const char *w, size_t len)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)w[i]) * 16777619u;
	return h;
}

static void
wtab_free(struct wtab *tb)
{
	free(tb->slot);
	free(tb->arena);
}

/* Make the table twice as large (or make it); 0, or -1 (no memory). */
static int
wtab_grow(struct wtab *tb)
{
	size_t        cap = tb->cap == 0 ? 1024 : tb->cap * 2;
	struct wslot *s   = calloc(cap, sizeof(*s));
	if (s == NULL)
		return -1;
	for (size_t i = 0; i < tb->cap; i++) {
		size_t j = tb->slot[i].hash & (cap - 1);
		if (tb->slot[i].count == 0)
			continue;
		while (s[j].count != 0)
			j = (j + 1) & (cap - 1);
		s[j] = tb->slot[i];
	}
	free(tb->slot);
	tb->slot = s;
	tb->cap  = cap;
	return 0;
}

/* Add n to the count of word w (len bytes); 0, or -1 (no memory). */
static int
wtab_add(struct wtab *tb, const char *w, size_t len, uint64_t n)
{
	uint32_t h = word_hash(w, len);
	size_t   j;

	if (n == 0)
		return 0;
	if (len > UINT32_MAX ||
	    ((tb->n + 1) * 4 > tb->cap * 3 && wtab_grow(tb) != 0))
		return -1;
	for (j = h & (tb->cap - 1); tb->slot[j].count != 0;
	    j = (j + 1) & (tb->cap - 1)) {
		struct wslot *s = &tb->slot[j];
		if (s->hash == h && s->len == len &&
		    memcmp(tb->arena + s->off, w, len) == 0) {
			s->count += n;
			return 0;
		}
	}
	if (tb->used + len > tb->room) {
		size_t room = tb->room == 0 ? 65536 : tb->room;
		char  *a;
		while (room < tb->used + len)
			room *= 2;
		if ((a = realloc(tb->arena, room)) == NULL)
			return -1;
		tb->arena = a;
		tb->room  = room;
	}
	memcpy(tb->arena + tb->used, w, len);
	tb->slot[j] = (struct wslot) { n, h, (uint32_t)len, tb->used };
	tb->used += len;
	tb->n++;
	return 0;
}

/* The table as a msgpack map {word: count}. */
static int
wtab_pack(const struct wtab *tb, msgpack_packer *pk)
{
	int rv = msgpack_pack_map(pk, tb->n);
	for (size_t i = 0; i < tb->cap && rv == 0; i++) {
		const struct wslot *s = &tb->slot[i];
		if (s->count == 0)
			continue;
		rv = msgpack_pack_str_with_body(pk, tb->arena + s->off,
		    s->len);
		if (rv == 0)
			rv = msgpack_pack_uint64(pk, s->count);
	}
	return rv;
}

/* Add a map of counts (input i of the task) to tb. */
static int
wtab_add_map(ferry_task *t, struct wtab *tb, const msgpack_object *m,
    uint32_t i)
{
	if (m->type != MSGPACK_OBJECT_MAP)
		return ferry_task_fail(t,
		    "%s: input %u is not a map of counts", ferry_task_name(t),
		    i);
	for (uint32_t k = 0; k < m->via.map.size; k++) {
		const msgpack_object_kv *kv = &m->via.map.ptr[k];
		if (kv->key.type != MSGPACK_OBJECT_STR ||
		    kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			return ferry_task_fail(t,
			    "%s: input %u: entry %u is not word: count",
			    ferry_task_name(t), i, k);
		if (wtab_add(tb, kv->key.via.str.ptr, kv->key.via.str.size,
		        kv->val.via.u64) != 0)
			return ferry_task_fail(t, "%s: out of memory",
			    ferry_task_name(t));
	}
	return 0;
}

/* The directory in o (an absolute path) into buf; 0, or fails the task. */
static int
arg_dir(ferry_task *t, const msgpack_object *o, char *buf, size_t cap)
{
	if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 ||
	    o->via.str.ptr[0] != '/' || o->via.str.size >= cap ||
	    memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL)
		return ferry_task_fail(t,
		    "%s: the directory must be an absolute path (at most %zu "
		    "bytes)",
		    ferry_task_name(t), cap - 1);
	memcpy(buf, o->via.str.ptr, o->via.str.size);
	buf[o->via.str.size] = '\0';
	return 0;
}

/* Write tb to DIR/counts-ID.mp (ID: the task's id) and make an object
 * reference to that file the task's result.  The file is written under
 * another name and renamed, so a reader never sees half of it, and a
 * task that runs again (a lost worker) writes the same file again. */
static int
counts_to_file(ferry_task *t, const struct wtab *tb, const msgpack_object *o)
{
	char            dir[4000], path[4200], tmp[4200];
	msgpack_sbuffer body, ref;
	msgpack_packer  pk;
	FILE           *f;
	int             err = 0;

	if (arg_dir(t, o, dir, sizeof(dir)) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/counts-%llu.mp", dir,
	    (unsigned long long)ferry_task_id(t));
	snprintf(tmp, sizeof(tmp), "%s/.counts-%llu.tmp", dir,
	    (unsigned long long)ferry_task_id(t));
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return ferry_task_fail(t, "%s: cannot make %s: %s",
		    ferry_task_name(t), dir, strerror(errno));
	msgpack_sbuffer_init(&body);
	msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
	if (wtab_pack(tb, &pk) != 0) {
		msgpack_sbuffer_destroy(&body);
		return ferry_task_fail(t, "%s: out of memory",
		    ferry_task_name(t));
	}
	errno = 0;
	if ((f = fopen(tmp, "wb")) == NULL ||
	    fwrite(body.data, 1, body.size, f) != body.size)
		err = errno != 0 ? errno : EIO;
	if (f != NULL && fclose(f) != 0 && err == 0)
		err = errno;
	if (err == 0 && rename(tmp, path) != 0)
		err = errno;
	if (err != 0) {
		unlink(tmp);
		msgpack_sbuffer_destroy(&body);
		return ferry_task_fail(t, "%s: writing %s: %s",
		    ferry_task_name(t), path, strerror(err));
	}
	/* the reference's payload: {"path": PATH, "size": BYTES}
	 * (docs/protocol.md, object references); a reader of a file of
	 * another size fails rather than read something else */
	msgpack_sbuffer_init(&ref);
	msgpack_packer_init(&pk, &ref, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "path", 4);
	msgpack_pack_str_with_body(&pk, path, strlen(path));
	msgpack_pack_str_with_body(&pk, "size", 4);
	msgpack_pack_uint64(&pk, body.size);
	msgpack_pack_ext(ferry_task_packer(t), ref.size, FERRY_EXT_OBJECT);
	msgpack_pack_ext_body(ferry_task_packer(t), ref.data, ref.size);
	msgpack_sbuffer_destroy(&ref);
	msgpack_sbuffer_destroy(&body);
	return 0;
}

/* count_words [object, offset, length] or [object, offset, length, dir]:
 * how often each word that starts in a slice of a text file occurs
 * (words as wordcount counts them, so slices that tile the file add up
 * exactly): a map {word: count}, or with dir an object reference to a
 * file holding it. */
static int
count_words(ferry_task *t, const msgpack_object *args)
{
	const uint8_t        *d;
	size_t                len, off, cnt;
	const msgpack_object *dir = NULL;
	struct wtab           tb  = { 0 };
	int                   rv;

	if (arg_object_slice(t, args, &d, &len, &off, &cnt) != 0)
		return -1;
	if (args->via.array.size > 3 &&
	    args->via.array.ptr[3].type != MSGPACK_OBJECT_NIL)
		dir = &args->via.array.ptr[3];
	for (size_t i = off; i < off + cnt; i++) {
		size_t j = i;
		if (is_space(d[i]) || (i > 0 && !is_space(d[i - 1])))
			continue; /* not the start of a word */
		while (j < len && !is_space(d[j]))
			j++; /* a word may end past the slice */
		if (wtab_add(&tb, (const char *)d + i, j - i, 1) != 0) {
			wtab_free(&tb);
			return ferry_task_fail(t,
			    "count_words: out of memory");
		}
		i = j;
	}
	rv = dir != NULL ? counts_to_file(t, &tb, dir)
	                 : wtab_pack(&tb, ferry_task_packer(t));
	wtab_free(&tb);
	return rv;
}

/* merge_counts [dir, input, ...]: the counts of its inputs added up.
 * Each input is a map {word: count} or an object reference to a file
 * holding one (at most 16 of those: a task holds at most 16 objects).
 * dir nil: the map is the result; a directory: the map is written to a
 * file there, and an object reference to it is the result. */
static int
merge_counts(ferry_task *t, const msgpack_object *args)
{
	const msgpack_object *dir;
	struct wtab           tb = { 0 };
	int                   rv = 0;

	if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size < 2)
		return ferry_task_fail(t,
		    "merge_counts expects [dir or nil, input, ...]");
	dir = &args->via.array.ptr[0];
	for (uint32_t i = 1; i < args->via.array.size && rv == 0; i++) {
		const msgpack_object *in = &args->via.array.ptr[i];
		const void           *data;
		size_t                len, at = 0;
		msgpack_zone          z;
		msgpack_object        m;
		if (!ferry_is_object(in)) {
			rv = wtab_add_map(t, &tb, in, i);
			continue;
		}
		if (ferry_task_object_bytes(t, in, &data, &len) != 0) {
			rv = -1;
			break;
		}
		msgpack_zone_init(&z, 65536);
		if (msgpack_unpack(data, len, &at, &z, &m) !=
		    MSGPACK_UNPACK_SUCCESS)
			rv = ferry_task_fail(t,
			    "merge_counts: input %u: the file is not "
			    "msgpack",
			    i);
		else
			rv = wtab_add_map(t, &tb, &m, i);
		msgpack_zone_destroy(&z);
	}
	if (rv == 0)
		rv = dir->type != MSGPACK_OBJECT_NIL
		    ? counts_to_file(t, &tb, dir)
		    : wtab_pack(&tb, ferry_task_packer(t));
	wtab_free(&tb);
	return rv;
}

/* Whether name is one count_words or merge_counts writes in a
 * directory: counts-ID.mp, or .counts-ID.tmp while it is written. */
static int
is_counts_file(const char *name)
{
	size_t n = strlen(name);
	return (strncmp(name, "counts-", 7) == 0 && n > 10 &&
	           strcmp(name + n - 3, ".mp") == 0) ||
	    (strncmp(name, ".counts-", 8) == 0 && n > 12 &&
	        strcmp(name + n - 4, ".tmp") == 0);
}

/* clean_counts [dir, ...]: removes the files count_words and
 * merge_counts wrote in dir, and dir once it is empty; returns how many
 * files it removed.  The arguments after dir are not used: references
 * there make it wait for the tasks that read the files (submit it with
 * run_anyway, so that it runs when they fail too). */
static int
clean_counts(ferry_task *t, const msgpack_object *args)
{
	char           dir[4000], path[4400];
	DIR           *dp;
	struct dirent *e;
	uint64_t       n = 0;

	if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size < 1)
		return ferry_task_fail(t, "clean_counts expects [dir, ...]");
	if (arg_dir(t, &args->via.array.ptr[0], dir, sizeof(dir)) != 0)
		return -1;
	if ((dp = opendir(dir)) == NULL) {
		if (errno != ENOENT)
			return ferry_task_fail(t, "clean_counts: %s: %s", dir,
			    strerror(errno));
	} else {
		while ((e = readdir(dp)) != NULL) {
			if (!is_counts_file(e->d_name))
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			n += unlink(path) == 0;
		}
		closedir(dp);
		(void)rmdir(dir); /* fails, harmlessly, unless empty */
	}
	msgpack_pack_uint64(ferry_task_packer(t), n);
	return 0;
}

/*
 * A loader of its own: "lines" parses a text file once into the offsets
 * of its lines; every later task on the worker reuses the parsed index.
 */
struct line_index {
	size_t  n;
	size_t *starts;
};

static int
lines_load(const char *path, int fd, uint64_t size, void **value,
    size_t *bytes, char *err, size_t errlen)
{
	struct line_index *ix = calloc(1, sizeof(*ix));
	size_t             cap = 1024, pos = 0;
	char               buf[65536];
	ssize_t            r;
	int                at_start = 1;
	(void)size;
	if (ix == NULL || (ix->starts = malloc(cap * sizeof(size_t))) == NULL)
		goto nomem;
	while ((r = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < r; i++, pos++) {
			if (at_start) {
				if (ix->n == cap) {
					size_t *ns = realloc(ix->starts,
					    2 * cap * sizeof(size_t));
					if (ns == NULL)
						goto nomem;
					ix->starts = ns;
					cap *= 2;
				}
				ix->starts[ix->n++] = pos;
			}
			at_start = buf[i] == '\n';
		}
	}
	if (r < 0) {
		snprintf(err, errlen, "%s: read failed", path);
		free(ix->starts);
		free(ix);
		return -1;
	}
	*value = ix;
	*bytes = sizeof(*ix) + cap * sizeof(size_t);
	return 0;
nomem:
	snprintf(err, errlen, "%s: out of memory indexing lines", path);
	if (ix != NULL)
		free(ix->starts);
	free(ix);
	return -1;
}

static void
lines_unload(void *value, size_t bytes)
{
	struct line_index *ix = value;
	(void)bytes;
	free(ix->starts);
	free(ix);
}

/* line_count [object with loader "lines"]: the number of lines. */
static int
line_count(ferry_task *t, const msgpack_object *args)
{
	void *v;
	if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size < 1)
		return ferry_task_fail(t, "line_count expects [object]");
	if (ferry_task_object(t, &args->via.array.ptr[0], &v) != 0)
		return -1;
	msgpack_pack_uint64(ferry_task_packer(t),
	    ((struct line_index *)v)->n);
	return 0;
}

/* exit_process: ends its worker process, as a stray exit() in native code
 * does (the scheduler quarantines it after a few lost workers). */
static int
exit_process(ferry_task *t, const msgpack_object *args)
{
	(void)t;
	(void)args;
	_exit(7);
}

/* hog [mib, step_ms]: allocates mib MiB (at most 64 GiB) in 16 MiB
 * steps, touching every page, sleeping step_ms (default 0) after each
 * step; then frees it all and returns mib.  To test memory limits. */
static int
hog(ferry_task *t, const msgpack_object *args)
{
	enum { STEP = 16 << 20 };
	uint64_t        mib = 0, step_ms = 0, chunks, done = 0;
	char          **held;
	struct timespec ts;

	if (arg_u64(t, args, 0, &mib) != 0)
		return -1;
	if (args->via.array.size > 1 && arg_u64(t, args, 1, &step_ms) != 0)
		return -1;
	if (mib > 65536 || step_ms > 60000)
		return ferry_task_fail(t, "hog: %llu MiB or %llu ms is out of "
		                          "range",
		    (unsigned long long)mib, (unsigned long long)step_ms);
	chunks = (mib + 15) / 16;
	if ((held = calloc(chunks > 0 ? chunks : 1, sizeof(*held))) == NULL)
		return ferry_task_fail(t, "hog: out of memory");
	for (; done < chunks; done++) {
		size_t n = done + 1 < chunks || mib % 16 == 0
		    ? (size_t)STEP
		    : (size_t)(mib % 16) << 20;
		if ((held[done] = malloc(n)) == NULL)
			break;
		memset(held[done], 0x5a, n); /* make every page resident */
		if (step_ms > 0) {
			ts.tv_sec  = (time_t)(step_ms / 1000);
			ts.tv_nsec = (long)(step_ms % 1000) * 1000000L;
			while (nanosleep(&ts, &ts) != 0)
				;
		}
	}
	for (uint64_t i = 0; i < done; i++)
		free(held[i]);
	free(held);
	if (done < chunks)
		return ferry_task_fail(t, "hog: out of memory after %llu MiB",
		    (unsigned long long)done * 16);
	msgpack_pack_uint64(ferry_task_packer(t), mib);
	return 0;
}

/* abort_task: aborts, as failed assertions in native code do. */
static int
abort_task(ferry_task *t, const msgpack_object *args)
{
	(void)t;
	(void)args;
	abort();
}

FERRY_LIBRARY_INIT(reg)
{
	if (ferry_register(reg, "sum_u64", sum_u64) != 0 ||
	    ferry_register(reg, "wordcount", wordcount) != 0 ||
	    ferry_register(reg, "line_count", line_count) != 0 ||
	    ferry_register(reg, "abort", abort_task) != 0 ||
	    ferry_register(reg, "exit_process", exit_process) != 0 ||
	    ferry_register(reg, "hog", hog) != 0 ||
	    ferry_register(reg, "count_words", count_words) != 0 ||
	    ferry_register(reg, "merge_counts", merge_counts) != 0 ||
	    ferry_register(reg, "clean_counts", clean_counts) != 0 ||
	    ferry_register_loader(reg, "lines", lines_load, lines_unload) != 0)
		return -1;
	if (ferry_register(reg, "noop", noop) != 0 ||
	    ferry_register(reg, "echo", echo) != 0 ||
	    ferry_register(reg, "add", add) != 0 ||
	    ferry_register(reg, "square", square) != 0 ||
	    ferry_register(reg, "sum", sum) != 0 ||
	    ferry_register(reg, "sleep_ms", sleep_ms) != 0 ||
	    ferry_register(reg, "fail", fail) != 0 ||
	    ferry_register(reg, "pid", pid) != 0 ||
	    ferry_register(reg, "crash", crash) != 0)
		return -1;
	return 0;
}
