#!/usr/bin/python3
"""py_crash.py - one Python task that crashes its worker process among
ordinary ones: what Ferry, a process pool and Dask make of it.

Run with Debian's interpreter (/usr/bin/python3), with Ferry's package on
the path (PYTHONPATH=build/python or --ferry-python build/python):

    /usr/bin/python3 bench/peers/py_crash.py [--tasks 1000] [--runs 3]
        [--workers 2] [--systems ferry,process_pool,dask] [--list]

T ordinary tasks (default 1,000; `square(x)`: 1 ms of sleep, then x * x)
and one task that segfaults (`ctypes.string_at(0)`), submitted in this
order: the first T/2 ordinary ones, the crashing one, the other T/2; then
every outcome is awaited (with a time limit).  2 worker processes.

  ferry         ferry.LocalCluster(workers=2, python_modules=["py_tasks"]):
                Client.map(py_tasks.square, ...), Client.submit(
                py_tasks.segfault), Client.map(...); Ferry's defaults
                (a crash is retried, 3 retries; quarantine after 3 kills)
  process_pool  ProcessPoolExecutor(2) (fork, the default on Linux):
                T + 1 x submit
  dask          dask.distributed LocalCluster(n_workers=2,
                threads_per_worker=1, processes=True): client.map,
                client.submit, client.map; Dask's defaults (a nanny
                restarts a dead worker; a task is KilledWorker once
                `allowed-failures` = 3 workers died running it)

Each run starts a fresh cluster or pool (not timed).  Reported per run
("bench": "py_crash"):
  seconds          first submit to the last outcome (result or error)
  ok               ordinary tasks that returned the right result
  failed           ordinary tasks that ended with an error (lost)
  crash_error      the crashing task's exception: its type and message
  worker_deaths    worker processes that died (Ferry: the growth of the
                   scheduler's `kills` counter; Dask: the scheduler's
                   remove-worker events; the pool: its processes killed
                   by SIGSEGV, not counting those the broken pool stops)

and, with --runs above 1, a median line per system.  Every system runs in
its own child process, in its own session, with a time limit; what it
started is stopped by pid.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import py_common  # noqa: E402
from common import (BenchFailure, DaskPeer, check_ranges,  # noqa: E402
                    check_systems, emit, failure, info_suffix,
                    interruptible, median, missing_module, remaining, say)
from py_common import ferry_missing  # noqa: E402

common.PROG = "py_crash.py"
VERSION_MODULES = ("ferry", "dask", "distributed")


def square(x):
    """The peers' ordinary task (as py_tasks.square)."""
    time.sleep(0.001)
    return x * x


def segfault(_x=None):
    """Reads address 0: SIGSEGV in the worker process."""
    import ctypes
    return ctypes.string_at(0)


def outcome_counts(pairs):
    """pairs: (x, future-like outcome getter) -> (ok, failed, {error
    type: count})."""
    ok = failed = 0
    kinds = {}
    for x, (value, err) in pairs:
        if err is None and value == x * x:
            ok += 1
        else:
            failed += 1
            k = type(err).__name__ if err is not None else "wrong result"
            kinds[k] = kinds.get(k, 0) + 1
    return ok, failed, kinds


def error_text(e):
    if e is None:
        return None
    s = "%s: %s" % (type(e).__name__, e)
    s = " ".join(s.split())
    return s if len(s) <= 300 else s[:297] + "..."


# --------------------------------------------------------------------------
# the systems: start(deadline) (not timed), run(deadline) -> dict, stop()


class Ferry(py_common.FerryPeer):
    modules = ()

    def __init__(self, args):
        self.args = args
        self.cluster = self.client = None

    @staticmethod
    def missing():
        return ferry_missing()

    def start(self, deadline):
        import py_tasks
        self.tasks = py_tasks
        self.cluster = py_common.local_cluster(self.args.workers)
        self.client = self.cluster.client()
        self.client.gather(self.client.map(py_tasks.noop, range(100)))
        self.ferry_bin = py_common.ferry_program()
        self.kills0 = self.status().get("kills", 0)
        self.info = "ferry %s" % py_common._version("ferry")

    def status(self):
        p = subprocess.run([self.ferry_bin, "status", "-c",
                            self.cluster.address, "--json"],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=30)
        if p.returncode != 0:
            return {}
        try:
            return json.loads(p.stdout)
        except ValueError:
            return {}

    def run(self, deadline):
        import concurrent.futures as cf
        c, t, n = self.client, self.tasks, self.args.tasks
        half = n // 2
        t0 = time.perf_counter()
        first = c.map(t.square, range(half))
        crash = c.submit(t.segfault, 0)
        rest = c.map(t.square, range(half, n))
        futs = first + rest
        cf.wait(futs + [crash], timeout=remaining(deadline))
        secs = time.perf_counter() - t0
        pairs = []
        for x, f in enumerate(futs):
            if not f.done():
                pairs.append((x, (None, BenchTimeoutError())))
                continue
            e = f.exception(timeout=0)
            pairs.append((x, (None if e else f.result(), e)))
        ce = crash.exception(timeout=0) if crash.done() else None
        st = self.status()
        return {"seconds": secs, "pairs": pairs,
                "crash_done": crash.done(), "crash_error": ce,
                "worker_deaths": st.get("kills", 0) - self.kills0
                if st else None,
                "dead": st.get("dead")}


