/*
 * supervisor.c - `ferry worker`: start worker processes and keep them up.
 *
 * Each worker process is a fresh program: posix_spawn() of the ferry
 * binary with the hidden `worker-process` subcommand, so nothing is
 * inherited but the arguments and the environment, the same on every
 * platform.  A process that dies is restarted with exponential backoff
 * (100 ms doubling to 10 s, back to 100 ms once a process has lived 30 s);
 * the scheduler re-queues whatever it held the moment its connection drops.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "worker.h"

#define MAX_ARGS (40 + 2 * WRK_MAX_LIBRARIES + 2 * WRK_MAX_ROOTS)
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
#define STABLE_MS 30000

extern char **environ;

struct child {
	pid_t    pid;
	int      index;
	uint64_t started_ms;
	uint64_t restart_at_ms; /* when to start again, 0: not waiting */
	uint32_t backoff_ms;
	uint32_t restarts;
};

static void
describe_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d",
		    WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)%s",
		    WTERMSIG(status), strsignal(WTERMSIG(status)),
		    WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(buf, len, "status 0x%x", status);
}

static pid_t
spawn_one(const struct wrk_options *o, const char *exe, int index)
{
	char        slots[16], prefetch[16], ctmo[16], dtmo[16], maxmsg[32],
	    parent[16], name[192], host[128], cache[32];
	const char *argv[MAX_ARGS];
	int         n = 0, rv;
	pid_t       pid;

	if (gethostname(host, sizeof(host) - 1) != 0)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(slots, sizeof(slots), "%d", o->slots);
	snprintf(prefetch, sizeof(prefetch), "%d", o->prefetch);
	snprintf(ctmo, sizeof(ctmo), "%u", o->connect_timeout_ms);
	snprintf(dtmo, sizeof(dtmo), "%u", o->drain_timeout_ms);
	snprintf(maxmsg, sizeof(maxmsg), "%zu", o->max_message_size);
	snprintf(parent, sizeof(parent), "%d", (int)getpid());
	snprintf(name, sizeof(name), "%s/%s/%d", host, o->group, index);

	argv[n++] = "ferry";
	argv[n++] = "worker-process";
	argv[n++] = "--connect";
	argv[n++] = o->connect;
	argv[n++] = "--group";
	argv[n++] = o->group;
	argv[n++] = "--name";
	argv[n++] = name;
	argv[n++] = "--slots";
	argv[n++] = slots;
	argv[n++] = "--prefetch";
	argv[n++] = prefetch;
	argv[n++] = "--connect-timeout-ms";
	argv[n++] = ctmo;
	argv[n++] = "--drain-timeout-ms";
	argv[n++] = dtmo;
	argv[n++] = "--max-message-size";
	argv[n++] = maxmsg;
	argv[n++] = "--parent-pid";
	argv[n++] = parent;
	argv[n++] = "--log-level";
	argv[n++] = log_level_name(log_level_get());
	for (size_t i = 0; i < o->n_object_roots; i++) {
		argv[n++] = "--object-root";
		argv[n++] = o->object_roots[i];
	}
	if (o->object_cache > 0) {
		snprintf(cache, sizeof(cache), "%zu", o->object_cache);
		argv[n++] = "--object-cache";
		argv[n++] = cache;
	}
	if (o->library_dir != NULL) {
		argv[n++] = "--library-dir";
		argv[n++] = o->library_dir;
	}
	for (size_t i = 0; i < o->n_libraries; i++) {
		argv[n++] = "--library";
		argv[n++] = o->libraries[i];
	}
	argv[n] = NULL;

	{
		posix_spawnattr_t attr;
		sigset_t          none;
		posix_spawnattr_init(&attr);
		sigemptyset(&none);
		/* the child starts with no signal blocked, whatever ours */
		posix_spawnattr_setsigmask(&attr, &none);
		posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
		rv = posix_spawn(&pid, exe, NULL, &attr, (char *const *)argv,
		    environ);
		posix_spawnattr_destroy(&attr);
	}
	if (rv != 0) {
		log_error("cannot start worker process %d (%s): %s", index, exe,
		    strerror(rv));
		return -1;
	}
	log_info("started worker process %d: pid %d", index, (int)pid);
	return pid;
}

