#!/usr/bin/python3
"""py_heavy.py - a large numpy array shared by Python tasks: Ferry's
Python side next to its Python peers.

Run with Debian's interpreter (/usr/bin/python3), with Ferry's package on
the path (PYTHONPATH=build/python or --ferry-python build/python):

    /usr/bin/python3 bench/peers/py_heavy.py [--size 1GiB] [--runs 3]
        [--tasks 32] [--workers 4] [--systems a,b] [--list]

One .npy file of SIZE bytes of float64 (default 1 GiB; element i is
i mod 1000, so that every partial sum is an integer below 2^53 and exact in
any order), W worker processes (default 4), T tasks (default 32), task i
summing slice i of the whole array (T equal slices, the last one taking
the rest).  The total of the tasks' sums is checked against numpy's own
sum of the whole array.

The systems (each line of --list says what it does and what its clock
includes):

  ferry                     ferry.LocalCluster(workers=W,
                            python_modules=["py_tasks"], object_roots=[the
                            file's directory]); client.map(sum_slice,
                            [ferry.object(path)] * T, lo, hi): each worker
                            receives a read-only numpy.ndarray over its
                            shared mapping of the file
  process_pool_spawn_array  ProcessPoolExecutor(W, spawn): T x
                            submit(sum_slice, the whole array, lo, hi)
  mp_fork_global            multiprocessing.Pool(W) (fork), the array a
                            global of the parent before the fork:
                            starmap(sum_global, slices, chunksize=1)
  joblib_memmap             joblib.Parallel(n_jobs=W) (loky, default
                            max_nbytes: automatic memmapping of the array,
                            dumped once to a temporary file)
  dask_scatter              dask.distributed LocalCluster(n_workers=W,
                            threads_per_worker=1, processes=True):
                            scatter(array, broadcast=True), T x submit, gather
  dask_npload_mmap          the same cluster: T x submit(sum of
                            np.load(path, mmap_mode='r')[lo:hi])

Each run starts a fresh cluster or pool, not timed, and warms it up (all W
processes running, numpy imported); the array, for the systems that take
it from the parent's memory, is loaded (np.load) before that, not timed.

Reported per run ("bench": "py_heavy"):
  seconds            the clock (see "note")
  peak_pss_bytes     the highest total PSS (Pss of /proc/PID/smaps_rollup)
                     of ALL the processes involved: the driving process
                     (client; pool parent; Dask client and scheduler) and
                     every process it started, with their children (the
                     whole process tree: this script's children are child
                     subreapers, so detached processes stay in it),
                     sampled every 50 ms and once at the start and end
  pss_ratio          peak_pss_bytes / the array's size
  driver_pss_bytes   the driving process's own PSS at that peak
  idle_pss_bytes     the same total just before the clock started
  shmem_growth_bytes the largest growth of the machine's Shmem
                     (/proc/meminfo) over the run: tmpfs files such as
                     joblib's dumps count there even while no process maps
                     them (and then not in PSS)
  procs              processes in the tree at the peak

and, with --runs above 1, a median line per system.  A system that
cannot run gets a line with "skipped" and the reason (a module not
installed; more memory than 60% of MemAvailable by this script's
estimate).  Every system runs in its own child process, in its own
session, with a time limit; what it started is stopped by pid.
"""

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import py_common  # noqa: E402
from common import (BenchFailure, DaskPeer, ExecutorPeer,  # noqa: E402
                    catch_sigterm, check_ranges, check_systems, emit,
                    failure, gib, info_suffix, interruptible,
                    mem_available, median, missing_module, parse_size,
                    remaining, say)
from py_common import TreePss, ferry_missing  # noqa: E402

common.PROG = "py_heavy.py"
MEM_SHARE = 0.60  # a system may need at most this share of MemAvailable
PROC_OVERHEAD = 200 << 20  # a Python process with numpy, and some slack
MODULO = 1000  # element i is float(i % MODULO)
VERSION_MODULES = ("ferry", "numpy", "joblib", "dask", "distributed")


# --------------------------------------------------------------------------
# the file


def write_npy(path, n):
    """A .npy of n float64, element i = i % MODULO."""
    import numpy as np
    a = np.lib.format.open_memmap(path, mode="w+", dtype="<f8", shape=(n,))
    chunk = 1 << 22
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        a[start:stop] = np.arange(start, stop, dtype=np.int64) % MODULO
    a.flush()
    del a


