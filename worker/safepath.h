/*
 * safepath.h - open a file beneath a directory without ever leaving it.
 *
 * The object cache resolves a task's path in user space (realpath), checks
 * that the result lies inside an allowed root, and then opens what is left
 * of it relative to a descriptor of that root with safepath_open().  The
 * kernel confines that open to the root: no symbolic link is followed and
 * no ".." is accepted on the way, so a directory swapped for a symbolic
 * link between the check and the open makes the open fail; it can never
 * reach a file outside the root.
 *
 * Where the kernel has it (Linux 5.6 and later), the directories are
 * resolved by one openat2() with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS.  Where it does not (ENOSYS), or a seccomp filter
 * refuses it, they are walked one component at a time, each opened with
 * openat(O_PATH | O_NOFOLLOW) from its parent's descriptor and checked
 * with fstat() before it is used.  Either way the last component is
 * opened with openat(O_NOFOLLOW) from its directory's descriptor, only
 * after fstatat() found a regular file there, and the new descriptor is
 * checked again: fstat() (a regular file) and /proc/self/fd (a path under
 * the directory's own, when /proc is mounted).
 *
 * Thread-safe.
 */
#ifndef FERRY_SAFEPATH_H
#define FERRY_SAFEPATH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

/*
 * Open rel, a relative path, beneath the directory dirfd, read-only, and
 * only if it is a regular file (anything else is refused before it is
 * opened: a FIFO would block, a device may act on open).  dirpath is the
 * canonical path of dirfd: the opened file's path must lie under it, and
 * messages quote it.  Empty and "." components are skipped; a ".."
 * component, or an absolute rel, is refused (EINVAL).
 *
 * Returns a descriptor (O_CLOEXEC, blocking; the caller closes it) with
 * its fstat() in *st, or -1 with errno set and a message in err:
 *   ELOOP   a component is a symbolic link; err names it and its target
 *   ENODEV  not a regular file; err says what it is ("is a FIFO, not a
 *           regular file")
 *   EXDEV   the opened file's path does not lie under dirpath
 *   other   the errno of the failing call; err is its strerror() text
 */
int safepath_open(int dirfd, const char *dirpath, const char *rel,
    struct stat *st, char *err, size_t errlen);

/* Whether path p names dir or lies under it ("/" holds every absolute
 * path); both canonical. */
bool safepath_under(const char *p, const char *dir);

/* Whether safepath_open resolves with openat2 (true) or walks (false). */
bool safepath_uses_openat2(void);

/* For tests: always walk (true), or use openat2 where it works (false). */
void safepath_force_walk(bool on);

#endif
