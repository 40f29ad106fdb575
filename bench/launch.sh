# shellcheck shell=sh
# Sourced by the in-VM benchmark scripts: the one place that says how each
# compared configuration is selected.
#   launch CONFIG BUILD COMMAND [ARGS...]
# runs COMMAND as 2 ranks bound to cores, with CONFIG one of
#   ucx-xpmem ucx-cma ucx-posix        pml ucx: UCX_TLS=xpmem (ours, preloaded),
#                                      cma,posix (single copy by CMA), posix (CICO)
#   ucx-xpmem-rkey-ptr                 ours with UCP's rendezvous copying through
#                                      rkey_ptr (UCX_XPMEM_RNDV_RKEY_PTR=y)
#   ucx-xpmem-rkey-ptr-no-movsb        the same with glibc's memcpy kept off rep movsb
#   ucx-xpmem-8k                       ours with 8 KiB FIFO cells (UCX_XPMEM_SEG_SIZE=8320)
#   ob1-xpmem ob1-xpmem-alone          pml ob1: btl self,vader,xpmem as users run it,
#                                      and self,xpmem without vader
#   ob1-vader ob1-vader-cico           vader with CMA, and with copy-in/copy-out
#
# mpi_bench's arguments for small-message latency, the same in both scripts:
# osu_latency's sizes, each timed in 20 blocks whose median counts.
# shellcheck disable=SC2034 # used by the scripts that source this file
latency_args="--mode latency --min 8 --max 4096 --blocks 20"

launch() {
	launch_config=$1 launch_build=$2
	shift 2
	case $launch_config in
	ucx-xpmem) ;;
	ucx-xpmem-rkey-ptr) set -- -x UCX_XPMEM_RNDV_RKEY_PTR=y "$@" ;;
	ucx-xpmem-rkey-ptr-no-movsb)
		set -- -x UCX_XPMEM_RNDV_RKEY_PTR=y -x GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=16777216 "$@" ;;
	ucx-xpmem-8k) set -- -x UCX_XPMEM_SEG_SIZE=8320 "$@" ;;
	ucx-cma) set -- -x UCX_TLS=cma,posix "$@" ;;
	ucx-posix) set -- -x UCX_TLS=posix "$@" ;;
	ob1-xpmem) set -- --mca btl self,vader,xpmem "$@" ;;
	ob1-xpmem-alone) set -- --mca btl self,xpmem "$@" ;;
	ob1-vader) set -- --mca btl self,vader --mca btl_vader_single_copy_mechanism cma "$@" ;;
	ob1-vader-cico) set -- --mca btl self,vader --mca btl_vader_single_copy_mechanism none "$@" ;;
	*)
		echo "launch: unknown configuration $launch_config" >&2
		return 2 ;;
	esac
	case $launch_config in
	ucx-xpmem | ucx-xpmem-*) set -- -x UCX_TLS=xpmem -x "LD_PRELOAD=$launch_build/ucx-modules/libuct_xpmem.so.0" "$@" ;;
	esac
	case $launch_config in
	ucx-*) set -- --mca pml ucx --mca pml_ucx_tls any --mca pml_ucx_devices any --mca btl self,vader "$@" ;;
	*) set -- --mca pml ob1 --mca mca_base_component_path "SYS_DEFAULT:$launch_build/ompi-components" "$@" ;;
	esac
	mpirun --allow-run-as-root --oversubscribe -np 2 --bind-to core "$@"
}
