"""ferry.Executor: a concurrent.futures.Executor over a Ferry cluster.

Code written for ProcessPoolExecutor runs on a cluster by swapping the
executor, provided its functions are Ferry tasks (decorated with
@ferry.task, in a module the workers import) or named by str:

    with ferry.Executor(cluster.address) as ex:     # was ProcessPoolExecutor()
        print(list(ex.map(mymod.square, range(10))))
        f = ex.submit(mymod.square, 12)
        print(f.result())

Tasks take positional arguments only.  map() submits every task at once
in batches (chunksize is accepted and ignored: Ferry batches by itself)
and yields results in order; an error is raised when its result is
reached, and the tasks not yet reached are then cancelled, as with
ProcessPoolExecutor.
"""

import concurrent.futures as _cf
import threading
import time

from . import _ferry
from .client import Client

__all__ = ["Executor"]


class Executor(_cf.Executor):
    """Executor(address=None, **client_options), or Executor(client=c) to
    share a client (not closed by shutdown).  max_workers is accepted
    and ignored, as code written for ProcessPoolExecutor passes it: the
    cluster's workers and slots say how many tasks run at once."""

    def __init__(self, address=None, *, client=None, max_workers=None,
                 **client_options):
        if client is not None and (address is not None or client_options):
            raise TypeError("give either a client or an address and "
                            "client options, not both")
        self._own = client is None
        self._client = client if client is not None else \
            Client(address, **client_options)
        self._futures = []   # submitted here; done ones pruned now and then
        self._prune_at = 1024
        self._lock = threading.Lock()
        self._shutdown = False

    @property
    def client(self):
        return self._client

    def _track(self, fs):
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after "
                                   "shutdown")
            self._futures.extend(fs)
            if len(self._futures) >= self._prune_at:
                self._futures, _ = _ferry.split_done(self._futures)
                self._prune_at = max(1024, 2 * len(self._futures))

    def _check(self):
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")

    def submit(self, fn, /, *args, **kwargs):
        """Submit fn(*args) as a Ferry task; returns its Future."""
        if kwargs:
            raise TypeError("Ferry tasks take positional arguments only; "
                            "got keyword argument(s) %s"
                            % ", ".join(sorted(kwargs)))
        self._check()
        f = self._client.submit(fn, *args)
        self._track([f])
        return f

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        """Results of fn(*args) for args in zip(*iterables), in order.
        timeout: seconds from this call for all of them (TimeoutError).
        chunksize is ignored (tasks travel in batches anyway)."""
        self._check()
        end = None if timeout is None else time.monotonic() + timeout
        fs = self._client.map(fn, *iterables)
        self._track(fs)

        def results():
            try:
                fs.reverse()  # pop from the end, and forget each yielded
                while fs:
                    f = fs.pop()
                    try:
                        if end is None:
                            r = f.result()
                        else:
                            r = f.result(end - time.monotonic())
                    except BaseException:
                        f.cancel()   # not finished (a timeout): not needed
                        raise
                    yield r
            finally:
                if fs:
                    self._client.cancel(fs)
        return results()

    def shutdown(self, wait=True, *, cancel_futures=False):
        """No new tasks.  cancel_futures: cancel the ones not finished.
        wait: return when all have finished (else at once; an own client
        is then closed once they have)."""
        with self._lock:
            self._shutdown = True
            pending, _ = _ferry.split_done(self._futures)
            self._futures = []
        if cancel_futures and pending:
            self._client.cancel(pending)
        if not self._own:
            if wait:
                self._client.wait(pending)
            return
        if wait:
            self._client.wait(pending)
            self._client.close()
        elif pending:
            client = self._client

            def close_when_done():
                client.wait(pending)
                client.close()
            threading.Thread(target=close_when_done, daemon=True,
                             name="ferry-executor-shutdown").start()
        else:
            self._client.close()
