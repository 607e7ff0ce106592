"""ferry.LocalCluster: it starts a scheduler and workers that run tasks,
restart_workers() brings in a changed module file, and nothing it started
outlives it -- after close(), after the object is collected, at
interpreter exit, and when the Python process holding it is killed with
SIGKILL.  Two clusters at once do not meet; bad arguments are refused
with messages that say what is wrong.

Every cluster is made in a short private directory of the test's own
(`tdir`), so "nothing left" is checked two ways: the pids the cluster
reports, and every process of ours whose environment names a directory
under tdir (FERRY_RUNTIME_DIR=...), which also catches worker processes a
supervisor started in place of dead ones.  Each wait is bounded; a test
signals only processes it started itself, by pid."""

import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest

import ferry
import ferry._paths as paths
from ferry.cluster import ClusterError

from conftest import live_environs

GONE_TIMEOUT = 30.0   # seconds for processes to go once they should
PY = sys.executable


@pytest.fixture
def tdir():
    # short, so that DIR/ferry-cluster-XXXXXXXX/sched.sock fits a Unix
    # socket path whatever pytest's tmp_path is
    d = tempfile.mkdtemp(prefix="fl-", dir="/tmp")
    yield d
    leftover = processes_under(d)
    for pid in leftover:  # a failed test's; never another's
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    shutil.rmtree(d, ignore_errors=True)
    assert not leftover, "processes left under %s: %s" % (d, leftover)


def processes_under(d):
    """pids of this user's processes whose environment has
    FERRY_RUNTIME_DIR in the directory d."""
    want = ("FERRY_RUNTIME_DIR=" + d.rstrip("/") + "/").encode()
    return [pid for pid, env in live_environs()
            if any(v.startswith(want) for v in env)]


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return not stat[stat.rfind(b")") + 2:].startswith(b"Z")


def wait_gone(pids, d, timeout=GONE_TIMEOUT):
    """Wait until none of pids and no process under d is alive; return
    what is left at the deadline (empty on success)."""
    deadline = time.monotonic() + timeout
    while True:
        left = sorted(set(p for p in pids if alive(p)) |
                      set(processes_under(d)))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def all_pids(cluster):
    p = cluster.pids()
    return [p["scheduler"], p["supervisor"]] + p["workers"]


