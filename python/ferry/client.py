"""ferry.Client: submit tasks to a Ferry cluster from Python.

    import ferry

    with ferry.Client() as client:                 # the default cluster
        f = client.submit("add", 2, 3)             # add [2, 3]
        print(f.result())                          # 5
        fs = client.map("square", range(1000))     # 1000 tasks, batched
        print(sum(client.gather(fs)))

A task is named by its function (a str as the workers registered it, or
a function decorated with @ferry.task) and takes positional arguments,
sent as one msgpack array.  Futures are concurrent.futures.Future
objects: concurrent.futures.wait() and as_completed() work on them, and
so does asyncio.wrap_future().  A future may be an argument of a later
task of the same client: the scheduler runs that task once the first
has finished, with its result in the future's place (docs/graphs.md).

Each client has a libferry connection (its own I/O thread) and, once it
has submitted something, a daemon thread that completes futures in
batches.  close() (or leaving the with block, the end of the program,
or dropping the client and every future it made: a future keeps its
client open) fails the tasks still pending with ConnectionLost and stops
both.
"""

import concurrent.futures as _cf
import math
import threading
import time as _time
import weakref

from . import _codec, _ferry, errors

__all__ = ["Client", "Future", "as_completed", "wait", "gather"]

ALL_COMPLETED = _cf.ALL_COMPLETED
FIRST_COMPLETED = _cf.FIRST_COMPLETED
FIRST_EXCEPTION = _cf.FIRST_EXCEPTION

DEFAULT_BATCH = 4096  # tasks per ferry_map call in Client.map


class Future(_ferry.FutureBase, _cf.Future):
    """The future of one task: a concurrent.futures.Future, plus

        .id         the task's id in its client's session
        .function   the task's function name
        .attempts   runs the scheduler started (more than 1 after
                    retries)
        .client     the Client that submitted it (a future keeps its
                    client open)
        cancel()    cancels the task in the scheduler too (a running one's
                    worker process is killed); True unless the outcome is
                    here already

    result() raises the task's error as a ferry.FerryError subclass
    (TaskError, TaskCrashed, ...), CancelledError if it was cancelled.
    Futures are made by Client.submit() and Client.map() only.
    """

    def __repr__(self):
        state = self._state
        what = "<ferry.Future task %d %s" % (self.id, self.function)
        if state == _cf._base.FINISHED:
            exc = self._exception
            if exc is not None:
                return "%s raised %s>" % (what, type(exc).__name__)
            return "%s returned %s>" % (what, type(self._result).__name__)
        return "%s %s>" % (what, state.lower())

    def __reduce__(self):
        raise TypeError("a ferry.Future cannot be pickled; pass it among "
                        "the arguments of a task of the same client")


_ferry._configure(Future, _codec.decode, _codec.encode_args,
                  errors._from_code)


def _name_of(fn):
    if type(fn) is str:
        return fn
    name = getattr(fn, "__ferry_name__", None)
    if isinstance(name, str):
        return name
    if isinstance(fn, str):
        return str(fn)
    raise TypeError(
        "a task is named by a str (the name its workers registered, e.g. "
        "'add' or 'mymod.square') or by a function decorated with "
        "@ferry.task; got %r: decorate it with @ferry.task and have the "
        "workers import its module (python_modules)" % (fn,))


def _ms(seconds, what):
    if seconds is None:
        return -1
    if seconds < 0 or math.isnan(seconds):
        raise ValueError("%s must be a number of seconds >= 0" % what)
    return int(math.ceil(seconds * 1000))


def _flag(v):
    return -1 if v is None else (1 if v else 0)


def _task_opts(retries, timeout, retry_errors, run_anyway):
    """The extension's options tuple, or None for all defaults."""
    if retries is None and timeout is None and retry_errors is None and \
            run_anyway is None:
        return None
    if retries is not None and not (0 <= retries <= 1000):
        raise ValueError("retries must be 0 ... 1000")
    return (-1 if retries is None else int(retries),
            _ms(timeout, "timeout"), _flag(retry_errors), _flag(run_anyway),
            -1, -1)


def _close_core(core, box):
    """Close a client's core and wait for its completion thread (also at
    the end of the program, for a client never closed)."""
    core.close()
    t = box[0]
    if t is not None and t is not threading.current_thread():
        t.join(30)


