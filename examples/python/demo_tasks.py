"""Task functions of the notebook ferry_demo.ipynb.

Ferry's workers import this module (LocalCluster(python_modules=
["demo_tasks"])) and register every function marked @ferry.task under
the name "demo_tasks.<function>".  A notebook cannot hold task functions
itself -- workers are fresh processes that never see the notebook's
__main__ -- so they live in a module file next to it.  Edit this file,
run `cluster.restart_workers()`, and the next tasks run the new code.
"""

import os

import ferry


@ferry.task
def slice_sum(data, start, stop):
    """The sum of data[start:stop].

    `data` arrives as what the client passed with ferry.object(path): for
    a .npy file, a read-only numpy array over the worker's shared mapping
    of the file -- no copy, and one mapping for every task of the process
    that reads it."""
    return int(data[start:stop].sum())


@ferry.task
def where(x):
    """(x, the pid of the worker process that ran this)."""
    return [x, os.getpid()]


@ferry.task
def crash():
    """Kill this worker process, as a bug in native code would (SIGABRT).
    Only this task fails (TaskCrashed, or TaskDead once it has killed
    quarantine_after processes); the supervisor starts a new process and
    every other task goes on."""
    os.abort()
