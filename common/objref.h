/*
 * objref.h - object references: how a task names a heavy input by path.
 *
 * In task arguments an object reference is a msgpack ext value of type
 * FERRY_EXT_OBJECT (70) whose payload is a msgpack map:
 *
 *     { "path": str,             required, the file (absolute, or
 *                                relative to the worker's directory)
 *       "loader": str,           optional, default "mmap"
 *       "size": uint,            optional, expected size in bytes
 *       "sha256": bin (32) }     optional, expected content hash
 *
 * Its locality key, which the scheduler uses to send a task to a worker
 * that holds the object, is "LOADER:PATH" with PATH as written.
 */
#ifndef FERRY_OBJREF_H
#define FERRY_OBJREF_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#define OBJREF_EXT_TYPE 70
#define OBJREF_MAX_PATH 4096

/* A decoded object reference (strings point into the payload and are
 * not NUL-terminated). */
struct obj_ref {
	const char    *path;
	size_t         path_len;
	const char    *loader; /* NULL or empty: "mmap" */
	size_t         loader_len;
	uint64_t       size;   /* expected size in bytes; 0: not checked */
	const uint8_t *sha256; /* expected content hash (32 bytes) or NULL */
};

/* Encode a reference's payload into buf (cap bytes); *len gets its size.
 * loader may be NULL, size 0, sha256 NULL.  Returns 0, or -1 if the path
 * is empty or too long, or buf is too small. */
int objref_encode(void *buf, size_t cap, size_t *len, const char *path,
    const char *loader, uint64_t size, const uint8_t *sha256);

/* Decode a payload.  Returns 0, or -1 with a message in err. */
int objref_decode(const char *payload, size_t len, struct obj_ref *ref,
    char *err, size_t errlen);

/* Write the locality key "LOADER:PATH" into buf; returns its length, or 0
 * if it does not fit. */
size_t objref_key(const struct obj_ref *ref, char *buf, size_t cap);

/*
 * Call fn for every object reference in the msgpack value args (len
 * bytes), depth first, up to max of them.  Returns how many were found,
 * or -1 if args is not valid msgpack or a reference is malformed (err
 * says which).
 */
int objref_scan(const void *args, size_t len, size_t max,
    void (*fn)(void *arg, const struct obj_ref *ref), void *arg, char *err,
    size_t errlen);

#endif
