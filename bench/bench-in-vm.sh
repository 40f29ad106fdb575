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
common=(--allow-run-as-root --oversubscribe --bind-to core)
if [ "$stack" = ucx ]; then
	common+=(--mca pml ucx --mca pml_ucx_tls any --mca pml_ucx_devices any --mca btl self,vader)
	declare -A transports=(
		[xpmem]="-x UCX_TLS=xpmem -x LD_PRELOAD=$build/ucx-modules/libuct_xpmem.so.0"
		[cma]="-x UCX_TLS=cma,posix"
		[cico]="-x UCX_TLS=posix"
	)
else
	common+=(--mca pml ob1 --mca mca_base_component_path "SYS_DEFAULT:$build/ompi-components")
	declare -A transports=(
		[xpmem]="--mca btl self,vader,xpmem"
		[cma]="--mca btl self,vader --mca btl_vader_single_copy_mechanism cma"
		[cico]="--mca btl self,vader --mca btl_vader_single_copy_mechanism none"
	)
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
		# shellcheck disable=SC2086
		mpirun "${common[@]}" -np 2 ${transports[$t]} "$bench" --mode bw $ceiling --min "$min" \
			--max "$max" --volume-mib "$volume" | record "$run" "$t" reused bw
		# Fresh buffers cost the benchmark itself an mmap and a memset per message.
		# shellcheck disable=SC2086
		mpirun "${common[@]}" -np 2 ${transports[$t]} "$bench" --mode bw --fresh --min "$min" \
			--max "$max" --volume-mib $((volume / 4)) | record "$run" "$t" fresh bw
		# shellcheck disable=SC2086
		mpirun "${common[@]}" -np 2 ${transports[$t]} "$bench" --mode latency --min 8 --max 4096 |
			record "$run" "$t" reused latency
	done
	echo "bench: run $run of $runs done"
done