class Client:
    """A connection to a Ferry scheduler.

    address: its NNG URL (None: the default cluster, as `ferry submit`
    finds it: $FERRY_ADDRESS, else the local cluster's socket).
    timeout: seconds to wait for the scheduler to answer; when nothing
    listens at the address connecting fails after 1 s unless
    wait_for_scheduler=True (then it waits the whole timeout, for a
    scheduler starting meanwhile).
    token_file, tls_ca_file, tls_cert_key_file, tls_server_name: security
    (docs/security.md).
    retries, task_timeout, retry_errors: defaults for this client's tasks
    (None: the scheduler's); each submit or map may override them.
    reconnect_timeout: seconds to keep trying after the connection drops
    (None: for ever); then pending tasks fail with ConnectionLost.
    session: resume an earlier client's session (its .session).
    batch_size: tasks per message in map (default 4096).
    max_unsent: most tasks held before the scheduler accepted them
    (submit and map wait for room beyond it).
    """

    def __init__(self, address=None, *, timeout=10, token_file=None,
                 tls_ca_file=None, tls_cert_key_file=None,
                 tls_server_name=None, retries=None, task_timeout=None,
                 retry_errors=None, reconnect_timeout=30,
                 wait_for_scheduler=False, session=None, batch_size=None,
                 max_unsent=None):
        timeout_ms = _ms(timeout, "timeout")
        if timeout_ms < 0:
            timeout_ms = 10000
        if reconnect_timeout is None:
            reconnect_ms = -1
        else:
            reconnect_ms = max(_ms(reconnect_timeout, "reconnect_timeout"),
                               1)
        self._core = _ferry.Client(
            address=None if address is None else str(address),
            timeout_ms=timeout_ms,
            token_file=None if token_file is None else str(token_file),
            tls_ca_file=None if tls_ca_file is None else str(tls_ca_file),
            tls_cert_key_file=(None if tls_cert_key_file is None
                               else str(tls_cert_key_file)),
            tls_server_name=tls_server_name,
            reconnect_ms=reconnect_ms,
            no_scheduler_ms=0 if wait_for_scheduler else min(timeout_ms,
                                                               1000),
            max_unsent=int(max_unsent or 0),
            max_batch=int(batch_size or 0),
            session=int(session or 0))
        self.address = address if address is not None else \
            _ferry.default_address()
        self._defaults = (retries, task_timeout, retry_errors)
        self._default_opts = _task_opts(retries, task_timeout, retry_errors,
                                        None)
        self._batch = int(batch_size or DEFAULT_BATCH)
        self._lock = threading.Lock()
        self._box = [None]  # the completion thread, once started
        self._finalizer = weakref.finalize(self, _close_core, self._core,
                                           self._box)

    # ------------------------------------------------------------ life

    def close(self):
        """Close the connection: tasks still pending fail with
        ConnectionLost (the scheduler cancels them when the session
        expires), and the client's threads stop.  Idempotent."""
        self._finalizer()

    @property
    def closed(self):
        return self._core.closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<ferry.Client %s%s>" % (self.address,
                                        " closed" if self.closed else "")

    def __reduce__(self):
        raise TypeError("a ferry.Client cannot be pickled")

    @property
    def session(self):
        """This client's session id (resume it with Client(session=...))."""
        return self._core.session

    def _start(self):
        with self._lock:
            if self._box[0] is None:
                t = threading.Thread(target=self._core.run_completions,
                                     name="ferry-completions", daemon=True)
                t.start()
                self._box[0] = t

    def _opts(self, retries, timeout, retry_errors, run_anyway):
        if retries is None and timeout is None and retry_errors is None \
                and run_anyway is None:
            return self._default_opts
        r, t, e = self._defaults
        return _task_opts(r if retries is None else retries,
                          t if timeout is None else timeout,
                          e if retry_errors is None else retry_errors,
                          run_anyway)

    # ---------------------------------------------------------- tasks

    def submit(self, fn, /, *args, retries=None, timeout=None,
               retry_errors=None, run_anyway=None):
        """Submit fn(*args); returns its Future.

        fn: a task's name or an @ferry.task function.  retries: runs
        again after a crash or timeout (and after an error the function
        raised, with retry_errors=True), 0 ... 1000.  timeout: seconds one
        run may take (its worker process is then killed).  run_anyway:
        run even if a future among the arguments failed or was cancelled,
        with {"error": code, "message": str} in its place.  None: this
        client's default, else the scheduler's.
        """
        f = self._core.submit(_name_of(fn), args,
                              self._opts(retries, timeout, retry_errors,
                                         run_anyway), self)
        if self._box[0] is None:
            self._start()
        return f

    def map(self, fn, *iterables, retries=None, timeout=None,
            retry_errors=None, run_anyway=None, batch_size=None):
        """Submit fn(*args) for each args in zip(*iterables); returns the
        list of futures in that order.  The tasks travel in batches of
        batch_size (one libferry call each).  All or nothing: if one
        task's arguments cannot be sent, none is left running.  Options
        as for submit()."""
        if not iterables:
            raise TypeError("map() needs at least one iterable")
        name = _name_of(fn)
        opts = self._opts(retries, timeout, retry_errors, run_anyway)
        if self._box[0] is None:
            self._start()
        return self._core.map(name, zip(*iterables), opts,
                              int(batch_size or self._batch), self)

    def attach(self, task_id):
        """The future of task task_id of this client's session: one
        submitted earlier here, or by an earlier process whose session
        this client resumed (Client(session=...)), whose result is then
        collected here.  FerryError (ENOTFOUND) if there is no such task
        or its result was already delivered to a future."""
        f = self._core.attach(int(task_id), self)
        if self._box[0] is None:
            self._start()
        return f

    def sent(self, timeout=None):
        """Wait until the scheduler has accepted every task submitted so
        far (tasks not yet sent are lost if the client closes); whether
        it has.  Before closing a client whose session another process
        resumes."""
        end = None if timeout is None else _time.monotonic() + timeout
        while self._core.stats()["unsent"] > 0:
            if end is not None and _time.monotonic() >= end:
                return False
            _time.sleep(0.005)
        return True

    def gather(self, futures, errors="raise", timeout=None):
        """The results of futures, in order.  errors="raise": the first
        failure (in order) is raised; "skip": failed and cancelled ones
        are left out.  timeout: seconds for all of them (TimeoutError)."""
        return gather(futures, errors=errors, timeout=timeout)

    def as_completed(self, futures, timeout=None):
        """Yield futures as they finish (concurrent.futures.as_completed)."""
        return as_completed(futures, timeout)

    def wait(self, futures, timeout=None, return_when=ALL_COMPLETED):
        """concurrent.futures.wait() for ferry futures: (done, not_done)."""
        return wait(futures, timeout, return_when)

    def cancel(self, futures):
        """Cancel many futures of this client in one message (a future or
        an iterable of them); returns how many are cancelled (those
        already finished keep their outcome)."""
        if isinstance(futures, _ferry.FutureBase):
            futures = [futures]
        return self._core.cancel_many(list(futures))

    def status(self, timeout=10):
        """The cluster's status: the scheduler's counters, its workers,
        recent failures and the functions tasks wait for (the document of
        `ferry status --json`, docs/protocol.md 3.12), as a dict."""
        doc = self._core.status(_ms(timeout, "timeout"))
        return _codec.decode(doc)

    def stats(self):
        """This client's counters: submitted, completed, resent,
        reconnects, orphans, unsent, duplicates."""
        return self._core.stats()


