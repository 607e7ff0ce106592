/*
 * security.h - TLS configuration of listeners and dialers, and the shared
 * token peers present in hello.  See docs/security.md.
 */
#ifndef FERRY_SECURITY_H
#define FERRY_SECURITY_H

#include <stdbool.h>
#include <stddef.h>

#include <nng/nng.h>

#define SEC_TOKEN_MIN 16  /* bytes a token must have */
#define SEC_TOKEN_MAX 256 /* and may have (the hello field's limit) */

/* What a dialing peer (client, worker, supervisor) uses. */
struct sec_dial {
	const char *tls_ca_file;       /* CA bundle to verify the scheduler */
	const char *tls_cert_key_file; /* own certificate + key (mutual TLS) */
	const char *tls_server_name;   /* name to check; NULL: the URL's host */
	const char *token_file;        /* the shared token, NULL: none */
};

/* What the scheduler uses for its listeners. */
struct sec_listen {
	const char *tls_cert_key_file; /* its certificate + key, one PEM */
	const char *tls_ca_file;       /* CA of client certificates */
	int         require_client_cert;
};

/*
 * Read the token from path into out (SEC_TOKEN_MAX + 1 bytes): the file's
 * contents without trailing white space, SEC_TOKEN_MIN..SEC_TOKEN_MAX
 * bytes, no NUL.  Warns when others may read the file.  Returns 0, or -1
 * with a message naming the file in err.
 */
int sec_token_load(const char *path, char *out, char *err, size_t errlen);

/* Compare two NUL-terminated tokens in time that does not depend on
 * where they differ (only on SEC_TOKEN_MAX). */
bool sec_token_equal(const char *a, const char *b);

/*
 * Check that peer may send a token to url (util_token_may_send): if not,
 * write why into err and return -1.  0 when it may, or when token is NULL
 * or empty.
 */
int sec_token_check_url(const char *url, const char *token, char *err,
    size_t errlen);

/*
 * Dial url on s in the background (NNG_FLAG_NONBLOCK: it retries until it
 * connects); *dl (dl may be NULL) is the dialer.  For tls+tcp:// URLs,
 * first builds a TLS client configuration from d (CA required; own
 * certificate optional), checking each file up front.  TLS files given
 * for a URL that is not tls+tcp are an error.  Returns 0, or -1 with a
 * message naming the URL or the file.
 */
int sec_dial(nng_socket s, const char *url, const struct sec_dial *d,
    nng_dialer *dl, char *err, size_t errlen);

/*
 * Replace the dialer *dl of s to url by a new one with the same TLS
 * configuration, started in the background, and close the old one (a
 * dialer that stopped trying: req_dial_watch).  Returns 0, or -1 with a
 * message (the old dialer is kept then).
 */
int sec_redial(nng_socket s, const char *url, nng_dialer *dl, char *err,
    size_t errlen);

/* Listen on url on s; a tls+tcp:// URL needs l->tls_cert_key_file.
 * Returns 0, or -1 with a message naming the URL or the file. */
int sec_listen(nng_socket s, const char *url, const struct sec_listen *l,
    char *err, size_t errlen);

/* Write the remote address of pipe ("10.0.0.7:51234", "[::1]:4000",
 * "ipc", "unknown") into buf. */
void sec_pipe_addr(nng_pipe p, char *buf, size_t len);

/* The text to add after a connect timeout to url: for TLS URLs
 * " (TLS handshake failed or the scheduler is unreachable)", else "". */
const char *sec_connect_hint(const char *url);

#endif
