/*
 * test_authlimit.c - failed authentications per host: a burst is answered
 * at once, then refusals wait at the configured rate; a host with many
 * refusals waiting gets no answer; the log sees a few lines per host and
 * then summaries; hosts are independent, and the port does not matter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "authlimit.h"

static void
test_burst_then_slowed(void **state)
{
	struct authlimit        *a = authlimit_new();
	struct authlimit_verdict v;
	uint32_t                 last = 0;
	(void)state;

	assert_non_null(a);
	for (int i = 0; i < AUTHLIMIT_BURST; i++) {
		authlimit_fail(a, "10.0.0.1:4000", 1000, &v);
		assert_int_equal(v.delay_ms, 0);
		assert_int_equal(v.drop, 0);
	}
	/* each further refusal waits 1/RATE s longer than the one before;
	 * a new connection (another port) changes nothing */
	for (int i = 0; i < 8; i++) {
		authlimit_fail(a, i % 2 ? "10.0.0.1:4001" : "10.0.0.1:5999",
		    1000, &v);
		assert_int_equal(v.drop, 0);
		assert_int_equal(v.delay_ms, (uint32_t)(i + 1) * 1000 /
		        AUTHLIMIT_RATE);
		assert_true(v.delay_ms > last);
		last = v.delay_ms;
	}
	/* another host is not slowed */
	authlimit_fail(a, "10.0.0.2:4000", 1000, &v);
	assert_int_equal(v.delay_ms, 0);
	assert_int_equal(authlimit_hosts(a), 2);
	authlimit_free(a);
}

static void
test_refill(void **state)
{
	struct authlimit        *a = authlimit_new();
	struct authlimit_verdict v;
	(void)state;

	for (int i = 0; i < AUTHLIMIT_BURST; i++)
		authlimit_fail(a, "[::1]:80", 0, &v);
	authlimit_fail(a, "[::1]:81", 0, &v);
	assert_true(v.delay_ms > 0);
	authlimit_answered(a, v.key);
	/* after long enough, the bucket is full again */
	for (int i = 0; i < AUTHLIMIT_BURST; i++) {
		authlimit_fail(a, "[::1]:82", 600000, &v);
		assert_int_equal(v.delay_ms, 0);
	}
	authlimit_free(a);
}

static void
test_drop_when_too_many_wait(void **state)
{
	struct authlimit        *a = authlimit_new();
	struct authlimit_verdict v;
	int                      slowed = 0, dropped = 0;
	(void)state;

	for (int i = 0; i < 200; i++) {
		authlimit_fail(a, "local socket", 5, &v);
		slowed += v.delay_ms > 0 && !v.drop;
		dropped += v.drop;
		assert_true(v.delay_ms <= AUTHLIMIT_MAX_DELAY_MS);
	}
	assert_true(slowed <= AUTHLIMIT_MAX_PENDING);
	assert_int_equal(AUTHLIMIT_BURST + slowed + dropped, 200);
	assert_true(dropped > 0);
	authlimit_free(a);
}

struct seen {
	char     host[64];
	uint64_t n, ms;
	int      calls;
};

static void
on_summary(void *arg, const char *host, uint64_t n, uint64_t ms)
{
	struct seen *s = arg;
	strncpy(s->host, host, sizeof(s->host) - 1);
	s->n = n;
	s->ms = ms;
	s->calls++;
}

static void
test_log_then_summaries(void **state)
{
	struct authlimit        *a = authlimit_new();
	struct authlimit_verdict v;
	struct seen              s;
	int                      logged = 0;
	uint64_t                 next;
	(void)state;

	memset(&s, 0, sizeof(s));
	for (int i = 0; i < 100; i++) {
		authlimit_fail(a, "192.0.2.7:1234", 100, &v);
		logged += v.log;
		if (v.delay_ms > 0 && !v.drop)
			authlimit_answered(a, v.key);
	}
	assert_int_equal(logged, AUTHLIMIT_LOG_FULL);
	/* nothing due before the window ends */
	next = authlimit_report(a, 200, on_summary, &s);
	assert_int_equal(s.calls, 0);
	assert_int_equal(next, 100 + AUTHLIMIT_SUMMARY_MS);
	authlimit_report(a, next, on_summary, &s);
	assert_int_equal(s.calls, 1);
	assert_string_equal(s.host, "192.0.2.7");
	assert_int_equal(s.n, 100 - AUTHLIMIT_LOG_FULL);
	assert_int_equal(s.ms, AUTHLIMIT_SUMMARY_MS);
	/* a new window logs in full again */
	authlimit_fail(a, "192.0.2.7:1234", next + 1, &v);
	assert_int_equal(v.log, 1);
	/* a host quiet for a whole window is forgotten */
	next = authlimit_report(a, next + 1 + 2 * AUTHLIMIT_SUMMARY_MS,
	    on_summary, &s);
	assert_int_equal(s.calls, 1);
	assert_int_equal(authlimit_hosts(a), 0);
	assert_int_equal(next, UINT64_MAX);
	authlimit_free(a);
}

static void
test_many_hosts_bounded(void **state)
{
	struct authlimit        *a = authlimit_new();
	struct authlimit_verdict v;
	char                     addr[64];
	(void)state;

	for (int i = 0; i < AUTHLIMIT_HOSTS + 100; i++) {
		snprintf(addr, sizeof(addr), "10.%d.%d.%d:1", i >> 16,
		    (i >> 8) & 255, i & 255);
		authlimit_fail(a, addr, 0, &v);
	}
	assert_int_equal(authlimit_hosts(a), AUTHLIMIT_HOSTS);
	authlimit_free(a);
	authlimit_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_slowed),
		cmocka_unit_test(test_refill),
		cmocka_unit_test(test_drop_when_too_many_wait),
		cmocka_unit_test(test_log_then_summaries),
		cmocka_unit_test(test_many_hosts_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
