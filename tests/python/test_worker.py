"""The worker's embedded Python (the task library ferry_python): functions
marked @ferry.task in the modules a worker group names run by name, with
msgpack arguments as Python values and the return value as the result;
exceptions fail the task with type, message and traceback; a crash fails
that task alone; object references arrive as read-only views of the
worker's mapping (.npy files as numpy arrays), with no copy.

The client is libferry through ctypes (wclient.py), so each test chooses
the exact msgpack values a task receives.  Every wait is bounded."""

import os
import subprocess
import sys
import time

import msgpack
import numpy
import pytest

from wclient import Client, TaskFailed, object_ref

HERE = os.path.dirname(os.path.abspath(__file__))
ETASK, EDEAD, ECRASHED = -11, -19, -20


def py_cluster(make_cluster, **kw):
    kw.setdefault("processes", 1)
    kw.setdefault("libraries", ())
    kw.setdefault("python_modules", ["pytasks"])
    kw.setdefault("python_path", [HERE])
    return make_cluster(**kw)


@pytest.fixture
def cluster(make_cluster):
    return py_cluster(make_cluster)


@pytest.fixture
def client(cluster):
    with Client(cluster.address) as c:
        yield c


# --------------------------------------------------------------- values

def test_results_are_the_functions_values(client):
    assert client.run("pytasks.add", 2, 3) == 5
    assert client.run("pytasks.add", "a", "b") == "ab"
    assert client.run("pytasks.noop") is None
    assert client.run("py_named", 7) == ["named", 7]
    values = [None, True, False, 0, -1, 2 ** 63 - 1, -2 ** 63, 2 ** 64 - 1,
              1.5, -0.0, "", "héllo ✓", b"\x00\xffbin", [1, [2, [3]]],
              {"a": {"b": [None]}}, {1: "int key"}]
    assert client.run("pytasks.echo", *values) == values


def test_arguments_decode_to_python_types(client):
    got = client.run("pytasks.describe", None, True, 1, -1, 2 ** 64 - 1,
                     1.5, "s", b"b", [1, "x"], {"k": 1, 2: 3})
    assert got == ["NoneType", "bool", "int", "int", "int", "float", "str",
                   "bytes", ["list", ["int", "str"]], ["dict", ["int",
                                                              "str"]]]
    # a float32 arrives as a float
    f32 = msgpack.packb(1.25, use_single_float=True)
    assert f32[0] == 0xca
    assert client.run("pytasks.describe", 1.25) == ["float"]
    # an array as a map key arrives as a tuple (hashable)
    assert client.run("pytasks.key_tuple", {(1, 2): "v"}) == [
        "tuple", [1, 2], "v"]
    # ext types other than object references arrive as ExtType
    assert client.run("pytasks.ext_code", msgpack.ExtType(9, b"raw")) == [
        "ExtType", 9, b"raw"]


def test_results_encode_python_values(client):
    assert client.run("pytasks.results", "tuple") == [1, [2, 3]]
    assert client.run("pytasks.results", "numpy") == [5, 1.5, True, 7]
    assert client.run("pytasks.results", "bytes") == [b"ab", b"cd"]
    assert client.run("pytasks.results", "ext") == msgpack.ExtType(5, b"xy")
    assert client.run("pytasks.results", "big") == [2 ** 64 - 1, -2 ** 63]
    # an object with __ferry_ext__() (ferry.object's ObjectRef) is its ext
    (ref,) = client.run("pytasks.results", "ferry_ext")
    assert ref.code == 70
    assert msgpack.unpackb(ref.data) == {"path": "/data/x.npy"}


