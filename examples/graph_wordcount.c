/*
 * graph_wordcount.c - an example client for task graphs: the number of
 * words of a large text file and how often each word occurs, computed on
 * the cluster as one pipeline submitted at once.
 *
 *     ferry-example-graph-wordcount [-a URL] [-s MiB] [-n SLICES]
 *         [-k FANIN] [-f FILE] [-o DIR] [-d]
 *
 * It writes a text file (default 64 MiB at /tmp/ferry-graph-wordcount-
 * UID.txt) and then submits, without waiting for anything:
 *
 *   - per slice of the file, "wordcount" (how many words: a small
 *     result) and "count_words" (how often each word occurs: a map of
 *     thousands of entries, which the task writes to a file in DIR,
 *     returning an object reference to it);
 *   - a tree of "sum" tasks over the word numbers, FANIN at a time, each
 *     task's arguments holding future references to the tasks below it;
 *   - a tree of "merge_counts" tasks over the files, each loading its
 *     inputs by path; the root returns the merged map itself;
 *   - "clean_counts" after the root, with run_anyway (it runs even when
 *     the root failed), to remove the files from DIR.
 *
 * Then it waits for the roots only and checks them against counts made
 * here.  With -d it disconnects as soon as the scheduler has accepted
 * the whole pipeline, and collects the roots from a new connection that
 * resumes the session, as a later process could; the cluster goes on
 * meanwhile.  The worker group's object_roots must contain FILE and DIR
 * (config/local.yaml allows /tmp).  docs/graphs.md explains each step.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ferry/ferry.h>
#include <msgpack.h>

#define VOCAB 20000 /* distinct words the generated text draws from */

/* Syllables of two letters: words made of them never run together. */
static const char syl[16][3] = { "ba", "ce", "di", "fo", "gu", "ha", "ke",
	"li", "mo", "nu", "pa", "re", "si", "to", "vu", "we" };

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Word r of the vocabulary into buf (9 bytes): r in base 16, at least
 * two digits, a syllable per digit.  Returns its length. */
static size_t
word_of(uint32_t r, char *buf)
{
	size_t n = 0;
	do {
		memcpy(buf + n, syl[r % 16], 2);
		n += 2;
		r /= 16;
	} while (r > 0 || n < 4);
	buf[n] = '\0';
	return n;
}

/* The rank of word w (len bytes), or -1 if it is not one of ours. */
static long
rank_of(const char *w, size_t len)
{
	char     again[16];
	uint32_t r = 0, scale = 1;

	if (len < 4 || len > 8 || len % 2 != 0)
		return -1;
	for (size_t i = 0; i < len; i += 2, scale *= 16) {
		int d = -1;
		for (int k = 0; k < 16; k++)
			if (w[i] == syl[k][0] && w[i + 1] == syl[k][1])
				d = k;
		if (d < 0)
			return -1;
		r += (uint32_t)d * scale;
	}
	if (r >= VOCAB || word_of(r, again) != len ||
	    memcmp(again, w, len) != 0)
		return -1;
	return (long)r;
}

/* Write about mib MiB of text to path: words of the vocabulary drawn by
 * Zipf's law (the r-th most frequent about 1/r as often as the first),
 * about a dozen a line, each counted in counts[].  Returns how many
 * words, or 0. */
static uint64_t
generate(const char *path, size_t mib, uint64_t *counts)
{
	uint64_t *cum = malloc(VOCAB * sizeof(*cum));
	uint64_t  total = 0, n = 0, state = 88172645463325252ULL;
	size_t    bytes = 0, target = mib << 20;
	FILE     *f;
	char      w[16];

	if (cum == NULL || (f = fopen(path, "w")) == NULL) {
		perror(path);
		free(cum);
		return 0;
	}
	for (uint32_t r = 0; r < VOCAB; r++)
		cum[r] = total += (1ULL << 32) / (r + 1);
	while (bytes < target) {
		uint32_t lo = 0, hi = VOCAB - 1;
		uint64_t u;
		size_t   len;
		state ^= state << 13;
		state ^= state >> 7;
		state ^= state << 17;
		u = state % total;
		while (lo < hi) { /* the first rank whose cum passes u */
			uint32_t mid = (lo + hi) / 2;
			if (cum[mid] > u)
				hi = mid;
			else
				lo = mid + 1;
		}
		len = word_of(lo, w);
		w[len] = (state >> 40) % 12 == 0 ? '\n' : ' ';
		fwrite(w, 1, len + 1, f);
		bytes += len + 1;
		counts[lo]++;
		n++;
	}
	free(cum);
	if (fclose(f) != 0) {
		perror(path);
		return 0;
	}
	return n;
}

