/*
 * req.h - the request layer of the scheduler's peers: the client
 * (libferry), the worker process and the supervisor.
 *
 * Each peer talks to the scheduler in requests and replies (REQ/REP,
 * protocol.md 1.2).  What they share is here: request ids; a table of
 * outstanding requests (each peer's own request struct starts with
 * struct req) to match replies to and to abandon when the connection
 * drops; building a message from a writer, with the id in its header on
 * a raw REQ socket (the client's and the supervisor's) or without it on
 * a REQ context that adds its own (the worker process's); and the
 * hello/welcome exchange: what a welcome tells a peer and how an answer
 * to a hello is classified.  The resend rules are the peers': after a
 * connection loss each abandons its outstanding requests (req_abandon),
 * sends again what must not be lost, and says hello again.
 */
#ifndef FERRY_REQ_H
#define FERRY_REQ_H

#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "proto.h"
#include "security.h"

/* The head of a peer's request: the first member of its own struct. */
struct req {
	uint32_t id;   /* non-zero while outstanding */
	int      kind; /* the peer's own request kinds */
};

/* A peer's request slots: n structs of size bytes, each starting with
 * struct req. */
struct req_set {
	char    *slots;
	size_t   size;
	uint32_t n;
	uint32_t last; /* the id handed out last */
	/* whether a slot with no request outstanding is still in use (the
	 * worker's: its operations have not finished); NULL: never */
	int (*busy)(const struct req *r);
};

/* Use the n slots of size bytes at slots (zeroed: none outstanding). */
void req_set_init(struct req_set *s, void *slots, size_t size, uint32_t n,
    int (*busy)(const struct req *r));

/* Slot i. */
struct req *req_at(const struct req_set *s, uint32_t i);

/* A free slot for a request of kind, with a fresh id; NULL when every
 * slot is in use.  The peer's fields after the head are as they were. */
struct req *req_new(struct req_set *s, int kind);

/* The outstanding request with id, or NULL (a reply from before a
 * reconnection, or to a request given up on). */
struct req *req_find(const struct req_set *s, uint32_t id);

/* The outstanding request of kind, or NULL. */
struct req *req_of_kind(const struct req_set *s, int kind);

/* The request is answered or given up on: its slot is free (unless
 * busy says otherwise). */
void req_done(struct req *r);

/* Abandon every outstanding request (the connection dropped): drop(r,
 * arg), when not NULL, sees each one before its id is cleared, and each
 * slot still busy (its operations not finished). */
void req_abandon(struct req_set *s, void (*drop)(struct req *r, void *arg),
    void *arg);

/* A peer's dialer, and what req_dial_watch saw of it. */
struct req_dialer {
	nng_dialer dl;
	uint64_t   ended;      /* its attempts that had ended, at since_ms */
	uint64_t   since_ms;   /* 0: not watching (it has a connection) */
	uint64_t   checked_ms; /* the last look (at most every 500 ms) */
};

/* Load the shared token of sd->token_file into token (SEC_TOKEN_MAX + 1
 * bytes; "" without a token file), refusing one that url would show to
 * others, and dial url on sock in the background with sd's TLS files;
 * rd (may be NULL) takes the dialer.  Returns 0, or -1 with a message
 * naming the file or the URL in err. */
int req_dial(nng_socket sock, const char *url, const struct sec_dial *sd,
    char *token, struct req_dialer *rd, char *err, size_t errlen);

/* How long a dialer without a connection may end no attempt before
 * req_dial_watch replaces it: longer than NNG's longest wait between two
 * attempts (NNG_OPT_RECONNMAXT, 1 s: util_sock_setup) and than the 10 s
 * it gives a connection to finish its handshake. */
#define REQ_DIAL_STALL_MS 11000

/*
 * Call now and then while the peer is not connected: when rd's dialer
 * has no connection and has ended no connection attempt for
 * REQ_DIAL_STALL_MS, it stopped trying, and a new one replaces it
 * (sec_redial).  NNG (1.5.2, and later 1.x) stops a dialer for good when
 * an attempt ends in NNG_ECLOSED, which a write into a connection whose
 * peer is gone (EPIPE) also gives: kill -9 restarts of the scheduler have
 * been seen to leave a peer's dialer so (its counters frozen, no
 * connection), unable to reach any later scheduler.  Returns 1 when it
 * replaced the dialer (err says why it could not, with -1), else 0.
 */
int req_dial_watch(nng_socket sock, const char *url, struct req_dialer *rd,
    char *err, size_t errlen);

/* Build a message holding w's bytes; with id non-zero, the id goes in
 * its header (a raw REQ socket).  Returns 0 or an NNG error. */
int req_msg(nng_msg **out, const struct proto_writer *w, uint32_t id);

/* Send w as request r on the raw REQ socket sock (flags as for
 * nng_sendmsg).  Returns 0, or an NNG error: nothing was sent. */
int req_send(nng_socket sock, const struct req *r,
    const struct proto_writer *w, int flags);

/* The request id a reply on a raw REQ socket answers: 0, or -1 when its
 * header holds none. */
int req_reply_id(nng_msg *msg, uint32_t *id);

/* What a peer learned from its welcome. */
struct req_link {
	uint64_t id;            /* its id: worker id, session, token */
	uint64_t hb_ms;         /* heartbeat interval (default 1000) */
	uint64_t hb_timeout_ms; /* heartbeat timeout (default 5000) */
	size_t   max_msg;       /* own message limit, lowered to the
	                         * scheduler's */
};

/* Defaults before a welcome; max_msg the peer's own limit. */
void req_link_init(struct req_link *l, size_t max_msg);

/* How a hello was answered. */
enum req_answer {
	REQ_WELCOMED = 0, /* welcome: l took what it says */
	REQ_BAD,          /* the reply did not decode (rv, err) */
	REQ_REFUSED,      /* error: m->code, m->msg */
	REQ_UNEXPECTED,   /* another type */
};

/* Classify the answer to a hello (rv: what proto_decode returned for
 * m); a welcome updates l. */
enum req_answer req_link_answer(struct req_link *l, int rv,
    const struct proto_msg *m);

#endif
