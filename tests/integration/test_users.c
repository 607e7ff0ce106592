/*
 * test_users.c - several Ferries on one machine: two users, or two
 * checkouts of one user, each with their own default cluster; and
 * `cluster down` stopping only the processes `cluster up` started.
 *
 * The shipped config/local.yaml (argv[2]) is brought up twice, as two
 * checkouts' quick starts and a user's own default cluster would: once
 * with FERRY_RUNTIME_DIR set, once with only XDG_RUNTIME_DIR.  Taking one
 * down must leave the other working.  Then a state file whose pids now
 * belong to unrelated processes (a `sleep` whose command line says
 * "ferry", with another start time) must not get them signalled, here or
 * through the SSH path.
 *
 * FERRY_RUNTIME_DIR and XDG_RUNTIME_DIR point into the test's private
 * directory from the start: the runtime directory of whoever runs the
 * test, and any cluster of theirs, is never named.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ferry/ferry.h"
#include "harness.h"
#include "util.h"

extern char **environ;

static const char *local_yaml; /* the shipped config/local.yaml */

/* Processes this test starts itself (impostors), killed by pid at the
 * end of each test. */
static pid_t own[16];
static int   n_own;

/* The two environments: A as a checkout's quick start (its own
 * FERRY_RUNTIME_DIR), B as the user's default (XDG_RUNTIME_DIR only). */
static char rt_a[512], xdg[512];

static void
env_a(void)
{
	assert_int_equal(setenv("FERRY_RUNTIME_DIR", rt_a, 1), 0);
	assert_int_equal(setenv("XDG_RUNTIME_DIR", xdg, 1), 0);
	unsetenv("FERRY_ADDRESS");
}

static void
env_b(void)
{
	unsetenv("FERRY_RUNTIME_DIR");
	assert_int_equal(setenv("XDG_RUNTIME_DIR", xdg, 1), 0);
	unsetenv("FERRY_ADDRESS");
}

/* Run the ferry binary; returns its exit status, output in out/err
 * (freed by the caller). */
static int
run(const char *const *args, char **out, char **err)
{
	return h_run(args, 90000, out, err);
}

/* Run the ferry binary, which must succeed (what names the run in the
 * failure message); returns its output (freed by the caller). */
static char *
run_ok(const char *const *args, const char *what)
{
	char *out = NULL, *err = NULL;
	if (run(args, &out, &err) != 0)
		fail_msg("%s: %s%s", what, out, err);
	free(err);
	return out;
}

/* `ferry cluster down -f FILE` in the current environment, quietly. */
static void
down_quiet(const char *file)
{
	const char *down[] = { "cluster", "down", "-f", file, NULL };
	char       *out = NULL, *err = NULL;
	(void)run(down, &out, &err);
	free(out);
	free(err);
}

static int
teardown(void **state)
{
	/* whatever a failed test left up, by the pids its state records */
	env_a();
	down_quiet(local_yaml);
	env_b();
	down_quiet(local_yaml);
	for (int i = 0; i < n_own; i++) {
		kill(own[i], SIGKILL);
		waitpid(own[i], NULL, 0);
	}
	n_own = 0;
	return h_teardown(state);
}

/* Field 22 of /proc/PID/stat: the start time, in clock ticks. */
static uint64_t
start_time(pid_t pid)
{
	struct util_proc_stat ps;
	assert_int_equal(util_proc_stat(pid, &ps), 0);
	return ps.start;
}

static void
boot_id(char *buf, size_t len)
{
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, (int)len, f));
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
}

/* Start `sleep 300` under a name that says ferry (as an editor open on
 * ferry.c would); it is recorded for the teardown. */
static pid_t
impostor(void)
{
	char *const argv[] = { "ferry-impostor", "300", NULL };
	pid_t       pid;
	assert_int_equal(posix_spawnp(&pid, "sleep", NULL, NULL, argv,
	                     environ),
	    0);
	own[n_own++] = pid;
	/* its start time is there from the fork; wait for the exec so that
	 * its command line says what we mean */
	for (int i = 0; i < 500; i++) {
		char  path[64], buf[64] = "";
		FILE *f;
		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
		if ((f = fopen(path, "r")) != NULL) {
			size_t n = fread(buf, 1, sizeof(buf) - 1, f);
			buf[n]   = '\0';
			fclose(f);
		}
		if (strcmp(buf, "ferry-impostor") == 0)
			return pid;
		usleep(10000);
	}
	fail_msg("sleep %d never ran as ferry-impostor", (int)pid);
	return -1;
}

/* Pids the cluster.state in dir records: the scheduler's, then each
 * local supervisor's; returns how many. */
