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
 * Connection to the scheduler: a raw REQ socket of its own, polled in the
 * same loop, registered with hello role "supervisor" and a random token
 * that every worker process also sends in its hello.  One `watch` stays
 * in flight (it is the heartbeat, and brings kill orders); each ended
 * process is reported (`report`: pid, worker id, cause, reason, the tasks
 * it ran and which are to blame).  Reports wait in a bounded queue while
 * the scheduler is away, and go out once it is back.  Without the
 * scheduler everything else works as before.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "ferry/ferry.h"
#include "log.h"
#include "proto.h"
#include "security.h"
#include "slots.h"
#include "util.h"
#include "worker.h"

#define MAX_ARGS (64 + 2 * WRK_MAX_LIBRARIES + 2 * WRK_MAX_ROOTS)
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
#define STABLE_MS 30000
#define TICK_MS 50          /* deadlines are checked this often */
#define MEMORY_CHECK_MS 100 /* RssAnon is read this often */
#define HELLO_RETRY_MS 2000 /* after the scheduler refused our hello */
#define HELLO_WAIT_MS 5000  /* a hello unanswered this long is lost */
#define REPORTS_MAX 256     /* reports kept while the scheduler is away */
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

/* A report waiting to be sent. */
struct report {
	uint64_t                  pid, worker;
	const char               *cause; /* a static string */
	char                      reason[256];
	struct proto_report_task *tasks;
	uint32_t                  n_tasks;
};

/* The supervisor's own connection to the scheduler. */
struct sconn {
	nng_socket           sock;
	int                  open;     /* the socket exists and dials */
	int                  recv_fd;  /* readable: a reply is waiting */
	int                  event_fd; /* written by the pipe callbacks */
	atomic_int           pipes;    /* connections up now */
	atomic_int           lost;     /* a connection dropped */
	uint64_t             token;
	uint64_t             id;       /* our supervisor id, from welcome */
	char                 secret[SEC_TOKEN_MAX + 1]; /* shared token */
	int                  registered;
	int                  refused;  /* hellos refused in a row */
	uint32_t             next_req;
	uint32_t             hello_id, watch_id, report_id; /* in flight */
	uint64_t             hello_ms, watch_ms;  /* when they were sent */
	uint64_t             next_hello_ms, next_watch_ms;
	uint64_t             hb_ms, hb_timeout_ms;
	struct report        q[REPORTS_MAX]; /* a ring */
	size_t               q_head, q_len;
	uint64_t             dropped;
	struct proto_writer  w;
	struct proto_decoder dec;
};

struct sup {
	const struct wrk_options *o;
	const char               *exe;
	struct child             *kids;
	int                       n;
	int                       alive;
	struct sconn              c;
	char                      host[128];
};

/* ---------------------------------------------------------- children */

