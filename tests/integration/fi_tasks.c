/*
 * fi_tasks.c - the task library of the fault-injection suite.
 *
 * fi_step is an ordinary task: it appends a start record (sequence number,
 * process id, CLOCK_MONOTONIC microseconds) to the binary log named by
 * $FERRY_FI_LOG, sleeps a little and returns [seq * 7 + 3, pid], so the
 * test can check every result and see every execution, including those
 * whose result was lost with their process.  fi_gsum [seq, delay_us, x...]
 * is its counterpart for task graphs: it logs its start the same way,
 * sleeps (or, when delay_us is a path, waits until that file exists: a
 * gate the test opens) and returns [sum of the xs, pid], each x a
 * non-negative integer or the result of fi_step or fi_gsum put in place of
 * a future reference (its value counts), anything else failing the task.
 * The others are poison (they log their start too, [seq, ...], so the test
 * knows where they run): fi_segv and fi_abort crash their process, fi_hang
 * never returns, fi_hog [seq, mib] allocates (and touches) memory until
 * its process is killed.  Tasks that break their worker process in other
 * ways: fi_exit [seq, status] calls exit(status) in the middle of its run;
 * fi_close_fds [seq] closes descriptors 0-1023 and returns (the worker
 * cannot go on without its sockets); fi_fork [seq, how] starts a
 * grandchild that execs `sleep 1000` (how: bit 0, it calls setsid() first
 * to leave the worker's process group; bit 1, the task then crashes with
 * SIGSEGV; bit 2, it exits with status 0; bit 3, it hangs) and logs a
 * record [FI_CHILD | seq, grandchild pid] so the test can look for it.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ferry/task.h>

#include "fi_log.h"

static int             log_fd = -1;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t
arg_u64(const msgpack_object *args, uint32_t i, uint64_t dflt)
{
	if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size <= i ||
	    args->via.array.ptr[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return dflt;
	return args->via.array.ptr[i].via.u64;
}

static void
log_record(uint64_t seq, uint64_t pid)
{
	struct fi_record r;
	struct timespec  ts;

	pthread_mutex_lock(&log_lock);
	if (log_fd < 0) {
		const char *path = getenv("FERRY_FI_LOG");
		if (path != NULL)
			log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT |
			        O_CLOEXEC, 0644);
	}
	pthread_mutex_unlock(&log_lock);
	if (log_fd < 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	r.seq = seq;
	r.pid = pid;
	r.us  = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	/* one small O_APPEND write: records never interleave */
	if (write(log_fd, &r, sizeof(r)) != (ssize_t)sizeof(r)) {
		/* a lost record shows up as a missing execution */
	}
}

static void
log_start(uint64_t seq)
{
	log_record(seq, (uint64_t)getpid());
}

static int
fi_step(ferry_task *t, const msgpack_object *args)
{
	uint64_t seq   = arg_u64(args, 0, 0);
	uint64_t delay = arg_u64(args, 1, 0);

	log_start(seq);
	if (delay > 0)
		usleep((useconds_t)delay);
	msgpack_pack_array(ferry_task_packer(t), 2);
	msgpack_pack_uint64(ferry_task_packer(t), seq * 7 + 3);
	msgpack_pack_uint64(ferry_task_packer(t), (uint64_t)getpid());
	return 0;
}

/* The value of one input of fi_gsum: a non-negative integer, or the
 * result of fi_step or fi_gsum ([value, pid]).  0, or -1. */
static int
gsum_value(const msgpack_object *o, uint64_t *v)
{
	if (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 2)
		o = &o->via.array.ptr[0];
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return -1;
	*v = o->via.u64;
	return 0;
}

static int
fi_gsum(ferry_task *t, const msgpack_object *args)
{
	uint64_t seq   = arg_u64(args, 0, 0);
	uint64_t delay = arg_u64(args, 1, 0);
	uint64_t sum   = 0, v;

	log_start(seq);
	if (args->type != MSGPACK_OBJECT_ARRAY)
		return ferry_task_fail(t, "fi_gsum: expected an array");
	for (uint32_t i = 2; i < args->via.array.size; i++) {
		if (gsum_value(&args->via.array.ptr[i], &v) != 0)
			return ferry_task_fail(t,
			    "fi_gsum %llu: input %u is not a number or a "
			    "result",
			    (unsigned long long)seq, i - 1);
		sum += v;
	}
	if (args->via.array.size > 1 &&
	    args->via.array.ptr[1].type == MSGPACK_OBJECT_STR) {
		/* a gate: wait (up to 120 s) until the file exists */
		const msgpack_object_str *p = &args->via.array.ptr[1].via.str;
		char                      path[512];
		int                       i = 0;
		snprintf(path, sizeof(path), "%.*s", (int)p->size, p->ptr);
		for (; i < 24000 && access(path, F_OK) != 0; i++)
			usleep(5000);
		if (i == 24000)
			return ferry_task_fail(t, "fi_gsum %llu: %s never "
			                          "appeared",
			    (unsigned long long)seq, path);
	} else if (delay > 0) {
		usleep((useconds_t)delay);
	}
	msgpack_pack_array(ferry_task_packer(t), 2);
	msgpack_pack_uint64(ferry_task_packer(t), sum);
	msgpack_pack_uint64(ferry_task_packer(t), (uint64_t)getpid());
	return 0;
}

