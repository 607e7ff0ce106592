#!/bin/sh
# test.sh - the whole test suite: unit, integration and fuzz tests on a
# normal build, then again on an AddressSanitizer + UndefinedBehavior-
# Sanitizer build, then the unit tests under valgrind.  Installs missing
# packages first (needs root or sudo for that).
set -eu
cd "$(dirname "$0")/.."

./scripts/install-deps.sh

run() {
	echo "== $*"
	"$@"
}

# 1. normal build, all suites
if [ ! -f build-test/build.ninja ]; then
	run meson setup build-test --buildtype=debugoptimized --werror
fi
run ninja -C build-test
run meson test -C build-test --print-errorlogs --num-processes 2

# 2. sanitizers
if [ ! -f build-asan/build.ninja ]; then
	run meson setup build-asan --buildtype=debug \
	    -Db_sanitize=address,undefined -Db_lundef=false
fi
run ninja -C build-asan
# The integration tests start schedulers and workers that the tests later
# kill; their sanitizer reports go to files, and any report fails the run
# (tests/lsan.supp says which leak inside NNG is not ours).
reports=$(mktemp -d /tmp/ferry-sanitizer.XXXXXX)
# The fault-injection suite runs 50,000 tasks here instead of 200,000: the
# same faults, a quarter of the sanitizer-slowed work.
FERRY_FI_TASKS=${FERRY_FI_TASKS_ASAN:-50000} \
LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0" \
ASAN_OPTIONS="detect_leaks=1:log_path=$reports/asan" \
UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan" \
    run meson test -C build-asan --print-errorlogs --num-processes 2
if [ -n "$(ls -A "$reports")" ]; then
	echo "== sanitizer reports from processes under test:"
	cat "$reports"/*
	exit 1
fi
rm -rf "$reports"

# 3. valgrind on the unit tests (the integration tests run real
#    processes; their memory is checked by the sanitizer build)
run meson test -C build-test --setup valgrind --suite unit --print-errorlogs

# one closing line over the three runs, from meson's own records
summary=$(/usr/bin/env python3 - build-test build-asan <<'PY' 2>/dev/null || true
import json, sys
ok = bad = skip = 0
for d in sys.argv[1:]:
    for name in ("testlog.json", "testlog-valgrind.json"):
        try:
            f = open(d + "/meson-logs/" + name)
        except OSError:
            continue
        for line in f:
            r = json.loads(line).get("result")
            if r in ("OK", "EXPECTEDFAIL"):
                ok += 1
            elif r == "SKIP":
                skip += 1
            else:
                bad += 1
print("%d passed, %d failed, %d skipped" % (ok, bad, skip))
PY
)
echo "== all tests passed"
[ -n "$summary" ] && echo "$summary"
exit 0