static pid_t
spawn_one(struct sup *s, struct child *k)
{
	const struct wrk_options *o = s->o;
	char        slots[16], prefetch[16], ctmo[16], dtmo[16], maxmsg[32],
	    parent[16], name[192], cache[32], token[32], fdnum[16],
	    maxtasks[32], err[512];
	const char *argv[MAX_ARGS];
	int         n = 0, rv, fd = -1;
	pid_t       pid;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t          attr;
	sigset_t                   none;

	k->kill_cause     = KILL_NONE;
	k->kill_task      = 0;
	k->kill_reason[0] = '\0';
	if (wrk_slots_create(&k->slots, (uint32_t)o->slots, &fd, err,
	        sizeof(err)) != 0) {
		/* supervise it anyway, without timeouts and cancels */
		log_error("worker process %d: %s: its tasks' timeouts cannot "
		          "be enforced",
		    k->index, err);
	} else if (fd == WRK_SLOTS_FD) {
		/* dup2() onto itself would keep close-on-exec */
		int fd2 = fcntl(fd, F_DUPFD_CLOEXEC, WRK_SLOTS_FD + 1);
		close(fd);
		fd = fd2;
		if (fd < 0) {
			wrk_slots_free(k->slots);
			k->slots = NULL;
		}
	}

	snprintf(slots, sizeof(slots), "%d", o->slots);
	snprintf(prefetch, sizeof(prefetch), "%d", o->prefetch);
	snprintf(ctmo, sizeof(ctmo), "%u", o->connect_timeout_ms);
	snprintf(dtmo, sizeof(dtmo), "%u", o->drain_timeout_ms);
	snprintf(maxmsg, sizeof(maxmsg), "%zu", o->max_message_size);
	snprintf(parent, sizeof(parent), "%d", (int)getpid());
	/* --name replaces the host part: cluster up names each remote
	 * host's processes after the host as its cluster file spells it */
	snprintf(name, sizeof(name), "%s/%s/%d",
	    o->name != NULL ? o->name : s->host, o->group, k->index);
	snprintf(token, sizeof(token), "%" PRIu64, s->c.token);

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
	argv[n++] = "--supervisor-token";
	argv[n++] = token;
	if (k->slots != NULL) {
		snprintf(fdnum, sizeof(fdnum), "%d", WRK_SLOTS_FD);
		argv[n++] = "--slot-table-fd";
		argv[n++] = fdnum;
	}
	if (o->max_tasks > 0) {
		snprintf(maxtasks, sizeof(maxtasks), "%" PRIu64, o->max_tasks);
		argv[n++] = "--max-tasks";
		argv[n++] = maxtasks;
	}
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
	{
		static const char *flags[] = { "--tls-ca", "--tls-cert-key",
			"--tls-server-name", "--token-file" };
		const char *vals[] = { o->tls_ca_file, o->tls_cert_key_file,
			o->tls_server_name, o->token_file };
		for (size_t i = 0; i < 4; i++) {
			if (vals[i] == NULL)
				continue;
			argv[n++] = flags[i];
			argv[n++] = vals[i];
		}
	}
	for (size_t i = 0; i < o->n_libraries; i++) {
		argv[n++] = "--library";
		argv[n++] = o->libraries[i];
	}
	argv[n] = NULL;

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
	rv = posix_spawn(&pid, s->exe, &fa, &attr, (char *const *)argv,
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
 * The parent of pid and its process group, from /proc/PID/stat; returns
 * 0, or -1 if it is gone or a zombie (dead, waiting to be reaped).
 */
static int
proc_parent(pid_t pid, pid_t *ppid, pid_t *pgid)
{
	char    path[64], buf[512], *p, state;
	int     fd, pp, pg;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* "PID (COMM) S PPID PGRP ...": the command may hold anything,
	 * so start after its last ')' */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 1, " %c %d %d", &state, &pp, &pg) != 3 ||
	    state == 'Z' || state == 'X')
		return -1;
	*ppid = pp;
	*pgid = pg;
	return 0;
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
		pid_t pid = (pid_t)atoi(e->d_name), ppid, pgid;
		int   ours = 0;
		if (pid <= 0 || proc_parent(pid, &ppid, &pgid) != 0 ||
		    ppid != self)
			continue;
		for (int i = 0; i < s->n && !ours; i++)
			ours = s->kids[i].pid == pid;
		if (ours)
			continue;
		if (pgid == pid)
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
	char      path[64], line[256];
	FILE     *f;
	long long kib = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "RssAnon: %lld kB", &kib) == 1)
			break;
	fclose(f);
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

/* ---------------------------------------------- the scheduler link */

static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct sconn *c   = arg;
	uint64_t      one = 1;
	(void)p;
	if (ev == NNG_PIPE_EV_ADD_POST) {
		atomic_fetch_add(&c->pipes, 1);
	} else {
		atomic_fetch_sub(&c->pipes, 1);
		atomic_store(&c->lost, 1);
	}
	if (write(c->event_fd, &one, sizeof(one)) < 0) {
		/* saturated: readable anyway */
	}
}

/* Open the socket and start dialling (in the background).  Failing
 * here only means no reports: supervision goes on. */