/* Submit fn over the results of in[0..n-1]: its arguments are
 * [DIR, ref, ...] (with_dir; DIR nil when dir is NULL) or [ref, ...],
 * each ref a future reference, which the scheduler replaces by that
 * task's result before fn runs. */
static int
submit_over(ferry_client *c, const char *fn, int with_dir, const char *dir,
    ferry_future *const *in, size_t n, const struct ferry_task_opts *opts,
    ferry_future **out)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	uint8_t         ref[FERRY_FUTURE_REF_MAX];
	size_t          len;
	int             rv = 0;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, n + (with_dir != 0));
	if (with_dir && dir != NULL)
		msgpack_pack_str_with_body(&pk, dir, strlen(dir));
	else if (with_dir)
		msgpack_pack_nil(&pk);
	for (size_t i = 0; i < n && rv == 0; i++)
		/* a reference is a msgpack value: it goes in as it is */
		if ((rv = ferry_future_ref(ref, sizeof(ref), &len, in[i])) ==
		    0)
			msgpack_sbuffer_write(&sb, (const char *)ref, len);
	if (rv == 0)
		rv = ferry_submit_opts(c, fn, sb.data, sb.size, opts, out);
	msgpack_sbuffer_destroy(&sb);
	if (rv != 0)
		fprintf(stderr, "cannot submit %s: %s\n", fn,
		    ferry_strerror(rv));
	return rv;
}

/*
 * Reduce level[0..n-1] with fn, fanin inputs a task, level after level
 * until one task is left, and return its future (NULL: a submit failed).
 * A future is freed as soon as the task that refers to it is submitted:
 * the scheduler gives that task its result, this client never needs it.
 * With with_dir, each task of every level but the top writes its output
 * to a file in dir; the top one returns its output itself.
 */
static ferry_future *
reduce(ferry_client *c, const char *fn, int with_dir, const char *dir,
    ferry_future **level, size_t n, size_t fanin, size_t *tasks)
{
	do {
		size_t groups = (n + fanin - 1) / fanin;
		for (size_t g = 0; g < groups; g++) {
			size_t        first = g * fanin;
			size_t        k     = n - first;
			ferry_future *f;
			if (k > fanin)
				k = fanin;
			if (submit_over(c, fn, with_dir,
			        groups == 1 ? NULL : dir, level + first, k,
			        NULL, &f) != 0)
				return NULL;
			for (size_t i = 0; i < k; i++)
				ferry_future_free(level[first + i]);
			level[g] = f; /* g <= first: read already */
			(*tasks)++;
		}
		n = groups;
	} while (n > 1);
	return level[0];
}

/* The arguments of a slice's task: [object reference to path, offset,
 * length] and, when dir is not NULL, dir. */
static int
pack_slice(msgpack_sbuffer *sb, const char *path, uint64_t off, uint64_t len,
    const char *dir)
{
	msgpack_packer pk;
	uint8_t        ref[4200];
	size_t         n;
	if (ferry_object_ref(ref, sizeof(ref), &n, path, NULL, 0, NULL) != 0)
		return -1;
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, dir != NULL ? 4 : 3);
	msgpack_pack_ext(&pk, n, FERRY_EXT_OBJECT);
	msgpack_pack_ext_body(&pk, ref, n);
	msgpack_pack_uint64(&pk, off);
	msgpack_pack_uint64(&pk, len);
	if (dir != NULL)
		msgpack_pack_str_with_body(&pk, dir, strlen(dir));
	return 0;
}

