/*
 * listen.c - the scheduler's socket: the stop signals it reads, the REP
 * socket and its limits, and a listener per configured address (TLS on
 * tls+tcp://, a stale ipc socket file of a crashed scheduler removed, a
 * loud warning for a network address without TLS and a token).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "log.h"
#include "sched_int.h"

int
sched_listen(struct sched *s)
{
	struct sec_listen sl;
	int               rv;

	/* block the stop signals in every thread (NNG's included) and read
	 * them from a signalfd in the loop */
	if (util_signal_fds(&s->signal_fd, &s->event_fd) != 0) {
		log_error("signalfd/eventfd: %s", strerror(errno));
		return -1;
	}
	if ((rv = nng_rep0_open(&s->sock)) != 0 ||
	    (rv = util_sock_setup(s->sock, s->cfg->max_message_size)) != 0) {
		log_error("cannot open the scheduler socket: %s",
		    nng_strerror(rv));
		return -1;
	}
	nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, pipe_cb, s);
	sl.tls_cert_key_file   = s->cfg->tls_cert_key_file;
	sl.tls_ca_file         = s->cfg->tls_ca_file;
	sl.require_client_cert = s->cfg->require_client_cert;
	for (size_t i = 0; i < s->cfg->n_listen; i++) {
		const char *url = s->cfg->listen[i];
		char        err[512];
		if (util_url_check(url, err, sizeof(err)) != 0) {
			log_error("listen: %s", err);
			return -1;
		}
		if (strncmp(url, "ipc://", 6) == 0) {
			/* a stale socket file from a crashed scheduler would
			 * make listen fail; remove it only if nothing
			 * answers there */
			nng_socket probe;
			if (nng_req0_open(&probe) == 0) {
				if (nng_dial(probe, url, NULL, 0) != 0)
					unlink(url + 6);
				nng_close(probe);
			}
		}
		if (sec_listen(s->sock, url, &sl, err, sizeof(err)) != 0) {
			log_error("%s", err);
			return -1;
		}
		log_info("listening on %s%s", url,
		    s->token[0] != '\0' ? " (token required)" : "");
		if (util_url_reach(url) == UTIL_REACH_NETWORK &&
		    (!util_url_is_tls(url) || s->token[0] == '\0'))
			log_warn("WARNING: listening on %s WITHOUT %s: ANYONE "
			         "WHO CAN REACH IT CAN RUN TASKS "
			         "(see docs/security.md)",
			    url,
			    util_url_is_tls(url) ? "A TOKEN"
			        : s->token[0] != '\0' ? "TLS"
			                              : "TLS AND A TOKEN");
	}
	pthread_mutex_lock(&s->lock);
	rctx_receive_next(s);
	pthread_mutex_unlock(&s->lock);
	if (s->ctxs == NULL)
		return -1;
	return 0;
}
