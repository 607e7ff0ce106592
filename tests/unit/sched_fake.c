/*
 * sched_fake.c - the scheduler's real modules driven without a network
 * (see sched_fake.h): this file is the request-context layer they are
 * linked with in unit tests, instead of rctx.c and listen.c.
 */
#include "sched_fake.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nng/nng.h>

#include "dispatch.h"
#include "ferry/ferry.h"

/* ------------------------------------------- the request-context layer */

/* The test's own allocations never fail (see the wrappers below). */
void *__real_malloc(size_t n);

void
reply(struct sched *s, struct rctx *rc)
{
	struct fake_req *r = (struct fake_req *)rc;

	assert_false(r->answered); /* one reply per request */
	r->answered = 1;
	r->len      = s->w.buf.size;
	r->reply    = __real_malloc(r->len + 1);
	if (r->reply != NULL)
		memcpy(r->reply, s->w.buf.data, r->len);
}

void
reply_error(struct sched *s, struct rctx *rc, int code, const char *text)
{
	proto_writer_reset(&s->w);
	proto_write_error(&s->w, code, text);
	reply(s, rc);
}

/* Without a journal (none in these tests) every mark is durable: a reply
 * that would wait is a defect of the caller. */
void
reply_when(struct sched *s, struct rctx *rc, uint64_t mark)
{
	assert_true(mark <= s->jr_durable);
	reply(s, rc);
}

void
replies_release(struct sched *s)
{
	(void)s;
}

void
replies_refuse_held(struct sched *s, int code, const char *text)
{
	(void)s;
	(void)code;
	(void)text;
}

void
rctx_release(struct sched *s, struct rctx *rc)
{
	struct fake_req *r = (struct fake_req *)rc;
	(void)s;
	assert_false(r->answered);
	r->answered = 1;
	r->dropped  = 1;
}

void
rctx_receive_next(struct sched *s)
{
	(void)s;
}

void
rctx_close_all(struct sched *s)
{
	(void)s;
}

int
sched_listen(struct sched *s)
{
	(void)s;
	return -1;
}

/* ------------------------------------------------------------ driving */

void
fake_init(struct fake *f, const struct sched_config *cfg)
{
	memset(f, 0, sizeof(*f));
	if (cfg != NULL)
		f->cfg = *cfg;
	else
		sched_config_defaults(&f->cfg);
	assert_int_equal(sched_init(&f->s, &f->cfg), 0);
	f->s.now_ms = 1000;
	proto_writer_init(&f->w);
	proto_decoder_init(&f->dec);
}

void
fake_fini(struct fake *f)
{
	sched_fini(&f->s);
	for (size_t i = 0; i < f->n_reqs; i++) {
		free(f->reqs[i]->reply);
		free(f->reqs[i]);
	}
	proto_writer_fini(&f->w);
	proto_decoder_fini(&f->dec);
}

struct fake_req *
fake_send(struct fake *f, uint32_t pipe)
{
	struct fake_req *r = calloc(1, sizeof(*r));
	nng_msg         *msg;
	nng_pipe         p;

	assert_non_null(r);
	assert_true(f->n_reqs < sizeof(f->reqs) / sizeof(f->reqs[0]));
	f->reqs[f->n_reqs++] = r;
	r->rc.s              = &f->s;
	assert_int_equal(nng_msg_alloc(&msg, 0), 0);
	assert_int_equal(nng_msg_append(msg, f->w.buf.data, f->w.buf.size), 0);
	p.id = pipe;
	nng_msg_set_pipe(msg, p);
	fake_alloc_arm(f->fail_at);
	handle_message(&f->s, msg, &r->rc);
	loop_turn_locked(&f->s);
	f->allocs = fake_alloc_count();
	fake_alloc_arm(0);
	nng_msg_free(msg);
	return r;
}

int
fake_reply(struct fake *f, const struct fake_req *r, struct proto_msg *m)
{
	char err[256];
	if (!r->answered || r->dropped || r->reply == NULL)
		return -1;
	return proto_decode(&f->dec, r->reply, r->len, m, err, sizeof(err)) ==
	        0
	    ? 0
	    : -1;
}

void
fake_advance(struct fake *f, uint64_t ms)
{
	f->s.now_ms += ms;
	fake_alloc_arm(f->fail_at);
	loop_turn_locked(&f->s);
	f->allocs = fake_alloc_count();
	fake_alloc_arm(0);
}

void
fake_close(struct fake *f, uint32_t pipe)
{
	fake_alloc_arm(f->fail_at);
	pipe_gone(&f->s, pipe);
	loop_turn_locked(&f->s);
	f->allocs = fake_alloc_count();
	fake_alloc_arm(0);
}

/* ------------------------------------------- failing allocations */

