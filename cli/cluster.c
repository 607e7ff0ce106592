/*
 * cluster.c - `ferry cluster up|down|status -f FILE`.
 *
 * up starts the scheduler and one worker supervisor per group in the
 * background (each in its own session, logging to the state directory),
 * records their pids and the address in DIR/cluster.state, and returns
 * when every expected worker process has registered.  down asks the
 * supervisors to drain, waits up to the drain timeout, stops the
 * scheduler, and kills whatever is left.
 *
 * Groups with hosts (and a scheduler with a host) run on other machines:
 * each is started over SSH as a detached process (setsid nohup ... &),
 * whose remote pid is recorded; down and status reach it over SSH again
 * by that pid.  Detached, so the cluster does not depend on this machine
 * or on SSH sessions staying up (docs/operations.md, "Many machines").
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <msgpack.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "ferry/ferry.h"
#include "log.h"
#include "util.h"
#include "worker.h"

#define MAX_PROCS (CONF_MAX_GROUPS + 1)
#define MAX_REMOTE 512 /* remote supervisors (group, host) of a cluster */

extern char **environ;

#define BOOT_ID_LEN 40 /* a boot id: 36 characters */

/* A supervisor started on another host. */
struct remote {
	char     group[72];
	char     host[256];
	pid_t    pid;   /* on that host */
	uint64_t start; /* its start time there (see util_proc_stat); 0:
	                 * not recorded */
	char     boot[BOOT_ID_LEN]; /* that host's boot id then */
	int      want;  /* worker processes it runs */
	int      got;   /* registered (filled by count_registered) */
};

/*
 * What cluster up started, as DIR/cluster.state records it.  Every pid
 * goes with its start time, so that down and status never take a
 * process that later got the same pid for one of ours; and with the boot
 * id of its machine, so that nothing recorded before a restart is.
 */
struct state {
	char     config[4096];
	char     address[1024];
	char     boot[BOOT_ID_LEN]; /* this machine's boot id when written */
	pid_t    scheduler;
	uint64_t sched_start;
	char     sched_host[256]; /* "": this machine */
	char     sched_boot[BOOT_ID_LEN]; /* sched_host's boot id */
	char     groups[CONF_MAX_GROUPS][64];
	pid_t    workers[CONF_MAX_GROUPS];
	uint64_t wstart[CONF_MAX_GROUPS];
	int      n_workers;
	struct remote remote[MAX_REMOTE];
	int      n_remote;
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
	    "          drain_timeout), stop the scheduler, leave no process;\n"
	    "          only the processes up started are signalled (each is\n"
	    "          recorded with its start time: a pid another process "
	    "got\n"
	    "          since is left alone, and down says so)\n"
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
	    "default RUNTIME/NAME), and so does the scheduler's journal when "
	    "its\n"
	    "path is relative.  RUNTIME is your own runtime directory,\n"
	    "$FERRY_RUNTIME_DIR, else $XDG_RUNTIME_DIR/ferry, else "
	    "/tmp/ferry-UID;\n"
	    "${FERRY_RUNTIME_DIR} in the file's listen, address, state_dir and "
	    "journal\n"
	    "path is replaced by it.  Two users, or two runs with different\n"
	    "FERRY_RUNTIME_DIR, never share a cluster.\n"
	    "\n"
	    "Groups with 'hosts' (and a scheduler with a 'host') run on other\n"
	    "machines: started over SSH (the file's ssh.command, key-based\n"
	    "only) as detached processes whose remote pids are recorded; down\n"
	    "and status reach them over SSH by those pids.  Remote logs are in\n"
	    "RUNTIME/NAME/HOST on each host, RUNTIME being $FERRY_RUNTIME_DIR "
	    "there,\n"
	    "else /tmp/ferry-UID.  See docs/operations.md, \"Many "
	    "machines\".\n");
}

/* ------------------------------------------------ per-user defaults */

#define IPC_PATH_MAX 107 /* sizeof(sun_path) - 1 */

const char *
cli_default_address(void)
{
	static char url[4096 + 32];
	char        rt[4096];
	const char *own = getenv("FERRY_RUNTIME_DIR");

	if (url[0] != '\0')
		return url;
	if (util_runtime_dir(rt, sizeof(rt)) != 0) {
		if (errno == EINVAL)
			fprintf(stderr,
			    "ferry: FERRY_RUNTIME_DIR is '%s', not an absolute "
			    "path (it is the directory of your default "
			    "cluster's socket and state)\n",
			    own != NULL ? own : "");
		else
			fprintf(stderr, "ferry: the runtime directory's path "
			                "is too long\n");
		exit(2);
	}
	if (strlen(rt) + strlen("/local.sock") > IPC_PATH_MAX) {
		fprintf(stderr,
		    "ferry: the default address ipc://%s/local.sock is longer "
		    "than a Unix socket path may be (%d bytes): set "
		    "FERRY_RUNTIME_DIR to a shorter directory, or "
		    "FERRY_ADDRESS\n",
		    rt, IPC_PATH_MAX);
		exit(2);
	}
	snprintf(url, sizeof(url), "ipc://%s/local.sock", rt);
	return url;
}

/*
 * Whether every directory on the way to path (path itself included) is
 * safe from other users: each is owned by us or by root, and one that
 * others may write to is sticky (as /tmp is), so that nobody else can
 * rename a directory of ours away and put one of theirs in its place; a
 * symbolic link on the way must be ours or root's too.  On failure
 * writes why.
 */
static int
path_is_safe(const char *path, char *why, size_t len)
{
	char        p[4096], *slash;
	struct stat sb;
	uid_t       me = geteuid();

	util_strlcpy(p, path, sizeof(p));
	for (;;) {
		const char *at = p[0] != '\0' ? p : "/";
		if (lstat(at, &sb) != 0) {
			snprintf(why, len, "%s: %s", at, strerror(errno));
			return -1;
		}
		if (sb.st_uid != me && sb.st_uid != 0) {
			snprintf(why, len,
			    "%s belongs to user %lu, neither you (%lu) nor "
			    "root",
			    at, (unsigned long)sb.st_uid, (unsigned long)me);
			return -1;
		}
		if (S_ISDIR(sb.st_mode) && (sb.st_mode & 022) != 0 &&
		    (sb.st_mode & S_ISVTX) == 0) {
			snprintf(why, len,
			    "%s may be written by other users (mode %03o) "
			    "and is not sticky",
			    at, (unsigned)(sb.st_mode & 07777));
			return -1;
		}
		if (p[0] == '\0' || (slash = strrchr(p, '/')) == NULL)
			return 0;
		*slash = '\0';
	}
}

/* Create the runtime directory rt (mode 0700, with any directory above
 * it) and check that it is this user's own.  Returns 0, or -1 after
 * printing why. */
static int
runtime_dir_make(const char *rt)
{
	char        why[4400], real[4096];
	struct stat sb;

	if (util_mkdir_p(rt) != 0) {
		fprintf(stderr, "ferry: cannot create the runtime directory "
		                "%s: %s\n",
		    rt, strerror(errno));
		return -1;
	}
	why[0] = '\0';
	if (lstat(rt, &sb) != 0)
		snprintf(why, sizeof(why), "%s", strerror(errno));
	else if (!S_ISDIR(sb.st_mode))
		snprintf(why, sizeof(why), "not a directory");
	else if (sb.st_uid != geteuid())
		snprintf(why, sizeof(why), "it belongs to user %lu, not to "
		                           "you (%lu)",
		    (unsigned long)sb.st_uid, (unsigned long)geteuid());
	else if ((sb.st_mode & 022) != 0)
		snprintf(why, sizeof(why), "other users may write to it "
		                           "(mode %03o)",
		    (unsigned)(sb.st_mode & 07777));
	else if (path_is_safe(rt, why, sizeof(why)) == 0 &&
	    (realpath(rt, real) == NULL ||
	        path_is_safe(real, why, sizeof(why)) == 0))
		return 0;
	if (why[0] == '\0')
		snprintf(why, sizeof(why), "%s", strerror(errno));
	fprintf(stderr,
	    "ferry: the runtime directory %s is not safe to use: %s; set "
	    "FERRY_RUNTIME_DIR to a directory of your own\n",
	    rt, why);
	return -1;
}

