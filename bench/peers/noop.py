#!/usr/bin/python3
"""noop.py - `ferry bench throughput|latency`, measured for Python peers.

Run with Debian's interpreter (/usr/bin/python3): the `python3` first on the
PATH of these machines is a separate build that does not see Debian's
python3-* packages.

    /usr/bin/python3 bench/peers/noop.py [--runs 3] [--tasks 20000]
        [--round-trips 500] [--systems dask,celery] [--bench throughput]

For every peer system this measures what `ferry bench` measures, with the
same number of worker processes (default 2) and a task that does nothing:

  throughput  N no-op tasks submitted, then every result gathered; tasks/s
              from the first submit to the last result (default N=20000)
  latency     N single tasks one after another, each waited for before the
              next is submitted; p50 and p99 of the round trip in
              microseconds, after 50 warm-up round trips (default N=500)

Starting the pool or cluster, and warming it up, is not timed (as in
`ferry bench`, which starts its private cluster before the clock starts).

Output: one JSON object per line on stdout with the fields of `ferry bench
--json` plus "system", e.g.

  {"bench":"throughput","system":"dask","tasks":20000,"workers":2,"run":1,
   "seconds":36.1,"tasks_per_s":554}
  {"bench":"latency","system":"dask","n":500,"workers":2,"run":1,
   "p50_us":10650,"p99_us":14800}
  {"bench":"latency","system":"dask","summary":"median","runs":3,
   "p50_us":10700}

and, for a peer that could not be measured,

  {"bench":"throughput","system":"celery","skipped":"module 'celery' ..."}

Progress and reasons for skipping go to stderr.  The median is the middle
value of the sorted runs (the upper middle for an even count), as in
`ferry bench`.

Every system runs in its own child process, in its own session, with a time
limit; the child stops what it started (pools, clusters, redis-server, the
celery worker) by process id, and afterwards the parent kills, by process
id, anything still left in that session.  Nothing outlives this script.
"""

import argparse
import gc
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import (BenchFailure, DaskPeer, ExecutorPeer,  # noqa: E402
                    catch_sigterm, check_ranges, check_systems,
                    emit, emit_skipped, failure, info_suffix, interruptible,
                    median, missing_module, remaining, run_children, say,
                    stop_popen)

common.PROG = "noop.py"
WARMUP_ROUND_TRIPS = 50  # as in ferry bench latency
CLEANUP_RESERVE = common.CLEANUP_RESERVE
ROUND_TRIP_TIMEOUT = 30.0  # one latency round trip may take at most this


def noop(_x=None):
    """The task: does nothing (takes one ignored argument, for map)."""
    return None


