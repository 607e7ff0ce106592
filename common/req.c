/*
 * req.c - the request layer of the scheduler's peers (req.h).
 */
#include "req.h"

#include <string.h>

#include "util.h"

/* Ids are 31 bits: NNG keeps the top bit of the last header word for
 * the end of the backtrace. */
#define REQ_ID_LIMIT 0x7fffffffu

void
req_set_init(struct req_set *s, void *slots, size_t size, uint32_t n,
    int (*busy)(const struct req *r))
{
	s->slots = slots;
	s->size  = size;
	s->n     = n;
	s->last  = 0;
	s->busy  = busy;
}

struct req *
req_at(const struct req_set *s, uint32_t i)
{
	return (struct req *)(s->slots + (size_t)i * s->size);
}

struct req *
req_new(struct req_set *s, int kind)
{
	for (uint32_t i = 0; i < s->n; i++) {
		struct req *r = req_at(s, i);
		if (r->id != 0 || (s->busy != NULL && s->busy(r)))
			continue;
		if (++s->last >= REQ_ID_LIMIT)
			s->last = 1;
		r->id   = s->last;
		r->kind = kind;
		return r;
	}
	return NULL;
}

struct req *
req_find(const struct req_set *s, uint32_t id)
{
	if (id == 0)
		return NULL;
	for (uint32_t i = 0; i < s->n; i++) {
		struct req *r = req_at(s, i);
		if (r->id == id)
			return r;
	}
	return NULL;
}

struct req *
req_of_kind(const struct req_set *s, int kind)
{
	for (uint32_t i = 0; i < s->n; i++) {
		struct req *r = req_at(s, i);
		if (r->id != 0 && r->kind == kind)
			return r;
	}
	return NULL;
}

void
req_done(struct req *r)
{
	r->id = 0;
}

void
req_abandon(struct req_set *s, void (*drop)(struct req *r, void *arg),
    void *arg)
{
	for (uint32_t i = 0; i < s->n; i++) {
		struct req *r = req_at(s, i);
		if (r->id == 0 && (s->busy == NULL || !s->busy(r)))
			continue;
		if (drop != NULL)
			drop(r, arg);
		r->id = 0;
	}
}

int
req_dial(nng_socket sock, const char *url, const struct sec_dial *sd,
    char *token, struct req_dialer *rd, char *err, size_t errlen)
{
	if (sd->token_file != NULL &&
	    (sec_token_load(sd->token_file, token, err, errlen) != 0 ||
	        sec_token_check_url(url, token, err, errlen) != 0))
		return -1;
	if (rd != NULL)
		memset(rd, 0, sizeof(*rd));
	return sec_dial(sock, url, sd, rd != NULL ? &rd->dl : NULL, err,
	    errlen);
}

/* The attempts dl has ended (NNG's counters of its outcomes), and its
 * connections now; -1 when NNG keeps no statistics of it. */
static int
dial_state(nng_dialer dl, uint64_t *ended, uint64_t *pipes)
{
	nng_stat *all, *x, *y;
	int       found = 0;

	*ended = *pipes = 0;
	if (nng_stats_get(&all) != 0)
		return -1;
	for (x = nng_stat_child(all); x != NULL && !found;
	     x = nng_stat_next(x)) {
		const char *name = nng_stat_name(x);
		nng_stat   *id   = nng_stat_find(x, "id");
		if (name == NULL || strcmp(name, "dialer") != 0 || id == NULL ||
		    nng_stat_value(id) != (uint64_t)nng_dialer_id(dl))
			continue;
		found = 1;
		for (y = nng_stat_child(x); y != NULL; y = nng_stat_next(y))
			if (nng_stat_type(y) == NNG_STAT_COUNTER)
				*ended += nng_stat_value(y);
			else if (strcmp(nng_stat_name(y), "pipes") == 0)
				*pipes = nng_stat_value(y);
	}
	nng_stats_free(all);
	return found ? 0 : -1;
}

int
req_dial_watch(nng_socket sock, const char *url, struct req_dialer *rd,
    char *err, size_t errlen)
{
	uint64_t ended, pipes, now = util_now_ms();

	if (now - rd->checked_ms < 500)
		return 0;
	rd->checked_ms = now;
	if (dial_state(rd->dl, &ended, &pipes) != 0 || pipes > 0) {
		rd->since_ms = 0;
		return 0;
	}
	if (rd->since_ms == 0 || ended != rd->ended) {
		rd->ended    = ended;
		rd->since_ms = now;
		return 0;
	}
	if (now - rd->since_ms < REQ_DIAL_STALL_MS)
		return 0;
	rd->since_ms = 0;
	return sec_redial(sock, url, &rd->dl, err, errlen) == 0 ? 1 : -1;
}

int
req_msg(nng_msg **out, const struct proto_writer *w, uint32_t id)
{
	nng_msg *msg;
	int      rv;

	if ((rv = nng_msg_alloc(&msg, w->buf.size)) != 0)
		return rv;
	if (w->buf.size > 0)
		memcpy(nng_msg_body(msg), w->buf.data, w->buf.size);
	if (id != 0 && (rv = util_request_id(msg, id)) != 0) {
		nng_msg_free(msg);
		return rv;
	}
	*out = msg;
	return 0;
}

int
req_send(nng_socket sock, const struct req *r, const struct proto_writer *w,
    int flags)
{
	nng_msg *msg;
	int      rv;

	if ((rv = req_msg(&msg, w, r->id)) != 0)
		return rv;
	if ((rv = nng_sendmsg(sock, msg, flags)) != 0)
		nng_msg_free(msg);
	return rv;
}

int
req_reply_id(nng_msg *msg, uint32_t *id)
{
	return util_reply_id(msg, id);
}

void
req_link_init(struct req_link *l, size_t max_msg)
{
	l->id            = 0;
	l->hb_ms         = 1000;
	l->hb_timeout_ms = 5000;
	l->max_msg       = max_msg;
}

enum req_answer
req_link_answer(struct req_link *l, int rv, const struct proto_msg *m)
{
	if (rv != 0)
		return REQ_BAD;
	if (m->type == PROTO_ERROR)
		return REQ_REFUSED;
	if (m->type != PROTO_WELCOME)
		return REQ_UNEXPECTED;
	l->id    = m->id;
	l->hb_ms = m->heartbeat_ms > 0 ? m->heartbeat_ms : 1000;
	if (m->heartbeat_timeout_ms > 0)
		l->hb_timeout_ms = m->heartbeat_timeout_ms;
	if (m->max_message_size >= 65536 && m->max_message_size < l->max_msg)
		l->max_msg = m->max_message_size;
	return REQ_WELCOMED;
}
