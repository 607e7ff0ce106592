#!/bin/sh
# compare-heavy.sh - `ferry bench heavy` next to the Python peers of
# bench/peers/heavy.py, measured in the same run, and a table of the medians
# side by side.
#
# usage: bench/compare-heavy.sh [heavy.py options...]
#   e.g. bench/compare-heavy.sh --systems process_pool_spawn_memmap
#
# Builds nothing: build Ferry first (see README.md).  Environment:
#   FERRY    the ferry binary (default build/cli/ferry)
#   PYTHON   the interpreter for the peers (default /usr/bin/python3, which
#            sees Debian's python3-* packages)
#   RUNS     runs of every system (default 3)
#   SIZE     the file size, for Ferry and the peers (default 1GiB)
#   BUDGET   seconds for all peers together (default 540); peers not yet
#            started when it runs out are reported as skipped
#   FERRY_TIMEOUT  seconds for ferry bench heavy, all runs (default 120);
#            if it is stopped, what its private cluster left is stopped too
#   OUT      a directory: keep the raw JSON lines there
#
# Uses POSIX sh and Python (for the JSON) only.
set -u

here=$(cd "$(dirname "$0")" && pwd) || exit 1
prog=compare-heavy.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

SIZE=${SIZE:-1GiB}
BUDGET=${BUDGET:-540}
FERRY_TIMEOUT=${FERRY_TIMEOUT:-120}

check_tools
check_numbers "RUNS, BUDGET and FERRY_TIMEOUT must be numbers" \
    "$RUNS" "$BUDGET" "$FERRY_TIMEOUT"
make_tmp ferry-compare-heavy
trap 'exit 129' HUP
trap 'exit 141' PIPE
start_clock

# its file goes to $tmp (removed on exit even if ferry is killed)
run_ferry "$tmp/ferry-heavy.jsonl" "$FERRY_TIMEOUT" heavy --json \
    --runs "$RUNS" --size "$SIZE" --dir "$tmp"
run_peers "$tmp/peers-heavy.jsonl" bench/peers/heavy.py --runs "$RUNS" \
    --size "$SIZE" --budget "$BUDGET" "$@"
stop_clock

report "$tmp/ferry-heavy.jsonl" "$tmp/peers-heavy.jsonl" <<'EOF'
import sys

from common import median, print_header, print_table, ratio, read_json_lines

runs = int(sys.argv[1])
load_before, load_after, elapsed = sys.argv[2:5]
files = sys.argv[5:]

FIELDS = ("seconds", "read_once_seconds", "time_ratio", "loads",
          "cached_share", "peak_pss_bytes", "pss_ratio")
order = []  # systems in order of appearance, ferry first
data = {}   # system -> {"runs": [line, ...], "skipped": why, "note": ...}

for o in read_json_lines(files, ("heavy",)):
    name = o.get("system", "ferry")
    if name not in order:
        order.append(name)
    s = data.setdefault(name, {"runs": [], "skipped": None, "note": None})
    if "skipped" in o:
        s["skipped"] = o["skipped"]
    elif o.get("summary") is None and all(k in o for k in FIELDS):
        s["runs"].append(o)
        s["note"] = o.get("note", s["note"])

if "ferry" in order:
    order.remove("ferry")
order.insert(0, "ferry")
data.setdefault("ferry", {"runs": [], "skipped": None, "note": None})


def med(name, key):
    """The median of a field over the runs (the upper middle for an even
    count, as ferry bench computes it), or None."""
    vals = [o[key] for o in data[name]["runs"]]
    return median(vals) if vals else None


ferry_secs = med("ferry", "seconds")
rows = [("system", "runs", "seconds", "vs ferry", "read once s",
         "time ratio", "loads", "cached share", "peak PSS GiB",
         "pss ratio")]
partial = False
for name in order:
    s = data[name]
    n = len(s["runs"])
    if n == 0:
        rows.append((name, "0", "skipped" if s["skipped"] else "failed") +
                    ("-",) * 7)
        continue
    mark = ""
    if n < runs:
        mark = "*"
        partial = True
    secs = med(name, "seconds")
    rows.append((
        name,
        "%d%s" % (n, mark),
        "%.4f" % secs,
        ratio(secs / ferry_secs, "%.3f") if ferry_secs else "-",
        "%.4f" % med(name, "read_once_seconds"),
        ratio(med(name, "time_ratio"), "%.3f"),
        "%d" % med(name, "loads"),
        "%.3f" % med(name, "cached_share"),
        "%.3f" % (med(name, "peak_pss_bytes") / float(1 << 30)),
        "%.3f" % med(name, "pss_ratio"),
    ))

first = [o for name in order for o in data[name]["runs"]][:1]
if first:
    f = first[0]
    what = "%.2f GiB file, %s worker processes, %s tasks" % (
        f["file_bytes"] / float(1 << 30), f["workers"], f["tasks"])
else:
    what = "no results"
print_header("Ferry vs Python peers: heavy object (%s), median of %d run%s "
             "each" % (what, runs, "" if runs == 1 else "s"),
             load_before, load_after, elapsed)
print_table(rows)
print("seconds: first submit to last result; vs ferry: that divided by "
      "Ferry's.")
print("time ratio: seconds / read once s, each system against its own "
      "read-once pass")
print("  (Ferry: mmap + C loop; peers: np.memmap + np.sum).")
print("peak PSS: total over the worker processes; pss ratio: that / file "
      "size.")
print("Each column is the median of its own values over the runs.")
if partial:
    print("* fewer runs than asked for (the others failed or ran out of "
          "time)")
for name in order:
    s = data[name]
    if s["note"]:
        print("%s: %s" % (name, s["note"]))
for name in order:
    s = data[name]
    if s["skipped"]:
        print("%s skipped: %s" % (name, s["skipped"]))
EOF
exit $status
