/*
 * supervisor.c - `ferry worker`: start worker processes, keep them up,
 * enforce their limits and tell the scheduler how they die.
 *
 * Each worker process is a fresh program: posix_spawn() of the ferry
 * binary with the hidden `worker-process` subcommand, so nothing is
 * inherited but the arguments, the environment and its slot table.  A
 * process that dies is restarted after 100 ms if it had registered with
 * the scheduler (it starts fine: what ended it was a task, or someone's
 * kill -9; the scheduler quarantines tasks that keep killing processes);
 * one that died before registering is restarted with exponential backoff
 * (100 ms doubling to 10 s, back to 100 ms once a process has lived 30 s
 * or registered); one that was recycled or killed on the scheduler's order
 * is restarted at once.
 *
 * Slot table (slots.h): per process, a memfd the process maps, on file
 * descriptor WRK_SLOTS_FD (--slot-table-fd).  The process writes there
 * which task each slot runs, with its deadline, and its worker id; the
 * supervisor writes the ids of cancelled tasks.  Every ~50 ms the
 * supervisor kills (SIGKILL) a process whose task is past its deadline;
 * every ~100 ms, with a memory limit, one whose anonymous memory (RssAnon)
 * exceeds it.
 *
 * Exit statuses of a worker process (enum wrk_exit in worker.h) mean
 * something only when the process declared them in its table just before
 * exiting (a task can call exit() with any status, 0 included):
 *   0  drained after SIGTERM, or the supervisor went away -> nothing charged
 *   1  a system error                          -> "exit", running charged
 *   2  cannot start (bad library or options)   -> the supervisor stops
 *   3  gave up on the scheduler's connection   -> "exit", charged 0
 *   4  a task crashed and was reported as FERRY_ECRASHED by the process
 *      itself; what its table still shows ran beside it -> charged 0
 *   5  recycled: ran max_tasks tasks and drained; restarted at once
 *      -> "recycle"
 * Any other end -- a status the process did not declare, any signal, an
 * abort in the worker's own code -- is a death charged to the tasks its
 * table shows running, or, if none was, to those that returned and whose
 * results the scheduler had not yet acknowledged ("worker aborted after
 * the task returned"); see report_child().
 *
 * Process groups: each worker process leads a process group of its own,
 * and when it ends (dies, is recycled, timed out, cancelled, drained) the
 * supervisor kills that group, so that processes its tasks started go
 * with it.  The supervisor is a child subreaper: a process that left the
 * group (setsid) and whose parent ended comes back to it as a child, and
 * is killed when a worker process ends and when the supervisor stops
 * (kill_orphans).  No cgroups: the process group and the subreaper need
 * no privileges and work in any container.
 *
 * Connection to the scheduler (sup_link.c): a raw REQ socket of its own,
 * polled in the same loop; it brings kill orders (on_orders) and carries
 * a report of every ended process (report_child).  Without the scheduler
 * everything else works as before.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "log.h"
#include "slots.h"
#include "sup_int.h"
#include "util.h"

#define MAX_ARGS \
	(64 + 2 * WRK_MAX_LIBRARIES + 2 * WRK_MAX_ROOTS + 4 * WRK_MAX_PYTHON)
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
#define STABLE_MS 30000
#define TICK_MS 50          /* deadlines are checked this often */
#define MEMORY_CHECK_MS 100 /* RssAnon is read this often */
#define FLUSH_MS 1000       /* at exit, time to send what is queued */

extern char **environ;

/* Why the supervisor itself killed a process. */
enum kill_cause {
	KILL_NONE = 0,
	KILL_TIMEOUT,
	KILL_MEMORY,
	KILL_CANCEL,
	KILL_DRAIN,
};

struct child {
	pid_t             pid;
	int               index;
	uint64_t          started_ms;
	uint64_t          restart_at_ms; /* when to start again, 0: not waiting */
	uint32_t          backoff_ms;
	uint32_t          restarts;
	struct wrk_slots *slots;         /* its slot table, NULL: none */
	int               kill_cause;    /* enum kill_cause */
	uint64_t          kill_task;     /* the task a timeout kill is for */
	char              kill_reason[256];
};

struct sup {
	const struct wrk_options *o;
	const char               *exe;
	struct child             *kids;
	int                       n;
	int                       alive;
	int                       sfd;      /* the signalfd */
	int                       stopping; /* draining, then done */
	int                       rc;       /* the exit status */
	uint64_t                  stop_deadline; /* then kill what runs */
	uint64_t                  next_mem; /* the next memory check */
	struct sconn              c;
	char                      host[128];
};

