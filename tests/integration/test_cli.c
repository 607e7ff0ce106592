/*
 * test_cli.c - the ferry command as a user types it: cluster up and down
 * from a YAML file, submit, status, help, and bad cluster files.
 */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ferry/ferry.h"
#include "harness.h"
#include "status_fields.h"
#include "util.h"

/* Write a cluster file into the test directory; returns its path. */
static char *
write_cluster(const char *name, const char *tcp, const char *ipc,
    int processes, const char *extra_group_yaml)
{
	static char path[512];
	snprintf(path, sizeof(path), "%s/%s.yaml", h_dir(), name);
	h_write_file(path, 0644,
	    "cluster:\n"
	    "  name: %s\n"
	    "  state_dir: %s/state-%s\n"
	    "log_level: info\n"
	    "scheduler:\n"
	    "  listen: [%s, %s]\n"
	    "  address: %s\n"
	    "  heartbeat_interval: 500ms\n"
	    "  heartbeat_timeout: 3s\n"
	    "  connect_timeout: 15s\n"
	    "  drain_timeout: 5s\n"
	    "workers:\n"
	    "  - name: main\n"
	    "    processes: %d\n"
	    "    libraries: [ferry_examples]\n"
	    "%s",
	    name, h_dir(), name, tcp, ipc, ipc, processes,
	    extra_group_yaml ? extra_group_yaml : "");
	return path;
}

/* Pids of processes whose command line mentions needle. */
static int
pids_mentioning(const char *needle, pid_t *out, int max)
{
	DIR           *d = opendir("/proc");
	struct dirent *e;
	int            n = 0;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL && n < max) {
		char  path[300], buf[4096];
		FILE *f;
		size_t len;
		pid_t pid = (pid_t)atoi(e->d_name);
		if (pid <= 0 || pid == getpid())
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		len = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		for (size_t i = 0; i < len; i++)
			if (buf[i] == '\0')
				buf[i] = ' ';
		buf[len] = '\0';
		if (strstr(buf, needle) != NULL && h_alive(pid))
			out[n++] = pid;
	}
	closedir(d);
	return n;
}

/* cluster up starts everything and returns when the workers are in;
 * status shows them; down leaves no process behind. */
static void
test_cluster_up_down(void **state)
{
	char          tcp[128], ipc[128], *path;
	char          sock[128];
	const char   *up[]     = { "cluster", "up", "-f", NULL, NULL };
	const char   *down[]   = { "cluster", "down", "-f", NULL, NULL };
	const char   *status[] = { "cluster", "status", "-f", NULL, NULL };
	pid_t         before[64], wpids[8], after[64];
	int           nb, nw;
	ferry_client *c;
	(void)state;

	h_tcp_url(tcp, sizeof(tcp));
	h_ipc_url(ipc, sizeof(ipc), "cluster");
	path      = write_cluster("updown", tcp, ipc, 2, NULL);
	up[3]     = path;
	down[3]   = path;
	status[3] = path;

	h_run_want(up, 60000,
	    &(struct h_want){ .out_has = { "is up", "2 worker process(es)" } });

	/* the scheduler and the supervisor mention the file; the worker
	 * processes are the ones the scheduler lists */
	nb = pids_mentioning(path, before, 64);
	assert_true(nb >= 2);
	snprintf(sock, sizeof(sock), "%s", ipc);
	assert_non_null(c = h_connect(sock));
	nw = h_worker_pids(c, wpids, 8);
	assert_int_equal(nw, 2);
	ferry_client_close(c);

	h_run_want(status, 20000,
	    &(struct h_want){ .out_has = { "scheduler pid", "2 process(es)" } });

	/* a second up refuses: it is already up */
	h_run_want(up, 20000,
	    &(struct h_want){ .rc = H_RC_FAILED, .err_has = { "already up" } });

	h_run_want(down, 60000, &(struct h_want){ .out_has = { "is down" } });

	for (int i = 0; i < nb; i++)
		assert_false(h_alive(before[i]));
	for (int i = 0; i < nw; i++)
		assert_false(h_alive(wpids[i]));
	assert_int_equal(pids_mentioning(path, after, 64), 0);

	/* down again is harmless */
	h_run_want(down, 20000, &(struct h_want){ .out_has = { "not up" } });
}

