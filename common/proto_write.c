/*
 * proto_write.c - write Ferry's msgpack messages: the writer (maps that
 * count their fields, lists that count their elements) and one function
 * per message type.  docs/protocol.md section 6.1 shows the bytes.
 */
#include "proto.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ writer */

void
proto_writer_init(struct proto_writer *w)
{
	msgpack_sbuffer_init(&w->buf);
	msgpack_packer_init(&w->pk, &w->buf, msgpack_sbuffer_write);
	w->depth   = 0;
	w->entries = 0;
	w->list_at = 0;
}

void
proto_writer_fini(struct proto_writer *w)
{
	msgpack_sbuffer_destroy(&w->buf);
}

void
proto_writer_reset(struct proto_writer *w)
{
	msgpack_sbuffer_clear(&w->buf);
	w->depth   = 0;
	w->entries = 0;
	w->list_at = 0;
}

void
proto_writer_swap(struct proto_writer *a, struct proto_writer *b)
{
	struct proto_writer tmp = *a;

	*a = *b;
	*b = tmp;
	/* each packer points at its own buffer: re-aim both */
	msgpack_packer_init(&a->pk, &a->buf, msgpack_sbuffer_write);
	msgpack_packer_init(&b->pk, &b->buf, msgpack_sbuffer_write);
}

void
proto_writer_append(struct proto_writer *dst, const struct proto_writer *src)
{
	if (src->buf.size == 0)
		return;
	msgpack_sbuffer_write(&dst->buf, src->buf.data, src->buf.size);
	dst->entries += src->entries;
}