/* ---------------------------------------------------------- children */

/* The command line of a worker process: argv points into the buffers. */
struct child_args {
	const char *argv[MAX_ARGS];
	int         n;
	char        slots[16], prefetch[16], ctmo[16], dtmo[16], maxmsg[32],
	    parent[16], name[192], cache[32], token[32], fdnum[16],
	    maxtasks[32];
};

/* Add "flag value" to a's command line. */
static void
arg_add(struct child_args *a, const char *flag, const char *value)
{
	a->argv[a->n++] = flag;
	a->argv[a->n++] = value;
}

/* The options a worker process gets for each of the supervisor's that
 * is set. */
static void
child_args_optional(struct child_args *a, const struct wrk_options *o)
{
	static const char *flags[] = { "--tls-ca", "--tls-cert-key",
		"--tls-server-name", "--token-file" };
	const char        *vals[]  = { o->tls_ca_file, o->tls_cert_key_file,
                o->tls_server_name, o->token_file };

	if (o->max_tasks > 0) {
		snprintf(a->maxtasks, sizeof(a->maxtasks), "%" PRIu64,
		    o->max_tasks);
		arg_add(a, "--max-tasks", a->maxtasks);
	}
	for (size_t i = 0; i < o->n_object_roots; i++)
		arg_add(a, "--object-root", o->object_roots[i]);
	if (o->object_cache > 0) {
		snprintf(a->cache, sizeof(a->cache), "%zu", o->object_cache);
		arg_add(a, "--object-cache", a->cache);
	}
	if (o->library_dir != NULL)
		arg_add(a, "--library-dir", o->library_dir);
	for (size_t i = 0; i < 4; i++)
		if (vals[i] != NULL)
			arg_add(a, flags[i], vals[i]);
	for (size_t i = 0; i < o->n_libraries; i++)
		arg_add(a, "--library", o->libraries[i]);
	for (size_t i = 0; i < o->n_python_path; i++)
		arg_add(a, "--python-path", o->python_path[i]);
	for (size_t i = 0; i < o->n_python_modules; i++)
		arg_add(a, "--python-module", o->python_modules[i]);
}

/* The command line of worker process k. */
static void
child_args(struct sup *s, const struct child *k, struct child_args *a)
{
	const struct wrk_options *o = s->o;
	/* every worker process gets these (the buffers filled below) */
	const char *const every[][2] = { { "--connect", o->connect },
		{ "--group", o->group }, { "--name", a->name },
		{ "--slots", a->slots }, { "--prefetch", a->prefetch },
		{ "--connect-timeout-ms", a->ctmo },
		{ "--drain-timeout-ms", a->dtmo },
		{ "--max-message-size", a->maxmsg },
		{ "--parent-pid", a->parent },
		{ "--log-level", log_level_name(log_level_get()) },
		{ "--supervisor-token", a->token } };

	snprintf(a->slots, sizeof(a->slots), "%d", o->slots);
	snprintf(a->prefetch, sizeof(a->prefetch), "%d", o->prefetch);
	snprintf(a->ctmo, sizeof(a->ctmo), "%u", o->connect_timeout_ms);
	snprintf(a->dtmo, sizeof(a->dtmo), "%u", o->drain_timeout_ms);
	snprintf(a->maxmsg, sizeof(a->maxmsg), "%zu", o->max_message_size);
	snprintf(a->parent, sizeof(a->parent), "%d", (int)getpid());
	/* --name replaces the host part: cluster up names each remote
	 * host's processes after the host as its cluster file spells it */
	snprintf(a->name, sizeof(a->name), "%s/%s/%d",
	    o->name != NULL ? o->name : s->host, o->group, k->index);
	snprintf(a->token, sizeof(a->token), "%" PRIu64, s->c.token);
	a->argv[0] = "ferry";
	a->argv[1] = "worker-process";
	a->n       = 2;
	for (size_t i = 0; i < sizeof(every) / sizeof(every[0]); i++)
		arg_add(a, every[i][0], every[i][1]);
	if (k->slots != NULL) {
		snprintf(a->fdnum, sizeof(a->fdnum), "%d", WRK_SLOTS_FD);
		arg_add(a, "--slot-table-fd", a->fdnum);
	}
	child_args_optional(a, o);
	a->argv[a->n] = NULL;
}

