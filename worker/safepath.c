/*
 * safepath.c - open a file beneath a directory without leaving it (see
 * safepath.h).
 *
 * The path is first normalised (empty and "." components dropped, ".."
 * refused) and split into its directories and its last component.  The
 * directories are resolved to one O_PATH descriptor, by openat2() or by
 * the walk; the last component is looked at with fstatat() and opened
 * with openat(O_NOFOLLOW) from that descriptor.  A name without '/'
 * opened from a directory descriptor cannot leave that directory, so
 * the one place where the root could be escaped is the resolution of the
 * directories, and both ways of doing it refuse every symbolic link.
 *
 * When openat2() refuses a symbolic link (ELOOP, or EXDEV for an escape)
 * it does not say which component was one: the walk then runs again to
 * name it.  If the walk finds nothing wrong (the path changed back in
 * between), its descriptor is as safe as openat2's and is used.
 */
#include "safepath.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* openat2 where the headers know it (Linux 5.6); the walk elsewhere */
#if defined(__linux__) && defined(SYS_openat2)
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#define SAFEPATH_HAVE_OPENAT2 1
#endif
#endif

#include "util.h"

#define SAFEPATH_SHOW_MAX 1024 /* longest path quoted in a message */

#ifdef SAFEPATH_HAVE_OPENAT2
/* openat2: 1 works, 0 missing or refused (walk), -1 not tried yet. */
static atomic_int openat2_state = -1;
#endif
static atomic_bool walk_forced;

/* errno as text, thread-safe. */
static const char *
errstr(int e, char *buf, size_t len)
{
	return strerror_r(e, buf, len);
}

/* Fail with errno e and its text in err. */
static int
fail_errno(int e, char *err, size_t errlen)
{
	char eb[128];
	util_errf(err, errlen, "%s", errstr(e, eb, sizeof eb));
	errno = e;
	return -1;
}

/* "a directory", "a FIFO", ... for a file that is not regular. */
static const char *
file_kind(mode_t m)
{
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISBLK(m))
		return "a block device";
	if (S_ISLNK(m))
		return "a symbolic link";
	return "a special file";
}

/* Refuse a file that is not regular, saying what it is. */
static int
fail_kind(mode_t m, char *err, size_t errlen)
{
	util_errf(err, errlen, "is %s, not a regular file", file_kind(m));
	errno = ENODEV;
	return -1;
}

/* Refuse the symbolic link name in the directory dfd, which is
 * dirpath/rel[0..upto): say where it points (read now, for the message
 * only). */
static int
fail_symlink(int dfd, const char *name, const char *dirpath, const char *rel,
    size_t upto, char *err, size_t errlen)
{
	char    target[PATH_MAX];
	ssize_t n   = readlinkat(dfd, name, target, sizeof(target) - 1);
	size_t  dl  = strlen(dirpath);
	int     sep = dl == 0 || dirpath[dl - 1] != '/';

	if (n < 0)
		n = 0;
	target[n] = '\0';
	util_errf(err, errlen, "%.*s%s%.*s is a symbolic link (to '%.*s')",
	    SAFEPATH_SHOW_MAX, dirpath, sep ? "/" : "",
	    upto > SAFEPATH_SHOW_MAX ? SAFEPATH_SHOW_MAX : (int)upto, rel,
	    SAFEPATH_SHOW_MAX, target);
	errno = ELOOP;
	return -1;
}

