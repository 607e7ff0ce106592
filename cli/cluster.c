/*
 * cluster.c - `ferry cluster up|down|status -f FILE`.
 *
 * up starts the scheduler and one worker supervisor per group in the
 * background (each in its own session, logging to the state directory),
 * records their pids and the address in DIR/cluster.state, and returns
 * when every expected worker process has registered.  down asks the
 * supervisors to drain, waits up to the drain timeout, stops the
 * scheduler, and kills whatever is left.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "ferry/ferry.h"
#include "util.h"
#include "worker.h"

#define MAX_PROCS (CONF_MAX_GROUPS + 1)

struct state {
	char  config[4096];
	char  address[1024];
	pid_t scheduler;
	char  groups[CONF_MAX_GROUPS][64];
	pid_t workers[CONF_MAX_GROUPS];
	int   n_workers;
};

static void
cluster_usage(FILE *out)
{
	fprintf(out,
	    "usage: ferry cluster up|down|status -f FILE [--timeout SECONDS]\n"
	    "\n"
	    "  up      start the scheduler and every worker group of FILE in "
	    "the\n"
	    "          background; returns once all worker processes have\n"
	    "          registered (or fails, stopping what it started)\n"
	    "  down    drain the workers (running tasks finish, up to the "
	    "file's\n"
	    "          drain_timeout), stop the scheduler, leave no process\n"
	    "  status  show the recorded processes and the scheduler's "
	    "status\n"
	    "\n"
	    "  -f, --file FILE      the cluster file (default "
	    "config/local.yaml)\n"
	    "  -t, --timeout S      how long up waits for workers (default: "
	    "the\n"
	    "                       file's connect_timeout)\n"
	    "  -h, --help           show this help\n"
	    "\n"
	    "Pids, addresses and logs live in the state directory "
	    "(cluster.state_dir,\n"
	    "default $XDG_RUNTIME_DIR/ferry/NAME or /tmp/ferry-UID/NAME).\n");
}

static int
mkdir_p(const char *path)
{
	char   buf[4096];
	size_t n = strlen(path);
	if (n >= sizeof(buf))
		return -1;
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] == '/' || buf[i] == '\0') {
			char c = buf[i];
			buf[i] = '\0';
			if (mkdir(buf, 0700) != 0 && errno != EEXIST)
				return -1;
			buf[i] = c;
		}
	}
	return 0;
}

static int
state_write(const char *dir, const struct state *st)
{
	char  path[4200], tmp[4210];
	FILE *f;
	snprintf(path, sizeof(path), "%s/cluster.state", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL)
		return -1;
	fprintf(f, "config %s\naddress %s\nscheduler %d\n", st->config,
	    st->address, (int)st->scheduler);
	for (int i = 0; i < st->n_workers; i++)
		fprintf(f, "worker %s %d\n", st->groups[i], (int)st->workers[i]);
	if (fclose(f) != 0)
		return -1;
	return rename(tmp, path);
}

/* Returns 0 and fills st, 1 if there is no state, -1 on a bad file. */
static int
state_read(const char *dir, struct state *st)
{
	char  path[4200], line[5200];
	FILE *f;
	memset(st, 0, sizeof(*st));
	snprintf(path, sizeof(path), "%s/cluster.state", dir);
	if ((f = fopen(path, "r")) == NULL)
		return errno == ENOENT ? 1 : -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *nl = strchr(line, '\n');
		int   pid;
		if (nl != NULL)
			*nl = '\0';
		if (strncmp(line, "config ", 7) == 0)
			util_strlcpy(st->config, line + 7, sizeof(st->config));
		else if (strncmp(line, "address ", 8) == 0)
			util_strlcpy(st->address, line + 8, sizeof(st->address));
		else if (sscanf(line, "scheduler %d", &pid) == 1)
			st->scheduler = pid;
		else if (strncmp(line, "worker ", 7) == 0 &&
		    st->n_workers < CONF_MAX_GROUPS) {
			char *sp = strrchr(line + 7, ' ');
			if (sp == NULL)
				continue;
			*sp = '\0';
			util_strlcpy(st->groups[st->n_workers], line + 7,
			    sizeof(st->groups[0]));
			st->workers[st->n_workers++] = atoi(sp + 1);
		}
	}
	fclose(f);
	return 0;
}

static void
state_remove(const char *dir)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/cluster.state", dir);
	unlink(path);
}

/* Stop a process group led by pid: TERM, wait, KILL. */
static void
stop_group(pid_t pid, int timeout_ms, const char *what)
{
	if (!cli_pid_is_ferry(pid))
		return;
	kill(pid, SIGTERM);
	if (cli_wait_gone(pid, timeout_ms) != 0) {
		fprintf(stderr, "ferry cluster: %s (pid %d) did not stop within "
		                "%d ms: killing it\n",
		    what, (int)pid, timeout_ms);
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		cli_wait_gone(pid, 2000);
	}
	/* anything left in its session (worker processes) goes too */
	kill(-pid, SIGKILL);
}

