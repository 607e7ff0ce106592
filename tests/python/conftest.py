"""Fixtures of the Python tests: a private cluster (scheduler and worker
supervisors) started from the build's `ferry` program on a Unix socket in
the test's own temporary directory, stopped by pid at the end.  Every
wait is bounded in time."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import ferry._paths as paths

START_TIMEOUT = 60.0  # seconds for the cluster to come up (a busy machine)


def ferry_bin():
    return paths.ferry_bin()


def live_environs():
    """(pid, [environment entries as bytes]) of each process this user can
    read that has not ended (zombies, ended but not yet reaped, left out),
    for tests that look for processes left behind."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                env = f.read()
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.rfind(b")") + 2:].startswith(b"Z"):
            continue
        yield int(name), env.split(b"\0")


def child_env():
    """The environment for the programs a test starts.  Under an ASan
    build the interpreter runs with the sanitizer preloaded and leak
    checks off (tests/python/meson.build); Ferry's own programs get the
    leak checks back."""
    env = dict(os.environ)
    if env.get("FERRY_PY_ASAN"):
        env.pop("LD_PRELOAD", None)
        opts = env.get("ASAN_OPTIONS", "")
        if opts.endswith("detect_leaks=0"):
            env["ASAN_OPTIONS"] = opts[:-len("detect_leaks=0")].rstrip(":")
    return env


class Cluster:
    """A scheduler and one worker group, each a process this test started."""

    def __init__(self, tmp, processes=2, slots=1, libraries=("ferry_examples",),
                 python_modules=(), python_path=(), object_roots=(),
                 worker_args=(), scheduler_args=()):
        self.tmp = str(tmp)
        self.address = "ipc://%s/sched.sock" % self.tmp
        self.procs = []
        self.log = open(os.path.join(self.tmp, "cluster.log"), "ab")
        self.processes = processes
        ready = os.path.join(self.tmp, "ready")
        self.scheduler = self._spawn(
            [ferry_bin(), "scheduler", "--listen", self.address,
             "--ready-file", ready, "--log-level", "warn"] +
            list(scheduler_args))
        deadline = time.monotonic() + START_TIMEOUT
        while not os.path.exists(ready):
            if self.scheduler.poll() is not None:
                raise RuntimeError("scheduler exited with %s; see %s" % (
                    self.scheduler.returncode, self.log.name))
            if time.monotonic() > deadline:
                raise RuntimeError("scheduler not ready after %ss" %
                                   START_TIMEOUT)
            time.sleep(0.02)
        self.worker_args = ["--processes", str(processes), "--slots",
                            str(slots)]
        for lib in libraries:
            self.worker_args += ["--library", lib]
        for m in python_modules:
            self.worker_args += ["--python-module", m]
        for d in python_path:
            self.worker_args += ["--python-path", str(d)]
        for r in object_roots:
            self.worker_args += ["--object-root", str(r)]
        self.worker_args += list(worker_args)
        self.workers = self.start_workers()

    def _spawn(self, argv):
        p = subprocess.Popen(argv, stdout=self.log, stderr=self.log,
                             stdin=subprocess.DEVNULL, env=child_env())
        self.procs.append(p)
        return p

    def start_workers(self, wait=True):
        """Start the worker group (a supervisor and its processes); wait
        until the scheduler counts every process."""
        p = self._spawn([ferry_bin(), "worker", "--connect", self.address,
                         "--log-level", "warn"] + self.worker_args)
        if wait:
            self.wait_workers(self.processes, p)
        return p

    def status(self):
        out = subprocess.run([ferry_bin(), "status", "--connect",
                              self.address, "--json"],
                             capture_output=True, timeout=30, check=True)
        return json.loads(out.stdout)

    def wait_workers(self, n, proc=None):
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError("worker group exited with %s; see %s" % (
                    proc.returncode, self.log.name))
            if self.status()["workers"] >= n:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("%d worker(s) not registered after %ss; "
                                   "see %s" % (n, START_TIMEOUT,
                                               self.log.name))
            time.sleep(0.05)

    def stop_process(self, p, timeout=30):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)

    def read_log(self):
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        for p in reversed(self.procs):
            self.stop_process(p)
        self.log.close()


@pytest.fixture
def make_cluster(tmp_path):
    """A factory: make_cluster(processes=2, python_modules=[...], ...)."""
    made = []

    def make(**kw):
        d = tmp_path / ("c%d" % len(made))
        d.mkdir()
        c = Cluster(d, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


def pytest_report_header(config):
    return "ferry: %s (python %s)" % (ferry_bin(), sys.version.split()[0])