/*
 * Unit tests linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc
 * get these in place of the C library's: while armed with n, they count
 * the allocations made and make the n-th fail (once).  Without --wrap
 * they are never called, and arming does nothing.
 */
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static long alloc_fail_at; /* 0: off */
static long alloc_count;

void
fake_alloc_arm(long n)
{
	alloc_fail_at = n;
	alloc_count   = 0;
}

long
fake_alloc_count(void)
{
	return alloc_count;
}

static int
alloc_fails(void)
{
	if (alloc_fail_at == 0)
		return 0;
	return ++alloc_count == alloc_fail_at;
}

void *
__wrap_malloc(size_t n)
{
	return alloc_fails() ? NULL : __real_malloc(n);
}

void *
__wrap_calloc(size_t n, size_t size)
{
	return alloc_fails() ? NULL : __real_calloc(n, size);
}

void *
__wrap_realloc(void *p, size_t n)
{
	return alloc_fails() ? NULL : __real_realloc(p, n);
}

struct fake_req *
fake_hello_rejoin(struct fake *f, uint32_t pipe, const char *const *fns,
    uint64_t supervisor, uint64_t pid, uint64_t epoch, uint64_t previous,
    const uint64_t *ids, uint32_t n)
{
	struct proto_hello h = { 0 };
	uint32_t           n_fns = 0;

	while (fns[n_fns] != NULL)
		n_fns++;
	h.name        = "fake";
	h.host        = "";
	h.group       = "default";
	h.pid         = pid;
	h.slots       = 1;
	h.capacity    = 64;
	h.supervisor  = supervisor;
	h.functions   = fns;
	h.n_functions = n_fns;
	h.epoch       = epoch;
	h.previous    = previous;
	h.holding     = ids;
	h.n_holding   = n;
	proto_writer_reset(&f->w);
	proto_write_hello_worker(&f->w, &h);
	return fake_send(f, pipe);
}

struct fake_req *
fake_hello_worker(struct fake *f, uint32_t pipe, const char *const *fns,
    uint64_t supervisor, uint64_t pid)
{
	return fake_hello_rejoin(f, pipe, fns, supervisor, pid, 0, 0, NULL, 0);
}

struct fake_req *
fake_hello_client(struct fake *f, uint32_t pipe, uint64_t session)
{
	proto_writer_reset(&f->w);
	proto_open(&f->w, PROTO_HELLO);
	proto_put_str(&f->w, "role", "client");
	proto_put_uint(&f->w, "session", session);
	proto_end(&f->w);
	return fake_send(f, pipe);
}

struct fake_req *
fake_hello_supervisor(struct fake *f, uint32_t pipe, uint64_t token)
{
	proto_writer_reset(&f->w);
	proto_open(&f->w, PROTO_HELLO);
	proto_put_str(&f->w, "role", "supervisor");
	proto_put_uint(&f->w, "supervisor", token);
	proto_end(&f->w);
	return fake_send(f, pipe);
}

struct fake_req *
fake_submit(struct fake *f, uint32_t pipe, const char *fn, uint64_t first,
    uint32_t n)
{
	proto_writer_reset(&f->w);
	proto_open(&f->w, PROTO_SUBMIT);
	proto_put_key(&f->w, "tasks");
	msgpack_pack_array(&f->w.pk, n);
	for (uint32_t i = 0; i < n; i++)
		proto_pack_task(&f->w, first + i, fn, (uint32_t)strlen(fn),
		    "\xc0", 1);
	proto_end(&f->w);
	return fake_send(f, pipe);
}

struct fake_req *
fake_fetch(struct fake *f, uint32_t pipe, uint64_t ack, uint64_t wait_ms)
{
	proto_writer_reset(&f->w);
	proto_open(&f->w, PROTO_FETCH);
	proto_put_uint(&f->w, "ack", ack);
	proto_put_uint(&f->w, "wait_ms", wait_ms);
	proto_end(&f->w);
	return fake_send(f, pipe);
}

struct fake_req *
fake_cancel(struct fake *f, uint32_t pipe, uint64_t id)
{
	proto_writer_reset(&f->w);
	proto_open(&f->w, PROTO_CANCEL);
	proto_put_key(&f->w, "ids");
	msgpack_pack_array(&f->w.pk, 1);
	msgpack_pack_uint64(&f->w.pk, id);
	proto_end(&f->w);
	return fake_send(f, pipe);
}

struct fake_req *
fake_work(struct fake *f, uint32_t pipe, uint64_t credit, const uint64_t *ids,
    uint32_t n, int32_t code)
{
	proto_writer_reset(&f->w);
	proto_open(&f->w, PROTO_WORK);
	proto_put_uint(&f->w, "credit", credit);
	proto_put_key(&f->w, "results");
	msgpack_pack_array(&f->w.pk, n);
	for (uint32_t i = 0; i < n; i++) {
		if (code == 0)
			proto_pack_result(&f->w, ids[i], 0, "\x07", 1);
		else
			proto_pack_result(&f->w, ids[i], code, "it failed", 9);
	}
	proto_end(&f->w);
	return fake_send(f, pipe);
}

