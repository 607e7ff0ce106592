"""Python tasks for bench/python_small.py --python: the same no-op the C
task library ferry_examples has, as a Python function."""

import ferry


@ferry.task
def noop(*args):
    return None


@ferry.task
def square(x):
    return x * x