/* ferry submit prints results, and fails clearly on unknown functions. */
static void
test_submit(void **state)
{
	char        url[128];
	const char *add[] = { "submit", "-c", NULL, "add", "2", "3", NULL };
	const char *echo[] = { "submit", "-c", NULL, "--args",
		"{\"k\": [1, \"two\", null]}", "echo", NULL };
	const char *unk[]  = { "submit", "-c", NULL, "no_such_fn", "1", NULL };
	const char *fail[] = { "submit", "-c", NULL, "fail", "boom", NULL };
	const char *badj[] = { "submit", "-c", NULL, "--args", "{oops",
		"echo", NULL };
	const char *words[] = { "submit", "-c", NULL, "echo", "hello",
		"true-ish", "-3", "[1, 2]", "x y", "-v", "true",
		"\"2024-01-01\"", NULL };
	static const struct {
		const char *arg;
		int         offset;
	} bad_args[] = {
		{ "[1, 2", 5 },
		{ "{\"a\": }", 6 },
		{ "\"unterminated", 13 },
		{ "2024-01-01", 4 },
		{ "-5x", 2 },
		{ "12abc", 2 },
	};
	(void)state;

	h_ipc_url(url, sizeof(url), "submit");
	ferry_client_close(h_cluster(url, NULL, 1, NULL));
	add[2] = echo[2] = unk[2] = fail[2] = badj[2] = words[2] = url;

	h_run_want(add, 20000, &(struct h_want){ .out_is = "5\n" });
	h_run_want(echo, 20000,
	    &(struct h_want){ .out_is = "{\"k\":[1,\"two\",null]}\n" });
	h_run_want(unk, 20000,
	    &(struct h_want){ .rc = H_RC_FAILED,
	        .out_is           = "",
	        .err_has          = { "unknown function 'no_such_fn'" } });
	h_run_want(fail, 20000, &(struct h_want){ .rc = 1, .err_has = { "boom" } });
	h_run_want(
	    badj, 20000, &(struct h_want){ .rc = 2, .err_has = { "--args" } });

	/* plain words stay strings, JSON is JSON ... */
	h_run_want(words, 20000,
	    &(struct h_want){ .out_is = "[\"hello\",\"true-ish\",-3,[1,2],"
	                                "\"x y\",\"-v\",true,"
	                                "\"2024-01-01\"]\n" });

	/* ... and an ARG that starts like JSON but is not is an error
	 * naming it and the offset, nothing is sent */
	for (size_t i = 0; i < sizeof(bad_args) / sizeof(bad_args[0]); i++) {
		const char *argv_[] = { "submit", "-c", url, "echo", "ok",
			bad_args[i].arg, NULL };
		char        want[64];
		snprintf(want, sizeof(want), "offset %d:", bad_args[i].offset);
		h_run_want(argv_, 20000,
		    &(struct h_want){ .rc = 2,
		        .out_is           = "",
		        .err_has = { "argument 2", bad_args[i].arg, want } });
	}
}

/* A bad cluster file's cluster came up after all: take it down before the
 * test fails, so no process outlives it. */
static void
bad_cluster_down(const char *path)
{
	const char *down[] = { "cluster", "down", "-f", path, NULL };
	char       *out = NULL, *err = NULL;
	(void)h_run(down, 60000, &out, &err);
	free(out);
	free(err);
}

/* cluster up -f path refuses the file: exit non-zero, stderr holding say
 * and also (if not NULL), and no process mentioning the file left. */
static void
up_refused(const char *path, const char *say, const char *also)
{
	const char *up[] = { "cluster", "up", "-f", path, NULL };
	char       *out = NULL, *err = NULL, why[4096];
	pid_t       left[4];
	int         rc = h_run(up, 20000, &out, &err), ok;

	if (rc == 0)
		bad_cluster_down(path); /* never leave it running */
	ok = rc != 0 && strstr(err, say) != NULL &&
	    (also == NULL || strstr(err, also) != NULL);
	snprintf(why, sizeof(why), "cluster up: exit %d, said: %s", rc, err);
	free(out);
	free(err);
	if (!ok)
		fail_msg("%s", why);
	assert_int_equal(pids_mentioning(path, left, 4), 0);
}

