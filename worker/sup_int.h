/*
 * sup_int.h - what the supervisor's two files share: supervisor.c
 * (starting, watching, killing and reaping worker processes; what each
 * death is reported as) and sup_link.c (the supervisor's own connection
 * to the scheduler: hello, the watch that brings kill orders, the queue
 * of reports).
 */
#ifndef FERRY_SUP_INT_H
#define FERRY_SUP_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "proto.h"
#include "req.h"
#include "security.h"
#include "worker.h"

#define REPORTS_MAX 256 /* reports kept while the scheduler is away */

/* A report waiting to be sent. */
struct report {
	uint64_t                  pid, worker;
	const char               *cause; /* a static string */
	char                      reason[256];
	struct proto_report_task *tasks; /* malloc'd, n_tasks */
	uint32_t                  n_tasks;
};

/* The kinds of request the supervisor sends: one of each at most. */
enum sreq_kind {
	SREQ_HELLO = 1,
	SREQ_WATCH,
	SREQ_REPORT, /* the report at the head of the queue */
};

struct sreq {
	struct req h;
	uint64_t   sent_ms;
};

/* Kill orders from the scheduler (a watch's or a report's answer). */
typedef void (*sconn_orders_fn)(void *arg, const struct proto_msg *m);

/* The supervisor's own connection to the scheduler (sup_link.c); the
 * supervisor only reads open and its file descriptors, for poll. */
struct sconn {
	/* set by sconn_open */
	const struct wrk_options *o;
	const char               *host;
	sconn_orders_fn           on_orders;
	void                     *arg;
	nng_socket                sock;
	struct req_dialer         dialer;   /* its dialer, watched */
	int                       open;     /* the socket exists and dials */
	int                       recv_fd;  /* readable: a reply waits */
	int                       event_fd; /* written by the pipe callbacks */
	uint64_t                  token;    /* ours, random */
	char secret[SEC_TOKEN_MAX + 1];     /* the shared token */

	atomic_int           pipes; /* connections up now */
	atomic_int           lost;  /* a connection dropped */
	int                  registered;
	int                  refused; /* hellos refused in a row */
	struct sreq          reqs[3];
	struct req_set       rs;      /* reqs */
	struct req_link      link;    /* what the welcome said */
	uint64_t             next_hello_ms, next_watch_ms;
	struct report        q[REPORTS_MAX]; /* a ring */
	size_t               q_head, q_len;
	uint64_t             dropped;
	struct proto_writer  w;
	struct proto_decoder dec;
};

/* Open the socket and start dialling (in the background); kill orders
 * go to on_orders(arg, m).  Failing here only means no reports:
 * supervision goes on. */
void sconn_open(struct sconn *c, const struct wrk_options *o,
    const char *host, sconn_orders_fn on_orders, void *arg);

/* Close the socket and drop what is queued. */
void sconn_close(struct sconn *c);

/* Read replies and connection events; send what is due. */
void sconn_service(struct sconn *c);

/* Queue report r (taken: r is cleared); the oldest is dropped when the
 * queue is full. */
void sconn_report(struct sconn *c, struct report *r);

/* Free what r holds and clear it. */
void report_clear(struct report *r);

#endif