static void
pack_cstr(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

/* A string or bytes inside an entry (not counted as an element). */
static void
pack_str(struct proto_writer *w, const char *s, size_t len)
{
	msgpack_pack_str(&w->pk, len);
	msgpack_pack_str_body(&w->pk, s, len);
}

static void
pack_bin(struct proto_writer *w, const void *p, size_t len)
{
	msgpack_pack_bin(&w->pk, len);
	msgpack_pack_bin_body(&w->pk, p, len);
}

void
proto_open_map(struct proto_writer *w)
{
	static const char fixmap0 = (char)0x80;

	if (w->depth >= PROTO_MAX_OPEN)
		abort(); /* a writer bug, not input */
	w->open_at[w->depth] = w->buf.size;
	w->open_n[w->depth]  = 0;
	w->depth++;
	msgpack_sbuffer_write(&w->buf, &fixmap0, 1);
}

void
proto_open(struct proto_writer *w, int type)
{
	proto_open_map(w);
	proto_put_uint(w, "v", PROTO_VERSION);
	proto_put_str(w, "t", proto_type_name(type));
}

/* Write big-endian n into the bytes of p after a head byte. */
static void
put_be(uint8_t *p, uint8_t head, uint32_t n, int bytes)
{
	p[0] = head;
	for (int i = bytes; i > 0; i--, n >>= 8)
		p[i] = (uint8_t)n;
}

void
proto_end(struct proto_writer *w)
{
	uint8_t *p;
	size_t   at, extra;
	uint32_t n;

	if (w->depth == 0)
		abort(); /* a writer bug, not input */
	w->depth--;
	at = w->open_at[w->depth];
	n  = w->open_n[w->depth];
	if (n <= 15) {
		((uint8_t *)w->buf.data)[at] = (uint8_t)(0x80 | n);
		return;
	}
	/* a map16 or map32 header: make room after the placeholder byte */
	extra = n <= 0xffff ? 2 : 4;
	if (msgpack_sbuffer_write(&w->buf, "\0\0\0\0", extra) != 0)
		return; /* out of memory: the sender sees a short buffer */
	p = (uint8_t *)w->buf.data + at;
	memmove(p + 1 + extra, p + 1, w->buf.size - at - 1 - extra);
	put_be(p, extra == 2 ? 0xde : 0xdf, n, (int)extra);
}

void
proto_put_key(struct proto_writer *w, const char *key)
{
	if (w->depth > 0)
		w->open_n[w->depth - 1]++;
	pack_cstr(&w->pk, key);
}

void
proto_put_uint(struct proto_writer *w, const char *key, uint64_t v)
{
	proto_put_key(w, key);
	msgpack_pack_uint64(&w->pk, v);
}

void
proto_put_int(struct proto_writer *w, const char *key, int64_t v)
{
	proto_put_key(w, key);
	msgpack_pack_int64(&w->pk, v);
}

void
proto_put_str(struct proto_writer *w, const char *key, const char *s)
{
	proto_put_key(w, key);
	pack_cstr(&w->pk, s != NULL ? s : "");
}

void
proto_put_list(struct proto_writer *w, const char *key,
    const struct proto_writer *src)
{
	proto_put_key(w, key);
	msgpack_pack_array(&w->pk, src != NULL ? src->entries : 0);
	if (src != NULL && src->buf.size > 0)
		msgpack_sbuffer_write(&w->buf, src->buf.data, src->buf.size);
}

void
proto_put_cache(struct proto_writer *w, const char *key,
    const struct proto_cache *c)
{
	const struct {
		const char *name;
		uint64_t    v;
	} f[] = { { "objects", c->objects }, { "bytes", c->bytes },
		{ "loads", c->loads }, { "hits", c->hits },
		{ "evictions", c->evictions }, { "failures", c->failures } };

	proto_put_key(w, key);
	proto_open_map(w);
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		proto_put_uint(w, f[i].name, f[i].v);
	proto_end(w);
}

/*
 * A list whose length is known at its end: key, then the 5-byte array32
 * form (protocol.md 6.1), patched by list_close() with the elements
 * packed meanwhile.  One at a time.
 */
static void
list_open(struct proto_writer *w, const char *key)
{
	static const char hdr[5] = { (char)0xdd, 0, 0, 0, 0 };

	if (w->list_at != 0)
		abort(); /* a writer bug, not input */
	proto_put_key(w, key);
	w->list_at   = w->buf.size;
	w->list_from = w->entries;
	msgpack_sbuffer_write(&w->buf, hdr, sizeof(hdr));
}

static void
list_close(struct proto_writer *w)
{
	if (w->list_at == 0)
		abort(); /* a writer bug, not input */
	if (w->list_at + 5 <= w->buf.size) /* else out of memory */
		put_be((uint8_t *)w->buf.data + w->list_at, 0xdd,
		    w->entries - w->list_from, 4);
	w->list_at = 0;
}

/* ------------------------------------------------------- elements */

void
proto_pack_str(struct proto_writer *w, const char *s, size_t len)
{
	pack_str(w, s, len);
	w->entries++;
}

void
proto_pack_bin(struct proto_writer *w, const void *p, size_t len)
{
	pack_bin(w, p, len);
	w->entries++;
}

/* The head of a task entry of n elements: [id, fn, args, ...]. */
static void
pack_task_head(struct proto_writer *w, uint32_t n, uint64_t id,
    const char *fn, size_t fn_len, const void *args, size_t args_len)
{
	msgpack_pack_array(&w->pk, n);
	msgpack_pack_uint64(&w->pk, id);
	pack_str(w, fn, fn_len);
	pack_bin(w, args, args_len);
	w->entries++;
}

/* The head of a result entry of n elements: [id, code, value|error, ...]. */
static void
pack_result_head(struct proto_writer *w, uint32_t n, uint64_t id,
    int32_t code, const void *data, size_t len)
{
	msgpack_pack_array(&w->pk, n);
	msgpack_pack_uint64(&w->pk, id);
	msgpack_pack_int32(&w->pk, code);
	if (code == 0)
		pack_bin(w, data, len);
	else
		pack_str(w, data, len);
	w->entries++;
}

void
proto_pack_task(struct proto_writer *w, uint64_t id, const char *fn,
    size_t fn_len, const void *args, size_t args_len)
{
	pack_task_head(w, 3, id, fn, fn_len, args, args_len);
}

void
proto_pack_result(struct proto_writer *w, uint64_t id, int32_t code,
    const void *data, size_t len)
{
	pack_result_head(w, 3, id, code, data, len);
}

/* ------------------------------------------------------ messages */

/* Put key with a list of n ids, in the smallest array form. */
static void
put_ids(struct proto_writer *w, const char *key, const uint64_t *ids,
    uint32_t n)
{
	proto_put_key(w, key);
	msgpack_pack_array(&w->pk, n);
	for (uint32_t i = 0; i < n; i++)
		msgpack_pack_uint64(&w->pk, ids[i]);
}

/* A hello of role: the fields that role's hello has, in the order its
 * peer has always written them (protocol.md 3.2, 3.3, 3.3b). */
static void
write_hello(struct proto_writer *w, int role, const struct proto_hello *h)
{
	static const char *names[] = { [PROTO_ROLE_WORKER] = "worker",
		[PROTO_ROLE_CLIENT] = "client",
		[PROTO_ROLE_SUPERVISOR] = "supervisor" };

	proto_open(w, PROTO_HELLO);
	proto_put_str(w, "role", names[role]);
	if (h->token != NULL && h->token[0] != '\0')
		proto_put_str(w, "token", h->token);
	if (role == PROTO_ROLE_SUPERVISOR)
		proto_put_uint(w, "supervisor", h->supervisor);
	proto_put_str(w, "name", h->name);
	proto_put_str(w, "host", h->host);
	if (role != PROTO_ROLE_CLIENT)
		proto_put_str(w, "group", h->group);
	proto_put_uint(w, "pid", h->pid);
	if (role != PROTO_ROLE_SUPERVISOR)
		proto_put_uint(w, "session", h->session);
	if (role != PROTO_ROLE_WORKER) {
		proto_end(w);
		return;
	}
	proto_put_uint(w, "slots", h->slots);
	proto_put_uint(w, "capacity", h->capacity);
	proto_put_key(w, "functions");
	msgpack_pack_array(&w->pk, h->n_functions);
	for (uint32_t i = 0; i < h->n_functions; i++)
		pack_str(w, h->functions[i], strlen(h->functions[i]));
	if (h->supervisor != 0)
		proto_put_uint(w, "supervisor", h->supervisor);
	if (h->epoch != 0) {
		proto_put_uint(w, "epoch", h->epoch);
		proto_put_uint(w, "previous", h->previous);
		put_ids(w, "holding", h->holding, h->n_holding);
	}
	proto_end(w);
}

void
proto_write_hello_worker(struct proto_writer *w, const struct proto_hello *h)
{
	write_hello(w, PROTO_ROLE_WORKER, h);
}

void
proto_write_hello_client(struct proto_writer *w, const struct proto_hello *h)
{
	write_hello(w, PROTO_ROLE_CLIENT, h);
}

void
proto_write_hello_supervisor(struct proto_writer *w,
    const struct proto_hello *h)
{
	write_hello(w, PROTO_ROLE_SUPERVISOR, h);
}

/* A welcome; x: a worker's additions, or NULL. */
static void
write_welcome(struct proto_writer *w, const struct proto_welcome *m,
    const struct proto_welcome_worker *x)
{
	proto_open(w, PROTO_WELCOME);
	proto_put_uint(w, "id", m->id);
	proto_put_uint(w, "heartbeat_ms", m->heartbeat_ms);
	proto_put_uint(w, "heartbeat_timeout_ms", m->heartbeat_timeout_ms);
	proto_put_uint(w, "max_message_size", m->max_message_size);
	if (m->client) {
		proto_put_uint(w, "max_tag", m->max_tag);
		proto_put_uint(w, "resumed", m->resumed);
	}
	if (x != NULL && x->epoch != 0)
		proto_put_uint(w, "epoch", x->epoch);
	if (x != NULL && x->n_drop > 0)
		put_ids(w, "drop", x->drop, x->n_drop);
	proto_end(w);
}

void
proto_write_welcome(struct proto_writer *w, const struct proto_welcome *m)
{
	write_welcome(w, m, NULL);
}

void
proto_write_welcome_worker(struct proto_writer *w,
    const struct proto_welcome *m, const struct proto_welcome_worker *x)
{
	write_welcome(w, m, x);
}

void
proto_write_submit_begin(struct proto_writer *w)
{
	proto_open(w, PROTO_SUBMIT);
	list_open(w, "tasks");
}

/* The options map of a submit entry: the fields set. */
static void
pack_task_opts(struct proto_writer *w, const struct proto_task_opts *o)
{
	proto_open_map(w);
	if (o->set & PROTO_OPT_RETRIES)
		proto_put_uint(w, "retries", o->retries);
	if (o->set & PROTO_OPT_BACKOFF)
		proto_put_uint(w, "backoff_ms", o->backoff_ms);
	if (o->set & PROTO_OPT_BACKOFF_MAX)
		proto_put_uint(w, "backoff_max_ms", o->backoff_max_ms);
	if (o->set & PROTO_OPT_TIMEOUT)
		proto_put_uint(w, "timeout_ms", o->timeout_ms);
	if (o->set & PROTO_OPT_RETRY_ERRORS)
		proto_put_uint(w, "retry_errors", o->retry_errors ? 1 : 0);
	if (o->set & PROTO_OPT_RUN_ANYWAY)
		proto_put_uint(w, "run_anyway", o->run_anyway ? 1 : 0);
	proto_end(w);
}

void
proto_write_submit_entry(struct proto_writer *w, uint64_t id, const char *fn,
    size_t fn_len, const void *args, size_t args_len,
    const char *const *keys, const size_t *lens, uint32_t n_keys,
    const struct proto_task_opts *opts, const uint64_t *deps,
    uint32_t n_deps)
{
	int with_opts = opts != NULL && opts->set != 0;

	pack_task_head(w,
	    n_deps > 0 ? 6 : with_opts ? 5 : n_keys > 0 ? 4 : 3, id, fn,
	    fn_len, args, args_len);
	if (!with_opts && n_keys == 0 && n_deps == 0)
		return;
	msgpack_pack_array(&w->pk, n_keys);
	for (uint32_t i = 0; i < n_keys; i++)
		pack_str(w, keys[i], lens[i]);
	if (with_opts)
		pack_task_opts(w, opts);
	else if (n_deps > 0)
		msgpack_pack_nil(&w->pk);
	if (n_deps == 0)
		return;
	msgpack_pack_array(&w->pk, n_deps);
	for (uint32_t i = 0; i < n_deps; i++)
		msgpack_pack_uint64(&w->pk, deps[i]);
}

void
proto_write_submit_end(struct proto_writer *w)
{
	list_close(w);
	proto_end(w);
}

void
proto_write_submitted(struct proto_writer *w, uint64_t accepted,
    const struct proto_writer *rej)
{
	proto_open(w, PROTO_SUBMITTED);
	proto_put_uint(w, "accepted", accepted);
	proto_put_list(w, "rejected", rej);
	proto_end(w);
}

void
proto_write_fetch(struct proto_writer *w, uint64_t ack, uint64_t wait_ms)
{
	proto_open(w, PROTO_FETCH);
	proto_put_uint(w, "ack", ack);
	proto_put_uint(w, "wait_ms", wait_ms);
	proto_end(w);
}

void
proto_write_results_begin(struct proto_writer *w)
{
	proto_open(w, PROTO_RESULTS);
	list_open(w, "results");
}

void
proto_write_results_entry(struct proto_writer *w, uint64_t id, int32_t code,
    const void *data, size_t len, uint32_t attempts)
{
	pack_result_head(w, 4, id, code, data, len);
	msgpack_pack_uint32(&w->pk, attempts);
}

void
proto_write_results_end(struct proto_writer *w, uint64_t seq)
{
	list_close(w);
	proto_put_uint(w, "seq", seq);
	proto_end(w);
}

void
proto_write_results_empty(struct proto_writer *w)
{
	proto_open(w, PROTO_RESULTS);
	proto_put_list(w, "results", NULL);
	proto_put_uint(w, "seq", 0);
	proto_end(w);
}

/* cancel and cancelled: a list of ids. */
static void
write_ids(struct proto_writer *w, int type, const uint64_t *ids, uint32_t n)
{
	proto_open(w, type);
	put_ids(w, "ids", ids, n);
	proto_end(w);
}

void
proto_write_cancel(struct proto_writer *w, const uint64_t *ids, uint32_t n)
{
	write_ids(w, PROTO_CANCEL, ids, n);
}

void
proto_write_cancelled(struct proto_writer *w, const uint64_t *ids,
    uint32_t n)
{
	write_ids(w, PROTO_CANCELLED, ids, n);
}

void
proto_write_status(struct proto_writer *w)
{
	proto_open(w, PROTO_STATUS);
	proto_end(w);
}

void
proto_write_work(struct proto_writer *w, const struct proto_work *m)
{
	proto_open(w, PROTO_WORK);
	proto_put_uint(w, "credit", m->credit);
	if (m->park)
		proto_put_uint(w, "park", 1);
	if (m->results != NULL)
		proto_put_list(w, "results", m->results);
	if (m->loaded != NULL && m->loaded->entries > 0)
		proto_put_list(w, "loaded", m->loaded);
	if (m->evicted != NULL && m->evicted->entries > 0)
		proto_put_list(w, "evicted", m->evicted);
	if (m->cache != NULL)
		proto_put_cache(w, "cache", m->cache);
	proto_end(w);
}

void
proto_write_tasks_begin(struct proto_writer *w)
{
	proto_open(w, PROTO_TASKS);
	list_open(w, "tasks");
}

void
proto_write_tasks_entry(struct proto_writer *w, uint64_t id, const char *fn,
    size_t fn_len, const void *args, size_t args_len, uint32_t timeout_ms)
{
	pack_task_head(w, timeout_ms != 0 ? 4 : 3, id, fn, fn_len, args,
	    args_len);
	if (timeout_ms != 0)
		msgpack_pack_uint32(&w->pk, timeout_ms);
}

void
proto_write_tasks_end(struct proto_writer *w)
{
	list_close(w);
	proto_end(w);
}

void
proto_write_error(struct proto_writer *w, int code, const char *msg)
{
	proto_open(w, PROTO_ERROR);
	proto_put_int(w, "code", code);
	proto_put_str(w, "msg", msg);
	proto_end(w);
}

void
proto_write_watch(struct proto_writer *w, uint64_t wait_ms)
{
	proto_open(w, PROTO_WATCH);
	proto_put_uint(w, "wait_ms", wait_ms);
	proto_end(w);
}

void
proto_write_report(struct proto_writer *w, uint64_t pid, uint64_t worker,
    const char *cause, const char *reason,
    const struct proto_report_task *tasks, uint32_t n)
{
	proto_open(w, PROTO_REPORT);
	proto_put_uint(w, "pid", pid);
	proto_put_uint(w, "worker", worker);
	proto_put_str(w, "cause", cause);
	proto_put_str(w, "reason", reason);
	proto_put_key(w, "tasks");
	msgpack_pack_array(&w->pk, n);
	for (uint32_t i = 0; i < n; i++) {
		msgpack_pack_array(&w->pk, 2);
		msgpack_pack_uint64(&w->pk, tasks[i].id);
		msgpack_pack_uint32(&w->pk, tasks[i].charged);
	}
	proto_end(w);
}

void
proto_write_orders(struct proto_writer *w, const struct proto_kill *kills,
    size_t n)
{
	proto_open(w, PROTO_ORDERS);
	proto_put_key(w, "kill");
	msgpack_pack_array(&w->pk, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		msgpack_pack_array(&w->pk, 2);
		msgpack_pack_uint64(&w->pk, kills[i].pid);
		msgpack_pack_uint64(&w->pk, kills[i].task);
	}
	proto_end(w);
}
