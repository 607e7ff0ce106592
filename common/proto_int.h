/*
 * proto_int.h - what the decoder's files share (proto_decode.c, the
 * envelope, the field helpers and each message's fields; proto_entries.c,
 * the entries of its lists).  Nothing outside common/proto_*.c includes
 * it.
 */
#ifndef FERRY_PROTO_INT_H
#define FERRY_PROTO_INT_H

#include "proto.h"

/* One decode in progress. */
struct dctx {
	struct proto_decoder *d;      /* its zone holds what is decoded */
	int                   type;   /* the message type */
	const char           *tname;  /* its name, for errors */
	char                 *err;    /* the caller's error buffer */
	size_t                errlen;
	uint64_t              v;      /* the message's protocol version */
};

/* Write "TYPE: " and the message into c's error buffer; returns
 * FERRY_EPROTO. */
int pd_bad(struct dctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "an integer", "a string", ... for errors. */
const char *pd_obj_type(const msgpack_object *o);

/* The value of string key in map, or NULL. */
const msgpack_object *pd_map_get(const msgpack_object *map, const char *key);

/* Field key of map as a uint / a string (copied into the zone; "" when
 * absent and not required) / an array (NULL when absent and not
 * required).  Return 0 or an error (missing, wrong type). */
int pd_get_uint(struct dctx *c, const msgpack_object *map, const char *key,
    uint64_t *out, int required);
int pd_get_str(struct dctx *c, const msgpack_object *map, const char *key,
    const char **out, int required);
int pd_get_array(struct dctx *c, const msgpack_object *map, const char *key,
    const msgpack_object **out, int required);

/* The lists (proto_entries.c): each fills its fields of m, or returns an
 * error naming the entry ("tasks[3][1] (fn): ..."). */
int pd_tasks(struct dctx *c, const msgpack_object *map, struct proto_msg *m);
int pd_results(struct dctx *c, const msgpack_object *map, const char *key,
    struct proto_msg *m, int required);
int pd_ids(struct dctx *c, const msgpack_object *map, struct proto_msg *m);
/* The optional list key of task ids (each non-zero), at most max of
 * them (what: the limit, for the error). */
int pd_task_ids(struct dctx *c, const msgpack_object *map, const char *key,
    uint64_t max, const char *what, uint64_t **out, uint32_t *n);
int pd_report(struct dctx *c, const msgpack_object *map, struct proto_msg *m);
int pd_orders(struct dctx *c, const msgpack_object *map, struct proto_msg *m);
int pd_keys(struct dctx *c, const msgpack_object *map, const char *key,
    const msgpack_object **out, uint32_t *n);
int pd_cache(struct dctx *c, const msgpack_object *map,
    struct proto_cache *pc);

#endif
