"""A Ferry cluster on this machine in one line: ferry.LocalCluster.

    with ferry.LocalCluster(workers=4, python_modules=["mytasks"]) as cluster:
        with cluster.client() as client:
            print(client.gather(client.map("mytasks.square", range(10))))

LocalCluster writes a cluster file (docs/configuration.md) into a private
temporary directory and starts `ferry scheduler -f FILE` and `ferry worker
-f FILE` from this process.  The scheduler listens on a Unix socket in that
directory (an ipc:// address: no TCP port, nothing with a machine-wide
name), so two LocalClusters, or two users, never meet.

Nothing is left running:

- close() (also at the end of a `with` block, when the object is garbage
  collected, and at interpreter exit) stops the worker supervisor and the
  scheduler, waits for them and for every worker process by pid, then
  removes the directory.
- If this Python process dies without running close() (SIGKILL, a crash),
  the kernel kills the scheduler and the supervisor (PR_SET_PDEATHSIG,
  which `ferry` sets when FERRY_PARENT_DEATHSIG=1), and the worker
  processes follow their supervisor (they stop their process group when
  it is gone).  Every process is started from one thread that lives as
  long as the interpreter, since the kernel ties that signal to the
  thread that started the child.  The directory of such a cluster is
  removed by the next LocalCluster created in the same parent directory,
  once none of the processes it recorded is alive.
- The processes run in a session of their own, so a Ctrl-C (or a Jupyter
  kernel interrupt, which signals the kernel's process group) interrupts
  Python's code, not the cluster.

restart_workers() replaces the worker processes: the new ones import the
task modules again, which is how a notebook picks up an edited module
file without losing the scheduler and its queued tasks.
"""

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
import weakref

from . import _paths

__all__ = ["LocalCluster", "ClusterError"]

_PREFIX = "ferry-cluster-"
_GROUP = "local"
_SOCKET_MAX = 107  # bytes of a Unix socket path
_LEVELS = ("error", "warn", "warning", "info", "debug")
_SIZE_RE = re.compile(r"^[0-9]+(B|KiB|MiB|GiB|kB|MB|GB)?$")
# keys of the cluster file LocalCluster writes itself
_OWN_SCHED = frozenset(["listen", "address", "journal", "host"])
_OWN_GROUP = frozenset(["name", "processes", "slots", "libraries",
                        "object_roots", "memory_limit", "python", "hosts"])
_LOG_TAIL = 40  # lines of the log an error shows


class ClusterError(RuntimeError):
    """A LocalCluster could not start, or lost a process it needs.  The
    message ends with the last lines of the cluster's log."""


# --------------------------------------------------------------- processes

def _proc_start_time(pid):
    """The start time of process pid (clock ticks since boot), or None if
    there is no such process (or only a zombie)."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # comm may hold spaces and parentheses: the fields follow the last ')'
    fields = stat[stat.rfind(")") + 2:].split()
    if not fields or fields[0] == "Z":
        return None
    return int(fields[19])


def _children(ppid):
    """{pid: start time} of the processes whose parent is ppid."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 19 and fields[1] == str(ppid) and fields[0] != "Z":
            out[int(name)] = int(fields[19])
    return out


def _alive(pid, start):
    """Whether the process pid that started at `start` still runs (a pid
    taken since by another process does not count)."""
    now = _proc_start_time(pid)
    return now is not None and (start is None or now == start)


class _Spawner:
    """Starts processes from one thread that lives as long as the
    interpreter.  PR_SET_PDEATHSIG fires when the *thread* that started a
    child ends; a LocalCluster made in a thread that ends soon (a thread
    pool's) must not lose its processes with it.  The main thread starts
    its own (it lives until the interpreter ends)."""

    _lock = threading.Lock()
    _queue = None

    @classmethod
    def popen(cls, argv, **kw):
        if threading.current_thread() is threading.main_thread():
            return subprocess.Popen(argv, **kw)
        with cls._lock:
            if cls._queue is None:
                cls._queue = queue.SimpleQueue()
                threading.Thread(target=cls._run, name="ferry-spawner",
                                 daemon=True).start()
        done = queue.SimpleQueue()
        cls._queue.put((argv, kw, done))
        ok, value = done.get()
        if not ok:
            raise value
        return value

    @classmethod
    def _run(cls):
        while True:
            argv, kw, done = cls._queue.get()
            try:
                done.put((True, subprocess.Popen(argv, **kw)))
            except BaseException as e:  # handed to the caller
                done.put((False, e))


