/*
 * futref.h - future references: how a task's arguments name the result
 * of another task of the same client session (docs/protocol.md 4.12).
 *
 * In task arguments a future reference is a msgpack ext value of type
 * FUTREF_EXT_TYPE (71) whose payload is a msgpack map:
 *
 *     { "task": uint }                 the result of that task (the
 *                                      client's id of it in its session)
 *     { "task": uint, "error": int,    an input the client already knows
 *       "message": str }               has failed (code < 0)
 *
 * and either may name the session the task belongs to ("session": uint),
 * so that a reference made on one client and put in a task of another
 * is refused instead of naming that session's task of the same id.
 *
 * The scheduler keeps a task with references waiting until every task
 * they name has finished, then replaces each reference by that task's
 * result (its msgpack value) before the task runs.
 */
#ifndef FERRY_FUTREF_H
#define FERRY_FUTREF_H

#include <stddef.h>
#include <stdint.h>

#define FUTREF_EXT_TYPE 71
#define FUTREF_MAX      65536 /* references in one task's arguments */

/* A decoded reference (msg points into the payload, not NUL-ended). */
struct fut_ref {
	uint64_t    tag;
	uint64_t    session; /* 0: not named */
	int32_t     code; /* 0: a reference; < 0: a failed input */
	const char *msg;
	size_t      msg_len;
};

/* Write a whole reference (ext header and payload) into buf (cap
 * bytes); *len gets its size.  code 0 writes a reference to task tag;
 * code < 0 a failed input with its message (msg_len bytes).  Returns 0,
 * or -1 if buf is too small. */
int futref_encode(void *buf, size_t cap, size_t *len, uint64_t tag,
    int32_t code, const char *msg, size_t msg_len);
/* The same, naming session (0: none). */
int futref_encode_in(void *buf, size_t cap, size_t *len, uint64_t tag,
    uint64_t session, int32_t code, const char *msg, size_t msg_len);

/* Decode a payload.  Returns 0, or -1 with a message in err. */
int futref_decode(const char *payload, size_t len, struct fut_ref *r,
    char *err, size_t errlen);

/*
 * Call fn (if not NULL) for every reference in the msgpack value args
 * (len bytes), depth first.  Returns how many were found, or -1 if args
 * is not valid msgpack, a reference is malformed, or there are more than
 * FUTREF_MAX (err says which).  Arguments without the type byte are not
 * parsed at all.
 */
int futref_scan(const void *args, size_t len,
    void (*fn)(void *arg, const struct fut_ref *r), void *arg, char *err,
    size_t errlen);

/*
 * A copy of args with each reference replaced: subst returns 0 and points
 * val (vlen bytes) at the msgpack value to put in its place, 1 to keep the
 * reference as it is, or -1 with a message in err to stop.  *out is
 * malloc'd (the caller frees it).  Returns 0, or -1 (err says why:
 * invalid msgpack, no memory, or subst's reason).
 */
typedef int (*futref_subst_fn)(void *arg, const struct fut_ref *r,
    const void **val, size_t *vlen, char *err, size_t errlen);
int futref_splice(const void *args, size_t len, futref_subst_fn subst,
    void *arg, void **out, size_t *out_len, char *err, size_t errlen);

#endif