/* The address of your default cluster, or exit saying why there is
 * none. */
static const char *
default_address(void)
{
	static char url[4200];
	int         rv = ferry_default_address(url, sizeof(url));

	if (rv != 0) {
		fprintf(stderr,
		    "no default address: %s (set FERRY_ADDRESS, or give "
		    "one)\n",
		    ferry_strerror(rv));
		exit(2);
	}
	return url;
}

/* Wait for f and decode its result into *o (in zone z); 0, or -1 after
 * saying why. */
static int
result_of(ferry_future *f, const char *what, msgpack_zone *z,
    msgpack_object *o)
{
	const void *data;
	size_t      len, off = 0;
	int         rv;

	ferry_future_wait(f, -1);
	if ((rv = ferry_future_result(f, &data, &len)) != 0) {
		const char *why = ferry_future_error(f);
		fprintf(stderr, "%s: %s: %s\n", what, ferry_strerror(rv),
		    why != NULL ? why : "");
		return -1;
	}
	if (msgpack_unpack(data, len, &off, z, o) != MSGPACK_UNPACK_SUCCESS) {
		fprintf(stderr, "%s: the result is not msgpack\n", what);
		return -1;
	}
	return 0;
}

/* Check the merged map m against counts[]; print its top words.
 * Returns the number of words it counts, or UINT64_MAX if it is wrong. */
static uint64_t
check_counts(const msgpack_object *m, const uint64_t *counts)
{
	uint64_t sum = 0, distinct = 0, wrong = 0;
	uint32_t top[5] = { 0 }, n_top = 0;

	if (m->type != MSGPACK_OBJECT_MAP)
		return UINT64_MAX;
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		const msgpack_object_kv *kv = &m->via.map.ptr[i];
		long r = kv->key.type == MSGPACK_OBJECT_STR
		    ? rank_of(kv->key.via.str.ptr, kv->key.via.str.size)
		    : -1;
		if (r < 0 || kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    kv->val.via.u64 != counts[r]) {
			wrong++;
			continue;
		}
		sum += kv->val.via.u64;
		/* keep the five largest, largest first */
		uint32_t at = n_top < 5 ? n_top++ : 5;
		while (at > 0 && kv->val.via.u64 >
		                     m->via.map.ptr[top[at - 1]].val.via.u64) {
			if (at < 5)
				top[at] = top[at - 1];
			at--;
		}
		if (at < 5)
			top[at] = i;
	}
	for (uint32_t r = 0; r < VOCAB; r++)
		distinct += counts[r] > 0;
	printf("frequencies: %u distinct words (expected %" PRIu64 "), "
	       "most frequent:",
	    m->via.map.size, distinct);
	for (uint32_t i = 0; i < n_top; i++) {
		const msgpack_object_kv *kv = &m->via.map.ptr[top[i]];
		printf(" %.*s %" PRIu64, (int)kv->key.via.str.size,
		    kv->key.via.str.ptr, kv->val.via.u64);
	}
	printf("\n");
	return wrong == 0 && m->via.map.size == distinct ? sum : UINT64_MAX;
}

/* Wait until the scheduler has accepted every task submitted on c: a
 * client that closes drops what it has not sent yet.  0, or -1 after
 * 30 s. */
static int
wait_accepted(ferry_client *c)
{
	for (int i = 0; i < 3000; i++) {
		struct ferry_client_stats st = { .size = sizeof(st) };
		if (ferry_client_stats(c, &st) == 0 && st.unsent == 0)
			return 0;
		usleep(10000);
	}
	return -1;
}