bool
safepath_under(const char *p, const char *dir)
{
	size_t n = strlen(dir);
	if (n == 1 && dir[0] == '/')
		return p[0] == '/';
	return strncmp(p, dir, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

/* Copy rel into out (outlen bytes) without empty and "." components.
 * Returns 0, or -1 (with err) for "..", an absolute path or one too
 * long. */
static int
normalise(const char *rel, char *out, size_t outlen, char *err, size_t errlen)
{
	size_t at = 0;

	if (rel[0] == '/') {
		util_errf(err, errlen, "'%.*s' is not a relative path",
		    SAFEPATH_SHOW_MAX, rel);
		errno = EINVAL;
		return -1;
	}
	while (*rel != '\0') {
		size_t n = strcspn(rel, "/");
		if (n == 2 && rel[0] == '.' && rel[1] == '.') {
			util_errf(
			    err, errlen, "a '..' component is not allowed");
			errno = EINVAL;
			return -1;
		}
		if (n != 0 && !(n == 1 && rel[0] == '.')) {
			if (at + (at != 0) + n >= outlen)
				return fail_errno(ENAMETOOLONG, err, errlen);
			if (at != 0)
				out[at++] = '/';
			memcpy(out + at, rel, n);
			at += n;
		}
		rel += n;
		while (*rel == '/')
			rel++;
	}
	out[at] = '\0';
	return 0;
}

/* Open the directories dirs (normalised: no empty component) one
 * component at a time from dirfd.  Returns an O_PATH descriptor of the
 * last one (dirfd itself when dirs is ""), or -1 with errno and err. */
static int
walk_dirs(
    int dirfd, const char *dirpath, const char *dirs, char *err, size_t errlen)
{
	char        name[NAME_MAX + 1];
	struct stat st;
	int         cur = dirfd, fd, e;
	size_t      at = 0, len = strlen(dirs);

	while (at < len) {
		size_t n = strcspn(dirs + at, "/");
		if (n > NAME_MAX) {
			e = ENAMETOOLONG;
			goto fail;
		}
		memcpy(name, dirs + at, n);
		name[n] = '\0';
		/* O_PATH | O_NOFOLLOW opens a symbolic link itself, which
		 * fstat then shows for what it is */
		fd = openat(cur, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			e = errno;
			goto fail;
		}
		if (fstat(fd, &st) != 0) {
			e = errno;
			close(fd);
			goto fail;
		}
		if (S_ISLNK(st.st_mode)) {
			close(fd);
			fail_symlink(
			    cur, name, dirpath, dirs, at + n, err, errlen);
			if (cur != dirfd)
				close(cur);
			return -1;
		}
		if (!S_ISDIR(st.st_mode)) {
			close(fd);
			e = ENOTDIR;
			goto fail;
		}
		if (cur != dirfd)
			close(cur);
		cur = fd;
		at += n;
		while (at < len && dirs[at] == '/')
			at++;
	}
	return cur;
fail:
	if (cur != dirfd)
		close(cur);
	return fail_errno(e, err, errlen);
}

#ifdef SAFEPATH_HAVE_OPENAT2
/* openat2(dirfd, dirs, O_PATH | O_DIRECTORY) confined beneath dirfd,
 * following no symbolic link.  Returns the descriptor, or -1 with errno
 * (ENOSYS and the like when openat2 cannot be used). */
static int
openat2_dirs(int dirfd, const char *dirs)
{
	struct open_how how;
	long            fd;

	memset(&how, 0, sizeof(how));
	how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
	how.resolve
	    = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	/* EAGAIN: a rename elsewhere raced a RESOLVE_BENEATH lookup; the
	 * kernel asks for a retry (bounded here) */
	for (int i = 0; i < 8; i++) {
		fd = syscall(SYS_openat2, dirfd, dirs, &how, sizeof(how));
		if (fd >= 0 || (errno != EAGAIN && errno != EINTR))
			break;
	}
	return fd < 0 ? -1 : (int)fd;
}

/* Whether this errno from openat2 means "openat2 cannot be used here"
 * (an old kernel, or a seccomp filter that refuses unknown calls). */
static bool
openat2_unusable(int e)
{
	return e == ENOSYS || e == EPERM || e == EINVAL || e == E2BIG;
}
#endif

/* Open the directories dirs (normalised; "" for dirfd itself) beneath
 * dirfd.  Returns an O_PATH descriptor (dirfd itself for ""), or -1. */
static int
open_dirs(
    int dirfd, const char *dirpath, const char *dirs, char *err, size_t errlen)
{
#ifdef SAFEPATH_HAVE_OPENAT2
	if (dirs[0] != '\0' && !atomic_load(&walk_forced)
	    && atomic_load(&openat2_state) != 0) {
		int fd = openat2_dirs(dirfd, dirs);
		if (fd >= 0) {
			atomic_store(&openat2_state, 1);
			return fd;
		}
		if (openat2_unusable(errno))
			atomic_store(&openat2_state, 0);
		else if (errno != ELOOP && errno != EXDEV)
			return fail_errno(errno, err, errlen);
		/* a symbolic link on the way: the walk names it */
	}
#endif
	return walk_dirs(dirfd, dirpath, dirs, err, errlen);
}

/* Check that fd's path (/proc/self/fd) lies under dirpath.  Without
 * /proc there is nothing to read, and the check is skipped. */
static int
check_fd_path(int fd, const char *dirpath, char *err, size_t errlen)
{
	char    link[64], got[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, got, sizeof(got));
	if (n < 0)
		return 0;
	if ((size_t)n >= sizeof(got)) {
		util_errf(err, errlen,
		    "the opened file's path is too long to check");
		errno = EXDEV;
		return -1;
	}
	got[n] = '\0';
	if (safepath_under(got, dirpath))
		return 0;
	util_errf(err, errlen,
	    "the opened file is %.*s, which is not under %.*s",
	    SAFEPATH_SHOW_MAX, got, SAFEPATH_SHOW_MAX, dirpath);
	errno = EXDEV;
	return -1;
}

int
safepath_open(int dirfd, const char *dirpath, const char *rel, struct stat *st,
    char *err, size_t errlen)
{
	char        norm[PATH_MAX];
	const char *last;
	char       *slash;
	int         dfd, fd = -1, fl, e;

	if (err != NULL && errlen != 0)
		err[0] = '\0';
	if (normalise(rel, norm, sizeof(norm), err, errlen) != 0)
		return -1;
	if (norm[0] == '\0') {
		/* the directory itself */
		if (fstat(dirfd, st) != 0)
			return fail_errno(errno, err, errlen);
		return fail_kind(st->st_mode, err, errlen); /* a directory */
	}
	if ((slash = strrchr(norm, '/')) != NULL) {
		*slash = '\0';
		last   = slash + 1;
	} else {
		last = norm;
	}
	dfd = open_dirs(
	    dirfd, dirpath, slash != NULL ? norm : "", err, errlen);
	if (slash != NULL)
		*slash = '/'; /* norm is whole again, for messages */
	if (dfd < 0)
		return -1;

	/* never open what is not a regular file */
	if (fstatat(dfd, last, st, AT_SYMLINK_NOFOLLOW) != 0) {
		e = errno;
		goto fail_e;
	}
	if (S_ISLNK(st->st_mode)) {
		fail_symlink(
		    dfd, last, dirpath, norm, strlen(norm), err, errlen);
		goto fail;
	}
	if (!S_ISREG(st->st_mode)) {
		fail_kind(st->st_mode, err, errlen);
		goto fail;
	}
	/* O_NONBLOCK: a FIFO put there since fstatat must not block us */
	fd = openat(dfd, last,
	    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 && errno == ELOOP) {
		fail_symlink(
		    dfd, last, dirpath, norm, strlen(norm), err, errlen);
		goto fail;
	}
	if (fd < 0 || fstat(fd, st) != 0) {
		e = errno;
		goto fail_e;
	}
	if (!S_ISREG(st->st_mode)) {
		fail_kind(st->st_mode, err, errlen);
		goto fail;
	}
	if ((fl = fcntl(fd, F_GETFL)) < 0
	    || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		e = errno;
		goto fail_e;
	}
	if (check_fd_path(fd, dirpath, err, errlen) != 0)
		goto fail;
	if (dfd != dirfd)
		close(dfd);
	return fd;
fail_e:
	fail_errno(e, err, errlen);
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	if (dfd != dirfd)
		close(dfd);
	errno = e;
	return -1;
}

bool
safepath_uses_openat2(void)
{
#ifdef SAFEPATH_HAVE_OPENAT2
	if (atomic_load(&walk_forced))
		return false;
	if (atomic_load(&openat2_state) < 0) {
		int fd = openat2_dirs(AT_FDCWD, ".");
		if (fd >= 0) {
			close(fd);
			atomic_store(&openat2_state, 1);
		} else if (openat2_unusable(errno)) {
			atomic_store(&openat2_state, 0);
		}
	}
	return atomic_load(&openat2_state) == 1;
#else
	return false;
#endif
}

void
safepath_force_walk(bool on)
{
	atomic_store(&walk_forced, on);
}
