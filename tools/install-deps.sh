#!/usr/bin/env bash
# Install what building and testing needs on Debian 12 (as root): the
# compiler and GoogleTest, a Debian kernel with its matching headers (the
# module is built against them and tested by booting them under QEMU/TCG),
# QEMU and busybox for the test VM, Open MPI for the Open MPI plugin, and
# UCX (its source too: tools/fetch-ucx-source.sh) for the UCX plugin.
set -euo pipefail
packages=(
	build-essential cmake g++ pkg-config libgtest-dev
	linux-image-amd64 linux-headers-amd64 kmod
	qemu-system-x86 busybox-static cpio xz-utils zstd util-linux debootstrap dkms
	openmpi-bin libopenmpi-dev
	libucx-dev ucx-utils dpkg-dev
)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "missing packages: ${missing[*]}; run: sudo apt-get install ${missing[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
