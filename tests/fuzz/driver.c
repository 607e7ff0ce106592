/*
 * driver.c - a standalone driver for Ferry's fuzz targets.
 *
 * Each target defines LLVMFuzzerTestOneInput() as libFuzzer expects, so it
 * can be built with clang -fsanitize=fuzzer for long runs.  Under meson test
 * this driver runs it on every file of a seed corpus, then on a bounded
 * number of seeded random mutations of those seeds (FUZZ_ITERATIONS,
 * default 20000; FUZZ_SEED, default time-based and printed).  A crash or a
 * sanitizer report fails the test; the seed reproduces the run.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SEEDS 256
#define FUZZ_MAX_INPUT 65536

static uint8_t *seeds[MAX_SEEDS];
static size_t   seed_len[MAX_SEEDS];
static size_t   n_seeds;

static uint64_t rng_state;

static uint64_t
rng(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static void
load_dir(const char *dir)
{
	DIR           *d = opendir(dir);
	struct dirent *e;

	if (d == NULL) {
		fprintf(stderr, "fuzz: cannot open corpus %s\n", dir);
		exit(2);
	}
	while ((e = readdir(d)) != NULL && n_seeds < MAX_SEEDS) {
		char  path[4096];
		FILE *f;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if ((f = fopen(path, "rb")) == NULL)
			continue;
		seeds[n_seeds] = malloc(FUZZ_MAX_INPUT);
		seed_len[n_seeds] = fread(seeds[n_seeds], 1, FUZZ_MAX_INPUT, f);
		fclose(f);
		n_seeds++;
	}
	closedir(d);
}

static size_t
mutate(uint8_t *buf, size_t len, size_t cap)
{
	int rounds = 1 + (int)(rng() % 8);
	for (int r = 0; r < rounds; r++) {
		switch (rng() % 6) {
		case 0: /* flip a bit */
			if (len > 0)
				buf[rng() % len] ^= (uint8_t)(1u << (rng() % 8));
			break;
		case 1: /* random byte */
			if (len > 0)
				buf[rng() % len] = (uint8_t)rng();
			break;
		case 2: /* truncate */
			if (len > 0)
				len = rng() % len;
			break;
		case 3: /* insert a byte */
			if (len < cap) {
				size_t at = len > 0 ? rng() % (len + 1) : 0;
				memmove(buf + at + 1, buf + at, len - at);
				buf[at] = (uint8_t)rng();
				len++;
			}
			break;
		case 4: /* interesting values */
			if (len > 0) {
				static const uint8_t v[] = { 0x00, 0xff, 0x7f,
					0x80, 0xc0, 0xc1, 0xd9, 0xdb, 0xdd, 0xdf,
					0x92, 0xde, 0xcf, 0xd3 };
				buf[rng() % len] = v[rng() % sizeof(v)];
			}
			break;
		case 5: /* duplicate a chunk */
			if (len > 1 && len < cap) {
				size_t from = rng() % len;
				size_t n = 1 + rng() % (len - from);
				if (len + n > cap)
					n = cap - len;
				memmove(buf + from + n, buf + from, len - from);
				len += n;
			}
			break;
		}
	}
	return len;
}

int
main(int argc, char **argv)
{
	const char *env;
	long        iterations = 20000;
	uint64_t    seed = (uint64_t)time(NULL);
	uint8_t    *buf;

	for (int i = 1; i < argc; i++)
		load_dir(argv[i]);
	if ((env = getenv("FUZZ_ITERATIONS")) != NULL)
		iterations = atol(env);
	if ((env = getenv("FUZZ_SEED")) != NULL)
		seed = strtoull(env, NULL, 0);
	rng_state = seed ? seed : 1;
	printf("fuzz: %zu seeds, %ld iterations, FUZZ_SEED=%llu\n", n_seeds,
	    iterations, (unsigned long long)seed);
	fflush(stdout);

	for (size_t i = 0; i < n_seeds; i++)
		LLVMFuzzerTestOneInput(seeds[i], seed_len[i]);

	buf = malloc(FUZZ_MAX_INPUT);
	for (long it = 0; it < iterations; it++) {
		size_t len;
		if (n_seeds > 0 && rng() % 8 != 0) {
			size_t s = rng() % n_seeds;
			len = seed_len[s];
			memcpy(buf, seeds[s], len);
		} else {
			len = rng() % 256;
			for (size_t j = 0; j < len; j++)
				buf[j] = (uint8_t)rng();
		}
		len = mutate(buf, len, FUZZ_MAX_INPUT);
		LLVMFuzzerTestOneInput(buf, len);
	}
	free(buf);
	for (size_t i = 0; i < n_seeds; i++)
		free(seeds[i]);
	printf("fuzz: done, no crash\n");
	return 0;
}
