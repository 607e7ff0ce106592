#!/bin/sh
# quickstart.sh - from a fresh Debian 12 machine: install what is missing,
# build Ferry and install it (with its Python package) for this user,
# start the local cluster of config/local.yaml (a scheduler
# and one worker process per core), run the example client against it,
# and stop the cluster again.
#
# Everything it starts lives in this checkout's own runtime directory
# (FERRY_RUNTIME_DIR below) and is stopped by the pids it recorded there:
# another user's Ferry, another checkout's quick start, or your own
# default cluster are never touched, even while they run.
set -eu
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
# Installed for this user only, into ~/.local: the ferry command in
# ~/.local/bin, libraries in ~/.local/lib, and the Python package in the
# user site directory of Debian's python3, so that `import ferry` works
# from /usr/bin/python3 and Jupyter.  Nothing of the system's is touched.
PREFIX=$HOME/.local
USER_SITE=$(/usr/bin/python3 -m site --user-site)
if [ ! -f build/build.ninja ]; then
	meson setup build --buildtype=release --prefix="$PREFIX" --libdir=lib \
	    -Dpython.purelibdir="$USER_SITE" -Dpython.platlibdir="$USER_SITE"
else
	meson configure build --prefix="$PREFIX" --libdir=lib \
	    -Dpython.purelibdir="$USER_SITE" -Dpython.platlibdir="$USER_SITE"
fi
ninja -C build
meson install -C build --quiet
echo "installed: $PREFIX/bin/ferry, the Python package ferry in $USER_SITE"

FERRY=build/cli/ferry
CONF=config/local.yaml

# This checkout's runtime directory, inside yours ($FERRY_RUNTIME_DIR, else
# $XDG_RUNTIME_DIR/ferry, else /tmp/ferry-UID: see docs/configuration.md)
# and named after the checkout's path.  config/local.yaml puts the
# scheduler's socket there, `cluster up` its pids and logs, and `ferry
# submit` and the examples find the cluster there.
if [ -n "${FERRY_RUNTIME_DIR:-}" ]; then
	base=$FERRY_RUNTIME_DIR
else
	case ${XDG_RUNTIME_DIR:-} in
	/*) base=$XDG_RUNTIME_DIR/ferry ;;
	*) base=/tmp/ferry-$(id -u) ;;
	esac
fi
checkout=$(printf '%s' "$(pwd -P)" | cksum | cut -d' ' -f1)
FERRY_RUNTIME_DIR=$base/quickstart-$checkout
export FERRY_RUNTIME_DIR
unset FERRY_ADDRESS
ADDR=ipc://$FERRY_RUNTIME_DIR/local.sock
WORDS=

cleanup() {
	[ -z "$WORDS" ] || rm -f "$WORDS"
	$FERRY cluster down -f "$CONF"
}

# stop this checkout's cluster left over from an interrupted run, then
# start ours
$FERRY cluster down -f "$CONF" >/dev/null 2>&1 || true
$FERRY cluster up -f "$CONF"
trap cleanup EXIT
trap 'exit 130' INT TERM

echo
echo "== ferry submit add 2 3"
$FERRY submit add 2 3
echo
echo "== example client: square 0..99999 on the cluster"
build/examples/ferry-example-squares "$ADDR" 100000
echo
echo "== example client: count the words of a 64 MiB file by path"
# a file of our own in /tmp (the cluster's object root): /tmp is shared
WORDS=$(mktemp /tmp/ferry-wordcount.XXXXXX)
build/examples/ferry-example-wordcount -a "$ADDR" -s 64 -n 32 -f "$WORDS"
echo
echo "== Python client (the installed package): Python and C tasks"
# run from / so that the installed package is imported, not a checkout's
top=$(pwd -P)
(cd / && /usr/bin/python3 "$top/examples/python/squares.py" "$ADDR" 100000)
echo
$FERRY status
echo
