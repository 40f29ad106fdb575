#!/usr/bin/env bash
# Side-by-side medians of interleaved rounds in one VM boot, for the
# measurements that drift most under TCG: small-message latency, fresh
# buffers, and large messages against the memcpy ceiling (see rounds-in-vm.sh).
#   bench/run-rounds.sh latency|fresh|ceiling|rndv|cells [ROUNDS] [OUTDIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
kind=${1:?usage: run-rounds.sh latency|fresh|ceiling|rndv|cells [ROUNDS] [OUTDIR]}
rounds=${2:-10} out=${3:-$top/build/bench-out-$kind}
mkdir -p "$out"
"$top/tests/vm/run-in-vm.sh" --module "$top/build/kmod/kbuild/xpmem.ko" --out "$out" --mem 4G \
	--prealloc --tsc-clock --timeout 5000 -- "$here/rounds-in-vm.sh" "$top/build" "$rounds" "$kind"
/usr/bin/python3 "$here/rounds.py" "$kind" "$out/$kind.txt"
