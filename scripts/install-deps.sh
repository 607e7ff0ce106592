#!/bin/sh
# install-deps.sh - install the Debian packages Ferry needs to build and
# test, skipping those already installed.  Needs root (or sudo).
set -eu

PACKAGES="build-essential pkg-config meson ninja-build cmake \
python3-dev libpython3.11-dev python3-msgpack python3-numpy python3-pytest \
python3-tqdm python3-nbconvert python3-ipykernel \
libnng-dev libmsgpack-dev libyaml-dev liblmdb-dev libcmocka-dev libmbedtls-dev valgrind openssl \
shellcheck python3-yaml systemd"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
if [ -z "$missing" ]; then
	echo "install-deps: all packages present"
	exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO=sudo
	else
		echo "install-deps: need root to install:$missing" >&2
		exit 1
	fi
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
