#!/usr/bin/env bash
# DKMS builds the module from kmod/ (kmod/dkms.conf) against a kernel's
# installed headers, in trees of its own under OUTDIR so the system's DKMS
# state is untouched:
#   OUTDIR/src/xpmem-<version>   the source, as /usr/src/xpmem-<version>
#   OUTDIR/dkms                  dkms's tree (built module, logs)
# The VM test (install-in-vm.sh) then runs `dkms install` from these trees.
#
#   kmod-dkms.sh OUTDIR RELEASE PROJECT_VERSION
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$1 release=$2 project_version=$3
command -v dkms >/dev/null || { echo "kmod-dkms: dkms missing (apt-get install dkms)" >&2; exit 1; }
version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$here/../kmod/dkms.conf")
[ "$version" = "$project_version" ] ||
	{ echo "kmod-dkms: FAIL: dkms.conf says $version, CMakeLists.txt $project_version" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out/src/xpmem-$version" "$out/dkms"
cp -r "$here/../kmod/." "$out/src/xpmem-$version/"
trees=(--sourcetree "$out/src" --dkmstree "$out/dkms")
dkms add -m xpmem -v "$version" "${trees[@]}"
if ! dkms build -m xpmem -v "$version" -k "$release" "${trees[@]}"; then
	cat "$out/dkms/xpmem/$version/build/make.log" "$out"/dkms/xpmem/"$version"/"$release"/*/log/make.log >&2 || true
	exit 1
fi
ko=$(find "$out/dkms/xpmem/$version/$release" -name 'xpmem.ko*' | head -n 1)
[ -n "$ko" ] || { echo "kmod-dkms: FAIL: no xpmem.ko for $release under $out/dkms" >&2; exit 1; }
vermagic=$(modinfo -F vermagic "$ko" | awk '{print $1}')
[ "$vermagic" = "$release" ] || { echo "kmod-dkms: FAIL: built for $vermagic, not $release" >&2; exit 1; }
if grep -E 'warning:|error:' "$out"/dkms/xpmem/"$version"/"$release"/*/log/make.log; then
	echo "kmod-dkms: FAIL: the DKMS build (W=1) has warnings" >&2
	exit 1
fi
dkms status -m xpmem "${trees[@]}"
echo "kmod-dkms: PASS: $ko for $release"
