# lib.sh - what the bench/compare*.sh scripts share.
#
# Sourced (POSIX sh) by them after they have set
#   prog   their name, the prefix of their messages
#   here   the directory they are in (bench/)
# Changes to the top of the source tree.  Sets FERRY, PY and RUNS from the
# environment (see the scripts), and `status`, the exit status so far.
# shellcheck shell=sh disable=SC2034,SC2154 # prog, here, status: theirs

cd "$here/.." || exit 1

FERRY=${FERRY:-build/cli/ferry}
PY=${PYTHON:-/usr/bin/python3}
RUNS=${RUNS:-3}
status=0

# exit 2 unless the ferry binary and the Python are there
check_tools() {
	if [ ! -x "$FERRY" ]; then
		echo "$prog: no ferry binary at $FERRY (build it first, or set" \
		    "FERRY)" >&2
		exit 2
	fi
	if [ ! -x "$PY" ]; then
		echo "$prog: no Python at $PY (set PYTHON)" >&2
		exit 2
	fi
}

# check_numbers MESSAGE VALUE...: exit 2, saying MESSAGE, unless every
# VALUE is a whole number
check_numbers() {
	msg=$1
	shift
	for v in "$@"; do
		case $v in
		'' | *[!0-9]*)
			echo "$prog: $msg" >&2
			exit 2
			;;
		esac
	done
}

# make_tmp NAME: a temporary directory in $tmp, removed on exit
make_tmp() {
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || exit 1
	trap 'rm -rf "$tmp"' EXIT
	trap 'exit 130' INT TERM
}

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

# the load average and the time before: load_before, start
start_clock() {
	load_before=$(loadavg)
	start=$(date +%s)
	echo "$prog: load average before: $load_before" >&2
}

# sweep_ferry PID: stop what the ferry bench of pid PID, stopped by its
# time limit, left behind: its private cluster (scheduler and worker
# supervisor, each in a session of its own, found by the socket path that
# names the bench's pid), by pid; then its socket and log.
sweep_ferry() {
	PYTHONPATH="$(pwd)/bench/peers${PYTHONPATH:+:$PYTHONPATH}" \
	    "$PY" - "$1" "$prog" <<'EOF'
import signal
import sys

import common
from common import all_pids, in_session, kill_pids, pid_list, wait_gone

common.PROG = sys.argv[2]
url = ("ipc:///tmp/ferry-bench-%s.sock" % sys.argv[1]).encode()
leaders = set()
for pid in all_pids():
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            if url in f.read().split(b"\0"):
                leaders.add(pid)
    except OSError:
        pass
left = sorted({p for sid in leaders for p in in_session(sid)})
for sig in (signal.SIGTERM, signal.SIGKILL):
    if not left:
        break
    common.say("stopping pids %s left by ferry bench" % pid_list(left))
    kill_pids(left, sig)
    left = wait_gone(left, 10)
EOF
	rm -f "/tmp/ferry-bench-$1.sock" "/tmp/ferry-bench-$1.log"
}

# run_ferry OUT SECONDS BENCH ARG...: `ferry bench BENCH ARG...` for at
# most SECONDS, its JSON lines to OUT and then to stderr.  Its pid goes to
# $tmp/ferry.pid (a shell writes its pid, then becomes ferry).  On failure:
# says so, stops what the bench left running (sweep_ferry), sets status to
# 1 and returns 1.
run_ferry() {
	out=$1
	secs=$2
	shift 2
	echo "$prog: $FERRY bench $*" >&2
	rc=0
	rm -f "$tmp/ferry.pid"
	# shellcheck disable=SC2016 # "$$", "$0" and "$@" are for that shell
	bounded "$secs" sh -c 'echo "$$" >"$0" && exec "$@"' \
	    "$tmp/ferry.pid" "$FERRY" bench "$@" >"$out" || rc=1
	if [ $rc -ne 0 ]; then
		echo "$prog: ferry bench $1 failed" >&2
		status=1
		[ ! -s "$tmp/ferry.pid" ] || sweep_ferry "$(cat "$tmp/ferry.pid")"
	fi
	rm -f "$tmp/ferry.pid"
	cat "$out" >&2
	return $rc
}

# run_peers OUT SCRIPT ARG...: a peers script under $PY, its JSON lines to
# OUT.  The script bounds itself (--timeout per system, --budget overall),
# stops what it starts and sends its progress to stderr; it gets 120 s
# more than $BUDGET here.
run_peers() {
	out=$1
	shift
	echo "$prog: $PY $*" >&2
	if ! bounded $((BUDGET + 120)) "$PY" "$@" >"$out"; then
		echo "$prog: some peers failed or were skipped (see above)" >&2
	fi
}

# the load average and the seconds since start_clock: load_after,
# elapsed; the JSON lines copied to $OUT if it is set
stop_clock() {
	load_after=$(loadavg)
	elapsed=$(($(date +%s) - start))
	if [ -n "${OUT:-}" ]; then
		mkdir -p "$OUT" && cp "$tmp"/*.jsonl "$OUT"/ &&
		    echo "$prog: raw JSON lines in $OUT" >&2
	fi
}

# report FILE... <PROGRAM: a blank line, then the table that the Python
# PROGRAM prints; it gets $RUNS, load_before, load_after, elapsed and the
# FILEs as arguments, and can import common (bench/peers/common.py).
# Sets status to 1 if it fails.
report() {
	echo
	PYTHONPATH="$(pwd)/bench/peers${PYTHONPATH:+:$PYTHONPATH}" \
	    "$PY" - "$RUNS" "$load_before" "$load_after" "$elapsed" "$@" ||
	    status=1
}
