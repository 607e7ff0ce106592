/*
 * test_security.c - TLS and token authentication, end to end: a real
 * scheduler on tls+tcp://127.0.0.1, a real `ferry worker` supervisor and
 * its processes, and clients through the library API.
 *
 * What a user relies on: with TLS and a token, tasks run as before; a
 * client with a wrong or no token is refused with FERRY_EAUTH
 * ("authentication failed"), the scheduler logs the refusal with the
 * peer's address and counts it, and nothing is registered; a client that
 * trusts another CA, or lacks its certificate when the scheduler requires
 * one, fails within its connect timeout with a message that says TLS; a
 * missing CA file is named; the token is never sent in clear text to a
 * host that is not loopback.  The certificates are made with the openssl
 * command; without it the tests are skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "ferry/ferry.h"
#include "harness.h"
#include "util.h"

static int  have_certs;
static char p_ca[512], p_ca2[512], p_server[512], p_client[512];
static char p_token[512], p_wrong[512];

/* Run a shell command in the test directory; 0 on success. */
static int
sh(const char *fmt, ...)
{
	char    cmd[4096], full[4400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "cd '%s' && (%s) >>openssl.out 2>&1",
	    h_dir(), cmd);
	return system(full) == 0 ? 0 : -1;
}

/* A CA, a second unrelated CA, a server certificate for 127.0.0.1 and
 * localhost, a client certificate; each certificate and its key in one
 * PEM file, as NNG wants them. */
static int
group_setup(void **state)
{
	const char *key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
	                  "-nodes";
	(void)state;
	snprintf(p_ca, sizeof(p_ca), "%s/ca.pem", h_dir());
	snprintf(p_ca2, sizeof(p_ca2), "%s/ca2.pem", h_dir());
	snprintf(p_server, sizeof(p_server), "%s/server.pem", h_dir());
	snprintf(p_client, sizeof(p_client), "%s/client.pem", h_dir());
	snprintf(p_token, sizeof(p_token), "%s/token", h_dir());
	snprintf(p_wrong, sizeof(p_wrong), "%s/wrong-token", h_dir());
	h_write_file(p_token, 0600, "0123456789abcdef-the-right-token\n");
	h_write_file(p_wrong, 0600, "0123456789abcdef-a-wrong-token!!\n");
	if (system("openssl version >/dev/null 2>&1") != 0)
		return 0;
	if (sh("openssl req -x509 %s -keyout ca.key -out ca.pem -days 2 "
	       "-subj /CN=ferry-test-ca "
	       "-addext basicConstraints=critical,CA:TRUE "
	       "-addext keyUsage=keyCertSign,cRLSign",
	        key) != 0 ||
	    sh("openssl req -x509 %s -keyout ca2.key -out ca2.pem -days 2 "
	       "-subj /CN=other-ca "
	       "-addext basicConstraints=critical,CA:TRUE "
	       "-addext keyUsage=keyCertSign,cRLSign",
	        key) != 0 ||
	    sh("printf 'subjectAltName=DNS:localhost,DNS:127.0.0.1,"
	       "IP:127.0.0.1\\n' > server.ext") != 0 ||
	    sh("openssl req %s -keyout server.key -out server.csr "
	       "-subj /CN=127.0.0.1",
	        key) != 0 ||
	    sh("openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
	       "-CAcreateserial -out server.crt -days 2 "
	       "-extfile server.ext") != 0 ||
	    sh("cat server.crt server.key > server.pem") != 0 ||
	    sh("openssl req %s -keyout client.key -out client.csr "
	       "-subj /CN=ferry-test-client",
	        key) != 0 ||
	    sh("openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key "
	       "-CAcreateserial -out client.crt -days 2") != 0 ||
	    sh("cat client.crt client.key > client.pem") != 0) {
		fprintf(stderr, "openssl failed: see %s/openssl.out\n",
		    h_dir());
		return -1;
	}
	have_certs = 1;
	return 0;
}

static void
need_certs(void)
{
	if (!have_certs) {
		fprintf(stderr, "the openssl command is not installed: "
		                "skipping (apt-get install openssl)\n");
		skip();
	}
}