def npy_sum(path):
    """numpy's own sum of the whole array (from a read-only mapping)."""
    import numpy as np
    a = np.load(path, mmap_mode="r")
    s = float(a.sum())
    del a
    return s


def slices(n, tasks):
    """(lo, hi) element indices of each task."""
    per = n // tasks
    return [(i * per, n if i == tasks - 1 else (i + 1) * per)
            for i in range(tasks)]


# --------------------------------------------------------------------------
# the peers' tasks (module level: spawned processes import this file)

ARRAY = None  # the fork pool's global


def warm(seconds):
    """Pool warm-up: numpy imported, the process kept busy for a while so
    that every process of the pool gets started."""
    __import__("numpy")
    time.sleep(seconds)
    return os.getpid()


def sum_slice(arr, lo, hi):
    return float(arr[lo:hi].sum())


def sum_global(lo, hi):
    return float(ARRAY[lo:hi].sum())


def sum_npload(path, lo, hi):
    import numpy as np
    a = np.load(path, mmap_mode="r")
    return float(a[lo:hi].sum())


def dask_warm():
    __import__("numpy")
    return os.getpid()


# --------------------------------------------------------------------------
# the systems.  Each has start(deadline) (not timed), run(deadline) ->
# (seconds, [sums]) (timed inside), stop().


class Ferry(py_common.FerryPeer):
    """ferry.LocalCluster + client.map with an object reference."""

    modules = ("numpy",)

    def __init__(self, env):
        self.env = env
        self.cluster = self.client = None

    def start(self, deadline):
        import ferry
        import py_tasks
        self.ferry, self.tasks = ferry, py_tasks
        self.cluster = py_common.local_cluster(
            self.env.workers, object_roots=[self.env.tmp])
        self.client = self.cluster.client()
        w = self.env.workers
        got = self.client.gather(self.client.map(py_tasks.noop,
                                                 range(8 * w)))
        if got != list(range(8 * w)):
            raise BenchFailure("warm-up: wrong results")
        self.info = "ferry %s, LocalCluster at %s" % (
            py_common._version("ferry"), self.cluster.address)

    def run(self, deadline):
        env = self.env
        t0 = time.perf_counter()
        ref = self.ferry.object(env.path)
        futs = self.client.map(self.tasks.sum_slice, [ref] * len(env.slices),
                               [a for a, _ in env.slices],
                               [b for _, b in env.slices])
        res = self.client.gather(futs)
        return time.perf_counter() - t0, res


class SpawnPool(ExecutorPeer):
    """ProcessPoolExecutor(W, spawn), the whole array an argument."""

    modules = ("numpy",)

    def __init__(self, env):
        self.env = env

    def start(self, deadline):
        import concurrent.futures as cf
        import multiprocessing as mp
        self.cf = cf
        w = self.env.workers
        self.ex = cf.ProcessPoolExecutor(max_workers=w,
                                         mp_context=mp.get_context("spawn"))
        # a spawn pool starts a process per submit while none is idle
        self.wait([self.ex.submit(warm, 0.3) for _ in range(w)], deadline)

    def run(self, deadline):
        env = self.env
        t0 = time.perf_counter()
        futs = [self.ex.submit(sum_slice, env.array, a, b)
                for a, b in env.slices]
        res = self.wait(futs, deadline)
        return time.perf_counter() - t0, res


class ForkGlobal:
    """multiprocessing.Pool(W) with the fork start method, forked after
    the array became the module's global."""

    modules = ("numpy",)

    def __init__(self, env):
        self.env = env
        self.pool = None

    def start(self, deadline):
        import multiprocessing as mp
        global ARRAY
        ARRAY = self.env.array
        self.pool = mp.get_context("fork").Pool(self.env.workers)
        w = self.env.workers
        self.pool.map_async(warm, [0.3] * w, chunksize=1).get(
            timeout=remaining(deadline))

    def run(self, deadline):
        t0 = time.perf_counter()
        res = self.pool.starmap_async(sum_global, self.env.slices,
                                      chunksize=1).get(
                                          timeout=remaining(deadline))
        return time.perf_counter() - t0, res

    def stop(self):
        """close() and join() with a bound: the workers exit once they
        have the end sentinel; whatever is still there after that is
        killed by pid (Pool.terminate() can hang, and once did here)."""
        global ARRAY
        if self.pool is not None:
            pool, self.pool = self.pool, None
            pids = [p.pid for p in getattr(pool, "_pool", ())]
            pool.close()
            t = threading.Thread(target=pool.join, daemon=True)
            t.start()
            t.join(timeout=15)
            if t.is_alive():
                left = [p for p in pids if common.proc_stat(p) is not None]
                say("mp_fork_global: the pool did not stop within 15 s; "
                    "killing pids %s" % common.pid_list(left))
                common.kill_pids(left, signal.SIGKILL)
                t.join(timeout=10)
        ARRAY = None


