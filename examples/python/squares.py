#!/usr/bin/python3
"""squares.py ADDRESS [N] - the quick start's Python client.

Squares 0..N-1 with the Python task quickstart_tasks.square on the
cluster at ADDRESS, checks every result, calls the C task `add`, and sums
a numpy array that the workers read by path (one shared mapping per
host, never a copy sent over the wire).  Prints one summary line per
step."""

import os
import sys
import tempfile
import time

import numpy as np

import ferry


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: squares.py ADDRESS [N]")
    address = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100000
    with ferry.Client(address) as client:
        t = time.perf_counter()
        results = client.gather(client.map("quickstart_tasks.square",
                                           range(n)))
        dt = time.perf_counter() - t
        wrong = sum(1 for i, r in enumerate(results) if r != i * i)
        print("%d Python tasks, %.2f s, %.0f tasks/s, %d wrong" %
              (n, dt, n / dt, wrong))

        print("add(2, 3) in C: %s" % client.submit("add", 2, 3).result())

        # the cluster's object root is /tmp (config/local.yaml)
        with tempfile.TemporaryDirectory(dir="/tmp",
                                         prefix="ferry-squares.") as d:
            path = os.path.join(d, "array.npy")
            arr = np.arange(4_000_000, dtype=np.float64)
            np.save(path, arr)
            ref = ferry.object(path)
            step = len(arr) // 8
            parts = client.gather([
                client.submit("quickstart_tasks.slice_sum", ref, lo,
                              lo + step)
                for lo in range(0, len(arr), step)])
            total = sum(parts)
            print("sum of a %d MiB array by path in 8 tasks: %.0f (%s)" %
                  (arr.nbytes >> 20, total,
                   "right" if total == float(arr.sum()) else "WRONG"))
    return 1 if wrong or total != float(arr.sum()) else 0


if __name__ == "__main__":
    sys.exit(main())
