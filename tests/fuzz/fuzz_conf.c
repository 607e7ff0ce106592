/*
 * fuzz_conf.c - fuzz target for the YAML cluster-file loader.
 *
 * conf_load() reads a path, so each input is written to one temporary file
 * (created on the first call and rewritten in place) and loaded.  Besides
 * crashes and sanitizer reports, it checks the loader's contract: a
 * failure leaves a non-empty, NUL-terminated "FILE:..." message and a
 * zeroed struct; a success yields a struct within its documented bounds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_path[64];
static int  fuzz_fd = -1;

/* Remove the temporary file at exit. */
static void
fuzz_cleanup(void)
{
	if (fuzz_fd >= 0) {
		close(fuzz_fd);
		unlink(fuzz_path);
	}
}

/* Whether every byte of c is zero. */
static int
is_zero(const struct conf *c)
{
	const unsigned char *p = (const unsigned char *) c;

	for (size_t i = 0; i < sizeof(*c); i++) {
		if (p[i] != 0)
			return 0;
	}
	return 1;
}

/* Abort unless a loaded c is within the bounds conf.h documents. */
static void
check_loaded(const struct conf *c)
{
	if (c->path == NULL || c->path[0] != '/' || c->dir == NULL ||
	    c->name == NULL || c->address == NULL || c->sched.n_listen < 1 ||
	    c->sched.n_listen > CONF_MAX_LISTEN || c->n_groups < 1 ||
	    c->n_groups > CONF_MAX_GROUPS ||
	    c->sched.heartbeat_timeout_ms <= c->sched.heartbeat_interval_ms ||
	    c->sched.heartbeat_interval_ms == 0 || c->sched.max_queue == 0 ||
	    c->sched.max_results == 0 || c->sched.max_message_size < 64 * 1024 ||
	    c->sched.max_result_bytes < 64 * 1024 || c->sched.quarantine_after < 1 ||
	    c->sched.quarantine_after > 100 || c->sched.task_retries > 1000 ||
	    c->sched.task_backoff_max_ms < c->sched.task_backoff_ms ||
	    c->sched.task_backoff_max_ms > 86400000 ||
	    c->sched.task_timeout_ms > 2147483647u ||
	    (c->sched.task_retry_errors != 0 && c->sched.task_retry_errors != 1) ||
	    (c->sched.journal_path != NULL && c->sched.journal_path[0] != '/') ||
	    conf_parse_sync(conf_sync_name(c->sched.journal_sync)) !=
	        c->sched.journal_sync ||
	    c->sched.journal_window_ms < 1 || c->sched.journal_window_ms > 10000 ||
	    c->sched.journal_max_size < (size_t) 1 << 20)
		abort();
	for (size_t i = 0; i < c->sched.n_listen; i++) {
		if (c->sched.listen[i] == NULL ||
		    strstr(c->sched.listen[i], "://") == NULL)
			abort();
	}
	for (size_t i = 0; i < c->n_groups; i++) {
		const struct conf_group *g = &c->groups[i];
		if (g->wrk.group == NULL || conf_group_find(c, g->wrk.group) != g ||
		    g->processes < 0 || g->processes > 1024 || g->wrk.slots < 1 ||
		    g->wrk.slots > 1024 || g->wrk.prefetch < 0 ||
		    g->wrk.prefetch > 100000 || g->wrk.n_libraries < 1 ||
		    g->wrk.n_libraries > CONF_MAX_LIBRARIES ||
		    (g->wrk.memory_limit != 0 &&
		        g->wrk.memory_limit < (size_t) 16 * 1024 * 1024) ||
		    g->wrk.max_tasks > (uint64_t) INT64_MAX)
			abort();
		for (size_t j = 0; j < g->wrk.n_libraries; j++) {
			if (g->wrk.libraries[j] == NULL || g->wrk.libraries[j][0] == 0)
				abort();
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf c;
	char        err[512];

	if (fuzz_fd < 0) {
		snprintf(fuzz_path, sizeof(fuzz_path),
		    "/tmp/ferry-fuzz-conf-XXXXXX");
		if ((fuzz_fd = mkstemp(fuzz_path)) < 0) {
			perror("fuzz_conf: mkstemp");
			abort();
		}
		atexit(fuzz_cleanup);
	}
	if (ftruncate(fuzz_fd, 0) != 0 ||
	    (size > 0 && pwrite(fuzz_fd, data, size, 0) != (ssize_t) size)) {
		perror("fuzz_conf: write");
		abort();
	}

	memset(err, 'x', sizeof(err));
	if (conf_load(fuzz_path, &c, err, sizeof(err)) != 0) {
		/* a message naming the file, NUL-terminated, struct freed */
		if (memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0' ||
		    strncmp(err, fuzz_path, strlen(fuzz_path)) != 0 ||
		    !is_zero(&c))
			abort();
	} else {
		check_loaded(&c);
	}
	conf_free(&c);
	return 0;
}
