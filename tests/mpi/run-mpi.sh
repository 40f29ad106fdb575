#!/usr/bin/env bash
# Run one MPI program under Open MPI and check that it passed and, with
# --expect-xpmem, that it really moved data through XPMEM attachments (the
# module's fault counter grew).  By default over pml ob1 with our BTL on the
# component path; with --pml-ucx TLS over pml ucx with UCX_TLS=TLS and our UCT
# transport preloaded (XPMEM_UCX_MODULE).
#   run-mpi.sh [--expect-xpmem | --expect-no-xpmem] [--pml-ucx TLS] NP BTL_LIST PROGRAM [ARGS...]
set -euo pipefail
expect="" ucx_tls=""
case "${1:-}" in --expect-xpmem | --expect-no-xpmem) expect=$1; shift ;; esac
[ "${1:-}" = --pml-ucx ] && { ucx_tls=$2; shift 2; }
np=$1 btls=$2
shift 2
if [ -n "$ucx_tls" ]; then
	module=${XPMEM_UCX_MODULE:?set XPMEM_UCX_MODULE to libuct_xpmem.so.0}
	transport=(--mca pml ucx --mca osc ucx -x "UCX_TLS=$ucx_tls" -x "LD_PRELOAD=$module"
		--mca pml_ucx_verbose 1
		--mca pml_ucx_tls any --mca pml_ucx_devices any) # 4.1 otherwise wants Mellanox devices
else
	components=${XPMEM_OMPI_COMPONENTS:?set XPMEM_OMPI_COMPONENTS to the directory of mca_btl_xpmem.so}
	transport=(--mca pml ob1 --mca mca_base_component_path "SYS_DEFAULT:$components"
		--mca btl_base_verbose 1)
fi
stats=/sys/kernel/debug/xpmem/stats
faults() { if [ -r "$stats" ]; then awk '$1 == "faults" {print $2}' "$stats"; else echo 0; fi; }

before=$(faults)
out=$(mpirun --allow-run-as-root --oversubscribe -np "$np" --mca btl "$btls" "${transport[@]}" \
	--mca btl_tcp_if_include lo "$@" 2>&1) || { echo "$out"; echo "FAIL: $* exited non-zero"; exit 1; }
after=$(faults)
echo "$out" | grep -v "^\[.*\] mca: bml" || true
echo "$out" | grep -q " 0 failures" || { echo "FAIL: $* did not report 0 failures"; exit 1; }
case "$expect" in
--expect-xpmem)
	[ "$after" -gt "$before" ] || { echo "FAIL: no XPMEM faults: the single-copy path was not taken"; exit 1; }
	[ -n "$ucx_tls" ] || echo "$out" | grep -qE "bytes_single_copied [1-9]" ||
		{ echo "FAIL: pvar btl_xpmem_bytes_single_copied is 0"; exit 1; }
	echo "xpmem path taken: $((after - before)) attachment faults" ;;
--expect-no-xpmem)
	[ ! -e /dev/xpmem ] || { echo "FAIL: /dev/xpmem exists"; exit 1; }
	if [ -n "$ucx_tls" ]; then
		echo "$out" | grep -q "pml_ucx" || { echo "FAIL: pml ucx was not used"; exit 1; }
	else
		echo "$out" | grep -q "Using vader btl" || { echo "FAIL: vader did not take over"; exit 1; }
	fi ;;
esac
echo "PASS: np=$np btl=$btls${ucx_tls:+ pml=ucx UCX_TLS=$ucx_tls} $*"
