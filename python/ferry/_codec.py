"""How Python values travel: msgpack, with the package's conventions.

A task's arguments are one msgpack array of its positional arguments;
its result is one msgpack value.  Both directions follow one mapping
(docs/python.md): None, bool, int (64-bit), float, str, bytes (and
bytearray, memoryview), lists and tuples (as arrays), dicts, and

  - objects with a method __ferry_ext__() -> (code, bytes) as that ext
    value: ferry.object() references (ext 70) and ferry futures (ext 71,
    the future reference that the scheduler replaces by that task's
    result);
  - numpy scalars as int, float or bool.

Anything else is refused with a TypeError naming the argument, where in
it, and what to do.  Results decode with msgpack-python (raw=False,
strict_map_key=False: an array key comes back as a tuple); ext 70 becomes
an ObjectRef, other ext values msgpack.ExtType.

The extension packs and decodes the common values in C (_pack.c) and
calls encode_args and decode here for the rest.
"""

import sys

import msgpack

from ._objects import EXT_OBJECT, ObjectRef

__all__ = ["encode_args", "decode", "encode", "describe_unsendable"]

_DEPTH = 512  # msgpack-python's nesting limit


def _ext_hook(code, data):
    if code == EXT_OBJECT:
        return ObjectRef._from_payload(data)
    return msgpack.ExtType(code, data)


def _key(k):
    return tuple(_key(x) for x in k) if isinstance(k, list) else k


def _pairs(pairs):
    return {_key(k): v for k, v in pairs}


def decode(data):
    """A result's value from its msgpack bytes."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False,
                               ext_hook=_ext_hook)
    except TypeError:
        # a map with an array key: the key becomes a tuple (slower, so
        # only when needed)
        return msgpack.unpackb(data, raw=False, strict_map_key=False,
                               ext_hook=_ext_hook, object_pairs_hook=_pairs)


def _numpy_scalar(obj):
    np = sys.modules.get("numpy")
    if np is None or not isinstance(obj, np.generic):
        return None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return None


def _default(obj):
    ext = getattr(type(obj), "__ferry_ext__", None)
    if ext is not None:
        code, data = ext(obj)
        return msgpack.ExtType(code, bytes(data))
    v = _numpy_scalar(obj)
    if v is not None:
        return v
    if isinstance(obj, int):
        raise OverflowError(_why(obj) or "int out of range")
    raise TypeError(_why(obj) or "cannot be sent")


def encode(value):
    """msgpack bytes of one value (the package's mapping)."""
    return msgpack.packb(value, default=_default, use_bin_type=True)


def _type_name(obj):
    t = type(obj)
    mod = t.__module__
    if mod in ("builtins", None):
        return t.__qualname__
    return "%s.%s" % (mod.split(".")[0] if mod.startswith("numpy")
                      else mod, t.__qualname__)


def _why(obj):
    """Why obj itself cannot be sent (None if it can)."""
    if obj is None or isinstance(obj, (bool, float, bytes, bytearray,
                                       memoryview)):
        return None
    if isinstance(obj, int):
        if -(1 << 63) <= obj < (1 << 64):
            return None
        return ("the int %s is out of the 64-bit range msgpack carries "
                "(send it as a str)" % (obj if abs(obj) < 10**30 else
                                         "of %d bits" % obj.bit_length()))
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            return "a str with unpaired surrogates is not valid UTF-8"
        return None
    if isinstance(obj, (list, tuple, dict)):
        return None
    if getattr(type(obj), "__ferry_ext__", None) is not None:
        return None
    if _numpy_scalar(obj) is not None:
        return None
    np = sys.modules.get("numpy")
    name = _type_name(obj)
    if np is not None and isinstance(obj, np.ndarray):
        return ("a numpy.ndarray is not sent by value: write big arrays to "
                "a .npy file (numpy.save) and pass ferry.object(path), "
                "small ones as .tolist()")
    if isinstance(obj, (set, frozenset)):
        return ("a %s is not sent: pass a list (sorted(...)) or a tuple"
                % name)
    return ("a %s is not sent: tasks take None, bool, int, float, str, "
            "bytes, lists, tuples, dicts, ferry futures and ferry.object() "
            "references (numpy scalars as numbers)" % name)


def _find(obj, path, depth):
    """The first unsendable thing in obj: (path, reason), or None."""
    if depth > _DEPTH:
        return path, "nested more than %d levels deep" % _DEPTH
    why = _why(obj)
    if why is not None:
        return path, why
    if isinstance(obj, (list, tuple)):
        for i, x in enumerate(obj):
            r = _find(x, "%s[%d]" % (path, i), depth + 1)
            if r:
                return r
    elif isinstance(obj, dict):
        for k, v in obj.items():
            r = _find(k, "%s (key %r)" % (path, k), depth + 1) or \
                _find(v, "%s[%r]" % (path, k), depth + 1)
            if r:
                return r
    return None


def describe_unsendable(args, fn=None, what="argument"):
    """A message for the first thing in the arguments tuple args that
    cannot be sent, or None."""
    for i, a in enumerate(args):
        r = _find(a, "", 1)
        if r:
            path, why = r
            where = "%s %d" % (what, i + 1)
            if path:
                where += " (args[%d]%s)" % (i, path)
            task = " of task %r" % fn if fn else ""
            return "cannot send %s%s: %s" % (where, task, why)
    return None


def _default_for(client):
    """_default, refusing futures of clients other than client (the
    extension's core): a future stands for a task of its own client's
    session only."""
    from ._ferry import FutureBase

    def default(obj):
        if isinstance(obj, FutureBase) and not client.owns(obj):
            raise ValueError(
                "the future of task %d (%s) belongs to another client: a "
                "future is an argument only of tasks of the client that "
                "submitted it (pass its result() instead)"
                % (obj.id, obj.function))
        return _default(obj)
    return default


def encode_args(args, fn=None, client=None):
    """msgpack bytes of a task's positional arguments (a tuple, sent as
    one array) for a task of client (the extension's core; None: any
    future is taken).  Raises TypeError (OverflowError for an int out
    of range) saying which argument cannot be sent, where in it, and
    why."""
    default = _default if client is None else _default_for(client)
    try:
        return msgpack.packb(args, default=default, use_bin_type=True)
    except ValueError as e:
        if "another client" in str(e):
            raise ValueError(str(e)) from None
        msg = describe_unsendable(args, fn)
        if msg is None:
            raise
        raise TypeError(msg) from None
    except (TypeError, OverflowError) as e:
        msg = describe_unsendable(args, fn)
        if msg is None:
            raise
        cls = OverflowError if isinstance(e, OverflowError) else TypeError
        raise cls(msg) from None
