/*
 * fuzz_proto.c - fuzz target for the wire protocol decoder.
 *
 * Decodes the input; a failure must come with an error text.  A message
 * that decodes is written again with its sender's writer (proto_write_*),
 * that is decoded (it must decode, to the same fields) and written once
 * more (it must give the same bytes).  Any mismatch aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/ferry.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct proto_decoder dec1, dec2;
static struct proto_writer  w1, w2;
static int                  ready;

#define CHECK(cond)                                                         \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "fuzz_proto: %s:%d: check failed: %s\n", \
			    __FILE__, __LINE__, #cond);                     \
			abort();                                            \
		}                                                           \
	} while (0)

static struct proto_writer list; /* elements packed ahead */

/* The results of m as elements in list. */
static const struct proto_writer *
results_list(const struct proto_msg *m)
{
	proto_writer_reset(&list);
	for (uint32_t i = 0; i < m->n_results; i++) {
		const struct proto_result *r = &m->results[i];
		proto_pack_result(&list, r->id, r->code, r->data, r->len);
	}
	return &list;
}

static void
encode_hello(struct proto_writer *w, const struct proto_msg *m)
{
	struct proto_hello h = { 0 };

	h.token       = m->token;
	h.name        = m->name;
	h.host        = m->host;
	h.group       = m->group;
	h.pid         = m->pid;
	h.session     = m->session;
	h.supervisor  = m->supervisor;
	h.slots       = m->slots;
	h.capacity    = m->capacity;
	h.functions   = m->functions;
	h.n_functions = m->n_functions;
	h.epoch       = m->epoch;
	h.previous    = m->previous;
	h.holding     = m->holding;
	h.n_holding   = m->n_holding;
	if (m->role == PROTO_ROLE_CLIENT)
		proto_write_hello_client(w, &h);
	else if (m->role == PROTO_ROLE_SUPERVISOR)
		proto_write_hello_supervisor(w, &h);
	else
		proto_write_hello_worker(w, &h);
}

/* submit and tasks: each entry as its sender writes it (a submit's with
 * its locality keys and options, a tasks' with its timeout). */
static void
encode_tasks(struct proto_writer *w, const struct proto_msg *m)
{
	const char *keys[PROTO_MAX_TASK_OBJS];
	size_t      lens[PROTO_MAX_TASK_OBJS];

	if (m->type == PROTO_SUBMIT)
		proto_write_submit_begin(w);
	else
		proto_write_tasks_begin(w);
	for (uint32_t i = 0; i < m->n_tasks; i++) {
		const struct proto_task *t = &m->tasks[i];
		for (uint32_t k = 0; k < t->n_objs; k++) {
			keys[k] = t->objs[k].via.str.ptr;
			lens[k] = t->objs[k].via.str.size;
		}
		if (m->type == PROTO_SUBMIT)
			proto_write_submit_entry(w, t->id, t->fn, t->fn_len,
			    t->args, t->args_len, keys, lens, t->n_objs,
			    &t->opts, NULL, 0);
		else
			proto_write_tasks_entry(w, t->id, t->fn, t->fn_len,
			    t->args, t->args_len, t->timeout_ms);
	}
	if (m->type == PROTO_SUBMIT)
		proto_write_submit_end(w);
	else
		proto_write_tasks_end(w);
}

static void
encode_results(struct proto_writer *w, const struct proto_msg *m)
{
	proto_write_results_begin(w);
	for (uint32_t i = 0; i < m->n_results; i++) {
		const struct proto_result *r = &m->results[i];
		proto_write_results_entry(w, r->id, r->code, r->data, r->len,
		    r->attempts);
	}
	proto_write_results_end(w, m->seq);
}

/* Locality keys as elements of l. */
static const struct proto_writer *
keys_list(struct proto_writer *l, const msgpack_object *k, uint32_t n)
{
	proto_writer_reset(l);
	for (uint32_t i = 0; i < n; i++)
		proto_pack_str(l, k[i].via.str.ptr, k[i].via.str.size);
	return l;
}

static struct proto_writer loaded, evicted;

static void
encode_work(struct proto_writer *w, const struct proto_msg *m)
{
	struct proto_work wk = { 0 };

	wk.credit  = m->credit;
	wk.park    = m->park != 0;
	wk.results = m->n_results > 0 ? results_list(m) : NULL;
	wk.loaded  = keys_list(&loaded, m->loaded, m->n_loaded);
	wk.evicted = keys_list(&evicted, m->evicted, m->n_evicted);
	wk.cache   = m->cache.present ? &m->cache : NULL;
	proto_write_work(w, &wk);
}

/* Encode m with its sender's writer.  Returns 0, or -1 for a type that
 * is not re-encoded. */