/* tls+tcp://127.0.0.1:PORT on a free port. */
static void
tls_url(char *buf, size_t len)
{
	char tcp[128];
	h_tcp_url(tcp, sizeof(tcp));
	snprintf(buf, len, "tls+%s", tcp);
}

/* Connect with these security options; returns the error code and the
 * client's message in err. */
static int
connect_sec(ferry_client **c, const char *url, const char *ca,
    const char *cert, const char *token, int timeout_ms, char *err,
    size_t errlen)
{
	struct ferry_client_opts o;
	memset(&o, 0, sizeof(o));
	o.size               = sizeof(o);
	o.connect_timeout_ms = timeout_ms;
	o.tls_ca_file        = ca;
	o.tls_cert_key_file  = cert;
	o.token_file         = token;
	o.errbuf             = err;
	o.errbuf_len         = errlen;
	err[0]               = '\0';
	*c                   = NULL;
	return ferry_client_connect_opts(c, url, &o);
}

/* A client connected with these security options within 10 s; fails the
 * test with the client's message when there is none. */
static ferry_client *
connect_ok(
    const char *url, const char *ca, const char *cert, const char *token)
{
	ferry_client *c;
	char          err[1024];
	if (connect_sec(&c, url, ca, cert, token, 10000, err, sizeof(err)) !=
	    0)
		fail_msg("connect %s: %s", url, err);
	return c;
}

/* Connecting with these security options fails with code, no client and
 * a message that says text. */
static void
connect_fails(const char *url, const char *ca, const char *cert,
    const char *token, int timeout_ms, int code, const char *text)
{
	ferry_client *c;
	char          err[1024];
	assert_int_equal(connect_sec(&c, url, ca, cert, token, timeout_ms, err,
	                     sizeof(err)),
	    code);
	assert_null(c);
	assert_non_null(strstr(err, text));
}

/* `ferry ARGS` fails within timeout_ms, its error output saying text. */
static void
run_fails(const char *const *args, int timeout_ms, const char *text)
{
	h_run_want(args, timeout_ms,
	    &(struct h_want){ .rc = H_RC_FAILED, .err_has = { text } });
}

/* Tasks run end to end over TLS with a token: scheduler, supervisor and
 * worker processes, client.  Then wrong and missing tokens are refused,
 * logged with the peer's address, counted, and register nothing. */
static void
test_tls_token(void **state)
{
	char          url[160];
	ferry_client *c;
	const char   *sargs[] = { "--tls-cert-key", p_server, "--token-file",
		  p_token, NULL };
	const char   *wargs[] = { "--tls-ca", p_ca, "--token-file", p_token,
		  NULL };
	(void)state;
	need_certs();
	tls_url(url, sizeof(url));
	h_scheduler(url, sargs);
	h_workers(url, 1, wargs);
	c = connect_ok(url, p_ca, NULL, p_token);
	assert_int_equal(h_wait_workers(c, 1, 20000), 0);
	h_expect_square(c, 7);
	h_expect_square(c, 12);
	assert_int_equal(h_wait_status_min(c, "supervisors", 1, 10000), 0);
	assert_int_equal(h_status_uint(c, "auth_failures"), 0);
	assert_int_equal(h_wait_log("scheduler", "(token required)", 1, 1000),
	    0);

	/* a wrong token */
	connect_fails(url, p_ca, NULL, p_wrong, 5000, FERRY_EAUTH,
	    "authentication failed");
	assert_string_equal(ferry_strerror(FERRY_EAUTH),
	    "authentication failed");
	/* no token at all */
	connect_fails(url, p_ca, NULL, NULL, 5000, FERRY_EAUTH,
	    "authentication failed");
	assert_int_equal(h_wait_log("scheduler", "wrong token", 1, 2000), 0);
	assert_int_equal(h_wait_log("scheduler", "no token", 1, 2000), 0);
	assert_true(h_log_count("scheduler", "from 127.0.0.1:") >= 2);
	assert_int_equal(h_status_uint(c, "auth_failures"), 2);
	/* neither registered a session */
	assert_int_equal(h_status_uint(c, "clients"), 1);
	h_expect_square(c, 3);
	ferry_client_close(c);
}

/* A worker with a wrong token is refused and its supervisor stops rather
 * than restarting it forever. */
