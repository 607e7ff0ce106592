"""python_small.py - what a task costs from Python: ferry.Client next to
the C client (`ferry bench`), on one private cluster, in one run.

    /usr/bin/python3 bench/python_small.py [--build DIR] [-n 200000]
        [-l 2000] [-r 5] [-w 2] [--fn noop] [--python] [--connect URL]
        [--json]

throughput   Client.map(fn, range(N)) then Client.gather(): the clock runs
             from the first submit to the last result (and the results
             are checked); tasks/s.  Also timed: the same map read back
             with [f.result() for f in fs], and N x submit() then gather.
             And the CPU time the client process spent per task (Python
             and libferry's I/O thread), next to that of `ferry bench`'s
             process.
latency      L single tasks, each submit(fn).result() before the next, 50
             warm-up round trips first; the median and 99th percentile.
C client     `ferry bench throughput|latency --connect URL` against the
             same cluster, one run between each Python run, so that both
             see the same machine.

Medians of R runs are printed (and each run with --json, as JSON lines).
The cluster (a scheduler and W worker processes running ferry_examples)
is started from the build's `ferry` and stopped by pid at the end; it is
not timed.  Run it with Debian's /usr/bin/python3 (the one that sees
python3-msgpack).
"""

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def say(msg):
    sys.stderr.write("python_small: %s\n" % msg)
    sys.stderr.flush()


