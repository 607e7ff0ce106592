"""ferry.Client against a private cluster running the C task library
ferry_examples (add, echo, square, sum, sleep_ms, fail, crash, noop,
sum_u64): results, errors, cancelling, concurrent.futures' wait and
as_completed, futures as arguments of later tasks, object references,
and closing.  Every wait is bounded; nothing depends on speed."""

import asyncio
import concurrent.futures as cf
import os
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import ferry
from conftest import Cluster, child_env

T = 60  # seconds any one result may take on a loaded machine


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    roots = tmp_path_factory.mktemp("objects")
    c = Cluster(tmp_path_factory.mktemp("cluster"), processes=2,
                object_roots=[roots])
    c.objects = roots
    yield c
    c.stop()


@pytest.fixture
def client(cluster):
    with ferry.Client(cluster.address) as c:
        yield c


def completion_threads():
    return [t for t in threading.enumerate()
            if t.name == "ferry-completions"]


# ------------------------------------------------------------ results

def test_submit_result(client):
    f = client.submit("add", 2, 3)
    assert isinstance(f, cf.Future)
    assert isinstance(f, ferry.Future)
    assert f.result(T) == 5
    assert f.done() and not f.cancelled() and f.exception() is None
    assert f.id > 0
    assert f.attempts == 1
    assert f.function == "add"
    assert "add" in repr(f)


def test_map_values(client):
    xs = list(range(-50, 250))
    fs = client.map("square", xs)
    assert len(fs) == len(xs)
    got = client.gather(fs, timeout=T)
    for x, r in zip(xs, got):
        assert r == x * x, x
    # futures in the order given, each with its own id
    assert len(set(f.id for f in fs)) == len(fs)


def test_map_several_iterables_and_batches(client):
    a = list(range(300))
    b = [1000 + 3 * i for i in range(300)]
    fs = client.map("add", a, b, batch_size=7)
    assert [f.result(T) for f in fs] == [x + y for x, y in zip(a, b)]
    # zip stops at the shortest, as the built-in map does
    assert len(client.map("add", range(5), range(3))) == 3


def test_submit_many_then_gather(client):
    fs = [client.submit("sum", *range(i)) for i in range(250)]
    assert client.gather(fs, timeout=T) == [sum(range(i)) for i in
                                           range(250)]


VALUES = [
    None, True, False, 0, 1, -1, 127, 128, -32, -33, 255, 256, 65535,
    65536, -129, -32769, 2**32, -2**31 - 1, 2**63 - 1, -2**63, 2**64 - 1,
    0.5, -1e300, float("inf"), "", "x", "é€😀", "s" * 40, "t" * 300,
    "u" * 70000, b"", b"\x00\xff", bytes(300), bytearray(b"ab"),
    [], [1, [2, [3, []]]], (1, 2), {"a": 1, "b": [1, 2]},
    {1: "one", -2: None}, {"k" * 20: list(range(20))},
    list(range(16)), list(range(70000)), {str(i): i for i in range(17)},
]


def expected(v):
    if isinstance(v, tuple):
        return [expected(x) for x in v]
    if isinstance(v, list):
        return [expected(x) for x in v]
    if isinstance(v, dict):
        return {k: expected(x) for k, x in v.items()}
    if isinstance(v, bytearray):
        return bytes(v)
    return v


def test_values_round_trip(client):
    # echo returns its argument array as it came
    fs = [client.submit("echo", v) for v in VALUES]
    for v, f in zip(VALUES, fs):
        assert f.result(T) == [expected(v)], repr(v)[:80]
    r = client.submit("echo", {(1, 2): "pair"}).result(T)
    assert r == [{(1, 2): "pair"}]  # an array key comes back a tuple


def test_c_packer_matches_msgpack():
    import msgpack
    from ferry import _codec, _ferry
    for v in VALUES + [tuple(VALUES)]:
        packed = _ferry._pack((v,))
        assert packed is not None, repr(v)[:80]
        assert packed == msgpack.packb((v,), use_bin_type=True), \
            repr(v)[:80]
        assert packed == _codec.encode_args((v,))
        assert _ferry._unpack(msgpack.packb(v)) == expected(v), repr(v)[:80]
    # what C leaves to _codec
    assert _ferry._pack((2**64,)) is None
    assert _ferry._pack(({1, 2},)) is None
    assert _ferry._pack(("\ud800",)) is None