static void
test_worker_wrong_token(void **state)
{
	char          url[160];
	ferry_client *c;
	pid_t         w;
	const char   *sargs[] = { "--tls-cert-key", p_server, "--token-file",
		  p_token, NULL };
	const char   *wargs[] = { "--tls-ca", p_ca, "--token-file", p_wrong,
		  NULL };
	(void)state;
	need_certs();
	tls_url(url, sizeof(url));
	h_scheduler(url, sargs);
	w = h_workers(url, 1, wargs);
	c = connect_ok(url, p_ca, NULL, p_token);
	assert_int_equal(h_wait_log("scheduler", "worker hello refused", 1,
	                     20000),
	    0);
	assert_int_equal(h_wait_gone(w, 20000), 0);
	assert_int_equal(h_status_uint(c, "workers"), 0);
	assert_true(h_status_uint(c, "auth_failures") >= 1);
	assert_true(h_wait_log("workers", "authentication failed", 1, 1000) ==
	    0);
	ferry_client_close(c);
}

/* A client that trusts another CA fails within its timeout, saying TLS;
 * missing or unusable files are named at once. */
static void
test_wrong_ca(void **state)
{
	char        url[160];
	uint64_t    t0;
	const char *sargs[] = { "--tls-cert-key", p_server, "--token-file",
		p_token, NULL };
	(void)state;
	need_certs();
	tls_url(url, sizeof(url));
	h_scheduler(url, sargs);
	/* the right CA works (the scheduler is up) */
	ferry_client_close(connect_ok(url, p_ca, NULL, p_token));

	t0 = util_now_ms();
	connect_fails(url, p_ca2, NULL, p_token, 1500, FERRY_ECONNECT,
	    "TLS handshake failed or the scheduler is unreachable");
	assert_true(util_now_ms() - t0 < 6000); /* 1.5 s + a bounded close */

	/* a missing CA file is named, at once */
	connect_fails(url, "/nonexistent/ca.pem", NULL, p_token, 1500,
	    FERRY_EINVAL, "/nonexistent/ca.pem");
	/* a file that is no certificate */
	connect_fails(
	    url, p_token, NULL, p_token, 1500, FERRY_EINVAL, p_token);
	/* a TLS address without a CA */
	connect_fails(url, NULL, NULL, p_token, 1500, FERRY_EINVAL, "CA");
}

/* With require_client_cert, a client without its certificate cannot
 * connect; with it, it can. */
static void
test_require_client_cert(void **state)
{
	char          url[160];
	ferry_client *c;
	const char   *sargs[] = { "--tls-cert-key", p_server, "--tls-ca",
		  p_ca, "--require-client-cert", "--token-file", p_token,
		  NULL };
	(void)state;
	need_certs();
	tls_url(url, sizeof(url));
	h_scheduler(url, sargs);
	c = connect_ok(url, p_ca, p_client, p_token);
	assert_int_equal(h_status_uint(c, "clients"), 1);
	ferry_client_close(c);
	/* the scheduler is up: without the certificate, no connection */
	connect_fails(url, p_ca, NULL, p_token, 1500, FERRY_ECONNECT,
	    "TLS handshake failed");
}

/* A token goes over plain tcp only to loopback: to any other host the
 * client refuses before dialling (no packet leaves); a scheduler with a
 * missing token file does not start and names it. */
static void
test_token_plain_tcp(void **state)
{
	char        url[160], tls[160];
	const char *sargs[]  = { "--token-file", p_token, NULL };
	const char *bad[]    = { "scheduler", "--listen", url, "--token-file",
		   "/nonexistent/token", NULL };
	const char *nocert[] = { "scheduler", "--listen", tls,
		"--tls-cert-key", "/nonexistent/server.pem", NULL };
	(void)state;
	h_tcp_url(url, sizeof(url));
	h_scheduler(url, sargs);
	ferry_client_close(connect_ok(url, NULL, NULL, p_token));
	connect_fails("tcp://192.0.2.1:7710", NULL, NULL, p_token, 1000,
	    FERRY_EINVAL, "refusing to send the token");

	h_tcp_url(url, sizeof(url));
	run_fails(bad, 10000, "/nonexistent/token");
	/* nor one whose certificate file is missing */
	tls_url(tls, sizeof(tls));
	run_fails(nocert, 10000, "/nonexistent/server.pem");
}

