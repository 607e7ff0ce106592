"""ferry.Client with Python tasks (@ferry.task functions run by the
workers' embedded interpreter, the task library ferry_python): functions
passed as such, a Python exception as TaskError with the remote type and
traceback, object references read as numpy arrays, futures between
Python tasks, and ferry.Executor running the very functions a
ProcessPoolExecutor runs.  Skipped where ferry_python is not built."""

import concurrent.futures as cf
import os

import pytest

import ferry
import ferry._paths as paths

T = 60
HERE = os.path.dirname(os.path.abspath(__file__))


def have_ferry_python():
    return any(os.path.exists(os.path.join(d, "libferry_python.so"))
               for d in paths.library_dirs())


pytestmark = pytest.mark.skipif(not have_ferry_python(),
                                reason="ferry_python (the worker's "
                                "embedded Python) is not built here")


@pytest.fixture(scope="module")
def pt():
    """The task module (imported here: it needs @ferry.task)."""
    import client_pytasks
    return client_pytasks


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from conftest import Cluster
    roots = tmp_path_factory.mktemp("objects")
    c = Cluster(tmp_path_factory.mktemp("cluster"), processes=2,
                libraries=(), python_modules=["client_pytasks"],
                python_path=[HERE], object_roots=[roots])
    c.objects = roots
    yield c
    c.stop()


@pytest.fixture
def client(cluster):
    with ferry.Client(cluster.address) as c:
        yield c


def test_functions_as_tasks(client, pt):
    assert pt.square.__ferry_name__ == "client_pytasks.square"
    assert client.submit(pt.square, 12).result(T) == 144
    xs = list(range(-20, 280))
    got = client.gather(client.map(pt.square, xs), timeout=T)
    for x, r in zip(xs, got):
        assert r == x * x
    assert client.submit("client_pytasks.add", "a", "b").result(T) == "ab"


def test_python_exception(client, pt):
    f = client.submit(pt.boom, "bad input")
    with pytest.raises(ferry.TaskError) as e:
        f.result(T)
    err = e.value
    assert err.remote_type.endswith("ValueError")
    assert err.remote_message == "bad input"
    assert err.remote_traceback.startswith("Traceback")
    assert "boom" in err.remote_traceback
    assert "ValueError: bad input" in str(err)
    assert "boom" in str(err.__cause__)
    with pytest.raises(ferry.TaskError) as e:
        client.submit(pt.custom).result(T)
    assert e.value.remote_type.endswith("Custom")
    assert e.value.remote_message == "mine"


def test_values_as_python_sees_them(client, pt):
    np = pytest.importorskip("numpy")
    r = client.submit(pt.kinds, None, True, 1, 1.5, "s", b"b", (1, 2),
                      {"k": 1}, np.int64(3), np.float32(0.5)).result(T)
    assert r == ["NoneType", "bool", "int", "float", "str", "bytes",
                 "list", "dict", "int", "float"]


def test_object_refs(cluster, client, pt):
    np = pytest.importorskip("numpy")
    a = np.arange(1000, dtype=np.float64)
    path = os.path.join(str(cluster.objects), "a.npy")
    np.save(path, a)
    ref = ferry.object(path)
    fs = [client.submit(pt.total, ref) for _ in range(10)]
    assert [f.result(T) for f in fs] == [float(a.sum())] * 10
    raw = os.path.join(str(cluster.objects), "raw.bin")
    with open(raw, "wb") as f:
        f.write(b"x" * 4097)
    assert client.submit(pt.nbytes, ferry.object(raw)).result(T) == 4097


def test_graph_of_python_tasks(client, pt):
    a = client.submit(pt.square, 3)
    b = client.submit(pt.square, 4)
    c = client.submit(pt.add, a, b)
    d = client.submit(pt.add, c, client.submit(pt.square, c))
    assert d.result(T) == 25 + 625
    bad = client.submit(pt.boom, "x")
    with pytest.raises(ferry.DependencyError):
        client.submit(pt.add, bad, 1).result(T)


def pipeline(executor, pt):
    """Code written for ProcessPoolExecutor."""
    with executor as ex:
        futs = [ex.submit(pt.square, i) for i in range(30)]
        total = sum(f.result() for f in cf.as_completed(futs, timeout=T))
        mapped = list(ex.map(pt.add, range(20), range(20, 40)))
        try:
            ex.submit(pt.boom, "no").result()
            raised = None
        except ValueError as e:      # a local ValueError ...
            raised = ("ValueError", str(e))
        except ferry.TaskError as e:  # ... or its remote counterpart
            raised = (e.remote_type, e.remote_message)
    return total, mapped, raised


def test_executor_runs_the_same_functions(cluster, pt):
    want = pipeline(cf.ProcessPoolExecutor(2), pt)
    got = pipeline(ferry.Executor(cluster.address), pt)
    assert got == want
