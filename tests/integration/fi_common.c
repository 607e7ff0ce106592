/*
 * fi_common.c - what the fault-injection suites share (fi_common.h).
 */
#include "fi_common.h"

#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* ------------------------------------------------ a graph workload */

void
fi_graph_init(struct fi_graph *g, uint64_t seq0)
{
	memset(g, 0, sizeof(*g));
	g->seq0 = g->next = seq0;
}

/* Room for one more task; its index. */
static size_t
graph_add(struct fi_graph *g, uint64_t want, int kind)
{
	if (g->n == g->cap) {
		size_t           cap = g->cap ? 2 * g->cap : 256;
		struct fi_gtask *t   = realloc(g->t, cap * sizeof(*t));
		assert_non_null(t);
		g->t   = t;
		g->cap = cap;
	}
	memset(&g->t[g->n], 0, sizeof(g->t[0]));
	g->t[g->n].seq  = g->next++;
	g->t[g->n].want = want;
	g->t[g->n].kind = kind;
	return g->n++;
}

/* Submit fn [seq, delay_us, refs to the tasks ins[0..n_in-1] of g, then
 * the number k (k_str NULL) or the string k_str (if either is given:
 * has_k)] as task i of g. */
static void
graph_submit(struct fi_graph *g, ferry_client *c, size_t i, const char *fn,
    uint64_t delay_us, const size_t *ins, int n_in, int has_k, uint64_t k,
    const char *k_str, const struct ferry_task_opts *o)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	int             rv;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 2 + (size_t)n_in + (has_k ? 1 : 0));
	msgpack_pack_uint64(&pk, g->t[i].seq);
	msgpack_pack_uint64(&pk, delay_us);
	for (int j = 0; j < n_in; j++) {
		uint8_t ref[FERRY_FUTURE_REF_MAX];
		size_t  len;
		assert_int_equal(
		    ferry_future_ref(ref, sizeof(ref), &len, g->t[ins[j]].f), 0);
		msgpack_sbuffer_write(&sb, (const char *)ref, len);
	}
	if (has_k && k_str != NULL)
		msgpack_pack_str_with_body(&pk, k_str, strlen(k_str));
	else if (has_k)
		msgpack_pack_uint64(&pk, k);
	rv = ferry_submit_opts(c, fn, sb.data, sb.size, o, &g->t[i].f);
	msgpack_sbuffer_destroy(&sb);
	if (rv != 0)
		fail_msg("graph workload: submit %s: %s", fn, ferry_strerror(rv));
}

void
fi_graph_chain(struct fi_graph *g, ferry_client *c, int links,
    uint64_t delay_us, const struct ferry_task_opts *o)
{
	size_t prev = 0;

	for (int l = 0; l < links; l++) {
		size_t i = graph_add(g, (uint64_t)l + 1, FI_G_VALUE);
		graph_submit(g, c, i, "fi_gsum", delay_us, &prev, l > 0 ? 1 : 0,
		    1, 1, NULL, o);
		prev = i;
	}
	g->chains++;
}

void
fi_graph_tree(struct fi_graph *g, ferry_client *c, uint64_t delay_us,
    const struct ferry_task_opts *o)
{
	size_t   leaf[16], mid[4], root;
	uint64_t sum[4] = { 0 };

	for (int l = 0; l < 16; l++) {
		leaf[l] = graph_add(g, 0, FI_G_VALUE);
		g->t[leaf[l]].want = g->t[leaf[l]].seq * 7 + 3; /* fi_step */
		sum[l / 4] += g->t[leaf[l]].want;
		graph_submit(g, c, leaf[l], "fi_step", delay_us, NULL, 0, 0, 0,
		    NULL, o);
	}
	for (int m = 0; m < 4; m++) {
		mid[m] = graph_add(g, sum[m], FI_G_VALUE);
		graph_submit(g, c, mid[m], "fi_gsum", delay_us, leaf + 4 * m, 4,
		    0, 0, NULL, o);
	}
	root = graph_add(g, sum[0] + sum[1] + sum[2] + sum[3], FI_G_VALUE);
	graph_submit(g, c, root, "fi_gsum", delay_us, mid, 4, 0, 0, NULL, o);
	g->trees++;
}

