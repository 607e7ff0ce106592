/*
 * security.c - TLS for listeners and dialers, the shared token.
 */
#include "security.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nng/supplemental/tls/tls.h>

#include "log.h"
#include "util.h"

int
sec_token_load(const char *path, char *out, char *err, size_t errlen)
{
	char        buf[SEC_TOKEN_MAX + 2];
	struct stat st;
	ssize_t     n;
	size_t      len = 0;
	int         fd;

	out[0] = '\0';
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return util_errf(err, errlen, "token file %s: %s", path,
		    strerror(errno));
	if (fstat(fd, &st) == 0 && (st.st_mode & 077) != 0)
		log_warn("token file %s can be read by other users (mode "
		         "%03o): chmod 600 it",
		    path, (unsigned)(st.st_mode & 0777));
	while (len < sizeof(buf) &&
	    (n = read(fd, buf + len, sizeof(buf) - len)) > 0)
		len += (size_t)n;
	close(fd);
	while (len > 0 && len <= SEC_TOKEN_MAX + 1 &&
	    (buf[len - 1] == '\n' || buf[len - 1] == '\r' ||
	        buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		len--;
	if (len > SEC_TOKEN_MAX)
		return util_errf(err, errlen,
		    "token file %s: longer than %d bytes", path,
		    SEC_TOKEN_MAX);
	if (len < SEC_TOKEN_MIN)
		return util_errf(err, errlen,
		    "token file %s: %zu bytes, a token needs at least %d "
		    "(e.g. openssl rand -hex 32 > %s)",
		    path, len, SEC_TOKEN_MIN, path);
	if (memchr(buf, '\0', len) != NULL)
		return util_errf(err, errlen,
		    "token file %s: contains a NUL byte", path);
	memcpy(out, buf, len);
	out[len] = '\0';
	return 0;
}

bool
sec_token_equal(const char *a, const char *b)
{
	volatile unsigned char diff = 0;
	size_t                 la   = strnlen(a, SEC_TOKEN_MAX + 1);
	size_t                 lb   = strnlen(b, SEC_TOKEN_MAX + 1);

	diff |= (unsigned char)(la != lb);
	for (size_t i = 0; i < SEC_TOKEN_MAX; i++) {
		unsigned char x = i < la ? (unsigned char)a[i] : 0;
		unsigned char y = i < lb ? (unsigned char)b[i] : 0;
		diff |= (unsigned char)(x ^ y);
	}
	return diff == 0;
}

int
sec_token_check_url(const char *url, const char *token, char *err,
    size_t errlen)
{
	if (token == NULL || token[0] == '\0' || util_token_may_send(url))
		return 0;
	return util_errf(err, errlen,
	    "refusing to send the token to %s: it would cross the network in "
	    "clear text; use tls+tcp:// (or ipc:// or a loopback address)",
	    url);
}

/*
 * Keep our reference to a TLS configuration NNG uses, for the life of the
 * process, so no teardown order inside NNG can free it while a
 * connection still uses it.  (A TLS scheduler once panicked at shutdown
 * with "pthread_mutex_lock: Invalid argument" while it dropped its own
 * reference; not reproduced since, so this is a precaution, not a proven
 * fix.)  A handful per process, kept reachable.
 */
static pthread_mutex_t  kept_lock = PTHREAD_MUTEX_INITIALIZER;
static nng_tls_config *kept[64];
static size_t          n_kept;

static void
config_keep(nng_tls_config *cfg)
{
	pthread_mutex_lock(&kept_lock);
	if (n_kept < sizeof(kept) / sizeof(kept[0]))
		kept[n_kept++] = cfg; /* beyond that, simply never freed */
	pthread_mutex_unlock(&kept_lock);
}

/* Check that path can be read, for a message naming it. */
static int
file_check(const char *what, const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return util_errf(err, errlen, "%s %s: %s", what, path,
		    strerror(errno));
	close(fd);
	return 0;
}

static int
cfg_ca(nng_tls_config *cfg, const char *path, char *err, size_t errlen)
{
	int rv;
	if (file_check("TLS CA file", path, err, errlen) != 0)
		return -1;
	if ((rv = nng_tls_config_ca_file(cfg, path)) != 0)
		return util_errf(err, errlen,
		    "TLS CA file %s: not a PEM certificate bundle (%s)", path,
		    nng_strerror(rv));
	return 0;
}

static int
cfg_cert_key(nng_tls_config *cfg, const char *path, char *err,
    size_t errlen)
{
	int rv;
	if (file_check("TLS certificate+key file", path, err, errlen) != 0)
		return -1;
	if ((rv = nng_tls_config_cert_key_file(cfg, path, NULL)) != 0)
		return util_errf(err, errlen,
		    "TLS certificate+key file %s: needs a PEM certificate and "
		    "its unencrypted private key in one file (%s)",
		    path, nng_strerror(rv));
	return 0;
}

int
sec_dial(nng_socket s, const char *url, const struct sec_dial *d,
    nng_dialer *out, char *err, size_t errlen)
{
	nng_dialer      dl;
	nng_tls_config *cfg = NULL;
	nng_url        *u   = NULL;
	int             rv;

	if (!util_url_is_tls(url)) {
		if (d != NULL && (d->tls_ca_file != NULL ||
		                     d->tls_cert_key_file != NULL))
			return util_errf(err, errlen,
			    "TLS files are set but %s is not a tls+tcp:// "
			    "address",
			    url);
		if ((rv = nng_dial(s, url, out, NNG_FLAG_NONBLOCK)) != 0)
			return util_errf(err, errlen, "dial %s: %s", url,
			    nng_strerror(rv));
		return 0;
	}
	if (d == NULL || d->tls_ca_file == NULL)
		return util_errf(err, errlen,
		    "%s is a TLS address: give the CA that signed the "
		    "scheduler's certificate (--tls-ca FILE or "
		    "security.tls.ca_file)",
		    url);
	if ((rv = nng_dialer_create(&dl, s, url)) != 0)
		return util_errf(err, errlen, "dial %s: %s", url,
		    nng_strerror(rv));
	if ((rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT)) != 0 ||
	    (rv = nng_tls_config_auth_mode(cfg,
	         NNG_TLS_AUTH_MODE_REQUIRED)) != 0) {
		util_errf(err, errlen, "TLS for %s: %s", url,
		    nng_strerror(rv));
		goto fail;
	}
	if (cfg_ca(cfg, d->tls_ca_file, err, errlen) != 0 ||
	    (d->tls_cert_key_file != NULL &&
	        cfg_cert_key(cfg, d->tls_cert_key_file, err, errlen) != 0))
		goto fail;
	if (d->tls_server_name != NULL && d->tls_server_name[0] != '\0')
		rv = nng_tls_config_server_name(cfg, d->tls_server_name);
	else if ((rv = nng_url_parse(&u, url)) == 0)
		rv = nng_tls_config_server_name(cfg, u->u_hostname);
	if (rv != 0 ||
	    (rv = nng_dialer_set_ptr(dl, NNG_OPT_TLS_CONFIG, cfg)) != 0 ||
	    (rv = nng_dialer_start(dl, NNG_FLAG_NONBLOCK)) != 0) {
		util_errf(err, errlen, "dial %s: %s", url, nng_strerror(rv));
		goto fail;
	}
	nng_url_free(u);
	config_keep(cfg);
	if (out != NULL)
		*out = dl;
	return 0;
fail:
	nng_url_free(u);
	if (cfg != NULL)
		nng_tls_config_free(cfg);
	nng_dialer_close(dl);
	return -1;
}

int
sec_redial(nng_socket s, const char *url, nng_dialer *dl, char *err,
    size_t errlen)
{
	nng_dialer nd;
	void      *cfg = NULL;
	int        rv;

	if ((rv = nng_dialer_create(&nd, s, url)) != 0)
		return util_errf(err, errlen, "dial %s again: %s", url,
		    nng_strerror(rv));
	/* the old dialer's TLS configuration (the files are read at
	 * connect only); getting it takes a reference, setting it another */
	if (util_url_is_tls(url) &&
	    ((rv = nng_dialer_get_ptr(*dl, NNG_OPT_TLS_CONFIG, &cfg)) != 0 ||
	        (rv = nng_dialer_set_ptr(nd, NNG_OPT_TLS_CONFIG, cfg)) != 0))
		goto fail;
	if ((rv = nng_dialer_start(nd, NNG_FLAG_NONBLOCK)) != 0)
		goto fail;
	if (cfg != NULL)
		nng_tls_config_free(cfg);
	nng_dialer_close(*dl);
	*dl = nd;
	return 0;
fail:
	if (cfg != NULL)
		nng_tls_config_free(cfg);
	nng_dialer_close(nd);
	return util_errf(err, errlen, "dial %s again: %s", url,
	    nng_strerror(rv));
}

int
sec_listen(nng_socket s, const char *url, const struct sec_listen *l,
    char *err, size_t errlen)
{
	nng_listener    ln;
	nng_tls_config *cfg = NULL;
	int             rv;

	if (!util_url_is_tls(url)) {
		if ((rv = nng_listen(s, url, NULL, 0)) != 0)
			return util_errf(err, errlen, "listen %s: %s", url,
			    nng_strerror(rv));
		return 0;
	}
	if (l == NULL || l->tls_cert_key_file == NULL)
		return util_errf(err, errlen,
		    "listen %s: a TLS address needs the scheduler's "
		    "certificate and key (--tls-cert-key FILE or "
		    "security.tls.cert_key_file)",
		    url);
	if (l->require_client_cert && l->tls_ca_file == NULL)
		return util_errf(err, errlen,
		    "listen %s: require_client_cert needs a CA file to check "
		    "client certificates with (--tls-ca FILE)",
		    url);
	if ((rv = nng_listener_create(&ln, s, url)) != 0)
		return util_errf(err, errlen, "listen %s: %s", url,
		    nng_strerror(rv));
	if ((rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_SERVER)) != 0 ||
	    (rv = nng_tls_config_auth_mode(cfg,
	         l->require_client_cert    ? NNG_TLS_AUTH_MODE_REQUIRED
	             : l->tls_ca_file != NULL ? NNG_TLS_AUTH_MODE_OPTIONAL
	                                   : NNG_TLS_AUTH_MODE_NONE)) != 0) {
		util_errf(err, errlen, "TLS for %s: %s", url,
		    nng_strerror(rv));
		goto fail;
	}
	if (cfg_cert_key(cfg, l->tls_cert_key_file, err, errlen) != 0 ||
	    (l->tls_ca_file != NULL &&
	        cfg_ca(cfg, l->tls_ca_file, err, errlen) != 0))
		goto fail;
	if ((rv = nng_listener_set_ptr(ln, NNG_OPT_TLS_CONFIG, cfg)) != 0 ||
	    (rv = nng_listener_start(ln, 0)) != 0) {
		util_errf(err, errlen, "listen %s: %s", url, nng_strerror(rv));
		goto fail;
	}
	config_keep(cfg);
	return 0;
fail:
	if (cfg != NULL)
		nng_tls_config_free(cfg);
	nng_listener_close(ln);
	return -1;
}

void
sec_pipe_addr(nng_pipe p, char *buf, size_t len)
{
	nng_sockaddr sa;
	char         ip[INET6_ADDRSTRLEN];

	util_strlcpy(buf, "unknown", len);
	if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) != 0)
		return;
	switch (sa.s_family) {
	case NNG_AF_INET:
		if (inet_ntop(AF_INET, &sa.s_in.sa_addr, ip, sizeof(ip)))
			snprintf(buf, len, "%s:%u", ip,
			    (unsigned)ntohs(sa.s_in.sa_port));
		break;
	case NNG_AF_INET6:
		if (inet_ntop(AF_INET6, sa.s_in6.sa_addr, ip, sizeof(ip)))
			snprintf(buf, len, "[%s]:%u", ip,
			    (unsigned)ntohs(sa.s_in6.sa_port));
		break;
	case NNG_AF_IPC:
	case NNG_AF_ABSTRACT:
		util_strlcpy(buf, "local socket", len);
		break;
	default:
		break;
	}
}

const char *
sec_connect_hint(const char *url)
{
	return util_url_is_tls(url)
	    ? " (TLS handshake failed or the scheduler is unreachable)"
	    : "";
}
