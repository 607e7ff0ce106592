"""Object references: a task's heavy input named by path (ext 70).

    ref = ferry.object("/data/matrix.npy")
    client.submit("mymod.total", ref)

The worker loads the file once into its object cache (memory-mapped) and
hands it to the task: a `.npy` file as a read-only numpy array, any other
file as a read-only memoryview.  The scheduler prefers workers that hold
it already.  The path must lie inside the worker group's object_roots;
a relative path is taken relative to the worker's directory, not this
process's (pass an absolute one unless that is what you mean).
"""

import os

__all__ = ["object", "ObjectRef"]

EXT_OBJECT = 70


class ObjectRef:
    """A reference to a file a task reads by path (see ferry.object)."""

    __slots__ = ("path", "loader", "size", "sha256", "_payload")

    def __init__(self, path, loader=None, size=0, sha256=None):
        from . import _ferry
        path = os.fsdecode(os.fspath(path))
        if sha256 is not None:
            sha256 = bytes(sha256)
        self.path = path
        self.loader = loader
        self.size = int(size or 0)
        self.sha256 = sha256
        # ferry_object_ref writes the bytes, exactly as workers read them
        self._payload = _ferry.object_ref(path, loader, self.size, sha256)

    def __ferry_ext__(self):
        return EXT_OBJECT, self._payload

    @classmethod
    def _from_payload(cls, data):
        import msgpack
        d = msgpack.unpackb(data, raw=False, strict_map_key=False)
        return cls(d["path"], d.get("loader") or None, d.get("size", 0),
                   d.get("sha256"))

    def __eq__(self, other):
        if not isinstance(other, ObjectRef):
            return NotImplemented
        return self._payload == other._payload

    def __hash__(self):
        return hash(self._payload)

    def __reduce__(self):
        return (ObjectRef, (self.path, self.loader, self.size, self.sha256))

    def __repr__(self):
        extra = ""
        if self.loader:
            extra += ", loader=%r" % self.loader
        if self.size:
            extra += ", size=%d" % self.size
        if self.sha256 is not None:
            extra += ", sha256=%s" % self.sha256.hex()
        return "ferry.object(%r%s)" % (self.path, extra)


def object(path, loader=None, *, size=0, sha256=None):
    """A reference to the file at path, to pass among a task's arguments
    instead of its content.  loader: how the worker loads it (None:
    "mmap"; also "mmap_prefault", "read", or one a task library
    registered); size: its expected size in bytes (0: not checked);
    sha256: the 32-byte digest its content must have (None: not
    checked)."""
    return ObjectRef(path, loader, size, sha256)
