/*
 * authlimit.h - failed authentications per peer host: how long each
 * refusal waits, and which failures are worth a log line.
 *
 * A peer that keeps guessing the token gets its refusals slowed to a few
 * per second (a token bucket per host: AUTHLIMIT_BURST at once, then
 * AUTHLIMIT_RATE per second), and the log gets its first few failures in
 * full and then one summary line per host every AUTHLIMIT_SUMMARY_MS.  A
 * hello with the right token is never slowed: only refusals wait.  Hosts
 * are the address without its port (a guesser opens new connections);
 * every local-socket peer is one host.
 *
 * Pure bookkeeping (no clock, no I/O): the scheduler passes the time in.
 */
#ifndef FERRY_AUTHLIMIT_H
#define FERRY_AUTHLIMIT_H

#include <stddef.h>
#include <stdint.h>

#define AUTHLIMIT_BURST 10         /* refusals answered at once */
#define AUTHLIMIT_RATE 2           /* then this many per second */
#define AUTHLIMIT_MAX_DELAY_MS 5000
#define AUTHLIMIT_MAX_PENDING 32   /* slowed refusals held per host */
#define AUTHLIMIT_LOG_FULL 3       /* failures logged in full per window */
#define AUTHLIMIT_SUMMARY_MS 10000 /* the window of a summary line */
#define AUTHLIMIT_HOSTS 4096       /* hosts tracked at once */

struct authlimit;

/* What to do with one refusal. */
struct authlimit_verdict {
	uint32_t delay_ms; /* answer it after this long (0: now) */
	int      log;      /* 1: log it in full; 0: counted for a summary */
	int      drop;     /* 1: too many held for this host: answer nothing */
	uint64_t key;      /* pass to authlimit_answered() once answered */
};

/* Create / free (NULL allowed). */
struct authlimit *authlimit_new(void);
void              authlimit_free(struct authlimit *a);

/* A failed authentication from addr ("HOST:PORT", "[V6]:PORT" or any
 * text) at now_ms.  Fills v; never fails (without memory every host
 * shares one bucket). */
void authlimit_fail(struct authlimit *a, const char *addr, uint64_t now_ms,
    struct authlimit_verdict *v);

/* A slowed refusal (v.delay_ms > 0, not dropped) has been answered. */
void authlimit_answered(struct authlimit *a, uint64_t key);

/*
 * Summaries due at now_ms: for each host whose failures were not all
 * logged and whose window has passed, calls fn(arg, host, n, ms) with
 * the failures not logged and the window's length, and starts a new
 * window; hosts quiet for a whole window are forgotten.  Returns when
 * the next summary may be due (UINT64_MAX: none pending).
 */
uint64_t authlimit_report(struct authlimit *a, uint64_t now_ms,
    void (*fn)(void *arg, const char *host, uint64_t n, uint64_t ms),
    void *arg);

/* Hosts tracked now. */
size_t authlimit_hosts(const struct authlimit *a);

#endif
