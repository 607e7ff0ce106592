"""Python task functions of the default cluster (config/local.yaml names
this module in its worker group; scripts/quickstart.sh and
examples/python/squares.py call them).

A worker process imports this file when it starts and registers each
function marked @ferry.task as "quickstart_tasks.<function>"."""

import ferry


@ferry.task
def square(x):
    """x * x."""
    return x * x


@ferry.task
def slice_sum(data, start, stop):
    """The sum of data[start:stop]: data is a read-only numpy array over
    the worker's shared mapping of a .npy file passed by path."""
    return float(data[start:stop].sum())