int
main(int argc, char **argv)
{
	const char    *url = NULL, *path = NULL, *dir = NULL;
	char           own_path[64], own_dir[80];
	size_t         mib = 64, slices = 32, fanin = 4, tasks = 0;
	uint64_t       expect, *counts, total = 0, freq_total;
	uint64_t       removed = 0;
	int            detach = 0, ch, rv, ok;
	ferry_client  *c;
	ferry_future **nums, **maps, *total_root, *freq_root, *clean;
	struct ferry_client_opts copts = { .size = sizeof(copts) };
	struct ferry_task_opts   anyway;
	struct ferry_status      st = { .size = sizeof(st) };
	struct stat              sb;
	msgpack_zone             z;
	msgpack_object           o;
	double                   t0, t1;

	while ((ch = getopt(argc, argv, "a:s:n:k:f:o:dh")) != -1) {
		switch (ch) {
		case 'a': url = optarg; break;
		case 's': mib = strtoul(optarg, NULL, 10); break;
		case 'n': slices = strtoul(optarg, NULL, 10); break;
		case 'k': fanin = strtoul(optarg, NULL, 10); break;
		case 'f': path = optarg; break;
		case 'o': dir = optarg; break;
		case 'd': detach = 1; break;
		default:
			fprintf(stderr,
			    "usage: %s [-a URL] [-s MiB] [-n SLICES] "
			    "[-k FANIN] [-f FILE] [-o DIR] [-d]\n",
			    argv[0]);
			return ch == 'h' ? 0 : 2;
		}
	}
	/* a task holds at most 16 objects: a merge reads at most 16 files */
	if (mib == 0 || slices == 0 || slices > 100000 || fanin < 2 ||
	    fanin > 16) {
		fprintf(stderr, "size and slices must be positive, the fan-in "
		                "2 to 16\n");
		return 2;
	}
	if (url == NULL)
		url = default_address();
	if (path == NULL) { /* one file per user: /tmp is shared */
		snprintf(own_path, sizeof(own_path),
		    "/tmp/ferry-graph-wordcount-%lu.txt",
		    (unsigned long)getuid());
		path = own_path;
	}
	if (dir == NULL) { /* one per run: the clean-up removes it */
		snprintf(own_dir, sizeof(own_dir),
		    "/tmp/ferry-graph-wordcount-%lu-%ld.d",
		    (unsigned long)getuid(), (long)getpid());
		dir = own_dir;
	}
	if ((counts = calloc(VOCAB, sizeof(*counts))) == NULL ||
	    (nums = calloc(slices, sizeof(*nums))) == NULL ||
	    (maps = calloc(slices, sizeof(*maps))) == NULL)
		return 1;
	printf("writing %zu MiB of text to %s\n", mib, path);
	if ((expect = generate(path, mib, counts)) == 0 ||
	    stat(path, &sb) != 0)
		return 1;

	copts.connect_timeout_ms = 10000;
	if ((rv = ferry_client_connect_opts(&c, url, &copts)) != 0) {
		fprintf(stderr, "cannot connect to %s: %s\n", url,
		    ferry_strerror(rv));
		return 1;
	}

	/* the slices: two tasks each, both naming the file by path */
	t0 = now_s();
	for (size_t i = 0; i < slices; i++) {
		msgpack_sbuffer a, b;
		uint64_t        off = (uint64_t)sb.st_size / slices * i;
		uint64_t        len = i == slices - 1
		           ? (uint64_t)sb.st_size - off
		           : (uint64_t)sb.st_size / slices;
		if (pack_slice(&a, path, off, len, NULL) != 0 ||
		    pack_slice(&b, path, off, len, dir) != 0 ||
		    ferry_submit(c, "wordcount", a.data, a.size, &nums[i]) !=
		        0 ||
		    ferry_submit(c, "count_words", b.data, b.size, &maps[i]) !=
		        0) {
			fprintf(stderr, "cannot submit slice %zu\n", i);
			return 1;
		}
		msgpack_sbuffer_destroy(&a);
		msgpack_sbuffer_destroy(&b);
		tasks += 2;
	}
	/* the trees over them, and the clean-up after the second root */
	ferry_task_opts_init(&anyway);
	anyway.run_anyway = 1;
	if ((total_root = reduce(c, "sum", 0, NULL, nums, slices, fanin,
	         &tasks)) == NULL ||
	    (freq_root = reduce(c, "merge_counts", 1, dir, maps, slices, fanin,
	         &tasks)) == NULL ||
	    submit_over(c, "clean_counts", 1, dir, &freq_root, 1, &anyway,
	        &clean) != 0)
		return 1;
	tasks++;
	printf("submitted %zu tasks in %.1f ms: %zu slice(s), fan-in %zu\n",
	    tasks, (now_s() - t0) * 1e3, slices, fanin);
	if (wait_accepted(c) != 0) {
		fprintf(stderr, "the scheduler did not accept the pipeline "
		                "within 30 s\n");
		return 1;
	}
	if (ferry_cluster_status(c, &st, NULL, 5000) == 0)
		printf("accepted after %.1f ms; the scheduler holds %" PRIu64
		       " task(s) waiting for their inputs, %" PRIu64
		       " queued, %u held by workers\n",
		    (now_s() - t0) * 1e3, st.waiting, st.queued, st.busy);

	if (detach) {
		uint64_t ids[3] = { ferry_future_id(total_root),
			ferry_future_id(freq_root), ferry_future_id(clean) };
		uint64_t session = ferry_client_session(c);
		ferry_future_free(total_root);
		ferry_future_free(freq_root);
		ferry_future_free(clean);
		ferry_client_close(c);
		printf("disconnected; the cluster goes on.  Resuming session "
		       "%016" PRIx64 " for tasks %" PRIu64 ", %" PRIu64
		       " and %" PRIu64 "\n",
		    session, ids[0], ids[1], ids[2]);
		copts.session = session;
		if ((rv = ferry_client_connect_opts(&c, url, &copts)) != 0 ||
		    (rv = ferry_attach(c, ids[0], &total_root)) != 0 ||
		    (rv = ferry_attach(c, ids[1], &freq_root)) != 0 ||
		    (rv = ferry_attach(c, ids[2], &clean)) != 0) {
			fprintf(stderr, "cannot resume the session: %s\n",
			    ferry_strerror(rv));
			return 1;
		}
	}

	/* only the roots: everything else happens on the cluster */
	msgpack_zone_init(&z, 1 << 20);
	ok = result_of(total_root, "sum", &z, &o) == 0 &&
	    o.type == MSGPACK_OBJECT_POSITIVE_INTEGER;
	if (ok)
		total = o.via.u64;
	ok = ok && result_of(freq_root, "merge_counts", &z, &o) == 0;
	t1 = now_s();
	freq_total = ok ? check_counts(&o, counts) : UINT64_MAX;
	printf("total: %" PRIu64 " words (expected %" PRIu64 ")", total,
	    expect);
	if (freq_total != UINT64_MAX)
		printf("; the frequencies add up to %" PRIu64 "\n",
		    freq_total);
	else
		printf("; the frequencies are missing or wrong\n");
	if (result_of(clean, "clean_counts", &z, &o) == 0 &&
	    o.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		removed = o.via.u64;
	printf("clean_counts removed %" PRIu64 " intermediate file(s) from "
	       "%s\n",
	    removed, dir);
	if (detach) {
		struct ferry_client_stats cs = { .size = sizeof(cs) };
		if (ferry_client_stats(c, &cs) == 0)
			printf("%" PRIu64 " result(s) of the pipeline's other "
			       "tasks came to this connection too, kept "
			       "unclaimed (orphans)\n",
			    cs.orphans);
	}
	ok = ok && total == expect && freq_total == expect;
	printf("%.3f s from the first submit to the roots: %s\n", t1 - t0,
	    ok ? "correct" : "WRONG");
	msgpack_zone_destroy(&z);
	ferry_future_free(total_root);
	ferry_future_free(freq_root);
	ferry_future_free(clean);
	ferry_client_close(c);
	free(nums);
	free(maps);
	free(counts);
	return ok ? 0 : 1;
}