/* A fresh slot table for k; its memfd is returned (-1: k goes without
 * one, supervised anyway, without timeouts and cancels). */
static int
child_slots(struct child *k, int nslots)
{
	char err[512];
	int  fd = -1, fd2;

	if (wrk_slots_create(&k->slots, (uint32_t)nslots, &fd, err,
	        sizeof(err)) != 0) {
		log_error("worker process %d: %s: its tasks' timeouts cannot "
		          "be enforced",
		    k->index, err);
		return -1;
	}
	if (fd != WRK_SLOTS_FD)
		return fd;
	/* dup2() onto itself would keep close-on-exec */
	fd2 = fcntl(fd, F_DUPFD_CLOEXEC, WRK_SLOTS_FD + 1);
	close(fd);
	if (fd2 < 0) {
		wrk_slots_free(k->slots);
		k->slots = NULL;
	}
	return fd2;
}

static pid_t
spawn_one(struct sup *s, struct child *k)
{
	struct child_args          a;
	int                        rv, fd;
	pid_t                      pid;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t          attr;
	sigset_t                   none;

	k->kill_cause     = KILL_NONE;
	k->kill_task      = 0;
	k->kill_reason[0] = '\0';
	fd                = child_slots(k, s->o->slots);
	child_args(s, k, &a);
	posix_spawn_file_actions_init(&fa);
	if (k->slots != NULL)
		posix_spawn_file_actions_adddup2(&fa, fd, WRK_SLOTS_FD);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	/* the child starts with no signal blocked, whatever ours, and in a
	 * process group of its own: what its tasks start stays in it, and
	 * goes with it (kill_child, and the wait loop when it ends) */
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr,
	    POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
	rv = posix_spawn(&pid, s->exe, &fa, &attr, (char *const *)a.argv,
	    environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (fd >= 0)
		close(fd); /* the mapping stays */
	if (rv != 0) {
		log_error("cannot start worker process %d (%s): %s", k->index,
		    s->exe, strerror(rv));
		wrk_slots_free(k->slots);
		k->slots = NULL;
		return -1;
	}
	log_info("started worker process %d: pid %d", k->index, (int)pid);
	return pid;
}

/* Kill k with SIGKILL for cause (the first cause wins). */
static void
kill_child(struct child *k, int cause, uint64_t task, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
kill_child(struct child *k, int cause, uint64_t task, const char *fmt, ...)
{
	va_list ap;
	if (k->pid <= 0 || k->kill_cause != KILL_NONE)
		return;
	k->kill_cause = cause;
	k->kill_task  = task;
	va_start(ap, fmt);
	vsnprintf(k->kill_reason, sizeof(k->kill_reason), fmt, ap);
	va_end(ap);
	log_warn("killing worker process %d (pid %d): %s", k->index,
	    (int)k->pid, k->kill_reason);
	kill(-k->pid, SIGKILL); /* its group: the process and what it left */
}

/*
 * Kill the orphans that came back to us.  The supervisor is a child
 * subreaper: a process a task started whose parent ended (the worker
 * process, or a process between them) becomes its child, even after it
 * left the worker's process group (setsid).  Every child that is not one
 * of our worker processes is such a leftover: it is killed (with its own
 * group, when it leads one), and reaped by the wait loop.  A zombie child
 * keeps its pid until we reap it, so the pid cannot be someone else's.
 */
static void
kill_orphans(struct sup *s)
{
	DIR           *d = opendir("/proc");
	struct dirent *e;
	pid_t          self = getpid();
	int            n    = 0;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		pid_t                 pid  = (pid_t)atoi(e->d_name);
		int                   ours = 0;
		struct util_proc_stat ps;
		/* a zombie is dead already, waiting to be reaped */
		if (util_proc_stat(pid, &ps) != 0 || ps.state == 'Z' ||
		    ps.state == 'X' || ps.ppid != self)
			continue;
		for (int i = 0; i < s->n && !ours; i++)
			ours = s->kids[i].pid == pid;
		if (ours)
			continue;
		if (ps.pgid == pid)
			kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		n++;
	}
	closedir(d);
	if (n > 0)
		log_warn("killed %d process(es) that tasks left behind (they "
		         "outlived their parents)",
		    n);
}

/* Kill processes whose task is past its deadline. */
static void
check_deadlines(struct sup *s, uint64_t now)
{
	for (int i = 0; i < s->n; i++) {
		struct child *k = &s->kids[i];
		uint32_t      n = wrk_slots_count(k->slots);
		if (k->pid <= 0 || k->kill_cause != KILL_NONE)
			continue;
		for (uint32_t j = 0; j < n; j++) {
			struct wrk_slot_info si;
			if (wrk_slots_read(k->slots, j, &si) &&
			    si.deadline_ms != 0 && now >= si.deadline_ms) {
				kill_child(k, KILL_TIMEOUT, si.task,
				    "task %" PRIu64 " ran past its timeout of "
				    "%" PRIu64 " ms",
				    si.task, si.deadline_ms - si.started_ms);
				break;
			}
		}
	}
}

/*
 * The anonymous resident memory of pid in bytes (RssAnon in
 * /proc/PID/status), or -1 if it cannot be read (the process is gone).
 *
 * RssAnon on purpose, not VmRSS: heavy objects are file mappings (the
 * object cache's mmap loaders) whose pages live in the page cache and are
 * shared by every process that maps the file; they count in RssFile, and
 * charging them to each process would kill workers for sharing.  What a
 * task allocates (malloc, private copies) is anonymous.
 */
static long long
rss_anon(pid_t pid)
{
	long long kib = util_proc_kib(pid, "status", "RssAnon");
	return kib < 0 ? -1 : kib * 1024;
}

/* Kill processes over the memory limit. */
static void
check_memory(struct sup *s)
{
	size_t limit = s->o->memory_limit;
	for (int i = 0; i < s->n; i++) {
		struct child *k = &s->kids[i];
		long long     b;
		if (k->pid <= 0 || k->kill_cause != KILL_NONE)
			continue;
		if ((b = rss_anon(k->pid)) >= 0 && (size_t)b > limit)
			kill_child(k, KILL_MEMORY, 0,
			    "anonymous memory %lld MiB over the limit of %zu "
			    "MiB",
			    b >> 20, limit >> 20);
	}
}

/* How a process ended, from its wait status: "exit status 3", "killed by
 * SIGSEGV (signal 11: Segmentation fault)". */
static void
describe_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status)) {
		snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
	} else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
		snprintf(buf, len,
		    "killed by signal 9 (Killed): kill -9 or the kernel's OOM "
		    "killer");
	} else if (WIFSIGNALED(status)) {
		const char *abbrev = sigabbrev_np(WTERMSIG(status));
		snprintf(buf, len, "killed by SIG%s (signal %d: %s)%s",
		    abbrev != NULL ? abbrev : "?", WTERMSIG(status),
		    strsignal(WTERMSIG(status)),
		    WCOREDUMP(status) ? ", core dumped" : "");
	} else {
		snprintf(buf, len, "status 0x%x", status);
	}
}

