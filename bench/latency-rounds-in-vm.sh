#!/bin/sh
# Runs inside the test VM (see run-latency-rounds.sh): ping-pong latency,
# 8 B .. 4 KiB, for UCX xpmem, UCX posix, btl xpmem (self,vader,xpmem as
# users run it, and self,xpmem alone: vader still polls in the former) and
# vader, interleaved ROUNDS times so that drift in the emulated machine hits
# all of them alike.
# Appends "round transport size value unit cpu" lines to $XPMEM_VM_OUT/lat.txt.
set -eu
B=$1 rounds=${2:-10}
M=$B/ucx-modules/libuct_xpmem.so.0
U="mpirun --allow-run-as-root --oversubscribe -np 2 --bind-to core --mca pml ucx --mca pml_ucx_tls any --mca pml_ucx_devices any --mca btl self,vader"
O="mpirun --allow-run-as-root --oversubscribe -np 2 --bind-to core --mca pml ob1 --mca mca_base_component_path SYS_DEFAULT:$B/ompi-components"
L="$B/bench/mpi_bench --mode latency --min 8 --max 4096"
for round in $(seq 1 "$rounds"); do
	$U -x UCX_TLS=xpmem -x LD_PRELOAD=$M $L | grep -v '^#' | sed "s/^/$round ucx-xpmem /"
	$U -x UCX_TLS=posix $L | grep -v '^#' | sed "s/^/$round ucx-posix /"
	$O --mca btl self,vader,xpmem $L | grep -v '^#' | sed "s/^/$round ob1-xpmem /"
	$O --mca btl self,xpmem $L | grep -v '^#' | sed "s/^/$round ob1-xpmem-alone /"
	$O --mca btl self,vader --mca btl_vader_single_copy_mechanism cma $L | grep -v '^#' | sed "s/^/$round ob1-vader /"
done >"$XPMEM_VM_OUT/lat.txt"
