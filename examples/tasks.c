/*
 * tasks.c - libferry_examples: the example task library.
 *
 * Small functions a new user can call right away (`ferry submit add 2 3`)
 * and that the tests and benchmarks use: no-op, echo, arithmetic, sleeping,
 * failing, and crashing on purpose.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* The bytes [offset, offset+length) of the object in args[0]. */
static int
arg_slice(ferry_task *t, const msgpack_object *args, const uint8_t **p,
    size_t *n)
{
	const void *data;
	size_t      len;
	uint64_t    off = 0, cnt = 0;
	if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size < 3)
		return ferry_task_fail(t, "%s expects [object, offset, length]",
		    ferry_task_name(t));
	if (ferry_task_object_bytes(t, &args->via.array.ptr[0], &data, &len) !=
	        0 ||
	    arg_u64(t, args, 1, &off) != 0 || arg_u64(t, args, 2, &cnt) != 0)
		return -1;
	if (off > len || cnt > len - off)
		return ferry_task_fail(t,
		    "%s: slice [%llu, +%llu) is outside the object's %zu "
		    "bytes",
		    ferry_task_name(t), (unsigned long long)off,
		    (unsigned long long)cnt, len);
	*p = (const uint8_t *)data + off;
	*n = (size_t)cnt;
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
