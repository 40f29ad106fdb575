#!/usr/bin/env bash
# Small-message latency of both plugins against their references, as
# medians of interleaved rounds in one VM boot (a few minutes under TCG).
#   bench/run-latency-rounds.sh [ROUNDS] [OUTDIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
rounds=${1:-10} out=${2:-$top/build/bench-out-latency}
mkdir -p "$out"
"$top/tests/vm/run-in-vm.sh" --module "$top/build/kmod/kbuild/xpmem.ko" --out "$out" --timeout 3000 \
	-- "$here/latency-rounds-in-vm.sh" "$top/build" "$rounds"
/usr/bin/python3 "$here/latency_rounds.py" "$out/lat.txt"