static int
encode(struct proto_writer *w, const struct proto_msg *m)
{
	struct proto_welcome wl = { m->id, m->heartbeat_ms,
		m->heartbeat_timeout_ms, m->max_message_size,
		m->max_tag != 0 || m->resumed != 0, m->max_tag, m->resumed };
	struct proto_welcome_worker x = { m->epoch, m->drop, m->n_drop };

	proto_writer_reset(w);
	switch (m->type) {
	case PROTO_HELLO: encode_hello(w, m); return 0;
	case PROTO_WELCOME:
		proto_write_welcome_worker(w, &wl, &x);
		return 0;
	case PROTO_SUBMIT:
	case PROTO_TASKS: encode_tasks(w, m); return 0;
	case PROTO_SUBMITTED:
		proto_write_submitted(w, m->accepted, results_list(m));
		return 0;
	case PROTO_FETCH: proto_write_fetch(w, m->ack, m->wait_ms); return 0;
	case PROTO_RESULTS: encode_results(w, m); return 0;
	case PROTO_WORK: encode_work(w, m); return 0;
	case PROTO_CANCEL: proto_write_cancel(w, m->ids, m->n_ids); return 0;
	case PROTO_CANCELLED:
		proto_write_cancelled(w, m->ids, m->n_ids);
		return 0;
	case PROTO_STATUS: proto_write_status(w); return 0;
	case PROTO_STATUS_REPLY:
		/* the whole map, as decoded */
		msgpack_pack_object(&w->pk, *m->body);
		return 0;
	case PROTO_ERROR: proto_write_error(w, m->code, m->msg); return 0;
	case PROTO_WATCH: proto_write_watch(w, m->wait_ms); return 0;
	case PROTO_REPORT:
		proto_write_report(w, m->pid, m->worker_id, m->cause,
		    m->reason, m->rtasks, m->n_rtasks);
		return 0;
	case PROTO_ORDERS:
		proto_write_orders(w, m->kills, m->n_kills);
		return 0;
	}
	return -1;
}

static int
mem_eq(const void *a, const void *b, size_t n)
{
	return n == 0 || memcmp(a, b, n) == 0;
}

static int
str_eq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

/* The fields a hello's writer writes for its role are equal. */
static void
check_hello(const struct proto_msg *a, const struct proto_msg *b)
{
	CHECK(a->role == b->role);
	CHECK(str_eq(a->token, b->token));
	CHECK(str_eq(a->name, b->name) && str_eq(a->host, b->host));
	CHECK(a->pid == b->pid);
	if (a->role == PROTO_ROLE_CLIENT) {
		CHECK(a->session == b->session);
		return;
	}
	CHECK(str_eq(a->group, b->group));
	CHECK(a->supervisor == b->supervisor);
	if (a->role == PROTO_ROLE_SUPERVISOR)
		return;
	CHECK(a->session == b->session);
	CHECK(a->slots == b->slots && a->capacity == b->capacity);
	CHECK(a->n_functions == b->n_functions);
	for (uint32_t i = 0; i < a->n_functions; i++)
		CHECK(str_eq(a->functions[i], b->functions[i]));
	/* what a worker that registers again holds: written with an epoch */
	CHECK(a->epoch == b->epoch);
	if (a->epoch != 0) {
		CHECK(a->previous == b->previous);
		CHECK(a->n_holding == b->n_holding);
		for (uint32_t i = 0; i < a->n_holding; i++)
			CHECK(a->holding[i] == b->holding[i]);
	}
}

static void
check_task(const struct proto_task *x, const struct proto_task *y)
{
	CHECK(x->id == y->id);
	CHECK(x->fn_len == y->fn_len && x->fn_len > 0);
	CHECK(mem_eq(x->fn, y->fn, x->fn_len));
	CHECK(x->args_len == y->args_len);
	CHECK(mem_eq(x->args, y->args, x->args_len));
	CHECK(x->timeout_ms == y->timeout_ms);
	CHECK(x->opts.set == y->opts.set);
	CHECK(memcmp(&x->opts, &y->opts, sizeof(x->opts)) == 0);
	CHECK(x->n_objs == y->n_objs);
	for (uint32_t k = 0; k < x->n_objs; k++) {
		CHECK(x->objs[k].via.str.size == y->objs[k].via.str.size);
		CHECK(mem_eq(x->objs[k].via.str.ptr, y->objs[k].via.str.ptr,
		    x->objs[k].via.str.size));
	}
}

static void
check_results(const struct proto_msg *a, const struct proto_msg *b)
{
	CHECK(a->accepted == b->accepted && a->seq == b->seq);
	CHECK(a->credit == b->credit && a->park == b->park);
	CHECK(a->n_results == b->n_results);
	for (uint32_t i = 0; i < a->n_results; i++) {
		const struct proto_result *x = &a->results[i];
		const struct proto_result *y = &b->results[i];
		CHECK(x->id == y->id && x->code == y->code);
		CHECK(x->code <= 0);
		CHECK(x->len == y->len);
		CHECK(mem_eq(x->data, y->data, x->len));
		if (a->type == PROTO_RESULTS)
			CHECK(x->attempts == y->attempts);
	}
}

