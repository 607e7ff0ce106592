/*
 * cli_util.c - helpers every subcommand may use: cluster files, option
 * values, and starting, watching and stopping processes.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "util.h"

extern char **environ;

int
cli_ncpu(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

int
cli_load_conf(const char *path, struct conf *c)
{
	char err[1024];
	if (conf_load(path, c, err, sizeof(err)) != 0) {
		fprintf(stderr, "ferry: %s\n", err);
		return -1;
	}
	return 0;
}

long
cli_parse_long(const char *opt, const char *val, long min, long max)
{
	char *end;
	long  v;
	errno = 0;
	v     = strtol(val, &end, 10);
	if (errno != 0 || end == val || *end != '\0' || v < min || v > max) {
		fprintf(stderr,
		    "ferry: %s: '%s' is not a number between %ld and %ld\n", opt,
		    val, min, max);
		exit(2);
	}
	return v;
}

size_t
cli_parse_size(const char *opt, const char *val, size_t min)
{
	size_t v;

	if (conf_parse_size(val, &v) == 0 && v >= min)
		return v;
	if (min % ((size_t)1 << 20) == 0)
		fprintf(stderr,
		    "ferry: %s: '%s' is not a size of at least %zuMiB (e.g. "
		    "512MiB, 4GiB)\n",
		    opt, val, min >> 20);
	else
		fprintf(stderr,
		    "ferry: %s: '%s' is not a size of at least %zu bytes "
		    "(e.g. 512MiB, 4GiB)\n",
		    opt, val, min);
	exit(2);
}

int
cli_address(const char *file, const char *url, char *buf, size_t len)
{
	const char *env;
	if (url != NULL) {
		util_strlcpy(buf, url, len);
		return 0;
	}
	if (file != NULL) {
		struct conf c;
		if (cli_load_conf(file, &c) != 0)
			return -1;
		util_strlcpy(buf, c.address, len);
		conf_free(&c);
		return 0;
	}
	if ((env = getenv("FERRY_ADDRESS")) != NULL && env[0] != '\0') {
		util_strlcpy(buf, env, len);
		return 0;
	}
	util_strlcpy(buf, CLI_DEFAULT_ADDRESS, len);
	return 0;
}

pid_t
cli_spawn(const char *const *argv, const char *log_path)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t          attr;
	sigset_t                   none;
	pid_t                      pid;
	int                        rv;

	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	if (log_path != NULL) {
		posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null",
		    O_RDONLY, 0);
		posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log_path,
		    O_WRONLY | O_CREAT | O_APPEND, 0644);
		posix_spawn_file_actions_adddup2(
		    &fa, STDOUT_FILENO, STDERR_FILENO);
	}
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID |
	        POSIX_SPAWN_SETSIGMASK);
	rv = posix_spawn(&pid, cli_self_exe(), &fa, &attr, (char *const *)argv,
	    environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (rv != 0) {
		fprintf(stderr, "ferry: cannot start %s %s: %s\n", cli_self_exe(),
		    argv[1], strerror(rv));
		return -1;
	}
	return pid;
}

int
cli_pid_is(pid_t pid, uint64_t start)
{
	struct util_proc_stat ps;
	int                   st;

	if (pid <= 0 || start == 0)
		return 0;
	/* reap it if it is our own child that already exited */
	if (waitpid(pid, &st, WNOHANG) == pid)
		return 0;
	return util_proc_stat(pid, &ps) == 0 && ps.start == start &&
	    ps.state != 'Z' && ps.state != 'X';
}

int
cli_wait_gone(pid_t pid, int timeout_ms)
{
	uint64_t              end = util_now_ms() + (uint64_t)timeout_ms;
	struct util_proc_stat ps;

	/* the process pid is now; once it ends, whatever else gets the
	 * pid is not it */
	if (util_proc_stat(pid, &ps) != 0)
		return 0;
	for (;;) {
		if (!cli_pid_is(pid, ps.start))
			return 0;
		if (util_now_ms() >= end)
			return -1;
		usleep(20000);
	}
}

void
cli_tail_log(const char *path, int lines)
{
	FILE  *f = fopen(path, "r");
	char **ring;
	char   line[2048];
	int    n = 0;

	if (f == NULL)
		return;
	ring = calloc((size_t)lines, sizeof(*ring));
	while (ring != NULL && fgets(line, sizeof(line), f) != NULL) {
		free(ring[n % lines]);
		ring[n % lines] = strdup(line);
		n++;
	}
	fclose(f);
	if (ring == NULL)
		return;
	fprintf(stderr, "  --- last lines of %s ---\n", path);
	for (int i = n > lines ? n - lines : 0; i < n; i++)
		fprintf(stderr, "  %s", ring[i % lines] ? ring[i % lines] : "\n");
	for (int i = 0; i < lines; i++)
		free(ring[i]);
	free(ring);
}

const char *
cli_opt_value(int argc, char **argv, const char *shortopts,
    const struct option *longopts, int ch)
{
	const char *val = NULL;
	int         c, saved = opterr;

	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		if (c == ch)
			val = optarg != NULL ? optarg : "";
	}
	opterr = saved;
	optind = 0;
	return val;
}
