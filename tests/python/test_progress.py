"""ferry.progress: a bar over futures, tqdm's or the plain one."""

import concurrent.futures as cf
import io

import pytest

import ferry
from conftest import Cluster

T = 60


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"), processes=2)
    with ferry.Client(c.address) as cl:
        yield cl
    c.stop()


def test_text_bar(client):
    fs = client.map("sleep_ms", [5] * 50)
    out = io.StringIO()
    assert ferry.progress(fs, desc="naps", file=out, bar="text") == fs
    assert all(f.done() for f in fs)
    text = out.getvalue()
    lines = text.splitlines()
    assert lines[-1].startswith("naps: 100%|")
    assert "50/50" in lines[-1] and "tasks/s" in lines[-1]
    assert len(lines) <= 12     # not a terminal: a line per tenth at most


def test_text_bar_counts_failures(client):
    fs = client.map("sleep_ms", [1, "x", 1, "y"])
    out = io.StringIO()
    ferry.progress(fs, file=out, bar="text")
    assert "4/4 [2 failed]" in out.getvalue()


def test_text_bar_on_a_terminal(client):
    class Tty(io.StringIO):
        def isatty(self):
            return True
    out = Tty()
    ferry.progress(client.map("square", range(20)), file=out, bar="text")
    text = out.getvalue()
    assert text.startswith("\r") and text.endswith("\n")
    assert "20/20" in text.rsplit("\r", 1)[-1]


def test_tqdm_bar(client):
    pytest.importorskip("tqdm")
    out = io.StringIO()
    fs = client.map("square", range(30))
    ferry.progress(fs, desc="squares", file=out)
    assert "squares" in out.getvalue() and "30/30" in out.getvalue()


def test_without_tqdm(client, monkeypatch, capsys):
    import importlib
    mod = importlib.import_module("ferry.progress")
    monkeypatch.setattr(mod, "_tqdm", lambda: None)
    ferry.progress(client.map("square", range(10)))
    assert "10/10" in capsys.readouterr().err
    with pytest.raises(ImportError):
        ferry.progress([], bar="tqdm")


def test_other_futures(client):
    with cf.ThreadPoolExecutor(2) as ex:
        fs = [ex.submit(pow, 2, i) for i in range(10)]
        fs.append(client.submit("add", 1, 1))
        out = io.StringIO()
        ferry.progress(fs, file=out, bar="text")
        assert "11/11" in out.getvalue()
    out = io.StringIO()
    ferry.progress([], file=out, bar="text")
    assert "0/0" in out.getvalue()
