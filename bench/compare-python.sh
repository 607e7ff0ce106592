#!/bin/sh
# compare-python.sh - Ferry's Python side next to its Python peers, in one
# run: a large numpy array shared by tasks (peers/py_heavy.py), small
# tasks and round trips (peers/py_small.py, with `ferry bench latency` and
# `ferry bench throughput` of the C client beside them), and a task that
# crashes its worker among ordinary ones (peers/py_crash.py); then tables
# of the medians, the targets of issue 12 checked, and every version.
#
# usage: bench/compare-python.sh [--quick] [--only heavy,small,crash]
#   --quick   small sizes, to check that everything works (64 MiB array,
#             20,000 tasks, 1 run unless RUNS is set); not for figures
#   --only    the measurements to make (default all three)
#
# Builds nothing: build Ferry first (meson setup build --buildtype=release
# && ninja -C build).  Environment:
#   FERRY         the ferry binary (default build/cli/ferry)
#   FERRY_PYTHON  the directory holding Ferry's package (default
#                 build/python)
#   PYTHON        the interpreter (default /usr/bin/python3, which sees
#                 Debian's python3-* packages)
#   RUNS          runs of every system (default 3; 1 with --quick)
#   SIZE          the array's size (default 1GiB; 64MiB with --quick)
#   TASKS         small tasks per throughput run (default 200000)
#   DASK_TASKS    Dask's tasks per throughput run (default 5000)
#   ROUND_TRIPS   round trips per latency run (default 2000; Dask 500)
#   CRASH_TASKS   ordinary tasks beside the crashing one (default 1000)
#   OUT           a directory: keep the raw JSON lines there
#
# Every system runs in a child process of its own session with a time
# limit; what it started is stopped by pid (see bench/README.md).
set -u

here=$(cd "$(dirname "$0")" && pwd) || exit 1
prog=compare-python.sh
runs_env=${RUNS:-}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

quick=0
only=heavy,small,crash
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--only) only=${2:-}; shift ;;
	--only=*) only=${1#--only=} ;;
	-h | --help)
		sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "$prog: unknown option $1 (see --help)" >&2
		exit 2
		;;
	esac
	shift
done
for m in $(echo "$only" | tr ',' ' '); do
	case $m in
	heavy | small | crash) ;;
	*)
		echo "$prog: --only: unknown measurement '$m' (heavy, small," \
		    "crash)" >&2
		exit 2
		;;
	esac
done
wants() {
	case ",$only," in *",$1,"*) return 0 ;; esac
	return 1
}

FERRY_PYTHON=${FERRY_PYTHON:-build/python}
if [ $quick -eq 1 ]; then
	RUNS=${runs_env:-1}
	SIZE=${SIZE:-64MiB}
	TASKS=${TASKS:-20000}
	DASK_TASKS=${DASK_TASKS:-1000}
	ROUND_TRIPS=${ROUND_TRIPS:-300}
	DASK_ROUND_TRIPS=${DASK_ROUND_TRIPS:-100}
	CRASH_TASKS=${CRASH_TASKS:-200}
else
	SIZE=${SIZE:-1GiB}
	TASKS=${TASKS:-200000}
	DASK_TASKS=${DASK_TASKS:-5000}
	ROUND_TRIPS=${ROUND_TRIPS:-2000}
	DASK_ROUND_TRIPS=${DASK_ROUND_TRIPS:-500}
	CRASH_TASKS=${CRASH_TASKS:-1000}
fi

check_tools
check_numbers "RUNS, TASKS, DASK_TASKS, ROUND_TRIPS and CRASH_TASKS must be numbers" \
    "$RUNS" "$TASKS" "$DASK_TASKS" "$ROUND_TRIPS" \
    "$DASK_ROUND_TRIPS" "$CRASH_TASKS"
if [ ! -d "$FERRY_PYTHON/ferry" ]; then
	echo "$prog: no Ferry package in $FERRY_PYTHON (build Ferry, or set" \
	    "FERRY_PYTHON); Ferry's Python rows will be skipped" >&2