def test_numpy_scalars_are_numbers(client):
    np = pytest.importorskip("numpy")
    r = client.submit("echo", np.int64(-7), np.float32(0.5),
                      np.float64(2.25), np.bool_(True), np.uint8(200))
    assert r.result(T) == [-7, 0.5, 2.25, True, 200]
    assert client.submit("add", np.int32(2), np.int64(3)).result(T) == 5


# ------------------------------------------------------------ refusals

def test_ndarray_refused_with_advice(client):
    np = pytest.importorskip("numpy")
    with pytest.raises(TypeError) as e:
        client.submit("echo", 1, {"data": [0, np.zeros(3)]})
    msg = str(e.value)
    assert "argument 2" in msg
    assert "args[1]['data'][1]" in msg
    assert "ndarray" in msg and ".npy" in msg and "ferry.object" in msg
    assert "'echo'" in msg


def test_set_and_objects_refused(client):
    with pytest.raises(TypeError, match=r"argument 1 .*set.*list"):
        client.submit("echo", {1, 2})

    class Thing:
        pass
    with pytest.raises(TypeError, match=r"argument 3 .*Thing is not sent"):
        client.submit("echo", 1, 2, Thing())
    with pytest.raises(OverflowError, match="64-bit"):
        client.submit("echo", 2**70)
    with pytest.raises(TypeError, match="surrogates"):
        client.submit("echo", "\udc80")


def test_map_all_or_nothing(client):
    before = client.stats()["submitted"]
    with pytest.raises(TypeError, match=r"argument 1 .*set"):
        client.map("echo", [1, 2, 3, {4}], batch_size=2)
    # the first batch went out and was withdrawn; the client goes on
    assert client.stats()["submitted"] == before + 2
    assert client.submit("add", 1, 1).result(T) == 2


def test_task_name_needed(client):
    with pytest.raises(TypeError, match="@ferry.task"):
        client.submit(lambda x: x, 1)

    def f(x):
        return x
    f.__ferry_name__ = "square"   # what @ferry.task sets
    assert client.submit(f, 9).result(T) == 81
    assert client.map(f, [3])[0].result(T) == 9


# ------------------------------------------------------------ errors

def test_task_error(client):
    f = client.submit("fail", "it broke")
    with pytest.raises(ferry.TaskError) as e:
        f.result(T)
    err = e.value
    assert isinstance(err, ferry.FerryError)
    assert err.code == -11 and err.name == "ETASK"
    assert err.message == "it broke"
    assert err.attempts == 1
    assert err.task_id == f.id and err.function == "fail"
    assert err.remote_type is None and err.remote_traceback is None
    assert "it broke" in str(err)
    assert f.exception(T) is err
    # a C task's own complaint
    with pytest.raises(ferry.TaskError, match="must be a number"):
        client.submit("add", "x", 1).result(T)


def test_error_mapping():
    from ferry import errors
    tb = ('Traceback (most recent call last):\n  File "m.py", line 3, in f\n'
          '    raise ValueError("bad")\nValueError: bad\n')
    e = errors._from_code(-11, "ValueError: bad\n\n" + tb, 2, 7, "m.f")
    assert type(e) is ferry.TaskError
    assert e.remote_type == "ValueError" and e.remote_message == "bad"
    assert e.remote_traceback == tb
    assert e.attempts == 2 and e.task_id == 7
    assert str(e).startswith("task 7 (m.f): ValueError: bad")
    assert tb.strip() in str(e.__cause__)
    e = errors._from_code(-11, "pkg.mod.Oops\n\nTraceback ...", 1, 1, "f")
    assert e.remote_type == "pkg.mod.Oops" and e.remote_message == ""
    e = errors._from_code(-11, "add: argument 1 must be a number", 1, 1, "")
    assert e.remote_type is None
    for code, cls in [(-20, ferry.TaskCrashed), (-16, ferry.TaskCrashed),
                      (-19, ferry.TaskDead), (-25, ferry.DependencyError),
                      (-5, ferry.ConnectionLost), (-4, ferry.ConnectionLost),
                      (-3, errors.TimeoutError), (-21, ferry.FerryError)]:
        e = errors._from_code(code, "m", 1, 1, "f")
        assert type(e) is cls, code
    assert isinstance(errors._from_code(-3, "m"), TimeoutError)
    assert isinstance(errors._from_code(-5, "m"), ConnectionError)
    import pickle
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is type(e) and e2.message == e.message