static int
stop_all(const struct state *st, const struct conf *c)
{
	int drain = c != NULL ? (int)c->drain_timeout_ms : 10000;
	for (int i = 0; i < st->n_workers; i++)
		if (cli_pid_is_ferry(st->workers[i]))
			kill(st->workers[i], SIGTERM);
	for (int i = 0; i < st->n_workers; i++)
		stop_group(st->workers[i], drain + 3000, "worker supervisor");
	stop_group(st->scheduler, 5000, "scheduler");
	return 0;
}

static int
expected_processes(const struct conf *c)
{
	int n = 0;
	for (size_t i = 0; i < c->n_groups; i++)
		n += c->groups[i].processes > 0 ? c->groups[i].processes
		                                : cli_ncpu();
	return n;
}

static int
cluster_up(const struct conf *c, const char *dir, long timeout_s)
{
	struct state        st;
	char                log[4200], err[1024], path[4096];
	const char         *argv[16];
	ferry_client       *cl = NULL;
	struct ferry_status fs;
	int                 rv, want = expected_processes(c);
	uint64_t            deadline;

	rv = state_read(dir, &st);
	if (rv == 0 && cli_pid_is_ferry(st.scheduler)) {
		fprintf(stderr,
		    "ferry cluster: cluster '%s' is already up (scheduler pid "
		    "%d at %s); run 'ferry cluster down -f %s' first\n",
		    c->name, (int)st.scheduler, st.address, c->path);
		return 1;
	}
	/* every library must be found before anything starts */
	for (size_t g = 0; g < c->n_groups; g++)
		for (size_t i = 0; i < c->groups[g].n_libraries; i++)
			if (wrk_library_resolve(c->groups[g].libraries[i],
			        c->dir, path, sizeof(path), err,
			        sizeof(err)) != 0) {
				fprintf(stderr,
				    "ferry cluster: group '%s': %s\n",
				    c->groups[g].name, err);
				return 1;
			}
	if (mkdir_p(dir) != 0) {
		fprintf(stderr, "ferry cluster: cannot create state directory "
		                "%s: %s\n",
		    dir, strerror(errno));
		return 1;
	}
	memset(&st, 0, sizeof(st));
	util_strlcpy(st.config, c->path, sizeof(st.config));
	util_strlcpy(st.address, c->address, sizeof(st.address));

	snprintf(log, sizeof(log), "%s/scheduler.log", dir);
	argv[0] = "ferry";
	argv[1] = "scheduler";
	argv[2] = "-f";
	argv[3] = c->path;
	argv[4] = NULL;
	if ((st.scheduler = cli_spawn(argv, log)) < 0)
		return 1;
	if (state_write(dir, &st) != 0)
		fprintf(stderr, "ferry cluster: cannot write %s/cluster.state: "
		                "%s\n",
		    dir, strerror(errno));
	rv = ferry_client_connect(&cl, c->address, (int)c->connect_timeout_ms);
	if (rv != 0) {
		fprintf(stderr,
		    "ferry cluster: the scheduler did not answer at %s within "
		    "%u ms: %s\n",
		    c->address, c->connect_timeout_ms, ferry_strerror(rv));
		cli_tail_log(log, 15);
		stop_all(&st, c);
		state_remove(dir);
		return 1;
	}
	for (size_t g = 0; g < c->n_groups; g++) {
		snprintf(log, sizeof(log), "%s/worker-%s.log", dir,
		    c->groups[g].name);
		argv[0] = "ferry";
		argv[1] = "worker";
		argv[2] = "-f";
		argv[3] = c->path;
		argv[4] = "--group";
		argv[5] = c->groups[g].name;
		argv[6] = NULL;
		util_strlcpy(st.groups[st.n_workers], c->groups[g].name,
		    sizeof(st.groups[0]));
		st.workers[st.n_workers] = cli_spawn(argv, log);
		if (st.workers[st.n_workers] < 0) {
			ferry_client_close(cl);
			stop_all(&st, c);
			state_remove(dir);
			return 1;
		}
		st.n_workers++;
		state_write(dir, &st);
	}

	deadline = util_now_ms() +
	    (timeout_s > 0 ? (uint64_t)timeout_s * 1000
	                   : c->connect_timeout_ms);
	memset(&fs, 0, sizeof(fs));
	fs.size = sizeof(fs);
	for (;;) {
		int dead = -1;
		if (ferry_cluster_status(cl, &fs, NULL, 2000) == 0 &&
		    (int)fs.workers >= want)
			break;
		for (int i = 0; i < st.n_workers; i++) {
			/* our own child: only its exit status says it is
			 * gone (its command line can read empty while it
			 * is still starting) */
			int status;
			if (waitpid(st.workers[i], &status, WNOHANG) ==
			    st.workers[i])
				dead = i;
		}
		if (dead >= 0 || util_now_ms() >= deadline) {
			if (dead >= 0)
				fprintf(stderr,
				    "ferry cluster: worker group '%s' exited "
				    "while starting\n",
				    st.groups[dead]);
			else
				fprintf(stderr,
				    "ferry cluster: only %u of %d worker "
				    "processes registered in time\n",
				    fs.workers, want);
			for (int i = 0; i < st.n_workers; i++) {
				snprintf(log, sizeof(log), "%s/worker-%s.log",
				    dir, st.groups[i]);
				cli_tail_log(log, 10);
			}
			ferry_client_close(cl);
			stop_all(&st, c);
			state_remove(dir);
			return 1;
		}
		usleep(50000);
	}
	ferry_client_close(cl);
	printf("cluster '%s' is up: scheduler pid %d at %s, %u worker "
	       "process(es), %u slot(s)\n",
	    c->name, (int)st.scheduler, c->address, fs.workers, fs.slots);
	for (int i = 0; i < st.n_workers; i++)
		printf("  group %-16s supervisor pid %d\n", st.groups[i],
		    (int)st.workers[i]);
	printf("state and logs: %s\n", dir);
	return 0;
}