def submit(cluster_or_address, fn, *args):
    """Run one task with `ferry submit` and return its result (a str
    argument starting with '@' is an object reference)."""
    address = getattr(cluster_or_address, "address", cluster_or_address)
    out = subprocess.run(
        [paths.ferry_bin(), "submit", "-c", address, "--wait", "60s", fn] +
        [a if isinstance(a, str) and a.startswith("@") else json.dumps(a)
         for a in args],
        capture_output=True, timeout=90, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr.decode()
    return json.loads(out.stdout)


def run_child(script, tdir, **kw):
    """Start a Python process running script (cwd tdir) that prints one
    JSON line when its cluster is up; return (process, that line)."""
    path = os.path.join(tdir, "child.py")
    with open(path, "w") as f:
        f.write(textwrap.dedent(script))
    p = subprocess.Popen([PY, path], cwd=tdir, stdout=subprocess.PIPE,
                         stdin=subprocess.PIPE, **kw)
    line = p.stdout.readline()
    if not line:
        p.wait(60)
        pytest.fail("the child ended with %s before its cluster was up" %
                    p.returncode)
    return p, json.loads(line)


# ------------------------------------------------------------ running

def test_starts_runs_and_closes_leaving_nothing(tdir):
    c = ferry.LocalCluster(workers=2, directory=tdir)
    d = c.directory
    assert c.address == "ipc://%s/sched.sock" % d
    assert d.startswith(tdir + "/")
    assert os.stat(d).st_mode & 0o777 == 0o700
    st = c.status()
    assert st["workers"] == 2 and st["slots"] == 2
    assert len(c.pids()["workers"]) == 2
    assert submit(c, "add", 2, 3) == 5
    assert os.path.isfile(c.log_path)
    pids = all_pids(c)
    assert all(alive(p) for p in pids)
    c.close()
    assert c.closed
    assert wait_gone(pids, tdir) == []
    assert not os.path.exists(d)
    c.close()  # idempotent
    with pytest.raises(ClusterError, match="closed"):
        c.status()


def test_context_manager_and_slots(tdir):
    with ferry.LocalCluster(workers=1, slots=3, directory=tdir) as c:
        assert c.status()["slots"] == 3
        assert "slots=3" in repr(c)
        pids = all_pids(c)
    assert c.closed
    assert wait_gone(pids, tdir) == []


def test_garbage_collected_cluster_stops(tdir):
    c = ferry.LocalCluster(workers=1, directory=tdir)
    pids, d = all_pids(c), c.directory
    del c
    gc.collect()
    assert wait_gone(pids, tdir) == []
    assert not os.path.exists(d)


def test_made_in_a_thread_that_ends(tdir):
    # the kernel's parent-death signal is tied to the thread that started
    # a child: a cluster made in a short-lived thread must stay up
    made = []
    t = threading.Thread(target=lambda: made.append(
        ferry.LocalCluster(workers=1, directory=tdir)))
    t.start()
    t.join(120)
    assert made, "LocalCluster failed in the thread"
    with made[0] as c:
        assert submit(c, "add", 1, 1) == 2
        assert all(alive(p) for p in all_pids(c))


def test_workers_default_to_cpu_count(tdir):
    with ferry.LocalCluster(directory=tdir) as c:
        assert c.workers == len(os.sched_getaffinity(0))
        assert c.status()["workers"] == c.workers


def test_cluster_file_carries_the_options(tdir):
    with ferry.LocalCluster(workers=1, memory_limit="512MiB",
                            object_roots=[tdir], journal=True,
                            scheduler_options={"quarantine_after": 2},
                            worker_options={"max_tasks_per_process": 100},
                            directory=tdir) as c:
        with open(c.config_path) as f:
            text = f.read()
        assert 'memory_limit: "512MiB"' in text
        assert "quarantine_after: 2" in text
        assert "max_tasks_per_process: 100" in text
        assert '"%s"' % tdir in text
        assert os.path.isdir(os.path.join(c.directory, "journal"))
        # an object reference inside the root is served
        data = os.path.join(tdir, "words.txt")
        with open(data, "w") as f:
            f.write("a b\nc\n")
        assert submit(c, "wordcount", "@" + data, 0, 6) == 3


# ------------------------------------------------------ restart_workers

def test_restart_workers_replaces_the_processes(tdir):
    with ferry.LocalCluster(workers=2, directory=tdir) as c:
        before = c.pids()
        c.restart_workers()
        after = c.pids()
        assert after["scheduler"] == before["scheduler"]
        assert after["supervisor"] != before["supervisor"]
        assert not set(after["workers"]) & set(before["workers"])
        assert wait_gone(before["workers"] + [before["supervisor"]],
                         "/nonexistent") == []
        assert c.status()["workers"] == 2
        assert submit(c, "add", 2, 2) == 4
        c.restart_workers(kill=True)
        assert c.status()["workers"] == 2
        assert submit(c, "add", 3, 3) == 6


def test_restart_keeps_queued_and_running_tasks(tdir):
    # one worker, eight tasks of 200 ms submitted by separate clients:
    # most are queued (or prefetched) when the workers are replaced; each
    # one still completes, exactly once, with its own result
    with ferry.LocalCluster(workers=1, directory=tdir) as c:
        procs = [subprocess.Popen(
            [paths.ferry_bin(), "submit", "-c", c.address, "--wait", "120s",
             "sleep_ms", str(200 + i)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            for i in range(8)]
        deadline = time.monotonic() + 60
        while c.status()["submitted"] < 8 and time.monotonic() < deadline:
            time.sleep(0.02)
        c.restart_workers()
        for i, p in enumerate(procs):
            out, err = p.communicate(timeout=180)
            assert p.returncode == 0, err.decode()
            assert json.loads(out) == 200 + i


def test_restart_workers_picks_up_a_changed_module(tdir):
    mod = os.path.join(tdir, "lc_mod.py")
    with open(mod, "w") as f:
        f.write("import ferry\n\n@ferry.task\ndef version():\n"
                "    return 1\n")
    with ferry.LocalCluster(workers=2, python_modules=["lc_mod"],
                            python_path=[tdir], directory=tdir) as c:
        assert submit(c, "lc_mod.version") == 1
        with open(mod, "w") as f:
            f.write("import ferry\n\n@ferry.task\ndef version():\n"
                    "    return 'two'  # a new version\n\n"
                    "@ferry.task\ndef added(x):\n    return x + 1\n")
        c.restart_workers()
        assert submit(c, "lc_mod.version") == "two"
        assert submit(c, "lc_mod.added", 41) == 42


def test_module_file_in_the_current_directory(tdir, monkeypatch):
    # python_path defaults to the current directory: a module file next
    # to a notebook imports; a .py path names the module too
    sub = os.path.join(tdir, "nb")
    os.mkdir(sub)
    with open(os.path.join(sub, "lc_here.py"), "w") as f:
        f.write("import ferry\n\n@ferry.task\ndef twice(x):\n"
                "    return 2 * x\n")
    with open(os.path.join(tdir, "lc_there.py"), "w") as f:
        f.write("import ferry\n\n@ferry.task(name='thrice')\n"
                "def f(x):\n    return 3 * x\n")
    monkeypatch.chdir(sub)
    with ferry.LocalCluster(workers=1, directory=tdir,
                            python_modules=["lc_here",
                                            "../lc_there.py"]) as c:
        assert submit(c, "lc_here.twice", 21) == 42
        assert submit(c, "thrice", 5) == 15


def test_client_maps_python_tasks(tdir):
    with open(os.path.join(tdir, "lc_sq.py"), "w") as f:
        f.write("import ferry\n\n@ferry.task\ndef square(x):\n"
                "    return x * x\n")
    with ferry.LocalCluster(workers=2, python_modules=["lc_sq"],
                            python_path=[tdir], directory=tdir) as c:
        with c.client() as client:
            futures = client.map("lc_sq.square", range(50))
            assert client.gather(futures) == [x * x for x in range(50)]


# ------------------------------------------------------- nothing left

def test_sigkilled_python_leaves_nothing_running(tdir):
    p, info = run_child("""
        import json, sys, ferry
        c = ferry.LocalCluster(workers=2, directory=%r)
        print(json.dumps({"pids": c.pids(), "dir": c.directory}),
              flush=True)
        sys.stdin.read()   # until the test kills us
        """ % tdir, tdir)
    pids = [info["pids"]["scheduler"], info["pids"]["supervisor"]] + \
        info["pids"]["workers"]
    assert all(alive(x) for x in pids)
    assert submit("ipc://%s/sched.sock" % info["dir"], "add", 1, 2) == 3
    p.kill()
    p.wait(30)
    p.stdout.close()
    p.stdin.close()
    assert wait_gone(pids, tdir) == []
    # its directory stays until the next LocalCluster made there
    assert os.path.isdir(info["dir"])
    with ferry.LocalCluster(workers=1, directory=tdir) as c:
        assert not os.path.exists(info["dir"])
        assert os.path.isdir(c.directory)


def test_interpreter_exit_stops_the_cluster(tdir):
    p, info = run_child("""
        import json, ferry
        c = ferry.LocalCluster(workers=2, directory=%r)
        print(json.dumps({"pids": c.pids(), "dir": c.directory}),
              flush=True)
        # no close(): the interpreter's exit does it
        """ % tdir, tdir)
    assert p.wait(120) == 0
    p.stdout.close()
    p.stdin.close()
    pids = [info["pids"]["scheduler"], info["pids"]["supervisor"]] + \
        info["pids"]["workers"]
    assert wait_gone(pids, tdir) == []
    assert not os.path.exists(info["dir"])


def test_ctrl_c_interrupts_python_not_the_cluster(tdir):
    # a terminal's Ctrl-C (and a Jupyter kernel interrupt) signals the
    # whole process group: the cluster runs in sessions of its own
    p, info = run_child("""
        import json, subprocess, sys, time, ferry, ferry._paths as paths
        c = ferry.LocalCluster(workers=1, directory=%r)
        try:
            print(json.dumps({"dir": c.directory}), flush=True)
            time.sleep(300)
        except KeyboardInterrupt:
            out = subprocess.run([paths.ferry_bin(), "submit", "-c",
                                  c.address, "add", "20", "22"],
                                 capture_output=True, timeout=60)
            print(out.stdout.decode().strip(), flush=True)
        c.close()
        """ % tdir, tdir, start_new_session=True)
    os.killpg(p.pid, signal.SIGINT)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0
    assert out.decode().strip() == "42"
    assert wait_gone([], tdir) == []


def test_two_clusters_do_not_meet(tdir):
    with ferry.LocalCluster(workers=1, directory=tdir) as a, \
            ferry.LocalCluster(workers=2, directory=tdir) as b:
        assert a.address != b.address
        assert a.directory != b.directory
        assert a.status()["workers"] == 1
        assert b.status()["workers"] == 2
        assert submit(a, "pid") in a.pids()["workers"]
        assert submit(b, "pid") in b.pids()["workers"]
        b_pids = all_pids(b)
        a.close()
        assert all(alive(x) for x in b_pids)
        assert submit(b, "add", 1, 1) == 2
        assert b.status()["workers"] == 2


# ------------------------------------------------------------- errors

@pytest.mark.parametrize("kw, exc, words", [
    ({"workers": 0}, ValueError, "workers must be between 1 and 1024"),
    ({"workers": "2"}, TypeError, "workers must be an int"),
    ({"workers": True}, TypeError, "workers must be an int"),
    ({"slots": 2000}, ValueError, "slots must be between 1 and 1024"),
    ({"python_modules": ["not a module"]}, ValueError,
     "'not a module' is not a module name"),
    ({"python_modules": [3]}, TypeError, "python_modules"),
    ({"python_modules": sys.modules["__main__"]}, ValueError,
     "__main__"),
    ({"python_modules": ["missing_file.py"]}, ValueError, "no file"),
    ({"python_path": ["/nonexistent/dir"]}, ValueError,
     "python_path: /nonexistent/dir is not a directory"),
    ({"object_roots": "/nonexistent/dir"}, ValueError,
     "object_roots: /nonexistent/dir is not a directory"),
    ({"libraries": [], "python_modules": []}, ValueError, "nothing to run"),
    ({"memory_limit": "2G"}, ValueError, "memory_limit"),
    ({"memory_limit": 1000}, ValueError, "at least 16 MiB"),
    ({"log_level": "loud"}, ValueError, "log_level must be one of"),
    ({"journal": 3}, TypeError, "journal"),
    ({"scheduler_options": {"listen": "tcp://0.0.0.0:1"}}, ValueError,
     "sets listen itself"),
    ({"worker_options": {"slots": 2}}, ValueError, "sets slots itself"),
    ({"drain_timeout": -1}, ValueError, "drain_timeout"),
    ({"env": {"A": 1}}, TypeError, "env"),
])
def test_bad_arguments(tdir, kw, exc, words):
    with pytest.raises(exc, match=words.replace("(", r"\(")
                       .replace(")", r"\)")):
        ferry.LocalCluster(directory=tdir, **kw)
    assert os.listdir(tdir) == []  # nothing was started or made


def test_unknown_library_is_reported_with_the_log(tdir):
    with pytest.raises(ClusterError) as e:
        ferry.LocalCluster(workers=1, libraries=["no_such_library"],
                           directory=tdir)
    msg = str(e.value)
    assert "worker supervisor exited" in msg
    assert "no_such_library" in msg  # from the log's tail
    assert wait_gone([], tdir) == []
    assert os.listdir(tdir) == []


def test_bad_cluster_file_key_is_reported(tdir):
    with pytest.raises(ClusterError, match="unknown key"):
        ferry.LocalCluster(workers=1, directory=tdir,
                           scheduler_options={"no_such_key": 1})
    assert wait_gone([], tdir) == []


def test_module_that_fails_to_import_is_reported(tdir):
    with open(os.path.join(tdir, "lc_broken.py"), "w") as f:
        f.write("import ferry\nraise RuntimeError('broken on purpose')\n")
    with pytest.raises(ClusterError) as e:
        ferry.LocalCluster(workers=1, python_modules=["lc_broken"],
                           python_path=[tdir], directory=tdir,
                           start_timeout=120)
    assert "broken on purpose" in str(e.value)
    assert wait_gone([], tdir) == []


def test_forked_child_does_not_stop_the_parents_cluster(tdir):
    with ferry.LocalCluster(workers=1, directory=tdir) as c:
        pid = os.fork()
        if pid == 0:  # the child: its copy's close() must not stop them
            try:
                c.close()
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert not c.closed
        assert all(alive(p) for p in all_pids(c))
        assert submit(c, "add", 4, 5) == 9


def test_module_that_starts_a_cluster_at_its_top_level(tdir):
    # the __main__ guard's trap: a script that holds both its tasks and
    # the code starting the cluster, imported by the workers as a task
    # module, would start a cluster in every worker; LocalCluster refuses
    # to start inside a worker, so the start fails with a clear message
    with open(os.path.join(tdir, "lc_script.py"), "w") as f:
        f.write("import ferry\n\n@ferry.task\ndef sq(x):\n"
                "    return x * x\n\n"
                "cluster = ferry.LocalCluster(workers=1, "
                "python_modules=['lc_script'])\n")
    with pytest.raises(ClusterError) as e:
        ferry.LocalCluster(workers=1, python_modules=["lc_script"],
                           python_path=[tdir], directory=tdir,
                           start_timeout=120)
    assert "inside a Ferry worker process" in str(e.value)
    assert "__main__" in str(e.value)
    assert wait_gone([], tdir) == []


def test_lost_scheduler_keeps_the_directory_and_close_still_works(tdir):
    # the sweep spares a directory whose Python process is alive, even if
    # every process of its cluster is gone; close() then stops the rest
    c = ferry.LocalCluster(workers=1, directory=tdir)
    pids = all_pids(c)
    os.kill(c.pids()["scheduler"], signal.SIGKILL)
    deadline = time.monotonic() + GONE_TIMEOUT
    while alive(c.pids()["scheduler"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    with ferry.LocalCluster(workers=1, directory=tdir) as other:
        assert os.path.isdir(c.directory)
        assert submit(other, "add", 1, 1) == 2
    c.close()
    assert wait_gone(pids, tdir) == []
    assert not os.path.exists(c.directory)


def test_restart_with_kill_runs_the_running_task_again_uncharged(tdir):
    # a task with no retries left, running when its process is killed by
    # restart_workers(kill=True), runs again on a new process: the kill of
    # a whole group to restart it is not the task's failure
    with ferry.LocalCluster(workers=1, directory=tdir) as c, \
            c.client() as client:
        f = client.submit("sleep_ms", 5000, retries=0)
        deadline = time.monotonic() + 60
        while c.status()["busy"] < 1:
            assert time.monotonic() < deadline, "the task never ran"
            time.sleep(0.02)
        c.restart_workers(kill=True)
        assert f.result(timeout=120) == 5000


def test_worker_started_after_a_crash_is_stopped_too(tdir):
    c = ferry.LocalCluster(workers=1, directory=tdir)
    first = c.pids()["workers"]
    out = subprocess.run([paths.ferry_bin(), "submit", "-c", c.address,
                          "--retries", "0", "--wait", "60s", "crash"],
                         capture_output=True, timeout=90,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 1 and b"crash" in out.stderr
    deadline = time.monotonic() + 60
    while True:
        now = [w["pid"] for w in c.status()["worker_list"]]
        if now and not set(now) & set(first):
            break
        assert time.monotonic() < deadline, "no new worker process"
        time.sleep(0.05)
    pids = all_pids(c) + now
    c.close()
    assert wait_gone(pids, tdir) == []