def percentiles(us):
    s = sorted(us)
    n = len(s)
    return s[n // 2], s[min((n * 99) // 100, n - 1)]


def check_results(results, n):
    results = list(results)
    if len(results) != n:
        raise BenchFailure("got %d results for %d tasks" % (len(results), n))
    bad = sum(1 for r in results if r is not None)
    if bad:
        raise BenchFailure("%d of %d results were not None" % (bad, n))


# --------------------------------------------------------------------------
# the peers.  Each has start(deadline), throughput(n, deadline) -> results,
# round_trip(deadline) -> result (one latency sample), stop(), a `workers`
# count, and may have release(), called after a timed throughput run to drop
# what the run left behind (outside the clock).


class ProcessPool(ExecutorPeer):
    """concurrent.futures.ProcessPoolExecutor with a given start method."""

    modules = ()

    def __init__(self, workers, method, api):
        self.workers = workers
        self.method = method
        self.api = api  # "map" or "submit" (throughput); latency: submit

    def start(self, deadline):
        import concurrent.futures as cf
        import multiprocessing as mp
        self.cf = cf
        self.ex = cf.ProcessPoolExecutor(
            max_workers=self.workers, mp_context=mp.get_context(self.method))
        self._submit_all(4 * self.workers, deadline)
        procs = getattr(self.ex, "_processes", None) or {}
        if len(procs) != self.workers:
            say("warning: %d of %d pool processes running after warm-up" %
                (len(procs), self.workers))

    def _submit_all(self, n, deadline):
        return self.wait([self.ex.submit(noop, i) for i in range(n)],
                         deadline)

    def throughput(self, n, deadline):
        if self.api == "map":
            # chunksize=1 is map's default
            return list(self.ex.map(noop, range(n),
                                    timeout=remaining(deadline)))
        return self._submit_all(n, deadline)

    def round_trip(self, deadline):
        return self.ex.submit(noop).result(
            timeout=min(ROUND_TRIP_TIMEOUT, remaining(deadline)))


class MpPool:
    """multiprocessing.Pool (the platform's default start method, fork)."""

    modules = ()

    def __init__(self, workers):
        self.workers = workers
        self.pool = None

    def start(self, deadline):
        import multiprocessing as mp
        self.pool = mp.Pool(processes=self.workers)
        self.throughput(4 * self.workers, deadline)

    def throughput(self, n, deadline):
        return self.pool.map_async(noop, range(n), chunksize=1).get(
            timeout=remaining(deadline))

    def round_trip(self, deadline):
        return self.pool.apply_async(noop).get(
            timeout=min(ROUND_TRIP_TIMEOUT, remaining(deadline)))

    def stop(self):
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


class Joblib:
    """joblib.Parallel(n_jobs=W), default backend (loky), automatic batching.

    One Parallel object is kept open (`with Parallel(...) as p`) so that the
    worker processes are reused between calls, as a long-lived program would.
    """

    modules = ("joblib",)

    def __init__(self, workers):
        self.workers = workers
        self.par = None

    def start(self, deadline):
        import joblib
        self.joblib = joblib
        self.par = joblib.Parallel(n_jobs=self.workers,
                                   timeout=ROUND_TRIP_TIMEOUT)
        self.par.__enter__()
        self.throughput(200, deadline)
        self.info = "joblib %s, backend %s" % (
            joblib.__version__, type(self.par._backend).__name__)

    def throughput(self, n, deadline):
        remaining(deadline)
        d = self.joblib.delayed(noop)
        return self.par(d(i) for i in range(n))

    def round_trip(self, deadline):
        remaining(deadline)
        return self.par([self.joblib.delayed(noop)(0)])[0]

    def stop(self):
        if self.par is not None:
            try:
                self.par.__exit__(None, None, None)
            finally:
                self.par = None
        try:
            from joblib.externals.loky import get_reusable_executor
            get_reusable_executor().shutdown(wait=True, kill_workers=True)
        except Exception as e:  # best effort: the parent sweeps after us
            say("joblib: shutting loky down: %s" % e)


class Dask(DaskPeer):
    """dask.distributed LocalCluster(n_workers=W, threads_per_worker=1,
    processes=True): client.map + gather, client.submit().result()."""

    modules = ("dask", "distributed")

    def __init__(self, workers):
        self.workers = workers
        self.futs = []

    def start(self, deadline):
        self.start_cluster(self.workers, deadline)
        self.throughput(20, deadline)
        self.release()

    def throughput(self, n, deadline):
        self.futs = self.client.map(noop, range(n), pure=False)
        self.distributed.wait(self.futs, timeout=remaining(deadline))
        return self.client.gather(self.futs)

    def release(self):
        if self.futs:
            self.client.cancel(self.futs)
        self.futs = []

    def round_trip(self, deadline):
        return self.client.submit(noop, pure=False).result(
            timeout=min(ROUND_TRIP_TIMEOUT, remaining(deadline)))

CELERY_APP = '''\
import os
from celery import Celery

url = os.environ["FERRY_BENCH_REDIS"]
app = Celery("ferry_bench", broker=url, backend=url)
app.conf.update(
    task_serializer="json", result_serializer="json",
    accept_content=["json"], task_default_queue="ferry_bench",
    worker_hijack_root_logger=False, result_expires=3600)


@app.task(name="ferry_bench.noop")
def noop(_x=None):
    return None
'''


def free_loopback_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class Celery:
    """Celery (prefork, concurrency W) with a private redis-server on a
    free loopback port as broker and result backend."""

    modules = ("celery", "redis")

    def __init__(self, workers):
        self.workers = workers
        self.tmp = self.redis = self.worker = None
        self.results = None

    @staticmethod
    def missing():
        if shutil.which("redis-server") is None:
            return ("no redis-server binary on the PATH (Debian: apt-get "
                    "install redis-server)")
        return None

    def start(self, deadline):
        import redis
        self.tmp = tempfile.mkdtemp(prefix="ferry-bench-celery-")
        # a taken port makes redis-server exit at once: try a few
        for _ in range(5):
            port = free_loopback_port()
            self.redis = subprocess.Popen(
                [shutil.which("redis-server"), "--port", str(port),
                 "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", self.tmp, "--daemonize", "no",
                 "--logfile", os.path.join(self.tmp, "redis.log")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
            up_by = min(time.monotonic() + 10, deadline)
            while time.monotonic() < up_by and self.redis.poll() is None:
                try:
                    if r.ping():
                        break
                except redis.exceptions.ConnectionError:
                    time.sleep(0.05)
            else:
                stop_popen(self.redis, "redis-server")
                self.redis = None
                continue
            break
        if self.redis is None:
            raise BenchFailure("redis-server did not start (see %s)" %
                               os.path.join(self.tmp, "redis.log"))
        url = "redis://127.0.0.1:%d/0" % port
        with open(os.path.join(self.tmp, "ferry_bench_celery_app.py"),
                  "w") as f:
            f.write(CELERY_APP)
        env = dict(os.environ, FERRY_BENCH_REDIS=url, PYTHONPATH=self.tmp)
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "ferry_bench_celery_app",
             "worker", "--pool", "prefork", "--concurrency",
             str(self.workers), "--loglevel", "WARNING",
             "--hostname", "ferrybench%d@localhost" % os.getpid(),
             "--without-gossip", "--without-mingle", "--without-heartbeat",
             "--logfile", os.path.join(self.tmp, "worker.log")],
            cwd=self.tmp, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.environ["FERRY_BENCH_REDIS"] = url
        sys.path.insert(0, self.tmp)
        import celery
        import celery.result
        import ferry_bench_celery_app as appmod
        self.app = appmod.app
        self.task = appmod.noop
        self.ResultSet = celery.result.ResultSet
        self.info = "celery %s, redis-server on port %d" % (
            celery.__version__, port)
        # the worker is up when tasks come back; wait for the first one
        # alone, then push a few through both pool processes
        first = self.task.delay()
        try:
            first.get(timeout=min(60, remaining(deadline)))
        except Exception as e:
            if self.worker.poll() is not None:
                raise BenchFailure("celery worker exited (status %s), see %s"
                                   % (self.worker.returncode, os.path.join(
                                       self.tmp, "worker.log")))
            raise BenchFailure("celery worker did not answer: %r" % e)
        self.throughput(20, deadline)
        self.release()

    def throughput(self, n, deadline):
        # kept until release(): dropping 20k AsyncResults costs time
        # (each unsubscribes from redis), which is not the run's work
        self.results = [self.task.delay(i) for i in range(n)]
        return self.ResultSet(self.results, app=self.app).get(
            timeout=remaining(deadline))

    def release(self):
        self.results = None

    def round_trip(self, deadline):
        r = self.task.delay()
        return r.get(timeout=min(ROUND_TRIP_TIMEOUT, remaining(deadline)))

    def stop(self):
        if getattr(self, "app", None) is not None:
            # results still referenced talk to redis when collected; after
            # an interruption some are held by the traceback, so make their
            # collection quiet once redis is gone
            self.results = None
            gc.collect()
            import celery.result
            celery.result.AsyncResult.__del__ = lambda _self: None
            self.app.close()
            self.app = None
        if self.worker is not None:
            # SIGTERM: warm shutdown; the prefork children go with it
            stop_popen(self.worker, "celery worker", term_wait=15)
            self.worker = None
        if self.redis is not None:
            stop_popen(self.redis, "redis-server")
            self.redis = None
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


# name -> (constructor, what throughput measures, what latency measures)
SYSTEMS = {
    "process_pool_spawn": (
        lambda w: ProcessPool(w, "spawn", "map"),
        "ProcessPoolExecutor(spawn).map(chunksize=1)",
        "ProcessPoolExecutor(spawn).submit().result()"),
    "process_pool_spawn_submit": (
        lambda w: ProcessPool(w, "spawn", "submit"),
        "ProcessPoolExecutor(spawn): N x submit(), then every result()",
        None),
    "process_pool_fork": (
        lambda w: ProcessPool(w, "fork", "map"),
        "ProcessPoolExecutor(fork).map(chunksize=1)",
        "ProcessPoolExecutor(fork).submit().result()"),
    "process_pool_fork_submit": (
        lambda w: ProcessPool(w, "fork", "submit"),
        "ProcessPoolExecutor(fork): N x submit(), then every result()",
        None),
    "multiprocessing_pool": (
        MpPool,
        "multiprocessing.Pool (fork).map(chunksize=1)",
        "multiprocessing.Pool (fork).apply_async().get()"),
    "joblib": (
        Joblib,
        "joblib.Parallel(n_jobs=W) (loky, batch_size='auto')",
        "joblib.Parallel(n_jobs=W) of a single delayed call"),
    "dask": (
        Dask,
        "dask.distributed LocalCluster: client.map + client.gather",
        "dask.distributed LocalCluster: client.submit().result()"),
    "celery": (
        Celery,
        "Celery + Redis: N x task.delay(), then ResultSet.get()",
        "Celery + Redis: task.delay().get()"),
}


def peer_missing(name):
    """Why a peer cannot run here, or None."""
    cls = SYSTEMS[name][0]
    probe = cls if isinstance(cls, type) else type(cls(1))
    why = missing_module(probe.modules)
    if why is not None:
        return why
    extra = getattr(probe, "missing", None)
    return extra() if extra else None


# --------------------------------------------------------------------------
# child: measure one system


def run_child(args):
    name = args.child
    deadline = time.monotonic() + args.seconds - CLEANUP_RESERVE
    benches = benches_of(args, name)
    why = peer_missing(name)
    if why is not None:
        say("%s: skipped: %s" % (name, why))
        emit_skipped(name, benches, why)
        return 0
    peer = SYSTEMS[name][0](args.workers)
    rc = 0
    try:
        say("%s: starting %d worker processes" % (name, args.workers))
        t0 = time.monotonic()
        peer.start(deadline)
        say("%s: ready in %.1f s%s" % (name, time.monotonic() - t0,
                                        info_suffix(peer)))
        for b in benches:
            vals = []
            for r in range(1, args.runs + 1):
                try:
                    if b == "throughput":
                        n = args.tasks
                        t = time.perf_counter()
                        res = peer.throughput(n, deadline)
                        secs = time.perf_counter() - t
                        check_results(res, n)
                        res = None
                        if hasattr(peer, "release"):
                            peer.release()
                        gc.collect()
                        tps = n / secs
                        vals.append(tps)
                        emit({"bench": b, "system": name, "tasks": n,
                              "workers": peer.workers, "run": r,
                              "seconds": round(secs, 4),
                              "tasks_per_s": round(tps)})
                        say("%s throughput run %d: %d tasks in %.2f s: "
                            "%.0f tasks/s" % (name, r, n, secs, tps))
                    else:
                        n = args.round_trips
                        for _ in range(WARMUP_ROUND_TRIPS):
                            peer.round_trip(deadline)
                        us = []
                        for _ in range(n):
                            t = time.perf_counter_ns()
                            v = peer.round_trip(deadline)
                            us.append((time.perf_counter_ns() - t) // 1000)
                            if v is not None:
                                raise BenchFailure("result %r, not None" %
                                                   (v,))
                        p50, p99 = percentiles(us)
                        vals.append(p50)
                        emit({"bench": b, "system": name, "n": n,
                              "workers": peer.workers, "run": r,
                              "p50_us": p50, "p99_us": p99})
                        say("%s latency run %d: %d round trips, p50 %d us, "
                            "p99 %d us" % (name, r, n, p50, p99))
                except Exception as e:  # ours or the peer's
                    kind, why = failure(e, r)
                    say("%s %s: %s; no more runs of it" % (name, b, why))
                    emit({"bench": b, "system": name, "skipped": why})
                    rc = 1
                    if kind == "out of time":
                        return rc
                    break
            if len(vals) == args.runs and args.runs > 1:
                key = "tasks_per_s" if b == "throughput" else "p50_us"
                emit({"bench": b, "system": name, "summary": "median",
                      "runs": args.runs, key: round(median(vals))})
    except Exception as e:  # ours or the peer's
        why = "could not start: %s: %s" % (type(e).__name__, e)
        say("%s: %s" % (name, why))
        emit_skipped(name, benches, why)
        rc = 1
    finally:
        # what stop() misses (resource trackers, orphans) the parent finds
        # in this child's session after the child has exited
        peer.stop()
    return rc


# --------------------------------------------------------------------------
# parent: one child per system, each in its own session, each time-bounded


def benches_of(args, name):
    return [b for b in args.bench
            if b == "throughput" or SYSTEMS[name][2] is not None]


def run_parent(args):
    start = time.monotonic()
    catch_sigterm()
    return run_children(
        args, start, __file__,
        ["--runs", str(args.runs), "--tasks", str(args.tasks),
         "--round-trips", str(args.round_trips), "--workers",
         str(args.workers), "--bench", ",".join(args.bench)],
        lambda name: benches_of(args, name))


def main():
    ap = argparse.ArgumentParser(
        description="ferry bench throughput/latency for Python peers "
        "(no-op tasks).  One JSON object per line on stdout.")
    ap.add_argument("-n", "--tasks", type=int, default=20000,
                    help="throughput: tasks per run (default 20000)")
    ap.add_argument("--round-trips", type=int, default=500,
                    help="latency: round trips per run (default 500)")
    ap.add_argument("-w", "--workers", type=int, default=2,
                    help="worker processes (default 2)")
    ap.add_argument("-r", "--runs", type=int, default=3,
                    help="runs per system and benchmark (default 3)")
    ap.add_argument("--systems", default=",".join(SYSTEMS),
                    help="comma-separated systems (default: all; see "
                    "--list)")
    ap.add_argument("--bench", default="throughput,latency",
                    help="throughput, latency or both (default both)")
    ap.add_argument("--timeout", type=float, default=300,
                    help="seconds per system, start to stop (default 300)")
    ap.add_argument("--budget", type=float, default=900,
                    help="seconds for all systems together; systems not "
                    "started by then are skipped (default 900)")
    ap.add_argument("--list", action="store_true",
                    help="list the systems and what each one measures")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=300,
                    help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.list:
        for name, (_, thr, lat) in SYSTEMS.items():
            why = peer_missing(name)
            print("%-26s throughput: %s" % (name, thr))
            print("%-26s latency:    %s" % ("", lat or "(not measured)"))
            if why:
                print("%-26s SKIPPED here: %s" % ("", why))
        return 0
    check_ranges(ap, (("--tasks", args.tasks, 1, 10**7),
                      ("--round-trips", args.round_trips, 1, 10**6),
                      ("--workers", args.workers, 1, 256),
                      ("--runs", args.runs, 1, 100)))
    args.bench = [b for b in args.bench.split(",") if b]
    for b in args.bench:
        if b not in ("throughput", "latency"):
            ap.error("unknown benchmark '%s' (throughput or latency)" % b)
    if args.child is not None:
        if args.child not in SYSTEMS:
            ap.error("unknown system '%s'" % args.child)
        # a SIGTERM from the parent unwinds through the finally blocks
        catch_sigterm()
        return interruptible(run_child, args)
    check_systems(ap, args, SYSTEMS)
    return interruptible(run_parent, args)


if __name__ == "__main__":
    sys.exit(main())
