/*
 * harness.c - helpers for integration tests that run the real binaries.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>
#include <nng/protocol/reqrep0/req.h>

#include "json.h"
#include "util.h"

extern char **environ;

#define MAX_PIDS 256

static char  ferry_bin[4096];
static char  tmpdir[256];
static pid_t pids[MAX_PIDS];
static int   n_pids;
static int   url_seq;

/* Poll cond(arg) every step_ms until it holds (0); -1 when it does not
 * hold at a check that began after timeout_ms. */
static int
wait_until(int (*cond)(void *), void *arg, int timeout_ms, int step_ms)
{
	uint64_t end = util_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		int last = util_now_ms() >= end;
		if (cond(arg))
			return 0;
		if (last)
			return -1;
		usleep((useconds_t)step_ms * 1000);
	}
}

static void
rm_rf(const char *path)
{
	DIR           *d = opendir(path);
	struct dirent *e;
	if (d != NULL) {
		while ((e = readdir(d)) != NULL) {
			char p[4096];
			if (strcmp(e->d_name, ".") == 0 ||
			    strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
			rm_rf(p);
		}
		closedir(d);
		rmdir(path);
	} else {
		unlink(path);
	}
}

static void
at_exit_cleanup(void)
{
	h_cleanup();
	if (getenv("FERRY_TEST_KEEP") == NULL && tmpdir[0] != '\0')
		rm_rf(tmpdir);
}

void
h_init(int argc, char **argv)
{
	const char *bin = argc > 1 ? argv[1] : getenv("FERRY_BIN");
	if (bin == NULL) {
		fprintf(stderr, "usage: %s FERRY_BINARY (or set FERRY_BIN)\n",
		    argv[0]);
		exit(2);
	}
	if (realpath(bin, ferry_bin) == NULL) {
		fprintf(stderr, "%s: %s\n", bin, strerror(errno));
		exit(2);
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ferry-test-XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		exit(2);
	}
	atexit(at_exit_cleanup);
	/* processes we start die with us even if we crash (the worker
	 * supervisor's own children exit when it does) */
	setenv("FERRY_PARENT_DEATHSIG", "1", 1);
	/* default addresses and state of what tests start stay in the
	 * test's own directory, never the user's real ones */
	setenv("FERRY_RUNTIME_DIR", tmpdir, 1);
	signal(SIGPIPE, SIG_IGN);
	printf("# test directory %s\n", tmpdir);
}

const char *
h_fi_lib(int argc, char **argv)
{
	const char *lib = argc > 2 ? argv[2] : getenv("FERRY_FI_LIB");
	if (lib == NULL) {
		fprintf(stderr, "usage: %s FERRY_BIN FI_LIBRARY (or set "
		                "FERRY_FI_LIB)\n",
		    argv[0]);
		exit(2);
	}
	return lib;
}

int
h_run_tests(const struct CMUnitTest *tests, size_t n,
    int (*setup)(void **state))
{
	int rc;
	if (getenv("FERRY_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
	rc = _cmocka_run_group_tests("tests", tests, n, setup, NULL);
	if (rc != 0)
		h_dump_logs();
	return rc;
}

const char *
h_ferry(void)
{
	return ferry_bin;
}

const char *
h_dir(void)
{
	return tmpdir;
}

void
h_ipc_url(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "ipc://%s/%s-%d.sock", tmpdir, name, ++url_seq);
}

void
h_tcp_url(char *buf, size_t len)
{
	struct sockaddr_in a;
	socklen_t          alen = sizeof(a);
	int                fd   = socket(AF_INET, SOCK_STREAM, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family      = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
		perror("free port");
		exit(2);
	}
	close(fd);
	snprintf(buf, len, "tcp://127.0.0.1:%d", ntohs(a.sin_port));
}

static pid_t
spawn(const char *const *args, const char *out, const char *err, int setsid)
{
	const char                *argv[64];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t          attr;
	pid_t                      pid;
	int                        n = 0, rv;

	argv[n++] = "ferry";
	for (int i = 0; args[i] != NULL && n < 63; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	posix_spawn_file_actions_addopen(
	    &fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out,
	    O_WRONLY | O_CREAT | O_APPEND, 0644);
	posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, err,
	    O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (setsid)
		posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
	rv = posix_spawn(&pid, ferry_bin, &fa, &attr, (char *const *)argv,
	    environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (rv != 0) {
		fprintf(stderr, "spawn %s: %s\n", ferry_bin, strerror(rv));
		exit(2);
	}
	return pid;
}

pid_t
h_start(const char *logname, const char *const *args)
{
	char  log[512];
	pid_t pid;
	snprintf(log, sizeof(log), "%s/%s.log", tmpdir, logname);
	pid = spawn(args, log, log, 1);
	if (n_pids < MAX_PIDS)
		pids[n_pids++] = pid;
	return pid;
}

static char *
slurp(const char *path)
{
	FILE  *f = fopen(path, "r");
	char  *buf;
	long   n;
	if (f == NULL)
		return strdup("");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	if (buf != NULL && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)
		buf[0] = '\0';
	fclose(f);
	return buf;
}

int
h_run(const char *const *args, int timeout_ms, char **out, char **err)
{
	char     o[512], e[512];
	pid_t    pid;
	int      st;
	uint64_t end = util_now_ms() + (uint64_t)timeout_ms;

	snprintf(o, sizeof(o), "%s/run-%d.out", tmpdir, ++url_seq);
	snprintf(e, sizeof(e), "%s/run-%d.err", tmpdir, url_seq);
	pid = spawn(args, o, e, 0);
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (util_now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			st = -1;
			break;
		}
		usleep(10000);
	}
	if (out != NULL)
		*out = slurp(o);
	if (err != NULL)
		*err = slurp(e);
	unlink(o);
	unlink(e);
	if (st == -1)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Whether each of the strings in has (up to n, ending at a NULL) is in
 * text; the first that is not, else NULL. */
static const char *
lacks(const char *text, const char *const *has, size_t n)
{
	for (size_t i = 0; i < n && has[i] != NULL; i++)
		if (strstr(text, has[i]) == NULL)
			return has[i];
	return NULL;
}

void
h_run_want(
    const char *const *args, int timeout_ms, const struct h_want *want)
{
	char        *out = NULL, *err = NULL, cmd[512] = "ferry", why[256];
	const char  *miss;
	const size_t n_out = sizeof(want->out_has) / sizeof(want->out_has[0]);
	const size_t n_err = sizeof(want->err_has) / sizeof(want->err_has[0]);
	size_t       len   = strlen(cmd);
	int          rc    = h_run(args, timeout_ms, &out, &err);

	if (want->rc == H_RC_FAILED ? rc == 0 : rc != want->rc)
		snprintf(why, sizeof(why), "exit %d%s, wanted %s%d", rc,
		    rc == -1 ? " (timed out)" : "",
		    want->rc == H_RC_FAILED ? "not " : "",
		    want->rc == H_RC_FAILED ? 0 : want->rc);
	else if (want->out_is != NULL && strcmp(out, want->out_is) != 0)
		snprintf(why, sizeof(why), "stdout is not \"%s\"",
		    want->out_is);
	else if ((miss = lacks(out, want->out_has, n_out)) != NULL)
		snprintf(why, sizeof(why), "stdout lacks \"%s\"", miss);
	else if ((miss = lacks(err, want->err_has, n_err)) != NULL)
		snprintf(why, sizeof(why), "stderr lacks \"%s\"", miss);
	else {
		free(out);
		free(err);
		return;
	}
	for (int i = 0; args[i] != NULL && len < sizeof(cmd); i++)
		len += (size_t)snprintf(
		    cmd + len, sizeof(cmd) - len, " %s", args[i]);
	fprintf(stderr, "%s: %s\n--- stdout:\n%s--- stderr:\n%s", cmd, why,
	    out, err);
	free(out);
	free(err);
	fail_msg("%s: %s", cmd, why);
}

pid_t
h_start_scheduler(const char *logname, const char *const *args)
{
	const char *all[40];
	char        ready[512];
	int         n = 0;
	pid_t       pid;
	uint64_t    end;

	snprintf(ready, sizeof(ready), "%s/%s-%d.ready", tmpdir, logname,
	    ++url_seq);
	for (; args[n] != NULL && n < 36; n++)
		all[n] = args[n];
	all[n++] = "--ready-file";
	all[n++] = ready;
	all[n]   = NULL;
	pid      = h_start(logname, all);
	/* listening once the file is there: a client started now finds it
	 * even on a busy machine (bounded: a scheduler that cannot start
	 * exits, and the test sees that) */
	end = util_now_ms() + 30000;
	while (access(ready, F_OK) != 0 && util_now_ms() < end && h_alive(pid))
		usleep(10000);
	return pid;
}

int
h_teardown(void **state)
{
	(void)state;
	h_cleanup();
	return 0;
}

pid_t
h_scheduler_named(
    const char *logname, const char *url, const char *const *extra)
{
	const char *args[32];
	int         n = 0;
	args[n++]     = "scheduler";
	args[n++]     = "--listen";
	args[n++]     = url;
	for (int i = 0; extra != NULL && extra[i] != NULL && n < 31; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	return h_start_scheduler(logname, args);
}

pid_t
h_scheduler(const char *url, const char *const *extra)
{
	return h_scheduler_named("scheduler", url, extra);
}

pid_t
h_start_workers(const char *logname, const char *url, int n,
    const char *const *libs, const char *const *extra)
{
	const char *args[32];
	char        num[16];
	int         k = 0;
	snprintf(num, sizeof(num), "%d", n);
	args[k++] = "worker";
	args[k++] = "--connect";
	args[k++] = url;
	args[k++] = "--processes";
	args[k++] = num;
	for (int i = 0; libs != NULL && libs[i] != NULL && k < 30; i++) {
		args[k++] = "--library";
		args[k++] = libs[i];
	}
	for (int i = 0; extra != NULL && extra[i] != NULL && k < 31; i++)
		args[k++] = extra[i];
	args[k] = NULL;
	return h_start(logname, args);
}

pid_t
h_workers(const char *url, int n, const char *const *extra)
{
	static const char *const libs[] = { "ferry_examples", NULL };
	return h_start_workers("workers", url, n, libs, extra);
}

ferry_client *
h_connect(const char *url)
{
	ferry_client *c  = NULL;
	int           rv = ferry_client_connect(&c, url, 10000);
	if (rv != 0) {
		fprintf(stderr, "connect %s: %s\n", url, ferry_strerror(rv));
		h_dump_logs();
		return NULL;
	}
	return c;
}

ferry_client *
h_connect_riding(const char *url, int reconnect_ms)
{
	struct ferry_client_opts o;
	ferry_client            *c = NULL;
	char                     err[256] = "";
	int                      rv;

	memset(&o, 0, sizeof(o));
	o.size               = sizeof(o);
	o.connect_timeout_ms = 10000;
	o.reconnect_ms       = reconnect_ms;
	o.errbuf             = err;
	o.errbuf_len         = sizeof(err);
	if ((rv = ferry_client_connect_opts(&c, url, &o)) != 0) {
		fprintf(stderr, "connect %s: %s (%s)\n", url, ferry_strerror(rv),
		    err);
		h_dump_logs();
		return NULL;
	}
	return c;
}

struct ferry_client_stats
h_client_stats(ferry_client *c)
{
	struct ferry_client_stats st;
	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	assert_int_equal(ferry_client_stats(c, &st), 0);
	return st;
}

uint64_t
h_wait_sent(ferry_client *c, int timeout_ms)
{
	uint64_t end = util_now_ms() + (uint64_t)timeout_ms;
	while (h_client_stats(c).unsent > 0 && util_now_ms() < end)
		usleep(5000);
	return h_client_stats(c).unsent;
}

ferry_client *
h_cluster(const char *url, const char *const *sched_extra, int n,
    const char *const *workers_extra)
{
	ferry_client *c;
	h_scheduler(url, sched_extra);
	h_workers(url, n, workers_extra);
	assert_non_null(c = h_connect(url));
	assert_int_equal(h_wait_workers(c, (uint32_t)n, 10000), 0);
	return c;
}

void
h_write_file(const char *path, int mode, const char *fmt, ...)
{
	FILE   *f = fopen(path, "w");
	va_list ap;
	if (f == NULL)
		fail_msg("%s: %s", path, strerror(errno));
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	if (fclose(f) != 0 || chmod(path, (mode_t)mode) != 0)
		fail_msg("%s: %s", path, strerror(errno));
}

/* The status document as a msgpack object in zone (NULL on failure). */
static int
status_obj(ferry_client *c, msgpack_zone *zone, msgpack_object *o,
    msgpack_sbuffer *sb)
{
	char          *json = NULL, err[256];
	msgpack_packer pk;
	size_t         off = 0;
	struct ferry_status st;
	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	if (ferry_cluster_status(c, &st, &json, 5000) != 0)
		return -1;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	if (json_to_msgpack(json, strlen(json), &pk, err, sizeof(err)) != 0 ||
	    msgpack_unpack(sb->data, sb->size, &off, zone, o) !=
	        MSGPACK_UNPACK_SUCCESS) {
		free(json);
		return -1;
	}
	free(json);
	return 0;
}

const msgpack_object *
h_mp_get(const msgpack_object *m, const char *key)
{
	size_t n = strlen(key);
	if (m->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		const msgpack_object *k = &m->via.map.ptr[i].key;
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
		    memcmp(k->via.str.ptr, key, n) == 0)
			return &m->via.map.ptr[i].val;
	}
	return NULL;
}

uint64_t
h_status_uint(ferry_client *c, const char *key)
{
	msgpack_zone          zone;
	msgpack_sbuffer       sb;
	msgpack_object        o;
	const msgpack_object *v;
	uint64_t              r = UINT64_MAX;
	msgpack_zone_init(&zone, 4096);
	msgpack_sbuffer_init(&sb);
	if (status_obj(c, &zone, &o, &sb) == 0 &&
	    (v = h_mp_get(&o, key)) != NULL &&
	    v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		r = v->via.u64;
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_destroy(&sb);
	return r;
}

struct status_wait {
	ferry_client *c;
	const char   *key;
	uint64_t      want, last;
	int           at_least; /* want is a minimum, not the value */
};

static int
status_reached(void *arg)
{
	struct status_wait *w = arg;
	w->last               = h_status_uint(w->c, w->key);
	if (w->at_least)
		return w->last != UINT64_MAX && w->last >= w->want;
	return w->last == w->want;
}

static int
wait_status(ferry_client *c, const char *key, uint64_t want, int at_least,
    int timeout_ms)
{
	struct status_wait w = { c, key, want, UINT64_MAX, at_least };
	if (wait_until(status_reached, &w, timeout_ms, 20) == 0)
		return 0;
	fprintf(stderr, "status '%s' is %llu after %d ms, wanted %s%llu\n",
	    key, (unsigned long long)w.last, timeout_ms,
	    at_least ? "at least " : "", (unsigned long long)want);
	return -1;
}

int
h_wait_status(ferry_client *c, const char *key, uint64_t want, int timeout_ms)
{
	return wait_status(c, key, want, 0, timeout_ms);
}

int
h_wait_status_min(
    ferry_client *c, const char *key, uint64_t min, int timeout_ms)
{
	return wait_status(c, key, min, 1, timeout_ms);
}

int
h_wait_workers(ferry_client *c, uint32_t n, int timeout_ms)
{
	return wait_status(c, "workers", n, 1, timeout_ms);
}

struct replaced_wait {
	ferry_client *c;
	pid_t         old;
	int           n;
};

static int
replaced(void *arg)
{
	struct replaced_wait *w = arg;
	pid_t                 p[64];
	int                   n = h_worker_pids(w->c, p, 64);
	if (n != w->n)
		return 0;
	for (int i = 0; i < n; i++)
		if (p[i] == w->old)
			return 0;
	return 1;
}

int
h_wait_replaced(ferry_client *c, pid_t old, int n, int timeout_ms)
{
	struct replaced_wait w = { c, old, n };
	if (wait_until(replaced, &w, timeout_ms, 20) == 0)
		return 0;
	fprintf(stderr,
	    "worker process %d not replaced (%d wanted) in %d ms\n", (int)old,
	    n, timeout_ms);
	return -1;
}

int
h_status_workers(ferry_client *c,
    void (*fn)(const msgpack_object *w, void *arg), void *arg)
{
	msgpack_zone          zone;
	msgpack_sbuffer       sb;
	msgpack_object        o;
	const msgpack_object *wl;
	int                   n = -1;
	msgpack_zone_init(&zone, 4096);
	msgpack_sbuffer_init(&sb);
	if (status_obj(c, &zone, &o, &sb) == 0 &&
	    (wl = h_mp_get(&o, "worker_list")) != NULL &&
	    wl->type == MSGPACK_OBJECT_ARRAY) {
		for (uint32_t i = 0; i < wl->via.array.size; i++)
			fn(&wl->via.array.ptr[i], arg);
		n = (int)wl->via.array.size;
	}
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_destroy(&sb);
	return n;
}

struct pids {
	pid_t *out;
	int    n, max;
};

static void
add_pid(const msgpack_object *w, void *arg)
{
	struct pids          *p = arg;
	const msgpack_object *v = h_mp_get(w, "pid");
	if (p->n < p->max && v != NULL &&
	    v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		p->out[p->n++] = (pid_t)v->via.u64;
}

int
h_worker_pids(ferry_client *c, pid_t *out, int max)
{
	struct pids p = { out, 0, max };
	h_status_workers(c, add_pid, &p);
	return p.n;
}

int
h_alive(pid_t pid)
{
	struct util_proc_stat ps;
	int                   st;
	pid_t                 r;
	if (pid <= 0)
		return 0;
	if ((r = waitpid(pid, &st, WNOHANG)) == pid)
		return 0;
	/* A child of ours that cannot be reaped yet has not ended: after
	 * kill -9 of a process with threads, its main thread shows 'Z' while
	 * the others still exit (one may be in fdatasync), and they still
	 * hold its files and locks (a scheduler's journal). */
	if (r == 0)
		return 1;
	return util_proc_stat(pid, &ps) == 0 && ps.state != 'Z' &&
	    ps.state != 'X';
}

static int
gone(void *arg)
{
	return !h_alive(*(pid_t *)arg);
}

int
h_wait_gone(pid_t pid, int timeout_ms)
{
	if (wait_until(gone, &pid, timeout_ms, 10) == 0)
		return 0;
	fprintf(stderr, "pid %d still alive after %d ms\n", (int)pid,
	    timeout_ms);
	return -1;
}

int
h_is_sleep(pid_t pid)
{
	char  path[64], cmd[64];
	FILE *f;
	int   yes;
	if (!h_alive(pid))
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	yes = fgets(cmd, sizeof(cmd), f) != NULL && strcmp(cmd, "sleep") == 0;
	fclose(f);
	return yes;
}

int
h_log_count(const char *logname, const char *text)
{
	char    path[512], *line = NULL;
	size_t  cap = 0;
	FILE   *f;
	int     n = 0;
	snprintf(path, sizeof(path), "%s/%s.log", tmpdir, logname);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	while (getline(&line, &cap, f) != -1)
		n += strstr(line, text) != NULL;
	free(line);
	fclose(f);
	return n;
}

struct log_wait {
	const char *logname, *text;
	int         n;
};

static int
log_says(void *arg)
{
	struct log_wait *w = arg;
	return h_log_count(w->logname, w->text) >= w->n;
}

int
h_wait_log(const char *logname, const char *text, int n, int timeout_ms)
{
	struct log_wait w = { logname, text, n };
	if (wait_until(log_says, &w, timeout_ms, 20) == 0)
		return 0;
	fprintf(stderr, "%s.log never said '%s' %d time(s) in %d ms\n",
	    logname, text, n, timeout_ms);
	return -1;
}

void
h_stop(pid_t pid, int ms)
{
	uint64_t end = util_now_ms() + (uint64_t)ms;
	int      st;
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	while (h_alive(pid) && util_now_ms() < end)
		usleep(10000);
	if (h_alive(pid)) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
	}
	waitpid(pid, &st, 0);
	kill(-pid, SIGKILL); /* its session: worker processes */
	for (int i = 0; i < n_pids; i++)
		if (pids[i] == pid)
			pids[i] = 0;
}

void
h_forget(pid_t pid)
{
	for (int i = 0; pid > 0 && i < n_pids; i++)
		if (pids[i] == pid)
			pids[i] = 0;
}

void
h_cleanup(void)
{
	for (int i = 0; i < n_pids; i++) {
		if (pids[i] > 0) {
			kill(-pids[i], SIGKILL);
			kill(pids[i], SIGKILL);
			waitpid(pids[i], NULL, 0);
			pids[i] = 0;
		}
	}
	n_pids = 0;
}

size_t
h_pack_args(uint8_t *buf, int n, uint64_t a, uint64_t b)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	size_t          len;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, (size_t)n);
	if (n > 0)
		msgpack_pack_uint64(&pk, a);
	if (n > 1)
		msgpack_pack_uint64(&pk, b);
	len = sb.size; /* 19 bytes at the most */
	memcpy(buf, sb.data, len);
	msgpack_sbuffer_destroy(&sb);
	return len;
}

size_t
h_pack_uint_array1(uint8_t *buf, uint64_t n)
{
	return h_pack_args(buf, 1, n, 0);
}

size_t
h_pack_str1(uint8_t *buf, size_t cap, const char *s)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	size_t          len;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_str_with_body(&pk, s, strlen(s));
	len = sb.size;
	if (len > cap) {
		msgpack_sbuffer_destroy(&sb);
		fail_msg(
		    "[\"%s\"] takes %zu bytes, more than %zu", s, len, cap);
	}
	memcpy(buf, sb.data, len);
	msgpack_sbuffer_destroy(&sb);
	return len;
}

ferry_future *
h_submit(ferry_client *c, const char *fn, int n, uint64_t a, uint64_t b,
    const struct ferry_task_opts *o)
{
	uint8_t       buf[H_ARGS_MAX];
	size_t        len = h_pack_args(buf, n, a, b);
	ferry_future *f   = NULL;
	int           rv  = ferry_submit_opts(c, fn, buf, len, o, &f);
	if (rv != 0)
		fail_msg("submit %s: %s", fn, ferry_strerror(rv));
	return f;
}

void
h_expect_square(ferry_client *c, uint64_t i)
{
	ferry_future *f = h_submit(c, "square", 1, i, 0, NULL);
	const void   *data;
	size_t        n;
	uint64_t      v;
	assert_int_equal(ferry_future_wait(f, 30000), 0);
	assert_int_equal(ferry_future_result(f, &data, &n), 0);
	assert_int_equal(h_unpack_uint(data, n, &v), 0);
	assert_int_equal(v, i * i);
	ferry_future_free(f);
}

int
h_unpack_uint(const void *data, size_t len, uint64_t *v)
{
	msgpack_zone   zone;
	msgpack_object o;
	size_t         off = 0;
	int            rv  = -1;
	msgpack_zone_init(&zone, 64);
	if (msgpack_unpack(data, len, &off, &zone, &o) ==
	        MSGPACK_UNPACK_SUCCESS &&
	    o.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		*v = o.via.u64;
		rv = 0;
	}
	msgpack_zone_destroy(&zone);
	return rv;
}

void
h_dump_logs(void)
{
	DIR           *d = opendir(tmpdir);
	struct dirent *e;
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char  p[4096], line[1024];
		FILE *f;
		int   n = 0, total = 0;
		if (strstr(e->d_name, ".log") == NULL)
			continue;
		snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
		if ((f = fopen(p, "r")) == NULL)
			continue;
		while (fgets(line, sizeof(line), f) != NULL)
			total++;
		rewind(f);
		fprintf(stderr, "--- %s (last 30 of %d lines) ---\n", p, total);
		while (fgets(line, sizeof(line), f) != NULL)
			if (++n > total - 30)
				fputs(line, stderr);
		fclose(f);
	}
	closedir(d);
}

/* ------------------------------------------------------ a raw peer */

static void
peer_drop_reply(struct h_peer *p)
{
	if (p->reply != NULL)
		nng_msg_free(p->reply);
	p->reply = NULL;
	memset(&p->m, 0, sizeof(p->m));
}

void
h_peer_open(struct h_peer *p, const char *url)
{
	memset(p, 0, sizeof(*p));
	if (nng_req0_open(&p->sock) != 0 ||
	    nng_socket_set_ms(p->sock, NNG_OPT_REQ_RESENDTIME,
	        NNG_DURATION_INFINITE) != 0 ||
	    nng_socket_set_size(p->sock, NNG_OPT_RECVMAXSZ, 64u << 20) != 0 ||
	    nng_socket_set_ms(p->sock, NNG_OPT_SENDTIMEO, 10000) != 0 ||
	    nng_socket_set_ms(p->sock, NNG_OPT_RECONNMINT, 20) != 0 ||
	    nng_socket_set_ms(p->sock, NNG_OPT_RECONNMAXT, 200) != 0 ||
	    nng_dial(p->sock, url, NULL, NNG_FLAG_NONBLOCK) != 0) {
		fprintf(stderr, "h_peer_open: cannot dial %s\n", url);
		abort();
	}
	proto_writer_init(&p->w);
	proto_decoder_init(&p->dec);
}

static void
peer_close_call(void *arg)
{
	nng_close(*(nng_socket *)arg);
}

void
h_peer_close(struct h_peer *p)
{
	static nng_socket kept[16]; /* closes that never finished */
	static int        n_kept;

	peer_drop_reply(p);
	/* NNG 1.5's close has been seen to hang: a test must not */
	kept[n_kept % 16] = p->sock;
	if (util_call_bounded(peer_close_call, &kept[n_kept % 16], 3) != 0)
		fprintf(stderr, "h_peer_close: nng_close did not finish in "
		                "3 s; left behind\n");
	n_kept++;
	proto_writer_fini(&p->w);
	proto_decoder_fini(&p->dec);
}

int
h_peer_call(struct h_peer *p, int timeout_ms)
{
	nng_msg *msg;
	char     err[256];

	peer_drop_reply(p);
	if (nng_msg_alloc(&msg, 0) != 0 ||
	    nng_msg_append(msg, p->w.buf.data, p->w.buf.size) != 0)
		return -1;
	if (nng_sendmsg(p->sock, msg, 0) != 0) {
		nng_msg_free(msg);
		return -1;
	}
	nng_socket_set_ms(p->sock, NNG_OPT_RECVTIMEO, timeout_ms);
	if (nng_recvmsg(p->sock, &p->reply, 0) != 0) {
		p->reply = NULL;
		return -1;
	}
	if (proto_decode(&p->dec, nng_msg_body(p->reply),
	        nng_msg_len(p->reply), &p->m, err, sizeof(err)) != 0) {
		fprintf(stderr, "h_peer_call: reply does not decode: %s\n",
		    err);
		return -1;
	}
	return 0;
}

void
h_peer_hello(struct h_peer *p, uint64_t session)
{
	struct proto_hello h = { 0 };

	h.session = session;
	h.pid     = (uint64_t)getpid();
	proto_writer_reset(&p->w);
	proto_write_hello_client(&p->w, &h);
	if (h_peer_call(p, 10000) != 0 || p->m.type != PROTO_WELCOME) {
		fprintf(stderr, "h_peer_hello: no welcome\n");
		abort();
	}
}