def test_crash(client):
    f = client.submit("crash", retries=0)
    with pytest.raises(ferry.TaskCrashed) as e:
        f.result(T)
    assert e.value.name == "ECRASHED"
    assert "SIGSEGV" in e.value.message
    assert e.value.attempts == 1
    # the cluster goes on
    assert client.submit("add", 1, 2).result(T) == 3


def test_retries_then_quarantine(client):
    f = client.submit("crash", retries=5)
    with pytest.raises(ferry.TaskDead) as e:
        f.result(T)
    assert e.value.attempts >= 2
    assert f.attempts == e.value.attempts


def test_task_options(cluster, client):
    f = client.submit("sleep_ms", 5000, timeout=0.2, retries=0)
    with pytest.raises(ferry.errors.TimeoutError) as e:
        f.result(T)
    assert isinstance(e.value, TimeoutError) and e.value.name == "ETIMEDOUT"
    f = client.submit("fail", "x", retries=2, retry_errors=True)
    with pytest.raises(ferry.TaskError) as e:
        f.result(T)
    assert e.value.attempts == 3 and f.attempts == 3
    fs = client.map("fail", ["y"] * 3, retries=1, retry_errors=True)
    assert [x.exception(T).attempts for x in fs] == [2, 2, 2]
    # the client's defaults, overridden per task
    with ferry.Client(cluster.address, retries=0, task_timeout=0.2) as c:
        with pytest.raises(ferry.errors.TimeoutError):
            c.submit("sleep_ms", 5000).result(T)
        assert c.submit("sleep_ms", 400, timeout=T).result(T) == 400
    with pytest.raises(ValueError):
        client.submit("add", 1, 2, retries=5000)
    with pytest.raises(ValueError):
        client.submit("add", 1, 2, timeout=-1)


# ------------------------------------------------------------ cancel

def test_cancel(cluster, client):
    before = cluster.status()["cancelled"]
    busy = [client.submit("sleep_ms", 30000) for _ in range(2)]
    queued = client.submit("sleep_ms", 30000)
    assert queued.cancel() is True
    assert queued.cancelled() and queued.done()
    with pytest.raises(cf.CancelledError):
        queued.result(T)
    assert queued.cancel() is True
    assert client.cancel(busy) == 2
    for f in busy:
        with pytest.raises(cf.CancelledError):
            f.result(T)
    # the scheduler cancelled them too (the running ones' processes were
    # killed): the cluster is free for the next task at once
    assert client.submit("add", 1, 1).result(T) == 2
    deadline = time.monotonic() + T
    while cluster.status()["cancelled"] < before + 3:
        assert time.monotonic() < deadline, "scheduler did not cancel"
        time.sleep(0.05)
    done = client.submit("add", 2, 2)
    assert done.result(T) == 4
    assert done.cancel() is False and not done.cancelled()


def test_timeout_waiting(client):
    f = client.submit("sleep_ms", 3000)
    with pytest.raises(cf.TimeoutError):
        f.result(0.05)
    with pytest.raises(TimeoutError):
        client.gather([f], timeout=0.05)
    f.cancel()


# ------------------------------------------- concurrent.futures' tools

HOUR = 3600000  # ms: a task that ends only when cancelled


def test_wait_and_as_completed(client):
    slow = client.submit("sleep_ms", HOUR)
    fast = client.map("square", range(50))
    done, not_done = cf.wait(fast + [slow], timeout=T,
                             return_when=cf.FIRST_COMPLETED)
    assert done and all(f in fast for f in done)
    seen = set()
    for f in cf.as_completed(fast, timeout=T):
        seen.add(f.result())
    assert seen == set(i * i for i in range(50))
    assert slow.cancel()
    done, not_done = cf.wait([slow] + fast, timeout=T)
    assert not not_done and slow.cancelled()
    done, not_done = ferry.wait(fast + [slow], timeout=T)
    assert len(done) == 51 and not not_done
    assert sorted(f.result() for f in ferry.as_completed(fast)) == \
        sorted(i * i for i in range(50))
    assert sorted(f.result() for f in client.as_completed(fast)) == \
        sorted(i * i for i in range(50))