@pytest.mark.parametrize("kind, where, what", [
    ("ndarray", "result['x'][1]",
     "cannot encode numpy.ndarray; return arr.tolist() or write it to a "
     "file and return ferry.object(path)"),
    ("set", "result[2]", "cannot encode set"),
    ("bigint", "result[0]", "out of msgpack's range"),
    ("object", "result['k']", "cannot encode object"),
    ("cycle", "result[0][0][0][0][0][0]...(501 levels)...[0][0][0][0][0][0]"
     "[0]", "nested deeper than 512 levels"),
])
def test_unencodable_result_says_what_and_where(client, kind, where, what):
    with pytest.raises(TaskFailed) as e:
        client.run("pytasks.bad_result", kind)
    assert e.value.code == ETASK
    assert where + ": " in e.value.message
    assert what in e.value.message
    assert e.value.message.split(":")[0] in ("TypeError", "OverflowError",
                                             "ValueError")


def test_arguments_must_be_an_array(cluster, client):
    # ferry submit --args sends exactly this value: a map, not an array
    out = subprocess.run(
        [cluster_ferry(), "submit", "-c", cluster.address, "--wait", "60s",
         "--args", '{"a": 1}', "pytasks.echo"],
        capture_output=True, timeout=90)
    assert out.returncode == 1
    assert b"array of positional arguments" in out.stderr


@pytest.mark.parametrize("raw, message", [
    # ["\xff\xfe"]: a str that is not UTF-8
    (b"\x91\xa2\xff\xfe", "ValueError: args[0]: str is not valid UTF-8"),
    # [{"k": [1, "\xff"]}]
    (b"\x91\x81\xa1k\x92\x01\xa1\xff",
     "ValueError: args[0]['k'][1]: str is not valid UTF-8"),
    # [{"\xff": 1}]: in a key
    (b"\x91\x81\xa1\xff\x01",
     "ValueError: args[0] (a key): str is not valid UTF-8"),
    # [{{}: 1}]: a map as a key
    (b"\x91\x81\x80\x01",
     "TypeError: args[0] key {}: cannot be a dict key (unhashable)"),
])
def test_undecodable_arguments_say_what_and_where(client, raw, message):
    with pytest.raises(TaskFailed) as e:
        client.result(client.submit_raw("pytasks.echo", raw))
    assert e.value.code == ETASK
    assert e.value.message.startswith(message), e.value.message


def cluster_ferry():
    import ferry._paths as paths
    return paths.ferry_bin()


# ----------------------------------------------------------- exceptions

def test_exception_fails_the_task_with_type_message_traceback(client):
    with pytest.raises(TaskFailed) as e:
        client.run("pytasks.boom", "bad input")
    msg = e.value.message
    assert e.value.code == ETASK
    head, _, tb = msg.partition("\n\n")
    assert head == "pytasks.TaskBoom: boom: bad input"
    assert tb.startswith("Traceback (most recent call last):")
    assert "pytasks.py" in tb and "in boom" in tb and "in inner" in tb
    assert tb.rstrip().endswith("pytasks.TaskBoom: boom: bad input")
    # the worker goes on
    assert client.run("pytasks.add", 1, 1) == 2


def test_builtin_exception_and_wrong_arguments(client):
    with pytest.raises(TaskFailed) as e:
        client.run("pytasks.add", 1)
    assert e.value.message.startswith("TypeError: add() missing 1 required")


def test_what_a_task_prints_reaches_the_log(cluster, client):
    assert client.run("pytasks.say", "hello from a task") is None
    deadline = time.monotonic() + 30
    while "hello from a task (stderr)" not in cluster.read_log():
        assert time.monotonic() < deadline, cluster.read_log()
        time.sleep(0.05)
    assert "hello from a task\n" in cluster.read_log()
    # and a subprocess of a task runs Python, not the worker
    assert os.path.basename(client.run("pytasks.executable")).startswith(
        "python3")


# -------------------------------------------------------------- crashes

@pytest.mark.parametrize("kind, signal", [("segv", "SIGSEGV"),
                                          ("abort", "SIGABRT")])
