#!/usr/bin/env bash
# Attach-and-touch cost per MiB (bench/attach_touch.cpp), in one VM boot of
# one kernel: Debian 12's (6.1, the host's) or one of the cached Debian 13
# root's (tests/vm/kernel-root.sh): trixie (6.12) or trixie-backports (7.x).
#   bench/run-attach-touch.sh [host|trixie|trixie-backports] [ROUNDS] [OUTDIR]
# Needs a build (tools/build.sh) and, for the newer kernels, their modules
# (ctest -R kmod_newer_kernels).  Prints the summary table; the raw lines are
# in OUTDIR/attach-touch.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
kernel=${1:-host} rounds=${2:-5} out=${3:-$top/build/bench-out-attach-touch-${1:-host}}
mkdir -p "$out"
vm=("$top/tests/vm/run-in-vm.sh")
if [ "$kernel" = host ]; then
	vm+=(--module "$top/build/kmod/kbuild/xpmem.ko")
else
	root=$("$top/tests/vm/kernel-root.sh" | tail -n 1)
	release=$(cat "$top/build/kmod-newer/$kernel.release")
	vm+=(--kernel-root "$root" --module "$top/build/kmod-newer/$release/xpmem.ko")
fi
"${vm[@]}" --out "$out" --mem 4G --prealloc --tsc-clock --timeout 3000 -- \
	sh -c "uname -r >$out/attach-touch.txt && $top/build/bench/attach_touch --rounds $rounds >>$out/attach-touch.txt"
head -n 1 "$out/attach-touch.txt"
/usr/bin/python3 "$here/attach_touch.py" "$out/attach-touch.txt"