def _child_env(rundir, extra):
    """The environment of the cluster's processes: ours, with the private
    runtime directory, and death with this process."""
    env = dict(os.environ)
    env.pop("FERRY_ADDRESS", None)
    env["FERRY_RUNTIME_DIR"] = rundir
    env["FERRY_PARENT_DEATHSIG"] = "1"
    # under an ASan build of Ferry the test interpreter preloads the
    # sanitizer without leak checks (tests/python/meson.build); Ferry's
    # own programs get them back
    if env.get("FERRY_PY_ASAN"):
        env.pop("LD_PRELOAD", None)
        opts = env.get("ASAN_OPTIONS", "")
        if opts.endswith("detect_leaks=0"):
            env["ASAN_OPTIONS"] = opts[:-len("detect_leaks=0")].rstrip(":")
    env.update(extra or {})
    return env


# ------------------------------------------------------- the cluster file

def _yaml_scalar(v, where):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        if "${" in v:
            raise ValueError("%s: %r holds '${', which the cluster file "
                             "would take for a placeholder" % (where, v))
        if "\0" in v or v == "":
            raise ValueError("%s: an empty string or a NUL character "
                             "cannot be written in a cluster file" % where)
        return json.dumps(v)  # a double-quoted YAML string
    raise TypeError("%s: a cluster file value must be a str, int or bool, "
                    "not %s" % (where, type(v).__name__))


def _yaml(obj, indent, where):
    """Block YAML of a mapping whose values are scalars, lists of
    scalars or mappings."""
    pad = " " * indent
    out = []
    for k, v in obj.items():
        if not isinstance(k, str) or not re.match(r"^[a-z_]+$", k):
            raise ValueError("%s: %r is not a cluster file key" % (where, k))
        w = "%s.%s" % (where, k) if where else k
        if isinstance(v, dict):
            out.append("%s%s:\n%s" % (pad, k, _yaml(v, indent + 2, w)))
        elif isinstance(v, (list, tuple)):
            out.append("%s%s: [%s]\n" % (pad, k, ", ".join(
                _yaml_scalar(x, "%s[%d]" % (w, i)) for i, x in enumerate(v))))
        else:
            out.append("%s%s: %s\n" % (pad, k, _yaml_scalar(v, w)))
    return "".join(out)


def _workers_list(group):
    return "workers:\n  - " + _yaml(group, 4, "workers[0]").lstrip()


