#!/bin/sh
# compare-graph.sh - `ferry bench graph` next to the Python peers of
# bench/peers/graph.py, taking turns, and a table of the medians side by
# side.
#
# usage: bench/compare-graph.sh [FERRY] [graph.py options...]
#   e.g. bench/compare-graph.sh build/cli/ferry
#        bench/compare-graph.sh build/cli/ferry --systems dask --leaves 20000
#
# FERRY, the ferry binary, is the first argument when there is one that
# does not begin with '-' (relative to the current directory), else $FERRY
# (relative to the top of the source tree, default build/cli/ferry).
#
# In each of ROUNDS rounds: `FERRY bench graph --json --runs RUNS`, then
# `graph.py --runs RUNS`; the table gives, per system, the median of all
# its RUNS x ROUNDS runs.  Taking turns spreads whatever else the machine
# is doing over Ferry and the peers alike.
#
# Builds nothing: build Ferry first (see README.md).  Environment:
#   PYTHON   the interpreter for the peers (default /usr/bin/python3, which
#            sees Debian's python3-* packages)
#   RUNS     runs of every benchmark in one call (default 1)
#   ROUNDS   calls of each, taking turns (default 3)
#   BUDGET   seconds for all peers in one round (default 900); peers not
#            yet started when it runs out are reported as skipped
#   FERRY_TIMEOUT  seconds for one `ferry bench graph` (default 300); if it
#            is stopped, what its private cluster left is stopped too
#   FERRY_ARGS  more arguments for `ferry bench graph`, split at blanks
#            (e.g. "--leaves 100000" to give Ferry the peers' tree)
#   OUT      a directory: keep the raw JSON lines there
#
# Uses POSIX sh and Python (for the JSON) only.
set -u

