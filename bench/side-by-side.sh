#!/bin/sh
# side-by-side.sh - two builds of ferry, alternating, on the same machine
# in the same minutes: `ferry bench throughput` and `ferry bench latency`
# run A B A B ..., and the medians of each and their ratios are printed.
# A noisy, shared machine drifts; alternating keeps the comparison fair.
#
#   bench/side-by-side.sh OLD_FERRY NEW_FERRY [ROUNDS] [-- EXTRA BENCH ARGS]
#
# OLD_FERRY, NEW_FERRY: paths of two ferry binaries (each with its own
# examples library next to it, as a build tree has).  ROUNDS: runs of each
# benchmark per binary (default 5).
set -eu

if [ $# -lt 2 ]; then
	echo "usage: $0 OLD_FERRY NEW_FERRY [ROUNDS] [-- BENCH ARGS]" >&2
	exit 2
fi
old=$1
new=$2
shift 2
rounds=5
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
	rounds=$1
	shift
fi
[ $# -gt 0 ] && [ "$1" = "--" ] && shift

out=$(mktemp -d "${TMPDIR:-/tmp}/ferry-sbs.XXXXXX")
trap 'rm -rf "$out"' EXIT

# one figure from a --json line: field name
field() {
	sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"
}

i=0
while [ "$i" -lt "$rounds" ]; do
	i=$((i + 1))
	for side in old new; do
		case $side in
		old) bin=$old ;;
		*) bin=$new ;;
		esac
		"$bin" bench throughput --json "$@" 2>/dev/null |
		    field tasks_per_s >>"$out/$side.tput"
		"$bin" bench latency --json "$@" 2>/dev/null |
		    field p50_us >>"$out/$side.lat"
	done
	printf 'round %d: throughput old %s new %s tasks/s; latency old %s new %s us\n' \
	    "$i" "$(tail -n 1 "$out/old.tput")" "$(tail -n 1 "$out/new.tput")" \
	    "$(tail -n 1 "$out/old.lat")" "$(tail -n 1 "$out/new.lat")"
done

median() {
	sort -n "$1" | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "nan"; exit }
		if (NR % 2) print v[(NR + 1) / 2];
		else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ot=$(median "$out/old.tput")
nt=$(median "$out/new.tput")
ol=$(median "$out/old.lat")
nl=$(median "$out/new.lat")
echo "throughput median: old $ot, new $nt tasks/s; new/old $(awk "BEGIN { printf \"%.3f\", $nt / $ot }")"
echo "latency p50 median: old $ol, new $nl us; new/old $(awk "BEGIN { printf \"%.3f\", $nl / $ol }")"