/*
 * Whether k's exit status is one the process chose (enum wrk_exit): it
 * declared it in its table just before exiting.  A task can call exit()
 * with any status, so the status alone proves nothing.  A process that
 * never registered ran no task: what it says is its own.  Without a table
 * there is nothing else to go by.
 */
static int
exit_is_own(const struct child *k, int status)
{
	int code;
	if (!WIFEXITED(status))
		return 0;
	code = WEXITSTATUS(status);
	return k->slots == NULL || wrk_slots_exit(k->slots) == code ||
	    wrk_slots_worker(k->slots) == 0;
}

/* Kill orders from the scheduler: kill a process running the task, or
 * make sure it never starts the task. */
static void
on_orders(void *arg, const struct proto_msg *m)
{
	struct sup *s = arg;

	for (uint32_t i = 0; i < m->n_kills; i++) {
		const struct proto_kill *o = &m->kills[i];
		struct child            *k = NULL;
		for (int j = 0; j < s->n; j++)
			if (s->kids[j].pid > 0 &&
			    (uint64_t)s->kids[j].pid == o->pid)
				k = &s->kids[j];
		if (k == NULL) {
			log_debug("order to kill pid %" PRIu64 " for task "
			          "%" PRIu64 ": not one of ours (any more)",
			    o->pid, o->task);
			continue;
		}
		if (wrk_slots_cancel(k->slots, o->task))
			kill_child(k, KILL_CANCEL, o->task,
			    "task %" PRIu64 " was cancelled while running",
			    o->task);
		else
			log_debug("task %" PRIu64 " cancelled: pid %d will "
			          "skip it",
			    o->task, (int)k->pid);
	}
}

/* ---------------------------------------------------------- reaping */