case ${1:-} in
'' | -*) ;;
*)
	case $1 in
	/*) FERRY=$1 ;;
	*) FERRY=$(pwd)/$1 ;;
	esac
	shift
	;;
esac

here=$(cd "$(dirname "$0")" && pwd) || exit 1
prog=compare-graph.sh
RUNS=${RUNS:-1} # before lib.sh, whose default is 3
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

ROUNDS=${ROUNDS:-3}
BUDGET=${BUDGET:-900}
FERRY_TIMEOUT=${FERRY_TIMEOUT:-300}
FERRY_ARGS=${FERRY_ARGS:-}

check_tools
check_numbers "RUNS, ROUNDS, BUDGET and FERRY_TIMEOUT must be numbers" \
    "$RUNS" "$ROUNDS" "$BUDGET" "$FERRY_TIMEOUT"
if [ "$RUNS" -lt 1 ] || [ "$ROUNDS" -lt 1 ]; then
	echo "$prog: RUNS and ROUNDS must be at least 1" >&2
	exit 2
fi
make_tmp ferry-compare-graph
trap 'exit 129' HUP
trap 'exit 141' PIPE

start_clock
r=1
while [ "$r" -le "$ROUNDS" ]; do
	echo "$prog: round $r of $ROUNDS" >&2
	# shellcheck disable=SC2086 # FERRY_ARGS: split at blanks on purpose
	run_ferry "$tmp/ferry-graph-$r.jsonl" "$FERRY_TIMEOUT" graph \
	    --json --runs "$RUNS" $FERRY_ARGS
	run_peers "$tmp/peers-graph-$r.jsonl" bench/peers/graph.py \
	    --runs "$RUNS" --budget "$BUDGET" "$@"
	r=$((r + 1))
done
stop_clock

report "$ROUNDS" "$tmp"/ferry-graph-*.jsonl "$tmp"/peers-graph-*.jsonl <<'EOF'
import sys

from common import median, print_header, print_table, ratio, read_json_lines

runs = int(sys.argv[1])
load_before, load_after, elapsed = sys.argv[2:5]
rounds = int(sys.argv[5])
want = runs * rounds  # runs of every system and benchmark
files = sys.argv[6:]

order = ["ferry"]  # systems in order of appearance, ferry first
data = {}          # (system, bench) -> what its lines said


def slot(system, bench):
    if system not in order:
        order.append(system)
    return data.setdefault((system, bench), {
        "runs": [], "summary": None, "skipped": [], "line": None})


for o in read_json_lines(files, ("graph_chain", "graph_tree")):
    s = slot(o.get("system", "ferry"), o["bench"])
    if "skipped" in o:
        s["skipped"].append(o["skipped"])
    elif o.get("summary") == "median":
        s["summary"] = o
    elif "seconds" in o:
        s["runs"].append(o)
        s["line"] = o

partial = False


def med(system, bench, key):
    """(median of key over the runs, marker), or (None, why)."""
    global partial
    s = data.get((system, bench))
    if s is None:
        return None, "-"
    vals = [o[key] for o in s["runs"] if key in o]
    if vals:
        if len(vals) < want:
            partial = True
            return median(vals), "*"
        return median(vals), ""
    if s["summary"] is not None and key in s["summary"]:
        # no lines of single runs: the program's own median
        return s["summary"][key], ""
    return None, "skipped" if s["skipped"] else "failed"


def size(system, bench, key):
    s = data.get((system, bench))
    if s is None or s["line"] is None or key not in s["line"]:
        return "-"
    return str(s["line"][key])


def show(v, marker, fmt):
    return (fmt % v) + marker if v is not None else marker


fc, _ = med("ferry", "graph_chain", "us_per_link")
ft, _ = med("ferry", "graph_tree", "tasks_per_s")
rows = [("system", "links", "us/link", "ferry/peer", "leaves", "fan-in",
         "tasks", "tree s", "tasks/s", "ferry/peer")]
for name in order:
    c, cm = med(name, "graph_chain", "us_per_link")
    secs, sm = med(name, "graph_tree", "seconds")
    t, tm = med(name, "graph_tree", "tasks_per_s")
    rows.append((
        name,
        size(name, "graph_chain", "links"),
        show(c, cm, "%.1f"),
        ratio(fc / c, "%.2g") if c and fc else "-",
        size(name, "graph_tree", "leaves"),
        size(name, "graph_tree", "fanin"),
        size(name, "graph_tree", "tasks"),
        show(secs, sm, "%.2f"),
        show(t, tm, "%d"),
        ratio(ft / t, "%.2g") if t and ft else "-",
    ))

workers = sorted({str(o.get("workers")) for s in data.values()
                  for o in s["runs"] if o.get("workers") is not None})
print_header("Ferry vs Python peers: task graphs, %s worker processes, median "
             "of %d run%s each (%d round%s, taking turns)" % (
                 "/".join(workers) or "?", want, "" if want == 1 else "s",
                 rounds, "" if rounds == 1 else "s"),
             load_before, load_after, elapsed)
print_table(rows)
print("chain: N dependent tasks, each adding 1 to the one before; us/link = "
      "seconds * 1e6 / N.")
print("tree: M leaves summed by sum tasks of the given fan-in, level by "
      "level; tasks/s = tasks / seconds.")
print("us/link ferry/peer below 1: a link of Ferry's chain takes that "
      "fraction of the peer's.")
print("tasks/s ferry/peer above 1: Ferry runs that many times more tasks "
      "of the tree per second.")
print("Sizes may differ between systems (see links, leaves): compare the "
      "rates, not tree s.")
if partial:
    print("* median of fewer runs than asked for (the others failed or ran "
          "out of time)")
for name in order:
    for b in ("graph_chain", "graph_tree"):
        s = data.get((name, b))
        if s is None and name == "ferry":
            print("ferry %s: no result (see the messages above)" % b)
        for why in (s or {}).get("skipped", []):
            print("%s %s skipped: %s" % (name, b, why))
EOF
exit $status
