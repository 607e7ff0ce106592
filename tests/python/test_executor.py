"""ferry.Executor where code expects a concurrent.futures.Executor: the
same function run with a ProcessPoolExecutor and a local function, and
with ferry.Executor and the task of that name in ferry_examples, gives
the same answers."""

import concurrent.futures as cf
import threading
import time

import pytest

import ferry
from conftest import Cluster

T = 60


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"), processes=2)
    yield c
    c.stop()


def square(x):
    return x * x


def add(a, b):
    return a + b


def pipeline(executor, square, add):
    """Code written for ProcessPoolExecutor."""
    with executor as ex:
        futs = [ex.submit(square, i) for i in range(40)]
        total = sum(f.result() for f in cf.as_completed(futs, timeout=T))
        mapped = list(ex.map(square, range(60)))
        pairs = list(ex.map(add, range(30), range(100, 130), timeout=T,
                            chunksize=8))
        done, not_done = cf.wait([ex.submit(add, 1, 2)], timeout=T)
        three = [f.result() for f in done]
    return total, mapped, pairs, three, not_done


def test_swap_for_process_pool(cluster):
    want = pipeline(cf.ProcessPoolExecutor(2), square, add)
    got = pipeline(ferry.Executor(cluster.address, max_workers=2), "square",
                   "add")
    assert got == want
    assert isinstance(ferry.Executor(cluster.address), cf.Executor)


def test_task_functions(cluster):
    def sq(x):
        return x * x
    sq.__ferry_name__ = "square"   # as @ferry.task marks it
    with ferry.Executor(cluster.address) as ex:
        assert ex.submit(sq, 5).result(T) == 25
        assert list(ex.map(sq, [1, 2, 3])) == [1, 4, 9]
        with pytest.raises(TypeError, match="@ferry.task"):
            ex.submit(square, 2)
        with pytest.raises(TypeError, match="positional"):
            ex.submit("add", a=1, b=2)


def test_map_error_cancels_the_rest(cluster):
    with ferry.Executor(cluster.address) as ex:
        results = ex.map("sleep_ms", [0, "x"] + [30000] * 4)
        assert next(results) == 0
        with pytest.raises(ferry.TaskError):
            next(results)
        # the generator is done; what it did not reach was cancelled, so
        # the cluster is free at once
        assert ex.submit("add", 2, 2).result(T) == 4


def test_map_timeout(cluster):
    with ferry.Executor(cluster.address) as ex:
        results = ex.map("sleep_ms", [5000], timeout=0.1)
        with pytest.raises(cf.TimeoutError):
            list(results)


def test_shutdown(cluster):
    ex = ferry.Executor(cluster.address)
    slow = [ex.submit("sleep_ms", 30000) for _ in range(4)]
    quick = ex.submit("add", 1, 1)
    t0 = time.monotonic()
    ex.shutdown(wait=True, cancel_futures=True)
    assert time.monotonic() - t0 < T
    assert all(f.cancelled() for f in slow)
    assert quick.done()
    assert ex.client.closed
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit("add", 1, 1)
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.map("add", [1], [1])


def test_shutdown_no_wait_closes_later(cluster):
    ex = ferry.Executor(cluster.address)
    f = ex.submit("sleep_ms", 300)
    ex.shutdown(wait=False)
    assert f.result(T) == 300
    deadline = time.monotonic() + T
    while not ex.client.closed:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_shared_client(cluster):
    with ferry.Client(cluster.address) as c:
        with ferry.Executor(client=c) as ex:
            assert ex.submit("add", 3, 4).result(T) == 7
        assert not c.closed
        assert c.submit("add", 1, 1).result(T) == 2
        with pytest.raises(TypeError):
            ferry.Executor(cluster.address, client=c)


def test_many_from_threads(cluster):
    with ferry.Executor(cluster.address) as ex:
        out = {}

        def work(k):
            out[k] = list(ex.map("add", range(100), [k] * 100))
        ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(T)
        assert out == {k: [i + k for i in range(100)] for k in range(4)}
