/*
 * harness.h - helpers for integration tests that run the real binaries.
 *
 * Every process a test starts is recorded and, at the end of the test (or
 * when the test program exits for any reason), killed by pid and reaped.
 * Addresses are fresh ipc paths in a private temporary directory or free
 * loopback TCP ports.
 */
#ifndef FERRY_HARNESS_H
#define FERRY_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <msgpack.h>
#include <nng/nng.h>

#include "ferry/ferry.h"
#include "proto.h"

struct CMUnitTest;

/* Set up: ferry binary path from argv[1] or $FERRY_BIN, a temp dir. */
void h_init(int argc, char **argv);

/* The fault-injection library: argv[2] or $FERRY_FI_LIB, else exit 2. */
const char *h_fi_lib(int argc, char **argv);

/* Run tests (only $FERRY_TEST_FILTER's, if set); dump the logs on failure. */
int h_run_tests(const struct CMUnitTest *tests, size_t n,
    int (*setup)(void **state));

/* h_run_tests on an array of tests. */
#define H_RUN_TESTS(tests, setup)                                         \
	h_run_tests(tests, sizeof(tests) / sizeof((tests)[0]), setup)

/* The ferry binary and the test's private directory. */
const char *h_ferry(void);
const char *h_dir(void);

/* A fresh ipc:// URL inside the private directory (static buffer per
 * call slot: copy it). */
void h_ipc_url(char *buf, size_t len, const char *name);

/* A tcp://127.0.0.1:PORT URL on a port that was free a moment ago. */
void h_tcp_url(char *buf, size_t len);

/* Start the ferry binary with args (NULL-terminated, without argv[0]);
 * output goes to DIR/<logname>.log.  The pid is recorded for cleanup.
 * The process dies when the thread that started it ends
 * (FERRY_PARENT_DEATHSIG: PR_SET_PDEATHSIG follows the thread), so a
 * test thread that starts processes must outlive them. */
pid_t h_start(const char *logname, const char *const *args);

/* Run the ferry binary to completion with a timeout; stdout and stderr go
 * to out/err (malloc'd, may be NULL).  Returns the exit status, or -1 on
 * timeout (the process is killed). */
int h_run(const char *const *args, int timeout_ms, char **out, char **err);

/* What h_run_want expects of a run: the exit status rc (H_RC_FAILED:
 * anything but 0); stdout equal to out_is (NULL: anything) and holding
 * each of out_has; stderr holding each of err_has (the lists end at the
 * first NULL). */
struct h_want {
	int         rc;
	const char *out_is;
	const char *out_has[4];
	const char *err_has[4];
};

/* h_want's rc for "did not succeed": any exit status but 0, a signal or
 * the timeout. */
#define H_RC_FAILED (-1000)

/* h_run args and fail the test, showing what the run printed, unless it
 * ended as want says. */
void h_run_want(
    const char *const *args, int timeout_ms, const struct h_want *want);

/* A cmocka teardown: h_cleanup(). */
int h_teardown(void **state);

/* Start `ferry scheduler` with args (NULL-terminated, from "scheduler";
 * output to DIR/<logname>.log) and wait until it listens (its ready
 * file), at most 30 s or until it exits. */
pid_t h_start_scheduler(const char *logname, const char *const *args);

/* h_scheduler with its output in DIR/<logname>.log. */
pid_t h_scheduler_named(
    const char *logname, const char *url, const char *const *extra);

/* Start a scheduler at url with extra args (may be NULL); waits until it
 * listens, as h_start_scheduler. */
pid_t h_scheduler(const char *url, const char *const *extra);

/* Start `ferry worker` on url: n processes, a --library per libs, extra. */
pid_t h_start_workers(const char *logname, const char *url, int n,
    const char *const *libs, const char *const *extra);

/* Start a worker supervisor with n processes on url. */
pid_t h_workers(const char *url, int n, const char *const *extra);

/* Connect a client; NULL (and the logs printed) on failure. */
ferry_client *h_connect(const char *url);

/* Connect a client that rides through a scheduler restart: it keeps
 * trying to reach the scheduler again for reconnect_ms after its
 * connection drops (struct ferry_client_opts).  NULL (and the logs
 * printed) on failure. */
ferry_client *h_connect_riding(const char *url, int reconnect_ms);

/* c's own counters (ferry_client_stats; fails the test if it fails). */
struct ferry_client_stats h_client_stats(ferry_client *c);

/* Wait up to timeout_ms until c holds no task the scheduler has not
 * accepted (answered); returns how many it still holds (0 unless it
 * timed out). */
uint64_t h_wait_sent(ferry_client *c, int timeout_ms);

/* h_scheduler and h_workers on url; a client that has seen n register. */
ferry_client *h_cluster(const char *url, const char *const *sched_extra,
    int n, const char *const *workers_extra);

