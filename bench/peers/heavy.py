#!/usr/bin/python3
"""heavy.py - `ferry bench heavy`, measured for Python peers.

Run with Debian's interpreter (/usr/bin/python3): the `python3` first on the
PATH of these machines is a separate build that does not see Debian's
python3-* packages.  Needs numpy (Debian: python3-numpy); the Dask peer also
needs python3-distributed.

    /usr/bin/python3 bench/peers/heavy.py [--size 1GiB] [--runs 1]
        [--tasks 32] [--workers 4] [--systems a,b] [--file PATH]

The scenario of `ferry bench heavy`: one file of SIZE bytes of little-endian
64-bit words (word i = (i+1) * 0x9E3779B97F4A7C15 mod 2^64), W worker
processes (default 4), T tasks (default 32), task i summing slice i of the
whole file (the same slices as Ferry: T equal slices of whole words, the
last one taking the rest).  The sums wrap modulo 2^64; their total is
checked against the sum of the whole file computed in the parent with
numpy (and, for a file this script wrote, against the closed form).

The peers:

  process_pool_spawn_array   ProcessPoolExecutor (spawn); the parent loads
                             the file into one numpy array and passes the
                             WHOLE array with every task, plus the slice
                             bounds: every task gets its own copy
  process_pool_spawn_memmap  the same pool; tasks get the path and map the
                             file with np.memmap themselves, once per worker
                             process (kept in a module-level dict)
  dask_scatter_broadcast     dask.distributed LocalCluster(n_workers=W,
                             threads_per_worker=1, processes=True);
                             client.scatter(array, broadcast=True), then T
                             client.submit(sum_slice, future, start, stop)
                             and gather

Each run starts a fresh pool or cluster (as `ferry bench heavy` starts a
fresh cluster per run), warms it up (all W processes started, numpy
imported) and only then starts the clock; it stops when the last result is
in.  What the clock includes is said in each line's "note": for the array
peer the pickling of the array for every task, for Dask the scatter.

Reported per run, as by `ferry bench heavy --json`, plus "system":
  seconds              first submit (or scatter) to last result
  read_once_seconds    median of 3 passes of np.memmap + np.sum over the
                       file in this (parent) process: numpy's baseline
  time_ratio           seconds / read_once_seconds
  loads                copies of the data the workers got or made: one per
                       task (array), one per process that mapped the file
                       (memmap), the copies scatter made plus those workers
                       fetched again for a task (Dask)
  max_loads_per_worker the most loads in one worker process
  cache_hits, cached_share
                       tasks (and their share) that found the data already
                       in their worker process
  peak_pss_bytes       the highest total PSS of the W worker processes
                       (Pss of /proc/PID/smaps_rollup), sampled every
                       ~50 ms during the run and once after it
  pss_ratio            peak_pss_bytes / file size
  parent_peak_pss_bytes the same for this script's process that drives the
                       run (for Dask it also runs the scheduler); not part
                       of peak_pss_bytes, as Ferry's does not count its
                       client and scheduler either

and, with --runs above 1, a median line per system.  A peer that cannot be
measured gets a line with "skipped" and the reason instead: a module that is
missing, or more memory than 60% of MemAvailable by this script's estimate
(the array peer holds a copy per worker, and more while pickling).

Every system runs in its own child process, in its own session, with a time
limit; the child stops the pool or cluster it started, and afterwards the
parent kills, by process id, anything still left in that session.  The
temporary directory with the file is removed at the end.  Nothing outlives
this script.
"""

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import (BenchFailure, DaskPeer, ExecutorPeer,  # noqa: E402
                    catch_sigterm, check_ranges, check_systems, emit,
                    failure, info_suffix, interruptible, median,
                    gib, mem_available, missing_module, parse_size,
                    pss_bytes, remaining, run_children, say)

common.PROG = "heavy.py"
GOLDEN = 0x9E3779B97F4A7C15  # word i = (i + 1) * GOLDEN mod 2^64
MASK64 = (1 << 64) - 1
CLEANUP_RESERVE = common.CLEANUP_RESERVE
PSS_INTERVAL = 0.05  # seconds between PSS samples
MEM_SHARE = 0.60  # a system may need at most this share of MemAvailable
PROC_OVERHEAD = 200 << 20  # a Python worker with numpy, and some slack


