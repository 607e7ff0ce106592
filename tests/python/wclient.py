"""A minimal client for the worker tests: libferry (the C client) through
ctypes, with arguments and results encoded by the msgpack package, so a
test controls every msgpack value a Python task receives.  (The Python
client, ferry.Client, is another part's.)"""

import ctypes
import os

import msgpack

import ferry._paths as paths

FERRY_EXT_OBJECT = 70
FERRY_ETASK = -11


def _libferry():
    here = os.path.dirname(os.path.abspath(paths.ferry_bin()))
    for name in ("libferry.so.0", "libferry.so"):
        for d in (os.path.join(here, "..", "client"),
                  os.path.join(here, "..", "lib")):
            p = os.path.join(d, name)
            if os.path.exists(p):
                return ctypes.CDLL(p)
    return ctypes.CDLL("libferry.so.0")


class TaskFailed(Exception):
    def __init__(self, code, message, attempts):
        super().__init__("%d: %s" % (code, message))
        self.code = code
        self.message = message
        self.attempts = attempts


def object_ref(path, loader=None):
    """An object reference (msgpack ext 70) to path."""
    d = {"path": str(path)}
    if loader is not None:
        d["loader"] = loader
    return msgpack.ExtType(FERRY_EXT_OBJECT, msgpack.packb(d))


class Client:
    def __init__(self, address, timeout_ms=30000):
        self.lib = lib = _libferry()
        vp = ctypes.c_void_p
        lib.ferry_client_connect.argtypes = [ctypes.POINTER(vp),
                                             ctypes.c_char_p, ctypes.c_int]
        lib.ferry_client_close.argtypes = [vp]
        lib.ferry_submit.argtypes = [vp, ctypes.c_char_p, ctypes.c_char_p,
                                     ctypes.c_size_t, ctypes.POINTER(vp)]
        lib.ferry_future_wait.argtypes = [vp, ctypes.c_int]
        lib.ferry_future_result.argtypes = [
            vp, ctypes.POINTER(ctypes.c_void_p),
            ctypes.POINTER(ctypes.c_size_t)]
        lib.ferry_future_errcode.argtypes = [vp]
        lib.ferry_future_error.argtypes = [vp]
        lib.ferry_future_error.restype = ctypes.c_char_p
        lib.ferry_future_attempts.argtypes = [vp]
        lib.ferry_future_attempts.restype = ctypes.c_uint32
        lib.ferry_future_free.argtypes = [vp]
        lib.ferry_strerror.restype = ctypes.c_char_p
        c = vp()
        rv = lib.ferry_client_connect(ctypes.byref(c), address.encode(),
                                      timeout_ms)
        if rv != 0:
            raise RuntimeError("connect %s: %s" % (
                address, lib.ferry_strerror(rv).decode()))
        self.c = c

    def close(self):
        if self.c is not None:
            self.lib.ferry_client_close(self.c)
            self.c = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def submit(self, fn, *args):
        """Submit fn(*args); returns the future (a handle)."""
        return self.submit_raw(fn, msgpack.packb(list(args),
                                                 use_bin_type=True))

    def submit_raw(self, fn, data):
        """Submit fn with data, its arguments' msgpack bytes as they
        are."""
        f = ctypes.c_void_p()
        rv = self.lib.ferry_submit(self.c, fn.encode(), data, len(data),
                                   ctypes.byref(f))
        if rv != 0:
            raise RuntimeError("submit %s: %s" % (
                fn, self.lib.ferry_strerror(rv).decode()))
        return f

    def result(self, f, timeout=60.0):
        """Wait (bounded) for future f and free it: its value, or
        TaskFailed."""
        lib = self.lib
        try:
            if lib.ferry_future_wait(f, int(timeout * 1000)) != 0:
                raise TimeoutError("no result within %ss" % timeout)
            data = ctypes.c_void_p()
            n = ctypes.c_size_t()
            rv = lib.ferry_future_result(f, ctypes.byref(data),
                                         ctypes.byref(n))
            if rv != 0:
                msg = lib.ferry_future_error(f)
                raise TaskFailed(lib.ferry_future_errcode(f) or rv,
                                 msg.decode("utf-8", "replace") if msg
                                 else "", lib.ferry_future_attempts(f))
            raw = ctypes.string_at(data, n.value)
            return msgpack.unpackb(raw, raw=False, strict_map_key=False)
        finally:
            lib.ferry_future_free(f)

    def run(self, fn, *args, timeout=60.0):
        return self.result(self.submit(fn, *args), timeout)