/* Write printf-style text to path, with mode; fails the test if it can't. */
void h_write_file(const char *path, int mode, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Bounded waits poll until their condition holds and return 0, or -1
 * (saying what they waited for on stderr) when it still does not hold at
 * a check made after timeout_ms: a slow machine makes them wait to their
 * bound, never fail before it.
 */

/* Wait until the scheduler has at least n workers. */
int h_wait_workers(ferry_client *c, uint32_t n, int timeout_ms);

/* Wait until the status counter key equals want. */
int h_wait_status(
    ferry_client *c, const char *key, uint64_t want, int timeout_ms);

/* Wait until the status counter key is at least min. */
int h_wait_status_min(
    ferry_client *c, const char *key, uint64_t min, int timeout_ms);

/* Wait until exactly n workers are registered and old is not one. */
int h_wait_replaced(ferry_client *c, pid_t old, int n, int timeout_ms);

/* Wait until pid is gone (not h_alive). */
int h_wait_gone(pid_t pid, int timeout_ms);

/* How many lines of DIR/<logname>.log (as h_start's) contain text. */
int h_log_count(const char *logname, const char *text);

/* Wait until at least n lines of DIR/<logname>.log contain text. */
int h_wait_log(const char *logname, const char *text, int n, int timeout_ms);

/* Pids of the worker processes registered with the scheduler (from its
 * status), up to max.  Returns how many. */
int h_worker_pids(ferry_client *c, pid_t *pids, int max);

/* Counters from the scheduler's status document: value of "key". */
uint64_t h_status_uint(ferry_client *c, const char *key);

/* fn(w, arg) for each entry w of the status's worker_list; how many, or -1. */
int h_status_workers(ferry_client *c,
    void (*fn)(const msgpack_object *w, void *arg), void *arg);

/* The value of key in the msgpack map m, or NULL. */
const msgpack_object *h_mp_get(const msgpack_object *m, const char *key);

/* Stop one recorded process: SIGTERM, wait up to ms, then SIGKILL. */
void h_stop(pid_t pid, int ms);

/* Forget a recorded process the test killed and reaped itself (h_alive
 * or h_wait_gone said it is gone), so that h_cleanup does not signal its
 * pid or group, which may be another's by then. */
void h_forget(pid_t pid);

/* Kill and reap every recorded process (and their process groups). */
void h_cleanup(void);

/* Whether pid exists (and is not a zombie).  A child of the test runs
 * until it is reaped (here, when it can be: every thread of it ended). */
int h_alive(pid_t pid);

/* Whether pid is alive and runs `sleep` (a task's grandchild, not a reuse). */
int h_is_sleep(pid_t pid);

/* Pack [n] as msgpack into buf (at least 16 bytes); returns the length. */
size_t h_pack_uint_array1(uint8_t *buf, uint64_t n);

/* The most bytes h_pack_args writes. */
#define H_ARGS_MAX 24

/* Pack [], [a] or [a, b] (n 0-2) into buf (H_ARGS_MAX bytes); the length. */
size_t h_pack_args(uint8_t *buf, int n, uint64_t a, uint64_t b);

/* Pack [s] into buf (cap bytes, or the test fails); returns the length. */
size_t h_pack_str1(uint8_t *buf, size_t cap, const char *s);

/* Submit fn with h_pack_args(n, a, b) and o (or NULL); fails if refused. */
ferry_future *h_submit(ferry_client *c, const char *fn, int n, uint64_t a,
    uint64_t b, const struct ferry_task_opts *o);

/* Fail the test unless square(i) answers i * i within 30 s. */
void h_expect_square(ferry_client *c, uint64_t i);

/* Decode a msgpack unsigned integer result; returns 0 and *v, or -1. */
int h_unpack_uint(const void *data, size_t len, uint64_t *v);

/*
 * A peer that speaks the wire protocol by hand (docs/protocol.md), for
 * tests of what the library never sends: a cooked REQ socket, a writer to
 * build the next request in, and the last reply decoded into m.
 */
struct h_peer {
	nng_socket           sock;
	struct proto_writer  w;
	struct proto_decoder dec;
	struct proto_msg     m;
	nng_msg             *reply; /* what m points into */
};

/* Dial url (a scheduler that is still starting is waited for, up to 10 s
 * at the first call); aborts on failure. */
void h_peer_open(struct h_peer *p, const char *url);
void h_peer_close(struct h_peer *p);

/* Send what is in p->w and decode the reply into p->m.  Returns 0, or -1
 * when no reply came within timeout_ms or it did not decode. */
int h_peer_call(struct h_peer *p, int timeout_ms);

/* Say hello as a client of session (non-zero); asserts a welcome. */
void h_peer_hello(struct h_peer *p, uint64_t session);

/* Print the last lines of every log in the private directory. */
void h_dump_logs(void);

#endif
