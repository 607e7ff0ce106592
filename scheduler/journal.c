/*
 * journal.c - the scheduler's write-ahead journal (docs/reliability.md).
 *
 * An observer of task and session changes: each change that a restart
 * must not lose becomes a record in the batch being filled (under the
 * scheduler's lock, no I/O): a task when it is submitted and whenever a
 * failed run changed its counts, its deletion and its result when it
 * ends, a session's record, a client's acknowledgement.  One journal
 * thread writes the batches, each in one durable transaction (jstore.c):
 * while it writes one, the next fills, so one sync covers every record
 * made meanwhile (group commit).
 *
 * With sync: always, what acknowledges a change waits for it to be on
 * disk: the answer to a submit or a cancel (reply_when) and a result
 * (results.c sends only results whose batch is written).  Batches are
 * numbered: s->jr_fill is the one filling, s->jr_durable the
 * last written.  With sync: batch, nothing waits and the thread writes
 * at most every window_ms.
 *
 * When a batch cannot be written (a full disk, the journal's max_size
 * reached, an I/O error), the journal is in trouble: submissions are
 * refused with FERRY_EJOURNAL, results are sent without waiting, and the
 * thread tries the same batch (with what came since) again every second.
 *
 * At start, journal_start() reads the journal back before the scheduler
 * listens: sessions (disconnected, expiring after result_ttl like any
 * other), their queued tasks (held back from dispatch for restore_wait
 * so that workers that still run them can report them), their results.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferry/ferry.h"
#include "jstore.h"
#include "log.h"
#include "sched_int.h"

#define ID_RESERVE    (1u << 20) /* task ids reserved on disk at once */
#define RETRY_MS      1000       /* between tries after a failed write */
#define RESERVE       (1u << 20) /* room kept free for deletes */
#define LINGER_US     300        /* longest wait for results (below) */
#define LAZY_MS       50         /* longest wait of records nobody waits
                                  * for (acks, ended sessions) */

struct journal {
	struct sched  *s;
	struct jstore *st;
	struct jbatch  batch[2];
	struct jbatch *fill;  /* records being made (under s->lock) */
	struct jbatch *write; /* the batch the thread writes; kept after a
	                       * failed write, to be tried again */
	struct list    dirty; /* sessions whose record goes in the batch */
	pthread_t      thread;
	pthread_cond_t cv;    /* the thread waits for records (s->lock) */
	int            running, idle, stop;
	int            gating; /* sync: always */
	/* tasks submitted into the batch being filled (their ids from
	 * fresh_id on), and how many of them have ended in it already */
	uint64_t       fresh_id, fresh, fresh_ended;
	uint64_t       write_fresh_id; /* the same of the batch written */
	int            lingering;
	uint64_t       urgent; /* records in it that answers wait for */
	/* task ids: a restarted scheduler starts numbering at the highest
	 * reservation on disk, so that no id of a task it may have handed
	 * to a worker before the crash is given to another */
	uint64_t       ids_reserved, ids_writing, ids_durable;
	uint64_t       trouble_ms;
	uint64_t       write_us; /* time spent writing, in all */
	char           why[600];
	int            low;      /* the disk is too full to keep RESERVE */
	char           dir[];
};

/* ------------------------------------------------------- recording */

/* A record that an answer or a result waits for was made. */
static void
recorded(struct sched *s)
{
	s->jr_mark = s->jr_fill;
	s->jr->urgent++;
}

static void
session_dirty(struct journal *j, struct session *se)
{
	if (!list_linked(&se->jr_node))
		list_append(&j->dirty, &se->jr_node);
}

static void
put_task(struct journal *j, const struct task *t)
{
	struct jtask jt = {
		.id = t->id, .session = t->sess ? t->sess->id : 0, .tag = t->tag,
		.attempts = t->attempts, .failures = t->failures,
		.kills = t->kills, .retry_errors = t->retry_errors,
		.run_anyway = t->run_anyway,
		.n_objs = t->n_objs, .retries = t->retries,
		.backoff_ms = t->backoff_ms, .backoff_max_ms = t->backoff_max_ms,
		.timeout_ms = t->timeout_ms, .fn = task_fn(t), .fn_len = t->fn_len,
		.args = t->args, .args_len = t->args_len, .why = t->why,
		.why_len = t->why ? (uint32_t)strlen(t->why) : 0,
	};

	memcpy(jt.objs, t->objs, sizeof(t->objs[0]) * t->n_objs);
	(void)jbatch_put_task(j->fill, &jt); /* a failure sets fill->oom */
}