static int
state_pids(const char *dir, pid_t *pids, int max)
{
	char  path[700], line[1024];
	FILE *f;
	int   n = 0, pid;
	snprintf(path, sizeof(path), "%s/cluster.state", dir);
	f = fopen(path, "r");
	if (f == NULL)
		fail_msg("no %s", path);
	while (fgets(line, sizeof(line), f) != NULL && n < max) {
		char group[128];
		if (sscanf(line, "scheduler %d", &pid) == 1 ||
		    sscanf(line, "supervisor %127s %d", group, &pid) == 2)
			pids[n++] = pid;
	}
	fclose(f);
	return n;
}

/* `ferry submit add 2 3` without an address (the default cluster of the
 * current environment) prints 5. */
static void
submit_default(const char *who)
{
	const char *add[] = { "submit", "add", "2", "3", NULL };
	char       *out = NULL, *err = NULL;
	int         rc  = run(add, &out, &err);
	if (rc != 0 || strcmp(out, "5\n") != 0)
		fail_msg("%s: ferry submit add 2 3: exit %d, out '%s', err "
		         "'%s'",
		    who, rc, out, err);
	free(out);
	free(err);
}

/*
 * Two default clusters of config/local.yaml, one per runtime directory
 * (a checkout's quick start, and the user's own): both come up and
 * answer their own default address; a down of the other cluster file of
 * the same name refuses; one taken down, the other still answers and
 * every process of it is alive.
 */
static void
test_two_default_clusters(void **state)
{
	const char   *up[]   = { "cluster", "up", "-f", NULL, NULL };
	const char   *down[] = { "cluster", "down", "-f", NULL, NULL };
	char          dir_a[700], dir_b[700], url_b[700], other[700];
	char          cmd[2048], *out = NULL, *err = NULL;
	pid_t         pa[8], pb[8], wb[16];
	int           na, nb, nw, rc;
	ferry_client *c;
	(void)state;

	up[3] = down[3] = local_yaml;
	snprintf(dir_a, sizeof(dir_a), "%s/local", rt_a);
	snprintf(dir_b, sizeof(dir_b), "%s/ferry/local", xdg);
	snprintf(url_b, sizeof(url_b), "ipc://%s/ferry/local.sock", xdg);

	env_a();
	out = run_ok(up, "up A");
	assert_non_null(strstr(out, rt_a));
	free(out);
	env_b();
	out = run_ok(up, "up B (while A is up)");
	assert_non_null(strstr(out, url_b));
	free(out);

	env_a();
	submit_default("A");
	env_b();
	submit_default("B");

	na = state_pids(dir_a, pa, 8);
	nb = state_pids(dir_b, pb, 8);
	assert_int_equal(na, 2);
	assert_int_equal(nb, 2);
	c = h_connect(url_b);
	assert_non_null(c);
	nw = h_worker_pids(c, wb, 16);
	ferry_client_close(c);
	assert_true(nw >= 1);

	/* the same cluster name from another file: not this file's cluster */
	snprintf(other, sizeof(other), "%s/other", h_dir());
	mkdir(other, 0700);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s/local.yaml'", local_yaml,
	    other);
	assert_int_equal(system(cmd), 0);
	snprintf(other + strlen(other), sizeof(other) - strlen(other),
	    "/local.yaml");
	{
		const char *down_other[] = { "cluster", "down", "-f", other,
			NULL };
		rc = run(down_other, &out, &err);
		assert_int_equal(rc, 1);
		if (strstr(err, "was started from") == NULL)
			fail_msg("want 'was started from': %s", err);
		free(out);
		free(err);
	}

	env_a();
	free(run_ok(down, "down A"));
	for (int i = 0; i < na; i++)
		if (h_alive(pa[i]))
			fail_msg("A's pid %d outlived its down", (int)pa[i]);

	/* B: every process alive, and it still works */
	for (int i = 0; i < nb; i++)
		if (!h_alive(pb[i]))
			fail_msg("B's pid %d died with A's down", (int)pb[i]);
	for (int i = 0; i < nw; i++)
		if (!h_alive(wb[i]))
			fail_msg("B's worker pid %d died with A's down",
			    (int)wb[i]);
	env_b();
	submit_default("B after A's down");

	free(run_ok(down, "down B"));
	for (int i = 0; i < nb; i++)
		assert_false(h_alive(pb[i]));
}

/* Write a fake ssh that runs the command here: `fakessh HOST -- CMD`. */
static void
write_fake_ssh(const char *path)
{
	h_write_file(path, 0755,
	    "#!/bin/sh\nshift\n[ \"$1\" = -- ] && shift\n"
	    "exec sh -c \"$*\"\n");
}

/*
 * A state file whose recorded pids now belong to unrelated processes
 * (each a `sleep` named ferry-impostor: its command line says "ferry",
 * its start time is another, or a line of an older ferry has none):
 * `cluster down` signals none of them, on this machine or through SSH,
 * and says so for each; the ones recorded with their true start time
 * are stopped.
 */
