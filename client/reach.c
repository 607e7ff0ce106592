/*
 * reach.c - whether and why the scheduler can be reached: NNG's dialer
 * statistics tell a closed port or an unknown host (nobody there) from a
 * peer that failed the handshake or never answered.  At connect, the
 * wait for the welcome ends early when nothing listens (no_scheduler_ms)
 * and the error says why; after a lost connection, the client gives up
 * when the reconnect window (reconnect_ms) closes.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "client_int.h"

#define DIAL_CHECK_MS 50 /* no_scheduler_ms: how often to look */

/* The counts of a dialer NNG keeps, each a member of struct
 * dial_counts; for a failed attempt, what it means: whether nobody
 * listens there (refused, timed out, unreachable) rather than a peer that
 * failed the handshake, and why, for humans.  Over TLS a handshake the
 * peer refused counts as "other", as an unreachable address does:
 * neither is known to be nobody (dial_cause). */
static const struct {
	const char *stat;
	size_t      off;
	int         nobody;
	const char *why; /* NULL: not a failure */
} kinds[] = {
#define K(name, nobody, why)                                               \
	{ #name, offsetof(struct dial_counts, name), nobody, why }
	K(connect, 0, NULL),
	K(refused, 1, "connection refused"),
	K(timeout, 1, "connection timed out"),
	K(other, 1, "cannot connect (unreachable address or unknown host)"),
	K(auth, 0, "TLS handshake or peer authentication failed"),
	K(proto, 0, "the peer is not a Ferry scheduler (wrong protocol)"),
	K(reject, 0, "connection rejected"),
#undef K
};

#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))

/* Count k of dc. */
static uint64_t *
count_of(const struct dial_counts *dc, size_t k)
{
	return (uint64_t *)((char *)dc + kinds[k].off);
}

int
dial_counts_get(ferry_client *c, struct dial_counts *dc)
{
	nng_stat *all, *x, *st;
	uint64_t  id = (uint64_t)nng_socket_id(c->sock);
	int       found = 0;

	memset(dc, 0, sizeof(*dc));
	if (nng_stats_get(&all) != 0)
		return -1;
	for (x = nng_stat_child(all); x != NULL; x = nng_stat_next(x)) {
		const char *name = nng_stat_name(x);
		nng_stat   *sock = nng_stat_find(x, "socket");
		if (name == NULL || strcmp(name, "dialer") != 0 ||
		    sock == NULL || nng_stat_value(sock) != id)
			continue;
		found = 1;
		for (size_t k = 0; k < N_KINDS; k++)
			if ((st = nng_stat_find(x, kinds[k].stat)) != NULL)
				*count_of(dc, k) += nng_stat_value(st);
	}
	nng_stats_free(all);
	return found ? 0 : -1;
}

static const struct dial_counts zero;

/* Why no connection came between counts a and b: the kind of failed
 * attempt seen most, or NULL if none failed; *nobody as in kinds. */
const char *
dial_cause(const struct dial_counts *a, const struct dial_counts *b,
    const char *url, int *nobody)
{
	const char *why  = NULL;
	uint64_t    most = 0;

	*nobody = 0;
	if (a == NULL)
		a = &zero;
	for (size_t k = 0; k < N_KINDS; k++) {
		/* fewer than at a: the dialer was replaced since
		 * (req_dial_watch), and the new one's count is all there is */
		uint64_t d = *count_of(b, k) >= *count_of(a, k)
		    ? *count_of(b, k) - *count_of(a, k)
		    : *count_of(b, k);
		if (kinds[k].why == NULL || d <= most)
			continue;
		most    = d;
		why     = kinds[k].why;
		*nobody = kinds[k].nobody;
		if (kinds[k].off == offsetof(struct dial_counts, other) &&
		    util_url_is_tls(url)) {
			why = "the connection failed (TLS handshake, or an "
			      "unreachable address)";
			*nobody = 0;
		}
	}
	return why;
}

/* "30 s", "1.5 s", "200 ms". */
static void
duration_str(char *buf, size_t len, uint64_t ms)
{
	if (ms < 1000)
		snprintf(buf, len, "%" PRIu64 " ms", ms);
	else if (ms % 1000 == 0)
		snprintf(buf, len, "%" PRIu64 " s", ms / 1000);
	else
		snprintf(buf, len, "%.1f s", (double)ms / 1000.0);
}

/* Fail every pending future with why the scheduler could not be
 * reached, and go offline (new tasks fail the same way) until a
 * scheduler welcomes us again. */
void
give_up_locked(ferry_client *c)
{
	struct dial_counts dc;
	const char        *why = NULL;
	char               took[32];
	int                got, nobody = 0;

	pthread_mutex_unlock(&c->lock);
	got = dial_counts_get(c, &dc);
	pthread_mutex_lock(&c->lock);
	if (c->connected || c->offline || c->closing)
		return; /* it came back, or it is over, meanwhile */
	if (got == 0)
		why = dial_cause(&c->down_dial, &dc, c->url, &nobody);
	duration_str(took, sizeof(took), (uint64_t)c->opts.reconnect_ms);
	if (why != NULL)
		snprintf(c->down_msg, sizeof(c->down_msg),
		    "%s at %s: %s; gave up after %s",
		    nobody ? "no scheduler" : "cannot reach the scheduler",
		    c->url, why, took);
	else if (got == 0 && dc.connect > c->down_dial.connect)
		snprintf(c->down_msg, sizeof(c->down_msg),
		    "no answer from the scheduler at %s (connected, but it "
		    "did not take this client back); gave up after %s",
		    c->url, took);
	else
		snprintf(c->down_msg, sizeof(c->down_msg),
		    "no scheduler at %s: cannot connect%s; gave up after %s",
		    c->url, sec_connect_hint(c->url), took);
	c->offline     = 1;
	c->gave_up_tag = c->next_tag;
	futures_fail_locked(c, FERRY_ECLOSED, c->down_msg, strlen(c->down_msg),
	    0);
	pthread_cond_broadcast(&c->cv);
}

/*
 * Wait (without the lock) until c is welcomed or refused, timeout_ms run
 * out (-1: never), or, with no_scheduler_ms, nothing listens at the
 * address: no connection was ever made and dials failed, no_scheduler_ms
 * after the start (then returns 1).  *dc and *got: the dialer's counts
 * at the end (*got -1 without them).
 */
static int
wait_welcome(ferry_client *c, int timeout_ms, struct dial_counts *dc,
    int *got)
{
	struct timespec ts;
	uint64_t        start = util_now_ms(), now;
	uint64_t        end   = timeout_ms >= 0
	           ? start + (uint64_t)timeout_ms
	           : UINT64_MAX;
	uint64_t        look  = c->opts.no_scheduler_ms > 0
	            ? start + (uint64_t)c->opts.no_scheduler_ms
	            : UINT64_MAX;
	int             done, absent = 0;

	pthread_mutex_lock(&c->lock);
	while (!(done = c->connected || c->conn_error != 0) &&
	    (now = util_now_ms()) < end) {
		uint64_t wake = end < look ? end : look;
		if (now >= look) {
			/* is anything listening there? */
			int nobody = 0;
			pthread_mutex_unlock(&c->lock);
			absent = dial_counts_get(c, dc) == 0 &&
			    dc->connect == 0 &&
			    dial_cause(NULL, dc, c->url, &nobody) != NULL &&
			    nobody;
			pthread_mutex_lock(&c->lock);
			if (absent && !c->connected && c->conn_error == 0)
				break;
			absent = 0;
			look   = now + DIAL_CHECK_MS;
			wake   = end < look ? end : look;
		}
		if (wake == UINT64_MAX) {
			pthread_cond_wait(&c->cv, &c->lock);
		} else {
			deadline_of((int)(wake - now), &ts);
			pthread_cond_timedwait(&c->cv, &c->lock, &ts);
		}
	}
	pthread_mutex_unlock(&c->lock);
	*got = done ? -1 : dial_counts_get(c, dc);
	return absent;
}

/*
 * Wait for the welcome at connect (timeout_ms at most, -1: no limit).
 * Returns 0 when welcomed, or why not, with a message in errbuf: the
 * scheduler's refusal, a session still in use (FERRY_ESTATE), or
 * FERRY_ECONNECT: nothing listens there (every dial failed), or
 * something does and did not answer, or failed the handshake.
 */
int
connect_wait(ferry_client *c, int timeout_ms, char *errbuf,
    size_t errbuf_len)
{
	struct dial_counts dc;
	int                rv, absent, got, nobody = 0;
	const char        *why, *url = c->url;

	absent = wait_welcome(c, timeout_ms, &dc, &got);
	pthread_mutex_lock(&c->lock);
	rv = c->connected         ? 0
	    : c->conn_error != 0  ? c->conn_error
	    : c->resume_retry     ? FERRY_ESTATE /* session still in use */
	                          : FERRY_ECONNECT;
	why = rv == FERRY_ECONNECT && got == 0 && dc.connect == 0
	    ? dial_cause(NULL, &dc, url, &nobody)
	    : NULL;
	if (rv == FERRY_ECONNECT && why != NULL && nobody && absent)
		util_errf(errbuf, errbuf_len, "no scheduler at %s: %s", url,
		    why);
	else if (rv == FERRY_ECONNECT && why != NULL && nobody)
		util_errf(errbuf, errbuf_len,
		    "no scheduler at %s: %s (tried for %d ms)", url, why,
		    timeout_ms);
	else if (rv == FERRY_ECONNECT)
		util_errf(errbuf, errbuf_len,
		    "no answer from the scheduler at %s within %d ms%s%s%s",
		    url, timeout_ms, sec_connect_hint(url),
		    why != NULL ? ": " : "", why != NULL ? why : "");
	else if (rv == FERRY_ESTATE && c->conn_error == 0)
		util_errf(errbuf, errbuf_len,
		    "session %" PRIu64 " is still attached to another "
		    "connection",
		    c->session);
	else if (rv != 0)
		util_errf(errbuf, errbuf_len, "%s", c->conn_msg);
	pthread_mutex_unlock(&c->lock);
	return rv;
}
