#!/bin/sh
# Runs inside the test VM (see run-rounds.sh).  KIND is
#   latency: ping-pong, 8 B .. 4 KiB, for UCX xpmem and posix, btl xpmem
#            (self,vader,xpmem as users run it, and self,xpmem alone) and vader;
#   fresh:   bandwidth with a fresh buffer per message, 4 KiB .. 256 KiB, for
#            UCX xpmem, cma,posix and posix, btl xpmem, vader CMA and CICO.
# All configurations run in turn, ROUNDS times.  Each round starts one
# configuration later than the previous one and every job starts after a
# pause, so that neither drift in the emulated machine nor the previous job's
# teardown favours a fixed position in the order.
# Writes "round configuration size value unit cpu" lines to $XPMEM_VM_OUT/KIND.txt.
set -eu
B=$1 rounds=$2 kind=$3
# shellcheck source=bench/launch.sh
. "$(dirname "$0")/launch.sh"
case $kind in
latency)
	configs="ucx-xpmem ucx-posix ob1-xpmem ob1-xpmem-alone ob1-vader"
	args="--mode latency --min 8 --max 4096" ;;
fresh)
	configs="ucx-xpmem ucx-cma ucx-posix ob1-xpmem ob1-vader ob1-vader-cico"
	args="--mode bw --fresh --min 4096 --max 262144 --volume-mib 8" ;;
*)
	echo "rounds-in-vm: KIND is latency or fresh" >&2
	exit 2 ;;
esac
n=$(echo "$configs" | wc -w)
run() {
	sleep 1
	# shellcheck disable=SC2086 # args: separate words on purpose
	launch "$1" "$B" "$B/bench/mpi_bench" $args | grep -v '^#' | sed "s/^/$2 $1 /"
}
for round in $(seq 1 "$rounds"); do
	first=$(((round - 1) % n))
	for i in $(seq 0 $((n - 1))); do
		run "$(echo "$configs" | cut -d' ' -f$(((first + i) % n + 1)))" "$round"
	done
done >"$XPMEM_VM_OUT/$kind.txt"
