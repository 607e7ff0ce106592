"""The notebook examples/python/ferry_demo.ipynb runs headless from top to
bottom (Debian's nbconvert and ipykernel, a kernel that is /usr/bin/python3
and imports the build's package), with a small array: its sums are
right, the task that crashes its process is reported as TaskCrashed or
TaskDead while the others complete, and no process is left behind.

The notebook and its module file are copied into a private directory that
is also the run's TMPDIR, so the notebook's data, the cluster's directory
and the kernel all point into it: "nothing left" is every process of ours
whose environment names that directory.  The committed notebook must hold
no outputs."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import live_environs

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "examples", "python")
NOTEBOOK = os.path.join(EXAMPLES, "ferry_demo.ipynb")
PY = "/usr/bin/python3"
KERNEL = "ferry-test-python3"
RUN_TIMEOUT = 900  # seconds for the whole notebook (a busy machine)


def processes_under(d):
    """pids of this user's processes with an environment value in d."""
    want = ("=" + d.rstrip("/")).encode()

    def names_d(v):
        i = v.find(want)
        return i > 0 and v[i + len(want):i + len(want) + 1] in (b"", b"/")
    return [pid for pid, env in live_environs()
            if pid != os.getpid() and any(names_d(v) for v in env)]


@pytest.fixture
def tdir():
    d = tempfile.mkdtemp(prefix="fn-", dir="/tmp")
    yield d
    left = processes_under(d)
    for pid in left:  # a failed run's; only processes in our directory
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    shutil.rmtree(d, ignore_errors=True)
    assert not left, "processes left under %s: %s" % (d, left)


def nbconvert_missing():
    r = subprocess.run([PY, "-c", "import nbconvert, ipykernel, nbformat"],
                       capture_output=True)
    return r.returncode != 0


def test_committed_notebook_has_no_outputs():
    with open(NOTEBOOK) as f:
        nb = json.load(f)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], "commit the notebook cleared"
            assert cell.get("execution_count") is None


@pytest.mark.skipif(nbconvert_missing(),
                    reason="python3-nbconvert or python3-ipykernel missing")
def test_notebook_runs(tdir):
    work = os.path.join(tdir, "nb")
    os.mkdir(work)
    for f in ("ferry_demo.ipynb", "demo_tasks.py"):
        shutil.copy(os.path.join(EXAMPLES, f), work)
    # a kernel of our own: /usr/bin/python3, whatever kernels this user
    # has; Jupyter's files in the test's directory, not in $HOME
    jup = os.path.join(tdir, "jupyter")
    os.makedirs(os.path.join(jup, "kernels", KERNEL))
    with open(os.path.join(jup, "kernels", KERNEL, "kernel.json"), "w") as f:
        json.dump({"argv": [PY, "-m", "ipykernel_launcher", "-f",
                            "{connection_file}"],
                   "display_name": "ferry test", "language": "python"}, f)
    env = dict(os.environ)
    env.update({
        "TMPDIR": tdir,
        "FERRY_DEMO_SIZE_MB": "8",
        "JUPYTER_PATH": jup,
        "JUPYTER_DATA_DIR": os.path.join(tdir, "jupyter-data"),
        "JUPYTER_CONFIG_DIR": os.path.join(tdir, "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": os.path.join(tdir, "jupyter-runtime"),
        "IPYTHONDIR": os.path.join(tdir, "ipython"),
        "MPLCONFIGDIR": os.path.join(tdir, "mpl"),
    })
    # the kernel imports the build's package (PYTHONPATH from meson)
    assert "PYTHONPATH" in env
    out_nb = os.path.join(work, "out.ipynb")
    p = subprocess.run(
        [PY, "-m", "nbconvert", "--to", "notebook", "--execute",
         "--ExecutePreprocessor.kernel_name=" + KERNEL,
         "--ExecutePreprocessor.timeout=%d" % (RUN_TIMEOUT - 60),
         "--output", out_nb, os.path.join(work, "ferry_demo.ipynb")],
        cwd=work, env=env, capture_output=True, timeout=RUN_TIMEOUT,
        stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr.decode("utf-8", "replace")[-4000:]

    with open(out_nb) as f:
        nb = json.load(f)
    text = []
    for cell in nb["cells"]:
        for o in cell.get("outputs", ()):
            assert o.get("output_type") != "error", o
            if o.get("output_type") == "stream" and o["name"] == "stdout":
                text.append("".join(o["text"]))
    text = "".join(text)
    assert "correct: True" in text, text
    assert ("the crashing task failed alone: TaskCrashed" in text or
            "the crashing task failed alone: TaskDead" in text), text
    assert "the other tasks: 20 of 20 completed" in text, text
    assert "first slice again:" in text, text
    assert "closed: <LocalCluster closed>" in text, text

    # the kernel, the cluster and its workers are gone (bounded wait)
    deadline = time.monotonic() + 60
    while processes_under(tdir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_under(tdir) == []
    # the notebook removed its data and the cluster its directory
    assert sorted(n for n in os.listdir(tdir)
                  if n.startswith("ferry-")) == [], \
        os.listdir(tdir)
