/*
 * fi_common.c - what the fault-injection suites share (fi_common.h).
 */
#include "fi_common.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "harness.h"
#include "util.h"

void
fi_seen_add(struct fi_seen *seen, pid_t pid)
{
	for (int i = 0; i < seen->n; i++)
		if (seen->pid[i] == pid)
			return;
	if (seen->n < FI_MAX_SEEN)
		seen->pid[seen->n++] = pid;
}

/* The parent of pid, from /proc/PID/stat, or -1. */
static pid_t
parent_of(pid_t pid)
{
	struct util_proc_stat ps;
	return util_proc_stat(pid, &ps) == 0 ? ps.ppid : -1;
}

int
fi_our_workers(ferry_client *c, pid_t sup, struct fi_seen *seen,
    pid_t *ours, int max)
{
	pid_t pids[64];
	int   n = h_worker_pids(c, pids, 64), k = 0;

	for (int i = 0; i < n && k < max; i++) {
		/* only processes this test started */
		if (parent_of(pids[i]) != sup)
			continue;
		fi_seen_add(seen, pids[i]);
		ours[k++] = pids[i];
	}
	return k;
}

void
fi_stop_workers(const char *url, pid_t sup, struct fi_seen *seen)
{
	ferry_client *c = h_connect(url);
	pid_t         ours[64];
	uint64_t      end;

	if (c != NULL) {
		(void)fi_our_workers(c, sup, seen, ours, 64);
		ferry_client_close(c);
	}
	h_stop(sup, 20000);
	end = util_now_ms() + 5000;
	for (int i = 0; i < seen->n; i++) {
		int alive;
		while ((alive = h_alive(seen->pid[i])) && util_now_ms() < end)
			usleep(50000);
		if (alive)
			fail_msg("worker process %d outlived its supervisor",
			    (int)seen->pid[i]);
	}
}

int
fi_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int
fi_unpack_pair(const void *data, size_t len, uint64_t *v, uint64_t *pid)
{
	msgpack_unpacked u;
	size_t           off = 0;
	int              ok  = -1;
	msgpack_unpacked_init(&u);
	if (msgpack_unpack_next(&u, data, len, &off) == MSGPACK_UNPACK_SUCCESS &&
	    u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size == 2 &&
	    u.data.via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
	    u.data.via.array.ptr[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		*v   = u.data.via.array.ptr[0].via.u64;
		*pid = u.data.via.array.ptr[1].via.u64;
		ok   = 0;
	}
	msgpack_unpacked_destroy(&u);
	return ok;
}

size_t
fi_count_records(const char *log)
{
	struct stat sb;
	return stat(log, &sb) == 0
	    ? (size_t)sb.st_size / sizeof(struct fi_record)
	    : 0;
}

struct fi_record *
fi_read_records(const char *log, size_t *n)
{
	struct stat       sb;
	struct fi_record *recs;
	size_t            len;
	int               fd = open(log, O_RDONLY);

	*n = 0;
	if (fd < 0)
		return NULL;
	if (fstat(fd, &sb) != 0) {
		close(fd);
		return NULL;
	}
	len = (size_t)sb.st_size / sizeof(*recs) * sizeof(*recs);
	if ((recs = malloc(len + 1)) == NULL ||
	    read(fd, recs, len) != (ssize_t)len) {
		free(recs);
		close(fd);
		return NULL;
	}
	close(fd);
	*n = len / sizeof(*recs);
	return recs;
}

int
fi_grandchildren(const char *log, pid_t *out, int max)
{
	struct fi_record r;
	int              fd = open(log, O_RDONLY), n = 0;
	if (fd < 0)
		return 0;
	while (n < max && read(fd, &r, sizeof(r)) == (ssize_t)sizeof(r))
		if ((r.seq & FI_CHILD) != 0)
			out[n++] = (pid_t)r.pid;
	close(fd);
	return n;
}

int
fi_grandchildren_left(const pid_t *g, int n, int timeout_ms)
{
	uint64_t end  = util_now_us() + (uint64_t)timeout_ms * 1000u;
	int      left = 0;
	do {
		left = 0;
		for (int i = 0; i < n; i++)
			left += h_is_sleep(g[i]);
		if (left == 0)
			return 0;
		usleep(20000);
	} while (util_now_us() < end);
	for (int i = 0; i < n; i++)
		if (h_is_sleep(g[i])) {
			printf("grandchild %d outlived its worker process\n",
			    (int)g[i]);
			kill(g[i], SIGKILL);
		}
	return left;
}

void
fi_kill_grandchildren(const char *log)
{
	pid_t g[1024];
	int   n = log[0] != '\0' ? fi_grandchildren(log, g, 1024) : 0;

	for (int i = 0; i < n; i++)
		if (h_is_sleep(g[i]))
			kill(g[i], SIGKILL);
}