class Joblib:
    """joblib.Parallel(n_jobs=W), default backend (loky) and settings:
    arrays above max_nbytes (1 MB) are dumped to a temporary folder
    (/dev/shm when it has room) once per Parallel call and memory-mapped
    read-only by the workers."""

    modules = ("numpy", "joblib")

    def __init__(self, env):
        self.env = env
        self.joblib = None

    def start(self, deadline):
        import joblib
        self.joblib = joblib
        w = self.env.workers
        joblib.Parallel(n_jobs=w)(joblib.delayed(warm)(0.3)
                                  for _ in range(w))
        self.info = "joblib %s" % joblib.__version__

    def run(self, deadline):
        env, jl = self.env, self.joblib
        remaining(deadline)
        t0 = time.perf_counter()
        res = jl.Parallel(n_jobs=env.workers)(
            jl.delayed(sum_slice)(env.array, a, b) for a, b in env.slices)
        return time.perf_counter() - t0, res

    def stop(self):
        if self.joblib is None:
            return
        try:
            from joblib.externals.loky import reusable_executor
            ex = reusable_executor._executor
            if ex is not None:
                ex.shutdown(wait=True, kill_workers=True)
        except Exception as e:
            say("joblib: stopping loky's executor: %s" % e)
        self.joblib = None


class Dask(DaskPeer):
    """dask.distributed LocalCluster(n_workers=W, threads_per_worker=1,
    processes=True), with scatter or by path."""

    modules = ("numpy", "dask", "distributed")

    def __init__(self, env, mode):
        self.env = env
        self.mode = mode  # "scatter" or "npload"

    def start(self, deadline):
        w = self.env.workers
        self.start_cluster(w, deadline,
                           local_directory=os.path.join(self.env.tmp, "dask"))
        pids = self.client.run(dask_warm)
        if len(pids) != w:
            raise BenchFailure("%d of %d Dask workers" % (len(pids), w))

    def run(self, deadline):
        env, c = self.env, self.client
        t0 = time.perf_counter()
        if self.mode == "scatter":
            fut = c.scatter(env.array, broadcast=True,
                            timeout=remaining(deadline))
            futs = [c.submit(sum_slice, fut, a, b) for a, b in env.slices]
        else:
            fut = None
            futs = [c.submit(sum_npload, env.path, a, b)
                    for a, b in env.slices]
        self.distributed.wait(futs, timeout=remaining(deadline))
        res = c.gather(futs)
        secs = time.perf_counter() - t0
        c.cancel(futs + ([fut] if fut is not None else []))
        return secs, res