def test_ferry_as_completed(client):
    slow = client.submit("sleep_ms", HOUR)
    fs = client.map("square", range(300)) + [slow]
    fs[0].result(T)
    order = []
    for f in ferry.as_completed(fs + fs[:10], timeout=T):
        order.append(f)
        if len(order) == len(fs) - 1:
            slow.cancel()   # the only one left
    assert len(order) == len(fs) and set(order) == set(fs)  # each once
    assert order[-1] is slow
    assert sorted(f.result() for f in order[:-1]) == \
        sorted(i * i for i in range(300))
    # a timeout, then the same futures again
    s2 = client.submit("sleep_ms", 2000)
    it = ferry.as_completed([fs[1], s2], timeout=0.2)
    assert next(it) is fs[1]
    with pytest.raises(cf.TimeoutError, match="1 .of 2. futures"):
        next(it)
    # a generator left early stops watching; the futures go on
    it = ferry.as_completed([s2])
    it.close()
    assert s2.result(T) == 2000
    # cancelled ones come out too
    c = client.submit("sleep_ms", 30000)
    it = ferry.as_completed([c], timeout=T)
    c.cancel()
    assert next(it) is c and c.cancelled()
    # futures of other executors: concurrent.futures does it
    with cf.ThreadPoolExecutor(1) as ex:
        other = ex.submit(int, "3")
        assert set(ferry.as_completed([other, fs[2]], timeout=T)) == \
            {other, fs[2]}


def test_ferry_wait(client):
    slow = client.submit("sleep_ms", HOUR)
    bad = client.submit("fail", "x")
    quick = client.submit("square", 5)
    done, not_done = ferry.wait([slow, quick], timeout=T,
                                return_when=cf.FIRST_COMPLETED)
    assert quick in done and slow in not_done
    done, not_done = ferry.wait([slow, bad, quick], timeout=T,
                                return_when=cf.FIRST_EXCEPTION)
    assert bad in done and slow in not_done
    done, not_done = ferry.wait([slow], timeout=0.05,
                                return_when=cf.FIRST_COMPLETED)
    assert not done and not_done == {slow}
    slow.cancel()
    done, not_done = client.wait([slow, bad, quick], timeout=T)
    assert len(done) == 3 and not not_done
    with pytest.raises(ValueError):
        ferry.wait([slow], return_when="SOMETIME")


def test_wait_first_exception(client):
    fs = [client.submit("sleep_ms", 3000), client.submit("fail", "x")]
    done, _ = cf.wait(fs, timeout=T, return_when=cf.FIRST_EXCEPTION)
    assert fs[1] in done
    client.cancel(fs)


def test_callbacks_and_asyncio(client):
    got = []
    ev = threading.Event()
    f = client.submit("square", 7)
    f.add_done_callback(lambda fut: (got.append(fut.result()), ev.set()))
    assert ev.wait(T) and got == [49]
    # added after the end: called at once
    f.add_done_callback(lambda fut: got.append(-1))
    assert got == [49, -1]

    async def main():
        return await asyncio.wrap_future(client.submit("add", 20, 22))
    assert asyncio.run(asyncio.wait_for(main(), T)) == 42


def test_result_from_many_threads(client):
    fs = client.map("sleep_ms", [50] * 20)
    out = [None] * 8

    def reader(i):
        out[i] = [f.result(T) for f in fs]
    ts = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(T)
    assert out == [[50] * 20] * 8


def test_gather_skip(client):
    fs = [client.submit("square", 3), client.submit("fail", "no"),
          client.submit("square", 4)]
    c = client.submit("sleep_ms", 30000)
    c.cancel()
    assert client.gather(fs + [c], errors="skip", timeout=T) == [9, 16]
    with pytest.raises(ferry.TaskError):
        client.gather(fs, timeout=T)
    with pytest.raises(ValueError):
        client.gather(fs, errors="ignore")
    # futures of other executors too
    with cf.ThreadPoolExecutor(1) as ex:
        assert ferry.client.gather([ex.submit(int, "5"), fs[0]]) == [5, 9]