/* Whether id is among the first n tasks of r. */
static int
report_has(const struct report *r, uint32_t n, uint64_t id)
{
	for (uint32_t i = 0; i < n; i++)
		if (r->tasks[i].id == id)
			return 1;
	return 0;
}

/*
 * Build the report on k, which ended with status, from its slot table
 * (read before it is freed); the table is freed.
 *
 * Which tasks are charged.  The supervisor's own kills say it (timeout:
 * that task; memory: every running one; cancel, drain: none).  Otherwise
 * an exit the process declared (exit_is_own) with a status that blames
 * nobody (0 drained, 2 cannot start, 3 lost the scheduler, 4 the crash is
 * reported already, 5 recycled) charges nothing, and every other end (any
 * status a task chose, any signal) is a death charged to the tasks the
 * table shows: those running, or, when none was, the last one that
 * returned in each slot if the scheduler had not acknowledged its result
 * ("the worker aborted after the task returned").  The table also says
 * whether the worker's own code faulted, and whether the process found
 * its descriptors closed under it (a task closed them): the reason says
 * so.
 */
/* How a process ended, as report_child works it out. */
struct ending {
	int      code;  /* its exit status, -1: killed by a signal */
	int      own;   /* a status it declared (exit_is_own) */
	int      fault; /* its own code faulted (WRK_SLOTS_FAULT_*), 0: no */
	int      blame; /* a death charged to 1: the running tasks, 2:
	                 * those that returned; 0: none */
	uint32_t n_run; /* r.tasks[0 .. n_run) ran, the rest returned */
	char     why[160];
};

/* The tasks k's table shows into r: running first, then those returned
 * and not acknowledged (charged later); e->n_run of them ran. */
static void
report_tasks(const struct child *k, struct report *r, struct ending *e)
{
	uint32_t             n = wrk_slots_count(k->slots), listed = 0;
	struct wrk_slot_info si;

	if (n == 0 || (r->tasks = calloc(2 * (size_t)n, sizeof(*r->tasks))) ==
	        NULL)
		return;
	for (uint32_t i = 0; i < n; i++)
		if (wrk_slots_read(k->slots, i, &si))
			r->tasks[listed++].id = si.task;
	e->n_run = listed;
	for (uint32_t i = 0; i < n; i++) {
		wrk_slots_read(k->slots, i, &si);
		if (si.returned != 0 && !report_has(r, listed, si.returned))
			r->tasks[listed++].id = si.returned;
	}
	r->n_tasks = listed;
}

/* The cause in r, and which of its tasks are charged. */
static void
report_cause(const struct child *k, struct report *r, struct ending *e,
    int stopping)
{
	int code = e->code, own = e->own;

	switch (k->kill_cause) {
	case KILL_TIMEOUT:
		r->cause = "timeout";
		for (uint32_t i = 0; i < e->n_run; i++)
			r->tasks[i].charged = r->tasks[i].id == k->kill_task;
		return;
	case KILL_MEMORY:
		/* several tasks may run in the process, and nothing says
		 * which one allocated: every one is charged */
		r->cause = "memory";
		for (uint32_t i = 0; i < e->n_run; i++)
			r->tasks[i].charged = 1;
		return;
	case KILL_CANCEL:
		r->cause = "cancel";
		return;
	case KILL_DRAIN:
		/* stopped by us, not by its tasks */
		r->cause = "signal";
		return;
	}
	r->cause = code < 0 ? "signal" : "exit";
	if (own && code == WRK_EXIT_RECYCLED)
		r->cause = "recycle";
	if (own && (code == WRK_EXIT_OK || code == WRK_EXIT_CONFIG ||
	               code == WRK_EXIT_LOST || code == WRK_EXIT_CRASHED ||
	               code == WRK_EXIT_RECYCLED))
		return;
	if (code < 0 && stopping && e->fault == 0)
		return; /* killed while we stop it all */
	/* a death: 1 the running tasks, 2 those that returned */
	e->blame = e->n_run > 0 ? 1 : r->n_tasks > 0 ? 2 : 0;
	for (uint32_t i = 0; i < r->n_tasks; i++)
		r->tasks[i].charged = e->blame == 1 ? i < e->n_run
		                                    : i >= e->n_run;
}