static void
conn_open(struct sup *s)
{
	struct sconn *c = &s->c;
	int           rv;

	c->token         = util_random64();
	c->recv_fd       = -1;
	c->hb_ms         = 1000;
	c->hb_timeout_ms = 5000;
	proto_writer_init(&c->w);
	proto_decoder_init(&c->dec);
	if ((c->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		log_error("eventfd: %s: no reports to the scheduler",
		    strerror(errno));
		return;
	}
	if ((rv = nng_req0_open_raw(&c->sock)) != 0 ||
	    (rv = util_sock_setup(c->sock, s->o->max_message_size)) != 0 ||
	    (rv = nng_pipe_notify(c->sock, NNG_PIPE_EV_ADD_POST, pipe_cb,
	         c)) != 0 ||
	    (rv = nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, pipe_cb,
	         c)) != 0 ||
	    (rv = nng_socket_get_int(c->sock, NNG_OPT_RECVFD, &c->recv_fd)) !=
	        0) {
		log_error("cannot open a socket to the scheduler: %s; "
		          "supervising without reporting",
		    nng_strerror(rv));
		if (c->sock.id != 0)
			nng_close(c->sock);
		c->recv_fd = -1;
		return;
	}
	{
		struct sec_dial sd = { s->o->tls_ca_file,
			s->o->tls_cert_key_file, s->o->tls_server_name,
			s->o->token_file };
		char            err[512];
		if ((s->o->token_file != NULL &&
		        (sec_token_load(s->o->token_file, c->secret, err,
		             sizeof(err)) != 0 ||
		            sec_token_check_url(s->o->connect, c->secret, err,
		                sizeof(err)) != 0)) ||
		    sec_dial(c->sock, s->o->connect, &sd, err, sizeof(err)) !=
		        0) {
			log_error("%s; supervising without reporting", err);
			nng_close(c->sock);
			c->recv_fd = -1;
			return;
		}
	}
	c->open = 1;
}

static void
report_clear(struct report *r)
{
	free(r->tasks);
	memset(r, 0, sizeof(*r));
}

static void
conn_close(struct sconn *c)
{
	if (c->open)
		nng_close(c->sock);
	c->open = 0;
	if (c->event_fd >= 0)
		close(c->event_fd);
	while (c->q_len > 0) {
		report_clear(&c->q[c->q_head]);
		c->q_head = (c->q_head + 1) % REPORTS_MAX;
		c->q_len--;
	}
	proto_writer_fini(&c->w);
	proto_decoder_fini(&c->dec);
}

/* Send c->w as a request; returns its id, or 0 if it could not go. */
static uint32_t
conn_send(struct sconn *c)
{
	nng_msg *msg;
	uint32_t id;
	int      rv;

	if (!c->open)
		return 0;
	if (++c->next_req >= 0x7fffffff)
		c->next_req = 1;
	id = c->next_req;
	if ((rv = nng_msg_alloc(&msg, 0)) != 0)
		return 0;
	if ((rv = util_request_id(msg, id)) != 0 ||
	    (rv = nng_msg_append(msg, c->w.buf.data, c->w.buf.size)) != 0 ||
	    (rv = nng_sendmsg(c->sock, msg, NNG_FLAG_NONBLOCK)) != 0) {
		nng_msg_free(msg);
		log_debug("send to the scheduler: %s", nng_strerror(rv));
		return 0;
	}
	return id;
}

static void
send_hello(struct sup *s)
{
	struct sconn      *c = &s->c;
	struct proto_hello h = { 0 };

	h.token      = c->secret;
	h.supervisor = c->token;
	h.name       = s->host;
	h.host       = s->host;
	h.group      = s->o->group;
	h.pid        = (uint64_t)getpid();
	proto_writer_reset(&c->w);
	proto_write_hello_supervisor(&c->w, &h);
	c->hello_id = conn_send(c);
	c->hello_ms = util_now_ms();
	if (c->hello_id == 0)
		c->next_hello_ms = c->hello_ms + HELLO_RETRY_MS;
}

static void
send_watch(struct sconn *c)
{
	proto_writer_reset(&c->w);
	proto_write_watch(&c->w, c->hb_ms);
	c->watch_id = conn_send(c);
	c->watch_ms = util_now_ms();
	if (c->watch_id == 0)
		c->next_watch_ms = c->watch_ms + TICK_MS;
}

static void
send_report(struct sconn *c)
{
	const struct report *r = &c->q[c->q_head];
	proto_writer_reset(&c->w);
	proto_write_report(&c->w, r->pid, r->worker, r->cause, r->reason,
	    r->tasks, r->n_tasks);
	c->report_id = conn_send(c);
}

/* Forget what is in flight: its replies will never come (or are
 * ignored); the report in flight stays first in the queue. */