# ---------------------------------------------------------- task graphs

def test_futures_as_arguments(client):
    a = client.submit("square", 3)
    b = client.submit("add", a, 1)                # 10
    c = client.submit("echo", [a, {"b": b}], "x")
    assert c.result(T) == [[9, {"b": 10}], "x"]
    # a chain, submitted whole before anything finished
    f = client.submit("sleep_ms", 100)
    for _ in range(20):
        f = client.submit("add", f, 1)
    assert f.result(T) == 120
    # a tree of sums through map
    leaves = client.map("square", range(64))
    level = leaves
    while len(level) > 1:
        level = client.map("add", level[0::2], level[1::2])
    assert level[0].result(T) == sum(i * i for i in range(64))


def test_dependency_failure(client):
    bad = client.submit("fail", "first")
    dep = client.submit("add", bad, 1)
    with pytest.raises(ferry.DependencyError) as e:
        dep.result(T)
    assert e.value.name == "EDEPENDENCY"
    anyway = client.submit("echo", bad, run_anyway=True)
    r = anyway.result(T)
    assert r[0]["error"] == -11 and "first" in r[0]["message"]


def test_future_of_another_client(cluster, client):
    with ferry.Client(cluster.address) as other:
        f = other.submit("square", 2)
        f.result(T)
        with pytest.raises(ValueError, match="another client"):
            client.submit("add", f, 1)
        with pytest.raises(ValueError, match="another client"):
            client.map("add", [f], [1])
        # packed by _codec (a numpy scalar before it): refused as well
        np = pytest.importorskip("numpy")
        with pytest.raises(ValueError, match="another client"):
            client.submit("add", np.int64(1), f)


def test_future_ext():
    from ferry import _codec
    import msgpack
    with pytest.raises(TypeError):
        ferry.Future()
    assert _codec.decode(msgpack.packb(msgpack.ExtType(5, b"xy"))) == \
        msgpack.ExtType(5, b"xy")


# ---------------------------------------------------- object references

def test_object_ref_bytes():
    import msgpack
    from ferry import _codec
    ref = ferry.object("/data/m.npy")
    assert isinstance(ref, ferry.ObjectRef)
    assert ref.path == "/data/m.npy" and ref.loader is None
    want = msgpack.ExtType(70, msgpack.packb({"path": "/data/m.npy"}))
    assert _codec.encode_args((ref,)) == msgpack.packb([want])
    ref = ferry.object("/x", "read", size=4096, sha256=bytes(range(32)))
    payload = msgpack.packb({"path": "/x", "loader": "read", "size": 4096,
                             "sha256": bytes(range(32))}, use_bin_type=True)
    assert ref.__ferry_ext__() == (70, payload)
    assert _codec.encode_args(([1, ref],)) == msgpack.packb(
        [[1, msgpack.ExtType(70, payload)]], use_bin_type=True)
    # a result holding one comes back as an ObjectRef
    back = _codec.decode(msgpack.packb(msgpack.ExtType(70, payload)))
    assert back == ref and back.size == 4096 and back.loader == "read"
    with pytest.raises(ValueError):
        ferry.object("")
    with pytest.raises(ValueError):
        ferry.object("/x", sha256=b"short")


def test_object_ref_read_by_worker(cluster, client):
    words = [i * 7919 for i in range(1000)]
    path = os.path.join(str(cluster.objects), "words.bin")
    with open(path, "wb") as f:
        f.write(struct.pack("<%dQ" % len(words), *words))
    ref = ferry.object(path)
    fs = [client.submit("sum_u64", ref, 8 * i, 80) for i in range(0, 990, 10)]
    for i, f in zip(range(0, 990, 10), fs):
        assert f.result(T) == sum(words[i:i + 10])
    assert client.submit("echo", ref).result(T) == [ref]


# ------------------------------------------------------------ the client

def test_status_and_stats(client):
    st = client.status()
    assert st["workers"] == 2
    assert "submitted" in st
    client.submit("noop").result(T)
    s = client.stats()
    assert s["submitted"] >= 1 and s["completed"] >= 1
    assert s["duplicates"] == 0
    assert client.session > 0