/* The reason in r, for humans. */
static void
report_reason(const struct sup *s, const struct child *k, struct report *r,
    const struct ending *e)
{
	const char *why = e->why;
	size_t      len = sizeof(r->reason);

	if (k->kill_cause != KILL_NONE)
		util_strlcpy(r->reason, k->kill_reason, len);
	else if (e->own && e->code == WRK_EXIT_CRASHED)
		snprintf(r->reason, len,
		    "%s: a task crashed it (reported as such)", why);
	else if (e->own && e->code == WRK_EXIT_RECYCLED)
		snprintf(r->reason, len, "recycled after %" PRIu64 " task(s)",
		    s->o->max_tasks);
	else if (e->blame != 0 && e->fault == WRK_SLOTS_FAULT_FDS)
		snprintf(r->reason, len,
		    "worker aborted %s: its descriptors were closed under it "
		    "(%s)",
		    e->blame == 2 ? "after the task returned"
		                  : "while the task ran",
		    why);
	else if (e->blame == 2 && e->fault != 0)
		snprintf(r->reason, len,
		    "worker aborted after the task returned (%s)", why);
	else if (e->blame == 2)
		snprintf(r->reason, len,
		    "worker process ended after the task returned, before its "
		    "result was acknowledged (%s)",
		    why);
	else if (e->blame == 1 && e->fault != 0)
		snprintf(r->reason, len,
		    "%s while the task ran, outside the task's thread", why);
	else if (e->blame == 1)
		snprintf(r->reason, len, "%s while the task ran", why);
	else
		util_strlcpy(r->reason, why, len);
}

/* Log the tasks of r, which ran (the first n_run) or returned in k. */
static void
report_log(const struct child *k, const struct report *r, uint32_t n_run)
{
	char   list[256];
	size_t off = 0;

	if (r->n_tasks == 0)
		return;
	list[0] = '\0';
	for (uint32_t i = 0; i < r->n_tasks && off < sizeof(list) - 48; i++)
		off += (size_t)snprintf(list + off, sizeof(list) - off,
		    "%s%" PRIu64 "%s%s", i ? ", " : "", r->tasks[i].id,
		    i >= n_run ? " (returned)" : "",
		    r->tasks[i].charged ? " (to blame)" : "");
	log_warn("worker process %d (pid %d, worker %" PRIu64
	         ") ended (%s: %s) with task(s) %s",
	    k->index, (int)k->pid, r->worker, r->cause, r->reason, list);
}

static void
report_child(struct sup *s, struct child *k, int status, int stopping)
{
	struct report r;
	struct ending e;

	memset(&r, 0, sizeof(r));
	memset(&e, 0, sizeof(e));
	r.pid    = (uint64_t)k->pid;
	r.worker = wrk_slots_worker(k->slots);
	describe_status(status, e.why, sizeof(e.why));
	e.code  = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	e.own   = exit_is_own(k, status);
	e.fault = wrk_slots_fault(k->slots);
	report_tasks(k, &r, &e);
	report_cause(k, &r, &e, stopping);
	report_reason(s, k, &r, &e);
	wrk_slots_free(k->slots);
	k->slots = NULL;
	report_log(k, &r, e.n_run);
	if (!s->c.open) {
		report_clear(&r);
		return;
	}
	sconn_report(&s->c, &r);
}

/* A process ended: report it, then restart it (or not). */
static int
child_ended(struct sup *s, struct child *k, int status, int stopping)
{
	int      cause = k->kill_cause, recycled, registered, own;
	uint64_t now   = util_now_ms();
	char     why[160];
	pid_t    pid = k->pid;

	/* a process that got as far as registering starts fine: whatever
	 * ended it (a task that crashed, hung or grew, kill -9) is no
	 * reason to wait longer and longer before the next one */
	registered = wrk_slots_worker(k->slots) != 0;
	own        = exit_is_own(k, status);
	recycled   = own && WEXITSTATUS(status) == WRK_EXIT_RECYCLED;
	describe_status(status, why, sizeof(why));
	report_child(s, k, status, stopping);
	k->pid = 0;
	s->alive--;
	if (stopping) {
		log_info("worker process %d (pid %d) %s", k->index, (int)pid,
		    why);
		return 0;
	}
	if (own && WEXITSTATUS(status) == WRK_EXIT_CONFIG) {
		log_error("worker process %d (pid %d) cannot start (%s): see "
		          "its messages above; stopping",
		    k->index, (int)pid, why);
		return WRK_EXIT_CONFIG;
	}
	if (recycled || cause == KILL_CANCEL) {
		/* nothing is wrong with it: replace it now */
		log_info("worker process %d (pid %d) %s; starting a fresh "
		         "one",
		    k->index, (int)pid,
		    recycled ? "recycled (max tasks per process)"
		             : "killed to stop a cancelled task");
		k->restart_at_ms = now;
		return 0;
	}
	if (registered || now - k->started_ms >= STABLE_MS)
		k->backoff_ms = BACKOFF_MIN_MS;
	if (cause == KILL_TIMEOUT || cause == KILL_MEMORY)
		log_warn("worker process %d (pid %d) killed: %s; restarting "
		         "in %u ms",
		    k->index, (int)pid, k->kill_reason, k->backoff_ms);
	else
		log_warn("worker process %d (pid %d) %s; restarting in %u ms",
		    k->index, (int)pid, why, k->backoff_ms);
	k->restart_at_ms = now + k->backoff_ms;
	if (!registered)
		k->backoff_ms *= 2;
	if (k->backoff_ms > BACKOFF_MAX_MS)
		k->backoff_ms = BACKOFF_MAX_MS;
	return 0;
}