def test_crash_fails_that_task_alone(make_cluster, kind, signal):
    c = py_cluster(make_cluster, processes=2)
    with Client(c.address) as client:
        futs = [client.submit("pytasks.add", i, i) for i in range(50)]
        bad = client.submit("pytasks.crash", kind)
        futs += [client.submit("pytasks.add", i, 1) for i in range(50)]
        with pytest.raises(TaskFailed) as e:
            client.result(bad, timeout=120)
        assert e.value.code in (ECRASHED, EDEAD)
        assert "crashed its worker process: %s" % signal in e.value.message
        got = [client.result(f, timeout=120) for f in futs]
        assert got == [2 * i for i in range(50)] + [i + 1 for i in range(50)]
        # the group is whole again: both processes answer
        deadline = time.monotonic() + 60
        while c.status()["workers"] < 2:
            assert time.monotonic() < deadline, "no worker came back"
            time.sleep(0.1)
        assert client.run("pytasks.add", 20, 22) == 42


# -------------------------------------------------------------- objects

def _npy_cluster(make_cluster, tmp_path):
    root = tmp_path / "objects"
    root.mkdir()
    return root, py_cluster(make_cluster, object_roots=[root])


def test_npy_arrives_as_a_read_only_ndarray_over_the_mapping(
        make_cluster, tmp_path):
    root, c = _npy_cluster(make_cluster, tmp_path)
    a = numpy.arange(12, dtype=numpy.float64).reshape(3, 4) / 4
    numpy.save(root / "a.npy", a)
    f = numpy.asfortranarray(numpy.arange(6, dtype=numpy.int32).reshape(2, 3))
    numpy.save(root / "f.npy", f)
    with Client(c.address) as client:
        info = client.run("pytasks.npy_info", object_ref(root / "a.npy"))
        assert info["type"] == "numpy.ndarray" and info["is_numpy"]
        assert info["dtype"] == "float64" and info["shape"] == [3, 4]
        assert info["values"] == a.tolist()
        assert not info["writeable"]
        assert "read-only" in info["write"]
        assert info["unlock"] == "refused"
        # the array's memory is the worker's mapping of the file itself
        assert info["base"] == "ObjectMapping"
        assert info["mapped"] == str(root / "a.npy")
        again = client.run("pytasks.npy_info", object_ref(root / "a.npy"))
        assert again["addr"] == info["addr"]  # the cached mapping, no copy

        info = client.run("pytasks.npy_info", object_ref(root / "f.npy"))
        assert info["dtype"] == "int32" and info["shape"] == [2, 3]
        assert info["fortran"] and info["values"] == f.tolist()

        # two references to one file: one mapping
        assert client.run("pytasks.shares", object_ref(root / "a.npy"),
                          object_ref(root / "a.npy")) is True


def test_other_files_arrive_as_read_only_memoryviews(make_cluster, tmp_path):
    root, c = _npy_cluster(make_cluster, tmp_path)
    data = bytes(range(256)) * 3
    (root / "blob.bin").write_bytes(data)
    (root / "empty").write_bytes(b"")
    with Client(c.address) as client:
        info = client.run("pytasks.view_info", object_ref(root / "blob.bin"))
        assert info["type"] == "memoryview" and info["readonly"]
        assert info["bytes"] == data
        assert info["obj"] == "ObjectMapping"
        assert "read-only" in info["write"]
        assert info["mapped"] == str(root / "blob.bin")
        info = client.run("pytasks.view_info", object_ref(root / "empty"))
        assert info["bytes"] == b"" and info["readonly"]


def test_a_view_kept_past_its_task_stays_valid(make_cluster, tmp_path):
    root, c = _npy_cluster(make_cluster, tmp_path)
    (root / "one").write_bytes(b"\x01" * 1000)
    (root / "two").write_bytes(b"\x02" * 1000)
    with Client(c.address) as client:
        assert client.run("pytasks.keep", object_ref(root / "one")) == 1
        assert client.run("pytasks.keep", object_ref(root / "two")) == 2
        assert client.run("pytasks.kept_sum") == [1000, 2000]
        assert client.run("pytasks.kept_drop") == 2
        assert client.run("pytasks.kept_sum") == []