/* Observer of task transitions. */
static void
on_task(struct sched *s, struct task *t, int from, int to,
    const struct task_end *end, void *arg)
{
	struct journal *j = s->jr;

	(void)arg;
	if (j == NULL)
		return;
	if (end != NULL && (end->seq == 0 || t->sess == NULL)) {
		/* it ended for nobody (its session ended): no hurry */
		(void)jbatch_del_task(j->fill, t->id);
		return;
	}
	if (end != NULL) {
		/* it ended: gone, with the result its client gets */
		(void)jbatch_del_task(j->fill, t->id);
		if (t->id >= j->fresh_id && ++j->fresh_ended == j->fresh &&
		    j->lingering)
			pthread_cond_signal(&j->cv);
		struct jresult r = { t->sess->id, end->seq, t->tag, end->code,
			t->attempts, end->data, (uint32_t)end->len };
		(void)jbatch_put_result(j->fill, &r);
		session_dirty(j, t->sess);
	} else if (from == TASK_SUBMITTED) {
		put_task(j, t);
		j->fresh++;
		session_dirty(j, t->sess); /* its max_tag */
	} else if (from == TASK_ASSIGNED) {
		put_task(j, t); /* back after a failed or lost run: counts */
	} else if (from == TASK_WAITING) {
		put_task(j, t); /* an input's result went into its arguments */
	} else {
		return; /* back from its retry backoff: nothing new */
	}
	recorded(s);
}

