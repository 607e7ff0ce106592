"""ferry.progress: a progress bar over futures.

    futures = client.map("square", range(100000))
    ferry.progress(futures)            # returns when all are done
    results = client.gather(futures)

With tqdm installed the bar is tqdm's (tqdm.auto: the notebook widget in
Jupyter when ipywidgets is there, text otherwise); without it, a plain
one-line bar on stderr.  Failed and cancelled tasks count as done and
are counted apart.
"""

import concurrent.futures
import sys
import time

from . import _ferry

__all__ = ["progress"]


def _tqdm():
    """tqdm's bar class: tqdm.auto's (the notebook widget inside Jupyter)
    when ipywidgets is installed, tqdm's text bar otherwise (tqdm.auto
    would warn "IProgress not found" in a notebook and fall back to
    it); None without tqdm."""
    try:
        import importlib.util
        if importlib.util.find_spec("ipywidgets") is None:
            from tqdm.std import tqdm
        else:
            from tqdm.auto import tqdm
    except Exception:  # not installed, or broken: the plain bar
        return None
    return tqdm


class _TextBar:
    """A one-line bar: "desc: 45%|#########           | 90/200 [2 failed]
    3.1s, 29.0 tasks/s".  On a terminal it is redrawn in place; otherwise
    a line is written at each tenth and at the end."""

    WIDTH = 25

    def __init__(self, total, desc, file):
        self.total = total
        self.desc = desc
        self.file = file if file is not None else sys.stderr
        self.start = time.monotonic()
        self.tty = bool(getattr(self.file, "isatty", lambda: False)())
        self.last_tenth = -1
        self.n = 0
        self.failed = 0

    def line(self):
        frac = self.n / self.total if self.total else 1.0
        fill = int(frac * self.WIDTH)
        secs = time.monotonic() - self.start
        rate = self.n / secs if secs > 0 else 0.0
        s = "%s%3d%%|%s%s| %d/%d" % (
            (self.desc + ": ") if self.desc else "", int(frac * 100),
            "#" * fill, " " * (self.WIDTH - fill), self.n, self.total)
        if self.failed:
            s += " [%d failed]" % self.failed
        return s + " %.1fs, %.1f tasks/s" % (secs, rate)

    def update(self, n, failed):
        self.n, self.failed = n, failed
        if self.tty:
            self.file.write("\r" + self.line())
            self.file.flush()
            return
        tenth = (10 * n // self.total) if self.total else 10
        if tenth != self.last_tenth:
            self.last_tenth = tenth
            self.file.write(self.line() + "\n")
            self.file.flush()

    def close(self):
        if self.tty:
            self.file.write("\r" + self.line() + "\n")
            self.file.flush()


def progress(futures, desc=None, *, interval=0.1, file=None, bar="auto"):
    """Show a bar of futures finishing; return the futures when all are
    done.  desc: a label; interval: seconds between updates; file: where
    the plain bar goes (default stderr); bar: "auto" (tqdm when
    installed), "tqdm" or "text"."""
    futures = list(futures)
    total = len(futures)
    tqdm = _tqdm() if bar in ("auto", "tqdm") else None
    if bar == "tqdm" and tqdm is None:
        raise ImportError("tqdm is not installed")
    if tqdm is not None:
        kw = {"total": total, "desc": desc, "unit": "task"}
        if file is not None:
            kw["file"] = file
        shown = tqdm(**kw)
    else:
        shown = _TextBar(total, desc, file)
    rest, failed, n = futures, 0, 0
    try:
        while True:
            rest, newly_failed = _ferry.split_done(rest)
            failed += newly_failed
            done = total - len(rest)
            if tqdm is not None:
                if done > n:
                    shown.update(done - n)
                if failed:
                    shown.set_postfix(failed=failed, refresh=False)
            else:
                shown.update(done, failed)
            n = done
            if not rest:
                break
            # up to interval, but no longer than the last one takes
            if all(isinstance(f, _ferry.FutureBase) for f in rest):
                _ferry.wait_all(rest, interval)
            else:
                concurrent.futures.wait(rest, interval)
    finally:
        shown.close()
    return futures
