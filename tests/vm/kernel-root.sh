#!/usr/bin/env bash
# Build (once) a Debian 13 (trixie) root holding the newer kernels the
# module is tested on: trixie's own (6.12) and the newest in
# trixie-backports (7.x), each with its headers.  A newer kernel's kbuild
# tools need its own userland, so modules for these kernels are built inside
# this root (build-kmod-in-root.sh); the VM rig boots their images and loads
# their modules from it (run-in-vm.sh --kernel-root).  Only Debian packages
# are downloaded.
#
#   kernel-root.sh [--refresh]
#
# Cache: ${XPMEM_CACHE:-/var/cache/xpmem-dev}/trixie (outside the tree; about
# 1.5 GB).  Its file xpmem-kernels lists one "SUITE RELEASE" line per kernel
# (e.g. "trixie 6.12.57+deb13-amd64"); the script prints the root's path as
# its last line.  The root is reused while that file exists; --refresh (or
# XPMEM_REFRESH_ROOT=1) updates the package lists and installs the newest
# kernels of both suites.  Takes about 5 minutes the first time.
set -euo pipefail

cache=${XPMEM_CACHE:-/var/cache/xpmem-dev}
root=$cache/trixie
mirror=${XPMEM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
refresh=${XPMEM_REFRESH_ROOT:-}
[ "${1:-}" = --refresh ] && refresh=1

log() { echo "kernel-root: $*" >&2; }

mkdir -p "$cache"
exec 9>"$cache/.trixie.lock"
flock 9

if [ -s "$root/xpmem-kernels" ] && [ -z "$refresh" ]; then
	log "cached: $root ($(tr '\n' ' ' <"$root/xpmem-kernels"))"
	echo "$root"
	exit 0
fi
[ "$(id -u)" = 0 ] || { log "FAIL: building $root needs root (debootstrap, chroot)"; exit 1; }
command -v debootstrap >/dev/null || { log "FAIL: debootstrap missing (apt-get install debootstrap)"; exit 1; }

in_root() { chroot "$root" env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
	PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

if [ ! -x "$root/usr/bin/apt-get" ] || [ ! -e "$root/.debootstrap-done" ]; then
	rm -rf "$root" "$root.tmp"
	log "debootstrap trixie into $root (log: $cache/trixie-debootstrap.log)"
	if ! debootstrap --variant=minbase --include=build-essential,kmod,ca-certificates \
		trixie "$root.tmp" "$mirror" >"$cache/trixie-debootstrap.log" 2>&1; then
		tail -n 20 "$cache/trixie-debootstrap.log" >&2
		rm -rf "$root.tmp"
		log "FAIL: debootstrap failed"
		exit 1
	fi
	mv "$root.tmp" "$root"
	touch "$root/.debootstrap-done"
fi

# This machine's resolver, which may have changed since the root was made.
cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror trixie main
deb $mirror trixie-updates main
deb $mirror trixie-backports main
EOF
# Kernel packages' hooks want these; nothing in the root is ever booted.
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
trap 'umount "$root/proc" 2>/dev/null || true' EXIT

log "installing the newest kernel and headers of trixie and trixie-backports"
in_root apt-get update -qq >&2
# The versioned package each suite's metapackage points at: both stay installed.
versioned() { # SUITE -> linux-image-<release>
	in_root apt-cache depends -t "$1" linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1
}
: >"$root/xpmem-kernels.tmp"
for suite in trixie trixie-backports; do
	image=$(versioned "$suite")
	[ -n "$image" ] || { log "FAIL: no linux-image-amd64 in $suite"; exit 1; }
	release=${image#linux-image-}
	release=${release%-unsigned}
	# A backports kernel needs backports' linux-base and kbuild tools.
	in_root apt-get install -y -qq --no-install-recommends -t "$suite" \
		"$image" "linux-headers-$release" >&2
	echo "$suite $release" >>"$root/xpmem-kernels.tmp"
done
while read -r suite release; do
	for f in "boot/vmlinuz-$release" "lib/modules/$release/modules.dep" \
		"usr/src/linux-headers-$release/Makefile"; do
		[ -e "$root/$f" ] || { log "FAIL: $root/$f missing after install"; exit 1; }
	done
done <"$root/xpmem-kernels.tmp"
mv "$root/xpmem-kernels.tmp" "$root/xpmem-kernels"
log "ready: $root ($(tr '\n' ' ' <"$root/xpmem-kernels"))"
echo "$root"