def test_bad_object_references_fail_clearly(make_cluster, tmp_path):
    root, c = _npy_cluster(make_cluster, tmp_path)
    (root / "fake.npy").write_bytes(b"not an array at all")
    with Client(c.address) as client:
        with pytest.raises(TaskFailed) as e:
            client.run("pytasks.npy_info", object_ref(root / "fake.npy"))
        assert e.value.message.startswith("ValueError: args[0]: ")
        assert "not a .npy file" in e.value.message
        with pytest.raises(TaskFailed) as e:
            client.run("pytasks.view_info", object_ref(tmp_path / "x"))
        assert "outside" in e.value.message or "root" in e.value.message


# ------------------------------------------------------------ the start

def _group_fails(make_cluster, modules, path=(), libraries=(), *needles):
    """A worker group of modules exits by itself, bounded, with a message
    holding needles in its log (the cluster's first group runs C tasks
    only, so that it starts)."""
    c = make_cluster(processes=1, libraries=["ferry_examples"])
    c.worker_args = ["--processes", "2", "--group", "bad"]
    for lib in libraries:
        c.worker_args += ["--library", lib]
    for m in modules:
        c.worker_args += ["--python-module", m]
    for d in path:
        c.worker_args += ["--python-path", str(d)]
    p = c.start_workers(wait=False)
    try:
        p.wait(60)
    except subprocess.TimeoutExpired:
        pytest.fail("the worker group did not stop:\n" + c.read_log())
    assert p.returncode != 0
    log = c.read_log()
    for n in needles:
        assert n in log, log
    return log


def test_module_that_fails_to_import_stops_the_worker(make_cluster, tmp_path):
    (tmp_path / "pybroken.py").write_text(
        "import ferry\n\n@ferry.task\ndef f():\n    pass\n\n1 / 0\n")
    log = _group_fails(
        make_cluster, ["pybroken"], [tmp_path], (), "python module 'pybroken' failed to import: ZeroDivisionError: "
        "division by zero", "pybroken.py\", line 7", "cannot start")
    # reported by each process once, not restarted over and over
    assert log.count("failed to import") <= 2


def test_missing_module_stops_the_worker(make_cluster):
    _group_fails(make_cluster, ["no_such_mod"], [HERE], (),
                 "python module 'no_such_mod' failed to import: "
                 "ModuleNotFoundError: No module named 'no_such_mod'")


def test_python_name_taken_by_a_c_function_stops_the_worker(make_cluster,
                                                             tmp_path):
    (tmp_path / "pyclash.py").write_text(
        "import ferry\n\n@ferry.task(name='add')\ndef f(a, b):\n"
        "    return a - b\n")
    _group_fails(make_cluster, ["pyclash"], [tmp_path], ["ferry_examples"],
                 "python task 'add'", "already registered")


def test_bad_module_name_is_refused_by_the_command(cluster):
    out = subprocess.run([cluster_ferry(), "worker", "--python-module",
                          "not-a-module", "-c", cluster.address],
                         capture_output=True, timeout=60)
    assert out.returncode == 2
    assert b"'not-a-module' is not a module name" in out.stderr


# ------------------------------------------------- C and Python together

def test_c_and_python_functions_in_one_group(make_cluster):
    c = py_cluster(make_cluster, libraries=["ferry_examples"])
    with Client(c.address) as client:
        assert client.run("add", 2, 3) == 5            # C
        assert client.run("pytasks.add", 2, 3) == 5    # Python
        assert client.run("echo", "x") == ["x"]