/* Start worker process k now; 0, or -1 if it could not start. */
static int
start_child(struct sup *s, struct child *k, uint64_t now)
{
	if ((k->pid = spawn_one(s, k)) <= 0) {
		k->pid = 0;
		return -1;
	}
	k->started_ms = now;
	s->alive++;
	return 0;
}

/* Ask k's process to drain: it knows the signal is ours (a signal it
 * cannot place may be the kernel's word that we died). */
static void
drain_child(struct child *k)
{
	if (k->pid <= 0)
		return;
	wrk_slots_ask_drain(k->slots);
	kill(k->pid, SIGTERM);
}

/* Stop everything: every worker process drains; they are killed after
 * ms. */
static void
stop_all(struct sup *s, uint64_t ms)
{
	s->stopping      = 1;
	s->stop_deadline = util_now_ms() + ms;
	for (int i = 0; i < s->n; i++)
		drain_child(&s->kids[i]);
}

/* Restarts that are due, the drain timeout, task deadlines, memory, and
 * the scheduler's connection. */
static void
turn(struct sup *s, uint64_t now)
{
	for (int i = 0; i < s->n && !s->stopping; i++) {
		struct child *k = &s->kids[i];
		if (k->pid != 0 || k->restart_at_ms == 0 ||
		    now < k->restart_at_ms)
			continue;
		k->restart_at_ms = 0;
		k->restarts++;
		if (start_child(s, k, now) != 0)
			k->restart_at_ms = now + BACKOFF_MAX_MS;
	}
	if (s->stopping && now >= s->stop_deadline && s->alive > 0) {
		log_warn("drain timeout: killing %d worker process(es)",
		    s->alive);
		for (int i = 0; i < s->n; i++)
			kill_child(&s->kids[i], KILL_DRAIN, 0,
			    "stopped: still running after the drain timeout "
			    "of %u ms",
			    s->o->drain_timeout_ms);
		s->stop_deadline = UINT64_MAX;
	}
	check_deadlines(s, now);
	if (s->o->memory_limit > 0 && now >= s->next_mem) {
		check_memory(s);
		s->next_mem = now + MEMORY_CHECK_MS;
	}
	sconn_service(&s->c);
}

/* Wait for a signal, a reply or a connection event, TICK_MS at most;
 * SIGTERM and SIGINT start the drain.  Returns 0, or -1 if poll fails. */
static int
wait_events(struct sup *s)
{
	struct pollfd           pfd[3];
	struct signalfd_siginfo si;
	int                     nfd = 1;

	pfd[0].fd     = s->sfd;
	pfd[0].events = POLLIN;
	if (s->c.open) {
		pfd[1].fd     = s->c.recv_fd;
		pfd[1].events = POLLIN;
		pfd[2].fd     = s->c.event_fd;
		pfd[2].events = POLLIN;
		nfd           = 3;
	}
	if (poll(pfd, (nfds_t)nfd, TICK_MS) < 0 && errno != EINTR)
		return -1;
	while (read(s->sfd, &si, sizeof(si)) == sizeof(si)) {
		if ((si.ssi_signo != SIGTERM && si.ssi_signo != SIGINT) ||
		    s->stopping)
			continue;
		log_info("signal %u: draining %d worker process(es) (up to %u "
		         "ms)",
		    si.ssi_signo, s->alive, s->o->drain_timeout_ms);
		stop_all(s, s->o->drain_timeout_ms + 1000);
	}
	return 0;
}