# ------------------------------------------------------- module level

def gather(futures, errors="raise", timeout=None):
    """The results of futures (ferry futures or any others), in order;
    see Client.gather."""
    if errors not in ("raise", "skip"):
        raise ValueError('errors must be "raise" or "skip"')
    if not isinstance(futures, (list, tuple)):
        futures = list(futures)
    return _ferry.gather(futures, errors == "skip", timeout)


def _all_ferry(fs):
    return all(isinstance(f, _ferry.FutureBase) for f in fs)


def _split(fs):
    rest, _ = _ferry.split_done(fs)
    not_done = set(rest)
    return _cf._base.DoneAndNotDoneFutures(
        set(f for f in fs if f not in not_done), not_done)


def _failed(f):
    return not f.cancelled() and f.exception() is not None


def wait(fs, timeout=None, return_when=ALL_COMPLETED):
    """concurrent.futures.wait() (any futures), done in C for ferry
    futures: returns (done, not_done) sets once return_when
    (ALL_COMPLETED, FIRST_COMPLETED or FIRST_EXCEPTION) holds or timeout
    seconds pass."""
    fs = list(dict.fromkeys(fs))
    if not _all_ferry(fs):
        return _cf.wait(fs, timeout, return_when)
    if return_when == ALL_COMPLETED:
        _ferry.wait_all(fs, timeout)
        return _split(fs)
    if return_when not in (FIRST_COMPLETED, FIRST_EXCEPTION):
        raise ValueError("return_when must be ALL_COMPLETED, "
                         "FIRST_COMPLETED or FIRST_EXCEPTION")
    w = _ferry.Watch(fs)
    end = None if timeout is None else _time.monotonic() + timeout
    try:
        while w.remaining:
            try:
                got = w.next(None if end is None else
                             max(0.0, end - _time.monotonic()))
            except _cf.TimeoutError:
                break
            if return_when == FIRST_COMPLETED or any(map(_failed, got)):
                break
    finally:
        w.close()
    return _split(fs)


def as_completed(fs, timeout=None):
    """Yield the futures as they finish (each once; the finished ones
    first), as concurrent.futures.as_completed() does; TimeoutError if
    timeout seconds pass first.  For ferry futures it is done in C, a
    batch of finished futures at a time, without a Condition per
    future."""
    fs = list(dict.fromkeys(fs))
    if not _all_ferry(fs):
        yield from _cf.as_completed(fs, timeout)
        return
    end = None if timeout is None else _time.monotonic() + timeout
    w = _ferry.Watch(fs)
    try:
        while True:
            got = w.next(None if end is None else
                         max(0.0, end - _time.monotonic()))
            if not got:
                return
            yield from got
    except _cf.TimeoutError:
        raise _cf.TimeoutError("%d (of %d) futures unfinished"
                               % (w.remaining, len(fs))) from None
    finally:
        w.close()
