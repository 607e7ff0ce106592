"""The @ferry.task decorator: marks a function as a Ferry task.

    import ferry

    @ferry.task
    def square(x):               # registered as "mytasks.square"
        return x * x

    @ferry.task(name="add")      # registered as "add"
    def add(a, b):
        return a + b

A worker process whose group names this module (python: {modules:
[mytasks]}) imports it at start and runs these functions by name; a
client may pass the function itself (client.submit(square, 3)), which
stands for its name (fn.__ferry_name__).  The decorator returns the
function unchanged: calling it locally runs it locally.

Names are 1 to 255 bytes of A-Z a-z 0-9 _ . : - (the worker's rule), so
a nested function (qualname with "<locals>") needs name=.
"""

import re

__all__ = ["task"]

_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,255}\Z", re.ASCII)

# name -> function, for every function decorated in this process (the
# worker's embedded interpreter registers them all after its imports)
_registry = {}
# (name, first, second): one name given to two different functions
_conflicts = []


def _where(fn):
    return "%s.%s" % (getattr(fn, "__module__", "?"),
                      getattr(fn, "__qualname__", repr(fn)))


def _register(fn, name):
    if not callable(fn):
        raise TypeError("@ferry.task decorates a function, not %s"
                        % type(fn).__name__)
    if name is None:
        name = _where(fn)
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            "@ferry.task: %r is not a valid task name (1 to 255 bytes of "
            "A-Z a-z 0-9 _ . : -); a nested function or a lambda needs "
            "@ferry.task(name=...)" % (name,))
    prev = _registry.get(name)
    if prev is not None and prev is not fn and _where(prev) != _where(fn):
        _conflicts.append((name, _where(prev), _where(fn)))
    _registry[name] = fn
    try:
        fn.__ferry_name__ = name
    except (AttributeError, TypeError):
        raise TypeError("@ferry.task: cannot mark %r (it takes no "
                        "attributes); wrap it in a def" % (fn,)) from None
    return fn


def task(fn=None, *, name=None):
    """Mark fn as a Ferry task under name (default module.qualname);
    use as @ferry.task, @ferry.task() or @ferry.task(name="x").
    Returns fn itself, with fn.__ferry_name__ set."""
    if isinstance(fn, str) and name is None:
        fn, name = None, fn  # @ferry.task("x")
    if fn is None:
        return lambda f: _register(f, name)
    return _register(fn, name)