def test_c_and_python_groups_in_one_cluster(make_cluster):
    c = make_cluster(processes=1, libraries=["ferry_examples"])
    # a second group of Python workers on the same scheduler
    c._spawn([cluster_ferry(), "worker", "--connect", c.address,
              "--group", "py", "--processes", "1", "--log-level", "warn",
              "--python-module", "pytasks", "--python-path", HERE])
    c.wait_workers(2)
    with Client(c.address) as client:
        assert client.run("square", 7) == 49
        assert client.run("pytasks.add", 7, 7) == 14


def test_several_slots_share_one_interpreter(make_cluster):
    c = py_cluster(make_cluster, slots=4)
    with Client(c.address) as client:
        futs = [client.submit("pytasks.sleep_add", 0.01, i, i)
                for i in range(40)]
        futs += [client.submit("pytasks.add", i, 0) for i in range(200)]
        got = [client.result(f) for f in futs]
        assert got == [2 * i for i in range(40)] + list(range(200))
        pids = {client.run("pytasks.pid") for _ in range(10)}
        assert len(pids) == 1


# ------------------------------------------------------ changed modules

def test_changed_module_is_imported_by_restarted_workers(make_cluster,
                                                         tmp_path):
    mod = tmp_path / "pyversion.py"
    src = "import ferry\n\n@ferry.task\ndef version():\n    return %d\n"
    mod.write_text(src % 1)
    c = py_cluster(make_cluster, python_modules=["pyversion"],
                   python_path=[tmp_path])
    with Client(c.address) as client:
        assert client.run("pyversion.version") == 1
    # The new version has the same size and, forced here, the same
    # modification time, with a __pycache__ entry of the old one beside
    # it (as the notebook that imported the module itself leaves): a
    # check by size and time cannot see the edit; the workers must.
    import py_compile
    st = os.stat(mod)
    py_compile.compile(str(mod), doraise=True)
    mod.write_text(src % 2)
    os.utime(mod, ns=(st.st_atime_ns, st.st_mtime_ns))
    c.stop_process(c.workers)
    deadline = time.monotonic() + 60
    while c.status()["workers"] > 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    c.workers = c.start_workers()
    with Client(c.address) as client:
        assert client.run("pyversion.version") == 2


# ------------------------------------------------------------ decorator

def test_decorator_returns_the_function_and_names_it():
    import ferry
    from ferry import _task

    assert ferry.task(top_level) is top_level and top_level(1) == 2
    assert top_level.__ferry_name__ == __name__ + ".top_level"

    @ferry.task(name="custom.name")
    def g():
        pass

    assert g.__ferry_name__ == "custom.name"
    assert _task._registry["custom.name"] is g
    assert ferry.task("other.name")(g) is g
    assert g.__ferry_name__ == "other.name"

    with pytest.raises(ValueError, match="name=..."):
        ferry.task(lambda: 0)
    with pytest.raises(ValueError, match="not a valid task name"):
        ferry.task(name="bad name")(g)


def top_level(x):
    return x + 1


# ---------------------------------------------------------- cluster file

def test_cluster_file_python_group(make_cluster, tmp_path):
    """workers[].python in a cluster file: modules imported from the path
    directories, relative ones against the file's directory."""
    c = make_cluster(processes=1, libraries=["ferry_examples"])
    src = tmp_path / "src"
    src.mkdir()
    (src / "filetasks.py").write_text(
        "import ferry\n\n@ferry.task\ndef triple(x):\n    return 3 * x\n")
    conf = tmp_path / "cluster.yaml"
    conf.write_text(
        "scheduler:\n  listen: %s\n"
        "workers:\n"
        "  - name: py\n"
        "    processes: 1\n"
        "    python:\n"
        "      modules: [filetasks, pytasks]\n"
        "      path: [./src, %s]\n" % (c.address, HERE))
    c._spawn([cluster_ferry(), "worker", "-f", str(conf), "--group", "py",
              "--log-level", "warn"])
    c.wait_workers(2)
    with Client(c.address) as client:
        assert client.run("filetasks.triple", 5) == 15
        assert client.run("pytasks.add", 1, 2) == 3
        assert client.run("add", 1, 2) == 3