void
fi_graph_broken(struct fi_graph *g, ferry_client *c, int links, int bad,
    uint64_t delay_us, const struct ferry_task_opts *o)
{
	size_t prev = 0, breaker = 0;

	for (int l = 0; l < links; l++) {
		int    kind = l < bad ? FI_G_VALUE : l == bad ? FI_G_BREAK
		                                               : FI_G_DEP;
		size_t i    = graph_add(g, (uint64_t)l + 1, kind);
		g->t[i].breaker = breaker;
		/* the bad link's last input is a string: fi_gsum fails */
		graph_submit(g, c, i, "fi_gsum", delay_us, &prev, l > 0 ? 1 : 0,
		    1, 1, l == bad ? "not a number" : NULL, o);
		if (l == bad)
			breaker = i;
		prev = i;
	}
	g->broken++;
}

ferry_future **
fi_graph_futures(const struct fi_graph *g)
{
	ferry_future **f = calloc(g->n + 1, sizeof(*f));

	assert_non_null(f);
	for (size_t i = 0; i < g->n; i++)
		f[i] = g->t[i].f;
	return f;
}

void
fi_graph_check(const struct fi_graph *g, const char *log)
{
	size_t            n_rec, started = 0, runs = 0, never = 0;
	struct fi_record *rec   = fi_read_records(log, &n_rec);
	uint32_t         *count = calloc(g->next - g->seq0 + 1, sizeof(*count));

	assert_non_null(count);
	for (size_t i = 0; rec != NULL && i < n_rec; i++)
		if (rec[i].seq >= g->seq0 && rec[i].seq < g->next)
			count[rec[i].seq - g->seq0]++;
	for (size_t i = 0; i < g->n; i++) {
		const struct fi_gtask *t   = &g->t[i];
		ferry_future          *f   = t->f;
		int                    st  = ferry_future_state(f);
		int                    ec  = ferry_future_errcode(f);
		const char            *why = ferry_future_error(f);
		uint32_t               k   = count[t->seq - g->seq0];

		started += k > 0;
		runs += k;
		if (t->kind == FI_G_VALUE) {
			const void *data;
			size_t      len;
			uint64_t    v, pid;
			if (st != FERRY_DONE)
				fail_msg("graph task seq %" PRIu64 ": state %d, "
				         "error %d: %s",
				    t->seq, st, ec, why ? why : "-");
			assert_int_equal(ferry_future_result(f, &data, &len), 0);
			assert_int_equal(fi_unpack_pair(data, len, &v, &pid), 0);
			if (v != t->want)
				fail_msg("graph task seq %" PRIu64 ": %" PRIu64
				         ", wanted %" PRIu64,
				    t->seq, v, t->want);
			assert_true(k >= 1);
		} else if (t->kind == FI_G_BREAK) {
			if (st != FERRY_FAILED || ec != FERRY_ETASK ||
			    why == NULL || strstr(why, "not a number") == NULL)
				fail_msg("graph task seq %" PRIu64 " (fails by "
				         "itself): state %d, error %d: %s",
				    t->seq, st, ec, why ? why : "-");
		} else {
			char name[64];
			snprintf(name, sizeof(name), "input task %" PRIu64 " ",
			    ferry_future_id(g->t[t->breaker].f));
			if (st != FERRY_FAILED || ec != FERRY_EDEPENDENCY ||
			    why == NULL || strstr(why, name) == NULL)
				fail_msg("graph task seq %" PRIu64 " (after a "
				         "failed link): state %d, error %d: %s",
				    t->seq, st, ec, why ? why : "-");
			if (k != 0)
				fail_msg("graph task seq %" PRIu64 " ran %u "
				         "time(s) after its input failed",
				    t->seq, k);
			never++;
		}
	}
	printf("graph tasks: %zu (%d chains, %d trees, %d broken chains); "
	       "%zu ran (%zu runs, %zu again), %zu never ran as an input "
	       "failed\n",
	    g->n, g->chains, g->trees, g->broken, started, runs,
	    runs - started, never);
	free(count);
	free(rec);
}

void
fi_graph_free(struct fi_graph *g)
{
	for (size_t i = 0; i < g->n; i++)
		ferry_future_free(g->t[i].f);
	free(g->t);
	memset(g, 0, sizeof(*g));
}
