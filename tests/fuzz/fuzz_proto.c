/*
 * fuzz_proto.c - fuzz target for the wire protocol decoder.
 *
 * Decodes the input; a failure must come with an error text.  A message
 * that decodes is encoded again the way its sender would, that encoding is
 * decoded (it must decode, to the same fields) and encoded once more (it
 * must give the same bytes).  Any mismatch aborts.
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

static void
pack_results(struct proto_writer *w, const char *key,
    const struct proto_msg *m)
{
	proto_put_key(w, key);
	msgpack_pack_array(&w->pk, m->n_results);
	for (uint32_t i = 0; i < m->n_results; i++) {
		const struct proto_result *r = &m->results[i];
		proto_pack_result(w, r->id, r->code, r->data, r->len);
	}
}

/* Encode m as its sender would.  Returns 0, or -1 for a type that is not
 * re-encoded. */
static int
encode(struct proto_writer *w, const struct proto_msg *m)
{
	proto_writer_reset(w);
	switch (m->type) {
	case PROTO_HELLO:
		if (m->role == PROTO_ROLE_CLIENT) {
			proto_begin(w, m->type, 6);
		} else {
			proto_begin(w, m->type, 9);
		}
		proto_put_str(w, "role",
		    m->role == PROTO_ROLE_CLIENT ? "client" : "worker");
		proto_put_str(w, "name", m->name);
		proto_put_str(w, "host", m->host);
		proto_put_str(w, "group", m->group);
		proto_put_uint(w, "pid", m->pid);
		proto_put_uint(w, "session", m->session);
		if (m->role == PROTO_ROLE_WORKER) {
			proto_put_uint(w, "slots", m->slots);
			proto_put_uint(w, "capacity", m->capacity);
			proto_put_key(w, "functions");
			msgpack_pack_array(&w->pk, m->n_functions);
			for (uint32_t i = 0; i < m->n_functions; i++)
				proto_pack_str(w, m->functions[i],
				    strlen(m->functions[i]));
		}
		return 0;
	case PROTO_WELCOME:
		proto_begin(w, m->type, 3);
		proto_put_uint(w, "id", m->id);
		proto_put_uint(w, "heartbeat_ms", m->heartbeat_ms);
		proto_put_uint(w, "max_message_size", m->max_message_size);
		return 0;
	case PROTO_SUBMIT:
	case PROTO_TASKS:
		proto_begin(w, m->type, 1);
		proto_put_key(w, "tasks");
		msgpack_pack_array(&w->pk, m->n_tasks);
		for (uint32_t i = 0; i < m->n_tasks; i++) {
			const struct proto_task *t = &m->tasks[i];
			proto_pack_task(w, t->id, t->fn, t->fn_len, t->args,
			    t->args_len);
		}
		return 0;
	case PROTO_SUBMITTED:
		proto_begin(w, m->type, 2);
		proto_put_uint(w, "accepted", m->accepted);
		pack_results(w, "rejected", m);
		return 0;
	case PROTO_FETCH:
		proto_begin(w, m->type, 2);
		proto_put_uint(w, "ack", m->ack);
		proto_put_uint(w, "wait_ms", m->wait_ms);
		return 0;
	case PROTO_RESULTS:
		proto_begin(w, m->type, 2);
		proto_put_uint(w, "seq", m->seq);
		pack_results(w, "results", m);
		return 0;
	case PROTO_WORK:
		proto_begin(w, m->type, 2);
		proto_put_uint(w, "credit", m->credit);
		pack_results(w, "results", m);
		return 0;
	case PROTO_CANCEL:
	case PROTO_CANCELLED:
		proto_begin(w, m->type, 1);
		proto_put_key(w, "ids");
		msgpack_pack_array(&w->pk, m->n_ids);
		for (uint32_t i = 0; i < m->n_ids; i++)
			msgpack_pack_uint64(&w->pk, m->ids[i]);
		return 0;
	case PROTO_STATUS:
		proto_begin(w, m->type, 0);
		return 0;
	case PROTO_STATUS_REPLY:
		/* the whole map, as decoded */
		msgpack_pack_object(&w->pk, *m->body);
		return 0;
	case PROTO_ERROR:
		proto_write_error(w, m->code, m->msg);
		return 0;
	}
	return -1;
}

static int
mem_eq(const void *a, const void *b, size_t n)
{
	return n == 0 || memcmp(a, b, n) == 0;
}

/* The fields of a's type are equal in b. */
static void
check_same(const struct proto_msg *a, const struct proto_msg *b)
{
	CHECK(a->type == b->type);
	CHECK(a->version == b->version);
	switch (a->type) {
	case PROTO_HELLO:
		CHECK(a->role == b->role);
		CHECK(strcmp(a->name, b->name) == 0);
		CHECK(strcmp(a->host, b->host) == 0);
		CHECK(strcmp(a->group, b->group) == 0);
		CHECK(a->pid == b->pid && a->session == b->session);
		CHECK(a->slots == b->slots && a->capacity == b->capacity);
		CHECK(a->n_functions == b->n_functions);
		for (uint32_t i = 0; i < a->n_functions; i++)
			CHECK(strcmp(a->functions[i], b->functions[i]) == 0);
		break;
	case PROTO_WELCOME:
		CHECK(a->id == b->id && a->heartbeat_ms == b->heartbeat_ms);
		CHECK(a->max_message_size == b->max_message_size);
		break;
	case PROTO_SUBMIT:
	case PROTO_TASKS:
		CHECK(a->n_tasks == b->n_tasks);
		for (uint32_t i = 0; i < a->n_tasks; i++) {
			const struct proto_task *x = &a->tasks[i];
			const struct proto_task *y = &b->tasks[i];
			CHECK(x->id == y->id);
			CHECK(x->fn_len == y->fn_len && x->fn_len > 0);
			CHECK(mem_eq(x->fn, y->fn, x->fn_len));
			CHECK(x->args_len == y->args_len);
			CHECK(mem_eq(x->args, y->args, x->args_len));
		}
		break;
	case PROTO_SUBMITTED:
	case PROTO_RESULTS:
	case PROTO_WORK:
		CHECK(a->accepted == b->accepted && a->seq == b->seq);
		CHECK(a->credit == b->credit);
		CHECK(a->n_results == b->n_results);
		for (uint32_t i = 0; i < a->n_results; i++) {
			const struct proto_result *x = &a->results[i];
			const struct proto_result *y = &b->results[i];
			CHECK(x->id == y->id && x->code == y->code);
			CHECK(x->code <= 0);
			CHECK(x->len == y->len);
			CHECK(mem_eq(x->data, y->data, x->len));
		}
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
		CHECK(strcmp(a->msg, b->msg) == 0);
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
