#!/usr/bin/python3
"""py_small.py - small Python tasks: Ferry's Python client and workers
next to a process pool and Dask, and next to Ferry's own C client.

Run with Debian's interpreter (/usr/bin/python3), with Ferry's package on
the path (PYTHONPATH=build/python or --ferry-python build/python):

    /usr/bin/python3 bench/peers/py_small.py [--tasks 200000]
        [--dask-tasks 5000] [--round-trips 2000] [--runs 3]
        [--systems ferry,process_pool,dask] [--list]

Two measurements, 2 worker processes (--workers), a task that returns its
argument (`noop(x)`, the results checked):

  py_throughput  N tasks mapped, then every result gathered; tasks/s from
                 the first submit to the last result
  py_latency     R single tasks one after another, each one's result
                 awaited before the next is submitted, after 50 warm-up
                 round trips; median (p50) and 99th percentile in us

The systems (rows of the output):

  ferry                   ferry.LocalCluster(workers=2,
                          python_modules=["py_tasks"]); throughput:
                          Client.map(py_tasks.noop, range(N)) + gather;
                          latency: Client.submit(py_tasks.noop, i).result()
  ferry_py_client_c_task  latency only: the same Python client and
                          cluster, the C task `noop` of ferry_examples
  ferry_c_client_c_task   latency only: `ferry bench latency -c ADDRESS`,
                          the C client against the same cluster, C `noop`
  ferry_c_client_py_task  latency only: the same with --fn py_tasks.noop
  process_pool_chunksize1 ProcessPoolExecutor(2) (fork, the default on
                          Linux): map(noop, range(N)) (chunksize 1, map's
                          default); latency: submit(noop, i).result()
  process_pool_chunksize_tuned
                          the same pool, map(chunksize=N / (20 x workers))
                          (5,000 for the defaults: the fastest of 100 to
                          100,000 tried on the reference machine)
  dask                    dask.distributed LocalCluster(n_workers=2,
                          threads_per_worker=1, processes=True):
                          client.map(noop, range(M)) + gather with M =
                          --dask-tasks (default 5,000: Dask runs some 550
                          tasks/s, N would take minutes per run); latency:
                          client.submit(noop, i).result(), --dask-round-
                          trips (default 500)

A cluster or pool is started (not timed) once per system and warmed up,
then every run of both measurements uses it.  Output: JSON lines, e.g.

  {"bench":"py_throughput","system":"ferry","tasks":200000,"workers":2,
   "run":1,"seconds":1.9,"tasks_per_s":105263}
  {"bench":"py_latency","system":"ferry","n":2000,"workers":2,"run":1,
   "p50_us":410,"p99_us":700}

and, with --runs above 1, a median line per system and measurement; a
system that cannot be measured gets a line with "skipped" and why.  Every
system runs in its own child process, in its own session, with a time
limit; what it started is stopped by pid.
"""

import argparse
import gc
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import py_common  # noqa: E402
from common import (BenchFailure, DaskPeer, ExecutorPeer,  # noqa: E402
                    check_ranges, check_systems, emit, emit_skipped,
                    failure, info_suffix, interruptible, median,
                    missing_module, remaining, say)
from py_common import ferry_missing  # noqa: E402

common.PROG = "py_small.py"
WARMUP_ROUND_TRIPS = 50  # as in ferry bench latency
ROUND_TRIP_TIMEOUT = 30.0
VERSION_MODULES = ("ferry", "dask", "distributed")


def noop(x=None):
    """The peers' task: returns its argument."""
    return x


