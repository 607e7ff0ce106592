/*
 * test_multihost.c - `ferry cluster up|status|down` across hosts, for real.
 *
 * Three network namespaces (ferry-PID-h1..h3) joined by veth pairs to a
 * bridge in a fourth (ferry-PID-br) play three machines on one subnet.  A
 * fake ssh (a script this test writes, named as ssh.command) runs each
 * command in the named host's namespace, with its own mount namespace in
 * which DIR/data is that host's private disk: so `cluster up` takes its
 * real SSH path (detached remote processes, remote pids, remote logs)
 * without an sshd.  The scheduler runs on h1, two workers each on h2 and
 * h3; tasks sum object files from each host's own disk; h3's link is cut
 * while tasks run and every task must still finish, correctly, on h2.
 * Needs root and `ip netns`; skipped otherwise.
 *
 * The unreachable-host check needs neither and always runs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
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
#include <msgpack.h>

#include "ferry/ferry.h"
#include "harness.h"
#include "util.h"

#define WORDS 4096 /* u64 words in the object file */
#define N_TASKS 48 /* tasks of the cut-off run */

static char ns_prefix[64]; /* ferry-PID */
static int  ns_made; /* namespaces to delete at exit */
static int  orig_netns = -1;

/* Run a shell command quietly; returns its exit status (or -1). */
static int
sh(const char *fmt, ...)
{
	char    cmd[2048];
	va_list ap;
	int     st;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Pids of processes in namespace NAME (ip netns pids), up to max. */
static int
ns_pids(const char *name, pid_t *pids, int max)
{
	char  cmd[256], line[64];
	FILE *p;
	int   n = 0;
	snprintf(cmd, sizeof(cmd), "ip netns pids %s-%s 2>/dev/null",
	    ns_prefix, name);
	if ((p = popen(cmd, "r")) == NULL)
		return 0;
	while (n < max && fgets(line, sizeof(line), p) != NULL) {
		/* a zombie has ended: only its parent (or an init that does
		 * not reap) keeps it listed */
		if (atoi(line) > 0 && atoi(line) != getpid()
		    && h_alive(atoi(line)))
			pids[n++] = atoi(line);
	}
	pclose(p);
	return n;
}

/* The command line of pid, its arguments joined by spaces, into buf
 * (truncated to len - 1 bytes); 0, or -1 when there is no such
 * process. */
static int
cmdline_of(pid_t pid, char *buf, size_t len)
{
	char   path[64];
	FILE  *f;
	size_t n;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	for (size_t i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	buf[n] = '\0';
	return 0;
}

/* Whether pid is a ferry process (its command line says so); processes
 * this test runs itself (ip, sh) pass through the namespaces too. */
static int
is_ferry(pid_t pid)
{
	char buf[256];
	if (cmdline_of(pid, buf, sizeof(buf)) != 0)
		return 0;
	return strstr(buf, "ferry") != NULL && strstr(buf, "test_") == NULL;
}

/* Kill every process of the test's namespaces and delete them. */
static void
ns_destroy(void)
{
	static const char *const names[] = { "h1", "h2", "h3", "br" };
	if (!ns_made)
		return;
	if (orig_netns >= 0)
		setns(orig_netns, CLONE_NEWNET);
	for (int round = 0; round < 50; round++) {
		int left = 0;
		for (size_t i = 0; i < 4; i++) {
			pid_t pids[256];
			int   n = ns_pids(names[i], pids, 256);
			for (int k = 0; k < n; k++)
				if (pids[k] != getpid())
					kill(pids[k], SIGKILL), left++;
		}
		if (left == 0)
			break;
		usleep(100000);
	}
	for (size_t i = 0; i < 4; i++)
		sh("ip netns del %s-%s 2>/dev/null", ns_prefix, names[i]);
	ns_made = 0;
}

/* Whether any process's command line contains needle. */
static int
procs_with(const char *needle)
{
	DIR           *d = opendir("/proc");
	struct dirent *e;
	int            n = 0;
	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		char buf[4096];
		if (atoi(e->d_name) <= 0 || atoi(e->d_name) == getpid())
			continue;
		if (cmdline_of(atoi(e->d_name), buf, sizeof(buf)) != 0)
			continue;
		if (strstr(buf, needle) != NULL
		    && strstr(buf, "ferry") != NULL)
			n++;
	}
	closedir(d);
	return n;
}

/* The fake ssh: `fakessh HOST -- COMMAND` runs COMMAND with sh in HOST's
 * network namespace, with DIR/disk-HOST mounted on DIR/data; host nohost
 * fails the way ssh does. */
static void
write_fake_ssh(const char *path, int with_netns)
{
	char text[2048];
	snprintf(text, sizeof(text),
	    "#!/bin/sh\n"
	    "host=$1; shift\n"
	    "[ \"$1\" = -- ] && shift\n"
	    "case $host in\n"
	    "nohost) echo \"ssh: connect to host nohost port 22: No route to "
	    "host\" >&2; exit 255;;\n"
	    "h1|h2|h3) ;;\n"
	    "*) echo \"ssh: Could not resolve hostname $host\" >&2; exit "
	    "255;;\n"
	    "esac\n"
	    "%s",
	    with_netns ? "" : "exec sh -c \"$*\"\n");
	if (with_netns) {
		size_t at = strlen(text);
		snprintf(text + at, sizeof(text) - at,
		    "exec ip netns exec %s-$host unshare -m --propagation "
		    "private sh -c 'mount --bind \"$1\" \"$2\" && exec sh -c "
		    "\"$3\"' sh %s/disk-$host %s/data \"$*\"\n",
		    ns_prefix, h_dir(), h_dir());
	}
	h_write_file(path, 0755, "%s", text);
}

/* A cluster file naming nohost fails up with the host named and ssh's
 * message, and leaves no process behind. */
static void
test_unreachable_host(void **state)
{
	char        fake[600], file[700], url[600], dir[600];
	char       *out = NULL, *err = NULL;
	const char *args[5];
	int         rc;

	(void)state;
	snprintf(fake, sizeof(fake), "%s/fakessh-local", h_dir());
	write_fake_ssh(fake, 0);
	h_ipc_url(url, sizeof(url), "unreach");
	snprintf(dir, sizeof(dir), "%s/state-unreach", h_dir());
	snprintf(file, sizeof(file), "%s/unreach.yaml", h_dir());
	h_write_file(file, 0644,
	    "cluster: {name: unreach-%d, state_dir: %s}\n"
	    "scheduler:\n  listen: %s\n  connect_timeout: 5s\n"
	    "ssh:\n  command: [%s]\n  ferry: %s\n"
	    "workers:\n"
	    "  - name: far\n    processes: 1\n    libraries: "
	    "[ferry_examples]\n    hosts: [nohost]\n",
	    (int)getpid(), dir, url, fake, h_ferry());

	args[0] = "cluster";
	args[1] = "up";
	args[2] = "-f";
	args[3] = file;
	args[4] = NULL;
	rc      = h_run(args, 60000, &out, &err);
	assert_int_not_equal(rc, 0);
	assert_non_null(err);
	if (strstr(err, "host 'nohost'") == NULL
	    || strstr(err, "No route to host") == NULL)
		fail_msg(
		    "the error should name the host and ssh's message: %s",
		    err);
	/* the scheduler it started is gone, and so is the state */
	assert_int_equal(procs_with(url + strlen("ipc://")), 0);
	snprintf(file, sizeof(file), "%s/cluster.state", dir);
	assert_int_not_equal(access(file, F_OK), 0);
	free(out);
	free(err);
}

/* A host whose binary path is wrong, and a host whose processes never
 * register (its ferry is a wrapper that dials a dead address): each
 * fails up with the host and the cause named, and nothing is left. */
static void
test_bad_hosts(void **state)
{
	char        fake[600], file[700], url[600], dir[600];
	char        wrap[700], *out = NULL, *err = NULL;
	const char *args[5] = { "cluster", "up", "-f", NULL, NULL };
	int         rc;

	(void)state;
	snprintf(fake, sizeof(fake), "%s/fakessh-local", h_dir());
	write_fake_ssh(fake, 0);
	snprintf(wrap, sizeof(wrap), "%s/ferry-dead-end", h_dir());
	h_write_file(wrap, 0755,
	    "#!/bin/sh\nexec %s \"$@\" --connect tcp://127.0.0.1:9\n",
	    h_ferry());
	snprintf(dir, sizeof(dir), "%s/state-bad", h_dir());
	snprintf(file, sizeof(file), "%s/bad.yaml", h_dir());
	args[3] = file;

	/* a wrong remote path */
	h_ipc_url(url, sizeof(url), "badpath");
	h_write_file(file, 0644,
	    "cluster: {name: badpath-%d, state_dir: %s}\n"
	    "scheduler:\n  listen: %s\n  connect_timeout: 5s\n"
	    "ssh:\n  command: [%s]\n  ferry: %s\n"
	    "workers:\n"
	    "  - name: g\n    processes: 1\n    libraries: "
	    "[ferry_examples]\n    hosts:\n      - h1\n"
	    "      - {name: h2, ferry: /nonexistent/bin/ferry}\n",
	    (int)getpid(), dir, url, fake, h_ferry());
	rc = h_run(args, 60000, &out, &err);
	assert_int_not_equal(rc, 0);
	if (strstr(err, "host 'h2'") == NULL
	    || strstr(err, "/nonexistent/bin/ferry") == NULL
	    || strstr(err, "not found") == NULL)
		fail_msg("want host h2 and the missing binary named: %s", err);
	assert_int_equal(procs_with(url + strlen("ipc://")), 0);
	free(out);
	free(err);

	/* processes that never register */
	h_ipc_url(url, sizeof(url), "noreg");
	h_write_file(file, 0644,
	    "cluster: {name: noreg-%d, state_dir: %s}\n"
	    "scheduler:\n  listen: %s\n  connect_timeout: 3s\n"
	    "ssh:\n  command: [%s]\n  ferry: %s\n"
	    "workers:\n"
	    "  - name: g\n    processes: 1\n    libraries: "
	    "[ferry_examples]\n    hosts:\n      - h1\n"
	    "      - {name: h3, ferry: %s}\n",
	    (int)getpid(), dir, url, fake, h_ferry(), wrap);
	rc = h_run(args, 60000, &out, &err);
	assert_int_not_equal(rc, 0);
	if (strstr(err, "host 'h3'") == NULL
	    || strstr(err, "0 of 1 worker processes registered") == NULL)
		fail_msg("want host h3 named as not registering: %s", err);
	if (strstr(err, "host 'h1'") != NULL)
		fail_msg("h1 registered and should not be blamed: %s", err);
	/* everything it started, on both hosts, is gone */
	{
		/* bounded, not timed: under load the stop takes a while */
		uint64_t end = util_now_ms() + 30000;
		while (procs_with(url + strlen("ipc://")) > 0
		    && util_now_ms() < end)
			usleep(50000);
	}
	assert_int_equal(procs_with(url + strlen("ipc://")), 0);
	assert_int_equal(procs_with("127.0.0.1:9"), 0);
	free(out);
	free(err);
}

struct host_done {
	const char *host;
	int         workers;
	uint64_t    done;
};

/* Count worker w (a status worker_list entry) when its name is
 * HOST/... */
static void
add_done(const msgpack_object *w, void *arg)
{
	struct host_done     *h  = arg;
	const msgpack_object *nm = h_mp_get(w, "name");
	const msgpack_object *d  = h_mp_get(w, "done");
	size_t                hl = strlen(h->host);
	if (nm != NULL && nm->type == MSGPACK_OBJECT_STR
	    && nm->via.str.size > hl
	    && memcmp(nm->via.str.ptr, h->host, hl) == 0
	    && nm->via.str.ptr[hl] == '/') {
		h->workers++;
		if (d != NULL && d->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			h->done += d->via.u64;
	}
}

/* Tasks done by the workers named HOST/... (from the status), and how
 * many such workers are registered. */
static uint64_t
done_on(ferry_client *c, const char *host, int *workers)
{
	struct host_done h = { host, 0, 0 };
	h_status_workers(c, add_done, &h);
	*workers = h.workers;
	return h.done;
}

/* sum_u64 over words [first, first + n) of DIR/data/obj.bin. */
static ferry_future *
submit_sum(ferry_client *c, uint64_t first, uint64_t n, uint64_t delay)
{
	char            path[600];
	uint8_t         ref[1024];
	size_t          len;
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	ferry_future   *f = NULL;

	snprintf(path, sizeof(path), "%s/data/obj.bin", h_dir());
	assert_int_equal(
	    ferry_object_ref(ref, sizeof(ref), &len, path, NULL, 0, NULL), 0);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_ext(&pk, len, FERRY_EXT_OBJECT);
	msgpack_pack_ext_body(&pk, ref, len);
	msgpack_pack_uint64(&pk, first * 8);
	msgpack_pack_uint64(&pk, n * 8);
	msgpack_pack_uint64(&pk, delay);
	assert_int_equal(ferry_submit(c, "sum_u64", sb.data, sb.size, &f), 0);
	msgpack_sbuffer_destroy(&sb);
	return f;
}

static uint64_t
expected_sum(uint64_t first, uint64_t n)
{
	uint64_t s = 0;
	for (uint64_t i = first; i < first + n; i++)
		s += i * 7 + 1;
	return s;
}

static void
check_result(ferry_future *f, uint64_t want, int timeout_ms)
{
	const void *data;
	size_t      len;
	uint64_t    v  = 0;
	int         rv = ferry_future_wait(f, timeout_ms);
	if (rv != 0)
		fail_msg("task did not finish: %s", ferry_strerror(rv));
	rv = ferry_future_result(f, &data, &len);
	if (rv != 0)
		fail_msg("task failed: %s: %s", ferry_strerror(rv),
		    ferry_future_error(f));
	assert_int_equal(h_unpack_uint(data, len, &v), 0);
	assert_true(v == want);
}

/* A CA, a scheduler certificate for ip (its SAN), a client certificate
 * and a token in DIR/tls; 0, or -1 when openssl is missing or fails. */
static int
make_certs(const char *ip)
{
	const char *key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
	                  "-nodes";
	char        path[700];
	if (system("openssl version >/dev/null 2>&1") != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/tls", h_dir());
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/tls/token", h_dir());
	h_write_file(path, 0600, "multihost-test-token-0123456789abcdef\n");
	return sh("cd '%s/tls' && ( "
	          "openssl req -x509 %s -keyout ca.key -out ca.pem -days 2 "
	          "-subj /CN=ferry-mh-ca "
	          "-addext basicConstraints=critical,CA:TRUE "
	          "-addext keyUsage=keyCertSign,cRLSign && "
	          /* NNG's mbed TLS matches the name as DNS, not IP */
	          "printf 'subjectAltName=DNS:%s,IP:%s\\n' > server.ext && "
	          "openssl req %s -keyout server.key -out server.csr "
	          "-subj /CN=%s && "
	          "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
	          "-CAcreateserial -out server.crt -days 2 -extfile "
	          "server.ext "
	          "&& cat server.crt server.key > server.pem && "
	          "openssl req %s -keyout client.key -out client.csr "
	          "-subj /CN=ferry-mh-client && "
	          "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key "
	          "-CAcreateserial -out client.crt -days 2 && "
	          "cat client.crt client.key > client.pem && "
	          "chmod 600 server.pem client.pem ) >openssl.out 2>&1",
	           h_dir(), key, ip, ip, key, ip, key)
	        == 0
	    ? 0
	    : -1;
}

static int
run_cluster(const char *action, const char *file, int timeout_ms, char **out,
    char **err)
{
	const char *args[5] = { "cluster", action, "-f", file, NULL };
	return h_run(args, timeout_ms, out, err);
}

static void
test_three_hosts(void **state)
{
	char          fake[600], file[600], dir[600], path[700];
	char          url[128], net[32], *out = NULL, *err = NULL;
	char          ns[128], security[2048] = "";
	ferry_client *c = NULL;
	int           tls;
	ferry_future *fs[N_TASKS];
	int           rc, fd, w2, w3;
	uint64_t      d2, d3, end;
	unsigned      pid = (unsigned)getpid();

	(void)state;
	if (geteuid() != 0) {
		fprintf(stderr, "skipped: the three-host test needs root "
		                "(network namespaces)\n");
		skip();
	}
	if (sh("command -v unshare >/dev/null 2>&1 && command -v mount "
	       ">/dev/null 2>&1") != 0) {
		fprintf(stderr, "skipped: unshare and mount (util-linux) are "
		                "needed\n");
		skip();
	}
	snprintf(ns_prefix, sizeof(ns_prefix), "ferry-%u", pid);
	/* 10.X.Y.0/24 with X in 200..249: unlikely to be anyone's */
	snprintf(
	    net, sizeof(net), "10.%u.%u", 200 + pid % 50, (pid / 50) % 250);
	if (sh("ip netns add %s-br 2>/dev/null", ns_prefix) != 0) {
		fprintf(stderr,
		    "skipped: 'ip netns add' failed (needs root "
		    "and iproute2 with netns support)\n");
		skip();
	}
	ns_made = 1;
	if (sh("ip -n %s-br link set lo up && ip -n %s-br link add br0 type "
	       "bridge && ip -n %s-br link set br0 up",
	        ns_prefix, ns_prefix, ns_prefix)
	    != 0)
		fail_msg("cannot make the bridge namespace");
	for (int i = 1; i <= 3; i++) {
		if (sh("ip netns add %s-h%d", ns_prefix, i) != 0
		    || sh("ip -n %s-br link add vb%d type veth peer name eth0 "
		          "netns %s-h%d",
		           ns_prefix, i, ns_prefix, i)
		        != 0
		    || sh("ip -n %s-br link set vb%d master br0 up", ns_prefix,
		           i)
		        != 0
		    || sh("ip -n %s-h%d addr add %s.%d/24 dev eth0", ns_prefix,
		           i, net, i)
		        != 0
		    || sh("ip -n %s-h%d link set eth0 up && ip -n %s-h%d link "
		          "set "
		          "lo up",
		           ns_prefix, i, ns_prefix, i)
		        != 0)
			fail_msg("cannot make namespace h%d", i);
	}

	/* each host's disk: the same file, in its own directory */
	snprintf(path, sizeof(path), "%s/data", h_dir());
	mkdir(path, 0755);
	for (int i = 1; i <= 3; i++) {
		uint64_t words[WORDS];
		FILE    *f;
		snprintf(path, sizeof(path), "%s/disk-h%d", h_dir(), i);
		mkdir(path, 0755);
		snprintf(
		    path, sizeof(path), "%s/disk-h%d/obj.bin", h_dir(), i);
		for (uint64_t k = 0; k < WORDS; k++)
			words[k] = k * 7 + 1;
		assert_non_null(f = fopen(path, "wb"));
		assert_int_equal(fwrite(words, 8, WORDS, f), WORDS);
		assert_int_equal(fclose(f), 0);
	}

	snprintf(fake, sizeof(fake), "%s/fakessh", h_dir());
	write_fake_ssh(fake, 1);
	{
		char ip[48];
		snprintf(ip, sizeof(ip), "%s.1", net);
		tls = make_certs(ip) == 0;
		if (!tls)
			fprintf(stderr,
			    "openssl is missing or failed: this "
			    "run goes without TLS and token\n");
	}
	snprintf(url, sizeof(url), "%s://%s.1:%u", tls ? "tls+tcp" : "tcp",
	    net, 7000 + pid % 1000);
	if (tls)
		snprintf(security, sizeof(security),
		    "security:\n"
		    "  token_file: %s/tls/token\n"
		    "  tls:\n"
		    "    cert_key_file: %s/tls/server.pem\n"
		    "    ca_file: %s/tls/ca.pem\n"
		    "    require_client_cert: true\n"
		    "    client_cert_key_file: %s/tls/client.pem\n",
		    h_dir(), h_dir(), h_dir(), h_dir());
	snprintf(dir, sizeof(dir), "%s/state-mh", h_dir());
	snprintf(file, sizeof(file), "%s/mh.yaml", h_dir());
	h_write_file(file, 0644,
	    "cluster: {name: mh-%u, state_dir: %s}\n"
	    "scheduler:\n"
	    "  host: h1\n"
	    "  listen: %s\n"
	    "  heartbeat_interval: 300ms\n"
	    "  heartbeat_timeout: 1500ms\n"
	    "  connect_timeout: 20s\n"
	    "  drain_timeout: 3s\n"
	    "ssh:\n  command: [%s]\n  ferry: %s\n"
	    "%s"
	    "workers:\n"
	    "  - name: sum\n"
	    "    processes: 2\n"
	    "    prefetch: 0\n"
	    "    libraries: [ferry_examples]\n"
	    "    object_roots: [/nonexistent-group-root]\n"
	    "    hosts:\n"
	    "      - name: h2\n"
	    "        object_roots: [%s/data]\n"
	    "      - name: h3\n"
	    "        ferry: %s\n"
	    "        object_roots: [%s/data, %s/disk-h3]\n",
	    pid, dir, url, fake, h_ferry(), security, h_dir(), h_ferry(),
	    h_dir(), h_dir());

	/* this process (and what it runs) lives on h1 from now on */
	orig_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	assert_true(orig_netns >= 0);
	snprintf(ns, sizeof(ns), "/var/run/netns/%s-h1", ns_prefix);
	assert_true((fd = open(ns, O_RDONLY | O_CLOEXEC)) >= 0);
	assert_int_equal(setns(fd, CLONE_NEWNET), 0);
	close(fd);

	rc = run_cluster("up", file, 90000, &out, &err);
	if (rc != 0)
		fail_msg("cluster up failed (%d):\n%s\n%s", rc, out ? out : "",
		    err ? err : "");
	printf("%s", out);
	assert_non_null(strstr(out, "host h2: 2 process(es) registered"));
	assert_non_null(strstr(out, "host h3: 2 process(es) registered"));
	assert_non_null(strstr(out, "on h1"));
	free(out);
	free(err);
	out = err = NULL;

	rc = run_cluster("status", file, 60000, &out, &err);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "host h2: supervisor pid"));
	assert_non_null(strstr(out, "running, 2 of 2 process(es)"));
	free(out);
	free(err);
	out = err = NULL;

	{
		struct ferry_client_opts o;
		char                     ca[700], cert[700], token[700];
		char                     ebuf[512] = "";
		memset(&o, 0, sizeof(o));
		o.size               = sizeof(o);
		o.connect_timeout_ms = 10000;
		o.errbuf             = ebuf;
		o.errbuf_len         = sizeof(ebuf);
		if (tls) {
			snprintf(ca, sizeof(ca), "%s/tls/ca.pem", h_dir());
			snprintf(
			    cert, sizeof(cert), "%s/tls/client.pem", h_dir());
			snprintf(
			    token, sizeof(token), "%s/tls/token", h_dir());
			o.tls_ca_file       = ca;
			o.tls_cert_key_file = cert;
			o.token_file        = token;
		}
		rc = ferry_client_connect_opts(&c, url, &o);
		if (rc != 0)
			fail_msg("connect %s: %s: %s", url, ferry_strerror(rc),
			    ebuf);
	}
	/* a first round reaches both hosts, each reading its own disk */
	for (int i = 0; i < 8; i++)
		fs[i] = submit_sum(c, (uint64_t)i * 64, 512, 200);
	for (int i = 0; i < 8; i++) {
		check_result(
		    fs[i], expected_sum((uint64_t)i * 64, 512), 30000);
		ferry_future_free(fs[i]);
	}
	d2 = done_on(c, "h2", &w2);
	d3 = done_on(c, "h3", &w3);
	assert_int_equal(w2, 2);
	assert_int_equal(w3, 2);
	assert_true(d2 > 0 && d3 > 0);

	/* cut h3 off while tasks run: all of them end right, on h2 */
	for (int i = 0; i < N_TASKS; i++)
		fs[i] = submit_sum(c, (uint64_t)i * 32, 1024, 150);
	end = util_now_ms() + 20000;
	while (done_on(c, "h3", &w3) < d3 + 2 && util_now_ms() < end)
		usleep(50000);
	assert_int_equal(sh("ip -n %s-h3 link set eth0 down", ns_prefix), 0);
	for (int i = 0; i < N_TASKS; i++) {
		check_result(
		    fs[i], expected_sum((uint64_t)i * 32, 1024), 90000);
		ferry_future_free(fs[i]);
	}
	/* h3's workers were declared lost */
	end = util_now_ms() + 20000;
	while (done_on(c, "h3", &w3), w3 > 0 && util_now_ms() < end)
		usleep(100000);
	assert_int_equal(w3, 0);
	assert_true(h_status_uint(c, "requeued") > 0);
	ferry_client_close(c);

	rc = run_cluster("down", file, 90000, &out, &err);
	if (rc != 0)
		fail_msg("cluster down failed (%d):\n%s\n%s", rc,
		    out ? out : "", err ? err : "");
	assert_non_null(strstr(out, "is down"));
	free(out);
	free(err);
	out = err = NULL;

	/* nothing of ours is left in any namespace */
	end = util_now_ms() + 10000;
	for (;;) {
		static const char *const hosts[] = { "h1", "h2", "h3" };
		pid_t                    pids[64];
		int                      n = 0, left = 0;
		for (int i = 0; i < 3; i++) {
			n = ns_pids(hosts[i], pids, 64);
			for (int k = 0; k < n; k++)
				if (is_ferry(pids[k]))
					left++;
		}
		if (left == 0)
			break;
		if (util_now_ms() >= end) {
			for (int i = 0; i < 3; i++) {
				n = ns_pids(hosts[i], pids, 64);
				for (int k = 0; k < n; k++) {
					if (!is_ferry(pids[k]))
						continue;
					sh("echo left on %s: $(tr '\\0' ' ' "
					   "</proc/%d/cmdline) >&2",
					    hosts[i], (int)pids[k]);
				}
			}
			fail_msg(
			    "%d process(es) left after cluster down", left);
		}
		usleep(100000);
	}
	ns_destroy();
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unreachable_host),
		cmocka_unit_test(test_bad_hosts),
		cmocka_unit_test(test_three_hosts),
	};
	int rc;
	h_init(argc, argv);
	atexit(ns_destroy);
	rc = H_RUN_TESTS(tests, NULL);
	ns_destroy();
	return rc;
}