/* Write the cluster file path of cluster "bad" with its state in
 * statedir: the lines after "scheduler:" as fmt says (printf-style),
 * then one worker group with the library lib. */
static void
write_bad(const char *path, const char *statedir, const char *lib,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
write_bad(const char *path, const char *statedir, const char *lib,
    const char *fmt, ...)
{
	char    sched[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sched, sizeof(sched), fmt, ap);
	va_end(ap);
	h_write_file(path, 0644,
	    "cluster:\n"
	    "  name: bad\n"
	    "  state_dir: %s\n"
	    "scheduler:\n"
	    "%s"
	    "workers:\n"
	    "  - name: main\n"
	    "    libraries: [%s]\n",
	    statedir, sched, lib);
}

/* Invalid cluster files: a clear file:line:column error, exit non-zero,
 * and nothing started. */
static void
test_bad_cluster_file(void **state)
{
	char        path[512], statedir[512], tcp[128];
	struct stat st;
	(void)state;

	snprintf(path, sizeof(path), "%s/bad.yaml", h_dir());
	snprintf(statedir, sizeof(statedir), "%s/state-bad", h_dir());
	write_bad(path, statedir, "ferry_examples",
	    "  listen: [ipc://%s/bad.sock]\n"
	    "  heartbeat_timeout: soon\n",
	    h_dir());
	up_refused(path, "bad.yaml:6:", "heartbeat_timeout");
	assert_int_not_equal(stat(statedir, &st), 0); /* nothing started */

	/* a library that does not exist is caught before anything starts */
	write_bad(path, statedir, "no_such_library",
	    "  listen: [ipc://%s/bad.sock]\n", h_dir());
	up_refused(path, "no_such_library", NULL);
	assert_int_not_equal(stat(statedir, &st), 0);

	/* a TLS address with no CA to check the scheduler: said before
	 * waiting, and nothing is left running */
	h_tcp_url(tcp, sizeof(tcp)); /* tcp://127.0.0.1:PORT */
	write_bad(path, statedir, "ferry_examples",
	    "  listen: [tls+%s]\n"
	    "security:\n"
	    "  tls:\n"
	    "    cert_key_file: %s/no-such-server.pem\n",
	    tcp, h_dir());
	up_refused(path, "give the CA", NULL);

	/* a scheduler that cannot start (it cannot listen there) is
	 * reported at once with its log, and nothing is left running */
	write_bad(path, statedir, "ferry_examples",
	    "  listen: [ipc://%s/no-such-dir/bad.sock]\n", h_dir());
	up_refused(path, "the scheduler exited at start", "no-such-dir");
}

/* Every command answers --help with its usage and exits 0. */
static void
test_help(void **state)
{
	static const char *cmds[][3] = {
		{ "--help", NULL, NULL },
		{ "scheduler", "--help", NULL },
		{ "worker", "--help", NULL },
		{ "cluster", "--help", NULL },
		{ "submit", "--help", NULL },
		{ "status", "--help", NULL },
		{ "bench", "--help", NULL },
	};
	static const char *wh[]  = { "worker", "--help", NULL };
	static const char *bad[] = { "frobnicate", NULL };
	(void)state;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		h_run_want(cmds[i], 10000,
		    &(struct h_want){ .out_has = { "usage: ferry" } });
	/* the prefetch default it states is the one it uses (and
	 * docs/configuration.md gives): 1024, not 64 */
	h_run_want(wh, 10000,
	    &(struct h_want){ .out_has = { "running ones (default 1024)" } });
	h_run_want(bad, 10000,
	    &(struct h_want){
	        .rc = 2, .err_has = { "unknown command 'frobnicate'" } });
}

/* submit and status where no scheduler listens (an ipc path nothing
 * listens on, a free TCP port): exit status 3 and "no scheduler at
 * ADDRESS: connection refused", at once (the design target is within
 * 1 s; the bound here is generous for a busy machine), not "no answer"
 * after the 5-10 s connect timeout. */
static void
test_no_scheduler(void **state)
{
	char urls[2][128];
	(void)state;
	h_ipc_url(urls[0], sizeof(urls[0]), "nobody");
	h_tcp_url(urls[1], sizeof(urls[1]));
	for (int u = 0; u < 2; u++) {
		const char *cmds[][7] = {
			{ "submit", "-c", urls[u], "add", "2", "3", NULL },
			{ "status", "-c", urls[u], NULL },
			{ "status", "-c", urls[u], "--json", NULL },
		};
		for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
			char    *out = NULL, *err = NULL, want[512];
			uint64_t t0  = util_now_ms(), took;
			int      rc  = h_run(cmds[i], 20000, &out, &err);
			took         = util_now_ms() - t0;
			snprintf(want, sizeof(want),
			    "ferry %s: no scheduler at %s: connection refused\n",
			    cmds[i][0], urls[u]);
			if (rc != 3 || strcmp(err, want) != 0)
				fail_msg("%s -c %s: exit %d after %llu ms, "
				         "said: %s",
				    cmds[i][0], urls[u], rc,
				    (unsigned long long)took, err);
			printf("# %s -c %s: exit 3 after %llu ms\n", cmds[i][0],
			    urls[u], (unsigned long long)took);
			assert_true(took < 5000);
			assert_string_equal(out, "");
			free(out);
			free(err);
		}
	}
	/* --help documents it */
	{
		const char *cmds[][3] = { { "submit", "--help", NULL },
			{ "status", "--help", NULL } };
		for (int i = 0; i < 2; i++)
			h_run_want(cmds[i], 10000,
			    &(struct h_want){ .out_has = { "3 if no scheduler" } });
	}
}

