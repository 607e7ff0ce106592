"""common.py - what the Python peer benchmarks (noop.py, heavy.py) share.

Output (JSON lines, progress on stderr), medians, time limits, finding and
stopping processes by pid, stopping process pools and Dask clusters, and the
parent side that runs every system in its own child process, in its own
session, with a time limit.  Also the helpers the reports of compare.sh and
compare-heavy.sh use.

Not a script.  The scripts import it after putting their own directory
first on sys.path, so that they work from any directory.
"""

import json
import os
import signal
import subprocess
import sys
import time

PROG = "peers"  # set by the script: the prefix of its messages
CLEANUP_RESERVE = 20.0  # seconds of a system's time kept for stopping it


# --------------------------------------------------------------------------
# output


def emit(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def emit_skipped(name, benches, why):
    for b in benches:
        emit({"bench": b, "system": name, "skipped": why})


def say(msg):
    sys.stderr.write(PROG + ": " + msg + "\n")
    sys.stderr.flush()


def median(vals):
    """The middle value of the sorted values (the upper middle for an even
    count), as ferry bench computes it."""
    return sorted(vals)[len(vals) // 2]


def info_suffix(peer):
    info = getattr(peer, "info", None)
    return " (%s)" % info if info else ""


class BenchTimeout(Exception):
    pass


class BenchFailure(Exception):
    pass


def remaining(deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise BenchTimeout("out of time")
    return left


def failure(e, run):
    """(kind, why) of an exception that ended run number `run`: kind is
    "out of time" or "failed"."""
    kind = ("out of time" if isinstance(e, BenchTimeout) or
            "imeout" in type(e).__name__ else "failed")
    why = "%s in run %d: %s: %s" % (
        kind, run, type(e).__name__,
        str(e) or "no result within the time limit")
    return kind, why


def missing_module(names):
    """Why one of the modules cannot be imported here, or None."""
    import importlib.util
    for m in names:
        if importlib.util.find_spec(m) is None:
            return ("module '%s' not installed for %s (Debian: apt-get "
                    "install python3-%s)" % (
                        m, sys.executable,
                        "distributed" if m == "dask" else m))
    return None


# --------------------------------------------------------------------------
# processes: find and stop what we started, by pid


def proc_stat(pid):
    """(ppid, session id) of a process, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses
    rest = data[data.rfind(")") + 2:].split()
    if len(rest) < 4 or rest[0] == "Z":
        return None
    return int(rest[1]), int(rest[3])


def all_pids():
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def descendants(root):
    """Live descendants of root (found through parent ids)."""
    kids = {}
    for pid in all_pids():
        st = proc_stat(pid)
        if st is not None:
            kids.setdefault(st[0], []).append(pid)
    out, todo = [], [root]
    while todo and len(out) < 100000:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def in_session(sid):
    out = []
    for pid in all_pids():
        st = proc_stat(pid)
        if st is not None and st[1] == sid:
            out.append(pid)
    return out


def kill_pids(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def wait_gone(pids, seconds):
    deadline = time.monotonic() + seconds
    live = list(pids)
    while live and time.monotonic() < deadline:
        live = [p for p in live if proc_stat(p) is not None]
        if live:
            time.sleep(0.05)
    return [p for p in live if proc_stat(p) is not None]


def terminate(p, seconds, stubborn):
    """SIGTERM a subprocess we started, wait for it, SIGKILL it (saying
    `stubborn`) if it has not exited within `seconds`."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            say(stubborn)
            p.kill()
            p.wait(timeout=10)


def sweep(pids, message):
    """Wait a little for pids to exit; SIGKILL those that do not, saying
    message(the pids left).  The pids left (before the SIGKILL)."""
    left = wait_gone(pids, 5.0)
    if left:
        say(message(left))
        kill_pids(left, signal.SIGKILL)
        wait_gone(left, 5.0)
    return left


def pid_list(pids):
    return " ".join(map(str, pids))


def stop_popen(p, name, term_wait=10.0):
    """Stop a subprocess we started, and its descendants, by pid."""
    if p is None:
        return
    kids = descendants(p.pid)
    terminate(p, term_wait, "%s (pid %d) ignored SIGTERM; killing it" %
              (name, p.pid))
    sweep(kids, lambda left: "%s left %d process(es); killing pids %s" %
          (name, len(left), pid_list(left)))


# --------------------------------------------------------------------------
# peers: what the pools and clusters of both scripts have in common


class ExecutorPeer:
    """A peer around a concurrent.futures.ProcessPoolExecutor in self.ex
    (self.cf: the concurrent.futures module)."""

    ex = None

    def wait(self, futs, deadline):
        """Every result, or BenchTimeout when the time is up."""
        done, not_done = self.cf.wait(futs, timeout=remaining(deadline))
        if not_done:
            for f in not_done:
                f.cancel()
            raise BenchTimeout("%d of %d tasks unfinished" %
                               (len(not_done), len(futs)))
        return [f.result() for f in futs]

    def stop(self):
        if self.ex is None:
            return
        # The executor's manager thread joins (reaps) the processes on
        # shutdown; joining them here as well races with it (a process
        # reaped by the other thread looks alive to Process.join), so wait
        # for that thread, with a bound, and check the pids in /proc.
        pids = sorted((getattr(self.ex, "_processes", None) or {}))
        manager = getattr(self.ex, "_executor_manager_thread", None)
        self.ex.shutdown(wait=False, cancel_futures=True)
        if manager is not None:
            manager.join(timeout=15)
        if sweep(pids, lambda left: "pool processes %s did not exit; "
                 "killing them" % pid_list(left)):
            if manager is not None:
                manager.join(timeout=5)
        self.ex = None


class DaskPeer:
    """A peer around a dask.distributed LocalCluster of W single-threaded
    worker processes, in self.cluster, and its client, in self.client."""

    cluster = client = None

    def start_cluster(self, workers, deadline, **kw):
        import logging
        import distributed
        self.distributed = distributed
        self.cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True,
            dashboard_address=None, silence_logs=logging.ERROR, **kw)
        self.client = distributed.Client(self.cluster)
        self.client.wait_for_workers(workers,
                                     timeout=min(60, remaining(deadline)))
        self.info = "distributed %s" % distributed.__version__

    def stop(self):
        if self.client is not None:
            try:
                self.client.close(timeout=20)
            except Exception as e:
                say("dask: closing client: %s" % e)
        if self.cluster is not None:
            try:
                self.cluster.close(timeout=30)
            except Exception as e:
                say("dask: closing cluster: %s" % e)
        self.client = self.cluster = None


# --------------------------------------------------------------------------
# parent: one child per system, each in its own session, each time-bounded

_main_pid = os.getpid()


def _on_signal(signum, _frame):
    if os.getpid() != _main_pid:
        # a forked pool worker inherited this handler: die as by default
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise KeyboardInterrupt("signal %d" % signum)


def catch_sigterm():
    """Make SIGTERM unwind through the finally blocks (in this process)."""
    signal.signal(signal.SIGTERM, _on_signal)


def stop_child_session(p, name):
    """Stop a child and everything in its session, by pid."""
    terminate(p, CLEANUP_RESERVE,
              "%s: child %d did not stop; killing it" % (name, p.pid))
    sweep(in_session(p.pid), lambda left: "%s: killing leftover pids %s" %
          (name, pid_list(left)))


def run_children(args, start, script, child_args, benches):
    """Measure each of args.systems in a child process, `script --child
    NAME --seconds S` plus child_args, in its own session, for at most
    --timeout seconds and what is left of --budget since `start`.
    benches(name): the benchmarks a system reports (for skipped lines).
    0, or 1 if a system was skipped, failed or ran out of time."""
    rc = 0
    for name in args.systems:
        left = args.budget - (time.monotonic() - start)
        secs = min(args.timeout, left)
        if secs < 2 * CLEANUP_RESERVE:
            why = "out of time (--budget %d s used up)" % args.budget
            say("%s: skipped: %s" % (name, why))
            emit_skipped(name, benches(name), why)
            rc = 1
            continue
        cmd = [sys.executable, os.path.abspath(script), "--child", name,
               "--seconds", "%.1f" % secs] + child_args
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        try:
            try:
                crc = p.wait(timeout=secs + 5)
            except subprocess.TimeoutExpired:
                why = "out of time (limit %.0f s, --timeout)" % secs
                say("%s: %s; stopping it" % (name, why))
                emit_skipped(name, benches(name), why)
                crc = 1
        except KeyboardInterrupt:
            say("interrupted; stopping %s" % name)
            raise
        finally:
            stop_child_session(p, name)
        if crc != 0:
            rc = 1
    return rc


def check_ranges(ap, ranges):
    """ap.error unless every (option, value, low, high) is in range."""
    for opt, v, lo, hi in ranges:
        if not lo <= v <= hi:
            ap.error("%s must be between %d and %d" % (opt, lo, hi))


def check_systems(ap, args, systems):
    """args.systems, a comma-separated list, as a list of known names."""
    args.systems = [s for s in args.systems.split(",") if s]
    for s in args.systems:
        if s not in systems:
            ap.error("unknown system '%s' (one of: %s)" %
                     (s, ", ".join(systems)))


def interruptible(fn, *args):
    """fn(*args), or 130 if it is interrupted (^C, or SIGTERM after
    catch_sigterm)."""
    try:
        return fn(*args)
    except KeyboardInterrupt:
        return 130


# --------------------------------------------------------------------------
# reports: the tables of compare.sh and compare-heavy.sh


def read_json_lines(paths, benches):
    """The JSON objects of the given benchmarks in the files, in order;
    files that are not there and lines that are not JSON are passed over."""
    for path in paths:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if isinstance(o, dict) and o.get("bench") in benches:
                yield o


def print_header(title, load_before, load_after, elapsed):
    print(title)
    print("load average (1, 5, 15 min): %s before, %s after; %s CPUs; %s s" %
          (load_before, load_after, os.cpu_count(), elapsed))
    print()


def print_table(rows):
    """A Markdown table: rows[0] the header, the first column left-aligned,
    the others right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, r in enumerate(rows):
        cells = [c.ljust(widths[j]) if j == 0 else c.rjust(widths[j])
                 for j, c in enumerate(r)]
        print("| " + " | ".join(cells) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 1) + (":" if j else "-")
                                 for j, w in enumerate(widths)) + "|")
    print()


def ratio(x, small):
    """x with about three significant digits; below 1 in format small."""
    if x >= 100:
        return "%.0f" % x
    if x >= 10:
        return "%.1f" % x
    if x >= 1:
        return "%.2f" % x
    return small % x


# --------------------------------------------------------------------------
# sizes and memory (the heavy benchmarks)


def gib(n):
    return n / float(1 << 30)


def parse_size(s):
    """'1GiB', '256MiB', '4096' ... as conf_parse_size in Ferry."""
    units = {"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30,
             "kB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3}
    i = 0
    while i < len(s) and s[i].isdigit():
        i += 1
    if i == 0 or s[i:] not in units:
        raise ValueError(s)
    return int(s[:i]) * units[s[i:]]


def pss_bytes(pid):
    """Pss of one process in bytes (0 if it is gone)."""
    try:
        with open("/proc/%d/smaps_rollup" % pid, "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def mem_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