# name -> (constructor, memory estimate(size, W), needs the array in the
#          parent, what it does, what the clock includes)
SYSTEMS = {
    "ferry": (
        Ferry, lambda size, w: w * PROC_OVERHEAD, False,
        "ferry.LocalCluster(workers=W, python_modules=[py_tasks]): "
        "client.map(sum_slice, [ferry.object(path)] * T, lo, hi)",
        "timed from ferry.object() and the map to the last result, "
        "including each worker process mapping the file on its first "
        "task; the workers get a read-only ndarray over the mapping"),
    "process_pool_spawn_array": (
        SpawnPool,
        lambda size, w: 4 * size + w * (size + PROC_OVERHEAD), True,
        "ProcessPoolExecutor(W, spawn): T x submit(sum_slice, whole "
        "array, lo, hi)",
        "timed from the first submit to the last result, including "
        "pickling the whole array for every task, sending it through the "
        "pool's pipe and unpickling it; loading the array in the parent "
        "is not timed"),
    "mp_fork_global": (
        ForkGlobal, lambda size, w: size + w * PROC_OVERHEAD, True,
        "multiprocessing.Pool(W) (fork) forked with the array a global: "
        "starmap(sum_global, slices, chunksize=1)",
        "timed from starmap to its result; loading the array and forking "
        "the pool (copy-on-write pages, shared until written) are not "
        "timed"),
    "joblib_memmap": (
        Joblib, lambda size, w: 2 * size + w * PROC_OVERHEAD, True,
        "joblib.Parallel(n_jobs=W) (loky), default automatic memmapping "
        "of the array argument",
        "timed from Parallel(...)(delayed(sum_slice)(array, lo, hi) ...) "
        "to its result, including dumping the array to a temporary file "
        "(/dev/shm) and the workers mapping it; loading the array in the "
        "parent is not timed"),
    "dask_scatter": (
        lambda env: Dask(env, "scatter"),
        lambda size, w: 3 * size + w * (size + size // 2 + PROC_OVERHEAD),
        True,
        "dask LocalCluster(W processes): scatter(array, broadcast=True), "
        "T x submit(sum_slice, future, lo, hi), gather",
        "timed from the start of client.scatter (copying the array to "
        "every worker) to the last result; loading the array in the "
        "parent is not timed; the scheduler runs in the driving process"),
    "dask_npload_mmap": (
        lambda env: Dask(env, "npload"),
        lambda size, w: w * PROC_OVERHEAD, False,
        "dask LocalCluster(W processes): T x submit(sum of np.load(path, "
        "mmap_mode='r')[lo:hi]), gather",
        "timed from the first submit to the last result, including every "
        "task opening and mapping the file"),
}


def system_missing(name):
    ctor = SYSTEMS[name][0]
    if name == "ferry":
        why = missing_module(("numpy",))
        return why or ferry_missing()
    mods = (Dask.modules if name.startswith("dask") else
            getattr(ctor, "modules", ("numpy",)))
    return missing_module(mods)


# --------------------------------------------------------------------------
# child: measure one system


class Env:
    pass


def run_child(args):
    name = args.child
    ctor, need_fn, wants_array, _, note = SYSTEMS[name]
    deadline = time.monotonic() + args.seconds - common.CLEANUP_RESERVE
    why = system_missing(name)
    if why is None:
        need = need_fn(args.size, args.workers)
        avail = mem_available()
        if avail is not None and need > MEM_SHARE * avail:
            why = ("would need about %.1f GiB of memory, more than %d%% of "
                   "MemAvailable (%.1f GiB)" % (
                       gib(need), round(100 * MEM_SHARE), gib(avail)))
    if why is not None:
        say("%s: skipped: %s" % (name, why))
        emit({"bench": "py_heavy", "system": name, "skipped": why})
        return 0

    import numpy as np
    env = Env()
    env.path, env.tmp = args.path, args.tmp
    env.workers, env.tasks = args.workers, args.tasks
    env.n = args.size // 8
    env.slices = slices(env.n, args.tasks)
    env.array = None
    env.deadline = deadline
    if wants_array:
        t = time.perf_counter()
        env.array = np.load(args.path)
        say("%s: loaded the array into the parent in %.2f s (not timed)" %
            (name, time.perf_counter() - t))
    expect = float(args.expect)
    keys = ("seconds", "peak_pss_bytes", "pss_ratio", "driver_pss_bytes",
            "idle_pss_bytes", "shmem_growth_bytes")
    vals = {k: [] for k in keys}
    try:
        rc = run_runs(args, name, ctor, env, note, expect, keys, vals)
    finally:
        py_common.child_cleanup(name)
    if len(vals["seconds"]) == args.runs and args.runs > 1:
        s = {"bench": "py_heavy", "system": name, "summary": "median",
             "runs": args.runs}
        for k, v in vals.items():
            s[k] = median(v)
        emit(s)
    return rc


def run_runs(args, name, ctor, env, note, expect, keys, vals):
    """The runs of one system; their lines emitted, their values added to
    vals.  0, or 1 if one failed (the rest are not run)."""
    deadline = env.deadline
    rc = 0
    for r in range(1, args.runs + 1):
        peer = ctor(env)
        try:
            t = time.monotonic()
            peer.start(deadline)
            say("%s run %d: %d workers ready in %.1f s%s" % (
                name, r, args.workers, time.monotonic() - t,
                info_suffix(peer)))
            smp = TreePss().start()
            try:
                secs, res = peer.run(deadline)
            finally:
                smp.finish()
            total = sum(res)
            if len(res) != args.tasks or total != expect:
                raise BenchFailure("%d results summing to %r, expected %d "
                                   "summing to %r" % (len(res), total,
                                                      args.tasks, expect))
            res = None
            out = {"bench": "py_heavy", "system": name, "run": r,
                   "array_bytes": args.size, "workers": args.workers,
                   "tasks": args.tasks, "seconds": round(secs, 4),
                   "peak_pss_bytes": smp.peak,
                   "pss_ratio": round(smp.peak / args.size, 3),
                   "driver_pss_bytes": smp.driver_at_peak,
                   "idle_pss_bytes": smp.idle,
                   "shmem_growth_bytes": smp.shmem_growth,
                   "procs": smp.procs_at_peak, "pss_samples": smp.samples,
                   "note": note}
            emit(out)
            for k in keys:
                vals[k].append(out[k])
            say("%s run %d: %.3f s, peak PSS of all %d processes %.2f GiB "
                "(%.3f x the array; driver %.2f GiB, idle %.2f GiB), Shmem "
                "+%.2f GiB" % (
                    name, r, secs, smp.procs_at_peak, gib(smp.peak),
                    smp.peak / args.size, gib(smp.driver_at_peak),
                    gib(smp.idle), gib(smp.shmem_growth)))
        except Exception as e:  # ours or the system's
            _, why = failure(e, r)
            say("%s: %s; no more runs of it" % (name, why))
            emit({"bench": "py_heavy", "system": name, "skipped": why})
            rc = 1
            break
        finally:
            peer.stop()
            py_common.leftovers(name)
    return rc


# --------------------------------------------------------------------------
# parent: the file, then one child per system


def run_parent(args):
    start = time.monotonic()
    catch_sigterm()
    py_common.become_subreaper()
    py_common.emit_versions("py_heavy", VERSION_MODULES)
    why = missing_module(("numpy",))
    if why is not None:
        for name in args.systems:
            say("%s: skipped: %s" % (name, why))
            emit({"bench": "py_heavy", "system": name, "skipped": why})
        return 0
    tmp = tempfile.mkdtemp(prefix="ferry-bench-py-heavy-", dir=args.dir)
    tmp = os.path.realpath(tmp)
    try:
        path = os.path.join(tmp, "array.npy")
        n = args.size // 8
        t = time.perf_counter()
        write_npy(path, n)
        expect = npy_sum(path)
        say("wrote %s (%d float64, %.2f GiB) and summed it in %.1f s: %r" %
            (path, n, gib(8 * n), time.perf_counter() - t, expect))
        return py_common.run_systems(
            args, start, __file__,
            ["--path", path, "--tmp", tmp, "--bytes", str(8 * n),
             "--expect", repr(expect), "--runs", str(args.runs),
             "--tasks", str(args.tasks), "--workers", str(args.workers)] +
            py_common.child_args_common(args),
            lambda name: ["py_heavy"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(
        description="A large float64 array summed in slices by Python "
        "tasks: Ferry's Python side and its peers.  One JSON object per "
        "line on stdout.")
    ap.add_argument("-s", "--size", default="1GiB",
                    help="array size, e.g. 1GiB, 256MiB (default 1GiB)")
    ap.add_argument("--dir", help="where to write the .npy (default: "
                    "$TMPDIR or /tmp)")
    ap.add_argument("-n", "--tasks", type=int, default=32,
                    help="tasks per run (default 32)")
    py_common.add_common_args(ap, SYSTEMS, workers=4, timeout=900,
                              budget=1800)
    for hidden in ("--path", "--tmp", "--expect"):
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    ap.add_argument("--bytes", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    py_common.use_ferry_python(args.ferry_python)

    if args.list:
        for name, (_, _, _, what, timed) in SYSTEMS.items():
            why = system_missing(name)
            print("%-25s %s" % (name, what))
            print("%-25s %s" % ("", timed))
            if why:
                print("%-25s SKIPPED here: %s" % ("", why))
        return 0
    try:
        args.size = parse_size(args.size)
    except ValueError:
        ap.error("--size: '%s' is not a size (e.g. 1GiB, 256MiB)" %
                 args.size)
    if args.size < 4096:
        ap.error("--size must be at least 4KiB")
    check_ranges(ap, (("--tasks", args.tasks, 1, 100000),
                      ("--workers", args.workers, 1, 64),
                      ("--runs", args.runs, 1, 100)))
    if args.size // 8 < args.tasks:
        ap.error("--size too small for --tasks")
    if args.child is not None:
        if args.child not in SYSTEMS:
            ap.error("unknown system '%s'" % args.child)
        args.size = args.bytes
        py_common.child_setup()
        return interruptible(run_child, args)
    check_systems(ap, args, SYSTEMS)
    return interruptible(run_parent, args)


if __name__ == "__main__":
    sys.exit(main())