int
cli_runtime_dir_ready(const char *const *urls, size_t n)
{
	char   rt[4096];
	size_t rl;

	if (util_runtime_dir(rt, sizeof(rt)) != 0)
		return 0; /* then no URL can name it: the loader said so */
	rl = strlen(rt);
	for (size_t i = 0; i < n; i++)
		if (urls[i] != NULL && strncmp(urls[i], "ipc://", 6) == 0 &&
		    strncmp(urls[i] + 6, rt, rl) == 0 &&
		    urls[i][6 + rl] == '/')
			return runtime_dir_make(rt);
	return 0;
}

/* ------------------------------------------- the processes it started */

/* This machine's boot id into buf ("" if it cannot be read). */
static void
boot_id(char *buf, size_t len)
{
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
	buf[0]  = '\0';
	if (f != NULL) {
		if (fgets(buf, (int)len, f) == NULL)
			buf[0] = '\0';
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
}

/* Fill *start with pid's start time right after cluster up started it
 * (our child: its pid cannot be taken by another process before we reap
 * it). */
static void
record_start(pid_t pid, uint64_t *start)
{
	struct util_proc_stat ps;
	*start = util_proc_stat(pid, &ps) == 0 ? ps.start : 0;
}

/* A process cluster up recorded, that down may signal. */
struct proc {
	pid_t    pid;
	uint64_t start;
	int      fd; /* a pidfd, so that no signal can reach another process
	              * that got the pid; -1 where the kernel has none */
};

/*
 * Take hold of pid if it is still the process cluster up recorded as
 * started at start (clock ticks after boot).  Returns 1 if it is; 0 if
 * it is gone, or if pid is now another process's or was recorded
 * without a start time: then says so, naming it what, and leaves it
 * alone.
 */
static int
proc_hold(struct proc *p, pid_t pid, uint64_t start, const char *what)
{
	struct util_proc_stat ps;
	int                   status;

	p->pid   = pid;
	p->start = start;
	p->fd    = -1;
	if (pid <= 0 || waitpid(pid, &status, WNOHANG) == pid)
		return 0; /* none, or our child and it ended */
#ifdef SYS_pidfd_open
	/* open first: if the check below passes, the descriptor holds the
	 * process it checked (had that one ended and its pid been taken in
	 * between, the check would have seen the newcomer) */
	p->fd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
	if (util_proc_stat(pid, &ps) != 0 || ps.state == 'Z' ||
	    ps.state == 'X') {
		/* gone, or ended and not yet reaped by its parent */
	} else if (start == 0) {
		fprintf(stderr,
		    "ferry cluster: %s (pid %d) was recorded without its "
		    "start time (by an older ferry), so it cannot be told "
		    "from another process that got the pid: not signalled; "
		    "stop it yourself if it is still Ferry's\n",
		    what, (int)pid);
	} else if (ps.start != start) {
		fprintf(stderr,
		    "ferry cluster: %s (pid %d) is gone: pid %d now belongs "
		    "to another process (started at tick %" PRIu64
		    " after boot, ours at %" PRIu64 "): not signalled\n",
		    what, (int)pid, (int)pid, ps.start, start);
	} else
		return 1;
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	return 0;
}

/* Send sig to a held process. */
static void
proc_signal(const struct proc *p, int sig)
{
#ifdef SYS_pidfd_send_signal
	if (p->fd >= 0) {
		syscall(SYS_pidfd_send_signal, p->fd, sig, NULL, 0);
		return;
	}
#endif
	if (cli_pid_is(p->pid, p->start))
		kill(p->pid, sig);
}

/* Wait up to timeout_ms for a held process to end (reaping it if it is
 * our child); returns 0 if it did. */
static int
proc_wait(const struct proc *p, int timeout_ms)
{
	uint64_t end = util_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		int status, ended;
		if (waitpid(p->pid, &status, WNOHANG) == p->pid)
			return 0;
		if (p->fd >= 0) {
			struct pollfd pf = { .fd = p->fd, .events = POLLIN };
			ended = poll(&pf, 1, 0) > 0;
		} else
			ended = !cli_pid_is(p->pid, p->start);
		if (ended) {
			waitpid(p->pid, &status, WNOHANG);
			return 0;
		}
		if (util_now_ms() >= end)
			return -1;
		usleep(20000);
	}
}

/* SIGKILL what is left of the process group a held process leads (its
 * worker processes), unless its pid now belongs to another process: a
 * pid is not given out again while a group of that number has members,
 * so a group whose leader's pid is free or still ours is ours. */
static void
proc_kill_group(const struct proc *p)
{
	struct util_proc_stat ps;
	if (util_proc_stat(p->pid, &ps) == 0 && ps.start != p->start)
		return;
	kill(-p->pid, SIGKILL);
}

/* After SIGTERM: wait up to timeout_ms for a held process, then kill it
 * and its process group; release it. */
static void
proc_stop(struct proc *p, int timeout_ms, const char *what)
{
	if (proc_wait(p, timeout_ms) != 0) {
		fprintf(stderr, "ferry cluster: %s (pid %d) did not stop within "
		                "%d ms: killing it\n",
		    what, (int)p->pid, timeout_ms);
		proc_kill_group(p);
		proc_signal(p, SIGKILL);
		proc_wait(p, 2000);
	}
	/* anything left in its session (worker processes) goes too */
	proc_kill_group(p);
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
}

/* Whether st's local pids are of this boot (a state without a boot id,
 * from an older ferry, is taken to be: its start times decide). */
static int
state_this_boot(const struct state *st)
{
	char now[BOOT_ID_LEN];
	boot_id(now, sizeof(now));
	return st->boot[0] == '\0' || now[0] == '\0' ||
	    strcmp(st->boot, now) == 0;
}

/* Whether st's local scheduler is the running process it recorded. */
static int
sched_is_up(const struct state *st)
{
	return state_this_boot(st) && cli_pid_is(st->scheduler, st->sched_start);
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
	fprintf(f, "config %s\naddress %s\nboot %s\nscheduler %d %" PRIu64
	    "\n",
	    st->config, st->address, st->boot, (int)st->scheduler,
	    st->sched_start);
	/* "supervisor", not the "worker GROUP PID" lines of older ferry
	 * versions: one of those reading this file passes it over rather
	 * than take the start time for the pid */
	for (int i = 0; i < st->n_workers; i++)
		fprintf(f, "supervisor %s %d %" PRIu64 "\n", st->groups[i],
		    (int)st->workers[i], st->wstart[i]);
	if (st->sched_host[0] != '\0')
		fprintf(f, "scheduler_host %s\nscheduler_boot %s\n",
		    st->sched_host, st->sched_boot);
	for (int i = 0; i < st->n_remote; i++)
		fprintf(f, "remote %s %s %d %d %" PRIu64 " %s\n",
		    st->remote[i].group, st->remote[i].host,
		    (int)st->remote[i].pid, st->remote[i].want,
		    st->remote[i].start, st->remote[i].boot);
	if (fclose(f) != 0)
		return -1;
	return rename(tmp, path);
}

