#!/usr/bin/env bash
# The benchmark: in one boot of the test VM, our btl against vader with
# CMA and with copy-in/copy-out (none), reused and fresh buffers, 4 KiB ..
# 16 MiB, plus a plain memcpy of the same sizes.  With --stack ucx the same
# over pml ucx (UCP tag send/recv): UCX_TLS=xpmem against cma,posix and
# posix.  Prints the table (medians of the runs) and writes bench-table.md
# and bench.png next to the raw data.
# The VM is emulated (TCG): only the ratios between columns mean anything.
#   bench/run-bench.sh [--stack ompi|ucx] [--runs N] [--out DIR] [--min B] [--max B] [--volume-mib N]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
stack=ompi runs=3 out="" min=4096 max=$((16 << 20)) volume=32
while [ $# -gt 0 ]; do
	case "$1" in
	--stack) stack=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--min) min=$2; shift 2 ;;
	--max) max=$2; shift 2 ;;
	--volume-mib) volume=$2; shift 2 ;;
	*) echo "run-bench: unknown option $1" >&2; exit 2 ;;
	esac
done
case "$stack" in ompi | ucx) ;; *) echo "run-bench: --stack is ompi or ucx" >&2; exit 2 ;; esac
out=${out:-$top/build/bench-out-$stack}
mkdir -p "$out"
"$top/tests/vm/run-in-vm.sh" --module "$top/build/kmod/kbuild/xpmem.ko" --out "$out" --mem 8G --prealloc --tsc-clock \
	--timeout 5400 -- "$here/bench-in-vm.sh" "$top/build" "$runs" "$min" "$max" "$volume" "$stack"
/usr/bin/python3 "$here/report.py" "$out/results.txt" "$out" "$stack"