def test_resume_session(cluster):
    a = ferry.Client(cluster.address)
    session = a.session
    fs = a.map("sleep_ms", [1000, 1001])
    ids = [f.id for f in fs]
    assert a.sent(T)
    a.close()
    for f in fs:  # unless they had finished already
        assert f.exception(T) is None or \
            isinstance(f.exception(T), ferry.ConnectionLost)
    if any(f.exception(T) is None for f in fs):
        pytest.skip("the tasks finished before the client closed")
    # another client (another process, say) takes the session over
    with ferry.Client(cluster.address, session=session) as b:
        assert b.session == session
        got = [b.attach(i) for i in ids]
        assert [f.result(T) for f in got] == [1000, 1001]
        with pytest.raises(ferry.FerryError) as e:
            b.attach(ids[0])     # delivered already
        assert e.value.name == "ENOTFOUND"


def test_default_address(cluster, monkeypatch):
    monkeypatch.setenv("FERRY_ADDRESS", cluster.address)
    with ferry.Client() as c:
        assert c.address == cluster.address
        assert c.submit("add", 1, 2).result(T) == 3


def test_no_scheduler():
    t0 = time.monotonic()
    with pytest.raises(ferry.ConnectionLost) as e:
        ferry.Client("ipc:///nonexistent-dir/ferry.sock", timeout=5)
    assert "ipc:///nonexistent-dir/ferry.sock" in str(e.value)
    assert time.monotonic() - t0 < 30


def os_threads():
    return len(os.listdir("/proc/self/task"))


def timed_close(c):
    """Close c; whether libferry gave up waiting for NNG's socket close
    (NNG 1.5's nng_close can hang, nanomsg/nng#1543 and #1813; libferry
    then leaves a thread to finish it after 2 s, client/conn.c)."""
    t0 = time.monotonic()
    c.close()
    return time.monotonic() - t0 >= 1.9


def test_close(cluster):
    base = len(completion_threads())
    # NNG's own threads start with the first client of the process
    leaked = timed_close(ferry.Client(cluster.address))
    before = os_threads()
    c = ferry.Client(cluster.address)
    assert c.submit("add", 1, 1).result(T) == 2
    assert len(completion_threads()) == base + 1
    pending = c.submit("sleep_ms", 3000)
    leaked = timed_close(c) or leaked
    c.close()   # idempotent
    assert c.closed
    with pytest.raises(ferry.ConnectionLost, match="closed"):
        pending.result(T)
    with pytest.raises(ferry.ConnectionLost):
        c.submit("add", 1, 1)
    assert len(completion_threads()) == base
    # libferry's I/O thread went too (a joined thread may take a moment
    # to leave the process), unless NNG's close hung
    deadline = time.monotonic() + T
    while os_threads() > before and not leaked:
        assert time.monotonic() < deadline, "threads left behind"
        time.sleep(0.01)
    # a client dropped without close is closed when collected
    c = ferry.Client(cluster.address)
    c.submit("noop").result(T)
    del c
    import gc
    gc.collect()
    deadline = time.monotonic() + T
    while len(completion_threads()) > base:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_futures_keep_their_client(cluster):
    base = len(completion_threads())
    fs = ferry.Client(cluster.address).map("square", range(10))
    import gc
    gc.collect()
    assert fs[0].client is not None and not fs[0].client.closed
    assert ferry.client.gather(fs, timeout=T) == [i * i for i in range(10)]
    del fs
    gc.collect()
    deadline = time.monotonic() + T
    while len(completion_threads()) > base:
        assert time.monotonic() < deadline, "client not closed"
        time.sleep(0.01)


def test_unclosed_client_at_exit(cluster):
    script = textwrap.dedent("""
        import ferry, sys
        c = ferry.Client(sys.argv[1])
        assert c.submit("add", 1, 2).result(60) == 3
        fs = c.map("sleep_ms", [2000] * 4)
        print("submitted", flush=True)
        # exit with tasks pending, the client open
    """)
    env = dict(os.environ)
    p = subprocess.run([sys.executable, "-c", script, cluster.address],
                       capture_output=True, timeout=T, env=env)
    assert p.returncode == 0, p.stderr.decode()
    assert b"submitted" in p.stdout