/* Reap the processes that ended, and what they left behind. */
static void
reap(struct sup *s)
{
	int ended = 0, status;

	for (int guard = 0; guard < 4096; guard++) {
		siginfo_t     wi;
		struct child *k = NULL;
		pid_t         pid;
		/* look first, reap after: while it is a zombie its pid,
		 * which is its process group's id, is still taken, so
		 * killing the group cannot hit anyone else's */
		memset(&wi, 0, sizeof(wi));
		if (waitid(P_ALL, 0, &wi, WEXITED | WNOHANG | WNOWAIT) != 0 ||
		    wi.si_pid <= 0)
			break;
		pid = wi.si_pid;
		for (int i = 0; i < s->n && k == NULL; i++)
			if (s->kids[i].pid == pid)
				k = &s->kids[i];
		if (k != NULL)
			kill(-pid, SIGKILL); /* what it left behind */
		if (waitpid(pid, &status, WNOHANG) != pid)
			break;
		if (k == NULL)
			continue; /* an orphan that came back to us */
		ended++;
		if (child_ended(s, k, status, s->stopping) ==
		        WRK_EXIT_CONFIG &&
		    !s->stopping) {
			s->rc = WRK_EXIT_CONFIG;
			stop_all(s, s->o->drain_timeout_ms);
		}
	}
	if (ended > 0)
		kill_orphans(s);
}

/* The last reports, if the scheduler is there to take them. */
static void
flush_reports(struct sup *s)
{
	uint64_t end = util_now_ms() + FLUSH_MS;

	if (!s->c.open || s->c.q_len == 0)
		return;
	while (s->c.q_len > 0 && util_now_ms() < end) {
		struct pollfd pfd = { s->c.recv_fd, POLLIN, 0 };
		sconn_service(&s->c);
		poll(&pfd, 1, 20);
	}
	if (s->c.q_len > 0)
		log_warn("%zu report(s) not delivered: the scheduler did not "
		         "take them",
		    s->c.q_len);
}

/* Signals by signalfd (SIGINT, SIGTERM, SIGCHLD) into s->sfd, and become
 * the subreaper of our processes' orphans.  Returns 0 or -1 (logged). */
static int
signals_open(struct sup *s)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	/* orphans of our processes' tasks come back to us (kill_orphans) */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
		log_warn("cannot become a child subreaper (%s): processes "
		         "that tasks start and that leave their worker's "
		         "process group may outlive it",
		    strerror(errno));
	if ((s->sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		log_error("signalfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int
wrk_supervise(const struct wrk_options *o, int processes, const char *exe)
{
	struct sup s;

	memset(&s, 0, sizeof(s));
	s.o          = o;
	s.exe        = exe;
	s.n          = processes < 1 ? 1 : processes;
	s.c.event_fd = -1;
	if (gethostname(s.host, sizeof(s.host) - 1) != 0)
		strcpy(s.host, "localhost");
	if ((s.kids = calloc((size_t)s.n, sizeof(*s.kids))) == NULL)
		return 1;
	if (signals_open(&s) != 0) {
		free(s.kids);
		return 1;
	}
	sconn_open(&s.c, o, s.host, on_orders, &s);
	log_info("supervising %d worker process(es) of group %s for %s",
	    s.n, o->group, o->connect);
	if (o->memory_limit > 0)
		log_info("memory limit per process: %zu MiB of anonymous "
		         "memory (RssAnon)",
		    o->memory_limit >> 20);
	if (o->max_tasks > 0)
		log_info("each process is recycled after %" PRIu64 " task(s)",
		    o->max_tasks);
	for (int i = 0; i < s.n; i++) {
		s.kids[i].index      = i;
		s.kids[i].backoff_ms = BACKOFF_MIN_MS;
		if (start_child(&s, &s.kids[i], util_now_ms()) != 0) {
			s.rc       = 1;
			s.stopping = 1;
		}
	}
	while (s.alive > 0 || !s.stopping) {
		turn(&s, util_now_ms());
		if (wait_events(&s) != 0)
			break;
		reap(&s);
	}
	/* nothing a task started outlives the supervisor */
	kill_orphans(&s);
	flush_reports(&s);
	sconn_close(&s.c);
	for (int i = 0; i < s.n; i++)
		wrk_slots_free(s.kids[i].slots);
	close(s.sfd);
	free(s.kids);
	log_info("worker supervisor stopped");
	return s.rc;
}
