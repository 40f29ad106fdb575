#!/usr/bin/env bash
# Runs inside the test VM (see run-bench.sh): every transport and buffer
# mode, RUNS times, appending "run transport buffers mode size value unit
# cpu_s_per_gib" lines to $XPMEM_VM_OUT/results.txt.  STACK is ompi (pml ob1:
# btl xpmem vs vader CMA vs vader copy-in/copy-out) or ucx (pml ucx, i.e. UCP
# tag send/recv: UCX_TLS=xpmem vs cma,posix vs posix).
set -euo pipefail
build=$1 runs=$2 min=$3 max=$4 volume=$5 stack=${6:-ompi}
out=$XPMEM_VM_OUT/results.txt
: >"$out"
bench=$build/bench/mpi_bench
# shellcheck source=bench/launch.sh
. "$(dirname "$0")/launch.sh"
if [ "$stack" = ucx ]; then
	declare -A config=([xpmem]=ucx-xpmem [cma]=ucx-cma [cico]=ucx-posix)
else
	declare -A config=([xpmem]=ob1-xpmem [cma]=ob1-vader [cico]=ob1-vader-cico)
fi
record() { # run transport buffers mode, then the benchmark's output on stdin
	grep -v '^#' | while read -r first rest; do
		if [ "$first" = memcpy ]; then # --ceiling: the receiver's memcpy
			echo "$1 memcpy $3 $4 $rest"
		else
			echo "$1 $2 $3 $4 $first $rest"
		fi >>"$out"
	done
}
for run in $(seq 1 "$runs"); do
	for t in xpmem cma cico; do
		# With ours, the receiver's memcpy of the same bytes after each size:
		# the single-copy ceiling, measured alongside.
		ceiling=""
		[ "$t" = xpmem ] && ceiling=--ceiling
		# shellcheck disable=SC2086 # $ceiling: no word when empty
		launch "${config[$t]}" "$build" "$bench" --mode bw $ceiling --min "$min" \
			--max "$max" --volume-mib "$volume" | record "$run" "$t" reused bw
		# Fresh buffers cost the benchmark itself an mmap and a memset per message.
		launch "${config[$t]}" "$build" "$bench" --mode bw --fresh --min "$min" \
			--max "$max" --volume-mib $((volume / 4)) | record "$run" "$t" fresh bw
		# shellcheck disable=SC2086 # $latency_args: separate words on purpose
		launch "${config[$t]}" "$build" "$bench" $latency_args |
			record "$run" "$t" reused latency
	done
	echo "bench: run $run of $runs done"
done