def median(vals):
    """The middle value (the upper middle for an even count), as ferry
    bench computes it."""
    return sorted(vals)[len(vals) // 2]


class PrivateCluster:
    """A scheduler and a worker group, processes of this script."""

    def __init__(self, ferry_bin, workers, tmp, python=False):
        self.procs = []
        self.address = "ipc://%s/sched.sock" % tmp
        self.log = open(os.path.join(tmp, "cluster.log"), "ab")
        ready = os.path.join(tmp, "ready")
        self._spawn([ferry_bin, "scheduler", "--listen", self.address,
                     "--ready-file", ready, "--log-level", "warn"])
        deadline = time.monotonic() + 60
        while not os.path.exists(ready):
            if time.monotonic() > deadline:
                raise RuntimeError("scheduler not ready; see %s"
                                   % self.log.name)
            time.sleep(0.02)
        argv = [ferry_bin, "worker", "--connect", self.address,
                "--processes", str(workers), "--slots", "1",
                "--library", "ferry_examples", "--log-level", "warn"]
        if python:
            argv += ["--python-module", "ferry_bench_tasks",
                     "--python-path", os.path.join(HERE, "pytasks")]
        self._spawn(argv)

    def _spawn(self, argv):
        self.procs.append(subprocess.Popen(
            argv, stdout=self.log, stderr=self.log,
            stdin=subprocess.DEVNULL))

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
        self.log.close()


def wait_workers(ferry, address, n):
    deadline = time.monotonic() + 60
    with ferry.Client(address) as c:
        while c.status()["workers"] < n:
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not register")
            time.sleep(0.05)


def cpu_s(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def py_throughput(client, fn, n, how):
    """(tasks/s, CPU seconds this process spent: Python and libferry's
    I/O thread)."""
    c0 = cpu_s(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    if how == "map":
        fs = client.map(fn, range(n))
        res = client.gather(fs)
    elif how == "map_result":
        fs = client.map(fn, range(n))
        res = [f.result() for f in fs]
    else:
        fs = [client.submit(fn, i) for i in range(n)]
        res = client.gather(fs)
    t1 = time.perf_counter()
    c1 = cpu_s(resource.RUSAGE_SELF)
    if len(res) != n or (fn == "noop" and any(r is not None for r in res)):
        raise RuntimeError("wrong results")
    del fs, res
    return n / (t1 - t0), c1 - c0


def py_latency(client, fn, n):
    for _ in range(50):
        client.submit(fn).result(10)
    us = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.submit(fn).result(10)
        us.append((time.perf_counter() - t0) * 1e6)
    us.sort()
    return us[n // 2], us[min(n - 1, n * 99 // 100)]


def c_bench(ferry_bin, kind, address, n, fn):
    """ferry bench's JSON line, with "cpu_s": the CPU time its process
    spent (connecting included)."""
    c0 = cpu_s(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [ferry_bin, "bench", kind, "--connect", address, "-n", str(n),
         "--fn", fn, "--json"], capture_output=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError("ferry bench %s failed: %s"
                           % (kind, out.stderr.decode()[-500:]))
    r = json.loads(out.stdout.decode().strip().splitlines()[-1])
    r["cpu_s"] = cpu_s(resource.RUSAGE_CHILDREN) - c0
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"),
                    help="the build directory (default ../build)")
    ap.add_argument("-n", "--tasks", type=int, default=200000,
                    help="tasks per throughput run (default 200000)")
    ap.add_argument("-l", "--latency", type=int, default=2000,
                    help="round trips per latency run (default 2000)")
    ap.add_argument("-r", "--runs", type=int, default=5,
                    help="runs (default 5); medians are reported")
    ap.add_argument("-w", "--workers", type=int, default=2,
                    help="worker processes (default 2)")
    ap.add_argument("--fn", default=None,
                    help="the task function (default noop, or "
                    "ferry_bench_tasks.noop with --python)")
    ap.add_argument("--python", action="store_true",
                    help="workers also run Python tasks "
                    "(bench/pytasks/ferry_bench_tasks.py, in the "
                    "workers' embedded interpreter), and the task is "
                    "the Python noop")
    ap.add_argument("--connect", help="use this cluster instead of "
                    "starting one")
    ap.add_argument("--skip-c", action="store_true",
                    help="do not run the C client's benchmark")
    ap.add_argument("--json", action="store_true",
                    help="each run as a JSON line, then the medians")
    args = ap.parse_args()
    if args.fn is None:
        args.fn = "ferry_bench_tasks.noop" if args.python else "noop"

    build = os.path.abspath(args.build)
    sys.path.insert(0, os.path.join(build, "python"))
    import ferry
    ferry_bin = os.path.join(build, "cli", "ferry")

    tmp = cluster = None
    if args.connect:
        address = args.connect
    else:
        tmp = tempfile.mkdtemp(prefix="ferry-pybench-")
        cluster = PrivateCluster(ferry_bin, args.workers, tmp, args.python)
        address = cluster.address
    rows = {k: [] for k in ("py_map", "py_map_result", "py_submit", "c_map",
                            "py_p50", "py_p99", "c_p50", "c_p99",
                            "py_map_cpu_us", "py_submit_cpu_us",
                            "c_map_cpu_us")}
    try:
        wait_workers(ferry, address, args.workers)
        with ferry.Client(address) as client:
            py_throughput(client, args.fn, min(args.tasks, 20000), "map")
            for run in range(1, args.runs + 1):
                rec = {"run": run, "tasks": args.tasks, "fn": args.fn}
                for how in ("map", "map_result", "submit"):
                    tps, cpu = py_throughput(client, args.fn, args.tasks,
                                             how)
                    rows["py_" + how].append(tps)
                    rec["py_%s_tasks_per_s" % how] = round(tps)
                    if how != "map_result":
                        us = cpu / args.tasks * 1e6
                        rows["py_%s_cpu_us" % how].append(us)
                        rec["py_%s_cpu_us" % how] = round(us, 2)
                p50, p99 = py_latency(client, args.fn, args.latency)
                rows["py_p50"].append(p50)
                rows["py_p99"].append(p99)
                rec.update(py_p50_us=round(p50), py_p99_us=round(p99))
                if not args.skip_c:
                    t = c_bench(ferry_bin, "throughput", address,
                                args.tasks, args.fn)
                    lat = c_bench(ferry_bin, "latency", address,
                                  args.latency, args.fn)
                    rows["c_map"].append(t["tasks_per_s"])
                    rows["c_map_cpu_us"].append(t["cpu_s"] / args.tasks * 1e6)
                    rec["c_map_cpu_us"] = round(
                        t["cpu_s"] / args.tasks * 1e6, 2)
                    rows["c_p50"].append(lat["p50_us"])
                    rows["c_p99"].append(lat["p99_us"])
                    rec.update(c_map_tasks_per_s=t["tasks_per_s"],
                               c_p50_us=lat["p50_us"],
                               c_p99_us=lat["p99_us"])
                if args.json:
                    print(json.dumps(rec), flush=True)
                else:
                    say("run %d: %s" % (run, ", ".join(
                        "%s %s" % (k, v) for k, v in rec.items()
                        if k not in ("run", "tasks", "fn"))))
    finally:
        if cluster is not None:
            cluster.stop()
            shutil.rmtree(tmp, ignore_errors=True)

    med = {k: median(v) for k, v in rows.items() if v}
    if args.json:
        print(json.dumps(dict({"medians_of": args.runs},
                              **{k: round(v, 2) for k, v in med.items()})))
        return
    print("medians of %d runs, %d tasks of %s on %d worker processes:"
          % (args.runs, args.tasks, args.fn, args.workers))
    print("  Python Client.map + gather      %9.0f tasks/s" % med["py_map"])
    print("  Python map + f.result() each    %9.0f tasks/s"
          % med["py_map_result"])
    print("  Python N x submit + gather      %9.0f tasks/s"
          % med["py_submit"])
    if "c_map" in med:
        print("  C ferry bench throughput        %9.0f tasks/s" % med["c_map"])
    print("  client CPU per task: Python map %.2f us, Python submit %.2f us"
          % (med["py_map_cpu_us"], med["py_submit_cpu_us"]) +
          (", C map %.2f us (its process, connecting included)"
           % med["c_map_cpu_us"] if "c_map_cpu_us" in med else ""))
    print("  Python round trip p50 / p99     %6.0f / %.0f us"
          % (med["py_p50"], med["py_p99"]))
    if "c_p50" in med:
        print("  C ferry bench latency p50 / p99 %6.0f / %.0f us"
              % (med["c_p50"], med["c_p99"]))
        print("  Python / C round trip (p50)     %9.2f x"
              % (med["py_p50"] / med["c_p50"]))


if __name__ == "__main__":
    main()