/* ferry status against a live scheduler shows workers and counters. */
static void
test_status(void **state)
{
	char        url[128], *out = NULL, *err = NULL;
	const char *st[]  = { "status", "-c", NULL, NULL };
	const char *stj[] = { "status", "-c", NULL, "--json", NULL };
	(void)state;
	h_ipc_url(url, sizeof(url), "status");
	ferry_client_close(h_cluster(url, NULL, 2, NULL));
	st[2] = stj[2] = url;
	h_run_want(st, 10000,
	    &(struct h_want){ .out_has = { "2 process(es), 2 slot(s)",
	                          "0 queued", "WORKER" } });
	h_run_want(stj, 10000,
	    &(struct h_want){
	        .out_has = { "\"workers\":2", "\"worker_list\":[" } });
	{
		/* --counters: the counter table's view, one line per row
		 * (name, kind, value, meaning) */
		static const struct {
			const char *name, *kind;
		} rows[] = {
#define X(name, kind, width, doc) { #name, #kind },
			FERRY_STATUS_FIELDS(X)
#undef X
		};
		const char *stc[] = { "status", "-c", url, "--counters", NULL };
		const char *both[] = { "status", "-c", url, "--counters",
			"--json", NULL };
		assert_int_equal(h_run(stc, 10000, &out, &err), 0);
		for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
			char        want[64];
			const char *at;
			snprintf(want, sizeof(want), "\n%s ", rows[i].name);
			if ((at = strstr(out, want)) == NULL)
				fail_msg("--counters lacks %s:\n%s", rows[i].name,
				    out);
			assert_non_null(strstr(at, strcmp(rows[i].kind, "GAUGE")
			            == 0 ? "gauge" : "counter"));
		}
		assert_non_null(strstr(out, "\nworkers "));
		assert_non_null(strstr(out, " 2  Registered workers\n"));
		free(out);
		free(err);
		h_run_want(
		    both, 10000, &(struct h_want){ .rc = 2, .err_has = { "not both" } });
	}
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_help, h_teardown),
		cmocka_unit_test_teardown(test_submit, h_teardown),
		cmocka_unit_test_teardown(test_status, h_teardown),
		cmocka_unit_test_teardown(test_no_scheduler, h_teardown),
		cmocka_unit_test_teardown(test_bad_cluster_file, h_teardown),
		cmocka_unit_test_teardown(test_cluster_up_down, h_teardown),
	};
	h_init(argc, argv);
	return H_RUN_TESTS(tests, NULL);
}
