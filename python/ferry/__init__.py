"""Ferry from Python: a client for a Ferry cluster, Python task functions
run by the workers' embedded interpreters, and a local cluster in one line.

    import ferry

    with ferry.LocalCluster(workers=2, python_modules=["mytasks"]) as cluster:
        with ferry.Client(cluster.address) as client:
            futures = client.map("mytasks.square", range(100))
            print(client.gather(futures))

See docs/python.md.  Names are imported on first use (PEP 562), so a
worker that imports `ferry` for the `@ferry.task` decorator does not load
the client.
"""

import importlib

__all__ = [
    "task",
    "Client", "Future", "Executor", "as_completed", "wait", "progress",
    "object", "ObjectRef",
    "LocalCluster", "ClusterError",
    "FerryError", "TaskError", "TaskCrashed", "TaskDead", "DependencyError",
    "ConnectionLost",
]

# name -> submodule that defines it
_where = {
    "task": "_task",
    "Client": "client", "Future": "client", "as_completed": "client",
    "wait": "client", "gather": "client", "TimeoutError": "errors",
    "Executor": "executor",
    "progress": "progress",
    "object": "_objects", "ObjectRef": "_objects",
    "LocalCluster": "cluster", "ClusterError": "cluster",
    "FerryError": "errors", "TaskError": "errors", "TaskCrashed": "errors",
    "TaskDead": "errors", "DependencyError": "errors",
    "ConnectionLost": "errors",
}


def __getattr__(name):
    mod = _where.get(name)
    if mod is None:
        raise AttributeError("module 'ferry' has no attribute %r" % name)
    value = getattr(importlib.import_module("." + mod, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
