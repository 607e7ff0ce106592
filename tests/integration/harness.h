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

#include <nng/nng.h>

#include "ferry/ferry.h"
#include "proto.h"

/* Set up: ferry binary path from argv[1] or $FERRY_BIN, a temp dir. */
void h_init(int argc, char **argv);

/* The ferry binary and the test's private directory. */
const char *h_ferry(void);
const char *h_dir(void);

/* A fresh ipc:// URL inside the private directory (static buffer per
 * call slot: copy it). */
void h_ipc_url(char *buf, size_t len, const char *name);

/* A tcp://127.0.0.1:PORT URL on a port that was free a moment ago. */
void h_tcp_url(char *buf, size_t len);

/* Start the ferry binary with args (NULL-terminated, without argv[0]);
 * output goes to DIR/<logname>.log.  The pid is recorded for cleanup. */
pid_t h_start(const char *logname, const char *const *args);

/* Run the ferry binary to completion with a timeout; stdout and stderr go
 * to out/err (malloc'd, may be NULL).  Returns the exit status, or -1 on
 * timeout (the process is killed). */
int h_run(const char *const *args, int timeout_ms, char **out, char **err);

/* Start `ferry scheduler` with args (NULL-terminated, from "scheduler";
 * output to DIR/<logname>.log) and wait until it listens (its ready
 * file), at most 30 s or until it exits. */
pid_t h_start_scheduler(const char *logname, const char *const *args);

/* Start a scheduler at url with extra args (may be NULL); waits until it
 * listens, as h_start_scheduler. */
pid_t h_scheduler(const char *url, const char *const *extra);

/* Start a worker supervisor with n processes on url. */
pid_t h_workers(const char *url, int n, const char *const *extra);

/* Connect a client, asserting success. */
ferry_client *h_connect(const char *url);

/* Wait until the scheduler has at least n workers; returns 0 or -1. */
int h_wait_workers(ferry_client *c, uint32_t n, int timeout_ms);

/* Pids of the worker processes registered with the scheduler (from its
 * status), up to max.  Returns how many. */
int h_worker_pids(ferry_client *c, pid_t *pids, int max);

/* Counters from the scheduler's status document: value of "key". */
uint64_t h_status_uint(ferry_client *c, const char *key);

/* Stop one recorded process: SIGTERM, wait up to ms, then SIGKILL. */
void h_stop(pid_t pid, int ms);

/* Kill and reap every recorded process (and their process groups). */
void h_cleanup(void);

/* Whether pid exists (and is not a zombie). */
int h_alive(pid_t pid);

/* Pack [n] as msgpack into buf (at least 16 bytes); returns the length. */
size_t h_pack_uint_array1(uint8_t *buf, uint64_t n);

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
