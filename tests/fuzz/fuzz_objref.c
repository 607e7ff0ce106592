/*
 * fuzz_objref.c - object references inside task arguments come from
 * clients: scanning and decoding them must never crash, and every key a
 * decoded reference yields fits and names its path.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "objref.h"

static void
check(void *arg, const struct obj_ref *r)
{
	char   key[OBJREF_MAX_PATH + 80];
	size_t n = objref_key(r, key, sizeof(key));
	(void)arg;
	if (r->path == NULL || r->path_len == 0 || n == 0 ||
	    memcmp(key + n - r->path_len, r->path, r->path_len) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char           err[512];
	struct obj_ref r;
	err[0] = '\0';
	if (objref_scan(data, size, 16, check, NULL, err, sizeof(err)) < 0 &&
	    err[0] == '\0')
		abort(); /* a failure always says why */
	/* the payload decoder on its own */
	if (objref_decode((const char *)data, size, &r, err, sizeof(err)) ==
	    0)
		check(NULL, &r);
	return 0;
}