static void
conn_reset(struct sconn *c)
{
	c->registered = 0;
	c->hello_id = c->watch_id = c->report_id = 0;
	c->next_hello_ms = c->next_watch_ms = 0;
}

/* Queue a report (the oldest is dropped when the queue is full). */
static void
report_push(struct sconn *c, struct report *r)
{
	if (c->q_len == REPORTS_MAX) {
		struct report *old = &c->q[c->q_head];
		/* the one in flight can go too: its answer is then ignored */
		if (c->report_id != 0)
			c->report_id = 0;
		log_warn("report queue full (%d): dropping the report on pid "
		         "%" PRIu64 " (%s: %s)",
		    REPORTS_MAX, old->pid, old->cause, old->reason);
		report_clear(old);
		c->q_head = (c->q_head + 1) % REPORTS_MAX;
		c->q_len--;
		c->dropped++;
	}
	c->q[(c->q_head + c->q_len) % REPORTS_MAX] = *r;
	c->q_len++;
	memset(r, 0, sizeof(*r));
}

/* Carry out kill orders: kill a process running the task, or make sure
 * it never starts the task. */
static void
apply_orders(struct sup *s, const struct proto_msg *m)
{
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

/* Handle one reply from the scheduler. */
static void
conn_reply(struct sup *s, nng_msg *msg)
{
	struct sconn    *c = &s->c;
	struct proto_msg m;
	char             err[512];
	uint32_t         id;
	int              rv;

	if (util_reply_id(msg, &id) != 0)
		return;
	if (id == 0 || (id != c->hello_id && id != c->watch_id &&
	                   id != c->report_id))
		return; /* from before a reconnection */
	rv = proto_decode(&c->dec, nng_msg_body(msg), nng_msg_len(msg), &m,
	    err, sizeof(err));
	if (rv != 0) {
		log_error("bad message from the scheduler: %s", err);
		m.type = PROTO_NONE;
	}
	if (id == c->hello_id) {
		c->hello_id = 0;
		if (m.type == PROTO_WELCOME) {
			c->registered = 1;
			c->refused    = 0;
			c->id         = m.id;
			c->hb_ms      = m.heartbeat_ms > 0 ? m.heartbeat_ms : 1000;
			if (m.heartbeat_timeout_ms > 0)
				c->hb_timeout_ms = m.heartbeat_timeout_ms;
			log_info("registered with %s as supervisor %" PRIu64
			         "%s",
			    s->o->connect, c->id,
			    c->q_len > 0 ? " (sending queued reports)" : "");
			return;
		}
		/* an older scheduler, or it has not yet noticed our previous
		 * connection drop: try again later */
		if (c->refused++ == 0)
			log_warn("the scheduler refused this supervisor: %s; "
			         "trying again every %d ms (timeouts, limits "
			         "and restarts work regardless)",
			    m.type == PROTO_ERROR ? m.msg : "unexpected answer",
			    HELLO_RETRY_MS);
		else
			log_debug("hello refused again: %s",
			    m.type == PROTO_ERROR ? m.msg : "unexpected answer");
		c->next_hello_ms = util_now_ms() + HELLO_RETRY_MS;
		return;
	}
	if (m.type == PROTO_ERROR && m.code == FERRY_ESTATE) {
		/* it does not know us (it restarted?): register again */
		log_warn("scheduler: %s: registering again", m.msg);
		conn_reset(c);
		return;
	}
	if (id == c->watch_id) {
		c->watch_id = 0;
		if (m.type == PROTO_ORDERS)
			apply_orders(s, &m);
		else {
			if (m.type == PROTO_ERROR)
				log_warn("scheduler, on watch: %s", m.msg);
			c->next_watch_ms = util_now_ms() + c->hb_ms;
		}
		return;
	}
	/* the report at the head of the queue */
	c->report_id = 0;
	if (m.type == PROTO_ERROR)
		log_warn("scheduler refused the report on pid %" PRIu64
		         ": %s; dropping it",
		    c->q[c->q_head].pid, m.msg);
	report_clear(&c->q[c->q_head]);
	c->q_head = (c->q_head + 1) % REPORTS_MAX;
	c->q_len--;
	if (m.type == PROTO_ORDERS)
		apply_orders(s, &m);
}

/* Read replies and connection events; send what is due. */
static void
conn_service(struct sup *s)
{
	struct sconn *c   = &s->c;
	uint64_t      now = util_now_ms(), v;
	nng_msg      *msg;

	if (!c->open)
		return;
	if (read(c->event_fd, &v, sizeof(v)) < 0) {
		/* nothing new */
	}
	if (atomic_exchange(&c->lost, 0)) {
		if (c->registered || c->hello_id != 0)
			log_warn("lost the connection to the scheduler; "
			         "reconnecting (%zu report(s) queued)",
			    c->q_len);
		conn_reset(c);
	}
	while (nng_recvmsg(c->sock, &msg, NNG_FLAG_NONBLOCK) == 0) {
		conn_reply(s, msg);
		nng_msg_free(msg);
	}
	if (atomic_load(&c->pipes) <= 0)
		return; /* nothing would reach it: wait for the connection */
	if (!c->registered) {
		if (c->hello_id != 0 && now - c->hello_ms > HELLO_WAIT_MS)
			c->hello_id = 0; /* lost on the way */
		if (c->hello_id == 0 && now >= c->next_hello_ms)
			send_hello(s);
		return;
	}
	/* a parked watch is answered within its wait: if none comes for
	 * much longer, the request was lost; ask again (an unknown peer is
	 * told so, and registers again) */
	if (c->watch_id != 0 &&
	    now - c->watch_ms > c->hb_ms + c->hb_timeout_ms + c->hb_ms) {
		log_warn("no answer from the scheduler for %" PRIu64
		         " ms: asking again",
		    now - c->watch_ms);
		c->watch_id  = 0;
		c->report_id = 0;
	}
	if (c->watch_id == 0 && now >= c->next_watch_ms)
		send_watch(c);
	if (c->report_id == 0 && c->q_len > 0)
		send_report(c);
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
static void
report_child(struct sup *s, struct child *k, int status, int stopping)
{
	struct report r;
	uint32_t      n = wrk_slots_count(k->slots), n_run = 0, listed = 0;
	int           code = -1, blame = 0, own, fault;
	char          why[160];

	memset(&r, 0, sizeof(r));
	r.pid    = (uint64_t)k->pid;
	r.worker = wrk_slots_worker(k->slots);
	describe_status(status, why, sizeof(why));
	if (WIFEXITED(status))
		code = WEXITSTATUS(status);
	own   = exit_is_own(k, status);
	fault = wrk_slots_fault(k->slots);

	/* the tasks the table shows: running first, then those returned
	 * and not acknowledged (charged below) */
	if (n > 0 && (r.tasks = calloc(2 * (size_t)n, sizeof(*r.tasks))) !=
	        NULL) {
		for (uint32_t i = 0; i < n; i++) {
			struct wrk_slot_info si;
			if (wrk_slots_read(k->slots, i, &si))
				r.tasks[listed++].id = si.task;
		}
		n_run = listed;
		for (uint32_t i = 0; i < n; i++) {
			struct wrk_slot_info si;
			wrk_slots_read(k->slots, i, &si);
			if (si.returned != 0 &&
			    !report_has(&r, listed, si.returned))
				r.tasks[listed++].id = si.returned;
		}
	}

	switch (k->kill_cause) {
	case KILL_TIMEOUT:
		r.cause = "timeout";
		for (uint32_t i = 0; i < n_run; i++)
			r.tasks[i].charged = r.tasks[i].id == k->kill_task;
		break;
	case KILL_MEMORY:
		/* several tasks may run in the process, and nothing says
		 * which one allocated: every one is charged */
		r.cause = "memory";
		for (uint32_t i = 0; i < n_run; i++)
			r.tasks[i].charged = 1;
		break;
	case KILL_CANCEL:
		r.cause = "cancel";
		break;
	case KILL_DRAIN:
		/* stopped by us, not by its tasks */
		r.cause = "signal";
		break;
	default:
		r.cause = code < 0 ? "signal" : "exit";
		if (own && code == WRK_EXIT_RECYCLED)
			r.cause = "recycle";
		if (own && (code == WRK_EXIT_OK || code == WRK_EXIT_CONFIG ||
		               code == WRK_EXIT_LOST ||
		               code == WRK_EXIT_CRASHED ||
		               code == WRK_EXIT_RECYCLED))
			break;
		if (code < 0 && stopping && fault == 0)
			break; /* killed while we stop it all */
		/* a death: 1 the running tasks, 2 those that returned */
		blame = n_run > 0 ? 1 : listed > 0 ? 2 : 0;
		for (uint32_t i = 0; i < listed; i++)
			r.tasks[i].charged = blame == 1 ? i < n_run
			                                    : i >= n_run;
		break;
	}
	if (k->kill_cause != KILL_NONE)
		util_strlcpy(r.reason, k->kill_reason, sizeof(r.reason));
	else if (own && code == WRK_EXIT_CRASHED)
		snprintf(r.reason, sizeof(r.reason),
		    "%s: a task crashed it (reported as such)", why);
	else if (own && code == WRK_EXIT_RECYCLED)
		snprintf(r.reason, sizeof(r.reason),
		    "recycled after %" PRIu64 " task(s)", s->o->max_tasks);
	else if (blame != 0 && fault == WRK_SLOTS_FAULT_FDS)
		snprintf(r.reason, sizeof(r.reason),
		    "worker aborted %s: its descriptors were closed under it "
		    "(%s)",
		    blame == 2 ? "after the task returned"
		               : "while the task ran",
		    why);
	else if (blame == 2 && fault != 0)
		snprintf(r.reason, sizeof(r.reason),
		    "worker aborted after the task returned (%s)", why);
	else if (blame == 2)
		snprintf(r.reason, sizeof(r.reason),
		    "worker process ended after the task returned, before its "
		    "result was acknowledged (%s)",
		    why);
	else if (blame == 1 && fault != 0)
		snprintf(r.reason, sizeof(r.reason),
		    "%s while the task ran, outside the task's thread", why);
	else if (blame == 1)
		snprintf(r.reason, sizeof(r.reason), "%s while the task ran",
		    why);
	else
		util_strlcpy(r.reason, why, sizeof(r.reason));
	r.n_tasks = listed;
	wrk_slots_free(k->slots);
	k->slots = NULL;

	if (listed > 0) {
		char   list[256];
		size_t off = 0;
		list[0]    = '\0';
		for (uint32_t i = 0; i < listed && off < sizeof(list) - 48;
		     i++)
			off += (size_t)snprintf(list + off, sizeof(list) - off,
			    "%s%" PRIu64 "%s%s", i ? ", " : "", r.tasks[i].id,
			    i >= n_run ? " (returned)" : "",
			    r.tasks[i].charged ? " (to blame)" : "");
		log_warn("worker process %d (pid %d, worker %" PRIu64
		         ") ended (%s: %s) with task(s) %s",
		    k->index, (int)k->pid, r.worker, r.cause, r.reason, list);
	}
	if (!s->c.open) {
		report_clear(&r);
		return;
	}
	report_push(&s->c, &r);
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

int
wrk_supervise(const struct wrk_options *o, int processes, const char *exe)
{
	struct sup s;
	sigset_t   mask;
	int        sfd, stopping = 0, rc = 0;
	uint64_t   stop_deadline = 0, next_mem = 0;

	memset(&s, 0, sizeof(s));
	s.o          = o;
	s.exe        = exe;
	s.n          = processes < 1 ? 1 : processes;
	s.c.event_fd = -1;
	if (gethostname(s.host, sizeof(s.host) - 1) != 0)
		strcpy(s.host, "localhost");
	if ((s.kids = calloc((size_t)s.n, sizeof(*s.kids))) == NULL)
		return 1;
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
	if ((sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		log_error("signalfd: %s", strerror(errno));
		free(s.kids);
		return 1;
	}
	conn_open(&s);
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
		struct child *k = &s.kids[i];
		k->index      = i;
		k->backoff_ms = BACKOFF_MIN_MS;
		if ((k->pid = spawn_one(&s, k)) > 0) {
			k->started_ms = util_now_ms();
			s.alive++;
		} else {
			k->pid   = 0;
			rc       = 1;
			stopping = 1;
		}
	}

	while (s.alive > 0 || !stopping) {
		struct pollfd pfd[3];
		uint64_t      now = util_now_ms();
		int           status, nfd = 1, ended;
		pid_t         pid;

		/* restarts that are due */
		for (int i = 0; i < s.n && !stopping; i++) {
			struct child *k = &s.kids[i];
			if (k->pid == 0 && k->restart_at_ms != 0 &&
			    now >= k->restart_at_ms) {
				k->restart_at_ms = 0;
				k->restarts++;
				if ((k->pid = spawn_one(&s, k)) > 0) {
					k->started_ms = now;
					s.alive++;
				} else {
					k->pid           = 0;
					k->restart_at_ms = now + BACKOFF_MAX_MS;
				}
			}
		}
		if (stopping && now >= stop_deadline && s.alive > 0) {
			log_warn("drain timeout: killing %d worker process(es)",
			    s.alive);
			for (int i = 0; i < s.n; i++)
				kill_child(&s.kids[i], KILL_DRAIN, 0,
				    "stopped: still running after the drain "
				    "timeout of %u ms",
				    o->drain_timeout_ms);
			stop_deadline = UINT64_MAX;
		}
		check_deadlines(&s, now);
		if (o->memory_limit > 0 && now >= next_mem) {
			check_memory(&s);
			next_mem = now + MEMORY_CHECK_MS;
		}
		conn_service(&s);

		pfd[0].fd     = sfd;
		pfd[0].events = POLLIN;
		if (s.c.open) {
			pfd[1].fd     = s.c.recv_fd;
			pfd[1].events = POLLIN;
			pfd[2].fd     = s.c.event_fd;
			pfd[2].events = POLLIN;
			nfd           = 3;
		}
		if (poll(pfd, (nfds_t)nfd, TICK_MS) < 0 && errno != EINTR)
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
				    si.ssi_signo, s.alive, o->drain_timeout_ms);
				stopping      = 1;
				stop_deadline = util_now_ms() +
				    o->drain_timeout_ms + 1000;
				for (int i = 0; i < s.n; i++)
					drain_child(&s.kids[i]);
			}
		}
		ended = 0;
		for (int guard = 0; guard < 4096; guard++) {
			siginfo_t     wi;
			struct child *k = NULL;
			/* look first, reap after: while it is a zombie its
			 * pid, which is its process group's id, is still
			 * taken, so killing the group cannot hit anyone
			 * else's */
			memset(&wi, 0, sizeof(wi));
			if (waitid(P_ALL, 0, &wi,
			        WEXITED | WNOHANG | WNOWAIT) != 0 ||
			    wi.si_pid <= 0)
				break;
			pid = wi.si_pid;
			for (int i = 0; i < s.n && k == NULL; i++)
				if (s.kids[i].pid == pid)
					k = &s.kids[i];
			if (k != NULL)
				kill(-pid, SIGKILL); /* what it left behind */
			if (waitpid(pid, &status, WNOHANG) != pid)
				break;
			if (k == NULL)
				continue; /* an orphan that came back to us */
			ended++;
			if (child_ended(&s, k, status, stopping) ==
			        WRK_EXIT_CONFIG &&
			    !stopping) {
				rc            = WRK_EXIT_CONFIG;
				stopping      = 1;
				stop_deadline = util_now_ms() +
				    o->drain_timeout_ms;
				for (int j = 0; j < s.n; j++)
					drain_child(&s.kids[j]);
			}
		}
		if (ended > 0)
			kill_orphans(&s);
	}
	/* nothing a task started outlives the supervisor */
	kill_orphans(&s);
	/* the last reports, if the scheduler is there to take them */
	if (s.c.open && s.c.q_len > 0) {
		uint64_t end = util_now_ms() + FLUSH_MS;
		while (s.c.q_len > 0 && util_now_ms() < end) {
			struct pollfd pfd = { s.c.recv_fd, POLLIN, 0 };
			conn_service(&s);
			poll(&pfd, 1, 20);
		}
		if (s.c.q_len > 0)
			log_warn("%zu report(s) not delivered: the scheduler "
			         "did not take them",
			    s.c.q_len);
	}
	conn_close(&s.c);
	for (int i = 0; i < s.n; i++)
		wrk_slots_free(s.kids[i].slots);
	close(sfd);
	free(s.kids);
	log_info("worker supervisor stopped");
	return rc;
}
