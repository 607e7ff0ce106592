"""Python task functions for the worker tests (tests/python/test_worker*.py)
and the benchmark (`ferry bench throughput --fn pytasks.noop`)."""

import ctypes
import os
import time

import ferry


class TaskBoom(Exception):
    """An exception of this module's own."""


@ferry.task
def noop(*args):
    return None


@ferry.task
def add(a, b):
    return a + b


@ferry.task(name="py_named")
def named(x):
    return ["named", x]


@ferry.task
def echo(*args):
    return list(args)


@ferry.task
def describe(*args):
    """The type of each argument, and of the keys of dict arguments."""
    out = []
    for a in args:
        if isinstance(a, dict):
            out.append(["dict", sorted(type(k).__name__ for k in a)])
        elif isinstance(a, list):
            out.append(["list", [type(x).__name__ for x in a]])
        else:
            out.append(type(a).__name__)
    return out


@ferry.task
def key_tuple(d):
    """A dict whose key was a msgpack array: the key's type and value."""
    (k,) = d.keys()
    return [type(k).__name__, list(k), d[k]]


@ferry.task
def ext_code(x):
    return [type(x).__name__, x.code, x.data]


class Ref:
    """Encodes itself as an object reference, as ferry.ObjectRef does."""

    def __init__(self, path):
        self.path = path

    def __ferry_ext__(self):
        import msgpack
        return 70, msgpack.packb({"path": self.path})


@ferry.task
def results(kind):
    import msgpack
    import numpy
    return {
        "ferry_ext": [Ref("/data/x.npy")],
        "tuple": (1, (2, 3)),
        "numpy": [numpy.int64(5), numpy.float32(1.5), numpy.bool_(True),
                  numpy.uint8(7)],
        "bytes": [bytearray(b"ab"), memoryview(b"cd")],
        "ext": msgpack.ExtType(5, b"xy"),
        "big": [2 ** 64 - 1, -2 ** 63],
    }[kind]


@ferry.task
def bad_result(kind):
    import numpy
    if kind == "ndarray":
        return {"x": [1, numpy.zeros(3)]}
    if kind == "set":
        return [0, 1, {1, 2}]
    if kind == "bigint":
        return [2 ** 70]
    if kind == "object":
        return {"k": object()}
    if kind == "cycle":
        x = []
        x.append(x)
        return x
    raise ValueError(kind)


@ferry.task
def boom(msg):
    def inner():
        raise TaskBoom("boom: %s" % msg)
    inner()


@ferry.task
def crash(kind):
    if kind == "segv":
        return ctypes.string_at(0)
    if kind == "abort":
        os.abort()
    raise ValueError(kind)


@ferry.task
def say(text):
    import sys
    print(text)
    print(text + " (stderr)", file=sys.stderr)


@ferry.task
def executable():
    import sys
    return sys.executable


@ferry.task
def pid():
    return os.getpid()


@ferry.task
def sleep_add(seconds, a, b):
    time.sleep(seconds)  # releases the GIL
    return a + b


def _mapped(addr):
    """The file /proc/self/maps says addr lies in, or None."""
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if lo <= addr < hi:
                return parts[5].strip() if len(parts) > 5 else ""
    return None


@ferry.task
def npy_info(arr):
    import numpy
    info = {
        "type": type(arr).__module__ + "." + type(arr).__name__,
        "dtype": str(arr.dtype),
        "shape": list(arr.shape),
        "fortran": bool(arr.flags.f_contiguous and not
                        arr.flags.c_contiguous),
        "writeable": bool(arr.flags.writeable),
        "values": arr.tolist(),
        # the object exporting the memory (through a memoryview or not)
        "base": type(getattr(arr.base, "obj", arr.base)).__name__,
    }
    try:
        arr.flat[0] = 0
        info["write"] = "written"
    except ValueError as e:
        info["write"] = str(e)
    try:
        arr.flags.writeable = True
        info["unlock"] = "unlocked"
    except ValueError:
        info["unlock"] = "refused"
    addr = arr.__array_interface__["data"][0]
    info["addr"] = addr
    info["mapped"] = _mapped(addr)
    info["is_numpy"] = isinstance(arr, numpy.ndarray)
    return info


@ferry.task
def view_info(view):
    import numpy
    addr = numpy.frombuffer(view, dtype=numpy.uint8).__array_interface__[
        "data"][0] if len(view) else 0
    try:
        view[0:1] = b"x"
        write = "written"
    except TypeError as e:
        write = str(e)
    return {
        "type": type(view).__name__,
        "readonly": view.readonly,
        "bytes": bytes(view),
        "obj": type(view.obj).__name__,
        "write": write,
        "addr": addr,
        "mapped": _mapped(addr) if addr else None,
    }


@ferry.task
def shares(a, b):
    import numpy
    return bool(numpy.shares_memory(a, b))


_kept = []


@ferry.task
def keep(view):
    """Keep the view past the task: its mapping must stay valid."""
    _kept.append(view)
    return len(_kept)


@ferry.task
def kept_sum():
    return [sum(bytes(v)) for v in _kept]


@ferry.task
def kept_drop():
    n = len(_kept)
    del _kept[:]
    return n
