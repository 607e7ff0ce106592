/*
 * tasks.c - libferry_examples: the example task library.
 *
 * Small functions a new user can call right away (`ferry submit add 2 3`)
 * and that the tests and benchmarks use: no-op, echo, arithmetic, sleeping,
 * failing, and crashing on purpose.
 */
#include <signal.h>
#include <stdint.h>
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
	double a, b;
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
	double total = 0, v;
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

FERRY_LIBRARY_INIT(reg)
{
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
