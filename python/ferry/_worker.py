"""What the worker's embedded interpreter (the task library ferry_python,
python/worker/) calls in Python: the start (sys.path, imports, the
registered functions), .npy object references as read-only arrays over
the worker's mapping, and a task's exception as the failure message.

Not for users: import ferry and use @ferry.task (docs/python.md).
"""

import ast
import importlib.machinery as machinery
import os
import sys
import traceback

from . import _task

_ext_type = None


def ext_type():
    """msgpack.ExtType, imported the first time a task meets an ext value
    (not at start: most workers never do), or a namedtuple of the same
    name and fields where the msgpack package is missing."""
    global _ext_type
    if _ext_type is None:
        try:
            from msgpack import ExtType
        except ImportError:
            from collections import namedtuple
            ExtType = namedtuple("ExtType", "code data")
        _ext_type = ExtType
    return _ext_type

# how long a failure message may be: the head (type and message) and
# the last frames of the traceback fit in it
FAILURE_MAX = 12000


class StartError(Exception):
    """The worker cannot start: the message says what and where."""


def _exc_line(exc):
    """'Type: message' as the last line of a traceback writes it."""
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


class _SourceLoader(machinery.SourceFileLoader):
    """Compiles a module from its source file, never from __pycache__.

    Python trusts a cached .pyc whose recorded modification time (whole
    seconds) and size match the source: a module edited, saved and
    imported again by new worker processes within the same second, at
    the same size, would run the old code.  The task modules of a group
    (those under its python path) are the files a user edits between
    restarts, so they are always compiled afresh (a few milliseconds per
    process); everything else keeps its cache."""

    def get_code(self, fullname):
        source = self.get_data(self.path)
        return compile(source, self.path, "exec", dont_inherit=True)


def _fresh_source_hook(dirs):
    """A sys.path_hooks entry: a finder whose .py files load through
    _SourceLoader, for dirs and the package directories below them."""
    details = [
        (machinery.ExtensionFileLoader, machinery.EXTENSION_SUFFIXES),
        (_SourceLoader, machinery.SOURCE_SUFFIXES),
        (machinery.SourcelessFileLoader, machinery.BYTECODE_SUFFIXES),
    ]

    def hook(path):
        a = os.path.abspath(path or ".")
        for d in dirs:
            if a == d or a.startswith(d + os.sep):
                return machinery.FileFinder(path, *details)
        raise ImportError("not a task module directory")
    return hook


def start(paths, modules):
    """Put paths first on sys.path (in order), import modules, and return
    every function marked @ferry.task as a list of (name, function)."""
    dirs = []
    for p in reversed(paths):
        p = os.path.abspath(p)
        if not os.path.isdir(p):
            raise StartError("python path '%s' is not a directory" % p)
        sys.path.insert(0, p)
        dirs.append(p)
    if dirs:
        sys.path_hooks.insert(0, _fresh_source_hook(dirs))
        sys.path_importer_cache.clear()
    for m in modules:
        try:
            __import__(m)
        except BaseException as e:  # SystemExit, KeyboardInterrupt too
            # the traceback from the module's own frames (not this one)
            tb = "".join(traceback.format_exception(
                type(e), e, e.__traceback__.tb_next)).rstrip()
            raise StartError(
                "python module '%s' failed to import: %s\n\n%s"
                % (m, _exc_line(e), _cut(tb, FAILURE_MAX // 2))) from None
    if _task._conflicts:
        name, first, second = _task._conflicts[0]
        raise StartError(
            "@ferry.task name '%s' is given to two functions, %s and %s; "
            "give one another name with @ferry.task(name=...)"
            % (name, first, second))
    if not _task._registry:
        raise StartError(
            "python module(s) %s define no @ferry.task function"
            % ", ".join(modules))
    return sorted(_task._registry.items())


def _cut(text, limit):
    """text cut in the middle to at most about limit characters."""
    if len(text) <= limit:
        return text
    keep = limit // 2
    return "%s\n  [... %d characters cut ...]\n%s" % (
        text[:keep], len(text) - 2 * keep, text[-keep:])


def failure(exc):
    """The message of a task that raised exc: 'Type: message', a blank
    line, then the traceback (its middle cut when long)."""
    try:
        head = _exc_line(exc)
        tb = "".join(traceback.format_exception(exc))
    except BaseException:
        return "%s: (the exception could not be formatted)" % (
            type(exc).__name__,)
    if len(head) > FAILURE_MAX // 2:
        head = _cut(head, FAILURE_MAX // 2)
    if (exc.__traceback__ is None and exc.__cause__ is None and
            exc.__context__ is None):
        return head  # raised by the worker itself (an encoding error)
    room = max(FAILURE_MAX - len(head), FAILURE_MAX // 2)
    return "%s\n\n%s" % (head, _cut(tb.rstrip(), room))


# ------------------------------------------------------------- .npy files

_MAGIC = b"\x93NUMPY"
_headers = {}  # the header's bytes -> (dtype, shape, fortran order)


def _npy_header(raw, major, path):
    import numpy
    from numpy.lib import format as npf

    text = raw.decode("utf-8" if major >= 3 else "latin1")
    try:
        d = ast.literal_eval(text)
    except (SyntaxError, ValueError) as e:
        raise ValueError("%s: bad .npy header: %s" % (path, e)) from None
    if (not isinstance(d, dict) or
            set(d) != {"descr", "fortran_order", "shape"} or
            not isinstance(d["shape"], tuple) or
            not all(isinstance(n, int) and n >= 0 for n in d["shape"]) or
            not isinstance(d["fortran_order"], bool)):
        raise ValueError("%s: bad .npy header %r" % (path, text.strip()))
    try:
        dtype = npf.descr_to_dtype(d["descr"])
    except (TypeError, ValueError) as e:
        raise ValueError("%s: bad .npy dtype %r: %s" % (
            path, d["descr"], e)) from None
    if dtype.hasobject:
        raise ValueError(
            "%s: the array holds Python objects (saved with pickles); "
            "Ferry maps only plain arrays (numpy.save with "
            "allow_pickle=False)" % path)
    return numpy.dtype(dtype), d["shape"], d["fortran_order"]


def npy_array(view, path):
    """A read-only numpy.ndarray over view (a read-only memoryview of a
    whole .npy file, the worker's mapping): no copy."""
    import numpy

    n = len(view)
    if n < 10 or view[:6] != _MAGIC:
        raise ValueError("%s: not a .npy file (no \\x93NUMPY magic at its "
                         "start)" % path)
    major = view[6]
    if major == 1:
        start = 10
        hlen = view[8] | view[9] << 8
    elif major in (2, 3) and n >= 12:
        start = 12
        hlen = int.from_bytes(view[8:12], "little")
    else:
        raise ValueError("%s: .npy format version %d.%d is not known" % (
            path, major, view[7]))
    end = start + hlen
    if end > n:
        raise ValueError("%s: the .npy header runs past the end of the "
                         "file" % path)
    key = view[6:end].tobytes()
    info = _headers.get(key)
    if info is None:
        info = _npy_header(key[start - 6:], major, path)
        if len(_headers) >= 256:
            _headers.clear()
        _headers[key] = info
    dtype, shape, fortran = info
    try:
        return numpy.ndarray(shape, dtype=dtype, buffer=view, offset=end,
                             order="F" if fortran else "C")
    except TypeError:
        raise ValueError("%s: the file is shorter than its .npy header "
                         "says (%s of %s)" % (path, shape, dtype)) from None