class PssSampler:
    """Total PSS of the worker pids every PSS_INTERVAL s, in a thread,
    plus one final sample; the parent's own PSS alongside."""

    def __init__(self, pids):
        self.pids = list(pids)
        self.peak = self.parent_peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = None

    def sample(self):
        total = sum(pss_bytes(p) for p in self.pids)
        self.peak = max(self.peak, total)
        self.parent_peak = max(self.parent_peak, pss_bytes(os.getpid()))
        self.samples += 1

    def _main(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(PSS_INTERVAL)

    def start(self):
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()

    def finish(self):
        """Stop the thread and take one more sample (before shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sample()


# --------------------------------------------------------------------------
# the file


def write_file(path, size):
    """size bytes (a multiple of 8) of words (i + 1) * GOLDEN."""
    import numpy as np
    n = size // 8
    chunk = 1 << 21  # words: 16 MiB
    k = np.uint64(GOLDEN)
    with open(path, "wb") as f:
        for start in range(0, n, chunk):
            w = np.arange(start + 1, min(start + chunk, n) + 1,
                          dtype=np.uint64)
            w *= k  # wraps modulo 2^64
            f.write(w.astype("<u8", copy=False).tobytes())


def file_sum(path, n):
    """Sum of the first n words of the file, modulo 2^64."""
    import numpy as np
    mm = np.memmap(path, dtype="<u8", mode="r", shape=(n,))
    total = 0
    chunk = 1 << 22
    for start in range(0, n, chunk):
        total += int(np.asarray(mm[start:start + chunk]).sum(
            dtype=np.uint64))
    del mm
    return total & MASK64


def read_once(path, n):
    """Seconds to map the file and sum it in this process: median of 3."""
    import numpy as np
    times = []
    for _ in range(3):
        t = time.perf_counter()
        mm = np.memmap(path, dtype="<u8", mode="r", shape=(n,))
        np.asarray(mm).sum(dtype=np.uint64)
        del mm
        times.append(time.perf_counter() - t)
    return median(times)


def slices(n_words, tasks):
    """(start, stop) word indices of each task, as ferry bench heavy."""
    per = n_words // tasks
    return [(i * per, n_words if i == tasks - 1 else (i + 1) * per)
            for i in range(tasks)]


# --------------------------------------------------------------------------
# the tasks (module level: spawned pool processes import this file)

_MAPS = {}  # path -> np.memmap, one per worker process


def warm(seconds):
    """Pool warm-up: numpy imported, the process kept busy for a while so
    that every process of the pool gets started."""
    __import__("numpy")
    time.sleep(seconds)
    return os.getpid()


def sum_array(arr, start, stop):
    import numpy as np
    return os.getpid(), int(arr[start:stop].sum(dtype=np.uint64))


def sum_memmap(path, n_words, start, stop):
    import numpy as np
    mm = _MAPS.get(path)
    loaded = mm is None
    if loaded:
        mm = _MAPS[path] = np.memmap(path, dtype="<u8", mode="r",
                                     shape=(n_words,))
    return (os.getpid(), loaded,
            int(np.asarray(mm[start:stop]).sum(dtype=np.uint64)))


def sum_slice(arr, start, stop):
    """The Dask task."""
    import numpy as np
    return os.getpid(), int(arr[start:stop].sum(dtype=np.uint64))


def dask_warm():
    __import__("numpy")
    return os.getpid()


def dask_fetches(key, dask_worker=None):
    """Run on a Dask worker: how many times it fetched key from another
    worker for a task (scatter's copies are not in this log)."""
    n = 0
    for e in getattr(dask_worker, "transfer_incoming_log", ()):
        try:
            if key in e.get("keys", ()):
                n += 1
        except (AttributeError, TypeError):
            pass
    return n


# --------------------------------------------------------------------------
# the peers.  Each has start(deadline) (not timed), run(deadline) -> dict of
# measured fields (timed inside), stop(), and need(size, workers) -> bytes
# of memory it is expected to take beyond the file's pages.


class Pool(ExecutorPeer):
    """ProcessPoolExecutor(max_workers=W, mp_context=spawn)."""

    modules = ("numpy",)

    def __init__(self, env, mode):
        self.env = env
        self.mode = mode  # "array" or "memmap"
        self.pids = []

    @staticmethod
    def need(mode, size, workers):
        if mode == "memmap":
            return workers * PROC_OVERHEAD
        # parent: the array, the pickled copy being sent and one being
        # made; every worker: its copy of the array, and one more message
        # being received (the pool's pipe sends one at a time)
        return 4 * size + workers * (size + PROC_OVERHEAD)

    def start(self, deadline):
        import concurrent.futures as cf
        import multiprocessing as mp
        self.cf = cf
        w = self.env.workers
        self.ex = cf.ProcessPoolExecutor(max_workers=w,
                                         mp_context=mp.get_context("spawn"))
        # one submit per process: a spawn pool starts a process per submit
        # while none is idle, up to max_workers
        self.wait([self.ex.submit(warm, 0.3) for _ in range(w)], deadline)
        self.pids = sorted((getattr(self.ex, "_processes", None) or {}))
        if len(self.pids) != w:
            raise BenchFailure("%d of %d pool processes running after "
                               "warm-up" % (len(self.pids), w))

    def run(self, deadline):
        env = self.env
        smp = PssSampler(self.pids)
        smp.start()
        try:
            t0 = time.perf_counter()
            if self.mode == "array":
                futs = [self.ex.submit(sum_array, env.array, a, b)
                        for a, b in env.slices]
            else:
                futs = [self.ex.submit(sum_memmap, env.path, env.n_words,
                                       a, b)
                        for a, b in env.slices]
            res = self.wait(futs, deadline)
            secs = time.perf_counter() - t0
        finally:
            smp.finish()
        futs = None
        per_pid = {}
        hits = 0
        total = 0
        for r in res:
            pid, s = r[0], r[-1]
            total += s
            if self.mode == "array":
                per_pid[pid] = per_pid.get(pid, 0) + 1
            elif r[1]:
                per_pid[pid] = per_pid.get(pid, 0) + 1
            else:
                hits += 1
        loads = sum(per_pid.values())
        return {"seconds": secs, "sum": total & MASK64, "loads": loads,
                "max_loads_per_worker": max(per_pid.values() or [0]),
                "cache_hits": hits, "sampler": smp}


class Dask(DaskPeer):
    """dask.distributed LocalCluster(n_workers=W, threads_per_worker=1,
    processes=True): scatter(broadcast=True), submit, gather."""

    modules = ("numpy", "dask", "distributed")

    def __init__(self, env):
        self.env = env
        self.pids = []

    @staticmethod
    def need(size, workers):
        # parent: the array and the serialized copies the client and the
        # scheduler (in this process) send; every worker: its copy, and
        # some of the messages it arrives in
        return 3 * size + workers * (size + size // 2 + PROC_OVERHEAD)

    def start(self, deadline):
        w = self.env.workers
        self.start_cluster(w, deadline,
                           local_directory=os.path.join(self.env.tmp, "dask"))
        pids = self.client.run(dask_warm)  # address -> pid
        self.pids = sorted(pids.values())
        self.addr_pid = dict(pids)
        if len(self.pids) != w:
            raise BenchFailure("%d of %d Dask workers" % (len(self.pids), w))

    def run(self, deadline):
        env = self.env
        c = self.client
        smp = PssSampler(self.pids)
        smp.start()
        try:
            t0 = time.perf_counter()
            fut = c.scatter(env.array, broadcast=True,
                            timeout=remaining(deadline))
            t_scatter = time.perf_counter() - t0
            # which workers scatter gave a copy (a question to the
            # scheduler, about a millisecond, inside the clock)
            holders = set(c.who_has([fut]).get(fut.key, ()))
            futs = [c.submit(sum_slice, fut, a, b) for a, b in env.slices]
            self.distributed.wait(futs, timeout=remaining(deadline))
            res = c.gather(futs)
            secs = time.perf_counter() - t0
        finally:
            smp.finish()
        # outside the clock: the copies workers fetched for their tasks
        # (Dask's active memory manager may drop broadcast replicas that
        # no task is waiting for; a task on such a worker fetches it again)
        fetched = c.run(dask_fetches, fut.key)  # address -> transfers
        per_worker = [(1 if a in holders else 0) + fetched.get(a, 0)
                      for a in self.addr_pid]
        total = sum(r[1] for r in res)
        c.cancel(futs + [fut])
        return {"seconds": secs, "sum": total & MASK64,
                "loads": sum(per_worker),
                "max_loads_per_worker": max(per_worker or [0]),
                "cache_hits": max(0, len(res) - sum(fetched.values())),
                "scatter_seconds": t_scatter, "sampler": smp}

# name -> (constructor, memory estimate, needs the array in the parent,
#          what it measures, what the clock includes)
SYSTEMS = {
    "process_pool_spawn_array": (
        lambda env: Pool(env, "array"),
        lambda size, w: Pool.need("array", size, w), True,
        "ProcessPoolExecutor(spawn): T x submit(sum, whole array, slice)",
        "timed from the first submit to the last result, including "
        "pickling the whole array for every task, sending it through the "
        "pool's pipe and unpickling it in the worker; loading the file "
        "into the parent's array is not timed"),
    "process_pool_spawn_memmap": (
        lambda env: Pool(env, "memmap"),
        lambda size, w: Pool.need("memmap", size, w), False,
        "ProcessPoolExecutor(spawn): T x submit(sum, path, slice), "
        "np.memmap once per process",
        "timed from the first submit to the last result, including each "
        "process mapping the file on its first task"),
    "dask_scatter_broadcast": (
        Dask, Dask.need, True,
        "dask LocalCluster: scatter(array, broadcast=True), T x "
        "submit(sum, future, slice), gather",
        "timed from the start of client.scatter (hashing the array, "
        "sending it to the scheduler and copying it to every worker) to "
        "the last result; loading the file into the parent's array is "
        "not timed; scatter_seconds is the scatter alone; Dask's default "
        "configuration (its active memory manager may drop broadcast "
        "copies no task is waiting for)"),
}


def peer_missing(name):
    ctor = SYSTEMS[name][0]
    mods = Dask.modules if ctor is Dask else Pool.modules
    return missing_module(mods)


# --------------------------------------------------------------------------
# child: measure one system


class Env:
    pass


def run_child(args):
    name = args.child
    ctor, need_fn, wants_array, _, note = SYSTEMS[name]
    deadline = time.monotonic() + args.seconds - CLEANUP_RESERVE
    why = peer_missing(name)
    if why is None:
        need = need_fn(args.size, args.workers)
        avail = mem_available()
        if avail is not None and need > MEM_SHARE * avail:
            why = ("would need about %.1f GiB of memory, more than %d%% of "
                   "MemAvailable (%.1f GiB)" % (
                       gib(need), round(100 * MEM_SHARE), gib(avail)))
    if why is not None:
        say("%s: skipped: %s" % (name, why))
        emit({"bench": "heavy", "system": name, "skipped": why})
        return 0

    import numpy as np
    env = Env()
    env.path, env.tmp = args.path, args.tmp
    env.workers, env.tasks = args.workers, args.tasks
    env.n_words = args.size // 8
    env.slices = slices(env.n_words, args.tasks)
    env.array = None
    if wants_array:
        t = time.perf_counter()
        env.array = np.fromfile(args.path, dtype="<u8", count=env.n_words)
        say("%s: loaded the file into the parent's array in %.2f s "
            "(not timed)" % (name, time.perf_counter() - t))
    expect = int(args.expect)
    rc = 0
    vals = {"seconds": [], "time_ratio": [], "loads": [],
            "cached_share": [], "peak_pss_bytes": [], "pss_ratio": []}
    for r in range(1, args.runs + 1):
        peer = ctor(env)
        try:
            t = time.monotonic()
            peer.start(deadline)
            say("%s run %d: %d workers ready in %.1f s%s" % (
                name, r, args.workers, time.monotonic() - t,
                info_suffix(peer)))
            m = peer.run(deadline)
            if m["sum"] != expect:
                raise BenchFailure("sum of the results %d, expected %d" %
                                   (m["sum"], expect))
            smp = m["sampler"]
            secs = m["seconds"]
            out = {"bench": "heavy", "system": name, "run": r,
                   "file_bytes": args.size, "workers": args.workers,
                   "tasks": args.tasks, "seconds": round(secs, 4),
                   "read_once_seconds": round(args.read_once, 4),
                   "time_ratio": round(secs / args.read_once, 3),
                   "loads": m["loads"],
                   "max_loads_per_worker": m["max_loads_per_worker"],
                   "cache_hits": m["cache_hits"],
                   "cached_share": round(m["cache_hits"] / args.tasks, 3),
                   "peak_pss_bytes": smp.peak,
                   "pss_ratio": round(smp.peak / args.size, 3),
                   "pss_samples": smp.samples,
                   "parent_peak_pss_bytes": smp.parent_peak}
            if "scatter_seconds" in m:
                out["scatter_seconds"] = round(m["scatter_seconds"], 4)
            out["note"] = note
            emit(out)
            for k in vals:
                vals[k].append(out[k])
            say("%s run %d: %.3f s (%.1f x reading it once), %d loads, "
                "%.0f%% cached, peak PSS of the workers %.2f GiB (%.2f x "
                "the file), parent %.2f GiB" % (
                    name, r, secs, secs / args.read_once, m["loads"],
                    100.0 * m["cache_hits"] / args.tasks, gib(smp.peak),
                    smp.peak / args.size, gib(smp.parent_peak)))
        except Exception as e:  # ours or the peer's
            _, why = failure(e, r)
            say("%s: %s; no more runs of it" % (name, why))
            emit({"bench": "heavy", "system": name, "skipped": why})
            rc = 1
            break
        finally:
            m = None
            peer.stop()
    if len(vals["seconds"]) == args.runs and args.runs > 1:
        s = {"bench": "heavy", "system": name, "summary": "median",
             "runs": args.runs}
        for k, v in vals.items():
            s[k] = median(v)
        emit(s)
    return rc


# --------------------------------------------------------------------------
# parent: the file, then one child per system, each in its own session,
# each time-bounded


def prepare_file(args, tmp):
    """(path, size, expected sum, read-once seconds)."""
    if args.file:
        path = os.path.abspath(args.file)
        size = os.path.getsize(path) & ~7
    else:
        path = os.path.join(tmp, "data.bin")
        size = args.size & ~7
        t = time.perf_counter()
        write_file(path, size)
        say("wrote %s (%d bytes) in %.1f s" % (path, size,
                                                time.perf_counter() - t))
    n = size // 8
    if n < args.tasks:
        raise BenchFailure("%s: %d words, fewer than --tasks %d" %
                           (path, n, args.tasks))
    expect = file_sum(path, n)
    if not args.file:
        closed = (GOLDEN * (n * (n + 1) // 2)) & MASK64
        if expect != closed:
            raise BenchFailure("the file's sum %d is not the closed form %d"
                               % (expect, closed))
    secs = read_once(path, n)
    say("read once (np.memmap + np.sum, median of 3): %.4f s" % secs)
    return path, size, expect, secs


def run_parent(args):
    start = time.monotonic()
    catch_sigterm()
    why = missing_module(("numpy",))
    if why is not None:
        for name in args.systems:
            say("%s: skipped: %s" % (name, why))
            emit({"bench": "heavy", "system": name, "skipped": why})
        return 0
    rc = 0
    tmp = tempfile.mkdtemp(prefix="ferry-bench-heavy-py-", dir=args.dir)
    try:
        path, size, expect, base = prepare_file(args, tmp)
        rc = run_children(
            args, start, __file__,
            ["--path", path, "--tmp", tmp, "--bytes", str(size),
             "--expect", str(expect), "--read-once", repr(base),
             "--runs", str(args.runs), "--tasks", str(args.tasks),
             "--workers", str(args.workers)],
            lambda name: ["heavy"])
    except BenchFailure as e:
        say(str(e))
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rc


def main():
    ap = argparse.ArgumentParser(
        description="ferry bench heavy for Python peers: T tasks summing "
        "slices of one large file.  One JSON object per line on stdout.")
    ap.add_argument("-s", "--size", default="1GiB",
                    help="file size, e.g. 1GiB, 256MiB (default 1GiB)")
    ap.add_argument("--file", help="use this file instead of writing one "
                    "(its whole 64-bit words; sizes then come from it)")
    ap.add_argument("--dir", help="where to write the file (default: "
                    "$TMPDIR or /tmp)")
    ap.add_argument("-n", "--tasks", type=int, default=32,
                    help="tasks per run (default 32)")
    ap.add_argument("-w", "--workers", type=int, default=4,
                    help="worker processes (default 4)")
    ap.add_argument("-r", "--runs", type=int, default=1,
                    help="runs per system (default 1)")
    ap.add_argument("--systems", default=",".join(SYSTEMS),
                    help="comma-separated systems (default: all; see "
                    "--list)")
    ap.add_argument("--timeout", type=float, default=420,
                    help="seconds per system, start to stop (default 420)")
    ap.add_argument("--budget", type=float, default=540,
                    help="seconds for everything together; systems not "
                    "started by then are skipped (default 540)")
    ap.add_argument("--list", action="store_true",
                    help="list the systems and what each one measures")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    for hidden in ("--path", "--tmp", "--expect"):
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    ap.add_argument("--bytes", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--read-once", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=300,
                    help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.list:
        for name, (_, _, _, what, timed) in SYSTEMS.items():
            why = peer_missing(name)
            print("%-26s %s" % (name, what))
            print("%-26s %s" % ("", timed))
            if why:
                print("%-26s SKIPPED here: %s" % ("", why))
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
    if args.child is not None:
        if args.child not in SYSTEMS:
            ap.error("unknown system '%s'" % args.child)
        args.size = args.bytes
        catch_sigterm()
        return interruptible(run_child, args)
    if args.file and not os.path.isfile(args.file):
        ap.error("--file: %s is not a file" % args.file)
    check_systems(ap, args, SYSTEMS)
    return interruptible(run_parent, args)


if __name__ == "__main__":
    sys.exit(main())