static void
check_work(const struct proto_msg *a, const struct proto_msg *b)
{
	check_results(a, b);
	CHECK(a->n_loaded == b->n_loaded && a->n_evicted == b->n_evicted);
	CHECK(a->cache.present == b->cache.present);
	CHECK(memcmp(&a->cache, &b->cache, sizeof(a->cache)) == 0);
}

static void
check_supervision(const struct proto_msg *a, const struct proto_msg *b)
{
	CHECK(a->wait_ms == b->wait_ms && a->pid == b->pid);
	CHECK(a->worker_id == b->worker_id);
	CHECK(a->n_rtasks == b->n_rtasks && a->n_kills == b->n_kills);
	for (uint32_t i = 0; i < a->n_rtasks; i++)
		CHECK(a->rtasks[i].id == b->rtasks[i].id &&
		    a->rtasks[i].charged == b->rtasks[i].charged);
	for (uint32_t i = 0; i < a->n_kills; i++)
		CHECK(a->kills[i].pid == b->kills[i].pid &&
		    a->kills[i].task == b->kills[i].task);
	if (a->type == PROTO_REPORT)
		CHECK(str_eq(a->cause, b->cause) &&
		    str_eq(a->reason, b->reason));
}

/* The fields of a's type are equal in b. */
static void
check_same(const struct proto_msg *a, const struct proto_msg *b)
{
	CHECK(a->type == b->type);
	CHECK(a->version == b->version);
	switch (a->type) {
	case PROTO_HELLO:
		check_hello(a, b);
		break;
	case PROTO_WELCOME:
		CHECK(a->id == b->id && a->heartbeat_ms == b->heartbeat_ms);
		CHECK(a->max_message_size == b->max_message_size);
		CHECK(a->heartbeat_timeout_ms == b->heartbeat_timeout_ms);
		CHECK(a->max_tag == b->max_tag && a->resumed == b->resumed);
		CHECK(a->epoch == b->epoch && a->n_drop == b->n_drop);
		for (uint32_t i = 0; i < a->n_drop; i++)
			CHECK(a->drop[i] == b->drop[i]);
		break;
	case PROTO_SUBMIT:
	case PROTO_TASKS:
		CHECK(a->n_tasks == b->n_tasks);
		for (uint32_t i = 0; i < a->n_tasks; i++)
			check_task(&a->tasks[i], &b->tasks[i]);
		break;
	case PROTO_SUBMITTED:
	case PROTO_RESULTS:
		check_results(a, b);
		break;
	case PROTO_WORK:
		check_work(a, b);
		break;
	case PROTO_FETCH:
		CHECK(a->ack == b->ack && a->wait_ms == b->wait_ms);
		break;
	case PROTO_CANCEL:
	case PROTO_CANCELLED:
		CHECK(a->n_ids == b->n_ids);
		for (uint32_t i = 0; i < a->n_ids; i++)
			CHECK(a->ids[i] == b->ids[i]);
		break;
	case PROTO_STATUS_REPLY:
		CHECK(b->body != NULL && b->body->type == MSGPACK_OBJECT_MAP);
		CHECK(a->body->via.map.size == b->body->via.map.size);
		break;
	case PROTO_ERROR:
		CHECK(a->code == b->code && a->code < 0);
		CHECK(str_eq(a->msg, b->msg));
		break;
	case PROTO_WATCH:
	case PROTO_REPORT:
	case PROTO_ORDERS:
		check_supervision(a, b);
		break;
	default:
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_msg m1, m2;
	char             err[256];
	int              rc;

	if (!ready) {
		proto_decoder_init(&dec1);
		proto_decoder_init(&dec2);
		proto_writer_init(&w1);
		proto_writer_init(&w2);
		proto_writer_init(&list);
		proto_writer_init(&loaded);
		proto_writer_init(&evicted);
		ready = 1;
	}

	err[0] = 'X';
	rc     = proto_decode(&dec1, data, size, &m1, err, sizeof(err));
	if (rc != 0) {
		CHECK(rc == FERRY_EPROTO || rc == FERRY_EVERSION ||
		      rc == FERRY_ENOMEM);
		if (rc != FERRY_ENOMEM)
			CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)));
		return 0;
	}
	CHECK(err[0] == '\0');
	CHECK(m1.type > PROTO_NONE && m1.type < PROTO_TYPE_MAX);
	CHECK(m1.version == PROTO_VERSION);
	CHECK(proto_check(data, size, NULL, 0) == 0);

	if (encode(&w1, &m1) != 0)
		return 0;
	rc = proto_decode(&dec2, w1.buf.data, w1.buf.size, &m2, err,
	    sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "fuzz_proto: re-encoded %s does not decode: %s\n",
		    proto_type_name(m1.type), err);
		abort();
	}
	check_same(&m1, &m2);
	/* encoding is a fixpoint after one round */
	CHECK(encode(&w2, &m2) == 0);
	CHECK(w1.buf.size == w2.buf.size);
	CHECK(memcmp(w1.buf.data, w2.buf.data, w1.buf.size) == 0);
	return 0;
}
