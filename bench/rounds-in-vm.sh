#!/bin/sh
# Runs inside the test VM (see run-rounds.sh).  KIND is
#   latency: ping-pong, 8 B .. 4 KiB, for UCX xpmem and posix, btl xpmem
#            (self,vader,xpmem as users run it, and self,xpmem alone) and vader;
#   fresh:   bandwidth with a fresh buffer per message, 4 KiB .. 256 KiB, for
#            UCX xpmem, cma,posix and posix, btl xpmem, vader CMA and CICO;
#   ceiling: bandwidth with reused buffers, 1 .. 16 MiB, for btl xpmem and UCX
#            xpmem, each size followed in the same job by the receiver's plain
#            memcpy of it (reported as configuration CONFIG-memcpy);
#   rndv:    fresh buffers, 128 .. 512 KiB, UCX xpmem with UCP's rendezvous
#            through get_zcopy (default), through rkey_ptr, and through rkey_ptr
#            with glibc's memcpy kept off rep movsb, against cma,posix;
#   cells:   fresh buffers, 4 .. 128 KiB, UCX xpmem with 64 KiB (default) and
#            8 KiB FIFO cells, against cma,posix.
# All configurations run in turn, ROUNDS times, each round in its own order
# (a shuffle seeded by the round number) and every job after a pause, so that
# neither drift in the emulated machine nor the job that ran just before
# favours one configuration.  (Rotating one fixed order is not enough: each
# configuration would keep the same predecessor.)
# Writes "round configuration size value unit cpu" lines to $XPMEM_VM_OUT/KIND.txt.
set -eu
B=$1 rounds=$2 kind=$3
# shellcheck source=bench/launch.sh
. "$(dirname "$0")/launch.sh"
case $kind in
latency)
	configs="ucx-xpmem ucx-posix ob1-xpmem ob1-xpmem-alone ob1-vader"
	args=$latency_args ;;
fresh)
	configs="ucx-xpmem ucx-cma ucx-posix ob1-xpmem ob1-vader ob1-vader-cico"
	args="--mode bw --fresh --min 4096 --max 262144 --volume-mib 8" ;;
ceiling)
	configs="ob1-xpmem ucx-xpmem"
	args="--mode bw --ceiling --min 1048576 --max 16777216 --volume-mib 32" ;;
rndv)
	configs="ucx-xpmem ucx-xpmem-rkey-ptr ucx-xpmem-rkey-ptr-no-movsb ucx-cma"
	args="--mode bw --fresh --min 131072 --max 524288 --volume-mib 8" ;;
cells)
	configs="ucx-xpmem ucx-xpmem-8k ucx-cma"
	args="--mode bw --fresh --min 4096 --max 131072 --volume-mib 8" ;;
*)
	echo "rounds-in-vm: KIND is latency, fresh, ceiling, rndv or cells" >&2
	exit 2 ;;
esac
# The configurations in round $1's order.
shuffled() {
	echo "$configs" | tr ' ' '\n' |
		awk -v seed="$1" 'BEGIN { srand(seed) } { print rand() "\t" $0 }' | sort -n | cut -f2
}
run() {
	sleep 1
	# shellcheck disable=SC2086 # args: separate words on purpose
	launch "$1" "$B" "$B/bench/mpi_bench" $args | grep -v '^#' |
		sed "s/^memcpy /$2 $1-memcpy /; t; s/^/$2 $1 /"
}
for round in $(seq 1 "$rounds"); do
	for config in $(shuffled "$round"); do
		run "$config" "$round"
	done
done >"$XPMEM_VM_OUT/$kind.txt"
