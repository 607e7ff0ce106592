"""Python tasks for test_client_pytasks.py (the workers import this
module; the tests import it too, to pass its functions)."""

import ferry


@ferry.task
def square(x):
    return x * x


@ferry.task
def add(a, b):
    return a + b


@ferry.task
def boom(msg):
    raise ValueError(msg)


class Custom(Exception):
    pass


@ferry.task
def custom():
    raise Custom("mine")


@ferry.task
def total(arr):
    return float(arr.sum())


@ferry.task
def nbytes(view):
    return len(view)


@ferry.task
def kinds(*args):
    return [type(a).__name__ for a in args]
