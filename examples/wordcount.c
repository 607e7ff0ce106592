/*
 * wordcount.c - an example client for heavy objects: count the words of
 * a large text file on the cluster, slice by slice.
 *
 *     ferry-example-wordcount [-a URL] [-s MiB] [-n SLICES] [-f FILE]
 *
 * Writes a text file of the chosen size (default 256 MiB at
 * /tmp/ferry-wordcount-UID.txt; the worker group's object_roots must
 * contain it), submits one "wordcount" task per slice — each names the whole file
 * by path, so no task carries the text — and checks the total against a
 * count made here.  Each worker process maps the file once; the page
 * cache holds one copy for all of them.
 */
#include <getopt.h>
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

/* Write about mib MiB of words; returns how many words, or 0. */
static uint64_t
generate(const char *path, size_t mib)
{
	static const char *words[] = { "ferry", "task", "queue", "worker",
		"scheduler", "object", "cache", "map", "path", "page",
		"message", "result" };
	FILE    *f = fopen(path, "w");
	uint64_t n = 0, state = 88172645463325252ULL;
	size_t   bytes = 0, target = mib << 20;
	if (f == NULL) {
		perror(path);
		return 0;
	}
	while (bytes < target) {
		const char *w;
		state ^= state << 13;
		state ^= state >> 7;
		state ^= state << 17;
		w = words[state % 12];
		bytes += (size_t)fprintf(f, "%s%s", w,
		    (state >> 8) % 11 == 0 ? "\n" : " ");
		n++;
	}
	if (fclose(f) != 0) {
		perror(path);
		return 0;
	}
	return n;
}

static int
pack_slice(msgpack_sbuffer *sb, const char *path, uint64_t off, uint64_t len)
{
	msgpack_packer pk;
	uint8_t        ref[4200];
	size_t         n;
	if (ferry_object_ref(ref, sizeof(ref), &n, path, NULL, 0, NULL) != 0)
		return -1;
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_ext(&pk, n, FERRY_EXT_OBJECT);
	msgpack_pack_ext_body(&pk, ref, n);
	msgpack_pack_uint64(&pk, off);
	msgpack_pack_uint64(&pk, len);
	return 0;
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
	const char    *url  = NULL;
	const char    *path = NULL;
	char           own_path[64];
	size_t         mib = 256, slices = 64;
	uint64_t       expect, total = 0;
	ferry_client  *c;
	ferry_future **futs;
	size_t         size;
	FILE          *f;
	double         t0, t1;
	int            ch, rv, failed = 0;

	while ((ch = getopt(argc, argv, "a:s:n:f:h")) != -1) {
		switch (ch) {
		case 'a': url = optarg; break;
		case 's': mib = strtoul(optarg, NULL, 10); break;
		case 'n': slices = strtoul(optarg, NULL, 10); break;
		case 'f': path = optarg; break;
		default:
			fprintf(stderr, "usage: %s [-a URL] [-s MiB] [-n SLICES] "
			                "[-f FILE]\n",
			    argv[0]);
			return ch == 'h' ? 0 : 2;
		}
	}
	if (mib == 0 || slices == 0 || slices > 100000) {
		fprintf(stderr, "size and slices must be positive\n");
		return 2;
	}
	if (url == NULL)
		url = default_address();
	if (path == NULL) {
		/* one file per user: /tmp is shared */
		snprintf(own_path, sizeof(own_path),
		    "/tmp/ferry-wordcount-%lu.txt", (unsigned long)getuid());
		path = own_path;
	}
	printf("writing %zu MiB of text to %s\n", mib, path);
	if ((expect = generate(path, mib)) == 0)
		return 1;
	f = fopen(path, "r");
	fseek(f, 0, SEEK_END);
	size = (size_t)ftell(f);
	fclose(f);

	if ((rv = ferry_client_connect(&c, url, 10000)) != 0) {
		fprintf(stderr, "cannot connect to %s: %s\n", url,
		    ferry_strerror(rv));
		return 1;
	}
	futs = calloc(slices, sizeof(*futs));
	t0   = now_s();
	for (size_t i = 0; i < slices; i++) {
		msgpack_sbuffer sb;
		uint64_t        off = size / slices * i;
		uint64_t        len = i == slices - 1 ? size - off : size / slices;
		if (pack_slice(&sb, path, off, len) != 0 ||
		    ferry_submit(c, "wordcount", sb.data, sb.size, &futs[i]) !=
		        0) {
			fprintf(stderr, "cannot submit slice %zu\n", i);
			return 1;
		}
		msgpack_sbuffer_destroy(&sb);
	}
	ferry_wait_all(futs, slices, 600000);
	t1 = now_s();
	for (size_t i = 0; i < slices; i++) {
		const void    *data;
		size_t         len, off = 0;
		msgpack_zone   zone;
		msgpack_object o;
		if ((rv = ferry_future_result(futs[i], &data, &len)) != 0) {
			if (failed++ == 0)
				fprintf(stderr, "slice %zu failed: %s\n", i,
				    ferry_future_error(futs[i]));
			continue;
		}
		msgpack_zone_init(&zone, 64);
		if (msgpack_unpack(data, len, &off, &zone, &o) ==
		        MSGPACK_UNPACK_SUCCESS &&
		    o.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			total += o.via.u64;
		msgpack_zone_destroy(&zone);
		ferry_future_free(futs[i]);
	}
	free(futs);
	ferry_client_close(c);
	printf("%zu slices of %.1f MiB: %" PRIu64 " words (expected %" PRIu64
	       "), %.3f s, %s\n",
	    slices, (double)size / (double)slices / (1 << 20), total, expect,
	    t1 - t0, failed == 0 && total == expect ? "correct" : "WRONG");
	return failed == 0 && total == expect ? 0 : 1;
}