struct fake_req *
fake_report(struct fake *f, uint32_t pipe, uint64_t pid, uint64_t wid,
    uint64_t task, int charged, const char *cause)
{
	proto_writer_reset(&f->w);
	proto_open(&f->w, PROTO_REPORT);
	proto_put_uint(&f->w, "pid", pid);
	proto_put_uint(&f->w, "worker", wid);
	proto_put_str(&f->w, "cause", cause);
	proto_put_str(&f->w, "reason", "killed by signal 9 (Killed)");
	proto_put_key(&f->w, "tasks");
	msgpack_pack_array(&f->w.pk, task != 0);
	if (task != 0) {
		msgpack_pack_array(&f->w.pk, 2);
		msgpack_pack_uint64(&f->w.pk, task);
		msgpack_pack_uint64(&f->w.pk, (uint64_t)charged);
	}
	proto_end(&f->w);
	return fake_send(f, pipe);
}

/* -------------------------------------------------------- invariants */

static int
in_limbo(const struct sched *s, const struct task *t)
{
	for (const struct task *l = s->limbo; l != NULL; l = l->limbo_next)
		if (l == t)
			return 1;
	return 0;
}

size_t
fake_check(struct fake *f)
{
	struct sched     *s = &f->s;
	struct idmap_iter it = { 0, 0 };
	struct task      *t;
	struct worker    *w;
	struct session   *se;
	uint64_t          queued = 0, delayed = 0, assigned = 0, waiting = 0;
	size_t            live = 0;

	while (idmap_iter_next(&s->tasks, &it, NULL, (void **)&t)) {
		live++;
		assert_true(t->state < TASK_STATE_MAX);
		switch (t->state) {
		case TASK_QUEUED:
			queued++;
			/* dispatchable: in the queue, or waiting for room */
			assert_true(disp_is_queued(s->disp, t->id) ||
			    in_limbo(s, t));
			assert_null(t->worker);
			break;
		case TASK_ASSIGNED:
			assigned++;
			assert_non_null(t->worker);
			break;
		case TASK_DELAYED:
			delayed++;
			assert_null(t->worker);
			break;
		case TASK_WAITING:
			/* never dispatchable before its inputs are in */
			waiting++;
			assert_true(t->unmet > 0); /* (shares room with worker) */
			assert_false(disp_is_queued(s->disp, t->id));
			break;
		default:
			fail_msg("task %llu is in final state %d but alive",
			    (unsigned long long)t->id, t->state);
		}
		if (t->sess != NULL)
			assert_ptr_equal(idmap_get(&t->sess->tags, t->tag), t);
	}
	assert_int_equal(queued, s->n_queued);
	assert_int_equal(delayed, s->n_delayed);
	assert_int_equal(waiting, s->n_waiting);
	assert_int_equal(assigned, s->n_assigned);
	{
		uint64_t limbo = 0;
		for (t = s->limbo; t != NULL; t = t->limbo_next)
			limbo++;
		assert_int_equal(disp_queued(s->disp), s->n_queued - limbo);
	}

	/* worker lists hold exactly the tasks assigned to them */
	for (int k = 0; k < 2; k++) {
		struct idmap *m = k ? &s->ghosts : &s->workers;
		it.pos = 0;
		it.key = 0;
		while (idmap_iter_next(m, &it, NULL, (void **)&w)) {
			uint32_t          n = 0;
			struct list_node *ln;
			for (ln = list_first(&w->tasks); ln != NULL;
			     ln = list_next(&w->tasks, ln)) {
				t = list_entry(ln, struct task, wnode);
				assert_ptr_equal(t->worker, w);
				assert_int_equal(t->state, TASK_ASSIGNED);
				n++;
			}
			assert_int_equal(n, w->held);
		}
	}

	/* sessions: pending tags are live tasks of theirs, results are in
	 * order and counted */
	it.pos = 0;
	it.key = 0;
	{
		uint64_t stored = 0;
		while (idmap_iter_next(&s->sessions, &it, NULL, (void **)&se)) {
			struct idmap_iter ti = { 0, 0 };
			uint64_t          n  = 0, last = 0;
			while (idmap_iter_next(&se->tags, &ti, NULL, (void **)&t))
				assert_ptr_equal(idmap_get(&s->tasks, t->id), t);
			for (struct result *r = se->rhead; r != NULL;
			     r = r->next) {
				assert_true(r->seq > last);
				last = r->seq;
				assert_ptr_equal(idmap_get(&se->done, r->tag), r);
				n++;
			}
			assert_int_equal(n, se->n_results);
			assert_int_equal(n, se->done.count);
			stored += n;
		}
		assert_int_equal(stored, s->results_stored);
	}
	return live;
}
