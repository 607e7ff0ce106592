#!/usr/bin/python3
"""graph.py - `ferry bench graph`, measured for Python peers.

Run with Debian's interpreter (/usr/bin/python3): the `python3` first on the
PATH of these machines is a separate build that does not see Debian's
python3-* packages.  The Dask peer needs python3-distributed.

    /usr/bin/python3 bench/peers/graph.py [--runs 3] [--links 10000]
        [--leaves 100000] [--fanin 16] [--bench chain|tree|all]
        [--systems dask,process_pool_loop]

The two task-graph benchmarks of `ferry bench graph`, with the same number of
worker processes (default 2):

  graph_chain  N dependent tasks: the first gets 0, each adds 1 to the
               result of the one before, so the last returns N (checked).
               us_per_link = seconds * 1e6 / N.  Default N = 10000.
  graph_tree   M leaf tasks (leaf i returns i) summed by a tree of sum
               tasks of fan-in F, level by level (each level has
               ceil(n / F) sum tasks over the n results of the level below)
               until one root; the root must equal M(M-1)/2.  tasks = all
               the tasks of the tree; tasks_per_s = tasks / seconds.
               Default M = 100000 (Ferry's default is 1,000,000: see
               bench/README.md for why the peers use fewer), F = 16.

The clock runs from the first submit to the root's (the last link's)
result.  Starting the cluster or pool, and a small warm-up chain and tree,
are not timed.

The peers:

  dask               dask.distributed LocalCluster(n_workers=W,
                     threads_per_worker=1, processes=True); futures passed
                     as arguments: client.submit(add1, previous_future)
                     for the chain; client.map(leaf, range(M)) and
                     client.submit(sum_of, *futures) per group for the
                     tree.  Everything is submitted before the first wait;
                     the scheduler runs each task once its inputs are done,
                     as Ferry's does.
  process_pool_loop  concurrent.futures.ProcessPoolExecutor (fork, W
                     processes).  Its futures cannot be passed as
                     arguments, so the client must do what the scheduler
                     does in the others: for the chain, wait for each
                     result and submit the next link with it; for the
                     tree, submit a level, wait for all of it, and submit
                     the next level with the values.  Every link (every
                     level) costs a round trip through the client.

Output: one JSON object per line on stdout with the fields of `ferry bench
graph --json` plus "system", e.g.

  {"bench":"graph_chain","system":"dask","links":10000,"workers":2,
   "run":3,"seconds":69.7566,"us_per_link":6975.7}
  {"bench":"graph_tree","system":"dask","leaves":100000,"fanin":16,
   "tasks":106669,"workers":2,"run":3,"seconds":229.5877,"tasks_per_s":465}
  {"bench":"graph_chain","system":"dask","summary":"median","runs":3,
   "us_per_link":9951.7}
  {"bench":"graph_tree","system":"dask","summary":"median","runs":3,
   "seconds":378.0421,"tasks_per_s":282}

and, for a peer that could not be measured, "skipped" and the reason
instead of numbers.  Progress goes to stderr.  The median is the middle
value of the sorted runs (the upper middle for an even count), as in
`ferry bench`; seconds and tasks_per_s are each the median of their own
column.

Every system runs in its own child process, in its own session, with a time
limit; the child stops the pool or cluster it started, and afterwards the
parent kills, by process id, anything still left in that session.  Nothing
outlives this script.
"""

import argparse
import gc
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import (BenchFailure, DaskPeer, ExecutorPeer,  # noqa: E402
                    catch_sigterm, check_ranges, check_systems, emit,
                    emit_skipped, failure, info_suffix, interruptible,
                    median, missing_module, remaining, run_children, say)

common.PROG = "graph.py"
CLEANUP_RESERVE = common.CLEANUP_RESERVE
ROUND_TRIP_TIMEOUT = 30.0  # one task of the pool's chain may take this long
BENCHES = ("graph_chain", "graph_tree")
WARMUP_LINKS = 20
WARMUP_LEAVES, WARMUP_FANIN = 64, 4
CHECK_EVERY = 1000  # submits between looks at the deadline