class BenchTimeoutError(Exception):
    """An outcome that did not come within the time limit."""


class ProcessPool:
    modules = ()

    def __init__(self, args):
        self.args = args
        self.ex = None

    def start(self, deadline):
        import concurrent.futures as cf
        import multiprocessing as mp
        self.cf = cf
        self.ex = cf.ProcessPoolExecutor(max_workers=self.args.workers)
        cf.wait([self.ex.submit(square, i) for i in range(20)],
                timeout=remaining(deadline))
        self.pids = sorted(self.ex._processes)
        self.info = "start method %s" % mp.get_start_method()

    def run(self, deadline):
        cf, ex, n = self.cf, self.ex, self.args.tasks
        half = n // 2
        procs = dict(ex._processes)
        t0 = time.perf_counter()
        futs = [ex.submit(square, x) for x in range(half)]
        try:
            crash = ex.submit(segfault, 0)
        except Exception as e:  # broken already
            crash = e
        for x in range(half, n):
            try:
                futs.append(ex.submit(square, x))
            except Exception as e:  # BrokenProcessPool: not even queued
                futs.append(e)
        waitable = [f for f in futs + [crash] if isinstance(f, cf.Future)]
        cf.wait(waitable, timeout=remaining(deadline))
        secs = time.perf_counter() - t0
        pairs = []
        for x, f in enumerate(futs):
            if not isinstance(f, cf.Future):
                pairs.append((x, (None, f)))
            elif not f.done():
                pairs.append((x, (None, BenchTimeoutError())))
            else:
                e = f.exception(timeout=0)
                pairs.append((x, (None if e else f.result(), e)))
        if isinstance(crash, cf.Future):
            ce = crash.exception(timeout=0) if crash.done() else None
        else:
            ce = crash
        # the manager thread of a broken pool joins its processes: wait
        # for it (bounded), or an exit status may be read as it reaps
        mgr = getattr(ex, "_executor_manager_thread", None)
        if mgr is not None:
            mgr.join(timeout=10)
        # killed by SIGSEGV: the pool terminates the others itself
        deaths = sum(1 for p in procs.values()
                     if p.exitcode == -signal.SIGSEGV)
        return {"seconds": secs, "pairs": pairs,
                "crash_done": not isinstance(crash, cf.Future) or
                crash.done(), "crash_error": ce, "worker_deaths": deaths}

    def stop(self):
        if self.ex is not None:
            self.ex.shutdown(wait=True, cancel_futures=True)
            self.ex = None


class Dask(DaskPeer):
    modules = ("dask", "distributed")

    def __init__(self, args):
        self.args = args

    def start(self, deadline):
        self.start_cluster(self.args.workers, deadline)
        self.client.gather(self.client.map(square, range(20)))

    def run(self, deadline):
        c, n = self.client, self.args.tasks
        half = n // 2
        wall0 = time.time()
        t0 = time.perf_counter()
        first = c.map(square, range(half))
        crash = c.submit(segfault, 0)
        rest = c.map(square, range(half, n))
        futs = first + rest
        try:
            self.distributed.wait(futs + [crash],
                                  timeout=remaining(deadline))
        except Exception as e:  # a timeout: counted below as not done
            say("dask: waiting: %s: %s" % (type(e).__name__, e))
        secs = time.perf_counter() - t0
        pairs = []
        for x, f in enumerate(futs):
            if not f.done():
                pairs.append((x, (None, BenchTimeoutError())))
            elif f.status == "finished":
                pairs.append((x, (f.result(), None)))
            else:
                pairs.append((x, (None, f.exception())))
        ce = crash.exception() if crash.status == "error" else None
        # the workers the scheduler removed during the run (a dead
        # worker's connection closes; its nanny starts a new one)
        deaths = sum(1 for ts, msg in c.get_events("all")
                     if ts >= wall0 and isinstance(msg, dict) and
                     msg.get("action") == "remove-worker")
        return {"seconds": secs, "pairs": pairs, "crash_done": crash.done(),
                "crash_error": ce, "worker_deaths": deaths}


