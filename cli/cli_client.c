/*
 * cli_client.c - connecting to a scheduler as a client (submit, status,
 * cluster, bench) and reading its status document.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "json.h"
#include "util.h"

int
cli_sec_flag(struct cli_sec *sec, int ch, const char *val)
{
	switch (ch) {
	case CLI_OPT_TLS_CA: sec->tls_ca = val; return 1;
	case CLI_OPT_TLS_CERTKEY: sec->tls_cert_key = val; return 1;
	case CLI_OPT_TLS_NAME: sec->tls_server_name = val; return 1;
	case CLI_OPT_TOKEN_FILE: sec->token_file = val; return 1;
	default: return 0;
	}
}

/* The first of a (a flag) and b (the cluster file's). */
static const char *
either(const char *a, const char *b)
{
	return a != NULL ? a : b;
}

/* Client options for url: timeout, error buffer, and TLS and token
 * settings from sec's flags (may be NULL), else c's security section
 * (may be NULL). */
static void
client_opts(struct ferry_client_opts *o, const struct cli_sec *sec,
    const struct conf *c, int timeout_ms, char *err, size_t errlen)
{
	static const struct cli_sec none;

	if (sec == NULL)
		sec = &none;
	memset(o, 0, sizeof(*o));
	o->size               = sizeof(*o);
	o->connect_timeout_ms = timeout_ms;
	if (err != NULL && errlen > 0) {
		err[0]        = '\0';
		o->errbuf     = err;
		o->errbuf_len = errlen;
	}
	o->tls_ca_file       = either(sec->tls_ca, c ? c->sched.tls_ca_file : NULL);
	o->tls_cert_key_file = either(sec->tls_cert_key,
	    c ? c->tls_client_cert_key_file : NULL);
	o->tls_server_name =
	    either(sec->tls_server_name, c ? c->tls_server_name : NULL);
	o->token_file = either(sec->token_file, c ? c->sched.token_file : NULL);
}

int
cli_connect_conf(const struct conf *c, const char *url, int timeout_ms,
    ferry_client **out, char *err, size_t errlen)
{
	struct ferry_client_opts o;

	client_opts(&o, NULL, c, timeout_ms, err, errlen);
	return ferry_client_connect_opts(out, url, &o);
}

int
cli_client_connect(const char *who, const char *file, const char *url,
    const struct cli_sec *sec, int timeout_ms, char *addr, size_t addrlen,
    ferry_client **out)
{
	struct ferry_client_opts o;
	struct conf              c;
	char                     err[1024];
	int                      rv, have_conf = 0;

	if (file != NULL) {
		if (cli_load_conf(file, &c) != 0)
			return 2;
		have_conf = 1;
		util_strlcpy(addr, url != NULL ? url : c.address, addrlen);
	} else if (cli_address(NULL, url, addr, addrlen) != 0) {
		return 2;
	}
	client_opts(&o, sec, have_conf ? &c : NULL, timeout_ms, err,
	    sizeof(err));
	o.no_scheduler_ms = CLI_NO_SCHEDULER_MS;
	rv                = ferry_client_connect_opts(out, addr, &o);
	if (have_conf)
		conf_free(&c);
	if (rv == FERRY_ECONNECT) {
		/* err: "no scheduler at ADDRESS: connection refused", or
		 * no answer within the timeout */
		if (err[0] != '\0')
			fprintf(stderr, "%s: %s\n", who, err);
		else
			fprintf(stderr, "%s: no scheduler at %s\n", who, addr);
		return CLI_EXIT_NO_SCHEDULER;
	}
	if (rv != 0) {
		fprintf(stderr, "%s: cannot connect to %s: %s%s%s\n", who, addr,
		    ferry_strerror(rv), err[0] != '\0' ? ": " : "", err);
		return CLI_EXIT_REFUSED;
	}
	return 0;
}

const msgpack_object *
cli_obj_get(const msgpack_object *map, const char *key)
{
	size_t klen = strlen(key);

	if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_STR &&
		    kv->key.via.str.size == klen &&
		    memcmp(kv->key.via.str.ptr, key, klen) == 0)
			return &kv->val;
	}
	return NULL;
}

uint64_t
cli_obj_uint(const msgpack_object *map, const char *key)
{
	const msgpack_object *o = cli_obj_get(map, key);

	return o != NULL && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER
	    ? o->via.u64
	    : 0;
}

const char *
cli_obj_str(const msgpack_object *map, const char *key, char *buf,
    size_t len)
{
	const msgpack_object *o = cli_obj_get(map, key);

	if (o == NULL || o->type != MSGPACK_OBJECT_STR)
		util_strlcpy(buf, "-", len);
	else
		snprintf(buf, len, "%.*s", (int)o->via.str.size,
		    o->via.str.ptr);
	return buf;
}

const msgpack_object *
cli_obj_array(const msgpack_object *map, const char *key)
{
	const msgpack_object *o = cli_obj_get(map, key);

	return o != NULL && o->type == MSGPACK_OBJECT_ARRAY ? o : NULL;
}

int
cli_status_get(ferry_client *c, int timeout_ms, struct cli_status *s)
{
	size_t off = 0;
	int    rv;

	memset(s, 0, sizeof(*s));
	s->st.size = sizeof(s->st);
	if ((rv = ferry_cluster_status_doc(c, &s->st, &s->bytes, &s->len,
	         timeout_ms)) != 0)
		return rv;
	msgpack_zone_init(&s->zone, 4096);
	if (msgpack_unpack(s->bytes, s->len, &off, &s->zone, &s->doc) !=
	        MSGPACK_UNPACK_SUCCESS ||
	    s->doc.type != MSGPACK_OBJECT_MAP) {
		cli_status_free(s);
		return FERRY_EPROTO;
	}
	return 0;
}

void
cli_status_free(struct cli_status *s)
{
	if (s->bytes == NULL)
		return;
	msgpack_zone_destroy(&s->zone);
	free(s->bytes);
	s->bytes = NULL;
}

int
cli_print_json(const char *who, const char *what, const void *data,
    size_t len)
{
	char  err[256];
	char *js = json_from_msgpack_bytes(data, len, err, sizeof(err));

	if (js == NULL) {
		fprintf(stderr, "%s: %s is not valid msgpack: %s\n", who, what,
		    err);
		return -1;
	}
	printf("%s\n", js);
	free(js);
	return 0;
}