# --------------------------------------------------------------------------
# the tasks


def add1(x):
    return x + 1


def leaf(i):
    return i


def sum_of(*xs):
    return sum(xs)


# --------------------------------------------------------------------------
# the shape of the tree, and the checks


def tree_tasks(m, f):
    """The tasks of a tree over m leaves with fan-in f: the leaves, and
    ceil(n / f) sum tasks on every level of n > 1 nodes."""
    total, n = m, m
    while n > 1:
        n = -(-n // f)
        total += n
    return total


def check_chain(last, n):
    if last != n:
        raise BenchFailure("the last of %d links returned %r, not %d" %
                           (n, last, n))


def check_tree(root, m):
    want = m * (m - 1) // 2
    if root != want:
        raise BenchFailure("the root of %d leaves returned %r, not %d" %
                           (m, root, want))


def groups(items, f):
    return [items[j:j + f] for j in range(0, len(items), f)]


# --------------------------------------------------------------------------
# the peers.  Each has start(deadline) (which warms up), chain(n, deadline)
# -> the last link's result, tree(m, f, deadline) -> the root's result,
# release() (called after a run, outside the clock, to drop what the run
# left behind), stop(), and a `workers` count.


class Dask(DaskPeer):
    """dask.distributed LocalCluster; futures as arguments."""

    modules = ("dask", "distributed")

    def __init__(self, workers):
        self.workers = workers
        self.futs = []

    def start(self, deadline):
        self.start_cluster(self.workers, deadline)
        check_chain(self.chain(WARMUP_LINKS, deadline), WARMUP_LINKS)
        self.release(deadline)
        check_tree(self.tree(WARMUP_LEAVES, WARMUP_FANIN, deadline),
                   WARMUP_LEAVES)
        self.release(deadline)

    def chain(self, n, deadline):
        submit = self.client.submit
        # pure=False: a fresh key for every task (no hashing of the
        # arguments, no reuse of an earlier run's results)
        x = submit(add1, 0, pure=False)
        futs = self.futs = [x]
        for i in range(1, n):
            x = submit(add1, x, pure=False)
            futs.append(x)
            if i % CHECK_EVERY == 0:
                remaining(deadline)
        return x.result(timeout=remaining(deadline))

    def tree(self, m, f, deadline):
        submit = self.client.submit
        level = self.client.map(leaf, range(m), pure=False)
        futs = self.futs = list(level)
        while len(level) > 1:
            nxt = []
            for g in groups(level, f):
                nxt.append(submit(sum_of, *g, pure=False))
                if len(nxt) % CHECK_EVERY == 0:
                    remaining(deadline)
            futs.extend(nxt)
            level = nxt
        return level[0].result(timeout=remaining(deadline))

    def release(self, deadline):
        """Drop the run's futures, and wait (at most 60 s) until the
        scheduler has forgotten their tasks, so that the next run does not
        share the cluster with this one's cleanup.

        Not client.cancel: Dask's scheduler cancels a key by cancelling
        each of its dependents in turn, recursively, so cancelling every
        link of a chain costs O(N^2) (with 10000 links it grew past 20 GB
        in minutes).  Dropped futures are released one key each."""
        self.futs = []
        gc.collect()
        until = min(time.monotonic() + 60, deadline)
        left = None
        while time.monotonic() < until:
            left = self.client.run_on_scheduler(_scheduler_tasks)
            if left == 0:
                return
            time.sleep(0.1)
        say("dask: the scheduler still had %s tasks after a run" % left)


def _scheduler_tasks(dask_scheduler=None):
    return len(dask_scheduler.tasks)


class PoolLoop(ExecutorPeer):
    """ProcessPoolExecutor (fork): the client waits for each result and
    submits what depends on it."""

    modules = ()

    def __init__(self, workers):
        self.workers = workers

    def start(self, deadline):
        import concurrent.futures as cf
        import multiprocessing as mp
        self.cf = cf
        self.ex = cf.ProcessPoolExecutor(max_workers=self.workers,
                                         mp_context=mp.get_context("fork"))
        check_chain(self.chain(WARMUP_LINKS, deadline), WARMUP_LINKS)
        check_tree(self.tree(WARMUP_LEAVES, WARMUP_FANIN, deadline),
                   WARMUP_LEAVES)
        procs = getattr(self.ex, "_processes", None) or {}
        if len(procs) != self.workers:
            say("warning: %d of %d pool processes running after warm-up" %
                (len(procs), self.workers))

    def chain(self, n, deadline):
        submit = self.ex.submit
        x = 0
        for _ in range(n):
            x = submit(add1, x).result(
                timeout=min(ROUND_TRIP_TIMEOUT, remaining(deadline)))
        return x

    def tree(self, m, f, deadline):
        submit = self.ex.submit
        vals = self.wait([submit(leaf, i) for i in range(m)], deadline)
        while len(vals) > 1:
            vals = self.wait([submit(sum_of, *g) for g in groups(vals, f)],
                             deadline)
        return vals[0]

    def release(self, deadline):
        pass


# name -> (constructor, what the chain measures, what the tree measures)
SYSTEMS = {
    "process_pool_loop": (
        PoolLoop,
        "ProcessPoolExecutor(fork): the client submits a link, waits for "
        "its result, submits the next with it",
        "ProcessPoolExecutor(fork): the client submits a level, waits for "
        "all of it, submits the next level with the values"),
    "dask": (
        Dask,
        "LocalCluster: N x client.submit(add1, previous_future), then the "
        "last result",
        "LocalCluster: client.map(leaf, range(M)), client.submit(sum_of, "
        "*futures) per group, then the root's result"),
}


def peer_missing(name):
    """Why a peer cannot run here, or None."""
    return missing_module(SYSTEMS[name][0].modules)


# --------------------------------------------------------------------------
# child: measure one system


def one_run(peer, b, r, args, deadline):
    """Run r of benchmark b: emit its line; the value its median is of."""
    name = args.child
    if b == "graph_chain":
        n = args.links
        t = time.perf_counter()
        last = peer.chain(n, deadline)
        secs = time.perf_counter() - t
        check_chain(last, n)
        us = secs * 1e6 / n
        emit({"bench": b, "system": name, "links": n,
              "workers": peer.workers, "run": r, "seconds": round(secs, 4),
              "us_per_link": round(us, 1)})
        say("%s chain run %d: %d links in %.2f s: %.1f us per link" %
            (name, r, n, secs, us))
        return us
    m, f = args.leaves, args.fanin
    tasks = tree_tasks(m, f)
    t = time.perf_counter()
    root = peer.tree(m, f, deadline)
    secs = time.perf_counter() - t
    check_tree(root, m)
    tps = tasks / secs
    emit({"bench": b, "system": name, "leaves": m, "fanin": f,
          "tasks": tasks, "workers": peer.workers, "run": r,
          "seconds": round(secs, 4), "tasks_per_s": round(tps)})
    say("%s tree run %d: %d leaves, fan-in %d, %d tasks in %.2f s: "
        "%.0f tasks/s" % (name, r, m, f, tasks, secs, tps))
    return secs, tps


def emit_median(b, name, runs, vals):
    if b == "graph_chain":
        emit({"bench": b, "system": name, "summary": "median", "runs": runs,
              "us_per_link": round(median(vals), 1)})
    else:
        emit({"bench": b, "system": name, "summary": "median", "runs": runs,
              "seconds": round(median([v[0] for v in vals]), 4),
              "tasks_per_s": round(median([v[1] for v in vals]))})


def run_child(args):
    name = args.child
    deadline = time.monotonic() + args.seconds - CLEANUP_RESERVE
    why = peer_missing(name)
    if why is not None:
        say("%s: skipped: %s" % (name, why))
        emit_skipped(name, args.bench, why)
        return 0
    peer = SYSTEMS[name][0](args.workers)
    rc = 0
    try:
        say("%s: starting %d worker processes" % (name, args.workers))
        t0 = time.monotonic()
        peer.start(deadline)
        say("%s: ready (warmed up) in %.1f s%s" % (
            name, time.monotonic() - t0, info_suffix(peer)))
        for b in args.bench:
            vals = []
            for r in range(1, args.runs + 1):
                try:
                    vals.append(one_run(peer, b, r, args, deadline))
                    peer.release(deadline)
                    gc.collect()
                except Exception as e:  # ours or the peer's
                    kind, why = failure(e, r)
                    say("%s %s: %s; no more runs of it" % (name, b, why))
                    emit({"bench": b, "system": name, "skipped": why})
                    rc = 1
                    if kind == "out of time":
                        return rc
                    try:
                        peer.release(deadline)
                    except Exception:
                        pass
                    break
            if len(vals) == args.runs and args.runs > 1:
                emit_median(b, name, args.runs, vals)
    except Exception as e:  # ours or the peer's
        why = "could not start: %s: %s" % (type(e).__name__, e)
        say("%s: %s" % (name, why))
        emit_skipped(name, args.bench, why)
        rc = 1
    finally:
        # what stop() misses (nannies, resource trackers, orphans) the
        # parent finds in this child's session after the child has exited
        peer.stop()
    return rc


# --------------------------------------------------------------------------
# parent: one child per system, each in its own session, each time-bounded


def run_parent(args):
    start = time.monotonic()
    catch_sigterm()
    return run_children(
        args, start, __file__,
        ["--runs", str(args.runs), "--links", str(args.links),
         "--leaves", str(args.leaves), "--fanin", str(args.fanin),
         "--workers", str(args.workers), "--bench", ",".join(args.bench)],
        lambda _name: args.bench)


def parse_benches(ap, s):
    out = []
    for b in s.split(","):
        if b == "all":
            want = BENCHES
        elif b in ("chain", "tree"):
            want = ("graph_" + b,)
        elif b in BENCHES:
            want = (b,)
        elif b == "":
            continue
        else:
            ap.error("unknown benchmark '%s' (chain, tree or all)" % b)
        out.extend(w for w in want if w not in out)
    if not out:
        ap.error("no benchmark given (chain, tree or all)")
    return [b for b in BENCHES if b in out]


def main():
    ap = argparse.ArgumentParser(
        description="ferry bench graph (a chain and a tree of dependent "
        "tasks) for Python peers.  One JSON object per line on stdout.")
    ap.add_argument("--links", type=int, default=10000,
                    help="chain: dependent tasks per run (default 10000)")
    ap.add_argument("--leaves", type=int, default=100000,
                    help="tree: leaf tasks per run (default 100000)")
    ap.add_argument("--fanin", type=int, default=16,
                    help="tree: inputs of a sum task (default 16)")
    ap.add_argument("-w", "--workers", type=int, default=2,
                    help="worker processes (default 2)")
    ap.add_argument("-r", "--runs", type=int, default=3,
                    help="runs per system and benchmark (default 3)")
    ap.add_argument("--bench", default="all",
                    help="chain, tree or all (default all)")
    ap.add_argument("--systems", default=",".join(SYSTEMS),
                    help="comma-separated systems (default: all; see "
                    "--list)")
    ap.add_argument("--timeout", type=float, default=2400,
                    help="seconds per system, start to stop (default 2400)")
    ap.add_argument("--budget", type=float, default=3000,
                    help="seconds for all systems together; systems not "
                    "started by then are skipped (default 3000)")
    ap.add_argument("--list", action="store_true",
                    help="list the systems and what each one measures")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=2400,
                    help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.list:
        for name, (_, chain, tree) in SYSTEMS.items():
            why = peer_missing(name)
            print("%-18s chain: %s" % (name, chain))
            print("%-18s tree:  %s" % ("", tree))
            if why:
                print("%-18s SKIPPED here: %s" % ("", why))
        return 0
    check_ranges(ap, (("--links", args.links, 1, 10**8),
                      ("--leaves", args.leaves, 1, 10**8),
                      ("--fanin", args.fanin, 2, 10**6),
                      ("--workers", args.workers, 1, 256),
                      ("--runs", args.runs, 1, 100)))
    args.bench = parse_benches(ap, args.bench)
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