SYSTEMS = {
    "ferry": (Ferry, "ferry.LocalCluster(workers=W, python_modules="
              "[py_tasks]): map(square), submit(segfault), map(square)"),
    "process_pool": (ProcessPool, "ProcessPoolExecutor(W) (fork): T + 1 "
                     "x submit"),
    "dask": (Dask, "dask LocalCluster(W processes): map(square), "
             "submit(segfault), map(square)"),
}


def system_missing(name):
    cls = SYSTEMS[name][0]
    why = missing_module(cls.modules)
    if why is None and hasattr(cls, "missing"):
        why = cls.missing()
    return why


# --------------------------------------------------------------------------
# child


def run_child(args):
    name = args.child
    deadline = time.monotonic() + args.seconds - common.CLEANUP_RESERVE
    why = system_missing(name)
    if why is not None:
        say("%s: skipped: %s" % (name, why))
        emit({"bench": "py_crash", "system": name, "skipped": why})
        return 0
    rc = 0
    vals = {"seconds": [], "ok": [], "failed": [], "worker_deaths": []}
    try:
        for r in range(1, args.runs + 1):
            peer = SYSTEMS[name][0](args)
            try:
                t = time.monotonic()
                peer.start(deadline)
                say("%s run %d: %d workers ready in %.1f s%s" % (
                    name, r, args.workers, time.monotonic() - t,
                    info_suffix(peer)))
                m = peer.run(deadline)
                ok, failed, kinds = outcome_counts(m["pairs"])
                if ok + failed != args.tasks:
                    raise BenchFailure("%d outcomes for %d tasks" %
                                       (ok + failed, args.tasks))
                out = {"bench": "py_crash", "system": name, "run": r,
                       "tasks": args.tasks, "workers": args.workers,
                       "seconds": round(m["seconds"], 4), "ok": ok,
                       "failed": failed, "failed_by_error": kinds,
                       "crash_done": m["crash_done"],
                       "crash_error": error_text(m["crash_error"]),
                       "worker_deaths": m["worker_deaths"]}
                if "dead" in m:
                    out["quarantined"] = m["dead"]
                emit(out)
                for k in vals:
                    if out[k] is not None:
                        vals[k].append(out[k])
                say("%s run %d: %.2f s, %d of %d ordinary tasks ok, %d "
                    "failed %s; the crashing task: %s; %s worker deaths" % (
                        name, r, m["seconds"], ok, args.tasks, failed,
                        kinds or "", out["crash_error"] or
                        ("no error" if m["crash_done"] else "not done"),
                        m["worker_deaths"]))
            except Exception as e:  # ours or the system's
                _, why = failure(e, r)
                say("%s: %s; no more runs of it" % (name, why))
                emit({"bench": "py_crash", "system": name, "skipped": why})
                rc = 1
                break
            finally:
                m = None
                peer.stop()
                py_common.leftovers(name)
    finally:
        py_common.child_cleanup(name)
    if args.runs > 1 and len(vals["seconds"]) == args.runs:
        s = {"bench": "py_crash", "system": name, "summary": "median",
             "runs": args.runs}
        for k, v in vals.items():
            if len(v) == args.runs:
                s[k] = median(v)
        emit(s)
    return rc


def run_parent(args):
    start = time.monotonic()
    common.catch_sigterm()
    py_common.become_subreaper()
    py_common.emit_versions("py_crash", VERSION_MODULES)
    return py_common.run_systems(
        args, start, __file__,
        ["--runs", str(args.runs), "--tasks", str(args.tasks),
         "--workers", str(args.workers)] +
        py_common.child_args_common(args),
        lambda name: ["py_crash"])


def main():
    ap = argparse.ArgumentParser(
        description="One Python task that segfaults among ordinary ones: "
        "Ferry's Python side, a process pool and Dask.  One JSON object "
        "per line on stdout.")
    ap.add_argument("-n", "--tasks", type=int, default=1000,
                    help="ordinary tasks (default 1000)")
    py_common.add_common_args(ap, SYSTEMS, workers=2, timeout=300,
                              budget=900)
    args = ap.parse_args()
    py_common.use_ferry_python(args.ferry_python)
    if args.list:
        for name, (_, what) in SYSTEMS.items():
            why = system_missing(name)
            print("%-13s %s" % (name, what))
            if why:
                print("%-13s SKIPPED here: %s" % ("", why))
        return 0
    check_ranges(ap, (("--tasks", args.tasks, 2, 10**6),
                      ("--workers", args.workers, 1, 64),
                      ("--runs", args.runs, 1, 100)))
    if args.child is not None:
        if args.child not in SYSTEMS:
            ap.error("unknown system '%s'" % args.child)
        py_common.child_setup()
        return interruptible(run_child, args)
    check_systems(ap, args, SYSTEMS)
    return interruptible(run_parent, args)


if __name__ == "__main__":
    sys.exit(main())