/* Returns 0 and fills st, 1 if there is no state, -1 on a bad file.  A
 * pid recorded without a start time (by an older ferry) gets start 0:
 * never taken for one of ours. */
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
		char    *nl = strchr(line, '\n');
		int      pid;
		uint64_t start;
		if (nl != NULL)
			*nl = '\0';
		if (strncmp(line, "config ", 7) == 0)
			util_strlcpy(st->config, line + 7, sizeof(st->config));
		else if (strncmp(line, "address ", 8) == 0)
			util_strlcpy(st->address, line + 8, sizeof(st->address));
		else if (strncmp(line, "boot ", 5) == 0)
			util_strlcpy(st->boot, line + 5, sizeof(st->boot));
		else if (strncmp(line, "scheduler_host ", 15) == 0)
			util_strlcpy(st->sched_host, line + 15,
			    sizeof(st->sched_host));
		else if (strncmp(line, "scheduler_boot ", 15) == 0)
			util_strlcpy(st->sched_boot, line + 15,
			    sizeof(st->sched_boot));
		else if (sscanf(line, "scheduler %d", &pid) == 1) {
			st->scheduler = pid;
			if (sscanf(line, "scheduler %*d %" SCNu64, &start) == 1)
				st->sched_start = start;
		} else if (strncmp(line, "remote ", 7) == 0 &&
		    st->n_remote < MAX_REMOTE) {
			struct remote *r = &st->remote[st->n_remote];
			int            k;
			k = sscanf(line + 7, "%71s %255s %d %d %" SCNu64 " %39s",
			    r->group, r->host, &pid, &r->want, &r->start,
			    r->boot);
			if (k >= 4) {
				if (k < 5)
					r->start = 0;
				if (k < 6)
					r->boot[0] = '\0';
				r->pid = pid;
				st->n_remote++;
			}
		} else if ((strncmp(line, "supervisor ", 11) == 0 ||
		               strncmp(line, "worker ", 7) == 0) &&
		    st->n_workers < CONF_MAX_GROUPS) {
			/* "worker GROUP PID": an older ferry's, no start */
			int k = sscanf(strchr(line, ' ') + 1, "%63s %d %" SCNu64,
			    st->groups[st->n_workers], &pid, &start);
			if (k < 2)
				continue;
			st->workers[st->n_workers]  = pid;
			st->wstart[st->n_workers++] =
			    k == 3 && line[0] == 's' ? start : 0;
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

/* ------------------------------------------------------------ SSH */

/* A growable string for remote scripts. */
struct sbuf {
	char  *p;
	size_t len, cap;
	int    oom;
};

static void
sb_addn(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 1024;
		char  *p;
		while (cap < b->len + n + 1)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL) {
			b->oom = 1;
			return;
		}
		b->p   = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sb_add(struct sbuf *b, const char *s)
{
	sb_addn(b, s, strlen(s));
}

/* Append s single-quoted for a POSIX shell. */
static void
sb_q(struct sbuf *b, const char *s)
{
	sb_add(b, "'");
	for (const char *p = s; *p != '\0'; p++) {
		if (*p == '\'')
			sb_add(b, "'\\''");
		else
			sb_addn(b, p, 1);
	}
	sb_add(b, "'");
}

/* Append " OPT 'VAL'". */
static void
sb_opt(struct sbuf *b, const char *opt, const char *val)
{
	sb_add(b, " ");
	sb_add(b, opt);
	sb_add(b, " ");
	sb_q(b, val);
}

/* One ssh command running in the background, its output captured. */
struct ssh_job {
	pid_t pid;     /* the local ssh process; -1 when not running */
	int   fd[2];   /* its stdout and stderr pipes; -1 when closed */
	char  out[4096];
	char  err[4096];
	size_t n[2];
	int   status;  /* exit status; -1 when it did not run or timed out */
	char  cause[256]; /* why it did not run */
};

/*
 * Start `SSH_COMMAND HOST -- sh -c 'SCRIPT'` with stdin from in_path (or
 * /dev/null).  The remote login shell runs a POSIX sh whatever it is
 * itself.  Returns 0, or -1 with j->cause set.
 */
static int
ssh_start(struct ssh_job *j, const struct conf *c, const char *host,
    const char *script, const char *in_path)
{
	posix_spawn_file_actions_t fa;
	const char                *argv[CONF_MAX_SSH_ARGS + 4];
	struct sbuf                cmd = { 0 };
	int                        p[2][2] = { { -1, -1 }, { -1, -1 } }, rv;
	size_t                     n = 0;

	memset(j, 0, sizeof(*j));
	j->pid    = -1;
	j->fd[0]  = j->fd[1] = -1;
	j->status = -1;
	sb_add(&cmd, "sh -c ");
	sb_q(&cmd, script);
	if (cmd.oom) {
		snprintf(j->cause, sizeof(j->cause), "out of memory");
		return -1;
	}
	for (size_t i = 0; i < c->n_ssh_command; i++)
		argv[n++] = c->ssh_command[i];
	argv[n++] = host;
	argv[n++] = "--";
	argv[n++] = cmd.p;
	argv[n]   = NULL;
	if (pipe2(p[0], O_CLOEXEC) != 0 || pipe2(p[1], O_CLOEXEC) != 0) {
		snprintf(j->cause, sizeof(j->cause), "pipe: %s",
		    strerror(errno));
		for (int i = 0; i < 2; i++)
			for (int k = 0; k < 2; k++)
				if (p[i][k] >= 0)
					close(p[i][k]);
		free(cmd.p);
		return -1;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO,
	    in_path != NULL ? in_path : "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[0][1], STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, p[1][1], STDERR_FILENO);
	rv = posix_spawnp(&j->pid, argv[0], &fa, NULL, (char *const *)argv,
	    environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[0][1]);
	close(p[1][1]);
	free(cmd.p);
	if (rv != 0) {
		snprintf(j->cause, sizeof(j->cause), "cannot run %s: %s",
		    argv[0], strerror(rv));
		close(p[0][0]);
		close(p[1][0]);
		j->pid = -1;
		return -1;
	}
	for (int i = 0; i < 2; i++) {
		j->fd[i] = p[i][0];
		fcntl(j->fd[i], F_SETFL, fcntl(j->fd[i], F_GETFL) | O_NONBLOCK);
	}
	return 0;
}

/* Read what the pipes hold now; closes a pipe at its end. */
static void
ssh_read(struct ssh_job *j)
{
	for (int i = 0; i < 2; i++) {
		char  *buf = i == 0 ? j->out : j->err;
		size_t cap = i == 0 ? sizeof(j->out) : sizeof(j->err);
		while (j->fd[i] >= 0) {
			char    tmp[1024];
			ssize_t r = read(j->fd[i], tmp, sizeof(tmp));
			if (r > 0) {
				size_t k = (size_t)r;
				if (k > cap - 1 - j->n[i])
					k = cap - 1 - j->n[i];
				memcpy(buf + j->n[i], tmp, k);
				j->n[i] += k;
				buf[j->n[i]] = '\0';
			} else if (r < 0 && (errno == EAGAIN || errno == EINTR))
				break;
			else {
				close(j->fd[i]);
				j->fd[i] = -1;
			}
		}
	}
}

/* Wait for a started job until deadline (util_now_ms); on timeout kill
 * the local ssh process.  Sets j->status. */
static void
ssh_finish(struct ssh_job *j, uint64_t deadline)
{
	while (j->pid > 0) {
		struct pollfd pf[2];
		int           st, nf = 0;
		for (int i = 0; i < 2; i++)
			if (j->fd[i] >= 0) {
				pf[nf].fd     = j->fd[i];
				pf[nf].events = POLLIN;
				nf++;
			}
		if (nf > 0)
			poll(pf, (nfds_t)nf, 100);
		else
			usleep(20000);
		ssh_read(j);
		if (waitpid(j->pid, &st, WNOHANG) == j->pid) {
			ssh_read(j);
			j->status = WIFEXITED(st) ? WEXITSTATUS(st) : 255;
			j->pid    = -1;
		} else if (util_now_ms() >= deadline) {
			kill(j->pid, SIGKILL);
			waitpid(j->pid, &st, 0);
			j->pid = -1;
			snprintf(j->cause, sizeof(j->cause),
			    "no answer over ssh in time");
		}
	}
	for (int i = 0; i < 2; i++)
		if (j->fd[i] >= 0) {
			close(j->fd[i]);
			j->fd[i] = -1;
		}
	/* trim trailing newlines for messages */
	for (int i = 0; i < 2; i++) {
		char *buf = i == 0 ? j->out : j->err;
		while (j->n[i] > 0 && (buf[j->n[i] - 1] == '\n' ||
		                          buf[j->n[i] - 1] == '\r'))
			buf[--j->n[i]] = '\0';
	}
}

/* Run one ssh command to completion. */
static int
ssh_run(struct ssh_job *j, const struct conf *c, const char *host,
    const char *script, const char *in_path, int timeout_ms)
{
	if (ssh_start(j, c, host, script, in_path) != 0)
		return -1;
	ssh_finish(j, util_now_ms() + (uint64_t)timeout_ms);
	return j->status;
}

/* Print why a job failed, naming the host. */
static void
ssh_report(const struct ssh_job *j, const char *host, const char *what)
{
	if (j->status < 0)
		fprintf(stderr, "ferry cluster: host '%s': %s: %s\n", host,
		    what, j->cause);
	else if (j->status == 255)
		fprintf(stderr,
		    "ferry cluster: host '%s': %s: ssh failed (exit status "
		    "255; is the host reachable, and does key-based login "
		    "work?): %s\n",
		    host, what, j->err[0] != '\0' ? j->err : "(no message)");
	else
		fprintf(stderr,
		    "ferry cluster: host '%s': %s: exit status %d: %s\n", host,
		    what, j->status,
		    j->err[0] != '\0' ? j->err : "(no message)");
}

/* How long an ssh command may take beyond its own work. */
static int
ssh_timeout_ms(const struct conf *c)
{
	return (int)c->connect_timeout_ms + 20000;
}

/* A shell function for scripts that look at a recorded process: st PID
 * prints "STATE START" (the state letter, and field 22 of
 * /proc/PID/stat: its start time in clock ticks after boot), or nothing
 * if there is no such process.  COMM may hold spaces and parentheses:
 * the fields are counted after its last ')'. */
static void
script_st(struct sbuf *b)
{
	sb_add(b, "st() { s=$(sed 's/^.*) //' \"/proc/$1/stat\" 2>/dev/null); "
	          "set -- $s; [ $# -ge 20 ] && echo \"$1 ${20}\"; }\n"
	          "boot() { cat /proc/sys/kernel/random/boot_id 2>/dev/null; "
	          "}\n");
}

/* The remote runtime directory, as the shell expression for it:
 * $FERRY_RUNTIME_DIR there, else /tmp/ferry-UID.  Not $XDG_RUNTIME_DIR:
 * the remote processes run detached, and that directory goes away when
 * the SSH session that made it ends. */
#define REMOTE_RT "${FERRY_RUNTIME_DIR:-/tmp/ferry-$(id -u)}"

/* The start of every remote start script: find the binary (exit 127
 * with a message if it is not there), make the remote state directory
 * RT/CLUSTER/HOST and pick setsid. */
static void
script_prelude(struct sbuf *b, const struct conf *c, const char *host,
    const char *ferry)
{
	sb_add(b, "F=");
	sb_q(b, ferry);
	sb_add(b, "\nif ! command -v \"$F\" >/dev/null 2>&1; then echo "
	          "\"cannot run '$F' on $(uname -n): not found or not "
	          "executable (set ssh.ferry, or the host's ferry)\" >&2; "
	          "exit 127; fi\n"
	          "v=$(\"$F\" version 2>/dev/null | head -n 1)\n"
	          "if [ \"$v\" != ");
	{
		char local[64];
		snprintf(local, sizeof(local), "ferry %s", ferry_version());
		sb_q(b, local);
		sb_add(b, " ]; then echo \"'$F' on $(uname -n) is '$v', this "
		          "machine runs '");
		sb_add(b, local);
		sb_add(b, "': run the same Ferry version on every host\" >&2; "
		          "exit 126; fi\n");
	}
	/* the runtime directory must be ours: another user could have made
	 * /tmp/ferry-UID */
	script_st(b);
	sb_add(b, "t=" REMOTE_RT "\n"
	          "case $t in /*) ;; *) echo \"FERRY_RUNTIME_DIR on "
	          "$(uname -n) is '$t', not an absolute path\" >&2; exit 1;; "
	          "esac\n"
	          "export FERRY_RUNTIME_DIR=\"$t\"\n"
	          "mkdir -p -m 700 \"$t\" 2>/dev/null\n"
	          "if [ ! -d \"$t\" ] || [ ! -O \"$t\" ] || [ -L \"$t\" ]; "
	          "then echo \"$t on $(uname -n) is not a directory of "
	          "this user\" >&2; exit 1; fi\n"
	          "d=$t/");
	sb_q(b, c->name);
	sb_add(b, "/");
	sb_q(b, host);
	sb_add(b, "\nmkdir -p -m 700 \"$d\" || exit 1\n"
	          "if command -v setsid >/dev/null 2>&1; then S=setsid; "
	          "else S=; fi\n");
}

/* The end of a start script: LOG is the log file; prints "PID NCPU
 * START BOOT" (START: the process's start time, BOOT: the host's boot
 * id), or the log's tail on stderr if the process ended at once. */
static void
script_detach(struct sbuf *b, const char *log)
{
	sb_add(b, " >\"$d/");
	sb_add(b, log);
	sb_add(b, "\" 2>&1 </dev/null &\n"
	          "p=$!\nsleep 1\n"
	          "x=$(st $p)\n"
	          "case $x in ''|Z*|X*) ;; *) echo \"$p "
	          "$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1) "
	          "${x#* } $(boot)\"; exit 0;; esac\n"
	          "echo \"it exited at once; last lines of $d/");
	sb_add(b, log);
	sb_add(b, ":\" >&2\ntail -n 15 \"$d/");
	sb_add(b, log);
	sb_add(b, "\" >&2\nexit 1\n");
}

/* The remote binary for host h of group g. */
static const char *
host_ferry(const struct conf *c, const struct conf_host *h)
{
	return h != NULL && h->ferry != NULL ? h->ferry : c->ssh_ferry;
}

/* Append " OPT 'VAL'" when val is not NULL. */
static void
sb_opt_if(struct sbuf *b, const char *opt, const char *val)
{
	if (val != NULL)
		sb_opt(b, opt, val);
}

/* Append " OPT N". */
static void
sb_opt_u(struct sbuf *b, const char *opt, uint64_t n)
{
	char num[32];

	snprintf(num, sizeof(num), "%" PRIu64, n);
	sb_opt(b, opt, num);
}

/* Script that starts group g's supervisor on host h: what
 * `ferry worker -f FILE --group G` would run with (g->wrk), the host's
 * own libraries and object roots in place of the group's, and the
 * security files by the same paths. */
static void
script_worker(struct sbuf *b, const struct conf *c,
    const struct conf_group *g, const struct conf_host *h)
{
	const struct wrk_options *w = &g->wrk;
	char                      log[128];
	size_t n_libs = h->n_libraries > 0 ? h->n_libraries : w->n_libraries;
	size_t n_roots =
	    h->n_object_roots > 0 ? h->n_object_roots : w->n_object_roots;

	script_prelude(b, c, h->name, host_ferry(c, h));
	sb_add(b, "$S nohup \"$F\" worker");
	sb_opt(b, "--connect", w->connect);
	sb_opt(b, "--group", w->group);
	sb_opt(b, "--name", h->name);
	if (g->processes > 0)
		sb_opt_u(b, "--processes", (uint64_t)g->processes);
	sb_opt_u(b, "--slots", (uint64_t)w->slots);
	sb_opt_u(b, "--prefetch", (uint64_t)w->prefetch);
	for (size_t i = 0; i < n_libs; i++)
		sb_opt(b, "--library",
		    h->n_libraries > 0 ? h->libraries[i] : w->libraries[i]);
	sb_opt(b, "--library-dir",
	    h->library_dir != NULL ? h->library_dir : w->library_dir);
	for (size_t i = 0; i < w->n_python_path; i++)
		sb_opt(b, "--python-path", w->python_path[i]);
	for (size_t i = 0; i < w->n_python_modules; i++)
		sb_opt(b, "--python-module", w->python_modules[i]);
	for (size_t i = 0; i < n_roots; i++)
		sb_opt(b, "--object-root", h->n_object_roots > 0
		        ? h->object_roots[i]
		        : w->object_roots[i]);
	if (w->object_cache > 0)
		sb_opt_u(b, "--object-cache", w->object_cache);
	if (w->memory_limit > 0)
		sb_opt_u(b, "--memory-limit", w->memory_limit);
	if (w->max_tasks > 0)
		sb_opt_u(b, "--max-tasks", w->max_tasks);
	sb_opt_u(b, "--connect-timeout-ms", w->connect_timeout_ms);
	sb_opt_u(b, "--drain-timeout-ms", w->drain_timeout_ms);
	sb_opt_u(b, "--max-message-size", w->max_message_size);
	sb_opt_if(b, "--tls-ca", w->tls_ca_file);
	sb_opt_if(b, "--tls-cert-key", w->tls_cert_key_file);
	sb_opt_if(b, "--tls-server-name", w->tls_server_name);
	sb_opt_if(b, "--token-file", w->token_file);
	sb_opt(b, "--log-level", log_level_name(c->log_level));
	snprintf(log, sizeof(log), "worker-%s.log", w->group);
	script_detach(b, log);
}

/* Script that receives the cluster file on stdin and starts the
 * scheduler with it. */
static void
script_scheduler(struct sbuf *b, const struct conf *c)
{
	script_prelude(b, c, c->scheduler_host, c->ssh_ferry);
	sb_add(b, "cat >\"$d/cluster.yaml\" || exit 1\n"
	          "$S nohup \"$F\" scheduler -f \"$d/cluster.yaml\"");
	/* the copy lives elsewhere: give the security files as resolved
	 * here (absolute), not relative to the copy */
	sb_opt_if(b, "--tls-cert-key", c->sched.tls_cert_key_file);
	sb_opt_if(b, "--tls-ca", c->sched.tls_ca_file);
	sb_opt_if(b, "--token-file", c->sched.token_file);
	/* but not the journal's path: the copy carries scheduler.journal,
	 * and a relative path belongs in that host's state directory
	 * ($t/NAME there), where the scheduler's own reading of the copy
	 * puts it; the path resolved here names this machine's */
	script_detach(b, "scheduler.log");
}

/* The start of a script about the process recorded as pid, started at
 * start on the boot boot: p, w and b are set, and the script has said
 * "gone" and ended if that process is no longer there (the host
 * restarted, or nothing has pid p), and "notours NOW" if pid p belongs
 * to another process now (or start was not recorded, 0).  Then x is
 * "STATE START" of pid p. */
static void
script_mine(struct sbuf *b, pid_t pid, uint64_t start, const char *boot)
{
	char num[96];
	script_st(b);
	snprintf(num, sizeof(num), "p=%d\nw=%" PRIu64 "\nb=", (int)pid, start);
	sb_add(b, num);
	sb_q(b, boot);
	sb_add(b, "\nmine() { case \"$(st $p)\" in Z*|X*) return 1;; "
	          "*\" $w\") return 0;; *) return 1;; esac; }\n"
	          "if [ -n \"$b\" ] && [ \"$(boot)\" != \"$b\" ]; then echo "
	          "gone; exit 0; fi\n"
	          "x=$(st $p)\n"
	          "case $x in ''|Z*|X*) echo gone; exit 0;; esac\n"
	          "if [ \"$w\" = 0 ] || [ \"${x#* }\" != \"$w\" ]; then echo "
	          "\"notours ${x#* }\"; exit 0; fi\n");
}

/*
 * Script that stops the process recorded as pid, started at start on
 * the boot boot: SIGTERM, wait up to wait_ms, then SIGKILL to its
 * process group.  Prints stopped, killed, gone, or "notours NOW" (then
 * pid belongs to another process, started at NOW, which is left alone).
 */
static void
script_stop(struct sbuf *b, pid_t pid, uint64_t start, const char *boot,
    int wait_ms)
{
	char num[64];
	script_mine(b, pid, start, boot);
	snprintf(num, sizeof(num), "n=%d\n", wait_ms / 200 + 1);
	sb_add(b, num);
	sb_add(b, "kill -TERM $p 2>/dev/null\ni=0\n"
	          "while mine && [ $i -lt $n ]; do sleep 0.2; i=$((i+1)); "
	          "done\n"
	          "if mine; then kill -KILL -- -$p 2>/dev/null; "
	          "kill -KILL $p 2>/dev/null; r=killed; else r=stopped; fi\n"
	          /* what is left of its process group, unless pid p is
	           * another process's now (see proc_kill_group) */
	          "x=$(st $p)\n"
	          "if [ -z \"$x\" ] || [ \"${x#* }\" = \"$w\" ]; then "
	          "kill -KILL -- -$p 2>/dev/null; fi\n"
	          "echo $r\n");
}

/* Script that says "running", "gone" or "notours NOW" for the process
 * recorded as pid, started at start on the boot boot. */
static void
script_check(struct sbuf *b, pid_t pid, uint64_t start, const char *boot)
{
	script_mine(b, pid, start, boot);
	sb_add(b, "echo running\n");
}

/* Script that prints the tail of a remote log. */
static void
script_tail(struct sbuf *b, const struct conf *c, const char *host,
    const char *log)
{
	sb_add(b, "tail -n 10 " REMOTE_RT "/");
	sb_q(b, c->name);
	sb_add(b, "/");
	sb_q(b, host);
	sb_add(b, "/");
	sb_q(b, log);
	sb_add(b, " 2>&1\n");
}

/* Print the tail of group's log on host (best effort). */
static void
remote_tail_log(const struct conf *c, const char *host, const char *log)
{
	struct sbuf    b = { 0 };
	struct ssh_job j;
	script_tail(&b, c, host, log);
	if (!b.oom && ssh_run(&j, c, host, b.p, NULL, ssh_timeout_ms(c)) >= 0) {
		fprintf(stderr, "  --- last lines of %s on %s ---\n", log, host);
		for (char *line = strtok(j.out, "\n"); line != NULL;
		     line = strtok(NULL, "\n"))
			fprintf(stderr, "  %s\n", line);
	}
	free(b.p);
}

/* If a remote script answered "notours NOW", say that the process
 * recorded as pid (started at start) is gone and pid is another
 * process's, which was not signalled; returns whether it did. */
static int
remote_not_ours(const char *out, const char *host, const char *what,
    pid_t pid, uint64_t start)
{
	if (strncmp(out, "notours", 7) != 0)
		return 0;
	if (start == 0)
		fprintf(stderr,
		    "ferry cluster: host '%s': %s (pid %d) was recorded "
		    "without its start time (by an older ferry), so it "
		    "cannot be told from another process that got the pid: "
		    "not signalled; stop it yourself if it is still "
		    "Ferry's\n",
		    host, what, (int)pid);
	else
		fprintf(stderr,
		    "ferry cluster: host '%s': %s (pid %d) is gone: pid %d "
		    "there now belongs to another process (started at tick "
		    "%s after boot, ours at %" PRIu64 "): not signalled\n",
		    host, what, (int)pid, (int)pid,
		    out[7] == ' ' ? out + 8 : "?", start);
	return 1;
}

/* Stop the remote supervisors of st (in parallel), reporting each;
 * those that could not be reached are added to left (if not NULL).
 * Returns how many could not be. */
static int
remote_stop_all(const struct state *st, const struct conf *c, int quiet,
    struct state *left)
{
	int                   failed = 0;
	static struct ssh_job jobs[MAX_REMOTE];
	int                   wait_ms = (int)c->sched.drain_timeout_ms + 3000;
	uint64_t              deadline =
	    util_now_ms() + (uint64_t)(wait_ms + ssh_timeout_ms(c));

	for (int i = 0; i < st->n_remote; i++) {
		struct sbuf b = { 0 };
		script_stop(&b, st->remote[i].pid, st->remote[i].start,
		    st->remote[i].boot, wait_ms);
		if (b.oom || ssh_start(&jobs[i], c, st->remote[i].host, b.p,
		                 NULL) != 0)
			jobs[i].pid = -1;
		free(b.p);
	}
	for (int i = 0; i < st->n_remote; i++) {
		const struct remote *r = &st->remote[i];
		char                 what[128];
		ssh_finish(&jobs[i], deadline);
		snprintf(what, sizeof(what), "the supervisor of group '%s'",
		    r->group);
		if (jobs[i].status == 0 &&
		    remote_not_ours(jobs[i].out, r->host, what, r->pid,
		        r->start))
			continue;
		if (jobs[i].status != 0) {
			ssh_report(&jobs[i], r->host, "stopping the supervisor");
			fprintf(stderr,
			    "ferry cluster: group '%s' may still run on host "
			    "'%s' (supervisor pid %d there)\n",
			    r->group, r->host, (int)r->pid);
			if (left != NULL && left->n_remote < MAX_REMOTE)
				left->remote[left->n_remote++] = *r;
			failed++;
		} else if (!quiet)
			printf("  group %-16s on %s: supervisor pid %d %s\n",
			    r->group, r->host, (int)r->pid, jobs[i].out);
	}
	return failed;
}

/* Stop the scheduler on its host. */
static void
remote_stop_scheduler(const struct state *st, const struct conf *c)
{
	struct sbuf    b = { 0 };
	struct ssh_job j;
	script_stop(&b, st->scheduler, st->sched_start, st->sched_boot,
	    (int)c->sched.drain_timeout_ms + 3000);
	if (!b.oom && ssh_run(&j, c, st->sched_host, b.p, NULL,
	                  (int)c->sched.drain_timeout_ms + 3000 +
	                      ssh_timeout_ms(c)) != 0)
		ssh_report(&j, st->sched_host, "stopping the scheduler");
	else if (!b.oom)
		remote_not_ours(j.out, st->sched_host, "the scheduler",
		    st->scheduler, st->sched_start);
	free(b.p);
}

/* The remote supervisor of st whose worker processes are named like nm
 * (HOST/GROUP/K, a msgpack string), or -1. */
static int
remote_of(const struct state *st, const msgpack_object *nm)
{
	if (nm->type != MSGPACK_OBJECT_STR)
		return -1;
	for (int i = 0; i < st->n_remote; i++) {
		const struct remote *r = &st->remote[i];
		size_t      hl = strlen(r->host), gl = strlen(r->group);
		const char *s  = nm->via.str.ptr;
		if (nm->via.str.size > hl + gl + 2 &&
		    memcmp(s, r->host, hl) == 0 && s[hl] == '/' &&
		    memcmp(s + hl + 1, r->group, gl) == 0 &&
		    s[hl + 1 + gl] == '/')
			return i;
	}
	return -1;
}

/*
 * Count the registered worker processes of each remote supervisor of st
 * (they are named HOST/GROUP/K) from the scheduler's status; if pids is
 * not NULL, print each one's pids into pids[i] (len bytes each).
 * Returns the total number of workers, or -1 if the status failed.
 */
static int
count_registered(ferry_client *cl, struct state *st, char (*pids)[256])
{
	struct cli_status     s;
	const msgpack_object *wl;
	int                   total;

	for (int i = 0; i < st->n_remote; i++) {
		st->remote[i].got = 0;
		if (pids != NULL)
			pids[i][0] = '\0';
	}
	if (cli_status_get(cl, 2000, &s) != 0)
		return -1;
	total = (int)s.st.workers;
	wl    = cli_obj_array(&s.doc, "worker_list");
	for (uint32_t k = 0; wl != NULL && k < wl->via.array.size; k++) {
		const msgpack_object *w  = &wl->via.array.ptr[k];
		const msgpack_object *nm = cli_obj_get(w, "name");
		int                   i  = nm != NULL ? remote_of(st, nm) : -1;
		uint64_t              pid = cli_obj_uint(w, "pid");
		size_t                l;

		if (i < 0)
			continue;
		st->remote[i].got++;
		if (pids == NULL || pid == 0)
			continue;
		l = strlen(pids[i]);
		snprintf(pids[i] + l, 256 - l, "%s%" PRIu64, l ? " " : "",
		    pid);
	}
	cli_status_free(&s);
	return total;
}

/* Stop what st records: the local supervisors drain, the remote ones
 * too, then the scheduler stops; only processes that are still the ones
 * recorded are signalled. */
static int
stop_all(const struct state *st, const struct conf *c)
{
	int         drain = c != NULL ? (int)c->sched.drain_timeout_ms : 30000;
	int         here  = state_this_boot(st), held[CONF_MAX_GROUPS];
	struct proc w[CONF_MAX_GROUPS], s;
	char        what[128];

	for (int i = 0; i < st->n_workers; i++) {
		snprintf(what, sizeof(what),
		    "the worker supervisor of group '%s'", st->groups[i]);
		held[i] = here &&
		    proc_hold(&w[i], st->workers[i], st->wstart[i], what);
		if (held[i])
			proc_signal(&w[i], SIGTERM);
	}
	if (st->n_remote > 0)
		remote_stop_all(st, c, 1, NULL);
	for (int i = 0; i < st->n_workers; i++) {
		snprintf(what, sizeof(what),
		    "the worker supervisor of group '%s'", st->groups[i]);
		if (held[i])
			proc_stop(&w[i], drain + 3000, what);
	}
	if (st->sched_host[0] != '\0') {
		if (st->scheduler > 0)
			remote_stop_scheduler(st, c);
	} else if (here && proc_hold(&s, st->scheduler, st->sched_start,
	                       "the scheduler")) {
		/* it drains too (clients take their results), for up to
		 * the same drain timeout */
		proc_signal(&s, SIGTERM);
		proc_stop(&s, drain + 3000, "the scheduler");
	}
	return 0;
}

static int
local_processes(const struct conf *c)
{
	int n = 0;
	for (size_t i = 0; i < c->n_groups; i++)
		if (c->groups[i].n_hosts == 0)
			n += c->groups[i].processes > 0 ? c->groups[i].processes
			                                : cli_ncpu();
	return n;
}

/* Start the scheduler on c->scheduler_host; fills st->scheduler. */
static int
start_remote_scheduler(const struct conf *c, struct state *st)
{
	struct sbuf    b = { 0 };
	struct ssh_job j;
	int            pid = 0, ncpu, rv;
	uint64_t       start = 0;

	script_scheduler(&b, c);
	rv = b.oom ? -1 : ssh_run(&j, c, c->scheduler_host, b.p, c->path,
	                      ssh_timeout_ms(c));
	free(b.p);
	st->sched_boot[0] = '\0';
	if (rv != 0 ||
	    sscanf(j.out, "%d %d %" SCNu64 " %39s", &pid, &ncpu, &start,
	        st->sched_boot) < 3 ||
	    pid <= 0 || start == 0) {
		if (b.oom)
			fprintf(stderr, "ferry cluster: out of memory\n");
		else if (rv == 0)
			fprintf(stderr,
			    "ferry cluster: host '%s': starting the scheduler: "
			    "unexpected answer '%s'\n",
			    c->scheduler_host, j.out);
		else
			ssh_report(&j, c->scheduler_host,
			    "starting the scheduler");
		return -1;
	}
	st->scheduler   = pid;
	st->sched_start = start;
	return 0;
}

/* Start every remote supervisor (in parallel); records each started one
 * in st.  Returns 0, or -1 after reporting every failure. */
static int
start_remote_workers(const struct conf *c, struct state *st)
{
	static struct ssh_job jobs[MAX_REMOTE];
	static int            jg[MAX_REMOTE], jh[MAX_REMOTE];
	int                   n = 0, failed = 0;
	uint64_t deadline = util_now_ms() + (uint64_t)ssh_timeout_ms(c);

	for (size_t g = 0; g < c->n_groups; g++)
		for (size_t h = 0; h < c->groups[g].n_hosts; h++) {
			struct sbuf b = { 0 };
			if (n == MAX_REMOTE) {
				fprintf(stderr,
				    "ferry cluster: more than %d (group, host) "
				    "pairs\n",
				    MAX_REMOTE);
				failed = 1;
				break;
			}
			script_worker(&b, c, &c->groups[g],
			    &c->groups[g].hosts[h]);
			jg[n] = (int)g;
			jh[n] = (int)h;
			if (b.oom ||
			    ssh_start(&jobs[n], c, c->groups[g].hosts[h].name,
			        b.p, NULL) != 0) {
				if (b.oom)
					snprintf(jobs[n].cause,
					    sizeof(jobs[n].cause),
					    "out of memory");
				jobs[n].pid    = -1;
				jobs[n].status = -1;
			}
			free(b.p);
			n++;
		}
	for (int i = 0; i < n; i++) {
		const struct conf_group *g = &c->groups[jg[i]];
		const struct conf_host  *h = &g->hosts[jh[i]];
		int                      pid = 0, ncpu = 0;
		uint64_t                 start = 0;
		char                     boot[BOOT_ID_LEN] = "";
		ssh_finish(&jobs[i], deadline);
		if (jobs[i].status != 0 ||
		    sscanf(jobs[i].out, "%d %d %" SCNu64 " %39s", &pid, &ncpu,
		        &start, boot) < 3 ||
		    pid <= 0 || start == 0) {
			char what[160];
			snprintf(what, sizeof(what),
			    "starting worker group '%s'", g->wrk.group);
			if (jobs[i].status == 0)
				fprintf(stderr,
				    "ferry cluster: host '%s': %s: unexpected "
				    "answer '%s'\n",
				    h->name, what, jobs[i].out);
			else
				ssh_report(&jobs[i], h->name, what);
			failed = 1;
			continue;
		}
		{
			struct remote *r = &st->remote[st->n_remote++];
			util_strlcpy(r->group, g->wrk.group, sizeof(r->group));
			util_strlcpy(r->host, h->name, sizeof(r->host));
			r->pid   = pid;
			r->start = start;
			util_strlcpy(r->boot, boot, sizeof(r->boot));
			r->want = g->processes > 0 ? g->processes
			                           : (ncpu > 0 ? ncpu : 1);
		}
	}
	return failed ? -1 : 0;
}

/*
 * Connect to the scheduler cluster up just started.  A local one is our
 * child: if it exits while we wait (a certificate file missing, the
 * address in use), say so at once rather than waiting out the timeout.
 * Returns 0, FERRY_ECLOSED when it exited (err says how), or the error of
 * the last attempt (err may say more).
 */
static int
connect_scheduler(const struct conf *c, struct state *st, ferry_client **cl,
    char *err, size_t errlen)
{
	uint64_t deadline = util_now_ms() + c->connect_timeout_ms;
	int      local    = st->sched_host[0] == '\0' && st->scheduler > 0;
	int      rv       = FERRY_ETIMEDOUT;

	err[0] = '\0';
	for (int i = 0; i < 10000 && util_now_ms() < deadline; i++) {
		uint64_t left  = deadline - util_now_ms();
		int      slice = local && left > 500 ? 500 : (int)left;
		int      status;

		rv = cli_connect_conf(c, c->address, slice, cl, err, errlen);
		if (rv == 0 || (rv != FERRY_ECONNECT && rv != FERRY_ETIMEDOUT))
			return rv;
		if (local && waitpid(st->scheduler, &status, WNOHANG) ==
		                 st->scheduler) {
			if (WIFEXITED(status))
				snprintf(err, errlen, "exit status %d",
				    WEXITSTATUS(status));
			else
				snprintf(err, errlen, "killed by signal %d",
				    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
			st->scheduler = 0; /* reaped: nothing to stop */
			return FERRY_ECLOSED;
		}
	}
	return rv;
}

static int
cluster_up(const struct conf *c, const char *dir, long timeout_s)
{
	static struct state st;
	static char         pids[MAX_REMOTE][256];
	char                log[4200], err[1024], path[4096], cerr[1024];
	const char         *argv[16];
	ferry_client       *cl = NULL;
	struct ferry_status fs;
	int                 rv, want = local_processes(c), total = 0;
	uint64_t            deadline;

	rv = state_read(dir, &st);
	if (rv == 0 && (st.sched_host[0] != '\0' ? st.scheduler > 0
	                                          : sched_is_up(&st))) {
		fprintf(stderr,
		    "ferry cluster: cluster '%s' is already up (scheduler pid "
		    "%d%s%s at %s, started from %s; state in %s); run 'ferry "
		    "cluster down -f %s' first\n",
		    c->name, (int)st.scheduler,
		    st.sched_host[0] != '\0' ? " on " : "", st.sched_host,
		    st.address, st.config, dir,
		    st.config[0] != '\0' ? st.config : c->path);
		return 1;
	}
	/* every library of a local group must be found before anything
	 * starts (remote hosts check their own) */
	for (size_t g = 0; g < c->n_groups; g++)
		for (size_t i = 0;
		     c->groups[g].n_hosts == 0 && i < c->groups[g].wrk.n_libraries;
		     i++)
			if (wrk_library_resolve(c->groups[g].wrk.libraries[i],
			        c->dir, path, sizeof(path), err,
			        sizeof(err)) != 0) {
				fprintf(stderr,
				    "ferry cluster: group '%s': %s\n",
				    c->groups[g].wrk.group, err);
				return 1;
			}
	/* other hosts dial scheduler.address: say so when they cannot */
	for (size_t g = 0; g < c->n_groups; g++) {
		int reach = util_url_reach(c->address);
		if (c->groups[g].n_hosts == 0 || reach == UTIL_REACH_NETWORK)
			continue;
		fprintf(stderr,
		    "ferry cluster: warning: group '%s' runs on other hosts, "
		    "but scheduler.address %s %s; set an address they can "
		    "reach\n",
		    c->groups[g].wrk.group, c->address,
		    reach == UTIL_REACH_LOCAL ? "only works on one machine"
		                              : "is a loopback address");
		break;
	}
	/* the default state directory, and sockets named with
	 * ${FERRY_RUNTIME_DIR}, are in this user's runtime directory */
	if (c->state_dir == NULL &&
	    (util_runtime_dir(path, sizeof(path)) != 0 ||
	        runtime_dir_make(path) != 0))
		return 1;
	if (c->scheduler_host == NULL &&
	    cli_runtime_dir_ready((const char *const *)c->sched.listen,
	        c->sched.n_listen) != 0)
		return 1;
	if (util_mkdir_p(dir) != 0) {
		fprintf(stderr, "ferry cluster: cannot create state directory "
		                "%s: %s\n",
		    dir, strerror(errno));
		return 1;
	}
	memset(&st, 0, sizeof(st));
	util_strlcpy(st.config, c->path, sizeof(st.config));
	util_strlcpy(st.address, c->address, sizeof(st.address));
	boot_id(st.boot, sizeof(st.boot));

	snprintf(log, sizeof(log), "%s/scheduler.log", dir);
	if (c->scheduler_host != NULL) {
		util_strlcpy(st.sched_host, c->scheduler_host,
		    sizeof(st.sched_host));
		if (start_remote_scheduler(c, &st) != 0)
			return 1;
	} else {
		argv[0] = "ferry";
		argv[1] = "scheduler";
		argv[2] = "-f";
		argv[3] = c->path;
		argv[4] = NULL;
		/* the journal as resolved here, in the state directory this
		 * command uses, however the scheduler would read the file */
		if (c->sched.journal_path != NULL) {
			argv[4] = "--journal";
			argv[5] = c->sched.journal_path;
			argv[6] = NULL;
		}
		if ((st.scheduler = cli_spawn(argv, log)) < 0)
			return 1;
		record_start(st.scheduler, &st.sched_start);
	}
	if (state_write(dir, &st) != 0)
		fprintf(stderr, "ferry cluster: cannot write %s/cluster.state: "
		                "%s\n",
		    dir, strerror(errno));
	rv = connect_scheduler(c, &st, &cl, cerr, sizeof(cerr));
	if (rv != 0) {
		if (rv == FERRY_ECLOSED)
			fprintf(stderr, "ferry cluster: the scheduler exited at "
			                "start: %s\n",
			    cerr);
		else if (rv == FERRY_ECONNECT || rv == FERRY_ETIMEDOUT)
			fprintf(stderr,
			    "ferry cluster: the scheduler did not answer at %s "
			    "within %u ms: %s\n",
			    c->address, c->connect_timeout_ms,
			    cerr[0] != '\0' ? cerr : ferry_strerror(rv));
		else
			fprintf(stderr,
			    "ferry cluster: cannot connect to the scheduler at "
			    "%s: %s\n",
			    c->address,
			    cerr[0] != '\0' ? cerr : ferry_strerror(rv));
		if (st.sched_host[0] != '\0')
			remote_tail_log(c, st.sched_host, "scheduler.log");
		else
			cli_tail_log(log, 15);
		goto fail;
	}
	for (size_t g = 0; g < c->n_groups; g++) {
		if (c->groups[g].n_hosts > 0)
			continue;
		snprintf(log, sizeof(log), "%s/worker-%s.log", dir,
		    c->groups[g].wrk.group);
		argv[0] = "ferry";
		argv[1] = "worker";
		argv[2] = "-f";
		argv[3] = c->path;
		argv[4] = "--group";
		argv[5] = c->groups[g].wrk.group;
		argv[6] = NULL;
		util_strlcpy(st.groups[st.n_workers], c->groups[g].wrk.group,
		    sizeof(st.groups[0]));
		st.workers[st.n_workers] = cli_spawn(argv, log);
		if (st.workers[st.n_workers] < 0)
			goto fail;
		record_start(st.workers[st.n_workers],
		    &st.wstart[st.n_workers]);
		st.n_workers++;
		state_write(dir, &st);
	}
	rv = start_remote_workers(c, &st);
	state_write(dir, &st);
	if (rv != 0)
		goto fail;
	for (int i = 0; i < st.n_remote; i++)
		want += st.remote[i].want;

	deadline = util_now_ms() +
	    (timeout_s > 0 ? (uint64_t)timeout_s * 1000
	                   : c->connect_timeout_ms);
	memset(&fs, 0, sizeof(fs));
	fs.size = sizeof(fs);
	for (;;) {
		int dead = -1, remote_ok = 1;
		total = count_registered(cl, &st, pids);
		for (int i = 0; i < st.n_remote; i++)
			if (st.remote[i].got < st.remote[i].want)
				remote_ok = 0;
		if (total >= want && remote_ok)
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
				    "ferry cluster: only %d of %d worker "
				    "processes registered in time\n",
				    total < 0 ? 0 : total, want);
			for (int i = 0; i < st.n_workers; i++) {
				snprintf(log, sizeof(log), "%s/worker-%s.log",
				    dir, st.groups[i]);
				cli_tail_log(log, 10);
			}
			for (int i = 0; i < st.n_remote; i++) {
				const struct remote *r = &st.remote[i];
				if (r->got >= r->want)
					continue;
				fprintf(stderr,
				    "ferry cluster: host '%s': group '%s': "
				    "%d of %d worker processes registered "
				    "with %s\n",
				    r->host, r->group, r->got, r->want,
				    c->address);
				snprintf(log, sizeof(log), "worker-%s.log",
				    r->group);
				remote_tail_log(c, r->host, log);
			}
			goto fail;
		}
		usleep(100000);
	}
	memset(&fs, 0, sizeof(fs));
	fs.size = sizeof(fs);
	ferry_cluster_status(cl, &fs, NULL, 2000);
	ferry_client_close(cl);
	printf("cluster '%s' is up: scheduler pid %d%s%s at %s, %d worker "
	       "process(es), %u slot(s)\n",
	    c->name, (int)st.scheduler, st.sched_host[0] ? " on " : "",
	    st.sched_host, c->address, total, fs.slots);
	for (int i = 0; i < st.n_workers; i++)
		printf("  group %-16s this machine: supervisor pid %d\n",
		    st.groups[i], (int)st.workers[i]);
	for (int i = 0; i < st.n_remote; i++)
		printf("  group %-16s host %s: %d process(es) registered, "
		       "supervisor pid %d, worker pids %s\n",
		    st.remote[i].group, st.remote[i].host, st.remote[i].got,
		    (int)st.remote[i].pid, pids[i]);
	printf("state and logs: %s%s\n", dir,
	    st.n_remote > 0 || st.sched_host[0] != '\0'
	        ? " (on other hosts: RUNTIME/NAME/HOST, RUNTIME being "
	          "$FERRY_RUNTIME_DIR there or /tmp/ferry-UID)"
	        : "");
	return 0;

fail:
	ferry_client_close(cl);
	stop_all(&st, c);
	state_remove(dir);
	return 1;
}

static int
cluster_down(const struct conf *c, const char *dir)
{
	static struct state st, left;
	int                 rv = state_read(dir, &st);
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
	/* two cluster files of one name share a state directory: stop only
	 * the cluster this file started */
	if (st.config[0] != '\0' && strcmp(st.config, c->path) != 0 &&
	    access(st.config, F_OK) == 0) {
		fprintf(stderr,
		    "ferry cluster: the cluster '%s' recorded in %s was "
		    "started from %s, not from %s: not stopping it (run 'ferry "
		    "cluster down -f %s'; to run both, give the files "
		    "different cluster names or state_dir, or run them with "
		    "different FERRY_RUNTIME_DIR)\n",
		    c->name, dir, st.config, c->path, st.config);
		return 1;
	}
	memset(&left, 0, sizeof(left));
	util_strlcpy(left.config, st.config, sizeof(left.config));
	util_strlcpy(left.address, st.address, sizeof(left.address));
	util_strlcpy(left.boot, st.boot, sizeof(left.boot));
	if (st.n_remote > 0) {
		printf("stopping %d supervisor(s) on other hosts\n",
		    st.n_remote);
		remote_stop_all(&st, c, 0, &left);
		st.n_remote = 0;
	}
	stop_all(&st, c);
	if (left.n_remote > 0) {
		/* keep what could not be stopped, for the next down */
		state_write(dir, &left);
		fprintf(stderr,
		    "ferry cluster: %d supervisor(s) could not be reached; "
		    "their pids stay in %s/cluster.state: run 'ferry cluster "
		    "down -f %s' again once the host(s) answer\n",
		    left.n_remote, dir, c->path);
		return 1;
	}
	state_remove(dir);
	printf("cluster '%s' is down\n", c->name);
	return 0;
}

static int
cluster_status(const struct conf *c, const char *dir)
{
	static struct state   st;
	static struct ssh_job jobs[MAX_REMOTE];
	static char           pids[MAX_REMOTE][256];
	int                   rv = state_read(dir, &st), up;
	char                 *argv[6];
	ferry_client         *cl = NULL;
	uint64_t              deadline;

	if (rv != 0) {
		printf("cluster '%s' is not up\n", c->name);
		return 1;
	}
	deadline = util_now_ms() + (uint64_t)ssh_timeout_ms(c);
	for (int i = 0; i < st.n_remote; i++) {
		struct sbuf b = { 0 };
		script_check(&b, st.remote[i].pid, st.remote[i].start,
		    st.remote[i].boot);
		if (b.oom || ssh_start(&jobs[i], c, st.remote[i].host, b.p,
		                 NULL) != 0)
			jobs[i].pid = -1;
		free(b.p);
	}
	if (st.sched_host[0] != '\0') {
		struct sbuf    b = { 0 };
		struct ssh_job j;
		script_check(&b, st.scheduler, st.sched_start, st.sched_boot);
		up = !b.oom && ssh_run(&j, c, st.sched_host, b.p, NULL,
		                   ssh_timeout_ms(c)) == 0 &&
		    strcmp(j.out, "running") == 0;
		free(b.p);
		if (!b.oom && j.status != 0)
			ssh_report(&j, st.sched_host, "checking the scheduler");
	} else
		up = sched_is_up(&st);
	if (up && cli_connect_conf(c, st.address, 3000, &cl, NULL, 0) == 0)
		count_registered(cl, &st, pids);
	ferry_client_close(cl);
	printf("cluster '%s' (%s)\n", c->name, st.config);
	printf("  scheduler pid %d%s%s: %s\n", (int)st.scheduler,
	    st.sched_host[0] ? " on " : "", st.sched_host,
	    up ? "running" : "NOT RUNNING");
	for (int i = 0; i < st.n_workers; i++)
		printf("  group %-16s this machine: supervisor pid %d: %s\n",
		    st.groups[i], (int)st.workers[i],
		    state_this_boot(&st) &&
		            cli_pid_is(st.workers[i], st.wstart[i])
		        ? "running"
		        : "NOT RUNNING");
	for (int i = 0; i < st.n_remote; i++) {
		const struct remote *r = &st.remote[i];
		ssh_finish(&jobs[i], deadline);
		if (jobs[i].status != 0) {
			printf("  group %-16s host %s: supervisor pid %d: "
			       "UNKNOWN (ssh failed)\n",
			    r->group, r->host, (int)r->pid);
			ssh_report(&jobs[i], r->host, "checking the supervisor");
			continue;
		}
		printf("  group %-16s host %s: supervisor pid %d: %s, %d of "
		       "%d process(es) registered%s%s\n",
		    r->group, r->host, (int)r->pid,
		    strcmp(jobs[i].out, "running") == 0 ? "running"
		    : strncmp(jobs[i].out, "notours", 7) == 0
		        ? "NOT RUNNING (its pid is another process's now)"
		        : "NOT RUNNING",
		    r->got, r->want, r->got > 0 ? ", pids " : "",
		    r->got > 0 ? pids[i] : "");
	}
	if (!up)
		return 1;
	printf("\n");
	fflush(stdout);
	optind  = 1;
	argv[0] = "status";
	argv[1] = "--connect";
	argv[2] = st.address;
	argv[3] = "-f"; /* for its security section */
	argv[4] = c->path;
	argv[5] = NULL;
	return cmd_status(5, argv);
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
		if (c.state_dir == NULL && errno == EINVAL)
			fprintf(stderr, "ferry cluster: FERRY_RUNTIME_DIR is "
			                "'%s', not an absolute path\n",
			    getenv("FERRY_RUNTIME_DIR"));
		else
			fprintf(stderr, "ferry cluster: state directory path "
			                "too long\n");
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
