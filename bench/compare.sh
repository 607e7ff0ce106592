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
cd "$here/.." || exit 1

FERRY=${FERRY:-build/cli/ferry}
PY=${PYTHON:-/usr/bin/python3}
RUNS=${RUNS:-3}
BUDGET=${BUDGET:-480}

if [ ! -x "$FERRY" ]; then
	echo "compare.sh: no ferry binary at $FERRY (build it first, or set" \
	    "FERRY)" >&2
	exit 2
fi
if [ ! -x "$PY" ]; then
	echo "compare.sh: no Python at $PY (set PYTHON)" >&2
	exit 2
fi
case $RUNS in
'' | *[!0-9]*)
	echo "compare.sh: RUNS must be a number" >&2
	exit 2
	;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-compare.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# run "$@" for at most $1 seconds when timeout(1) is there
bounded() {
	if command -v timeout >/dev/null 2>&1; then
		timeout "$@"
	else
		shift
		"$@"
	fi
}

loadavg() {
	if [ -r /proc/loadavg ]; then
		cut -d' ' -f1-3 /proc/loadavg
	else
		uptime | sed 's/.*load average[s]*: *//; s/,//g'
	fi
}

load_before=$(loadavg)
start=$(date +%s)
echo "compare.sh: load average before: $load_before" >&2

status=0
echo "compare.sh: $FERRY bench throughput --json --runs $RUNS" >&2
if ! bounded 300 "$FERRY" bench throughput --json --runs "$RUNS" \
    >"$tmp/ferry-throughput.jsonl"; then
	echo "compare.sh: ferry bench throughput failed" >&2
	status=1
fi
cat "$tmp/ferry-throughput.jsonl" >&2
echo "compare.sh: $FERRY bench latency --json --runs $RUNS" >&2
if ! bounded 300 "$FERRY" bench latency --json --runs "$RUNS" \
    >"$tmp/ferry-latency.jsonl"; then
	echo "compare.sh: ferry bench latency failed" >&2
	status=1
fi
cat "$tmp/ferry-latency.jsonl" >&2

echo "compare.sh: $PY bench/peers/noop.py --runs $RUNS --budget $BUDGET $*" >&2
# noop.py bounds itself (--timeout per system, --budget overall) and stops
# what it starts; its progress goes to stderr
if ! bounded $((BUDGET + 120)) "$PY" bench/peers/noop.py --runs "$RUNS" \
    --budget "$BUDGET" "$@" >"$tmp/peers.jsonl"; then
	echo "compare.sh: some peers failed or were skipped (see above)" >&2
fi

load_after=$(loadavg)
elapsed=$(($(date +%s) - start))

if [ -n "${OUT:-}" ]; then
	mkdir -p "$OUT" && cp "$tmp"/*.jsonl "$OUT"/ &&
	    echo "compare.sh: raw JSON lines in $OUT" >&2
fi

echo
"$PY" - "$tmp/ferry-throughput.jsonl" "$tmp/ferry-latency.jsonl" \
    "$tmp/peers.jsonl" "$RUNS" "$load_before" "$load_after" "$elapsed" \
    <<'EOF' || status=1
import json
import os
import sys

files = sys.argv[1:4]
runs = int(sys.argv[4])
load_before, load_after, elapsed = sys.argv[5:8]

order = []      # systems in order of appearance, ferry first
data = {}       # (system, bench) -> {"runs": [...], "median": v, ...}


def slot(system, bench):
    if system not in order:
        order.append(system)
    return data.setdefault((system, bench), {"runs": [], "median": None,
                                             "skipped": None, "size": None})


for path in files:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if not isinstance(o, dict) or o.get("bench") not in (
                "throughput", "latency"):
            continue
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
        v = sorted(s["runs"])[len(s["runs"]) // 2]
        if len(s["runs"]) < runs:
            partial = True
            return v, "*"
        return v, ""
    return None, "skipped" if s["skipped"] else "failed"


def ratio(x):
    if x >= 100:
        return "%.0f" % x
    if x >= 10:
        return "%.1f" % x
    if x >= 1:
        return "%.2f" % x
    return "%.2g" % x


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
        ratio(ft / t) if t and ft else "-",
        str(sl.get("size") or "-"),
        "%d%s" % (lat, lm) if lat is not None else lm,
        ratio(fl / lat) if lat and fl else "-",
    ))

workers = sorted({str(v.get("workers")) for v in data.values()
                  if v.get("workers") is not None})
print("Ferry vs Python peers: no-op tasks, %s worker processes, median of "
      "%d run%s each" % ("/".join(workers) or "?", runs,
                         "" if runs == 1 else "s"))
print("load average (1, 5, 15 min): %s before, %s after; %s CPUs; %s s" %
      (load_before, load_after, os.cpu_count(), elapsed))
print()
widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
for i, r in enumerate(rows):
    cells = [c.ljust(widths[j]) if j == 0 else c.rjust(widths[j])
             for j, c in enumerate(r)]
    print("| " + " | ".join(cells) + " |")
    if i == 0:
        print("|" + "|".join("-" * (w + 1) + (":" if j else "-")
                             for j, w in enumerate(widths)) + "|")
print()
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
