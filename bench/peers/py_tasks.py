"""py_tasks.py - the Python tasks Ferry's workers run in the Python-side
benchmarks (py_heavy.py, py_small.py, py_crash.py).

A module of @ferry.task functions: the benchmarks start their
ferry.LocalCluster with python_modules=["py_tasks"] and this directory on
python_path, so that every worker process imports it when it starts and
registers each function under its default name, "py_tasks.<name>".  The
client imports it too, to pass the functions themselves to submit and map.
numpy is imported at the top, so that the workers have it loaded before
any clock starts.
"""

import ctypes
import time

import ferry
import numpy as np


@ferry.task
def noop(x=None):
    """Returns its argument (or None when called with no arguments, as
    `ferry bench latency` calls its task)."""
    return x


@ferry.task
def sum_slice(arr, lo, hi):
    """The sum of arr[lo:hi] as a float.  arr must arrive as what an object
    reference to a .npy file gives a Python task: a read-only
    numpy.ndarray over the worker's mapping of the file (not a copy)."""
    if not isinstance(arr, np.ndarray):
        raise TypeError("expected a numpy.ndarray, got %s" %
                        type(arr).__name__)
    if arr.flags.writeable:
        raise ValueError("the array is writeable: a copy, not the "
                         "read-only mapping")
    return float(arr[lo:hi].sum())


@ferry.task
def square(x):
    """An ordinary task of the crash benchmark: 1 ms of sleep, then x * x
    (the sleep keeps several tasks in flight when one crashes)."""
    time.sleep(0.001)
    return x * x


@ferry.task
def segfault(_x=None):
    """Reads address 0: SIGSEGV in the worker process."""
    return ctypes.string_at(0)
