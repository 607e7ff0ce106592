#!/bin/sh
# quickstart.sh - from a fresh Debian 12 machine: install what is missing,
# build Ferry, start the local cluster of config/local.yaml (a scheduler
# and one worker process per core), run the example client against it,
# and stop the cluster again.
set -eu
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
if [ ! -f build/build.ninja ]; then
	meson setup build --buildtype=release
fi
ninja -C build

FERRY=build/cli/ferry
CONF=config/local.yaml
# stop a cluster left over from an interrupted run, then start ours
$FERRY cluster down -f "$CONF" >/dev/null 2>&1 || true
$FERRY cluster up -f "$CONF"
trap '$FERRY cluster down -f "$CONF"' EXIT INT TERM

echo
echo "== ferry submit add 2 3"
$FERRY submit -f "$CONF" add 2 3
echo
echo "== example client: square 0..99999 on the cluster"
build/examples/ferry-example-squares ipc:///tmp/ferry-local.sock 100000
echo
echo "== example client: count the words of a 64 MiB file by path"
build/examples/ferry-example-wordcount -a ipc:///tmp/ferry-local.sock \
    -s 64 -n 32 -f /tmp/ferry-wordcount.txt
rm -f /tmp/ferry-wordcount.txt
echo
$FERRY status -f "$CONF"
echo
