/*
 * squares.c - an example client: square the numbers 0..N-1 on the cluster.
 *
 *     ferry-example-squares [URL] [N]
 *
 * Connects to the scheduler (default: your default cluster's, as `ferry
 * submit` finds it), maps the example library's "square" over 0..N-1
 * (default 100000), checks every result, prints the first few and a
 * one-line summary.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ferry/ferry.h>
#include <msgpack.h>

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The address of your default cluster (ferry_default_address()), or
 * exit saying why there is none. */
static const char *
default_address(void)
{
	static char url[4200];
	int         rv = ferry_default_address(url, sizeof(url));

	if (rv != 0) {
		fprintf(stderr, "no default address: %s (set FERRY_ADDRESS, or "
		                "give one)\n",
		    ferry_strerror(rv));
		exit(2);
	}
	return url;
}

int
main(int argc, char **argv)
{
	const char      *url = argc > 1 ? argv[1] : default_address();
	size_t           n   = argc > 2 ? strtoul(argv[2], NULL, 10) : 100000;
	ferry_client    *c;
	ferry_future   **futs;
	const void     **args;
	size_t          *lens, bad = 0;
	msgpack_sbuffer *bufs;
	double           t0, t1;
	int              rv;

	if (n == 0)
		n = 1;
	if ((rv = ferry_client_connect(&c, url, 10000)) != 0) {
		fprintf(stderr, "cannot connect to %s: %s\n", url,
		    ferry_strerror(rv));
		return 1;
	}
	futs = calloc(n, sizeof(*futs));
	args = calloc(n, sizeof(*args));
	lens = calloc(n, sizeof(*lens));
	bufs = calloc(n, sizeof(*bufs));
	if (futs == NULL || args == NULL || lens == NULL || bufs == NULL) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	/* each task's arguments: the msgpack array [i] */
	for (size_t i = 0; i < n; i++) {
		msgpack_packer pk;
		msgpack_sbuffer_init(&bufs[i]);
		msgpack_packer_init(&pk, &bufs[i], msgpack_sbuffer_write);
		msgpack_pack_array(&pk, 1);
		msgpack_pack_uint64(&pk, i);
		args[i] = bufs[i].data;
		lens[i] = bufs[i].size;
	}

	t0 = now_s();
	if ((rv = ferry_map(c, "square", n, args, lens, futs)) != 0) {
		fprintf(stderr, "map: %s\n", ferry_strerror(rv));
		return 1;
	}
	if ((rv = ferry_wait_all(futs, n, 120000)) != 0) {
		fprintf(stderr, "wait: %s\n", ferry_strerror(rv));
		return 1;
	}
	t1 = now_s();

	for (size_t i = 0; i < n; i++) {
		const void    *data;
		size_t         len, off = 0;
		msgpack_zone   zone;
		msgpack_object o;
		if ((rv = ferry_future_result(futs[i], &data, &len)) != 0) {
			fprintf(stderr, "task %zu failed: %s: %s\n", i,
			    ferry_strerror(rv), ferry_future_error(futs[i]));
			bad++;
			continue;
		}
		msgpack_zone_init(&zone, 64);
		if (msgpack_unpack(data, len, &off, &zone, &o) !=
		        MSGPACK_UNPACK_SUCCESS ||
		    o.type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    o.via.u64 != (uint64_t)i * i) {
			fprintf(stderr, "task %zu: wrong result\n", i);
			bad++;
		} else if (i < 5 || i == n - 1) {
			printf("square(%zu) = %" PRIu64 "\n", i, o.via.u64);
		} else if (i == 5) {
			printf("...\n");
		}
		msgpack_zone_destroy(&zone);
	}
	printf("%zu tasks, %.3f s, %.0f tasks/s, %zu wrong\n", n, t1 - t0,
	    (double)n / (t1 - t0), bad);

	for (size_t i = 0; i < n; i++) {
		ferry_future_free(futs[i]);
		msgpack_sbuffer_destroy(&bufs[i]);
	}
	free(futs);
	free(args);
	free(lens);
	free(bufs);
	ferry_client_close(c);
	return bad == 0 ? 0 : 1;
}
