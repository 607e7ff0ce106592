/*
 * test_safepath.c - unit tests for worker/safepath.c: opening a file
 * beneath a directory descriptor, through openat2 where the kernel has it
 * and through the component walk (forced), with the same results and the
 * same messages: regular files open, every symbolic link on the way is
 * refused and named, "..", absolute paths, directories, FIFOs, missing
 * files and files used as directories are refused, the opened file's
 * path is checked, and no descriptor leaks.
 *
 * Files live under a mkdtemp directory TMP; TMP/root is the directory
 * opened beneath, TMP/secret.bin lies outside it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/seccomp.h>

#include <cmocka.h>

#include "safepath.h"

static char tmp[PATH_MAX]; /* canonical mkdtemp directory */
static char root[PATH_MAX]; /* TMP/root */
static int  rootfd = -1; /* O_PATH descriptor of root */

/* snprintf that fails the test on truncation. */
static void fmt(char *buf, size_t len, const char *f, ...)
    __attribute__((format(printf, 3, 4)));

static void
fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;
	int     n;
	va_start(ap, f);
	n = vsnprintf(buf, len, f, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len)
		fail_msg("fmt: '%s' truncated", f);
}

/* Create path with the bytes of s. */
static void
write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	assert_int_equal(close(fd), 0);
}

/* How many descriptors this process has open (-1 without /proc). */
static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int  n = 0;
	if (d == NULL)
		return -1;
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

/* Open rel beneath root and check that it holds want. */
static void
expect_open(const char *rel, const char *want)
{
	struct stat st;
	char        err[512], buf[64];
	ssize_t     n;
	int fd = safepath_open(rootfd, root, rel, &st, err, sizeof(err));

	if (fd < 0)
		fail_msg("safepath_open '%s': %s", rel, err);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, (off_t)strlen(want));
	/* blocking and close-on-exec */
	assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	n = read(fd, buf, sizeof(buf) - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	assert_string_equal(buf, want);
	close(fd);
}

/* Open rel beneath dir (shown as dirpath) expecting errno e and the
 * message want. */
static void
expect_refusal_in(
    int dir, const char *dirpath, const char *rel, int e, const char *want)
{
	struct stat st;
	char        err[1024];

	memset(err, 'x', sizeof(err));
	errno = 0;
	assert_int_equal(
	    safepath_open(dir, dirpath, rel, &st, err, sizeof(err)), -1);
	if (errno != e)
		fail_msg("'%s': errno %d (%s), expected %d; message '%s'", rel,
		    errno, strerror(errno), e, err);
	assert_string_equal(err, want);
}

static void
expect_refusal(const char *rel, int e, const char *want)
{
	expect_refusal_in(rootfd, root, rel, e, want);
}

/* Every case, in the current mode. */
static void
check_all(void)
{
	char want[3 * PATH_MAX], p[PATH_MAX];
	int  fds = count_fds(), slash;

	expect_open("f.bin", "top");
	expect_open("a/b/f.bin", "inside");
	expect_open("./a//b/./f.bin", "inside");
	expect_open("a/b/f.bin", "inside");

	/* every symbolic link is refused and named, wherever it points */
	fmt(want, sizeof(want), "%s/a/up is a symbolic link (to '/')", root);
	fmt(p, sizeof(p), "a/up%s/secret.bin", tmp);
	expect_refusal(p, ELOOP, want);
	fmt(want, sizeof(want), "%s/a/in is a symbolic link (to 'b')", root);
	expect_refusal("a/in/f.bin", ELOOP, want);
	fmt(want, sizeof(want),
	    "%s/a/b/link.bin is a symbolic link (to 'f.bin')", root);
	expect_refusal("a/b/link.bin", ELOOP, want);
	fmt(want, sizeof(want),
	    "%s/a/b/out.bin is a symbolic link (to '%s/secret.bin')", root,
	    tmp);
	expect_refusal("a/b/out.bin", ELOOP, want);

	/* what may not be named */
	expect_refusal(
	    "a/../f.bin", EINVAL, "a '..' component is not allowed");
	expect_refusal("..", EINVAL, "a '..' component is not allowed");
	fmt(p, sizeof(p), "%s/secret.bin", tmp);
	fmt(want, sizeof(want), "'%s' is not a relative path", p);
	expect_refusal(p, EINVAL, want);

	/* what may not be opened */
	expect_refusal("", ENODEV, "is a directory, not a regular file");
	expect_refusal(".", ENODEV, "is a directory, not a regular file");
	expect_refusal("a/b", ENODEV, "is a directory, not a regular file");
	expect_refusal("a/fifo", ENODEV, "is a FIFO, not a regular file");
	expect_refusal("a/missing", ENOENT, "No such file or directory");
	expect_refusal("a/missing/f.bin", ENOENT, "No such file or directory");
	expect_refusal("f.bin/x", ENOTDIR, "Not a directory");
	expect_refusal("f.bin/x/y", ENOTDIR, "Not a directory");

	/* the opened file's path must lie under the directory's own */
	if (fds >= 0) {
		fmt(want, sizeof(want),
		    "the opened file is %s/a/b/f.bin, which is not under "
		    "%s/a/bee",
		    root, root);
		fmt(p, sizeof(p), "%s/a/bee", root);
		expect_refusal_in(rootfd, p, "a/b/f.bin", EXDEV, want);
	}

	/* "/" as the directory */
	slash = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(slash >= 0);
	{
		struct stat st;
		char        err[512];
		int         fd;
		fmt(p, sizeof(p), "%s/secret.bin", tmp + 1);
		fd = safepath_open(slash, "/", p, &st, err, sizeof(err));
		if (fd < 0)
			fail_msg("beneath '/': %s", err);
		close(fd);
	}
	close(slash);

	/* nothing leaked on any path */
	assert_int_equal(count_fds(), fds);
}

