"""py_common.py - what the Python-side benchmarks (py_heavy.py,
py_small.py, py_crash.py) share, on top of common.py.

- Finding Ferry's Python package (`import ferry`, with PYTHONPATH=
  build/python or --ferry-python DIR) and saying why it cannot be used.
- The versions of Python, Ferry and every peer, for the output.
- Process trees: every process of these scripts is a child subreaper
  (prctl PR_SET_CHILD_SUBREAPER), so whatever a system starts stays in its
  process tree even when it detaches (a daemonizing `ferry cluster up`, a
  nanny's worker): the PSS sampler sums the whole tree, and cleanup stops
  the whole tree by pid.
- A PSS sampler over a process tree (Pss of /proc/PID/smaps_rollup).
- run_systems(): one child per system, each in its own session, with a
  time limit (common.run_children), and afterwards a sweep, by pid, of
  anything left in this script's process tree.

Not a script.
"""

import ctypes
import os
import signal
import sys
import threading
import time

import common
from common import (descendants, emit, kill_pids, pid_list, proc_stat,
                    pss_bytes, run_children, say)

PSS_INTERVAL = 0.05  # seconds between PSS samples
PR_SET_CHILD_SUBREAPER = 36

# --------------------------------------------------------------------------
# Ferry's package


def use_ferry_python(path):
    """Put Ferry's package directory (build/python) first on sys.path and
    in PYTHONPATH (for the children of this script)."""
    if not path:
        return
    path = os.path.abspath(path)
    if path not in sys.path:
        sys.path.insert(0, path)
    old = os.environ.get("PYTHONPATH")
    parts = old.split(os.pathsep) if old else []
    if path not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([path] + parts)


def ferry_missing():
    """Why Ferry's Python package cannot run the benchmarks here, or None.
    Imports it (and the parts the benchmarks use) to find out."""
    import importlib.util
    if importlib.util.find_spec("ferry") is None:
        return ("module 'ferry' not installed for %s (build Ferry and set "
                "PYTHONPATH=build/python, or --ferry-python DIR)" %
                sys.executable)
    try:
        import ferry
        for name in ("task", "Client", "LocalCluster", "object"):
            getattr(ferry, name)
    except Exception as e:  # a part not built, or not there yet
        return "ferry's Python package cannot be used: %s: %s" % (
            type(e).__name__, e)
    return None


def ferry_python_path():
    """The directory holding the package `ferry` that this process
    imports (for the workers' python_path), or None."""
    try:
        import ferry
    except ImportError:
        return None
    return os.path.dirname(os.path.dirname(os.path.abspath(ferry.__file__)))


def ferry_program():
    """The `ferry` program that goes with the package."""
    import ferry._paths
    return ferry._paths.ferry_bin()


def peers_dir():
    return os.path.dirname(os.path.abspath(__file__))


# --------------------------------------------------------------------------
# versions


def _version(mod):
    import importlib
    import importlib.util
    try:
        if importlib.util.find_spec(mod) is None:
            return "not installed"
        m = importlib.import_module(mod)
    except Exception as e:
        return "cannot import (%s)" % type(e).__name__
    if mod == "ferry":
        try:
            import ferry._paths
            v = ferry._paths.VERSION
            return v + (" (build tree %s)" % ferry_python_path()
                        if ferry._paths.in_build_tree() else "")
        except Exception:
            return "unknown"
    v = getattr(m, "__version__", None) or getattr(m, "version", None)
    if isinstance(v, tuple):
        v = ".".join(map(str, v))
    return str(v) if v is not None else "unknown"


def emit_versions(bench, mods):
    """One line {"bench": "versions", ...}: the interpreter and the
    modules, as found by this interpreter."""
    o = {"bench": "versions", "for": bench, "python": "%s (%s)" % (
        sys.version.split()[0], sys.executable)}
    for m in mods:
        o[m] = _version(m)
    emit(o)
    say("versions: " + ", ".join("%s %s" % (k, v) for k, v in o.items()
                                 if k not in ("bench", "for")))