fi
FERRY_PYTHON=$(cd "$FERRY_PYTHON" 2>/dev/null && pwd || echo "$FERRY_PYTHON")
# the package's programs are the ones measured
FERRY_BIN=$(cd "$(dirname "$FERRY")" && pwd)/$(basename "$FERRY")
export FERRY_BIN
make_tmp ferry-compare-python
trap 'exit 129' HUP
trap 'exit 141' PIPE
start_clock

peer_args="--runs $RUNS --ferry-python $FERRY_PYTHON"
if wants small; then
	# the C client beside the Python one: its standard benchmarks on a
	# private cluster of 2 workers (py_small.py also runs ferry bench
	# latency against its own LocalCluster)
	run_ferry "$tmp/ferry-latency.jsonl" 300 latency --json \
	    --runs "$RUNS" -n "$ROUND_TRIPS"
	run_ferry "$tmp/ferry-throughput.jsonl" 300 throughput --json \
	    --runs "$RUNS" -n "$TASKS"
	BUDGET=1500
	# shellcheck disable=SC2086 # peer_args: words
	run_peers "$tmp/py-small.jsonl" bench/peers/py_small.py $peer_args \
	    --tasks "$TASKS" --dask-tasks "$DASK_TASKS" \
	    --round-trips "$ROUND_TRIPS" \
	    --dask-round-trips "$DASK_ROUND_TRIPS" --budget "$BUDGET"
fi
if wants crash; then
	BUDGET=900
	# shellcheck disable=SC2086
	run_peers "$tmp/py-crash.jsonl" bench/peers/py_crash.py $peer_args \
	    --tasks "$CRASH_TASKS" --budget "$BUDGET"
fi
if wants heavy; then
	BUDGET=2400
	# shellcheck disable=SC2086
	run_peers "$tmp/py-heavy.jsonl" bench/peers/py_heavy.py $peer_args \
	    --size "$SIZE" --dir "$tmp" --budget "$BUDGET"
fi
stop_clock