def _seconds_ms(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not value >= 0:
        raise ValueError("%s must be a number of seconds >= 0, got %r" %
                         (what, value))
    return "%dms" % int(round(value * 1000))


# ---------------------------------------------------------- the arguments

def _count(value, what, default):
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("%s must be an int, not %s" %
                        (what, type(value).__name__))
    if not 1 <= value <= 1024:
        raise ValueError("%s must be between 1 and 1024, got %d" %
                         (what, value))
    return value


def _strings(value, what):
    """A tuple of str (or os.PathLike) from one string or an iterable."""
    if value is None:
        return ()
    if isinstance(value, (str, bytes, os.PathLike)):
        value = [value]
    try:
        items = list(value)
    except TypeError:
        raise TypeError("%s must be a list of strings, not %s" %
                        (what, type(value).__name__)) from None
    out = []
    for x in items:
        if isinstance(x, os.PathLike):
            x = os.fspath(x)
        if not isinstance(x, str) or not x:
            raise TypeError("%s: each entry must be a non-empty str, got %r"
                            % (what, x))
        out.append(x)
    return tuple(out)


def _directories(value, what, cwd, must_exist=True):
    out = []
    for d in _strings(value, what):
        d = os.path.normpath(os.path.join(cwd, d))
        if must_exist and not os.path.isdir(d):
            raise ValueError("%s: %s is not a directory" % (what, d))
        if d not in out:
            out.append(d)
    return out


def _modules(value, cwd):
    """Module names and the directories their files add to the path, from
    names ("pkg.mod"), module objects, or paths of .py files."""
    if value is None:
        return [], []
    if isinstance(value, (str, os.PathLike, types.ModuleType)):
        value = [value]
    try:
        items = list(value)
    except TypeError:
        raise TypeError("python_modules must be a list of module names, "
                        "not %s" % type(value).__name__) from None
    names, dirs = [], []
    for m in items:
        if isinstance(m, types.ModuleType):
            m = m.__name__
            if m == "__main__":
                raise ValueError(
                    "python_modules: __main__ (a script or a notebook) "
                    "cannot be imported by workers; put the task "
                    "functions in a module file and name that module")
        elif isinstance(m, os.PathLike):
            m = os.fspath(m)
        if not isinstance(m, str):
            raise TypeError("python_modules: each entry must be a module "
                            "name, a module or a .py file, got %r" % (m,))
        if m.endswith(".py"):
            path = os.path.normpath(os.path.join(cwd, m))
            if not os.path.isfile(path):
                raise ValueError("python_modules: no file %s" % path)
            dirs.append(os.path.dirname(path))
            m = os.path.basename(path)[:-3]
        if not m or not all(p.isidentifier() for p in m.split(".")):
            raise ValueError("python_modules: %r is not a module name "
                             "(such as 'mytasks' or 'pkg.tasks')" % (m,))
        if m not in names:
            names.append(m)
    return names, dirs


def _memory(value):
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("memory_limit must be bytes (an int) or a size "
                        "such as '2GiB', not a bool")
    if isinstance(value, int):
        if value < 16 << 20:
            raise ValueError("memory_limit must be at least 16 MiB "
                             "(16777216 bytes), got %d" % value)
        return value
    if isinstance(value, str) and _SIZE_RE.match(value):
        return value
    raise ValueError("memory_limit must be bytes (an int) or a size such as "
                     "'512MiB' or '2GiB', got %r" % (value,))


def _options(value, what, own):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError("%s must be a dict of cluster file keys, not %s" %
                        (what, type(value).__name__))
    taken = sorted(set(value) & own)
    if taken:
        raise ValueError("%s: LocalCluster sets %s itself; use its own "
                         "arguments" % (what, ", ".join(taken)))
    return dict(value)


# ---------------------------------------------------------- the directory

def _make_directory(parent):
    """A new private directory (mode 0700) whose socket path fits in a
    Unix socket address; without a parent, the temporary directory, else
    /tmp."""
    for p in ([parent] if parent is not None else [None, "/tmp"]):
        d = os.path.realpath(tempfile.mkdtemp(prefix=_PREFIX, dir=p))
        if len(os.path.join(d, "sched.sock").encode()) <= _SOCKET_MAX:
            return d
        os.rmdir(d)
    raise ValueError("the directory %s is too deep for a Unix socket path "
                     "(at most %d bytes); give LocalCluster(directory=...) "
                     "a shorter one" % (d, _SOCKET_MAX))


def _sweep_stale(parent):
    """Remove the directories of LocalClusters whose Python process died
    without closing them (SIGKILL): of this user, in parent, and only when
    no process recorded in its 'pids' file -- that Python process, the
    scheduler, the supervisors -- is alive."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    uid = os.getuid()
    for name in names:
        if not name.startswith(_PREFIX):
            continue
        d = os.path.join(parent, name)
        try:
            st = os.lstat(d)
            with open(os.path.join(d, "pids")) as f:
                recorded = [line.split() for line in f]
        except (OSError, ValueError):
            continue
        if st.st_uid != uid or not recorded:
            continue
        try:
            if any(_alive(int(r[0]), int(r[1])) for r in recorded):
                continue
        except (ValueError, IndexError):
            continue
        shutil.rmtree(d, ignore_errors=True)


# -------------------------------------------------------------- the state

class _State:
    """What close() needs, held apart from the LocalCluster so that a
    weakref.finalize can run it after the object is gone."""

    def __init__(self, directory):
        self.directory = directory
        self.lock = threading.RLock()
        self.scheduler = None    # subprocess.Popen
        self.supervisor = None   # subprocess.Popen
        self.workers = {}        # pid -> start time, of worker processes
        self.log = None          # the open log file
        self.closed = False
        self.owner = os.getpid()  # a forked child does not own them

    def record(self, pid):
        """Note a process in DIR/pids (read by _sweep_stale)."""
        start = _proc_start_time(pid)
        with open(os.path.join(self.directory, "pids"), "a") as f:
            f.write("%d %s\n" % (pid, start if start is not None else 0))

    def stop_process(self, p, timeout, second_term=None):
        """SIGTERM p, wait up to timeout s (a second SIGTERM after
        second_term s), then SIGKILL it; wait for it."""
        if p is None or p.poll() is not None:
            return
        try:
            p.send_signal(signal.SIGTERM)
            try:
                if second_term is not None and second_term < timeout:
                    try:
                        p.wait(second_term)
                        return
                    except subprocess.TimeoutExpired:
                        p.send_signal(signal.SIGTERM)
                        timeout -= second_term
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass

    def wait_workers_gone(self, pids, timeout):
        """Wait (bounded) for worker processes to end: they follow their
        supervisor.  SIGKILL those still there at the deadline, then wait
        for them a little longer."""
        for kill in (False, True):
            deadline = time.monotonic() + (timeout if not kill else 10.0)
            while True:
                pids = {p: s for p, s in pids.items() if _alive(p, s)}
                if not pids:
                    return
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass

    def stop_workers(self, drain, kill=False):
        """Stop the supervisor: a drain (running tasks finish, for up to
        drain seconds; the rest of what the processes held goes back to
        the queue), or with kill at once (the scheduler sees the processes
        go and queues their tasks again, uncharged).  Then wait for the
        worker processes by pid."""
        sup, self.supervisor = self.supervisor, None
        pids, self.workers = self.workers, {}
        if sup is not None:
            # also the processes started in place of ones that died
            if sup.poll() is None:
                pids.update(_children(sup.pid))
            if kill and sup.poll() is None:
                sup.kill()
            self.stop_process(sup, drain + 5.0)
        self.wait_workers_gone(pids, 30.0)

    def close(self, drain):
        with self.lock:
            if self.closed:
                return
            self.closed = True
            if os.getpid() != self.owner:
                return  # a fork's copy: the cluster is its parent's
            try:
                self.stop_workers(drain)
            finally:
                # the first SIGTERM lets clients take their results, a
                # second stops it at once
                self.stop_process(self.scheduler, 30.0,
                                  second_term=min(drain, 2.0))
                if self.log is not None:
                    self.log.close()
                shutil.rmtree(self.directory, ignore_errors=True)


def _finalize(state, drain):
    try:
        state.close(drain)
    except Exception:  # at exit or in a collection: nobody to tell
        pass


# ------------------------------------------------------------ the cluster

class LocalCluster:
    """A scheduler and one group of worker processes on this machine.

    workers          worker processes (default: the CPUs this process may
                     run on)
    slots            tasks each process runs at once, each in a thread of
                     its own.  Python tasks hold the GIL: several slots
                     help tasks that wait (I/O, numpy releasing the GIL),
                     not pure-Python CPU work; use more workers for that.
    python_modules   modules whose @ferry.task functions the workers
                     register: names ("mytasks", "pkg.tasks"), module
                     objects, or paths of .py files (their directory is
                     added to python_path)
    python_path      directories put first on the workers' sys.path; the
                     current directory always comes after them, so a
                     module file next to a notebook imports
    libraries        C task libraries the workers load (names or paths)
    object_roots     directories that ferry.object() references may name
                     files in (default: none, every reference is refused)
    memory_limit     kill a worker process whose heap passes this (bytes,
                     or a size such as "2GiB"); the supervisor starts a
                     fresh one
    log_level        "error", "warn", "info" or "debug"; the log is the
                     file .log_path
    journal          True: the scheduler keeps a journal in the cluster's
                     directory (it outlives a crash of the scheduler, not
                     close()); a path: a journal there, which a later
                     LocalCluster given the same path restores
    scheduler_options, worker_options
                     further keys of the cluster file's scheduler section
                     and worker group (docs/configuration.md), e.g.
                     {"task_defaults": {"retries": 1}, "quarantine_after":
                     2} or {"max_tasks_per_process": 1000}
    drain_timeout    seconds running tasks may take to finish when workers
                     are stopped (close, restart_workers) before they are
                     killed (their tasks then run again)
    start_timeout    seconds to wait for the scheduler and every worker
    directory        where the private directory is made (default: the
                     temporary directory)
    env              extra environment variables of the cluster's
                     processes
    """

    def __init__(self, workers=None, slots=1, *, python_modules=(),
                 python_path=None, libraries=("ferry_examples",),
                 object_roots=(), memory_limit=None, log_level="warn",
                 journal=False, scheduler_options=None, worker_options=None,
                 drain_timeout=10.0, start_timeout=60.0, directory=None,
                 env=None):
        if "ferry._worker" in sys.modules:
            # a worker's embedded interpreter importing a task module
            # whose top level starts a cluster: refuse, or each worker
            # would start workers that import it again
            raise ClusterError(
                "LocalCluster() was called inside a Ferry worker process, "
                "while it imports its task modules: a module the workers "
                "import must not start a cluster at its top level; put "
                "that under `if __name__ == \"__main__\":` or in another "
                "file")
        cwd = os.getcwd()
        self._n = _count(workers, "workers", _cpu_count())
        self._slots = _count(slots, "slots", 1)
        modules, mod_dirs = _modules(python_modules, cwd)
        path = _directories(python_path, "python_path", cwd)
        for d in mod_dirs + [cwd]:
            if d not in path:
                path.append(d)
        libs = []
        for lib in _strings(libraries, "libraries"):
            # a path resolves against our directory, not the file's
            libs.append(os.path.normpath(os.path.join(cwd, lib))
                        if "/" in lib else lib)
        if not libs and not modules:
            raise ValueError("nothing to run: give python_modules or "
                             "libraries")
        roots = _directories(object_roots, "object_roots", cwd)
        mem = _memory(memory_limit)
        if not isinstance(log_level, str) or log_level not in _LEVELS:
            raise ValueError("log_level must be one of error, warn, info, "
                             "debug; got %r" % (log_level,))
        if not isinstance(journal, (bool, str, os.PathLike)):
            raise TypeError("journal must be True, False or a directory, "
                            "not %s" % type(journal).__name__)
        sched_opts = _options(scheduler_options, "scheduler_options",
                              _OWN_SCHED)
        group_opts = _options(worker_options, "worker_options", _OWN_GROUP)
        drain_ms = _seconds_ms(drain_timeout, "drain_timeout")
        _seconds_ms(start_timeout, "start_timeout")
        if env is not None and not (isinstance(env, dict) and all(
                isinstance(k, str) and isinstance(v, str)
                for k, v in env.items())):
            raise TypeError("env must be a dict of str to str")
        if directory is not None:
            directory = os.path.abspath(os.fspath(directory))
            if not os.path.isdir(directory):
                raise ValueError("directory: %s is not a directory" %
                                 directory)
        self._drain = float(drain_timeout)
        self._start_timeout = float(start_timeout)
        self._modules = modules
        self._path = path
        self._cwd = cwd

        _sweep_stale(directory or tempfile.gettempdir())
        rundir = _make_directory(directory)
        self._state = state = _State(rundir)
        self._finalizer = weakref.finalize(self, _finalize, state,
                                           self._drain)
        try:
            state.record(os.getpid())  # the owner: swept only once gone
            self._dir = rundir
            self.address = "ipc://" + os.path.join(rundir, "sched.sock")
            self.log_path = os.path.join(rundir, "cluster.log")
            self.config_path = os.path.join(rundir, "cluster.yaml")
            sched = {"listen": [self.address], "address": self.address,
                     "drain_timeout": drain_ms}
            if journal is not False:
                jpath = os.path.join(rundir, "journal") if journal is True \
                    else os.path.abspath(os.fspath(journal))
                sched["journal"] = {"path": jpath}
            sched.update(sched_opts)
            group = {"name": _GROUP, "processes": self._n,
                     "slots": self._slots}
            if libs:
                group["libraries"] = libs
            if roots:
                group["object_roots"] = roots
            if mem is not None:
                group["memory_limit"] = mem
            if modules:
                group["python"] = {"modules": modules, "path": path}
            group.update(group_opts)
            text = ("# written by ferry.LocalCluster; removed at close()\n"
                    "cluster:\n  name: local\n  state_dir: %s\n"
                    "log_level: %s\nscheduler:\n%s%s" % (
                        _yaml_scalar(rundir, "state_dir"), log_level,
                        _yaml(sched, 2, "scheduler"), _workers_list(group)))
            with open(self.config_path, "w") as f:
                f.write(text)
            self._env = _child_env(rundir, env)
            state.log = open(self.log_path, "ab")
            self._start_scheduler()
            self._start_workers(set())
        except BaseException:
            self._finalizer()
            raise

    # ------------------------------------------------------------ starting

    def _spawn(self, argv):
        p = _Spawner.popen(argv, stdin=subprocess.DEVNULL,
                           stdout=self._state.log, stderr=self._state.log,
                           env=self._env, cwd=self._cwd,
                           start_new_session=True)
        self._state.record(p.pid)
        return p

    def _fail(self, what):
        raise ClusterError("%s\n--- the last lines of %s ---\n%s" % (
            what, self.log_path, self.log_tail()))

    def _start_scheduler(self):
        ready = os.path.join(self._dir, "ready")
        st = self._state
        st.scheduler = self._spawn([_paths.ferry_bin(), "scheduler", "-f",
                                    self.config_path, "--ready-file", ready])
        deadline = time.monotonic() + self._start_timeout
        while not os.path.exists(ready):
            if st.scheduler.poll() is not None:
                self._fail("the scheduler exited with status %s while "
                           "starting" % st.scheduler.returncode)
            if time.monotonic() > deadline:
                self._fail("the scheduler was not ready after %g s" %
                           self._start_timeout)
            time.sleep(0.01)

    def _start_workers(self, old):
        """Start the worker supervisor and wait until the scheduler counts
        self._n worker processes that are not in old (pids)."""
        st = self._state
        st.supervisor = self._spawn([_paths.ferry_bin(), "worker", "-f",
                                     self.config_path])
        deadline = time.monotonic() + self._start_timeout
        while True:
            if st.supervisor.poll() is not None:
                self._fail("the worker supervisor exited with status %s "
                           "while starting (%d worker(s) wanted)" % (
                               st.supervisor.returncode, self._n))
            if st.scheduler.poll() is not None:
                self._fail("the scheduler exited with status %s" %
                           st.scheduler.returncode)
            try:
                mine = self._worker_pids(self.status(), old)
            except (subprocess.SubprocessError, ValueError,
                    ClusterError) as e:
                mine = {}
                why = str(e)
            else:
                why = "%d of %d registered" % (len(mine), self._n)
            if len(mine) >= self._n:
                st.workers = mine
                return
            if time.monotonic() > deadline:
                self._fail("the workers did not all register within %g s "
                           "(%s)" % (self._start_timeout, why))
            time.sleep(0.05)

    def _worker_pids(self, status, old):
        out = {}
        for w in status.get("worker_list", ()):
            pid = w.get("pid")
            if w.get("group") == _GROUP and isinstance(pid, int) and \
                    pid not in old:
                out[pid] = _proc_start_time(pid)
        return out

    # ------------------------------------------------------------- public

    @property
    def workers(self):
        """The number of worker processes."""
        return self._n

    @property
    def slots(self):
        """Tasks each worker process runs at once."""
        return self._slots

    @property
    def directory(self):
        """The cluster's private directory (socket, cluster file, log)."""
        return self._dir

    @property
    def closed(self):
        return self._state.closed

    def client(self, **kw):
        """A ferry.Client connected to this cluster (keyword arguments go
        to ferry.Client)."""
        self._check_open()
        from .client import Client
        return Client(self.address, **kw)

    def status(self):
        """The scheduler's status, as `ferry status --json` prints it: a
        dict with workers, slots, busy, queued, done, failed, ...,
        worker_list."""
        self._check_open()
        out = subprocess.run(
            [_paths.ferry_bin(), "status", "-c", self.address, "--json"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
            env=self._env)
        if out.returncode != 0:
            raise ClusterError("ferry status failed (%d): %s" % (
                out.returncode, out.stderr.decode("utf-8", "replace")
                .strip()))
        return json.loads(out.stdout)

    def pids(self):
        """The pids of the cluster's processes: {"scheduler": pid,
        "supervisor": pid, "workers": [pid, ...]} (those of the last
        start; a worker process that died has been replaced by its
        supervisor under another pid)."""
        st = self._state
        return {"scheduler": st.scheduler.pid if st.scheduler else None,
                "supervisor": st.supervisor.pid if st.supervisor else None,
                "workers": sorted(st.workers)}

    def restart_workers(self, kill=False):
        """Replace every worker process by a new one, which imports the
        task modules again: edit a module file, call this, and the next
        tasks run the new code.  The scheduler and the tasks it holds
        stay.  Running tasks may finish first, for up to the cluster's
        drain_timeout (a task still running then is killed and runs again
        on the new workers, uncharged); kill=True kills the processes at
        once, and their running tasks run again on the new workers.
        Returns when every new worker has registered."""
        self._check_open()
        st = self._state
        with st.lock:
            self._check_open()
            try:
                old = set(self._worker_pids(self.status(), ()))
            except (subprocess.SubprocessError, ValueError, ClusterError):
                old = set()
            old |= set(st.workers)
            st.stop_workers(self._drain, kill=bool(kill))
            self._start_workers(old)

    def log_tail(self, lines=_LOG_TAIL):
        """The last lines of the cluster's log, as one string."""
        if self._state.log is not None and not self._state.log.closed:
            self._state.log.flush()
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                text = f.read().decode("utf-8", "replace")
        except OSError as e:
            return "(no log: %s)" % e
        return "\n".join(text.splitlines()[-lines:])

    def close(self):
        """Stop the workers (running tasks get drain_timeout seconds) and
        the scheduler, wait for every process, remove the directory.
        Safe to call more than once."""
        self._finalizer()

    def _check_open(self):
        if self._state.closed:
            raise ClusterError("this LocalCluster is closed")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        if self._state.closed:
            return "<LocalCluster closed>"
        return "<LocalCluster %s workers=%d slots=%d%s>" % (
            self.address, self._n, self._slots,
            " modules=%s" % ",".join(self._modules) if self._modules else "")


def _cpu_count():
    try:
        return max(1, min(1024, len(os.sched_getaffinity(0))))
    except (AttributeError, OSError):
        return max(1, min(1024, os.cpu_count() or 1))