/* Observer of sessions. */
static void
on_session(struct sched *s, struct session *se, int event, uint64_t ack,
    void *arg)
{
	struct journal *j = s->jr;

	(void)arg;
	if (j == NULL)
		return;
	/* nothing waits for these: they go with the next batch */
	switch (event) {
	case SESSION_OPENED:
		session_dirty(j, se);
		break;
	case SESSION_ACKED:
		(void)jbatch_ack(j->fill, se->id, ack);
		break;
	case SESSION_ENDED:
		if (list_linked(&se->jr_node))
			list_remove(&se->jr_node);
		(void)jbatch_del_session(j->fill, se->id);
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------ the thread */

/* Whether anything is to be written. */
static int
has_work(const struct journal *j)
{
	return j->fill->n_ops > 0 || !list_empty(&j->dirty) ||
	    j->write->n_ops > 0;
}

/* Whether it is to be written now: something waits for it (or it is
 * a batch to try again). */
static int
urgent(const struct journal *j)
{
	return j->urgent > 0 || j->write->n_ops > 0;
}

/* End of every turn: wake the thread if it waits and there is work. */
static void
on_turn(struct sched *s)
{
	struct journal *j = s->jr;

	if (j != NULL && j->idle && urgent(j))
		pthread_cond_signal(&j->cv);
}

/* Append src's operations to dst (a batch kept after a failed write). */
static void
batch_append(struct jbatch *dst, struct jbatch *src)
{
	if (src->oom)
		dst->oom = 1;
	if (dst->oom || src->len == 0)
		return;
	if (dst->len + src->len > dst->cap) {
		size_t   cap = dst->len + src->len;
		uint8_t *p   = realloc(dst->buf, cap);
		if (p == NULL) {
			dst->oom = 1;
			return;
		}
		dst->buf = p;
		dst->cap = cap;
	}
	memcpy(dst->buf + dst->len, src->buf, src->len);
	dst->len += src->len;
	dst->n_ops += src->n_ops;
	jbatch_clear(src);
}

/* Close the batch being filled and make it the one to write (lock
 * held); returns its number. */
static uint64_t
seal(struct journal *j)
{
	struct sched     *s = j->s;
	struct list_node *n, *tmp;
	uint64_t          first;

	list_for_each_safe(&j->dirty, n, tmp) {
		struct session *se = list_entry(n, struct session, jr_node);
		struct jsession js = { se->id, se->next_seq, se->max_tag };
		(void)jbatch_put_session(j->fill, &js);
		list_remove(n);
	}
	if (s->next_task_id + ID_RESERVE / 2 >= j->ids_reserved) {
		j->ids_reserved = s->next_task_id + ID_RESERVE;
		(void)jbatch_next_task_id(j->fill, j->ids_reserved);
	}
	j->ids_writing = j->ids_reserved;
	first          = j->fresh_id; /* the first id of the batch sealed */
	j->fresh_id    = s->next_task_id + 1;
	j->fresh = j->fresh_ended = 0;
	j->urgent = 0;
	if (j->write->n_ops == 0) {
		struct jbatch *b  = j->write;
		j->write          = j->fill;
		j->fill           = b;
		j->write_fresh_id = first;
	} else {
		batch_append(j->write, j->fill);
	}
	return j->gating ? s->jr_fill++ : 0;
}

/* Batch number batch is on disk (lock held). */
static void
written(struct journal *j, uint64_t batch)
{
	struct sched *s = j->s;

	s->stat[ST_journal_commits]++;
	s->stat[ST_journal_records] += j->write->n_ops;
	jbatch_clear(j->write);
	j->ids_durable = j->ids_writing;
	if (j->gating)
		s->jr_durable = batch;
	if (s->jr_trouble) {
		s->jr_trouble = 0;
		s->stat[ST_journal_trouble] = 0;
		log_warn("journal %s: written again after %" PRIu64
		         " ms; submissions are accepted",
		    j->dir, sched_now(s) - j->trouble_ms);
	}
	replies_release(s);
	results_durable(s);
}

/* The write failed with err (lock held): in trouble until one works. */
static void
failed(struct journal *j, const char *err)
{
	struct sched *s = j->s;

	if (s->jr_trouble) {
		if (strcmp(j->why, err) != 0) /* a new cause: say it */
			log_error("%s: submissions are still refused", err);
		snprintf(j->why, sizeof(j->why), "%s", err);
		return;
	}
	snprintf(j->why, sizeof(j->why), "%s", err);
	s->jr_trouble               = 1;
	s->stat[ST_journal_trouble] = 1;
	j->trouble_ms               = sched_now(s);
	log_error("%s: submissions are refused (FERRY_EJOURNAL) until it can "
	          "be written again; what was acknowledged before is on "
	          "disk; results are sent without waiting for it",
	    err);
	if (j->gating) {
		/* what was submitted since the last write was never
		 * answered: refused now, and not run */
		tasks_refuse_unrecorded(s, j->write_fresh_id, err);
		replies_refuse_held(s, FERRY_EJOURNAL, err);
	}
	results_durable(s); /* they need not wait any more */
}

/* After a good write: err says why the disk cannot keep RESERVE free
 * for the journal (submissions are refused until it can), or NULL. */
static void
low_space(struct journal *j, const char *err)
{
	struct sched *s = j->s;

	if (err != NULL && !j->low) {
		j->low = 1;
		snprintf(j->why, sizeof(j->why), "%s", err);
		s->stat[ST_journal_trouble] = 1;
		log_error("%s: submissions are refused (FERRY_EJOURNAL) until "
		          "there is room again; what was acknowledged is on "
		          "disk, and finished tasks are still written",
		    err);
	} else if (err == NULL && j->low) {
		j->low = 0;
		s->stat[ST_journal_trouble] = s->jr_trouble;
		log_warn("journal %s: room again; submissions are accepted",
		    j->dir);
	}
	s->stat[ST_journal_trouble] = s->jr_trouble || j->low;
}

/*
 * The thread was idle and records came: if they include tasks just
 * submitted, wait a moment (LINGER_US at most) for those to end, so that
 * a short task's submission and its result share one write instead of
 * waiting for two in a row.  Under load the thread is never idle and
 * never waits here: batches fill while the previous one is written.
 */
static void
linger(struct journal *j)
{
	struct timespec ts;

	if (!j->gating || j->fresh == 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += LINGER_US * 1000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	j->lingering = 1;
	while (!j->stop && j->fresh_ended < j->fresh &&
	    pthread_cond_timedwait(&j->cv, &j->s->lock, &ts) == 0)
		;
	j->lingering = 0;
}

/* The monotonic time ms from now. */
static struct timespec
deadline(uint32_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/* Wait up to ms for a stop (lock held). */
static void
pause_ms(struct journal *j, uint32_t ms)
{
	struct timespec ts = deadline(ms);

	while (!j->stop &&
	    pthread_cond_timedwait(&j->cv, &j->s->lock, &ts) == 0)
		;
}

/* Wait until something is to be written now, records nobody waits for
 * have waited LAZY_MS, or a stop (lock held). */
static void
wait_for_work(struct journal *j)
{
	struct timespec ts = deadline(LAZY_MS);

	if (j->stop || urgent(j))
		return;
	j->idle = 1;
	while (!j->stop && !urgent(j) &&
	    pthread_cond_timedwait(&j->cv, &j->s->lock, &ts) == 0)
		;
	j->idle = 0;
	linger(j);
}

/* Seal the batch being filled and write it, the lock let go meanwhile
 * (held on entry and on return); then what follows from the write: the
 * answers and results it frees, trouble, room.  0, or -1 (failed). */
static int
write_one(struct journal *j)
{
	struct sched *s = j->s;
	uint64_t      batch = seal(j), t0, size;
	char          err[600], lerr[600];
	int           rc, low = 0;

	pthread_mutex_unlock(&s->lock);
	t0 = util_now_us();
	rc = jstore_commit(j->st, j->write, err, sizeof(err));
	j->write_us += util_now_us() - t0;
	if (rc == 0)
		low = jstore_reserve(j->st, RESERVE, lerr, sizeof(lerr));
	size = jstore_size(j->st);
	pthread_mutex_lock(&s->lock);
	s->stat[ST_journal_bytes] = size;
	if (rc != 0) {
		failed(j, err);
		return -1;
	}
	written(j, batch);
	low_space(j, low != 0 ? lerr : NULL);
	return 0;
}

static void *
journal_main(void *arg)
{
	struct journal *j = arg;
	struct sched   *s = j->s;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		int  rc, low;
		char lerr[600];

		wait_for_work(j);
		if (!has_work(j)) {
			if (j->stop)
				break;
			if (j->low) { /* look for room now and then */
				pthread_mutex_unlock(&s->lock);
				low = jstore_reserve(j->st, RESERVE, lerr,
				    sizeof(lerr));
				pthread_mutex_lock(&s->lock);
				low_space(j, low != 0 ? lerr : NULL);
				if (j->low)
					pause_ms(j, RETRY_MS);
			}
			continue;
		}
		if (j->stop && s->jr_trouble)
			break; /* stopping, and the disk still fails */
		rc = write_one(j);
		if (rc != 0)
			pause_ms(j, RETRY_MS);
		else if (!j->gating)
			pause_ms(j, s->cfg->journal_window_ms);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* --------------------------------------------------------- restore */

struct restore {
	struct sched  *s;
	struct jbatch *fix;    /* deletions of what belongs to no session */
	uint64_t       max_id; /* highest task id read */
	uint64_t       orphans;
	uint64_t       queued, results;
};

static int
restore_session(void *arg, const struct jsession *js)
{
	struct restore *r = arg;
	return session_restore(r->s, js) == NULL;
}

static int
restore_task(void *arg, const struct jtask *jt)
{
	struct restore *r  = arg;
	struct sched   *s  = r->s;
	struct session *se = idmap_get(&s->sessions, jt->session);
	struct fnreg   *f;
	int             made;

	if (jt->id > r->max_id)
		r->max_id = jt->id;
	if (se == NULL || idmap_get(&se->tags, jt->tag) != NULL) {
		/* its session ended (nobody would get its result), or a
		 * second record of one task id of the session */
		r->orphans++;
		return jbatch_del_task(r->fix, jt->id) != 0;
	}
	made = fn_find(s, jt->fn, jt->fn_len) == NULL;
	if ((f = fn_get(s, jt->fn, jt->fn_len)) == NULL ||
	    task_restore(s, se, jt, f) == NULL) {
		if (f != NULL && f->tasks == 0)
			fn_drop(s, f);
		return 1;
	}
	if (made)
		fn_wait_start(s, f, s->cfg->unknown_function_wait_ms);
	if (jt->tag > se->max_tag)
		se->max_tag = jt->tag;
	r->queued++;
	return 0;
}

static int
restore_result(void *arg, const struct jresult *jr)
{
	struct restore *r  = arg;
	struct session *se = idmap_get(&r->s->sessions, jr->session);

	if (se == NULL) { /* its session ended: nobody would fetch it */
		r->orphans++;
		return jbatch_del_session(r->fix, jr->session) != 0;
	}
	if (idmap_get(&se->done, jr->tag) != NULL) {
		/* a second result of one task: the first counts; this one
		 * goes when the client acknowledges past it */
		r->orphans++;
		return 0;
	}
	if (results_restore(r->s, se, jr) != 0)
		return 1;
	if (jr->tag > se->max_tag)
		se->max_tag = jr->tag;
	r->results++;
	return 0;
}

/* The restore wait is over: restored tasks no worker reported run. */
static void
restore_due(void *owner, uint64_t id, uint32_t gen)
{
	struct sched *s = owner;

	(void)id;
	(void)gen;
	tasks_release_held_back(s);
}

/* Read j's journal into s (before listening); 0, or -1 logged. */
static int
restore(struct journal *j)
{
	struct sched   *s  = j->s;
	uint64_t        t0 = util_now_us();
	struct restore  r  = { s, j->fill, 0, 0, 0, 0 };
	struct jrestore jr = { .arg = &r, .session = restore_session,
		.task = restore_task, .result = restore_result };
	char            err[600];

	if (jstore_read(j->st, &jr, err, sizeof(err)) != 0) {
		log_error("%s", err);
		return -1;
	}
	s->next_task_id = jr.next_task_id > r.max_id ? jr.next_task_id
	                                             : r.max_id;
	if (jr.epoch != 0)
		s->epoch = jr.epoch; /* workers keep what they hold */
	j->ids_reserved = j->ids_durable = s->next_task_id;
	sessions_restored(s);
	graph_restore(s); /* waiting tasks find their inputs again */
	if (r.queued > 0) {
		s->restore_until = sched_now(s) + s->cfg->restore_wait_ms;
		timer_add(s, s->restore_until, restore_due, 0, 0);
	}
	log_info("journal %s: restored %" PRIu64 " queued task(s), %" PRIu64
	         " result(s) and %zu session(s) in %.1f ms%s",
	    j->dir, r.queued, r.results, s->sessions.count,
	    (double)(util_now_us() - t0) / 1000.0,
	    r.queued > 0 ? "; they wait for their workers to report them "
	                   "for up to scheduler.journal.restore_wait"
	                 : "");
	if (s->n_waiting > 0)
		log_info("journal %s: %" PRIu64 " of those tasks wait for the "
		         "tasks their arguments refer to",
		    j->dir, s->n_waiting);
	if (r.orphans > 0)
		log_info("journal %s: %" PRIu64 " record(s) of sessions that "
		         "had ended removed",
		    j->dir, r.orphans);
	if (jr.damaged > 0)
		log_error("journal %s: %" PRIu64 " damaged record(s) dropped "
		          "(%" PRIu64 " of them hidden by a damaged page, the "
		          "rest with wrong checksums): the tasks or results "
		          "they held are lost",
		    j->dir, jr.damaged, jr.missing);
	return 0;
}

/* ------------------------------------------------------ start, stop */

static const char *const sync_names[] = { "always", "batch", "none" };

static struct journal *
journal_new(struct sched *s)
{
	const char     *dir = s->cfg->journal_path;
	struct journal *j   = calloc(1, sizeof(*j) + strlen(dir) + 1);
	pthread_condattr_t ca;

	if (j == NULL)
		return NULL;
	strcpy(j->dir, dir);
	j->s      = s;
	j->gating = s->cfg->journal_sync == SCHED_SYNC_ALWAYS;
	jbatch_init(&j->batch[0]);
	jbatch_init(&j->batch[1]);
	j->fill  = &j->batch[0];
	j->write = &j->batch[1];
	list_init(&j->dirty);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&j->cv, &ca);
	pthread_condattr_destroy(&ca);
	return j;
}

static void
journal_free(struct journal *j)
{
	jstore_close(j->st);
	jbatch_fini(&j->batch[0]);
	jbatch_fini(&j->batch[1]);
	pthread_cond_destroy(&j->cv);
	free(j);
}

/* Register the observers, write the first batch, start the thread. */
static int
journal_run(struct journal *j)
{
	struct sched *s = j->s;

	if (sched_observe(s, (1u << TASK_ASSIGNED) | (1u << TASK_WAITING),
	        (1u << TASK_QUEUED) | (1u << TASK_DELAYED) |
	            (1u << TASK_WAITING) | TASK_FINAL_MASK,
	        on_task, j) != 0 ||
	    sched_observe_sessions(s, on_session, j) != 0 ||
	    sched_on_turn(s, on_turn) != 0) {
		log_error("journal %s: too many observers", j->dir);
		return -1;
	}
	if (j->gating)
		s->jr_fill = 1;
	/* the restore's deletions and the first reservation of task ids
	 * are on disk before any submit is taken */
	j->fresh_id = s->next_task_id + 1; /* restored tasks are not fresh */
	if (jbatch_epoch(j->fill, workers_epoch(s)) != 0)
		log_error("journal %s: out of memory", j->dir);
	/* the loop thread has not started: the lock is free */
	pthread_mutex_lock(&s->lock);
	(void)write_one(j);
	pthread_mutex_unlock(&s->lock);
	if (util_thread_start(&j->thread, journal_main, j) != 0) {
		log_error("journal %s: cannot start its thread", j->dir);
		return -1;
	}
	j->running = 1;
	return 0;
}

int
journal_start(struct sched *s)
{
	const struct sched_config *c = s->cfg;
	struct journal            *j;
	char                       err[600];

	if (c->journal_path == NULL || c->journal_sync == SCHED_SYNC_NONE) {
		log_info("no journal (scheduler.journal): a restart of this "
		         "scheduler loses its queued tasks, undelivered "
		         "results and client sessions");
		return 0;
	}
	if ((j = journal_new(s)) == NULL) {
		log_error("journal %s: out of memory", c->journal_path);
		return -1;
	}
	if (util_mkdir_p(j->dir) != 0) {
		log_error("journal %s: cannot make the directory: %s", j->dir,
		    strerror(errno));
		journal_free(j);
		return -1;
	}
	if (jstore_check(j->dir, c->journal_max_size, err, sizeof(err)) != 0 ||
	    jstore_open(&j->st, j->dir, c->journal_max_size, err,
	        sizeof(err)) != 0) {
		log_error("%s", err);
		journal_free(j);
		return -1;
	}
	s->jr = j;
	if (restore(j) != 0 || journal_run(j) != 0) {
		s->jr = NULL;
		journal_free(j);
		return -1;
	}
	log_info("journal %s: sync %s%s", j->dir,
	    sync_names[c->journal_sync],
	    j->gating ? " (answers wait for the disk)"
	              : " (answers leave at once; a crash may lose the "
	                "last window)");
	return 0;
}

void
journal_stop(struct sched *s)
{
	struct journal *j = s->jr;

	if (j == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	j->stop = 1;
	pthread_cond_signal(&j->cv);
	pthread_mutex_unlock(&s->lock);
	if (j->running)
		pthread_join(j->thread, NULL);
	pthread_mutex_lock(&s->lock);
	if (has_work(j))
		log_error("journal %s: stopping with %zu record(s) it could not "
		          "write (%s)",
		    j->dir, j->write->n_ops + j->fill->n_ops, j->why);
	replies_refuse_held(s, FERRY_EJOURNAL,
	    "the scheduler stopped before its journal could record this");
	s->jr = NULL;
	pthread_mutex_unlock(&s->lock);
	log_info("journal %s closed: %" PRIu64 " batch(es), %" PRIu64
	         " record(s) written, %.0f us per batch",
	    j->dir, s->stat[ST_journal_commits], s->stat[ST_journal_records],
	    s->stat[ST_journal_commits]
	        ? (double)j->write_us / (double)s->stat[ST_journal_commits]
	        : 0.0);
	journal_free(j);
}

int
journal_refuses(struct sched *s, char *why, size_t len)
{
	struct journal *j = s->jr;

	if (j == NULL)
		return 0;
	if (s->jr_trouble || j->low) {
		snprintf(why, len, "%s", j->why);
		return FERRY_EJOURNAL;
	}
	if (s->next_task_id + 1 >= j->ids_durable) {
		/* the next reservation of ids is not on disk yet: only after
		 * half a million submits within one write */
		snprintf(why, len, "the journal is catching up; try again");
		return FERRY_EFULL;
	}
	return 0;
}
