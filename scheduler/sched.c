/*
 * sched.c - a scheduler's start, drain and stop.
 *
 * sched_init() makes the state every module keeps (and registers the
 * modules' task-state observers); sched_run() adds the socket, runs the
 * loop until a stop signal, drains (docs/protocol.md 4.14) and closes.
 * Unit tests use sched_init() and sched_fini() without a socket.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dispatch.h"
#include "log.h"
#include "sched_int.h"

void
sched_config_defaults(struct sched_config *c)
{
	*c = (struct sched_config)SCHED_CONFIG_DEFAULTS;
}

int
sched_init(struct sched *s, const struct sched_config *cfg)
{
	memset(s, 0, sizeof(*s));
	s->cfg       = cfg;
	s->signal_fd = s->event_fd = -1;
	pthread_mutex_init(&s->ev_lock, NULL);
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->pool_lock, NULL);
	idmap_init(&s->tasks);
	idmap_init(&s->workers);
	idmap_init(&s->ghosts);
	idmap_init(&s->sessions);
	idmap_init(&s->sups);
	list_init(&s->waiting);
	list_init(&s->acks);
	list_init(&s->undurable);
	list_init(&s->refusals);
	timerheap_init(&s->timers);
	proto_decoder_init(&s->dec);
	proto_writer_init(&s->w);
	proto_writer_init(&s->rej);
	if ((s->disp = disp_new()) == NULL || router_init(s) != 0 ||
	    functions_init(s) != 0 || stats_init(s) != 0 ||
	    graph_init(s) != 0) {
		sched_fini(s);
		return -1;
	}
	return 0;
}

void
sched_fini(struct sched *s)
{
	/* sessions first (their queued tasks are cancelled), then what
	 * workers hold goes back to the queue, then every task */
	sessions_free_all(s);
	workers_free_all(s);
	supervisors_free_all(s);
	tasks_free_all(s);
	graph_fini(s);
	router_fini(s);
	functions_fini(s);
	disp_free(s->disp);
	s->disp = NULL;
	timerheap_fini(&s->timers);
	proto_decoder_fini(&s->dec);
	proto_writer_fini(&s->w);
	proto_writer_fini(&s->rej);
	free(s->gone_pipes);
	pthread_mutex_destroy(&s->ev_lock);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->pool_lock);
	if (s->signal_fd >= 0)
		close(s->signal_fd);
	if (s->event_fd >= 0)
		close(s->event_fd);
}

static void
sched_close(struct sched *s)
{
	atomic_store(&s->closing, 1);
	if (s->sock.id != 0)
		nng_close(s->sock);
	rctx_close_all(s);
	for (size_t i = 0; i < s->cfg->n_listen; i++)
		if (strncmp(s->cfg->listen[i], "ipc://", 6) == 0)
			unlink(s->cfg->listen[i] + 6);
	sched_fini(s);
}

void
drain_begin(struct sched *s, uint32_t signo)
{
	if (s->draining || s->cfg->drain_timeout_ms == 0) {
		log_info("signal %u: stopping now", signo);
		s->stop = 1;
		return;
	}
	s->draining    = 1;
	s->drain_until = sched_now(s) + s->cfg->drain_timeout_ms;
	log_info("signal %u: draining (up to %u ms; a second signal stops at "
	         "once): refusing new submissions, dispatching nothing more; "
	         "%" PRIu64 " running task(s) may finish, %" PRIu64
	         " queued (and %" PRIu64 " waiting for their inputs) will "
	         "not run",
	    signo, s->cfg->drain_timeout_ms, s->n_assigned,
	    s->n_queued + s->n_delayed, s->n_waiting);
}

int
drain_over(struct sched *s)
{
	if (s->n_assigned == 0 && results_owed(s) == 0) {
		log_info("drained: no task running, every connected client "
		         "has its results");
		return 1;
	}
	if (sched_now(s) >= s->drain_until) {
		log_warn("drain timeout (%u ms) passed: stopping with %" PRIu64
		         " task(s) still running and %" PRIu64
		         " result(s) not yet taken by connected clients",
		    s->cfg->drain_timeout_ms, s->n_assigned, results_owed(s));
		return 1;
	}
	return 0;
}

/* What a stop leaves behind (the lock is no longer needed: every request
 * handler sees stop and does nothing). */
static void
drain_end(struct sched *s)
{
	struct idmap_iter     it     = { 0, 0 };
	const struct session *se;
	uint64_t              stored = 0, held;

	while (idmap_iter_next(&s->sessions, &it, NULL, (void **)&se))
		stored += se->n_results;
	held = s->n_queued + s->n_delayed + s->n_assigned + s->n_waiting;
	log_info("scheduler stopping: %" PRIu64 " submitted, %" PRIu64
	         " done, %" PRIu64 " failed, %" PRIu64 " queued",
	    s->stat[ST_submitted], s->stat[ST_done], s->stat[ST_failed],
	    s->n_queued);
	if ((held > 0 || stored > 0) && s->jr != NULL)
		log_info("kept in the journal for the next start: %" PRIu64
		         " unfinished task(s) (%" PRIu64 " queued, %" PRIu64
		         " waiting to retry, %" PRIu64 " running, %" PRIu64
		         " waiting for their inputs) and %" PRIu64
		         " undelivered result(s)",
		    held, s->n_queued, s->n_delayed, s->n_assigned,
		    s->n_waiting, stored);
	else if (held > 0 || stored > 0)
		log_warn("dropping %" PRIu64 " unfinished task(s) (%" PRIu64
		         " queued, %" PRIu64 " waiting to retry, %" PRIu64
		         " running, %" PRIu64 " waiting for their inputs) and "
		         "%" PRIu64 " undelivered result(s): this scheduler "
		         "keeps no journal, so they are lost",
		    held, s->n_queued, s->n_delayed, s->n_assigned,
		    s->n_waiting, stored);
}

int
sched_run(const struct sched_config *cfg)
{
	struct sched s;
	int          rc = 0;

	srandom((unsigned)(util_now_us() ^ (uint64_t)getpid()));
	if (sched_init(&s, cfg) != 0) {
		log_error("the scheduler cannot start (out of memory, or its "
		          "token file: see above)");
		return 1;
	}
	if (cfg->n_listen == 0) {
		log_error("no listen address configured");
		rc = 1;
		goto out;
	}
	/* what the journal holds is back before anyone can ask for it */
	if (journal_start(&s) != 0 || sched_listen(&s) != 0) {
		rc = 1;
		goto out;
	}
	if (cfg->ready_file != NULL) {
		FILE *f = fopen(cfg->ready_file, "w");
		if (f != NULL) {
			fprintf(f, "%d\n", (int)getpid());
			fclose(f);
		}
	}
	log_info("scheduler ready (pid %d, heartbeat %u ms, timeout %u ms)",
	    (int)getpid(), cfg->heartbeat_interval_ms,
	    cfg->heartbeat_timeout_ms);
	rc = sched_loop(&s);
	drain_end(&s);
out:
	journal_stop(&s);
	alarm(10); /* a hanging nng_close must not keep a stopped scheduler */
	sched_close(&s);
	return rc;
}