static int
cluster_down(const struct conf *c, const char *dir)
{
	struct state st;
	int          rv = state_read(dir, &st);
	if (rv == 1) {
		printf("cluster '%s' is not up (no %s/cluster.state)\n", c->name,
		    dir);
		return 0;
	}
	if (rv != 0) {
		fprintf(stderr, "ferry cluster: cannot read %s/cluster.state: "
		                "%s\n",
		    dir, strerror(errno));
		return 1;
	}
	stop_all(&st, c);
	state_remove(dir);
	printf("cluster '%s' is down\n", c->name);
	return 0;
}

static int
cluster_status(const struct conf *c, const char *dir)
{
	struct state st;
	int          rv = state_read(dir, &st), up;
	char        *argv[4];
	if (rv != 0) {
		printf("cluster '%s' is not up\n", c->name);
		return 1;
	}
	up = cli_pid_is_ferry(st.scheduler);
	printf("cluster '%s' (%s)\n", c->name, st.config);
	printf("  scheduler pid %d: %s\n", (int)st.scheduler,
	    up ? "running" : "NOT RUNNING");
	for (int i = 0; i < st.n_workers; i++)
		printf("  group %-16s supervisor pid %d: %s\n", st.groups[i],
		    (int)st.workers[i],
		    cli_pid_is_ferry(st.workers[i]) ? "running"
		                                    : "NOT RUNNING");
	if (!up)
		return 1;
	printf("\n");
	fflush(stdout);
	optind  = 1;
	argv[0] = "status";
	argv[1] = "--connect";
	argv[2] = st.address;
	argv[3] = NULL;
	return cmd_status(3, argv);
}

int
cmd_cluster(int argc, char **argv)
{
	const char *file = NULL, *action;
	long        timeout = 0;
	char        dir[4096];
	struct conf c;
	int         rc;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		cluster_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	action = argv[1];
	for (int i = 2; i < argc; i++) {
		if ((strcmp(argv[i], "-f") == 0 ||
		        strcmp(argv[i], "--file") == 0) &&
		    i + 1 < argc)
			file = argv[++i];
		else if ((strcmp(argv[i], "-t") == 0 ||
		             strcmp(argv[i], "--timeout") == 0) &&
		    i + 1 < argc)
			timeout = cli_parse_long("--timeout", argv[++i], 1,
			    86400);
		else if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			cluster_usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "ferry cluster: unexpected argument "
			                "'%s'\n",
			    argv[i]);
			cluster_usage(stderr);
			return 2;
		}
	}
	if (file == NULL)
		file = "config/local.yaml";
	if (cli_load_conf(file, &c) != 0)
		return 1;
	if (conf_state_dir(&c, dir, sizeof(dir)) != 0) {
		fprintf(stderr, "ferry cluster: state directory path too long\n");
		conf_free(&c);
		return 1;
	}
	if (strcmp(action, "up") == 0) {
		/* the cluster outlives this command */
		unsetenv("FERRY_PARENT_DEATHSIG");
		rc = cluster_up(&c, dir, timeout);
	}
	else if (strcmp(action, "down") == 0)
		rc = cluster_down(&c, dir);
	else if (strcmp(action, "status") == 0)
		rc = cluster_status(&c, dir);
	else {
		fprintf(stderr, "ferry cluster: unknown action '%s' (up, down "
		                "or status)\n",
		    action);
		rc = 2;
	}
	conf_free(&c);
	return rc;
}
