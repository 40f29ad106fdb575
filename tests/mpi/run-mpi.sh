#!/usr/bin/env bash
# Run one MPI program under Open MPI with our BTL on the component path and
# check that it passed and, with --expect-xpmem, that it really moved data
# through XPMEM attachments (the module's fault counter grew).
#   run-mpi.sh [--expect-xpmem | --expect-no-xpmem] NP BTL_LIST PROGRAM [ARGS...]
set -euo pipefail
expect=""
case "${1:-}" in --expect-xpmem | --expect-no-xpmem) expect=$1; shift ;; esac
np=$1 btls=$2
shift 2
components=${XPMEM_OMPI_COMPONENTS:?set XPMEM_OMPI_COMPONENTS to the directory of mca_btl_xpmem.so}
stats=/sys/kernel/debug/xpmem/stats
faults() { if [ -r "$stats" ]; then awk '$1 == "faults" {print $2}' "$stats"; else echo 0; fi; }

before=$(faults)
out=$(mpirun --allow-run-as-root --oversubscribe -np "$np" --mca pml ob1 --mca btl "$btls" \
	--mca mca_base_component_path "SYS_DEFAULT:$components" --mca btl_base_verbose 1 \
	--mca btl_tcp_if_include lo "$@" 2>&1) || { echo "$out"; echo "FAIL: $* exited non-zero"; exit 1; }
after=$(faults)
echo "$out" | grep -v "^\[.*\] mca: bml" || true
echo "$out" | grep -q " 0 failures" || { echo "FAIL: $* did not report 0 failures"; exit 1; }
case "$expect" in
--expect-xpmem)
	[ "$after" -gt "$before" ] || { echo "FAIL: no XPMEM faults: the single-copy path was not taken"; exit 1; }
	echo "$out" | grep -qE "bytes_single_copied [1-9]" || { echo "FAIL: pvar btl_xpmem_bytes_single_copied is 0"; exit 1; }
	echo "xpmem path taken: $((after - before)) attachment faults" ;;
--expect-no-xpmem)
	[ ! -e /dev/xpmem ] || { echo "FAIL: /dev/xpmem exists"; exit 1; }
	echo "$out" | grep -q "Using vader btl" || { echo "FAIL: vader did not take over"; exit 1; } ;;
esac
echo "PASS: np=$np btl=$btls $*"