ferry_version=$("$FERRY" --version 2>/dev/null || echo "ferry: unknown")
report "$ferry_version" "$quick" "$tmp"/*.jsonl <<'EOF'
import sys

from common import median, print_header, print_table, ratio, read_json_lines

runs = int(sys.argv[1])
load_before, load_after, elapsed = sys.argv[2:5]
ferry_version, quick = sys.argv[5], sys.argv[6] == "1"
files = sys.argv[7:]

lines = list(read_json_lines(files, (
    "versions", "latency", "throughput", "py_throughput", "py_latency",
    "py_crash", "py_heavy", "py_group")))


def gather(bench, default_system=None):
    """system -> {"runs": [line...], "skipped": why}, in order."""
    out = {}
    for o in lines:
        if o["bench"] != bench:
            continue
        name = o.get("system", default_system)
        s = out.setdefault(name, {"runs": [], "skipped": None})
        if "skipped" in o:
            s["skipped"] = o["skipped"]
        elif o.get("summary") is None:
            s["runs"].append(o)
    return out


groups = gather("py_group")  # a whole system out of time or failed


def med(s, key):
    vals = [o[key] for o in s["runs"] if o.get(key) is not None]
    return median(vals) if vals else None


def mark(s):
    return "*" if 0 < len(s["runs"]) < runs else ""


def missing(s):
    return "skipped" if s and s["skipped"] else "failed"


notes = []  # (section, system, why)
partial = False


def skipped_note(section, name, s):
    if s["skipped"]:
        notes.append((section, name, s["skipped"]))


print_header("Ferry's Python side vs Python peers%s, median of %d run%s "
             "each" % (" (--quick: small sizes, not figures)" if quick
                       else "", runs, "" if runs == 1 else "s"),
             load_before, load_after, elapsed)
targets = []

# ---- heavy
heavy = gather("py_heavy")
if heavy:
    first = next((o for s in heavy.values() for o in s["runs"]), None)
    if first:
        print("1. A %.2f GiB float64 array, %d worker processes, %d tasks "
              "each summing a slice" % (first["array_bytes"] / 2.0 ** 30,
                                        first["workers"], first["tasks"]))
    else:
        print("1. A large float64 array summed in slices: no results")
    print()
    fs = heavy.get("ferry", {"runs": []})
    fsec = med(fs, "seconds")
    rows = [("system", "runs", "seconds", "vs ferry", "peak PSS GiB",
             "PSS / array", "driver GiB", "idle GiB", "Shmem + GiB")]
    for name, s in heavy.items():
        skipped_note("heavy", name, s)
        if not s["runs"]:
            rows.append((name, "0", missing(s)) + ("-",) * 6)
            continue
        partial |= bool(mark(s))
        secs = med(s, "seconds")
        rows.append((
            name, "%d%s" % (len(s["runs"]), mark(s)), "%.4f" % secs,
            ratio(secs / fsec, "%.3f") if fsec else "-",
            "%.3f" % (med(s, "peak_pss_bytes") / 2.0 ** 30),
            "%.3f" % med(s, "pss_ratio"),
            "%.3f" % (med(s, "driver_pss_bytes") / 2.0 ** 30),
            "%.3f" % (med(s, "idle_pss_bytes") / 2.0 ** 30),
            "%.3f" % (med(s, "shmem_growth_bytes") / 2.0 ** 30)))
    print_table(rows)
    print("seconds: the clock of each system (see its note below); vs "
          "ferry: that / Ferry's.")
    print("peak PSS: the highest total PSS of every process involved "
          "(driver, workers, schedulers,")
    print("  helpers), sampled every 50 ms; driver: the driving process's "
          "share at that peak;")
    print("  idle: the total just before the clock; Shmem +: the machine's "
          "tmpfs growth (joblib's")
    print("  dump of the array in /dev/shm counts there, and in PSS only "
          "while mapped).")
    print()
    if fs["runs"]:
        pr = med(fs, "pss_ratio")
        targets.append("heavy: Ferry's peak PSS %.3f x the array (target "
                       "<= 1.15): %s" % (pr, "met" if pr <= 1.15 else
                                         "MISSED"))
        peers = [(med(s, "seconds"), n) for n, s in heavy.items()
                 if n != "ferry" and s["runs"]]
        if peers:
            best, who = min(peers)
            targets.append("heavy: Ferry's wall time %.4f s, the best "
                           "peer's %.4f s (%s) (target: at most the "
                           "best peer's): %s" % (
                               fsec, best, who,
                               "met" if fsec <= best else "MISSED"))
    for name, s in heavy.items():
        if s["runs"]:
            notes.append(("heavy", name, s["runs"][-1].get("note", "")))

# ---- small tasks
thr = gather("py_throughput")
lat = gather("py_latency")
cthr = gather("throughput", "ferry bench throughput (C client, C task)")
clat = gather("latency", "ferry bench latency (C client, C task)")
if thr or lat or cthr or clat:
    print("2. Small tasks: no-op tasks, 2 worker processes")
    print()
    ft = med(thr.get("ferry", {"runs": []}), "tasks_per_s")
    rows = [("system", "runs", "tasks", "tasks/s", "ferry/peer")]
    for name, s in list(thr.items()) + list(cthr.items()):
        skipped_note("throughput", name, s)
        if not s["runs"]:
            rows.append((name, "0", "-", missing(s), "-"))
            continue
        partial |= bool(mark(s))
        t = med(s, "tasks_per_s")
        rows.append((name, "%d%s" % (len(s["runs"]), mark(s)),
                     str(s["runs"][0]["tasks"]), "%d" % t,
                     ratio(ft / t, "%.2g") if ft else "-"))
    print_table(rows)
    print("tasks/s: N tasks mapped, the clock from the first submit to the "
          "last result; ferry/peer")
    print("  above 1: Ferry's Python client moves that many times more "
          "tasks per second.")
    print("  Dask maps fewer tasks per run (it runs some 550 tasks/s); "
          "compare rates, not times.")
    print()
    c_same = med(lat.get("ferry_c_client_c_task", {"runs": []}), "p50_us")
    c_priv = None
    for s in clat.values():
        c_priv = med(s, "p50_us")
    rows = [("system", "runs", "round trips", "p50 us", "p99 us",
             "/ C same cluster", "/ C own cluster")]
    for name, s in list(lat.items()) + list(clat.items()):
        skipped_note("latency", name, s)
        if not s["runs"]:
            rows.append((name, "0", "-", missing(s), "-", "-", "-"))
            continue
        partial |= bool(mark(s))
        p = med(s, "p50_us")
        rows.append((name, "%d%s" % (len(s["runs"]), mark(s)),
                     str(s["runs"][0]["n"]), "%d" % p,
                     "%d" % med(s, "p99_us"),
                     ratio(p / c_same, "%.2f") if c_same else "-",
                     ratio(p / c_priv, "%.2f") if c_priv else "-"))
    print_table(rows)
    print("p50, p99: of the round trips of a run (each submitted once the "
          "previous result is in),")
    print("  median over the runs.  / C same cluster: p50 divided by that "
          "of ferry bench latency")
    print("  (C client, C noop) against the same LocalCluster; / C own "
          "cluster: divided by that of")
    print("  ferry bench latency on its private cluster, run just before.")
    print()
    fl = med(lat.get("ferry", {"runs": []}), "p50_us")
    if fl and (c_same or c_priv):
        for what, c in (("the same cluster", c_same),
                        ("its own cluster", c_priv)):
            if c:
                targets.append(
                    "round trip: Python client + Python task p50 %d us, "
                    "C client on %s %d us: %.2f x (target <= 2): %s" % (
                        fl, what, c, fl / c,
                        "met" if fl <= 2 * c else "MISSED"))
for name, s in groups.items():
    if s["skipped"]:
        notes.append(("all", name, s["skipped"]))

# ---- crash
crash = gather("py_crash")
if crash:
    first = next((o for s in crash.values() for o in s["runs"]), None)
    print("3. One task that segfaults among %s ordinary ones, 2 worker "
          "processes" % (first["tasks"] if first else "N"))
    print()
    rows = [("system", "runs", "ordinary ok", "ordinary lost",
             "worker deaths", "seconds", "the crashing task ended with")]
    for name, s in crash.items():
        skipped_note("crash", name, s)
        if not s["runs"]:
            rows.append((name, "0", missing(s)) + ("-",) * 4)
            continue
        partial |= bool(mark(s))
        err = s["runs"][-1].get("crash_error") or "(no error)"
        err = err.split(":")[0]
        deaths = med(s, "worker_deaths")
        rows.append((name, "%d%s" % (len(s["runs"]), mark(s)),
                     "%d" % med(s, "ok"), "%d" % med(s, "failed"),
                     "-" if deaths is None else "%d" % deaths,
                     "%.2f" % med(s, "seconds"), err))
    print_table(rows)
    for name, s in crash.items():
        if s["runs"]:
            o = s["runs"][-1]
            print("%s: crashing task: %s" % (name, o.get("crash_error")))
            if o.get("failed_by_error"):
                print("%s: ordinary tasks lost, by error: %s" % (
                    name, o["failed_by_error"]))
    print()
    fc = crash.get("ferry", {"runs": []})
    if fc["runs"]:
        lost = max(o["failed"] for o in fc["runs"])
        err = all(o.get("crash_error") for o in fc["runs"])
        targets.append("crash: Ferry lost %d ordinary tasks in its worst "
                       "run and the crashing task %s: %s" % (
                           lost, "failed with an error in every run" if err
                           else "did NOT always fail with an error",
                           "met" if lost == 0 and err else "MISSED"))

if targets:
    print("Targets (issue 12):")
    for t in targets:
        print("- " + t)
    print()
if partial:
    print("* fewer runs than asked for (the others failed or ran out of "
          "time)")
for section, name, why in notes:
    print("%s %s: %s" % (section, name, why))
print()
print("Versions:")
print("- %s (%s)" % (ferry_version, "the C programs"))
seen = {}
for o in lines:
    if o["bench"] == "versions":
        for k, v in o.items():
            if k not in ("bench", "for"):
                seen.setdefault(k, v)
for k, v in seen.items():
    print("- %s %s" % (k, v))
EOF
exit $status