static void
test_reused_pids_not_signalled(void **state)
{
	const char *down[] = { "cluster", "down", "-f", NULL, NULL };
	char        file[700], real[4096], fake[700], sdir[700], path[800];
	char        boot[64], *out = NULL, *err = NULL;
	pid_t       sched, sup, rsup, mine, rmine, legacy;
	int         rc, left;
	(void)state;

	env_a();
	snprintf(fake, sizeof(fake), "%s/fakessh", h_dir());
	write_fake_ssh(fake);
	snprintf(sdir, sizeof(sdir), "%s/state-reuse", h_dir());
	assert_int_equal(mkdir(sdir, 0700), 0);
	snprintf(file, sizeof(file), "%s/reuse.yaml", h_dir());
	h_write_file(file, 0644,
	    "cluster: {name: reuse, state_dir: '%s'}\n"
	    "scheduler:\n  listen: ipc://%s/reuse.sock\n"
	    "  drain_timeout: 1s\n"
	    "ssh:\n  command: ['%s']\n"
	    "workers:\n  - name: main\n    libraries: [ferry_examples]\n",
	    sdir, h_dir(), fake);
	assert_non_null(realpath(file, real));
	down[3] = file;

	sched = impostor();
	sup   = impostor();
	rsup  = impostor();
	mine  = impostor();
	rmine = impostor();
	legacy = impostor();
	boot_id(boot, sizeof(boot));
	snprintf(path, sizeof(path), "%s/cluster.state", sdir);
	h_write_file(path, 0644,
	    "config %s\naddress ipc://%s/reuse.sock\nboot %s\n"
	    "scheduler %d %llu\n"
	    "supervisor main %d %llu\n"
	    "supervisor ours %d %llu\n"
	    "worker legacy %d\n"
	    "remote far h1 %d 1 %llu %s\n"
	    "remote near h1 %d 1 %llu %s\n",
	    real, h_dir(), boot,
	    (int)sched, (unsigned long long)start_time(sched) + 1,
	    (int)sup, (unsigned long long)start_time(sup) + 7,
	    (int)mine, (unsigned long long)start_time(mine), (int)legacy,
	    (int)rsup, (unsigned long long)start_time(rsup) + 3, boot,
	    (int)rmine, (unsigned long long)start_time(rmine), boot);

	rc = run(down, &out, &err);
	if (rc != 0)
		fail_msg("down: exit %d: %s%s", rc, out, err);

	/* the impostors live, and down said why it left each alone */
	if (!h_alive(sched) || !h_alive(sup) || !h_alive(rsup) ||
	    !h_alive(legacy))
		fail_msg("a pid another process got was signalled "
		         "(scheduler %s, supervisor %s, remote %s, recorded "
		         "without a start time %s): %s%s",
		    h_alive(sched) ? "alive" : "KILLED",
		    h_alive(sup) ? "alive" : "KILLED",
		    h_alive(rsup) ? "alive" : "KILLED",
		    h_alive(legacy) ? "alive" : "KILLED", out, err);
	if (strstr(err, "the scheduler (pid") == NULL ||
	    strstr(err, "the worker supervisor of group 'main' (pid") ==
	        NULL ||
	    strstr(err, "host 'h1': the supervisor of group 'far' (pid") ==
	        NULL ||
	    strstr(err, "group 'legacy' (pid") == NULL ||
	    strstr(err, "without its start time") == NULL)
		fail_msg("down should name each process it left alone: %s",
		    err);
	left = 0;
	for (const char *p = err; (p = strstr(p, "not signalled")) != NULL;
	     p++)
		left++;
	if (left != 4)
		fail_msg("want 4 processes left alone, got %d: %s", left, err);
	/* the ones recorded right were stopped, here and over "ssh" */
	assert_false(h_alive(mine));
	assert_false(h_alive(rmine));
	free(out);
	free(err);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_two_default_clusters, teardown),
		cmocka_unit_test_teardown(test_reused_pids_not_signalled,
		    teardown),
	};
	if (argc < 3) {
		fprintf(stderr, "usage: %s FERRY_BINARY LOCAL_YAML\n", argv[0]);
		return 2;
	}
	local_yaml = argv[2];
	h_init(argc, argv);
	/* never the runtime directory of whoever runs this */
	snprintf(rt_a, sizeof(rt_a), "%s/rt-a", h_dir());
	snprintf(xdg, sizeof(xdg), "%s/xdg", h_dir());
	if (mkdir(xdg, 0700) != 0) {
		perror(xdg);
		return 2;
	}
	env_a();
	return H_RUN_TESTS(tests, NULL);
}