def percentiles(us):
    s = sorted(us)
    n = len(s)
    return s[n // 2], s[min((n * 99) // 100, n - 1)]


def check(results, n):
    results = list(results)
    if results != list(range(n)):
        bad = (len(results) if len(results) != n else
               sum(1 for i, r in enumerate(results) if r != i))
        raise BenchFailure("%d of %d results wrong (or missing)" % (bad, n))


def tuned_chunksize(n, workers):
    return max(1, n // (20 * workers))


# --------------------------------------------------------------------------
# the systems.  Each has start(deadline), stop(), rows: {row name:
# (throughput(n, deadline) -> results, or None; round_trip(i, deadline) ->
# result, or None; an int: round trips measured elsewhere)}


class Ferry(py_common.FerryPeer):
    modules = ()

    def __init__(self, args):
        self.args = args
        self.workers = args.workers
        self.cluster = self.client = None

    @staticmethod
    def missing():
        return ferry_missing()

    def start(self, deadline):
        import py_tasks
        self.tasks = py_tasks
        self.cluster = py_common.local_cluster(self.workers)
        self.client = self.cluster.client()
        check(self.client.gather(self.client.map(py_tasks.noop,
                                                 range(1000))), 1000)
        self.ferry_bin = py_common.ferry_program()
        self.info = "ferry %s, LocalCluster at %s" % (
            py_common._version("ferry"), self.cluster.address)

    def rows(self):
        return {
            "ferry": (self.throughput, self.round_trip_py),
            "ferry_py_client_c_task": (None, self.round_trip_c),
            "ferry_c_client_c_task": (None, lambda n, d: self.c_client(
                "noop", n, d)),
            "ferry_c_client_py_task": (None, lambda n, d: self.c_client(
                "py_tasks.noop", n, d)),
        }

    def throughput(self, n, deadline):
        futs = self.client.map(self.tasks.noop, range(n))
        return self.client.gather(futs)

    def round_trip_py(self, i, deadline):
        return self.client.submit(self.tasks.noop, i).result(
            timeout=min(ROUND_TRIP_TIMEOUT, remaining(deadline)))

    def round_trip_c(self, i, deadline):
        # the C noop returns nothing whatever its arguments
        self.client.submit("noop", i).result(
            timeout=min(ROUND_TRIP_TIMEOUT, remaining(deadline)))
        return i

    def c_client(self, fn, n, deadline):
        """(p50, p99) of `ferry bench latency -c ADDRESS --fn fn -n n`."""
        cmd = [self.ferry_bin, "bench", "latency", "-c",
               self.cluster.address, "--fn", fn, "-n", str(n), "--json"]
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=remaining(deadline))
        if p.returncode != 0:
            raise BenchFailure("%s: exit %d: %s" % (
                " ".join(cmd), p.returncode,
                p.stderr.decode("utf-8", "replace").strip()[-500:]))
        for line in p.stdout.decode().splitlines():
            o = json.loads(line)
            if o.get("bench") == "latency" and "p50_us" in o:
                return o["p50_us"], o["p99_us"]
        raise BenchFailure("no latency line from %s" % " ".join(cmd))


class ProcessPool(ExecutorPeer):
    modules = ()

    def __init__(self, args):
        self.workers = args.workers
        self.chunk = tuned_chunksize(args.tasks, args.workers)

    def start(self, deadline):
        import concurrent.futures as cf
        self.cf = cf
        self.ex = cf.ProcessPoolExecutor(max_workers=self.workers)
        self.wait([self.ex.submit(noop, i) for i in range(4 * self.workers)],
                  deadline)
        import multiprocessing as mp
        self.info = "start method %s, tuned chunksize %d" % (
            mp.get_start_method(), self.chunk)

    def rows(self):
        return {
            "process_pool_chunksize1": (
                lambda n, d: self.map(n, 1, d), self.round_trip),
            "process_pool_chunksize_tuned": (
                lambda n, d: self.map(n, self.chunk, d), None),
        }

    def map(self, n, chunk, deadline):
        return list(self.ex.map(noop, range(n), chunksize=chunk,
                                timeout=remaining(deadline)))

    def round_trip(self, i, deadline):
        return self.ex.submit(noop, i).result(
            timeout=min(ROUND_TRIP_TIMEOUT, remaining(deadline)))


class Dask(DaskPeer):
    modules = ("dask", "distributed")

    def __init__(self, args):
        self.workers = args.workers

    def start(self, deadline):
        self.start_cluster(self.workers, deadline)
        check(self.client.gather(self.client.map(noop, range(200))), 200)

    def rows(self):
        return {"dask": (self.throughput, self.round_trip)}

    def throughput(self, n, deadline):
        futs = self.client.map(noop, range(n))
        self.distributed.wait(futs, timeout=remaining(deadline))
        return self.client.gather(futs)

    def round_trip(self, i, deadline):
        return self.client.submit(noop, i, pure=False).result(
            timeout=min(ROUND_TRIP_TIMEOUT, remaining(deadline)))


SYSTEMS = {"ferry": Ferry, "process_pool": ProcessPool, "dask": Dask}
ROWS = {
    "ferry": ("ferry", "ferry_py_client_c_task", "ferry_c_client_c_task",
              "ferry_c_client_py_task"),
    "process_pool": ("process_pool_chunksize1",
                     "process_pool_chunksize_tuned"),
    "dask": ("dask",),
}
BENCHES = {  # row -> the measurements it has
    "ferry": ("py_throughput", "py_latency"),
    "ferry_py_client_c_task": ("py_latency",),
    "ferry_c_client_c_task": ("py_latency",),
    "ferry_c_client_py_task": ("py_latency",),
    "process_pool_chunksize1": ("py_throughput", "py_latency"),
    "process_pool_chunksize_tuned": ("py_throughput",),
    "dask": ("py_throughput", "py_latency"),
}
DESCRIBE = {
    "ferry": "ferry.LocalCluster(workers=W, python_modules=[py_tasks]): "
    "Client.map(py_tasks.noop, range(N)) + gather; "
    "Client.submit(py_tasks.noop, i).result()",
    "ferry_py_client_c_task": "latency: the Python client, the C task "
    "noop (ferry_examples), the same cluster",
    "ferry_c_client_c_task": "latency: ferry bench latency -c ADDRESS "
    "(the C client, C noop), the same cluster",
    "ferry_c_client_py_task": "latency: ferry bench latency -c ADDRESS "
    "--fn py_tasks.noop, the same cluster",
    "process_pool_chunksize1": "ProcessPoolExecutor(W) (fork): map(noop, "
    "range(N)), chunksize 1; submit(noop, i).result()",
    "process_pool_chunksize_tuned": "ProcessPoolExecutor(W) (fork): "
    "map(noop, range(N), chunksize=N/(20 W))",
    "dask": "dask LocalCluster(W processes): client.map(noop, "
    "range(--dask-tasks)) + gather; client.submit(noop, i).result() "
    "(--dask-round-trips)",
}


def system_missing(name):
    cls = SYSTEMS[name]
    why = missing_module(cls.modules)
    if why is None and hasattr(cls, "missing"):
        why = cls.missing()
    return why


def row_benches(args, row):
    return [b for b in BENCHES[row] if b in args.bench]


# --------------------------------------------------------------------------
# child: one system, all its rows


def run_child(args):
    name = args.child
    deadline = time.monotonic() + args.seconds - common.CLEANUP_RESERVE
    why = system_missing(name)
    if why is not None:
        for row in ROWS[name]:
            say("%s: skipped: %s" % (row, why))
            emit_skipped(row, row_benches(args, row), why)
        return 0
    peer = SYSTEMS[name](args)
    rc = 0
    try:
        say("%s: starting %d worker processes" % (name, args.workers))
        t0 = time.monotonic()
        peer.start(deadline)
        say("%s: ready in %.1f s%s" % (name, time.monotonic() - t0,
                                        info_suffix(peer)))
        rc = measure(args, name, peer, deadline)
    except Exception as e:  # ours or the system's
        why = "could not start: %s: %s" % (type(e).__name__, e)
        say("%s: %s" % (name, why))
        for row in ROWS[name]:
            emit_skipped(row, row_benches(args, row), why)
        rc = 1
    finally:
        peer.stop()
        py_common.child_cleanup(name)
    return rc


def measure(args, name, peer, deadline):
    rows = peer.rows()
    n_tasks = args.dask_tasks if name == "dask" else args.tasks
    n_trips = args.dask_round_trips if name == "dask" else args.round_trips
    vals = {}  # (row, bench) -> [values]
    dead = set()  # (row, bench) that failed
    rc = 0
    for r in range(1, args.runs + 1):
        for row, (thr, rtt) in rows.items():
            for b in row_benches(args, row):
                if (row, b) in dead:
                    continue
                try:
                    if b == "py_throughput":
                        v = run_throughput(row, peer, thr, n_tasks, r,
                                           deadline)
                    else:
                        v = run_latency(row, peer, rtt, n_trips, r,
                                        deadline)
                    vals.setdefault((row, b), []).append(v)
                except Exception as e:  # ours or the system's
                    kind, why = failure(e, r)
                    say("%s %s: %s; no more runs of it" % (row, b, why))
                    emit({"bench": b, "system": row, "skipped": why})
                    dead.add((row, b))
                    rc = 1
                    if kind == "out of time":
                        return rc
    if args.runs > 1:
        for (row, b), v in vals.items():
            if len(v) == args.runs:
                key = "tasks_per_s" if b == "py_throughput" else "p50_us"
                emit({"bench": b, "system": row, "summary": "median",
                      "runs": args.runs, key: round(median(v))})
    return rc


def run_throughput(row, peer, thr, n, r, deadline):
    gc.collect()
    t = time.perf_counter()
    res = thr(n, deadline)
    secs = time.perf_counter() - t
    check(res, n)
    res = None
    tps = n / secs
    emit({"bench": "py_throughput", "system": row, "tasks": n,
          "workers": peer.workers, "run": r, "seconds": round(secs, 4),
          "tasks_per_s": round(tps)})
    say("%s throughput run %d: %d tasks in %.2f s: %.0f tasks/s" % (
        row, r, n, secs, tps))
    gc.collect()
    return tps


def run_latency(row, peer, rtt, n, r, deadline):
    got = rtt(n, deadline) if row.startswith("ferry_c_client") else None
    if got is not None:
        p50, p99 = got
    else:
        for i in range(WARMUP_ROUND_TRIPS):
            if rtt(i, deadline) != i:
                raise BenchFailure("warm-up round trip: wrong result")
        us = []
        for i in range(n):
            t = time.perf_counter_ns()
            v = rtt(i, deadline)
            us.append((time.perf_counter_ns() - t) // 1000)
            if v != i:
                raise BenchFailure("result %r, not %r" % (v, i))
        p50, p99 = percentiles(us)
    emit({"bench": "py_latency", "system": row, "n": n,
          "workers": peer.workers, "run": r, "p50_us": p50, "p99_us": p99})
    say("%s latency run %d: %d round trips, p50 %d us, p99 %d us" % (
        row, r, n, p50, p99))
    return p50


# --------------------------------------------------------------------------
# parent


def run_parent(args):
    start = time.monotonic()
    common.catch_sigterm()
    py_common.become_subreaper()
    py_common.emit_versions("py_small", VERSION_MODULES)
    return py_common.run_systems(
        args, start, __file__,
        ["--runs", str(args.runs), "--tasks", str(args.tasks),
         "--dask-tasks", str(args.dask_tasks),
         "--round-trips", str(args.round_trips),
         "--dask-round-trips", str(args.dask_round_trips),
         "--workers", str(args.workers), "--bench", ",".join(args.bench)] +
        py_common.child_args_common(args),
        lambda name: ["py_group"])  # a line for all the system's rows


def main():
    ap = argparse.ArgumentParser(
        description="Small Python tasks: throughput and round trip of "
        "Ferry's Python side, a process pool, Dask and Ferry's C client.  "
        "One JSON object per line on stdout.")
    ap.add_argument("-n", "--tasks", type=int, default=200000,
                    help="throughput: tasks per run (default 200000)")
    ap.add_argument("--dask-tasks", type=int, default=5000,
                    help="throughput: Dask's tasks per run (default 5000)")
    ap.add_argument("--round-trips", type=int, default=2000,
                    help="latency: round trips per run (default 2000)")
    ap.add_argument("--dask-round-trips", type=int, default=500,
                    help="latency: Dask's round trips per run (default "
                    "500)")
    ap.add_argument("--bench", default="throughput,latency",
                    help="throughput, latency or both (default both; "
                    "--runs counts per measurement)")
    py_common.add_common_args(ap, SYSTEMS, workers=2, timeout=600,
                              budget=1200)
    args = ap.parse_args()
    py_common.use_ferry_python(args.ferry_python)

    if args.list:
        for name, rows in ROWS.items():
            why = system_missing(name)
            for row in rows:
                print("%-29s %s" % (row, DESCRIBE[row]))
                if why:
                    print("%-29s SKIPPED here: %s" % ("", why))
        return 0
    check_ranges(ap, (("--tasks", args.tasks, 1, 10**7),
                      ("--dask-tasks", args.dask_tasks, 1, 10**7),
                      ("--round-trips", args.round_trips, 1, 10**6),
                      ("--dask-round-trips", args.dask_round_trips, 1,
                       10**6),
                      ("--workers", args.workers, 1, 256),
                      ("--runs", args.runs, 1, 100)))
    bench = []
    for b in (x for x in args.bench.split(",") if x):
        if b.startswith("py_"):
            b = b[3:]
        if b not in ("throughput", "latency"):
            ap.error("unknown measurement '%s' (throughput or latency)" % b)
        bench.append("py_" + b)
    args.bench = bench
    if args.child is not None:
        if args.child not in SYSTEMS:
            ap.error("unknown system '%s'" % args.child)
        py_common.child_setup()
        return interruptible(run_child, args)
    check_systems(ap, args, SYSTEMS)
    return interruptible(run_parent, args)


if __name__ == "__main__":
    sys.exit(main())