int
wrk_supervise(const struct wrk_options *o, int processes, const char *exe)
{
	struct child *kids;
	sigset_t      mask;
	int           sfd, alive = 0, stopping = 0, rc = 0;
	uint64_t      stop_deadline = 0;

	if (processes < 1)
		processes = 1;
	if ((kids = calloc((size_t)processes, sizeof(*kids))) == NULL)
		return 1;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	if ((sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		log_error("signalfd: %s", strerror(errno));
		free(kids);
		return 1;
	}
	log_info("supervising %d worker process(es) of group %s for %s",
	    processes, o->group, o->connect);
	for (int i = 0; i < processes; i++) {
		kids[i].index      = i;
		kids[i].backoff_ms = BACKOFF_MIN_MS;
		if ((kids[i].pid = spawn_one(o, exe, i)) > 0) {
			kids[i].started_ms = util_now_ms();
			alive++;
		} else {
			rc = 1;
			stopping = 1;
		}
	}

	while (alive > 0 || !stopping) {
		struct pollfd pfd = { sfd, POLLIN, 0 };
		uint64_t      now = util_now_ms();
		int           status;
		pid_t         pid;

		/* restarts that are due */
		for (int i = 0; i < processes && !stopping; i++) {
			if (kids[i].pid == 0 && kids[i].restart_at_ms != 0 &&
			    now >= kids[i].restart_at_ms) {
				kids[i].restart_at_ms = 0;
				kids[i].restarts++;
				if ((kids[i].pid = spawn_one(o, exe, i)) > 0) {
					kids[i].started_ms = now;
					alive++;
				} else {
					kids[i].pid           = 0;
					kids[i].restart_at_ms =
					    now + BACKOFF_MAX_MS;
				}
			}
		}
		if (stopping && now >= stop_deadline && alive > 0) {
			log_warn("drain timeout: killing %d worker process(es)",
			    alive);
			for (int i = 0; i < processes; i++)
				if (kids[i].pid > 0)
					kill(kids[i].pid, SIGKILL);
			stop_deadline = UINT64_MAX;
		}
		if (poll(&pfd, 1, 100) < 0 && errno != EINTR)
			break;
		for (;;) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				break;
			if ((si.ssi_signo == SIGTERM ||
			        si.ssi_signo == SIGINT) &&
			    !stopping) {
				log_info("signal %u: draining %d worker "
				         "process(es) (up to %u ms)",
				    si.ssi_signo, alive, o->drain_timeout_ms);
				stopping      = 1;
				stop_deadline = util_now_ms() +
				    o->drain_timeout_ms + 1000;
				for (int i = 0; i < processes; i++)
					if (kids[i].pid > 0)
						kill(kids[i].pid, SIGTERM);
			}
		}
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			char why[128];
			describe_status(status, why, sizeof(why));
			for (int i = 0; i < processes; i++) {
				struct child *k = &kids[i];
				if (k->pid != pid)
					continue;
				k->pid = 0;
				alive--;
				if (stopping) {
					log_info("worker process %d (pid %d) %s",
					    i, (int)pid, why);
					break;
				}
				if (WIFEXITED(status) &&
				    WEXITSTATUS(status) == 2) {
					log_error("worker process %d (pid %d) "
					          "cannot start (%s): see its "
					          "messages above; stopping",
					    i, (int)pid, why);
					rc            = 2;
					stopping      = 1;
					stop_deadline = util_now_ms() +
					    o->drain_timeout_ms;
					for (int j = 0; j < processes; j++)
						if (kids[j].pid > 0)
							kill(kids[j].pid,
							    SIGTERM);
					break;
				}
				if (now - k->started_ms >= STABLE_MS)
					k->backoff_ms = BACKOFF_MIN_MS;
				log_warn("worker process %d (pid %d) %s; "
				         "restarting in %u ms",
				    i, (int)pid, why, k->backoff_ms);
				k->restart_at_ms = util_now_ms() + k->backoff_ms;
				k->backoff_ms *= 2;
				if (k->backoff_ms > BACKOFF_MAX_MS)
					k->backoff_ms = BACKOFF_MAX_MS;
				break;
			}
		}
	}
	close(sfd);
	free(kids);
	log_info("worker supervisor stopped");
	return rc;
}
