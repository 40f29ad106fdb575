#!/usr/bin/env bash
# Build xpmem.ko against each kernel of the root made by kernel-root.sh,
# inside that root (a newer kernel's kbuild tools need its own glibc), with
# W=1 and every warning an error, as the host build does.
#
#   build-kmod-in-root.sh ROOT OUTDIR
#
# Writes OUTDIR/<release>/xpmem.ko for every line of ROOT/xpmem-kernels, and
# OUTDIR/<suite>.release naming the release built for each suite, so tests
# can ask for "the trixie kernel" without knowing its version.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../kmod" && pwd)
[ $# = 2 ] || { echo "usage: $0 ROOT OUTDIR" >&2; exit 2; }
root=$1
out=$2
[ -s "$root/xpmem-kernels" ] || { echo "build-kmod: $root/xpmem-kernels missing (run kernel-root.sh)" >&2; exit 2; }
mkdir -p "$out"

build=$(mktemp -d "$root/var/tmp/xpmem-kmod.XXXXXX")
# One build in the root at a time; objtool (7.x) reads /proc/self/limits.
exec 9>"$root/var/tmp/xpmem-kmod.lock"
flock 9
mount -t proc proc "$root/proc"
trap 'umount "$root/proc"; rm -rf "$build"' EXIT
status=0
while read -r suite release; do
	dir=$build/$release
	mkdir -p "$dir"
	cp -r "$src"/. "$dir"/
	rm -f "$dir/CMakeLists.txt"
	echo "build-kmod: $suite: $release"
	if ! chroot "$root" env LANG=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		make -s -C "/usr/src/linux-headers-$release" M="${dir#"$root"}" \
		W=1 KCFLAGS=-Werror -j"$(nproc)" modules </dev/null; then
		echo "build-kmod: FAIL: $release" >&2
		status=1
		continue
	fi
	mkdir -p "$out/$release"
	cp "$dir/xpmem.ko" "$out/$release/xpmem.ko"
	echo "$release" >"$out/$suite.release"
done <"$root/xpmem-kernels"
exit $status