/* A bad access (under AddressSanitizer, which reports a real one itself
 * and exits, the signal the access would raise). */
static void
segv(void)
{
#if defined(__SANITIZE_ADDRESS__)
	raise(SIGSEGV);
#else
	volatile int *p = NULL;
	*p = 1;
#endif
}

static int
fi_segv(ferry_task *t, const msgpack_object *args)
{
	(void)t;
	log_start(arg_u64(args, 0, 0));
	segv();
	return 0;
}

static int
fi_abort(ferry_task *t, const msgpack_object *args)
{
	(void)t;
	log_start(arg_u64(args, 0, 0));
	abort();
}

static int
fi_hang(ferry_task *t, const msgpack_object *args)
{
	(void)t;
	log_start(arg_u64(args, 0, 0));
	for (int i = 0; i < 600; i++)
		sleep(1);
	return 0;
}

static int
fi_hog(ferry_task *t, const msgpack_object *args)
{
	uint64_t mib   = arg_u64(args, 1, 1024);
	char   **parts = calloc(mib / 16 + 1, sizeof(char *));
	uint64_t n     = 0;

	log_start(arg_u64(args, 0, 0));
	if (parts == NULL)
		return ferry_task_fail(t, "out of memory");
	for (; n < mib / 16; n++) {
		if ((parts[n] = malloc(16u << 20)) == NULL)
			break;
		memset(parts[n], (int)n, 16u << 20);
		usleep(20000);
	}
	for (uint64_t i = 0; i < n; i++)
		free(parts[i]);
	free(parts);
	msgpack_pack_uint64(ferry_task_packer(t), n * 16);
	return 0;
}

static int
fi_exit(ferry_task *t, const msgpack_object *args)
{
	(void)t;
	log_start(arg_u64(args, 0, 0));
	exit((int)arg_u64(args, 1, 0));
}

static int
fi_close_fds(ferry_task *t, const msgpack_object *args)
{
	log_start(arg_u64(args, 0, 0));
	pthread_mutex_lock(&log_lock);
	for (int fd = 0; fd < 1024; fd++)
		close(fd);
	log_fd = -1;
	pthread_mutex_unlock(&log_lock);
	msgpack_pack_uint64(ferry_task_packer(t), 1);
	return 0;
}

static int
fi_fork(ferry_task *t, const msgpack_object *args)
{
	uint64_t seq = arg_u64(args, 0, 0), how = arg_u64(args, 1, 0);
	pid_t    pid;

	log_start(seq);
	if ((pid = fork()) < 0)
		return ferry_task_fail(t, "fork failed");
	if (pid == 0) {
		/* only async-signal-safe calls until exec */
		if ((how & FI_FORK_SETSID) != 0)
			setsid();
		execl("/bin/sleep", "sleep", "1000", (char *)NULL);
		_exit(127);
	}
	log_record(FI_CHILD | seq, (uint64_t)pid);
	if ((how & FI_FORK_CRASH) != 0)
		segv();
	if ((how & FI_FORK_EXIT) != 0)
		exit(0);
	for (int i = 0; (how & FI_FORK_HANG) != 0 && i < 600; i++)
		sleep(1);
	msgpack_pack_uint64(ferry_task_packer(t), (uint64_t)pid);
	return 0;
}

FERRY_LIBRARY_INIT(reg)
{
	if (ferry_register(reg, "fi_step", fi_step) != 0 ||
	    ferry_register(reg, "fi_gsum", fi_gsum) != 0 ||
	    ferry_register(reg, "fi_segv", fi_segv) != 0 ||
	    ferry_register(reg, "fi_abort", fi_abort) != 0 ||
	    ferry_register(reg, "fi_hang", fi_hang) != 0 ||
	    ferry_register(reg, "fi_hog", fi_hog) != 0 ||
	    ferry_register(reg, "fi_exit", fi_exit) != 0 ||
	    ferry_register(reg, "fi_close_fds", fi_close_fds) != 0 ||
	    ferry_register(reg, "fi_fork", fi_fork) != 0)
		return -1;
	return 0;
}