# --------------------------------------------------------------------------
# process trees


def become_subreaper():
    """Orphans of this process's descendants become its children (rather
    than init's), so that they stay in its tree.  Linux only; harmless if
    it fails."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def tree(root=None):
    """root (default: this process) and its live descendants."""
    root = os.getpid() if root is None else root
    return [root] + descendants(root)


def stop_tree(what, grace=2.0, spare=None):
    """Stop every live descendant of this process, by pid: wait up to
    `grace` seconds for them to exit by themselves (a process whose parent
    has gone usually does), then SIGTERM, wait, SIGKILL.  spare(pid): true
    for a process to leave alone.  Reaps what it can.  The pids it
    stopped."""
    def live():
        return [p for p in descendants(os.getpid())
                if spare is None or not spare(p)]
    reap()
    pids = live()
    if not pids:
        return []
    _wait_reaping(pids, grace)
    pids = live()
    if not pids:
        reap()
        return []
    say("%s: stopping pids %s" % (what, pid_list(pids)))
    kill_pids(pids, signal.SIGTERM)
    left = _wait_reaping(pids, 5.0)
    if left:
        say("%s: killing pids %s" % (what, pid_list(left)))
        kill_pids(left, signal.SIGKILL)
        _wait_reaping(left, 5.0)
    reap()
    return pids


def _wait_reaping(pids, seconds):
    deadline = time.monotonic() + seconds
    live = list(pids)
    while live and time.monotonic() < deadline:
        reap()
        live = [p for p in live if proc_stat(p) is not None]
        if live:
            time.sleep(0.05)
    return live


def reap():
    """Reap exited children that nobody waits for (orphans that came to
    this subreaper).  Only those: a child still running, or one a pool
    will wait for, is not touched (waitid with WNOWAIT looks first)."""
    for pid in list(_zombie_children()):
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def _zombie_children():
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                st = f.read().decode("ascii", "replace")
        except OSError:
            continue
        rest = st[st.rfind(")") + 2:].split()
        if len(rest) > 1 and rest[0] == "Z" and int(rest[1]) == me:
            yield int(name)


def tree_pss():
    """(total PSS of this process and all its descendants, this process's
    own PSS, the number of processes)."""
    pids = tree()
    own = pss_bytes(pids[0])
    return own + sum(pss_bytes(p) for p in pids[1:]), own, len(pids)


def shmem():
    """Shmem of /proc/meminfo in bytes: tmpfs and shared memory, mapped or
    not (joblib's memmapped copies in /dev/shm count here whether or not a
    process maps them; in PSS only while one does)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("Shmem:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class TreePss:
    """The total PSS of this process's whole tree every PSS_INTERVAL s, in
    a thread, plus one sample at the start and one at the end; the peak,
    and this process's own PSS at that peak (the driver: the client, the
    parent of a pool, Dask's client and scheduler).  Also the largest
    growth of the machine's Shmem over its value at the start."""

    def __init__(self):
        self.peak = self.driver_at_peak = self.procs_at_peak = 0
        self.idle = None
        self.shmem_idle = self.shmem_growth = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = None

    def sample(self):
        total, own, n = tree_pss()
        shm = shmem()
        if self.idle is None:
            self.idle, self.shmem_idle = total, shm
        self.shmem_growth = max(self.shmem_growth, shm - self.shmem_idle)
        if total > self.peak:
            self.peak, self.driver_at_peak, self.procs_at_peak = (
                total, own, n)
        self.samples += 1

    def _main(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(PSS_INTERVAL)

    def start(self):
        self.sample()  # before the clock: the idle total
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        return self

    def finish(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sample()


# --------------------------------------------------------------------------
# parent and child


def run_systems(args, start, script, child_args, benches):
    """common.run_children for one system after the other, each followed
    by a sweep of anything left in this process's tree (a detached
    process the system started, which came to this subreaper when its
    parent exited)."""
    import copy
    rc = 0
    for name in args.systems:
        one = copy.copy(args)
        one.systems = [name]
        try:
            rc |= run_children(one, start, script, child_args, benches)
        finally:
            stop_tree("%s: left behind" % name)
    return rc


def child_setup():
    """In a child measuring one system: a subreaper, and a SIGTERM that
    unwinds through the finally blocks."""
    become_subreaper()
    common.catch_sigterm()


def leftovers(name, seconds=5.0):
    """After a run's stop: the descendants still there, after waiting up
    to `seconds` for them to go, said but not stopped (the
    multiprocessing resource tracker that a pool or Dask's nanny starts
    lives as long as this process and is not counted; the child's end
    stops the rest)."""
    deadline = time.monotonic() + seconds
    while True:
        reap()
        left = [p for p in descendants(os.getpid())
                if not is_resource_tracker(p)]
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if left:
        say("%s: still running after stop: %s" % (name, " ".join(
            "%d (%s)" % (p, _comm(p)) for p in left)))
    return left


def _comm(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
        return b" ".join(argv[:4]).decode("utf-8", "replace")[:120]
    except OSError:
        return "?"


def is_resource_tracker(pid):
    return "resource_tracker" in _comm(pid)


def child_cleanup(name):
    """At the end of a child: stop what is left of its tree by pid, but
    the resource trackers of multiprocessing and loky, which ignore
    SIGTERM and exit once this process has (their pipe from it closes);
    the parent sweeps the tree after the child has exited."""
    stop_tree("%s: at the end" % name, spare=is_resource_tracker)


def add_common_args(ap, systems, workers, timeout, budget):
    """The options every py_* benchmark takes, with its own defaults."""
    ap.add_argument("-w", "--workers", type=int, default=workers,
                    help="worker processes (default %d)" % workers)
    ap.add_argument("-r", "--runs", type=int, default=3,
                    help="runs per system (default 3)")
    ap.add_argument("--systems", default=",".join(systems),
                    help="comma-separated, of: %s (default: all; see "
                    "--list)" % ", ".join(systems))
    ap.add_argument("--timeout", type=float, default=timeout,
                    help="seconds per system, start to stop (default %g)"
                    % timeout)
    ap.add_argument("--budget", type=float, default=budget,
                    help="seconds for all systems together; systems not "
                    "started by then are skipped (default %g)" % budget)
    ap.add_argument("--list", action="store_true",
                    help="list the systems and what each one measures")
    ap.add_argument("--ferry-python", metavar="DIR",
                    help="the directory holding Ferry's package `ferry` "
                    "(e.g. build/python); default: PYTHONPATH")
    ap.add_argument("--child", help=__import__("argparse").SUPPRESS)
    ap.add_argument("--seconds", type=float, default=300,
                    help=__import__("argparse").SUPPRESS)


def local_cluster(workers, **kw):
    """A ferry.LocalCluster of `workers` processes that import py_tasks
    from this directory (and Ferry's package from --ferry-python's)."""
    import ferry
    path = [peers_dir()]
    pkg = ferry_python_path()
    if pkg:
        path.append(pkg)
    return ferry.LocalCluster(workers=workers, python_modules=["py_tasks"],
                              python_path=path, **kw)


class FerryPeer:
    """What every benchmark's Ferry system shares: a LocalCluster and its
    client, both closed by stop()."""

    cluster = client = None

    def stop(self):
        for what, x in (("client", self.client), ("cluster", self.cluster)):
            if x is not None:
                try:
                    x.close()
                except Exception as e:
                    say("ferry: closing the %s: %s" % (what, e))
        self.client = self.cluster = None


def child_args_common(args):
    return (["--ferry-python", args.ferry_python] if args.ferry_python
            else [])