static void
test_openat2(void **state)
{
	safepath_force_walk(false);
	if (!safepath_uses_openat2()) {
		print_message("[  SKIP    ] this kernel has no openat2 (or "
		              "refuses it): only the walk is tested\n");
		return;
	}
	check_all();
	assert_true(safepath_uses_openat2());
}

static void
test_walk(void **state)
{
	safepath_force_walk(true);
	assert_false(safepath_uses_openat2());
	check_all();
	safepath_force_walk(false);
}

/* In a child: make openat2 fail with e (as an old kernel does with
 * ENOSYS, or a container's seccomp filter with EPERM), then open and
 * refuse through safepath_open, which must fall back to the walk.
 * Returns the child's exit status: 0 right, 1 wrong, 77 cannot filter. */
static int
child_without_openat2(int e)
{
#ifdef SYS_openat2
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		    offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
		BPF_STMT(BPF_RET | BPF_K,
		    SECCOMP_RET_ERRNO | ((unsigned)e & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
	struct stat       st;
	char              err[512], p[PATH_MAX + 32], buf[16];
	int               fd;
	ssize_t           n;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
	    || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
		return 77;
	fd = safepath_open(rootfd, root, "a/b/f.bin", &st, err, sizeof(err));
	if (fd < 0) {
		fprintf(stderr, "openat2 failing with %d: %s\n", e, err);
		return 1;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n != 6 || memcmp(buf, "inside", 6) != 0)
		return 1;
	if (safepath_uses_openat2())
		return 1;
	snprintf(p, sizeof(p), "a/up%s/secret.bin", tmp);
	if (safepath_open(rootfd, root, p, &st, err, sizeof(err)) != -1
	    || errno != ELOOP
	    || strstr(err, "/a/up is a symbolic link") == NULL)
		return 1;
	return 0;
#else
	return 77;
#endif
}

/* The fallback is chosen at run time: where openat2 is missing (ENOSYS)
 * or refused (EPERM), the walk is used, with the same results. */
static void
test_fallback_at_run_time(void **state)
{
	static const int errs[] = { ENOSYS, EPERM };

	safepath_force_walk(false);
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		int   status;
		pid_t pid = fork();
		if (pid == 0)
			_exit(child_without_openat2(errs[i]));
		assert_true(pid > 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		if (WEXITSTATUS(status) == 77) {
			print_message("[  SKIP    ] cannot install a seccomp "
			              "filter here\n");
			return;
		}
		assert_int_equal(WEXITSTATUS(status), 0);
	}
}

static void
test_under(void **state)
{
	assert_true(safepath_under("/data", "/data"));
	assert_true(safepath_under("/data/x", "/data"));
	assert_false(safepath_under("/data2/x", "/data"));
	assert_false(safepath_under("/dat", "/data"));
	assert_true(safepath_under("/anything", "/"));
	assert_false(safepath_under("relative", "/"));
}

/* ----------------------------------------------------------------- main */

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int
setup(void **state)
{
	char t[] = "/tmp/ferry-safepath-XXXXXX";
	char p[PATH_MAX];

	if (mkdtemp(t) == NULL || realpath(t, tmp) == NULL)
		return -1;
	fmt(root, sizeof(root), "%s/root", tmp);
	fmt(p, sizeof(p), "%s/secret.bin", tmp);
	write_file(p, "SECRET");
	if (mkdir(root, 0755) != 0)
		return -1;
	fmt(p, sizeof(p), "%s/f.bin", root);
	write_file(p, "top");
	fmt(p, sizeof(p), "%s/a", root);
	if (mkdir(p, 0755) != 0)
		return -1;
	fmt(p, sizeof(p), "%s/a/b", root);
	if (mkdir(p, 0755) != 0)
		return -1;
	fmt(p, sizeof(p), "%s/a/b/f.bin", root);
	write_file(p, "inside");
	fmt(p, sizeof(p), "%s/a/fifo", root);
	if (mkfifo(p, 0644) != 0)
		return -1;
	fmt(p, sizeof(p), "%s/a/up", root);
	if (symlink("/", p) != 0)
		return -1;
	fmt(p, sizeof(p), "%s/a/in", root);
	if (symlink("b", p) != 0)
		return -1;
	fmt(p, sizeof(p), "%s/a/b/link.bin", root);
	if (symlink("f.bin", p) != 0)
		return -1;
	{
		char q[PATH_MAX];
		fmt(q, sizeof(q), "%s/secret.bin", tmp);
		fmt(p, sizeof(p), "%s/a/b/out.bin", root);
		if (symlink(q, p) != 0)
			return -1;
	}
	rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	return rootfd >= 0 ? 0 : -1;
}

static int
teardown(void **state)
{
	if (rootfd >= 0)
		close(rootfd);
	return nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_openat2),
		cmocka_unit_test(test_walk),
		cmocka_unit_test(test_fallback_at_run_time),
		cmocka_unit_test(test_under),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