/* The same from a cluster file: its security section (relative paths
 * resolved against the file's directory) reaches the scheduler, the
 * supervisor and its processes, and `ferry submit` / `ferry status`. */
static void
test_cluster_file(void **state)
{
	char url[160], file[600];
	(void)state;
	need_certs();
	tls_url(url, sizeof(url));
	snprintf(file, sizeof(file), "%s/secure.yaml", h_dir());
	h_write_file(file, 0644,
	    "cluster:\n"
	    "  name: secure\n"
	    "scheduler:\n"
	    "  listen: %s\n"
	    "security:\n"
	    "  token_file: token\n"
	    "  tls:\n"
	    "    cert_key_file: server.pem\n"
	    "    ca_file: ./ca.pem\n"
	    "    require_client_cert: true\n"
	    "    client_cert_key_file: client.pem\n"
	    "    server_name: localhost\n"
	    "workers:\n"
	    "  - name: default\n"
	    "    processes: 1\n"
	    "    libraries: [ferry_examples]\n",
	    url);
	{
		const char *sargs[] = { "scheduler", "-f", file, NULL };
		const char *wargs[] = { "worker", "-f", file, NULL };
		h_start_scheduler("scheduler", sargs);
		h_start("workers", wargs);
	}
	{
		const char *sub[] = { "submit", "-f", file, "square", "9",
			NULL };
		h_run_want(sub, 30000, &(struct h_want){ .out_has = { "81" } });
	}
	{
		const char *st[] = { "status", "-f", file, NULL };
		h_run_want(st, 20000,
		    &(struct h_want){ .out_has = { "0 authentication failure(s)",
		                          "1 process(es)" } });
	}
	{
		/* the flags override the file: a wrong token is refused */
		const char *st[] = { "status", "-f", file, "--token-file",
			p_wrong, NULL };
		run_fails(st, 20000, "authentication failed");
	}
}

/*
 * A peer that keeps guessing the token: every guess is refused and
 * counted, the log shows the first few and then one summary line, and a
 * peer with the right token is welcomed at once all the same.
 */
static void
test_token_guessing(void **state)
{
	char          url[160];
	ferry_client *c;
	struct h_peer p;
	const char   *args[] = { "scheduler", "--listen", url, "--token-file",
		  p_token, NULL };
	enum { GUESSES = 14 };
	(void)state;

	h_ipc_url(url, sizeof(url), "guess");
	h_start_scheduler("sched-guess", args);
	h_peer_open(&p, url);
	for (int i = 0; i < GUESSES; i++) {
		struct proto_hello h = { 0 };
		char               guess[32];
		snprintf(guess, sizeof(guess), "guess-%d", i);
		h.session = 77;
		h.token   = guess;
		proto_writer_reset(&p.w);
		proto_write_hello_client(&p.w, &h);
		assert_int_equal(h_peer_call(&p, 20000), 0);
		assert_int_equal(p.m.type, PROTO_ERROR);
		assert_int_equal(p.m.code, FERRY_EAUTH);
	}
	/* the right token is not slowed by someone else's guesses */
	c = connect_ok(url, NULL, NULL, p_token);
	assert_int_equal(h_status_uint(c, "auth_failures"), GUESSES);
	assert_int_equal(h_log_count("sched-guess", "wrong token"), 3);
	h_wait_log("sched-guess", "more failed authentication", 1, 30000);
	assert_int_equal(h_log_count("sched-guess",
	                     "11 more failed authentication(s) from local "
	                     "socket"),
	    1);
	h_peer_close(&p);
	ferry_client_close(c);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_tls_token, h_teardown),
		cmocka_unit_test_teardown(test_worker_wrong_token, h_teardown),
		cmocka_unit_test_teardown(test_wrong_ca, h_teardown),
		cmocka_unit_test_teardown(
		    test_require_client_cert, h_teardown),
		cmocka_unit_test_teardown(test_token_plain_tcp, h_teardown),
		cmocka_unit_test_teardown(test_cluster_file, h_teardown),
		cmocka_unit_test_teardown(test_token_guessing, h_teardown),
	};
	h_init(argc, argv);
	return H_RUN_TESTS(tests, group_setup);
}
