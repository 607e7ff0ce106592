#!/bin/sh
# compare.sh - `ferry bench` next to the Python peers of bench/peers/noop.py,
# measured in the same run, and a table of the medians side by side.
#
# usage: bench/compare.sh [noop.py options...]
#   e.g. bench/compare.sh --systems process_pool_spawn,dask
#
# Builds nothing: build Ferry first (see README.md).  Environment:
#   FERRY    the ferry binary (default build/cli/ferry)
#   PYTHON   the interpreter for the peers (default /usr/bin/python3, which
#            sees Debian's python3-* packages)
#   RUNS     runs of every benchmark (default 3)
#   BUDGET   seconds for all peers together (default 480); peers not yet
#            started when it runs out are reported as skipped
#   OUT      a directory: keep the raw JSON lines there
#
# Uses POSIX sh and Python (for the JSON) only.
set -u

here=$(cd "$(dirname "$0")" && pwd) || exit 1
prog=compare.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

BUDGET=${BUDGET:-480}

check_tools
check_numbers "RUNS must be a number" "$RUNS"
make_tmp ferry-compare
start_clock

run_ferry "$tmp/ferry-throughput.jsonl" 300 throughput --json --runs "$RUNS"
run_ferry "$tmp/ferry-latency.jsonl" 300 latency --json --runs "$RUNS"
run_peers "$tmp/peers.jsonl" bench/peers/noop.py --runs "$RUNS" \
    --budget "$BUDGET" "$@"
stop_clock

report "$tmp/ferry-throughput.jsonl" "$tmp/ferry-latency.jsonl" \
    "$tmp/peers.jsonl" <<'EOF'
import sys

from common import median, print_header, print_table, ratio, read_json_lines

runs = int(sys.argv[1])
load_before, load_after, elapsed = sys.argv[2:5]
files = sys.argv[5:]

order = []      # systems in order of appearance, ferry first
data = {}       # (system, bench) -> {"runs": [...], "median": v, ...}


def slot(system, bench):
    if system not in order:
        order.append(system)
    return data.setdefault((system, bench), {"runs": [], "median": None,
                                             "skipped": None, "size": None})


for o in read_json_lines(files, ("throughput", "latency")):
    b = o["bench"]
    s = slot(o.get("system", "ferry"), b)
    key = "tasks_per_s" if b == "throughput" else "p50_us"
    if "skipped" in o:
        s["skipped"] = o["skipped"]
    elif o.get("summary") == "median":
        s["median"] = o[key]
    elif key in o:
        s["runs"].append(o[key])
        s["size"] = o.get("tasks", o.get("n"))
        s["workers"] = o.get("workers")

if "ferry" not in order:
    order.insert(0, "ferry")
else:
    order.remove("ferry")
    order.insert(0, "ferry")

partial = False


def med(system, bench):
    """(median, marker) or (None, why)."""
    global partial
    s = data.get((system, bench))
    if s is None:
        return None, "-"
    if s["median"] is not None:
        return s["median"], ""
    if s["runs"]:
        v = median(s["runs"])
        if len(s["runs"]) < runs:
            partial = True
            return v, "*"
        return v, ""
    return None, "skipped" if s["skipped"] else "failed"


ft, _ = med("ferry", "throughput")
fl, _ = med("ferry", "latency")
rows = [("system", "tasks", "tasks/s", "ferry/peer", "round trips",
         "p50 us", "ferry/peer")]
for name in order:
    t, tm = med(name, "throughput")
    lat, lm = med(name, "latency")
    st = data.get((name, "throughput"), {})
    sl = data.get((name, "latency"), {})
    rows.append((
        name,
        str(st.get("size") or "-"),
        "%d%s" % (t, tm) if t is not None else tm,
        ratio(ft / t, "%.2g") if t and ft else "-",
        str(sl.get("size") or "-"),
        "%d%s" % (lat, lm) if lat is not None else lm,
        ratio(fl / lat, "%.2g") if lat and fl else "-",
    ))

workers = sorted({str(v.get("workers")) for v in data.values()
                  if v.get("workers") is not None})
print_header("Ferry vs Python peers: no-op tasks, %s worker processes, median "
             "of %d run%s each" % ("/".join(workers) or "?", runs,
                                   "" if runs == 1 else "s"),
             load_before, load_after, elapsed)
print_table(rows)
print("tasks/s ferry/peer above 1: Ferry moves that many times more tasks "
      "per second.")
print("p50 ferry/peer below 1: Ferry's round trip takes that fraction of "
      "the peer's.")
if partial:
    print("* median of fewer runs than asked for (the others failed or ran "
          "out of time)")
for name in order:
    for b in ("throughput", "latency"):
        s = data.get((name, b))
        if s and s["skipped"]:
            print("%s %s skipped: %s" % (name, b, s["skipped"]))
EOF
exit $status
